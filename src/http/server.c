/*
 * server.c - the libmicrohttpd daemon: listening socket, per-request
 * context, body accumulation with caps, the route table, queuing replies,
 * and the suspend/resume plumbing of long-polls and of requests waiting
 * for a broker completion.
 *
 * Owns: struct fm_http, every struct fm_req (created on the first access
 * handler call, freed in the completed callback) and the tickets shared
 * with broker watches and completions. Does not own: what a route does
 * (h_*.c), JSON (codec.c), the error table (reply.c).
 *
 * Request flow, one MHD access-handler call per row:
 *
 *   call                    what happens
 *   ----------------------  ---------------------------------------------
 *   first (headers only)    route, smuggling and Content-Length checks;
 *                           an error is only remembered (not queued
 *                           here: MHD would then close keep-alive
 *                           connections, FACTS.md "queued early"), except
 *                           the two where closing is the point: a body
 *                           too large by its Content-Length (reading a
 *                           GB to refuse it would be a gift to attackers)
 *                           and Content-Length with Transfer-Encoding
 *                           (the framing is ambiguous, so the connection
 *                           cannot be reused safely)
 *   with upload data        append to the body up to body_max, or
 *                           discard once an error is remembered
 *   final (size 0)          answer the remembered error, or run the
 *                           handler; it answers or parks (suspends)
 *   after a resume          the handler runs again with r->woken set
 *
 * An upgrade request of a WebSocket route leaves this flow on its first
 * call: it is handed to the WebSocket service (see "WebSocket handoff"
 * below), and its final call, after the session ended, closes it.
 *
 * Parking, race-free: a ticket {h, r, state} is shared between the
 * request and its broker watch. The connection is suspended *before*
 * the watch exists, so a wake that fires at once (even inside
 * fm_broker_watch) resumes a suspended connection and is never lost.
 *
 *   ticket state  event                      move (by whom)
 *   ------------  -------------------------  ---------------------------
 *   ATTACHED      watch fires                -> FIRED: on_wake unlinks r,
 *                                            resumes it, frees the ticket
 *   ATTACHED      fm_http_stop               -> DETACHED: stop unlinks r
 *                                            and resumes it
 *   DETACHED      watch fires (at the latest  on_wake frees the ticket,
 *                 in fm_broker_close)         touching nothing else
 *
 * The compare-and-swap on state decides which side resumes; the watch
 * callback is the only one that frees the ticket, since the broker calls
 * it exactly once and we never unwatch.
 *
 * Invariants: a parked request is in h->parked and suspended; a request
 * never completes while parked; once stopping is set no new request
 * reaches a handler (503 SHUTTING_DOWN); fm_http_stop resumes every
 * request parked in a watch, waits for those parked on a broker
 * completion and for the handlers running, and waits (bounded) for the
 * woken ones to be answered before MHD_stop_daemon, because suspended
 * connections never time out and MHD aborts when it stops with one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "http/http.h"
#include "http/reply.h"
#include "http/server.h"
#include "ws/bcast.h"
#include "ws/ws.h"

#ifndef FERRYMQ_WEBDIR
#define FERRYMQ_WEBDIR "/usr/local/share/ferrymq/web"
#endif
#ifndef FERRYMQ_SRCWEBDIR
#define FERRYMQ_SRCWEBDIR "web"
#endif

/* MHD zeroes a connection's whole pool for every request (0.9.75,
 * MHD_pool_reset): 128 KiB cost ~13% of the CPU per 1 KiB publish. 32 KiB
 * still takes 16 KiB body pieces and any sane header block. */
#define CONN_MEMORY (32 * 1024)
#define CONN_TIMEOUT_S 60 /* idle keep-alive connections */
#define SMALL_BODY_MAX (64 * 1024) /* any route but publish */
#define BODY_BUDGET_MIN (256u << 20) /* bytes of request bodies held at once */
#define DRAIN_MS 2000 /* how long stop waits for woken requests */
#define LISTEN_BACKLOG 1024

