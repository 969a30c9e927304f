/*
 * test_reader.c - unit tests of fs/reader.c: sequential detection, the
 * prefetch window, the memory budget and error handling, over the in-memory
 * store (with the fault layer on top, and for concurrency a counting layer).
 *
 * Data is deterministic (byte i = (i*31 + i/7) & 0xff) and every byte read is
 * compared. Part sizes are small (64 KiB..1 MiB) so the suite stays fast
 * under the sanitizers. Concurrency is checked by counting GETs in flight in a
 * layer built on store_pass_ops, not by timing. An alarm turns a hang (a lost
 * wake-up, a budget deadlock) into a failure.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "common/workq.h"
#include "fs/fdata.h"
#include "fs/reader.h"
#include "store/store.h"
#include "store/store_fault.h"
#include "store/store_mem.h"
#include "store/transfer.h"
#include "tharness.h"

#define KIB (1024ULL)
#define MIB (1024ULL * 1024ULL)
#define KEY "obj"

/* ---- helpers ---- */

static unsigned char pattern_byte(uint64_t i)
{
	return (unsigned char)((i * 31 + i / 7) & 0xff);
}

/* n bytes of the pattern from absolute position 0 (malloc'd). */
static unsigned char *pattern(size_t n)
{
	unsigned char *p = xmalloc(n ? n : 1);

	for (size_t i = 0; i < n; i++)
		p[i] = pattern_byte(i);
	return p;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* A layer that records how many GETs are in flight at once. */
struct count_ctx {
	atomic_int in_flight;
	atomic_int max_in_flight;
};

static enum cm_status count_get(struct store *s, const char *key, uint64_t offset, uint64_t length,
				s3_sink_fn sink, void *ctx, struct s3_object_head *head, uint64_t *got,
				struct cm_err *err)
{
	struct count_ctx *c = s->ctx;
	int now = atomic_fetch_add(&c->in_flight, 1) + 1;
	int max = atomic_load(&c->max_in_flight);
	enum cm_status st;

	while (now > max && !atomic_compare_exchange_weak(&c->max_in_flight, &max, now))
		;
	st = store_pass_ops.get(s, key, offset, length, sink, ctx, head, got, err);
	atomic_fetch_sub(&c->in_flight, 1);
	return st;
}

static void count_destroy(struct store *s)
{
	free(s->ctx);
}

static struct store_ops count_ops;

/* A test layer with ops and ctx over inner (which it owns). */
static struct store *layer_new(struct store *inner, const struct store_ops *ops, void *ctx)
{
	struct store *s = xcalloc(1, sizeof(*s));

	s->ops = ops;
	s->ctx = ctx;
	s->next = inner;
	return s;
}

/* Takes ownership of inner. */
static struct store *count_create(struct store *inner)
{
	struct count_ctx *c = xcalloc(1, sizeof(*c));

	count_ops = store_pass_ops;
	count_ops.name = "count";
	count_ops.get = count_get;
	count_ops.destroy = count_destroy;
	atomic_init(&c->in_flight, 0);
	atomic_init(&c->max_in_flight, 0);
	return layer_new(inner, &count_ops, c);
}

/*
 * A layer whose GETs stop after gate_after bytes of their range and wait
 * until the test opens the gate: a slow network, without timing.
 */
struct gate_ctx {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t gate_after;
	int open;
};

struct gate_sink {
	struct gate_ctx *g;
	s3_sink_fn sink;
	void *ctx;
	uint64_t passed;
};

static int gate_sink_fn(void *ctx, const char *data, size_t len)
{
	struct gate_sink *k = ctx;

	if (k->passed + len > k->g->gate_after) {
		pthread_mutex_lock(&k->g->lock);
		while (!k->g->open)
			pthread_cond_wait(&k->g->cond, &k->g->lock);
		pthread_mutex_unlock(&k->g->lock);
	}
	k->passed += len;
	return k->sink(k->ctx, data, len);
}

static enum cm_status gate_get(struct store *s, const char *key, uint64_t offset, uint64_t length,
			       s3_sink_fn sink, void *ctx, struct s3_object_head *head, uint64_t *got,
			       struct cm_err *err)
{
	struct gate_sink k = { s->ctx, sink, ctx, 0 };

	return store_pass_ops.get(s, key, offset, length, gate_sink_fn, &k, head, got, err);
}

static void gate_open(struct store *s)
{
	struct gate_ctx *g = s->ctx;

	pthread_mutex_lock(&g->lock);
	g->open = 1;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static void gate_destroy(struct store *s)
{
	struct gate_ctx *g = s->ctx;

	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

static struct store_ops gate_ops;

/* Takes ownership of inner. */
static struct store *gate_create(struct store *inner, uint64_t gate_after)
{
	struct gate_ctx *g = xcalloc(1, sizeof(*g));

	gate_ops = store_pass_ops;
	gate_ops.name = "gate";
	gate_ops.get = gate_get;
	gate_ops.destroy = gate_destroy;
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	g->gate_after = gate_after;
	return layer_new(inner, &gate_ops, g);
}

/* A mem store holding KEY (size bytes of the pattern), a fault layer, a pool, a budget. */
struct env {
	struct store *mem, *fault, *top;
	struct workq *wq;
	struct membudget *budget;
	unsigned char *data;
	size_t size;
};

static void env_init(struct env *e, size_t size, int threads, uint64_t budget, int counting)
{
	memset(e, 0, sizeof(*e));
	e->size = size;
	e->data = pattern(size);
	e->mem = store_mem_create();
	store_mem_put_bytes(e->mem, KEY, e->data, size);
	e->fault = store_fault_create(e->mem, 42);
	e->top = counting ? count_create(e->fault) : e->fault;
	e->wq = workq_create(threads);
	e->budget = membudget_create(budget);
}

/* Everything that holds memory must be gone: the readers first. */
static void env_release(struct env *e)
{
	workq_destroy(e->wq);
	CHECK_INT(membudget_used(e->budget), 0);
	membudget_destroy(e->budget);
	store_destroy(e->top);
	free(e->data);
}

static struct reader_opts opts_of(struct env *e, uint64_t part, uint64_t min_window,
				  uint64_t max_window)
{
	struct reader_opts o = {
		.part_size = part,
		.min_window = min_window,
		.max_window = max_window,
		.budget = e->budget,
		.workq = e->wq,
	};
	return o;
}

static struct reader *open_reader(struct env *e, const struct reader_opts *o)
{
	return reader_create(e->top, KEY, e->size, NULL, o);
}

/*
 * Read [off, end) in chunk-sized reads, checking every byte. Returns the
 * number of bytes read, stopping at the first failure (err filled).
 */
static uint64_t read_span(struct env *e, struct reader *r, uint64_t off, uint64_t end, size_t chunk,
			  struct cm_err *err)
{
	char *buf = xmalloc(chunk);
	uint64_t pos = off;

	while (pos < end) {
		size_t want = end - pos < chunk ? (size_t)(end - pos) : chunk;
		ssize_t n = reader_read(r, pos, want, buf, err);
		if (n <= 0)
			break;
		if (memcmp(buf, e->data + pos, (size_t)n) != 0) {
			TH_FAIL_("bytes differ in [%llu, +%zd)", (unsigned long long)pos, n);
			break;
		}
		pos += (uint64_t)n;
	}
	free(buf);
	return pos - off;
}

/* ---- tests ---- */

TEST(sequential_read_whole_object)
{
	struct env e;
	struct reader_opts o;
	struct reader *r;
	struct reader_stats st;
	struct cm_err err;
	uint64_t gets, parts;
	char buf[4096];

	env_init(&e, 40 * MIB, 4, 64 * MIB, 0);
	o = opts_of(&e, 1 * MIB, 1 * MIB, 8 * MIB);
	r = open_reader(&e, &o);
	CHECK_INT(read_span(&e, r, 0, e.size, 128 * KIB, &err), e.size);
	reader_stats(r, &st);
	gets = store_mem_calls(e.mem, STORE_OP_GET);
	parts = e.size / MIB;
	/* about one GET per part, never one per read (there are 320 reads) */
	CHECK(gets >= parts);
	CHECK(gets <= parts + parts / 2);
	CHECK_INT(st.gets, gets);
	CHECK_INT(st.bytes_served, e.size);
	CHECK(st.bytes_fetched >= e.size);
	CHECK(st.bytes_fetched <= e.size + e.size / 4);
	CHECK_INT(st.window, 8 * MIB);
	CHECK(membudget_peak(e.budget) <= 8 * MIB + 2 * MIB);
	CHECK_INT(reader_read(r, e.size, 10, buf, &err), 0);

	/* a jump shrinks the window back to its start */
	CHECK_INT(reader_read(r, 3 * MIB + 5, sizeof(buf), buf, &err), sizeof(buf));
	CHECK_MEM(buf, e.data + 3 * MIB + 5, sizeof(buf));
	reader_stats(r, &st);
	CHECK_INT(st.window, 1 * MIB);
	reader_destroy(r);
	env_release(&e);
}

TEST(window_grows_fetches_in_parallel)
{
	struct env e;
	struct reader_opts o;
	struct reader *r;
	struct reader_stats st;
	struct count_ctx *c;
	struct cm_err err;

	env_init(&e, 4 * MIB, 4, 16 * MIB, 1);
	c = e.top->ctx;
	store_fault_set_delay(e.fault, 5);
	o = opts_of(&e, 64 * KIB, 64 * KIB, 1 * MIB);
	r = open_reader(&e, &o);
	CHECK_INT(read_span(&e, r, 0, e.size, 128 * KIB, &err), e.size);
	reader_stats(r, &st);
	CHECK_INT(st.window, 1 * MIB);
	CHECK(atomic_load(&c->max_in_flight) > 1);
	/* 64 parts; well under the 32 reads' worth of 5 ms round trips each */
	CHECK(st.gets <= 64 + 16);
	reader_destroy(r);
	env_release(&e);
}

TEST(adjacent_reads_start_prefetch)
{
	struct env e;
	struct reader_opts o;
	struct reader *r;
	struct cm_err err;
	char buf[128 * 1024];
	uint64_t calls = 0;

	env_init(&e, 4 * MIB, 2, 16 * MIB, 0);
	o = opts_of(&e, 1 * MIB, 0, 4 * MIB);

	/* two reads far apart: random, nothing fetched in the background */
	r = open_reader(&e, &o);
	CHECK_INT(reader_read(r, 0, sizeof(buf), buf, &err), sizeof(buf));
	CHECK_INT(reader_read(r, 2 * MIB, sizeof(buf), buf, &err), sizeof(buf));
	CHECK_MEM(buf, e.data + 2 * MIB, sizeof(buf));
	sleep_ms(50);
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_GET), 2);
	reader_destroy(r);

	/* two adjacent 128 KiB reads: a streak, parts are fetched without further reads */
	store_mem_reset_calls(e.mem);
	r = open_reader(&e, &o);
	CHECK_INT(reader_read(r, 0, sizeof(buf), buf, &err), sizeof(buf));
	CHECK_INT(reader_read(r, sizeof(buf), sizeof(buf), buf, &err), sizeof(buf));
	CHECK_MEM(buf, e.data + sizeof(buf), sizeof(buf));
	for (int i = 0; i < 200 && calls < 3; i++) {
		calls = store_mem_calls(e.mem, STORE_OP_GET);
		if (calls < 3)
			sleep_ms(5);
	}
	CHECK(calls >= 3);
	/* the rest of the first part costs no more GETs */
	calls = store_mem_calls(e.mem, STORE_OP_GET);
	CHECK_INT(read_span(&e, r, 2 * sizeof(buf), 1 * MIB, sizeof(buf), &err), 1 * MIB - 2 * sizeof(buf));
	CHECK(store_mem_calls(e.mem, STORE_OP_GET) <= calls + 1);
	reader_destroy(r);
	env_release(&e);
}

/*
 * A first read at offset 0 of an object that fits in one part fetches it
 * whole, so reading it on costs no second round trip; the same read at
 * another offset, or of a bigger object, fetches only the bytes asked.
 */
TEST(small_object_fetched_whole_from_start)
{
	struct env e;
	struct reader_opts o;
	struct reader *r;
	struct reader_stats st;
	struct cm_err err;
	char buf[64 * 1024];

	env_init(&e, 700 * KIB, 2, 16 * MIB, 0);
	o = opts_of(&e, 1 * MIB, 0, 4 * MIB);
	r = open_reader(&e, &o);
	CHECK_INT(reader_read(r, 0, sizeof(buf), buf, &err), sizeof(buf));
	CHECK_MEM(buf, e.data, sizeof(buf));
	CHECK_INT(read_span(&e, r, sizeof(buf), e.size, sizeof(buf), &err), e.size - sizeof(buf));
	reader_stats(r, &st);
	CHECK_INT(st.gets, 1);
	CHECK_INT(st.bytes_fetched, e.size);
	reader_destroy(r);

	/* a first read elsewhere: just its bytes */
	r = open_reader(&e, &o);
	CHECK_INT(reader_read(r, 100 * KIB, sizeof(buf), buf, &err), sizeof(buf));
	CHECK_MEM(buf, e.data + 100 * KIB, sizeof(buf));
	sleep_ms(20);
	reader_stats(r, &st);
	CHECK_INT(st.bytes_fetched, sizeof(buf));
	reader_destroy(r);
	env_release(&e);

	/* bigger than a part: the first read at 0 fetches its bytes only */
	env_init(&e, 3 * MIB, 2, 16 * MIB, 0);
	r = open_reader(&e, &o);
	CHECK_INT(reader_read(r, 0, sizeof(buf), buf, &err), sizeof(buf));
	sleep_ms(20);
	reader_stats(r, &st);
	CHECK_INT(st.bytes_fetched, sizeof(buf));
	reader_destroy(r);
	env_release(&e);
}

static ssize_t reply_read(struct env *e, struct reader *r, uint64_t off, size_t len, int delay_ms);

struct bg_read {
	struct env *e;
	struct reader *r;
	uint64_t off;
	size_t len;
	atomic_int done;
	ssize_t n;
};

static void *bg_read_thread(void *arg)
{
	struct bg_read *b = arg;
	struct cm_err err;
	char *buf = xmalloc(b->len);

	b->n = reader_read(b->r, b->off, b->len, buf, &err);
	if (b->n != (ssize_t)b->len || memcmp(buf, b->e->data + b->off, b->len) != 0)
		TH_FAIL_("background read at %llu: %zd bytes or wrong ones",
			 (unsigned long long)b->off, b->n);
	free(buf);
	atomic_store(&b->done, 1);
	return NULL;
}

/*
 * A part's bytes reach reads as they arrive: with the GET of the part held
 * after its first 512 KiB, reads (copied and lent) of bytes before that are
 * answered, a read of bytes after it waits until they come, and no read
 * fetches anything itself.
 */
TEST(reads_served_while_part_arrives)
{
	struct env e;
	struct reader_opts o;
	struct reader *r;
	struct reader_stats st;
	struct cm_err err;
	struct bg_read b;
	pthread_t t;
	char buf[128 * 1024];

	env_init(&e, 2 * MIB, 2, 16 * MIB, 0);
	e.top = gate_create(e.top, 512 * KIB);
	o = opts_of(&e, 2 * MIB, 0, 4 * MIB);
	r = open_reader(&e, &o);
	/* offset 0 of a one-part object: the whole part is fetched */
	CHECK_INT(reader_read(r, 0, sizeof(buf), buf, &err), sizeof(buf));
	CHECK_MEM(buf, e.data, sizeof(buf));
	CHECK_INT(reply_read(&e, r, sizeof(buf), 256 * KIB, 0), 256 * KIB);
	CHECK_INT(reader_read(r, 384 * KIB, sizeof(buf), buf, &err), sizeof(buf));
	CHECK_MEM(buf, e.data + 384 * KIB, sizeof(buf));

	memset(&b, 0, sizeof(b));
	b.e = &e;
	b.r = r;
	b.off = 1 * MIB;
	b.len = 256 * KIB;
	atomic_init(&b.done, 0);
	REQUIRE(pthread_create(&t, NULL, bg_read_thread, &b) == 0);
	sleep_ms(50);
	CHECK(!atomic_load(&b.done));
	gate_open(e.top);
	pthread_join(t, NULL);
	CHECK(atomic_load(&b.done));
	CHECK_INT(read_span(&e, r, 1 * MIB + 256 * KIB, e.size, 100 * KIB, &err), e.size - MIB - 256 * KIB);
	reader_stats(r, &st);
	CHECK_INT(st.gets, 1);
	CHECK_INT(st.bytes_fetched, e.size);
	reader_destroy(r);
	env_release(&e);
}

TEST(out_of_order_reads_stay_sequential)
{
	struct env e;
	struct reader_opts o;
	struct reader *r;
	struct reader_stats st;
	struct cm_err err;
	uint64_t chunk = 128 * KIB, n_chunks;

	env_init(&e, 4 * MIB, 4, 16 * MIB, 0);
	n_chunks = e.size / chunk;
	o = opts_of(&e, 256 * KIB, 0, 1 * MIB);
	r = open_reader(&e, &o);
	/* as FUSE may deliver the kernel's read-ahead: 0, 1, then 3 2, 5 4, ... */
	CHECK_INT(read_span(&e, r, 0, 2 * chunk, chunk, &err), 2 * chunk);
	for (uint64_t i = 2; i + 1 < n_chunks; i += 2) {
		CHECK_INT(read_span(&e, r, (i + 1) * chunk, (i + 2) * chunk, chunk, &err), chunk);
		CHECK_INT(read_span(&e, r, i * chunk, (i + 1) * chunk, chunk, &err), chunk);
	}
	reader_stats(r, &st);
	CHECK_INT(st.window, 1 * MIB);
	CHECK_INT(st.bytes_served, e.size);
	CHECK(st.gets <= 16 + 8);       /* 16 parts; not one GET per read (32) */
	reader_destroy(r);
	env_release(&e);
}

TEST(random_small_reads)
{
	struct env e;
	struct reader_opts o;
	struct reader *r;
	struct reader_stats st;
	struct cm_err err;
	char buf[4096];
	uint64_t x = 12345;
	int n_reads = 300, bad = 0;

	env_init(&e, 16 * MIB, 4, 64 * MIB, 0);
	o = opts_of(&e, 1 * MIB, 0, 8 * MIB);
	r = open_reader(&e, &o);
	for (int i = 0; i < n_reads; i++) {
		uint64_t off;
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		off = (x >> 20) % (e.size - sizeof(buf));
		if (reader_read(r, off, sizeof(buf), buf, &err) != (ssize_t)sizeof(buf) ||
		    memcmp(buf, e.data + off, sizeof(buf)) != 0)
			bad++;
	}
	CHECK_INT(bad, 0);
	reader_stats(r, &st);
	/* exactly the bytes asked for, one GET each, no part in memory */
	CHECK_INT(st.bytes_fetched, (uint64_t)n_reads * sizeof(buf));
	CHECK_INT(st.gets, n_reads);
	CHECK_INT(membudget_peak(e.budget), 0);
	reader_destroy(r);
	env_release(&e);
}

/* ---- the local copy of an object read at random ---- */

/* A reader that knows the object's ETag (a copy is made only of a known version). */
static struct reader *open_reader_pinned(struct env *e, const struct reader_opts *o)
{
	struct s3_object_head head;
	struct cm_err err;
	struct reader *r;

	REQUIRE(store_head(e->mem, KEY, &head, &err) == CM_OK);
	r = reader_create(e->top, KEY, e->size, head.etag, o);
	s3_object_head_release(&head);
	return r;
}

/* A staging directory of its own with limit bytes of budget. */
static struct fdata_disk *disk_new(char *dir, uint64_t limit)
{
	strcpy(dir, "/tmp/cm-test-reader-XXXXXX");
	REQUIRE(mkdtemp(dir) != NULL);
	return fdata_disk_create(dir, limit);
}

static void disk_done(struct fdata_disk *d, const char *dir)
{
	CHECK_INT(fdata_disk_used(d), 0);
	fdata_disk_destroy(d);
	rmdir(dir);
}

/* n random 4 KiB reads, each checked; returns the number that failed or were wrong. */
static int random_reads(struct env *e, struct reader *r, int n, uint64_t *x)
{
	char buf[4096];
	struct cm_err err;
	int bad = 0;

	for (int i = 0; i < n; i++) {
		uint64_t off;
		*x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
		off = (*x >> 20) % (e->size - sizeof(buf));
		if (reader_read(r, off, sizeof(buf), buf, &err) != (ssize_t)sizeof(buf) ||
		    memcmp(buf, e->data + off, sizeof(buf)) != 0)
			bad++;
	}
	return bad;
}

/* Wait (up to 10 s) until the copy has every part; returns the parts it has. */
static uint64_t wait_filled(struct reader *r, uint64_t parts)
{
	struct reader_stats st;

	for (int i = 0; i < 1000; i++) {
		reader_stats(r, &st);
		if (st.fill_parts >= parts)
			break;
		sleep_ms(10);
	}
	return st.fill_parts;
}

/*
 * After fill_after random reads that each waited (a store 6 ms away) the
 * whole object is copied to disk in the background, and random reads are
 * then answered from the copy: no more GETs. The copy's disk goes back when
 * the reader goes.
 */
TEST(random_reads_fill_a_local_copy)
{
	struct env e;
	struct reader_opts o;
	struct reader *r;
	struct reader_stats st;
	char dir[64];
	struct fdata_disk *disk = disk_new(dir, 1024 * MIB);
	uint64_t x = 99, gets;

	env_init(&e, 4 * MIB + 777, 4, 16 * MIB, 0);
	store_fault_set_delay(e.fault, 6);
	o = opts_of(&e, 256 * KIB, 0, 1 * MIB);
	o.disk = disk;
	o.fill_after = 4;
	r = open_reader_pinned(&e, &o);
	CHECK_INT(random_reads(&e, r, 3, &x), 0);
	reader_stats(r, &st);
	CHECK_INT(st.fill_parts, 0);            /* not yet */
	CHECK_INT(random_reads(&e, r, 1, &x), 0);
	CHECK_INT(wait_filled(r, 17), 17);      /* 16 parts and the odd end */
	CHECK(fdata_disk_used(disk) >= e.size);
	gets = store_mem_calls(e.mem, STORE_OP_GET);
	CHECK_INT(random_reads(&e, r, 200, &x), 0);
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_GET), gets);
	reader_stats(r, &st);
	CHECK(st.fill_reads >= 200);
	/* a sequential read over it is still right */
	CHECK_INT(read_span(&e, r, 0, e.size, 100 * KIB, &(struct cm_err){ 0 }), e.size);
	reader_destroy(r);
	env_release(&e);        /* checks the budget is all back, once the queue ran dry */
	disk_done(disk, dir);
}

