/*
 * test_fdata.c - unit tests of fs/fdata.c (the data of a file open for
 * writing) over the in-memory store, with the fault layer on top of it.
 *
 * Parts are 64 KiB (the mem store's minimum part size lowered to match), the
 * memory budget a few parts, the work queue 4 threads, staging files in a
 * mkdtemp directory. What crossed the "network" is checked by counting the
 * mem store's calls. Data is deterministic; the randomized test uses its own
 * seeded generator and a shadow buffer.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "common/workq.h"
#include "fs/fdata.h"
#include "store/store.h"
#include "store/store_fault.h"
#include "store/store_mem.h"
#include "store/transfer.h"
#include "tharness.h"

#define PART (64u << 10)

struct env {
	struct store *mem;      /* the bottom store, for counts and direct access */
	struct store *top;      /* the fault layer over it, given to fdata */
	struct workq *wq;
	struct membudget *budget;
	struct fdata_disk *disk;
	char dir[64];
	char stage[96];
	struct fdata_opts opts;
};

static void env_init(struct env *e, uint64_t disk_limit)
{
	memset(e, 0, sizeof(*e));
	e->mem = store_mem_create();
	store_mem_set_min_part_size(e->mem, PART);
	e->top = store_fault_create(e->mem, 42);
	e->wq = workq_create(4);
	e->budget = membudget_create(4 * PART);
	snprintf(e->dir, sizeof(e->dir), "/tmp/test_fdata.XXXXXX");
	REQUIRE(mkdtemp(e->dir) != NULL);
	snprintf(e->stage, sizeof(e->stage), "%s/staging", e->dir);
	e->disk = fdata_disk_create(e->stage, disk_limit);
	REQUIRE(e->disk != NULL);
	e->opts.store = e->top;
	e->opts.workq = e->wq;
	e->opts.budget = e->budget;
	e->opts.disk = e->disk;
	e->opts.part_size = PART;
	e->opts.concurrency = 4;
}

static void env_release(struct env *e)
{
	CHECK_INT(fdata_disk_used(e->disk), 0);
	CHECK_INT(membudget_used(e->budget), 0);
	CHECK_INT(store_mem_pending_uploads(e->mem), 0);
	fdata_disk_destroy(e->disk);
	rmdir(e->stage);
	rmdir(e->dir);
	membudget_destroy(e->budget);
	workq_destroy(e->wq);
	store_destroy(e->top);
}

static unsigned char pat(uint64_t i, unsigned seed)
{
	return (unsigned char)((i * 31 + i / 7 + seed * 101) & 0xff);
}

/* n bytes of pattern seed starting at absolute position off (malloc'd). */
static char *pattern(uint64_t off, size_t n, unsigned seed)
{
	char *p = xmalloc(n ? n : 1);

	for (size_t i = 0; i < n; i++)
		p[i] = (char)pat(off + i, seed);
	return p;
}

/* Whether the object key holds exactly data[0, len). */
static int object_is(struct env *e, const char *key, const void *data, size_t len)
{
	size_t got = 0;
	void *obj = store_mem_get_bytes(e->mem, key, &got);
	int same;

	if (!obj)
		return 0;
	same = got == len && memcmp(obj, data, len) == 0;
	if (!same)
		fprintf(stderr, "  object %s: %zu bytes, expected %zu\n", key, got, len);
	free(obj);
	return same;
}

/* Write data[0, len) at off in chunks of chunk bytes; 1 when all went. */
static int write_chunks(struct fdata *f, uint64_t off, const char *data, size_t len, size_t chunk)
{
	struct cm_err err;

	for (size_t done = 0; done < len;) {
		size_t n = len - done < chunk ? len - done : chunk;
		if (fdata_write(f, off + done, data + done, n, &err) != (ssize_t)n)
			return 0;
		done += n;
	}
	return 1;
}

static int commit(struct fdata *f, uint64_t *size)
{
	struct cm_err err;
	char *etag = NULL;
	uint64_t sz = 0;
	int rc = fdata_commit(f, NULL, &etag, &sz, &err);

	if (rc == 0 && size)
		*size = sz;
	free(etag);
	return rc;
}

/* ---- tests ---- */

