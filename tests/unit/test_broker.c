/*
 * test_broker.c - the broker core against a real store in a temp dir:
 * publish/pull byte for byte, atomic batches, auto-create, perm and role,
 * queue selection, msgIds, queries by key and time, offset bounds,
 * watches woken by data, timeout and shutdown, delete and recreate,
 * metrics, info and routes.
 *
 * The store dispatches asynchronously: a message is readable a little
 * after fm_broker_publish returns. Tests wait for that with a watch
 * (wait_readable), never with a blind sleep.
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
#include "fixture.h"

static int
setup(void **state)
{
	struct fx *f = fx_new("fmbroker");

	f->cfg.default_topic_queue_nums = 4;
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

/* Wait until queue q of topic holds a message at offset. */
static void
wait_readable(
    struct fm_broker *b, const char *topic, uint32_t q, uint64_t offset)
{
	struct fx_wake w;

	fx_wake_init(&w);
	fm_broker_watch(
	    b, topic, q, offset, fm_mono_ms() + 5000, fx_wake_cb, &w);
	assert_int_equal(fx_wake_wait(&w, 6000), FM_WAKE_DATA);
	fx_wake_destroy(&w);
}

/* ---- helpers ---- */

static int
pub1(struct fm_broker *b, const char *topic, const char *body, const char *key,
    const char *shard, struct fm_pub_result *r, char **cause)
{
	const char *keys[1] = {key};
	struct fm_pub_msg m = {0};

	m.body = body;
	m.body_len = strlen(body);
	m.keys = keys;
	m.nkeys = key ? 1 : 0;
	m.sharding_key = shard;
	return fm_broker_publish(b, topic, &m, 1, r, cause);
}

static void
pub_ok(struct fm_broker *b, const char *topic, const char *body,
    const char *key, const char *shard, struct fm_pub_result *r)
{
	char *cause = NULL;
	int rc = pub1(b, topic, body, key, shard, r, &cause);

	if (rc < 0)
		fail_msg("publish: %s", cause ? cause : fm_err_name(rc));
	free(cause);
	wait_readable(b, topic, r->queue_id, r->queue_offset);
}

static void
put_ok(struct fm_broker *b, const char *topic, uint32_t queues, uint32_t perm)
{
	char *cause = NULL;
	int rc = fm_broker_topic_put(b, topic, queues, perm, NULL, &cause);

	if (rc < 0)
		fail_msg("topic_put: %s", cause ? cause : fm_err_name(rc));
}

/* cause is read only after rc was computed: the call fills it. */
static void
expect_cause(int rc, int want, char **cause, const char *text)
{
	assert_int_equal(rc, want);
	assert_non_null(*cause);
	if (strstr(*cause, text) == NULL)
		fail_msg("cause '%s' lacks '%s'", *cause, text);
	free(*cause);
	*cause = NULL;
}

#define RW (FM_PERM_READ | FM_PERM_WRITE)

/* ---- tests ---- */

static void
topic_names(void **state)
{
	char *cause = NULL;
	char name[130];

	assert_int_equal(fm_broker_check_topic_name("Ab_1%|-x", NULL), 0);
	assert_int_equal(
	    fm_broker_check_topic_name("a b", &cause), -FM_E_INVALID);
	assert_string_equal(
	    cause, "topic name 'a b' has a character outside [A-Za-z0-9_%|-]");
	free(cause);
	assert_int_equal(fm_broker_check_topic_name("", NULL), -FM_E_INVALID);
	memset(name, 'a', 128);
	name[128] = '\0';
	assert_int_equal(fm_broker_check_topic_name(name, NULL), -FM_E_INVALID);
	name[127] = '\0';
	assert_int_equal(fm_broker_check_topic_name(name, NULL), 0);
}

