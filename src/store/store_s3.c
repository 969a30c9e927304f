/*
 * store_s3.c - the real store: one bucket (and key prefix) through s3.h.
 *
 * The prefix ("" or ending in '/') is added to every key going out and taken
 * off every key and common prefix coming back from a listing, so the layers
 * above see keys relative to the mount root.
 */
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#include "common/util.h"

struct s3_store {
	struct s3_client *client;       /* borrowed */
	char *bucket;
	char *prefix;                   /* "" or "a/b/" */
	size_t prefix_len;
};

static struct s3_store *ctx_of(struct store *s)
{
	return s->ctx;
}

/* The full key of a store-relative key; malloc'd. */
static char *full_key(const struct s3_store *st, const char *key)
{
	return xasprintf("%s%s", st->prefix, key ? key : "");
}

/* Remove the store prefix in place from a listed key (moving the tail down). */
static void strip_prefix(const struct s3_store *st, char *key)
{
	if (key && st->prefix_len && strncmp(key, st->prefix, st->prefix_len) == 0)
		memmove(key, key + st->prefix_len, strlen(key + st->prefix_len) + 1);
}

static enum cm_status s3s_list(struct store *s, const char *prefix, const char *delimiter,
			       const char *token, const char *start_after, int max_keys,
			       struct s3_list_page *out, struct cm_err *err)
{
	struct s3_store *st = ctx_of(s);
	char *p = full_key(st, prefix);
	char *sa = start_after && *start_after ? full_key(st, start_after) : NULL;
	enum cm_status rc;

	rc = s3_list_objects(st->client, st->bucket, p, delimiter, token, sa, max_keys, out, err);
	if (rc == CM_OK) {
		for (size_t i = 0; i < out->n_objects; i++)
			strip_prefix(st, out->objects[i].key);
		for (size_t i = 0; i < out->n_prefixes; i++)
			strip_prefix(st, out->prefixes[i]);
		strip_prefix(st, out->start_after);
	}
	free(p);
	free(sa);
	return rc;
}

static enum cm_status s3s_head(struct store *s, const char *key, struct s3_object_head *out,
			       struct cm_err *err)
{
	struct s3_store *st = ctx_of(s);
	char *k = full_key(st, key);
	enum cm_status rc = s3_head_object(st->client, st->bucket, k, out, err);
	free(k);
	return rc;
}

static enum cm_status s3s_get(struct store *s, const char *key, uint64_t offset, uint64_t length,
			      s3_sink_fn sink, void *ctx, struct s3_object_head *head, uint64_t *got,
			      struct cm_err *err)
{
	struct s3_store *st = ctx_of(s);
	char *k = full_key(st, key);
	enum cm_status rc = s3_get_object(st->client, st->bucket, k, offset, length, sink, ctx, head,
					  got, err);
	free(k);
	return rc;
}

static enum cm_status s3s_put(struct store *s, const char *key, const struct s3_body *body,
			      const struct s3_put_opts *opts, char **etag, struct cm_err *err)
{
	struct s3_store *st = ctx_of(s);
	char *k = full_key(st, key);
	enum cm_status rc = s3_put_object(st->client, st->bucket, k, body, opts, etag, err);
	free(k);
	return rc;
}

static enum cm_status s3s_mpu_create(struct store *s, const char *key, const struct s3_put_opts *opts,
				     char **upload_id, struct cm_err *err)
{
	struct s3_store *st = ctx_of(s);
	char *k = full_key(st, key);
	enum cm_status rc = s3_mpu_create(st->client, st->bucket, k, opts, upload_id, err);
	free(k);
	return rc;
}

static enum cm_status s3s_mpu_part(struct store *s, const char *key, const char *upload_id, int number,
				   const struct s3_body *body, char **etag, struct cm_err *err)
{
	struct s3_store *st = ctx_of(s);
	char *k = full_key(st, key);
	enum cm_status rc = s3_mpu_upload_part(st->client, st->bucket, k, upload_id, number, body,
					       etag, err);
	free(k);
	return rc;
}

static enum cm_status s3s_mpu_part_copy(struct store *s, const char *key, const char *upload_id,
					int number, const char *src_key, uint64_t first, uint64_t last,
					char **etag, struct cm_err *err)
{
	struct s3_store *st = ctx_of(s);
	char *k = full_key(st, key), *src = full_key(st, src_key);
	enum cm_status rc = s3_mpu_upload_part_copy(st->client, st->bucket, k, upload_id, number,
						    st->bucket, src, first, last, etag, err);
	free(k);
	free(src);
	return rc;
}

