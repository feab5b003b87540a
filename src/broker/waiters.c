/*
 * waiters.c - parked long-poll watches (see waiters.h for the contract
 * and invariants).
 *
 * Owns: every parked struct waiter, three indexes over them and the timer
 * thread. One mutex guards all of it; callbacks run outside it.
 *
 *   by id:       chained hash (ids[]), for cancel/fire by handle
 *   by topic:    chained hash of topic lists (tops[]), each a FIFO of its
 *                watches, so a notify touches only its topic's watches
 *   by deadline: binary min-heap (heap[]) keyed (deadline, id); each
 *                waiter remembers its slot so removal is O(log n)
 *
 * A watch moves parked -> detached (under the lock, by detach()) ->
 * fired (outside it, by fire_list(), which frees it). Nothing else frees
 * a watch, which is why a fired id can never be touched again.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/xmalloc.h"
#include "broker/waiters.h"

struct tlist;

struct waiter {
	uint64_t id; /* > 0, never reused */
	uint32_t queue_id; /* or FM_ANY_QUEUE */
	uint64_t offset; /* fires once max_offset > offset */
	int64_t deadline; /* fm_mono_ms clock */
	fm_wake_fn cb;
	void *arg;
	size_t heap_idx; /* slot in ws->heap */
	struct waiter *id_next;
	struct waiter *t_prev; /* topic FIFO */
	struct waiter *t_next;
	struct tlist *tl; /* the topic list holding it */
	struct waiter *fire_next;
};

struct tlist {
	char *topic; /* owned */
	struct waiter *head;
	struct waiter *tail;
	struct tlist *next; /* hash chain */
};

struct fm_waiters {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* monotonic; the timer thread sleeps on it */
	pthread_t timer;
	int timer_started;
	int stopping; /* set by shutdown; nothing parks after */
	uint64_t next_id;
	size_t parked;
	struct waiter **ids; /* id hash buckets */
	size_t nids; /* bucket count, a power of two */
	struct tlist **tops; /* topic hash buckets */
	size_t ntops; /* bucket count, a power of two */
	struct waiter **heap;
	size_t heap_cap;
};

/* ---- hashing ---- */

static uint64_t
fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static size_t
id_slot(const struct fm_waiters *ws, uint64_t id)
{
	return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 17) & (ws->nids - 1);
}

static void
ids_grow(struct fm_waiters *ws)
{
	size_t old = ws->nids;
	struct waiter **oldb = ws->ids;

	ws->nids = old * 2;
	ws->ids = xcalloc(ws->nids, sizeof(*ws->ids));
	for (size_t i = 0; i < old; i++) {
		struct waiter *w = oldb[i];

		while (w) {
			struct waiter *next = w->id_next;
			size_t s = id_slot(ws, w->id);

			w->id_next = ws->ids[s];
			ws->ids[s] = w;
			w = next;
		}
	}
	free(oldb);
}

static void
ids_put(struct fm_waiters *ws, struct waiter *w)
{
	if (ws->parked >= ws->nids * 2)
		ids_grow(ws);
	size_t s = id_slot(ws, w->id);

	w->id_next = ws->ids[s];
	ws->ids[s] = w;
}

static struct waiter *
ids_find(const struct fm_waiters *ws, uint64_t id)
{
	struct waiter *w = ws->ids[id_slot(ws, id)];

	while (w && w->id != id)
		w = w->id_next;
	return w;
}

static void
ids_del(struct fm_waiters *ws, struct waiter *w)
{
	struct waiter **pp = &ws->ids[id_slot(ws, w->id)];

	while (*pp != w)
		pp = &(*pp)->id_next;
	*pp = w->id_next;
}

/* ---- topic lists ---- */

static struct tlist *
tops_find(const struct fm_waiters *ws, const char *topic, struct tlist ***where)
{
	struct tlist **pp = &ws->tops[fnv1a(topic) & (ws->ntops - 1)];

	while (*pp && strcmp((*pp)->topic, topic) != 0)
		pp = &(*pp)->next;
	if (where)
		*where = pp;
	return *pp;
}

static void
tops_put(struct fm_waiters *ws, const char *topic, struct waiter *w)
{
	struct tlist **pp;
	struct tlist *tl = tops_find(ws, topic, &pp);

	if (tl == NULL) {
		tl = xcalloc(1, sizeof(*tl));
		tl->topic = xstrdup(topic);
		*pp = tl;
	}
	w->tl = tl;
	w->t_prev = tl->tail;
	w->t_next = NULL;
	if (tl->tail)
		tl->tail->t_next = w;
	else
		tl->head = w;
	tl->tail = w;
}

