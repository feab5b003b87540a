/*
 * hub.c - shared readers of caught-up broadcast subscribers (see hub.h).
 *
 * Owns every struct fm_hub: its frontier reader (a clone of the reader
 * of the member that made it), its member list and its arming. The set
 * keeps its hubs in one list (a thread serves few topics; a join looks
 * them up only when a reader has just caught up) and the woken ones in
 * another, guarded by the set's lock because wakes come from broker
 * threads.
 *
 *   hub event            move (by whom)
 *   -------------------  ---------------------------------------------
 *   made by a join       armed at the frontier (fm_hubs_join)
 *   watch fires          -> woken list, kick (on_wake, broker thread)
 *   served               evict members without room, read one batch,
 *                        deliver it, arm again (serve_one); an arming
 *                        with more to read fires at once, so a backlog
 *                        is read one batch per turn of the owning loop
 *   last member leaves   disarmed, off the woken list, freed (hub_free)
 *
 * Why evict below HUB_READ of room rather than at none: a hub reads as
 * much as its tightest member can take, so one nearly full member would
 * shrink every batch of everyone to a single event; such a member is far
 * behind its peers anyway and catches up faster on its own.
 */
#include <pthread.h>
#include <stdlib.h>

#include "base/xmalloc.h"
#include "ws/hub.h"

#define HUB_READ (32 * 1024) /* bytes of events read per turn */
#define HUB_IDLE_MS (3600 * 1000) /* watch deadline; re-armed after it */

struct fm_hub {
	struct fm_hubs *hs; /* borrowed: the owning set */
	struct fm_bcast *bc; /* owned: the frontier */
	struct fm_hub_member *members; /* borrowed list */
	struct fm_hub *prev, *next; /* in hs->hubs */
	struct fm_hub *wnext; /* in hs->woken (hs->lock) */
	int wake_pending; /* on hs->woken (hs->lock) */
};

struct fm_hubs {
	const struct fm_hub_ops *ops; /* borrowed */
	void (*kick)(void *);
	void *kick_arg;
	struct fm_hub *hubs; /* owned list, owning thread only */
	pthread_mutex_t lock; /* guards woken and every wake_pending */
	struct fm_hub *woken;
};

struct fm_hubs *
fm_hubs_new(const struct fm_hub_ops *ops, void (*kick)(void *), void *kick_arg)
{
	struct fm_hubs *hs = xcalloc(1, sizeof(*hs));

	hs->ops = ops;
	hs->kick = kick;
	hs->kick_arg = kick_arg;
	pthread_mutex_init(&hs->lock, NULL);
	return hs;
}

void
fm_hubs_free(struct fm_hubs *hs)
{
	if (hs == NULL)
		return;
	pthread_mutex_destroy(&hs->lock);
	free(hs);
}

/* ---- hubs ---- */

static void
on_wake(void *arg, enum fm_bcast_why why)
{
	struct fm_hub *h = arg;
	struct fm_hubs *hs = h->hs;

	if (why == FM_BCAST_SHUTDOWN)
		return;
	pthread_mutex_lock(&hs->lock);
	if (!h->wake_pending) {
		h->wake_pending = 1;
		h->wnext = hs->woken;
		if (hs->woken == NULL)
			hs->kick(hs->kick_arg);
		hs->woken = h;
	}
	pthread_mutex_unlock(&hs->lock);
}

static void
hub_free(struct fm_hub *h)
{
	struct fm_hubs *hs = h->hs;

	fm_bcast_free(h->bc); /* disarms: no wake after this */
	pthread_mutex_lock(&hs->lock);
	if (h->wake_pending) {
		struct fm_hub **pp = &hs->woken;

		while (*pp != h)
			pp = &(*pp)->wnext;
		*pp = h->wnext;
	}
	pthread_mutex_unlock(&hs->lock);
	if (h->prev != NULL)
		h->prev->next = h->next;
	else
		hs->hubs = h->next;
	if (h->next != NULL)
		h->next->prev = h->prev;
	free(h);
}

