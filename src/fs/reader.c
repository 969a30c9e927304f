/*
 * reader.c - sequential detection and a prefetch window of parallel ranged
 * GETs for one open object (see reader.h for the contract).
 *
 * Streams. A reader follows up to READER_STREAMS sequential streams, so that
 * several threads (or one program) reading different regions through one
 * handle each keep a window of their own. A read continues a stream when it
 * starts where the stream's furthest read ended, or, once the stream is
 * sequential, anywhere from the part of its last read to the end of its
 * window (FUSE may deliver the kernel's read-ahead out of order). Any other
 * read is a jump: it starts a new stream (a free slot, else the least recently
 * used one) at min_window with no streak. A stream with no streak prefetches
 * nothing: its reads are random and go straight to the store for exactly the
 * bytes asked. The second read in a row starts prefetching (the first already
 * does when it starts at offset 0 of an object that fits in one part); from then on the
 * window doubles each time the stream's reads move into a new part, up to
 * max_window. A stream not read for READER_STREAM_IDLE_MS is forgotten (and
 * its parts dropped) at the next read of another.
 *
 * Parts. Part i holds bytes [i * part_size, min((i + 1) * part_size, size)).
 * r->parts is sorted by index and holds only parts some stream wants: from
 * the part of the stream's last read to the part holding the end of its
 * window. After each read the parts no stream wants (the ones behind, those
 * of a forgotten stream) are dropped. A part moves
 *   WANT (no memory yet) -> FETCHING (budget taken, a job filling data)
 *        -> READY (complete) | FAILED (a marker: memory given back).
 * A part holds p->len bytes of the budget exactly when p->data is not NULL.
 *
 * Streaming. A FETCHING part's first p->filled bytes have arrived and never
 * change again (a resumed GET continues after them): its job publishes them
 * in steps of READER_PUBLISH, so a read waits only for its own bytes, not for
 * the whole part (the first read of a file, and cp's reads of a file fetched
 * whole, go on while the rest comes in). A GET's ETag is checked before its
 * first byte is taken (the store gives it with the headers), so bytes of
 * another version never reach a part. A FAILED part some reply still reads
 * from keeps its memory until that reply ends.
 *
 * Replies. reader_read_reply lends parts holding its bytes to its caller
 * instead of copying them out (the FUSE reply is written straight from the
 * part): the parts are pinned (pins > 0) for the call, and a pinned part that
 * is dropped meanwhile is only unlinked (orphan) and freed when the last pin
 * goes. When some byte is in no part (and none being fetched) it falls back
 * to reader_read's path into a buffer of its own.
 *
 * Budget. No thread serving reader_read ever waits for the budget. The WANT
 * parts are taken up by a chain of jobs on the work queue: one link at a time
 * per reader waits in membudget_alloc (without the lock) for the first WANT
 * part; with the memory in hand it queues the next link if more parts are
 * wanted, then fetches its own part. A read that needs a part without memory
 * waits for it at most READER_WANT_WAIT_MS (the usual delay before a link
 * gets to it), then fetches its bytes straight into the caller's buffer. So
 * a reader whose parts fill the budget still advances, and as it does its
 * parts behind are dropped, which lets the link go on. A read that needs a
 * FETCHING part waits for it: that job waits only for the network. At most
 * one work-queue thread per reader ever waits for the budget. (With a
 * non-blocking membudget_try_acquire the links could go: a read would take
 * the memory itself when it is there and skip the read-ahead when not.)
 *
 * Errors. A GET that fails with a retryable status is resumed after the bytes
 * already received; READER_RETRIES failures in a row without progress end it.
 * Every answer's ETag is checked against the one known at open, so bytes from
 * two versions of an object are never mixed (CM_E_PRECONDITION). A FAILED
 * part stays as a marker (no memory) so the window does not fetch it again
 * and again; the read that needs it drops it and fetches its bytes itself,
 * and returns that attempt's error if it fails too. So a persistent failure
 * reaches the reader, and one that has passed (a fetch in flight when the
 * faults started) is never reported late.
 *
 * Lifetime. The owner and every job hold a reference (refs). reader_destroy
 * marks the reader dead, drops every part (a part a job is working on, or
 * one lent to a reader_read_reply caller, is unlinked and marked orphan; its
 * last user frees it), waits until no part is FETCHING (those jobs use the
 * store) and none is lent, then drops its reference. A link still
 * waiting for budget touches only the reader and the budget when it wakes,
 * and the last reference frees the reader; the work queue (which runs or
 * finishes every job before it is destroyed) must go before the budget.
 *
 * Locking: r->lock protects everything that changes after create, except a
 * FETCHING part's data, which belongs to its job until it leaves FETCHING
 * (the state change is made under the lock). Lock order: r->lock, then the
 * budget's and the work queue's (taken inside it, never the other way).
 */
#include "fs/reader.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fs/fdata.h"

