/*
 * status.c - names, errno mapping and formatting of cm_status / cm_err.
 */
#include "common/status.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const status_names[CM_E__COUNT] = {
	[CM_OK] = "ok",
	[CM_E_NOT_FOUND] = "not found",
	[CM_E_NO_BUCKET] = "no such bucket",
	[CM_E_ACCESS_DENIED] = "access denied",
	[CM_E_SIGNATURE] = "signature does not match (wrong secret key?)",
	[CM_E_CLOCK_SKEW] = "clock skew (this machine's clock is off)",
	[CM_E_UNSUPPORTED] = "not supported by the server",
	[CM_E_PRECONDITION] = "precondition failed",
	[CM_E_RANGE] = "invalid range",
	[CM_E_INVALID] = "invalid request",
	[CM_E_CONFLICT] = "conflict",
	[CM_E_TRANSIENT] = "server error (retries exhausted)",
	[CM_E_NETWORK] = "endpoint unreachable",
	[CM_E_TLS] = "TLS error",
	[CM_E_TIMEOUT] = "timed out",
	[CM_E_PROTOCOL] = "malformed response",
	[CM_E_CREDENTIALS] = "no usable credentials",
	[CM_E_CONFIG] = "configuration error",
	[CM_E_NOMEM] = "out of memory",
	[CM_E_IO] = "I/O error",
	[CM_E_CANCELLED] = "cancelled",
	[CM_E_TOO_LARGE] = "too large",
};

const char *cm_status_str(enum cm_status st)
{
	if ((unsigned)st >= CM_E__COUNT)
		return "unknown error";
	return status_names[st];
}

int cm_status_errno(enum cm_status st)
{
	switch (st) {
	case CM_OK: return 0;
	case CM_E_NOT_FOUND: return ENOENT;
	case CM_E_NO_BUCKET: return ENOENT;
	case CM_E_ACCESS_DENIED: return EACCES;
	case CM_E_SIGNATURE: return EACCES;
	case CM_E_CLOCK_SKEW: return EACCES;
	case CM_E_CREDENTIALS: return EACCES;
	case CM_E_UNSUPPORTED: return ENOTSUP;
	case CM_E_PRECONDITION: return ESTALE;
	case CM_E_RANGE: return EINVAL;
	case CM_E_INVALID: return EINVAL;
	case CM_E_CONFLICT: return EBUSY;
	case CM_E_TRANSIENT: return EIO;
	case CM_E_NETWORK: return EHOSTUNREACH;
	case CM_E_TLS: return EIO;
	case CM_E_TIMEOUT: return ETIMEDOUT;
	case CM_E_PROTOCOL: return EPROTO;
	case CM_E_CONFIG: return EINVAL;
	case CM_E_NOMEM: return ENOMEM;
	case CM_E_IO: return EIO;
	case CM_E_CANCELLED: return EINTR;
	case CM_E_TOO_LARGE: return EFBIG;
	case CM_E__COUNT: break;
	}
	return EIO;
}

int cm_status_retryable(enum cm_status st)
{
	return st == CM_E_TRANSIENT || st == CM_E_NETWORK || st == CM_E_TIMEOUT;
}

void cm_err_clear(struct cm_err *e)
{
	if (e)
		memset(e, 0, sizeof(*e));
}

enum cm_status cm_err_set(struct cm_err *e, enum cm_status st, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return st;
	e->status = st;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return st;
}

void cm_err_detail(struct cm_err *e, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return;
	va_start(ap, fmt);
	vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
	va_end(ap);
}

char *cm_err_format(const struct cm_err *e, char *buf, unsigned long len)
{
	size_t used = 0;
	int n;

	if (!len)
		return buf;
	buf[0] = '\0';
#define APPEND(...) do { \
	if (used < len) { \
		n = snprintf(buf + used, len - used, __VA_ARGS__); \
		if (n > 0) used += (size_t)n; \
	} \
} while (0)
	APPEND("%s", cm_status_str(e->status));
	if (e->message[0])
		APPEND(": %s", e->message);
	if (e->code[0] || e->http_status || e->request_id[0] || e->detail[0]) {
		const char *sep = "";
		APPEND(" (");
		if (e->code[0]) {
			APPEND("%s", e->code);
			sep = ", ";
		}
		if (e->http_status) {
			APPEND("%sHTTP %d", sep, e->http_status);
			sep = ", ";
		}
		if (e->request_id[0]) {
			APPEND("%srequest id %s", sep, e->request_id);
			sep = ", ";
		}
		if (e->detail[0])
			APPEND("%s%s", sep, e->detail);
		APPEND(")");
	}
#undef APPEND
	return buf;
}
