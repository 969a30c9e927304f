/*
 * test_menu_model.c - unit tests for the tray menu model: from the daemon's
 * JSON (status answers and state events, including odd and malformed ones)
 * to items, labels, enabled flags, actions, the overall state and tooltip.
 *
 * Every menu built here also goes through check_invariants(), which checks
 * what menu_model.h promises for any input: balanced, unnested submenus,
 * depths, valid control-free UTF-8 labels, remote names on per-remote actions.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui/menu_model.h"
#include "tharness.h"

/* ---- helpers ---- */

/* Whether s is valid UTF-8 with no control, separator or bidi override characters. */
static bool label_is_clean(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		uint32_t c = *p;
		size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 :
			     (c & 0xF8) == 0xF0 ? 4 : 0;

		if (len == 0)
			return false;
		if (len > 1)
			c &= 0x3F >> (len - 1);
		for (size_t i = 1; i < len; i++) {
			if ((p[i] & 0xC0) != 0x80)
				return false;
			c = (c << 6) | (p[i] & 0x3F);
		}
		if (c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x2028 || c == 0x2029 ||
		    (c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069) ||
		    (c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF)
			return false;
		p += len;
	}
	return true;
}

/* What the header promises of every menu. */
static void check_invariants(const struct mm_menu *m)
{
	int depth = 0;

	CHECK(m->tooltip && label_is_clean(m->tooltip));
	CHECK_STR(m->icon_name, mm_overall_icon(m->overall));
	for (size_t i = 0; i < m->n_items; i++) {
		const struct mm_item *it = &m->items[i];

		if (it->kind == MM_ITEM_SUBMENU_BEGIN) {
			CHECK_INT(depth, 0);
			CHECK_INT(it->depth, 0);
			depth = 1;
		} else if (it->kind == MM_ITEM_SUBMENU_END) {
			CHECK_INT(depth, 1);
			CHECK_INT(it->depth, 0);
			depth = 0;
		} else {
			CHECK_INT(it->depth, depth);
		}
		if (it->kind == MM_ITEM_SEPARATOR || it->kind == MM_ITEM_SUBMENU_END)
			CHECK(it->label == NULL);
		else
			CHECK(it->label && label_is_clean(it->label));
		if (it->kind == MM_ITEM_LABEL)
			CHECK(!it->enabled && it->action == MM_ACT_NONE);
		if (it->action == MM_ACT_MOUNT || it->action == MM_ACT_UNMOUNT ||
		    it->action == MM_ACT_OPEN_FOLDER || it->action == MM_ACT_COPY_PATH)
			CHECK(it->remote != NULL && it->depth == 1);
	}
	CHECK_INT(depth, 0);
}

/* Parse a status answer and build its menu into *m. Returns the number of remotes. */
static size_t build_from(const char *json, bool autostart, struct mm_menu *m)
{
	cJSON *root = cJSON_Parse(json);
	struct mm_remote *remotes = NULL;
	size_t n = 0;

	REQUIRE(root != NULL);
	REQUIRE(mm_status_parse(root, &remotes, &n) == 0);
	cJSON_Delete(root);
	mm_menu_build(remotes, n, autostart, m);
	mm_remotes_free(remotes, n);
	check_invariants(m);
	return n;
}

/* The first item with this label, or NULL. */
static const struct mm_item *find_label(const struct mm_menu *m, const char *label)
{
	for (size_t i = 0; i < m->n_items; i++)
		if (m->items[i].label && strcmp(m->items[i].label, label) == 0)
			return &m->items[i];
	return NULL;
}

/* The item with this action for this remote (NULL: a global action), or NULL. */
static const struct mm_item *find_action(const struct mm_menu *m, enum mm_action action,
					 const char *remote)
{
	for (size_t i = 0; i < m->n_items; i++) {
		const struct mm_item *it = &m->items[i];

		if (it->action != action)
			continue;
		if (!remote ? it->remote == NULL : (it->remote && strcmp(it->remote, remote) == 0))
			return it;
	}
	return NULL;
}

/* The index of the SUBMENU_BEGIN of this remote; REQUIREs it exists. */
static size_t submenu_of(const struct mm_menu *m, const char *remote)
{
	for (size_t i = 0; i < m->n_items; i++)
		if (m->items[i].kind == MM_ITEM_SUBMENU_BEGIN && m->items[i].remote &&
		    strcmp(m->items[i].remote, remote) == 0)
			return i;
	REQUIRE(!"no submenu for remote");
	return 0;
}

