/*
 * sess.h - what the WebSocket front end's files share (internal to
 * src/ws): the service thread's state, sessions, their send queues, and
 * calls that complete on another thread.
 *
 * ws.c owns struct fm_ws, every session and frame; group.c owns a
 * consumer group stream's state (struct grp) and its calls. Everything
 * here runs on the service thread unless it says otherwise.
 *
 * Invariants of a session:
 *  1. queued is the sum of len over the send queue; head_sent says the
 *     head frame was partly sent (its start moved), so it must be
 *     finished before any other frame, a close frame included.
 *  2. At most one read (reading) is in flight: while it is, bc and grp's
 *     names belong to the worker; when lws closed the session meanwhile
 *     (dead), the read's finish frees them (ws_read_done).
 *  3. calls counts the references of calls in flight; a dead session is
 *     freed when it falls to 0, and is never on ws->woken or ws->dirty.
 */
#ifndef FM_WS_SESS_H
#define FM_WS_SESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/config.h"
#include "broker/broker.h"
#include "ws/bcast.h"
#include "ws/hub.h"
#include "ws/pool.h"
#include "ws/ws.h"

#define ARM_IDLE_MS (3600 * 1000) /* watch deadline; re-armed after it */
#define ACK_BATCH 64 /* auto acks settled in one commit */

struct grp;
struct lws;
struct lws_context;
struct lws_vhost;
struct pending;

/* A frame's bytes shared by the send queues of a hub's members. */
struct blob {
	unsigned refs; /* one per queued frame; service thread only */
	size_t start; /* offset of the frame's first byte */
	size_t len;
	unsigned char data[]; /* header room, header, payload */
};

/* A frame (or the handshake answer) waiting to be written. */
struct frame {
	struct frame *next;
	struct blob *blob; /* a reference; NULL: the bytes are in data */
	size_t start; /* offset of the first unsent byte in data */
	size_t len; /* bytes from start */
	char receipt[FM_RECEIPT_LEN + 1]; /* auto ack once written, or "" */
	unsigned char data[]; /* header room, header, payload */
};

struct sess {
	struct fm_ws *ws; /* borrowed */
	struct lws *wsi; /* borrowed from lws, NULL until adopted */
	struct fm_bcast *bc; /* owned; NULL for a group's stream */
	struct fm_hub_member hm; /* in a hub while caught up (bc only) */
	struct grp *grp; /* owned; NULL for the broadcast stream */
	fm_ws_done_fn done;
	void *done_arg;
	struct sess *prev, *next; /* in ws->sessions */
	struct sess *wnext; /* in ws->woken (ws->lock) */
	int wake_pending; /* on ws->woken (ws->lock) */
	struct frame *head, *tail; /* the send queue */
	size_t queued; /* bytes in the send queue */
	struct fm_buf rx; /* bytes received, not yet parsed */
	struct fm_buf msg; /* a fragmented message being assembled */
	int msg_op; /* its opcode (1 text, 2 binary), 0 for none */
	int armed; /* caught up: watches parked */
	int closing; /* a close frame is queued: nothing more */
	int opened; /* the handshake answer (the first frame) was written */
	int head_sent; /* part of the head frame was sent */
	int blocked; /* the socket is full: wait for lws's writeable call */
	struct sess *dnext; /* in ws->dirty */
	int dirty; /* on ws->dirty: a hub queued frames */
	unsigned calls; /* calls in flight that finish on this session */
	int reading; /* a worker reads for it: bc and grp are the worker's */
	int rx_on; /* lws reads from the client (rx_gate) */
	int dead; /* lws closed it; freed when calls reaches 0 */
	int64_t progress_ms; /* last frame taken, or queue became non-empty */
	int64_t rx_ms; /* last bytes from the client */
	int64_t ping_ms; /* ping outstanding since, 0 for none */
	unsigned char *wbuf; /* owned: WRITE_COALESCE bytes, for gather */
};

/* A call (a consumer group commit) whose completion comes on another
 * thread and is finished on the service thread. Embedded first in the
 * caller's own struct. */
struct ws_call {
	struct ws_call *next; /* in ws->finished (ws->lock) */
	struct fm_ws *ws;
	int err; /* what done said */
	void (*finish)(struct ws_call *c); /* frees c */
};

