/*
 * group.c - a consumer group's WebSocket stream (fm_ws_adopt_group):
 * receive for the group while the session's budget allows, ack what was
 * written (ack=auto) or what the client says (ack=client), through the
 * broker's async group calls, so that the service thread never waits for
 * a state.db commit (a slow fsync would stall every WebSocket).
 *
 * Owns struct grp and every struct gcall. A call's done comes on the
 * store's committer thread; ws.c queues it and runs its finish here, on
 * the service thread.
 *
 * Invariants:
 *  1. A received message is queued for the client only once its receipt
 *     is durable; after a failed commit the broker has undone the
 *     hand-out and the stream closes with 1011.
 *  2. At most one receive per session is in flight (on a worker, since
 *     it reads the store: sess.h, ws_read_start); the next one starts
 *     when it finished, so messages keep the order in which the group
 *     handed them out.
 *  3. A receive or a client's settle holds a reference to its session
 *     (ws_sess_get) until it finished; a finish for a session lws closed
 *     meanwhile only frees what the call holds. Auto acks hold none:
 *     they need nothing of the session once made.
 *  4. What a receive hands out fits the send budget at the stream's
 *     average frame size (receive_max), and auto acks are settled once
 *     ACK_BATCH are held, when the socket is full, when the queue ran
 *     dry and every tick: a written message is acked within about a
 *     second, long before it could become visible again.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "codec/codec.h"
#include "codec/codec_groups.h"
#include "codec/codec_ws.h"
#include "ws/sess.h"

#define AVG_START (32 * 1024) /* first receives take 8 messages at most */

struct grp {
	char *topic; /* owned, like the strings below */
	char *group;
	char *tags; /* NULL: every message */
	int client; /* the client acks */
	int64_t invisible_ms;
	struct fm_bcast_arm *arm; /* owned: the watch while caught up */
	char (*acks)[FM_RECEIPT_LEN + 1]; /* auto: written, not yet acked */
	size_t nacks;
	size_t avg; /* bytes of a frame, a running average (receive sizes) */
};

enum gcall_kind { GC_RECEIVE, GC_SETTLE, GC_AUTO_ACK };

/* One async group call. */
struct gcall {
	struct ws_call call; /* first: ws.c hands it back */
	enum gcall_kind kind;
	struct sess *s; /* referenced; NULL for GC_AUTO_ACK */
	struct fm_job job; /* GC_RECEIVE: it runs on a worker */
	struct fm_recv_opts o;
	int rc; /* what the receive call returned */
	atomic_int parts; /* the call's return and its done, to come */
	int done_err; /* what done said */
	char *cause; /* owned: its error */
	struct fm_recv_result res;
	struct fm_settle_body sb; /* GC_SETTLE: the client's handles */
	int *errs; /* GC_SETTLE: per handle */
	char **causes;
	size_t n;
	char *group; /* GC_AUTO_ACK: for the log */
	char (*acks)[FM_RECEIPT_LEN + 1]; /* GC_AUTO_ACK: owned */
};

struct grp *
ws_grp_new(const struct fm_ws_group *g)
{
	struct grp *gr = xcalloc(1, sizeof(*gr));

	gr->topic = xstrdup(g->topic);
	gr->group = xstrdup(g->group);
	gr->tags = g->tags != NULL ? xstrdup(g->tags) : NULL;
	gr->client = g->client_ack;
	gr->invisible_ms = g->invisible_ms;
	gr->avg = AVG_START;
	return gr;
}

void
ws_grp_disarm(struct grp *g)
{
	fm_bcast_unwatch(g->arm);
	g->arm = NULL;
}

void
ws_grp_free(struct grp *g)
{
	if (g == NULL)
		return;
	ws_grp_disarm(g);
	free(g->acks);
	free(g->topic);
	free(g->group);
	free(g->tags);
	free(g);
}

/* ---- calls ---- */

static void finish(struct ws_call *c);

static struct gcall *
gcall_alloc(enum gcall_kind kind)
{
	struct gcall *c = xcalloc(1, sizeof(*c));

	c->kind = kind;
	c->res = (struct fm_recv_result)FM_RECV_RESULT_INIT;
	return c;
}

/* A settle: made here (no store read), referencing s unless it is an
 * auto ack. */
static struct gcall *
gcall_new(struct sess *s, enum gcall_kind kind)
{
	struct gcall *c = gcall_alloc(kind);

	if (kind != GC_AUTO_ACK) {
		c->s = s;
		ws_sess_get(s);
	}
	ws_call_begin(s->ws, &c->call, finish);
	return c;
}

