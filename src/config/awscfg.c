/*
 * awscfg.c - resolving settings and credentials as awscli does, and the
 * thread-safe credentials provider.
 *
 * awscfg_load works in four steps: pick the profile name, read the two files
 * (a missing file reads as empty), find the profile's section in each, then
 * take each setting from the first source that has it (see awscfg.h for the
 * orders). As in botocore, the profile's values in the credentials file
 * override those of the same profile in the config file, for every key (so a
 * "region" in ~/.aws/credentials counts), and the config file's
 * "services = NAME" points at a "[services NAME]" section whose "s3 ="
 * sub-section may give an endpoint_url.
 *
 * Exactly one credentials source is kept: cfg->creds when static keys won,
 * cfg->credential_process when a process did, neither when nothing was found.
 * Every source looked at is appended to cfg->tried as it is looked at.
 *
 * The provider holds either static keys (returned as they are) or a
 * credential_process and its last answer, re-run under the provider's mutex
 * when that answer expires in less than CREDS_REFRESH_WINDOW_S seconds. So
 * that a process handing out short-lived keys (or failing) is not started for
 * every request, it is run at most once per CREDS_RETRY_INTERVAL_S while the
 * keys it gave last have not expired yet; keys that still work are kept when a
 * refresh fails.
 *
 * Small control-path allocations abort on failure (STYLE.md).
 */
#include "config/awscfg.h"

#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/ini.h"

#define CREDS_REFRESH_WINDOW_S 300
#define CREDS_RETRY_INTERVAL_S 1
#define CREDS_PROCESS_TIMEOUT_S 60

/* ---- small helpers ---- */

static void *alloc_or_die(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		fputs("cloudmount: out of memory\n", stderr);
		abort();
	}
	return p;
}

static char *dup_or_die(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(alloc_or_die(n), s, n);
}

