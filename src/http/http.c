/*
 * http.c - the libcurl multi engine (see http.h for the contract).
 *
 * Threads: callers only touch the submission queue (under eng->lock) and wake
 * the engine with curl_multi_wakeup(). Everything else - the multi handle,
 * the easy handles, the delayed-retry list, every callback - runs on the
 * engine thread. A request is in exactly one place at a time: the submission
 * queue, the delayed list, the multi handle (one attempt running), or handed
 * back to its owner through req->done.
 */
#include "http/http.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/log.h"

#define ERROR_BODY_CAP (64 * 1024)
#define PLAIN_BODY_CAP (64 * 1024 * 1024)

struct http_engine {
	CURLM *multi;                   /* engine thread only */
	CURLSH *share;                  /* DNS and TLS session cache; engine thread only */
	pthread_t thread;
	pthread_mutex_t lock;
	struct http_request *queue_head;        /* protected by lock */
	struct http_request *queue_tail;        /* protected by lock */
	int stopping;                   /* protected by lock */
	struct http_stats stats;        /* protected by lock */
	struct http_request *delayed;   /* engine thread only: retries waiting for due_ms_ */
	struct http_request *active;    /* engine thread only: attempts in the multi handle */
	struct http_engine_opts opts;   /* read-only after create */
	char *ca_bundle;                /* read-only after create */
	unsigned int rand_state;        /* engine thread only */
};

struct perform_waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int finished;                   /* protected by lock */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void http_request_init(struct http_request *req)
{
	memset(req, 0, sizeof(*req));
	req->body_fd = -1;
}

static void clear_response(struct http_request *req)
{
	for (size_t i = 0; i < req->n_resp_headers; i++) {
		free(req->resp_headers[i].name);
		free(req->resp_headers[i].value);
	}
	free(req->resp_headers);
	req->resp_headers = NULL;
	req->n_resp_headers = 0;
	buf_reset(&req->body);
	req->status = 0;
	req->bytes_received = 0;
}

void http_request_release(struct http_request *req)
{
	clear_response(req);
	buf_release(&req->body);
	curl_slist_free_all(req->headers);
	req->headers = NULL;
	free(req->url);
	req->url = NULL;
}

int http_request_add_header(struct http_request *req, const char *name, const char *value)
{
	struct buf line = BUF_INIT;
	struct curl_slist *l;

	buf_printf(&line, "%s: %s", name, value);
	if (buf_failed(&line))
		return -1;
	l = curl_slist_append(req->headers, line.data);
	/* the header may hold a signature: wipe our copy */
	memset(line.data, 0, line.len);
	buf_release(&line);
	if (!l)
		return -1;
	req->headers = l;
	return 0;
}

const char *http_response_header(const struct http_request *req, const char *name)
{
	for (size_t i = 0; i < req->n_resp_headers; i++)
		if (strcmp(req->resp_headers[i].name, name) == 0)
			return req->resp_headers[i].value;
	return NULL;
}

static size_t header_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct http_request *req = userp;
	size_t len = size * nmemb, nlen, vstart, vend;
	const char *colon;
	struct http_header *nh;

	if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		/* a new response (after 100 Continue or a redirect): forget the old headers */
		clear_response(req);
		return len;
	}
	colon = memchr(data, ':', len);
	if (!colon)
		return len;
	nlen = (size_t)(colon - data);
	vstart = nlen + 1;
	vend = len;
	while (vstart < vend && (data[vstart] == ' ' || data[vstart] == '\t'))
		vstart++;
	while (vend > vstart && isspace((unsigned char)data[vend - 1]))
		vend--;
	nh = realloc(req->resp_headers, (req->n_resp_headers + 1) * sizeof(*nh));
	if (!nh)
		return 0;
	req->resp_headers = nh;
	nh = &req->resp_headers[req->n_resp_headers];
	nh->name = strndup(data, nlen);
	nh->value = strndup(data + vstart, vend - vstart);
	if (!nh->name || !nh->value) {
		free(nh->name);
		free(nh->value);
		return 0;
	}
	for (char *c = nh->name; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	req->n_resp_headers++;
	return len;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct http_request *req = userp;
	size_t len = size * nmemb;
	long code = req->status; /* set by header_status_cb from the status line */
	if (code >= 200 && code < 300) {
		req->bytes_received += len;
		if (req->on_data)
			return req->on_data(req, data, len) == 0 ? len : 0;
		if (req->body.len + len > PLAIN_BODY_CAP)
			return 0;
	} else if (req->body.len + len > ERROR_BODY_CAP) {
		return len; /* keep the start of an error body; drop the rest */
	}
	if (buf_append(&req->body, data, len) < 0)
		return 0;
	return len;
}

