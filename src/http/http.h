/*
 * http.h - one HTTP engine per process, on libcurl's multi interface.
 *
 * The engine owns a thread that drives a curl multi handle: connections are
 * pooled and kept alive across requests (and TLS sessions with them), up to
 * max_in_flight transfers run at once, the rest wait in curl's queue. Callers
 * submit requests from any thread, synchronously (http_perform) or with a
 * completion callback (http_submit).
 *
 * Each attempt of a request first calls req->prepare, which sets the headers
 * (the S3 layer signs there, so a retry is signed afresh with current
 * credentials and time). A failed attempt is retried, after an exponential
 * backoff with full jitter, when it is a transport fault (reset, timeout,
 * refused connection) or an HTTP 500/502/503/504/429, or when req->classify says
 * so; requests not marked idempotent are only retried when no byte was sent.
 * Before a retry req->rewind lets the response sink start again.
 *
 * A 2xx body goes to req->on_data when set (streamed, never buffered whole);
 * otherwise, and for every non-2xx answer, it is collected in req->body (error
 * bodies capped at 64 KiB).
 */
#ifndef CM_HTTP_H
#define CM_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/status.h"

struct http_engine;

struct http_engine_opts {
	int max_in_flight;              /* transfers at once; default 32 */
	long connect_timeout_ms;        /* default 10,000 */
	long stall_timeout_s;           /* abort an attempt that moves no byte this long; default 30 */
	const char *ca_bundle;          /* NULL: the system's CA store */
	int insecure;                   /* skip TLS verification (the caller warns) */
	int max_retries;                /* retries after the first attempt; 0: default 5; <0: none */
	long retry_base_ms;             /* default 100 */
	long retry_max_ms;              /* default 5,000 */
	int verbose;                    /* curl's own trace to stderr (never with secrets: debug only) */
};

/* Counters since the engine started; read with http_engine_stats(). */
struct http_stats {
	uint64_t requests;              /* attempts started */
	uint64_t retries;
	uint64_t failures;              /* requests that ended in an error */
	uint64_t bytes_up;
	uint64_t bytes_down;
	uint64_t in_flight;
	uint64_t by_method[5];          /* attempts: GET, HEAD, PUT, POST, DELETE */
};

enum { HTTP_M_GET = 0, HTTP_M_HEAD, HTTP_M_PUT, HTTP_M_POST, HTTP_M_DELETE };

/* Returns NULL on failure (curl could not be initialised). */
struct http_engine *http_engine_create(const struct http_engine_opts *opts);
/* Stops the thread. Requests still queued complete with CM_E_CANCELLED. NULL is a no-op. */
void http_engine_destroy(struct http_engine *eng);
void http_engine_stats(struct http_engine *eng, struct http_stats *out);

struct http_header {
	char *name;                     /* lower-case */
	char *value;                    /* trimmed */
};

struct http_request;
typedef enum cm_status (*http_prepare_fn)(struct http_request *req);
typedef int (*http_data_fn)(struct http_request *req, const char *data, size_t len);
typedef int (*http_rewind_fn)(struct http_request *req);
typedef int (*http_classify_fn)(struct http_request *req);
typedef void (*http_done_fn)(struct http_request *req);

/*
 * A request. The caller fills the "in" fields, owns the struct and keeps it
 * alive until completion; http_request_release() frees what the engine and
 * http_request_* helpers allocated in it.
 */
struct http_request {
	/* in */
	const char *method;             /* "GET", "PUT", "POST", "HEAD", "DELETE" */
	char *url;                      /* owned by the request (freed by release) */
	int idempotent;
	const char *body_mem;           /* request body from memory, or ... */
	int body_fd;                    /* ... from a file (-1: none) at body_offset */
	off_t body_offset;
	uint64_t body_len;
	struct curl_slist *headers;     /* set by prepare; freed before each attempt */
	http_prepare_fn prepare;        /* required: sets url/headers for an attempt */
	http_data_fn on_data;           /* optional 2xx body sink: return 0, or -1 to abort */
	http_rewind_fn rewind;          /* optional: before a retry; return 0 to allow it */
	http_classify_fn classify;      /* optional: return 1 to retry this answer */
	http_done_fn done;              /* http_submit: called once, from the engine thread */
	void *ctx;                      /* the caller's */

	/* out */
	long status;                    /* HTTP status of the last attempt, 0 if none */
	struct buf body;                /* response body when not streamed, or error body */
	struct http_header *resp_headers;
	size_t n_resp_headers;
	int attempts;
	uint64_t bytes_received;        /* 2xx body bytes of the last attempt */
	struct cm_err err;              /* CM_OK, or what failed (transport level) */

	/* engine-private */
	uint64_t upload_pos_;
	int sent_any_;
	int64_t due_ms_;
	void *waiter_;
	void *easy_;
	struct http_request *next_;
	struct http_request *active_next_;
	struct http_engine *eng_;
};

/* Initialise a request (zeroes it, body_fd = -1). */
void http_request_init(struct http_request *req);
/* Free url, headers, body and response headers; the request can be reused after init. */
void http_request_release(struct http_request *req);
/* Append a header "name: value" to req->headers. Returns 0 or -1. */
int http_request_add_header(struct http_request *req, const char *name, const char *value);
/* A response header by lower-case name (borrowed, valid until release), or NULL. */
const char *http_response_header(const struct http_request *req, const char *name);

/*
 * Run req to completion (all its attempts) and return req->err.status when the
 * transport failed, else CM_OK (the caller then looks at req->status).
 */
enum cm_status http_perform(struct http_engine *eng, struct http_request *req);

/* Queue req; req->done is called once it completes. Never blocks. */
void http_submit(struct http_engine *eng, struct http_request *req);

#endif
