/*
 * s3.c - S3 requests over the HTTP engine (see s3.h for the contract).
 *
 * Every operation fills a struct s3_call (method, bucket, key, query, extra
 * headers, body, optional streaming sink) and runs it through call_run(),
 * which computes the payload hash once, and whose prepare hook signs each
 * attempt afresh (current credentials, current time, and for a resumed GET a
 * new Range). call_finish() turns the answer into a cm_status and fills err.
 */
#include "s3/s3.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "s3/sigv4.h"

#define MAX_EXTRA_HEADERS 40

struct s3_client {
	char *scheme;                   /* "http" or "https" */
	char *host;                     /* host[:port] as the Host header carries it */
	char *base_path;                /* "" or "/some/prefix" of the endpoint URL */
	char *region;
	enum s3_addressing addressing;
	int sign_payload;
	int is_aws;                     /* the endpoint is AWS's own */
	struct creds_provider *creds;
	struct http_engine *engine;
	char *endpoint;                 /* for messages */
};

/* One S3 operation in flight. */
struct s3_call {
	struct s3_client *c;
	const char *method;
	const char *bucket;
	const char *key;                /* NULL: a bucket-level request */
	const char *query;              /* encoded, without '?'; NULL for none */
	struct sigv4_header extra[MAX_EXTRA_HEADERS];  /* signed and sent; borrowed */
	size_t n_extra;
	const struct s3_body *body;
	char payload_hash[65];
	char *host;                     /* Host header value */
	char *path;                     /* encoded request path */
	/* streaming GET */
	s3_sink_fn sink;
	void *sink_ctx;
	struct s3_object_head *head_out; /* its etag set before the first byte reaches sink */
	int has_range;
	uint64_t range_off, range_len;  /* range_len UINT64_MAX: open */
	uint64_t delivered;             /* bytes handed to sink over all attempts */
	uint64_t skip;                  /* bytes to drop in this attempt (server ignored Range) */
	int attempt_started;
	char *if_match;                 /* the first answer's ETag, pinned for resumes */
	int sink_failed;
	int sink_full;                  /* got every byte asked for; the rest is dropped */
	int idempotent_post;            /* a POST that may be sent again (DeleteObjects) */
	struct cm_err cred_err;
};

static int is_dns_compatible(const char *bucket)
{
	size_t len = strlen(bucket);

	if (len < 3 || len > 63)
		return 0;
	for (const char *p = bucket; *p; p++)
		if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-'))
			return 0;
	return 1;
}

struct s3_client *s3_client_create(const struct s3_client_opts *opts, struct cm_err *err)
{
	struct s3_client *c = xcalloc(1, sizeof(*c));
	const char *region = opts->region && *opts->region ? opts->region : "us-east-1";
	const char *ep = opts->endpoint;
	const char *rest, *slash;
	char *aws_ep = NULL;

	c->region = xstrdup(region);
	if (!ep || !*ep) {
		aws_ep = xasprintf("https://s3.%s.amazonaws.com", region);
		ep = aws_ep;
		c->is_aws = 1;
	}
	if (strncasecmp(ep, "https://", 8) == 0) {
		c->scheme = xstrdup("https");
		rest = ep + 8;
	} else if (strncasecmp(ep, "http://", 7) == 0) {
		c->scheme = xstrdup("http");
		rest = ep + 7;
	} else {
		cm_err_set(err, CM_E_INVALID, "endpoint \"%s\" must start with http:// or https://", ep);
		goto out_free;
	}
	slash = strchr(rest, '/');
	c->host = slash ? xstrndup(rest, (size_t)(slash - rest)) : xstrdup(rest);
	if (!*c->host || strpbrk(c->host, " ?#@")) {
		cm_err_set(err, CM_E_INVALID, "endpoint \"%s\" has no usable host", ep);
		goto out_free;
	}
	c->base_path = xstrdup(slash ? slash : "");
	/* drop a trailing '/' of the base path */
	if (*c->base_path && c->base_path[strlen(c->base_path) - 1] == '/')
		c->base_path[strlen(c->base_path) - 1] = '\0';
	/* a default port is not part of the Host header curl sends */
	{
		size_t hl = strlen(c->host);
		if (strcmp(c->scheme, "https") == 0 && hl > 4 && strcmp(c->host + hl - 4, ":443") == 0)
			c->host[hl - 4] = '\0';
		else if (strcmp(c->scheme, "http") == 0 && hl > 3 && strcmp(c->host + hl - 3, ":80") == 0)
			c->host[hl - 3] = '\0';
	}
	if (!c->is_aws && strstr(c->host, "amazonaws.com"))
		c->is_aws = 1;
	c->addressing = opts->addressing;
	c->sign_payload = opts->sign_payload < 0 ? strcmp(c->scheme, "http") == 0 : opts->sign_payload;
	c->creds = opts->creds;
	c->engine = opts->engine;
	c->endpoint = xasprintf("%s://%s%s", c->scheme, c->host, c->base_path);
	free(aws_ep);
	return c;
out_free:
	free(aws_ep);
	s3_client_destroy(c);
	return NULL;
}

