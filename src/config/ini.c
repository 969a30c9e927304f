/*
 * ini.c - the INI reader described in ini.h.
 *
 * ini_parse walks the text once, line by line, with no limit on line length:
 * each line is cut out by pointer and length, trimmed, and classified as blank,
 * comment, continuation (indented deeper than the setting before it, while
 * there is one), section header or setting. State between lines is the current
 * section and the current setting with its indentation; a header or a new
 * setting ends a continuation. Strings are copied out with explicit lengths, so
 * the input need not be terminated. Arrays grow by doubling.
 *
 * Any error stops the parse and frees what was built so far, leaving the output
 * empty.
 */
#include "config/ini.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define INI_MAX_FILE_SIZE (16u * 1024 * 1024)

/* The parser's position and where errors are reported. */
struct ini_parser {
	struct ini_file *file;
	struct cm_err *err;
	unsigned line;
	struct ini_section *section;    /* current section, NULL before the first */
	struct ini_entry *entry;        /* setting continuation lines attach to, or NULL */
	size_t entry_indent;            /* indentation of that setting's line */
};

/* Whitespace as far as trimming and indentation go (ASCII only, no newlines). */
static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\f' || c == '\v';
}

/* Shrink [*start, *end) to drop blanks at both ends. */
static void trim(const char **start, const char **end)
{
	while (*start < *end && is_blank(**start))
		(*start)++;
	while (*end > *start && is_blank((*end)[-1]))
		(*end)--;
}

/* A terminated malloc'd copy of [start, end), or NULL when out of memory. */
static char *dup_range(const char *start, const char *end)
{
	size_t n = (size_t)(end - start);
	char *s = malloc(n + 1);

	if (!s)
		return NULL;
	memcpy(s, start, n);
	s[n] = '\0';
	return s;
}