TEST(test_stream_sequential)
{
	struct env e;
	size_t len = 1u << 20;
	char *data = pattern(0, len, 1);
	struct cm_err err;
	char *etag = NULL;
	uint64_t size = 0;
	struct fdata *f;

	env_init(&e, 64u << 20);
	f = fdata_create(&e.opts, "a", 0, 0, NULL, 1);
	CHECK(write_chunks(f, 0, data, len, 4096));
	CHECK_INT(fdata_state(f), FDATA_STREAM);
	CHECK_INT(fdata_size(f), len);
	CHECK_INT(fdata_disk_used(e.disk), 0);
	CHECK(membudget_peak(e.budget) <= 5 * PART);
	CHECK_INT(fdata_commit(f, NULL, &etag, &size, &err), 0);
	CHECK(etag != NULL && etag[0] != '\0');
	CHECK_INT(size, len);
	CHECK(object_is(&e, "a", data, len));
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_MPU_PART), len / PART);
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_PUT), 0);
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_COPY), 0);
	CHECK_INT(fdata_state(f), FDATA_CLEAN);
	CHECK_INT(fdata_dirty(f), 0);
	free(etag);
	/* nothing dirty: 0 at once, no etag */
	etag = (char *)1;
	CHECK_INT(fdata_commit(f, NULL, &etag, &size, &err), 0);
	CHECK(etag == NULL);
	fdata_destroy(f);
	free(data);
	env_release(&e);
}

TEST(test_small_stream_is_one_put)
{
	struct env e;
	char *data = pattern(0, 5000, 2);
	struct fdata *f;

	env_init(&e, 64u << 20);
	f = fdata_create(&e.opts, "s", 0, 0, NULL, 1);
	CHECK(write_chunks(f, 0, data, 5000, 1000));
	CHECK_INT(fdata_state(f), FDATA_STREAM);
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_PUT), 0);
	CHECK_INT(commit(f, NULL), 0);
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_PUT), 1);
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_MPU_CREATE), 0);
	CHECK(object_is(&e, "s", data, 5000));
	fdata_destroy(f);
	free(data);
	env_release(&e);
}

TEST(test_empty_new_file)
{
	struct env e;
	struct fdata *f;
	char buf[4];
	struct cm_err err;

	env_init(&e, 64u << 20);
	f = fdata_create(&e.opts, "empty", 0, 0, NULL, 1);
	CHECK_INT(fdata_dirty(f), 1);
	CHECK_INT(fdata_read(f, 0, sizeof(buf), buf, &err), 0);
	CHECK_INT(commit(f, NULL), 0);
	CHECK(object_is(&e, "empty", "", 0));
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_PUT), 1);
	CHECK_INT(fdata_dirty(f), 0);
	fdata_destroy(f);

	/* an existing object opened with O_TRUNC becomes empty too */
	store_mem_put_bytes(e.mem, "old", "hello", 5);
	f = fdata_create(&e.opts, "old", 1, 5, "etag", 1);
	CHECK_INT(fdata_size(f), 0);
	CHECK_INT(commit(f, NULL), 0);
	CHECK(object_is(&e, "old", "", 0));
	fdata_destroy(f);
	env_release(&e);
}

TEST(test_gap_write)
{
	struct env e;
	struct fdata *f;
	char buf[200], want[110];
	struct cm_err err;

	env_init(&e, 64u << 20);
	memset(want, 0, sizeof(want));
	memcpy(want, "0123456789", 10);
	memcpy(want + 100, "abcdefghij", 10);
	f = fdata_create(&e.opts, "g", 0, 0, NULL, 1);
	CHECK_INT(fdata_write(f, 0, "0123456789", 10, &err), 10);
	CHECK_INT(fdata_state(f), FDATA_STREAM);
	CHECK_INT(fdata_write(f, 100, "abcdefghij", 10, &err), 10);
	CHECK_INT(fdata_state(f), FDATA_STAGED);
	CHECK_INT(fdata_size(f), 110);
	CHECK_INT(fdata_disk_used(e.disk), 110);
	CHECK_INT(fdata_read(f, 0, sizeof(buf), buf, &err), 110);
	CHECK_MEM(buf, want, 110);
	/* nothing was sent to get there */
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_PUT), 0);
	CHECK_INT(commit(f, NULL), 0);
	CHECK(object_is(&e, "g", want, 110));
	CHECK_INT(fdata_state(f), FDATA_STAGED);
	CHECK_INT(fdata_dirty(f), 0);
	/* a clean staged file still serves reads */
	CHECK_INT(fdata_read(f, 95, 10, buf, &err), 10);
	CHECK_MEM(buf, want + 95, 10);
	fdata_destroy(f);
	env_release(&e);
}

TEST(test_edit_middle_fetches_one_part)
{
	struct env e;
	size_t len = 1u << 20;
	char *data = pattern(0, len, 3);
	struct fdata *f;
	struct cm_err err;
	char buf[32];

	env_init(&e, 64u << 20);
	REQUIRE(store_mem_put_bytes(e.mem, "big", data, len) == 0);
	store_mem_reset_calls(e.mem);
	f = fdata_create(&e.opts, "big", 1, len, "etag", 0);
	CHECK_INT(fdata_state(f), FDATA_CLEAN);
	CHECK_INT(fdata_write(f, 500000, "EDITEDEDIT", 10, &err), 10);
	CHECK_INT(fdata_state(f), FDATA_STAGED);
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_GET), 1);
	memcpy(data + 500000, "EDITEDEDIT", 10);
	/* a read of the same part costs nothing more */
	CHECK_INT(fdata_read(f, 499995, 20, buf, &err), 20);
	CHECK_MEM(buf, data + 499995, 20);
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_GET), 1);
	/* a read of another part fetches that part */
	CHECK_INT(fdata_read(f, 10, 20, buf, &err), 20);
	CHECK_MEM(buf, data + 10, 20);
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_GET), 2);
	CHECK_INT(commit(f, NULL), 0);
	CHECK(object_is(&e, "big", data, len));
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_GET), len / PART);
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_MPU_PART), len / PART);
	fdata_destroy(f);
	free(data);
	env_release(&e);
}

