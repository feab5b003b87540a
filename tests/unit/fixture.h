/*
 * fixture.h - what the broker-level unit tests share: a broker over a
 * store in a fresh temporary directory, with settings small enough for
 * tests (64 KiB segments, 4 KiB messages).
 */
#ifndef FM_TESTS_FIXTURE_H
#define FM_TESTS_FIXTURE_H

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

#endif
