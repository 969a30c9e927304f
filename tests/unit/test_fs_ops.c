/*
 * test_fs_ops.c - unit tests of the filesystem layer (fs/fs.c) below FUSE: its
 * low-level operations called directly, over the in-memory store with the
 * fault layer on top, with no kernel.
 *
 * fs.c is linked against tests/unit/fuse_stub.c instead of libfuse: a request
 * records the reply the operation gave (see fuse_stub.h). Every helper below
 * runs one operation, checks it replied exactly once, and returns its errno
 * (0 on success). What crossed the "network" is checked with the mem store's
 * per-operation counters and fs_get_stats; contents and metadata by reading
 * the mem store directly.
 *
 * Parts are 64 KiB (the mem store's minimum part size lowered to match), the
 * work queue has 4 threads, staging files go to a mkdtemp directory. Tests of
 * the metadata TTL use short TTLs and real time; a "not yet expired" check is
 * only made when the clock shows the TTL has not passed (slow runs under
 * valgrind then skip it rather than fail).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuse_stub.h"

#include "common/log.h"
#include "common/util.h"
#include "common/workq.h"
#include "fs/fdata.h"
#include "fs/fs.h"
#include "fs/metacache.h"
#include "store/store.h"
#include "store/store_fault.h"
#include "store/store_mem.h"
#include "store/transfer.h"
#include "tharness.h"

#define PART (64u << 10)
#define CFG_UID 1000            /* owner of objects without x-amz-meta-uid */
#define CFG_GID 1000
#define CTX_UID 1234            /* the process calling (creator of new files) */
#define CTX_GID 5678
#define ROOT FUSE_ROOT_ID

struct env {
	struct store *mem;      /* the bottom store: counters, direct access */
	struct store *top;      /* the fault layer over it: what fs.c gets */
	struct workq *wq;
	struct membudget *budget;
	struct fdata_disk *disk;
	struct metacache *mc;   /* NULL unless a test opens one */
	struct fs_config cfg;
	struct fs *fs;
	const struct fuse_lowlevel_ops *ops;
	struct fuse_session se;
	char dir[64];
	char stage[96];
	char mc_path[96];
};

/* The kind of the last reply a helper saw (a negative entry is STUB_ENTRY with ino 0). */
static enum stub_reply last_kind;

/* Infrastructure and a default configuration; the fs is started by env_start. */
static void env_setup(struct env *e, double ttl)
{
	memset(e, 0, sizeof(*e));
	e->mem = store_mem_create();
	store_mem_set_min_part_size(e->mem, PART);
	e->top = store_fault_create(e->mem, 7);
	e->wq = workq_create(4);
	e->budget = membudget_create(64 * PART);
	snprintf(e->dir, sizeof(e->dir), "/tmp/test_fs_ops.XXXXXX");
	REQUIRE(mkdtemp(e->dir) != NULL);
	snprintf(e->stage, sizeof(e->stage), "%s/staging", e->dir);
	e->disk = fdata_disk_create(e->stage, 64ULL << 20);
	REQUIRE(e->disk != NULL);
	e->cfg.store = e->top;
	e->cfg.workq = e->wq;
	e->cfg.budget = e->budget;
	e->cfg.disk = e->disk;
	e->cfg.bucket = "test-bucket";
	e->cfg.metadata_ttl = ttl;
	e->cfg.negative_ttl = 0.5;
	e->cfg.uid = CFG_UID;
	e->cfg.gid = CFG_GID;
	e->cfg.file_mode = 0644;
	e->cfg.dir_mode = 0755;
	e->cfg.part_size = PART;
	e->cfg.concurrency = 4;
	stub_session_init(&e->se);
}

static void env_start(struct env *e)
{
	e->fs = fs_create(&e->cfg);
	REQUIRE(e->fs != NULL);
	fs_set_session(e->fs, &e->se);
	e->ops = fs_operations();
}

static void env_init(struct env *e, double ttl)
{
	env_setup(e, ttl);
	env_start(e);
}

/* A remount: a new fs over the same store (and metadata cache). */
static void env_restart(struct env *e)
{
	fs_destroy(e->fs);
	env_start(e);
}

static void env_release(struct env *e)
{
	fs_destroy(e->fs);
	e->fs = NULL;
	CHECK_INT(fdata_disk_used(e->disk), 0);
	CHECK_INT(membudget_used(e->budget), 0);
	CHECK_INT(store_mem_pending_uploads(e->mem), 0);
	metacache_close(e->mc);
	if (e->mc_path[0]) {
		char p[128];
		unlink(e->mc_path);
		snprintf(p, sizeof(p), "%s-wal", e->mc_path);
		unlink(p);
		snprintf(p, sizeof(p), "%s-shm", e->mc_path);
		unlink(p);
	}
	fdata_disk_destroy(e->disk);
	rmdir(e->stage);
	rmdir(e->dir);
	membudget_destroy(e->budget);
	workq_destroy(e->wq);
	store_destroy(e->top);
	stub_session_release(&e->se);
}

static void open_metacache(struct env *e)
{
	snprintf(e->mc_path, sizeof(e->mc_path), "%s/meta.sqlite", e->dir);
	e->mc = metacache_open(e->mc_path);
	REQUIRE(e->mc != NULL);
	e->cfg.metacache = e->mc;
}

/* ---- the store ---- */

static uint64_t calls(struct env *e, enum store_op op)
{
	return store_mem_calls(e->mem, op);
}

static uint64_t total_calls(struct env *e)
{
	uint64_t n = 0;
	for (int op = 0; op < STORE_OP__COUNT; op++)
		n += store_mem_calls(e->mem, (enum store_op)op);
	return n;
}

static void reset_calls(struct env *e)
{
	store_mem_reset_calls(e->mem);
}

static void put(struct env *e, const char *key, const char *content)
{
	REQUIRE(store_mem_put_bytes(e->mem, key, content, strlen(content)) == 0);
}

/* An object with s3fs metadata (mode, uid; mtime when non-zero). */
static void put_with_meta(struct env *e, const char *key, const char *content, mode_t mode, unsigned uid,
			  long long mtime)
{
	struct s3_meta meta = { 0 };
	struct s3_put_opts o = { 0 };
	struct s3_body body = { .mem = content, .fd = -1, .len = strlen(content) };
	char v[32];

	snprintf(v, sizeof(v), "%u", (unsigned)mode);
	s3_meta_set(&meta, "mode", v);
	snprintf(v, sizeof(v), "%u", uid);
	s3_meta_set(&meta, "uid", v);
	if (mtime) {
		snprintf(v, sizeof(v), "%lld", mtime);
		s3_meta_set(&meta, "mtime", v);
	}
	o.meta = &meta;
	REQUIRE(store_put(e->mem, key, &body, &o, NULL, NULL) == CM_OK);
	s3_meta_release(&meta);
}

/* The object's content as a string (malloc'd), or NULL when absent. */
static char *content_of(struct env *e, const char *key)
{
	size_t len = 0;
	char *data = store_mem_get_bytes(e->mem, key, &len);
	char *s;

	if (!data)
		return NULL;
	s = xmalloc(len + 1);
	memcpy(s, data, len);
	s[len] = '\0';
	free(data);
	return s;
}

static int exists(struct env *e, const char *key)
{
	char *c = content_of(e, key);
	free(c);
	return c != NULL;
}

/* Whether key holds exactly content. */
static int holds(struct env *e, const char *key, const char *content)
{
	char *c = content_of(e, key);
	int same = c && strcmp(c, content) == 0;

	if (!same)
		fprintf(stderr, "  object %s: \"%s\", expected \"%s\"\n", key, c ? c : "(absent)", content);
	free(c);
	return same;
}

/* A metadata value of key (malloc'd), or NULL. Makes a HEAD the mem store counts. */
static char *meta_of(struct env *e, const char *key, const char *name)
{
	struct s3_object_head h;
	char *v = NULL;

	if (store_head(e->mem, key, &h, NULL) != CM_OK)
		return NULL;
	if (s3_meta_get(&h.meta, name))
		v = xstrdup(s3_meta_get(&h.meta, name));
	s3_object_head_release(&h);
	return v;
}

static int meta_is(struct env *e, const char *key, const char *name, const char *want)
{
	char *v = meta_of(e, key, name);
	int same = v && strcmp(v, want) == 0;

	if (!same)
		fprintf(stderr, "  %s x-amz-meta-%s: %s, expected %s\n", key, name, v ? v : "(none)", want);
	free(v);
	return same;
}

static struct fs_stats stats(struct env *e)
{
	struct fs_stats s;
	fs_get_stats(e->fs, &s);
	return s;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* ---- operations ---- */

/* Wait (up to 5 s) until the store has seen n LISTs: for fetches made on the work queue. */
static int lists_reach(struct env *e, uint64_t n)
{
	for (int i = 0; i < 500 && calls(e, STORE_OP_LIST) < n; i++)
		sleep_ms(10);
	return calls(e, STORE_OP_LIST) >= n;
}

static void req_begin(struct env *e, struct fuse_req *r)
{
	stub_req_init(r, e->fs, CTX_UID, CTX_GID);
}

/* After an operation: exactly one reply; returns its errno (0 for a data reply). */
static int req_end(struct fuse_req *r, const char *what)
{
	if (r->replies != 1)
		TH_FAIL_("%s: %d replies instead of 1", what, r->replies);
	last_kind = r->kind;
	return r->kind == STUB_ERR ? r->err : 0;
}

/* 0 and *out for an entry; ENOENT for a negative entry (*out filled) or the error. */
static int do_lookup(struct env *e, fuse_ino_t parent, const char *name, struct fuse_entry_param *out)
{
	struct fuse_req r;
	int rc;

	req_begin(e, &r);
	e->ops->lookup(&r, parent, name);
	rc = req_end(&r, "lookup");
	if (out)
		*out = r.entry;
	if (rc == 0 && r.entry.ino == 0)
		rc = ENOENT;
	return rc;
}

static fuse_ino_t lookup_ino(struct env *e, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param ent;
	int rc = do_lookup(e, parent, name, &ent);

	if (rc)
		TH_FAIL_("lookup of %s: errno %d", name, rc);
	return rc ? 0 : ent.ino;
}

static int do_getattr(struct env *e, fuse_ino_t ino, struct stat *out)
{
	struct fuse_req r;
	int rc;

	req_begin(e, &r);
	e->ops->getattr(&r, ino, NULL);
	rc = req_end(&r, "getattr");
	if (out)
		*out = r.attr;
	return rc;
}

static void do_forget(struct env *e, fuse_ino_t ino, uint64_t n)
{
	struct fuse_req r;

	req_begin(e, &r);
	e->ops->forget(&r, ino, n);
	req_end(&r, "forget");
	CHECK_INT(r.kind, STUB_NONE);
}

static int do_opendir(struct env *e, fuse_ino_t ino, uint64_t *fh)
{
	struct fuse_req r;
	struct fuse_file_info fi;
	int rc;

	memset(&fi, 0, sizeof(fi));
	req_begin(e, &r);
	e->ops->opendir(&r, ino, &fi);
	rc = req_end(&r, "opendir");
	*fh = rc ? 0 : r.fi.fh;
	return rc;
}

static void do_releasedir(struct env *e, fuse_ino_t ino, uint64_t fh)
{
	struct fuse_req r;
	struct fuse_file_info fi;

	memset(&fi, 0, sizeof(fi));
	fi.fh = fh;
	req_begin(e, &r);
	e->ops->releasedir(&r, ino, &fi);
	CHECK_INT(req_end(&r, "releasedir"), 0);
}

struct dlist {
	size_t n;
	struct stub_dirent *d;
	int calls;              /* readdir requests it took */
};

static void dlist_release(struct dlist *l)
{
	free(l->d);
	memset(l, 0, sizeof(*l));
}

/* One readdir (plus: readdirplus) request at off; r holds the reply (stub_req_release it). */
static int readdir_req(struct env *e, fuse_ino_t ino, uint64_t fh, size_t bufsize, int plus, off_t off,
		       struct fuse_req *r)
{
	struct fuse_file_info fi;

	memset(&fi, 0, sizeof(fi));
	fi.fh = fh;
	req_begin(e, r);
	if (plus)
		e->ops->readdirplus(r, ino, bufsize, off, &fi);
	else
		e->ops->readdir(r, ino, bufsize, off, &fi);
	return req_end(r, "readdir");
}

/* Read a whole directory through an open handle, bufsize bytes per request. */
static int read_dir(struct env *e, fuse_ino_t ino, uint64_t fh, size_t bufsize, int plus, struct dlist *out)
{
	off_t off = 0;

	memset(out, 0, sizeof(*out));
	for (;;) {
		struct fuse_req r;
		struct stub_dirent d;
		size_t pos = 0;
		int rc, got = 0;

		rc = readdir_req(e, ino, fh, bufsize, plus, off, &r);
		out->calls++;
		if (rc) {
			stub_req_release(&r);
			return rc;
		}
		CHECK_INT(r.kind, STUB_BUF);
		CHECK(r.len <= bufsize);
		while (stub_dirent_next(r.data, r.len, &pos, &d)) {
			out->d = xrealloc(out->d, (out->n + 1) * sizeof(*out->d));
			out->d[out->n++] = d;
			off = d.off;
			got++;
		}
		CHECK_INT(pos, r.len);
		stub_req_release(&r);
		if (!got)
			return 0;
		if (out->calls > 100000) {
			TH_FAIL_("readdir does not end");
			return EIO;
		}
	}
}

/*
 * Until a listing of ino being fetched on the work queue is in place (opendir
 * waits for a walk-ahead or refresh fetch; a streamed one is read to its end).
 */
static void wait_listing(struct env *e, fuse_ino_t ino)
{
	struct dlist l;
	uint64_t fh;

	if (do_opendir(e, ino, &fh) == 0) {
		read_dir(e, ino, fh, 65536, 0, &l);
		dlist_release(&l);
		do_releasedir(e, ino, fh);
	}
}

/* One readdir (plain) at off: the number of entries it gave, or -errno. */
static int readdir_once(struct env *e, fuse_ino_t ino, uint64_t fh, off_t off)
{
	struct fuse_req r;
	struct stub_dirent d;
	size_t pos = 0;
	int rc, got = 0;

	rc = readdir_req(e, ino, fh, 65536, 0, off, &r);
	if (!rc)
		while (stub_dirent_next(r.data, r.len, &pos, &d))
			got++;
	stub_req_release(&r);
	return rc ? -rc : got;
}

/* opendir + every entry + releasedir. */
static int list_dir(struct env *e, fuse_ino_t ino, int plus, size_t bufsize, struct dlist *out)
{
	uint64_t fh;
	int rc = do_opendir(e, ino, &fh);

	memset(out, 0, sizeof(*out));
	if (rc)
		return rc;
	rc = read_dir(e, ino, fh, bufsize, plus, out);
	do_releasedir(e, ino, fh);
	return rc;
}

static const struct stub_dirent *dlist_find(const struct dlist *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->d[i].name, name) == 0)
			return &l->d[i];
	return NULL;
}

/* Check that l holds ".", "..", then exactly the names given (in this order). */
static void check_names(const struct dlist *l, const char *const *names, size_t n)
{
	CHECK_INT(l->n, n + 2);
	if (l->n != n + 2) {
		for (size_t i = 0; i < l->n; i++)
			fprintf(stderr, "  got \"%s\"\n", l->d[i].name);
		return;
	}
	CHECK_STR(l->d[0].name, ".");
	CHECK_STR(l->d[1].name, "..");
	for (size_t i = 0; i < n; i++)
		CHECK_STR(l->d[i + 2].name, names[i]);
}

/* Forget one lookup of every plus entry (what the kernel does when it drops them). */
static void forget_listed(struct env *e, const struct dlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->d[i].plus && l->d[i].entry.ino)
			do_forget(e, l->d[i].entry.ino, 1);
}

