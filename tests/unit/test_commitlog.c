/*
 * test_commitlog.c - unit tests of the commit log: append and read, segment
 * roll-over, batches, clean and unclean restarts, torn tails at every byte,
 * corruption, retention, and readers running during appends.
 *
 * Owns only its temporary directories (mkdtemp, removed by each case).
 * Segments are 64 KiB so that roll-over happens after a few records.
 * Every record body starts with its 32-bit id and continues with a
 * pattern derived from it, so any reader can check what it got.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "store/commitlog.h"

#define SEG (64u * 1024u)
#define MAX_BODY (70u * 1024u)

struct fixture {
	char dir[256];
	struct fm_clog *log;
	unsigned char body[MAX_BODY];
};

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof *f);
	const char *tmp = getenv("TMPDIR");

	snprintf(
	    f->dir, sizeof f->dir, "%s/fm-clog-XXXXXX", tmp ? tmp : "/tmp");
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

static int
open_log(struct fixture *f, int sync)
{
	struct fm_clog_options o = {
	    .dir = f->dir,
	    .segment_size = SEG,
	    .sync_flush = sync,
	    .flush_interval_ms = 20,
	};

	f->log = NULL;
	return fm_clog_open(&o, &f->log);
}

static void
reopen(struct fixture *f, int clean)
{
	if (clean)
		fm_clog_close(f->log);
	else
		fm_clog_abandon(f->log);
	assert_int_equal(open_log(f, 0), 0);
	assert_int_equal(fm_clog_was_clean(f->log), clean);
}

static void
make_rec(struct fixture *f, struct fm_record *r, uint32_t id, size_t body)
{
	assert_true(body >= 4 && body <= MAX_BODY);
	memset(r, 0, sizeof *r);
	r->topic = "topic";
	r->topic_len = 5;
	r->tag = "tag";
	r->tag_len = 3;
	r->queue_id = id % 4;
	r->store_ts = 1000 + id;
	memcpy(f->body, &id, 4);
	for (size_t i = 4; i < body; i++)
		f->body[i] = (unsigned char)(id * 7 + i);
	r->body = f->body;
	r->body_len = (uint32_t)body;
}

static uint32_t
check_rec(const struct fm_record *r)
{
	const unsigned char *b = r->body;
	uint32_t id;

	assert_true(r->body_len >= 4);
	memcpy(&id, b, 4);
	assert_int_equal(r->topic_len, 5);
	assert_memory_equal(r->topic, "topic", 5);
	assert_true(r->store_ts == 1000 + id);
	for (size_t i = 4; i < r->body_len; i++)
		if (b[i] != (unsigned char)(id * 7 + i))
			fail_msg("record %u: body byte %zu differs", id, i);
	return id;
}

/* Body size, in the bytes a whole record of this test takes. */
static size_t
body_for(size_t rec_size)
{
	return rec_size - FM_REC_HEADER_SIZE - 5 - 3;
}

static uint64_t
append1(struct fixture *f, uint32_t id, size_t body, uint64_t *start)
{
	struct fm_record r;
	uint64_t end;

	make_rec(f, &r, id, body);
	assert_int_equal(fm_clog_append(f->log, &r, 1, &end), 0);
	assert_int_equal(end, r.log_offset + r.size);
	if (start)
		*start = r.log_offset;
	return end;
}

/* Scans the whole log; checks ids are first..first+n-1 in order. */
static void
scan_expect(struct fixture *f, uint32_t first, uint32_t n)
{
	struct fm_buf buf = FM_BUF_INIT;
	struct fm_record r;
	uint64_t off = fm_clog_min_offset(f->log), next;
	uint32_t seen = 0;
	int rc;

	while ((rc = fm_clog_read_next(f->log, off, &buf, &r, &next)) == 0) {
		assert_int_equal(check_rec(&r), first + seen);
		assert_int_equal(
		    r.log_offset / SEG, (r.log_offset + r.size - 1) / SEG);
		assert_true(next > off);
		seen++;
		off = next;
	}
	assert_int_equal(rc, -FM_E_NOT_FOUND);
	assert_int_equal(seen, n);
	fm_buf_free(&buf);
}