/* A remote for tests that build from structs. */
static struct mm_remote mk(const char *name, enum mm_state state, uint64_t dirty_bytes)
{
	struct mm_remote r;

	memset(&r, 0, sizeof(r));
	r.name = (char *)name;   /* borrowed; never released */
	r.mountpoint = (char *)"/mnt/x";
	r.state = state;
	if (dirty_bytes) {
		r.has_traffic = true;
		r.dirty_bytes = dirty_bytes;
		r.dirty_files = 1;
	}
	return r;
}

/* ---- tests ---- */

TEST(two_remotes_mounted_and_unmounted)
{
	struct mm_menu m;
	size_t i;

	build_from("{\"ok\":true,\"remotes\":["
		   "{\"name\":\"photos\",\"url\":\"s3://photos\",\"mountpoint\":\"/home/u/S3/photos\","
		   "\"state\":\"mounted\",\"reason\":\"\",\"automount\":true,\"pid\":42,\"restarts\":0,"
		   "\"usage\":{\"bytes\":1288490189,\"objects\":3400,\"at\":1700000000},"
		   "\"traffic\":{\"requests\":10,\"retries\":0,\"failures\":0,\"bytes_up\":12582912,"
		   "\"bytes_down\":356515840,\"in_flight\":1,\"dirty_files\":2,\"dirty_bytes\":5242880}},"
		   "{\"name\":\"backup\",\"url\":\"s3://backup\",\"mountpoint\":\"/home/u/S3/backup\","
		   "\"state\":\"unmounted\",\"reason\":null,\"automount\":false,\"pid\":0,\"restarts\":0,"
		   "\"usage\":null}]}", false, &m);

	i = submenu_of(&m, "photos");
	REQUIRE(i + 7 < m.n_items);
	CHECK_STR(m.items[i].label, "photos — mounted · 1.2 GiB, 3,400 objects");
	CHECK_STR(m.items[i + 1].label, "Mounted");
	CHECK_STR(m.items[i + 2].label, "1.2 GiB in 3,400 objects");
	CHECK_STR(m.items[i + 3].label, "↑ 12.0 MiB ↓ 340.0 MiB, 2 uploads pending (5.0 MiB)");
	CHECK_STR(m.items[i + 4].label, "Unmount");
	CHECK_INT(m.items[i + 4].action, MM_ACT_UNMOUNT);
	CHECK(m.items[i + 4].enabled);
	CHECK_STR(m.items[i + 5].label, "Open folder");
	CHECK(m.items[i + 5].enabled);
	CHECK_STR(m.items[i + 5].path, "/home/u/S3/photos");
	CHECK_STR(m.items[i + 6].label, "Copy path");
	CHECK(m.items[i + 6].enabled);
	CHECK_INT(m.items[i + 7].kind, MM_ITEM_SUBMENU_END);

	i = submenu_of(&m, "backup");
	REQUIRE(i + 6 < m.n_items);
	CHECK_STR(m.items[i].label, "backup — unmounted");
	CHECK_STR(m.items[i + 1].label, "Not mounted");
	CHECK_STR(m.items[i + 2].label, "Usage unknown");
	CHECK_STR(m.items[i + 3].label, "Mount");
	CHECK_INT(m.items[i + 3].action, MM_ACT_MOUNT);
	CHECK(m.items[i + 3].enabled);
	CHECK_STR(m.items[i + 4].label, "Open folder");
	CHECK(!m.items[i + 4].enabled);
	CHECK(!m.items[i + 5].enabled);
	CHECK_INT(m.items[i + 6].kind, MM_ITEM_SUBMENU_END);

	/* the fixed tail */
	REQUIRE(i + 13 == m.n_items);
	CHECK_INT(m.items[i + 7].kind, MM_ITEM_SEPARATOR);
	CHECK_STR(m.items[i + 8].label, "Add bucket…");
	CHECK_INT(m.items[i + 8].action, MM_ACT_ADD_BUCKET);
	CHECK_STR(m.items[i + 9].label, "Start at login");
	CHECK_INT(m.items[i + 9].kind, MM_ITEM_CHECK);
	CHECK_STR(m.items[i + 10].label, "Mount all");
	CHECK(m.items[i + 10].enabled);
	CHECK_INT(m.items[i + 11].kind, MM_ITEM_SEPARATOR);
	CHECK_STR(m.items[i + 12].label, "Quit");
	CHECK_INT(m.items[i + 12].action, MM_ACT_QUIT);

	CHECK_INT(m.overall, MM_OVERALL_UPLOADING);
	CHECK_STR(m.icon_name, "cloudmount-uploading");
	CHECK_STR(m.tooltip, "1 mounted, 1 uploading 5.0 MiB");
	mm_menu_release(&m);
	CHECK(m.items == NULL && m.n_items == 0 && m.tooltip == NULL);
}

