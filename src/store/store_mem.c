/*
 * store_mem.c - the in-memory store (see store_mem.h).
 *
 * Objects live in an array sorted by key (binary search; inserts shift). A
 * multipart upload keeps its parts in an array indexed by part number until
 * it is completed (concatenated into an object) or aborted. Listing walks
 * the sorted array from the first key past the continuation token, folding
 * keys that contain the delimiter after the prefix into common prefixes.
 * Invariant: objects[i].key < objects[i+1].key (strcmp).
 */
#include "store/store_mem.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/util.h"

struct mem_object {
	char *key;
	unsigned char *data;
	size_t len;
	char *etag;
	struct timespec mtime;
	char *content_type;
	struct s3_meta meta;
};

struct mem_part {
	unsigned char *data;
	size_t len;
	char *etag;
};

struct mem_upload {
	char *id;
	char *key;
	char *content_type;
	struct s3_meta meta;
	struct mem_part *parts;         /* index = part number; 0 unused */
	int n_parts;                    /* highest number + 1 allocated */
	struct mem_upload *next;
};

struct mem_store {
	pthread_mutex_t lock;
	struct mem_object *objects;     /* protected by lock; sorted by key */
	size_t n_objects, cap_objects;  /* protected by lock */
	struct mem_upload *uploads;     /* protected by lock */
	uint64_t next_upload_id;        /* protected by lock */
	uint64_t calls[STORE_OP__COUNT];        /* protected by lock */
	int unsupported[STORE_OP__COUNT];       /* protected by lock */
	uint64_t min_part_size;         /* protected by lock */
	int max_keys;                   /* the most a LIST page holds (1000, as S3); protected by lock */
};

static struct mem_store *ctx_of(struct store *s)
{
	return s->ctx;
}

