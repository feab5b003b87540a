/*
 * test_pool.c - the WebSocket front end's worker threads (ws/pool.c):
 * every job runs exactly once, on a worker with its own event cache, in
 * submission order with one worker, and jobs still queued when the pool
 * is freed run before fm_pool_free returns.
 */
#include "config.h" /* first: it defines _GNU_SOURCE */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>

#include "ws/pool.h"

#define NJOBS 1000

struct rec {
	struct fm_job job; /* first */
	int id;
	int runs;
	pthread_t by;
	struct fm_bcast_cache *cache;
};

static pthread_mutex_t order_lock = PTHREAD_MUTEX_INITIALIZER;
static int order[NJOBS];
static int norder;

static void
run(struct fm_job *job, struct fm_bcast_cache *cache)
{
	struct rec *r = (struct rec *)job;

	r->runs++;
	r->by = pthread_self();
	r->cache = cache;
	pthread_mutex_lock(&order_lock);
	order[norder++] = r->id;
	pthread_mutex_unlock(&order_lock);
}

static void
submit_all(struct fm_pool *p, struct rec *recs)
{
	norder = 0;
	for (int i = 0; i < NJOBS; i++) {
		recs[i].id = i;
		recs[i].runs = 0;
		recs[i].job.run = run;
		fm_pool_submit(p, &recs[i].job);
	}
}

static void
one_worker_keeps_order(void **state)
{
	static struct rec recs[NJOBS];
	struct fm_pool *p = fm_pool_new(1);

	(void)state;
	assert_non_null(p);
	submit_all(p, recs);
	fm_pool_free(p); /* runs what is still queued */
	assert_int_equal(norder, NJOBS);
	for (int i = 0; i < NJOBS; i++) {
		assert_int_equal(order[i], i);
		assert_int_equal(recs[i].runs, 1);
		assert_non_null(recs[i].cache);
		assert_ptr_equal(recs[i].cache, recs[0].cache);
		assert_true(pthread_equal(recs[i].by, recs[0].by));
		assert_false(pthread_equal(recs[i].by, pthread_self()));
	}
}

static void
each_job_once(void **state)
{
	static struct rec recs[NJOBS];
	struct fm_pool *p = fm_pool_new(3);

	(void)state;
	assert_non_null(p);
	submit_all(p, recs);
	fm_pool_free(p);
	assert_int_equal(norder, NJOBS);
	for (int i = 0; i < NJOBS; i++) {
		assert_int_equal(recs[i].runs, 1);
		assert_non_null(recs[i].cache);
		for (int k = 0; k < i; k++)
			if (pthread_equal(recs[k].by, recs[i].by))
				assert_ptr_equal(recs[k].cache, recs[i].cache);
			else
				assert_ptr_not_equal(
				    recs[k].cache, recs[i].cache);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(one_worker_keeps_order),
	    cmocka_unit_test(each_job_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