struct fm_ws {
	const struct fm_config *cfg; /* borrowed */
	struct fm_broker *b; /* borrowed */
	struct lws_context *ctx; /* owned */
	struct lws_vhost *vh; /* borrowed from ctx */
	pthread_t thread;
	int thread_live; /* thread was started and not yet joined */
	atomic_int stop; /* the service loop exits */
	pthread_mutex_t lock; /* guards the members down to refusing */
	pthread_cond_t calls_cond; /* in_flight fell */
	struct pending *adopt; /* adoptions to make */
	struct sess *woken; /* sessions whose reader was woken */
	struct ws_call *finished; /* calls done, to be finished */
	size_t in_flight; /* calls begun whose done has not come */
	int ctx_live; /* lws_cancel_service may be called */
	int refusing; /* fm_ws_stop ran: adoptions are refused */
	struct sess *sessions; /* service thread only, like those below */
	struct fm_pool *pool; /* owned: the workers reading the store */
	struct fm_hubs *hubs; /* owned: the caught-up broadcast readers */
	struct sess *dirty; /* sessions a hub queued frames for; service
	                       thread only */
};

/* ---- ws.c, for group.c ---- */

/* A new text frame holding a copy of json. */
struct frame *ws_frame_text(const char *json, size_t len);
/* Append f (ownership) to s's send queue. */
void ws_enqueue(struct sess *s, struct frame *f);
/* Ask lws for a writeable call when s has frames queued. */
void ws_want_write(struct sess *s);
/* Drop the queue, send a close frame with code and reason, then close. */
void ws_fail(struct sess *s, unsigned code, const char *reason);
/* Read or receive more for s while its budget allows. */
void ws_refill(struct sess *s);
/* The fm_bcast_wake_fn of a session's watch (any thread); arg is s. */
void ws_on_wake(void *arg, enum fm_bcast_why why);

/* Before starting an async call whose done is ws_call_done(c): count it
 * as in flight; finish(c) will run on the service thread (or in
 * fm_ws_stop) once done came. */
void ws_call_begin(
    struct fm_ws *ws, struct ws_call *c, void (*finish)(struct ws_call *c));
/* The call returned without a pending done (1 or an error). */
void ws_call_cancel(struct ws_call *c);
/* The fm_done_fn of every call: any thread; arg is the struct ws_call. */
void ws_call_done(void *arg, int err);
/* A call on s begins (s is kept, even after lws closed it, until as
 * many ws_sess_put). */
void ws_sess_get(struct sess *s);
/* A call on s finished. Returns 1 when s is alive, 0 when lws closed it
 * (then s may be gone: do not touch it). */
int ws_sess_put(struct sess *s);

/* Start a read for s on a worker: job runs there and ends with
 * ws_call_done(c); finish(c) runs here, calls ws_read_done(s) first and
 * ws_sess_put(s) last. Meanwhile s->bc and s->grp's strings are the
 * worker's, and s is not read for again. */
void ws_read_start(struct sess *s, struct ws_call *c,
    void (*finish)(struct ws_call *c), struct fm_job *job);
/* The read for s finished: if lws closed s meanwhile, free its reader
 * and group stream now (sess_free left them to the read). */
void ws_read_done(struct sess *s);

/* ---- group.c, for ws.c ---- */

/* A group stream's state for g (copied). */
struct grp *ws_grp_new(const struct fm_ws_group *g);
/* Cancel its watch, free it. NULL is a no-op. */
void ws_grp_free(struct grp *g);
/* Cancel its watch (the session closes). */
void ws_grp_disarm(struct grp *g);
/* Receive for s's group, unless a receive is in flight. */
void ws_grp_refill(struct sess *s);
/* A text message from the client of s: an ack or nack when it acks. */
void ws_grp_on_message(struct sess *s, const char *text, size_t len);
/* Auto acks remembered and not yet settled: frames with receipts to go
 * in one send stop at ACK_BATCH. */
size_t ws_grp_acks_pending(const struct sess *s);
/* f, holding a receipt, was written: remember it for the auto ack. */
void ws_grp_written(struct sess *s, const struct frame *f);
/* Settle the remembered auto acks once ACK_BATCH are held, or all of
 * them when all is set (the queue ran dry, or s closes). */
void ws_grp_flush_acks(struct sess *s, int all);

#endif
