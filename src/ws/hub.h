/*
 * hub.h - one shared reader per topic for the caught-up broadcast readers
 * of one thread, so that a message published to a topic with N
 * subscribers is read, encoded and woken for once, not N times.
 *
 * A reader (struct fm_bcast) that is caught up joins its topic's hub when
 * it stands exactly where the hub does; from then on the hub reads each
 * new event once and hands it to every member, and the members' own
 * readers stay still. A member leaves when it closes, or is evicted when
 * it has no room left (a slow client): its reader is then moved to the
 * hub's position, so it goes on from exactly the event it missed.
 *
 * Owns: every hub, its frontier reader and its watch, the member lists.
 * Does not own: the members (the caller's, linked in through an embedded
 * struct fm_hub_member), what an event becomes (the ops).
 *
 * Invariants:
 *  1. Every member of a hub has been given exactly the events between its
 *     join and now, in the hub's order; when it leaves, its reader stands
 *     just after the last of them (bcast.h invariant 1 holds across).
 *  2. A hub exists only while it has members; freeing it disarms its
 *     watch first (no wake touches freed memory).
 *
 * Threads: everything but the wake runs on the owning thread. The wake
 * comes on a broker thread (or on the owning thread, from an arming that
 * fires at once): it queues the hub under the set's lock and calls
 * kick(), which must make the owning thread call fm_hubs_serve.
 */
#ifndef FM_WS_HUB_H
#define FM_WS_HUB_H

#include <stddef.h>

#include "ws/bcast.h"

struct fm_hub;
struct fm_hubs;

/* Embedded in the caller's reader; zeroed before first use. */
struct fm_hub_member {
	struct fm_hub *hub; /* NULL when not in a hub */
	struct fm_bcast *bc; /* borrowed: the member's reader */
	struct fm_hub_member *prev, *next; /* in hub->members */
};

struct fm_hub_ops {
	/* Bytes m can still take; 0 evicts it. */
	size_t (*room)(struct fm_hub_member *m);
	/* Give one event (json borrowed) to every member of the list first
	 * (linked by next). */
	void (*deliver)(
	    struct fm_hub_member *first, const char *json, size_t len);
	/* m left the hub for want of room; its reader stands where the
	 * hub's did, so it reads on its own from there. */
	void (*evicted)(struct fm_hub_member *m);
	/* The hub's reader failed (err, cause borrowed; -FM_E_NOT_FOUND
	 * once the topic is gone): m is no longer in a hub. */
	void (*failed)(struct fm_hub_member *m, int err, const char *cause);
};

/* New set (fm_hubs_free, after every member left). ops is borrowed;
 * kick(kick_arg) runs on a broker thread, under the set's lock, and must
 * not block. */
struct fm_hubs *fm_hubs_new(
    const struct fm_hub_ops *ops, void (*kick)(void *), void *kick_arg);
void fm_hubs_free(struct fm_hubs *hs);

/* m's reader bc is caught up (fm_bcast_read gave 0): join its topic's
 * hub, making one when there is none. Returns 1 when m joined, 0 when the
 * hub stands elsewhere or m has too little room (m should watch on its
 * own and try again). */
int fm_hubs_join(
    struct fm_hubs *hs, struct fm_hub_member *m, struct fm_bcast *bc);
/* Leave m's hub, moving its reader to the hub's position. A no-op when m
 * is in none. */
void fm_hubs_leave(struct fm_hub_member *m);
/* Serve the woken hubs: read what is new, deliver it, evict, re-arm. */
void fm_hubs_serve(struct fm_hubs *hs);

#endif