TEST(test_write_covering_part_skips_fetch)
{
	struct env e;
	size_t len = 4 * PART;
	char *data = pattern(0, len, 4);
	char *fresh = pattern(0, PART + 10, 5);
	struct fdata *f;
	struct cm_err err;

	env_init(&e, 64u << 20);
	REQUIRE(store_mem_put_bytes(e.mem, "cov", data, len) == 0);
	store_mem_reset_calls(e.mem);
	f = fdata_create(&e.opts, "cov", 1, len, "etag", 0);
	/* covers part 1 whole and 10 bytes of part 2: only part 2 is fetched */
	CHECK_INT(fdata_write(f, PART, fresh, PART + 10, &err), PART + 10);
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_GET), 1);
	memcpy(data + PART, fresh, PART + 10);
	CHECK_INT(commit(f, NULL), 0);
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_GET), 3);
	CHECK(object_is(&e, "cov", data, len));
	fdata_destroy(f);

	/* one byte short of a whole part: that part must be fetched */
	store_mem_reset_calls(e.mem);
	f = fdata_create(&e.opts, "cov", 1, len, "etag", 0);
	CHECK_INT(fdata_write(f, 2 * PART + 1, fresh, PART - 1, &err), PART - 1);
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_GET), 1);
	memcpy(data + 2 * PART + 1, fresh, PART - 1);
	CHECK_INT(commit(f, NULL), 0);
	CHECK(object_is(&e, "cov", data, len));
	fdata_destroy(f);
	free(fresh);
	free(data);
	env_release(&e);
}

TEST(test_truncate_existing)
{
	struct env e;
	size_t len = 200000;
	char *data = pattern(0, len, 6);
	char *want = xcalloc(1, 300000);
	struct fdata *f;
	struct cm_err err;
	char buf[1000];

	env_init(&e, 64u << 20);
	REQUIRE(store_mem_put_bytes(e.mem, "t", data, len) == 0);
	f = fdata_create(&e.opts, "t", 1, len, "etag", 0);
	CHECK_INT(fdata_truncate(f, 100000, &err), 0);
	CHECK_INT(fdata_state(f), FDATA_STAGED);
	CHECK_INT(fdata_size(f), 100000);
	CHECK_INT(fdata_disk_used(e.disk), 100000);
	CHECK_INT(commit(f, NULL), 0);
	CHECK(object_is(&e, "t", data, 100000));
	/* grow: zeros after the old end */
	CHECK_INT(fdata_truncate(f, 300000, &err), 0);
	CHECK_INT(fdata_disk_used(e.disk), 300000);
	CHECK_INT(commit(f, NULL), 0);
	memcpy(want, data, 100000);
	CHECK(object_is(&e, "t", want, 300000));
	fdata_destroy(f);

	/* shrink into a part never fetched, grow again: the cut bytes read as zeros */
	REQUIRE(store_mem_put_bytes(e.mem, "t2", data, len) == 0);
	f = fdata_create(&e.opts, "t2", 1, len, "etag", 0);
	CHECK_INT(fdata_truncate(f, 150000, &err), 0);
	CHECK_INT(fdata_truncate(f, 180000, &err), 0);
	CHECK_INT(fdata_read(f, 149500, sizeof(buf), buf, &err), (ssize_t)sizeof(buf));
	CHECK_MEM(buf, data + 149500, 500);
	memset(want, 0, 500);
	CHECK_MEM(buf + 500, want, 500);
	CHECK_INT(commit(f, NULL), 0);
	memcpy(want, data, 150000);
	memset(want + 150000, 0, 30000);
	CHECK(object_is(&e, "t2", want, 180000));
	fdata_destroy(f);

	/* the same once STAGED: the cut never comes back from the base */
	REQUIRE(store_mem_put_bytes(e.mem, "t3", data, len) == 0);
	f = fdata_create(&e.opts, "t3", 1, len, "etag", 0);
	CHECK_INT(fdata_write(f, 0, "x", 1, &err), 1);
	CHECK_INT(fdata_state(f), FDATA_STAGED);
	CHECK_INT(fdata_truncate(f, 150000, &err), 0);
	CHECK_INT(fdata_truncate(f, 190000, &err), 0);
	CHECK_INT(fdata_read(f, 149500, sizeof(buf), buf, &err), (ssize_t)sizeof(buf));
	CHECK_MEM(buf, data + 149500, 500);
	memset(want, 0, 500);
	CHECK_MEM(buf + 500, want, 500);
	CHECK_INT(commit(f, NULL), 0);
	memcpy(want, data, 150000);
	want[0] = 'x';
	memset(want + 150000, 0, 40000);
	CHECK(object_is(&e, "t3", want, 190000));
	/* truncate to the same size changes nothing */
	CHECK_INT(fdata_truncate(f, 190000, &err), 0);
	CHECK_INT(fdata_dirty(f), 0);
	fdata_destroy(f);
	free(want);
	free(data);
	env_release(&e);
}

