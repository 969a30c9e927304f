/*
 * menu_model.c - the tray menu's content, without a toolkit (see menu_model.h
 * for the layout, the overall-state rules and the sanitizing of labels).
 *
 * How it works: mm_remote_from_json copies what it understands out of a cJSON
 * object and ignores the rest. mm_menu_build walks the remotes once, appends
 * items to a growing array and counts states for the overall state and the
 * tooltip. Every label is built in a small growable string (struct sbuf);
 * daemon text enters a label only through sbuf_add_clean(), which guarantees
 * valid, control-free UTF-8 of bounded length. Nothing here keeps state
 * between calls.
 */
#include "ui/menu_model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- allocation (control path: abort on failure) ---- */

/* realloc that aborts instead of returning NULL. */
static void *mm_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		abort();
	return q;
}

/* strdup that aborts on failure; NULL stays NULL. */
static char *mm_xstrdup(const char *s)
{
	size_t len;
	char *copy;

	if (!s)
		return NULL;
	len = strlen(s);
	copy = mm_xrealloc(NULL, len + 1);
	memcpy(copy, s, len + 1);
	return copy;
}

/* ---- growable string ---- */

/* Invariant: p is NULL (empty) or NUL-terminated at len, len < cap. */
struct sbuf {
	char *p;
	size_t len;
	size_t cap;
};

/* Append n bytes. */
static void sbuf_add(struct sbuf *sb, const char *s, size_t n)
{
	if (sb->len + n + 1 > sb->cap) {
		size_t cap = sb->cap ? sb->cap : 64;

		while (sb->len + n + 1 > cap)
			cap *= 2;
		sb->p = mm_xrealloc(sb->p, cap);
		sb->cap = cap;
	}
	memcpy(sb->p + sb->len, s, n);
	sb->len += n;
	sb->p[sb->len] = '\0';
}

/* Append a NUL-terminated string (trusted text: our own words). */
static void sbuf_adds(struct sbuf *sb, const char *s)
{
	sbuf_add(sb, s, strlen(s));
}

