/*
 * internal.h - what the broker's own files share: the broker object and
 * the topic cache. Nothing outside src/broker includes this.
 *
 * Invariants:
 *  1. b->topics is sorted by name, holds exactly the topics in state.db,
 *     and is read or changed only under b->topics_lock.
 *  2. A publish holds topics_lock for reading from the topic check to the
 *     end of fm_store_append, so a topic is never deleted (write lock)
 *     under an append in flight: a deleted topic gets no new records.
 *  3. Counters are atomics updated without any lock; they only grow.
 */
#ifndef FM_BROKER_INTERNAL_H
#define FM_BROKER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "broker/broker.h"
#include "broker/groups.h"
#include "broker/msgid.h"
#include "broker/timer.h"
#include "broker/waiters.h"

/* One cached topic. */
struct fm_btopic {
	struct fm_topic_conf conf; /* as in state.db */
	atomic_uint rr; /* round-robin cursor over its queues */
};

struct fm_broker {
	const struct fm_config *cfg; /* borrowed */
	struct fm_store *st;
	struct fm_waiters *ws;
	struct fm_msgid_addr self; /* brokerIP1 and listenPort, for msgIds */
	char addr[128]; /* "http://brokerIP1:listenPort" */
	int64_t started_ms; /* epoch ms */
	pthread_rwlock_t topics_lock;
	int64_t last_created_ms; /* topics_lock: created_ms is unique per
	                            topic incarnation (a topic deleted and
	                            made again differs), so readers can key
	                            caches by it */
	struct fm_btopic **topics; /* sorted by name (invariant 1) */
	size_t ntopics;
	size_t topics_cap;
	atomic_uint_fast64_t published_msgs;
	atomic_uint_fast64_t published_bytes;
	atomic_uint_fast64_t publish_errors;
	atomic_uint_fast64_t pulled_msgs;
	struct fm_groups *groups; /* consumer groups (groups.c) */
	struct fm_timer *timer; /* delayed messages (timer.c) */
};

/* Set *cause (when wanted) to a new formatted string; returns err. Each
 * failing path sets it once: whatever *cause held is not freed, as callers
 * may pass an uninitialised pointer. */
int fm_broker_fail(char **cause, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* topics.c */
int fm_topics_load(struct fm_broker *b);
void fm_topics_free(struct fm_broker *b);
/* fm_broker_check_topic_name, and not a name the broker reserves for
 * itself. 0 or -FM_E_INVALID with *cause. */
int fm_topics_check_user_name(const char *name, char **cause);
/* The cached topic, or NULL. topics_lock held (either mode). */
struct fm_btopic *fm_topics_find(struct fm_broker *b, const char *name);
/* Copy a topic's configuration: 0 or -FM_E_NOT_FOUND with the contract's
 * cause "topic 'x' does not exist". */
int fm_topics_conf(struct fm_broker *b, const char *name,
    struct fm_topic_conf *out, char **cause);
/* Find topic, creating it when autoCreateTopicEnable allows, and return
 * with topics_lock held for reading (fm_topics_release) and *out set. */
int fm_topics_acquire(struct fm_broker *b, const char *name,
    struct fm_btopic **out, char **cause);
void fm_topics_release(struct fm_broker *b);
/* "rw", "r", "w" or "-" for FM_PERM_* bits. */
const char *fm_perm_name(uint32_t perm);

/* publish.c */
/* fm_broker_publish of messages the broker makes itself (DLQ copies):
 * their properties may use the reserved names (broker.h). */
int fm_publish_system(struct fm_broker *b, const char *topic,
    const struct fm_pub_msg *msgs, size_t n, struct fm_pub_result *out,
    char **cause);

/* query.c */
/* Read the record at log_offset into a new last item of l (with its
 * msgId). On error l is unchanged. */
int fm_msglist_read(
    struct fm_broker *b, struct fm_msg_list *l, uint64_t log_offset);

#endif
