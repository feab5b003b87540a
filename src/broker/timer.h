/*
 * timer.h - delayed and scheduled messages (RocketMQ 5's timer design).
 *
 * A message published with deliver_at more than FM_TIMER_MIN_MS ahead is
 * not stored in its topic: publish.c stores it in the system topic
 * FM_TIMER_TOPIC (one queue, 0), with its real topic and queue in the
 * properties FM_TIMER_PROP_TOPIC and FM_TIMER_PROP_QID, and deliver_at in
 * the record. The timer service owns what happens next: it keeps a
 * min-heap of (deliver_at, timer queue offset) of the entries not yet
 * delivered and, once one is due, re-appends the message to its real
 * topic and queue (same body, tag, keys and properties, minus the two
 * internal ones, plus ORIGIN_MESSAGE_ID = the timer record's msgId and
 * TIMER_DELIVER_MS = deliver_at), so consumers see it only then.
 *
 * The timer topic is never written to state.db's topics: it is absent
 * from the topic list and unknown to pull, receive and admin calls
 * (404), and publishing to it directly is refused.
 *
 * Durability: state.db keeps a watermark (every timer queue offset below
 * it is delivered) and the delivered offsets above it. An entry is marked
 * only after its re-append returned, so delivery is at-least-once: a
 * crash between the two delivers it again after the restart (with the
 * same ORIGIN_MESSAGE_ID). At start the heap is rebuilt by reading the
 * timer queue from the watermark, skipping delivered offsets; what is
 * overdue goes out at once.
 *
 * Retention: the store keeps the timer queue's records from the durable
 * watermark on (the broker names the queue in fm_store_options, the marks
 * move it), so a delay longer than fileReservedTime keeps its message.
 * The price: the oldest pending delayed message keeps every segment from
 * its own on, so segments may outlive fileReservedTime by up to
 * timerMaxDelaySec. Only a full disk overrides that (store.h); the scan
 * then finds the records gone and skips them with a warning.
 *
 * Known limit: a message whose real topic was deleted (and cannot be
 * auto-created) when it falls due is dropped with a warning.
 *
 * Threads: one service thread. fm_timer_notify is called from the store's
 * notify hook and only records the queue's new end and wakes the thread.
 */
#ifndef FM_BROKER_TIMER_H
#define FM_BROKER_TIMER_H

#include <stddef.h>
#include <stdint.h>

#define FM_TIMER_TOPIC "rmq_sys_wheel_timer"
#define FM_TIMER_PROP_TOPIC "__REAL_TOPIC"
#define FM_TIMER_PROP_QID "__REAL_QID"
/* Closer than this a deliver_at is not worth a round trip through the
 * timer: the message is stored in its topic at once. */
#define FM_TIMER_MIN_MS 50

struct fm_broker;
struct fm_timer;

/* A min-heap of timer entries ordered by (at, offset). */
struct fm_timer_entry {
	int64_t at; /* deliver_at, epoch ms */
	uint64_t offset; /* queue offset in the timer queue */
};

struct fm_timer_heap {
	struct fm_timer_entry *v; /* owned */
	size_t n;
	size_t cap;
};

void fm_timer_heap_push(struct fm_timer_heap *h, struct fm_timer_entry e);
/* Remove the smallest entry into *out: 1, or 0 when empty. */
int fm_timer_heap_pop(struct fm_timer_heap *h, struct fm_timer_entry *out);
void fm_timer_heap_free(struct fm_timer_heap *h);

/* Load the marks, scan the timer queue from the watermark and start the
 * service thread. b's store and topic cache must be open. *out is new
 * (fm_timer_free). */
int fm_timer_start(struct fm_broker *b, struct fm_timer **out);
/* Stop the thread (no more re-appends). What was not delivered stays in
 * the timer queue for the next start. fm_timer_notify stays safe to call
 * until fm_timer_free, so other appenders may run until the store closes.
 * NULL is ignored. */
void fm_timer_stop(struct fm_timer *t);
/* Stop (if still running) and free. NULL is ignored. */
void fm_timer_free(struct fm_timer *t);
/* The store made entries of topic's queue readable up to max_offset. */
void fm_timer_notify(struct fm_timer *t, const char *topic, uint32_t queue_id,
    uint64_t max_offset);
/* Entries known and not yet delivered (for tests and metrics). */
size_t fm_timer_pending(struct fm_timer *t);

#endif
