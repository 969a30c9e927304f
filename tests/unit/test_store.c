/*
 * test_store.c - unit tests of the store stack below FUSE: the in-memory store
 * (the stand-in for S3), the fault layer, and transfer.c (memory budget,
 * streaming uploader, parallel downloader) over both.
 *
 * Data is deterministic (byte i = (i*31 + i/7) & 0xff) and compared with
 * memcmp. Part sizes are small (4 KiB..64 KiB, with the mem store's minimum
 * part size lowered to match) so the suite stays fast under the sanitizers.
 * Concurrency is checked by counting, not timing: a test layer built on
 * store_pass_ops records how many mpu_part calls are in flight at once.
 * Anything random goes through the fault layer's seeded generator, and the
 * truncation test runs one GET at a time so its draws are reproducible.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/log.h"
#include "common/util.h"
#include "common/workq.h"
#include "store/store.h"
#include "store/store_fault.h"
#include "store/store_mem.h"
#include "store/transfer.h"
#include "tharness.h"

/* ---- helpers ---- */

static unsigned char pattern_byte(uint64_t i)
{
	return (unsigned char)((i * 31 + i / 7) & 0xff);
}

/* n bytes of the pattern starting at absolute position 0 (malloc'd). */
static unsigned char *pattern(size_t n)
{
	unsigned char *p = xmalloc(n ? n : 1);

	for (size_t i = 0; i < n; i++)
		p[i] = pattern_byte(i);
	return p;
}

static void md5_hex(const void *data, size_t len, char out[33])
{
	unsigned char md[16];
	unsigned int n = 0;

	EVP_Digest(data, len, md, &n, EVP_md5(), NULL);
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* A sink that appends to a growing buffer; stop_at_call > 0 makes that call return -1. */
struct collect {
	unsigned char *data;
	size_t len, cap;
	int calls;
	int stop_at_call;
};

static int collect_sink(void *ctx, const char *data, size_t len)
{
	struct collect *c = ctx;

	c->calls++;
	if (c->stop_at_call && c->calls == c->stop_at_call)
		return -1;
	if (c->len + len > c->cap) {
		c->cap = (c->len + len) * 2 + 64;
		c->data = xrealloc(c->data, c->cap);
	}
	memcpy(c->data + c->len, data, len);
	c->len += len;
	return 0;
}

/* Whether what c received is a prefix of data (memcmp is not for NULL, even for 0 bytes). */
static int is_prefix(const struct collect *c, const unsigned char *data)
{
	return c->len == 0 || memcmp(c->data, data, c->len) == 0;
}

static void collect_release(struct collect *c)
{
	free(c->data);
	memset(c, 0, sizeof(*c));
}

static enum cm_status put_mem(struct store *s, const char *key, const void *data, size_t len,
			      const struct s3_put_opts *opts)
{
	struct s3_body body = { .mem = data, .fd = -1, .len = len };
	struct cm_err err;
	char *etag = NULL;
	enum cm_status st;

	cm_err_clear(&err);
	st = store_put(s, key, &body, opts, &etag, &err);
	free(etag);
	return st;
}

/* GET [offset, offset+length) into c (fresh). */
static enum cm_status get_range(struct store *s, const char *key, uint64_t offset, uint64_t length,
				struct collect *c, uint64_t *got, struct cm_err *err)
{
	memset(c, 0, sizeof(*c));
	cm_err_clear(err);
	return store_get(s, key, offset, length, collect_sink, c, NULL, got, err);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ---- in-memory store ---- */

TEST(mem_put_head_get)
{
	struct store *s = store_mem_create();
	size_t n = 200000;
	unsigned char *data = pattern(n);
	struct s3_meta meta = { 0 };
	struct s3_put_opts opts = { .content_type = "text/x-test", .meta = &meta };
	struct s3_body body = { .mem = data, .fd = -1, .len = n };
	struct s3_object_head head;
	struct collect c;
	struct cm_err err;
	char *etag = NULL, hex[33];
	uint64_t got = 0;

	s3_meta_set(&meta, "mode", "0644");
	s3_meta_set(&meta, "uid", "1000");
	cm_err_clear(&err);
	CHECK_INT(store_put(s, "a/b", &body, &opts, &etag, &err), CM_OK);
	md5_hex(data, n, hex);
	CHECK_STR(etag, hex);
	free(etag);

	CHECK_INT(store_head(s, "a/b", &head, &err), CM_OK);
	CHECK_INT(head.size, n);
	CHECK_STR(head.etag, hex);
	CHECK_STR(head.content_type, "text/x-test");
	CHECK_INT(head.meta.n, 2);
	CHECK_STR(s3_meta_get(&head.meta, "mode"), "0644");
	CHECK_STR(s3_meta_get(&head.meta, "uid"), "1000");
	CHECK(head.last_modified.tv_sec > 0);
	s3_object_head_release(&head);

	/* whole object, delivered in several sink calls */
	CHECK_INT(get_range(s, "a/b", 0, UINT64_MAX, &c, &got, &err), CM_OK);
	CHECK_INT(c.len, n);
	CHECK_INT(got, n);
	CHECK(c.calls > 1);
	if (c.len == n)
		CHECK_MEM(c.data, data, n);
	collect_release(&c);

	/* a range in the middle */
	CHECK_INT(get_range(s, "a/b", 1000, 5000, &c, &got, &err), CM_OK);
	CHECK_INT(c.len, 5000);
	CHECK_INT(got, 5000);
	if (c.len == 5000)
		CHECK_MEM(c.data, data + 1000, 5000);
	collect_release(&c);

	/* a range running past the end is cut at the end */
	CHECK_INT(get_range(s, "a/b", n - 10, 100, &c, &got, &err), CM_OK);
	CHECK_INT(c.len, 10);
	if (c.len == 10)
		CHECK_MEM(c.data, data + n - 10, 10);
	collect_release(&c);

	/* the last byte */
	CHECK_INT(get_range(s, "a/b", n - 1, 1, &c, &got, &err), CM_OK);
	CHECK_INT(c.len, 1);
	CHECK(c.len == 1 && c.data[0] == data[n - 1]);
	collect_release(&c);

	/* a range starting at or past the end */
	CHECK_INT(get_range(s, "a/b", n, 10, &c, &got, &err), CM_E_RANGE);
	CHECK_INT(err.status, CM_E_RANGE);
	CHECK_INT(c.len, 0);
	CHECK_INT(got, 0);
	collect_release(&c);
	CHECK_INT(get_range(s, "a/b", n + 12345, UINT64_MAX, &c, &got, &err), CM_E_RANGE);
	collect_release(&c);

	/* the head that comes with a GET */
	memset(&c, 0, sizeof(c));
	CHECK_INT(store_get(s, "a/b", 0, 10, collect_sink, &c, &head, NULL, &err), CM_OK);
	CHECK_INT(head.size, n);
	CHECK_STR(head.content_type, "text/x-test");
	CHECK_STR(s3_meta_get(&head.meta, "mode"), "0644");
	s3_object_head_release(&head);
	collect_release(&c);

	/* absent keys */
	CHECK_INT(store_head(s, "a/c", &head, &err), CM_E_NOT_FOUND);
	CHECK_INT(err.http_status, 404);
	CHECK_STR(err.code, "NoSuchKey");
	CHECK(head.etag == NULL && head.size == 0);
	CHECK_INT(get_range(s, "a", 0, UINT64_MAX, &c, &got, &err), CM_E_NOT_FOUND);
	CHECK_INT(c.len, 0);
	collect_release(&c);

	/* an empty object: GET from 0 is fine and delivers nothing */
	CHECK_INT(put_mem(s, "empty", "", 0, NULL), CM_OK);
	CHECK_INT(store_head(s, "empty", &head, &err), CM_OK);
	CHECK_INT(head.size, 0);
	md5_hex("", 0, hex);
	CHECK_STR(head.etag, hex);
	CHECK_STR(head.content_type, "application/octet-stream");
	CHECK_INT(head.meta.n, 0);
	s3_object_head_release(&head);
	CHECK_INT(get_range(s, "empty", 0, UINT64_MAX, &c, &got, &err), CM_OK);
	CHECK_INT(c.len, 0);
	collect_release(&c);

	/* overwrite replaces data and metadata; If-None-Match refuses an existing key */
	CHECK_INT(put_mem(s, "a/b", "xyz", 3, NULL), CM_OK);
	CHECK_INT(store_head(s, "a/b", &head, &err), CM_OK);
	CHECK_INT(head.size, 3);
	CHECK_INT(head.meta.n, 0);
	CHECK_STR(head.content_type, "application/octet-stream");
	s3_object_head_release(&head);
	{
		struct s3_put_opts excl = { .if_none_match = "*" };
		CHECK_INT(put_mem(s, "a/b", "q", 1, &excl), CM_E_PRECONDITION);
		CHECK_INT(put_mem(s, "new", "q", 1, &excl), CM_OK);
	}
	CHECK_INT(store_mem_count(s), 3);
	CHECK_INT(store_mem_bytes(s), 4);

	/* the direct helpers */
	{
		size_t len = 0;
		char *p = store_mem_get_bytes(s, "a/b", &len);
		CHECK(p && len == 3 && memcmp(p, "xyz", 3) == 0);
		free(p);
		CHECK(store_mem_get_bytes(s, "nope", &len) == NULL);
		CHECK_INT(store_mem_put_bytes(s, "direct", "hello", 5), 0);
		p = store_mem_get_bytes(s, "direct", &len);
		CHECK(p && len == 5 && memcmp(p, "hello", 5) == 0);
		free(p);
	}

	s3_meta_release(&meta);
	free(data);
	store_destroy(s);
}

TEST(mem_copy)
{
	struct store *s = store_mem_create();
	struct s3_meta meta = { 0 }, meta2 = { 0 };
	struct s3_put_opts opts = { .content_type = "image/png", .meta = &meta };
	struct s3_put_opts repl = { .content_type = "text/plain", .meta = &meta2 };
	struct s3_object_head head, src_head;
	struct cm_err err;
	unsigned char *data = pattern(3000);
	char *etag = NULL;
	size_t len = 0;
	void *p;

	cm_err_clear(&err);
	s3_meta_set(&meta, "mode", "0600");
	s3_meta_set(&meta2, "mode", "0755");
	s3_meta_set(&meta2, "extra", "yes");
	REQUIRE(put_mem(s, "src", data, 3000, &opts) == CM_OK);
	REQUIRE(store_head(s, "src", &src_head, &err) == CM_OK);

	/* COPY: data, ETag, content type and metadata all come along */
	CHECK_INT(store_copy(s, "dst", "src", NULL, &etag, &err), CM_OK);
	CHECK_STR(etag, src_head.etag);
	free(etag);
	CHECK_INT(store_head(s, "dst", &head, &err), CM_OK);
	CHECK_INT(head.size, 3000);
	CHECK_STR(head.content_type, "image/png");
	CHECK_INT(head.meta.n, 1);
	CHECK_STR(s3_meta_get(&head.meta, "mode"), "0600");
	s3_object_head_release(&head);
	p = store_mem_get_bytes(s, "dst", &len);
	CHECK(p && len == 3000 && memcmp(p, data, 3000) == 0);
	free(p);

	/* REPLACE: same data, new content type and metadata */
	CHECK_INT(store_copy(s, "dst2", "src", &repl, NULL, &err), CM_OK);
	CHECK_INT(store_head(s, "dst2", &head, &err), CM_OK);
	CHECK_STR(head.content_type, "text/plain");
	CHECK_INT(head.meta.n, 2);
	CHECK_STR(s3_meta_get(&head.meta, "mode"), "0755");
	CHECK_STR(s3_meta_get(&head.meta, "extra"), "yes");
	s3_object_head_release(&head);
	p = store_mem_get_bytes(s, "dst2", &len);
	CHECK(p && len == 3000 && memcmp(p, data, 3000) == 0);
	free(p);

	/* in place with REPLACE (how chmod updates metadata) */
	CHECK_INT(store_copy(s, "src", "src", &repl, NULL, &err), CM_OK);
	CHECK_INT(store_head(s, "src", &head, &err), CM_OK);
	CHECK_INT(head.size, 3000);
	CHECK_STR(s3_meta_get(&head.meta, "mode"), "0755");
	s3_object_head_release(&head);
	p = store_mem_get_bytes(s, "src", &len);
	CHECK(p && len == 3000 && memcmp(p, data, 3000) == 0);
	free(p);

	/* source missing */
	etag = (char *)"junk";
	CHECK_INT(store_copy(s, "x", "missing", NULL, &etag, &err), CM_E_NOT_FOUND);
	CHECK(etag == NULL);
	CHECK_INT(store_mem_count(s), 3);

	s3_object_head_release(&src_head);
	s3_meta_release(&meta);
	s3_meta_release(&meta2);
	free(data);
	store_destroy(s);
}

TEST(mem_delete)
{
	struct store *s = store_mem_create();
	const char *keys[] = { "k1", "k3", "absent", "k5" };
	struct s3_delete_result res;
	struct s3_object_head head;
	struct cm_err err;
	char name[16];

	cm_err_clear(&err);
	for (int i = 0; i < 6; i++) {
		snprintf(name, sizeof(name), "k%d", i);
		REQUIRE(put_mem(s, name, name, strlen(name), NULL) == CM_OK);
	}
	CHECK_INT(store_mem_count(s), 6);
	CHECK_INT(store_del(s, "k0", &err), CM_OK);
	CHECK_INT(store_head(s, "k0", &head, &err), CM_E_NOT_FOUND);
	CHECK_INT(store_del(s, "k0", &err), CM_OK);    /* missing: still fine */
	CHECK_INT(store_mem_count(s), 5);

	CHECK_INT(store_del_many(s, keys, 4, &res, &err), CM_OK);
	CHECK_INT(res.n_deleted, 4);
	CHECK_INT(res.n_failures, 0);
	s3_delete_result_release(&res);
	CHECK_INT(store_mem_count(s), 2);
	CHECK_INT(store_head(s, "k2", &head, &err), CM_OK);
	s3_object_head_release(&head);
	CHECK_INT(store_head(s, "k4", &head, &err), CM_OK);
	s3_object_head_release(&head);
	CHECK_INT(store_head(s, "k3", &head, &err), CM_E_NOT_FOUND);
	store_destroy(s);
}

/* ---- listing ---- */

/*
 * Walk every page of a listing and flatten it into entries "O:key" / "P:prefix"
 * in listing order (each page's objects and prefixes merged by key). Checks the
 * page invariants as it goes. Returns the number of pages.
 */
static int list_walk(struct store *s, const char *prefix, const char *delimiter,
		     const char *start_after, int max_keys, char ***entries, size_t *n_entries)
{
	char *token = NULL;
	int pages = 0;

	*entries = NULL;
	*n_entries = 0;
	for (;;) {
		struct s3_list_page page;
		struct cm_err err;
		size_t io = 0, ip = 0;
		enum cm_status st;

		cm_err_clear(&err);
		st = store_list(s, prefix, delimiter, token, token ? NULL : start_after, max_keys,
				&page, &err);
		free(token);
		token = NULL;
		CHECK_INT(st, CM_OK);
		if (st != CM_OK)
			break;
		pages++;
		CHECK_INT(page.key_count, page.n_objects + page.n_prefixes);
		CHECK(page.key_count <= (max_keys > 0 && max_keys <= 1000 ? max_keys : 1000));
		while (io < page.n_objects || ip < page.n_prefixes) {
			int take_obj = ip == page.n_prefixes ||
				       (io < page.n_objects &&
					strcmp(page.objects[io].key, page.prefixes[ip]) < 0);
			char *e = take_obj ? xasprintf("O:%s", page.objects[io++].key)
					   : xasprintf("P:%s", page.prefixes[ip++]);
			*entries = xrealloc(*entries, (*n_entries + 1) * sizeof(char *));
			(*entries)[(*n_entries)++] = e;
		}
		for (size_t i = 0; i < page.n_objects; i++)
			CHECK_STR(page.objects[i].storage_class, "STANDARD");
		if (page.is_truncated) {
			CHECK(page.next_token != NULL);
			CHECK(page.key_count > 0);
			token = page.next_token ? xstrdup(page.next_token) : NULL;
		} else {
			CHECK(page.next_token == NULL);
		}
		s3_list_page_release(&page);
		if (!token || pages > 100000)
			break;
	}
	free(token);
	return pages;
}

/*
 * What a listing must return, computed the slow way from the sorted keys:
 * keys under prefix and after start_after, each either itself or folded into
 * the common prefix ending at the first delimiter after prefix.
 */
static void list_expect(char **sorted, size_t n, const char *prefix, const char *delimiter,
			const char *start_after, char ***entries, size_t *n_entries)
{
	size_t plen = prefix ? strlen(prefix) : 0;
	size_t dlen = delimiter ? strlen(delimiter) : 0;

	*entries = NULL;
	*n_entries = 0;
	for (size_t i = 0; i < n; i++) {
		const char *key = sorted[i];
		const char *d;
		char *e;

		if (strncmp(key, prefix ? prefix : "", plen) != 0)
			continue;
		if (start_after && strcmp(key, start_after) <= 0)
			continue;
		d = dlen ? strstr(key + plen, delimiter) : NULL;
		if (d)
			e = xasprintf("P:%.*s", (int)(d - key + (long)dlen), key);
		else
			e = xasprintf("O:%s", key);
		if (*n_entries && strcmp((*entries)[*n_entries - 1], e) == 0) {
			free(e);
			continue;
		}
		*entries = xrealloc(*entries, (*n_entries + 1) * sizeof(char *));
		(*entries)[(*n_entries)++] = e;
	}
}

static void free_entries(char **e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i]);
	free(e);
}

