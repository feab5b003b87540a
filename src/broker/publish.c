/*
 * publish.c - fm_broker_publish: validate a batch, pick queues, encode
 * keys and properties, and store the batch as one atomic append.
 *
 * Owns the publishing rules (documented in broker.h) and the published
 * counters. Does not own durability (the store's append blocks until the
 * flush mode is satisfied), the topic cache (topics.c) nor the delivery of
 * delayed messages (timer.c).
 *
 * Delayed messages: one whose deliver_at is more than FM_TIMER_MIN_MS
 * ahead is stored, in the same atomic append as the rest of its batch, in
 * the timer queue (FM_TIMER_TOPIC, queue 0) with its real topic and queue
 * as properties (timer.h). Its result then holds the timer record's msgId,
 * the real queue id, and the offset in the timer queue as queue_offset
 * (the message gets its offset in the real queue only when delivered).
 *
 * Invariants:
 *  1. Nothing is stored, not even an auto-created topic, until every
 *     message of the batch passed validation.
 *  2. deliver_at is at most timerMaxDelaySec ahead of the broker's clock.
 *  3. Only the broker's own messages (fm_publish_system) carry reserved
 *     property names (prop_reserved), so a property a consumer sees
 *     under such a name was set by the broker, and none a producer set
 *     is dropped or overridden by the timer or the DLQ.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/xmalloc.h"
#include "broker/internal.h"

/* Tag, keys and properties of one message together, as RocketMQ caps its
 * properties string (Short.MAX_VALUE). */
#define META_MAX 32767u

/* The prefix of the broker's internal property names (FM_TIMER_PROP_*). */
#define INTERNAL_PREFIX "__"

/* Names the broker gives the properties it adds: timer.c to a delayed
 * message when delivered, groups.c to a DLQ copy. */
static const char *const broker_props[] = {"ORIGIN_MESSAGE_ID", "ORIGIN_TOPIC",
    "ORIGIN_QUEUE_ID", "ORIGIN_QUEUE_OFFSET", "RECONSUME_TIMES"};

/* RocketMQ's properties that schedule a message: a producer used to them
 * must learn that here the delay and deliverAt parameters do it, rather
 * than see its message delivered at once. */
static const char *const schedule_props[] = {
    "DELAY", "TIMER_DELAY_SEC", "TIMER_DELAY_MS", "TIMER_DELIVER_MS"};

static int
in_list(const char *name, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(name, list[i]) == 0)
			return 1;
	return 0;
}

/* Why a property name is reserved to the broker, or NULL when it is
 * not. */
static const char *
prop_reserved(const char *name)
{
	if (strncmp(name, INTERNAL_PREFIX, sizeof(INTERNAL_PREFIX) - 1) == 0)
		return "names beginning with \"" INTERNAL_PREFIX "\" are the "
		       "broker's internal properties";
	if (in_list(name, broker_props,
	        sizeof(broker_props) / sizeof(*broker_props)))
		return "the broker sets it on delayed deliveries and "
		       "dead letter copies";
	if (in_list(name, schedule_props,
	        sizeof(schedule_props) / sizeof(*schedule_props)))
		return "RocketMQ's scheduling property: schedule with the "
		       "delay (seconds) or deliverAt (epoch ms) parameter";
	return NULL;
}

static int
prop_name_ok(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		        (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		        c == '-'))
			return 0;
	}
	return 1;
}

/* Bytes of keys ("k\0") and props ("n\0v\0") as encoded in the record. */
static size_t
keys_len(const struct fm_pub_msg *m)
{
	size_t len = 0;

	for (size_t i = 0; i < m->nkeys; i++)
		len += strlen(m->keys[i]) + 1;
	return len;
}

static size_t
props_len(const struct fm_pub_msg *m)
{
	size_t len = 0;

	for (size_t i = 0; i < m->nprops; i++)
		len += strlen(m->props[i].name) + strlen(m->props[i].value) + 2;
	return len;
}

/* "message 3: " in a batch, "" for a single message. */
static void
msg_prefix(char *dst, size_t dstlen, size_t i, size_t n)
{
	if (n > 1)
		snprintf(dst, dstlen, "message %zu: ", i + 1);
	else
		dst[0] = '\0';
}

