/*
 * ws.c - the WebSocket service thread, sessions, framing and flow control
 * (see ws.h).
 *
 * Owns struct fm_ws, every session and its send queue, and the calls
 * that finish on the service thread. Does not own the listening socket
 * (MHD's), the events (bcast.c), the shared readers of caught-up
 * sessions (hub.c) nor a consumer group's stream (group.c).
 *
 * Why lws carries raw bytes and this file does the framing: lws 4.1.6
 * accepts unmasked client frames and offers no hook to see a frame
 * header (measured with Debian 12's build), yet RFC 6455 5.1 says a
 * server must close on one. So sockets are adopted in lws's RAW role:
 * lws gives the event loop and timers; writes (send() here), the
 * handshake answer, frame parsing (masks, reserved bits, opcodes,
 * lengths, fragments, UTF-8), pings and close codes are here, where
 * every rule is checked.
 *
 * Handoff (same port): the HTTP server suspends the connection on the
 * first handler call of an upgrade request, dup()s its fd and calls
 * fm_ws_adopt from its thread; that queues {fd, key, reader} under
 * ws->lock and wakes the service thread with lws_cancel_service(), the
 * only lws call made off that thread. LWS_CALLBACK_EVENT_WAIT_CANCELLED
 * adopts the queued sockets and serves the woken sessions. When lws
 * closes a session, its done callback resumes the MHD connection so that
 * MHD closes its copy of the socket.
 *
 * Flow control: a session reads events (bcast.c stops at the byte limit
 * it is given) or receives messages (group.c sizes a receive to the room
 * left) only while fewer than FM_WS_SEND_BUDGET bytes wait in its queue,
 * and reads nothing from its client while that holds or its acks in
 * flight reach CALLS_MAX (rx_gate: pongs, error frames and commits
 * answer the client), so a session holds at most the budget plus one
 * message however slow or hostile the client. Queued frames are sent
 * while the socket takes them (then lws says when it drains); the
 * socket's send buffer is capped. A client whose queue stayed full for
 * FM_WS_STALL_MS without taking a frame is closed with FM_WS_CLOSE_SLOW;
 * it resumes with the cursor of the last frame it read.
 * A reader that is caught up joins its topic's hub, which reads each new
 * event once for all its members (frames written in the same turn), or,
 * when the hub stands elsewhere, arms its own watches.
 *
 * Calls that complete elsewhere (consumer group commits, group.c) are
 * queued by their done callback under ws->lock, with one
 * lws_cancel_service per batch, and finished here in order; a session
 * lws closes while calls on it are in flight stays allocated (dead)
 * until the last one finished, and fm_ws_stop waits for them all.
 *
 * Session states (service thread only):
 *
 *   state    event                         move (by whom)
 *   -------  ----------------------------  ------------------------------
 *   open     queue below budget            a worker reads (refill ->
 *                                          reading; bread_finish)
 *   open     reader caught up              join the topic's hub, or arm
 *                                          watches (bread_finish)
 *   in hub   the hub reads an event        frame queued (hub_deliver)
 *   in hub   no room left                  evicted: reads on its own
 *   open     watch fires                   -> woken list; refill (serve)
 *   open     protocol error, slow, ping    drop the queue, queue a close
 *            timeout, topic deleted        frame -> closing (fail)
 *   open     client's close frame          echo it -> closing (on_close)
 *   closing  queue written                 lws closes the socket (write)
 *   any      lws closes the socket         disarm, done(arg) -> dead; free
 *                                          once no call holds it and no
 *                                          worker reads (sess_free)
 *
 * Invariants: a session's watches are disarmed before it leaves the
 * woken list for good (so no wake touches a dead or freed session); a
 * session is on the woken and dirty lists at most once, never while
 * dead; while reading, its reader and group stream are the worker's and
 * this thread touches neither; nothing is written after a close frame,
 * and a frame partly sent is finished before anything else.
 *
 * Locks: a bcast arming's lock, then a hub set's, then ws->lock; none is
 * held while calling into the broker.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "codec/codec.h"
#include "ws/sess.h"

#define PROTOCOL_NAME "ferrymq-ws"
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define SNDBUF_BYTES (256 * 1024) /* kernel send buffer per session */
#define TICK_MS 1000 /* per-session housekeeping timer, at most */
#define CLOSE_GRACE_S 10 /* time for a close frame to leave */
#define FRAME_HDR_MAX 10 /* server frames are never masked */
#define WRITE_COALESCE (64 * 1024) /* bytes of frames sent in one write */
#define POOL_THREADS 2 /* workers reading the store for sessions */
#define CALLS_MAX 16 /* group calls in flight before a client is not read */

/* An adoption waiting for the service thread. */
struct pending {
	struct pending *next;
	int fd; /* owned */
	char accept[32]; /* Sec-WebSocket-Accept value */
	struct fm_bcast *bc; /* owned; NULL for a group's stream */
	struct grp *grp; /* owned; NULL for the broadcast stream */
	fm_ws_done_fn done;
	void *arg;
};

static void rx_gate(struct sess *s);