static void
tops_del(struct fm_waiters *ws, struct waiter *w)
{
	struct tlist *tl = w->tl;
	struct tlist **pp;

	if (w->t_prev)
		w->t_prev->t_next = w->t_next;
	else
		tl->head = w->t_next;
	if (w->t_next)
		w->t_next->t_prev = w->t_prev;
	else
		tl->tail = w->t_prev;
	if (tl->head)
		return;
	tops_find(ws, tl->topic, &pp);
	*pp = tl->next;
	free(tl->topic);
	free(tl);
}

/* ---- deadline heap ---- */

static int
heap_less(const struct waiter *a, const struct waiter *b)
{
	if (a->deadline != b->deadline)
		return a->deadline < b->deadline;
	return a->id < b->id;
}

static void
heap_set(struct fm_waiters *ws, size_t i, struct waiter *w)
{
	ws->heap[i] = w;
	w->heap_idx = i;
}

static void
heap_up(struct fm_waiters *ws, size_t i)
{
	struct waiter *w = ws->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!heap_less(w, ws->heap[parent]))
			break;
		heap_set(ws, i, ws->heap[parent]);
		i = parent;
	}
	heap_set(ws, i, w);
}

static void
heap_down(struct fm_waiters *ws, size_t i)
{
	struct waiter *w = ws->heap[i];
	size_t n = ws->parked;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && heap_less(ws->heap[c + 1], ws->heap[c]))
			c++;
		if (!heap_less(ws->heap[c], w))
			break;
		heap_set(ws, i, ws->heap[c]);
		i = c;
	}
	heap_set(ws, i, w);
}

/* The heap holds exactly ws->parked entries; callers adjust the count. */
static void
heap_push(struct fm_waiters *ws, struct waiter *w)
{
	if (ws->parked == ws->heap_cap) {
		ws->heap_cap = ws->heap_cap ? ws->heap_cap * 2 : 64;
		ws->heap =
		    xreallocarray(ws->heap, ws->heap_cap, sizeof(*ws->heap));
	}
	heap_set(ws, ws->parked, w);
	ws->parked++;
	heap_up(ws, ws->parked - 1);
}

static void
heap_remove(struct fm_waiters *ws, struct waiter *w)
{
	size_t i = w->heap_idx;
	struct waiter *last = ws->heap[--ws->parked];

	if (last == w)
		return;
	heap_set(ws, i, last);
	heap_up(ws, i);
	heap_down(ws, last->heap_idx);
}

/* ---- parking and firing ---- */

/* Take w out of every index (invariant 1). Lock held. */
static void
detach(struct fm_waiters *ws, struct waiter *w)
{
	heap_remove(ws, w);
	ids_del(ws, w);
	tops_del(ws, w);
}

/* Run and free a detached chain, in chain order. Lock not held. */
static void
fire_list(struct waiter *head, enum fm_wake why)
{
	while (head) {
		struct waiter *next = head->fire_next;

		head->cb(head->arg, why);
		free(head);
		head = next;
	}
}

static void
abs_mono(struct timespec *ts, int64_t mono_ms)
{
	if (mono_ms < 0)
		mono_ms = 0;
	ts->tv_sec = (time_t)(mono_ms / 1000);
	ts->tv_nsec = (long)(mono_ms % 1000) * 1000000;
}

/* Detach every watch whose deadline has passed, earliest first. */
static struct waiter *
take_expired(struct fm_waiters *ws, int64_t now)
{
	struct waiter *head = NULL;
	struct waiter **tail = &head;

	while (ws->parked > 0 && ws->heap[0]->deadline <= now) {
		struct waiter *w = ws->heap[0];

		detach(ws, w);
		w->fire_next = NULL;
		*tail = w;
		tail = &w->fire_next;
	}
	return head;
}

static void *
timer_main(void *arg)
{
	struct fm_waiters *ws = arg;

	pthread_mutex_lock(&ws->lock);
	while (!ws->stopping) {
		if (ws->parked == 0) {
			pthread_cond_wait(&ws->cond, &ws->lock);
			continue;
		}
		int64_t deadline = ws->heap[0]->deadline;

		if (deadline > fm_mono_ms()) {
			struct timespec ts;

			abs_mono(&ts, deadline);
			pthread_cond_timedwait(&ws->cond, &ws->lock, &ts);
			continue;
		}
		struct waiter *due = take_expired(ws, fm_mono_ms());

		pthread_mutex_unlock(&ws->lock);
		fire_list(due, FM_WAKE_TIMEOUT);
		pthread_mutex_lock(&ws->lock);
	}
	pthread_mutex_unlock(&ws->lock);
	return NULL;
}

