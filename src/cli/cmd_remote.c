/*
 * cmd_remote.c - `cloudmount remote add|list|show|remove|test`: named buckets
 * in cloudmount.conf (config/remotes.h) with their secrets in the keyring
 * (config/secrets.h). A secret is read from a prompt with echo off, or from
 * standard input when it is not a terminal; never from argv.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "config/remotes.h"
#include "config/secrets.h"

static const char remote_usage[] =
	"usage: cloudmount remote add NAME s3://BUCKET[/PREFIX] [--endpoint URL] [--region R] [--path-style]\n"
	"                         [--profile P | --access-key-id ID] [--mountpoint DIR] [--automount]\n"
	"                         [--read-only] [--metadata-ttl S]\n"
	"       cloudmount remote list\n"
	"       cloudmount remote show NAME\n"
	"       cloudmount remote remove NAME\n"
	"       cloudmount remote test NAME\n"
	"With --access-key-id the secret key is read from a prompt (or standard input) and\n"
	"kept in the system keyring, or in ~/.config/cloudmount/credentials (0600) where no\n"
	"keyring is reachable. It never goes on the command line or into cloudmount.conf.\n";

/* Read one line (the secret) from stdin, echo off on a terminal. malloc'd, or NULL. */
static char *read_secret(const char *prompt)
{
	struct termios old, quiet;
	int tty = isatty(STDIN_FILENO);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (tty) {
		fprintf(stderr, "%s", prompt);
		tcgetattr(STDIN_FILENO, &old);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	n = getline(&line, &cap, stdin);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (n <= 0) {
		secrets_free(line);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	if (!n) {
		secrets_free(line);
		return NULL;
	}
	return line;
}

static int load(struct remotes *rs)
{
	struct cm_err err;

	cm_err_clear(&err);
	if (remotes_load(NULL, rs, &err) != CM_OK)
		return cli_report("configuration", &err);
	return CLI_OK;
}

static int remote_add(int argc, char **argv)
{
	struct remotes rs;
	struct remote r;
	struct cm_err err;
	char *secret = NULL;
	int rc;

	if (argc < 2) {
		fprintf(stderr, "%s", remote_usage);
		return CLI_USAGE;
	}
	memset(&r, 0, sizeof(r));
	r.path_style = -1;
	r.metadata_ttl = -1;
	r.name = argv[0];
	if (!remote_name_valid(r.name)) {
		fprintf(stderr, "cloudmount: \"%s\" is not a valid remote name (letters, digits, '.', '_', '-')\n",
			r.name);
		return CLI_USAGE;
	}
	{
		struct s3_url url;
		if (cli_parse_s3_url(argv[1], &url) < 0)
			return CLI_USAGE;
		r.bucket = url.bucket;
		r.prefix = url.key;
	}
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--path-style")) {
			r.path_style = 1;
		} else if (!strcmp(a, "--virtual-hosted")) {
			r.path_style = 0;
		} else if (!strcmp(a, "--automount")) {
			r.automount = 1;
		} else if (!strcmp(a, "--read-only")) {
			r.read_only = 1;
		} else if (v && !strcmp(a, "--endpoint")) {
			r.endpoint = argv[++i];
		} else if (v && !strcmp(a, "--region")) {
			r.region = argv[++i];
		} else if (v && !strcmp(a, "--profile")) {
			r.profile = argv[++i];
		} else if (v && !strcmp(a, "--access-key-id")) {
			r.access_key_id = argv[++i];
		} else if (v && !strcmp(a, "--mountpoint")) {
			r.mountpoint = argv[++i];
		} else if (v && !strcmp(a, "--metadata-ttl")) {
			r.metadata_ttl = strtod(argv[++i], NULL);
		} else if (!strcmp(a, "--secret-access-key") || !strcmp(a, "--secret")) {
			fprintf(stderr, "cloudmount: secrets are not taken from the command line (other users can "
					"read it in ps): give them at the prompt or on standard input\n");
			rc = CLI_USAGE;
			goto out_free;
		} else {
			fprintf(stderr, "cloudmount: remote add: unknown or incomplete option %s\n%s", a, remote_usage);
			rc = CLI_USAGE;
			goto out_free;
		}
	}
	if (r.profile && r.access_key_id) {
		fprintf(stderr, "cloudmount: give --profile or --access-key-id, not both\n");
		rc = CLI_USAGE;
		goto out_free;
	}
	if (r.endpoint && strncmp(r.endpoint, "http://", 7) && strncmp(r.endpoint, "https://", 8)) {
		fprintf(stderr, "cloudmount: --endpoint must start with http:// or https://\n");
		rc = CLI_USAGE;
		goto out_free;
	}
	rc = load(&rs);
	if (rc != CLI_OK)
		goto out_free;
	if (remotes_find(&rs, r.name)) {
		fprintf(stderr, "cloudmount: a remote called %s exists already (cloudmount remote remove %s)\n", r.name,
			r.name);
		rc = CLI_USAGE;
		goto out_release;
	}
	if (r.access_key_id) {
		enum secret_backend where;
		secret = read_secret("Secret access key: ");
		if (!secret) {
			fprintf(stderr, "cloudmount: no secret access key given\n");
			rc = CLI_USAGE;
			goto out_release;
		}
		cm_err_clear(&err);
		if (secrets_store(r.name, r.access_key_id, secret, &where, &err) != CM_OK) {
			rc = cli_report("storing the secret", &err);
			goto out_release;
		}
		fprintf(stderr, "cloudmount: the secret of %s is in %s\n", r.name, secrets_backend_describe(where));
		if (where == SECRET_BACKEND_FILE)
			fprintf(stderr, "cloudmount: (no keyring was reachable: no D-Bus session or Secret Service)\n");
	}
	remotes_add(&rs, &r);
	cm_err_clear(&err);
	if (remotes_save(&rs, &err) != CM_OK) {
		rc = cli_report("saving the configuration", &err);
		goto out_release;
	}
	printf("added %s (s3://%s%s%s) to %s\n", r.name, r.bucket, *r.prefix ? "/" : "", r.prefix, rs.path);
out_release:
	remotes_release(&rs);
out_free:
	secrets_free(secret);
	free(r.bucket);
	free(r.prefix);
	return rc;
}

