/*
 * test_groups.c - consumer groups (groups.c) against a real store in a
 * temp dir: receive hands each message out once, ack and stale handles,
 * invisibility expiry with reconsumeTimes + 1 woken through the group's
 * watch (no sleeping), nack to the DLQ after maxReconsumeTimes, tag
 * filters, reset, group state and list, FIFO receives, offsets and
 * receipts that survive closing and reopening the broker, and the store's
 * group rows written by many threads at once (group commit).
 *
 * Group settings: the store's rows round trip and survive a reopen; a
 * group made FIFO by fm_broker_group_put hands out one message per queue
 * at a time without asking in the receive, also after the broker is
 * reopened; turning FIFO off wakes a receiver the setting held back;
 * names are checked and reserved ones refused. A producer cannot use the
 * broker's reserved property names, a DLQ copy (a system publish) sets
 * them, and one made from a DLQ message replaces them rather than
 * doubling them, keeping the producer's own.
 *
 * The async forms and state.db's committer: calls queued while the
 * committer is busy share one transaction (one sync) and complete in
 * queue order on the committer thread; a failed sync reaches every call
 * of its batch and the rows are applied again with the next commit; a
 * close commits what is queued, an abandon commits a prefix and tells
 * the rest -FM_E_SHUTDOWN; while commits fail, the rows kept for the
 * retry are collapsed by key (a few rows for hundreds of failed calls
 * rewriting the same keys) without changing what state.db gets, and a
 * close tries them once more. The broker's async receive, ack, nack and
 * reset report through done; a receive whose commit failed is undone
 * (its message is handed out again at once with the same
 * reconsumeTimes, never sent to the DLQ for it, and state.db converges
 * once commits work); an ack of a handle made stale by an ack still
 * queued completes only after that one. Syncs are counted and failed
 * through a VFS over SQLite's (fixture.h); the committer is held busy by
 * a done that waits for the test (a done must not block: here that is
 * the point).
 *
 * Waiting is always on a watch: the group's watch topic for messages
 * that become visible again, the DLQ topic's queue for dead letters.
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

#include <cmocka.h>

#include "base/clock.h"
#include "base/config.h"
#include "base/err.h"
#include "base/xmalloc.h"
#include "broker/broker.h"
#include "store/state.h"
#include "store/store.h"
#include "fixture.h"

#define QUEUES 4

static int
setup(void **state)
{
	struct fx *f = fx_new("fmgroups");

	fx_state_vfs();
	f->cfg.default_topic_queue_nums = QUEUES;
	f->cfg.max_reconsume_times = 1;
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

/* ---- waking ---- */

/* Watch and wait: the wake reason, or -1 when nothing fired within ms. */
static int
watch_wait(struct fm_broker *b, const char *topic, uint64_t offset, int ms)
{
	struct fx_wake w;
	int why;

	fx_wake_init(&w);
	fm_broker_watch(b, topic, 0, offset, fm_mono_ms() + ms, fx_wake_cb, &w);
	why = fx_wake_wait(&w, ms + 1000);
	fx_wake_destroy(&w);
	return why;
}

/* ---- helpers ---- */

static void
publish_props(struct fx *f, const char *topic, const char *body,
    const struct fm_prop *props, size_t nprops)
{
	struct fm_pub_msg m = {0};
	struct fm_pub_result res;

	m.body = body;
	m.body_len = strlen(body);
	m.props = props;
	m.nprops = nprops;
	assert_int_equal(fm_broker_publish(f->b, topic, &m, 1, &res, NULL), 0);
}

static void
publish(struct fx *f, const char *topic, const char *body, const char *tag)
{
	struct fm_pub_msg m = {0};
	struct fm_pub_result res;

	m.body = body;
	m.body_len = strlen(body);
	m.tag = tag;
	assert_int_equal(fm_broker_publish(f->b, topic, &m, 1, &res, NULL), 0);
}

static void
recv_n(struct fx *f, const char *topic, const char *group, size_t max,
    int64_t invisible_ms, const char *tags, struct fm_recv_result *out)
{
	struct fm_recv_opts o = {max, invisible_ms, tags, 0};
	char *cause = NULL;
	int rc = fm_broker_group_receive(f->b, topic, group, &o, out, &cause);

	if (rc != 0)
		fail_msg("receive: %s", cause ? cause : "?");
}

static int
settle1(struct fx *f, const char *topic, const char *group, int nack,
    int64_t delay_ms, const char *handle)
{
	char *causes[1] = {NULL};
	int errs[1] = {1};

	assert_int_equal(fm_broker_group_settle(f->b, topic, group, nack,
	                     delay_ms, &handle, 1, errs, causes, NULL),
	    0);
	if (errs[0] != 0)
		assert_non_null(causes[0]);
	free(causes[0]);
	return errs[0];
}

static void
body_of(const struct fm_message *m, char *out, size_t cap)
{
	snprintf(
	    out, cap, "%.*s", (int)m->rec.body_len, (const char *)m->rec.body);
}

/* Wait on the group's watch, as of the receive that gave r, for
 * something new (here: a message visible again). No polling. */
static void
wait_group(struct fx *f, const struct fm_recv_result *r)
{
	assert_int_equal(
	    watch_wait(f->b, r->watch_topic, r->watch_offset, 3000),
	    FM_WAKE_DATA);
}

/* ---- tests ---- */

static void
test_each_once_and_ack(void **state)
{
	struct fx *f = *state;
	struct fm_recv_result a = FM_RECV_RESULT_INIT, b = FM_RECV_RESULT_INIT;
	struct fm_recv_result c = FM_RECV_RESULT_INIT;
	struct fm_group_queue *v = NULL;
	char seen[10] = {0}, body[16];
	size_t n = 0;

	for (int i = 0; i < 10; i++) {
		snprintf(body, sizeof(body), "%d", i);
		publish(f, "t", body, NULL);
	}
	recv_n(f, "t", "g", 6, 60000, NULL, &a);
	recv_n(f, "t", "g", 6, 60000, NULL, &b);
	recv_n(f, "t", "g", 6, 60000, NULL, &c);
	assert_int_equal(a.msgs.n, 6);
	assert_int_equal(b.msgs.n, 4);
	assert_int_equal(c.msgs.n, 0);
	for (size_t i = 0; i < 10; i++) {
		struct fm_recv_result *r = i < 6 ? &a : &b;
		size_t k = i < 6 ? i : i - 6;

		body_of(&r->msgs.items[k], body, sizeof(body));
		assert_int_equal(seen[atoi(body)]++, 0);
		assert_int_equal(r->msgs.items[k].rec.reconsume_times, 0);
		assert_int_equal(strlen(r->receipts[k]), FM_RECEIPT_LEN);
		assert_int_equal(
		    settle1(f, "t", "g", 0, -1, r->receipts[k]), 0);
	}
	assert_int_equal(
	    settle1(f, "t", "g", 0, -1, a.receipts[0]), -FM_E_GONE);
	assert_int_equal(
	    settle1(f, "t", "other", 0, -1, a.receipts[0]), -FM_E_INVALID);
	assert_int_equal(settle1(f, "t", "g", 0, -1, "xyz"), -FM_E_INVALID);
	assert_int_equal(
	    fm_broker_group_state(f->b, "t", "g", &v, &n, NULL), 0);
	assert_int_equal(n, QUEUES);
	for (size_t q = 0; q < n; q++) {
		assert_int_equal(v[q].consumed, v[q].max_offset);
		assert_int_equal(v[q].in_flight, 0);
	}
	free(v);
	fm_recv_result_free(&a);
	fm_recv_result_free(&b);
	fm_recv_result_free(&c);
}

