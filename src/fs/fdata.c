/*
 * fdata.c - the contents of a file open for writing (see fdata.h for the
 * contract and the three states).
 *
 * How each state holds the data:
 *   CLEAN   nothing local. dirty is set only for an empty file not yet in the
 *           store (create, O_TRUNC, truncate to 0): invariant CLEAN && dirty
 *           => size == 0, and commit PUTs an empty object.
 *   STREAM  the first part is kept in `head` (a buffer grown on demand up to
 *           part_size, its capacity taken from the membudget). Only when the
 *           file outgrows one part is an uploader created and the head handed
 *           to it. So a small file (the common case) is one PutObject at
 *           commit, with the metadata given to that commit; its data stays
 *           here until the store acknowledged it, so a failed commit can be
 *           retried; and leaving STREAM for STAGED costs no request. For a
 *           file larger than a part the uploader owns the bytes.
 *   STAGED  an unlinked staging file of the logical size. Bytes of the base
 *           object (the object at `key` when STAGED was entered) below
 *           base_limit are fetched on first touch, a part_size part at a time,
 *           into the file (`present` bits). base_limit only goes down
 *           (truncates), so fetched bytes never land where the file was cut
 *           and grown again; invariant base_limit <= size.
 *
 * Leaving STREAM with an uploader (read, truncate, non-contiguous write,
 * set_key) completes the upload as it stands (stream_finish): the object then
 * holds the file, written with the metadata of the previous commit (or none),
 * so `meta_stale` asks the next commit to fix the metadata (a CopyObject onto
 * itself with REPLACE, skipped when the metadata is the same). A commit from
 * STREAM with an uploader does the same.
 *
 * FAILED: when an uploader fails, the bytes it held are gone (they were never
 * kept locally). The fdata then keeps the error: every later write, read,
 * truncate (except to 0) and commit returns -EIO with the original error in
 * err, fdata_dirty() stays 1, and the first call that saw it returned the
 * error's own errno. fdata_state() still tells the state it failed in.
 * truncate to 0 starts the file over and clears it.
 *
 * Rename: fdata_set_key assumes the filesystem has already moved the object
 * (the base of a staged file is read from the new key). An uploader running
 * for the old key is finished there at once, copied to the new key and the
 * old key deleted, before the rename returns (so a new file at the old name
 * cannot be deleted by us later).
 *
 * Parallel work (fetching missing parts, uploading parts from the staging
 * file) runs as a batch of jobs on the workq, at most `concurrency` at once;
 * jobs pwrite/pread the staging fd directly, so neither uses memory buffers.
 * The caller holds f->lock and waits for the whole batch, so jobs read f's
 * fields (store, key, fd) without locking: nobody changes them meanwhile.
 *
 * Locking: f->lock serialises every call; disk->lock protects disk->used;
 * batch->lock the batch's counters. Order: f->lock, then either of the others.
 */
#include "fs/fdata.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "s3/s3_xml.h"

#define FDATA_DEFAULT_PART_SIZE (8ULL << 20)
#define FDATA_HEAD_MIN (64ULL << 10)            /* first head buffer */
#define FDATA_RETRIES 2                         /* extra tries of a failed request */
#define FDATA_FETCH_TRIES 3                     /* GET attempts in a row without progress */
#define FDATA_MAX_OBJECT (5ULL << 40)           /* S3's largest object */
#define FDATA_MAX_COPY (5ULL << 30)             /* S3's largest CopyObject */
#define FDATA_TARGET_PARTS 9000                 /* staged uploads stay under this */

/* ---- disk budget ---- */

struct fdata_disk {
	pthread_mutex_t lock;
	char *dir;
	uint64_t limit;
	uint64_t used;          /* protected by lock */
};

struct fdata_disk *fdata_disk_create(const char *dir, uint64_t limit)
{
	struct fdata_disk *d;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		log_error("staging directory %s: %s", dir, strerror(errno));
		return NULL;
	}
	d = xcalloc(1, sizeof(*d));
	pthread_mutex_init(&d->lock, NULL);
	d->dir = xstrdup(dir);
	d->limit = limit;
	return d;
}

void fdata_disk_destroy(struct fdata_disk *d)
{
	if (!d)
		return;
	pthread_mutex_destroy(&d->lock);
	free(d->dir);
	free(d);
}

uint64_t fdata_disk_used(struct fdata_disk *d)
{
	uint64_t n;

	pthread_mutex_lock(&d->lock);
	n = d->used;
	pthread_mutex_unlock(&d->lock);
	return n;
}

/* Take n bytes of the budget, or fail with -ENOSPC. */
static int disk_take(struct fdata_disk *d, uint64_t n, struct cm_err *err)
{
	int ok;

	pthread_mutex_lock(&d->lock);
	ok = n <= d->limit - d->used;
	if (ok)
		d->used += n;
	pthread_mutex_unlock(&d->lock);
	if (!ok) {
		cm_err_set(err, CM_E_IO, "staging disk limit reached");
		cm_err_detail(err, "%s", d->dir);
		return -ENOSPC;
	}
	return 0;
}

static void disk_give(struct fdata_disk *d, uint64_t n)
{
	pthread_mutex_lock(&d->lock);
	d->used = n > d->used ? 0 : d->used - n;
	pthread_mutex_unlock(&d->lock);
}

static int staging_open(const char *dir, struct cm_err *err);