/*
 * No copy with fill_after 0, of an object whose version is unknown, when the
 * reads are quick (a store close by), nor when it would take over half the
 * staging budget.
 */
TEST(no_local_copy_without_room)
{
	struct env e;
	struct reader_opts o;
	struct reader *r;
	struct reader_stats st;
	char dir[64];
	struct fdata_disk *disk = disk_new(dir, 8 * MIB);
	uint64_t x = 5;

	env_init(&e, 4 * MIB + 1, 4, 16 * MIB, 0);
	o = opts_of(&e, 256 * KIB, 0, 1 * MIB);
	o.disk = disk;
	o.fill_after = 2;
	r = open_reader_pinned(&e, &o);        /* quick reads */
	CHECK_INT(random_reads(&e, r, 40, &x), 0);
	sleep_ms(50);
	reader_stats(r, &st);
	CHECK_INT(st.fill_parts, 0);
	reader_destroy(r);

	store_fault_set_delay(e.fault, 6);      /* the rest are slow */
	o.fill_after = 0;
	r = open_reader_pinned(&e, &o);
	CHECK_INT(random_reads(&e, r, 10, &x), 0);
	reader_stats(r, &st);
	CHECK_INT(st.fill_parts, 0);
	CHECK_INT(st.gets, 10);
	reader_destroy(r);

	o.fill_after = 2;
	r = open_reader(&e, &o);        /* the version is not known */
	CHECK_INT(random_reads(&e, r, 40, &x), 0);
	sleep_ms(50);
	reader_stats(r, &st);
	CHECK_INT(st.fill_parts, 0);
	reader_destroy(r);

	/* 4 MiB + 1 > half of 8 MiB */
	r = open_reader_pinned(&e, &o);
	CHECK_INT(random_reads(&e, r, 40, &x), 0);
	sleep_ms(50);
	reader_stats(r, &st);
	CHECK_INT(st.fill_parts, 0);
	CHECK_INT(st.gets, 40);
	CHECK_INT(fdata_disk_used(disk), 0);
	reader_destroy(r);
	env_release(&e);
	disk_done(disk, dir);
}

