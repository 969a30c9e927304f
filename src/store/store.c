/*
 * store.c - calls through the store table, and the pass-through table that
 * layers use for the operations they do not intercept.
 */
#include "store/store.h"

#include <stdlib.h>

void store_destroy(struct store *s)
{
	while (s) {
		struct store *next = s->next;
		if (s->ops->destroy)
			s->ops->destroy(s);
		free(s);
		s = next;
	}
}

enum cm_status store_list(struct store *s, const char *prefix, const char *delimiter,
			  const char *token, const char *start_after, int max_keys,
			  struct s3_list_page *out, struct cm_err *err)
{
	return s->ops->list(s, prefix, delimiter, token, start_after, max_keys, out, err);
}

enum cm_status store_head(struct store *s, const char *key, struct s3_object_head *out,
			  struct cm_err *err)
{
	return s->ops->head(s, key, out, err);
}

enum cm_status store_get(struct store *s, const char *key, uint64_t offset, uint64_t length,
			 s3_sink_fn sink, void *ctx, struct s3_object_head *head, uint64_t *got,
			 struct cm_err *err)
{
	return s->ops->get(s, key, offset, length, sink, ctx, head, got, err);
}

enum cm_status store_put(struct store *s, const char *key, const struct s3_body *body,
			 const struct s3_put_opts *opts, char **etag, struct cm_err *err)
{
	return s->ops->put(s, key, body, opts, etag, err);
}

enum cm_status store_mpu_create(struct store *s, const char *key, const struct s3_put_opts *opts,
				char **upload_id, struct cm_err *err)
{
	return s->ops->mpu_create(s, key, opts, upload_id, err);
}

enum cm_status store_mpu_part(struct store *s, const char *key, const char *upload_id, int number,
			      const struct s3_body *body, char **etag, struct cm_err *err)
{
	return s->ops->mpu_part(s, key, upload_id, number, body, etag, err);
}

enum cm_status store_mpu_part_copy(struct store *s, const char *key, const char *upload_id,
				   int number, const char *src_key, uint64_t first, uint64_t last,
				   char **etag, struct cm_err *err)
{
	return s->ops->mpu_part_copy(s, key, upload_id, number, src_key, first, last, etag, err);
}

enum cm_status store_mpu_complete(struct store *s, const char *key, const char *upload_id,
				  const struct s3_part *parts, size_t n_parts, char **etag,
				  struct cm_err *err)
{
	return s->ops->mpu_complete(s, key, upload_id, parts, n_parts, etag, err);
}

enum cm_status store_mpu_abort(struct store *s, const char *key, const char *upload_id,
			       struct cm_err *err)
{
	return s->ops->mpu_abort(s, key, upload_id, err);
}

enum cm_status store_mpu_list(struct store *s, const char *prefix, const char *key_marker,
			      const char *upload_id_marker, struct s3_upload_list *out,
			      struct cm_err *err)
{
	return s->ops->mpu_list(s, prefix, key_marker, upload_id_marker, out, err);
}

enum cm_status store_copy(struct store *s, const char *key, const char *src_key,
			  const struct s3_put_opts *replace, char **etag, struct cm_err *err)
{
	return s->ops->copy(s, key, src_key, replace, etag, err);
}

enum cm_status store_del(struct store *s, const char *key, struct cm_err *err)
{
	return s->ops->del(s, key, err);
}

enum cm_status store_del_many(struct store *s, const char *const *keys, size_t n_keys,
			      struct s3_delete_result *out, struct cm_err *err)
{
	return s->ops->del_many(s, keys, n_keys, out, err);
}

/* Pass-through: the same call on the layer below. */
static enum cm_status pass_list(struct store *s, const char *prefix, const char *delimiter,
				const char *token, const char *start_after, int max_keys,
				struct s3_list_page *out, struct cm_err *err)
{
	return store_list(s->next, prefix, delimiter, token, start_after, max_keys, out, err);
}

static enum cm_status pass_head(struct store *s, const char *key, struct s3_object_head *out,
				struct cm_err *err)
{
	return store_head(s->next, key, out, err);
}

static enum cm_status pass_get(struct store *s, const char *key, uint64_t offset, uint64_t length,
			       s3_sink_fn sink, void *ctx, struct s3_object_head *head, uint64_t *got,
			       struct cm_err *err)
{
	return store_get(s->next, key, offset, length, sink, ctx, head, got, err);
}

static enum cm_status pass_put(struct store *s, const char *key, const struct s3_body *body,
			       const struct s3_put_opts *opts, char **etag, struct cm_err *err)
{
	return store_put(s->next, key, body, opts, etag, err);
}

static enum cm_status pass_mpu_create(struct store *s, const char *key, const struct s3_put_opts *opts,
				      char **upload_id, struct cm_err *err)
{
	return store_mpu_create(s->next, key, opts, upload_id, err);
}

static enum cm_status pass_mpu_part(struct store *s, const char *key, const char *upload_id, int number,
				    const struct s3_body *body, char **etag, struct cm_err *err)
{
	return store_mpu_part(s->next, key, upload_id, number, body, etag, err);
}

static enum cm_status pass_mpu_part_copy(struct store *s, const char *key, const char *upload_id,
					 int number, const char *src_key, uint64_t first, uint64_t last,
					 char **etag, struct cm_err *err)
{
	return store_mpu_part_copy(s->next, key, upload_id, number, src_key, first, last, etag, err);
}

static enum cm_status pass_mpu_complete(struct store *s, const char *key, const char *upload_id,
					const struct s3_part *parts, size_t n_parts, char **etag,
					struct cm_err *err)
{
	return store_mpu_complete(s->next, key, upload_id, parts, n_parts, etag, err);
}

static enum cm_status pass_mpu_abort(struct store *s, const char *key, const char *upload_id,
				     struct cm_err *err)
{
	return store_mpu_abort(s->next, key, upload_id, err);
}

static enum cm_status pass_mpu_list(struct store *s, const char *prefix, const char *key_marker,
				    const char *upload_id_marker, struct s3_upload_list *out,
				    struct cm_err *err)
{
	return store_mpu_list(s->next, prefix, key_marker, upload_id_marker, out, err);
}

static enum cm_status pass_copy(struct store *s, const char *key, const char *src_key,
				const struct s3_put_opts *replace, char **etag, struct cm_err *err)
{
	return store_copy(s->next, key, src_key, replace, etag, err);
}

static enum cm_status pass_del(struct store *s, const char *key, struct cm_err *err)
{
	return store_del(s->next, key, err);
}

static enum cm_status pass_del_many(struct store *s, const char *const *keys, size_t n_keys,
				    struct s3_delete_result *out, struct cm_err *err)
{
	return store_del_many(s->next, keys, n_keys, out, err);
}

const struct store_ops store_pass_ops = {
	.name = "pass",
	.list = pass_list,
	.head = pass_head,
	.get = pass_get,
	.put = pass_put,
	.mpu_create = pass_mpu_create,
	.mpu_part = pass_mpu_part,
	.mpu_part_copy = pass_mpu_part_copy,
	.mpu_complete = pass_mpu_complete,
	.mpu_abort = pass_mpu_abort,
	.mpu_list = pass_mpu_list,
	.copy = pass_copy,
	.del = pass_del,
	.del_many = pass_del_many,
	.destroy = NULL,
};
