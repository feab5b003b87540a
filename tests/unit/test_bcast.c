/*
 * test_bcast.c - the broadcast reader (ws/bcast.c) and its hubs
 * (ws/hub.c) against a real broker in a temp dir: cursors resume exactly
 * (nothing twice, nothing lost), malformed cursors are refused, a cursor
 * older than what retention kept yields a gap event before the messages,
 * armings wake once (data or idle) and never after a disarm, and a hub
 * hands every new event to each member once, in order, and leaves an
 * evicted or departing member exactly where it stopped.
 */
#include "config.h" /* first: it defines _GNU_SOURCE */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/config.h"
#include "base/err.h"
#include "base/xmalloc.h"
#include "broker/broker.h"
#include "broker/internal.h" /* b->st, for retention */
#include "ws/bcast.h"
#include "ws/hub.h"
#include "fixture.h"

#define MAX_EVENTS 512

/* Events collected by emit(): JSON text and cursor of each. */
struct events {
	char *json[MAX_EVENTS];
	char *cursor[MAX_EVENTS];
	size_t n;
};

static int
setup(void **state)
{
	struct fx *f = fx_new("fmbcast");

	fx_open(f);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	fx_free(*state);
	return 0;
}

static void
emit(void *arg, const char *json, size_t len, const char *cursor)
{
	struct events *e = arg;

	assert_true(e->n < MAX_EVENTS);
	e->json[e->n] = xstrndup(json, len);
	e->cursor[e->n++] = xstrdup(cursor);
}

static void
events_free(struct events *e)
{
	for (size_t i = 0; i < e->n; i++) {
		free(e->json[i]);
		free(e->cursor[i]);
	}
	e->n = 0;
}

/* The msgId of an event, or "" for a gap. */
static void
msg_id(const char *json, char out[FM_MSGID_LEN + 1])
{
	const char *p = strstr(json, "\"msgId\":\"");

	out[0] = '\0';
	if (p != NULL)
		snprintf(out, FM_MSGID_LEN + 1, "%s", p + 9);
}

/* ---- waking ---- */

struct wake {
	pthread_mutex_t m;
	pthread_cond_t c;
	int count;
	enum fm_bcast_why why;
};

static void
on_wake(void *arg, enum fm_bcast_why why)
{
	struct wake *w = arg;

	pthread_mutex_lock(&w->m);
	w->count++;
	w->why = why;
	pthread_cond_broadcast(&w->c);
	pthread_mutex_unlock(&w->m);
}

static void
on_broker_wake(void *arg, enum fm_wake why)
{
	on_wake(arg, why == FM_WAKE_DATA ? FM_BCAST_DATA : FM_BCAST_IDLE);
}

/* Waits up to ms for a wake; returns how many came. */
static int
wake_wait(struct wake *w, int ms)
{
	struct timespec ts;
	int n;

	fm_deadline_ts(&ts, ms);
	pthread_mutex_lock(&w->m);
	while (w->count == 0)
		if (pthread_cond_timedwait(&w->c, &w->m, &ts) != 0)
			break;
	n = w->count;
	pthread_mutex_unlock(&w->m);
	return n;
}

static void
wake_init(struct wake *w)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->m, NULL);
	fm_cond_init_monotonic(&w->c);
}

static void
wake_destroy(struct wake *w)
{
	pthread_cond_destroy(&w->c);
	pthread_mutex_destroy(&w->m);
}

/* ---- helpers ---- */

static void
put_topic(struct fm_broker *b, const char *name, uint32_t queues)
{
	int created;

	assert_int_equal(fm_broker_topic_put(b, name, queues,
	                     FM_PERM_READ | FM_PERM_WRITE, &created, NULL),
	    0);
}

/* Publish n bodies of len bytes round robin; wait until all readable. */
static void
publish_n(struct fm_broker *b, const char *topic, int n, size_t len)
{
	struct fm_pub_msg m = {0};
	struct fm_pub_result r;
	char *body = xcalloc(1, len + 1);
	struct wake w;

	memset(body, 'x', len);
	m.body = body;
	m.body_len = len;
	for (int i = 0; i < n; i++)
		assert_int_equal(
		    fm_broker_publish(b, topic, &m, 1, &r, NULL), 0);
	free(body);
	/* readable: the last queue written has its message */
	wake_init(&w);
	fm_broker_watch(b, topic, r.queue_id, r.queue_offset,
	    fm_mono_ms() + 5000, on_broker_wake, &w);
	assert_true(wake_wait(&w, 6000) > 0);
	wake_destroy(&w);
}

static void
read_all(struct fm_bcast *bc, struct events *e)
{
	int n;

	while ((n = fm_bcast_read(bc, 1000, emit, e, NULL)) > 0)
		;
	assert_int_equal(n, 0);
}

