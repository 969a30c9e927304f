/*
 * cmd_mount.c - `cloudmount mount` and `cloudmount unmount`.
 *
 * mount checks what it can in the foreground (the mount point, FUSE, the
 * options), then forks: the child sets up the S3 client, checks that the
 * bucket answers, mounts, and only then tells the parent, through a pipe, that
 * all is well (or the exit code of what failed: the child's messages went to
 * the terminal already). So `cloudmount mount` returns once the mount is up,
 * and start-up errors reach the terminal, as ARCHITECTURE.md asks. With -f it
 * stays in the foreground.
 *
 * SIGTERM and SIGINT end the FUSE loop; files still being written are then
 * committed before the process unmounts and exits.
 *
 * The form mount(8) uses through mount.fuse3 (`cloudmount s3://BUCKET DIR -o
 * OPTS`) is accepted too: fstab-only options (auto, noauto, user, nouser,
 * users, _netdev, nofail, defaults, x-*) are dropped quietly.
 */
#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/log.h"
#include "common/util.h"
#include "config/remotes.h"
#include "fs/fs.h"
#include "fs/reader.h"
#include "s3/sigv4.h"

struct mount_opts {
	struct cli_conn_opts conn;
	const char *source;
	const char *dir;
	int foreground;
	int read_only;
	int posix_metadata;
	int direct;                     /* mount NAME here, without asking the daemon */
	double ttl;
	int ttl_set;
	long uid, gid;
	long file_mode, dir_mode;
	const char *cache_dir;
	uint64_t cache_limit;
	const char *log_file;
	const char *stats_file;
	struct buf fuse_opts;           /* -o options passed on to FUSE */
	char *owned[8];                 /* strings from -o that conn points into */
	int n_owned;
	int nonempty;
	uint64_t copy_threshold;
	long fill_after;                /* -1: the default */
};

static const char mount_usage[] =
	"usage: cloudmount mount s3://BUCKET[/PREFIX] DIR [options]\n"
	"Mount a bucket (or a prefix of it) on DIR. Returns once the mount is up.\n"
	"  -f, --foreground         stay in the foreground (logs to stderr)\n"
	"  --read-only              refuse every change\n"
	"  --posix-metadata         HEAD listed objects not seen before, for their modes, owners and\n"
	"                           symlinks (s3fs fidelity for buckets other tools wrote; costs a HEAD\n"
	"                           per such object, once)\n"
	"  --metadata-ttl SECONDS   trust cached attributes and listings this long (default 1; 0: always ask)\n"
	"  --uid N, --gid N         owner of objects that carry none (default: yours)\n"
	"  --file-mode OCTAL        permissions of files that carry none (default 0644)\n"
	"  --dir-mode OCTAL         permissions of directories that carry none (default 0755)\n"
	"  --cache-dir DIR          staging files for random writes (default ~/.cache/cloudmount)\n"
	"  --cache-limit SIZE       disk the staging files may use (default 10G)\n"
	"  --fill-after N           after N random reads of a file that each waited 5 ms or more, copy\n"
	"                           it whole into the cache dir in the background and serve reads from\n"
	"                           there (default 16; 0: never; only while it leaves half the cache\n"
	"                           limit and the disk free)\n"
	"  --log-file FILE          where a background mount logs (default ~/.cache/cloudmount/BUCKET.log)\n"
	"  --stats-file FILE        write request and cache counters there as JSON twice a second\n"
	"  -o OPT[,OPT...]          FUSE options (allow_other, ...) and the above as ro, uid=, gid=,\n"
	"                           file_mode=, dir_mode=, endpoint=, region=, profile=, path_style\n";

/* Keep a copy of an -o value for as long as m lives. */
static const char *own(struct mount_opts *m, const char *v)
{
	if (m->n_owned == (int)(sizeof(m->owned) / sizeof(m->owned[0])))
		return v; /* the -o list itself outlives nothing; so many repeats are not sane */
	m->owned[m->n_owned] = xstrdup(v);
	return m->owned[m->n_owned++];
}

static void fuse_opt_add(struct mount_opts *m, const char *opt)
{
	if (m->fuse_opts.len)
		buf_putc(&m->fuse_opts, ',');
	buf_puts(&m->fuse_opts, opt);
}