/* Compare a walked listing with the expected one; returns the number of pages. */
static int check_listing(struct store *s, char **sorted, size_t n, const char *prefix,
			 const char *delimiter, const char *start_after, int max_keys)
{
	char **got, **want;
	size_t n_got, n_want;
	int pages = list_walk(s, prefix, delimiter, start_after, max_keys, &got, &n_got);

	list_expect(sorted, n, prefix, delimiter, start_after, &want, &n_want);
	if (n_got != n_want) {
		TH_FAIL_("listing prefix=%s delimiter=%s start_after=%s max_keys=%d: %zu entries, want %zu",
			 prefix ? prefix : "(null)", delimiter ? delimiter : "(null)",
			 start_after ? start_after : "(null)", max_keys, n_got, n_want);
	} else {
		for (size_t i = 0; i < n_got; i++) {
			if (strcmp(got[i], want[i]) != 0) {
				TH_FAIL_("listing prefix=%s max_keys=%d: entry %zu is %s, want %s",
					 prefix ? prefix : "(null)", max_keys, i, got[i], want[i]);
				break;
			}
		}
	}
	/* a page of max_keys entries each, except the last */
	if (max_keys > 0 && n_want)
		CHECK_INT(pages, (n_want + (size_t)max_keys - 1) / (size_t)max_keys);
	free_entries(got, n_got);
	free_entries(want, n_want);
	return pages;
}

TEST(mem_list_basic)
{
	struct store *s = store_mem_create();
	const char *keys[] = { "a.txt", "b/1", "b/2", "b/c/3", "c", "d/", "d/x", "e/f/g", "ea" };
	struct s3_list_page page;
	struct cm_err err;

	cm_err_clear(&err);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		REQUIRE(put_mem(s, keys[i], "v", 1, NULL) == CM_OK);

	/* top level with "/": objects and common prefixes, deduplicated, in order */
	CHECK_INT(store_list(s, NULL, "/", NULL, NULL, 0, &page, &err), CM_OK);
	CHECK_INT(page.n_objects, 3);
	CHECK_INT(page.n_prefixes, 3);
	if (page.n_objects == 3) {
		CHECK_STR(page.objects[0].key, "a.txt");
		CHECK_STR(page.objects[1].key, "c");
		CHECK_STR(page.objects[2].key, "ea");
		CHECK_INT(page.objects[0].size, 1);
		CHECK(page.objects[0].etag && strlen(page.objects[0].etag) == 32);
	}
	if (page.n_prefixes == 3) {
		CHECK_STR(page.prefixes[0], "b/");
		CHECK_STR(page.prefixes[1], "d/");
		CHECK_STR(page.prefixes[2], "e/");
	}
	CHECK_INT(page.key_count, 6);
	CHECK(!page.is_truncated);
	s3_list_page_release(&page);

	/* under a prefix: a directory marker is an object of its own */
	CHECK_INT(store_list(s, "d/", "/", NULL, NULL, 0, &page, &err), CM_OK);
	CHECK_INT(page.n_objects, 2);
	CHECK_INT(page.n_prefixes, 0);
	if (page.n_objects == 2) {
		CHECK_STR(page.objects[0].key, "d/");
		CHECK_STR(page.objects[1].key, "d/x");
	}
	s3_list_page_release(&page);

	CHECK_INT(store_list(s, "b/", "/", NULL, NULL, 0, &page, &err), CM_OK);
	CHECK_INT(page.n_objects, 2);
	CHECK_INT(page.n_prefixes, 1);
	if (page.n_prefixes == 1)
		CHECK_STR(page.prefixes[0], "b/c/");
	s3_list_page_release(&page);

	/* a prefix that is not a directory */
	CHECK_INT(store_list(s, "e", "/", NULL, NULL, 0, &page, &err), CM_OK);
	CHECK_INT(page.n_objects, 1);
	CHECK_INT(page.n_prefixes, 1);
	if (page.n_objects == 1 && page.n_prefixes == 1) {
		CHECK_STR(page.objects[0].key, "ea");
		CHECK_STR(page.prefixes[0], "e/");
	}
	s3_list_page_release(&page);

	/* nothing under a prefix */
	CHECK_INT(store_list(s, "zz/", "/", NULL, NULL, 0, &page, &err), CM_OK);
	CHECK_INT(page.n_objects + page.n_prefixes, 0);
	CHECK_INT(page.key_count, 0);
	CHECK(!page.is_truncated);
	s3_list_page_release(&page);

	/* no delimiter: every key, flat */
	CHECK_INT(store_list(s, NULL, NULL, NULL, NULL, 0, &page, &err), CM_OK);
	CHECK_INT(page.n_objects, 9);
	CHECK_INT(page.n_prefixes, 0);
	s3_list_page_release(&page);

	/* start_after a key, with and without a delimiter */
	CHECK_INT(store_list(s, NULL, NULL, NULL, "b/2", 0, &page, &err), CM_OK);
	CHECK_INT(page.n_objects, 6);
	if (page.n_objects == 6)
		CHECK_STR(page.objects[0].key, "b/c/3");
	s3_list_page_release(&page);
	CHECK_INT(store_list(s, NULL, "/", NULL, "c", 0, &page, &err), CM_OK);
	CHECK_INT(page.n_objects, 1);
	CHECK_INT(page.n_prefixes, 2);
	if (page.n_prefixes == 2) {
		CHECK_STR(page.prefixes[0], "d/");
		CHECK_STR(page.prefixes[1], "e/");
	}
	s3_list_page_release(&page);
	/* start_after a key that does not exist */
	CHECK_INT(store_list(s, NULL, NULL, NULL, "b/1a", 0, &page, &err), CM_OK);
	CHECK_INT(page.n_objects, 7);
	if (page.n_objects)
		CHECK_STR(page.objects[0].key, "b/2");
	s3_list_page_release(&page);

	/* max_keys counts a common prefix as one entry */
	CHECK_INT(store_list(s, NULL, "/", NULL, NULL, 2, &page, &err), CM_OK);
	CHECK_INT(page.key_count, 2);
	CHECK(page.is_truncated);
	CHECK_STR(page.next_token, "b/");
	s3_list_page_release(&page);
	CHECK_INT(store_list(s, NULL, "/", "b/", NULL, 2, &page, &err), CM_OK);
	CHECK_INT(page.n_objects, 1);
	CHECK_INT(page.n_prefixes, 1);
	if (page.n_objects == 1 && page.n_prefixes == 1) {
		CHECK_STR(page.objects[0].key, "c");
		CHECK_STR(page.prefixes[0], "d/");
	}
	s3_list_page_release(&page);
	store_destroy(s);
}

