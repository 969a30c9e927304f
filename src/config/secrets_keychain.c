/*
 * secrets_keychain.c - the keyring backend on macOS: a generic-password item
 * in the user's default (login) Keychain through the Security framework.
 * Link with -framework Security -framework CoreFoundation. On other systems
 * this file compiles to nothing.
 *
 * One item per remote: kSecClassGenericPassword, service "CloudMount",
 * account = the remote's name, label "CloudMount remote NAME", the secret
 * access key as the item's data and the access key id in kSecAttrGeneric (an
 * attribute: stored unencrypted, which is fine for a key id). A store adds the
 * item, or updates it when one exists (errSecDuplicateItem).
 *
 * From an SSH session (no GUI login in that security session) or with the
 * Keychain locked, calls fail with errSecInteractionNotAllowed: that is
 * CM_E_UNSUPPORTED with a message saying so, and the dispatcher falls back to
 * the file. Every other failure is CM_E_UNSUPPORTED too, with the Security
 * framework's text for the OSStatus. The Keychain needs no daemon check, so
 * secrets_keyring_available() is always 1 here.
 *
 * The secret is copied out of the CFData the framework returns (which cannot
 * be wiped) into our own buffer; the CFData is released at once.
 */
#include "config/secrets.h"

#ifdef __APPLE__

#include <stdlib.h>
#include <string.h>

#include <CoreFoundation/CoreFoundation.h>
#include <Security/Security.h>

#include "common/util.h"

#define KEYCHAIN_SERVICE "CloudMount"

int secrets_keyring_available(void)
{
	return 1;
}

/*
 * Fill err for a failed Security call: errSecInteractionNotAllowed gets a
 * message a user can act on; others the framework's own text. Returns
 * CM_E_UNSUPPORTED.
 */
static enum cm_status keychain_failed(OSStatus os, const char *doing, struct cm_err *err)
{
	char text[160] = "";
	CFStringRef msg;

	if (os == errSecInteractionNotAllowed)
		return cm_err_set(err, CM_E_UNSUPPORTED,
				  "cannot %s: the Keychain is locked or not reachable from this session (SSH?)",
				  doing);
	msg = SecCopyErrorMessageString(os, NULL);
	if (msg) {
		if (!CFStringGetCString(msg, text, sizeof(text), kCFStringEncodingUTF8))
			text[0] = '\0';
		CFRelease(msg);
	}
	return cm_err_set(err, CM_E_UNSUPPORTED, "cannot %s in the Keychain: %s (OSStatus %d)", doing,
			  text[0] ? text : "error", (int)os);
}

/* A CFString from a C string (UTF-8), or NULL. The caller releases it. */
static CFStringRef cfstr(const char *s)
{
	return CFStringCreateWithCString(kCFAllocatorDefault, s, kCFStringEncodingUTF8);
}

/*
 * The query that names the remote's item: class, service, account. Returns a
 * mutable dictionary the caller adds to and releases, or NULL (out of memory,
 * or a name that is not UTF-8: *bad_name set).
 */
static CFMutableDictionaryRef item_query(const char *remote, int *bad_name)
{
	CFMutableDictionaryRef q;
	CFStringRef account;

	*bad_name = 0;
	account = cfstr(remote);
	if (!account) {
		*bad_name = 1;
		return NULL;
	}
	q = CFDictionaryCreateMutable(kCFAllocatorDefault, 0, &kCFTypeDictionaryKeyCallBacks,
				      &kCFTypeDictionaryValueCallBacks);
	if (q) {
		CFDictionarySetValue(q, kSecClass, kSecClassGenericPassword);
		CFDictionarySetValue(q, kSecAttrService, CFSTR(KEYCHAIN_SERVICE));
		CFDictionarySetValue(q, kSecAttrAccount, account);
	}
	CFRelease(account);
	return q;
}

/* Returns CM_E_INVALID or CM_E_NOMEM for a query that item_query could not make. */
static enum cm_status query_failed(int bad_name, struct cm_err *err)
{
	if (bad_name)
		return cm_err_set(err, CM_E_INVALID, "the remote name is not valid UTF-8");
	return cm_err_set(err, CM_E_NOMEM, "out of memory talking to the Keychain");
}

enum cm_status secrets_keyring_store(const char *remote, const char *access_key_id, const char *secret,
				     struct cm_err *err)
{
	CFMutableDictionaryRef query, attrs = NULL;
	CFDataRef data = NULL, key_id = NULL;
	CFStringRef label = NULL;
	enum cm_status st = CM_OK;
	char *label_text;
	int bad_name;
	OSStatus os;