static int do_open(struct env *e, fuse_ino_t ino, int flags, uint64_t *fh, int *keep_cache)
{
	struct fuse_req r;
	struct fuse_file_info fi;
	int rc;

	memset(&fi, 0, sizeof(fi));
	fi.flags = flags;
	req_begin(e, &r);
	e->ops->open(&r, ino, &fi);
	rc = req_end(&r, "open");
	*fh = rc ? 0 : r.fi.fh;
	if (keep_cache)
		*keep_cache = r.fi.keep_cache;
	return rc;
}

static int do_create(struct env *e, fuse_ino_t parent, const char *name, mode_t mode, int flags,
		     struct fuse_entry_param *ent, uint64_t *fh)
{
	struct fuse_req r;
	struct fuse_file_info fi;
	int rc;

	memset(&fi, 0, sizeof(fi));
	fi.flags = flags | O_CREAT;
	req_begin(e, &r);
	e->ops->create(&r, parent, name, S_IFREG | mode, &fi);
	rc = req_end(&r, "create");
	if (ent)
		*ent = r.entry;
	*fh = rc ? 0 : r.fi.fh;
	return rc;
}

/* Start a request on open handle fh (fi set up); 0, or EBADF (a test failure) without one. */
static int handle_begin(struct env *e, uint64_t fh, struct fuse_req *r, struct fuse_file_info *fi)
{
	if (!fh) {
		TH_FAIL_("no file handle");
		return EBADF;
	}
	memset(fi, 0, sizeof(*fi));
	fi->fh = fh;
	req_begin(e, r);
	return 0;
}

/* Bytes read into buf, or -errno. */
static ssize_t do_read(struct env *e, fuse_ino_t ino, uint64_t fh, size_t size, off_t off, char *buf)
{
	struct fuse_req r;
	struct fuse_file_info fi;
	int rc;
	ssize_t n;

	if (handle_begin(e, fh, &r, &fi))
		return -EBADF;
	e->ops->read(&r, ino, size, off, &fi);
	rc = req_end(&r, "read");
	if (rc) {
		stub_req_release(&r);
		return -rc;
	}
	CHECK_INT(r.kind, STUB_BUF);
	CHECK(r.len <= size);
	n = (ssize_t)(r.len <= size ? r.len : size);
	if (n)
		memcpy(buf, r.data, (size_t)n);
	stub_req_release(&r);
	return n;
}

static ssize_t do_write(struct env *e, fuse_ino_t ino, uint64_t fh, const void *buf, size_t size, off_t off)
{
	struct fuse_req r;
	struct fuse_file_info fi;
	int rc;

	if (handle_begin(e, fh, &r, &fi))
		return -EBADF;
	e->ops->write(&r, ino, buf, size, off, &fi);
	rc = req_end(&r, "write");
	return rc ? -rc : (ssize_t)r.len;
}

enum handle_op { OP_FLUSH, OP_FSYNC, OP_RELEASE };

/* flush, fsync or release of an open file handle; returns the reply's errno. */
static int handle_op(struct env *e, fuse_ino_t ino, uint64_t fh, enum handle_op op)
{
	static const char *const names[] = { "flush", "fsync", "release" };
	struct fuse_req r;
	struct fuse_file_info fi;

	if (handle_begin(e, fh, &r, &fi))
		return EBADF;
	if (op == OP_FLUSH)
		e->ops->flush(&r, ino, &fi);
	else if (op == OP_FSYNC)
		e->ops->fsync(&r, ino, 0, &fi);
	else
		e->ops->release(&r, ino, &fi);
	return req_end(&r, names[op]);
}

static int do_flush(struct env *e, fuse_ino_t ino, uint64_t fh)
{
	return handle_op(e, ino, fh, OP_FLUSH);
}

static int do_fsync(struct env *e, fuse_ino_t ino, uint64_t fh)
{
	return handle_op(e, ino, fh, OP_FSYNC);
}

static int do_release(struct env *e, fuse_ino_t ino, uint64_t fh)
{
	return handle_op(e, ino, fh, OP_RELEASE);
}

/* flush then release, as close() does; returns flush's errno. */
static int do_close(struct env *e, fuse_ino_t ino, uint64_t fh)
{
	int rc = do_flush(e, ino, fh);
	CHECK_INT(do_release(e, ino, fh), 0);
	return rc;
}

static int do_mkdir(struct env *e, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_entry_param *ent)
{
	struct fuse_req r;
	int rc;

	req_begin(e, &r);
	e->ops->mkdir(&r, parent, name, mode);
	rc = req_end(&r, "mkdir");
	if (ent)
		*ent = r.entry;
	return rc;
}

static int do_rmdir(struct env *e, fuse_ino_t parent, const char *name)
{
	struct fuse_req r;

	req_begin(e, &r);
	e->ops->rmdir(&r, parent, name);
	return req_end(&r, "rmdir");
}

static int do_unlink(struct env *e, fuse_ino_t parent, const char *name)
{
	struct fuse_req r;

	req_begin(e, &r);
	e->ops->unlink(&r, parent, name);
	return req_end(&r, "unlink");
}

static int do_rename(struct env *e, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname,
		     unsigned flags)
{
	struct fuse_req r;

	req_begin(e, &r);
	e->ops->rename(&r, parent, name, newparent, newname, flags);
	return req_end(&r, "rename");
}

static int do_setattr(struct env *e, fuse_ino_t ino, struct stat *attr, int to_set, struct stat *out)
{
	struct fuse_req r;
	int rc;

	req_begin(e, &r);
	e->ops->setattr(&r, ino, attr, to_set, NULL);
	rc = req_end(&r, "setattr");
	if (out)
		*out = r.attr;
	return rc;
}

static int do_chmod(struct env *e, fuse_ino_t ino, mode_t mode, struct stat *out)
{
	struct stat a;

	memset(&a, 0, sizeof(a));
	a.st_mode = mode;
	return do_setattr(e, ino, &a, FUSE_SET_ATTR_MODE, out);
}

/* Open ino read-only and read it whole; the content (malloc'd, NUL-terminated) or NULL with *rc set. */
static char *read_whole(struct env *e, fuse_ino_t ino, size_t chunk, int *rc)
{
	uint64_t fh;
	struct buf b = BUF_INIT;
	char *tmp = xmalloc(chunk);

	*rc = do_open(e, ino, O_RDONLY, &fh, NULL);
	if (*rc) {
		free(tmp);
		return NULL;
	}
	for (off_t off = 0;;) {
		ssize_t n = do_read(e, ino, fh, chunk, off, tmp);
		if (n < 0) {
			*rc = (int)-n;
			break;
		}
		if (n == 0)
			break;
		buf_append(&b, tmp, (size_t)n);
		off += n;
	}
	CHECK_INT(do_release(e, ino, fh), 0);
	free(tmp);
	if (*rc) {
		buf_release(&b);
		return NULL;
	}
	buf_putc(&b, '\0');
	return b.data;
}

/* Deterministic bytes for big files. */
static char *pattern(size_t n, unsigned seed)
{
	char *p = xmalloc(n + 1);

	for (size_t i = 0; i < n; i++)
		p[i] = (char)('a' + (i * 7 + i / 251 + seed * 13) % 26);
	p[n] = '\0';
	return p;
}

/* ---- tests: lookups and the inode table ---- */

/* Right after a listing, lookups and getattrs cost nothing; lookup counts follow forget. */
TEST(test_lookup_served_from_listing)
{
	struct env e;
	struct dlist l;
	struct fuse_entry_param ent;
	struct stat st;
	fuse_ino_t a, a2, b;
	const struct stub_dirent *da;
	struct fs_stats s;

	env_init(&e, 60);
	put(&e, "a.txt", "12345");
	put(&e, "b.bin", "xyz");
	put(&e, "sub/x", "1");
	reset_calls(&e);

	CHECK_INT(list_dir(&e, ROOT, 1, 4096, &l), 0);
	CHECK_INT(calls(&e, STORE_OP_LIST), 1);
	CHECK_INT(total_calls(&e), 1);
	s = stats(&e);
	CHECK_INT(s.listings, 1);
	CHECK_INT(s.heads, 0);
	da = dlist_find(&l, "a.txt");
	REQUIRE(da != NULL);
	a = da->entry.ino;
	CHECK(a != 0);
	CHECK_INT(da->entry.attr.st_size, 5);
	dlist_release(&l);

	reset_calls(&e);
	CHECK_INT(do_lookup(&e, ROOT, "a.txt", &ent), 0);
	CHECK_INT(ent.ino, a);
	CHECK_INT(ent.attr.st_size, 5);
	CHECK_INT(ent.attr.st_mode, S_IFREG | 0644);
	CHECK_INT(ent.attr.st_uid, CFG_UID);
	CHECK_INT(ent.attr.st_gid, CFG_GID);
	CHECK(ent.entry_timeout == 60.0);
	CHECK(ent.attr_timeout == 60.0);
	CHECK_INT(do_lookup(&e, ROOT, "sub", &ent), 0);
	CHECK_INT(ent.attr.st_mode, S_IFDIR | 0755);
	CHECK_INT(do_lookup(&e, ROOT, "nope", &ent), ENOENT);
	CHECK_INT(last_kind, STUB_ENTRY); /* a negative entry, for the kernel to cache */
	CHECK(ent.entry_timeout == 0.5);
	CHECK_INT(do_getattr(&e, a, &st), 0);
	CHECK_INT(st.st_size, 5);
	CHECK_INT(st.st_ino, a);
	CHECK_INT(total_calls(&e), 0);
	s = stats(&e);
	CHECK_INT(s.lookups_cached, 3);
	CHECK_INT(s.lookups_remote, 0);

	/* a.txt: one lookup from readdirplus, one from lookup */
	do_forget(&e, a, 1);
	CHECK_INT(do_getattr(&e, a, &st), 0);
	do_forget(&e, a, 1);
	CHECK_INT(do_getattr(&e, a, &st), ENOENT); /* freed at zero */
	a2 = lookup_ino(&e, ROOT, "a.txt");
	CHECK(a2 != 0 && a2 != a);
	CHECK_INT(do_getattr(&e, a2, &st), 0);
	CHECK_INT(st.st_size, 5);
	CHECK_INT(st.st_mode, S_IFREG | 0644);
	CHECK_INT(total_calls(&e), 0);

	/* forget_multi, and forgetting more than was handed out */
	b = lookup_ino(&e, ROOT, "b.bin");
	lookup_ino(&e, ROOT, "b.bin");
	{
		struct fuse_req r;
		struct fuse_forget_data fd[2] = { { .ino = b, .nlookup = 3 }, { .ino = 999999, .nlookup = 1 } };
		req_begin(&e, &r);
		e.ops->forget_multi(&r, 2, fd);
		req_end(&r, "forget_multi");
		CHECK_INT(r.kind, STUB_NONE);
	}
	CHECK_INT(do_getattr(&e, b, &st), ENOENT);
	do_forget(&e, a2, 100);
	CHECK_INT(do_getattr(&e, a2, &st), ENOENT);
	/* the root is never freed */
	do_forget(&e, ROOT, 10);
	CHECK_INT(do_getattr(&e, ROOT, &st), 0);
	CHECK_INT(st.st_mode, S_IFDIR | 0755);
	CHECK_INT(total_calls(&e), 0);
	env_release(&e);
}

/* Readdirplus: every name once, sorted, directories from prefixes, list requests only. */
TEST(test_readdirplus_names)
{
	static const char *const names[] = { "alpha", "d", "d-x", "d.txt", "empty", "marker", "pre", "same", "zeta" };
	struct env e;
	struct dlist l;
	struct fs_stats s;

	env_init(&e, 60);
	put(&e, "zeta", "zz");
	put(&e, "alpha", "a");
	put(&e, "d-x", "dx");
	put(&e, "d.txt", "d.t");
	put(&e, "d/inner", "i");
	put(&e, "empty", "");
	put(&e, "marker/", "");
	put(&e, "pre/deep/x", "x");
	put(&e, "same", "file");
	put(&e, "same/child", "c");
	reset_calls(&e);

	CHECK_INT(list_dir(&e, ROOT, 1, 4096, &l), 0);
	check_names(&l, names, sizeof(names) / sizeof(names[0]));
	for (size_t i = 2; i < l.n; i++) {
		const struct stub_dirent *d = &l.d[i];
		int dir = !strcmp(d->name, "d") || !strcmp(d->name, "marker") || !strcmp(d->name, "pre") ||
			  !strcmp(d->name, "same");
		CHECK(d->plus);
		CHECK(d->entry.ino > ROOT);
		CHECK_INT(d->entry.attr.st_ino, d->entry.ino);
		CHECK_INT(d->entry.attr.st_mode & S_IFMT, dir ? S_IFDIR : S_IFREG);
		CHECK(d->entry.entry_timeout == 60.0);
		if (i > 2)
			CHECK(strcmp(l.d[i - 1].name, d->name) < 0);
		for (size_t j = 2; j < i; j++)
			CHECK(l.d[j].entry.ino != d->entry.ino);
	}
	CHECK_INT(dlist_find(&l, "zeta")->entry.attr.st_size, 2);
	CHECK_INT(dlist_find(&l, "d.txt")->entry.attr.st_size, 3);
	CHECK_INT(dlist_find(&l, "empty")->entry.attr.st_size, 0);
	CHECK_INT(l.d[0].entry.attr.st_ino, ROOT);
	CHECK_INT(calls(&e, STORE_OP_LIST), 1);
	CHECK_INT(total_calls(&e), 1);
	s = stats(&e);
	CHECK_INT(s.heads, 0);
	CHECK_INT(s.listings, 1);
	CHECK_INT(s.skipped_keys, 0);
	forget_listed(&e, &l);
	dlist_release(&l);

	/* the listing is still fresh: a second opendir costs nothing */
	reset_calls(&e);
	CHECK_INT(list_dir(&e, ROOT, 1, 4096, &l), 0);
	check_names(&l, names, sizeof(names) / sizeof(names[0]));
	CHECK_INT(total_calls(&e), 0);
	forget_listed(&e, &l);
	dlist_release(&l);

	/* inside a directory that is only a prefix, and one with only a marker */
	{
		static const char *const deep[] = { "deep" };
		fuse_ino_t pre = lookup_ino(&e, ROOT, "pre"), marker = lookup_ino(&e, ROOT, "marker");
		CHECK_INT(list_dir(&e, pre, 1, 4096, &l), 0);
		check_names(&l, deep, 1);
		CHECK_INT(l.d[2].entry.attr.st_mode & S_IFMT, S_IFDIR);
		forget_listed(&e, &l);
		dlist_release(&l);
		CHECK_INT(list_dir(&e, marker, 1, 4096, &l), 0);
		check_names(&l, NULL, 0); /* its own marker is not an entry */
		dlist_release(&l);
	}
	env_release(&e);
}

/*
 * A reply buffer that holds only a few entries: the directory comes in several
 * requests, every name once, and only entries that were sent count a lookup
 * (after one forget each, every inode is gone).
 */
TEST(test_readdirplus_small_buffer)
{
	struct env e;
	struct dlist l;
	char key[32];

	env_init(&e, 60);
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof(key), "file%02d", i);
		put(&e, key, "x");
	}
	CHECK_INT(list_dir(&e, ROOT, 1, 700, &l), 0);
	CHECK_INT(l.n, 42);
	CHECK(l.calls > 5);
	for (size_t i = 2; i < l.n; i++) {
		snprintf(key, sizeof(key), "file%02zu", i - 2);
		CHECK_STR(l.d[i].name, key);
	}
	forget_listed(&e, &l);
	for (size_t i = 2; i < l.n; i++) {
		struct stat st;
		CHECK_INT(do_getattr(&e, l.d[i].entry.ino, &st), ENOENT);
	}
	dlist_release(&l);
	env_release(&e);
}

/*
 * Plain readdir (no readdirplus: macFUSE, or a kernel that falls back): an
 * entry the inode table does not know must still carry a non-zero d_ino, or
 * glibc before 2.37, BSD libcs, Go and make skip it as a deleted entry.
 */