void s3_client_destroy(struct s3_client *c)
{
	if (!c)
		return;
	free(c->scheme);
	free(c->host);
	free(c->base_path);
	free(c->region);
	free(c->endpoint);
	free(c);
}

const char *s3_client_endpoint(const struct s3_client *c)
{
	return c->endpoint;
}

int s3_meta_set(struct s3_meta *meta, const char *name, const char *value)
{
	char **nn, **nv, *n, *v;

	for (size_t i = 0; i < meta->n; i++) {
		if (strcasecmp(meta->names[i], name) == 0) {
			v = strdup(value);
			if (!v)
				return -1;
			free(meta->values[i]);
			meta->values[i] = v;
			return 0;
		}
	}
	nn = realloc(meta->names, (meta->n + 1) * sizeof(*nn));
	if (!nn)
		return -1;
	meta->names = nn;
	nv = realloc(meta->values, (meta->n + 1) * sizeof(*nv));
	if (!nv)
		return -1;
	meta->values = nv;
	n = strdup(name);
	v = strdup(value);
	if (!n || !v) {
		free(n);
		free(v);
		return -1;
	}
	for (char *p = n; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	meta->names[meta->n] = n;
	meta->values[meta->n] = v;
	meta->n++;
	return 0;
}

const char *s3_meta_get(const struct s3_meta *meta, const char *name)
{
	for (size_t i = 0; i < meta->n; i++)
		if (strcasecmp(meta->names[i], name) == 0)
			return meta->values[i];
	return NULL;
}

void s3_meta_release(struct s3_meta *meta)
{
	for (size_t i = 0; i < meta->n; i++) {
		free(meta->names[i]);
		free(meta->values[i]);
	}
	free(meta->names);
	free(meta->values);
	memset(meta, 0, sizeof(*meta));
}

void s3_object_head_release(struct s3_object_head *h)
{
	free(h->etag);
	free(h->content_type);
	s3_meta_release(&h->meta);
	memset(h, 0, sizeof(*h));
}

/* Append "&name=value" (value encoded) to a query under construction. */
static void query_add(struct buf *q, const char *name, const char *value)
{
	if (q->len)
		buf_putc(q, '&');
	buf_puts(q, name);
	buf_putc(q, '=');
	if (value)
		sigv4_uri_encode(q, value, strlen(value), 0);
}

static void call_add_header(struct s3_call *call, const char *name, const char *value)
{
	if (call->n_extra < MAX_EXTRA_HEADERS)
		call->extra[call->n_extra++] = (struct sigv4_header){ name, value };
}

static int call_has_header(const struct s3_call *call, const char *name)
{
	for (size_t i = 0; i < call->n_extra; i++)
		if (strcasecmp(call->extra[i].name, name) == 0)
			return 1;
	return 0;
}

/* Host and encoded path of a call, by addressing style. */
static int call_locate(struct s3_call *call)
{
	struct s3_client *c = call->c;
	struct buf path = BUF_INIT;
	int path_style;

	switch (c->addressing) {
	case S3_ADDR_PATH:
		path_style = 1;
		break;
	case S3_ADDR_VIRTUAL:
		path_style = 0;
		break;
	default:
		/* virtual-hosted for AWS with DNS-safe names; path-style for other endpoints */
		path_style = !c->is_aws || !is_dns_compatible(call->bucket);
		break;
	}
	buf_puts(&path, c->base_path);
	if (path_style) {
		call->host = xstrdup(c->host);
		buf_putc(&path, '/');
		sigv4_uri_encode(&path, call->bucket, strlen(call->bucket), 0);
		if (call->key) {
			buf_putc(&path, '/');
			sigv4_uri_encode(&path, call->key, strlen(call->key), 1);
		}
	} else {
		call->host = xasprintf("%s.%s", call->bucket, c->host);
		buf_putc(&path, '/');
		if (call->key)
			sigv4_uri_encode(&path, call->key, strlen(call->key), 1);
	}
	call->path = buf_detach(&path);
	return call->path ? 0 : -1;
}

/* SHA-256 of the body for x-amz-content-sha256, read from memory or the file. */
static enum cm_status hash_body(struct s3_call *call, struct cm_err *err)
{
	const struct s3_body *b = call->body;

	if (!b || b->len == 0) {
		strcpy(call->payload_hash, SIGV4_EMPTY_SHA256);
		return CM_OK;
	}
	if (!call->c->sign_payload) {
		strcpy(call->payload_hash, SIGV4_UNSIGNED_PAYLOAD);
		return CM_OK;
	}
	if (b->mem) {
		sigv4_sha256_hex(b->mem, b->len, call->payload_hash);
		return CM_OK;
	}
	{
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		unsigned char md[32], *chunk = malloc(1 << 20);
		uint64_t done = 0;
		enum cm_status st = CM_OK;

		if (!ctx || !chunk) {
			st = cm_err_set(err, CM_E_NOMEM, "no memory to hash the body");
			goto out_free;
		}
		EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
		while (done < b->len) {
			size_t want = b->len - done > (1 << 20) ? (1 << 20) : (size_t)(b->len - done);
			ssize_t n = pread(b->fd, chunk, want, b->offset + (off_t)done);
			if (n <= 0) {
				st = cm_err_set(err, CM_E_IO, "reading the upload source: %s",
						n < 0 ? strerror(errno) : "file shrank");
				goto out_free;
			}
			EVP_DigestUpdate(ctx, chunk, (size_t)n);
			done += (uint64_t)n;
		}
		EVP_DigestFinal_ex(ctx, md, NULL);
		for (int i = 0; i < 32; i++)
			sprintf(call->payload_hash + 2 * i, "%02x", md[i]);
out_free:
		EVP_MD_CTX_free(ctx);
		free(chunk);
		return st;
	}
}

/* The http prepare hook: URL, signed headers, Range for this attempt. */
static enum cm_status call_prepare(struct http_request *req)
{
	struct s3_call *call = req->ctx;
	struct s3_client *c = call->c;
	struct aws_credentials creds = { 0 };
	struct sigv4_header hdrs[MAX_EXTRA_HEADERS + 3];
	size_t n = 0;
	struct sigv4_out out;
	enum cm_status st;
	char range[80];

	call->attempt_started = 0;
	call->skip = 0;
	if (!req->url) {
		req->url = call->query && *call->query
				   ? xasprintf("%s://%s%s?%s", c->scheme, call->host, call->path, call->query)
				   : xasprintf("%s://%s%s", c->scheme, call->host, call->path);
	}
	hdrs[n++] = (struct sigv4_header){ "host", call->host };
	hdrs[n++] = (struct sigv4_header){ "x-amz-content-sha256", call->payload_hash };
	for (size_t i = 0; i < call->n_extra; i++)
		hdrs[n++] = call->extra[i];

	http_request_add_header(req, "Host", call->host);
	http_request_add_header(req, "x-amz-content-sha256", call->payload_hash);
	for (size_t i = 0; i < call->n_extra; i++)
		http_request_add_header(req, call->extra[i].name, call->extra[i].value);
	if (call->has_range) {
		uint64_t start = call->range_off + call->delivered;
		if (call->range_len == UINT64_MAX)
			snprintf(range, sizeof(range), "bytes=%" PRIu64 "-", start);
		else
			snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, start,
				 call->range_off + call->range_len - 1);
		http_request_add_header(req, "Range", range);
	}
	if (call->if_match)
		http_request_add_header(req, "If-Match", call->if_match);
	if (!call_has_header(call, "Content-Type"))
		http_request_add_header(req, "Content-Type", ""); /* no curl default type */
	if (!c->creds || !creds_provider_has_source(c->creds))
		return CM_OK; /* anonymous */
	st = creds_provider_get(c->creds, &creds, &call->cred_err);
	if (st != CM_OK) {
		req->err = call->cred_err;
		return st;
	}
	{
		struct sigv4_params p = {
			.access_key_id = creds.access_key_id,
			.secret_access_key = creds.secret_access_key,
			.session_token = creds.session_token,
			.region = c->region,
			.service = "s3",
			.when = time(NULL),
		};
		struct sigv4_request sr = { req->method, call->path, call->query, hdrs, n,
					    call->payload_hash };
		if (sigv4_sign_headers(&p, &sr, &out) < 0) {
			aws_credentials_release(&creds);
			return cm_err_set(&req->err, CM_E_NOMEM, "signing failed");
		}
	}
	http_request_add_header(req, "X-Amz-Date", out.amz_date);
	if (creds.session_token)
		http_request_add_header(req, "X-Amz-Security-Token", creds.session_token);
	http_request_add_header(req, "Authorization", out.authorization);
	sigv4_out_release(&out);
	aws_credentials_release(&creds);
	return CM_OK;
}

