/*
 * h_groups.c - the consumer group routes: receive (long-poll), ack, nack,
 * group state, reset, the list of groups, and a group's settings.
 *
 * Owns nothing across requests. Validates the query and body, calls the
 * broker (groups.c holds the rules) and answers. Receive, ack, nack and
 * reset use the broker's async forms: the answer is prepared at once and
 * the connection parked (fm_req_await) until the state.db commit it
 * depends on is done, so no MHD thread waits for an fsync. A receive's
 * messages go out only once their receipts are durable, an ack, nack or
 * reset is confirmed once durable; a failed commit replaces the prepared
 * answer with the error. A handler woken by that completion
 * (r->completed) only answers.
 *
 * A group made FIFO by PUT /v1/groups/{group} {"fifo": true} has RocketMQ 5
 * FIFO semantics on every receive (see fm_recv_opts in broker.h);
 * ?fifo=true asks for them in one receive of a group that is not.
 *
 * Ack and nack answer 200 whenever the body is well formed, with one
 * result per handle in order: {"receiptHandle", "ok": true} or
 * {"receiptHandle", "ok": false, "error": {"code", "message", "status"}},
 * where status is the 4xx the handle alone would have got (400
 * INVALID_ARGUMENT: not a handle, or another topic's or group's; 410
 * GONE: stale, acked or handed out again since).
 */
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/xmalloc.h"
#include "codec/codec.h"
#include "codec/codec_groups.h"
#include "http/http.h"
#include "http/reply.h"

#define RECV_DEFAULT 32
#define WAIT_MAX_S 30.0
#define INVISIBLE_DEFAULT_S 30.0
#define INVISIBLE_MAX_S 43200.0

static const char *
group_param(struct fm_req *r)
{
	return fm_req_param(r, "group");
}

