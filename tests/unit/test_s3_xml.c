/*
 * test_s3_xml.c - unit tests of the S3 XML parsers and builders (s3/s3_xml.c).
 *
 * Every response type is parsed from realistic bodies in AWS's form (xmlns,
 * quoted ETags as &quot;) and radosgw's (unquoted ETags, empty <Message/>),
 * then from broken and hostile ones: every truncation of each sample, DOCTYPE
 * and entity tricks, deep nesting, huge values, bad numbers and escapes. The
 * builders' output is compared byte for byte and parsed back with expat.
 * Truncated inputs are passed in buffers of exactly their length so that
 * AddressSanitizer catches any read past the end.
 */
#include "s3/s3_xml.h"

#include <expat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tharness.h"

#define XMLNS "http://s3.amazonaws.com/doc/2006-03-01/"

/* A string literal as the (body, len) pair the parsers take. */
#define LIT(s) (s), (sizeof(s) - 1)

/* ---- samples ---- */

static const char list_aws[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<ListBucketResult xmlns=\"" XMLNS "\">"
	"<Name>bucket</Name><Prefix>photos/</Prefix><KeyCount>2</KeyCount>"
	"<MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>"
	"<Contents><Key>photos/a.jpg</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>"
	"<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>"
	"<StorageClass>STANDARD</StorageClass></Contents>"
	"<Contents><Key>photos/b &amp; c.txt</Key>"
	"<LastModified>2023-01-02T03:04:05.123Z</LastModified>"
	"<ETag>\"d41d8cd98f00b204e9800998ecf8427e-2\"</ETag><Size>0</Size>"
	"<Owner><ID>abc</ID><DisplayName>me</DisplayName></Owner>"
	"<StorageClass>GLACIER</StorageClass></Contents>"
	"<CommonPrefixes><Prefix>photos/2023/</Prefix></CommonPrefixes>"
	"<CommonPrefixes><Prefix>photos/2024/</Prefix></CommonPrefixes>"
	"<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
	"<StartAfter>photos/</StartAfter>"
	"</ListBucketResult>";

static const char list_rgw[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
	"<ListBucketResult>"
	"<Name>bucket</Name><Prefix></Prefix><MaxKeys>1000</MaxKeys>"
	"<IsTruncated>false</IsTruncated>"
	"<Contents><Key>dir/file</Key><LastModified>2024-05-06T07:08:09.000Z</LastModified>"
	"<ETag>0123456789abcdef0123456789abcdef</ETag><Size>12</Size>"
	"<StorageClass>STANDARD</StorageClass><Type>Normal</Type></Contents>"
	"<KeyCount>1</KeyCount>"
	"</ListBucketResult>";

static const char list_url[] =
	"<ListBucketResult xmlns=\"" XMLNS "\">"
	"<Name>b</Name><Prefix>a%2Bb</Prefix><StartAfter>a+b%2Fx</StartAfter>"
	"<KeyCount>6</KeyCount><IsTruncated>false</IsTruncated>"
	"<Contents><Key>with+space</Key><Size>1</Size></Contents>"
	"<Contents><Key>plus%2Bsign</Key><Size>2</Size></Contents>"
	"<Contents><Key>100%25</Key><Size>3</Size></Contents>"
	"<Contents><Key>caf%C3%A9</Key><Size>4</Size></Contents>"
	"<Contents><Key>ctl%01%1f%7F</Key><Size>5</Size></Contents>"
	"<Contents><Key>amp%26lt%3C</Key><Size>6</Size></Contents>"
	"<CommonPrefixes><Prefix>dir+one%2F</Prefix></CommonPrefixes>"
	"<NextContinuationToken>tok+en%2B</NextContinuationToken>"
	"<EncodingType>url</EncodingType>"
	"</ListBucketResult>";

static const char error_aws[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<Error><Code>NoSuchKey</Code><Message>The resource you requested does not exist</Message>"
	"<Resource>/mybucket/myfoto.jpg</Resource><RequestId>4442587FB7D0A2F9</RequestId>"
	"<HostId>ZnVubnkgaG9zdA==</HostId></Error>";

static const char error_rgw[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchBucket</Code>"
	"<Message></Message><BucketName>nob</BucketName>"
	"<RequestId>tx000001-0065-default</RequestId><HostId>abc-default-default</HostId></Error>";

static const char initiate_aws[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<InitiateMultipartUploadResult xmlns=\"" XMLNS "\">"
	"<Bucket>example-bucket</Bucket><Key>example-object</Key>"
	"<UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>"
	"</InitiateMultipartUploadResult>";

static const char complete_aws[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<CompleteMultipartUploadResult xmlns=\"" XMLNS "\">"
	"<Location>http://b.s3.amazonaws.com/k</Location><Bucket>b</Bucket><Key>k</Key>"
	"<ETag>&quot;3858f62230ac3c915f300c664312c11f-9&quot;</ETag>"
	"</CompleteMultipartUploadResult>";

static const char complete_rgw[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?><CompleteMultipartUploadResult "
	"xmlns=\"" XMLNS "\"><Location>b/k</Location><Bucket>b</Bucket><Key>k</Key>"
	"<ETag></ETag></CompleteMultipartUploadResult>";

static const char copy_object[] =
	"<CopyObjectResult><LastModified>2009-10-28T22:32:00.000Z</LastModified>"
	"<ETag>\"9b2cf535f27731c974343645a3985328\"</ETag></CopyObjectResult>";

static const char copy_part_rgw[] =
	"<CopyPartResult xmlns=\"" XMLNS "\"><LastModified>2011-04-11T20:34:56+00:00</LastModified>"
	"<ETag>b20b0f82b1c1d8f3a1a8c3d3a1a8c3d3</ETag></CopyPartResult>";

static const char delete_aws[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<DeleteResult xmlns=\"" XMLNS "\">"
	"<Deleted><Key>sample1.txt</Key></Deleted>"
	"<Error><Key>sample2.txt</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
	"<Deleted><Key>a &amp; b</Key><DeleteMarker>true</DeleteMarker>"
	"<DeleteMarkerVersionId>xyz</DeleteMarkerVersionId></Deleted>"
	"<Error><Key>x</Key><Code>InternalError</Code></Error>"
	"</DeleteResult>";

static const char uploads_aws[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<ListMultipartUploadsResult xmlns=\"" XMLNS "\">"
	"<Bucket>bucket</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>"
	"<NextKeyMarker>my-movie.m2ts</NextKeyMarker>"
	"<NextUploadIdMarker>YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ</NextUploadIdMarker>"
	"<MaxUploads>3</MaxUploads><IsTruncated>true</IsTruncated>"
	"<Upload><Key>my-divisor</Key>"
	"<UploadId>XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw</UploadId>"
	"<Initiator><ID>arn:aws:iam::111122223333:user/user1</ID></Initiator>"
	"<Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID></Owner>"
	"<StorageClass>STANDARD</StorageClass>"
	"<Initiated>2010-11-10T20:48:33.000Z</Initiated></Upload>"
	"<Upload><Key>my-movie.m2ts</Key>"
	"<UploadId>VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>"
	"<Initiated>2010-11-10T20:48:33.000Z</Initiated></Upload>"
	"</ListMultipartUploadsResult>";

/* ---- helpers ---- */

/* Run every parser on body; used on broken input, where only "no crash" counts. */
static void parse_everything(const char *body, size_t len)
{
	struct s3_list_page page;
	struct s3_delete_result del;
	struct s3_upload_list ups;
	struct cm_err err;
	struct timespec ts;
	char *s = NULL;

	cm_err_clear(&err);
	s3_xml_parse_list(body, len, &page, &err);
	s3_list_page_release(&page);
	s3_xml_parse_error(body, len, &err);
	s3_xml_is_error(body, len);
	s3_xml_parse_initiate(body, len, &s, &err);
	free(s);
	s3_xml_parse_etag_result(body, len, &s, &ts, &err);
	free(s);
	s3_xml_parse_delete_result(body, len, &del, &err);
	s3_delete_result_release(&del);
	s3_xml_parse_uploads(body, len, &ups, &err);
	s3_upload_list_release(&ups);
}

/* Parse a list body given as a C string; returns the status. */
static enum cm_status list_str(const char *body, struct s3_list_page *page, struct cm_err *err)
{
	cm_err_clear(err);
	return s3_xml_parse_list(body, strlen(body), page, err);
}

/* Whether a page is all zero (as after a failed parse or a release). */
static int page_is_zero(const struct s3_list_page *page)
{
	return !page->objects && !page->n_objects && !page->prefixes && !page->n_prefixes &&
	       !page->next_token && !page->start_after && !page->is_truncated;
}

/* Build "<ListBucketResult><Contents><Key>KEY</Key><Size>SIZE</Size></Contents>...". */
static char *one_object_list(const char *key, const char *size, const char *extra)
{
	char *body = NULL;

	if (asprintf(&body, "<ListBucketResult><Contents><Key>%s</Key><Size>%s</Size>"
		     "</Contents>%s</ListBucketResult>", key, size, extra) < 0)
		abort();
	return body;
}

/* Collects the text of one element name of a document parsed with expat. */
struct collect {
	const char *name;
	char texts[16][256];
	size_t n;
	int in;
};

static void collect_start(void *user, const XML_Char *name, const XML_Char **attrs)
{
	struct collect *c = user;

	(void)attrs;
	if (strcmp(name, c->name) == 0 && c->n < 16) {
		c->in = 1;
		c->texts[c->n][0] = '\0';
	}
}

static void collect_end(void *user, const XML_Char *name)
{
	struct collect *c = user;

	if (c->in && strcmp(name, c->name) == 0) {
		c->in = 0;
		c->n++;
	}
}

static void collect_text(void *user, const XML_Char *s, int len)
{
	struct collect *c = user;
	size_t have;

	if (!c->in)
		return;
	have = strlen(c->texts[c->n]);
	if (have + (size_t)len < sizeof(c->texts[0])) {
		memcpy(c->texts[c->n] + have, s, (size_t)len);
		c->texts[c->n][have + (size_t)len] = '\0';
	}
}

/* Parse doc with plain expat and collect the texts of elements called name. */
static int collect_texts(const char *doc, size_t len, const char *name, struct collect *c)
{
	XML_Parser p = XML_ParserCreate(NULL);
	int ok;

	memset(c, 0, sizeof(*c));
	c->name = name;
	XML_SetUserData(p, c);
	XML_SetElementHandler(p, collect_start, collect_end);
	XML_SetCharacterDataHandler(p, collect_text);
	ok = XML_Parse(p, doc, (int)len, 1) == XML_STATUS_OK;
	XML_ParserFree(p);
	return ok;
}

/* ---- ListObjectsV2 ---- */

TEST(list_aws_page)
{
	struct s3_list_page page;
	struct cm_err err;

	REQUIRE(list_str(list_aws, &page, &err) == CM_OK);
	REQUIRE(page.n_objects == 2);
	CHECK_STR(page.objects[0].key, "photos/a.jpg");
	CHECK_INT(page.objects[0].size, 434234);
	CHECK_STR(page.objects[0].etag, "fba9dede5f27731c9771645a39863328");
	CHECK_INT(page.objects[0].last_modified.tv_sec, 1255369830);
	CHECK_INT(page.objects[0].last_modified.tv_nsec, 0);
	CHECK_STR(page.objects[0].storage_class, "STANDARD");
	CHECK_STR(page.objects[1].key, "photos/b & c.txt");
	CHECK_INT(page.objects[1].size, 0);
	CHECK_STR(page.objects[1].etag, "d41d8cd98f00b204e9800998ecf8427e-2");
	CHECK_INT(page.objects[1].last_modified.tv_nsec, 123000000);
	CHECK_STR(page.objects[1].storage_class, "GLACIER");
	REQUIRE(page.n_prefixes == 2);
	CHECK_STR(page.prefixes[0], "photos/2023/");
	CHECK_STR(page.prefixes[1], "photos/2024/");
	CHECK_INT(page.is_truncated, 1);
	CHECK_STR(page.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
	CHECK_STR(page.start_after, "photos/");
	CHECK_INT(page.key_count, 2);
	s3_list_page_release(&page);
	CHECK(page_is_zero(&page));
	s3_list_page_release(&page);
	s3_list_page_release(NULL);
}

TEST(list_rgw_page)
{
	struct s3_list_page page;
	struct cm_err err;

	REQUIRE(list_str(list_rgw, &page, &err) == CM_OK);
	REQUIRE(page.n_objects == 1);
	CHECK_STR(page.objects[0].key, "dir/file");
	CHECK_STR(page.objects[0].etag, "0123456789abcdef0123456789abcdef");
	CHECK_INT(page.objects[0].size, 12);
	CHECK_INT(page.n_prefixes, 0);
	CHECK_INT(page.is_truncated, 0);
	CHECK(page.next_token == NULL);
	CHECK(page.start_after == NULL);
	CHECK_INT(page.key_count, 1);
	s3_list_page_release(&page);
}

TEST(list_namespace_prefix)
{
	struct s3_list_page page;
	struct cm_err err;
	static const char body[] =
		"<s3:ListBucketResult xmlns:s3=\"" XMLNS "\"><s3:Contents><s3:Key>k</s3:Key>"
		"<s3:Size>7</s3:Size><s3:ETag>e</s3:ETag></s3:Contents></s3:ListBucketResult>";

	REQUIRE(list_str(body, &page, &err) == CM_OK);
	REQUIRE(page.n_objects == 1);
	CHECK_STR(page.objects[0].key, "k");
	CHECK_INT(page.objects[0].size, 7);
	CHECK_STR(page.objects[0].etag, "e");
	CHECK(page.objects[0].storage_class == NULL);
	CHECK_INT(page.objects[0].last_modified.tv_sec, 0);
	s3_list_page_release(&page);
}

TEST(list_empty)
{
	struct s3_list_page page;
	struct cm_err err;
	static const char body[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"" XMLNS "\">"
		"<Name>b</Name><Prefix>nothing/</Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys>"
		"<IsTruncated>false</IsTruncated></ListBucketResult>\n";

	REQUIRE(list_str(body, &page, &err) == CM_OK);
	CHECK_INT(page.n_objects, 0);
	CHECK(page.objects == NULL);
	CHECK_INT(page.n_prefixes, 0);
	CHECK_INT(page.key_count, 0);
	CHECK_INT(page.is_truncated, 0);
	s3_list_page_release(&page);

	REQUIRE(list_str("<ListBucketResult/>", &page, &err) == CM_OK);
	CHECK_INT(page.key_count, -1);
	CHECK(page_is_zero(&page));
	s3_list_page_release(&page);
}

TEST(list_url_encoded)
{
	struct s3_list_page page;
	struct cm_err err;

	REQUIRE(list_str(list_url, &page, &err) == CM_OK);
	REQUIRE(page.n_objects == 6);
	CHECK_STR(page.objects[0].key, "with space");
	CHECK_STR(page.objects[1].key, "plus+sign");
	CHECK_STR(page.objects[2].key, "100%");
	CHECK_STR(page.objects[3].key, "caf\xC3\xA9");
	CHECK_STR(page.objects[4].key, "ctl\x01\x1f\x7f");
	CHECK_STR(page.objects[5].key, "amp&lt<");
	CHECK_STR(page.objects[0].etag, "");
	REQUIRE(page.n_prefixes == 1);
	CHECK_STR(page.prefixes[0], "dir one/");
	CHECK_STR(page.start_after, "a b/x");
	/* The continuation token is opaque: never decoded. */
	CHECK_STR(page.next_token, "tok+en%2B");
	s3_list_page_release(&page);
}

TEST(list_not_encoded_keeps_plus)
{
	struct s3_list_page page;
	struct cm_err err;
	char *body = one_object_list("a+b%20c", "1", "");

	REQUIRE(list_str(body, &page, &err) == CM_OK);
	REQUIRE(page.n_objects == 1);
	CHECK_STR(page.objects[0].key, "a+b%20c");
	s3_list_page_release(&page);
	free(body);
}

TEST(list_bad_url_encoding)
{
	static const char *const bad[] = { "%", "a%2", "%zz", "%2g", "ab%", "%00", "x%00y" };
	struct s3_list_page page;
	struct cm_err err;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *body = one_object_list(bad[i], "1", "<EncodingType>url</EncodingType>");

		CHECK_INT(list_str(body, &page, &err), CM_E_PROTOCOL);
		CHECK(strstr(err.message, "URL encoding") != NULL);
		CHECK(page_is_zero(&page));
		free(body);
	}
	/* Bad escapes in a prefix or StartAfter too. */
	CHECK_INT(list_str("<ListBucketResult><CommonPrefixes><Prefix>%G0</Prefix></CommonPrefixes>"
			   "<EncodingType>url</EncodingType></ListBucketResult>", &page, &err),
		  CM_E_PROTOCOL);
	CHECK_INT(list_str("<ListBucketResult><EncodingType>url</EncodingType>"
			   "<StartAfter>%%</StartAfter></ListBucketResult>", &page, &err),
		  CM_E_PROTOCOL);
	/* Without EncodingType nothing is decoded, so nothing is malformed. */
	{
		char *body = one_object_list("%zz", "1", "");

		CHECK_INT(list_str(body, &page, &err), CM_OK);
		s3_list_page_release(&page);
		free(body);
	}
}

TEST(list_unknown_encoding)
{
	struct s3_list_page page;
	struct cm_err err;
	char *body = one_object_list("k", "1", "<EncodingType>base64</EncodingType>");

	CHECK_INT(list_str(body, &page, &err), CM_E_PROTOCOL);
	CHECK(strstr(err.message, "EncodingType") != NULL);
	free(body);
}

TEST(list_sizes)
{
	static const char *const bad[] = {
		"", " ", "12a", "-1", "+1", "1.5", "0x10", "1e3",
		"18446744073709551616", "99999999999999999999999", "184467440737095516150",
	};
	struct s3_list_page page;
	struct cm_err err;
	char *body;
	size_t i;

	body = one_object_list("k", "18446744073709551615", "");
	REQUIRE(list_str(body, &page, &err) == CM_OK);
	CHECK(page.objects[0].size == UINT64_MAX);
	s3_list_page_release(&page);
	free(body);

	body = one_object_list("k", " 5\n", "");
	REQUIRE(list_str(body, &page, &err) == CM_OK);
	CHECK_INT(page.objects[0].size, 5);
	s3_list_page_release(&page);
	free(body);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		body = one_object_list("k", bad[i], "");
		CHECK_INT(list_str(body, &page, &err), CM_E_PROTOCOL);
		CHECK(strstr(err.message, "Size") != NULL);
		CHECK(page_is_zero(&page));
		free(body);
	}
}

TEST(list_bad_fields)
{
	static const char *const bad[] = {
		"<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>",
		"<ListBucketResult><CommonPrefixes></CommonPrefixes></ListBucketResult>",
		"<ListBucketResult><IsTruncated>yes</IsTruncated></ListBucketResult>",
		"<ListBucketResult><IsTruncated></IsTruncated></ListBucketResult>",
		"<ListBucketResult><KeyCount>2147483648</KeyCount></ListBucketResult>",
		"<ListBucketResult><KeyCount>-1</KeyCount></ListBucketResult>",
		"<ListBucketResult><Contents><Key>k</Key><Size>1</Size>"
		"<LastModified>yesterday</LastModified></Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>k</Key><Size>1</Size>"
		"<LastModified>2009-02-30T00:00:00Z</LastModified></Contents></ListBucketResult>",
	};
	struct s3_list_page page;
	struct cm_err err;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_INT(list_str(bad[i], &page, &err), CM_E_PROTOCOL);
		CHECK(err.message[0] != '\0');
		CHECK(page_is_zero(&page));
	}
	/* Duplicated fields: the last one wins, nothing leaks. */
	REQUIRE(list_str("<ListBucketResult><Contents><Key>a</Key><Key>b</Key><Size>1</Size>"
			 "<ETag>x</ETag><ETag>y</ETag></Contents><NextContinuationToken>t1"
			 "</NextContinuationToken><NextContinuationToken>t2</NextContinuationToken>"
			 "</ListBucketResult>", &page, &err) == CM_OK);
	CHECK_STR(page.objects[0].key, "b");
	CHECK_STR(page.objects[0].etag, "y");
	CHECK_STR(page.next_token, "t2");
	s3_list_page_release(&page);
}

TEST(list_wrong_root)
{
	struct s3_list_page page;
	struct cm_err err;

	CHECK_INT(list_str(error_aws, &page, &err), CM_E_PROTOCOL);
	CHECK(strstr(err.message, "Error") != NULL);
	CHECK(strstr(err.message, "ListBucketResult") != NULL);
	CHECK_INT(list_str("<ListAllMyBucketsResult/>", &page, &err), CM_E_PROTOCOL);
	CHECK_INT(list_str("", &page, &err), CM_E_PROTOCOL);
	CHECK_INT(list_str("not xml at all", &page, &err), CM_E_PROTOCOL);
	CHECK_INT(list_str("<html><body>502 Bad Gateway</body></html>", &page, &err),
		  CM_E_PROTOCOL);
	cm_err_clear(&err);
	CHECK_INT(s3_xml_parse_list(NULL, 0, &page, &err), CM_E_PROTOCOL);
}

TEST(list_many_objects)
{
	size_t n = 1000, i, cap = n * 80 + 100, used = 0;
	char *body = malloc(cap);
	struct s3_list_page page;
	struct cm_err err;
	int ok = 1;

	REQUIRE(body);
	used += (size_t)snprintf(body + used, cap - used, "<ListBucketResult xmlns=\"%s\">", XMLNS);
	for (i = 0; i < n; i++)
		used += (size_t)snprintf(body + used, cap - used,
					 "<Contents><Key>k%05zu</Key><Size>%zu</Size></Contents>\n",
					 i, i * 3);
	used += (size_t)snprintf(body + used, cap - used, "</ListBucketResult>");
	REQUIRE(used < cap);
	cm_err_clear(&err);
	REQUIRE(s3_xml_parse_list(body, used, &page, &err) == CM_OK);
	REQUIRE(page.n_objects == n);
	for (i = 0; i < n; i++) {
		char want[16];

		snprintf(want, sizeof(want), "k%05zu", i);
		if (strcmp(page.objects[i].key, want) != 0 || page.objects[i].size != i * 3)
			ok = 0;
	}
	CHECK(ok);
	s3_list_page_release(&page);
	free(body);
}

/* ---- Error ---- */

TEST(error_aws_body)
{
	struct cm_err err;

	cm_err_clear(&err);
	REQUIRE(s3_xml_parse_error(error_aws, strlen(error_aws), &err) == CM_OK);
	CHECK_STR(err.code, "NoSuchKey");
	CHECK_STR(err.message, "The resource you requested does not exist");
	CHECK_STR(err.request_id, "4442587FB7D0A2F9");
	CHECK_INT(s3_xml_parse_error(error_aws, strlen(error_aws), NULL), CM_OK);
}

TEST(error_rgw_empty_message)
{
	struct cm_err err;

	cm_err_clear(&err);
	snprintf(err.message, sizeof(err.message), "HTTP 404");
	REQUIRE(s3_xml_parse_error(error_rgw, strlen(error_rgw), &err) == CM_OK);
	CHECK_STR(err.code, "NoSuchBucket");
	CHECK_STR(err.message, "HTTP 404");     /* an empty Message keeps ours */
	CHECK_STR(err.request_id, "tx000001-0065-default");

	cm_err_clear(&err);
	REQUIRE(s3_xml_parse_error(LIT("<Error><Code>SlowDown</Code><Message/></Error>"),
				   &err) == CM_OK);
	CHECK_STR(err.code, "SlowDown");
	CHECK_STR(err.message, "");
	CHECK_STR(err.request_id, "");
}

TEST(error_long_fields_cut)
{
	char body[1200];
	char code[200];
	struct cm_err err;

	/* 199 bytes of 'é' (2 bytes each) and one 'x': cut on a character boundary. */
	memset(code, 0, sizeof(code));
	for (size_t i = 0; i + 2 < sizeof(code); i += 2)
		memcpy(code + i, "\xC3\xA9", 2);
	snprintf(body, sizeof(body), "<Error xmlns=\"%s\"><Code>%s</Code></Error>", XMLNS, code);
	cm_err_clear(&err);
	REQUIRE(s3_xml_parse_error(body, strlen(body), &err) == CM_OK);
	CHECK_INT(strlen(err.code), 62);
	CHECK(memcmp(err.code, code, 62) == 0);
}

TEST(error_not_error_untouched)
{
	static const char *const bodies[] = {
		list_rgw, "", "<Error><Code>x</Code>", "garbage", "<NotError/>",
		"<!DOCTYPE Error><Error><Code>x</Code></Error>",
	};
	struct cm_err err, before;
	size_t i;

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		cm_err_clear(&err);
		err.status = CM_E_TRANSIENT;
		err.http_status = 500;
		snprintf(err.code, sizeof(err.code), "keep");
		snprintf(err.message, sizeof(err.message), "mine");
		before = err;
		CHECK_INT(s3_xml_parse_error(bodies[i], strlen(bodies[i]), &err), CM_E_PROTOCOL);
		CHECK(memcmp(&err, &before, sizeof(err)) == 0);
	}
}

TEST(is_error)
{
	CHECK(s3_xml_is_error(error_aws, strlen(error_aws)));
	CHECK(s3_xml_is_error(error_rgw, strlen(error_rgw)));
	/* S3's keep-alive spaces before the declaration of a 200-with-error answer. */
	CHECK(s3_xml_is_error(LIT("\n\n  <?xml version=\"1.0\"?>\n<Error/>")));
	CHECK(s3_xml_is_error(LIT("<?xml version=\"1.0\"?>\n  \n<Error/>")));
	CHECK(s3_xml_is_error(LIT("  \r\n<Error></Error>")));
	CHECK(s3_xml_is_error(LIT("<!-- hi --><Error xmlns=\"" XMLNS "\"><Code>x</Code></Error>")));
	CHECK(s3_xml_is_error(LIT("<Error><Code>InternalError</Code>")));  /* root is Error */
	CHECK(!s3_xml_is_error(complete_aws, strlen(complete_aws)));
	CHECK(!s3_xml_is_error(list_aws, strlen(list_aws)));
	CHECK(!s3_xml_is_error(LIT("")));
	CHECK(!s3_xml_is_error(NULL, 0));
	CHECK(!s3_xml_is_error(LIT("<Err")));
	CHECK(!s3_xml_is_error(LIT("<Errors/>")));
	CHECK(!s3_xml_is_error(LIT("Error")));
	CHECK(!s3_xml_is_error(LIT("<!DOCTYPE Error><Error/>")));
}

/* ---- Initiate, Complete, Copy ---- */

TEST(initiate)
{
	struct cm_err err;
	char *id = (char *)1;

	cm_err_clear(&err);
	REQUIRE(s3_xml_parse_initiate(initiate_aws, strlen(initiate_aws), &id, &err) == CM_OK);
	CHECK_STR(id, "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA");
	free(id);

	id = (char *)1;
	CHECK_INT(s3_xml_parse_initiate(LIT("<InitiateMultipartUploadResult><Bucket>b</Bucket>"
					"</InitiateMultipartUploadResult>"), &id, &err),
		  CM_E_PROTOCOL);
	CHECK(id == NULL);
	CHECK(strstr(err.message, "UploadId") != NULL);
	CHECK_INT(s3_xml_parse_initiate(LIT("<InitiateMultipartUploadResult><UploadId></UploadId>"
					"</InitiateMultipartUploadResult>"), &id, &err),
		  CM_E_PROTOCOL);
	CHECK_INT(s3_xml_parse_initiate(error_aws, strlen(error_aws), &id, &err), CM_E_PROTOCOL);
	CHECK(id == NULL);
}

TEST(etag_results)
{
	struct cm_err err;
	struct timespec ts;
	char *etag = NULL;

	cm_err_clear(&err);
	REQUIRE(s3_xml_parse_etag_result(complete_aws, strlen(complete_aws), &etag, &ts, &err) ==
		CM_OK);
	CHECK_STR(etag, "3858f62230ac3c915f300c664312c11f-9");
	CHECK_INT(ts.tv_sec, 0);
	CHECK_INT(ts.tv_nsec, 0);
	free(etag);

	{
		static const char spaced[] = "        \n   <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			"<CompleteMultipartUploadResult><ETag>&quot;e-2&quot;</ETag>"
			"</CompleteMultipartUploadResult>";

		REQUIRE(s3_xml_parse_etag_result(LIT(spaced), &etag, NULL, &err) == CM_OK);
		CHECK_STR(etag, "e-2");
		free(etag);
	}

	REQUIRE(s3_xml_parse_etag_result(complete_rgw, strlen(complete_rgw), &etag, NULL, &err) ==
		CM_OK);
	CHECK_STR(etag, "");
	free(etag);

	REQUIRE(s3_xml_parse_etag_result(copy_object, strlen(copy_object), &etag, &ts, &err) ==
		CM_OK);
	CHECK_STR(etag, "9b2cf535f27731c974343645a3985328");
	CHECK_INT(ts.tv_sec, 1256769120);
	free(etag);

	REQUIRE(s3_xml_parse_etag_result(copy_part_rgw, strlen(copy_part_rgw), &etag, &ts, &err) ==
		CM_OK);
	CHECK_STR(etag, "b20b0f82b1c1d8f3a1a8c3d3a1a8c3d3");
	CHECK_INT(ts.tv_sec, 1302554096);
	free(etag);

	REQUIRE(s3_xml_parse_etag_result(LIT("<CopyObjectResult/>"), &etag, &ts, &err) == CM_OK);
	CHECK_STR(etag, "");
	free(etag);

	/* A lone quote is not a pair of surrounding quotes. */
	REQUIRE(s3_xml_parse_etag_result(LIT("<CopyObjectResult><ETag>\"</ETag></CopyObjectResult>"),
					 &etag, &ts, &err) == CM_OK);
	CHECK_STR(etag, "\"");
	free(etag);

	/* 200 OK with an error inside: the wrong root is refused. */
	CHECK_INT(s3_xml_parse_etag_result(error_aws, strlen(error_aws), &etag, &ts, &err),
		  CM_E_PROTOCOL);
	CHECK(etag == NULL);
	CHECK_INT(s3_xml_parse_etag_result(LIT("<CopyObjectResult><LastModified>x</LastModified>"
					   "</CopyObjectResult>"), &etag, &ts, &err),
		  CM_E_PROTOCOL);
	CHECK(etag == NULL);
}

/* ---- DeleteResult ---- */

TEST(delete_result)
{
	struct s3_delete_result res;
	struct cm_err err;

	cm_err_clear(&err);
	REQUIRE(s3_xml_parse_delete_result(delete_aws, strlen(delete_aws), &res, &err) == CM_OK);
	CHECK_INT(res.n_deleted, 2);
	REQUIRE(res.n_failures == 2);
	CHECK_STR(res.failures[0].key, "sample2.txt");
	CHECK_STR(res.failures[0].code, "AccessDenied");
	CHECK_STR(res.failures[0].message, "Access Denied");
	CHECK_STR(res.failures[1].key, "x");
	CHECK_STR(res.failures[1].code, "InternalError");
	CHECK_STR(res.failures[1].message, "");
	s3_delete_result_release(&res);
	CHECK(res.failures == NULL && res.n_failures == 0 && res.n_deleted == 0);
	s3_delete_result_release(&res);
	s3_delete_result_release(NULL);

	/* Quiet mode with everything deleted: radosgw answers an empty result. */
	REQUIRE(s3_xml_parse_delete_result(LIT("<DeleteResult xmlns=\"" XMLNS "\"/>"), &res, &err) ==
		CM_OK);
	CHECK_INT(res.n_deleted, 0);
	CHECK_INT(res.n_failures, 0);
	s3_delete_result_release(&res);

	CHECK_INT(s3_xml_parse_delete_result(error_aws, strlen(error_aws), &res, &err),
		  CM_E_PROTOCOL);
	CHECK(res.failures == NULL && res.n_failures == 0);
}

/* ---- ListMultipartUploads ---- */

TEST(uploads)
{
	struct s3_upload_list list;
	struct cm_err err;

	cm_err_clear(&err);
	REQUIRE(s3_xml_parse_uploads(uploads_aws, strlen(uploads_aws), &list, &err) == CM_OK);
	REQUIRE(list.n_uploads == 2);
	CHECK_STR(list.uploads[0].key, "my-divisor");
	CHECK_STR(list.uploads[0].upload_id, "XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw");
	CHECK_INT(list.uploads[0].initiated.tv_sec, 1289422113);
	CHECK_STR(list.uploads[1].key, "my-movie.m2ts");
	CHECK_INT(list.is_truncated, 1);
	CHECK_STR(list.next_key_marker, "my-movie.m2ts");
	CHECK_STR(list.next_upload_id_marker, "YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ");
	s3_upload_list_release(&list);
	CHECK(list.uploads == NULL && list.n_uploads == 0 && !list.next_key_marker);
	s3_upload_list_release(&list);
	s3_upload_list_release(NULL);

	REQUIRE(s3_xml_parse_uploads(LIT("<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>"
				     "</ListMultipartUploadsResult>"), &list, &err) == CM_OK);
	CHECK_INT(list.n_uploads, 0);
	CHECK(list.next_key_marker == NULL);
	CHECK(list.next_upload_id_marker == NULL);
	s3_upload_list_release(&list);

	REQUIRE(s3_xml_parse_uploads(LIT("<ListMultipartUploadsResult><EncodingType>url</EncodingType>"
				     "<Upload><Key>a+b%2B</Key><UploadId>u</UploadId></Upload>"
				     "<NextKeyMarker>c%20d</NextKeyMarker></ListMultipartUploadsResult>"),
				     &list, &err) == CM_OK);
	REQUIRE(list.n_uploads == 1);
	CHECK_STR(list.uploads[0].key, "a b+");
	CHECK_STR(list.next_key_marker, "c d");
	s3_upload_list_release(&list);

	CHECK_INT(s3_xml_parse_uploads(LIT("<ListMultipartUploadsResult><Upload><Key>k</Key></Upload>"
				       "</ListMultipartUploadsResult>"), &list, &err),
		  CM_E_PROTOCOL);
	CHECK(strstr(err.message, "UploadId") != NULL);
	CHECK(list.uploads == NULL);
}

/* ---- broken and hostile input ---- */

/*
 * Parse every strict prefix of sample with every parser, each in a buffer of
 * exactly its length. The sample's own parser (which: 0 list, 1 delete,
 * 2 uploads, 3 error, 4 initiate, 5 ETag result) must refuse each prefix as
 * malformed XML.
 */
static void truncate_everywhere(const char *sample, int which)
{
	size_t len = strlen(sample), i;
	int all_refused = 1;

	for (i = 0; i < len; i++) {
		char *copy = malloc(i ? i : 1);
		struct cm_err err;
		enum cm_status st = CM_OK;

		if (!copy)
			abort();
		memcpy(copy, sample, i);
		parse_everything(copy, i);
		cm_err_clear(&err);
		if (which == 0) {
			struct s3_list_page page;

			st = s3_xml_parse_list(copy, i, &page, &err);
			s3_list_page_release(&page);
		} else if (which == 1) {
			struct s3_delete_result res;

			st = s3_xml_parse_delete_result(copy, i, &res, &err);
			s3_delete_result_release(&res);
		} else if (which == 2) {
			struct s3_upload_list list;

			st = s3_xml_parse_uploads(copy, i, &list, &err);
			s3_upload_list_release(&list);
		} else if (which == 3) {
			/* parse_error leaves err alone when it fails: fake the message. */
			st = s3_xml_parse_error(copy, i, &err);
			snprintf(err.message, sizeof(err.message), "XML");
		} else {
			char *value = NULL;

			if (which == 4)
				st = s3_xml_parse_initiate(copy, i, &value, &err);
			else
				st = s3_xml_parse_etag_result(copy, i, &value, NULL, &err);
			free(value);
		}
		if (st != CM_E_PROTOCOL || !strstr(err.message, "XML")) {
			if (all_refused)
				TH_FAIL_("prefix of %zu bytes: status %d, \"%s\"", i, st, err.message);
			all_refused = 0;
		}
		free(copy);
	}
	CHECK(all_refused);
}

TEST(truncated_everywhere)
{
	truncate_everywhere(list_aws, 0);
	truncate_everywhere(list_url, 0);
	truncate_everywhere(delete_aws, 1);
	truncate_everywhere(uploads_aws, 2);
	truncate_everywhere(error_aws, 3);
	truncate_everywhere(initiate_aws, 4);
	truncate_everywhere(copy_part_rgw, 5);
	truncate_everywhere(complete_aws, 5);
}

TEST(truncated_message)
{
	struct s3_list_page page;
	struct cm_err err;
	size_t len = strlen(list_aws) / 2;

	cm_err_clear(&err);
	CHECK_INT(s3_xml_parse_list(list_aws, len, &page, &err), CM_E_PROTOCOL);
	CHECK(strstr(err.message, "truncated") != NULL);
	CHECK(strstr(err.message, "ListObjectsV2") != NULL);
}

TEST(mutated_samples)
{
	static const char *const samples[] = {
		list_aws, list_url, error_aws, delete_aws, uploads_aws, copy_object,
	};
	static const char replacements[] = { '<', '>', '&', '/', '%', '\0', '\x80', '"', ' ' };
	size_t s, i, r;

	for (s = 0; s < sizeof(samples) / sizeof(samples[0]); s++) {
		size_t len = strlen(samples[s]);
		char *copy = malloc(len);

		REQUIRE(copy);
		for (i = 0; i < len; i++) {
			for (r = 0; r < sizeof(replacements); r++) {
				memcpy(copy, samples[s], len);
				copy[i] = replacements[r];
				parse_everything(copy, len);
			}
		}
		free(copy);
	}
}

TEST(doctype_refused)
{
	static const char *const bodies[] = {
		/* billion laughs */
		"<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
		"<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
		"<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">"
		"<!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">"
		"]><ListBucketResult><Contents><Key>&lol4;</Key><Size>1</Size></Contents>"
		"</ListBucketResult>",
		/* external entity */
		"<!DOCTYPE ListBucketResult [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>"
		"<ListBucketResult><Contents><Key>&xxe;</Key><Size>1</Size></Contents>"
		"</ListBucketResult>",
		/* external DTD */
		"<!DOCTYPE ListBucketResult SYSTEM \"http://127.0.0.1:1/x.dtd\"><ListBucketResult/>",
		/* an empty DOCTYPE is refused too */
		"<!DOCTYPE ListBucketResult><ListBucketResult/>",
		/* parameter entities */
		"<!DOCTYPE x [<!ENTITY % p SYSTEM \"http://127.0.0.1:1/p\"> %p;]><ListBucketResult/>",
	};
	struct s3_list_page page;
	struct cm_err err;
	size_t i;

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		CHECK_INT(list_str(bodies[i], &page, &err), CM_E_PROTOCOL);
		CHECK(strstr(err.message, "DOCTYPE") != NULL);
		CHECK(page_is_zero(&page));
		parse_everything(bodies[i], strlen(bodies[i]));
	}
	/* A reference to an entity that was never declared. */
	CHECK_INT(list_str("<ListBucketResult><Contents><Key>&foo;</Key><Size>1</Size>"
			   "</Contents></ListBucketResult>", &page, &err), CM_E_PROTOCOL);
	/* Character references and the predefined entities are fine. */
	REQUIRE(list_str("<ListBucketResult><Contents><Key>&#x41;&#66;&lt;&gt;&amp;&apos;&quot;"
			 "</Key><Size>1</Size></Contents></ListBucketResult>", &page, &err) == CM_OK);
	CHECK_STR(page.objects[0].key, "AB<>&'\"");
	s3_list_page_release(&page);
}

/* A list body with the object's Key nested under depth levels in all. */
static char *nested_list(int depth)
{
	size_t cap = (size_t)depth * 16 + 200, used = 0;
	char *body = malloc(cap);
	int i;

	if (!body)
		abort();
	used += (size_t)snprintf(body + used, cap - used, "<ListBucketResult>");
	for (i = 1; i < depth; i++)
		used += (size_t)snprintf(body + used, cap - used, "<x>");
	for (i = 1; i < depth; i++)
		used += (size_t)snprintf(body + used, cap - used, "</x>");
	snprintf(body + used, cap - used, "</ListBucketResult>");
	return body;
}

TEST(deep_nesting)
{
	struct s3_list_page page;
	struct cm_err err;
	char *body;

	body = nested_list(32);
	CHECK_INT(list_str(body, &page, &err), CM_OK);
	s3_list_page_release(&page);
	free(body);

	body = nested_list(33);
	CHECK_INT(list_str(body, &page, &err), CM_E_PROTOCOL);
	CHECK(strstr(err.message, "nested") != NULL);
	free(body);

	body = nested_list(100000);
	CHECK_INT(list_str(body, &page, &err), CM_E_PROTOCOL);
	parse_everything(body, strlen(body));
	free(body);
}

TEST(huge_text)
{
	struct s3_list_page page;
	struct cm_err err;
	char *key = malloc(200001);
	char *body;

	REQUIRE(key);
	memset(key, 'k', 65536);
	key[65536] = '\0';
	body = one_object_list(key, "1", "");
	REQUIRE(list_str(body, &page, &err) == CM_OK);
	CHECK_INT(strlen(page.objects[0].key), 65536);
	s3_list_page_release(&page);
	free(body);

	memset(key, 'k', 65537);
	key[65537] = '\0';
	body = one_object_list(key, "1", "");
	CHECK_INT(list_str(body, &page, &err), CM_E_PROTOCOL);
	CHECK(strstr(err.message, "longer") != NULL);
	free(body);

	/* Text split by references and CDATA counts as one value. */
	memset(key, 'a', 200000);
	memcpy(key + 1000, "&amp;", 5);
	memcpy(key + 100000, "<![CDATA[x]]>", 13);
	key[200000] = '\0';
	body = one_object_list(key, "1", "");
	CHECK_INT(list_str(body, &page, &err), CM_E_PROTOCOL);
	parse_everything(body, strlen(body));
	free(body);

	/* Between elements too. */
	memset(key, ' ', 100000);
	key[100000] = '\0';
	body = one_object_list("k", "1", key);
	CHECK_INT(list_str(body, &page, &err), CM_E_PROTOCOL);
	free(body);
	free(key);
}

TEST(long_element_names)
{
	struct s3_list_page page;
	struct cm_err err;
	char name[300];
	char *body;

	memset(name, 'N', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	if (asprintf(&body, "<ListBucketResult><%s><Key>k</Key></%s><Contents><Key>k</Key>"
		     "<Size>1</Size></Contents></ListBucketResult>", name, name) < 0)
		abort();
	REQUIRE(list_str(body, &page, &err) == CM_OK);
	CHECK_INT(page.n_objects, 1);
	s3_list_page_release(&page);
	free(body);
}

/* ---- builders ---- */

TEST(build_complete)
{
	static const char want[] =
		"<CompleteMultipartUpload xmlns=\"" XMLNS "\">"
		"<Part><PartNumber>1</PartNumber><ETag>\"a54357aff0632cce46d942af68356b38\"</ETag></Part>"
		"<Part><PartNumber>2</PartNumber><ETag>\"0c78aef83f66abc1fa1e8477f296d394\"</ETag></Part>"
		"<Part><PartNumber>10000</PartNumber><ETag>\"x&amp;&lt;y\"</ETag></Part>"
		"</CompleteMultipartUpload>";
	const struct s3_part parts[] = {
		{ 1, "a54357aff0632cce46d942af68356b38" },
		{ 2, "0c78aef83f66abc1fa1e8477f296d394" },
		{ 10000, "x&<y" },
	};
	struct collect c;
	size_t len = 0;
	char *xml = s3_xml_build_complete(parts, 3, &len);

	REQUIRE(xml);
	CHECK_STR(xml, want);
	CHECK_INT(len, strlen(want));
	REQUIRE(collect_texts(xml, len, "ETag", &c));
	REQUIRE(c.n == 3);
	CHECK_STR(c.texts[0], "\"a54357aff0632cce46d942af68356b38\"");
	CHECK_STR(c.texts[2], "\"x&<y\"");
	REQUIRE(collect_texts(xml, len, "PartNumber", &c));
	CHECK_INT(c.n, 3);
	CHECK_STR(c.texts[2], "10000");
	free(xml);

	xml = s3_xml_build_complete(NULL, 0, &len);
	REQUIRE(xml);
	CHECK_STR(xml, "<CompleteMultipartUpload xmlns=\"" XMLNS "\"></CompleteMultipartUpload>");
	free(xml);
}

TEST(build_delete)
{
	static const char want[] =
		"<Delete xmlns=\"" XMLNS "\"><Quiet>true</Quiet>"
		"<Object><Key>plain/key.txt</Key></Object>"
		"<Object><Key>&amp;&lt;&gt;&quot;&apos;</Key></Object>"
		"<Object><Key>caf\xC3\xA9 &#x9;&#xA;&#xD;</Key></Object>"
		"<Object><Key>c&#x1;&#x1F;&#x7F;</Key></Object>"
		"</Delete>";
	const char *const keys[] = {
		"plain/key.txt", "&<>\"'", "caf\xC3\xA9 \t\n\r", "c\x01\x1f\x7f",
	};
	struct collect c;
	size_t len = 0;
	char *xml = s3_xml_build_delete(keys, 4, &len);

	REQUIRE(xml);
	CHECK_STR(xml, want);
	CHECK_INT(len, strlen(want));
	free(xml);

	/* Round trip through a real XML parser (without the control characters
	 * XML 1.0 cannot carry, which expat refuses even as references). */
	xml = s3_xml_build_delete(keys, 3, &len);
	REQUIRE(xml);
	REQUIRE(collect_texts(xml, len, "Key", &c));
	REQUIRE(c.n == 3);
	CHECK_STR(c.texts[0], keys[0]);
	CHECK_STR(c.texts[1], keys[1]);
	CHECK_STR(c.texts[2], keys[2]);     /* CR survives end-of-line handling */
	REQUIRE(collect_texts(xml, len, "Quiet", &c));
	CHECK_STR(c.texts[0], "true");
	free(xml);
}

TEST(build_delete_many)
{
	const char *keys[1000];
	char names[1000][16];
	size_t i, len = 0;
	char *xml;
	int objects = 0;
	const char *p;

	for (i = 0; i < 1000; i++) {
		snprintf(names[i], sizeof(names[i]), "dir/k%zu", i);
		keys[i] = names[i];
	}
	xml = s3_xml_build_delete(keys, 1000, &len);
	REQUIRE(xml);
	CHECK_INT(strlen(xml), len);
	for (p = strstr(xml, "<Object>"); p; p = strstr(p + 1, "<Object>"))
		objects++;
	CHECK_INT(objects, 1000);
	CHECK(strstr(xml, "<Key>dir/k999</Key>") != NULL);
	free(xml);
}

/* ---- time ---- */

TEST(iso8601)
{
	struct timespec ts;
	static const char *const bad[] = {
		"", "garbage", "2009-10-12", "2009-10-12T17:50:30", "2009-10-12 17:50:30Z",
		"2009-10-12T17:50:30.Z", "2009-10-12T17:50:30.000", "2009-10-12T17:50:30.000Zx",
		"2009-13-12T17:50:30Z", "2009-00-12T17:50:30Z", "2009-10-00T17:50:30Z",
		"2009-10-32T17:50:30Z", "2009-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
		"2009-10-12T24:00:00Z", "2009-10-12T17:60:30Z", "2009-10-12T17:50:61Z",
		"2009-10-12T17:50:30+24:00", "2009-10-12T17:50:30+01:60", "2009-10-12T17:50:30+1",
		"209-10-12T17:50:30Z", "2009-1-12T17:50:30Z", "2009-10-12T17:50:3Z",
		"-009-10-12T17:50:30Z", "2009-10-12T17:50:30z", " 2009-10-12T17:50:30Z",
		"2009-10-12T17:50:30Z ", "2009-10-12T17:50:30+00:00:00",
	};
	size_t i;

	REQUIRE(s3_parse_iso8601("2009-10-12T17:50:30.000Z", &ts) == 0);
	CHECK_INT(ts.tv_sec, 1255369830);
	CHECK_INT(ts.tv_nsec, 0);
	REQUIRE(s3_parse_iso8601("2009-10-12T17:50:30Z", &ts) == 0);
	CHECK_INT(ts.tv_sec, 1255369830);
	REQUIRE(s3_parse_iso8601("2009-10-12T17:50:30+00:00", &ts) == 0);
	CHECK_INT(ts.tv_sec, 1255369830);
	REQUIRE(s3_parse_iso8601("2009-10-12T19:50:30.5+02:00", &ts) == 0);
	CHECK_INT(ts.tv_sec, 1255369830);
	CHECK_INT(ts.tv_nsec, 500000000);
	REQUIRE(s3_parse_iso8601("2009-10-12T12:50:30-0500", &ts) == 0);
	CHECK_INT(ts.tv_sec, 1255369830);
	REQUIRE(s3_parse_iso8601("2009-10-12T17:50:30.123456789123Z", &ts) == 0);
	CHECK_INT(ts.tv_nsec, 123456789);
	REQUIRE(s3_parse_iso8601("1970-01-01T00:00:00Z", &ts) == 0);
	CHECK_INT(ts.tv_sec, 0);
	REQUIRE(s3_parse_iso8601("2000-02-29T23:59:59Z", &ts) == 0);
	CHECK_INT(ts.tv_sec, 951868799);
	REQUIRE(s3_parse_iso8601("2038-01-19T03:14:08Z", &ts) == 0);
	CHECK_INT(ts.tv_sec, 2147483648LL);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (s3_parse_iso8601(bad[i], &ts) != -1)
			TH_FAIL_("accepted \"%s\"", bad[i]);
	}
	CHECK_INT(s3_parse_iso8601(NULL, &ts), -1);
}

TH_MAIN_BEGIN("test_s3_xml")
	RUN(list_aws_page);
	RUN(list_rgw_page);
	RUN(list_namespace_prefix);
	RUN(list_empty);
	RUN(list_url_encoded);
	RUN(list_not_encoded_keeps_plus);
	RUN(list_bad_url_encoding);
	RUN(list_unknown_encoding);
	RUN(list_sizes);
	RUN(list_bad_fields);
	RUN(list_wrong_root);
	RUN(list_many_objects);
	RUN(error_aws_body);
	RUN(error_rgw_empty_message);
	RUN(error_long_fields_cut);
	RUN(error_not_error_untouched);
	RUN(is_error);
	RUN(initiate);
	RUN(etag_results);
	RUN(delete_result);
	RUN(uploads);
	RUN(truncated_everywhere);
	RUN(truncated_message);
	RUN(mutated_samples);
	RUN(doctype_refused);
	RUN(deep_nesting);
	RUN(huge_text);
	RUN(long_element_names);
	RUN(build_complete);
	RUN(build_delete);
	RUN(build_delete_many);
	RUN(iso8601);
TH_MAIN_END
