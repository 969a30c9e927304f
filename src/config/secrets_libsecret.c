/*
 * secrets_libsecret.c - the keyring backend on Linux and other free Unixes:
 * the freedesktop Secret Service (GNOME Keyring, KWallet, KeePassXC...)
 * through libsecret, built when meson finds libsecret-1 (CM_HAVE_LIBSECRET).
 * Without it, and not on macOS, the keyring functions are stubs that say
 * "unsupported", so the dispatcher uses the file.
 *
 * One item per remote, schema "org.cloudmount.Remote", in the default
 * collection (normally the "login" keyring, unlocked at login), labelled
 * "CloudMount remote NAME", with the attributes
 *   remote         the remote's name (the lookup key)
 *   access_key_id  its access key id (attributes are not secret: the Secret
 *                  Service stores them unencrypted, and the key id is not
 *                  a secret either)
 * and the secret access key as the item's secret. Since items are matched on
 * all their attributes, storing a remote whose key id changed would leave the
 * old item beside the new one; a store therefore removes the remote's items
 * with another key id after the new one is safely in.
 *
 * libsecret speaks D-Bus. With no session bus, GDBus would try to autolaunch
 * one (dbus-launch, X11), so secrets_keyring_available() checks first that a
 * session bus exists: DBUS_SESSION_BUS_ADDRESS, or $XDG_RUNTIME_DIR/bus (the
 * systemd user bus, which GDBus finds by itself). SECRET_BACKEND=file (libsecret's
 * own file backend, selected with test-only variables) needs no bus and also
 * counts as available. Every failure reported by libsecret (no Secret Service
 * on the bus, a locked collection whose unlock prompt was dismissed or cannot be
 * shown) comes back as CM_E_UNSUPPORTED with libsecret's message, which names
 * no secret, so the dispatcher falls back to the file. A locked gnome-keyring
 * hides its items from searches rather than failing them, so a lookup or
 * delete that finds nothing checks whether the default collection is locked
 * and, if so, says that (CM_E_UNSUPPORTED) instead of "not found".
 *
 * Secrets pass through libsecret's non-pageable memory and are freed with
 * secret_password_free, which wipes them.
 */
#include "config/secrets.h"

#if defined(CM_HAVE_LIBSECRET)

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* glib's headers are clean under -Wpedantic with C11; nothing to silence. */
#include <libsecret/secret.h>

#include "common/util.h"

static const SecretSchema cm_remote_schema = {
	.name = "org.cloudmount.Remote",
	.flags = SECRET_SCHEMA_NONE,
	.attributes = {
		{ .name = "remote", .type = SECRET_SCHEMA_ATTRIBUTE_STRING },
		{ .name = "access_key_id", .type = SECRET_SCHEMA_ATTRIBUTE_STRING },
		{ .name = NULL, .type = 0 },
	},
};

int secrets_keyring_available(void)
{
	const char *bus = getenv("DBUS_SESSION_BUS_ADDRESS");
	const char *runtime = getenv("XDG_RUNTIME_DIR");
	const char *backend = getenv("SECRET_BACKEND");
	struct stat sb;
	char *path;
	int found;

	if (backend && strcmp(backend, "file") == 0)
		return 1;
	if (bus && *bus)
		return 1;
	if (!runtime || runtime[0] != '/')
		return 0;
	path = xasprintf("%s/bus", runtime);
	found = stat(path, &sb) == 0 && S_ISSOCK(sb.st_mode);
	free(path);
	return found;
}

/* Turn a libsecret failure into CM_E_UNSUPPORTED and free it. */
static enum cm_status keyring_failed(GError *gerr, const char *doing, struct cm_err *err)
{
	enum cm_status st;

	st = cm_err_set(err, CM_E_UNSUPPORTED, "the Secret Service could not %s: %s", doing,
			gerr && gerr->message ? gerr->message : "unknown error");
	if (gerr)
		g_error_free(gerr);
	return st;
}

