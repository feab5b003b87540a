/*
 * store.h - the storage engine as the broker sees it.
 *
 * Under the root directory:
 *   commitlog/   the commit log segments (commitlog.h): the truth.
 *   index.db     SQLite, derived and rebuildable from the log: consume
 *                queue chunks, message keys, the sparse time index, and
 *                the log offset up to which it has applied the log
 *                (committed in the same transaction as the rows).
 *   state.db     SQLite, synchronous=FULL, never rebuilt: topics and
 *                topic tombstones, consumer group settings, offsets and
 *                in-flight receipts, the timer queue's delivery marks.
 *
 * Consume queue: per (topic, queue), fixed-width entries (log offset,
 * size, tag hash), numbered by queue offset from 0. In index.db a row
 * holds a run of FM_CQ_CHUNK entries as one blob; closed chunks never
 * change. Entries not yet committed to index.db (the open tail chunk and
 * anything dispatched since the last index commit) live in memory, and
 * readers see them there at once.
 *
 * A dispatcher thread reads new records from the log, appends their
 * entries to the in-memory consume queues, calls the notify hook, and
 * commits to index.db in large batches, never beyond the flushed log
 * offset. After a crash the store replays the log from index.db's applied
 * offset; after index.db is deleted, from the start of the log.
 *
 * Queue offsets are assigned at append, under the append lock, so each
 * queue's entries are in log order and a rebuild gives the same offsets.
 *
 * Threads: every function is safe to call from any thread. fm_store_append
 * blocks until the records are as durable as the flush mode promises;
 * fm_store_append_async reports that through a callback instead. Either
 * way, readers (fm_store_cq_read, fm_store_find_key, ...) see records
 * appended before they started. Consumer group rows likewise:
 * fm_store_group_write_async hands them to state.db's committer thread,
 * fm_store_group_write waits for it. The notify hook runs on the
 * dispatcher thread and must not block.
 */
#ifndef FM_STORE_STORE_H
#define FM_STORE_STORE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "store/record.h"

#define FM_CQ_CHUNK 1024 /* consume queue entries per index.db row */

struct fm_store;

/* Called after entries up to (not including) max_offset of the queue became
 * readable. Runs on the dispatcher thread; must be quick. */
typedef void (*fm_store_notify_fn)(
    void *arg, const char *topic, uint32_t queue_id, uint64_t max_offset);

struct fm_store_options {
	const char *root; /* borrowed; storePathRootDir */
	uint64_t segment_size; /* mappedFileSizeCommitLog */
	int sync_flush; /* flushDiskType == SYNC_FLUSH */
	int flush_interval_ms; /* flushIntervalCommitLog */
	int file_reserved_hours; /* fileReservedTime */
	int delete_when_hour; /* unused for now: retention runs hourly */
	double disk_warning_ratio; /* diskSpaceWarningLevelRatio, 0..1: above
	                                it appends fail with -FM_E_DISK_FULL */
	fm_store_notify_fn notify; /* may be NULL */
	void *notify_arg;
	int housekeeping_ms; /* disk check and retention period; 0 = 10 s */
	const char *timer_topic; /* borrowed, NULL for none: queue 0 of this
	                            topic is the timer queue, whose records
	                            from the delivery watermark on retention
	                            keeps (see fm_store_timer_mark) */
};

/* Open, recover and start the store's threads. *out is new (fm_store_close). */
int fm_store_open(const struct fm_store_options *opt, struct fm_store **out);
/* Stop threads, commit the index, close the log cleanly, free. */
void fm_store_close(struct fm_store *st);

/* Append n records of one request as one atomic unit. Per record the caller
 * sets topic, queue_id, tag, keys, props, body, born_ts, deliver_at,
 * reconsume_times and flags; the store sets queue_offset, store_ts,
 * log_offset and size (written back into recs[i]). Returns 0 once durable,
 * or -FM_E_DISK_FULL, -FM_E_TOO_LARGE, -FM_E_NOSPC, -FM_E_IO,
 * -FM_E_NOT_WRITABLE. */
int fm_store_append(struct fm_store *st, struct fm_record *recs, size_t n);

/* Completion of fm_store_append_async: err is 0 once the records are as
 * durable as the flush mode promises, -FM_E_IO when the flush failed, or
 * -FM_E_SHUTDOWN when the store closed first. Runs on a store thread and
 * must not block nor call into the store. */
typedef void (*fm_store_done_fn)(void *arg, int err);

/* One thread waiting for one completion: the synchronous form of an async
 * call. fm_store_wait_init(&w), call the async function with
 * fm_store_wait_done and &w, then rc = fm_store_wait_end(&w, rc). */
struct fm_store_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
	int err;
};
void fm_store_wait_init(struct fm_store_wait *w);
/* The fm_store_done_fn; arg is the struct fm_store_wait. */
void fm_store_wait_done(void *arg, int err);
/* rc is what the async call returned: 1 gives 0, a negative error itself,
 * 0 waits for the completion and gives its err. Destroys w. */