TEST(test_readdir_plain_inode_numbers)
{
	static const char *const names[] = { "dir", "f1", "f2" };
	struct env e;
	struct dlist l;
	fuse_ino_t f1;

	env_init(&e, 60);
	put(&e, "f1", "1");
	put(&e, "f2", "22");
	put(&e, "dir/x", "x");
	CHECK_INT(list_dir(&e, ROOT, 0, 4096, &l), 0);
	check_names(&l, names, 3);
	for (size_t i = 0; i < l.n; i++) {
		CHECK(!l.d[i].plus);
		if (!l.d[i].entry.attr.st_ino)
			TH_FAIL_("plain readdir entry \"%s\" has d_ino 0", l.d[i].name);
	}
	CHECK_INT(dlist_find(&l, "dir")->entry.attr.st_mode & S_IFMT, S_IFDIR);
	CHECK_INT(dlist_find(&l, "f1")->entry.attr.st_mode & S_IFMT, S_IFREG);
	dlist_release(&l);
	/* a known inode is reported with its number; no lookup is counted */
	f1 = lookup_ino(&e, ROOT, "f1");
	CHECK_INT(list_dir(&e, ROOT, 0, 4096, &l), 0);
	CHECK_INT(dlist_find(&l, "f1")->entry.attr.st_ino, f1);
	dlist_release(&l);
	do_forget(&e, f1, 1);
	{
		struct stat st;
		CHECK_INT(do_getattr(&e, f1, &st), ENOENT);
	}
	env_release(&e);
}

/* More than one page of ListObjectsV2 (the mem store pages at 1,000 keys and prefixes). */
TEST(test_readdirplus_pagination)
{
	struct env e;
	struct dlist l;
	char key[64];
	fuse_ino_t big;
	size_t dirs = 0;

	env_init(&e, 60);
	/* 1,000 directories fill the first page exactly: the token is a common prefix */
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "big/e%03d/c1", i);
		put(&e, key, "1");
		snprintf(key, sizeof(key), "big/e%03d/c2", i);
		put(&e, key, "2");
	}
	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "big/f%03d", i);
		put(&e, key, "ff");
	}
	big = lookup_ino(&e, ROOT, "big");
	reset_calls(&e);
	CHECK_INT(list_dir(&e, big, 1, 16384, &l), 0);
	CHECK_INT(calls(&e, STORE_OP_LIST), 2);
	CHECK_INT(calls(&e, STORE_OP_HEAD), 0);
	CHECK_INT(l.n, 1202);
	for (size_t i = 3; i < l.n; i++)
		CHECK(strcmp(l.d[i - 1].name, l.d[i].name) < 0);
	for (size_t i = 2; i < l.n; i++) {
		if ((l.d[i].entry.attr.st_mode & S_IFMT) == S_IFDIR) {
			dirs++;
			CHECK(l.d[i].name[0] == 'e');
		} else {
			CHECK_INT(l.d[i].entry.attr.st_size, 2);
		}
	}
	CHECK_INT(dirs, 1000);
	CHECK_INT(stats(&e).listings, 1);
	forget_listed(&e, &l);
	dlist_release(&l);
	env_release(&e);
}

/* Lookups with no listing: one round trip (LIST + HEAD at once) tells file, directory or nothing. */
TEST(test_lookup_remote)
{
	struct env e;
	struct fuse_entry_param ent;
	char key[32];
	struct fs_stats s;

	env_init(&e, 60);
	put(&e, "f", "1234567");
	put(&e, "dironly/x", "x");
	put(&e, "marker/", "");
	put(&e, "n-x", "a");
	put(&e, "n.txt", "b");
	put(&e, "n/y", "c");
	put(&e, "q-x", "a");
	put_with_meta(&e, "meta", "m", S_IFREG | 0600, 77, 1500000000);
	for (int i = 0; i < 150; i++) {
		snprintf(key, sizeof(key), "m-%03d", i);
		put(&e, key, "m");
		snprintf(key, sizeof(key), "r-%03d", i);
		put(&e, key, "r");
	}
	put(&e, "m/z", "z");

	reset_calls(&e);
	CHECK_INT(do_lookup(&e, ROOT, "f", &ent), 0);
	CHECK_INT(ent.attr.st_mode, S_IFREG | 0644);
	CHECK_INT(ent.attr.st_size, 7);
	CHECK_INT(calls(&e, STORE_OP_LIST), 1);
	CHECK_INT(calls(&e, STORE_OP_HEAD), 1);
	CHECK_INT(total_calls(&e), 2);

	reset_calls(&e);
	CHECK_INT(do_lookup(&e, ROOT, "dironly", &ent), 0);
	CHECK_INT(ent.attr.st_mode, S_IFDIR | 0755);
	CHECK_INT(do_lookup(&e, ROOT, "marker", &ent), 0);
	CHECK_INT(ent.attr.st_mode, S_IFDIR | 0755);
	/* "n-x" and "n.txt" sort before "n/" */
	CHECK_INT(do_lookup(&e, ROOT, "n", &ent), 0);
	CHECK_INT(ent.attr.st_mode, S_IFDIR | 0755);
	CHECK_INT(total_calls(&e), 6);
	/* only "q-x": no "q" */
	CHECK_INT(do_lookup(&e, ROOT, "q", &ent), ENOENT);
	CHECK_INT(ent.ino, 0);

	/* more than a page of names between "m" and "m/": a second list settles it */
	reset_calls(&e);
	CHECK_INT(do_lookup(&e, ROOT, "m", &ent), 0);
	CHECK_INT(ent.attr.st_mode, S_IFDIR | 0755);
	CHECK_INT(calls(&e, STORE_OP_LIST), 2);
	CHECK_INT(calls(&e, STORE_OP_HEAD), 1);
	reset_calls(&e);
	CHECK_INT(do_lookup(&e, ROOT, "r", &ent), ENOENT);
	CHECK_INT(calls(&e, STORE_OP_LIST), 2);

	/* the HEAD's metadata gives mode, owner and mtime */
	CHECK_INT(do_lookup(&e, ROOT, "meta", &ent), 0);
	CHECK_INT(ent.attr.st_mode, S_IFREG | 0600);
	CHECK_INT(ent.attr.st_uid, 77);
	CHECK_INT(ent.attr.st_gid, CFG_GID);
	CHECK_INT(ent.attr.st_mtim.tv_sec, 1500000000);

	/* a missing name: a negative entry the kernel keeps for the negative TTL */
	reset_calls(&e);
	CHECK_INT(do_lookup(&e, ROOT, "ghost", &ent), ENOENT);
	CHECK_INT(last_kind, STUB_ENTRY);
	CHECK_INT(ent.ino, 0);
	CHECK(ent.entry_timeout == 0.5);
	CHECK_INT(total_calls(&e), 2);

	/* a known inode within the TTL: no request */
	reset_calls(&e);
	CHECK_INT(do_lookup(&e, ROOT, "f", &ent), 0);
	CHECK_INT(ent.attr.st_size, 7);
	CHECK_INT(total_calls(&e), 0);
	s = stats(&e);
	CHECK_INT(s.lookups_cached, 1);
	CHECK_INT(s.lookups_remote, 9);
	env_release(&e);
}

/*
 * A name missing from a fresh listing is answered with no request for the
 * metadata TTL, even when the object appears behind our back; once the TTL
 * has passed the store is asked again.
 */
TEST(test_negative_from_listing)
{
	struct env e;
	struct dlist l;
	struct fuse_entry_param ent;
	int64_t t0;

	env_init(&e, 0.3);
	put(&e, "present", "p");
	t0 = util_now_ms();
	CHECK_INT(list_dir(&e, ROOT, 1, 4096, &l), 0);
	forget_listed(&e, &l);
	dlist_release(&l);
	reset_calls(&e);
	CHECK_INT(do_lookup(&e, ROOT, "later", &ent), ENOENT);
	CHECK(ent.entry_timeout == 0.5);
	put(&e, "later", "now here");
	reset_calls(&e);
	if (util_now_ms() - t0 < 250) {
		CHECK_INT(do_lookup(&e, ROOT, "later", &ent), ENOENT);
		CHECK_INT(total_calls(&e), 0);
	}
	sleep_ms(350);
	reset_calls(&e);
	CHECK_INT(do_lookup(&e, ROOT, "later", &ent), 0);
	CHECK_INT(ent.attr.st_size, 8);
	/* one lookup now and then: its probe only (a HEAD and a LIST) */
	sleep_ms(50);
	CHECK_INT(total_calls(&e), 2);
	env_release(&e);
}

/* Keys that cannot be names are skipped and counted; such names are never looked up. */
TEST(test_unusable_keys)
{
	char long255[256], long256[258];
	const char *names[5];
	struct env e;
	struct dlist l;
	struct fuse_entry_param ent;
	fuse_ino_t a, x, dir;

	memset(long255, 'L', 255);
	long255[255] = '\0';
	memset(long256, 'M', 256);
	long256[256] = '\0';
	names[0] = long255;
	names[1] = "a";
	names[2] = "dir";
	names[3] = "ok";
	names[4] = "x";

	env_init(&e, 60);
	put(&e, "ok", "ok");
	put(&e, "a//b", "ab");
	put(&e, ".", "dot");
	put(&e, "..", "dotdot");
	put(&e, "./x", "dx");
	put(&e, "../y", "ddy");
	put(&e, "x/./z", "z");
	put(&e, "dir//", "");
	put(&e, long255, "255");
	put(&e, long256, "256");
	put(&e, "ctl\001name", "c");
	put(&e, "tab\tname", "t");

	CHECK_INT(list_dir(&e, ROOT, 1, 8192, &l), 0);
	check_names(&l, names, 5);
	CHECK_INT(stats(&e).skipped_keys, 7);
	forget_listed(&e, &l);
	dlist_release(&l);

	a = lookup_ino(&e, ROOT, "a");
	x = lookup_ino(&e, ROOT, "x");
	dir = lookup_ino(&e, ROOT, "dir");
	CHECK_INT(list_dir(&e, a, 1, 4096, &l), 0);
	check_names(&l, NULL, 0);
	dlist_release(&l);
	CHECK_INT(list_dir(&e, x, 1, 4096, &l), 0);
	check_names(&l, NULL, 0);
	dlist_release(&l);
	CHECK_INT(list_dir(&e, dir, 0, 4096, &l), 0);
	check_names(&l, NULL, 0);
	dlist_release(&l);
	CHECK_INT(stats(&e).skipped_keys, 10);

	reset_calls(&e);
	CHECK_INT(do_lookup(&e, ROOT, ".", &ent), ENOENT);
	CHECK_INT(do_lookup(&e, ROOT, "..", &ent), ENOENT);
	CHECK_INT(do_lookup(&e, ROOT, long256, &ent), ENAMETOOLONG);
	CHECK_INT(do_lookup(&e, ROOT, "ctl\001name", &ent), ENOENT);
	CHECK_INT(do_lookup(&e, x, ".", &ent), ENOENT);
	CHECK_INT(do_lookup(&e, a, "..", &ent), ENOENT);
	CHECK_INT(total_calls(&e), 0);
	CHECK_INT(do_lookup(&e, ROOT, long255, &ent), 0);
	CHECK_INT(ent.attr.st_size, 3);
	/* new names that could not be keys back */
	{
		uint64_t fh;
		CHECK_INT(do_create(&e, ROOT, long256, 0644, O_WRONLY, NULL, &fh), ENAMETOOLONG);
		CHECK_INT(do_mkdir(&e, ROOT, "bad\001dir", 0755, NULL), EINVAL);
		CHECK_INT(do_rename(&e, ROOT, "ok", ROOT, "..", 0), EINVAL);
	}
	CHECK_INT(calls(&e, STORE_OP_PUT) + calls(&e, STORE_OP_COPY), 0);
	env_release(&e);
}

/* ---- the metadata TTL ---- */

/* An object changed behind our back is seen once the TTL has passed, and not before. */
TEST(test_ttl_expiry)
{
	struct env e;
	struct fuse_entry_param ent;
	struct stat st;
	struct dlist l;
	fuse_ino_t t, d, f;
	int64_t t0;
	char *content;
	int rc;

	env_init(&e, 0.3);
	put(&e, "t", "abc");
	put(&e, "d/f", "x");
	t0 = util_now_ms();
	t = lookup_ino(&e, ROOT, "t");
	d = lookup_ino(&e, ROOT, "d");
	CHECK_INT(list_dir(&e, d, 1, 4096, &l), 0);
	f = dlist_find(&l, "f")->entry.ino;
	dlist_release(&l);
	put(&e, "t", "abcdefg");
	put(&e, "d/f", "xyz");
	reset_calls(&e);
	if (util_now_ms() - t0 < 250) {
		CHECK_INT(do_lookup(&e, ROOT, "t", &ent), 0);
		CHECK_INT(ent.attr.st_size, 3);
		CHECK_INT(do_getattr(&e, t, &st), 0);
		CHECK_INT(st.st_size, 3);
		CHECK_INT(do_lookup(&e, d, "f", &ent), 0);
		CHECK_INT(ent.attr.st_size, 1);
		CHECK_INT(total_calls(&e), 0);
	}
	sleep_ms(350);

	reset_calls(&e);
	CHECK_INT(do_getattr(&e, t, &st), 0);
	CHECK_INT(st.st_size, 7);
	CHECK_INT(calls(&e, STORE_OP_HEAD), 1);
	CHECK_INT(total_calls(&e), 1);
	/* the HEAD made it fresh again */
	CHECK_INT(do_lookup(&e, ROOT, "t", &ent), 0);
	CHECK_INT(ent.attr.st_size, 7);
	CHECK_INT(total_calls(&e), 1);

	/* the listing has expired too: the lookup asks the store */
	reset_calls(&e);
	CHECK_INT(do_lookup(&e, d, "f", &ent), 0);
	CHECK_INT(ent.ino, f);
	CHECK_INT(ent.attr.st_size, 3);
	CHECK_INT(calls(&e, STORE_OP_HEAD), 1);
	CHECK_INT(calls(&e, STORE_OP_LIST), 1);
	reset_calls(&e);
	CHECK_INT(list_dir(&e, d, 1, 4096, &l), 0);
	CHECK_INT(calls(&e, STORE_OP_LIST), 1);
	CHECK_INT(dlist_find(&l, "f")->entry.attr.st_size, 3);
	dlist_release(&l);

	/* an open after the TTL revalidates, and reads the new content */
	put(&e, "t", "0123456789");
	sleep_ms(350);
	reset_calls(&e);
	content = read_whole(&e, t, 4096, &rc);
	CHECK_INT(rc, 0);
	CHECK_STR(content, "0123456789");
	CHECK_INT(calls(&e, STORE_OP_HEAD), 1);
	free(content);
	env_release(&e);
}

/* metadata_ttl 0: every lookup, getattr and opendir goes to the store. */
TEST(test_ttl_zero)
{
	struct env e;
	struct fuse_entry_param ent;
	struct stat st;
	struct dlist l;
	fuse_ino_t t;

	env_init(&e, 0);
	put(&e, "t", "abc");
	CHECK_INT(list_dir(&e, ROOT, 1, 4096, &l), 0);
	dlist_release(&l);
	reset_calls(&e);
	CHECK_INT(list_dir(&e, ROOT, 1, 4096, &l), 0);
	CHECK_INT(calls(&e, STORE_OP_LIST), 1);
	dlist_release(&l);
	reset_calls(&e);
	CHECK_INT(do_lookup(&e, ROOT, "t", &ent), 0);
	t = ent.ino;
	CHECK(ent.entry_timeout == 0.0);
	CHECK_INT(total_calls(&e), 2);
	put(&e, "t", "abcd");
	reset_calls(&e);
	CHECK_INT(do_getattr(&e, t, &st), 0);
	CHECK_INT(st.st_size, 4);
	CHECK_INT(total_calls(&e), 1);
	CHECK_INT(do_lookup(&e, ROOT, "t", &ent), 0);
	CHECK_INT(ent.ino, t);
	CHECK_INT(total_calls(&e), 3);
	env_release(&e);
}

