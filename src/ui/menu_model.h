/*
 * menu_model.h - the tray menu's content, without a toolkit.
 *
 * The tray shows the daemon's remotes. This module turns what the daemon
 * says (the "status" answer and "state" events of src/manager/control.h)
 * into a flat list of menu items, an overall state, an icon name and a
 * tooltip. A front end (GTK/Ayatana now, NSStatusItem later) only walks the
 * list and creates widgets; every decision about wording, enabling and
 * actions is made here, so it is unit-tested once for all front ends.
 *
 * Two steps:
 *   1. mm_remote_from_json() reads one remote object (an element of the
 *      status answer's "remotes" array, or a "state" event) into a
 *      struct mm_remote. It is tolerant: unknown fields are ignored, missing
 *      fields and fields of the wrong type count as absent, an unknown state
 *      becomes MM_STATE_UNKNOWN. Only a missing or empty string "name" makes
 *      it fail (nothing could be done with such a remote).
 *   2. mm_menu_build() turns an array of remotes into a struct mm_menu.
 *      It is pure: no I/O, no globals, no clock; the same input gives the
 *      same menu, so a front end can rebuild on every event.
 *
 * Labels are plain UTF-8 text, never markup and never mnemonics: a front end
 * must use gtk_menu_item_new_with_label() (not _with_mnemonic, where "_"
 * would vanish) and NSMenuItem titles, not Pango markup. Text that came from
 * the daemon (names, paths, reasons) is sanitized before it goes into a
 * label: control characters (C0, DEL, C1), line/paragraph separators and
 * bidi overrides/isolates become spaces, invalid UTF-8 becomes U+FFFD, and
 * the text is cut on a character boundary (reason: MM_REASON_MAX bytes,
 * names and paths: MM_NAME_MAX bytes) with "…" added. The raw name and
 * mountpoint (unsanitized) travel in mm_item.remote / mm_item.path, since
 * those are what the daemon and xdg-open need.
 *
 * Menu layout (depth 0 unless said otherwise):
 *   for each remote, in input order:
 *     SUBMENU_BEGIN  "photos — mounted · 1.2 GiB, 3,400 objects"
 *       LABEL   (depth 1, disabled) state: "Mounted", "Mounting…", "Degraded: <reason>",
 *               "Error: <reason>", "Not mounted", "Unknown state"
 *       LABEL   (depth 1, disabled) usage: "1.2 GiB in 3,400 objects" or "Usage unknown"
 *       LABEL   (depth 1, disabled) traffic, only when mounted/degraded and the
 *               daemon sent traffic: "↑ 12.0 MiB ↓ 340.0 MiB, 2 uploads pending (5.0 MiB)"
 *       ACTION  (depth 1) "Mount" (unmounted, error; disabled for an unknown state)
 *               or "Unmount" (mounted, degraded; disabled while mounting)
 *       ACTION  (depth 1) "Open folder"  enabled when mounted/degraded and the
 *       ACTION  (depth 1) "Copy path"    mountpoint is known
 *     SUBMENU_END
 *   LABEL "No buckets yet — Add bucket…" (disabled) when there is no remote
 *   SEPARATOR
 *   ACTION "Add bucket…"
 *   CHECK  "Start at login" (checked = autostart_enabled; toggling it means
 *          running `autostart enable|disable`, the opposite of the current state)
 *   ACTION "Mount all" (enabled when some remote's Mount is enabled)
 *   SEPARATOR
 *   ACTION "Quit"
 * Invariants: SUBMENU_BEGIN/END are balanced and never nested; every item
 * between them has depth 1, every other item depth 0; every label is valid,
 * control-free UTF-8; per-remote actions have remote != NULL.
 *
 * Overall state, by priority: ERROR (some remote in error) > DEGRADED >
 * UPLOADING (some mounted/degraded remote has dirty files or bytes) > OK
 * (some remote mounted) > IDLE (nothing mounted, or no remotes; a remote
 * that is only mounting does not count as mounted yet).
 * Tooltip: counts joined by ", ", e.g. "2 mounted, 1 uploading 3.4 MiB",
 * "1 mounted, 1 degraded, 1 error", "Nothing mounted", "No buckets".
 *
 * Memory: small control-path allocations abort on failure (house rule), so
 * these functions do not fail for lack of memory.
 * Threading: no shared state; call from any thread, one object per thread.
 */
#ifndef CM_UI_MENU_MODEL_H
#define CM_UI_MENU_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* Byte caps of sanitized label text (before the "…" that marks a cut). */
#define MM_REASON_MAX 200
#define MM_NAME_MAX 100

/* A remote's state as the daemon names it; UNKNOWN for anything else. */
enum mm_state {
	MM_STATE_UNKNOWN = 0,
	MM_STATE_UNMOUNTED,
	MM_STATE_MOUNTING,
	MM_STATE_MOUNTED,
	MM_STATE_DEGRADED,
	MM_STATE_ERROR,
};

/*
 * One remote as the tray needs it. Strings are owned (mm_remote_release);
 * name is never NULL or empty after mm_remote_from_json succeeded, the other
 * strings are NULL when absent. Strings are kept raw (unsanitized). Numbers
 * are valid only when their has_ flag is set; a has_traffic remote may still
 * lack single counters (then 0).
 */
struct mm_remote {
	char *name;
	char *url;
	char *mountpoint;
	char *reason;
	enum mm_state state;
	bool has_usage;            /* "usage" object with numeric "bytes" and "objects" */
	uint64_t usage_bytes;
	uint64_t usage_objects;
	bool has_traffic;          /* "traffic" object present */
	uint64_t bytes_up;
	uint64_t bytes_down;
	uint64_t dirty_bytes;
	uint64_t dirty_files;
};

