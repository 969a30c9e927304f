/*
 * secrets.h - where a remote's secret access key lives: the system keyring
 * when one is reachable, else a 0600 file. One interface, one small file per
 * backend (ARCHITECTURE.md: platform code behind one interface):
 *
 *   secrets_libsecret.c  Linux: the Secret Service (GNOME Keyring, KWallet...)
 *                        through libsecret; needs a D-Bus session.
 *   secrets_keychain.c   macOS: the login Keychain (Security framework). From an
 *                        SSH session Keychain calls can fail with
 *                        errSecInteractionNotAllowed: reported as such.
 *   secrets_file.c       everywhere: $XDG_CONFIG_HOME/cloudmount/credentials
 *                        (default ~/.config/cloudmount/credentials), mode 0600,
 *                        in awscli's credentials format ([NAME] with
 *                        aws_access_key_id / aws_secret_access_key), so the
 *                        file can also be used as AWS_SHARED_CREDENTIALS_FILE.
 *
 * secrets_store tries the keyring first and falls back to the file (saying so
 * through *where, so the CLI can tell the user where the secret went).
 * secrets_lookup looks in the keyring, then in the file. secrets_delete removes
 * the secret from both. Secrets are never logged, never put in err, and
 * wiped from memory when freed (secrets_free).
 *
 * Environment: CLOUDMOUNT_SECRETS=file forces the file backend (tests, and
 * users who want no keyring); CLOUDMOUNT_SECRETS=keyring forbids the fallback.
 */
#ifndef CM_SECRETS_H
#define CM_SECRETS_H

#include "common/status.h"

enum secret_backend {
	SECRET_BACKEND_NONE = 0,
	SECRET_BACKEND_KEYRING,         /* libsecret or Keychain */
	SECRET_BACKEND_FILE,
};

/* "the system keyring (Secret Service)", "the file ~/.config/cloudmount/credentials"... */
const char *secrets_backend_describe(enum secret_backend b);

/*
 * Store secret for remote (and its access key id, kept beside it). *where
 * receives the backend used. Returns CM_OK, or CM_E_CONFIG / CM_E_IO with a
 * message naming the backend that failed.
 */
enum cm_status secrets_store(const char *remote, const char *access_key_id, const char *secret,
			     enum secret_backend *where, struct cm_err *err);

/*
 * Look up the secret (malloc'd, free with secrets_free) of remote. *access_key_id
 * (may be NULL) receives the key id stored with it, malloc'd. Returns
 * CM_E_NOT_FOUND when no backend has it.
 */
enum cm_status secrets_lookup(const char *remote, char **secret, char **access_key_id,
			      enum secret_backend *where, struct cm_err *err);

/* Remove the remote's secret from every backend. Missing is not an error. */
enum cm_status secrets_delete(const char *remote, struct cm_err *err);

/* Wipe and free a secret. NULL is a no-op. */
void secrets_free(char *secret);

/* The path of the fallback file (malloc'd). */
char *secrets_file_path(void);

/* ---- backends (secrets.c dispatches to them) ---- */

/* 1 if the keyring backend can be tried in this session (e.g. a D-Bus session exists). */
int secrets_keyring_available(void);
enum cm_status secrets_keyring_store(const char *remote, const char *access_key_id, const char *secret,
				     struct cm_err *err);
enum cm_status secrets_keyring_lookup(const char *remote, char **secret, char **access_key_id,
				      struct cm_err *err);
enum cm_status secrets_keyring_delete(const char *remote, struct cm_err *err);

enum cm_status secrets_file_store(const char *remote, const char *access_key_id, const char *secret,
				  struct cm_err *err);
enum cm_status secrets_file_lookup(const char *remote, char **secret, char **access_key_id,
				   struct cm_err *err);
enum cm_status secrets_file_delete(const char *remote, struct cm_err *err);

#endif