/*
 * Faults while filling: GETs cut in the middle are resumed, so the copy
 * completes and every byte read is right; a reader destroyed while its copy
 * is being filled (slow GETs) returns, and gives back its disk.
 */
TEST(local_copy_with_faults_and_destroy)
{
	struct env e;
	struct reader_opts o;
	struct reader *r;
	char dir[64];
	struct fdata_disk *disk = disk_new(dir, 1024 * MIB);
	uint64_t x = 7;

	env_init(&e, 3 * MIB, 4, 16 * MIB, 0);
	store_fault_set_truncate_gets(e.fault, 0.3);
	store_fault_set_delay(e.fault, 6);
	o = opts_of(&e, 256 * KIB, 0, 1 * MIB);
	o.disk = disk;
	o.fill_after = 2;
	r = open_reader_pinned(&e, &o);
	CHECK_INT(random_reads(&e, r, 2, &x), 0);
	CHECK_INT(wait_filled(r, 12), 12);
	CHECK_INT(random_reads(&e, r, 100, &x), 0);
	reader_destroy(r);

	store_fault_set_truncate_gets(e.fault, 0);
	store_fault_set_delay(e.fault, 30);
	r = open_reader_pinned(&e, &o);
	CHECK_INT(random_reads(&e, r, 2, &x), 0);
	sleep_ms(40);                   /* the fill's first GETs are under way */
	reader_destroy(r);
	CHECK_INT(fdata_disk_used(disk), 0);
	env_release(&e);                /* runs the fill jobs still queued */
	disk_done(disk, dir);
}