	query = item_query(remote, &bad_name);
	if (!query)
		return query_failed(bad_name, err);
	/* The data CFData is a copy we cannot wipe; the framework copies it again anyway. */
	data = CFDataCreate(kCFAllocatorDefault, (const UInt8 *)secret, (CFIndex)strlen(secret));
	key_id = CFDataCreate(kCFAllocatorDefault, (const UInt8 *)access_key_id,
			      (CFIndex)strlen(access_key_id));
	label_text = xasprintf("CloudMount remote %s", remote);
	label = cfstr(label_text);
	free(label_text);
	attrs = CFDictionaryCreateMutable(kCFAllocatorDefault, 0, &kCFTypeDictionaryKeyCallBacks,
					  &kCFTypeDictionaryValueCallBacks);
	if (!data || !key_id || !label || !attrs) {
		st = cm_err_set(err, CM_E_NOMEM, "out of memory talking to the Keychain");
		goto out_release;
	}
	CFDictionarySetValue(attrs, kSecValueData, data);
	CFDictionarySetValue(attrs, kSecAttrGeneric, key_id);
	CFDictionarySetValue(attrs, kSecAttrLabel, label);

	/* Try an update first: the item usually exists when a remote is re-stored. */
	os = SecItemUpdate(query, attrs);
	if (os == errSecItemNotFound) {
		CFDictionarySetValue(query, kSecValueData, data);
		CFDictionarySetValue(query, kSecAttrGeneric, key_id);
		CFDictionarySetValue(query, kSecAttrLabel, label);
		os = SecItemAdd(query, NULL);
	}
	if (os != errSecSuccess)
		st = keychain_failed(os, "store the secret", err);

out_release:
	if (attrs)
		CFRelease(attrs);
	if (label)
		CFRelease(label);
	if (key_id)
		CFRelease(key_id);
	if (data)
		CFRelease(data);
	CFRelease(query);
	return st;
}

/* A malloc'd, NUL-terminated copy of a CFData's bytes, or NULL if it holds a NUL. */
static char *data_to_string(CFDataRef d)
{
	CFIndex n = CFDataGetLength(d);
	const UInt8 *bytes = CFDataGetBytePtr(d);
	char *s;

	if (n <= 0 || !bytes || memchr(bytes, '\0', (size_t)n))
		return NULL;
	s = xmalloc((size_t)n + 1);
	memcpy(s, bytes, (size_t)n);
	s[n] = '\0';
	return s;
}

enum cm_status secrets_keyring_lookup(const char *remote, char **secret, char **access_key_id,
				      struct cm_err *err)
{
	CFMutableDictionaryRef query;
	CFTypeRef result = NULL;
	CFDictionaryRef item;
	CFDataRef data, key_id;
	enum cm_status st = CM_OK;
	int bad_name;
	OSStatus os;

	*secret = NULL;
	if (access_key_id)
		*access_key_id = NULL;
	query = item_query(remote, &bad_name);
	if (!query)
		return query_failed(bad_name, err);
	CFDictionarySetValue(query, kSecReturnData, kCFBooleanTrue);
	CFDictionarySetValue(query, kSecReturnAttributes, kCFBooleanTrue);
	CFDictionarySetValue(query, kSecMatchLimit, kSecMatchLimitOne);

	os = SecItemCopyMatching(query, &result);
	CFRelease(query);
	if (os == errSecItemNotFound)
		return cm_err_set(err, CM_E_NOT_FOUND, "no secret for remote \"%s\" in the Keychain",
				  remote);
	if (os != errSecSuccess)
		return keychain_failed(os, "read the secret", err);
	if (!result || CFGetTypeID(result) != CFDictionaryGetTypeID()) {
		st = cm_err_set(err, CM_E_PROTOCOL, "the Keychain answered with something unexpected");
		goto out_release;
	}
	item = (CFDictionaryRef)result;
	data = CFDictionaryGetValue(item, kSecValueData);
	if (!data || CFGetTypeID(data) != CFDataGetTypeID()) {
		st = cm_err_set(err, CM_E_CONFIG,
				"the Keychain item for remote \"%s\" holds no usable secret", remote);
		goto out_release;
	}
	*secret = data_to_string(data);
	if (!*secret) {
		st = cm_err_set(err, CM_E_CONFIG,
				"the Keychain item for remote \"%s\" holds no usable secret", remote);
		goto out_release;
	}
	key_id = CFDictionaryGetValue(item, kSecAttrGeneric);
	if (access_key_id && key_id && CFGetTypeID(key_id) == CFDataGetTypeID())
		*access_key_id = data_to_string(key_id);

out_release:
	if (result)
		CFRelease(result);
	return st;
}

enum cm_status secrets_keyring_delete(const char *remote, struct cm_err *err)
{
	CFMutableDictionaryRef query;
	int bad_name;
	OSStatus os;

	query = item_query(remote, &bad_name);
	if (!query)
		return query_failed(bad_name, err);
	/* SecItemDelete removes every match for generic passwords (no match limit). */
	os = SecItemDelete(query);
	CFRelease(query);
	if (os == errSecSuccess || os == errSecItemNotFound)
		return CM_OK;
	return keychain_failed(os, "delete the secret", err);
}

#else

/* Not macOS: the keyring backend is in secrets_libsecret.c. ISO C forbids an empty file. */
typedef int secrets_keychain_unused;

#endif
