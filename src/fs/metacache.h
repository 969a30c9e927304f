/*
 * metacache.h - what object headers said (mode, uid, gid, mtime), kept on disk
 * across mounts, so that after a remount a listing entry that still matches
 * gives the full attributes with no HEAD (ARCHITECTURE.md, fast rule 7).
 *
 * One SQLite database per bucket and prefix in the cache directory. An entry
 * matches a listed object when both its ETag and its LastModified are equal:
 * the ETag alone is not enough, because a metadata-only CopyObject keeps a
 * single-part object's ETag. Our own uploads and copies learn no LastModified
 * (PutObject does not return one), so they are stored with last_modified 0,
 * which matches the first listing that shows the same ETag; that listing's
 * time is then recorded. A metadata-only change made by another tool between
 * our write and our next listing of it would be missed: a small window, and
 * a HEAD (open after the TTL, --posix-metadata) corrects it.
 *
 * Thread-safe (SQLite in serialized mode, WAL journal). A database that cannot
 * be opened or is corrupt is recreated; failures only cost HEADs, never
 * correctness, so they are logged, not returned.
 */
#ifndef CM_FS_METACACHE_H
#define CM_FS_METACACHE_H

#include <time.h>

#include "fs/meta.h"

struct metacache;

/* Open (or create) the cache at path. Returns NULL (after a log line) on failure. */
struct metacache *metacache_open(const char *path);
void metacache_close(struct metacache *mc);

/*
 * Look key up. Fills a's mode/uid/gid/mtime and returns 1 when an entry with
 * this etag and last_modified (or a stored 0, then upgraded) exists; else 0.
 */
int metacache_get(struct metacache *mc, const char *key, const char *etag, time_t last_modified,
		  struct fs_attr *a);

/* One lookup of metacache_get_many. */
struct metacache_query {
	const char *key;
	const char *etag;
	time_t last_modified;
	struct fs_attr *attr;           /* filled when found */
	int found;
};

/*
 * Many lookups as one read transaction (a listing page): what each would
 * cost alone is mostly SQLite taking and dropping its file locks.
 */
void metacache_get_many(struct metacache *mc, struct metacache_query *q, size_t n);

/* Whether any entry for key exists (whatever its ETag): a HEAD may be skipped. */
int metacache_known(struct metacache *mc, const char *key);

/* Remember a's mode/uid/gid/mtime for (key, etag, last_modified). */
void metacache_put(struct metacache *mc, const char *key, const char *etag, time_t last_modified,
		   const struct fs_attr *a);

/* Forget key (deleted or renamed away). */
void metacache_del(struct metacache *mc, const char *key);

#endif