/* Any changed character is refused, and the live handle still works:
 * no tampered handle can ack a message. */
static void
test_tampered_handles(void **state)
{
	struct fx *f = *state;
	struct fm_recv_result r = FM_RECV_RESULT_INIT;
	char bad[FM_RECEIPT_LEN + 1];

	publish(f, "t", "x", NULL);
	recv_n(f, "t", "g", 1, 60000, NULL, &r);
	assert_int_equal(r.msgs.n, 1);
	for (size_t i = 0; i < FM_RECEIPT_LEN; i++) {
		memcpy(bad, r.receipts[0], sizeof(bad));
		bad[i] = bad[i] == 'A' ? 'B' : 'A';
		assert_int_not_equal(settle1(f, "t", "g", 0, -1, bad), 0);
	}
	bad[FM_RECEIPT_LEN - 1] = '=';
	assert_int_equal(settle1(f, "t", "g", 0, -1, bad), -FM_E_INVALID);
	assert_int_equal(settle1(f, "t", "g", 0, -1, r.receipts[0]), 0);
	fm_recv_result_free(&r);
}

static void
test_expiry_redelivers(void **state)
{
	struct fx *f = *state;
	struct fm_recv_result a = FM_RECV_RESULT_INIT, b = FM_RECV_RESULT_INIT;

	publish(f, "t", "x", NULL);
	recv_n(f, "t", "g", 8, 100, NULL, &a);
	assert_int_equal(a.msgs.n, 1);
	wait_group(f, &a);
	recv_n(f, "t", "g", 8, 60000, NULL, &b);
	assert_int_equal(b.msgs.n, 1);
	assert_string_equal(a.msgs.items[0].msg_id, b.msgs.items[0].msg_id);
	assert_int_equal(b.msgs.items[0].rec.reconsume_times, 1);
	assert_string_not_equal(a.receipts[0], b.receipts[0]);
	assert_int_equal(
	    settle1(f, "t", "g", 0, -1, a.receipts[0]), -FM_E_GONE);
	assert_int_equal(settle1(f, "t", "g", 0, -1, b.receipts[0]), 0);
	fm_recv_result_free(&a);
	fm_recv_result_free(&b);
}

static void
test_nack_to_dlq(void **state)
{
	struct fx *f = *state;
	struct fm_recv_result r = FM_RECV_RESULT_INIT;
	struct fm_pull_result pr = {FM_MSG_LIST_INIT, 0, 0, 0};
	char body[16];

	publish(f, "t", "poison", "tg");
	recv_n(f, "t", "g", 1, 60000, NULL, &r);
	assert_int_equal(r.msgs.n, 1);
	assert_int_equal(settle1(f, "t", "g", 1, 0, r.receipts[0]), 0);
	wait_group(f, &r);
	fm_recv_result_free(&r);
	recv_n(f, "t", "g", 1, 60000, NULL, &r);
	assert_int_equal(r.msgs.n, 1);
	assert_int_equal(r.msgs.items[0].rec.reconsume_times, 1);
	/* the last allowed delivery (maxReconsumeTimes 1) fails */
	assert_int_equal(settle1(f, "t", "g", 1, 0, r.receipts[0]), 0);
	fm_recv_result_free(&r);
	assert_int_equal(watch_wait(f->b, "%DLQ%g", 0, 3000), FM_WAKE_DATA);
	assert_int_equal(
	    fm_broker_pull(f->b, "%DLQ%g", 0, 0, 10, &pr, NULL), 0);
	assert_int_equal(pr.msgs.n, 1);
	body_of(&pr.msgs.items[0], body, sizeof(body));
	assert_string_equal(body, "poison");
	assert_int_equal(pr.msgs.items[0].rec.tag_len, 2);
	assert_non_null(memmem(pr.msgs.items[0].rec.props,
	    pr.msgs.items[0].rec.props_len, "ORIGIN_TOPIC\0t\0", 15));
	fm_msg_list_free(&pr.msgs);
	recv_n(f, "t", "g", 1, 60000, NULL, &r);
	assert_int_equal(r.msgs.n, 0);
	fm_recv_result_free(&r);
}