int fdata_disk_take_file(struct fdata_disk *d, uint64_t size)
{
	struct statvfs sv;
	struct cm_err err;
	int ok, fd;

	if (statvfs(d->dir, &sv) != 0 ||
	    (uint64_t)sv.f_bavail * sv.f_frsize / 2 < size + (512ULL << 20))
		return -1;
	pthread_mutex_lock(&d->lock);
	ok = size <= d->limit / 2 && d->used + size <= d->limit / 2;
	if (ok)
		d->used += size;
	pthread_mutex_unlock(&d->lock);
	if (!ok)
		return -1;
	cm_err_clear(&err);
	fd = staging_open(d->dir, &err);
	if (fd >= 0 && ftruncate(fd, (off_t)size) != 0) {
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		disk_give(d, size);
	return fd < 0 ? -1 : fd;
}

void fdata_disk_put_file(struct fdata_disk *d, int fd, uint64_t size)
{
	if (fd < 0)
		return;
	close(fd);
	disk_give(d, size);
}

/* ---- the fdata ---- */

struct fdata {
	pthread_mutex_t lock;
	/*
	 * Copies of size and "dirty" for callers that must not wait while a commit
	 * holds the lock over the network (the filesystem asks under its global
	 * lock). Written under lock at every unlock (unlock_publish), read without it.
	 */
	_Atomic uint64_t pub_size;
	_Atomic int pub_dirty;
	/* set at create, never changed */
	struct store *store;
	struct workq *workq;
	struct membudget *budget;
	struct fdata_disk *disk;
	uint64_t part_size;
	int concurrency;

	/* everything below: protected by lock */
	char *key;
	enum fdata_state state;
	int exists;             /* the object exists in the store */
	uint64_t size;          /* the file's logical size */
	char *etag;             /* of the object; NULL if unknown */
	int dirty;              /* the file's bytes differ from the object's */
	int meta_stale;         /* the object's metadata may not be the caller's */
	int failed;             /* FAILED (see the top of the file) */
	struct cm_err fail_err; /* valid when failed */

	/* the options of the last successful commit (the uploader starts with them) */
	int have_last;
	char *last_ct;
	struct s3_meta last_meta;

	/* STREAM */
	char *head;             /* bytes [0, head_len) while up is NULL */
	size_t head_len, head_cap;      /* head_cap is held in the membudget */
	struct uploader *up;    /* NULL until the file outgrows one part */
	char *up_key;           /* the key up writes to */

	/* STAGED */
	int fd;                 /* -1 outside STAGED */
	uint64_t base_limit;    /* bytes of the base object still wanted */
	unsigned char *present; /* bit i: part i of the base is in the file */
	uint64_t disk_held;     /* what this file holds of the disk budget */
};

/* Unlock f, publishing size and dirtiness for the lock-free getters. */
static void unlock_publish(struct fdata *f)
{
	atomic_store(&f->pub_size, f->size);
	atomic_store(&f->pub_dirty, f->dirty || f->meta_stale || f->failed);
	pthread_mutex_unlock(&f->lock);
}


static int errno_of(enum cm_status st)
{
	int e = cm_status_errno(st);

	return -(e ? e : EIO);
}

static int part_present(const struct fdata *f, uint64_t i)
{
	return (f->present[i / 8] >> (i % 8)) & 1;
}

static void part_set_present(struct fdata *f, uint64_t i)
{
	f->present[i / 8] |= (unsigned char)(1u << (i % 8));
}

static int opts_same_as_last(const struct fdata *f, const struct s3_put_opts *opts)
{
	const char *ct = opts ? opts->content_type : NULL;
	const char *last_ct = f->have_last ? f->last_ct : NULL;
	const struct s3_meta *meta = opts ? opts->meta : NULL;
	size_t n = meta ? meta->n : 0;

	if ((ct == NULL) != (last_ct == NULL) || (ct && strcmp(ct, last_ct) != 0))
		return 0;
	if (n != f->last_meta.n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const char *v = s3_meta_get(&f->last_meta, meta->names[i]);
		if (!v || strcmp(v, meta->values[i]) != 0)
			return 0;
	}
	return 1;
}

static void opts_save_last(struct fdata *f, const struct s3_put_opts *opts)
{
	free(f->last_ct);
	f->last_ct = NULL;
	s3_meta_release(&f->last_meta);
	f->have_last = 1;
	if (!opts)
		return;
	if (opts->content_type)
		f->last_ct = xstrdup(opts->content_type);
	for (size_t i = 0; opts->meta && i < opts->meta->n; i++)
		if (s3_meta_set(&f->last_meta, opts->meta->names[i], opts->meta->values[i]) != 0)
			log_warn("%s: no memory to remember metadata", f->key);
}

static void set_etag(struct fdata *f, char *etag)
{
	free(f->etag);
	f->etag = etag ? etag : xstrdup("");
}

/* Free the head buffer and give its memory back. */
static void head_free(struct fdata *f)
{
	free(f->head);
	if (f->head_cap)
		membudget_release(f->budget, f->head_cap);
	f->head = NULL;
	f->head_len = f->head_cap = 0;
}

/* Give up the stream: abort the uploader, drop the head. */
static void stream_drop(struct fdata *f)
{
	if (f->up) {
		uploader_abort(f->up);
		uploader_destroy(f->up);
		f->up = NULL;
	}
	free(f->up_key);
	f->up_key = NULL;
	head_free(f);
}

/* Enter FAILED with err (the bytes of the stream are lost). */
static void enter_failed(struct fdata *f, const struct cm_err *err)
{
	char line[512];

	stream_drop(f);
	f->failed = 1;
	f->fail_err = *err;
	log_error("%s: written data lost: %s", f->key, cm_err_format(err, line, sizeof(line)));
}

static int failed_return(const struct fdata *f, struct cm_err *err)
{
	*err = f->fail_err;
	return -EIO;
}

/* ---- staging file ---- */

static int pwrite_all(int fd, const char *p, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int pread_all(int fd, char *p, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {           /* cannot happen: the file is never shorter than size */
			memset(p, 0, len);
			return 0;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Make this file hold size bytes of the disk budget. */
static int staging_account(struct fdata *f, uint64_t size, struct cm_err *err)
{
	if (size > f->disk_held) {
		int rc = disk_take(f->disk, size - f->disk_held, err);
		if (rc < 0)
			return rc;
	} else {
		disk_give(f->disk, f->disk_held - size);
	}
	f->disk_held = size;
	return 0;
}

/* An unlinked file in the staging directory, or -errno. */
static int staging_open(const char *dir, struct cm_err *err)
{
	char *path;
	int fd;

#ifdef O_TMPFILE
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
#endif
	/* file systems without O_TMPFILE: a named file removed at once */
	path = xasprintf("%s/.cloudmount-staging-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		cm_err_set(err, CM_E_IO, "cannot create a staging file: %s", strerror(e));
		cm_err_detail(err, "%s", dir);
		free(path);
		return -e;
	}
	unlink(path);
	free(path);
	return fd;
}

/* Close the staging file and give its disk back (leaves state alone). */
static void staging_close(struct fdata *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	free(f->present);
	f->present = NULL;
	f->base_limit = 0;
	staging_account(f, 0, NULL);
}

/*
 * Enter STAGED with a staging file of logical size `size` (the file's new
 * size) over a base object of base bytes (0: none). On failure nothing
 * changed (state and size are the caller's to keep).
 */
static int staging_create(struct fdata *f, uint64_t base, uint64_t size, struct cm_err *err)
{
	uint64_t n_parts;
	int rc;

	rc = staging_account(f, size, err);
	if (rc < 0)
		return rc;
	rc = staging_open(f->disk->dir, err);
	if (rc < 0)
		goto out_unaccount;
	f->fd = rc;
	if (ftruncate(f->fd, (off_t)size) != 0) {
		rc = -errno;
		cm_err_set(err, CM_E_IO, "cannot size the staging file: %s", strerror(-rc));
		goto out_close;
	}
	f->base_limit = base < size ? base : size;
	n_parts = (f->base_limit + f->part_size - 1) / f->part_size;
	f->present = xcalloc((size_t)(n_parts + 7) / 8 + 1, 1);
	f->size = size;
	f->state = FDATA_STAGED;
	return 0;
out_close:
	close(f->fd);
	f->fd = -1;
out_unaccount:
	staging_account(f, 0, NULL);
	return rc;
}

/* ---- batches of parallel jobs ---- */

struct xfer_batch {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int in_flight;          /* protected by lock */
	int failed;             /* protected by lock */
	struct cm_err err;      /* protected by lock: the first failure */
};

enum xfer_kind {
	XFER_FETCH,             /* GET a range of the base into the staging file */
	XFER_PART,              /* upload a range of the staging file as a part */
};

struct xfer_job {
	struct xfer_batch *batch;
	struct fdata *f;        /* store, key, fd read only */
	enum xfer_kind kind;
	uint64_t offset, len;
	const char *upload_id;  /* XFER_PART */
	int number;             /* XFER_PART; XFER_FETCH: the part index */
	char *etag;             /* XFER_PART result */
	int ok;                 /* set by the job; read after the batch is idle */
};

struct fetch_sink {
	int fd;
	uint64_t offset;        /* where the range starts */
	uint64_t want, done;
	int io_errno;
	int overflow;
};

static int fetch_sink_fn(void *ctx, const char *data, size_t len)
{
	struct fetch_sink *s = ctx;
	int rc;

	if (len > s->want - s->done) {
		s->overflow = 1;
		return -1;
	}
	rc = pwrite_all(s->fd, data, len, s->offset + s->done);
	if (rc < 0) {
		s->io_errno = -rc;
		return -1;
	}
	s->done += len;
	return 0;
}

/*
 * GET [offset, offset+len) of key into fd at the same offset. A transfer cut
 * by a transient fault is resumed where it stopped; it gives up after
 * FDATA_FETCH_TRIES attempts in a row that brought nothing.
 */
static enum cm_status fetch_range(struct store *s, const char *key, int fd, uint64_t offset,
				  uint64_t len, struct cm_err *err)
{
	struct fetch_sink sink = { .fd = fd, .offset = offset, .want = len };
	enum cm_status st = CM_OK;

	for (int attempt = 0; attempt < FDATA_FETCH_TRIES && sink.done < len; attempt++) {
		uint64_t before = sink.done;
		st = store_get(s, key, offset + sink.done, len - sink.done, fetch_sink_fn, &sink, NULL,
			       NULL, err);
		if (sink.done > before)
			attempt = -1;
		if (sink.io_errno)
			return cm_err_set(err, CM_E_IO, "staging file write: %s", strerror(sink.io_errno));
		if (sink.overflow)
			return cm_err_set(err, CM_E_PROTOCOL, "%s: more bytes than asked for", key);
		if (st == CM_OK && sink.done < len)
			return cm_err_set(err, CM_E_PROTOCOL, "%s: object shorter than expected (changed?)", key);
		if (st != CM_OK && !cm_status_retryable(st))
			return st;
	}
	return sink.done == len ? CM_OK : st;
}

static void xfer_job_run(void *arg)
{
	struct xfer_job *job = arg;
	struct xfer_batch *b = job->batch;
	struct fdata *f = job->f;
	struct cm_err err;
	enum cm_status st = CM_OK;
	int cancelled;

	cm_err_clear(&err);
	pthread_mutex_lock(&b->lock);
	cancelled = b->failed;
	pthread_mutex_unlock(&b->lock);
	if (cancelled) {
		st = CM_E_CANCELLED;
	} else if (job->kind == XFER_FETCH) {
		st = fetch_range(f->store, f->key, f->fd, job->offset, job->len, &err);
	} else {
		struct s3_body body = { .mem = NULL, .fd = f->fd, .offset = (off_t)job->offset,
					.len = job->len };
		for (int attempt = 0; attempt <= FDATA_RETRIES; attempt++) {
			st = store_mpu_part(f->store, f->key, job->upload_id, job->number, &body, &job->etag,
					    &err);
			if (st == CM_OK || !cm_status_retryable(st))
				break;
			log_info("upload %s: part %d failed (%s), retrying", f->key, job->number,
				 cm_status_str(st));
		}
	}
	pthread_mutex_lock(&b->lock);
	job->ok = st == CM_OK;
	if (st != CM_OK && st != CM_E_CANCELLED && !b->failed) {
		b->failed = 1;
		b->err = err;
		b->err.status = st;
	}
	b->in_flight--;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

/*
 * Run n jobs on the workq, at most f->concurrency at once; after the first
 * failure no more start. Returns when every started job is done.
 */
static enum cm_status batch_run(struct fdata *f, struct xfer_job *jobs, size_t n, struct cm_err *err)
{
	struct xfer_batch b;
	enum cm_status st = CM_OK;

	memset(&b, 0, sizeof(b));
	pthread_mutex_init(&b.lock, NULL);
	pthread_cond_init(&b.cond, NULL);
	for (size_t i = 0; i < n; i++) {
		int stop;
		pthread_mutex_lock(&b.lock);
		while (b.in_flight >= f->concurrency)
			pthread_cond_wait(&b.cond, &b.lock);
		stop = b.failed;
		if (!stop)
			b.in_flight++;
		pthread_mutex_unlock(&b.lock);
		if (stop)
			break;
		jobs[i].batch = &b;
		jobs[i].f = f;
		workq_submit(f->workq, xfer_job_run, &jobs[i]);
	}
	pthread_mutex_lock(&b.lock);
	while (b.in_flight)
		pthread_cond_wait(&b.cond, &b.lock);
	if (b.failed) {
		st = b.err.status;
		*err = b.err;
	}
	pthread_mutex_unlock(&b.lock);
	pthread_cond_destroy(&b.cond);
	pthread_mutex_destroy(&b.lock);
	return st;
}

/*
 * Fetch the missing base parts that overlap [off, end), except those a write
 * of [cover_off, cover_end) replaces entirely. Parts fetched are marked
 * present even when another fails.
 */
static int fetch_missing(struct fdata *f, uint64_t off, uint64_t end, uint64_t cover_off,
			 uint64_t cover_end, struct cm_err *err)
{
	struct xfer_job *jobs;
	uint64_t first, last;
	size_t n = 0;
	enum cm_status st;

	if (end > f->base_limit)
		end = f->base_limit;
	if (off >= end)
		return 0;
	first = off / f->part_size;
	last = (end - 1) / f->part_size;
	jobs = xcalloc((size_t)(last - first + 1), sizeof(*jobs));
	for (uint64_t i = first; i <= last; i++) {
		uint64_t start = i * f->part_size;
		uint64_t stop = start + f->part_size < f->base_limit ? start + f->part_size : f->base_limit;
		if (part_present(f, i) || (cover_off <= start && cover_end >= stop))
			continue;
		jobs[n].kind = XFER_FETCH;
		jobs[n].offset = start;
		jobs[n].len = stop - start;
		jobs[n].number = (int)i;
		n++;
	}
	st = n ? batch_run(f, jobs, n, err) : CM_OK;
	for (size_t j = 0; j < n; j++)
		if (jobs[j].ok)
			part_set_present(f, (uint64_t)jobs[j].number);
	free(jobs);
	return st == CM_OK ? 0 : errno_of(st);
}

/* Mark present the base parts that [off, end) overwrote entirely. */
static void mark_covered(struct fdata *f, uint64_t off, uint64_t end)
{
	uint64_t lim = end < f->base_limit ? end : f->base_limit;

	for (uint64_t i = (off + f->part_size - 1) / f->part_size; i * f->part_size < lim; i++) {
		uint64_t stop = (i + 1) * f->part_size;
		if (stop > f->base_limit)
			stop = f->base_limit;
		if (stop <= end)
			part_set_present(f, i);
	}
}

static int staged_write(struct fdata *f, uint64_t off, const char *buf, size_t len, struct cm_err *err)
{
	uint64_t end = off + len, old_size = f->size;
	int rc;

	if (end > old_size) {
		rc = staging_account(f, end, err);
		if (rc < 0)
			return rc;
	}
	rc = fetch_missing(f, off, end, off, end, err);
	if (rc < 0)
		goto out_restore;
	rc = pwrite_all(f->fd, buf, len, off);
	if (rc < 0) {
		cm_err_set(err, CM_E_IO, "staging file write: %s", strerror(-rc));
		goto out_restore;
	}
	mark_covered(f, off, end);
	if (end > f->size)
		f->size = end;
	f->dirty = 1;
	return 0;
out_restore:
	if (end > old_size) {
		if (ftruncate(f->fd, (off_t)old_size) != 0)
			log_warn("%s: cannot shrink the staging file back: %s", f->key, strerror(errno));
		staging_account(f, old_size, NULL);
	}
	return rc;
}

static ssize_t staged_read(struct fdata *f, uint64_t off, size_t len, char *buf, struct cm_err *err)
{
	size_t n;
	int rc;

	if (off >= f->size)
		return 0;
	n = f->size - off < len ? (size_t)(f->size - off) : len;
	rc = fetch_missing(f, off, off + n, 0, 0, err);
	if (rc < 0)
		return rc;
	rc = pread_all(f->fd, buf, n, off);
	if (rc < 0) {
		cm_err_set(err, CM_E_IO, "staging file read: %s", strerror(-rc));
		return rc;
	}
	return (ssize_t)n;
}

static int staged_truncate(struct fdata *f, uint64_t size, struct cm_err *err)
{
	int rc;

	if (size > f->size) {
		rc = staging_account(f, size, err);
		if (rc < 0)
			return rc;
	}
	if (ftruncate(f->fd, (off_t)size) != 0) {
		rc = -errno;
		cm_err_set(err, CM_E_IO, "staging file truncate: %s", strerror(-rc));
		staging_account(f, f->size, NULL);
		return rc;
	}
	staging_account(f, size, NULL);
	if (size < f->base_limit)
		f->base_limit = size;
	f->size = size;
	f->dirty = 1;
	return 0;
}

/* ---- stream ---- */

/* Make the head hold at least need bytes (need <= part_size). */
static int head_reserve(struct fdata *f, size_t need, struct cm_err *err)
{
	size_t cap = f->head_cap ? f->head_cap : (size_t)(FDATA_HEAD_MIN < f->part_size ? FDATA_HEAD_MIN
											  : f->part_size);
	char *p;

	if (need <= f->head_cap)
		return 0;
	while (cap < need)
		cap *= 2;
	if (cap > f->part_size)
		cap = (size_t)f->part_size;
	p = realloc(f->head, cap);
	if (!p) {
		cm_err_set(err, CM_E_NOMEM, "no memory for written data");
		return -ENOMEM;
	}
	f->head = p;
	/*
	 * Give back before taking more: waiting while holding budget could wait
	 * forever when several writers each hold some (hold and wait).
	 */
	if (f->head_cap)
		membudget_release(f->budget, f->head_cap);
	membudget_acquire(f->budget, cap);
	f->head_cap = cap;
	return 0;
}

/* Start the uploader with the last commit's options and give it the head. */
static int stream_start_uploader(struct fdata *f, struct cm_err *err)
{
	struct s3_put_opts put_opts = { .content_type = f->last_ct, .meta = &f->last_meta };
	struct upload_opts uo = {
		.part_size = f->part_size,
		.concurrency = f->concurrency,
		.budget = f->budget,
		.workq = f->workq,
		.put_opts = f->have_last ? &put_opts : NULL,
	};
	enum cm_status st;

	f->up = uploader_create(f->store, f->key, &uo);
	f->up_key = xstrdup(f->key);
	/* the uploader takes its own budget for the same bytes: give ours back first */
	membudget_release(f->budget, f->head_cap);
	st = uploader_write(f->up, f->head, f->head_len, err);
	if (st != CM_OK) {
		/* nothing is lost yet: keep streaming into the head */
		uploader_abort(f->up);
		uploader_destroy(f->up);
		f->up = NULL;
		free(f->up_key);
		f->up_key = NULL;
		membudget_acquire(f->budget, f->head_cap);
		return errno_of(st);
	}
	free(f->head);
	f->head = NULL;
	f->head_len = f->head_cap = 0;
	return 0;
}

static int stream_append(struct fdata *f, const char *buf, size_t len, struct cm_err *err)
{
	enum cm_status st;
	int rc;

	if (!f->up) {
		if (f->head_len + len <= f->part_size) {
			rc = head_reserve(f, f->head_len + len, err);
			if (rc < 0)
				return rc;
			memcpy(f->head + f->head_len, buf, len);
			f->head_len += len;
			f->size += len;
			return 0;
		}
		rc = stream_start_uploader(f, err);
		if (rc < 0)
			return rc;
	}
	st = uploader_write(f->up, buf, len, err);
	if (st != CM_OK) {
		rc = errno_of(st);
		enter_failed(f, err);
		return rc;
	}
	f->size += len;
	return 0;
}

/*
 * Complete the uploader's upload: the object then holds the file (moved to
 * f->key if the file was renamed meanwhile). CLEAN afterwards, the metadata
 * to be checked by the next commit. On failure: FAILED.
 */
static int stream_finish(struct fdata *f, struct cm_err *err)
{
	struct cm_err del_err;
	char *etag = NULL;
	enum cm_status st;
	int rc;

	cm_err_clear(&del_err);
	st = uploader_finish(f->up, &etag, err);
	uploader_destroy(f->up);
	f->up = NULL;
	if (st != CM_OK)
		goto out_failed;
	if (strcmp(f->up_key, f->key) != 0) {
		char *moved = NULL;
		st = store_copy(f->store, f->key, f->up_key, NULL, &moved, err);
		if (st != CM_OK) {
			log_error("%s: renamed while written; its data is left at %s", f->key, f->up_key);
			free(etag);
			goto out_failed;
		}
		free(etag);
		etag = moved;
		if (store_del(f->store, f->up_key, &del_err) != CM_OK)
			log_warn("%s: cannot delete %s after the rename: %s", f->key, f->up_key,
				 cm_status_str(del_err.status));
	}
	free(f->up_key);
	f->up_key = NULL;
	set_etag(f, etag);
	f->state = FDATA_CLEAN;
	f->exists = 1;
	f->dirty = 0;
	f->meta_stale = 1;
	return 0;
out_failed:
	rc = errno_of(st);
	enter_failed(f, err);
	return rc;
}

/* Leave STREAM for STAGED (see the top of the file). */
static int stream_to_staged(struct fdata *f, struct cm_err *err)
{
	int rc;

	if (!f->up) {
		rc = staging_create(f, 0, f->head_len, err);
		if (rc < 0)
			return rc;
		rc = pwrite_all(f->fd, f->head, f->head_len, 0);
		if (rc < 0) {
			cm_err_set(err, CM_E_IO, "staging file write: %s", strerror(-rc));
			staging_close(f);
			f->state = FDATA_STREAM;
			return rc;
		}
		head_free(f);
		return 0;
	}
	/* reserve the disk first: ENOSPC must not cost the upload */
	rc = staging_account(f, f->size, err);
	if (rc < 0)
		return rc;
	rc = stream_finish(f, err);
	if (rc < 0) {
		staging_account(f, 0, NULL);
		return rc;
	}
	/* CLEAN now: on failure the file is the object, which is consistent */
	return staging_create(f, f->size, f->size, err);
}

/* From CLEAN to STAGED over the object, with the file's new size. */
static int clean_to_staged(struct fdata *f, uint64_t size, struct cm_err *err)
{
	uint64_t base = f->exists && !f->dirty ? f->size : 0;

	return staging_create(f, base, size, err);
}

/* ---- commit ---- */

static enum cm_status put_retry(struct fdata *f, const struct s3_body *body,
				const struct s3_put_opts *opts, char **etag, struct cm_err *err)
{
	enum cm_status st = CM_OK;

	for (int attempt = 0; attempt <= FDATA_RETRIES; attempt++) {
		st = store_put(f->store, f->key, body, opts, etag, err);
		if (st == CM_OK || !cm_status_retryable(st))
			break;
	}
	return st;
}

/* Abort an upload, tolerating servers that cannot. */
static void mpu_abort_logged(struct fdata *f, const char *upload_id)
{
	struct cm_err err;
	enum cm_status st;

	cm_err_clear(&err);
	st = store_mpu_abort(f->store, f->key, upload_id, &err);
	if (st == CM_E_UNSUPPORTED)
		log_warn("upload %s: the server cannot abort multipart uploads; upload %s is left to expire",
			 f->key, upload_id);
	else if (st != CM_OK && st != CM_E_NOT_FOUND)
		log_warn("upload %s: abort failed: %s", f->key, cm_status_str(st));
}

/* Part size for a staged upload of size bytes: part_size, grown to stay under 9,000 parts. */
static uint64_t staged_part_size(const struct fdata *f, uint64_t size)
{
	uint64_t part = f->part_size;

	if ((size + part - 1) / part > FDATA_TARGET_PARTS) {
		part = (size + FDATA_TARGET_PARTS - 1) / FDATA_TARGET_PARTS;
		part = (part + (1ULL << 20) - 1) & ~((1ULL << 20) - 1);
	}
	return part;
}

/* Multipart upload of the staging file, parts pread by the store from the fd. */
static enum cm_status staged_mpu(struct fdata *f, const struct s3_put_opts *opts, uint64_t part,
				 char **etag, struct cm_err *err)
{
	size_t n = (size_t)((f->size + part - 1) / part);
	struct xfer_job *jobs;
	struct s3_part *parts;
	char *upload_id = NULL;
	enum cm_status st;

	st = store_mpu_create(f->store, f->key, opts, &upload_id, err);
	if (st != CM_OK)
		return st;
	jobs = xcalloc(n, sizeof(*jobs));
	parts = xcalloc(n, sizeof(*parts));
	for (size_t i = 0; i < n; i++) {
		jobs[i].kind = XFER_PART;
		jobs[i].offset = (uint64_t)i * part;
		jobs[i].len = f->size - jobs[i].offset < part ? f->size - jobs[i].offset : part;
		jobs[i].upload_id = upload_id;
		jobs[i].number = (int)i + 1;
	}
	st = batch_run(f, jobs, n, err);
	if (st == CM_OK) {
		for (size_t i = 0; i < n; i++) {
			parts[i].number = jobs[i].number;
			parts[i].etag = jobs[i].etag;
		}
		st = store_mpu_complete(f->store, f->key, upload_id, parts, n, etag, err);
	}
	if (st != CM_OK)
		mpu_abort_logged(f, upload_id);
	for (size_t i = 0; i < n; i++)
		free(jobs[i].etag);
	free(parts);
	free(jobs);
	free(upload_id);
	return st;
}

/* Upload the staging file (after fetching what is missing of the base). */
static int staged_commit(struct fdata *f, const struct s3_put_opts *opts, struct cm_err *err)
{
	uint64_t part;
	char *etag = NULL;
	enum cm_status st;
	int rc;

	if (f->size > FDATA_MAX_OBJECT) {
		cm_err_set(err, CM_E_TOO_LARGE, "file larger than the largest object (5 TiB)");
		return -EFBIG;
	}
	rc = fetch_missing(f, 0, f->size, 0, 0, err);
	if (rc < 0)
		return rc;
	part = staged_part_size(f, f->size);
	if (f->size <= part) {
		struct s3_body body = { .mem = NULL, .fd = f->fd, .offset = 0, .len = f->size };
		st = put_retry(f, &body, opts, &etag, err);
	} else {
		st = staged_mpu(f, opts, part, &etag, err);
	}
	if (st != CM_OK)
		return errno_of(st);
	set_etag(f, etag);
	f->exists = 1;
	f->dirty = 0;
	f->meta_stale = 0;
	return 0;
}

/* Write the file's bytes (the state decides how). */
static int commit_data(struct fdata *f, const struct s3_put_opts *opts, struct cm_err *err)
{
	char *etag = NULL;
	enum cm_status st;

	switch (f->state) {
	case FDATA_STAGED:
		return staged_commit(f, opts, err);
	case FDATA_STREAM:
		if (f->up)
			return stream_finish(f, err);
		{
			struct s3_body body = { .mem = f->head, .fd = -1, .len = f->head_len };
			st = put_retry(f, &body, opts, &etag, err);
		}
		if (st != CM_OK)
			return errno_of(st);  /* the head stays: a later commit tries again */
		head_free(f);
		break;
	case FDATA_CLEAN: {
		struct s3_body body = { .mem = NULL, .fd = -1, .len = 0 };
		st = put_retry(f, &body, opts, &etag, err);
		if (st != CM_OK)
			return errno_of(st);
		break;
	}
	}
	set_etag(f, etag);
	f->state = FDATA_CLEAN;
	f->exists = 1;
	f->dirty = 0;
	f->meta_stale = 0;
	return 0;
}

/* Give the object opts's metadata without sending its bytes again. */
static int commit_meta(struct fdata *f, const struct s3_put_opts *opts, struct cm_err *err)
{
	struct s3_put_opts replace = { .content_type = opts ? opts->content_type : NULL,
				       .meta = opts ? opts->meta : NULL };
	char *etag = NULL;
	enum cm_status st;

	if (opts_same_as_last(f, opts)) {
		f->meta_stale = 0;
		return 0;
	}
	if (f->size > FDATA_MAX_COPY) {
		log_warn("%s: over 5 GiB, its metadata cannot be replaced by a copy; left as written",
			 f->key);
		f->meta_stale = 0;
		return 0;
	}
	st = store_copy(f->store, f->key, f->key, &replace, &etag, err);
	if (st != CM_OK)
		return errno_of(st);
	set_etag(f, etag);
	f->meta_stale = 0;
	return 0;
}

/* ---- public ---- */

struct fdata *fdata_create(const struct fdata_opts *opts, const char *key, int exists,
			   uint64_t size, const char *etag, int truncate)
{
	struct fdata *f = xcalloc(1, sizeof(*f));

	pthread_mutex_init(&f->lock, NULL);
	f->store = opts->store;
	f->workq = opts->workq;
	f->budget = opts->budget;
	f->disk = opts->disk;
	f->part_size = opts->part_size ? opts->part_size : FDATA_DEFAULT_PART_SIZE;
	f->concurrency = opts->concurrency > 0 ? opts->concurrency : 4;
	f->key = xstrdup(key);
	f->state = FDATA_CLEAN;
	f->exists = exists;
	f->size = truncate || !exists ? 0 : size;
	f->etag = etag ? xstrdup(etag) : NULL;
	f->dirty = truncate;
	f->fd = -1;
	atomic_store(&f->pub_size, f->size);
	atomic_store(&f->pub_dirty, f->dirty);
	return f;
}

int fdata_detach(struct fdata *f, struct cm_err *err)
{
	struct cm_err e;
	int rc = 0;

	cm_err_clear(&e);
	pthread_mutex_lock(&f->lock);
	if (f->failed) {
		rc = failed_return(f, &e);
		goto out;
	}
	if (f->state == FDATA_STREAM)
		rc = stream_to_staged(f, &e);
	else if (f->state == FDATA_CLEAN)
		rc = clean_to_staged(f, f->size, &e);
	/* every byte of the object, local from now on */
	if (rc == 0)
		rc = fetch_missing(f, 0, f->base_limit, 0, 0, &e);
out:
	unlock_publish(f);
	if (rc < 0 && err)
		*err = e;
	return rc;
}

ssize_t fdata_write(struct fdata *f, uint64_t off, const char *buf, size_t len, struct cm_err *err)
{
	struct cm_err e;
	int rc = 0;

	cm_err_clear(&e);
	if (len == 0)
		return 0;
	if (off > FDATA_MAX_OBJECT || len > FDATA_MAX_OBJECT - off) {
		cm_err_set(err, CM_E_TOO_LARGE, "write past the largest object (5 TiB)");
		return -EFBIG;
	}
	pthread_mutex_lock(&f->lock);
	if (f->failed) {
		rc = failed_return(f, &e);
		goto out;
	}
	switch (f->state) {
	case FDATA_CLEAN:
		if (off == 0 && f->size == 0) {
			int was_dirty = f->dirty;
			f->state = FDATA_STREAM;
			f->dirty = 1;
			rc = stream_append(f, buf, len, &e);
			if (rc < 0 && !f->failed && f->head_len == 0) {
				f->state = FDATA_CLEAN; /* nothing was taken */
				f->dirty = was_dirty;
			}
			break;
		}
		rc = clean_to_staged(f, f->size, &e);
		if (rc == 0)
			rc = staged_write(f, off, buf, len, &e);
		break;
	case FDATA_STREAM:
		if (off == f->size) {
			rc = stream_append(f, buf, len, &e);
			break;
		}
		rc = stream_to_staged(f, &e);
		if (rc == 0)
			rc = staged_write(f, off, buf, len, &e);
		break;
	case FDATA_STAGED:
		rc = staged_write(f, off, buf, len, &e);
		break;
	}
out:
	unlock_publish(f);
	if (rc < 0) {
		if (err)
			*err = e;
		return rc;
	}
	return (ssize_t)len;
}

/* Read from the object in the store into buf. */
struct buf_sink {
	char *buf;
	size_t cap, done;
};

static int buf_sink_fn(void *ctx, const char *data, size_t len)
{
	struct buf_sink *s = ctx;

	if (len > s->cap - s->done)
		return -1;
	memcpy(s->buf + s->done, data, len);
	s->done += len;
	return 0;
}

static ssize_t clean_read(struct fdata *f, uint64_t off, size_t len, char *buf, struct cm_err *err)
{
	struct buf_sink sink = { .buf = buf };
	enum cm_status st = CM_OK;

	if (f->dirty || !f->exists || off >= f->size)
		return 0;
	sink.cap = f->size - off < len ? (size_t)(f->size - off) : len;
	for (int attempt = 0; attempt < FDATA_FETCH_TRIES && sink.done < sink.cap; attempt++) {
		size_t before = sink.done;
		st = store_get(f->store, f->key, off + sink.done, sink.cap - sink.done, buf_sink_fn, &sink,
			       NULL, NULL, err);
		if (sink.done > before)
			attempt = -1;   /* progress: a cut transfer, resumed (see fetch_range) */
		if (st == CM_OK || !cm_status_retryable(st))
			break;
	}
	if (st != CM_OK && sink.done < sink.cap)
		return errno_of(st);
	return (ssize_t)sink.done;
}

ssize_t fdata_read(struct fdata *f, uint64_t off, size_t len, char *buf, struct cm_err *err)
{
	struct cm_err e;
	ssize_t n = 0;
	int rc;

	cm_err_clear(&e);
	pthread_mutex_lock(&f->lock);
	if (f->failed) {
		n = failed_return(f, &e);
		goto out;
	}
	switch (f->state) {
	case FDATA_CLEAN:
		n = clean_read(f, off, len, buf, &e);
		break;
	case FDATA_STREAM:
		rc = stream_to_staged(f, &e);
		if (rc < 0) {
			n = rc;
			break;
		}
		n = staged_read(f, off, len, buf, &e);
		break;
	case FDATA_STAGED:
		n = staged_read(f, off, len, buf, &e);
		break;
	}
out:
	unlock_publish(f);
	if (n < 0 && err)
		*err = e;
	return n;
}

int fdata_truncate(struct fdata *f, uint64_t size, struct cm_err *err)
{
	struct cm_err e;
	int rc = 0;

	cm_err_clear(&e);
	if (size > FDATA_MAX_OBJECT) {
		cm_err_set(err, CM_E_TOO_LARGE, "size past the largest object (5 TiB)");
		return -EFBIG;
	}
	pthread_mutex_lock(&f->lock);
	if (size == 0) {
		/* start over: nothing of the old content or of a failure matters */
		f->dirty = f->dirty || f->failed || f->size != 0 || !f->exists;
		stream_drop(f);
		staging_close(f);
		f->state = FDATA_CLEAN;
		f->failed = 0;
		f->size = 0;
		goto out;
	}
	if (f->failed) {
		rc = failed_return(f, &e);
		goto out;
	}
	if (size == f->size)
		goto out;
	switch (f->state) {
	case FDATA_CLEAN:
		rc = clean_to_staged(f, size, &e);
		break;
	case FDATA_STREAM:
		rc = stream_to_staged(f, &e);
		if (rc == 0)
			rc = staged_truncate(f, size, &e);
		break;
	case FDATA_STAGED:
		rc = staged_truncate(f, size, &e);
		break;
	}
	if (rc == 0)
		f->dirty = 1;
out:
	unlock_publish(f);
	if (rc < 0 && err)
		*err = e;
	return rc;
}

int fdata_commit(struct fdata *f, const struct s3_put_opts *opts, char **etag, uint64_t *size,
		 struct cm_err *err)
{
	struct cm_err e;
	int rc = 0;

	cm_err_clear(&e);
	if (etag)
		*etag = NULL;
	pthread_mutex_lock(&f->lock);
	if (size)
		*size = f->size;
	if (f->failed) {
		rc = failed_return(f, &e);
		goto out;
	}
	if (!f->dirty && !f->meta_stale)
		goto out;
	if (f->dirty) {
		rc = commit_data(f, opts, &e);
		if (rc < 0)
			goto out;
	}
	if (f->meta_stale) {
		rc = commit_meta(f, opts, &e);
		if (rc < 0)
			goto out;
	}
	opts_save_last(f, opts);
	if (etag)
		*etag = xstrdup(f->etag ? f->etag : "");
	if (size)
		*size = f->size;
out:
	unlock_publish(f);
	if (rc < 0 && err)
		*err = e;
	return rc;
}

void fdata_set_key(struct fdata *f, const char *key)
{
	struct cm_err e;

	cm_err_clear(&e);
	pthread_mutex_lock(&f->lock);
	free(f->key);
	f->key = xstrdup(key);
	/* an upload under way goes to the old key: finish it now and move it (see top) */
	if (f->up && !f->failed)
		stream_finish(f, &e);
	unlock_publish(f);
}

uint64_t fdata_size(struct fdata *f)
{
	return atomic_load(&f->pub_size);
}

int fdata_dirty(struct fdata *f)
{
	return atomic_load(&f->pub_dirty);
}

enum fdata_state fdata_state(struct fdata *f)
{
	enum fdata_state st;

	pthread_mutex_lock(&f->lock);
	st = f->state;
	unlock_publish(f);
	return st;
}

void fdata_destroy(struct fdata *f)
{
	if (!f)
		return;
	stream_drop(f);
	staging_close(f);
	free(f->key);
	free(f->etag);
	free(f->last_ct);
	s3_meta_release(&f->last_meta);
	pthread_mutex_destroy(&f->lock);
	free(f);
}
