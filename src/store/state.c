/*
 * state.c - state.db (see state.h): topics, topic tombstones, consumer
 * group settings, offsets and receipts, the timer queue's delivery marks,
 * and the committer thread of the group rows.
 *
 * One connection, every statement prepared once at open, one mutex. Each
 * public function is one statement or one explicit transaction, so a
 * failure leaves the database as it was.
 *
 * The committer (fm_state_group_write_async): callers append a gc_job,
 * owning their rows (none for a barrier), to gc_head..gc_tail under
 * gc_lock and return. The committer thread takes the whole list, commits
 * it in one transaction, and calls each job's done in queue order, with
 * no lock held; so a barrier's done comes once every job queued before
 * it is committed (or with the error of the transaction that failed to).
 * Invariants:
 *  1. Jobs commit in the order they were queued: a batch is a prefix of
 *     the queue, and its rows are applied job by job, row by row.
 *  2. state.db always holds the result of applying the rows of a prefix
 *     of the queue, in order: never a later job's rows without an
 *     earlier one's. A failed batch (its done already called with the
 *     error) is merged into gc_retry, which is applied first in every
 *     following transaction until one commits. gc_retry is collapsed by
 *     key (retry_merge): rows are idempotent upserts and deletes, so only
 *     the last row of each offset or receipt key counts, and a CLEAR of a
 *     (topic, group) drops the receipt rows queued before it; applied in
 *     key order (a CLEAR before its group's receipts) it has the effect
 *     of every failed row in queue order. So it holds one row per key
 *     the failed jobs wrote (a queue's offsets, a message's receipt),
 *     however many jobs wrote it: its size, and the work it adds to each
 *     transaction, grow with the queues and messages touched while
 *     commits fail, not with the number of calls (a client repeating a
 *     failing call adds nothing).
 *  3. Once gc_stop is set nothing more is queued; the thread exits when
 *     the queue is empty (GC_DRAIN: gc_retry is then tried once more, and
 *     dropped, logged, if that fails too) or after its current batch
 *     (GC_DROP), and fm_state_stop fails what is left with
 *     -FM_E_SHUTDOWN. Every queued job's done is called exactly once.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "store/sql.h"
#include "store/state.h"

static const char state_setup[] =
    "PRAGMA journal_mode=WAL\0"
    "PRAGMA synchronous=FULL\0"
    "CREATE TABLE IF NOT EXISTS topics(name TEXT PRIMARY KEY,"
    " queues INTEGER NOT NULL, perm INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL) WITHOUT ROWID\0"
    "CREATE TABLE IF NOT EXISTS topic_tombstones(topic TEXT NOT NULL,"
    " log_offset INTEGER NOT NULL, PRIMARY KEY(topic, log_offset))"
    " WITHOUT ROWID\0"
    "CREATE TABLE IF NOT EXISTS group_offsets(topic TEXT NOT NULL,"
    " grp TEXT NOT NULL, queue_id INTEGER NOT NULL,"
    " ack_offset INTEGER NOT NULL, next_offset INTEGER NOT NULL,"
    " PRIMARY KEY(topic, grp, queue_id)) WITHOUT ROWID\0"
    "CREATE TABLE IF NOT EXISTS group_receipts(topic TEXT NOT NULL,"
    " grp TEXT NOT NULL, queue_id INTEGER NOT NULL,"
    " queue_offset INTEGER NOT NULL, nonce INTEGER NOT NULL,"
    " reconsume INTEGER NOT NULL, visible_at INTEGER NOT NULL,"
    " PRIMARY KEY(topic, grp, queue_id, queue_offset)) WITHOUT ROWID\0"
    "CREATE TABLE IF NOT EXISTS group_configs(grp TEXT PRIMARY KEY,"
    " fifo INTEGER NOT NULL DEFAULT 0, updated_ms INTEGER NOT NULL)"
    " WITHOUT ROWID\0"
    "CREATE TABLE IF NOT EXISTS timer_watermark(id INTEGER PRIMARY KEY"
    " CHECK(id = 0), low INTEGER NOT NULL)\0"
    "CREATE TABLE IF NOT EXISTS timer_delivered(queue_offset INTEGER"
    " PRIMARY KEY)\0";

enum {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_TOPIC_PUT,
	S_TOPIC_GET,
	S_TOPIC_LIST,
	S_TOPIC_DEL,
	S_TOMB_ADD,
	S_TOMB_LIST,
	S_TOMB_PRUNE,
	S_GOFF_PUT,
	S_GOFF_LIST,
	S_GRCPT_PUT,
	S_GRCPT_DEL,
	S_GRCPT_CLEAR,
	S_GRCPT_LIST,
	S_GCONF_PUT,
	S_GCONF_GET,
	S_GCONF_LIST,
	S_TIMER_LOW_GET,
	S_TIMER_LOW_PUT,
	S_TIMER_DONE_LIST,
	S_TIMER_DONE_ADD,
	S_TIMER_DONE_PRUNE,
	S__COUNT
};

static const char *const state_sql[S__COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_TOPIC_PUT] = "INSERT OR REPLACE INTO topics(name, queues, perm,"
                    " created_ms) VALUES(?1, ?2, ?3, ?4)",
    [S_TOPIC_GET] = "SELECT name, queues, perm, created_ms FROM topics"
                    " WHERE name = ?1",
    [S_TOPIC_LIST] = "SELECT name, queues, perm, created_ms FROM topics"
                     " ORDER BY name",
    [S_TOPIC_DEL] = "DELETE FROM topics WHERE name = ?1",
    [S_TOMB_ADD] = "INSERT OR IGNORE INTO topic_tombstones(topic,"
                   " log_offset) VALUES(?1, ?2)",
    [S_TOMB_LIST] = "SELECT topic, log_offset FROM topic_tombstones",
    [S_TOMB_PRUNE] = "DELETE FROM topic_tombstones WHERE log_offset <= ?1",
    [S_GOFF_PUT] = "INSERT OR REPLACE INTO group_offsets(topic, grp,"
                   " queue_id, ack_offset, next_offset)"
                   " VALUES(?1, ?2, ?3, ?4, ?5)",
    [S_GOFF_LIST] = "SELECT topic, grp, queue_id, ack_offset, next_offset"
                    " FROM group_offsets",
    [S_GRCPT_PUT] = "INSERT OR REPLACE INTO group_receipts(topic, grp,"
                    " queue_id, queue_offset, nonce, reconsume, visible_at)"
                    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_GRCPT_DEL] = "DELETE FROM group_receipts WHERE topic = ?1 AND"
                    " grp = ?2 AND queue_id = ?3 AND queue_offset = ?4",
    [S_GRCPT_CLEAR] = "DELETE FROM group_receipts WHERE topic = ?1 AND"
                      " grp = ?2",
    [S_GRCPT_LIST] = "SELECT topic, grp, queue_id, queue_offset, nonce,"
                     " reconsume, visible_at FROM group_receipts",
    [S_GCONF_PUT] = "INSERT OR REPLACE INTO group_configs(grp, fifo,"
                    " updated_ms) VALUES(?1, ?2, ?3)",
    [S_GCONF_GET] = "SELECT grp, fifo, updated_ms FROM group_configs"
                    " WHERE grp = ?1",
    [S_GCONF_LIST] = "SELECT grp, fifo, updated_ms FROM group_configs"
                     " ORDER BY grp",
    [S_TIMER_LOW_GET] = "SELECT low FROM timer_watermark WHERE id = 0",
    [S_TIMER_LOW_PUT] = "INSERT OR REPLACE INTO timer_watermark(id, low)"
                        " VALUES(0, ?1)",
    [S_TIMER_DONE_LIST] = "SELECT queue_offset FROM timer_delivered"
                          " ORDER BY queue_offset",
    [S_TIMER_DONE_ADD] = "INSERT OR IGNORE INTO timer_delivered"
                         "(queue_offset) VALUES(?1)",
    [S_TIMER_DONE_PRUNE] = "DELETE FROM timer_delivered"
                           " WHERE queue_offset < ?1",
};

/* One queued call of fm_state_group_write_async (see the top). */
struct gc_job {
	struct fm_grow *rows; /* owned; NULL for a barrier */
	size_t n;
	fm_store_done_fn done; /* NULL: nobody waits */
	void *arg;
	struct gc_job *next;
};

