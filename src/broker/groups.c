/*
 * groups.c - competing consumer groups with RocketMQ 5 SimpleConsumer /
 * POP semantics: receive, ack, nack, invisibility, retries, dead letters,
 * group state and reset (the rules are in broker.h).
 *
 * Owns: every group's offsets and in-flight entries in memory, the
 * groups' settings (one per group name, for all its topics) as loaded
 * from and written to the store, the receipt handle format, the
 * visibility timer thread and the DLQ copies.
 * Does not own: durability (the store commits the rows this file builds,
 * in groups), the long-poll machinery (waiters.c; a receive parks on the
 * group's watch topic, see groups.h), HTTP or JSON.
 *
 * Per group and queue (struct gqueue), queue offsets:
 *   1. ack <= next; ents holds, sorted by offset, exactly the messages of
 *      [ack, next) that are in flight; every other offset of that range
 *      is done (acked, sent to the DLQ, or skipped by a tag filter), so
 *      ack is ents[0].off, or next when ents is empty.
 *   2. An entry has at most one live receipt: nonce != 0 names it, and
 *      a handle is accepted only while its nonce is the entry's. Nonces
 *      come from one counter per node that starts at the wall clock in
 *      microseconds, so no two deliveries share one, across restarts too.
 *   3. An entry is handed out only when visible_at <= now, it is not
 *      being moved to the DLQ (dlq), and reconsume < maxReconsumeTimes:
 *      one whose last allowed delivery failed waits for the timer, which
 *      moves it to the DLQ. reconsume is that of the entry's last
 *      delivery (a delivery adds one), -1 while it had none: a new
 *      message enters ents at -1 when handed out, and a failed receive
 *      puts it back there (Failed receives).
 *   4. seq only grows; it moves whenever the group may have something new
 *      to hand out (append, visibility reached, a queue's oldest message
 *      done, which unblocks a FIFO receive, reset), and the move is
 *      announced to the waiters on the group's watch topic.
 *   5. A FIFO receive takes from a queue only its oldest entry (when
 *      visible again) or, when the queue has none in flight, one new
 *      message: the next message of a queue never overtakes a retry. A
 *      receive is FIFO when its request asks, or when the group's
 *      settings say fifo (struct gconf).
 * visible_at is wall-clock epoch ms, like the rows in state.db, so that
 * visibility survives a restart; the timer converts it to a wait.
 * All of it is guarded by gs->lock, never held across a store commit or a
 * publish (queuing rows for a commit only takes the committer's queue
 * lock, a leaf). Groups are never freed before fm_groups_close, so a
 * pointer to one stays valid without the lock (and fm_groups_close
 * first waits for the completions that may still touch them).
 *
 * Settings: gs->confs holds exactly the rows of the store's group
 * settings (loaded at open); a group points at the settings of its name
 * (g->conf, NULL when it has none), settings are never freed before
 * fm_groups_close either. A change is written to the store first, then
 * made in memory under gs->lock; gs->conf_lock, taken before gs->lock
 * and held across that write, keeps concurrent changes in one order in
 * both places.
 *
 * Durability: each call builds the rows of its changes under the lock
 * and queues them to the store's committer before releasing it
 * (rows_queue), so state.db gets the changes in the order they were made
 * and always holds the result of a prefix of them
 * (fm_store_group_write_async): a crash loses at most a suffix. Nothing
 * is confirmed before the commit of its rows reports (done of the async
 * calls, broker.h): a receive's handles go out only once its receipts
 * are durable; an ack or nack is answered once its commit reports, OK
 * when it committed, else an error (its change stands in memory and its
 * rows go with later commits: not known durable, which is all the error
 * says); a call with nothing to commit (only stale or invalid handles)
 * still completes through the committer, after everything queued before
 * it (a barrier), so a handle is never answered stale before the ack
 * that made it stale is durable. So a lost suffix only undoes what
 * nobody was told was done: a receive that never answered leaves its
 * messages at or above next again (they go out as new), an unconfirmed
 * ack leaves its receipt (the message comes back when visible). On load
 * an offset of [ack, next) without a receipt row is done, and receipts
 * above next move next up: a crash can only cause a redelivery, never a
 * skip. Rows that describe no answer (an empty receive's skips, DLQ
 * moves) are queued the same way, in the background.
 *
 * Failed receives: a receive whose commit reports an error, or that
 * fails reading, answers an error, so nobody got its messages and it
 * must not count as a delivery. It is undone (undo_locked; for a failed
 * commit by recv_done, on the committer thread, the one time that thread
 * takes gs->lock): every entry it handed out whose nonce is still the
 * one it gave gets no nonce, its reconsume back and visible_at now (the
 * timer announces it), and the compensating receipt rows are queued.
 * recv_done queues them before the committer takes its next batch, and
 * the failed rows are retried from the store's retry set ahead of that
 * batch, so both commit in one transaction: state.db converges to the
 * undone state. An entry the timer was moving to the DLQ meanwhile (a
 * commit slower than invisible) stays in the group: a copy already sent
 * to the DLQ is a duplicate, not a loss. An entry handed out again since
 * (new nonce) belongs to that later receive.
 */
#include "config.h" /* first: it defines _GNU_SOURCE */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/crc32c.h"
#include "base/endian.h"
#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "broker/groups.h"
#include "broker/internal.h"

#define GROUP_MAX_LEN (FM_REC_MAX_TOPIC - (sizeof(DLQ_PREFIX) - 1))
#define DLQ_PREFIX "%DLQ%"
/* RocketMQ's name of a group's retry topic is RETRY_PREFIX{group}:
 * reserved like DLQ_PREFIX, though ferrymq has no retry topics. */
#define RETRY_PREFIX "%RETRY%"
#define READ_CHUNK 64 /* consume queue entries read at a time */
#define MAX_TAGS 32 /* tags in one filter expression */
#define RECEIPT_BYTES 32
#define RECEIPT_VERSION 1
#define DLQ_RETRY_MS 1000 /* a failed DLQ append is tried again after */
#define TIMER_IDLE_MS 3600000

/* RocketMQ's retry ladder: delay levels 3.. (10s 30s 1m ... 2h). */
static const int64_t ladder_ms[] = {10000, 30000, 60000, 120000, 180000, 240000,
    300000, 360000, 420000, 480000, 540000, 600000, 1200000, 1800000, 3600000,
    7200000};

/* One message of a queue handed out and not yet done. */
struct gent {
	uint64_t off; /* queue offset */
	uint64_t nonce; /* live receipt, 0 for none (invariant 2) */
	int32_t reconsume; /* reconsumeTimes of the last delivery, -1 while
	                      there was none (Failed receives) */
	int64_t visible_at; /* epoch ms it may be handed out again */
	unsigned armed : 1; /* visible_at not yet announced by the timer */
	unsigned dlq : 1; /* being copied to the DLQ */
};

struct gqueue {
	uint64_t ack; /* ack watermark (invariant 1) */
	uint64_t next; /* next queue offset never handed out */
	struct gent *ents; /* owned, sorted by off */
	size_t n, cap;
};

/* A group name's settings, for all its topics. */
struct gconf {
	struct fm_group_conf c; /* as in the store */
	struct gconf *next;
};

struct group {
	char topic[FM_REC_MAX_TOPIC + 1];
	char name[FM_REC_MAX_TOPIC + 1];
	struct gconf *conf; /* of name, NULL when it has none */
	char watch[FM_WATCH_TOPIC_LEN + 1]; /* "topic/group", immutable */
	uint64_t seq; /* invariant 4 */
	uint32_t nq; /* queues known; grows with the topic */
	struct gqueue *q; /* owned, nq */
	uint32_t rr; /* queue the next receive starts with */
	struct group *next;
};

