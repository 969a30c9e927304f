/*
 * cmd_obj.c - the one-shot object commands: ls, cat, cp, du, rm, stat,
 * presign. Each parses its own arguments (connection options anywhere),
 * connects through cli_ctx_init and maps failures to exit codes through
 * cli_report.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "store/store.h"
#include "store/transfer.h"

/* Split argv into connection options (into o) and positional arguments. */
static int parse_args(int argc, char **argv, struct cli_conn_opts *o, const char **pos, int max_pos,
		      int *n_pos, const char *const *flags, int *flag_set, const char *usage)
{
	*n_pos = 0;
	for (int i = 0; i < argc; i++) {
		int rc, matched = 0;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("%s\n%s", usage, cli_conn_help);
			exit(0);
		}
		for (int f = 0; flags && flags[f]; f++) {
			if (!strcmp(argv[i], flags[f])) {
				flag_set[f] = 1;
				matched = 1;
			}
		}
		if (matched)
			continue;
		rc = cli_conn_opt(o, argc, argv, &i);
		if (rc < 0)
			return CLI_USAGE;
		if (rc > 0)
			continue;
		if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "cloudmount: unknown option %s\n%s\n", argv[i], usage);
			return CLI_USAGE;
		}
		if (*n_pos == max_pos) {
			fprintf(stderr, "cloudmount: too many arguments\n%s\n", usage);
			return CLI_USAGE;
		}
		pos[(*n_pos)++] = argv[i];
	}
	return CLI_OK;
}

static void format_time(const struct timespec *ts, char *out, size_t len)
{
	struct tm tm;
	time_t t = ts->tv_sec;

	localtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%d %H:%M:%S", &tm);
}

int cmd_ls(int argc, char **argv)
{
	static const char usage[] =
		"usage: cloudmount ls [-r] s3://BUCKET[/PREFIX] [options]\n"
		"List objects and directories (common prefixes) under PREFIX, awscli-style.\n"
		"  -r, --recursive   list every key under PREFIX, without directories";
	static const char *const flags[] = { "-r", "--recursive", NULL };
	int flag_set[2] = { 0, 0 };
	struct cli_conn_opts o;
	struct cli_ctx ctx;
	struct s3_url url;
	const char *pos[1] = { NULL };
	int n_pos, rc;
	char *token = NULL;
	enum cm_status st = CM_OK;
	struct cm_err err;
	struct store *store;
	char *prefix;
	size_t base_len = 0;
	int recursive;

	cli_conn_opts_init(&o);
	rc = parse_args(argc, argv, &o, pos, 1, &n_pos, flags, flag_set, usage);
	if (rc != CLI_OK)
		return rc;
	recursive = flag_set[0] || flag_set[1];
	if (n_pos != 1) {
		fprintf(stderr, "%s\n", usage);
		return CLI_USAGE;
	}
	if (cli_parse_s3_url(pos[0], &url) < 0)
		return CLI_USAGE;
	rc = cli_ctx_init(&ctx, &o, 0);
	if (rc != CLI_OK) {
		s3_url_release(&url);
		return rc;
	}
	store = store_s3_create(ctx.client, url.bucket, NULL);
	prefix = url.key;
	/* like awscli: names relative to the "directory" of the prefix, full keys with -r */
	if (!recursive && strrchr(prefix, '/'))
		base_len = (size_t)(strrchr(prefix, '/') - prefix) + 1;
	do {
		struct s3_list_page page;
		char when[32];
		st = store_list(store, prefix, recursive ? NULL : "/", token, NULL, 0, &page, &err);
		if (st != CM_OK)
			break;
		for (size_t i = 0; i < page.n_prefixes; i++)
			printf("%30s PRE %s\n", "", page.prefixes[i] + base_len);
		for (size_t i = 0; i < page.n_objects; i++) {
			if (!recursive && !page.objects[i].key[base_len])
				continue; /* the directory's own marker ("dir/") */
			format_time(&page.objects[i].last_modified, when, sizeof(when));
			printf("%s %10" PRIu64 " %s\n", when, page.objects[i].size,
			       page.objects[i].key + base_len);
		}
		free(token);
		token = page.is_truncated && page.next_token ? xstrdup(page.next_token) : NULL;
		if (page.is_truncated && !page.next_token) {
			s3_list_page_release(&page);
			st = cm_err_set(&err, CM_E_PROTOCOL, "truncated listing without a continuation token");
			break;
		}
		s3_list_page_release(&page);
	} while (token);
	free(token);
	if (st != CM_OK)
		rc = cli_report(pos[0], &err);
	fflush(stdout);
	store_destroy(store);
	cli_ctx_release(&ctx);
	s3_url_release(&url);
	return rc;
}