static void
test_tags_and_reset(void **state)
{
	struct fx *f = *state;
	struct fm_recv_result r = FM_RECV_RESULT_INIT;
	struct fm_group_name *names = NULL;
	size_t n = 0;

	publish(f, "t", "1", "a");
	publish(f, "t", "2", "b");
	publish(f, "t", "3", NULL);
	publish(f, "t", "4", "a");
	recv_n(f, "t", "g", 10, 60000, " a || zz ", &r);
	assert_int_equal(r.msgs.n, 2);
	for (size_t i = 0; i < r.msgs.n; i++)
		assert_memory_equal(r.msgs.items[i].rec.tag, "a", 1);
	fm_recv_result_free(&r);
	assert_int_equal(
	    fm_broker_group_reset(f->b, "t", "g", FM_RESET_EARLIEST, 0, NULL),
	    0);
	recv_n(f, "t", "g", 10, 60000, "*", &r);
	assert_int_equal(r.msgs.n, 4);
	fm_recv_result_free(&r);
	assert_int_equal(
	    fm_broker_group_reset(f->b, "t", "g", FM_RESET_LATEST, 0, NULL), 0);
	recv_n(f, "t", "g", 10, 60000, NULL, &r);
	assert_int_equal(r.msgs.n, 0);
	fm_recv_result_free(&r);
	assert_int_equal(fm_broker_group_list(f->b, &names, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(names[0].topic, "t");
	assert_string_equal(names[0].group, "g");
	free(names);
}

static void
test_survives_reopen(void **state)
{
	struct fx *f = *state;
	struct fm_recv_result r = FM_RECV_RESULT_INIT, s = FM_RECV_RESULT_INIT;
	struct fm_group_queue *v = NULL;
	size_t n = 0, in_flight = 0, got = 0, again = 0;

	for (int i = 0; i < 5; i++)
		publish(f, "t", "m", NULL);
	recv_n(f, "t", "g", 3, 300, NULL, &r);
	assert_int_equal(r.msgs.n, 3);
	assert_int_equal(settle1(f, "t", "g", 0, -1, r.receipts[0]), 0);
	fm_broker_close(f->b);
	fx_open(f);
	/* a handle given before the restart is still the live one */
	assert_int_equal(settle1(f, "t", "g", 0, -1, r.receipts[1]), 0);
	assert_int_equal(
	    fm_broker_group_state(f->b, "t", "g", &v, &n, NULL), 0);
	for (size_t q = 0; q < n; q++)
		in_flight += v[q].in_flight;
	assert_int_equal(in_flight, 1);
	free(v);
	/* the two never handed out, and the one in flight once visible */
	for (int round = 0; round < 3 && got < 3; round++) {
		if (round > 0)
			wait_group(f, &s);
		fm_recv_result_free(&s);
		recv_n(f, "t", "g", 10, 60000, NULL, &s);
		for (size_t i = 0; i < s.msgs.n; i++, got++)
			if (s.msgs.items[i].rec.reconsume_times == 1) {
				assert_string_equal(s.msgs.items[i].msg_id,
				    r.msgs.items[2].msg_id);
				again++;
			}
	}
	assert_int_equal(got, 3);
	assert_int_equal(again, 1);
	fm_recv_result_free(&s);
	fm_recv_result_free(&r);
}

static void
test_fifo_one_per_queue(void **state)
{
	struct fx *f = *state;
	struct fm_recv_result r = FM_RECV_RESULT_INIT, z = FM_RECV_RESULT_INIT;
	struct fm_recv_opts o = {10, 60000, NULL, 1};
	char body[16];
	int rc;

	assert_int_equal(fm_broker_topic_put(f->b, "ff", 1, 6, NULL, NULL), 0);
	publish(f, "ff", "0", NULL);
	publish(f, "ff", "1", NULL);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(
		    fm_broker_group_receive(f->b, "ff", "g", &o, &r, NULL), 0);
		assert_int_equal(r.msgs.n, 1);
		body_of(&r.msgs.items[0], body, sizeof(body));
		assert_int_equal(atoi(body), i);
		/* its queue is blocked while it is out */
		rc = fm_broker_group_receive(f->b, "ff", "g", &o, &z, NULL);
		assert_int_equal(rc, 0);
		assert_int_equal(z.msgs.n, 0);
		fm_recv_result_free(&z);
		assert_int_equal(
		    settle1(f, "ff", "g", 0, -1, r.receipts[0]), 0);
		fm_recv_result_free(&r);
	}
}

/* ---- the store's group rows: group commit from many threads ---- */

#define WRITERS 8
#define ROWS_EACH 50

struct writer {
	struct fm_store *st;
	int id;
	int err;
};

static void *
write_rows(void *arg)
{
	struct writer *w = arg;

	for (int i = 0; i < ROWS_EACH && w->err == 0; i++) {
		struct fm_grow r[2];

		memset(r, 0, sizeof(r));
		r[0].kind = FM_GROW_RECEIPT;
		snprintf(r[0].topic, sizeof(r[0].topic), "t");
		snprintf(r[0].group, sizeof(r[0].group), "g%d", w->id);
		r[0].offset = (uint64_t)i;
		r[0].nonce = (uint64_t)i + 1;
		r[0].reconsume = 3;
		r[0].visible_at = 1000 + i;
		r[1] = r[0];
		r[1].kind = FM_GROW_OFFSET;
		r[1].offset = 0;
		r[1].next = (uint64_t)i + 1;
		w->err = fm_store_group_write(w->st, r, 2);
	}
	return NULL;
}

/* A store of its own in a directory of the fixture's. */
struct own_store {
	char root[300];
	struct fm_store_options o;
	struct fm_store *st;
};

static void
own_open(struct fx *f, const char *name, struct own_store *s)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->root, sizeof(s->root), "%s/%s", f->dir, name);
	s->o.root = s->root;
	s->o.segment_size = 64u << 10;
	s->o.flush_interval_ms = 100;
	s->o.disk_warning_ratio = 1.0;
	assert_int_equal(fm_store_open(&s->o, &s->st), 0);
}

static void
test_store_group_rows(void **state)
{
	struct fx *f = *state;
	struct own_store os;
	struct writer w[WRITERS];
	pthread_t th[WRITERS];
	struct fm_grow *v = NULL, clear = {0}, del = {0};
	struct fm_store *st;
	size_t n = 0, receipts = 0, offsets = 0;

	own_open(f, "store", &os);
	st = os.st;
	for (int i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){st, i, 0};
		assert_int_equal(
		    pthread_create(&th[i], NULL, write_rows, &w[i]), 0);
	}
	for (int i = 0; i < WRITERS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].err, 0);
	}
	/* one CLEAR and one DEL, then everything is read back */
	clear.kind = FM_GROW_CLEAR;
	snprintf(clear.topic, sizeof(clear.topic), "t");
	snprintf(clear.group, sizeof(clear.group), "g0");
	del = clear;
	del.kind = FM_GROW_RECEIPT_DEL;
	snprintf(del.group, sizeof(del.group), "g1");
	del.offset = 7;
	assert_int_equal(fm_store_group_write(st, &clear, 1), 0);
	assert_int_equal(fm_store_group_write(st, &del, 1), 0);
	fm_store_close(st);
	assert_int_equal(fm_store_open(&os.o, &st), 0);
	assert_int_equal(fm_store_group_load(st, &v, &n), 0);
	for (size_t i = 0; i < n; i++) {
		if (v[i].kind == FM_GROW_OFFSET) {
			offsets++;
			assert_int_equal(v[i].next, ROWS_EACH);
			continue;
		}
		assert_int_equal(v[i].kind, FM_GROW_RECEIPT);
		assert_string_not_equal(v[i].group, "g0");
		assert_false(strcmp(v[i].group, "g1") == 0 && v[i].offset == 7);
		assert_int_equal(v[i].nonce, v[i].offset + 1);
		assert_int_equal(v[i].reconsume, 3);
		assert_int_equal(v[i].visible_at, 1000 + (int64_t)v[i].offset);
		receipts++;
	}
	assert_int_equal(offsets, WRITERS);
	assert_int_equal(receipts, (WRITERS - 1) * ROWS_EACH - 1);
	free(v);
	fm_store_close(st);
}

/* ---- the committer ---- */

#define JOBS 40