static void
publish_pull_exact(void **state)
{
	struct fx *f = *state;
	static const unsigned char body[] = {'h', 0, 'i', 0xff, '\n', 0x80};
	const char *keys[2] = {"k1", "k2"};
	struct fm_prop props[2] = {{"region", "eu"}, {"a.b-c_d", ""}};
	struct fm_pub_msg m = {0};
	struct fm_pub_result r;
	struct fm_pull_result pr;
	const struct fm_record *rec;
	int64_t before = fm_now_ms();
	char *cause = NULL;

	put_ok(f->b, "orders", 4, RW);
	m.body = body;
	m.body_len = sizeof(body);
	m.tag = "created";
	m.keys = keys;
	m.nkeys = 2;
	m.props = props;
	m.nprops = 2;
	m.deliver_at = 12345;
	assert_int_equal(
	    fm_broker_publish(f->b, "orders", &m, 1, &r, &cause), 0);
	assert_int_equal(strlen(r.msg_id), FM_MSGID_LEN);
	assert_true(r.queue_id < 4);
	assert_true(r.queue_offset == 0);
	wait_readable(f->b, "orders", r.queue_id, 0);

	assert_int_equal(
	    fm_broker_pull(f->b, "orders", r.queue_id, 0, 32, &pr, &cause), 0);
	assert_int_equal(pr.msgs.n, 1);
	assert_true(pr.next_offset == 1);
	assert_true(pr.min_offset == 0);
	assert_true(pr.max_offset == 1);
	assert_string_equal(pr.msgs.items[0].msg_id, r.msg_id);
	rec = &pr.msgs.items[0].rec;
	assert_int_equal(rec->body_len, sizeof(body));
	assert_memory_equal(rec->body, body, sizeof(body));
	assert_int_equal(rec->topic_len, 6);
	assert_memory_equal(rec->topic, "orders", 6);
	assert_int_equal(rec->tag_len, 7);
	assert_memory_equal(rec->tag, "created", 7);
	assert_int_equal(rec->keys_len, 6);
	assert_memory_equal(rec->keys, "k1\0k2\0", 6);
	/* The empty value is just its NUL: the literal's own terminator. */
	assert_int_equal(rec->props_len, sizeof("region\0eu\0a.b-c_d\0"));
	assert_memory_equal(rec->props, "region\0eu\0a.b-c_d\0",
	    sizeof("region\0eu\0a.b-c_d\0"));
	assert_int_equal(rec->queue_id, r.queue_id);
	assert_true(rec->queue_offset == 0);
	assert_true(rec->born_ts >= before && rec->born_ts <= fm_now_ms());
	assert_true(rec->store_ts >= rec->born_ts);
	assert_true(rec->deliver_at == 12345);
	assert_int_equal(rec->reconsume_times, 0);
	fm_msg_list_free(&pr.msgs);
	assert_int_equal(pr.msgs.n, 0);
	assert_null(cause);
}

static void
batch_atomic(void **state)
{
	struct fx *f = *state;
	struct fm_pub_msg m[3];
	struct fm_pub_result r[3];
	struct fm_topic_conf tc;
	char *cause = NULL;
	uint64_t min, max, total = 0;

	memset(m, 0, sizeof(m));
	for (int i = 0; i < 3; i++) {
		m[i].body = "abc";
		m[i].body_len = 3;
	}
	m[1].tag = "a|b";
	/* Nothing stored: not even the auto-created topic. */
	expect_cause(fm_broker_publish(f->b, "fresh", m, 3, r, &cause),
	    -FM_E_INVALID, &cause, "message 2: tag 'a|b'");
	assert_int_equal(
	    fm_broker_topic_get(f->b, "fresh", &tc, NULL), -FM_E_NOT_FOUND);

	put_ok(f->b, "batch", 2, RW);
	expect_cause(fm_broker_publish(f->b, "batch", m, 3, r, &cause),
	    -FM_E_INVALID, &cause, "message 2:");
	m[1].tag = "ok";
	m[0].body = xcalloc(1, 4000);
	m[0].body_len = 4000;
	m[1].body = m[0].body;
	m[1].body_len = 4000;
	expect_cause(fm_broker_publish(f->b, "batch", m, 3, r, &cause),
	    -FM_E_TOO_LARGE, &cause, "maxMessageSize 4096");
	m[0].body_len = 4097;
	expect_cause(fm_broker_publish(f->b, "batch", m, 1, r, &cause),
	    -FM_E_TOO_LARGE, &cause, "4097 bytes exceeds maxMessageSize");
	free((void *)m[0].body);
	for (uint32_t q = 0; q < 2; q++) {
		fm_broker_queue_range(f->b, "batch", q, &min, &max);
		assert_true(max == 0);
	}

	m[0].body = "one";
	m[1].body = "two";
	m[2].body = "six";
	m[0].body_len = m[1].body_len = 3;
	assert_int_equal(fm_broker_publish(f->b, "batch", m, 3, r, &cause), 0);
	for (int i = 0; i < 3; i++)
		wait_readable(f->b, "batch", r[i].queue_id, r[i].queue_offset);
	for (uint32_t q = 0; q < 2; q++) {
		fm_broker_queue_range(f->b, "batch", q, &min, &max);
		total += max;
	}
	assert_true(total == 3);
	assert_int_equal(
	    fm_broker_publish(f->b, "batch", m, 0, r, NULL), -FM_E_INVALID);
}

