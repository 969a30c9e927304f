/*
 * s3_ops_test.c - every S3 operation of the client against a real server.
 *
 * Run by test_s3_ops.sh under tests/integration/run.sh, which exports the
 * server's S3_* variables; argv[1] is a bucket the script created. Each case
 * asserts on what the server answered; the script then checks some of the
 * results again through awscli. Server differences are asserted as such:
 * s3rver answers 501/405 to UploadPartCopy, ListMultipartUploads and
 * AbortMultipartUpload, and our client must report CM_E_UNSUPPORTED there.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "common/workq.h"
#include "config/awscfg.h"
#include "http/http.h"
#include "s3/s3.h"
#include "tharness.h"

static struct http_engine *engine;
static struct s3_client *client;
static struct creds_provider *creds;
static const char *bucket;
static int is_s3rver;

static char *pattern(size_t len, unsigned seed)
{
	char *p = xmalloc(len ? len : 1);
	for (size_t i = 0; i < len; i++)
		p[i] = (char)((i * 31 + i / 7 + seed) & 0xff);
	return p;
}

struct mem_sink {
	struct buf b;
};

static int mem_sink_fn(void *ctx, const char *data, size_t len)
{
	struct mem_sink *s = ctx;
	return buf_append(&s->b, data, len);
}

static enum cm_status put_bytes(const char *key, const void *data, size_t len, const struct s3_put_opts *o)
{
	struct s3_body body = { .mem = data, .fd = -1, .len = len };
	struct cm_err err;
	return s3_put_object(client, bucket, key, &body, o, NULL, &err);
}

TEST(head_bucket)
{
	struct cm_err err;
	CHECK_INT(s3_head_bucket(client, bucket, &err), CM_OK);
	CHECK_INT(s3_head_bucket(client, "cm-no-such-bucket-here", &err), CM_E_NO_BUCKET);
}

TEST(put_head_get_with_metadata)
{
	struct s3_meta meta = { 0 };
	struct s3_put_opts o = { .content_type = "text/plain", .meta = &meta };
	struct s3_object_head h;
	struct mem_sink sink = { BUF_INIT };
	struct cm_err err;
	uint64_t got = 0;

	s3_meta_set(&meta, "mode", "33188");
	s3_meta_set(&meta, "mtime", "1700000000");
	REQUIRE(put_bytes("meta/obj.txt", "hello world", 11, &o) == CM_OK);
	REQUIRE(s3_head_object(client, bucket, "meta/obj.txt", &h, &err) == CM_OK);
	CHECK_INT(h.size, 11);
	CHECK_STR(s3_meta_get(&h.meta, "mode"), "33188");
	CHECK_STR(s3_meta_get(&h.meta, "mtime"), "1700000000");
	CHECK(h.content_type && strncmp(h.content_type, "text/plain", 10) == 0);
	CHECK(h.etag && strlen(h.etag) == 32);
	CHECK(h.last_modified.tv_sec > 1700000000);
	s3_object_head_release(&h);
	CHECK_INT(s3_get_object(client, bucket, "meta/obj.txt", 0, UINT64_MAX, mem_sink_fn, &sink, &h, &got, &err), CM_OK);
	CHECK_STR(sink.b.data, "hello world");
	CHECK_INT(got, 11);
	s3_object_head_release(&h);
	s3_meta_release(&meta);
	buf_release(&sink.b);
	CHECK_INT(s3_head_object(client, bucket, "meta/missing", &h, &err), CM_E_NOT_FOUND);
}

TEST(ranged_get)
{
	size_t len = 100000;
	char *data = pattern(len, 3);
	struct mem_sink sink = { BUF_INIT };
	struct s3_object_head h;
	struct cm_err err;
	uint64_t got;

	REQUIRE(put_bytes("range/obj", data, len, NULL) == CM_OK);
	CHECK_INT(s3_get_object(client, bucket, "range/obj", 1000, 5000, mem_sink_fn, &sink, &h, &got, &err), CM_OK);
	CHECK_INT(sink.b.len, 5000);
	CHECK(sink.b.len == 5000 && memcmp(sink.b.data, data + 1000, 5000) == 0);
	CHECK_INT(h.size, len); /* the whole object's size, from Content-Range */
	s3_object_head_release(&h);
	buf_reset(&sink.b);
	/* open range to the end */
	CHECK_INT(s3_get_object(client, bucket, "range/obj", len - 10, UINT64_MAX, mem_sink_fn, &sink, NULL, NULL, &err), CM_OK);
	CHECK(sink.b.len == 10 && memcmp(sink.b.data, data + len - 10, 10) == 0);
	buf_reset(&sink.b);
	/* past the end */
	CHECK_INT(s3_get_object(client, bucket, "range/obj", len + 5, 10, mem_sink_fn, &sink, NULL, NULL, &err), CM_E_RANGE);
	buf_release(&sink.b);
	free(data);
}

