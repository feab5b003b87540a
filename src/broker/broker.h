/*
 * broker.h - the broker core API: what the front ends (HTTP, WebSocket)
 * may ask of a node. It knows topics, queues, messages, msgIds and waiting;
 * it knows nothing of HTTP, JSON or SQL.
 *
 * Errors: every function returns 0 or a negative FM_E* code, and where a
 * client needs to know why, fills *cause with a new string (free()) such as
 * "topic 'x' does not exist". cause may be NULL when not wanted.
 *
 * Threads: all functions are safe from any thread.
 */
#ifndef FM_BROKER_BROKER_H
#define FM_BROKER_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/config.h"
#include "store/record.h"
#include "store/store.h"

#define FM_MSGID_LEN 32 /* hex characters, without the NUL */
#define FM_PULL_MAX 1024 /* most messages one pull or query returns */
#define FM_BATCH_MAX 10000 /* most messages in one publish */

struct fm_broker;

/* Open the node described by cfg (borrowed; must outlive the broker).
 * *out is new (fm_broker_close). */
int fm_broker_open(
    const struct fm_config *cfg, struct fm_broker **out, char **cause);
/* Fires every waiter with FM_WAKE_SHUTDOWN, stops threads, closes the store. */
void fm_broker_close(struct fm_broker *b);

/* ---- names ---- */

/* 0 when name is a valid topic name (RocketMQ: [A-Za-z0-9_%|-], 1..127
 * characters), else -FM_E_INVALID with *cause. */
int fm_broker_check_topic_name(const char *name, char **cause);

/* ---- publishing ---- */

struct fm_prop {
	const char *name; /* borrowed */
	const char *value; /* borrowed */
};

/* One message to publish. Every pointer is borrowed for the call. */
struct fm_pub_msg {
	const void *body;
	size_t body_len;
	const char *tag; /* NULL or "" for none */
	const char *const *keys; /* nkeys NUL-terminated keys */
	size_t nkeys;
	const struct fm_prop *props;
	size_t nprops;
	const char *sharding_key; /* NULL: round robin over queues */
	int64_t deliver_at; /* epoch ms, 0 = at once */
};

struct fm_pub_result {
	char msg_id[FM_MSGID_LEN + 1];
	uint32_t queue_id;
	uint64_t queue_offset;
};

/* Publishing rules (RocketMQ's where it has one), all checked before
 * anything is stored, an auto-created topic included:
 *  - 1 <= n <= FM_BATCH_MAX, else -FM_E_INVALID / -FM_E_TOO_LARGE;
 *  - body: 0..maxMessageSize bytes (an empty body is a valid message;
 *    larger: -FM_E_TOO_LARGE); a batch's bodies together <= maxMessageSize;
 *  - tag: none, or at most 255 bytes without '|' (tag expressions use
 *    "a||b");
 *  - keys: each non-empty; properties: names non-empty [A-Za-z0-9_.-],
 *    values any string; tag + keys + properties of one message, encoded,
 *    at most 32767 bytes (-FM_E_TOO_LARGE);
 *  - property names the broker sets itself are reserved (-FM_E_INVALID
 *    naming the property): every name beginning with "__" (internal,
 *    e.g. the timer's __REAL_TOPIC and __REAL_QID), and ORIGIN_MESSAGE_ID,
 *    ORIGIN_TOPIC, ORIGIN_QUEUE_ID, ORIGIN_QUEUE_OFFSET, RECONSUME_TIMES
 *    and TIMER_DELIVER_MS (what delayed deliveries and DLQ copies
 *    carry), matched case-sensitively like every property name;
 *  - deliver_at: 0, or at most timerMaxDelaySec ahead; a message due
 *    more than 50 ms ahead waits in the timer queue (timer.h) and is
 *    appended to its topic when due: its result's queue_id is the target
 *    queue, its queue_offset the offset in the timer queue;
 *  - the topic rmq_sys_wheel_timer is reserved (-FM_E_INVALID);
 *  - brokerRole SLAVE: -FM_E_NOT_WRITABLE "broker is a slave"; a topic
 *    without FM_PERM_WRITE: -FM_E_NOT_WRITABLE.
 * Queue: sharding_key (non-empty) -> FNV-1a 64 of it modulo the queue
 * count (same key, same queue, across restarts while the count stays);
 * otherwise round robin per topic, message by message.
 * Causes in a batch start with "message N: " (N from 1).
 * Each failed call counts once in fm_broker_metrics.publish_errors.
 *
 * Publish n messages to topic as one atomic unit (all stored or none),
 * creating the topic when autoCreateTopicEnable allows. out has n slots.
 * Returns once the messages are as durable as flushDiskType and
 * brokerRole promise. Errors: -FM_E_INVALID (bad name, bad message),
 * -FM_E_NOT_FOUND (no topic, no auto-create), -FM_E_TOO_LARGE,
 * -FM_E_NOT_WRITABLE (perm or role), -FM_E_DISK_FULL, -FM_E_IO. */
