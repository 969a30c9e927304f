/*
 * status.h - the status codes and error record shared by http/, s3/ and store/.
 *
 * Every fallible call below the filesystem returns an enum cm_status. Codes keep
 * apart what a caller must treat differently: retryable versus final failures,
 * "the server does not implement this" (so a caller can fall back), and the
 * auth/clock problems a user has to fix. Details (HTTP status, S3 error code,
 * message, request id, local context) travel in a struct cm_err owned by the
 * caller; never in a global.
 */
#ifndef CM_STATUS_H
#define CM_STATUS_H

#include <stdarg.h>

enum cm_status {
	CM_OK = 0,
	CM_E_NOT_FOUND,     /* 404 NoSuchKey, NoSuchUpload */
	CM_E_NO_BUCKET,     /* NoSuchBucket */
	CM_E_ACCESS_DENIED, /* 403 AccessDenied, InvalidAccessKeyId */
	CM_E_SIGNATURE,     /* SignatureDoesNotMatch */
	CM_E_CLOCK_SKEW,    /* RequestTimeTooSkewed */
	CM_E_UNSUPPORTED,   /* server answered 501 NotImplemented or 405 */
	CM_E_PRECONDITION,  /* 412 */
	CM_E_RANGE,         /* 416 InvalidRange */
	CM_E_INVALID,       /* bad argument or 400 with no better code */
	CM_E_CONFLICT,      /* 409: BucketNotEmpty, OperationAborted */
	CM_E_TRANSIENT,     /* 5xx, SlowDown: retries exhausted */
	CM_E_NETWORK,       /* DNS failure, connection refused or reset */
	CM_E_TLS,           /* certificate or handshake failure */
	CM_E_TIMEOUT,       /* no answer in time */
	CM_E_PROTOCOL,      /* malformed or unexpected response */
	CM_E_CREDENTIALS,   /* no credentials found, credential_process failed */
	CM_E_CONFIG,        /* unreadable or malformed configuration */
	CM_E_NOMEM,
	CM_E_IO,            /* local I/O error */
	CM_E_CANCELLED,
	CM_E_TOO_LARGE,     /* object or part over a limit */
	CM_E__COUNT
};

/*
 * The details of a failure. Fixed-size fields so that filling one in never
 * allocates (it is used on error paths, including out-of-memory ones).
 */
struct cm_err {
	enum cm_status status;
	int http_status;        /* 0 when no HTTP answer was received */
	char code[64];          /* S3 error code, e.g. "NoSuchKey" */
	char message[256];      /* server message or our own explanation */
	char request_id[96];    /* x-amz-request-id or the body's RequestId */
	char detail[256];       /* local context: curl error, file:line, key */
};

/* A short stable name for a status ("not found", "access denied"...). */
const char *cm_status_str(enum cm_status st);

/* The positive errno a filesystem should report for a status. */
int cm_status_errno(enum cm_status st);

/* Whether an operation that failed with this status may succeed if retried. */
int cm_status_retryable(enum cm_status st);

/* Reset every field; status becomes CM_OK. e may be NULL. */
void cm_err_clear(struct cm_err *e);

/*
 * Set status and a printf-formatted message (into ->message). Leaves the other
 * fields as they are. Returns st so callers can write `return cm_err_set(...)`.
 * e may be NULL, in which case only st is returned.
 */
enum cm_status cm_err_set(struct cm_err *e, enum cm_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Set ->detail (local context) with printf formatting. e may be NULL. */
void cm_err_detail(struct cm_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Render an error as one line for a person: "access denied: Access Denied
 * (AccessDenied, HTTP 403, request id X; detail)". Writes at most len bytes
 * including the terminator; returns buf.
 */
char *cm_err_format(const struct cm_err *e, char *buf, unsigned long len);

#endif
