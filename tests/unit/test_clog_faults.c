/*
 * test_clog_faults.c - the commit log under injected OS faults.
 *
 * Linked with -Wl,--wrap=fm_os_pwrite,--wrap=fm_os_fdatasync,
 * --wrap=fm_os_fallocate: the __wrap_ functions below stand between
 * commitlog.c and os.c and decide per call to pass through, write short,
 * or fail with ENOSPC/EIO/EINTR, as the current case arms them.
 *
 * What every case proves in the end: after the fault, a restart
 * (recovery) finds each acknowledged record (append and, in SYNC_FLUSH,
 * wait_durable returned 0) exactly once, and not one malformed record.
 *
 * Owns only its temporary directories and the fault switches.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "store/commitlog.h"
#include "store/os.h"

#define SEG (64u * 1024u)
#define MAX_IDS 4096

/* Fault switches; read by the flusher thread too, hence atomics. */
static struct {
	int short_max; /* > 0: a pwrite writes at most this many bytes */
	int eintr_every; /* > 0: every nth pwrite fails with EINTR */
	int pwrite_errno; /* != 0: once budget is spent, pwrite fails */
	long budget; /* bytes pwrite may still write when armed */
	int fsync_errno; /* != 0: every fdatasync fails with it */
	int falloc_errno; /* != 0: every fallocate fails with it */
	int pwrite_calls; /* counters, to prove the fault was hit */
	int short_writes;
	int fsync_fails;
} fault;

#define GET(x) __atomic_load_n(&fault.x, __ATOMIC_SEQ_CST)
#define SET(x, v) __atomic_store_n(&fault.x, (v), __ATOMIC_SEQ_CST)
#define BUMP(x) __atomic_add_fetch(&fault.x, 1, __ATOMIC_SEQ_CST)

ssize_t __real_fm_os_pwrite(int fd, const void *buf, size_t count, off_t off);
int __real_fm_os_fdatasync(int fd);
int __real_fm_os_fallocate(int fd, off_t offset, off_t len);
ssize_t __wrap_fm_os_pwrite(int fd, const void *buf, size_t count, off_t off);
int __wrap_fm_os_fdatasync(int fd);
int __wrap_fm_os_fallocate(int fd, off_t offset, off_t len);

ssize_t
__wrap_fm_os_pwrite(int fd, const void *buf, size_t count, off_t off)
{
	int calls = BUMP(pwrite_calls);
	ssize_t n;

	if (GET(eintr_every) > 0 && calls % GET(eintr_every) == 0) {
		errno = EINTR;
		return -1;
	}
	if (GET(pwrite_errno) != 0) {
		long budget = GET(budget);
		if (budget <= 0) {
			errno = GET(pwrite_errno);
			return -1;
		}
		if (count > (size_t)budget)
			count = (size_t)budget;
		n = __real_fm_os_pwrite(fd, buf, count, off);
		if (n > 0)
			SET(budget, budget - n);
		return n;
	}
	if (GET(short_max) > 0 && count > (size_t)GET(short_max)) {
		count = (size_t)GET(short_max);
		BUMP(short_writes);
	}
	return __real_fm_os_pwrite(fd, buf, count, off);
}

int
__wrap_fm_os_fdatasync(int fd)
{
	if (GET(fsync_errno) != 0) {
		BUMP(fsync_fails);
		errno = GET(fsync_errno);
		return -1;
	}
	return __real_fm_os_fdatasync(fd);
}

int
__wrap_fm_os_fallocate(int fd, off_t offset, off_t len)
{
	if (GET(falloc_errno) != 0) {
		errno = GET(falloc_errno);
		return -1;
	}
	return __real_fm_os_fallocate(fd, offset, len);
}