static size_t read_cb(char *out, size_t size, size_t nmemb, void *userp)
{
	struct http_request *req = userp;
	size_t want = size * nmemb;
	uint64_t left = req->body_len - req->upload_pos_;

	if (want > left)
		want = (size_t)left;
	if (!want)
		return 0;
	if (req->body_mem) {
		memcpy(out, req->body_mem + req->upload_pos_, want);
	} else if (req->body_fd >= 0) {
		ssize_t n = pread(req->body_fd, out, want, req->body_offset + (off_t)req->upload_pos_);
		if (n <= 0)
			return CURL_READFUNC_ABORT;
		want = (size_t)n;
	} else {
		return 0;
	}
	req->upload_pos_ += want;
	req->sent_any_ = 1;
	return want;
}

static int seek_cb(void *userp, curl_off_t offset, int origin)
{
	struct http_request *req = userp;

	if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > req->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	req->upload_pos_ = (uint64_t)offset;
	return CURL_SEEKFUNC_OK;
}

/* Remember the status code as soon as headers are complete, for write_cb. */
static size_t header_status_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct http_request *req = userp;
	size_t len = header_cb(data, size, nmemb, userp);

	if (len && size * nmemb >= 12 && memcmp(data, "HTTP/", 5) == 0) {
		const char *sp = memchr(data, ' ', size * nmemb);
		if (sp)
			req->status = strtol(sp + 1, NULL, 10);
	}
	return len;
}

/* Map a transport failure to a status; *retry says whether it is transient. */
static enum cm_status map_curl_error(CURLcode rc, int *retry)
{
	*retry = 0;
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return CM_E_NETWORK;
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		*retry = 1;
		return CM_E_NETWORK;
	case CURLE_OPERATION_TIMEDOUT:
		*retry = 1;
		return CM_E_TIMEOUT;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
		return CM_E_TLS;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return CM_E_INVALID;
	case CURLE_OUT_OF_MEMORY:
		return CM_E_NOMEM;
	case CURLE_WRITE_ERROR:
	case CURLE_ABORTED_BY_CALLBACK:
		return CM_E_CANCELLED;
	case CURLE_READ_ERROR:
		return CM_E_IO;
	default:
		*retry = 1;
		return CM_E_NETWORK;
	}
}

static void complete(struct http_engine *eng, struct http_request *req)
{
	pthread_mutex_lock(&eng->lock);
	if (eng->stats.in_flight)
		eng->stats.in_flight--;
	if (req->err.status != CM_OK || req->status >= 400)
		eng->stats.failures++;
	pthread_mutex_unlock(&eng->lock);
	req->done(req);
}

static int method_index(const char *m)
{
	if (!strcmp(m, "HEAD"))
		return HTTP_M_HEAD;
	if (!strcmp(m, "PUT"))
		return HTTP_M_PUT;
	if (!strcmp(m, "POST"))
		return HTTP_M_POST;
	if (!strcmp(m, "DELETE"))
		return HTTP_M_DELETE;
	return HTTP_M_GET;
}