#define READER_STREAMS 4
#define READER_STREAM_IDLE_MS 1000      /* a stream not read for this long is forgotten */
#define READER_RETRIES 3        /* retryable failures in a row without progress */
#define READER_WANT_WAIT_MS 5   /* how long a read waits for a part to get its memory */
#define READER_REPLY_IOV 8      /* parts one reader_read_reply may lend at once */
#define READER_PUBLISH (128 * 1024)     /* a part's bytes are shown to reads in steps of this */
#define READER_FILL_JOBS 4      /* parts of the local copy fetched at once, at most */
#define READER_FILL_FAILURES 3  /* failed parts after which the fill stops */
#define READER_FILL_SLOW_US 5000 /* only reads that wait this long on average are worth a copy */
#define READER_FILL_SMALL (128 * 1024)  /* reads this small wait for the round trip, not the bytes */

enum fill_part { FILL_MISSING = 0, FILL_BUSY, FILL_HAVE };
enum fill_state { FILL_NONE = 0, FILL_STARTING, FILL_RUNNING, FILL_STOPPED };

/*
 * Mount-wide: reader_shutdown sets stopping, then waits until no fetch is
 * running (fetch_range counts itself in fetching before it looks at
 * stopping, so none starts unseen).
 */
static atomic_int reader_stopping;
static atomic_int reader_fetching;

/* macOS has no pthread_condattr_setclock */
#ifdef __APPLE__
#define READER_CLOCK CLOCK_REALTIME
#else
#define READER_CLOCK CLOCK_MONOTONIC
#endif

enum part_state {
	PART_WANT = 0,
	PART_FETCHING,
	PART_READY,
	PART_FAILED,
};

struct part {
	uint64_t index;
	size_t len;                     /* bytes of the object in this part */
	size_t filled;                  /* bytes at the start of data received (FETCHING) */
	char *data;                     /* NULL unless FETCHING or READY (or FAILED and pinned) */
	enum part_state state;
	int busy;                       /* a job works on it (waiting for budget or fetching) */
	int pins;                       /* lent to reader_read_reply callers */
	int orphan;                     /* unlinked while busy or pinned: the last user frees it */
	int fresh;                      /* adopted and not read yet: kept whatever the streams want */
	struct part *next;
};

struct stream {
	int active;
	unsigned streak;                /* sequential reads in a row after the first */
	uint64_t pos;                   /* start of the last read */
	uint64_t next_off;              /* end of the furthest read; > 0 when active */
	uint64_t window;                /* bytes wanted ahead of next_off (when streak > 0) */
	uint64_t last_use;              /* r->tick at the last read */
	int64_t last_ms;                /* util_now_ms() at the last read */
};

struct reader {
	struct store *store;
	char *key;
	char *etag;                     /* as known at open, without quotes; NULL: not checked */
	uint64_t size;
	uint64_t part_size, min_window, max_window;
	struct membudget *budget;
	struct workq *workq;

	pthread_mutex_t lock;
	pthread_cond_t cond;            /* on READER_CLOCK; a part changed state */
	struct part *parts;             /* protected by lock; sorted by index, no duplicates */
	struct stream streams[READER_STREAMS];  /* protected by lock */
	uint64_t tick;                  /* protected by lock: reads so far */
	int refs;                       /* protected by lock: owner + jobs */
	int fetching;                   /* protected by lock: parts in FETCHING */
	int lending;                    /* protected by lock: reader_read_reply calls holding pins */
	int linking;                    /* protected by lock: a budget link is queued or running */
	int dead;                       /* protected by lock: reader_destroy was called */
	struct reader_stats stats;      /* protected by lock */

	/* the local copy (see reader.h); under lock unless noted */
	struct fdata_disk *disk;
	unsigned fill_after;
	uint64_t direct_n, direct_us;   /* reads fetched straight from the store, and their time */
	enum fill_state fill;
	int fill_fd;                    /* -1: none; set once, closed by reader_destroy */
	unsigned char *fill_have;       /* per part: enum fill_part */
	uint64_t n_parts;
	uint64_t fill_next;             /* where the next free fill job looks first */
	int fill_running;               /* fill jobs fetching a part */
	int fill_failures;
	atomic_int fill_stop;           /* read by fill sinks without the lock */
};

/* An ETag without its quotes, in buf; NULL when there is none. */
static const char *etag_bare(const char *etag, char *buf, size_t len)
{
	size_t n;

	if (!etag || !*etag)
		return NULL;
	n = strlen(etag);
	if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"') {
		etag++;
		n -= 2;
	}
	if (n >= len)
		n = len - 1;
	memcpy(buf, etag, n);
	buf[n] = '\0';
	return buf;
}

