/*
 * query.c - reading messages back: pull by queue offset, get by msgId,
 * query by key and by store time; and the fm_msg_list that carries them.
 *
 * Owns the message lists it fills: items[i].rec points into bufs[i].data,
 * one heap buffer per message, so growing the arrays (which moves the
 * fm_buf structs, not their data) never invalidates a record.
 * Does not own the consume queues or the log (the store does).
 *
 * A lookup by msgId of a delayed message not yet delivered finds its
 * timer record; it is shown as published (unwrap_timer).
 *
 * Retention may delete a segment between reading a consume queue entry
 * and reading its record: such a record (-FM_E_GONE / -FM_E_NOT_FOUND from
 * the log) is skipped, never reported as an error of the read.
 */
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/xmalloc.h"
#include "broker/internal.h"

void
fm_msg_list_free(struct fm_msg_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		fm_buf_free(&l->bufs[i]);
	free(l->items);
	free(l->bufs);
	l->items = NULL;
	l->bufs = NULL;
	l->n = l->cap = 0;
}

static void
list_reserve(struct fm_msg_list *l, size_t extra)
{
	if (l->n + extra <= l->cap)
		return;
	size_t cap = l->cap ? l->cap : 8;

	while (cap < l->n + extra)
		cap *= 2;
	l->items = xreallocarray(l->items, cap, sizeof(*l->items));
	l->bufs = xreallocarray(l->bufs, cap, sizeof(*l->bufs));
	l->cap = cap;
}

int
fm_msglist_read(struct fm_broker *b, struct fm_msg_list *l, uint64_t log_offset)
{
	struct fm_buf buf = FM_BUF_INIT;
	struct fm_record rec;
	int rc;

	/* Read before growing l, so that a failed read leaves l untouched
	 * (an empty list stays unallocated). */
	rc = fm_store_read(b->st, log_offset, &buf, &rec);
	if (rc < 0) {
		fm_buf_free(&buf);
		return rc;
	}
	list_reserve(l, 1);
	l->items[l->n].rec = rec;
	fm_msgid_encode(&b->self, log_offset, l->items[l->n].msg_id);
	l->bufs[l->n++] = buf;
	return 0;
}

/* Retention raced us: the record is gone, which is not the reader's
 * fault. */
static int
skippable(int rc)
{
	return rc == -FM_E_GONE || rc == -FM_E_NOT_FOUND;
}

static int
check_max(size_t max, char **cause)
{
	if (max < 1 || max > FM_PULL_MAX)
		return fm_broker_fail(cause, -FM_E_INVALID,
		    "max must be 1..%d (got %zu)", FM_PULL_MAX, max);
	return 0;
}

static int
read_error(int rc, uint64_t log_offset, char **cause)
{
	return fm_broker_fail(cause, rc,
	    "cannot read the message at log offset %llu: %s",
	    (unsigned long long)log_offset, fm_err_msg(rc));
}

/* Read up to max entries of a queue from *from on, appending to l and
 * advancing *from past what was read. */
static int
read_queue(struct fm_broker *b, const char *topic, uint32_t q, uint64_t *from,
    uint64_t to, size_t max, struct fm_msg_list *l, char **cause)
{
	struct fm_cq_entry *ents = NULL;
	size_t got = 0;
	int rc = 0;

	if (to <= *from)
		return 0;
	if (to - *from < max)
		max = (size_t)(to - *from);
	ents = xcalloc(max, sizeof(*ents));
	rc = fm_store_cq_read(b->st, topic, q, *from, ents, max, &got);
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < got; i++) {
		rc = fm_msglist_read(b, l, ents[i].log_offset);
		if (rc < 0 && !skippable(rc)) {
			rc = read_error(rc, ents[i].log_offset, cause);
			goto out;
		}
		rc = 0;
	}
	*from += got;
out:
	free(ents);
	return rc;
}

static int
queue_check(
    struct fm_broker *b, const char *topic, uint32_t queue_id, char **cause)
{
	struct fm_topic_conf tc;
	int rc = fm_topics_conf(b, topic, &tc, cause);

