/*
 * sql.c - shared SQLite helpers (see sql.h). Errors are logged here, once,
 * with SQLite's own message, so callers only pass codes up.
 */
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "store/sql.h"

#define BUSY_TIMEOUT_MS 5000

int
fm_sql_err(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_NOMEM:
		return -FM_E_NOMEM;
	case SQLITE_FULL:
		return -FM_E_NOSPC;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -FM_E_CORRUPT;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -FM_E_BUSY;
	case SQLITE_READONLY:
	case SQLITE_PERM:
		return -FM_E_NOT_WRITABLE;
	default:
		return -FM_E_IO;
	}
}

int
fm_sql_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		fm_error("sqlite: %s: %s", sql, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
	}
	return fm_sql_err(rc);
}

int
fm_sql_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out)
{
	int rc = sqlite3_prepare_v3(
	    db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);

	if (rc != SQLITE_OK)
		fm_error("sqlite: prepare %s: %s", sql, sqlite3_errmsg(db));
	return fm_sql_err(rc);
}

int
fm_sql_open(const char *path, int flags, const char *setup, sqlite3 **out)
{
	sqlite3 *db = NULL;
	int rc, err;

	rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		fm_error("sqlite: open %s: %s", path,
		    db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		err = fm_sql_err(rc);
		goto fail;
	}
	sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	for (const char *s = setup; s != NULL && *s != '\0';
	     s += strlen(s) + 1) {
		err = fm_sql_exec(db, s);
		if (err != 0)
			goto fail;
	}
	*out = db;
	return 0;
fail:
	sqlite3_close(db);
	return err != 0 ? err : -FM_E_IO;
}

int
fm_sql_run(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : fm_sql_err(rc);
}

int
fm_sql_rows(sqlite3_stmt *st, size_t size, fm_sql_row_fn row, void *arg,
    void **v, size_t *len, size_t *cap)
{
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char *elem;

		if (*len == *cap) {
			*cap = *cap ? *cap * 2 : 16;
			*v = xreallocarray(*v, *cap, size);
		}
		elem = (char *)*v + (*len)++ * size;
		memset(elem, 0, size);
		row(st, elem, arg);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : fm_sql_err(rc);
}
