/*
 * sigv4.c - AWS Signature Version 4 (see sigv4.h for the contract).
 *
 * Signing is four steps: the canonical request (method, canonical path,
 * canonical query, canonical headers, signed header list, payload hash), the
 * string to sign (algorithm, time, scope, SHA-256 of the canonical request),
 * the signing key (an HMAC chain over date, region, service, "aws4_request"),
 * and the signature (HMAC of the string to sign). Query mode moves the
 * algorithm, credential, date, expiry and signed headers into the query and
 * signs that.
 */
#include "s3/sigv4.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

static const char hex_lower[] = "0123456789abcdef";
static const char hex_upper[] = "0123456789ABCDEF";

static void to_hex(const unsigned char *in, size_t len, char *out)
{
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hex_lower[in[i] >> 4];
		out[2 * i + 1] = hex_lower[in[i] & 15];
	}
	out[2 * len] = '\0';
}

void sigv4_sha256_hex(const void *data, size_t len, char hex[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256(data, len, md);
	to_hex(md, sizeof(md), hex);
}

void sigv4_amz_date(time_t t, char out[17])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static int is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

int sigv4_uri_encode(struct buf *b, const char *s, size_t len, int keep_slash)
{
	if (buf_reserve(b, len) < 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (is_unreserved(c) || (keep_slash && c == '/')) {
			buf_putc(b, (char)c);
		} else {
			char esc[3] = { '%', hex_upper[c >> 4], hex_upper[c & 15] };
			buf_append(b, esc, 3);
		}
	}
	return buf_failed(b) ? -1 : 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Decode %XX escapes of s[0..len) into out (malloc'd, NUL-terminated, *out_len
 * set). A '%' not followed by two hex digits is kept literally (it is then
 * encoded as %25), as AWS's reference signers do. Returns 0 or -1 (ENOMEM).
 */
static int uri_decode(const char *s, size_t len, char **out, size_t *out_len)
{
	char *d = malloc(len + 1);
	size_t j = 0;

	if (!d)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			d[j++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else {
			d[j++] = s[i];
		}
	}
	d[j] = '\0';
	*out = d;
	*out_len = j;
	return 0;
}

/* Decode then encode s[0..len): the canonical form of an already-sent component. */
static int reencode(struct buf *b, const char *s, size_t len, int keep_slash)
{
	char *dec;
	size_t dec_len;
	int rc;

	if (uri_decode(s, len, &dec, &dec_len) < 0)
		return -1;
	rc = sigv4_uri_encode(b, dec, dec_len, keep_slash);
	free(dec);
	return rc;
}

/*
 * Remove "." and ".." segments and empty segments from path (RFC 3986 dot
 * removal plus slash collapsing), keeping a trailing slash. Result is malloc'd.
 */
static char *normalize_path(const char *path)
{
	size_t len = strlen(path);
	const char **segs = calloc(len + 1, sizeof(*segs));
	size_t *seg_lens = calloc(len + 1, sizeof(*seg_lens));
	size_t n = 0;
	struct buf out = BUF_INIT;
	int trailing = len > 1 && path[len - 1] == '/';
	const char *p = path;

	if (!segs || !seg_lens)
		goto out_free;
	while (*p) {
		const char *start, *end;
		while (*p == '/')
			p++;
		if (!*p)
			break;
		start = p;
		end = strchr(p, '/');
		if (!end)
			end = p + strlen(p);
		if (end - start == 1 && start[0] == '.') {
			if (!*end)
				trailing = 1;
		} else if (end - start == 2 && start[0] == '.' && start[1] == '.') {
			if (n)
				n--;
			if (!*end)
				trailing = 1;
		} else {
			segs[n] = start;
			seg_lens[n] = (size_t)(end - start);
			n++;
		}
		p = end;
	}
	buf_putc(&out, '/');
	for (size_t i = 0; i < n; i++) {
		buf_append(&out, segs[i], seg_lens[i]);
		if (i + 1 < n || trailing)
			buf_putc(&out, '/');
	}
out_free:
	free(segs);
	free(seg_lens);
	return buf_detach(&out);
}

struct query_param {
	char *name;     /* canonical (encoded) */
	char *value;    /* canonical (encoded) */
};

static int cmp_param(const void *a, const void *b)
{
	const struct query_param *pa = a, *pb = b;
	int c = strcmp(pa->name, pb->name);
	return c ? c : strcmp(pa->value, pb->value);
}

/* Canonical query string of a wire query string: every pair re-encoded, sorted. */
static int canonical_query(struct buf *out, const char *query)
{
	struct query_param *params = NULL;
	size_t n = 0, cap = 0;
	const char *p = query;
	int rc = -1;

	if (!query || !*query)
		return 0;
	while (*p) {
		const char *amp = strchr(p, '&');
		const char *end = amp ? amp : p + strlen(p);
		const char *eq = memchr(p, '=', (size_t)(end - p));
		struct buf name = BUF_INIT, value = BUF_INIT;

		if (end == p) {
			p = amp ? amp + 1 : end;
			continue;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct query_param *np = realloc(params, ncap * sizeof(*np));
			if (!np)
				goto out_free;
			params = np;
			cap = ncap;
		}
		reencode(&name, p, (size_t)((eq ? eq : end) - p), 0);
		if (eq)
			reencode(&value, eq + 1, (size_t)(end - eq - 1), 0);
		params[n].name = buf_detach(&name);
		params[n].value = buf_detach(&value);
		n++;
		if (!params[n - 1].name || !params[n - 1].value)
			goto out_free;
		p = amp ? amp + 1 : end;
	}
	if (n)
		qsort(params, n, sizeof(*params), cmp_param);
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_putc(out, '&');
		buf_puts(out, params[i].name);
		buf_putc(out, '=');
		buf_puts(out, params[i].value);
	}
	rc = buf_failed(out) ? -1 : 0;
out_free:
	for (size_t i = 0; i < n; i++) {
		free(params[i].name);
		free(params[i].value);
	}
	free(params);
	return rc;
}

struct canon_header {
	char *name;             /* lower-case */
	const char *value;      /* borrowed */
	size_t order;           /* position in the input, for a stable sort */
};

static int cmp_header(const void *a, const void *b)
{
	const struct canon_header *ha = a, *hb = b;
	int c = strcmp(ha->name, hb->name);
	if (c)
		return c;
	return ha->order < hb->order ? -1 : ha->order > hb->order;
}

/* Append value trimmed, with every run of spaces, tabs and newlines folded to one space. */
static void append_folded(struct buf *b, const char *v)
{
	int pending_space = 0, started = 0;

	for (; *v; v++) {
		if (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r') {
			pending_space = started;
			continue;
		}
		if (pending_space)
			buf_putc(b, ' ');
		pending_space = 0;
		started = 1;
		buf_putc(b, *v);
	}
}

/*
 * Canonical headers block and signed-header list of headers plus the extra
 * ones (x-amz-date, x-amz-security-token) the signer adds.
 */
static int canonical_headers(const struct sigv4_header *headers, size_t n_headers,
			     const struct sigv4_header *extra, size_t n_extra,
			     struct buf *canon, struct buf *signed_list)
{
	size_t n = n_headers + n_extra;
	struct canon_header *h = calloc(n ? n : 1, sizeof(*h));
	int rc = -1;

	if (!h)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const struct sigv4_header *src = i < n_headers ? &headers[i] : &extra[i - n_headers];
		h[i].name = strdup(src->name);
		if (!h[i].name)
			goto out_free;
		for (char *c = h[i].name; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		h[i].value = src->value;
		h[i].order = i;
	}
	qsort(h, n, sizeof(*h), cmp_header);
	for (size_t i = 0; i < n; i++) {
		if (i && strcmp(h[i].name, h[i - 1].name) == 0) {
			buf_putc(canon, ',');
		} else {
			if (i) {
				buf_putc(canon, '\n');
				buf_putc(signed_list, ';');
			}
			buf_puts(canon, h[i].name);
			buf_putc(canon, ':');
			buf_puts(signed_list, h[i].name);
		}
		append_folded(canon, h[i].value);
	}
	buf_putc(canon, '\n');
	rc = buf_failed(canon) || buf_failed(signed_list) ? -1 : 0;
out_free:
	for (size_t i = 0; i < n; i++)
		free(h[i].name);
	free(h);
	return rc;
}

/* The signing key for date (YYYYMMDD), region and service into key[32]. */
static int derive_key(const struct sigv4_params *p, const char *date, unsigned char key[32])
{
	size_t slen = strlen(p->secret_access_key);
	char *k0 = malloc(slen + 5);
	unsigned int len = 32;
	int ok;

	if (!k0)
		return -1;
	memcpy(k0, "AWS4", 4);
	memcpy(k0 + 4, p->secret_access_key, slen + 1);
	ok = HMAC(EVP_sha256(), k0, (int)(slen + 4), (const unsigned char *)date, strlen(date), key, &len) &&
	     HMAC(EVP_sha256(), key, 32, (const unsigned char *)p->region, strlen(p->region), key, &len) &&
	     HMAC(EVP_sha256(), key, 32, (const unsigned char *)p->service, strlen(p->service), key, &len) &&
	     HMAC(EVP_sha256(), key, 32, (const unsigned char *)"aws4_request", 12, key, &len);
	OPENSSL_cleanse(k0, slen + 4);
	free(k0);
	return ok ? 0 : -1;
}

/*
 * The shared core: canonical request from (method, path, query, headers), then
 * string to sign and signature into out. query is the final canonical-ready
 * wire query; extra headers are added to the signed set.
 */
static int sign_core(const struct sigv4_params *p, const struct sigv4_request *req,
		     const char *query, const struct sigv4_header *extra, size_t n_extra,
		     struct buf *signed_list, struct sigv4_out *out)
{
	struct buf creq = BUF_INIT, canon = BUF_INIT, sts = BUF_INIT;
	char date[9], creq_hash[65];
	unsigned char key[32], sig[32];
	unsigned int sig_len = sizeof(sig);
	int rc = -1;

	memcpy(date, out->amz_date, 8);
	date[8] = '\0';

	buf_puts(&creq, req->method);
	buf_putc(&creq, '\n');
	if (p->normalize_path) {
		char *np = normalize_path(req->path);
		if (!np)
			goto out_release;
		reencode(&creq, np, strlen(np), 1);
		free(np);
	} else {
		reencode(&creq, req->path, strlen(req->path), 1);
	}
	buf_putc(&creq, '\n');
	if (canonical_query(&creq, query) < 0)
		goto out_release;
	buf_putc(&creq, '\n');
	if (canonical_headers(req->headers, req->n_headers, extra, n_extra, &canon, signed_list) < 0)
		goto out_release;
	buf_append(&creq, canon.data, canon.len);
	buf_putc(&creq, '\n');
	buf_append(&creq, signed_list->data, signed_list->len);
	buf_putc(&creq, '\n');
	buf_puts(&creq, req->payload_hash);
	if (buf_failed(&creq))
		goto out_release;

	sigv4_sha256_hex(creq.data, creq.len, creq_hash);
	buf_printf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", out->amz_date, date,
		   p->region, p->service, creq_hash);
	if (buf_failed(&sts))
		goto out_release;
	if (derive_key(p, date, key) < 0)
		goto out_release;
	if (!HMAC(EVP_sha256(), key, sizeof(key), (const unsigned char *)sts.data, sts.len, sig, &sig_len))
		goto out_cleanse;
	to_hex(sig, sizeof(sig), out->signature);
	out->canonical_request = buf_detach(&creq);
	out->string_to_sign = buf_detach(&sts);
	rc = out->canonical_request && out->string_to_sign ? 0 : -1;
out_cleanse:
	OPENSSL_cleanse(key, sizeof(key));
out_release:
	buf_release(&creq);
	buf_release(&canon);
	buf_release(&sts);
	return rc;
}

