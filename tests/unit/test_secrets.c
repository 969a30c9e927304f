/*
 * test_secrets.c - unit tests for the secrets store: the credentials-file
 * backend, the dispatcher, and (when built with libsecret) the libsecret
 * backend through libsecret's own D-Bus-free file backend.
 *
 * Each test gets a fresh XDG_CONFIG_HOME under one temporary directory that
 * does not exist yet (so directory creation is tested each time). D-Bus is
 * hidden from the whole run (DBUS_SESSION_BUS_ADDRESS, XDG_RUNTIME_DIR and
 * DISPLAY unset), so a developer's real keyring is never touched; the
 * libsecret tests select SECRET_BACKEND=file with SECRET_FILE_TEST_PATH and
 * SECRET_FILE_TEST_PASSWORD (test-only variables of libsecret 0.20).
 * Secret values are compared with CHECK, never CHECK_STR, so a failure does
 * not print them.
 *
 * With "--real-keyring" the program talks to the real Secret Service of the
 * current D-Bus session instead (tests/integration/test_keyring.sh runs it
 * under dbus-run-session with gnome-keyring-daemon):
 *   test_secrets --real-keyring              a self-checking store / lookup /
 *                                            replace / delete cycle
 *   test_secrets --real-keyring store NAME   store $TEST_ACCESS_KEY_ID and
 *                                            $TEST_SECRET_VALUE; print
 *                                            "backend: keyring" (or file)
 *   test_secrets --real-keyring lookup NAME  the same, then "secret: matches"
 *                                            (or differs) against
 *                                            $TEST_SECRET_VALUE, and "key id: ..."
 *   test_secrets --real-keyring delete NAME  delete; print "deleted"
 * The single commands go through the dispatcher with the caller's environment
 * (CLOUDMOUNT_SECRETS, XDG_CONFIG_HOME), and never print a secret.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "config/ini.h"
#include "config/secrets.h"
#include "tharness.h"

#ifdef CM_HAVE_LIBSECRET
#include <libsecret/secret.h>
#endif

#define SECRET1 "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define SECRET2 "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"
#define KEYID1 "AKIAIOSFODNN7EXAMPLE"
#define KEYID2 "AKIAI44QH8DHBEXAMPLE"

static char base_dir[256];
static char cfg_dir[512];      /* the current test's XDG_CONFIG_HOME */
static char cred_path[600];    /* cfg_dir/cloudmount/credentials */
static char cm_dir[560];       /* cfg_dir/cloudmount */
static int test_counter;

/*
 * LeakSanitizer calls this at start-up (sanitized builds; unused otherwise).
 * Two leaks of libsecret 0.20.5 / GLib 2.74 (Debian 12), both reproduced by a
 * ten-line program that frees everything it is handed: every write of
 * libsecret's file backend over an existing file (a store or a clear) leaks
 * a 28-byte string inside GIO, and every item a search over D-Bus returns
 * leaks 8 bytes in secret_item_new_for_dbus_path. Named by the exported
 * frames on those stacks, so our own leaks still show.
 * GLib is built without frame pointers, so the stack recorded at malloc only
 * reaches that frame with the slow unwinder: __asan_default_options asks for
 * it (ASAN_OPTIONS from the environment still override it).
 */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:secret_password_storev_sync\n"
	       "leak:secret_password_clearv_sync\n"
	       "leak:secret_item_new_for_dbus_path\n";
}

const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "fast_unwind_on_malloc=0";
}

/* ---- helpers ---- */

static int contains(const char *haystack, const char *needle)
{
	return haystack && needle && strstr(haystack, needle) != NULL;
}

/* No field of err holds s. */
static int err_clean(const struct cm_err *err, const char *s)
{
	return !contains(err->message, s) && !contains(err->detail, s) && !contains(err->code, s);
}

/* A fresh, not yet existing XDG_CONFIG_HOME for the test that calls this. */
static void fresh_config(void)
{
	snprintf(cfg_dir, sizeof(cfg_dir), "%s/t%d/config", base_dir, ++test_counter);
	snprintf(cm_dir, sizeof(cm_dir), "%s/cloudmount", cfg_dir);
	snprintf(cred_path, sizeof(cred_path), "%s/credentials", cm_dir);
	setenv("XDG_CONFIG_HOME", cfg_dir, 1);
	setenv("CLOUDMOUNT_SECRETS", "file", 1);
}