/* ---- files ---- */

/* create, write, flush, release: the object with its content and s3fs metadata. */
/*
 * A file created and still being written is not in the store yet: a listing
 * fetched again after the TTL must still show it (merged from our inodes),
 * in readdir and readdirplus, with its local size; once written it is listed
 * from the store.
 */
TEST(test_listing_keeps_unwritten_files)
{
	struct env e;
	struct fuse_entry_param ent;
	struct dlist l;
	const struct stub_dirent *de;
	uint64_t fh;
	fuse_ino_t d, ino;

	env_init(&e, 0.2);
	put(&e, "d/old", "x");
	d = lookup_ino(&e, ROOT, "d");
	CHECK_INT(list_dir(&e, d, 1, 4096, &l), 0);
	forget_listed(&e, &l);
	dlist_release(&l);
	CHECK_INT(do_create(&e, d, "new", 0644, O_WRONLY, &ent, &fh), 0);
	ino = ent.ino;
	CHECK_INT(do_write(&e, ino, fh, "12345", 5, 0), 5);
	sleep_ms(250);
	reset_calls(&e);
	for (int plus = 0; plus < 2; plus++) {
		CHECK_INT(list_dir(&e, d, plus, 4096, &l), 0);
		{
			static const char *const names[] = { "new", "old" };
			check_names(&l, names, 2);
		}
		de = dlist_find(&l, "new");
		CHECK(de != NULL);
		if (de && plus) {
			CHECK_INT(de->entry.ino, ino);
			CHECK_INT(de->entry.attr.st_size, 5);
		}
		if (plus)
			forget_listed(&e, &l);
		dlist_release(&l);
		sleep_ms(250); /* the second pass lists again, too */
	}
	CHECK_INT(calls(&e, STORE_OP_LIST), 2);
	CHECK(!exists(&e, "d/new"));
	CHECK_INT(do_close(&e, ino, fh), 0);
	CHECK(holds(&e, "d/new", "12345"));
	sleep_ms(250);
	CHECK_INT(list_dir(&e, d, 0, 4096, &l), 0);
	{
		static const char *const names[] = { "new", "old" };
		check_names(&l, names, 2);
	}
	dlist_release(&l);
	env_release(&e);
}

TEST(test_create_write_release)
{
	struct env e;
	struct fuse_entry_param ent;
	struct stat st;
	uint64_t fh;
	fuse_ino_t ino;
	char *content, v[32];
	int rc;

	env_init(&e, 60);
	CHECK_INT(do_create(&e, ROOT, "new.txt", 0640, O_WRONLY, &ent, &fh), 0);
	CHECK_INT(last_kind, STUB_CREATE);
	ino = ent.ino;
	CHECK(ino > ROOT);
	CHECK_INT(ent.attr.st_mode, S_IFREG | 0640);
	CHECK_INT(ent.attr.st_uid, CTX_UID);
	CHECK_INT(ent.attr.st_gid, CTX_GID);
	CHECK_INT(ent.attr.st_size, 0);
	CHECK_INT(total_calls(&e), 0);
	CHECK_INT(do_write(&e, ino, fh, "hello ", 6, 0), 6);
	CHECK_INT(do_write(&e, ino, fh, "world", 5, 6), 5);
	CHECK_INT(do_getattr(&e, ino, &st), 0);
	CHECK_INT(st.st_size, 11);
	CHECK_INT(do_lookup(&e, ROOT, "new.txt", &ent), 0);
	CHECK_INT(ent.ino, ino);
	CHECK_INT(stats(&e).dirty_files, 1);
	CHECK_INT(stats(&e).dirty_bytes, 11);
	CHECK(!exists(&e, "new.txt"));

	CHECK_INT(do_flush(&e, ino, fh), 0);
	CHECK(holds(&e, "new.txt", "hello world"));
	snprintf(v, sizeof(v), "%u", (unsigned)(S_IFREG | 0640));
	CHECK(meta_is(&e, "new.txt", "mode", v));
	CHECK(meta_is(&e, "new.txt", "uid", "1234"));
	CHECK(meta_is(&e, "new.txt", "gid", "5678"));
	CHECK_INT(stats(&e).dirty_files, 0);
	CHECK_INT(do_release(&e, ino, fh), 0);
	CHECK_INT(calls(&e, STORE_OP_PUT), 1);
	CHECK_INT(stats(&e).commits, 1);
	CHECK_INT(stats(&e).commit_failures, 0);

	/* the new file serves lookups with no request, and reads back */
	reset_calls(&e);
	CHECK_INT(do_lookup(&e, ROOT, "new.txt", &ent), 0);
	CHECK_INT(ent.attr.st_size, 11);
	CHECK_INT(ent.attr.st_mode, S_IFREG | 0640);
	CHECK_INT(total_calls(&e), 0);
	content = read_whole(&e, ino, 4096, &rc);
	CHECK_INT(rc, 0);
	CHECK_STR(content, "hello world");
	CHECK_INT(calls(&e, STORE_OP_HEAD), 0);
	CHECK(calls(&e, STORE_OP_GET) >= 1);
	free(content);

	/* fsync commits too; the second flush has nothing left to do */
	CHECK_INT(do_create(&e, ROOT, "synced", 0600, O_RDWR, &ent, &fh), 0);
	CHECK_INT(do_write(&e, ent.ino, fh, "s", 1, 0), 1);
	CHECK_INT(do_fsync(&e, ent.ino, fh), 0);
	CHECK(holds(&e, "synced", "s"));
	reset_calls(&e);
	CHECK_INT(do_close(&e, ent.ino, fh), 0);
	CHECK_INT(total_calls(&e), 0);
	env_release(&e);
}

/* Bigger than a part: a streaming multipart upload; random writes: a staged upload. */
TEST(test_write_multipart_and_random)
{
	struct env e;
	struct fuse_entry_param ent;
	uint64_t fh;
	size_t size = 5 * PART + 1234;
	char *data = pattern(size, 1), *content;
	int rc;

	env_init(&e, 60);
	CHECK_INT(do_create(&e, ROOT, "big.bin", 0644, O_WRONLY, &ent, &fh), 0);
	for (size_t off = 0; off < size; off += 32768) {
		size_t n = size - off < 32768 ? size - off : 32768;
		CHECK_INT(do_write(&e, ent.ino, fh, data + off, n, (off_t)off), n);
	}
	CHECK_INT(do_close(&e, ent.ino, fh), 0);
	CHECK(holds(&e, "big.bin", data));
	CHECK_INT(calls(&e, STORE_OP_MPU_CREATE), 1);
	CHECK_INT(calls(&e, STORE_OP_MPU_PART), 6);
	CHECK_INT(calls(&e, STORE_OP_MPU_COMPLETE), 1);
	CHECK_INT(calls(&e, STORE_OP_PUT), 0);

	/* ranged reads of it: start, middle, across parts, the tail, past the end */
	{
		char buf[9000];
		CHECK_INT(do_open(&e, ent.ino, O_RDONLY, &fh, NULL), 0);
		CHECK_INT(do_read(&e, ent.ino, fh, 4096, 0, buf), 4096);
		CHECK_MEM(buf, data, 4096);
		CHECK_INT(do_read(&e, ent.ino, fh, 5000, 100000, buf), 5000);
		CHECK_MEM(buf, data + 100000, 5000);
		CHECK_INT(do_read(&e, ent.ino, fh, 9000, PART - 4000, buf), 9000);
		CHECK_MEM(buf, data + PART - 4000, 9000);
		CHECK_INT(do_read(&e, ent.ino, fh, 9000, (off_t)size - 1000, buf), 1000);
		CHECK_MEM(buf, data + size - 1000, 1000);
		CHECK_INT(do_read(&e, ent.ino, fh, 100, (off_t)size, buf), 0);
		CHECK_INT(do_read(&e, ent.ino, fh, 100, (off_t)size + 5000, buf), 0);
		CHECK_INT(do_release(&e, ent.ino, fh), 0);
	}
	content = read_whole(&e, ent.ino, 65536, &rc);
	CHECK_INT(rc, 0);
	CHECK(content && strcmp(content, data) == 0);
	free(content);

	/* out of order, then read back before the commit */
	{
		char buf[16];
		CHECK_INT(do_create(&e, ROOT, "rand", 0644, O_RDWR, &ent, &fh), 0);
		CHECK_INT(do_write(&e, ent.ino, fh, "world", 5, 6), 5);
		CHECK_INT(do_write(&e, ent.ino, fh, "hello ", 6, 0), 6);
		CHECK_INT(do_read(&e, ent.ino, fh, sizeof(buf), 0, buf), 11);
		CHECK_MEM(buf, "hello world", 11);
		CHECK_INT(do_close(&e, ent.ino, fh), 0);
		CHECK(holds(&e, "rand", "hello world"));
	}

	/* O_TRUNC over an existing object */
	{
		fuse_ino_t ino = lookup_ino(&e, ROOT, "rand");
		CHECK_INT(do_open(&e, ino, O_WRONLY | O_TRUNC, &fh, NULL), 0);
		CHECK_INT(do_write(&e, ino, fh, "short", 5, 0), 5);
		CHECK_INT(do_close(&e, ino, fh), 0);
		CHECK(holds(&e, "rand", "short"));
	}
	free(data);
	env_release(&e);
}

/* Reopening an unchanged object keeps the kernel's page cache; a changed one does not. */
TEST(test_open_keep_cache)
{
	struct env e;
	uint64_t fh;
	int keep = -1;
	fuse_ino_t ino;

	env_init(&e, 0);
	put(&e, "k", "version 1");
	ino = lookup_ino(&e, ROOT, "k");
	CHECK_INT(do_open(&e, ino, O_RDONLY, &fh, &keep), 0);
	CHECK_INT(keep, 0);
	CHECK_INT(do_release(&e, ino, fh), 0);
	CHECK_INT(do_open(&e, ino, O_RDONLY, &fh, &keep), 0);
	CHECK_INT(keep, 1);
	CHECK_INT(do_release(&e, ino, fh), 0);
	put(&e, "k", "version 2");
	CHECK_INT(do_open(&e, ino, O_RDONLY, &fh, &keep), 0);
	CHECK_INT(keep, 0);
	CHECK_INT(do_release(&e, ino, fh), 0);
	env_release(&e);
}

/*
 * A commit the store refuses: flush returns the error, nothing wrong is left
 * in the store, and the mount stops showing data the store does not have.
 */
TEST(test_flush_failure)
{
	struct env e;
	struct fuse_entry_param ent;
	struct stat st;
	struct dlist l;
	uint64_t fh, fh2;
	fuse_ino_t ino;
	char *content;
	int rc;

	env_init(&e, 60);
	put(&e, "keep", "old content");
	/* the root's listing is fresh while the file is created */
	CHECK_INT(list_dir(&e, ROOT, 1, 4096, &l), 0);
	forget_listed(&e, &l);
	dlist_release(&l);

	/* a new file, its only handle: lost, and said so */
	CHECK_INT(do_create(&e, ROOT, "f1", 0644, O_WRONLY, &ent, &fh), 0);
	ino = ent.ino;
	CHECK_INT(do_write(&e, ino, fh, "data", 4, 0), 4);
	store_fault_fail_next(e.top, STORE_OP_PUT, 1, CM_E_ACCESS_DENIED);
	CHECK_INT(do_flush(&e, ino, fh), EACCES);
	CHECK_INT(store_fault_injected(e.top), 1);
	CHECK_INT(do_release(&e, ino, fh), 0);
	CHECK(!exists(&e, "f1"));
	CHECK_INT(stats(&e).commit_failures, 1);
	CHECK_INT(stats(&e).dirty_files, 0);
	CHECK_INT(e.se.inval_inode, 1);
	CHECK_INT(e.se.last_inval_ino, ino);
	CHECK_INT(do_getattr(&e, ino, &st), ENOENT);
	CHECK_INT(do_lookup(&e, ROOT, "f1", &ent), ENOENT);
	CHECK_INT(list_dir(&e, ROOT, 1, 4096, &l), 0);
	CHECK(dlist_find(&l, "f1") == NULL);
	CHECK(dlist_find(&l, "keep") != NULL);
	forget_listed(&e, &l);
	dlist_release(&l);
	do_forget(&e, ino, 1);

	/* two handles: the failed flush keeps the data for the other one to commit */
	CHECK_INT(do_create(&e, ROOT, "f2", 0644, O_WRONLY, &ent, &fh), 0);
	ino = ent.ino;
	CHECK_INT(do_open(&e, ino, O_WRONLY, &fh2, NULL), 0);
	CHECK_INT(do_write(&e, ino, fh, "abc", 3, 0), 3);
	/* (a transient failure is tried three times) */
	store_fault_fail_next(e.top, STORE_OP_PUT, 3, CM_E_TRANSIENT);
	CHECK_INT(do_flush(&e, ino, fh), EIO);
	CHECK_INT(store_fault_injected(e.top), 4);
	CHECK_INT(stats(&e).dirty_files, 1);
	CHECK_INT(do_close(&e, ino, fh), 0);
	CHECK_INT(do_close(&e, ino, fh2), 0);
	CHECK(holds(&e, "f2", "abc"));

	/* an existing object: a failed rewrite leaves the old content, and the mount shows it */
	ino = lookup_ino(&e, ROOT, "keep");
	CHECK_INT(do_open(&e, ino, O_WRONLY | O_TRUNC, &fh, NULL), 0);
	CHECK_INT(do_write(&e, ino, fh, "new", 3, 0), 3);
	CHECK_INT(do_getattr(&e, ino, &st), 0);
	CHECK_INT(st.st_size, 3);
	store_fault_fail_next(e.top, STORE_OP_PUT, 3, CM_E_NETWORK);
	CHECK_INT(do_close(&e, ino, fh), EHOSTUNREACH);
	CHECK(holds(&e, "keep", "old content"));
	CHECK_INT(do_getattr(&e, ino, &st), 0);
	CHECK_INT(st.st_size, 11);
	content = read_whole(&e, ino, 4096, &rc);
	CHECK_INT(rc, 0);
	CHECK_STR(content, "old content");
	free(content);

	/* a multipart upload that fails is aborted */
	{
		size_t size = 3 * PART;
		char *data = pattern(size, 2);
		CHECK_INT(do_create(&e, ROOT, "mp", 0644, O_WRONLY, &ent, &fh), 0);
		CHECK_INT(do_write(&e, ent.ino, fh, data, size, 0), size);
		store_fault_fail_next(e.top, STORE_OP_MPU_COMPLETE, 1, CM_E_ACCESS_DENIED);
		CHECK_INT(do_close(&e, ent.ino, fh), EACCES);
		CHECK(!exists(&e, "mp"));
		CHECK_INT(store_mem_pending_uploads(e.mem), 0);
		free(data);
	}
	env_release(&e);
}

/* An open file stays readable after unlink (a local copy is kept). */
TEST(test_unlink_open_file)
{
	struct env e;
	struct fuse_entry_param ent;
	uint64_t fh;
	char buf[16];

	env_init(&e, 60);
	CHECK_INT(do_create(&e, ROOT, "o", 0644, O_RDWR, &ent, &fh), 0);
	CHECK_INT(do_write(&e, ent.ino, fh, "keepme", 6, 0), 6);
	CHECK_INT(do_flush(&e, ent.ino, fh), 0);
	CHECK(holds(&e, "o", "keepme"));
	CHECK_INT(do_unlink(&e, ROOT, "o"), 0);
	CHECK(!exists(&e, "o"));
	CHECK_INT(do_read(&e, ent.ino, fh, sizeof(buf), 0, buf), 6);
	CHECK_MEM(buf, "keepme", 6);
	CHECK_INT(do_write(&e, ent.ino, fh, "K", 1, 0), 1);
	CHECK_INT(do_close(&e, ent.ino, fh), 0);
	CHECK(!exists(&e, "o")); /* written after the unlink: never stored */
	CHECK_INT(do_lookup(&e, ROOT, "o", &ent), ENOENT);
	env_release(&e);
}

