/*
 * pool.h - worker threads for the WebSocket front end's store reads, so
 * that a read from a slow disk (a subscriber catching up from an old
 * cursor, a group receive) stalls one worker, not every WebSocket.
 *
 * Owns its threads, its queue of jobs and one broadcast event cache per
 * worker (bcast.h: caches are per thread). Does not own the jobs.
 *
 * Invariants: jobs start in the order they were submitted; every job
 * submitted before fm_pool_free runs before it returns.
 */
#ifndef FM_WS_POOL_H
#define FM_WS_POOL_H

#include "ws/bcast.h"

struct fm_pool;

/* A job: run(job, cache) on a worker, with that worker's event cache.
 * Embedded in the caller's struct; next is the pool's. */
struct fm_job {
	struct fm_job *next;
	void (*run)(struct fm_job *job, struct fm_bcast_cache *cache);
};

/* n worker threads (at least 1). NULL when no thread could start. */
struct fm_pool *fm_pool_new(unsigned n);
/* Run job on a worker (any thread). */
void fm_pool_submit(struct fm_pool *p, struct fm_job *job);
/* Run what is queued, stop the threads, free. NULL is a no-op. */
void fm_pool_free(struct fm_pool *p);

#endif
