/*
 * sql.h - the few SQLite helpers index.c and state.c share: opening a
 * database with its pragmas, running fixed statements, mapping SQLite
 * result codes to FM_E_* codes.
 *
 * Owns no state. SQL text lives only in the store's .c files, and every
 * statement that takes values is prepared and bound (never formatted).
 */
#ifndef FM_STORE_SQL_H
#define FM_STORE_SQL_H

#include <sqlite3.h>

/* Open path (created when flags allow) and run the NUL-separated,
 * double-NUL-terminated list of statements in setup (pragmas, schema).
 * *out is new (sqlite3_close). Returns 0 or a negative FM_E_* code,
 * logged with the path. */
int fm_sql_open(const char *path, int flags, const char *setup, sqlite3 **out);
/* Run one statement without parameters or results. */
int fm_sql_exec(sqlite3 *db, const char *sql);
/* Prepare a long-lived statement; logs the SQL on failure. */
int fm_sql_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out);
/* Step a prepared statement that returns no rows, then reset it and clear
 * its bindings. Returns 0 or a negative FM_E_* code. */
int fm_sql_run(sqlite3_stmt *st);
/* Fills one zeroed element from the current row of st. */
typedef void (*fm_sql_row_fn)(sqlite3_stmt *st, void *elem, void *arg);
/* Step st to its end, appending one element of size bytes per row to the
 * growing array *v (*len used, *cap allocated; new memory the caller
 * frees, also on error), then reset st. Returns 0 or a negative FM_E_*
 * code. */
int fm_sql_rows(sqlite3_stmt *st, size_t size, fm_sql_row_fn row, void *arg,
    void **v, size_t *len, size_t *cap);
/* Map an SQLite result code to 0 or a negative FM_E_* code. */
int fm_sql_err(int rc);

#endif