	if (rc < 0)
		return rc;
	if (!(tc.perm & FM_PERM_READ))
		return fm_broker_fail(cause, -FM_E_INVALID,
		    "topic '%s' is not readable (perm %s)", topic,
		    fm_perm_name(tc.perm));
	if (queue_id >= tc.queues)
		return fm_broker_fail(cause, -FM_E_NOT_FOUND,
		    "topic '%s' has no queue %u (queues 0..%u)", topic,
		    queue_id, tc.queues - 1);
	return 0;
}

int
fm_broker_pull(struct fm_broker *b, const char *topic, uint32_t queue_id,
    uint64_t offset, size_t max, struct fm_pull_result *out, char **cause)
{
	uint64_t min, maxo, from;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = check_max(max, cause)) < 0)
		return rc;
	if ((rc = queue_check(b, topic, queue_id, cause)) < 0)
		return rc;
	/* Retention can raise min between the range and the read: retry
	 * from the new min a few times. */
	for (int tries = 0; tries < 3; tries++) {
		fm_store_queue_range(b->st, topic, queue_id, &min, &maxo);
		if (offset > maxo)
			return fm_broker_fail(cause, -FM_E_INVALID,
			    "offset %llu is beyond maxOffset %llu",
			    (unsigned long long)offset,
			    (unsigned long long)maxo);
		from = offset < min ? min : offset;
		rc = read_queue(
		    b, topic, queue_id, &from, maxo, max, &out->msgs, cause);
		if (rc != -FM_E_GONE)
			break;
	}
	if (rc < 0) {
		fm_msg_list_free(&out->msgs);
		return rc == -FM_E_GONE
		    ? fm_broker_fail(cause, rc,
		          "queue %u of '%s' is being trimmed", queue_id, topic)
		    : rc;
	}
	out->next_offset = from;
	out->min_offset = min;
	out->max_offset = maxo;
	atomic_fetch_add(&b->pulled_msgs, out->msgs.n);
	return 0;
}

/* One of the two properties publish.c adds to a timer record. */
static int
is_timer_prop(const char *name)
{
	return strcmp(name, FM_TIMER_PROP_TOPIC) == 0 ||
	    strcmp(name, FM_TIMER_PROP_QID) == 0;
}

/*
 * A delayed message's timer record (timer.h), shown as its publisher sent
 * it, as the publish answered: its real topic and queue instead of
 * FM_TIMER_TOPIC and 0, without the two internal properties. Its msgId,
 * queueOffset (the timer queue's) and deliver_at stay. The properties are
 * reordered in place in the message's own buffer, user pairs first, the
 * internal ones after the new props_len, where the topic then points:
 *
 *   before:  user pairs..  __REAL_TOPIC\0 orders\0  __REAL_QID\0 3\0
 *   after:   user pairs..| __REAL_TOPIC\0 orders\0  __REAL_QID\0 3\0
 *                        ^ props_len          ^ topic
 *
 * (publish.c writes them last, but any order is handled.) A record whose
 * properties are not well formed or name no topic is left as stored.
 */
