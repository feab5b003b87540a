/*
 * test_waiters.c - the long-poll waiters on their own, fed with fake
 * notifications: data wakes, timeout order, FM_ANY_QUEUE, cancel before
 * and after firing, shutdown, and exactly-once firing under many threads.
 * Links waiters.c and the base library only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/clock.h"
#include "broker/waiters.h"

#define MAXEV 64

/* What fired, in order, so tests can wait for it without sleeping blind. */
struct recorder {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int tags[MAXEV];
	enum fm_wake why[MAXEV];
	size_t n;
};

struct slot {
	struct recorder *r;
	int tag;
};

static void
rec_init(struct recorder *r)
{
	pthread_mutex_init(&r->lock, NULL);
	fm_cond_init_monotonic(&r->cond);
	r->n = 0;
}

static void
rec_destroy(struct recorder *r)
{
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
}

static void
rec_cb(void *arg, enum fm_wake why)
{
	struct slot *s = arg;
	struct recorder *r = s->r;

	pthread_mutex_lock(&r->lock);
	if (r->n < MAXEV) {
		r->tags[r->n] = s->tag;
		r->why[r->n] = why;
	}
	r->n++;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

/* Wait (at most 3 s) until n events were recorded; returns the count. */
static size_t
rec_wait(struct recorder *r, size_t n)
{
	struct timespec ts;
	size_t got;

	fm_deadline_ts(&ts, 3000);
	pthread_mutex_lock(&r->lock);
	while (r->n < n && pthread_cond_timedwait(&r->cond, &r->lock, &ts) == 0)
		;
	got = r->n;
	pthread_mutex_unlock(&r->lock);
	return got;
}

static size_t
rec_count(struct recorder *r)
{
	size_t n;

	pthread_mutex_lock(&r->lock);
	n = r->n;
	pthread_mutex_unlock(&r->lock);
	return n;
}

static int64_t
far(void)
{
	return fm_mono_ms() + 60000;
}

static void
data_wake(void **state)
{
	struct fm_waiters *ws;
	struct recorder r;
	struct slot s = {&r, 1};

	rec_init(&r);
	assert_int_equal(fm_waiters_new(&ws), 0);
	fm_waiters_add(ws, "t", 1, 5, far(), rec_cb, &s);
	assert_int_equal(fm_waiters_parked(ws), 1);
	fm_waiters_notify(ws, "t", 1, 5); /* not beyond offset 5 */
	fm_waiters_notify(ws, "t", 0, 10); /* other queue */
	fm_waiters_notify(ws, "u", 1, 10); /* other topic */
	assert_int_equal(rec_count(&r), 0);
	fm_waiters_notify(ws, "t", 1, 6);
	assert_int_equal(rec_count(&r), 1);
	assert_int_equal(r.why[0], FM_WAKE_DATA);
	assert_int_equal(fm_waiters_parked(ws), 0);
	fm_waiters_notify(ws, "t", 1, 7);
	assert_int_equal(rec_count(&r), 1);
	fm_waiters_free(ws);
	assert_int_equal(rec_count(&r), 1);
	rec_destroy(&r);
}

static void
timeout_order(void **state)
{
	struct fm_waiters *ws;
	struct recorder r;
	struct slot s[4] = {{&r, 300}, {&r, 100}, {&r, 200}, {&r, 150}};
	int64_t now = fm_mono_ms();
	int64_t start;

	rec_init(&r);
	assert_int_equal(fm_waiters_new(&ws), 0);
	for (int i = 0; i < 4; i++)
		fm_waiters_add(ws, "t", 0, 0, now + s[i].tag, rec_cb, &s[i]);
	start = fm_mono_ms();
	assert_int_equal(rec_wait(&r, 4), 4);
	assert_true(fm_mono_ms() - start < 2000);
	assert_true(fm_mono_ms() >= now + 300);
	assert_int_equal(r.tags[0], 100);
	assert_int_equal(r.tags[1], 150);
	assert_int_equal(r.tags[2], 200);
	assert_int_equal(r.tags[3], 300);
	for (int i = 0; i < 4; i++)
		assert_int_equal(r.why[i], FM_WAKE_TIMEOUT);
	fm_waiters_free(ws);
	rec_destroy(&r);
}

static void
past_deadline_fires_at_once(void **state)
{
	struct fm_waiters *ws;
	struct recorder r;
	struct slot s = {&r, 1};

	rec_init(&r);
	assert_int_equal(fm_waiters_new(&ws), 0);
	fm_waiters_add(ws, "t", 0, 0, fm_mono_ms() - 10, rec_cb, &s);
	assert_int_equal(rec_wait(&r, 1), 1);
	assert_int_equal(r.why[0], FM_WAKE_TIMEOUT);
	fm_waiters_free(ws);
	rec_destroy(&r);
}

static void
any_queue(void **state)
{
	struct fm_waiters *ws;
	struct recorder r;
	struct slot a = {&r, 1}, b = {&r, 2};

	rec_init(&r);
	assert_int_equal(fm_waiters_new(&ws), 0);
	fm_waiters_add(ws, "t", FM_ANY_QUEUE, 3, far(), rec_cb, &a);
	fm_waiters_add(ws, "t", 2, 0, far(), rec_cb, &b);
	fm_waiters_notify(ws, "t", 7, 3);
	assert_int_equal(rec_count(&r), 0);
	fm_waiters_notify(ws, "t", 7, 4);
	assert_int_equal(rec_count(&r), 1);
	assert_int_equal(r.tags[0], 1);
	assert_int_equal(fm_waiters_parked(ws), 1);
	fm_waiters_free(ws);
	assert_int_equal(rec_count(&r), 2);
	assert_int_equal(r.why[1], FM_WAKE_SHUTDOWN);
	rec_destroy(&r);
}

static void
cancel_before_and_after(void **state)
{
	struct fm_waiters *ws;
	struct recorder r;
	struct slot a = {&r, 1}, b = {&r, 2};
	uint64_t ia, ib;

	rec_init(&r);
	assert_int_equal(fm_waiters_new(&ws), 0);
	ia = fm_waiters_add(ws, "t", 0, 0, far(), rec_cb, &a);
	ib = fm_waiters_add(ws, "t", 0, 0, far(), rec_cb, &b);
	assert_true(ia > 0 && ib > ia);
	assert_int_equal(fm_waiters_cancel(ws, ia), 1);
	assert_int_equal(fm_waiters_cancel(ws, ia), 0);
	fm_waiters_notify(ws, "t", 0, 1);
	assert_int_equal(rec_count(&r), 1);
	assert_int_equal(r.tags[0], 2);
	assert_int_equal(fm_waiters_cancel(ws, ib), 0);
	assert_int_equal(fm_waiters_cancel(ws, 999999), 0);
	fm_waiters_free(ws);
	assert_int_equal(rec_count(&r), 1);
	rec_destroy(&r);
}

static void
fire_once(void **state)
{
	struct fm_waiters *ws;
	struct recorder r;
	struct slot a = {&r, 1};
	uint64_t id;

	rec_init(&r);
	assert_int_equal(fm_waiters_new(&ws), 0);
	id = fm_waiters_add(ws, "t", 0, 0, far(), rec_cb, &a);
	assert_int_equal(fm_waiters_fire(ws, id, FM_WAKE_DATA), 1);
	assert_int_equal(fm_waiters_fire(ws, id, FM_WAKE_DATA), 0);
	assert_int_equal(fm_waiters_cancel(ws, id), 0);
	assert_int_equal(rec_count(&r), 1);
	fm_waiters_free(ws);
	rec_destroy(&r);
}

static void
shutdown_fires_all(void **state)
{
	struct fm_waiters *ws;
	struct recorder r;
	struct slot s[40];

	rec_init(&r);
	assert_int_equal(fm_waiters_new(&ws), 0);
	for (int i = 0; i < 40; i++) {
		s[i].r = &r;
		s[i].tag = i;
		fm_waiters_add(ws, i % 2 ? "a" : "b", (uint32_t)i, 0, far() + i,
		    rec_cb, &s[i]);
	}
	fm_waiters_shutdown(ws);
	assert_int_equal(rec_count(&r), 40);
	for (int i = 0; i < 40; i++)
		assert_int_equal(r.why[i], FM_WAKE_SHUTDOWN);
	assert_int_equal(fm_waiters_parked(ws), 0);
	fm_waiters_add(ws, "a", 0, 0, far(), rec_cb, &s[0]);
	assert_int_equal(rec_count(&r), 41);
	fm_waiters_free(ws);
	assert_int_equal(rec_count(&r), 41);
	rec_destroy(&r);
}

/* ---- many threads: every watch fires or is cancelled, exactly once ---- */

#define NTHREADS 6
#define PER_THREAD 2000

struct stress {
	struct fm_waiters *ws;
	atomic_int fired[NTHREADS * PER_THREAD];
	atomic_int cancelled;
	atomic_int stop;
};

struct stress_arg {
	struct stress *st;
	int t;
};

static struct stress *g_stress;

static void
stress_cb(void *arg, enum fm_wake why)
{
	int i = (int)(intptr_t)arg;

	atomic_fetch_add(&g_stress->fired[i], 1);
}

static void *
stress_adder(void *p)
{
	struct stress_arg *a = p;
	struct stress *st = a->st;
	char topic[8] = {'t', (char)('0' + a->t % 3), 0};

	for (int k = 0; k < PER_THREAD; k++) {
		int i = a->t * PER_THREAD + k;
		int64_t dl = fm_mono_ms() + (k % 4 == 0 ? 1 : 200);
		uint64_t id = fm_waiters_add(st->ws, topic,
		    k % 5 == 0 ? FM_ANY_QUEUE : (uint32_t)(k % 3), (uint64_t)k,
		    dl, stress_cb, (void *)(intptr_t)i);

		if (k % 7 == 0 && fm_waiters_cancel(st->ws, id))
			atomic_fetch_add(&st->cancelled, 1);
	}
	return NULL;
}

static void *
stress_notifier(void *p)
{
	struct stress *st = p;
	uint64_t max = 0;

	while (!atomic_load(&st->stop)) {
		char topic[8] = {'t', (char)('0' + max % 3), 0};

		fm_waiters_notify(st->ws, topic, (uint32_t)(max % 3), max);
		max = (max + 97) % (PER_THREAD + 1);
	}
	return NULL;
}

static void
many_concurrent(void **state)
{
	struct stress *st = calloc(1, sizeof(*st));
	pthread_t adders[NTHREADS], notifier;
	struct stress_arg args[NTHREADS];
	int total = 0;

	assert_non_null(st);
	g_stress = st;
	assert_int_equal(fm_waiters_new(&st->ws), 0);
	assert_int_equal(
	    pthread_create(&notifier, NULL, stress_notifier, st), 0);
	for (int t = 0; t < NTHREADS; t++) {
		args[t].st = st;
		args[t].t = t;
		assert_int_equal(
		    pthread_create(&adders[t], NULL, stress_adder, &args[t]),
		    0);
	}
	for (int t = 0; t < NTHREADS; t++)
		pthread_join(adders[t], NULL);
	atomic_store(&st->stop, 1);
	pthread_join(notifier, NULL);
	fm_waiters_free(st->ws);
	for (int i = 0; i < NTHREADS * PER_THREAD; i++) {
		int f = atomic_load(&st->fired[i]);

		assert_true(f == 0 || f == 1);
		total += f;
	}
	assert_int_equal(
	    total + atomic_load(&st->cancelled), NTHREADS * PER_THREAD);
	free(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(data_wake),
	    cmocka_unit_test(timeout_order),
	    cmocka_unit_test(past_deadline_fires_at_once),
	    cmocka_unit_test(any_queue),
	    cmocka_unit_test(cancel_before_and_after),
	    cmocka_unit_test(fire_once),
	    cmocka_unit_test(shutdown_fires_all),
	    cmocka_unit_test(many_concurrent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