static int remote_list(void)
{
	struct remotes rs;
	int rc = load(&rs);

	if (rc != CLI_OK)
		return rc;
	if (!rs.n) {
		printf("no remotes yet: cloudmount remote add NAME s3://BUCKET ...\n");
	} else {
		printf("%-16s %-36s %-9s %s\n", "NAME", "URL", "AUTOMOUNT", "MOUNTPOINT");
		for (size_t i = 0; i < rs.n; i++) {
			char *url = remote_url(&rs.list[i]), *mp = remote_mountpoint(&rs.list[i]);
			printf("%-16s %-36s %-9s %s\n", rs.list[i].name, url, rs.list[i].automount ? "yes" : "no", mp);
			free(url);
			free(mp);
		}
	}
	remotes_release(&rs);
	return CLI_OK;
}

static int remote_show(const char *name)
{
	struct remotes rs;
	struct remote *r;
	int rc = load(&rs);
	char *url, *mp;

	if (rc != CLI_OK)
		return rc;
	r = remotes_find(&rs, name);
	if (!r) {
		fprintf(stderr, "cloudmount: no remote called %s (see: cloudmount remote list)\n", name);
		remotes_release(&rs);
		return CLI_NOT_FOUND;
	}
	url = remote_url(r);
	mp = remote_mountpoint(r);
	printf("name: %s\nurl: %s\nendpoint: %s\nregion: %s\naddressing: %s\nmountpoint: %s\nautomount: %s\n"
	       "read-only: %s\n",
	       r->name, url, r->endpoint ? r->endpoint : "(default)", r->region ? r->region : "(default)",
	       r->path_style < 0 ? "auto" : r->path_style ? "path-style" : "virtual-hosted", mp,
	       r->automount ? "yes" : "no", r->read_only ? "yes" : "no");
	if (r->metadata_ttl >= 0)
		printf("metadata-ttl: %g\n", r->metadata_ttl);
	if (r->access_key_id) {
		char *secret = NULL, *key_id = NULL;
		enum secret_backend where = SECRET_BACKEND_NONE;
		struct cm_err err;
		if (secrets_lookup(r->name, &secret, &key_id, &where, &err) == CM_OK)
			printf("credentials: access key %s, secret in %s\n", r->access_key_id,
			       secrets_backend_describe(where));
		else
			printf("credentials: access key %s, secret MISSING (run remote add again)\n", r->access_key_id);
		secrets_free(secret);
		free(key_id);
	} else {
		printf("credentials: %s\n", r->profile ? r->profile : "the default AWS chain (environment, ~/.aws)");
	}
	free(url);
	free(mp);
	remotes_release(&rs);
	return CLI_OK;
}