/* ---- tests ---- */

static void
resume_exactly(void **state)
{
	struct fx *f = *state;
	struct events all = {0}, rest = {0};
	struct fm_bcast *bc;
	char a[FM_MSGID_LEN + 1], b[FM_MSGID_LEN + 1];

	put_topic(f->b, "rr", 3);
	publish_n(f->b, "rr", 60, 10);
	assert_int_equal(fm_bcast_open(f->b, "rr", "earliest", &bc, NULL), 0);
	read_all(bc, &all);
	fm_bcast_free(bc);
	assert_int_equal(all.n, 60);
	for (size_t k = 0; k < all.n; k += 7) {
		assert_int_equal(
		    fm_bcast_open(f->b, "rr", all.cursor[k], &bc, NULL), 0);
		read_all(bc, &rest);
		fm_bcast_free(bc);
		assert_int_equal(rest.n, all.n - k - 1);
		for (size_t i = 0; i < rest.n; i++) {
			msg_id(rest.json[i], a);
			msg_id(all.json[k + 1 + i], b);
			assert_string_equal(a, b);
			assert_string_equal(
			    rest.cursor[i], all.cursor[k + 1 + i]);
		}
		events_free(&rest);
	}
	/* latest: nothing yet */
	assert_int_equal(fm_bcast_open(f->b, "rr", "latest", &bc, NULL), 0);
	assert_int_equal(fm_bcast_read(bc, 1000, emit, &rest, NULL), 0);
	fm_bcast_free(bc);
	assert_int_equal(fm_bcast_open(f->b, "rr", NULL, &bc, NULL), 0);
	assert_int_equal(fm_bcast_read(bc, 1000, emit, &rest, NULL), 0);
	fm_bcast_free(bc);
	events_free(&all);
}

/* Readers sharing a cache see exactly what uncached readers see, and a
 * topic deleted and made again is never served its old events. */
static void
cache_shared(void **state)
{
	struct fx *f = *state;
	struct fm_bcast_cache *c = fm_bcast_cache_new();
	struct events plain = {0}, first = {0}, second = {0};
	struct fm_bcast *bc;

	put_topic(f->b, "cc", 3);
	publish_n(f->b, "cc", 80, 10);
	assert_int_equal(fm_bcast_open(f->b, "cc", "earliest", &bc, NULL), 0);
	read_all(bc, &plain);
	fm_bcast_free(bc);
	for (int k = 0; k < 2; k++) {
		struct events *e = k == 0 ? &first : &second;

		assert_int_equal(
		    fm_bcast_open(f->b, "cc", "earliest", &bc, NULL), 0);
		fm_bcast_use_cache(bc, c);
		read_all(bc, e);
		fm_bcast_free(bc);
		assert_int_equal(e->n, plain.n);
		for (size_t i = 0; i < e->n; i++) {
			assert_string_equal(e->json[i], plain.json[i]);
			assert_string_equal(e->cursor[i], plain.cursor[i]);
		}
	}
	events_free(&first);
	events_free(&second);
	/* same name, same offsets, other messages: the cache must miss */
	assert_int_equal(fm_broker_topic_delete(f->b, "cc", NULL), 0);
	put_topic(f->b, "cc", 3);
	publish_n(f->b, "cc", 80, 12);
	assert_int_equal(fm_bcast_open(f->b, "cc", "earliest", &bc, NULL), 0);
	fm_bcast_use_cache(bc, c);
	read_all(bc, &first);
	fm_bcast_free(bc);
	assert_int_equal(first.n, plain.n);
	for (size_t i = 0; i < first.n; i++)
		assert_string_not_equal(first.json[i], plain.json[i]);
	events_free(&first);
	events_free(&plain);
	fm_bcast_cache_free(c);
}

static void
bad_cursors(void **state)
{
	struct fx *f = *state;
	/* version 2; a cut varint; 4 queues for a 3-queue topic; ahead */
	const char *bad[] = {"!!", "A", "Ag", "AYA", "AQAAAAA", "AWQ"};
	struct fm_bcast *bc = NULL;
	char *cause = NULL;

	put_topic(f->b, "bc", 3);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(fm_bcast_open(f->b, "bc", bad[i], &bc, &cause),
		    -FM_E_INVALID);
		assert_null(bc);
		assert_non_null(cause);
		free(cause);
		cause = NULL;
	}
	assert_int_equal(fm_bcast_open(f->b, "nope", "earliest", &bc, &cause),
	    -FM_E_NOT_FOUND);
	free(cause);
	/* a version byte alone names no queue: every queue from 0 */
	assert_int_equal(fm_bcast_open(f->b, "bc", "AQ", &bc, NULL), 0);
	fm_bcast_free(bc);
}

