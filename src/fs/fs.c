/*
 * fs.c - the FUSE low-level operations over the store (see fs.h).
 *
 * Locking: one mutex (fs->lock) protects the inode table, every inode's
 * fields except `data` (the fdata has its own lock) and the listings. It is
 * never held across a store call: an operation copies what it needs (the
 * key), unlocks, talks to the store, then locks again to record the answer.
 * An inode cannot disappear under an operation: the kernel holds a lookup
 * reference for every inode it names in a request, and an open handle holds
 * open_count.
 *
 * Inode lifetime follows the kernel's lookup count (passthrough_ll's rule):
 * every reply that hands out an entry adds one, forget takes them away, and an
 * inode with no lookups and no open handle is freed. Paths ("" for the root,
 * "dir/file" below it) are the keys relative to the store; a rename rewrites
 * the paths of the inode and of every inode below it.
 *
 * A directory's listing (struct listing) is an immutable sorted array,
 * shared by reference: readdir handles keep the snapshot they opened with
 * (stable offsets), lookups use the directory's current one while it is
 * fresh. Local changes (create, mkdir, unlink, rename) patch a copy.
 */
#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

#include "fs/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fs/meta.h"
#include "fs/metacache.h"
#include "fs/reader.h"

#define DIR_MARKER_TYPE "application/x-directory"
#define MAX_SYMLINK 4096
/*
 * d_ino of a plain readdir entry the inode table does not know (libfuse's
 * high-level API uses the same): never 0, which readdir(3) of glibc before
 * 2.37, the BSDs and macOS, Go and make take for a deleted entry and skip.
 */
#define UNKNOWN_INO 0xffffffffu

struct listing_entry {
	char *name;
	mode_t type;                    /* S_IFREG or S_IFDIR (S_IFLNK known only by inode) */
	uint64_t size;
	struct timespec mtime;
	char *etag;
	int has_meta;                   /* meta holds mode/uid/gid/mtime from the metadata cache */
	struct fs_attr meta;
};

struct listing {
	int refs;                       /* protected by fs->lock */
	size_t n;                       /* grows while being fetched, under fs->lock */
	size_t cap;
	struct listing_entry *e;        /* sorted by name (strcmp) */
	int complete;                   /* every page is in (or the fetch failed) */
	enum cm_status status;          /* a failed fetch: why */
};

/* One change of a directory's entry, kept to be replayed on a listing fetched meanwhile. */
struct note {
	struct listing_entry e;         /* the entry as changed; e.name only when removed */
	int removed;
};

/* How many of a directory's latest changes are kept (see listing_install). */
#define NOTE_LOG 32

struct fs_inode {
	uint64_t ino;
	char *path;
	struct fs_attr attr;
	char *etag;                     /* "" when unknown */
	int meta_known;                 /* attr's mode/uid/gid/mtime came from headers or us */
	int64_t attr_expiry;            /* monotonic ms */
	uint64_t nlookup;
	int open_count;
	int local;                      /* created here; not in the store until committed */
	int unlinked;                   /* no longer reachable by path */
	char *open_etag;                /* ETag at the last open, for keep_cache */
	char *link_target;
	struct fdata *data;             /* while open for writing or dirty */
	struct listing *listing;        /* directories: the current listing (complete), or NULL */
	struct listing *streaming;      /* directories: a listing being fetched for opendir */
	int64_t listing_expiry;
	int listing_pending;            /* directories: a walk-ahead fetch is on its way */
	size_t file_next;               /* directories: 1 + the listing index of the file
					   opened last (0: none), for the file read-ahead */
	size_t walk_next;               /* directories: 1 + the listing index of the child
					   opened last (0: none), to see a recursive walk */
	uint64_t changes;               /* directories: our changes of its entries (create, commit,
					   unlink, rename, mkdir...), counted */
	struct note *notes;             /* directories: the last NOTE_LOG changes, by changes % NOTE_LOG */
	int64_t probed_ms;              /* directories: when a lookup in it last asked the store */
	struct fs_inode *next_ino;      /* hash chains */
	struct fs_inode *next_path;
};

struct fs_handle {
	struct fs_inode *inode;
	struct reader *reader;          /* read-only handles of clean files; swapped under fs->lock */
	struct reader **retired;        /* readers replaced while other reads may still use them */
	size_t n_retired;               /* protected by fs->lock */
	int writable;
};

struct fs_dirhandle {
	struct listing *listing;
	struct fs_inode *dir;
};

struct file_ahead;

struct fs {
	struct fs_config cfg;
	pthread_mutex_t lock;
	struct fs_inode **by_ino;       /* protected by lock */
	struct fs_inode **by_path;      /* protected by lock */
	size_t n_buckets;               /* protected by lock */
	size_t n_inodes;                /* protected by lock */
	size_t n_local;                 /* inodes with local set; protected by lock */
	uint64_t next_ino;              /* protected by lock */
	struct fs_stats stats;          /* protected by lock */
	int64_t ttl_ms, neg_ttl_ms;
	struct fdata_opts fdata_opts;
	struct reader_opts reader_opts;
	struct fuse_session *session;   /* for cache invalidation; set once before the loop */
	int walk_fetches;               /* walk-ahead listings in flight; protected by lock */
	pthread_cond_t walk_done;       /* signalled when walk_fetches or ahead_jobs drops */
	struct file_ahead *ahead;       /* files read ahead; protected by lock */
	uint64_t ahead_bytes;           /* their sizes; protected by lock */
	int ahead_jobs;                 /* their GETs in flight; protected by lock */
	pthread_cond_t listing_grown;   /* signalled when a listing being fetched grows or ends */
};

/* A recursive walk (find, du, cp -r, rsync) lists this many sibling directories ahead. */
#define WALK_AHEAD 8
#define WALK_MAX_IN_FLIGHT 16
/* A walk reading every file of a directory gets this many files fetched ahead, */
#define FILE_AHEAD 8
/* holding at most this much of the memory budget. */
#define FILE_AHEAD_BYTES (32ULL << 20)
/* A file fetched ahead and not opened within this long is let go. */
#define FILE_AHEAD_KEEP_MS 5000
/* An expired listing of at most this many entries is fetched again on a lookup miss. */
#define REFRESH_MAX_ENTRIES 10000

/* ---- small helpers ---- */

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static char *join_path(const char *dir, const char *name)
{
	return *dir ? xasprintf("%s/%s", dir, name) : xstrdup(name);
}

static double ttl_seconds(int64_t ms)
{
	return (double)ms / 1000.0;
}

static int reply_status(fuse_req_t req, enum cm_status st)
{
	return fuse_reply_err(req, cm_status_errno(st));
}

/* ---- inode table (caller holds fs->lock) ---- */

static void table_grow(struct fs *fs)
{
	size_t n = fs->n_buckets * 2;
	struct fs_inode **bi = xcalloc(n, sizeof(*bi)), **bp = xcalloc(n, sizeof(*bp));

	for (size_t i = 0; i < fs->n_buckets; i++) {
		struct fs_inode *in, *next;
		for (in = fs->by_ino[i]; in; in = next) {
			next = in->next_ino;
			in->next_ino = bi[in->ino % n];
			bi[in->ino % n] = in;
		}
		for (in = fs->by_path[i]; in; in = next) {
			next = in->next_path;
			in->next_path = bp[hash_str(in->path) % n];
			bp[hash_str(in->path) % n] = in;
		}
	}
	free(fs->by_ino);
	free(fs->by_path);
	fs->by_ino = bi;
	fs->by_path = bp;
	fs->n_buckets = n;
}

static struct fs_inode *find_ino(struct fs *fs, uint64_t ino)
{
	for (struct fs_inode *in = fs->by_ino[ino % fs->n_buckets]; in; in = in->next_ino)
		if (in->ino == ino)
			return in;
	return NULL;
}

static struct fs_inode *find_path(struct fs *fs, const char *path)
{
	for (struct fs_inode *in = fs->by_path[hash_str(path) % fs->n_buckets]; in; in = in->next_path)
		if (!in->unlinked && strcmp(in->path, path) == 0)
			return in;
	return NULL;
}

static void path_link(struct fs *fs, struct fs_inode *in)
{
	size_t b = hash_str(in->path) % fs->n_buckets;
	in->next_path = fs->by_path[b];
	fs->by_path[b] = in;
}

static void path_unlink(struct fs *fs, struct fs_inode *in)
{
	for (struct fs_inode **pp = &fs->by_path[hash_str(in->path) % fs->n_buckets]; *pp;
	     pp = &(*pp)->next_path) {
		if (*pp == in) {
			*pp = in->next_path;
			in->next_path = NULL;
			return;
		}
	}
}

/* A new inode for path with type bits, entered in both tables. */
static struct fs_inode *inode_new(struct fs *fs, const char *path, mode_t type)
{
	struct fs_inode *in = xcalloc(1, sizeof(*in));

	if (fs->n_inodes + 1 > fs->n_buckets)
		table_grow(fs);
	in->ino = fs->next_ino++;
	in->path = xstrdup(path);
	in->etag = xstrdup("");
	in->attr.mode = type | (type == S_IFDIR ? fs->cfg.dir_mode : type == S_IFLNK ? 0777 : fs->cfg.file_mode);
	in->attr.uid = fs->cfg.uid;
	in->attr.gid = fs->cfg.gid;
	clock_gettime(CLOCK_REALTIME, &in->attr.mtime);
	in->next_ino = fs->by_ino[in->ino % fs->n_buckets];
	fs->by_ino[in->ino % fs->n_buckets] = in;
	path_link(fs, in);
	fs->n_inodes++;
	return in;
}

static void entry_free(struct listing_entry *e)
{
	free(e->name);
	free(e->etag);
}

static void listing_put(struct listing *l)
{
	if (!l || --l->refs > 0)
		return;
	for (size_t i = 0; i < l->n; i++)
		entry_free(&l->e[i]);
	free(l->e);
	free(l);
}

/* in->local changes only here, so that fs->n_local counts them. Caller holds the lock. */
static void set_local(struct fs *fs, struct fs_inode *in, int local)
{
	if (!in->local == !local)
		return;
	in->local = local;
	if (local)
		fs->n_local++;
	else
		fs->n_local--;
}

static void notes_free(struct fs_inode *in)
{
	for (size_t i = 0; in->notes && i < NOTE_LOG; i++)
		entry_free(&in->notes[i].e);
	free(in->notes);
	in->notes = NULL;
}

/* Free an inode nobody references any more. */
static void inode_maybe_free(struct fs *fs, struct fs_inode *in)
{
	if (in->ino == FUSE_ROOT_ID || in->nlookup || in->open_count || in->data)
		return;
	for (struct fs_inode **pp = &fs->by_ino[in->ino % fs->n_buckets]; *pp; pp = &(*pp)->next_ino) {
		if (*pp == in) {
			*pp = in->next_ino;
			break;
		}
	}
	if (!in->unlinked)
		path_unlink(fs, in);
	listing_put(in->listing);
	listing_put(in->streaming);
	notes_free(in);
	free(in->path);
	free(in->etag);
	free(in->open_etag);
	free(in->link_target);
	free(in);
	fs->n_inodes--;
}

/*
 * The name of in is gone from the store (unlink, rmdir, replaced by a
 * rename): take it out of the path table; the inode lives on while the
 * kernel or a handle still holds it. in may be NULL. Caller holds the lock.
 */
static void forget_name(struct fs *fs, struct fs_inode *in)
{
	if (!in)
		return;
	path_unlink(fs, in);
	in->unlinked = 1;
	inode_maybe_free(fs, in);
}

static int attr_fresh(struct fs *fs, const struct fs_inode *in)
{
	return in->local || in->data || util_now_ms() < in->attr_expiry;
}

static void fill_stat(struct fs *fs, const struct fs_inode *in, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = in->ino;
	st->st_mode = in->attr.mode;
	st->st_nlink = S_ISDIR(in->attr.mode) ? 2 : 1;
	st->st_uid = in->attr.uid;
	st->st_gid = in->attr.gid;
	st->st_size = (off_t)(in->data ? fdata_size(in->data) : in->attr.size);
	if (S_ISLNK(in->attr.mode) && in->link_target)
		st->st_size = (off_t)strlen(in->link_target);
	st->st_blksize = 1 << 20;
	st->st_blocks = (st->st_size + 511) / 512;
	st->st_mtim = in->attr.mtime;
	st->st_ctim = in->attr.mtime;
	st->st_atim = in->attr.mtime;
	(void)fs;
}

/* Fill a reply entry for in and count the lookup. Caller holds the lock. */
static void make_entry(struct fs *fs, struct fs_inode *in, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = in->ino;
	e->generation = 1;
	fill_stat(fs, in, &e->attr);
	e->attr_timeout = ttl_seconds(fs->ttl_ms);
	e->entry_timeout = ttl_seconds(fs->ttl_ms);
	in->nlookup++;
}

/*
 * Directories have no ETag in a listing; their attributes (set by mkdir,
 * chmod, utimens here) are kept in the metadata cache under "path/" with the
 * pseudo-ETag "dir" and trusted by key. Caller holds the lock.
 */
#define DIR_ETAG "dir"

static void dir_meta_load(struct fs *fs, struct fs_inode *in)
{
	struct fs_attr a = in->attr;
	char *key;

	if (in->meta_known || !*in->path || !fs->cfg.metacache)
		return;
	key = xasprintf("%s/", in->path);
	if (metacache_get(fs->cfg.metacache, key, DIR_ETAG, 0, &a) && S_ISDIR(a.mode)) {
		in->attr = a;
		in->attr.size = 0;
		in->meta_known = 1;
	}
	free(key);
}

static void dir_meta_save(struct fs *fs, const struct fs_inode *in)
{
	char *key = xasprintf("%s/", in->path);
	metacache_put(fs->cfg.metacache, key, DIR_ETAG, 0, &in->attr);
	free(key);
}

