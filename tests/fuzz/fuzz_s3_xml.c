/*
 * fuzz_s3_xml.c - libFuzzer target for the S3 XML parsers and builders.
 *
 * Every input is given to every response parser, and what they return is
 * released; sanitizers catch crashes, out-of-bounds reads and leaks. The same
 * bytes, cut at NUL bytes, also become keys for the DeleteObjects builder and
 * ETags for the CompleteMultipartUpload builder, and the first line is parsed
 * as an ISO 8601 time. Checks beyond "no crash" are invariants that hold for
 * any input: a successful list has non-NULL keys and ETags, the builders'
 * reported length is the string's length.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined -Isrc tests/fuzz/fuzz_s3_xml.c \
 *        src/s3/s3_xml.c src/common/status.c -lexpat
 */
#include "s3/s3_xml.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Abort (so the fuzzer reports it) when an invariant does not hold. */
static void require(int cond)
{
	if (!cond)
		abort();
}

/* Run all response parsers on the body and release what they return. */
static void fuzz_parsers(const char *body, size_t len)
{
	struct s3_list_page page;
	struct s3_delete_result del;
	struct s3_upload_list uploads;
	struct cm_err err;
	struct timespec ts;
	char *value = NULL;
	size_t i;

	cm_err_clear(&err);
	if (s3_xml_parse_list(body, len, &page, &err) == CM_OK) {
		for (i = 0; i < page.n_objects; i++)
			require(page.objects[i].key && page.objects[i].etag);
		for (i = 0; i < page.n_prefixes; i++)
			require(page.prefixes[i] != NULL);
	} else {
		require(page.objects == NULL && page.n_objects == 0);
	}
	s3_list_page_release(&page);

	cm_err_clear(&err);
	s3_xml_parse_error(body, len, &err);
	require(memchr(err.code, '\0', sizeof(err.code)) != NULL);
	require(memchr(err.message, '\0', sizeof(err.message)) != NULL);
	require(memchr(err.request_id, '\0', sizeof(err.request_id)) != NULL);
	s3_xml_is_error(body, len);

	if (s3_xml_parse_initiate(body, len, &value, &err) == CM_OK)
		require(value && value[0]);
	else
		require(value == NULL);
	free(value);

	if (s3_xml_parse_etag_result(body, len, &value, &ts, &err) == CM_OK)
		require(value != NULL);
	else
		require(value == NULL);
	free(value);

	if (s3_xml_parse_delete_result(body, len, &del, &err) == CM_OK) {
		for (i = 0; i < del.n_failures; i++)
			require(del.failures[i].key && del.failures[i].code &&
				del.failures[i].message);
	}
	s3_delete_result_release(&del);

	if (s3_xml_parse_uploads(body, len, &uploads, &err) == CM_OK) {
		for (i = 0; i < uploads.n_uploads; i++)
			require(uploads.uploads[i].key && uploads.uploads[i].upload_id);
	}
	s3_upload_list_release(&uploads);
}

/* Cut a NUL-terminated copy of the input into strings and feed the builders. */
static void fuzz_builders(const char *copy, size_t size)
{
	const char *keys[64];
	struct s3_part parts[64];
	size_t n = 0, off = 0, len = 0;
	char *xml;

	while (off <= size && n < 64) {
		keys[n] = copy + off;
		parts[n].number = (int)n + 1;
		parts[n].etag = copy + off;
		n++;
		off += strlen(copy + off) + 1;
	}
	xml = s3_xml_build_delete(keys, n, &len);
	require(xml && strlen(xml) == len);
	free(xml);
	xml = s3_xml_build_complete(parts, n, &len);
	require(xml && strlen(xml) == len);
	free(xml);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct timespec ts;
	char *copy;
	char *newline;

	fuzz_parsers((const char *)data, size);

	copy = malloc(size + 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	fuzz_builders(copy, size);
	newline = strchr(copy, '\n');
	if (newline)
		*newline = '\0';
	if (s3_parse_iso8601(copy, &ts) == 0)
		require(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000);
	free(copy);
	return 0;
}