struct fm_groups {
	struct fm_broker *b; /* borrowed */
	pthread_mutex_t conf_lock; /* serialises settings changes (Settings) */
	pthread_mutex_t lock; /* guards everything below and every group */
	pthread_cond_t cond; /* timer: wake_at moved earlier, or stop */
	struct group *list;
	struct gconf *confs; /* every group name's settings */
	uint64_t nonce; /* last nonce given */
	int64_t wake_at; /* epoch ms the timer looks next; INT64_MAX none */
	int stop;
	int started; /* the timer thread runs */
	pthread_t timer;
};

/* Rows to commit after the lock is released. */
struct rows {
	struct fm_grow *v;
	size_t n, cap;
};

/* A parsed tag expression. */
struct filter {
	int all;
	size_t n;
	const char *tags[MAX_TAGS]; /* into buf */
	size_t lens[MAX_TAGS];
	uint64_t hashes[MAX_TAGS];
	char *buf; /* owned copy of the expression */
};

/* ---- rows ---- */

static struct fm_grow *
row_new(
    struct rows *rs, const struct group *g, enum fm_grow_kind kind, uint32_t qi)
{
	struct fm_grow *r;

	if (rs->n == rs->cap) {
		rs->cap = rs->cap ? rs->cap * 2 : 16;
		rs->v = xreallocarray(rs->v, rs->cap, sizeof(*rs->v));
	}
	r = &rs->v[rs->n++];
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	memcpy(r->topic, g->topic, sizeof(r->topic));
	memcpy(r->group, g->name, sizeof(r->group));
	r->queue_id = qi;
	return r;
}

static void
row_offset(struct rows *rs, const struct group *g, uint32_t qi)
{
	struct fm_grow *r = row_new(rs, g, FM_GROW_OFFSET, qi);

	r->offset = g->q[qi].ack;
	r->next = g->q[qi].next;
}

static void
row_receipt(
    struct rows *rs, const struct group *g, uint32_t qi, const struct gent *e)
{
	struct fm_grow *r = row_new(rs, g, FM_GROW_RECEIPT, qi);

	r->offset = e->off;
	r->nonce = e->nonce;
	r->reconsume = e->reconsume;
	r->visible_at = e->visible_at;
}

static void
row_del(struct rows *rs, const struct group *g, uint32_t qi, uint64_t off)
{
	row_new(rs, g, FM_GROW_RECEIPT_DEL, qi)->offset = off;
}

static int
store_fail(char **cause, int rc)
{
	return fm_broker_fail(
	    cause, rc, "cannot store the group state: %s", fm_err_msg(rc));
}

/* Lock held: hand the rows of the changes just made to the store's
 * committer (see Durability); rs is emptied. done NULL: nobody waits (the
 * store logs a failed commit). Returns what fm_store_group_write_async
 * does. */
static int
rows_queue(struct fm_groups *gs, struct rows *rs, fm_done_fn done, void *arg)
{
	int rc = fm_store_group_write_async(gs->b->st, rs->v, rs->n, done, arg);

	rs->v = NULL;
	rs->n = rs->cap = 0;
	if (rc < 0 && done == NULL)
		fm_warn(
		    "groups: cannot store the group state: %s", fm_err_msg(rc));
	return rc;
}

/* The synchronous form of an async call that returned rc, with w as its
 * completion: 0, the call's error, or a failed commit as the error. */
static int
sync_end(struct fm_store_wait *w, int rc, char **cause)
{
	int err = fm_store_wait_end(w, rc);

	if (rc < 0)
		return rc;
	return err < 0 ? store_fail(cause, err) : 0;
}

/* ---- queues and entries ---- */

