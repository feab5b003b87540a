/*
 * test_store.c - the store facade over a real commit log in a temp dir:
 * appends and reads across topics, queues and batches; concurrent
 * appenders get contiguous per-queue offsets in log order; keys, time
 * lookups and notify; identical answers after a clean reopen, after
 * index.db is deleted (consume queue rebuild) and after an unclean stop;
 * topic deletion that survives restarts; retention and -FM_E_GONE;
 * the retention floor of the timer queue: its records from the delivery
 * watermark on stay, with every later segment, across a reopen, until a
 * mark moves the watermark, and the queues' min offsets follow the log.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/err.h"
#include "store/store.h"

#define MAXQ 8

struct fixture {
	char dir[64];
	struct fm_store_options opt;
	struct fm_store *st;
	pthread_mutex_t lock;
	uint64_t notified[MAXQ]; /* last max notified for topic "a" */
};

static void
on_notify(void *arg, const char *topic, uint32_t q, uint64_t max)
{
	struct fixture *f = arg;

	pthread_mutex_lock(&f->lock);
	if (strcmp(topic, "a") == 0 && q < MAXQ)
		f->notified[q] = max;
	pthread_mutex_unlock(&f->lock);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	const char *tmp = getenv("TMPDIR");

	snprintf(f->dir, sizeof f->dir, "%s/fmst.XXXXXX", tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	pthread_mutex_init(&f->lock, NULL);
	f->opt.root = f->dir;
	f->opt.segment_size = 64 * 1024;
	f->opt.sync_flush = 1;
	f->opt.flush_interval_ms = 20;
	f->opt.disk_warning_ratio = 1.0;
	f->opt.notify = on_notify;
	f->opt.notify_arg = f;
	assert_int_equal(fm_store_open(&f->opt, &f->st), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[160];

	fm_store_close(f->st);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	pthread_mutex_destroy(&f->lock);
	free(f);
	return 0;
}

static void
reopen(struct fixture *f, int abandon)
{
	if (abandon)
		fm_store_abandon(f->st);
	else
		fm_store_close(f->st);
	f->st = NULL;
	assert_int_equal(fm_store_open(&f->opt, &f->st), 0);
}

static void
mkrec(struct fm_record *r, const char *topic, uint32_t q, const char *body,
    const char *keys, size_t keys_len)
{
	memset(r, 0, sizeof *r);
	r->topic = topic;
	r->topic_len = (uint16_t)strlen(topic);
	r->queue_id = q;
	r->tag = "tg";
	r->tag_len = 2;
	r->keys = keys;
	r->keys_len = (uint32_t)keys_len;
	r->body = body;
	r->body_len = (uint32_t)strlen(body);
	r->born_ts = 1;
}

static void
put(struct fixture *f, const char *topic, uint32_t q, const char *body,
    const char *keys, size_t keys_len)
{
	struct fm_record r;

	mkrec(&r, topic, q, body, keys, keys_len);
	assert_int_equal(fm_store_append(f->st, &r, 1), 0);
}

/* Every entry of a queue, checked against the log. */
static size_t
check_queue(struct fixture *f, const char *topic, uint32_t q,
    struct fm_cq_entry *out, size_t cap)
{
	struct fm_buf buf = FM_BUF_INIT;
	struct fm_record rec;
	uint64_t min, max;
	size_t n, total = 0;

	fm_store_queue_range(f->st, topic, q, &min, &max);
	while (total < cap) {
		assert_int_equal(fm_store_cq_read(f->st, topic, q, min + total,
		                     out + total, 7, &n),
		    0);
		if (n == 0)
			break;
		total += n;
	}
	assert_true(min + total == max);
	for (size_t i = 0; i < total; i++) {
		assert_int_equal(
		    fm_store_read(f->st, out[i].log_offset, &buf, &rec), 0);
		assert_true(rec.queue_offset == min + i);
		assert_int_equal(rec.queue_id, q);
		assert_int_equal(rec.size, out[i].size);
		assert_true(rec.topic_len == strlen(topic) &&
		    memcmp(rec.topic, topic, rec.topic_len) == 0);
		if (i > 0)
			assert_true(out[i].log_offset > out[i - 1].log_offset);
	}
	fm_buf_free(&buf);
	return total;
}

static void
test_append_read(void **state)
{
	struct fixture *f = *state;
	struct fm_record batch[5];
	struct fm_cq_entry e[64];
	uint64_t min, max;
	size_t n;

	for (int i = 0; i < 10; i++) {
		put(f, "a", (uint32_t)(i % 3), "hello", NULL, 0);
		put(f, "b", 0, "world", NULL, 0);
	}
	for (int i = 0; i < 5; i++)
		mkrec(&batch[i], i % 2 ? "a" : "b", 1, "batched", NULL, 0);
	assert_int_equal(fm_store_append(f->st, batch, 5), 0);
	assert_true(batch[1].queue_offset == 3 && batch[3].queue_offset == 4);
	assert_true(batch[2].queue_offset == 1);
	assert_int_equal(check_queue(f, "a", 0, e, 64), 4);
	assert_int_equal(check_queue(f, "a", 1, e, 64), 5);
	assert_int_equal(check_queue(f, "a", 2, e, 64), 3);
	assert_int_equal(check_queue(f, "b", 0, e, 64), 10);
	assert_int_equal(check_queue(f, "b", 1, e, 64), 3);
	fm_store_queue_range(f->st, "nope", 0, &min, &max);
	assert_true(min == 0 && max == 0);
	assert_int_equal(fm_store_cq_read(f->st, "a", 0, 4, e, 8, &n), 0);
	assert_int_equal(n, 0);
	/* appends return once readable, so notify has run or is running */
	for (int i = 0; i < 100; i++) {
		pthread_mutex_lock(&f->lock);
		max = f->notified[1];
		pthread_mutex_unlock(&f->lock);
		if (max == 5)
			break;
		usleep(10000);
	}
	assert_true(max == 5);
}

struct worker {
	struct fixture *f;
	int id;
};

#define WORKERS 8
#define PER_WORKER 150

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct fm_record r;
	char body[32];

	for (int i = 0; i < PER_WORKER; i++) {
		snprintf(body, sizeof body, "w%d-%d", w->id, i);
		mkrec(&r, "c", (uint32_t)((w->id + i) % 4), body, NULL, 0);
		if (fm_store_append(w->f->st, &r, 1) != 0)
			abort();
	}
	return NULL;
}

static void
run_concurrent(struct fixture *f)
{
	pthread_t t[WORKERS];
	struct worker w[WORKERS];
	struct fm_cq_entry *e = calloc(WORKERS * PER_WORKER, sizeof *e);
	size_t total = 0;

	for (int i = 0; i < WORKERS; i++) {
		w[i].f = f;
		w[i].id = i;
		assert_int_equal(
		    pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < WORKERS; i++)
		pthread_join(t[i], NULL);
	for (uint32_t q = 0; q < 4; q++)
		total += check_queue(f, "c", q, e, WORKERS * PER_WORKER);
	assert_int_equal(total, WORKERS * PER_WORKER);
	free(e);
}

static void
test_concurrent_sync(void **state)
{
	run_concurrent(*state);
}

static void
test_concurrent_async(void **state)
{
	struct fixture *f = *state;

	f->opt.sync_flush = 0;
	reopen(f, 0);
	run_concurrent(f);
}

/* What a rebuild must reproduce: ranges, entries, keys, time answers. */
struct snap {
	uint64_t min[3], max[3];
	struct fm_cq_entry e[3][400];
	uint64_t keys[16];
	size_t nkeys;
	uint64_t at[3];
};

static void
take(struct fixture *f, struct snap *s, int64_t ts)
{
	memset(s, 0, sizeof *s);
	for (uint32_t q = 0; q < 3; q++) {
		fm_store_queue_range(f->st, "a", q, &s->min[q], &s->max[q]);
		check_queue(f, "a", q, s->e[q], 400);
		assert_int_equal(
		    fm_store_queue_offset_at(f->st, "a", q, ts, &s->at[q]), 0);
	}
	assert_int_equal(
	    fm_store_find_key(f->st, "a", "k1", s->keys, 16, &s->nkeys), 0);
}

/* Field by field: struct padding is not part of the answer. */
static void
same(const struct snap *a, const struct snap *b)
{
	for (int q = 0; q < 3; q++) {
		assert_true(a->min[q] == b->min[q] && a->max[q] == b->max[q]);
		assert_true(a->at[q] == b->at[q]);
		for (uint64_t i = 0; i < a->max[q] - a->min[q]; i++) {
			assert_true(
			    a->e[q][i].log_offset == b->e[q][i].log_offset);
			assert_int_equal(a->e[q][i].size, b->e[q][i].size);
			assert_true(a->e[q][i].tag_hash == b->e[q][i].tag_hash);
		}
	}
	assert_int_equal(a->nkeys, b->nkeys);
	assert_memory_equal(a->keys, b->keys, a->nkeys * sizeof a->keys[0]);
}

static void
fill(struct fixture *f, int64_t *mid_ts)
{
	static const char keys[] = "k1\0other";
	char body[64];

	for (int i = 0; i < 600; i++) {
		if (i == 300) {
			usleep(20000);
			*mid_ts = fm_now_ms();
			usleep(20000);
		}
		snprintf(body, sizeof body, "message number %d", i);
		if (i % 50 == 0)
			put(f, "a", (uint32_t)(i % 3), body, keys, sizeof keys);
		else
			put(f, "a", (uint32_t)(i % 3), body, NULL, 0);
	}
}

static void
test_keys_time(void **state)
{
	struct fixture *f = *state;
	struct fm_buf buf = FM_BUF_INIT;
	struct fm_record rec;
	uint64_t offs[20], qo;
	size_t n;
	int64_t mid;

	fill(f, &mid);
	assert_int_equal(fm_store_find_key(f->st, "a", "k1", offs, 20, &n), 0);
	assert_int_equal(n, 12);
	for (size_t i = 1; i < n; i++)
		assert_true(offs[i] < offs[i - 1]);
	assert_int_equal(
	    fm_store_find_key(f->st, "a", "other", offs, 3, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(fm_store_find_key(f->st, "b", "k1", offs, 3, &n), 0);
	assert_int_equal(n, 0);
	/* message 300 went to queue 0 at offset 100: the first after mid */
	assert_int_equal(fm_store_queue_offset_at(f->st, "a", 0, mid, &qo), 0);
	assert_true(qo == 100);
	assert_int_equal(fm_store_queue_offset_at(f->st, "a", 0, 0, &qo), 0);
	assert_true(qo == 0);
	assert_int_equal(
	    fm_store_queue_offset_at(f->st, "a", 0, fm_now_ms() + 100000, &qo),
	    0);
	assert_true(qo == 200);
	reopen(f, 0);
	assert_int_equal(fm_store_queue_offset_at(f->st, "a", 0, mid, &qo), 0);
	assert_true(qo == 100);
	{
		struct fm_cq_entry e;

		assert_int_equal(
		    fm_store_cq_read(f->st, "a", 0, 100, &e, 1, &n), 0);
		assert_int_equal(
		    fm_store_read(f->st, e.log_offset, &buf, &rec), 0);
		assert_true(rec.store_ts >= mid);
	}
	fm_buf_free(&buf);
}

static void
rm_index(struct fixture *f)
{
	char path[160];

	snprintf(path, sizeof path, "%s/index.db", f->dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/index.db-wal", f->dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/index.db-shm", f->dir);
	unlink(path);
}

static void
test_reopen_rebuild(void **state)
{
	struct fixture *f = *state;
	struct snap *a = malloc(sizeof *a), *b = malloc(sizeof *b);
	struct fm_store_stats ss;
	int64_t mid;

	fill(f, &mid);
	take(f, a, mid);
	assert_int_equal(a->nkeys, 12);

	reopen(f, 0);
	take(f, b, mid);
	same(a, b);

	/* consume queue rebuild from the log alone */
	fm_store_close(f->st);
	rm_index(f);
	assert_int_equal(fm_store_open(&f->opt, &f->st), 0);
	take(f, b, mid);
	same(a, b);

	/* unclean stop: the log recovers, the index replays */
	put(f, "a", 0, "after", NULL, 0);
	a->max[0]++;
	reopen(f, 1);
	take(f, b, mid);
	assert_true(b->max[0] == a->max[0]);
	a->at[0] = b->at[0];
	b->max[0]--;
	a->max[0]--;
	same(a, b);
	a->max[0]++;
	put(f, "a", 0, "more", NULL, 0);
	fm_store_queue_range(f->st, "a", 0, &b->min[0], &b->max[0]);
	assert_true(b->max[0] == a->max[0] + 1);
	fm_store_stats(f->st, &ss);
	assert_true(
	    ss.write_offset > 0 && ss.segments >= 1 && ss.log_bytes > 0);
	assert_true(ss.dispatched_offset == ss.write_offset);
	assert_true(ss.indexed_offset <= ss.flushed_offset);
	assert_true(ss.writable);
	free(a);
	free(b);
}

/* ASYNC_FLUSH: a clean close flushes before its last index commit, so
 * the index covers the whole log and the next open replays nothing. */
static void
test_clean_close_async(void **state)
{
	struct fixture *f = *state;
	struct fm_store_stats s;

	reopen(f, 0);
	fm_store_close(f->st);
	f->opt.sync_flush = 0;
	f->opt.flush_interval_ms = 60000;
	assert_int_equal(fm_store_open(&f->opt, &f->st), 0);
	for (int i = 0; i < 50; i++)
		put(f, "a", (uint32_t)i % 3, "async", "k\0", 2);
	reopen(f, 0);
	fm_store_stats(f->st, &s);
	assert_true(s.write_offset > 0);
	assert_true(s.indexed_offset == s.write_offset);
	assert_true(s.dispatched_offset == s.write_offset);
}

static void
test_topic_delete(void **state)
{
	struct fixture *f = *state;
	struct fm_topic_conf tc = {"a", 3, 6, 1}, got;
	struct fm_cq_entry e[8];
	uint64_t min, max, offs[4];
	size_t n;

	assert_int_equal(fm_store_topic_put(f->st, &tc), 0);
	for (int i = 0; i < 5; i++)
		put(f, "a", 0, "old", "k\0", 2);
	put(f, "keep", 0, "x", "k\0", 2);
	assert_int_equal(fm_store_topic_delete(f->st, "a"), 0);
	assert_int_equal(fm_store_topic_get(f->st, "a", &got), -FM_E_NOT_FOUND);
	fm_store_queue_range(f->st, "a", 0, &min, &max);
	assert_true(max == 0);
	assert_int_equal(fm_store_topic_put(f->st, &tc), 0);
	put(f, "a", 0, "new", "k\0", 2);
	assert_int_equal(fm_store_find_key(f->st, "a", "k", offs, 4, &n), 0);
	assert_int_equal(n, 1);
	for (int round = 0; round < 3; round++) {
		if (round == 1)
			reopen(f, 0);
		if (round == 2) {
			fm_store_close(f->st);
			rm_index(f);
			assert_int_equal(fm_store_open(&f->opt, &f->st), 0);
		}
		fm_store_queue_range(f->st, "a", 0, &min, &max);
		assert_true(min == 0 && max == 1);
		assert_int_equal(check_queue(f, "a", 0, e, 8), 1);
		assert_int_equal(
		    fm_store_find_key(f->st, "a", "k", offs, 4, &n), 0);
		assert_int_equal(n, 1);
		assert_int_equal(
		    fm_store_find_key(f->st, "keep", "k", offs, 4, &n), 0);
		assert_int_equal(n, 1);
	}
	assert_int_equal(fm_store_topic_delete(f->st, "zzz"), -FM_E_NOT_FOUND);
}

static void
test_retention(void **state)
{
	struct fixture *f = *state;
	char body[1024];
	struct fm_cq_entry e[4];
	struct fm_store_stats before, after;
	uint64_t min, max, min0, offs[4];
	size_t n;

	memset(body, 'x', sizeof body - 1);
	body[sizeof body - 1] = '\0';
	for (int i = 0; i < 400; i++)
		put(f, "a", (uint32_t)(i % 2), body, "rk\0", 3);
	fm_store_stats(f->st, &before);
	assert_true(before.segments > 4);
	fm_store_housekeep(f->st, fm_now_ms() + 1000ll * 3600 * 1000);
	fm_store_stats(f->st, &after);
	assert_true(after.min_offset > before.min_offset);
	assert_true(after.segments == before.segments - 2);
	fm_store_queue_range(f->st, "a", 0, &min0, &max);
	assert_true(min0 > 0 && max == 200);
	assert_int_equal(
	    fm_store_cq_read(f->st, "a", 0, 0, e, 4, &n), -FM_E_GONE);
	assert_int_equal(fm_store_cq_read(f->st, "a", 0, min0, e, 4, &n), 0);
	assert_int_equal(n, 4);
	assert_true(e[0].log_offset >= after.min_offset);
	assert_int_equal(fm_store_find_key(f->st, "a", "rk", offs, 4, &n), 0);
	assert_int_equal(n, 4);
	/* the same after a reopen and after a rebuild */
	reopen(f, 0);
	fm_store_queue_range(f->st, "a", 0, &min, &max);
	assert_true(min == min0 && max == 200);
	fm_store_close(f->st);
	rm_index(f);
	assert_int_equal(fm_store_open(&f->opt, &f->st), 0);
	fm_store_queue_range(f->st, "a", 0, &min, &max);
	assert_true(min == min0 && max == 200);
	assert_int_equal(fm_store_cq_read(f->st, "a", 0, min0, e, 4, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(
	    fm_store_cq_read(f->st, "a", 0, min0 - 1, e, 4, &n), -FM_E_GONE);
	put(f, "a", 0, "next", NULL, 0);
	fm_store_queue_range(f->st, "a", 0, &min, &max);
	assert_true(max == 201);
}

/* Housekeeping as if 1000 hours had passed, pass after pass until
 * nothing more goes; the log's min offset then. */
static uint64_t
expire_all(struct fixture *f)
{
	struct fm_store_stats ss;
	uint64_t prev;

	do {
		fm_store_stats(f->st, &ss);
		prev = ss.min_offset;
		fm_store_housekeep(f->st, fm_now_ms() + 1000ll * 3600 * 1000);
		fm_store_stats(f->st, &ss);
	} while (ss.min_offset != prev);
	return ss.min_offset;
}

static void
test_retention_floor(void **state)
{
	struct fixture *f = *state;
	char body[1024];
	struct fm_record r[2];
	struct fm_store_stats ss;
	struct fm_cq_entry e[1];
	uint64_t min, max, low, *marks;
	size_t n;

	memset(body, 'x', sizeof body - 1);
	body[sizeof body - 1] = '\0';
	fm_store_close(f->st);
	f->opt.timer_topic = "tq";
	assert_int_equal(fm_store_open(&f->opt, &f->st), 0);
	/* entry 0 early, entry 1 in a middle segment */
	mkrec(&r[0], "tq", 0, "first", NULL, 0);
	assert_int_equal(fm_store_append(f->st, &r[0], 1), 0);
	for (int i = 0; i < 300; i++) {
		if (i == 150) {
			mkrec(&r[1], "tq", 0, "second", NULL, 0);
			assert_int_equal(fm_store_append(f->st, &r[1], 1), 0);
		}
		put(f, "a", 0, body, NULL, 0);
	}
	fm_store_stats(f->st, &ss);
	assert_true(r[1].log_offset >= 2 * f->opt.segment_size &&
	    r[1].log_offset + 2 * f->opt.segment_size < ss.write_offset);
	assert_int_equal(expire_all(f), 0);
	reopen(f, 1);
	assert_int_equal(expire_all(f), 0);
	/* entry 0 delivered: the floor moves to entry 1's segment */
	assert_int_equal(fm_store_timer_mark(f->st, NULL, 0, 1), 0);
	min = expire_all(f);
	assert_true(min > 0 && min <= r[1].log_offset &&
	    r[1].log_offset < min + f->opt.segment_size);
	reopen(f, 0);
	assert_int_equal(expire_all(f), min);
	assert_int_equal(fm_store_timer_load(f->st, &low, &marks, &n), 0);
	assert_true(low == 1 && n == 0);
	free(marks);
	/* the queues' min offsets follow the log's */
	fm_store_queue_range(f->st, "tq", 0, &low, &max);
	assert_true(low == 1 && max == 2);
	fm_store_queue_range(f->st, "a", 0, &low, &max);
	assert_true(low > 0 && max == 300);
	assert_int_equal(fm_store_cq_read(f->st, "a", 0, low, e, 1, &n), 0);
	assert_true(n == 1 && e[0].log_offset >= min);
	assert_int_equal(
	    fm_store_cq_read(f->st, "a", 0, low - 1, e, 1, &n), -FM_E_GONE);
	/* everything delivered: only the segment being written stays */
	assert_int_equal(fm_store_timer_mark(f->st, NULL, 0, 2), 0);
	fm_store_stats(f->st, &ss);
	assert_true(expire_all(f) > ss.write_offset - f->opt.segment_size);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_append_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_concurrent_sync, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_concurrent_async, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keys_time, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_reopen_rebuild, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_clean_close_async, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_topic_delete, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_retention_floor, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
