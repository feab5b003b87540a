/*
 * h_stream.h - the streaming routes of the HTTP front end: the EventSource
 * stream and the plain-GET answer of the WebSocket stream. (They live in
 * their own header so that http.h, shared by every handler, need not
 * change for them.)
 */
#ifndef FM_HTTP_H_STREAM_H
#define FM_HTTP_H_STREAM_H

#include "http/http.h"
#include "ws/ws.h"

/* A live event stream, linked in its server so that fm_http_stop can end
 * it: MHD refuses to stop while a connection is suspended, and a caught
 * up stream is. stop runs under the server's lock and must not block. */
struct fm_stream {
	struct fm_stream *prev, *next; /* server.c's list */
	void (*stop)(struct fm_stream *s);
};

/* Link s (server.c). -FM_E_SHUTDOWN when the server is stopping. */
int fm_http_stream_add(struct fm_http *h, struct fm_stream *s);
/* Unlink s; from the response's free callback. */
void fm_http_stream_del(struct fm_http *h, struct fm_stream *s);

/* GET /v1/topics/{topic}/events: answers an error, or queues a streaming
 * text/event-stream response itself and returns FM_H_PARKED so that
 * server.c queues nothing more. */
int fm_h_events(struct fm_req *r);
/* The options of a consumer group's WebSocket (the route's {topic} and
 * {group}, ?ack=auto|client, ?invisible=seconds, ?tags=), checked on the
 * first handler call so that a mistake is an HTTP error answer. g's
 * strings are borrowed from r. -FM_E_* with *cause (new). */
int fm_stream_ws_group(struct fm_req *r, struct fm_ws_group *g, char **cause);

/* GET /v1/topics/{topic}/ws without an upgrade (upgrades are handed to
 * the WebSocket service by server.c before any handler runs): 400. */
int fm_h_ws(struct fm_req *r);

#endif