/* Append printf-formatted text (trusted text only: our own words and numbers). */
static void sbuf_addf(struct sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sbuf_addf(struct sbuf *sb, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* every caller formats short fixed words and numbers */
	sbuf_add(sb, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Hand the string over to the caller (never NULL) and empty the buffer. */
static char *sbuf_take(struct sbuf *sb)
{
	char *s = sb->p ? sb->p : mm_xstrdup("");

	sb->p = NULL;
	sb->len = sb->cap = 0;
	return s;
}

/*
 * Decode one UTF-8 character at s (n > 0 bytes available). Returns its
 * length and sets *cp, or returns 0 for an invalid sequence (overlong,
 * surrogate, above U+10FFFF, truncated, stray continuation byte).
 */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t len, i;

	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if ((c & 0xE0) == 0xC0) {
		len = 2, c &= 0x1F, min = 0x80;
	} else if ((c & 0xF0) == 0xE0) {
		len = 3, c &= 0x0F, min = 0x800;
	} else if ((c & 0xF8) == 0xF0) {
		len = 4, c &= 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return 0;
	*cp = c;
	return len;
}

/*
 * Characters that must not reach a label as themselves: C0 and C1 controls,
 * DEL, line/paragraph separators, and bidi embeddings/overrides/isolates
 * (which could make a reason render as something it does not say).
 */
static bool is_unwanted(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) ||
	       cp == 0x2028 || cp == 0x2029 ||
	       (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

/*
 * Append untrusted text s to sb, sanitized: unwanted characters become
 * spaces, invalid UTF-8 becomes U+FFFD, runs of spaces collapse to one and
 * the text is trimmed. At most max bytes of it are appended, cut on a
 * character boundary, followed by "…" when something was cut.
 */
static void sbuf_add_clean(struct sbuf *sb, const char *s, size_t max)
{
	static const char replacement[] = "\xEF\xBF\xBD";
	const unsigned char *p = (const unsigned char *)s;
	size_t left = strlen(s), used = 0;
	bool pending_space = false, cut = false;

	while (left > 0) {
		uint32_t cp = 0;
		size_t len = utf8_decode(p, left, &cp);
		const char *piece = (const char *)p;
		size_t piece_len = len;

		if (len == 0) {
			piece = replacement;
			piece_len = 3;
			len = 1;
		} else if (cp == ' ' || is_unwanted(cp)) {
			pending_space = used > 0;   /* drops leading spaces */
			p += len;
			left -= len;
			continue;
		}
		if (used + (pending_space ? 1 : 0) + piece_len > max) {
			cut = true;
			break;
		}
		if (pending_space) {
			sbuf_add(sb, " ", 1);
			used++;
			pending_space = false;
		}
		sbuf_add(sb, piece, piece_len);
		used += piece_len;
		p += len;
		left -= len;
	}
	if (cut)
		sbuf_adds(sb, "…");
}

/* ---- number formatting ---- */

/* "512 B", "1.5 KiB", ... "3.0 TiB" (TiB is the largest unit). */
static void fmt_size(char *out, size_t out_len, uint64_t bytes)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	double value = (double)bytes;
	size_t unit = 0;

	if (bytes < 1024) {
		snprintf(out, out_len, "%u B", (unsigned)bytes);
		return;
	}
	value /= 1024.0;
	/* move on when the value would print as 1024.0 of this unit */
	while (value >= 1023.95 && unit + 1 < sizeof(units) / sizeof(units[0])) {
		value /= 1024.0;
		unit++;
	}
	snprintf(out, out_len, "%.1f %s", value, units[unit]);
}

/* "3,400" */
static void fmt_count(char *out, size_t out_len, uint64_t count)
{
	char digits[32];
	size_t n, i, o = 0;

	n = (size_t)snprintf(digits, sizeof(digits), "%llu", (unsigned long long)count);
	for (i = 0; i < n && o + 2 < out_len; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			out[o++] = ',';
		out[o++] = digits[i];
	}
	out[o] = '\0';
}

/* ---- states ---- */

const char *mm_state_name(enum mm_state state)
{
	switch (state) {
	case MM_STATE_UNMOUNTED: return "unmounted";
	case MM_STATE_MOUNTING: return "mounting";
	case MM_STATE_MOUNTED: return "mounted";
	case MM_STATE_DEGRADED: return "degraded";
	case MM_STATE_ERROR: return "error";
	case MM_STATE_UNKNOWN: break;
	}
	return "unknown";
}

enum mm_state mm_state_parse(const char *word)
{
	static const enum mm_state known[] = {
		MM_STATE_UNMOUNTED, MM_STATE_MOUNTING, MM_STATE_MOUNTED,
		MM_STATE_DEGRADED, MM_STATE_ERROR,
	};

	if (!word)
		return MM_STATE_UNKNOWN;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(word, mm_state_name(known[i])) == 0)
			return known[i];
	return MM_STATE_UNKNOWN;
}

const char *mm_overall_icon(enum mm_overall overall)
{
	switch (overall) {
	case MM_OVERALL_OK: return "cloudmount-ok";
	case MM_OVERALL_UPLOADING: return "cloudmount-uploading";
	case MM_OVERALL_DEGRADED: return "cloudmount-degraded";
	case MM_OVERALL_ERROR: return "cloudmount-error";
	case MM_OVERALL_IDLE: break;
	}
	return "cloudmount-idle";
}

/* ---- reading JSON ---- */

/* A copy of obj[key] if it is a string, else NULL. */
static char *json_string(const cJSON *obj, const char *key)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(item) && item->valuestring ? mm_xstrdup(item->valuestring) : NULL;
}

/*
 * obj[key] as a count: true and *out set when it is a finite number in
 * [0, 2^64) (fractions truncated); false otherwise (absent, wrong type,
 * negative, NaN, too large: converting those would be undefined).
 */
static bool json_u64(const cJSON *obj, const char *key, uint64_t *out)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
	double d;

	if (!cJSON_IsNumber(item))
		return false;
	d = item->valuedouble;
	if (!(d >= 0.0 && d < 18446744073709551616.0))
		return false;
	*out = (uint64_t)d;
	return true;
}

