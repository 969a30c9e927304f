/*
 * reader.h - reads of one object for the filesystem: sequential detection and
 * a prefetch window of parallel ranged GETs, within the mount's memory budget.
 *
 * A reader serves one open object (key, size, ETag as known at open). It keeps
 * a window of parts (part_size each, aligned to part_size) ahead of the
 * reader. Sequential access (a read starting where the previous one ended, or
 * inside the current window) grows the window, doubling from min_window up to
 * max_window; a jump elsewhere shrinks it back to min_window and drops parts
 * that are no longer useful. Random reads (no streak) fetch only the bytes
 * asked for (a single ranged GET, rounded up to 64 KiB), never whole parts.
 * No read downloads the whole object first.
 *
 * Random access that goes on and waits (fill_after reads fetched straight
 * from the store, 5 ms or more each on average: a server a round trip away)
 * fills a local copy of an object whose ETag is known: the whole object is
 * fetched in parts, 4 at a time, each job queued again after each part, into
 * an unlinked sparse file of the staging directory (when the staging budget
 * and the disk have room: see fdata_disk_take_file), from the latest miss on;
 * reads of parts already there are served from it, the others still fetch
 * just their bytes. So a program reading a big object at random (a database,
 * an archive index) costs one download of it, not a round trip per read. The
 * copy lives as long as the reader.
 *
 * Parts are fetched by jobs on the work queue; a reader waiting for a byte
 * waits only until that byte has arrived, not for the rest of its part. Memory for parts is taken from the
 * budget before a fetch starts and given back when the part is dropped, so
 * readers and writers of a mount share one cap. A part whose fetch failed is
 * retried once on a retryable status, then its error is returned to the read
 * that needs it (and the part dropped, so a later read tries again).
 *
 * Thread-safe: FUSE may call reader_read from several threads at once on one
 * handle (one mutex; no lock is held across a network call).
 */
#ifndef CM_FS_READER_H
#define CM_FS_READER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "common/status.h"
#include "common/workq.h"
#include "store/store.h"
#include "store/transfer.h"

struct fdata_disk;

struct reader_opts {
	uint64_t part_size;             /* 0: 8 MiB */
	uint64_t min_window;            /* 0: one part */
	uint64_t max_window;            /* 0: 64 MiB */
	struct membudget *budget;       /* borrowed; required */
	struct workq *workq;            /* borrowed; required */
	struct fdata_disk *disk;        /* borrowed; NULL: objects are never filled */
	unsigned fill_after;            /* random reads before the fill starts; 0: never */
};

/* Counters of one reader, for tests and the manager's statistics. */
struct reader_stats {
	uint64_t gets;                  /* ranged GETs started */
	uint64_t bytes_fetched;         /* bytes received from the store */
	uint64_t bytes_served;          /* bytes handed to reader_read callers */
	uint64_t window;                /* current window size in bytes */
	uint64_t fill_parts;            /* parts written to the local copy */
	uint64_t fill_reads;            /* reads (or pieces) served from it */
};

struct reader;

/* key and etag are copied. size is the object's size; reads past it return 0. */
struct reader *reader_create(struct store *s, const char *key, uint64_t size, const char *etag,
			     const struct reader_opts *opts);

/*
 * Read up to len bytes at off into buf. Returns the number of bytes read (short
 * only at end of object; 0 at or past it), or -1 with err filled.
 */
ssize_t reader_read(struct reader *r, uint64_t off, size_t len, char *buf, struct cm_err *err);

/*
 * Hands a read's bytes to its reader_read_reply caller: iov[0..n) in order,
 * borrowed for the call only. Called without the reader's lock.
 */
typedef void (*reader_reply_fn)(void *ctx, const struct iovec *iov, int n);

/*
 * Like reader_read, but gives the bytes to reply(ctx, ...) instead of copying
 * them into a caller's buffer: when read-ahead parts hold them all, iov points
 * into those parts (no copy); otherwise into a buffer of this call. reply is
 * called exactly once when the result is >= 0 (with one empty iovec at or past
 * the end), never on failure. Returns the number of bytes, or -1 with err filled.
 */
ssize_t reader_read_reply(struct reader *r, uint64_t off, size_t len, reader_reply_fn reply,
			  void *ctx, struct cm_err *err);

/*
 * Give a new reader the whole object, already fetched (size <= part size):
 * data, of size bytes from membudget_alloc of the reader's budget, becomes
 * the reader's (freed as its part). Before any read; returns 0, or -1 (the
 * caller keeps data) when it does not fit in one part.
 */
int reader_adopt(struct reader *r, char *data);

void reader_stats(struct reader *r, struct reader_stats *out);

/*
 * At the end of a mount, before the store goes (readers of files the kernel
 * never released may still be fetching): every reader's fetches stop, and
 * this returns once none is running. For good: no reader fetches after it.
 */
void reader_shutdown(void);

/* Waits for fetches in flight, frees every part. NULL is a no-op. */
void reader_destroy(struct reader *r);

#endif