/*
 * 2,500 keys on three levels: "tNNNN" files at the top, "dA/fNNNN" in seven
 * directories, "dA/sB/fNNNN" in five subdirectories of each, plus directory
 * markers "dA/" and "dA/sB/" for a few. Every listing is walked in pages of
 * several sizes and compared with the expected sorted list.
 */
TEST(mem_list_pagination)
{
	struct store *s = store_mem_create();
	char **keys = xcalloc(2600, sizeof(char *));
	size_t n = 0;
	int pages;

	for (int i = 0; i < 2500; i++) {
		int a = i % 7, b = (i / 7) % 5;
		if (i % 10 == 0)
			keys[n++] = xasprintf("t%04d", i);
		else if (i % 3 == 0)
			keys[n++] = xasprintf("d%d/f%04d", a, i);
		else
			keys[n++] = xasprintf("d%d/s%d/f%04d", a, b, i);
	}
	keys[n++] = xstrdup("d2/");
	keys[n++] = xstrdup("d5/");
	keys[n++] = xstrdup("d5/s1/");
	for (size_t i = 0; i < n; i++)
		REQUIRE(store_mem_put_bytes(s, keys[i], keys[i], strlen(keys[i])) == 0);
	qsort(keys, n, sizeof(char *), cmp_str);
	CHECK_INT(store_mem_count(s), n);

	/* flat */
	pages = check_listing(s, keys, n, NULL, NULL, NULL, 7);
	CHECK_INT(pages, (n + 6) / 7);
	check_listing(s, keys, n, NULL, NULL, NULL, 1000);
	check_listing(s, keys, n, NULL, NULL, NULL, 0);
	check_listing(s, keys, n, "d3/", NULL, NULL, 7);
	/* with a delimiter: pages that end on a common prefix continue after it */
	for (int mk = 1; mk <= 8; mk++)
		check_listing(s, keys, n, NULL, "/", NULL, mk);
	check_listing(s, keys, n, NULL, "/", NULL, 1000);
	check_listing(s, keys, n, "d3/", "/", NULL, 7);
	check_listing(s, keys, n, "d3/", "/", NULL, 1000);
	check_listing(s, keys, n, "d3/", "/", NULL, 1);
	check_listing(s, keys, n, "d3/s", "/", NULL, 2);
	check_listing(s, keys, n, "d", "/", NULL, 3);
	check_listing(s, keys, n, "d3/s4/", "/", NULL, 7);
	/* directory markers at a page boundary */
	for (int mk = 1; mk <= 4; mk++) {
		check_listing(s, keys, n, "d2/", "/", NULL, mk);
		check_listing(s, keys, n, "d5/", "/", NULL, mk);
		check_listing(s, keys, n, "d5/s1/", "/", NULL, mk);
	}
	/* start_after */
	check_listing(s, keys, n, NULL, NULL, "d3/s2/f0500", 7);
	check_listing(s, keys, n, NULL, NULL, "d3/s2/f0500", 1000);
	check_listing(s, keys, n, NULL, "/", "t1000", 7);
	check_listing(s, keys, n, "d4/", "/", "d4/f0500", 3);
	check_listing(s, keys, n, NULL, NULL, "zzz", 7);

	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	store_destroy(s);
}

/* ---- multipart ---- */

/* Upload data as parts of part_len bytes; fills etags[] (malloc'd). */
static int upload_parts(struct store *s, const char *key, const char *id, const unsigned char *data,
			size_t len, size_t part_len, char **etags)
{
	int n = 0;

	for (size_t off = 0; off < len; off += part_len, n++) {
		struct s3_body body = { .mem = data + off, .fd = -1,
					.len = len - off < part_len ? len - off : part_len };
		struct cm_err err;
		cm_err_clear(&err);
		CHECK_INT(store_mpu_part(s, key, id, n + 1, &body, &etags[n], &err), CM_OK);
	}
	return n;
}

TEST(mem_mpu_complete)
{
	struct store *s = store_mem_create();
	size_t part = 64 << 10, len = 3 * part + 1000;
	unsigned char *data = pattern(len);
	struct s3_meta meta = { 0 };
	struct s3_put_opts opts = { .content_type = "video/mp4", .meta = &meta };
	struct s3_part parts[4];
	struct s3_object_head head;
	struct cm_err err;
	char *id = NULL, *etags[4] = { 0 }, *etag = NULL, want[64], hex[33];
	unsigned char md5s[64];
	int n;
	void *p;
	size_t got_len = 0;

	cm_err_clear(&err);
	s3_meta_set(&meta, "mode", "0640");
	store_mem_set_min_part_size(s, part);
	REQUIRE(store_mpu_create(s, "big", &opts, &id, &err) == CM_OK);
	REQUIRE(id != NULL);
	CHECK_INT(store_mem_pending_uploads(s), 1);
	n = upload_parts(s, "big", id, data, len, part, etags);
	CHECK_INT(n, 4);
	/* not visible before completion */
	CHECK_INT(store_mem_count(s), 0);
	for (int i = 0; i < 4; i++) {
		parts[i].number = i + 1;
		parts[i].etag = etags[i];
	}
	CHECK_INT(store_mpu_complete(s, "big", id, parts, 4, &etag, &err), CM_OK);
	/* the ETag: MD5 of the concatenated binary part MD5s, "-" and the count */
	for (int i = 0; i < 4; i++) {
		size_t off = (size_t)i * part;
		unsigned int v;
		md5_hex(data + off, len - off < part ? len - off : part, hex);
		CHECK_STR(etags[i], hex);
		for (int b = 0; b < 16; b++) {
			sscanf(hex + 2 * b, "%2x", &v);
			md5s[16 * i + b] = (unsigned char)v;
		}
	}
	md5_hex(md5s, 64, hex);
	snprintf(want, sizeof(want), "%s-4", hex);
	CHECK_STR(etag, want);
	free(etag);
	CHECK_INT(store_mem_pending_uploads(s), 0);
	CHECK_INT(store_head(s, "big", &head, &err), CM_OK);
	CHECK_INT(head.size, len);
	CHECK_STR(head.etag, want);
	CHECK_STR(head.content_type, "video/mp4");
	CHECK_STR(s3_meta_get(&head.meta, "mode"), "0640");
	s3_object_head_release(&head);
	p = store_mem_get_bytes(s, "big", &got_len);
	CHECK(p && got_len == len && memcmp(p, data, len) == 0);
	free(p);
	/* the upload is gone: completing again fails */
	CHECK_INT(store_mpu_complete(s, "big", id, parts, 4, NULL, &err), CM_E_NOT_FOUND);

	for (int i = 0; i < 4; i++)
		free(etags[i]);
	free(id);
	s3_meta_release(&meta);
	free(data);
	store_destroy(s);
}

TEST(mem_mpu_rules)
{
	struct store *s = store_mem_create();
	size_t part = 64 << 10;
	unsigned char *data = pattern(4 * part);
	struct s3_part parts[4];
	struct s3_body body;
	struct cm_err err;
	char *id = NULL, *etags[4] = { 0 }, *etag = NULL;

	cm_err_clear(&err);
	store_mem_set_min_part_size(s, part);
	REQUIRE(store_mpu_create(s, "k", NULL, &id, &err) == CM_OK);
	/* part 1 full, part 2 small, part 3 full */
	body = (struct s3_body){ .mem = data, .fd = -1, .len = part };
	CHECK_INT(store_mpu_part(s, "k", id, 1, &body, &etags[0], &err), CM_OK);
	body = (struct s3_body){ .mem = data + part, .fd = -1, .len = 100 };
	CHECK_INT(store_mpu_part(s, "k", id, 2, &body, &etags[1], &err), CM_OK);
	body = (struct s3_body){ .mem = data + part + 100, .fd = -1, .len = part };
	CHECK_INT(store_mpu_part(s, "k", id, 3, &body, &etags[2], &err), CM_OK);
	for (int i = 0; i < 3; i++) {
		parts[i].number = i + 1;
		parts[i].etag = etags[i];
	}
	/* a small part that is not the last: EntityTooSmall */
	CHECK_INT(store_mpu_complete(s, "k", id, parts, 3, &etag, &err), CM_E_INVALID);
	CHECK(etag == NULL);
	CHECK(strstr(err.message, "EntityTooSmall") != NULL);
	/* out of order, duplicated, unknown number, wrong ETag, empty list */
	{
		struct s3_part rev[2] = { parts[2], parts[0] };
		struct s3_part dup[2] = { parts[0], parts[0] };
		struct s3_part unk[2] = { parts[0], { 7, etags[0] } };
		struct s3_part bad[2] = { parts[0], { 3, etags[0] } };
		struct s3_part zero[1] = { { 0, etags[0] } };
		CHECK_INT(store_mpu_complete(s, "k", id, rev, 2, NULL, &err), CM_E_INVALID);
		CHECK_INT(store_mpu_complete(s, "k", id, dup, 2, NULL, &err), CM_E_INVALID);
		CHECK_INT(store_mpu_complete(s, "k", id, unk, 2, NULL, &err), CM_E_INVALID);
		CHECK_INT(store_mpu_complete(s, "k", id, bad, 2, NULL, &err), CM_E_INVALID);
		CHECK_INT(store_mpu_complete(s, "k", id, zero, 1, NULL, &err), CM_E_INVALID);
		CHECK_INT(store_mpu_complete(s, "k", id, parts, 0, NULL, &err), CM_E_INVALID);
	}
	/* part numbers outside 1..10000, unknown upload, wrong key */
	body = (struct s3_body){ .mem = data, .fd = -1, .len = 10 };
	CHECK_INT(store_mpu_part(s, "k", id, 0, &body, &etag, &err), CM_E_INVALID);
	CHECK(etag == NULL);
	CHECK_INT(store_mpu_part(s, "k", id, 10001, &body, &etag, &err), CM_E_INVALID);
	CHECK_INT(store_mpu_part(s, "k", "no-such-upload", 1, &body, &etag, &err), CM_E_NOT_FOUND);
	CHECK_STR(err.code, "NoSuchUpload");
	CHECK_INT(store_mpu_part(s, "other", id, 1, &body, &etag, &err), CM_E_NOT_FOUND);
	CHECK_INT(store_mpu_complete(s, "k", "nope", parts, 1, NULL, &err), CM_E_NOT_FOUND);
	/* still pending after every failure; nothing became an object */
	CHECK_INT(store_mem_pending_uploads(s), 1);
	CHECK_INT(store_mem_count(s), 0);

	/* skipping the small part: 1 and 3 (gaps are allowed), the last may be small */
	{
		struct s3_part ok[2] = { parts[0], parts[2] };
		size_t len = 0;
		unsigned char *p;
		CHECK_INT(store_mpu_complete(s, "k", id, ok, 2, &etag, &err), CM_OK);
		CHECK(etag && strlen(etag) == 34 && strcmp(etag + 32, "-2") == 0);
		free(etag);
		p = store_mem_get_bytes(s, "k", &len);
		CHECK(p && len == 2 * part && memcmp(p, data, part) == 0 &&
		      memcmp(p + part, data + part + 100, part) == 0);
		free(p);
	}
	CHECK_INT(store_mem_pending_uploads(s), 0);

	/* a single small part is fine (it is the last) */
	free(id);
	REQUIRE(store_mpu_create(s, "one", NULL, &id, &err) == CM_OK);
	free(etags[0]);
	body = (struct s3_body){ .mem = data, .fd = -1, .len = 5 };
	CHECK_INT(store_mpu_part(s, "one", id, 1, &body, &etags[0], &err), CM_OK);
	parts[0].etag = etags[0];
	CHECK_INT(store_mpu_complete(s, "one", id, parts, 1, NULL, &err), CM_OK);

	/* re-uploading a part replaces it */
	free(id);
	REQUIRE(store_mpu_create(s, "re", NULL, &id, &err) == CM_OK);
	free(etags[0]);
	body = (struct s3_body){ .mem = "first", .fd = -1, .len = 5 };
	CHECK_INT(store_mpu_part(s, "re", id, 1, &body, &etags[0], &err), CM_OK);
	free(etags[0]);
	body = (struct s3_body){ .mem = "second", .fd = -1, .len = 6 };
	CHECK_INT(store_mpu_part(s, "re", id, 1, &body, &etags[0], &err), CM_OK);
	parts[0].etag = etags[0];
	CHECK_INT(store_mpu_complete(s, "re", id, parts, 1, NULL, &err), CM_OK);
	{
		size_t len = 0;
		char *p = store_mem_get_bytes(s, "re", &len);
		CHECK(p && len == 6 && memcmp(p, "second", 6) == 0);
		free(p);
	}

	for (int i = 0; i < 4; i++)
		free(etags[i]);
	free(id);
	free(data);
	store_destroy(s);
}