static void
bad_messages(void **state)
{
	struct fx *f = *state;
	struct fm_pub_msg m = {0};
	struct fm_pub_result r;
	const char *keys[1] = {""};
	struct fm_prop props[1] = {{"bad name", "v"}};
	char tag[300];
	char *cause = NULL;

	put_ok(f->b, "t", 1, RW);
	m.body = "x";
	m.body_len = 1;
	m.keys = keys;
	m.nkeys = 1;
	expect_cause(fm_broker_publish(f->b, "t", &m, 1, &r, &cause),
	    -FM_E_INVALID, &cause, "key 1 is empty");
	m.nkeys = 0;
	m.props = props;
	m.nprops = 1;
	expect_cause(fm_broker_publish(f->b, "t", &m, 1, &r, &cause),
	    -FM_E_INVALID, &cause, "property name 'bad name'");
	m.nprops = 0;
	memset(tag, 't', 256);
	tag[256] = '\0';
	m.tag = tag;
	expect_cause(fm_broker_publish(f->b, "t", &m, 1, &r, &cause),
	    -FM_E_INVALID, &cause, "tag is 256 bytes");
	m.tag = NULL;
	expect_cause(fm_broker_publish(f->b, "a b", &m, 1, &r, &cause),
	    -FM_E_INVALID, &cause, "outside");
}

static void
auto_create(void **state)
{
	struct fx *f = *state;
	struct fm_pub_result r;
	struct fm_topic_conf tc;
	char *cause = NULL;

	pub_ok(f->b, "auto1", "hello", NULL, NULL, &r);
	assert_int_equal(fm_broker_topic_get(f->b, "auto1", &tc, NULL), 0);
	assert_int_equal(tc.queues, 4);
	assert_int_equal(tc.perm, RW);

	f->cfg.auto_create_topic_enable = 0;
	assert_int_equal(
	    pub1(f->b, "auto2", "x", NULL, NULL, &r, &cause), -FM_E_NOT_FOUND);
	assert_string_equal(cause, "topic 'auto2' does not exist");
	free(cause);
}

static void
perm_and_role(void **state)
{
	struct fx *f = *state;
	struct fm_pub_result r;
	struct fm_pull_result pr;
	int created = -1;
	char *cause = NULL;

	assert_int_equal(
	    fm_broker_topic_put(f->b, "ro", 2, FM_PERM_READ, &created, NULL),
	    0);
	assert_int_equal(created, 1);
	assert_int_equal(
	    fm_broker_topic_put(f->b, "ro", 2, FM_PERM_READ, &created, NULL),
	    0);
	assert_int_equal(created, 0);
	expect_cause(pub1(f->b, "ro", "x", NULL, NULL, &r, &cause),
	    -FM_E_NOT_WRITABLE, &cause, "topic 'ro' is not writable (perm r)");
	put_ok(f->b, "wo", 2, FM_PERM_WRITE);
	expect_cause(fm_broker_pull(f->b, "wo", 0, 0, 1, &pr, &cause),
	    -FM_E_INVALID, &cause, "not readable");
	assert_int_equal(
	    fm_broker_topic_put(f->b, "x", 0, RW, NULL, NULL), -FM_E_INVALID);
	assert_int_equal(fm_broker_topic_put(f->b, "x", 1025, RW, NULL, NULL),
	    -FM_E_INVALID);
	assert_int_equal(
	    fm_broker_topic_put(f->b, "x", 1, 1, NULL, NULL), -FM_E_INVALID);

	f->cfg.broker_role = FM_ROLE_SLAVE;
	expect_cause(pub1(f->b, "wo", "x", NULL, NULL, &r, &cause),
	    -FM_E_NOT_WRITABLE, &cause, "broker is a slave");
	f->cfg.broker_role = FM_ROLE_ASYNC_MASTER;
}