static const struct fm_route routes[] = {
    {"POST", "/v1/topics/{topic}/messages", fm_h_publish},
    {"GET", "/v1/topics/{topic}/messages", fm_h_query},
    {"GET", "/v1/topics/{topic}/queues/{queueId}/messages", fm_h_pull},
    {"GET", "/v1/topics/{topic}/ws", fm_h_ws},
    {"GET", "/v1/topics/{topic}/events", fm_h_events},
    {"GET", "/v1/topics/{topic}/groups/{group}/ws", fm_h_ws},
    {"POST", "/v1/topics/{topic}/groups/{group}/receive", fm_h_group_receive},
    {"POST", "/v1/topics/{topic}/groups/{group}/ack", fm_h_group_ack},
    {"POST", "/v1/topics/{topic}/groups/{group}/nack", fm_h_group_nack},
    {"POST", "/v1/topics/{topic}/groups/{group}/reset", fm_h_group_reset},
    {"GET", "/v1/topics/{topic}/groups/{group}", fm_h_group_get},
    {"PUT", "/v1/topics/{topic}", fm_h_topic_put},
    {"GET", "/v1/topics/{topic}", fm_h_topic_get},
    {"DELETE", "/v1/topics/{topic}", fm_h_topic_delete},
    {"GET", "/v1/topics", fm_h_topic_list},
    {"GET", "/v1/messages/{msgId}", fm_h_get_message},
    {"GET", "/v1/groups", fm_h_group_list},
    {"PUT", "/v1/groups/{group}", fm_h_group_put},
    {"GET", "/v1/groups/{group}", fm_h_group_info},
    {"GET", "/v1/broker", fm_h_broker},
    {"GET", "/healthz", fm_h_healthz},
    {"GET", "/metrics", fm_h_metrics},
    {"GET", "/routes", fm_h_routes},
    {"GET", "/routes/{topic}", fm_h_topic_route},
    {"GET", "/", fm_h_static},
    {"GET", "/{file}", fm_h_static},
};

enum { TICKET_ATTACHED, TICKET_FIRED, TICKET_DETACHED, TICKET_PENDING };

struct fm_ticket {
	struct fm_http *h; /* valid while ATTACHED or FIRED */
	struct fm_req *r; /* valid while ATTACHED or FIRED */
	atomic_int state; /* TICKET_* */
	int durable; /* waits for a publish's durability, not a watch */
	int err; /* durable: the completion's error (FIRED early) */
};

/* ---- request helpers ---- */

const char *
fm_req_arg(struct fm_req *r, const char *name)
{
	const char *v = NULL;
	size_t len = 0;

	if (MHD_lookup_connection_value_n(r->conn, MHD_GET_ARGUMENT_KIND, name,
	        strlen(name), &v, &len) != MHD_YES)
		return NULL;
	return v != NULL ? v : "";
}

const char *
fm_req_header(struct fm_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *
fm_req_param(struct fm_req *r, const char *name)
{
	return fm_route_param(&r->m, name);
}

int
fm_req_is_ndjson(struct fm_req *r)
{
	static const char want[] = "application/x-ndjson";
	const char *ct = fm_req_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);

	if (ct == NULL || strncasecmp(ct, want, sizeof(want) - 1) != 0)
		return 0;
	ct += sizeof(want) - 1;
	return *ct == '\0' || *ct == ';' || *ct == ' ';
}

/* ---- parking ---- */

static void
park_link(struct fm_http *h, struct fm_req *r)
{
	r->prev = NULL;
	r->next = h->parked;
	if (h->parked != NULL)
		h->parked->prev = r;
	h->parked = r;
}