TEST(degraded_and_error_with_reason)
{
	struct mm_menu m;
	size_t i;

	build_from("{\"ok\":true,\"remotes\":["
		   "{\"name\":\"a\",\"mountpoint\":\"/m/a\",\"state\":\"degraded\","
		   "\"reason\":\"S3 unreachable, retrying\",\"usage\":{\"bytes\":0,\"objects\":0},"
		   "\"traffic\":{\"bytes_up\":0,\"bytes_down\":1023}},"
		   "{\"name\":\"b\",\"mountpoint\":\"/m/b\",\"state\":\"error\","
		   "\"reason\":\"AccessDenied: check the key\",\"usage\":{\"bytes\":1,\"objects\":1}}]}",
		   false, &m);

	i = submenu_of(&m, "a");
	CHECK_STR(m.items[i].label, "a — degraded · 0 B, 0 objects");
	CHECK_STR(m.items[i + 1].label, "Degraded: S3 unreachable, retrying");
	CHECK_STR(m.items[i + 3].label, "↑ 0 B ↓ 1023 B, nothing pending");
	CHECK_STR(m.items[i + 4].label, "Unmount");
	CHECK(m.items[i + 4].enabled);
	CHECK(find_action(&m, MM_ACT_OPEN_FOLDER, "a")->enabled);

	i = submenu_of(&m, "b");
	CHECK_STR(m.items[i].label, "b — error · 1 B, 1 object");
	CHECK_STR(m.items[i + 1].label, "Error: AccessDenied: check the key");
	CHECK_STR(m.items[i + 2].label, "1 B in 1 object");
	CHECK_STR(m.items[i + 3].label, "Mount");
	CHECK(m.items[i + 3].enabled);
	CHECK(!find_action(&m, MM_ACT_OPEN_FOLDER, "b")->enabled);
	CHECK(!find_action(&m, MM_ACT_COPY_PATH, "b")->enabled);
	CHECK(find_action(&m, MM_ACT_MOUNT_ALL, NULL)->enabled);

	CHECK_INT(m.overall, MM_OVERALL_ERROR);
	CHECK_STR(m.icon_name, "cloudmount-error");
	CHECK_STR(m.tooltip, "1 degraded, 1 error");
	mm_menu_release(&m);
}

TEST(reason_with_odd_characters)
{
	struct mm_menu m;
	size_t i;

	/* controls (escaped and raw tab), quotes, backslash, an emoji as a
	 * surrogate pair and raw, a bidi override, a C1 control, a line
	 * separator, invalid UTF-8 (raw 0xFF, a lone continuation byte) */
	build_from("{\"ok\":true,\"remotes\":[{\"name\":\"n\\u0007ame\",\"state\":\"error\","
		   "\"reason\":\"\\n\\r  bad\\u0000x \\\"quoted\\\" 'single' \\\\ \\ud83d\\ude00 \xF0\x9F\x93\xA6"
		   "\\u202eevil\\u0085\\u2028\xFF\x80" "end\\t\"}]}", false, &m);
	i = submenu_of(&m, "n\x07" "ame");
	CHECK_STR(m.items[i].label, "n ame — error");
	/* cJSON stops the string at the escaped NUL, so "x..." is gone */
	CHECK_STR(m.items[i + 1].label, "Error: bad");
	mm_menu_release(&m);

	build_from("{\"ok\":true,\"remotes\":[{\"name\":\"r\",\"state\":\"error\","
		   "\"reason\":\"\\n\\r  bad \\\"quoted\\\" 'single' \\\\ \\ud83d\\ude00 \xF0\x9F\x93\xA6"
		   "\\u202eevil\\u0085\\u2028\xFF\x80" "end\\t\"}]}", false, &m);
	i = submenu_of(&m, "r");
	CHECK_STR(m.items[i + 1].label,
		  "Error: bad \"quoted\" 'single' \\ \xF0\x9F\x98\x80 \xF0\x9F\x93\xA6 evil "
		  "\xEF\xBF\xBD\xEF\xBF\xBD" "end");
	mm_menu_release(&m);

	/* a reason of only blanks and controls: no dangling ": " */
	build_from("{\"ok\":true,\"remotes\":[{\"name\":\"r\",\"state\":\"error\","
		   "\"reason\":\" \\n\\t \"}]}", false, &m);
	CHECK_STR(m.items[submenu_of(&m, "r") + 1].label, "Error");
	mm_menu_release(&m);
}