TEST(mem_mpu_abort_list_copy)
{
	struct store *s = store_mem_create();
	struct s3_upload_list list;
	struct s3_part parts[2];
	struct s3_body body = { .mem = "abcdef", .fd = -1, .len = 6 };
	struct cm_err err;
	char *a = NULL, *b = NULL, *c = NULL, *etag = NULL, *e1 = NULL, *e2 = NULL;
	int seen_a = 0, seen_b = 0;

	cm_err_clear(&err);
	store_mem_set_min_part_size(s, 4);
	REQUIRE(store_mpu_create(s, "x/a", NULL, &a, &err) == CM_OK);
	REQUIRE(store_mpu_create(s, "x/b", NULL, &b, &err) == CM_OK);
	REQUIRE(store_mpu_create(s, "y/c", NULL, &c, &err) == CM_OK);
	CHECK(strcmp(a, b) != 0 && strcmp(b, c) != 0);
	CHECK_INT(store_mem_pending_uploads(s), 3);

	CHECK_INT(store_mpu_list(s, "x/", NULL, NULL, &list, &err), CM_OK);
	CHECK_INT(list.n_uploads, 2);
	for (size_t i = 0; i < list.n_uploads; i++) {
		if (!strcmp(list.uploads[i].key, "x/a") && !strcmp(list.uploads[i].upload_id, a))
			seen_a = 1;
		if (!strcmp(list.uploads[i].key, "x/b") && !strcmp(list.uploads[i].upload_id, b))
			seen_b = 1;
	}
	CHECK(seen_a && seen_b);
	CHECK(!list.is_truncated);
	s3_upload_list_release(&list);
	CHECK_INT(store_mpu_list(s, NULL, NULL, NULL, &list, &err), CM_OK);
	CHECK_INT(list.n_uploads, 3);
	s3_upload_list_release(&list);

	/* abort with parts uploaded; again -> NoSuchUpload; wrong key -> NoSuchUpload */
	CHECK_INT(store_mpu_part(s, "x/a", a, 1, &body, &etag, &err), CM_OK);
	free(etag);
	CHECK_INT(store_mpu_abort(s, "x/a", a, &err), CM_OK);
	CHECK_INT(store_mpu_abort(s, "x/a", a, &err), CM_E_NOT_FOUND);
	CHECK_INT(store_mpu_abort(s, "x/zzz", b, &err), CM_E_NOT_FOUND);
	CHECK_INT(store_mem_pending_uploads(s), 2);
	CHECK_INT(store_mem_count(s), 0);
	CHECK_INT(store_mpu_part(s, "x/a", a, 1, &body, &etag, &err), CM_E_NOT_FOUND);

	/* part copy: a range of an object, and the whole object (last < first) */
	REQUIRE(store_mem_put_bytes(s, "src", "0123456789", 10) == 0);
	CHECK_INT(store_mpu_part_copy(s, "x/b", b, 1, "src", 2, 7, &e1, &err), CM_OK);
	CHECK_INT(store_mpu_part_copy(s, "x/b", b, 2, "src", 1, 0, &e2, &err), CM_OK);
	CHECK_INT(store_mpu_part_copy(s, "x/b", b, 3, "src", 5, 10, &etag, &err), CM_E_RANGE);
	CHECK(etag == NULL);
	CHECK_INT(store_mpu_part_copy(s, "x/b", b, 3, "missing", 0, 1, &etag, &err), CM_E_NOT_FOUND);
	parts[0] = (struct s3_part){ 1, e1 };
	parts[1] = (struct s3_part){ 2, e2 };
	CHECK_INT(store_mpu_complete(s, "x/b", b, parts, 2, NULL, &err), CM_OK);
	{
		size_t len = 0;
		char *p = store_mem_get_bytes(s, "x/b", &len);
		CHECK(p && len == 16 && memcmp(p, "2345670123456789", 16) == 0);
		free(p);
	}
	CHECK_INT(store_mpu_abort(s, "y/c", c, &err), CM_OK);
	CHECK_INT(store_mem_pending_uploads(s), 0);

	free(a);
	free(b);
	free(c);
	free(e1);
	free(e2);
	store_destroy(s);
}

/* Call op once with harmless arguments; returns its status. */
static enum cm_status call_op(struct store *s, enum store_op op, struct cm_err *err)
{
	struct s3_body body = { .mem = "x", .fd = -1, .len = 1 };
	struct s3_part part = { 1, "00000000000000000000000000000000" };
	const char *keys[] = { "k" };
	struct s3_list_page page;
	struct s3_object_head head;
	struct s3_upload_list ul;
	struct s3_delete_result dr;
	struct collect c = { 0 };
	char *out = NULL;
	enum cm_status st = CM_E_INVALID;

	cm_err_clear(err);
	switch (op) {
	case STORE_OP_LIST:
		st = store_list(s, NULL, NULL, NULL, NULL, 0, &page, err);
		s3_list_page_release(&page);
		break;
	case STORE_OP_HEAD:
		st = store_head(s, "k", &head, err);
		s3_object_head_release(&head);
		break;
	case STORE_OP_GET:
		st = store_get(s, "k", 0, UINT64_MAX, collect_sink, &c, NULL, NULL, err);
		collect_release(&c);
		break;
	case STORE_OP_PUT:
		st = store_put(s, "k2", &body, NULL, &out, err);
		break;
	case STORE_OP_MPU_CREATE:
		st = store_mpu_create(s, "k", NULL, &out, err);
		break;
	case STORE_OP_MPU_PART:
		st = store_mpu_part(s, "k", "upload-1", 1, &body, &out, err);
		break;
	case STORE_OP_MPU_PART_COPY:
		st = store_mpu_part_copy(s, "k", "upload-1", 2, "k", 0, 0, &out, err);
		break;
	case STORE_OP_MPU_COMPLETE:
		st = store_mpu_complete(s, "k", "nope", &part, 1, &out, err);
		break;
	case STORE_OP_MPU_ABORT:
		st = store_mpu_abort(s, "k", "nope", err);
		break;
	case STORE_OP_MPU_LIST:
		st = store_mpu_list(s, NULL, NULL, NULL, &ul, err);
		s3_upload_list_release(&ul);
		break;
	case STORE_OP_COPY:
		st = store_copy(s, "k3", "k", NULL, &out, err);
		break;
	case STORE_OP_DEL:
		st = store_del(s, "absent", err);
		break;
	case STORE_OP_DEL_MANY:
		st = store_del_many(s, keys, 0, &dr, err);
		s3_delete_result_release(&dr);
		break;
	case STORE_OP__COUNT:
		break;
	}
	free(out);
	return st;
}

TEST(mem_unsupported_and_counters)
{
	struct store *s = store_mem_create();
	struct cm_err err;

	REQUIRE(store_mem_put_bytes(s, "k", "v", 1) == 0);
	for (int op = 0; op < STORE_OP__COUNT; op++)
		CHECK_INT(store_mem_calls(s, (enum store_op)op), op == STORE_OP_PUT ? 1 : 0);
	store_mem_reset_calls(s);
	for (int op = 0; op < STORE_OP__COUNT; op++) {
		store_mem_set_unsupported(s, (enum store_op)op, 1);
		if (call_op(s, (enum store_op)op, &err) != CM_E_UNSUPPORTED)
			TH_FAIL_("op %d not switched off", op);
		CHECK_INT(err.status, CM_E_UNSUPPORTED);
		CHECK_INT(err.http_status, 501);
		CHECK_STR(err.code, "NotImplemented");
		store_mem_set_unsupported(s, (enum store_op)op, 0);
		if (call_op(s, (enum store_op)op, &err) == CM_E_UNSUPPORTED)
			TH_FAIL_("op %d still switched off", op);
	}
	/* every call counted, refused or not */
	for (int op = 0; op < STORE_OP__COUNT; op++)
		if (store_mem_calls(s, (enum store_op)op) != 2)
			TH_FAIL_("op %d counted %llu times", op,
				 (unsigned long long)store_mem_calls(s, (enum store_op)op));
	store_mem_reset_calls(s);
	for (int op = 0; op < STORE_OP__COUNT; op++)
		CHECK_INT(store_mem_calls(s, (enum store_op)op), 0);
	/* a HEAD on one op does not count as another */
	call_op(s, STORE_OP_HEAD, &err);
	call_op(s, STORE_OP_HEAD, &err);
	call_op(s, STORE_OP_LIST, &err);
	CHECK_INT(store_mem_calls(s, STORE_OP_HEAD), 2);
	CHECK_INT(store_mem_calls(s, STORE_OP_LIST), 1);
	CHECK_INT(store_mem_calls(s, STORE_OP_GET), 0);
	store_destroy(s);
}

/* ---- fault layer ---- */