/* Start one attempt of req: prepare, configure an easy handle, add it. */
static void start_attempt(struct http_engine *eng, struct http_request *req)
{
	CURL *easy;
	enum cm_status st;

	curl_slist_free_all(req->headers);
	req->headers = NULL;
	clear_response(req);
	req->upload_pos_ = 0;
	req->sent_any_ = 0;
	req->attempts++;
	cm_err_clear(&req->err);

	st = req->prepare(req);
	if (st != CM_OK) {
		if (req->err.status == CM_OK)
			cm_err_set(&req->err, st, "could not prepare the request");
		complete(eng, req);
		return;
	}
	easy = curl_easy_init();
	if (!easy) {
		cm_err_set(&req->err, CM_E_NOMEM, "curl_easy_init failed");
		complete(eng, req);
		return;
	}
	curl_easy_setopt(easy, CURLOPT_URL, req->url);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, req);
	curl_easy_setopt(easy, CURLOPT_SHARE, eng->share);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	if (req->on_data)
		curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, 256L * 1024);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, eng->opts.connect_timeout_ms);
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, eng->opts.stall_timeout_s);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, header_status_cb);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, req);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	/* S3 keys may hold "./" and "../": send the path exactly as signed */
	curl_easy_setopt(easy, CURLOPT_PATH_AS_IS, 1L);
	if (eng->ca_bundle)
		curl_easy_setopt(easy, CURLOPT_CAINFO, eng->ca_bundle);
	if (eng->opts.insecure) {
		curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (eng->opts.verbose)
		curl_easy_setopt(easy, CURLOPT_VERBOSE, 1L);
	/* 100-continue costs a round trip per upload; S3 answers errors fast anyway */
	http_request_add_header(req, "Expect", "");

	if (strcmp(req->method, "HEAD") == 0) {
		curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
	} else if (strcmp(req->method, "PUT") == 0 || strcmp(req->method, "POST") == 0) {
		if (strcmp(req->method, "PUT") == 0) {
			curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
		} else {
			curl_easy_setopt(easy, CURLOPT_POST, 1L);
			curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		}
		curl_easy_setopt(easy, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(easy, CURLOPT_READDATA, req);
		curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, seek_cb);
		curl_easy_setopt(easy, CURLOPT_SEEKDATA, req);
	} else if (strcmp(req->method, "GET") != 0) {
		curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);
	}
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, req->headers);

	pthread_mutex_lock(&eng->lock);
	eng->stats.requests++;
	eng->stats.by_method[method_index(req->method)]++;
	if (req->attempts > 1)
		eng->stats.retries++;
	pthread_mutex_unlock(&eng->lock);
	if (curl_multi_add_handle(eng->multi, easy) != CURLM_OK) {
		curl_easy_cleanup(easy);
		cm_err_set(&req->err, CM_E_NOMEM, "curl_multi_add_handle failed");
		complete(eng, req);
		return;
	}
	req->easy_ = easy;
	req->active_next_ = eng->active;
	eng->active = req;
}

/* Backoff before attempt number `attempts + 1`: full jitter under an exponential cap. */
static long backoff_ms(struct http_engine *eng, int attempts)
{
	long cap = eng->opts.retry_base_ms;

	for (int i = 1; i < attempts && cap < eng->opts.retry_max_ms; i++)
		cap *= 2;
	if (cap > eng->opts.retry_max_ms)
		cap = eng->opts.retry_max_ms;
	return cap / 2 + (long)(rand_r(&eng->rand_state) % (unsigned)(cap / 2 + 1));
}

static void unlink_active(struct http_engine *eng, struct http_request *req)
{
	for (struct http_request **pp = &eng->active; *pp; pp = &(*pp)->active_next_) {
		if (*pp == req) {
			*pp = req->active_next_;
			break;
		}
	}
	req->easy_ = NULL;
}