static void
unwrap_timer(struct fm_message *m, struct fm_buf *buf)
{
	struct fm_record *r = &m->rec;
	size_t len = r->props_len, user = 0, nuls = 0, topic_at = 0;
	char *props, *copy, *out_user, *out_int;
	const char *p, *end, *qid = NULL;
	int have_topic = 0;

	if (r->topic_len != strlen(FM_TIMER_TOPIC) ||
	    memcmp(r->topic, FM_TIMER_TOPIC, r->topic_len) != 0 || len == 0 ||
	    r->props < buf->data || r->props + len > buf->data + buf->len ||
	    r->props[len - 1] != '\0')
		return;
	for (size_t i = 0; i < len; i++)
		nuls += r->props[i] == '\0';
	if (nuls % 2 != 0)
		return;
	for (p = r->props, end = p + len; p < end;) {
		const char *value = p + strlen(p) + 1, *next;

		next = value + strlen(value) + 1;
		if (!is_timer_prop(p))
			user += (size_t)(next - p);
		p = next;
	}
	/* the record's bytes are the list's own heap buffer */
	props = buf->data + (r->props - buf->data);
	copy = xmalloc(len);
	out_user = copy;
	out_int = copy + user;
	for (p = props, end = p + len; p < end;) {
		const char *value = p + strlen(p) + 1, *next;
		size_t n;

		next = value + strlen(value) + 1;
		n = (size_t)(next - p);
		if (!is_timer_prop(p)) {
			memcpy(out_user, p, n);
			out_user += n;
		} else {
			if (strcmp(p, FM_TIMER_PROP_TOPIC) == 0 &&
			    value[0] != '\0') {
				have_topic = 1;
				topic_at = (size_t)(out_int - copy) +
				    (size_t)(value - p);
			} else if (strcmp(p, FM_TIMER_PROP_QID) == 0) {
				qid = value;
			}
			memcpy(out_int, p, n);
			out_int += n;
		}
		p = next;
	}
	if (have_topic) {
		if (qid != NULL)
			r->queue_id = (uint32_t)strtoul(qid, NULL, 10);
		memcpy(props, copy, len);
		r->props_len = (uint32_t)user;
		r->topic = props + topic_at;
		r->topic_len = (uint16_t)strlen(r->topic);
	}
	free(copy);
}

int
fm_broker_get_message(struct fm_broker *b, const char *msg_id,
    struct fm_msg_list *out, char **cause)
{
	struct fm_msgid_addr where;
	uint64_t off;
	char at[32];
	int rc;

	if (fm_msgid_decode(msg_id, &where, &off) < 0)
		return fm_broker_fail(cause, -FM_E_INVALID,
		    "msgId '%.64s' is not %d hex characters", msg_id,
		    FM_MSGID_LEN);
	if (where.ip != b->self.ip || where.port != b->self.port) {
		fm_msgid_addr_format(&where, at, sizeof(at));
		return fm_broker_fail(cause, -FM_E_NOT_FOUND,
		    "message '%s' does not exist on this broker (its msgId "
		    "names broker %s)",
		    msg_id, at);
	}
	rc = fm_msglist_read(b, out, off);
	if (rc == -FM_E_NOT_FOUND)
		return fm_broker_fail(
		    cause, rc, "message '%s' does not exist", msg_id);
	if (rc == -FM_E_GONE)
		return fm_broker_fail(
		    cause, rc, "message '%s' is no longer retained", msg_id);
	if (rc < 0)
		return read_error(rc, off, cause);
	unwrap_timer(&out->items[out->n - 1], &out->bufs[out->n - 1]);
	return 0;
}

int
fm_broker_query_key(struct fm_broker *b, const char *topic, const char *key,
    size_t max, struct fm_msg_list *out, char **cause)
{
	struct fm_topic_conf tc;
	uint64_t *offs = NULL;
	size_t n = 0;
	int rc;

	if ((rc = check_max(max, cause)) < 0)
		return rc;
	if ((rc = fm_topics_conf(b, topic, &tc, cause)) < 0)
		return rc;
	offs = xcalloc(max, sizeof(*offs));
	rc = fm_store_find_key(b->st, topic, key, offs, max, &n);
	if (rc < 0) {
		rc = fm_broker_fail(cause, rc, "cannot look up key '%s': %s",
		    key, fm_err_msg(rc));
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		rc = fm_msglist_read(b, out, offs[i]);
		if (rc < 0 && !skippable(rc)) {
			rc = read_error(rc, offs[i], cause);
			goto out;
		}
		rc = 0;
	}
out:
	free(offs);
	return rc;
}