int mm_remote_from_json(const cJSON *json, struct mm_remote *out)
{
	const cJSON *state, *usage, *traffic;

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(json))
		return -1;
	out->name = json_string(json, "name");
	if (!out->name || !out->name[0]) {
		free(out->name);
		out->name = NULL;
		return -1;
	}
	out->url = json_string(json, "url");
	out->mountpoint = json_string(json, "mountpoint");
	out->reason = json_string(json, "reason");
	state = cJSON_GetObjectItemCaseSensitive(json, "state");
	out->state = cJSON_IsString(state) ? mm_state_parse(state->valuestring) : MM_STATE_UNKNOWN;

	usage = cJSON_GetObjectItemCaseSensitive(json, "usage");
	if (cJSON_IsObject(usage) &&
	    json_u64(usage, "bytes", &out->usage_bytes) &&
	    json_u64(usage, "objects", &out->usage_objects)) {
		out->has_usage = true;
	} else {
		out->usage_bytes = out->usage_objects = 0;
	}

	traffic = cJSON_GetObjectItemCaseSensitive(json, "traffic");
	if (cJSON_IsObject(traffic)) {
		out->has_traffic = true;
		if (!json_u64(traffic, "bytes_up", &out->bytes_up))
			out->bytes_up = 0;
		if (!json_u64(traffic, "bytes_down", &out->bytes_down))
			out->bytes_down = 0;
		if (!json_u64(traffic, "dirty_bytes", &out->dirty_bytes))
			out->dirty_bytes = 0;
		if (!json_u64(traffic, "dirty_files", &out->dirty_files))
			out->dirty_files = 0;
	}
	return 0;
}

void mm_remote_release(struct mm_remote *remote)
{
	if (!remote)
		return;
	free(remote->name);
	free(remote->url);
	free(remote->mountpoint);
	free(remote->reason);
	memset(remote, 0, sizeof(*remote));
}

int mm_status_parse(const cJSON *answer, struct mm_remote **out, size_t *n_out)
{
	const cJSON *list, *elem;
	struct mm_remote *remotes = NULL;
	size_t n = 0;

	*out = NULL;
	*n_out = 0;
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(answer, "ok")))
		return -1;
	list = cJSON_GetObjectItemCaseSensitive(answer, "remotes");
	if (!cJSON_IsArray(list))
		return -1;
	cJSON_ArrayForEach(elem, list) {
		struct mm_remote r;

		if (mm_remote_from_json(elem, &r) != 0)
			continue;
		remotes = mm_xrealloc(remotes, (n + 1) * sizeof(*remotes));
		remotes[n++] = r;
	}
	*out = remotes;
	*n_out = n;
	return 0;
}

void mm_remotes_free(struct mm_remote *remotes, size_t n)
{
	if (!remotes)
		return;
	for (size_t i = 0; i < n; i++)
		mm_remote_release(&remotes[i]);
	free(remotes);
}

/* ---- building the menu ---- */

/* Items being built; cap >= n. */
struct item_list {
	struct mm_item *items;
	size_t n;
	size_t cap;
};

/*
 * Append an item. Takes ownership of label (may be NULL); copies remote and
 * path (may be NULL).
 */
static struct mm_item *add_item(struct item_list *list, enum mm_item_kind kind, int depth,
				char *label, bool enabled, enum mm_action action,
				const char *remote, const char *path)
{
	struct mm_item *item;

	if (list->n == list->cap) {
		list->cap = list->cap ? list->cap * 2 : 16;
		list->items = mm_xrealloc(list->items, list->cap * sizeof(*list->items));
	}
	item = &list->items[list->n++];
	memset(item, 0, sizeof(*item));
	item->kind = kind;
	item->depth = depth;
	item->label = label;
	item->enabled = enabled;
	item->action = action;
	item->remote = mm_xstrdup(remote);
	item->path = mm_xstrdup(path);
	return item;
}

