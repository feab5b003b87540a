/*
 * bcast.h - the broadcast reader shared by the WebSocket stream and the
 * EventSource stream: a cursor over every queue of one topic, reading
 * with fm_broker_pull and woken by fm_broker_watch.
 *
 * Owns: the cursor (the next offset of every queue), its text form, the
 * order in which queues are merged, the JSON of every event (a message
 * plus "cursor", or a gap marker) and the arming of watches. Does not
 * own: sockets, framing, flow control (the callers').
 *
 * Invariants:
 *  1. An event's cursor is the position just after that event: a reader
 *     opened with it sees exactly the events that followed, in the same
 *     order per queue, whatever happened in between.
 *  2. Queues are merged round robin, a batch of at most FM_BCAST_BATCH
 *     messages per queue per turn; order holds within a queue (RocketMQ
 *     promises no more) and nothing is held back waiting for timestamps.
 *  3. A cursor below a queue's oldest retained offset is never skipped
 *     silently: a gap event ({"gap": {...}, "cursor"}) names the queue and
 *     the offsets lost, then reading goes on from the oldest message.
 *  4. After fm_bcast_disarm returns, the wake function is neither running
 *     nor ever called again for that arming.
 *
 * Threads: one reader is used by one thread at a time; the wake function
 * runs on a broker thread (or on the caller's, inside fm_bcast_arm, when
 * there is data already) and must not block.
 */
#ifndef FM_WS_BCAST_H
#define FM_WS_BCAST_H

#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"

#define FM_BCAST_BATCH 64 /* messages per queue per round-robin turn */

struct fm_bcast;
struct fm_bcast_arm;

/* Open a reader of topic (borrowed) at from: NULL or "latest" (only what
 * comes next), "earliest" (everything retained) or a cursor. *out is new
 * (fm_bcast_free). Errors: -FM_E_NOT_FOUND (no topic), -FM_E_INVALID (a
 * malformed cursor, or one ahead of a queue), both with *cause (new). */
int fm_bcast_open(struct fm_broker *b, const char *topic, const char *from,
    struct fm_bcast **out, char **cause);
/* Disarms, then frees. NULL is a no-op. */
void fm_bcast_free(struct fm_bcast *bc);

/* A cache of recently read events (their JSON but the cursor), keyed by
 * topic incarnation, queue and offset, shared by the readers of one
 * thread: then N subscribers of a topic that catch up together read,
 * decode and encode each message once instead of N times (caught-up
 * ones share a hub, hub.h, and need no cache). Bounded: at most
 * FM_BCAST_CACHE_SLOTS events of at most FM_BCAST_CACHE_EVENT bytes
 * (4 MiB; at 2048 x 16 KiB it was a third of a busy node's memory). Not
 * thread-safe: one per thread (each WebSocket worker has one, pool.h). */
#define FM_BCAST_CACHE_SLOTS 1024
#define FM_BCAST_CACHE_EVENT (4 * 1024)
struct fm_bcast_cache;
/* New, empty (fm_bcast_cache_free). */
struct fm_bcast_cache *fm_bcast_cache_new(void);
void fm_bcast_cache_free(struct fm_bcast_cache *c);
/* bc reads through c (borrowed; it must outlive bc) from now on. */
void fm_bcast_use_cache(struct fm_bcast *bc, struct fm_bcast_cache *c);

/* A new reader of the same topic at the same position, not armed, reading
 * through the same cache (fm_bcast_free). */
struct fm_bcast *fm_bcast_clone(const struct fm_bcast *bc);
/* 1 when a and b read the same incarnation of one topic, else 0. */
int fm_bcast_same_topic(const struct fm_bcast *a, const struct fm_bcast *b);
/* 1 when they do and stand at the same position in every queue. */
int fm_bcast_same(const struct fm_bcast *a, const struct fm_bcast *b);
/* Move dst to src's position; both read the same topic incarnation
 * (fm_bcast_same but for the position). */
void fm_bcast_seek_like(struct fm_bcast *dst, const struct fm_bcast *src);

/* The current cursor (text) into out (appended). */
void fm_bcast_cursor(const struct fm_bcast *bc, struct fm_buf *out);

/* Called once per event with its JSON object (borrowed, not
 * NUL-terminated) and its cursor (borrowed, NUL-terminated). */
typedef void (*fm_bcast_emit_fn)(
    void *arg, const char *json, size_t len, const char *cursor);

/* Read events until max_bytes of JSON were emitted (the last event may
 * go past it; never more than one) or the reader is caught up. Returns the number of events (0: caught up), or a negative
 * error with *cause (new): -FM_E_NOT_FOUND once the topic is gone. */
int fm_bcast_read(struct fm_bcast *bc, size_t max_bytes, fm_bcast_emit_fn emit,
    void *arg, char **cause);

/* Why a wake came. */
enum fm_bcast_why { FM_BCAST_DATA, FM_BCAST_IDLE, FM_BCAST_SHUTDOWN };
typedef void (*fm_bcast_wake_fn)(void *arg, enum fm_bcast_why why);

/* Call wake(arg, why) once, when any queue has a message at or beyond the
 * cursor, when idle_ms pass without one, or when the broker stops.
 * Re-arming disarms first. */
void fm_bcast_arm(
    struct fm_bcast *bc, int64_t idle_ms, fm_bcast_wake_fn wake, void *arg);
/* Invariant 4. Safe when not armed. */
void fm_bcast_disarm(struct fm_bcast *bc);

/* The same for one plain fm_broker_watch (used by readers other than the
 * broadcast one, such as a consumer group's stream): wake(arg, why) once;
 * after fm_bcast_unwatch (which frees the handle) it is neither running
 * nor ever called. The handle is new. */
struct fm_bcast_arm *fm_bcast_watch(struct fm_broker *b, const char *topic,
    uint32_t queue_id, uint64_t offset, int64_t idle_ms, fm_bcast_wake_fn wake,
    void *arg);
void fm_bcast_unwatch(struct fm_bcast_arm *a);

#endif
