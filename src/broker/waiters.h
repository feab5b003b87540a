/*
 * waiters.h - long-poll watches: park a callback until a queue grows past
 * an offset, a deadline passes, or the node shuts down.
 *
 * Owns the parked watches, their indexes (by id, by topic, by deadline)
 * and one timer thread. Does not know where messages come from: the
 * broker feeds fm_waiters_notify from the store's dispatcher hook and
 * checks the current max itself after fm_waiters_add (see broker.c).
 *
 * Invariants:
 *  1. A watch is parked in all three indexes or in none.
 *  2. A watch is fired exactly once, by whoever detaches it from the
 *     indexes under the lock; callbacks always run without the lock held.
 *  3. Ids are never reused, so a stale id is harmless: cancel and fire
 *     answer 0 for it.
 *  4. After fm_waiters_shutdown nothing parks: every add fires
 *     FM_WAKE_SHUTDOWN at once.
 *  5. No polling: the timer thread sleeps on a CLOCK_MONOTONIC condvar
 *     until the earliest deadline or a change of it.
 */
#ifndef FM_BROKER_WAITERS_H
#define FM_BROKER_WAITERS_H

#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"

struct fm_waiters;

/* Start the timer thread. *out is new (fm_waiters_free). 0 or -FM_E_IO. */
int fm_waiters_new(struct fm_waiters **out);
/* Fire every parked watch with FM_WAKE_SHUTDOWN and stop the timer
 * thread; later adds fire FM_WAKE_SHUTDOWN at once. Idempotent. */
void fm_waiters_shutdown(struct fm_waiters *ws);
/* Shut down (if not yet) and free. */
void fm_waiters_free(struct fm_waiters *ws);

/* Park a watch on (topic, queue_id) for data beyond offset (a notify with
 * max_offset > offset; FM_ANY_QUEUE matches every queue of the topic), or
 * until deadline_mono_ms. topic is copied. Returns the watch's id (> 0).
 * A deadline already past fires FM_WAKE_TIMEOUT from the timer thread at
 * once, never from this call, so the caller may still check for data. */
uint64_t fm_waiters_add(struct fm_waiters *ws, const char *topic,
    uint32_t queue_id, uint64_t offset, int64_t deadline_mono_ms, fm_wake_fn cb,
    void *arg);
/* Fire the watch with why if it is still parked, on this thread. Returns
 * 1 if this call fired it, 0 if it had been fired or cancelled. */
int fm_waiters_fire(struct fm_waiters *ws, uint64_t id, enum fm_wake why);
/* Remove the watch without firing it. 1 if removed, 0 if it was no longer
 * parked (its callback has run or is running). */
int fm_waiters_cancel(struct fm_waiters *ws, uint64_t id);
/* Queue queue_id of topic is readable up to max_offset: fire (FM_WAKE_DATA,
 * on this thread) every matching watch. queue_id FM_ANY_QUEUE with
 * max_offset UINT64_MAX fires every watch of the topic (it was deleted:
 * its readers must look). Must not block: takes the lock only to detach,
 * fires outside it. */
void fm_waiters_notify(struct fm_waiters *ws, const char *topic,
    uint32_t queue_id, uint64_t max_offset);
/* Watches parked right now. */
size_t fm_waiters_parked(struct fm_waiters *ws);

#endif