/* Retry 400 RequestTimeout (the server gave up waiting for our body). */
static int call_classify(struct http_request *req)
{
	return req->status == 400 && req->body.data && strstr(req->body.data, "<Code>RequestTimeout</Code>");
}

static char *unquote_etag(const char *v)
{
	size_t len;

	if (!v)
		return xstrdup("");
	len = strlen(v);
	if (len >= 2 && v[0] == '"' && v[len - 1] == '"')
		return xstrndup(v + 1, len - 2);
	return xstrdup(v);
}

/* The GET sink hook: pins the ETag, drops bytes a range-ignoring server sent. */
static int call_on_data(struct http_request *req, const char *data, size_t len)
{
	struct s3_call *call = req->ctx;

	if (!call->attempt_started) {
		call->attempt_started = 1;
		if (!call->if_match) {
			const char *etag = http_response_header(req, "etag");
			if (etag)
				call->if_match = xstrdup(etag);
			if (etag && call->head_out && !call->head_out->etag)
				call->head_out->etag = unquote_etag(etag);
		}
		/* 200 to a ranged request: the server sent the whole object */
		if (req->status == 200 && call->has_range)
			call->skip = call->range_off + call->delivered;
	}
	if (call->skip) {
		size_t drop = call->skip < len ? (size_t)call->skip : len;
		data += drop;
		len -= drop;
		call->skip -= drop;
		if (!len)
			return 0;
	}
	if (call->has_range && call->range_len != UINT64_MAX) {
		uint64_t left = call->range_len - call->delivered;
		if (len > left)
			len = (size_t)left;
	}
	if (len && call->sink(call->sink_ctx, data, len) != 0) {
		call->sink_failed = 1;
		return -1;
	}
	call->delivered += len;
	if (call->has_range && call->range_len != UINT64_MAX && call->delivered >= call->range_len) {
		call->sink_full = 1;
		return req->status == 200 ? -1 : 0; /* stop a whole-object answer early */
	}
	return 0;
}

