/*
 * h_stream.c - the EventSource (Server-Sent Events) stream of a topic,
 * GET /v1/topics/{topic}/events; the plain-GET answer of the WebSocket
 * streams and the options of a consumer group's WebSocket.
 *
 * Owns each stream's state (struct sse), created by the handler and freed
 * by MHD's free callback of the response. Does not own the events: those
 * are ws/bcast.c's, the same reader the WebSocket stream uses, so both
 * transports carry the same JSON and the same cursors.
 *
 * The one exception to http.h's handler contract: fm_h_events queues its
 * own response (chunked, from a content reader), because a stream cannot
 * be a buffer; it returns FM_H_PARKED so that server.c queues nothing.
 *
 * Wire form, one event per message (the WHATWG EventSource format):
 *
 *   retry: 2000\n\n                  once, first
 *   id: <cursor>\ndata: <json>\n\n   one per message or gap marker
 *   : keepalive\n\n                  after sseKeepaliveInterval quiet
 *
 * Browsers send the last id back as Last-Event-ID when they reconnect;
 * it wins over ?from= (which stays in the URL they reconnect to).
 *
 * Invariants: the reader never returns 0 without suspending (MHD would
 * call it again at once, FACTS.md); a suspended stream has its watches
 * armed, and the wake only resumes the connection; the reader is
 * disarmed in the free callback before the state is freed, so a wake
 * never touches freed memory.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "codec/codec.h"
#include "http/http.h"
#include "http/reply.h"
#include "ws/ws.h"
#include "ws/bcast.h"

#define SSE_BLOCK (32 * 1024) /* MHD's buffer per reader call */
#define SSE_READ_BYTES (64 * 1024) /* events read per refill */

struct sse {
	struct fm_stream link; /* first: in the server's list */
	struct fm_http *h; /* borrowed */
	struct MHD_Connection *conn; /* borrowed from MHD */
	pthread_mutex_t lock; /* guards suspended and stopped */
	int suspended; /* the connection is suspended, to be resumed once */
	int stopped; /* fm_http_stop: end the stream now */
	struct fm_bcast *bc; /* owned */
	struct fm_buf out; /* event text not yet given to MHD */
	size_t off; /* bytes of out already given */
	int ended; /* the topic is gone: end after out */
	atomic_int woke; /* a wake came since the last suspend */
	int64_t keepalive_ms; /* sseKeepaliveInterval */
};

static void
emit_event(void *arg, const char *json, size_t len, const char *cursor)
{
	struct sse *st = arg;

	fm_buf_adds(&st->out, "id: ");
	fm_buf_adds(&st->out, cursor);
	fm_buf_adds(&st->out, "\ndata: ");
	fm_buf_add(&st->out, json, len);
	fm_buf_adds(&st->out, "\n\n");
}

/* Resume the connection if suspended (exactly once per suspension). */
static void
resume(struct sse *st)
{
	pthread_mutex_lock(&st->lock);
	if (st->suspended) {
		st->suspended = 0;
		MHD_resume_connection(st->conn);
	}
	pthread_mutex_unlock(&st->lock);
}

static void
on_wake(void *arg, enum fm_bcast_why why)
{
	struct sse *st = arg;

	atomic_store(&st->woke, 1);
	resume(st);
}

static void
on_stop(struct fm_stream *link)
{
	struct sse *st = (struct sse *)link;

	pthread_mutex_lock(&st->lock);
	st->stopped = 1;
	pthread_mutex_unlock(&st->lock);
	resume(st);
}

/* Suspend until woken; 0 when stopped meanwhile (end the stream). The
 * watches are armed after the suspension so that a wake firing at once
 * finds the connection suspended. */
static int
sleep_until_woken(struct sse *st)
{
	pthread_mutex_lock(&st->lock);
	if (st->stopped) {
		pthread_mutex_unlock(&st->lock);
		return 0;
	}
	st->suspended = 1;
	MHD_suspend_connection(st->conn);
	pthread_mutex_unlock(&st->lock);
	fm_bcast_arm(st->bc, st->keepalive_ms, on_wake, st);
	return 1;
}

/* Read events into st->out; an error ends the stream with an error
 * event (the error form of every other route, as data). */
static void
refill(struct sse *st)
{
	char *cause = NULL;
	int n;

	n = fm_bcast_read(st->bc, SSE_READ_BYTES, emit_event, st, &cause);
	if (n < 0) {
		fm_buf_adds(&st->out, "event: error\ndata: ");
		fm_codec_error(&st->out,
		    n == -FM_E_NOT_FOUND ? "TOPIC_NOT_FOUND" : fm_err_name(n),
		    cause != NULL ? cause : fm_err_msg(n));
		fm_buf_adds(&st->out, "\n\n");
		st->ended = 1;
	} else if (n == 0 && atomic_exchange(&st->woke, 0)) {
		fm_buf_adds(&st->out, ": keepalive\n\n");
	}
	free(cause);
}