static void
sharding_and_round_robin(void **state)
{
	struct fx *f = *state;
	struct fm_pub_result r;
	uint32_t counts[4] = {0}, q0;

	put_ok(f->b, "fifo", 4, RW);
	pub_ok(f->b, "fifo", "m0", NULL, "order-1", &r);
	q0 = r.queue_id;
	for (int i = 1; i < 10; i++) {
		pub_ok(f->b, "fifo", "m", NULL, "order-1", &r);
		assert_int_equal(r.queue_id, q0);
		assert_true(r.queue_offset == (uint64_t)i);
	}
	/* Same key, same queue after a restart. */
	fm_broker_close(f->b);
	fx_open(f);
	pub_ok(f->b, "fifo", "after", NULL, "order-1", &r);
	assert_int_equal(r.queue_id, q0);
	assert_true(r.queue_offset == 10);

	put_ok(f->b, "rr", 4, RW);
	for (int i = 0; i < 8; i++) {
		pub_ok(f->b, "rr", "m", NULL, NULL, &r);
		counts[r.queue_id]++;
	}
	for (int q = 0; q < 4; q++)
		assert_int_equal(counts[q], 2);
}

static void
get_by_msgid(void **state)
{
	struct fx *f = *state;
	struct fm_pub_result r;
	struct fm_msg_list l = FM_MSG_LIST_INIT;
	char other[FM_MSGID_LEN + 1];
	char *cause = NULL;

	pub_ok(f->b, "g", "find me", NULL, NULL, &r);
	assert_int_equal(fm_broker_get_message(f->b, r.msg_id, &l, &cause), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.items[0].msg_id, r.msg_id);
	assert_int_equal(l.items[0].rec.body_len, 7);
	assert_memory_equal(l.items[0].rec.body, "find me", 7);
	fm_msg_list_free(&l);

	expect_cause(fm_broker_get_message(f->b, "nothex", &l, &cause),
	    -FM_E_INVALID, &cause, "is not 32 hex characters");
	/* 10.0.0.1:8080 */
	memcpy(other, "0A00000100001F90", 16);
	memcpy(other + 16, r.msg_id + 16, 17);
	expect_cause(fm_broker_get_message(f->b, other, &l, &cause),
	    -FM_E_NOT_FOUND, &cause, "names broker 10.0.0.1:8080");
	/* Our address, an offset where no record starts. */
	memcpy(other, r.msg_id, 16);
	memcpy(other + 16, "0000000000000003", 17);
	assert_int_not_equal(fm_broker_get_message(f->b, other, &l, &cause), 0);
	assert_int_equal(l.n, 0);
	free(cause);
	fm_msg_list_free(&l);
}

static void
query_by_key(void **state)
{
	struct fx *f = *state;
	struct fm_pub_result r;
	struct fm_msg_list l = FM_MSG_LIST_INIT;
	char *cause = NULL;
	int64_t stop = fm_mono_ms() + 5000;

	put_ok(f->b, "qk", 2, RW);
	pub_ok(f->b, "qk", "first", "K", NULL, &r);
	pub_ok(f->b, "qk", "other", "J", NULL, &r);
	pub_ok(f->b, "qk", "second", "K", NULL, &r);
	pub_ok(f->b, "qk", "third", "K", NULL, &r);
	/* Keys may become searchable only when the index commits. */
	for (;;) {
		assert_int_equal(
		    fm_broker_query_key(f->b, "qk", "K", 10, &l, &cause), 0);
		if (l.n == 3 || fm_mono_ms() > stop)
			break;
		fm_msg_list_free(&l);
		usleep(20000);
	}
	assert_int_equal(l.n, 3);
	assert_memory_equal(l.items[0].rec.body, "third", 5);
	assert_memory_equal(l.items[1].rec.body, "second", 6);
	assert_memory_equal(l.items[2].rec.body, "first", 5);
	fm_msg_list_free(&l);
	assert_int_equal(fm_broker_query_key(f->b, "qk", "K", 2, &l, NULL), 0);
	assert_int_equal(l.n, 2);
	assert_memory_equal(l.items[0].rec.body, "third", 5);
	fm_msg_list_free(&l);
	expect_cause(fm_broker_query_key(f->b, "nope", "K", 2, &l, &cause),
	    -FM_E_NOT_FOUND, &cause, "topic 'nope' does not exist");
}

