/*
 * store.c - the storage engine facade (see store.h): appends, the
 * dispatcher thread, recovery at open, housekeeping, and the read paths
 * over the in-memory consume queues (cq.h) and index.db (index.h).
 *
 * Does not own: record bytes and segment files (commitlog.h), SQL text
 * and the committer of group rows (index.c, state.c). Knows nothing of
 * HTTP or messaging policy.
 *
 * Locks, always taken in this order:
 *   append_lock  serialises appends: queue offsets and store_ts are
 *                assigned and the log written under it.
 *   disp_lock    held by whoever runs a dispatch pass, an index commit,
 *                housekeeping of index rows or a topic deletion: the one
 *                user of the index.db writer connection.
 *   qlock        guards the queue table, tombstones, pending keys and
 *                batch ends, the counters, and the condition variables.
 *   done_lock    a leaf (nothing is called with it held): the appends
 *                waiting for a flush, fired by the log's on_flush hook.
 * Invariants:
 *   1. A queue's mem, max, committed and min, and the pending arrays, are
 *      written only with disp_lock and qlock both held; so the holder of
 *      either may read them. next is written under append_lock + qlock.
 *   2. indexed <= dispatched <= write offset; indexed is a batch end
 *      <= the flushed offset; every key row and cq entry of a record below
 *      indexed is in index.db, those at or above it are pending in memory.
 *   3. store_ts never decreases along the log (the time index relies on
 *      it), whatever the wall clock does.
 *   4. Retention (housekeeping) keeps the timer queue's records from
 *      timer_low on, unless appends are refused: the log's floor is set
 *      to the record of entry timer_low before each deletion pass.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "store/commitlog.h"
#include "store/cq.h"
#include "store/index.h"
#include "store/os.h"
#include "store/state.h"
#include "store/store.h"

#define INDEX_READERS 4
#define COMMIT_ENTRIES 4096 /* commit when this many entries are pending */
#define COMMIT_MS 100 /* or when the oldest has waited this long */
#define VISIBLE_WAIT_MS 5000 /* most a reader waits for the dispatcher */
#define RETENTION_FILES 2 /* segments deleted per housekeeping pass */
#define DEFAULT_HOUSEKEEPING_MS 10000
#define DEFAULT_RESERVED_HOURS 72
#define DEFAULT_DISK_RATIO 0.90

struct key_row {
	char *topic; /* owned */
	char *key; /* owned */
	uint64_t log_offset;
};

/* An append waiting for its flush (fm_store_append_async). */
struct done_wait {
	uint64_t end; /* log offset the flush must reach */
	fm_store_done_fn fn;
	void *arg;
};

struct notice {
	char topic[FM_REC_MAX_TOPIC + 1];
	uint32_t queue_id;
	uint64_t max;
};

struct fm_store {
	struct fm_store_options opt; /* root points at root below */
	char *root; /* owned */
	struct fm_clog *log;
	struct fm_index *ix;
	struct fm_state *state;

	pthread_mutex_t append_lock;
	int64_t last_store_ts; /* (append_lock) invariant 3 */

	pthread_mutex_t disp_lock;

	pthread_mutex_t done_lock; /* a leaf: guards waits */
	struct done_wait *waits; /* ascending end: registered under
	                            append_lock, in log order */
	size_t nwaits, waits_cap;

	pthread_mutex_t qlock;
	pthread_cond_t wake; /* dispatcher: new records or stop */
	pthread_cond_t moved; /* appenders: dispatched moved */
	struct fm_cq_table *queues;
	struct fm_tombstone *tombs; /* owned, ntombs */
	size_t ntombs;
	uint64_t tomb_max; /* highest tombstone offset: records above skip */
	struct key_row *keys; /* pending keys in log order */
	size_t nkeys, keys_cap;
	uint64_t *ends; /* dispatched batch ends above indexed, ascending */
	size_t nends, ends_cap;
	struct fm_cq **dirty; /* queues holding uncommitted entries */
	size_t ndirty, dirty_cap;
	struct fm_cq **touched; /* queues dispatched into this pass */
	size_t ntouched, touched_cap;
	size_t pending; /* entries dispatched, not committed */
	uint64_t dispatched;
	uint64_t indexed;
	uint64_t appended;
	uint64_t timer_low; /* the timer queue's watermark, as in state.db */
	int64_t last_commit_ms; /* fm_mono_ms of the last index commit */
	double disk_ratio;
	int writable;
	int stop;
	int replaying; /* no notify while open replays the log */

	pthread_mutex_t hk_lock;
	pthread_cond_t hk_wake;
	int hk_stop;
	uint64_t hk_min; /* log min offset the index rows were trimmed to */

	pthread_t disp_thread, hk_thread;
	int threads;
};

/* ---- small helpers ---- */

static void
push_ptr(struct fm_cq ***v, size_t *n, size_t *cap, struct fm_cq *q)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*v = xreallocarray(*v, *cap, sizeof **v);
	}
	(*v)[(*n)++] = q;
}

static void
free_keys(struct key_row *k, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(k[i].topic);
		free(k[i].key);
	}
}

static int
tombstoned(struct fm_store *st, const struct fm_record *r)
{
	if (r->log_offset >= st->tomb_max)
		return 0;
	for (size_t i = 0; i < st->ntombs; i++) {
		const struct fm_tombstone *t = &st->tombs[i];

		if (r->log_offset < t->log_offset &&
		    strlen(t->topic) == r->topic_len &&
		    memcmp(t->topic, r->topic, r->topic_len) == 0)
			return 1;
	}
	return 0;
}

static void
add_tomb(struct fm_store *st, const char *topic, uint64_t off)
{
	st->tombs = xreallocarray(st->tombs, st->ntombs + 1, sizeof *st->tombs);
	memset(&st->tombs[st->ntombs], 0, sizeof *st->tombs);
	strncpy(st->tombs[st->ntombs].topic, topic, FM_REC_MAX_TOPIC);
	st->tombs[st->ntombs++].log_offset = off;
	if (off > st->tomb_max)
		st->tomb_max = off;
}

/* Store timestamp of an entry: kept in memory, or read from the log.
 * INT64_MIN when the record is gone (sorts before any ts). */
static int64_t
entry_ts(struct fm_store *st, const struct fm_cq_mem *m)
{
	struct fm_buf buf = FM_BUF_INIT;
	struct fm_record rec;
	int64_t ts = INT64_MIN;

	if (m->store_ts >= 0)
		return m->store_ts;
	if (fm_clog_read(st->log, m->e.log_offset, &buf, &rec) == 0)
		ts = rec.store_ts;
	fm_buf_free(&buf);
	return ts;
}

/* A reader's view of one index.db chunk, kept across lookups. */
struct cursor {
	struct fm_buf blob;
	struct fm_index_chunk c;
	int valid;
};

