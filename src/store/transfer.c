/*
 * transfer.c - memory budget, streaming uploader, parallel downloader (see
 * transfer.h for the contracts).
 *
 * Uploader state: `cur` is the part being filled (its memory already taken
 * from the budget). When it is full it becomes a job on the work queue; the
 * job uploads it (with retries), records the ETag in etags[number], gives the
 * memory back and signals. The writer thread never holds more than
 * `concurrency` parts in flight. Locking: u->lock protects in_flight, etags,
 * and the first error; everything else is the writer's.
 *
 * Downloader state: a ring of `concurrency` slots, each a part being fetched
 * into its own buffer by a job. The caller's thread waits for the oldest slot,
 * hands it to the sink, and reuses the slot for the next part.
 */
#include "store/transfer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/log.h"
#include "common/util.h"

/*
 * Buffers of at least MEMBUDGET_CACHE_MIN bytes given back with membudget_free
 * are kept (up to MEMBUDGET_CACHE of them) for the next membudget_alloc of the
 * same size: a fresh 8 MiB buffer costs 2,048 page faults and as many zeroed
 * pages, which on a streaming read or write was a third of the CPU per byte.
 * The cache counts against the limit (used + cached <= limit, unless one
 * request alone is larger) and is given back to the system first when memory
 * is wanted, and all of it whenever nothing is in use.
 */
#define MEMBUDGET_CACHE 4
#define MEMBUDGET_CACHE_MIN (1ULL << 20)

struct membudget {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t limit;
	uint64_t used;          /* protected by lock: in use (not counting the cache) */
	uint64_t peak;          /* protected by lock */
	void *cache[MEMBUDGET_CACHE];           /* protected by lock: free buffers */
	size_t cache_len[MEMBUDGET_CACHE];      /* protected by lock */
	int n_cache;            /* protected by lock */
	uint64_t cached;        /* protected by lock: sum of cache_len */
};

struct membudget *membudget_create(uint64_t limit)
{
	struct membudget *b = xcalloc(1, sizeof(*b));

	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cond, NULL);
	b->limit = limit;
	return b;
}

/*
 * Big buffers are mapped on their own and asked to be backed by huge pages:
 * the kernel's copies into and out of them (socket to part, part to the FUSE
 * reply) then pin and walk 2 MiB pages instead of 4 KiB ones.
 */
static void *big_alloc(size_t n)
{
	void *p;

	if (n < MEMBUDGET_CACHE_MIN)
		return malloc(n ? n : 1);
	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
#ifdef MADV_HUGEPAGE
	madvise(p, n, MADV_HUGEPAGE);
#endif
	return p;
}

static void big_free(void *p, size_t n)
{
	if (n < MEMBUDGET_CACHE_MIN)
		free(p);
	else if (p)
		munmap(p, n);
}

/* Free cached buffers until n more bytes fit beside what is in use (all: n = UINT64_MAX). Lock held. */
static void cache_trim(struct membudget *b, uint64_t n)
{
	while (b->n_cache && (n > b->limit || b->used + b->cached + n > b->limit)) {
		b->n_cache--;
		b->cached -= b->cache_len[b->n_cache];
		big_free(b->cache[b->n_cache], b->cache_len[b->n_cache]);
	}
}