/* Before a retry of a streamed GET: resume after the bytes already delivered. */
static int call_rewind(struct http_request *req)
{
	struct s3_call *call = req->ctx;

	if (call->sink_failed || call->sink_full)
		return -1;
	if (call->delivered && !call->has_range) {
		call->has_range = 1;
		call->range_off = 0;
		call->range_len = UINT64_MAX;
	}
	return 0;
}

static enum cm_status status_from_answer(long http, const char *code)
{
	if (code && *code) {
		if (!strcmp(code, "NoSuchBucket"))
			return CM_E_NO_BUCKET;
		if (!strcmp(code, "NoSuchKey") || !strcmp(code, "NoSuchUpload"))
			return CM_E_NOT_FOUND;
		if (!strcmp(code, "SignatureDoesNotMatch"))
			return CM_E_SIGNATURE;
		if (!strcmp(code, "RequestTimeTooSkewed"))
			return CM_E_CLOCK_SKEW;
		if (!strcmp(code, "AccessDenied") || !strcmp(code, "InvalidAccessKeyId") ||
		    !strcmp(code, "InvalidToken") || !strcmp(code, "ExpiredToken"))
			return CM_E_ACCESS_DENIED;
		if (!strcmp(code, "NotImplemented"))
			return CM_E_UNSUPPORTED;
		if (!strcmp(code, "SlowDown") || !strcmp(code, "InternalError") ||
		    !strcmp(code, "ServiceUnavailable") || !strcmp(code, "RequestTimeout"))
			return CM_E_TRANSIENT;
		if (!strcmp(code, "InvalidRange"))
			return CM_E_RANGE;
		if (!strcmp(code, "EntityTooLarge"))
			return CM_E_TOO_LARGE;
	}
	if (http == 404)
		return CM_E_NOT_FOUND;
	if (http == 403 || http == 401)
		return CM_E_ACCESS_DENIED;
	if (http == 405 || http == 501)
		return CM_E_UNSUPPORTED;
	if (http == 409)
		return CM_E_CONFLICT;
	if (http == 412)
		return CM_E_PRECONDITION;
	if (http == 416)
		return CM_E_RANGE;
	if (http >= 500)
		return CM_E_TRANSIENT;
	return CM_E_INVALID;
}

/*
 * Turn the finished request into a status. 2xx is CM_OK unless the body is an
 * <Error> document (CompleteMultipartUpload and CopyObject may do that).
 */
static enum cm_status call_finish(struct s3_call *call, struct http_request *req, struct cm_err *err)
{
	const char *rid = http_response_header(req, "x-amz-request-id");
	enum cm_status st;

	if (req->err.status != CM_OK && !(call->sink_full && req->err.status == CM_E_CANCELLED)) {
		if (err) {
			*err = req->err;
			if (call->sink_failed)
				cm_err_set(err, CM_E_CANCELLED, "the receiver stopped the transfer");
			else if (req->err.status == CM_E_NETWORK || req->err.status == CM_E_TIMEOUT ||
				 req->err.status == CM_E_TLS)
				cm_err_detail(err, "%s %s after %d attempt%s", call->method, call->c->endpoint,
					      req->attempts, req->attempts == 1 ? "" : "s");
		}
		return req->err.status;
	}
	if (req->status >= 200 && req->status < 300 &&
	    !(req->body.len && s3_xml_is_error(req->body.data, req->body.len)))
		return CM_OK;
	if (err) {
		cm_err_clear(err);
		err->http_status = (int)req->status;
		if (rid)
			snprintf(err->request_id, sizeof(err->request_id), "%s", rid);
		if (req->body.len)
			s3_xml_parse_error(req->body.data, req->body.len, err);
	}
	st = status_from_answer(req->status, err ? err->code : NULL);
	if (err) {
		err->status = st;
		if (!err->message[0]) {
			if (req->status >= 300 && req->status < 400) {
				const char *region = http_response_header(req, "x-amz-bucket-region");
				snprintf(err->message, sizeof(err->message),
					 "the bucket is not at this endpoint%s%s (use --region or --endpoint)",
					 region ? "; it is in region " : "", region ? region : "");
			} else {
				snprintf(err->message, sizeof(err->message), "%s %s%s%s answered HTTP %ld",
					 call->method, call->bucket, call->key ? "/" : "",
					 call->key ? call->key : "", req->status);
			}
		}
		if (!err->detail[0])
			snprintf(err->detail, sizeof(err->detail), "%s", call->key ? call->key : call->bucket);
	}
	return st;
}