int fm_broker_publish(struct fm_broker *b, const char *topic,
    const struct fm_pub_msg *msgs, size_t n, struct fm_pub_result *out,
    char **cause);

/* Completion of fm_broker_publish_async (and of the consumer group
 * calls' async forms, below): err is 0 once the messages are as durable
 * as promised, else -FM_E_IO (the flush failed) or -FM_E_SHUTDOWN (the
 * node stopped first). Runs on a broker thread; must not block. */
typedef void (*fm_done_fn)(void *arg, int err);

/* fm_broker_publish without waiting for durability, so that a front end
 * can park a request rather than a thread. On 1 or 0 the messages are
 * stored, readable, and out is filled; 1: they are also as durable as
 * promised; 0: done(arg, err) will say so later, from another thread. A
 * negative error (with *cause) means nothing was stored and done is never
 * called. */
int fm_broker_publish_async(struct fm_broker *b, const char *topic,
    const struct fm_pub_msg *msgs, size_t n, struct fm_pub_result *out,
    fm_done_fn done, void *arg, char **cause);

/* ---- reading ---- */

/* A message read back: the decoded record plus its msgId. rec's pointers
 * point into memory owned by the fm_msg_list holding it. */
struct fm_message {
	char msg_id[FM_MSGID_LEN + 1];
	struct fm_record rec;
};

struct fm_msg_list {
	struct fm_message *items; /* owned */
	size_t n;
	struct fm_buf *bufs; /* owned: record bytes, one buf per item */
	size_t cap;
};

#define FM_MSG_LIST_INIT \
	{ \
		NULL, 0, NULL, 0 \
	}

void fm_msg_list_free(struct fm_msg_list *l);

struct fm_pull_result {
	struct fm_msg_list msgs;
	uint64_t next_offset; /* where the next pull should start */
	uint64_t min_offset; /* oldest retained offset of the queue */
	uint64_t max_offset; /* next offset to be written */
};

/* Messages of one queue from offset on, at most max (1..FM_PULL_MAX).
 * An offset below min_offset is moved up to it (the caller can see that
 * in next_offset and min_offset); above max_offset is -FM_E_INVALID.
 * -FM_E_NOT_FOUND for an unknown topic or queue id. */
int fm_broker_pull(struct fm_broker *b, const char *topic, uint32_t queue_id,
    uint64_t offset, size_t max, struct fm_pull_result *out, char **cause);

/* The message with this msgId, as one item in out. */
int fm_broker_get_message(struct fm_broker *b, const char *msg_id,
    struct fm_msg_list *out, char **cause);
/* Messages of topic carrying key, newest first, at most max. */
int fm_broker_query_key(struct fm_broker *b, const char *topic, const char *key,
    size_t max, struct fm_msg_list *out, char **cause);
/* Messages of topic stored in [begin_ms, end_ms], newest first, at most max. */
int fm_broker_query_time(struct fm_broker *b, const char *topic,
    int64_t begin_ms, int64_t end_ms, size_t max, struct fm_msg_list *out,
    char **cause);

/* ---- waiting (long-poll) ---- */

enum fm_wake { FM_WAKE_DATA, FM_WAKE_TIMEOUT, FM_WAKE_SHUTDOWN };

/* Called exactly once per watch (unless fm_broker_unwatch returned 1),
 * on a broker thread; must not block and must not call back into the
 * broker's watch functions. */
typedef void (*fm_wake_fn)(void *arg, enum fm_wake why);

#define FM_ANY_QUEUE UINT32_MAX

struct fm_watch;

/* Fire cb when queue queue_id of topic (or any of its queues, with
 * FM_ANY_QUEUE) has a message at or beyond offset, or when
 * deadline_mono_ms (fm_mono_ms clock) passes. If that is already true, cb
 * fires at once (possibly before this returns). Returns a handle, borrowed:
 * valid until cb has run. */
struct fm_watch *fm_broker_watch(struct fm_broker *b, const char *topic,
    uint32_t queue_id, uint64_t offset, int64_t deadline_mono_ms, fm_wake_fn cb,
    void *arg);
