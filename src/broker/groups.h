/*
 * groups.h - what the rest of the broker asks of the consumer groups
 * (groups.c): their lifetime, the append hook that wakes receivers, and
 * the "has data" test behind a receive's watch. Private to src/broker; the
 * front ends use the fm_broker_group_* calls of broker.h.
 *
 * A parked receive watches a watch topic, "topic/group": '/' never occurs
 * in a topic name, so no real topic shares it, and the "offset" of such a
 * watch is the group's change sequence, not a queue offset.
 */
#ifndef FM_BROKER_GROUPS_H
#define FM_BROKER_GROUPS_H

#include <stdint.h>

struct fm_broker;
struct fm_groups;

/* Load every group's offsets and receipts from the store and start the
 * visibility timer. The store must be open. *out is new. */
int fm_groups_open(struct fm_broker *b, struct fm_groups **out);
/* Stop the timer, wait for the completions of the group calls queued
 * so far (one of a failed receive undoes it in the groups), and free.
 * Before the store closes. NULL is a no-op. */
void fm_groups_close(struct fm_groups *gs);
/* The store made queue queue_id of topic readable below max_offset:
 * wake the receivers of every group of topic. Must not block. */
void fm_groups_notify(struct fm_groups *gs, const char *topic,
    uint32_t queue_id, uint64_t max_offset);
/* 1 when topic is a watch topic (it holds '/'). */
int fm_groups_is_watch_topic(const char *topic);
/* 1 when the group behind a watch topic changed past seq. */
int fm_groups_has_data(
    struct fm_groups *gs, const char *watch_topic, uint64_t seq);

#endif