/* Free a string after overwriting it (values may be secrets). NULL is fine. */
static void free_wiped(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/*
 * Make room for one more element of size elem in *array (holding *n of *cap).
 * Returns 0, or -1 when out of memory (the array is unchanged).
 */
static int grow(void **array, size_t *cap, size_t n, size_t elem)
{
	size_t new_cap;
	void *p;

	if (n < *cap)
		return 0;
	new_cap = *cap ? *cap * 2 : 4;
	if (new_cap > SIZE_MAX / elem)
		return -1;
	p = realloc(*array, new_cap * elem);
	if (!p)
		return -1;
	*array = p;
	*cap = new_cap;
	return 0;
}

/* Record a syntax error at the current line. Returns CM_E_CONFIG. */
static enum cm_status syntax_error(struct ini_parser *p, const char *what)
{
	cm_err_detail(p->err, "line %u", p->line);
	return cm_err_set(p->err, CM_E_CONFIG, "%s:%u: %s", p->file->filename, p->line, what);
}

static enum cm_status out_of_memory(struct ini_parser *p)
{
	return cm_err_set(p->err, CM_E_NOMEM, "%s: out of memory while parsing",
			  p->file->filename);
}

/*
 * Handle "[name]" in [start, end) (already trimmed, starts with '['). Text
 * after the last ']' is ignored, as configparser's header pattern does.
 */
static enum cm_status parse_header(struct ini_parser *p, const char *start, const char *end)
{
	struct ini_file *f = p->file;
	struct ini_section *s;
	const char *name = start + 1, *name_end = end;
	char *copy;

	while (name_end > name && name_end[-1] != ']')
		name_end--;
	if (name_end == name)
		return syntax_error(p, "unterminated section header (no ']')");
	name_end--;     /* onto the ']' */
	trim(&name, &name_end);
	if (name == name_end)
		return syntax_error(p, "empty section name");
	copy = dup_range(name, name_end);
	if (!copy)
		return out_of_memory(p);
	for (size_t i = 0; i < f->n_sections; i++) {
		if (strcmp(f->sections[i].name, copy) == 0) {
			char what[96];

			snprintf(what, sizeof(what), "section repeated (first at line %u)",
				 f->sections[i].line);
			free(copy);
			return syntax_error(p, what);
		}
	}
	if (grow((void **)&f->sections, &f->sections_cap, f->n_sections, sizeof(*s))) {
		free(copy);
		return out_of_memory(p);
	}
	s = &f->sections[f->n_sections++];
	memset(s, 0, sizeof(*s));
	s->name = copy;
	s->line = p->line;
	p->section = s;
	return CM_OK;
}

/*
 * Handle "key = value" or "key: value" in [start, end) (trimmed, non-empty,
 * not a header). The key is never quoted in messages: a pasted token can look
 * like one.
 */
static enum cm_status parse_setting(struct ini_parser *p, const char *start, const char *end,
				    size_t indent)
{
	struct ini_section *s = p->section;
	struct ini_entry *e;
	const char *delim = start, *key_end, *value;
	char *key_copy, *value_copy;

	if (!s)
		return syntax_error(p, "setting before any [section] header");
	while (delim < end && *delim != '=' && *delim != ':')
		delim++;
	if (delim == end)
		return syntax_error(p, "expected \"key = value\" or a [section] header");
	key_end = delim;
	trim(&start, &key_end);
	if (start == key_end)
		return syntax_error(p, "missing key before the '=' or ':'");
	value = delim + 1;
	trim(&value, &end);

	key_copy = dup_range(start, key_end);
	if (!key_copy)
		return out_of_memory(p);
	for (size_t i = 0; i < s->n_entries; i++) {
		if (strcasecmp(s->entries[i].key, key_copy) == 0) {
			char what[96];

			snprintf(what, sizeof(what), "key repeated in this section (first at line %u)",
				 s->entries[i].line);
			free(key_copy);
			return syntax_error(p, what);
		}
	}
	value_copy = dup_range(value, end);
	if (!value_copy)
		goto out_free_key;
	if (grow((void **)&s->entries, &s->entries_cap, s->n_entries, sizeof(*e)))
		goto out_free_value;
	e = &s->entries[s->n_entries++];
	memset(e, 0, sizeof(*e));
	e->key = key_copy;
	e->value = value_copy;
	e->line = p->line;
	p->entry = e;
	p->entry_indent = indent;
	return CM_OK;

out_free_value:
	free_wiped(value_copy);
out_free_key:
	free(key_copy);
	return out_of_memory(p);
}

/*
 * Handle an indented line [start, end) (trimmed, non-empty) continuing p->entry:
 * a sub-entry when the setting's value is empty (or already has sub-entries),
 * else one more line of a multi-line value.
 */
static enum cm_status parse_continuation(struct ini_parser *p, const char *start,
					 const char *end)
{
	struct ini_entry *e = p->entry;
	struct ini_sub *sub;
	const char *eq = start, *key_end, *value;
	char *key_copy, *value_copy;

	if (e->value[0] != '\0' && e->n_subs == 0) {
		size_t old = strlen(e->value), add = (size_t)(end - start);
		char *joined = malloc(old + 1 + add + 1);

		if (!joined)
			return out_of_memory(p);
		memcpy(joined, e->value, old);
		joined[old] = '\n';
		memcpy(joined + old + 1, start, add);
		joined[old + 1 + add] = '\0';
		free_wiped(e->value);
		e->value = joined;
		return CM_OK;
	}

	while (eq < end && *eq != '=')
		eq++;
	if (eq == end)
		return syntax_error(p, "expected \"key = value\" in the indented sub-section");
	key_end = eq;
	trim(&start, &key_end);
	if (start == key_end)
		return syntax_error(p, "missing key before '=' in the indented sub-section");
	value = eq + 1;
	trim(&value, &end);

	key_copy = dup_range(start, key_end);
	if (!key_copy)
		return out_of_memory(p);
	value_copy = dup_range(value, end);
	if (!value_copy)
		goto out_free_key;
	if (grow((void **)&e->subs, &e->subs_cap, e->n_subs, sizeof(*sub)))
		goto out_free_value;
	sub = &e->subs[e->n_subs++];
	sub->key = key_copy;
	sub->value = value_copy;
	sub->line = p->line;
	return CM_OK;

out_free_value:
	free_wiped(value_copy);
out_free_key:
	free(key_copy);
	return out_of_memory(p);
}

/* Classify and handle one line [start, end) (no line terminator). */
static enum cm_status parse_line(struct ini_parser *p, const char *start, const char *end)
{
	const char *content = start;
	size_t indent;

	if (memchr(start, '\0', (size_t)(end - start)))
		return syntax_error(p, "NUL byte in line");
	trim(&content, &end);
	if (content == end || *content == '#' || *content == ';')
		return CM_OK;
	indent = (size_t)(content - start);
	if (p->entry && indent > p->entry_indent)
		return parse_continuation(p, content, end);
	p->entry = NULL;
	if (*content == '[')
		return parse_header(p, content, end);
	return parse_setting(p, content, end, indent);
}

enum cm_status ini_parse(const char *text, size_t len, const char *filename,
			 struct ini_file *out, struct cm_err *err)
{
	struct ini_parser p = { .file = out, .err = err };
	const char *pos = text, *end = text + len;
	enum cm_status st;

	memset(out, 0, sizeof(*out));
	out->filename = strdup(filename ? filename : "<input>");
	if (!out->filename)
		return cm_err_set(err, CM_E_NOMEM, "out of memory while parsing");
	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
		pos += 3;

	while (pos < end) {
		const char *eol = pos;

		while (eol < end && *eol != '\n' && *eol != '\r')
			eol++;
		p.line++;
		st = parse_line(&p, pos, eol);
		if (st != CM_OK)
			goto out_release;
		if (eol < end && *eol == '\r' && eol + 1 < end && eol[1] == '\n')
			eol++;
		pos = eol < end ? eol + 1 : eol;
	}
	return CM_OK;

out_release:
	ini_file_release(out);
	return st;
}

enum cm_status ini_load_file(const char *path, struct ini_file *out, struct cm_err *err)
{
	struct stat sb;
	char *buf;
	size_t size, got = 0;
	enum cm_status st;
	int fd;

	memset(out, 0, sizeof(*out));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		if (e == ENOENT || e == ENOTDIR)
			return cm_err_set(err, CM_E_NOT_FOUND, "%s: %s", path, strerror(e));
		return cm_err_set(err, CM_E_CONFIG, "%s: %s", path, strerror(e));
	}
	if (fstat(fd, &sb) != 0) {
		st = cm_err_set(err, CM_E_CONFIG, "%s: %s", path, strerror(errno));
		goto out_close;
	}
	if (S_ISDIR(sb.st_mode)) {
		st = cm_err_set(err, CM_E_CONFIG, "%s: %s", path, strerror(EISDIR));
		goto out_close;
	}
	if (sb.st_size > (off_t)INI_MAX_FILE_SIZE) {
		st = cm_err_set(err, CM_E_CONFIG, "%s: larger than %u MiB", path,
				INI_MAX_FILE_SIZE >> 20);
		goto out_close;
	}
	/* st_size may be 0 for special files; read up to the limit in any case. */
	size = sb.st_size > 0 ? (size_t)sb.st_size : 4096;
	buf = malloc(size + 1);
	if (!buf) {
		st = cm_err_set(err, CM_E_NOMEM, "%s: out of memory", path);
		goto out_close;
	}
	for (;;) {
		ssize_t n;

		if (got == size) {
			size_t new_size = size * 2;
			char *bigger;

			if (size >= INI_MAX_FILE_SIZE) {
				st = cm_err_set(err, CM_E_CONFIG, "%s: larger than %u MiB", path,
						INI_MAX_FILE_SIZE >> 20);
				goto out_free_buf;
			}
			if (new_size > INI_MAX_FILE_SIZE)
				new_size = INI_MAX_FILE_SIZE;
			bigger = malloc(new_size + 1);
			if (!bigger) {
				st = cm_err_set(err, CM_E_NOMEM, "%s: out of memory", path);
				goto out_free_buf;
			}
			memcpy(bigger, buf, got);
			explicit_bzero(buf, got);
			free(buf);
			buf = bigger;
			size = new_size;
		}
		n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			st = cm_err_set(err, CM_E_CONFIG, "%s: %s", path, strerror(errno));
			goto out_free_buf;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	st = ini_parse(buf, got, path, out, err);

out_free_buf:
	explicit_bzero(buf, size);
	free(buf);
out_close:
	close(fd);
	return st;
}

void ini_file_release(struct ini_file *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n_sections; i++) {
		struct ini_section *s = &f->sections[i];

		for (size_t j = 0; j < s->n_entries; j++) {
			struct ini_entry *e = &s->entries[j];

			for (size_t k = 0; k < e->n_subs; k++) {
				free(e->subs[k].key);
				free_wiped(e->subs[k].value);
			}
			free(e->subs);
			free(e->key);
			free_wiped(e->value);
		}
		free(s->entries);
		free(s->name);
	}
	free(f->sections);
	free(f->filename);
	memset(f, 0, sizeof(*f));
}