/* Completions of async writes: job i writes the receipt at offset i. */
struct rec {
	pthread_mutex_t m;
	pthread_cond_t c; /* monotonic */
	int n; /* completions so far */
	int order[JOBS]; /* job ids in completion order */
	int errs[JOBS]; /* by job id */
	int called[JOBS]; /* by job id */
	pthread_t thread; /* that ran the last completion */
	int held; /* job 0's done is waiting for open */
	int open; /* job 0's done may return */
};

struct job {
	struct rec *r;
	int id;
};

static struct job jobs[JOBS];

static void
rec_init(struct rec *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->m, NULL);
	fm_cond_init_monotonic(&r->c);
	for (int i = 0; i < JOBS; i++)
		jobs[i] = (struct job){r, i};
}

static void
rec_destroy(struct rec *r)
{
	pthread_cond_destroy(&r->c);
	pthread_mutex_destroy(&r->m);
}

/* The done of every job; job 0 holds the committer until r->open. */
static void
rec_done(void *arg, int err)
{
	struct job *j = arg;
	struct rec *r = j->r;

	pthread_mutex_lock(&r->m);
	r->order[r->n++] = j->id;
	r->errs[j->id] = err;
	r->called[j->id]++;
	r->thread = pthread_self();
	r->held = j->id == 0;
	pthread_cond_broadcast(&r->c);
	while (j->id == 0 && !r->open)
		pthread_cond_wait(&r->c, &r->m);
	r->held = 0;
	pthread_mutex_unlock(&r->m);
}

/* Wait until n completions came, or job 0 is holding the committer. */
static void
rec_wait(struct rec *r, int n, int held)
{
	struct timespec ts;

	fm_deadline_ts(&ts, 10000);
	pthread_mutex_lock(&r->m);
	while (held ? !r->held : r->n < n)
		if (pthread_cond_timedwait(&r->c, &r->m, &ts) != 0)
			fail_msg("%d of %d completions came", r->n, n);
	pthread_mutex_unlock(&r->m);
}

static void
rec_open(struct rec *r)
{
	pthread_mutex_lock(&r->m);
	r->open = 1;
	pthread_cond_broadcast(&r->c);
	pthread_mutex_unlock(&r->m);
}

/* One malloc'd receipt row at offset off. */
static struct fm_grow *
receipt_row(uint64_t off)
{
	struct fm_grow *g = xcalloc(1, sizeof(*g));

	g->kind = FM_GROW_RECEIPT;
	snprintf(g->topic, sizeof(g->topic), "t");
	snprintf(g->group, sizeof(g->group), "g");
	g->offset = off;
	g->nonce = off + 1;
	return g;
}

static void
queue_job(struct fm_store *st, int id)
{
	assert_int_equal(fm_store_group_write_async(st,
	                     receipt_row((uint64_t)id), 1, rec_done, &jobs[id]),
	    0);
}

/* Queue job 0 and wait until its done holds the committer. */
static void
hold_committer(struct fm_store *st, struct rec *r)
{
	queue_job(st, 0);
	rec_wait(r, 0, 1);
}

