/*
 * commitlog.h - the append-only commit log: the truth of the store.
 *
 * The log is a sequence of fixed-size segment files in one directory,
 * each named by the 20-digit decimal log offset of its first byte
 * (00000000000000000000, 00000000001073741824, ...) and preallocated to
 * segment_size. Records never straddle two segments: when an append does
 * not fit, the rest of the segment is filled with a blank record and the
 * append goes to the next segment. A batch (records linked by
 * FM_REC_F_BATCH_MORE) is written as one unit into one segment.
 *
 * Offsets: every offset here is a commit log offset (bytes since the log
 * began). min_offset <= flushed_offset <= write_offset. Bytes below
 * flushed_offset are on disk (fdatasync returned); bytes below
 * write_offset are readable.
 *
 * Durability files in the directory:
 *   checkpoint  - 8 bytes + CRC: an offset known to be flushed; written
 *                 (and synced) by the flusher about once a second.
 *   clean       - present only after fm_clog_close; holds write_offset.
 * Recovery at open: without the clean marker, scan from the checkpoint,
 * verifying every record's CRC, up to the first bad or zero record; that
 * is the new write_offset, and the torn bytes after it are zeroed (an
 * unfinished batch is cut back to its first record). A log that ends
 * below the checkpoint, or a bad record below it, is corruption: open
 * fails with -FM_E_CORRUPT and logs the segment and offset.
 *
 * Threads: appends must be serialised by the caller (the store holds one
 * append lock). Reads, wait_durable and the stats calls are safe from any
 * thread at any time, also while fm_clog_delete_expired runs. A flusher
 * thread owned by the log does the syncing: group commit, so every append
 * waiting in fm_clog_wait_durable shares the next fdatasync.
 *
 * Failure: a failed write leaves write_offset where it was (the append is
 * not done). A failed fdatasync makes the log read-only until restart
 * (the page cache can no longer be trusted): waiters get -FM_E_IO, later
 * appends -FM_E_NOT_WRITABLE.
 */
#ifndef FM_STORE_COMMITLOG_H
#define FM_STORE_COMMITLOG_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "store/record.h"

struct fm_clog;

struct fm_clog_options {
	const char *dir; /* borrowed; created if missing */
	uint64_t segment_size; /* bytes per segment file (>= 64 KiB) */
	int sync_flush; /* 1: SYNC_FLUSH, 0: ASYNC_FLUSH */
	int flush_interval_ms; /* ASYNC_FLUSH: flush at least this often */
	/* Called on the flusher thread after flushed_offset moved or the log
	 * failed; may be NULL. Must not block nor call back into the log's
	 * flush functions. */
	void (*on_flush)(void *arg);
	void *on_flush_arg;
};

/* Open (and recover) the log. On success *out is new, owned by the caller
 * (fm_clog_close). */
int fm_clog_open(const struct fm_clog_options *opt, struct fm_clog **out);
/* Stop the flusher, flush, write the clean marker, free everything. */
void fm_clog_close(struct fm_clog *log);
/* For tests: stop threads and free without flushing or writing the clean
 * marker, as if the process had died (the next open recovers). */
void fm_clog_abandon(struct fm_clog *log);

/* Append n records as one atomic unit. For each record the caller has set
 * every field but size, log_offset and the BATCH_MORE flag, which this
 * sets (log_offset and size are written back into recs[i]). The caller
 * serialises appends. *end receives the offset just after the last
 * record. Returns 0, -FM_E_TOO_LARGE (does not fit in one segment),
 * -FM_E_NOSPC, -FM_E_IO or -FM_E_NOT_WRITABLE. */
int fm_clog_append(
    struct fm_clog *log, struct fm_record *recs, size_t n, uint64_t *end);
/* Ask the flusher to make everything below end durable, without waiting:
 * on_flush reports the progress (SYNC_FLUSH; a no-op for ASYNC_FLUSH). */
void fm_clog_request_flush(struct fm_clog *log, uint64_t end);
/* Make everything written so far durable now, from any thread (shares
 * the flusher's serialisation). Returns 0 or -FM_E_IO. */
int fm_clog_flush(struct fm_clog *log);
/* 1 once a failed fdatasync made the log read-only. */
int fm_clog_failed(struct fm_clog *log);
/* Block until everything below end is on disk (SYNC_FLUSH) or return at
 * once (ASYNC_FLUSH). Returns 0 or -FM_E_IO when the flush failed. */
int fm_clog_wait_durable(struct fm_clog *log, uint64_t end);

/* Read the record starting at offset into buf (replacing its contents) and
 * decode it into rec, whose pointers point into buf. Verifies the CRC and
 * that the record says it lives at offset. Returns 0, -FM_E_NOT_FOUND
 * (offset outside [min, write) or no record starts there), -FM_E_GONE
 * (its segment was deleted) or -FM_E_CORRUPT (logged). */
int fm_clog_read(struct fm_clog *log, uint64_t offset, struct fm_buf *buf,
    struct fm_record *rec);
/* Like fm_clog_read, for sequential scans: skips blank fillers, sets *next
 * to the offset after the record. Returns -FM_E_NOT_FOUND at write_offset. */
int fm_clog_read_next(struct fm_clog *log, uint64_t offset, struct fm_buf *buf,
    struct fm_record *rec, uint64_t *next);

uint64_t fm_clog_min_offset(struct fm_clog *log);
uint64_t fm_clog_write_offset(struct fm_clog *log);
uint64_t fm_clog_flushed_offset(struct fm_clog *log);
/* 1 when the previous run ended with fm_clog_close (no recovery needed). */
int fm_clog_was_clean(struct fm_clog *log);
/* Number of segment files and bytes they take on disk. */
void fm_clog_usage(struct fm_clog *log, size_t *segments, uint64_t *bytes);
/* Store timestamp of the first record of the oldest segment, 0 if none. */
int64_t fm_clog_oldest_ts(struct fm_clog *log);

/* The owner's retention floor: fm_clog_delete_expired keeps every segment
 * holding bytes at or above offset (and so every later one). UINT64_MAX,
 * the value at open, for none. Safe from any thread. */
void fm_clog_retain_from(struct fm_clog *log, uint64_t offset);
/* Delete up to max_files of the oldest segments whose newest record was
 * stored before older_than_ms (epoch ms), stopping at the first that must
 * stay; never the segment being written nor one the floor keeps.
 * Returns how many were deleted. */
int fm_clog_delete_expired(
    struct fm_clog *log, int64_t older_than_ms, int max_files);

#endif
