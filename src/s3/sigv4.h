/*
 * sigv4.h - AWS Signature Version 4: canonical request, string to sign,
 * signature, Authorization header and presigned query strings.
 *
 * The signer is generic (any service, optional path normalisation) so that it
 * can be checked against AWS's published test suite; S3 uses it with
 * normalize_path = 0 and a path that is already encoded once (see
 * sigv4_uri_encode). Paths and queries are given as they go on the wire; the
 * canonical forms re-encode them (decode %XX, encode everything outside
 * A-Z a-z 0-9 - . _ ~), which is the identity for correctly encoded input and
 * encodes raw bytes (spaces, UTF-8) in input that is not.
 *
 * Nothing here logs; nothing returned holds the secret key.
 */
#ifndef CM_SIGV4_H
#define CM_SIGV4_H

#include <stddef.h>
#include <time.h>

#include "common/buf.h"

#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct sigv4_params {
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;      /* NULL when none */
	const char *region;
	const char *service;            /* "s3" */
	time_t when;                    /* signing time (UTC seconds) */
	int normalize_path;             /* remove dot segments and empty segments: not for S3 */
	int omit_session_token;         /* send the token but leave it out of the signature */
};

struct sigv4_header {
	const char *name;               /* any case; compared case-insensitively */
	const char *value;              /* trimmed and with inner whitespace runs folded */
};

struct sigv4_request {
	const char *method;
	const char *path;               /* as on the wire, starting with '/' */
	const char *query;              /* as on the wire without '?'; NULL or "" for none */
	const struct sigv4_header *headers;     /* must include host */
	size_t n_headers;
	const char *payload_hash;       /* lower-case hex SHA-256, or SIGV4_UNSIGNED_PAYLOAD */
};

struct sigv4_out {
	char amz_date[17];              /* "YYYYMMDDTHHMMSSZ": send as X-Amz-Date (header mode) */
	char signature[65];
	char *canonical_request;        /* malloc'd, for tests and --debug output */
	char *string_to_sign;           /* malloc'd */
	char *authorization;            /* header mode: the Authorization header value */
	char *query;                    /* presign mode: the complete query string to send */
};

/*
 * Sign in header mode. The canonical headers are req->headers plus x-amz-date
 * and (unless omitted) x-amz-security-token when req->headers lacks them; the
 * caller must also send those (values: out->amz_date, params->session_token). Duplicate header names are
 * joined with ',' in the order given. Returns 0, or -1 on allocation failure or
 * invalid input (no host header, bad escape). out is the caller's: release it
 * with sigv4_out_release().
 */
int sigv4_sign_headers(const struct sigv4_params *params, const struct sigv4_request *req,
		       struct sigv4_out *out);

/*
 * Sign in query mode (a presigned URL valid for expires seconds). The X-Amz-*
 * parameters are added to req->query; out->query is the query string to put
 * after '?'. Only req->headers are signed (normally just host).
 */
int sigv4_presign(const struct sigv4_params *params, const struct sigv4_request *req,
		  long expires, struct sigv4_out *out);

void sigv4_out_release(struct sigv4_out *out);

/*
 * Append s[0..len) to b encoded the SigV4 way: unreserved bytes as they are,
 * '/' as it is when keep_slash, everything else as %XX (upper-case hex). This is
 * S3's key encoding ('+' becomes %2B, space %20). Returns 0 or -1 (ENOMEM).
 */
int sigv4_uri_encode(struct buf *b, const char *s, size_t len, int keep_slash);

/* Lower-case hex SHA-256 of data into hex[65]. */
void sigv4_sha256_hex(const void *data, size_t len, char hex[65]);

/* Format t as "YYYYMMDDTHHMMSSZ" into out[17]. */
void sigv4_amz_date(time_t t, char out[17]);

#endif
