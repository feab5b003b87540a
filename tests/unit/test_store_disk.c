/*
 * test_store_disk.c - the disk usage guard. fm_os_statvfs is wrapped at
 * link time (-Wl,--wrap=fm_os_statvfs) to report a full or an empty file
 * system: above disk_warning_ratio appends get -FM_E_DISK_FULL while reads
 * keep working, and once space returns appends succeed without a reopen.
 * A full disk also lifts the timer queue's retention floor: expired
 * segments go, pending timer records with them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/err.h"
#include "store/os.h"
#include "store/store.h"

int __wrap_fm_os_statvfs(const char *path, struct statvfs *sv);

static volatile int disk_full; /* what the fake file system reports */

int
__wrap_fm_os_statvfs(const char *path, struct statvfs *sv)
{
	memset(sv, 0, sizeof *sv);
	sv->f_blocks = 1000;
	sv->f_bavail = disk_full ? 10 : 900;
	sv->f_bfree = sv->f_bavail;
	return 0;
}

static void
mkrec(struct fm_record *r)
{
	memset(r, 0, sizeof *r);
	r->topic = "t";
	r->topic_len = 1;
	r->body = "b";
	r->body_len = 1;
}

static void
test_disk_full(void **state)
{
	char dir[64], cmd[128];
	const char *tmp = getenv("TMPDIR");
	struct fm_store_options opt = {0};
	struct fm_store_stats ss;
	struct fm_store *st;
	struct fm_record r;
	struct fm_cq_entry e[4];
	size_t n;

	snprintf(dir, sizeof dir, "%s/fmdisk.XXXXXX", tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(dir));
	opt.root = dir;
	opt.segment_size = 64 * 1024;
	opt.sync_flush = 1;
	opt.flush_interval_ms = 20;
	opt.disk_warning_ratio = 0.9;
	opt.housekeeping_ms = 20;
	assert_int_equal(fm_store_open(&opt, &st), 0);
	mkrec(&r);
	assert_int_equal(fm_store_append(st, &r, 1), 0);

	/* the housekeeping thread notices on its own */
	disk_full = 1;
	for (int i = 0; i < 200; i++) {
		fm_store_stats(st, &ss);
		if (!ss.writable)
			break;
		usleep(10000);
	}
	assert_int_equal(ss.writable, 0);
	assert_true(ss.disk_used_ratio > 0.98);
	mkrec(&r);
	assert_int_equal(fm_store_append(st, &r, 1), -FM_E_DISK_FULL);
	assert_int_equal(fm_store_cq_read(st, "t", 0, 0, e, 4, &n), 0);
	assert_int_equal(n, 1);

	disk_full = 0;
	fm_store_housekeep(st, fm_now_ms());
	fm_store_stats(st, &ss);
	assert_int_equal(ss.writable, 1);
	mkrec(&r);
	assert_int_equal(fm_store_append(st, &r, 1), 0);
	assert_true(r.queue_offset == 1);
	fm_store_close(st);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	(void)state;
}

/* Housekeeping as if 1000 hours had passed, until nothing more goes. */
static uint64_t
expire_all(struct fm_store *st)
{
	struct fm_store_stats ss;
	uint64_t prev;

	do {
		fm_store_stats(st, &ss);
		prev = ss.min_offset;
		fm_store_housekeep(st, fm_now_ms() + 1000ll * 3600 * 1000);
		fm_store_stats(st, &ss);
	} while (ss.min_offset != prev);
	return ss.min_offset;
}

static void
test_full_disk_lifts_floor(void **state)
{
	char dir[64], cmd[128], body[1024];
	const char *tmp = getenv("TMPDIR");
	struct fm_store_options opt = {0};
	struct fm_store *st;
	struct fm_record r;

	snprintf(dir, sizeof dir, "%s/fmdisk.XXXXXX", tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(dir));
	opt.root = dir;
	opt.segment_size = 64 * 1024;
	opt.flush_interval_ms = 20;
	opt.disk_warning_ratio = 0.9;
	opt.housekeeping_ms = 3600000;
	opt.timer_topic = "tq";
	disk_full = 0;
	assert_int_equal(fm_store_open(&opt, &st), 0);
	mkrec(&r);
	r.topic = "tq";
	r.topic_len = 2;
	assert_int_equal(fm_store_append(st, &r, 1), 0);
	memset(body, 'x', sizeof body);
	for (int i = 0; i < 300; i++) {
		mkrec(&r);
		r.body = body;
		r.body_len = sizeof body;
		assert_int_equal(fm_store_append(st, &r, 1), 0);
	}
	assert_int_equal(expire_all(st), 0);
	disk_full = 1;
	assert_true(expire_all(st) > 0);
	disk_full = 0;
	fm_store_close(st);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	(void)state;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_disk_full),
	    cmocka_unit_test(test_full_disk_lifts_floor),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