static void
path_of(struct fixture *f, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", f->dir, name);
}

static void
seg_path(struct fixture *f, uint64_t base, char *out, size_t len)
{
	snprintf(out, len, "%s/%020llu", f->dir, (unsigned long long)base);
}

static unsigned char *
slurp(const char *path, size_t *len)
{
	struct stat st;
	unsigned char *p;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	p = xmalloc((size_t)st.st_size + 1);
	assert_int_equal(pread(fd, p, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return p;
}

static void
spit(const char *path, const void *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, p, len, 0), (ssize_t)len);
	close(fd);
}

static void
poke(const char *path, uint64_t off, const void *p, size_t len)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, p, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void
test_append_read(void **state)
{
	struct fixture *f = *state;
	struct fm_buf buf = FM_BUF_INIT;
	uint64_t offs[50], end = 0;
	struct fm_record r;

	assert_int_equal(open_log(f, 0), 0);
	assert_int_equal(fm_clog_was_clean(f->log), 0);
	assert_int_equal(fm_clog_write_offset(f->log), 0);
	for (uint32_t i = 0; i < 50; i++)
		end = append1(f, i, 4 + i * 13, &offs[i]);
	assert_int_equal(fm_clog_write_offset(f->log), end);
	for (uint32_t i = 0; i < 50; i++) {
		assert_int_equal(fm_clog_read(f->log, offs[i], &buf, &r), 0);
		assert_int_equal(check_rec(&r), i);
		assert_int_equal(r.log_offset, offs[i]);
		assert_int_equal(buf.len, r.size);
	}
	scan_expect(f, 0, 50);
	assert_int_equal(
	    fm_clog_read(f->log, offs[3] + 1, &buf, &r), -FM_E_NOT_FOUND);
	assert_int_equal(fm_clog_read(f->log, end, &buf, &r), -FM_E_NOT_FOUND);
	assert_int_equal(
	    fm_clog_read(f->log, end + SEG, &buf, &r), -FM_E_NOT_FOUND);
	assert_true(fm_clog_oldest_ts(f->log) == 1000);
	fm_buf_free(&buf);
}

/* Record sizes chosen to hit every way a segment can end: a filler, a
 * gap too small for a header (no filler), and an exact fill. */
static void
test_rollover(void **state)
{
	struct fixture *f = *state;
	uint64_t start, end;
	uint32_t id = 0;

	assert_int_equal(open_log(f, 0), 0);
	/* Segment 0: leave 40 bytes, less than a header. */
	end = append1(f, id++, body_for(SEG / 2), NULL);
	end = append1(f, id++, body_for(SEG - end - 40), NULL);
	assert_int_equal(end, SEG - 40);
	end = append1(f, id++, body_for(100), &start);
	assert_int_equal(start, SEG);
	/* Segment 1: fill it exactly, so write_offset is its end. */
	end = append1(f, id++, body_for(2 * SEG - end), &start);
	assert_int_equal(end, 2 * SEG);
	/* Segment 2: a filler of 1000 bytes. */
	end = append1(f, id++, body_for(SEG - 1000), &start);
	assert_int_equal(start, 2 * SEG);
	end = append1(f, id++, body_for(1001), &start);
	assert_int_equal(start, 3 * SEG);
	/* A record as big as a whole segment. */
	end = append1(f, id++, body_for(SEG), &start);
	assert_int_equal(start, 4 * SEG);
	assert_int_equal(end, 5 * SEG);
	scan_expect(f, 0, id);
	reopen(f, 1);
	scan_expect(f, 0, id);
	assert_int_equal(fm_clog_write_offset(f->log), 5 * SEG);
	reopen(f, 0);
	scan_expect(f, 0, id);
	assert_int_equal(fm_clog_write_offset(f->log), 5 * SEG);
	append1(f, id++, 10, &start);
	assert_int_equal(start, 5 * SEG);
	scan_expect(f, 0, id);
}