static void
query_by_time(void **state)
{
	struct fx *f = *state;
	struct fm_pub_result r;
	struct fm_msg_list l = FM_MSG_LIST_INIT;
	char body[16];
	int64_t t0 = fm_now_ms(), t1;

	put_ok(f->b, "qt", 3, RW);
	for (int i = 0; i < 6; i++) {
		snprintf(body, sizeof(body), "m%d", i);
		pub_ok(f->b, "qt", body, NULL, NULL, &r);
		usleep(3000);
	}
	t1 = fm_now_ms();
	assert_int_equal(
	    fm_broker_query_time(f->b, "qt", t0, t1, 100, &l, NULL), 0);
	assert_int_equal(l.n, 6);
	for (size_t i = 0; i + 1 < l.n; i++)
		assert_true(
		    l.items[i].rec.store_ts >= l.items[i + 1].rec.store_ts);
	assert_memory_equal(l.items[0].rec.body, "m5", 2);
	assert_memory_equal(l.items[5].rec.body, "m0", 2);
	fm_msg_list_free(&l);
	assert_int_equal(
	    fm_broker_query_time(f->b, "qt", t0, t1, 2, &l, NULL), 0);
	assert_int_equal(l.n, 2);
	assert_memory_equal(l.items[0].rec.body, "m5", 2);
	assert_memory_equal(l.items[1].rec.body, "m4", 2);
	fm_msg_list_free(&l);
	assert_int_equal(fm_broker_query_time(
	                     f->b, "qt", t0 - 100000, t0 - 50000, 10, &l, NULL),
	    0);
	assert_int_equal(l.n, 0);
	assert_int_equal(
	    fm_broker_query_time(f->b, "qt", t1, t0 - 1, 10, &l, NULL),
	    -FM_E_INVALID);
	fm_msg_list_free(&l);
}

static void
offsets(void **state)
{
	struct fx *f = *state;
	struct fm_pub_result r;
	struct fm_pull_result pr;
	char *cause = NULL;

	put_ok(f->b, "off", 1, RW);
	pub_ok(f->b, "off", "a", NULL, NULL, &r);
	pub_ok(f->b, "off", "b", NULL, NULL, &r);
	expect_cause(fm_broker_pull(f->b, "off", 0, 10, 32, &pr, &cause),
	    -FM_E_INVALID, &cause, "offset 10 is beyond maxOffset 2");
	assert_int_equal(fm_broker_pull(f->b, "off", 0, 2, 32, &pr, NULL), 0);
	assert_int_equal(pr.msgs.n, 0);
	assert_true(pr.next_offset == 2 && pr.max_offset == 2);
	fm_msg_list_free(&pr.msgs);
	assert_int_equal(fm_broker_pull(f->b, "off", 0, 1, 32, &pr, NULL), 0);
	assert_int_equal(pr.msgs.n, 1);
	assert_memory_equal(pr.msgs.items[0].rec.body, "b", 1);
	fm_msg_list_free(&pr.msgs);
	assert_int_equal(fm_broker_pull(f->b, "off", 0, 0, 1, &pr, NULL), 0);
	assert_int_equal(pr.msgs.n, 1);
	assert_true(pr.next_offset == 1);
	fm_msg_list_free(&pr.msgs);
	expect_cause(fm_broker_pull(f->b, "off", 1, 0, 32, &pr, &cause),
	    -FM_E_NOT_FOUND, &cause, "has no queue 1");
	expect_cause(fm_broker_pull(f->b, "none", 0, 0, 32, &pr, &cause),
	    -FM_E_NOT_FOUND, &cause, "topic 'none' does not exist");
	assert_int_equal(
	    fm_broker_pull(f->b, "off", 0, 0, 0, &pr, NULL), -FM_E_INVALID);
	assert_int_equal(
	    fm_broker_pull(f->b, "off", 0, 0, FM_PULL_MAX + 1, &pr, NULL),
	    -FM_E_INVALID);
}

