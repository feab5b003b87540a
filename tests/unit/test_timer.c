/*
 * test_timer.c - delayed messages (timer.c) against a real broker and
 * store in a temp dir: the heap's order, delivery of small delays in
 * deliver_at order and not before, the re-appended message's properties,
 * the publish limits, and durability of the pending entries and of the
 * delivery marks across a clean close and an unclean stop
 * (fm_store_abandon) with SYNC_FLUSH; retention keeps a pending entry
 * and every later segment until its delivery, across a restart, and
 * only a full disk makes it lose one.
 *
 * Delays are a few hundred ms; waits poll the queue's max offset every
 * 5 ms with a deadline, so a loaded machine only makes a test slower.
 */
#include "config.h" /* first: it defines _GNU_SOURCE */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/config.h"
#include "base/err.h"
#include "base/xmalloc.h"
#include "broker/broker.h"
#include "broker/internal.h" /* b->st and b->timer, for the unclean stop */
#include "fixture.h"

#define TOPIC "delayed"
#define WAIT_MS 5000 /* longest wait for a delivery on a loaded machine */

static int
setup_flush(void **state, enum fm_flush flush)
{
	struct fx *f = fx_new("fmtimer");
	int created;

	f->cfg.flush_disk_type = flush;
	fx_open(f);
	assert_int_equal(fm_broker_topic_put(f->b, TOPIC, 1,
	                     FM_PERM_READ | FM_PERM_WRITE, &created, NULL),
	    0);
	*state = f;
	return 0;
}

/* ASYNC_FLUSH: publishes return at once, so delays of a few hundred ms
 * keep their order even when the disk stalls. */
static int
setup(void **state)
{
	return setup_flush(state, FM_FLUSH_ASYNC);
}

/* SYNC_FLUSH: every answered publish survives fm_store_abandon. */
static int
setup_sync(void **state)
{
	return setup_flush(state, FM_FLUSH_SYNC);
}

