/*
 * remotes.c - CloudMount's config file of named remotes (see remotes.h).
 */
#include "config/remotes.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/util.h"
#include "config/ini.h"
#include "platform/platform.h"

char *remotes_default_path(void)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");

	if (xdg && *xdg)
		return xasprintf("%s/cloudmount/cloudmount.conf", xdg);
	return xasprintf("%s/.config/cloudmount/cloudmount.conf", home && *home ? home : "/");
}

int remote_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > 64 || name[0] == '.' || name[0] == '-')
		return 0;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
			return 0;
	return 1;
}

void remote_release(struct remote *r)
{
	free(r->name);
	free(r->bucket);
	free(r->prefix);
	free(r->endpoint);
	free(r->region);
	free(r->profile);
	free(r->access_key_id);
	free(r->mountpoint);
	free(r->cache_dir);
	memset(r, 0, sizeof(*r));
}

void remotes_release(struct remotes *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		remote_release(&rs->list[i]);
	free(rs->list);
	free(rs->path);
	memset(rs, 0, sizeof(*rs));
}

struct remote *remotes_find(const struct remotes *rs, const char *name)
{
	for (size_t i = 0; i < rs->n; i++)
		if (!strcmp(rs->list[i].name, name))
			return &rs->list[i];
	return NULL;
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

struct remote *remotes_add(struct remotes *rs, const struct remote *r)
{
	struct remote *n;

	rs->list = xrealloc(rs->list, (rs->n + 1) * sizeof(*rs->list));
	n = &rs->list[rs->n++];
	memset(n, 0, sizeof(*n));
	n->name = xstrdup(r->name);
	n->bucket = xstrdup(r->bucket);
	n->prefix = xstrdup(r->prefix ? r->prefix : "");
	n->endpoint = dup_or_null(r->endpoint);
	n->region = dup_or_null(r->region);
	n->path_style = r->path_style;
	n->profile = dup_or_null(r->profile);
	n->access_key_id = dup_or_null(r->access_key_id);
	n->mountpoint = dup_or_null(r->mountpoint);
	n->automount = r->automount;
	n->read_only = r->read_only;
	n->metadata_ttl = r->metadata_ttl;
	n->cache_dir = dup_or_null(r->cache_dir);
	n->line = r->line;
	return n;
}

int remotes_remove(struct remotes *rs, const char *name)
{
	for (size_t i = 0; i < rs->n; i++) {
		if (!strcmp(rs->list[i].name, name)) {
			remote_release(&rs->list[i]);
			memmove(&rs->list[i], &rs->list[i + 1], (rs->n - i - 1) * sizeof(*rs->list));
			rs->n--;
			return 1;
		}
	}
	return 0;
}

/* Parse "s3://bucket[/prefix]" into r. Returns 0 or -1. */
static int parse_url(const char *url, struct remote *r)
{
	const char *b, *slash;

	if (strncmp(url, "s3://", 5) != 0)
		return -1;
	b = url + 5;
	slash = strchr(b, '/');
	if ((slash ? (size_t)(slash - b) : strlen(b)) == 0)
		return -1;
	free(r->bucket);
	free(r->prefix);
	r->bucket = slash ? xstrndup(b, (size_t)(slash - b)) : xstrdup(b);
	r->prefix = xstrdup(slash ? slash + 1 : "");
	/* no trailing '/' in the stored prefix */
	while (*r->prefix && r->prefix[strlen(r->prefix) - 1] == '/')
		r->prefix[strlen(r->prefix) - 1] = '\0';
	return 0;
}

static int parse_bool(const char *v, int *out)
{
	if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcmp(v, "1") || !strcasecmp(v, "on"))
		*out = 1;
	else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcmp(v, "0") || !strcasecmp(v, "off"))
		*out = 0;
	else
		return -1;
	return 0;
}

