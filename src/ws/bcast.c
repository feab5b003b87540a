/*
 * bcast.c - the broadcast reader (see bcast.h): cursors, the round-robin
 * merge of a topic's queues, event JSON, and arming per-queue watches.
 *
 * Owns every struct fm_bcast and struct fm_bcast_arm. Does not own the
 * message encoder (http/codec.c, shared by every front end) nor what the
 * caller does with an event.
 *
 * Why one watch per queue and not one FM_ANY_QUEUE watch: a cursor
 * stands at a different offset in every queue, and FM_ANY_QUEUE compares
 * one offset with every queue's max, so it would fire at once (or never)
 * for a reader whose queues differ. An arming holds one reference per
 * watch plus one for its owner; the first watch to fire delivers the
 * wake under the arming's lock, the others only drop their reference.
 *
 *   arming state  event                       move (by whom)
 *   ------------  --------------------------  ---------------------------
 *   waiting       a watch fires               -> done: wake(arg) under the
 *                                             lock (arm_fired)
 *   waiting/done  fm_bcast_disarm             -> done; cancel the watches
 *                                             still parked (disarm)
 *   any           last reference dropped      freed (arm_release)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/xmalloc.h"
#include "codec/codec.h"
#include "ws/bcast.h"

#define CURSOR_VERSION 1
#define VARINT_MAX 10 /* bytes of a LEB128 uint64 */

struct fm_bcast_arm {
	pthread_mutex_t lock; /* guards done against disarm */
	int done; /* the wake was delivered, or the owner disarmed */
	atomic_uint refs; /* one per parked watch, one for the owner */
	fm_bcast_wake_fn wake;
	void *arg;
	struct fm_broker *b; /* borrowed */
	uint32_t n; /* watches in w */
	struct fm_watch **w; /* owned array of borrowed handles */
};

struct fm_bcast {
	struct fm_broker *b; /* borrowed */
	char *topic; /* owned */
	uint32_t nq; /* queues of the topic when opened */
	uint64_t *next; /* owned: next offset to read, per queue */
	uint32_t rr; /* queue the next read starts with */
	uint32_t turn_used; /* events of queue rr's turn already read */
	struct fm_bcast_arm *arm; /* owned reference, NULL when disarmed */
	struct fm_buf ev; /* scratch: the event being built */
	struct fm_buf cur; /* scratch: its cursor */
	int64_t incarnation; /* the topic's created_ms: a topic deleted and
	                        made again restarts its offsets */
	struct fm_bcast_cache *cache; /* borrowed, NULL for none */
};

struct cache_ent {
	char *topic; /* owned; NULL: the slot is empty */
	int64_t incarnation;
	uint32_t q;
	uint64_t off;
	struct fm_buf json; /* the event up to, not including, its cursor */
};

struct fm_bcast_cache {
	struct cache_ent slot[FM_BCAST_CACHE_SLOTS]; /* direct-mapped */
};

/* ---- cursors ----
 *
 * Text form: base64url without padding of
 *
 *   +---------+----------------+----------------+-----
 *   | version | varint next[0] | varint next[1] | ...
 *   |  0x01   | LEB128 (7 bits | per byte, low  | group first)
 *   +---------+----------------+----------------+-----
 *
 * one varint per queue, queue 0 first. Ten queues at offsets near a
 * million take 41 characters.
 */

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void
b64url_encode(struct fm_buf *out, const unsigned char *p, size_t n)
{
	uint32_t v;
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		fm_buf_addc(out, b64url[v >> 18 & 63]);
		fm_buf_addc(out, b64url[v >> 12 & 63]);
		fm_buf_addc(out, b64url[v >> 6 & 63]);
		fm_buf_addc(out, b64url[v & 63]);
	}
	if (n - i == 1) {
		v = (uint32_t)p[i] << 16;
		fm_buf_addc(out, b64url[v >> 18 & 63]);
		fm_buf_addc(out, b64url[v >> 12 & 63]);
	} else if (n - i == 2) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		fm_buf_addc(out, b64url[v >> 18 & 63]);
		fm_buf_addc(out, b64url[v >> 12 & 63]);
		fm_buf_addc(out, b64url[v >> 6 & 63]);
	}
}