static const char *const special_keys[] = {
	"sp/a b.txt", "sp/plus+sign", "sp/percent%20literal", "sp/tilde~x", "sp/eq=x&y",
	"sp/unicode-\xc3\xa9\xe6\x97\xa5\xe6\x9c\xac", "sp/semi;colon:x", "sp/paren(1)[2]{3}",
	"sp/quote'\"", "sp/hash#q?x", "sp/comma,star*", "sp/deep/er/key", "sp/ctrl\x01" "char",
	"sp/dollar$at@", NULL,
};

TEST(special_keys_roundtrip)
{
	struct cm_err err;
	struct s3_list_page page;
	size_t n = 0;

	for (int i = 0; special_keys[i]; i++) {
		/* s3rver stores keys as files: a control character is not something it can hold */
		if (is_s3rver && strchr(special_keys[i], '\x01'))
			continue;
		if (put_bytes(special_keys[i], special_keys[i], strlen(special_keys[i]), NULL) != CM_OK) {
			TH_FAIL_("put %s", special_keys[i]);
			continue;
		}
		n++;
	}
	for (int i = 0; special_keys[i]; i++) {
		struct s3_object_head h;
		struct mem_sink sink = { BUF_INIT };
		if (is_s3rver && strchr(special_keys[i], '\x01'))
			continue;
		if (s3_head_object(client, bucket, special_keys[i], &h, &err) != CM_OK)
			TH_FAIL_("head %s", special_keys[i]);
		else
			s3_object_head_release(&h);
		if (s3_get_object(client, bucket, special_keys[i], 0, UINT64_MAX, mem_sink_fn, &sink, NULL, NULL, &err) != CM_OK ||
		    !sink.b.data || strcmp(sink.b.data, special_keys[i]) != 0)
			TH_FAIL_("get %s", special_keys[i]);
		buf_release(&sink.b);
	}
	REQUIRE(s3_list_objects(client, bucket, "sp/", NULL, NULL, NULL, 0, &page, &err) == CM_OK);
	CHECK_INT(page.n_objects, n);
	for (size_t i = 0; i < page.n_objects; i++) {
		int found = 0;
		for (int k = 0; special_keys[k]; k++)
			found |= strcmp(page.objects[i].key, special_keys[k]) == 0;
		if (!found)
			TH_FAIL_("listed key not one we wrote: %s", page.objects[i].key);
	}
	s3_list_page_release(&page);
	/* prefix with special characters */
	REQUIRE(s3_list_objects(client, bucket, "sp/a b", NULL, NULL, NULL, 0, &page, &err) == CM_OK);
	CHECK_INT(page.n_objects, 1);
	s3_list_page_release(&page);
	REQUIRE(s3_list_objects(client, bucket, "sp/plus+", NULL, NULL, NULL, 0, &page, &err) == CM_OK);
	CHECK_INT(page.n_objects, 1);
	s3_list_page_release(&page);
}

struct put_job {
	int index;
	enum cm_status st;
	pthread_mutex_t *lock;
	pthread_cond_t *cond;
	int *left;
};