static ssize_t
sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sse *st = cls;
	size_t n;

	if (st->off == st->out.len) {
		fm_buf_reset(&st->out);
		st->off = 0;
		if (st->ended)
			return MHD_CONTENT_READER_END_OF_STREAM;
		refill(st);
	}
	if (st->off == st->out.len)
		return sleep_until_woken(st) ? 0
		                             : MHD_CONTENT_READER_END_OF_STREAM;
	n = st->out.len - st->off;
	if (n > max)
		n = max;
	memcpy(buf, st->out.data + st->off, n);
	st->off += n;
	return (ssize_t)n;
}

static void
sse_free(void *cls)
{
	struct sse *st = cls;

	fm_bcast_free(st->bc);
	if (st->h != NULL)
		fm_http_stream_del(st->h, &st->link);
	pthread_mutex_destroy(&st->lock);
	fm_buf_free(&st->out);
	free(st);
}

int
fm_h_events(struct fm_req *r)
{
	const char *topic = fm_arg_topic(r);
	const char *from = fm_req_header(r, "Last-Event-ID");
	struct MHD_Response *resp;
	struct sse *st;
	char *cause = NULL;
	int err;

	if (topic == NULL)
		return FM_H_DONE;
	if (from == NULL || from[0] == '\0')
		from = fm_req_arg(r, "from");
	st = xcalloc(1, sizeof(*st));
	err = fm_bcast_open(r->h->b, topic, from, &st->bc, &cause);
	if (err < 0) {
		free(st);
		fm_reply_err(r, err, cause, FM_HC_TOPIC_NOT_FOUND);
		return FM_H_DONE;
	}
	st->conn = r->conn;
	st->keepalive_ms = r->h->cfg->sse_keepalive_interval;
	st->link.stop = on_stop;
	pthread_mutex_init(&st->lock, NULL);
	atomic_init(&st->woke, 0);
	fm_buf_adds(&st->out, "retry: 2000\n\n");
	resp = MHD_create_response_from_callback(
	    MHD_SIZE_UNKNOWN, SSE_BLOCK, sse_read, st, sse_free);
	if (resp == NULL) {
		sse_free(st);
		fm_reply_error(r, FM_HC_INTERNAL, "cannot create the stream");
		return FM_H_DONE;
	}
	if (fm_http_stream_add(r->h, &st->link) == 0)
		st->h = r->h;
	else
		st->stopped = 1;
	MHD_add_response_header(
	    resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(
	    resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	if (MHD_queue_response(r->conn, MHD_HTTP_OK, resp) != MHD_YES)
		fm_warn("http: cannot queue the event stream of '%s'", topic);
	MHD_destroy_response(resp);
	return FM_H_PARKED;
}

#define GROUP_MAX 122 /* so that "%DLQ%{group}" is a topic name */
#define INVISIBLE_DEFAULT_S 30.0
#define INVISIBLE_MAX_S 43200.0

static int
invisible_arg(struct fm_req *r, int64_t *out, char **cause)
{
	const char *v = fm_req_arg(r, "invisible");
	double d = INVISIBLE_DEFAULT_S;
	char *end;

	if (v != NULL) {
		d = strtod(v, &end);
		if (end == v || *end != '\0' || !(d >= 0.001) ||
		    d > INVISIBLE_MAX_S) {
			xasprintf(cause,
			    "invisible must be 0.001..%.0f seconds",
			    INVISIBLE_MAX_S);
			return -FM_E_INVALID;
		}
	}
	*out = (int64_t)(d * 1000 + 0.5);
	return 0;
}

int
fm_stream_ws_group(struct fm_req *r, struct fm_ws_group *g, char **cause)
{
	const char *ack = fm_req_arg(r, "ack");
	struct fm_topic_conf tc;
	int err;

	memset(g, 0, sizeof(*g));
	g->topic = fm_req_param(r, "topic");
	g->group = fm_req_param(r, "group");
	g->tags = fm_req_arg(r, "tags");
	if ((err = fm_broker_check_topic_name(g->topic, cause)) < 0 ||
	    (err = fm_broker_check_topic_name(g->group, cause)) < 0 ||
	    (err = invisible_arg(r, &g->invisible_ms, cause)) < 0)
		return err;
	if (strlen(g->group) > GROUP_MAX) {
		xasprintf(
		    cause, "a group name has at most %d characters", GROUP_MAX);
		return -FM_E_INVALID;
	}
	if (ack != NULL && strcmp(ack, "auto") != 0 &&
	    strcmp(ack, "client") != 0) {
		xasprintf(cause, "ack must be auto or client");
		return -FM_E_INVALID;
	}
	if (g->tags != NULL && !fm_codec_utf8_valid(g->tags, strlen(g->tags))) {
		xasprintf(cause, "tags: not valid UTF-8");
		return -FM_E_INVALID;
	}
	g->client_ack = ack != NULL && strcmp(ack, "client") == 0;
	return fm_broker_topic_get(r->h->b, g->topic, &tc, cause);
}

int
fm_h_ws(struct fm_req *r)
{
	fm_reply_error(r, FM_HC_BAD_REQUEST,
	    "this resource is a WebSocket: send Upgrade: websocket and "
	    "Connection: Upgrade");
	return FM_H_DONE;
}
