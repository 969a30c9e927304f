/*
 * fuse_stub.c - the libfuse low-level reply API recorded into the request
 * (see fuse_stub.h). Linked into tests instead of libfuse: only the functions
 * fs.c calls are here (`nm -u` on fs.c's object lists them).
 *
 * A reply records its kind and data only if it is the request's first; later
 * ones are counted (libfuse would have freed the request: a use after free).
 */
#include "fuse_stub.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

/* The record fuse_add_direntry{,_plus} write: this header, the name, padding to 8. */
struct stub_dirent_hdr {
	uint32_t reclen;
	uint32_t namelen;
	int64_t off;
	int32_t plus;
	int32_t pad;
	struct fuse_entry_param entry;
};

#define STUB_ALIGN(n) (((n) + 7) & ~(size_t)7)

void stub_req_init(struct fuse_req *req, void *userdata, uid_t uid, gid_t gid)
{
	memset(req, 0, sizeof(*req));
	req->userdata = userdata;
	req->ctx.uid = uid;
	req->ctx.gid = gid;
	req->ctx.pid = 4242;
	req->ctx.umask = 022;
}

void stub_req_release(struct fuse_req *req)
{
	free(req->data);
	req->data = NULL;
}

void stub_session_init(struct fuse_session *se)
{
	memset(se, 0, sizeof(*se));
	pthread_mutex_init(&se->lock, NULL);
}

void stub_session_release(struct fuse_session *se)
{
	pthread_mutex_destroy(&se->lock);
}

/* Count a reply; 1 if it is the first (and should be recorded). */
static int first_reply(fuse_req_t req, enum stub_reply kind)
{
	if (req->replies++)
		return 0;
	req->kind = kind;
	return 1;
}

void *fuse_req_userdata(fuse_req_t req)
{
	return req->userdata;
}

const struct fuse_ctx *fuse_req_ctx(fuse_req_t req)
{
	return &req->ctx;
}

int fuse_reply_err(fuse_req_t req, int err)
{
	if (first_reply(req, STUB_ERR))
		req->err = err;
	return 0;
}

void fuse_reply_none(fuse_req_t req)
{
	first_reply(req, STUB_NONE);
}

int fuse_reply_entry(fuse_req_t req, const struct fuse_entry_param *e)
{
	if (first_reply(req, STUB_ENTRY))
		req->entry = *e;
	return 0;
}

int fuse_reply_create(fuse_req_t req, const struct fuse_entry_param *e, const struct fuse_file_info *fi)
{
	if (first_reply(req, STUB_CREATE)) {
		req->entry = *e;
		req->fi = *fi;
	}
	return 0;
}

int fuse_reply_attr(fuse_req_t req, const struct stat *attr, double attr_timeout)
{
	if (first_reply(req, STUB_ATTR)) {
		req->attr = *attr;
		req->attr_timeout = attr_timeout;
	}
	return 0;
}

int fuse_reply_readlink(fuse_req_t req, const char *link)
{
	if (first_reply(req, STUB_READLINK)) {
		req->data = xstrdup(link);
		req->len = strlen(link);
	}
	return 0;
}

int fuse_reply_open(fuse_req_t req, const struct fuse_file_info *fi)
{
	if (first_reply(req, STUB_OPEN))
		req->fi = *fi;
	return 0;
}

int fuse_reply_write(fuse_req_t req, size_t count)
{
	if (first_reply(req, STUB_WRITE))
		req->len = count;
	return 0;
}

int fuse_reply_buf(fuse_req_t req, const char *buf, size_t size)
{
	if (first_reply(req, STUB_BUF)) {
		req->data = xmalloc(size ? size : 1);
		if (size)
			memcpy(req->data, buf, size);
		req->len = size;
	}
	return 0;
}

int fuse_reply_statfs(fuse_req_t req, const struct statvfs *stbuf)
{
	if (first_reply(req, STUB_STATFS))
		req->statfs = *stbuf;
	return 0;
}

/* Write one record if it fits; return the size it needs either way. */
static size_t add_entry(char *buf, size_t bufsize, const char *name, const struct fuse_entry_param *e,
			off_t off, int plus)
{
	struct stub_dirent_hdr h;
	size_t namelen = strlen(name);
	size_t need = STUB_ALIGN(sizeof(h) + namelen);

	if (!buf || need > bufsize)
		return need;
	memset(&h, 0, sizeof(h));
	h.reclen = (uint32_t)need;
	h.namelen = (uint32_t)namelen;
	h.off = off;
	h.plus = plus;
	h.entry = *e;
	memset(buf, 0, need);
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), name, namelen);
	return need;
}

size_t fuse_add_direntry(fuse_req_t req, char *buf, size_t bufsize, const char *name, const struct stat *stbuf,
			 off_t off)
{
	struct fuse_entry_param e;

	(void)req;
	memset(&e, 0, sizeof(e));
	e.ino = stbuf->st_ino;
	e.attr = *stbuf;
	return add_entry(buf, bufsize, name, &e, off, 0);
}

size_t fuse_add_direntry_plus(fuse_req_t req, char *buf, size_t bufsize, const char *name,
			      const struct fuse_entry_param *e, off_t off)
{
	(void)req;
	return add_entry(buf, bufsize, name, e, off, 1);
}

int stub_dirent_next(const char *buf, size_t len, size_t *pos, struct stub_dirent *out)
{
	struct stub_dirent_hdr h;

	if (*pos + sizeof(h) > len)
		return 0;
	memcpy(&h, buf + *pos, sizeof(h));
	if (h.reclen < sizeof(h) + h.namelen || *pos + h.reclen > len || h.namelen >= sizeof(out->name))
		return 0;
	memset(out, 0, sizeof(*out));
	memcpy(out->name, buf + *pos + sizeof(h), h.namelen);
	out->off = (off_t)h.off;
	out->plus = h.plus;
	out->entry = h.entry;
	*pos += h.reclen;
	return 1;
}

int fuse_lowlevel_notify_inval_inode(struct fuse_session *se, fuse_ino_t ino, off_t off, off_t len)
{
	(void)off;
	(void)len;
	pthread_mutex_lock(&se->lock);
	se->inval_inode++;
	se->last_inval_ino = ino;
	pthread_mutex_unlock(&se->lock);
	return 0;
}

int fuse_lowlevel_notify_inval_entry(struct fuse_session *se, fuse_ino_t parent, const char *name,
				     size_t namelen)
{
	(void)parent;
	(void)name;
	(void)namelen;
	pthread_mutex_lock(&se->lock);
	se->inval_entry++;
	pthread_mutex_unlock(&se->lock);
	return 0;
}