static void
gap_after_retention(void **state)
{
	struct fx *f = *state;
	struct events e = {0};
	struct fm_bcast *bc;
	uint64_t min, max;
	char want[128];

	put_topic(f->b, "ret", 1);
	assert_int_equal(fm_bcast_open(f->b, "ret", "earliest", &bc, NULL), 0);
	publish_n(f->b, "ret", 100, 2000);
	fm_store_housekeep(f->b->st, fm_now_ms() + 100ll * 3600 * 1000);
	fm_broker_queue_range(f->b, "ret", 0, &min, &max);
	assert_true(min > 0 && min < 100);
	read_all(bc, &e);
	fm_bcast_free(bc);
	assert_int_equal(e.n, 1 + (max - min));
	snprintf(want, sizeof(want),
	    "{\"gap\":{\"topic\":\"ret\",\"queueId\":0,\"fromOffset\":0,"
	    "\"toOffset\":%llu,\"lost\":%llu},",
	    (unsigned long long)min, (unsigned long long)min);
	assert_true(strncmp(e.json[0], want, strlen(want)) == 0);
	assert_non_null(strstr(e.json[1], "\"queueOffset\":"));
	/* the gap's cursor resumes at the oldest retained message */
	assert_int_equal(fm_bcast_open(f->b, "ret", e.cursor[0], &bc, NULL), 0);
	events_free(&e);
	read_all(bc, &e);
	fm_bcast_free(bc);
	assert_int_equal(e.n, max - min);
	events_free(&e);
}

static void
arm_and_disarm(void **state)
{
	struct fx *f = *state;
	struct events e = {0};
	struct fm_bcast *bc;
	struct wake w;

	put_topic(f->b, "arm", 2);
	assert_int_equal(fm_bcast_open(f->b, "arm", "latest", &bc, NULL), 0);
	wake_init(&w);
	/* disarmed before any data: never called */
	fm_bcast_arm(bc, 60000, on_wake, &w);
	fm_bcast_disarm(bc);
	fm_bcast_disarm(bc);
	publish_n(f->b, "arm", 1, 5);
	usleep(100 * 1000);
	assert_int_equal(w.count, 0);
	/* data already there: called at once, once */
	fm_bcast_arm(bc, 60000, on_wake, &w);
	assert_int_equal(wake_wait(&w, 5000), 1);
	assert_int_equal(w.why, FM_BCAST_DATA);
	read_all(bc, &e);
	assert_int_equal(e.n, 1);
	/* caught up: an idle wake after the deadline */
	w.count = 0;
	fm_bcast_arm(bc, 50, on_wake, &w);
	assert_int_equal(wake_wait(&w, 5000), 1);
	assert_int_equal(w.why, FM_BCAST_IDLE);
	/* a new message on either queue wakes a caught-up reader */
	w.count = 0;
	fm_bcast_arm(bc, 60000, on_wake, &w);
	publish_n(f->b, "arm", 1, 5);
	assert_int_equal(wake_wait(&w, 5000), 1);
	assert_int_equal(w.why, FM_BCAST_DATA);
	fm_bcast_free(bc);
	assert_int_equal(w.count, 1);
	wake_destroy(&w);
	events_free(&e);
}

/* ---- hubs ---- */

struct member {
	struct fm_hub_member hm; /* first: the ops cast back */
	struct fm_bcast *bc;
	size_t room;
	struct events got;
	int evicted;
};

static size_t
m_room(struct fm_hub_member *m)
{
	return ((struct member *)m)->room;
}

static void
m_deliver(struct fm_hub_member *first, const char *json, size_t len)
{
	for (struct fm_hub_member *m = first; m != NULL; m = m->next)
		emit(&((struct member *)m)->got, json, len, "");
}

static void
m_evicted(struct fm_hub_member *m)
{
	((struct member *)m)->evicted++;
}

static void
m_failed(struct fm_hub_member *m, int err, const char *cause)
{
	(void)m;
	(void)cause;
	fail_msg("hub failed: %s", fm_err_msg(err));
}

static const struct fm_hub_ops m_ops = {m_room, m_deliver, m_evicted, m_failed};

static void
m_kick(void *arg)
{
	on_wake(arg, FM_BCAST_DATA);
}

/* A member caught up at the end of topic: got holds all it read. */
static void
member_open(struct fx *f, struct member *m, const char *topic)
{
	memset(m, 0, sizeof(*m));
	m->room = 1 << 20;
	assert_int_equal(
	    fm_bcast_open(f->b, topic, "earliest", &m->bc, NULL), 0);
	read_all(m->bc, &m->got);
}

/* Copies of src's events after dst's. */
static void
append(struct events *dst, const struct events *src)
{
	for (size_t i = 0; i < src->n; i++)
		emit(dst, src->json[i], strlen(src->json[i]), src->cursor[i]);
}

