/*
 * commitlog.c - segment files, append, group-commit flushing, recovery and
 * retention of the commit log (see commitlog.h for the contract).
 *
 * Owns: the segment files, the checkpoint and clean marker files in the
 * log directory, the flusher thread. Does not own: record layout
 * (record.c), serialising appends (the caller), the index built from the
 * log (store.c). Every write and sync goes through os.c so that tests can
 * inject faults there.
 *
 * Invariants:
 *  1. segs[] is sorted by base and contiguous: segs[i + 1].base ==
 *     segs[i].base + seg_size. It is changed only under the write lock
 *     (append adds at the end, delete_expired removes at the front).
 *  2. min_offset == segs[0].base <= flushed_offset <= write_offset.
 *  3. Either a segment contains write_offset, or write_offset is the end
 *     of the last segment (the last append filled it exactly).
 *  4. Every byte below write_offset has been written with pwrite and
 *     forms valid records and blank fillers; write_offset only moves
 *     (with release ordering) after the pwrite of a whole batch returned.
 *     Readers never look at bytes at or beyond write_offset.
 *  5. A segment containing write_offset, or the last segment, is never
 *     deleted, so the appender may use its fd without holding the lock.
 *  6. Once failed is set (an fdatasync failed) it never clears: nothing
 *     more is appended and flushed_offset never moves again.
 *  7. delete_expired never removes a segment ending above retain_from
 *     (the owner's retention floor), read under the write lock.
 *
 * Threads: one appender at a time (caller's lock); any number of readers
 * and waiters; the flusher thread; delete_expired from anywhere. Readers
 * hold the read lock while they copy a record out, so a segment cannot
 * be closed under them. The flusher never holds the lock while syncing:
 * it syncs dup()ed descriptors.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/crc32c.h"
#include "base/endian.h"
#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "store/commitlog.h"
#include "store/os.h"

#define NAME_LEN 20 /* digits in a segment file name */
#define MIN_SEGMENT (64u * 1024u) /* smallest segment_size accepted */
#define CKPT_PERIOD_MS 1000 /* checkpoint about once a second */
#define READ_AHEAD 4096u /* first read of a record, one syscall */
#define ZERO_CHUNK (64u * 1024u) /* recovery zeroes torn tails by chunk */
#define NO_BATCH UINT64_MAX

#define CKPT_FILE "checkpoint"
#define CLEAN_FILE "clean"
#define CKPT_MAGIC 0x54504b43u /* "CKPT" */
#define CLEAN_MAGIC 0x4e454c43u /* "CLEN" */

struct seg {
	uint64_t base; /* log offset of the file's first byte */
	int fd; /* O_RDWR, owned */
};

struct fm_clog {
	char *dir; /* owned copy of the directory path */
	int dirfd; /* the directory, for *at() calls and its fsync */
	uint64_t seg_size; /* bytes per segment */
	int sync_flush; /* 1: waiters share the flusher's fdatasync */
	int flush_interval; /* ms between flushes nobody waits for */
	void (*on_flush)(void *arg); /* see fm_clog_options */
	void *on_flush_arg;
	int was_clean; /* the previous run closed the log */

	pthread_rwlock_t lock; /* guards segs and nsegs (invariant 1) */
	struct seg *segs;
	size_t nsegs, cap;

	_Atomic uint64_t min_offset;
	_Atomic uint64_t write_offset;
	_Atomic uint64_t flushed_offset; /* changed by the flusher under fmu */
	_Atomic uint64_t retain_from; /* invariant 7; UINT64_MAX: no floor */
	atomic_int failed; /* invariant 6 */

	unsigned char *wbuf; /* appender only: the batch being encoded */
	size_t wcap;

	pthread_mutex_t fmu; /* guards requested, stop, flusher state */
	pthread_mutex_t syncmu; /* one flush_once at a time: flushed_offset
	                           must never move backwards */
	pthread_cond_t fcond; /* wakes the flusher */
	pthread_cond_t dcond; /* wakes fm_clog_wait_durable callers */
	uint64_t requested; /* highest end a waiter asked for */
	int stop;
	int flusher_running;
	pthread_t flusher;

	int ckpt_fd; /* the checkpoint file, rewritten in place */
	uint64_t ckpt_offset; /* flusher only: last offset checkpointed */
	int64_t ckpt_ms; /* flusher only: when (monotonic) */
};

static void
seg_name(char name[NAME_LEN + 1], uint64_t base)
{
	snprintf(name, NAME_LEN + 1, "%020" PRIu64, base);
}

static uint64_t
seg_end(const struct fm_clog *log, const struct seg *s)
{
	return s->base + log->seg_size;
}

/* Index of the segment holding offset, or -1. Caller holds the lock. */
static long
seg_find(const struct fm_clog *log, uint64_t offset)
{
	size_t lo = 0, hi = log->nsegs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (seg_end(log, &log->segs[mid]) <= offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < log->nsegs && log->segs[lo].base <= offset)
		return (long)lo;
	return -1;
}

static void
seg_push(struct fm_clog *log, uint64_t base, int fd)
{
	if (log->nsegs == log->cap) {
		log->cap = log->cap ? log->cap * 2 : 8;
		log->segs =
		    xreallocarray(log->segs, log->cap, sizeof *log->segs);
	}
	log->segs[log->nsegs].base = base;
	log->segs[log->nsegs].fd = fd;
	log->nsegs++;
}

/* Loops over short writes and EINTR; a write that makes no progress is
 * an I/O error rather than a spin. */
