/*
 * index.c - index.db (see index.h).
 *
 * cq is an ordinary rowid table with its primary key as a separate index:
 * a chunk row carries up to 20 KiB of entries, and SQLite's WITHOUT ROWID
 * tables suit rows far smaller than a page. keys rows are small and read
 * by (topic, key) ranges, so keys is WITHOUT ROWID, clustered that way.
 *
 * Invariant: the writer changes rows only inside fm_index_begin/commit, and
 * every commit that covers new log records also moves meta.applied, so
 * applied always describes exactly the committed rows.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/xmalloc.h"
#include "store/index.h"
#include "store/sql.h"

/* Pages between automatic WAL checkpoints, and the writer's page cache
 * (KiB): the batch sizes measured fastest in FACTS.md. */
static const char index_setup[] =
    "PRAGMA journal_mode=WAL\0"
    "PRAGMA synchronous=NORMAL\0"
    "PRAGMA cache_size=-65536\0"
    "PRAGMA wal_autocheckpoint=20000\0"
    "CREATE TABLE IF NOT EXISTS cq(topic TEXT NOT NULL,"
    " queue INTEGER NOT NULL, chunk INTEGER NOT NULL,"
    " first_ts INTEGER NOT NULL, last_ts INTEGER NOT NULL,"
    " min_log INTEGER NOT NULL, entries BLOB NOT NULL,"
    " PRIMARY KEY(topic, queue, chunk))\0"
    "CREATE TABLE IF NOT EXISTS keys(topic TEXT NOT NULL,"
    " key TEXT NOT NULL, log_offset INTEGER NOT NULL,"
    " PRIMARY KEY(topic, key, log_offset)) WITHOUT ROWID\0"
    "CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY,"
    " value INTEGER NOT NULL)\0";

static const char reader_setup[] = "PRAGMA cache_size=-8192\0"
                                   "PRAGMA query_only=1\0";

enum {
	W_BEGIN,
	W_COMMIT,
	W_ROLLBACK,
	W_PUT_CHUNK,
	W_PUT_KEY,
	W_SET_APPLIED,
	W_GET_APPLIED,
	W_DEL_TOPIC_CQ,
	W_DEL_TOPIC_KEYS,
	W_DEL_TOMB_CQ,
	W_DEL_TOMB_KEYS,
	W_DEL_CHUNKS_BELOW,
	W_DEL_KEYS_BELOW,
	W_WIPE_CQ,
	W_WIPE_KEYS,
	W_WIPE_META,
	W_QUEUES,
	W__COUNT
};

static const char *const writer_sql[W__COUNT] = {
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    [W_PUT_CHUNK] = "INSERT OR REPLACE INTO cq(topic, queue, chunk,"
                    " first_ts, last_ts, min_log, entries)"
                    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [W_PUT_KEY] = "INSERT OR IGNORE INTO keys(topic, key, log_offset)"
                  " VALUES(?1, ?2, ?3)",
    [W_SET_APPLIED] = "INSERT OR REPLACE INTO meta(name, value)"
                      " VALUES('applied', ?1)",
    [W_GET_APPLIED] = "SELECT value FROM meta WHERE name = 'applied'",
    [W_DEL_TOPIC_CQ] = "DELETE FROM cq WHERE topic = ?1",
    [W_DEL_TOPIC_KEYS] = "DELETE FROM keys WHERE topic = ?1",
    [W_DEL_TOMB_CQ] = "DELETE FROM cq WHERE topic = ?1 AND min_log < ?2",
    [W_DEL_TOMB_KEYS] = "DELETE FROM keys WHERE topic = ?1"
                        " AND log_offset < ?2",
    [W_DEL_CHUNKS_BELOW] = "DELETE FROM cq WHERE topic = ?1"
                           " AND queue = ?2 AND chunk < ?3",
    [W_DEL_KEYS_BELOW] = "DELETE FROM keys WHERE log_offset < ?1",
    [W_WIPE_CQ] = "DELETE FROM cq",
    [W_WIPE_KEYS] = "DELETE FROM keys",
    [W_WIPE_META] = "DELETE FROM meta",
    [W_QUEUES] = "SELECT topic, queue, MIN(chunk), MAX(chunk) FROM cq"
                 " GROUP BY topic, queue",
};