static int
b64url_value(char c)
{
	const char *p = c != '\0' ? strchr(b64url, c) : NULL;

	return p != NULL ? (int)(p - b64url) : -1;
}

/* -FM_E_INVALID on a character outside the alphabet or a length that no
 * encoding produces. */
static int
b64url_decode(struct fm_buf *out, const char *s)
{
	size_t n = strlen(s), i;
	uint32_t acc = 0;
	int bits = 0, v;

	if (n % 4 == 1)
		return -FM_E_INVALID;
	for (i = 0; i < n; i++) {
		if ((v = b64url_value(s[i])) < 0)
			return -FM_E_INVALID;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			fm_buf_addc(out, (char)(acc >> bits & 0xff));
		}
	}
	return 0;
}

void
fm_bcast_cursor(const struct fm_bcast *bc, struct fm_buf *out)
{
	unsigned char *raw = xmalloc(1 + (size_t)bc->nq * VARINT_MAX);
	size_t n = 0;

	raw[n++] = CURSOR_VERSION;
	for (uint32_t q = 0; q < bc->nq; q++) {
		uint64_t v = bc->next[q];

		do {
			raw[n++] =
			    (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
			v >>= 7;
		} while (v != 0);
	}
	b64url_encode(out, raw, n);
	free(raw);
}

/* Fill next[] from a cursor; queues it does not name start at 0. */
static int
cursor_parse(struct fm_bcast *bc, const char *s, char **cause)
{
	struct fm_buf raw = FM_BUF_INIT;
	uint64_t min, max, v;
	uint32_t q = 0;
	size_t i = 1;
	int shift, err = -FM_E_INVALID;

	if (b64url_decode(&raw, s) < 0 || raw.len < 1 ||
	    (unsigned char)raw.data[0] != CURSOR_VERSION)
		goto bad;
	while (i < raw.len) {
		if (q == bc->nq) {
			xasprintf(cause,
			    "cursor names more queues than topic "
			    "'%s' has (%u)",
			    bc->topic, bc->nq);
			goto fail;
		}
		for (v = 0, shift = 0;; shift += 7) {
			unsigned char c;

			if (i == raw.len || shift > 63)
				goto bad;
			c = (unsigned char)raw.data[i++];
			v |= (uint64_t)(c & 0x7f) << shift;
			if (!(c & 0x80))
				break;
		}
		fm_broker_queue_range(bc->b, bc->topic, q, &min, &max);
		if (v > max) {
			xasprintf(cause,
			    "cursor is ahead of queue %u of topic '%s' (offset "
			    "%llu, max %llu)",
			    q, bc->topic, (unsigned long long)v,
			    (unsigned long long)max);
			goto fail;
		}
		bc->next[q++] = v;
	}
	fm_buf_free(&raw);
	return 0;
bad:
	xasprintf(cause, "'%s' is not a cursor (nor latest or earliest)", s);
fail:
	fm_buf_free(&raw);
	return err;
}

/* ---- open and free ---- */

int
fm_bcast_open(struct fm_broker *b, const char *topic, const char *from,
    struct fm_bcast **out, char **cause)
{
	struct fm_bcast *bc = xcalloc(1, sizeof(*bc));
	struct fm_topic_conf tc;
	uint64_t min, max;
	int err;

	*out = NULL;
	if ((err = fm_broker_check_topic_name(topic, cause)) < 0 ||
	    (err = fm_broker_topic_get(b, topic, &tc, cause)) < 0)
		goto fail;
	bc->b = b;
	bc->topic = xstrdup(topic);
	bc->nq = tc.queues;
	bc->incarnation = tc.created_ms;
	bc->next = xcalloc(bc->nq, sizeof(*bc->next));
	if (from != NULL && strcmp(from, "latest") != 0 &&
	    strcmp(from, "earliest") != 0) {
		if ((err = cursor_parse(bc, from, cause)) < 0)
			goto fail;
	} else {
		for (uint32_t q = 0; q < bc->nq; q++) {
			fm_broker_queue_range(b, topic, q, &min, &max);
			bc->next[q] =
			    from != NULL && strcmp(from, "earliest") == 0 ? min
			                                                  : max;
		}
	}
	*out = bc;
	return 0;
fail:
	fm_bcast_free(bc);
	return err;
}

void
fm_bcast_free(struct fm_bcast *bc)
{
	if (bc == NULL)
		return;
	fm_bcast_disarm(bc);
	fm_buf_free(&bc->ev);
	fm_buf_free(&bc->cur);
	free(bc->next);
	free(bc->topic);
	free(bc);
}

struct fm_bcast *
fm_bcast_clone(const struct fm_bcast *bc)
{
	struct fm_bcast *c = xcalloc(1, sizeof(*c));

	c->b = bc->b;
	c->topic = xstrdup(bc->topic);
	c->nq = bc->nq;
	c->next = xmemdup(bc->next, bc->nq * sizeof(*bc->next));
	c->rr = bc->rr;
	c->turn_used = bc->turn_used;
	c->incarnation = bc->incarnation;
	c->cache = bc->cache;
	return c;
}

int
fm_bcast_same_topic(const struct fm_bcast *a, const struct fm_bcast *b)
{
	return a->incarnation == b->incarnation && a->nq == b->nq &&
	    strcmp(a->topic, b->topic) == 0;
}

int
fm_bcast_same(const struct fm_bcast *a, const struct fm_bcast *b)
{
	return fm_bcast_same_topic(a, b) &&
	    memcmp(a->next, b->next, a->nq * sizeof(*a->next)) == 0;
}

void
fm_bcast_seek_like(struct fm_bcast *dst, const struct fm_bcast *src)
{
	memcpy(dst->next, src->next, dst->nq * sizeof(*dst->next));
	dst->rr = src->rr;
	dst->turn_used = src->turn_used;
}

/* ---- the event cache ---- */

struct fm_bcast_cache *
fm_bcast_cache_new(void)
{
	return xcalloc(1, sizeof(struct fm_bcast_cache));
}

void
fm_bcast_cache_free(struct fm_bcast_cache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < FM_BCAST_CACHE_SLOTS; i++) {
		free(c->slot[i].topic);
		fm_buf_free(&c->slot[i].json);
	}
	free(c);
}