/* An attempt finished: decide between retry and completion. */
static void attempt_done(struct http_engine *eng, CURL *easy, CURLcode rc)
{
	struct http_request *req = NULL;
	curl_off_t up = 0, down = 0;
	int retry = 0;
	long code = 0;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&req);
	unlink_active(eng, req);
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &up);
	curl_easy_getinfo(easy, CURLINFO_SIZE_DOWNLOAD_T, &down);
	curl_multi_remove_handle(eng->multi, easy);
	curl_easy_cleanup(easy);

	pthread_mutex_lock(&eng->lock);
	eng->stats.bytes_up += (uint64_t)up;
	eng->stats.bytes_down += (uint64_t)down;
	pthread_mutex_unlock(&eng->lock);

	req->status = code;
	if (rc != CURLE_OK) {
		enum cm_status st = map_curl_error(rc, &retry);
		/* a non-idempotent request is retried only if nothing reached the server */
		if (!req->idempotent && req->sent_any_ && rc != CURLE_COULDNT_CONNECT)
			retry = 0;
		if (rc == CURLE_WRITE_ERROR && req->on_data)
			retry = 0;
		cm_err_set(&req->err, st, "%s", curl_easy_strerror(rc));
		cm_err_detail(&req->err, "%s %s", req->method, "request");
	} else {
		retry = code == 500 || code == 502 || code == 503 || code == 504 || code == 429;
		if (!retry && req->classify)
			retry = req->classify(req);
		if (retry && !req->idempotent)
			retry = code == 503 || code == 429; /* throttled before any work was done */
	}
	if (retry && req->attempts <= eng->opts.max_retries && (!req->rewind || req->rewind(req) == 0)) {
		long delay = backoff_ms(eng, req->attempts);
		log_debug("http: retry %d of %s in %ld ms (%s, HTTP %ld)", req->attempts, req->method,
			  delay, rc != CURLE_OK ? curl_easy_strerror(rc) : "answer", code);
		req->due_ms_ = now_ms() + delay;
		req->next_ = eng->delayed;
		eng->delayed = req;
		return;
	}
	complete(eng, req);
}

static void cancel_request(struct http_engine *eng, struct http_request *req)
{
	cm_err_set(&req->err, CM_E_CANCELLED, "the HTTP engine is shutting down");
	complete(eng, req);
}

static void *engine_main(void *arg)
{
	struct http_engine *eng = arg;
	int running = 0;

	for (;;) {
		struct http_request *batch, *req, **pp;
		int stopping, msgs;
		CURLMsg *msg;
		int64_t now, wait_ms = 1000;

		pthread_mutex_lock(&eng->lock);
		batch = eng->queue_head;
		eng->queue_head = eng->queue_tail = NULL;
		stopping = eng->stopping;
		pthread_mutex_unlock(&eng->lock);

		if (stopping) {
			while (batch) {
				req = batch;
				batch = batch->next_;
				cancel_request(eng, req);
			}
			while (eng->delayed) {
				req = eng->delayed;
				eng->delayed = req->next_;
				cancel_request(eng, req);
			}
			while (eng->active) {
				CURL *easy;
				req = eng->active;
				easy = req->easy_;
				unlink_active(eng, req);
				curl_multi_remove_handle(eng->multi, easy);
				curl_easy_cleanup(easy);
				cancel_request(eng, req);
			}
			break;
		}
		while (batch) {
			req = batch;
			batch = batch->next_;
			start_attempt(eng, req);
		}
		now = now_ms();
		for (pp = &eng->delayed; *pp;) {
			req = *pp;
			if (req->due_ms_ <= now) {
				*pp = req->next_;
				start_attempt(eng, req);
			} else {
				if (req->due_ms_ - now < wait_ms)
					wait_ms = req->due_ms_ - now;
				pp = &req->next_;
			}
		}
		curl_multi_perform(eng->multi, &running);
		while ((msg = curl_multi_info_read(eng->multi, &msgs))) {
			if (msg->msg == CURLMSG_DONE)
				attempt_done(eng, msg->easy_handle, msg->data.result);
		}
		/* retries scheduled just now must wake us on time, not after a full poll */
		now = now_ms();
		for (req = eng->delayed; req; req = req->next_) {
			int64_t left = req->due_ms_ - now;
			if (left < wait_ms)
				wait_ms = left;
		}
		curl_multi_poll(eng->multi, NULL, 0, (int)(wait_ms > 0 ? wait_ms : 1), NULL);
	}
	return NULL;
}