TEST(long_reason_cut_on_utf8_boundary)
{
	/* 1 + 2 * 500 = 1001 bytes: the 200-byte cap falls inside an "é" */
	char json[1200];
	char expect[300];
	struct mm_menu m;
	size_t off, i;
	const char *label;

	off = (size_t)snprintf(json, sizeof(json),
			       "{\"ok\":true,\"remotes\":[{\"name\":\"r\",\"state\":\"error\",\"reason\":\"a");
	for (i = 0; i < 500; i++) {
		memcpy(json + off, "\xC3\xA9", 2);
		off += 2;
	}
	snprintf(json + off, sizeof(json) - off, "\"}]}");
	build_from(json, false, &m);

	off = (size_t)snprintf(expect, sizeof(expect), "Error: a");
	for (i = 0; i < 99; i++) {
		memcpy(expect + off, "\xC3\xA9", 2);
		off += 2;
	}
	snprintf(expect + off, sizeof(expect) - off, "…");
	label = m.items[submenu_of(&m, "r") + 1].label;
	CHECK_STR(label, expect);
	CHECK_INT(strlen(label), strlen("Error: ") + 199 + strlen("…"));
	mm_menu_release(&m);

	/* 4-byte characters and a 1000-byte ASCII reason */
	off = (size_t)snprintf(json, sizeof(json),
			       "{\"ok\":true,\"remotes\":[{\"name\":\"r\",\"state\":\"error\",\"reason\":\"");
	for (i = 0; i < 250; i++) {
		memcpy(json + off, "\xF0\x9F\x98\x80", 4);
		off += 4;
	}
	snprintf(json + off, sizeof(json) - off, "\"}]}");
	build_from(json, false, &m);
	label = m.items[submenu_of(&m, "r") + 1].label;
	CHECK_INT(strlen(label), strlen("Error: ") + 200 + strlen("…"));
	mm_menu_release(&m);

	/* exactly at the cap: nothing is cut */
	off = (size_t)snprintf(json, sizeof(json),
			       "{\"ok\":true,\"remotes\":[{\"name\":\"r\",\"state\":\"error\",\"reason\":\"");
	memset(json + off, 'x', 200);
	off += 200;
	snprintf(json + off, sizeof(json) - off, "\"}]}");
	build_from(json, false, &m);
	label = m.items[submenu_of(&m, "r") + 1].label;
	CHECK_INT(strlen(label), strlen("Error: ") + 200);
	CHECK(strstr(label, "…") == NULL);
	mm_menu_release(&m);
}

TEST(missing_or_malformed_usage)
{
	static const char *const usages[] = {
		"", ",\"usage\":null", ",\"usage\":\"lots\"", ",\"usage\":{}",
		",\"usage\":{\"bytes\":\"1\",\"objects\":2}", ",\"usage\":{\"bytes\":-1,\"objects\":2}",
		",\"usage\":{\"bytes\":5}", ",\"usage\":{\"bytes\":1e30,\"objects\":2}",
		",\"usage\":[1,2]",
	};
	char json[256];

	for (size_t k = 0; k < sizeof(usages) / sizeof(usages[0]); k++) {
		struct mm_menu m;
		size_t i;

		snprintf(json, sizeof(json), "{\"ok\":true,\"remotes\":[{\"name\":\"r\","
			 "\"state\":\"mounted\",\"mountpoint\":\"/m\"%s}]}", usages[k]);
		build_from(json, false, &m);
		i = submenu_of(&m, "r");
		CHECK_STR(m.items[i].label, "r — mounted");
		CHECK_STR(m.items[i + 2].label, "Usage unknown");
		/* no traffic object: no traffic line, Unmount follows */
		CHECK_STR(m.items[i + 3].label, "Unmount");
		CHECK_INT(m.overall, MM_OVERALL_OK);
		CHECK_STR(m.tooltip, "1 mounted");
		mm_menu_release(&m);
	}
}