/*
 * Run a call to completion. On return req holds the answer (headers, body);
 * the caller releases it. Returns the call's status.
 */
static enum cm_status call_run(struct s3_call *call, struct http_request *req, struct cm_err *err)
{
	enum cm_status st;

	cm_err_clear(err);
	http_request_init(req);
	if (call_locate(call) < 0)
		return cm_err_set(err, CM_E_NOMEM, "out of memory");
	st = hash_body(call, err);
	if (st != CM_OK)
		goto out_free;
	req->method = call->method;
	req->idempotent = strcmp(call->method, "POST") != 0 || call->idempotent_post;
	req->prepare = call_prepare;
	req->classify = call_classify;
	req->ctx = call;
	if (call->body) {
		req->body_mem = call->body->mem;
		req->body_fd = call->body->mem ? -1 : call->body->fd;
		req->body_offset = call->body->offset;
		req->body_len = call->body->len;
	}
	if (call->sink) {
		req->on_data = call_on_data;
		req->rewind = call_rewind;
	}
	http_perform(call->c->engine, req);
	st = call_finish(call, req, err);
	if (st != CM_OK && st != CM_E_NOT_FOUND)
		log_debug("s3: %s %s/%s: %s (%s, HTTP %ld)", call->method, call->bucket,
			  call->key ? call->key : "", cm_status_str(st), err ? err->code : "", req->status);
out_free:
	free(call->host);
	free(call->path);
	free(call->if_match);
	call->host = call->path = call->if_match = NULL;
	return st;
}

static void call_init(struct s3_call *call, struct s3_client *c, const char *method,
		      const char *bucket, const char *key)
{
	memset(call, 0, sizeof(*call));
	call->c = c;
	call->method = method;
	call->bucket = bucket;
	call->key = key;
}

/* Fill an s3_object_head from response headers. */
static void head_from_response(const struct http_request *req, struct s3_object_head *h)
{
	const char *v;

	memset(h, 0, sizeof(*h));
	h->etag = unquote_etag(http_response_header(req, "etag"));
	v = http_response_header(req, "content-range");
	if (v && (v = strchr(v, '/')) && v[1] != '*')
		h->size = strtoull(v + 1, NULL, 10);
	else if ((v = http_response_header(req, "content-length")))
		h->size = strtoull(v, NULL, 10);
	v = http_response_header(req, "last-modified");
	if (v) {
		struct tm tm = { 0 };
		if (strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm))
			h->last_modified.tv_sec = timegm(&tm);
	}
	v = http_response_header(req, "content-type");
	if (v)
		h->content_type = xstrdup(v);
	for (size_t i = 0; i < req->n_resp_headers; i++) {
		const char *name = req->resp_headers[i].name;
		if (strncmp(name, "x-amz-meta-", 11) == 0)
			s3_meta_set(&h->meta, name + 11, req->resp_headers[i].value);
	}
}

enum cm_status s3_list_objects(struct s3_client *c, const char *bucket, const char *prefix,
			       const char *delimiter, const char *token, const char *start_after,
			       int max_keys, struct s3_list_page *out, struct cm_err *err)
{
	struct s3_call call;
	struct http_request req;
	struct buf q = BUF_INIT;
	char mk[16];
	enum cm_status st;

	memset(out, 0, sizeof(*out));
	call_init(&call, c, "GET", bucket, NULL);
	query_add(&q, "list-type", "2");
	query_add(&q, "encoding-type", "url");
	if (prefix && *prefix)
		query_add(&q, "prefix", prefix);
	if (delimiter && *delimiter)
		query_add(&q, "delimiter", delimiter);
	if (token)
		query_add(&q, "continuation-token", token);
	if (start_after && *start_after)
		query_add(&q, "start-after", start_after);
	if (max_keys > 0) {
		snprintf(mk, sizeof(mk), "%d", max_keys);
		query_add(&q, "max-keys", mk);
	}
	call.query = q.data;
	st = call_run(&call, &req, err);
	if (st == CM_OK)
		st = s3_xml_parse_list(req.body.data, req.body.len, out, err);
	http_request_release(&req);
	buf_release(&q);
	return st;
}

enum cm_status s3_head_object(struct s3_client *c, const char *bucket, const char *key,
			      struct s3_object_head *out, struct cm_err *err)
{
	struct s3_call call;
	struct http_request req;
	enum cm_status st;

	memset(out, 0, sizeof(*out));
	call_init(&call, c, "HEAD", bucket, key);
	st = call_run(&call, &req, err);
	if (st == CM_OK)
		head_from_response(&req, out);
	http_request_release(&req);
	return st;
}

enum cm_status s3_get_object(struct s3_client *c, const char *bucket, const char *key,
			     uint64_t offset, uint64_t length, s3_sink_fn sink, void *ctx,
			     struct s3_object_head *head, uint64_t *got, struct cm_err *err)
{
	struct s3_call call;
	struct http_request req;
	enum cm_status st;

