/*
 * daemon.c - the mount manager (see daemon.h).
 *
 * Threads: the main thread runs a poll() loop over the control socket, the
 * clients, and a wake-up pipe; it owns every client and every child process.
 * A health thread probes the mounts every HEALTH_PERIOD_MS (process alive,
 * statfs within STATFS_TIMEOUT_MS in a short-lived thread, a HEAD of the bucket
 * through its own S3 client) and a usage thread computes bucket usage on
 * request; both post results into the slots under mgr.lock and wake the main
 * thread, which turns them into state changes, events and answers. No
 * network call is made with mgr.lock held.
 *
 * A slot's state machine:
 *   unmounted --mount--> mounting --(in /proc/mounts)--> mounted
 *   mounting/mounted --(process died)--> error --(backoff)--> mounting
 *   mounted <--(S3 unreachable / statfs slow | probe OK)--> degraded
 *   any --unmount--> unmounted
 */
#define FUSE_USE_VERSION 35
#include "manager/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "common/log.h"
#include "common/util.h"
#include "config/remotes.h"
#include "manager/control.h"
#include "platform/platform.h"

#define HEALTH_PERIOD_MS 2000
#define STATFS_TIMEOUT_MS 5000
#define MOUNT_TIMEOUT_MS 60000
#define USAGE_MAX_AGE_MS (5 * 60 * 1000)
#define MAX_CLIENTS 64

enum mstate { ST_UNMOUNTED = 0, ST_MOUNTING, ST_MOUNTED, ST_DEGRADED, ST_ERROR };

static const char *const state_names[] = { "unmounted", "mounting", "mounted", "degraded", "error" };

struct slot {
	struct remote remote;           /* a copy; main thread only */
	char *url;
	char *mountpoint;
	char *stats_path;
	char *log_path;
	enum mstate state;              /* protected by mgr.lock */
	char reason[256];               /* protected by mgr.lock */
	pid_t pid;                      /* protected by mgr.lock; 0 when none */
	int ours;                       /* our child (waitpid works); main thread */
	int want_mounted;               /* the user's intent; main thread */
	int backoff_ms;                 /* main thread */
	int64_t restart_at;             /* main thread; 0: none planned */
	int64_t mount_started;          /* main thread */
	int restarts;                   /* main thread */
	/* health, written by the health thread under mgr.lock */
	int s3_ok;
	int statfs_ok;
	char health_reason[256];
	int64_t health_at;
	/* usage */
	int usage_valid;                /* protected by mgr.lock */
	uint64_t usage_bytes, usage_objects;    /* protected by mgr.lock */
	int64_t usage_at;               /* protected by mgr.lock (monotonic) */
	time_t usage_wall;              /* protected by mgr.lock */
	int usage_running;              /* protected by mgr.lock */
	char usage_error[256];          /* protected by mgr.lock */
};

struct client {
	int fd;
	int subscribed;
	char *pending_cmd;              /* "mount" or "usage": answer when the slot settles */
	char *pending_name;
	int64_t pending_deadline;
	struct buf in;
};

static struct {
	pthread_mutex_t lock;
	struct slot *slots;             /* array; its size changes only on reload (main thread, lock held) */
	size_t n_slots;
	struct client clients[MAX_CLIENTS];     /* main thread */
	int listen_fd;
	int wake_pipe[2];
	volatile sig_atomic_t stop;
	char *exe;
	char *conf_path;
	int verbose;
	pthread_t health_thread;
	pthread_t usage_thread;
	pthread_cond_t usage_cond;
	int threads_stop;               /* protected by lock */
} mgr;

static int64_t now_ms(void)
{
	return util_now_ms();
}

static void wake_main(void)
{
	char c = 1;
	if (write(mgr.wake_pipe[1], &c, 1) < 0) {
		/* the pipe is full: the main thread will wake anyway */
	}
}

static void on_signal(int sig)
{
	(void)sig;
	mgr.stop = 1;
	wake_main();
}

/* The slot of remote name. Slots whose remote moved away in load_config have no name. */
static struct slot *find_slot(const char *name)
{
	for (size_t i = 0; i < mgr.n_slots; i++)
		if (mgr.slots[i].remote.name && !strcmp(mgr.slots[i].remote.name, name))
			return &mgr.slots[i];
	return NULL;
}

/* ---- events ---- */

static cJSON *slot_json(struct slot *s)
{
	cJSON *o = cJSON_CreateObject();
	FILE *f;

	cJSON_AddStringToObject(o, "name", s->remote.name);
	cJSON_AddStringToObject(o, "url", s->url);
	cJSON_AddStringToObject(o, "mountpoint", s->mountpoint);
	cJSON_AddStringToObject(o, "state", state_names[s->state]);
	cJSON_AddStringToObject(o, "reason", s->reason);
	cJSON_AddBoolToObject(o, "automount", s->remote.automount);
	cJSON_AddNumberToObject(o, "pid", s->pid);
	cJSON_AddNumberToObject(o, "restarts", s->restarts);
	if (s->usage_valid) {
		cJSON *u = cJSON_AddObjectToObject(o, "usage");
		cJSON_AddNumberToObject(u, "bytes", (double)s->usage_bytes);
		cJSON_AddNumberToObject(u, "objects", (double)s->usage_objects);
		cJSON_AddNumberToObject(u, "at", (double)s->usage_wall);
	} else {
		cJSON_AddNullToObject(o, "usage");
	}
	/* the mount process's own counters, when it is up */
	f = s->pid ? fopen(s->stats_path, "r") : NULL;
	if (f) {
		char buf[4096];
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		cJSON *st;
		fclose(f);
		buf[n] = '\0';
		st = cJSON_Parse(buf);
		if (st) {
			cJSON *t = cJSON_AddObjectToObject(o, "traffic");
			static const char *const keys[] = { "requests", "retries", "failures", "bytes_up", "bytes_down",
							    "in_flight", "commits", "commit_failures", "memory_used",
							    "staging_bytes", "dirty_files", "dirty_bytes", NULL };
			for (int i = 0; keys[i]; i++) {
				cJSON *v = cJSON_GetObjectItemCaseSensitive(st, keys[i]);
				if (cJSON_IsNumber(v))
					cJSON_AddNumberToObject(t, keys[i], v->valuedouble);
			}
			cJSON_Delete(st);
		}
	}
	return o;
}