/* ---- frames out ----
 *
 * Server frames (RFC 6455 5.2), never masked:
 *
 *    0               1               2               3
 *   +-+-+-+-+-------+-+-------------+-------------------------------+
 *   |F|R|R|R| opcode|0| len (7)     | len 16 (if 126) or 64 (127)   |
 *   |I|S|S|S|  (4)  | |             | big endian                    |
 *   |N|V|V|V|       | |             |                               |
 *   +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
 *   | payload ...
 */

enum {
	OP_CONT = 0,
	OP_TEXT = 1,
	OP_BIN = 2,
	OP_CLOSE = 8,
	OP_PING = 9,
	OP_PONG = 10
};

/* Write the header of an unfragmented frame of n payload bytes so that it
 * ends at end (FRAME_HDR_MAX bytes are free before it); returns its
 * length. */
static size_t
put_header(unsigned char *end, int op, size_t n)
{
	unsigned char hdr[FRAME_HDR_MAX];
	size_t h = 0;

	hdr[h++] = (unsigned char)(0x80 | op);
	if (n < 126) {
		hdr[h++] = (unsigned char)n;
	} else if (n <= 0xffff) {
		hdr[h++] = 126;
		hdr[h++] = (unsigned char)(n >> 8);
		hdr[h++] = (unsigned char)n;
	} else {
		hdr[h++] = 127;
		for (int i = 7; i >= 0; i--)
			hdr[h++] = (unsigned char)((uint64_t)n >> (8 * i));
	}
	memcpy(end - h, hdr, h);
	return h;
}

static struct frame *
frame_new(int op, const void *p, size_t n)
{
	struct frame *f = xmalloc(sizeof(*f) + FRAME_HDR_MAX + n);
	size_t h = put_header(f->data + FRAME_HDR_MAX, op, n);

	f->next = NULL;
	f->blob = NULL;
	f->receipt[0] = '\0';
	f->start = FRAME_HDR_MAX - h;
	f->len = h + n;
	if (n > 0)
		memcpy(f->data + FRAME_HDR_MAX, p, n);
	return f;
}

struct frame *
ws_frame_text(const char *json, size_t len)
{
	return frame_new(OP_TEXT, json, len);
}

/* A text frame of json, its bytes made once for every queue it goes to
 * (blob_frame); the caller drops its own reference with blob_put. */
static struct blob *
blob_new(const char *json, size_t n)
{
	struct blob *b = xmalloc(sizeof(*b) + FRAME_HDR_MAX + n);
	size_t h = put_header(b->data + FRAME_HDR_MAX, OP_TEXT, n);

	b->refs = 1;
	b->start = FRAME_HDR_MAX - h;
	b->len = h + n;
	memcpy(b->data + FRAME_HDR_MAX, json, n);
	return b;
}

static void
blob_put(struct blob *b)
{
	if (--b->refs == 0)
		free(b);
}

static struct frame *
blob_frame(struct blob *b)
{
	struct frame *f = xmalloc(sizeof(*f));

	f->next = NULL;
	f->blob = b;
	b->refs++;
	f->start = b->start;
	f->len = b->len;
	f->receipt[0] = '\0';
	return f;
}

static unsigned char *
frame_bytes(struct frame *f)
{
	return (f->blob != NULL ? f->blob->data : f->data) + f->start;
}

static void
frame_free(struct frame *f)
{
	if (f->blob != NULL)
		blob_put(f->blob);
	free(f);
}

static struct frame *
raw_new(const char *s)
{
	size_t n = strlen(s);
	struct frame *f = xmalloc(sizeof(*f) + n);

	f->next = NULL;
	f->blob = NULL;
	f->receipt[0] = '\0';
	f->start = 0;
	f->len = n;
	memcpy(f->data, s, n);
	return f;
}

void
ws_enqueue(struct sess *s, struct frame *f)
{
	if (s->head == NULL)
		s->progress_ms = fm_mono_ms();
	if (s->tail != NULL)
		s->tail->next = f;
	else
		s->head = f;
	s->tail = f;
	s->queued += f->len;
}

/* Drop the queued frames, but never the handshake answer nor a frame
 * partly sent: a close frame must follow them. */
static void
drop_queue(struct sess *s)
{
	struct frame *keep = s->opened && !s->head_sent ? NULL : s->head, *f;

	while ((f = s->head) != NULL) {
		s->head = f->next;
		if (f != keep)
			frame_free(f);
	}
	s->head = s->tail = keep;
	s->queued = keep != NULL ? keep->len : 0;
	if (keep != NULL)
		keep->next = NULL;
}

static void
disarm(struct sess *s)
{
	if (s->bc != NULL) {
		fm_hubs_leave(&s->hm);
		fm_bcast_disarm(s->bc);
	}
	if (s->grp != NULL)
		ws_grp_disarm(s->grp);
	s->armed = 0;
}

/* Queue a close frame after dropping what was not yet sent (but a frame
 * partly sent, which must be finished first); the socket closes once it
 * is written, or after CLOSE_GRACE_S. */
void
ws_fail(struct sess *s, unsigned code, const char *reason)
{
	unsigned char p[125];
	size_t n = strlen(reason);

	if (s->closing)
		return;
	if (n > sizeof(p) - 2)
		n = sizeof(p) - 2;
	p[0] = (unsigned char)(code >> 8);
	p[1] = (unsigned char)code;
	memcpy(p + 2, reason, n);
	drop_queue(s);
	if (!s->reading)
		disarm(s);
	s->closing = 1;
	ws_enqueue(s, frame_new(OP_CLOSE, p, n + 2));
	lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, CLOSE_GRACE_S);
	lws_callback_on_writable(s->wsi);
}