static void put_job_run(void *arg)
{
	struct put_job *j = arg;
	char key[64];

	snprintf(key, sizeof(key), "many/d%d/k%04d", j->index % 3, j->index);
	j->st = put_bytes(key, key, strlen(key), NULL);
	pthread_mutex_lock(j->lock);
	(*j->left)--;
	pthread_cond_signal(j->cond);
	pthread_mutex_unlock(j->lock);
}

TEST(listing_1500_keys)
{
	enum { N = 1502 };
	struct put_job *jobs = xcalloc(N, sizeof(*jobs));
	struct workq *wq = workq_create(16);
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
	int left = N, pages = 0, total = 0;
	char *token = NULL, *prev = xstrdup("");
	struct cm_err err;
	int sorted = 1;

	for (int i = 0; i < N; i++) {
		jobs[i] = (struct put_job){ i, CM_OK, &lock, &cond, &left };
		workq_submit(wq, put_job_run, &jobs[i]);
	}
	pthread_mutex_lock(&lock);
	while (left)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	workq_destroy(wq);
	for (int i = 0; i < N; i++)
		if (jobs[i].st != CM_OK)
			TH_FAIL_("put %d: %s", i, cm_status_str(jobs[i].st));
	free(jobs);
	do {
		struct s3_list_page page;
		REQUIRE(s3_list_objects(client, bucket, "many/", NULL, token, NULL, 0, &page, &err) == CM_OK);
		pages++;
		total += (int)page.n_objects;
		for (size_t i = 0; i < page.n_objects; i++) {
			if (strcmp(prev, page.objects[i].key) >= 0)
				sorted = 0;
			free(prev);
			prev = xstrdup(page.objects[i].key);
		}
		free(token);
		token = page.is_truncated && page.next_token ? xstrdup(page.next_token) : NULL;
		s3_list_page_release(&page);
	} while (token && pages < 10);
	free(prev);
	CHECK_INT(total, N);
	CHECK_INT(pages, 2);
	CHECK(sorted);
	{
		/* delimiter: three common prefixes, no objects */
		struct s3_list_page page;
		REQUIRE(s3_list_objects(client, bucket, "many/", "/", NULL, NULL, 0, &page, &err) == CM_OK);
		CHECK_INT(page.n_prefixes, 3);
		CHECK_INT(page.n_objects, 0);
		if (page.n_prefixes == 3) {
			CHECK_STR(page.prefixes[0], "many/d0/");
			CHECK_STR(page.prefixes[2], "many/d2/");
		}
		s3_list_page_release(&page);
		/* max-keys and start-after */
		REQUIRE(s3_list_objects(client, bucket, "many/d1/", NULL, NULL, "many/d1/k0100", 5, &page, &err) == CM_OK);
		CHECK_INT(page.n_objects, 5);
		CHECK(page.is_truncated);
		if (page.n_objects)
			CHECK(strcmp(page.objects[0].key, "many/d1/k0100") > 0);
		s3_list_page_release(&page);
	}
}

TEST(multipart_roundtrip)
{
	size_t part = 5u << 20, len = 2 * part + 12345;
	char *data = pattern(len, 7);
	char *upload_id = NULL, *etags[3] = { 0 }, *final_etag = NULL;
	struct s3_part parts[3];
	struct mem_sink sink = { BUF_INIT };
	struct s3_object_head h;
	struct cm_err err;

	REQUIRE(s3_mpu_create(client, bucket, "mpu/big obj", NULL, &upload_id, &err) == CM_OK);
	for (int i = 0; i < 3; i++) {
		size_t off = (size_t)i * part, n = i < 2 ? part : len - 2 * part;
		struct s3_body body = { .mem = data + off, .fd = -1, .len = n };
		REQUIRE(s3_mpu_upload_part(client, bucket, "mpu/big obj", upload_id, i + 1, &body, &etags[i], &err) == CM_OK);
		parts[i] = (struct s3_part){ i + 1, etags[i] };
	}
	REQUIRE(s3_mpu_complete(client, bucket, "mpu/big obj", upload_id, parts, 3, &final_etag, &err) == CM_OK);
	REQUIRE(s3_head_object(client, bucket, "mpu/big obj", &h, &err) == CM_OK);
	CHECK_INT(h.size, len);
	if (!is_s3rver)
		CHECK(strstr(h.etag, "-3") != NULL); /* AWS-style multipart ETag */
	s3_object_head_release(&h);
	CHECK_INT(s3_get_object(client, bucket, "mpu/big obj", 0, UINT64_MAX, mem_sink_fn, &sink, NULL, NULL, &err), CM_OK);
	CHECK(sink.b.len == len && memcmp(sink.b.data, data, len) == 0);
	buf_release(&sink.b);
	for (int i = 0; i < 3; i++)
		free(etags[i]);
	free(final_etag);
	free(upload_id);
	free(data);
}