/* Cancel: returns 1 if removed before firing (cb will not run), 0 if cb
 * has run or is running. Handles are never reused and never point at
 * freed memory, so passing one whose cb has already run is safe (0).
 * With FM_ANY_QUEUE, offset is compared with every queue's max. */
int fm_broker_unwatch(struct fm_broker *b, struct fm_watch *w);

/* ---- consumer groups (RocketMQ 5 SimpleConsumer / POP) ---- */

/*
 * Per (topic, group) and queue the broker keeps two offsets: next, the
 * next queue offset never handed out, and consumed, the ack watermark:
 * every message below it is acked, sent to the DLQ or skipped by a tag
 * filter. Messages in [consumed, next) that are not done are in flight:
 * invisible to the group until their visible time, then handed out again
 * with reconsumeTimes + 1. A message is delivered with reconsumeTimes
 * 0..maxReconsumeTimes; when the last delivery fails (expires or is
 * nacked) a copy goes to the topic "%DLQ%{group}" (created with 1 queue)
 * with the properties ORIGIN_MESSAGE_ID, ORIGIN_TOPIC, ORIGIN_QUEUE_ID,
 * ORIGIN_QUEUE_OFFSET and RECONSUME_TIMES, and it is acked in the group.
 * A group is created by its first receive or reset, starting at each
 * queue's oldest retained message. Offsets and receipts are durable in
 * the store before a receive, ack, nack or reset returns 0 (the async
 * forms say so through their done instead); after a restart what was in
 * flight is handed out again once its visible time passes, and receipt
 * handles given before the restart stay valid.
 *
 * Async forms (fm_broker_group_*_async), for front ends that park a
 * request rather than a thread, or run a single-threaded event loop: the
 * call makes its changes and queues their commit, then returns at once
 * with its results filled in: 1 when there is nothing to wait for, 0 when
 * done(arg, err) will be called exactly once, or a negative error (with
 * *cause; done is never called). done runs on the store's committer
 * thread, possibly before the call returned: err 0 once the changes are
 * durable, else the commit's error (-FM_E_IO, ...; -FM_E_SHUTDOWN when
 * the node stops first), which means "not known durable": the changes
 * stand in memory and their rows go with later commits (but a failed
 * receive is undone first, see fm_broker_group_receive_async). It must
 * not block and must not call the synchronous group functions (they
 * wait for the thread running it): hand the result to your own thread or
 * event loop (e.g. a locked queue and lws_cancel_service, or
 * MHD_resume_connection) and do the rest there. Every commit delays the
 * ones queued after it, so done should take microseconds.
 * Group names follow the topic name rules, at most 122 characters (so
 * that "%DLQ%{group}" is a topic name), and do not begin with "%DLQ%" or
 * "%RETRY%" (the prefixes of topics named after a group).
 *
 * Settings (RocketMQ's subscription group config) belong to a group
 * name, for all its topics, and are durable (fm_broker_group_put): today
 * fifo, which makes every receive of the group FIFO.
 */

#define FM_RECEIPT_LEN 43 /* base64url characters of a receipt handle */
#define FM_WATCH_TOPIC_LEN (2 * FM_REC_MAX_TOPIC + 1)

struct fm_recv_opts {
	size_t max; /* 1..FM_PULL_MAX messages */
	int64_t invisible_ms; /* 1 ms .. 12 h */
	const char *tags; /* NULL, "" or "*": every message; "a||b": those
	                     whose tag is a or b (others are skipped: done) */
	int fifo; /* RocketMQ 5 FIFO group: at most one message per queue
	             out at a time, so the next message of a queue (of a
	             shardingKey) waits until the one before is acked or
	             dead. A receive is FIFO when this is set or the group's
	             settings say fifo: this flag only adds FIFO to a
	             receive of a group that is not */
};

struct fm_recv_result {
	struct fm_msg_list msgs; /* rec.reconsume_times is the delivery's */
	char (*receipts)[FM_RECEIPT_LEN + 1]; /* owned, one per message */
	/* To long-poll: fm_broker_watch(b, watch_topic, 0, watch_offset, ..)
	 * fires when the group may have something new (an append to the
	 * topic, a message visible again, a reset). */
	char watch_topic[FM_WATCH_TOPIC_LEN + 1];
	uint64_t watch_offset;
};

#define FM_RECV_RESULT_INIT \
	{ \
		FM_MSG_LIST_INIT, NULL, "", 0 \
	}

void fm_recv_result_free(struct fm_recv_result *r);