/* ---- progress for cp ---- */

struct progress {
	int enabled;
	uint64_t total;         /* 0 if unknown */
	uint64_t done;
	int64_t start_ms;
	int64_t last_ms;
	const char *name;
};

static void progress_init(struct progress *p, const char *name, uint64_t total)
{
	memset(p, 0, sizeof(*p));
	p->enabled = isatty(STDERR_FILENO);
	p->total = total;
	p->name = name;
	p->start_ms = p->last_ms = util_now_ms();
}

static void progress_draw(struct progress *p, int final)
{
	int64_t now = util_now_ms();
	double secs = (double)(now - p->start_ms) / 1000.0;
	double rate = secs > 0 ? (double)p->done / secs : 0;
	char done_h[24], rate_h[24], total_h[24];

	if (!p->enabled || (!final && now - p->last_ms < 200))
		return;
	p->last_ms = now;
	util_human_bytes(p->done, done_h, sizeof(done_h));
	util_human_bytes((uint64_t)rate, rate_h, sizeof(rate_h));
	if (p->total) {
		int pct = (int)(p->done * 100 / p->total);
		int bars = pct / 5;
		double eta = rate > 0 ? (double)(p->total - p->done) / rate : 0;
		util_human_bytes(p->total, total_h, sizeof(total_h));
		fprintf(stderr, "\r[%-20.*s] %3d%% %s / %s  %s/s  ETA %02d:%02d ", bars,
			"####################", pct, done_h, total_h, rate_h, (int)eta / 60, (int)eta % 60);
	} else {
		fprintf(stderr, "\r%s  %s/s ", done_h, rate_h);
	}
	if (final)
		fputc('\n', stderr);
}

static void progress_add(struct progress *p, uint64_t n)
{
	p->done += n;
	progress_draw(p, 0);
}

struct fd_sink {
	int fd;
	struct progress *progress;
	int failed_errno;
};

static int fd_sink_fn(void *ctx, const char *data, size_t len)
{
	struct fd_sink *s = ctx;

	while (len) {
		ssize_t n = write(s->fd, data, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			s->failed_errno = errno;
			return -1;
		}
		data += n;
		len -= (size_t)n;
		if (s->progress)
			progress_add(s->progress, (uint64_t)n);
	}
	return 0;
}

/* Download (bucket, key) to fd with parallel ranged GETs. */
static int download(struct cli_ctx *ctx, const struct s3_url *url, int fd, const char *what, int show_progress)
{
	struct store *store = store_s3_create(ctx->client, url->bucket, NULL);
	struct s3_object_head head;
	struct download_opts dopts = {
		.part_size = ctx->opts->part_size,
		.concurrency = ctx->opts->concurrency,
		.budget = ctx->budget,
		.workq = ctx->workq,
	};
	struct progress prog;
	struct fd_sink sink = { fd, NULL, 0 };
	struct cm_err err;
	enum cm_status st;
	int rc = CLI_OK;

	st = store_head(store, url->key, &head, &err);
	if (st != CM_OK) {
		rc = cli_report(what, &err);
		goto out_destroy;
	}
	if (show_progress) {
		progress_init(&prog, url->key, head.size);
		sink.progress = &prog;
	}
	st = download_to_sink(store, url->key, head.size, fd_sink_fn, &sink, &dopts, &err);
	if (show_progress)
		progress_draw(&prog, 1);
	if (st != CM_OK) {
		if (sink.failed_errno) {
			fprintf(stderr, "cloudmount: %s: writing: %s\n", what, strerror(sink.failed_errno));
			rc = CLI_FAIL;
		} else {
			rc = cli_report(what, &err);
		}
	}
	s3_object_head_release(&head);
out_destroy:
	store_destroy(store);
	return rc;
}