TEST(unknown_fields_and_wrong_types)
{
	struct mm_menu m;
	cJSON *root;
	struct mm_remote r;
	size_t i, n;

	n = build_from("{\"ok\":true,\"future\":{\"x\":[1,2]},\"remotes\":["
		       "42, \"str\", null, [], {}, {\"name\":\"\"}, {\"name\":7,\"state\":\"mounted\"},"
		       "{\"name\":\"ok1\",\"state\":\"mounted\",\"mountpoint\":[],\"reason\":42,"
		       "\"url\":{},\"pid\":\"x\",\"automount\":\"yes\",\"restarts\":null,"
		       "\"usage\":{\"bytes\":2048,\"objects\":1000,\"at\":\"never\",\"new\":true},"
		       "\"traffic\":{\"bytes_up\":\"1\",\"bytes_down\":null,\"dirty_files\":3,"
		       "\"shiny\":{}},\"quota\":{\"max\":1}}]}", false, &m);
	CHECK_INT(n, 1);
	i = submenu_of(&m, "ok1");
	CHECK_STR(m.items[i].label, "ok1 — mounted · 2.0 KiB, 1,000 objects");
	CHECK_STR(m.items[i + 1].label, "Mounted");
	CHECK_STR(m.items[i + 3].label, "↑ 0 B ↓ 0 B, 3 uploads pending (0 B)");
	/* no mountpoint: nothing to open or copy */
	CHECK(!find_action(&m, MM_ACT_OPEN_FOLDER, "ok1")->enabled);
	CHECK(find_action(&m, MM_ACT_OPEN_FOLDER, "ok1")->path == NULL);
	CHECK(!find_action(&m, MM_ACT_COPY_PATH, "ok1")->enabled);
	CHECK_INT(m.overall, MM_OVERALL_UPLOADING);
	mm_menu_release(&m);

	/* traffic of the wrong type, state of the wrong type */
	root = cJSON_Parse("{\"name\":\"x\",\"state\":5,\"traffic\":\"busy\"}");
	REQUIRE(root);
	CHECK_INT(mm_remote_from_json(root, &r), 0);
	CHECK_INT(r.state, MM_STATE_UNKNOWN);
	CHECK(!r.has_traffic && !r.has_usage && r.reason == NULL && r.url == NULL);
	mm_remote_release(&r);
	cJSON_Delete(root);

	/* not an answer */
	root = cJSON_Parse("{\"ok\":false,\"error\":\"no\"}");
	{
		struct mm_remote *list = (struct mm_remote *)1;

		CHECK_INT(mm_status_parse(root, &list, &n), -1);
		CHECK(list == NULL && n == 0);
	}
	cJSON_Delete(root);
	root = cJSON_Parse("{\"ok\":true,\"remotes\":{}}");
	{
		struct mm_remote *list;

		CHECK_INT(mm_status_parse(root, &list, &n), -1);
	}
	cJSON_Delete(root);
	CHECK_INT(mm_remote_from_json(NULL, &r), -1);
	mm_remote_release(NULL);
	mm_menu_release(NULL);
}

TEST(state_event)
{
	cJSON *ev = cJSON_Parse("{\"event\":\"state\",\"name\":\"photos\",\"state\":\"mounting\","
				"\"reason\":null,\"mountpoint\":\"/m/p\",\"usage\":null}");
	struct mm_remote r;
	struct mm_menu m;
	size_t i;

	REQUIRE(ev);
	REQUIRE(mm_remote_from_json(ev, &r) == 0);
	cJSON_Delete(ev);
	CHECK_STR(r.name, "photos");
	CHECK_INT(r.state, MM_STATE_MOUNTING);
	mm_menu_build(&r, 1, false, &m);
	check_invariants(&m);
	i = submenu_of(&m, "photos");
	CHECK_STR(m.items[i].label, "photos — mounting");
	CHECK_STR(m.items[i + 1].label, "Mounting…");
	CHECK_STR(m.items[i + 3].label, "Unmount");
	CHECK(!m.items[i + 3].enabled);
	CHECK(!find_action(&m, MM_ACT_OPEN_FOLDER, "photos")->enabled);
	CHECK(!find_action(&m, MM_ACT_MOUNT_ALL, NULL)->enabled);
	CHECK_INT(m.overall, MM_OVERALL_IDLE);
	CHECK_STR(m.tooltip, "1 mounting");
	mm_menu_release(&m);
	mm_remote_release(&r);
}

