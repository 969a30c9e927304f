/*
 * secrets_file.c - the credentials-file backend: [REMOTE] sections with
 * aws_access_key_id / aws_secret_access_key in awscli's format, at
 * secrets_file_path(), so the file also works as AWS_SHARED_CREDENTIALS_FILE.
 *
 * Reading goes through ini.h (configparser's dialect). Writing (store and
 * delete) is a read-modify-write of the whole file:
 *   1. create the directory chain as needed, each new directory 0700 (existing
 *      directories are left as they are: the user may have reasons);
 *   2. take an exclusive flock() on the cloudmount directory, so two
 *      cloudmount processes updating different remotes do not lose an update;
 *   3. parse the current file (a missing file is empty; a file that does not
 *      parse is never overwritten: CM_E_CONFIG "FILE:LINE: what");
 *   4. render every section again from the parse, with the remote's section
 *      changed or dropped; other sections, their keys, multi-line values and
 *      botocore sub-sections are kept, but comments, blank lines and the
 *      original indentation and delimiters are not (documented loss);
 *   5. write a temporary file (mkstemp: 0600) in the same directory as the
 *      file, fsync it, rename it over the file and fsync the directory, so a
 *      crash leaves either the old or the new file, never a mix.
 * If the file is a symbolic link, the file it points to is replaced (the link
 * stays), as dotfile managers expect. The result is always mode 0600, which
 * also tightens a file the user created with looser permissions.
 *
 * Permissions on lookup: awscli reads a group- or world-readable credentials
 * file without complaint, and refusing it would break setups that work with
 * every other S3 tool, so a lookup does not refuse such a file: it logs a
 * warning naming the path, the mode and the fix (chmod 600). The next store or
 * delete rewrites it 0600.
 *
 * Nothing here logs or formats a secret; every buffer that held file contents
 * is wiped before it is freed (ini_file_release wipes parsed values).
 */
#include "config/secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "config/ini.h"

#define KEY_ID_NAME "aws_access_key_id"
#define SECRET_NAME "aws_secret_access_key"
/* Continuation lines of multi-line values and sub-sections are indented this much. */
#define CONT_INDENT "    "

/*
 * Check a string before it goes into the file: non-empty, no control
 * characters (a newline would start a new setting), no surrounding blanks
 * (the reader trims them). Section names also may not hold brackets. The
 * value is never quoted in the message.
 */
static enum cm_status file_check(const char *s, const char *what, int is_section,
				 struct cm_err *err)
{
	size_t n;

	if (!s || !*s)
		return cm_err_set(err, CM_E_INVALID, "%s is empty", what);
	n = strlen(s);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return cm_err_set(err, CM_E_INVALID, "%s contains a control character", what);
		if (is_section && (c == '[' || c == ']'))
			return cm_err_set(err, CM_E_INVALID, "%s contains '[' or ']'", what);
	}
	if (s[0] == ' ' || s[n - 1] == ' ')
		return cm_err_set(err, CM_E_INVALID, "%s begins or ends with a space", what);
	return CM_OK;
}

/* The file's path, or CM_E_CONFIG when there is no home directory to put it in. */
static enum cm_status file_path(char **path, struct cm_err *err)
{
	*path = secrets_file_path();
	if (!*path)
		return cm_err_set(err, CM_E_CONFIG,
				  "cannot place the credentials file: neither XDG_CONFIG_HOME nor HOME "
				  "is set to an absolute path, and the user has no home directory");
	return CM_OK;
}

/* The directory part of path (malloc'd; "." when it has no '/'; "/" for "/x"). */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

/*
 * mkdir -p dir, each directory it creates with mode exactly 0700 (chmod'ed
 * after mkdir, whatever the umask). Returns CM_OK or CM_E_IO naming the
 * directory that could not be made.
 */
static enum cm_status make_dirs(const char *dir, struct cm_err *err)
{
	char *copy = xstrdup(dir);
	enum cm_status st = CM_OK;
	char *p = copy;