enum { R_CHUNK, R_CHUNK_AT_TS, R_FIND_KEY, R__COUNT };

static const char *const reader_sql[R__COUNT] = {
    [R_CHUNK] = "SELECT chunk, first_ts, last_ts, min_log, entries FROM cq"
                " WHERE topic = ?1 AND queue = ?2 AND chunk = ?3",
    [R_CHUNK_AT_TS] = "SELECT chunk, first_ts, last_ts, min_log, entries"
                      " FROM cq WHERE topic = ?1 AND queue = ?2"
                      " AND last_ts >= ?3 ORDER BY chunk LIMIT 1",
    [R_FIND_KEY] = "SELECT log_offset FROM keys WHERE topic = ?1"
                   " AND key = ?2 AND log_offset >= ?3 AND log_offset < ?4"
                   " ORDER BY log_offset DESC LIMIT ?5",
};

struct reader {
	sqlite3 *db;
	sqlite3_stmt *st[R__COUNT];
	int busy; /* handed out by get_reader */
};

struct fm_index {
	sqlite3 *db; /* the writer */
	sqlite3_stmt *st[W__COUNT];
	struct reader *readers; /* owned, nreaders */
	int nreaders;
	pthread_mutex_t lock; /* guards readers[].busy */
	pthread_cond_t freed; /* a reader was given back */
};

static int
open_reader(const char *path, struct reader *r)
{
	int err =
	    fm_sql_open(path, SQLITE_OPEN_READWRITE, reader_setup, &r->db);

	for (int i = 0; err == 0 && i < R__COUNT; i++)
		err = fm_sql_prepare(r->db, reader_sql[i], &r->st[i]);
	return err;
}

static void
close_reader(struct reader *r)
{
	for (int i = 0; i < R__COUNT; i++)
		sqlite3_finalize(r->st[i]);
	sqlite3_close(r->db);
}

int
fm_index_open(const char *path, int readers, struct fm_index **out)
{
	struct fm_index *ix = xcalloc(1, sizeof *ix);
	int err;

	pthread_mutex_init(&ix->lock, NULL);
	pthread_cond_init(&ix->freed, NULL);
	ix->readers =
	    xcalloc((size_t)(readers > 0 ? readers : 1), sizeof *ix->readers);
	err = fm_sql_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	    index_setup, &ix->db);
	for (int i = 0; err == 0 && i < W__COUNT; i++)
		err = fm_sql_prepare(ix->db, writer_sql[i], &ix->st[i]);
	for (; err == 0 && ix->nreaders < (readers > 0 ? readers : 1);
	     ix->nreaders++)
		err = open_reader(path, &ix->readers[ix->nreaders]);
	if (err != 0)
		goto fail;
	*out = ix;
	return 0;
fail:
	/* the reader that failed half-open is closed too */
	if (ix->readers[ix->nreaders].db != NULL)
		ix->nreaders++;
	fm_index_close(ix);
	return err;
}

void
fm_index_close(struct fm_index *ix)
{
	if (ix == NULL)
		return;
	for (int i = 0; i < ix->nreaders; i++)
		close_reader(&ix->readers[i]);
	for (int i = 0; i < W__COUNT; i++)
		sqlite3_finalize(ix->st[i]);
	sqlite3_close(ix->db);
	free(ix->readers);
	pthread_cond_destroy(&ix->freed);
	pthread_mutex_destroy(&ix->lock);
	free(ix);
}

int
fm_index_begin(struct fm_index *ix)
{
	return fm_sql_run(ix->st[W_BEGIN]);
}

