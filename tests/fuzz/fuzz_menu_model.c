/*
 * fuzz_menu_model.c - libFuzzer target for the tray menu model.
 *
 * The input is parsed as JSON. Its remotes are read with mm_remote_from_json:
 * the elements of the root when it is an array, of its "remotes" array when
 * it has one, else the root itself (a state event). The menu is built from
 * them (autostart on and off), checked and released; the root also goes
 * through mm_status_parse. Beyond "no crash, no leak" the checks are the
 * invariants menu_model.h promises for any input: balanced, unnested
 * submenus, depths, valid control-free UTF-8 labels within their caps,
 * remote names on per-remote actions.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined -Isrc tests/fuzz/fuzz_menu_model.c \
 *        src/ui/menu_model.c -lcjson
 */
#include "ui/menu_model.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Abort (so the fuzzer reports it) when an invariant does not hold. */
static void require(int cond)
{
	if (!cond)
		abort();
}

/* Require s to be valid UTF-8 without controls, separators or bidi overrides. */
static void require_clean(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	require(s != NULL);
	while (*p) {
		uint32_t c = *p;
		size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 :
			     (c & 0xF8) == 0xF0 ? 4 : 0;

		require(len != 0);
		if (len > 1)
			c &= 0x3Fu >> (len - 1);
		for (size_t i = 1; i < len; i++) {
			require((p[i] & 0xC0) == 0x80);
			c = (c << 6) | (p[i] & 0x3F);
		}
		require(!(c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x2028 || c == 0x2029 ||
			  (c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069) ||
			  (c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF));
		p += len;
	}
}

/* Check the menu's invariants. */
static void check_menu(const struct mm_menu *m, size_t n_remotes, int autostart)
{
	size_t begins = 0;
	int depth = 0;

	require_clean(m->tooltip);
	require(strcmp(m->icon_name, mm_overall_icon(m->overall)) == 0);
	for (size_t i = 0; i < m->n_items; i++) {
		const struct mm_item *it = &m->items[i];

		if (it->kind == MM_ITEM_SUBMENU_BEGIN) {
			require(depth == 0 && it->depth == 0);
			depth = 1;
			begins++;
		} else if (it->kind == MM_ITEM_SUBMENU_END) {
			require(depth == 1 && it->depth == 0);
			depth = 0;
		} else {
			require(it->depth == depth);
		}
		if (it->kind == MM_ITEM_SEPARATOR || it->kind == MM_ITEM_SUBMENU_END) {
			require(it->label == NULL);
		} else {
			require_clean(it->label);
			/* reason cap + "Error: " + "…"; titles: name cap + words and numbers */
			require(strlen(it->label) <= MM_REASON_MAX + 64);
		}
		if (it->kind == MM_ITEM_CHECK)
			require(it->checked == (autostart != 0));
		if (it->action == MM_ACT_MOUNT || it->action == MM_ACT_UNMOUNT ||
		    it->action == MM_ACT_OPEN_FOLDER || it->action == MM_ACT_COPY_PATH)
			require(it->remote != NULL && it->remote[0] != '\0');
	}
	require(depth == 0);
	require(begins == n_remotes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *root = cJSON_ParseWithLength((const char *)data, size);
	const cJSON *list, *elem;
	struct mm_remote *remotes = NULL, *parsed = NULL;
	size_t n = 0, n_parsed = 0;

	if (!root)
		return 0;
	list = cJSON_IsArray(root) ? root : cJSON_GetObjectItemCaseSensitive(root, "remotes");
	if (cJSON_IsArray(list)) {
		cJSON_ArrayForEach(elem, list) {
			struct mm_remote r;

			if (mm_remote_from_json(elem, &r) != 0)
				continue;
			remotes = realloc(remotes, (n + 1) * sizeof(*remotes));
			require(remotes != NULL);
			remotes[n++] = r;
		}
	} else {
		struct mm_remote r;

		if (mm_remote_from_json(root, &r) == 0) {
			remotes = malloc(sizeof(*remotes));
			require(remotes != NULL);
			remotes[n++] = r;
		}
	}
	for (int autostart = 0; autostart < 2; autostart++) {
		struct mm_menu m;

		mm_menu_build(remotes, n, autostart, &m);
		check_menu(&m, n, autostart);
		mm_menu_release(&m);
	}
	mm_remotes_free(remotes, n);

	if (mm_status_parse(root, &parsed, &n_parsed) == 0)
		require(n_parsed == 0 || parsed != NULL);
	else
		require(parsed == NULL && n_parsed == 0);
	mm_remotes_free(parsed, n_parsed);
	cJSON_Delete(root);
	return 0;
}