static void
watches(void **state)
{
	struct fx *f = *state;
	struct fm_pub_result r;
	struct fx_wake w, any, t, gone;
	struct fm_watch *h;
	struct fm_broker_metrics mt;
	int64_t start;

	put_ok(f->b, "w", 2, RW);
	fx_wake_init(&w);
	fx_wake_init(&any);
	fx_wake_init(&gone);
	fm_broker_watch(f->b, "w", 0, 0, fm_mono_ms() + 5000, fx_wake_cb, &w);
	fm_broker_watch(
	    f->b, "w", FM_ANY_QUEUE, 0, fm_mono_ms() + 5000, fx_wake_cb, &any);
	h = fm_broker_watch(
	    f->b, "w", 1, 100, fm_mono_ms() + 5000, fx_wake_cb, &gone);
	fm_broker_metrics(f->b, &mt);
	assert_true(mt.waiters == 3);
	assert_int_equal(fx_wake_wait(&w, 50), -1);
	pub_ok(f->b, "w", "x", NULL, "k", &r);
	if (r.queue_id != 0)
		pub_ok(f->b, "w", "y", NULL, "k2", &r);
	assert_int_equal(fx_wake_wait(&any, 3000), FM_WAKE_DATA);
	assert_int_equal(fm_broker_unwatch(f->b, h), 1);
	assert_int_equal(fm_broker_unwatch(f->b, h), 0);

	/* Data already there: fires at once. */
	fx_wake_init(&t);
	fm_broker_watch(
	    f->b, "w", r.queue_id, 0, fm_mono_ms() + 5000, fx_wake_cb, &t);
	assert_int_equal(fx_wake_wait(&t, 1000), FM_WAKE_DATA);
	fx_wake_destroy(&t);

	start = fm_mono_ms();
	fx_wake_init(&t);
	fm_broker_watch(f->b, "w", 0, 1000, fm_mono_ms() + 150, fx_wake_cb, &t);
	assert_int_equal(fx_wake_wait(&t, 3000), FM_WAKE_TIMEOUT);
	assert_true(fm_mono_ms() - start >= 140);
	assert_int_equal(gone.count, 0);
	fx_wake_destroy(&t);

	/* Closing fires what is still parked, once. */
	fx_wake_init(&t);
	fm_broker_watch(
	    f->b, "w", 0, 1000, fm_mono_ms() + 60000, fx_wake_cb, &t);
	fm_broker_close(f->b);
	f->b = NULL;
	assert_int_equal(t.count, 1);
	assert_int_equal(t.why, FM_WAKE_SHUTDOWN);
	assert_int_equal(fx_wake_wait(&w, 3000), FM_WAKE_DATA);
	assert_int_equal(w.count, 1);
	assert_int_equal(any.count, 1);
	fx_open(f);
	fx_wake_destroy(&w);
	fx_wake_destroy(&any);
	fx_wake_destroy(&t);
	fx_wake_destroy(&gone);
}

static void
delete_and_recreate(void **state)
{
	struct fx *f = *state;
	struct fm_pub_result r;
	struct fm_pull_result pr;
	struct fm_topic_conf tc;
	uint64_t min, max;
	char *cause = NULL;

	put_ok(f->b, "del", 1, RW);
	pub_ok(f->b, "del", "a", "K", NULL, &r);
	pub_ok(f->b, "del", "b", "K", NULL, &r);
	assert_int_equal(fm_broker_topic_delete(f->b, "del", NULL), 0);
	assert_int_equal(
	    fm_broker_topic_get(f->b, "del", &tc, NULL), -FM_E_NOT_FOUND);
	expect_cause(fm_broker_topic_delete(f->b, "del", &cause),
	    -FM_E_NOT_FOUND, &cause, "topic 'del' does not exist");
	assert_int_equal(
	    fm_broker_pull(f->b, "del", 0, 0, 8, &pr, NULL), -FM_E_NOT_FOUND);
	put_ok(f->b, "del", 1, RW);
	fm_broker_queue_range(f->b, "del", 0, &min, &max);
	assert_true(min == 0 && max == 0);
	assert_int_equal(fm_broker_pull(f->b, "del", 0, 0, 8, &pr, NULL), 0);
	assert_int_equal(pr.msgs.n, 0);
	fm_msg_list_free(&pr.msgs);
	pub_ok(f->b, "del", "c", NULL, NULL, &r);
	assert_true(r.queue_offset == 0);
}