static void md5_hex(const void *data, size_t len, char out[33])
{
	unsigned char md[16];
	unsigned int n = 0;

	EVP_Digest(data, len, md, &n, EVP_md5(), NULL);
	for (int i = 0; i < 16; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

/* Count the call and say whether it is switched off. Takes the lock; caller unlocks. */
static enum cm_status enter(struct mem_store *m, enum store_op op, struct cm_err *err)
{
	pthread_mutex_lock(&m->lock);
	m->calls[op]++;
	if (m->unsupported[op]) {
		pthread_mutex_unlock(&m->lock);
		if (err) {
			cm_err_clear(err);
			err->http_status = 501;
			snprintf(err->code, sizeof(err->code), "NotImplemented");
		}
		return cm_err_set(err, CM_E_UNSUPPORTED, "operation switched off in the test store");
	}
	return CM_OK;
}

/* Index of key, or -(insertion point) - 1. Caller holds the lock. */
static long find(struct mem_store *m, const char *key)
{
	size_t lo = 0, hi = m->n_objects;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(m->objects[mid].key, key);
		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(long)lo - 1;
}

static void object_release(struct mem_object *o)
{
	free(o->key);
	free(o->data);
	free(o->etag);
	free(o->content_type);
	s3_meta_release(&o->meta);
}

static void meta_copy(struct s3_meta *dst, const struct s3_meta *src)
{
	memset(dst, 0, sizeof(*dst));
	for (size_t i = 0; src && i < src->n; i++)
		s3_meta_set(dst, src->names[i], src->values[i]);
}

/* Store data under key (taking ownership of data and etag). Caller holds the lock. */
static void store_object(struct mem_store *m, const char *key, unsigned char *data, size_t len,
			 char *etag, const char *content_type, const struct s3_meta *meta)
{
	long i = find(m, key);
	struct mem_object *o;

	if (i >= 0) {
		o = &m->objects[i];
		free(o->data);
		free(o->etag);
		free(o->content_type);
		s3_meta_release(&o->meta);
	} else {
		size_t at = (size_t)(-i - 1);
		if (m->n_objects == m->cap_objects) {
			m->cap_objects = m->cap_objects ? m->cap_objects * 2 : 64;
			m->objects = xrealloc(m->objects, m->cap_objects * sizeof(*m->objects));
		}
		memmove(&m->objects[at + 1], &m->objects[at], (m->n_objects - at) * sizeof(*m->objects));
		m->n_objects++;
		o = &m->objects[at];
		memset(o, 0, sizeof(*o));
		o->key = xstrdup(key);
	}
	o->data = data;
	o->len = len;
	o->etag = etag;
	o->content_type = xstrdup(content_type ? content_type : "application/octet-stream");
	meta_copy(&o->meta, meta);
	clock_gettime(CLOCK_REALTIME, &o->mtime);
}

static void fill_head(const struct mem_object *o, struct s3_object_head *h)
{
	memset(h, 0, sizeof(*h));
	h->size = o->len;
	h->etag = xstrdup(o->etag);
	h->last_modified = o->mtime;
	h->content_type = xstrdup(o->content_type);
	meta_copy(&h->meta, &o->meta);
}

static enum cm_status not_found(struct cm_err *err, const char *what, const char *key)
{
	if (err) {
		cm_err_clear(err);
		err->http_status = 404;
		snprintf(err->code, sizeof(err->code), "%s", what);
	}
	return cm_err_set(err, CM_E_NOT_FOUND, "%s", key);
}

/*
 * Whether s has the form of a common prefix of a listing under prefix: it
 * starts with prefix and ends at the first delimiter after it.
 */
static int is_common_prefix(const char *s, const char *prefix, size_t plen, const char *delimiter,
			    size_t dlen)
{
	const char *d;

	if (!s || !dlen || (plen && strncmp(s, prefix, plen) != 0))
		return 0;
	d = strstr(s + plen, delimiter);
	return d && d[dlen] == '\0';
}

static enum cm_status mem_list(struct store *s, const char *prefix, const char *delimiter,
			       const char *token, const char *start_after, int max_keys,
			       struct s3_list_page *out, struct cm_err *err)
{
	struct mem_store *m = ctx_of(s);
	size_t plen = prefix ? strlen(prefix) : 0, dlen = delimiter ? strlen(delimiter) : 0;
	const char *from = token ? token : start_after;
	size_t i, taken = 0;
	long pos;
	enum cm_status st = enter(m, STORE_OP_LIST, err);

	memset(out, 0, sizeof(*out));
	if (st != CM_OK)
		return st;
	if (max_keys <= 0 || max_keys > m->max_keys)
		max_keys = m->max_keys;
	out->key_count = 0;
	pos = from ? find(m, from) : -1;
	i = from ? (pos >= 0 ? (size_t)pos + 1 : (size_t)(-pos - 1)) : 0;
	for (; i < m->n_objects; i++) {
		const char *key = m->objects[i].key;
		const char *d;

		if (plen && strncmp(key, prefix, plen) != 0) {
			if (strcmp(key, prefix) > 0)
				break;
			continue;
		}
		/*
		 * a continuation token that is a common prefix skips everything under
		 * it; a token that is a key (a directory marker "d/" listed under
		 * prefix "d/" ends with the delimiter too) skips nothing
		 */
		if (is_common_prefix(from, prefix, plen, delimiter, dlen) &&
		    strncmp(key, from, strlen(from)) == 0)
			continue;
		if ((int)taken == max_keys) {
			out->is_truncated = 1;
			break;
		}
		d = dlen ? strstr(key + plen, delimiter) : NULL;
		if (d) {
			char *cp = xstrndup(key, (size_t)(d - key) + dlen);
			if (out->n_prefixes && strcmp(out->prefixes[out->n_prefixes - 1], cp) == 0) {
				free(cp);
				continue;
			}
			out->prefixes = xrealloc(out->prefixes, (out->n_prefixes + 1) * sizeof(char *));
			out->prefixes[out->n_prefixes++] = cp;
			from = cp;
		} else {
			struct s3_object_info *oi;
			out->objects = xrealloc(out->objects, (out->n_objects + 1) * sizeof(*oi));
			oi = &out->objects[out->n_objects++];
			memset(oi, 0, sizeof(*oi));
			oi->key = xstrdup(key);
			oi->size = m->objects[i].len;
			oi->etag = xstrdup(m->objects[i].etag);
			oi->last_modified = m->objects[i].mtime;
			oi->storage_class = xstrdup("STANDARD");
			from = NULL;
		}
		taken++;
	}
	out->key_count = (int)taken;
	if (out->is_truncated) {
		/* the token is the last key or common prefix returned */
		const char *last_key = out->n_objects ? out->objects[out->n_objects - 1].key : NULL;
		const char *last_pfx = out->n_prefixes ? out->prefixes[out->n_prefixes - 1] : NULL;
		const char *last = !last_key ? last_pfx : !last_pfx ? last_key
				   : strcmp(last_key, last_pfx) > 0 ? last_key : last_pfx;
		out->next_token = xstrdup(last);
	}
	pthread_mutex_unlock(&m->lock);
	return CM_OK;
}

static enum cm_status mem_head(struct store *s, const char *key, struct s3_object_head *out,
			       struct cm_err *err)
{
	struct mem_store *m = ctx_of(s);
	enum cm_status st = enter(m, STORE_OP_HEAD, err);
	long i;

	memset(out, 0, sizeof(*out));
	if (st != CM_OK)
		return st;
	i = find(m, key);
	if (i < 0) {
		pthread_mutex_unlock(&m->lock);
		return not_found(err, "NoSuchKey", key);
	}
	fill_head(&m->objects[i], out);
	pthread_mutex_unlock(&m->lock);
	return CM_OK;
}

static enum cm_status mem_get(struct store *s, const char *key, uint64_t offset, uint64_t length,
			      s3_sink_fn sink, void *ctx, struct s3_object_head *head, uint64_t *got,
			      struct cm_err *err)
{
	struct mem_store *m = ctx_of(s);
	enum cm_status st = enter(m, STORE_OP_GET, err);
	unsigned char *copy;
	size_t n;
	long i;

	if (head)
		memset(head, 0, sizeof(*head));
	if (got)
		*got = 0;
	if (st != CM_OK)
		return st;
	i = find(m, key);
	if (i < 0) {
		pthread_mutex_unlock(&m->lock);
		return not_found(err, "NoSuchKey", key);
	}
	if (offset > 0 && offset >= m->objects[i].len) {
		pthread_mutex_unlock(&m->lock);
		return cm_err_set(err, CM_E_RANGE, "range starts past the end of %s", key);
	}
	n = m->objects[i].len - (size_t)offset;
	if (length < n)
		n = (size_t)length;
	copy = xmalloc(n ? n : 1);
	memcpy(copy, m->objects[i].data + offset, n);
	if (head)
		fill_head(&m->objects[i], head);
	pthread_mutex_unlock(&m->lock);
	/* call the sink outside the lock, in chunks as the network would */
	for (size_t done = 0; done < n;) {
		size_t chunk = n - done > 65536 ? 65536 : n - done;
		if (sink(ctx, (const char *)copy + done, chunk) != 0) {
			free(copy);
			if (head)
				s3_object_head_release(head);
			return cm_err_set(err, CM_E_CANCELLED, "the receiver stopped the transfer");
		}
		done += chunk;
		if (got)
			*got = done;
	}
	free(copy);
	return CM_OK;
}

/* Read a body (memory or file) into a new buffer. */
static unsigned char *read_body(const struct s3_body *body, struct cm_err *err)
{
	unsigned char *data = malloc(body && body->len ? body->len : 1);

	if (!data) {
		cm_err_set(err, CM_E_NOMEM, "test store: no memory");
		return NULL;
	}
	if (!body || !body->len)
		return data;
	if (body->mem) {
		memcpy(data, body->mem, body->len);
	} else {
		uint64_t done = 0;
		while (done < body->len) {
			ssize_t n = pread(body->fd, data + done, body->len - done, body->offset + (off_t)done);
			if (n <= 0) {
				free(data);
				cm_err_set(err, CM_E_IO, "test store: short read of the body");
				return NULL;
			}
			done += (uint64_t)n;
		}
	}
	return data;
}

static enum cm_status mem_put(struct store *s, const char *key, const struct s3_body *body,
			      const struct s3_put_opts *opts, char **etag, struct cm_err *err)
{
	struct mem_store *m = ctx_of(s);
	unsigned char *data = read_body(body, err);
	size_t len = body ? body->len : 0;
	char hex[33];
	enum cm_status st;

	if (etag)
		*etag = NULL;
	if (!data)
		return err ? err->status : CM_E_NOMEM;
	md5_hex(data, len, hex);
	st = enter(m, STORE_OP_PUT, err);
	if (st != CM_OK) {
		free(data);
		return st;
	}
	if (opts && opts->if_none_match && find(m, key) >= 0) {
		pthread_mutex_unlock(&m->lock);
		free(data);
		return cm_err_set(err, CM_E_PRECONDITION, "%s exists", key);
	}
	store_object(m, key, data, len, xstrdup(hex), opts ? opts->content_type : NULL,
		     opts ? opts->meta : NULL);
	pthread_mutex_unlock(&m->lock);
	if (etag)
		*etag = xstrdup(hex);
	return CM_OK;
}

static struct mem_upload *find_upload(struct mem_store *m, const char *key, const char *id)
{
	for (struct mem_upload *u = m->uploads; u; u = u->next)
		if (strcmp(u->id, id) == 0 && strcmp(u->key, key) == 0)
			return u;
	return NULL;
}

static void upload_free(struct mem_upload *u)
{
	for (int i = 0; i < u->n_parts; i++) {
		free(u->parts[i].data);
		free(u->parts[i].etag);
	}
	free(u->parts);
	free(u->id);
	free(u->key);
	free(u->content_type);
	s3_meta_release(&u->meta);
	free(u);
}

static enum cm_status mem_mpu_create(struct store *s, const char *key, const struct s3_put_opts *opts,
				     char **upload_id, struct cm_err *err)
{
	struct mem_store *m = ctx_of(s);
	enum cm_status st = enter(m, STORE_OP_MPU_CREATE, err);
	struct mem_upload *u;

	*upload_id = NULL;
	if (st != CM_OK)
		return st;
	u = xcalloc(1, sizeof(*u));
	u->id = xasprintf("upload-%llu", (unsigned long long)++m->next_upload_id);
	u->key = xstrdup(key);
	u->content_type = xstrdup(opts && opts->content_type ? opts->content_type
							     : "application/octet-stream");
	meta_copy(&u->meta, opts ? opts->meta : NULL);
	u->next = m->uploads;
	m->uploads = u;
	*upload_id = xstrdup(u->id);
	pthread_mutex_unlock(&m->lock);
	return CM_OK;
}

/* Put data (owned) as part number of upload (key, id). */
static enum cm_status set_part(struct mem_store *m, const char *key, const char *id, int number,
			       unsigned char *data, size_t len, char **etag, struct cm_err *err)
{
	struct mem_upload *u = find_upload(m, key, id);
	char hex[33];

	if (!u) {
		free(data);
		return not_found(err, "NoSuchUpload", key);
	}
	if (number < 1 || number > 10000) {
		free(data);
		return cm_err_set(err, CM_E_INVALID, "part number %d out of range", number);
	}
	if (number >= u->n_parts) {
		u->parts = xrealloc(u->parts, (size_t)(number + 1) * sizeof(*u->parts));
		memset(&u->parts[u->n_parts], 0, (size_t)(number + 1 - u->n_parts) * sizeof(*u->parts));
		u->n_parts = number + 1;
	}
	free(u->parts[number].data);
	free(u->parts[number].etag);
	md5_hex(data, len, hex);
	u->parts[number].data = data;
	u->parts[number].len = len;
	u->parts[number].etag = xstrdup(hex);
	*etag = xstrdup(hex);
	return CM_OK;
}

static enum cm_status mem_mpu_part(struct store *s, const char *key, const char *upload_id, int number,
				   const struct s3_body *body, char **etag, struct cm_err *err)
{
	struct mem_store *m = ctx_of(s);
	unsigned char *data = read_body(body, err);
	enum cm_status st;

	*etag = NULL;
	if (!data)
		return err ? err->status : CM_E_NOMEM;
	st = enter(m, STORE_OP_MPU_PART, err);
	if (st != CM_OK) {
		free(data);
		return st;
	}
	st = set_part(m, key, upload_id, number, data, body ? body->len : 0, etag, err);
	pthread_mutex_unlock(&m->lock);
	return st;
}

static enum cm_status mem_mpu_part_copy(struct store *s, const char *key, const char *upload_id,
					int number, const char *src_key, uint64_t first, uint64_t last,
					char **etag, struct cm_err *err)
{
	struct mem_store *m = ctx_of(s);
	enum cm_status st = enter(m, STORE_OP_MPU_PART_COPY, err);
	struct mem_object *src;
	unsigned char *data;
	size_t len;
	long i;

	*etag = NULL;
	if (st != CM_OK)
		return st;
	i = find(m, src_key);
	if (i < 0) {
		pthread_mutex_unlock(&m->lock);
		return not_found(err, "NoSuchKey", src_key);
	}
	src = &m->objects[i];
	if (last < first) {
		first = 0;
		last = src->len ? src->len - 1 : 0;
	}
	if (src->len == 0 || last >= src->len) {
		pthread_mutex_unlock(&m->lock);
		return cm_err_set(err, CM_E_RANGE, "copy range outside %s", src_key);
	}
	len = (size_t)(last - first + 1);
	data = xmalloc(len);
	memcpy(data, src->data + first, len);
	st = set_part(m, key, upload_id, number, data, len, etag, err);
	pthread_mutex_unlock(&m->lock);
	return st;
}

static enum cm_status mem_mpu_complete(struct store *s, const char *key, const char *upload_id,
				       const struct s3_part *parts, size_t n_parts, char **etag,
				       struct cm_err *err)
{
	struct mem_store *m = ctx_of(s);
	enum cm_status st = enter(m, STORE_OP_MPU_COMPLETE, err);
	struct mem_upload *u, **pp;
	size_t total = 0;
	unsigned char *data, *md5s;
	char hex[33];

	if (etag)
		*etag = NULL;
	if (st != CM_OK)
		return st;
	u = find_upload(m, key, upload_id);
	if (!u) {
		pthread_mutex_unlock(&m->lock);
		return not_found(err, "NoSuchUpload", key);
	}
	if (n_parts == 0) {
		pthread_mutex_unlock(&m->lock);
		return cm_err_set(err, CM_E_INVALID, "MalformedXML: no parts");
	}
	for (size_t i = 0; i < n_parts; i++) {
		int n = parts[i].number;
		if (n < 1 || n >= u->n_parts || !u->parts[n].etag || strcmp(u->parts[n].etag, parts[i].etag) ||
		    (i && parts[i - 1].number >= n)) {
			pthread_mutex_unlock(&m->lock);
			return cm_err_set(err, CM_E_INVALID, "InvalidPart %d", n);
		}
		if (i + 1 < n_parts && u->parts[n].len < m->min_part_size) {
			pthread_mutex_unlock(&m->lock);
			return cm_err_set(err, CM_E_INVALID, "EntityTooSmall: part %d", n);
		}
		total += u->parts[n].len;
	}
	data = xmalloc(total ? total : 1);
	md5s = xmalloc(16 * n_parts);
	total = 0;
	for (size_t i = 0; i < n_parts; i++) {
		struct mem_part *p = &u->parts[parts[i].number];
		memcpy(data + total, p->data, p->len);
		total += p->len;
		for (int b = 0; b < 16; b++) {
			unsigned int v;
			sscanf(p->etag + 2 * b, "%2x", &v);
			md5s[16 * i + (size_t)b] = (unsigned char)v;
		}
	}
	md5_hex(md5s, 16 * n_parts, hex);
	free(md5s);
	store_object(m, key, data, total, xasprintf("%s-%zu", hex, n_parts), u->content_type, &u->meta);
	for (pp = &m->uploads; *pp != u; pp = &(*pp)->next)
		;
	*pp = u->next;
	upload_free(u);
	if (etag)
		*etag = xasprintf("%s-%zu", hex, n_parts);
	pthread_mutex_unlock(&m->lock);
	return CM_OK;
}

static enum cm_status mem_mpu_abort(struct store *s, const char *key, const char *upload_id,
				    struct cm_err *err)
{
	struct mem_store *m = ctx_of(s);
	enum cm_status st = enter(m, STORE_OP_MPU_ABORT, err);
	struct mem_upload **pp;

	if (st != CM_OK)
		return st;
	for (pp = &m->uploads; *pp; pp = &(*pp)->next) {
		if (!strcmp((*pp)->id, upload_id) && !strcmp((*pp)->key, key)) {
			struct mem_upload *u = *pp;
			*pp = u->next;
			upload_free(u);
			pthread_mutex_unlock(&m->lock);
			return CM_OK;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return not_found(err, "NoSuchUpload", key);
}

static enum cm_status mem_mpu_list(struct store *s, const char *prefix, const char *key_marker,
				   const char *upload_id_marker, struct s3_upload_list *out,
				   struct cm_err *err)
{
	struct mem_store *m = ctx_of(s);
	enum cm_status st = enter(m, STORE_OP_MPU_LIST, err);
	size_t plen = prefix ? strlen(prefix) : 0;

	(void)key_marker;
	(void)upload_id_marker;
	memset(out, 0, sizeof(*out));
	if (st != CM_OK)
		return st;
	for (struct mem_upload *u = m->uploads; u; u = u->next) {
		struct s3_upload_info *ui;
		if (plen && strncmp(u->key, prefix, plen) != 0)
			continue;
		out->uploads = xrealloc(out->uploads, (out->n_uploads + 1) * sizeof(*ui));
		ui = &out->uploads[out->n_uploads++];
		ui->key = xstrdup(u->key);
		ui->upload_id = xstrdup(u->id);
		clock_gettime(CLOCK_REALTIME, &ui->initiated);
	}
	pthread_mutex_unlock(&m->lock);
	return CM_OK;
}

static enum cm_status mem_copy(struct store *s, const char *key, const char *src_key,
			       const struct s3_put_opts *replace, char **etag, struct cm_err *err)
{
	struct mem_store *m = ctx_of(s);
	enum cm_status st = enter(m, STORE_OP_COPY, err);
	struct mem_object *src;
	unsigned char *data;
	struct s3_meta meta;
	char *ct;
	long i;

	if (etag)
		*etag = NULL;
	if (st != CM_OK)
		return st;
	i = find(m, src_key);
	if (i < 0) {
		pthread_mutex_unlock(&m->lock);
		return not_found(err, "NoSuchKey", src_key);
	}
	src = &m->objects[i];
	data = xmalloc(src->len ? src->len : 1);
	memcpy(data, src->data, src->len);
	meta_copy(&meta, replace ? replace->meta : &src->meta);
	ct = xstrdup(replace && replace->content_type ? replace->content_type : src->content_type);
	{
		char *e = xstrdup(src->etag);
		size_t len = src->len;
		store_object(m, key, data, len, e, ct, &meta);
		if (etag)
			*etag = xstrdup(e);
	}
	free(ct);
	s3_meta_release(&meta);
	pthread_mutex_unlock(&m->lock);
	return CM_OK;
}

/* Remove key if present. Caller holds the lock. */
static void remove_key(struct mem_store *m, const char *key)
{
	long i = find(m, key);

	if (i < 0)
		return;
	object_release(&m->objects[i]);
	memmove(&m->objects[i], &m->objects[i + 1], (m->n_objects - (size_t)i - 1) * sizeof(*m->objects));
	m->n_objects--;
}

static enum cm_status mem_del(struct store *s, const char *key, struct cm_err *err)
{
	struct mem_store *m = ctx_of(s);
	enum cm_status st = enter(m, STORE_OP_DEL, err);

	if (st != CM_OK)
		return st;
	remove_key(m, key);
	pthread_mutex_unlock(&m->lock);
	return CM_OK;
}

static enum cm_status mem_del_many(struct store *s, const char *const *keys, size_t n_keys,
				   struct s3_delete_result *out, struct cm_err *err)
{
	struct mem_store *m = ctx_of(s);
	enum cm_status st = enter(m, STORE_OP_DEL_MANY, err);

	memset(out, 0, sizeof(*out));
	if (st != CM_OK)
		return st;
	for (size_t i = 0; i < n_keys; i++)
		remove_key(m, keys[i]);
	out->n_deleted = n_keys;
	pthread_mutex_unlock(&m->lock);
	return CM_OK;
}

static void mem_destroy(struct store *s)
{
	struct mem_store *m = ctx_of(s);

	for (size_t i = 0; i < m->n_objects; i++)
		object_release(&m->objects[i]);
	free(m->objects);
	while (m->uploads) {
		struct mem_upload *u = m->uploads;
		m->uploads = u->next;
		upload_free(u);
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static const struct store_ops mem_store_ops = {
	.name = "mem",
	.list = mem_list,
	.head = mem_head,
	.get = mem_get,
	.put = mem_put,
	.mpu_create = mem_mpu_create,
	.mpu_part = mem_mpu_part,
	.mpu_part_copy = mem_mpu_part_copy,
	.mpu_complete = mem_mpu_complete,
	.mpu_abort = mem_mpu_abort,
	.mpu_list = mem_mpu_list,
	.copy = mem_copy,
	.del = mem_del,
	.del_many = mem_del_many,
	.destroy = mem_destroy,
};

struct store *store_mem_create(void)
{
	struct store *s = xcalloc(1, sizeof(*s));
	struct mem_store *m = xcalloc(1, sizeof(*m));

	pthread_mutex_init(&m->lock, NULL);
	m->min_part_size = 5u << 20;
	m->max_keys = 1000;
	s->ops = &mem_store_ops;
	s->ctx = m;
	return s;
}

void store_mem_set_unsupported(struct store *s, enum store_op op, int on)
{
	struct mem_store *m = ctx_of(s);

	pthread_mutex_lock(&m->lock);
	m->unsupported[op] = on;
	pthread_mutex_unlock(&m->lock);
}

void store_mem_set_min_part_size(struct store *s, uint64_t bytes)
{
	struct mem_store *m = ctx_of(s);

	pthread_mutex_lock(&m->lock);
	m->min_part_size = bytes;
	pthread_mutex_unlock(&m->lock);
}

void store_mem_set_max_keys(struct store *s, int n)
{
	struct mem_store *m = ctx_of(s);

	pthread_mutex_lock(&m->lock);
	m->max_keys = n > 0 ? n : 1000;
	pthread_mutex_unlock(&m->lock);
}

uint64_t store_mem_calls(struct store *s, enum store_op op)
{
	struct mem_store *m = ctx_of(s);
	uint64_t n;

	pthread_mutex_lock(&m->lock);
	n = m->calls[op];
	pthread_mutex_unlock(&m->lock);
	return n;
}

void store_mem_reset_calls(struct store *s)
{
	struct mem_store *m = ctx_of(s);

	pthread_mutex_lock(&m->lock);
	/* a loop, not memset: GCC 12 with -fsanitize=address,undefined -O2 reports a
	 * bogus -Warray-bounds on memset(m->calls, ...), which breaks -Dwerror=true */
	for (int op = 0; op < STORE_OP__COUNT; op++)
		m->calls[op] = 0;
	pthread_mutex_unlock(&m->lock);
}

size_t store_mem_pending_uploads(struct store *s)
{
	struct mem_store *m = ctx_of(s);
	size_t n = 0;

	pthread_mutex_lock(&m->lock);
	for (struct mem_upload *u = m->uploads; u; u = u->next)
		n++;
	pthread_mutex_unlock(&m->lock);
	return n;
}

size_t store_mem_count(struct store *s)
{
	struct mem_store *m = ctx_of(s);
	size_t n;

	pthread_mutex_lock(&m->lock);
	n = m->n_objects;
	pthread_mutex_unlock(&m->lock);
	return n;
}

uint64_t store_mem_bytes(struct store *s)
{
	struct mem_store *m = ctx_of(s);
	uint64_t n = 0;

	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->n_objects; i++)
		n += m->objects[i].len;
	pthread_mutex_unlock(&m->lock);
	return n;
}

int store_mem_put_bytes(struct store *s, const char *key, const void *data, size_t len)
{
	struct s3_body body = { .mem = data, .fd = -1, .len = len };
	return mem_put(s, key, &body, NULL, NULL, NULL) == CM_OK ? 0 : -1;
}

void *store_mem_get_bytes(struct store *s, const char *key, size_t *len)
{
	struct mem_store *m = ctx_of(s);
	void *copy = NULL;
	long i;

	pthread_mutex_lock(&m->lock);
	i = find(m, key);
	if (i >= 0) {
		copy = xmalloc(m->objects[i].len ? m->objects[i].len : 1);
		memcpy(copy, m->objects[i].data, m->objects[i].len);
		*len = m->objects[i].len;
	}
	pthread_mutex_unlock(&m->lock);
	return copy;
}
