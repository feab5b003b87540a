/*
 * cq.c - consume queue entries and the in-memory queue table (see cq.h).
 *
 * Owns the packed entry layout and a chained hash table keyed by
 * (topic, queue id). Knows nothing of SQLite, the log or locking.
 */
#include <stdlib.h>
#include <string.h>

#include "base/endian.h"
#include "base/err.h"
#include "base/xmalloc.h"
#include "store/cq.h"

#define TABLE_MIN_BUCKETS 64u

struct fm_cq_table {
	struct fm_cq **buckets; /* owned */
	size_t nbuckets; /* power of two */
	size_t n; /* queues in the table */
};

/*
 * One packed entry, little-endian, FM_CQ_ENTRY_SIZE bytes; a chunk blob is
 * entries back to back, entry i at byte 20 * i (queue offset
 * chunk * FM_CQ_CHUNK + i):
 *
 *   0        8        12                20
 *   +--------+--------+-----------------+
 *   | log    | size   | tag_hash        |
 *   | offset | (u32)  | (u64)           |
 *   | (u64)  |        |                 |
 *   +--------+--------+-----------------+
 *
 * size 0 marks a hole (cq.h invariant 3).
 */
void
fm_cq_pack(const struct fm_cq_entry *in, size_t n, unsigned char *dst)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char *p = dst + i * FM_CQ_ENTRY_SIZE;

		fm_le_put64(p, in[i].log_offset);
		fm_le_put32(p + 8, in[i].size);
		fm_le_put64(p + 12, in[i].tag_hash);
	}
}

int
fm_cq_unpack(
    const unsigned char *blob, size_t len, size_t i, struct fm_cq_entry *out)
{
	const unsigned char *p;

	if (len / FM_CQ_ENTRY_SIZE <= i)
		return -FM_E_NOT_FOUND;
	p = blob + i * FM_CQ_ENTRY_SIZE;
	out->log_offset = fm_le_get64(p);
	out->size = fm_le_get32(p + 8);
	out->tag_hash = fm_le_get64(p + 12);
	return 0;
}

static size_t
hash_key(const char *topic, size_t len, uint32_t qid)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)topic[i];
		h *= 1099511628211ull;
	}
	h ^= qid;
	h *= 1099511628211ull;
	return (size_t)(h ^ (h >> 32));
}

struct fm_cq_table *
fm_cq_table_new(void)
{
	struct fm_cq_table *t = xcalloc(1, sizeof *t);

	t->nbuckets = TABLE_MIN_BUCKETS;
	t->buckets = xcalloc(t->nbuckets, sizeof *t->buckets);
	return t;
}

static void
cq_free(struct fm_cq *q)
{
	free(q->topic);
	free(q->mem);
	free(q);
}

void
fm_cq_table_free(struct fm_cq_table *t)
{
	if (t == NULL)
		return;
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct fm_cq *q = t->buckets[b], *nx;

		for (; q != NULL; q = nx) {
			nx = q->hnext;
			cq_free(q);
		}
	}
	free(t->buckets);
	free(t);
}

static int
same(const struct fm_cq *q, const char *topic, size_t len, uint32_t qid)
{
	return q->queue_id == qid && strlen(q->topic) == len &&
	    memcmp(q->topic, topic, len) == 0;
}

struct fm_cq *
fm_cq_find(
    struct fm_cq_table *t, const char *topic, size_t topic_len, uint32_t qid)
{
	size_t b = hash_key(topic, topic_len, qid) & (t->nbuckets - 1);

	for (struct fm_cq *q = t->buckets[b]; q != NULL; q = q->hnext)
		if (same(q, topic, topic_len, qid))
			return q;
	return NULL;
}

static void
grow(struct fm_cq_table *t)
{
	size_t nb = t->nbuckets * 2;
	struct fm_cq **nbk = xcalloc(nb, sizeof *nbk);

	for (size_t b = 0; b < t->nbuckets; b++) {
		struct fm_cq *q = t->buckets[b], *nx;

		for (; q != NULL; q = nx) {
			size_t h =
			    hash_key(q->topic, strlen(q->topic), q->queue_id) &
			    (nb - 1);

			nx = q->hnext;
			q->hnext = nbk[h];
			nbk[h] = q;
		}
	}
	free(t->buckets);
	t->buckets = nbk;
	t->nbuckets = nb;
}

struct fm_cq *
fm_cq_get(
    struct fm_cq_table *t, const char *topic, size_t topic_len, uint32_t qid)
{
	struct fm_cq *q = fm_cq_find(t, topic, topic_len, qid);
	size_t b;

	if (q != NULL)
		return q;
	if (t->n >= t->nbuckets * 2)
		grow(t);
	q = xcalloc(1, sizeof *q);
	q->topic = xstrndup(topic, topic_len);
	q->queue_id = qid;
	b = hash_key(topic, topic_len, qid) & (t->nbuckets - 1);
	q->hnext = t->buckets[b];
	t->buckets[b] = q;
	t->n++;
	return q;
}

size_t
fm_cq_remove_topic(struct fm_cq_table *t, const char *topic)
{
	size_t removed = 0;

	for (size_t b = 0; b < t->nbuckets; b++) {
		struct fm_cq **pp = &t->buckets[b];

		while (*pp != NULL) {
			struct fm_cq *q = *pp;

			if (strcmp(q->topic, topic) != 0) {
				pp = &q->hnext;
				continue;
			}
			*pp = q->hnext;
			cq_free(q);
			t->n--;
			removed++;
		}
	}
	return removed;
}

void
fm_cq_foreach(
    struct fm_cq_table *t, void (*fn)(void *arg, struct fm_cq *q), void *arg)
{
	for (size_t b = 0; b < t->nbuckets; b++)
		for (struct fm_cq *q = t->buckets[b]; q != NULL; q = q->hnext)
			fn(arg, q);
}

void
fm_cq_push(struct fm_cq *q, const struct fm_cq_mem *m)
{
	size_t used = (size_t)(q->max - q->mem_base);

	if (used == q->mem_cap) {
		q->mem_cap = q->mem_cap ? q->mem_cap * 2 : 64;
		q->mem = xreallocarray(q->mem, q->mem_cap, sizeof *q->mem);
	}
	q->mem[used] = *m;
	q->max++;
}

struct fm_cq_mem *
fm_cq_at(struct fm_cq *q, uint64_t off)
{
	return &q->mem[off - q->mem_base];
}

void
fm_cq_set_committed(struct fm_cq *q, uint64_t off)
{
	uint64_t base = off - off % FM_CQ_CHUNK;
	size_t drop = (size_t)(base - q->mem_base);

	q->committed = off;
	if (drop == 0)
		return;
	memmove(
	    q->mem, q->mem + drop, (size_t)(q->max - base) * sizeof *q->mem);
	q->mem_base = base;
}

void
fm_cq_reset(struct fm_cq *q, uint64_t off)
{
	struct fm_cq_mem hole = {{0, 0, 0}, -1};

	q->mem_base = off - off % FM_CQ_CHUNK;
	q->max = q->mem_base;
	while (q->max < off)
		fm_cq_push(q, &hole);
	q->min = q->committed = q->next = off;
}