/*
 * Read one remote from a status "remotes" element or a "state" event
 * (borrowed). Fills *out (which the caller must release, on success only).
 * Numbers must be finite, non-negative and below 2^64, else absent.
 * Returns 0, or -1 when json is not an object or has no non-empty string
 * "name" (then *out holds nothing to release).
 */
int mm_remote_from_json(const cJSON *json, struct mm_remote *out);

/* Free a remote's strings and zero it. NULL is a no-op. */
void mm_remote_release(struct mm_remote *remote);

/*
 * Read the remotes of a status answer {"ok":true,"remotes":[...]} (borrowed).
 * Elements that mm_remote_from_json refuses are skipped. Sets *out to a
 * malloc'd array (NULL when empty) and *n_out to its length; free with
 * mm_remotes_free. Returns 0, or -1 when "ok" is not true or "remotes" is
 * not an array (then *out = NULL, *n_out = 0).
 */
int mm_status_parse(const cJSON *answer, struct mm_remote **out, size_t *n_out);

/* Release n remotes and free the array. NULL is a no-op. */
void mm_remotes_free(struct mm_remote *remotes, size_t n);

/* The daemon's word for a state ("mounted", ...; "unknown"). Static string. */
const char *mm_state_name(enum mm_state state);

/* Parse a daemon state word; MM_STATE_UNKNOWN for NULL or anything else. */
enum mm_state mm_state_parse(const char *word);

enum mm_overall {
	MM_OVERALL_IDLE = 0,       /* nothing mounted */
	MM_OVERALL_OK,             /* something mounted, all healthy, nothing waiting */
	MM_OVERALL_UPLOADING,      /* bytes waiting to be uploaded */
	MM_OVERALL_DEGRADED,
	MM_OVERALL_ERROR,
};

/* The icon name for an overall state ("cloudmount-ok", ...). Static string. */
const char *mm_overall_icon(enum mm_overall overall);

enum mm_item_kind {
	MM_ITEM_LABEL,             /* text only, always disabled */
	MM_ITEM_ACTION,
	MM_ITEM_CHECK,             /* a check item; see checked */
	MM_ITEM_SEPARATOR,         /* label is NULL */
	MM_ITEM_SUBMENU_BEGIN,     /* label is the submenu's title */
	MM_ITEM_SUBMENU_END,       /* label is NULL */
};

enum mm_action {
	MM_ACT_NONE = 0,
	MM_ACT_MOUNT,              /* ctl {"cmd":"mount","name":remote} */
	MM_ACT_UNMOUNT,            /* ctl {"cmd":"unmount","name":remote} */
	MM_ACT_OPEN_FOLDER,        /* xdg-open path */
	MM_ACT_COPY_PATH,          /* put path on the clipboard */
	MM_ACT_ADD_BUCKET,
	MM_ACT_AUTOSTART_TOGGLE,   /* autostart disable if checked, else enable */
	MM_ACT_MOUNT_ALL,
	MM_ACT_QUIT,
};

/* One menu entry. All strings are owned by the menu. */
struct mm_item {
	enum mm_item_kind kind;
	int depth;                 /* 0 top level, 1 inside a remote's submenu */
	char *label;               /* sanitized UTF-8; NULL for separators and SUBMENU_END */
	bool enabled;
	bool checked;              /* MM_ITEM_CHECK only */
	enum mm_action action;     /* MM_ACT_NONE for labels, separators, submenus */
	char *remote;              /* raw remote name for per-remote items, else NULL */
	char *path;                /* raw mountpoint for OPEN_FOLDER/COPY_PATH, else NULL */
};

struct mm_menu {
	enum mm_overall overall;
	const char *icon_name;     /* static string, mm_overall_icon(overall) */
	char *tooltip;             /* one line, also fit for an NSStatusItem title/tooltip */
	struct mm_item *items;
	size_t n_items;
};

/*
 * Build the menu for n remotes (borrowed; remotes may be NULL when n is 0)
 * and the current autostart setting into *out, which the caller releases
 * with mm_menu_release. Never fails (aborts on out-of-memory).
 */
void mm_menu_build(const struct mm_remote *remotes, size_t n,
		   bool autostart_enabled, struct mm_menu *out);

/* Free everything the menu owns and zero it. NULL is a no-op. */
void mm_menu_release(struct mm_menu *menu);

/*
 * Desktop notifications. A front end keeps, per remote name, the last state
 * the user was told about (*told; MM_STATE_UNKNOWN before anything was said)
 * and calls mm_notice_update() with every new view of that remote. It
 * returns true and fills *out when a notification is due:
 *   - the remote became DEGRADED or ERROR and the user was not told about
 *     that state yet (so a changing reason, or the daemon reconnecting,
 *     repeats nothing): "photos is degraded" / "photos failed", body = the
 *     sanitized reason, or a plain default;
 *   - the remote is MOUNTED again after the user was told it was DEGRADED
 *     or ERROR: "photos recovered", body "Mounted at PATH".
 * MOUNTED and UNMOUNTED update *told silently; MOUNTING and UNKNOWN (the
 * daemon is away) change nothing. At most one notification per state change.
 */
struct mm_notice {
	char *title;               /* sanitized UTF-8 */
	char *body;                /* sanitized UTF-8 */
	const char *icon_name;     /* static: the overall icon matching the state */
};

bool mm_notice_update(enum mm_state *told, const struct mm_remote *now, struct mm_notice *out);

/* Free a notice's strings and zero it. NULL is a no-op. */
void mm_notice_release(struct mm_notice *notice);

#endif