struct reader *reader_create(struct store *s, const char *key, uint64_t size, const char *etag,
			     const struct reader_opts *opts)
{
	struct reader *r = xcalloc(1, sizeof(*r));
	pthread_condattr_t attr;
	char bare[256];

	r->store = s;
	r->key = xstrdup(key);
	if (etag_bare(etag, bare, sizeof(bare)))
		r->etag = xstrdup(bare);
	r->size = size;
	r->part_size = opts->part_size ? opts->part_size : 8ULL << 20;
	r->min_window = opts->min_window ? opts->min_window : r->part_size;
	r->max_window = opts->max_window ? opts->max_window : 64ULL << 20;
	if (r->max_window < r->min_window)
		r->max_window = r->min_window;
	r->budget = opts->budget;
	r->workq = opts->workq;
	r->refs = 1;
	r->stats.window = r->min_window;
	r->disk = opts->disk;
	r->fill_after = opts->fill_after;
	r->fill_fd = -1;
	atomic_init(&r->fill_stop, 0);
	pthread_mutex_init(&r->lock, NULL);
	pthread_condattr_init(&attr);
#ifndef __APPLE__
	pthread_condattr_setclock(&attr, READER_CLOCK);
#endif
	pthread_cond_init(&r->cond, &attr);
	pthread_condattr_destroy(&attr);
	return r;
}

static void reader_free(struct reader *r)
{
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r->fill_have);
	free(r->key);
	free(r->etag);
	free(r);
}

/* Drop a reference; the last one frees the reader. Called without the lock. */
static void reader_unref(struct reader *r)
{
	int last;

	pthread_mutex_lock(&r->lock);
	last = --r->refs == 0;
	pthread_mutex_unlock(&r->lock);
	if (last)
		reader_free(r);
}

/* ---- fetching ---- */

struct fill_sink {
	struct reader *r;
	struct part *part;              /* the part filled, NULL: a read's own buffer */
	int fd;                         /* >= 0: write to this file at fd_off + got instead */
	uint64_t fd_off;
	const struct s3_object_head *head;      /* of the GET running */
	char *dst;
	size_t cap;
	size_t got;
	size_t published;               /* part->filled as last set */
	size_t counted;                 /* bytes added to r->stats so far */
	int checked;                    /* this GET's ETag was checked */
	char changed[256];              /* not empty: the ETag of another version, refused */
};

/* Count the bytes received so far in the reader's stats. Lock held. */
static void count_fetched(struct fill_sink *f)
{
	f->r->stats.bytes_fetched += f->got - f->counted;
	f->counted = f->got;
}

/*
 * Show a part's bytes received so far to the reads waiting for them (counted
 * at once, so the stats never lag behind the reads they served).
 */
static void publish(struct fill_sink *f)
{
	pthread_mutex_lock(&f->r->lock);
	f->part->filled = f->got;
	count_fetched(f);
	pthread_cond_broadcast(&f->r->cond);
	pthread_mutex_unlock(&f->r->lock);
	f->published = f->got;
}

static int fill_sink_fn(void *ctx, const char *data, size_t len)
{
	struct fill_sink *f = ctx;

	if (!f->checked) {
		/* the store gives the ETag before the first byte: no mixed versions */
		char bare[256];
		const char *got = etag_bare(f->head->etag, bare, sizeof(bare));
		f->checked = 1;
		if (f->r->etag && got && strcmp(f->r->etag, got) != 0) {
			snprintf(f->changed, sizeof(f->changed), "%s", got);
			return -1;
		}
	}
	if (len > f->cap - f->got)
		return -1;
	if (atomic_load(&reader_stopping))
		return -1;
	if (f->fd >= 0) {
		if (atomic_load(&f->r->fill_stop))
			return -1;
		for (size_t done = 0; done < len;) {
			ssize_t n = pwrite(f->fd, data + done, len - done,
					   (off_t)(f->fd_off + f->got + done));
			if (n <= 0)
				return -1;
			done += (size_t)n;
		}
	} else {
		memcpy(f->dst + f->got, data, len);
	}
	f->got += len;
	if (f->part && (f->got - f->published >= READER_PUBLISH || f->got == f->cap))
		publish(f);
	return 0;
}

/* CM_OK when the answer's ETag is the one known at open (or either is unknown). */
static enum cm_status check_etag(const struct reader *r, const struct s3_object_head *head,
				 struct cm_err *err)
{
	char bare[256];
	const char *got = etag_bare(head->etag, bare, sizeof(bare));

	if (!r->etag || !got || strcmp(r->etag, got) == 0)
		return CM_OK;
	log_warn("read %s: the object changed since it was opened (ETag %s, now %s)", r->key,
		 r->etag, got);
	cm_err_clear(err);
	return cm_err_set(err, CM_E_PRECONDITION, "%s changed since it was opened", r->key);
}

/*
 * Fetch object bytes [off, off + len) into dst, without the lock. Retryable
 * failures are resumed after the bytes already received, until READER_RETRIES
 * of them in a row bring nothing. When part is not NULL (dst is its data), the
 * bytes received are published in part->filled as they come; when fd >= 0
 * they go to that file at their object offset instead of dst. Counts the GETs
 * and bytes in r->stats. Returns CM_OK with all len bytes in place, or a
 * status with err filled.
 */
