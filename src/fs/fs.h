/*
 * fs.h - the FUSE filesystem: a bucket (or a prefix of one) as a directory
 * tree, over the store interface. fs/ never sees HTTP.
 *
 * The filesystem keeps an inode table (inode number <-> key, the kernel's
 * lookup counts, attributes with an expiry), per-directory listings (fetched
 * with ListObjectsV2 pages, served to readdirplus and to lookups within the
 * metadata TTL, so `ls -l` costs list requests only), per-file data state
 * while open for writing (fs/fdata.h) and a prefetching reader per open handle
 * (fs/reader.h).
 */
#ifndef CM_FS_H
#define CM_FS_H

#include <stdint.h>
#include <sys/types.h>

#include "common/workq.h"
#include "fs/fdata.h"
#include "fs/metacache.h"
#include "store/store.h"
#include "store/transfer.h"

struct fs_config {
	struct store *store;            /* borrowed */
	struct workq *workq;            /* borrowed */
	struct membudget *budget;       /* borrowed */
	struct fdata_disk *disk;        /* borrowed */
	struct metacache *metacache;    /* borrowed; NULL: attributes are not kept across mounts */
	const char *bucket;             /* for messages and statfs */
	double metadata_ttl;            /* seconds; 0 = revalidate every time */
	double negative_ttl;            /* seconds a "no such name" is trusted */
	uid_t uid;                      /* owner of objects without x-amz-meta-uid */
	gid_t gid;
	mode_t file_mode;               /* permissions of files without x-amz-meta-mode */
	mode_t dir_mode;
	int read_only;
	int posix_metadata;             /* HEAD listed objects the metadata cache does not know */
	uint64_t part_size;             /* upload part size; 0: 8 MiB */
	int concurrency;                /* parts in flight per file; 0: 4 */
	uint64_t copy_threshold;        /* server-side copies above this use multipart copy; 0: 5 GiB */
	uint64_t read_window;           /* how far sequential reads fetch ahead; 0: 64 MiB */
	unsigned fill_after;            /* random reads of a file before it is copied whole to
					   disk (reader.h); 0: never */
	int no_listing_refresh;         /* a lookup in a directory whose listing expired never
					   fetches the listing again beside it (tests that count
					   requests one by one) */
};

struct fs;
struct fuse_lowlevel_ops;

struct fs *fs_create(const struct fs_config *cfg);
/* The operations table for fuse_session_new; userdata is the struct fs. */
const struct fuse_lowlevel_ops *fs_operations(void);
struct fuse_session;
/* The session, for kernel cache invalidations; call once before the loop runs. */
void fs_set_session(struct fs *fs, struct fuse_session *se);

/* Commit every dirty file (before the process exits). Returns the number that failed. */
int fs_commit_all(struct fs *fs);
void fs_destroy(struct fs *fs);

/* Counters, for tests (--stats-file) and the manager. */
struct fs_stats {
	uint64_t lookups_remote;        /* lookups that needed the store */
	uint64_t lookups_cached;        /* answered from a listing or the inode table */
	uint64_t listings;              /* directory listings fetched */
	uint64_t ahead_hits;            /* opens served by the file read-ahead */
	uint64_t heads;                 /* HEAD requests made */
	uint64_t commits;
	uint64_t commit_failures;
	uint64_t skipped_keys;          /* keys that cannot be file names */
	uint64_t dirty_files;           /* files written and not yet acknowledged by the store */
	uint64_t dirty_bytes;           /* their sizes: what a crash now would lose */
};
void fs_get_stats(struct fs *fs, struct fs_stats *out);

#endif