/* Newest first; equal store times by log position, newest first too. */
static int
cmp_newest(const void *pa, const void *pb)
{
	const struct fm_message *a = *(const struct fm_message *const *)pa;
	const struct fm_message *b = *(const struct fm_message *const *)pb;

	if (a->rec.store_ts != b->rec.store_ts)
		return a->rec.store_ts < b->rec.store_ts ? 1 : -1;
	if (a->rec.log_offset != b->rec.log_offset)
		return a->rec.log_offset < b->rec.log_offset ? 1 : -1;
	return 0;
}

/* Move the max newest items of all into out, in order; all is emptied. */
static void
merge_newest(struct fm_msg_list *all, size_t max, struct fm_msg_list *out)
{
	struct fm_message **order = xcalloc(all->n + 1, sizeof(*order));
	size_t keep = all->n < max ? all->n : max;

	for (size_t i = 0; i < all->n; i++)
		order[i] = &all->items[i];
	qsort(order, all->n, sizeof(*order), cmp_newest);
	list_reserve(out, keep);
	for (size_t i = 0; i < all->n; i++) {
		size_t src = (size_t)(order[i] - all->items);

		if (i < keep) {
			out->items[out->n] = all->items[src];
			out->bufs[out->n++] = all->bufs[src];
		} else {
			fm_buf_free(&all->bufs[src]);
		}
	}
	all->n = 0;
	fm_msg_list_free(all);
	free(order);
}

/* The newest max records of one queue stored in [begin_ms, end_ms]. */
static int
time_queue(struct fm_broker *b, const char *topic, uint32_t q, int64_t begin_ms,
    int64_t end_ms, size_t max, struct fm_msg_list *all, char **cause)
{
	uint64_t lo, hi, min, maxo;
	size_t first = all->n;
	int64_t after = end_ms < INT64_MAX ? end_ms + 1 : end_ms;
	int rc;

	fm_store_queue_range(b->st, topic, q, &min, &maxo);
	if ((rc = fm_store_queue_offset_at(b->st, topic, q, begin_ms, &lo)) <
	        0 ||
	    (rc = fm_store_queue_offset_at(b->st, topic, q, after, &hi)) < 0)
		return fm_broker_fail(cause, rc,
		    "cannot search queue %u of '%s' by time: %s", q, topic,
		    fm_err_msg(rc));
	if (lo < min)
		lo = min;
	if (hi > lo && hi - lo > max)
		lo = hi - max;
	while (lo < hi) {
		uint64_t before = lo;

		rc = read_queue(b, topic, q, &lo, hi, max, all, cause);
		if (rc == -FM_E_GONE)
			return 0;
		if (rc < 0)
			return rc;
		if (lo == before)
			break;
	}
	/* The time index is sparse: drop what falls outside the window. */
	for (size_t i = first; i < all->n;) {
		int64_t ts = all->items[i].rec.store_ts;

		if (ts >= begin_ms && ts <= end_ms) {
			i++;
			continue;
		}
		fm_buf_free(&all->bufs[i]);
		all->items[i] = all->items[all->n - 1];
		all->bufs[i] = all->bufs[all->n - 1];
		all->n--;
	}
	return 0;
}

int
fm_broker_query_time(struct fm_broker *b, const char *topic, int64_t begin_ms,
    int64_t end_ms, size_t max, struct fm_msg_list *out, char **cause)
{
	struct fm_msg_list all = FM_MSG_LIST_INIT;
	struct fm_topic_conf tc;
	int rc;

	if ((rc = check_max(max, cause)) < 0)
		return rc;
	if (end_ms < begin_ms)
		return fm_broker_fail(cause, -FM_E_INVALID,
		    "end %lld is before begin %lld", (long long)end_ms,
		    (long long)begin_ms);
	if ((rc = fm_topics_conf(b, topic, &tc, cause)) < 0)
		return rc;
	for (uint32_t q = 0; q < tc.queues; q++) {
		rc =
		    time_queue(b, topic, q, begin_ms, end_ms, max, &all, cause);
		if (rc < 0)
			goto fail;
	}
	merge_newest(&all, max, out);
	return 0;
fail:
	fm_msg_list_free(&all);
	return rc;
}