	for (;;) {
		struct stat sb;
		int last;

		while (*p == '/')
			p++;
		while (*p && *p != '/')
			p++;
		last = *p == '\0';
		*p = '\0';
		if (stat(copy, &sb) == 0) {
			if (!S_ISDIR(sb.st_mode)) {
				st = cm_err_set(err, CM_E_IO, "%s: %s", copy, strerror(ENOTDIR));
				break;
			}
		} else if (errno != ENOENT) {
			st = cm_err_set(err, CM_E_IO, "%s: %s", copy, strerror(errno));
			break;
		} else if (mkdir(copy, 0700) == 0) {
			if (chmod(copy, 0700) != 0) {
				st = cm_err_set(err, CM_E_IO, "%s: %s", copy, strerror(errno));
				break;
			}
		} else if (errno != EEXIST) {
			st = cm_err_set(err, CM_E_IO, "cannot create directory %s: %s", copy,
					strerror(errno));
			break;
		}
		if (last)
			break;
		*p++ = '/';
	}
	free(copy);
	return st;
}

/* ---- rendering ---- */

/*
 * Renders text twice: once with out == NULL to measure, once into a buffer of
 * exactly that size, so the text (which holds secrets) is never realloc'ed and
 * left behind unwiped.
 */
struct emitter {
	char *out;
	size_t len;
};

static void emit(struct emitter *em, const char *s, size_t n)
{
	if (em->out)
		memcpy(em->out + em->len, s, n);
	em->len += n;
}

static void emit_str(struct emitter *em, const char *s)
{
	emit(em, s, strlen(s));
}

/* A value; the lines after the first of a multi-line value are indented. */
static void emit_value(struct emitter *em, const char *v)
{
	const char *nl;

	while ((nl = strchr(v, '\n')) != NULL) {
		emit(em, v, (size_t)(nl - v));
		emit_str(em, "\n" CONT_INDENT);
		v = nl + 1;
	}
	emit_str(em, v);
}

static void emit_setting(struct emitter *em, const char *key, const char *value)
{
	emit_str(em, key);
	emit_str(em, value[0] ? " = " : " =");
	emit_value(em, value);
	emit_str(em, "\n");
}

/* An entry as parsed: "key = value", or "key =" and its indented sub-entries. */
static void emit_entry(struct emitter *em, const struct ini_entry *e)
{
	emit_setting(em, e->key, e->value);
	for (size_t i = 0; i < e->n_subs; i++) {
		emit_str(em, CONT_INDENT);
		emit_setting(em, e->subs[i].key, e->subs[i].value);
	}
}

/* The remote's section with its two keys set (other keys kept, in place). */
static void emit_remote_section(struct emitter *em, const struct ini_section *s, const char *remote,
				const char *key_id, const char *secret)
{
	int have_id = 0, have_secret = 0;

	emit_str(em, "[");
	emit_str(em, remote);
	emit_str(em, "]\n");
	for (size_t i = 0; s && i < s->n_entries; i++) {
		const struct ini_entry *e = &s->entries[i];

		if (strcasecmp(e->key, KEY_ID_NAME) == 0) {
			emit_setting(em, KEY_ID_NAME, key_id);
			have_id = 1;
		} else if (strcasecmp(e->key, SECRET_NAME) == 0) {
			emit_setting(em, SECRET_NAME, secret);
			have_secret = 1;
		} else {
			emit_entry(em, e);
		}
	}
	if (!have_id)
		emit_setting(em, KEY_ID_NAME, key_id);
	if (!have_secret)
		emit_setting(em, SECRET_NAME, secret);
}

/*
 * The whole file: f's sections in order, the remote's replaced (store:
 * secret != NULL) or left out (delete: secret == NULL); a new remote goes last.
 */