TEST(test_append_existing)
{
	struct env e;
	char *data = pattern(0, 150000, 7);
	struct fdata *f;
	struct cm_err err;

	env_init(&e, 64u << 20);
	REQUIRE(store_mem_put_bytes(e.mem, "ap", data, 100000) == 0);
	f = fdata_create(&e.opts, "ap", 1, 100000, "etag", 0);
	CHECK(write_chunks(f, 100000, data + 100000, 50000, 8192));
	CHECK_INT(fdata_state(f), FDATA_STAGED);
	CHECK_INT(fdata_size(f), 150000);
	CHECK_INT(commit(f, NULL), 0);
	CHECK(object_is(&e, "ap", data, 150000));
	fdata_destroy(f);

	/* after a commit from STREAM, an append goes through STAGED */
	f = fdata_create(&e.opts, "ap2", 0, 0, NULL, 1);
	CHECK_INT(fdata_write(f, 0, data, 1000, &err), 1000);
	CHECK_INT(commit(f, NULL), 0);
	CHECK_INT(fdata_state(f), FDATA_CLEAN);
	CHECK_INT(fdata_write(f, 1000, data + 1000, 1000, &err), 1000);
	CHECK_INT(fdata_state(f), FDATA_STAGED);
	CHECK_INT(commit(f, NULL), 0);
	CHECK(object_is(&e, "ap2", data, 2000));
	fdata_destroy(f);
	free(data);
	env_release(&e);
}

TEST(test_read_your_writes)
{
	struct env e;
	size_t len = 200000;
	char *data = pattern(0, len + 50000, 8);
	char *buf = xmalloc(len);
	struct fdata *f;
	struct cm_err err;

	env_init(&e, 64u << 20);
	/* small: still in the head buffer; the switch sends nothing */
	f = fdata_create(&e.opts, "r1", 0, 0, NULL, 1);
	CHECK_INT(fdata_write(f, 0, data, 1000, &err), 1000);
	CHECK_INT(fdata_read(f, 10, 100, buf, &err), 100);
	CHECK_MEM(buf, data + 10, 100);
	CHECK_INT(fdata_state(f), FDATA_STAGED);
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_PUT), 0);
	CHECK_INT(commit(f, NULL), 0);
	CHECK(object_is(&e, "r1", data, 1000));
	fdata_destroy(f);

	/* large: the upload under way is completed, then read back */
	f = fdata_create(&e.opts, "r2", 0, 0, NULL, 1);
	CHECK(write_chunks(f, 0, data, len, 4096));
	CHECK_INT(fdata_state(f), FDATA_STREAM);
	CHECK_INT(fdata_read(f, 1000, 5000, buf, &err), 5000);
	CHECK_MEM(buf, data + 1000, 5000);
	CHECK_INT(fdata_state(f), FDATA_STAGED);
	CHECK_INT(fdata_read(f, 0, len, buf, &err), (ssize_t)len);
	CHECK_MEM(buf, data, len);
	CHECK(write_chunks(f, len, data + len, 50000, 4096));
	CHECK_INT(commit(f, NULL), 0);
	CHECK(object_is(&e, "r2", data, len + 50000));
	fdata_destroy(f);
	free(buf);
	free(data);
	env_release(&e);
}

