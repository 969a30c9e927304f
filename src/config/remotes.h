/*
 * remotes.h - named buckets ("remotes") in CloudMount's own config file.
 *
 * $XDG_CONFIG_HOME/cloudmount/cloudmount.conf (default
 * ~/.config/cloudmount/cloudmount.conf), mode 0600, one section per remote:
 *
 *   [remote photos]
 *   url = s3://my-bucket/some/prefix
 *   endpoint = https://s3.eu-central-003.backblazeb2.com
 *   region = eu-central-003
 *   path-style = false
 *   profile = work                   # credentials from ~/.aws, or:
 *   access-key-id = AKIA...          # its secret is in the keyring (secrets.h)
 *   mountpoint = /home/me/CloudMount/photos
 *   automount = true
 *   read-only = false
 *   metadata-ttl = 1
 *   cache-dir = /var/cache/me
 *
 *   [tray]                           # optional: cloudmount-tray's own settings
 *   unmount-on-quit = false          # Quit unmounts every bucket first
 *
 * Secrets never go in this file. Unknown settings and malformed values are
 * errors with "FILE:LINE: what is wrong", as are broken lines (ini.h). The
 * file is rewritten whole (atomically, 0600) by remotes_save; comments are not
 * kept.
 */
#ifndef CM_REMOTES_H
#define CM_REMOTES_H

#include <stddef.h>

#include "common/status.h"

struct remote {
	char *name;
	char *bucket;
	char *prefix;                   /* "" or "a/b" */
	char *endpoint;                 /* NULL: from the profile or AWS */
	char *region;                   /* NULL: from the profile */
	int path_style;                 /* -1 unset, 0, 1 */
	char *profile;                  /* NULL: the default credential chain */
	char *access_key_id;            /* NULL unless the secret is in our keyring */
	char *mountpoint;               /* NULL: the platform default (~/CloudMount/NAME) */
	int automount;
	int read_only;
	double metadata_ttl;            /* < 0: default */
	char *cache_dir;                /* NULL: default */
	unsigned line;                  /* where its section starts; 0 if not from a file */
};

struct remotes {
	char *path;                     /* the file they came from / go to */
	struct remote *list;
	size_t n;
	int tray_unmount_on_quit;       /* [tray] unmount-on-quit (kept by remotes_save) */
};

/* The config file's path (malloc'd). */
char *remotes_default_path(void);

/*
 * Read path (NULL: the default). A missing file is an empty list. Errors:
 * CM_E_CONFIG with "FILE:LINE: ..." in err->message.
 */
enum cm_status remotes_load(const char *path, struct remotes *out, struct cm_err *err);

/* Write the list back (atomically, 0600, directory 0700). */
enum cm_status remotes_save(const struct remotes *rs, struct cm_err *err);

void remotes_release(struct remotes *rs);

/* The remote called name, or NULL. Borrowed. */
struct remote *remotes_find(const struct remotes *rs, const char *name);

/* Append a copy of r (name must be new). Returns the stored one. */
struct remote *remotes_add(struct remotes *rs, const struct remote *r);

/* Remove name; returns 1 if it was there. */
int remotes_remove(struct remotes *rs, const char *name);

/* Names: 1-64 characters of [A-Za-z0-9._-], not starting with '.' or '-'. */
int remote_name_valid(const char *name);

/* The mount point to use for r (its own, or ~/CloudMount/NAME on Linux). malloc'd. */
char *remote_mountpoint(const struct remote *r);

/* "s3://bucket/prefix" of r, malloc'd. */
char *remote_url(const struct remote *r);

void remote_release(struct remote *r);

#endif