TEST(fault_fail_next)
{
	struct store *mem = store_mem_create();
	struct store *s = store_fault_create(mem, 1);
	struct s3_object_head head;
	struct cm_err err;

	REQUIRE(store_mem_put_bytes(mem, "k", "v", 1) == 0);
	store_fault_fail_next(s, STORE_OP_HEAD, 3, CM_E_TRANSIENT);
	for (int i = 0; i < 3; i++) {
		cm_err_clear(&err);
		CHECK_INT(store_head(s, "k", &head, &err), CM_E_TRANSIENT);
		CHECK_INT(err.status, CM_E_TRANSIENT);
		CHECK_INT(err.http_status, 503);
		CHECK_STR(err.code, "SlowDown");
		CHECK(head.etag == NULL);
	}
	/* injected before the store below: it never saw them */
	CHECK_INT(store_mem_calls(mem, STORE_OP_HEAD), 0);
	CHECK_INT(store_fault_injected(s), 3);
	CHECK_INT(store_head(s, "k", &head, &err), CM_OK);
	CHECK_INT(head.size, 1);
	s3_object_head_release(&head);
	CHECK_INT(store_mem_calls(mem, STORE_OP_HEAD), 1);
	/* other operations untouched while HEAD fails */
	store_fault_fail_next(s, STORE_OP_HEAD, 1, CM_E_ACCESS_DENIED);
	CHECK_INT(call_op(s, STORE_OP_LIST, &err), CM_OK);
	CHECK_INT(store_head(s, "k", &head, &err), CM_E_ACCESS_DENIED);
	CHECK_INT(store_head(s, "k", &head, &err), CM_OK);
	s3_object_head_release(&head);
	/* every operation can be failed */
	for (int op = 0; op < STORE_OP__COUNT; op++) {
		store_fault_fail_next(s, (enum store_op)op, 1, CM_E_TIMEOUT);
		if (call_op(s, (enum store_op)op, &err) != CM_E_TIMEOUT)
			TH_FAIL_("op %d not failed", op);
	}
	CHECK_INT(store_fault_injected(s), 4 + STORE_OP__COUNT);
	store_destroy(s);
}

/* The pattern of failures of n HEADs through a fresh fault layer with seed. */
static void random_sequence(uint64_t seed, double p, char *out, int n)
{
	struct store *mem = store_mem_create();
	struct store *s = store_fault_create(mem, seed);
	struct s3_object_head head;
	struct cm_err err;

	store_mem_put_bytes(mem, "k", "v", 1);
	store_fault_set_random(s, STORE_OP_HEAD, p, CM_E_NETWORK);
	for (int i = 0; i < n; i++) {
		enum cm_status st = store_head(s, "k", &head, &err);
		out[i] = st == CM_OK ? '.' : st == CM_E_NETWORK ? 'X' : '?';
		s3_object_head_release(&head);
	}
	out[n] = '\0';
	store_destroy(s);
}

TEST(fault_random_reproducible)
{
	char a[201], b[201], c[201], z[201], all[201];
	int fails = 0;

	random_sequence(12345, 0.3, a, 200);
	random_sequence(12345, 0.3, b, 200);
	random_sequence(999, 0.3, c, 200);
	CHECK_STR(a, b);
	CHECK(strcmp(a, c) != 0);
	CHECK(strchr(a, '?') == NULL);
	for (int i = 0; i < 200; i++)
		fails += a[i] == 'X';
	/* 0.3 of 200: far from 0 and from 200 */
	CHECK(fails > 30 && fails < 90);
	random_sequence(7, 0.0, z, 200);
	CHECK(strchr(z, 'X') == NULL);
	random_sequence(7, 1.0, all, 200);
	CHECK(strchr(all, '.') == NULL);
}

TEST(fault_truncate_get)
{
	struct store *mem = store_mem_create();
	struct store *s = store_fault_create(mem, 5);
	size_t n = 10000;
	unsigned char *data = pattern(n);
	struct s3_object_head head;
	struct collect c = { 0 };
	struct cm_err err;
	uint64_t got = 0;

	REQUIRE(store_mem_put_bytes(mem, "k", data, n) == 0);
	store_fault_set_truncate_gets(s, 1.0);
	cm_err_clear(&err);
	CHECK_INT(store_get(s, "k", 0, n, collect_sink, &c, &head, &got, &err), CM_E_NETWORK);
	CHECK_INT(err.status, CM_E_NETWORK);
	/* half delivered: a prefix of the range */
	CHECK_INT(c.len, n / 2);
	CHECK(is_prefix(&c, data));
	CHECK_INT(got, c.len);
	CHECK(head.etag == NULL);
	collect_release(&c);
	CHECK_INT(store_fault_injected(s), 1);

	/* a range: half of the range, starting at its offset */
	CHECK_INT(get_range(s, "k", 1000, 4000, &c, &got, &err), CM_E_NETWORK);
	CHECK_INT(c.len, 2000);
	CHECK_MEM(c.data, data + 1000, c.len);
	collect_release(&c);

	/* p = 0: whole */
	store_fault_set_truncate_gets(s, 0.0);
	CHECK_INT(get_range(s, "k", 0, UINT64_MAX, &c, &got, &err), CM_OK);
	CHECK_INT(c.len, n);
	CHECK_MEM(c.data, data, n);
	collect_release(&c);
	CHECK_INT(store_fault_injected(s), 2);
	free(data);
	store_destroy(s);
}

TEST(fault_pass_through)
{
	struct store *mem = store_mem_create();
	struct store *s = store_fault_create(mem, 3);
	struct s3_meta meta = { 0 };
	struct s3_put_opts opts = { .content_type = "a/b", .meta = &meta };
	struct s3_object_head head;
	struct s3_list_page page;
	struct s3_part part;
	struct cm_err err;
	struct collect c;
	char *id = NULL, *etag = NULL, *petag = NULL;
	uint64_t got;
	int64_t t0;

	cm_err_clear(&err);
	s3_meta_set(&meta, "m", "1");
	store_mem_set_min_part_size(mem, 1);
	CHECK_INT(put_mem(s, "p/one", "hello", 5, &opts), CM_OK);
	CHECK_INT(store_head(s, "p/one", &head, &err), CM_OK);
	CHECK_STR(head.content_type, "a/b");
	CHECK_STR(s3_meta_get(&head.meta, "m"), "1");
	s3_object_head_release(&head);
	CHECK_INT(get_range(s, "p/one", 1, 3, &c, &got, &err), CM_OK);
	CHECK(c.len == 3 && memcmp(c.data, "ell", 3) == 0);
	collect_release(&c);
	CHECK_INT(store_copy(s, "p/two", "p/one", NULL, NULL, &err), CM_OK);
	CHECK_INT(store_mpu_create(s, "p/three", NULL, &id, &err), CM_OK);
	CHECK_INT(store_mpu_part_copy(s, "p/three", id, 1, "p/one", 0, 4, &petag, &err), CM_OK);
	part = (struct s3_part){ 1, petag };
	CHECK_INT(store_mpu_complete(s, "p/three", id, &part, 1, &etag, &err), CM_OK);
	CHECK(etag && strstr(etag, "-1") != NULL);
	CHECK_INT(store_list(s, "p/", "/", NULL, NULL, 0, &page, &err), CM_OK);
	CHECK_INT(page.n_objects, 3);
	s3_list_page_release(&page);
	CHECK_INT(store_del(s, "p/two", &err), CM_OK);
	CHECK_INT(store_mem_count(mem), 2);
	/* errors from below come through unchanged */
	CHECK_INT(store_head(s, "p/none", &head, &err), CM_E_NOT_FOUND);
	CHECK_STR(err.code, "NoSuchKey");
	store_mem_set_unsupported(mem, STORE_OP_MPU_LIST, 1);
	CHECK_INT(call_op(s, STORE_OP_MPU_LIST, &err), CM_E_UNSUPPORTED);
	CHECK_INT(store_fault_injected(s), 0);
	CHECK_INT(store_mem_calls(mem, STORE_OP_PUT), 1);
	CHECK_INT(store_mem_calls(mem, STORE_OP_MPU_COMPLETE), 1);

	/* a delay: coarse lower bound only */
	store_fault_set_delay(s, 20);
	t0 = util_now_ms();
	CHECK_INT(store_head(s, "p/one", &head, &err), CM_OK);
	s3_object_head_release(&head);
	CHECK(util_now_ms() - t0 >= 19);

	free(id);
	free(etag);
	free(petag);
	s3_meta_release(&meta);
	store_destroy(s);
}

/* ---- transfer: part sizes and the memory budget ---- */

TEST(transfer_part_sizes)
{
	uint64_t base = 8ULL << 20, total = 0;

	CHECK_INT(transfer_part_size(base, 1), base);
	CHECK_INT(transfer_part_size(base, 1000), base);
	CHECK_INT(transfer_part_size(base, 1001), 2 * base);
	CHECK_INT(transfer_part_size(base, 2000), 2 * base);
	CHECK_INT(transfer_part_size(base, 2001), 4 * base);
	CHECK_INT(transfer_part_size(base, 10000), 512 * base);
	/* capped at 5 GiB */
	CHECK_INT(transfer_part_size(1ULL << 30, 5000), TRANSFER_MAX_PART_SIZE);
	CHECK_INT(transfer_part_size(4ULL << 30, 1001), TRANSFER_MAX_PART_SIZE);
	CHECK_INT(transfer_part_size(TRANSFER_MAX_PART_SIZE, 10000), TRANSFER_MAX_PART_SIZE);
	CHECK_INT(transfer_part_size(TRANSFER_MIN_PART_SIZE, 1), TRANSFER_MIN_PART_SIZE);
	for (int i = 1; i <= TRANSFER_MAX_PARTS; i++) {
		uint64_t p = transfer_part_size(base, i);
		if (p > TRANSFER_MAX_PART_SIZE || p < base || (i > 1 && p < transfer_part_size(base, i - 1))) {
			TH_FAIL_("part %d: %llu", i, (unsigned long long)p);
			break;
		}
		total += p;
	}
	/* 10,000 parts of an 8 MiB base reach past 5 TiB */
	CHECK(total > (5ULL << 40));
}

TEST(membudget_basics)
{
	struct membudget *b = membudget_create(100);

	CHECK_INT(membudget_used(b), 0);
	CHECK_INT(membudget_peak(b), 0);
	membudget_acquire(b, 30);
	membudget_acquire(b, 70);
	CHECK_INT(membudget_used(b), 100);
	CHECK_INT(membudget_peak(b), 100);
	membudget_release(b, 70);
	membudget_release(b, 30);
	CHECK_INT(membudget_used(b), 0);
	CHECK_INT(membudget_peak(b), 100);
	/* larger than the whole budget: let through when nothing is held */
	membudget_acquire(b, 250);
	CHECK_INT(membudget_used(b), 250);
	CHECK_INT(membudget_peak(b), 250);
	membudget_release(b, 250);
	CHECK_INT(membudget_used(b), 0);
	membudget_acquire(b, 0);
	CHECK_INT(membudget_used(b), 0);
	membudget_destroy(b);
	membudget_destroy(NULL);
}

struct budget_waiter {
	struct membudget *b;
	uint64_t n;
	atomic_int done;
};

static void *budget_waiter_main(void *arg)
{
	struct budget_waiter *w = arg;

	membudget_acquire(w->b, w->n);
	atomic_store(&w->done, 1);
	return NULL;
}

TEST(membudget_blocks)
{
	struct membudget *b = membudget_create(100);
	struct budget_waiter w = { b, 50, 0 };
	struct budget_waiter big = { b, 500, 0 };
	pthread_t t;

	membudget_acquire(b, 80);
	REQUIRE(pthread_create(&t, NULL, budget_waiter_main, &w) == 0);
	sleep_ms(50);
	CHECK_INT(atomic_load(&w.done), 0);      /* 80 + 50 > 100: waits */
	membudget_release(b, 40);               /* 40 + 50 <= 100: it gets through */
	pthread_join(t, NULL);
	CHECK_INT(atomic_load(&w.done), 1);
	CHECK_INT(membudget_used(b), 90);
	CHECK_INT(membudget_peak(b), 90);

	/* an oversized request waits until nothing at all is held */
	REQUIRE(pthread_create(&t, NULL, budget_waiter_main, &big) == 0);
	sleep_ms(30);
	CHECK_INT(atomic_load(&big.done), 0);
	membudget_release(b, 50);
	sleep_ms(20);
	CHECK_INT(atomic_load(&big.done), 0);
	membudget_release(b, 40);
	pthread_join(t, NULL);
	CHECK_INT(atomic_load(&big.done), 1);
	CHECK_INT(membudget_used(b), 500);
	CHECK_INT(membudget_peak(b), 500);
	membudget_release(b, 500);
	/* releasing more than held clamps at zero */
	membudget_acquire(b, 10);
	membudget_release(b, 20);
	CHECK_INT(membudget_used(b), 0);
	membudget_destroy(b);
}