/* Append a disabled text line inside a remote's submenu. */
static void add_info(struct item_list *list, struct sbuf *sb)
{
	add_item(list, MM_ITEM_LABEL, 1, sbuf_take(sb), false, MM_ACT_NONE, NULL, NULL);
}

/* Usage as "<size><joiner><count> objects", e.g. "1.2 GiB, 3,400 objects". */
static void add_usage_words(struct sbuf *sb, const struct mm_remote *r, const char *joiner)
{
	char size[32], count[32];

	fmt_size(size, sizeof(size), r->usage_bytes);
	fmt_count(count, sizeof(count), r->usage_objects);
	sbuf_addf(sb, "%s%s%s %s", size, joiner, count, r->usage_objects == 1 ? "object" : "objects");
}

/* Whether the remote is (at least partly) mounted and usable. */
static bool is_up(const struct mm_remote *r)
{
	return r->state == MM_STATE_MOUNTED || r->state == MM_STATE_DEGRADED;
}

/* Whether a mounted remote has uploads waiting. */
static bool is_uploading(const struct mm_remote *r)
{
	return is_up(r) && r->has_traffic && (r->dirty_bytes > 0 || r->dirty_files > 0);
}

/* Whether "Mount" is offered and enabled for this remote. */
static bool can_mount(const struct mm_remote *r)
{
	return r->state == MM_STATE_UNMOUNTED || r->state == MM_STATE_ERROR;
}

/* The state line: "Mounted", "Error: <reason>", ... */
static void add_state_line(struct item_list *list, const struct mm_remote *r)
{
	struct sbuf sb = { 0 };
	const char *word = "Unknown state";

	switch (r->state) {
	case MM_STATE_UNMOUNTED: word = "Not mounted"; break;
	case MM_STATE_MOUNTING: word = "Mounting…"; break;
	case MM_STATE_MOUNTED: word = "Mounted"; break;
	case MM_STATE_DEGRADED: word = "Degraded"; break;
	case MM_STATE_ERROR: word = "Error"; break;
	case MM_STATE_UNKNOWN: break;
	}
	sbuf_adds(&sb, word);
	if (r->reason) {
		size_t before = sb.len;

		sbuf_adds(&sb, ": ");
		sbuf_add_clean(&sb, r->reason, MM_REASON_MAX);
		if (sb.len == before + 2) {     /* reason was blank */
			sb.len = before;
			sb.p[before] = '\0';
		}
	}
	add_info(list, &sb);
}

/* The traffic line: "↑ 12.0 MiB ↓ 340.0 MiB, 2 uploads pending (5.0 MiB)". */
static void add_traffic_line(struct item_list *list, const struct mm_remote *r)
{
	struct sbuf sb = { 0 };
	char up[32], down[32], dirty[32], files[32];

	fmt_size(up, sizeof(up), r->bytes_up);
	fmt_size(down, sizeof(down), r->bytes_down);
	sbuf_addf(&sb, "↑ %s ↓ %s", up, down);
	if (r->dirty_files > 0 || r->dirty_bytes > 0) {
		fmt_size(dirty, sizeof(dirty), r->dirty_bytes);
		fmt_count(files, sizeof(files), r->dirty_files);
		sbuf_addf(&sb, ", %s %s pending (%s)", files,
			  r->dirty_files == 1 ? "upload" : "uploads", dirty);
	} else {
		sbuf_adds(&sb, ", nothing pending");
	}
	add_info(list, &sb);
}

