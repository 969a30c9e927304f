/*
 * ini.h - a small reader for INI files in the dialect of Python's configparser
 * (as awscli and botocore use it), with no line-length limit.
 *
 * The format:
 *   [section name]          a section; the name is trimmed; text after the last
 *                           ']' is ignored (configparser does the same)
 *   key = value             a setting; ':' works as the delimiter too (the first
 *   key: value              of '=' or ':' on the line wins); key and value trimmed
 *   # comment / ; comment   only at the start of a line (after indentation);
 *                           there are no inline comments: "a = b # c" has the
 *                           value "b # c", as with configparser's defaults
 *   key =                   a line indented deeper than its setting continues it:
 *       sub = value         under a setting with an empty value each such line is
 *                           a sub-entry "sub = value" (botocore's nested
 *                           sections, e.g. "s3 =\n  addressing_style = path");
 *                           under a non-empty value it is appended to the value
 *                           after a '\n' (a configparser multi-line value)
 * Blank lines are skipped and do not end a continuation. Lines end in "\n",
 * "\r\n" or "\r"; a UTF-8 byte-order mark at the start is skipped. A NUL byte,
 * a setting before any section, a line that is neither header nor setting, an
 * empty key, an unterminated or empty section header, or a repeated section or
 * key (configparser's strict mode) is an error "FILE:LINE: what is wrong". The
 * message never quotes the offending line, which may hold a secret.
 *
 * Keys are stored as written but looked up ignoring ASCII case, because
 * configparser folds option names to lower case ("AWS_ACCESS_KEY_ID = x" works
 * in awscli). Section names and sub-entry keys are case-sensitive, as there.
 * The "[DEFAULT]" section gets no special treatment.
 *
 * Nothing here knows about AWS; the module also reads CloudMount's own config.
 */
#ifndef CM_INI_H
#define CM_INI_H

#include <stddef.h>

#include "common/status.h"

/* One "sub = value" line under a setting with an empty value. */
struct ini_sub {
	char *key;
	char *value;
	unsigned line;          /* 1-based line number in the file */
};

/* One "key = value" setting and its continuation lines. */
struct ini_entry {
	char *key;
	char *value;            /* never NULL; "" when the value is only sub-entries */
	unsigned line;
	struct ini_sub *subs;   /* n_subs of them, in file order */
	size_t n_subs;
	size_t subs_cap;        /* internal: allocated length of subs */
};

struct ini_section {
	char *name;
	unsigned line;
	struct ini_entry *entries;      /* n_entries of them, in file order */
	size_t n_entries;
	size_t entries_cap;     /* internal */
};

/* A parsed file. Zero-initialised ({0}) is a valid empty file. */
struct ini_file {
	char *filename;         /* as given to ini_parse; "<input>" if none */
	struct ini_section *sections;   /* n_sections of them, in file order */
	size_t n_sections;
	size_t sections_cap;    /* internal */
};

/*
 * Parse len bytes of text (no terminator needed; may contain anything).
 * filename is only used in messages and copied into out->filename.
 * Returns CM_OK, CM_E_CONFIG with "FILE:LINE: what is wrong" in err->message
 * and the line number as "line N" in err->detail, or CM_E_NOMEM.
 * *out is overwritten; on failure it is left empty (no release needed, though
 * releasing is harmless). On success the caller releases it.
 */
enum cm_status ini_parse(const char *text, size_t len, const char *filename,
			 struct ini_file *out, struct cm_err *err);

/*
 * Read and parse the file at path. Returns CM_E_NOT_FOUND (message "PATH: No
 * such file or directory") when it does not exist (ENOENT or ENOTDIR), so a
 * caller can treat a missing file as empty; CM_E_CONFIG "PATH: strerror" when it
 * cannot be read (or exceeds 16 MiB); else as ini_parse. The buffer the file is
 * read into is wiped before it is freed, since credentials files hold secrets.
 */
enum cm_status ini_load_file(const char *path, struct ini_file *out, struct cm_err *err);

/*
 * Free everything in f and zero it. Values are wiped before they are freed.
 * f may be NULL or zeroed.
 */
void ini_file_release(struct ini_file *f);

/* The section with this exact name, or NULL. Borrowed, valid until release. */
const struct ini_section *ini_find_section(const struct ini_file *f, const char *name);

/* The setting key (ASCII case ignored) in section s, or NULL. s may be NULL. */
const struct ini_entry *ini_find_entry(const struct ini_section *s, const char *key);

/* The sub-entry with this exact key (the last one if repeated), or NULL. e may be NULL. */
const struct ini_sub *ini_find_sub(const struct ini_entry *e, const char *subkey);

/*
 * Shortcuts: the value of [section] key, or of its sub-entry subkey; NULL when
 * absent. Borrowed, valid until ini_file_release.
 */
const char *ini_get(const struct ini_file *f, const char *section, const char *key);
const char *ini_get_sub(const struct ini_file *f, const char *section, const char *key,
			const char *subkey);

#endif