static struct gent *
ent_find(struct gqueue *q, uint64_t off)
{
	size_t lo = 0, hi = q->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (q->ents[mid].off < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < q->n && q->ents[lo].off == off ? &q->ents[lo] : NULL;
}

/* Append e; its offset is above every entry's (it comes from next). */
static struct gent *
ent_push(struct gqueue *q, const struct gent *e)
{
	if (q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 16;
		q->ents = xreallocarray(q->ents, q->cap, sizeof(*q->ents));
	}
	q->ents[q->n] = *e;
	return &q->ents[q->n++];
}

static void
ent_remove(struct gqueue *q, struct gent *e)
{
	size_t i = (size_t)(e - q->ents);

	memmove(e, e + 1, (q->n - i - 1) * sizeof(*e));
	q->n--;
}

/* Re-establish invariant 1's ack; 1 when it moved. */
static int
ack_update(struct gqueue *q)
{
	uint64_t ack = q->n > 0 ? q->ents[0].off : q->next;

	if (ack == q->ack)
		return 0;
	q->ack = ack;
	return 1;
}

/* The queue's retained range moved under the group: retention deleted
 * offsets below min, or the topic was deleted and made again (max below
 * next). Returns 1 when the offsets changed. */
static int
queue_clamp(struct gqueue *q, uint64_t min, uint64_t max)
{
	size_t drop = 0;

	if (max < q->next) {
		q->n = 0;
		q->ack = q->next = max;
		return 1;
	}
	if (q->next < min)
		q->next = min;
	while (drop < q->n && q->ents[drop].off < min)
		drop++;
	if (drop > 0) {
		memmove(
		    q->ents, q->ents + drop, (q->n - drop) * sizeof(*q->ents));
		q->n -= drop;
	}
	return ack_update(q) || drop > 0;
}

static void
queues_grow(struct group *g, uint32_t nq)
{
	if (nq <= g->nq)
		return;
	g->q = xreallocarray(g->q, nq, sizeof(*g->q));
	memset(g->q + g->nq, 0, (nq - g->nq) * sizeof(*g->q));
	g->nq = nq;
}

static void
timer_schedule(struct fm_groups *gs, int64_t at)
{
	if (at < gs->wake_at) {
		gs->wake_at = at;
		pthread_cond_signal(&gs->cond);
	}
}

static uint64_t
nonce_next(struct fm_groups *gs)
{
	return ++gs->nonce;
}

/* ---- groups ---- */

static struct gconf *
conf_find(struct fm_groups *gs, const char *name)
{
	for (struct gconf *c = gs->confs; c != NULL; c = c->next)
		if (strcmp(c->c.name, name) == 0)
			return c;
	return NULL;
}

static struct group *
group_find(struct fm_groups *gs, const char *topic, const char *name)
{
	for (struct group *g = gs->list; g != NULL; g = g->next)
		if (strcmp(g->topic, topic) == 0 && strcmp(g->name, name) == 0)
			return g;
	return NULL;
}

static struct group *
group_add(struct fm_groups *gs, const char *topic, const char *name)
{
	struct group *g = xcalloc(1, sizeof(*g));

	snprintf(g->topic, sizeof(g->topic), "%s", topic);
	snprintf(g->name, sizeof(g->name), "%s", name);
	snprintf(g->watch, sizeof(g->watch), "%s/%s", topic, name);
	g->conf = conf_find(gs, name);
	g->next = gs->list;
	gs->list = g;
	return g;
}

/* The group, made when absent (each queue from its oldest message), with
 * at least nq queues. New queues are written to rs. Lock held. */
static struct group *
group_get(struct fm_groups *gs, const char *topic, const char *name,
    uint32_t nq, struct rows *rs)
{
	struct group *g = group_find(gs, topic, name);
	uint32_t old;

	if (g == NULL)
		g = group_add(gs, topic, name);
	old = g->nq;
	queues_grow(g, nq);
	for (uint32_t qi = old; qi < g->nq; qi++) {
		uint64_t min, max;

		fm_store_queue_range(gs->b->st, topic, qi, &min, &max);
		g->q[qi].ack = g->q[qi].next = min;
		row_offset(rs, g, qi);
	}
	return g;
}

/* ---- receipt handles ---- */

/*
 * A receipt handle is the unpadded base64url (RFC 4648 section 5: 43
 * characters, safe in URLs and JSON without escaping, and short enough
 * that an ack of 1024 handles fits a 64 KiB body) of these 32 bytes:
 *
 *  offset size field
 *  ------ ---- ------------------------------------------------------
 *       0    1 version       RECEIPT_VERSION
 *       1    3 zero
 *       4    4 topic_crc     CRC-32C of the topic name
 *       8    4 group_crc     CRC-32C of the group name
 *      12    4 queue_id
 *      16    8 queue_offset
 *      24    8 nonce         the delivery (invariant 2)
 *
 * Integers little-endian. The CRCs tell a handle of another topic or
 * group from a stale one; the nonce tells a redelivery from the delivery
 * the handle was given for.
 */
struct receipt {
	uint32_t topic_crc;
	uint32_t group_crc;
	uint32_t queue_id;
	uint64_t off;
	uint64_t nonce;
};

static uint32_t
name_crc(const char *s)
{
	return fm_crc32c(0, s, strlen(s));
}

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void
receipt_encode(const struct group *g, uint32_t qi, const struct gent *e,
    char out[FM_RECEIPT_LEN + 1])
{
	unsigned char raw[RECEIPT_BYTES] = {RECEIPT_VERSION};
	size_t o = 0;

	fm_le_put32(raw + 4, name_crc(g->topic));
	fm_le_put32(raw + 8, name_crc(g->name));
	fm_le_put32(raw + 12, qi);
	fm_le_put64(raw + 16, e->off);
	fm_le_put64(raw + 24, e->nonce);
	/* 6 bits at a time, the last group of 2 bits padded with zeros */
	for (size_t bit = 0; bit < RECEIPT_BYTES * 8; bit += 6) {
		unsigned v = (unsigned)raw[bit / 8] << 8;

		if (bit / 8 + 1 < RECEIPT_BYTES)
			v |= raw[bit / 8 + 1];
		out[o++] = b64url[(v >> (10 - bit % 8)) & 63];
	}
	out[o] = '\0';
}

static int
b64url_val(char c)
{
	const char *p = c != '\0' ? strchr(b64url, c) : NULL;

	return p != NULL ? (int)(p - b64url) : -1;
}

static int
receipt_decode(const char *s, struct receipt *r)
{
	unsigned char raw[RECEIPT_BYTES + 1] = {0};

	if (s == NULL || strlen(s) != FM_RECEIPT_LEN)
		return -FM_E_INVALID;
	for (size_t i = 0, bit = 0; i < FM_RECEIPT_LEN; i++, bit += 6) {
		int v = b64url_val(s[i]);
		unsigned w;

		if (v < 0)
			return -FM_E_INVALID;
		w = (unsigned)v << (10 - bit % 8);
		raw[bit / 8] |= (unsigned char)(w >> 8);
		raw[bit / 8 + 1] |= (unsigned char)w;
	}
	/* the padding bits and the reserved bytes are zero */
	if (raw[RECEIPT_BYTES] != 0 || raw[0] != RECEIPT_VERSION || raw[1] ||
	    raw[2] || raw[3])
		return -FM_E_INVALID;
	r->topic_crc = fm_le_get32(raw + 4);
	r->group_crc = fm_le_get32(raw + 8);
	r->queue_id = fm_le_get32(raw + 12);
	r->off = fm_le_get64(raw + 16);
	r->nonce = fm_le_get64(raw + 24);
	return r->nonce != 0 ? 0 : -FM_E_INVALID;
}

/* ---- tag filters ---- */

static void
filter_free(struct filter *f)
{
	free(f->buf);
}

/* "a||b" (spaces around tags ignored), "*" or "" or NULL for all. */
static int
filter_parse(const char *expr, struct filter *f, char **cause)
{
	char *p;

	memset(f, 0, sizeof(*f));
	f->all = 1;
	if (expr == NULL)
		return 0;
	f->buf = xstrdup(expr);
	for (p = f->buf; p != NULL;) {
		char *bar = strstr(p, "||"), *end;

		if (bar != NULL)
			*bar = '\0';
		while (*p == ' ')
			p++;
		end = p + strlen(p);
		while (end > p && end[-1] == ' ')
			*--end = '\0';
		if (strcmp(p, "*") == 0) {
			f->n = 0;
			return 0;
		}
		if (*p != '\0') {
			if (f->n == MAX_TAGS)
				return fm_broker_fail(cause, -FM_E_INVALID,
				    "tags: at most %d tags", MAX_TAGS);
			f->tags[f->n] = p;
			f->lens[f->n] = (size_t)(end - p);
			f->hashes[f->n] = fm_tag_hash(p, f->lens[f->n]);
			f->n++;
		}
		p = bar != NULL ? bar + 2 : NULL;
	}
	f->all = f->n == 0;
	return 0;
}

static int
filter_hash(const struct filter *f, uint64_t hash)
{
	if (f->all)
		return 1;
	for (size_t i = 0; i < f->n; i++)
		if (f->hashes[i] == hash)
			return 1;
	return 0;
}

/* The hash matched: check the tag itself (hashes collide). */
static int
filter_tag(const struct filter *f, const struct fm_record *r)
{
	if (f->all)
		return 1;
	for (size_t i = 0; i < f->n; i++)
		if (f->lens[i] == r->tag_len &&
		    memcmp(f->tags[i], r->tag, r->tag_len) == 0)
			return 1;
	return 0;
}

/* ---- checks ---- */

static int
check_group(const char *group, char **cause)
{
	if (group == NULL || fm_broker_check_topic_name(group, NULL) < 0 ||
	    strlen(group) > GROUP_MAX_LEN)
		return fm_broker_fail(cause, -FM_E_INVALID,
		    "group name '%s' is not 1..%zu characters of "
		    "[A-Za-z0-9_%%|-]",
		    group ? group : "", GROUP_MAX_LEN);
	if (strncmp(group, DLQ_PREFIX, sizeof(DLQ_PREFIX) - 1) == 0 ||
	    strncmp(group, RETRY_PREFIX, sizeof(RETRY_PREFIX) - 1) == 0)
		return fm_broker_fail(cause, -FM_E_INVALID,
		    "group name '%s' is reserved: %s and %s begin the names "
		    "of topics named after a group (%s{group} holds its "
		    "dead letters)",
		    group, DLQ_PREFIX, RETRY_PREFIX, DLQ_PREFIX);
	return 0;
}

static int
check_names(const char *topic, const char *group, char **cause)
{
	int rc = fm_broker_check_topic_name(topic, cause);

	return rc < 0 ? rc : check_group(group, cause);
}

static int
readable_topic(struct fm_broker *b, const char *topic, struct fm_topic_conf *tc,
    char **cause)
{
	int rc = fm_topics_conf(b, topic, tc, cause);

	if (rc < 0)
		return rc;
	if (!(tc->perm & FM_PERM_READ))
		return fm_broker_fail(cause, -FM_E_INVALID,
		    "topic '%s' is not readable (perm %s)", topic,
		    fm_perm_name(tc->perm));
	return 0;
}

/* ---- receive ---- */

void
fm_recv_result_free(struct fm_recv_result *r)
{
	fm_msg_list_free(&r->msgs);
	free(r->receipts);
	r->receipts = NULL;
}

/* One delivery of a receive: which entry, under which nonce. */
struct handed {
	uint32_t qi;
	uint64_t off;
	uint64_t nonce;
};

struct recv {
	struct fm_groups *gs;
	struct group *g;
	const struct fm_recv_opts *opts;
	int fifo; /* invariant 5 */
	struct filter f;
	int64_t now;
	struct fm_recv_result *out;
	struct rows rs;
	size_t limit; /* stop taking from this queue at this many messages */
	struct handed *handed; /* owned, one per message of out */
};

/* A receive whose commit is queued: its caller's completion, and what
 * to undo if the commit fails. */
struct recv_undo {
	struct fm_groups *gs;
	struct group *g;
	struct handed *handed; /* owned */
	size_t n;
	fm_done_fn done;
	void *arg;
};

/* Retention raced us: the record is gone; the message is done. */
static int
skippable(int rc)
{
	return rc == -FM_E_GONE || rc == -FM_E_NOT_FOUND;
}

/* The last message read goes out under e's new delivery, noted in
 * rv->handed in case the receive fails (Failed receives). */
static void
hand_out(struct recv *rv, uint32_t qi, struct gent *e)
{
	struct fm_recv_result *out = rv->out;
	size_t i = out->msgs.n - 1;

	e->nonce = nonce_next(rv->gs);
	e->reconsume++;
	e->visible_at = rv->now + rv->opts->invisible_ms;
	e->armed = 1;
	timer_schedule(rv->gs, e->visible_at);
	out->msgs.items[i].rec.reconsume_times = (uint32_t)e->reconsume;
	out->receipts =
	    xreallocarray(out->receipts, out->msgs.n, sizeof(*out->receipts));
	receipt_encode(rv->g, qi, e, out->receipts[i]);
	row_receipt(&rv->rs, rv->g, qi, e);
	rv->handed =
	    xreallocarray(rv->handed, out->msgs.n, sizeof(*rv->handed));
	rv->handed[i] = (struct handed){qi, e->off, e->nonce};
}

static void
drop_last(struct fm_msg_list *l)
{
	fm_buf_free(&l->bufs[--l->n]);
}

/* Read the record of queue offset off into the result. */
static int
read_at(struct recv *rv, uint32_t qi, uint64_t off)
{
	struct fm_cq_entry ce;
	size_t got = 0;
	int rc = fm_store_cq_read(
	    rv->gs->b->st, rv->g->topic, qi, off, &ce, 1, &got);

	if (rc < 0)
		return rc;
	if (got == 0)
		return -FM_E_NOT_FOUND;
	return fm_msglist_read(rv->gs->b, &rv->out->msgs, ce.log_offset);
}

/* Hand out the queue's entries that are visible again (invariant 3). */
static int
take_again(struct recv *rv, uint32_t qi, int *changed)
{
	struct gqueue *q = &rv->g->q[qi];
	int maxre = rv->gs->b->cfg->max_reconsume_times;

	/* FIFO: only the oldest in flight may go out, so a retry keeps its
	 * place before the messages behind it */
	for (size_t i = 0; i < q->n && (i == 0 || !rv->fifo) &&
	     rv->out->msgs.n < rv->limit;) {
		struct gent *e = &q->ents[i];
		int rc;

		if (e->dlq || e->visible_at > rv->now ||
		    e->reconsume >= maxre) {
			i++;
			continue;
		}
		rc = read_at(rv, qi, e->off);
		if (skippable(rc)) {
			row_del(&rv->rs, rv->g, qi, e->off);
			ent_remove(q, e);
			*changed = 1;
			continue;
		}
		if (rc < 0)
			return rc;
		hand_out(rv, qi, e);
		i++;
	}
	return 0;
}

/* One consume queue entry from next: hand it out, or skip it. */
static int
take_one(struct recv *rv, uint32_t qi, const struct fm_cq_entry *ce)
{
	struct gqueue *q = &rv->g->q[qi];
	struct gent e = {q->next, 0, -1, 0, 0, 0};
	struct fm_msg_list *l = &rv->out->msgs;
	int rc;

	q->next++;
	if (!filter_hash(&rv->f, ce->tag_hash))
		return 0;
	rc = fm_msglist_read(rv->gs->b, l, ce->log_offset);
	if (skippable(rc))
		return 0;
	if (rc < 0)
		return rc;
	if (!filter_tag(&rv->f, &l->items[l->n - 1].rec)) {
		drop_last(l);
		return 0;
	}
	hand_out(rv, qi, ent_push(q, &e));
	return 0;
}

/* Hand out messages never handed out, from next on. */
static int
take_new(struct recv *rv, uint32_t qi, uint64_t max)
{
	struct gqueue *q = &rv->g->q[qi];
	struct fm_cq_entry ce[READ_CHUNK];
	int rc = 0;

	while (rv->out->msgs.n < rv->limit && q->next < max) {
		size_t want = READ_CHUNK, got = 0;

		if (max - q->next < want)
			want = (size_t)(max - q->next);
		rc = fm_store_cq_read(
		    rv->gs->b->st, rv->g->topic, qi, q->next, ce, want, &got);
		if (rc < 0 || got == 0)
			break;
		for (size_t k = 0; k < got && rv->out->msgs.n < rv->limit; k++)
			if ((rc = take_one(rv, qi, &ce[k])) < 0)
				return rc;
	}
	return rc == -FM_E_GONE ? 0 : rc;
}

static int
take_queue(struct recv *rv, uint32_t qi)
{
	struct gqueue *q = &rv->g->q[qi];
	uint64_t min, max, next0;
	int changed, rc;

	fm_store_queue_range(rv->gs->b->st, rv->g->topic, qi, &min, &max);
	changed = queue_clamp(q, min, max);
	next0 = q->next;
	rv->limit = rv->opts->max;
	if (rv->fifo)
		rv->limit = rv->out->msgs.n + 1;
	if ((rc = take_again(rv, qi, &changed)) < 0)
		return rc;
	/* FIFO: nothing new from a queue while one of its messages is out */
	if ((!rv->fifo || q->n == 0) && (rc = take_new(rv, qi, max)) < 0)
		return rc;
	if (ack_update(q) || changed || q->next != next0)
		row_offset(&rv->rs, rv->g, qi);
	return 0;
}

/* Lock held: undo the n deliveries of a receive that failed (Failed
 * receives), each only while its entry still has the nonce it gave; the
 * compensating rows go to rs. */
static void
undo_locked(struct fm_groups *gs, struct group *g, const struct handed *h,
    size_t n, struct rows *rs)
{
	int64_t now = fm_now_ms();
	int any = 0;

	for (size_t i = 0; i < n; i++) {
		struct gent *e = ent_find(&g->q[h[i].qi], h[i].off);

		if (e == NULL || e->nonce != h[i].nonce)
			continue;
		e->nonce = 0;
		e->reconsume--;
		e->visible_at = now;
		e->armed = 1;
		e->dlq = 0;
		row_receipt(rs, g, h[i].qi, e);
		any = 1;
	}
	if (any)
		timer_schedule(gs, now);
}

/* The done of a receive's commit: undo the receive if it failed, then
 * tell the caller. Runs on the store's committer thread. */
static void
recv_done(void *arg, int err)
{
	struct recv_undo *u = arg;

	if (err != 0) {
		struct rows rs = {NULL, 0, 0};

		pthread_mutex_lock(&u->gs->lock);
		undo_locked(u->gs, u->g, u->handed, u->n, &rs);
		rows_queue(u->gs, &rs, NULL, NULL);
		pthread_mutex_unlock(&u->gs->lock);
	}
	u->done(u->arg, err);
	free(u->handed);
	free(u);
}

/* Lock held: queue the rows of a receive that took what out holds, or
 * failed with rc. Returns the receive's result (broker.h); when it is an
 * error, what the receive handed out is undone at once. */
static int
recv_queue(struct recv *rv, int rc, fm_done_fn done, void *arg)
{
	size_t n = rv->out->msgs.n;
	struct recv_undo *u;

	if (rc == 0 && n > 0) {
		u = xmalloc(sizeof(*u));
		*u =
		    (struct recv_undo){rv->gs, rv->g, rv->handed, n, done, arg};
		rc = rows_queue(rv->gs, &rv->rs, recv_done, u);
		if (rc == 0) {
			rv->handed = NULL; /* u's now */
			return 0;
		}
		free(u); /* nothing was queued */
	}
	if (rc < 0)
		undo_locked(rv->gs, rv->g, rv->handed, n, &rv->rs);
	rows_queue(rv->gs, &rv->rs, NULL, NULL);
	return rc < 0 ? rc : 1;
}

int
fm_broker_group_receive_async(struct fm_broker *b, const char *topic,
    const char *group, const struct fm_recv_opts *opts,
    struct fm_recv_result *out, fm_done_fn done, void *arg, char **cause)
{
	struct recv rv = {
	    b->groups, NULL, opts, 0, {0}, 0, out, {NULL, 0, 0}, 0, NULL};
	struct fm_topic_conf tc;
	int rc = 0, qrc;

	if ((rc = check_names(topic, group, cause)) < 0)
		return rc;
	if (opts->max < 1 || opts->max > FM_PULL_MAX ||
	    opts->invisible_ms < 1 || opts->invisible_ms > 12 * 3600000)
		return fm_broker_fail(cause, -FM_E_INVALID,
		    "max must be 1..%d and invisible 0.001..43200 s",
		    FM_PULL_MAX);
	if ((rc = readable_topic(b, topic, &tc, cause)) < 0 ||
	    (rc = filter_parse(opts->tags, &rv.f, cause)) < 0)
		goto out;
	pthread_mutex_lock(&rv.gs->lock);
	rv.g = group_get(rv.gs, topic, group, tc.queues, &rv.rs);
	rv.fifo = opts->fifo || (rv.g->conf != NULL && rv.g->conf->c.fifo);
	rv.now = fm_now_ms();
	for (uint32_t i = 0; i < tc.queues && rv.out->msgs.n < opts->max; i++)
		if ((rc = take_queue(&rv, (rv.g->rr + i) % tc.queues)) < 0)
			break;
	rv.g->rr = (rv.g->rr + 1) % tc.queues;
	out->watch_offset = rv.g->seq;
	snprintf(out->watch_topic, sizeof(out->watch_topic), "%s", rv.g->watch);
	qrc = recv_queue(&rv, rc, done, arg);
	pthread_mutex_unlock(&rv.gs->lock);
	if (rc < 0)
		rc = fm_broker_fail(cause, rc, "cannot read topic '%s': %s",
		    topic, fm_err_msg(rc));
	else if ((rc = qrc) < 0)
		rc = store_fail(cause, rc);
	if (rc < 0)
		fm_recv_result_free(out);
	atomic_fetch_add(&b->pulled_msgs, out->msgs.n);
out:
	filter_free(&rv.f);
	free(rv.handed);
	return rc;
}

int
fm_broker_group_receive(struct fm_broker *b, const char *topic,
    const char *group, const struct fm_recv_opts *opts,
    struct fm_recv_result *out, char **cause)
{
	struct fm_store_wait w;
	int rc;

	fm_store_wait_init(&w);
	rc = fm_broker_group_receive_async(
	    b, topic, group, opts, out, fm_store_wait_done, &w, cause);
	rc = sync_end(&w, rc, cause);
	if (rc < 0)
		fm_recv_result_free(out);
	return rc;
}

/* ---- ack and nack ---- */

static int64_t
ladder(int32_t reconsume)
{
	size_t n = sizeof(ladder_ms) / sizeof(ladder_ms[0]);
	size_t i = (size_t)reconsume; /* >= 0: the entry was delivered */

	return ladder_ms[i < n ? i : n - 1];
}

struct settle {
	struct fm_groups *gs;
	struct group *g; /* NULL: the group has no state */
	uint32_t topic_crc, group_crc;
	int nack;
	int64_t delay_ms;
	int64_t now;
	struct rows rs;
	int freed; /* a queue's oldest message is done (invariant 4) */
};

static int
settle_one(struct settle *s, const char *handle, char **cause)
{
	int maxre = s->gs->b->cfg->max_reconsume_times;
	struct receipt r;
	struct gent *e = NULL;
	struct gqueue *q;

	if (receipt_decode(handle, &r) < 0)
		return fm_broker_fail(cause, -FM_E_INVALID,
		    "not a receipt handle (%d base64url characters)",
		    FM_RECEIPT_LEN);
	if (r.topic_crc != s->topic_crc || r.group_crc != s->group_crc)
		return fm_broker_fail(cause, -FM_E_INVALID,
		    "receipt handle of another topic or group");
	if (s->g != NULL && r.queue_id < s->g->nq)
		e = ent_find(&s->g->q[r.queue_id], r.off);
	if (e == NULL || e->nonce != r.nonce || e->dlq)
		return fm_broker_fail(cause, -FM_E_GONE,
		    "stale receipt handle: the message at queue %u offset "
		    "%llu was acked, nacked or handed out again since",
		    r.queue_id, (unsigned long long)r.off);
	q = &s->g->q[r.queue_id];
	if (!s->nack) {
		row_del(&s->rs, s->g, r.queue_id, e->off);
		ent_remove(q, e);
		if (ack_update(q)) {
			row_offset(&s->rs, s->g, r.queue_id);
			s->freed = 1;
		}
		return 0;
	}
	e->nonce = 0;
	e->armed = 1;
	if (e->reconsume >= maxre)
		e->visible_at = s->now;
	else
		e->visible_at = s->now +
		    (s->delay_ms >= 0 ? s->delay_ms : ladder(e->reconsume));
	timer_schedule(s->gs, e->visible_at);
	row_receipt(&s->rs, s->g, r.queue_id, e);
	return 0;
}

int
fm_broker_group_settle_async(struct fm_broker *b, const char *topic,
    const char *group, int nack, int64_t delay_ms, const char *const *handles,
    size_t n, int *errs, char **causes, fm_done_fn done, void *arg,
    char **cause)
{
	struct settle s = {b->groups, NULL, 0, 0, nack, delay_ms, 0, {0}, 0};
	struct fm_topic_conf tc;
	uint64_t seq = 0;
	int rc;

	if ((rc = check_names(topic, group, cause)) < 0 ||
	    (rc = fm_topics_conf(b, topic, &tc, cause)) < 0)
		return rc;
	s.topic_crc = name_crc(topic);
	s.group_crc = name_crc(group);
	pthread_mutex_lock(&s.gs->lock);
	s.g = group_find(s.gs, topic, group);
	s.now = fm_now_ms();
	for (size_t i = 0; i < n; i++) {
		causes[i] = NULL;
		errs[i] = settle_one(&s, handles[i], &causes[i]);
	}
	if (s.freed)
		seq = ++s.g->seq;
	rc = rows_queue(s.gs, &s.rs, done, arg);
	pthread_mutex_unlock(&s.gs->lock);
	if (s.freed)
		fm_waiters_notify(b->ws, s.g->watch, 0, seq);
	return rc < 0 ? store_fail(cause, rc) : rc;
}

int
fm_broker_group_settle(struct fm_broker *b, const char *topic,
    const char *group, int nack, int64_t delay_ms, const char *const *handles,
    size_t n, int *errs, char **causes, char **cause)
{
	struct fm_store_wait w;
	int rc;

	fm_store_wait_init(&w);
	rc = fm_broker_group_settle_async(b, topic, group, nack, delay_ms,
	    handles, n, errs, causes, fm_store_wait_done, &w, cause);
	return sync_end(&w, rc, cause);
}

/* ---- dead letters ---- */

struct dlq_cand {
	uint32_t qi;
	uint64_t off;
	int32_t reconsume;
};

/* Split "a\0b\0" into pointers (into s). */
static size_t
split_nul(const char *s, size_t len, const char **v, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < len && n < max; i += strlen(s + i) + 1)
		v[n++] = s + i;
	return n;
}