int
fm_waiters_new(struct fm_waiters **out)
{
	struct fm_waiters *ws = xcalloc(1, sizeof(*ws));

	pthread_mutex_init(&ws->lock, NULL);
	fm_cond_init_monotonic(&ws->cond);
	ws->next_id = 1;
	ws->nids = 64;
	ws->ids = xcalloc(ws->nids, sizeof(*ws->ids));
	ws->ntops = 256;
	ws->tops = xcalloc(ws->ntops, sizeof(*ws->tops));
	if (pthread_create(&ws->timer, NULL, timer_main, ws) != 0)
		goto fail;
	ws->timer_started = 1;
	*out = ws;
	return 0;
fail:
	fm_waiters_free(ws);
	return -FM_E_IO;
}

void
fm_waiters_shutdown(struct fm_waiters *ws)
{
	struct waiter *head = NULL;
	struct waiter **tail = &head;

	pthread_mutex_lock(&ws->lock);
	ws->stopping = 1;
	while (ws->parked > 0) {
		struct waiter *w = ws->heap[0];

		detach(ws, w);
		w->fire_next = NULL;
		*tail = w;
		tail = &w->fire_next;
	}
	pthread_cond_broadcast(&ws->cond);
	pthread_mutex_unlock(&ws->lock);
	if (ws->timer_started) {
		pthread_join(ws->timer, NULL);
		ws->timer_started = 0;
	}
	fire_list(head, FM_WAKE_SHUTDOWN);
}

void
fm_waiters_free(struct fm_waiters *ws)
{
	if (ws == NULL)
		return;
	fm_waiters_shutdown(ws);
	pthread_cond_destroy(&ws->cond);
	pthread_mutex_destroy(&ws->lock);
	free(ws->ids);
	free(ws->tops);
	free(ws->heap);
	free(ws);
}

uint64_t
fm_waiters_add(struct fm_waiters *ws, const char *topic, uint32_t queue_id,
    uint64_t offset, int64_t deadline_mono_ms, fm_wake_fn cb, void *arg)
{
	struct waiter *w = xcalloc(1, sizeof(*w));
	uint64_t id;

	w->queue_id = queue_id;
	w->offset = offset;
	w->deadline = deadline_mono_ms;
	w->cb = cb;
	w->arg = arg;
	pthread_mutex_lock(&ws->lock);
	id = w->id = ws->next_id++;
	if (ws->stopping) {
		pthread_mutex_unlock(&ws->lock);
		w->fire_next = NULL;
		fire_list(w, FM_WAKE_SHUTDOWN);
		return id;
	}
	ids_put(ws, w);
	tops_put(ws, topic, w);
	heap_push(ws, w);
	if (ws->heap[0] == w)
		pthread_cond_signal(&ws->cond);
	pthread_mutex_unlock(&ws->lock);
	return id;
}

/* Detach the watch with this id if still parked; NULL otherwise. */
static struct waiter *
take_id(struct fm_waiters *ws, uint64_t id)
{
	struct waiter *w;

	pthread_mutex_lock(&ws->lock);
	w = ids_find(ws, id);
	if (w)
		detach(ws, w);
	pthread_mutex_unlock(&ws->lock);
	return w;
}

int
fm_waiters_fire(struct fm_waiters *ws, uint64_t id, enum fm_wake why)
{
	struct waiter *w = take_id(ws, id);

	if (w == NULL)
		return 0;
	w->fire_next = NULL;
	fire_list(w, why);
	return 1;
}

int
fm_waiters_cancel(struct fm_waiters *ws, uint64_t id)
{
	struct waiter *w = take_id(ws, id);

	free(w);
	return w != NULL;
}

void
fm_waiters_notify(struct fm_waiters *ws, const char *topic, uint32_t queue_id,
    uint64_t max_offset)
{
	struct waiter *head = NULL;
	struct waiter **tail = &head;
	struct tlist *tl;

	pthread_mutex_lock(&ws->lock);
	tl = tops_find(ws, topic, NULL);
	for (struct waiter *w = tl ? tl->head : NULL, *next; w; w = next) {
		/* detach() may free tl once its last watch leaves. */
		next = w->t_next;
		if (queue_id != FM_ANY_QUEUE && w->queue_id != FM_ANY_QUEUE &&
		    w->queue_id != queue_id)
			continue;
		if (max_offset <= w->offset)
			continue;
		detach(ws, w);
		w->fire_next = NULL;
		*tail = w;
		tail = &w->fire_next;
	}
	pthread_mutex_unlock(&ws->lock);
	fire_list(head, FM_WAKE_DATA);
}

size_t
fm_waiters_parked(struct fm_waiters *ws)
{
	size_t n;

	pthread_mutex_lock(&ws->lock);
	n = ws->parked;
	pthread_mutex_unlock(&ws->lock);
	return n;
}
