/*
 * cli_common.c - connection options, client set-up, URL parsing and error
 * reporting for the CLI commands (see cli.h).
 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "config/remotes.h"
#include "config/secrets.h"

const char cli_conn_help[] =
	"Connection options:\n"
	"  --endpoint URL       S3 endpoint (default: AWS for the region, or the profile's endpoint_url)\n"
	"  --region REGION      region to sign for (default: profile/AWS_REGION, else us-east-1)\n"
	"  --profile NAME       profile in ~/.aws/credentials and ~/.aws/config\n"
	"  --path-style         path-style addressing (http://host/bucket/key)\n"
	"  --virtual-hosted     virtual-hosted addressing (http://bucket.host/key)\n"
	"  --ca-bundle FILE     trust the certificates in FILE (also AWS_CA_BUNDLE)\n"
	"  --insecure           do not verify TLS certificates (dangerous)\n"
	"  --connect-timeout S  seconds to wait for a connection (default 10)\n"
	"  --retries N          retries of a failed request (default 5)\n"
	"  --concurrency N      parallel part transfers (default 8)\n"
	"  --part-size SIZE     multipart part size, e.g. 8M (default 8M, at least 5M)\n"
	"  --memory-limit SIZE  data buffers held at once (default 128M)\n"
	"  --sign-payload yes|no|auto   sign request bodies (default: over plain HTTP only)\n"
	"  -v, --verbose        more log output (twice: debug)\n";

void cli_conn_opts_init(struct cli_conn_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->addressing = -1;
	o->sign_payload = -1;
	o->concurrency = 8;
	o->part_size = 8ULL << 20;
	o->memory_limit = 128ULL << 20;
}

/* The value of option argv[*i], advancing *i; NULL (after a message) if missing. */
static const char *opt_value(int argc, char **argv, int *i)
{
	const char *eq = strchr(argv[*i], '=');

	if (eq && strncmp(argv[*i], "--", 2) == 0)
		return eq + 1;
	if (*i + 1 >= argc) {
		fprintf(stderr, "cloudmount: %s needs a value\n", argv[*i]);
		return NULL;
	}
	return argv[++*i];
}

/* Whether arg is --name or --name=value. */
static int opt_is(const char *arg, const char *name)
{
	size_t len = strlen(name);
	return strncmp(arg, name, len) == 0 && (arg[len] == '\0' || arg[len] == '=');
}

int cli_conn_opt(struct cli_conn_opts *o, int argc, char **argv, int *i)
{
	const char *a = argv[*i], *v;

	if (!strcmp(a, "--path-style")) {
		o->addressing = S3_ADDR_PATH;
		return 1;
	}
	if (!strcmp(a, "--virtual-hosted")) {
		o->addressing = S3_ADDR_VIRTUAL;
		return 1;
	}
	if (!strcmp(a, "--insecure")) {
		o->insecure = 1;
		return 1;
	}
	if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
		o->verbose++;
		return 1;
	}
	if (!strcmp(a, "-vv")) {
		o->verbose += 2;
		return 1;
	}
#define STR_OPT(name, field) \
	if (opt_is(a, name)) { \
		if (!(v = opt_value(argc, argv, i))) \
			return -1; \
		o->field = v; \
		return 1; \
	}
	STR_OPT("--endpoint", endpoint)
	STR_OPT("--endpoint-url", endpoint)
	STR_OPT("--region", region)
	STR_OPT("--profile", profile)
	STR_OPT("--ca-bundle", ca_bundle)
#undef STR_OPT
	if (opt_is(a, "--connect-timeout") || opt_is(a, "--retries") || opt_is(a, "--concurrency")) {
		char *end;
		long n;
		if (!(v = opt_value(argc, argv, i)))
			return -1;
		n = strtol(v, &end, 10);
		if (*end || n < 0 || n > 100000) {
			fprintf(stderr, "cloudmount: %s: \"%s\" is not a usable number\n", a, v);
			return -1;
		}
		if (opt_is(a, "--connect-timeout"))
			o->connect_timeout_ms = n * 1000;
		else if (opt_is(a, "--retries"))
			o->max_retries = n ? (int)n : -1;
		else
			o->concurrency = n ? (int)n : 1;
		return 1;
	}
	if (opt_is(a, "--part-size") || opt_is(a, "--memory-limit")) {
		uint64_t n;
		if (!(v = opt_value(argc, argv, i)))
			return -1;
		if (util_parse_size(v, &n) < 0 || n == 0) {
			fprintf(stderr, "cloudmount: %s: \"%s\" is not a size (try 8M)\n", a, v);
			return -1;
		}
		if (opt_is(a, "--part-size")) {
			if (n < TRANSFER_MIN_PART_SIZE && !getenv("CLOUDMOUNT_TEST_SMALL_PARTS")) {
				fprintf(stderr, "cloudmount: --part-size must be at least 5M (S3's minimum)\n");
				return -1;
			}
			o->part_size = n;
		} else {
			o->memory_limit = n;
		}
		return 1;
	}
	if (opt_is(a, "--sign-payload")) {
		if (!(v = opt_value(argc, argv, i)))
			return -1;
		if (!strcmp(v, "yes"))
			o->sign_payload = 1;
		else if (!strcmp(v, "no"))
			o->sign_payload = 0;
		else if (!strcmp(v, "auto"))
			o->sign_payload = -1;
		else {
			fprintf(stderr, "cloudmount: --sign-payload takes yes, no or auto\n");
			return -1;
		}
		return 1;
	}
	return 0;
}