static int
dlq_topic(struct fm_broker *b, const char *dlq, char **cause)
{
	struct fm_topic_conf tc;

	if (fm_topics_conf(b, dlq, &tc, NULL) == 0)
		return 0;
	return fm_broker_topic_put(
	    b, dlq, 1, FM_PERM_READ | FM_PERM_WRITE, NULL, cause);
}

#define DLQ_PROPS 5
#define DLQ_MAX_FIELDS 1024

/* 1 when name is one of the n properties of v. */
static int
prop_in(const char *name, const struct fm_prop *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(name, v[i].name) == 0)
			return 1;
	return 0;
}

/* Append a copy of m to dlq with the ORIGIN_* properties and
 * RECONSUME_TIMES, in place of any it had (a message read from a DLQ, or
 * delivered by the timer: ORIGIN_MESSAGE_ID). Those names are reserved
 * to the broker (publish.c), so the copy is a system publish. */
static int
dlq_publish(struct fm_broker *b, const char *dlq, const struct fm_message *m,
    int reconsume, char **cause)
{
	const struct fm_record *r = &m->rec;
	const char *keys[DLQ_MAX_FIELDS], *kv[2 * DLQ_MAX_FIELDS];
	struct fm_prop props[DLQ_MAX_FIELDS + DLQ_PROPS];
	char topic[FM_REC_MAX_TOPIC + 1], qid[16], qoff[24], times[16];
	const struct fm_prop origin[DLQ_PROPS] = {
	    {"ORIGIN_MESSAGE_ID", m->msg_id}, {"ORIGIN_TOPIC", topic},
	    {"ORIGIN_QUEUE_ID", qid}, {"ORIGIN_QUEUE_OFFSET", qoff},
	    {"RECONSUME_TIMES", times}};
	char *tag = xstrndup(r->tag ? r->tag : "", r->tag_len);
	struct fm_pub_msg pm = {0};
	struct fm_pub_result res;
	size_t nkv = split_nul(r->props, r->props_len, kv, 2 * DLQ_MAX_FIELDS);
	int rc;

	snprintf(topic, sizeof(topic), "%.*s", (int)r->topic_len, r->topic);
	snprintf(qid, sizeof(qid), "%u", r->queue_id);
	snprintf(
	    qoff, sizeof(qoff), "%llu", (unsigned long long)r->queue_offset);
	snprintf(times, sizeof(times), "%d", reconsume);
	for (size_t i = 0; i + 1 < nkv; i += 2)
		if (!prop_in(kv[i], origin, DLQ_PROPS))
			props[pm.nprops++] = (struct fm_prop){kv[i], kv[i + 1]};
	memcpy(props + pm.nprops, origin, sizeof(origin));
	pm.nprops += DLQ_PROPS;
	pm.props = props;
	pm.body = r->body;
	pm.body_len = r->body_len;
	pm.tag = tag;
	pm.keys = keys;
	pm.nkeys = split_nul(r->keys, r->keys_len, keys, DLQ_MAX_FIELDS);
	rc = dlq_topic(b, dlq, cause);
	if (rc == 0)
		rc = fm_publish_system(b, dlq, &pm, 1, &res, cause);
	free(tag);
	return rc;
}