static void send_json(int fd, cJSON *o)
{
	char *text = cJSON_PrintUnformatted(o);
	if (text) {
		ctl_write_line(fd, text);
		free(text);
	}
}

/* Tell every subscriber about s. Caller holds the lock. */
static void emit_state(struct slot *s)
{
	cJSON *ev = slot_json(s);

	cJSON_AddStringToObject(ev, "event", "state");
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (mgr.clients[i].fd >= 0 && mgr.clients[i].subscribed)
			send_json(mgr.clients[i].fd, ev);
	cJSON_Delete(ev);
}

/* Change state (and reason); emit an event when anything changed. Caller holds lock. */
static void set_state(struct slot *s, enum mstate st, const char *reason)
{
	if (s->state == st && !strcmp(s->reason, reason ? reason : ""))
		return;
	s->state = st;
	snprintf(s->reason, sizeof(s->reason), "%s", reason ? reason : "");
	log_info("%s: %s%s%s", s->remote.name, state_names[st], *s->reason ? ": " : "", s->reason);
	emit_state(s);
}

/* ---- mounts ---- */

/* Whether path is a fuse.cloudmount mount point now (/proc/mounts). */
static int is_mounted(const char *path)
{
	FILE *f = fopen("/proc/mounts", "r");
	char line[4096];
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		char src[1024], dst[2048], type[64];
		if (sscanf(line, "%1023s %2047s %63s", src, dst, type) == 3 && !strcmp(dst, path) &&
		    !strcmp(type, "fuse.cloudmount"))
			found = 1;
	}
	fclose(f);
	return found;
}

static int pid_alive(pid_t pid)
{
	char path[64], state = 0;
	FILE *f;

	if (pid <= 0 || kill(pid, 0) < 0)
		return 0;
	/* a zombie is not alive */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%*d %*s %c", &state) != 1)
			state = 0;
		fclose(f);
	}
	return state != 'Z';
}

/* The pid a mount process wrote into its stats file, or 0. */
static pid_t stats_pid(const char *path)
{
	FILE *f = fopen(path, "r");
	char buf[4096];
	size_t n;
	cJSON *j, *p;
	pid_t pid = 0;

	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	j = cJSON_Parse(buf);
	p = cJSON_GetObjectItemCaseSensitive(j, "pid");
	if (cJSON_IsNumber(p))
		pid = (pid_t)p->valueint;
	cJSON_Delete(j);
	return pid;
}

/* Detach a mount whose process is gone ("Transport endpoint is not connected"). */
static void clean_stale(const char *path)
{
	if (!is_mounted(path))
		return;
	log_warn("cleaning the stale mount at %s", path);
	if (umount2(path, MNT_DETACH) == 0)
		return;
	if (fork() == 0) {
		execlp("fusermount3", "fusermount3", "-uz", path, (char *)NULL);
		_exit(127);
	}
}

/* The last line of a log file that says something, for error reasons. */
static void last_log_line(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "r");
	char line[512];

	out[0] = '\0';
	if (!f)
		return;
	if (fseek(f, -4096, SEEK_END) < 0)
		rewind(f);
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "cloudmount: ");
		if (!p)
			p = strstr(line, "error: ");
		if (p) {
			snprintf(out, len, "%s", p);
			out[strcspn(out, "\n")] = '\0';
		}
	}
	fclose(f);
}

