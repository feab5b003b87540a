/*
 * h_messages.c - the message routes: publish (one message, or an NDJSON
 * batch), pull by offset with long-poll, lookup by msgId, query by key or
 * time range.
 *
 * A pull from an offset that is no longer retained says so with a "gap"
 * member (the broadcast streams' gap marker) beside its messages.
 *
 * Owns nothing across requests. Validates every input before calling the
 * broker, and maps broker errors through reply.c. Tags, keys and
 * properties given in the URL or headers must be valid UTF-8 (the reply
 * encoder would otherwise have to replace bytes the producer sent).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/xmalloc.h"
#include "codec/codec.h"
#include "http/http.h"
#include "http/reply.h"

#define PROP_PREFIX "X-Prop-"
#define PULL_DEFAULT 32
#define WAIT_MAX_S 30.0

/* ---- publish ---- */

struct props {
	struct fm_prop *v; /* owned array; names and values borrowed (MHD) */
	size_t n, cap;
	const char *bad; /* first header refused, or NULL */
};

static enum MHD_Result
collect_prop(
    void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct props *p = cls;
	size_t plen = sizeof(PROP_PREFIX) - 1;

	if (strncasecmp(key, PROP_PREFIX, plen) != 0)
		return MHD_YES;
	key += plen;
	if (value == NULL)
		value = "";
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->v[i].name, key) == 0)
			p->bad = key;
	if (key[0] == '\0' || !fm_codec_utf8_valid(key, strlen(key)) ||
	    !fm_codec_utf8_valid(value, strlen(value)))
		p->bad = key;
	if (p->bad != NULL)
		return MHD_NO;
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 8;
		p->v = xreallocarray(p->v, p->cap, sizeof(*p->v));
	}
	p->v[p->n].name = key;
	p->v[p->n++].value = value;
	return MHD_YES;
}

static int
utf8_arg(struct fm_req *r, const char *name, const char *v)
{
	if (v == NULL || fm_codec_utf8_valid(v, strlen(v)))
		return 0;
	fm_reply_error(r, FM_HC_INVALID_ARGUMENT, "%s: not valid UTF-8", name);
	return -1;
}

/* delay (seconds) or deliverAt (epoch ms) into m->deliver_at. */
static int
when_args(struct fm_req *r, struct fm_pub_msg *m)
{
	double max = r->h->cfg->timer_max_delay_sec, delay;
	int64_t now = fm_now_ms(), at;

	if (fm_req_arg(r, "delay") != NULL && fm_req_arg(r, "deliverAt")) {
		fm_reply_error(r, FM_HC_INVALID_ARGUMENT,
		    "give delay or deliverAt, not both");
		return -1;
	}
	if (fm_arg_seconds(r, "delay", 0, max, &delay) != 0 ||
	    fm_arg_i64(
	        r, "deliverAt", 0, 0, now + (int64_t)(max * 1000), &at) != 0)
		return -1;
	m->deliver_at = delay > 0 ? now + (int64_t)(delay * 1000 + 0.5) : at;
	return 0;
}

static void
reply_result(
    struct fm_json *j, const char *topic, const struct fm_pub_result *res)
{
	fm_json_obj(j, NULL);
	fm_json_str(j, "msgId", res->msg_id);
	fm_json_str(j, "topic", topic);
	fm_json_u64(j, "queueId", res->queue_id);
	fm_json_u64(j, "queueOffset", res->queue_offset);
	fm_json_obj_end(j);
}

/* A publish's answer is prepared as soon as the messages are stored; a
 * completion that reports a failed flush replaces it. */
static void
durable_failed(struct fm_req *r)
{
	fm_reply_error(r, fm_http_code_of(r->done_err),
	    "the message was written but not confirmed durable: %s",
	    fm_err_msg(r->done_err));
}

/* After the broker's async publish returned stored (rc 0 or 1) and the
 * answer was prepared: answer now, or park until durable. */
