/*
 * timer.c - the timer service (see timer.h): the heap of pending delayed
 * messages, the thread that delivers them when due, and their durable
 * delivery marks.
 *
 * Owns struct fm_timer. Does not own how a delayed message enters the
 * timer queue (publish.c) nor the marks' storage (state.db, via the
 * store).
 *
 * Invariants:
 *  1. scanned only grows: every timer queue offset below it is in the
 *     heap, in the batch being delivered, or delivered (marked, or about
 *     to be). Offsets at or above it are not yet looked at.
 *  2. low (the durable watermark) <= the smallest offset in the heap or
 *     the batch being delivered, and <= scanned. It only grows.
 *  3. The heap, scanned, known_max and stop are touched under lock; the
 *     thread never holds lock while it reads or appends, so the store's
 *     notify hook (fm_timer_notify) may take it from an append.
 *  4. deliver_at is wall-clock epoch ms but the thread sleeps on a
 *     CLOCK_MONOTONIC condvar: it converts the distance to the earliest
 *     entry into a monotonic deadline, at most WAIT_MAX_MS ahead, so a
 *     step of the wall clock is noticed within that time.
 */
#include "config.h" /* first: it defines _GNU_SOURCE */

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "broker/internal.h"
#include "broker/timer.h"

#define BATCH_MAX 256 /* due entries re-appended in one fm_store_append */
#define SCAN_MAX 256 /* timer queue entries read per scan step */
#define WAIT_MAX_MS 1000 /* longest sleep (invariant 4) */
#define RETRY_MS 1000 /* after a failed re-append */

struct fm_timer {
	struct fm_broker *b; /* borrowed */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC: new entries, stop */
	pthread_t thread;
	int started; /* thread was created */
	int stop;
	struct fm_timer_heap heap; /* pending entries (invariant 1) */
	uint64_t scanned; /* invariant 1 */
	uint64_t known_max; /* the timer queue's end, as last notified */
	uint64_t low; /* durable watermark (invariant 2); thread only */
	uint64_t *skip; /* marks >= low loaded at start, sorted; thread only */
	size_t nskip;
	int recheck; /* low may sit on a loaded mark: recompute it once */
};

/* ---- the heap ---- */

static int
entry_less(const struct fm_timer_entry *a, const struct fm_timer_entry *b)
{
	return a->at < b->at || (a->at == b->at && a->offset < b->offset);
}

void
fm_timer_heap_push(struct fm_timer_heap *h, struct fm_timer_entry e)
{
	size_t i;

	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 64;
		h->v = xreallocarray(h->v, h->cap, sizeof(*h->v));
	}
	i = h->n++;
	while (i > 0 && entry_less(&e, &h->v[(i - 1) / 2])) {
		h->v[i] = h->v[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->v[i] = e;
}

int
fm_timer_heap_pop(struct fm_timer_heap *h, struct fm_timer_entry *out)
{
	struct fm_timer_entry last;
	size_t i = 0;

	if (h->n == 0)
		return 0;
	*out = h->v[0];
	last = h->v[--h->n];
	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && entry_less(&h->v[c + 1], &h->v[c]))
			c++;
		if (!entry_less(&h->v[c], &last))
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n > 0)
		h->v[i] = last;
	return 1;
}