/* Start the mount process for s. Caller holds the lock. */
static void spawn_mount(struct slot *s)
{
	pid_t pid;

	clean_stale(s->mountpoint);
	util_mkdir_p(s->mountpoint, 0700);
	unlink(s->stats_path);
	pid = fork();
	if (pid < 0) {
		set_state(s, ST_ERROR, strerror(errno));
		return;
	}
	if (pid == 0) {
		int log = open(s->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		int null = open("/dev/null", O_RDONLY);
		setsid();
		if (null >= 0)
			dup2(null, STDIN_FILENO);
		if (log >= 0) {
			dup2(log, STDOUT_FILENO);
			dup2(log, STDERR_FILENO);
		}
		execl(mgr.exe, mgr.exe, "mount", s->remote.name, s->mountpoint, "--direct", "-f", "--stats-file",
		      s->stats_path, mgr.verbose ? "-v" : NULL, (char *)NULL);
		_exit(127);
	}
	s->pid = pid;
	s->ours = 1;
	s->mount_started = now_ms();
	s->restart_at = 0;
	set_state(s, ST_MOUNTING, "");
}

/* Unmount s (the mount process commits and exits). Returns 0 or an errno. */
static int do_unmount(struct slot *s)
{
	if (!is_mounted(s->mountpoint))
		return 0;
	if (umount2(s->mountpoint, 0) == 0)
		return 0;
	if (errno == EPERM) {
		pid_t pid = fork();
		int status;
		if (pid == 0) {
			execlp("fusermount3", "fusermount3", "-u", s->mountpoint, (char *)NULL);
			_exit(127);
		}
		if (pid > 0 && waitpid(pid, &status, 0) > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
			return 0;
		return EBUSY;
	}
	return errno;
}

/* ---- slots from the config ---- */

static void slot_init(struct slot *s, const struct remote *r)
{
	struct remotes tmp = { 0 };
	char *rt = platform_runtime_dir();
	char *logdir = util_cache_dir();

	memset(s, 0, sizeof(*s));
	remotes_add(&tmp, r);
	s->remote = tmp.list[0];
	free(tmp.list);
	s->url = remote_url(r);
	s->mountpoint = remote_mountpoint(r);
	s->stats_path = xasprintf("%s/%s.stats.json", rt, r->name);
	mkdir(logdir, 0700);
	s->log_path = xasprintf("%s/mount-%s.log", logdir, r->name);
	s->backoff_ms = 1000;
	s->s3_ok = s->statfs_ok = 1;
	free(rt);
	free(logdir);
}

static void slot_release(struct slot *s)
{
	remote_release(&s->remote);
	free(s->url);
	free(s->mountpoint);
	free(s->stats_path);
	free(s->log_path);
}

/* Take over a mount left by an earlier daemon, if its process is alive. Caller holds lock. */
static void adopt(struct slot *s)
{
	pid_t pid;

	if (!is_mounted(s->mountpoint))
		return;
	pid = stats_pid(s->stats_path);
	if (pid && pid_alive(pid)) {
		s->pid = pid;
		s->ours = 0;
		s->want_mounted = 1;
		set_state(s, ST_MOUNTED, "");
		log_info("%s: adopted the running mount (pid %d)", s->remote.name, (int)pid);
	} else {
		clean_stale(s->mountpoint);
	}
}

/* (Re)read the config. Keeps the state of remotes that stay. Returns 0 or -1 (message logged). */
static int load_config(char *err_msg, size_t err_len)
{
	struct remotes rs;
	struct cm_err err;
	struct slot *slots;

	cm_err_clear(&err);
	if (remotes_load(mgr.conf_path, &rs, &err) != CM_OK) {
		snprintf(err_msg, err_len, "%s", err.message);
		log_error("%s", err.message);
		return -1;
	}
	slots = xcalloc(rs.n ? rs.n : 1, sizeof(*slots));
	pthread_mutex_lock(&mgr.lock);
	for (size_t i = 0; i < rs.n; i++) {
		struct slot *old = find_slot(rs.list[i].name);
		if (old) {
			slots[i] = *old;
			remote_release(&slots[i].remote);
			{
				struct remotes tmp = { 0 };
				remotes_add(&tmp, &rs.list[i]);
				slots[i].remote = tmp.list[0];
				free(tmp.list);
			}
			old->remote.name = NULL; /* moved */
		} else {
			slot_init(&slots[i], &rs.list[i]);
			adopt(&slots[i]);
		}
	}
	for (size_t i = 0; i < mgr.n_slots; i++)
		if (mgr.slots[i].remote.name) /* removed from the config: forget it (its mount stays) */
			slot_release(&mgr.slots[i]);
	free(mgr.slots);
	mgr.slots = slots;
	mgr.n_slots = rs.n;
	pthread_mutex_unlock(&mgr.lock);
	remotes_release(&rs);
	return 0;
}

/* ---- health ---- */

struct statfs_probe {
	char *path;
	int done, ok;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int abandoned;
};

static void statfs_probe_free(struct statfs_probe *p)
{
	free(p->path);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static void *statfs_main(void *arg)
{
	struct statfs_probe *p = arg;
	struct statvfs st;
	int ok = statvfs(p->path, &st) == 0, abandoned;

	pthread_mutex_lock(&p->lock);
	p->ok = ok;
	p->done = 1;
	abandoned = p->abandoned;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	if (abandoned)
		statfs_probe_free(p);
	return NULL;
}

/* statfs(path) within STATFS_TIMEOUT_MS: a hung mount must not hang us. */
static int statfs_in_time(const char *path)
{
	struct statfs_probe *p = xcalloc(1, sizeof(*p));
	struct timespec until;
	pthread_t t;
	int ok;

	p->path = xstrdup(path);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	if (pthread_create(&t, NULL, statfs_main, p) != 0) {
		statfs_probe_free(p);
		return 1;
	}
	pthread_detach(t);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += STATFS_TIMEOUT_MS / 1000;
	pthread_mutex_lock(&p->lock);
	while (!p->done && pthread_cond_timedwait(&p->cond, &p->lock, &until) == 0)
		;
	ok = p->done && p->ok;
	if (!p->done) {
		p->abandoned = 1; /* the thread frees it when statfs returns, if ever */
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	pthread_mutex_unlock(&p->lock);
	statfs_probe_free(p);
	return ok;
}

/* Reach the remote's bucket with a HEAD (short timeouts, no retry). */
/*
 * HEAD the bucket with these connection options (short timeouts, no
 * retries). Returns 1 if it answers; else 0 with a plain reason and, when
 * hint is not NULL, what the user can do about it (static text or NULL).
 */
static int s3_probe(struct cli_conn_opts *o, const char *bucket, char *reason, size_t len, const char **hint)
{
	struct cli_ctx ctx;
	struct cm_err err;
	int ok;

	o->max_retries = -1;
	o->connect_timeout_ms = 3000;
	o->concurrency = 1;
	if (hint)
		*hint = NULL;
	if (cli_ctx_init(&ctx, o, 0) != CLI_OK) {
		snprintf(reason, len, "cannot set up an S3 client (configuration or credentials)");
		return 0;
	}
	cm_err_clear(&err);
	ok = s3_head_bucket(ctx.client, bucket, &err) == CM_OK;
	if (!ok) {
		char line[400];
		snprintf(reason, len, "S3 unreachable: %s", cm_err_format(&err, line, sizeof(line)));
		if (hint)
			*hint = cli_hint(err.status);
	}
	cli_ctx_release(&ctx);
	return ok;
}

static int s3_reachable(const struct remote *r, char *reason, size_t len)
{
	struct cli_conn_opts o;

	cli_conn_opts_init(&o);
	cli_conn_from_remote(&o, r);
	return s3_probe(&o, r->bucket, reason, len, NULL);
}

static void *health_main(void *arg)
{
	(void)arg;
	for (;;) {
		size_t n;
		pthread_mutex_lock(&mgr.lock);
		if (mgr.threads_stop) {
			pthread_mutex_unlock(&mgr.lock);
			return NULL;
		}
		n = mgr.n_slots;
		pthread_mutex_unlock(&mgr.lock);
		for (size_t i = 0; i < n; i++) {
			struct remote r;
			struct remotes tmp = { 0 };
			char *mp, reason[256] = "";
			int probe, statfs_ok = 1, s3_ok;
			pthread_mutex_lock(&mgr.lock);
			if (i >= mgr.n_slots) {
				pthread_mutex_unlock(&mgr.lock);
				break;
			}
			probe = mgr.slots[i].state == ST_MOUNTED || mgr.slots[i].state == ST_DEGRADED;
			remotes_add(&tmp, &mgr.slots[i].remote);
			mp = xstrdup(mgr.slots[i].mountpoint);
			pthread_mutex_unlock(&mgr.lock);
			r = tmp.list[0];
			free(tmp.list);
			if (probe) {
				statfs_ok = statfs_in_time(mp);
				s3_ok = s3_reachable(&r, reason, sizeof(reason));
				if (!statfs_ok)
					snprintf(reason, sizeof(reason), "the mount does not answer (statfs took over %d s)",
						 STATFS_TIMEOUT_MS / 1000);
				pthread_mutex_lock(&mgr.lock);
				if (i < mgr.n_slots && !strcmp(mgr.slots[i].remote.name, r.name)) {
					mgr.slots[i].statfs_ok = statfs_ok;
					mgr.slots[i].s3_ok = s3_ok;
					snprintf(mgr.slots[i].health_reason, sizeof(mgr.slots[i].health_reason), "%s", reason);
					mgr.slots[i].health_at = now_ms();
				}
				pthread_mutex_unlock(&mgr.lock);
				wake_main();
			}
			remote_release(&r);
			free(mp);
		}
		for (int t = 0; t < HEALTH_PERIOD_MS / 100; t++) {
			usleep(100 * 1000);
			if (mgr.stop)
				break;
		}
	}
}

/* ---- usage ---- */

static void *usage_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mgr.lock);
	for (;;) {
		struct slot *todo = NULL;
		struct remote r;
		struct remotes tmp = { 0 };
		struct cli_conn_opts o;
		struct cli_ctx ctx;
		struct cm_err err;
		uint64_t bytes = 0, objects = 0;
		char *token = NULL;
		enum cm_status st = CM_OK;
		char name[128];

		while (!mgr.threads_stop) {
			for (size_t i = 0; i < mgr.n_slots && !todo; i++)
				if (mgr.slots[i].usage_running == 1)
					todo = &mgr.slots[i];
			if (todo)
				break;
			pthread_cond_wait(&mgr.usage_cond, &mgr.lock);
		}
		if (mgr.threads_stop)
			break;
		todo->usage_running = 2; /* in progress */
		remotes_add(&tmp, &todo->remote);
		r = tmp.list[0];
		free(tmp.list);
		snprintf(name, sizeof(name), "%s", r.name);
		pthread_mutex_unlock(&mgr.lock);

		cli_conn_opts_init(&o);
		cli_conn_from_remote(&o, &r);
		cm_err_clear(&err);
		if (cli_ctx_init(&ctx, &o, 0) != CLI_OK) {
			st = cm_err_set(&err, CM_E_CONFIG, "cannot set up an S3 client");
		} else {
			char *prefix = *r.prefix ? xasprintf("%s/", r.prefix) : xstrdup("");
			do {
				struct s3_list_page page;
				st = s3_list_objects(ctx.client, r.bucket, prefix, NULL, token, NULL, 0, &page, &err);
				if (st != CM_OK)
					break;
				for (size_t k = 0; k < page.n_objects; k++) {
					bytes += page.objects[k].size;
					objects++;
				}
				free(token);
				token = page.is_truncated && page.next_token ? xstrdup(page.next_token) : NULL;
				s3_list_page_release(&page);
			} while (token);
			free(token);
			free(prefix);
			cli_ctx_release(&ctx);
		}
		remote_release(&r);
		pthread_mutex_lock(&mgr.lock);
		{
			struct slot *s = find_slot(name);
			if (s) {
				s->usage_running = 0;
				if (st == CM_OK) {
					s->usage_valid = 1;
					s->usage_bytes = bytes;
					s->usage_objects = objects;
					s->usage_at = now_ms();
					s->usage_wall = time(NULL);
					s->usage_error[0] = '\0';
				} else {
					char line[256];
					snprintf(s->usage_error, sizeof(s->usage_error), "%s",
						 cm_err_format(&err, line, sizeof(line)));
				}
			}
		}
		wake_main();
	}
	pthread_mutex_unlock(&mgr.lock);
	return NULL;
}

/* Ask the usage thread to (re)compute s. Caller holds lock. */
static void request_usage(struct slot *s)
{
	if (!s->usage_running) {
		s->usage_running = 1;
		pthread_cond_signal(&mgr.usage_cond);
	}
}

/* ---- the main loop's periodic work ---- */

/* Reap children, advance mounting slots, apply health, restart with backoff. Caller holds lock. */
static void tick(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (size_t i = 0; i < mgr.n_slots; i++) {
			struct slot *s = &mgr.slots[i];
			char why[300], last[256];
			if (s->pid != pid)
				continue;
			s->pid = 0;
			if (!s->want_mounted) {
				set_state(s, ST_UNMOUNTED, "");
				break;
			}
			if (s->state == ST_UNMOUNTED) {
				/* mounted again while the unmounted process was finishing */
				spawn_mount(s);
				break;
			}
			last_log_line(s->log_path, last, sizeof(last));
			if (WIFSIGNALED(status))
				snprintf(why, sizeof(why), "the mount process was killed (signal %d)", WTERMSIG(status));
			else
				snprintf(why, sizeof(why), "the mount process exited (%d)%s%s", WEXITSTATUS(status),
					 *last ? ": " : "", last);
			set_state(s, ST_ERROR, why);
			clean_stale(s->mountpoint);
			s->restart_at = now_ms() + s->backoff_ms;
			s->backoff_ms = s->backoff_ms * 2 > 60000 ? 60000 : s->backoff_ms * 2;
			break;
		}
	}
	for (size_t i = 0; i < mgr.n_slots; i++) {
		struct slot *s = &mgr.slots[i];
		if (s->pid && !s->ours && !pid_alive(s->pid)) {
			/* an adopted mount process died: we learn it by polling */
			s->pid = 0;
			if (s->want_mounted) {
				set_state(s, ST_ERROR, "the mount process died");
				clean_stale(s->mountpoint);
				s->restart_at = now_ms() + s->backoff_ms;
			} else {
				set_state(s, ST_UNMOUNTED, "");
			}
		}
		if (s->state == ST_MOUNTING && s->pid && is_mounted(s->mountpoint)) {
			s->backoff_ms = 1000;
			s->s3_ok = s->statfs_ok = 1;
			s->health_at = 0;
			set_state(s, ST_MOUNTED, "");
		} else if (s->state == ST_MOUNTING && now_ms() - s->mount_started > MOUNT_TIMEOUT_MS) {
			if (s->pid)
				kill(s->pid, SIGTERM);
			set_state(s, ST_ERROR, "the mount did not come up in time");
		}
		if ((s->state == ST_MOUNTED || s->state == ST_DEGRADED) && s->health_at) {
			if (!s->s3_ok || !s->statfs_ok)
				set_state(s, ST_DEGRADED, s->health_reason);
			else
				set_state(s, ST_MOUNTED, "");
		}
		if (s->restart_at && now_ms() >= s->restart_at && s->want_mounted && !s->pid) {
			s->restarts++;
			spawn_mount(s);
		}
	}
}

/* ---- clients ---- */

static void answer_error(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void answer_error(int fd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	cJSON *o = cJSON_CreateObject();

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON_AddBoolToObject(o, "ok", 0);
	cJSON_AddStringToObject(o, "error", msg);
	send_json(fd, o);
	cJSON_Delete(o);
}

/* A string field of a request, or NULL when absent, not a string or empty. */
static const char *req_string(const cJSON *req, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, key);

	return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/*
 * {"cmd":"probe", "url", "endpoint", "region", "path_style", "profile",
 * "access_key_id", "secret"}: can these settings reach the bucket? For the
 * tray's "Test connection", before anything is saved. The secret lives in
 * this request only: it is never logged or kept.
 */
static void answer_probe(int fd, const cJSON *req)
{
	const char *url = req_string(req, "url");
	const cJSON *ps = cJSON_GetObjectItemCaseSensitive(req, "path_style");
	struct cli_conn_opts o;
	char bucket[64], reason[512] = "";
	const char *hint = NULL, *b, *end;
	cJSON *out;
	int ok;

	if (!url || strncmp(url, "s3://", 5) != 0) {
		answer_error(fd, "the URL must look like s3://BUCKET or s3://BUCKET/PREFIX");
		return;
	}
	b = url + 5;
	end = strchr(b, '/');
	if (!end)
		end = b + strlen(b);
	if (end == b || (size_t)(end - b) >= sizeof(bucket)) {
		answer_error(fd, "the URL names no valid bucket");
		return;
	}
	memcpy(bucket, b, (size_t)(end - b));
	bucket[end - b] = '\0';
	cli_conn_opts_init(&o);
	o.endpoint = req_string(req, "endpoint");
	o.region = req_string(req, "region");
	o.profile = req_string(req, "profile");
	if (cJSON_IsBool(ps))
		o.addressing = cJSON_IsTrue(ps) ? S3_ADDR_PATH : S3_ADDR_VIRTUAL;
	o.access_key_id = req_string(req, "access_key_id");
	o.secret_access_key = req_string(req, "secret");
	ok = s3_probe(&o, bucket, reason, sizeof(reason), &hint);
	out = cJSON_CreateObject();
	cJSON_AddBoolToObject(out, "ok", ok);
	if (!ok) {
		cJSON_AddStringToObject(out, "error", reason);
		if (hint)
			cJSON_AddStringToObject(out, "hint", hint);
	}
	send_json(fd, out);
	cJSON_Delete(out);
}

static void answer_slot(int fd, struct slot *s)
{
	cJSON *o = slot_json(s);
	cJSON_AddBoolToObject(o, "ok", s->state != ST_ERROR);
	if (s->state == ST_ERROR)
		cJSON_AddStringToObject(o, "error", s->reason);
	send_json(fd, o);
	cJSON_Delete(o);
}

static void answer_usage(int fd, struct slot *s)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddBoolToObject(o, "ok", s->usage_valid);
	cJSON_AddStringToObject(o, "name", s->remote.name);
	if (s->usage_valid) {
		cJSON_AddNumberToObject(o, "bytes", (double)s->usage_bytes);
		cJSON_AddNumberToObject(o, "objects", (double)s->usage_objects);
		cJSON_AddNumberToObject(o, "at", (double)s->usage_wall);
		cJSON_AddBoolToObject(o, "refreshing", s->usage_running != 0);
	} else {
		cJSON_AddStringToObject(o, "error", *s->usage_error ? s->usage_error : "usage not known yet");
	}
	send_json(fd, o);
	cJSON_Delete(o);
}

/* Handle one request line from client c. Caller holds lock. */
static void handle_request(struct client *c, const char *line, size_t len)
{
	char err[256];
	cJSON *req = ctl_parse_request(line, len, err, sizeof(err));
	const char *cmd, *name = NULL;
	struct slot *s = NULL;
	cJSON *nm;

	if (!req) {
		answer_error(c->fd, "bad request: %s", err);
		return;
	}
	cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd")->valuestring;
	nm = cJSON_GetObjectItemCaseSensitive(req, "name");
	if (nm)
		name = nm->valuestring;
	if (name) {
		s = find_slot(name);
		if (!s && strcmp(cmd, "test") != 0) {
			answer_error(c->fd, "no remote called %s", name);
			goto out_delete;
		}
	}
	if (!strcmp(cmd, "ping")) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddBoolToObject(o, "ok", 1);
		cJSON_AddNumberToObject(o, "pid", getpid());
		send_json(c->fd, o);
		cJSON_Delete(o);
	} else if (!strcmp(cmd, "status") || !strcmp(cmd, "list") || !strcmp(cmd, "remotes")) {
		cJSON *o = cJSON_CreateObject(), *arr;
		cJSON_AddBoolToObject(o, "ok", 1);
		arr = cJSON_AddArrayToObject(o, "remotes");
		for (size_t i = 0; i < mgr.n_slots; i++)
			cJSON_AddItemToArray(arr, slot_json(&mgr.slots[i]));
		send_json(c->fd, o);
		cJSON_Delete(o);
	} else if (!strcmp(cmd, "mount") && s) {
		s->want_mounted = 1;
		if (s->state == ST_MOUNTED || s->state == ST_DEGRADED) {
			answer_slot(c->fd, s);
		} else {
			/* with the previous process still finishing an unmount, the reaper starts the new one */
			if (!s->pid) {
				s->backoff_ms = 1000;
				spawn_mount(s);
			}
			free(c->pending_cmd);
			free(c->pending_name);
			c->pending_cmd = xstrdup("mount");
			c->pending_name = xstrdup(name);
			c->pending_deadline = now_ms() + MOUNT_TIMEOUT_MS + 5000;
		}
	} else if (!strcmp(cmd, "unmount") && s) {
		int e;
		s->want_mounted = 0;
		s->restart_at = 0;
		e = do_unmount(s);
		if (e) {
			s->want_mounted = 1;
			answer_error(c->fd, "%s is busy: files are open there (lsof +D %s)%s%s", s->mountpoint,
				     s->mountpoint, e == EBUSY ? "" : ": ", e == EBUSY ? "" : strerror(e));
		} else {
			set_state(s, ST_UNMOUNTED, "");
			answer_slot(c->fd, s);
		}
	} else if (!strcmp(cmd, "usage") && s) {
		cJSON *refresh = cJSON_GetObjectItemCaseSensitive(req, "refresh");
		int stale = !s->usage_valid || now_ms() - s->usage_at > USAGE_MAX_AGE_MS || cJSON_IsTrue(refresh);
		if (stale)
			request_usage(s);
		if (s->usage_valid && !cJSON_IsTrue(refresh)) {
			answer_usage(c->fd, s);
		} else {
			free(c->pending_cmd);
			free(c->pending_name);
			c->pending_cmd = xstrdup("usage");
			c->pending_name = xstrdup(name);
			c->pending_deadline = now_ms() + 120000;
		}
	} else if (!strcmp(cmd, "test") && name) {
		struct remotes rs = { 0 };
		struct cm_err e;
		char reason[256] = "";
		struct remote *r;
		int ok;
		cm_err_clear(&e);
		remotes_load(mgr.conf_path, &rs, &e);
		r = remotes_find(&rs, name);
		if (!r) {
			answer_error(c->fd, "no remote called %s", name);
		} else {
			cJSON *o = cJSON_CreateObject();
			pthread_mutex_unlock(&mgr.lock);
			ok = s3_reachable(r, reason, sizeof(reason));
			pthread_mutex_lock(&mgr.lock);
			cJSON_AddBoolToObject(o, "ok", ok);
			cJSON_AddStringToObject(o, "name", name);
			if (!ok)
				cJSON_AddStringToObject(o, "error", reason);
			send_json(c->fd, o);
			cJSON_Delete(o);
		}
		remotes_release(&rs);
	} else if (!strcmp(cmd, "probe")) {
		pthread_mutex_unlock(&mgr.lock);
		answer_probe(c->fd, req);
		pthread_mutex_lock(&mgr.lock);
	} else if (!strcmp(cmd, "reload")) {
		pthread_mutex_unlock(&mgr.lock);
		if (load_config(err, sizeof(err)) < 0) {
			pthread_mutex_lock(&mgr.lock);
			answer_error(c->fd, "%s", err);
		} else {
			cJSON *o = cJSON_CreateObject();
			pthread_mutex_lock(&mgr.lock);
			cJSON_AddBoolToObject(o, "ok", 1);
			cJSON_AddNumberToObject(o, "remotes", (double)mgr.n_slots);
			send_json(c->fd, o);
			cJSON_Delete(o);
		}
	} else if (!strcmp(cmd, "subscribe")) {
		cJSON *o = cJSON_CreateObject();
		c->subscribed = 1;
		cJSON_AddBoolToObject(o, "ok", 1);
		send_json(c->fd, o);
		cJSON_Delete(o);
		for (size_t i = 0; i < mgr.n_slots; i++) {
			cJSON *ev = slot_json(&mgr.slots[i]);
			cJSON_AddStringToObject(ev, "event", "state");
			send_json(c->fd, ev);
			cJSON_Delete(ev);
		}
	} else if (!name && (!strcmp(cmd, "mount") || !strcmp(cmd, "unmount") || !strcmp(cmd, "usage"))) {
		answer_error(c->fd, "\"%s\" needs a \"name\"", cmd);
	} else {
		answer_error(c->fd, "unknown command \"%s\"", cmd);
	}
out_delete:
	cJSON_Delete(req);
}