static void
park_unlink(struct fm_http *h, struct fm_req *r)
{
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		h->parked = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

/* Under h->lock: r leaves the parked list and will be answered.
 * completed: the wake is a completion's (fm_req_park_durable). */
static void
wake_locked(
    struct fm_http *h, struct fm_req *r, enum fm_wake why, int completed)
{
	park_unlink(h, r);
	r->ticket = NULL;
	r->woken = 1;
	r->why = why;
	r->completed = completed;
	r->draining = 1;
	h->draining++;
	MHD_resume_connection(r->conn);
	pthread_cond_broadcast(&h->cond);
}

static void
on_wake(void *arg, enum fm_wake why)
{
	struct fm_ticket *t = arg;
	int expected = TICKET_ATTACHED;

	if (atomic_compare_exchange_strong(
	        &t->state, &expected, TICKET_FIRED)) {
		struct fm_http *h = t->h;

		pthread_mutex_lock(&h->lock);
		wake_locked(h, t->r, why, 0);
		pthread_mutex_unlock(&h->lock);
	}
	free(t);
}

int
fm_req_park(
    struct fm_req *r, const char *topic, uint32_t queue_id, uint64_t offset)
{
	struct fm_http *h = r->h;
	struct fm_ticket *t = xcalloc(1, sizeof(*t));

	MHD_suspend_connection(r->conn);
	pthread_mutex_lock(&h->lock);
	if (r->draining) {
		r->draining = 0;
		h->draining--;
	}
	if (h->stopping) {
		r->woken = 1;
		r->why = FM_WAKE_SHUTDOWN;
		r->completed = 0;
		r->draining = 1;
		h->draining++;
		MHD_resume_connection(r->conn);
		pthread_mutex_unlock(&h->lock);
		free(t);
		return FM_H_PARKED;
	}
	t->h = h;
	t->r = r;
	atomic_init(&t->state, TICKET_ATTACHED);
	r->ticket = t;
	park_link(h, r);
	pthread_mutex_unlock(&h->lock);
	fm_broker_watch(h->b, topic, queue_id, offset, r->deadline, on_wake, t);
	return FM_H_PARKED;
}

/*
 * Parking a request until a broker completion: a publish durable, a
 * consumer group commit (receive, ack, nack, reset). The broker call that
 * takes the ticket may complete on another thread before the handler
 * parks, so the moves are made under h->lock, and the connection is
 * suspended only if the completion has not come yet:
 *
 *   state    event                        move (by whom)
 *   -------  ---------------------------  -------------------------------
 *   PENDING  completion                   -> FIRED (fm_req_ticket_done);
 *                                         the handler answers at once
 *   PENDING  fm_req_park_durable          -> ATTACHED: suspend, link
 *   ATTACHED completion                   wake and resume r, free ticket
 *
 * fm_http_stop never detaches these but waits for them: the store is
 * still open and will complete them (its log flusher and state committer
 * run until the broker closes), and an answer saying "durable" is what
 * the client waits for.
 */
struct fm_ticket *
fm_req_ticket(struct fm_req *r)
{
	struct fm_ticket *t = xcalloc(1, sizeof(*t));

	t->h = r->h;
	t->r = r;
	t->durable = 1;
	atomic_init(&t->state, TICKET_PENDING);
	return t;
}

void
fm_req_ticket_done(void *arg, int err)
{
	struct fm_ticket *t = arg;
	struct fm_http *h = t->h;

	pthread_mutex_lock(&h->lock);
	if (atomic_load(&t->state) == TICKET_PENDING) {
		t->err = err;
		atomic_store(&t->state, TICKET_FIRED);
		pthread_mutex_unlock(&h->lock);
		return;
	}
	t->r->done_err = err;
	wake_locked(h, t->r, FM_WAKE_DATA, 1);
	pthread_mutex_unlock(&h->lock);
	free(t);
}

int
fm_req_park_durable(struct fm_req *r, struct fm_ticket *t)
{
	struct fm_http *h = r->h;

	pthread_mutex_lock(&h->lock);
	if (atomic_load(&t->state) == TICKET_FIRED) {
		pthread_mutex_unlock(&h->lock);
		r->done_err = t->err;
		r->completed = 1;
		free(t);
		return FM_H_DONE;
	}
	if (r->draining) {
		r->draining = 0;
		h->draining--;
	}
	atomic_store(&t->state, TICKET_ATTACHED);
	MHD_suspend_connection(r->conn);
	r->ticket = t;
	park_link(h, r);
	pthread_mutex_unlock(&h->lock);
	return FM_H_PARKED;
}

int
fm_req_await(struct fm_req *r, struct fm_ticket *t, int rc)
{
	if (rc == 0)
		return fm_req_park_durable(r, t);
	free(t);
	r->done_err = 0;
	r->completed = 1;
	return FM_H_DONE;
}

/* ---- event streams ---- */

int
fm_http_stream_add(struct fm_http *h, struct fm_stream *s)
{
	int err = -FM_E_SHUTDOWN;

	pthread_mutex_lock(&h->lock);
	if (!h->streams_stopped) {
		s->prev = NULL;
		s->next = h->streams;
		if (h->streams != NULL)
			h->streams->prev = s;
		h->streams = s;
		err = 0;
	}
	pthread_mutex_unlock(&h->lock);
	return err;
}

void
fm_http_stream_del(struct fm_http *h, struct fm_stream *s)
{
	pthread_mutex_lock(&h->lock);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		h->streams = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

/* End every stream (each resumes its connection and finishes its
 * response), then wait, bounded by *ts, until MHD has freed them. */
static void
stop_streams(struct fm_http *h, const struct timespec *ts)
{
	pthread_mutex_lock(&h->lock);
	h->streams_stopped = 1;
	for (struct fm_stream *s = h->streams; s != NULL; s = s->next)
		s->stop(s);
	while (h->streams != NULL)
		if (pthread_cond_timedwait(&h->cond, &h->lock, ts) != 0)
			break;
	pthread_mutex_unlock(&h->lock);
}

/* ---- the request ---- */

static void early(struct fm_req *r, enum fm_http_code code, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

/* Remember an error found before the body was read; the first wins. */
static void
early(struct fm_req *r, enum fm_http_code code, const char *fmt, ...)
{
	va_list ap;

	if (r->early_code >= 0)
		return;
	va_start(ap, fmt);
	if (vasprintf(&r->early_msg, fmt, ap) < 0)
		r->early_msg = NULL;
	va_end(ap);
	r->early_code = (int)code;
}

static size_t
body_max(struct fm_req *r)
{
	size_t max = r->h->cfg->max_message_size;

	if (r->m.route->fn != fm_h_publish)
		return SMALL_BODY_MAX;
	return fm_req_is_ndjson(r) ? 2 * max : max;
}

static void
check_length(struct fm_req *r)
{
	const char *cl = fm_req_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *te = fm_req_header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	unsigned long long len;
	char *end;

	if (cl != NULL && te != NULL) {
		r->early_close = 1;
		early(r, FM_HC_BAD_REQUEST,
		    "Content-Length and Transfer-Encoding together are "
		    "refused");
		return;
	}
	if (cl == NULL || r->route != FM_ROUTE_FOUND)
		return;
	errno = 0;
	len = strtoull(cl, &end, 10);
	if (errno == 0 && *end == '\0' && len > r->body_max) {
		r->early_close = 1;
		early(r, FM_HC_PAYLOAD_TOO_LARGE,
		    "request body of %llu bytes is over the limit of %zu "
		    "bytes",
		    len, r->body_max);
	}
}

static struct fm_req *
req_begin(struct fm_http *h, struct MHD_Connection *conn, const char *url,
    const char *method)
{
	struct fm_req *r = xcalloc(1, sizeof(*r));

	r->h = h;
	r->conn = conn;
	r->method = method;
	r->early_code = -1;
	r->status = MHD_HTTP_OK;
	r->route = fm_router_match(
	    routes, sizeof(routes) / sizeof(routes[0]), method, url, &r->m);
	if (r->route == FM_ROUTE_FOUND)
		r->body_max = body_max(r);
	check_length(r);
	if (r->route == FM_ROUTE_NOT_FOUND) {
		early(r, FM_HC_NOT_FOUND, "no such resource: %s", url);
	} else if (r->route == FM_ROUTE_BAD_METHOD) {
		r->allow = r->m.allow;
		early(r, FM_HC_METHOD_NOT_ALLOWED,
		    "%s is not allowed on %s (allowed: %s)", method, url,
		    r->m.allow);
	}
	return r;
}

/* Free the body and give its bytes back to the server's budget. */
static void
body_release(struct fm_req *r)
{
	atomic_fetch_sub(&r->h->body_bytes, r->body_held);
	r->body_held = 0;
	fm_buf_free(&r->body);
}

static void
req_body(struct fm_req *r, const char *data, size_t n)
{
	size_t held;

	if (r->early_code >= 0)
		return;
	if (r->body.len + n > r->body_max) {
		early(r, FM_HC_PAYLOAD_TOO_LARGE,
		    "request body is over the limit of %zu bytes", r->body_max);
		body_release(r);
		return;
	}
	/* A flood of large uploads on many connections must not take the
	 * node's memory: every body being read counts against one budget. */
	held = atomic_fetch_add(&r->h->body_bytes, n) + n;
	r->body_held += n;
	if (held > r->h->body_budget) {
		early(r, FM_HC_BUSY,
		    "too many request bodies are being received at once; "
		    "retry");
		body_release(r);
		return;
	}
	fm_buf_add(&r->body, data, n);
}

static enum MHD_Result
queue_reply(struct fm_req *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	size_t len;
	char *data = fm_buf_steal(&r->out, &len);
	char num[24];

	resp =
	    MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(data);
		return MHD_NO;
	}
	if (r->ctype != NULL)
		MHD_add_response_header(
		    resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
	    r->m.route != NULL && r->m.route->fn == fm_h_static ? "no-cache"
	                                                        : "no-store");
	if (r->allow != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
	if (r->early_close)
		MHD_add_response_header(
		    resp, MHD_HTTP_HEADER_CONNECTION, "close");
	if (r->retry_after > 0) {
		snprintf(num, sizeof(num), "%d", r->retry_after);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, num);
	}
	ret = MHD_queue_response(r->conn, r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ---- WebSocket handoff (same port) ----
 *
 * An upgrade request for the WebSocket route is handed to the WebSocket
 * service on its first handler call, before MHD has answered anything:
 * the connection is suspended (so MHD neither reads nor writes it), its
 * fd dup()ed and given away with the checked handshake and the stream's
 * reader. When the service ends the session it resumes the connection;
 * the next handler call then returns MHD_NO, so MHD closes its copy.
 * Errors found before the handoff (bad handshake, unknown topic, bad
 * cursor) are answered as ordinary HTTP errors on the final call.
 */

static int
wants_upgrade(struct fm_req *r)
{
	return r->route == FM_ROUTE_FOUND && r->m.route->fn == fm_h_ws &&
	    fm_req_header(r, MHD_HTTP_HEADER_UPGRADE) != NULL;
}

static void
ws_done(void *arg)
{
	MHD_resume_connection(arg);
}

static void
ws_handoff(struct fm_req *r)
{
	const union MHD_ConnectionInfo *ci;
	const char *key = fm_req_header(r, "Sec-WebSocket-Key");
	int group = fm_req_param(r, "group") != NULL;
	struct fm_bcast *bc = NULL;
	struct fm_ws_group g;
	char *cause = NULL;
	int err, fd = -1;

	err = fm_ws_check_handshake(fm_req_header(r, MHD_HTTP_HEADER_UPGRADE),
	    fm_req_header(r, MHD_HTTP_HEADER_CONNECTION),
	    fm_req_header(r, "Sec-WebSocket-Version"), key, &cause);
	if (err == 0 && group)
		err = fm_stream_ws_group(r, &g, &cause);
	else if (err == 0)
		err = fm_bcast_open(r->h->b, fm_req_param(r, "topic"),
		    fm_req_arg(r, "from"), &bc, &cause);
	if (err < 0) {
		early(r,
		    err == -FM_E_NOT_FOUND ? FM_HC_TOPIC_NOT_FOUND
		                           : fm_http_code_of(err),
		    "%s", cause != NULL ? cause : fm_err_msg(err));
		free(cause);
		return;
	}
	ci =
	    MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci != NULL)
		fd = fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		fm_bcast_free(bc);
		early(r, FM_HC_BUSY, "cannot take the connection over: %s",
		    strerror(errno));
		return;
	}
	MHD_suspend_connection(r->conn);
	if (group)
		fm_ws_adopt_group(r->h->ws, fd, key, &g, ws_done, r->conn);
	else
		fm_ws_adopt(r->h->ws, fd, key, bc, ws_done, r->conn);
}

/* Run r's handler, counted in h->active so that fm_http_stop waits for
 * it (it may park on a broker completion). A new request that comes once
 * the server is stopping is refused instead: it must not start broker
 * work that would outlive the server. Returns the handler's FM_H_*. */
static int
run_handler(struct fm_req *r)
{
	struct fm_http *h = r->h;
	int rc;

	pthread_mutex_lock(&h->lock);
	if (h->stopping && !r->woken) {
		pthread_mutex_unlock(&h->lock);
		r->early_close = 1;
		fm_reply_error(r, FM_HC_SHUTTING_DOWN, "the node is stopping");
		return FM_H_DONE;
	}
	h->active++;
	pthread_mutex_unlock(&h->lock);
	rc = r->m.route->fn(r);
	pthread_mutex_lock(&h->lock);
	h->active--;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
	return rc;
}

static enum MHD_Result
req_finish(struct fm_req *r)
{
	if (r->early_code >= 0) {
		fm_reply_error(r, (enum fm_http_code)r->early_code, "%s",
		    r->early_msg != NULL ? r->early_msg : "bad request");
	} else if (wants_upgrade(r)) {
		/* the WebSocket session ended: close MHD's copy */
		return MHD_NO;
	} else if (run_handler(r) == FM_H_PARKED) {
		return MHD_YES;
	}
	return queue_reply(r);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct fm_req *r = *con_cls;

	if (r == NULL) {
		*con_cls = r = req_begin(cls, conn, url, method);
		if (r->early_code < 0 && wants_upgrade(r))
			ws_handoff(r);
		return r->early_close ? req_finish(r) : MHD_YES;
	}
	if (*upload_data_size > 0) {
		req_body(r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	return req_finish(r);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct fm_http *h = cls;
	struct fm_req *r = *con_cls;

	if (r == NULL)
		return;
	pthread_mutex_lock(&h->lock);
	if (r->draining) {
		h->draining--;
		pthread_cond_broadcast(&h->cond);
	}
	pthread_mutex_unlock(&h->lock);
	fm_route_match_free(&r->m);
	body_release(r);
	fm_buf_free(&r->out);
	free(r->early_msg);
	free(r);
	*con_cls = NULL;
}

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];

	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	/* every WebSocket session ends this way (see wants_upgrade) */
	if (strncmp(line, "Application reported internal error", 35) == 0)
		fm_debug("http: %s", line);
	else
		fm_warn("http: %s", line);
}

/* ---- start and stop ---- */

static int
listen_socket(const struct fm_config *cfg, int *out, char **cause)
{
	struct sockaddr_in sa;
	int fd = -1, one = 1, err;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)cfg->listen_port);
	if (inet_pton(AF_INET, cfg->listen_address, &sa.sin_addr) != 1) {
		xasprintf(cause, "listenAddress '%s' is not an IPv4 address",
		    cfg->listen_address);
		return -FM_E_INVALID;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, LISTEN_BACKLOG) != 0)
		goto fail;
	*out = fd;
	return 0;