struct wq_counter {
	pthread_mutex_t lock;
	int runs;
	int order_ok;
	int last;
};

struct wq_item {
	struct wq_counter *c;
	int index;
};

static void wq_job(void *arg)
{
	struct wq_item *it = arg;

	pthread_mutex_lock(&it->c->lock);
	it->c->runs++;
	pthread_mutex_unlock(&it->c->lock);
	free(it);
}

static void wq_ordered_job(void *arg)
{
	struct wq_item *it = arg;

	pthread_mutex_lock(&it->c->lock);
	if (it->index != it->c->last + 1)
		it->c->order_ok = 0;
	it->c->last = it->index;
	it->c->runs++;
	pthread_mutex_unlock(&it->c->lock);
	free(it);
}

TEST(workq_runs_everything)
{
	struct wq_counter c = { PTHREAD_MUTEX_INITIALIZER, 0, 1, 0 };
	struct workq *wq = workq_create(4);

	REQUIRE(wq != NULL);
	for (int i = 0; i < 1000; i++) {
		struct wq_item *it = xcalloc(1, sizeof(*it));
		it->c = &c;
		workq_submit(wq, wq_job, it);
	}
	/* destroy runs what is still queued */
	workq_destroy(wq);
	CHECK_INT(c.runs, 1000);

	/* one thread: FIFO */
	c.runs = 0;
	wq = workq_create(1);
	REQUIRE(wq != NULL);
	for (int i = 1; i <= 200; i++) {
		struct wq_item *it = xcalloc(1, sizeof(*it));
		it->c = &c;
		it->index = i;
		workq_submit(wq, wq_ordered_job, it);
	}
	workq_destroy(wq);
	CHECK_INT(c.runs, 200);
	CHECK(c.order_ok);
	workq_destroy(NULL);
	pthread_mutex_destroy(&c.lock);
}

/* ---- transfer: uploader ---- */

#define PART (64u << 10)

/* A workq and a budget for one test. */
struct xfer_env {
	struct workq *wq;
	struct membudget *budget;
};

static void env_init(struct xfer_env *e, int threads, uint64_t limit)
{
	e->wq = workq_create(threads);
	e->budget = membudget_create(limit);
}

static void env_release(struct xfer_env *e)
{
	workq_destroy(e->wq);
	membudget_destroy(e->budget);
}

static struct upload_opts up_opts(struct xfer_env *e, int concurrency)
{
	struct upload_opts o = { .part_size = PART, .concurrency = concurrency,
				 .budget = e->budget, .workq = e->wq };
	return o;
}

/*
 * Upload len bytes of the pattern to key in writes of chunk bytes. Stops
 * writing at the first error; always calls finish. Returns finish's status
 * (or the write's, if finish agreed).
 */
static enum cm_status upload(struct store *s, const char *key, const unsigned char *data,
			     size_t len, size_t chunk, const struct upload_opts *o, char **etag,
			     struct cm_err *err)
{
	struct uploader *u = uploader_create(s, key, o);
	enum cm_status st = CM_OK, fst;

	cm_err_clear(err);
	for (size_t off = 0; off < len && st == CM_OK; off += chunk)
		st = uploader_write(u, data + off, len - off < chunk ? len - off : chunk, err);
	if (st == CM_OK)
		CHECK_INT(uploader_bytes(u), len);
	fst = uploader_finish(u, etag, err);
	if (st != CM_OK)
		CHECK_INT(fst, st);
	uploader_destroy(u);
	return fst;
}

/* The object under key equals data[0, len). */
static int object_is(struct store *mem, const char *key, const unsigned char *data, size_t len)
{
	size_t got = 0;
	unsigned char *p = store_mem_get_bytes(mem, key, &got);
	int ok = p && got == len && memcmp(p, data, len) == 0;

	free(p);
	return ok;
}

TEST(upload_small_is_one_put)
{
	struct store *s = store_mem_create();
	struct xfer_env e;
	struct upload_opts o;
	struct s3_meta meta = { 0 };
	struct s3_put_opts po = { .content_type = "text/plain", .meta = &meta };
	struct s3_object_head head;
	unsigned char *data = pattern(PART);
	struct cm_err err;
	char *etag = NULL, hex[33];

	env_init(&e, 4, 64 * PART);
	o = up_opts(&e, 4);
	o.put_opts = &po;
	s3_meta_set(&meta, "mode", "0600");
	store_mem_set_min_part_size(s, PART);
	CHECK_INT(upload(s, "small", data, 1000, 100, &o, &etag, &err), CM_OK);
	md5_hex(data, 1000, hex);
	CHECK_STR(etag, hex);
	free(etag);
	CHECK(object_is(s, "small", data, 1000));
	CHECK_INT(store_mem_calls(s, STORE_OP_PUT), 1);
	CHECK_INT(store_mem_calls(s, STORE_OP_MPU_CREATE), 0);
	CHECK_INT(store_mem_calls(s, STORE_OP_MPU_PART), 0);
	CHECK_INT(store_mem_calls(s, STORE_OP_MPU_COMPLETE), 0);
	CHECK_INT(store_head(s, "small", &head, &err), CM_OK);
	CHECK_STR(head.content_type, "text/plain");
	CHECK_STR(s3_meta_get(&head.meta, "mode"), "0600");
	s3_object_head_release(&head);

	/* one byte short of a part: still one PUT */
	store_mem_reset_calls(s);
	CHECK_INT(upload(s, "almost", data, PART - 1, 4096, &o, NULL, &err), CM_OK);
	CHECK(object_is(s, "almost", data, PART - 1));
	CHECK_INT(store_mem_calls(s, STORE_OP_PUT), 1);
	CHECK_INT(store_mem_calls(s, STORE_OP_MPU_CREATE), 0);

	/* zero length: an empty object, by PUT */
	store_mem_reset_calls(s);
	CHECK_INT(upload(s, "empty", data, 0, 1, &o, &etag, &err), CM_OK);
	md5_hex("", 0, hex);
	CHECK_STR(etag, hex);
	free(etag);
	CHECK_INT(store_head(s, "empty", &head, &err), CM_OK);
	CHECK_INT(head.size, 0);
	CHECK_STR(head.content_type, "text/plain");
	s3_object_head_release(&head);
	CHECK_INT(store_mem_calls(s, STORE_OP_PUT), 1);
	CHECK_INT(store_mem_calls(s, STORE_OP_MPU_CREATE), 0);
	CHECK_INT(membudget_used(e.budget), 0);

	s3_meta_release(&meta);
	free(data);
	env_release(&e);
	store_destroy(s);
}

TEST(upload_multipart_content)
{
	struct store *s = store_mem_create();
	struct xfer_env e;
	struct upload_opts o;
	struct s3_meta meta = { 0 };
	struct s3_put_opts po = { .content_type = "video/x", .meta = &meta };
	struct s3_object_head head;
	size_t sizes[] = { PART, PART + 1, 2 * PART, 5 * PART + 12345 };
	size_t max = 5 * PART + 12345;
	unsigned char *data = pattern(max);
	struct cm_err err;
	char *etag = NULL;

	env_init(&e, 4, 64 * PART);
	o = up_opts(&e, 4);
	o.put_opts = &po;
	s3_meta_set(&meta, "mode", "0700");
	store_mem_set_min_part_size(s, PART);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t len = sizes[i];
		size_t parts = (len + PART - 1) / PART;
		char suffix[16];

		store_mem_reset_calls(s);
		CHECK_INT(upload(s, "big", data, len, 10000, &o, &etag, &err), CM_OK);
		if (!object_is(s, "big", data, len))
			TH_FAIL_("content of a %zu-byte upload", len);
		snprintf(suffix, sizeof(suffix), "-%zu", parts);
		CHECK(etag && strlen(etag) > strlen(suffix) &&
		      strcmp(etag + strlen(etag) - strlen(suffix), suffix) == 0);
		free(etag);
		CHECK_INT(store_mem_calls(s, STORE_OP_PUT), 0);
		CHECK_INT(store_mem_calls(s, STORE_OP_MPU_CREATE), 1);
		CHECK_INT(store_mem_calls(s, STORE_OP_MPU_PART), parts);
		CHECK_INT(store_mem_calls(s, STORE_OP_MPU_COMPLETE), 1);
		CHECK_INT(store_mem_calls(s, STORE_OP_MPU_ABORT), 0);
		CHECK_INT(store_mem_pending_uploads(s), 0);
		CHECK_INT(membudget_used(e.budget), 0);
	}
	/* the options reach the multipart upload too */
	CHECK_INT(store_head(s, "big", &head, &err), CM_OK);
	CHECK_STR(head.content_type, "video/x");
	CHECK_STR(s3_meta_get(&head.meta, "mode"), "0700");
	s3_object_head_release(&head);
	s3_meta_release(&meta);
	free(data);
	env_release(&e);
	store_destroy(s);
}

TEST(upload_odd_chunks)
{
	struct store *s = store_mem_create();
	struct xfer_env e;
	struct upload_opts o;
	size_t len = 3 * PART + 777;
	size_t chunks[] = { 1, 7, 100 << 10, PART, PART - 1, PART + 1, len };
	unsigned char *data = pattern(len);
	struct cm_err err;
	char *etag = NULL, *first = NULL;

	env_init(&e, 4, 64 * PART);
	o = up_opts(&e, 3);
	store_mem_set_min_part_size(s, PART);
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		char key[32];
		snprintf(key, sizeof(key), "odd%zu", chunks[i]);
		store_mem_reset_calls(s);
		CHECK_INT(upload(s, key, data, len, chunks[i], &o, &etag, &err), CM_OK);
		if (!object_is(s, key, data, len))
			TH_FAIL_("content with writes of %zu bytes", chunks[i]);
		CHECK_INT(store_mem_calls(s, STORE_OP_MPU_PART), 4);
		/* same parts, same ETag, whatever the write sizes */
		if (!first)
			first = etag;
		else {
			CHECK_STR(etag, first);
			free(etag);
		}
	}
	free(first);
	free(data);
	env_release(&e);
	store_destroy(s);
}

/*
 * A layer that counts concurrent mpu_part calls (and sleeps in them, so that
 * parts overlap when the uploader lets them).
 */
struct count_ctx {
	pthread_mutex_t lock;
	int in_flight, max_in_flight, calls;    /* protected by lock */
	int sleep_ms;
};

static enum cm_status count_mpu_part(struct store *s, const char *key, const char *upload_id,
				     int number, const struct s3_body *body, char **etag,
				     struct cm_err *err)
{
	struct count_ctx *c = s->ctx;
	enum cm_status st;

	pthread_mutex_lock(&c->lock);
	c->calls++;
	if (++c->in_flight > c->max_in_flight)
		c->max_in_flight = c->in_flight;
	pthread_mutex_unlock(&c->lock);
	if (c->sleep_ms)
		sleep_ms(c->sleep_ms);
	st = store_mpu_part(s->next, key, upload_id, number, body, etag, err);
	pthread_mutex_lock(&c->lock);
	c->in_flight--;
	pthread_mutex_unlock(&c->lock);
	return st;
}

static void count_destroy(struct store *s)
{
	struct count_ctx *c = s->ctx;

	pthread_mutex_destroy(&c->lock);
	free(c);
}

static struct store_ops count_ops;