static void
test_batches(void **state)
{
	struct fixture *f = *state;
	struct fm_record recs[5];
	unsigned char bodies[5][3000];
	uint64_t end;
	uint32_t id = 0;

	assert_int_equal(open_log(f, 0), 0);
	for (int b = 0; b < 20; b++) {
		for (int i = 0; i < 5; i++) {
			make_rec(f, &recs[i], id, 2000 + (size_t)b * 40);
			memcpy(bodies[i], f->body, recs[i].body_len);
			recs[i].body = bodies[i];
			recs[i].flags = i == 4 ? FM_REC_F_BATCH_MORE : 0;
			id++;
		}
		assert_int_equal(fm_clog_append(f->log, recs, 5, &end), 0);
		assert_int_equal(end, recs[4].log_offset + recs[4].size);
		for (int i = 0; i < 5; i++) {
			assert_int_equal(recs[i].flags & FM_REC_F_BATCH_MORE,
			    i < 4 ? FM_REC_F_BATCH_MORE : 0);
			if (i > 0)
				assert_int_equal(recs[i].log_offset,
				    recs[i - 1].log_offset + recs[i - 1].size);
		}
		assert_int_equal(recs[0].log_offset / SEG, (end - 1) / SEG);
	}
	assert_true(fm_clog_write_offset(f->log) > SEG);
	scan_expect(f, 0, id);
	reopen(f, 0);
	scan_expect(f, 0, id);
}

static void
test_too_large(void **state)
{
	struct fixture *f = *state;
	struct fm_record recs[2];
	uint64_t end, w;

	assert_int_equal(open_log(f, 0), 0);
	append1(f, 0, 100, NULL);
	w = fm_clog_write_offset(f->log);
	make_rec(f, &recs[0], 1, body_for(SEG + 1));
	assert_int_equal(
	    fm_clog_append(f->log, recs, 1, &end), -FM_E_TOO_LARGE);
	make_rec(f, &recs[0], 1, body_for(SEG / 2));
	make_rec(f, &recs[1], 1, body_for(SEG / 2 + 1));
	assert_int_equal(
	    fm_clog_append(f->log, recs, 2, &end), -FM_E_TOO_LARGE);
	assert_int_equal(fm_clog_append(f->log, recs, 0, &end), -FM_E_INVALID);
	assert_int_equal(fm_clog_write_offset(f->log), w);
	scan_expect(f, 0, 1);
}

/* Restarts, clean and not, keep every record and allow appends. */
static void
test_reopen(void **state)
{
	struct fixture *f = *state;
	uint32_t id = 0;
	uint64_t w;

	assert_int_equal(open_log(f, 1), 0);
	for (; id < 100; id++)
		assert_int_equal(
		    fm_clog_wait_durable(f->log, append1(f, id, 1000, NULL)),
		    0);
	w = fm_clog_write_offset(f->log);
	assert_int_equal(fm_clog_flushed_offset(f->log), w);
	reopen(f, 1);
	assert_int_equal(fm_clog_write_offset(f->log), w);
	assert_int_equal(fm_clog_flushed_offset(f->log), w);
	scan_expect(f, 0, id);
	for (; id < 150; id++)
		append1(f, id, 700, NULL);
	w = fm_clog_write_offset(f->log);
	reopen(f, 0);
	assert_int_equal(fm_clog_write_offset(f->log), w);
	scan_expect(f, 0, id);
	for (; id < 160; id++)
		append1(f, id, 700, NULL);
	reopen(f, 1);
	scan_expect(f, 0, id);
}

/* Checks ids 0..4 then 6, as appended after a cut. */
static void
scan_expect_gap(struct fixture *f)
{
	struct fm_buf buf = FM_BUF_INIT;
	struct fm_record r;
	uint64_t off = 0, next;
	uint32_t want[] = {0, 1, 2, 3, 4, 6}, n = 0;

	while (fm_clog_read_next(f->log, off, &buf, &r, &next) == 0) {
		assert_true(n < 6);
		assert_int_equal(check_rec(&r), want[n++]);
		off = next;
	}
	assert_int_equal(n, 6);
	fm_buf_free(&buf);
}

/*
 * The last record torn at every length: its first len bytes are on disk,
 * the rest either zero (never written) or garbage (written, not synced).
 * The checkpoint is the one written at open, before any append.
 */