int cmd_cat(int argc, char **argv)
{
	static const char usage[] = "usage: cloudmount cat s3://BUCKET/KEY [options]\n"
				    "Write an object to standard output (parallel ranged reads, in order).";
	struct cli_conn_opts o;
	struct cli_ctx ctx;
	struct s3_url url;
	const char *pos[1] = { NULL };
	int n_pos, rc;

	cli_conn_opts_init(&o);
	rc = parse_args(argc, argv, &o, pos, 1, &n_pos, NULL, NULL, usage);
	if (rc != CLI_OK)
		return rc;
	if (n_pos != 1) {
		fprintf(stderr, "%s\n", usage);
		return CLI_USAGE;
	}
	if (cli_parse_s3_url(pos[0], &url) < 0)
		return CLI_USAGE;
	if (!*url.key) {
		fprintf(stderr, "cloudmount: %s names no key\n", pos[0]);
		s3_url_release(&url);
		return CLI_USAGE;
	}
	rc = cli_ctx_init(&ctx, &o, 0);
	if (rc == CLI_OK) {
		rc = download(&ctx, &url, STDOUT_FILENO, pos[0], 0);
		cli_ctx_release(&ctx);
	}
	s3_url_release(&url);
	return rc;
}

/* Upload from fd (a file or stdin) to url through the streaming uploader. */
static int upload(struct cli_ctx *ctx, int fd, uint64_t size, const struct s3_url *url, const char *what)
{
	struct store *store = store_s3_create(ctx->client, url->bucket, NULL);
	struct upload_opts uo = {
		.part_size = ctx->opts->part_size,
		.concurrency = ctx->opts->concurrency,
		.budget = ctx->budget,
		.workq = ctx->workq,
	};
	struct uploader *up;
	struct progress prog;
	struct cm_err err;
	enum cm_status st = CM_OK;
	size_t chunk_len = 1 << 20;
	char *chunk = xmalloc(chunk_len);
	int rc = CLI_OK;

	/* a huge file needs bigger parts to stay within 10,000 of them */
	while (size && uo.part_size * 10000 / 2 < size / 4 && uo.part_size < TRANSFER_MAX_PART_SIZE)
		uo.part_size *= 2;
	up = uploader_create(store, url->key, &uo);
	progress_init(&prog, url->key, size);
	for (;;) {
		ssize_t n = read(fd, chunk, chunk_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "cloudmount: %s: reading: %s\n", what, strerror(errno));
			uploader_abort(up);
			rc = CLI_FAIL;
			goto out_free;
		}
		if (n == 0)
			break;
		st = uploader_write(up, chunk, (size_t)n, &err);
		if (st != CM_OK)
			break;
		progress_add(&prog, (uint64_t)n);
	}
	if (st == CM_OK)
		st = uploader_finish(up, NULL, &err);
	else
		uploader_abort(up);
	progress_draw(&prog, 1);
	if (st != CM_OK)
		rc = cli_report(what, &err);
out_free:
	uploader_destroy(up);
	free(chunk);
	store_destroy(store);
	return rc;
}