/* Record what a listing says about an object in its inode (caller holds lock). */
static void apply_listing_entry(struct fs *fs, struct fs_inode *in, const struct listing_entry *le)
{
	if (in->local || in->data)
		return; /* our own state is newer */
	if (le->type == S_IFDIR) {
		if (!S_ISDIR(in->attr.mode)) {
			in->attr.mode = S_IFDIR | fs->cfg.dir_mode;
			in->meta_known = 0;
		}
		dir_meta_load(fs, in);
	} else {
		int same = in->etag[0] && strcmp(in->etag, le->etag) == 0;
		if (le->has_meta && (!same || !in->meta_known)) {
			/* the metadata cache knows this version's headers: no HEAD needed */
			free(in->etag);
			in->etag = xstrdup(le->etag);
			in->attr.mode = le->meta.mode;
			in->attr.uid = le->meta.uid;
			in->attr.gid = le->meta.gid;
			in->attr.mtime = le->meta.mtime;
			in->meta_known = 1;
			same = 1;
		}
		if (!same) {
			/* a new version: what we knew from headers no longer holds */
			if (!(in->meta_known && S_ISLNK(in->attr.mode) && !le->etag[0])) {
				in->meta_known = 0;
				in->attr.mode = S_IFREG | fs->cfg.file_mode;
				in->attr.uid = fs->cfg.uid;
				in->attr.gid = fs->cfg.gid;
				free(in->link_target);
				in->link_target = NULL;
			}
			free(in->etag);
			in->etag = xstrdup(le->etag);
		}
		in->attr.size = le->size;
		if (!in->meta_known)
			in->attr.mtime = le->mtime;
	}
	in->attr_expiry = util_now_ms() + fs->ttl_ms;
}

/* Apply a HEAD answer to an inode (caller holds lock). */
static void apply_head(struct fs *fs, struct fs_inode *in, const struct s3_object_head *h)
{
	struct fs_attr a = in->attr;
	int mask;

	if (in->local || in->data)
		return;
	a.mode = S_IFREG | fs->cfg.file_mode;
	a.uid = fs->cfg.uid;
	a.gid = fs->cfg.gid;
	a.mtime = h->last_modified;
	a.size = h->size;
	mask = fs_meta_parse(&h->meta, &a);
	if (S_ISDIR(a.mode))
		a.size = 0;
	in->attr = a;
	in->meta_known = mask != 0;
	if (mask)
		metacache_put(fs->cfg.metacache, in->path, h->etag, h->last_modified.tv_sec, &a);
	if (strcmp(in->etag, h->etag ? h->etag : "") != 0) {
		free(in->link_target);
		in->link_target = NULL;
	}
	free(in->etag);
	in->etag = xstrdup(h->etag ? h->etag : "");
	in->attr_expiry = util_now_ms() + fs->ttl_ms;
}

/* ---- listings ---- */

static int cmp_entry_name(const void *a, const void *b)
{
	return strcmp(((const struct listing_entry *)a)->name, ((const struct listing_entry *)b)->name);
}

static const struct listing_entry *listing_find(const struct listing *l, const char *name)
{
	struct listing_entry key = { .name = (char *)name };
	if (!l || !l->n)
		return NULL;
	return bsearch(&key, l->e, l->n, sizeof(*l->e), cmp_entry_name);
}

struct head_batch {
	struct fs *fs;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pending;                    /* protected by lock */
	uint64_t heads;                 /* protected by lock */
};

struct head_job {
	struct head_batch *batch;
	struct listing_entry *entry;
	char *key;
};

static void head_job_run(void *arg)
{
	struct head_job *j = arg;
	struct s3_object_head h;
	struct cm_err err;
	struct fs_attr a = { .mode = S_IFREG | j->batch->fs->cfg.file_mode, .uid = j->batch->fs->cfg.uid,
			     .gid = j->batch->fs->cfg.gid };

	if (store_head(j->batch->fs->cfg.store, j->key, &h, &err) == CM_OK) {
		a.mtime = h.last_modified;
		if (fs_meta_parse(&h.meta, &a)) {
			j->entry->meta = a;
			j->entry->has_meta = 1;
			metacache_put(j->batch->fs->cfg.metacache, j->key, h.etag, h.last_modified.tv_sec, &a);
		}
		s3_object_head_release(&h);
	}
	pthread_mutex_lock(&j->batch->lock);
	j->batch->heads++;
	if (--j->batch->pending == 0)
		pthread_cond_signal(&j->batch->cond);
	pthread_mutex_unlock(&j->batch->lock);
	free(j->key);
	free(j);
}

/*
 * --posix-metadata: HEAD every listed object the metadata cache does not
 * know, in parallel on the work queue, so modes, owners and symlinks of
 * objects written by other tools are right in `ls -l` (at a HEAD per such
 * object, once: the cache remembers them).
 */
static void fetch_headers(struct fs *fs, const char *dirpath, struct listing *l)
{
	struct head_batch batch = { .fs = fs };

	pthread_mutex_init(&batch.lock, NULL);
	pthread_cond_init(&batch.cond, NULL);
	pthread_mutex_lock(&batch.lock);
	for (size_t i = 0; i < l->n; i++) {
		struct head_job *j;
		if (l->e[i].type != S_IFREG || l->e[i].has_meta)
			continue;
		j = xcalloc(1, sizeof(*j));
		j->batch = &batch;
		j->entry = &l->e[i];
		j->key = join_path(dirpath, l->e[i].name);
		batch.pending++;
		workq_submit(fs->cfg.workq, head_job_run, j);
	}
	while (batch.pending)
		pthread_cond_wait(&batch.cond, &batch.lock);
	pthread_mutex_unlock(&batch.lock);
	pthread_cond_destroy(&batch.cond);
	pthread_mutex_destroy(&batch.lock);
	pthread_mutex_lock(&fs->lock);
	fs->stats.heads += batch.heads;
	pthread_mutex_unlock(&fs->lock);
}

/*
 * Listings are fetched page by page into a listing that grows: its entries
 * are sorted by name at all times and only ever appended, so readdir can
 * return the first pages while the next are on their way (ls -l of a big
 * directory, find), with stable offsets. The store sends keys in key order,
 * which is not quite name order: the common prefix "name/" sorts after
 * "name-x" and "name.txt" ('-' and '.' sort before '/'), and "name" may be a
 * file in one page and a directory in a later one. So an entry is appended
 * only once it is settled: no later key can become a name that sorts before
 * it or equals it (entry_settled); the few that are not yet wait in pend.
 * Files created here and not yet stored are seeded into pend (the store
 * cannot list them). Whoever fetches owns the struct list_fetch; the
 * listing's entries are appended under fs->lock, and a reader of an
 * incomplete listing waits on fs->listing_grown.
 */
struct list_fetch {
	char *dirpath;
	char *prefix;                   /* dirpath + "/", or "" for the root */
	size_t plen;
	char *token;                    /* the next page's continuation token */
	char *last;                     /* the greatest key seen so far, less the prefix */
	struct listing_entry *pend;     /* sorted by name: not settled yet */
	size_t npend;
	uint64_t skipped;
	int done;                       /* the last page is in: everything is settled */
};

/* Start fetching dirpath's listing. Caller holds the lock (to see our own files). */
static void lf_begin(struct fs *fs, struct list_fetch *f, const char *dirpath)
{
	size_t dlen = strlen(dirpath), cap = 0;

	memset(f, 0, sizeof(*f));
	f->dirpath = xstrdup(dirpath);
	f->prefix = dlen ? xasprintf("%s/", dirpath) : xstrdup("");
	f->plen = strlen(f->prefix);
	f->last = xstrdup("");
	for (size_t b = 0; fs->n_local && b < fs->n_buckets; b++) {
		for (struct fs_inode *in = fs->by_ino[b]; in; in = in->next_ino) {
			const char *name = in->path + dlen + (dlen ? 1 : 0);
			struct listing_entry *e;

			if (!in->local || in->unlinked || strncmp(in->path, dirpath, dlen) ||
			    (dlen && in->path[dlen] != '/') || !*name || strchr(name, '/'))
				continue;
			if (f->npend == cap) {
				cap = cap ? cap * 2 : 8;
				f->pend = xrealloc(f->pend, cap * sizeof(*f->pend));
			}
			e = &f->pend[f->npend++];
			memset(e, 0, sizeof(*e));
			e->name = xstrdup(name);
			e->type = S_IFREG;
			e->size = in->attr.size;
			e->mtime = in->attr.mtime;
			e->etag = xstrdup(in->etag);
			e->has_meta = 1; /* ours: no HEAD for it (--posix-metadata) */
			e->meta = in->attr;
		}
	}
	if (f->npend > 1)
		qsort(f->pend, f->npend, sizeof(*f->pend), cmp_entry_name);
}

static void lf_end(struct list_fetch *f)
{
	for (size_t i = 0; i < f->npend; i++)
		entry_free(&f->pend[i]);
	free(f->pend);
	free(f->dirpath);
	free(f->prefix);
	free(f->token);
	free(f->last);
}

/* Would the name name[0:j] + "/" of a common prefix sort after last (keys less the prefix)? */
static int dir_key_after(const char *name, size_t j, const char *last)
{
	size_t ll = strlen(last);
	int c = memcmp(name, last, j < ll ? j : ll);

	if (c)
		return c > 0;
	if (ll <= j)
		return 1;
	return '/' > (unsigned char)last[j];
}

/*
 * Can no key after last become a name sorting before e's or equal to it? A
 * later key that is an object is greater than e's key, hence than its name;
 * a later common prefix "m/" gives the name m, which sorts before e's name
 * only if m is e's name cut before a byte below '/', and equals it (a
 * directory beside the file e) if m is e's whole name.
 */
static int entry_settled(const struct listing_entry *e, const char *last, int done)
{
	size_t n = strlen(e->name);

	if (done)
		return 1;
	for (size_t j = 1; j <= n; j++) {
		if (j < n && (unsigned char)e->name[j] >= '/')
			continue;
		if (j == n && e->type == S_IFDIR)
			continue;
		if (dir_key_after(e->name, j, last))
			return 0;
	}
	return 1;
}

/*
 * One page of the listing: fetched, turned into entries, merged with the
 * ones waiting, and the settled ones appended to l. Called without the lock.
 */
static enum cm_status lf_page(struct fs *fs, struct list_fetch *f, struct listing *l, struct cm_err *err)
{
	struct s3_list_page page;
	struct listing_entry *got = NULL, *all;
	struct metacache_query *mq;
	size_t ngot = 0, nall = 0, settled = 0, nmq = 0;
	enum cm_status st;

	st = store_list(fs->cfg.store, f->prefix, "/", f->token, NULL, 0, &page, err);
	if (st != CM_OK)
		return st;
	got = xcalloc(page.n_objects + page.n_prefixes + 1, sizeof(*got));
	mq = xcalloc(page.n_objects + 1, sizeof(*mq));
	for (size_t pass = 0; pass < 2; pass++) {
		size_t count = pass ? page.n_prefixes : page.n_objects;
		for (size_t i = 0; i < count; i++) {
			const char *full = pass ? page.prefixes[i] : page.objects[i].key;
			const char *name;
			size_t nlen;
			struct listing_entry *e;
			if (strncmp(full, f->prefix, f->plen) != 0)
				continue;
			name = full + f->plen;
			nlen = strlen(name);
			if (*f->last && strcmp(name, f->last) <= 0)
				continue; /* a server repeating a key of an earlier page: once is enough */
			if (pass) {
				if (!nlen || name[nlen - 1] != '/')
					continue;
				nlen--;
			} else if (nlen == 0) {
				continue; /* the directory's own marker "dir/" */
			}
			if (!fs_name_valid(name, nlen)) {
				if (!(pass && nlen == 0))
					log_warn("skipping key \"%s\": not usable as a file name", full);
				f->skipped++;
				continue;
			}
			e = &got[ngot++];
			e->name = xstrndup(name, nlen);
			if (pass) {
				e->type = S_IFDIR;
				e->etag = xstrdup("");
			} else {
				e->type = S_IFREG;
				e->size = page.objects[i].size;
				e->mtime = page.objects[i].last_modified;
				e->etag = xstrdup(page.objects[i].etag ? page.objects[i].etag : "");
				mq[nmq].key = full;
				mq[nmq].etag = e->etag;
				mq[nmq].last_modified = e->mtime.tv_sec;
				mq[nmq++].attr = &e->meta;
			}
		}
	}
	/* the greatest key of the page: the last object's or the last common prefix */
	for (size_t pass = 0; pass < 2; pass++) {
		size_t count = pass ? page.n_prefixes : page.n_objects;
		const char *full = !count ? NULL : pass ? page.prefixes[count - 1] : page.objects[count - 1].key;
		if (full && strncmp(full, f->prefix, f->plen) == 0 && strcmp(full + f->plen, f->last) > 0) {
			free(f->last);
			f->last = xstrdup(full + f->plen);
		}
	}
	/* what the metadata cache knows of the page's objects, in one go */
	metacache_get_many(fs->cfg.metacache, mq, nmq);
	for (size_t i = 0, k = 0; i < ngot && k < nmq; i++)
		if (got[i].type == S_IFREG)
			got[i].has_meta = mq[k++].found;
	free(mq);
	free(f->token);
	f->token = page.is_truncated && page.next_token ? xstrdup(page.next_token) : NULL;
	if (page.is_truncated && !page.next_token)
		st = cm_err_set(err, CM_E_PROTOCOL, "truncated listing without a continuation token");
	f->done = !f->token;
	s3_list_page_release(&page);
	if (st != CM_OK) {
		for (size_t i = 0; i < ngot; i++)
			entry_free(&got[i]);
		free(got);
		return st;
	}
	if (ngot > 1)
		qsort(got, ngot, sizeof(*got), cmp_entry_name);

	/* merge with the waiting ones; where a file and a directory share a name the directory wins */
	all = xcalloc(ngot + f->npend + 1, sizeof(*all));
	for (size_t a = 0, b = 0; a < f->npend || b < ngot;) {
		struct listing_entry *x;
		if (b == ngot || (a < f->npend && strcmp(f->pend[a].name, got[b].name) < 0))
			x = &f->pend[a++];
		else
			x = &got[b++];
		if (nall && strcmp(all[nall - 1].name, x->name) == 0) {
			struct listing_entry *prev = &all[nall - 1];
			if (prev->type != x->type)
				log_warn("\"%s%s\" is both a file and a directory: showing the directory",
					 f->prefix, x->name);
			if (x->type == S_IFDIR && prev->type != S_IFDIR) {
				entry_free(prev);
				*prev = *x;
			} else {
				entry_free(x);
			}
			continue;
		}
		all[nall++] = *x;
	}
	free(got);
	free(f->pend);
	while (settled < nall && entry_settled(&all[settled], f->last, f->done))
		settled++;
	pthread_mutex_lock(&fs->lock);
	if (settled) {
		if (l->n + settled > l->cap) {
			l->cap = l->n + settled > 2 * l->cap ? l->n + settled : 2 * l->cap;
			l->e = xrealloc(l->e, l->cap * sizeof(*l->e));
		}
		memcpy(l->e + l->n, all, settled * sizeof(*all));
		l->n += settled;
		pthread_cond_broadcast(&fs->listing_grown);
	}
	pthread_mutex_unlock(&fs->lock);
	f->npend = nall - settled;
	f->pend = xcalloc(f->npend + 1, sizeof(*f->pend));
	memcpy(f->pend, all + settled, f->npend * sizeof(*all));
	free(all);
	return CM_OK;
}