static void
test_torn_tail(void **state)
{
	struct fixture *f = *state;
	char seg[512], ckpt[512], clean[512];
	unsigned char *image, *ck;
	size_t image_len, ck_len;
	uint64_t last, end;
	uint32_t size;

	path_of(f, "checkpoint", ckpt, sizeof ckpt);
	path_of(f, "clean", clean, sizeof clean);
	seg_path(f, 0, seg, sizeof seg);
	assert_int_equal(open_log(f, 0), 0);
	ck = slurp(ckpt, &ck_len);
	for (uint32_t id = 0; id < 5; id++)
		append1(f, id, 50 + id, NULL);
	end = append1(f, 5, 150, &last);
	size = (uint32_t)(end - last);
	fm_clog_close(f->log);
	f->log = NULL;
	image = slurp(seg, &image_len);
	for (uint32_t len = 1; len < size; len++)
		for (int garble = 0; garble < 2; garble++) {
			for (uint32_t i = len; i < size; i++)
				image[last + i] =
				    garble ? (unsigned char)(i * 29 + 1) : 0;
			spit(seg, image, image_len);
			spit(ckpt, ck, ck_len);
			unlink(clean);
			assert_int_equal(open_log(f, 0), 0);
			assert_int_equal(fm_clog_was_clean(f->log), 0);
			assert_int_equal(fm_clog_write_offset(f->log), last);
			scan_expect(f, 0, 5);
			append1(f, 6, 20, NULL);
			scan_expect_gap(f);
			fm_clog_abandon(f->log);
		}
	f->log = NULL;
	free(image);
	free(ck);
}

/* A batch whose tail did not reach the disk is cut back whole, wherever
 * the tear is; the records before it stay. */
static void
test_unfinished_batch(void **state)
{
	struct fixture *f = *state;
	char seg[512], ckpt[512];
	unsigned char *image, *ck, bodies[3][400];
	size_t image_len, ck_len;
	struct fm_record recs[3];
	uint64_t start, end;

	path_of(f, "checkpoint", ckpt, sizeof ckpt);
	seg_path(f, 0, seg, sizeof seg);
	assert_int_equal(open_log(f, 0), 0);
	ck = slurp(ckpt, &ck_len);
	for (uint32_t id = 0; id < 5; id++)
		append1(f, id, 100, NULL);
	start = fm_clog_write_offset(f->log);
	for (int i = 0; i < 3; i++) {
		make_rec(f, &recs[i], 10 + (uint32_t)i, 400);
		memcpy(bodies[i], f->body, 400);
		recs[i].body = bodies[i];
	}
	assert_int_equal(fm_clog_append(f->log, recs, 3, &end), 0);
	fm_clog_abandon(f->log);
	f->log = NULL;
	image = slurp(seg, &image_len);
	/* Tear inside the 2nd record, at the 3rd's start, inside the 3rd. */
	uint64_t cuts[] = {recs[1].log_offset + 7, recs[2].log_offset,
	    recs[2].log_offset + 100, end - 1};
	for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
		unsigned char *img = xmemdup(image, image_len);
		memset(img + cuts[c], 0, end - cuts[c]);
		spit(seg, img, image_len);
		spit(ckpt, ck, ck_len);
		free(img);
		assert_int_equal(open_log(f, 0), 0);
		assert_int_equal(fm_clog_write_offset(f->log), start);
		scan_expect(f, 0, 5);
		append1(f, 6, 30, NULL);
		scan_expect_gap(f);
		fm_clog_abandon(f->log);
		f->log = NULL;
	}
	/* Untouched, the batch is all there. */
	spit(seg, image, image_len);
	spit(ckpt, ck, ck_len);
	assert_int_equal(open_log(f, 0), 0);
	assert_int_equal(fm_clog_write_offset(f->log), end);
	free(image);
	free(ck);
}

