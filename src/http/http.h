/*
 * http.h - what the parts of the HTTP front end share: the server object,
 * the per-request context, the handler contract and the request helpers.
 * Private to src/http; the rest of ferrymq sees only server.h.
 *
 * Handler contract: a handler reads r (route params, query arguments,
 * headers, the whole body), then either fills the reply (r->status,
 * r->ctype, r->out, optional headers) and returns FM_H_DONE, or parks the
 * request with fm_req_park and returns FM_H_PARKED; it is then called
 * again after the wake, with r->woken set, and must answer or park again.
 * Handlers never touch MHD responses: server.c queues the reply, after the
 * first access-handler call (see FACTS.md on "queued early").
 */
#ifndef FM_HTTP_HTTP_H
#define FM_HTTP_HTTP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "base/buf.h"
#include "base/config.h"
#include "broker/broker.h"
#include "http/router.h"

#define FM_H_DONE 0
#define FM_H_PARKED 1

struct fm_ticket;
struct fm_ws;
struct fm_ws_group;

/* A live event stream, linked in its server so that fm_http_stop can end
 * it: MHD refuses to stop while a connection is suspended, and a caught
 * up stream is. stop runs under the server's lock and must not block. */
struct fm_stream {
	struct fm_stream *prev, *next; /* the server's list */
	void (*stop)(struct fm_stream *s);
};

struct fm_http {
	const struct fm_config *cfg; /* borrowed */
	struct fm_broker *b; /* borrowed */
	struct MHD_Daemon *d; /* owned */
	char *web_root; /* owned: directory of the console files */
	pthread_mutex_t lock; /* guards parked, stopping, draining, active */
	pthread_cond_t cond; /* signalled when parked, draining or active
	                        shrink */
	struct fm_req *parked; /* requests suspended in a broker watch */
	int stopping; /* set by fm_http_stop: no new request is served */
	size_t draining; /* woken requests not yet completed */
	size_t active; /* handlers running right now */
	struct fm_ws *ws; /* owned: the WebSocket service upgrades go to */
	struct fm_stream *streams; /* live event streams (lock) */
	int streams_stopped; /* fm_http_stop ended them (lock) */
	_Atomic size_t body_bytes; /* request body bytes held right now */
	size_t body_budget; /* most body_bytes may reach: then 503 BUSY */
};

struct fm_req {
	struct fm_http *h; /* borrowed */
	struct MHD_Connection *conn; /* borrowed from MHD */
	const char *method; /* borrowed from MHD */
	struct fm_route_match m; /* route and its params */
	enum fm_route_status route;
	struct fm_buf body; /* the request body, whole on the final call */
	size_t body_held; /* bytes of it counted in h->body_bytes */
	size_t body_max; /* bytes accepted for this route */
	int early_code; /* fm_http_code decided before the body, or -1 */
	char *early_msg; /* owned: its message */
	int early_close; /* answer at once and close: the body is not read */

	unsigned status; /* reply status */
	const char *ctype; /* reply Content-Type, static */
	struct fm_buf out; /* reply body */
	const char *allow; /* Allow header (405), borrowed from m */
	int retry_after; /* Retry-After seconds, 0 for none */

	/* long-poll; all guarded by h->lock while parked */
	struct fm_ticket *ticket; /* shared with the watch while parked */
	struct fm_req *prev, *next; /* in h->parked */
	int woken; /* the request has been parked and woken */
	enum fm_wake why; /* why the last wake happened */
	int draining; /* counted in h->draining */
	int64_t deadline; /* fm_mono_ms deadline of the long-poll, 0 unset */
	int done_err; /* a parked completion's err: 0 when durable */
	int completed; /* the last wake was a completion's, not a watch's */
};

/* Suspend r until the queue has a message at or beyond offset, or
 * r->deadline passes, or the server stops. Returns FM_H_PARKED. */
int fm_req_park(
    struct fm_req *r, const char *topic, uint32_t queue_id, uint64_t offset);

/* Parking a request until a broker completion (a publish durable, a
 * consumer group commit): create a ticket, hand the broker's async call
 * fm_req_ticket_done and the ticket; if the call returned 0, prepare the
 * success answer and return fm_req_park_durable(r, t), which parks
 * (FM_H_PARKED; the handler runs again with r->woken, r->completed and
 * r->done_err) or, when the completion already came, gives FM_H_DONE with
 * r->done_err set. Otherwise free(t): the call will never complete it.
 * fm_req_await does the last step for a call returning 1 (nothing to
 * wait for: t is freed, FM_H_DONE with r->done_err 0) or 0. */
struct fm_ticket *fm_req_ticket(struct fm_req *r);
void fm_req_ticket_done(void *ticket, int err);
int fm_req_park_durable(struct fm_req *r, struct fm_ticket *t);
int fm_req_await(struct fm_req *r, struct fm_ticket *t, int rc);

/* Query argument, header, route parameter: borrowed, NULL when absent
 * (a query argument given without '=' is ""). */
const char *fm_req_arg(struct fm_req *r, const char *name);
const char *fm_req_header(struct fm_req *r, const char *name);
const char *fm_req_param(struct fm_req *r, const char *name);
/* 1 when the request's Content-Type is application/x-ndjson. */
int fm_req_is_ndjson(struct fm_req *r);

/* ---- handlers (one table in server.c) ---- */
int fm_h_publish(struct fm_req *r);
int fm_h_pull(struct fm_req *r);
int fm_h_query(struct fm_req *r);
int fm_h_get_message(struct fm_req *r);
int fm_h_topic_put(struct fm_req *r);
int fm_h_topic_get(struct fm_req *r);
int fm_h_topic_delete(struct fm_req *r);
int fm_h_topic_list(struct fm_req *r);
int fm_h_group_list(struct fm_req *r);
int fm_h_broker(struct fm_req *r);
int fm_h_healthz(struct fm_req *r);
int fm_h_metrics(struct fm_req *r);
int fm_h_routes(struct fm_req *r);
int fm_h_topic_route(struct fm_req *r);
int fm_h_static(struct fm_req *r);
int fm_h_group_receive(struct fm_req *r);
int fm_h_group_ack(struct fm_req *r);
int fm_h_group_nack(struct fm_req *r);
int fm_h_group_get(struct fm_req *r);
int fm_h_group_reset(struct fm_req *r);
int fm_h_group_put(struct fm_req *r);
int fm_h_group_info(struct fm_req *r);
/* GET /v1/topics/{topic}/events: answers an error, or queues a streaming
 * text/event-stream response itself and returns FM_H_PARKED so that
 * server.c queues nothing more. */
int fm_h_events(struct fm_req *r);
/* GET /v1/topics/{topic}/ws without an upgrade (upgrades are handed to
 * the WebSocket service by server.c before any handler runs): 400. */
int fm_h_ws(struct fm_req *r);

/* ---- event streams and WebSocket upgrades ---- */

/* Link s (server.c). -FM_E_SHUTDOWN when the server is stopping. */
int fm_http_stream_add(struct fm_http *h, struct fm_stream *s);
/* Unlink s; from the response's free callback. */
void fm_http_stream_del(struct fm_http *h, struct fm_stream *s);
/* The options of a consumer group's WebSocket (the route's {topic} and
 * {group}, ?ack=auto|client, ?invisible=seconds, ?tags=), checked on the
 * first handler call so that a mistake is an HTTP error answer. g's
 * strings are borrowed from r. -FM_E_* with *cause (new). */
int fm_stream_ws_group(struct fm_req *r, struct fm_ws_group *g, char **cause);

#endif