TEST(unknown_state)
{
	struct mm_menu m;
	size_t i;

	build_from("{\"ok\":true,\"remotes\":[{\"name\":\"r\",\"state\":\"unmounting\","
		   "\"mountpoint\":\"/m\"}]}", false, &m);
	i = submenu_of(&m, "r");
	CHECK_STR(m.items[i].label, "r — unknown");
	CHECK_STR(m.items[i + 1].label, "Unknown state");
	CHECK_STR(m.items[i + 3].label, "Mount");
	CHECK(!m.items[i + 3].enabled);
	CHECK(!find_action(&m, MM_ACT_OPEN_FOLDER, "r")->enabled);
	CHECK(!find_action(&m, MM_ACT_MOUNT_ALL, NULL)->enabled);
	CHECK_INT(m.overall, MM_OVERALL_IDLE);
	CHECK_STR(m.tooltip, "Nothing mounted");
	mm_menu_release(&m);

	CHECK_INT(mm_state_parse("Mounted"), MM_STATE_UNKNOWN);
	CHECK_INT(mm_state_parse(NULL), MM_STATE_UNKNOWN);
	CHECK_STR(mm_state_name(MM_STATE_UNKNOWN), "unknown");
	CHECK_INT(mm_state_parse(mm_state_name(MM_STATE_DEGRADED)), MM_STATE_DEGRADED);
}

TEST(empty_list)
{
	struct mm_menu m;

	CHECK_INT(build_from("{\"ok\":true,\"remotes\":[]}", false, &m), 0);
	REQUIRE(m.n_items == 7);
	CHECK_INT(m.items[0].kind, MM_ITEM_LABEL);
	CHECK_STR(m.items[0].label, "No buckets yet — Add bucket…");
	CHECK(!m.items[0].enabled);
	CHECK(find_action(&m, MM_ACT_ADD_BUCKET, NULL)->enabled);
	CHECK(!find_action(&m, MM_ACT_MOUNT_ALL, NULL)->enabled);
	CHECK(find_action(&m, MM_ACT_QUIT, NULL)->enabled);
	CHECK_INT(m.overall, MM_OVERALL_IDLE);
	CHECK_STR(m.icon_name, "cloudmount-idle");
	CHECK_STR(m.tooltip, "No buckets");
	mm_menu_release(&m);

	mm_menu_build(NULL, 0, true, &m);
	check_invariants(&m);
	CHECK_INT(m.n_items, 7);
	mm_menu_release(&m);
}

TEST(overall_priority_and_tooltip)
{
	static const struct {
		enum mm_state states[3];
		uint64_t dirty[3];
		size_t n;
		enum mm_overall overall;
		const char *tooltip;
	} cases[] = {
		{ { MM_STATE_UNMOUNTED }, { 0 }, 1, MM_OVERALL_IDLE, "Nothing mounted" },
		{ { MM_STATE_MOUNTED, MM_STATE_UNMOUNTED }, { 0 }, 2, MM_OVERALL_OK, "1 mounted" },
		{ { MM_STATE_MOUNTED, MM_STATE_MOUNTED }, { 0, 3565158 }, 2, MM_OVERALL_UPLOADING,
		  "2 mounted, 1 uploading 3.4 MiB" },
		/* dirty bytes on an unmounted remote do not count */
		{ { MM_STATE_UNMOUNTED }, { 100 }, 1, MM_OVERALL_IDLE, "Nothing mounted" },
		{ { MM_STATE_MOUNTED, MM_STATE_DEGRADED }, { 5, 0 }, 2, MM_OVERALL_DEGRADED,
		  "1 mounted, 1 uploading 5 B, 1 degraded" },
		{ { MM_STATE_DEGRADED, MM_STATE_ERROR, MM_STATE_MOUNTED }, { 0, 0, 2048 }, 3,
		  MM_OVERALL_ERROR, "1 mounted, 1 uploading 2.0 KiB, 1 degraded, 1 error" },
		{ { MM_STATE_ERROR, MM_STATE_ERROR, MM_STATE_MOUNTING }, { 0 }, 3, MM_OVERALL_ERROR,
		  "1 mounting, 2 errors" },
		{ { MM_STATE_MOUNTED, MM_STATE_MOUNTED }, { UINT64_MAX, UINT64_MAX }, 2,
		  MM_OVERALL_UPLOADING, "2 mounted, 2 uploading 16777216.0 TiB" },
	};

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct mm_remote r[3];
		struct mm_menu m;
		static const char *const names[] = { "a", "b", "c" };

		for (size_t j = 0; j < cases[k].n; j++)
			r[j] = mk(names[j], cases[k].states[j], cases[k].dirty[j]);
		mm_menu_build(r, cases[k].n, false, &m);
		check_invariants(&m);
		CHECK_INT(m.overall, cases[k].overall);
		CHECK_STR(m.icon_name, mm_overall_icon(cases[k].overall));
		CHECK_STR(m.tooltip, cases[k].tooltip);
		mm_menu_release(&m);
	}
	CHECK_STR(mm_overall_icon(MM_OVERALL_OK), "cloudmount-ok");
	CHECK_STR(mm_overall_icon(MM_OVERALL_DEGRADED), "cloudmount-degraded");
}