/* Whether the caller already gave header name (case-insensitive). */
static int has_header(const struct sigv4_request *req, const char *name)
{
	for (size_t i = 0; i < req->n_headers; i++)
		if (strcasecmp(req->headers[i].name, name) == 0)
			return 1;
	return 0;
}

int sigv4_sign_headers(const struct sigv4_params *p, const struct sigv4_request *req,
		       struct sigv4_out *out)
{
	struct sigv4_header extra[2];
	size_t n_extra = 0;
	struct buf signed_list = BUF_INIT, auth = BUF_INIT;
	char date[9];
	int rc = -1;

	memset(out, 0, sizeof(*out));
	sigv4_amz_date(p->when, out->amz_date);
	if (!has_header(req, "x-amz-date"))
		extra[n_extra++] = (struct sigv4_header){ "x-amz-date", out->amz_date };
	if (p->session_token && !p->omit_session_token && !has_header(req, "x-amz-security-token"))
		extra[n_extra++] = (struct sigv4_header){ "x-amz-security-token", p->session_token };
	if (sign_core(p, req, req->query, extra, n_extra, &signed_list, out) < 0)
		goto out_release;
	memcpy(date, out->amz_date, 8);
	date[8] = '\0';
	buf_printf(&auth, "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, Signature=%s",
		   p->access_key_id, date, p->region, p->service, signed_list.data, out->signature);
	out->authorization = buf_detach(&auth);
	rc = out->authorization ? 0 : -1;
out_release:
	buf_release(&signed_list);
	buf_release(&auth);
	if (rc < 0)
		sigv4_out_release(out);
	return rc;
}