void
ws_want_write(struct sess *s)
{
	if (s->head != NULL)
		lws_callback_on_writable(s->wsi);
}

/* ---- calls finished on the service thread ---- */

void
ws_call_begin(
    struct fm_ws *ws, struct ws_call *c, void (*finish)(struct ws_call *c))
{
	c->ws = ws;
	c->finish = finish;
	c->err = 0;
	c->next = NULL;
	pthread_mutex_lock(&ws->lock);
	ws->in_flight++;
	pthread_mutex_unlock(&ws->lock);
}

void
ws_call_cancel(struct ws_call *c)
{
	struct fm_ws *ws = c->ws;

	pthread_mutex_lock(&ws->lock);
	ws->in_flight--;
	pthread_cond_broadcast(&ws->calls_cond);
	pthread_mutex_unlock(&ws->lock);
}

void
ws_call_done(void *arg, int err)
{
	struct ws_call *c = arg;
	struct fm_ws *ws = c->ws;

	pthread_mutex_lock(&ws->lock);
	c->err = err;
	c->next = ws->finished;
	ws->finished = c;
	ws->in_flight--;
	pthread_cond_broadcast(&ws->calls_cond);
	/* one wake per batch, as for the woken sessions */
	if (c->next == NULL && ws->ctx_live)
		lws_cancel_service(ws->ctx);
	pthread_mutex_unlock(&ws->lock);
}

/* Run the finish of every call done so far, in the order they were
 * done. */
static void
finish_calls(struct fm_ws *ws)
{
	struct ws_call *c, *next, *order = NULL;

	pthread_mutex_lock(&ws->lock);
	c = ws->finished;
	ws->finished = NULL;
	pthread_mutex_unlock(&ws->lock);
	for (; c != NULL; c = next) {
		next = c->next;
		c->next = order;
		order = c;
	}
	for (c = order; c != NULL; c = next) {
		next = c->next;
		c->finish(c);
	}
}

/* ---- reading events ---- */

void
ws_on_wake(void *arg, enum fm_bcast_why why)
{
	struct sess *s = arg;
	struct fm_ws *ws = s->ws;
	int kick;

	pthread_mutex_lock(&ws->lock);
	/* A non-empty woken list means a wake of the service thread is
	 * already pending (serve() empties the list when it runs): one
	 * lws_cancel_service per batch, not one per subscriber per message. */
	kick = ws->woken == NULL;
	if (!s->wake_pending) {
		s->wake_pending = 1;
		s->wnext = ws->woken;
		ws->woken = s;
	}
	if (kick && ws->ctx_live)
		lws_cancel_service(ws->ctx);
	pthread_mutex_unlock(&ws->lock);
}

/* ---- hubs: caught-up broadcast sessions share one reader ---- */

#define HUB_SESS(m) ((struct sess *)((char *)(m)-offsetof(struct sess, hm)))

/* From a broker thread (the set's wake): serve() will run soon. */
static void
kick(void *arg)
{
	struct fm_ws *ws = arg;

	pthread_mutex_lock(&ws->lock);
	if (ws->ctx_live)
		lws_cancel_service(ws->ctx);
	pthread_mutex_unlock(&ws->lock);
}

static size_t
hub_room(struct fm_hub_member *m)
{
	struct sess *s = HUB_SESS(m);

	return s->queued < FM_WS_SEND_BUDGET ? FM_WS_SEND_BUDGET - s->queued
	                                     : 0;
}

/* s is to be written (or refilled) in this turn of serve(), once the
 * finished calls and the hubs were served. */
static void
mark_dirty(struct sess *s)
{
	if (!s->dirty) {
		s->dirty = 1;
		s->dnext = s->ws->dirty;
		s->ws->dirty = s;
	}
}

static void
hub_deliver(struct fm_hub_member *first, const char *json, size_t len)
{
	struct blob *b = blob_new(json, len);

	for (struct fm_hub_member *m = first; m != NULL; m = m->next) {
		struct sess *s = HUB_SESS(m);

		ws_enqueue(s, blob_frame(b));
		mark_dirty(s);
	}
	blob_put(b);
}

static void
hub_evicted(struct fm_hub_member *m)
{
	struct sess *s = HUB_SESS(m);

	s->armed = 0;
	mark_dirty(s);
}

static void
hub_failed(struct fm_hub_member *m, int err, const char *cause)
{
	struct sess *s = HUB_SESS(m);

	s->armed = 0;
	ws_fail(s, err == -FM_E_NOT_FOUND ? FM_WS_CLOSE_GONE : 1011,
	    cause != NULL ? cause : fm_err_msg(err));
}

static const struct fm_hub_ops hub_ops = {
    hub_room, hub_deliver, hub_evicted, hub_failed};

/* A broadcast read made on a worker, since the store may be slow (a
 * reader from an old cursor): its events become frames there, which are
 * queued here once it finished. */