static int parse_octal(const char *s, long *out)
{
	char *end;
	long v = strtol(s, &end, 8);
	if (!*s || *end || v < 0 || v > 07777)
		return -1;
	*out = v;
	return 0;
}

static int parse_long(const char *s, long *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (!*s || *end || v < 0)
		return -1;
	*out = v;
	return 0;
}

/* One option of a -o list. Returns 0, or -1 after a message. */
static int mount_o_option(struct mount_opts *m, char *opt)
{
	char *eq = strchr(opt, '=');
	const char *val = eq ? eq + 1 : NULL;
	static const char *const dropped[] = { "auto", "noauto", "user", "nouser", "users", "_netdev",
					       "nofail", "defaults", "rw", "dev", "suid", "exec",
					       "nodev", "nosuid", "noexec", "async", NULL };

	for (int i = 0; dropped[i]; i++)
		if (!strcmp(opt, dropped[i]))
			return 0;
	if (!strncmp(opt, "x-", 2) || !strncmp(opt, "comment=", 8))
		return 0;
	if (!strcmp(opt, "ro")) {
		m->read_only = 1;
		return 0;
	}
	if (!strcmp(opt, "posix_metadata")) {
		m->posix_metadata = 1;
		return 0;
	}
	if (!strcmp(opt, "nonempty")) {
		m->nonempty = 1;
		return 0;
	}
	if (!strcmp(opt, "path_style") || !strcmp(opt, "use_path_request_style")) {
		m->conn.addressing = S3_ADDR_PATH;
		return 0;
	}
	if (eq) {
		*eq = '\0';
		if (!strcmp(opt, "uid") || !strcmp(opt, "gid")) {
			if (parse_long(val, !strcmp(opt, "uid") ? &m->uid : &m->gid) < 0)
				goto bad;
			return 0;
		}
		if (!strcmp(opt, "file_mode") || !strcmp(opt, "dir_mode")) {
			if (parse_octal(val, !strcmp(opt, "file_mode") ? &m->file_mode : &m->dir_mode) < 0)
				goto bad;
			return 0;
		}
		if (!strcmp(opt, "endpoint") || !strcmp(opt, "url")) {
			m->conn.endpoint = own(m, val);
			return 0;
		}
		if (!strcmp(opt, "region")) {
			m->conn.region = own(m, val);
			return 0;
		}
		if (!strcmp(opt, "profile")) {
			m->conn.profile = own(m, val);
			return 0;
		}
		if (!strcmp(opt, "metadata_ttl")) {
			m->ttl = strtod(val, NULL);
			return 0;
		}
		*eq = '=';
	}
	fuse_opt_add(m, opt);
	return 0;
bad:
	fprintf(stderr, "cloudmount: -o %s=%s: bad value\n", opt, val);
	return -1;
}