	if (head)
		memset(head, 0, sizeof(*head));
	if (got)
		*got = 0;
	if (length == 0)
		return CM_OK;
	call_init(&call, c, "GET", bucket, key);
	call.sink = sink;
	call.sink_ctx = ctx;
	call.head_out = head;
	if (offset || length != UINT64_MAX) {
		call.has_range = 1;
		call.range_off = offset;
		call.range_len = length;
	}
	st = call_run(&call, &req, err);
	if (head) {
		s3_object_head_release(head);   /* the early ETag */
		if (st == CM_OK)
			head_from_response(&req, head);
	}
	if (got)
		*got = call.delivered;
	http_request_release(&req);
	return st;
}

/* Content-Type and x-amz-meta-* headers of a put; names live in names[]. */
static void add_put_headers(struct s3_call *call, const struct s3_put_opts *opts,
			    char names[][128])
{
	call_add_header(call, "Content-Type",
			opts && opts->content_type ? opts->content_type : "application/octet-stream");
	if (!opts)
		return;
	if (opts->if_none_match)
		call_add_header(call, "If-None-Match", opts->if_none_match);
	if (opts->meta) {
		for (size_t i = 0; i < opts->meta->n && i < 32; i++) {
			snprintf(names[i], 128, "x-amz-meta-%s", opts->meta->names[i]);
			call_add_header(call, names[i], opts->meta->values[i]);
		}
	}
}

enum cm_status s3_put_object(struct s3_client *c, const char *bucket, const char *key,
			     const struct s3_body *body, const struct s3_put_opts *opts,
			     char **etag, struct cm_err *err)
{
	struct s3_call call;
	struct http_request req;
	char names[32][128];
	enum cm_status st;

	if (etag)
		*etag = NULL;
	call_init(&call, c, "PUT", bucket, key);
	call.body = body;
	add_put_headers(&call, opts, names);
	st = call_run(&call, &req, err);
	if (st == CM_OK && etag)
		*etag = unquote_etag(http_response_header(&req, "etag"));
	http_request_release(&req);
	return st;
}

enum cm_status s3_mpu_create(struct s3_client *c, const char *bucket, const char *key,
			     const struct s3_put_opts *opts, char **upload_id, struct cm_err *err)
{
	struct s3_call call;
	struct http_request req;
	char names[32][128];
	enum cm_status st;

	*upload_id = NULL;
	call_init(&call, c, "POST", bucket, key);
	call.query = "uploads=";
	/* sending it twice costs at most an orphan upload, which the clean-up finds */
	call.idempotent_post = 1;
	add_put_headers(&call, opts, names);
	st = call_run(&call, &req, err);
	if (st == CM_OK)
		st = s3_xml_parse_initiate(req.body.data, req.body.len, upload_id, err);
	http_request_release(&req);
	return st;
}

enum cm_status s3_mpu_upload_part(struct s3_client *c, const char *bucket, const char *key,
				  const char *upload_id, int part_number, const struct s3_body *body,
				  char **etag, struct cm_err *err)
{
	struct s3_call call;
	struct http_request req;
	struct buf q = BUF_INIT;
	char num[16];
	enum cm_status st;

	*etag = NULL;
	call_init(&call, c, "PUT", bucket, key);
	snprintf(num, sizeof(num), "%d", part_number);
	query_add(&q, "partNumber", num);
	query_add(&q, "uploadId", upload_id);
	call.query = q.data;
	call.body = body;
	st = call_run(&call, &req, err);
	if (st == CM_OK) {
		*etag = unquote_etag(http_response_header(&req, "etag"));
		if (!**etag) {
			free(*etag);
			*etag = NULL;
			st = cm_err_set(err, CM_E_PROTOCOL, "UploadPart answered no ETag");
		}
	}
	http_request_release(&req);
	buf_release(&q);
	return st;
}

/* "/bucket/key" encoded for x-amz-copy-source. */
static char *copy_source(const char *bucket, const char *key)
{
	struct buf b = BUF_INIT;

	buf_putc(&b, '/');
	sigv4_uri_encode(&b, bucket, strlen(bucket), 0);
	buf_putc(&b, '/');
	sigv4_uri_encode(&b, key, strlen(key), 1);
	return buf_detach(&b);
}

enum cm_status s3_mpu_upload_part_copy(struct s3_client *c, const char *bucket, const char *key,
				       const char *upload_id, int part_number, const char *src_bucket,
				       const char *src_key, uint64_t first, uint64_t last,
				       char **etag, struct cm_err *err)
{
	struct s3_call call;
	struct http_request req;
	struct buf q = BUF_INIT;
	char num[16], range[80];
	char *src = copy_source(src_bucket, src_key);
	enum cm_status st;

	*etag = NULL;
	call_init(&call, c, "PUT", bucket, key);
	snprintf(num, sizeof(num), "%d", part_number);
	query_add(&q, "partNumber", num);
	query_add(&q, "uploadId", upload_id);
	call.query = q.data;
	call_add_header(&call, "x-amz-copy-source", src);
	if (last >= first) {
		snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, first, last);
		call_add_header(&call, "x-amz-copy-source-range", range);
	}
	st = call_run(&call, &req, err);
	if (st == CM_OK)
		st = s3_xml_parse_etag_result(req.body.data, req.body.len, etag, NULL, err);
	http_request_release(&req);
	buf_release(&q);
	free(src);
	return st;
}