struct bread {
	struct ws_call call; /* first: finished by bread_finish */
	struct fm_job job;
	struct sess *s; /* referenced; s->bc is the worker's meanwhile */
	size_t max; /* bytes of events to read */
	int n; /* what fm_bcast_read returned */
	char *cause; /* owned */
	struct frame *head, *tail; /* owned */
};

static void
emit_frame(void *arg, const char *json, size_t len, const char *cursor)
{
	struct bread *r = arg;
	struct frame *f = frame_new(OP_TEXT, json, len);

	if (r->tail != NULL)
		r->tail->next = f;
	else
		r->head = f;
	r->tail = f;
}

/* On a worker. */
static void
bread_run(struct fm_job *job, struct fm_bcast_cache *cache)
{
	struct bread *r =
	    (struct bread *)((char *)job - offsetof(struct bread, job));
	struct fm_bcast *bc = r->s->bc;

	fm_bcast_use_cache(bc, cache);
	r->n = fm_bcast_read(bc, r->max, emit_frame, r, &r->cause);
	fm_bcast_use_cache(bc, NULL);
	ws_call_done(&r->call, 0);
}

static void
bread_finish(struct ws_call *c)
{
	struct bread *r = (struct bread *)c;
	struct sess *s = r->s;
	struct frame *f;

	ws_read_done(s);
	while ((f = r->head) != NULL) {
		r->head = f->next;
		f->next = NULL;
		if (s->dead || s->closing)
			frame_free(f);
		else
			ws_enqueue(s, f);
	}
	if (!s->dead && !s->closing) {
		if (r->n < 0)
			ws_fail(s,
			    r->n == -FM_E_NOT_FOUND ? FM_WS_CLOSE_GONE : 1011,
			    r->cause != NULL ? r->cause : fm_err_msg(r->n));
		else if (r->n == 0 &&
		    !fm_hubs_join(s->ws->hubs, &s->hm, s->bc)) {
			s->armed = 1;
			fm_bcast_arm(s->bc, ARM_IDLE_MS, ws_on_wake, s);
		}
		mark_dirty(s);
	}
	ws_sess_put(s);
	free(r->cause);
	free(r);
}

void
ws_read_start(struct sess *s, struct ws_call *c,
    void (*finish)(struct ws_call *c), struct fm_job *job)
{
	s->reading = 1;
	ws_sess_get(s);
	ws_call_begin(s->ws, c, finish);
	fm_pool_submit(s->ws->pool, job);
}

void
ws_read_done(struct sess *s)
{
	s->reading = 0;
	if (!s->dead)
		return;
	fm_bcast_free(s->bc);
	s->bc = NULL;
	ws_grp_free(s->grp);
	s->grp = NULL;
}

/* Fill the queue up to the budget; arm the watches when caught up. */
void
ws_refill(struct sess *s)
{
	struct bread *r;

	if (s->dead || s->closing || s->armed || s->reading ||
	    s->hm.hub != NULL || s->queued >= FM_WS_SEND_BUDGET)
		return;
	if (s->grp != NULL) {
		ws_grp_refill(s);
		return;
	}
	r = xcalloc(1, sizeof(*r));
	r->s = s;
	r->max = FM_WS_SEND_BUDGET - s->queued;
	r->job.run = bread_run;
	ws_read_start(s, &r->call, bread_finish, &r->job);
}

/* Take f, the head of the send queue, as written: a receipt of an
 * ack=auto stream is remembered, to be acked once the write is made. */
static void
taken(struct sess *s, struct frame *f)
{
	s->head = f->next;
	if (s->head == NULL)
		s->tail = NULL;
	s->queued -= f->len;
	s->opened = 1;
	if (f->receipt[0] != '\0')
		ws_grp_written(s, f);
	frame_free(f);
}

/* The bytes of the next send: the head frame alone when it is the only
 * one or larger than WRITE_COALESCE, else as many queued frames as fit in
 * s->wbuf, copied (a system call per frame per subscriber was half of a
 * fan-out's CPU, bench/RESULTS.md). An ack=auto stream stops at the
 * frame that fills its batch of acks. Nothing is taken off the queue. */
static const unsigned char *
gather(struct sess *s, size_t *len)
{
	size_t n = 0, acks = ws_grp_acks_pending(s);

	if (s->head->next == NULL || s->head->len > WRITE_COALESCE) {
		*len = s->head->len;
		return frame_bytes(s->head);
	}
	if (s->wbuf == NULL)
		s->wbuf = xmalloc(WRITE_COALESCE);
	for (struct frame *f = s->head;
	     f != NULL && n + f->len <= WRITE_COALESCE && acks < ACK_BATCH;
	     f = f->next) {
		memcpy(s->wbuf + n, frame_bytes(f), f->len);
		n += f->len;
		acks += f->receipt[0] != '\0';
	}
	*len = n;
	return s->wbuf;
}

/* k bytes from the head of the queue were sent: take the frames they
 * cover, and note how far into the next one they went. */
static void
consume(struct sess *s, size_t k)
{
	while (k > 0 && k >= s->head->len) {
		k -= s->head->len;
		s->head_sent = 0;
		taken(s, s->head);
	}
	if (k > 0) {
		s->head->start += k;
		s->head->len -= k;
		s->queued -= k;
		s->head_sent = 1;
	}
}