int cmd_cp(int argc, char **argv)
{
	static const char usage[] =
		"usage: cloudmount cp SRC DST [options]\n"
		"Copy between a local file (or - for stdin/stdout) and s3://BUCKET/KEY, either way.\n"
		"A DST ending in '/' (or a local directory) takes the source's file name.\n"
		"Large files go up as multipart uploads with parallel parts in bounded memory,\n"
		"and come down with parallel ranged reads. A progress bar is shown on a terminal.\n"
		"  -q, --quiet       no progress bar";
	static const char *const flags[] = { "-q", "--quiet", NULL };
	int flag_set[2] = { 0, 0 };
	struct cli_conn_opts o;
	struct cli_ctx ctx;
	const char *pos[2] = { NULL, NULL };
	int n_pos, rc;
	struct s3_url url;

	cli_conn_opts_init(&o);
	rc = parse_args(argc, argv, &o, pos, 2, &n_pos, flags, flag_set, usage);
	if (rc != CLI_OK)
		return rc;
	if (n_pos != 2) {
		fprintf(stderr, "%s\n", usage);
		return CLI_USAGE;
	}
	if (cli_is_s3_url(pos[0]) == cli_is_s3_url(pos[1])) {
		fprintf(stderr, "cloudmount: cp copies between a local file and s3://, one of each\n");
		return CLI_USAGE;
	}
	if (cli_is_s3_url(pos[1])) {
		/* upload */
		int fd = strcmp(pos[0], "-") ? open(pos[0], O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
		struct stat st;
		if (fd < 0) {
			fprintf(stderr, "cloudmount: %s: %s\n", pos[0], strerror(errno));
			return CLI_FAIL;
		}
		if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
			fprintf(stderr, "cloudmount: %s is a directory\n", pos[0]);
			close(fd);
			return CLI_USAGE;
		}
		if (cli_parse_s3_url(pos[1], &url) < 0) {
			close(fd);
			return CLI_USAGE;
		}
		if (!*url.key || url.key[strlen(url.key) - 1] == '/') {
			char *copy = xstrdup(pos[0]);
			char *k;
			if (!strcmp(pos[0], "-")) {
				fprintf(stderr, "cloudmount: name the key when copying from stdin\n");
				free(copy);
				close(fd);
				s3_url_release(&url);
				return CLI_USAGE;
			}
			k = xasprintf("%s%s", url.key, basename(copy));
			free(url.key);
			url.key = k;
			free(copy);
		}
		rc = cli_ctx_init(&ctx, &o, 0);
		if (rc == CLI_OK) {
			if (flag_set[0] || flag_set[1])
				rc = upload(&ctx, fd, 0, &url, pos[1]);
			else
				rc = upload(&ctx, fd, S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0, &url, pos[1]);
			cli_ctx_release(&ctx);
		}
		if (fd != STDIN_FILENO)
			close(fd);
		s3_url_release(&url);
		return rc;
	}
	/* download */
	if (cli_parse_s3_url(pos[0], &url) < 0)
		return CLI_USAGE;
	if (!*url.key) {
		fprintf(stderr, "cloudmount: %s names no key\n", pos[0]);
		s3_url_release(&url);
		return CLI_USAGE;
	}
	{
		struct stat st;
		char *dest;
		char *tmp;
		int fd;
		if (!strcmp(pos[1], "-")) {
			rc = cli_ctx_init(&ctx, &o, 0);
			if (rc == CLI_OK) {
				rc = download(&ctx, &url, STDOUT_FILENO, pos[0], 0);
				cli_ctx_release(&ctx);
			}
			s3_url_release(&url);
			return rc;
		}
		if (stat(pos[1], &st) == 0 && S_ISDIR(st.st_mode)) {
			const char *base = strrchr(url.key, '/') ? strrchr(url.key, '/') + 1 : url.key;
			dest = xasprintf("%s/%s", pos[1], base);
		} else {
			dest = xstrdup(pos[1]);
		}
		/* write beside the destination and rename, so a failure leaves no half file */
		tmp = xasprintf("%s.cloudmount-partial", dest);
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			fprintf(stderr, "cloudmount: %s: %s\n", tmp, strerror(errno));
			free(tmp);
			free(dest);
			s3_url_release(&url);
			return CLI_FAIL;
		}
		rc = cli_ctx_init(&ctx, &o, 0);
		if (rc == CLI_OK) {
			rc = download(&ctx, &url, fd, pos[0], !(flag_set[0] || flag_set[1]));
			cli_ctx_release(&ctx);
		}
		if (close(fd) < 0 && rc == CLI_OK) {
			fprintf(stderr, "cloudmount: %s: %s\n", dest, strerror(errno));
			rc = CLI_FAIL;
		}
		if (rc == CLI_OK && rename(tmp, dest) < 0) {
			fprintf(stderr, "cloudmount: %s: %s\n", dest, strerror(errno));
			rc = CLI_FAIL;
		}
		if (rc != CLI_OK)
			unlink(tmp);
		free(tmp);
		free(dest);
	}
	s3_url_release(&url);
	return rc;
}