/* Copy the message of a candidate to the DLQ. -FM_E_GONE when it no
 * longer exists (nothing to copy: the message is done all the same). */
static int
dlq_send(struct fm_groups *gs, struct group *g, const struct dlq_cand *c)
{
	struct fm_msg_list l = FM_MSG_LIST_INIT;
	struct fm_cq_entry ce;
	char dlq[sizeof(DLQ_PREFIX) + FM_REC_MAX_TOPIC]; /* names are checked */
	char *cause = NULL;
	size_t got = 0;
	int rc;

	rc = fm_store_cq_read(gs->b->st, g->topic, c->qi, c->off, &ce, 1, &got);
	if (rc == 0 && got == 0)
		rc = -FM_E_GONE;
	if (rc == 0)
		rc = fm_msglist_read(gs->b, &l, ce.log_offset);
	if (rc < 0)
		return skippable(rc) ? -FM_E_GONE : rc;
	snprintf(dlq, sizeof(dlq), "%s%s", DLQ_PREFIX, g->name);
	rc = dlq_publish(gs->b, dlq, &l.items[0], c->reconsume, &cause);
	if (rc < 0)
		fm_warn("group %s: cannot move %s/%u@%llu to %s: %s", g->name,
		    g->topic, c->qi, (unsigned long long)c->off, dlq,
		    cause ? cause : fm_err_msg(rc));
	free(cause);
	fm_msg_list_free(&l);
	return rc;
}