static void emit_file(struct emitter *em, const struct ini_file *f, const char *remote,
		      const char *key_id, const char *secret)
{
	int written = 0, found = 0;

	for (size_t i = 0; i < f->n_sections; i++) {
		const struct ini_section *s = &f->sections[i];

		if (strcmp(s->name, remote) == 0) {
			found = 1;
			if (!secret)
				continue;
			if (written++)
				emit_str(em, "\n");
			emit_remote_section(em, s, remote, key_id, secret);
			continue;
		}
		if (written++)
			emit_str(em, "\n");
		emit_str(em, "[");
		emit_str(em, s->name);
		emit_str(em, "]\n");
		for (size_t j = 0; j < s->n_entries; j++)
			emit_entry(em, &s->entries[j]);
	}
	if (!found && secret) {
		if (written)
			emit_str(em, "\n");
		emit_remote_section(em, NULL, remote, key_id, secret);
	}
}

/* ---- writing ---- */

/* Write all of buf to fd. Returns 0 or -1 with errno set. */
static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Replace target with text: a 0600 temporary file next to it, fsync, rename,
 * fsync of the directory. On failure target is untouched and the temporary
 * file removed. Returns CM_OK or CM_E_IO "PATH: reason".
 */
static enum cm_status replace_file(const char *target, const char *text, size_t len,
				   struct cm_err *err)
{
	char *tmp = xasprintf("%s.tmp-XXXXXX", target);
	char *dir = dir_of(target);
	enum cm_status st = CM_OK;
	int fd, dir_fd;

	fd = mkstemp(tmp);
	if (fd < 0) {
		st = cm_err_set(err, CM_E_IO, "cannot create a file in %s: %s", dir, strerror(errno));
		goto out_free;
	}
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	/* mkstemp makes 0600 files; say so explicitly in case a libc differs. */
	if (fchmod(fd, 0600) != 0 || write_all(fd, text, len) != 0 || fsync(fd) != 0) {
		st = cm_err_set(err, CM_E_IO, "cannot write %s: %s", tmp, strerror(errno));
		close(fd);
		goto out_unlink;
	}
	if (close(fd) != 0) {
		st = cm_err_set(err, CM_E_IO, "cannot write %s: %s", tmp, strerror(errno));
		goto out_unlink;
	}
	if (rename(tmp, target) != 0) {
		st = cm_err_set(err, CM_E_IO, "cannot replace %s: %s", target, strerror(errno));
		goto out_unlink;
	}
	/* Make the rename durable; failing to is not worth failing the store for. */
	dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd >= 0) {
		(void)fsync(dir_fd);
		close(dir_fd);
	}
	goto out_free;

out_unlink:
	unlink(tmp);
out_free:
	free(dir);
	free(tmp);
	return st;
}

/* The file a write must replace: the target of a symlink, else path itself (malloc'd). */
static char *write_target(const char *path)
{
	struct stat sb;
	char *real;

	if (lstat(path, &sb) != 0 || !S_ISLNK(sb.st_mode))
		return xstrdup(path);
	real = realpath(path, NULL);
	return real ? real : xstrdup(path);
}

/*
 * The common read-modify-write of store (secret != NULL) and delete (secret ==
 * NULL). Only a store creates the directory and the file. Returns CM_OK,
 * CM_E_NOT_FOUND (delete: nothing to remove, nothing written), CM_E_CONFIG for
 * an unreadable or unparsable file, CM_E_IO for a failed write.
 */
static enum cm_status file_update(const char *remote, const char *key_id, const char *secret,
				  struct cm_err *err)
{
	struct ini_file f = { 0 };
	struct emitter em = { 0 };
	char *path, *dir, *target = NULL;
	enum cm_status st;
	int lockfd = -1;

