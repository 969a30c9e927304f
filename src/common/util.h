/*
 * util.h - small helpers shared by every layer.
 *
 * The x* allocators are for control-path data (options, names, small tables):
 * they abort with a message on allocation failure, as STYLE.md allows. Data-path
 * buffers use plain malloc and report ENOMEM.
 */
#ifndef CM_UTIL_H
#define CM_UTIL_H

#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* malloc'd printf. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Monotonic clock in milliseconds / nanoseconds. */
int64_t util_now_ms(void);

/* "1.5 GiB", "512 B": into out (at least 16 bytes); returns out. */
char *util_human_bytes(uint64_t bytes, char *out, size_t len);

/*
 * Parse a size with an optional K/M/G/T suffix (powers of 1024, "KiB"/"k"
 * accepted). Returns 0 and sets *out, or -1 for garbage or overflow.
 */
int util_parse_size(const char *s, uint64_t *out);

/* CloudMount's cache directory: $XDG_CACHE_HOME/cloudmount or ~/.cache/cloudmount (malloc'd). */
char *util_cache_dir(void);

/*
 * Detach a background process from its terminal: stdin and stdout to
 * /dev/null, stderr appended to log_path (0600; /dev/null if it cannot be
 * opened).
 */
void util_redirect_stdio(const char *log_path);

/*
 * mkdir -p: create dir and any missing parents with mode. Existing ones are
 * left as they are; failures show up when the directory is used.
 */
void util_mkdir_p(const char *dir, unsigned mode);

/* The same for the directories above a file (not the file itself). */
void util_mkdir_parents(const char *file, unsigned mode);

/* Wipe n bytes in a way the compiler cannot drop. */
void util_wipe(void *p, size_t n);

#endif