static enum cm_status s3s_mpu_complete(struct store *s, const char *key, const char *upload_id,
				       const struct s3_part *parts, size_t n_parts, char **etag,
				       struct cm_err *err)
{
	struct s3_store *st = ctx_of(s);
	char *k = full_key(st, key);
	enum cm_status rc = s3_mpu_complete(st->client, st->bucket, k, upload_id, parts, n_parts,
					    etag, err);
	free(k);
	return rc;
}

static enum cm_status s3s_mpu_abort(struct store *s, const char *key, const char *upload_id,
				    struct cm_err *err)
{
	struct s3_store *st = ctx_of(s);
	char *k = full_key(st, key);
	enum cm_status rc = s3_mpu_abort(st->client, st->bucket, k, upload_id, err);
	free(k);
	return rc;
}

static enum cm_status s3s_mpu_list(struct store *s, const char *prefix, const char *key_marker,
				   const char *upload_id_marker, struct s3_upload_list *out,
				   struct cm_err *err)
{
	struct s3_store *st = ctx_of(s);
	char *p = full_key(st, prefix);
	char *km = key_marker ? full_key(st, key_marker) : NULL;
	enum cm_status rc = s3_mpu_list(st->client, st->bucket, p, km, upload_id_marker, out, err);

	if (rc == CM_OK) {
		for (size_t i = 0; i < out->n_uploads; i++)
			strip_prefix(st, out->uploads[i].key);
		strip_prefix(st, out->next_key_marker);
	}
	free(p);
	free(km);
	return rc;
}

static enum cm_status s3s_copy(struct store *s, const char *key, const char *src_key,
			       const struct s3_put_opts *replace, char **etag, struct cm_err *err)
{
	struct s3_store *st = ctx_of(s);
	char *k = full_key(st, key), *src = full_key(st, src_key);
	enum cm_status rc = s3_copy_object(st->client, st->bucket, k, st->bucket, src, replace, etag, err);
	free(k);
	free(src);
	return rc;
}

static enum cm_status s3s_del(struct store *s, const char *key, struct cm_err *err)
{
	struct s3_store *st = ctx_of(s);
	char *k = full_key(st, key);
	enum cm_status rc = s3_delete_object(st->client, st->bucket, k, err);
	free(k);
	return rc;
}

static enum cm_status s3s_del_many(struct store *s, const char *const *keys, size_t n_keys,
				   struct s3_delete_result *out, struct cm_err *err)
{
	struct s3_store *st = ctx_of(s);
	char **full = xcalloc(n_keys ? n_keys : 1, sizeof(*full));
	enum cm_status rc;

	for (size_t i = 0; i < n_keys; i++)
		full[i] = full_key(st, keys[i]);
	rc = s3_delete_objects(st->client, st->bucket, (const char *const *)full, n_keys, out, err);
	if (rc == CM_OK)
		for (size_t i = 0; i < out->n_failures; i++)
			strip_prefix(st, out->failures[i].key);
	for (size_t i = 0; i < n_keys; i++)
		free(full[i]);
	free(full);
	return rc;
}

static void s3s_destroy(struct store *s)
{
	struct s3_store *st = ctx_of(s);

	free(st->bucket);
	free(st->prefix);
	free(st);
}

static const struct store_ops s3_store_ops = {
	.name = "s3",
	.list = s3s_list,
	.head = s3s_head,
	.get = s3s_get,
	.put = s3s_put,
	.mpu_create = s3s_mpu_create,
	.mpu_part = s3s_mpu_part,
	.mpu_part_copy = s3s_mpu_part_copy,
	.mpu_complete = s3s_mpu_complete,
	.mpu_abort = s3s_mpu_abort,
	.mpu_list = s3s_mpu_list,
	.copy = s3s_copy,
	.del = s3s_del,
	.del_many = s3s_del_many,
	.destroy = s3s_destroy,
};

struct store *store_s3_create(struct s3_client *client, const char *bucket, const char *prefix)
{
	struct store *s = xcalloc(1, sizeof(*s));
	struct s3_store *st = xcalloc(1, sizeof(*st));

	st->client = client;
	st->bucket = xstrdup(bucket);
	if (prefix && *prefix) {
		size_t len = strlen(prefix);
		st->prefix = prefix[len - 1] == '/' ? xstrdup(prefix) : xasprintf("%s/", prefix);
	} else {
		st->prefix = xstrdup("");
	}
	st->prefix_len = strlen(st->prefix);
	s->ops = &s3_store_ops;
	s->ctx = st;
	return s;
}
