/*
 * awscfg.h - settings and credentials found the way awscli finds them.
 *
 * Sources, in awscli's order of precedence:
 *   settings: command-line request > environment (AWS_REGION, AWS_DEFAULT_REGION,
 *     AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, AWS_CA_BUNDLE) > the profile in
 *     the config file (region, endpoint_url, ca_bundle, and the "s3 =" sub-section's
 *     addressing_style and endpoint_url) > defaults (us-east-1, auto addressing).
 *   credentials: environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 *     AWS_SESSION_TOKEN; skipped when a profile was named explicitly on the command
 *     line, as botocore does) > shared credentials file > credential_process of the
 *     profile > static keys in the config file's profile.
 *   profile: request > AWS_PROFILE > AWS_DEFAULT_PROFILE > "default".
 *   files: AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials) and
 *     AWS_CONFIG_FILE (default ~/.aws/config); "[profile NAME]" sections in the
 *     config file, "[NAME]" in the credentials file, "[default]" in both.
 *
 * The INI reader is our own: Debian's inih is built with a 200-byte line limit,
 * which cuts session tokens (often 1,000+ bytes) short. It follows awscli's
 * format: '#' and ';' comments, "key = value", indented continuation lines that
 * make a sub-section ("s3 =\n    addressing_style = path"). A malformed file
 * fails with CM_E_CONFIG and "FILE:LINE: what is wrong" in err->message.
 *
 * Secrets are never written to err or to the log.
 */
#ifndef CM_AWSCFG_H
#define CM_AWSCFG_H

#include <time.h>

#include "common/status.h"

enum s3_addressing {
	S3_ADDR_AUTO = 0,   /* virtual-hosted for AWS, path-style for custom endpoints */
	S3_ADDR_PATH,
	S3_ADDR_VIRTUAL,
};

struct aws_credentials {
	char *access_key_id;
	char *secret_access_key;
	char *session_token;    /* NULL when none */
	time_t expiration;      /* 0 = does not expire */
};

/* Free the strings (wiping the secret first) and zero the struct. */
void aws_credentials_release(struct aws_credentials *c);

/* Deep copy; returns 0, or -1 on allocation failure (dst left zeroed). */
int aws_credentials_copy(struct aws_credentials *dst, const struct aws_credentials *src);

/* What the user gave on the command line; NULL (or -1) means "not given". */
struct awscfg_request {
	const char *profile;
	const char *region;
	const char *endpoint_url;
	int addressing;         /* enum s3_addressing, or -1 */
	const char *ca_bundle;
	int skip_credentials;   /* the caller brings its own (a remote's keyring secret):
				   look for none, so a broken source cannot fail the load */
};

/* The resolved settings. All strings malloc'd, owned by the struct. */
struct awscfg {
	char *profile;          /* the profile in use; never NULL */
	char *region;           /* never NULL */
	char *endpoint_url;     /* NULL: AWS's own endpoint for the region */
	enum s3_addressing addressing;
	char *ca_bundle;        /* NULL: the system's CA store */
	char *credential_process;       /* NULL when the profile has none */
	struct aws_credentials creds;   /* static keys if found; zeroed otherwise */
	char *creds_source;     /* where creds/credential_process came from, for people */
	char *tried;            /* every source looked at, for "no credentials" errors */
};

/*
 * Resolve settings and credentials. Reads the environment and the two files.
 * A missing file is not an error; an unreadable or malformed one is
 * (CM_E_CONFIG). Finding no credentials at all is not an error here (anonymous
 * use is possible): callers check cfg->creds.access_key_id and
 * cfg->credential_process and report cfg->tried.
 * On failure cfg is left zeroed.
 */
enum cm_status awscfg_load(const struct awscfg_request *req, struct awscfg *cfg,
			   struct cm_err *err);
void awscfg_release(struct awscfg *cfg);

/*
 * Run a credential_process command line (split as a POSIX shell would split
 * words, quotes and backslashes honoured; no shell is run) and parse its JSON
 * output (Version 1, AccessKeyId, SecretAccessKey, SessionToken, Expiration).
 * The child's environment has AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN
 * removed; its stderr passes through; it must finish within timeout_s seconds.
 * Errors say what failed (exit status, bad JSON, missing field) but never echo
 * the output, which may hold secrets.
 */
enum cm_status awscfg_run_credential_process(const char *command, int timeout_s,
					     struct aws_credentials *out, struct cm_err *err);

/*
 * A thread-safe source of current credentials: static ones, or those of a
 * credential_process, refreshed when they expire in less than five minutes (so a
 * mount that runs for days keeps working). Creating it copies what it needs
 * from cfg.
 */
struct creds_provider;

struct creds_provider *creds_provider_create(const struct awscfg *cfg);
void creds_provider_destroy(struct creds_provider *p);

/*
 * Copy the current credentials into *out (the caller releases them).
 * Returns CM_E_CREDENTIALS (with cfg->tried in the message) when there are none,
 * or the credential_process error.
 */
enum cm_status creds_provider_get(struct creds_provider *p, struct aws_credentials *out,
				  struct cm_err *err);

/* Whether the provider has any credentials source at all (else: anonymous). */
int creds_provider_has_source(const struct creds_provider *p);

#endif