static enum cm_status fetch_range(struct reader *r, struct part *part, int fd, uint64_t off,
				  size_t len, char *dst, struct cm_err *err)
{
	struct fill_sink sink = { .r = r, .part = part, .fd = fd, .fd_off = off, .dst = dst, .cap = len };
	enum cm_status st = CM_OK;
	int failures = 0;

	atomic_fetch_add(&reader_fetching, 1);
	if (atomic_load(&reader_stopping)) {
		atomic_fetch_sub(&reader_fetching, 1);
		return cm_err_set(err, CM_E_CANCELLED, "the mount is stopping");
	}

	while (sink.got < len) {
		struct s3_object_head head;
		size_t before = sink.got;

		/* zeroed here: not every layer clears it on failure */
		memset(&head, 0, sizeof(head));
		sink.head = &head;
		sink.checked = 0;
		pthread_mutex_lock(&r->lock);
		r->stats.gets++;
		pthread_mutex_unlock(&r->lock);
		st = store_get(r->store, r->key, off + before, len - before, fill_sink_fn, &sink, &head,
			       NULL, err);
		if (sink.changed[0]) {
			struct s3_object_head seen = { .etag = sink.changed };
			st = check_etag(r, &seen, err);
		} else if (st == CM_OK) {
			st = check_etag(r, &head, err);
		}
		s3_object_head_release(&head);
		if (st == CM_OK) {
			if (sink.got < len)
				st = cm_err_set(err, CM_E_PROTOCOL, "%s: %zu of %zu bytes at offset %llu",
						r->key, sink.got, len, (unsigned long long)off);
			break;
		}
		if (!cm_status_retryable(st))
			break;
		failures = sink.got > before ? 0 : failures + 1;
		if (failures > READER_RETRIES)
			break;
		log_debug("read %s: GET at %llu failed (%s), resuming", r->key,
			  (unsigned long long)(off + sink.got), cm_status_str(st));
	}
	pthread_mutex_lock(&r->lock);
	count_fetched(&sink);
	pthread_mutex_unlock(&r->lock);
	atomic_fetch_sub(&reader_fetching, 1);
	return st;
}

/* Free a part no longer linked, with its memory. Caller holds the lock. */
static void part_free(struct reader *r, struct part *p)
{
	membudget_free(r->budget, p->data, p->len);
	free(p);
}

/* A FAILED part's memory goes back now, or when the last reply using its first bytes ends. */
static void part_release_data(struct reader *r, struct part *p)
{
	if (p->pins)
		return;
	membudget_free(r->budget, p->data, p->len);
	p->data = NULL;
}

/* Drop a part just unlinked: free it, or leave it to the job or the reply using it. */
static void part_drop(struct reader *r, struct part *p)
{
	if (p->busy || p->pins)
		p->orphan = 1;
	else
		part_free(r, p);
}

/* The first part waiting for memory that no link has taken. Caller holds the lock. */
static struct part *first_want(struct reader *r)
{
	for (struct part *p = r->parts; p; p = p->next)
		if (p->state == PART_WANT && !p->busy)
			return p;
	return NULL;
}

/* Fetch a FETCHING part's bytes (the job's, without the lock), then publish the result. */
static void fetch_part(struct reader *r, struct part *p)
{
	struct cm_err err;
	enum cm_status st;

	cm_err_clear(&err);
	st = fetch_range(r, p, -1, p->index * r->part_size, p->len, p->data, &err);
	pthread_mutex_lock(&r->lock);
	p->busy = 0;
	if (p->orphan) {
		if (!p->pins)
			part_free(r, p);
	} else if (st == CM_OK) {
		p->state = PART_READY;
	} else {
		log_warn("read %s: part at %llu failed: %s", r->key,
			 (unsigned long long)(p->index * r->part_size), cm_status_str(st));
		p->state = PART_FAILED;
		part_release_data(r, p);
	}
	r->fetching--;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

/*
 * A link of the budget chain (a job holding one reference): wait for the
 * memory of the first WANT part, hand the chain on if more parts wait, then
 * fetch the part. Ends the chain when nothing waits or the reader is dead.
 */
static void link_run(void *arg)
{
	struct reader *r = arg;
	struct part *p;
	char *data;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		p = r->dead ? NULL : first_want(r);
		if (!p)
			break;
		p->busy = 1;
		pthread_mutex_unlock(&r->lock);
		data = membudget_alloc(r->budget, p->len);
		pthread_mutex_lock(&r->lock);
		if (p->orphan) {
			/* dropped (or the reader destroyed) while we waited */
			membudget_free(r->budget, data, p->len);
			free(p);
			continue;
		}
		p->data = data;
		if (!p->data) {
			log_warn("read %s: no memory for a read-ahead part", r->key);
			p->state = PART_FAILED;
			p->busy = 0;
			pthread_cond_broadcast(&r->cond);
			continue;
		}
		p->state = PART_FETCHING;
		r->fetching++;
		pthread_cond_broadcast(&r->cond);
		if (first_want(r)) {
			r->refs++;
			workq_submit(r->workq, link_run, r);
		} else {
			r->linking = 0;
		}
		pthread_mutex_unlock(&r->lock);
		fetch_part(r, p);
		reader_unref(r);
		return;
	}
	r->linking = 0;
	pthread_mutex_unlock(&r->lock);
	reader_unref(r);
}