/* Send queued frames while the socket takes them. We write to the socket
 * ourselves (lws only polls it): so we know when it is full, which lws_write
 * hides by buffering the rest, and so frames can be written as soon as
 * they are queued instead of on the next turn of the loop. When the socket
 * is full, lws calls back once it drains (s->blocked until then). Then the
 * queue is refilled. -1: close the socket. */
static int
write_next(struct sess *s)
{
	int fd = lws_get_socket_fd(s->wsi), sent = 0;
	const unsigned char *p;
	size_t n;
	ssize_t k;

	while (s->head != NULL && !s->blocked) {
		p = gather(s, &n);
		k = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR)
			return -1;
		if (k > 0) {
			consume(s, (size_t)k);
			sent = 1;
		}
		if (k < (ssize_t)n)
			s->blocked = 1;
		/* what was written is acked now if nothing more can be: a
		 * slow reader must not hold acks until they go stale */
		ws_grp_flush_acks(s, s->head == NULL || s->blocked);
	}
	if (s->head == NULL && s->closing)
		return -1;
	if (sent)
		s->progress_ms = fm_mono_ms();
	rx_gate(s);
	ws_refill(s);
	if (s->head != NULL)
		lws_callback_on_writable(s->wsi);
	return 0;
}

/* Write what a hub queued for s at once, rather than on the next turn of
 * the service loop; a session evicted from its hub reads on its own. */
static void
write_now(struct sess *s)
{
	if (s->blocked) {
		ws_refill(s);
		return;
	}
	if (write_next(s) < 0)
		lws_set_timeout(
		    s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}

/* Read from the client only while what we send it is below the budget
 * and its acks in flight are few: pongs, error frames and commits answer
 * what it sends, so a client that sends without reading would otherwise
 * make us queue without bound. */
static void
rx_gate(struct sess *s)
{
	int on =
	    !s->dead && s->queued < FM_WS_SEND_BUDGET && s->calls < CALLS_MAX;

	if (on != s->rx_on && s->wsi != NULL) {
		lws_rx_flow_control(s->wsi, on);
		s->rx_on = on;
	}
}

/* ---- frames in ----
 *
 * Client frames must be masked (RFC 6455 5.1):
 *
 *   +-+-+-+-+-------+-+-------------+-------------------------------+
 *   |F|R|R|R| opcode|M| len (7)     | len 16 (if 126) or 64 (127)   |
 *   +-+-+-+-+-------+-+-------------+-------------------------------+
 *   | masking key (4 bytes, M = 1)  | payload, XOR key[i % 4]   ...
 *   +-------------------------------+-------------------------------
 */

static int
close_code_valid(unsigned c)
{
	return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) ||
	    (c >= 3000 && c <= 4999);
}

static void
on_close_frame(struct sess *s, const unsigned char *p, size_t n)
{
	unsigned code;

	if (n == 1) {
		ws_fail(s, 1002, "close frame of one byte");
		return;
	}
	if (n == 0) {
		ws_fail(s, 1000, "");
		return;
	}
	code = (unsigned)p[0] << 8 | p[1];
	if (!close_code_valid(code))
		ws_fail(s, 1002, "invalid close code");
	else if (!fm_codec_utf8_valid(p + 2, n - 2))
		ws_fail(s, 1007, "close reason is not UTF-8");
	else
		ws_fail(s, code, "");
}

/* A whole message from the client: text must be UTF-8; on a group's
 * stream with client acks it is an ack or nack, else it is ignored. */
static void
on_message(struct sess *s)
{
	if (s->msg_op == OP_TEXT &&
	    !fm_codec_utf8_valid(s->msg.data, s->msg.len))
		ws_fail(s, 1007, "text message is not valid UTF-8");
	else if (s->msg_op == OP_TEXT && s->grp != NULL)
		ws_grp_on_message(s, s->msg.data, s->msg.len);
	s->msg_op = 0;
	fm_buf_free(&s->msg);
}

static void
on_frame(struct sess *s, int fin, int op, const unsigned char *p, size_t n)
{
	const char *bad = NULL;

	switch (op) {
	case OP_CONT:
		if (s->msg_op == 0)
			bad = "continuation without a message";
		break;
	case OP_TEXT:
	case OP_BIN:
		if (s->msg_op != 0)
			bad = "new message inside a fragmented one";
		s->msg_op = op;
		break;
	case OP_CLOSE:
		on_close_frame(s, p, n);
		return;
	case OP_PING:
		ws_enqueue(s, frame_new(OP_PONG, p, n));
		lws_callback_on_writable(s->wsi);
		return;
	default: /* OP_PONG: the client is alive */
		s->ping_ms = 0;
		return;
	}
	if (bad != NULL) {
		ws_fail(s, 1002, bad);
	} else if (s->msg.len + n > FM_WS_MSG_MAX) {
		ws_fail(s, 1009, "message too big");
	} else {
		fm_buf_add(&s->msg, p, n);
		if (fin)
			on_message(s);
	}
}

/* Parse one frame from the front of s->rx. Returns its size, 0 when more
 * bytes are needed, -1 after a protocol error (a close is queued). */
