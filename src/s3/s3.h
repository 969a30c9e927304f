/*
 * s3.h - the S3 protocol: request building, signing, responses, errors.
 *
 * A client holds an endpoint, a region, an addressing style and a credentials
 * provider, and sends every request through the process's HTTP engine. Calls
 * are synchronous and thread-safe: many threads may call at once and the engine
 * runs their requests in parallel. Each call fills a caller-owned struct
 * cm_err with the status, HTTP status, S3 code, message and request id.
 *
 * Keys are encoded once with S3's rules (sigv4_uri_encode with '/' kept: '+'
 * is sent as %2B, space as %20) and never normalised. Bodies are signed
 * (x-amz-content-sha256 = SHA-256 of the body) over plain HTTP, and sent as
 * UNSIGNED-PAYLOAD over HTTPS where TLS already protects them, unless
 * sign_payload says otherwise.
 *
 * Status mapping: 404 NoSuchBucket -> CM_E_NO_BUCKET, other 404 -> NOT_FOUND,
 * 403 SignatureDoesNotMatch -> SIGNATURE, RequestTimeTooSkewed -> CLOCK_SKEW,
 * other 403 -> ACCESS_DENIED, 405/501 -> UNSUPPORTED, 409 -> CONFLICT,
 * 412 -> PRECONDITION, 416 -> RANGE, 5xx -> TRANSIENT, 3xx -> INVALID (wrong
 * region or endpoint, with the endpoint S3 names), other 4xx -> INVALID.
 */
#ifndef CM_S3_H
#define CM_S3_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "common/status.h"
#include "config/awscfg.h"
#include "http/http.h"
#include "s3/s3_xml.h"

struct s3_client;

struct s3_client_opts {
	const char *endpoint;           /* "http[s]://host[:port]"; NULL: AWS for the region */
	const char *region;             /* NULL: us-east-1 */
	enum s3_addressing addressing;
	struct creds_provider *creds;   /* borrowed; NULL: anonymous requests */
	struct http_engine *engine;     /* borrowed */
	int sign_payload;               /* 1 always, 0 never, -1 auto (over plain HTTP only) */
};

/* Returns NULL and fills err when the endpoint is not a usable URL. */
struct s3_client *s3_client_create(const struct s3_client_opts *opts, struct cm_err *err);
void s3_client_destroy(struct s3_client *c);
/* The endpoint in use (borrowed), e.g. "https://s3.eu-west-1.amazonaws.com". */
const char *s3_client_endpoint(const struct s3_client *c);

/* User metadata: x-amz-meta-NAME headers, NAME in lower case without the prefix. */
struct s3_meta {
	char **names;
	char **values;
	size_t n;
};
/* Copy name/value into meta. Returns 0 or -1 (ENOMEM). */
int s3_meta_set(struct s3_meta *meta, const char *name, const char *value);
const char *s3_meta_get(const struct s3_meta *meta, const char *name);
void s3_meta_release(struct s3_meta *meta);

/* What HeadObject (and GetObject) tell about an object. */
struct s3_object_head {
	uint64_t size;                  /* the whole object's size */
	char *etag;                     /* without quotes */
	struct timespec last_modified;
	char *content_type;             /* may be NULL */
	struct s3_meta meta;
};
void s3_object_head_release(struct s3_object_head *h);

/* A request body: from memory (mem != NULL) or from fd at offset. */
struct s3_body {
	const void *mem;
	int fd;
	off_t offset;
	uint64_t len;
};

/* Options of PutObject, CreateMultipartUpload and CopyObject with REPLACE. */
struct s3_put_opts {
	const char *content_type;       /* NULL: application/octet-stream */
	const struct s3_meta *meta;     /* NULL: none */
	const char *if_none_match;      /* e.g. "*"; NULL: unconditional */
};

/*
 * ListObjectsV2 of one page. prefix/delimiter/token/start_after may be NULL.
 * max_keys <= 0 means the server's default (1000). encoding-type=url is always
 * asked for, so keys with control characters survive the XML.
 */
enum cm_status s3_list_objects(struct s3_client *c, const char *bucket, const char *prefix,
			       const char *delimiter, const char *token, const char *start_after,
			       int max_keys, struct s3_list_page *out, struct cm_err *err);