	st = file_path(&path, err);
	if (st != CM_OK)
		return st;
	dir = dir_of(path);
	if (secret) {
		st = make_dirs(dir, err);
		if (st != CM_OK)
			goto out_free_path;
	}
	lockfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lockfd < 0) {
		if (!secret && (errno == ENOENT || errno == ENOTDIR)) {
			st = CM_E_NOT_FOUND;
			goto out_free_path;
		}
		st = cm_err_set(err, CM_E_IO, "%s: %s", dir, strerror(errno));
		goto out_free_path;
	}
	while (flock(lockfd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			/* A filesystem without flock: carry on unlocked, as awscli always does. */
			log_debug("secrets: cannot lock %s: %s", dir, strerror(errno));
			break;
		}
	}

	target = write_target(path);
	st = ini_load_file(target, &f, err);
	if (st == CM_E_NOT_FOUND) {
		if (!secret)
			goto out_unlock;
		memset(&f, 0, sizeof(f));
		cm_err_clear(err);
		st = CM_OK;
	}
	if (st != CM_OK)
		goto out_unlock;
	if (!secret && !ini_find_section(&f, remote)) {
		st = CM_E_NOT_FOUND;
		goto out_release;
	}

	emit_file(&em, &f, remote, key_id, secret);
	em.out = xmalloc(em.len + 1);
	em.len = 0;
	emit_file(&em, &f, remote, key_id, secret);
	st = replace_file(target, em.out, em.len, err);
	explicit_bzero(em.out, em.len);
	free(em.out);

out_release:
	ini_file_release(&f);
out_unlock:
	free(target);
	close(lockfd);  /* drops the flock */
out_free_path:
	free(dir);
	free(path);
	return st;
}

enum cm_status secrets_file_store(const char *remote, const char *access_key_id, const char *secret,
				  struct cm_err *err)
{
	enum cm_status st;

	st = file_check(remote, "the remote name", 1, err);
	if (st == CM_OK)
		st = file_check(access_key_id, "the access key id", 0, err);
	if (st == CM_OK)
		st = file_check(secret, "the secret access key", 0, err);
	if (st != CM_OK)
		return st;
	return file_update(remote, access_key_id, secret, err);
}

enum cm_status secrets_file_delete(const char *remote, struct cm_err *err)
{
	enum cm_status st = file_check(remote, "the remote name", 1, err);

	if (st != CM_OK)
		return st;
	st = file_update(remote, NULL, NULL, err);
	return st == CM_E_NOT_FOUND ? CM_OK : st;
}

/* Warn (never refuse, see the top of the file) when others may read the file. */
static void warn_if_exposed(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) != 0 || (sb.st_mode & (S_IRWXG | S_IRWXO)) == 0)
		return;
	log_warn("%s can be read by other users (mode %03o); it holds secrets: chmod 600 %s",
		 path, (unsigned)(sb.st_mode & 0777), path);
}

enum cm_status secrets_file_lookup(const char *remote, char **secret, char **access_key_id,
				   struct cm_err *err)
{
	struct ini_file f = { 0 };
	const struct ini_section *s;
	const struct ini_entry *e;
	enum cm_status st;
	char *path;

	*secret = NULL;
	if (access_key_id)
		*access_key_id = NULL;
	st = file_check(remote, "the remote name", 1, err);
	if (st != CM_OK)
		return st;
	st = file_path(&path, err);
	if (st != CM_OK)
		return st;
	st = ini_load_file(path, &f, err);
	if (st == CM_E_NOT_FOUND) {
		st = cm_err_set(err, CM_E_NOT_FOUND, "no secret for remote \"%s\": %s does not exist",
				remote, path);
		goto out_free_path;
	}
	if (st != CM_OK)
		goto out_free_path;
	warn_if_exposed(path);

	s = ini_find_section(&f, remote);
	e = ini_find_entry(s, SECRET_NAME);
	if (!e) {
		st = cm_err_set(err, CM_E_NOT_FOUND, "no secret for remote \"%s\" in %s%s", remote,
				path, s ? " (its section has no " SECRET_NAME ")" : "");
		goto out_release;
	}
	if (!e->value[0] || strchr(e->value, '\n')) {
		cm_err_detail(err, "line %u", e->line);
		st = cm_err_set(err, CM_E_CONFIG, "%s:%u: " SECRET_NAME " of [%s] is %s", path,
				e->line, remote, e->value[0] ? "split over several lines" : "empty");
		goto out_release;
	}
	*secret = xstrdup(e->value);
	e = ini_find_entry(s, KEY_ID_NAME);
	if (access_key_id && e && e->value[0])
		*access_key_id = xstrdup(e->value);
	st = CM_OK;

out_release:
	ini_file_release(&f);
out_free_path:
	free(path);
	return st;
}