static void
test_corrupt_below_checkpoint(void **state)
{
	struct fixture *f = *state;
	char seg[512], clean[512];
	unsigned char bad = 0x5a;
	uint64_t mid = 0;

	path_of(f, "clean", clean, sizeof clean);
	seg_path(f, 0, seg, sizeof seg);
	assert_int_equal(open_log(f, 0), 0);
	for (uint32_t id = 0; id < 20; id++)
		append1(f, id, 200, id == 10 ? &mid : NULL);
	fm_clog_close(f->log); /* the checkpoint is now the end */
	f->log = NULL;
	poke(seg, mid + 150, &bad, 1);
	/* A clean marker skips the scan; reading finds the damage. */
	assert_int_equal(open_log(f, 0), 0);
	struct fm_buf buf = FM_BUF_INIT;
	struct fm_record r;
	uint64_t next;
	assert_int_equal(fm_clog_read(f->log, mid, &buf, &r), -FM_E_CORRUPT);
	assert_int_equal(
	    fm_clog_read_next(f->log, mid, &buf, &r, &next), -FM_E_CORRUPT);
	fm_buf_free(&buf);
	fm_clog_abandon(f->log);
	f->log = NULL;
	/* Without it, the scan meets the bad record below the checkpoint. */
	unlink(clean);
	assert_int_equal(open_log(f, 0), -FM_E_CORRUPT);
	assert_null(f->log);
}

static void
test_missing_segment(void **state)
{
	struct fixture *f = *state;
	char seg[512], clean[512];

	path_of(f, "clean", clean, sizeof clean);
	assert_int_equal(open_log(f, 0), 0);
	for (uint32_t id = 0; id < 40; id++)
		append1(f, id, 5000, NULL);
	assert_true(fm_clog_write_offset(f->log) > 3 * SEG);
	fm_clog_close(f->log);
	f->log = NULL;
	/* The last segment is gone: the log ends below the checkpoint. */
	unlink(clean);
	seg_path(f, 3 * SEG, seg, sizeof seg);
	assert_int_equal(unlink(seg), 0);
	assert_int_equal(open_log(f, 0), -FM_E_CORRUPT);
	/* A hole in the middle is corruption too. */
	seg_path(f, SEG, seg, sizeof seg);
	assert_int_equal(unlink(seg), 0);
	assert_int_equal(open_log(f, 0), -FM_E_CORRUPT);
}

static void
set_mtime(struct fixture *f, uint64_t base, int64_t ms)
{
	struct timespec ts[2];
	char seg[512];

	seg_path(f, base, seg, sizeof seg);
	ts[0].tv_sec = ts[1].tv_sec = ms / 1000;
	ts[0].tv_nsec = ts[1].tv_nsec = (ms % 1000) * 1000000;
	assert_int_equal(utimensat(AT_FDCWD, seg, ts, 0), 0);
}

static void
test_delete_expired(void **state)
{
	struct fixture *f = *state;
	int64_t now = fm_now_ms(), hour = 3600 * 1000;
	struct fm_buf buf = FM_BUF_INIT;
	struct fm_record r;
	uint64_t first6 = 0, bytes;
	size_t segs;
	uint32_t id;

	assert_int_equal(open_log(f, 0), 0);
	for (id = 0; fm_clog_write_offset(f->log) < 5 * SEG + 100; id++)
		append1(f, id, 5000, NULL);
	fm_clog_usage(f->log, &segs, &bytes);
	assert_int_equal(segs, 6);
	assert_true(bytes >= 5 * SEG);
	for (uint64_t b = 0; b < 6; b++)
		set_mtime(f, b * SEG, now - 2 * hour);
	set_mtime(f, 3 * SEG, now); /* recent: stops deletion there */
	assert_int_equal(fm_clog_delete_expired(f->log, now - hour, 2), 2);
	assert_int_equal(fm_clog_min_offset(f->log), 2 * SEG);
	assert_int_equal(fm_clog_read(f->log, 0, &buf, &r), -FM_E_GONE);
	assert_int_equal(fm_clog_delete_expired(f->log, now - hour, 10), 1);
	assert_int_equal(fm_clog_min_offset(f->log), 3 * SEG);
	assert_int_equal(fm_clog_delete_expired(f->log, now - hour, 10), 0);
	/* The segment being written is never deleted, however old. */
	for (uint64_t b = 3; b < 6; b++)
		set_mtime(f, b * SEG, now - 2 * hour);
	assert_int_equal(fm_clog_delete_expired(f->log, now, 10), 2);
	assert_int_equal(fm_clog_min_offset(f->log), 5 * SEG);
	fm_clog_usage(f->log, &segs, &bytes);
	assert_int_equal(segs, 1);
	assert_int_equal(
	    fm_clog_read_next(f->log, 5 * SEG, &buf, &r, &first6), 0);
	assert_true(fm_clog_oldest_ts(f->log) == r.store_ts);
	uint32_t first = check_rec(&r);
	scan_expect(f, first, id - first);
	reopen(f, 0);
	assert_int_equal(fm_clog_min_offset(f->log), 5 * SEG);
	scan_expect(f, first, id - first);
	append1(f, id, 10, NULL);
	fm_buf_free(&buf);
}