static int parse_mount_args(int argc, char **argv, struct mount_opts *m)
{
	const char *pos[2] = { NULL, NULL };
	int n_pos = 0;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		int rc;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			printf("%s\n%s", mount_usage, cli_conn_help);
			exit(0);
		}
		if (!strcmp(a, "-f") || !strcmp(a, "--foreground")) {
			m->foreground = 1;
			continue;
		}
		if (!strcmp(a, "--read-only")) {
			m->read_only = 1;
			continue;
		}
		if (!strcmp(a, "--direct")) {
			m->direct = 1;
			continue;
		}
		if (!strcmp(a, "--posix-metadata")) {
			m->posix_metadata = 1;
			continue;
		}
		if (!strcmp(a, "-o") || !strncmp(a, "-o", 2)) {
			char *list, *save = NULL, *tok;
			const char *v = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
			if (!v) {
				fprintf(stderr, "cloudmount: -o needs options\n");
				return -1;
			}
			list = xstrdup(v);
			for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				if (mount_o_option(m, tok) < 0) {
					free(list);
					return -1;
				}
			}
			free(list);
			continue;
		}
		if (i + 1 < argc && (!strcmp(a, "--metadata-ttl") || !strcmp(a, "--uid") || !strcmp(a, "--gid") ||
				     !strcmp(a, "--file-mode") || !strcmp(a, "--dir-mode") ||
				     !strcmp(a, "--cache-dir") || !strcmp(a, "--cache-limit") ||
				     !strcmp(a, "--log-file") || !strcmp(a, "--stats-file") ||
				     !strcmp(a, "--copy-threshold") || !strcmp(a, "--fill-after"))) {
			const char *v = argv[++i];
			int bad = 0;
			if (!strcmp(a, "--metadata-ttl")) {
				char *end;
				m->ttl_set = 1;
				m->ttl = strtod(v, &end);
				bad = *end || m->ttl < 0;
			} else if (!strcmp(a, "--uid")) {
				bad = parse_long(v, &m->uid) < 0;
			} else if (!strcmp(a, "--gid")) {
				bad = parse_long(v, &m->gid) < 0;
			} else if (!strcmp(a, "--file-mode")) {
				bad = parse_octal(v, &m->file_mode) < 0;
			} else if (!strcmp(a, "--dir-mode")) {
				bad = parse_octal(v, &m->dir_mode) < 0;
			} else if (!strcmp(a, "--cache-dir")) {
				m->cache_dir = v;
			} else if (!strcmp(a, "--cache-limit")) {
				bad = util_parse_size(v, &m->cache_limit) < 0;
			} else if (!strcmp(a, "--fill-after")) {
				bad = parse_long(v, &m->fill_after) < 0 || m->fill_after < 0 ||
				      m->fill_after > 1000000;
			} else if (!strcmp(a, "--copy-threshold")) {
				bad = util_parse_size(v, &m->copy_threshold) < 0;
			} else if (!strcmp(a, "--log-file")) {
				m->log_file = v;
			} else {
				m->stats_file = v;
			}
			if (bad) {
				fprintf(stderr, "cloudmount: %s: bad value \"%s\"\n", a, v);
				return -1;
			}
			continue;
		}
		rc = cli_conn_opt(&m->conn, argc, argv, &i);
		if (rc < 0)
			return -1;
		if (rc > 0)
			continue;
		if (a[0] == '-' && a[1]) {
			fprintf(stderr, "cloudmount: unknown option %s\n%s", a, mount_usage);
			return -1;
		}
		if (n_pos == 2) {
			fprintf(stderr, "cloudmount: too many arguments\n%s", mount_usage);
			return -1;
		}
		pos[n_pos++] = a;
	}
	if (n_pos != 2 && !(n_pos == 1 && !cli_is_s3_url(pos[0]))) {
		fprintf(stderr, "%s", mount_usage);
		return -1;
	}
	m->source = pos[0];
	m->dir = n_pos == 2 ? pos[1] : NULL;
	return 0;
}

/*
 * `cloudmount mount NAME [DIR]`: take the remote's settings where the command
 * line gave none. Returns 0, or an exit code after a message.
 */
static int apply_remote(struct mount_opts *m, struct remotes *rs, char **url_out, char **dir_out)
{
	struct remote *r;
	struct cm_err err;

	cm_err_clear(&err);
	if (remotes_load(NULL, rs, &err) != CM_OK)
		return cli_report("configuration", &err);
	r = remotes_find(rs, m->source);
	if (!r) {
		fprintf(stderr, "cloudmount: no remote called \"%s\" in %s (cloudmount remote list; "
				"or mount s3://BUCKET DIR)\n", m->source, rs->path);
		return CLI_NOT_FOUND;
	}
	if (!m->conn.endpoint && r->endpoint)
		m->conn.endpoint = r->endpoint;
	if (!m->conn.region && r->region)
		m->conn.region = r->region;
	if (m->conn.addressing < 0 && r->path_style >= 0)
		m->conn.addressing = r->path_style ? S3_ADDR_PATH : S3_ADDR_VIRTUAL;
	if (!m->conn.profile && r->profile)
		m->conn.profile = r->profile;
	if (r->access_key_id && !m->conn.profile) {
		m->conn.keyring_remote = r->name;
		m->conn.keyring_key_id = r->access_key_id;
	}
	m->read_only |= r->read_only;
	if (!m->ttl_set && r->metadata_ttl >= 0)
		m->ttl = r->metadata_ttl;
	if (!m->cache_dir && r->cache_dir)
		m->cache_dir = r->cache_dir;
	*url_out = remote_url(r);
	if (!m->dir) {
		*dir_out = remote_mountpoint(r);
		util_mkdir_p(*dir_out, 0700);
		m->dir = *dir_out;
	}
	m->source = *url_out;
	return 0;
}

