/*
 * fixture.h - what the broker-level unit tests share: a broker over a
 * store in a fresh temporary directory, with settings small enough for
 * tests (64 KiB segments, 4 KiB messages).
 */
#ifndef FM_TESTS_FIXTURE_H
#define FM_TESTS_FIXTURE_H

#include <pthread.h>

#include "base/config.h"
#include "broker/broker.h"

struct fx {
	char dir[256]; /* the store's root, removed by fx_free */
	struct fm_config cfg; /* adjust before fx_open */
	struct fm_broker *b; /* NULL while closed */
};

/* A new temp dir named after prefix under $TMPDIR (or /tmp) and the test
 * configuration for it. The broker is not open yet: change cfg, then
 * fx_open. Fails the test on error. */
struct fx *fx_new(const char *prefix);
/* Open the broker on cfg; fails the test with the cause on error. */
void fx_open(struct fx *f);
/* Close the broker if open, remove the directory, free f. */
void fx_free(struct fx *f);

/* Records the wakes of broker watches (fm_wake_fn) for a test to wait on. */
struct fx_wake {
	pthread_mutex_t m;
	pthread_cond_t c; /* monotonic */
	int count; /* wakes so far */
	enum fm_wake why; /* of the last one */
};

void fx_wake_init(struct fx_wake *w);
void fx_wake_destroy(struct fx_wake *w);
/* The fm_wake_fn: arg is a struct fx_wake. */
void fx_wake_cb(void *arg, enum fm_wake why);
/* The last wake's reason once one came, or -1 when none came within ms. */
int fx_wake_wait(struct fx_wake *w, int ms);

/* state.db's syncs, seen through a VFS over SQLite's default one:
 * fx_state_vfs installs it as the default (before the databases of a
 * test are opened; it stays for the process); fx_state_syncs counts the
 * syncs of state.db and its WAL so far; while fx_state_fail_syncs(1) is
 * in force they fail with SQLITE_IOERR_FSYNC (as an fdatasync error
 * would) without syncing. */
void fx_state_vfs(void);
int fx_state_syncs(void);
void fx_state_fail_syncs(int fail);

#endif