/*
 * Walk every key under prefix (no delimiter), calling fn for each page.
 * Returns the first error.
 */
static enum cm_status walk_keys(struct store *store, const char *prefix,
				int (*fn)(void *arg, const struct s3_list_page *page), void *arg,
				struct cm_err *err)
{
	char *token = NULL;
	enum cm_status st = CM_OK;

	do {
		struct s3_list_page page;
		st = store_list(store, prefix, NULL, token, NULL, 0, &page, err);
		if (st != CM_OK)
			break;
		free(token);
		token = page.is_truncated && page.next_token ? xstrdup(page.next_token) : NULL;
		if (page.is_truncated && !page.next_token)
			st = cm_err_set(err, CM_E_PROTOCOL, "truncated listing without a continuation token");
		if (st == CM_OK && fn(arg, &page) != 0)
			st = cm_err_set(err, CM_E_CANCELLED, "stopped");
		s3_list_page_release(&page);
	} while (token && st == CM_OK);
	free(token);
	return st;
}

struct du_totals {
	uint64_t bytes;
	uint64_t objects;
};

static int du_page(void *arg, const struct s3_list_page *page)
{
	struct du_totals *t = arg;

	for (size_t i = 0; i < page->n_objects; i++) {
		t->bytes += page->objects[i].size;
		t->objects++;
	}
	return 0;
}

int cmd_du(int argc, char **argv)
{
	static const char usage[] =
		"usage: cloudmount du [-h] [--json] s3://BUCKET[/PREFIX] [options]\n"
		"Total size and object count under PREFIX (the whole bucket without one).\n"
		"Prints \"BYTES OBJECTS URL\"; -H for human-readable sizes, --json for a JSON object.";
	static const char *const flags[] = { "-H", "--human-readable", "--json", NULL };
	int flag_set[3] = { 0, 0, 0 };
	struct cli_conn_opts o;
	struct cli_ctx ctx;
	struct s3_url url;
	struct du_totals t = { 0, 0 };
	const char *pos[1] = { NULL };
	struct store *store;
	struct cm_err err;
	enum cm_status st;
	int n_pos, rc;

	cli_conn_opts_init(&o);
	rc = parse_args(argc, argv, &o, pos, 1, &n_pos, flags, flag_set, usage);
	if (rc != CLI_OK)
		return rc;
	if (n_pos != 1) {
		fprintf(stderr, "%s\n", usage);
		return CLI_USAGE;
	}
	if (cli_parse_s3_url(pos[0], &url) < 0)
		return CLI_USAGE;
	rc = cli_ctx_init(&ctx, &o, 0);
	if (rc != CLI_OK) {
		s3_url_release(&url);
		return rc;
	}
	store = store_s3_create(ctx.client, url.bucket, NULL);
	st = walk_keys(store, url.key, du_page, &t, &err);
	if (st != CM_OK) {
		rc = cli_report(pos[0], &err);
	} else if (flag_set[2]) {
		printf("{\"bytes\": %" PRIu64 ", \"objects\": %" PRIu64 "}\n", t.bytes, t.objects);
	} else if (flag_set[0] || flag_set[1]) {
		char h[24];
		printf("%s %" PRIu64 " %s\n", util_human_bytes(t.bytes, h, sizeof(h)), t.objects, pos[0]);
	} else {
		printf("%" PRIu64 " %" PRIu64 " %s\n", t.bytes, t.objects, pos[0]);
	}
	store_destroy(store);
	cli_ctx_release(&ctx);
	s3_url_release(&url);
	return rc;
}