int fm_store_wait_end(struct fm_store_wait *w, int rc);

/* fm_store_append without waiting for durability, so that a front end
 * can park the request instead of a thread, and concurrent requests share
 * one fdatasync. Returns 1 when the records are already as durable as
 * promised (always with ASYNC_FLUSH), 0 when done(arg, err) will be called
 * later on another thread, or a negative error (nothing was stored, done
 * is never called). Either way the records are readable once it returns
 * 0 or 1: every read path waits for the dispatcher to pass the write
 * offset it finds on entry, so a reader sees whatever was appended before
 * it started. */
int fm_store_append_async(struct fm_store *st, struct fm_record *recs, size_t n,
    fm_store_done_fn done, void *arg);

/* Read the record at a log offset (see fm_clog_read). */
int fm_store_read(struct fm_store *st, uint64_t log_offset, struct fm_buf *buf,
    struct fm_record *rec);

struct fm_cq_entry {
	uint64_t log_offset;
	uint32_t size;
	uint64_t tag_hash; /* fm_tag_hash of the record's tag */
};

/* Up to max entries of a queue from queue offset `from` on. *n may be less
 * than max (0 at the end). Returns 0, or -FM_E_GONE when `from` is below
 * the queue's min offset (retention deleted it). */
int fm_store_cq_read(struct fm_store *st, const char *topic, uint32_t queue_id,
    uint64_t from, struct fm_cq_entry *out, size_t max, size_t *n);
/* min: oldest retained queue offset; max: next queue offset to be written.
 * A queue never written has 0, 0. */
void fm_store_queue_range(struct fm_store *st, const char *topic,
    uint32_t queue_id, uint64_t *min, uint64_t *max);
/* First queue offset whose record was stored at or after ts (epoch ms);
 * max offset when none is. */
int fm_store_queue_offset_at(struct fm_store *st, const char *topic,
    uint32_t queue_id, int64_t ts, uint64_t *queue_offset);
/* Log offsets of up to max records of topic carrying key, newest first. */
int fm_store_find_key(struct fm_store *st, const char *topic, const char *key,
    uint64_t *log_offsets, size_t max, size_t *n);

/* Topics: durable configuration in state.db. */
struct fm_topic_conf {
	char name[FM_REC_MAX_TOPIC + 1];
	uint32_t queues; /* read and write queue count */
	uint32_t perm; /* RocketMQ bits: 4 read, 2 write (6 = rw) */
	int64_t created_ms;
};
/* Create or replace. */
int fm_store_topic_put(struct fm_store *st, const struct fm_topic_conf *tc);
/* -FM_E_NOT_FOUND when absent. */
int fm_store_topic_get(
    struct fm_store *st, const char *name, struct fm_topic_conf *tc);
/* Delete the topic and its consume queues and keys. Its records stay in the
 * log until retention removes them but are never indexed again, so a topic
 * created later under the same name starts empty. */
int fm_store_topic_delete(struct fm_store *st, const char *name);
/* *out is a new array of *n topics sorted by name (free()). */
int fm_store_topic_list(
    struct fm_store *st, struct fm_topic_conf **out, size_t *n);

/* Consumer group settings (RocketMQ's subscription group config): one
 * row per group name, for all its topics, in state.db. Written at once
 * (synchronous=FULL), not through the committer below: they are rare.
 * The store keeps them; what they mean is the broker's (groups.c). */
struct fm_group_conf {
	char name[FM_REC_MAX_TOPIC + 1];
	int fifo; /* 0 or 1 */
	int64_t updated_ms; /* epoch ms of the last put */
};
/* Create or replace. */
int fm_store_group_conf_put(
    struct fm_store *st, const struct fm_group_conf *gc);
/* -FM_E_NOT_FOUND when absent. */
int fm_store_group_conf_get(
    struct fm_store *st, const char *name, struct fm_group_conf *gc);
/* *out is a new array of *n settings sorted by name (free()). */
int fm_store_group_conf_list(
    struct fm_store *st, struct fm_group_conf **out, size_t *n);

/* Consumer groups: durable offsets and in-flight receipts in state.db.
 * The store keeps rows; what they mean is the broker's (groups.c). */
enum fm_grow_kind {
	FM_GROW_OFFSET, /* upsert the offsets of (topic, group, queue_id) */
	FM_GROW_RECEIPT, /* upsert one in-flight receipt */
	FM_GROW_RECEIPT_DEL, /* delete the receipt at (.., queue_id, offset) */
	FM_GROW_CLEAR, /* delete every receipt of (topic, group) */
};

struct fm_grow {
	enum fm_grow_kind kind;
	char topic[FM_REC_MAX_TOPIC + 1];
	char group[FM_REC_MAX_TOPIC + 1];
	uint32_t queue_id;
	uint64_t offset; /* OFFSET: ack watermark (every queue offset below
	                    it is done); RECEIPT: the message's queue offset */
	uint64_t next; /* OFFSET: next queue offset never handed out */
	uint64_t nonce; /* RECEIPT: the delivery's nonce (0: no live handle) */
	int32_t reconsume; /* RECEIPT: reconsumeTimes of that delivery; -1
	                      when there was none (every receive that handed
	                      the message out failed to commit, groups.c) */
	int64_t visible_at; /* RECEIPT: epoch ms it becomes visible again */
};