/* Takes ownership of inner. */
static struct store *count_create(struct store *inner, int sleep_for_ms)
{
	struct store *s = xcalloc(1, sizeof(*s));
	struct count_ctx *c = xcalloc(1, sizeof(*c));

	count_ops = store_pass_ops;
	count_ops.name = "count";
	count_ops.mpu_part = count_mpu_part;
	count_ops.destroy = count_destroy;
	pthread_mutex_init(&c->lock, NULL);
	c->sleep_ms = sleep_for_ms;
	s->ops = &count_ops;
	s->ctx = c;
	s->next = inner;
	return s;
}

static int count_max(struct store *s)
{
	struct count_ctx *c = s->ctx;
	int n;

	pthread_mutex_lock(&c->lock);
	n = c->max_in_flight;
	pthread_mutex_unlock(&c->lock);
	return n;
}

TEST(upload_parts_in_parallel)
{
	struct store *mem = store_mem_create();
	struct store *fault = store_fault_create(mem, 1);
	struct store *s = count_create(fault, 0);
	size_t len = 12 * PART;
	unsigned char *data = pattern(len);
	struct xfer_env e;
	struct upload_opts o;
	struct cm_err err;
	int max;

	/* more threads than the uploader may use: its own limit must hold */
	env_init(&e, 8, 64 * PART);
	o = up_opts(&e, 4);
	store_mem_set_min_part_size(mem, PART);
	store_fault_set_delay(fault, 20);
	CHECK_INT(upload(s, "par", data, len, PART / 2, &o, NULL, &err), CM_OK);
	CHECK(object_is(mem, "par", data, len));
	CHECK_INT(store_mem_calls(mem, STORE_OP_MPU_PART), 12);
	max = count_max(s);
	CHECK(max >= 2);        /* parts overlap... */
	CHECK(max <= 4);        /* ...but never more than concurrency */

	/* concurrency 1: strictly one at a time */
	{
		struct store *mem2 = store_mem_create();
		struct store *s2 = count_create(mem2, 2);
		o = up_opts(&e, 1);
		store_mem_set_min_part_size(mem2, PART);
		CHECK_INT(upload(s2, "one", data, 6 * PART, PART, &o, NULL, &err), CM_OK);
		CHECK(object_is(mem2, "one", data, 6 * PART));
		CHECK_INT(count_max(s2), 1);
		store_destroy(s2);
	}
	free(data);
	env_release(&e);
	store_destroy(s);
}

/*
 * The budget bound. membudget_acquire admits n only if nothing is held or
 * used + n <= limit, so used never exceeds max(limit, largest request). The
 * uploader's requests are whole parts; with a limit of two parts the peak is
 * at most two parts, whatever the concurrency. Without a tight limit the
 * uploader holds at most `concurrency` parts in flight plus the one being
 * filled (dispatch_part waits for a slot while it still holds cur).
 */
TEST(upload_memory_bound)
{
	struct store *mem = store_mem_create();
	struct store *s = count_create(mem, 3);
	size_t len = 16 * PART + 99;
	unsigned char *data = pattern(len);
	struct xfer_env e;
	struct upload_opts o;
	struct cm_err err;

	env_init(&e, 4, 2 * PART);
	o = up_opts(&e, 4);
	store_mem_set_min_part_size(mem, PART);
	CHECK_INT(upload(s, "bounded", data, len, 10000, &o, NULL, &err), CM_OK);
	CHECK(object_is(mem, "bounded", data, len));
	CHECK(membudget_peak(e.budget) <= 2 * PART);
	CHECK(membudget_peak(e.budget) >= PART);
	CHECK_INT(membudget_used(e.budget), 0);
	CHECK(count_max(s) <= 2);       /* only two parts' memory: at most two in flight */
	env_release(&e);

	/* a loose budget: concurrency + 1 parts at most */
	env_init(&e, 4, 1000 * PART);
	o = up_opts(&e, 4);
	CHECK_INT(upload(s, "loose", data, len, 10000, &o, NULL, &err), CM_OK);
	CHECK(object_is(mem, "loose", data, len));
	CHECK(membudget_peak(e.budget) <= 5 * PART);
	CHECK(membudget_peak(e.budget) > PART);
	CHECK_INT(membudget_used(e.budget), 0);
	env_release(&e);

	/* a budget smaller than one part still gets through, one part at a time */
	env_init(&e, 4, PART / 2);
	o = up_opts(&e, 4);
	CHECK_INT(upload(s, "tiny", data, 3 * PART, 10000, &o, NULL, &err), CM_OK);
	CHECK(object_is(mem, "tiny", data, 3 * PART));
	CHECK_INT(membudget_peak(e.budget), PART);
	env_release(&e);

	free(data);
	store_destroy(s);
}

TEST(upload_part_retry)
{
	struct store *mem = store_mem_create();
	struct store *s = store_fault_create(mem, 9);
	size_t len = 4 * PART + 5;
	unsigned char *data = pattern(len);
	struct xfer_env e;
	struct upload_opts o;
	struct cm_err err;

	env_init(&e, 4, 64 * PART);
	o = up_opts(&e, 4);
	store_mem_set_min_part_size(mem, PART);
	store_fault_fail_next(s, STORE_OP_MPU_PART, 1, CM_E_TRANSIENT);
	CHECK_INT(upload(s, "retry", data, len, 3000, &o, NULL, &err), CM_OK);
	CHECK(object_is(mem, "retry", data, len));
	CHECK_INT(store_fault_injected(s), 1);
	CHECK_INT(store_mem_calls(mem, STORE_OP_MPU_PART), 5);
	CHECK_INT(store_mem_pending_uploads(mem), 0);

	/* two failures of the same kind, default retries (2): still fine */
	store_fault_fail_next(s, STORE_OP_MPU_PART, 2, CM_E_NETWORK);
	CHECK_INT(upload(s, "retry2", data, len, 3000, &o, NULL, &err), CM_OK);
	CHECK(object_is(mem, "retry2", data, len));

	/* retries switched off: a transient failure is final */
	o.part_retries = -1;
	store_fault_fail_next(s, STORE_OP_MPU_PART, 1, CM_E_TRANSIENT);
	CHECK_INT(upload(s, "noretry", data, len, 3000, &o, NULL, &err), CM_E_TRANSIENT);
	CHECK_INT(err.status, CM_E_TRANSIENT);
	CHECK_INT(store_mem_pending_uploads(mem), 0);
	CHECK_INT(membudget_used(e.budget), 0);
	free(data);
	env_release(&e);
	store_destroy(s);
}

TEST(upload_permanent_failure)
{
	struct store *mem = store_mem_create();
	struct store *s = store_fault_create(mem, 9);
	size_t len = 6 * PART + 5;
	unsigned char *data = pattern(len);
	struct s3_object_head head;
	struct xfer_env e;
	struct upload_opts o;
	struct cm_err err;
	char *etag = (char *)"junk";

	env_init(&e, 4, 64 * PART);
	o = up_opts(&e, 4);
	store_mem_set_min_part_size(mem, PART);

	/* a part refused: the error comes back, the upload is aborted */
	store_fault_fail_next(s, STORE_OP_MPU_PART, 1, CM_E_ACCESS_DENIED);
	CHECK_INT(upload(s, "denied", data, len, 5000, &o, &etag, &err), CM_E_ACCESS_DENIED);
	CHECK_INT(err.status, CM_E_ACCESS_DENIED);
	CHECK(etag == NULL);
	CHECK_INT(store_mem_pending_uploads(mem), 0);
	CHECK_INT(store_mem_calls(mem, STORE_OP_MPU_ABORT), 1);
	CHECK_INT(store_mem_calls(mem, STORE_OP_MPU_COMPLETE), 0);
	CHECK_INT(store_head(s, "denied", &head, &err), CM_E_NOT_FOUND);
	CHECK_INT(membudget_used(e.budget), 0);

	/* a server without AbortMultipartUpload: same error, upload left to expire */
	store_mem_reset_calls(mem);
	store_mem_set_unsupported(mem, STORE_OP_MPU_ABORT, 1);
	store_fault_fail_next(s, STORE_OP_MPU_PART, 1, CM_E_ACCESS_DENIED);
	CHECK_INT(upload(s, "denied2", data, len, 5000, &o, NULL, &err), CM_E_ACCESS_DENIED);
	CHECK_INT(store_mem_calls(mem, STORE_OP_MPU_ABORT), 1);
	CHECK_INT(store_mem_pending_uploads(mem), 1);
	CHECK_INT(store_mem_count(mem), 0);
	CHECK_INT(membudget_used(e.budget), 0);
	store_mem_set_unsupported(mem, STORE_OP_MPU_ABORT, 0);

	/* CreateMultipartUpload refused: nothing to abort */
	store_mem_reset_calls(mem);
	store_fault_fail_next(s, STORE_OP_MPU_CREATE, 1, CM_E_ACCESS_DENIED);
	CHECK_INT(upload(s, "nocreate", data, len, 5000, &o, NULL, &err), CM_E_ACCESS_DENIED);
	CHECK_INT(store_mem_calls(mem, STORE_OP_MPU_PART), 0);
	CHECK_INT(store_mem_calls(mem, STORE_OP_MPU_ABORT), 0);
	CHECK_INT(membudget_used(e.budget), 0);

	/* CompleteMultipartUpload refused: aborted */
	store_fault_fail_next(s, STORE_OP_MPU_COMPLETE, 1, CM_E_INVALID);
	CHECK_INT(upload(s, "nocomplete", data, len, 5000, &o, NULL, &err), CM_E_INVALID);
	CHECK_INT(store_mem_pending_uploads(mem), 1);   /* the one left above */
	CHECK_INT(store_mem_count(mem), 0);

	/* the single PUT of a small file refused */
	store_fault_fail_next(s, STORE_OP_PUT, 1, CM_E_ACCESS_DENIED);
	CHECK_INT(upload(s, "smallfail", data, 100, 10, &o, NULL, &err), CM_E_ACCESS_DENIED);
	CHECK_INT(store_mem_count(mem), 0);
	CHECK_INT(membudget_used(e.budget), 0);

	free(data);
	env_release(&e);
	store_destroy(s);
}

TEST(upload_abort_midway)
{
	struct store *mem = store_mem_create();
	struct store *s = count_create(mem, 2);
	size_t len = 5 * PART;
	unsigned char *data = pattern(len);
	struct xfer_env e;
	struct upload_opts o;
	struct uploader *u;
	struct cm_err err;

	env_init(&e, 4, 64 * PART);
	o = up_opts(&e, 4);
	store_mem_set_min_part_size(mem, PART);
	u = uploader_create(s, "abandoned", &o);
	cm_err_clear(&err);
	CHECK_INT(uploader_write(u, data, 3 * PART + 10, &err), CM_OK);
	CHECK_INT(store_mem_pending_uploads(mem), 1);
	uploader_abort(u);
	CHECK_INT(store_mem_pending_uploads(mem), 0);
	CHECK_INT(store_mem_calls(mem, STORE_OP_MPU_ABORT), 1);
	CHECK_INT(store_mem_count(mem), 0);
	CHECK_INT(membudget_used(e.budget), 0);
	/* later writes see the cancellation, with a clean error record */
	memset(&err, 0x5a, sizeof(err));
	CHECK_INT(uploader_write(u, data, 10, &err), CM_E_CANCELLED);
	CHECK_INT(err.status, CM_E_CANCELLED);
	CHECK_INT(err.http_status, 0);
	CHECK_STR(err.code, "");
	uploader_destroy(u);

	/* abort before anything was sent: no multipart upload to abort */
	store_mem_reset_calls(mem);
	u = uploader_create(s, "early", &o);
	CHECK_INT(uploader_write(u, data, 100, &err), CM_OK);
	uploader_abort(u);
	uploader_destroy(u);
	CHECK_INT(store_mem_calls(mem, STORE_OP_MPU_ABORT), 0);
	CHECK_INT(store_mem_calls(mem, STORE_OP_PUT), 0);
	CHECK_INT(store_mem_count(mem), 0);

	/* destroy without finish aborts */
	u = uploader_create(s, "dropped", &o);
	CHECK_INT(uploader_write(u, data, 2 * PART + 1, &err), CM_OK);
	uploader_destroy(u);
	CHECK_INT(store_mem_pending_uploads(mem), 0);
	CHECK_INT(store_mem_count(mem), 0);
	CHECK_INT(membudget_used(e.budget), 0);
	uploader_destroy(NULL);

	free(data);
	env_release(&e);
	store_destroy(s);
}