static long
parse_frame(struct sess *s)
{
	unsigned char *d = (unsigned char *)s->rx.data;
	size_t have = s->rx.len, h = 2;
	uint64_t n;
	int fin, op;

	if (have < 2)
		return 0;
	fin = d[0] & 0x80;
	op = d[0] & 0x0f;
	if (d[0] & 0x70)
		return ws_fail(s, 1002, "reserved bits set"), -1;
	if (!(d[1] & 0x80))
		return ws_fail(s, 1002, "client frames must be masked"), -1;
	if ((op > OP_BIN && op < OP_CLOSE) || op > OP_PONG)
		return ws_fail(s, 1002, "unknown opcode"), -1;
	n = d[1] & 0x7f;
	if (op >= OP_CLOSE && (!fin || n > 125))
		return ws_fail(s, 1002, "bad control frame"), -1;
	if (n == 126) {
		if (have < 4)
			return 0;
		n = (uint64_t)d[2] << 8 | d[3];
		h = 4;
	} else if (n == 127) {
		if (have < 10)
			return 0;
		n = 0;
		for (int i = 2; i < 10; i++)
			n = n << 8 | d[i];
		h = 10;
		if (n >> 63)
			return ws_fail(s, 1002, "bad frame length"), -1;
	}
	if (n > FM_WS_MSG_MAX)
		return ws_fail(s, 1009, "frame too big"), -1;
	if (have < h + 4 + n)
		return 0;
	for (uint64_t i = 0; i < n; i++)
		d[h + 4 + i] ^= d[h + i % 4];
	on_frame(s, fin, op, d + h + 4, (size_t)n);
	return (long)(h + 4 + n);
}

static void
on_rx(struct sess *s, const void *in, size_t len)
{
	long used;

	s->rx_ms = fm_mono_ms();
	if (s->closing)
		return;
	fm_buf_add(&s->rx, in, len);
	while (!s->closing && (used = parse_frame(s)) > 0) {
		memmove(
		    s->rx.data, s->rx.data + used, s->rx.len - (size_t)used);
		s->rx.len -= (size_t)used;
	}
	if (s->rx.len == 0)
		fm_buf_free(&s->rx);
	rx_gate(s);
}

/* ---- housekeeping ---- */

/* The period of a session's housekeeping timer: short enough to ping
 * (and give up on a client) within half a ping interval of the time. */
static int64_t
tick_us(const struct fm_ws *ws)
{
	int64_t ms = ws->cfg->ws_ping_interval / 2;

	return (ms < TICK_MS ? ms : TICK_MS) * 1000;
}

static void
tick(struct sess *s)
{
	int64_t now = fm_mono_ms(), ping_ms = s->ws->cfg->ws_ping_interval;

	if (!s->closing && s->queued >= FM_WS_SEND_BUDGET &&
	    now - s->progress_ms >= FM_WS_STALL_MS)
		ws_fail(s, FM_WS_CLOSE_SLOW,
		    "slow consumer, resume with from=<last cursor>");
	if (!s->closing && s->ping_ms != 0 && now - s->ping_ms >= ping_ms)
		ws_fail(s, 1001, "no pong");
	if (!s->closing && s->ping_ms == 0 && now - s->rx_ms >= ping_ms) {
		s->ping_ms = now;
		ws_enqueue(s, frame_new(OP_PING, NULL, 0));
		lws_callback_on_writable(s->wsi);
	}
	ws_grp_flush_acks(s, 1);
	lws_set_timer_usecs(s->wsi, tick_us(s->ws));
}

/* ---- sessions ---- */

static void
sess_free(struct sess *s)
{
	struct fm_ws *ws = s->ws;

	/* no wake may put s on the woken list once it is off it (a reading
	 * session has no watch: the worker owns its reader) */
	if (!s->reading)
		disarm(s);
	ws_grp_flush_acks(s, 1);
	if (s->dirty) {
		struct sess **pp = &ws->dirty;

		while (*pp != s)
			pp = &(*pp)->dnext;
		*pp = s->dnext;
	}
	pthread_mutex_lock(&ws->lock);
	if (s->wake_pending) {
		struct sess **pp = &ws->woken;

		while (*pp != s)
			pp = &(*pp)->wnext;
		*pp = s->wnext;
	}
	pthread_mutex_unlock(&ws->lock);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else if (ws->sessions == s)
		ws->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	/* so that drop_queue frees the handshake answer and a frame partly
	 * sent too */
	s->opened = 1;
	s->head_sent = 0;
	drop_queue(s);
	fm_buf_free(&s->rx);
	fm_buf_free(&s->msg);
	free(s->wbuf);
	s->done(s->done_arg);
	s->dead = 1;
	if (!s->reading)
		ws_read_done(s);
	if (s->calls == 0)
		free(s);
}

void
ws_sess_get(struct sess *s)
{
	s->calls++;
}

int
ws_sess_put(struct sess *s)
{
	if (--s->calls > 0 || !s->dead) {
		rx_gate(s);
		return !s->dead;
	}
	free(s);
	return 0;
}