/* The whole file (malloc'd), or NULL. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
	if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
		fclose(f);
		return NULL;
	}
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	if (buf)
		buf[n] = '\0';
	fclose(f);
	return buf;
}

/* mkdir -p the directory of path, then write text to path with mode. */
static void put_file(const char *path, const char *text, mode_t mode)
{
	char dir[600], *p;
	FILE *f;

	snprintf(dir, sizeof(dir), "%s", path);
	for (p = dir + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(dir, 0700);
			*p = '/';
		}
	}
	f = fopen(path, "wb");
	REQUIRE(f);
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static mode_t mode_of(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) != 0)
		return (mode_t)-1;
	return sb.st_mode & 07777;
}

/* Number of entries in dir (without . and ..). */
static int count_entries(const char *dir)
{
	char cmd[700];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", dir);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	if (fscanf(p, "%d", &n) != 1)
		n = -1;
	pclose(p);
	return n;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* ---- the file backend ---- */

TEST(file_store_lookup_delete)
{
	struct cm_err err = { 0 };
	char *secret = NULL, *key_id = NULL;

	fresh_config();
	CHECK_INT(secrets_file_lookup("r1", &secret, &key_id, &err), CM_E_NOT_FOUND);
	CHECK(secret == NULL && key_id == NULL);
	REQUIRE(secrets_file_store("r1", KEYID1, SECRET1, &err) == CM_OK);
	REQUIRE(secrets_file_lookup("r1", &secret, &key_id, &err) == CM_OK);
	CHECK(secret && strcmp(secret, SECRET1) == 0);
	CHECK_STR(key_id, KEYID1);
	secrets_free(secret);
	free(key_id);
	secret = key_id = NULL;

	/* a NULL key id pointer is allowed */
	REQUIRE(secrets_file_lookup("r1", &secret, NULL, &err) == CM_OK);
	secrets_free(secret);
	secret = NULL;

	/* replace */
	REQUIRE(secrets_file_store("r1", KEYID2, SECRET2, &err) == CM_OK);
	REQUIRE(secrets_file_lookup("r1", &secret, &key_id, &err) == CM_OK);
	CHECK(secret && strcmp(secret, SECRET2) == 0);
	CHECK_STR(key_id, KEYID2);
	secrets_free(secret);
	free(key_id);
	secret = key_id = NULL;

	CHECK_INT(secrets_file_delete("r1", &err), CM_OK);
	CHECK_INT(secrets_file_lookup("r1", &secret, &key_id, &err), CM_E_NOT_FOUND);
	CHECK(contains(err.message, "r1"));
	CHECK(err_clean(&err, SECRET2));
	/* missing is not an error: section, file, directory */
	CHECK_INT(secrets_file_delete("r1", &err), CM_OK);
	CHECK(unlink(cred_path) == 0);
	CHECK_INT(secrets_file_delete("r1", &err), CM_OK);
	CHECK(access(cred_path, F_OK) != 0);
	fresh_config();
	CHECK_INT(secrets_file_delete("r1", &err), CM_OK);
	CHECK(access(cm_dir, F_OK) != 0);
	secrets_free(NULL);
}

TEST(file_modes)
{
	struct cm_err err = { 0 };
	mode_t old_umask = umask(0);    /* the loosest umask: modes must still be tight */

	fresh_config();
	CHECK_INT(secrets_file_store("r1", KEYID1, SECRET1, &err), CM_OK);
	umask(old_umask);
	CHECK_INT(mode_of(cred_path), 0600);
	CHECK_INT(mode_of(cm_dir), 0700);
	CHECK_INT(mode_of(cfg_dir), 0700);     /* created along the way: 0700 as well */

	/* an existing directory keeps its mode; a loose file is tightened by a rewrite */
	chmod(cm_dir, 0755);
	chmod(cred_path, 0644);
	CHECK_INT(secrets_file_store("r2", KEYID2, SECRET2, &err), CM_OK);
	CHECK_INT(mode_of(cm_dir), 0755);
	CHECK_INT(mode_of(cred_path), 0600);
}

TEST(file_loose_mode_warns)
{
	struct cm_err err = { 0 };
	char log_path[600], *logged, *secret = NULL;
	int fd;

	fresh_config();
	REQUIRE(secrets_file_store("r1", KEYID1, SECRET1, &err) == CM_OK);
	chmod(cred_path, 0644);
	snprintf(log_path, sizeof(log_path), "%s/log", cfg_dir);
	fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	REQUIRE(fd >= 0);
	log_set_fd(fd);
	CHECK_INT(secrets_file_lookup("r1", &secret, NULL, &err), CM_OK);      /* warned, not refused */
	log_set_fd(-1);
	close(fd);
	CHECK(secret && strcmp(secret, SECRET1) == 0);
	secrets_free(secret);
	logged = slurp(log_path);
	CHECK(contains(logged, "chmod 600"));
	CHECK(contains(logged, cred_path));
	CHECK(!contains(logged, SECRET1));
	free(logged);
}

/* Other remotes, awscli profiles and their extras survive a store and a delete. */
TEST(file_preserves_other_sections)
{
	struct cm_err err = { 0 };
	struct ini_file f;
	char *text;

	fresh_config();
	put_file(cred_path,
		 "# my AWS keys\n"
		 "[default]\n"
		 "aws_access_key_id = AKIADEFAULT\n"
		 "aws_secret_access_key = default/secret\n"
		 "region: eu-west-1\n"
		 "[work]\n"
		 "AWS_ACCESS_KEY_ID=AKIAWORK\n"
		 "aws_secret_access_key=work/secret\n"
		 "aws_session_token = line1\n"
		 "   line2\n"
		 "s3 =\n"
		 "  addressing_style = path\n"
		 "  max_concurrent_requests = 4\n"
		 "[r1]\n"
		 "aws_access_key_id = OLD\n"
		 "; a comment\n"
		 "x_extra = kept\n"
		 "aws_secret_access_key = old/secret\n",
		 0600);
	CHECK_INT(secrets_file_store("r1", KEYID1, SECRET1, &err), CM_OK);
	CHECK_INT(secrets_file_store("r2", KEYID2, SECRET2, &err), CM_OK);
	CHECK_INT(secrets_file_store("r3", KEYID2, SECRET2, &err), CM_OK);
	CHECK_INT(secrets_file_delete("r2", &err), CM_OK);

	REQUIRE(ini_load_file(cred_path, &f, &err) == CM_OK);
	REQUIRE(f.n_sections == 4);
	CHECK_STR(f.sections[0].name, "default");
	CHECK_STR(f.sections[1].name, "work");
	CHECK_STR(f.sections[2].name, "r1");
	CHECK_STR(f.sections[3].name, "r3");
	CHECK_STR(ini_get(&f, "default", "aws_access_key_id"), "AKIADEFAULT");
	CHECK_STR(ini_get(&f, "default", "aws_secret_access_key"), "default/secret");
	CHECK_STR(ini_get(&f, "default", "region"), "eu-west-1");
	CHECK_STR(ini_get(&f, "work", "aws_access_key_id"), "AKIAWORK");
	CHECK_STR(ini_get(&f, "work", "aws_session_token"), "line1\nline2");
	CHECK_STR(ini_get_sub(&f, "work", "s3", "addressing_style"), "path");
	CHECK_STR(ini_get_sub(&f, "work", "s3", "max_concurrent_requests"), "4");
	CHECK_STR(ini_get(&f, "r1", "aws_access_key_id"), KEYID1);
	CHECK(ini_get(&f, "r1", "aws_secret_access_key") &&
	      strcmp(ini_get(&f, "r1", "aws_secret_access_key"), SECRET1) == 0);
	CHECK_STR(ini_get(&f, "r1", "x_extra"), "kept");
	CHECK_INT(f.sections[2].n_entries, 3);         /* replaced in place, not appended */
	CHECK_STR(ini_get(&f, "r3", "aws_access_key_id"), KEYID2);
	ini_file_release(&f);

	text = slurp(cred_path);
	CHECK(!contains(text, "# my AWS keys"));       /* documented: comments are not kept */
	CHECK(!contains(text, "OLD"));
	CHECK(!contains(text, "old/secret"));
	free(text);
}

TEST(file_atomic_rewrite)
{
	struct cm_err err = { 0 };
	struct stat before, after;
	char target[600], link_path[600], *text;
	char *secret = NULL;

	fresh_config();
	REQUIRE(secrets_file_store("r1", KEYID1, SECRET1, &err) == CM_OK);
	REQUIRE(stat(cred_path, &before) == 0);
	REQUIRE(secrets_file_store("r2", KEYID2, SECRET2, &err) == CM_OK);
	REQUIRE(stat(cred_path, &after) == 0);
	CHECK(before.st_ino != after.st_ino);  /* a new file renamed over the old one */
	CHECK_INT(count_entries(cm_dir), 1);   /* no temporary file left behind */

	/* a symlinked file: the target is replaced, the link stays */
	snprintf(target, sizeof(target), "%s/dotfiles/credentials", cfg_dir);
	snprintf(link_path, sizeof(link_path), "%s", cred_path);
	text = slurp(cred_path);
	REQUIRE(text);
	put_file(target, text, 0600);
	free(text);
	REQUIRE(unlink(link_path) == 0);
	REQUIRE(symlink(target, link_path) == 0);
	CHECK_INT(secrets_file_store("r3", KEYID1, SECRET1, &err), CM_OK);
	{
		struct stat lsb;

		CHECK(lstat(link_path, &lsb) == 0 && S_ISLNK(lsb.st_mode));
	}
	text = slurp(target);
	CHECK(contains(text, "[r3]"));
	CHECK(contains(text, "[r1]"));
	free(text);
	CHECK_INT(secrets_file_lookup("r3", &secret, NULL, &err), CM_OK);
	secrets_free(secret);

	/* a failed write leaves the old file (needs a non-root user: root ignores modes) */
	if (geteuid() != 0) {
		char dotfiles[600];

		snprintf(dotfiles, sizeof(dotfiles), "%s/dotfiles", cfg_dir);
		text = slurp(target);
		chmod(dotfiles, 0500);
		CHECK_INT(secrets_file_store("r4", KEYID1, SECRET1, &err), CM_E_IO);
		CHECK(err_clean(&err, SECRET1));
		chmod(dotfiles, 0700);
		{
			char *now = slurp(target);

			CHECK(text && now && strcmp(text, now) == 0);
			free(now);
		}
		free(text);
		CHECK_INT(count_entries(dotfiles), 1);
	}
}

TEST(file_corrupt_is_config_error)
{
	struct cm_err err = { 0 };
	char *secret = NULL, *before, *after;

	fresh_config();
	put_file(cred_path,
		 "[r1]\n"
		 "aws_access_key_id = " KEYID1 "\n"
		 SECRET1 "\n",
		 0600);
	CHECK_INT(secrets_file_lookup("r1", &secret, NULL, &err), CM_E_CONFIG);
	CHECK(secret == NULL);
	CHECK(contains(err.message, cred_path));
	CHECK(contains(err.message, "credentials:3:"));
	CHECK(err_clean(&err, SECRET1));

	/* never overwrite a file we cannot parse */
	before = slurp(cred_path);
	cm_err_clear(&err);
	CHECK_INT(secrets_file_store("r2", KEYID2, SECRET2, &err), CM_E_CONFIG);
	CHECK(contains(err.message, "credentials:3:"));
	CHECK(err_clean(&err, SECRET1) && err_clean(&err, SECRET2));
	CHECK_INT(secrets_file_delete("r1", &err), CM_E_CONFIG);
	after = slurp(cred_path);
	CHECK(before && after && strcmp(before, after) == 0);
	free(before);
	free(after);

	/* a section without a secret, an empty secret */
	put_file(cred_path, "[r1]\naws_access_key_id = X\n[r2]\naws_secret_access_key =\n", 0600);
	CHECK_INT(secrets_file_lookup("r1", &secret, NULL, &err), CM_E_NOT_FOUND);
	CHECK(contains(err.message, "aws_secret_access_key"));
	CHECK_INT(secrets_file_lookup("r2", &secret, NULL, &err), CM_E_CONFIG);
	CHECK(contains(err.message, "credentials:4:"));
}

/* Bad input is refused without quoting the secret. */
TEST(file_rejects_bad_values)
{
	struct cm_err err = { 0 };

	fresh_config();
	CHECK_INT(secrets_file_store("r1", KEYID1, SECRET1 "\n[evil]", &err), CM_E_INVALID);
	CHECK(err_clean(&err, SECRET1));
	CHECK(contains(err.message, "secret access key"));
	CHECK_INT(secrets_file_store("r1", KEYID1, " " SECRET1, &err), CM_E_INVALID);
	CHECK(err_clean(&err, SECRET1));
	CHECK_INT(secrets_file_store("r1", KEYID1, "", &err), CM_E_INVALID);
	CHECK_INT(secrets_file_store("a]b", KEYID1, SECRET1, &err), CM_E_INVALID);
	CHECK_INT(secrets_file_store("", KEYID1, SECRET1, &err), CM_E_INVALID);
	CHECK_INT(secrets_file_store("r1", "A\rB", SECRET1, &err), CM_E_INVALID);
	CHECK(access(cred_path, F_OK) != 0);   /* nothing written */
}

/* ---- the dispatcher ---- */

TEST(paths_and_descriptions)
{
	char *p;
	char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;

	setenv("XDG_CONFIG_HOME", "/x/cfg", 1);
	p = secrets_file_path();
	CHECK_STR(p, "/x/cfg/cloudmount/credentials");
	free(p);
	CHECK(contains(secrets_backend_describe(SECRET_BACKEND_FILE), "$XDG_CONFIG_HOME"));
	setenv("XDG_CONFIG_HOME", "relative/ignored", 1);
	setenv("HOME", "/home/u", 1);
	p = secrets_file_path();
	CHECK_STR(p, "/home/u/.config/cloudmount/credentials");
	free(p);
	unsetenv("XDG_CONFIG_HOME");
	p = secrets_file_path();
	CHECK_STR(p, "/home/u/.config/cloudmount/credentials");
	free(p);
	CHECK_STR(secrets_backend_describe(SECRET_BACKEND_FILE), "the file ~/.config/cloudmount/credentials");
	CHECK(contains(secrets_backend_describe(SECRET_BACKEND_KEYRING), "keyring") ||
	      contains(secrets_backend_describe(SECRET_BACKEND_KEYRING), "Keychain"));
	if (home)
		setenv("HOME", home, 1);
	else
		unsetenv("HOME");
	free(home);
}

TEST(dispatch_file_mode)
{
	struct cm_err err = { 0 };
	enum secret_backend where = SECRET_BACKEND_NONE;
	char *secret = NULL, *key_id = NULL;

	fresh_config();
	CHECK_INT(secrets_store("r1", KEYID1, SECRET1, &where, &err), CM_OK);
	CHECK_INT(where, SECRET_BACKEND_FILE);
	CHECK_INT(mode_of(cred_path), 0600);
	where = SECRET_BACKEND_NONE;
	REQUIRE(secrets_lookup("r1", &secret, &key_id, &where, &err) == CM_OK);
	CHECK_INT(where, SECRET_BACKEND_FILE);
	CHECK(secret && strcmp(secret, SECRET1) == 0);
	CHECK_STR(key_id, KEYID1);
	secrets_free(secret);
	free(key_id);
	secret = key_id = NULL;
	CHECK_INT(secrets_delete("r1", &err), CM_OK);
	CHECK_INT(secrets_lookup("r1", &secret, &key_id, &where, &err), CM_E_NOT_FOUND);
	CHECK_INT(where, SECRET_BACKEND_NONE);
	CHECK(contains(err.message, "r1"));
	CHECK(err_clean(&err, SECRET1));
	CHECK_INT(secrets_delete("r1", &err), CM_OK);

	/* bad input, bad mode */
	CHECK_INT(secrets_store("r1", KEYID1, SECRET1 "\n", &where, &err), CM_E_INVALID);
	CHECK(err_clean(&err, SECRET1));
	CHECK_INT(secrets_store("r[1]", KEYID1, SECRET1, &where, &err), CM_E_INVALID);
	setenv("CLOUDMOUNT_SECRETS", "vault", 1);
	CHECK_INT(secrets_store("r1", KEYID1, SECRET1, &where, &err), CM_E_CONFIG);
	CHECK(contains(err.message, "CLOUDMOUNT_SECRETS"));
	CHECK_INT(secrets_lookup("r1", &secret, NULL, &where, &err), CM_E_CONFIG);
	CHECK_INT(secrets_delete("r1", &err), CM_E_CONFIG);
}

/* No D-Bus session: auto mode falls back to the file and says so; keyring mode refuses. */
TEST(dispatch_no_bus)
{
	struct cm_err err = { 0 };
	enum secret_backend where = SECRET_BACKEND_NONE;
	char *secret = NULL;
	char *saved_backend = getenv("SECRET_BACKEND") ? strdup(getenv("SECRET_BACKEND")) : NULL;

	fresh_config();
	unsetenv("SECRET_BACKEND");
	REQUIRE(!secrets_keyring_available());
	unsetenv("CLOUDMOUNT_SECRETS");
	CHECK_INT(secrets_store("r1", KEYID1, SECRET1, &where, &err), CM_OK);
	CHECK_INT(where, SECRET_BACKEND_FILE);
	CHECK_INT(mode_of(cred_path), 0600);
	CHECK_INT(secrets_lookup("r1", &secret, NULL, &where, &err), CM_OK);
	CHECK_INT(where, SECRET_BACKEND_FILE);
	secrets_free(secret);
	secret = NULL;
	CHECK_INT(secrets_delete("r1", &err), CM_OK);
	CHECK_INT(secrets_lookup("r1", &secret, NULL, &where, &err), CM_E_NOT_FOUND);
	CHECK(contains(err.message, "could not be searched"));

	setenv("CLOUDMOUNT_SECRETS", "keyring", 1);
	CHECK_INT(secrets_store("r2", KEYID1, SECRET1, &where, &err), CM_E_CONFIG);
	CHECK_INT(where, SECRET_BACKEND_NONE);
	CHECK(contains(err.message, "no file fallback"));
	CHECK(err_clean(&err, SECRET1));
	CHECK_INT(secrets_lookup("r2", &secret, NULL, &where, &err), CM_E_CONFIG);
	CHECK_INT(secrets_delete("r2", &err), CM_E_CONFIG);
	setenv("CLOUDMOUNT_SECRETS", "file", 1);
	if (saved_backend)
		setenv("SECRET_BACKEND", saved_backend, 1);
	free(saved_backend);
}

/* ---- the libsecret backend, through libsecret's file backend ---- */

#ifdef CM_HAVE_LIBSECRET
static const SecretSchema test_schema = {
	.name = "org.cloudmount.Remote",
	.flags = SECRET_SCHEMA_NONE,
	.attributes = {
		{ .name = "remote", .type = SECRET_SCHEMA_ATTRIBUTE_STRING },
		{ .name = "access_key_id", .type = SECRET_SCHEMA_ATTRIBUTE_STRING },
		{ .name = NULL, .type = 0 },
	},
};

/* How many items the keyring holds for remote (-1 on error). */
static int keyring_items(const char *remote)
{
	GError *gerr = NULL;
	GList *items = secret_password_search_sync(&test_schema, SECRET_SEARCH_ALL, NULL, &gerr,
						   "remote", remote, NULL);
	int n = (int)g_list_length(items);

	if (gerr) {
		g_error_free(gerr);
		n = -1;
	}
	g_list_free_full(items, g_object_unref);
	return n;
}

/* The store / lookup / replace / delete cycle on whatever libsecret backend is active. */
static void keyring_cycle(const char *remote)
{
	struct cm_err err = { 0 };
	enum secret_backend where = SECRET_BACKEND_NONE;
	char *secret = NULL, *key_id = NULL;

	unsetenv("CLOUDMOUNT_SECRETS");
	REQUIRE(secrets_keyring_available());
	CHECK_INT(secrets_delete(remote, &err), CM_OK);        /* leftovers of an earlier run */
	REQUIRE(secrets_store(remote, KEYID1, SECRET1, &where, &err) == CM_OK);
	CHECK_INT(where, SECRET_BACKEND_KEYRING);
	CHECK(access(cred_path, F_OK) != 0);   /* the file was not used */
	CHECK_INT(keyring_items(remote), 1);
	REQUIRE(secrets_lookup(remote, &secret, &key_id, &where, &err) == CM_OK);
	CHECK_INT(where, SECRET_BACKEND_KEYRING);
	CHECK(secret && strcmp(secret, SECRET1) == 0);
	CHECK_STR(key_id, KEYID1);
	secrets_free(secret);
	free(key_id);
	secret = key_id = NULL;

	/* same key id: replaced in place; new key id: the old item goes */
	CHECK_INT(secrets_keyring_store(remote, KEYID1, SECRET2, &err), CM_OK);
	CHECK_INT(keyring_items(remote), 1);
	CHECK_INT(secrets_keyring_store(remote, KEYID2, SECRET2, &err), CM_OK);
	CHECK_INT(keyring_items(remote), 1);
	REQUIRE(secrets_keyring_lookup(remote, &secret, &key_id, &err) == CM_OK);
	CHECK(secret && strcmp(secret, SECRET2) == 0);
	CHECK_STR(key_id, KEYID2);
	secrets_free(secret);
	free(key_id);
	secret = key_id = NULL;

	/* keyring mode works too, and a delete reaches the keyring */
	setenv("CLOUDMOUNT_SECRETS", "keyring", 1);
	CHECK_INT(secrets_lookup(remote, &secret, NULL, &where, &err), CM_OK);
	CHECK_INT(where, SECRET_BACKEND_KEYRING);
	secrets_free(secret);
	secret = NULL;
	CHECK_INT(secrets_delete(remote, &err), CM_OK);
	CHECK_INT(keyring_items(remote), 0);
	CHECK_INT(secrets_lookup(remote, &secret, NULL, &where, &err), CM_E_NOT_FOUND);
	CHECK_INT(secrets_keyring_lookup(remote, &secret, NULL, &err), CM_E_NOT_FOUND);
	CHECK(err_clean(&err, SECRET2));
	CHECK_INT(secrets_keyring_delete(remote, &err), CM_OK);        /* missing: fine */
	unsetenv("CLOUDMOUNT_SECRETS");

	/* a secret in the file is found when the keyring has none; delete clears both */
	setenv("CLOUDMOUNT_SECRETS", "file", 1);
	REQUIRE(secrets_store(remote, KEYID1, SECRET1, &where, &err) == CM_OK);
	unsetenv("CLOUDMOUNT_SECRETS");
	CHECK_INT(secrets_keyring_store(remote, KEYID2, SECRET2, &err), CM_OK);
	CHECK_INT(secrets_lookup(remote, &secret, NULL, &where, &err), CM_OK);
	CHECK_INT(where, SECRET_BACKEND_KEYRING);      /* keyring first */
	CHECK(secret && strcmp(secret, SECRET2) == 0);
	secrets_free(secret);
	secret = NULL;
	CHECK_INT(secrets_keyring_delete(remote, &err), CM_OK);
	CHECK_INT(secrets_lookup(remote, &secret, NULL, &where, &err), CM_OK);
	CHECK_INT(where, SECRET_BACKEND_FILE);         /* then the file */
	CHECK(secret && strcmp(secret, SECRET1) == 0);
	secrets_free(secret);
	secret = NULL;
	CHECK_INT(secrets_keyring_store(remote, KEYID2, SECRET2, &err), CM_OK);
	CHECK_INT(secrets_delete(remote, &err), CM_OK);
	CHECK_INT(keyring_items(remote), 0);
	CHECK_INT(secrets_lookup(remote, &secret, NULL, &where, &err), CM_E_NOT_FOUND);
	setenv("CLOUDMOUNT_SECRETS", "file", 1);
}

TEST(libsecret_file_backend)
{
	char *keyring;

	fresh_config();
	setenv("SECRET_BACKEND", "file", 1);
	keyring_cycle("unit-remote");
	/* the keyring file is encrypted: no secret in clear */
	keyring = slurp(getenv("SECRET_FILE_TEST_PATH"));
	CHECK(keyring != NULL);
	CHECK(!contains(keyring, SECRET1) && !contains(keyring, SECRET2));
	free(keyring);
	unsetenv("SECRET_BACKEND");
}

TEST(real_keyring_cycle)
{
	fresh_config();
	keyring_cycle("cm-test-cycle");
}
#endif

/* ---- --real-keyring single commands ---- */

static int real_command(const char *cmd, const char *remote)
{
	struct cm_err err = { 0 };
	enum secret_backend where = SECRET_BACKEND_NONE;
	const char *want = getenv("TEST_SECRET_VALUE");
	const char *want_id = getenv("TEST_ACCESS_KEY_ID");
	char *secret = NULL, *key_id = NULL;
	enum cm_status st;

	if (strcmp(cmd, "store") == 0) {
		if (!want || !want_id) {
			fprintf(stderr, "set TEST_SECRET_VALUE and TEST_ACCESS_KEY_ID\n");
			return 2;
		}
		st = secrets_store(remote, want_id, want, &where, &err);
	} else if (strcmp(cmd, "lookup") == 0) {
		st = secrets_lookup(remote, &secret, &key_id, &where, &err);
	} else if (strcmp(cmd, "delete") == 0) {
		st = secrets_delete(remote, &err);
	} else {
		fprintf(stderr, "usage: test_secrets --real-keyring [store|lookup|delete NAME]\n");
		return 2;
	}
	if (st != CM_OK) {
		char line[700];

		printf("error: %s\n", cm_err_format(&err, line, sizeof(line)));
		return 1;
	}
	if (strcmp(cmd, "delete") == 0) {
		printf("deleted\n");
		return 0;
	}
	printf("backend: %s\n", where == SECRET_BACKEND_KEYRING ? "keyring" :
	       where == SECRET_BACKEND_FILE ? "file" : "none");
	if (secret) {
		printf("secret: %s\n", want && strcmp(secret, want) == 0 ? "matches" : "differs");
		printf("key id: %s\n", want_id && key_id && strcmp(key_id, want_id) == 0 ? "matches" : "differs");
	}
	secrets_free(secret);
	free(key_id);
	return 0;
}

TH_MAIN_BEGIN("test_secrets")
	int real = argc > 1 && strcmp(argv[1], "--real-keyring") == 0;
	char path[300];

	if (real && argc == 4)
		return real_command(argv[2], argv[3]);
	snprintf(base_dir, sizeof(base_dir), "%s/cm-secrets.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(base_dir)) {
		perror("mkdtemp");
		return 1;
	}
	if (real) {
#ifdef CM_HAVE_LIBSECRET
		th.prog = "test_secrets[real-keyring]";
		unsetenv("SECRET_BACKEND");
		RUN(real_keyring_cycle);
#else
		fprintf(stderr, "test_secrets: built without libsecret\n");
		th.failed++;
#endif
	} else {
		/* Keep a developer's real keyring out of the unit tests. */
		unsetenv("DBUS_SESSION_BUS_ADDRESS");
		unsetenv("XDG_RUNTIME_DIR");
		unsetenv("DISPLAY");
		unsetenv("SECRET_BACKEND");
		snprintf(path, sizeof(path), "%s/libsecret.keyring", base_dir);
		setenv("SECRET_FILE_TEST_PATH", path, 1);
		setenv("SECRET_FILE_TEST_PASSWORD", "unit-test-password", 1);
		RUN(file_store_lookup_delete);
		RUN(file_modes);
		RUN(file_loose_mode_warns);
		RUN(file_preserves_other_sections);
		RUN(file_atomic_rewrite);
		RUN(file_corrupt_is_config_error);
		RUN(file_rejects_bad_values);
		RUN(paths_and_descriptions);
		RUN(dispatch_file_mode);
		RUN(dispatch_no_bus);
#ifdef CM_HAVE_LIBSECRET
		RUN(libsecret_file_backend);
#endif
	}
	nftw(base_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
TH_MAIN_END
