/*
 * pool.c - worker threads running jobs from one FIFO (see pool.h).
 *
 * Owns the threads, the queue (guarded by lock) and a cache per worker.
 * A worker takes the oldest job, runs it without the lock, and exits
 * once stopping is set and the queue is empty.
 */
#include <pthread.h>
#include <stdlib.h>

#include "base/xmalloc.h"
#include "ws/pool.h"

struct worker {
	struct fm_pool *p;
	pthread_t thread;
	struct fm_bcast_cache *cache; /* owned */
};

struct fm_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a job was queued, or stopping was set */
	struct fm_job *head, *tail; /* queued jobs, oldest first */
	int stopping;
	unsigned n; /* workers started */
	struct worker *w;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct fm_pool *p = w->p;
	struct fm_job *job;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (p->head == NULL && !p->stopping)
			pthread_cond_wait(&p->cond, &p->lock);
		if ((job = p->head) == NULL)
			break;
		p->head = job->next;
		if (p->head == NULL)
			p->tail = NULL;
		pthread_mutex_unlock(&p->lock);
		job->run(job, w->cache);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct fm_pool *
fm_pool_new(unsigned n)
{
	struct fm_pool *p = xcalloc(1, sizeof(*p));

	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->w = xcalloc(n > 0 ? n : 1, sizeof(*p->w));
	for (unsigned i = 0; i < (n > 0 ? n : 1); i++) {
		struct worker *w = &p->w[p->n];

		w->p = p;
		w->cache = fm_bcast_cache_new();
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			fm_bcast_cache_free(w->cache);
			break;
		}
		p->n++;
	}
	if (p->n == 0) {
		fm_pool_free(p);
		return NULL;
	}
	return p;
}

void
fm_pool_submit(struct fm_pool *p, struct fm_job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&p->lock);
	if (p->tail != NULL)
		p->tail->next = job;
	else
		p->head = job;
	p->tail = job;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

void
fm_pool_free(struct fm_pool *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->n; i++) {
		pthread_join(p->w[i].thread, NULL);
		fm_bcast_cache_free(p->w[i].cache);
	}
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p->w);
	free(p);
}
