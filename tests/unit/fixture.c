/*
 * fixture.c - the broker-level tests' shared fixture (see fixture.h).
 *
 * The state.db VFS wraps the default VFS's open: files named state.db*
 * get a copy of their method table whose xSync counts and can fail;
 * everything else is the default VFS's own.
 */
#include "config.h" /* first: it defines _GNU_SOURCE (nftw) */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <ftw.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "base/clock.h"
#include "base/xmalloc.h"
#include "fixture.h"

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

struct fx *
fx_new(const char *prefix)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	snprintf(f->dir, sizeof(f->dir), "%s/%sXXXXXX",
	    tmp && *tmp ? tmp : "/tmp", prefix);
	assert_non_null(mkdtemp(f->dir));
	fm_config_defaults(&f->cfg);
	free(f->cfg.store_path_root_dir);
	f->cfg.store_path_root_dir = xstrdup(f->dir);
	f->cfg.mapped_file_size_commit_log = 64u << 10;
	f->cfg.max_message_size = 4096;
	f->cfg.listen_port = 18080;
	return f;
}

void
fx_open(struct fx *f)
{
	char *cause = NULL;

	if (fm_broker_open(&f->cfg, &f->b, &cause) < 0)
		fail_msg("fm_broker_open: %s", cause ? cause : "?");
	free(cause);
}

void
fx_free(struct fx *f)
{
	fm_broker_close(f->b);
	fm_config_free(&f->cfg);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
}

void
fx_wake_init(struct fx_wake *w)
{
	pthread_mutex_init(&w->m, NULL);
	fm_cond_init_monotonic(&w->c);
	w->count = 0;
}

void
fx_wake_destroy(struct fx_wake *w)
{
	pthread_cond_destroy(&w->c);
	pthread_mutex_destroy(&w->m);
}

void
fx_wake_cb(void *arg, enum fm_wake why)
{
	struct fx_wake *w = arg;

	pthread_mutex_lock(&w->m);
	w->count++;
	w->why = why;
	pthread_cond_broadcast(&w->c);
	pthread_mutex_unlock(&w->m);
}

int
fx_wake_wait(struct fx_wake *w, int ms)
{
	struct timespec ts;
	int why = -1;

	fm_deadline_ts(&ts, ms);
	pthread_mutex_lock(&w->m);
	while (w->count == 0 && pthread_cond_timedwait(&w->c, &w->m, &ts) == 0)
		;
	if (w->count > 0)
		why = (int)w->why;
	pthread_mutex_unlock(&w->m);
	return why;
}

/* ---- state.db's syncs ---- */

#define IO_KINDS 4 /* method tables of SQLite's files (db, WAL, ...) */

static sqlite3_vfs *real_vfs;
static sqlite3_vfs fault_vfs;
static pthread_mutex_t io_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	const sqlite3_io_methods *real;
	sqlite3_io_methods fault; /* real with fault_sync */
} io[IO_KINDS];
static atomic_int state_syncs;
static atomic_int state_fail;

static int
fault_sync(sqlite3_file *file, int flags)
{
	int k = 0;

	while (file->pMethods != &io[k].fault)
		k++;
	atomic_fetch_add(&state_syncs, 1);
	if (atomic_load(&state_fail))
		return SQLITE_IOERR_FSYNC;
	return io[k].real->xSync(file, flags);
}

/* The copy of methods with fault_sync; NULL when the table is full. */
static const sqlite3_io_methods *
fault_methods(const sqlite3_io_methods *methods)
{
	const sqlite3_io_methods *out = NULL;

	pthread_mutex_lock(&io_lock);
	for (int k = 0; k < IO_KINDS && out == NULL; k++) {
		if (io[k].real == NULL) {
			io[k].real = methods;
			io[k].fault = *methods;
			io[k].fault.xSync = fault_sync;
		}
		if (io[k].real == methods)
			out = &io[k].fault;
	}
	pthread_mutex_unlock(&io_lock);
	return out;
}

static int
fault_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file,
    int flags, int *out_flags)
{
	int rc = real_vfs->xOpen(real_vfs, name, file, flags, out_flags);
	const sqlite3_io_methods *m;

	(void)vfs;
	if (rc != SQLITE_OK || file->pMethods == NULL || name == NULL ||
	    strstr(name, "/state.db") == NULL)
		return rc;
	/* past IO_KINDS tables a file is left alone: its syncs go uncounted */
	if ((m = fault_methods(file->pMethods)) != NULL)
		file->pMethods = m;
	return rc;
}

void
fx_state_vfs(void)
{
	if (real_vfs != NULL)
		return;
	real_vfs = sqlite3_vfs_find(NULL);
	assert_non_null(real_vfs);
	fault_vfs = *real_vfs;
	fault_vfs.zName = "fx_state";
	fault_vfs.pNext = NULL;
	fault_vfs.xOpen = fault_open;
	assert_int_equal(sqlite3_vfs_register(&fault_vfs, 1), SQLITE_OK);
}

int
fx_state_syncs(void)
{
	return atomic_load(&state_syncs);
}

void
fx_state_fail_syncs(int fail)
{
	atomic_store(&state_fail, fail);
}