void
fm_timer_heap_free(struct fm_timer_heap *h)
{
	free(h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}

/* ---- reading the timer queue ---- */

static int
skipped(struct fm_timer *t, uint64_t off)
{
	size_t lo = 0, hi = t->nskip;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->skip[mid] == off)
			return 1;
		if (t->skip[mid] < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* The timer record at queue offset off into buf/rec. */
static int
read_entry(struct fm_timer *t, uint64_t off, struct fm_buf *buf,
    struct fm_record *rec, uint64_t *log_offset)
{
	struct fm_cq_entry e;
	size_t n = 0;
	int err = fm_store_cq_read(t->b->st, FM_TIMER_TOPIC, 0, off, &e, 1, &n);

	if (err == 0 && n == 0)
		err = -FM_E_NOT_FOUND;
	if (err != 0)
		return err;
	*log_offset = e.log_offset;
	return fm_store_read(t->b->st, e.log_offset, buf, rec);
}

/* Read up to SCAN_MAX entries from scanned on into the heap. */
static void
scan_step(struct fm_timer *t)
{
	struct fm_cq_entry es[SCAN_MAX];
	struct fm_buf buf = FM_BUF_INIT;
	uint64_t from, min, max;
	size_t n = 0;
	int err;

	pthread_mutex_lock(&t->lock);
	from = t->scanned;
	pthread_mutex_unlock(&t->lock);
	err = fm_store_cq_read(
	    t->b->st, FM_TIMER_TOPIC, 0, from, es, SCAN_MAX, &n);
	if (err == -FM_E_GONE) {
		fm_store_queue_range(t->b->st, FM_TIMER_TOPIC, 0, &min, &max);
		fm_warn("timer: entries [%" PRIu64 ", %" PRIu64
		        ") were removed by retention before delivery",
		    from, min);
		pthread_mutex_lock(&t->lock);
		t->scanned = min;
		pthread_mutex_unlock(&t->lock);
		return;
	}
	for (size_t i = 0; err == 0 && i < n; i++) {
		struct fm_timer_entry e = {0, from + i};
		struct fm_record rec;

		if (skipped(t, e.offset))
			continue;
		if (fm_store_read(t->b->st, es[i].log_offset, &buf, &rec) == 0)
			e.at = rec.deliver_at;
		else
			fm_error("timer: cannot read entry %" PRIu64
			         ", delivering what can be read of it now",
			    e.offset);
		pthread_mutex_lock(&t->lock);
		fm_timer_heap_push(&t->heap, e);
		pthread_mutex_unlock(&t->lock);
	}
	fm_buf_free(&buf);
	pthread_mutex_lock(&t->lock);
	if (err != 0 || n == 0) {
		/* nothing readable although notified: wait for the next
		 * notice rather than spin */
		if (err != 0)
			fm_error("timer: cannot read the timer queue: %s",
			    fm_err_msg(err));
		t->known_max = t->scanned;
	} else {
		t->scanned = from + n;
	}
	pthread_mutex_unlock(&t->lock);
}

/* ---- delivering ---- */

/* One due message on its way back to its topic. */
struct job {
	uint64_t offset; /* in the timer queue */
	struct fm_buf buf; /* the timer record's bytes */
	struct fm_record rec; /* points into buf */
	char *props; /* owned: the re-appended properties */
	char topic[FM_REC_MAX_TOPIC + 1]; /* real topic; "" if unknown */
	uint32_t qid; /* real queue */
	int ok; /* readable and well formed: to be re-appended */
};

/*
 * Properties of the re-appended record, from the timer record's
 * ("name\0value\0" pairs, record.h):
 *
 *   timer record:  user pairs.. __REAL_TOPIC\0orders\0 __REAL_QID\0 3\0
 *   re-appended:   user pairs.. ORIGIN_MESSAGE_ID\0<32 hex>\0
 *                               TIMER_DELIVER_MS\0<epoch ms>\0
 */
static void
rebuild_props(struct fm_timer *t, struct job *j, uint64_t log_offset)
{
	const char *p = j->rec.props, *end = p + j->rec.props_len;
	char id[FM_MSGID_LEN + 1], at[24];
	struct fm_buf out = FM_BUF_INIT;
	size_t len;

	while (p < end) {
		const char *name = p, *value = name + strlen(name) + 1;

		p = value + strlen(value) + 1;
		if (strcmp(name, FM_TIMER_PROP_TOPIC) == 0)
			snprintf(j->topic, sizeof(j->topic), "%s", value);
		else if (strcmp(name, FM_TIMER_PROP_QID) == 0)
			j->qid = (uint32_t)strtoul(value, NULL, 10);
		else
			fm_buf_add(&out, name, (size_t)(p - name));
	}
	fm_msgid_encode(&t->b->self, log_offset, id);
	snprintf(at, sizeof(at), "%" PRId64, j->rec.deliver_at);
	fm_buf_add(&out, "ORIGIN_MESSAGE_ID", sizeof("ORIGIN_MESSAGE_ID"));
	fm_buf_add(&out, id, strlen(id) + 1);
	fm_buf_add(&out, "TIMER_DELIVER_MS", sizeof("TIMER_DELIVER_MS"));
	fm_buf_add(&out, at, strlen(at) + 1);
	j->rec.props_len = (uint32_t)out.len;
	j->props = fm_buf_steal(&out, &len);
	j->rec.props = j->props;
}

/* Props must be NUL-terminated pairs for the walk in rebuild_props. */
static int
props_well_formed(const struct fm_record *r)
{
	uint32_t nuls = 0;

	if (r->props_len == 0)
		return 1;
	if (r->props[r->props_len - 1] != '\0')
		return 0;
	for (uint32_t i = 0; i < r->props_len; i++)
		nuls += r->props[i] == '\0';
	return nuls % 2 == 0;
}

static void
prepare_job(struct fm_timer *t, struct job *j)
{
	uint64_t log_offset;

	if (read_entry(t, j->offset, &j->buf, &j->rec, &log_offset) != 0 ||
	    !props_well_formed(&j->rec)) {
		fm_error("timer: entry %" PRIu64 " is unreadable; dropped",
		    j->offset);
		return;
	}
	rebuild_props(t, j, log_offset);
	if (j->topic[0] == '\0') {
		fm_error("timer: entry %" PRIu64 " names no topic; dropped",
		    j->offset);
		return;
	}
	j->ok = 1;
}

/* Make sure every real topic exists (auto-create when allowed) before
 * the read lock is taken once for the whole append: a thread may not take
 * that lock twice (broker.c). */
static void
create_topics(struct fm_timer *t, struct job *jobs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct fm_btopic *bt;
		char *cause = NULL;

		if (!jobs[i].ok)
			continue;
		if (fm_topics_acquire(t->b, jobs[i].topic, &bt, &cause) == 0) {
			fm_topics_release(t->b);
			continue;
		}
		fm_warn("timer: entry %" PRIu64 " for '%s' dropped: %s",
		    jobs[i].offset, jobs[i].topic, cause ? cause : "?");
		free(cause);
		jobs[i].ok = 0;
	}
}

/* Fill recs from the jobs still ok, under topics_lock (read), so that a
 * topic deleted since create_topics gets nothing. Returns how many. */
static size_t
fill_recs(
    struct fm_timer *t, struct job *jobs, size_t n, struct fm_record *recs)
{
	size_t m = 0;

	for (size_t i = 0; i < n; i++) {
		struct job *j = &jobs[i];
		struct fm_btopic *bt;
		struct fm_record *r;

		if (!j->ok)
			continue;
		if ((bt = fm_topics_find(t->b, j->topic)) == NULL) {
			fm_warn("timer: entry %" PRIu64
			        " dropped: topic '%s' was deleted",
			    j->offset, j->topic);
			j->ok = 0;
			continue;
		}
		r = &recs[m];
		*r = j->rec;
		r->flags = 0;
		r->topic = j->topic;
		r->topic_len = (uint16_t)strlen(j->topic);
		r->queue_id = j->qid % bt->conf.queues;
		r->deliver_at = 0;
		r->reconsume_times = 0;
		m++;
	}
	return m;
}

/* Put jobs back for a later try after a failed append. */
static void
requeue(struct fm_timer *t, struct job *jobs, size_t n)
{
	int64_t at = fm_now_ms() + RETRY_MS;

	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < n; i++)
		fm_timer_heap_push(
		    &t->heap, (struct fm_timer_entry){at, jobs[i].offset});
	pthread_mutex_unlock(&t->lock);
}