TEST(sizes_and_counts)
{
	static const struct {
		uint64_t bytes, objects;
		const char *title;
	} cases[] = {
		{ 0, 0, "r — mounted · 0 B, 0 objects" },
		{ 1023, 999, "r — mounted · 1023 B, 999 objects" },
		{ 1024, 1000, "r — mounted · 1.0 KiB, 1,000 objects" },
		{ 1536, 1234567, "r — mounted · 1.5 KiB, 1,234,567 objects" },
		{ 1048575, 100000, "r — mounted · 1.0 MiB, 100,000 objects" },
		{ 1073741824ULL * 5 / 2, 1, "r — mounted · 2.5 GiB, 1 object" },
		{ 1099511627776ULL * 3, 18446744073709551615ULL,
		  "r — mounted · 3.0 TiB, 18,446,744,073,709,551,615 objects" },
	};

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct mm_remote r = mk("r", MM_STATE_MOUNTED, 0);
		struct mm_menu m;

		r.has_usage = true;
		r.usage_bytes = cases[k].bytes;
		r.usage_objects = cases[k].objects;
		mm_menu_build(&r, 1, false, &m);
		check_invariants(&m);
		CHECK_STR(m.items[0].label, cases[k].title);
		mm_menu_release(&m);
	}
}

TEST(actions_carry_remote_names)
{
	struct mm_menu m;
	static const char *const names[] = { "alpha", "beta_under", "gamma" };
	static const char *const paths[] = { "/m/alpha", "/m/beta dir", "/m/gamma" };

	build_from("{\"ok\":true,\"remotes\":["
		   "{\"name\":\"alpha\",\"state\":\"mounted\",\"mountpoint\":\"/m/alpha\"},"
		   "{\"name\":\"beta_under\",\"state\":\"degraded\",\"mountpoint\":\"/m/beta dir\"},"
		   "{\"name\":\"gamma\",\"state\":\"unmounted\",\"mountpoint\":\"/m/gamma\"}]}",
		   false, &m);
	for (size_t k = 0; k < 3; k++) {
		size_t i = submenu_of(&m, names[k]);
		const struct mm_item *open = find_action(&m, MM_ACT_OPEN_FOLDER, names[k]);
		const struct mm_item *copy = find_action(&m, MM_ACT_COPY_PATH, names[k]);

		/* the name's "_" stays as it is: labels are not mnemonics */
		CHECK(strncmp(m.items[i].label, names[k], strlen(names[k])) == 0);
		for (size_t j = i + 1; m.items[j].kind != MM_ITEM_SUBMENU_END; j++)
			if (m.items[j].action != MM_ACT_NONE)
				CHECK_STR(m.items[j].remote, names[k]);
		REQUIRE(open && copy);
		CHECK_STR(open->path, paths[k]);
		CHECK_STR(copy->path, paths[k]);
	}
	CHECK(find_action(&m, MM_ACT_UNMOUNT, "alpha") != NULL);
	CHECK(find_action(&m, MM_ACT_UNMOUNT, "beta_under") != NULL);
	CHECK(find_action(&m, MM_ACT_MOUNT, "gamma") != NULL);
	CHECK(find_action(&m, MM_ACT_MOUNT, "alpha") == NULL);
	CHECK(find_action(&m, MM_ACT_MOUNT_ALL, NULL)->remote == NULL);
	CHECK(find_action(&m, MM_ACT_MOUNT_ALL, NULL)->enabled);
	CHECK(find_action(&m, MM_ACT_QUIT, NULL)->remote == NULL);
	mm_menu_release(&m);
}

TEST(autostart_check_reflects_flag)
{
	struct mm_menu m;
	const struct mm_item *it;

	build_from("{\"ok\":true,\"remotes\":[]}", true, &m);
	it = find_label(&m, "Start at login");
	REQUIRE(it);
	CHECK_INT(it->kind, MM_ITEM_CHECK);
	CHECK_INT(it->action, MM_ACT_AUTOSTART_TOGGLE);
	CHECK(it->checked && it->enabled);
	mm_menu_release(&m);

	build_from("{\"ok\":true,\"remotes\":[]}", false, &m);
	it = find_label(&m, "Start at login");
	REQUIRE(it);
	CHECK(!it->checked);
	mm_menu_release(&m);
}

