/*
 * index.h - index.db: the store's derived, rebuildable index of the log.
 *
 * Owns three tables (WAL, synchronous=NORMAL, prepared statements only):
 *   cq(topic, queue, chunk, first_ts, last_ts, min_log, entries)
 *       one row per FM_CQ_CHUNK consume queue entries (cq.h layout);
 *       first_ts/last_ts (store timestamps of the chunk's first and last
 *       entries) are the sparse time index; min_log is the log offset of
 *       its first entry that is not a hole.
 *   keys(topic, key, log_offset)  message keys.
 *   meta(name, value)             "applied": the log offset up to which
 *       the rows reflect the log, written in the same transaction.
 * Does not own: what goes in the rows (store.c decides), locking of the
 * writer connection (one thread at a time: the store's dispatch lock).
 *
 * Reads (fm_index_read_chunk, fm_index_chunk_at_ts, fm_index_find_key) go
 * through a small pool of separate connections and are safe from any
 * thread, concurrently with the writer; they see the last commit.
 */
#ifndef FM_STORE_INDEX_H
#define FM_STORE_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

struct fm_index;

struct fm_index_chunk {
	const char *topic; /* NUL-terminated */
	uint32_t queue_id;
	uint64_t chunk; /* queue offset / FM_CQ_CHUNK */
	int64_t first_ts; /* epoch ms */
	int64_t last_ts;
	uint64_t min_log;
	const unsigned char *entries; /* packed, len bytes */
	size_t len;
};

/* Open or create path with `readers` read connections. *out is new
 * (fm_index_close). */
int fm_index_open(const char *path, int readers, struct fm_index **out);
void fm_index_close(struct fm_index *ix);

/* ---- writer: one thread at a time ---- */
int fm_index_begin(struct fm_index *ix);
int fm_index_commit(struct fm_index *ix);
void fm_index_rollback(struct fm_index *ix);
/* Insert or replace a chunk row. */
int fm_index_put_chunk(struct fm_index *ix, const struct fm_index_chunk *c);
int fm_index_put_key(struct fm_index *ix, const char *topic, const char *key,
    uint64_t log_offset);
int fm_index_set_applied(struct fm_index *ix, uint64_t log_offset);
/* *present is 0 (and *log_offset 0) for a new or wiped index. */
int fm_index_applied(struct fm_index *ix, uint64_t *log_offset, int *present);
/* Delete every chunk and key row of topic. */
int fm_index_delete_topic(struct fm_index *ix, const char *topic);
/* Delete the rows of topic that an old incarnation left below a tombstone:
 * chunks whose min_log is below log_offset, keys below it. */
int fm_index_delete_tombstoned(
    struct fm_index *ix, const char *topic, uint64_t log_offset);
/* Delete the queue's chunks numbered below chunk. */
int fm_index_delete_chunks_below(
    struct fm_index *ix, const char *topic, uint32_t queue_id, uint64_t chunk);
/* Delete key rows below log_offset (records retention removed). */
int fm_index_delete_keys_below(struct fm_index *ix, uint64_t log_offset);
/* Empty every table (before a rebuild from the log). */
int fm_index_wipe(struct fm_index *ix);
/* Call fn for each queue with its lowest and highest chunk numbers; stops
 * at fn's first nonzero return, which is returned. */
int fm_index_queues(struct fm_index *ix,
    int (*fn)(void *arg, const char *topic, uint32_t queue_id,
        uint64_t first_chunk, uint64_t last_chunk),
    void *arg);

/* ---- readers: any thread ---- */
/* The chunk row; c->entries points into blob (replaced). -FM_E_NOT_FOUND
 * when absent. c->topic is left NULL. */
int fm_index_read_chunk(struct fm_index *ix, const char *topic,
    uint32_t queue_id, uint64_t chunk, struct fm_buf *blob,
    struct fm_index_chunk *c);
/* The first chunk whose last_ts >= ts, like fm_index_read_chunk;
 * -FM_E_NOT_FOUND when none. */
int fm_index_chunk_at_ts(struct fm_index *ix, const char *topic,
    uint32_t queue_id, int64_t ts, struct fm_buf *blob,
    struct fm_index_chunk *c);
/* Log offsets in [lo, hi) of topic's records carrying key, newest first,
 * at most max. */
int fm_index_find_key(struct fm_index *ix, const char *topic, const char *key,
    uint64_t lo, uint64_t hi, uint64_t *out, size_t max, size_t *n);

#endif
