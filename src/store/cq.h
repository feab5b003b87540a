/*
 * cq.h - consume queue entries: their packed form in index.db chunk blobs,
 * and the in-memory table of queues the store keeps per (topic, queue).
 *
 * Owns: the 20-byte entry encoding and the hash table of struct fm_cq.
 * Does not own: locking (the store serialises every call on a table with
 * its queue lock), SQLite, the commit log.
 *
 * Invariants of one struct fm_cq (queue offsets):
 *   1. min <= max <= next.  next is the append side (assigned under the
 *      store's append lock), max the dispatch side (visible to readers).
 *   2. mem_base is a multiple of FM_CQ_CHUNK, mem_base <= committed <= max,
 *      and mem holds exactly the entries [mem_base, max): the open tail
 *      chunk plus whatever is not yet committed to index.db. Entries below
 *      mem_base are only in index.db.
 *   3. An entry of size 0 is a hole: a queue offset with no record known
 *      (below min, when a queue was rebuilt from a log whose oldest
 *      segments were already deleted). Holes only occur below min.
 */
#ifndef FM_STORE_CQ_H
#define FM_STORE_CQ_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define FM_CQ_ENTRY_SIZE 20u

/* An entry as kept in memory: the stored entry plus its record's store
 * timestamp, or -1 when unknown (loaded from index.db; read it from the
 * log). */
struct fm_cq_mem {
	struct fm_cq_entry e;
	int64_t store_ts;
};

struct fm_cq {
	char *topic; /* owned, NUL-terminated */
	uint32_t queue_id;
	uint64_t next; /* next queue offset to assign at append */
	uint64_t min; /* oldest retained queue offset */
	uint64_t max; /* entries below are dispatched and readable */
	uint64_t committed; /* entries below are in index.db */
	uint64_t mem_base; /* queue offset of mem[0] */
	struct fm_cq_mem *mem; /* owned, max - mem_base used */
	size_t mem_cap;
	int touched; /* dispatched into since the last notify */
	int dirty; /* holds entries not committed to index.db */
	struct fm_cq *hnext; /* hash chain */
};

struct fm_cq_table;

/* Encode n entries into dst (n * FM_CQ_ENTRY_SIZE bytes). */
void fm_cq_pack(const struct fm_cq_entry *in, size_t n, unsigned char *dst);
/* Decode the entry at index i of a blob of len bytes. Returns 0, or
 * -FM_E_NOT_FOUND when the blob is shorter. */
int fm_cq_unpack(
    const unsigned char *blob, size_t len, size_t i, struct fm_cq_entry *out);

/* New, empty table (fm_cq_table_free). */
struct fm_cq_table *fm_cq_table_new(void);
void fm_cq_table_free(struct fm_cq_table *t);
/* The queue, or NULL. Borrowed: valid until removed. */
struct fm_cq *fm_cq_find(
    struct fm_cq_table *t, const char *topic, size_t topic_len, uint32_t qid);
/* The queue, created empty (all offsets 0) when absent. Borrowed. */
struct fm_cq *fm_cq_get(
    struct fm_cq_table *t, const char *topic, size_t topic_len, uint32_t qid);
/* Remove and free every queue of topic. Returns how many. */
size_t fm_cq_remove_topic(struct fm_cq_table *t, const char *topic);
/* Call fn for every queue (in no order); fn must not add or remove. */
void fm_cq_foreach(
    struct fm_cq_table *t, void (*fn)(void *arg, struct fm_cq *q), void *arg);

/* Append one entry at queue offset q->max (growing mem). */
void fm_cq_push(struct fm_cq *q, const struct fm_cq_mem *m);
/* The in-memory entry at queue offset off (mem_base <= off < max). */
struct fm_cq_mem *fm_cq_at(struct fm_cq *q, uint64_t off);
/* Set committed to off and drop the closed chunks below it from memory. */
void fm_cq_set_committed(struct fm_cq *q, uint64_t off);
/* Start the queue empty at queue offset off (holes below it). */
void fm_cq_reset(struct fm_cq *q, uint64_t off);

#endif
