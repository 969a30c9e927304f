/*
 * workq.c - worker pool (see workq.h). One mutex guards the queue; workers
 * sleep on a condition variable when it is empty.
 */
#include "common/workq.h"

#include <pthread.h>
#include <stdlib.h>

#include "common/util.h"

struct workq_job {
	workq_fn fn;
	void *arg;
	struct workq_job *next;
};

struct workq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct workq_job *head, *tail;  /* protected by lock */
	int stopping;                   /* protected by lock */
	int n_threads;
	pthread_t *threads;
};

static void *worker_main(void *arg)
{
	struct workq *wq = arg;

	for (;;) {
		struct workq_job *job;

		pthread_mutex_lock(&wq->lock);
		while (!wq->head && !wq->stopping)
			pthread_cond_wait(&wq->cond, &wq->lock);
		job = wq->head;
		if (!job) {
			pthread_mutex_unlock(&wq->lock);
			return NULL;
		}
		wq->head = job->next;
		if (!wq->head)
			wq->tail = NULL;
		pthread_mutex_unlock(&wq->lock);
		job->fn(job->arg);
		free(job);
	}
}

struct workq *workq_create(int threads)
{
	struct workq *wq = xcalloc(1, sizeof(*wq));

	pthread_mutex_init(&wq->lock, NULL);
	pthread_cond_init(&wq->cond, NULL);
	wq->threads = xcalloc((size_t)threads, sizeof(*wq->threads));
	for (int i = 0; i < threads; i++) {
		if (pthread_create(&wq->threads[i], NULL, worker_main, wq) != 0)
			break;
		wq->n_threads++;
	}
	if (!wq->n_threads) {
		workq_destroy(wq);
		return NULL;
	}
	return wq;
}

void workq_destroy(struct workq *wq)
{
	if (!wq)
		return;
	pthread_mutex_lock(&wq->lock);
	wq->stopping = 1;
	pthread_cond_broadcast(&wq->cond);
	pthread_mutex_unlock(&wq->lock);
	for (int i = 0; i < wq->n_threads; i++)
		pthread_join(wq->threads[i], NULL);
	pthread_cond_destroy(&wq->cond);
	pthread_mutex_destroy(&wq->lock);
	free(wq->threads);
	free(wq);
}

void workq_submit(struct workq *wq, workq_fn fn, void *arg)
{
	struct workq_job *job = xmalloc(sizeof(*job));

	job->fn = fn;
	job->arg = arg;
	job->next = NULL;
	pthread_mutex_lock(&wq->lock);
	if (wq->tail)
		wq->tail->next = job;
	else
		wq->head = job;
	wq->tail = job;
	pthread_cond_signal(&wq->cond);
	pthread_mutex_unlock(&wq->lock);
}