/* The end of a fetch into l: complete, or failed with st. Caller holds the lock. */
static void lf_finish(struct fs *fs, struct list_fetch *f, struct listing *l, enum cm_status st)
{
	l->status = st;
	l->complete = 1;
	fs->stats.skipped_keys += f->skipped;
	if (st == CM_OK)
		fs->stats.listings++;
	pthread_cond_broadcast(&fs->listing_grown);
}

static struct listing *listing_new(void)
{
	struct listing *l = xcalloc(1, sizeof(*l));

	l->refs = 1;
	return l;
}

/*
 * Fetch a directory's whole listing from the store (see struct list_fetch),
 * with --posix-metadata the headers of what the metadata cache lacks.
 */
static enum cm_status listing_fetch(struct fs *fs, const char *dirpath, struct listing **out,
				    struct cm_err *err)
{
	struct listing *l = listing_new();
	struct list_fetch f;
	enum cm_status st = CM_OK;

	pthread_mutex_lock(&fs->lock);
	lf_begin(fs, &f, dirpath);
	pthread_mutex_unlock(&fs->lock);
	while (st == CM_OK && !f.done)
		st = lf_page(fs, &f, l, err);
	if (st == CM_OK && fs->cfg.posix_metadata)
		fetch_headers(fs, dirpath, l);
	pthread_mutex_lock(&fs->lock);
	lf_finish(fs, &f, l, st);
	if (st != CM_OK) {
		listing_put(l);
		l = NULL;
	}
	pthread_mutex_unlock(&fs->lock);
	lf_end(&f);
	*out = l;
	return st;
}

/* A copy of l with name inserted/replaced (le) or removed (le NULL). Caller holds lock. */
static struct listing *listing_patched(const struct listing *l, const char *name,
				       const struct listing_entry *le)
{
	struct listing *n = listing_new();
	size_t cap = (l ? l->n : 0) + 1;
	int placed = 0;

	n->complete = 1;
	n->cap = cap;
	n->e = xcalloc(cap, sizeof(*n->e));
	for (size_t i = 0; l && i <= l->n; i++) {
		int c = i < l->n ? strcmp(l->e[i].name, name) : 1;
		if (c >= 0 && !placed) {
			placed = 1;
			if (le) {
				n->e[n->n] = *le;
				n->e[n->n].name = xstrdup(name);
				n->e[n->n].etag = xstrdup(le->etag ? le->etag : "");
				n->n++;
			}
			if (c == 0)
				continue;
		}
		if (i < l->n) {
			n->e[n->n] = l->e[i];
			n->e[n->n].name = xstrdup(l->e[i].name);
			n->e[n->n].etag = xstrdup(l->e[i].etag);
			n->n++;
		}
	}
	if (!l && le) {
		n->e[0] = *le;
		n->e[0].name = xstrdup(name);
		n->e[0].etag = xstrdup(le->etag ? le->etag : "");
		n->n = 1;
	}
	return n;
}

/* Record a local change of name in dir's listing, if it has one (caller holds lock). */
static void listing_note(struct fs *fs, struct fs_inode *dir, const char *name, const struct fs_inode *in)
{
	struct listing *n;
	struct listing_entry le;

	if (!dir)
		return;
	dir->changes++;
	{
		struct note *nt;
		if (!dir->notes)
			dir->notes = xcalloc(NOTE_LOG, sizeof(*dir->notes));
		nt = &dir->notes[dir->changes % NOTE_LOG];
		entry_free(&nt->e);
		memset(nt, 0, sizeof(*nt));
		nt->e.name = xstrdup(name);
		nt->removed = !in;
		if (in) {
			nt->e.type = S_ISDIR(in->attr.mode) ? S_IFDIR : S_IFREG;
			nt->e.size = in->attr.size;
			nt->e.mtime = in->attr.mtime;
			nt->e.etag = xstrdup(in->etag);
		}
	}
	if (dir->streaming) {
		/* fetched from before this change: open handles keep it, a new opendir must not */
		listing_put(dir->streaming);
		dir->streaming = NULL;
	}
	if (!dir->listing)
		return;
	if (in) {
		memset(&le, 0, sizeof(le));
		le.type = S_ISDIR(in->attr.mode) ? S_IFDIR : S_IFREG;
		le.size = in->attr.size;
		le.mtime = in->attr.mtime;
		le.etag = in->etag;
	}
	n = listing_patched(dir->listing, name, in ? &le : NULL);
	listing_put(dir->listing);
	dir->listing = n;
	/*
	 * A fresh listing we keep up to date with our own changes stays fresh while
	 * we change the directory (tar, cp -r: every create would otherwise probe
	 * the store once the TTL lapsed). Changes by other clients show up once we
	 * stop for a TTL.
	 */
	if (util_now_ms() < dir->listing_expiry)
		dir->listing_expiry = util_now_ms() + fs->ttl_ms;
}

/*
 * A listing fetched from the store, whose fetch began when dir->changes was
 * seen, becomes dir's listing. Our changes of the directory since then (a
 * create, commit, unlink or rename noted in it) may be missing from it: they
 * are replayed on it from dir->notes, in order (replaying one the fetch did
 * see changes nothing). When more happened than the notes keep, the listing
 * is left to the caller (returns 0), who fetches again, unless force. Takes
 * the caller's reference to l when it returns 1. Caller holds the lock.
 */
static int listing_install(struct fs *fs, struct fs_inode *dir, struct listing *l, uint64_t seen, int force)
{
	if (dir->changes - seen > NOTE_LOG) {
		if (!force)
			return 0;
	} else {
		for (uint64_t c = seen + 1; c <= dir->changes; c++) {
			const struct note *n = &dir->notes[c % NOTE_LOG];
			struct listing *p = listing_patched(l, n->e.name, n->removed ? NULL : &n->e);
			listing_put(l);
			l = p;
		}
	}
	listing_put(dir->listing);
	dir->listing = l;
	dir->listing_expiry = util_now_ms() + fs->ttl_ms;
	return 1;
}

/*
 * The inode of the directory holding in, and in's name there (*name points
 * into in->path); NULL for the root, or when the parent has no inode. Caller
 * holds the lock.
 */
static struct fs_inode *parent_of(struct fs *fs, const struct fs_inode *in, const char **name)
{
	const char *slash = strrchr(in->path, '/');
	struct fs_inode *dir;
	char *parent;

	*name = slash ? slash + 1 : in->path;
	if (!*in->path)
		return NULL;
	parent = slash ? xstrndup(in->path, (size_t)(slash - in->path)) : xstrdup("");
	dir = find_path(fs, parent);
	free(parent);
	return dir;
}

/*
 * After a commit or a metadata change of in: the parent's listing must say
 * the same, or a lookup served from it would bring back the old size and
 * ETag. Caller holds the lock.
 */
static void note_in_parent(struct fs *fs, struct fs_inode *in)
{
	const char *name;
	struct fs_inode *dir = in->unlinked ? NULL : parent_of(fs, in, &name);

	if (dir)
		listing_note(fs, dir, name, in);
}

static void refresh_listing(struct fs *fs, struct fs_inode *dir);

/* ---- lookup ---- */

/* What a lookup found out about a name. */
struct probe_result {
	mode_t type;                    /* S_IFREG or S_IFDIR */
	int have_head;                  /* head is filled (a HEAD answered) */
	struct s3_object_head head;
	int have_entry;                 /* entry describes the object from a listing */
	struct listing_entry entry;     /* name and etag malloc'd */
};

static void probe_result_release(struct probe_result *r)
{
	if (r->have_head)
		s3_object_head_release(&r->head);
	free(r->entry.name);
	free(r->entry.etag);
	memset(r, 0, sizeof(*r));
}

struct probe_list_job {
	struct fs *fs;
	char *prefix;
	char *delimiter;
	int max_keys;
	enum cm_status st;
	struct s3_list_page page;
	struct cm_err err;
	int done;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static void probe_list_run(void *arg)
{
	struct probe_list_job *j = arg;

	j->st = store_list(j->fs->cfg.store, j->prefix, j->delimiter, NULL, NULL, j->max_keys, &j->page, &j->err);
	pthread_mutex_lock(&j->lock);
	j->done = 1;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->lock);
}

/*
 * Ask the store what path is, in one round trip: a listing of prefix "path"
 * with delimiter "/" (the object "path" is its first key if it exists; the
 * directory shows as the common prefix "path/" unless more than a page of
 * names like "path-x" sort before it), and, unless the metadata cache has seen
 * this key before, a HEAD of "path" sent at the same time for its headers.
 * Returns CM_OK with r filled, CM_E_NOT_FOUND, or an error.
 */
static enum cm_status probe(struct fs *fs, const char *path, struct probe_result *r, struct cm_err *err)
{
	struct probe_list_job j = { .fs = fs, .max_keys = 100 };
	enum cm_status hst = CM_E_NOT_FOUND;
	size_t plen = strlen(path);
	char *dir_key = xasprintf("%s/", path);
	int want_head = !metacache_known(fs->cfg.metacache, path) && !metacache_known(fs->cfg.metacache, dir_key);
	int dir_seen = 0;
	const struct s3_object_info *exact = NULL;

	free(dir_key);
	memset(r, 0, sizeof(*r));
	j.prefix = xstrdup(path);
	j.delimiter = xstrdup("/");
	pthread_mutex_init(&j.lock, NULL);
	pthread_cond_init(&j.cond, NULL);
	workq_submit(fs->cfg.workq, probe_list_run, &j);
	if (want_head)
		hst = store_head(fs->cfg.store, path, &r->head, err);
	pthread_mutex_lock(&j.lock);
	while (!j.done)
		pthread_cond_wait(&j.cond, &j.lock);
	pthread_mutex_unlock(&j.lock);
	pthread_cond_destroy(&j.cond);
	pthread_mutex_destroy(&j.lock);
	pthread_mutex_lock(&fs->lock);
	fs->stats.lookups_remote++;
	if (want_head)
		fs->stats.heads++;
	pthread_mutex_unlock(&fs->lock);
	r->have_head = hst == CM_OK;
	if (hst != CM_OK && hst != CM_E_NOT_FOUND)
		goto out_error;
	if (j.st != CM_OK) {
		hst = j.st;
		if (err)
			*err = j.err;
		goto out_error;
	}
	for (size_t i = 0; i < j.page.n_prefixes; i++)
		if (strncmp(j.page.prefixes[i], path, plen) == 0 && !strcmp(j.page.prefixes[i] + plen, "/"))
			dir_seen = 1;
	for (size_t i = 0; i < j.page.n_objects && !exact; i++)
		if (!strcmp(j.page.objects[i].key, path))
			exact = &j.page.objects[i];
	if (!dir_seen && j.page.is_truncated) {
		/* names sorting between "path" and "path/" filled the page: ask directly */
		struct s3_list_page page;
		char *dp = xasprintf("%s/", path);
		enum cm_status st = store_list(fs->cfg.store, dp, NULL, NULL, NULL, 1, &page, err);
		free(dp);
		if (st != CM_OK) {
			hst = st;
			goto out_error;
		}
		dir_seen = page.n_objects > 0 || page.n_prefixes > 0;
		s3_list_page_release(&page);
	}
	if (dir_seen) {
		r->type = S_IFDIR;
	} else if (r->have_head || exact) {
		struct fs_attr a = { .mode = S_IFREG };
		if (r->have_head)
			fs_meta_parse(&r->head.meta, &a);
		r->type = S_ISDIR(a.mode) ? S_IFDIR : S_IFREG;
		if (exact) {
			r->have_entry = 1;
			r->entry.type = S_IFREG;
			r->entry.size = exact->size;
			r->entry.mtime = exact->last_modified;
			r->entry.etag = xstrdup(exact->etag ? exact->etag : "");
			r->entry.has_meta = metacache_get(fs->cfg.metacache, path, r->entry.etag,
							  exact->last_modified.tv_sec, &r->entry.meta);
		}
	} else {
		hst = CM_E_NOT_FOUND;
		goto out_error;
	}
	s3_list_page_release(&j.page);
	free(j.prefix);
	free(j.delimiter);
	return CM_OK;
out_error:
	s3_list_page_release(&j.page);
	free(j.prefix);
	free(j.delimiter);
	probe_result_release(r);
	return hst;
}