/* The msgIds of e's events from the first, sorted. */
static void
ids_of(const struct events *e, size_t first, char (*out)[FM_MSGID_LEN + 1])
{
	for (size_t i = first; i < e->n; i++)
		msg_id(e->json[i], out[i - first]);
	qsort(out, e->n - first, sizeof(*out),
	    (int (*)(const void *, const void *))strcmp);
}

static void
same_ids(const struct events *a, size_t a0, const struct events *b, size_t b0)
{
	char(*x)[FM_MSGID_LEN + 1] = xcalloc(MAX_EVENTS, sizeof(*x));
	char(*y)[FM_MSGID_LEN + 1] = xcalloc(MAX_EVENTS, sizeof(*y));

	assert_int_equal(a->n - a0, b->n - b0);
	ids_of(a, a0, x);
	ids_of(b, b0, y);
	for (size_t i = 0; i < a->n - a0; i++) {
		assert_true(x[i][0] != '\0');
		assert_string_equal(x[i], y[i]);
	}
	free(x);
	free(y);
}

/* Publish n, wait for the set's kick, serve it. */
static void
publish_serve(struct fx *f, struct fm_hubs *hs, struct wake *w, int n)
{
	w->count = 0;
	publish_n(f->b, "hub", n, 7);
	assert_true(wake_wait(w, 5000) > 0);
	fm_hubs_serve(hs);
}

static void
hub_shares_and_evicts(void **state)
{
	struct fx *f = *state;
	struct member a, b, c;
	struct events ref = {0}, rest = {0};
	struct fm_hubs *hs;
	struct wake w;

	wake_init(&w);
	hs = fm_hubs_new(&m_ops, m_kick, &w);
	put_topic(f->b, "hub", 2);
	publish_n(f->b, "hub", 4, 7);
	member_open(f, &a, "hub");
	member_open(f, &b, "hub");
	assert_int_equal(fm_hubs_join(hs, &a.hm, a.bc), 1);
	assert_int_equal(fm_hubs_join(hs, &b.hm, b.bc), 1);
	/* a reader elsewhere is not taken */
	memset(&c, 0, sizeof(c));
	assert_int_equal(
	    fm_bcast_open(f->b, "hub", "earliest", &c.bc, NULL), 0);
	assert_int_equal(fm_hubs_join(hs, &c.hm, c.bc), 0);
	assert_null(c.hm.hub);

	/* every member gets each new event once */
	publish_serve(f, hs, &w, 6);
	assert_int_equal(a.got.n, 10);
	assert_int_equal(b.got.n, 10);
	for (size_t i = 4; i < 10; i++)
		assert_string_equal(a.got.json[i], b.got.json[i]);
	read_all(c.bc, &ref);
	same_ids(&a.got, 0, &ref, 0);

	/* a member without room leaves where the hub stood: its own reader
	 * goes on with exactly what it did not get */
	a.room = 0;
	publish_serve(f, hs, &w, 3);
	assert_int_equal(a.evicted, 1);
	assert_null(a.hm.hub);
	assert_int_equal(a.got.n, 10);
	assert_int_equal(b.got.n, 13);
	read_all(a.bc, &rest);
	same_ids(&rest, 0, &b.got, 10);
	events_free(&rest);

	/* it rejoins once caught up and with room again; the last one
	 * leaving frees the hub and its watch: no kick after */
	assert_int_equal(fm_hubs_join(hs, &a.hm, a.bc), 0);
	a.room = 1 << 20;
	assert_int_equal(fm_hubs_join(hs, &a.hm, a.bc), 1);
	fm_hubs_leave(&a.hm);
	fm_hubs_leave(&b.hm);
	fm_hubs_leave(&b.hm);
	w.count = 0;
	publish_n(f->b, "hub", 1, 7);
	usleep(100 * 1000);
	assert_int_equal(w.count, 0);
	read_all(b.bc, &rest);
	assert_int_equal(rest.n, 1);
	append(&b.got, &rest);
	read_all(c.bc, &ref);
	assert_int_equal(ref.n, 14);
	same_ids(&b.got, 0, &ref, 0);
	fm_hubs_free(hs);
	fm_bcast_free(a.bc);
	fm_bcast_free(b.bc);
	fm_bcast_free(c.bc);
	events_free(&a.got);
	events_free(&b.got);
	events_free(&ref);
	events_free(&rest);
	wake_destroy(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(resume_exactly, setup, teardown),
	    cmocka_unit_test_setup_teardown(bad_cursors, setup, teardown),
	    cmocka_unit_test_setup_teardown(cache_shared, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        gap_after_retention, setup, teardown),
	    cmocka_unit_test_setup_teardown(arm_and_disarm, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        hub_shares_and_evicts, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
