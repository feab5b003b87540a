/*
 * ws.h - the WebSocket front end: one libwebsockets service thread that
 * takes over connections the HTTP server accepted (same port), speaks
 * RFC 6455 on them and streams a topic (the broadcast stream) or a
 * consumer group's messages to each; store reads for it are made by a
 * few worker threads and commits by the store's committer, so the
 * service thread never waits for the disk.
 *
 * Owns: the lws context and its thread, the sessions, their send queues
 * and budgets, frame parsing. Does not own: accepting sockets and HTTP
 * routing (http/server.c), what is streamed (ws/bcast.c).
 *
 * Threads: fm_ws_adopt is safe from any thread; everything else in the
 * session runs on the service thread. fm_ws_stop and fm_ws_free from the
 * thread that started it.
 */
#ifndef FM_WS_WS_H
#define FM_WS_WS_H

#include "base/config.h"
#include "broker/broker.h"
#include "ws/bcast.h"

/* Close codes of our own (RFC 6455 leaves 4000-4999 to applications). */
#define FM_WS_CLOSE_SLOW 4008 /* send budget exceeded: resume by cursor */
#define FM_WS_CLOSE_GONE 4004 /* the topic was deleted */

#define FM_WS_SEND_BUDGET (256 * 1024) /* bytes queued per connection */
#define FM_WS_STALL_MS 5000 /* budget full this long without progress */
#define FM_WS_MSG_MAX (64 * 1024) /* largest message a client may send */

struct fm_ws;

/* Start the service thread. cfg and b are borrowed and must outlive it.
 * *out is new (fm_ws_stop, then fm_ws_free). */
int fm_ws_start(const struct fm_config *cfg, struct fm_broker *b,
    struct fm_ws **out, char **cause);
/* Close every session (each one's done runs), stop the thread, and wait
 * for the consumer group commits the sessions started (so: before the
 * broker closes). Later fm_ws_adopt calls close their socket and call
 * done at once. */
void fm_ws_stop(struct fm_ws *ws);
void fm_ws_free(struct fm_ws *ws);

/* 0 when the headers of a GET ask for a WebSocket we can serve (RFC 6455
 * 4.2.1: Upgrade: websocket, Connection: upgrade, version 13, a 16-byte
 * key), else -FM_E_INVALID with *cause (new). Any may be NULL. */
int fm_ws_check_handshake(const char *upgrade, const char *connection,
    const char *version, const char *key, char **cause);

/* Called exactly once per adoption, once the session ended (lws is
 * closing its socket); on the service thread or in fm_ws_stop. */
typedef void (*fm_ws_done_fn)(void *arg);

/* A consumer group's stream (/v1/topics/{topic}/groups/{group}/ws). */
struct fm_ws_group {
	const char *topic; /* borrowed for the call, like every member */
	const char *group;
	const char *tags; /* NULL for every message */
	int client_ack; /* 1: the client acks; 0: acked once written */
	int64_t invisible_ms;
};

/* Take fd (ownership: a socket whose upgrade request was read, headers
 * checked by fm_ws_check_handshake) and bc (ownership), answer the
 * handshake for key and stream bc to it. */
void fm_ws_adopt(struct fm_ws *ws, int fd, const char *key, struct fm_bcast *bc,
    fm_ws_done_fn done, void *arg);
/* The same for a consumer group's stream: each frame is a message the
 * group handed out (fm_broker_group_receive), with "receiptHandle" when
 * the client acks: it sends {"ack": handle(s)} or {"nack": handle(s),
 * "delay": s}; failures come back as {"error", "receiptHandle"} frames.
 * With client_ack 0 the messages are acked once written to the socket
 * (at most once for what a vanishing client had not read yet), within
 * about a second of the write: a message written but not yet acked when
 * its invisible time ends would be delivered again. */
void fm_ws_adopt_group(struct fm_ws *ws, int fd, const char *key,
    const struct fm_ws_group *g, fm_ws_done_fn done, void *arg);

#endif
