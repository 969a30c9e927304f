/*
 * test_metacache.c - the on-disk attribute cache: matching on ETag and
 * LastModified, the "unknown time" upgrade, survival across reopen, and
 * recovery from a corrupt file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "fs/metacache.h"
#include "tharness.h"

static char dir[] = "/tmp/cm-metacache.XXXXXX";

static char *db_path(void)
{
	return xasprintf("%s/meta.sqlite", dir);
}

TEST(put_get_match)
{
	char *path = db_path();
	struct metacache *mc = metacache_open(path);
	struct fs_attr a = { .mode = S_IFREG | 0600, .uid = 11, .gid = 22, .mtime = { 1600000000, 5 } };
	struct fs_attr b = { 0 };

	REQUIRE(mc != NULL);
	metacache_put(mc, "dir/file", "etag1", 1700000000, &a);
	CHECK(metacache_get(mc, "dir/file", "etag1", 1700000000, &b));
	CHECK(memcmp(&a, &b, sizeof(a)) == 0);
	/* a new version, or the same ETag with another time (metadata-only copy): no match */
	CHECK(!metacache_get(mc, "dir/file", "etag2", 1700000000, &b));
	CHECK(!metacache_get(mc, "dir/file", "etag1", 1700000001, &b));
	CHECK(!metacache_get(mc, "other", "etag1", 1700000000, &b));
	metacache_del(mc, "dir/file");
	CHECK(!metacache_get(mc, "dir/file", "etag1", 1700000000, &b));
	metacache_close(mc);
	free(path);
}

TEST(unknown_time_upgrades_on_first_listing)
{
	char *path = db_path();
	struct metacache *mc = metacache_open(path);
	struct fs_attr a = { .mode = S_IFLNK | 0777, .mtime = { 1, 0 } }, b;

	REQUIRE(mc != NULL);
	metacache_put(mc, "link", "e", 0, &a);
	CHECK(metacache_get(mc, "link", "e", 1700000123, &b));
	CHECK_INT(b.mode, S_IFLNK | 0777);
	/* the first listing's time is now recorded: another time no longer matches */
	CHECK(!metacache_get(mc, "link", "e", 1700000999, &b));
	CHECK(metacache_get(mc, "link", "e", 1700000123, &b));
	metacache_close(mc);
	free(path);
}

/* Many lookups in one transaction answer as one by one, the upgrade of a stored 0 included. */
TEST(get_many)
{
	char *path = db_path();
	struct metacache *mc = metacache_open(path);
	struct fs_attr a = { .mode = S_IFREG | 0600, .uid = 1, .gid = 2, .mtime = { 10, 0 } };
	struct fs_attr c = { .mode = S_IFREG | 0755, .uid = 3, .gid = 4, .mtime = { 20, 0 } };
	struct fs_attr out[4];
	struct metacache_query q[4] = {
		{ .key = "d/a", .etag = "ea", .last_modified = 100, .attr = &out[0] },
		{ .key = "d/b", .etag = "eb", .last_modified = 100, .attr = &out[1] },
		{ .key = "d/c", .etag = "ec", .last_modified = 200, .attr = &out[2] },
		{ .key = "d/a", .etag = "other", .last_modified = 100, .attr = &out[3] },
	};

	REQUIRE(mc != NULL);
	memset(out, 0, sizeof(out));
	metacache_put(mc, "d/a", "ea", 100, &a);
	metacache_put(mc, "d/c", "ec", 0, &c);
	metacache_get_many(mc, q, 4);
	CHECK(q[0].found && !q[1].found && q[2].found && !q[3].found);
	CHECK(memcmp(&out[0], &a, sizeof(a)) == 0);
	CHECK(memcmp(&out[2], &c, sizeof(c)) == 0);
	/* d/c learnt its time: another time no longer matches */
	CHECK(!metacache_get(mc, "d/c", "ec", 201, &out[1]));
	CHECK(metacache_get(mc, "d/c", "ec", 200, &out[1]));
	metacache_get_many(NULL, q, 4);
	CHECK(!q[0].found);
	metacache_close(mc);
	free(path);
}

TEST(survives_reopen)
{
	char *path = db_path();
	struct metacache *mc = metacache_open(path);
	struct fs_attr a = { .mode = S_IFREG | 0640, .uid = 1, .gid = 2, .mtime = { 3, 4 } }, b;

	REQUIRE(mc != NULL);
	metacache_put(mc, "persist", "e9", 42, &a);
	metacache_close(mc);
	mc = metacache_open(path);
	REQUIRE(mc != NULL);
	CHECK(metacache_get(mc, "persist", "e9", 42, &b));
	CHECK_INT(b.mode, S_IFREG | 0640);
	metacache_close(mc);
	free(path);
}

TEST(corrupt_file_is_recreated)
{
	char *path = xasprintf("%s/corrupt.sqlite", dir);
	FILE *f = fopen(path, "w");
	struct metacache *mc;
	struct fs_attr a = { .mode = S_IFREG | 0644 }, b;

	REQUIRE(f != NULL);
	fputs("this is not a database, it is only here to be thrown away\n", f);
	fclose(f);
	mc = metacache_open(path);
	REQUIRE(mc != NULL);
	metacache_put(mc, "k", "e", 1, &a);
	CHECK(metacache_get(mc, "k", "e", 1, &b));
	metacache_close(mc);
	CHECK(metacache_open("/nonexistent-dir/x/y.sqlite") == NULL);
	free(path);
}

TEST(null_cache_is_a_no_op)
{
	struct fs_attr a = { 0 };

	metacache_put(NULL, "k", "e", 1, &a);
	metacache_del(NULL, "k");
	CHECK(!metacache_get(NULL, "k", "e", 1, &a));
	metacache_close(NULL);
}

TH_MAIN_BEGIN("test_metacache")
	if (!mkdtemp(dir))
		return 1;
	RUN(put_get_match);
	RUN(unknown_time_upgrades_on_first_listing);
	RUN(get_many);
	RUN(survives_reopen);
	RUN(corrupt_file_is_recreated);
	RUN(null_cache_is_a_no_op);
	{
		char *cmd = xasprintf("rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
		free(cmd);
	}
TH_MAIN_END