enum { GC_RUN, GC_DRAIN, GC_DROP };

struct fm_state {
	sqlite3 *db;
	sqlite3_stmt *st[S__COUNT];
	pthread_mutex_t lock; /* guards db and st */
	pthread_mutex_t gc_lock; /* guards gc_head, gc_tail, gc_stop, and
	                            gc_nretry's writes */
	pthread_cond_t gc_cond; /* the committer: a job queued, or stop */
	struct gc_job *gc_head, *gc_tail; /* queued, not yet taken */
	int gc_stop; /* GC_* (invariant 3) */
	struct fm_grow *gc_retry; /* committer only (invariant 2) */
	size_t gc_nretry; /* rows of gc_retry */
	pthread_t gc_thread;
	int gc_started; /* the committer runs or must be joined */
};

static void *committer_main(void *arg);

int
fm_state_open(const char *path, struct fm_state **out)
{
	struct fm_state *s = xcalloc(1, sizeof *s);
	int err;

	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->gc_lock, NULL);
	pthread_cond_init(&s->gc_cond, NULL);
	err = fm_sql_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	    state_setup, &s->db);
	if (err != 0)
		goto fail;
	for (int i = 0; i < S__COUNT; i++) {
		err = fm_sql_prepare(s->db, state_sql[i], &s->st[i]);
		if (err != 0)
			goto fail;
	}
	err = pthread_create(&s->gc_thread, NULL, committer_main, s);
	if (err != 0) {
		err = fm_err_from_errno(err);
		goto fail;
	}
	s->gc_started = 1;
	*out = s;
	return 0;