/* ---- namespace ---- */

TEST(test_mkdir_rmdir_unlink)
{
	struct env e;
	struct fuse_entry_param ent;
	uint64_t fh;
	fuse_ino_t nd;
	char v[32];

	env_init(&e, 60);
	CHECK_INT(do_mkdir(&e, ROOT, "nd", 0750, &ent), 0);
	nd = ent.ino;
	CHECK_INT(ent.attr.st_mode, S_IFDIR | 0750);
	CHECK_INT(ent.attr.st_uid, CTX_UID);
	CHECK_INT(calls(&e, STORE_OP_PUT), 1);
	CHECK_INT(total_calls(&e), 1);
	CHECK(holds(&e, "nd/", ""));
	snprintf(v, sizeof(v), "%u", (unsigned)(S_IFDIR | 0750));
	CHECK(meta_is(&e, "nd/", "mode", v)); /* (a HEAD of the mem store: counted) */
	/* a directory just made is empty: no request to look into it */
	reset_calls(&e);
	CHECK_INT(do_lookup(&e, nd, "anything", &ent), ENOENT);
	CHECK_INT(do_mkdir(&e, ROOT, "nd", 0755, NULL), EEXIST);
	CHECK_INT(total_calls(&e), 0);

	/* not empty: refused, nothing deleted */
	put(&e, "full/x", "x");
	lookup_ino(&e, ROOT, "full");
	CHECK_INT(do_rmdir(&e, ROOT, "full"), ENOTEMPTY);
	CHECK(exists(&e, "full/x"));
	/* a marker with a committed file in it */
	CHECK_INT(do_create(&e, nd, "inside", 0644, O_WRONLY, &ent, &fh), 0);
	CHECK_INT(do_close(&e, ent.ino, fh), 0);
	CHECK(holds(&e, "nd/inside", ""));
	CHECK_INT(do_rmdir(&e, ROOT, "nd"), ENOTEMPTY);
	CHECK_INT(do_unlink(&e, nd, "inside"), 0);
	CHECK(!exists(&e, "nd/inside"));
	CHECK_INT(do_lookup(&e, nd, "inside", &ent), ENOENT);

	reset_calls(&e);
	CHECK_INT(do_rmdir(&e, ROOT, "nd"), 0);
	CHECK(!exists(&e, "nd/"));
	CHECK_INT(calls(&e, STORE_OP_DEL), 1);
	CHECK_INT(do_lookup(&e, ROOT, "nd", &ent), ENOENT);

	/* unlink of an object never listed */
	put(&e, "u", "u");
	lookup_ino(&e, ROOT, "u");
	reset_calls(&e);
	CHECK_INT(do_unlink(&e, ROOT, "u"), 0);
	CHECK(!exists(&e, "u"));
	CHECK_INT(calls(&e, STORE_OP_DEL), 1);
	CHECK_INT(do_lookup(&e, ROOT, "u", &ent), ENOENT);
	CHECK_INT(store_mem_count(e.mem), 1); /* full/x */
	env_release(&e);
}

TEST(test_rename_file)
{
	struct env e;
	struct fuse_entry_param ent;
	fuse_ino_t src, dst, sub;
	uint64_t fh;
	struct stat st;

	env_init(&e, 60);
	put(&e, "src", "AAA");
	put(&e, "dst", "BBBBB");
	src = lookup_ino(&e, ROOT, "src");
	dst = lookup_ino(&e, ROOT, "dst");
	CHECK_INT(do_rename(&e, ROOT, "src", ROOT, "dst", RENAME_NOREPLACE), EEXIST);
	reset_calls(&e);
	CHECK_INT(do_rename(&e, ROOT, "src", ROOT, "dst", 0), 0);
	CHECK(holds(&e, "dst", "AAA"));
	CHECK(!exists(&e, "src"));
	CHECK_INT(calls(&e, STORE_OP_COPY), 1);
	CHECK_INT(calls(&e, STORE_OP_DEL), 1);
	reset_calls(&e);
	CHECK_INT(do_lookup(&e, ROOT, "dst", &ent), 0);
	CHECK_INT(ent.ino, src);
	CHECK_INT(ent.attr.st_size, 3);
	CHECK_INT(total_calls(&e), 0);
	CHECK_INT(do_lookup(&e, ROOT, "src", &ent), ENOENT);
	/* the replaced inode lives on while the kernel holds it */
	CHECK_INT(do_getattr(&e, dst, &st), 0);
	do_forget(&e, dst, 1);
	CHECK_INT(do_getattr(&e, dst, &st), ENOENT);

	/* into another directory */
	CHECK_INT(do_mkdir(&e, ROOT, "sub", 0755, &ent), 0);
	sub = ent.ino;
	CHECK_INT(do_rename(&e, ROOT, "dst", sub, "moved", 0), 0);
	CHECK(holds(&e, "sub/moved", "AAA"));
	CHECK(!exists(&e, "dst"));
	CHECK_INT(lookup_ino(&e, sub, "moved"), src);
	CHECK_INT(do_rename(&e, ROOT, "absent", ROOT, "x", 0), ENOENT);

	/* a file still being written is committed first, under its new name */
	CHECK_INT(do_create(&e, ROOT, "w", 0644, O_WRONLY, &ent, &fh), 0);
	CHECK_INT(do_write(&e, ent.ino, fh, "xyz", 3, 0), 3);
	CHECK_INT(do_rename(&e, ROOT, "w", ROOT, "w2", 0), 0);
	CHECK(holds(&e, "w2", "xyz"));
	CHECK(!exists(&e, "w"));
	CHECK_INT(do_write(&e, ent.ino, fh, "!", 1, 3), 1);
	CHECK_INT(do_close(&e, ent.ino, fh), 0);
	CHECK(holds(&e, "w2", "xyz!"));
	CHECK(!exists(&e, "w"));
	env_release(&e);
}

/*
 * A rename whose copy landed but whose source could not be deleted, nor the
 * copy taken back: the store has both names, and so must the mount, at once
 * (the kernel's idea of the new name is dropped), not only after the TTL.
 */
struct truncate_arg {
	struct env *e;
	fuse_ino_t ino;
	off_t size;
	int rc;
};

static void *truncate_thread(void *p)
{
	struct truncate_arg *a = p;
	struct stat attr;

	memset(&attr, 0, sizeof(attr));
	attr.st_size = a->size;
	a->rc = do_setattr(a->e, a->ino, &attr, FUSE_SET_ATTR_SIZE, NULL);
	return NULL;
}

/*
 * The kernel sends RELEASE after close() has returned, so a program's
 * truncate(path) right after a close can run beside the release of that
 * handle. The release must not take the truncate's data away from it (it
 * once freed it under the truncate's commit), and the truncate is stored.
 */
TEST(test_truncate_races_release)
{
	struct env e;
	struct truncate_arg a;
	pthread_t t;
	uint64_t fh;
	fuse_ino_t ino;

	for (int writable = 0; writable < 2; writable++) {
		env_init(&e, 60);
		put(&e, "f", "0123456789");
		ino = lookup_ino(&e, ROOT, "f");
		CHECK_INT(do_open(&e, ino, writable ? O_RDWR : O_RDONLY, &fh, NULL), 0);
		if (writable)
			CHECK_INT(do_flush(&e, ino, fh), 0);
		store_fault_set_delay(e.top, 80);
		a = (struct truncate_arg){ .e = &e, .ino = ino, .size = 4 };
		REQUIRE(pthread_create(&t, NULL, truncate_thread, &a) == 0);
		sleep_ms(30); /* the truncate is fetching or storing */
		CHECK_INT(do_release(&e, ino, fh), 0);
		pthread_join(t, NULL);
		store_fault_set_delay(e.top, 0);
		CHECK_INT(a.rc, 0);
		CHECK(holds(&e, "f", "0123"));
		CHECK_INT(stats(&e).dirty_files, 0);
		env_release(&e);
	}
}

/*
 * A close that failed may have stored the data after all (its answer lost):
 * the directory's listing, fresh as it is, must not answer for that name
 * afterwards; getattr and lookup ask the store.
 */
TEST(test_failed_close_distrusts_listing)
{
	struct env e;
	struct fuse_entry_param ent;
	struct stat st;
	struct dlist l;
	uint64_t fh;
	fuse_ino_t ino;

	env_init(&e, 60);
	put(&e, "f", "old");
	put(&e, "g", "other");
	CHECK_INT(list_dir(&e, ROOT, 1, 4096, &l), 0);
	ino = dlist_find(&l, "f")->entry.ino;
	dlist_release(&l);
	CHECK_INT(do_open(&e, ino, O_WRONLY | O_TRUNC, &fh, NULL), 0);
	CHECK_INT(do_write(&e, ino, fh, "new content", 11, 0), 11);
	store_fault_fail_next(e.top, STORE_OP_PUT, 1, CM_E_ACCESS_DENIED);
	CHECK_INT(do_flush(&e, ino, fh), EACCES);
	CHECK_INT(do_release(&e, ino, fh), 0);
	put(&e, "f", "landed after all"); /* what the store has now */
	reset_calls(&e);
	CHECK_INT(do_getattr(&e, ino, &st), 0);
	CHECK_INT(st.st_size, 16);
	CHECK_INT(calls(&e, STORE_OP_HEAD), 1);
	CHECK_INT(do_lookup(&e, ROOT, "f", &ent), 0);
	CHECK_INT(ent.attr.st_size, 16);
	CHECK_INT(do_lookup(&e, ROOT, "g", &ent), 0); /* its siblings are still known */
	CHECK_INT(ent.attr.st_size, 5);
	env_release(&e);
}

TEST(test_rename_leaves_both)
{
	struct env e;
	struct fuse_entry_param ent;
	struct dlist l;

	env_init(&e, 60);
	put(&e, "a", "content");
	put(&e, "b", "old b");
	CHECK_INT(list_dir(&e, ROOT, 1, 4096, &l), 0); /* the kernel now knows a and b */
	dlist_release(&l);
	CHECK_INT(do_lookup(&e, ROOT, "c", &ent), ENOENT);
	store_fault_fail_next(e.top, STORE_OP_DEL, 2, CM_E_ACCESS_DENIED);
	CHECK_INT(do_rename(&e, ROOT, "a", ROOT, "c", 0), EACCES);
	CHECK(holds(&e, "a", "content"));
	CHECK(holds(&e, "c", "content"));
	CHECK_INT(e.se.inval_entry, 1);
	CHECK_INT(do_lookup(&e, ROOT, "c", &ent), 0);
	CHECK_INT(ent.attr.st_size, 7);
	CHECK_INT(do_lookup(&e, ROOT, "a", &ent), 0);
	/* over an existing file: the copy replaced it, its old size must go */
	store_fault_fail_next(e.top, STORE_OP_DEL, 1, CM_E_ACCESS_DENIED);
	CHECK_INT(do_lookup(&e, ROOT, "b", &ent), 0);
	CHECK_INT(ent.attr.st_size, 5);
	CHECK_INT(do_rename(&e, ROOT, "a", ROOT, "b", 0), EACCES);
	CHECK(holds(&e, "b", "content"));
	CHECK(e.se.inval_inode >= 1);
	CHECK_INT(do_lookup(&e, ROOT, "b", &ent), 0);
	CHECK_INT(ent.attr.st_size, 7);
	env_release(&e);
}

TEST(test_rename_dir)
{
	struct env e;
	struct fuse_entry_param ent;
	fuse_ino_t od, a, s;
	char *content;
	int rc;

	env_init(&e, 60);
	put(&e, "od/", "");
	put(&e, "od/a", "1");
	put(&e, "od/s/b", "22");
	put(&e, "odd", "not in it");
	put(&e, "file", "f");
	put(&e, "full2/x", "x");
	od = lookup_ino(&e, ROOT, "od");
	a = lookup_ino(&e, od, "a");
	s = lookup_ino(&e, od, "s");
	lookup_ino(&e, ROOT, "file");
	lookup_ino(&e, ROOT, "full2");

	CHECK_INT(do_rename(&e, ROOT, "od", od, "inner", 0), EINVAL);
	CHECK_INT(do_rename(&e, ROOT, "od", ROOT, "full2", 0), ENOTEMPTY);
	CHECK_INT(do_rename(&e, ROOT, "od", ROOT, "file", 0), ENOTDIR);
	CHECK_INT(do_rename(&e, ROOT, "file", ROOT, "od", 0), EISDIR);
	CHECK(exists(&e, "od/a") && exists(&e, "full2/x") && exists(&e, "file"));

	CHECK_INT(do_rename(&e, ROOT, "od", ROOT, "nd", 0), 0);
	CHECK(holds(&e, "nd/", ""));
	CHECK(holds(&e, "nd/a", "1"));
	CHECK(holds(&e, "nd/s/b", "22"));
	CHECK(!exists(&e, "od/") && !exists(&e, "od/a") && !exists(&e, "od/s/b"));
	CHECK(holds(&e, "odd", "not in it"));
	CHECK_INT(store_mem_count(e.mem), 6);
	CHECK_INT(do_lookup(&e, ROOT, "od", &ent), ENOENT);
	CHECK_INT(lookup_ino(&e, ROOT, "nd"), od);
	CHECK_INT(lookup_ino(&e, od, "a"), a);
	CHECK_INT(lookup_ino(&e, s, "b") != 0, 1);
	content = read_whole(&e, a, 4096, &rc);
	CHECK_INT(rc, 0);
	CHECK_STR(content, "1");
	free(content);
	env_release(&e);
}