const struct ini_section *ini_find_section(const struct ini_file *f, const char *name)
{
	if (!f)
		return NULL;
	for (size_t i = 0; i < f->n_sections; i++)
		if (strcmp(f->sections[i].name, name) == 0)
			return &f->sections[i];
	return NULL;
}

const struct ini_entry *ini_find_entry(const struct ini_section *s, const char *key)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < s->n_entries; i++)
		if (strcasecmp(s->entries[i].key, key) == 0)
			return &s->entries[i];
	return NULL;
}

const struct ini_sub *ini_find_sub(const struct ini_entry *e, const char *subkey)
{
	if (!e)
		return NULL;
	for (size_t i = e->n_subs; i > 0; i--)
		if (strcmp(e->subs[i - 1].key, subkey) == 0)
			return &e->subs[i - 1];
	return NULL;
}

const char *ini_get(const struct ini_file *f, const char *section, const char *key)
{
	const struct ini_entry *e = ini_find_entry(ini_find_section(f, section), key);

	return e ? e->value : NULL;
}

const char *ini_get_sub(const struct ini_file *f, const char *section, const char *key,
			const char *subkey)
{
	const struct ini_sub *sub =
		ini_find_sub(ini_find_entry(ini_find_section(f, section), key), subkey);

	return sub ? sub->value : NULL;
}