/* Check the mount point; print the problem and its fix. Returns 0 or an exit code. */
static int check_mountpoint(const struct mount_opts *m)
{
	struct stat st;
	DIR *d;
	struct dirent *e;

	if (stat(m->dir, &st) < 0) {
		if (errno == ENOTCONN) {
			fprintf(stderr,
				"cloudmount: %s: a stale mount (\"Transport endpoint is not connected\"): the process "
				"serving it has died.\ncloudmount: fix: fusermount3 -u %s   (or: umount -l %s), then mount again\n",
				m->dir, m->dir, m->dir);
		} else {
			fprintf(stderr, "cloudmount: mount point %s: %s\n", m->dir, strerror(errno));
		}
		return CLI_USAGE;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "cloudmount: mount point %s is not a directory\n", m->dir);
		return CLI_USAGE;
	}
	if (m->nonempty)
		return 0;
	d = opendir(m->dir);
	if (!d) {
		fprintf(stderr, "cloudmount: mount point %s: %s\n", m->dir, strerror(errno));
		return CLI_USAGE;
	}
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			closedir(d);
			fprintf(stderr, "cloudmount: mount point %s is not empty (its files would be hidden); "
					"use an empty directory, or -o nonempty\n", m->dir);
			return CLI_USAGE;
		}
	}
	closedir(d);
	return 0;
}

static int check_fuse(void)
{
	if (access("/dev/fuse", R_OK | W_OK) < 0) {
		fprintf(stderr, "cloudmount: FUSE is not available: /dev/fuse %s.\n"
				"cloudmount: fix: install fuse3 (apt-get install fuse3) and load the module (modprobe fuse)\n",
			errno == ENOENT ? "does not exist" : "is not accessible");
		return CLI_FAIL;
	}
	if (geteuid() != 0 && access("/usr/bin/fusermount3", X_OK) < 0 && access("/bin/fusermount3", X_OK) < 0) {
		fprintf(stderr, "cloudmount: fusermount3 is missing: apt-get install fuse3\n");
		return CLI_FAIL;
	}
	return 0;
}

/* ---- stats file ---- */

struct stats_writer {
	const char *path;
	struct fs *fs;
	struct http_engine *engine;
	struct membudget *budget;
	struct fdata_disk *disk;
	volatile int stop;
	pthread_t thread;
};

static void write_stats(struct stats_writer *w)
{
	struct http_stats hs;
	struct fs_stats fsst;
	char *tmp = xasprintf("%s.tmp", w->path);
	FILE *f = fopen(tmp, "w");

	if (!f) {
		free(tmp);
		return;
	}
	http_engine_stats(w->engine, &hs);
	fs_get_stats(w->fs, &fsst);
	fprintf(f,
		"{\"pid\": %d, \"requests\": %" PRIu64 ", \"retries\": %" PRIu64 ", \"failures\": %" PRIu64
		", \"bytes_up\": %" PRIu64 ", \"bytes_down\": %" PRIu64 ", \"in_flight\": %" PRIu64
		", \"get\": %" PRIu64 ", \"head\": %" PRIu64 ", \"put\": %" PRIu64 ", \"post\": %" PRIu64
		", \"delete\": %" PRIu64 ", \"lookups_remote\": %" PRIu64 ", \"lookups_cached\": %" PRIu64
		", \"listings\": %" PRIu64 ", \"fs_heads\": %" PRIu64 ", \"commits\": %" PRIu64
		", \"commit_failures\": %" PRIu64 ", \"skipped_keys\": %" PRIu64 ", \"memory_used\": %" PRIu64
		", \"memory_peak\": %" PRIu64 ", \"staging_bytes\": %" PRIu64 ", \"dirty_files\": %" PRIu64
		", \"dirty_bytes\": %" PRIu64 ", \"files_ahead\": %" PRIu64 "}\n",
		(int)getpid(), hs.requests, hs.retries, hs.failures, hs.bytes_up, hs.bytes_down, hs.in_flight,
		hs.by_method[HTTP_M_GET], hs.by_method[HTTP_M_HEAD], hs.by_method[HTTP_M_PUT],
		hs.by_method[HTTP_M_POST], hs.by_method[HTTP_M_DELETE], fsst.lookups_remote, fsst.lookups_cached,
		fsst.listings, fsst.heads, fsst.commits, fsst.commit_failures, fsst.skipped_keys,
		membudget_used(w->budget), membudget_peak(w->budget), fdata_disk_used(w->disk), fsst.dirty_files,
		fsst.dirty_bytes, fsst.ahead_hits);
	fclose(f);
	rename(tmp, w->path);
	free(tmp);
}