/* One "key = value" of a remote section. Returns 0, or -1 with a message in err. */
static int apply_setting(struct remote *r, const char *file, const struct ini_entry *e, struct cm_err *err)
{
	const char *k = e->key, *v = e->value;
	int b;

#define BAD(what) do { \
	cm_err_set(err, CM_E_CONFIG, "%s:%u: %s", file, e->line, what); \
	return -1; \
} while (0)
	if (!strcasecmp(k, "url")) {
		if (parse_url(v, r) < 0)
			BAD("url must look like s3://BUCKET[/PREFIX]");
	} else if (!strcasecmp(k, "endpoint")) {
		if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
			BAD("endpoint must start with http:// or https://");
		free(r->endpoint);
		r->endpoint = xstrdup(v);
	} else if (!strcasecmp(k, "region")) {
		free(r->region);
		r->region = xstrdup(v);
	} else if (!strcasecmp(k, "profile")) {
		free(r->profile);
		r->profile = xstrdup(v);
	} else if (!strcasecmp(k, "access-key-id")) {
		free(r->access_key_id);
		r->access_key_id = xstrdup(v);
	} else if (!strcasecmp(k, "mountpoint")) {
		if (v[0] != '/' && v[0] != '~')
			BAD("mountpoint must be an absolute path");
		free(r->mountpoint);
		r->mountpoint = xstrdup(v);
	} else if (!strcasecmp(k, "cache-dir")) {
		free(r->cache_dir);
		r->cache_dir = xstrdup(v);
	} else if (!strcasecmp(k, "path-style") || !strcasecmp(k, "automount") || !strcasecmp(k, "read-only")) {
		if (parse_bool(v, &b) < 0)
			BAD("expected true or false");
		if (!strcasecmp(k, "path-style"))
			r->path_style = b;
		else if (!strcasecmp(k, "automount"))
			r->automount = b;
		else
			r->read_only = b;
	} else if (!strcasecmp(k, "metadata-ttl")) {
		char *end;
		double d = strtod(v, &end);
		if (!*v || *end || d < 0 || d > 86400)
			BAD("metadata-ttl must be a number of seconds (0 to 86400)");
		r->metadata_ttl = d;
	} else if (!strcasecmp(k, "aws_secret_access_key") || !strcasecmp(k, "secret-access-key") ||
		   !strcasecmp(k, "secret")) {
		BAD("secrets do not belong in this file: use 'cloudmount remote add' (keyring)");
	} else {
		char what[160];
		snprintf(what, sizeof(what), "unknown setting \"%.60s\"", k);
		BAD(what);
	}
#undef BAD
	return 0;
}

/* The [tray] section. Returns 0, or -1 with a message in err. */
static int apply_tray_setting(struct remotes *rs, const struct ini_section *sec, struct cm_err *err)
{
	for (size_t k = 0; k < sec->n_entries; k++) {
		const struct ini_entry *e = &sec->entries[k];
		if (strcasecmp(e->key, "unmount-on-quit") != 0) {
			cm_err_set(err, CM_E_CONFIG, "%s:%u: unknown setting \"%.60s\" in [tray]", rs->path, e->line,
				   e->key);
			return -1;
		}
		if (parse_bool(e->value, &rs->tray_unmount_on_quit) < 0) {
			cm_err_set(err, CM_E_CONFIG, "%s:%u: expected true or false", rs->path, e->line);
			return -1;
		}
	}
	return 0;
}

enum cm_status remotes_load(const char *path, struct remotes *out, struct cm_err *err)
{
	struct ini_file ini;
	enum cm_status st;