TEST(test_commit_failure_retried)
{
	struct env e;
	char *data = pattern(0, 300000, 9);
	struct fdata *f;
	struct cm_err err;

	env_init(&e, 64u << 20);
	/* small stream: the PUT fails, the bytes are kept, a later commit works */
	f = fdata_create(&e.opts, "f1", 0, 0, NULL, 1);
	CHECK_INT(fdata_write(f, 0, data, 5000, &err), 5000);
	store_fault_fail_next(e.top, STORE_OP_PUT, 100, CM_E_ACCESS_DENIED);
	CHECK_INT(fdata_commit(f, NULL, NULL, NULL, &err), -EACCES);
	CHECK_INT(err.status, CM_E_ACCESS_DENIED);
	CHECK_INT(fdata_dirty(f), 1);
	store_fault_fail_next(e.top, STORE_OP_PUT, 0, CM_OK);
	CHECK_INT(commit(f, NULL), 0);
	CHECK(object_is(&e, "f1", data, 5000));
	fdata_destroy(f);

	/* staged multipart: the completion fails, the upload is aborted, a retry works */
	f = fdata_create(&e.opts, "f2", 0, 0, NULL, 1);
	CHECK_INT(fdata_write(f, 1, data + 1, 299999, &err), 299999);
	CHECK_INT(fdata_write(f, 0, data, 1, &err), 1);
	CHECK_INT(fdata_state(f), FDATA_STAGED);
	store_fault_fail_next(e.top, STORE_OP_MPU_COMPLETE, 100, CM_E_ACCESS_DENIED);
	CHECK_INT(fdata_commit(f, NULL, NULL, NULL, &err), -EACCES);
	CHECK_INT(fdata_dirty(f), 1);
	CHECK_INT(store_mem_pending_uploads(e.mem), 0);
	store_fault_fail_next(e.top, STORE_OP_MPU_COMPLETE, 0, CM_OK);
	CHECK_INT(commit(f, NULL), 0);
	CHECK(object_is(&e, "f2", data, 300000));
	CHECK_INT(fdata_dirty(f), 0);
	fdata_destroy(f);

	/* staged single PUT fails the same way */
	f = fdata_create(&e.opts, "f3", 0, 0, NULL, 1);
	CHECK_INT(fdata_write(f, 10, data + 10, 90, &err), 90);
	CHECK_INT(fdata_write(f, 0, data, 10, &err), 10);
	store_fault_fail_next(e.top, STORE_OP_PUT, 100, CM_E_ACCESS_DENIED);
	CHECK_INT(fdata_commit(f, NULL, NULL, NULL, &err), -EACCES);
	store_fault_fail_next(e.top, STORE_OP_PUT, 0, CM_OK);
	CHECK_INT(commit(f, NULL), 0);
	CHECK(object_is(&e, "f3", data, 100));
	fdata_destroy(f);
	free(data);
	env_release(&e);
}

TEST(test_stream_failure_is_sticky)
{
	struct env e;
	char *data = pattern(0, 300000, 10);
	struct fdata *f;
	struct cm_err err;
	char buf[10];

	env_init(&e, 64u << 20);
	f = fdata_create(&e.opts, "sf", 0, 0, NULL, 1);
	CHECK(write_chunks(f, 0, data, 300000, 4096));
	store_fault_fail_next(e.top, STORE_OP_MPU_COMPLETE, 100, CM_E_ACCESS_DENIED);
	CHECK_INT(fdata_commit(f, NULL, NULL, NULL, &err), -EACCES);
	CHECK_INT(fdata_dirty(f), 1);
	CHECK_INT(store_mem_pending_uploads(e.mem), 0);
	store_fault_fail_next(e.top, STORE_OP_MPU_COMPLETE, 0, CM_OK);
	/* the streamed bytes are gone: every call says so, with the first error */
	memset(&err, 0, sizeof(err));
	CHECK_INT(fdata_commit(f, NULL, NULL, NULL, &err), -EIO);
	CHECK_INT(err.status, CM_E_ACCESS_DENIED);
	CHECK_INT(fdata_write(f, 300000, "x", 1, &err), -EIO);
	CHECK_INT(fdata_read(f, 0, sizeof(buf), buf, &err), -EIO);
	CHECK_INT(fdata_truncate(f, 5, &err), -EIO);
	CHECK_INT(fdata_dirty(f), 1);
	CHECK(store_mem_get_bytes(e.mem, "sf", &(size_t){ 0 }) == NULL);
	/* truncate to 0 starts over */
	CHECK_INT(fdata_truncate(f, 0, &err), 0);
	CHECK_INT(fdata_write(f, 0, data, 1000, &err), 1000);
	CHECK_INT(commit(f, NULL), 0);
	CHECK(object_is(&e, "sf", data, 1000));

	/* a part that fails for good fails the write or the commit */
	fdata_destroy(f);
	f = fdata_create(&e.opts, "sf2", 0, 0, NULL, 1);
	store_fault_fail_next(e.top, STORE_OP_MPU_PART, 100, CM_E_ACCESS_DENIED);
	{
		int failed = 0;
		for (size_t off = 0; off < 300000 && !failed; off += 4096) {
			size_t n = 300000 - off < 4096 ? 300000 - off : 4096;
			failed = fdata_write(f, off, data + off, n, &err) < 0;
		}
		if (!failed)
			CHECK_INT(fdata_commit(f, NULL, NULL, NULL, &err), -EACCES);
	}
	CHECK_INT(fdata_dirty(f), 1);
	store_fault_fail_next(e.top, STORE_OP_MPU_PART, 0, CM_OK);
	fdata_destroy(f);
	CHECK_INT(store_mem_pending_uploads(e.mem), 0);
	free(data);
	env_release(&e);
}