static void reply_negative(struct fs *fs, fuse_req_t req)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.entry_timeout = ttl_seconds(fs->neg_ttl_ms);
	fuse_reply_entry(req, &e);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *dir, *in;
	struct fuse_entry_param e;
	struct probe_result pr;
	struct cm_err err;
	enum cm_status st;
	char *path;

	if (!fs_name_valid(name, strlen(name))) {
		fuse_reply_err(req, strlen(name) > 255 ? ENAMETOOLONG : ENOENT);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	dir = find_ino(fs, parent);
	if (!dir) {
		pthread_mutex_unlock(&fs->lock);
		fuse_reply_err(req, ENOENT);
		return;
	}
	path = join_path(dir->path, name);
	in = find_path(fs, path);
	if (in && attr_fresh(fs, in)) {
		fs->stats.lookups_cached++;
		make_entry(fs, in, &e);
		pthread_mutex_unlock(&fs->lock);
		fuse_reply_entry(req, &e);
		free(path);
		return;
	}
	if (dir->listing && util_now_ms() < dir->listing_expiry) {
		const struct listing_entry *le = listing_find(dir->listing, name);
		fs->stats.lookups_cached++;
		if (!le) {
			pthread_mutex_unlock(&fs->lock);
			reply_negative(fs, req);
			free(path);
			return;
		}
		if (!in)
			in = inode_new(fs, path, le->type);
		apply_listing_entry(fs, in, le);
		make_entry(fs, in, &e);
		pthread_mutex_unlock(&fs->lock);
		fuse_reply_entry(req, &e);
		free(path);
		return;
	}
	refresh_listing(fs, dir);
	pthread_mutex_unlock(&fs->lock);

	st = probe(fs, path, &pr, &err);
	if (st == CM_E_NOT_FOUND) {
		reply_negative(fs, req);
		free(path);
		return;
	}
	if (st != CM_OK) {
		log_warn("lookup %s: %s (%s)", path, cm_status_str(st), err.code);
		reply_status(req, st);
		free(path);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	in = find_path(fs, path);
	if (!in)
		in = inode_new(fs, path, pr.type);
	if (pr.type == S_IFDIR) {
		if (!S_ISDIR(in->attr.mode) && !in->local && !in->data) {
			in->attr.mode = S_IFDIR | fs->cfg.dir_mode;
			in->meta_known = 0;
		}
		dir_meta_load(fs, in);
		in->attr_expiry = util_now_ms() + fs->ttl_ms;
	} else if (pr.have_head) {
		apply_head(fs, in, &pr.head);
	} else {
		apply_listing_entry(fs, in, &pr.entry);
	}
	make_entry(fs, in, &e);
	pthread_mutex_unlock(&fs->lock);
	probe_result_release(&pr);
	fuse_reply_entry(req, &e);
	free(path);
}

static void forget_one(struct fs *fs, fuse_ino_t ino, uint64_t n)
{
	struct fs_inode *in = find_ino(fs, ino);

	if (!in)
		return;
	in->nlookup = n > in->nlookup ? 0 : in->nlookup - n;
	inode_maybe_free(fs, in);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs *fs = fs_of(req);

	pthread_mutex_lock(&fs->lock);
	forget_one(fs, ino, nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs *fs = fs_of(req);

	pthread_mutex_lock(&fs->lock);
	for (size_t i = 0; i < count; i++)
		forget_one(fs, forgets[i].ino, forgets[i].nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

/*
 * Lock the table and find the inode a request names. Returns it with fs->lock
 * HELD, or NULL after replying ENOENT (lock not held).
 */
static struct fs_inode *lock_inode(fuse_req_t req, struct fs *fs, fuse_ino_t ino)
{
	struct fs_inode *in;

	pthread_mutex_lock(&fs->lock);
	in = find_ino(fs, ino);
	if (!in) {
		pthread_mutex_unlock(&fs->lock);
		fuse_reply_err(req, ENOENT);
	}
	return in;
}

/* ---- attributes ---- */

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *in;
	struct stat st;
	struct s3_object_head head;
	struct cm_err err;
	enum cm_status rc;
	char *path;

	(void)fi;
	in = lock_inode(req, fs, ino);
	if (!in)
		return;
	if (!attr_fresh(fs, in) && !S_ISDIR(in->attr.mode) && !in->unlinked) {
		/* a fresh listing of its directory answers as it does for lookups */
		const char *name;
		struct fs_inode *dir = parent_of(fs, in, &name);
		if (dir && dir->listing && util_now_ms() < dir->listing_expiry) {
			const struct listing_entry *le = listing_find(dir->listing, name);
			if (le && le->type == S_IFREG)
				apply_listing_entry(fs, in, le);
		} else {
			refresh_listing(fs, dir);
		}
	}
	if (attr_fresh(fs, in) || S_ISDIR(in->attr.mode) || in->unlinked) {
		fill_stat(fs, in, &st);
		pthread_mutex_unlock(&fs->lock);
		fuse_reply_attr(req, &st, ttl_seconds(fs->ttl_ms));
		return;
	}
	path = xstrdup(in->path);
	pthread_mutex_unlock(&fs->lock);
	rc = store_head(fs->cfg.store, path, &head, &err);
	pthread_mutex_lock(&fs->lock);
	fs->stats.heads++;
	if (rc == CM_OK) {
		apply_head(fs, in, &head);
	} else if (rc != CM_E_NOT_FOUND) {
		pthread_mutex_unlock(&fs->lock);
		log_warn("getattr %s: %s", path, cm_status_str(rc));
		reply_status(req, rc);
		free(path);
		return;
	}
	fill_stat(fs, in, &st);
	pthread_mutex_unlock(&fs->lock);
	s3_object_head_release(&head);
	free(path);
	if (rc == CM_E_NOT_FOUND)
		fuse_reply_err(req, ENOENT);
	else
		fuse_reply_attr(req, &st, ttl_seconds(fs->ttl_ms));
}

/* Build the put options (content type and s3fs headers) for an inode. */
static void put_opts_for(const struct fs_inode *in, struct s3_meta *meta, struct s3_put_opts *o)
{
	memset(meta, 0, sizeof(*meta));
	fs_meta_build(&in->attr, meta);
	memset(o, 0, sizeof(*o));
	o->meta = meta;
	o->content_type = S_ISDIR(in->attr.mode) ? DIR_MARKER_TYPE : "application/octet-stream";
}

/*
 * Commit an inode's dirty data (flush, fsync, release, unmount). Returns 0 or
 * a positive errno. Called without fs->lock.
 */
static int commit_under(struct fs *fs, const char *dir);

static fuse_ino_t forget_lost_data(struct fs *fs, struct fs_inode *in);

/*
 * in's data once its last holder (a handle's release, or a commit or a
 * truncate that held it like one) has let go: no handle needs it, so it is
 * taken off the inode, and what it held that the store never acknowledged is
 * lost (forget_lost_data, whose inode *inval gets; unless quiet: a truncate
 * whose own commit failed leaves the store as it was). Returns the data to
 * destroy after unlocking, or NULL while holders remain. Caller holds the lock.
 */
static struct fdata *data_let_go(struct fs *fs, struct fs_inode *in, int quiet, fuse_ino_t *inval)
{
	struct fdata *drop = in->data;

	if (in->open_count || !drop)
		return NULL;
	if (!quiet && fdata_dirty(drop) && !in->unlinked) {
		fuse_ino_t ino = forget_lost_data(fs, in);
		if (inval)
			*inval = ino;
	}
	in->data = NULL;
	set_local(fs, in, 0);
	return drop;
}

static int commit_inode(struct fs *fs, struct fs_inode *in)
{
	struct s3_meta meta;
	struct s3_put_opts o;
	struct fdata *data, *drop = NULL;
	struct cm_err err;
	char *etag = NULL;
	uint64_t size = 0;
	int rc, skip;

	pthread_mutex_lock(&fs->lock);
	data = in->data;
	skip = !data || in->unlinked || !fdata_dirty(data);
	if (!skip) {
		put_opts_for(in, &meta, &o);
		in->open_count++; /* held like a handle: a release meanwhile must not free it */
	}
	pthread_mutex_unlock(&fs->lock);
	if (skip)
		return 0;
	rc = fdata_commit(data, &o, &etag, &size, &err);
	s3_meta_release(&meta);
	pthread_mutex_lock(&fs->lock);
	fs->stats.commits++;
	if (rc == 0) {
		if (etag) {
			free(in->etag);
			in->etag = etag;
			etag = NULL;
		}
		in->attr.size = size;
		set_local(fs, in, 0);
		in->meta_known = 1;
		metacache_put(fs->cfg.metacache, in->path, in->etag, 0, &in->attr);
		note_in_parent(fs, in);
		in->attr_expiry = util_now_ms() + fs->ttl_ms;
	} else {
		fs->stats.commit_failures++;
	}
	in->open_count--;
	drop = data_let_go(fs, in, 0, NULL); /* every handle was released meanwhile */
	pthread_mutex_unlock(&fs->lock);
	fdata_destroy(drop);
	free(etag);
	if (rc != 0) {
		char line[512];
		log_error("writing %s failed: %s", in->path, cm_err_format(&err, line, sizeof(line)));
		return -rc;
	}
	return 0;
}

/* Store the inode's attributes as metadata (chmod, chown, utimens). */
static enum cm_status update_metadata(struct fs *fs, struct fs_inode *in, struct cm_err *err)
{
	struct s3_meta meta;
	struct s3_put_opts o;
	char *key;
	enum cm_status st;

	pthread_mutex_lock(&fs->lock);
	if (in->local || (in->data && fdata_dirty(in->data))) {
		/* applied by the commit that is coming anyway */
		pthread_mutex_unlock(&fs->lock);
		return CM_OK;
	}
	put_opts_for(in, &meta, &o);
	key = S_ISDIR(in->attr.mode) ? xasprintf("%s/", in->path) : xstrdup(in->path);
	pthread_mutex_unlock(&fs->lock);
	if (S_ISDIR(in->attr.mode) && !*in->path) {
		st = CM_OK; /* the root has no object */
	} else {
		char *etag = NULL;
		st = store_copy(fs->cfg.store, key, key, &o, &etag, err);
		if (st == CM_E_NOT_FOUND && S_ISDIR(in->attr.mode)) {
			/* a directory that is only a prefix: give it a marker to hold the metadata */
			struct s3_body body = { .fd = -1 };
			st = store_put(fs->cfg.store, key, &body, &o, NULL, err);
		}
		if (st == CM_OK && S_ISDIR(in->attr.mode)) {
			pthread_mutex_lock(&fs->lock);
			dir_meta_save(fs, in);
			pthread_mutex_unlock(&fs->lock);
		}
		if (st == CM_OK && etag && !S_ISDIR(in->attr.mode)) {
			pthread_mutex_lock(&fs->lock);
			free(in->etag);
			in->etag = etag;
			etag = NULL;
			in->meta_known = 1;
			in->attr_expiry = util_now_ms() + fs->ttl_ms;
			metacache_put(fs->cfg.metacache, in->path, in->etag, 0, &in->attr);
			note_in_parent(fs, in);
			pthread_mutex_unlock(&fs->lock);
		}
		free(etag);
	}
	s3_meta_release(&meta);
	free(key);
	return st;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *in;
	struct stat st;
	struct cm_err err;
	struct fs_attr before;
	int before_known;
	int meta_change = to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |
				    FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW);

	(void)fi;
	if (fs->cfg.read_only && (to_set & ~(FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW))) {
		fuse_reply_err(req, EROFS);
		return;
	}
	in = lock_inode(req, fs, ino);
	if (!in)
		return;
	before = in->attr;
	before_known = in->meta_known;
	if (to_set & FUSE_SET_ATTR_MODE)
		in->attr.mode = (in->attr.mode & S_IFMT) | (attr->st_mode & 07777);
	if (to_set & FUSE_SET_ATTR_UID)
		in->attr.uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		in->attr.gid = attr->st_gid;
	if (to_set & FUSE_SET_ATTR_MTIME)
		in->attr.mtime = attr->st_mtim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		clock_gettime(CLOCK_REALTIME, &in->attr.mtime);
	if (meta_change)
		in->meta_known = 1;
	pthread_mutex_unlock(&fs->lock);

	if (to_set & FUSE_SET_ATTR_SIZE) {
		int rc = 0, last;
		struct fdata *tmp = NULL, *data, *drop = NULL;
		if (S_ISDIR(in->attr.mode)) {
			fuse_reply_err(req, EISDIR);
			return;
		}
		/*
		 * A truncate(path) of a file nobody has open goes through a
		 * short-lived fdata. Either way the data is held like an open
		 * handle's: the kernel sends RELEASE after close() has returned,
		 * so the release of an earlier handle may run meanwhile, and must
		 * neither drop this data under us nor leave it unstored.
		 */
		pthread_mutex_lock(&fs->lock);
		if (!in->data) {
			tmp = fdata_create(&fs->fdata_opts, in->path, !in->local, in->attr.size, in->etag,
					   attr->st_size == 0);
			in->data = tmp;
		}
		data = in->data;
		in->open_count++;
		pthread_mutex_unlock(&fs->lock);
		if (attr->st_size != 0 || !tmp)
			rc = fdata_truncate(data, (uint64_t)attr->st_size, &err);
		pthread_mutex_lock(&fs->lock);
		if (rc == 0)
			clock_gettime(CLOCK_REALTIME, &in->attr.mtime);
		last = in->open_count == 1;
		pthread_mutex_unlock(&fs->lock);
		if (rc == 0 && (tmp || last))
			rc = -commit_inode(fs, in); /* no handle is left to store it */
		pthread_mutex_lock(&fs->lock);
		in->open_count--;
		/* a failed commit of ours leaves the store's content as it was */
		drop = data_let_go(fs, in, tmp != NULL, NULL);
		pthread_mutex_unlock(&fs->lock);
		fdata_destroy(drop);
		if (rc < 0) {
			fuse_reply_err(req, -rc);
			return;
		}
	} else if (meta_change) {
		enum cm_status rc = update_metadata(fs, in, &err);
		if (rc != CM_OK) {
			/* the store kept the old attributes: so must the mount */
			pthread_mutex_lock(&fs->lock);
			in->attr.mode = before.mode;
			in->attr.uid = before.uid;
			in->attr.gid = before.gid;
			in->attr.mtime = before.mtime;
			in->meta_known = before_known;
			pthread_mutex_unlock(&fs->lock);
			log_warn("setattr %s: %s", in->path, cm_status_str(rc));
			reply_status(req, rc);
			return;
		}
	}
	pthread_mutex_lock(&fs->lock);
	fill_stat(fs, in, &st);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_attr(req, &st, ttl_seconds(fs->ttl_ms));
}

/* ---- namespace changes ---- */

/*
 * The start of every namespace change: refuse on a read-only mount, check the
 * new name (when check_name), find the parent directory. Returns the child's
 * path (malloc'd) with fs->lock HELD and *dir set, or NULL after replying with
 * the error (lock not held).
 */
static char *begin_change(fuse_req_t req, struct fs *fs, fuse_ino_t parent, const char *name,
			  int check_name, struct fs_inode **dir)
{
	if (fs->cfg.read_only) {
		fuse_reply_err(req, EROFS);
		return NULL;
	}
	if (check_name && !fs_name_valid(name, strlen(name))) {
		fuse_reply_err(req, strlen(name) > 255 ? ENAMETOOLONG : EINVAL);
		return NULL;
	}
	pthread_mutex_lock(&fs->lock);
	*dir = find_ino(fs, parent);
	if (!*dir) {
		pthread_mutex_unlock(&fs->lock);
		fuse_reply_err(req, ENOENT);
		return NULL;
	}
	return join_path((*dir)->path, name);
}

/* Create an object-backed entry (mkdir marker, symlink) and reply with it. */
static void make_node(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      const char *link_target)
{
	struct fs *fs = fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct fs_inode *dir, *in;
	struct fs_attr a;
	struct s3_meta meta = { 0 };
	struct s3_put_opts o = { 0 };
	struct s3_body body = { .fd = -1 };
	struct fuse_entry_param e;
	struct cm_err err;
	char *path, *key, *etag = NULL;
	enum cm_status st;

	path = begin_change(req, fs, parent, name, 1, &dir);
	if (!path)
		return;
	if (find_path(fs, path) && attr_fresh(fs, find_path(fs, path))) {
		pthread_mutex_unlock(&fs->lock);
		free(path);
		fuse_reply_err(req, EEXIST);
		return;
	}
	pthread_mutex_unlock(&fs->lock);
	memset(&a, 0, sizeof(a));
	a.mode = mode;
	a.uid = ctx->uid;
	a.gid = ctx->gid;
	clock_gettime(CLOCK_REALTIME, &a.mtime);
	fs_meta_build(&a, &meta);
	o.meta = &meta;
	if (S_ISDIR(mode)) {
		key = xasprintf("%s/", path);
		o.content_type = DIR_MARKER_TYPE;
	} else {
		key = xstrdup(path);
		body.mem = link_target;
		body.len = strlen(link_target);
		o.content_type = "application/octet-stream";
	}
	st = store_put(fs->cfg.store, key, &body, &o, &etag, &err);
	s3_meta_release(&meta);
	free(key);
	if (st != CM_OK) {
		log_warn("creating %s: %s", path, cm_status_str(st));
		reply_status(req, st);
		free(path);
		free(etag);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	in = find_path(fs, path);
	if (!in)
		in = inode_new(fs, path, mode & S_IFMT);
	in->attr = a;
	in->attr.size = link_target ? strlen(link_target) : 0;
	in->meta_known = 1;
	free(in->etag);
	in->etag = etag ? etag : xstrdup("");
	if (link_target) {
		free(in->link_target);
		in->link_target = xstrdup(link_target);
		metacache_put(fs->cfg.metacache, path, in->etag, 0, &in->attr);
	} else {
		/* a directory we just made is empty: lookups in it need no request */
		listing_put(in->listing);
		in->listing = xcalloc(1, sizeof(*in->listing));
		in->listing->refs = 1;
		in->listing_expiry = util_now_ms() + fs->ttl_ms;
		dir_meta_save(fs, in);
	}
	in->attr_expiry = util_now_ms() + fs->ttl_ms;
	listing_note(fs, dir, name, in);
	make_entry(fs, in, &e);
	pthread_mutex_unlock(&fs->lock);
	free(path);
	fuse_reply_entry(req, &e);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	make_node(req, parent, name, S_IFDIR | (mode & 07777), NULL);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	if (strlen(link) >= MAX_SYMLINK) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	make_node(req, parent, name, S_IFLNK | 0777, link);
}

struct readlink_sink {
	struct buf b;
};

static int readlink_sink_fn(void *ctx, const char *data, size_t len)
{
	struct readlink_sink *s = ctx;
	if (s->b.len + len > MAX_SYMLINK)
		return -1;
	return buf_append(&s->b, data, len);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *in;
	struct readlink_sink sink = { BUF_INIT };
	struct cm_err err;
	enum cm_status st;
	char *path;

	in = lock_inode(req, fs, ino);
	if (!in)
		return;
	if (in->link_target) {
		char *t = xstrdup(in->link_target);
		pthread_mutex_unlock(&fs->lock);
		fuse_reply_readlink(req, t);
		free(t);
		return;
	}
	path = xstrdup(in->path);
	pthread_mutex_unlock(&fs->lock);
	st = store_get(fs->cfg.store, path, 0, MAX_SYMLINK, readlink_sink_fn, &sink, NULL, NULL, &err);
	if (st != CM_OK) {
		reply_status(req, st);
	} else {
		buf_putc(&sink.b, '\0');
		pthread_mutex_lock(&fs->lock);
		free(in->link_target);
		in->link_target = xstrdup(sink.b.data);
		pthread_mutex_unlock(&fs->lock);
		fuse_reply_readlink(req, sink.b.data);
	}
	buf_release(&sink.b);
	free(path);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *dir, *in;
	struct cm_err err;
	enum cm_status st = CM_OK;
	char *path;
	int local = 0;
	struct fdata *detach = NULL;

	path = begin_change(req, fs, parent, name, 0, &dir);
	if (!path)
		return;
	in = find_path(fs, path);
	if (in && in->local)
		local = 1;
	if (in && in->open_count && !local) {
		/* POSIX: an open file stays usable after unlink; keep a whole local copy first */
		if (!in->data)
			in->data = fdata_create(&fs->fdata_opts, in->path, 1, in->attr.size, in->etag, 0);
		detach = in->data;
		in->open_count++; /* a release racing with us must not free it meanwhile */
	}
	pthread_mutex_unlock(&fs->lock);
	if (detach) {
		int rc = fdata_detach(detach, &err);
		struct fdata *drop = NULL;
		pthread_mutex_lock(&fs->lock);
		if (--in->open_count == 0) {
			/* the last handle closed while we copied: nobody needs the copy */
			drop = in->data;
			in->data = NULL;
		}
		pthread_mutex_unlock(&fs->lock);
		fdata_destroy(drop);
		if (rc < 0) {
			log_warn("unlink %s: keeping a local copy for its open handles failed: %s", path,
				 cm_status_str(err.status));
			fuse_reply_err(req, -rc);
			free(path);
			return;
		}
	}
	if (!local)
		st = store_del(fs->cfg.store, path, &err);
	if (st != CM_OK) {
		log_warn("unlink %s: %s", path, cm_status_str(st));
		reply_status(req, st);
		free(path);
		return;
	}
	metacache_del(fs->cfg.metacache, path);
	pthread_mutex_lock(&fs->lock);
	forget_name(fs, find_path(fs, path));
	listing_note(fs, dir, name, NULL);
	pthread_mutex_unlock(&fs->lock);
	free(path);
	fuse_reply_err(req, 0);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *dir;
	struct s3_list_page page;
	struct cm_err err;
	enum cm_status st;
	char *path, *prefix;
	int nonempty = 0;

	path = begin_change(req, fs, parent, name, 0, &dir);
	if (!path)
		return;
	pthread_mutex_unlock(&fs->lock);
	prefix = xasprintf("%s/", path);
	st = store_list(fs->cfg.store, prefix, NULL, NULL, NULL, 2, &page, &err);
	if (st == CM_OK) {
		for (size_t i = 0; i < page.n_objects; i++)
			if (strcmp(page.objects[i].key, prefix) != 0)
				nonempty = 1;
		nonempty |= page.n_prefixes > 0;
		s3_list_page_release(&page);
	}
	if (st == CM_OK && nonempty) {
		fuse_reply_err(req, ENOTEMPTY);
		goto out_free;
	}
	if (st == CM_OK)
		st = store_del(fs->cfg.store, prefix, &err);
	if (st != CM_OK) {
		reply_status(req, st);
		goto out_free;
	}
	metacache_del(fs->cfg.metacache, prefix);
	pthread_mutex_lock(&fs->lock);
	forget_name(fs, find_path(fs, path));
	listing_note(fs, dir, name, NULL);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_err(req, 0);
out_free:
	free(prefix);
	free(path);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino;
	(void)newparent;
	(void)newname;
	fuse_reply_err(req, EPERM); /* objects cannot share data */
}

/* Adapts the uploader to a download sink (copy through this host). */
static int uploader_sink(void *ctx, const char *data, size_t len)
{
	return uploader_write(ctx, data, len, NULL) == CM_OK ? 0 : -1;
}

/*
 * Copy one object server-side, by multipart copy above the threshold, or
 * through GET + PUT when the server lacks part copy.
 */
static enum cm_status copy_object(struct fs *fs, const char *from, const char *to, uint64_t size,
				  struct cm_err *err)
{
	uint64_t threshold = fs->cfg.copy_threshold ? fs->cfg.copy_threshold : 5ULL << 30;
	enum cm_status st;

	if (size <= threshold)
		return store_copy(fs->cfg.store, to, from, NULL, NULL, err);
	{
		struct s3_object_head h;
		struct s3_put_opts o = { 0 };
		char *upload_id = NULL;
		uint64_t part = threshold, off = 0;
		struct s3_part *parts;
		char **etags;
		int n = 0, max_parts;

		while ((size + part - 1) / part > TRANSFER_MAX_PARTS)
			part *= 2;
		max_parts = (int)((size + part - 1) / part);
		st = store_head(fs->cfg.store, from, &h, err);
		if (st != CM_OK)
			return st;
		o.content_type = h.content_type;
		o.meta = &h.meta;
		st = store_mpu_create(fs->cfg.store, to, &o, &upload_id, err);
		if (st != CM_OK) {
			s3_object_head_release(&h);
			return st;
		}
		parts = xcalloc((size_t)max_parts, sizeof(*parts));
		etags = xcalloc((size_t)max_parts, sizeof(*etags));
		while (off < size && st == CM_OK) {
			uint64_t last = off + part - 1 < size - 1 ? off + part - 1 : size - 1;
			st = store_mpu_part_copy(fs->cfg.store, to, upload_id, n + 1, from, off, last, &etags[n], err);
			if (st == CM_OK) {
				parts[n].number = n + 1;
				parts[n].etag = etags[n];
				n++;
			}
			off = last + 1;
		}
		if (st == CM_OK)
			st = store_mpu_complete(fs->cfg.store, to, upload_id, parts, (size_t)n, NULL, err);
		if (st != CM_OK) {
			struct cm_err aerr;
			store_mpu_abort(fs->cfg.store, to, upload_id, &aerr);
		}
		for (int i = 0; i < n; i++)
			free(etags[i]);
		free(etags);
		free(parts);
		free(upload_id);
		s3_object_head_release(&h);
		if (st == CM_E_UNSUPPORTED) {
			/* no UploadPartCopy here: stream it through us */
			struct uploader *up;
			struct upload_opts uo = { .part_size = fs->cfg.part_size, .concurrency = fs->cfg.concurrency,
						  .budget = fs->cfg.budget, .workq = fs->cfg.workq };
			struct download_opts dopts = { .part_size = fs->cfg.part_size, .concurrency = 4,
						       .budget = fs->cfg.budget, .workq = fs->cfg.workq };
			log_info("copy %s -> %s: the server lacks part copy; copying through this host", from, to);
			st = store_head(fs->cfg.store, from, &h, err);
			if (st != CM_OK)
				return st;
			o.content_type = h.content_type;
			o.meta = &h.meta;
			uo.put_opts = &o;
			up = uploader_create(fs->cfg.store, to, &uo);
			st = download_to_sink(fs->cfg.store, from, size, uploader_sink, up, &dopts, err);
			if (st == CM_OK)
				st = uploader_finish(up, NULL, err);
			else
				uploader_abort(up);
			uploader_destroy(up);
			s3_object_head_release(&h);
		}
	}
	return st;
}

/* Rewrite the paths of inodes at or below from (as a directory) to to. Caller holds lock. */
static void rename_subtree(struct fs *fs, const char *from, const char *to)
{
	size_t flen = strlen(from);
	struct fs_inode **moved = NULL;
	size_t n = 0;

	for (size_t b = 0; b < fs->n_buckets; b++) {
		for (struct fs_inode *in = fs->by_ino[b]; in; in = in->next_ino) {
			if (in->unlinked || strncmp(in->path, from, flen) != 0 || in->path[flen] != '/')
				continue;
			moved = xrealloc(moved, (n + 1) * sizeof(*moved));
			moved[n++] = in;
		}
	}
	for (size_t i = 0; i < n; i++) {
		char *np = xasprintf("%s%s", to, moved[i]->path + flen);
		path_unlink(fs, moved[i]);
		free(moved[i]->path);
		moved[i]->path = np;
		path_link(fs, moved[i]);
		if (moved[i]->data)
			fdata_set_key(moved[i]->data, np);
	}
	free(moved);
}

/* Every key under prefix (recursively), for a directory rename. */
static enum cm_status list_all(struct fs *fs, const char *prefix, char ***keys, uint64_t **sizes, size_t *n,
			       struct cm_err *err)
{
	char *token = NULL;
	enum cm_status st;

	*keys = NULL;
	*sizes = NULL;
	*n = 0;
	do {
		struct s3_list_page page;
		st = store_list(fs->cfg.store, prefix, NULL, token, NULL, 0, &page, err);
		if (st != CM_OK)
			break;
		*keys = xrealloc(*keys, (*n + page.n_objects + 1) * sizeof(**keys));
		*sizes = xrealloc(*sizes, (*n + page.n_objects + 1) * sizeof(**sizes));
		for (size_t i = 0; i < page.n_objects; i++) {
			(*keys)[*n] = xstrdup(page.objects[i].key);
			(*sizes)[*n] = page.objects[i].size;
			(*n)++;
		}
		free(token);
		token = page.is_truncated && page.next_token ? xstrdup(page.next_token) : NULL;
		s3_list_page_release(&page);
	} while (token);
	free(token);
	return st;
}

static void free_keys(char **keys, uint64_t *sizes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	free(sizes);
}

/* Delete keys in batches of 1,000. */
static enum cm_status delete_keys(struct fs *fs, char **keys, size_t n, struct cm_err *err)
{
	for (size_t done = 0; done < n;) {
		size_t batch = n - done > 1000 ? 1000 : n - done;
		struct s3_delete_result res;
		enum cm_status st = store_del_many(fs->cfg.store, (const char *const *)keys + done, batch, &res, err);
		if (st == CM_E_UNSUPPORTED) {
			/* no DeleteObjects on this server: one by one */
			for (size_t i = 0; i < batch; i++) {
				st = store_del(fs->cfg.store, keys[done + i], err);
				if (st != CM_OK)
					return st;
			}
		} else if (st != CM_OK) {
			return st;
		} else {
			size_t failures = res.n_failures;
			s3_delete_result_release(&res);
			if (failures)
				return cm_err_set(err, CM_E_IO, "%zu keys could not be deleted", failures);
		}
		done += batch;
	}
	return CM_OK;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *dir, *ndir, *in, *target;
	struct cm_err err;
	enum cm_status st = CM_OK;
	char *from = NULL, *to = NULL;
	mode_t type;
	uint64_t size;
	int rc, both = 0;

	if (fs->cfg.read_only) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (flags & RENAME_EXCHANGE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (!fs_name_valid(newname, strlen(newname))) {
		fuse_reply_err(req, strlen(newname) > 255 ? ENAMETOOLONG : EINVAL);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	dir = find_ino(fs, parent);
	ndir = find_ino(fs, newparent);
	if (!dir || !ndir) {
		pthread_mutex_unlock(&fs->lock);
		fuse_reply_err(req, ENOENT);
		return;
	}
	from = join_path(dir->path, name);
	to = join_path(ndir->path, newname);
	in = find_path(fs, from);
	target = find_path(fs, to);
	if (!in) {
		pthread_mutex_unlock(&fs->lock);
		fuse_reply_err(req, ENOENT);
		goto out_free;
	}
	type = in->attr.mode & S_IFMT;
	if (type == S_IFDIR && strncmp(to, from, strlen(from)) == 0 && to[strlen(from)] == '/') {
		pthread_mutex_unlock(&fs->lock);
		fuse_reply_err(req, EINVAL); /* into itself */
		goto out_free;
	}
	if (target && (flags & RENAME_NOREPLACE)) {
		pthread_mutex_unlock(&fs->lock);
		fuse_reply_err(req, EEXIST);
		goto out_free;
	}
	if (target && S_ISDIR(target->attr.mode) && type != S_IFDIR) {
		pthread_mutex_unlock(&fs->lock);
		fuse_reply_err(req, EISDIR);
		goto out_free;
	}
	if (target && !S_ISDIR(target->attr.mode) && type == S_IFDIR) {
		pthread_mutex_unlock(&fs->lock);
		fuse_reply_err(req, ENOTDIR);
		goto out_free;
	}
	pthread_mutex_unlock(&fs->lock);

	if (type != S_IFDIR) {
		/* the object must exist before it can be copied */
		rc = commit_inode(fs, in);
		if (rc) {
			fuse_reply_err(req, rc);
			goto out_free;
		}
		pthread_mutex_lock(&fs->lock);
		size = in->attr.size;
		pthread_mutex_unlock(&fs->lock);
		st = copy_object(fs, from, to, size, &err);
		if (st == CM_OK) {
			st = store_del(fs->cfg.store, from, &err);
			both = st != CM_OK;
			if (both && !target) {
				/* the rename failed: take the copy back, so only the old name exists */
				struct cm_err rerr;
				if (store_del(fs->cfg.store, to, &rerr) == CM_OK)
					both = 0;
				else
					log_warn("rename %s -> %s failed and %s could not be removed: both exist", from,
						 to, to);
			}
		}
	} else {
		char *fp = xasprintf("%s/", from), *tp = xasprintf("%s/", to);
		char **keys;
		uint64_t *sizes;
		size_t n;
		if (target) {
			/* POSIX: a directory may replace only an empty one */
			struct s3_list_page page;
			st = store_list(fs->cfg.store, tp, NULL, NULL, NULL, 2, &page, &err);
			if (st == CM_OK) {
				int nonempty = page.n_prefixes > 0;
				for (size_t i = 0; i < page.n_objects; i++)
					nonempty |= strcmp(page.objects[i].key, tp) != 0;
				s3_list_page_release(&page);
				if (nonempty) {
					free(fp);
					free(tp);
					fuse_reply_err(req, ENOTEMPTY);
					goto out_free;
				}
			}
		}
		/* files of the tree still being written must land first */
		commit_under(fs, from);
		st = list_all(fs, fp, &keys, &sizes, &n, &err);
		for (size_t i = 0; st == CM_OK && i < n; i++) {
			char *nk = xasprintf("%s%s", tp, keys[i] + strlen(fp));
			st = copy_object(fs, keys[i], nk, sizes[i], &err);
			free(nk);
		}
		if (st == CM_OK)
			st = delete_keys(fs, keys, n, &err);
		free_keys(keys, sizes, n);
		free(fp);
		free(tp);
	}
	if (st != CM_OK) {
		char line[512];
		fuse_ino_t stale = 0;
		log_warn("rename %s -> %s: %s", from, to, cm_err_format(&err, line, sizeof(line)));
		if (both) {
			/* the store now has the file under both names: show it so */
			pthread_mutex_lock(&fs->lock);
			target = find_path(fs, to);
			if (target && target != in) {
				target->attr_expiry = 0;
				stale = target->ino;
			}
			listing_note(fs, ndir, newname, in);
			pthread_mutex_unlock(&fs->lock);
		}
		reply_status(req, st);
		/* the kernel may hold a "no such name" or the replaced file's attributes */
		if (both && fs->session) {
			fuse_lowlevel_notify_inval_entry(fs->session, newparent, newname, strlen(newname));
			if (stale)
				fuse_lowlevel_notify_inval_inode(fs->session, stale, 0, 0);
		}
		goto out_free;
	}
	pthread_mutex_lock(&fs->lock);
	target = find_path(fs, to);
	if (target != in)
		forget_name(fs, target);
	path_unlink(fs, in);
	free(in->path);
	in->path = xstrdup(to);
	path_link(fs, in);
	if (type != S_IFDIR) {
		metacache_del(fs->cfg.metacache, from);
		if (in->meta_known)
			metacache_put(fs->cfg.metacache, to, in->etag, 0, &in->attr);
	}
	if (in->data)
		fdata_set_key(in->data, to);
	if (type == S_IFDIR)
		rename_subtree(fs, from, to);
	listing_note(fs, dir, name, NULL);
	listing_note(fs, ndir, newname, in);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_err(req, 0);
out_free:
	free(from);
	free(to);
}

/* ---- files ---- */

static struct fs_handle *handle_of(struct fuse_file_info *fi)
{
	return (struct fs_handle *)(uintptr_t)fi->fh;
}

/*
 * Bring a file inode's size and ETag up to date with a HEAD when they are
 * older than the TTL (the object may have changed elsewhere). Called without
 * the lock. Returns CM_OK, CM_E_NOT_FOUND or an error.
 */
static enum cm_status revalidate(struct fs *fs, struct fs_inode *in, int force)
{
	struct s3_object_head head;
	struct cm_err err;
	enum cm_status st;
	char *path;

	pthread_mutex_lock(&fs->lock);
	if ((!force && attr_fresh(fs, in)) || in->local || in->data || !S_ISREG(in->attr.mode)) {
		pthread_mutex_unlock(&fs->lock);
		return CM_OK;
	}
	path = xstrdup(in->path);
	pthread_mutex_unlock(&fs->lock);
	st = store_head(fs->cfg.store, path, &head, &err);
	pthread_mutex_lock(&fs->lock);
	fs->stats.heads++;
	if (st == CM_OK)
		apply_head(fs, in, &head);
	pthread_mutex_unlock(&fs->lock);
	if (st == CM_OK)
		s3_object_head_release(&head);
	free(path);
	return st;
}

/*
 * File read-ahead: a walk that reads every file of a directory (cp -r out,
 * tar c, grep -r, a backup, reading a tree back) opens the files one after
 * the other in the order readdir gave them, and each open costs a GET round
 * trip before the program can go on. When a directory's file is opened right
 * after the one before it in that order (and the one before that), the next
 * FILE_AHEAD files that fit in one part are fetched whole, in parallel, on the
 * work queue, into buffers of the memory budget (only what is free now: it
 * never waits, nor holds more than FILE_AHEAD_BYTES); their open takes the
 * bytes over (reader_adopt) if the object is still the one listed (ETag).
 * What is not opened within FILE_AHEAD_KEEP_MS is let go. Skipped with TTL 0
 * (every open asks the store).
 */
enum { FA_FETCHING, FA_READY, FA_FAILED };

struct file_ahead {
	struct file_ahead *next;
	struct fs *fs;
	char *path;
	char *etag;                     /* as listed; the GET must return it */
	uint64_t size;
	char *data;                     /* size bytes of the budget */
	int state;                      /* FA_*, under fs->lock */
	int dropped;                    /* unlinked while FETCHING: the job frees it */
	int64_t born_ms;
};

static void ahead_free(struct fs *fs, struct file_ahead *a)
{
	membudget_free(fs->cfg.budget, a->data, (size_t)a->size);
	free(a->path);
	free(a->etag);
	free(a);
}

/* Unlink *pp and free it (or leave it to its job). Caller holds the lock. */
static void ahead_drop(struct fs *fs, struct file_ahead **pp)
{
	struct file_ahead *a = *pp;

	*pp = a->next;
	fs->ahead_bytes -= a->size;
	if (a->state == FA_FETCHING)
		a->dropped = 1;
	else
		ahead_free(fs, a);
}

/* Let go of what was not opened in time. Caller holds the lock. */
static void ahead_expire(struct fs *fs, int64_t now)
{
	for (struct file_ahead **pp = &fs->ahead; *pp;) {
		if ((*pp)->state != FA_FETCHING && now - (*pp)->born_ms > FILE_AHEAD_KEEP_MS)
			ahead_drop(fs, pp);
		else
			pp = &(*pp)->next;
	}
}

struct ahead_sink {
	const char *want_etag;
	const struct s3_object_head *head;
	char *dst;
	uint64_t cap, got;
};

static int ahead_sink_fn(void *ctx, const char *data, size_t len)
{
	struct ahead_sink *k = ctx;

	if (k->got == 0 && k->head->etag && k->want_etag[0] && strcmp(k->head->etag, k->want_etag))
		return -1;      /* another version than listed: not the bytes an open expects */
	if (len > k->cap - k->got)
		return -1;
	memcpy(k->dst + k->got, data, len);
	k->got += len;
	return 0;
}

static void ahead_run(void *arg)
{
	struct file_ahead *a = arg;
	struct fs *fs = a->fs;
	struct s3_object_head head;
	struct ahead_sink k = { a->etag, &head, a->data, a->size, 0 };
	struct cm_err err;
	enum cm_status st;

	memset(&head, 0, sizeof(head));
	st = store_get(fs->cfg.store, a->path, 0, a->size, ahead_sink_fn, &k, &head, NULL, &err);
	if (st == CM_OK && (k.got != a->size || (head.etag && a->etag[0] && strcmp(head.etag, a->etag))))
		st = CM_E_PRECONDITION;
	s3_object_head_release(&head);
	pthread_mutex_lock(&fs->lock);
	if (a->dropped)
		ahead_free(fs, a);
	else
		a->state = st == CM_OK ? FA_READY : FA_FAILED;
	ahead_expire(fs, util_now_ms());
	fs->ahead_jobs--;
	pthread_cond_broadcast(&fs->walk_done);
	pthread_mutex_unlock(&fs->lock);
}

/*
 * The bytes of in fetched ahead, if they are its current object: waits for a
 * fetch on its way. Returns the buffer (in->attr.size bytes of the budget,
 * now the caller's) or NULL. Caller holds the lock.
 */
static char *ahead_claim(struct fs *fs, struct fs_inode *in)
{
	struct file_ahead **pp, *a;
	char *data = NULL;

	for (;;) {
		/* looked up again after each wait: it may have been claimed or let go */
		for (pp = &fs->ahead; *pp && strcmp((*pp)->path, in->path); pp = &(*pp)->next)
			;
		a = *pp;
		if (!a || a->state != FA_FETCHING)
			break;
		pthread_cond_wait(&fs->walk_done, &fs->lock);
	}
	if (!a)
		return NULL;
	if (a->state == FA_READY && a->size == in->attr.size && !strcmp(a->etag, in->etag) &&
	    util_now_ms() - a->born_ms <= FILE_AHEAD_KEEP_MS) {
		data = a->data;
		a->data = NULL;
		fs->stats.ahead_hits++;
	}
	ahead_drop(fs, pp);
	return data;
}

/* The name of path in directory dir (a child, not deeper), or NULL. */
static const char *child_name(const char *dir, const char *path)
{
	size_t dlen = strlen(dir);

	if (strncmp(path, dir, dlen) != 0)
		return NULL;
	path += dlen;
	if (dlen) {
		if (*path != '/')
			return NULL;
		path++;
	}
	return *path && !strchr(path, '/') ? path : NULL;
}

/* file was just opened for reading. Caller holds the lock. */
static void file_ahead(struct fs *fs, struct fs_inode *file)
{
	const char *name;
	struct fs_inode *parent = parent_of(fs, file, &name);
	const struct listing_entry *le;
	struct file_ahead **pp;
	int64_t now = util_now_ms();
	uint64_t max_size;
	size_t idx, seen = 0;
	int walking;

	ahead_expire(fs, now);
	if (!parent || !parent->listing || fs->ttl_ms <= 0 || !fs->cfg.workq || !fs->cfg.budget)
		return;
	max_size = fs->reader_opts.part_size ? fs->reader_opts.part_size : 8ULL << 20;
	le = listing_find(parent->listing, name);
	if (!le)
		return;
	idx = (size_t)(le - parent->listing->e);
	/* let go of this directory's files the walk went past */
	for (pp = &fs->ahead; *pp;) {
		const char *n = child_name(parent->path, (*pp)->path);
		const struct listing_entry *pe = n ? listing_find(parent->listing, n) : NULL;
		if (pe && pe < le)
			ahead_drop(fs, pp);
		else
			pp = &(*pp)->next;
	}
	/* the file after the one opened before (other entries in between) */
	walking = parent->file_next && idx >= parent->file_next && idx - parent->file_next < FILE_AHEAD;
	parent->file_next = idx + 1;
	if (!walking)
		return;
	for (size_t i = idx + 1; i < parent->listing->n && seen < FILE_AHEAD; i++) {
		const struct listing_entry *e = &parent->listing->e[i];
		struct file_ahead *a;
		struct fs_inode *sib;
		char *spath;
		int skip;

		if (e->type != S_IFREG)
			continue;
		seen++;
		if (e->size == 0 || e->size > max_size ||
		    fs->ahead_bytes + e->size > FILE_AHEAD_BYTES)
			continue;
		spath = join_path(parent->path, e->name);
		for (a = fs->ahead; a && strcmp(a->path, spath); a = a->next)
			;
		sib = find_path(fs, spath);
		/* already here, or being written (its bytes are not the store's) */
		skip = a || (sib && (sib->data || sib->local || strcmp(sib->etag, e->etag)));
		if (!skip) {
			a = xcalloc(1, sizeof(*a));
			a->data = membudget_try_alloc(fs->cfg.budget, (size_t)e->size);
			skip = !a->data;
			if (skip) {
				free(a);
			} else {
				a->fs = fs;
				a->path = spath;
				spath = NULL;
				a->etag = xstrdup(e->etag);
				a->size = e->size;
				a->state = FA_FETCHING;
				a->born_ms = now;
				a->next = fs->ahead;
				fs->ahead = a;
				fs->ahead_bytes += a->size;
				fs->ahead_jobs++;
				workq_submit(fs->cfg.workq, ahead_run, a);
			}
		}
		free(spath);
	}
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *in;
	struct fs_handle *h;
	int acc = fi->flags & O_ACCMODE;
	int writable = acc == O_WRONLY || acc == O_RDWR;
	struct fdata *truncate_data = NULL;
	char *ahead = NULL;             /* the object's bytes, fetched ahead */
	uint64_t ahead_size = 0;
	enum cm_status st;

	if (writable && fs->cfg.read_only) {
		fuse_reply_err(req, EROFS);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	in = find_ino(fs, ino);
	pthread_mutex_unlock(&fs->lock);
	if (!in) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	/* the reader and the page cache are keyed on the ETag: it must be current */
	if (!(fi->flags & O_TRUNC)) {
		st = revalidate(fs, in, 0);
		if (st != CM_OK) {
			reply_status(req, st);
			return;
		}
	}
	pthread_mutex_lock(&fs->lock);
	if (!writable && !in->data)
		ahead = ahead_claim(fs, in);    /* may wait for it (the lock is let go) */
	if (S_ISDIR(in->attr.mode)) {
		pthread_mutex_unlock(&fs->lock);
		membudget_free(fs->cfg.budget, ahead, (size_t)in->attr.size);
		fuse_reply_err(req, EISDIR);
		return;
	}
	h = xcalloc(1, sizeof(*h));
	h->inode = in;
	h->writable = writable;
	if (writable && !in->data)
		in->data = fdata_create(&fs->fdata_opts, in->path, !in->local, in->attr.size, in->etag,
					(fi->flags & O_TRUNC) != 0);
	else if (writable && (fi->flags & O_TRUNC))
		truncate_data = in->data; /* after unlocking: it may wait for a commit */
	if (writable && (fi->flags & O_TRUNC))
		clock_gettime(CLOCK_REALTIME, &in->attr.mtime);
	/* the kernel's page cache stays valid while the object is the one it cached */
	fi->keep_cache = in->open_etag && in->etag[0] && strcmp(in->open_etag, in->etag) == 0 && !in->data;
	free(in->open_etag);
	in->open_etag = xstrdup(in->etag);
	in->open_count++;
	if (!in->data) {
		h->reader = reader_create(fs->cfg.store, in->path, in->attr.size, in->etag, &fs->reader_opts);
		if (ahead && reader_adopt(h->reader, ahead) == 0)
			ahead = NULL;
		file_ahead(fs, in);
	}
	ahead_size = in->attr.size;
	pthread_mutex_unlock(&fs->lock);
	membudget_free(fs->cfg.budget, ahead, (size_t)ahead_size);
	if (truncate_data)
		fdata_truncate(truncate_data, 0, NULL); /* the handle's open_count keeps it alive */
	fi->fh = (uint64_t)(uintptr_t)h;
	fuse_reply_open(req, fi);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct fs_inode *dir, *in;
	struct fs_handle *h;
	struct fuse_entry_param e;
	struct fdata *truncate_data = NULL;
	char *path;

	path = begin_change(req, fs, parent, name, 1, &dir);
	if (!path)
		return;
	in = find_path(fs, path);
	if (in && in->data) {
		/* O_CREAT of a file open elsewhere: share its data, truncate if asked (after unlocking) */
		if (fi->flags & O_TRUNC)
			truncate_data = in->data;
	} else {
		if (!in)
			in = inode_new(fs, path, S_IFREG);
		in->attr.mode = S_IFREG | (mode & 07777);
		in->attr.uid = ctx->uid;
		in->attr.gid = ctx->gid;
		in->attr.size = 0;
		clock_gettime(CLOCK_REALTIME, &in->attr.mtime);
		in->meta_known = 1;
		set_local(fs, in, 1);
		in->data = fdata_create(&fs->fdata_opts, path, 0, 0, NULL, 1);
	}
	in->open_count++;
	listing_note(fs, dir, name, in);
	h = xcalloc(1, sizeof(*h));
	h->inode = in;
	h->writable = 1;
	make_entry(fs, in, &e);
	pthread_mutex_unlock(&fs->lock);
	if (truncate_data)
		fdata_truncate(truncate_data, 0, NULL);
	free(path);
	fi->fh = (uint64_t)(uintptr_t)h;
	fuse_reply_create(req, &e, fi);
}

/*
 * reader_reply_fn of op_read: the bytes go to the kernel straight from the
 * read-ahead. A read across two parts (rare: reads come aligned) is joined
 * first, so only fuse_reply_buf is needed.
 */
static void reply_read_iov(void *ctx, const struct iovec *iov, int n)
{
	size_t len = 0, at = 0;
	char *joined;

	if (n == 1) {
		fuse_reply_buf(ctx, iov[0].iov_base, iov[0].iov_len);
		return;
	}
	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	joined = malloc(len ? len : 1);
	if (!joined) {
		fuse_reply_err(ctx, ENOMEM);
		return;
	}
	for (int i = 0; i < n; i++) {
		memcpy(joined + at, iov[i].iov_base, iov[i].iov_len);
		at += iov[i].iov_len;
	}
	fuse_reply_buf(ctx, joined, len);
	free(joined);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_handle *h = handle_of(fi);
	struct fs_inode *in = h->inode;
	struct cm_err err;
	struct fdata *data;
	struct reader *reader;
	char *buf = NULL;
	ssize_t n;

	(void)ino;
	pthread_mutex_lock(&fs->lock);
	data = in->data;
	pthread_mutex_unlock(&fs->lock);
	if (data) {
		buf = malloc(size ? size : 1);
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		n = fdata_read(data, (uint64_t)off, size, buf, &err);
		if (n < 0) {
			fuse_reply_err(req, (int)-n);
			free(buf);
			return;
		}
	} else {
		if (!h->reader) {
			pthread_mutex_lock(&fs->lock);
			if (!h->reader)
				h->reader = reader_create(fs->cfg.store, in->path, in->attr.size, in->etag,
							  &fs->reader_opts);
			pthread_mutex_unlock(&fs->lock);
		}
		pthread_mutex_lock(&fs->lock);
		reader = h->reader;
		pthread_mutex_unlock(&fs->lock);
		n = reader_read_reply(reader, (uint64_t)off, size, reply_read_iov, req, &err);
		if (n < 0 && err.status == CM_E_PRECONDITION && revalidate(fs, in, 1) == CM_OK) {
			/* replaced elsewhere since the open: read the new version from here on */
			struct reader *r;
			pthread_mutex_lock(&fs->lock);
			/* another read of this handle may be inside the old reader: free it at release */
			h->retired = xrealloc(h->retired, (h->n_retired + 1) * sizeof(*h->retired));
			h->retired[h->n_retired++] = h->reader;
			h->reader = reader_create(fs->cfg.store, in->path, in->attr.size, in->etag, &fs->reader_opts);
			r = h->reader;
			pthread_mutex_unlock(&fs->lock);
			n = reader_read_reply(r, (uint64_t)off, size, reply_read_iov, req, &err);
		}
		if (n < 0) {
			char line[512];
			log_warn("read %s: %s", in->path, cm_err_format(&err, line, sizeof(line)));
			reply_status(req, err.status != CM_OK ? err.status : CM_E_IO);
			return;
		}
		return;         /* reader_read_reply replied */
	}
	fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_handle *h = handle_of(fi);
	struct fs_inode *in = h->inode;
	struct cm_err err;
	ssize_t n;

	(void)ino;
	if (!in->data) {
		fuse_reply_err(req, EBADF);
		return;
	}
	n = fdata_write(in->data, (uint64_t)off, buf, size, &err);
	if (n < 0) {
		fuse_reply_err(req, (int)-n);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	clock_gettime(CLOCK_REALTIME, &in->attr.mtime);
	in->attr.size = fdata_size(in->data);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_write(req, (size_t)n);
}

/*
 * The last close of a file failed to store its data: it is lost. From now on
 * the mount must show what the store has: the inode's attributes are stale,
 * a file never stored leaves the parent's listing, which create patched with
 * it, and the listing is no longer trusted for this name either way (an
 * upload whose answer was lost may have landed after all): lookups and
 * getattrs ask the store. Returns the inode number whose kernel caches must
 * be invalidated. Caller holds the lock.
 */
static fuse_ino_t forget_lost_data(struct fs *fs, struct fs_inode *in)
{
	const char *name;
	struct fs_inode *dir = parent_of(fs, in, &name);

	log_error("%s: closed with data the store never acknowledged; it is lost", in->path);
	in->attr_expiry = 0;
	in->meta_known = 0;
	free(in->open_etag);
	in->open_etag = NULL;
	if (dir && in->local)
		listing_note(fs, dir, name, NULL); /* never stored: no longer listed */
	if (dir)
		dir->listing_expiry = 0;
	return in->ino;
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_handle *h = handle_of(fi);
	struct fs_inode *in = h->inode;
	struct fdata *drop = NULL;
	fuse_ino_t invalidate = 0;
	int rc;

	(void)ino;
	rc = h->writable ? commit_inode(fs, in) : 0;
	if (rc) {
		pthread_mutex_lock(&fs->lock);
		if (in->open_count == 1 && in->data && !in->unlinked) {
			/* the last handle: its close fails, nothing will write this data any more */
			invalidate = forget_lost_data(fs, in);
			drop = in->data;
			in->data = NULL;
			set_local(fs, in, 0);
		}
		pthread_mutex_unlock(&fs->lock);
		fdata_destroy(drop);
		/* before replying, so the program never sees the lost data after close()
		 * returns; the kernel holds no page of this file locked during FLUSH */
		if (invalidate && fs->session)
			fuse_lowlevel_notify_inval_inode(fs->session, invalidate, 0, 0);
	}
	fuse_reply_err(req, rc);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_handle *h = handle_of(fi);

	(void)ino;
	(void)datasync;
	fuse_reply_err(req, h->writable ? commit_inode(fs, h->inode) : 0);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_handle *h = handle_of(fi);
	struct fs_inode *in = h->inode;
	struct fdata *drop = NULL;
	fuse_ino_t invalidate = 0;

	(void)ino;
	if (h->writable)
		commit_inode(fs, in); /* normally already done by flush */
	pthread_mutex_lock(&fs->lock);
	in->open_count--;
	drop = data_let_go(fs, in, 0, &invalidate);
	inode_maybe_free(fs, in);
	pthread_mutex_unlock(&fs->lock);
	fdata_destroy(drop);
	if (invalidate && fs->session)
		/* the kernel's cached attributes and pages hold the lost data */
		fuse_lowlevel_notify_inval_inode(fs->session, invalidate, 0, 0);
	reader_destroy(h->reader);
	for (size_t i = 0; i < h->n_retired; i++)
		reader_destroy(h->retired[i]);
	free(h->retired);
	free(h);
	fuse_reply_err(req, 0);
}

/* ---- directories ---- */

/*
 * Walk-ahead: programs that walk a tree (find, du, cp -r, rsync, ls -R) open
 * the subdirectories of a directory one after the other, in the order readdir
 * gave them, each costing a LIST round trip before the walk can go on. When a
 * directory's second child is opened after the first in that order, the
 * listings of the next WALK_AHEAD sibling directories are fetched in parallel
 * on the work queue and kept on their inodes, with the usual TTL, so the walk
 * finds them ready. Skipped with --posix-metadata (its HEAD batches run on
 * the same queue and a job must not wait for other jobs) and with TTL 0.
 */
struct walk_job {
	struct fs *fs;
	uint64_t ino;                   /* the directory (inode numbers are never reused) */
	char *path;                     /* its path when the job was queued */
	uint64_t changes;               /* the directory's changes then */
};

static void walk_job_run(void *arg)
{
	struct walk_job *j = arg;
	struct fs *fs = j->fs;
	struct listing *l = NULL;
	struct fs_inode *in;
	struct cm_err err;

	if (listing_fetch(fs, j->path, &l, &err) != CM_OK)
		l = NULL;
	pthread_mutex_lock(&fs->lock);
	in = find_ino(fs, j->ino);
	if (in) {
		in->listing_pending = 0;
		/* changed meanwhile (listing_install says no): opendir fetches it again */
		if (l && !strcmp(in->path, j->path) && !(in->listing && util_now_ms() < in->listing_expiry) &&
		    listing_install(fs, in, l, j->changes, 0))
			l = NULL;
	}
	listing_put(l);
	fs->walk_fetches--;
	pthread_cond_broadcast(&fs->walk_done);
	pthread_mutex_unlock(&fs->lock);
	free(j->path);
	free(j);
}

/*
 * Fetch dir's listing on the work queue, unless it is fresh or on its way
 * (or too many are). Caller holds the lock.
 */
static void fetch_listing_async(struct fs *fs, struct fs_inode *dir)
{
	struct walk_job *j;

	if (dir->listing_pending || dir->streaming || (dir->listing && util_now_ms() < dir->listing_expiry) ||
	    fs->walk_fetches >= WALK_MAX_IN_FLIGHT)
		return;
	j = xcalloc(1, sizeof(*j));
	j->fs = fs;
	j->ino = dir->ino;
	j->path = xstrdup(dir->path);
	j->changes = dir->changes;
	dir->listing_pending = 1;
	fs->walk_fetches++;
	workq_submit(fs->cfg.workq, walk_job_run, j);
}

/*
 * A lookup or getattr in dir found its listing expired and asks the store
 * for its own name. When that happens twice within a TTL (reading a
 * directory back, cp -r, make), the listing, if small enough, is fetched
 * again beside the request, so that the lookups of the siblings that follow
 * are answered from it rather than each with a round trip. A lone lookup
 * now and then (a file written into a big directory every few seconds)
 * costs no listing. Caller holds the lock.
 */
static void refresh_listing(struct fs *fs, struct fs_inode *dir)
{
	int64_t now = util_now_ms(), before;

	if (!dir || !dir->listing || dir->listing->n > REFRESH_MAX_ENTRIES || fs->cfg.posix_metadata ||
	    fs->cfg.no_listing_refresh || fs->ttl_ms <= 0)
		return;
	before = dir->probed_ms;
	dir->probed_ms = now;
	if (before && now - before < fs->ttl_ms)
		fetch_listing_async(fs, dir);
}

/* child was just opened as a directory. Caller holds the lock. */
static void walk_ahead(struct fs *fs, struct fs_inode *child)
{
	const char *name;
	struct fs_inode *parent = parent_of(fs, child, &name);
	const struct listing_entry *le;
	size_t idx, seen = 0;
	int walking;

	if (!parent || !parent->listing || fs->cfg.posix_metadata || fs->ttl_ms <= 0)
		return;
	le = listing_find(parent->listing, name);
	if (!le)
		return;
	idx = (size_t)(le - parent->listing->e);
	walking = parent->walk_next && idx >= parent->walk_next;
	parent->walk_next = idx + 1;
	if (!walking)
		return;
	for (size_t i = idx + 1; i < parent->listing->n && seen < WALK_AHEAD; i++) {
		const struct listing_entry *e = &parent->listing->e[i];
		struct fs_inode *sib;
		char *spath;

		if (e->type != S_IFDIR)
			continue;
		seen++;
		spath = join_path(parent->path, e->name);
		sib = find_path(fs, spath);
		if (sib)
			fetch_listing_async(fs, sib);
		free(spath);
	}
}

/* The rest of an opendir's listing, fetched after its first page (see op_opendir). */
struct stream_job {
	struct fs *fs;
	uint64_t ino;
	struct list_fetch f;
	struct listing *l;              /* a reference of the job's own */
	uint64_t changes;               /* the directory's changes when the fetch began */
};

static void stream_job_run(void *arg)
{
	struct stream_job *j = arg;
	struct fs *fs = j->fs;
	struct fs_inode *in;
	struct cm_err err;
	enum cm_status st = CM_OK;

	while (st == CM_OK && !j->f.done)
		st = lf_page(fs, &j->f, j->l, &err);
	if (st != CM_OK) {
		char line[512];
		log_warn("listing %s/: %s", j->f.dirpath, cm_err_format(&err, line, sizeof(line)));
	}
	pthread_mutex_lock(&fs->lock);
	lf_finish(fs, &j->f, j->l, st);
	in = find_ino(fs, j->ino);
	if (in && in->streaming == j->l) {
		in->streaming = NULL;
		/* the inode's reference becomes the installed listing's, if it is */
		if (st != CM_OK || strcmp(in->path, j->f.dirpath) ||
		    (in->listing && util_now_ms() < in->listing_expiry) ||
		    !listing_install(fs, in, j->l, j->changes, 0))
			listing_put(j->l);
	}
	listing_put(j->l);
	fs->walk_fetches--;
	pthread_cond_broadcast(&fs->walk_done);
	pthread_mutex_unlock(&fs->lock);
	lf_end(&j->f);
	free(j);
}

/*
 * opendir: a fresh listing is used as it is; otherwise the first page is
 * fetched here (so that an unreachable or forbidden directory fails to
 * open, and most directories are complete at once), and the rest on the work
 * queue while readdir returns what has come (do_readdir waits for more).
 * Another opendir meanwhile shares that listing. When complete it becomes
 * the directory's listing, unless we changed the directory meanwhile; a
 * whole listing fetched here that way is fetched again, at most twice.
 */
static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *in;
	struct fs_dirhandle *dh;
	struct listing *l = NULL;
	struct cm_err err;
	enum cm_status st = CM_OK;
	int whole;

	in = lock_inode(req, fs, ino);
	if (!in)
		return;
	while (in->listing_pending) /* a walk-ahead fetch of this very listing: wait for it */
		pthread_cond_wait(&fs->walk_done, &fs->lock);
	if (in->listing && util_now_ms() < in->listing_expiry)
		l = in->listing;
	else if (in->streaming)
		l = in->streaming;
	if (l)
		l->refs++;
	for (int tries = 0; !l; tries++) {
		struct stream_job *j = xcalloc(1, sizeof(*j));
		j->fs = fs;
		j->ino = in->ino;
		j->changes = in->changes;
		j->l = listing_new();
		lf_begin(fs, &j->f, in->path);
		/* the whole listing here: for --posix-metadata's headers, or when enough
		 * fetches already hold work-queue threads */
		whole = fs->cfg.posix_metadata || fs->walk_fetches >= WALK_MAX_IN_FLIGHT;
		pthread_mutex_unlock(&fs->lock);
		do
			st = lf_page(fs, &j->f, j->l, &err);
		while (st == CM_OK && !j->f.done && whole);
		if (st == CM_OK && j->f.done && fs->cfg.posix_metadata)
			fetch_headers(fs, j->f.dirpath, j->l);
		pthread_mutex_lock(&fs->lock);
		if (st != CM_OK) {
			char line[512];
			lf_finish(fs, &j->f, j->l, st);
			listing_put(j->l);
			pthread_mutex_unlock(&fs->lock);
			log_warn("listing %s/: %s", j->f.dirpath, cm_err_format(&err, line, sizeof(line)));
			lf_end(&j->f);
			free(j);
			reply_status(req, st);
			return;
		}
		if (!j->f.done) {
			/* ours, the inode's and the job's (an opendir racing with us loses its) */
			l = j->l;
			l->refs += 2;
			listing_put(in->streaming);
			in->streaming = l;
			fs->walk_fetches++;
			workq_submit(fs->cfg.workq, stream_job_run, j);
			break;
		}
		lf_finish(fs, &j->f, j->l, CM_OK);
		if (listing_install(fs, in, j->l, j->changes, tries >= 2)) {
			l = in->listing;
			l->refs++;
		} else {
			listing_put(j->l);
		}
		lf_end(&j->f);
		free(j);
	}
	walk_ahead(fs, in);
	pthread_mutex_unlock(&fs->lock);
	dh = xcalloc(1, sizeof(*dh));
	dh->listing = l;
	dh->dir = in;
	fi->fh = (uint64_t)(uintptr_t)dh;
	fi->cache_readdir = 0;
	fuse_reply_open(req, fi);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi,
		       int plus)
{
	struct fs *fs = fs_of(req);
	struct fs_dirhandle *dh = (struct fs_dirhandle *)(uintptr_t)fi->fh;
	struct listing *l = dh->listing;
	char *buf = malloc(size);
	size_t used = 0;

	(void)ino;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	/* a listing still being fetched: wait until it has something past off */
	while (!l->complete && (size_t)off >= l->n + 2)
		pthread_cond_wait(&fs->listing_grown, &fs->lock);
	if (l->status != CM_OK && (size_t)off >= l->n + 2) {
		enum cm_status st = l->status;
		pthread_mutex_unlock(&fs->lock);
		free(buf);
		reply_status(req, st);
		return;
	}
	for (size_t i = (size_t)off; i < l->n + 2; i++) {
		struct stat st;
		const char *name;
		size_t n;
		memset(&st, 0, sizeof(st));
		if (i < 2) {
			name = i == 0 ? "." : "..";
			st.st_ino = i == 0 ? dh->dir->ino : FUSE_ROOT_ID;
			st.st_mode = S_IFDIR;
			if (plus) {
				struct fuse_entry_param e;
				memset(&e, 0, sizeof(e));
				e.attr = st;
				n = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, (off_t)i + 1);
			} else {
				n = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)i + 1);
			}
		} else {
			const struct listing_entry *le = &l->e[i - 2];
			char *path = join_path(dh->dir->path, le->name);
			struct fs_inode *in = find_path(fs, path);
			name = le->name;
			if (plus) {
				struct fuse_entry_param e;
				if (!in)
					in = inode_new(fs, path, le->type);
				apply_listing_entry(fs, in, le);
				memset(&e, 0, sizeof(e));
				e.ino = in->ino;
				e.generation = 1;
				fill_stat(fs, in, &e.attr);
				e.attr_timeout = ttl_seconds(fs->ttl_ms);
				e.entry_timeout = ttl_seconds(fs->ttl_ms);
				n = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, (off_t)i + 1);
				if (n <= size - used)
					in->nlookup++;
				else if (!in->nlookup)
					inode_maybe_free(fs, in);
			} else {
				st.st_ino = in ? in->ino : UNKNOWN_INO;
				st.st_mode = in ? in->attr.mode : le->type;
				n = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)i + 1);
			}
			free(path);
		}
		if (n > size - used)
			break;
		used += n;
	}
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 1);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_dirhandle *dh = (struct fs_dirhandle *)(uintptr_t)fi->fh;

	(void)ino;
	pthread_mutex_lock(&fs->lock);
	listing_put(dh->listing);
	pthread_mutex_unlock(&fs->lock);
	free(dh);
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st;

	(void)ino;
	memset(&st, 0, sizeof(st));
	/* object stores have no fixed size: report a large, plausible one (1 PiB) */
	st.f_bsize = 1 << 20;
	st.f_frsize = 1 << 20;
	st.f_blocks = 1ULL << 30;
	st.f_bfree = 1ULL << 30;
	st.f_bavail = 1ULL << 30;
	st.f_files = 1ULL << 32;
	st.f_ffree = 1ULL << 32;
	st.f_favail = 1ULL << 32;
	st.f_namemax = 255;
	fuse_reply_statfs(req, &st);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO; /* always plus: ls -l costs no lookups */
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	conn->max_write = 1 << 20;
	conn->max_readahead = 1 << 20;
	if (conn->capable & FUSE_CAP_SPLICE_READ)
		conn->want &= ~(unsigned)FUSE_CAP_SPLICE_READ;
}