static int
check_when(struct fm_broker *b, const struct fm_pub_msg *m, const char *pre,
    char **cause)
{
	int64_t max_ms = (int64_t)b->cfg->timer_max_delay_sec * 1000;

	if (m->deliver_at < 0)
		return fm_broker_fail(cause, -FM_E_INVALID,
		    "%sdeliverAt %lld is negative", pre,
		    (long long)m->deliver_at);
	if (m->deliver_at > fm_now_ms() + max_ms)
		return fm_broker_fail(cause, -FM_E_INVALID,
		    "%sdeliverAt %lld is more than timerMaxDelaySec (%d s) "
		    "ahead",
		    pre, (long long)m->deliver_at, b->cfg->timer_max_delay_sec);
	return 0;
}

/* The properties of m: names well formed and, unless the broker
 * publishes (sys), not reserved; values present. */
static int
check_props(const struct fm_pub_msg *m, const char *pre, int sys, char **cause)
{
	for (size_t p = 0; p < m->nprops; p++) {
		const char *name = m->props[p].name, *why;

		if (!prop_name_ok(name))
			return fm_broker_fail(cause, -FM_E_INVALID,
			    "%sproperty name '%s' is empty or has a character "
			    "outside [A-Za-z0-9_.-]",
			    pre, name);
		if (!sys && (why = prop_reserved(name)) != NULL)
			return fm_broker_fail(cause, -FM_E_INVALID,
			    "%sproperty name '%s' is reserved: %s", pre, name,
			    why);
		if (m->props[p].value == NULL)
			return fm_broker_fail(cause, -FM_E_INVALID,
			    "%sproperty '%s' has no value", pre, name);
	}
	return 0;
}

static int
check_msg(struct fm_broker *b, const struct fm_pub_msg *m, size_t i, size_t n,
    int sys, char **cause)
{
	char pre[40];
	size_t tag_len = m->tag ? strlen(m->tag) : 0;
	size_t meta;
	int rc;

	msg_prefix(pre, sizeof(pre), i, n);
	if (m->body_len > b->cfg->max_message_size)
		return fm_broker_fail(cause, -FM_E_TOO_LARGE,
		    "%smessage body of %zu bytes exceeds maxMessageSize %u",
		    pre, m->body_len, b->cfg->max_message_size);
	if (tag_len > FM_REC_MAX_TAG)
		return fm_broker_fail(cause, -FM_E_INVALID,
		    "%stag is %zu bytes long (at most %u)", pre, tag_len,
		    FM_REC_MAX_TAG);
	if (tag_len && strchr(m->tag, '|'))
		return fm_broker_fail(cause, -FM_E_INVALID,
		    "%stag '%s' contains '|'", pre, m->tag);
	for (size_t k = 0; k < m->nkeys; k++)
		if (m->keys[k] == NULL || m->keys[k][0] == '\0')
			return fm_broker_fail(cause, -FM_E_INVALID,
			    "%skey %zu is empty", pre, k + 1);
	if ((rc = check_props(m, pre, sys, cause)) < 0)
		return rc;
	meta = tag_len + keys_len(m) + props_len(m);
	if (meta > META_MAX)
		return fm_broker_fail(cause, -FM_E_TOO_LARGE,
		    "%stag, keys and properties take %zu bytes (at most %u)",
		    pre, meta, META_MAX);
	return check_when(b, m, pre, cause);
}

static int
check_batch(struct fm_broker *b, const struct fm_pub_msg *msgs, size_t n,
    int sys, char **cause)
{
	uint64_t total = 0;
	int rc;

	if (n == 0)
		return fm_broker_fail(cause, -FM_E_INVALID, "no messages");
	if (n > FM_BATCH_MAX)
		return fm_broker_fail(cause, -FM_E_TOO_LARGE,
		    "batch of %zu messages (at most %d)", n, FM_BATCH_MAX);
	for (size_t i = 0; i < n; i++) {
		if ((rc = check_msg(b, &msgs[i], i, n, sys, cause)) < 0)
			return rc;
		total += msgs[i].body_len;
	}
	if (n > 1 && total > b->cfg->max_message_size)
		return fm_broker_fail(cause, -FM_E_TOO_LARGE,
		    "batch bodies take %llu bytes, more than maxMessageSize %u",
		    (unsigned long long)total, b->cfg->max_message_size);
	return 0;
}

/* FNV-1a 64: stable across restarts and builds, so a sharding key keeps
 * its queue as long as the queue count stays. */
