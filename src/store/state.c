/*
 * state.c - state.db (see state.h): topics and topic tombstones.
 *
 * One connection, every statement prepared once at open, one mutex. Each
 * public function is one statement or one explicit transaction, so a
 * failure leaves the database as it was.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
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
    " WITHOUT ROWID\0";

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
};

struct fm_state {
	sqlite3 *db;
	sqlite3_stmt *st[S__COUNT];
	pthread_mutex_t lock; /* guards db and st */
};

int
fm_state_open(const char *path, struct fm_state **out)
{
	struct fm_state *s = xcalloc(1, sizeof *s);
	int err;

	pthread_mutex_init(&s->lock, NULL);
	err = fm_sql_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	    state_setup, &s->db);
	if (err != 0)
		goto fail;
	for (int i = 0; i < S__COUNT; i++) {
		err = fm_sql_prepare(s->db, state_sql[i], &s->st[i]);
		if (err != 0)
			goto fail;
	}
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
	for (int i = 0; i < S__COUNT; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close(s->db);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static void
row_topic(sqlite3_stmt *st, struct fm_topic_conf *tc)
{
	const unsigned char *name = sqlite3_column_text(st, 0);

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

int
fm_state_topic_get(
    struct fm_state *s, const char *name, struct fm_topic_conf *tc)
{
	sqlite3_stmt *st = s->st[S_TOPIC_GET];
	int rc, err;

	pthread_mutex_lock(&s->lock);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		row_topic(st, tc);
		err = 0;
	} else {
		err = rc == SQLITE_DONE ? -FM_E_NOT_FOUND : fm_sql_err(rc);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	pthread_mutex_unlock(&s->lock);
	return err;
}

int
fm_state_topic_list(struct fm_state *s, struct fm_topic_conf **out, size_t *n)
{
	sqlite3_stmt *st = s->st[S_TOPIC_LIST];
	struct fm_topic_conf *v = NULL;
	size_t len = 0, cap = 0;
	int rc, err;

	pthread_mutex_lock(&s->lock);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap ? cap * 2 : 16;
			v = xreallocarray(v, cap, sizeof *v);
		}
		row_topic(st, &v[len++]);
	}
	err = rc == SQLITE_DONE ? 0 : fm_sql_err(rc);
	sqlite3_reset(st);
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

int
fm_state_tombstones(struct fm_state *s, struct fm_tombstone **out, size_t *n)
{
	sqlite3_stmt *st = s->st[S_TOMB_LIST];
	struct fm_tombstone *v = NULL;
	size_t len = 0, cap = 0;
	int rc, err;

	pthread_mutex_lock(&s->lock);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);

		if (len == cap) {
			cap = cap ? cap * 2 : 16;
			v = xreallocarray(v, cap, sizeof *v);
		}
		memset(&v[len], 0, sizeof v[len]);
		if (t != NULL)
			strncpy(
			    v[len].topic, (const char *)t, FM_REC_MAX_TOPIC);
		v[len].log_offset = (uint64_t)sqlite3_column_int64(st, 1);
		len++;
	}
	err = rc == SQLITE_DONE ? 0 : fm_sql_err(rc);
	sqlite3_reset(st);
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