static void global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct http_engine *http_engine_create(const struct http_engine_opts *opts)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct http_engine *eng;

	pthread_once(&once, global_init);
	eng = calloc(1, sizeof(*eng));
	if (!eng)
		return NULL;
	if (opts)
		eng->opts = *opts;
	if (eng->opts.max_in_flight <= 0)
		eng->opts.max_in_flight = 32;
	if (eng->opts.connect_timeout_ms <= 0)
		eng->opts.connect_timeout_ms = 10000;
	if (eng->opts.stall_timeout_s <= 0)
		eng->opts.stall_timeout_s = 30;
	if (eng->opts.max_retries == 0)
		eng->opts.max_retries = 5;
	else if (eng->opts.max_retries < 0)
		eng->opts.max_retries = 0;
	if (eng->opts.retry_base_ms <= 0)
		eng->opts.retry_base_ms = 100;
	if (eng->opts.retry_max_ms <= 0)
		eng->opts.retry_max_ms = 5000;
	eng->ca_bundle = opts && opts->ca_bundle ? strdup(opts->ca_bundle) : NULL;
	eng->opts.ca_bundle = NULL;
	eng->rand_state = (unsigned)time(NULL) ^ (unsigned)getpid();
	pthread_mutex_init(&eng->lock, NULL);
	eng->multi = curl_multi_init();
	eng->share = curl_share_init();
	if (!eng->multi || !eng->share)
		goto out_free;
	curl_share_setopt(eng->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(eng->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	curl_multi_setopt(eng->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)eng->opts.max_in_flight);
	curl_multi_setopt(eng->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)eng->opts.max_in_flight);
	curl_multi_setopt(eng->multi, CURLMOPT_MAXCONNECTS, (long)eng->opts.max_in_flight);
	if (pthread_create(&eng->thread, NULL, engine_main, eng) != 0)
		goto out_free;
	return eng;
out_free:
	if (eng->share)
		curl_share_cleanup(eng->share);
	if (eng->multi)
		curl_multi_cleanup(eng->multi);
	pthread_mutex_destroy(&eng->lock);
	free(eng->ca_bundle);
	free(eng);
	return NULL;
}

void http_engine_destroy(struct http_engine *eng)
{
	if (!eng)
		return;
	pthread_mutex_lock(&eng->lock);
	eng->stopping = 1;
	pthread_mutex_unlock(&eng->lock);
	curl_multi_wakeup(eng->multi);
	pthread_join(eng->thread, NULL);
	curl_multi_cleanup(eng->multi);
	curl_share_cleanup(eng->share);
	pthread_mutex_destroy(&eng->lock);
	free(eng->ca_bundle);
	free(eng);
}

void http_engine_stats(struct http_engine *eng, struct http_stats *out)
{
	pthread_mutex_lock(&eng->lock);
	*out = eng->stats;
	pthread_mutex_unlock(&eng->lock);
}

void http_submit(struct http_engine *eng, struct http_request *req)
{
	int stopping;

	req->eng_ = eng;
	req->attempts = 0;
	req->next_ = NULL;
	pthread_mutex_lock(&eng->lock);
	stopping = eng->stopping;
	if (!stopping) {
		if (eng->queue_tail)
			eng->queue_tail->next_ = req;
		else
			eng->queue_head = req;
		eng->queue_tail = req;
		eng->stats.in_flight++;
	}
	pthread_mutex_unlock(&eng->lock);
	if (stopping) {
		cm_err_set(&req->err, CM_E_CANCELLED, "the HTTP engine is shutting down");
		req->done(req);
		return;
	}
	curl_multi_wakeup(eng->multi);
}

static void perform_done(struct http_request *req)
{
	struct perform_waiter *w = req->waiter_;

	pthread_mutex_lock(&w->lock);
	w->finished = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

enum cm_status http_perform(struct http_engine *eng, struct http_request *req)
{
	struct perform_waiter w = { .finished = 0 };
	http_done_fn saved = req->done;

	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	req->waiter_ = &w;
	req->done = perform_done;
	http_submit(eng, req);
	pthread_mutex_lock(&w.lock);
	while (!w.finished)
		pthread_cond_wait(&w.cond, &w.lock);
	pthread_mutex_unlock(&w.lock);
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
	req->done = saved;
	req->waiter_ = NULL;
	return req->err.status;
}