/* Build the X-Amz-SignedHeaders value (lower-case names, sorted, unique). */
static int signed_header_names(const struct sigv4_request *req, struct buf *out)
{
	struct buf canon = BUF_INIT;
	int rc = canonical_headers(req->headers, req->n_headers, NULL, 0, &canon, out);
	buf_release(&canon);
	return rc;
}

int sigv4_presign(const struct sigv4_params *p, const struct sigv4_request *req, long expires,
		  struct sigv4_out *out)
{
	struct buf names = BUF_INIT, q = BUF_INIT, signed_list = BUF_INIT, cred = BUF_INIT;
	char date[9];
	int rc = -1;

	memset(out, 0, sizeof(*out));
	sigv4_amz_date(p->when, out->amz_date);
	memcpy(date, out->amz_date, 8);
	date[8] = '\0';
	if (signed_header_names(req, &names) < 0)
		goto out_release;
	buf_printf(&cred, "%s/%s/%s/%s/aws4_request", p->access_key_id, date, p->region, p->service);
	if (req->query && *req->query) {
		buf_puts(&q, req->query);
		buf_putc(&q, '&');
	}
	buf_puts(&q, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=");
	sigv4_uri_encode(&q, cred.data, cred.len, 0);
	buf_printf(&q, "&X-Amz-Date=%s&X-Amz-Expires=%ld", out->amz_date, expires);
	if (p->session_token && !p->omit_session_token) {
		buf_puts(&q, "&X-Amz-Security-Token=");
		sigv4_uri_encode(&q, p->session_token, strlen(p->session_token), 0);
	}
	buf_puts(&q, "&X-Amz-SignedHeaders=");
	sigv4_uri_encode(&q, names.data, names.len, 0);
	if (buf_failed(&q) || buf_failed(&cred))
		goto out_release;
	if (sign_core(p, req, q.data, NULL, 0, &signed_list, out) < 0)
		goto out_release;
	if (p->session_token && p->omit_session_token) {
		buf_puts(&q, "&X-Amz-Security-Token=");
		sigv4_uri_encode(&q, p->session_token, strlen(p->session_token), 0);
	}
	buf_printf(&q, "&X-Amz-Signature=%s", out->signature);
	out->query = buf_detach(&q);
	rc = out->query ? 0 : -1;
out_release:
	buf_release(&names);
	buf_release(&q);
	buf_release(&signed_list);
	buf_release(&cred);
	if (rc < 0)
		sigv4_out_release(out);
	return rc;
}

void sigv4_out_release(struct sigv4_out *out)
{
	free(out->canonical_request);
	free(out->string_to_sign);
	free(out->authorization);
	free(out->query);
	memset(out, 0, sizeof(*out));
}