/* Answer clients waiting for a mount or a usage figure that has settled. Caller holds lock. */
static void settle_pending(void)
{
	for (int i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = &mgr.clients[i];
		struct slot *s;
		if (c->fd < 0 || !c->pending_cmd)
			continue;
		s = find_slot(c->pending_name);
		if (!s) {
			answer_error(c->fd, "remote %s went away", c->pending_name);
		} else if (!strcmp(c->pending_cmd, "mount")) {
			if (s->state == ST_MOUNTING && now_ms() < c->pending_deadline)
				continue;
			if (s->state == ST_MOUNTING)
				answer_error(c->fd, "%s is still mounting", s->remote.name);
			else
				answer_slot(c->fd, s);
		} else {
			if (s->usage_running && now_ms() < c->pending_deadline)
				continue;
			answer_usage(c->fd, s);
		}
		free(c->pending_cmd);
		free(c->pending_name);
		c->pending_cmd = c->pending_name = NULL;
	}
}

static void client_close(struct client *c)
{
	close(c->fd);
	c->fd = -1;
	c->subscribed = 0;
	free(c->pending_cmd);
	free(c->pending_name);
	c->pending_cmd = c->pending_name = NULL;
	buf_release(&c->in);
}

static void accept_client(void)
{
	int fd = accept4(mgr.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (fd < 0)
		return;
	/* the socket file is 0600 in a 0700 directory; still, trust the kernel's word */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != getuid()) {
		const char msg[] = "{\"ok\": false, \"error\": \"this daemon serves its own user only\"}\n";
		if (write(fd, msg, sizeof(msg) - 1) < 0) {
			/* refused either way */
		}
		log_warn("refused a control connection from uid %d", (int)cred.uid);
		close(fd);
		return;
	}
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (mgr.clients[i].fd < 0) {
			memset(&mgr.clients[i], 0, sizeof(mgr.clients[i]));
			mgr.clients[i].fd = fd;
			return;
		}
	}
	close(fd);
}