struct rm_state {
	struct store *store;
	struct cm_err *err;
	uint64_t deleted;
	int failed;
};

static int rm_page(void *arg, const struct s3_list_page *page)
{
	struct rm_state *r = arg;
	const char **keys;
	struct s3_delete_result res;
	enum cm_status st;

	if (!page->n_objects)
		return 0;
	keys = xcalloc(page->n_objects, sizeof(*keys));
	for (size_t i = 0; i < page->n_objects; i++)
		keys[i] = page->objects[i].key;
	st = store_del_many(r->store, keys, page->n_objects, &res, r->err);
	free(keys);
	if (st != CM_OK)
		return -1;
	for (size_t i = 0; i < res.n_failures; i++) {
		fprintf(stderr, "cloudmount: could not delete %s: %s %s\n", res.failures[i].key,
			res.failures[i].code, res.failures[i].message);
		r->failed = 1;
	}
	r->deleted += page->n_objects - res.n_failures;
	s3_delete_result_release(&res);
	return 0;
}

int cmd_rm(int argc, char **argv)
{
	static const char usage[] =
		"usage: cloudmount rm [-r] s3://BUCKET/KEY [options]\n"
		"Delete an object; with -r every object under the prefix (batches of 1,000).";
	static const char *const flags[] = { "-r", "--recursive", NULL };
	int flag_set[2] = { 0, 0 };
	struct cli_conn_opts o;
	struct cli_ctx ctx;
	struct s3_url url;
	const char *pos[1] = { NULL };
	struct store *store;
	struct cm_err err;
	enum cm_status st;
	int n_pos, rc;

	cli_conn_opts_init(&o);
	rc = parse_args(argc, argv, &o, pos, 1, &n_pos, flags, flag_set, usage);
	if (rc != CLI_OK)
		return rc;
	if (n_pos != 1) {
		fprintf(stderr, "%s\n", usage);
		return CLI_USAGE;
	}
	if (cli_parse_s3_url(pos[0], &url) < 0)
		return CLI_USAGE;
	if (!*url.key && !(flag_set[0] || flag_set[1])) {
		fprintf(stderr, "cloudmount: %s names no key (use -r to empty a bucket)\n", pos[0]);
		s3_url_release(&url);
		return CLI_USAGE;
	}
	rc = cli_ctx_init(&ctx, &o, 0);
	if (rc != CLI_OK) {
		s3_url_release(&url);
		return rc;
	}
	store = store_s3_create(ctx.client, url.bucket, NULL);
	if (flag_set[0] || flag_set[1]) {
		struct rm_state r = { store, &err, 0, 0 };
		st = walk_keys(store, url.key, rm_page, &r, &err);
		if (st == CM_OK && r.failed)
			rc = CLI_FAIL;
	} else {
		st = store_del(store, url.key, &err);
	}
	if (st != CM_OK)
		rc = cli_report(pos[0], &err);
	store_destroy(store);
	cli_ctx_release(&ctx);
	s3_url_release(&url);
	return rc;
}

