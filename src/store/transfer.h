/*
 * transfer.h - streaming uploads and parallel ranged downloads over a store,
 * within a memory budget. Used by the filesystem and by `cloudmount cp` alike.
 *
 * The memory budget is shared by everything that holds data buffers in a
 * process (write parts and read-ahead): acquiring blocks while the budget is
 * spent, so writers wait instead of growing. A single request larger than the
 * whole budget is let through when nothing else is held, so it cannot
 * deadlock.
 *
 * The uploader takes bytes in order. Until one part is full nothing is sent;
 * a small file becomes one PutObject at finish. A larger one becomes a
 * multipart upload whose parts go out while the writer goes on, several at
 * once. Part sizes grow with the file (base size for parts 1-1000, twice that
 * for 1001-2000, ...), so 10,000 parts reach past 5 TiB with an 8 MiB base.
 * A failed part is retried; if it still fails, the upload is aborted (or, on
 * servers without AbortMultipartUpload, left to expire and logged) and the
 * error is returned by the next write or by finish.
 */
#ifndef CM_TRANSFER_H
#define CM_TRANSFER_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "common/workq.h"
#include "store/store.h"

struct membudget;

struct membudget *membudget_create(uint64_t limit);
void membudget_destroy(struct membudget *b);
/* Block until n bytes fit (or nothing is held), then take them. */
void membudget_acquire(struct membudget *b, uint64_t n);
void membudget_release(struct membudget *b, uint64_t n);
/*
 * membudget_acquire(b, n) and a buffer of n bytes, often one given back
 * earlier (its contents are undefined). NULL if malloc fails (nothing taken).
 */
void *membudget_alloc(struct membudget *b, size_t n);
/* membudget_alloc when n bytes fit in the limit now, else NULL at once (nothing taken). */
void *membudget_try_alloc(struct membudget *b, size_t n);
/* Give back a buffer of n bytes from membudget_alloc (and its n bytes). NULL: no-op. */
void membudget_free(struct membudget *b, void *p, size_t n);
uint64_t membudget_used(struct membudget *b);
/* The most ever held at once. */
uint64_t membudget_peak(struct membudget *b);

#define TRANSFER_MIN_PART_SIZE (5ULL << 20)
#define TRANSFER_MAX_PART_SIZE (5ULL << 30)
#define TRANSFER_MAX_PARTS 10000

struct upload_opts {
	uint64_t part_size;             /* base part size; 0: 8 MiB; at least 5 MiB unless testing */
	int concurrency;                /* parts in flight; 0: 4 */
	struct membudget *budget;       /* borrowed; required */
	struct workq *workq;            /* borrowed; required */
	const struct s3_put_opts *put_opts;     /* copied at create; may be NULL */
	int part_retries;               /* extra tries of a failed part; 0: 2; <0: none */
};

/* Size of part number (1-based) for a base size: doubles every 1,000 parts. */
uint64_t transfer_part_size(uint64_t base, int number);

struct uploader;

/* Start an upload of key. Nothing is sent until data arrives. */
struct uploader *uploader_create(struct store *s, const char *key, const struct upload_opts *opts);
/* Append data. May block for memory or in-flight parts. Returns the upload's first error. */
enum cm_status uploader_write(struct uploader *u, const void *data, size_t len, struct cm_err *err);
/*
 * Send what is left and wait for every part; complete the upload. *etag (may be
 * NULL) receives the object's ETag. On failure the upload is aborted.
 */
enum cm_status uploader_finish(struct uploader *u, char **etag, struct cm_err *err);
/* Give up: wait for parts in flight, abort the multipart upload. */
void uploader_abort(struct uploader *u);
/* Bytes accepted so far. */
uint64_t uploader_bytes(const struct uploader *u);
/* Free (after finish or abort). NULL is a no-op. */
void uploader_destroy(struct uploader *u);

struct download_opts {
	uint64_t part_size;             /* 0: 8 MiB */
	int concurrency;                /* 0: 8 */
	struct membudget *budget;       /* borrowed; required */
	struct workq *workq;            /* borrowed; required */
};

/*
 * Read key [0, size) with parallel ranged GETs and hand the bytes to sink in
 * order. size is the object's size (from a listing or HEAD). Returns the first
 * error; the sink sees a prefix of the object in any case.
 */
enum cm_status download_to_sink(struct store *s, const char *key, uint64_t size,
				s3_sink_fn sink, void *ctx, const struct download_opts *opts,
				struct cm_err *err);

#endif