/* D-Bus strings must be UTF-8; libsecret only warns on others, so refuse them here. */
static enum cm_status check_utf8(const char *s, const char *what, struct cm_err *err)
{
	if (!s || !*s)
		return cm_err_set(err, CM_E_INVALID, "%s is empty", what);
	if (!g_utf8_validate(s, -1, NULL))
		return cm_err_set(err, CM_E_INVALID, "%s is not valid UTF-8", what);
	return CM_OK;
}

/*
 * Whether the default collection is known to be locked. gnome-keyring shows no
 * item of a locked collection to a search (so SECRET_SEARCH_UNLOCK has nothing
 * to unlock), which would make a locked keyring look empty: a lookup or delete
 * that found nothing asks this to tell "not there" from "cannot see". Any
 * failure to ask counts as not locked. libsecret's own file backend has no
 * collections over D-Bus: never locked.
 */
static int default_collection_locked(void)
{
	const char *backend = getenv("SECRET_BACKEND");
	SecretCollection *collection;
	SecretService *service;
	GError *gerr = NULL;
	int locked = 0;

	if (backend && strcmp(backend, "file") == 0)
		return 0;
	service = secret_service_get_sync(SECRET_SERVICE_NONE, NULL, &gerr);
	if (!service) {
		g_clear_error(&gerr);
		return 0;
	}
	collection = secret_collection_for_alias_sync(service, SECRET_COLLECTION_DEFAULT,
						      SECRET_COLLECTION_NONE, NULL, &gerr);
	g_clear_error(&gerr);
	if (collection) {
		locked = secret_collection_get_locked(collection);
		g_object_unref(collection);
	}
	g_object_unref(service);
	return locked;
}

/* The CM_E_UNSUPPORTED answer for a locked keyring. */
static enum cm_status keyring_locked(struct cm_err *err)
{
	return cm_err_set(err, CM_E_UNSUPPORTED,
			  "the keyring is locked (log in to the desktop, or run gnome-keyring-daemon --unlock)");
}

/*
 * Remove the remote's items whose access_key_id is not keep. Best effort: the
 * new item is already stored, and a leftover only costs a stale entry.
 */
static void remove_other_key_ids(const char *remote, const char *keep)
{
	GError *gerr = NULL;
	GList *items, *l;

	items = secret_password_search_sync(&cm_remote_schema, SECRET_SEARCH_ALL, NULL, &gerr,
					    "remote", remote, NULL);
	if (!items) {
		g_clear_error(&gerr);
		return;
	}
	for (l = items; l; l = l->next) {
		GHashTable *attrs = secret_retrievable_get_attributes(l->data);
		const char *id = attrs ? g_hash_table_lookup(attrs, "access_key_id") : NULL;

		if (id && strcmp(id, keep) != 0) {
			(void)secret_password_clear_sync(&cm_remote_schema, NULL, &gerr, "remote",
							 remote, "access_key_id", id, NULL);
			g_clear_error(&gerr);
		}
		if (attrs)
			g_hash_table_unref(attrs);
	}
	g_list_free_full(items, g_object_unref);
}

enum cm_status secrets_keyring_store(const char *remote, const char *access_key_id, const char *secret,
				     struct cm_err *err)
{
	GError *gerr = NULL;
	enum cm_status st;
	gboolean ok;
	char *label;

	st = check_utf8(remote, "the remote name", err);
	if (st == CM_OK)
		st = check_utf8(access_key_id, "the access key id", err);
	if (st == CM_OK)
		st = check_utf8(secret, "the secret access key", err);
	if (st != CM_OK)
		return st;

	label = xasprintf("CloudMount remote %s", remote);
	ok = secret_password_store_sync(&cm_remote_schema, SECRET_COLLECTION_DEFAULT, label, secret,
					NULL, &gerr, "remote", remote, "access_key_id", access_key_id,
					NULL);
	free(label);
	if (!ok)
		return keyring_failed(gerr, "store the secret", err);
	remove_other_key_ids(remote, access_key_id);
	return CM_OK;
}