TEST(multipart_bad_part_list)
{
	char *upload_id = NULL, *etag = NULL;
	struct s3_body body = { .mem = "tiny", .fd = -1, .len = 4 };
	struct s3_part parts[1];
	struct cm_err err;
	enum cm_status st;

	REQUIRE(s3_mpu_create(client, bucket, "mpu/bad", NULL, &upload_id, &err) == CM_OK);
	REQUIRE(s3_mpu_upload_part(client, bucket, "mpu/bad", upload_id, 1, &body, &etag, &err) == CM_OK);
	parts[0] = (struct s3_part){ 1, "0123456789abcdef0123456789abcdef" }; /* wrong ETag */
	st = s3_mpu_complete(client, bucket, "mpu/bad", upload_id, parts, 1, NULL, &err);
	if (!is_s3rver) {
		/* s3rver does not compare part ETags; a real S3 answers InvalidPart */
		CHECK(st != CM_OK);
		CHECK_INT(err.http_status, 400);
		CHECK_STR(err.code, "InvalidPart");
	}
	st = s3_mpu_abort(client, bucket, "mpu/bad", upload_id, &err);
	if (is_s3rver)
		CHECK_INT(st, CM_E_UNSUPPORTED);
	else
		CHECK_INT(st, CM_OK);
	free(etag);
	free(upload_id);
}

TEST(upload_part_copy)
{
	size_t len = 6u << 20;
	char *data = pattern(len, 11);
	char *upload_id = NULL, *etag1 = NULL, *etag2 = NULL;
	struct s3_part parts[2];
	struct mem_sink sink = { BUF_INIT };
	struct cm_err err;
	enum cm_status st;

	REQUIRE(put_bytes("copy/src", data, len, NULL) == CM_OK);
	REQUIRE(s3_mpu_create(client, bucket, "copy/dst", NULL, &upload_id, &err) == CM_OK);
	st = s3_mpu_upload_part_copy(client, bucket, "copy/dst", upload_id, 1, bucket, "copy/src", 0,
				     (5u << 20) - 1, &etag1, &err);
	if (is_s3rver) {
		CHECK_INT(st, CM_E_UNSUPPORTED); /* s3rver answers 501 */
		goto out;
	}
	REQUIRE(st == CM_OK);
	REQUIRE(s3_mpu_upload_part_copy(client, bucket, "copy/dst", upload_id, 2, bucket, "copy/src", 5u << 20,
					len - 1, &etag2, &err) == CM_OK);
	parts[0] = (struct s3_part){ 1, etag1 };
	parts[1] = (struct s3_part){ 2, etag2 };
	REQUIRE(s3_mpu_complete(client, bucket, "copy/dst", upload_id, parts, 2, NULL, &err) == CM_OK);
	CHECK_INT(s3_get_object(client, bucket, "copy/dst", 0, UINT64_MAX, mem_sink_fn, &sink, NULL, NULL, &err), CM_OK);
	CHECK(sink.b.len == len && memcmp(sink.b.data, data, len) == 0);
out:
	buf_release(&sink.b);
	free(etag1);
	free(etag2);
	free(upload_id);
	free(data);
}

