/*
 * store_fault.h - a store layer that injects faults into the one below.
 *
 * Wraps any store (the mem store in unit tests, the s3 store in failure tests)
 * and, per operation: fails the next N calls with a chosen status, fails each
 * call with a probability (seeded, so a failing run can be replayed), delays
 * calls, and cuts GETs short after half their bytes (a connection reset in
 * the middle of a body). Everything it does not inject passes through.
 */
#ifndef CM_STORE_FAULT_H
#define CM_STORE_FAULT_H

#include <stdint.h>

#include "store/store.h"

/* Takes ownership of inner (store_destroy of the result destroys both). */
struct store *store_fault_create(struct store *inner, uint64_t seed);

/* Fail the next count calls of op with st (before reaching the store below). */
void store_fault_fail_next(struct store *s, enum store_op op, int count, enum cm_status st);
/* Fail every call of op with probability p (0..1) with st. */
void store_fault_set_random(struct store *s, enum store_op op, double p, enum cm_status st);
/* Sleep ms before every call. */
void store_fault_set_delay(struct store *s, int ms);
/* Cut each GET short with probability p: deliver half, then fail with CM_E_NETWORK. */
void store_fault_set_truncate_gets(struct store *s, double p);
/* Number of faults injected so far. */
uint64_t store_fault_injected(struct store *s);

#endif