fail:
	fm_state_close(s);
	return err;
}

void
fm_state_close(struct fm_state *s)
{
	if (s == NULL)
		return;
	fm_state_stop(s, 1);
	for (int i = 0; i < S__COUNT; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close(s->db);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->gc_lock);
	pthread_cond_destroy(&s->gc_cond);
	free(s);
}

static void
row_topic(sqlite3_stmt *st, void *elem, void *arg)
{
	const unsigned char *name = sqlite3_column_text(st, 0);
	struct fm_topic_conf *tc = elem;

	memset(tc, 0, sizeof *tc);
	if (name != NULL)
		strncpy(tc->name, (const char *)name, FM_REC_MAX_TOPIC);
	tc->queues = (uint32_t)sqlite3_column_int64(st, 1);
	tc->perm = (uint32_t)sqlite3_column_int64(st, 2);
	tc->created_ms = sqlite3_column_int64(st, 3);
}

int
fm_state_topic_put(struct fm_state *s, const struct fm_topic_conf *tc)
{
	sqlite3_stmt *st = s->st[S_TOPIC_PUT];
	int err;

	pthread_mutex_lock(&s->lock);
	sqlite3_bind_text(st, 1, tc->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, tc->queues);
	sqlite3_bind_int64(st, 3, tc->perm);
	sqlite3_bind_int64(st, 4, tc->created_ms);
	err = fm_sql_run(st);
	pthread_mutex_unlock(&s->lock);
	return err;
}

/* The row of statement which whose one parameter is key, into elem: 0,
 * or -FM_E_NOT_FOUND when there is none. */
static int
get_one(struct fm_state *s, int which, const char *key, fm_sql_row_fn row,
    void *elem)
{
	sqlite3_stmt *st = s->st[which];
	int rc, err;

	pthread_mutex_lock(&s->lock);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		row(st, elem, NULL);
		err = 0;
	} else {
		err = rc == SQLITE_DONE ? -FM_E_NOT_FOUND : fm_sql_err(rc);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	pthread_mutex_unlock(&s->lock);
	return err;
}