static int
settle(struct fm_req *r, struct fm_ticket *t, int rc)
{
	if (rc == 1) {
		free(t);
		return FM_H_DONE;
	}
	rc = fm_req_park_durable(r, t);
	if (rc == FM_H_DONE && r->done_err != 0)
		durable_failed(r);
	return rc;
}

static int
publish_one(struct fm_req *r, const char *topic)
{
	struct fm_pub_msg m = {0};
	struct fm_pub_result res;
	struct props props = {0};
	const char **keys = NULL;
	char *keys_copy = NULL, *cause = NULL;
	struct fm_ticket *t;
	struct fm_json j;
	int err, rc = FM_H_DONE;

	m.tag = fm_req_arg(r, "tag");
	m.sharding_key = fm_req_arg(r, "shardingKey");
	if (utf8_arg(r, "tag", m.tag) != 0 ||
	    utf8_arg(r, "shardingKey", m.sharding_key) != 0 ||
	    utf8_arg(r, "keys", fm_req_arg(r, "keys")) != 0 ||
	    when_args(r, &m) != 0)
		goto done;
	MHD_get_connection_values(
	    r->conn, MHD_HEADER_KIND, collect_prop, &props);
	if (props.bad != NULL) {
		fm_reply_error(r, FM_HC_INVALID_ARGUMENT,
		    "header X-Prop-%s: empty, repeated or not valid UTF-8",
		    props.bad);
		goto done;
	}
	if (fm_req_arg(r, "keys") != NULL) {
		keys_copy = xstrdup(fm_req_arg(r, "keys"));
		keys = fm_codec_split_keys(keys_copy, &m.nkeys);
		m.keys = keys;
	}
	m.props = props.v;
	m.nprops = props.n;
	m.body = r->body.data != NULL ? r->body.data : "";
	m.body_len = r->body.len;
	t = fm_req_ticket(r);
	err = fm_broker_publish_async(
	    r->h->b, topic, &m, 1, &res, fm_req_ticket_done, t, &cause);
	if (err < 0) {
		free(t);
		fm_reply_err(r, err, cause, FM_HC_TOPIC_NOT_FOUND);
		goto done;
	}
	fm_reply_json(r, MHD_HTTP_CREATED, &j);
	reply_result(&j, topic, &res);
	rc = settle(r, t, err);
done:
	free(keys);
	free(keys_copy);
	free(props.v);
	return rc;
}

static int
publish_batch(struct fm_req *r, const char *topic)
{
	struct fm_batch batch = FM_BATCH_INIT;
	struct fm_pub_result *res = NULL;
	struct fm_ticket *t;
	char *cause = NULL;
	struct fm_json j;
	int err, rc = FM_H_DONE;

	err = fm_codec_parse_batch(r->body.data != NULL ? r->body.data : "",
	    r->body.len, fm_now_ms(), r->h->cfg->timer_max_delay_sec,
	    FM_BATCH_MAX, &batch, &cause);
	if (err != 0) {
		fm_reply_error(r,
		    err == -FM_E_TOO_LARGE ? FM_HC_PAYLOAD_TOO_LARGE
		                           : FM_HC_BAD_REQUEST,
		    "%s", cause);
		free(cause);
		return FM_H_DONE;
	}
	res = xcalloc(batch.n, sizeof(*res));
	t = fm_req_ticket(r);
	err = fm_broker_publish_async(r->h->b, topic, batch.msgs, batch.n, res,
	    fm_req_ticket_done, t, &cause);
	if (err < 0) {
		free(t);
		fm_reply_err(r, err, cause, FM_HC_TOPIC_NOT_FOUND);
		goto done;
	}
	fm_reply_json(r, MHD_HTTP_CREATED, &j);
	fm_json_obj(&j, NULL);
	fm_json_arr(&j, "results");
	for (size_t i = 0; i < batch.n; i++)
		reply_result(&j, topic, &res[i]);
	fm_json_arr_end(&j);
	fm_json_obj_end(&j);
	rc = settle(r, t, err);
done:
	free(res);
	fm_codec_batch_free(&batch);
	return rc;
}