static char *printf_or_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *printf_or_die(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	s = alloc_or_die((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

/* Free a string after overwriting it. NULL is fine. */
static void free_wiped(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* An environment variable, treating "" as unset (as botocore does). Borrowed. */
static const char *env_get(const char *name)
{
	const char *v = getenv(name);

	return v && v[0] ? v : NULL;
}

/* A request string, treating "" as not given. */
static const char *req_get(const char *s)
{
	return s && s[0] ? s : NULL;
}

/* ---- credentials ---- */

void aws_credentials_release(struct aws_credentials *c)
{
	if (!c)
		return;
	free_wiped(c->access_key_id);
	free_wiped(c->secret_access_key);
	free_wiped(c->session_token);
	memset(c, 0, sizeof(*c));
}

int aws_credentials_copy(struct aws_credentials *dst, const struct aws_credentials *src)
{
	memset(dst, 0, sizeof(*dst));
	if (src->access_key_id) {
		dst->access_key_id = strdup(src->access_key_id);
		if (!dst->access_key_id)
			goto out_release;
	}
	if (src->secret_access_key) {
		dst->secret_access_key = strdup(src->secret_access_key);
		if (!dst->secret_access_key)
			goto out_release;
	}
	if (src->session_token) {
		dst->session_token = strdup(src->session_token);
		if (!dst->session_token)
			goto out_release;
	}
	dst->expiration = src->expiration;
	return 0;

out_release:
	aws_credentials_release(dst);
	return -1;
}

/* Fill c with copies of the three strings (token may be NULL). */
static void credentials_set(struct aws_credentials *c, const char *access, const char *secret,
			    const char *token)
{
	c->access_key_id = dup_or_die(access);
	c->secret_access_key = dup_or_die(secret);
	c->session_token = token && token[0] ? dup_or_die(token) : NULL;
	c->expiration = 0;
}

/* ---- the list of sources tried ---- */

/* A growing ", "-separated list. */
struct tried_list {
	char *text;     /* NULL until the first item */
};

static void tried_add(struct tried_list *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void tried_add(struct tried_list *t, const char *fmt, ...)
{
	va_list ap;
	char *item, *joined;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	item = alloc_or_die((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(item, (size_t)n + 1, fmt, ap);
	va_end(ap);
	if (!t->text) {
		t->text = item;
		return;
	}
	joined = printf_or_die("%s, %s", t->text, item);
	free(t->text);
	free(item);
	t->text = joined;
}

/* ---- files and profiles ---- */

/*
 * The file named by env_var ('~' and "~user" expanded, as Python's
 * os.path.expanduser does), else HOME/default_rel. Returns a malloc'd path, or
 * NULL with err set when the home directory cannot be found.
 */
static char *file_path(const char *env_var, const char *default_rel, struct cm_err *err)
{
	const char *value = env_get(env_var), *home, *rest;
	struct passwd pw, *found = NULL;
	char pwbuf[4096];

	if (value && value[0] != '~')
		return dup_or_die(value);
	if (value) {
		const char *slash = strchr(value, '/');
		size_t user_len = slash ? (size_t)(slash - value - 1) : strlen(value) - 1;

		rest = slash ? slash : "";
		if (user_len > 0) {
			char *user = alloc_or_die(user_len + 1);

			memcpy(user, value + 1, user_len);
			user[user_len] = '\0';
			getpwnam_r(user, &pw, pwbuf, sizeof(pwbuf), &found);
			free(user);
			if (!found)     /* expanduser leaves an unknown ~user alone */
				return dup_or_die(value);
			return printf_or_die("%s%s", found->pw_dir, rest);
		}
	} else {
		rest = default_rel;
	}
	home = env_get("HOME");
	if (!home) {
		getpwuid_r(getuid(), &pw, pwbuf, sizeof(pwbuf), &found);
		home = found ? found->pw_dir : NULL;
	}
	if (!home) {
		cm_err_set(err, CM_E_CONFIG, "cannot find the home directory for %s (HOME is not set)",
			   value ? value : default_rel);
		return NULL;
	}
	if (!value)
		return printf_or_die("%s/%s", home, rest);
	return printf_or_die("%s%s", home, rest);
}

/*
 * Read the file at path into *f. A missing file reads as empty and clears
 * *present. Returns CM_OK or the error of an unreadable or malformed file.
 */
static enum cm_status load_optional(const char *path, struct ini_file *f, int *present,
				    struct cm_err *err)
{
	enum cm_status st = ini_load_file(path, f, err);

	*present = st == CM_OK;
	if (st == CM_E_NOT_FOUND) {
		cm_err_clear(err);
		return CM_OK;
	}
	return st;
}

/*
 * Whether a config-file section name is "profile NAME" (any blanks between;
 * NAME may be quoted with ' or "). Section names come trimmed from ini.c.
 */
static int is_profile_section(const char *section, const char *name)
{
	const char *p = section + strlen("profile");
	size_t n;

	if (strncmp(section, "profile", strlen("profile")) != 0 || (*p != ' ' && *p != '\t'))
		return 0;
	while (*p == ' ' || *p == '\t')
		p++;
	n = strlen(p);
	if (n >= 2 && (p[0] == '"' || p[0] == '\'') && p[n - 1] == p[0]) {
		p++;
		n -= 2;
	}
	return strlen(name) == n && strncmp(p, name, n) == 0;
}

/*
 * The config file's section for a profile: "[profile NAME]", or for "default"
 * also "[default]"; when several match, the last one (botocore's dict keeps the
 * last). NULL when there is none.
 */
static const struct ini_section *config_profile_section(const struct ini_file *f,
							const char *name)
{
	const struct ini_section *found = NULL;

	for (size_t i = 0; i < f->n_sections; i++) {
		const char *s = f->sections[i].name;

		if (is_profile_section(s, name) ||
		    (strcmp(name, "default") == 0 && strcmp(s, "default") == 0))
			found = &f->sections[i];
	}
	return found;
}

/* Everything awscfg_load works with. */
struct loader {
	const char *profile;
	char *cred_path, *config_path;
	struct ini_file cred, config;
	int cred_present, config_present;
	const struct ini_section *cred_sec;     /* [NAME] in the credentials file */
	const struct ini_section *config_sec;   /* [profile NAME] in the config file */
};

/*
 * A profile setting: the credentials file's value first (botocore merges the
 * credentials file's profile over the config file's), then the config file's.
 * *path (may be NULL) gets the file it came from. NULL when neither has it.
 */
static const struct ini_entry *profile_entry(const struct loader *ld, const char *key,
					     const char **path)
{
	const struct ini_entry *e = ini_find_entry(ld->cred_sec, key);

	if (e) {
		if (path)
			*path = ld->cred_path;
		return e;
	}
	e = ini_find_entry(ld->config_sec, key);
	if (e && path)
		*path = ld->config_path;
	return e;
}

/* A profile setting's value when non-empty, else NULL. Borrowed. */
static const char *profile_value(const struct loader *ld, const char *key)
{
	const struct ini_entry *e = profile_entry(ld, key, NULL);

	return e && e->value[0] ? e->value : NULL;
}

/* The profile's "s3 =" sub-entry subkey, non-empty, or NULL. */
static const struct ini_sub *profile_s3_sub(const struct loader *ld, const char *subkey,
					    const char **path)
{
	const struct ini_sub *sub = ini_find_sub(profile_entry(ld, "s3", path), subkey);

	return sub && sub->value[0] ? sub : NULL;
}

/* endpoint_url of "[services NAME]" "s3 =" when the profile says services = NAME. */
static const char *services_s3_endpoint(const struct loader *ld)
{
	const char *services = profile_value(ld, "services");
	const struct ini_sub *sub;
	char *section;

	if (!services)
		return NULL;
	section = printf_or_die("services %s", services);
	sub = ini_find_sub(ini_find_entry(ini_find_section(&ld->config, section), "s3"),
			   "endpoint_url");
	free(section);
	return sub && sub->value[0] ? sub->value : NULL;
}

/* ---- settings ---- */

/*
 * Addressing style: the request's, else the profile's "s3 =" addressing_style,
 * else auto. A value other than auto, path or virtual is CM_E_CONFIG naming
 * the file and line.
 */
static enum cm_status resolve_addressing(const struct awscfg_request *req,
					 const struct loader *ld, struct awscfg *cfg,
					 struct cm_err *err)
{
	const struct ini_sub *sub;
	const char *path = NULL;

	cfg->addressing = S3_ADDR_AUTO;
	if (req->addressing >= 0) {
		if (req->addressing > S3_ADDR_VIRTUAL)
			return cm_err_set(err, CM_E_CONFIG, "invalid addressing style %d",
					  req->addressing);
		cfg->addressing = (enum s3_addressing)req->addressing;
		return CM_OK;
	}
	sub = profile_s3_sub(ld, "addressing_style", &path);
	if (!sub || strcmp(sub->value, "auto") == 0)
		return CM_OK;
	if (strcmp(sub->value, "path") == 0)
		cfg->addressing = S3_ADDR_PATH;
	else if (strcmp(sub->value, "virtual") == 0)
		cfg->addressing = S3_ADDR_VIRTUAL;
	else
		return cm_err_set(err, CM_E_CONFIG,
				  "%s:%u: s3 addressing_style \"%.40s\" is not auto, path or virtual",
				  path, sub->line, sub->value);
	return CM_OK;
}

/* Region, endpoint, addressing and CA bundle into cfg. */
static enum cm_status resolve_settings(const struct awscfg_request *req, const struct loader *ld,
				       struct awscfg *cfg, struct cm_err *err)
{
	const char *v;
	const struct ini_sub *sub;

	v = req_get(req->region);
	if (!v)
		v = env_get("AWS_REGION");
	if (!v)
		v = env_get("AWS_DEFAULT_REGION");
	if (!v)
		v = profile_value(ld, "region");
	cfg->region = dup_or_die(v ? v : "us-east-1");

	v = req_get(req->endpoint_url);
	if (!v)
		v = env_get("AWS_ENDPOINT_URL_S3");
	if (!v)
		v = env_get("AWS_ENDPOINT_URL");
	if (!v) {
		sub = profile_s3_sub(ld, "endpoint_url", NULL);
		v = sub ? sub->value : NULL;
	}
	if (!v)
		v = services_s3_endpoint(ld);
	if (!v)
		v = profile_value(ld, "endpoint_url");
	cfg->endpoint_url = v ? dup_or_die(v) : NULL;

	v = req_get(req->ca_bundle);
	if (!v)
		v = env_get("AWS_CA_BUNDLE");
	if (!v)
		v = profile_value(ld, "ca_bundle");
	cfg->ca_bundle = v ? dup_or_die(v) : NULL;

	return resolve_addressing(req, ld, cfg, err);
}

/* ---- credentials chain ---- */

/*
 * Static keys from a section's aws_access_key_id / aws_secret_access_key /
 * aws_session_token. Returns CM_OK with *found set or cleared, or CM_E_CONFIG
 * when only one of the two keys is there.
 */
static enum cm_status section_keys(const struct ini_section *sec, const char *path,
				   const char *profile, struct aws_credentials *creds,
				   int *found, struct cm_err *err)
{
	const struct ini_entry *access = ini_find_entry(sec, "aws_access_key_id");
	const struct ini_entry *secret = ini_find_entry(sec, "aws_secret_access_key");
	const struct ini_entry *token = ini_find_entry(sec, "aws_session_token");
	const char *a = access && access->value[0] ? access->value : NULL;
	const char *s = secret && secret->value[0] ? secret->value : NULL;

	*found = 0;
	if (!a && !s)
		return CM_OK;
	if (!a || !s)
		return cm_err_set(err, CM_E_CREDENTIALS,
				  "partial credentials in %s, profile %s: %s is missing",
				  path, profile, !a ? "aws_access_key_id" : "aws_secret_access_key");
	credentials_set(creds, a, s, token ? token->value : NULL);
	*found = 1;
	return CM_OK;
}

/* Walk the credentials chain, filling cfg->creds or cfg->credential_process. */
static enum cm_status resolve_credentials(const struct awscfg_request *req,
					  const struct loader *ld, struct awscfg *cfg,
					  struct cm_err *err)
{
	struct tried_list tried = { 0 };
	const char *path = NULL;
	const struct ini_entry *process;
	enum cm_status st = CM_OK;
	int found = 0;

	if (req->skip_credentials) {
		tried_add(&tried, "none (credentials given by the caller)");
		goto out_tried;
	}
	if (req_get(req->profile)) {
		tried_add(&tried, "environment (not used: profile %s named explicitly)",
			  ld->profile);
	} else {
		const char *access = env_get("AWS_ACCESS_KEY_ID");
		const char *secret = env_get("AWS_SECRET_ACCESS_KEY");
		const char *token = env_get("AWS_SESSION_TOKEN");

		tried_add(&tried, "environment (AWS_ACCESS_KEY_ID)");
		if (access || secret) {
			if (!access || !secret) {
				st = cm_err_set(err, CM_E_CREDENTIALS,
						"partial credentials in the environment: %s is set but %s is not",
						access ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
						access ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
				goto out_tried;
			}
			if (!token)
				token = env_get("AWS_SECURITY_TOKEN");
			credentials_set(&cfg->creds, access, secret, token);
			cfg->creds_source = dup_or_die("environment");
			goto out_tried;
		}
	}

	tried_add(&tried, "%s [%s]%s", ld->cred_path, ld->profile,
		  ld->cred_present ? "" : " (no such file)");
	st = section_keys(ld->cred_sec, ld->cred_path, ld->profile, &cfg->creds, &found, err);
	if (st != CM_OK || found) {
		if (found)
			cfg->creds_source = printf_or_die("shared credentials file %s, profile %s",
							  ld->cred_path, ld->profile);
		goto out_tried;
	}

	tried_add(&tried, "credential_process");
	process = profile_entry(ld, "credential_process", &path);
	if (process && process->value[0]) {
		cfg->credential_process = dup_or_die(process->value);
		cfg->creds_source = printf_or_die("credential_process of profile %s in %s",
						  ld->profile, path);
		goto out_tried;
	}

	if (ld->config_sec)
		tried_add(&tried, "%s [%s]", ld->config_path, ld->config_sec->name);
	else if (strcmp(ld->profile, "default") == 0)
		tried_add(&tried, "%s [default]%s", ld->config_path,
			  ld->config_present ? "" : " (no such file)");
	else
		tried_add(&tried, "%s [profile %s]%s", ld->config_path, ld->profile,
			  ld->config_present ? "" : " (no such file)");
	st = section_keys(ld->config_sec, ld->config_path, ld->profile, &cfg->creds, &found, err);
	if (st == CM_OK && found)
		cfg->creds_source = printf_or_die("config file %s, profile %s", ld->config_path,
						  ld->profile);

out_tried:
	cfg->tried = tried.text;
	return st;
}

/* ---- awscfg_load ---- */

enum cm_status awscfg_load(const struct awscfg_request *req, struct awscfg *cfg,
			   struct cm_err *err)
{
	static const struct awscfg_request no_request = { .addressing = -1 };
	struct loader ld = { 0 };
	int explicit_profile = 1;
	enum cm_status st;

	memset(cfg, 0, sizeof(*cfg));
	if (!req)
		req = &no_request;
	/* botocore insists on any profile it was told about, "default" included. */
	ld.profile = req_get(req->profile);
	if (!ld.profile)
		ld.profile = env_get("AWS_PROFILE");
	if (!ld.profile)
		ld.profile = env_get("AWS_DEFAULT_PROFILE");
	if (!ld.profile) {
		ld.profile = "default";
		explicit_profile = 0;
	}

	ld.cred_path = file_path("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials", err);
	if (!ld.cred_path)
		return CM_E_CONFIG;
	ld.config_path = file_path("AWS_CONFIG_FILE", ".aws/config", err);
	if (!ld.config_path) {
		st = CM_E_CONFIG;
		goto out_free_paths;
	}
	st = load_optional(ld.cred_path, &ld.cred, &ld.cred_present, err);
	if (st != CM_OK)
		goto out_free_paths;
	st = load_optional(ld.config_path, &ld.config, &ld.config_present, err);
	if (st != CM_OK)
		goto out_release_files;

	ld.cred_sec = ini_find_section(&ld.cred, ld.profile);
	ld.config_sec = config_profile_section(&ld.config, ld.profile);
	if (explicit_profile && !ld.cred_sec && !ld.config_sec) {
		st = cm_err_set(err, CM_E_CONFIG, "profile %s not found in %s or %s", ld.profile,
				ld.cred_path, ld.config_path);
		goto out_release_files;
	}

	cfg->profile = dup_or_die(ld.profile);
	st = resolve_settings(req, &ld, cfg, err);
	if (st == CM_OK)
		st = resolve_credentials(req, &ld, cfg, err);
	if (st != CM_OK)
		awscfg_release(cfg);

out_release_files:
	ini_file_release(&ld.config);
	ini_file_release(&ld.cred);
out_free_paths:
	free(ld.config_path);
	free(ld.cred_path);
	return st;
}

void awscfg_release(struct awscfg *cfg)
{
	if (!cfg)
		return;
	free(cfg->profile);
	free(cfg->region);
	free(cfg->endpoint_url);
	free(cfg->ca_bundle);
	free_wiped(cfg->credential_process);    /* command lines sometimes carry secrets */
	aws_credentials_release(&cfg->creds);
	free(cfg->creds_source);
	free(cfg->tried);
	memset(cfg, 0, sizeof(*cfg));
}

/* ---- the provider ---- */

struct creds_provider {
	pthread_mutex_t mutex;
	int has_static;                 /* immutable: creds hold static keys */
	char *credential_process;       /* immutable; NULL unless !has_static and set */
	char *tried;                    /* immutable; for "no credentials" errors */
	struct aws_credentials creds;   /* protected by mutex (static: immutable) */
	time_t next_attempt;            /* protected by mutex: no run before, unless expired */
};

struct creds_provider *creds_provider_create(const struct awscfg *cfg)
{
	struct creds_provider *p = alloc_or_die(sizeof(*p));

	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->mutex, NULL);
	if (cfg->creds.access_key_id && cfg->creds.secret_access_key) {
		if (aws_credentials_copy(&p->creds, &cfg->creds))
			abort();
		p->has_static = 1;
	} else if (cfg->credential_process) {
		p->credential_process = dup_or_die(cfg->credential_process);
	}
	p->tried = dup_or_die(cfg->tried ? cfg->tried : "nothing");
	return p;
}

void creds_provider_destroy(struct creds_provider *p)
{
	if (!p)
		return;
	pthread_mutex_destroy(&p->mutex);
	aws_credentials_release(&p->creds);
	free_wiped(p->credential_process);
	free(p->tried);
	free(p);
}

int creds_provider_has_source(const struct creds_provider *p)
{
	return p && (p->has_static || p->credential_process);
}

/*
 * Re-run the process if the keys held are missing, expired, or expire within
 * the refresh window (at most once per retry interval while they still work).
 * Returns CM_OK when p->creds are usable afterwards. Called with p->mutex held.
 */
static enum cm_status refresh_locked(struct creds_provider *p, struct cm_err *err)
{
	struct aws_credentials fresh;
	struct cm_err run_err;
	time_t now = time(NULL), exp = p->creds.expiration;
	int have = p->creds.access_key_id != NULL;
	int usable = have && (exp == 0 || exp > now);
	enum cm_status st;

	if (have && (exp == 0 || exp - now > CREDS_REFRESH_WINDOW_S))
		return CM_OK;
	if (usable && now < p->next_attempt)
		return CM_OK;

	cm_err_clear(&run_err);
	st = awscfg_run_credential_process(p->credential_process, CREDS_PROCESS_TIMEOUT_S,
					   &fresh, &run_err);
	p->next_attempt = time(NULL) + CREDS_RETRY_INTERVAL_S;
	if (st != CM_OK) {
		if (usable)
			return CM_OK;   /* keep the keys that still work; try again later */
		if (err)
			*err = run_err;
		return st;
	}
	aws_credentials_release(&p->creds);
	p->creds = fresh;
	return CM_OK;
}

enum cm_status creds_provider_get(struct creds_provider *p, struct aws_credentials *out,
				  struct cm_err *err)
{
	enum cm_status st = CM_OK;

	memset(out, 0, sizeof(*out));
	if (!creds_provider_has_source(p))
		return cm_err_set(err, CM_E_CREDENTIALS, "no AWS credentials found; tried %s",
				  p ? p->tried : "nothing");
	pthread_mutex_lock(&p->mutex);
	if (!p->has_static)
		st = refresh_locked(p, err);
	if (st == CM_OK && aws_credentials_copy(out, &p->creds))
		st = cm_err_set(err, CM_E_NOMEM, "out of memory copying credentials");
	pthread_mutex_unlock(&p->mutex);
	return st;
}