static void *stats_main(void *arg)
{
	struct stats_writer *w = arg;

	while (!w->stop) {
		write_stats(w);
		usleep(200 * 1000);
	}
	write_stats(w);
	return NULL;
}

/* ---- mount ---- */

/*
 * Let the kernel read ahead FUSE_READ_AHEAD_KB on this mount. Its FUSE READ
 * requests are as large as its read-ahead, which the kernel caps at the
 * backing device's read_ahead_kb (128 KiB by default), not at the
 * max_readahead the filesystem asked for: 1 MiB requests take an eighth of
 * the round trips of 128 KiB ones. Only root may write the setting; for
 * anyone else this does nothing (the mount works the same, a little slower).
 */
#define FUSE_READ_AHEAD_KB 1024

static void raise_read_ahead(const char *dir)
{
#ifdef __linux__
	char *real = realpath(dir, NULL), *line = NULL, dev[64] = "";
	size_t cap = 0;
	FILE *f;

	if (!real)
		return;
	f = fopen("/proc/self/mountinfo", "r");
	while (f && getline(&line, &cap, f) > 0) {
		/* id parent major:minor root mount-point ...; the last match is the top mount */
		char devfield[64], point[4096], unescaped[4096];
		size_t j = 0;
		if (sscanf(line, "%*s %*s %63s %*s %4095s", devfield, point) != 2)
			continue;
		for (size_t i = 0; point[i] && j + 1 < sizeof(unescaped); i++) {
			if (point[i] == '\\' && point[i + 1] >= '0' && point[i + 1] <= '3' && point[i + 2] &&
			    point[i + 3]) {
				unescaped[j++] = (char)((point[i + 1] - '0') * 64 + (point[i + 2] - '0') * 8 +
							(point[i + 3] - '0'));
				i += 3;
			} else {
				unescaped[j++] = point[i];
			}
		}
		unescaped[j] = '\0';
		if (strcmp(unescaped, real) == 0)
			snprintf(dev, sizeof(dev), "%s", devfield);
	}
	if (f)
		fclose(f);
	free(line);
	free(real);
	if (*dev) {
		char *path = xasprintf("/sys/class/bdi/%s/read_ahead_kb", dev);
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		char val[32];
		int n = snprintf(val, sizeof(val), "%d\n", FUSE_READ_AHEAD_KB);
		if (fd < 0 || write(fd, val, (size_t)n) != n)
			log_debug("read-ahead of %s stays at the kernel's default (%s: %s)", dir, path,
				  strerror(errno));
		if (fd >= 0)
			close(fd);
		free(path);
	}
#else
	(void)dir;
#endif
}

static void report_to_parent(int fd, int code)
{
	unsigned char c = (unsigned char)code;

	if (fd >= 0) {
		if (write(fd, &c, 1) < 0) {
			/* the parent is gone: nothing to tell */
		}
		close(fd);
	}
}