/* Queue n rows to be applied in order, in one state.db transaction shared
 * with the rows of concurrent callers (group commit), without waiting.
 * rows is a malloc'd array the store owns from the call on. Calls are
 * committed in the order they were made (two calls of one thread, or of
 * threads ordered by a lock held across the calls, commit in that order),
 * so state.db always holds the result of the rows of a prefix of the
 * calls, in order. The rows of a failed transaction are applied again,
 * ahead of later rows, until one commits; they are kept collapsed by key
 * (rows are idempotent upserts and deletes: of each offset or receipt
 * only the last row counts, a CLEAR drops the receipt rows before it),
 * so what a persistent failure keeps grows with the offsets and receipts
 * written meanwhile, not with the number of calls.
 * Returns 0 when done(arg, err) will be called once, from the committer
 * thread, after the transaction holding the rows: err 0 when it
 * committed (synchronous=FULL), else its error (the rows are retried
 * with later transactions and may still become durable, so done's error
 * says "not known durable", not "undone"). n 0 with a done is a barrier:
 * done comes, in order, once every call made before is committed (err 0)
 * or with the error of the transaction that failed to. Returns 1 when n
 * is 0 and done is NULL (nothing to do), or a negative error, done never
 * called: -FM_E_INVALID (a row of an unknown kind; nothing is queued),
 * -FM_E_SHUTDOWN (the store is closing). fm_store_close first puts
 * every call made before through a commit, each done told how it went;
 * rows whose commit failed are tried once more, and if that fails too
 * they are lost (logged; their calls were told the error).
 * fm_store_abandon tells the calls the committer has not taken yet
 * -FM_E_SHUTDOWN instead, and drops failed rows. done may be NULL when
 * nobody waits (a failed commit is logged either way); it must not block
 * nor call a synchronous store function: it delays every later commit. */
int fm_store_group_write_async(struct fm_store *st, struct fm_grow *rows,
    size_t n, fm_store_done_fn done, void *arg);
/* fm_store_group_write_async of a copy of rows, waiting for its commit
 * (n 0: for every call made before to be committed): 0, or the error of
 * the shared transaction. */
int fm_store_group_write(
    struct fm_store *st, const struct fm_grow *rows, size_t n);
/* Every OFFSET and RECEIPT row, offsets first. *out is new (free()). */
int fm_store_group_load(struct fm_store *st, struct fm_grow **out, size_t *n);

/* Delayed messages: which entries of the timer queue (one queue; what it
 * holds is the broker's) were delivered. low is the watermark: every
 * queue offset below it is delivered; delivered lists those at or above
 * it that are too. Both start at 0 / empty. *delivered is a new sorted
 * array of *n offsets (free()). */
int fm_store_timer_load(
    struct fm_store *st, uint64_t *low, uint64_t **delivered, size_t *n);
/* In one transaction (synchronous=FULL): record the n delivered offsets
 * (those below low are dropped), set the watermark to low and forget the
 * marks below it.
 *
 * Retention floor: while the store is writable, housekeeping deletes no
 * segment holding the record of the timer queue's entry at the durable
 * watermark (the oldest one not known delivered), nor any later one, so
 * a delay longer than file_reserved_hours keeps its message; only marks
 * move the floor. On a full disk (appends refused) expired segments go
 * as before, pending timer records with them (logged): a node that
 * cannot append cannot deliver them either, and must not stay full. */
int fm_store_timer_mark(
    struct fm_store *st, const uint64_t *delivered, size_t n, uint64_t low);

struct fm_store_stats {
	uint64_t min_offset; /* commit log */
	uint64_t write_offset;
	uint64_t flushed_offset;
	uint64_t dispatched_offset; /* entries below it are readable */
	uint64_t indexed_offset; /* committed to index.db */
	size_t segments;
	uint64_t log_bytes; /* bytes the segments take */
	double disk_used_ratio; /* of the file system holding root */
	int writable; /* 0 when appends are refused */
	uint64_t appended_records; /* since start */
	size_t group_retry_rows; /* of failed group commits, kept to be
	                            applied again (fm_store_group_write_async) */
};
void fm_store_stats(struct fm_store *st, struct fm_store_stats *out);

/* Run one housekeeping pass now, as if the clock read now_ms: disk check,
 * retention of segments stored before now_ms - file_reserved_hours (up
 * to the retention floor, see fm_store_timer_mark), and the consume
 * queue and key rows below the log's new min offset. */
void fm_store_housekeep(struct fm_store *st, int64_t now_ms);
/* For crash tests: stop the threads and free everything without the final
 * index commit, as if the process had died after its last fdatasync
 * (group rows still queued are not committed: see
 * fm_store_group_write_async). */
void fm_store_abandon(struct fm_store *st);

#endif