int
fm_index_commit(struct fm_index *ix)
{
	return fm_sql_run(ix->st[W_COMMIT]);
}

void
fm_index_rollback(struct fm_index *ix)
{
	(void)fm_sql_run(ix->st[W_ROLLBACK]);
}

int
fm_index_put_chunk(struct fm_index *ix, const struct fm_index_chunk *c)
{
	sqlite3_stmt *st = ix->st[W_PUT_CHUNK];

	sqlite3_bind_text(st, 1, c->topic, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, c->queue_id);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)c->chunk);
	sqlite3_bind_int64(st, 4, c->first_ts);
	sqlite3_bind_int64(st, 5, c->last_ts);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)c->min_log);
	sqlite3_bind_blob64(st, 7, c->entries, c->len, SQLITE_STATIC);
	return fm_sql_run(st);
}

int
fm_index_put_key(struct fm_index *ix, const char *topic, const char *key,
    uint64_t log_offset)
{
	sqlite3_stmt *st = ix->st[W_PUT_KEY];

	sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)log_offset);
	return fm_sql_run(st);
}

int
fm_index_set_applied(struct fm_index *ix, uint64_t log_offset)
{
	sqlite3_stmt *st = ix->st[W_SET_APPLIED];

	sqlite3_bind_int64(st, 1, (sqlite3_int64)log_offset);
	return fm_sql_run(st);
}

int
fm_index_applied(struct fm_index *ix, uint64_t *log_offset, int *present)
{
	sqlite3_stmt *st = ix->st[W_GET_APPLIED];
	int rc = sqlite3_step(st);

	*present = rc == SQLITE_ROW;
	*log_offset = *present ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fm_sql_err(rc);
}

static int
run_topic(sqlite3_stmt *st, const char *topic)
{
	sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
	return fm_sql_run(st);
}

static int
run_topic_offset(sqlite3_stmt *st, const char *topic, uint64_t off)
{
	sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)off);
	return fm_sql_run(st);
}

int
fm_index_delete_topic(struct fm_index *ix, const char *topic)
{
	int err = run_topic(ix->st[W_DEL_TOPIC_CQ], topic);

	return err != 0 ? err : run_topic(ix->st[W_DEL_TOPIC_KEYS], topic);
}

int
fm_index_delete_tombstoned(
    struct fm_index *ix, const char *topic, uint64_t log_offset)
{
	int err = run_topic_offset(ix->st[W_DEL_TOMB_CQ], topic, log_offset);

	if (err != 0)
		return err;
	return run_topic_offset(ix->st[W_DEL_TOMB_KEYS], topic, log_offset);
}

int
fm_index_delete_chunks_below(
    struct fm_index *ix, const char *topic, uint32_t queue_id, uint64_t chunk)
{
	sqlite3_stmt *st = ix->st[W_DEL_CHUNKS_BELOW];

	sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, queue_id);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)chunk);
	return fm_sql_run(st);
}

int
fm_index_delete_keys_below(struct fm_index *ix, uint64_t log_offset)
{
	sqlite3_stmt *st = ix->st[W_DEL_KEYS_BELOW];

	sqlite3_bind_int64(st, 1, (sqlite3_int64)log_offset);
	return fm_sql_run(st);
}

int
fm_index_wipe(struct fm_index *ix)
{
	int err = fm_sql_run(ix->st[W_WIPE_CQ]);

	if (err == 0)
		err = fm_sql_run(ix->st[W_WIPE_KEYS]);
	if (err == 0)
		err = fm_sql_run(ix->st[W_WIPE_META]);
	return err;
}