/* The entry at queue offset off. The caller holds qlock or disp_lock
 * (invariant 1). Entries below mem_base come from index.db. */
static int
entry_at(struct fm_store *st, struct fm_cq *q, uint64_t off, struct cursor *cur,
    struct fm_cq_mem *out)
{
	uint64_t chunk = off / FM_CQ_CHUNK;
	int err;

	if (off >= q->mem_base) {
		*out = *fm_cq_at(q, off);
		return 0;
	}
	if (!cur->valid || cur->c.chunk != chunk) {
		cur->valid = 0;
		err = fm_index_read_chunk(
		    st->ix, q->topic, q->queue_id, chunk, &cur->blob, &cur->c);
		if (err != 0)
			return err;
		cur->valid = 1;
	}
	out->store_ts = -1;
	return fm_cq_unpack(
	    cur->c.entries, cur->c.len, off % FM_CQ_CHUNK, &out->e);
}

/* First queue offset in [lo, q->max) whose entry is a record at or above
 * log offset log_min; q->max when none. Entries are in log order and
 * holes come first, so the predicate is monotonic. */
static uint64_t
first_retained(
    struct fm_store *st, struct fm_cq *q, uint64_t lo, uint64_t log_min)
{
	struct cursor cur = {FM_BUF_INIT, {0}, 0};
	uint64_t hi = q->max;
	struct fm_cq_mem m;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (entry_at(st, q, mid, &cur, &m) == 0 && m.e.size > 0 &&
		    m.e.log_offset >= log_min)
			hi = mid;
		else
			lo = mid + 1;
	}
	fm_buf_free(&cur.blob);
	return lo;
}

/* ---- dispatch ---- */

static void
collect_keys(struct fm_store *st, const struct fm_record *r, struct fm_cq *q)
{
	const char *p = r->keys, *end = r->keys + r->keys_len;

	while (p != NULL && p < end) {
		size_t len = strnlen(p, (size_t)(end - p));

		if (len > 0) {
			if (st->nkeys == st->keys_cap) {
				st->keys_cap =
				    st->keys_cap ? st->keys_cap * 2 : 64;
				st->keys = xreallocarray(
				    st->keys, st->keys_cap, sizeof *st->keys);
			}
			st->keys[st->nkeys].topic = xstrdup(q->topic);
			st->keys[st->nkeys].key = xstrndup(p, len);
			st->keys[st->nkeys++].log_offset = r->log_offset;
		}
		p += len + 1;
	}
}

/* Index one record in memory. qlock and disp_lock held. */
static void
dispatch_record(struct fm_store *st, const struct fm_record *r)
{
	struct fm_cq_mem m;
	struct fm_cq *q;

	if (tombstoned(st, r))
		return;
	q = fm_cq_get(st->queues, r->topic, r->topic_len, r->queue_id);
	if (q->max == 0 && r->queue_offset != 0) {
		/* rebuilt from a log whose oldest segments are gone */
		uint64_t next = q->next;

		fm_cq_reset(q, r->queue_offset);
		q->next = next > q->max ? next : q->max;
	}
	if (r->queue_offset != q->max) {
		fm_error("store: %s queue %u: record at log offset %llu has"
		         " queue offset %llu, expected %llu; not indexed",
		    q->topic, q->queue_id, (unsigned long long)r->log_offset,
		    (unsigned long long)r->queue_offset,
		    (unsigned long long)q->max);
		return;
	}
	m.e.log_offset = r->log_offset;
	m.e.size = r->size;
	m.e.tag_hash = fm_tag_hash(r->tag, r->tag_len);
	m.store_ts = r->store_ts;
	fm_cq_push(q, &m);
	if (q->next < q->max)
		q->next = q->max;
	if (!q->touched) {
		q->touched = 1;
		push_ptr(&st->touched, &st->ntouched, &st->touched_cap, q);
	}
	if (!q->dirty) {
		q->dirty = 1;
		push_ptr(&st->dirty, &st->ndirty, &st->dirty_cap, q);
	}
	collect_keys(st, r, q);
	st->pending++;
}

static void
push_end(struct fm_store *st, uint64_t end)
{
	if (st->nends == st->ends_cap) {
		st->ends_cap = st->ends_cap ? st->ends_cap * 2 : 64;
		st->ends =
		    xreallocarray(st->ends, st->ends_cap, sizeof *st->ends);
	}
	st->ends[st->nends++] = end;
}

/* Take the notices of this pass. qlock held. */
static struct notice *
take_notices(struct fm_store *st, size_t *n)
{
	struct notice *v = NULL;

	*n = 0;
	if (st->ntouched > 0 && st->opt.notify != NULL && !st->replaying)
		v = xcalloc(st->ntouched, sizeof *v);
	for (size_t i = 0; i < st->ntouched; i++) {
		struct fm_cq *q = st->touched[i];

		q->touched = 0;
		if (v == NULL)
			continue;
		strncpy(v[*n].topic, q->topic, FM_REC_MAX_TOPIC);
		v[*n].queue_id = q->queue_id;
		v[(*n)++].max = q->max;
	}
	st->ntouched = 0;
	return v;
}

/* Dispatch every record from st->dispatched to the write offset. Called
 * with disp_lock held; returns the notices to send once it is released. */
static int
dispatch_pass(struct fm_store *st, struct notice **notices, size_t *nn)
{
	struct fm_buf buf = FM_BUF_INIT;
	struct fm_record rec;
	uint64_t off = st->dispatched, to = fm_clog_write_offset(st->log), next;
	int err = 0;

	while (off < to) {
		err = fm_clog_read_next(st->log, off, &buf, &rec, &next);
		if (err == -FM_E_NOT_FOUND) {
			err = 0;
			break;
		}
		if (err != 0) {
			fm_error("store: dispatch stopped at log offset %llu:"
			         " %s",
			    (unsigned long long)off, fm_err_msg(err));
			break;
		}
		pthread_mutex_lock(&st->qlock);
		dispatch_record(st, &rec);
		if (!(rec.flags & FM_REC_F_BATCH_MORE)) {
			push_end(st, next);
			st->dispatched = next;
			pthread_cond_broadcast(&st->moved);
		}
		pthread_mutex_unlock(&st->qlock);
		off = next;
	}
	pthread_mutex_lock(&st->qlock);
	*notices = take_notices(st, nn);
	pthread_mutex_unlock(&st->qlock);
	fm_buf_free(&buf);
	return err;
}

static void
send_notices(struct fm_store *st, struct notice *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		st->opt.notify(
		    st->opt.notify_arg, v[i].topic, v[i].queue_id, v[i].max);
	free(v);
}

/* ---- index commit ---- */

/* First queue offset of q at or above committed whose record starts at
 * or beyond bound (q->max when none). disp_lock held. */