TEST(test_transient_part_failures_retried)
{
	struct env e;
	char *data = pattern(0, 512u << 10, 11);
	struct fdata *f;
	struct cm_err err;

	env_init(&e, 64u << 20);
	/* streamed: the uploader retries */
	f = fdata_create(&e.opts, "tr1", 0, 0, NULL, 1);
	store_fault_fail_next(e.top, STORE_OP_MPU_PART, 2, CM_E_TRANSIENT);
	CHECK(write_chunks(f, 0, data, 512u << 10, 65536));
	CHECK_INT(commit(f, NULL), 0);
	CHECK(object_is(&e, "tr1", data, 512u << 10));
	CHECK_INT(store_fault_injected(e.top), 2);
	fdata_destroy(f);

	/* staged: parts from the file are retried too, and cut GETs resumed */
	f = fdata_create(&e.opts, "tr2", 0, 0, NULL, 1);
	CHECK_INT(fdata_write(f, 100, data + 100, (512u << 10) - 100, &err), (512u << 10) - 100);
	CHECK_INT(fdata_write(f, 0, data, 100, &err), 100);
	store_fault_fail_next(e.top, STORE_OP_MPU_PART, 2, CM_E_TRANSIENT);
	CHECK_INT(commit(f, NULL), 0);
	CHECK(object_is(&e, "tr2", data, 512u << 10));
	fdata_destroy(f);

	f = fdata_create(&e.opts, "tr2", 1, 512u << 10, "etag", 0);
	store_fault_set_truncate_gets(e.top, 0.5);
	CHECK_INT(fdata_write(f, 5, "xyz", 3, &err), 3);
	store_fault_set_truncate_gets(e.top, 0.0);
	memcpy(data + 5, "xyz", 3);
	CHECK_INT(commit(f, NULL), 0);
	CHECK(object_is(&e, "tr2", data, 512u << 10));
	fdata_destroy(f);
	free(data);
	env_release(&e);
}

TEST(test_disk_limit)
{
	struct env e;
	char *data = pattern(0, 50000, 12);
	struct fdata *f, *g;
	struct cm_err err;

	env_init(&e, 100000);
	REQUIRE(store_mem_put_bytes(e.mem, "d", data, 50000) == 0);
	f = fdata_create(&e.opts, "d", 1, 50000, "etag", 0);
	CHECK_INT(fdata_write(f, 60000, "0123456789", 10, &err), 10);
	CHECK_INT(fdata_disk_used(e.disk), 60010);
	CHECK_INT(fdata_write(f, 200000, "0123456789", 10, &err), -ENOSPC);
	CHECK_INT(err.status, CM_E_IO);
	CHECK_STR(err.message, "staging disk limit reached");
	CHECK_INT(fdata_size(f), 60010);
	CHECK_INT(fdata_disk_used(e.disk), 60010);
	CHECK_INT(fdata_truncate(f, 200000, &err), -ENOSPC);
	/* another file shares the budget */
	g = fdata_create(&e.opts, "d2", 0, 0, NULL, 1);
	CHECK_INT(fdata_write(g, 50000, "x", 1, &err), -ENOSPC);
	CHECK_INT(fdata_write(g, 30000, "x", 1, &err), 1);
	CHECK_INT(fdata_disk_used(e.disk), 90011);
	CHECK_INT(fdata_truncate(f, 10, &err), 0);
	CHECK_INT(fdata_disk_used(e.disk), 30011);
	CHECK_INT(commit(f, NULL), 0);
	CHECK(object_is(&e, "d", data, 10));
	fdata_destroy(g);
	fdata_destroy(f);
	free(data);
	env_release(&e);
}

TEST(test_set_key)
{
	struct env e;
	char *data = pattern(0, 300000, 13);
	struct fdata *f;
	struct cm_err err;

	env_init(&e, 64u << 20);
	f = fdata_create(&e.opts, "k1", 0, 0, NULL, 1);
	CHECK_INT(fdata_write(f, 0, data, 1000, &err), 1000);
	fdata_set_key(f, "k2");
	CHECK_INT(commit(f, NULL), 0);
	CHECK(object_is(&e, "k2", data, 1000));
	CHECK(store_mem_get_bytes(e.mem, "k1", &(size_t){ 0 }) == NULL);
	fdata_destroy(f);

	/* an upload under way is moved to the new key */
	f = fdata_create(&e.opts, "k3", 0, 0, NULL, 1);
	CHECK(write_chunks(f, 0, data, 200000, 4096));
	fdata_set_key(f, "k4");
	CHECK(store_mem_get_bytes(e.mem, "k3", &(size_t){ 0 }) == NULL);
	CHECK(write_chunks(f, 200000, data + 200000, 100000, 4096));
	CHECK_INT(commit(f, NULL), 0);
	CHECK(object_is(&e, "k4", data, 300000));
	CHECK(store_mem_get_bytes(e.mem, "k3", &(size_t){ 0 }) == NULL);
	fdata_destroy(f);

	/* a staged file commits to the new key */
	store_mem_put_bytes(e.mem, "k5", data, 300000);
	f = fdata_create(&e.opts, "k5", 1, 300000, "etag", 0);
	CHECK_INT(fdata_write(f, 7, "abc", 3, &err), 3);
	fdata_set_key(f, "k6");
	/* the filesystem moves the object on rename */
	store_copy(e.mem, "k6", "k5", NULL, NULL, NULL);
	store_del(e.mem, "k5", NULL);
	memcpy(data + 7, "abc", 3);
	CHECK_INT(commit(f, NULL), 0);
	CHECK(object_is(&e, "k6", data, 300000));
	fdata_destroy(f);
	free(data);
	env_release(&e);
}

