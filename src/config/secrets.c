/*
 * secrets.c - the dispatcher between the keyring backend and the credentials
 * file (see secrets.h for the contract).
 *
 * The mode comes from CLOUDMOUNT_SECRETS, read on every call (tests change it):
 *   unset, "" or "auto"  keyring when secrets_keyring_available() says one can
 *                        be tried, with the file as fallback;
 *   "file"               the file only; the keyring is never touched (no D-Bus
 *                        traffic, no prompts);
 *   "keyring"            the keyring only; a keyring failure is the answer.
 * Anything else is CM_E_CONFIG, so a typo does not silently pick a backend.
 *
 * A backend that cannot be used in this session (no D-Bus, no Secret Service,
 * a locked or unreachable Keychain) answers CM_E_UNSUPPORTED; in auto mode that
 * (and any other keyring failure on store) sends the request to the file, and
 * *where tells the caller which backend was used. Lookups read the keyring
 * first, then the file, so a secret stored while the keyring was away is still
 * found once it is back. Deletes go to both (the file too in keyring mode); a
 * keyring that cannot be reached does not make a delete fail in auto mode (its
 * item, if any, is out of reach and is logged as possibly left behind).
 *
 * Every string that enters a backend is checked here first (no control
 * characters, no surrounding blanks: the file format trims and splits on
 * lines), with messages that never quote a secret.
 */
#include "config/secrets.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

enum secrets_mode {
	SECRETS_MODE_AUTO,
	SECRETS_MODE_FILE,
	SECRETS_MODE_KEYRING,
};

/* Read CLOUDMOUNT_SECRETS. Returns CM_OK or CM_E_CONFIG (value quoted: not a secret). */
static enum cm_status secrets_mode_get(enum secrets_mode *mode, struct cm_err *err)
{
	const char *v = getenv("CLOUDMOUNT_SECRETS");

	if (!v || !*v || strcasecmp(v, "auto") == 0)
		*mode = SECRETS_MODE_AUTO;
	else if (strcasecmp(v, "file") == 0)
		*mode = SECRETS_MODE_FILE;
	else if (strcasecmp(v, "keyring") == 0)
		*mode = SECRETS_MODE_KEYRING;
	else
		return cm_err_set(err, CM_E_CONFIG,
				  "CLOUDMOUNT_SECRETS=%.64s: expected \"file\", \"keyring\" or \"auto\"", v);
	return CM_OK;
}

/*
 * Check one string handed to a backend: non-empty, at most max bytes, no ASCII
 * control character, no leading or trailing blank. what names it in the
 * message ("the remote name"); the value itself is never quoted.
 */
static enum cm_status check_text(const char *s, const char *what, size_t max, struct cm_err *err)
{
	size_t n;

	if (!s || !*s)
		return cm_err_set(err, CM_E_INVALID, "%s is empty", what);
	n = strlen(s);
	if (n > max)
		return cm_err_set(err, CM_E_INVALID, "%s is longer than %zu bytes", what, max);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return cm_err_set(err, CM_E_INVALID, "%s contains a control character", what);
	}
	if (s[0] == ' ' || s[n - 1] == ' ')
		return cm_err_set(err, CM_E_INVALID, "%s begins or ends with a space", what);
	return CM_OK;
}

/* Remote names also become INI section headers: no brackets. */
static enum cm_status check_remote(const char *remote, struct cm_err *err)
{
	enum cm_status st = check_text(remote, "the remote name", 255, err);

	if (st != CM_OK)
		return st;
	if (strpbrk(remote, "[]"))
		return cm_err_set(err, CM_E_INVALID, "the remote name \"%s\" contains '[' or ']'",
				  remote);
	return CM_OK;
}

const char *secrets_backend_describe(enum secret_backend b)
{
	switch (b) {
	case SECRET_BACKEND_KEYRING:
#ifdef __APPLE__
		return "the macOS Keychain";
#else
		return "the system keyring (Secret Service)";
#endif
	case SECRET_BACKEND_FILE: {
		const char *xdg = getenv("XDG_CONFIG_HOME");

		/* Static strings only; secrets_file_path() gives the exact path. */
		if (xdg && xdg[0] == '/')
			return "the file $XDG_CONFIG_HOME/cloudmount/credentials";
		return "the file ~/.config/cloudmount/credentials";
	}
	case SECRET_BACKEND_NONE:
		break;
	}
	return "no secret store";
}

void secrets_free(char *secret)
{
	if (!secret)
		return;
	explicit_bzero(secret, strlen(secret));
	free(secret);
}

/*
 * The home directory: $HOME when it is absolute, else the password database.
 * Returns a malloc'd string or NULL.
 */
static char *home_dir(void)
{
	const char *home = getenv("HOME");
	struct passwd pw, *found = NULL;
	char buf[4096];

	if (home && home[0] == '/')
		return xstrdup(home);
	if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &found) != 0 || !found || !found->pw_dir ||
	    found->pw_dir[0] != '/')
		return NULL;
	return xstrdup(found->pw_dir);
}

char *secrets_file_path(void)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	char *home, *path;

	/* The XDG base directory spec says to ignore a relative value. */
	if (xdg && xdg[0] == '/')
		return xasprintf("%s/cloudmount/credentials", xdg);
	home = home_dir();
	if (!home)
		return NULL;
	path = xasprintf("%s/.config/cloudmount/credentials", home);
	free(home);
	return path;
}

enum cm_status secrets_store(const char *remote, const char *access_key_id, const char *secret,
			     enum secret_backend *where, struct cm_err *err)
{
	enum secrets_mode mode = SECRETS_MODE_AUTO;
	enum cm_status st;