/* ---- transfer: downloader ---- */

#define DPART 4096u

static struct download_opts dl_opts(struct xfer_env *e, int concurrency)
{
	struct download_opts o = { .part_size = DPART, .concurrency = concurrency,
				   .budget = e->budget, .workq = e->wq };
	return o;
}

TEST(download_sizes)
{
	struct store *s = store_mem_create();
	size_t sizes[] = { 0, 1, DPART - 1, DPART, DPART + 1, 10 * DPART + 3, 100 * DPART };
	size_t max = 100 * DPART;
	unsigned char *data = pattern(max);
	struct xfer_env e;
	struct download_opts o;
	struct cm_err err;

	env_init(&e, 4, 1ULL << 30);
	for (int conc = 1; conc <= 8; conc *= 2) {
		o = dl_opts(&e, conc);
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			struct collect c = { 0 };
			size_t len = sizes[i];
			REQUIRE(store_mem_put_bytes(s, "obj", data, len) == 0);
			store_mem_reset_calls(s);
			CHECK_INT(download_to_sink(s, "obj", len, collect_sink, &c, &o, &err), CM_OK);
			if (c.len != len || (len && memcmp(c.data, data, len) != 0))
				TH_FAIL_("download of %zu bytes, concurrency %d: got %zu", len, conc, c.len);
			/* one ranged GET per part, one sink call per part */
			CHECK_INT(store_mem_calls(s, STORE_OP_GET), (len + DPART - 1) / DPART);
			CHECK_INT(c.calls, (len + DPART - 1) / DPART);
			collect_release(&c);
		}
		CHECK(membudget_peak(e.budget) <= (uint64_t)conc * DPART);
		CHECK_INT(membudget_used(e.budget), 0);
	}
	free(data);
	env_release(&e);
	store_destroy(s);
}

TEST(download_truncated_gets)
{
	struct store *mem = store_mem_create();
	struct store *s = store_fault_create(mem, 31);  /* a seed whose cuts never hit one part 3 times */
	size_t len = 10 * DPART + 3;
	unsigned char *data = pattern(len);
	struct collect c = { 0 };
	struct xfer_env e;
	struct download_opts o;
	struct cm_err err;

	env_init(&e, 4, 1ULL << 30);
	REQUIRE(store_mem_put_bytes(mem, "obj", data, len) == 0);
	/* one GET at a time, so the seeded draws fall on the same GETs every run */
	o = dl_opts(&e, 1);
	store_fault_set_truncate_gets(s, 0.5);
	CHECK_INT(download_to_sink(s, "obj", len, collect_sink, &c, &o, &err), CM_OK);
	CHECK_INT(c.len, len);
	if (c.len == len)
		CHECK_MEM(c.data, data, len);
	collect_release(&c);
	CHECK(store_fault_injected(s) >= 3);    /* cuts did happen, and were resumed */
	CHECK(store_mem_calls(mem, STORE_OP_GET) > 11);

	/* in parallel: two failed GETs anywhere are retried */
	store_fault_set_truncate_gets(s, 0);
	o = dl_opts(&e, 4);
	store_fault_fail_next(s, STORE_OP_GET, 2, CM_E_NETWORK);
	CHECK_INT(download_to_sink(s, "obj", len, collect_sink, &c, &o, &err), CM_OK);
	CHECK_INT(c.len, len);
	if (c.len == len)
		CHECK_MEM(c.data, data, len);
	collect_release(&c);

	/* every GET cut: retries run out, the error says so, a prefix was delivered */
	store_fault_set_truncate_gets(s, 1.0);
	CHECK_INT(download_to_sink(s, "obj", len, collect_sink, &c, &o, &err), CM_E_NETWORK);
	CHECK_INT(err.status, CM_E_NETWORK);
	CHECK(c.len < len);
	CHECK(is_prefix(&c, data));
	collect_release(&c);
	CHECK_INT(membudget_used(e.budget), 0);
	free(data);
	env_release(&e);
	store_destroy(s);
}

TEST(download_sink_stops)
{
	struct store *s = store_mem_create();
	size_t len = 20 * DPART;
	unsigned char *data = pattern(len);
	struct collect c = { 0 };
	struct xfer_env e;
	struct download_opts o;
	struct cm_err err;

	env_init(&e, 4, 1ULL << 30);
	o = dl_opts(&e, 4);
	REQUIRE(store_mem_put_bytes(s, "obj", data, len) == 0);
	c.stop_at_call = 3;
	CHECK_INT(download_to_sink(s, "obj", len, collect_sink, &c, &o, &err), CM_E_CANCELLED);
	CHECK_INT(err.status, CM_E_CANCELLED);
	CHECK_INT(c.calls, 3);          /* not called again after it said stop */
	CHECK_INT(c.len, 2 * DPART);
	CHECK(is_prefix(&c, data));
	/* the window was not refilled after the stop */
	CHECK(store_mem_calls(s, STORE_OP_GET) <= 3 + 4);
	CHECK_INT(membudget_used(e.budget), 0);
	collect_release(&c);

	/* the first call */
	c.stop_at_call = 1;
	CHECK_INT(download_to_sink(s, "obj", len, collect_sink, &c, &o, &err), CM_E_CANCELLED);
	CHECK_INT(c.len, 0);
	collect_release(&c);
	free(data);
	env_release(&e);
	store_destroy(s);
}

TEST(download_errors)
{
	struct store *mem = store_mem_create();
	struct store *s = store_fault_create(mem, 77);
	size_t len = 12 * DPART + 1;
	unsigned char *data = pattern(len);
	struct collect c = { 0 };
	struct xfer_env e;
	struct download_opts o;
	struct cm_err err;

	env_init(&e, 4, 1ULL << 30);
	o = dl_opts(&e, 4);
	REQUIRE(store_mem_put_bytes(mem, "obj", data, len) == 0);

	/* a permanent error on one GET: returned with its details, a prefix delivered */
	store_fault_fail_next(s, STORE_OP_GET, 1, CM_E_ACCESS_DENIED);
	CHECK_INT(download_to_sink(s, "obj", len, collect_sink, &c, &o, &err), CM_E_ACCESS_DENIED);
	CHECK_INT(err.status, CM_E_ACCESS_DENIED);
	CHECK_STR(err.code, "Injected");
	CHECK(c.len < len);
	CHECK(is_prefix(&c, data));
	CHECK_INT(c.len % DPART, 0);
	CHECK_INT(membudget_used(e.budget), 0);
	collect_release(&c);

	/* retryable, but on every try: gives up after three */
	store_mem_reset_calls(mem);
	o = dl_opts(&e, 1);
	store_fault_fail_next(s, STORE_OP_GET, 3, CM_E_TRANSIENT);
	CHECK_INT(download_to_sink(s, "obj", len, collect_sink, &c, &o, &err), CM_E_TRANSIENT);
	CHECK_INT(c.len, 0);
	CHECK_INT(store_mem_calls(mem, STORE_OP_GET), 0);
	collect_release(&c);

	/* a missing key */
	CHECK_INT(download_to_sink(s, "missing", len, collect_sink, &c, &o, &err), CM_E_NOT_FOUND);
	CHECK_INT(err.status, CM_E_NOT_FOUND);
	CHECK_INT(c.len, 0);
	collect_release(&c);

	/* an object shorter than the size we were told */
	o = dl_opts(&e, 4);
	CHECK(download_to_sink(s, "obj", len + 2 * DPART, collect_sink, &c, &o, &err) != CM_OK);
	CHECK(c.len <= len);
	CHECK(is_prefix(&c, data));
	collect_release(&c);
	CHECK_INT(membudget_used(e.budget), 0);
	free(data);
	env_release(&e);
	store_destroy(s);
}

/*
 * The downloader holds at most `concurrency` parts. A budget smaller than that
 * must slow it down (fewer parts in flight), not hang it: it holds slots it can
 * only release itself.
 */
TEST(download_budget)
{
	struct store *s = store_mem_create();
	size_t len = 30 * DPART + 17;
	unsigned char *data = pattern(len);
	struct collect c = { 0 };
	struct xfer_env e;
	struct download_opts o;
	struct cm_err err;

	REQUIRE(store_mem_put_bytes(s, "obj", data, len) == 0);
	env_init(&e, 4, 1ULL << 30);
	o = dl_opts(&e, 3);
	CHECK_INT(download_to_sink(s, "obj", len, collect_sink, &c, &o, &err), CM_OK);
	CHECK(c.len == len && memcmp(c.data, data, len) == 0);
	CHECK(membudget_peak(e.budget) <= 3 * DPART);
	CHECK(membudget_peak(e.budget) >= DPART);
	collect_release(&c);
	env_release(&e);

	env_init(&e, 4, 2 * DPART);
	o = dl_opts(&e, 8);
	CHECK_INT(download_to_sink(s, "obj", len, collect_sink, &c, &o, &err), CM_OK);
	CHECK(c.len == len && memcmp(c.data, data, len) == 0);
	CHECK(membudget_peak(e.budget) <= 2 * DPART);
	CHECK_INT(membudget_used(e.budget), 0);
	collect_release(&c);

	/* part of the budget held elsewhere for the whole download: one part at a time */
	membudget_acquire(e.budget, DPART / 2);
	CHECK_INT(download_to_sink(s, "obj", len, collect_sink, &c, &o, &err), CM_OK);
	CHECK(c.len == len && memcmp(c.data, data, len) == 0);
	CHECK(membudget_peak(e.budget) <= 2 * DPART);
	membudget_release(e.budget, DPART / 2);
	collect_release(&c);
	env_release(&e);

	free(data);
	store_destroy(s);
}

TH_MAIN_BEGIN("test_store")
	log_set_level(LOG_LVL_ERROR);
	alarm(60);      /* a hang (a lost wake-up, a budget deadlock) fails instead of stalling */
	RUN(mem_put_head_get);
	RUN(mem_copy);
	RUN(mem_delete);
	RUN(mem_list_basic);
	RUN(mem_list_pagination);
	RUN(mem_mpu_complete);
	RUN(mem_mpu_rules);
	RUN(mem_mpu_abort_list_copy);
	RUN(mem_unsupported_and_counters);
	RUN(fault_fail_next);
	RUN(fault_random_reproducible);
	RUN(fault_truncate_get);
	RUN(fault_pass_through);
	RUN(transfer_part_sizes);
	RUN(membudget_basics);
	RUN(membudget_blocks);
	RUN(workq_runs_everything);
	RUN(upload_small_is_one_put);
	RUN(upload_multipart_content);
	RUN(upload_odd_chunks);
	RUN(upload_parts_in_parallel);
	RUN(upload_memory_bound);
	RUN(upload_part_retry);
	RUN(upload_permanent_failure);
	RUN(upload_abort_midway);
	RUN(download_sizes);
	RUN(download_truncated_gets);
	RUN(download_sink_stops);
	RUN(download_errors);
	RUN(download_budget);
TH_MAIN_END