/*
 * No extended attributes. ENOSYS (not ENODATA) makes the kernel remember it
 * and answer EOPNOTSUPP itself from then on: `ls -l` asks getxattr twice per
 * file (ACL and SELinux labels), which would otherwise be two round trips
 * through FUSE per entry, most of the time a warm listing takes.
 */
static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	(void)ino;
	(void)name;
	(void)size;
	fuse_reply_err(req, ENOSYS);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	(void)ino;
	(void)size;
	fuse_reply_err(req, ENOSYS);
}

static const struct fuse_lowlevel_ops fs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
	.create = op_create,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
};

const struct fuse_lowlevel_ops *fs_operations(void)
{
	return &fs_ops;
}

struct fs *fs_create(const struct fs_config *cfg)
{
	struct fs *fs = xcalloc(1, sizeof(*fs));
	struct fs_inode *root;

	fs->cfg = *cfg;
	pthread_mutex_init(&fs->lock, NULL);
	pthread_cond_init(&fs->walk_done, NULL);
	pthread_cond_init(&fs->listing_grown, NULL);
	fs->n_buckets = 1024;
	fs->by_ino = xcalloc(fs->n_buckets, sizeof(*fs->by_ino));
	fs->by_path = xcalloc(fs->n_buckets, sizeof(*fs->by_path));
	fs->next_ino = FUSE_ROOT_ID;
	fs->ttl_ms = (int64_t)(cfg->metadata_ttl * 1000);
	fs->neg_ttl_ms = (int64_t)(cfg->negative_ttl * 1000);
	fs->fdata_opts = (struct fdata_opts){
		.store = cfg->store,
		.workq = cfg->workq,
		.budget = cfg->budget,
		.disk = cfg->disk,
		.part_size = cfg->part_size,
		.concurrency = cfg->concurrency,
	};
	fs->reader_opts = (struct reader_opts){
		.part_size = cfg->part_size,
		.budget = cfg->budget,
		.workq = cfg->workq,
		.disk = cfg->disk,
		.fill_after = cfg->fill_after,
		.max_window = cfg->read_window,
	};
	root = inode_new(fs, "", S_IFDIR);
	root->nlookup = 1;
	return fs;
}

