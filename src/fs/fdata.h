/*
 * fdata.h - the contents of one file while it is open for writing: streaming
 * multipart upload for files written from start to end, a local staging file
 * for everything else (random writes, appends to existing objects, truncates,
 * rewrites, reads of data not yet uploaded).
 *
 * One fdata per inode, shared by every handle open on it; the filesystem
 * creates it at the first open for writing (or at create) and destroys it when
 * the last handle is released and nothing is dirty.
 *
 * States:
 *   CLEAN     the object in the store is the file's content (size, etag known).
 *             Nothing local. A write at offset 0 to an object of size 0 (or a
 *             new/truncated file) enters STREAM; any other change enters STAGED.
 *   STREAM    writes so far were contiguous from offset 0: bytes go to an
 *             uploader (store/transfer.h) as they come; nothing is kept
 *             locally beyond the part being filled. A write at another offset, a
 *             truncate, or a read of the file makes it switch to STAGED: the
 *             bytes streamed so far must become readable, so the upload is
 *             completed as it stands, and the staging file is filled from the
 *             store (below).
 *   STAGED    the file's content is in an unlinked local file in the cache
 *             directory (O_TMPFILE); ranges not yet copied from the object are
 *             fetched on first touch, at part granularity (a bitmap of present
 *             parts), so a small edit to a big object does not download it all
 *             before the edit; at commit every missing part is fetched, then
 *             the whole file is uploaded (multipart from the staging file, parts
 *             read with pread, several in flight).
 * dirty: the file differs from the object (set by write, truncate, create).
 *
 * Commit (fdata_commit, called from flush and fsync) makes the object equal to
 * the file, returning only once the store acknowledged it, with the metadata
 * given (mode, uid, gid, mtime headers), and reports the new ETag and size. A
 * failed commit returns the error and leaves the file dirty (a later flush
 * tries again): nothing the program was told is written is dropped silently.
 * After a successful commit the state is CLEAN (from STREAM), or stays STAGED
 * but clean (the staging file keeps serving reads until the fdata is destroyed).
 *
 * Disk: staging files count against a shared disk budget (struct fdata_disk);
 * a write that would pass it fails with ENOSPC. Memory: stream parts come from
 * the mount's membudget.
 *
 * Thread-safety: every call takes the fdata's own mutex; calls on one fdata
 * are serialised (FUSE sends writes of one file in order per handle anyway).
 * Network calls are made with the mutex held: a commit blocks other calls on
 * the same file, which is the point.
 */
#ifndef CM_FS_FDATA_H
#define CM_FS_FDATA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/status.h"
#include "common/workq.h"
#include "store/store.h"
#include "store/transfer.h"

/* Disk use of all staging files of a mount. */
struct fdata_disk;
/* dir: where staging files go (created 0700 if missing). limit: bytes. */
struct fdata_disk *fdata_disk_create(const char *dir, uint64_t limit);
void fdata_disk_destroy(struct fdata_disk *d);
uint64_t fdata_disk_used(struct fdata_disk *d);
/*
 * An unlinked file of size bytes (sparse) in the staging directory for a
 * reader's local copy of an object, or -1. Only taken when it leaves the
 * staging files room: with it the budget stays at most half used, and the
 * disk keeps twice size plus 1 GiB free. fdata_disk_put_file gives it back.
 */
int fdata_disk_take_file(struct fdata_disk *d, uint64_t size);
void fdata_disk_put_file(struct fdata_disk *d, int fd, uint64_t size);

struct fdata_opts {
	struct store *store;            /* borrowed */
	struct workq *workq;            /* borrowed */
	struct membudget *budget;       /* borrowed */
	struct fdata_disk *disk;        /* borrowed */
	uint64_t part_size;             /* upload and staging-fetch part size; 0: 8 MiB */
	int concurrency;                /* parts in flight; 0: 4 */
};

enum fdata_state {
	FDATA_CLEAN = 0,
	FDATA_STREAM,
	FDATA_STAGED,
};

struct fdata;

/*
 * An fdata for key. exists: the object exists with size and etag (etag may be
 * NULL when exists is 0). truncate: the file starts empty and dirty (O_TRUNC,
 * or a newly created file, for which exists is 0). All strings are copied.
 */
struct fdata *fdata_create(const struct fdata_opts *opts, const char *key, int exists,
			   uint64_t size, const char *etag, int truncate);

/* Write len bytes at off. Returns len, or -errno (ENOSPC, EIO, ENOMEM...) with err filled. */
ssize_t fdata_write(struct fdata *f, uint64_t off, const char *buf, size_t len, struct cm_err *err);

/*
 * Read up to len bytes at off (short at end of file). In CLEAN state this
 * reads from the store directly (callers normally use a reader instead and
 * call this only when fdata_dirty() or the state is not CLEAN). Returns the
 * count or -errno.
 */
ssize_t fdata_read(struct fdata *f, uint64_t off, size_t len, char *buf, struct cm_err *err);

/* Set the size (shrink or grow with zeros). Returns 0 or -errno. */
int fdata_truncate(struct fdata *f, uint64_t size, struct cm_err *err);

/*
 * Make the object equal to the file, with opts's content type and metadata.
 * Returns 0 (and the new ETag in *etag, malloc'd, may be "" when the server
 * answers none; the size in *size) or -errno with err filled. Not dirty: 0 at
 * once, *etag NULL.
 */
int fdata_commit(struct fdata *f, const struct s3_put_opts *opts, char **etag, uint64_t *size,
		 struct cm_err *err);

/*
 * Make the file wholly local (STAGED with every part of the object fetched)
 * so it stays readable and writable after its key is deleted: unlink of an
 * open file. Returns 0 or -errno.
 */
int fdata_detach(struct fdata *f, struct cm_err *err);

/* Rename the key the next commit writes to (after a rename of the open file). */
void fdata_set_key(struct fdata *f, const char *key);

uint64_t fdata_size(struct fdata *f);
int fdata_dirty(struct fdata *f);
enum fdata_state fdata_state(struct fdata *f);

/* Drop everything (an uncommitted upload is aborted). NULL is a no-op. */
void fdata_destroy(struct fdata *f);

#endif