struct reader_arg {
	struct fixture *f;
	volatile int *done;
	uint32_t max_seen;
};

/* Scans from the start again and again while appends go on; every
 * record it sees must be whole and in order. */
static void *
reader_main(void *p)
{
	struct reader_arg *a = p;
	struct fm_buf buf = FM_BUF_INIT;
	struct fm_record r;
	int last_round = 0;

	while (!last_round) {
		uint64_t off = 0, next;
		uint32_t want = 0;
		last_round = __atomic_load_n(a->done, __ATOMIC_ACQUIRE);
		while (
		    fm_clog_read_next(a->f->log, off, &buf, &r, &next) == 0) {
			if (check_rec(&r) != want)
				fail_msg("reader saw %u for %u", check_rec(&r),
				    want);
			want++;
			off = next;
		}
		if (want > a->max_seen)
			a->max_seen = want;
	}
	fm_buf_free(&buf);
	return NULL;
}

static void
test_concurrent_readers(void **state)
{
	struct fixture *f = *state;
	struct reader_arg args[3];
	pthread_t th[3];
	volatile int done = 0;
	const uint32_t n = 3000;

	assert_int_equal(open_log(f, 0), 0);
	for (int i = 0; i < 3; i++) {
		args[i] = (struct reader_arg){f, &done, 0};
		assert_int_equal(
		    pthread_create(&th[i], NULL, reader_main, &args[i]), 0);
	}
	for (uint32_t id = 0; id < n; id++)
		append1(f, id, 4 + (id * 37) % 900, NULL);
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].max_seen, n);
	}
}

struct writer_arg {
	struct fixture *f;
	pthread_mutex_t *mu;
	uint32_t id0;
	int failures;
};

static void *
writer_main(void *p)
{
	struct writer_arg *a = p;
	struct fm_record r;
	unsigned char body[64];
	uint64_t end;

	for (uint32_t i = 0; i < 50; i++) {
		pthread_mutex_lock(a->mu);
		make_rec(a->f, &r, a->id0 + i, sizeof body);
		memcpy(body, a->f->body, sizeof body);
		r.body = body;
		int rc = fm_clog_append(a->f->log, &r, 1, &end);
		pthread_mutex_unlock(a->mu);
		if (rc != 0 || fm_clog_wait_durable(a->f->log, end) != 0 ||
		    fm_clog_flushed_offset(a->f->log) < end)
			a->failures++;
	}
	return NULL;
}

/* SYNC_FLUSH with several publishers: each returns only once its record
 * is flushed. */
static void
test_group_commit(void **state)
{
	struct fixture *f = *state;
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	struct writer_arg args[4];
	pthread_t th[4];

	assert_int_equal(open_log(f, 1), 0);
	for (int i = 0; i < 4; i++) {
		args[i] = (struct writer_arg){f, &mu, (uint32_t)i * 1000, 0};
		assert_int_equal(
		    pthread_create(&th[i], NULL, writer_main, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].failures, 0);
	}
	assert_int_equal(
	    fm_clog_flushed_offset(f->log), fm_clog_write_offset(f->log));
	assert_int_equal(fm_clog_wait_durable(f->log, 0), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_append_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rollover, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_unfinished_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_corrupt_below_checkpoint, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_missing_segment, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_delete_expired, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_concurrent_readers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
	};

	fm_log_set_level(FM_LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