/*
 * Commit every dirty file whose path lies under dir (NULL: every dirty file
 * of the mount). Returns the number that failed.
 */
static int commit_under(struct fs *fs, const char *dir)
{
	struct fs_inode **dirty = NULL;
	size_t n = 0, dir_len = dir ? strlen(dir) : 0;
	int failed = 0;

	/* gather first (holding each open), then commit each once without the lock */
	pthread_mutex_lock(&fs->lock);
	for (size_t b = 0; b < fs->n_buckets; b++) {
		for (struct fs_inode *in = fs->by_ino[b]; in; in = in->next_ino) {
			int inside = !dir || (strncmp(in->path, dir, dir_len) == 0 && in->path[dir_len] == '/');
			if (inside && in->data && fdata_dirty(in->data) && !in->unlinked) {
				dirty = xrealloc(dirty, (n + 1) * sizeof(*dirty));
				dirty[n++] = in;
				in->open_count++;
			}
		}
	}
	pthread_mutex_unlock(&fs->lock);
	for (size_t i = 0; i < n; i++) {
		if (commit_inode(fs, dirty[i]) != 0)
			failed++;
		pthread_mutex_lock(&fs->lock);
		dirty[i]->open_count--;
		inode_maybe_free(fs, dirty[i]);
		pthread_mutex_unlock(&fs->lock);
	}
	free(dirty);
	return failed;
}

