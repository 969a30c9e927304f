/*
 * store_fault.c - fault injection layer (see store_fault.h).
 *
 * Every intercepted operation first calls inject(), which decides under the
 * lock (deterministic countdown first, then the seeded random draw) whether
 * to fail; the call then passes to the layer below through store_pass_ops.
 */
#include "store/store_fault.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"

struct fault_store {
	pthread_mutex_t lock;
	int fail_count[STORE_OP__COUNT];        /* protected by lock */
	enum cm_status fail_status[STORE_OP__COUNT];    /* protected by lock */
	double fail_p[STORE_OP__COUNT];         /* protected by lock */
	enum cm_status random_status[STORE_OP__COUNT];  /* protected by lock */
	double truncate_p;              /* protected by lock */
	int delay_ms;                   /* protected by lock */
	uint64_t rng;                   /* protected by lock */
	uint64_t injected;              /* protected by lock */
};

static struct fault_store *ctx_of(struct store *s)
{
	return s->ctx;
}

/* xorshift64*: deterministic for a seed. Caller holds the lock. */
static double next_random(struct fault_store *f)
{
	f->rng ^= f->rng >> 12;
	f->rng ^= f->rng << 25;
	f->rng ^= f->rng >> 27;
	return (double)((f->rng * 2685821657736338717ULL) >> 11) / (double)(1ULL << 53);
}

/* Decide whether op fails now; returns the status to fail with, or CM_OK. */
static enum cm_status inject(struct store *s, enum store_op op, struct cm_err *err)
{
	struct fault_store *f = ctx_of(s);
	enum cm_status st = CM_OK;
	int delay;