/* Every row of list statement which: *out is a new array of *n elements
 * of size bytes (free()), NULL and 0 on error. */
static int
get_all(struct fm_state *s, int which, size_t size, fm_sql_row_fn row,
    void **out, size_t *n)
{
	size_t cap = 0;
	int err;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&s->lock);
	err = fm_sql_rows(s->st[which], size, row, NULL, out, n, &cap);
	pthread_mutex_unlock(&s->lock);
	if (err != 0) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return err;
}

int
fm_state_topic_get(
    struct fm_state *s, const char *name, struct fm_topic_conf *tc)
{
	return get_one(s, S_TOPIC_GET, name, row_topic, tc);
}

int
fm_state_topic_list(struct fm_state *s, struct fm_topic_conf **out, size_t *n)
{
	return get_all(
	    s, S_TOPIC_LIST, sizeof(**out), row_topic, (void **)out, n);
}

int
fm_state_topic_delete(
    struct fm_state *s, const char *name, uint64_t log_offset, int *existed)
{
	sqlite3_stmt *add = s->st[S_TOMB_ADD], *del = s->st[S_TOPIC_DEL];
	int err;

	pthread_mutex_lock(&s->lock);
	err = fm_sql_run(s->st[S_BEGIN]);
	if (err != 0)
		goto out;
	sqlite3_bind_text(add, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(add, 2, (sqlite3_int64)log_offset);
	err = fm_sql_run(add);
	if (err != 0)
		goto fail;
	sqlite3_bind_text(del, 1, name, -1, SQLITE_STATIC);
	err = fm_sql_run(del);
	if (err != 0)
		goto fail;
	*existed = sqlite3_changes(s->db) > 0;
	err = fm_sql_run(s->st[S_COMMIT]);
	if (err != 0)
		goto fail;
out:
	pthread_mutex_unlock(&s->lock);
	return err;
fail:
	fm_sql_run(s->st[S_ROLLBACK]);
	pthread_mutex_unlock(&s->lock);
	return err;
}

static void
row_tomb(sqlite3_stmt *st, void *elem, void *arg)
{
	const unsigned char *t = sqlite3_column_text(st, 0);
	struct fm_tombstone *tb = elem;

	if (t != NULL)
		strncpy(tb->topic, (const char *)t, FM_REC_MAX_TOPIC);
	tb->log_offset = (uint64_t)sqlite3_column_int64(st, 1);
}

int
fm_state_tombstones(struct fm_state *s, struct fm_tombstone **out, size_t *n)
{
	return get_all(
	    s, S_TOMB_LIST, sizeof(**out), row_tomb, (void **)out, n);
}

int
fm_state_tombstones_prune(struct fm_state *s, uint64_t log_offset)
{
	sqlite3_stmt *st = s->st[S_TOMB_PRUNE];
	int err;

	pthread_mutex_lock(&s->lock);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)log_offset);
	err = fm_sql_run(st);
	pthread_mutex_unlock(&s->lock);
	return err;
}

/* ---- consumer group settings ---- */

static void
row_gconf(sqlite3_stmt *st, void *elem, void *arg)
{
	const unsigned char *name = sqlite3_column_text(st, 0);
	struct fm_group_conf *gc = elem;

	memset(gc, 0, sizeof *gc);
	if (name != NULL)
		strncpy(gc->name, (const char *)name, FM_REC_MAX_TOPIC);
	gc->fifo = sqlite3_column_int64(st, 1) != 0;
	gc->updated_ms = sqlite3_column_int64(st, 2);
}

int
fm_state_group_conf_put(struct fm_state *s, const struct fm_group_conf *gc)
{
	sqlite3_stmt *st = s->st[S_GCONF_PUT];
	int err;

	pthread_mutex_lock(&s->lock);
	sqlite3_bind_text(st, 1, gc->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, gc->fifo != 0);
	sqlite3_bind_int64(st, 3, gc->updated_ms);
	err = fm_sql_run(st);
	pthread_mutex_unlock(&s->lock);
	return err;
}