TEST(test_staged_3mib_fd_parts)
{
	struct env e;
	size_t len = 3u << 20;
	char *data = pattern(0, len, 14);
	struct fdata *f;
	struct cm_err err;

	env_init(&e, 64u << 20);
	f = fdata_create(&e.opts, "big3", 0, 0, NULL, 1);
	/* back to front: never a stream */
	for (size_t off = len; off > 0;) {
		size_t n = off < 100000 ? off : 100000;
		off -= n;
		CHECK_INT(fdata_write(f, off, data + off, n, &err), (ssize_t)n);
	}
	CHECK_INT(fdata_state(f), FDATA_STAGED);
	CHECK_INT(fdata_disk_used(e.disk), len);
	CHECK_INT(commit(f, NULL), 0);
	CHECK(object_is(&e, "big3", data, len));
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_MPU_PART), len / PART);
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_GET), 0);
	/* parts came from the file, not from memory */
	CHECK_INT(membudget_peak(e.budget), 0);
	fdata_destroy(f);
	free(data);
	env_release(&e);
}

TEST(test_metadata)
{
	struct env e;
	char *data = pattern(0, 300000, 15);
	struct s3_meta meta = { 0 };
	struct s3_put_opts opts = { .content_type = "text/plain", .meta = &meta };
	struct s3_object_head head;
	struct fdata *f;
	struct cm_err err;
	char *etag = NULL;

	env_init(&e, 64u << 20);
	s3_meta_set(&meta, "mode", "33188");
	/* small: one PUT with the metadata */
	f = fdata_create(&e.opts, "m1", 0, 0, NULL, 1);
	CHECK_INT(fdata_write(f, 0, data, 100, &err), 100);
	CHECK_INT(fdata_commit(f, &opts, &etag, NULL, &err), 0);
	free(etag);
	CHECK_INT(store_head(e.mem, "m1", &head, &err), CM_OK);
	CHECK_STR(s3_meta_get(&head.meta, "mode"), "33188");
	s3_object_head_release(&head);
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_COPY), 0);
	fdata_destroy(f);

	/* streamed multipart: fixed by a copy onto itself */
	f = fdata_create(&e.opts, "m2", 0, 0, NULL, 1);
	CHECK(write_chunks(f, 0, data, 300000, 4096));
	CHECK_INT(fdata_commit(f, &opts, &etag, NULL, &err), 0);
	CHECK(etag != NULL);
	free(etag);
	CHECK_INT(store_head(e.mem, "m2", &head, &err), CM_OK);
	CHECK_STR(s3_meta_get(&head.meta, "mode"), "33188");
	CHECK_STR(head.content_type, "text/plain");
	CHECK_INT(head.size, 300000);
	s3_object_head_release(&head);
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_COPY), 1);
	CHECK(object_is(&e, "m2", data, 300000));
	/* the next stream starts with the last commit's metadata: no copy */
	CHECK_INT(fdata_truncate(f, 0, &err), 0);
	CHECK(write_chunks(f, 0, data, 300000, 4096));
	CHECK_INT(fdata_commit(f, &opts, NULL, NULL, &err), 0);
	CHECK_INT(store_mem_calls(e.mem, STORE_OP_COPY), 1);
	fdata_destroy(f);
	s3_meta_release(&meta);
	free(data);
	env_release(&e);
}

TEST(test_clean_read_from_store)
{
	struct env e;
	char *data = pattern(0, 100000, 16);
	struct fdata *f;
	struct cm_err err;
	char buf[5000];

	env_init(&e, 64u << 20);
	REQUIRE(store_mem_put_bytes(e.mem, "cr", data, 100000) == 0);
	f = fdata_create(&e.opts, "cr", 1, 100000, "etag", 0);
	CHECK_INT(fdata_read(f, 98000, sizeof(buf), buf, &err), 2000);
	CHECK_MEM(buf, data + 98000, 2000);
	CHECK_INT(fdata_read(f, 100000, sizeof(buf), buf, &err), 0);
	CHECK_INT(fdata_state(f), FDATA_CLEAN);
	CHECK_INT(fdata_disk_used(e.disk), 0);
	fdata_destroy(f);
	free(data);
	env_release(&e);
}

