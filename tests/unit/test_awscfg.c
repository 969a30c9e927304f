/*
 * test_awscfg.c - unit tests for the INI reader, awscfg_load's precedence rules,
 * credential_process and the credentials provider.
 *
 * Each test runs in a fresh temporary directory that is HOME, with every AWS_*
 * variable removed and AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE pointing
 * into it. credential_process tests write small sh scripts there; a counter
 * file shows how often a script ran. Secret values are compared with CHECK
 * (which prints only the expression), never CHECK_STR, so that a failure does
 * not print them.
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/awscfg.h"
#include "config/ini.h"
#include "tharness.h"

extern char **environ;

static char test_dir[256];
static char cred_path[512];
static char config_path[512];

/* ---- helpers ---- */

static int str_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static int contains(const char *haystack, const char *needle)
{
	return haystack && needle && strstr(haystack, needle) != NULL;
}

/* Remove every AWS_* variable from the environment. */
static void clear_aws_env(void)
{
	for (;;) {
		char name[256];
		const char *eq;
		size_t i;

		for (i = 0; environ[i]; i++)
			if (strncmp(environ[i], "AWS_", 4) == 0)
				break;
		if (!environ[i])
			return;
		eq = strchr(environ[i], '=');
		snprintf(name, sizeof(name), "%.*s", eq ? (int)(eq - environ[i]) : 255, environ[i]);
		unsetenv(name);
	}
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Write text to test_dir/name (mode 0755 when exec), returning the path in buf. */
static const char *write_file(const char *name, const char *text, int exec, char *buf,
			      size_t len)
{
	FILE *f;

	snprintf(buf, len, "%s/%s", test_dir, name);
	f = fopen(buf, "w");
	REQUIRE(f != NULL);
	fputs(text, f);
	fclose(f);
	if (exec)
		chmod(buf, 0755);
	return buf;
}

static void write_credentials(const char *text)
{
	char buf[512];

	write_file("credentials", text, 0, buf, sizeof(buf));
}

static void write_config(const char *text)
{
	char buf[512];

	write_file("config", text, 0, buf, sizeof(buf));
}

/* A fresh directory, a clean environment, and the two file variables set. */
static void setup(void)
{
	if (test_dir[0])
		nftw(test_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	snprintf(test_dir, sizeof(test_dir), "%s/test_awscfg.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	REQUIRE(mkdtemp(test_dir) != NULL);
	clear_aws_env();
	setenv("HOME", test_dir, 1);
	snprintf(cred_path, sizeof(cred_path), "%s/credentials", test_dir);
	snprintf(config_path, sizeof(config_path), "%s/config", test_dir);
	setenv("AWS_SHARED_CREDENTIALS_FILE", cred_path, 1);
	setenv("AWS_CONFIG_FILE", config_path, 1);
}

static struct awscfg_request no_request(void)
{
	struct awscfg_request r = { .addressing = -1 };

	return r;
}

/* Load with req (NULL: none); REQUIRE success. */
static void load_ok(const struct awscfg_request *req, struct awscfg *cfg)
{
	struct cm_err err;
	enum cm_status st;

	cm_err_clear(&err);
	st = awscfg_load(req, cfg, &err);
	if (st != CM_OK)
		fprintf(stderr, "awscfg_load: %s\n", err.message);
	REQUIRE(st == CM_OK);
}

static int read_counter(void)
{
	char path[512];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "%s/count", test_dir);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%d", &n) != 1)
		n = -1;
	fclose(f);
	return n;
}

/* ISO 8601 UTC for now + delta seconds. */
static void iso_time(long delta, char *buf, size_t len)
{
	time_t t = time(NULL) + delta;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/*
 * A credential_process script: on its Nth run (counted in test_dir/count) it
 * runs the Nth of the shell snippets (the last one for later runs).
 */
static const char *write_counting_script(const char *const *snippets, size_t n, char *buf,
					 size_t len)
{
	char text[8192];
	size_t used;

	used = (size_t)snprintf(text, sizeof(text),
				"#!/bin/sh\n"
				"c=\"%s/count\"\n"
				"n=$(cat \"$c\" 2>/dev/null || echo 0)\n"
				"n=$((n + 1))\n"
				"echo $n > \"$c\"\n"
				"case $n in\n", test_dir);
	for (size_t i = 0; i < n; i++) {
		char label[24];

		snprintf(label, sizeof(label), "%zu", i + 1);
		used += (size_t)snprintf(text + used, sizeof(text) - used, "%s) %s ;;\n",
					 i + 1 == n ? "*" : label, snippets[i]);
	}
	snprintf(text + used, sizeof(text) - used, "esac\n");
	return write_file("proc.sh", text, 1, buf, len);
}

/* ---- the INI reader ---- */

TEST(ini_basic)
{
	static const char text[] =
		"# comment\n"
		"; another\n"
		"[default] trailing text is ignored\n"
		"  region = us-west-2\n"
		"Endpoint_URL  :  http://localhost:9000  \n"
		"s3 =\n"
		"    addressing_style = path\n"
		"\n"
		"    # a comment inside\n"
		"    signature_version=s3v4\n"
		"note = first # not a comment\n"
		"  second line\n"
		"[ profile  x ]\n"
		"empty =\n";
	struct ini_file f;
	struct cm_err err;
	const struct ini_entry *e;

	cm_err_clear(&err);
	REQUIRE(ini_parse(text, sizeof(text) - 1, "t.ini", &f, &err) == CM_OK);
	CHECK_INT(f.n_sections, 2);
	CHECK_STR(ini_get(&f, "default", "region"), "us-west-2");
	CHECK_STR(ini_get(&f, "default", "endpoint_url"), "http://localhost:9000");
	CHECK_STR(ini_get(&f, "default", "ENDPOINT_URL"), "http://localhost:9000");
	CHECK_STR(ini_get(&f, "default", "s3"), "");
	CHECK_STR(ini_get_sub(&f, "default", "s3", "addressing_style"), "path");
	CHECK_STR(ini_get_sub(&f, "default", "s3", "signature_version"), "s3v4");
	CHECK(ini_get_sub(&f, "default", "s3", "Addressing_Style") == NULL);
	CHECK_STR(ini_get(&f, "default", "note"), "first # not a comment\nsecond line");
	CHECK_STR(ini_get(&f, "profile  x", "empty"), "");
	CHECK(ini_get(&f, "Default", "region") == NULL);
	CHECK(ini_get(&f, "default", "nothing") == NULL);
	e = ini_find_entry(ini_find_section(&f, "default"), "s3");
	REQUIRE(e != NULL);
	CHECK_INT(e->line, 6);
	CHECK_INT(e->n_subs, 2);
	CHECK_INT(e->subs[0].line, 7);
	CHECK_INT(e->subs[1].line, 10);
	ini_file_release(&f);
	ini_file_release(&f);   /* harmless twice */
}

/* Parse text expecting CM_E_CONFIG with exactly this message. */
static void expect_ini_error(const char *text, const char *message)
{
	struct ini_file f;
	struct cm_err err;

	cm_err_clear(&err);
	CHECK_INT(ini_parse(text, strlen(text), "t.ini", &f, &err), CM_E_CONFIG);
	CHECK_STR(err.message, message);
	CHECK_INT(f.n_sections, 0);
	ini_file_release(&f);
}

TEST(ini_errors)
{
	expect_ini_error("[a]\nx = 1\nAKIAsecretSECRET\n",
			 "t.ini:3: expected \"key = value\" or a [section] header");
	expect_ini_error("\n\nregion = x\n", "t.ini:3: setting before any [section] header");
	expect_ini_error("[a]\n[profile b\n", "t.ini:2: unterminated section header (no ']')");
	expect_ini_error("[a]\n[  ]\n", "t.ini:2: empty section name");
	expect_ini_error("[a]\n = v\n", "t.ini:2: missing key before the '=' or ':'");
	expect_ini_error("[a]\n[b]\n[a]\n", "t.ini:3: section repeated (first at line 1)");
	expect_ini_error("[a]\nk = 1\n\nK = 2\n",
			 "t.ini:4: key repeated in this section (first at line 2)");
	expect_ini_error("[a]\ns3 =\n  addressing_style = path\n  bogus\n",
			 "t.ini:4: expected \"key = value\" in the indented sub-section");
	expect_ini_error("[a]\ns3 =\n  = path\n",
			 "t.ini:3: missing key before '=' in the indented sub-section");
	{
		static const char nul[] = "[a]\nk = v\0x\n";
		struct ini_file f;
		struct cm_err err;

		cm_err_clear(&err);
		CHECK_INT(ini_parse(nul, sizeof(nul) - 1, "t.ini", &f, &err), CM_E_CONFIG);
		CHECK_STR(err.message, "t.ini:2: NUL byte in line");
		CHECK_STR(err.detail, "line 2");
	}
}

TEST(ini_crlf_bom_and_long_lines)
{
	static const char crlf[] = "\xEF\xBB\xBF[default]\r\nregion = eu-west-1\r\n"
				   "s3 =\r\n  addressing_style = virtual\r\n\r\nbad line\r\n";
	size_t token_len = 100000;
	char *big = malloc(token_len + 64), *token = malloc(token_len + 1);
	struct ini_file f;
	struct cm_err err;

	REQUIRE(big && token);
	cm_err_clear(&err);
	CHECK_INT(ini_parse(crlf, sizeof(crlf) - 1, "c.ini", &f, &err), CM_E_CONFIG);
	CHECK_STR(err.message, "c.ini:6: expected \"key = value\" or a [section] header");
	REQUIRE(ini_parse(crlf, sizeof(crlf) - 11, "c.ini", &f, &err) == CM_OK);
	CHECK_STR(ini_get(&f, "default", "region"), "eu-west-1");
	CHECK_STR(ini_get_sub(&f, "default", "s3", "addressing_style"), "virtual");
	ini_file_release(&f);

	/* old Mac line ends count as lines too */
	CHECK_INT(ini_parse("[a]\rk = v\rbad\r", 13, "m.ini", &f, &err), CM_E_CONFIG);
	CHECK_STR(err.message, "m.ini:3: expected \"key = value\" or a [section] header");

	memset(token, 'T', token_len);
	token[token_len] = '\0';
	snprintf(big, token_len + 64, "[x]\ntoken = %s\n", token);
	REQUIRE(ini_parse(big, strlen(big), NULL, &f, &err) == CM_OK);
	CHECK(str_eq(ini_get(&f, "x", "token"), token));
	CHECK_STR(f.filename, "<input>");
	ini_file_release(&f);
	free(big);
	free(token);
}

TEST(ini_load_file_errors)
{
	struct ini_file f;
	struct cm_err err;
	char path[512];

	setup();
	cm_err_clear(&err);
	snprintf(path, sizeof(path), "%s/nope", test_dir);
	CHECK_INT(ini_load_file(path, &f, &err), CM_E_NOT_FOUND);
	CHECK_INT(ini_load_file(test_dir, &f, &err), CM_E_CONFIG);
	CHECK(contains(err.message, "Is a directory"));
	write_file("ok.ini", "[a]\nb = c\n", 0, path, sizeof(path));
	REQUIRE(ini_load_file(path, &f, &err) == CM_OK);
	CHECK_STR(ini_get(&f, "a", "b"), "c");
	CHECK_STR(f.filename, path);
	ini_file_release(&f);
}

/* ---- settings ---- */

TEST(defaults_with_no_files)
{
	struct awscfg cfg;

	setup();
	load_ok(NULL, &cfg);
	CHECK_STR(cfg.profile, "default");
	CHECK_STR(cfg.region, "us-east-1");
	CHECK(cfg.endpoint_url == NULL);
	CHECK(cfg.ca_bundle == NULL);
	CHECK_INT(cfg.addressing, S3_ADDR_AUTO);
	CHECK(cfg.creds.access_key_id == NULL);
	CHECK(cfg.credential_process == NULL);
	CHECK(cfg.creds_source == NULL);
	CHECK(contains(cfg.tried, "environment (AWS_ACCESS_KEY_ID), "));
	CHECK(contains(cfg.tried, "/credentials [default] (no such file), credential_process, "));
	CHECK(contains(cfg.tried, "/config [default] (no such file)"));
	awscfg_release(&cfg);
	awscfg_release(&cfg);
}

TEST(profile_precedence)
{
	struct awscfg_request req = no_request();
	struct awscfg cfg;

	setup();
	write_config("[default]\nregion = r-default\n"
		     "[profile env1]\nregion = r-env1\n"
		     "[profile env2]\nregion = r-env2\n"
		     "[profile cli]\nregion = r-cli\n");
	load_ok(&req, &cfg);
	CHECK_STR(cfg.profile, "default");
	CHECK_STR(cfg.region, "r-default");
	awscfg_release(&cfg);

	setenv("AWS_DEFAULT_PROFILE", "env2", 1);
	load_ok(&req, &cfg);
	CHECK_STR(cfg.region, "r-env2");
	awscfg_release(&cfg);

	setenv("AWS_PROFILE", "env1", 1);
	load_ok(&req, &cfg);
	CHECK_STR(cfg.profile, "env1");
	CHECK_STR(cfg.region, "r-env1");
	awscfg_release(&cfg);

	req.profile = "cli";
	load_ok(&req, &cfg);
	CHECK_STR(cfg.profile, "cli");
	CHECK_STR(cfg.region, "r-cli");
	awscfg_release(&cfg);
}

TEST(config_section_names)
{
	struct awscfg_request req = no_request();
	struct awscfg cfg;
	struct cm_err err;

	setup();
	/* In the config file "[x]" is not profile x; "[profile x]" is. */
	write_config("[x]\nregion = wrong\n[profile y]\nregion = r-y\n"
		     "[profile  \"z z\"]\nregion = r-z\n[profile default]\nregion = r-pd\n");
	req.profile = "x";
	cm_err_clear(&err);
	CHECK_INT(awscfg_load(&req, &cfg, &err), CM_E_CONFIG);
	CHECK(cfg.profile == NULL);
	req.profile = "y";
	load_ok(&req, &cfg);
	CHECK_STR(cfg.region, "r-y");
	awscfg_release(&cfg);
	req.profile = "z z";
	load_ok(&req, &cfg);
	CHECK_STR(cfg.region, "r-z");
	awscfg_release(&cfg);
	req.profile = NULL;
	load_ok(&req, &cfg);
	CHECK_STR(cfg.region, "r-pd");
	awscfg_release(&cfg);

	/* A profile that only the credentials file has exists too. */
	write_credentials("[x]\naws_access_key_id = AKIDX\naws_secret_access_key = SX\n");
	req.profile = "x";
	load_ok(&req, &cfg);
	CHECK_STR(cfg.region, "us-east-1");
	CHECK_STR(cfg.creds.access_key_id, "AKIDX");
	awscfg_release(&cfg);
}

TEST(missing_profile)
{
	struct awscfg_request req = no_request();
	struct awscfg cfg;
	struct cm_err err;
	char expected[1200];

	setup();
	write_config("[default]\nregion = x\n");
	cm_err_clear(&err);
	req.profile = "ghost";
	CHECK_INT(awscfg_load(&req, &cfg, &err), CM_E_CONFIG);
	snprintf(expected, sizeof(expected), "profile ghost not found in %s or %s", cred_path,
		 config_path);
	CHECK_STR(err.message, expected);

	req.profile = NULL;
	setenv("AWS_PROFILE", "ghost", 1);
	CHECK_INT(awscfg_load(&req, &cfg, &err), CM_E_CONFIG);
	CHECK_STR(err.message, expected);

	/* "default" need not exist unless named. */
	unsetenv("AWS_PROFILE");
	unlink(config_path);
	load_ok(&req, &cfg);
	awscfg_release(&cfg);
	setenv("AWS_PROFILE", "default", 1);
	CHECK_INT(awscfg_load(&req, &cfg, &err), CM_E_CONFIG);
}

TEST(region_precedence)
{
	struct awscfg_request req = no_request();
	struct awscfg cfg;

	setup();
	write_config("[default]\nregion = r-profile\n");
	load_ok(&req, &cfg);
	CHECK_STR(cfg.region, "r-profile");
	awscfg_release(&cfg);
	setenv("AWS_DEFAULT_REGION", "r-default-env", 1);
	load_ok(&req, &cfg);
	CHECK_STR(cfg.region, "r-default-env");
	awscfg_release(&cfg);
	setenv("AWS_REGION", "r-env", 1);
	load_ok(&req, &cfg);
	CHECK_STR(cfg.region, "r-env");
	awscfg_release(&cfg);
	req.region = "r-cli";
	load_ok(&req, &cfg);
	CHECK_STR(cfg.region, "r-cli");
	awscfg_release(&cfg);
}

TEST(endpoint_precedence)
{
	struct awscfg_request req = no_request();
	struct awscfg cfg;

	setup();
	write_config("[default]\nendpoint_url = http://global\n");
	load_ok(&req, &cfg);
	CHECK_STR(cfg.endpoint_url, "http://global");
	awscfg_release(&cfg);

	write_config("[default]\nendpoint_url = http://global\nservices = mine\n"
		     "[services mine]\ns3 =\n  endpoint_url = http://services\n");
	load_ok(&req, &cfg);
	CHECK_STR(cfg.endpoint_url, "http://services");
	awscfg_release(&cfg);

	write_config("[default]\nendpoint_url = http://global\nservices = mine\n"
		     "s3 =\n  endpoint_url = http://s3-sub\n"
		     "[services mine]\ns3 =\n  endpoint_url = http://services\n");
	load_ok(&req, &cfg);
	CHECK_STR(cfg.endpoint_url, "http://s3-sub");
	awscfg_release(&cfg);

	setenv("AWS_ENDPOINT_URL", "http://env-global", 1);
	load_ok(&req, &cfg);
	CHECK_STR(cfg.endpoint_url, "http://env-global");
	awscfg_release(&cfg);
	setenv("AWS_ENDPOINT_URL_S3", "http://env-s3", 1);
	load_ok(&req, &cfg);
	CHECK_STR(cfg.endpoint_url, "http://env-s3");
	awscfg_release(&cfg);
	req.endpoint_url = "http://cli";
	load_ok(&req, &cfg);
	CHECK_STR(cfg.endpoint_url, "http://cli");
	awscfg_release(&cfg);
}

TEST(addressing_style)
{
	struct awscfg_request req = no_request();
	struct awscfg cfg;
	struct cm_err err;
	char expected[600];

	setup();
	write_config("[default]\ns3 =\n  addressing_style = path\n");
	load_ok(&req, &cfg);
	CHECK_INT(cfg.addressing, S3_ADDR_PATH);
	awscfg_release(&cfg);
	req.addressing = S3_ADDR_VIRTUAL;
	load_ok(&req, &cfg);
	CHECK_INT(cfg.addressing, S3_ADDR_VIRTUAL);
	awscfg_release(&cfg);

	req.addressing = -1;
	write_config("[default]\nregion = x\n\ns3 =\n  endpoint_url = http://h\n"
		     "  addressing_style = sideways\n");
	cm_err_clear(&err);
	CHECK_INT(awscfg_load(&req, &cfg, &err), CM_E_CONFIG);
	snprintf(expected, sizeof(expected),
		 "%s:6: s3 addressing_style \"sideways\" is not auto, path or virtual",
		 config_path);
	CHECK_STR(err.message, expected);
	/* The request overrides a bad file value. */
	req.addressing = S3_ADDR_AUTO;
	load_ok(&req, &cfg);
	CHECK_INT(cfg.addressing, S3_ADDR_AUTO);
	CHECK_STR(cfg.endpoint_url, "http://h");
	awscfg_release(&cfg);
}

TEST(ca_bundle_precedence)
{
	struct awscfg_request req = no_request();
	struct awscfg cfg;

	setup();
	write_config("[default]\nca_bundle = /profile.pem\n");
	load_ok(&req, &cfg);
	CHECK_STR(cfg.ca_bundle, "/profile.pem");
	awscfg_release(&cfg);
	setenv("AWS_CA_BUNDLE", "/env.pem", 1);
	load_ok(&req, &cfg);
	CHECK_STR(cfg.ca_bundle, "/env.pem");
	awscfg_release(&cfg);
	req.ca_bundle = "/cli.pem";
	load_ok(&req, &cfg);
	CHECK_STR(cfg.ca_bundle, "/cli.pem");
	awscfg_release(&cfg);
}

TEST(malformed_files)
{
	struct awscfg cfg;
	struct cm_err err;
	char expected[600];

	setup();
	write_credentials("[default]\naws_access_key_id = AKID\n"
			  "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n");
	cm_err_clear(&err);
	CHECK_INT(awscfg_load(NULL, &cfg, &err), CM_E_CONFIG);
	snprintf(expected, sizeof(expected),
		 "%s:3: expected \"key = value\" or a [section] header", cred_path);
	CHECK_STR(err.message, expected);
	CHECK(!contains(err.message, "wJalr") && !contains(err.detail, "wJalr"));
	CHECK(cfg.profile == NULL && cfg.tried == NULL);

	unlink(cred_path);
	write_config("region = x\n");
	CHECK_INT(awscfg_load(NULL, &cfg, &err), CM_E_CONFIG);
	snprintf(expected, sizeof(expected), "%s:1: setting before any [section] header",
		 config_path);
	CHECK_STR(err.message, expected);
}

TEST(tilde_in_file_variables)
{
	struct awscfg cfg;
	char buf[512];

	setup();
	mkdir(strcat(strcpy(buf, test_dir), "/sub"), 0700);
	write_file("sub/cfg", "[default]\nregion = tilde\n", 0, buf, sizeof(buf));
	setenv("AWS_CONFIG_FILE", "~/sub/cfg", 1);
	load_ok(NULL, &cfg);
	CHECK_STR(cfg.region, "tilde");
	awscfg_release(&cfg);

	/* Without the variables, HOME/.aws/ is used. */
	unsetenv("AWS_CONFIG_FILE");
	unsetenv("AWS_SHARED_CREDENTIALS_FILE");
	mkdir(strcat(strcpy(buf, test_dir), "/.aws"), 0700);
	write_file(".aws/config", "[default]\nregion = home\n", 0, buf, sizeof(buf));
	load_ok(NULL, &cfg);
	CHECK_STR(cfg.region, "home");
	CHECK(contains(cfg.tried, "/.aws/credentials [default] (no such file)"));
	awscfg_release(&cfg);
}

/* ---- credentials ---- */

TEST(credentials_precedence)
{
	struct awscfg_request req = no_request();
	struct awscfg cfg;
	char expected[1200], script[512];

	setup();
	write_file("p.sh", "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"AKPROC\", "
		   "\"SecretAccessKey\": \"SPROC\"}'\n", 1, script, sizeof(script));
	{
		char text[1200];

		snprintf(text, sizeof(text),
			 "[default]\naws_access_key_id = AKCONFIG\naws_secret_access_key = SCONFIG\n"
			 "credential_process = %s\n"
			 "[profile p]\naws_access_key_id = AKCONFIGP\naws_secret_access_key = SCONFIGP\n",
			 script);
		write_config(text);
	}
	write_credentials("[default]\nAWS_ACCESS_KEY_ID = AKFILE\naws_secret_access_key = SFILE\n"
			  "aws_session_token = TFILE\n[p]\nregion = r-from-cred-file\n");
	setenv("AWS_ACCESS_KEY_ID", "AKENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "SENV", 1);
	setenv("AWS_SESSION_TOKEN", "TENV", 1);

	load_ok(&req, &cfg);
	CHECK_STR(cfg.creds.access_key_id, "AKENV");
	CHECK(str_eq(cfg.creds.secret_access_key, "SENV"));
	CHECK(str_eq(cfg.creds.session_token, "TENV"));
	CHECK_STR(cfg.creds_source, "environment");
	CHECK_STR(cfg.tried, "environment (AWS_ACCESS_KEY_ID)");
	awscfg_release(&cfg);

	/* AWS_PROFILE does not turn the environment off... */
	setenv("AWS_PROFILE", "default", 1);
	load_ok(&req, &cfg);
	CHECK_STR(cfg.creds_source, "environment");
	awscfg_release(&cfg);
	/* ...but a profile on the command line does. */
	unsetenv("AWS_PROFILE");
	req.profile = "default";
	load_ok(&req, &cfg);
	CHECK_STR(cfg.creds.access_key_id, "AKFILE");
	CHECK(str_eq(cfg.creds.secret_access_key, "SFILE"));
	CHECK(str_eq(cfg.creds.session_token, "TFILE"));
	snprintf(expected, sizeof(expected), "shared credentials file %s, profile default",
		 cred_path);
	CHECK_STR(cfg.creds_source, expected);
	CHECK(cfg.credential_process == NULL);
	awscfg_release(&cfg);

	/* No keys in the credentials file: the config profile's credential_process. */
	write_credentials("[default]\nregion = x\n[p]\nregion = r-from-cred-file\n");
	load_ok(&req, &cfg);
	CHECK(cfg.creds.access_key_id == NULL);
	CHECK_STR(cfg.credential_process, script);
	snprintf(expected, sizeof(expected), "credential_process of profile default in %s",
		 config_path);
	CHECK_STR(cfg.creds_source, expected);
	awscfg_release(&cfg);

	/* Then the config file's static keys; the credentials file's region wins. */
	req.profile = "p";
	load_ok(&req, &cfg);
	CHECK_STR(cfg.creds.access_key_id, "AKCONFIGP");
	CHECK(str_eq(cfg.creds.secret_access_key, "SCONFIGP"));
	CHECK(cfg.creds.session_token == NULL);
	CHECK_STR(cfg.region, "r-from-cred-file");
	snprintf(expected, sizeof(expected), "config file %s, profile p", config_path);
	CHECK_STR(cfg.creds_source, expected);
	snprintf(expected, sizeof(expected),
		 "environment (not used: profile p named explicitly), %s [p], "
		 "credential_process, %s [profile p]", cred_path, config_path);
	CHECK_STR(cfg.tried, expected);
	awscfg_release(&cfg);

	/* credential_process in the credentials file counts too. */
	{
		char text[1200];

		snprintf(text, sizeof(text), "[p]\ncredential_process = %s --x\n", script);
		write_credentials(text);
	}
	load_ok(&req, &cfg);
	CHECK(cfg.creds.access_key_id == NULL);
	CHECK(contains(cfg.credential_process, "--x"));
	snprintf(expected, sizeof(expected), "credential_process of profile p in %s", cred_path);
	CHECK_STR(cfg.creds_source, expected);
	awscfg_release(&cfg);
}

TEST(long_session_token)
{
	struct awscfg cfg;
	char token[1501], *text;
	size_t len = 1500 + 200;

	setup();
	for (size_t i = 0; i < 1500; i++)
		token[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i % 64];
	token[1500] = '\0';
	text = malloc(len);
	REQUIRE(text != NULL);
	snprintf(text, len, "[default]\naws_access_key_id = AKID\naws_secret_access_key = S\n"
		 "aws_session_token = %s\n", token);
	write_credentials(text);
	free(text);
	load_ok(NULL, &cfg);
	REQUIRE(cfg.creds.session_token != NULL);
	CHECK_INT(strlen(cfg.creds.session_token), 1500);
	CHECK(str_eq(cfg.creds.session_token, token));
	awscfg_release(&cfg);
}

TEST(partial_credentials)
{
	struct awscfg_request req = no_request();
	struct awscfg cfg;
	struct cm_err err;
	char expected[600];

	setup();
	cm_err_clear(&err);
	setenv("AWS_ACCESS_KEY_ID", "AKENV", 1);
	CHECK_INT(awscfg_load(&req, &cfg, &err), CM_E_CREDENTIALS);
	CHECK_STR(err.message, "partial credentials in the environment: AWS_ACCESS_KEY_ID is set "
		  "but AWS_SECRET_ACCESS_KEY is not");
	unsetenv("AWS_ACCESS_KEY_ID");
	setenv("AWS_SECRET_ACCESS_KEY", "SENV-secret", 1);
	CHECK_INT(awscfg_load(&req, &cfg, &err), CM_E_CREDENTIALS);
	CHECK_STR(err.message, "partial credentials in the environment: AWS_SECRET_ACCESS_KEY is "
		  "set but AWS_ACCESS_KEY_ID is not");
	CHECK(!contains(err.message, "SENV-secret"));
	unsetenv("AWS_SECRET_ACCESS_KEY");

	write_credentials("[default]\naws_secret_access_key = SFILE-secret\n");
	CHECK_INT(awscfg_load(&req, &cfg, &err), CM_E_CREDENTIALS);
	snprintf(expected, sizeof(expected),
		 "partial credentials in %s, profile default: aws_access_key_id is missing",
		 cred_path);
	CHECK_STR(err.message, expected);
	CHECK(!contains(err.message, "SFILE-secret"));

	/* a caller with credentials of its own (a remote's keyring secret) is not stopped by them */
	setenv("AWS_ACCESS_KEY_ID", "AKENV", 1);
	req.skip_credentials = 1;
	cm_err_clear(&err);
	REQUIRE(awscfg_load(&req, &cfg, &err) == CM_OK);
	CHECK(cfg.creds.access_key_id == NULL);
	CHECK(cfg.credential_process == NULL);
	awscfg_release(&cfg);
	unsetenv("AWS_ACCESS_KEY_ID");
}

TEST(no_credentials_error_lists_sources)
{
	struct awscfg cfg;
	struct creds_provider *p;
	struct aws_credentials creds;
	struct cm_err err;
	char expected[1200];

	setup();
	write_config("[default]\nregion = x\n");
	load_ok(NULL, &cfg);
	snprintf(expected, sizeof(expected),
		 "environment (AWS_ACCESS_KEY_ID), %s [default] (no such file), "
		 "credential_process, %s [default]", cred_path, config_path);
	CHECK_STR(cfg.tried, expected);
	p = creds_provider_create(&cfg);
	CHECK(!creds_provider_has_source(p));
	cm_err_clear(&err);
	CHECK_INT(creds_provider_get(p, &creds, &err), CM_E_CREDENTIALS);
	CHECK(contains(err.message, "no AWS credentials found; tried environment"));
	CHECK(contains(err.message, "/credentials [default] (no such file)"));
	CHECK(creds.access_key_id == NULL);
	creds_provider_destroy(p);
	creds_provider_destroy(NULL);
	awscfg_release(&cfg);
}

TEST(static_provider)
{
	struct awscfg cfg;
	struct creds_provider *p;
	struct aws_credentials a, b;
	struct cm_err err;

	setup();
	write_credentials("[default]\naws_access_key_id = AKID\naws_secret_access_key = SKEY\n");
	load_ok(NULL, &cfg);
	p = creds_provider_create(&cfg);
	awscfg_release(&cfg);   /* the provider keeps its own copy */
	CHECK(creds_provider_has_source(p));
	cm_err_clear(&err);
	REQUIRE(creds_provider_get(p, &a, &err) == CM_OK);
	CHECK_STR(a.access_key_id, "AKID");
	CHECK(str_eq(a.secret_access_key, "SKEY"));
	CHECK(a.session_token == NULL);
	REQUIRE(aws_credentials_copy(&b, &a) == 0);
	CHECK(str_eq(b.secret_access_key, "SKEY"));
	aws_credentials_release(&a);
	CHECK(a.secret_access_key == NULL);
	aws_credentials_release(&b);
	creds_provider_destroy(p);
}

/* ---- credential_process ---- */

/* Run command, expecting failure with status st and a message containing text. */
static void expect_process_error(const char *command, int timeout_s, enum cm_status st,
				 const char *text)
{
	struct aws_credentials creds;
	struct cm_err err;

	cm_err_clear(&err);
	CHECK_INT(awscfg_run_credential_process(command, timeout_s, &creds, &err), st);
	if (!contains(err.message, text))
		TH_FAIL_("message \"%s\" lacks \"%s\"", err.message, text);
	CHECK(!contains(err.message, "SECRETOUT") && !contains(err.detail, "SECRETOUT"));
	CHECK(creds.access_key_id == NULL && creds.secret_access_key == NULL);
}

TEST(process_success)
{
	struct aws_credentials creds;
	struct cm_err err;
	char script[512];

	setup();
	write_file("ok.sh", "#!/bin/sh\ncat <<EOF\n{\"Version\": 1, \"AccessKeyId\": \"AKPROC\",\n"
		   " \"SecretAccessKey\": \"SPROC\", \"SessionToken\": \"TPROC\",\n"
		   " \"Expiration\": \"2026-11-24T10:00:00Z\"}\nEOF\n", 1, script, sizeof(script));
	cm_err_clear(&err);
	REQUIRE(awscfg_run_credential_process(script, 5, &creds, &err) == CM_OK);
	CHECK_STR(creds.access_key_id, "AKPROC");
	CHECK(str_eq(creds.secret_access_key, "SPROC"));
	CHECK(str_eq(creds.session_token, "TPROC"));
	CHECK_INT(creds.expiration, 1795514400);
	aws_credentials_release(&creds);

	/* Offsets and fractions in Expiration; no SessionToken. */
	write_file("ok2.sh", "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"A\", "
		   "\"SecretAccessKey\": \"S\", \"Expiration\": \"2026-11-24T12:00:00.123+02:00\"}'\n",
		   1, script, sizeof(script));
	REQUIRE(awscfg_run_credential_process(script, 5, &creds, &err) == CM_OK);
	CHECK(creds.session_token == NULL);
	CHECK_INT(creds.expiration, 1795514400);
	aws_credentials_release(&creds);
}

TEST(process_quoted_arguments)
{
	struct aws_credentials creds;
	struct cm_err err;
	char dir[512], script[512], command[2048], args[512];
	FILE *f;

	setup();
	snprintf(dir, sizeof(dir), "%s/my dir", test_dir);
	REQUIRE(mkdir(dir, 0700) == 0);
	write_file("my dir/args.sh",
		   "#!/bin/sh\nout=\"$(dirname \"$0\")/../args\"\n"
		   "echo \"$#\" > \"$out\"\nfor a in \"$@\"; do printf '[%s]\\n' \"$a\" >> \"$out\"; done\n"
		   "echo '{\"Version\":1,\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\"}'\n",
		   1, script, sizeof(script));
	snprintf(command, sizeof(command),
		 "'%s' \"arg one\" two\\ words 'it'\\''s' \"q\\\"d \\$x \\n\" ''  a\"b\"'c'\n",
		 script);
	cm_err_clear(&err);
	REQUIRE(awscfg_run_credential_process(command, 5, &creds, &err) == CM_OK);
	aws_credentials_release(&creds);
	snprintf(args, sizeof(args), "%s/args", test_dir);
	f = fopen(args, "r");
	REQUIRE(f != NULL);
	{
		char got[1024];
		size_t n = fread(got, 1, sizeof(got) - 1, f);

		got[n] = '\0';
		CHECK_STR(got, "6\n[arg one]\n[two words]\n[it's]\n[q\"d $x \\n]\n[]\n[abc]\n");
	}
	fclose(f);

	expect_process_error("'unterminated", 5, CM_E_CONFIG, "unterminated single quote");
	expect_process_error("echo \"x", 5, CM_E_CONFIG, "unterminated double quote");
	expect_process_error("  \t ", 5, CM_E_CONFIG, "empty command");
	expect_process_error("/nonexistent/prog arg", 5, CM_E_CREDENTIALS,
			     "cannot run /nonexistent/prog");
}

TEST(process_failures)
{
	char script[512];

	setup();
	write_file("bad.sh", "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"SECRETOUT\"'\n",
		   1, script, sizeof(script));
	expect_process_error(script, 5, CM_E_CREDENTIALS, "output is not valid JSON");
	write_file("exit.sh", "#!/bin/sh\necho SECRETOUT\necho 'oops (expected stderr)' >&2\nexit 3\n",
		   1, script, sizeof(script));
	expect_process_error(script, 5, CM_E_CREDENTIALS, "credential_process exited with status 3");
	write_file("v2.sh", "#!/bin/sh\necho '{\"Version\": 2, \"AccessKeyId\": \"A\", "
		   "\"SecretAccessKey\": \"SECRETOUT\"}'\n", 1, script, sizeof(script));
	expect_process_error(script, 5, CM_E_CREDENTIALS, "Version 2; only 1 is supported");
	write_file("nov.sh", "#!/bin/sh\necho '{\"AccessKeyId\": \"A\", "
		   "\"SecretAccessKey\": \"SECRETOUT\"}'\n", 1, script, sizeof(script));
	expect_process_error(script, 5, CM_E_CREDENTIALS, "no numeric Version");
	write_file("nosecret.sh", "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": "
		   "\"SECRETOUT\"}'\n", 1, script, sizeof(script));
	expect_process_error(script, 5, CM_E_CREDENTIALS, "lacks SecretAccessKey");
	write_file("noaccess.sh", "#!/bin/sh\necho '{\"Version\": 1, \"SecretAccessKey\": "
		   "\"SECRETOUT\"}'\n", 1, script, sizeof(script));
	expect_process_error(script, 5, CM_E_CREDENTIALS, "lacks AccessKeyId");
	write_file("exp.sh", "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"A\", "
		   "\"SecretAccessKey\": \"SECRETOUT\", \"Expiration\": \"tomorrow\"}'\n",
		   1, script, sizeof(script));
	expect_process_error(script, 5, CM_E_CREDENTIALS, "Expiration is not an ISO 8601 time");
	write_file("arr.sh", "#!/bin/sh\necho '[\"SECRETOUT\"]'\n", 1, script, sizeof(script));
	expect_process_error(script, 5, CM_E_CREDENTIALS, "not a JSON object");
	write_file("big.sh", "#!/bin/sh\nhead -c 100000 /dev/zero | tr '\\0' x\n",
		   1, script, sizeof(script));
	expect_process_error(script, 5, CM_E_CREDENTIALS, "more than 64 KiB");
	write_file("sig.sh", "#!/bin/sh\nkill -TERM $$\n", 1, script, sizeof(script));
	expect_process_error(script, 5, CM_E_CREDENTIALS, "killed by signal 15");
}

TEST(process_timeout)
{
	char script[512];
	time_t start;

	setup();
	write_file("slow.sh", "#!/bin/sh\necho '{\"Version\": 1,'\nsleep 30\n", 1, script,
		   sizeof(script));
	start = time(NULL);
	expect_process_error(script, 1, CM_E_CREDENTIALS, "timed out after 1 s");
	CHECK(time(NULL) - start < 5);

	/* Closing stdout early does not let a child outlive the timeout either. */
	write_file("slow2.sh", "#!/bin/sh\nexec >&-\nsleep 30\n", 1, script, sizeof(script));
	start = time(NULL);
	expect_process_error(script, 1, CM_E_CREDENTIALS, "timed out after 1 s");
	CHECK(time(NULL) - start < 5);
}

TEST(process_environment_has_no_secrets)
{
	struct aws_credentials creds;
	struct cm_err err;
	char script[512], path[512], got[256] = "";
	FILE *f;
	size_t n;

	setup();
	write_file("env.sh",
		   "#!/bin/sh\nout=\"$(dirname \"$0\")/env\"\n"
		   "echo \"secret=${AWS_SECRET_ACCESS_KEY-unset} token=${AWS_SESSION_TOKEN-unset} "
		   "id=${AWS_ACCESS_KEY_ID-unset}\" > \"$out\"\n"
		   "echo '{\"Version\":1,\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\"}'\n",
		   1, script, sizeof(script));
	setenv("AWS_SECRET_ACCESS_KEY", "parent-secret", 1);
	setenv("AWS_SESSION_TOKEN", "parent-token", 1);
	setenv("AWS_ACCESS_KEY_ID", "AKPARENT", 1);
	cm_err_clear(&err);
	REQUIRE(awscfg_run_credential_process(script, 5, &creds, &err) == CM_OK);
	aws_credentials_release(&creds);
	snprintf(path, sizeof(path), "%s/env", test_dir);
	f = fopen(path, "r");
	REQUIRE(f != NULL);
	n = fread(got, 1, sizeof(got) - 1, f);
	got[n] = '\0';
	fclose(f);
	CHECK(strcmp(got, "secret=unset token=unset id=AKPARENT\n") == 0);
	CHECK(getenv("AWS_SECRET_ACCESS_KEY") != NULL);    /* ours is untouched */
}

/* A provider over a config whose default profile runs script. */
static struct creds_provider *process_provider(const char *script)
{
	struct awscfg cfg;
	struct creds_provider *p;
	char text[1024];

	snprintf(text, sizeof(text), "[default]\ncredential_process = %s\n", script);
	write_config(text);
	load_ok(NULL, &cfg);
	CHECK_STR(cfg.credential_process, script);
	p = creds_provider_create(&cfg);
	awscfg_release(&cfg);
	return p;
}

/* Get credentials, REQUIRE success, and return whether the key id is want. */
static int provider_gives(struct creds_provider *p, const char *want)
{
	struct aws_credentials creds;
	struct cm_err err;
	enum cm_status st;
	int same;

	cm_err_clear(&err);
	st = creds_provider_get(p, &creds, &err);
	if (st != CM_OK)
		fprintf(stderr, "creds_provider_get: %s\n", err.message);
	REQUIRE(st == CM_OK);
	same = str_eq(creds.access_key_id, want);
	aws_credentials_release(&creds);
	return same;
}

TEST(provider_refreshes_expired)
{
	char past[64], future[64], s1[256], s2[256], script[512];
	const char *snippets[2] = { s1, s2 };
	struct creds_provider *p;

	setup();
	iso_time(-60, past, sizeof(past));
	iso_time(3600, future, sizeof(future));
	snprintf(s1, sizeof(s1), "echo '{\"Version\":1,\"AccessKeyId\":\"AK1\","
		 "\"SecretAccessKey\":\"S1\",\"Expiration\":\"%s\"}'", past);
	snprintf(s2, sizeof(s2), "echo '{\"Version\":1,\"AccessKeyId\":\"AK2\","
		 "\"SecretAccessKey\":\"S2\",\"Expiration\":\"%s\"}'", future);
	write_counting_script(snippets, 2, script, sizeof(script));
	p = process_provider(script);
	CHECK(creds_provider_has_source(p));
	CHECK_INT(read_counter(), 0);           /* nothing runs before the first get */
	CHECK(provider_gives(p, "AK1"));
	CHECK_INT(read_counter(), 1);
	CHECK(provider_gives(p, "AK2"));        /* expired: run again at once */
	CHECK_INT(read_counter(), 2);
	CHECK(provider_gives(p, "AK2"));        /* an hour left: no run */
	CHECK(provider_gives(p, "AK2"));
	CHECK_INT(read_counter(), 2);
	creds_provider_destroy(p);
}

TEST(provider_refreshes_near_expiry)
{
	char soon[64], future[64], s1[256], s3[256], script[512];
	const char *snippets[3] = { s1, "echo SECRETOUT; exit 1", s3 };
	struct creds_provider *p;
	struct timespec wait = { 2, 200 * 1000 * 1000 };

	setup();
	iso_time(120, soon, sizeof(soon));
	iso_time(3600, future, sizeof(future));
	snprintf(s1, sizeof(s1), "echo '{\"Version\":1,\"AccessKeyId\":\"AK1\","
		 "\"SecretAccessKey\":\"S1\",\"Expiration\":\"%s\"}'", soon);
	snprintf(s3, sizeof(s3), "echo '{\"Version\":1,\"AccessKeyId\":\"AK3\","
		 "\"SecretAccessKey\":\"S3\",\"Expiration\":\"%s\"}'", future);
	write_counting_script(snippets, 3, script, sizeof(script));
	p = process_provider(script);
	CHECK(provider_gives(p, "AK1"));
	CHECK_INT(read_counter(), 1);
	CHECK(provider_gives(p, "AK1"));        /* within the retry interval: no run */
	CHECK_INT(read_counter(), 1);
	nanosleep(&wait, NULL);
	CHECK(provider_gives(p, "AK1"));        /* refresh fails: keys that work are kept */
	CHECK_INT(read_counter(), 2);
	nanosleep(&wait, NULL);
	CHECK(provider_gives(p, "AK3"));        /* two minutes left: refreshed */
	CHECK_INT(read_counter(), 3);
	CHECK(provider_gives(p, "AK3"));
	CHECK_INT(read_counter(), 3);
	creds_provider_destroy(p);
}

TEST(provider_reports_process_failure)
{
	struct creds_provider *p;
	struct aws_credentials creds;
	struct cm_err err;
	char script[512];

	setup();
	write_file("fail.sh", "#!/bin/sh\nexit 7\n", 1, script, sizeof(script));
	p = process_provider(script);
	cm_err_clear(&err);
	CHECK_INT(creds_provider_get(p, &creds, &err), CM_E_CREDENTIALS);
	CHECK_STR(err.message, "credential_process exited with status 7");
	CHECK(creds.access_key_id == NULL);
	creds_provider_destroy(p);
}

/* Many threads at once: one run of the process, every thread gets the keys. */
static void *get_many(void *arg)
{
	struct creds_provider *p = arg;
	long ok = 0;

	for (int i = 0; i < 50; i++) {
		struct aws_credentials creds;
		struct cm_err err;

		if (creds_provider_get(p, &creds, &err) == CM_OK &&
		    str_eq(creds.access_key_id, "AKT"))
			ok++;
		aws_credentials_release(&creds);
	}
	return (void *)ok;
}

TEST(provider_threads)
{
	char future[64], s1[256], script[512];
	const char *snippets[1] = { s1 };
	struct creds_provider *p;
	pthread_t threads[8];

	setup();
	iso_time(3600, future, sizeof(future));
	snprintf(s1, sizeof(s1), "echo '{\"Version\":1,\"AccessKeyId\":\"AKT\","
		 "\"SecretAccessKey\":\"ST\",\"Expiration\":\"%s\"}'", future);
	write_counting_script(snippets, 1, script, sizeof(script));
	p = process_provider(script);
	for (int i = 0; i < 8; i++)
		REQUIRE(pthread_create(&threads[i], NULL, get_many, p) == 0);
	for (int i = 0; i < 8; i++) {
		void *ok;

		pthread_join(threads[i], &ok);
		CHECK_INT((long)ok, 50);
	}
	CHECK_INT(read_counter(), 1);
	creds_provider_destroy(p);
}

TH_MAIN_BEGIN("test_awscfg")
	RUN(ini_basic);
	RUN(ini_errors);
	RUN(ini_crlf_bom_and_long_lines);
	RUN(ini_load_file_errors);
	RUN(defaults_with_no_files);
	RUN(profile_precedence);
	RUN(config_section_names);
	RUN(missing_profile);
	RUN(region_precedence);
	RUN(endpoint_precedence);
	RUN(addressing_style);
	RUN(ca_bundle_precedence);
	RUN(malformed_files);
	RUN(tilde_in_file_variables);
	RUN(credentials_precedence);
	RUN(long_session_token);
	RUN(partial_credentials);
	RUN(no_credentials_error_lists_sources);
	RUN(static_provider);
	RUN(process_success);
	RUN(process_quoted_arguments);
	RUN(process_failures);
	RUN(process_timeout);
	RUN(process_environment_has_no_secrets);
	RUN(provider_refreshes_expired);
	RUN(provider_refreshes_near_expiry);
	RUN(provider_reports_process_failure);
	RUN(provider_threads);
	if (test_dir[0])
		nftw(test_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
TH_MAIN_END