fail:
	err = errno;
	xasprintf(cause, "cannot listen on %s:%d: %s", cfg->listen_address,
	    cfg->listen_port, strerror(err));
	if (fd >= 0)
		close(fd);
	return fm_err_from_errno(err);
}

static int
is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* cfg->web_root when set, else the installed files, else the source
 * tree's (running from the build tree). */
static int
web_root(const struct fm_config *cfg, char **out, char **cause)
{
	if (cfg->web_root != NULL && cfg->web_root[0] != '\0') {
		if (!is_dir(cfg->web_root)) {
			xasprintf(cause, "webRoot '%s' is not a directory",
			    cfg->web_root);
			return -FM_E_INVALID;
		}
		*out = xstrdup(cfg->web_root);
		return 0;
	}
	*out = xstrdup(
	    is_dir(FERRYMQ_WEBDIR) ? FERRYMQ_WEBDIR : FERRYMQ_SRCWEBDIR);
	return 0;
}

static void
http_free(struct fm_http *h)
{
	fm_ws_free(h->ws);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	free(h->web_root);
	free(h);
}

int
fm_http_start(const struct fm_config *cfg, struct fm_broker *b,
    struct fm_http **out, char **cause)
{
	struct fm_http *h = xcalloc(1, sizeof(*h));
	size_t ndjson_max = 2 * (size_t)cfg->max_message_size;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO | MHD_USE_ERROR_LOG;
	int fd = -1, err;