int
fm_h_publish(struct fm_req *r)
{
	const char *topic;

	if (r->woken) {
		/* parked until durable; the answer is prepared */
		if (r->done_err != 0)
			durable_failed(r);
		return FM_H_DONE;
	}
	topic = fm_arg_topic(r);
	if (topic == NULL)
		return FM_H_DONE;
	if (fm_req_is_ndjson(r))
		return publish_batch(r, topic);
	return publish_one(r, topic);
}

/* ---- reading ---- */

static void
write_messages(struct fm_json *j, const struct fm_msg_list *l)
{
	fm_json_arr(j, "messages");
	for (size_t i = 0; i < l->n; i++)
		fm_codec_message(j, NULL, &l->items[i]);
	fm_json_arr_end(j);
}

/* A broker NOT_FOUND on a queue: say whether the topic or the queue. */
static void
reply_pull_err(struct fm_req *r, const char *topic, int err, char *cause)
{
	struct fm_topic_conf tc;

	if (err == -FM_E_NOT_FOUND &&
	    fm_broker_topic_get(r->h->b, topic, &tc, NULL) == 0) {
		fm_reply_err(r, err, cause, FM_HC_QUEUE_NOT_FOUND);
		return;
	}
	fm_reply_err(r, err, cause, FM_HC_TOPIC_NOT_FOUND);
}

/* Where the answer of a pull from offset really starts: its first
 * message, or nextOffset when it has none. Above offset, the offsets in
 * between are no longer retained (below minOffset, or deleted by
 * retention while being read; holes only occur below minOffset). */
static uint64_t
pull_start(const struct fm_pull_result *pr)
{
	return pr->msgs.n > 0 ? pr->msgs.items[0].rec.queue_offset
	                      : pr->next_offset;
}

/* Park again only when woken for data that another reader's offset
 * already covered and time remains; else answer what there is. */
static int
should_park(struct fm_req *r, double wait)
{
	if (wait <= 0 || r->h->stopping)
		return 0;
	if (!r->woken)
		return 1;
	return r->why == FM_WAKE_DATA && fm_mono_ms() < r->deadline;
}

int
fm_h_pull(struct fm_req *r)
{
	struct fm_pull_result pr = {FM_MSG_LIST_INIT, 0, 0, 0};
	const char *topic = fm_arg_topic(r);
	uint64_t qid, offset, max, start;
	char *cause = NULL;
	double wait;
	struct fm_json j;
	int err, rc = FM_H_DONE;

	if (topic == NULL)
		return FM_H_DONE;
	if (fm_arg_u64(r, "offset", 0, 0, INT64_MAX, &offset) != 0 ||
	    fm_arg_u64(r, "max", PULL_DEFAULT, 1, FM_PULL_MAX, &max) != 0 ||
	    fm_arg_seconds(r, "wait", 0, WAIT_MAX_S, &wait) != 0)
		return FM_H_DONE;
	if (fm_param_u64(r, "queueId", UINT32_MAX - 1, &qid) != 0)
		return FM_H_DONE;
	if (r->deadline == 0)
		r->deadline = fm_mono_ms() + (int64_t)(wait * 1000);
	err = fm_broker_pull(
	    r->h->b, topic, (uint32_t)qid, offset, max, &pr, &cause);
	if (err != 0) {
		reply_pull_err(r, topic, err, cause);
		return FM_H_DONE;
	}
	/* a gap is news: answered at once, not parked */
	start = pull_start(&pr);
	if (pr.msgs.n == 0 && start <= offset && should_park(r, wait)) {
		rc = fm_req_park(r, topic, (uint32_t)qid, pr.next_offset);
		goto done;
	}
	fm_reply_json(r, MHD_HTTP_OK, &j);
	fm_json_obj(&j, NULL);
	write_messages(&j, &pr.msgs);
	fm_json_u64(&j, "nextOffset", pr.next_offset);
	fm_json_u64(&j, "minOffset", pr.min_offset);
	fm_json_u64(&j, "maxOffset", pr.max_offset);
	if (start > offset)
		fm_codec_gap(&j, "gap", topic, (uint32_t)qid, offset, start);
	fm_json_obj_end(&j);
done:
	fm_msg_list_free(&pr.msgs);
	return rc;
}