/* ---- the local copy ---- */

static uint64_t part_len(const struct reader *r, uint64_t index)
{
	uint64_t start = index * r->part_size;

	return r->size - start < r->part_size ? r->size - start : r->part_size;
}

/* The next part no fill job has taken, from fill_next on, wrapping; UINT64_MAX: none. Lock held. */
static uint64_t fill_pick(struct reader *r)
{
	for (uint64_t k = 0; k < r->n_parts; k++) {
		uint64_t i = (r->fill_next + k) % r->n_parts;
		if (r->fill_have[i] == FILL_MISSING) {
			r->fill_next = (i + 1) % r->n_parts;
			return i;
		}
	}
	return UINT64_MAX;
}

/*
 * A fill job (holding a reference): fetch one missing part into the copy,
 * then queue itself again at the tail (other work of the queue goes between
 * its parts), until no part is missing or the copy stops.
 */
static void fill_run(void *arg)
{
	struct reader *r = arg;
	struct cm_err err;
	enum cm_status st;
	uint64_t i;
	int fd;

	pthread_mutex_lock(&r->lock);
	i = r->dead || r->fill != FILL_RUNNING || atomic_load(&reader_stopping) ? UINT64_MAX
										 : fill_pick(r);
	if (i == UINT64_MAX) {
		pthread_mutex_unlock(&r->lock);
		reader_unref(r);
		return;
	}
	fd = r->fill_fd;        /* closed only once no job is running */
	r->fill_have[i] = FILL_BUSY;
	r->fill_running++;
	pthread_mutex_unlock(&r->lock);
	cm_err_clear(&err);
	st = fetch_range(r, NULL, fd, i * r->part_size, (size_t)part_len(r, i), NULL, &err);
	pthread_mutex_lock(&r->lock);
	r->fill_running--;
	if (st == CM_OK) {
		r->fill_have[i] = FILL_HAVE;
		r->stats.fill_parts++;
	} else {
		r->fill_have[i] = FILL_MISSING;
		if (!r->dead && ++r->fill_failures >= READER_FILL_FAILURES) {
			log_warn("read %s: local copy stopped after %d failed parts: %s", r->key,
				 r->fill_failures, cm_status_str(st));
			r->fill = FILL_STOPPED;
		}
	}
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	workq_submit(r->workq, fill_run, r);   /* the reference goes with it */
}