/* Lock held: mark the entries whose last allowed delivery failed. */
static size_t
dlq_collect(
    struct fm_groups *gs, struct group *g, int64_t now, struct dlq_cand **out)
{
	int maxre = gs->b->cfg->max_reconsume_times;
	size_t n = 0, cap = 0;

	*out = NULL;
	for (uint32_t qi = 0; qi < g->nq; qi++)
		for (size_t i = 0; i < g->q[qi].n; i++) {
			struct gent *e = &g->q[qi].ents[i];

			if (e->dlq || e->visible_at > now ||
			    e->reconsume < maxre)
				continue;
			e->dlq = 1;
			if (n == cap) {
				cap = cap ? 2 * cap : 8;
				*out = xreallocarray(*out, cap, sizeof(**out));
			}
			(*out)[n++] =
			    (struct dlq_cand){qi, e->off, e->reconsume};
		}
	return n;
}

/* Move the group's dead messages to its DLQ and ack them. */
static void
dlq_sweep(struct fm_groups *gs, struct group *g)
{
	struct dlq_cand *c;
	struct rows rs = {NULL, 0, 0};
	uint64_t seq = 0;
	size_t n;

	pthread_mutex_lock(&gs->lock);
	n = dlq_collect(gs, g, fm_now_ms(), &c);
	pthread_mutex_unlock(&gs->lock);
	for (size_t i = 0; i < n; i++) {
		int rc = dlq_send(gs, g, &c[i]);
		struct gqueue *q;
		struct gent *e;

		pthread_mutex_lock(&gs->lock);
		q = &g->q[c[i].qi];
		e = ent_find(q, c[i].off);
		if (e != NULL && e->dlq && (rc == 0 || rc == -FM_E_GONE)) {
			row_del(&rs, g, c[i].qi, e->off);
			ent_remove(q, e);
			if (ack_update(q)) {
				row_offset(&rs, g, c[i].qi);
				seq = ++g->seq;
			}
			rows_queue(gs, &rs, NULL, NULL);
		} else if (e != NULL && e->dlq) {
			e->dlq = 0;
			e->armed = 1;
			e->visible_at = fm_now_ms() + DLQ_RETRY_MS;
			timer_schedule(gs, e->visible_at);
		}
		pthread_mutex_unlock(&gs->lock);
	}
	free(c);
	if (seq != 0)
		fm_waiters_notify(gs->b->ws, g->watch, 0, seq);
}

/* ---- the visibility timer ---- */

/* Lock held: announce what became visible (invariant 4), note the groups
 * with dead messages, and find the next time to look. */
static size_t
timer_scan(struct fm_groups *gs, int64_t now, struct group ***wake,
    uint64_t **seqs, struct group ***dead, size_t *ndead)
{
	int maxre = gs->b->cfg->max_reconsume_times;
	int64_t next = INT64_MAX;
	size_t n = 0, cap = 0, dcap = 0;

	*wake = NULL;
	*seqs = NULL;
	*dead = NULL;
	*ndead = 0;
	for (struct group *g = gs->list; g != NULL; g = g->next) {
		int changed = 0, died = 0;

		for (uint32_t qi = 0; qi < g->nq; qi++)
			for (size_t i = 0; i < g->q[qi].n; i++) {
				struct gent *e = &g->q[qi].ents[i];

				if (e->dlq || !e->armed)
					continue;
				if (e->visible_at > now) {
					if (e->visible_at < next)
						next = e->visible_at;
					continue;
				}
				e->armed = 0;
				changed = 1;
				died |= e->reconsume >= maxre;
			}
		if (changed) {
			if (n == cap) {
				cap = cap ? 2 * cap : 8;
				*wake =
				    xreallocarray(*wake, cap, sizeof(**wake));
				*seqs =
				    xreallocarray(*seqs, cap, sizeof(**seqs));
			}
			(*wake)[n] = g;
			(*seqs)[n++] = ++g->seq;
		}
		if (died) {
			if (*ndead == dcap) {
				dcap = dcap ? 2 * dcap : 8;
				*dead =
				    xreallocarray(*dead, dcap, sizeof(**dead));
			}
			(*dead)[(*ndead)++] = g;
		}
	}
	gs->wake_at = next;
	return n;
}

