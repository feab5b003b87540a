/*
 * watch.c - fm_broker_watch / fm_broker_unwatch on top of waiters.c.
 *
 * A struct fm_watch * handed to callers is not a pointer to memory: it is
 * the waiter's id (never 0, never reused) cast to a pointer, so a handle
 * used after its callback ran can never touch freed memory or cancel
 * someone else's watch; unwatch simply answers 0 for it.
 *
 * Ordering that makes a lost wake-up impossible: the watch is parked
 * first, then the current max is read. A message made readable before
 * the park is seen by the read; one made readable after it is seen by the
 * notify hook. Either way exactly one of them fires it (waiters.c).
 */
#include <stdint.h>

#include "base/clock.h"
#include "broker/internal.h"

static int
has_data(
    struct fm_broker *b, const char *topic, uint32_t queue_id, uint64_t offset)
{
	struct fm_topic_conf tc;
	uint64_t min, max;

	if (fm_groups_is_watch_topic(topic))
		return fm_groups_has_data(b->groups, topic, offset);
	if (queue_id != FM_ANY_QUEUE) {
		fm_store_queue_range(b->st, topic, queue_id, &min, &max);
		return max > offset;
	}
	if (fm_topics_conf(b, topic, &tc, NULL) < 0)
		return 0;
	for (uint32_t q = 0; q < tc.queues; q++) {
		fm_store_queue_range(b->st, topic, q, &min, &max);
		if (max > offset)
			return 1;
	}
	return 0;
}

struct fm_watch *
fm_broker_watch(struct fm_broker *b, const char *topic, uint32_t queue_id,
    uint64_t offset, int64_t deadline_mono_ms, fm_wake_fn cb, void *arg)
{
	uint64_t id = fm_waiters_add(
	    b->ws, topic, queue_id, offset, deadline_mono_ms, cb, arg);

	if (has_data(b, topic, queue_id, offset))
		fm_waiters_fire(b->ws, id, FM_WAKE_DATA);
	else if (deadline_mono_ms <= fm_mono_ms())
		fm_waiters_fire(b->ws, id, FM_WAKE_TIMEOUT);
	return (struct fm_watch *)(uintptr_t)id;
}

int
fm_broker_unwatch(struct fm_broker *b, struct fm_watch *w)
{
	return fm_waiters_cancel(b->ws, (uint64_t)(uintptr_t)w);
}
