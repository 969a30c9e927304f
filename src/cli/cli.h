/*
 * cli.h - what the command-line front end's parts share: the connection
 * options every S3 command takes, setting up a client from them, s3:// URL
 * parsing, and turning a failure into a message and an exit code a shell user
 * can act on.
 *
 * Exit codes (also in `cloudmount --help`):
 *   0 success; 1 other failure; 2 bad usage or URL; 3 no credentials or a
 *   broken config file; 4 refused (access denied, wrong secret, clock skew);
 *   5 no such bucket or key; 6 endpoint unreachable, timed out or TLS failure.
 */
#ifndef CM_CLI_H
#define CM_CLI_H

#include <stdint.h>

#include "common/status.h"
#include "common/workq.h"
#include "config/awscfg.h"
#include "http/http.h"
#include "s3/s3.h"
#include "store/store.h"
#include "store/transfer.h"

enum cli_exit {
	CLI_OK = 0,
	CLI_FAIL = 1,
	CLI_USAGE = 2,
	CLI_CREDENTIALS = 3,
	CLI_REFUSED = 4,
	CLI_NOT_FOUND = 5,
	CLI_UNREACHABLE = 6,
};

/* Options shared by every command that talks to S3. */
struct cli_conn_opts {
	const char *endpoint;
	const char *region;
	const char *profile;
	const char *ca_bundle;
	int addressing;                 /* -1: from config */
	int insecure;
	int verbose;                    /* -v: info; -vv: debug */
	int max_in_flight;
	long connect_timeout_ms;
	int max_retries;
	int sign_payload;               /* -1 auto */
	uint64_t part_size;
	int concurrency;
	uint64_t memory_limit;
	const char *keyring_remote;     /* take the secret of this remote from the keyring */
	const char *keyring_key_id;     /* ... with this access key id */
	const char *access_key_id;      /* credentials given directly (the tray's "Test */
	const char *secret_access_key;  /* connection", before anything is saved) */
};

void cli_conn_opts_init(struct cli_conn_opts *o);

/*
 * If argv[*i] is a connection option, consume it (and its value) and return 1;
 * return 0 if it is not one; return -1 (after printing why) for a missing or
 * bad value.
 */
int cli_conn_opt(struct cli_conn_opts *o, int argc, char **argv, int *i);

/* Help text for the connection options. */
extern const char cli_conn_help[];

/* A connected context: config, credentials, engine, client, worker pool. */
struct cli_ctx {
	struct awscfg cfg;
	struct creds_provider *creds;
	struct http_engine *engine;
	struct s3_client *client;
	struct workq *workq;
	struct membudget *budget;
	const struct cli_conn_opts *opts;
};

/*
 * Resolve config and credentials and create the client. need_creds: fail with
 * the list of sources tried when there are none (else requests go anonymous).
 * Returns an exit code (CLI_OK on success), having printed the error.
 */
int cli_ctx_init(struct cli_ctx *ctx, const struct cli_conn_opts *o, int need_creds);
void cli_ctx_release(struct cli_ctx *ctx);

/* An s3:// URL split into bucket and key (key may be ""). */
struct s3_url {
	char *bucket;
	char *key;
};
/* Returns 0, or -1 after printing why the URL is unusable. */
int cli_parse_s3_url(const char *text, struct s3_url *out);
void s3_url_release(struct s3_url *u);
int cli_is_s3_url(const char *text);

/*
 * Print "cloudmount: WHAT: error" with a hint for the status and return the
 * exit code for it.
 */
int cli_report(const char *what, const struct cm_err *err);

/* What a user can do about an error of this kind (static text), or NULL. */
const char *cli_hint(enum cm_status st);

/* The exit code for a status. */
int cli_exit_code(enum cm_status st);

/* Commands (cmd_obj.c). Each gets the arguments after its name. */
int cmd_ls(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_cp(int argc, char **argv);
int cmd_du(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_presign(int argc, char **argv);

/*
 * Fill o from a named remote's settings (endpoint, region, addressing,
 * profile, and the keyring secret when it has an access key id). Strings are
 * borrowed from r.
 */
struct remote;
void cli_conn_from_remote(struct cli_conn_opts *o, const struct remote *r);

/* cmd_remote.c */
int cmd_remote(int argc, char **argv);

/* cmd_manager.c */
int cmd_daemon(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_usage(int argc, char **argv);
int cmd_autostart(int argc, char **argv);
/* Ask a running daemon to (un)mount a remote. *handled is 0 when no daemon answers. */
int cli_daemon_mount(const char *name, int *handled);
int cli_daemon_unmount(const char *name, int *handled);

/* cmd_mount.c */
int cmd_mount(int argc, char **argv);
int cmd_unmount(int argc, char **argv);

#endif