/* Take the file for the copy (off the reader's lock: it is disk work), then start the jobs. */
static void fill_start(void *arg)
{
	struct reader *r = arg;
	int fd = fdata_disk_take_file(r->disk, r->size), jobs;

	pthread_mutex_lock(&r->lock);
	if (fd < 0 || r->dead) {
		if (fd < 0)
			log_debug("read %s: no room for a local copy of %llu bytes", r->key,
				  (unsigned long long)r->size);
		else
			fdata_disk_put_file(r->disk, fd, r->size);
		r->fill = FILL_STOPPED;
		pthread_cond_broadcast(&r->cond);
		pthread_mutex_unlock(&r->lock);
		reader_unref(r);
		return;
	}
	r->fill_fd = fd;
	r->n_parts = (r->size + r->part_size - 1) / r->part_size;
	r->fill_have = xcalloc(r->n_parts, 1);
	r->fill = FILL_RUNNING;
	jobs = (int)(r->max_window / r->part_size);
	if (jobs < 1)
		jobs = 1;
	if (jobs > READER_FILL_JOBS)
		jobs = READER_FILL_JOBS;
	if ((uint64_t)jobs > r->n_parts)
		jobs = (int)r->n_parts;
	log_debug("read %s: random reads: filling a local copy, %d parts at once", r->key, jobs);
	r->refs += jobs;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	for (int k = 0; k < jobs; k++)
		workq_submit(r->workq, fill_run, r);
	reader_unref(r);
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* A random read at off: the copy, if it runs, fills that part next. Lock held. */
static void fill_note_random(struct reader *r, uint64_t off)
{
	if (r->fill == FILL_RUNNING && r->fill_have[off / r->part_size] == FILL_MISSING)
		r->fill_next = off / r->part_size;
}

/*
 * After a random read at off fetched straight from the store: start the
 * local copy once fill_after such reads, each of at most READER_FILL_SMALL
 * bytes, waited READER_FILL_SLOW_US on average (a server a round trip away:
 * close by, each read costs less than the copy would take from the others),
 * for an object whose version is known. Lock held.
 */
static void fill_maybe_start(struct reader *r, uint64_t off)
{
	if (r->fill != FILL_NONE || !r->fill_after || !r->disk || !r->workq || !r->etag ||
	    r->direct_n < r->fill_after || r->direct_us < r->direct_n * READER_FILL_SLOW_US ||
	    r->size <= r->part_size)
		return;
	r->fill = FILL_STARTING;
	r->fill_next = off / r->part_size;
	r->refs++;
	workq_submit(r->workq, fill_start, r);
}

/* ---- streams and the window ---- */

static uint64_t part_index(const struct reader *r, uint64_t off)
{
	return off / r->part_size;
}

/* The last part a sequential stream wants: the one holding its window's end. */
static uint64_t stream_last_part(const struct reader *r, const struct stream *s)
{
	uint64_t end = s->next_off + s->window;

	if (end > r->size || end < s->next_off)
		end = r->size;
	return part_index(r, end - 1);
}

static int part_wanted(const struct reader *r, uint64_t index)
{
	for (int i = 0; i < READER_STREAMS; i++) {
		const struct stream *s = &r->streams[i];
		if (s->active && s->streak && index >= part_index(r, s->pos) &&
		    index <= stream_last_part(r, s))
			return 1;
	}
	return 0;
}

/*
 * Find or start the stream of a read of [off, end) and move it on; grows its
 * window when the read is sequential. Caller holds the lock.
 */
static struct stream *stream_for_read(struct reader *r, uint64_t off, uint64_t end)
{
	struct stream *s = NULL, *victim = NULL;
	int64_t now = util_now_ms();

	r->tick++;
	for (int i = 0; i < READER_STREAMS; i++) {
		struct stream *c = &r->streams[i];
		if (c->active && now - c->last_ms > READER_STREAM_IDLE_MS)
			c->active = 0;
		if (c->active && off == c->next_off && !s)
			s = c;
	}
	for (int i = 0; i < READER_STREAMS && !s; i++) {
		struct stream *c = &r->streams[i];
		if (c->active && c->streak && off >= part_index(r, c->pos) * r->part_size &&
		    off < c->next_off + c->window)
			s = c;
	}
	if (s) {
		uint64_t last_end_part = part_index(r, s->next_off - 1);
		if (s->streak < UINT_MAX)
			s->streak++;
		if (s->streak > 1 && part_index(r, end - 1) > last_end_part)
			s->window = s->window * 2 > r->max_window ? r->max_window : s->window * 2;
		s->pos = off;
		if (end > s->next_off)
			s->next_off = end;
	} else {
		for (int i = 0; i < READER_STREAMS; i++) {
			struct stream *c = &r->streams[i];
			if (!c->active) {
				victim = c;
				break;
			}
			if (!victim || c->last_use < victim->last_use)
				victim = c;
		}
		s = victim;
		memset(s, 0, sizeof(*s));
		s->active = 1;
		s->pos = off;
		s->next_off = end;
		s->window = r->min_window;
		/*
		 * A file read from its start is nearly always read on (cp, cat,
		 * a checksum, an editor): one that fits in a part is fetched
		 * whole by this first read, rather than the bytes asked now and
		 * the rest one round trip later. At most a part is wasted on a
		 * program that only wanted its first bytes.
		 */
		if (off == 0 && end < r->size && r->size <= r->part_size)
			s->streak = 1;
	}
	s->last_use = r->tick;
	s->last_ms = now;
	r->stats.window = s->window;
	return s;
}

/* Drop every part no stream wants. Caller holds the lock. */
static void drop_unwanted(struct reader *r)
{
	struct part **pp = &r->parts;

	while (*pp) {
		struct part *p = *pp;
		if (p->fresh || part_wanted(r, p->index)) {
			pp = &p->next;
		} else {
			*pp = p->next;
			part_drop(r, p);
		}
	}
}

/* Add WANT parts for the window of a sequential stream and start the chain. Lock held. */
static void schedule(struct reader *r, const struct stream *s)
{
	uint64_t first = part_index(r, s->pos), last = stream_last_part(r, s);
	struct part **pp = &r->parts;
	int added = 0;

	if (!s->streak || !r->workq || !r->budget)
		return;
	for (uint64_t i = first; i <= last; i++) {
		struct part *p;
		while (*pp && (*pp)->index < i)
			pp = &(*pp)->next;
		if (*pp && (*pp)->index == i)
			continue;
		p = xcalloc(1, sizeof(*p));
		p->index = i;
		p->len = (size_t)(r->size - i * r->part_size < r->part_size ? r->size - i * r->part_size
							  : r->part_size);
		p->state = PART_WANT;
		p->next = *pp;
		*pp = p;
		added = 1;
	}
	if (added && !r->linking) {
		r->linking = 1;
		r->refs++;
		workq_submit(r->workq, link_run, r);
	}
}

/* Bytes at the start of a READY or FETCHING part that reads may use. Lock held. */
static size_t part_have(const struct part *p)
{
	return p->state == PART_READY ? p->len : p->filled;
}

static struct part *find_part(struct reader *r, uint64_t index)
{
	for (struct part *p = r->parts; p && p->index <= index; p = p->next)
		if (p->index == index)
			return p;
	return NULL;
}

/* Set *ts to ms milliseconds from now on READER_CLOCK. */
static void deadline_after(struct timespec *ts, long ms)
{
	clock_gettime(READER_CLOCK, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Take p out of r->parts. Caller holds the lock. */
static void unlink_part(struct reader *r, struct part *p)
{
	struct part **pp = &r->parts;

	while (*pp != p)
		pp = &(*pp)->next;
	*pp = p->next;
}

/* The length of a read of len bytes at off, clipped to the object (0 past its end). */
static size_t clip_len(const struct reader *r, uint64_t off, size_t len)
{
	if (off >= r->size)
		return 0;
	if (len > r->size - off)
		len = (size_t)(r->size - off);
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	return len;
}

/*
 * Account a read of [off, end) to its stream and move the window. Returns 1
 * when the read is random (its stream has no streak). Lock held.
 */
static int note_read(struct reader *r, uint64_t off, uint64_t end)
{
	struct stream *s = stream_for_read(r, off, end);

	drop_unwanted(r);
	schedule(r, s);
	if (!s->streak)
		fill_note_random(r, off);
	return !s->streak;
}

/*
 * Copy [off, off + len) into buf, waiting for parts being fetched and fetching
 * what no part holds. Called and returns with the lock held (dropped while a
 * GET runs). Returns len, or -1 with err filled.
 */
static ssize_t copy_locked(struct reader *r, uint64_t off, size_t len, char *buf, int is_random,
			   struct cm_err *err)
{
	uint64_t end = off + len, pos = off, t0;
	struct timespec deadline;
	int waiting = 0;        /* 1: deadline set; 2: it passed */

	while (pos < end) {
		uint64_t index = part_index(r, pos), part_end = (index + 1) * r->part_size;
		struct part *p = find_part(r, index);
		uint64_t run_end;
		enum cm_status st;

		if (p && (p->state == PART_READY || p->state == PART_FETCHING)) {
			/* what has arrived of the part, from pos on */
			p->fresh = 0;
			uint64_t start = index * r->part_size, have = start + part_have(p);
			uint64_t n = (end < part_end ? end : part_end) - pos;
			if (have > pos) {
				if (n > have - pos)
					n = have - pos;
				memcpy(buf + (pos - off), p->data + (pos - start), (size_t)n);
				pos += n;
				continue;
			}
			pthread_cond_wait(&r->cond, &r->lock);
			continue;       /* it may have been dropped meanwhile */
		}
		if (p && p->state == PART_FAILED) {
			/* the read-ahead failed: this read tries again itself */
			unlink_part(r, p);
			part_drop(r, p);
			p = NULL;
		}
		if (r->fill_have && r->fill_have[index] == FILL_HAVE) {
			/* in the local copy (the file lives until reader_destroy) */
			uint64_t n = (end < part_end ? end : part_end) - pos;
			int fd = r->fill_fd;
			ssize_t got;
			pthread_mutex_unlock(&r->lock);
			got = pread(fd, buf + (pos - off), (size_t)n, (off_t)pos);
			pthread_mutex_lock(&r->lock);
			if (got == (ssize_t)n) {
				r->stats.fill_reads++;
				pos += n;
				continue;
			}
			log_warn("read %s: local copy at %llu: %s", r->key, (unsigned long long)pos,
				 got < 0 ? strerror(errno) : "short read");
			r->fill_have[index] = FILL_BUSY;        /* never again; the store has it */
		}
		if (p && p->state == PART_WANT && waiting < 2) {
			/*
			 * Its memory is normally a moment away; if the budget is
			 * spent it may be long, and this read goes on without it.
			 */
			if (!waiting) {
				deadline_after(&deadline, READER_WANT_WAIT_MS);
				waiting = 1;
			}
			if (pthread_cond_timedwait(&r->cond, &r->lock, &deadline) == ETIMEDOUT)
				waiting = 2;
			continue;
		}
		/* no memory for it, or a random read: straight into buf */
		run_end = end < part_end ? end : part_end;
		while (run_end < end) {
			struct part *q = find_part(r, part_index(r, run_end));
			if ((q && q->state != PART_WANT) ||
			    (r->fill_have && r->fill_have[part_index(r, run_end)] == FILL_HAVE))
				break;
			run_end = end - run_end < r->part_size ? end : run_end + r->part_size;
		}
		pthread_mutex_unlock(&r->lock);
		t0 = now_us();
		st = fetch_range(r, NULL, -1, pos, (size_t)(run_end - pos), buf + (pos - off), err);
		pthread_mutex_lock(&r->lock);
		if (is_random && run_end - pos <= READER_FILL_SMALL) {
			r->direct_n++;
			r->direct_us += now_us() - t0;
			fill_maybe_start(r, pos);
		}
		if (st != CM_OK) {
			log_warn("read %s: %zu bytes at %llu failed: %s", r->key, len,
				 (unsigned long long)off, cm_status_str(st));
			return -1;
		}
		pos = run_end;
	}
	r->stats.bytes_served += len;
	return (ssize_t)len;
}

ssize_t reader_read(struct reader *r, uint64_t off, size_t len, char *buf, struct cm_err *err)
{
	ssize_t ret;
	int is_random;

	cm_err_clear(err);
	len = clip_len(r, off, len);
	if (len == 0)
		return 0;
	pthread_mutex_lock(&r->lock);
	is_random = note_read(r, off, off + len);
	ret = copy_locked(r, off, len, buf, is_random, err);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/*
 * Point iov at parts holding [off, end) (READY, or FETCHING with those bytes
 * in) and pin them. Returns the number of iovecs, 0 when some byte has not
 * arrived (*fetching: it is on its way), or when more than max would be
 * needed. Lock held.
 */
static int pin_ready(struct reader *r, uint64_t off, uint64_t end, struct iovec *iov,
		     struct part **pinned, int max, int *fetching)
{
	uint64_t pos = off;
	int n = 0;

	*fetching = 0;
	while (pos < end) {
		uint64_t index = part_index(r, pos), start = index * r->part_size;
		uint64_t stop = end < start + r->part_size ? end : start + r->part_size;
		struct part *p = find_part(r, index);
		int usable = p && (p->state == PART_READY || p->state == PART_FETCHING);
		if (!usable || start + part_have(p) < stop || n == max) {
			*fetching = usable && p->state == PART_FETCHING && n < max;
			return 0;
		}
		p->fresh = 0;
		iov[n].iov_base = p->data + (pos - start);
		iov[n].iov_len = (size_t)(stop - pos);
		pinned[n++] = p;
		pos = stop;
	}
	for (int i = 0; i < n; i++)
		pinned[i]->pins++;
	if (n)
		r->lending++;
	return n;
}

ssize_t reader_read_reply(struct reader *r, uint64_t off, size_t len, reader_reply_fn reply,
			  void *ctx, struct cm_err *err)
{
	struct iovec iov[READER_REPLY_IOV];
	struct part *pinned[READER_REPLY_IOV];
	int n, fetching, is_random;
	char *buf;
	ssize_t ret;

	cm_err_clear(err);
	len = clip_len(r, off, len);
	if (len == 0) {
		iov[0].iov_base = NULL;
		iov[0].iov_len = 0;
		reply(ctx, iov, 1);
		return 0;
	}
	pthread_mutex_lock(&r->lock);
	is_random = note_read(r, off, off + len);
	/* the usual case: the window has (or is about to have) every byte */
	for (;;) {
		n = pin_ready(r, off, off + len, iov, pinned, READER_REPLY_IOV, &fetching);
		if (n || !fetching)
			break;
		pthread_cond_wait(&r->cond, &r->lock);
	}
	if (n) {
		r->stats.bytes_served += len;
		pthread_mutex_unlock(&r->lock);
		reply(ctx, iov, n);
		pthread_mutex_lock(&r->lock);
		for (int i = 0; i < n; i++) {
			struct part *p = pinned[i];
			if (--p->pins || p->busy)
				continue;
			if (p->orphan)
				part_free(r, p);
			else if (p->state == PART_FAILED)
				part_release_data(r, p);
		}
		r->lending--;
		pthread_cond_broadcast(&r->cond);
		pthread_mutex_unlock(&r->lock);
		return (ssize_t)len;
	}
	pthread_mutex_unlock(&r->lock);
	buf = malloc(len);
	if (!buf) {
		cm_err_set(err, CM_E_NOMEM, "no memory for a read of %zu bytes", len);
		return -1;
	}
	pthread_mutex_lock(&r->lock);
	ret = copy_locked(r, off, len, buf, is_random, err);
	pthread_mutex_unlock(&r->lock);
	if (ret >= 0) {
		iov[0].iov_base = buf;
		iov[0].iov_len = (size_t)ret;
		reply(ctx, iov, 1);
	}
	free(buf);
	return ret;
}

int reader_adopt(struct reader *r, char *data)
{
	struct part *p;

	if (r->size == 0 || r->size > r->part_size)
		return -1;
	p = xcalloc(1, sizeof(*p));
	p->len = (size_t)r->size;
	p->data = data;
	p->state = PART_READY;
	p->fresh = 1;
	pthread_mutex_lock(&r->lock);
	p->next = r->parts;
	r->parts = p;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

void reader_stats(struct reader *r, struct reader_stats *out)
{
	pthread_mutex_lock(&r->lock);
	*out = r->stats;
	pthread_mutex_unlock(&r->lock);
}

void reader_shutdown(void)
{
	atomic_store(&reader_stopping, 1);
	while (atomic_load(&reader_fetching)) {
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
	}
}

void reader_destroy(struct reader *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->dead = 1;
	while (r->parts) {
		struct part *p = r->parts;
		r->parts = p->next;
		part_drop(r, p);
	}
	atomic_store(&r->fill_stop, 1);
	while (r->fetching || r->lending || r->fill_running)
		pthread_cond_wait(&r->cond, &r->lock);
	/* fill jobs still queued find the reader dead and touch nothing */
	if (r->fill_fd >= 0)
		fdata_disk_put_file(r->disk, r->fill_fd, r->size);
	r->fill_fd = -1;
	pthread_mutex_unlock(&r->lock);
	reader_unref(r);
}