/* Read what client c sent; handle complete lines. Caller holds lock. */
static void read_client(struct client *c)
{
	char chunk[4096];
	ssize_t n = read(c->fd, chunk, sizeof(chunk));

	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		client_close(c);
		return;
	}
	buf_append(&c->in, chunk, (size_t)n);
	for (;;) {
		char *nl = c->in.data ? memchr(c->in.data, '\n', c->in.len) : NULL;
		size_t line_len;
		if (!nl) {
			if (c->in.len > CTL_MAX_LINE) {
				answer_error(c->fd, "request too long");
				client_close(c);
			}
			return;
		}
		line_len = (size_t)(nl - c->in.data);
		handle_request(c, c->in.data, line_len);
		if (c->fd < 0)
			return;
		memmove(c->in.data, nl + 1, c->in.len - line_len - 1);
		c->in.len -= line_len + 1;
		c->in.data[c->in.len] = '\0';
	}
}

/* Tell systemd (Type=notify) that the daemon is ready, if it is watching. */
static void notify_ready(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un addr;
	int fd;

	if (!path || !*path || strlen(path) >= sizeof(addr.sun_path))
		return;
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	strcpy(addr.sun_path, path);
	if (addr.sun_path[0] == '@')
		addr.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		log_warn("sd_notify: %s", strerror(errno));
	close(fd);
}

