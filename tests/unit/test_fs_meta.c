/*
 * test_fs_meta.c - s3fs-compatible attribute headers and file-name checks.
 */
#include <string.h>
#include <sys/stat.h>

#include "fs/meta.h"
#include "tharness.h"

TEST(parse_s3fs_headers)
{
	struct s3_meta m = { 0 };
	struct fs_attr a = { .mode = S_IFREG | 0644 };

	s3_meta_set(&m, "mode", "33261");       /* 0100755 */
	s3_meta_set(&m, "uid", "1000");
	s3_meta_set(&m, "gid", "100");
	s3_meta_set(&m, "mtime", "1577934245");
	CHECK_INT(fs_meta_parse(&m, &a), FS_META_MODE | FS_META_UID | FS_META_GID | FS_META_MTIME);
	CHECK_INT(a.mode, S_IFREG | 0755);
	CHECK_INT(a.uid, 1000);
	CHECK_INT(a.gid, 100);
	CHECK_INT(a.mtime.tv_sec, 1577934245);
	CHECK_INT(a.mtime.tv_nsec, 0);
	s3_meta_release(&m);
}

TEST(parse_fractional_mtime_and_nsec)
{
	struct s3_meta m = { 0 };
	struct fs_attr a = { 0 };

	s3_meta_set(&m, "mtime", "1700000000.5");      /* rclone writes fractions */
	fs_meta_parse(&m, &a);
	CHECK_INT(a.mtime.tv_sec, 1700000000);
	CHECK_INT(a.mtime.tv_nsec, 500000000);
	s3_meta_set(&m, "mtime-nsec", "123");
	fs_meta_parse(&m, &a);
	CHECK_INT(a.mtime.tv_nsec, 123);
	s3_meta_release(&m);
}

TEST(parse_rejects_garbage)
{
	struct s3_meta m = { 0 };
	struct fs_attr a = { .mode = S_IFREG | 0644, .uid = 7 };

	s3_meta_set(&m, "mode", "-1");
	s3_meta_set(&m, "uid", "12abc");
	s3_meta_set(&m, "mtime", "soon");
	CHECK_INT(fs_meta_parse(&m, &a), 0);
	CHECK_INT(a.mode, S_IFREG | 0644);
	CHECK_INT(a.uid, 7);
	s3_meta_set(&m, "mode", "8592");         /* S_IFCHR|0620: not a type we serve */
	CHECK_INT(fs_meta_parse(&m, &a), 0);
	s3_meta_set(&m, "mode", "420");          /* 0644 without type bits */
	CHECK_INT(fs_meta_parse(&m, &a), FS_META_MODE);
	CHECK_INT(a.mode, S_IFREG | 0644);
	s3_meta_release(&m);
}

TEST(build_round_trip)
{
	struct s3_meta m = { 0 };
	struct fs_attr a = { .mode = S_IFLNK | 0777, .uid = 5, .gid = 6, .mtime = { 1600000000, 42 } };
	struct fs_attr b = { 0 };

	REQUIRE(fs_meta_build(&a, &m) == 0);
	CHECK_STR(s3_meta_get(&m, "mode"), "41471");
	CHECK_STR(s3_meta_get(&m, "mtime"), "1600000000");
	CHECK_INT(fs_meta_parse(&m, &b), FS_META_MODE | FS_META_UID | FS_META_GID | FS_META_MTIME);
	CHECK(memcmp(&a, &b, sizeof(a)) == 0);
	s3_meta_release(&m);
}

TEST(names)
{
	char long_name[300];

	CHECK(fs_name_valid("a", 1));
	CHECK(fs_name_valid("a b+c%~=", 8));
	CHECK(fs_name_valid("\xc3\xa9", 2));
	CHECK(!fs_name_valid("", 0));
	CHECK(!fs_name_valid(".", 1));
	CHECK(!fs_name_valid("..", 2));
	CHECK(fs_name_valid("...", 3));
	CHECK(!fs_name_valid("a/b", 3));
	CHECK(!fs_name_valid("a\x01", 2));
	CHECK(!fs_name_valid("a\x7f", 2));
	memset(long_name, 'x', sizeof(long_name));
	CHECK(fs_name_valid(long_name, 255));
	CHECK(!fs_name_valid(long_name, 256));
}

TH_MAIN_BEGIN("test_fs_meta")
	RUN(parse_s3fs_headers);
	RUN(parse_fractional_mtime_and_nsec);
	RUN(parse_rejects_garbage);
	RUN(build_round_trip);
	RUN(names);
TH_MAIN_END