int fs_commit_all(struct fs *fs)
{
	return commit_under(fs, NULL);
}

void fs_set_session(struct fs *fs, struct fuse_session *se)
{
	fs->session = se;
}

void fs_get_stats(struct fs *fs, struct fs_stats *out)
{
	pthread_mutex_lock(&fs->lock);
	*out = fs->stats;
	out->dirty_files = out->dirty_bytes = 0;
	for (size_t b = 0; b < fs->n_buckets; b++) {
		for (struct fs_inode *in = fs->by_ino[b]; in; in = in->next_ino) {
			if (in->data && fdata_dirty(in->data)) {
				out->dirty_files++;
				out->dirty_bytes += fdata_size(in->data);
			}
		}
	}
	pthread_mutex_unlock(&fs->lock);
}

void fs_destroy(struct fs *fs)
{
	if (!fs)
		return;
	pthread_mutex_lock(&fs->lock);
	while (fs->walk_fetches || fs->ahead_jobs)
		pthread_cond_wait(&fs->walk_done, &fs->lock);
	while (fs->ahead)
		ahead_drop(fs, &fs->ahead);
	pthread_mutex_unlock(&fs->lock);
	pthread_cond_destroy(&fs->walk_done);
	pthread_cond_destroy(&fs->listing_grown);
	for (size_t b = 0; b < fs->n_buckets; b++) {
		struct fs_inode *in = fs->by_ino[b], *next;
		for (; in; in = next) {
			next = in->next_ino;
			fdata_destroy(in->data);
			notes_free(in);
			listing_put(in->listing);
			free(in->path);
			free(in->etag);
			free(in->open_etag);
			free(in->link_target);
			free(in);
		}
	}
	free(fs->by_ino);
	free(fs->by_path);
	pthread_mutex_destroy(&fs->lock);
	free(fs);
}