static void
on_adopted(struct sess *s, struct lws *wsi)
{
	struct fm_ws *ws = s->ws;

	s->wsi = wsi;
	s->rx_on = 1;
	s->next = ws->sessions;
	if (ws->sessions != NULL)
		ws->sessions->prev = s;
	ws->sessions = s;
	s->rx_ms = fm_mono_ms();
	lws_set_timer_usecs(wsi, tick_us(s->ws));
	ws_refill(s);
	lws_callback_on_writable(wsi);
}

static void
adopt_one(struct fm_ws *ws, struct pending *p)
{
	struct sess *s = xcalloc(1, sizeof(*s));
	char answer[160];
	lws_adopt_desc_t desc;

	s->ws = ws;
	s->bc = p->bc;
	s->grp = p->grp;
	s->done = p->done;
	s->done_arg = p->arg;
	snprintf(answer, sizeof(answer),
	    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
	    p->accept);
	ws_enqueue(s, raw_new(answer));
	memset(&desc, 0, sizeof(desc));
	desc.vh = ws->vh;
	desc.type = LWS_ADOPT_SOCKET;
	desc.fd.sockfd = p->fd;
	desc.vh_prot_name = PROTOCOL_NAME;
	desc.opaque = s;
	/* on failure lws has closed the fd, and may have sent RAW_CLOSE
	 * (sess_free) already: hold s until it is known */
	ws_sess_get(s);
	if (lws_adopt_descriptor_vhost_via_info(&desc) == NULL && !s->dead)
		sess_free(s);
	ws_sess_put(s);
}