/* chmod, chown, utimens: in the object's s3fs metadata, the content untouched; truncate. */
TEST(test_setattr)
{
	struct env e;
	struct stat a, st;
	fuse_ino_t m, pd, tr;
	char v[32];

	env_init(&e, 60);
	put(&e, "m", "content");
	put(&e, "pd/x", "x");
	put(&e, "tr", "0123456789");
	m = lookup_ino(&e, ROOT, "m");
	pd = lookup_ino(&e, ROOT, "pd");
	tr = lookup_ino(&e, ROOT, "tr");

	reset_calls(&e);
	CHECK_INT(do_chmod(&e, m, 0600, &st), 0);
	CHECK_INT(last_kind, STUB_ATTR);
	CHECK_INT(st.st_mode, S_IFREG | 0600);
	snprintf(v, sizeof(v), "%u", (unsigned)(S_IFREG | 0600));
	CHECK(meta_is(&e, "m", "mode", v));
	CHECK(holds(&e, "m", "content"));
	CHECK_INT(calls(&e, STORE_OP_COPY), 1);
	CHECK_INT(calls(&e, STORE_OP_PUT) + calls(&e, STORE_OP_GET), 0);

	memset(&a, 0, sizeof(a));
	a.st_mtim.tv_sec = 1234567890;
	a.st_mtim.tv_nsec = 5;
	CHECK_INT(do_setattr(&e, m, &a, FUSE_SET_ATTR_MTIME, &st), 0);
	CHECK_INT(st.st_mtim.tv_sec, 1234567890);
	CHECK_INT(st.st_mtim.tv_nsec, 5);
	CHECK(meta_is(&e, "m", "mtime", "1234567890"));
	CHECK(meta_is(&e, "m", "mtime-nsec", "5"));
	CHECK(meta_is(&e, "m", "mode", v));
	a.st_uid = 42;
	CHECK_INT(do_setattr(&e, m, &a, FUSE_SET_ATTR_UID, &st), 0);
	CHECK_INT(st.st_uid, 42);
	CHECK(meta_is(&e, "m", "uid", "42"));
	CHECK(holds(&e, "m", "content"));
	/* a remount reads it all back from the headers */
	env_restart(&e);
	{
		struct fuse_entry_param ent;
		CHECK_INT(do_lookup(&e, ROOT, "m", &ent), 0);
		CHECK_INT(ent.attr.st_mode, S_IFREG | 0600);
		CHECK_INT(ent.attr.st_uid, 42);
		CHECK_INT(ent.attr.st_mtim.tv_sec, 1234567890);
		CHECK_INT(ent.attr.st_mtim.tv_nsec, 5);
		m = ent.ino;
	}
	pd = lookup_ino(&e, ROOT, "pd");
	tr = lookup_ino(&e, ROOT, "tr");

	/* a directory that is only a prefix gets a marker to hold its metadata */
	CHECK(!exists(&e, "pd/"));
	CHECK_INT(do_chmod(&e, pd, 0700, &st), 0);
	CHECK_INT(st.st_mode, S_IFDIR | 0700);
	snprintf(v, sizeof(v), "%u", (unsigned)(S_IFDIR | 0700));
	CHECK(meta_is(&e, "pd/", "mode", v));
	CHECK(holds(&e, "pd/x", "x"));

	/* truncate of a file nobody has open */
	memset(&a, 0, sizeof(a));
	a.st_size = 4;
	CHECK_INT(do_setattr(&e, tr, &a, FUSE_SET_ATTR_SIZE, &st), 0);
	CHECK_INT(st.st_size, 4);
	CHECK(holds(&e, "tr", "0123"));
	a.st_size = 0;
	CHECK_INT(do_setattr(&e, tr, &a, FUSE_SET_ATTR_SIZE, &st), 0);
	CHECK_INT(st.st_size, 0);
	CHECK(holds(&e, "tr", ""));

	/* a chmod the store refuses: the error, and the mount keeps showing the old mode */
	store_fault_fail_next(e.top, STORE_OP_COPY, 1, CM_E_ACCESS_DENIED);
	CHECK_INT(do_chmod(&e, m, 0777, NULL), EACCES);
	CHECK_INT(do_getattr(&e, m, &st), 0);
	CHECK_INT(st.st_mode, S_IFREG | 0600);
	snprintf(v, sizeof(v), "%u", (unsigned)(S_IFREG | 0600));
	CHECK(meta_is(&e, "m", "mode", v));
	/* a truncate to a size other than 0 only fails with the store's error too */
	store_fault_fail_next(e.top, STORE_OP_PUT, 1, CM_E_ACCESS_DENIED);
	a.st_size = 2;
	CHECK_INT(do_setattr(&e, m, &a, FUSE_SET_ATTR_SIZE, NULL), EACCES);
	CHECK(holds(&e, "m", "content"));
	CHECK_INT(do_getattr(&e, m, &st), 0);
	CHECK_INT(st.st_size, 7);
	env_release(&e);
}

TEST(test_symlink)
{
	struct env e;
	struct fuse_req r;
	struct fuse_entry_param ent;
	char v[32];

	env_init(&e, 60);
	req_begin(&e, &r);
	e.ops->symlink(&r, "target/path", ROOT, "ln");
	CHECK_INT(req_end(&r, "symlink"), 0);
	CHECK_INT(r.entry.attr.st_mode, S_IFLNK | 0777);
	CHECK_INT(r.entry.attr.st_size, 11);
	CHECK(holds(&e, "ln", "target/path"));
	snprintf(v, sizeof(v), "%u", (unsigned)(S_IFLNK | 0777));
	CHECK(meta_is(&e, "ln", "mode", v));
	ent = r.entry;
	reset_calls(&e);
	req_begin(&e, &r);
	e.ops->readlink(&r, ent.ino);
	CHECK_INT(req_end(&r, "readlink"), 0);
	CHECK_STR(r.data, "target/path");
	stub_req_release(&r);
	CHECK_INT(total_calls(&e), 0);

	/* after a remount: the HEAD says symlink, readlink fetches the body */
	env_restart(&e);
	CHECK_INT(do_lookup(&e, ROOT, "ln", &ent), 0);
	CHECK_INT(ent.attr.st_mode, S_IFLNK | 0777);
	req_begin(&e, &r);
	e.ops->readlink(&r, ent.ino);
	CHECK_INT(req_end(&r, "readlink"), 0);
	CHECK_STR(r.data, "target/path");
	stub_req_release(&r);
	env_release(&e);
}

/* --posix-metadata: one HEAD per listed file, once; a remount over the metadata cache needs none. */
TEST(test_posix_metadata_cache)
{
	struct env e;
	struct dlist l;

	env_setup(&e, 60);
	open_metacache(&e);
	e.cfg.posix_metadata = 1;
	env_start(&e);
	put_with_meta(&e, "p1", "1", S_IFREG | 0600, 501, 1600000000);
	put_with_meta(&e, "p2", "22", S_IFREG | 0640, 502, 1600000001);
	put_with_meta(&e, "ln", "p1", S_IFLNK | 0777, 503, 0);
	put(&e, "plain", "333");
	put(&e, "d/x", "x");

	CHECK_INT(list_dir(&e, ROOT, 1, 4096, &l), 0);
	CHECK_INT(calls(&e, STORE_OP_HEAD), 4);
	CHECK_INT(stats(&e).heads, 4);
	CHECK_INT(dlist_find(&l, "p1")->entry.attr.st_mode, S_IFREG | 0600);
	CHECK_INT(dlist_find(&l, "p1")->entry.attr.st_uid, 501);
	CHECK_INT(dlist_find(&l, "p1")->entry.attr.st_mtim.tv_sec, 1600000000);
	CHECK_INT(dlist_find(&l, "p2")->entry.attr.st_mode, S_IFREG | 0640);
	CHECK_INT(dlist_find(&l, "ln")->entry.attr.st_mode, S_IFLNK | 0777);
	CHECK_INT(dlist_find(&l, "plain")->entry.attr.st_mode, S_IFREG | 0644);
	dlist_release(&l);

	env_restart(&e);
	reset_calls(&e);
	CHECK_INT(list_dir(&e, ROOT, 1, 4096, &l), 0);
	CHECK_INT(calls(&e, STORE_OP_HEAD), 1); /* only "plain": it has no metadata to remember */
	CHECK_INT(calls(&e, STORE_OP_LIST), 1);
	CHECK_INT(dlist_find(&l, "p1")->entry.attr.st_mode, S_IFREG | 0600);
	CHECK_INT(dlist_find(&l, "p2")->entry.attr.st_uid, 502);
	CHECK_INT(dlist_find(&l, "ln")->entry.attr.st_mode, S_IFLNK | 0777);
	dlist_release(&l);
	env_release(&e);
}

TEST(test_misc_ops)
{
	struct env e;
	struct fuse_req r;
	struct stat a;
	uint64_t fh;
	fuse_ino_t f;

	env_init(&e, 60);
	put(&e, "f", "f");
	f = lookup_ino(&e, ROOT, "f");
	req_begin(&e, &r);
	e.ops->statfs(&r, ROOT);
	CHECK_INT(req_end(&r, "statfs"), 0);
	CHECK_INT(r.kind, STUB_STATFS);
	CHECK_INT(r.statfs.f_namemax, 255);
	CHECK(r.statfs.f_bavail > 0);
	req_begin(&e, &r);
	/* no xattrs: ENOSYS, so the kernel stops asking (ls -l asks twice per file) */
	e.ops->getxattr(&r, f, "user.x", 0);
	CHECK_INT(req_end(&r, "getxattr"), ENOSYS);
	req_begin(&e, &r);
	e.ops->listxattr(&r, f, 0);
	CHECK_INT(req_end(&r, "listxattr"), ENOSYS);
	req_begin(&e, &r);
	e.ops->link(&r, f, ROOT, "hard");
	CHECK_INT(req_end(&r, "link"), EPERM);
	{
		struct fuse_entry_param ent;
		fuse_ino_t d;
		CHECK_INT(do_mkdir(&e, ROOT, "dd", 0755, &ent), 0);
		d = ent.ino;
		CHECK_INT(do_open(&e, d, O_RDONLY, &fh, NULL), EISDIR);
		memset(&a, 0, sizeof(a));
		a.st_size = 0;
		CHECK_INT(do_setattr(&e, d, &a, FUSE_SET_ATTR_SIZE, NULL), EISDIR);
	}
	CHECK_INT(do_getattr(&e, 987654, NULL), ENOENT);
	CHECK_INT(do_lookup(&e, 987654, "x", NULL), ENOENT);
	CHECK_INT(do_opendir(&e, 987654, &fh), ENOENT);
	CHECK_INT(do_mkdir(&e, 987654, "x", 0755, NULL), ENOENT);
	env_release(&e);

	/* read-only: every change refused before it reaches the store */
	env_setup(&e, 60);
	e.cfg.read_only = 1;
	env_start(&e);
	put(&e, "f", "f");
	f = lookup_ino(&e, ROOT, "f");
	reset_calls(&e);
	CHECK_INT(do_create(&e, ROOT, "n", 0644, O_WRONLY, NULL, &fh), EROFS);
	CHECK_INT(do_mkdir(&e, ROOT, "n", 0755, NULL), EROFS);
	CHECK_INT(do_unlink(&e, ROOT, "f"), EROFS);
	CHECK_INT(do_rmdir(&e, ROOT, "f"), EROFS);
	CHECK_INT(do_rename(&e, ROOT, "f", ROOT, "g", 0), EROFS);
	CHECK_INT(do_open(&e, f, O_WRONLY, &fh, NULL), EROFS);
	CHECK_INT(do_chmod(&e, f, 0600, NULL), EROFS);
	CHECK_INT(total_calls(&e), 0);
	CHECK_INT(do_open(&e, f, O_RDONLY, &fh, NULL), 0);
	CHECK_INT(do_release(&e, f, fh), 0);
	env_release(&e);
}

/* fs_commit_all (unmount) stores every dirty file. */
TEST(test_commit_all)
{
	struct env e;
	struct fuse_entry_param ent1, ent2;
	uint64_t fh1, fh2;

	env_init(&e, 60);
	CHECK_INT(do_create(&e, ROOT, "c1", 0644, O_WRONLY, &ent1, &fh1), 0);
	CHECK_INT(do_create(&e, ROOT, "c2", 0644, O_WRONLY, &ent2, &fh2), 0);
	CHECK_INT(do_write(&e, ent1.ino, fh1, "one", 3, 0), 3);
	CHECK_INT(do_write(&e, ent2.ino, fh2, "two!", 4, 0), 4);
	CHECK_INT(stats(&e).dirty_files, 2);
	CHECK_INT(stats(&e).dirty_bytes, 7);
	CHECK_INT(fs_commit_all(e.fs), 0);
	CHECK(holds(&e, "c1", "one"));
	CHECK(holds(&e, "c2", "two!"));
	CHECK_INT(stats(&e).dirty_files, 0);
	CHECK_INT(do_write(&e, ent1.ino, fh1, "ONE", 3, 0), 3);
	store_fault_fail_next(e.top, STORE_OP_PUT, 5, CM_E_ACCESS_DENIED);
	CHECK_INT(fs_commit_all(e.fs), 1);
	CHECK(holds(&e, "c1", "one"));
	store_fault_fail_next(e.top, STORE_OP_PUT, 0, CM_OK);
	CHECK_INT(do_close(&e, ent1.ino, fh1), 0);
	CHECK_INT(do_close(&e, ent2.ino, fh2), 0);
	CHECK(holds(&e, "c1", "ONE"));
	env_release(&e);
}

/* A directory rename commits the dirty files inside it, and only those. */
TEST(test_rename_dir_commits_its_files_only)
{
	struct env e;
	struct fuse_entry_param in_dir, outside;
	uint64_t fh_in, fh_out;
	fuse_ino_t d;

	env_init(&e, 60);
	put(&e, "d/old", "o");
	d = lookup_ino(&e, ROOT, "d");
	CHECK_INT(do_create(&e, d, "w", 0644, O_WRONLY, &in_dir, &fh_in), 0);
	CHECK_INT(do_create(&e, ROOT, "other", 0644, O_WRONLY, &outside, &fh_out), 0);
	CHECK_INT(do_write(&e, in_dir.ino, fh_in, "inside", 6, 0), 6);
	CHECK_INT(do_write(&e, outside.ino, fh_out, "outside", 7, 0), 7);
	CHECK_INT(stats(&e).dirty_files, 2);
	CHECK_INT(do_rename(&e, ROOT, "d", ROOT, "d2", 0), 0);
	CHECK(holds(&e, "d2/w", "inside"));
	CHECK(holds(&e, "d2/old", "o"));
	CHECK(!exists(&e, "d/w") && !exists(&e, "d/old"));
	/* the file outside the tree is still being written: not uploaded by the rename */
	CHECK(!exists(&e, "other"));
	CHECK_INT(stats(&e).dirty_files, 1);
	/* the open file inside follows its directory */
	CHECK_INT(do_write(&e, in_dir.ino, fh_in, "INSIDE", 6, 0), 6);
	CHECK_INT(do_close(&e, in_dir.ino, fh_in), 0);
	CHECK_INT(do_close(&e, outside.ino, fh_out), 0);
	CHECK(holds(&e, "d2/w", "INSIDE"));
	CHECK(!exists(&e, "d/w"));
	CHECK(holds(&e, "other", "outside"));
	env_release(&e);
}

/*
 * A listing of many pages streams into readdir: opendir returns after the
 * first page and readdir gives what has come while the rest is fetched. The
 * names still come sorted, each once, although the store's key order is not
 * name order ("a/" sorts after "a-x" and "a.txt"; "b" is a file in one page
 * and a directory in the next), with a file being written here among them.
 * A page that fails midway fails the readdir that needs it.
 */
TEST(test_listing_streams)
{
	static const char *const keys[] = { "s/a-x", "s/a.txt", "s/a/in", "s/b", "s/b/in", "s/c1", "s/c2",
					    "s/c3", "s/c4", "s/c5", "s/c6", "s/c7", "s/c8", "s/c9", "s/a" };
	static const char *const names[] = { "a", "a-x", "a.txt", "a0", "b", "c1", "c2", "c3",
					     "c4", "c5", "c6", "c7", "c8", "c9" };
	struct env e;
	struct fuse_entry_param ent;
	struct dlist l;
	uint64_t fh, wfh;
	int64_t t0;
	fuse_ino_t d;
	int n;

	env_init(&e, 60);
	store_mem_set_max_keys(e.mem, 3);
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
		put(&e, keys[i], "x");
	d = lookup_ino(&e, ROOT, "s");
	CHECK_INT(do_create(&e, d, "a0", 0644, O_WRONLY, &ent, &wfh), 0);
	reset_calls(&e);
	for (int plus = 0; plus < 2; plus++) {
		CHECK_INT(list_dir(&e, d, plus, 4096, &l), 0);
		check_names(&l, names, sizeof(names) / sizeof(*names));
		CHECK(S_ISDIR(dlist_find(&l, "a")->entry.attr.st_mode));
		CHECK(S_ISDIR(dlist_find(&l, "b")->entry.attr.st_mode));
		CHECK(S_ISREG(dlist_find(&l, "a.txt")->entry.attr.st_mode));
		if (plus)
			forget_listed(&e, &l);
		dlist_release(&l);
	}
	/* 13 keys and prefixes in pages of 3; the second listing was the first one, kept */
	CHECK_INT(calls(&e, STORE_OP_LIST), 5);
	CHECK_INT(do_close(&e, ent.ino, wfh), 0);
	env_release(&e);

	/* slow pages: opendir returns after the first, readdir as each comes */
	env_init(&e, 60);
	store_mem_set_max_keys(e.mem, 3);
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
		put(&e, keys[i], "x");
	d = lookup_ino(&e, ROOT, "s");
	store_fault_set_delay(e.top, 60);
	t0 = util_now_ms();
	CHECK_INT(do_opendir(&e, d, &fh), 0);
	CHECK(util_now_ms() - t0 < 110);
	n = readdir_once(&e, d, fh, 0);
	CHECK(n >= 2 && n < 16); /* ".", "..", and what has come: not all five pages */
	CHECK(util_now_ms() - t0 < 110);
	do_releasedir(&e, d, fh);
	store_fault_set_delay(e.top, 0);
	wait_listing(&e, d);
	reset_calls(&e);
	CHECK_INT(list_dir(&e, d, 0, 65536, &l), 0);
	CHECK_INT(l.n, 15);
	CHECK_INT(calls(&e, STORE_OP_LIST), 0); /* the streamed listing was kept */
	dlist_release(&l);
	env_release(&e);

	/* a page that fails after the first: the readdir that needs it fails, and
	 * the listing is not kept */
	env_init(&e, 60);
	store_mem_set_max_keys(e.mem, 3);
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
		put(&e, keys[i], "x");
	d = lookup_ino(&e, ROOT, "s");
	store_fault_set_delay(e.top, 30);
	CHECK_INT(do_opendir(&e, d, &fh), 0);
	store_fault_fail_next(e.top, STORE_OP_LIST, 1, CM_E_TRANSIENT);
	CHECK_INT(read_dir(&e, d, fh, 65536, 0, &l), EIO);
	dlist_release(&l);
	do_releasedir(&e, d, fh);
	store_fault_set_delay(e.top, 0);
	CHECK_INT(list_dir(&e, d, 0, 65536, &l), 0);
	CHECK_INT(l.n, 15);
	dlist_release(&l);
	env_release(&e);
}