static uint64_t
fnv1a64(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static uint32_t
pick_queue(struct fm_btopic *t, const struct fm_pub_msg *m)
{
	uint32_t q = t->conf.queues;

	if (m->sharding_key && m->sharding_key[0])
		return (uint32_t)(fnv1a64(m->sharding_key) % q);
	return atomic_fetch_add(&t->rr, 1) % q;
}

static int
delayed(const struct fm_pub_msg *m, int64_t now)
{
	return m->deliver_at > now + FM_TIMER_MIN_MS;
}

/*
 * A delayed message's properties end with its real topic and queue:
 *
 *   user pairs..  __REAL_TOPIC\0 orders\0  __REAL_QID\0 3\0
 *
 * (queue id in decimal). Returns the bytes written at dst, which has
 * room for timer_props_len(topic).
 */
#define QID_DIGITS 10 /* UINT32_MAX */

static size_t
timer_props_len(const char *topic)
{
	return sizeof(FM_TIMER_PROP_TOPIC) + strlen(topic) + 1 +
	    sizeof(FM_TIMER_PROP_QID) + QID_DIGITS + 1;
}

static size_t
timer_props(char *dst, const char *topic, uint32_t qid)
{
	size_t off = 0, len = strlen(topic) + 1;
	int digits;

	memcpy(dst, FM_TIMER_PROP_TOPIC, sizeof(FM_TIMER_PROP_TOPIC));
	off += sizeof(FM_TIMER_PROP_TOPIC);
	memcpy(dst + off, topic, len);
	off += len;
	memcpy(dst + off, FM_TIMER_PROP_QID, sizeof(FM_TIMER_PROP_QID));
	off += sizeof(FM_TIMER_PROP_QID);
	digits = snprintf(dst + off, QID_DIGITS + 1, "%u", qid);
	return off + (size_t)digits + 1;
}

/* Keys then props of every message, one after another, in one arena so
 * that the records can point into it. Delayed messages (recs[i] already
 * filled with their real topic and queue) get the timer properties. */
static char *
encode_meta(const struct fm_pub_msg *msgs, size_t n, struct fm_record *recs,
    int64_t now)
{
	size_t total = 0, off = 0;
	char *arena;

	for (size_t i = 0; i < n; i++) {
		total += keys_len(&msgs[i]) + props_len(&msgs[i]);
		if (delayed(&msgs[i], now))
			total += timer_props_len(recs[i].topic);
	}
	arena = xmalloc(total ? total : 1);
	for (size_t i = 0; i < n; i++) {
		const struct fm_pub_msg *m = &msgs[i];
		size_t start = off;

		for (size_t k = 0; k < m->nkeys; k++) {
			size_t len = strlen(m->keys[k]) + 1;

			memcpy(arena + off, m->keys[k], len);
			off += len;
		}
		recs[i].keys = arena + start;
		recs[i].keys_len = (uint32_t)(off - start);
		start = off;
		for (size_t p = 0; p < m->nprops; p++) {
			size_t nl = strlen(m->props[p].name) + 1;
			size_t vl = strlen(m->props[p].value) + 1;

			memcpy(arena + off, m->props[p].name, nl);
			memcpy(arena + off + nl, m->props[p].value, vl);
			off += nl + vl;
		}
		if (delayed(m, now))
			off += timer_props(
			    arena + off, recs[i].topic, recs[i].queue_id);
		recs[i].props = arena + start;
		recs[i].props_len = (uint32_t)(off - start);
	}
	return arena;
}

static void
fill_records(struct fm_btopic *t, const char *topic,
    const struct fm_pub_msg *msgs, size_t n, struct fm_record *recs,
    int64_t now)
{
	for (size_t i = 0; i < n; i++) {
		const struct fm_pub_msg *m = &msgs[i];
		struct fm_record *r = &recs[i];

		r->topic = topic;
		r->topic_len = (uint16_t)strlen(topic);
		r->tag = m->tag;
		r->tag_len = (uint16_t)(m->tag ? strlen(m->tag) : 0);
		r->body = m->body;
		r->body_len = (uint32_t)m->body_len;
		r->queue_id = pick_queue(t, m);
		r->born_ts = now;
		r->deliver_at = m->deliver_at;
	}
}

/* Send the delayed records to the timer queue, keeping their real queue
 * ids (already in their properties) for the results. */
static void
divert_delayed(const struct fm_pub_msg *msgs, size_t n, struct fm_record *recs,
    uint32_t *real_qids, int64_t now)
{
	for (size_t i = 0; i < n; i++) {
		real_qids[i] = recs[i].queue_id;
		if (!delayed(&msgs[i], now))
			continue;
		recs[i].topic = FM_TIMER_TOPIC;
		recs[i].topic_len = (uint16_t)strlen(FM_TIMER_TOPIC);
		recs[i].queue_id = 0;
	}
}

static int
store_error(struct fm_broker *b, int rc, char **cause)
{
	switch (rc) {
	case -FM_E_DISK_FULL:
		return fm_broker_fail(cause, rc,
		    "disk usage is above diskSpaceWarningLevelRatio %.2f",
		    b->cfg->disk_space_warning_level_ratio);
	case -FM_E_TOO_LARGE:
		return fm_broker_fail(cause, rc,
		    "the batch does not fit in one commit log segment");
	case -FM_E_NOT_WRITABLE:
		return fm_broker_fail(cause, rc,
		    "the commit log is read-only after an I/O error");
	default:
		return fm_broker_fail(
		    cause, rc, "cannot store messages: %s", fm_err_msg(rc));
	}
}

/* Every publish call: done == NULL waits for durability here, otherwise
 * the store reports it through done (fm_store_append_async's returns);
 * sys: the broker's own messages (invariant 3). */
static int
publish(struct fm_broker *b, const char *topic, const struct fm_pub_msg *msgs,
    size_t n, struct fm_pub_result *out, fm_done_fn done, void *arg, int sys,
    char **cause)
{
	struct fm_record *recs = NULL;
	uint32_t *real_qids = NULL;
	struct fm_btopic *t;
	char *arena = NULL;
	uint64_t bytes = 0;
	int64_t now;
	int rc;

	if ((rc = fm_topics_check_user_name(topic, cause)) < 0)
		goto fail;
	if (b->cfg->broker_role == FM_ROLE_SLAVE) {
		rc = fm_broker_fail(
		    cause, -FM_E_NOT_WRITABLE, "broker is a slave");
		goto fail;
	}
	if ((rc = check_batch(b, msgs, n, sys, cause)) < 0)
		goto fail;
	if ((rc = fm_topics_acquire(b, topic, &t, cause)) < 0)
		goto fail;
	if (!(t->conf.perm & FM_PERM_WRITE)) {
		rc = fm_broker_fail(cause, -FM_E_NOT_WRITABLE,
		    "topic '%s' is not writable (perm %s)", topic,
		    fm_perm_name(t->conf.perm));
		fm_topics_release(b);
		goto fail;
	}
	recs = xcalloc(n, sizeof(*recs));
	real_qids = xcalloc(n, sizeof(*real_qids));
	now = fm_now_ms();
	fill_records(t, topic, msgs, n, recs, now);
	arena = encode_meta(msgs, n, recs, now);
	divert_delayed(msgs, n, recs, real_qids, now);
	if (done == NULL)
		rc = fm_store_append(b->st, recs, n);
	else
		rc = fm_store_append_async(b->st, recs, n, done, arg);
	fm_topics_release(b);
	if (rc < 0) {
		rc = store_error(b, rc, cause);
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		fm_msgid_encode(&b->self, recs[i].log_offset, out[i].msg_id);
		out[i].queue_id = real_qids[i];
		out[i].queue_offset = recs[i].queue_offset;
		bytes += recs[i].body_len;
	}
	atomic_fetch_add(&b->published_msgs, n);
	atomic_fetch_add(&b->published_bytes, bytes);
	free(recs);
	free(real_qids);
	free(arena);
	return done == NULL ? 0 : rc;
fail:
	atomic_fetch_add(&b->publish_errors, 1);
	free(recs);
	free(real_qids);
	free(arena);
	return rc;
}

int
fm_broker_publish(struct fm_broker *b, const char *topic,
    const struct fm_pub_msg *msgs, size_t n, struct fm_pub_result *out,
    char **cause)
{
	return publish(b, topic, msgs, n, out, NULL, NULL, 0, cause);
}

int
fm_broker_publish_async(struct fm_broker *b, const char *topic,
    const struct fm_pub_msg *msgs, size_t n, struct fm_pub_result *out,
    fm_done_fn done, void *arg, char **cause)
{
	return publish(b, topic, msgs, n, out, done, arg, 0, cause);
}

int
fm_publish_system(struct fm_broker *b, const char *topic,
    const struct fm_pub_msg *msgs, size_t n, struct fm_pub_result *out,
    char **cause)
{
	return publish(b, topic, msgs, n, out, NULL, NULL, 1, cause);
}