int
fm_index_queues(struct fm_index *ix,
    int (*fn)(void *arg, const char *topic, uint32_t queue_id,
        uint64_t first_chunk, uint64_t last_chunk),
    void *arg)
{
	sqlite3_stmt *st = ix->st[W_QUEUES];
	int rc = SQLITE_DONE, err = 0;

	while (err == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);

		err = fn(arg, t ? (const char *)t : "",
		    (uint32_t)sqlite3_column_int64(st, 1),
		    (uint64_t)sqlite3_column_int64(st, 2),
		    (uint64_t)sqlite3_column_int64(st, 3));
	}
	if (err == 0 && rc != SQLITE_DONE)
		err = fm_sql_err(rc);
	sqlite3_reset(st);
	return err;
}

static struct reader *
get_reader(struct fm_index *ix)
{
	struct reader *r = NULL;

	pthread_mutex_lock(&ix->lock);
	for (;;) {
		for (int i = 0; r == NULL && i < ix->nreaders; i++)
			if (!ix->readers[i].busy)
				r = &ix->readers[i];
		if (r != NULL)
			break;
		pthread_cond_wait(&ix->freed, &ix->lock);
	}
	r->busy = 1;
	pthread_mutex_unlock(&ix->lock);
	return r;
}

static void
put_reader(struct fm_index *ix, struct reader *r, sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	pthread_mutex_lock(&ix->lock);
	r->busy = 0;
	pthread_cond_signal(&ix->freed);
	pthread_mutex_unlock(&ix->lock);
}

/* Step a chunk query (columns chunk, first_ts, last_ts, min_log, entries)
 * and copy its row out. */
static int
chunk_row(sqlite3_stmt *st, struct fm_buf *blob, struct fm_index_chunk *c)
{
	int rc = sqlite3_step(st);
	const void *p;
	int n;

	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? -FM_E_NOT_FOUND : fm_sql_err(rc);
	memset(c, 0, sizeof *c);
	c->chunk = (uint64_t)sqlite3_column_int64(st, 0);
	c->first_ts = sqlite3_column_int64(st, 1);
	c->last_ts = sqlite3_column_int64(st, 2);
	c->min_log = (uint64_t)sqlite3_column_int64(st, 3);
	p = sqlite3_column_blob(st, 4);
	n = sqlite3_column_bytes(st, 4);
	fm_buf_reset(blob);
	if (n > 0)
		fm_buf_add(blob, p, (size_t)n);
	c->entries = (const unsigned char *)blob->data;
	c->len = blob->len;
	return 0;
}

int
fm_index_read_chunk(struct fm_index *ix, const char *topic, uint32_t queue_id,
    uint64_t chunk, struct fm_buf *blob, struct fm_index_chunk *c)
{
	struct reader *r = get_reader(ix);
	sqlite3_stmt *st = r->st[R_CHUNK];
	int err;

	sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, queue_id);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)chunk);
	err = chunk_row(st, blob, c);
	put_reader(ix, r, st);
	return err;
}

int
fm_index_chunk_at_ts(struct fm_index *ix, const char *topic, uint32_t queue_id,
    int64_t ts, struct fm_buf *blob, struct fm_index_chunk *c)
{
	struct reader *r = get_reader(ix);
	sqlite3_stmt *st = r->st[R_CHUNK_AT_TS];
	int err;

	sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, queue_id);
	sqlite3_bind_int64(st, 3, ts);
	err = chunk_row(st, blob, c);
	put_reader(ix, r, st);
	return err;
}

int
fm_index_find_key(struct fm_index *ix, const char *topic, const char *key,
    uint64_t lo, uint64_t hi, uint64_t *out, size_t max, size_t *n)
{
	struct reader *r = get_reader(ix);
	sqlite3_stmt *st = r->st[R_FIND_KEY];
	int rc = SQLITE_DONE, err;

	*n = 0;
	sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)lo);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)hi);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)max);
	while (*n < max && (rc = sqlite3_step(st)) == SQLITE_ROW)
		out[(*n)++] = (uint64_t)sqlite3_column_int64(st, 0);
	err = *n == max || rc == SQLITE_DONE ? 0 : fm_sql_err(rc);
	put_reader(ix, r, st);
	return err;
}