/*
 * Reading back a directory after its listing expired: the first lookup asks
 * the store for its name and fetches the listing again beside it, so the
 * lookups and getattrs of its siblings cost no request, and they see what
 * another client changed meanwhile. A directory never listed is not listed
 * for a lookup.
 */
TEST(test_listing_refresh)
{
	struct env e;
	struct fuse_entry_param ent;
	struct stat st;
	struct dlist l;
	fuse_ino_t d, f3, f4;
	char key[32], name[16];

	env_init(&e, 0.2);
	for (int i = 0; i < 30; i++) {
		snprintf(key, sizeof(key), "d/f%02d", i);
		put(&e, key, "v1");
	}
	put(&e, "other/x", "x");
	d = lookup_ino(&e, ROOT, "d");
	CHECK_INT(list_dir(&e, d, 1, 65536, &l), 0);
	f3 = dlist_find(&l, "f03")->entry.ino;
	f4 = dlist_find(&l, "f04")->entry.ino;
	dlist_release(&l);
	put(&e, "d/f03", "version 2");
	put(&e, "d/f29", "version 2");
	sleep_ms(250);

	/* one lookup: its probe only; a second within the TTL: the listing too */
	reset_calls(&e);
	CHECK_INT(do_lookup(&e, d, "f00", &ent), 0);
	sleep_ms(30);
	CHECK_INT(calls(&e, STORE_OP_LIST), 1);
	CHECK_INT(do_lookup(&e, d, "f01", &ent), 0);
	CHECK(lists_reach(&e, 3)); /* two probes' and the listing's */
	wait_listing(&e, d);
	CHECK_INT(calls(&e, STORE_OP_LIST), 3);
	reset_calls(&e);
	for (int i = 2; i < 30; i++) {
		snprintf(name, sizeof(name), "f%02d", i);
		CHECK_INT(do_lookup(&e, d, name, &ent), 0);
		CHECK_INT(ent.attr.st_size, i == 3 || i == 29 ? 9 : 2);
	}
	CHECK_INT(do_getattr(&e, f3, &st), 0);
	CHECK_INT(st.st_size, 9);
	CHECK_INT(do_lookup(&e, d, "nothing", &ent), ENOENT);
	CHECK_INT(total_calls(&e), 0);

	/* stale getattrs in an expired listing: a HEAD each, and the listing again beside the second */
	sleep_ms(250);
	reset_calls(&e);
	CHECK_INT(do_getattr(&e, f3, &st), 0);
	CHECK_INT(do_getattr(&e, f4, &st), 0);
	CHECK_INT(calls(&e, STORE_OP_HEAD), 2);
	CHECK(lists_reach(&e, 1));
	wait_listing(&e, d);
	reset_calls(&e);
	CHECK_INT(do_lookup(&e, d, "f10", &ent), 0);
	CHECK_INT(total_calls(&e), 0);

	/* a directory never listed: the lookup probes, nothing more */
	reset_calls(&e);
	CHECK_INT(do_lookup(&e, lookup_ino(&e, ROOT, "other"), "x", &ent), 0);
	sleep_ms(50);
	CHECK_INT(calls(&e, STORE_OP_LIST), 2); /* the probes of "other" and "x", nothing more */
	env_release(&e);
}

/*
 * A recursive walk: once a second child directory is opened after the first
 * in listing order, the next 8 sibling directories are listed ahead, so the
 * walk finds their listings ready; each directory is still listed once.
 */
TEST(test_walk_ahead)
{
	struct env e;
	struct dlist top;
	fuse_ino_t ino[12];
	uint64_t fh;
	char key[32];

	env_init(&e, 60);
	for (int i = 0; i < 12; i++) {
		snprintf(key, sizeof(key), "d%02d/f", i);
		put(&e, key, "x");
	}
	put(&e, "file", "f");
	REQUIRE(list_dir(&e, ROOT, 1, 65536, &top) == 0);
	for (int i = 0; i < 12; i++) {
		snprintf(key, sizeof(key), "d%02d", i);
		ino[i] = lookup_ino(&e, ROOT, key);
	}
	reset_calls(&e);
	/* opening one directory is not a walk: its own LIST only */
	REQUIRE(do_opendir(&e, ino[5], &fh) == 0);
	do_releasedir(&e, ino[5], fh);
	sleep_ms(50);
	CHECK_INT(calls(&e, STORE_OP_LIST), 1);
	/* nor is going back to an earlier one */
	REQUIRE(do_opendir(&e, ino[0], &fh) == 0);
	do_releasedir(&e, ino[0], fh);
	sleep_ms(50);
	CHECK_INT(calls(&e, STORE_OP_LIST), 2);
	/* the next one in order is: d02..d09 are listed ahead */
	REQUIRE(do_opendir(&e, ino[1], &fh) == 0);
	do_releasedir(&e, ino[1], fh);
	CHECK(lists_reach(&e, 3 + 7)); /* d05 is still fresh: not listed again */
	sleep_ms(50);
	CHECK_INT(calls(&e, STORE_OP_LIST), 10);
	/* the walk goes on without waiting for LISTs, and lists every directory once */
	for (int i = 2; i < 12; i++) {
		struct dlist sub;
		REQUIRE(list_dir(&e, ino[i], 1, 65536, &sub) == 0);
		CHECK_INT(sub.n, 3); /* ".", "..", "f" */
		CHECK(dlist_find(&sub, "f") != NULL);
		forget_listed(&e, &sub);
		dlist_release(&sub);
	}
	CHECK(lists_reach(&e, 12));
	sleep_ms(50);
	CHECK_INT(calls(&e, STORE_OP_LIST), 12);
	forget_listed(&e, &top);
	dlist_release(&top);
	env_release(&e);
}

/* read_whole of ino must give want. */
static void check_read(struct env *e, fuse_ino_t ino, const char *want)
{
	int rc;
	char *got = read_whole(e, ino, 4096, &rc);

	CHECK_INT(rc, 0);
	CHECK_STR(got ? got : "(null)", want);
	free(got);
}

/*
 * File read-ahead: reading a directory's files one after the other in
 * listing order gets the next ones fetched whole in parallel, each file is
 * fetched once, and the opens take the bytes fetched ahead. A lone open, or
 * going back, fetches nothing ahead.
 */
TEST(test_file_ahead)
{
	struct env e;
	struct dlist dir;
	struct fs_stats st;
	fuse_ino_t r, ino[20];
	char key[32], body[20][64];

	env_init(&e, 60);
	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "r/f%02d", i);
		snprintf(body[i], sizeof(body[i]), "the bytes of file %d, not another", i);
		put(&e, key, body[i]);
	}
	put(&e, "r/f04d/x", "in a subdirectory");
	r = lookup_ino(&e, ROOT, "r");
	REQUIRE(list_dir(&e, r, 1, 65536, &dir) == 0);
	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "f%02d", i);
		ino[i] = lookup_ino(&e, r, key);
	}
	reset_calls(&e);
	check_read(&e, ino[7], body[7]);
	check_read(&e, ino[0], body[0]);        /* going back: no walk */
	sleep_ms(50);
	CHECK_INT(calls(&e, STORE_OP_GET), 2);
	check_read(&e, ino[1], body[1]);        /* the next in order: f02..f09 ahead */
	for (int i = 0; i < 500 && calls(&e, STORE_OP_GET) < 3 + 8; i++)
		sleep_ms(10);
	sleep_ms(50);
	CHECK_INT(calls(&e, STORE_OP_GET), 3 + 8);
	for (int i = 2; i < 20; i++)
		if (i != 7)
			check_read(&e, ino[i], body[i]);
	check_read(&e, ino[7], body[7]);
	sleep_ms(50);
	/* every file once; f07, skipped by the walk, was let go when the walk
	 * went past it (its open at the end fetches it again) */
	CHECK_INT(calls(&e, STORE_OP_GET), 22);
	fs_get_stats(e.fs, &st);
	CHECK_INT(st.ahead_hits, 17);   /* f02..f19 but f07 */
	forget_listed(&e, &dir);
	dlist_release(&dir);
	env_release(&e);        /* every buffer back in the budget */
}

struct walker {
	struct env *e;
	fuse_ino_t *ino;
	char (*body)[64];
};

static void *walker_thread(void *arg)
{
	struct walker *w = arg;

	for (int i = 2; i < 12; i++)
		check_read(w->e, w->ino[i], w->body[i]);
	return NULL;
}

/*
 * Several programs walking the same directory at once wait on the same files
 * fetched ahead: one open takes each, the others fetch their own, and no
 * buffer is used after it went (run under ASan) or kept.
 */