/* Which receipt offsets of ("t", "g") the store holds. */
static void
stored(struct fm_store *st, int *present)
{
	struct fm_grow *v = NULL;
	size_t n = 0;

	memset(present, 0, JOBS * sizeof(*present));
	assert_int_equal(fm_store_group_load(st, &v, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (v[i].kind == FM_GROW_RECEIPT && v[i].offset < JOBS)
			present[v[i].offset] = 1;
	free(v);
}

/* Calls queued while the committer is busy share one transaction: one
 * sync for all of them; their done runs in queue order, on the
 * committer's thread. */
static void
test_commit_batches(void **state)
{
	struct fx *f = *state;
	struct own_store os;
	struct rec r;
	int syncs, present[JOBS];

	rec_init(&r);
	own_open(f, "store", &os);
	hold_committer(os.st, &r);
	syncs = fx_state_syncs();
	for (int i = 1; i < JOBS; i++)
		queue_job(os.st, i);
	rec_open(&r);
	rec_wait(&r, JOBS, 0);
	assert_int_equal(fx_state_syncs() - syncs, 1);
	for (int i = 0; i < JOBS; i++) {
		assert_int_equal(r.order[i], i);
		assert_int_equal(r.errs[i], 0);
	}
	assert_false(pthread_equal(r.thread, pthread_self()));
	assert_int_equal(
	    fm_store_group_write_async(os.st, NULL, 0, NULL, NULL), 1);
	fm_store_close(os.st);
	assert_int_equal(fm_store_open(&os.o, &os.st), 0);
	stored(os.st, present);
	for (int i = 0; i < JOBS; i++)
		assert_true(present[i]);
	fm_store_close(os.st);
	rec_destroy(&r);
}

/* A failed sync reaches every call of its batch; their rows are applied
 * again with the next commit, so state.db never holds a later call's
 * rows without an earlier one's. */
static void
test_commit_failure(void **state)
{
	struct fx *f = *state;
	struct own_store os;
	struct fm_grow *bad;
	struct rec r;
	int present[JOBS];

	rec_init(&r);
	own_open(f, "store", &os);
	hold_committer(os.st, &r);
	for (int i = 1; i < 4; i++)
		queue_job(os.st, i);
	fx_state_fail_syncs(1);
	rec_open(&r);
	rec_wait(&r, 4, 0);
	fx_state_fail_syncs(0);
	for (int i = 1; i < 4; i++)
		assert_int_equal(r.errs[i], -FM_E_IO);
	bad = receipt_row(9);
	bad->kind = (enum fm_grow_kind)99;
	assert_int_equal(fm_store_group_write_async(os.st, bad, 1, NULL, NULL),
	    -FM_E_INVALID);
	queue_job(os.st, 4);
	rec_wait(&r, 5, 0);
	assert_int_equal(r.errs[4], 0);
	fm_store_abandon(os.st);
	assert_int_equal(fm_store_open(&os.o, &os.st), 0);
	stored(os.st, present);
	for (int i = 0; i < 5; i++)
		assert_true(present[i]);
	assert_false(present[9]);
	fm_store_close(os.st);
	rec_destroy(&r);
}

struct closer {
	struct fm_store *st;
	int abandon;
};

static void *
close_store(void *arg)
{
	struct closer *c = arg;

	if (c->abandon)
		fm_store_abandon(c->st);
	else
		fm_store_close(c->st);
	return NULL;
}

/* Close (or abandon) while calls are queued: every done is called once;
 * a close commits them all, an abandon a prefix (each told 0) and tells
 * the rest -FM_E_SHUTDOWN. */
static void
shutdown_with_queue(struct fx *f, int abandon)
{
	struct own_store os;
	struct closer c;
	struct rec r;
	pthread_t th;
	int present[JOBS], committed = 0;

	rec_init(&r);
	own_open(f, abandon ? "abandoned" : "closed", &os);
	hold_committer(os.st, &r);
	for (int i = 1; i < JOBS; i++)
		queue_job(os.st, i);
	c = (struct closer){os.st, abandon};
	assert_int_equal(pthread_create(&th, NULL, close_store, &c), 0);
	/* let the stop reach the committer first (the checks hold anyway) */
	nanosleep(&(struct timespec){0, 50000000}, NULL);
	rec_open(&r);
	pthread_join(th, NULL);
	assert_int_equal(r.n, JOBS);
	assert_int_equal(fm_store_open(&os.o, &os.st), 0);
	stored(os.st, present);
	for (int i = 0; i < JOBS; i++) {
		assert_int_equal(r.called[i], 1);
		if (r.errs[i] == 0)
			assert_int_equal(committed++, i);
		else
			assert_int_equal(r.errs[i], -FM_E_SHUTDOWN);
		assert_int_equal(present[i], r.errs[i] == 0);
	}
	if (!abandon)
		assert_int_equal(committed, JOBS);
	fm_store_close(os.st);
	rec_destroy(&r);
}

static void
test_commit_shutdown(void **state)
{
	struct fx *f = *state;
	struct fm_state *s = NULL;
	char path[300];

	shutdown_with_queue(f, 0);
	shutdown_with_queue(f, 1);
	snprintf(path, sizeof(path), "%s/state-only.db", f->dir);
	assert_int_equal(fm_state_open(path, &s), 0);
	fm_state_stop(s, 1);
	assert_int_equal(
	    fm_state_group_write_async(s, receipt_row(0), 1, NULL, NULL),
	    -FM_E_SHUTDOWN);
	fm_state_close(s);
}

/* The broker's async forms: results at once, durability through done;
 * 1 when there is nothing to wait for. */
static void
test_async_calls(void **state)
{
	struct fx *f = *state;
	struct fm_recv_result r = FM_RECV_RESULT_INIT, z = FM_RECV_RESULT_INIT;
	struct fm_recv_opts o = {8, 60000, NULL, 0};
	const char *h[2] = {NULL, "xyz"};
	char *causes[2] = {NULL, NULL};
	struct fm_store_wait w;
	int errs[2];

	publish(f, "t", "x", NULL);
	fm_store_wait_init(&w);
	assert_int_equal(fm_broker_group_receive_async(f->b, "t", "g", &o, &r,
	                     fm_store_wait_done, &w, NULL),
	    0);
	assert_int_equal(r.msgs.n, 1);
	assert_int_equal(fm_store_wait_end(&w, 0), 0);
	/* nothing new: 1, done is never called */
	assert_int_equal(fm_broker_group_receive_async(
	                     f->b, "t", "g", &o, &z, NULL, NULL, NULL),
	    1);
	assert_int_equal(z.msgs.n, 0);
	h[0] = r.receipts[0];
	fm_store_wait_init(&w);
	assert_int_equal(fm_broker_group_settle_async(f->b, "t", "g", 0, -1, h,
	                     2, errs, causes, fm_store_wait_done, &w, NULL),
	    0);
	assert_int_equal(errs[0], 0);
	assert_int_equal(errs[1], -FM_E_INVALID);
	free(causes[1]);
	assert_int_equal(fm_store_wait_end(&w, 0), 0);
	/* a stale handle only: nothing to commit, but done still comes
	 * (after what was queued before); without a done, 1 */
	fm_store_wait_init(&w);
	assert_int_equal(fm_broker_group_settle_async(f->b, "t", "g", 0, -1, h,
	                     1, errs, causes, fm_store_wait_done, &w, NULL),
	    0);
	assert_int_equal(errs[0], -FM_E_GONE);
	free(causes[0]);
	assert_int_equal(fm_store_wait_end(&w, 0), 0);
	assert_int_equal(fm_broker_group_settle_async(f->b, "t", "g", 0, -1, h,
	                     1, errs, causes, NULL, NULL, NULL),
	    1);
	assert_int_equal(errs[0], -FM_E_GONE);
	free(causes[0]);
	fm_store_wait_init(&w);
	assert_int_equal(
	    fm_broker_group_reset_async(f->b, "t", "g", FM_RESET_EARLIEST, 0,
	        fm_store_wait_done, &w, NULL),
	    0);
	assert_int_equal(fm_store_wait_end(&w, 0), 0);
	fm_recv_result_free(&r);
	fm_recv_result_free(&z);
}

/* A receive whose commit failed: done says so, its messages may not go
 * out, and they are visible again at once, as if never handed out; an
 * ack whose commit failed is an error of the call. */
static void
test_async_commit_failure(void **state)
{
	struct fx *f = *state;
	struct fm_recv_result r = FM_RECV_RESULT_INIT;
	struct fm_recv_opts o = {8, 100, NULL, 0};
	struct fm_store_wait w;
	char *causes[1] = {NULL}, *cause = NULL;
	const char *h[1];
	int errs[1];

	publish(f, "t", "x", NULL);
	fx_state_fail_syncs(1);
	fm_store_wait_init(&w);
	assert_int_equal(fm_broker_group_receive_async(f->b, "t", "g", &o, &r,
	                     fm_store_wait_done, &w, NULL),
	    0);
	assert_int_equal(fm_store_wait_end(&w, 0), -FM_E_IO);
	fx_state_fail_syncs(0);
	wait_group(f, &r);
	fm_recv_result_free(&r);
	recv_n(f, "t", "g", 8, 60000, NULL, &r);
	assert_int_equal(r.msgs.n, 1);
	assert_int_equal(r.msgs.items[0].rec.reconsume_times, 0);
	h[0] = r.receipts[0];
	fx_state_fail_syncs(1);
	assert_int_equal(fm_broker_group_settle(
	                     f->b, "t", "g", 0, -1, h, 1, errs, causes, &cause),
	    -FM_E_IO);
	fx_state_fail_syncs(0);
	assert_non_null(strstr(cause, "cannot store the group state"));
	free(cause);
	fm_recv_result_free(&r);
}

/* The receipt rows of (topic, group) in state.db, read through a
 * connection of its own while the broker runs. */
static size_t
stored_receipts(struct fx *f, const char *topic, const char *group,
    struct fm_grow *out, size_t max)
{
	struct fm_state *s = NULL;
	struct fm_grow *v = NULL;
	char path[300];
	size_t n = 0, k = 0;

	snprintf(path, sizeof(path), "%s/state.db", f->dir);
	assert_int_equal(fm_state_open(path, &s), 0);
	assert_int_equal(fm_state_group_load(s, &v, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (v[i].kind == FM_GROW_RECEIPT &&
		    strcmp(v[i].topic, topic) == 0 &&
		    strcmp(v[i].group, group) == 0 && k < max)
			out[k++] = v[i];
	free(v);
	fm_state_close(s);
	return k;
}

/* While state.db's syncs fail, every receive fails and is undone: the
 * message is handed out again at once by the next one, with
 * reconsumeTimes 0 each time, so more failed receives than
 * maxReconsumeTimes (1 here) neither hide it nor send it to the DLQ.
 * Once syncs work, the next commit brings state.db to the undone state
 * too (no live nonce, never delivered), and the message goes out with
 * reconsumeTimes 0. */
static void
test_failed_receive_undone(void **state)
{
	struct fx *f = *state;
	struct fm_recv_result r = FM_RECV_RESULT_INIT;
	struct fm_recv_opts o = {8, 60000, NULL, 0};
	struct fm_topic_conf tc;
	struct fm_store_wait w;
	struct fm_grow rows[4];
	char *cause = NULL;

	publish(f, "t", "x", NULL);
	fx_state_fail_syncs(1);
	for (int i = 0; i < 4; i++) {
		fm_store_wait_init(&w);
		assert_int_equal(fm_broker_group_receive_async(f->b, "t", "g",
		                     &o, &r, fm_store_wait_done, &w, NULL),
		    0);
		assert_int_equal(r.msgs.n, 1);
		assert_int_equal(r.msgs.items[0].rec.reconsume_times, 0);
		assert_int_equal(fm_store_wait_end(&w, 0), -FM_E_IO);
		fm_recv_result_free(&r);
		/* the synchronous form is undone the same way */
		assert_int_equal(
		    fm_broker_group_receive(f->b, "t", "g", &o, &r, &cause),
		    -FM_E_IO);
		assert_null(r.receipts);
		free(cause);
		cause = NULL;
	}
	fx_state_fail_syncs(0);
	/* an unrelated commit carries the rows kept from the failures */
	recv_n(f, "t", "other", 8, 60000, NULL, &r);
	assert_int_equal(r.msgs.n, 1);
	fm_recv_result_free(&r);
	assert_int_equal(stored_receipts(f, "t", "g", rows, 4), 1);
	assert_int_equal(rows[0].nonce, 0);
	assert_int_equal(rows[0].reconsume, -1);
	assert_true(rows[0].visible_at <= fm_now_ms());
	recv_n(f, "t", "g", 8, 60000, NULL, &r);
	assert_int_equal(r.msgs.n, 1);
	assert_int_equal(r.msgs.items[0].rec.reconsume_times, 0);
	fm_recv_result_free(&r);
	assert_int_equal(
	    fm_broker_topic_get(f->b, "%DLQ%g", &tc, &cause), -FM_E_NOT_FOUND);
	free(cause);
}

/* A handle made stale by an ack still queued for commit is answered
 * stale only after that ack is durable: its done comes after the ack's,
 * never at once. The committer is held by the done of a receive of
 * another group. */
static void
test_stale_after_durable(void **state)
{
	struct fx *f = *state;
	struct fm_recv_result r = FM_RECV_RESULT_INIT, x = FM_RECV_RESULT_INIT;
	struct fm_recv_opts o = {8, 60000, NULL, 0};
	char *causes[1] = {NULL};
	const char *h[1];
	struct rec rc;
	int errs[1];

	rec_init(&rc);
	publish(f, "t", "x", NULL);
	recv_n(f, "t", "g", 8, 60000, NULL, &r);
	h[0] = r.receipts[0];
	assert_int_equal(fm_broker_group_receive_async(f->b, "t", "hold", &o,
	                     &x, rec_done, &jobs[0], NULL),
	    0);
	rec_wait(&rc, 0, 1);
	assert_int_equal(fm_broker_group_settle_async(f->b, "t", "g", 0, -1, h,
	                     1, errs, causes, rec_done, &jobs[1], NULL),
	    0);
	assert_int_equal(errs[0], 0);
	assert_int_equal(fm_broker_group_settle_async(f->b, "t", "g", 0, -1, h,
	                     1, errs, causes, rec_done, &jobs[2], NULL),
	    0);
	assert_int_equal(errs[0], -FM_E_GONE);
	free(causes[0]);
	pthread_mutex_lock(&rc.m);
	assert_int_equal(rc.n, 1);
	pthread_mutex_unlock(&rc.m);
	rec_open(&rc);
	rec_wait(&rc, 3, 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rc.order[i], i);
		assert_int_equal(rc.errs[i], 0);
	}
	fm_recv_result_free(&x);
	fm_recv_result_free(&r);
	rec_destroy(&rc);
}

/* One row of ("t", group) for the retry tests. */
static struct fm_grow
grow(enum fm_grow_kind kind, const char *group, uint64_t off, uint64_t nonce)
{
	struct fm_grow g;

	memset(&g, 0, sizeof(g));
	g.kind = kind;
	snprintf(g.topic, sizeof(g.topic), "t");
	snprintf(g.group, sizeof(g.group), "%s", group);
	g.offset = off;
	g.nonce = nonce;
	g.next = nonce;
	return g;
}

#define FAILING 300

/* While commits fail, the rows kept for the retry grow with the keys
 * written, not with the calls: FAILING calls rewriting the same few
 * receipts and offsets keep a few rows. The rows are collapsed without
 * changing what state.db gets: the last row of each key, receipts
 * deleted or cleared by a later row stay away, those written after a
 * CLEAR stay. A close tries the kept rows once more. */
static void
test_retry_bounded(void **state)
{
	struct fx *f = *state;
	struct own_store os;
	struct fm_store_stats ss;
	struct fm_grow *v = NULL, r[3];
	size_t n = 0;
	int seen[3] = {0};

	own_open(f, "store", &os);
	r[0] = grow(FM_GROW_RECEIPT, "g", 7, 1);
	r[1] = grow(FM_GROW_RECEIPT, "h", 7, 1);
	assert_int_equal(fm_store_group_write(os.st, r, 2), 0);
	fx_state_fail_syncs(1);
	for (uint64_t i = 1; i <= FAILING; i++) {
		r[0] = grow(FM_GROW_RECEIPT, "g", i % 3, i);
		r[1] = grow(FM_GROW_OFFSET, "g", 0, i);
		r[2] = grow(FM_GROW_RECEIPT, "h", 8, i);
		if (i == FAILING / 2)
			r[2] = grow(FM_GROW_CLEAR, "g", 0, 0);
		if (i == FAILING - 1)
			r[2] = grow(FM_GROW_RECEIPT_DEL, "g", 1, 0);
		assert_int_equal(fm_store_group_write(os.st, r, 3), -FM_E_IO);
	}
	fm_store_stats(os.st, &ss);
	/* g: CLEAR, offsets, receipts 0 1 2; h: receipt 8 */
	assert_true(ss.group_retry_rows > 0);
	assert_true(ss.group_retry_rows <= 6);
	fx_state_fail_syncs(0);
	fm_store_close(os.st);
	assert_int_equal(fm_store_open(&os.o, &os.st), 0);
	fm_store_stats(os.st, &ss);
	assert_int_equal(ss.group_retry_rows, 0);
	assert_int_equal(fm_store_group_load(os.st, &v, &n), 0);
	for (size_t i = 0; i < n; i++) {
		if (v[i].kind == FM_GROW_OFFSET) {
			assert_string_equal(v[i].group, "g");
			assert_int_equal(v[i].next, FAILING);
			seen[0]++;
		} else if (strcmp(v[i].group, "g") == 0) {
			/* 7 was cleared, 1 deleted; 0 and 2 as last written */
			assert_true(v[i].offset == 0 || v[i].offset == 2);
			assert_int_equal(v[i].nonce % 3, v[i].offset);
			assert_true(v[i].nonce > FAILING - 3);
			seen[1]++;
		} else {
			/* h is not g: its rows are kept around g's CLEAR */
			assert_string_equal(v[i].group, "h");
			assert_true(v[i].offset == 7 || v[i].offset == 8);
			assert_int_equal(
			    v[i].nonce, v[i].offset == 7 ? 1 : FAILING);
			seen[2]++;
		}
	}
	assert_int_equal(seen[0], 1);
	assert_int_equal(seen[1], 2);
	assert_int_equal(seen[2], 2);
	free(v);
	fm_store_close(os.st);
}

static void
test_bad_input(void **state)
{
	struct fx *f = *state;
	struct fm_recv_result r = FM_RECV_RESULT_INIT;
	struct fm_recv_opts o = {1, 1000, NULL, 0};
	struct fm_group_queue *v = NULL;
	size_t n = 0;
	char *cause = NULL;

	assert_int_equal(
	    fm_broker_group_receive(f->b, "nope", "g", &o, &r, &cause),
	    -FM_E_NOT_FOUND);
	free(cause);
	publish(f, "t", "x", NULL);
	assert_int_equal(
	    fm_broker_group_receive(f->b, "t", "a/b", &o, &r, &cause),
	    -FM_E_INVALID);
	free(cause);
	o.max = 0;
	assert_int_equal(
	    fm_broker_group_receive(f->b, "t", "g", &o, &r, &cause),
	    -FM_E_INVALID);
	free(cause);
	assert_int_equal(
	    fm_broker_group_state(f->b, "t", "never", &v, &n, &cause),
	    -FM_E_NOT_FOUND);
	free(cause);
}

/* ---- group settings ---- */

static void
conf_put(struct fm_store *st, const char *name, int fifo, int64_t ms)
{
	struct fm_group_conf gc = {"", fifo, ms};

	snprintf(gc.name, sizeof(gc.name), "%s", name);
	assert_int_equal(fm_store_group_conf_put(st, &gc), 0);
}

static void
test_store_group_conf(void **state)
{
	struct fx *f = *state;
	struct own_store os;
	struct fm_group_conf gc, *v = NULL;
	size_t n = 0;

	own_open(f, "store", &os);
	conf_put(os.st, "gb", 1, 1000);
	conf_put(os.st, "ga", 0, 2000);
	conf_put(os.st, "gb", 0, 3000);
	conf_put(os.st, "gb", 1, 4000); /* replaces */
	assert_int_equal(
	    fm_store_group_conf_get(os.st, "gc", &gc), -FM_E_NOT_FOUND);
	fm_store_close(os.st);
	assert_int_equal(fm_store_open(&os.o, &os.st), 0);
	assert_int_equal(fm_store_group_conf_get(os.st, "gb", &gc), 0);
	assert_string_equal(gc.name, "gb");
	assert_int_equal(gc.fifo, 1);
	assert_int_equal(gc.updated_ms, 4000);
	assert_int_equal(fm_store_group_conf_list(os.st, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].name, "ga");
	assert_int_equal(v[0].fifo, 0);
	assert_int_equal(v[0].updated_ms, 2000);
	assert_string_equal(v[1].name, "gb");
	assert_int_equal(v[1].fifo, 1);
	free(v);
	fm_store_close(os.st);
}

/* One receive that must not ask for FIFO: n messages, bodies in order. */
static void
recv_bodies(struct fx *f, const char *topic, const char *group,
    const char *want, struct fm_recv_result *r)
{
	char body[16];
	size_t len = strlen(want);

	fm_recv_result_free(r);
	recv_n(f, topic, group, 10, 60000, NULL, r);
	assert_int_equal(r->msgs.n, len);
	for (size_t i = 0; i < len; i++) {
		body_of(&r->msgs.items[i], body, sizeof(body));
		assert_int_equal(body[0], want[i]);
	}
}

static void
test_group_put_fifo(void **state)
{
	struct fx *f = *state;
	struct fm_recv_result r = FM_RECV_RESULT_INIT, z = FM_RECV_RESULT_INIT;
	struct fm_group_info gi;
	struct fm_group_name *names = NULL;
	struct fx_wake w;
	size_t n = 0;

	assert_int_equal(fm_broker_group_put(f->b, "g", 1, &gi, NULL), 0);
	assert_string_equal(gi.conf.name, "g");
	assert_int_equal(gi.conf.fifo, 1);
	assert_true(gi.conf.updated_ms > 0);
	assert_int_equal(gi.ntopics, 0);
	fm_group_info_free(&gi);
	assert_int_equal(fm_broker_topic_put(f->b, "ff", 1, 6, NULL, NULL), 0);
	publish(f, "ff", "0", NULL);
	publish(f, "ff", "1", NULL);
	publish(f, "ff", "2", NULL);
	/* FIFO without asking: one message of the queue at a time */
	recv_bodies(f, "ff", "g", "0", &r);
	recv_bodies(f, "ff", "g", "", &z);
	assert_int_equal(fm_broker_group_list(f->b, &names, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(names[0].fifo, 1);
	free(names);
	/* the setting survives a reopen; the message is still out */
	fm_broker_close(f->b);
	fx_open(f);
	assert_int_equal(fm_broker_group_info(f->b, "g", &gi, NULL), 0);
	assert_int_equal(gi.conf.fifo, 1);
	assert_int_equal(gi.ntopics, 1);
	assert_string_equal(gi.topics[0], "ff");
	fm_group_info_free(&gi);
	recv_bodies(f, "ff", "g", "", &z);
	assert_int_equal(settle1(f, "ff", "g", 0, -1, r.receipts[0]), 0);
	recv_bodies(f, "ff", "g", "1", &r);
	recv_bodies(f, "ff", "g", "", &z);
	/* a receiver held back by the setting: a put that keeps it (-1)
	 * does not wake it, turning it off does */
	fx_wake_init(&w);
	fm_broker_watch(f->b, z.watch_topic, 0, z.watch_offset,
	    fm_mono_ms() + 3000, fx_wake_cb, &w);
	assert_int_equal(fm_broker_group_put(f->b, "g", -1, &gi, NULL), 0);
	assert_int_equal(gi.conf.fifo, 1);
	fm_group_info_free(&gi);
	assert_int_equal(fx_wake_wait(&w, 100), -1);
	assert_int_equal(fm_broker_group_put(f->b, "g", 0, &gi, NULL), 0);
	assert_int_equal(fx_wake_wait(&w, 3000), FM_WAKE_DATA);
	fx_wake_destroy(&w);
	assert_int_equal(gi.conf.fifo, 0);
	fm_group_info_free(&gi);
	recv_bodies(f, "ff", "g", "2", &z);
	fm_recv_result_free(&r);
	fm_recv_result_free(&z);
}

static void
test_group_names(void **state)
{
	struct fx *f = *state;
	struct fm_recv_result r = FM_RECV_RESULT_INIT;
	struct fm_recv_opts o = {1, 1000, NULL, 0};
	struct fm_group_info gi;
	char *cause = NULL;

	assert_int_equal(
	    fm_broker_group_info(f->b, "g", &gi, &cause), -FM_E_NOT_FOUND);
	assert_non_null(strstr(cause, "'g'"));
	free(cause);
	assert_int_equal(
	    fm_broker_group_put(f->b, "a b", 1, &gi, &cause), -FM_E_INVALID);
	free(cause);
	assert_int_equal(
	    fm_broker_group_put(f->b, "%DLQ%g", 1, &gi, &cause), -FM_E_INVALID);
	assert_non_null(strstr(cause, "reserved"));
	free(cause);
	publish(f, "t", "x", NULL);
	assert_int_equal(
	    fm_broker_group_receive(f->b, "t", "%RETRY%g", &o, &r, &cause),
	    -FM_E_INVALID);
	free(cause);
	/* a group with state but no settings has info, fifo off */
	recv_n(f, "t", "g", 1, 60000, NULL, &r);
	assert_int_equal(fm_broker_group_info(f->b, "g", &gi, NULL), 0);
	assert_int_equal(gi.conf.fifo, 0);
	assert_int_equal(gi.conf.updated_ms, 0);
	assert_int_equal(gi.ntopics, 1);
	fm_group_info_free(&gi);
	fm_recv_result_free(&r);
}

/* Fail the one allowed retry (maxReconsumeTimes 1) of topic's next
 * message, so that it goes to the group's DLQ, and pull it from there. */
static void
kill_one(struct fx *f, const char *topic, const char *group, const char *dlq,
    struct fm_pull_result *pr)
{
	struct fm_recv_result r = FM_RECV_RESULT_INIT;

	for (int i = 0; i < 2; i++) {
		recv_n(f, topic, group, 1, 60000, NULL, &r);
		assert_int_equal(r.msgs.n, 1);
		assert_int_equal(
		    settle1(f, topic, group, 1, 0, r.receipts[0]), 0);
		if (i == 0)
			wait_group(f, &r);
		fm_recv_result_free(&r);
	}
	assert_int_equal(watch_wait(f->b, dlq, 0, 3000), FM_WAKE_DATA);
	assert_int_equal(fm_broker_pull(f->b, dlq, 0, 0, 10, pr, NULL), 0);
	assert_int_equal(pr->msgs.n, 1);
}

/* How many times the property pair name=value is in r's properties. */
static int
prop_count(const struct fm_record *r, const char *name, const char *value)
{
	const char *p = r->props, *end = p + r->props_len;
	int n = 0;

	while (p < end) {
		const char *v = p + strlen(p) + 1;

		n += strcmp(p, name) == 0 && strcmp(v, value) == 0;
		p = v + strlen(v) + 1;
	}
	return n;
}

static void
test_reserved_props(void **state)
{
	struct fx *f = *state;
	struct fm_pull_result pr = {FM_MSG_LIST_INIT, 0, 0, 0};
	const struct fm_prop mine = {"ORIGIN_COUNTRY", "fr"};
	const struct fm_prop bad[] = {{"__REAL_TOPIC", "x"}, {"__x", "1"},
	    {"ORIGIN_TOPIC", "t"}, {"RECONSUME_TIMES", "0"},
	    {"TIMER_DELIVER_MS", "1"}, {"ORIGIN_MESSAGE_ID", "m"}};
	struct fm_pub_msg m = {0};
	struct fm_pub_result res;
	char *cause = NULL;

	m.body = "x";
	m.body_len = 1;
	m.nprops = 1;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		m.props = &bad[i];
		assert_int_equal(
		    fm_broker_publish(f->b, "t", &m, 1, &res, &cause),
		    -FM_E_INVALID);
		assert_non_null(strstr(cause, bad[i].name));
		assert_non_null(strstr(cause, "reserved"));
		free(cause);
	}
	/* names are case-sensitive: only the broker's own spelling is */
	m.props = &(const struct fm_prop){"origin_topic", "t"};
	assert_int_equal(fm_broker_publish(f->b, "t", &m, 1, &res, NULL), 0);
	publish_props(f, "d", "poison", &mine, 1);
	kill_one(f, "d", "g", "%DLQ%g", &pr);
	assert_int_equal(
	    prop_count(&pr.msgs.items[0].rec, "ORIGIN_TOPIC", "d"), 1);
	assert_int_equal(
	    prop_count(&pr.msgs.items[0].rec, "ORIGIN_COUNTRY", "fr"), 1);
	fm_msg_list_free(&pr.msgs);
	/* a dead letter of a dead letter: the broker's properties replaced */
	kill_one(f, "%DLQ%g", "g2", "%DLQ%g2", &pr);
	assert_int_equal(
	    prop_count(&pr.msgs.items[0].rec, "ORIGIN_TOPIC", "%DLQ%g"), 1);
	assert_int_equal(
	    prop_count(&pr.msgs.items[0].rec, "ORIGIN_TOPIC", "d"), 0);
	assert_int_equal(
	    prop_count(&pr.msgs.items[0].rec, "ORIGIN_COUNTRY", "fr"), 1);
	fm_msg_list_free(&pr.msgs);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_each_once_and_ack, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_tampered_handles, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_expiry_redelivers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_nack_to_dlq, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_tags_and_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_survives_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_fifo_one_per_queue, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_store_group_rows, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_commit_batches, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_commit_failure, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_commit_shutdown, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_async_calls, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_async_commit_failure, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_failed_receive_undone, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_stale_after_durable, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_retry_bounded, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_store_group_conf, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_group_put_fifo, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_group_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_reserved_props, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
