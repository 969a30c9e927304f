/*
 * s3_xml.c - parsing of S3's XML responses and building of its XML requests.
 *
 * How parsing works: one generic driver (xml_run) feeds the whole body to an
 * expat parser and keeps, for the element being parsed, its path below the
 * root ("Contents/Key"; names without any namespace prefix, so documents with
 * and without xmlns, or with an "s3:" prefix, look the same) and the character
 * data seen since the last tag. Each response type is a struct xml_handler:
 * the root names it accepts and two callbacks, called when an element starts
 * (to begin a record) and when it ends (with its text, to fill a field or
 * finish a record). The callbacks fill a per-parse state; a parse function
 * checks what is required once the document is complete.
 *
 * Invariants of the driver (struct xml_doc):
 *   - depth is the number of open elements, at most XML_MAX_DEPTH;
 *     path holds the names of open elements 2..depth joined by '/';
 *     path_lens[i] is strlen(path) before element i+1 was appended.
 *   - text holds at most XML_MAX_TEXT bytes, NUL-terminated, and is reset at
 *     every start and end tag, so at an end tag it is the element's own text
 *     when the element is a leaf.
 *   - once failed (or, for s3_xml_is_error, done) is set the parser has been
 *     stopped and every handler returns at once: expat may still deliver a few
 *     events after XML_StopParser.
 *
 * Leading white space is skipped before parsing: S3 sends spaces to keep the
 * connection alive while it completes a multipart upload, then the XML
 * declaration, which XML allows only at the very start.
 *
 * Hostile input: a DOCTYPE or entity declaration stops the parse (so there
 * are no internal or external entities to expand: billion laughs and XXE are
 * impossible; expat resolves only the five predefined entities and character
 * references, and refuses any other reference as undefined). Nesting, text
 * length and numbers are bounded; every failure is CM_E_PROTOCOL with a
 * message, or CM_E_NOMEM.
 */
#include "s3/s3_xml.h"

#include <expat.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define XML_MAX_DEPTH 32
#define XML_MAX_NAME 64                 /* longer names are stored as "?" */
#define XML_MAX_TEXT (64 * 1024)        /* bytes in one text value */
#define XML_CHUNK_MAX (1 << 30)         /* XML_Parse takes an int length */

#define S3_XMLNS "http://s3.amazonaws.com/doc/2006-03-01/"

struct xml_doc;

/*
 * A response type. roots: the accepted root element names, NULL-terminated.
 * what: the name used in error messages. on_start / on_end: called for every
 * element below the root (path relative to the root, never ""), may be NULL;
 * they report failures through doc_fail(). stop_after_root: end the parse
 * successfully as soon as an accepted root has started.
 */
struct xml_handler {
	const char *const *roots;
	const char *what;
	void (*on_start)(struct xml_doc *doc);
	void (*on_end)(struct xml_doc *doc, const char *text, size_t len);
	int stop_after_root;
};

/* The state of one parse; see the invariants in the file comment. */
struct xml_doc {
	XML_Parser parser;
	const struct xml_handler *handler;
	void *ctx;                      /* the handler's per-parse state */
	struct cm_err *err;             /* where doc_fail() writes; may be NULL */
	int failed;
	enum cm_status status;          /* the first failure, when failed */
	int done;                       /* stopped on purpose (stop_after_root) */
	size_t depth;
	char names[XML_MAX_DEPTH][XML_MAX_NAME];
	char path[XML_MAX_DEPTH * XML_MAX_NAME];
	size_t path_lens[XML_MAX_DEPTH];
	char *text;
	size_t text_len;
	size_t text_cap;
};

/* Whether c is XML white space. */
static int is_xml_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Record the first failure of a parse in doc->err and stop the parser. Later
 * failures are ignored: the first one is what went wrong.
 */