int
fm_state_group_conf_get(
    struct fm_state *s, const char *name, struct fm_group_conf *gc)
{
	return get_one(s, S_GCONF_GET, name, row_gconf, gc);
}

int
fm_state_group_conf_list(
    struct fm_state *s, struct fm_group_conf **out, size_t *n)
{
	return get_all(
	    s, S_GCONF_LIST, sizeof(**out), row_gconf, (void **)out, n);
}

/* ---- consumer groups ---- */

static int
group_row(struct fm_state *s, const struct fm_grow *g)
{
	sqlite3_stmt *st;

	switch (g->kind) {
	case FM_GROW_OFFSET:
		st = s->st[S_GOFF_PUT];
		sqlite3_bind_int64(st, 4, (sqlite3_int64)g->offset);
		sqlite3_bind_int64(st, 5, (sqlite3_int64)g->next);
		break;
	case FM_GROW_RECEIPT:
		st = s->st[S_GRCPT_PUT];
		sqlite3_bind_int64(st, 4, (sqlite3_int64)g->offset);
		sqlite3_bind_int64(st, 5, (sqlite3_int64)g->nonce);
		sqlite3_bind_int64(st, 6, g->reconsume);
		sqlite3_bind_int64(st, 7, g->visible_at);
		break;
	case FM_GROW_RECEIPT_DEL:
		st = s->st[S_GRCPT_DEL];
		sqlite3_bind_int64(st, 4, (sqlite3_int64)g->offset);
		break;
	case FM_GROW_CLEAR:
		st = s->st[S_GRCPT_CLEAR];
		sqlite3_bind_text(st, 1, g->topic, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, g->group, -1, SQLITE_STATIC);
		return fm_sql_run(st);
	default:
		return -FM_E_INVALID;
	}
	sqlite3_bind_text(st, 1, g->topic, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, g->group, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, g->queue_id);
	return fm_sql_run(st);
}

/* Apply n rows; the caller holds lock in a transaction. */
static int
group_rows(struct fm_state *s, const struct fm_grow *rows, size_t n)
{
	int err;

	for (size_t i = 0; i < n; i++)
		if ((err = group_row(s, &rows[i])) != 0)
			return err;
	return 0;
}

/* One transaction: the rows of failed batches again (gc_retry), then
 * the batch's. */
static int
group_commit(struct fm_state *s, const struct gc_job *batch)
{
	int err;

	pthread_mutex_lock(&s->lock);
	err = fm_sql_run(s->st[S_BEGIN]);
	if (err != 0)
		goto out;
	err = group_rows(s, s->gc_retry, s->gc_nretry);
	for (const struct gc_job *j = batch; err == 0 && j != NULL; j = j->next)
		err = group_rows(s, j->rows, j->n);
	if (err == 0)
		err = fm_sql_run(s->st[S_COMMIT]);
	if (err != 0)
		fm_sql_run(s->st[S_ROLLBACK]);
out:
	pthread_mutex_unlock(&s->lock);
	return err;
}

/* ---- the retry set (invariant 2) ---- */

/* A row being merged into gc_retry; seq is its place in queue order. */
struct rrow {
	const struct fm_grow *g;
	size_t seq;
};

/* Rows of one (topic, group) sort CLEAR first, then offsets, then
 * receipts (RECEIPT and RECEIPT_DEL share their keys). */
static int
key_class(enum fm_grow_kind k)
{
	return k == FM_GROW_CLEAR ? 0 : k == FM_GROW_OFFSET ? 1 : 2;
}

/* Order of the keys two rows write (0: the same row of state.db). */
static int
key_cmp(const struct fm_grow *a, const struct fm_grow *b)
{
	int c = strcmp(a->topic, b->topic);

	if (c == 0)
		c = strcmp(a->group, b->group);
	if (c == 0)
		c = key_class(a->kind) - key_class(b->kind);
	if (c != 0 || a->kind == FM_GROW_CLEAR)
		return c;
	if (a->queue_id != b->queue_id)
		return a->queue_id < b->queue_id ? -1 : 1;
	/* an offset row's key is its queue; a receipt's, its queue offset */
	if (a->kind == FM_GROW_OFFSET || a->offset == b->offset)
		return 0;
	return a->offset < b->offset ? -1 : 1;
}