void cli_conn_from_remote(struct cli_conn_opts *o, const struct remote *r)
{
	if (r->endpoint)
		o->endpoint = r->endpoint;
	if (r->region)
		o->region = r->region;
	if (r->path_style >= 0)
		o->addressing = r->path_style ? S3_ADDR_PATH : S3_ADDR_VIRTUAL;
	if (r->profile)
		o->profile = r->profile;
	if (r->access_key_id) {
		o->keyring_remote = r->name;
		o->keyring_key_id = r->access_key_id;
	}
}

int cli_exit_code(enum cm_status st)
{
	switch (st) {
	case CM_OK:
		return CLI_OK;
	case CM_E_CREDENTIALS:
	case CM_E_CONFIG:
		return CLI_CREDENTIALS;
	case CM_E_ACCESS_DENIED:
	case CM_E_SIGNATURE:
	case CM_E_CLOCK_SKEW:
		return CLI_REFUSED;
	case CM_E_NOT_FOUND:
	case CM_E_NO_BUCKET:
		return CLI_NOT_FOUND;
	case CM_E_NETWORK:
	case CM_E_TIMEOUT:
	case CM_E_TLS:
		return CLI_UNREACHABLE;
	case CM_E_INVALID:
		return CLI_FAIL;
	default:
		return CLI_FAIL;
	}
}

const char *cli_hint(enum cm_status st)
{
	switch (st) {
	case CM_E_SIGNATURE:
		return "the secret access key does not match the access key id: check the credentials";
	case CM_E_CLOCK_SKEW:
		return "this machine's clock is too far from the server's: fix the time (timedatectl, NTP)";
	case CM_E_ACCESS_DENIED:
		return "the credentials are valid but not allowed to do this, or the access key is unknown";
	case CM_E_NO_BUCKET:
		return "check the bucket name, the endpoint and the region";
	case CM_E_NETWORK:
		return "check --endpoint, the network, and that the server is running";
	case CM_E_TIMEOUT:
		return "the server did not answer in time: check the endpoint and the network";
	case CM_E_TLS:
		return "the server's certificate was not accepted: use --ca-bundle FILE for a private CA";
	case CM_E_CREDENTIALS:
		return "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use --profile with ~/.aws/credentials";
	default:
		return NULL;
	}
}

int cli_report(const char *what, const struct cm_err *err)
{
	char line[1024];
	const char *hint = cli_hint(err->status);

	fprintf(stderr, "cloudmount: %s: %s\n", what, cm_err_format(err, line, sizeof(line)));
	if (hint)
		fprintf(stderr, "cloudmount: hint: %s\n", hint);
	return cli_exit_code(err->status);
}