static void
metrics_info_routes(void **state)
{
	struct fx *f = *state;
	struct fm_pub_result r;
	struct fm_pull_result pr;
	struct fm_broker_metrics m;
	struct fm_broker_info info;
	struct fm_route_broker *rb;
	struct fm_route_queue *rq;
	size_t nb, nq;
	struct fm_topic_conf *list;
	size_t nl;
	char *cause = NULL;

	put_ok(f->b, "m1", 1, RW);
	put_ok(f->b, "m0", 3, FM_PERM_READ);
	pub_ok(f->b, "m1", "12345", NULL, NULL, &r);
	pub_ok(f->b, "m1", "678", NULL, NULL, &r);
	assert_int_equal(
	    pub1(f->b, "m0", "x", NULL, NULL, &r, NULL), -FM_E_NOT_WRITABLE);
	assert_int_equal(fm_broker_pull(f->b, "m1", 0, 0, 10, &pr, NULL), 0);
	fm_msg_list_free(&pr.msgs);
	fm_broker_metrics(f->b, &m);
	assert_true(m.published_msgs == 2);
	assert_true(m.published_bytes == 8);
	assert_true(m.publish_errors == 1);
	assert_true(m.pulled_msgs == 2);
	assert_true(m.waiters == 0);
	assert_int_equal(m.topics, 2);

	assert_int_equal(fm_broker_topic_list(f->b, &list, &nl), 0);
	assert_int_equal(nl, 2);
	assert_string_equal(list[0].name, "m0");
	assert_int_equal(list[0].queues, 3);
	assert_string_equal(list[1].name, "m1");
	free(list);

	fm_broker_info(f->b, &info);
	assert_string_equal(info.cluster, "DefaultCluster");
	assert_string_equal(info.role, "ASYNC_MASTER");
	assert_string_equal(info.flush, "ASYNC_FLUSH");
	assert_string_equal(info.addr, "http://127.0.0.1:18080");
	assert_non_null(info.version);
	assert_true(info.started_ms > 0);
	assert_true(info.store.write_offset > 0);

	assert_int_equal(fm_broker_routes(f->b, &rb, &nb), 0);
	assert_int_equal(nb, 1);
	assert_int_equal(rb[0].naddrs, 1);
	assert_string_equal(rb[0].addrs[0].addr, "http://127.0.0.1:18080");
	assert_int_equal(rb[0].addrs[0].alive, 1);
	free(rb);
	assert_int_equal(
	    fm_broker_topic_route(f->b, "m0", &rb, &nb, &rq, &nq, &cause), 0);
	assert_int_equal(nb, 1);
	assert_int_equal(nq, 1);
	assert_int_equal(rq[0].read_queues, 3);
	assert_int_equal(rq[0].write_queues, 3);
	assert_int_equal(rq[0].perm, FM_PERM_READ);
	assert_string_equal(rq[0].broker_name, info.name);
	free(rb);
	free(rq);
	expect_cause(
	    fm_broker_topic_route(f->b, "zz", &rb, &nb, &rq, &nq, &cause),
	    -FM_E_NOT_FOUND, &cause, "no route for topic 'zz'");
}

/* Retention deletes old segments: a pull below the new min starts at
 * min, and a msgId of a deleted record is reported, not crashed on. */
static void
below_min_after_retention(void **state)
{
	struct fx *f = *state;
	struct fm_pub_msg m = {0};
	struct fm_pub_result first, r;
	struct fm_pull_result pr;
	struct fm_msg_list l = FM_MSG_LIST_INIT;
	char *body = xcalloc(1, 2000);
	char *cause = NULL;
	uint64_t min, max;
	int rc;

	put_ok(f->b, "ret", 1, RW);
	memset(body, 'r', 2000);
	m.body = body;
	m.body_len = 2000;
	for (int i = 0; i < 100; i++) {
		assert_int_equal(
		    fm_broker_publish(f->b, "ret", &m, 1, &r, NULL), 0);
		if (i == 0)
			first = r;
	}
	wait_readable(f->b, "ret", 0, 99);
	fm_store_housekeep(f->b->st, fm_now_ms() + 100ll * 3600 * 1000);
	fm_broker_queue_range(f->b, "ret", 0, &min, &max);
	assert_true(max == 100);
	assert_true(min > 0 && min < 100);
	assert_int_equal(fm_broker_pull(f->b, "ret", 0, 0, 4, &pr, NULL), 0);
	assert_true(pr.min_offset == min);
	assert_int_equal(pr.msgs.n, 4);
	assert_true(pr.msgs.items[0].rec.queue_offset == min);
	assert_true(pr.next_offset == min + 4);
	fm_msg_list_free(&pr.msgs);
	rc = fm_broker_get_message(f->b, first.msg_id, &l, &cause);
	assert_true(rc == -FM_E_GONE || rc == -FM_E_NOT_FOUND);
	assert_non_null(cause);
	assert_int_equal(l.n, 0);
	free(cause);
	free(body);
}