/* Hand out up to max messages of topic to group, taking queues round
 * robin, messages visible again first. May return none. -FM_E_NOT_FOUND
 * for an unknown topic, -FM_E_INVALID for bad names or options. Returns
 * once the receipts are durable. */
int fm_broker_group_receive(struct fm_broker *b, const char *topic,
    const char *group, const struct fm_recv_opts *opts,
    struct fm_recv_result *out, char **cause);
/* The async form: out is filled on 1 or 0. 1: out holds no message (its
 * watch fields are set; the call's other changes, such as offsets moved
 * past messages the tag filter skips, commit in the background). 0: out
 * holds messages, which may be sent only once done says 0: no handle may
 * exist for a delivery that is not durable. After a failed commit the
 * caller drops them (fm_recv_result_free): before done is called the
 * receive is undone, so that it does not count as a delivery: each of
 * its messages not handed out again since is visible to the group at
 * once, with the reconsumeTimes it had before. A receive that returns
 * an error is undone likewise. out stays the caller's: done never
 * touches it. */
int fm_broker_group_receive_async(struct fm_broker *b, const char *topic,
    const char *group, const struct fm_recv_opts *opts,
    struct fm_recv_result *out, fm_done_fn done, void *arg, char **cause);

/* Ack (nack == 0) or nack n receipt handles in one durable commit. A
 * nacked message becomes visible again after delay_ms, or with delay_ms
 * < 0 after RocketMQ's retry ladder for its reconsumeTimes (10s 30s 1m
 * 2m .. 10m 20m 30m 1h 2h); a nack of the last allowed delivery sends it
 * to the DLQ. Per handle errs[i] is 0 or: -FM_E_INVALID (not a receipt
 * handle, or one of another topic or group), -FM_E_GONE (acked, nacked
 * or handed out again since: stale); causes[i] is then new (else NULL).
 * Returns 0 once the result is durable, or an error of the whole call:
 * nothing was done, or (a failed commit, "cannot store the group
 * state") done in memory but not known durable: the handles are stale
 * now, and the rows go with the next commits, so the acks and nacks may
 * still become durable; if the node stops first, the messages come back
 * after the restart when their visible time passes, like any unacked
 * message. A handle answered stale (-FM_E_GONE) is answered only once
 * what made it stale is durable. */
int fm_broker_group_settle(struct fm_broker *b, const char *topic,
    const char *group, int nack, int64_t delay_ms, const char *const *handles,
    size_t n, int *errs, char **causes, char **cause);
/* The async form: errs and causes are filled on 1 or 0, and the answer
 * may be sent once the commit is done. 0: done(arg, err) says when the
 * acks or nacks are durable; when no handle was valid it still comes,
 * once everything queued before the call is durable (a barrier: an ack
 * that made a handle stale may still be on its way to state.db). 1: done
 * is NULL and no handle was valid. */
int fm_broker_group_settle_async(struct fm_broker *b, const char *topic,
    const char *group, int nack, int64_t delay_ms, const char *const *handles,
    size_t n, int *errs, char **causes, fm_done_fn done, void *arg,
    char **cause);

struct fm_group_queue {
	uint32_t queue_id;
	uint64_t consumed; /* ack watermark */
	uint64_t next; /* next offset never handed out */
	uint64_t max_offset; /* of the queue */
	size_t in_flight; /* handed out, not done */
};

/* Per queue state of an existing group. *out is new (free()).
 * -FM_E_NOT_FOUND when the group has never received on topic. */
int fm_broker_group_state(struct fm_broker *b, const char *topic,
    const char *group, struct fm_group_queue **out, size_t *n, char **cause);

enum fm_reset { FM_RESET_EARLIEST, FM_RESET_LATEST, FM_RESET_TIMESTAMP };

/* Move every queue of the group to its oldest message, past its newest,
 * or to the first message stored at or after ts_ms; what was in flight
 * is forgotten (its handles become stale). Creates the group. */
int fm_broker_group_reset(struct fm_broker *b, const char *topic,
    const char *group, enum fm_reset how, int64_t ts_ms, char **cause);
/* The async form: on 0 (always, unless an error) done(arg, err) says when
 * the new offsets are durable; fm_broker_group_state already shows them. */
int fm_broker_group_reset_async(struct fm_broker *b, const char *topic,
    const char *group, enum fm_reset how, int64_t ts_ms, fm_done_fn done,
    void *arg, char **cause);

struct fm_group_name {
	char topic[FM_REC_MAX_TOPIC + 1];
	char group[FM_REC_MAX_TOPIC + 1];
	int fifo; /* the group's setting (fm_broker_group_put) */
};
/* Every (topic, group) with state (made by a receive or reset), sorted.
 * *out is new (free()). */