/* xorshift64*: reproducible */
static uint64_t rnd_state;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return rnd_state * 2685821657736338717ULL;
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

TEST(test_random_ops)
{
	enum { MAX = 700000, OPS = 400, COMMIT_EVERY = 23 };
	struct env e;
	char *shadow = xcalloc(1, MAX);
	char *buf = xmalloc(MAX);
	char *src = pattern(0, MAX, 17);
	uint64_t size = 200000;
	struct fdata *f;
	struct cm_err err;
	int streams = 0, staged = 0;

	env_init(&e, 64u << 20);
	rnd_state = 0x9e3779b97f4a7c15ULL;
	memcpy(shadow, src, size);
	REQUIRE(store_mem_put_bytes(e.mem, "rnd", shadow, size) == 0);
	f = fdata_create(&e.opts, "rnd", 1, size, "etag", 0);
	for (int op = 1; op <= OPS; op++) {
		uint64_t kind = rnd_below(100);
		if (kind < 45) {
			/* write: often appending, so streams happen too */
			uint64_t off = rnd_below(4) == 0 ? size : rnd_below(size + 50000);
			uint64_t len = 1 + rnd_below(rnd_below(4) == 0 ? 100000 : 5000);
			if (off + len > MAX)
				continue;
			for (uint64_t i = 0; i < len; i++)
				shadow[off + i] = (char)(src[(off + i * 7) % MAX] ^ op);
			if (fdata_write(f, off, shadow + off, len, &err) != (ssize_t)len) {
				CHECK(!"write failed");
				break;
			}
			if (off > size)
				memset(shadow + size, 0, off - size);
			if (off + len > size)
				size = off + len;
		} else if (kind < 60) {
			uint64_t n = rnd_below(8) == 0 ? 0 : rnd_below(MAX);
			REQUIRE(fdata_truncate(f, n, &err) == 0);
			if (n > size)
				memset(shadow + size, 0, n - size);
			size = n;
		} else if (kind < 90) {
			uint64_t off = rnd_below(size + 10);
			uint64_t len = rnd_below(60000);
			uint64_t want = off >= size ? 0 : (size - off < len ? size - off : len);
			ssize_t n = fdata_read(f, off, len, buf, &err);
			CHECK_INT(n, want);
			if (n > 0 && memcmp(buf, shadow + off, (size_t)n) != 0) {
				CHECK(!"read differs from the shadow");
				break;
			}
		} else {
			/* a run of sequential writes from 0 (a rewrite: STREAM) */
			uint64_t len = 1 + rnd_below(300000);
			REQUIRE(fdata_truncate(f, 0, &err) == 0);
			for (uint64_t i = 0; i < len; i++)
				shadow[i] = (char)(src[i] + op);
			REQUIRE(write_chunks(f, 0, shadow, len, 1 + rnd_below(70000)));
			size = len;
		}
		CHECK_INT(fdata_size(f), size);
		if (fdata_state(f) == FDATA_STREAM)
			streams++;
		else if (fdata_state(f) == FDATA_STAGED)
			staged++;
		if (op % COMMIT_EVERY == 0 || op == OPS) {
			uint64_t got = 0;
			REQUIRE(commit(f, &got) == 0);
			CHECK_INT(got, size);
			if (!object_is(&e, "rnd", shadow, size)) {
				CHECK(!"object differs from the shadow");
				break;
			}
		}
	}
	CHECK(streams > 0);
	CHECK(staged > 0);
	fdata_destroy(f);
	free(src);
	free(buf);
	free(shadow);
	env_release(&e);
}

TH_MAIN_BEGIN("test_fdata")
	log_set_level(LOG_LVL_ERROR);        /* the failure tests log expected errors */
	RUN(test_stream_sequential);
	RUN(test_small_stream_is_one_put);
	RUN(test_empty_new_file);
	RUN(test_gap_write);
	RUN(test_edit_middle_fetches_one_part);
	RUN(test_write_covering_part_skips_fetch);
	RUN(test_truncate_existing);
	RUN(test_append_existing);
	RUN(test_read_your_writes);
	RUN(test_commit_failure_retried);
	RUN(test_stream_failure_is_sticky);
	RUN(test_transient_part_failures_retried);
	RUN(test_disk_limit);
	RUN(test_set_key);
	RUN(test_staged_3mib_fd_parts);
	RUN(test_metadata);
	RUN(test_clean_read_from_store);
	RUN(test_random_ops);
TH_MAIN_END