/* Feed a sequence of states; return how many notices fired and keep the last. */
static int notices_for(const enum mm_state *states, size_t n, struct mm_remote *r, struct mm_notice *last)
{
	enum mm_state told = MM_STATE_UNKNOWN;
	int fired = 0;

	memset(last, 0, sizeof(*last));
	for (size_t i = 0; i < n; i++) {
		struct mm_notice nt;
		r->state = states[i];
		if (mm_notice_update(&told, r, &nt)) {
			fired++;
			CHECK(label_is_clean(nt.title));
			CHECK(label_is_clean(nt.body));
			CHECK(nt.icon_name != NULL);
			mm_notice_release(last);
			*last = nt;
		}
	}
	return fired;
}

TEST(notices_once_per_state_change)
{
	struct mm_remote r = mk("photos", MM_STATE_MOUNTED, 0);
	struct mm_notice nt;
	enum mm_state told = MM_STATE_UNKNOWN;

	/* mounting and mounted say nothing */
	{
		const enum mm_state seq[] = { MM_STATE_UNMOUNTED, MM_STATE_MOUNTING, MM_STATE_MOUNTED,
					      MM_STATE_MOUNTED, MM_STATE_UNMOUNTED };
		CHECK_INT(notices_for(seq, 5, &r, &nt), 0);
	}
	/* degraded (repeated events, a new reason) then recovered: exactly two */
	{
		const enum mm_state seq[] = { MM_STATE_MOUNTED, MM_STATE_DEGRADED, MM_STATE_DEGRADED,
					      MM_STATE_DEGRADED, MM_STATE_MOUNTED, MM_STATE_MOUNTED };
		CHECK_INT(notices_for(seq, 6, &r, &nt), 2);
		CHECK_STR(nt.title, "photos recovered");
		CHECK_STR(nt.body, "Mounted at /mnt/x");
		CHECK_STR(nt.icon_name, "cloudmount-ok");
		mm_notice_release(&nt);
	}
	/* the daemon going away (unknown) and coming back degraded repeats nothing */
	{
		const enum mm_state seq[] = { MM_STATE_DEGRADED, MM_STATE_UNKNOWN, MM_STATE_DEGRADED };
		CHECK_INT(notices_for(seq, 3, &r, &nt), 1);
		mm_notice_release(&nt);
	}
	/* degraded then error: two problems; error then unmounted by the user: no "recovered" */
	{
		const enum mm_state seq[] = { MM_STATE_DEGRADED, MM_STATE_ERROR, MM_STATE_UNMOUNTED,
					      MM_STATE_MOUNTING, MM_STATE_MOUNTED };
		CHECK_INT(notices_for(seq, 5, &r, &nt), 2);
		CHECK_STR(nt.title, "photos failed");
		CHECK_STR(nt.icon_name, "cloudmount-error");
		mm_notice_release(&nt);
	}
	/* a reason with control characters is cleaned; a blank one gets a default */
	r.state = MM_STATE_DEGRADED;
	r.reason = (char *)"S3 unreachable:\n\x1b[31mconnection refused\t";
	CHECK(mm_notice_update(&told, &r, &nt));
	CHECK_STR(nt.title, "photos is degraded");
	CHECK_STR(nt.body, "S3 unreachable: [31mconnection refused");
	CHECK_STR(nt.icon_name, "cloudmount-degraded");
	mm_notice_release(&nt);
	CHECK(!mm_notice_update(&told, &r, &nt));
	CHECK(nt.title == NULL);
	r.state = MM_STATE_ERROR;
	r.reason = (char *)"  ";
	CHECK(mm_notice_update(&told, &r, &nt));
	CHECK(strlen(nt.body) > 0);
	mm_notice_release(&nt);
	mm_notice_release(NULL);
}

TH_MAIN_BEGIN("test_menu_model")
	RUN(two_remotes_mounted_and_unmounted);
	RUN(degraded_and_error_with_reason);
	RUN(reason_with_odd_characters);
	RUN(long_reason_cut_on_utf8_boundary);
	RUN(missing_or_malformed_usage);
	RUN(unknown_fields_and_wrong_types);
	RUN(state_event);
	RUN(unknown_state);
	RUN(empty_list);
	RUN(overall_priority_and_tooltip);
	RUN(sizes_and_counts);
	RUN(actions_carry_remote_names);
	RUN(autostart_check_reflects_flag);
	RUN(notices_once_per_state_change);
TH_MAIN_END