TEST(eof_and_odd_sizes)
{
	struct env e;
	struct reader_opts o;
	struct reader *r;
	struct reader_stats st;
	struct cm_err err;
	char *buf = xmalloc(400000);
	size_t size = 1000003;

	env_init(&e, size, 4, 16 * MIB, 0);
	o = opts_of(&e, 64 * KIB, 0, 512 * KIB);
	r = open_reader(&e, &o);
	CHECK_INT(reader_read(r, size - 100, 4096, buf, &err), 100);
	CHECK_MEM(buf, e.data + size - 100, 100);
	CHECK_INT(reader_read(r, size, 4096, buf, &err), 0);
	CHECK_INT(reader_read(r, size + 12345, 4096, buf, &err), 0);
	CHECK_INT(reader_read(r, 5, 0, buf, &err), 0);
	/* one read over several parts */
	CHECK_INT(reader_read(r, 12345, 300000, buf, &err), 300000);
	CHECK_MEM(buf, e.data + 12345, 300000);
	/* sequential in odd chunks to the end, then a read crossing EOF */
	CHECK_INT(read_span(&e, r, 0, size, 100000, &err), size);
	CHECK_INT(read_span(&e, r, 0, size - 7, 99991, &err), size - 7);
	CHECK_INT(reader_read(r, size - 7, 400000, buf, &err), 7);
	CHECK_MEM(buf, e.data + size - 7, 7);
	reader_stats(r, &st);
	/* nothing past the end is ever asked for: the mem store would refuse it */
	CHECK(st.bytes_fetched <= 3 * size);
	reader_destroy(r);
	env_release(&e);
	free(buf);
}