int cli_ctx_init(struct cli_ctx *ctx, const struct cli_conn_opts *o, int need_creds)
{
	struct awscfg_request req = {
		.profile = o->profile,
		.region = o->region,
		.endpoint_url = o->endpoint,
		.addressing = o->addressing,
		.ca_bundle = o->ca_bundle,
		.skip_credentials = (o->keyring_remote && o->keyring_key_id) ||
				    (o->access_key_id && o->secret_access_key),
	};
	struct http_engine_opts eo = { 0 };
	struct s3_client_opts so = { 0 };
	struct cm_err err;
	enum cm_status st;

	memset(ctx, 0, sizeof(*ctx));
	ctx->opts = o;
	if (o->verbose)
		log_set_level(o->verbose > 1 ? LOG_LVL_DEBUG : LOG_LVL_INFO);
	cm_err_clear(&err);
	st = awscfg_load(&req, &ctx->cfg, &err);
	if (st != CM_OK)
		return cli_report("configuration", &err);
	if (o->keyring_remote && o->keyring_key_id) {
		/* a remote added with --access-key-id: its secret is in our keyring */
		char *secret = NULL, *key_id = NULL;
		enum secret_backend where;
		st = secrets_lookup(o->keyring_remote, &secret, &key_id, &where, &err);
		if (st != CM_OK) {
			cm_err_set(&err, CM_E_CREDENTIALS, "no secret for remote %s in the keyring or %s: "
				   "run 'cloudmount remote add %s ...' again", o->keyring_remote,
				   "the credentials file", o->keyring_remote);
			awscfg_release(&ctx->cfg);
			secrets_free(key_id);
			return cli_report("credentials", &err);
		}
		aws_credentials_release(&ctx->cfg.creds);
		free(ctx->cfg.credential_process);
		ctx->cfg.credential_process = NULL;
		ctx->cfg.creds.access_key_id = xstrdup(o->keyring_key_id);
		ctx->cfg.creds.secret_access_key = secret;
		free(ctx->cfg.creds_source);
		ctx->cfg.creds_source = xasprintf("%s, remote %s", secrets_backend_describe(where), o->keyring_remote);
		free(key_id);
	}
	if (o->access_key_id && o->secret_access_key) {
		aws_credentials_release(&ctx->cfg.creds);
		free(ctx->cfg.credential_process);
		ctx->cfg.credential_process = NULL;
		ctx->cfg.creds.access_key_id = xstrdup(o->access_key_id);
		ctx->cfg.creds.secret_access_key = xstrdup(o->secret_access_key);
		free(ctx->cfg.creds_source);
		ctx->cfg.creds_source = xstrdup("the request");
	}
	ctx->creds = creds_provider_create(&ctx->cfg);
	if (!creds_provider_has_source(ctx->creds)) {
		if (need_creds) {
			cm_err_clear(&err);
			cm_err_set(&err, CM_E_CREDENTIALS, "none found; looked in %s", ctx->cfg.tried);
			cli_ctx_release(ctx);
			return cli_report("credentials", &err);
		}
		log_info("no credentials found (looked in %s): sending unsigned requests", ctx->cfg.tried);
	} else {
		log_info("credentials from %s", ctx->cfg.creds_source ? ctx->cfg.creds_source : "?");
	}
	if (o->insecure)
		log_warn("TLS certificate verification is OFF (--insecure): anyone on the path can read and change this traffic");
	eo.max_in_flight = o->max_in_flight ? o->max_in_flight : 32;
	eo.connect_timeout_ms = o->connect_timeout_ms;
	eo.ca_bundle = ctx->cfg.ca_bundle;
	eo.insecure = o->insecure;
	eo.max_retries = o->max_retries;
	ctx->engine = http_engine_create(&eo);
	if (!ctx->engine) {
		fprintf(stderr, "cloudmount: could not start the HTTP engine\n");
		cli_ctx_release(ctx);
		return CLI_FAIL;
	}
	so.endpoint = ctx->cfg.endpoint_url;
	so.region = ctx->cfg.region;
	so.addressing = ctx->cfg.addressing;
	so.creds = ctx->creds;
	so.engine = ctx->engine;
	so.sign_payload = o->sign_payload;
	ctx->client = s3_client_create(&so, &err);
	if (!ctx->client) {
		cli_ctx_release(ctx);
		fprintf(stderr, "cloudmount: %s\n", err.message);
		return CLI_USAGE;
	}
	log_info("endpoint %s, region %s", s3_client_endpoint(ctx->client), ctx->cfg.region);
	ctx->workq = workq_create(o->concurrency + 2);
	ctx->budget = membudget_create(o->memory_limit);
	return CLI_OK;
}

void cli_ctx_release(struct cli_ctx *ctx)
{
	workq_destroy(ctx->workq);
	s3_client_destroy(ctx->client);
	http_engine_destroy(ctx->engine);
	creds_provider_destroy(ctx->creds);
	membudget_destroy(ctx->budget);
	awscfg_release(&ctx->cfg);
	memset(ctx, 0, sizeof(*ctx));
}

int cli_is_s3_url(const char *text)
{
	return strncmp(text, "s3://", 5) == 0;
}

int cli_parse_s3_url(const char *text, struct s3_url *out)
{
	const char *b, *slash;
	size_t blen;

	memset(out, 0, sizeof(*out));
	if (!cli_is_s3_url(text)) {
		fprintf(stderr, "cloudmount: \"%s\" is not an s3://BUCKET[/KEY] URL\n", text);
		return -1;
	}
	b = text + 5;
	slash = strchr(b, '/');
	blen = slash ? (size_t)(slash - b) : strlen(b);
	if (blen == 0) {
		fprintf(stderr, "cloudmount: \"%s\" names no bucket\n", text);
		return -1;
	}
	for (size_t i = 0; i < blen; i++) {
		unsigned char c = (unsigned char)b[i];
		if (!(c == '-' || c == '.' || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9'))) {
			fprintf(stderr, "cloudmount: \"%.*s\" is not a valid bucket name\n", (int)blen, b);
			return -1;
		}
	}
	out->bucket = xstrndup(b, blen);
	out->key = xstrdup(slash ? slash + 1 : "");
	return 0;
}

void s3_url_release(struct s3_url *u)
{
	free(u->bucket);
	free(u->key);
	memset(u, 0, sizeof(*u));
}