static void doc_fail(struct xml_doc *doc, enum cm_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void doc_fail(struct xml_doc *doc, enum cm_status st, const char *fmt, ...)
{
	char msg[sizeof(doc->err->message)];
	va_list ap;

	if (doc->failed)
		return;
	doc->failed = 1;
	doc->status = st;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cm_err_set(doc->err, st, "%s", msg);
	XML_StopParser(doc->parser, XML_FALSE);
}

/* Whether handlers must ignore further events. */
static int doc_stopped(const struct xml_doc *doc)
{
	return doc->failed || doc->done;
}

/* The name of the element being parsed, for messages ("" outside the root). */
static const char *doc_element(const struct xml_doc *doc)
{
	return doc->depth ? doc->names[doc->depth - 1] : "";
}

/*
 * Copy the local part of an expat element name ("s3:Key" -> "Key") into dst
 * (XML_MAX_NAME bytes). A name too long to store becomes "?", which matches
 * nothing we look for and cannot be a real element name.
 */
static void copy_local_name(char *dst, const XML_Char *name)
{
	const char *colon = strrchr(name, ':');
	const char *local = colon ? colon + 1 : name;
	size_t n = strlen(local);

	if (n >= XML_MAX_NAME) {
		strcpy(dst, "?");
		return;
	}
	memcpy(dst, local, n + 1);
}

/*
 * Check the root element against the handler's accepted names. Returns 1 if
 * accepted, else fails the parse and returns 0.
 */
static int check_root(struct xml_doc *doc, const char *name)
{
	const char *const *root;

	for (root = doc->handler->roots; *root; root++) {
		if (strcmp(*root, name) == 0)
			return 1;
	}
	doc_fail(doc, CM_E_PROTOCOL, "%s: unexpected root element <%.40s> (expected <%s>)",
		 doc->handler->what, name, doc->handler->roots[0]);
	return 0;
}

/* expat start-element handler: push the name, check the root, notify. */
static void handle_start(void *user, const XML_Char *name, const XML_Char **attrs)
{
	struct xml_doc *doc = user;
	size_t plen;
	char *local;

	(void)attrs;
	if (doc_stopped(doc))
		return;
	if (doc->depth >= XML_MAX_DEPTH) {
		doc_fail(doc, CM_E_PROTOCOL, "%s: elements nested deeper than %d",
			 doc->handler->what, XML_MAX_DEPTH);
		return;
	}
	local = doc->names[doc->depth];
	copy_local_name(local, name);
	plen = strlen(doc->path);
	doc->path_lens[doc->depth] = plen;
	if (doc->depth == 0) {
		if (!check_root(doc, local))
			return;
	} else {
		/* Fits: each level adds at most XML_MAX_NAME bytes with its '/'. */
		if (doc->depth > 1)
			doc->path[plen++] = '/';
		strcpy(doc->path + plen, local);
	}
	doc->depth++;
	doc->text_len = 0;
	doc->text[0] = '\0';
	if (doc->depth == 1) {
		if (doc->handler->stop_after_root) {
			doc->done = 1;
			XML_StopParser(doc->parser, XML_FALSE);
		}
		return;
	}
	if (doc->handler->on_start)
		doc->handler->on_start(doc);
}

/* expat end-element handler: notify with the text, pop the name. */
static void handle_end(void *user, const XML_Char *name)
{
	struct xml_doc *doc = user;

	(void)name;
	if (doc_stopped(doc) || doc->depth == 0)
		return;
	if (doc->depth > 1 && doc->handler->on_end)
		doc->handler->on_end(doc, doc->text, doc->text_len);
	if (doc_stopped(doc))
		return;
	doc->depth--;
	doc->path[doc->path_lens[doc->depth]] = '\0';
	doc->text_len = 0;
	doc->text[0] = '\0';
}

/* expat character-data handler: append to the current text, bounded. */
static void handle_text(void *user, const XML_Char *s, int len)
{
	struct xml_doc *doc = user;
	size_t n = (size_t)len;

	if (doc_stopped(doc) || len <= 0)
		return;
	if (n > XML_MAX_TEXT - doc->text_len) {
		doc_fail(doc, CM_E_PROTOCOL, "%s: text of <%s> longer than %d bytes",
			 doc->handler->what, doc_element(doc), XML_MAX_TEXT);
		return;
	}
	if (doc->text_len + n + 1 > doc->text_cap) {
		size_t cap = doc->text_cap;
		char *grown;

		while (cap < doc->text_len + n + 1)
			cap *= 2;
		grown = realloc(doc->text, cap);
		if (!grown) {
			doc_fail(doc, CM_E_NOMEM, "%s: out of memory", doc->handler->what);
			return;
		}
		doc->text = grown;
		doc->text_cap = cap;
	}
	memcpy(doc->text + doc->text_len, s, n);
	doc->text_len += n;
	doc->text[doc->text_len] = '\0';
}

/* A DOCTYPE is never part of an S3 response: refuse it (no DTD, no entities). */
static void handle_doctype(void *user, const XML_Char *name, const XML_Char *sysid,
			   const XML_Char *pubid, int has_internal_subset)
{
	struct xml_doc *doc = user;

	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	doc_fail(doc, CM_E_PROTOCOL, "%s: document has a DOCTYPE (refused)",
		 doc->handler->what);
}

/* Entity declarations are refused too (belt and braces behind the DOCTYPE check). */
static void handle_entity_decl(void *user, const XML_Char *name, int is_param,
			       const XML_Char *value, int value_len, const XML_Char *base,
			       const XML_Char *sysid, const XML_Char *pubid,
			       const XML_Char *notation)
{
	struct xml_doc *doc = user;

	(void)name;
	(void)is_param;
	(void)value;
	(void)value_len;
	(void)base;
	(void)sysid;
	(void)pubid;
	(void)notation;
	doc_fail(doc, CM_E_PROTOCOL, "%s: document declares an entity (refused)",
		 doc->handler->what);
}

/* Whether an expat error code means the document ended too early. */
static int is_truncation(enum XML_Error code)
{
	return code == XML_ERROR_NO_ELEMENTS || code == XML_ERROR_UNCLOSED_TOKEN ||
	       code == XML_ERROR_PARTIAL_CHAR || code == XML_ERROR_UNCLOSED_CDATA_SECTION;
}

/*
 * Parse body (len bytes) with handler h, whose callbacks see ctx as doc->ctx.
 * Returns CM_OK when the document is well-formed, its root is accepted and no
 * callback failed (or, with stop_after_root, as soon as the root started);
 * white space before the document is skipped;
 * else CM_E_PROTOCOL or CM_E_NOMEM with a message in err. Does not free
 * anything in ctx: the caller cleans up its state whatever the outcome.
 */
static enum cm_status xml_run(const char *body, size_t len, const struct xml_handler *h,
			      void *ctx, struct cm_err *err)
{
	struct xml_doc *doc;
	enum cm_status st = CM_OK;
	size_t off = 0;

	if (!body && len)
		return cm_err_set(err, CM_E_INVALID, "%s: NULL body", h->what);
	while (len && is_xml_space(*body)) {
		body++;
		len--;
	}
	doc = calloc(1, sizeof(*doc));
	if (!doc)
		return cm_err_set(err, CM_E_NOMEM, "%s: out of memory", h->what);
	doc->handler = h;
	doc->ctx = ctx;
	doc->err = err;
	doc->text_cap = 256;
	doc->text = malloc(doc->text_cap);
	if (!doc->text) {
		st = cm_err_set(err, CM_E_NOMEM, "%s: out of memory", h->what);
		goto out_free_doc;
	}
	doc->text[0] = '\0';
	doc->parser = XML_ParserCreate(NULL);
	if (!doc->parser) {
		st = cm_err_set(err, CM_E_NOMEM, "%s: out of memory", h->what);
		goto out_free_text;
	}
	XML_SetUserData(doc->parser, doc);
	XML_SetElementHandler(doc->parser, handle_start, handle_end);
	XML_SetCharacterDataHandler(doc->parser, handle_text);
	XML_SetStartDoctypeDeclHandler(doc->parser, handle_doctype);
	XML_SetEntityDeclHandler(doc->parser, handle_entity_decl);
	XML_SetParamEntityParsing(doc->parser, XML_PARAM_ENTITY_PARSING_NEVER);

	do {
		size_t chunk = len - off;
		int is_final = 1;
		enum XML_Status xs;

		if (chunk > XML_CHUNK_MAX) {
			chunk = XML_CHUNK_MAX;
			is_final = 0;
		}
		xs = XML_Parse(doc->parser, body ? body + off : "", (int)chunk, is_final);
		if (doc->failed) {
			st = doc->status;
			goto out_free_parser;
		}
		if (doc->done)
			goto out_free_parser;
		if (xs != XML_STATUS_OK) {
			enum XML_Error code = XML_GetErrorCode(doc->parser);

			if (code == XML_ERROR_NO_MEMORY) {
				st = cm_err_set(err, CM_E_NOMEM, "%s: out of memory", h->what);
			} else {
				st = cm_err_set(err, CM_E_PROTOCOL,
						"%s: %s XML: %s (line %lu, column %lu)", h->what,
						is_truncation(code) ? "truncated" : "malformed",
						XML_ErrorString(code),
						(unsigned long)XML_GetCurrentLineNumber(doc->parser),
						(unsigned long)XML_GetCurrentColumnNumber(doc->parser));
			}
			goto out_free_parser;
		}
		off += chunk;
	} while (off < len);

out_free_parser:
	XML_ParserFree(doc->parser);
out_free_text:
	free(doc->text);
out_free_doc:
	free(doc);
	return st;
}

/* ---- value helpers ---- */

/* Shorten [*s, *s + *len) by the XML white space at both ends. */
static void trim_space(const char **s, size_t *len)
{
	while (*len && is_xml_space((*s)[0])) {
		(*s)++;
		(*len)--;
	}
	while (*len && is_xml_space((*s)[*len - 1]))
		(*len)--;
}

/*
 * A malloc'd NUL-terminated copy of text (len bytes), or NULL after failing
 * the parse with CM_E_NOMEM.
 */
static char *dup_text(struct xml_doc *doc, const char *text, size_t len)
{
	char *copy = malloc(len + 1);

	if (!copy) {
		doc_fail(doc, CM_E_NOMEM, "%s: out of memory", doc->handler->what);
		return NULL;
	}
	memcpy(copy, text, len);
	copy[len] = '\0';
	return copy;
}

/*
 * Replace *field (freed) with a copy of text. Returns 0, or -1 after failing
 * the parse (then *field is unchanged).
 */
static int set_text(struct xml_doc *doc, char **field, const char *text, size_t len)
{
	char *copy = dup_text(doc, text, len);

	if (!copy)
		return -1;
	free(*field);
	*field = copy;
	return 0;
}

/*
 * Replace *field with a copy of an ETag without its surrounding double quotes
 * (S3 quotes ETags, radosgw does not always; "&quot;" arrives here as '"').
 */
static int set_etag(struct xml_doc *doc, char **field, const char *text, size_t len)
{
	if (len >= 2 && text[0] == '"' && text[len - 1] == '"') {
		text++;
		len -= 2;
	}
	return set_text(doc, field, text, len);
}

/*
 * Parse a decimal unsigned 64-bit number (white space around allowed; no sign).
 * Returns 0, or -1 after failing the parse with a message naming the element.
 */
static int parse_u64(struct xml_doc *doc, const char *text, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	trim_space(&text, &len);
	if (len == 0)
		goto out_bad;
	for (i = 0; i < len; i++) {
		unsigned digit;

		if (text[i] < '0' || text[i] > '9')
			goto out_bad;
		digit = (unsigned)(text[i] - '0');
		if (v > (UINT64_MAX - digit) / 10) {
			doc_fail(doc, CM_E_PROTOCOL, "%s: <%s> out of range: \"%.40s\"",
				 doc->handler->what, doc_element(doc), text);
			return -1;
		}
		v = v * 10 + digit;
	}
	*out = v;
	return 0;
out_bad:
	doc_fail(doc, CM_E_PROTOCOL, "%s: <%s> is not a number: \"%.40s\"",
		 doc->handler->what, doc_element(doc), text);
	return -1;
}

/* Parse "true" or "false" (any case, white space around allowed) into *out. */
static int parse_bool(struct xml_doc *doc, const char *text, size_t len, int *out)
{
	trim_space(&text, &len);
	if (len == 4 && strncasecmp(text, "true", 4) == 0) {
		*out = 1;
		return 0;
	}
	if (len == 5 && strncasecmp(text, "false", 5) == 0) {
		*out = 0;
		return 0;
	}
	doc_fail(doc, CM_E_PROTOCOL, "%s: <%s> is not true or false: \"%.40s\"",
		 doc->handler->what, doc_element(doc), text);
	return -1;
}

/* Parse an ISO 8601 time element into *ts; fails the parse on garbage. */
static int parse_time(struct xml_doc *doc, const char *text, size_t len, struct timespec *ts)
{
	char buf[64];

	trim_space(&text, &len);
	if (len >= sizeof(buf))
		goto out_bad;
	memcpy(buf, text, len);
	buf[len] = '\0';
	if (s3_parse_iso8601(buf, ts) != 0)
		goto out_bad;
	return 0;
out_bad:
	doc_fail(doc, CM_E_PROTOCOL, "%s: <%s> is not an ISO 8601 time: \"%.40s\"",
		 doc->handler->what, doc_element(doc), text);
	return -1;
}

/* The value of a hex digit, or -1. */
static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * URL-decode s in place the way urllib.parse.unquote_plus does for valid
 * input ('+' is a space, %XX a byte). Returns 0, or -1 if s has a malformed
 * escape or decodes to a NUL byte (keys are C strings). The result may be any
 * bytes, not necessarily UTF-8.
 */
static int url_decode_in_place(char *s)
{
	char *out = s;
	const char *in;

	/* Check first so that a failure leaves s as it was, for the message. */
	for (in = s; *in; in++) {
		if (*in != '%')
			continue;
		if (hex_value(in[1]) < 0 || hex_value(in[2]) < 0 ||
		    (in[1] == '0' && in[2] == '0'))
			return -1;
		in += 2;
	}
	in = s;
	while (*in) {
		if (*in == '+') {
			*out++ = ' ';
			in++;
		} else if (*in == '%') {
			*out++ = (char)(hex_value(in[1]) * 16 + hex_value(in[2]));
			in += 3;
		} else {
			*out++ = *in++;
		}
	}
	*out = '\0';
	return 0;
}

/*
 * Grow a malloc'd array *items of *cap elements of size elem so that it holds
 * at least need. Returns 0, or -1 on allocation failure or overflow (then the
 * array is unchanged).
 */
static int grow_array(void **items, size_t *cap, size_t need, size_t elem)
{
	size_t new_cap;
	void *grown;

	if (need <= *cap)
		return 0;
	new_cap = *cap ? *cap : 16;
	while (new_cap < need) {
		if (new_cap > SIZE_MAX / 2)
			return -1;
		new_cap *= 2;
	}
	if (new_cap > SIZE_MAX / elem)
		return -1;
	grown = realloc(*items, new_cap * elem);
	if (!grown)
		return -1;
	*items = grown;
	*cap = new_cap;
	return 0;
}

/* ---- ListObjectsV2 ---- */

/* Per-parse state of a ListBucketResult. cur / cur_prefix: the open record. */
struct list_state {
	struct s3_list_page *page;
	size_t objects_cap;
	size_t prefixes_cap;
	struct s3_object_info cur;
	int cur_has_key;
	int cur_has_size;
	char *cur_prefix;
	char *encoding_type;
};

/* Free the fields of an object record and zero it. */
static void object_info_release(struct s3_object_info *obj)
{
	free(obj->key);
	free(obj->etag);
	free(obj->storage_class);
	memset(obj, 0, sizeof(*obj));
}

/* Append the finished <Contents> record to the page; it must have Key and Size. */
static void list_finish_object(struct xml_doc *doc, struct list_state *ls)
{
	struct s3_list_page *page = ls->page;

	if (!ls->cur_has_key || !ls->cur_has_size) {
		doc_fail(doc, CM_E_PROTOCOL, "%s: <Contents> without <%s>", doc->handler->what,
			 ls->cur_has_key ? "Size" : "Key");
		return;
	}
	if (!ls->cur.etag && set_text(doc, &ls->cur.etag, "", 0) != 0)
		return;
	if (grow_array((void **)&page->objects, &ls->objects_cap, page->n_objects + 1,
		       sizeof(*page->objects)) != 0) {
		doc_fail(doc, CM_E_NOMEM, "%s: out of memory", doc->handler->what);
		return;
	}
	page->objects[page->n_objects++] = ls->cur;
	memset(&ls->cur, 0, sizeof(ls->cur));
}

/* Append the finished <CommonPrefixes> record; it must have a Prefix. */
static void list_finish_prefix(struct xml_doc *doc, struct list_state *ls)
{
	struct s3_list_page *page = ls->page;

	if (!ls->cur_prefix) {
		doc_fail(doc, CM_E_PROTOCOL, "%s: <CommonPrefixes> without <Prefix>",
			 doc->handler->what);
		return;
	}
	if (grow_array((void **)&page->prefixes, &ls->prefixes_cap, page->n_prefixes + 1,
		       sizeof(*page->prefixes)) != 0) {
		doc_fail(doc, CM_E_NOMEM, "%s: out of memory", doc->handler->what);
		return;
	}
	page->prefixes[page->n_prefixes++] = ls->cur_prefix;
	ls->cur_prefix = NULL;
}

/* Begin a <Contents> or <CommonPrefixes> record. */
static void list_on_start(struct xml_doc *doc)
{
	struct list_state *ls = doc->ctx;

	if (strcmp(doc->path, "Contents") == 0) {
		object_info_release(&ls->cur);
		ls->cur_has_key = 0;
		ls->cur_has_size = 0;
	} else if (strcmp(doc->path, "CommonPrefixes") == 0) {
		free(ls->cur_prefix);
		ls->cur_prefix = NULL;
	}
}

/* Fill a field of the open record or of the page; finish a record. */
static void list_on_end(struct xml_doc *doc, const char *text, size_t len)
{
	struct list_state *ls = doc->ctx;
	struct s3_list_page *page = ls->page;
	const char *path = doc->path;
	uint64_t number;

	if (strcmp(path, "Contents") == 0) {
		list_finish_object(doc, ls);
	} else if (strcmp(path, "Contents/Key") == 0) {
		if (set_text(doc, &ls->cur.key, text, len) == 0)
			ls->cur_has_key = 1;
	} else if (strcmp(path, "Contents/Size") == 0) {
		if (parse_u64(doc, text, len, &ls->cur.size) == 0)
			ls->cur_has_size = 1;
	} else if (strcmp(path, "Contents/ETag") == 0) {
		set_etag(doc, &ls->cur.etag, text, len);
	} else if (strcmp(path, "Contents/LastModified") == 0) {
		parse_time(doc, text, len, &ls->cur.last_modified);
	} else if (strcmp(path, "Contents/StorageClass") == 0) {
		set_text(doc, &ls->cur.storage_class, text, len);
	} else if (strcmp(path, "CommonPrefixes") == 0) {
		list_finish_prefix(doc, ls);
	} else if (strcmp(path, "CommonPrefixes/Prefix") == 0) {
		set_text(doc, &ls->cur_prefix, text, len);
	} else if (strcmp(path, "IsTruncated") == 0) {
		parse_bool(doc, text, len, &page->is_truncated);
	} else if (strcmp(path, "NextContinuationToken") == 0) {
		set_text(doc, &page->next_token, text, len);
	} else if (strcmp(path, "StartAfter") == 0) {
		set_text(doc, &page->start_after, text, len);
	} else if (strcmp(path, "KeyCount") == 0) {
		if (parse_u64(doc, text, len, &number) != 0)
			return;
		if (number > INT_MAX) {
			doc_fail(doc, CM_E_PROTOCOL, "%s: <KeyCount> out of range",
				 doc->handler->what);
			return;
		}
		page->key_count = (int)number;
	} else if (strcmp(path, "EncodingType") == 0) {
		trim_space(&text, &len);
		set_text(doc, &ls->encoding_type, text, len);
	}
}

/*
 * URL-decode *field (if not NULL) in place, failing with err on a bad escape.
 * what names the field for the message.
 */
static enum cm_status decode_field(char *field, const char *what, struct cm_err *err)
{
	if (field && url_decode_in_place(field) != 0)
		return cm_err_set(err, CM_E_PROTOCOL,
				  "ListObjectsV2: bad URL encoding in %s \"%.60s\"", what, field);
	return CM_OK;
}

/*
 * Apply the page's EncodingType once the whole document is read (it may come
 * after the keys it describes). Returns CM_OK or CM_E_PROTOCOL.
 */
static enum cm_status list_decode(struct list_state *ls, struct cm_err *err)
{
	struct s3_list_page *page = ls->page;
	enum cm_status st;
	size_t i;

	if (!ls->encoding_type || ls->encoding_type[0] == '\0')
		return CM_OK;
	if (strcmp(ls->encoding_type, "url") != 0)
		return cm_err_set(err, CM_E_PROTOCOL, "ListObjectsV2: unknown EncodingType \"%.40s\"",
				  ls->encoding_type);
	for (i = 0; i < page->n_objects; i++) {
		st = decode_field(page->objects[i].key, "Key", err);
		if (st != CM_OK)
			return st;
	}
	for (i = 0; i < page->n_prefixes; i++) {
		st = decode_field(page->prefixes[i], "Prefix", err);
		if (st != CM_OK)
			return st;
	}
	return decode_field(page->start_after, "StartAfter", err);
}

static const char *const list_roots[] = { "ListBucketResult", NULL };
static const struct xml_handler list_handler = {
	.roots = list_roots,
	.what = "ListObjectsV2",
	.on_start = list_on_start,
	.on_end = list_on_end,
};

enum cm_status s3_xml_parse_list(const char *body, size_t len,
				 struct s3_list_page *out, struct cm_err *err)
{
	struct list_state ls;
	enum cm_status st;

	memset(out, 0, sizeof(*out));
	out->key_count = -1;
	memset(&ls, 0, sizeof(ls));
	ls.page = out;
	st = xml_run(body, len, &list_handler, &ls, err);
	if (st == CM_OK)
		st = list_decode(&ls, err);
	object_info_release(&ls.cur);
	free(ls.cur_prefix);
	free(ls.encoding_type);
	if (st != CM_OK)
		s3_list_page_release(out);
	return st;
}

void s3_list_page_release(struct s3_list_page *page)
{
	size_t i;

	if (!page)
		return;
	for (i = 0; i < page->n_objects; i++)
		object_info_release(&page->objects[i]);
	free(page->objects);
	for (i = 0; i < page->n_prefixes; i++)
		free(page->prefixes[i]);
	free(page->prefixes);
	free(page->next_token);
	free(page->start_after);
	memset(page, 0, sizeof(*page));
}

/* ---- Error ---- */

/* What an <Error> body said; only copied into the caller's cm_err on success. */
struct error_state {
	char code[sizeof(((struct cm_err *)0)->code)];
	char message[sizeof(((struct cm_err *)0)->message)];
	char request_id[sizeof(((struct cm_err *)0)->request_id)];
};

/*
 * Copy text (len bytes) into a fixed field of size bytes, NUL-terminated and
 * cut, if it must be, before a UTF-8 continuation byte so that no character
 * is split.
 */
static void copy_field(char *dst, size_t size, const char *text, size_t len)
{
	if (len >= size) {
		len = size - 1;
		while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
			len--;
	}
	memcpy(dst, text, len);
	dst[len] = '\0';
}

/* Keep Code, Message and RequestId (cut to the cm_err field sizes). */
static void error_on_end(struct xml_doc *doc, const char *text, size_t len)
{
	struct error_state *es = doc->ctx;

	if (strcmp(doc->path, "Code") == 0)
		copy_field(es->code, sizeof(es->code), text, len);
	else if (strcmp(doc->path, "Message") == 0)
		copy_field(es->message, sizeof(es->message), text, len);
	else if (strcmp(doc->path, "RequestId") == 0 || strcmp(doc->path, "RequestID") == 0)
		copy_field(es->request_id, sizeof(es->request_id), text, len);
}

static const char *const error_roots[] = { "Error", NULL };
static const struct xml_handler error_handler = {
	.roots = error_roots,
	.what = "Error",
	.on_end = error_on_end,
};

/*
 * Fields the body leaves empty or out (radosgw sends <Message/>) keep what the
 * caller had in err; the status field is the caller's to set from the code.
 */
enum cm_status s3_xml_parse_error(const char *body, size_t len, struct cm_err *err)
{
	struct error_state es;
	struct cm_err scratch;
	enum cm_status st;

	memset(&es, 0, sizeof(es));
	cm_err_clear(&scratch);
	st = xml_run(body, len, &error_handler, &es, &scratch);
	if (st != CM_OK)
		return st;
	if (!err)
		return CM_OK;
	if (es.code[0])
		memcpy(err->code, es.code, sizeof(err->code));
	if (es.message[0])
		memcpy(err->message, es.message, sizeof(err->message));
	if (es.request_id[0])
		memcpy(err->request_id, es.request_id, sizeof(err->request_id));
	return CM_OK;
}

static const struct xml_handler is_error_handler = {
	.roots = error_roots,
	.what = "Error",
	.stop_after_root = 1,
};

int s3_xml_is_error(const char *body, size_t len)
{
	struct cm_err scratch;

	cm_err_clear(&scratch);
	return xml_run(body, len, &is_error_handler, NULL, &scratch) == CM_OK;
}

/* ---- InitiateMultipartUploadResult ---- */

/* Keep the UploadId (the last one, if there are several). */
static void initiate_on_end(struct xml_doc *doc, const char *text, size_t len)
{
	char **upload_id = doc->ctx;

	if (strcmp(doc->path, "UploadId") == 0)
		set_text(doc, upload_id, text, len);
}

static const char *const initiate_roots[] = { "InitiateMultipartUploadResult", NULL };
static const struct xml_handler initiate_handler = {
	.roots = initiate_roots,
	.what = "CreateMultipartUpload",
	.on_end = initiate_on_end,
};

/* On failure *upload_id is NULL. */
enum cm_status s3_xml_parse_initiate(const char *body, size_t len, char **upload_id,
				     struct cm_err *err)
{
	char *id = NULL;
	enum cm_status st;

	*upload_id = NULL;
	st = xml_run(body, len, &initiate_handler, &id, err);
	if (st == CM_OK && (!id || id[0] == '\0'))
		st = cm_err_set(err, CM_E_PROTOCOL, "CreateMultipartUpload: no <UploadId> in the answer");
	if (st != CM_OK) {
		free(id);
		return st;
	}
	*upload_id = id;
	return CM_OK;
}

/* ---- CompleteMultipartUploadResult, CopyObjectResult, CopyPartResult ---- */

/* Per-parse state of an ETag result. */
struct etag_state {
	char *etag;
	struct timespec last_modified;
};

/* Keep the ETag, unquoted, and the LastModified time. */
static void etag_on_end(struct xml_doc *doc, const char *text, size_t len)
{
	struct etag_state *es = doc->ctx;

	if (strcmp(doc->path, "ETag") == 0)
		set_etag(doc, &es->etag, text, len);
	else if (strcmp(doc->path, "LastModified") == 0)
		parse_time(doc, text, len, &es->last_modified);
}

static const char *const etag_roots[] = {
	"CompleteMultipartUploadResult", "CopyObjectResult", "CopyPartResult", NULL
};
static const struct xml_handler etag_handler = {
	.roots = etag_roots,
	.what = "ETag result",
	.on_end = etag_on_end,
};

/* On failure *etag is NULL and *last_modified zeroed. */
enum cm_status s3_xml_parse_etag_result(const char *body, size_t len, char **etag,
					struct timespec *last_modified, struct cm_err *err)
{
	struct etag_state es;
	enum cm_status st;

	memset(&es, 0, sizeof(es));
	*etag = NULL;
	if (last_modified)
		memset(last_modified, 0, sizeof(*last_modified));
	st = xml_run(body, len, &etag_handler, &es, err);
	if (st == CM_OK && !es.etag) {
		es.etag = strdup("");
		if (!es.etag)
			st = cm_err_set(err, CM_E_NOMEM, "ETag result: out of memory");
	}
	if (st != CM_OK) {
		free(es.etag);
		return st;
	}
	*etag = es.etag;
	if (last_modified)
		*last_modified = es.last_modified;
	return CM_OK;
}

/* ---- DeleteResult ---- */

/* Per-parse state of a DeleteResult. cur: the open <Error> record. */
struct delete_state {
	struct s3_delete_result *res;
	size_t failures_cap;
	struct s3_delete_failure cur;
};

/* Free the fields of a failure record and zero it. */
static void delete_failure_release(struct s3_delete_failure *f)
{
	free(f->key);
	free(f->code);
	free(f->message);
	memset(f, 0, sizeof(*f));
}

/* Append the finished <Error> record; absent fields become "". */
static void delete_finish_failure(struct xml_doc *doc, struct delete_state *ds)
{
	struct s3_delete_result *res = ds->res;

	if (!ds->cur.key && set_text(doc, &ds->cur.key, "", 0) != 0)
		return;
	if (!ds->cur.code && set_text(doc, &ds->cur.code, "", 0) != 0)
		return;
	if (!ds->cur.message && set_text(doc, &ds->cur.message, "", 0) != 0)
		return;
	if (grow_array((void **)&res->failures, &ds->failures_cap, res->n_failures + 1,
		       sizeof(*res->failures)) != 0) {
		doc_fail(doc, CM_E_NOMEM, "%s: out of memory", doc->handler->what);
		return;
	}
	res->failures[res->n_failures++] = ds->cur;
	memset(&ds->cur, 0, sizeof(ds->cur));
}

/* Begin an <Error> record. */
static void delete_on_start(struct xml_doc *doc)
{
	struct delete_state *ds = doc->ctx;

	if (strcmp(doc->path, "Error") == 0)
		delete_failure_release(&ds->cur);
}

/* Count <Deleted>; fill and finish <Error> records. */
static void delete_on_end(struct xml_doc *doc, const char *text, size_t len)
{
	struct delete_state *ds = doc->ctx;
	const char *path = doc->path;

	if (strcmp(path, "Deleted") == 0)
		ds->res->n_deleted++;
	else if (strcmp(path, "Error") == 0)
		delete_finish_failure(doc, ds);
	else if (strcmp(path, "Error/Key") == 0)
		set_text(doc, &ds->cur.key, text, len);
	else if (strcmp(path, "Error/Code") == 0)
		set_text(doc, &ds->cur.code, text, len);
	else if (strcmp(path, "Error/Message") == 0)
		set_text(doc, &ds->cur.message, text, len);
}

static const char *const delete_roots[] = { "DeleteResult", NULL };
static const struct xml_handler delete_handler = {
	.roots = delete_roots,
	.what = "DeleteObjects",
	.on_start = delete_on_start,
	.on_end = delete_on_end,
};

/* Each failure's key, code and message are non-NULL ("" when absent). */
enum cm_status s3_xml_parse_delete_result(const char *body, size_t len,
					  struct s3_delete_result *out, struct cm_err *err)
{
	struct delete_state ds;
	enum cm_status st;

	memset(out, 0, sizeof(*out));
	memset(&ds, 0, sizeof(ds));
	ds.res = out;
	st = xml_run(body, len, &delete_handler, &ds, err);
	delete_failure_release(&ds.cur);
	if (st != CM_OK)
		s3_delete_result_release(out);
	return st;
}

void s3_delete_result_release(struct s3_delete_result *res)
{
	size_t i;

	if (!res)
		return;
	for (i = 0; i < res->n_failures; i++)
		delete_failure_release(&res->failures[i]);
	free(res->failures);
	memset(res, 0, sizeof(*res));
}

/* ---- ListMultipartUploadsResult ---- */

/* Per-parse state of a ListMultipartUploadsResult. cur: the open <Upload>. */
struct uploads_state {
	struct s3_upload_list *list;
	size_t uploads_cap;
	struct s3_upload_info cur;
	char *encoding_type;
};

/* Free the fields of an upload record and zero it. */
static void upload_info_release(struct s3_upload_info *u)
{
	free(u->key);
	free(u->upload_id);
	memset(u, 0, sizeof(*u));
}

/* Append the finished <Upload> record; it must have Key and UploadId. */
static void uploads_finish_upload(struct xml_doc *doc, struct uploads_state *us)
{
	struct s3_upload_list *list = us->list;

	if (!us->cur.key || !us->cur.upload_id) {
		doc_fail(doc, CM_E_PROTOCOL, "%s: <Upload> without <%s>", doc->handler->what,
			 us->cur.key ? "UploadId" : "Key");
		return;
	}
	if (grow_array((void **)&list->uploads, &us->uploads_cap, list->n_uploads + 1,
		       sizeof(*list->uploads)) != 0) {
		doc_fail(doc, CM_E_NOMEM, "%s: out of memory", doc->handler->what);
		return;
	}
	list->uploads[list->n_uploads++] = us->cur;
	memset(&us->cur, 0, sizeof(us->cur));
}

/* Begin an <Upload> record. */
static void uploads_on_start(struct xml_doc *doc)
{
	struct uploads_state *us = doc->ctx;

	if (strcmp(doc->path, "Upload") == 0)
		upload_info_release(&us->cur);
}

/* Fill a field of the open <Upload> or of the list; finish a record. */
static void uploads_on_end(struct xml_doc *doc, const char *text, size_t len)
{
	struct uploads_state *us = doc->ctx;
	struct s3_upload_list *list = us->list;
	const char *path = doc->path;

	if (strcmp(path, "Upload") == 0) {
		uploads_finish_upload(doc, us);
	} else if (strcmp(path, "Upload/Key") == 0) {
		set_text(doc, &us->cur.key, text, len);
	} else if (strcmp(path, "Upload/UploadId") == 0) {
		set_text(doc, &us->cur.upload_id, text, len);
	} else if (strcmp(path, "Upload/Initiated") == 0) {
		parse_time(doc, text, len, &us->cur.initiated);
	} else if (strcmp(path, "IsTruncated") == 0) {
		parse_bool(doc, text, len, &list->is_truncated);
	} else if (strcmp(path, "NextKeyMarker") == 0) {
		set_text(doc, &list->next_key_marker, text, len);
	} else if (strcmp(path, "NextUploadIdMarker") == 0) {
		set_text(doc, &list->next_upload_id_marker, text, len);
	} else if (strcmp(path, "EncodingType") == 0) {
		trim_space(&text, &len);
		set_text(doc, &us->encoding_type, text, len);
	}
}

/*
 * With EncodingType url, S3 encodes the keys and NextKeyMarker of this answer
 * too; decode them as list_decode() does. Returns CM_OK or CM_E_PROTOCOL.
 */
static enum cm_status uploads_decode(struct uploads_state *us, struct cm_err *err)
{
	struct s3_upload_list *list = us->list;
	size_t i;

	if (!us->encoding_type || us->encoding_type[0] == '\0')
		return CM_OK;
	if (strcmp(us->encoding_type, "url") != 0)
		return cm_err_set(err, CM_E_PROTOCOL,
				  "ListMultipartUploads: unknown EncodingType \"%.40s\"",
				  us->encoding_type);
	for (i = 0; i < list->n_uploads; i++) {
		if (url_decode_in_place(list->uploads[i].key) != 0)
			goto out_bad;
	}
	if (list->next_key_marker && url_decode_in_place(list->next_key_marker) != 0)
		goto out_bad;
	return CM_OK;
out_bad:
	return cm_err_set(err, CM_E_PROTOCOL, "ListMultipartUploads: bad URL encoding in a key");
}

static const char *const uploads_roots[] = { "ListMultipartUploadsResult", NULL };
static const struct xml_handler uploads_handler = {
	.roots = uploads_roots,
	.what = "ListMultipartUploads",
	.on_start = uploads_on_start,
	.on_end = uploads_on_end,
};

enum cm_status s3_xml_parse_uploads(const char *body, size_t len,
				    struct s3_upload_list *out, struct cm_err *err)
{
	struct uploads_state us;
	enum cm_status st;

	memset(out, 0, sizeof(*out));
	memset(&us, 0, sizeof(us));
	us.list = out;
	st = xml_run(body, len, &uploads_handler, &us, err);
	if (st == CM_OK)
		st = uploads_decode(&us, err);
	upload_info_release(&us.cur);
	free(us.encoding_type);
	if (st != CM_OK)
		s3_upload_list_release(out);
	return st;
}

void s3_upload_list_release(struct s3_upload_list *list)
{
	size_t i;

	if (!list)
		return;
	for (i = 0; i < list->n_uploads; i++)
		upload_info_release(&list->uploads[i]);
	free(list->uploads);
	free(list->next_key_marker);
	free(list->next_upload_id_marker);
	memset(list, 0, sizeof(*list));
}

/* ---- builders ---- */

/*
 * A growing NUL-terminated string. After an allocation failure failed is set
 * and every append is a no-op, so a builder checks once at the end.
 */
struct xml_out {
	char *buf;
	size_t len;
	size_t cap;
	int failed;
};

/* Append n bytes of s. */
static void out_append(struct xml_out *o, const char *s, size_t n)
{
	if (o->failed)
		return;
	if (n >= SIZE_MAX - o->len) {
		o->failed = 1;
		return;
	}
	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 256;
		char *grown;

		while (cap < o->len + n + 1) {
			if (cap > SIZE_MAX / 2) {
				o->failed = 1;
				return;
			}
			cap *= 2;
		}
		grown = realloc(o->buf, cap);
		if (!grown) {
			o->failed = 1;
			return;
		}
		o->buf = grown;
		o->cap = cap;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

/* Append the string s. */
static void out_str(struct xml_out *o, const char *s)
{
	out_append(o, s, strlen(s));
}

/*
 * Append s as XML character data: the five special characters as entities,
 * and every C0 control character and DEL as a character reference. Tab, LF
 * and CR are legal XML, but written literally a CR would be turned into LF by
 * the server's end-of-line handling, so they are references too.
 */
static void out_escaped(struct xml_out *o, const char *s)
{
	const char *run = s;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		const char *entity = NULL;
		char ref[8];

		switch (c) {
		case '&': entity = "&amp;"; break;
		case '<': entity = "&lt;"; break;
		case '>': entity = "&gt;"; break;
		case '"': entity = "&quot;"; break;
		case '\'': entity = "&apos;"; break;
		default:
			if (c < 0x20 || c == 0x7F) {
				snprintf(ref, sizeof(ref), "&#x%X;", c);
				entity = ref;
			}
			break;
		}
		if (!entity)
			continue;
		out_append(o, run, (size_t)(s - run));
		out_str(o, entity);
		run = s + 1;
	}
	out_append(o, run, (size_t)(s - run));
}

/* Hand over the built string, or free it and return NULL if anything failed. */
static char *out_finish(struct xml_out *o, size_t *len)
{
	if (o->failed) {
		free(o->buf);
		return NULL;
	}
	if (len)
		*len = o->len;
	return o->buf;
}

char *s3_xml_build_complete(const struct s3_part *parts, size_t n_parts, size_t *len)
{
	struct xml_out o = { 0 };
	char number[16];
	size_t i;

	out_str(&o, "<CompleteMultipartUpload xmlns=\"" S3_XMLNS "\">");
	for (i = 0; i < n_parts; i++) {
		snprintf(number, sizeof(number), "%d", parts[i].number);
		out_str(&o, "<Part><PartNumber>");
		out_str(&o, number);
		out_str(&o, "</PartNumber><ETag>\"");
		out_escaped(&o, parts[i].etag ? parts[i].etag : "");
		out_str(&o, "\"</ETag></Part>");
	}
	out_str(&o, "</CompleteMultipartUpload>");
	return out_finish(&o, len);
}

char *s3_xml_build_delete(const char *const *keys, size_t n_keys, size_t *len)
{
	struct xml_out o = { 0 };
	size_t i;

	out_str(&o, "<Delete xmlns=\"" S3_XMLNS "\"><Quiet>true</Quiet>");
	for (i = 0; i < n_keys; i++) {
		out_str(&o, "<Object><Key>");
		out_escaped(&o, keys[i]);
		out_str(&o, "</Key></Object>");
	}
	out_str(&o, "</Delete>");
	return out_finish(&o, len);
}

/* ---- time ---- */

/*
 * Read exactly n decimal digits at *s into *out and advance *s. Returns 0, or
 * -1 if any of them is not a digit.
 */
static int read_digits(const char **s, int n, int *out)
{
	int v = 0;
	int i;

	for (i = 0; i < n; i++) {
		char c = (*s)[i];

		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*s += n;
	*out = v;
	return 0;
}

/* Days in month (1..12) of year, Gregorian. */
static int days_in_month(int year, int month)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return month == 2 ? 28 + leap : days[month - 1];
}

/* Consume the expected character c at *s. Returns 0 or -1. */
static int expect_char(const char **s, char c)
{
	if (**s != c)
		return -1;
	(*s)++;
	return 0;
}

int s3_parse_iso8601(const char *s, struct timespec *ts)
{
	int year, month, day, hour, minute, second;
	long nsec = 0;
	long offset = 0;
	struct tm tm;
	time_t t;

	if (!s)
		return -1;
	if (read_digits(&s, 4, &year) || expect_char(&s, '-') ||
	    read_digits(&s, 2, &month) || expect_char(&s, '-') ||
	    read_digits(&s, 2, &day) || expect_char(&s, 'T') ||
	    read_digits(&s, 2, &hour) || expect_char(&s, ':') ||
	    read_digits(&s, 2, &minute) || expect_char(&s, ':') ||
	    read_digits(&s, 2, &second))
		return -1;
	if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) ||
	    hour > 23 || minute > 59 || second > 60)
		return -1;
	if (*s == '.') {
		long scale = 100000000;

		s++;
		if (*s < '0' || *s > '9')
			return -1;
		/* Digits past nanoseconds are read and dropped. */
		for (; *s >= '0' && *s <= '9'; s++) {
			nsec += (*s - '0') * scale;
			scale /= 10;
		}
	}
	if (*s == 'Z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		int sign = *s == '-' ? -1 : 1;
		int off_hour, off_minute;

		s++;
		if (read_digits(&s, 2, &off_hour))
			return -1;
		if (*s == ':')
			s++;
		if (read_digits(&s, 2, &off_minute) || off_hour > 23 || off_minute > 59)
			return -1;
		offset = sign * (off_hour * 3600L + off_minute * 60L);
	} else {
		return -1;
	}
	if (*s != '\0')
		return -1;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = month - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = minute;
	tm.tm_sec = second;       /* a leap second 60 rolls over, as timegm does */
	t = timegm(&tm);
	ts->tv_sec = t - offset;
	ts->tv_nsec = nsec;
	return 0;
}