enum cm_status s3_mpu_complete(struct s3_client *c, const char *bucket, const char *key,
			       const char *upload_id, const struct s3_part *parts, size_t n_parts,
			       char **etag, struct cm_err *err)
{
	struct s3_call call;
	struct http_request req;
	struct buf q = BUF_INIT;
	struct s3_body body = { .fd = -1 };
	size_t len = 0;
	char *xml = s3_xml_build_complete(parts, n_parts, &len);
	char *e = NULL;
	enum cm_status st;

	if (etag)
		*etag = NULL;
	if (!xml)
		return cm_err_set(err, CM_E_NOMEM, "no memory for the part list");
	call_init(&call, c, "POST", bucket, key);
	query_add(&q, "uploadId", upload_id);
	call.query = q.data;
	body.mem = xml;
	body.len = len;
	call.body = &body;
	call_add_header(&call, "Content-Type", "application/xml");
	/* AWS asks clients to retry Complete on 500; a retry after a lost answer
	 * finds the upload gone (below) */
	call.idempotent_post = 1;
	st = call_run(&call, &req, err);
	if (st == CM_OK)
		st = s3_xml_parse_etag_result(req.body.data, req.body.len, &e, NULL, err);
	if (st == CM_E_NOT_FOUND && req.attempts > 1) {
		/*
		 * An earlier attempt may have completed the upload and lost its answer.
		 * The object is there with this many parts if so.
		 */
		struct s3_object_head h;
		struct cm_err herr;
		char suffix[24];
		snprintf(suffix, sizeof(suffix), "-%zu", n_parts);
		if (s3_head_object(c, bucket, key, &h, &herr) == CM_OK) {
			size_t el = strlen(h.etag), sl = strlen(suffix);
			if (el > sl && strcmp(h.etag + el - sl, suffix) == 0) {
				log_info("s3: CompleteMultipartUpload of %s was retried after a lost answer; "
					 "the object is complete", key);
				free(e);
				e = xstrdup(h.etag);
				st = CM_OK;
				cm_err_clear(err);
			}
			s3_object_head_release(&h);
		}
	}
	if (st == CM_OK && etag)
		*etag = e;
	else
		free(e);
	http_request_release(&req);
	buf_release(&q);
	free(xml);
	return st;
}

enum cm_status s3_mpu_abort(struct s3_client *c, const char *bucket, const char *key,
			    const char *upload_id, struct cm_err *err)
{
	struct s3_call call;
	struct http_request req;
	struct buf q = BUF_INIT;
	enum cm_status st;

	call_init(&call, c, "DELETE", bucket, key);
	query_add(&q, "uploadId", upload_id);
	call.query = q.data;
	st = call_run(&call, &req, err);
	http_request_release(&req);
	buf_release(&q);
	return st;
}

enum cm_status s3_mpu_list(struct s3_client *c, const char *bucket, const char *prefix,
			   const char *key_marker, const char *upload_id_marker,
			   struct s3_upload_list *out, struct cm_err *err)
{
	struct s3_call call;
	struct http_request req;
	struct buf q = BUF_INIT;
	enum cm_status st;

	memset(out, 0, sizeof(*out));
	call_init(&call, c, "GET", bucket, NULL);
	query_add(&q, "uploads", "");
	if (prefix && *prefix)
		query_add(&q, "prefix", prefix);
	if (key_marker)
		query_add(&q, "key-marker", key_marker);
	if (upload_id_marker)
		query_add(&q, "upload-id-marker", upload_id_marker);
	call.query = q.data;
	st = call_run(&call, &req, err);
	if (st == CM_OK)
		st = s3_xml_parse_uploads(req.body.data, req.body.len, out, err);
	http_request_release(&req);
	buf_release(&q);
	return st;
}

enum cm_status s3_copy_object(struct s3_client *c, const char *bucket, const char *key,
			      const char *src_bucket, const char *src_key,
			      const struct s3_put_opts *replace, char **etag, struct cm_err *err)
{
	struct s3_call call;
	struct http_request req;
	char names[32][128];
	char *src = copy_source(src_bucket, src_key);
	char *e = NULL;
	enum cm_status st;

	if (etag)
		*etag = NULL;
	call_init(&call, c, "PUT", bucket, key);
	call_add_header(&call, "x-amz-copy-source", src);
	if (replace) {
		call_add_header(&call, "x-amz-metadata-directive", "REPLACE");
		add_put_headers(&call, replace, names);
	}
	st = call_run(&call, &req, err);
	if (st == CM_OK)
		st = s3_xml_parse_etag_result(req.body.data, req.body.len, &e, NULL, err);
	if (st == CM_OK && etag)
		*etag = e;
	else
		free(e);
	http_request_release(&req);
	free(src);
	return st;
}