/* Create the control socket: 0700 directory, 0600 socket. Returns 0 or -1. */
static int open_socket(void)
{
	char *dir = platform_runtime_dir(), *path = ctl_socket_path();
	struct sockaddr_un addr;
	struct stat st;
	int fd = -1, probe;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "cloudmount: cannot create %s: %s\n", dir, strerror(errno));
		goto out_free;
	}
	if (stat(dir, &st) < 0 || st.st_uid != getuid() || (st.st_mode & 077)) {
		if (chmod(dir, 0700) < 0 || stat(dir, &st) < 0 || st.st_uid != getuid()) {
			fprintf(stderr, "cloudmount: %s is not a private directory of this user\n", dir);
			goto out_free;
		}
	}
	probe = ctl_connect();
	if (probe >= 0) {
		close(probe);
		fprintf(stderr, "cloudmount: a daemon is already running (%s)\n", path);
		goto out_free;
	}
	unlink(path);
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(addr.sun_path))
		goto out_free;
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		goto out_free;
	{
		mode_t old = umask(0177);
		int rc = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
		umask(old);
		if (rc < 0 || chmod(path, 0600) < 0 || listen(fd, 16) < 0) {
			fprintf(stderr, "cloudmount: control socket %s: %s\n", path, strerror(errno));
			close(fd);
			fd = -1;
		}
	}