	*where = SECRET_BACKEND_NONE;
	st = secrets_mode_get(&mode, err);
	if (st != CM_OK)
		return st;
	st = check_remote(remote, err);
	if (st == CM_OK)
		st = check_text(access_key_id, "the access key id", 1024, err);
	if (st == CM_OK)
		st = check_text(secret, "the secret access key", 4096, err);
	if (st != CM_OK)
		return st;

	if (mode != SECRETS_MODE_FILE) {
		struct cm_err kerr;

		cm_err_clear(&kerr);
		if (secrets_keyring_available()) {
			st = secrets_keyring_store(remote, access_key_id, secret, &kerr);
			if (st == CM_OK) {
				*where = SECRET_BACKEND_KEYRING;
				return CM_OK;
			}
		} else {
			st = cm_err_set(&kerr, CM_E_UNSUPPORTED, "no D-Bus session in this environment");
		}
		if (mode == SECRETS_MODE_KEYRING) {
			return cm_err_set(err, CM_E_CONFIG,
					  "cannot store the secret in %s: %s (CLOUDMOUNT_SECRETS=keyring: no file fallback)",
					  secrets_backend_describe(SECRET_BACKEND_KEYRING), kerr.message);
		}
		log_info("secrets: %s not usable (%s); using the credentials file",
			 secrets_backend_describe(SECRET_BACKEND_KEYRING), kerr.message);
	}
	st = secrets_file_store(remote, access_key_id, secret, err);
	if (st == CM_OK)
		*where = SECRET_BACKEND_FILE;
	return st;
}

enum cm_status secrets_lookup(const char *remote, char **secret, char **access_key_id,
			      enum secret_backend *where, struct cm_err *err)
{
	struct cm_err kerr;
	enum secrets_mode mode = SECRETS_MODE_AUTO;
	enum cm_status st, kst = CM_E_NOT_FOUND;

	*secret = NULL;
	if (access_key_id)
		*access_key_id = NULL;
	if (where)
		*where = SECRET_BACKEND_NONE;
	st = secrets_mode_get(&mode, err);
	if (st != CM_OK)
		return st;
	st = check_remote(remote, err);
	if (st != CM_OK)
		return st;

	cm_err_clear(&kerr);
	if (mode != SECRETS_MODE_FILE) {
		if (secrets_keyring_available())
			kst = secrets_keyring_lookup(remote, secret, access_key_id, &kerr);
		else
			kst = cm_err_set(&kerr, CM_E_UNSUPPORTED, "no D-Bus session in this environment");
		if (kst == CM_OK) {
			if (where)
				*where = SECRET_BACKEND_KEYRING;
			return CM_OK;
		}
		if (mode == SECRETS_MODE_KEYRING) {
			if (kst == CM_E_NOT_FOUND)
				return cm_err_set(err, CM_E_NOT_FOUND, "no secret for remote \"%s\" in %s",
						  remote, secrets_backend_describe(SECRET_BACKEND_KEYRING));
			return cm_err_set(err, CM_E_CONFIG, "cannot read %s: %s",
					  secrets_backend_describe(SECRET_BACKEND_KEYRING), kerr.message);
		}
	}

	st = secrets_file_lookup(remote, secret, access_key_id, err);
	if (st == CM_OK) {
		if (where)
			*where = SECRET_BACKEND_FILE;
		return CM_OK;
	}
	if (st == CM_E_NOT_FOUND) {
		if (mode == SECRETS_MODE_FILE || kst == CM_E_NOT_FOUND)
			return cm_err_set(err, CM_E_NOT_FOUND, "no secret for remote \"%s\" in %s%s",
					  remote, mode == SECRETS_MODE_FILE ? "" :
					  "the keyring or ", secrets_backend_describe(SECRET_BACKEND_FILE));
		/* Say why the keyring was not asked: the secret may well be there. */
		return cm_err_set(err, CM_E_NOT_FOUND,
				  "no secret for remote \"%s\" in %s; the keyring could not be searched: %s",
				  remote, secrets_backend_describe(SECRET_BACKEND_FILE), kerr.message);
	}
	return st;
}

enum cm_status secrets_delete(const char *remote, struct cm_err *err)
{
	enum secrets_mode mode = SECRETS_MODE_AUTO;
	enum cm_status st;

	st = secrets_mode_get(&mode, err);
	if (st != CM_OK)
		return st;
	st = check_remote(remote, err);
	if (st != CM_OK)
		return st;

	if (mode != SECRETS_MODE_FILE) {
		struct cm_err kerr;

		cm_err_clear(&kerr);
		if (secrets_keyring_available())
			st = secrets_keyring_delete(remote, &kerr);
		else
			st = cm_err_set(&kerr, CM_E_UNSUPPORTED, "no D-Bus session in this environment");
		if (st != CM_OK && st != CM_E_NOT_FOUND) {
			if (mode == SECRETS_MODE_KEYRING)
				return cm_err_set(err, CM_E_CONFIG, "cannot delete from %s: %s",
						  secrets_backend_describe(SECRET_BACKEND_KEYRING),
						  kerr.message);
			log_info("secrets: %s not usable (%s); a secret for \"%s\" kept there, if any, is left",
				 secrets_backend_describe(SECRET_BACKEND_KEYRING), kerr.message, remote);
		}
	}
	/* In keyring mode too: the contract is "every backend". */
	st = secrets_file_delete(remote, err);
	return st == CM_E_NOT_FOUND ? CM_OK : st;
}
