/*
 * buf.h - a growable byte buffer, always NUL-terminated.
 *
 * Invariant: data is NULL with len == cap == 0, or data[len] == '\0' and
 * len < cap. Every append
 * returns 0 or -1 (ENOMEM) and a failed append leaves the buffer unchanged,
 * so data-path callers can report ENOMEM and control-path callers can check once
 * at the end through buf_failed().
 */
#ifndef CM_BUF_H
#define CM_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
	int failed;     /* set when an append could not allocate */
};

#define BUF_INIT { 0 }

void buf_init(struct buf *b);
/* Free the memory and re-initialise. */
void buf_release(struct buf *b);
/* Make room for extra more bytes. Returns 0 or -1. */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *data, size_t len);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Drop the contents, keep the memory. */
void buf_reset(struct buf *b);
/* Hand the string to the caller (never NULL unless failed: "" for empty) and re-initialise. */
char *buf_detach(struct buf *b);
/* Whether any append failed since init/reset. */
static inline int buf_failed(const struct buf *b) { return b->failed; }

#endif