static int
teardown(void **state)
{
	fx_free(*state);
	return 0;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static uint64_t
queue_max(struct fx *f)
{
	uint64_t min, max;

	fm_broker_queue_range(f->b, TOPIC, 0, &min, &max);
	return max;
}

/* Poll until the queue holds want messages; returns the wall time. */
static int64_t
wait_max(struct fx *f, uint64_t want)
{
	int64_t end = fm_mono_ms() + WAIT_MS;

	while (queue_max(f) < want) {
		if (fm_mono_ms() > end)
			fail_msg("queue holds %llu messages, want %llu",
			    (unsigned long long)queue_max(f),
			    (unsigned long long)want);
		sleep_ms(5);
	}
	return fm_now_ms();
}

/* Poll until the timer knows exactly want pending entries. */
static void
wait_pending(struct fx *f, size_t want)
{
	int64_t end = fm_mono_ms() + WAIT_MS;

	while (fm_timer_pending(f->b->timer) != want) {
		if (fm_mono_ms() > end)
			fail_msg("timer has %zu pending, want %zu",
			    fm_timer_pending(f->b->timer), want);
		sleep_ms(5);
	}
}

static void
publish_at(struct fx *f, const char *body, int64_t at, struct fm_pub_result *r)
{
	struct fm_prop prop = {"region", "eu"};
	struct fm_pub_msg m;
	char *cause = NULL;
	int rc;

	memset(&m, 0, sizeof(m));
	m.body = body;
	m.body_len = strlen(body);
	m.tag = "t";
	m.props = &prop;
	m.nprops = 1;
	m.deliver_at = at;
	rc = fm_broker_publish(f->b, TOPIC, &m, 1, r, &cause);
	if (rc < 0)
		fail_msg("publish: %s", cause ? cause : "?");
	free(cause);
}

/* The value of property name in rec, or NULL. */
static const char *
prop(const struct fm_record *rec, const char *name)
{
	const char *p = rec->props, *end = p + rec->props_len;

	while (p < end) {
		const char *value = p + strlen(p) + 1;

		if (strcmp(p, name) == 0)
			return value;
		p = value + strlen(value) + 1;
	}
	return NULL;
}

static void
pull_all(struct fx *f, struct fm_pull_result *out)
{
	memset(out, 0, sizeof(*out));
	assert_int_equal(fm_broker_pull(f->b, TOPIC, 0, 0, 64, out, NULL), 0);
}

/* Unclean stop: no final index commit, as if killed after the last
 * fdatasync (SYNC_FLUSH: every answered publish is in it). */
static void
crash_broker(struct fx *f)
{
	fm_timer_stop(f->b->timer);
	fm_store_abandon(f->b->st);
	f->b->st = NULL;
	fm_broker_close(f->b);
	f->b = NULL;
}

/* ---- tests ---- */

static void
heap_order(void **state)
{
	struct fm_timer_heap h = {NULL, 0, 0};
	struct fm_timer_entry e, prev = {INT64_MIN, 0};
	uint32_t x = 12345;
	size_t n = 0;

	(void)state;
	for (uint64_t i = 0; i < 5000; i++) {
		x = x * 1103515245u + 12345u;
		fm_timer_heap_push(
		    &h, (struct fm_timer_entry){(int64_t)(x >> 20) % 500, i});
	}
	while (fm_timer_heap_pop(&h, &e)) {
		assert_true(e.at > prev.at ||
		    (e.at == prev.at && e.offset > prev.offset));
		prev = e;
		n++;
	}
	assert_int_equal(n, 5000);
	assert_int_equal(fm_timer_heap_pop(&h, &e), 0);
	fm_timer_heap_free(&h);
}

static void
due_in_order(void **state)
{
	struct fx *f = *state;
	static const int delays[] = {300, 100, 200, 0};
	static const char *const bodies[] = {"c", "a", "b", "now"};
	struct fm_pub_result r[4];
	struct fm_pull_result pr;
	int64_t t0 = fm_now_ms(), seen;
	uint64_t held;

	for (int i = 0; i < 4; i++)
		publish_at(f, bodies[i], delays[i] ? t0 + delays[i] : 0, &r[i]);
	assert_int_equal(r[0].queue_id, 0);
	assert_int_equal(r[1].queue_offset, 1); /* in the timer queue */
	assert_int_equal(r[3].queue_offset, 0); /* in its topic */
	wait_max(f, 1);
	held = queue_max(f);
	if (fm_now_ms() < t0 + 100) /* else the machine was too slow to tell */
		assert_int_equal(held, 1);
	seen = wait_max(f, 4);
	assert_true(seen >= t0 + 300);
	pull_all(f, &pr);
	assert_int_equal(pr.msgs.n, 4);
	assert_memory_equal(pr.msgs.items[0].rec.body, "now", 3);
	for (int i = 1; i < 4; i++) {
		const struct fm_record *rec = &pr.msgs.items[i].rec;
		int k = i == 1 ? 1 : i == 2 ? 2 : 0; /* a, b, c */
		char at[24];

		assert_int_equal(rec->body_len, 1);
		assert_memory_equal(rec->body, bodies[k], 1);
		assert_true(rec->store_ts >= t0 + delays[k]);
		assert_int_equal(rec->tag_len, 1);
		assert_int_equal(rec->topic_len, strlen(TOPIC));
		assert_string_equal(prop(rec, "region"), "eu");
		assert_string_equal(
		    prop(rec, "ORIGIN_MESSAGE_ID"), r[k].msg_id);
		snprintf(at, sizeof(at), "%lld", (long long)(t0 + delays[k]));
		assert_string_equal(prop(rec, "TIMER_DELIVER_MS"), at);
		assert_null(prop(rec, FM_TIMER_PROP_TOPIC));
		assert_null(prop(rec, FM_TIMER_PROP_QID));
	}
	fm_msg_list_free(&pr.msgs);
	wait_pending(f, 0);
}

static void
limits(void **state)
{
	struct fx *f = *state;
	int64_t max_ms = (int64_t)f->cfg.timer_max_delay_sec * 1000;
	struct fm_pub_msg m;
	struct fm_pub_result r;
	struct fm_topic_conf *list;
	char *cause = NULL;
	size_t n;

	memset(&m, 0, sizeof(m));
	m.body = "x";
	m.body_len = 1;
	m.deliver_at = fm_now_ms() + max_ms + 60000;
	assert_int_equal(
	    fm_broker_publish(f->b, TOPIC, &m, 1, &r, &cause), -FM_E_INVALID);
	assert_non_null(strstr(cause, "timerMaxDelaySec"));
	free(cause);
	m.deliver_at = fm_now_ms() + max_ms - 60000;
	assert_int_equal(fm_broker_publish(f->b, TOPIC, &m, 1, &r, NULL), 0);
	m.deliver_at = 0;
	assert_int_equal(
	    fm_broker_publish(f->b, FM_TIMER_TOPIC, &m, 1, &r, &cause),
	    -FM_E_INVALID);
	free(cause);
	assert_int_equal(fm_broker_topic_list(f->b, &list, &n), 0);
	for (size_t i = 0; i < n; i++)
		assert_string_not_equal(list[i].name, FM_TIMER_TOPIC);
	free(list);
	assert_int_equal(fm_timer_pending(f->b->timer), 1);
	assert_int_equal(queue_max(f), 0);
}

/* A batch mixing delays: one atomic append, each delivered on its own. */
static void
mixed_batch(void **state)
{
	struct fx *f = *state;
	struct fm_pub_msg m[3];
	struct fm_pub_result r[3];
	int64_t t0 = fm_now_ms();

	memset(m, 0, sizeof(m));
	for (int i = 0; i < 3; i++) {
		m[i].body = "m";
		m[i].body_len = 1;
	}
	m[0].deliver_at = t0 + 200;
	m[2].deliver_at = t0 + 100;
	assert_int_equal(fm_broker_publish(f->b, TOPIC, m, 3, r, NULL), 0);
	assert_int_equal(r[1].queue_offset, 0);
	assert_true(wait_max(f, 2) >= t0 + 100);
	assert_true(wait_max(f, 3) >= t0 + 200);
}

/* More entries than one scan step and one delivery batch, in two
 * publishes, with deliver_at out of order: each delivered once, in
 * (deliver_at, publish) order. */
static void
many(void **state)
{
	struct fx *f = *state;
	enum { N = 600 };
	struct fm_pub_msg *m = xcalloc(N, sizeof(*m));
	struct fm_pub_result *r = xcalloc(N, sizeof(*r));
	char(*bodies)[8] = xcalloc(N, sizeof(*bodies));
	struct fm_pull_result pr;
	char *seen = xcalloc(N, 1);
	int64_t t0 = fm_now_ms() + 500, prev_at = 0;
	uint64_t off = 0;
	int prev_i = -1;

	for (int i = 0; i < N; i++) {
		snprintf(bodies[i], sizeof(bodies[i]), "%d", i);
		m[i].body = bodies[i];
		m[i].body_len = strlen(bodies[i]);
		m[i].deliver_at = t0 + (i * 7) % 13 * 20;
	}
	/* two publishes: one would not fit the test's 64 KiB segments */
	assert_int_equal(fm_broker_publish(f->b, TOPIC, m, N / 2, r, NULL), 0);
	assert_int_equal(
	    fm_broker_publish(f->b, TOPIC, m + N / 2, N / 2, r + N / 2, NULL),
	    0);
	wait_max(f, N);
	while (off < N) {
		memset(&pr, 0, sizeof(pr));
		assert_int_equal(
		    fm_broker_pull(f->b, TOPIC, 0, off, 256, &pr, NULL), 0);
		for (size_t k = 0; k < pr.msgs.n; k++) {
			const struct fm_record *rec = &pr.msgs.items[k].rec;
			char body[8] = "";
			int i;

			assert_true(rec->body_len < sizeof(body));
			memcpy(body, rec->body, rec->body_len);
			i = atoi(body);
			assert_true(i >= 0 && i < N && !seen[i]);
			seen[i] = 1;
			assert_string_equal(
			    prop(rec, "ORIGIN_MESSAGE_ID"), r[i].msg_id);
			assert_true(m[i].deliver_at > prev_at ||
			    (m[i].deliver_at == prev_at && i > prev_i));
			prev_at = m[i].deliver_at;
			prev_i = i;
		}
		off = pr.next_offset;
		fm_msg_list_free(&pr.msgs);
	}
	wait_pending(f, 0);
	assert_int_equal(queue_max(f), N);
	free(seen);
	free(bodies);
	free(r);
	free(m);
}

/* Clean close with entries pending: the due one is delivered after the
 * reopen (overdue: at once), the far one stays pending, and nothing is
 * delivered twice across a second reopen. */
static void
durable_close(void **state)
{
	struct fx *f = *state;
	struct fm_pub_result r;
	int64_t t0 = fm_now_ms();

	publish_at(f, "soon", t0 + 150, &r);
	publish_at(f, "later", t0 + 600000, &r);
	fm_broker_close(f->b);
	sleep_ms(250);
	fx_open(f);
	wait_max(f, 1);
	wait_pending(f, 1);
	fm_broker_close(f->b);
	fx_open(f);
	wait_pending(f, 1);
	sleep_ms(100);
	assert_int_equal(queue_max(f), 1);
}

/* Unclean stop: the marks in state.db survive it (no redelivery of what
 * was delivered), and the pending entry is delivered on time. */
static void
durable_crash(void **state)
{
	struct fx *f = *state;
	struct fm_pub_result r;
	int64_t t0 = fm_now_ms(), seen;

	publish_at(f, "first", t0 + 100, &r);
	publish_at(f, "second", t0 + 700, &r);
	wait_max(f, 1);
	crash_broker(f);
	fx_open(f);
	wait_pending(f, 1);
	assert_int_equal(queue_max(f), 1);
	seen = wait_max(f, 2);
	assert_true(seen >= t0 + 700);
	wait_pending(f, 0);
	crash_broker(f);
	fx_open(f);
	wait_pending(f, 0);
	sleep_ms(100);
	assert_int_equal(queue_max(f), 2);
}

/* 100 messages of 2000 bytes to another topic (one queue): a few 64 KiB
 * segments. */
static void
fill(struct fx *f)
{
	char *body = xcalloc(1, 2000);
	struct fm_pub_result r;
	struct fm_pub_msg m;

	assert_int_equal(fm_broker_topic_put(f->b, "filler", 1,
	                     FM_PERM_READ | FM_PERM_WRITE, NULL, NULL),
	    0);
	memset(&m, 0, sizeof(m));
	memset(body, 'r', 2000);
	m.body = body;
	m.body_len = 2000;
	for (int i = 0; i < 100; i++)
		assert_int_equal(
		    fm_broker_publish(f->b, "filler", &m, 1, &r, NULL), 0);
	free(body);
}

/* Housekeeping as if 100 hours had passed (fileReservedTime is 72),
 * until nothing more goes: the log's min offset then. */
static uint64_t
expire_all(struct fx *f)
{
	struct fm_broker_info bi;
	uint64_t prev;

	do {
		fm_broker_info(f->b, &bi);
		prev = bi.store.min_offset;
		fm_store_housekeep(f->b->st, fm_now_ms() + 100ll * 3600 * 1000);
		fm_broker_info(f->b, &bi);
	} while (bi.store.min_offset != prev);
	return bi.store.min_offset;
}

/* The log offset of a published message's record. */
static uint64_t
log_offset_of(struct fx *f, const char *msg_id)
{
	struct fm_msg_list l = FM_MSG_LIST_INIT;
	uint64_t off;

	assert_int_equal(fm_broker_get_message(f->b, msg_id, &l, NULL), 0);
	off = l.items[0].rec.log_offset;
	fm_msg_list_free(&l);
	return off;
}

/* Delays longer than the retention: the oldest pending record, and every
 * segment after it, stay until it is delivered; then the next pending
 * one holds the floor, also after a restart. Queue min offsets follow
 * the log's. */
static void
kept_by_retention(void **state)
{
	struct fx *f = *state;
	struct fm_pub_result soon, far;
	struct fm_pull_result pr;
	uint64_t min = 0, at, qmin, qmax;
	int64_t end;

	publish_at(f, "soon", fm_now_ms() + 200, &soon);
	fill(f);
	publish_at(f, "far", fm_now_ms() + 600000, &far);
	fill(f);
	at = log_offset_of(f, far.msg_id);
	wait_max(f, 1);
	/* the delivery's mark lands after the re-append: poll */
	for (end = fm_mono_ms() + WAIT_MS; min == 0 && fm_mono_ms() < end;)
		if ((min = expire_all(f)) == 0)
			sleep_ms(5);
	assert_true(min > 0 && min <= at &&
	    at < min + f->cfg.mapped_file_size_commit_log);
	fm_broker_close(f->b);
	fx_open(f);
	assert_int_equal(expire_all(f), min);
	wait_pending(f, 1);
	assert_int_equal(log_offset_of(f, far.msg_id), at);
	fm_broker_queue_range(f->b, "filler", 0, &qmin, &qmax);
	assert_true(qmin > 0 && qmax == 200);
	memset(&pr, 0, sizeof(pr));
	assert_int_equal(fm_broker_pull(f->b, "filler", 0, 0, 1, &pr, NULL), 0);
	assert_true(pr.min_offset == qmin && pr.next_offset == qmin + 1);
	assert_true(pr.msgs.items[0].rec.log_offset >= min);
	fm_msg_list_free(&pr.msgs);
}

/* Only a full disk (appends refused) lets retention take a pending timer
 * record: after a reopen the scan from the watermark finds it gone,
 * skips it (logged) and carries on with what is still there. */
static void
lost_on_full_disk(void **state)
{
	struct fx *f = *state;
	struct fm_pub_result r;
	double ratio = f->cfg.disk_space_warning_level_ratio;

	publish_at(f, "far", fm_now_ms() + 600000, &r);
	fill(f);
	assert_int_equal(expire_all(f), 0);
	fm_broker_close(f->b);
	f->cfg.disk_space_warning_level_ratio = 1e-9; /* any use is "full" */
	fx_open(f);
	assert_true(expire_all(f) > 0);
	fm_broker_close(f->b);
	f->cfg.disk_space_warning_level_ratio = ratio;
	fx_open(f);
	publish_at(f, "kept", fm_now_ms() + 100, &r);
	wait_max(f, 1);
	wait_pending(f, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(heap_order),
	    cmocka_unit_test_setup_teardown(due_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(mixed_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(many, setup, teardown),
	    cmocka_unit_test_setup_teardown(durable_close, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        durable_crash, setup_sync, teardown),
	    cmocka_unit_test_setup_teardown(kept_by_retention, setup, teardown),
	    cmocka_unit_test_setup_teardown(lost_on_full_disk, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