static void
timer_pass(struct fm_groups *gs, int64_t now)
{
	struct group **wake, **dead;
	uint64_t *seqs;
	size_t ndead, n = timer_scan(gs, now, &wake, &seqs, &dead, &ndead);

	pthread_mutex_unlock(&gs->lock);
	for (size_t i = 0; i < n; i++)
		fm_waiters_notify(gs->b->ws, wake[i]->watch, 0, seqs[i]);
	for (size_t i = 0; i < ndead; i++)
		dlq_sweep(gs, dead[i]);
	free(wake);
	free(seqs);
	free(dead);
	pthread_mutex_lock(&gs->lock);
}

static void *
timer_main(void *arg)
{
	struct fm_groups *gs = arg;

	pthread_mutex_lock(&gs->lock);
	while (!gs->stop) {
		int64_t now = fm_now_ms(), wait = TIMER_IDLE_MS;
		struct timespec ts;

		if (gs->wake_at <= now) {
			timer_pass(gs, now);
			continue;
		}
		if (gs->wake_at - now < wait)
			wait = gs->wake_at - now;
		fm_deadline_ts(&ts, wait);
		pthread_cond_timedwait(&gs->cond, &gs->lock, &ts);
	}
	pthread_mutex_unlock(&gs->lock);
	return NULL;
}

/* ---- state, reset, list ---- */

int
fm_broker_group_state(struct fm_broker *b, const char *topic, const char *group,
    struct fm_group_queue **out, size_t *n, char **cause)
{
	struct fm_groups *gs = b->groups;
	struct fm_group_queue *v;
	struct group *g;
	int rc;

	if ((rc = check_names(topic, group, cause)) < 0)
		return rc;
	pthread_mutex_lock(&gs->lock);
	g = group_find(gs, topic, group);
	if (g == NULL) {
		pthread_mutex_unlock(&gs->lock);
		return fm_broker_fail(cause, -FM_E_NOT_FOUND,
		    "group '%s' has never received from topic '%s'", group,
		    topic);
	}
	v = xcalloc(g->nq ? g->nq : 1, sizeof(*v));
	for (uint32_t qi = 0; qi < g->nq; qi++) {
		uint64_t min;

		v[qi].queue_id = qi;
		v[qi].consumed = g->q[qi].ack;
		v[qi].next = g->q[qi].next;
		v[qi].in_flight = g->q[qi].n;
		fm_store_queue_range(b->st, topic, qi, &min, &v[qi].max_offset);
	}
	*n = g->nq;
	pthread_mutex_unlock(&gs->lock);
	*out = v;
	return 0;
}

static int
reset_target(struct fm_broker *b, const char *topic, uint32_t qi,
    enum fm_reset how, int64_t ts, uint64_t *out)
{
	uint64_t min, max;
	int rc = 0;

	fm_store_queue_range(b->st, topic, qi, &min, &max);
	if (how == FM_RESET_EARLIEST)
		*out = min;
	else if (how == FM_RESET_LATEST)
		*out = max;
	else if ((rc = fm_store_queue_offset_at(b->st, topic, qi, ts, out)) ==
	    0)
		*out = *out < min ? min : *out;
	return rc;
}

int
fm_broker_group_reset_async(struct fm_broker *b, const char *topic,
    const char *group, enum fm_reset how, int64_t ts_ms, fm_done_fn done,
    void *arg, char **cause)
{
	struct fm_groups *gs = b->groups;
	struct rows rs = {NULL, 0, 0};
	struct fm_topic_conf tc;
	uint64_t *to = NULL, seq;
	struct group *g;
	int rc;

	if ((rc = check_names(topic, group, cause)) < 0 ||
	    (rc = readable_topic(b, topic, &tc, cause)) < 0)
		return rc;
	to = xcalloc(tc.queues, sizeof(*to));
	for (uint32_t qi = 0; qi < tc.queues; qi++)
		if ((rc = reset_target(b, topic, qi, how, ts_ms, &to[qi])) <
		    0) {
			rc = fm_broker_fail(cause, rc,
			    "cannot find the offset of queue %u: %s", qi,
			    fm_err_msg(rc));
			goto out;
		}
	pthread_mutex_lock(&gs->lock);
	g = group_get(gs, topic, group, tc.queues, &rs);
	rs.n = 0;
	row_new(&rs, g, FM_GROW_CLEAR, 0);
	for (uint32_t qi = 0; qi < g->nq; qi++) {
		struct gqueue *q = &g->q[qi];

		q->n = 0;
		if (qi < tc.queues)
			q->ack = q->next = to[qi];
		row_offset(&rs, g, qi);
	}
	seq = ++g->seq;
	rc = rows_queue(gs, &rs, done, arg);
	pthread_mutex_unlock(&gs->lock);
	fm_waiters_notify(b->ws, g->watch, 0, seq);
	if (rc < 0)
		rc = store_fail(cause, rc);
out:
	free(to);
	return rc;
}

int
fm_broker_group_reset(struct fm_broker *b, const char *topic, const char *group,
    enum fm_reset how, int64_t ts_ms, char **cause)
{
	struct fm_store_wait w;

	fm_store_wait_init(&w);
	return sync_end(&w,
	    fm_broker_group_reset_async(
	        b, topic, group, how, ts_ms, fm_store_wait_done, &w, cause),
	    cause);
}

static int
name_cmp(const void *a, const void *b)
{
	const struct fm_group_name *x = a, *y = b;
	int c = strcmp(x->topic, y->topic);

	return c != 0 ? c : strcmp(x->group, y->group);
}

int
fm_broker_group_list(struct fm_broker *b, struct fm_group_name **out, size_t *n)
{
	struct fm_groups *gs = b->groups;
	struct fm_group_name *v = NULL;
	size_t len = 0, cap = 0;

	pthread_mutex_lock(&gs->lock);
	for (struct group *g = gs->list; g != NULL; g = g->next) {
		if (len == cap) {
			cap = cap ? 2 * cap : 16;
			v = xreallocarray(v, cap, sizeof(*v));
		}
		memcpy(v[len].topic, g->topic, sizeof(v[len].topic));
		memcpy(v[len].group, g->name, sizeof(v[len].group));
		v[len].fifo = g->conf != NULL && g->conf->c.fifo;
		len++;
	}
	pthread_mutex_unlock(&gs->lock);
	if (len > 0)
		qsort(v, len, sizeof(*v), name_cmp);
	*out = v;
	*n = len;
	return 0;
}

/* ---- the broker's hooks ---- */

/* Move the seq of every group whose topic (by_name 0) or name is key,
 * and announce it (invariant 4). */
static void
wake_groups(struct fm_groups *gs, int by_name, const char *key)
{
	struct group *hit[16];
	uint64_t seqs[16];
	size_t n = 0;

	pthread_mutex_lock(&gs->lock);
	for (struct group *g = gs->list; g != NULL; g = g->next) {
		if (strcmp(by_name ? g->name : g->topic, key) != 0)
			continue;
		seqs[n] = ++g->seq;
		hit[n++] = g;
		if (n == sizeof(hit) / sizeof(hit[0])) {
			pthread_mutex_unlock(&gs->lock);
			for (size_t i = 0; i < n; i++)
				fm_waiters_notify(
				    gs->b->ws, hit[i]->watch, 0, seqs[i]);
			n = 0;
			pthread_mutex_lock(&gs->lock);
		}
	}
	pthread_mutex_unlock(&gs->lock);
	for (size_t i = 0; i < n; i++)
		fm_waiters_notify(gs->b->ws, hit[i]->watch, 0, seqs[i]);
}

void
fm_groups_notify(struct fm_groups *gs, const char *topic, uint32_t queue_id,
    uint64_t max_offset)
{
	(void)queue_id;
	(void)max_offset;
	if (gs != NULL)
		wake_groups(gs, 0, topic);
}

int
fm_groups_is_watch_topic(const char *topic)
{
	return strchr(topic, '/') != NULL;
}

int
fm_groups_has_data(struct fm_groups *gs, const char *watch_topic, uint64_t seq)
{
	int yes = 0;

	if (gs == NULL)
		return 0;
	pthread_mutex_lock(&gs->lock);
	for (struct group *g = gs->list; g != NULL; g = g->next)
		if (strcmp(g->watch, watch_topic) == 0) {
			yes = g->seq > seq;
			break;
		}
	pthread_mutex_unlock(&gs->lock);
	return yes;
}