	memset(out, 0, sizeof(*out));
	out->path = path ? xstrdup(path) : remotes_default_path();
	st = ini_load_file(out->path, &ini, err);
	if (st == CM_E_NOT_FOUND) {
		cm_err_clear(err);
		return CM_OK;
	}
	if (st != CM_OK) {
		free(out->path);
		out->path = NULL;
		return st;
	}
	for (size_t i = 0; i < ini.n_sections; i++) {
		const struct ini_section *sec = &ini.sections[i];
		struct remote r;
		if (!strcmp(sec->name, "tray")) {
			if (apply_tray_setting(out, sec, err) < 0) {
				st = CM_E_CONFIG;
				goto out_fail;
			}
			continue;
		}
		if (strncmp(sec->name, "remote ", 7) != 0) {
			st = cm_err_set(err, CM_E_CONFIG,
					"%s:%u: unknown section \"%.60s\" (expected [remote NAME] or [tray])",
					out->path, sec->line, sec->name);
			goto out_fail;
		}
		memset(&r, 0, sizeof(r));
		r.name = xstrdup(sec->name + 7);
		r.path_style = -1;
		r.metadata_ttl = -1;
		r.line = sec->line;
		if (!remote_name_valid(r.name)) {
			st = cm_err_set(err, CM_E_CONFIG, "%s:%u: \"%.60s\" is not a valid remote name "
					"(letters, digits, '.', '_', '-')", out->path, sec->line, r.name);
			remote_release(&r);
			goto out_fail;
		}
		for (size_t k = 0; k < sec->n_entries; k++) {
			if (apply_setting(&r, out->path, &sec->entries[k], err) < 0) {
				st = CM_E_CONFIG;
				remote_release(&r);
				goto out_fail;
			}
		}
		if (!r.bucket) {
			st = cm_err_set(err, CM_E_CONFIG, "%s:%u: remote %s has no url = s3://BUCKET", out->path,
					sec->line, r.name);
			remote_release(&r);
			goto out_fail;
		}
		remotes_add(out, &r);
		remote_release(&r);
	}
	ini_file_release(&ini);
	return CM_OK;
out_fail:
	ini_file_release(&ini);
	remotes_release(out);
	return st;
}

enum cm_status remotes_save(const struct remotes *rs, struct cm_err *err)
{
	struct buf b = BUF_INIT;
	char *tmp;
	int fd;

	buf_puts(&b, "# CloudMount remotes: edited by 'cloudmount remote add/remove' (comments are not kept).\n"
		     "# Secrets are not here: they are in the keyring, or in the credentials file beside this one.\n");
	for (size_t i = 0; i < rs->n; i++) {
		const struct remote *r = &rs->list[i];
		buf_printf(&b, "\n[remote %s]\nurl = s3://%s%s%s\n", r->name, r->bucket, *r->prefix ? "/" : "",
			   r->prefix);
		if (r->endpoint)
			buf_printf(&b, "endpoint = %s\n", r->endpoint);
		if (r->region)
			buf_printf(&b, "region = %s\n", r->region);
		if (r->path_style >= 0)
			buf_printf(&b, "path-style = %s\n", r->path_style ? "true" : "false");
		if (r->profile)
			buf_printf(&b, "profile = %s\n", r->profile);
		if (r->access_key_id)
			buf_printf(&b, "access-key-id = %s\n", r->access_key_id);
		if (r->mountpoint)
			buf_printf(&b, "mountpoint = %s\n", r->mountpoint);
		buf_printf(&b, "automount = %s\n", r->automount ? "true" : "false");
		if (r->read_only)
			buf_puts(&b, "read-only = true\n");
		if (r->metadata_ttl >= 0)
			buf_printf(&b, "metadata-ttl = %g\n", r->metadata_ttl);
		if (r->cache_dir)
			buf_printf(&b, "cache-dir = %s\n", r->cache_dir);
	}
	if (rs->tray_unmount_on_quit)
		buf_puts(&b, "\n[tray]\nunmount-on-quit = true\n");
	util_mkdir_parents(rs->path, 0700);
	tmp = xasprintf("%s.tmp.%d", rs->path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, b.data, b.len) != (ssize_t)b.len || fsync(fd) < 0) {
		cm_err_set(err, CM_E_IO, "%s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		free(tmp);
		buf_release(&b);
		return CM_E_IO;
	}
	close(fd);
	if (rename(tmp, rs->path) < 0) {
		cm_err_set(err, CM_E_IO, "%s: %s", rs->path, strerror(errno));
		unlink(tmp);
		free(tmp);
		buf_release(&b);
		return CM_E_IO;
	}
	free(tmp);
	buf_release(&b);
	return CM_OK;
}

char *remote_mountpoint(const struct remote *r)
{
	if (r->mountpoint) {
		const char *home = getenv("HOME");
		if (r->mountpoint[0] == '~' && home)
			return xasprintf("%s%s", home, r->mountpoint + 1);
		return xstrdup(r->mountpoint);
	}
	return platform_default_mountpoint(r->name);
}

char *remote_url(const struct remote *r)
{
	return xasprintf("s3://%s%s%s", r->bucket, *r->prefix ? "/" : "", r->prefix);
}