static int remote_remove(const char *name)
{
	struct remotes rs;
	struct cm_err err;
	int rc = load(&rs);

	if (rc != CLI_OK)
		return rc;
	if (!remotes_remove(&rs, name)) {
		fprintf(stderr, "cloudmount: no remote called %s\n", name);
		remotes_release(&rs);
		return CLI_NOT_FOUND;
	}
	cm_err_clear(&err);
	if (remotes_save(&rs, &err) != CM_OK) {
		rc = cli_report("saving the configuration", &err);
	} else {
		secrets_delete(name, &err);
		printf("removed %s\n", name);
	}
	remotes_release(&rs);
	return rc;
}

/* A plain-words diagnosis of what stops a remote from working. */
static const char *diagnose(const struct cm_err *err)
{
	switch (err->status) {
	case CM_E_NETWORK:
		if (strstr(err->message, "resolve"))
			return "DNS: the endpoint's host name does not resolve";
		return "network: the endpoint does not answer (wrong address or port, or the server is down)";
	case CM_E_TLS:
		return "TLS: the server's certificate is not trusted (a private CA needs --ca-bundle)";
	case CM_E_TIMEOUT:
		return "network: the endpoint did not answer in time";
	case CM_E_SIGNATURE:
		return "403: the secret access key is wrong";
	case CM_E_ACCESS_DENIED:
		return "403: access denied (unknown access key, or no permission on this bucket)";
	case CM_E_CLOCK_SKEW:
		return "clock skew: this machine's clock is too far off; fix the time";
	case CM_E_NO_BUCKET:
	case CM_E_NOT_FOUND:
		return "404: no such bucket at this endpoint (or the wrong region)";
	case CM_E_CREDENTIALS:
		return "no credentials: add them with remote add --access-key-id, or a profile";
	default:
		return "the request failed";
	}
}

static int remote_test(const char *name)
{
	struct remotes rs;
	struct remote *r;
	struct cli_conn_opts o;
	struct cli_ctx ctx;
	struct cm_err err;
	struct s3_list_page page;
	enum cm_status st;
	int rc = load(&rs);

	if (rc != CLI_OK)
		return rc;
	r = remotes_find(&rs, name);
	if (!r) {
		fprintf(stderr, "cloudmount: no remote called %s\n", name);
		remotes_release(&rs);
		return CLI_NOT_FOUND;
	}
	cli_conn_opts_init(&o);
	cli_conn_from_remote(&o, r);
	o.max_retries = 1;
	o.connect_timeout_ms = 5000;
	rc = cli_ctx_init(&ctx, &o, 1);
	if (rc != CLI_OK) {
		remotes_release(&rs);
		return rc;
	}
	cm_err_clear(&err);
	st = s3_list_objects(ctx.client, r->bucket, *r->prefix ? r->prefix : NULL, NULL, NULL, NULL, 1, &page, &err);
	if (st == CM_OK) {
		printf("%s: ok: bucket %s reachable at %s, listing works (%s)\n", name, r->bucket,
		       s3_client_endpoint(ctx.client), page.n_objects ? "found a key" : "no keys yet");
		s3_list_page_release(&page);
	} else {
		printf("%s: FAILED: %s\n", name, diagnose(&err));
		rc = cli_report(name, &err);
	}
	cli_ctx_release(&ctx);
	remotes_release(&rs);
	return rc;
}

int cmd_remote(int argc, char **argv)
{
	if (argc < 1 || !strcmp(argv[0], "-h") || !strcmp(argv[0], "--help")) {
		printf("%s", remote_usage);
		return argc < 1 ? CLI_USAGE : CLI_OK;
	}
	if (!strcmp(argv[0], "add"))
		return remote_add(argc - 1, argv + 1);
	if (!strcmp(argv[0], "list") || !strcmp(argv[0], "ls"))
		return remote_list();
	if (argc == 2 && !strcmp(argv[0], "show"))
		return remote_show(argv[1]);
	if (argc == 2 && (!strcmp(argv[0], "remove") || !strcmp(argv[0], "rm")))
		return remote_remove(argv[1]);
	if (argc == 2 && !strcmp(argv[0], "test"))
		return remote_test(argv[1]);
	fprintf(stderr, "%s", remote_usage);
	return CLI_USAGE;
}