enum cm_status s3_delete_object(struct s3_client *c, const char *bucket, const char *key,
				struct cm_err *err)
{
	struct s3_call call;
	struct http_request req;
	enum cm_status st;

	call_init(&call, c, "DELETE", bucket, key);
	st = call_run(&call, &req, err);
	http_request_release(&req);
	if (st == CM_E_NOT_FOUND)
		st = CM_OK; /* already gone: what the caller wanted */
	return st;
}

enum cm_status s3_delete_objects(struct s3_client *c, const char *bucket, const char *const *keys,
				 size_t n_keys, struct s3_delete_result *out, struct cm_err *err)
{
	struct s3_call call;
	struct http_request req;
	struct s3_body body = { .fd = -1 };
	size_t len = 0;
	char *xml;
	unsigned char md5[16];
	unsigned int md5_len = 0;
	char md5_b64[32];
	enum cm_status st;

	memset(out, 0, sizeof(*out));
	if (n_keys == 0)
		return CM_OK;
	if (n_keys > 1000)
		return cm_err_set(err, CM_E_INVALID, "DeleteObjects takes at most 1000 keys");
	xml = s3_xml_build_delete(keys, n_keys, &len);
	if (!xml)
		return cm_err_set(err, CM_E_NOMEM, "no memory for the key list");
	EVP_Digest(xml, len, md5, &md5_len, EVP_md5(), NULL);
	EVP_EncodeBlock((unsigned char *)md5_b64, md5, (int)md5_len);
	call_init(&call, c, "POST", bucket, NULL);
	call.query = "delete=";
	body.mem = xml;
	body.len = len;
	call.body = &body;
	call_add_header(&call, "Content-Type", "application/xml");
	call_add_header(&call, "Content-MD5", md5_b64);
	/* DeleteObjects is idempotent although it is a POST: retry it on 5xx */
	call.idempotent_post = 1;
	st = call_run(&call, &req, err);
	if (st == CM_OK)
		st = s3_xml_parse_delete_result(req.body.data, req.body.len, out, err);
	http_request_release(&req);
	free(xml);
	return st;
}

enum cm_status s3_head_bucket(struct s3_client *c, const char *bucket, struct cm_err *err)
{
	struct s3_call call;
	struct http_request req;
	enum cm_status st;

	call_init(&call, c, "HEAD", bucket, NULL);
	st = call_run(&call, &req, err);
	http_request_release(&req);
	if (st == CM_E_NOT_FOUND) {
		if (err) {
			err->status = CM_E_NO_BUCKET;
			snprintf(err->message, sizeof(err->message), "bucket \"%s\" does not exist at %s",
				 bucket, c->endpoint);
		}
		return CM_E_NO_BUCKET;
	}
	if (st == CM_E_ACCESS_DENIED || st == CM_E_INVALID) {
		/* HEAD answers have no body: ask again with a listing to learn the code */
		struct s3_list_page page;
		struct cm_err err2;
		enum cm_status st2 = s3_list_objects(c, bucket, NULL, NULL, NULL, NULL, 1, &page, &err2);
		s3_list_page_release(&page);
		if (st2 != CM_OK && err2.code[0]) {
			if (err)
				*err = err2;
			return st2;
		}
		if (st2 == CM_OK)
			return CM_OK; /* listing allowed even though HEAD was not */
	}
	return st;
}

enum cm_status s3_presign(struct s3_client *c, const char *method, const char *bucket,
			  const char *key, long expires, char **url, struct cm_err *err)
{
	struct s3_call call;
	struct aws_credentials creds = { 0 };
	struct sigv4_header hdrs[1];
	struct sigv4_out out;
	enum cm_status st;

	*url = NULL;
	if (!c->creds || !creds_provider_has_source(c->creds))
		return cm_err_set(err, CM_E_CREDENTIALS, "presigning needs credentials");
	st = creds_provider_get(c->creds, &creds, err);
	if (st != CM_OK)
		return st;
	call_init(&call, c, method, bucket, key);
	if (call_locate(&call) < 0) {
		st = cm_err_set(err, CM_E_NOMEM, "out of memory");
		goto out_release;
	}
	hdrs[0] = (struct sigv4_header){ "host", call.host };
	{
		struct sigv4_params p = {
			.access_key_id = creds.access_key_id,
			.secret_access_key = creds.secret_access_key,
			.session_token = creds.session_token,
			.region = c->region,
			.service = "s3",
			.when = time(NULL),
		};
		struct sigv4_request sr = { method, call.path, NULL, hdrs, 1, SIGV4_UNSIGNED_PAYLOAD };
		if (sigv4_presign(&p, &sr, expires, &out) < 0) {
			st = cm_err_set(err, CM_E_NOMEM, "signing failed");
			goto out_release;
		}
	}
	*url = xasprintf("%s://%s%s?%s", c->scheme, call.host, call.path, out.query);
	sigv4_out_release(&out);
out_release:
	free(call.host);
	free(call.path);
	aws_credentials_release(&creds);
	return st;
}