static int
valid_msg_id(const char *id)
{
	size_t i;

	for (i = 0; id[i] != '\0'; i++)
		if (!isxdigit((unsigned char)id[i]))
			return 0;
	return i == FM_MSGID_LEN;
}

static void
reply_list(struct fm_req *r, const struct fm_msg_list *l)
{
	struct fm_json j;

	fm_reply_json(r, MHD_HTTP_OK, &j);
	fm_json_obj(&j, NULL);
	write_messages(&j, l);
	fm_json_obj_end(&j);
}

int
fm_h_get_message(struct fm_req *r)
{
	struct fm_msg_list l = FM_MSG_LIST_INIT;
	const char *id = fm_req_param(r, "msgId");
	char *cause = NULL;
	int err;

	if (!valid_msg_id(id)) {
		fm_reply_error(r, FM_HC_INVALID_ARGUMENT,
		    "msgId: '%s' is not %d hexadecimal characters", id,
		    FM_MSGID_LEN);
		return FM_H_DONE;
	}
	err = fm_broker_get_message(r->h->b, id, &l, &cause);
	if (err == 0 && l.n == 0) {
		err = -FM_E_NOT_FOUND;
		xasprintf(&cause, "message '%s' does not exist", id);
	}
	if (err != 0) {
		fm_reply_err(r, err, cause, FM_HC_MESSAGE_NOT_FOUND);
	} else {
		const struct fm_message *m = &l.items[0];
		struct fm_json j;

		/* a message published with delay or deliverAt says when it
		 * is (or was) due */
		fm_reply_json(r, MHD_HTTP_OK, &j);
		fm_codec_message_open(&j, NULL, m);
		if (m->rec.deliver_at > 0)
			fm_json_i64(&j, "deliverAt", m->rec.deliver_at);
		fm_json_obj_end(&j);
	}
	fm_msg_list_free(&l);
	return FM_H_DONE;
}

int
fm_h_query(struct fm_req *r)
{
	struct fm_msg_list l = FM_MSG_LIST_INIT;
	const char *topic = fm_arg_topic(r), *key;
	char *cause = NULL;
	uint64_t max;
	int64_t begin, end;
	int err;

	if (topic == NULL ||
	    fm_arg_u64(r, "max", PULL_DEFAULT, 1, FM_PULL_MAX, &max) != 0)
		return FM_H_DONE;
	key = fm_req_arg(r, "key");
	if ((key != NULL) == (fm_req_arg(r, "begin") != NULL)) {
		fm_reply_error(r, FM_HC_INVALID_ARGUMENT,
		    "give either key, or begin (and end) in epoch ms");
		return FM_H_DONE;
	}
	if (key != NULL) {
		err = fm_broker_query_key(r->h->b, topic, key, max, &l, &cause);
	} else {
		if (fm_arg_i64(r, "begin", 0, 0, INT64_MAX, &begin) != 0 ||
		    fm_arg_i64(r, "end", fm_now_ms(), begin, INT64_MAX, &end) !=
		        0)
			return FM_H_DONE;
		err = fm_broker_query_time(
		    r->h->b, topic, begin, end, max, &l, &cause);
	}
	if (err != 0)
		fm_reply_err(r, err, cause, FM_HC_TOPIC_NOT_FOUND);
	else
		reply_list(r, &l);
	fm_msg_list_free(&l);
	return FM_H_DONE;
}