/* ---- settings ---- */

void
fm_group_info_free(struct fm_group_info *gi)
{
	free(gi->topics);
	gi->topics = NULL;
	gi->ntopics = 0;
}

static int
topic_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Lock held: the settings of name and the topics it has state on. 0, or
 * -FM_E_NOT_FOUND when it has neither. */
static int
info_fill(struct fm_groups *gs, const char *name, struct fm_group_info *out)
{
	struct gconf *c = conf_find(gs, name);
	size_t cap = 0;

	memset(out, 0, sizeof(*out));
	if (c != NULL)
		out->conf = c->c;
	snprintf(out->conf.name, sizeof(out->conf.name), "%s", name);
	for (struct group *g = gs->list; g != NULL; g = g->next) {
		if (strcmp(g->name, name) != 0)
			continue;
		if (out->ntopics == cap) {
			cap = cap ? 2 * cap : 8;
			out->topics = xreallocarray(
			    out->topics, cap, sizeof(*out->topics));
		}
		memcpy(out->topics[out->ntopics++], g->topic,
		    sizeof(*out->topics));
	}
	if (out->ntopics > 1)
		qsort(
		    out->topics, out->ntopics, sizeof(*out->topics), topic_cmp);
	return c != NULL || out->ntopics > 0 ? 0 : -FM_E_NOT_FOUND;
}

int
fm_broker_group_info(struct fm_broker *b, const char *group,
    struct fm_group_info *out, char **cause)
{
	struct fm_groups *gs = b->groups;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = check_group(group, cause)) < 0)
		return rc;
	pthread_mutex_lock(&gs->lock);
	rc = info_fill(gs, group, out);
	pthread_mutex_unlock(&gs->lock);
	if (rc < 0)
		return fm_broker_fail(cause, rc,
		    "group '%s' is not configured and has never received",
		    group);
	return 0;
}

/* Lock held: add settings (and point the groups of that name at them). */
static void
conf_add(struct fm_groups *gs, const struct fm_group_conf *gc)
{
	struct gconf *c = xcalloc(1, sizeof(*c));

	c->c = *gc;
	c->next = gs->confs;
	gs->confs = c;
	for (struct group *g = gs->list; g != NULL; g = g->next)
		if (strcmp(g->name, gc->name) == 0)
			g->conf = c;
}

int
fm_broker_group_put(struct fm_broker *b, const char *group, int fifo,
    struct fm_group_info *out, char **cause)
{
	struct fm_groups *gs = b->groups;
	struct fm_group_conf gc = {0};
	struct gconf *c;
	int rc, was;

	memset(out, 0, sizeof(*out));
	if ((rc = check_group(group, cause)) < 0)
		return rc;
	pthread_mutex_lock(&gs->conf_lock);
	pthread_mutex_lock(&gs->lock);
	c = conf_find(gs, group);
	if (c != NULL)
		gc = c->c;
	pthread_mutex_unlock(&gs->lock);
	snprintf(gc.name, sizeof(gc.name), "%s", group);
	was = gc.fifo;
	if (fifo >= 0)
		gc.fifo = fifo != 0;
	gc.updated_ms = fm_now_ms();
	if ((rc = fm_store_group_conf_put(b->st, &gc)) < 0) {
		pthread_mutex_unlock(&gs->conf_lock);
		return fm_broker_fail(cause, rc,
		    "cannot store the group settings: %s", fm_err_msg(rc));
	}
	pthread_mutex_lock(&gs->lock);
	if (c != NULL)
		c->c = gc;
	else
		conf_add(gs, &gc);
	info_fill(gs, group, out);
	pthread_mutex_unlock(&gs->lock);
	pthread_mutex_unlock(&gs->conf_lock);
	/* FIFO off may free messages that receivers wait for */
	if (gc.fifo != was)
		wake_groups(gs, 1, group);
	return 0;
}

/* ---- open and close ---- */

static int
gent_cmp(const void *a, const void *b)
{
	const struct gent *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* Rebuild the groups from the store's rows (offsets come first). */
static void
load_rows(struct fm_groups *gs, const struct fm_grow *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct fm_grow *r = &v[i];
		struct group *g = group_find(gs, r->topic, r->group);
		struct gqueue *q;
		struct gent e = {
		    r->offset, r->nonce, r->reconsume, r->visible_at, 1, 0};

		if (g == NULL)
			g = group_add(gs, r->topic, r->group);
		queues_grow(g, r->queue_id + 1);
		q = &g->q[r->queue_id];
		if (r->kind == FM_GROW_OFFSET) {
			q->ack = r->offset;
			q->next = r->next;
		} else if (r->offset >= q->ack) {
			ent_push(q, &e);
			if (r->offset >= q->next)
				q->next = r->offset + 1;
			if (r->nonce > gs->nonce)
				gs->nonce = r->nonce;
			if (r->visible_at < gs->wake_at)
				gs->wake_at = r->visible_at;
		}
	}
	for (struct group *g = gs->list; g != NULL; g = g->next)
		for (uint32_t qi = 0; qi < g->nq; qi++) {
			if (g->q[qi].n > 1)
				qsort(g->q[qi].ents, g->q[qi].n,
				    sizeof(struct gent), gent_cmp);
			ack_update(&g->q[qi]);
		}
}

/* The settings, before the groups that point at them. */
static int
load_confs(struct fm_groups *gs)
{
	struct fm_group_conf *v;
	size_t n;
	int rc = fm_store_group_conf_list(gs->b->st, &v, &n);

	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		conf_add(gs, &v[i]);
	free(v);
	return 0;
}

int
fm_groups_open(struct fm_broker *b, struct fm_groups **out)
{
	struct fm_groups *gs = xcalloc(1, sizeof(*gs));
	struct fm_grow *v = NULL;
	uint64_t start = (uint64_t)fm_now_ms() * 1000;
	size_t n = 0;
	int rc;

	gs->b = b;
	gs->wake_at = INT64_MAX;
	pthread_mutex_init(&gs->conf_lock, NULL);
	pthread_mutex_init(&gs->lock, NULL);
	fm_cond_init_monotonic(&gs->cond);
	if ((rc = load_confs(gs)) < 0 ||
	    (rc = fm_store_group_load(b->st, &v, &n)) < 0)
		goto fail;
	load_rows(gs, v, n);
	free(v);
	if (gs->nonce < start)
		gs->nonce = start;
	if (pthread_create(&gs->timer, NULL, timer_main, gs) != 0) {
		rc = -FM_E_IO;
		goto fail;
	}
	gs->started = 1;
	*out = gs;
	return 0;
fail:
	fm_groups_close(gs);
	return rc;
}

void
fm_groups_close(struct fm_groups *gs)
{
	struct group *next;

	if (gs == NULL)
		return;
	if (gs->started) {
		pthread_mutex_lock(&gs->lock);
		gs->stop = 1;
		pthread_cond_signal(&gs->cond);
		pthread_mutex_unlock(&gs->lock);
		pthread_join(gs->timer, NULL);
	}
	/* a failed receive's done undoes it here (Failed receives): wait
	 * for the done of every call queued so far, through a barrier (a
	 * crash test abandons the store first, which calls them all) */
	if (gs->b->st != NULL)
		(void)fm_store_group_write(gs->b->st, NULL, 0);
	for (struct group *g = gs->list; g != NULL; g = next) {
		next = g->next;
		for (uint32_t qi = 0; qi < g->nq; qi++)
			free(g->q[qi].ents);
		free(g->q);
		free(g);
	}
	for (struct gconf *c = gs->confs, *cnext; c != NULL; c = cnext) {
		cnext = c->next;
		free(c);
	}
	pthread_cond_destroy(&gs->cond);
	pthread_mutex_destroy(&gs->lock);
	pthread_mutex_destroy(&gs->conf_lock);
	free(gs);
}
