/*
 * store_mem.h - an in-memory object store for tests.
 *
 * Behaves as S3 does where it matters to the layers above: sorted listings
 * with prefix, delimiter, continuation and max-keys; multipart uploads with
 * parts of at least min_part_size except the last; ETags (MD5, or "MD5-N" for
 * multipart); metadata; copy with COPY/REPLACE. Each operation can be switched
 * off to answer CM_E_UNSUPPORTED as some servers do (s3rver lacks part copy,
 * upload listing and abort), and every call is counted, so tests can assert
 * "ls -l costs no HEAD". Thread-safe (one mutex).
 */
#ifndef CM_STORE_MEM_H
#define CM_STORE_MEM_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct store *store_mem_create(void);

/* Answer CM_E_UNSUPPORTED to op (on = 1) or serve it again (on = 0). */
void store_mem_set_unsupported(struct store *s, enum store_op op, int on);
/* The smallest part but the last (default 5 MiB, as S3; tests lower it). */
void store_mem_set_min_part_size(struct store *s, uint64_t bytes);
/* The most keys and common prefixes a LIST page holds (default 1000, as S3; tests lower it). */
void store_mem_set_max_keys(struct store *s, int n);
/* How many times op was called. */
uint64_t store_mem_calls(struct store *s, enum store_op op);
void store_mem_reset_calls(struct store *s);
/* Multipart uploads begun and neither completed nor aborted. */
size_t store_mem_pending_uploads(struct store *s);
/* Number of objects. */
size_t store_mem_count(struct store *s);
/* Bytes stored in all objects (for memory-bound checks). */
uint64_t store_mem_bytes(struct store *s);

/* Test helpers: write an object directly / read it whole (malloc'd, *len set). */
int store_mem_put_bytes(struct store *s, const char *key, const void *data, size_t len);
void *store_mem_get_bytes(struct store *s, const char *key, size_t *len);

#endif