int fm_broker_group_list(
    struct fm_broker *b, struct fm_group_name **out, size_t *n);

/* A group name: its settings and the topics it has state on. */
struct fm_group_info {
	struct fm_group_conf conf; /* name; fifo; updated_ms: epoch ms of
	                              the last fm_broker_group_put, 0 when
	                              never put (fifo 0 then) */
	char (*topics)[FM_REC_MAX_TOPIC + 1]; /* owned, sorted */
	size_t ntopics;
};
void fm_group_info_free(struct fm_group_info *gi);

/* Create or update a group's settings, durable before it returns; the
 * group's next receives, on every topic, follow them. fifo: 0 or 1, or
 * -1 to keep it (0 for a new group). Makes no group state on any topic.
 * out as fm_broker_group_info (empty on error). -FM_E_INVALID for a bad
 * name, or the store's error ("cannot store the group settings"). */
int fm_broker_group_put(struct fm_broker *b, const char *group, int fifo,
    struct fm_group_info *out, char **cause);
/* A group's settings and topics: -FM_E_NOT_FOUND when it was never put
 * and has state on no topic (fm_broker_group_list does not list it). */
int fm_broker_group_info(struct fm_broker *b, const char *group,
    struct fm_group_info *out, char **cause);

/* ---- topics ---- */

#define FM_PERM_READ 4u
#define FM_PERM_WRITE 2u

/* Create or update (idempotent). queues 1..1024; perm as FM_PERM_* bits.
 * *created is set to 1 when the topic did not exist. */
int fm_broker_topic_put(struct fm_broker *b, const char *name, uint32_t queues,
    uint32_t perm, int *created, char **cause);
int fm_broker_topic_get(struct fm_broker *b, const char *name,
    struct fm_topic_conf *out, char **cause);
/* *out is a new array (free()) sorted by name. */
int fm_broker_topic_list(
    struct fm_broker *b, struct fm_topic_conf **out, size_t *n);
int fm_broker_topic_delete(struct fm_broker *b, const char *name, char **cause);
/* min and max offsets of one queue (see fm_store_queue_range). */
void fm_broker_queue_range(struct fm_broker *b, const char *topic,
    uint32_t queue_id, uint64_t *min, uint64_t *max);

/* ---- the node ---- */

struct fm_broker_info {
	const char *cluster; /* borrowed from the config */
	const char *name;
	long id;
	const char *role; /* "ASYNC_MASTER", "SYNC_MASTER", "SLAVE" */
	const char *flush; /* "ASYNC_FLUSH", "SYNC_FLUSH" */
	const char *version; /* PACKAGE_VERSION */
	char addr[128]; /* "http://brokerIP1:listenPort" */
	int64_t started_ms; /* epoch ms */
	struct fm_store_stats store;
};
void fm_broker_info(struct fm_broker *b, struct fm_broker_info *out);

/* Counters since start, for /metrics. */
struct fm_broker_metrics {
	uint64_t published_msgs;
	uint64_t published_bytes;
	uint64_t publish_errors;
	uint64_t pulled_msgs;
	uint64_t waiters; /* watches currently parked */
	size_t topics;
};
void fm_broker_metrics(struct fm_broker *b, struct fm_broker_metrics *out);

/* ---- the name server (this node's view of the routes) ---- */

#define FM_ROUTE_MAX_ADDRS 8

struct fm_route_addr {
	long broker_id; /* 0 is the master */
	char addr[128]; /* "http://host:port" */
	int64_t last_heartbeat_ms; /* epoch ms */
	int alive; /* heard from within the expiry (120 s) */
};

struct fm_route_broker {
	char cluster[128];
	char name[128];
	struct fm_route_addr addrs[FM_ROUTE_MAX_ADDRS];
	size_t naddrs;
};

struct fm_route_queue {
	char broker_name[128];
	uint32_t read_queues;
	uint32_t write_queues;
	uint32_t perm;
};

/* Every broker this node knows (itself included). *out is new (free()). */
int fm_broker_routes(
    struct fm_broker *b, struct fm_route_broker **out, size_t *n);
/* RocketMQ's TopicRouteData: the brokers holding topic and its queues
 * there. Both arrays are new (free()). -FM_E_NOT_FOUND if no broker has it. */
int fm_broker_topic_route(struct fm_broker *b, const char *topic,
    struct fm_route_broker **brokers, size_t *nbrokers,
    struct fm_route_queue **queues, size_t *nqueues, char **cause);

#endif