out_free:
	free(dir);
	free(path);
	mgr.listen_fd = fd;
	return fd >= 0 ? 0 : -1;
}

int daemon_main(int foreground, int verbose)
{
	char err[512];
	int ready_sent = 0;

	memset(&mgr, 0, sizeof(mgr));
	mgr.verbose = verbose;
	log_set_level(verbose > 1 ? LOG_LVL_DEBUG : LOG_LVL_INFO);
	mgr.exe = realpath("/proc/self/exe", NULL);
	mgr.conf_path = remotes_default_path();
	for (int i = 0; i < MAX_CLIENTS; i++)
		mgr.clients[i].fd = -1;
	pthread_mutex_init(&mgr.lock, NULL);
	pthread_cond_init(&mgr.usage_cond, NULL);
	{
		/* a broken config is reported on the terminal, before detaching */
		struct remotes rs;
		struct cm_err cerr;
		cm_err_clear(&cerr);
		if (remotes_load(mgr.conf_path, &rs, &cerr) != CM_OK) {
			fprintf(stderr, "cloudmount: %s\n", cerr.message);
			return CLI_CREDENTIALS;
		}
		remotes_release(&rs);
	}
	if (open_socket() < 0)
		return CLI_FAIL;
	if (!foreground) {
		pid_t pid = fork();
		if (pid < 0)
			return CLI_FAIL;
		if (pid > 0) {
			printf("cloudmount daemon started (pid %d)\n", (int)pid);
			return CLI_OK;
		}
		setsid();
		{
			char *dir = util_cache_dir(), *log = xasprintf("%s/daemon.log", dir);
			mkdir(dir, 0700);
			util_redirect_stdio(log);
			free(log);
			free(dir);
		}
	}
	if (pipe2(mgr.wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return CLI_FAIL;
	/* after detaching, so adopting running mounts is logged where the log goes */
	if (load_config(err, sizeof(err)) < 0)
		return CLI_CREDENTIALS;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	log_info("daemon %d serving %zu remote(s)", (int)getpid(), mgr.n_slots);

	pthread_mutex_lock(&mgr.lock);
	for (size_t i = 0; i < mgr.n_slots; i++) {
		struct slot *s = &mgr.slots[i];
		if (s->remote.automount && s->state == ST_UNMOUNTED) {
			s->want_mounted = 1;
			spawn_mount(s);
		}
	}
	pthread_mutex_unlock(&mgr.lock);
	pthread_create(&mgr.health_thread, NULL, health_main, NULL);
	pthread_create(&mgr.usage_thread, NULL, usage_main, NULL);

	while (!mgr.stop) {
		struct pollfd fds[MAX_CLIENTS + 2];
		int map[MAX_CLIENTS + 2];
		nfds_t n = 0;

		fds[n].fd = mgr.listen_fd;
		fds[n].events = POLLIN;
		map[n++] = -1;
		fds[n].fd = mgr.wake_pipe[0];
		fds[n].events = POLLIN;
		map[n++] = -2;
		for (int i = 0; i < MAX_CLIENTS; i++) {
			if (mgr.clients[i].fd >= 0) {
				fds[n].fd = mgr.clients[i].fd;
				fds[n].events = POLLIN;
				map[n++] = i;
			}
		}
		poll(fds, n, 250);
		pthread_mutex_lock(&mgr.lock);
		for (nfds_t k = 0; k < n; k++) {
			if (!fds[k].revents)
				continue;
			if (map[k] == -1) {
				accept_client();
			} else if (map[k] == -2) {
				char drain[64];
				while (read(mgr.wake_pipe[0], drain, sizeof(drain)) > 0)
					;
			} else if (mgr.clients[map[k]].fd >= 0) {
				read_client(&mgr.clients[map[k]]);
			}
		}
		tick();
		settle_pending();
		if (!ready_sent) {
			/* READY=1 once no automount is still coming up */
			int pending = 0;
			for (size_t i = 0; i < mgr.n_slots; i++)
				pending |= mgr.slots[i].state == ST_MOUNTING;
			if (!pending) {
				notify_ready();
				ready_sent = 1;
			}
		}
		pthread_mutex_unlock(&mgr.lock);
	}
	log_info("daemon stopping; mounts stay up");
	pthread_mutex_lock(&mgr.lock);
	mgr.threads_stop = 1;
	pthread_cond_broadcast(&mgr.usage_cond);
	pthread_mutex_unlock(&mgr.lock);
	pthread_join(mgr.health_thread, NULL);
	pthread_join(mgr.usage_thread, NULL);
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (mgr.clients[i].fd >= 0)
			client_close(&mgr.clients[i]);
	close(mgr.listen_fd);
	{
		char *path = ctl_socket_path();
		unlink(path);
		free(path);
	}
	for (size_t i = 0; i < mgr.n_slots; i++)
		slot_release(&mgr.slots[i]);
	free(mgr.slots);
	free(mgr.exe);
	free(mgr.conf_path);
	return CLI_OK;
}