enum cm_status s3_head_object(struct s3_client *c, const char *bucket, const char *key,
			      struct s3_object_head *out, struct cm_err *err);

/*
 * Sink for GetObject data, called in order from the engine thread. Return 0 to
 * go on, -1 to abort the transfer (the call then fails with CM_E_CANCELLED).
 */
typedef int (*s3_sink_fn)(void *ctx, const char *data, size_t len);

/*
 * GetObject of bytes [offset, offset + length) (length UINT64_MAX: to the end),
 * streamed to sink. Never holds the object in memory. A transfer that breaks
 * is resumed where it stopped (with If-Match on the first answer's ETag, so the
 * pieces come from one version). If head is not NULL it receives the object's
 * size, ETag, time and metadata; its etag is set already before the first
 * byte reaches sink, so a sink can refuse bytes of a version it did not want. A range that starts past the end gives
 * CM_E_RANGE. *got (may be NULL) receives the number of bytes delivered.
 */
enum cm_status s3_get_object(struct s3_client *c, const char *bucket, const char *key,
			     uint64_t offset, uint64_t length, s3_sink_fn sink, void *ctx,
			     struct s3_object_head *head, uint64_t *got, struct cm_err *err);

/* PutObject. *etag (may be NULL) receives the new ETag, malloc'd. */
enum cm_status s3_put_object(struct s3_client *c, const char *bucket, const char *key,
			     const struct s3_body *body, const struct s3_put_opts *opts,
			     char **etag, struct cm_err *err);

enum cm_status s3_mpu_create(struct s3_client *c, const char *bucket, const char *key,
			     const struct s3_put_opts *opts, char **upload_id, struct cm_err *err);
enum cm_status s3_mpu_upload_part(struct s3_client *c, const char *bucket, const char *key,
				  const char *upload_id, int part_number, const struct s3_body *body,
				  char **etag, struct cm_err *err);
/* UploadPartCopy of bytes [first, last] of src (last < first: the whole object). */
enum cm_status s3_mpu_upload_part_copy(struct s3_client *c, const char *bucket, const char *key,
				       const char *upload_id, int part_number, const char *src_bucket,
				       const char *src_key, uint64_t first, uint64_t last,
				       char **etag, struct cm_err *err);
/* CompleteMultipartUpload. *etag (may be NULL) may come back "" (radosgw). */
enum cm_status s3_mpu_complete(struct s3_client *c, const char *bucket, const char *key,
			       const char *upload_id, const struct s3_part *parts, size_t n_parts,
			       char **etag, struct cm_err *err);
enum cm_status s3_mpu_abort(struct s3_client *c, const char *bucket, const char *key,
			    const char *upload_id, struct cm_err *err);
/* One page of ListMultipartUploads; markers may be NULL. */
enum cm_status s3_mpu_list(struct s3_client *c, const char *bucket, const char *prefix,
			   const char *key_marker, const char *upload_id_marker,
			   struct s3_upload_list *out, struct cm_err *err);

/*
 * CopyObject src -> (bucket, key). replace NULL: metadata copied; else the
 * metadata directive is REPLACE with replace's content type and metadata.
 */
enum cm_status s3_copy_object(struct s3_client *c, const char *bucket, const char *key,
			      const char *src_bucket, const char *src_key,
			      const struct s3_put_opts *replace, char **etag, struct cm_err *err);

/* DeleteObject. Deleting a missing key succeeds (as S3 answers 204). */
enum cm_status s3_delete_object(struct s3_client *c, const char *bucket, const char *key,
				struct cm_err *err);
/* DeleteObjects of 1..1000 keys; per-key failures land in out. */
enum cm_status s3_delete_objects(struct s3_client *c, const char *bucket, const char *const *keys,
				 size_t n_keys, struct s3_delete_result *out, struct cm_err *err);

/*
 * HeadBucket. A bare 403/400 (HEAD answers carry no body) is followed by a
 * one-key listing to learn the S3 error code (wrong secret, clock skew...).
 */
enum cm_status s3_head_bucket(struct s3_client *c, const char *bucket, struct cm_err *err);

/* A presigned URL for method on (bucket, key), valid for expires seconds. */
enum cm_status s3_presign(struct s3_client *c, const char *method, const char *bucket,
			  const char *key, long expires, char **url, struct cm_err *err);

#endif