enum cm_status secrets_keyring_lookup(const char *remote, char **secret, char **access_key_id,
				      struct cm_err *err)
{
	GError *gerr = NULL;
	GList *items;
	GHashTable *attrs;
	SecretValue *value;
	enum cm_status st;
	gchar *password;
	const char *id;

	*secret = NULL;
	if (access_key_id)
		*access_key_id = NULL;
	st = check_utf8(remote, "the remote name", err);
	if (st != CM_OK)
		return st;

	items = secret_password_search_sync(&cm_remote_schema,
					    SECRET_SEARCH_UNLOCK | SECRET_SEARCH_LOAD_SECRETS, NULL,
					    &gerr, "remote", remote, NULL);
	if (gerr) {
		g_list_free_full(items, g_object_unref);
		return keyring_failed(gerr, "search", err);
	}
	if (!items) {
		if (default_collection_locked())
			return keyring_locked(err);
		return cm_err_set(err, CM_E_NOT_FOUND, "no secret for remote \"%s\" in the Secret Service",
				  remote);
	}

	value = secret_retrievable_retrieve_secret_sync(items->data, NULL, &gerr);
	if (!value) {
		g_list_free_full(items, g_object_unref);
		if (!gerr)      /* an item whose collection stayed locked */
			return cm_err_set(err, CM_E_UNSUPPORTED,
					  "the Secret Service did not unlock the secret of remote \"%s\"",
					  remote);
		return keyring_failed(gerr, "read the secret", err);
	}
	/* Take the secret into libsecret's wiping allocator, then copy it out. */
	password = secret_value_unref_to_password(value, NULL);
	if (!password || !*password || !g_utf8_validate(password, -1, NULL)) {
		secret_password_free(password);
		g_list_free_full(items, g_object_unref);
		return cm_err_set(err, CM_E_CONFIG,
				  "the Secret Service's item for remote \"%s\" holds no usable secret", remote);
	}
	*secret = xstrdup(password);
	secret_password_free(password);

	attrs = secret_retrievable_get_attributes(items->data);
	id = attrs ? g_hash_table_lookup(attrs, "access_key_id") : NULL;
	if (access_key_id && id && *id)
		*access_key_id = xstrdup(id);
	if (attrs)
		g_hash_table_unref(attrs);
	g_list_free_full(items, g_object_unref);
	return CM_OK;
}

enum cm_status secrets_keyring_delete(const char *remote, struct cm_err *err)
{
	GError *gerr = NULL;
	enum cm_status st;

	st = check_utf8(remote, "the remote name", err);
	if (st != CM_OK)
		return st;
	/* FALSE with no error means nothing matched: not an error, unless we could not see. */
	if (secret_password_clear_sync(&cm_remote_schema, NULL, &gerr, "remote", remote, NULL))
		return CM_OK;
	if (gerr)
		return keyring_failed(gerr, "delete the secret", err);
	if (default_collection_locked())
		return keyring_locked(err);
	return CM_OK;
}

#elif !defined(__APPLE__)

/* No keyring library at build time: the file is the only backend. */

#include <stddef.h>

int secrets_keyring_available(void)
{
	return 0;
}

enum cm_status secrets_keyring_store(const char *remote, const char *access_key_id, const char *secret,
				     struct cm_err *err)
{
	return cm_err_set(err, CM_E_UNSUPPORTED, "built without libsecret: no keyring support");
}

enum cm_status secrets_keyring_lookup(const char *remote, char **secret, char **access_key_id,
				      struct cm_err *err)
{
	*secret = NULL;
	if (access_key_id)
		*access_key_id = NULL;
	return cm_err_set(err, CM_E_UNSUPPORTED, "built without libsecret: no keyring support");
}

enum cm_status secrets_keyring_delete(const char *remote, struct cm_err *err)
{
	return cm_err_set(err, CM_E_UNSUPPORTED, "built without libsecret: no keyring support");
}

#else

/* macOS: secrets_keychain.c provides the keyring functions. */
typedef int secrets_libsecret_unused;

#endif