static void
gcall_free(struct gcall *c)
{
	fm_recv_result_free(&c->res);
	fm_codec_settle_free(&c->sb);
	for (size_t i = 0; i < c->n; i++)
		free(c->causes[i]);
	free(c->causes);
	free(c->errs);
	free(c->group);
	free(c->acks);
	free(c->cause);
	free(c);
}

/* The call returned without a pending done: it ends here. */
static void
gcall_end(struct gcall *c)
{
	ws_call_cancel(&c->call);
	if (c->s != NULL)
		ws_sess_put(c->s);
	gcall_free(c);
}

/* ---- receiving ---- */

static void
queue_received(struct sess *s, const struct fm_recv_result *res)
{
	struct fm_buf out = FM_BUF_INIT;
	struct fm_json j;

	for (size_t i = 0; i < res->msgs.n; i++) {
		struct frame *f;

		fm_buf_reset(&out);
		fm_json_init(&j, &out);
		if (s->grp->client)
			fm_codec_message_receipt(
			    &j, NULL, &res->msgs.items[i], res->receipts[i]);
		else
			fm_codec_message(&j, NULL, &res->msgs.items[i]);
		f = ws_frame_text(out.data, out.len);
		s->grp->avg = (s->grp->avg * 3 + f->len) / 4;
		if (!s->grp->client)
			memcpy(
			    f->receipt, res->receipts[i], sizeof(f->receipt));
		ws_enqueue(s, f);
	}
	fm_buf_free(&out);
}

/* Messages to receive: as many as the room left in the send queue holds
 * at the stream's average size (a receive has no byte limit, and what it
 * hands out is queued whole), at least one. */
static size_t
receive_max(const struct sess *s)
{
	size_t room = FM_WS_SEND_BUDGET - s->queued, n = room / s->grp->avg;

	return n < 1 ? 1 : n > FM_BCAST_BATCH ? FM_BCAST_BATCH : n;
}

/* The receive's done may come (on the committer) before the call
 * returned on the worker: whichever of the two is last ends the call. */
static void
receive_part(struct gcall *c)
{
	if (atomic_fetch_sub(&c->parts, 1) == 1)
		ws_call_done(&c->call, c->done_err);
}

static void
received_durable(void *arg, int err)
{
	struct gcall *c = arg;

	c->done_err = err;
	receive_part(c);
}

/* On a worker: the receive reads messages from the store. */
static void
receive_run(struct fm_job *job, struct fm_bcast_cache *cache)
{
	struct gcall *c =
	    (struct gcall *)((char *)job - offsetof(struct gcall, job));
	struct grp *g = c->s->grp;

	(void)cache;
	atomic_init(&c->parts, 2);
	c->rc = fm_broker_group_receive_async(c->s->ws->b, g->topic, g->group,
	    &c->o, &c->res, received_durable, c, &c->cause);
	if (c->rc != 0) /* no done will come */
		atomic_fetch_sub(&c->parts, 1);
	receive_part(c);
}

void
ws_grp_refill(struct sess *s)
{
	struct grp *g = s->grp;
	struct gcall *c = gcall_alloc(GC_RECEIVE);

	ws_grp_disarm(g);
	c->s = s;
	c->o.max = receive_max(s);
	c->o.invisible_ms = g->invisible_ms;
	c->o.tags = g->tags;
	c->job.run = receive_run;
	ws_read_start(s, &c->call, finish, &c->job);
}

static void
received(struct gcall *c)
{
	struct sess *s = c->s;

	if (c->rc < 0) {
		ws_fail(s, c->rc == -FM_E_NOT_FOUND ? FM_WS_CLOSE_GONE : 1011,
		    c->cause != NULL ? c->cause : fm_err_msg(c->rc));
		return;
	}
	if (c->rc == 1) {
		s->armed = 1;
		s->grp->arm = fm_bcast_watch(s->ws->b, c->res.watch_topic, 0,
		    c->res.watch_offset, ARM_IDLE_MS, ws_on_wake, s);
		return;
	}
	if (c->call.err != 0) {
		/* the broker undid the hand-out; like HTTP's 500, the client
		 * comes back later rather than this stream retrying at once
		 * against a failing disk */
		ws_fail(s, 1011, "cannot store the group state");
		return;
	}
	queue_received(s, &c->res);
	ws_refill(s);
	ws_want_write(s);
}

/* ---- settling ---- */

/* One {"error": {...}} frame, with the receipt handle it is about. */
static void
queue_error(struct sess *s, int err, const char *cause, const char *handle)
{
	struct fm_buf out = FM_BUF_INIT;

	fm_codec_error_receipt(&out, fm_err_name(err),
	    cause != NULL ? cause : fm_err_msg(err), handle);
	ws_enqueue(s, ws_frame_text(out.data, out.len));
	fm_buf_free(&out);
}

