/*
 * fuse_stub.h - a stand-in for libfuse's low-level reply API, so that unit
 * tests can call the filesystem's operations (fs_operations()) directly, with
 * no kernel and no libfuse linked in.
 *
 * A test fills a struct fuse_req (stub_req_init), calls an operation with it,
 * and reads back the reply the operation gave: the fuse_reply_* functions
 * record it in the request instead of writing to /dev/fuse. Every operation
 * of fs.c replies on the thread that called it, before it returns, so no
 * waiting is needed; `replies` counts the replies, and anything but exactly
 * one after an operation returns is a bug (a lost or a double reply).
 *
 * Directory entries (fuse_add_direntry, fuse_add_direntry_plus) are written
 * in a format of our own, with the same contract as libfuse's: the size an
 * entry needs is returned, and it is written only if it fits.
 * stub_dirent_next decodes them.
 *
 * struct fuse_session is ours as well: give one to fs_set_session and it
 * counts the cache invalidations fs.c sends to the kernel.
 */
#ifndef CM_FUSE_STUB_H
#define CM_FUSE_STUB_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

#include <pthread.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

enum stub_reply {
	STUB_NO_REPLY = 0,
	STUB_ERR,               /* fuse_reply_err (err 0 is a success without data) */
	STUB_NONE,              /* fuse_reply_none (forget) */
	STUB_ENTRY,
	STUB_CREATE,
	STUB_ATTR,
	STUB_READLINK,
	STUB_OPEN,
	STUB_WRITE,
	STUB_BUF,
	STUB_STATFS,
};

struct fuse_req {
	void *userdata;                 /* what fuse_req_userdata returns (the struct fs) */
	struct fuse_ctx ctx;            /* the caller's uid, gid, pid */
	int replies;                    /* replies given; exactly one is right */
	enum stub_reply kind;           /* the first reply's kind */
	int err;                        /* STUB_ERR: the errno (0: success) */
	struct fuse_entry_param entry;  /* STUB_ENTRY, STUB_CREATE */
	struct fuse_file_info fi;       /* STUB_OPEN, STUB_CREATE */
	struct stat attr;               /* STUB_ATTR */
	double attr_timeout;
	char *data;                     /* STUB_BUF, STUB_READLINK (NUL-terminated copy); malloc'd */
	size_t len;                     /* STUB_BUF bytes, STUB_WRITE counts */
	struct statvfs statfs;          /* STUB_STATFS */
};

/* Kernel notifications fs.c sent (through fs_set_session). */
struct fuse_session {
	pthread_mutex_t lock;
	int inval_inode;                /* protected by lock: fuse_lowlevel_notify_inval_inode calls */
	fuse_ino_t last_inval_ino;      /* protected by lock */
	int inval_entry;                /* protected by lock: fuse_lowlevel_notify_inval_entry calls */
};

void stub_req_init(struct fuse_req *req, void *userdata, uid_t uid, gid_t gid);
/* Free what the reply left in req (data). */
void stub_req_release(struct fuse_req *req);

void stub_session_init(struct fuse_session *se);
void stub_session_release(struct fuse_session *se);

/* One decoded directory entry. */
struct stub_dirent {
	char name[256];
	off_t off;                      /* the offset to continue after this entry */
	int plus;                       /* written by fuse_add_direntry_plus */
	struct fuse_entry_param entry;  /* plus: as given; plain: ino and attr from the stat */
};

/*
 * Decode the entry at *pos of a readdir reply of len bytes and advance *pos.
 * Returns 1, or 0 at the end (or on a malformed record).
 */
int stub_dirent_next(const char *buf, size_t len, size_t *pos, struct stub_dirent *out);

#endif