static int
write_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = fm_os_pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fm_err_from_errno(errno);
		if (n == 0)
			return -FM_E_IO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int
read_full(int fd, void *buf, size_t len, uint64_t off)
{
	unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fm_err_from_errno(errno);
		if (n == 0)
			return -FM_E_CORRUPT;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static void
notify_flush(struct fm_clog *log)
{
	if (log->on_flush != NULL)
		log->on_flush(log->on_flush_arg);
}

/* After a failed fdatasync the kernel may have dropped the dirty pages
 * and reported the error once: nothing written since can be trusted. */
static void
set_failed(struct fm_clog *log, const char *what, int errnum)
{
	fm_error("commitlog: fdatasync of %s in %s failed: %s; the log is "
	         "read-only until restart",
	    what, log->dir, strerror(errnum));
	pthread_mutex_lock(&log->fmu);
	atomic_store(&log->failed, 1);
	pthread_cond_broadcast(&log->dcond);
	pthread_mutex_unlock(&log->fmu);
	notify_flush(log);
}

static int
sync_dir(struct fm_clog *log)
{
	if (fm_os_fdatasync(log->dirfd) != 0) {
		set_failed(log, "the directory", errno);
		return -FM_E_IO;
	}
	return 0;
}

/*
 * Marker files (checkpoint and clean) share one 16-byte layout:
 *
 *   0      8      12     16
 *   +------+------+------+
 *   |offset|magic |crc   |   crc = CRC-32C of bytes [0, 12)
 *   +------+------+------+
 */
static void
marker_encode(unsigned char m[16], uint64_t offset, uint32_t magic)
{
	fm_le_put64(m, offset);
	fm_le_put32(m + 8, magic);
	fm_le_put32(m + 12, fm_crc32c(0, m, 12));
}

static int
marker_decode(const unsigned char m[16], uint32_t magic, uint64_t *offset)
{
	if (fm_le_get32(m + 8) != magic ||
	    fm_le_get32(m + 12) != fm_crc32c(0, m, 12))
		return -FM_E_CORRUPT;
	*offset = fm_le_get64(m);
	return 0;
}

/* Reads a marker file; -FM_E_NOT_FOUND when absent, -FM_E_CORRUPT when
 * torn or foreign. */
static int
marker_read(
    struct fm_clog *log, const char *name, uint32_t magic, uint64_t *offset)
{
	unsigned char m[16];
	struct stat st;
	int fd, rc;

	fd = openat(log->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -FM_E_NOT_FOUND
		                       : fm_err_from_errno(errno);
	/* An empty file was created but never written: as good as absent. */
	if (fstat(fd, &st) == 0 && st.st_size == 0)
		rc = -FM_E_NOT_FOUND;
	else
		rc = read_full(fd, m, sizeof m, 0);
	if (rc == 0)
		rc = marker_decode(m, magic, offset);
	close(fd);
	return rc;
}

static int
checkpoint_write(struct fm_clog *log, uint64_t offset)
{
	unsigned char m[16];
	int rc;

	marker_encode(m, offset, CKPT_MAGIC);
	rc = write_full(log->ckpt_fd, m, sizeof m, 0);
	if (rc != 0) {
		fm_warn("commitlog: cannot write the checkpoint in %s: %s",
		    log->dir, fm_err_msg(rc));
		return rc;
	}
	if (fm_os_fdatasync(log->ckpt_fd) != 0) {
		set_failed(log, "the checkpoint", errno);
		return -FM_E_IO;
	}
	log->ckpt_offset = offset;
	log->ckpt_ms = fm_mono_ms();
	return 0;
}

static int
clean_write(struct fm_clog *log, uint64_t offset)
{
	unsigned char m[16];
	int fd, rc;

	marker_encode(m, offset, CLEAN_MAGIC);
	fd = openat(log->dirfd, CLEAN_FILE,
	    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return fm_err_from_errno(errno);
	rc = write_full(fd, m, sizeof m, 0);
	if (rc == 0 && fm_os_fdatasync(fd) != 0)
		rc = fm_err_from_errno(errno);
	close(fd);
	if (rc == 0)
		rc = sync_dir(log);
	return rc;
}

/* Creates and preallocates the segment at base and appends it to segs[].
 * A segment that cannot be fully preallocated is removed again, so a
 * later attempt starts from scratch. */
static int
seg_create(struct fm_clog *log, uint64_t base, int *fd_out)
{
	char name[NAME_LEN + 1];
	int fd, rc;

	seg_name(name, base);
	fd = openat(
	    log->dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return fm_err_from_errno(errno);
	if (fm_os_fallocate(fd, 0, (off_t)log->seg_size) != 0) {
		rc = fm_err_from_errno(errno);
		fm_warn("commitlog: cannot preallocate segment %s: %s", name,
		    strerror(errno));
		goto fail;
	}
	rc = sync_dir(log);
	if (rc != 0)
		goto fail;
	pthread_rwlock_wrlock(&log->lock);
	seg_push(log, base, fd);
	pthread_rwlock_unlock(&log->lock);
	*fd_out = fd;
	return 0;
fail:
	close(fd);
	unlinkat(log->dirfd, name, 0);
	return rc;
}

static int
cmp_seg(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;

	return x->base < y->base ? -1 : x->base > y->base;
}

static int
is_seg_name(const char *name)
{
	if (strlen(name) != NAME_LEN)
		return 0;
	for (int i = 0; i < NAME_LEN; i++)
		if (name[i] < '0' || name[i] > '9')
			return 0;
	return 1;
}

static int
list_segments(struct fm_clog *log)
{
	struct dirent *de;
	DIR *d;
	int dfd, rc = 0;

	dfd = openat(log->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return fm_err_from_errno(errno);
	d = fdopendir(dfd);
	if (d == NULL) {
		rc = fm_err_from_errno(errno);
		close(dfd);
		return rc;
	}
	while ((de = readdir(d)) != NULL) {
		if (!is_seg_name(de->d_name))
			continue;
		int fd = openat(log->dirfd, de->d_name, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			rc = fm_err_from_errno(errno);
			fm_error("commitlog: cannot open segment %s/%s: %s",
			    log->dir, de->d_name, strerror(errno));
			break;
		}
		seg_push(log, strtoull(de->d_name, NULL, 10), fd);
	}
	closedir(d);
	if (log->nsegs > 1)
		qsort(log->segs, log->nsegs, sizeof *log->segs, cmp_seg);
	return rc;
}

/* Closes, forgets and unlinks segs[i..]. Only used before the log is
 * shared with other threads. */
static void
drop_segments_from(struct fm_clog *log, size_t i)
{
	char name[NAME_LEN + 1];

	while (log->nsegs > i) {
		struct seg *s = &log->segs[--log->nsegs];
		seg_name(name, s->base);
		close(s->fd);
		if (unlinkat(log->dirfd, name, 0) != 0)
			fm_warn("commitlog: cannot delete segment %s: %s", name,
			    strerror(errno));
		else
			fm_info("commitlog: deleted segment %s beyond the end "
			        "of the log",
			    name);
	}
}

/* A read-only view of a segment, never beyond the file's end. */
struct view {
	const unsigned char *p;
	size_t len;
};

static int
view_map(struct fm_clog *log, const struct seg *s, struct view *v)
{
	struct stat st;

	v->p = NULL;
	v->len = 0;
	if (fstat(s->fd, &st) != 0)
		return fm_err_from_errno(errno);
	v->len = (uint64_t)st.st_size < log->seg_size ? (size_t)st.st_size
	                                              : (size_t)log->seg_size;
	if (v->len == 0)
		return 0;
	void *p = mmap(NULL, v->len, PROT_READ, MAP_SHARED, s->fd, 0);
	if (p == MAP_FAILED)
		return fm_err_from_errno(errno);
	v->p = p;
	return 0;
}

static void
view_unmap(struct view *v)
{
	if (v->p)
		munmap((void *)v->p, v->len);
	v->p = NULL;
}

/*
 * Recovery scan of one segment from in-segment offset *pos. Advances *pos
 * over valid records and *batch over batches (NO_BATCH when none is
 * open). Returns 1 when the segment ended cleanly (filler, or too little
 * room left for a record), 0 when a bad, zero or incomplete record stops
 * the scan at *pos.
 */
static int
scan_view(const struct fm_clog *log, const struct seg *s, const struct view *v,
    uint64_t *pos, uint64_t *batch)
{
	struct fm_record rec;
	uint64_t p = *pos;
	uint32_t size, magic;
	int ended = 0;

	for (;;) {
		if (log->seg_size - p < FM_REC_HEADER_SIZE) {
			ended = 1;
			break;
		}
		if (v->len < p + 12)
			break;
		fm_record_peek(v->p + p, &size, &magic);
		if (magic == FM_REC_BLANK_MAGIC && size == log->seg_size - p &&
		    *batch == NO_BATCH) {
			ended = 1;
			break;
		}
		if (magic != FM_REC_MAGIC || size < FM_REC_HEADER_SIZE ||
		    size > v->len - p)
			break;
		if (fm_record_decode(v->p + p, size, &rec) != 0 ||
		    rec.log_offset != s->base + p)
			break;
		if (rec.flags & FM_REC_F_BATCH_MORE) {
			if (*batch == NO_BATCH)
				*batch = s->base + p;
		} else {
			*batch = NO_BATCH;
		}
		p += size;
	}
	*pos = p;
	return ended;
}

/* Scans from the start of segs[first] to the end of the valid log. */
static int
scan_log(struct fm_clog *log, size_t first, uint64_t *end)
{
	uint64_t batch = NO_BATCH, pos = 0;
	size_t i = first;
	int rc;

	for (;;) {
		struct seg *s = &log->segs[i];
		struct view v;
		int ended;

		rc = view_map(log, s, &v);
		if (rc != 0) {
			fm_error("commitlog: cannot map segment %020" PRIu64
			         ": %s",
			    s->base, fm_err_msg(rc));
			return rc;
		}
		pos = 0;
		ended = scan_view(log, s, &v, &pos, &batch);
		view_unmap(&v);
		if (!ended || batch != NO_BATCH || i + 1 == log->nsegs) {
			*end = batch != NO_BATCH ? batch : s->base + pos;
			return 0;
		}
		i++;
	}
}

/* Zeroes, chunk by chunk, whatever is not zero from offset end to the
 * end of its segment, so that a later scan can never mistake old bytes
 * for records; untouched chunks cost no write. */
static int
zero_tail(struct fm_clog *log, struct seg *s, uint64_t end)
{
	static const unsigned char zeros[ZERO_CHUNK];
	uint64_t first = UINT64_MAX, last = 0;
	struct view v;
	int rc;

	rc = view_map(log, s, &v);
	if (rc != 0)
		return rc;
	for (uint64_t a = end - s->base; a < v.len; a += ZERO_CHUNK) {
		size_t n = v.len - a < ZERO_CHUNK ? v.len - a : ZERO_CHUNK;
		if (memcmp(v.p + a, zeros, n) == 0)
			continue;
		rc = write_full(s->fd, zeros, n, a);
		if (rc != 0)
			goto out;
		if (first == UINT64_MAX)
			first = a;
		last = a + n;
	}
	if (first != UINT64_MAX)
		fm_info("commitlog: recovery cut segment %020" PRIu64
		        " at log offset %" PRIu64 ": zeroed %" PRIu64
		        " bytes of torn tail",
		    s->base, end, last - (end - s->base));
out:
	view_unmap(&v);
	return rc;
}

/* Brings a short active segment back to its full preallocated size. */
static int
seg_fill(struct fm_clog *log, struct seg *s)
{
	struct stat st;

	if (fstat(s->fd, &st) != 0)
		return fm_err_from_errno(errno);
	if ((uint64_t)st.st_size >= log->seg_size)
		return 0;
	if (fm_os_fallocate(s->fd, 0, (off_t)log->seg_size) != 0)
		return fm_err_from_errno(errno);
	return 0;
}

static int
sync_range(struct fm_clog *log, size_t from)
{
	for (size_t i = from; i < log->nsegs; i++)
		if (fm_os_fdatasync(log->segs[i].fd) != 0) {
			set_failed(log, "a segment", errno);
			return -FM_E_IO;
		}
	return 0;
}

/* Segment files must follow each other; a hole below the checkpoint means
 * data is missing, a hole above it only ends the log early. */
static int
check_contiguous(struct fm_clog *log, uint64_t ckpt)
{
	for (size_t i = 1; i < log->nsegs; i++) {
		uint64_t want = seg_end(log, &log->segs[i - 1]);
		if (log->segs[i].base == want)
			continue;
		if (want < ckpt) {
			fm_error("commitlog: segment %020" PRIu64
			         " is missing in %s, below the checkpoint "
			         "%" PRIu64,
			    want, log->dir, ckpt);
			return -FM_E_CORRUPT;
		}
		drop_segments_from(log, i);
		break;
	}
	return 0;
}

/* The end of the log, found by scanning from the segment holding the
 * checkpoint (so a bad record below the checkpoint in that segment is
 * caught too). */
static int
find_end(struct fm_clog *log, uint64_t ckpt, uint64_t *end)
{
	long i;

	if (log->nsegs == 0) {
		*end = 0;
		return 0;
	}
	if (ckpt < log->segs[0].base)
		ckpt = log->segs[0].base;
	i = seg_find(log, ckpt);
	if (i < 0) {
		*end = seg_end(log, &log->segs[log->nsegs - 1]);
		return 0;
	}
	return scan_log(log, (size_t)i, end);
}

/* Base of the segment holding offset, or of the last one. */
static uint64_t
end_segment(const struct fm_clog *log, uint64_t offset)
{
	long i = seg_find(log, offset);

	if (i < 0)
		return log->nsegs ? log->segs[log->nsegs - 1].base : 0;
	return log->segs[i].base;
}

static int
recover(struct fm_clog *log, uint64_t ckpt)
{
	uint64_t end;
	long t;
	int rc;

	rc = check_contiguous(log, ckpt);
	if (rc != 0)
		return rc;
	rc = find_end(log, ckpt, &end);
	if (rc != 0)
		return rc;
	if (end < ckpt) {
		fm_error("commitlog: the log in %s ends at offset %" PRIu64
		         " (segment %020" PRIu64
		         "), below the checkpoint %" PRIu64
		         ": a record there is corrupt or missing",
		    log->dir, end, end_segment(log, end), ckpt);
		return -FM_E_CORRUPT;
	}
	t = seg_find(log, end);
	if (t >= 0) {
		drop_segments_from(log, (size_t)t + 1);
		rc = zero_tail(log, &log->segs[t], end);
		if (rc == 0)
			rc = seg_fill(log, &log->segs[t]);
		if (rc != 0)
			return rc;
	}
	rc = sync_dir(log);
	if (rc == 0 && log->nsegs > 0) {
		long c = seg_find(log, ckpt);
		rc = sync_range(log, c >= 0 ? (size_t)c : log->nsegs - 1);
	}
	if (rc == 0)
		atomic_store(&log->write_offset, end);
	return rc;
}

/* A clean marker is trusted only if the segments agree with it. */
static int
clean_consistent(struct fm_clog *log, uint64_t off)
{
	if (log->nsegs == 0)
		return off == 0;
	for (size_t i = 1; i < log->nsegs; i++)
		if (log->segs[i].base != seg_end(log, &log->segs[i - 1]))
			return 0;
	return off >= log->segs[0].base &&
	    off <= seg_end(log, &log->segs[log->nsegs - 1]);
}

static int
open_markers(struct fm_clog *log)
{
	uint64_t ckpt = 0, clean = 0;
	int rc;

	rc = marker_read(log, CKPT_FILE, CKPT_MAGIC, &ckpt);
	if (rc == -FM_E_CORRUPT)
		fm_warn("commitlog: checkpoint in %s is unreadable; scanning "
		        "the whole log",
		    log->dir);
	else if (rc != 0 && rc != -FM_E_NOT_FOUND)
		return rc;
	if (rc != 0)
		ckpt = 0;
	rc = marker_read(log, CLEAN_FILE, CLEAN_MAGIC, &clean);
	if (rc == 0 && clean_consistent(log, clean)) {
		log->was_clean = 1;
		atomic_store(&log->write_offset, clean);
		if (unlinkat(log->dirfd, CLEAN_FILE, 0) != 0)
			return fm_err_from_errno(errno);
		return sync_dir(log);
	}
	if (rc == 0 || rc == -FM_E_CORRUPT)
		fm_warn("commitlog: clean marker in %s disagrees with the "
		        "segments; recovering",
		    log->dir);
	else if (rc != -FM_E_NOT_FOUND)
		return rc;
	if (log->nsegs > 0)
		fm_info("commitlog: %s was not closed cleanly; recovering "
		        "from offset %" PRIu64,
		    log->dir, ckpt);
	return recover(log, ckpt);
}

/* The first segment of an empty log. */
static int
ensure_segment(struct fm_clog *log)
{
	int fd;

	if (log->nsegs > 0)
		return 0;
	return seg_create(log, atomic_load(&log->write_offset), &fd);
}

#define MAX_SYNC_FDS 16

/* dup()s the descriptors of up to MAX_SYNC_FDS segments holding bytes in
 * [*from, to), so they can be synced without the lock, and advances
 * *from past them. Should dup fail, that segment is synced right here,
 * under the lock: slower, never wrong. Returns how many fds, or -errno of
 * a failed fdatasync. */
static int
collect_fds(struct fm_clog *log, uint64_t *from, uint64_t to, int *fds)
{
	int n = 0, rc = 0;

	pthread_rwlock_rdlock(&log->lock);
	for (size_t i = 0; i < log->nsegs && n < MAX_SYNC_FDS; i++) {
		struct seg *s = &log->segs[i];
		if (seg_end(log, s) <= *from || s->base >= to)
			continue;
		*from = seg_end(log, s);
		int fd = dup(s->fd);
		if (fd >= 0) {
			fds[n++] = fd;
		} else if (fm_os_fdatasync(s->fd) != 0) {
			rc = -errno;
			break;
		}
	}
	pthread_rwlock_unlock(&log->lock);
	if (n == 0 && rc == 0)
		*from = to; /* what is left was deleted meanwhile */
	return rc != 0 ? rc : n;
}

/* fdatasyncs every segment holding bytes in [from, to). Returns 0 or the
 * errno of the first failure. */
static int
sync_segments(struct fm_clog *log, uint64_t from, uint64_t to)
{
	int fds[MAX_SYNC_FDS];
	int errnum = 0;

	while (from < to && errnum == 0) {
		int n = collect_fds(log, &from, to, fds);
		if (n < 0)
			return -n;
		for (int i = 0; i < n; i++) {
			if (errnum == 0 && fm_os_fdatasync(fds[i]) != 0)
				errnum = errno;
			close(fds[i]);
		}
	}
	return errnum;
}

/* Syncs everything written so far and publishes it as flushed. Caller
 * holds syncmu. */
static int
flush_locked(struct fm_clog *log)
{
	uint64_t from = atomic_load(&log->flushed_offset);
	uint64_t to =
	    atomic_load_explicit(&log->write_offset, memory_order_acquire);
	int errnum;

	if (atomic_load(&log->failed))
		return -FM_E_IO;
	if (to <= from)
		return 0;
	errnum = sync_segments(log, from, to);
	if (errnum != 0) {
		set_failed(log, "a segment", errnum);
		return -FM_E_IO;
	}
	pthread_mutex_lock(&log->fmu);
	atomic_store(&log->flushed_offset, to);
	pthread_cond_broadcast(&log->dcond);
	pthread_mutex_unlock(&log->fmu);
	notify_flush(log);
	return 0;
}

static int
flush_once(struct fm_clog *log)
{
	int rc;

	pthread_mutex_lock(&log->syncmu);
	rc = flush_locked(log);
	pthread_mutex_unlock(&log->syncmu);
	return rc;
}

int
fm_clog_flush(struct fm_clog *log)
{
	return flush_once(log);
}

static void
maybe_checkpoint(struct fm_clog *log)
{
	uint64_t f = atomic_load(&log->flushed_offset);

	if (f == log->ckpt_offset || atomic_load(&log->failed) ||
	    fm_mono_ms() - log->ckpt_ms < CKPT_PERIOD_MS)
		return;
	checkpoint_write(log, f);
}

/* Sleeps until a waiter asks for more than is flushed (SYNC_FLUSH) or the
 * period runs out; returns 0 when asked to stop. Caller holds fmu. */
static int
flusher_wait(struct fm_clog *log)
{
	struct timespec ts;
	int64_t period = log->sync_flush ? CKPT_PERIOD_MS : log->flush_interval;

	fm_deadline_ts(&ts, period);
	while (!log->stop) {
		if (log->sync_flush && !atomic_load(&log->failed) &&
		    log->requested > atomic_load(&log->flushed_offset))
			return 1;
		if (pthread_cond_timedwait(&log->fcond, &log->fmu, &ts) ==
		    ETIMEDOUT)
			return !log->stop;
	}
	return 0;
}

static void *
flusher_main(void *arg)
{
	struct fm_clog *log = arg;

	pthread_mutex_lock(&log->fmu);
	while (flusher_wait(log)) {
		pthread_mutex_unlock(&log->fmu);
		flush_once(log);
		maybe_checkpoint(log);
		pthread_mutex_lock(&log->fmu);
	}
	pthread_mutex_unlock(&log->fmu);
	return NULL;
}

static void
flusher_stop(struct fm_clog *log)
{
	if (!log->flusher_running)
		return;
	pthread_mutex_lock(&log->fmu);
	log->stop = 1;
	pthread_cond_signal(&log->fcond);
	pthread_cond_broadcast(&log->dcond);
	pthread_mutex_unlock(&log->fmu);
	pthread_join(log->flusher, NULL);
	log->flusher_running = 0;
}

static void
clog_free(struct fm_clog *log)
{
	for (size_t i = 0; i < log->nsegs; i++)
		close(log->segs[i].fd);
	free(log->segs);
	if (log->ckpt_fd >= 0)
		close(log->ckpt_fd);
	if (log->dirfd >= 0)
		close(log->dirfd);
	pthread_rwlock_destroy(&log->lock);
	pthread_mutex_destroy(&log->fmu);
	pthread_mutex_destroy(&log->syncmu);
	pthread_cond_destroy(&log->fcond);
	pthread_cond_destroy(&log->dcond);
	free(log->wbuf);
	free(log->dir);
	free(log);
}

static struct fm_clog *
clog_new(const struct fm_clog_options *opt)
{
	struct fm_clog *log = xcalloc(1, sizeof *log);
	pthread_rwlockattr_t attr;

	log->dir = xstrdup(opt->dir);
	log->dirfd = -1;
	log->ckpt_fd = -1;
	log->seg_size = opt->segment_size;
	log->sync_flush = opt->sync_flush;
	log->on_flush = opt->on_flush;
	log->on_flush_arg = opt->on_flush_arg;
	log->flush_interval =
	    opt->flush_interval_ms > 0 ? opt->flush_interval_ms : 500;
	atomic_init(&log->retain_from, UINT64_MAX);
	/* Writers first: a steady stream of readers must not starve the
	 * appender adding a segment or retention removing one. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(
	    &attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&log->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&log->fmu, NULL);
	pthread_mutex_init(&log->syncmu, NULL);
	fm_cond_init_monotonic(&log->fcond);
	fm_cond_init_monotonic(&log->dcond);
	return log;
}

static int
open_dir(struct fm_clog *log)
{
	if (mkdir(log->dir, 0755) != 0 && errno != EEXIST) {
		fm_error("commitlog: cannot create %s: %s", log->dir,
		    strerror(errno));
		return fm_err_from_errno(errno);
	}
	log->dirfd = open(log->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (log->dirfd < 0)
		return fm_err_from_errno(errno);
	log->ckpt_fd =
	    openat(log->dirfd, CKPT_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (log->ckpt_fd < 0)
		return fm_err_from_errno(errno);
	return 0;
}

int
fm_clog_open(const struct fm_clog_options *opt, struct fm_clog **out)
{
	struct fm_clog *log;
	uint64_t w;
	int rc;

	if (opt->dir == NULL || opt->segment_size < MIN_SEGMENT ||
	    opt->segment_size > UINT32_MAX)
		return -FM_E_INVALID;
	log = clog_new(opt);
	rc = open_dir(log);
	if (rc == 0)
		rc = list_segments(log);
	if (rc == 0)
		rc = open_markers(log);
	if (rc == 0)
		rc = ensure_segment(log);
	if (rc != 0)
		goto fail;
	w = atomic_load(&log->write_offset);
	atomic_store(&log->min_offset, log->segs[0].base);
	atomic_store(&log->flushed_offset, w);
	rc = checkpoint_write(log, w);
	if (rc != 0)
		goto fail;
	if (pthread_create(&log->flusher, NULL, flusher_main, log) != 0) {
		rc = -FM_E_NOMEM;
		goto fail;
	}
	log->flusher_running = 1;
	*out = log;
	return 0;
fail:
	fm_error("commitlog: cannot open %s: %s", opt->dir, fm_err_msg(rc));
	clog_free(log);
	return rc;
}

void
fm_clog_close(struct fm_clog *log)
{
	uint64_t w;

	flusher_stop(log);
	w = atomic_load(&log->write_offset);
	if (flush_once(log) == 0 && checkpoint_write(log, w) == 0 &&
	    clean_write(log, w) != 0)
		fm_warn(
		    "commitlog: cannot write the clean marker in %s", log->dir);
	clog_free(log);
}

void
fm_clog_abandon(struct fm_clog *log)
{
	flusher_stop(log);
	clog_free(log);
}

/* Encodes the batch at log offset pos into wbuf, linking it with
 * BATCH_MORE. */
static int
encode_batch(struct fm_clog *log, struct fm_record *recs, size_t n,
    uint64_t pos, size_t total)
{
	size_t off = 0;

	if (log->wcap < total) {
		free(log->wbuf);
		log->wbuf = xmalloc(total);
		log->wcap = total;
	}
	for (size_t i = 0; i < n; i++) {
		struct fm_record *r = &recs[i];
		if (i + 1 < n)
			r->flags |= FM_REC_F_BATCH_MORE;
		else
			r->flags &= ~FM_REC_F_BATCH_MORE;
		r->log_offset = pos + off;
		int rc = fm_record_encode(r, log->wbuf + off);
		if (rc != 0)
			return rc;
		off += r->size;
	}
	return 0;
}

/* Where the appender stands: the segment holding w (or the last one when
 * w is its exact end) and the next one if it already exists. */
struct wpos {
	uint64_t base; /* of the current segment */
	int fd;
	int next_fd; /* -1 when the next segment does not exist yet */
};

static void
locate(struct fm_clog *log, uint64_t w, struct wpos *wp)
{
	long i;

	pthread_rwlock_rdlock(&log->lock);
	i = seg_find(log, w);
	if (i < 0)
		i = (long)log->nsegs - 1;
	wp->base = log->segs[i].base;
	wp->fd = log->segs[i].fd;
	wp->next_fd = (size_t)i + 1 < log->nsegs ? log->segs[i + 1].fd : -1;
	pthread_rwlock_unlock(&log->lock);
}

/* Ends the current segment with a filler (when a record header would
 * still fit, else readers skip the few bytes) and makes sure the next
 * segment exists. write_offset does not move here. */
static int
roll(struct fm_clog *log, uint64_t w, struct wpos *wp)
{
	uint64_t end = wp->base + log->seg_size;
	unsigned char blank[12];
	int rc;

	if (wp->next_fd < 0) {
		rc = seg_create(log, end, &wp->next_fd);
		if (rc != 0)
			return rc;
	}
	if (end - w < FM_REC_HEADER_SIZE)
		return 0;
	fm_record_encode_blank(blank, (uint32_t)(end - w));
	return write_full(wp->fd, blank, sizeof blank, w - wp->base);
}

static int
batch_size(
    const struct fm_record *recs, size_t n, uint64_t seg_size, size_t *total)
{
	uint64_t t = 0;

	for (size_t i = 0; i < n; i++) {
		t += fm_record_size(&recs[i]);
		if (t > seg_size)
			return -FM_E_TOO_LARGE;
	}
	*total = (size_t)t;
	return 0;
}

int
fm_clog_append(
    struct fm_clog *log, struct fm_record *recs, size_t n, uint64_t *end)
{
	uint64_t w = atomic_load(&log->write_offset), pos;
	struct wpos wp;
	size_t total;
	int rc, rolling;

	if (atomic_load(&log->failed))
		return -FM_E_NOT_WRITABLE;
	if (n == 0 || recs == NULL)
		return -FM_E_INVALID;
	rc = batch_size(recs, n, log->seg_size, &total);
	if (rc != 0)
		return rc;
	locate(log, w, &wp);
	rolling = total > wp.base + log->seg_size - w;
	pos = rolling ? wp.base + log->seg_size : w;
	rc = encode_batch(log, recs, n, pos, total);
	if (rc != 0)
		return rc;
	if (rolling) {
		rc = roll(log, w, &wp);
		if (rc != 0)
			return rc;
		wp.fd = wp.next_fd;
		wp.base = pos;
	}
	rc = write_full(wp.fd, log->wbuf, total, pos - wp.base);
	if (rc != 0) {
		fm_warn("commitlog: append of %zu bytes at offset %" PRIu64
		        " failed: %s",
		    total, pos, fm_err_msg(rc));
		return rc;
	}
	atomic_store_explicit(
	    &log->write_offset, pos + total, memory_order_release);
	*end = pos + total;
	return 0;
}

void
fm_clog_request_flush(struct fm_clog *log, uint64_t end)
{
	if (!log->sync_flush)
		return;
	pthread_mutex_lock(&log->fmu);
	if (end > log->requested) {
		log->requested = end;
		pthread_cond_signal(&log->fcond);
	}
	pthread_mutex_unlock(&log->fmu);
}

int
fm_clog_failed(struct fm_clog *log)
{
	return atomic_load(&log->failed);
}

int
fm_clog_wait_durable(struct fm_clog *log, uint64_t end)
{
	int rc;

	if (!log->sync_flush)
		return atomic_load(&log->failed) ? -FM_E_IO : 0;
	if (end > atomic_load(&log->write_offset))
		return -FM_E_INVALID;
	pthread_mutex_lock(&log->fmu);
	if (end > log->requested) {
		log->requested = end;
		pthread_cond_signal(&log->fcond);
	}
	while (atomic_load(&log->flushed_offset) < end &&
	    !atomic_load(&log->failed) && !log->stop)
		pthread_cond_wait(&log->dcond, &log->fmu);
	if (atomic_load(&log->flushed_offset) >= end)
		rc = 0;
	else
		rc = atomic_load(&log->failed) ? -FM_E_IO : -FM_E_SHUTDOWN;
	pthread_mutex_unlock(&log->fmu);
	return rc;
}

static int
corrupt(uint64_t base, uint64_t offset, const char *why)
{
	fm_error("commitlog: corrupt record in segment %020" PRIu64
	         " at offset %" PRIu64 ": %s",
	    base, offset, why);
	return -FM_E_CORRUPT;
}

/* Copies the record at offset into buf. Caller holds the read lock and
 * has checked offset against [min, w). Returns 1 for a filler (the caller
 * skips to *next), 0 for a record, or an error. seq says the offset is
 * known to be a record boundary, so a bad magic is corruption rather
 * than "no record starts here". */
static int
read_one(struct fm_clog *log, uint64_t offset, uint64_t w, int seq,
    struct fm_buf *buf, struct fm_record *rec, uint64_t *next)
{
	long i = seg_find(log, offset);
	uint64_t end, limit, first;
	uint32_t size, magic;
	struct seg *s;
	int rc;

	if (i < 0)
		return -FM_E_NOT_FOUND;
	s = &log->segs[i];
	end = seg_end(log, s);
	limit = end < w ? end : w;
	if (limit - offset < FM_REC_HEADER_SIZE) {
		*next = end;
		return seq && limit == end ? 1 : -FM_E_NOT_FOUND;
	}
	first = limit - offset < READ_AHEAD ? limit - offset : READ_AHEAD;
	fm_buf_reset(buf);
	fm_buf_reserve(buf, (size_t)first);
	rc = read_full(s->fd, buf->data, (size_t)first, offset - s->base);
	if (rc != 0)
		return rc == -FM_E_CORRUPT ? corrupt(s->base, offset, "short")
		                           : rc;
	fm_record_peek((unsigned char *)buf->data, &size, &magic);
	if (magic == FM_REC_BLANK_MAGIC) {
		*next = end;
		return seq ? 1 : -FM_E_NOT_FOUND;
	}
	if (magic != FM_REC_MAGIC)
		return seq ? corrupt(s->base, offset, "bad magic")
		           : -FM_E_NOT_FOUND;
	if (size < FM_REC_HEADER_SIZE || size > limit - offset)
		return corrupt(s->base, offset, "bad size");
	fm_buf_reserve(buf, size);
	if (size > first) {
		rc = read_full(s->fd, buf->data + first, size - first,
		    offset - s->base + first);
		if (rc != 0)
			return rc == -FM_E_CORRUPT
			    ? corrupt(s->base, offset, "short")
			    : rc;
	}
	buf->len = size;
	buf->data[size] = '\0';
	if (fm_record_decode((unsigned char *)buf->data, size, rec) != 0)
		return corrupt(s->base, offset, "bad checksum or lengths");
	if (rec->log_offset != offset)
		return seq ? corrupt(s->base, offset, "misplaced")
		           : -FM_E_NOT_FOUND;
	*next = offset + size;
	return 0;
}

static int
read_at(struct fm_clog *log, uint64_t offset, int seq, struct fm_buf *buf,
    struct fm_record *rec, uint64_t *next)
{
	int rc;

	pthread_rwlock_rdlock(&log->lock);
	for (;;) {
		uint64_t w = atomic_load_explicit(
		    &log->write_offset, memory_order_acquire);
		if (offset >= w) {
			rc = -FM_E_NOT_FOUND;
			break;
		}
		if (offset < atomic_load(&log->min_offset)) {
			rc = -FM_E_GONE;
			break;
		}
		rc = read_one(log, offset, w, seq, buf, rec, next);
		if (rc != 1)
			break;
		offset = *next;
	}
	pthread_rwlock_unlock(&log->lock);
	return rc;
}

int
fm_clog_read(struct fm_clog *log, uint64_t offset, struct fm_buf *buf,
    struct fm_record *rec)
{
	uint64_t next;

	return read_at(log, offset, 0, buf, rec, &next);
}

int
fm_clog_read_next(struct fm_clog *log, uint64_t offset, struct fm_buf *buf,
    struct fm_record *rec, uint64_t *next)
{
	return read_at(log, offset, 1, buf, rec, next);
}

uint64_t
fm_clog_min_offset(struct fm_clog *log)
{
	return atomic_load(&log->min_offset);
}

uint64_t
fm_clog_write_offset(struct fm_clog *log)
{
	return atomic_load(&log->write_offset);
}

uint64_t
fm_clog_flushed_offset(struct fm_clog *log)
{
	return atomic_load(&log->flushed_offset);
}

int
fm_clog_was_clean(struct fm_clog *log)
{
	return log->was_clean;
}

void
fm_clog_usage(struct fm_clog *log, size_t *segments, uint64_t *bytes)
{
	struct stat st;
	uint64_t b = 0;

	pthread_rwlock_rdlock(&log->lock);
	for (size_t i = 0; i < log->nsegs; i++)
		if (fstat(log->segs[i].fd, &st) == 0)
			b += (uint64_t)st.st_blocks * 512;
	*segments = log->nsegs;
	pthread_rwlock_unlock(&log->lock);
	*bytes = b;
}

int64_t
fm_clog_oldest_ts(struct fm_clog *log)
{
	struct fm_buf buf = FM_BUF_INIT;
	struct fm_record rec;
	uint64_t next;
	int64_t ts = 0;

	if (fm_clog_read_next(
	        log, fm_clog_min_offset(log), &buf, &rec, &next) == 0)
		ts = rec.store_ts;
	fm_buf_free(&buf);
	return ts;
}

void
fm_clog_retain_from(struct fm_clog *log, uint64_t offset)
{
	atomic_store(&log->retain_from, offset);
}

/* Takes the oldest segment out of segs[] if it may go: not the last one,
 * not holding write_offset (invariant 5) nor bytes at or above the floor
 * (invariant 7), last written before cutoff. */
static int
take_expired(struct fm_clog *log, int64_t cutoff, struct seg *out)
{
	struct stat st;
	int taken = 0;

	pthread_rwlock_wrlock(&log->lock);
	if (log->nsegs < 2 ||
	    seg_end(log, &log->segs[0]) > atomic_load(&log->write_offset) ||
	    seg_end(log, &log->segs[0]) > atomic_load(&log->retain_from))
		goto out;
	if (fstat(log->segs[0].fd, &st) != 0 ||
	    (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000 >=
	        cutoff)
		goto out;
	*out = log->segs[0];
	log->nsegs--;
	memmove(log->segs, log->segs + 1, log->nsegs * sizeof *log->segs);
	atomic_store(&log->min_offset, log->segs[0].base);
	taken = 1;
out:
	pthread_rwlock_unlock(&log->lock);
	return taken;
}

int
fm_clog_delete_expired(
    struct fm_clog *log, int64_t older_than_ms, int max_files)
{
	char name[NAME_LEN + 1];
	struct seg s;
	int n = 0;

	while (n < max_files && take_expired(log, older_than_ms, &s)) {
		seg_name(name, s.base);
		close(s.fd);
		if (unlinkat(log->dirfd, name, 0) != 0)
			fm_warn("commitlog: cannot delete segment %s/%s: %s",
			    log->dir, name, strerror(errno));
		else
			fm_info("commitlog: deleted expired segment %s/%s",
			    log->dir, name);
		n++;
	}
	return n;
}
