/*
 * s3_xml.h - parsing of S3's XML responses and building of its XML requests.
 *
 * Parsers take a complete response body (bytes, length; not NUL-terminated) and
 * fill a caller-owned struct. They are built on expat with no DTD, entity
 * expansion or network access, cap the length of any one text value, and
 * return CM_E_PROTOCOL with a message in err for malformed, truncated or
 * hostile input: never crash, never leak. Element names are matched without
 * namespace (S3 uses xmlns="http://s3.amazonaws.com/doc/2006-03-01/").
 *
 * Every *_release() frees what the matching parse allocated and leaves the
 * struct zeroed; release of a zeroed struct is a no-op.
 */
#ifndef CM_S3_XML_H
#define CM_S3_XML_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/status.h"

/* One object of a ListObjectsV2 page. */
struct s3_object_info {
	char *key;              /* decoded when the page says EncodingType url */
	uint64_t size;
	char *etag;             /* with its quotes removed; may be "" */
	struct timespec last_modified;
	char *storage_class;    /* may be NULL */
};

/* One page of ListObjectsV2. */
struct s3_list_page {
	struct s3_object_info *objects;
	size_t n_objects;
	char **prefixes;        /* CommonPrefixes/Prefix, decoded as keys are */
	size_t n_prefixes;
	int is_truncated;
	char *next_token;       /* NextContinuationToken; NULL if absent */
	char *start_after;      /* StartAfter echoed back, decoded; may be NULL */
	int key_count;          /* KeyCount, or -1 if absent */
};

enum cm_status s3_xml_parse_list(const char *body, size_t len,
				 struct s3_list_page *out, struct cm_err *err);
void s3_list_page_release(struct s3_list_page *page);

/*
 * An <Error> body. Fills err->code, err->message and err->request_id (when the
 * body has them) and returns CM_OK; returns CM_E_PROTOCOL if the body is not
 * an <Error> document (then err's fields are untouched).
 */
enum cm_status s3_xml_parse_error(const char *body, size_t len, struct cm_err *err);

/*
 * Whether the root element of body is <Error>. S3 may answer 200 to
 * CompleteMultipartUpload and CopyObject and still put an error in the body.
 */
int s3_xml_is_error(const char *body, size_t len);

/* InitiateMultipartUploadResult: *upload_id is malloc'd, the caller's. */
enum cm_status s3_xml_parse_initiate(const char *body, size_t len, char **upload_id,
				     struct cm_err *err);

/*
 * CompleteMultipartUploadResult, CopyObjectResult and CopyPartResult all carry
 * an ETag (quoted or not: radosgw omits the quotes, and answers an empty ETag to
 * Complete) and maybe a LastModified. *etag is malloc'd without quotes ("" when
 * empty or absent); last_modified may be NULL, and is zeroed when absent.
 */
enum cm_status s3_xml_parse_etag_result(const char *body, size_t len, char **etag,
					struct timespec *last_modified, struct cm_err *err);

/* DeleteResult of DeleteObjects: the keys that failed, with their codes. */
struct s3_delete_failure {
	char *key;
	char *code;
	char *message;
};
struct s3_delete_result {
	size_t n_deleted;
	struct s3_delete_failure *failures;
	size_t n_failures;
};
enum cm_status s3_xml_parse_delete_result(const char *body, size_t len,
					  struct s3_delete_result *out, struct cm_err *err);
void s3_delete_result_release(struct s3_delete_result *res);

/* ListMultipartUploadsResult. */
struct s3_upload_info {
	char *key;
	char *upload_id;
	struct timespec initiated;
};
struct s3_upload_list {
	struct s3_upload_info *uploads;
	size_t n_uploads;
	int is_truncated;
	char *next_key_marker;        /* NULL if absent */
	char *next_upload_id_marker;  /* NULL if absent */
};
enum cm_status s3_xml_parse_uploads(const char *body, size_t len,
				    struct s3_upload_list *out, struct cm_err *err);
void s3_upload_list_release(struct s3_upload_list *list);

/* A part for CompleteMultipartUpload. */
struct s3_part {
	int number;             /* 1..10000 */
	const char *etag;       /* without quotes; borrowed */
};

/*
 * Build the CompleteMultipartUpload body for parts (in ascending number order).
 * Returns a malloc'd NUL-terminated string (the caller's) and its length in
 * *len, or NULL on allocation failure.
 */
char *s3_xml_build_complete(const struct s3_part *parts, size_t n_parts, size_t *len);

/*
 * Build a DeleteObjects body (Quiet mode) for keys (1..1000 of them). Keys are
 * XML-escaped; characters XML 1.0 cannot carry (control characters other than
 * tab, LF, CR) are written as character references. Returns a malloc'd string
 * and its length in *len, or NULL on allocation failure.
 */
char *s3_xml_build_delete(const char *const *keys, size_t n_keys, size_t *len);

/*
 * Parse an ISO 8601 time as S3 writes it ("2009-10-12T17:50:30.000Z", also
 * without fraction, or with a +00:00 offset). Returns 0 and fills *ts, or -1.
 */
int s3_parse_iso8601(const char *s, struct timespec *ts);

#endif