TEST(list_multipart_uploads)
{
	char *upload_id = NULL;
	struct s3_upload_list list;
	struct cm_err err;
	enum cm_status st;
	int found = 0;

	REQUIRE(s3_mpu_create(client, bucket, "pending/upload", NULL, &upload_id, &err) == CM_OK);
	st = s3_mpu_list(client, bucket, "pending/", NULL, NULL, &list, &err);
	if (is_s3rver) {
		CHECK_INT(st, CM_E_UNSUPPORTED);
	} else {
		REQUIRE(st == CM_OK);
		for (size_t i = 0; i < list.n_uploads; i++)
			found |= !strcmp(list.uploads[i].upload_id, upload_id) &&
				 !strcmp(list.uploads[i].key, "pending/upload");
		CHECK(found);
		s3_upload_list_release(&list);
		CHECK_INT(s3_mpu_abort(client, bucket, "pending/upload", upload_id, &err), CM_OK);
		REQUIRE(s3_mpu_list(client, bucket, "pending/", NULL, NULL, &list, &err) == CM_OK);
		CHECK_INT(list.n_uploads, 0);
		s3_upload_list_release(&list);
	}
	free(upload_id);
}

TEST(copy_object_metadata)
{
	struct s3_meta meta = { 0 }, meta2 = { 0 };
	struct s3_put_opts o = { .content_type = "text/x-a", .meta = &meta };
	struct s3_put_opts r = { .content_type = "text/x-b", .meta = &meta2 };
	struct s3_object_head h;
	struct cm_err err;
	char *etag = NULL;

	s3_meta_set(&meta, "mode", "33188");
	s3_meta_set(&meta2, "mode", "33261");
	REQUIRE(put_bytes("cp/a", "payload", 7, &o) == CM_OK);
	REQUIRE(s3_copy_object(client, bucket, "cp/b", bucket, "cp/a", NULL, &etag, &err) == CM_OK);
	CHECK(etag && strlen(etag) == 32);
	free(etag);
	REQUIRE(s3_head_object(client, bucket, "cp/b", &h, &err) == CM_OK);
	CHECK_STR(s3_meta_get(&h.meta, "mode"), "33188");
	CHECK_INT(h.size, 7);
	s3_object_head_release(&h);
	/* metadata-only change in place: REPLACE */
	REQUIRE(s3_copy_object(client, bucket, "cp/a", bucket, "cp/a", &r, NULL, &err) == CM_OK);
	REQUIRE(s3_head_object(client, bucket, "cp/a", &h, &err) == CM_OK);
	CHECK_STR(s3_meta_get(&h.meta, "mode"), "33261");
	CHECK(h.content_type && strncmp(h.content_type, "text/x-b", 8) == 0);
	s3_object_head_release(&h);
	CHECK_INT(s3_copy_object(client, bucket, "cp/c", bucket, "cp/missing", NULL, NULL, &err), CM_E_NOT_FOUND);
	s3_meta_release(&meta);
	s3_meta_release(&meta2);
}

TEST(delete_and_delete_many)
{
	enum { N = 1100 };
	const char **keys = xcalloc(N, sizeof(*keys));
	struct s3_delete_result res;
	struct s3_list_page page;
	struct cm_err err;
	size_t done = 0;

	REQUIRE(put_bytes("del/one", "x", 1, NULL) == CM_OK);
	CHECK_INT(s3_delete_object(client, bucket, "del/one", &err), CM_OK);
	CHECK_INT(s3_delete_object(client, bucket, "del/one", &err), CM_OK); /* already gone */
	for (int i = 0; i < N; i++) {
		char k[32];
		snprintf(k, sizeof(k), "many/d%d/k%04d", i % 3, i);
		keys[i] = xstrdup(k);
	}
	CHECK_INT(s3_delete_objects(client, bucket, keys, 1001, &res, &err), CM_E_INVALID);
	while (done < N) {
		size_t n = N - done > 1000 ? 1000 : N - done;
		REQUIRE(s3_delete_objects(client, bucket, keys + done, n, &res, &err) == CM_OK);
		CHECK_INT(res.n_failures, 0);
		s3_delete_result_release(&res);
		done += n;
	}
	REQUIRE(s3_list_objects(client, bucket, "many/", NULL, NULL, NULL, 0, &page, &err) == CM_OK);
	CHECK_INT(page.n_objects, 1502 - N);
	s3_list_page_release(&page);
	for (int i = 0; i < N; i++)
		free((char *)keys[i]);
	free(keys);
}