static struct fm_hub *
hub_new(struct fm_hubs *hs, const struct fm_bcast *bc)
{
	struct fm_hub *h = xcalloc(1, sizeof(*h));

	h->hs = hs;
	h->bc = fm_bcast_clone(bc);
	h->next = hs->hubs;
	if (hs->hubs != NULL)
		hs->hubs->prev = h;
	hs->hubs = h;
	return h;
}

static void
unlink_member(struct fm_hub_member *m)
{
	struct fm_hub *h = m->hub;

	if (m->prev != NULL)
		m->prev->next = m->next;
	else
		h->members = m->next;
	if (m->next != NULL)
		m->next->prev = m->prev;
	m->prev = m->next = NULL;
	m->hub = NULL;
}

/* Invariant 1: the member's reader goes where the hub stands. */
static void
take_out(struct fm_hub_member *m)
{
	fm_bcast_seek_like(m->bc, m->hub->bc);
	unlink_member(m);
}

/* ---- members ---- */

int
fm_hubs_join(struct fm_hubs *hs, struct fm_hub_member *m, struct fm_bcast *bc)
{
	struct fm_hub *h;

	/* it would be evicted at the next turn (see the top) */
	if (hs->ops->room(m) < HUB_READ)
		return 0;
	for (h = hs->hubs; h != NULL; h = h->next)
		if (fm_bcast_same_topic(h->bc, bc))
			break;
	if (h == NULL) {
		h = hub_new(hs, bc);
		fm_bcast_arm(h->bc, HUB_IDLE_MS, on_wake, h);
	} else if (!fm_bcast_same(h->bc, bc)) {
		return 0;
	}
	m->hub = h;
	m->bc = bc;
	m->prev = NULL;
	m->next = h->members;
	if (h->members != NULL)
		h->members->prev = m;
	h->members = m;
	return 1;
}

void
fm_hubs_leave(struct fm_hub_member *m)
{
	struct fm_hub *h = m->hub;

	if (h == NULL)
		return;
	take_out(m);
	if (h->members == NULL)
		hub_free(h);
}

/* ---- serving ---- */

static void
deliver(void *arg, const char *json, size_t len, const char *cursor)
{
	struct fm_hub *h = arg;

	(void)cursor;
	h->hs->ops->deliver(h->members, json, len);
}

static void
evict(struct fm_hub *h)
{
	struct fm_hub_member *m, *next;

	for (m = h->members; m != NULL; m = next) {
		next = m->next;
		if (h->hs->ops->room(m) < HUB_READ) {
			take_out(m);
			h->hs->ops->evicted(m);
		}
	}
}

static void
fail_all(struct fm_hub *h, int err, const char *cause)
{
	struct fm_hub_member *m;

	while ((m = h->members) != NULL) {
		unlink_member(m);
		h->hs->ops->failed(m, err, cause);
	}
}

static void
serve_one(struct fm_hub *h)
{
	char *cause = NULL;
	int n;

	evict(h);
	if (h->members == NULL) {
		hub_free(h);
		return;
	}
	n = fm_bcast_read(h->bc, HUB_READ, deliver, h, &cause);
	if (n < 0) {
		fail_all(h, n, cause);
		free(cause);
		hub_free(h);
		return;
	}
	fm_bcast_arm(h->bc, HUB_IDLE_MS, on_wake, h);
}

void
fm_hubs_serve(struct fm_hubs *hs)
{
	struct fm_hub *woken, *h;

	pthread_mutex_lock(&hs->lock);
	woken = hs->woken;
	hs->woken = NULL;
	for (h = woken; h != NULL; h = h->wnext)
		h->wake_pending = 0;
	pthread_mutex_unlock(&hs->lock);
	while ((h = woken) != NULL) {
		woken = h->wnext;
		serve_one(h);
	}
}
