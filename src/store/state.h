/*
 * state.h - state.db: the store's durable configuration, never rebuilt.
 *
 * Owns: topics, topic tombstones, consumer group settings, offsets and
 * in-flight receipts, the timer queue's delivery marks. synchronous=FULL:
 * what a synchronous call reported stored (0) survives a crash. The async
 * group write is different: its 0 only means queued; it is durable once
 * its done says 0.
 * Does not own: the consume queues or keys (index.db), the log.
 *
 * A tombstone (topic, log_offset) says: records of topic below log_offset
 * belong to a deleted incarnation and must never be indexed again. A topic
 * deletion writes the tombstone and removes the topic row in one
 * transaction, so no crash can separate the two.
 *
 * Group rows are written by a committer thread: fm_state_group_write_async
 * queues a caller's rows and returns; the thread commits whatever is
 * queued in one transaction (group commit) and then calls each caller's
 * done, in the order they were queued. A call without rows is a barrier:
 * its done comes once everything queued before it is committed. A failed
 * transaction's rows are applied again, collapsed by key (only the last
 * row of each offset or receipt counts), ahead of the next ones until
 * one commits: state.db always holds the result of the rows of a prefix
 * of the calls, in order, and what is kept for the retry grows with the
 * keys written meanwhile, not with the calls (state.c).
 *
 * Threads: every function is safe from any thread (one connection behind
 * a mutex; topic changes are rare, group rows are batched).
 */
#ifndef FM_STORE_STATE_H
#define FM_STORE_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct fm_state;

struct fm_tombstone {
	char topic[FM_REC_MAX_TOPIC + 1];
	uint64_t log_offset; /* records of topic below it are dead */
};

/* Open or create path and start the committer. *out is new
 * (fm_state_close). */
int fm_state_open(const char *path, struct fm_state **out);
/* Stop the committer. commit: every call queued before is committed and
 * told the result; else (a crash test's "the process died") each is told
 * -FM_E_SHUTDOWN and nothing of it is committed. Later calls of
 * fm_state_group_write_async fail with -FM_E_SHUTDOWN. Idempotent. */
void fm_state_stop(struct fm_state *s, int commit);
/* fm_state_stop(s, 1) if not stopped yet, then free. NULL is a no-op. */
void fm_state_close(struct fm_state *s);

/* Create or replace. */
int fm_state_topic_put(struct fm_state *s, const struct fm_topic_conf *tc);
/* -FM_E_NOT_FOUND when absent. */
int fm_state_topic_get(
    struct fm_state *s, const char *name, struct fm_topic_conf *tc);
/* *out is a new array of *n topics sorted by name (free()). */
int fm_state_topic_list(
    struct fm_state *s, struct fm_topic_conf **out, size_t *n);
/* In one transaction: add the tombstone (name, log_offset) and delete the
 * topic row. *existed tells whether the row was there. */
int fm_state_topic_delete(
    struct fm_state *s, const char *name, uint64_t log_offset, int *existed);

/* *out is a new array of every tombstone (free()). */
int fm_state_tombstones(
    struct fm_state *s, struct fm_tombstone **out, size_t *n);
/* Forget tombstones below log_offset (their records are gone). */
int fm_state_tombstones_prune(struct fm_state *s, uint64_t log_offset);

/* See fm_store_group_conf_put, _get and _list (store.h). */
int fm_state_group_conf_put(struct fm_state *s, const struct fm_group_conf *gc);
int fm_state_group_conf_get(
    struct fm_state *s, const char *name, struct fm_group_conf *gc);
int fm_state_group_conf_list(
    struct fm_state *s, struct fm_group_conf **out, size_t *n);

/* See fm_store_group_write_async and fm_store_group_load (store.h);
 * -FM_E_SHUTDOWN once fm_state_stop ran. */
int fm_state_group_write_async(struct fm_state *s, struct fm_grow *rows,
    size_t n, fm_store_done_fn done, void *arg);
int fm_state_group_load(struct fm_state *s, struct fm_grow **out, size_t *n);
/* Rows of failed commits kept for the retry (see above; 0 once one
 * commits). */
size_t fm_state_group_retry_rows(struct fm_state *s);

/* See fm_store_timer_load and fm_store_timer_mark (store.h). */
int fm_state_timer_load(
    struct fm_state *s, uint64_t *low, uint64_t **delivered, size_t *n);
int fm_state_timer_mark(
    struct fm_state *s, const uint64_t *delivered, size_t n, uint64_t low);

#endif
