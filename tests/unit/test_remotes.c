/*
 * test_remotes.c - unit tests for cloudmount.conf (src/config/remotes.c):
 * remotes and the [tray] section read, written back and read again, and the
 * FILE:LINE errors of broken files. Files live in one temporary directory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/remotes.h"
#include "tharness.h"

static char dir[] = "/tmp/cm-test-remotes.XXXXXX";
static char path[256];

static void write_conf(const char *text)
{
	FILE *f = fopen(path, "w");

	REQUIRE(f);
	fputs(text, f);
	fclose(f);
}

TEST(tray_section_round_trip)
{
	struct remotes rs, again;
	struct cm_err err;

	write_conf("[remote photos]\nurl = s3://pics/2024\nendpoint = http://127.0.0.1:9000\n"
		   "path-style = true\nautomount = yes\n\n[tray]\nunmount-on-quit = true\n");
	cm_err_clear(&err);
	REQUIRE(remotes_load(path, &rs, &err) == CM_OK);
	CHECK_INT(rs.n, 1);
	CHECK_INT(rs.tray_unmount_on_quit, 1);
	REQUIRE(rs.n == 1);
	CHECK_STR(rs.list[0].bucket, "pics");
	CHECK_STR(rs.list[0].prefix, "2024");
	CHECK_INT(rs.list[0].path_style, 1);
	CHECK_INT(rs.list[0].automount, 1);
	/* remote add/remove rewrite the file: the tray's setting must survive */
	REQUIRE(remotes_remove(&rs, "photos") == 1);
	REQUIRE(remotes_save(&rs, &err) == CM_OK);
	remotes_release(&rs);
	REQUIRE(remotes_load(path, &again, &err) == CM_OK);
	CHECK_INT(again.n, 0);
	CHECK_INT(again.tray_unmount_on_quit, 1);
	again.tray_unmount_on_quit = 0;
	REQUIRE(remotes_save(&again, &err) == CM_OK);
	remotes_release(&again);
	REQUIRE(remotes_load(path, &again, &err) == CM_OK);
	CHECK_INT(again.tray_unmount_on_quit, 0);
	remotes_release(&again);
}

TEST(missing_file_is_empty)
{
	struct remotes rs;
	struct cm_err err;
	char nothere[300];

	snprintf(nothere, sizeof(nothere), "%s/none.conf", dir);
	cm_err_clear(&err);
	REQUIRE(remotes_load(nothere, &rs, &err) == CM_OK);
	CHECK_INT(rs.n, 0);
	CHECK_INT(rs.tray_unmount_on_quit, 0);
	remotes_release(&rs);
}

/* load must fail with exactly "PATH:MESSAGE" */
static void check_error(const char *text, const char *message)
{
	struct remotes rs;
	struct cm_err err;
	char expected[600];

	write_conf(text);
	cm_err_clear(&err);
	CHECK_INT(remotes_load(path, &rs, &err), CM_E_CONFIG);
	snprintf(expected, sizeof(expected), "%s:%s", path, message);
	CHECK_STR(err.message, expected);
	CHECK_INT(rs.n, 0);
}

TEST(broken_files)
{
	check_error("[tray]\nunmount-on-quit = sometimes\n", "2: expected true or false");
	check_error("[tray]\nquit = true\n", "2: unknown setting \"quit\" in [tray]");
	check_error("[remote a]\nurl = s3://b\n[trays]\n", "3: unknown section \"trays\" (expected [remote NAME] or [tray])");
	check_error("[remote a]\nurl = s3://b\nsecret = x\n",
		    "3: secrets do not belong in this file: use 'cloudmount remote add' (keyring)");
	check_error("[remote -a]\nurl = s3://b\n",
		    "1: \"-a\" is not a valid remote name (letters, digits, '.', '_', '-')");
	check_error("[remote a]\nendpoint = http://x\n", "1: remote a has no url = s3://BUCKET");
}

TH_MAIN_BEGIN("test_remotes")
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/cloudmount.conf", dir);
	RUN(tray_section_round_trip);
	RUN(missing_file_is_empty);
	RUN(broken_files);
	unlink(path);
	rmdir(dir);
TH_MAIN_END