/* ---- publishers and a long-polling consumer at once ---- */

#define NPUB 4
#define PER_PUB 150

struct race {
	struct fm_broker *b;
	int id;
};

static void *
publisher(void *p)
{
	struct race *a = p;
	char body[32];
	struct fm_pub_result r;

	for (int i = 0; i < PER_PUB; i++) {
		snprintf(body, sizeof(body), "%d:%d", a->id, i);
		if (pub1(a->b, "race", body, NULL, NULL, &r, NULL) < 0)
			return (void *)1;
	}
	return NULL;
}

/* Pull every queue until NPUB * PER_PUB messages were seen, each once and
 * in queue order; when a round finds nothing, park on queue 0 (200 ms at
 * most, as other queues may be the ones that grow). */
static void
consume_all(struct fm_broker *b, uint32_t queues, int *seen)
{
	uint64_t next[4] = {0};
	int total = 0;
	int64_t stop = fm_mono_ms() + 10000;

	while (total < NPUB * PER_PUB && fm_mono_ms() < stop) {
		int got = 0;

		for (uint32_t q = 0; q < queues; q++) {
			struct fm_pull_result pr;

			assert_int_equal(fm_broker_pull(b, "race", q, next[q],
			                     64, &pr, NULL),
			    0);
			for (size_t i = 0; i < pr.msgs.n; i++) {
				const struct fm_record *rec =
				    &pr.msgs.items[i].rec;
				char txt[32];
				int pub, k;

				assert_true(rec->queue_offset == next[q] + i);
				memcpy(txt, rec->body, rec->body_len);
				txt[rec->body_len] = '\0';
				assert_int_equal(
				    sscanf(txt, "%d:%d", &pub, &k), 2);
				seen[pub * PER_PUB + k]++;
			}
			got += (int)pr.msgs.n;
			next[q] = pr.next_offset;
			fm_msg_list_free(&pr.msgs);
		}
		total += got;
		if (got == 0) {
			struct fx_wake w;

			fx_wake_init(&w);
			fm_broker_watch(b, "race", 0, next[0],
			    fm_mono_ms() + 200, fx_wake_cb, &w);
			assert_true(fx_wake_wait(&w, 3000) >= 0);
			fx_wake_destroy(&w);
		}
	}
	assert_int_equal(total, NPUB * PER_PUB);
}

static void
publish_while_consuming(void **state)
{
	struct fx *f = *state;
	pthread_t th[NPUB];
	struct race args[NPUB];
	int *seen = xcalloc(NPUB * PER_PUB, sizeof(*seen));

	put_ok(f->b, "race", 4, RW);
	for (int i = 0; i < NPUB; i++) {
		args[i].b = f->b;
		args[i].id = i;
		assert_int_equal(
		    pthread_create(&th[i], NULL, publisher, &args[i]), 0);
	}
	consume_all(f->b, 4, seen);
	for (int i = 0; i < NPUB; i++) {
		void *ret;

		pthread_join(th[i], &ret);
		assert_null(ret);
	}
	for (int i = 0; i < NPUB * PER_PUB; i++)
		assert_int_equal(seen[i], 1);
	free(seen);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(topic_names),
	    cmocka_unit_test_setup_teardown(
	        publish_pull_exact, setup, teardown),
	    cmocka_unit_test_setup_teardown(batch_atomic, setup, teardown),
	    cmocka_unit_test_setup_teardown(bad_messages, setup, teardown),
	    cmocka_unit_test_setup_teardown(auto_create, setup, teardown),
	    cmocka_unit_test_setup_teardown(perm_and_role, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        sharding_and_round_robin, setup, teardown),
	    cmocka_unit_test_setup_teardown(get_by_msgid, setup, teardown),
	    cmocka_unit_test_setup_teardown(query_by_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(query_by_time, setup, teardown),
	    cmocka_unit_test_setup_teardown(offsets, setup, teardown),
	    cmocka_unit_test_setup_teardown(watches, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        delete_and_recreate, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        metrics_info_routes, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        below_min_after_retention, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        publish_while_consuming, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