	pthread_mutex_lock(&f->lock);
	delay = f->delay_ms;
	if (f->fail_count[op] > 0) {
		f->fail_count[op]--;
		st = f->fail_status[op];
	} else if (f->fail_p[op] > 0 && next_random(f) < f->fail_p[op]) {
		st = f->random_status[op];
	}
	if (st != CM_OK)
		f->injected++;
	pthread_mutex_unlock(&f->lock);
	if (delay > 0) {
		struct timespec ts = { delay / 1000, (long)(delay % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (st != CM_OK) {
		cm_err_clear(err);
		if (err) {
			err->http_status = st == CM_E_TRANSIENT ? 503 : st == CM_E_UNSUPPORTED ? 501 : 0;
			snprintf(err->code, sizeof(err->code), "%s", st == CM_E_TRANSIENT ? "SlowDown" : "Injected");
		}
		cm_err_set(err, st, "injected fault");
	}
	return st;
}

#define INTERCEPT(op, call) do { \
	enum cm_status st_ = inject(s, op, err); \
	if (st_ != CM_OK) \
		return st_; \
	return call; \
} while (0)

static enum cm_status f_list(struct store *s, const char *prefix, const char *delimiter,
			     const char *token, const char *start_after, int max_keys,
			     struct s3_list_page *out, struct cm_err *err)
{
	memset(out, 0, sizeof(*out));
	INTERCEPT(STORE_OP_LIST, store_pass_ops.list(s, prefix, delimiter, token, start_after, max_keys, out, err));
}

static enum cm_status f_head(struct store *s, const char *key, struct s3_object_head *out,
			     struct cm_err *err)
{
	memset(out, 0, sizeof(*out));
	INTERCEPT(STORE_OP_HEAD, store_pass_ops.head(s, key, out, err));
}

struct truncating_sink {
	s3_sink_fn sink;
	void *ctx;
	uint64_t budget;        /* bytes to let through before the "reset" */
	uint64_t delivered;     /* bytes the caller's sink accepted */
	int cut;
};

static int truncating_sink_fn(void *ctx, const char *data, size_t len)
{
	struct truncating_sink *t = ctx;

	if (len > t->budget) {
		if (t->budget && t->sink(t->ctx, data, (size_t)t->budget) != 0)
			return -1;
		t->delivered += t->budget;
		t->budget = 0;
		t->cut = 1;
		return -1;
	}
	if (t->sink(t->ctx, data, len) != 0)
		return -1;
	t->budget -= len;
	t->delivered += len;
	return 0;
}

static enum cm_status f_get(struct store *s, const char *key, uint64_t offset, uint64_t length,
			    s3_sink_fn sink, void *ctx, struct s3_object_head *head, uint64_t *got,
			    struct cm_err *err)
{
	struct fault_store *f = ctx_of(s);
	struct truncating_sink t = { sink, ctx, 0, 0, 0 };
	enum cm_status st = inject(s, STORE_OP_GET, err);
	int truncate;

	if (st != CM_OK) {
		if (got)
			*got = 0;
		if (head)
			memset(head, 0, sizeof(*head)); /* outputs are zeroed on failure */
		return st;
	}
	pthread_mutex_lock(&f->lock);
	truncate = f->truncate_p > 0 && next_random(f) < f->truncate_p;
	pthread_mutex_unlock(&f->lock);
	if (!truncate)
		return store_pass_ops.get(s, key, offset, length, sink, ctx, head, got, err);
	/* let half the range through, then fail as a reset connection would */
	t.budget = length == UINT64_MAX ? 1 : length / 2;
	st = store_pass_ops.get(s, key, offset, length, truncating_sink_fn, &t, head, got, err);
	if (t.cut) {
		if (head)
			s3_object_head_release(head);
		if (got)
			*got = t.delivered;     /* the store below counts only whole chunks */
		pthread_mutex_lock(&f->lock);
		f->injected++;
		pthread_mutex_unlock(&f->lock);
		cm_err_clear(err);
		return cm_err_set(err, CM_E_NETWORK, "injected reset in the middle of a GET");
	}
	return st;
}

static enum cm_status f_put(struct store *s, const char *key, const struct s3_body *body,
			    const struct s3_put_opts *opts, char **etag, struct cm_err *err)
{
	if (etag)
		*etag = NULL;
	INTERCEPT(STORE_OP_PUT, store_pass_ops.put(s, key, body, opts, etag, err));
}

static enum cm_status f_mpu_create(struct store *s, const char *key, const struct s3_put_opts *opts,
				   char **upload_id, struct cm_err *err)
{
	*upload_id = NULL;
	INTERCEPT(STORE_OP_MPU_CREATE, store_pass_ops.mpu_create(s, key, opts, upload_id, err));
}

static enum cm_status f_mpu_part(struct store *s, const char *key, const char *upload_id, int number,
				 const struct s3_body *body, char **etag, struct cm_err *err)
{
	*etag = NULL;
	INTERCEPT(STORE_OP_MPU_PART, store_pass_ops.mpu_part(s, key, upload_id, number, body, etag, err));
}

static enum cm_status f_mpu_part_copy(struct store *s, const char *key, const char *upload_id,
				      int number, const char *src_key, uint64_t first, uint64_t last,
				      char **etag, struct cm_err *err)
{
	*etag = NULL;
	INTERCEPT(STORE_OP_MPU_PART_COPY,
		  store_pass_ops.mpu_part_copy(s, key, upload_id, number, src_key, first, last, etag, err));
}

static enum cm_status f_mpu_complete(struct store *s, const char *key, const char *upload_id,
				     const struct s3_part *parts, size_t n_parts, char **etag,
				     struct cm_err *err)
{
	if (etag)
		*etag = NULL;
	INTERCEPT(STORE_OP_MPU_COMPLETE,
		  store_pass_ops.mpu_complete(s, key, upload_id, parts, n_parts, etag, err));
}

static enum cm_status f_mpu_abort(struct store *s, const char *key, const char *upload_id,
				  struct cm_err *err)
{
	INTERCEPT(STORE_OP_MPU_ABORT, store_pass_ops.mpu_abort(s, key, upload_id, err));
}

static enum cm_status f_mpu_list(struct store *s, const char *prefix, const char *key_marker,
				 const char *upload_id_marker, struct s3_upload_list *out,
				 struct cm_err *err)
{
	memset(out, 0, sizeof(*out));
	INTERCEPT(STORE_OP_MPU_LIST,
		  store_pass_ops.mpu_list(s, prefix, key_marker, upload_id_marker, out, err));
}

static enum cm_status f_copy(struct store *s, const char *key, const char *src_key,
			     const struct s3_put_opts *replace, char **etag, struct cm_err *err)
{
	if (etag)
		*etag = NULL;
	INTERCEPT(STORE_OP_COPY, store_pass_ops.copy(s, key, src_key, replace, etag, err));
}

static enum cm_status f_del(struct store *s, const char *key, struct cm_err *err)
{
	INTERCEPT(STORE_OP_DEL, store_pass_ops.del(s, key, err));
}

static enum cm_status f_del_many(struct store *s, const char *const *keys, size_t n_keys,
				 struct s3_delete_result *out, struct cm_err *err)
{
	memset(out, 0, sizeof(*out));
	INTERCEPT(STORE_OP_DEL_MANY, store_pass_ops.del_many(s, keys, n_keys, out, err));
}

static void f_destroy(struct store *s)
{
	struct fault_store *f = ctx_of(s);

	pthread_mutex_destroy(&f->lock);
	free(f);
}

static const struct store_ops fault_store_ops = {
	.name = "fault",
	.list = f_list,
	.head = f_head,
	.get = f_get,
	.put = f_put,
	.mpu_create = f_mpu_create,
	.mpu_part = f_mpu_part,
	.mpu_part_copy = f_mpu_part_copy,
	.mpu_complete = f_mpu_complete,
	.mpu_abort = f_mpu_abort,
	.mpu_list = f_mpu_list,
	.copy = f_copy,
	.del = f_del,
	.del_many = f_del_many,
	.destroy = f_destroy,
};

struct store *store_fault_create(struct store *inner, uint64_t seed)
{
	struct store *s = xcalloc(1, sizeof(*s));
	struct fault_store *f = xcalloc(1, sizeof(*f));

	pthread_mutex_init(&f->lock, NULL);
	f->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
	s->ops = &fault_store_ops;
	s->ctx = f;
	s->next = inner;
	return s;
}

void store_fault_fail_next(struct store *s, enum store_op op, int count, enum cm_status st)
{
	struct fault_store *f = ctx_of(s);

	pthread_mutex_lock(&f->lock);
	f->fail_count[op] = count;
	f->fail_status[op] = st;
	pthread_mutex_unlock(&f->lock);
}

void store_fault_set_random(struct store *s, enum store_op op, double p, enum cm_status st)
{
	struct fault_store *f = ctx_of(s);

	pthread_mutex_lock(&f->lock);
	f->fail_p[op] = p;
	f->random_status[op] = st;
	pthread_mutex_unlock(&f->lock);
}

void store_fault_set_delay(struct store *s, int ms)
{
	struct fault_store *f = ctx_of(s);

	pthread_mutex_lock(&f->lock);
	f->delay_ms = ms;
	pthread_mutex_unlock(&f->lock);
}

void store_fault_set_truncate_gets(struct store *s, double p)
{
	struct fault_store *f = ctx_of(s);

	pthread_mutex_lock(&f->lock);
	f->truncate_p = p;
	pthread_mutex_unlock(&f->lock);
}

uint64_t store_fault_injected(struct store *s)
{
	struct fault_store *f = ctx_of(s);
	uint64_t n;

	pthread_mutex_lock(&f->lock);
	n = f->injected;
	pthread_mutex_unlock(&f->lock);
	return n;
}