static uint64_t
commit_point(struct fm_cq *q, uint64_t bound)
{
	uint64_t lo = q->committed, hi = q->max;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		const struct fm_cq_mem *m = fm_cq_at(q, mid);

		if (m->e.size > 0 && m->e.log_offset >= bound)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* Write q's chunks holding entries [q->committed, upto). */
static int
put_chunks(struct fm_store *st, struct fm_cq *q, uint64_t upto)
{
	unsigned char blob[FM_CQ_CHUNK * FM_CQ_ENTRY_SIZE];
	struct fm_cq_entry e[FM_CQ_CHUNK];
	uint64_t c;
	int err = 0;

	for (c = q->committed / FM_CQ_CHUNK; err == 0 && c * FM_CQ_CHUNK < upto;
	     c++) {
		uint64_t lo = c * FM_CQ_CHUNK, hi = lo + FM_CQ_CHUNK, i;
		struct fm_index_chunk row = {
		    q->topic, q->queue_id, c, 0, 0, 0, blob, 0};
		int first = 1;

		if (hi > upto)
			hi = upto;
		for (i = lo; i < hi; i++) {
			const struct fm_cq_mem *m = fm_cq_at(q, i);

			e[i - lo] = m->e;
			if (m->e.size == 0 || !first)
				continue;
			first = 0;
			row.first_ts = entry_ts(st, m);
			row.min_log = m->e.log_offset;
		}
		row.last_ts = entry_ts(st, fm_cq_at(q, hi - 1));
		row.len = (size_t)(hi - lo) * FM_CQ_ENTRY_SIZE;
		fm_cq_pack(e, (size_t)(hi - lo), blob);
		err = fm_index_put_chunk(st->ix, &row);
	}
	return err;
}

/* Commit to index.db everything dispatched below the highest batch end
 * that is flushed. disp_lock held. */
static int
commit_index(struct fm_store *st)
{
	uint64_t flushed = fm_clog_flushed_offset(st->log), bound = 0;
	uint64_t *upto = NULL;
	size_t nends = 0, nkeys = 0, done = 0, i;
	int err;

	while (nends < st->nends && st->ends[nends] <= flushed)
		bound = st->ends[nends++];
	if (nends == 0)
		return 0;
	while (nkeys < st->nkeys && st->keys[nkeys].log_offset < bound)
		nkeys++;
	upto = xcalloc(st->ndirty + 1, sizeof *upto);
	err = fm_index_begin(st->ix);
	if (err != 0)
		goto out;
	for (i = 0; err == 0 && i < st->ndirty; i++) {
		upto[i] = commit_point(st->dirty[i], bound);
		if (upto[i] > st->dirty[i]->committed)
			err = put_chunks(st, st->dirty[i], upto[i]);
	}
	for (i = 0; err == 0 && i < nkeys; i++)
		err = fm_index_put_key(st->ix, st->keys[i].topic,
		    st->keys[i].key, st->keys[i].log_offset);
	if (err == 0)
		err = fm_index_set_applied(st->ix, bound);
	if (err == 0)
		err = fm_index_commit(st->ix);
	if (err != 0) {
		fm_index_rollback(st->ix);
		fm_error("store: index commit failed: %s", fm_err_msg(err));
		goto out;
	}
	pthread_mutex_lock(&st->qlock);
	for (i = 0; i < st->ndirty; i++) {
		struct fm_cq *q = st->dirty[i];

		done += (size_t)(upto[i] - q->committed);
		fm_cq_set_committed(q, upto[i]);
		q->dirty = q->committed < q->max;
	}
	for (i = 0; i < st->ndirty;)
		if (st->dirty[i]->dirty)
			i++;
		else
			st->dirty[i] = st->dirty[--st->ndirty];
	free_keys(st->keys, nkeys);
	if (nkeys > 0)
		memmove(st->keys, st->keys + nkeys,
		    (st->nkeys - nkeys) * sizeof *st->keys);
	st->nkeys -= nkeys;
	memmove(
	    st->ends, st->ends + nends, (st->nends - nends) * sizeof *st->ends);
	st->nends -= nends;
	st->pending -= done < st->pending ? done : st->pending;
	st->indexed = bound;
	st->last_commit_ms = fm_mono_ms();
	pthread_mutex_unlock(&st->qlock);
out:
	free(upto);
	return err;
}

/* ---- threads ---- */

static int
commit_due(struct fm_store *st)
{
	return st->pending >= COMMIT_ENTRIES ||
	    (st->nends > 0 && fm_mono_ms() - st->last_commit_ms >= COMMIT_MS);
}

/* The index committer: appends dispatch in line (dispatch_inline); this
 * thread only moves what they made readable into index.db, in large
 * transactions, as the flush allows. */
static void *
dispatcher_main(void *arg)
{
	struct fm_store *st = arg;
	struct timespec ts;

	pthread_mutex_lock(&st->qlock);
	while (!st->stop) {
		if (st->nends > 0) {
			fm_deadline_ts(&ts, COMMIT_MS);
			pthread_cond_timedwait(&st->wake, &st->qlock, &ts);
		} else {
			pthread_cond_wait(&st->wake, &st->qlock);
		}
		if (st->stop || !commit_due(st))
			continue;
		pthread_mutex_unlock(&st->qlock);
		pthread_mutex_lock(&st->disp_lock);
		(void)commit_index(st);
		pthread_mutex_unlock(&st->disp_lock);
		pthread_mutex_lock(&st->qlock);
	}
	pthread_mutex_unlock(&st->qlock);
	return NULL;
}

static void
check_disk(struct fm_store *st)
{
	struct statvfs sv;
	double ratio = 0, limit = st->opt.disk_warning_ratio;

	if (limit <= 0 || limit > 1)
		limit = DEFAULT_DISK_RATIO;
	if (fm_os_statvfs(st->root, &sv) != 0) {
		fm_warn("store: statvfs %s: %s", st->root, strerror(errno));
		return;
	}
	if (sv.f_blocks > 0)
		ratio = 1.0 - (double)sv.f_bavail / (double)sv.f_blocks;
	pthread_mutex_lock(&st->qlock);
	if (st->writable && ratio > limit)
		fm_error("store: disk %.1f%% used, above %.1f%%: refusing"
		         " appends",
		    ratio * 100, limit * 100);
	else if (!st->writable && ratio <= limit)
		fm_info("store: disk %.1f%% used: appends accepted again",
		    ratio * 100);
	st->disk_ratio = ratio;
	st->writable = ratio <= limit;
	pthread_mutex_unlock(&st->qlock);
}

struct trim {
	struct fm_store *st;
	uint64_t log_min;
	struct fm_cq **v;
	size_t n, cap;
};

static void
trim_collect(void *arg, struct fm_cq *q)
{
	struct trim *t = arg;

	push_ptr(&t->v, &t->n, &t->cap, q);
}

/* Advance queue min offsets to the log's min offset and drop the index
 * rows below it. disp_lock held. */
static int
trim_index(struct fm_store *st, uint64_t log_min)
{
	struct trim t = {st, log_min, NULL, 0, 0};
	uint64_t *mins;
	int err;

	pthread_mutex_lock(&st->qlock);
	fm_cq_foreach(st->queues, trim_collect, &t);
	pthread_mutex_unlock(&st->qlock);
	mins = xcalloc(t.n + 1, sizeof *mins);
	for (size_t i = 0; i < t.n; i++)
		mins[i] = first_retained(st, t.v[i], t.v[i]->min, log_min);
	pthread_mutex_lock(&st->qlock);
	for (size_t i = 0; i < t.n; i++)
		t.v[i]->min = mins[i];
	pthread_mutex_unlock(&st->qlock);
	err = fm_index_begin(st->ix);
	for (size_t i = 0; err == 0 && i < t.n; i++)
		err = fm_index_delete_chunks_below(st->ix, t.v[i]->topic,
		    t.v[i]->queue_id, mins[i] / FM_CQ_CHUNK);
	if (err == 0)
		err = fm_index_delete_keys_below(st->ix, log_min);
	if (err == 0)
		err = fm_index_commit(st->ix);
	else
		fm_index_rollback(st->ix);
	free(mins);
	free(t.v);
	return err;
}

static void
prune_tombs(struct fm_store *st, uint64_t log_min)
{
	size_t j = 0;

	if (fm_state_tombstones_prune(st->state, log_min) != 0)
		return;
	pthread_mutex_lock(&st->qlock);
	for (size_t i = 0; i < st->ntombs; i++)
		if (st->tombs[i].log_offset > log_min)
			st->tombs[j++] = st->tombs[i];
	st->ntombs = j;
	pthread_mutex_unlock(&st->qlock);
}

/* The log offset retention must keep (invariant 4): the record of the
 * timer queue's entry at the watermark, or the write offset when the
 * queue holds nothing from there (what comes next lands above it); 0,
 * keeping everything, when that record cannot be looked up. UINT64_MAX
 * without a timer queue. */
static uint64_t
retention_floor(struct fm_store *st)
{
	const char *topic = st->opt.timer_topic;
	struct cursor cur = {FM_BUF_INIT, {0}, 0};
	uint64_t floor = fm_clog_write_offset(st->log), from;
	struct fm_cq_mem m;
	struct fm_cq *q;

	if (topic == NULL)
		return UINT64_MAX;
	pthread_mutex_lock(&st->qlock);
	q = fm_cq_find(st->queues, topic, strlen(topic), 0);
	if (q != NULL) {
		from = st->timer_low > q->min ? st->timer_low : q->min;
		if (from < q->max)
			floor =
			    entry_at(st, q, from, &cur, &m) == 0 && m.e.size > 0
			    ? m.e.log_offset
			    : 0;
	}
	pthread_mutex_unlock(&st->qlock);
	fm_buf_free(&cur.blob);
	return floor;
}

/* Delete expired segments, keeping the floor unless appends are refused
 * (store.h). */
static void
retention(struct fm_store *st, int64_t cutoff)
{
	uint64_t floor = retention_floor(st);
	int deleted, writable;

	pthread_mutex_lock(&st->qlock);
	writable = st->writable;
	pthread_mutex_unlock(&st->qlock);
	fm_clog_retain_from(st->log, writable ? floor : UINT64_MAX);
	deleted = fm_clog_delete_expired(st->log, cutoff, RETENTION_FILES);
	if (deleted == 0)
		return;
	fm_info("store: retention deleted %d segment(s)", deleted);
	if (fm_clog_min_offset(st->log) > floor)
		fm_error("store: the disk is full: retention deleted timer"
		         " queue records not yet delivered (log below %llu)",
		    (unsigned long long)fm_clog_min_offset(st->log));
}

void
fm_store_housekeep(struct fm_store *st, int64_t now_ms)
{
	int hours = st->opt.file_reserved_hours > 0
	    ? st->opt.file_reserved_hours
	    : DEFAULT_RESERVED_HOURS;
	uint64_t log_min;

	check_disk(st);
	retention(st, now_ms - (int64_t)hours * 3600 * 1000);
	log_min = fm_clog_min_offset(st->log);
	pthread_mutex_lock(&st->disp_lock);
	if (log_min > st->hk_min && trim_index(st, log_min) == 0)
		st->hk_min = log_min;
	pthread_mutex_unlock(&st->disp_lock);
	prune_tombs(st, log_min);
}

static void *
housekeeping_main(void *arg)
{
	struct fm_store *st = arg;
	int ms = st->opt.housekeeping_ms > 0 ? st->opt.housekeeping_ms
	                                     : DEFAULT_HOUSEKEEPING_MS;
	struct timespec ts;

	pthread_mutex_lock(&st->hk_lock);
	while (!st->hk_stop) {
		fm_deadline_ts(&ts, ms);
		pthread_cond_timedwait(&st->hk_wake, &st->hk_lock, &ts);
		if (st->hk_stop)
			break;
		pthread_mutex_unlock(&st->hk_lock);
		fm_store_housekeep(st, fm_now_ms());
		pthread_mutex_lock(&st->hk_lock);
	}
	pthread_mutex_unlock(&st->hk_lock);
	return NULL;
}

/* ---- open and close ---- */

static int
load_queue(void *arg, const char *topic, uint32_t qid, uint64_t first_chunk,
    uint64_t last_chunk)
{
	struct fm_store *st = arg;
	struct fm_buf blob = FM_BUF_INIT;
	struct fm_index_chunk c;
	struct fm_cq_mem m = {{0, 0, 0}, -1};
	struct fm_cq *q;
	size_t n;
	int err;

	err = fm_index_read_chunk(st->ix, topic, qid, last_chunk, &blob, &c);
	if (err != 0)
		goto out;
	q = fm_cq_get(st->queues, topic, strlen(topic), qid);
	q->mem_base = q->max = last_chunk * FM_CQ_CHUNK;
	n = c.len / FM_CQ_ENTRY_SIZE;
	for (size_t i = 0; i < n; i++) {
		(void)fm_cq_unpack(c.entries, c.len, i, &m.e);
		/* the row's timestamps let its rewrite keep them */
		m.store_ts = i + 1 == n ? c.last_ts : -1;
		if (m.e.size > 0 && m.e.log_offset == c.min_log)
			m.store_ts = c.first_ts;
		fm_cq_push(q, &m);
	}
	q->committed = q->next = q->max;
	q->min = first_chunk * FM_CQ_CHUNK;
out:
	fm_buf_free(&blob);
	return err;
}

static void
set_min(void *arg, struct fm_cq *q)
{
	struct trim *t = arg;

	q->min = first_retained(t->st, q, q->min, t->log_min);
}

/* Bring index.db and the queues up to the log: drop what tombstones
 * killed, load every queue's tail chunk, replay the log from the applied
 * offset (all of it when the index is missing, behind or ahead of the
 * log), and commit. Runs before any thread starts. */
static int
recover(struct fm_store *st)
{
	uint64_t applied, log_min = fm_clog_min_offset(st->log);
	uint64_t wr = fm_clog_write_offset(st->log);
	struct notice *notices;
	struct trim t = {st, log_min, NULL, 0, 0};
	size_t nn;
	int present, err;

	err = fm_index_applied(st->ix, &applied, &present);
	if (err != 0)
		return err;
	err = fm_index_begin(st->ix);
	if (err != 0)
		return err;
	if (!present || applied < log_min || applied > wr) {
		if (present)
			fm_warn("store: index applied offset %llu outside the"
			        " log [%llu, %llu]: rebuilding",
			    (unsigned long long)applied,
			    (unsigned long long)log_min,
			    (unsigned long long)wr);
		applied = log_min;
		err = fm_index_wipe(st->ix);
	}
	for (size_t i = 0; err == 0 && i < st->ntombs; i++)
		err = fm_index_delete_tombstoned(
		    st->ix, st->tombs[i].topic, st->tombs[i].log_offset);
	if (err == 0)
		err = fm_index_commit(st->ix);
	else
		fm_index_rollback(st->ix);
	if (err == 0)
		err = fm_index_queues(st->ix, load_queue, st);
	if (err != 0)
		return err;
	fm_cq_foreach(st->queues, set_min, &t);
	st->dispatched = st->indexed = st->hk_min = applied;
	if (wr > applied)
		fm_info("store: replaying the log from %llu to %llu",
		    (unsigned long long)applied, (unsigned long long)wr);
	st->replaying = 1;
	err = dispatch_pass(st, &notices, &nn);
	st->replaying = 0;
	free(notices);
	if (err == 0 && st->dispatched < wr)
		err = -FM_E_CORRUPT;
	if (err == 0)
		err = commit_index(st);
	return err;
}

/* The timer queue's watermark, for the retention floor. */
static int
load_timer_low(struct fm_store *st)
{
	uint64_t *delivered;
	size_t n;
	int err =
	    fm_state_timer_load(st->state, &st->timer_low, &delivered, &n);

	free(delivered);
	return err;
}

static int
load_tombstones(struct fm_store *st)
{
	struct fm_tombstone *v;
	size_t n;
	int err = fm_state_tombstones(st->state, &v, &n);

	if (err != 0)
		return err;
	for (size_t i = 0; i < n; i++)
		add_tomb(st, v[i].topic, v[i].log_offset);
	free(v);
	return 0;
}

/* ---- appends waiting for their flush ---- */

/* Take the waits that the log's state settles: those below the flushed
 * offset, or all of them once the log failed. all: every wait, without
 * looking at the log (closing). */
static struct done_wait *
take_settled(struct fm_store *st, int all, size_t *n)
{
	struct done_wait *v;
	size_t k = 0;

	pthread_mutex_lock(&st->done_lock);
	if (all || fm_clog_failed(st->log)) {
		k = st->nwaits;
	} else {
		uint64_t flushed = fm_clog_flushed_offset(st->log);

		while (k < st->nwaits && st->waits[k].end <= flushed)
			k++;
	}
	if (k == 0) {
		pthread_mutex_unlock(&st->done_lock);
		*n = 0;
		return NULL;
	}
	v = xmemdup(st->waits, k * sizeof *v);
	memmove(st->waits, st->waits + k, (st->nwaits - k) * sizeof *v);
	st->nwaits -= k;
	pthread_mutex_unlock(&st->done_lock);
	*n = k;
	return v;
}

/* Fire the settled waits with err, or with -FM_E_IO when the log failed. */
static void
fire_settled(struct fm_store *st, int all, int err)
{
	size_t n;
	struct done_wait *v = take_settled(st, all, &n);

	if (!all && fm_clog_failed(st->log))
		err = -FM_E_IO;
	for (size_t i = 0; i < n; i++)
		v[i].fn(v[i].arg, err);
	free(v);
}

/* The log's flusher moved the flushed offset, or failed. */
static void
on_flush(void *arg)
{
	fire_settled(arg, 0, 0);
}

/* Register a wait for end unless the flush already passed it. Called
 * under append_lock so that waits stay in log order. Returns 1 (already
 * durable), 0 (registered) or -FM_E_IO. */
static int
add_wait(struct fm_store *st, uint64_t end, fm_store_done_fn fn, void *arg)
{
	int rc = 0;

	pthread_mutex_lock(&st->done_lock);
	if (fm_clog_failed(st->log)) {
		rc = -FM_E_IO;
	} else if (fm_clog_flushed_offset(st->log) >= end) {
		rc = 1;
	} else {
		if (st->nwaits == st->waits_cap) {
			st->waits_cap = st->waits_cap ? st->waits_cap * 2 : 64;
			st->waits = xreallocarray(
			    st->waits, st->waits_cap, sizeof *st->waits);
		}
		st->waits[st->nwaits++] = (struct done_wait){end, fn, arg};
	}
	pthread_mutex_unlock(&st->done_lock);
	return rc;
}

static int
open_parts(struct fm_store *st)
{
	struct fm_clog_options co = {NULL, st->opt.segment_size,
	    st->opt.sync_flush, st->opt.flush_interval_ms, on_flush, st};
	char *path = NULL;
	int err;

	if (mkdir(st->root, 0755) != 0 && errno != EEXIST) {
		fm_error("store: mkdir %s: %s", st->root, strerror(errno));
		return fm_err_from_errno(errno);
	}
	xasprintf(&path, "%s/state.db", st->root);
	err = fm_state_open(path, &st->state);
	free(path);
	if (err == 0)
		err = load_tombstones(st);
	if (err == 0)
		err = load_timer_low(st);
	if (err != 0)
		return err;
	xasprintf(&path, "%s/index.db", st->root);
	err = fm_index_open(path, INDEX_READERS, &st->ix);
	free(path);
	if (err != 0)
		return err;
	xasprintf(&path, "%s/commitlog", st->root);
	co.dir = path;
	err = fm_clog_open(&co, &st->log);
	free(path);
	return err;
}

/* Free everything; the threads are stopped. */
static void
destroy(struct fm_store *st)
{
	if (st->log != NULL)
		fm_clog_close(st->log);
	fm_index_close(st->ix);
	fm_state_close(st->state);
	fm_cq_table_free(st->queues);
	free_keys(st->keys, st->nkeys);
	free(st->keys);
	free(st->ends);
	free(st->dirty);
	free(st->touched);
	free(st->tombs);
	free(st->waits);
	pthread_mutex_destroy(&st->done_lock);
	pthread_mutex_destroy(&st->append_lock);
	pthread_mutex_destroy(&st->disp_lock);
	pthread_mutex_destroy(&st->qlock);
	pthread_cond_destroy(&st->wake);
	pthread_cond_destroy(&st->moved);
	pthread_mutex_destroy(&st->hk_lock);
	pthread_cond_destroy(&st->hk_wake);
	free(st->root);
	free(st);
}

static int
start_threads(struct fm_store *st)
{
	int rc = pthread_create(&st->disp_thread, NULL, dispatcher_main, st);

	if (rc != 0)
		return fm_err_from_errno(rc);
	rc = pthread_create(&st->hk_thread, NULL, housekeeping_main, st);
	if (rc != 0) {
		pthread_mutex_lock(&st->qlock);
		st->stop = 1;
		pthread_cond_broadcast(&st->wake);
		pthread_mutex_unlock(&st->qlock);
		pthread_join(st->disp_thread, NULL);
		return fm_err_from_errno(rc);
	}
	st->threads = 1;
	return 0;
}

int
fm_store_open(const struct fm_store_options *opt, struct fm_store **out)
{
	struct fm_store *st = xcalloc(1, sizeof *st);
	int err;

	st->opt = *opt;
	st->root = xstrdup(opt->root);
	st->opt.root = st->root;
	st->queues = fm_cq_table_new();
	st->writable = 1;
	st->last_commit_ms = fm_mono_ms();
	pthread_mutex_init(&st->append_lock, NULL);
	pthread_mutex_init(&st->disp_lock, NULL);
	pthread_mutex_init(&st->done_lock, NULL);
	pthread_mutex_init(&st->qlock, NULL);
	fm_cond_init_monotonic(&st->wake);
	fm_cond_init_monotonic(&st->moved);
	pthread_mutex_init(&st->hk_lock, NULL);
	fm_cond_init_monotonic(&st->hk_wake);
	err = open_parts(st);
	if (err == 0)
		err = recover(st);
	if (err != 0)
		goto fail;
	check_disk(st);
	err = start_threads(st);
	if (err != 0)
		goto fail;
	*out = st;
	return 0;
fail:
	fm_error("store: open %s: %s", st->root, fm_err_msg(err));
	destroy(st);
	return err;
}

static void
stop_threads(struct fm_store *st)
{
	if (!st->threads)
		return;
	pthread_mutex_lock(&st->hk_lock);
	st->hk_stop = 1;
	pthread_cond_broadcast(&st->hk_wake);
	pthread_mutex_unlock(&st->hk_lock);
	pthread_join(st->hk_thread, NULL);
	pthread_mutex_lock(&st->qlock);
	st->stop = 1;
	pthread_cond_broadcast(&st->wake);
	pthread_cond_broadcast(&st->moved);
	pthread_mutex_unlock(&st->qlock);
	pthread_join(st->disp_thread, NULL);
	st->threads = 0;
}

void
fm_store_close(struct fm_store *st)
{
	struct notice *notices;
	size_t nn;

	if (st == NULL)
		return;
	stop_threads(st);
	st->replaying = 1;
	/* the index may not pass the flushed offset: flush first, so that
	 * a clean restart replays nothing */
	if (dispatch_pass(st, &notices, &nn) == 0 &&
	    fm_clog_flush(st->log) == 0)
		(void)commit_index(st);
	free(notices);
	fm_clog_close(st->log);
	st->log = NULL;
	fire_settled(st, 1, -FM_E_SHUTDOWN);
	destroy(st);
}

void
fm_store_abandon(struct fm_store *st)
{
	if (st == NULL)
		return;
	stop_threads(st);
	fire_settled(st, 1, -FM_E_SHUTDOWN);
	fm_state_stop(st->state, 0);
	fm_clog_abandon(st->log);
	st->log = NULL;
	destroy(st);
}

/* ---- appending ---- */

/* The read barrier: wait until the dispatcher has passed the write offset
 * as it is now, so a reader sees every append that returned before it
 * started. Bounded, because a stuck dispatcher (it logs why) must not
 * hang readers forever. */
static void
await_visible(struct fm_store *st)
{
	uint64_t end = fm_clog_write_offset(st->log);
	struct timespec ts;

	pthread_mutex_lock(&st->qlock);
	if (st->dispatched < end && !st->stop) {
		fm_deadline_ts(&ts, VISIBLE_WAIT_MS);
		pthread_cond_signal(&st->wake);
		while (st->dispatched < end && !st->stop)
			if (pthread_cond_timedwait(
			        &st->moved, &st->qlock, &ts) == ETIMEDOUT)
				break;
	}
	pthread_mutex_unlock(&st->qlock);
}

/* Assign queue offsets and store_ts; saved[i] keeps each queue's previous
 * next offset for a rollback. append_lock held. */
static void
assign(struct fm_store *st, struct fm_record *recs, size_t n, int64_t now,
    uint64_t *saved)
{
	pthread_mutex_lock(&st->qlock);
	for (size_t i = 0; i < n; i++) {
		struct fm_cq *q = fm_cq_get(st->queues, recs[i].topic,
		    recs[i].topic_len, recs[i].queue_id);

		saved[i] = q->next;
		recs[i].queue_offset = q->next++;
		recs[i].store_ts = now;
	}
	pthread_mutex_unlock(&st->qlock);
}

static void
unassign(struct fm_store *st, struct fm_record *recs, size_t n,
    const uint64_t *saved)
{
	pthread_mutex_lock(&st->qlock);
	for (size_t i = n; i-- > 0;) {
		struct fm_cq *q = fm_cq_find(st->queues, recs[i].topic,
		    recs[i].topic_len, recs[i].queue_id);

		if (q != NULL)
			q->next = saved[i];
	}
	pthread_mutex_unlock(&st->qlock);
}

/* Make the records just appended readable, in log order, without the
 * round trip through the log and the dispatcher thread: the appender has
 * every field at hand. append_lock held; returns the notices to send once
 * it is released. */
static struct notice *
dispatch_inline(struct fm_store *st, const struct fm_record *recs, size_t n,
    uint64_t end, size_t *nn)
{
	struct notice *notices;
	size_t before;

	pthread_mutex_lock(&st->disp_lock);
	pthread_mutex_lock(&st->qlock);
	before = st->pending;
	for (size_t i = 0; i < n; i++)
		dispatch_record(st, &recs[i]);
	push_end(st, end);
	st->dispatched = end;
	st->appended += n;
	pthread_cond_broadcast(&st->moved);
	/* wake the committer for its first pending batch (it then ticks on
	 * its own) and when enough piled up, not on every append */
	if (st->nends == 1 ||
	    (before < COMMIT_ENTRIES && st->pending >= COMMIT_ENTRIES))
		pthread_cond_signal(&st->wake);
	notices = take_notices(st, nn);
	pthread_mutex_unlock(&st->qlock);
	pthread_mutex_unlock(&st->disp_lock);
	return notices;
}

int
fm_store_append_async(struct fm_store *st, struct fm_record *recs, size_t n,
    fm_store_done_fn done, void *arg)
{
	uint64_t *saved, end = 0;
	struct notice *notices = NULL;
	size_t nn = 0;
	int64_t now;
	int err, writable;

	if (n == 0)
		return 1;
	pthread_mutex_lock(&st->qlock);
	writable = st->writable;
	pthread_mutex_unlock(&st->qlock);
	if (!writable)
		return -FM_E_DISK_FULL;
	for (size_t i = 0; i < n; i++)
		if (recs[i].topic_len == 0 ||
		    recs[i].topic_len > FM_REC_MAX_TOPIC)
			return -FM_E_INVALID;
	saved = xcalloc(n, sizeof *saved);
	pthread_mutex_lock(&st->append_lock);
	now = fm_now_ms();
	if (now < st->last_store_ts)
		now = st->last_store_ts;
	assign(st, recs, n, now, saved);
	err = fm_clog_append(st->log, recs, n, &end);
	if (err != 0) {
		unassign(st, recs, n, saved);
	} else {
		st->last_store_ts = now;
		notices = dispatch_inline(st, recs, n, end, &nn);
		err = st->opt.sync_flush ? add_wait(st, end, done, arg) : 1;
	}
	pthread_mutex_unlock(&st->append_lock);
	free(saved);
	if (err == 0)
		fm_clog_request_flush(st->log, end);
	send_notices(st, notices, nn);
	return err;
}

/* ---- waiting for a completion ---- */

void
fm_store_wait_init(struct fm_store_wait *w)
{
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->done = 0;
	w->err = 0;
}

void
fm_store_wait_done(void *arg, int err)
{
	struct fm_store_wait *w = arg;

	pthread_mutex_lock(&w->mu);
	w->done = 1;
	w->err = err;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

int
fm_store_wait_end(struct fm_store_wait *w, int rc)
{
	if (rc == 0) {
		pthread_mutex_lock(&w->mu);
		while (!w->done)
			pthread_cond_wait(&w->cv, &w->mu);
		pthread_mutex_unlock(&w->mu);
		rc = w->err;
	}
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	return rc < 0 ? rc : 0;
}

int
fm_store_append(struct fm_store *st, struct fm_record *recs, size_t n)
{
	struct fm_store_wait w;

	fm_store_wait_init(&w);
	return fm_store_wait_end(
	    &w, fm_store_append_async(st, recs, n, fm_store_wait_done, &w));
}

int
fm_store_read(struct fm_store *st, uint64_t log_offset, struct fm_buf *buf,
    struct fm_record *rec)
{
	return fm_clog_read(st->log, log_offset, buf, rec);
}

/* ---- consume queues ---- */

int
fm_store_cq_read(struct fm_store *st, const char *topic, uint32_t queue_id,
    uint64_t from, struct fm_cq_entry *out, size_t max, size_t *n)
{
	struct fm_buf blob = FM_BUF_INIT;
	struct fm_index_chunk c;
	int err = 0;

	await_visible(st);
	*n = 0;
	while (*n < max) {
		struct fm_cq *q;
		uint64_t base, end;

		pthread_mutex_lock(&st->qlock);
		q = fm_cq_find(st->queues, topic, strlen(topic), queue_id);
		if (q == NULL || from >= q->max) {
			pthread_mutex_unlock(&st->qlock);
			break;
		}
		if (from < q->min) {
			pthread_mutex_unlock(&st->qlock);
			err = *n == 0 ? -FM_E_GONE : 0;
			break;
		}
		if (from >= q->mem_base) {
			for (; from < q->max && *n < max; from++)
				out[(*n)++] = fm_cq_at(q, from)->e;
			pthread_mutex_unlock(&st->qlock);
			break;
		}
		base = q->mem_base;
		pthread_mutex_unlock(&st->qlock);
		/* closed chunks never change: read outside the lock */
		err = fm_index_read_chunk(
		    st->ix, topic, queue_id, from / FM_CQ_CHUNK, &blob, &c);
		if (err != 0) {
			/* retention dropped it meanwhile */
			err = *n == 0 ? -FM_E_GONE : 0;
			break;
		}
		end = (from / FM_CQ_CHUNK + 1) * FM_CQ_CHUNK;
		if (end > base)
			end = base;
		for (; from < end && *n < max; from++)
			if (fm_cq_unpack(c.entries, c.len, from % FM_CQ_CHUNK,
			        &out[*n]) == 0)
				(*n)++;
	}
	fm_buf_free(&blob);
	return err;
}

void
fm_store_queue_range(struct fm_store *st, const char *topic, uint32_t queue_id,
    uint64_t *min, uint64_t *max)
{
	struct fm_cq *q;

	await_visible(st);
	pthread_mutex_lock(&st->qlock);
	q = fm_cq_find(st->queues, topic, strlen(topic), queue_id);
	*min = q ? q->min : 0;
	*max = q ? q->max : 0;
	pthread_mutex_unlock(&st->qlock);
}

/* First queue offset in [lo, hi) whose record was stored at or after ts,
 * hi when none. qlock held. */
static uint64_t
search_ts(struct fm_store *st, struct fm_cq *q, uint64_t lo, uint64_t hi,
    int64_t ts, struct cursor *cur)
{
	struct fm_cq_mem m;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (entry_at(st, q, mid, cur, &m) == 0 && m.e.size > 0 &&
		    entry_ts(st, &m) >= ts)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

int
fm_store_queue_offset_at(struct fm_store *st, const char *topic,
    uint32_t queue_id, int64_t ts, uint64_t *queue_offset)
{
	struct cursor cur = {FM_BUF_INIT, {0}, 0};
	struct fm_cq *q;
	uint64_t lo, hi;

	await_visible(st);
	pthread_mutex_lock(&st->qlock);
	q = fm_cq_find(st->queues, topic, strlen(topic), queue_id);
	if (q == NULL) {
		*queue_offset = 0;
		goto out;
	}
	lo = q->min;
	hi = q->max;
	if (lo < q->mem_base &&
	    fm_index_chunk_at_ts(
	        st->ix, topic, queue_id, ts, &cur.blob, &cur.c) == 0 &&
	    cur.c.chunk * FM_CQ_CHUNK < q->mem_base) {
		/* the sparse index: the answer lies in this chunk */
		uint64_t c0 = cur.c.chunk * FM_CQ_CHUNK;

		cur.valid = 1;
		if (c0 > lo)
			lo = c0;
		if (c0 + FM_CQ_CHUNK < hi)
			hi = c0 + FM_CQ_CHUNK;
	} else if (lo < q->mem_base) {
		lo = q->mem_base;
	}
	*queue_offset = search_ts(st, q, lo, hi, ts, &cur);
out:
	pthread_mutex_unlock(&st->qlock);
	fm_buf_free(&cur.blob);
	return 0;
}

int
fm_store_find_key(struct fm_store *st, const char *topic, const char *key,
    uint64_t *log_offsets, size_t max, size_t *n)
{
	uint64_t log_min = fm_clog_min_offset(st->log), hi;
	size_t more = 0;
	int err = 0;

	await_visible(st);
	*n = 0;
	/* pending rows are the newest; index.db has those below indexed */
	pthread_mutex_lock(&st->qlock);
	hi = st->indexed;
	for (size_t i = st->nkeys; i-- > 0 && *n < max;) {
		const struct key_row *k = &st->keys[i];

		if (k->log_offset >= log_min && strcmp(k->key, key) == 0 &&
		    strcmp(k->topic, topic) == 0)
			log_offsets[(*n)++] = k->log_offset;
	}
	pthread_mutex_unlock(&st->qlock);
	if (*n < max && hi > log_min)
		err = fm_index_find_key(st->ix, topic, key, log_min, hi,
		    log_offsets + *n, max - *n, &more);
	*n += more;
	return err;
}

/* ---- topics ---- */

int
fm_store_topic_put(struct fm_store *st, const struct fm_topic_conf *tc)
{
	if (tc->name[0] == '\0')
		return -FM_E_INVALID;
	return fm_state_topic_put(st->state, tc);
}

int
fm_store_topic_get(
    struct fm_store *st, const char *name, struct fm_topic_conf *tc)
{
	return fm_state_topic_get(st->state, name, tc);
}

int
fm_store_topic_list(struct fm_store *st, struct fm_topic_conf **out, size_t *n)
{
	return fm_state_topic_list(st->state, out, n);
}

/* ---- consumer groups ---- */

int
fm_store_group_conf_put(struct fm_store *st, const struct fm_group_conf *gc)
{
	if (gc->name[0] == '\0')
		return -FM_E_INVALID;
	return fm_state_group_conf_put(st->state, gc);
}

int
fm_store_group_conf_get(
    struct fm_store *st, const char *name, struct fm_group_conf *gc)
{
	return fm_state_group_conf_get(st->state, name, gc);
}

int
fm_store_group_conf_list(
    struct fm_store *st, struct fm_group_conf **out, size_t *n)
{
	return fm_state_group_conf_list(st->state, out, n);
}

int
fm_store_group_write_async(struct fm_store *st, struct fm_grow *rows, size_t n,
    fm_store_done_fn done, void *arg)
{
	return fm_state_group_write_async(st->state, rows, n, done, arg);
}

int
fm_store_group_write(struct fm_store *st, const struct fm_grow *rows, size_t n)
{
	struct fm_grow *copy = n > 0 ? xmemdup(rows, n * sizeof(*rows)) : NULL;
	struct fm_store_wait w;

	fm_store_wait_init(&w);
	return fm_store_wait_end(&w,
	    fm_state_group_write_async(
	        st->state, copy, n, fm_store_wait_done, &w));
}

int
fm_store_group_load(struct fm_store *st, struct fm_grow **out, size_t *n)
{
	return fm_state_group_load(st->state, out, n);
}

/* ---- the timer queue's delivery marks ---- */

int
fm_store_timer_load(
    struct fm_store *st, uint64_t *low, uint64_t **delivered, size_t *n)
{
	return fm_state_timer_load(st->state, low, delivered, n);
}

int
fm_store_timer_mark(
    struct fm_store *st, const uint64_t *delivered, size_t n, uint64_t low)
{
	int err = fm_state_timer_mark(st->state, delivered, n, low);

	if (err != 0)
		return err;
	pthread_mutex_lock(&st->qlock);
	st->timer_low = low;
	pthread_mutex_unlock(&st->qlock);
	return 0;
}

static void
drop_listed(struct fm_cq **v, size_t *n, const char *topic)
{
	for (size_t i = 0; i < *n;)
		if (strcmp(v[i]->topic, topic) == 0)
			v[i] = v[--*n];
		else
			i++;
}

/* Forget the topic's queues and pending keys. qlock and disp_lock held. */
static size_t
drop_topic(struct fm_store *st, const char *topic)
{
	size_t j = 0, removed;

	drop_listed(st->dirty, &st->ndirty, topic);
	drop_listed(st->touched, &st->ntouched, topic);
	for (size_t i = 0; i < st->nkeys; i++) {
		if (strcmp(st->keys[i].topic, topic) == 0)
			free_keys(&st->keys[i], 1);
		else
			st->keys[j++] = st->keys[i];
	}
	st->nkeys = j;
	removed = fm_cq_remove_topic(st->queues, topic);
	return removed;
}

/*
 * Crash safety: the tombstone and the topic row go in one state.db
 * transaction first. Whatever happens after, a restart skips the topic's
 * older records in the replay and deletes its older index rows
 * (recover()), so the old messages cannot come back.
 */
int
fm_store_topic_delete(struct fm_store *st, const char *name)
{
	uint64_t wr;
	int existed = 0, err;
	size_t removed;

	if (name[0] == '\0' || strlen(name) > FM_REC_MAX_TOPIC)
		return -FM_E_INVALID;
	pthread_mutex_lock(&st->append_lock);
	pthread_mutex_lock(&st->disp_lock);
	wr = fm_clog_write_offset(st->log);
	err = fm_state_topic_delete(st->state, name, wr, &existed);
	if (err != 0)
		goto out;
	pthread_mutex_lock(&st->qlock);
	add_tomb(st, name, wr);
	pthread_mutex_unlock(&st->qlock);
	err = fm_index_begin(st->ix);
	if (err == 0)
		err = fm_index_delete_topic(st->ix, name);
	if (err == 0)
		err = fm_index_commit(st->ix);
	else
		fm_index_rollback(st->ix);
	if (err != 0)
		fm_warn("store: index rows of deleted topic %s stay until the"
		        " next start: %s",
		    name, fm_err_msg(err));
	pthread_mutex_lock(&st->qlock);
	removed = drop_topic(st, name);
	pthread_mutex_unlock(&st->qlock);
	err = existed || removed > 0 ? 0 : -FM_E_NOT_FOUND;
out:
	pthread_mutex_unlock(&st->disp_lock);
	pthread_mutex_unlock(&st->append_lock);
	return err;
}

void
fm_store_stats(struct fm_store *st, struct fm_store_stats *out)
{
	memset(out, 0, sizeof *out);
	out->min_offset = fm_clog_min_offset(st->log);
	out->write_offset = fm_clog_write_offset(st->log);
	out->flushed_offset = fm_clog_flushed_offset(st->log);
	fm_clog_usage(st->log, &out->segments, &out->log_bytes);
	pthread_mutex_lock(&st->qlock);
	out->dispatched_offset = st->dispatched;
	out->indexed_offset = st->indexed;
	out->disk_used_ratio = st->disk_ratio;
	out->writable = st->writable;
	out->appended_records = st->appended;
	pthread_mutex_unlock(&st->qlock);
	out->group_retry_rows = fm_state_group_retry_rows(st->state);
}