/* Everything after the fork (or in the foreground): returns the exit code. */
static int run_mount(struct mount_opts *m, const struct s3_url *url, int report_fd)
{
	struct cli_ctx ctx;
	struct cm_err err;
	struct store *store = NULL;
	struct fdata_disk *disk = NULL;
	struct metacache *metacache = NULL;
	struct fs *fs = NULL;
	struct fuse_session *se = NULL;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fs_config cfg;
	struct stats_writer stats = { 0 };
	char *cache_dir = m->cache_dir ? xstrdup(m->cache_dir) : util_cache_dir();
	char *staging_dir = NULL, *opts = NULL;
	enum cm_status st;
	int rc;

	rc = cli_ctx_init(&ctx, &m->conn, 0);
	if (rc != CLI_OK) {
		report_to_parent(report_fd, rc);
		free(cache_dir);
		return rc;
	}
	st = s3_head_bucket(ctx.client, url->bucket, &err);
	if (st != CM_OK) {
		rc = cli_report(m->source, &err);
		goto out_release;
	}
	store = store_s3_create(ctx.client, url->bucket, url->key);
	util_mkdir_p(cache_dir, 0700);
	staging_dir = xasprintf("%s/staging", cache_dir);
	util_mkdir_p(staging_dir, 0700);
	disk = fdata_disk_create(staging_dir, m->cache_limit ? m->cache_limit : 10ULL << 30);
	{
		/* one attribute cache per endpoint, bucket and prefix */
		char *id = xasprintf("%s|%s|%s", s3_client_endpoint(ctx.client), url->bucket, url->key);
		char hex[65], *meta_dir = xasprintf("%s/meta", cache_dir), *db;
		sigv4_sha256_hex(id, strlen(id), hex);
		hex[16] = '\0';
		util_mkdir_p(meta_dir, 0700);
		db = xasprintf("%s/%s-%s.sqlite", meta_dir, url->bucket, hex);
		metacache = metacache_open(db);
		free(db);
		free(meta_dir);
		free(id);
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.store = store;
	cfg.workq = ctx.workq;
	cfg.budget = ctx.budget;
	cfg.disk = disk;
	cfg.metacache = metacache;
	cfg.bucket = url->bucket;
	cfg.metadata_ttl = m->ttl;
	cfg.negative_ttl = m->ttl < 1 ? m->ttl : 1;
	cfg.uid = m->uid >= 0 ? (uid_t)m->uid : getuid();
	cfg.gid = m->gid >= 0 ? (gid_t)m->gid : getgid();
	cfg.file_mode = m->file_mode >= 0 ? (mode_t)m->file_mode : 0644;
	cfg.dir_mode = m->dir_mode >= 0 ? (mode_t)m->dir_mode : 0755;
	cfg.read_only = m->read_only;
	cfg.posix_metadata = m->posix_metadata;
	cfg.part_size = m->conn.part_size;
	cfg.concurrency = m->conn.concurrency > 4 ? 4 : m->conn.concurrency;
	cfg.copy_threshold = m->copy_threshold;
	cfg.fill_after = m->fill_after >= 0 ? (unsigned)m->fill_after : 16;
	/*
	 * Read-ahead may use what the memory limit gives (the parts come from
	 * it): at 20 ms a round trip, 64 MiB keeps 8 parts in flight only
	 * until one is late, as later ones cannot start before the reader has
	 * taken it; with 200 MiB, 1 GiB read in 1.34-1.40 s instead of
	 * 1.43-1.54 s.
	 */
	cfg.read_window = m->conn.memory_limit > (256ULL << 20) ? 256ULL << 20 : m->conn.memory_limit;
	if (cfg.read_window < (64ULL << 20))
		cfg.read_window = 0;
	fs = fs_create(&cfg);

	opts = xasprintf("fsname=cloudmount:%s,subtype=cloudmount,default_permissions%s%s%s", url->bucket,
			 m->read_only ? ",ro" : "", m->fuse_opts.len ? "," : "",
			 m->fuse_opts.len ? m->fuse_opts.data : "");
	fuse_opt_add_arg(&args, "cloudmount");
	fuse_opt_add_arg(&args, "-o");
	fuse_opt_add_arg(&args, opts);
	se = fuse_session_new(&args, fs_operations(), sizeof(struct fuse_lowlevel_ops), fs);
	if (!se) {
		fprintf(stderr, "cloudmount: could not start FUSE with options %s\n", opts);
		rc = CLI_USAGE;
		goto out_release;
	}
	fs_set_session(fs, se);
	if (fuse_set_signal_handlers(se) != 0) {
		rc = CLI_FAIL;
		goto out_release;
	}
	if (fuse_session_mount(se, m->dir) != 0) {
		fprintf(stderr, "cloudmount: mounting on %s failed (see the message above)\n", m->dir);
		rc = CLI_FAIL;
		goto out_signals;
	}
	raise_read_ahead(m->dir);
	log_info("mounted s3://%s%s%s on %s", url->bucket, *url->key ? "/" : "", url->key, m->dir);
	if (m->stats_file) {
		stats.path = m->stats_file;
		stats.fs = fs;
		stats.engine = ctx.engine;
		stats.budget = ctx.budget;
		stats.disk = disk;
		pthread_create(&stats.thread, NULL, stats_main, &stats);
	}
	if (!m->foreground) {
		/* detach from the terminal: from now on the log file has our messages */
		char *log = m->log_file ? xstrdup(m->log_file) : xasprintf("%s/%s.log", cache_dir, url->bucket);
		util_redirect_stdio(log);
		free(log);
	}
	report_to_parent(report_fd, 0);
	report_fd = -1;
	{
		struct fuse_loop_config lc = { .clone_fd = 0, .max_idle_threads = 16 };
		rc = fuse_session_loop_mt(se, &lc) == 0 ? CLI_OK : CLI_FAIL;
	}
	log_info("unmounting %s: committing files still being written", m->dir);
	if (fs_commit_all(fs))
		rc = CLI_FAIL;
	fuse_session_unmount(se);
	if (m->stats_file) {
		stats.stop = 1;
		pthread_join(stats.thread, NULL);
	}
out_signals:
	fuse_remove_signal_handlers(se);
out_release:
	if (se)
		fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	reader_shutdown();      /* files never released may still be read ahead or copied */
	fs_destroy(fs);
	metacache_close(metacache);
	fdata_disk_destroy(disk);
	store_destroy(store);
	cli_ctx_release(&ctx);
	report_to_parent(report_fd, rc);
	free(opts);
	free(staging_dir);
	free(cache_dir);
	return rc;
}

int cmd_mount(int argc, char **argv)
{
	struct mount_opts m;
	struct s3_url url;
	struct remotes remotes = { 0 };
	char *remote_url_str = NULL, *remote_dir = NULL;
	int rc, fds[2];
	pid_t pid;

	memset(&m, 0, sizeof(m));
	cli_conn_opts_init(&m.conn);
	m.ttl = 1.0;
	m.uid = m.gid = m.file_mode = m.dir_mode = m.fill_after = -1;
	if (parse_mount_args(argc, argv, &m) < 0) {
		buf_release(&m.fuse_opts);
		return CLI_USAGE;
	}
	if (m.conn.memory_limit == 128ULL << 20)
		m.conn.memory_limit = 64ULL << 20; /* data buffers; the process stays under 128 MiB */
	if (!cli_is_s3_url(m.source) && !m.direct && !m.foreground && !m.dir) {
		/* a remote by name: the daemon mounts it, when one runs */
		int handled;
		rc = cli_daemon_mount(m.source, &handled);
		if (handled) {
			buf_release(&m.fuse_opts);
			return rc;
		}
	}
	if (!cli_is_s3_url(m.source)) {
		rc = apply_remote(&m, &remotes, &remote_url_str, &remote_dir);
		if (rc) {
			buf_release(&m.fuse_opts);
			remotes_release(&remotes);
			return rc;
		}
	}
	if (cli_parse_s3_url(m.source, &url) < 0) {
		buf_release(&m.fuse_opts);
		remotes_release(&remotes);
		free(remote_url_str);
		free(remote_dir);
		return CLI_USAGE;
	}
	rc = check_mountpoint(&m);
	if (!rc)
		rc = check_fuse();
	if (rc)
		goto out_release;
	if (m.foreground) {
		rc = run_mount(&m, &url, -1);
		goto out_release;
	}
	if (pipe(fds) < 0) {
		perror("cloudmount: pipe");
		rc = CLI_FAIL;
		goto out_release;
	}
	pid = fork();
	if (pid < 0) {
		perror("cloudmount: fork");
		close(fds[0]);
		close(fds[1]);
		rc = CLI_FAIL;
		goto out_release;
	}
	if (pid == 0) {
		close(fds[0]);
		setsid();
		rc = run_mount(&m, &url, fds[1]);
		goto out_release;
	}
	close(fds[1]);
	{
		/* the child reports once the mount is up, or how it failed */
		unsigned char c = CLI_FAIL;
		ssize_t n;
		do {
			n = read(fds[0], &c, 1);
		} while (n < 0 && errno == EINTR);
		if (n != 1) {
			int status;
			waitpid(pid, &status, 0);
			c = WIFEXITED(status) ? (unsigned char)WEXITSTATUS(status) : CLI_FAIL;
			if (!c)
				c = CLI_FAIL;
		}
		rc = c;
	}
	close(fds[0]);
out_release:
	s3_url_release(&url);
	buf_release(&m.fuse_opts);
	for (int i = 0; i < m.n_owned; i++)
		free(m.owned[i]);
	remotes_release(&remotes);
	free(remote_url_str);
	free(remote_dir);
	return rc;
}

static int unmount_dir(const char *dir, int lazy);

int cmd_unmount(int argc, char **argv)
{
	const char *dir = NULL;
	int lazy = 0;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("usage: cloudmount unmount [-l] DIR\nUnmount a CloudMount mount. Files being written are "
			       "committed first by the mount process.\n  -l, --lazy   detach now even if busy\n");
			return 0;
		}
		if (!strcmp(argv[i], "-l") || !strcmp(argv[i], "--lazy")) {
			lazy = 1;
		} else if (argv[i][0] == '-' || dir) {
			fprintf(stderr, "cloudmount: unmount: unexpected \"%s\"\nusage: cloudmount unmount [-l] DIR\n",
				argv[i]);
			return CLI_USAGE;
		} else {
			dir = argv[i];
		}
	}
	if (!dir) {
		fprintf(stderr, "usage: cloudmount unmount [-l] DIR|NAME\n");
		return CLI_USAGE;
	}
	if (!strchr(dir, '/') && remote_name_valid(dir) && access(dir, F_OK) != 0) {
		/* a remote by name: through the daemon, or at its configured mount point */
		struct remotes rs;
		struct remote *r;
		struct cm_err err;
		int handled, rc = cli_daemon_unmount(dir, &handled);
		char *mp;
		if (handled)
			return rc;
		cm_err_clear(&err);
		if (remotes_load(NULL, &rs, &err) != CM_OK)
			return cli_report("configuration", &err);
		r = remotes_find(&rs, dir);
		if (!r) {
			fprintf(stderr, "cloudmount: %s is neither a mount point nor a remote\n", dir);
			remotes_release(&rs);
			return CLI_NOT_FOUND;
		}
		mp = remote_mountpoint(r);
		remotes_release(&rs);
		rc = unmount_dir(mp, lazy);
		free(mp);
		return rc;
	}
	return unmount_dir(dir, lazy);
}

/* Unmount a directory: umount2 as root, fusermount3 otherwise. */
static int unmount_dir(const char *dir, int lazy)
{
	if (geteuid() == 0) {
		if (umount2(dir, lazy ? MNT_DETACH : 0) == 0)
			return 0;
		if (errno == EBUSY)
			fprintf(stderr, "cloudmount: %s is busy: files are open there (see: lsof +D %s), or use -l\n",
				dir, dir);
		else if (errno == EINVAL)
			fprintf(stderr, "cloudmount: %s is not a mount point\n", dir);
		else
			fprintf(stderr, "cloudmount: unmount %s: %s\n", dir, strerror(errno));
		return CLI_FAIL;
	}
	{
		pid_t pid = fork();
		int status;
		if (pid == 0) {
			execlp("fusermount3", "fusermount3", lazy ? "-uz" : "-u", dir, (char *)NULL);
			perror("cloudmount: fusermount3");
			_exit(127);
		}
		if (pid < 0 || waitpid(pid, &status, 0) < 0)
			return CLI_FAIL;
		return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : CLI_FAIL;
	}
}