/* The new watermark once the given offsets are delivered: the smallest
 * offset still pending, or scanned when none is (invariant 2). */
static uint64_t
next_low(struct fm_timer *t, struct job *jobs, size_t n)
{
	uint64_t low = t->low;
	int moved = 0;

	for (size_t i = 0; i < n; i++)
		moved |= jobs[i].offset == low;
	if (!moved && !t->recheck)
		return low;
	t->recheck = 0;
	pthread_mutex_lock(&t->lock);
	low = t->scanned;
	for (size_t i = 0; i < t->heap.n; i++)
		if (t->heap.v[i].offset < low)
			low = t->heap.v[i].offset;
	pthread_mutex_unlock(&t->lock);
	return low < t->low ? t->low : low;
}

static void
mark(struct fm_timer *t, struct job *jobs, size_t n)
{
	uint64_t *offs = xcalloc(n, sizeof(*offs));
	uint64_t low = next_low(t, jobs, n);
	int err;

	for (size_t i = 0; i < n; i++)
		offs[i] = jobs[i].offset;
	err = fm_store_timer_mark(t->b->st, offs, n, low);
	if (err != 0)
		fm_error("timer: cannot record %zu deliveries (they may be "
		         "delivered again after a restart): %s",
		    n, fm_err_msg(err));
	else
		t->low = low;
	free(offs);
}

static void
deliver(struct fm_timer *t, const struct fm_timer_entry *due, size_t n)
{
	struct job *jobs = xcalloc(n, sizeof(*jobs));
	struct fm_record *recs = xcalloc(n, sizeof(*recs));
	size_t m;
	int err;

	for (size_t i = 0; i < n; i++) {
		jobs[i].offset = due[i].offset;
		prepare_job(t, &jobs[i]);
	}
	create_topics(t, jobs, n);
	pthread_rwlock_rdlock(&t->b->topics_lock);
	m = fill_recs(t, jobs, n, recs);
	err = m ? fm_store_append(t->b->st, recs, m) : 0;
	pthread_rwlock_unlock(&t->b->topics_lock);
	if (err != 0) {
		fm_error("timer: cannot deliver %zu messages, retrying: %s", m,
		    fm_err_msg(err));
		requeue(t, jobs, n);
		goto out;
	}
	mark(t, jobs, n);
out:
	for (size_t i = 0; i < n; i++) {
		fm_buf_free(&jobs[i].buf);
		free(jobs[i].props);
	}
	free(recs);
	free(jobs);
}