void
fm_bcast_use_cache(struct fm_bcast *bc, struct fm_bcast_cache *c)
{
	bc->cache = c;
}

static struct cache_ent *
cache_slot(struct fm_bcast_cache *c, const struct fm_bcast *bc, uint32_t q,
    uint64_t off)
{
	uint64_t h = 1469598103934665603ull;

	for (const char *p = bc->topic; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	h ^= (uint64_t)q * 0x9e3779b97f4a7c15ull;
	h += off;
	return &c->slot[h % FM_BCAST_CACHE_SLOTS];
}

static const struct fm_buf *
cache_get(const struct fm_bcast *bc, uint32_t q, uint64_t off)
{
	struct cache_ent *e = cache_slot(bc->cache, bc, q, off);

	if (e->topic == NULL || e->off != off || e->q != q ||
	    e->incarnation != bc->incarnation || strcmp(e->topic, bc->topic))
		return NULL;
	return &e->json;
}

static void
cache_put(const struct fm_bcast *bc, uint32_t q, uint64_t off, const char *json,
    size_t len)
{
	struct cache_ent *e;

	if (len > FM_BCAST_CACHE_EVENT)
		return;
	e = cache_slot(bc->cache, bc, q, off);
	if (e->topic == NULL || strcmp(e->topic, bc->topic) != 0) {
		free(e->topic);
		e->topic = xstrdup(bc->topic);
	}
	e->incarnation = bc->incarnation;
	e->q = q;
	e->off = off;
	fm_buf_reset(&e->json);
	fm_buf_add(&e->json, json, len);
}

/* ---- reading ---- */

/* The event being written in j (bc->ev) is an open object: add the
 * current cursor, close it and hand it out. */
static void
emit_event(
    struct fm_bcast *bc, struct fm_json *j, fm_bcast_emit_fn emit, void *arg)
{
	fm_buf_reset(&bc->cur);
	fm_bcast_cursor(bc, &bc->cur);
	fm_json_strn(j, "cursor", bc->cur.data, bc->cur.len);
	fm_json_obj_end(j);
	emit(arg, bc->ev.data, bc->ev.len, bc->cur.data);
}

/* Invariant 3: the offsets [from, to) of queue q are no longer retained. */
static void
emit_gap(struct fm_bcast *bc, uint32_t q, uint64_t to, fm_bcast_emit_fn emit,
    void *arg)
{
	struct fm_json j;
	uint64_t from = bc->next[q];

	bc->next[q] = to;
	fm_buf_reset(&bc->ev);
	fm_json_init(&j, &bc->ev);
	fm_json_obj(&j, NULL);
	fm_codec_gap(&j, "gap", bc->topic, q, from, to);
	emit_event(bc, &j, emit, arg);
}

static void
emit_message(struct fm_bcast *bc, const struct fm_message *m,
    fm_bcast_emit_fn emit, void *arg)
{
	struct fm_json j;

	bc->next[m->rec.queue_id] = m->rec.queue_offset + 1;
	fm_buf_reset(&bc->ev);
	fm_json_init(&j, &bc->ev);
	fm_codec_message_open(&j, NULL, m);
	if (bc->cache != NULL)
		cache_put(bc, m->rec.queue_id, m->rec.queue_offset, bc->ev.data,
		    bc->ev.len);
	emit_event(bc, &j, emit, arg);
}

/* Serve queue q from the cache as far as it holds the next offsets (a
 * cached offset exists: it was read from the store). Returns how many
 * events were emitted. */
static int
read_cached(struct fm_bcast *bc, uint32_t q, int turn, size_t *bytes,
    size_t max_bytes, fm_bcast_emit_fn emit, void *arg)
{
	const struct fm_buf *hit;
	struct fm_json j;
	int n = 0;

	while (n < turn && *bytes < max_bytes &&
	    (hit = cache_get(bc, q, bc->next[q])) != NULL) {
		fm_buf_reset(&bc->ev);
		fm_buf_add(&bc->ev, hit->data, hit->len);
		fm_json_resume_obj(&j, &bc->ev);
		bc->next[q]++;
		emit_event(bc, &j, emit, arg);
		*bytes += bc->ev.len;
		n++;
	}
	return n;
}

/* Whether queue q still holds the next offset to read. */
static int
retained(const struct fm_bcast *bc, uint32_t q)
{
	uint64_t min, max;

	fm_broker_queue_range(bc->b, bc->topic, q, &min, &max);
	return bc->next[q] >= min;
}

/* The rest of queue q's turn, at most turn events: returns the events
 * emitted (0: nothing new), and sets *cut when it stopped at max_bytes
 * first, so that the next read goes on with the rest of the same turn:
 * the merge order does not depend on where reads stop. */
static int
read_queue(struct fm_bcast *bc, uint32_t q, int turn, size_t *bytes,
    size_t max_bytes, int *cut, fm_bcast_emit_fn emit, void *arg, char **cause)
{
	struct fm_pull_result pr;
	uint64_t first;
	int err, n = 0;

	/* a turn is FM_BCAST_BATCH events however many the cache holds, so
	 * the merge order does not depend on what other readers read; the
	 * cache may still hold events retention deleted, which the store
	 * must answer for (invariant 3) */
	if (bc->cache != NULL && retained(bc, q)) {
		n = read_cached(bc, q, turn, bytes, max_bytes, emit, arg);
		if (n == turn)
			return n;
		if (*bytes >= max_bytes) {
			*cut = 1;
			return n;
		}
	}
	memset(&pr, 0, sizeof(pr));
	err = fm_broker_pull(
	    bc->b, bc->topic, q, bc->next[q], (size_t)(turn - n), &pr, cause);
	if (err < 0)
		return err;
	first =
	    pr.msgs.n > 0 ? pr.msgs.items[0].rec.queue_offset : pr.next_offset;
	if (first > bc->next[q]) {
		emit_gap(bc, q, first, emit, arg);
		*bytes += bc->ev.len;
		n++;
	}
	/* what the caller holds stays within about max_bytes (one event
	 * over at most): the rest of the pull is read again next turn */
	for (size_t i = 0; i < pr.msgs.n; i++) {
		emit_message(bc, &pr.msgs.items[i], emit, arg);
		*bytes += bc->ev.len;
		n++;
		if (*bytes >= max_bytes && i + 1 < pr.msgs.n) {
			*cut = 1;
			goto out;
		}
	}
	bc->next[q] = pr.next_offset;
out:
	fm_msg_list_free(&pr.msgs);
	return n;
}

int
fm_bcast_read(struct fm_bcast *bc, size_t max_bytes, fm_bcast_emit_fn emit,
    void *arg, char **cause)
{
	size_t bytes = 0;
	uint32_t dry = 0;
	int n, total = 0;

	while (bytes < max_bytes && dry < bc->nq) {
		int cut = 0;

		n = read_queue(bc, bc->rr, FM_BCAST_BATCH - (int)bc->turn_used,
		    &bytes, max_bytes, &cut, emit, arg, cause);
		if (n < 0)
			return n;
		dry = n > 0 ? 0 : dry + 1;
		total += n;
		if (cut) {
			bc->turn_used += (uint32_t)n;
		} else {
			bc->turn_used = 0;
			bc->rr = (bc->rr + 1) % bc->nq;
		}
	}
	return total;
}

/* ---- waking ---- */

static void
arm_release(struct fm_bcast_arm *a)
{
	if (atomic_fetch_sub(&a->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&a->lock);
	free(a->w);
	free(a);
}

static void
arm_fired(void *arg, enum fm_wake why)
{
	struct fm_bcast_arm *a = arg;

	pthread_mutex_lock(&a->lock);
	if (!a->done) {
		a->done = 1;
		a->wake(a->arg,
		    why == FM_WAKE_DATA          ? FM_BCAST_DATA
		        : why == FM_WAKE_TIMEOUT ? FM_BCAST_IDLE
		                                 : FM_BCAST_SHUTDOWN);
	}
	pthread_mutex_unlock(&a->lock);
	arm_release(a);
}

static struct fm_bcast_arm *
arm_new(struct fm_broker *b, uint32_t n, fm_bcast_wake_fn wake, void *arg)
{
	struct fm_bcast_arm *a = xcalloc(1, sizeof(*a));

	pthread_mutex_init(&a->lock, NULL);
	atomic_init(&a->refs, n + 1);
	a->wake = wake;
	a->arg = arg;
	a->b = b;
	a->n = n;
	a->w = xcalloc(n, sizeof(*a->w));
	return a;
}

static void
arm_cancel(struct fm_bcast_arm *a)
{
	pthread_mutex_lock(&a->lock);
	a->done = 1;
	pthread_mutex_unlock(&a->lock);
	for (uint32_t q = 0; q < a->n; q++)
		if (fm_broker_unwatch(a->b, a->w[q]) == 1)
			arm_release(a);
	arm_release(a);
}

void
fm_bcast_arm(
    struct fm_bcast *bc, int64_t idle_ms, fm_bcast_wake_fn wake, void *arg)
{
	int64_t deadline = fm_mono_ms() + idle_ms;
	struct fm_bcast_arm *a;

	fm_bcast_disarm(bc);
	bc->arm = a = arm_new(bc->b, bc->nq, wake, arg);
	for (uint32_t q = 0; q < bc->nq; q++)
		a->w[q] = fm_broker_watch(
		    bc->b, bc->topic, q, bc->next[q], deadline, arm_fired, a);
}

void
fm_bcast_disarm(struct fm_bcast *bc)
{
	struct fm_bcast_arm *a = bc->arm;

	if (a == NULL)
		return;
	bc->arm = NULL;
	arm_cancel(a);
}

struct fm_bcast_arm *
fm_bcast_watch(struct fm_broker *b, const char *topic, uint32_t queue_id,
    uint64_t offset, int64_t idle_ms, fm_bcast_wake_fn wake, void *arg)
{
	struct fm_bcast_arm *a = arm_new(b, 1, wake, arg);

	a->w[0] = fm_broker_watch(
	    b, topic, queue_id, offset, fm_mono_ms() + idle_ms, arm_fired, a);
	return a;
}

void
fm_bcast_unwatch(struct fm_bcast_arm *a)
{
	if (a != NULL)
		arm_cancel(a);
}