int cmd_stat(int argc, char **argv)
{
	static const char usage[] = "usage: cloudmount stat s3://BUCKET[/KEY] [options]\n"
				    "Show an object's size, ETag, time, type and metadata; or check a bucket.";
	struct cli_conn_opts o;
	struct cli_ctx ctx;
	struct s3_url url;
	const char *pos[1] = { NULL };
	struct cm_err err;
	enum cm_status st;
	int n_pos, rc;

	cli_conn_opts_init(&o);
	rc = parse_args(argc, argv, &o, pos, 1, &n_pos, NULL, NULL, usage);
	if (rc != CLI_OK)
		return rc;
	if (n_pos != 1) {
		fprintf(stderr, "%s\n", usage);
		return CLI_USAGE;
	}
	if (cli_parse_s3_url(pos[0], &url) < 0)
		return CLI_USAGE;
	rc = cli_ctx_init(&ctx, &o, 0);
	if (rc != CLI_OK) {
		s3_url_release(&url);
		return rc;
	}
	if (!*url.key) {
		st = s3_head_bucket(ctx.client, url.bucket, &err);
		if (st == CM_OK)
			printf("bucket: %s\nendpoint: %s\nstatus: reachable\n", url.bucket,
			       s3_client_endpoint(ctx.client));
	} else {
		struct s3_object_head h;
		st = s3_head_object(ctx.client, url.bucket, url.key, &h, &err);
		if (st == CM_OK) {
			char when[32];
			format_time(&h.last_modified, when, sizeof(when));
			printf("key: %s\nsize: %" PRIu64 "\netag: %s\nlast-modified: %s\ncontent-type: %s\n",
			       url.key, h.size, h.etag, when, h.content_type ? h.content_type : "");
			for (size_t i = 0; i < h.meta.n; i++)
				printf("x-amz-meta-%s: %s\n", h.meta.names[i], h.meta.values[i]);
			s3_object_head_release(&h);
		}
	}
	if (st != CM_OK)
		rc = cli_report(pos[0], &err);
	cli_ctx_release(&ctx);
	s3_url_release(&url);
	return rc;
}

int cmd_presign(int argc, char **argv)
{
	static const char usage[] =
		"usage: cloudmount presign s3://BUCKET/KEY [--expires SECONDS] [--put] [options]\n"
		"Print a presigned URL (GET by default) valid for SECONDS (default 3600, at most 604800).";
	struct cli_conn_opts o;
	struct cli_ctx ctx;
	struct s3_url url;
	const char *pos[1] = { NULL };
	struct cm_err err;
	long expires = 3600;
	int put = 0, n_pos = 0, rc;
	char *signed_url;

	cli_conn_opts_init(&o);
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("%s\n%s", usage, cli_conn_help);
			return 0;
		}
		if (!strcmp(argv[i], "--put")) {
			put = 1;
			continue;
		}
		if (!strcmp(argv[i], "--expires") && i + 1 < argc) {
			char *end;
			expires = strtol(argv[++i], &end, 10);
			if (*end || expires < 1 || expires > 604800) {
				fprintf(stderr, "cloudmount: --expires takes 1 to 604800 seconds\n");
				return CLI_USAGE;
			}
			continue;
		}
		rc = cli_conn_opt(&o, argc, argv, &i);
		if (rc < 0)
			return CLI_USAGE;
		if (rc > 0)
			continue;
		if (n_pos == 1 || argv[i][0] == '-') {
			fprintf(stderr, "%s\n", usage);
			return CLI_USAGE;
		}
		pos[n_pos++] = argv[i];
	}
	if (n_pos != 1 || cli_parse_s3_url(pos[0], &url) < 0)
		return CLI_USAGE;
	rc = cli_ctx_init(&ctx, &o, 1);
	if (rc != CLI_OK) {
		s3_url_release(&url);
		return rc;
	}
	if (s3_presign(ctx.client, put ? "PUT" : "GET", url.bucket, url.key, expires, &signed_url, &err) != CM_OK) {
		rc = cli_report(pos[0], &err);
	} else {
		printf("%s\n", signed_url);
		free(signed_url);
	}
	cli_ctx_release(&ctx);
	s3_url_release(&url);
	return rc;
}