struct fixture {
	char dir[256];
	struct fm_clog *log;
	int sync;
	uint32_t acked[MAX_IDS]; /* ids acknowledged to a producer */
	size_t nacked;
	unsigned char body[SEG];
};

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof *f);
	const char *tmp = getenv("TMPDIR");

	memset(&fault, 0, sizeof fault);
	snprintf(
	    f->dir, sizeof f->dir, "%s/fm-fault-XXXXXX", tmp ? tmp : "/tmp");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	struct dirent *de;
	char path[512];
	DIR *d;

	memset(&fault, 0, sizeof fault);
	if (f->log)
		fm_clog_close(f->log);
	d = opendir(f->dir);
	while (d && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", f->dir, de->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void
open_log(struct fixture *f, int sync)
{
	struct fm_clog_options o = {
	    .dir = f->dir,
	    .segment_size = SEG,
	    .sync_flush = sync,
	    .flush_interval_ms = 10,
	};

	f->sync = sync;
	f->log = NULL;
	assert_int_equal(fm_clog_open(&o, &f->log), 0);
}

static void
make_rec(unsigned char *body, struct fm_record *r, uint32_t id, size_t len)
{
	memset(r, 0, sizeof *r);
	r->topic = "faults";
	r->topic_len = 6;
	memcpy(body, &id, 4);
	for (size_t i = 4; i < len; i++)
		body[i] = (unsigned char)(id * 13 + i);
	r->body = body;
	r->body_len = (uint32_t)len;
}

/* Appends a batch of n records with ids id0.. of len body bytes each;
 * on full success (durable too in SYNC_FLUSH) records them as acked. */
static int
append_batch(struct fixture *f, uint32_t id0, size_t n, size_t len)
{
	struct fm_record recs[8];
	unsigned char *bodies = xmalloc(n * len);
	uint64_t end;
	int rc;

	assert_true(n <= 8 && len >= 4);
	for (size_t i = 0; i < n; i++)
		make_rec(bodies + i * len, &recs[i], id0 + (uint32_t)i, len);
	rc = fm_clog_append(f->log, recs, n, &end);
	if (rc == 0)
		rc = fm_clog_wait_durable(f->log, end);
	if (rc == 0)
		for (size_t i = 0; i < n; i++)
			f->acked[f->nacked++] = id0 + (uint32_t)i;
	free(bodies);
	return rc;
}

static int
append1(struct fixture *f, uint32_t id, size_t len)
{
	return append_batch(f, id, 1, len);
}

static uint32_t
check_body(const struct fm_record *r)
{
	const unsigned char *b = r->body;
	uint32_t id;

	assert_true(r->body_len >= 4);
	assert_memory_equal(r->topic, "faults", 6);
	memcpy(&id, b, 4);
	for (size_t i = 4; i < r->body_len; i++)
		if (b[i] != (unsigned char)(id * 13 + i))
			fail_msg("record %u: byte %zu differs", id, i);
	return id;
}

/* Scans the whole log: every record must decode and be whole, every
 * acked id must be there exactly once; ids not acked may appear (a write
 * that reached the page cache before its sync failed) but once at most,
 * and only those listed in maybe. */
static void
verify(struct fixture *f, const uint32_t *maybe, size_t nmaybe)
{
	static unsigned char count[MAX_IDS * 2];
	struct fm_buf buf = FM_BUF_INIT;
	struct fm_record r;
	uint64_t off = fm_clog_min_offset(f->log), next;
	int rc;

	memset(count, 0, sizeof count);
	while ((rc = fm_clog_read_next(f->log, off, &buf, &r, &next)) == 0) {
		uint32_t id = check_body(&r);
		assert_true(id < sizeof count);
		count[id]++;
		off = next;
	}
	assert_int_equal(rc, -FM_E_NOT_FOUND);
	assert_int_equal(off <= fm_clog_write_offset(f->log), 1);
	for (size_t i = 0; i < f->nacked; i++) {
		if (count[f->acked[i]] != 1)
			fail_msg("acked record %u found %d times", f->acked[i],
			    count[f->acked[i]]);
		count[f->acked[i]] = 0;
	}
	for (size_t i = 0; i < nmaybe; i++)
		if (count[maybe[i]] <= 1)
			count[maybe[i]] = 0;
	for (size_t id = 0; id < sizeof count; id++)
		if (count[id] != 0)
			fail_msg("record %zu was never acked", id);
	fm_buf_free(&buf);
}

/* Restart as after a crash (no flush, no clean marker) and check. */
static void
crash_and_verify(struct fixture *f, const uint32_t *maybe, size_t nmaybe)
{
	fm_clog_abandon(f->log);
	open_log(f, f->sync);
	assert_int_equal(fm_clog_was_clean(f->log), 0);
	verify(f, maybe, nmaybe);
}

static void
test_short_writes(void **state)
{
	struct fixture *f = *state;
	uint32_t id = 0;

	open_log(f, 1);
	SET(short_max, 7);
	SET(eintr_every, 3);
	for (int i = 0; i < 30; i++, id++)
		assert_int_equal(append1(f, id, 100 + (size_t)i * 50), 0);
	for (int i = 0; i < 10; i++, id += 3)
		assert_int_equal(append_batch(f, id, 3, 900), 0);
	assert_true(GET(short_writes) > 30);
	verify(f, NULL, 0);
	SET(short_max, 0);
	SET(eintr_every, 0);
	crash_and_verify(f, NULL, 0);
	fm_clog_close(f->log);
	open_log(f, 1);
	assert_int_equal(fm_clog_was_clean(f->log), 1);
	verify(f, NULL, 0);
}

/*
 * ENOSPC in the middle of a batch: the first record and part of the second
 * reach the file. Then a record exactly as long as the first is appended
 * over it, so the stale second record starts right where the log ends and
 * even carries the right log offset; recovery must still cut it, because
 * it belongs to a batch that never finished.
 */
static void
test_enospc_append(void **state)
{
	struct fixture *f = *state;
	uint64_t w;
	uint32_t id = 0;

	open_log(f, 1);
	for (; id < 20; id++)
		assert_int_equal(append1(f, id, 300), 0);
	w = fm_clog_write_offset(f->log);
	SET(budget, 50);
	SET(pwrite_errno, ENOSPC);
	assert_int_equal(append1(f, 1000, 300), -FM_E_NOSPC);
	assert_int_equal(fm_clog_write_offset(f->log), w);
	size_t rec = FM_REC_HEADER_SIZE + 6 + 400;
	SET(budget, (long)(2 * rec + 100));
	assert_int_equal(append_batch(f, 1001, 4, 400), -FM_E_NOSPC);
	assert_int_equal(fm_clog_write_offset(f->log), w);
	verify(f, NULL, 0);
	/* The disk has room again. */
	SET(pwrite_errno, 0);
	assert_int_equal(append1(f, id++, 400), 0);
	crash_and_verify(f, NULL, 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(append1(f, id++, 10), 0);
	crash_and_verify(f, NULL, 0);
	fm_clog_close(f->log);
	open_log(f, 1);
	verify(f, NULL, 0);
}

/* Filling a segment to within a few hundred bytes of its end. */
static void
fill_near_end(struct fixture *f, uint32_t *id)
{
	while (fm_clog_write_offset(f->log) + 2000 < SEG)
		assert_int_equal(append1(f, (*id)++, 1500), 0);
	while (fm_clog_write_offset(f->log) + 300 < SEG)
		assert_int_equal(append1(f, (*id)++, 100), 0);
}

/* The roll-over itself fails: first preallocating the next segment, then
 * writing the filler. Either way the append fails whole. */
static void
test_enospc_roll(void **state)
{
	struct fixture *f = *state;
	char next[512];
	struct stat st;
	uint32_t id = 0;
	uint64_t w;

	snprintf(next, sizeof next, "%s/%020u", f->dir, SEG);
	open_log(f, 0);
	fill_near_end(f, &id);
	w = fm_clog_write_offset(f->log);
	SET(falloc_errno, ENOSPC);
	assert_int_equal(append1(f, 2000, 1000), -FM_E_NOSPC);
	assert_int_equal(fm_clog_write_offset(f->log), w);
	assert_int_equal(stat(next, &st), -1);
	SET(falloc_errno, 0);
	SET(budget, 0);
	SET(pwrite_errno, ENOSPC);
	assert_int_equal(append1(f, 2001, 1000), -FM_E_NOSPC);
	assert_int_equal(fm_clog_write_offset(f->log), w);
	SET(budget, 20);
	SET(pwrite_errno, EIO);
	assert_int_equal(append1(f, 2002, 1000), -FM_E_IO);
	SET(pwrite_errno, 0);
	assert_int_equal(fm_clog_write_offset(f->log), w);
	verify(f, NULL, 0);
	/* A small record still fits in the old segment... */
	assert_int_equal(append1(f, id++, 20), 0);
	/* ...and a big one rolls over into the segment made earlier. */
	assert_int_equal(append1(f, id++, 1000), 0);
	assert_true(fm_clog_write_offset(f->log) > SEG);
	crash_and_verify(f, NULL, 0);
	assert_int_equal(append1(f, id++, 50), 0);
	crash_and_verify(f, NULL, 0);
}

/*
 * A failed fdatasync in SYNC_FLUSH: the waiter learns it (-FM_E_IO), the
 * log refuses further appends, and a restart keeps every acked record.
 * The record whose sync failed may or may not survive: never acked, it
 * is allowed either way, but only once and whole.
 */
static void
test_fsync_failure(void **state)
{
	struct fixture *f = *state;
	uint32_t maybe[] = {500};
	struct fm_record r;
	unsigned char body[16];
	uint64_t end, acked_end;

	open_log(f, 1);
	for (uint32_t id = 0; id < 10; id++)
		assert_int_equal(append1(f, id, 200), 0);
	acked_end = fm_clog_write_offset(f->log);
	SET(fsync_errno, EIO);
	make_rec(body, &r, 500, sizeof body);
	assert_int_equal(fm_clog_append(f->log, &r, 1, &end), 0);
	assert_int_equal(fm_clog_wait_durable(f->log, end), -FM_E_IO);
	assert_true(GET(fsync_fails) >= 1);
	assert_int_equal(append1(f, 501, 200), -FM_E_NOT_WRITABLE);
	/* What was durable before stays durable. */
	assert_int_equal(fm_clog_wait_durable(f->log, acked_end), 0);
	assert_true(fm_clog_flushed_offset(f->log) < end);
	verify(f, maybe, 1);
	/* Closing a failed log writes no clean marker: the restart
	 * recovers. */
	fm_clog_close(f->log);
	SET(fsync_errno, 0);
	open_log(f, 1);
	assert_int_equal(fm_clog_was_clean(f->log), 0);
	verify(f, maybe, 1);
	assert_int_equal(append1(f, 502, 200), 0);
	crash_and_verify(f, maybe, 1);
}

/* In ASYNC_FLUSH nobody waits; the flusher's failure still stops writes.
 * Records appended after the fault reached the page cache and may be
 * found again, but only once each. */
static void
test_fsync_failure_async(void **state)
{
	struct fixture *f = *state;
	uint32_t maybe[301];
	size_t nmaybe = 0;
	int rc = 0;

	open_log(f, 0);
	for (uint32_t id = 0; id < 10; id++)
		assert_int_equal(append1(f, id, 200), 0);
	for (int i = 0; i < 300 &&
	     fm_clog_flushed_offset(f->log) < fm_clog_write_offset(f->log);
	     i++)
		usleep(10000);
	assert_int_equal(
	    fm_clog_flushed_offset(f->log), fm_clog_write_offset(f->log));
	SET(fsync_errno, EIO);
	for (uint32_t id = 100; rc == 0 && nmaybe < 300; id++) {
		rc = append1(f, id, 50);
		if (rc == 0) {
			f->nacked--;
			maybe[nmaybe++] = id;
			usleep(10000);
		}
	}
	assert_int_equal(rc, -FM_E_NOT_WRITABLE);
	assert_int_equal(fm_clog_wait_durable(f->log, 0), -FM_E_IO);
	SET(fsync_errno, 0);
	crash_and_verify(f, maybe, nmaybe);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_short_writes, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_enospc_append, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_enospc_roll, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_fsync_failure, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_fsync_failure_async, setup, teardown),
	};

	fm_log_set_level(FM_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
