/*
 * store.h - the object-store interface the filesystem and the CLI see.
 *
 * A store is one bucket (and optional key prefix) behind a table of
 * operations, in the manner of curl's connection filters: struct store_ops is
 * a read-only table per layer type, struct store an instance holding a pointer
 * to it, its own context and the layer below (next). Layers stack: the fault
 * layer wraps any store and injects errors; the mem store stands in for S3 in
 * unit tests; the s3 store is the real thing. A layer passes through what it
 * does not care about with the store_pass_* functions.
 *
 * Contract shared by every operation: returns CM_OK, or a status with details
 * in err (caller-owned, may be NULL). Outputs are the caller's and are zeroed
 * on failure. Keys are relative to the store (the s3 store adds its prefix).
 * All operations are thread-safe. A server that lacks an operation answers
 * CM_E_UNSUPPORTED, and callers fall back (part copy -> GET + PUT, abort ->
 * leave the upload to expire, list uploads -> skip the clean-up).
 */
#ifndef CM_STORE_H
#define CM_STORE_H

#include "common/status.h"
#include "s3/s3.h"

struct store;

/* The operations, for the test stores' switches and counters. */
enum store_op {
	STORE_OP_LIST = 0,
	STORE_OP_HEAD,
	STORE_OP_GET,
	STORE_OP_PUT,
	STORE_OP_MPU_CREATE,
	STORE_OP_MPU_PART,
	STORE_OP_MPU_PART_COPY,
	STORE_OP_MPU_COMPLETE,
	STORE_OP_MPU_ABORT,
	STORE_OP_MPU_LIST,
	STORE_OP_COPY,
	STORE_OP_DEL,
	STORE_OP_DEL_MANY,
	STORE_OP__COUNT
};

struct store_ops {
	const char *name;
	/* One page of keys under prefix; see s3_list_objects. */
	enum cm_status (*list)(struct store *s, const char *prefix, const char *delimiter,
			       const char *token, const char *start_after, int max_keys,
			       struct s3_list_page *out, struct cm_err *err);
	/* Size, ETag, time and metadata; CM_E_NOT_FOUND when absent. */
	enum cm_status (*head)(struct store *s, const char *key, struct s3_object_head *out,
			       struct cm_err *err);
	/* Bytes [offset, offset+length) streamed to sink; see s3_get_object. */
	enum cm_status (*get)(struct store *s, const char *key, uint64_t offset, uint64_t length,
			      s3_sink_fn sink, void *ctx, struct s3_object_head *head, uint64_t *got,
			      struct cm_err *err);
	/* Whole-object write; *etag (may be NULL) receives the new ETag. */
	enum cm_status (*put)(struct store *s, const char *key, const struct s3_body *body,
			      const struct s3_put_opts *opts, char **etag, struct cm_err *err);
	enum cm_status (*mpu_create)(struct store *s, const char *key, const struct s3_put_opts *opts,
				     char **upload_id, struct cm_err *err);
	enum cm_status (*mpu_part)(struct store *s, const char *key, const char *upload_id, int number,
				   const struct s3_body *body, char **etag, struct cm_err *err);
	/* Copy bytes [first, last] of src_key (of this store) into a part. */
	enum cm_status (*mpu_part_copy)(struct store *s, const char *key, const char *upload_id,
					int number, const char *src_key, uint64_t first, uint64_t last,
					char **etag, struct cm_err *err);
	enum cm_status (*mpu_complete)(struct store *s, const char *key, const char *upload_id,
				       const struct s3_part *parts, size_t n_parts, char **etag,
				       struct cm_err *err);
	enum cm_status (*mpu_abort)(struct store *s, const char *key, const char *upload_id,
				    struct cm_err *err);
	enum cm_status (*mpu_list)(struct store *s, const char *prefix, const char *key_marker,
				   const char *upload_id_marker, struct s3_upload_list *out,
				   struct cm_err *err);
	/* Server-side copy src_key -> key; replace NULL keeps the metadata. */
	enum cm_status (*copy)(struct store *s, const char *key, const char *src_key,
			       const struct s3_put_opts *replace, char **etag, struct cm_err *err);
	/* Delete one key; deleting a missing key succeeds. */
	enum cm_status (*del)(struct store *s, const char *key, struct cm_err *err);
	/* Delete up to 1000 keys; per-key failures in out. */
	enum cm_status (*del_many)(struct store *s, const char *const *keys, size_t n_keys,
				   struct s3_delete_result *out, struct cm_err *err);
	/* Free the layer's context (not the layers below). */
	void (*destroy)(struct store *s);
};

struct store {
	const struct store_ops *ops;
	struct store *next;     /* the layer below; NULL for a bottom store */
	void *ctx;
};

/* Destroy s and every layer below it. NULL is a no-op. */
void store_destroy(struct store *s);

/* Calls through the table. */
enum cm_status store_list(struct store *s, const char *prefix, const char *delimiter,
			  const char *token, const char *start_after, int max_keys,
			  struct s3_list_page *out, struct cm_err *err);
enum cm_status store_head(struct store *s, const char *key, struct s3_object_head *out,
			  struct cm_err *err);
enum cm_status store_get(struct store *s, const char *key, uint64_t offset, uint64_t length,
			 s3_sink_fn sink, void *ctx, struct s3_object_head *head, uint64_t *got,
			 struct cm_err *err);
enum cm_status store_put(struct store *s, const char *key, const struct s3_body *body,
			 const struct s3_put_opts *opts, char **etag, struct cm_err *err);
enum cm_status store_mpu_create(struct store *s, const char *key, const struct s3_put_opts *opts,
				char **upload_id, struct cm_err *err);
enum cm_status store_mpu_part(struct store *s, const char *key, const char *upload_id, int number,
			      const struct s3_body *body, char **etag, struct cm_err *err);
enum cm_status store_mpu_part_copy(struct store *s, const char *key, const char *upload_id,
				   int number, const char *src_key, uint64_t first, uint64_t last,
				   char **etag, struct cm_err *err);
enum cm_status store_mpu_complete(struct store *s, const char *key, const char *upload_id,
				  const struct s3_part *parts, size_t n_parts, char **etag,
				  struct cm_err *err);
enum cm_status store_mpu_abort(struct store *s, const char *key, const char *upload_id,
			       struct cm_err *err);
enum cm_status store_mpu_list(struct store *s, const char *prefix, const char *key_marker,
			      const char *upload_id_marker, struct s3_upload_list *out,
			      struct cm_err *err);
enum cm_status store_copy(struct store *s, const char *key, const char *src_key,
			  const struct s3_put_opts *replace, char **etag, struct cm_err *err);
enum cm_status store_del(struct store *s, const char *key, struct cm_err *err);
enum cm_status store_del_many(struct store *s, const char *const *keys, size_t n_keys,
			      struct s3_delete_result *out, struct cm_err *err);

/*
 * Pass-through operations for layers: each calls the same operation on
 * s->next. A layer's table uses them for what it does not intercept.
 */
extern const struct store_ops store_pass_ops;

/*
 * The real store: bucket (and key prefix, "" or "dir/") through an S3 client.
 * The client is borrowed and must outlive the store.
 */
struct store *store_s3_create(struct s3_client *client, const char *bucket, const char *prefix);


#endif