/* ?fifo=true|false (1|0); absent is false. */
static int
fifo_arg(struct fm_req *r, int *out)
{
	const char *v = fm_req_arg(r, "fifo");

	*out = v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
	if (v == NULL || *out || strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
		return 0;
	fm_reply_error(r, FM_HC_INVALID_ARGUMENT, "fifo must be true or false");
	return -1;
}

static int
recv_args(struct fm_req *r, struct fm_recv_opts *o, double *wait)
{
	uint64_t max;
	double inv;

	memset(o, 0, sizeof(*o));
	if (fifo_arg(r, &o->fifo) != 0)
		return -1;

	if (fm_arg_u64(r, "max", RECV_DEFAULT, 1, FM_PULL_MAX, &max) != 0 ||
	    fm_arg_seconds(r, "wait", 0, WAIT_MAX_S, wait) != 0 ||
	    fm_arg_seconds(r, "invisible", INVISIBLE_DEFAULT_S, INVISIBLE_MAX_S,
	        &inv) != 0)
		return -1;
	o->tags = fm_req_arg(r, "tags");
	if (inv < 0.001) {
		fm_reply_error(r, FM_HC_INVALID_ARGUMENT,
		    "invisible must be at least 0.001 seconds");
		return -1;
	}
	if (o->tags != NULL && !fm_codec_utf8_valid(o->tags, strlen(o->tags))) {
		fm_reply_error(
		    r, FM_HC_INVALID_ARGUMENT, "tags: not valid UTF-8");
		return -1;
	}
	o->max = (size_t)max;
	o->invisible_ms = (int64_t)(inv * 1000 + 0.5);
	return 0;
}

static void
reply_messages(struct fm_req *r, const struct fm_recv_result *res)
{
	struct fm_json j;

	fm_reply_json(r, MHD_HTTP_OK, &j);
	fm_json_obj(&j, NULL);
	fm_json_arr(&j, "messages");
	for (size_t i = 0; i < res->msgs.n; i++)
		fm_codec_message_receipt(
		    &j, NULL, &res->msgs.items[i], res->receipts[i]);
	fm_json_arr_end(&j);
	fm_json_obj_end(&j);
}

/* The commit a prepared answer waited for failed: answer the error. */
static void
commit_failed(struct fm_req *r)
{
	fm_reply_error(r, fm_http_code_of(r->done_err),
	    "cannot store the group state: %s", fm_err_msg(r->done_err));
}

/* The answer is prepared and the async call given t returned rc (0 or
 * 1): answer once its commit is done. */
static int
await_commit(struct fm_req *r, struct fm_ticket *t, int rc)
{
	rc = fm_req_await(r, t, rc);
	if (rc == FM_H_DONE && r->done_err != 0)
		commit_failed(r);
	return rc;
}

/* Woken by the commit of the prepared answer. */
static int
committed(struct fm_req *r)
{
	if (r->done_err != 0)
		commit_failed(r);
	return FM_H_DONE;
}

/* Park again unless the wait is over: woken for a timeout or shutdown,
 * or the deadline passed. */
static int
should_park(struct fm_req *r, double wait)
{
	if (wait <= 0 || r->h->stopping || fm_mono_ms() >= r->deadline)
		return 0;
	return !r->woken || r->why == FM_WAKE_DATA;
}

int
fm_h_group_receive(struct fm_req *r)
{
	struct fm_recv_result res = FM_RECV_RESULT_INIT;
	const char *topic;
	struct fm_recv_opts o;
	struct fm_ticket *t;
	char *cause = NULL;
	double wait;
	int err, rc;

	if (r->woken && r->completed)
		return committed(r);
	topic = fm_arg_topic(r);
	if (topic == NULL || recv_args(r, &o, &wait) != 0)
		return FM_H_DONE;
	if (r->woken && r->why == FM_WAKE_SHUTDOWN) {
		/* the node stops: hand nothing out any more */
		reply_messages(r, &res);
		return FM_H_DONE;
	}
	if (r->deadline == 0)
		r->deadline = fm_mono_ms() + (int64_t)(wait * 1000);
	t = fm_req_ticket(r);
	err = fm_broker_group_receive_async(r->h->b, topic, group_param(r), &o,
	    &res, fm_req_ticket_done, t, &cause);
	if (err < 0) {
		free(t);
		fm_reply_err(r, err, cause, FM_HC_TOPIC_NOT_FOUND);
		return FM_H_DONE;
	}
	if (res.msgs.n == 0 && should_park(r, wait)) {
		free(t); /* no message: err is 1 */
		rc = fm_req_park(r, res.watch_topic, 0, res.watch_offset);
	} else {
		reply_messages(r, &res);
		rc = await_commit(r, t, err);
	}
	fm_recv_result_free(&res);
	return rc;
}

static void
reply_settled(struct fm_req *r, const struct fm_settle_body *sb,
    const int *errs, char **causes)
{
	struct fm_json j;

	fm_reply_json(r, MHD_HTTP_OK, &j);
	fm_json_obj(&j, NULL);
	fm_json_arr(&j, "results");
	for (size_t i = 0; i < sb->n; i++) {
		enum fm_http_code c = fm_http_code_of(errs[i]);

		fm_json_obj(&j, NULL);
		fm_json_str(&j, "receiptHandle", sb->handles[i]);
		fm_json_bool(&j, "ok", errs[i] == 0);
		if (errs[i] != 0) {
			fm_json_obj(&j, "error");
			fm_json_str(&j, "code", fm_http_code_name(c));
			fm_json_str(&j, "message",
			    causes[i] ? causes[i] : fm_err_msg(errs[i]));
			fm_json_u64(&j, "status", fm_http_code_status(c));
			fm_json_obj_end(&j);
		}
		fm_json_obj_end(&j);
	}
	fm_json_arr_end(&j);
	fm_json_obj_end(&j);
}

static int
settle(struct fm_req *r, int nack)
{
	struct fm_settle_body sb;
	const char *topic = fm_arg_topic(r);
	char *cause = NULL, **causes = NULL;
	struct fm_ticket *t;
	int *errs = NULL, err, rc = FM_H_DONE;

	if (r->woken)
		return committed(r);
	if (topic == NULL)
		return FM_H_DONE;
	err = fm_codec_parse_settle(r->body.data != NULL ? r->body.data : "",
	    r->body.len, nack, r->h->cfg->timer_max_delay_sec, &sb, &cause);
	if (err != 0) {
		fm_reply_error(r, FM_HC_BAD_REQUEST, "%s", cause);
		free(cause);
		return FM_H_DONE;
	}
	errs = xcalloc(sb.n, sizeof(*errs));
	causes = xcalloc(sb.n, sizeof(*causes));
	t = fm_req_ticket(r);
	err = fm_broker_group_settle_async(r->h->b, topic, group_param(r), nack,
	    sb.delay_s < 0 ? -1 : (int64_t)(sb.delay_s * 1000 + 0.5),
	    (const char *const *)sb.handles, sb.n, errs, causes,
	    fm_req_ticket_done, t, &cause);
	if (err < 0) {
		free(t);
		fm_reply_err(r, err, cause, FM_HC_TOPIC_NOT_FOUND);
	} else {
		reply_settled(r, &sb, errs, causes);
		rc = await_commit(r, t, err);
	}
	for (size_t i = 0; i < sb.n; i++)
		free(causes[i]);
	free(causes);
	free(errs);
	fm_codec_settle_free(&sb);
	return rc;
}

int
fm_h_group_ack(struct fm_req *r)
{
	return settle(r, 0);
}

int
fm_h_group_nack(struct fm_req *r)
{
	return settle(r, 1);
}

static void
reply_state(struct fm_req *r, const char *topic, const char *group, int fifo,
    const struct fm_group_queue *v, size_t n)
{
	uint64_t lag = 0, in_flight = 0;
	struct fm_json j;

	fm_reply_json(r, MHD_HTTP_OK, &j);
	fm_json_obj(&j, NULL);
	fm_json_str(&j, "topic", topic);
	fm_json_str(&j, "group", group);
	fm_json_bool(&j, "fifo", fifo);
	fm_json_arr(&j, "queues");
	for (size_t i = 0; i < n; i++) {
		uint64_t ql = v[i].max_offset > v[i].consumed
		    ? v[i].max_offset - v[i].consumed
		    : 0;

		fm_json_obj(&j, NULL);
		fm_json_u64(&j, "queueId", v[i].queue_id);
		fm_json_u64(&j, "consumedOffset", v[i].consumed);
		fm_json_u64(&j, "deliveredOffset", v[i].next);
		fm_json_u64(&j, "maxOffset", v[i].max_offset);
		fm_json_u64(&j, "lag", ql);
		fm_json_u64(&j, "inFlight", v[i].in_flight);
		fm_json_obj_end(&j);
		lag += ql;
		in_flight += v[i].in_flight;
	}
	fm_json_arr_end(&j);
	fm_json_u64(&j, "lag", lag);
	fm_json_u64(&j, "inFlight", in_flight);
	fm_json_obj_end(&j);
}

static int
answer_state(struct fm_req *r, const char *topic)
{
	struct fm_group_queue *v = NULL;
	struct fm_group_info gi;
	char *cause = NULL;
	size_t n = 0;
	int err;

	err = fm_broker_group_state(
	    r->h->b, topic, group_param(r), &v, &n, &cause);
	if (err != 0) {
		fm_reply_err(r, err, cause, FM_HC_NOT_FOUND);
	} else {
		/* it has state, so it has info (fifo 0 when never put) */
		fm_broker_group_info(r->h->b, group_param(r), &gi, NULL);
		reply_state(r, topic, group_param(r), gi.conf.fifo, v, n);
		fm_group_info_free(&gi);
	}
	free(v);
	return FM_H_DONE;
}

int
fm_h_group_get(struct fm_req *r)
{
	const char *topic = fm_arg_topic(r);

	if (topic == NULL)
		return FM_H_DONE;
	return answer_state(r, topic);
}

int
fm_h_group_reset(struct fm_req *r)
{
	const char *topic = fm_arg_topic(r);
	enum fm_reset how = FM_RESET_EARLIEST;
	struct fm_ticket *t;
	char *cause = NULL;
	int64_t ts = 0;
	int err;

	if (r->woken)
		return committed(r);
	if (topic == NULL)
		return FM_H_DONE;
	err = fm_codec_parse_reset(r->body.data != NULL ? r->body.data : "",
	    r->body.len, &how, &ts, &cause);
	if (err != 0) {
		fm_reply_error(r, FM_HC_BAD_REQUEST, "%s", cause);
		free(cause);
		return FM_H_DONE;
	}
	t = fm_req_ticket(r);
	err = fm_broker_group_reset_async(r->h->b, topic, group_param(r), how,
	    ts, fm_req_ticket_done, t, &cause);
	if (err < 0) {
		free(t);
		fm_reply_err(r, err, cause, FM_HC_TOPIC_NOT_FOUND);
		return FM_H_DONE;
	}
	answer_state(r, topic);
	return await_commit(r, t, err);
}

int
fm_h_group_list(struct fm_req *r)
{
	struct fm_group_name *v = NULL;
	size_t n = 0;
	struct fm_json j;
	int err;

	err = fm_broker_group_list(r->h->b, &v, &n);
	if (err != 0) {
		fm_reply_err(r, err, NULL, FM_HC_NOT_FOUND);
		return FM_H_DONE;
	}
	fm_reply_json(r, MHD_HTTP_OK, &j);
	fm_json_obj(&j, NULL);
	fm_json_arr(&j, "groups");
	for (size_t i = 0; i < n; i++) {
		fm_json_obj(&j, NULL);
		fm_json_str(&j, "group", v[i].group);
		fm_json_str(&j, "topic", v[i].topic);
		fm_json_bool(&j, "fifo", v[i].fifo);
		fm_json_obj_end(&j);
	}
	fm_json_arr_end(&j);
	fm_json_obj_end(&j);
	free(v);
	return FM_H_DONE;
}

static void
reply_group(struct fm_req *r, const struct fm_group_info *gi)
{
	struct fm_json j;

	fm_reply_json(r, MHD_HTTP_OK, &j);
	fm_json_obj(&j, NULL);
	fm_json_str(&j, "group", gi->conf.name);
	fm_json_bool(&j, "fifo", gi->conf.fifo);
	if (gi->conf.updated_ms != 0)
		fm_json_i64(&j, "updatedTimestamp", gi->conf.updated_ms);
	fm_json_arr(&j, "topics");
	for (size_t i = 0; i < gi->ntopics; i++)
		fm_json_str(&j, NULL, gi->topics[i]);
	fm_json_arr_end(&j);
	fm_json_obj_end(&j);
}

/* Answer the group's settings, or the broker's error of a call. */
static int
answer_group(struct fm_req *r, int err, char *cause, struct fm_group_info *gi)
{
	if (err != 0)
		fm_reply_err(r, err, cause, FM_HC_NOT_FOUND);
	else
		reply_group(r, gi);
	fm_group_info_free(gi);
	return FM_H_DONE;
}

int
fm_h_group_put(struct fm_req *r)
{
	struct fm_group_info gi;
	char *cause = NULL;
	int fifo, err;

	err = fm_codec_parse_group_put(r->body.data != NULL ? r->body.data : "",
	    r->body.len, &fifo, &cause);
	if (err != 0) {
		fm_reply_error(r, FM_HC_BAD_REQUEST, "%s", cause);
		free(cause);
		return FM_H_DONE;
	}
	err = fm_broker_group_put(r->h->b, group_param(r), fifo, &gi, &cause);
	return answer_group(r, err, cause, &gi);
}

int
fm_h_group_info(struct fm_req *r)
{
	struct fm_group_info gi;
	char *cause = NULL;
	int err = fm_broker_group_info(r->h->b, group_param(r), &gi, &cause);

	return answer_group(r, err, cause, &gi);
}