/* The submenu of one remote. */
static void add_remote(struct item_list *list, const struct mm_remote *r)
{
	struct sbuf sb = { 0 };
	bool up = is_up(r);
	bool has_path = r->mountpoint && r->mountpoint[0];

	sbuf_add_clean(&sb, r->name, MM_NAME_MAX);
	sbuf_addf(&sb, " — %s", mm_state_name(r->state));
	if (r->has_usage) {
		sbuf_adds(&sb, " · ");
		add_usage_words(&sb, r, ", ");
	}
	add_item(list, MM_ITEM_SUBMENU_BEGIN, 0, sbuf_take(&sb), true, MM_ACT_NONE, r->name, NULL);

	add_state_line(list, r);
	if (r->has_usage)
		add_usage_words(&sb, r, " in ");
	else
		sbuf_adds(&sb, "Usage unknown");
	add_info(list, &sb);
	if (up && r->has_traffic)
		add_traffic_line(list, r);

	if (up || r->state == MM_STATE_MOUNTING)
		add_item(list, MM_ITEM_ACTION, 1, mm_xstrdup("Unmount"), up,
			 MM_ACT_UNMOUNT, r->name, NULL);
	else
		add_item(list, MM_ITEM_ACTION, 1, mm_xstrdup("Mount"), can_mount(r),
			 MM_ACT_MOUNT, r->name, NULL);
	add_item(list, MM_ITEM_ACTION, 1, mm_xstrdup("Open folder"), up && has_path,
		 MM_ACT_OPEN_FOLDER, r->name, r->mountpoint);
	add_item(list, MM_ITEM_ACTION, 1, mm_xstrdup("Copy path"), up && has_path,
		 MM_ACT_COPY_PATH, r->name, r->mountpoint);
	add_item(list, MM_ITEM_SUBMENU_END, 0, NULL, true, MM_ACT_NONE, r->name, NULL);
}

/* Counts behind the overall state and the tooltip. */
struct tally {
	size_t mounted, mounting, degraded, errors, uploading;
	uint64_t dirty_bytes;
};

/* Append ", " unless sb is empty. */
static void add_comma(struct sbuf *sb)
{
	if (sb->len)
		sbuf_adds(sb, ", ");
}

/* The tooltip from the counts. */
static char *make_tooltip(const struct tally *t, size_t n_remotes)
{
	struct sbuf sb = { 0 };
	char size[32];

	if (n_remotes == 0)
		return mm_xstrdup("No buckets");
	if (t->mounted)
		sbuf_addf(&sb, "%zu mounted", t->mounted);
	if (t->uploading) {
		fmt_size(size, sizeof(size), t->dirty_bytes);
		add_comma(&sb);
		sbuf_addf(&sb, "%zu uploading %s", t->uploading, size);
	}
	if (t->mounting) {
		add_comma(&sb);
		sbuf_addf(&sb, "%zu mounting", t->mounting);
	}
	if (t->degraded) {
		add_comma(&sb);
		sbuf_addf(&sb, "%zu degraded", t->degraded);
	}
	if (t->errors) {
		add_comma(&sb);
		sbuf_addf(&sb, "%zu %s", t->errors, t->errors == 1 ? "error" : "errors");
	}
	if (!sb.len)
		sbuf_adds(&sb, "Nothing mounted");
	return sbuf_take(&sb);
}

