/*
 * fixture.c - the broker-level tests' shared fixture (see fixture.h).
 */
#include "config.h" /* first: it defines _GNU_SOURCE (nftw) */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

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