TEST(test_file_ahead_shared)
{
	struct env e;
	struct dlist dir;
	fuse_ino_t r, ino[12];
	char key[32], body[12][64];
	struct walker w;
	pthread_t t[4];

	env_init(&e, 60);
	for (int i = 0; i < 12; i++) {
		snprintf(key, sizeof(key), "s/f%02d", i);
		snprintf(body[i], sizeof(body[i]), "shared walk, file %d", i);
		put(&e, key, body[i]);
	}
	r = lookup_ino(&e, ROOT, "s");
	REQUIRE(list_dir(&e, r, 1, 65536, &dir) == 0);
	for (int i = 0; i < 12; i++) {
		snprintf(key, sizeof(key), "f%02d", i);
		ino[i] = lookup_ino(&e, r, key);
	}
	store_fault_set_delay(e.top, 40);       /* the files ahead are still on their way */
	check_read(&e, ino[0], body[0]);
	check_read(&e, ino[1], body[1]);
	w.e = &e;
	w.ino = ino;
	w.body = body;
	for (int i = 0; i < 4; i++)
		REQUIRE(pthread_create(&t[i], NULL, walker_thread, &w) == 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	store_fault_set_delay(e.top, 0);
	forget_listed(&e, &dir);
	dlist_release(&dir);
	env_release(&e);
}

/* ---- faults ---- */

/* Each failing request gives a clean errno, and the next try works. */
TEST(test_fault_errnos)
{
	struct env e;
	struct fuse_entry_param ent;
	struct stat st;
	struct dlist l;
	uint64_t fh;
	fuse_ino_t f;
	char buf[64];

	env_setup(&e, 0.05);
	e.cfg.no_listing_refresh = 1; /* each request below meets the fault meant for it */
	env_start(&e);
	put(&e, "f", "file content");
	put(&e, "d/x", "x");

	store_fault_fail_next(e.top, STORE_OP_LIST, 1, CM_E_TRANSIENT);
	CHECK_INT(list_dir(&e, ROOT, 1, 4096, &l), EIO);
	CHECK_INT(list_dir(&e, ROOT, 1, 4096, &l), 0);
	forget_listed(&e, &l);
	dlist_release(&l);
	sleep_ms(80);

	store_fault_fail_next(e.top, STORE_OP_LIST, 1, CM_E_NETWORK);
	CHECK_INT(do_lookup(&e, ROOT, "f", &ent), EHOSTUNREACH);
	CHECK_INT(last_kind, STUB_ERR);
	store_fault_fail_next(e.top, STORE_OP_HEAD, 1, CM_E_ACCESS_DENIED);
	CHECK_INT(do_lookup(&e, ROOT, "f", &ent), EACCES);
	CHECK_INT(last_kind, STUB_ERR);
	f = lookup_ino(&e, ROOT, "f");
	lookup_ino(&e, ROOT, "d");

	sleep_ms(80);
	store_fault_fail_next(e.top, STORE_OP_HEAD, 1, CM_E_TIMEOUT);
	CHECK_INT(do_getattr(&e, f, &st), ETIMEDOUT);
	sleep_ms(80);
	store_fault_fail_next(e.top, STORE_OP_HEAD, 1, CM_E_ACCESS_DENIED);
	CHECK_INT(do_open(&e, f, O_RDONLY, &fh, NULL), EACCES);

	/* a GET refused: the read fails, the next read of the same handle works */
	CHECK_INT(do_open(&e, f, O_RDONLY, &fh, NULL), 0);
	store_fault_fail_next(e.top, STORE_OP_GET, 1, CM_E_ACCESS_DENIED);
	CHECK_INT(do_read(&e, f, fh, sizeof(buf), 0, buf), -EACCES);
	CHECK_INT(do_read(&e, f, fh, sizeof(buf), 0, buf), 12);
	CHECK_MEM(buf, "file content", 12);
	CHECK_INT(do_release(&e, f, fh), 0);

	store_fault_fail_next(e.top, STORE_OP_DEL, 1, CM_E_ACCESS_DENIED);
	CHECK_INT(do_unlink(&e, ROOT, "f"), EACCES);
	CHECK(exists(&e, "f"));
	CHECK_INT(do_getattr(&e, f, &st), 0);

	store_fault_fail_next(e.top, STORE_OP_PUT, 1, CM_E_ACCESS_DENIED);
	CHECK_INT(do_mkdir(&e, ROOT, "nd", 0755, NULL), EACCES);
	CHECK(!exists(&e, "nd/"));
	CHECK_INT(do_lookup(&e, ROOT, "nd", &ent), ENOENT);

	store_fault_fail_next(e.top, STORE_OP_COPY, 1, CM_E_TRANSIENT);
	CHECK_INT(do_rename(&e, ROOT, "f", ROOT, "g", 0), EIO);
	CHECK(holds(&e, "f", "file content"));
	CHECK(!exists(&e, "g"));
	/* the copy landed, the delete failed: the copy is taken back */
	store_fault_fail_next(e.top, STORE_OP_DEL, 1, CM_E_ACCESS_DENIED);
	CHECK_INT(do_rename(&e, ROOT, "f", ROOT, "g", 0), EACCES);
	CHECK(holds(&e, "f", "file content"));
	CHECK(!exists(&e, "g"));

	store_fault_fail_next(e.top, STORE_OP_LIST, 1, CM_E_TRANSIENT);
	CHECK_INT(do_rmdir(&e, ROOT, "d"), EIO);
	CHECK(exists(&e, "d/x"));
	store_fault_fail_next(e.top, STORE_OP_DEL_MANY, 1, CM_E_TRANSIENT);
	CHECK_INT(do_rename(&e, ROOT, "d", ROOT, "d2", 0), EIO);
	CHECK(exists(&e, "d/x"));
	CHECK_INT(store_fault_injected(e.top), 12);
	env_release(&e);
}

/* A tiny deterministic generator for the randomized test. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static unsigned rnd(unsigned n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (unsigned)(rng_state % n);
}

static int errno_allowed(int rc)
{
	switch (rc) {
	case 0: case ENOENT: case EIO: case EACCES: case EHOSTUNREACH: case ENOTEMPTY: case EEXIST:
		return 1;
	default:
		return 0;
	}
}

#define N_NAMES 5

/*
 * Random operations with about one request in five failing: every operation
 * replies once with a clean errno, and what the store holds always matches
 * what the operations acknowledged (a shadow copy): a flush that returned 0
 * stored the file, one that failed left the old content; a read returns the
 * acknowledged content or fails.
 */
TEST(test_random_faults)
{
	static const enum store_op ops[] = { STORE_OP_LIST, STORE_OP_HEAD, STORE_OP_GET, STORE_OP_PUT,
					     STORE_OP_MPU_CREATE, STORE_OP_MPU_PART, STORE_OP_MPU_COMPLETE,
					     STORE_OP_COPY, STORE_OP_DEL };
	static const enum cm_status kinds[] = { CM_E_TRANSIENT, CM_E_ACCESS_DENIED, CM_E_NETWORK };
	struct env e;
	char *shadow[N_NAMES] = { 0 };
	char name[16], other[16];
	int failures = 0;

	env_init(&e, 0);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		store_fault_set_random(e.top, ops[i], 0.2, kinds[i % 3]);

	for (int step = 0; step < 300; step++) {
		unsigned k = rnd(N_NAMES), op = rnd(6);
		struct fuse_entry_param ent;
		int rc = 0;

		snprintf(name, sizeof(name), "n%u", k);
		switch (op) {
		case 0: { /* lookup */
			rc = do_lookup(&e, ROOT, name, &ent);
			if (rc == 0) {
				CHECK(shadow[k] != NULL);
				CHECK_INT(ent.attr.st_size, shadow[k] ? strlen(shadow[k]) : 0);
				do_forget(&e, ent.ino, 1);
			} else if (rc == ENOENT && last_kind == STUB_ENTRY) {
				CHECK(shadow[k] == NULL);
			}
			break;
		}
		case 1: { /* list */
			struct dlist l;
			rc = list_dir(&e, ROOT, 1, 4096, &l);
			if (rc == 0) {
				for (unsigned j = 0; j < N_NAMES; j++) {
					snprintf(other, sizeof(other), "n%u", j);
					CHECK((dlist_find(&l, other) != NULL) == (shadow[j] != NULL));
				}
				forget_listed(&e, &l);
			}
			dlist_release(&l);
			break;
		}
		case 2: { /* write a new version */
			uint64_t fh;
			int crc;
			size_t len = rnd(3) == 0 ? 2 * PART + rnd(1000) : 1 + rnd(100);
			char *data = pattern(len, (unsigned)step);
			rc = do_create(&e, ROOT, name, 0644, O_WRONLY | O_TRUNC, &ent, &fh);
			if (rc == 0) {
				ssize_t n = do_write(&e, ent.ino, fh, data, len, 0);
				if (n < 0)
					rc = (int)-n;
				else
					CHECK_INT(n, len);
				crc = do_close(&e, ent.ino, fh);
				if (!rc)
					rc = crc;
				if (rc == 0) {
					free(shadow[k]);
					shadow[k] = data;
					data = NULL;
				} else {
					/*
					 * a failed close leaves the old content, or the new one when
					 * the data landed and a later step (the metadata copy) failed;
					 * never anything else (checked below)
					 */
					char *c = content_of(&e, name);
					if (c && strcmp(c, data) == 0) {
						free(shadow[k]);
						shadow[k] = data;
						data = NULL;
					}
					free(c);
				}
				do_forget(&e, ent.ino, 1);
			}
			free(data);
			break;
		}
		case 3: { /* read it all */
			char *content;
			fuse_ino_t ino;
			rc = do_lookup(&e, ROOT, name, &ent);
			if (rc)
				break;
			ino = ent.ino;
			content = read_whole(&e, ino, 65536, &rc);
			if (rc == 0 && !(shadow[k] && content && strcmp(content, shadow[k]) == 0))
				TH_FAIL_("step %d: read of %s does not match", step, name);
			free(content);
			do_forget(&e, ino, 1);
			break;
		}
		case 4: /* unlink */
			rc = do_unlink(&e, ROOT, name);
			if (rc == 0) {
				free(shadow[k]);
				shadow[k] = NULL;
			}
			break;
		case 5: { /* rename over another name */
			unsigned t = (k + 1 + rnd(N_NAMES - 1)) % N_NAMES;
			fuse_ino_t a = 0, b = 0;
			snprintf(other, sizeof(other), "n%u", t);
			if (do_lookup(&e, ROOT, name, &ent) == 0)
				a = ent.ino;
			if (do_lookup(&e, ROOT, other, &ent) == 0)
				b = ent.ino;
			if (!a) {
				rc = 0;
				if (b)
					do_forget(&e, b, 1);
				break;
			}
			rc = do_rename(&e, ROOT, name, ROOT, other, 0);
			if (rc == 0) {
				free(shadow[t]);
				shadow[t] = shadow[k];
				shadow[k] = NULL;
			} else {
				/* not atomic in S3: the data is under one of the names at least */
				char *at_from = content_of(&e, name), *at_to = content_of(&e, other);
				CHECK((at_from && shadow[k] && !strcmp(at_from, shadow[k])) ||
				      (at_to && shadow[k] && !strcmp(at_to, shadow[k])));
				free(shadow[k]);
				shadow[k] = at_from;
				free(shadow[t]);
				shadow[t] = at_to;
			}
			do_forget(&e, a, 1);
			if (b)
				do_forget(&e, b, 1);
			break;
		}
		}
		if (!errno_allowed(rc))
			TH_FAIL_("step %d (op %u on %s): errno %d", step, op, name, rc);
		failures += rc != 0;
		/* the store holds exactly what was acknowledged */
		for (unsigned j = 0; j < N_NAMES; j++) {
			char *c;
			snprintf(other, sizeof(other), "n%u", j);
			c = content_of(&e, other);
			if ((c == NULL) != (shadow[j] == NULL) || (c && strcmp(c, shadow[j]) != 0))
				TH_FAIL_("step %d (op %u on %s, errno %d): %s holds %zu bytes, acknowledged %zu", step,
					 op, name, rc, other, c ? strlen(c) : 0, shadow[j] ? strlen(shadow[j]) : 0);
			free(c);
		}
		if (th.current_failed)
			break;
	}
	CHECK(failures > 10);
	CHECK(store_fault_injected(e.top) > 10);
	for (unsigned j = 0; j < N_NAMES; j++)
		free(shadow[j]);
	env_release(&e);
}

/*
 * Our changes of a directory while its listing is being fetched are
 * replayed on the fetched listing: it is kept (no fetch again), without the
 * file we deleted and with the one we created meanwhile.
 */
TEST(test_listing_replays_our_changes)
{
	struct env e;
	struct fuse_entry_param ent;
	struct dlist l;
	uint64_t wfh, listings;
	fuse_ino_t d;
	char key[32];

	env_init(&e, 0.2);
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "d/f%02d", i);
		put(&e, key, "v1");
	}
	d = lookup_ino(&e, ROOT, "d");
	CHECK_INT(list_dir(&e, d, 1, 65536, &l), 0); /* the kernel knows every file */
	dlist_release(&l);
	sleep_ms(250);
	listings = stats(&e).listings;
	store_mem_set_max_keys(e.mem, 3); /* four pages: the fetch outlasts the unlink */
	store_fault_set_delay(e.top, 80);
	CHECK_INT(do_lookup(&e, d, "x1", &ent), ENOENT);
	CHECK_INT(do_lookup(&e, d, "x2", &ent), ENOENT); /* the listing is fetched beside it */
	CHECK_INT(do_unlink(&e, d, "f05"), 0);
	CHECK_INT(do_create(&e, d, "new", 0644, O_WRONLY, &ent, &wfh), 0);
	store_fault_set_delay(e.top, 0);
	wait_listing(&e, d);
	reset_calls(&e);
	CHECK_INT(list_dir(&e, d, 0, 65536, &l), 0);
	CHECK_INT(calls(&e, STORE_OP_LIST), 0);
	CHECK_INT(stats(&e).listings - listings, 1); /* the one fetched beside the lookup, kept */
	CHECK(dlist_find(&l, "new") != NULL);
	CHECK(dlist_find(&l, "f05") == NULL);
	CHECK_INT(l.n, 12);
	dlist_release(&l);
	CHECK_INT(do_close(&e, ent.ino, wfh), 0);
	env_release(&e);
}

/*
 * An opendir while a listing streams in, after we changed the directory:
 * the stream began before the change, so the new opendir must not share it
 * (the unlinked file would still be listed, the new one missing).
 */
TEST(test_stream_not_shared_after_change)
{
	static const char *const keys[] = { "s/a-x", "s/a.txt", "s/b", "s/c1", "s/c2", "s/c3",
					    "s/c4", "s/c5", "s/c6", "s/c7", "s/c8", "s/c9" };
	struct env e;
	struct fuse_entry_param ent;
	struct dlist l;
	uint64_t fh1, fh2, wfh;
	fuse_ino_t d;

	env_init(&e, 60);
	store_mem_set_max_keys(e.mem, 3);
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
		put(&e, keys[i], "x");
	d = lookup_ino(&e, ROOT, "s");
	store_fault_set_delay(e.top, 60);
	CHECK_INT(do_opendir(&e, d, &fh1), 0);          /* page 1 here, 3 more streaming */
	CHECK_INT(do_unlink(&e, d, "a-x"), 0);          /* gone from the store */
	CHECK_INT(do_create(&e, d, "new", 0644, O_WRONLY, &ent, &wfh), 0);
	CHECK_INT(do_opendir(&e, d, &fh2), 0);          /* shares the stream begun before both */
	CHECK_INT(read_dir(&e, d, fh2, 65536, 0, &l), 0);
	CHECK(dlist_find(&l, "a-x") == NULL);
	CHECK(dlist_find(&l, "new") != NULL);
	dlist_release(&l);
	do_releasedir(&e, d, fh2);
	do_releasedir(&e, d, fh1);
	store_fault_set_delay(e.top, 0);
	CHECK_INT(do_close(&e, ent.ino, wfh), 0);
	env_release(&e);
}

/*
 * Files written one by one into a directory whose listing has expired: the
 * lookups must not fetch the whole listing again and again while our own
 * writes make every such fetch stale (each would be thrown away).
 */
TEST(test_no_refresh_while_writing)
{
	struct env e;
	struct fuse_entry_param ent;
	struct dlist l;
	char key[32], name[16];
	uint64_t wfh;
	fuse_ino_t d;

	env_init(&e, 0.2);
	store_mem_set_max_keys(e.mem, 3);
	for (int i = 0; i < 30; i++) {
		snprintf(key, sizeof(key), "d/f%02d", i);
		put(&e, key, "v1");
	}
	d = lookup_ino(&e, ROOT, "d");
	CHECK_INT(list_dir(&e, d, 0, 65536, &l), 0);
	dlist_release(&l);
	sleep_ms(250);
	store_fault_set_delay(e.top, 10);
	reset_calls(&e);
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		CHECK_INT(do_lookup(&e, d, name, &ent), ENOENT);
		CHECK_INT(do_create(&e, d, name, 0644, O_WRONLY, &ent, &wfh), 0);
		CHECK_INT(do_write(&e, ent.ino, wfh, "abc", 3, 0), 3);
		sleep_ms(200); /* writing a big file */
		CHECK_INT(do_close(&e, ent.ino, wfh), 0);
	}
	CHECK(calls(&e, STORE_OP_LIST) <= 10);
	store_fault_set_delay(e.top, 0);
	env_release(&e);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Random names made of bytes around '/' ('-', '.', ' ', '0', '~', UTF-8),
 * some of them both a file and a directory, listed in pages of 1 to 5:
 * readdir gives every name once, sorted.
 */
TEST(test_listing_order_random)
{
	static const char *const parts[] = { "a", "b", "-", ".", " ", "0", "~", "\xc3\xa9", "a-", "a." };
	unsigned seed = 12345;
	for (int round = 0; round < 60; round++) {
		struct env e;
		struct dlist l;
		char *names[64];
		int isdir[64];
		size_t nn = 0;
		fuse_ino_t d;
		env_init(&e, 60);
		store_mem_set_max_keys(e.mem, 1 + (int)(round % 5));
		for (int k = 0; k < 25; k++) {
			char name[64] = "", key[160];
			int len = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 4;
			int dir;
			for (int c = 0; c < len; c++)
				strcat(name, parts[((seed = seed * 1103515245u + 12345u) >> 16) % 10]);
			if (!strcmp(name, ".") || !strcmp(name, "..") || name[0] == ' ')
				continue;
			dir = ((seed = seed * 1103515245u + 12345u) >> 16) % 3 == 0;
			snprintf(key, sizeof(key), dir ? "r/%s/x" : "r/%s", name);
			put(&e, key, "x");
			size_t j;
			for (j = 0; j < nn && strcmp(names[j], name); j++)
				;
			if (j == nn) {
				names[nn] = xstrdup(name);
				isdir[nn++] = dir;
			} else {
				isdir[j] |= dir;
			}
		}
		put(&e, "r/zz", "x");
		names[nn] = xstrdup("zz"); isdir[nn++] = 0;
		(void)isdir;
		qsort(names, nn, sizeof(*names), cmp_str);
		d = lookup_ino(&e, ROOT, "r");
		CHECK_INT(list_dir(&e, d, 0, 65536, &l), 0);
		int ok = l.n == nn + 2;
		for (size_t i = 0; ok && i < nn; i++)
			ok = !strcmp(l.d[i + 2].name, names[i]);
		if (!ok) {
			fprintf(stderr, "round %d: got %zu names, want %zu\n", round, l.n, nn + 2);
			for (size_t i = 2; i < l.n; i++)
				fprintf(stderr, "  got [%s]\n", l.d[i].name);
			for (size_t i = 0; i < nn; i++)
				fprintf(stderr, "  want [%s]\n", names[i]);
		}
		CHECK(ok);
		dlist_release(&l);
		for (size_t i = 0; i < nn; i++)
			free(names[i]);
		env_release(&e);
	}
}

TH_MAIN_BEGIN("test_fs_ops")
	/* the failure tests log expected errors: shown with TH_VERBOSE only */
	if (getenv("TH_VERBOSE"))
		log_set_level(LOG_LVL_DEBUG);
	else
		log_set_fd(open("/dev/null", O_WRONLY | O_CLOEXEC));
	alarm(60); /* a hang is a failure, not a stuck suite */
	RUN(test_lookup_served_from_listing);
	RUN(test_readdirplus_names);
	RUN(test_readdirplus_small_buffer);
	RUN(test_readdir_plain_inode_numbers);
	RUN(test_readdirplus_pagination);
	RUN(test_lookup_remote);
	RUN(test_negative_from_listing);
	RUN(test_unusable_keys);
	RUN(test_ttl_expiry);
	RUN(test_ttl_zero);
	RUN(test_create_write_release);
	RUN(test_listing_keeps_unwritten_files);
	RUN(test_write_multipart_and_random);
	RUN(test_open_keep_cache);
	RUN(test_flush_failure);
	RUN(test_unlink_open_file);
	RUN(test_mkdir_rmdir_unlink);
	RUN(test_rename_file);
	RUN(test_truncate_races_release);
	RUN(test_failed_close_distrusts_listing);
	RUN(test_rename_leaves_both);
	RUN(test_rename_dir);
	RUN(test_setattr);
	RUN(test_symlink);
	RUN(test_posix_metadata_cache);
	RUN(test_misc_ops);
	RUN(test_commit_all);
	RUN(test_rename_dir_commits_its_files_only);
	RUN(test_walk_ahead);
	RUN(test_file_ahead);
	RUN(test_file_ahead_shared);
	RUN(test_listing_refresh);
	RUN(test_listing_streams);
	RUN(test_stream_not_shared_after_change);
	RUN(test_listing_replays_our_changes);
	RUN(test_no_refresh_while_writing);
	RUN(test_listing_order_random);
	RUN(test_fault_errnos);
	RUN(test_random_faults);
TH_MAIN_END