	h->cfg = cfg;
	h->b = b;
	/* room for a few of the largest bodies, whatever the limit */
	h->body_budget =
	    4 * ndjson_max > BODY_BUDGET_MIN ? 4 * ndjson_max : BODY_BUDGET_MIN;
	atomic_init(&h->body_bytes, 0);
	pthread_mutex_init(&h->lock, NULL);
	fm_cond_init_monotonic(&h->cond);
	if ((err = web_root(cfg, &h->web_root, cause)) != 0 ||
	    (err = listen_socket(cfg, &fd, cause)) != 0 ||
	    (err = fm_ws_start(cfg, b, &h->ws, cause)) != 0)
		goto fail;
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
	    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h, MHD_OPTION_LISTEN_SOCKET,
	    fd, MHD_OPTION_THREAD_POOL_SIZE,
	    (unsigned)cfg->http_thread_pool_nums, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)cfg->max_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)CONN_MEMORY, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)CONN_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
	    h, MHD_OPTION_END);
	if (h->d == NULL) {
		xasprintf(cause, "cannot start the HTTP server on %s:%d",
		    cfg->listen_address, cfg->listen_port);
		err = -FM_E_IO;
		goto fail;
	}
	fm_info("http: listening on http://%s:%d/ (console files in %s)",
	    cfg->listen_address, cfg->listen_port, h->web_root);
	*out = h;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	fm_ws_stop(h->ws);
	http_free(h);
	*out = NULL;
	return err;
}