static int
rrow_cmp(const void *x, const void *y)
{
	const struct rrow *a = x, *b = y;
	int c = key_cmp(a->g, b->g);

	if (c != 0)
		return c;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void
retry_count(struct fm_state *s, size_t n)
{
	pthread_mutex_lock(&s->gc_lock);
	s->gc_nretry = n;
	pthread_mutex_unlock(&s->gc_lock);
}

size_t
fm_state_group_retry_rows(struct fm_state *s)
{
	size_t n;

	pthread_mutex_lock(&s->gc_lock);
	n = s->gc_nretry;
	pthread_mutex_unlock(&s->gc_lock);
	return n;
}

/* Merge the rows of a failed batch into gc_retry, collapsed: of each key
 * only its last row, and no receipt row queued before the last CLEAR of
 * its (topic, group); the result is in key order, so a CLEAR is applied
 * before the receipts of its group that came after it. */
static void
retry_merge(struct fm_state *s, const struct gc_job *batch)
{
	size_t total = s->gc_nretry, m = 0, seq = 0;
	const struct rrow *clear = NULL;
	struct fm_grow *out;
	struct rrow *v;

	for (const struct gc_job *j = batch; j != NULL; j = j->next)
		total += j->n;
	if (total == s->gc_nretry)
		return; /* barriers only: gc_retry is collapsed already */
	v = xreallocarray(NULL, total, sizeof(*v));
	for (size_t i = 0; i < s->gc_nretry; i++, seq++)
		v[seq] = (struct rrow){&s->gc_retry[i], seq};
	for (const struct gc_job *j = batch; j != NULL; j = j->next)
		for (size_t i = 0; i < j->n; i++, seq++)
			v[seq] = (struct rrow){&j->rows[i], seq};
	qsort(v, total, sizeof(*v), rrow_cmp);
	out = xreallocarray(NULL, total, sizeof(*out));
	for (size_t i = 0; i < total; i++) {
		const struct fm_grow *g = v[i].g;

		if (i + 1 < total && key_cmp(g, v[i + 1].g) == 0)
			continue; /* a later row of the same key replaces it */
		if (g->kind == FM_GROW_CLEAR)
			clear = &v[i];
		else if (g->kind != FM_GROW_OFFSET && clear != NULL &&
		    strcmp(clear->g->topic, g->topic) == 0 &&
		    strcmp(clear->g->group, g->group) == 0 &&
		    v[i].seq < clear->seq)
			continue; /* the CLEAR after it deletes it */
		out[m++] = *g;
	}
	free(v);
	free(s->gc_retry);
	s->gc_retry = out;
	retry_count(s, m);
}

static void
retry_clear(struct fm_state *s)
{
	free(s->gc_retry);
	s->gc_retry = NULL;
	retry_count(s, 0);
}

static void
jobs_free(struct gc_job *j)
{
	for (struct gc_job *next; j != NULL; j = next) {
		next = j->next;
		free(j->rows);
		free(j);
	}
}

/* Call the done of every job of the list with err. */
static void
jobs_fire(struct gc_job *jobs, int err)
{
	for (struct gc_job *j = jobs; j != NULL; j = j->next)
		if (j->done != NULL)
			j->done(j->arg, err);
}

/* Commit a batch and report it; when it failed, its rows join gc_retry
 * (invariant 2). */
static void
group_batch(struct fm_state *s, struct gc_job *batch)
{
	int err = group_commit(s, batch);

	jobs_fire(batch, err);
	if (err == 0) {
		retry_clear(s);
	} else {
		retry_merge(s, batch);
		fm_error("state: group commit failed (%zu rows retried with "
		         "the next): %s",
		    s->gc_nretry, fm_err_msg(err));
	}
	jobs_free(batch);
}

static void *
committer_main(void *arg)
{
	struct fm_state *s = arg;
	int drain;

	pthread_mutex_lock(&s->gc_lock);
	for (;;) {
		struct gc_job *batch = s->gc_head;

		if (s->gc_stop == GC_DROP || (batch == NULL && s->gc_stop))
			break;
		if (batch == NULL) {
			pthread_cond_wait(&s->gc_cond, &s->gc_lock);
			continue;
		}
		s->gc_head = s->gc_tail = NULL;
		pthread_mutex_unlock(&s->gc_lock);
		group_batch(s, batch);
		pthread_mutex_lock(&s->gc_lock);
	}
	drain = s->gc_stop == GC_DRAIN;
	pthread_mutex_unlock(&s->gc_lock);
	/* closing: the rows of failed commits get one more chance */
	if (drain && s->gc_nretry > 0) {
		int err = group_commit(s, NULL);

		if (err != 0)
			fm_error("state: %zu rows of failed group commits are "
			         "lost at close: %s",
			    s->gc_nretry, fm_err_msg(err));
	}
	return NULL;
}

static int
grow_kind_valid(enum fm_grow_kind k)
{
	return k == FM_GROW_OFFSET || k == FM_GROW_RECEIPT ||
	    k == FM_GROW_RECEIPT_DEL || k == FM_GROW_CLEAR;
}

int
fm_state_group_write_async(struct fm_state *s, struct fm_grow *rows, size_t n,
    fm_store_done_fn done, void *arg)
{
	struct gc_job *j;

	for (size_t i = 0; i < n; i++)
		if (!grow_kind_valid(rows[i].kind)) {
			free(rows);
			return -FM_E_INVALID;
		}
	if (n == 0 && done == NULL) {
		free(rows);
		return 1;
	}
	j = xcalloc(1, sizeof(*j));
	*j = (struct gc_job){rows, n, done, arg, NULL};
	pthread_mutex_lock(&s->gc_lock);
	if (s->gc_stop) {
		pthread_mutex_unlock(&s->gc_lock);
		jobs_free(j);
		return -FM_E_SHUTDOWN;
	}
	if (s->gc_tail != NULL)
		s->gc_tail->next = j;
	else
		s->gc_head = j;
	s->gc_tail = j;
	pthread_cond_signal(&s->gc_cond);
	pthread_mutex_unlock(&s->gc_lock);
	return 0;
}

void
fm_state_stop(struct fm_state *s, int commit)
{
	struct gc_job *left;

	if (!s->gc_started)
		return;
	pthread_mutex_lock(&s->gc_lock);
	s->gc_stop = commit ? GC_DRAIN : GC_DROP;
	pthread_cond_signal(&s->gc_cond);
	pthread_mutex_unlock(&s->gc_lock);
	pthread_join(s->gc_thread, NULL);
	s->gc_started = 0;
	left = s->gc_head;
	s->gc_head = s->gc_tail = NULL;
	jobs_fire(left, -FM_E_SHUTDOWN);
	jobs_free(left);
	retry_clear(s);
}

static void
row_names(sqlite3_stmt *st, struct fm_grow *g)
{
	const unsigned char *t = sqlite3_column_text(st, 0);
	const unsigned char *grp = sqlite3_column_text(st, 1);

	if (t != NULL)
		strncpy(g->topic, (const char *)t, FM_REC_MAX_TOPIC);
	if (grp != NULL)
		strncpy(g->group, (const char *)grp, FM_REC_MAX_TOPIC);
	g->queue_id = (uint32_t)sqlite3_column_int64(st, 2);
	g->offset = (uint64_t)sqlite3_column_int64(st, 3);
}

/* One row of a group list statement; arg points at its fm_grow_kind. */
static void
row_grow(sqlite3_stmt *st, void *elem, void *arg)
{
	struct fm_grow *g = elem;

	g->kind = *(const enum fm_grow_kind *)arg;
	row_names(st, g);
	if (g->kind == FM_GROW_OFFSET) {
		g->next = (uint64_t)sqlite3_column_int64(st, 4);
	} else {
		g->nonce = (uint64_t)sqlite3_column_int64(st, 4);
		g->reconsume = (int32_t)sqlite3_column_int64(st, 5);
		g->visible_at = sqlite3_column_int64(st, 6);
	}
}

/* Append the rows of one list statement to *v. */
static int
group_list(sqlite3_stmt *st, enum fm_grow_kind kind, struct fm_grow **v,
    size_t *len, size_t *cap)
{
	return fm_sql_rows(
	    st, sizeof(**v), row_grow, &kind, (void **)v, len, cap);
}

int
fm_state_group_load(struct fm_state *s, struct fm_grow **out, size_t *n)
{
	struct fm_grow *v = NULL;
	size_t len = 0, cap = 0;
	int err;

	pthread_mutex_lock(&s->lock);
	err = group_list(s->st[S_GOFF_LIST], FM_GROW_OFFSET, &v, &len, &cap);
	if (err == 0)
		err = group_list(
		    s->st[S_GRCPT_LIST], FM_GROW_RECEIPT, &v, &len, &cap);
	pthread_mutex_unlock(&s->lock);
	if (err != 0)
		goto fail;
	*out = v;
	*n = len;
	return 0;
fail:
	free(v);
	return err;
}

/* ---- the timer queue's delivery marks ---- */

static int
timer_low(struct fm_state *s, uint64_t *low)
{
	sqlite3_stmt *st = s->st[S_TIMER_LOW_GET];
	int rc = sqlite3_step(st);

	*low = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fm_sql_err(rc);
}

static void
row_u64(sqlite3_stmt *st, void *elem, void *arg)
{
	*(uint64_t *)elem = (uint64_t)sqlite3_column_int64(st, 0);
}

static int
timer_done_list(struct fm_state *s, uint64_t **out, size_t *n)
{
	size_t cap = 0;
	int err = fm_sql_rows(s->st[S_TIMER_DONE_LIST], sizeof(**out), row_u64,
	    NULL, (void **)out, n, &cap);

	if (err != 0) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return err;
}

int
fm_state_timer_load(
    struct fm_state *s, uint64_t *low, uint64_t **delivered, size_t *n)
{
	int err;

	*delivered = NULL;
	*n = 0;
	pthread_mutex_lock(&s->lock);
	err = timer_low(s, low);
	if (err == 0)
		err = timer_done_list(s, delivered, n);
	pthread_mutex_unlock(&s->lock);
	return err;
}

int
fm_state_timer_mark(
    struct fm_state *s, const uint64_t *delivered, size_t n, uint64_t low)
{
	sqlite3_stmt *add = s->st[S_TIMER_DONE_ADD];
	sqlite3_stmt *put = s->st[S_TIMER_LOW_PUT];
	sqlite3_stmt *prune = s->st[S_TIMER_DONE_PRUNE];
	int err;

	pthread_mutex_lock(&s->lock);
	err = fm_sql_run(s->st[S_BEGIN]);
	if (err != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (delivered[i] < low)
			continue;
		sqlite3_bind_int64(add, 1, (sqlite3_int64)delivered[i]);
		if ((err = fm_sql_run(add)) != 0)
			goto fail;
	}
	sqlite3_bind_int64(put, 1, (sqlite3_int64)low);
	if ((err = fm_sql_run(put)) != 0)
		goto fail;
	sqlite3_bind_int64(prune, 1, (sqlite3_int64)low);
	if ((err = fm_sql_run(prune)) != 0)
		goto fail;
	err = fm_sql_run(s->st[S_COMMIT]);
	if (err != 0)
		goto fail;
out:
	pthread_mutex_unlock(&s->lock);
	return err;
fail:
	fm_sql_run(s->st[S_ROLLBACK]);
	pthread_mutex_unlock(&s->lock);
	return err;
}