void mm_menu_build(const struct mm_remote *remotes, size_t n,
		   bool autostart_enabled, struct mm_menu *out)
{
	struct item_list list = { 0 };
	struct tally t = { 0 };
	bool any_mountable = false;
	struct mm_item *check;

	for (size_t i = 0; i < n; i++) {
		const struct mm_remote *r = &remotes[i];

		add_remote(&list, r);
		t.mounted += r->state == MM_STATE_MOUNTED;
		t.mounting += r->state == MM_STATE_MOUNTING;
		t.degraded += r->state == MM_STATE_DEGRADED;
		t.errors += r->state == MM_STATE_ERROR;
		if (is_uploading(r)) {
			t.uploading++;
			/* saturate rather than wrap on absurd inputs */
			t.dirty_bytes = r->dirty_bytes > UINT64_MAX - t.dirty_bytes ?
					UINT64_MAX : t.dirty_bytes + r->dirty_bytes;
		}
		any_mountable |= can_mount(r);
	}
	if (n == 0)
		add_item(&list, MM_ITEM_LABEL, 0, mm_xstrdup("No buckets yet — Add bucket…"),
			 false, MM_ACT_NONE, NULL, NULL);
	add_item(&list, MM_ITEM_SEPARATOR, 0, NULL, true, MM_ACT_NONE, NULL, NULL);
	add_item(&list, MM_ITEM_ACTION, 0, mm_xstrdup("Add bucket…"), true,
		 MM_ACT_ADD_BUCKET, NULL, NULL);
	check = add_item(&list, MM_ITEM_CHECK, 0, mm_xstrdup("Start at login"), true,
			 MM_ACT_AUTOSTART_TOGGLE, NULL, NULL);
	check->checked = autostart_enabled;
	add_item(&list, MM_ITEM_ACTION, 0, mm_xstrdup("Mount all"), any_mountable,
		 MM_ACT_MOUNT_ALL, NULL, NULL);
	add_item(&list, MM_ITEM_SEPARATOR, 0, NULL, true, MM_ACT_NONE, NULL, NULL);
	add_item(&list, MM_ITEM_ACTION, 0, mm_xstrdup("Quit"), true, MM_ACT_QUIT, NULL, NULL);

	memset(out, 0, sizeof(*out));
	if (t.errors)
		out->overall = MM_OVERALL_ERROR;
	else if (t.degraded)
		out->overall = MM_OVERALL_DEGRADED;
	else if (t.uploading)
		out->overall = MM_OVERALL_UPLOADING;
	else if (t.mounted)
		out->overall = MM_OVERALL_OK;
	else
		out->overall = MM_OVERALL_IDLE;
	out->icon_name = mm_overall_icon(out->overall);
	out->tooltip = make_tooltip(&t, n);
	out->items = list.items;
	out->n_items = list.n;
}

void mm_menu_release(struct mm_menu *menu)
{
	if (!menu)
		return;
	for (size_t i = 0; i < menu->n_items; i++) {
		free(menu->items[i].label);
		free(menu->items[i].remote);
		free(menu->items[i].path);
	}
	free(menu->items);
	free(menu->tooltip);
	memset(menu, 0, sizeof(*menu));
}

/* ---- notifications ---- */

bool mm_notice_update(enum mm_state *told, const struct mm_remote *now, struct mm_notice *out)
{
	struct sbuf title = { 0 }, body = { 0 };
	enum mm_state was = *told;

	memset(out, 0, sizeof(*out));
	switch (now->state) {
	case MM_STATE_UNKNOWN:
	case MM_STATE_MOUNTING:
		return false;
	case MM_STATE_UNMOUNTED:
		*told = now->state;
		return false;
	case MM_STATE_MOUNTED:
		*told = now->state;
		if (was != MM_STATE_DEGRADED && was != MM_STATE_ERROR)
			return false;
		sbuf_add_clean(&title, now->name, MM_NAME_MAX);
		sbuf_adds(&title, " recovered");
		if (now->mountpoint) {
			sbuf_adds(&body, "Mounted at ");
			sbuf_add_clean(&body, now->mountpoint, MM_NAME_MAX);
		} else {
			sbuf_adds(&body, "Mounted");
		}
		out->icon_name = mm_overall_icon(MM_OVERALL_OK);
		break;
	case MM_STATE_DEGRADED:
	case MM_STATE_ERROR:
		if (was == now->state)
			return false;
		*told = now->state;
		sbuf_add_clean(&title, now->name, MM_NAME_MAX);
		if (now->state == MM_STATE_DEGRADED) {
			sbuf_adds(&title, " is degraded");
			out->icon_name = mm_overall_icon(MM_OVERALL_DEGRADED);
		} else {
			sbuf_adds(&title, " failed");
			out->icon_name = mm_overall_icon(MM_OVERALL_ERROR);
		}
		if (now->reason)
			sbuf_add_clean(&body, now->reason, MM_REASON_MAX);
		if (!body.len)
			sbuf_adds(&body, now->state == MM_STATE_DEGRADED
					 ? "The bucket does not answer; files stay visible and uploads wait."
					 : "The mount stopped.");
		break;
	}
	out->title = sbuf_take(&title);
	out->body = sbuf_take(&body);
	return true;
}

void mm_notice_release(struct mm_notice *notice)
{
	if (!notice)
		return;
	free(notice->title);
	free(notice->body);
	memset(notice, 0, sizeof(*notice));
}