/* Answer a client's ack or nack: each failed handle, or the whole call
 * when its commit failed. */
static void
settled(struct gcall *c)
{
	struct sess *s = c->s;

	if (c->call.err != 0)
		queue_error(s, c->call.err, "cannot store the acks", NULL);
	else
		for (size_t i = 0; i < c->n; i++)
			if (c->errs[i] != 0)
				queue_error(s, c->errs[i], c->causes[i],
				    c->sb.handles[i]);
	ws_want_write(s);
}

void
ws_grp_on_message(struct sess *s, const char *text, size_t len)
{
	struct gcall *c;
	char *cause = NULL;
	int64_t delay_ms;
	int nack = 0, rc;

	if (!s->grp->client)
		return;
	c = gcall_new(s, GC_SETTLE);
	rc = fm_codec_parse_ws_settle(
	    text, len, s->ws->cfg->timer_max_delay_sec, &nack, &c->sb, &cause);
	if (rc < 0) {
		queue_error(s, rc, cause, NULL);
		free(cause);
		ws_want_write(s);
		gcall_end(c);
		return;
	}
	c->n = c->sb.n;
	c->errs = xcalloc(c->n + 1, sizeof(*c->errs));
	c->causes = xcalloc(c->n + 1, sizeof(*c->causes));
	delay_ms =
	    c->sb.delay_s < 0 ? -1 : (int64_t)(c->sb.delay_s * 1000 + 0.5);
	rc = fm_broker_group_settle_async(s->ws->b, s->grp->topic,
	    s->grp->group, nack, delay_ms, (const char *const *)c->sb.handles,
	    c->n, c->errs, c->causes, ws_call_done, &c->call, &cause);
	if (rc == 0)
		return;
	if (rc < 0)
		queue_error(s, rc, cause, NULL);
	else
		settled(c);
	free(cause);
	ws_want_write(s);
	gcall_end(c);
}

size_t
ws_grp_acks_pending(const struct sess *s)
{
	return s->grp != NULL ? s->grp->nacks : 0;
}

void
ws_grp_written(struct sess *s, const struct frame *f)
{
	struct grp *g = s->grp;

	if (g->acks == NULL)
		g->acks = xcalloc(ACK_BATCH, sizeof(*g->acks));
	memcpy(g->acks[g->nacks++], f->receipt, sizeof(f->receipt));
}

/* A stale handle (the message was handed out again meanwhile) is not an
 * error the client could act on; a failed commit is logged, and the
 * messages come back after their invisible time. */
void
ws_grp_flush_acks(struct sess *s, int all)
{
	struct grp *g = s->grp;
	struct gcall *c;
	const char **h;
	char *cause = NULL;
	int rc;

	if (g == NULL || g->nacks == 0 || (!all && g->nacks < ACK_BATCH))
		return;
	c = gcall_new(s, GC_AUTO_ACK);
	c->acks = g->acks;
	c->n = g->nacks;
	c->group = xstrdup(g->group);
	g->acks = NULL;
	g->nacks = 0;
	c->errs = xcalloc(c->n, sizeof(*c->errs));
	c->causes = xcalloc(c->n, sizeof(*c->causes));
	h = xcalloc(c->n, sizeof(*h));
	for (size_t i = 0; i < c->n; i++)
		h[i] = c->acks[i];
	rc = fm_broker_group_settle_async(s->ws->b, g->topic, g->group, 0, 0, h,
	    c->n, c->errs, c->causes, ws_call_done, &c->call, &cause);
	free(h);
	if (rc < 0)
		fm_warn("ws: auto ack of %zu messages of group '%s': %s", c->n,
		    c->group, cause != NULL ? cause : fm_err_msg(rc));
	free(cause);
	if (rc != 0)
		gcall_end(c);
}

/* ---- finishing (service thread) ---- */

static void
finish(struct ws_call *call)
{
	struct gcall *c = (struct gcall *)call;

	if (c->kind == GC_RECEIVE)
		ws_read_done(c->s);
	if (c->kind == GC_AUTO_ACK) {
		if (call->err != 0)
			fm_warn("ws: auto ack of %zu messages of group '%s' "
			        "not stored: %s",
			    c->n, c->group, fm_err_msg(call->err));
	} else if (!c->s->dead && !c->s->closing) {
		if (c->kind == GC_RECEIVE)
			received(c);
		else
			settled(c);
	}
	if (c->s != NULL)
		ws_sess_put(c->s);
	gcall_free(c);
}