TEST(empty_object)
{
	struct env e;
	struct reader_opts o;
	struct reader *r;
	struct cm_err err;
	char buf[16];

	env_init(&e, 0, 2, 1 * MIB, 0);
	o = opts_of(&e, 64 * KIB, 0, 0);
	r = open_reader(&e, &o);
	CHECK_INT(reader_read(r, 0, sizeof(buf), buf, &err), 0);
	CHECK_INT(reader_read(r, 0, sizeof(buf), buf, &err), 0);
	CHECK_INT(reader_read(r, 100, sizeof(buf), buf, &err), 0);
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_GET), 0);
	reader_destroy(r);
	reader_destroy(NULL);
	env_release(&e);
}

struct stream_arg {
	struct env *e;
	struct reader *r;
	uint64_t off, end;
	uint64_t done;
	enum cm_status status;
};

static void *stream_thread(void *arg)
{
	struct stream_arg *a = arg;
	struct cm_err err;

	cm_err_clear(&err);
	a->done = read_span(a->e, a->r, a->off, a->end, 128 * KIB, &err);
	a->status = err.status;
	return NULL;
}

TEST(concurrent_streams)
{
	struct env e;
	struct reader_opts o;
	struct reader *r;
	struct reader_stats st;
	struct stream_arg args[4];
	pthread_t threads[4];
	uint64_t quarter;

	env_init(&e, 16 * MIB, 4, 32 * MIB, 0);
	quarter = e.size / 4;
	o = opts_of(&e, 256 * KIB, 0, 2 * MIB);
	r = open_reader(&e, &o);
	for (int i = 0; i < 4; i++) {
		args[i] = (struct stream_arg){ &e, r, i * quarter, (i + 1) * quarter, 0, CM_OK };
		REQUIRE(pthread_create(&threads[i], NULL, stream_thread, &args[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(threads[i], NULL);
		CHECK_INT(args[i].done, quarter);
		CHECK_INT(args[i].status, CM_OK);
	}
	reader_stats(r, &st);
	CHECK_INT(st.bytes_served, e.size);
	/* each stream keeps its own window: far fewer GETs than the 128 reads */
	CHECK(st.gets < 128);
	reader_destroy(r);
	env_release(&e);
}

TEST(budget_smaller_than_window)
{
	struct env e;
	struct reader_opts o;
	struct reader *a, *b;
	struct reader_stats st;
	struct cm_err err;
	uint64_t limit = 3 * 256 * KIB, pos;

	env_init(&e, 8 * MIB, 4, limit, 0);
	o = opts_of(&e, 256 * KIB, 0, 4 * MIB);
	a = open_reader(&e, &o);
	CHECK_INT(read_span(&e, a, 0, e.size, 128 * KIB, &err), e.size);
	reader_stats(a, &st);
	CHECK(membudget_peak(e.budget) <= limit);
	CHECK(st.gets < 64);    /* parts were still used, not only direct reads */

	/* two readers sharing the budget, interleaved, then one closed midway */
	b = open_reader(&e, &o);
	reader_destroy(a);
	a = open_reader(&e, &o);
	for (pos = 0; pos < 4 * MIB; pos += 128 * KIB) {
		CHECK_INT(read_span(&e, a, pos, pos + 128 * KIB, 128 * KIB, &err), 128 * KIB);
		CHECK_INT(read_span(&e, b, pos, pos + 128 * KIB, 128 * KIB, &err), 128 * KIB);
	}
	reader_destroy(a);      /* must not wait for budget b holds */
	CHECK_INT(read_span(&e, b, pos, e.size, 128 * KIB, &err), e.size - pos);
	CHECK(membudget_peak(e.budget) <= limit);
	reader_destroy(b);
	env_release(&e);
}

TEST(fault_transient_is_retried)
{
	struct env e;
	struct reader_opts o;
	struct reader *r;
	struct cm_err err;
	char buf[4096];

	env_init(&e, 4 * MIB, 4, 16 * MIB, 0);
	o = opts_of(&e, 256 * KIB, 0, 1 * MIB);
	r = open_reader(&e, &o);
	store_fault_fail_next(e.fault, STORE_OP_GET, 1, CM_E_TRANSIENT);
	CHECK_INT(reader_read(r, 1000, sizeof(buf), buf, &err), sizeof(buf));
	CHECK_MEM(buf, e.data + 1000, sizeof(buf));
	CHECK_INT(store_fault_injected(e.fault), 1);
	/* during a sequential read, in the prefetch jobs */
	CHECK_INT(read_span(&e, r, 0, 1 * MIB, 128 * KIB, &err), 1 * MIB);
	store_fault_fail_next(e.fault, STORE_OP_GET, 3, CM_E_TRANSIENT);
	CHECK_INT(read_span(&e, r, 1 * MIB, e.size, 128 * KIB, &err), e.size - 1 * MIB);
	CHECK_INT(store_fault_injected(e.fault), 4);
	reader_destroy(r);
	env_release(&e);
}

TEST(fault_access_denied)
{
	struct env e;
	struct reader_opts o;
	struct reader *r;
	struct cm_err err;
	char buf[4096];
	uint64_t pos;

	env_init(&e, 8 * MIB, 4, 16 * MIB, 0);
	o = opts_of(&e, 256 * KIB, 0, 2 * MIB);
	r = open_reader(&e, &o);
	store_fault_fail_next(e.fault, STORE_OP_GET, 10, CM_E_ACCESS_DENIED);
	CHECK_INT(reader_read(r, 0, sizeof(buf), buf, &err), -1);
	CHECK_INT(err.status, CM_E_ACCESS_DENIED);
	CHECK_INT(store_fault_injected(e.fault), 1);     /* not retried */
	store_fault_fail_next(e.fault, STORE_OP_GET, 0, CM_OK);
	CHECK_INT(reader_read(r, 0, sizeof(buf), buf, &err), sizeof(buf));
	CHECK_MEM(buf, e.data, sizeof(buf));

	/* a failure in the read-ahead reaches the read that needs the part */
	pos = read_span(&e, r, 0, 2 * MIB, 128 * KIB, &err);
	CHECK_INT(pos, 2 * MIB);
	store_fault_fail_next(e.fault, STORE_OP_GET, 1000, CM_E_ACCESS_DENIED);
	cm_err_clear(&err);
	pos += read_span(&e, r, pos, e.size, 128 * KIB, &err);
	CHECK(pos < e.size);
	CHECK_INT(err.status, CM_E_ACCESS_DENIED);
	/* after the faults stop, reading goes on from where it failed */
	store_fault_fail_next(e.fault, STORE_OP_GET, 0, CM_OK);
	CHECK_INT(read_span(&e, r, pos, e.size, 128 * KIB, &err), e.size - pos);
	reader_destroy(r);
	env_release(&e);
}

TEST(fault_truncated_gets)
{
	struct env e;
	struct reader_opts o;
	struct reader *r;
	struct cm_err err;
	char buf[10000];
	uint64_t x = 777;
	int bad = 0;

	env_init(&e, 8 * MIB, 4, 16 * MIB, 0);
	store_fault_set_truncate_gets(e.fault, 0.3);
	o = opts_of(&e, 256 * KIB, 0, 2 * MIB);
	r = open_reader(&e, &o);
	CHECK_INT(read_span(&e, r, 0, e.size, 128 * KIB, &err), e.size);
	CHECK_INT(err.status, CM_OK);
	for (int i = 0; i < 100; i++) {
		uint64_t off;
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		off = (x >> 20) % (e.size - sizeof(buf));
		if (reader_read(r, off, sizeof(buf), buf, &err) != (ssize_t)sizeof(buf) ||
		    memcmp(buf, e.data + off, sizeof(buf)) != 0)
			bad++;
	}
	CHECK_INT(bad, 0);
	CHECK(store_fault_injected(e.fault) > 0);
	reader_destroy(r);
	env_release(&e);
}

TEST(etag_pins_the_version)
{
	struct env e;
	struct reader_opts o;
	struct reader *r;
	struct s3_object_head head;
	struct cm_err err;
	char buf[4096], quoted[128];

	env_init(&e, 1 * MIB, 2, 4 * MIB, 0);
	o = opts_of(&e, 256 * KIB, 0, 1 * MIB);
	REQUIRE(store_head(e.mem, KEY, &head, &err) == CM_OK);
	snprintf(quoted, sizeof(quoted), "\"%s\"", head.etag);

	r = reader_create(e.top, KEY, e.size, head.etag, &o);
	CHECK_INT(read_span(&e, r, 0, e.size, 128 * KIB, &err), e.size);
	reader_destroy(r);
	r = reader_create(e.top, KEY, e.size, quoted, &o);
	CHECK_INT(reader_read(r, 0, sizeof(buf), buf, &err), sizeof(buf));
	reader_destroy(r);
	r = reader_create(e.top, KEY, e.size, "0123456789abcdef0123456789abcdef", &o);
	CHECK_INT(reader_read(r, 0, sizeof(buf), buf, &err), -1);
	CHECK_INT(err.status, CM_E_PRECONDITION);
	reader_destroy(r);
	s3_object_head_release(&head);
	env_release(&e);
}

TEST(destroy_with_fetches_in_flight)
{
	struct env e;
	struct reader_opts o;
	struct reader *r;
	struct cm_err err;

	env_init(&e, 8 * MIB, 4, 4 * MIB, 0);
	store_fault_set_delay(e.fault, 5);
	o = opts_of(&e, 256 * KIB, 0, 4 * MIB);
	for (int round = 0; round < 3; round++) {
		r = open_reader(&e, &o);
		CHECK_INT(read_span(&e, r, 0, (uint64_t)(round + 1) * 384 * KIB, 128 * KIB, &err),
			  (uint64_t)(round + 1) * 384 * KIB);
		reader_destroy(r);
	}
	env_release(&e);
}

/* ---- reader_read_reply: the bytes lent straight from read-ahead parts ---- */

struct reply_sink {
	struct env *e;
	uint64_t off;           /* where the read started */
	int calls;              /* reply calls for the current read */
	size_t got;
	int bad;
	int delay_ms;           /* hold the lent parts this long */
};

static void reply_check(void *ctx, const struct iovec *iov, int n)
{
	struct reply_sink *k = ctx;
	uint64_t pos = k->off;

	k->calls++;
	for (int i = 0; i < n; i++) {
		if (iov[i].iov_len && memcmp(iov[i].iov_base, k->e->data + pos, iov[i].iov_len) != 0)
			k->bad = 1;
		pos += iov[i].iov_len;
	}
	k->got = (size_t)(pos - k->off);
	if (k->delay_ms)
		sleep_ms(k->delay_ms);
}

/* One reader_read_reply; checks it replied once with the right bytes. Returns its result. */
static ssize_t reply_read(struct env *e, struct reader *r, uint64_t off, size_t len, int delay_ms)
{
	struct reply_sink k = { .e = e, .off = off, .delay_ms = delay_ms };
	struct cm_err err;
	ssize_t n = reader_read_reply(r, off, len, reply_check, &k, &err);

	if (n >= 0) {
		if (k.calls != 1 || k.bad || k.got != (size_t)n)
			TH_FAIL_("read at %llu: %d replies, %zu bytes of %zd, %s", (unsigned long long)off,
				 k.calls, k.got, n, k.bad ? "bytes differ" : "bytes right");
	} else if (k.calls) {
		TH_FAIL_("a failed read at %llu replied", (unsigned long long)off);
	}
	return n;
}

TEST(reply_reads_lend_parts)
{
	struct env e;
	struct reader_opts o;
	struct reader *r;
	uint64_t pos = 0, seed = 7;

	env_init(&e, 9 * MIB + 123, 4, 16 * MIB, 0);
	o = opts_of(&e, 1 * MIB, 1 * MIB, 4 * MIB);
	r = open_reader(&e, &o);
	/* sequential, in reads that straddle part boundaries */
	while (pos < e.size) {
		ssize_t n = reply_read(&e, r, pos, 300 * KIB, 0);
		REQUIRE(n > 0);
		pos += (uint64_t)n;
	}
	CHECK_INT(pos, e.size);
	CHECK_INT(reply_read(&e, r, e.size, 4096, 0), 0);       /* at the end: one empty reply */
	CHECK_INT(reply_read(&e, r, e.size + 10, 4096, 0), 0);
	CHECK_INT(reply_read(&e, r, e.size - 100, 4096, 0), 100);
	/* random reads: the fallback path when no part holds them */
	for (int i = 0; i < 200; i++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		uint64_t off = (seed >> 11) % e.size;
		size_t len = 1 + (size_t)((seed >> 40) % (200 * KIB));
		ssize_t want = (ssize_t)(len < e.size - off ? len : e.size - off);
		CHECK_INT(reply_read(&e, r, off, len, 0), want);
	}
	reader_destroy(r);
	env_release(&e);
}

struct lender {
	struct env *e;
	struct reader *r;
	uint64_t start;
};

static void *lender_thread(void *arg)
{
	struct lender *l = arg;

	for (uint64_t pos = l->start; pos < l->e->size;) {
		ssize_t n = reply_read(l->e, l->r, pos, 256 * KIB, 1);
		if (n <= 0)
			break;
		pos += (uint64_t)n;
	}
	return NULL;
}

/* Parts dropped while lent (a small budget moves the windows on) are freed by their last user. */
TEST(reply_parts_dropped_while_lent)
{
	struct env e;
	struct reader_opts o;
	struct reader *r;
	struct lender l[3];
	pthread_t t[3];

	env_init(&e, 6 * MIB, 4, 2 * MIB, 0);
	store_fault_set_delay(e.fault, 1);
	o = opts_of(&e, 256 * KIB, 256 * KIB, 1 * MIB);
	r = open_reader(&e, &o);
	for (int i = 0; i < 3; i++) {
		l[i] = (struct lender){ .e = &e, .r = r, .start = (uint64_t)i * 2 * MIB };
		pthread_create(&t[i], NULL, lender_thread, &l[i]);
	}
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	reader_destroy(r);
	env_release(&e);        /* checks every byte of budget came back */
}

/* membudget_alloc/free: freed buffers are reused, count against the limit, and go when idle. */
TEST(budget_buffer_cache)
{
	struct membudget *b = membudget_create(8 * MIB);
	char *a, *c, *d;

	a = membudget_alloc(b, 4 * MIB);
	c = membudget_alloc(b, 2 * MIB);
	REQUIRE(a && c);
	memset(a, 1, 4 * MIB);
	memset(c, 2, 2 * MIB);
	CHECK_INT(membudget_used(b), 6 * MIB);
	membudget_free(b, c, 2 * MIB);          /* kept: a is still in use */
	CHECK_INT(membudget_used(b), 4 * MIB);
	d = membudget_alloc(b, 2 * MIB);        /* the same buffer comes back */
	CHECK(d == c);
	membudget_free(b, d, 2 * MIB);
	/* 4 in use + 2 cached + 4 wanted > 8: the cache gives way, nothing blocks */
	d = membudget_alloc(b, 4 * MIB);
	REQUIRE(d != NULL);
	memset(d, 3, 4 * MIB);
	CHECK_INT(membudget_used(b), 8 * MIB);
	membudget_free(b, d, 4 * MIB);
	membudget_free(b, a, 4 * MIB);          /* idle: nothing kept */
	CHECK_INT(membudget_used(b), 0);
	membudget_free(b, NULL, 4 * MIB);
	CHECK_INT(membudget_peak(b), 8 * MIB);
	membudget_destroy(b);
}

/*
 * The end of a mount: reader_shutdown stops the copy and read-ahead of
 * readers never destroyed (files the kernel did not release), returns once
 * no fetch runs, and none starts after it. Last: it is for the process.
 */
TEST(shutdown_stops_every_fetch)
{
	struct env e;
	struct reader_opts o;
	struct reader *r;
	struct reader_stats st;
	struct cm_err err;
	char dir[64], buf[4096];
	struct fdata_disk *disk = disk_new(dir, 1024 * MIB);
	uint64_t x = 11, gets;
	int64_t t0;

	env_init(&e, 8 * MIB, 4, 16 * MIB, 0);
	store_fault_set_delay(e.fault, 30);
	o = opts_of(&e, 256 * KIB, 0, 1 * MIB);
	o.disk = disk;
	o.fill_after = 2;
	r = open_reader_pinned(&e, &o);
	CHECK_INT(random_reads(&e, r, 2, &x), 0);
	sleep_ms(60);                   /* the copy is under way */
	t0 = util_now_ms();
	reader_shutdown();
	CHECK(util_now_ms() - t0 < 1000);
	gets = store_mem_calls(e.mem, STORE_OP_GET);
	CHECK(reader_read(r, 100, sizeof(buf), buf, &err) < 0);
	CHECK_INT(err.status, CM_E_CANCELLED);
	sleep_ms(100);
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_GET), gets);
	reader_stats(r, &st);
	CHECK(st.fill_parts < 32);
	reader_destroy(r);
	env_release(&e);
	disk_done(disk, dir);
}

TH_MAIN_BEGIN("test_reader")
	log_set_level(LOG_LVL_ERROR);
	alarm(60);
	RUN(sequential_read_whole_object);
	RUN(window_grows_fetches_in_parallel);
	RUN(adjacent_reads_start_prefetch);
	RUN(small_object_fetched_whole_from_start);
	RUN(reads_served_while_part_arrives);
	RUN(out_of_order_reads_stay_sequential);
	RUN(random_small_reads);
	RUN(random_reads_fill_a_local_copy);
	RUN(no_local_copy_without_room);
	RUN(local_copy_with_faults_and_destroy);
	RUN(eof_and_odd_sizes);
	RUN(empty_object);
	RUN(concurrent_streams);
	RUN(budget_smaller_than_window);
	RUN(fault_transient_is_retried);
	RUN(fault_access_denied);
	RUN(fault_truncated_gets);
	RUN(etag_pins_the_version);
	RUN(destroy_with_fetches_in_flight);
	RUN(reply_reads_lend_parts);
	RUN(reply_parts_dropped_while_lent);
	RUN(budget_buffer_cache);
	RUN(shutdown_stops_every_fetch); /* last: for the whole process */
TH_MAIN_END