void membudget_destroy(struct membudget *b)
{
	if (!b)
		return;
	cache_trim(b, UINT64_MAX);
	pthread_cond_destroy(&b->cond);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

/* Take n bytes once they fit. Lock held. */
static void acquire_locked(struct membudget *b, uint64_t n)
{
	cache_trim(b, n);
	while (b->used && b->used + b->cached + n > b->limit) {
		pthread_cond_wait(&b->cond, &b->lock);
		cache_trim(b, n);
	}
	b->used += n;
	if (b->used > b->peak)
		b->peak = b->used;
}

void membudget_acquire(struct membudget *b, uint64_t n)
{
	pthread_mutex_lock(&b->lock);
	acquire_locked(b, n);
	pthread_mutex_unlock(&b->lock);
}

/* Give back n bytes in use. Lock held. */
static void release_locked(struct membudget *b, uint64_t n)
{
	b->used = n > b->used ? 0 : b->used - n;
	if (!b->used)
		cache_trim(b, UINT64_MAX);      /* idle: keep nothing */
	pthread_cond_broadcast(&b->cond);
}

void membudget_release(struct membudget *b, uint64_t n)
{
	pthread_mutex_lock(&b->lock);
	release_locked(b, n);
	pthread_mutex_unlock(&b->lock);
}

/* Take a cached buffer of exactly n bytes, or NULL. Lock held. */
static void *cache_take(struct membudget *b, size_t n)
{
	for (int i = 0; i < b->n_cache; i++) {
		if (b->cache_len[i] == n) {
			void *p = b->cache[i];
			b->n_cache--;
			b->cache[i] = b->cache[b->n_cache];
			b->cache_len[i] = b->cache_len[b->n_cache];
			b->cached -= n;
			return p;
		}
	}
	return NULL;
}

/*
 * Count n bytes in use and let go of the lock (held on entry): p, a buffer
 * from the cache, or a new one (NULL, with nothing counted, if that fails).
 */
static void *take_unlock(struct membudget *b, void *p, size_t n)
{
	b->used += n;
	if (b->used > b->peak)
		b->peak = b->used;
	pthread_mutex_unlock(&b->lock);
	if (!p) {
		p = big_alloc(n);
		if (!p)
			membudget_release(b, n);
	}
	return p;
}

void *membudget_alloc(struct membudget *b, size_t n)
{
	void *p;

	pthread_mutex_lock(&b->lock);
	/* like acquire_locked, but a buffer given back while we wait is taken as it is */
	for (;;) {
		p = cache_take(b, n);
		if (p)
			break;
		cache_trim(b, n);
		if (!b->used || b->used + b->cached + n <= b->limit)
			break;
		pthread_cond_wait(&b->cond, &b->lock);
	}
	return take_unlock(b, p, n);
}

void *membudget_try_alloc(struct membudget *b, size_t n)
{
	void *p;

	pthread_mutex_lock(&b->lock);
	p = cache_take(b, n);
	if (!p) {
		cache_trim(b, n);
		if (b->used + b->cached + n > b->limit) {
			pthread_mutex_unlock(&b->lock);
			return NULL;
		}
	}
	return take_unlock(b, p, n);
}

void membudget_free(struct membudget *b, void *p, size_t n)
{
	if (!p)
		return;
	pthread_mutex_lock(&b->lock);
	b->used = n > b->used ? 0 : b->used - n;
	if (b->used && n >= MEMBUDGET_CACHE_MIN && b->n_cache < MEMBUDGET_CACHE) {
		b->cache[b->n_cache] = p;
		b->cache_len[b->n_cache++] = n;
		b->cached += n;
		p = NULL;
	}
	release_locked(b, 0);
	pthread_mutex_unlock(&b->lock);
	big_free(p, n);
}

/*
 * Take n bytes if membudget_acquire would take them without waiting. For a
 * caller that already holds budget it can only give back itself (the
 * downloader's window): waiting there could wait forever.
 */
static int membudget_try_acquire(struct membudget *b, uint64_t n)
{
	int ok;

	pthread_mutex_lock(&b->lock);
	cache_trim(b, n);
	ok = !b->used || b->used + b->cached + n <= b->limit;
	if (ok) {
		b->used += n;
		if (b->used > b->peak)
			b->peak = b->used;
	}
	pthread_mutex_unlock(&b->lock);
	return ok;
}

uint64_t membudget_used(struct membudget *b)
{
	uint64_t n;

	pthread_mutex_lock(&b->lock);
	n = b->used;
	pthread_mutex_unlock(&b->lock);
	return n;
}

uint64_t membudget_peak(struct membudget *b)
{
	uint64_t n;

	pthread_mutex_lock(&b->lock);
	n = b->peak;
	pthread_mutex_unlock(&b->lock);
	return n;
}

uint64_t transfer_part_size(uint64_t base, int number)
{
	int tier = (number - 1) / 1000;
	uint64_t size = base;

	while (tier-- > 0 && size < TRANSFER_MAX_PART_SIZE)
		size *= 2;
	return size > TRANSFER_MAX_PART_SIZE ? TRANSFER_MAX_PART_SIZE : size;
}

struct uploader {
	struct store *store;
	char *key;
	char *content_type;
	struct s3_meta meta;
	struct s3_put_opts put_opts;
	uint64_t base_part_size;
	int concurrency;
	int part_retries;
	struct membudget *budget;
	struct workq *workq;

	char *cur;              /* the part being filled; writer only */
	size_t cur_len, cur_cap;        /* writer only */
	int cur_number;         /* part number of cur; writer only */
	char *upload_id;        /* NULL until the first part goes; writer only (read by jobs after) */
	uint64_t total;         /* writer only */
	int finished;           /* writer only */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	int in_flight;          /* protected by lock */
	char **etags;           /* protected by lock; index = part number */
	int n_etags;            /* protected by lock: allocated entries */
	struct cm_err first_err;        /* protected by lock; status CM_OK while all is well */
};

struct part_job {
	struct uploader *u;
	char *data;
	size_t len;
	size_t cap;             /* what was taken from the budget */
	int number;
};

struct uploader *uploader_create(struct store *s, const char *key, const struct upload_opts *opts)
{
	struct uploader *u = xcalloc(1, sizeof(*u));

	u->store = s;
	u->key = xstrdup(key);
	u->base_part_size = opts->part_size ? opts->part_size : 8ULL << 20;
	u->concurrency = opts->concurrency > 0 ? opts->concurrency : 4;
	u->part_retries = opts->part_retries == 0 ? 2 : opts->part_retries < 0 ? 0 : opts->part_retries;
	u->budget = opts->budget;
	u->workq = opts->workq;
	if (opts->put_opts) {
		if (opts->put_opts->content_type)
			u->content_type = xstrdup(opts->put_opts->content_type);
		for (size_t i = 0; opts->put_opts->meta && i < opts->put_opts->meta->n; i++)
			s3_meta_set(&u->meta, opts->put_opts->meta->names[i], opts->put_opts->meta->values[i]);
	}
	u->put_opts.content_type = u->content_type;
	u->put_opts.meta = &u->meta;
	u->cur_number = 1;
	pthread_mutex_init(&u->lock, NULL);
	pthread_cond_init(&u->cond, NULL);
	return u;
}

uint64_t uploader_bytes(const struct uploader *u)
{
	return u->total;
}

/* Record the upload's first error (later ones are only logged). */
static void set_error(struct uploader *u, const struct cm_err *err)
{
	pthread_mutex_lock(&u->lock);
	if (u->first_err.status == CM_OK)
		u->first_err = *err;
	pthread_mutex_unlock(&u->lock);
}

static enum cm_status get_error(struct uploader *u, struct cm_err *err)
{
	enum cm_status st;

	pthread_mutex_lock(&u->lock);
	st = u->first_err.status;
	if (st != CM_OK && err)
		*err = u->first_err;
	pthread_mutex_unlock(&u->lock);
	return st;
}

static void part_job_run(void *arg)
{
	struct part_job *job = arg;
	struct uploader *u = job->u;
	struct s3_body body = { .mem = job->data, .fd = -1, .len = job->len };
	struct cm_err err;
	char *etag = NULL;
	enum cm_status st = CM_OK;

	for (int attempt = 0; attempt <= u->part_retries; attempt++) {
		if (get_error(u, NULL) != CM_OK) {
			st = CM_E_CANCELLED; /* another part failed: stop sending */
			break;
		}
		st = store_mpu_part(u->store, u->key, u->upload_id, job->number, &body, &etag, &err);
		if (st == CM_OK || !cm_status_retryable(st))
			break;
		log_info("upload %s: part %d failed (%s), retrying", u->key, job->number, cm_status_str(st));
	}
	membudget_free(u->budget, job->data, job->cap);
	if (st != CM_OK && st != CM_E_CANCELLED) {
		log_warn("upload %s: part %d failed: %s", u->key, job->number, cm_status_str(st));
		set_error(u, &err);
	}
	pthread_mutex_lock(&u->lock);
	if (st == CM_OK) {
		if (job->number >= u->n_etags) {
			int n = job->number * 2 + 16;
			u->etags = xrealloc(u->etags, (size_t)n * sizeof(*u->etags));
			memset(u->etags + u->n_etags, 0, (size_t)(n - u->n_etags) * sizeof(*u->etags));
			u->n_etags = n;
		}
		u->etags[job->number] = etag;
	}
	u->in_flight--;
	pthread_cond_broadcast(&u->cond);
	pthread_mutex_unlock(&u->lock);
	free(job);
}

/* Send cur as a part (creating the multipart upload first if needed). */
static enum cm_status dispatch_part(struct uploader *u, struct cm_err *err)
{
	struct part_job *job;
	enum cm_status st;

	if (!u->upload_id) {
		st = store_mpu_create(u->store, u->key, &u->put_opts, &u->upload_id, err);
		if (st != CM_OK) {
			set_error(u, err);
			return st;
		}
	}
	pthread_mutex_lock(&u->lock);
	while (u->in_flight >= u->concurrency)
		pthread_cond_wait(&u->cond, &u->lock);
	u->in_flight++;
	pthread_mutex_unlock(&u->lock);
	job = xcalloc(1, sizeof(*job));
	job->u = u;
	job->data = u->cur;
	job->len = u->cur_len;
	job->cap = u->cur_cap;
	job->number = u->cur_number++;
	u->cur = NULL;
	u->cur_len = u->cur_cap = 0;
	workq_submit(u->workq, part_job_run, job);
	return CM_OK;
}

enum cm_status uploader_write(struct uploader *u, const void *data, size_t len, struct cm_err *err)
{
	const char *p = data;
	enum cm_status st = get_error(u, err);

	if (st != CM_OK)
		return st;
	while (len) {
		size_t room, n;
		if (!u->cur) {
			if (u->cur_number > TRANSFER_MAX_PARTS)
				return cm_err_set(err, CM_E_TOO_LARGE, "file too large for a multipart upload");
			u->cur_cap = (size_t)transfer_part_size(u->base_part_size, u->cur_number);
			u->cur = membudget_alloc(u->budget, u->cur_cap);
			if (!u->cur) {
				u->cur_cap = 0;
				return cm_err_set(err, CM_E_NOMEM, "no memory for an upload part");
			}
			u->cur_len = 0;
		}
		room = u->cur_cap - u->cur_len;
		n = len < room ? len : room;
		memcpy(u->cur + u->cur_len, p, n);
		u->cur_len += n;
		u->total += n;
		p += n;
		len -= n;
		if (u->cur_len == u->cur_cap) {
			st = dispatch_part(u, err);
			if (st != CM_OK)
				return st;
		}
	}
	return CM_OK;
}

/* Wait until no part is in flight. */
static void wait_idle(struct uploader *u)
{
	pthread_mutex_lock(&u->lock);
	while (u->in_flight)
		pthread_cond_wait(&u->cond, &u->lock);
	pthread_mutex_unlock(&u->lock);
}

static void release_cur(struct uploader *u)
{
	if (u->cur) {
		membudget_free(u->budget, u->cur, u->cur_cap);
		u->cur = NULL;
		u->cur_len = u->cur_cap = 0;
	}
}

/* Abort the multipart upload, tolerating servers that cannot. */
static void abort_upload(struct uploader *u)
{
	struct cm_err err;
	enum cm_status st;

	if (!u->upload_id)
		return;
	st = store_mpu_abort(u->store, u->key, u->upload_id, &err);
	if (st == CM_E_UNSUPPORTED)
		log_warn("upload %s: the server cannot abort multipart uploads; upload %s is left to expire",
			 u->key, u->upload_id);
	else if (st != CM_OK && st != CM_E_NOT_FOUND)
		log_warn("upload %s: abort failed: %s", u->key, cm_status_str(st));
	free(u->upload_id);
	u->upload_id = NULL;
}

enum cm_status uploader_finish(struct uploader *u, char **etag, struct cm_err *err)
{
	struct s3_part *parts = NULL;
	enum cm_status st;
	int n = 0;

	if (etag)
		*etag = NULL;
	u->finished = 1;
	st = get_error(u, err);
	if (st != CM_OK)
		goto out_abort;
	if (!u->upload_id) {
		/* everything fits in one part: a single PUT */
		struct s3_body body = { .mem = u->cur, .fd = -1, .len = u->cur_len };
		st = store_put(u->store, u->key, &body, &u->put_opts, etag, err);
		release_cur(u);
		return st;
	}
	if (u->cur_len) {
		st = dispatch_part(u, err);
		if (st != CM_OK)
			goto out_abort;
	} else {
		release_cur(u);
	}
	wait_idle(u);
	st = get_error(u, err);
	if (st != CM_OK)
		goto out_abort;
	parts = xcalloc((size_t)u->cur_number, sizeof(*parts));
	pthread_mutex_lock(&u->lock);
	for (int i = 1; i < u->cur_number; i++) {
		if (i >= u->n_etags || !u->etags[i]) {
			pthread_mutex_unlock(&u->lock);
			st = cm_err_set(err, CM_E_PROTOCOL, "part %d has no ETag", i);
			goto out_abort;
		}
		parts[n].number = i;
		parts[n].etag = u->etags[i];
		n++;
	}
	pthread_mutex_unlock(&u->lock);
	st = store_mpu_complete(u->store, u->key, u->upload_id, parts, (size_t)n, etag, err);
	free(parts);
	parts = NULL;
	if (st != CM_OK)
		goto out_abort;
	free(u->upload_id);
	u->upload_id = NULL;
	return CM_OK;
out_abort:
	free(parts);
	wait_idle(u);
	release_cur(u);
	abort_upload(u);
	return st;
}

void uploader_abort(struct uploader *u)
{
	struct cm_err err;

	cm_err_clear(&err);     /* first_err is handed to callers whole */
	cm_err_set(&err, CM_E_CANCELLED, "upload abandoned");
	set_error(u, &err);
	wait_idle(u);
	release_cur(u);
	abort_upload(u);
	u->finished = 1;
}

void uploader_destroy(struct uploader *u)
{
	if (!u)
		return;
	if (!u->finished)
		uploader_abort(u);
	wait_idle(u);
	release_cur(u);
	for (int i = 0; i < u->n_etags; i++)
		free(u->etags[i]);
	free(u->etags);
	free(u->upload_id);
	free(u->key);
	free(u->content_type);
	s3_meta_release(&u->meta);
	pthread_cond_destroy(&u->cond);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

/* ---- downloader ---- */

struct dl_slot {
	char *data;
	uint64_t offset;
	size_t len;             /* bytes wanted */
	size_t got;             /* bytes received (job only until done) */
	int busy;               /* a job owns the slot; protected by dl->lock */
	int done;               /* protected by dl->lock */
	enum cm_status st;      /* valid when done */
	struct cm_err err;      /* valid when done */
};

struct dl {
	struct store *store;
	const char *key;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int cancel;             /* protected by lock */
};

struct dl_job {
	struct dl *dl;
	struct dl_slot *slot;
};

static int slot_sink(void *ctx, const char *data, size_t len)
{
	struct dl_slot *slot = ctx;

	if (slot->got + len > slot->len)
		return -1;
	memcpy(slot->data + slot->got, data, len);
	slot->got += len;
	return 0;
}

static void dl_job_run(void *arg)
{
	struct dl_job *job = arg;
	struct dl *dl = job->dl;
	struct dl_slot *slot = job->slot;
	enum cm_status st = CM_OK;
	int cancel;

	pthread_mutex_lock(&dl->lock);
	cancel = dl->cancel;
	pthread_mutex_unlock(&dl->lock);
	if (cancel) {
		st = CM_E_CANCELLED;
	} else {
		/* a GET cut short is resumed from where it stopped */
		for (int attempt = 0; attempt < 3 && slot->got < slot->len; attempt++) {
			st = store_get(dl->store, dl->key, slot->offset + slot->got, slot->len - slot->got,
				       slot_sink, slot, NULL, NULL, &slot->err);
			if (st == CM_OK || !cm_status_retryable(st))
				break;
		}
		if (st == CM_OK && slot->got != slot->len)
			st = cm_err_set(&slot->err, CM_E_PROTOCOL, "short read: %zu of %zu bytes", slot->got,
					slot->len);
	}
	pthread_mutex_lock(&dl->lock);
	slot->st = st;
	slot->done = 1;
	pthread_cond_broadcast(&dl->cond);
	pthread_mutex_unlock(&dl->lock);
	free(job);
}

enum cm_status download_to_sink(struct store *s, const char *key, uint64_t size,
				s3_sink_fn sink, void *ctx, const struct download_opts *opts,
				struct cm_err *err)
{
	uint64_t part = opts->part_size ? opts->part_size : 8ULL << 20;
	int n_slots = opts->concurrency > 0 ? opts->concurrency : 8;
	struct dl_slot *slots = xcalloc((size_t)n_slots, sizeof(*slots));
	struct dl dl = { .store = s, .key = key };
	uint64_t next_offset = 0, delivered = 0;
	enum cm_status st = CM_OK;
	int head = 0, held = 0; /* held: busy slots, each holding its len of the budget */

	cm_err_clear(err);
	pthread_mutex_init(&dl.lock, NULL);
	pthread_cond_init(&dl.cond, NULL);
	/* fill the window, then deliver in order and refill */
	for (;;) {
		for (int i = 0; i < n_slots && next_offset < size && st == CM_OK; i++) {
			struct dl_slot *slot = &slots[(head + i) % n_slots];
			struct dl_job *job;
			if (slot->busy)
				continue;
			memset(slot, 0, sizeof(*slot));
			slot->offset = next_offset;
			slot->len = (size_t)(size - next_offset < part ? size - next_offset : part);
			/*
			 * Only this thread gives back what the busy slots hold, so wait
			 * for memory only when none is busy; otherwise make do with a
			 * smaller window until the head part is delivered.
			 */
			if (!held)
				membudget_acquire(opts->budget, slot->len);
			else if (!membudget_try_acquire(opts->budget, slot->len))
				break;
			slot->data = malloc(slot->len);
			if (!slot->data) {
				membudget_release(opts->budget, slot->len);
				st = cm_err_set(err, CM_E_NOMEM, "no memory for a read buffer");
				break;
			}
			slot->busy = 1;
			held++;
			next_offset += slot->len;
			job = xcalloc(1, sizeof(*job));
			job->dl = &dl;
			job->slot = slot;
			workq_submit(opts->workq, dl_job_run, job);
		}
		if (!slots[head].busy)
			break;
		pthread_mutex_lock(&dl.lock);
		while (!slots[head].done)
			pthread_cond_wait(&dl.cond, &dl.lock);
		pthread_mutex_unlock(&dl.lock);
		if (st == CM_OK && slots[head].st != CM_OK) {
			st = slots[head].st;
			if (err)
				*err = slots[head].err;
			err = NULL;
			pthread_mutex_lock(&dl.lock);
			dl.cancel = 1;
			pthread_mutex_unlock(&dl.lock);
		}
		if (st == CM_OK && sink(ctx, slots[head].data, slots[head].len) != 0) {
			st = cm_err_set(err, CM_E_CANCELLED, "the receiver stopped the transfer");
			err = NULL;
			pthread_mutex_lock(&dl.lock);
			dl.cancel = 1;
			pthread_mutex_unlock(&dl.lock);
		}
		if (st == CM_OK)
			delivered += slots[head].len;
		free(slots[head].data);
		membudget_release(opts->budget, slots[head].len);
		slots[head].data = NULL;
		slots[head].busy = 0;
		held--;
		head = (head + 1) % n_slots;
	}
	pthread_cond_destroy(&dl.cond);
	pthread_mutex_destroy(&dl.lock);
	free(slots);
	(void)delivered;
	return st;
}