/* Adopt what was queued, serve the woken sessions. */
static void
serve(struct fm_ws *ws)
{
	struct pending *adopt, *p;
	struct sess *woken, *s;

	pthread_mutex_lock(&ws->lock);
	adopt = ws->adopt;
	woken = ws->woken;
	ws->adopt = NULL;
	ws->woken = NULL;
	for (s = woken; s != NULL; s = s->wnext)
		s->wake_pending = 0;
	pthread_mutex_unlock(&ws->lock);
	while ((p = adopt) != NULL) {
		adopt = p->next;
		adopt_one(ws, p);
		free(p);
	}
	finish_calls(ws);
	fm_hubs_serve(ws->hubs);
	while ((s = ws->dirty) != NULL) {
		ws->dirty = s->dnext;
		s->dirty = 0;
		write_now(s);
	}
	while ((s = woken) != NULL) {
		woken = s->wnext;
		s->armed = 0;
		ws_refill(s);
	}
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct fm_ws *ws = lws_context_user(lws_get_context(wsi));
	struct sess *s = lws_get_opaque_user_data(wsi);

	switch (reason) {
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		serve(ws);
		break;
	case LWS_CALLBACK_RAW_ADOPT:
		if (s == NULL)
			return -1;
		on_adopted(s, wsi);
		break;
	case LWS_CALLBACK_RAW_RX:
		if (s != NULL)
			on_rx(s, in, len);
		break;
	case LWS_CALLBACK_RAW_WRITEABLE:
		if (s == NULL)
			break;
		s->blocked = 0;
		return write_next(s);
	case LWS_CALLBACK_TIMER:
		if (s != NULL)
			tick(s);
		break;
	case LWS_CALLBACK_RAW_CLOSE:
		if (s != NULL) {
			lws_set_opaque_user_data(wsi, NULL);
			sess_free(s);
		}
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
    {PROTOCOL_NAME, callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- the thread ---- */

static void *
service_main(void *arg)
{
	struct fm_ws *ws = arg;

	while (!atomic_load(&ws->stop))
		if (lws_service(ws->ctx, 0) < 0)
			break;
	return NULL;
}

static void
lws_logger(int level, const char *line)
{
	char copy[512];

	snprintf(copy, sizeof(copy), "%s", line);
	copy[strcspn(copy, "\n")] = '\0';
	fm_warn("ws: %s", copy);
}

int
fm_ws_start(const struct fm_config *cfg, struct fm_broker *b,
    struct fm_ws **out, char **cause)
{
	struct fm_ws *ws = xcalloc(1, sizeof(*ws));
	struct lws_context_creation_info info;

	ws->cfg = cfg;
	ws->b = b;
	ws->hubs = fm_hubs_new(&hub_ops, kick, ws);
	pthread_mutex_init(&ws->lock, NULL);
	pthread_cond_init(&ws->calls_cond, NULL);
	if ((ws->pool = fm_pool_new(POOL_THREADS)) == NULL)
		goto fail;
	atomic_init(&ws->stop, 0);
	lws_set_log_level(LLL_ERR | LLL_WARN, lws_logger);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.user = ws;
	info.gid = -1;
	info.uid = -1;
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	if ((ws->ctx = lws_create_context(&info)) == NULL ||
	    (ws->vh = lws_create_vhost(ws->ctx, &info)) == NULL)
		goto fail;
	ws->ctx_live = 1;
	if (pthread_create(&ws->thread, NULL, service_main, ws) != 0)
		goto fail;
	ws->thread_live = 1;
	*out = ws;
	return 0;
fail:
	xasprintf(cause, "cannot start the WebSocket service");
	fm_ws_stop(ws);
	fm_ws_free(ws);
	*out = NULL;
	return -FM_E_IO;
}

void
fm_ws_stop(struct fm_ws *ws)
{
	struct pending *p;

	if (ws == NULL)
		return;
	atomic_store(&ws->stop, 1);
	pthread_mutex_lock(&ws->lock);
	if (ws->ctx_live)
		lws_cancel_service(ws->ctx);
	pthread_mutex_unlock(&ws->lock);
	if (ws->thread_live)
		pthread_join(ws->thread, NULL);
	ws->thread_live = 0;
	pthread_mutex_lock(&ws->lock);
	ws->ctx_live = 0;
	ws->refusing = 1;
	p = ws->adopt;
	ws->adopt = NULL;
	pthread_mutex_unlock(&ws->lock);
	/* closes every session: sess_free runs here, on this thread */
	if (ws->ctx != NULL)
		lws_context_destroy(ws->ctx);
	ws->ctx = NULL;
	/* every session is closed now; the calls they started still hold
	 * them (and auto acks are being committed): wait, then finish */
	pthread_mutex_lock(&ws->lock);
	while (ws->in_flight > 0)
		pthread_cond_wait(&ws->calls_cond, &ws->lock);
	pthread_mutex_unlock(&ws->lock);
	finish_calls(ws);
	while (p != NULL) {
		struct pending *next = p->next;

		close(p->fd);
		fm_bcast_free(p->bc);
		ws_grp_free(p->grp);
		p->done(p->arg);
		free(p);
		p = next;
	}
}

void
fm_ws_free(struct fm_ws *ws)
{
	if (ws == NULL)
		return;
	fm_hubs_free(ws->hubs);
	fm_pool_free(ws->pool);
	pthread_cond_destroy(&ws->calls_cond);
	pthread_mutex_destroy(&ws->lock);
	free(ws);
}

/* ---- from other threads ---- */

static int
has_token(const char *list, const char *token)
{
	size_t n = strlen(token);

	for (const char *p = list; p != NULL && *p != '\0';) {
		p += strspn(p, " \t,");
		if (strncasecmp(p, token, n) == 0 &&
		    (p[n] == '\0' || p[n] == ',' || p[n] == ' ' ||
		        p[n] == '\t'))
			return 1;
		p += strcspn(p, ",");
	}
	return 0;
}

int
fm_ws_check_handshake(const char *upgrade, const char *connection,
    const char *version, const char *key, char **cause)
{
	struct fm_buf raw = FM_BUF_INIT;
	int ok;

	if (upgrade == NULL || !has_token(upgrade, "websocket") ||
	    connection == NULL || !has_token(connection, "upgrade")) {
		xasprintf(cause,
		    "this resource is a WebSocket: send Upgrade: "
		    "websocket and Connection: Upgrade");
		return -FM_E_INVALID;
	}
	if (version == NULL || strcmp(version, "13") != 0) {
		xasprintf(cause, "Sec-WebSocket-Version must be 13");
		return -FM_E_INVALID;
	}
	ok = key != NULL && strlen(key) == 24 &&
	    fm_codec_unbase64(&raw, key, 24) == 0 && raw.len == 16;
	fm_buf_free(&raw);
	if (!ok) {
		xasprintf(
		    cause, "Sec-WebSocket-Key must be 16 bytes in base64");
		return -FM_E_INVALID;
	}
	return 0;
}

static void
adopt(struct fm_ws *ws, int fd, const char *key, struct pending *p)
{
	unsigned char sha[20];
	char concat[128];
	int sndbuf = SNDBUF_BYTES, one = 1;

	snprintf(concat, sizeof(concat), "%s%s", key, WS_GUID);
	lws_SHA1((const unsigned char *)concat, strlen(concat), sha);
	lws_b64_encode_string(
	    (const char *)sha, sizeof(sha), p->accept, sizeof(p->accept));
	/* bounds what the kernel holds for a client that stops reading */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) != 0)
		fm_debug("ws: SO_SNDBUF: %s", strerror(errno));
	/* frames are coalesced here already: Nagle would only hold a small
	 * one back until the client's delayed ack (up to 40 ms) */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
		fm_debug("ws: TCP_NODELAY: %s", strerror(errno));
	p->fd = fd;
	pthread_mutex_lock(&ws->lock);
	if (!ws->refusing) {
		p->next = ws->adopt;
		ws->adopt = p;
		lws_cancel_service(ws->ctx);
		p = NULL;
	}
	pthread_mutex_unlock(&ws->lock);
	if (p != NULL) {
		close(fd);
		fm_bcast_free(p->bc);
		ws_grp_free(p->grp);
		p->done(p->arg);
		free(p);
	}
}

void
fm_ws_adopt(struct fm_ws *ws, int fd, const char *key, struct fm_bcast *bc,
    fm_ws_done_fn done, void *arg)
{
	struct pending *p = xcalloc(1, sizeof(*p));

	p->bc = bc;
	p->done = done;
	p->arg = arg;
	adopt(ws, fd, key, p);
}

void
fm_ws_adopt_group(struct fm_ws *ws, int fd, const char *key,
    const struct fm_ws_group *g, fm_ws_done_fn done, void *arg)
{
	struct pending *p = xcalloc(1, sizeof(*p));

	p->grp = ws_grp_new(g);
	p->done = done;
	p->arg = arg;
	adopt(ws, fd, key, p);
}