TEST(wrong_secret_refused)
{
	struct awscfg cfg = { 0 };
	struct creds_provider *bad;
	struct s3_client_opts so = { 0 };
	struct s3_client *c;
	struct cm_err err;
	struct s3_body body = { .mem = "x", .fd = -1, .len = 1 };
	enum cm_status st;

	if (is_s3rver)
		return; /* s3rver checks no signatures (TESTING.md) */
	cfg.creds.access_key_id = xstrdup(getenv("S3_ACCESS_KEY"));
	cfg.creds.secret_access_key = xstrdup("definitely-not-the-secret");
	cfg.profile = xstrdup("default");
	cfg.region = xstrdup("us-east-1");
	bad = creds_provider_create(&cfg);
	so.endpoint = getenv("S3_ENDPOINT");
	so.region = getenv("S3_REGION");
	so.addressing = S3_ADDR_PATH;
	so.creds = bad;
	so.engine = engine;
	so.sign_payload = -1;
	c = s3_client_create(&so, &err);
	REQUIRE(c != NULL);
	st = s3_put_object(c, bucket, "wrong/secret", &body, NULL, NULL, &err);
	CHECK_INT(st, CM_E_SIGNATURE);
	CHECK_STR(err.code, "SignatureDoesNotMatch");
	CHECK_INT(err.http_status, 403);
	CHECK_INT(s3_head_bucket(c, bucket, &err), CM_E_SIGNATURE);
	s3_client_destroy(c);
	creds_provider_destroy(bad);
	awscfg_release(&cfg);
}

TH_MAIN_BEGIN("s3_ops_test")
	struct awscfg_request req = { .addressing = S3_ADDR_PATH, .endpoint_url = getenv("S3_ENDPOINT"),
				      .region = getenv("S3_REGION") };
	struct awscfg cfg;
	struct s3_client_opts so = { 0 };
	struct cm_err err;
	const char *server = getenv("S3_SERVER");

	if (argc < 2 || !req.endpoint_url) {
		fprintf(stderr, "usage: s3_ops_test BUCKET (with the S3_* environment)\n");
		return 2;
	}
	bucket = argv[1];
	is_s3rver = server && !strcmp(server, "s3rver");
	if (awscfg_load(&req, &cfg, &err) != CM_OK) {
		fprintf(stderr, "config: %s\n", err.message);
		return 2;
	}
	creds = creds_provider_create(&cfg);
	engine = http_engine_create(NULL);
	so.endpoint = cfg.endpoint_url;
	so.region = cfg.region;
	so.addressing = S3_ADDR_PATH;
	so.creds = creds;
	so.engine = engine;
	so.sign_payload = -1;
	client = s3_client_create(&so, &err);
	RUN(head_bucket);
	RUN(put_head_get_with_metadata);
	RUN(ranged_get);
	RUN(special_keys_roundtrip);
	RUN(listing_1500_keys);
	RUN(multipart_roundtrip);
	RUN(multipart_bad_part_list);
	RUN(upload_part_copy);
	RUN(list_multipart_uploads);
	RUN(copy_object_metadata);
	RUN(delete_and_delete_many);
	RUN(wrong_secret_refused);
	s3_client_destroy(client);
	http_engine_destroy(engine);
	creds_provider_destroy(creds);
	awscfg_release(&cfg);
TH_MAIN_END