/* Detach and resume every request parked in a watch; wait for those
 * parked on a broker completion (the store completes them), for the
 * handlers running (they may park so), then until the woken requests
 * have been answered (bounded by DRAIN_MS): MHD must hold no suspended
 * connection when it stops. */
static void
drain(struct fm_http *h)
{
	struct timespec ts;

	fm_deadline_ts(&ts, DRAIN_MS);
	pthread_mutex_lock(&h->lock);
	h->stopping = 1;
	for (struct fm_req *r = h->parked, *next; r != NULL; r = next) {
		int expected = TICKET_ATTACHED;

		next = r->next;
		if (r->ticket->durable)
			continue;
		if (atomic_compare_exchange_strong(
		        &r->ticket->state, &expected, TICKET_DETACHED))
			wake_locked(h, r, FM_WAKE_SHUTDOWN, 0);
	}
	for (;;) {
		if (h->parked != NULL || h->active > 0)
			pthread_cond_wait(&h->cond, &h->lock);
		else if (h->draining == 0 ||
		    pthread_cond_timedwait(&h->cond, &h->lock, &ts) != 0)
			break;
	}
	pthread_mutex_unlock(&h->lock);
	stop_streams(h, &ts);
}

void
fm_http_stop(struct fm_http *h)
{
	if (h == NULL)
		return;
	/* sessions end first: each resumes its MHD connection */
	fm_ws_stop(h->ws);
	drain(h);
	MHD_stop_daemon(h->d);
	http_free(h);
}
