/*
 * workq.h - a fixed pool of worker threads running queued jobs in FIFO order.
 *
 * Used for the blocking store calls that must run in parallel (multipart parts,
 * ranged reads). Jobs must not wait for other jobs of the same pool. Creating
 * the pool starts its threads; destroying it runs the jobs still queued, then
 * joins the threads.
 */
#ifndef CM_WORKQ_H
#define CM_WORKQ_H

struct workq;

typedef void (*workq_fn)(void *arg);

/* Returns NULL if no thread could be started. */
struct workq *workq_create(int threads);
void workq_destroy(struct workq *wq);
/* Queue fn(arg). Never blocks; allocation failure aborts (control path). */
void workq_submit(struct workq *wq, workq_fn fn, void *arg);

#endif
