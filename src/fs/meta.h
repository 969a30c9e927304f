/*
 * meta.h - file attributes as S3 object metadata, the way s3fs keeps them, and
 * which object keys can be file names.
 *
 * s3fs stores x-amz-meta-mode (decimal st_mode, type bits included),
 * x-amz-meta-uid, x-amz-meta-gid and x-amz-meta-mtime (decimal seconds;
 * rclone writes a fraction, which we accept). We write those four, plus
 * x-amz-meta-mtime-nsec (ours) so sub-second times survive for rsync and make;
 * s3fs ignores it. A symlink is an object whose body is the target and whose
 * mode has S_IFLNK. A directory is a prefix, optionally with a "dir/" marker
 * object (Content-Type application/x-directory).
 */
#ifndef CM_FS_META_H
#define CM_FS_META_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "s3/s3.h"

struct fs_attr {
	uint64_t size;
	struct timespec mtime;
	mode_t mode;            /* type bits and permissions */
	uid_t uid;
	gid_t gid;
};

/* Which of an fs_attr's fields the headers set. */
enum {
	FS_META_MODE = 1,
	FS_META_UID = 2,
	FS_META_GID = 4,
	FS_META_MTIME = 8,
};

/*
 * Read mode/uid/gid/mtime from metadata into a (fields absent or malformed are
 * left as they are). Returns the FS_META_* mask of what was set. A mode whose
 * type bits are not a regular file, directory or symlink is ignored.
 */
int fs_meta_parse(const struct s3_meta *m, struct fs_attr *a);

/* Write a's mode/uid/gid/mtime as metadata into m (added or replaced). Returns 0 or -1. */
int fs_meta_build(const struct fs_attr *a, struct s3_meta *m);

/*
 * Whether the len bytes at name make a usable file name: not empty, not "."
 * or "..", at most 255 bytes, no '/', NUL or control character.
 */
int fs_name_valid(const char *name, size_t len);

#endif