/* ---- the thread ---- */

/* lock held: take up to BATCH_MAX due entries. */
static size_t
take_due(struct fm_timer *t, struct fm_timer_entry *out, int64_t now)
{
	size_t n = 0;

	while (n < BATCH_MAX && t->heap.n > 0 && t->heap.v[0].at <= now)
		fm_timer_heap_pop(&t->heap, &out[n++]);
	return n;
}

/* lock held: sleep until the earliest entry is due, a notice or stop. */
static void
sleep_until_due(struct fm_timer *t, int64_t now)
{
	int64_t ms = WAIT_MAX_MS;
	struct timespec ts;

	if (t->heap.n > 0 && t->heap.v[0].at - now < ms)
		ms = t->heap.v[0].at - now;
	fm_deadline_ts(&ts, ms);
	pthread_cond_timedwait(&t->cond, &t->lock, &ts);
}

static void *
run(void *arg)
{
	struct fm_timer *t = arg;
	struct fm_timer_entry *due = xcalloc(BATCH_MAX, sizeof(*due));

	pthread_mutex_lock(&t->lock);
	while (!t->stop) {
		int64_t now = fm_now_ms();
		size_t n;

		/* a scan step, then what is due: a long timer queue read
		 * at start does not hold back entries that are overdue */
		if (t->scanned < t->known_max) {
			pthread_mutex_unlock(&t->lock);
			scan_step(t);
			pthread_mutex_lock(&t->lock);
			now = fm_now_ms();
		}
		if ((n = take_due(t, due, now)) > 0) {
			pthread_mutex_unlock(&t->lock);
			deliver(t, due, n);
			pthread_mutex_lock(&t->lock);
			continue;
		}
		if (t->scanned >= t->known_max && !t->stop)
			sleep_until_due(t, now);
	}
	pthread_mutex_unlock(&t->lock);
	free(due);
	return NULL;
}

int
fm_timer_start(struct fm_broker *b, struct fm_timer **out)
{
	struct fm_timer *t = xcalloc(1, sizeof(*t));
	uint64_t min, max;
	int err;

	t->b = b;
	pthread_mutex_init(&t->lock, NULL);
	fm_cond_init_monotonic(&t->cond);
	err = fm_store_timer_load(b->st, &t->low, &t->skip, &t->nskip);
	if (err != 0)
		goto fail;
	fm_store_queue_range(b->st, FM_TIMER_TOPIC, 0, &min, &max);
	t->scanned = t->low > min ? t->low : min;
	if (t->low < min)
		fm_warn("timer: entries [%" PRIu64 ", %" PRIu64
		        ") were removed by retention; those not yet "
		        "delivered are lost",
		    t->low, min);
	t->known_max = max;
	t->recheck = 1;
	if (pthread_create(&t->thread, NULL, run, t) != 0) {
		err = -FM_E_IO;
		goto fail;
	}
	t->started = 1;
	*out = t;
	return 0;
fail:
	fm_timer_free(t);
	return err;
}

void
fm_timer_stop(struct fm_timer *t)
{
	if (t == NULL)
		return;
	if (t->started) {
		pthread_mutex_lock(&t->lock);
		t->stop = 1;
		pthread_cond_broadcast(&t->cond);
		pthread_mutex_unlock(&t->lock);
		pthread_join(t->thread, NULL);
		t->started = 0;
	}
}

void
fm_timer_free(struct fm_timer *t)
{
	if (t == NULL)
		return;
	fm_timer_stop(t);
	fm_timer_heap_free(&t->heap);
	free(t->skip);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

void
fm_timer_notify(struct fm_timer *t, const char *topic, uint32_t queue_id,
    uint64_t max_offset)
{
	if (t == NULL || queue_id != 0 || strcmp(topic, FM_TIMER_TOPIC) != 0)
		return;
	pthread_mutex_lock(&t->lock);
	if (max_offset > t->known_max) {
		t->known_max = max_offset;
		pthread_cond_signal(&t->cond);
	}
	pthread_mutex_unlock(&t->lock);
}

size_t
fm_timer_pending(struct fm_timer *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->heap.n;
	if (t->known_max > t->scanned)
		n += (size_t)(t->known_max - t->scanned);
	pthread_mutex_unlock(&t->lock);
	return n;
}
