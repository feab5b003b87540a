/*
 * refserver.c - the reference the benchmarks compare ferrymq with: a
 * minimal libmicrohttpd server with the daemon's HTTP settings that does
 * no messaging work at all.
 *
 * Owns: only itself. It links libmicrohttpd and libc, nothing of ferrymq,
 * so that its figure is the ceiling our HTTP layer can reach on this
 * machine with this client (bench/run measures both in the same run).
 *
 * Behaviour: POST reads the whole body (counting it) and answers 201 with
 * a small JSON of the shape ferrymq's publish answers. GET answers 200 with
 * a body of ?bytes=N bytes (default 64), so that a pull can be
 * compared with a reply of the same size. Anything else gets 405.
 *
 * Invariants:
 *  1. The daemon flags, thread pool, connection limit, memory limit and
 *     timeout are those of src/http/server.c (fm_http_start); a change there must be mirrored here, or the
 *     ratios stop meaning anything.
 *  2. No response is queued during the first access-handler call: MHD
 *     0.9.75 then sends "Connection: close" and keep-alive is lost
 *     (FACTS.md, "queued early"), which would make the reference ~5x slow.
 *  3. Binds 127.0.0.1 only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#define REF_POOL_THREADS 2
#define REF_CONN_MEMORY (32 * 1024)
#define REF_MAX_CONNECTIONS 10000
#define REF_CONN_TIMEOUT_S 60
#define REF_GET_MAX (1024 * 1024)

/* One request in flight; lives from the first handler call until MHD's
 * completion callback, like the daemon's per-request context. */
struct ref_req {
	uint64_t body_len; /* bytes of POST body received so far */
};

/* Process-wide counters, read once at exit. */
static atomic_uint_fast64_t ref_posts;
static atomic_uint_fast64_t ref_body_bytes;
/* A GET body of REF_GET_MAX bytes, sliced for ?bytes=N. */
static char *ref_get_body;

static enum MHD_Result
ref_queue(struct MHD_Connection *conn, unsigned int status, const char *body,
    size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, (void *)body, mode);
	if (resp == NULL)
		return MHD_NO;
	if (MHD_add_response_header(resp, "Content-Type", "application/json") !=
	    MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* The answer mimics ferrymq's publish reply: a msgId of 32 hex digits and
 * a growing offset, so the reply costs what a real one costs to format. */
static enum MHD_Result
ref_post_done(struct MHD_Connection *conn, struct ref_req *rq)
{
	char json[160];
	uint64_t n;
	int len;

	n = atomic_fetch_add(&ref_posts, 1);
	atomic_fetch_add(&ref_body_bytes, rq->body_len);
	len = snprintf(json, sizeof(json),
	    "{\"msgId\":\"%016" PRIX64 "%016" PRIX64 "\",\"topic\":\"bench\","
	    "\"queueId\":%u,\"queueOffset\":%" PRIu64 "}",
	    n, rq->body_len, (unsigned)(n % 8), n / 8);
	if (len < 0 || (size_t)len >= sizeof(json))
		return MHD_NO;
	return ref_queue(
	    conn, MHD_HTTP_CREATED, json, (size_t)len, MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result
ref_get(struct MHD_Connection *conn)
{
	const char *arg;
	unsigned long bytes = 64;
	char *end;

	arg = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "bytes");
	if (arg != NULL) {
		errno = 0;
		bytes = strtoul(arg, &end, 10);
		if (errno != 0 || *end != '\0' || bytes < 2 ||
		    bytes > REF_GET_MAX)
			bytes = 64;
	}
	return ref_queue(
	    conn, MHD_HTTP_OK, ref_get_body, bytes, MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result
ref_handler(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	static const char not_allowed[] =
	    "{\"error\":{\"code\":\"METHOD_NOT_ALLOWED\",\"message\":\"\"}}";
	struct ref_req *rq = *con_cls;

	/* Invariant 2: the first call only sets up the request. */
	if (rq == NULL) {
		rq = calloc(1, sizeof(*rq));
		if (rq == NULL)
			return MHD_NO;
		*con_cls = rq;
		return MHD_YES;
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) == 0)
		return ref_get(conn);
	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
		return ref_queue(conn, MHD_HTTP_METHOD_NOT_ALLOWED, not_allowed,
		    sizeof(not_allowed) - 1, MHD_RESPMEM_PERSISTENT);
	if (*upload_data_size > 0) {
		rq->body_len += *upload_data_size;
		*upload_data_size = 0;
		return MHD_YES;
	}
	return ref_post_done(conn, rq);
}

static void
ref_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	free(*con_cls);
	*con_cls = NULL;
}

/* The GET body stands in for a pull reply of the same size: a '{' and
 * spaces, sliced to ?bytes=N without copying. It is not valid JSON past
 * the cut; the benchmark only counts its bytes. */
static char *
ref_make_get_body(void)
{
	char *b;

	b = malloc(REF_GET_MAX);
	if (b == NULL)
		return NULL;
	memset(b, ' ', REF_GET_MAX);
	b[0] = '{';
	return b;
}

static int
ref_parse_port(const char *s, uint16_t *port)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

static int
ref_wait_for_signal(void)
{
	sigset_t set;
	int sig;

	if (sigemptyset(&set) != 0 || sigaddset(&set, SIGINT) != 0 ||
	    sigaddset(&set, SIGTERM) != 0)
		return -1;
	if (sigwait(&set, &sig) != 0)
		return -1;
	return 0;
}

/* Signals are blocked before MHD starts its threads so that they all
 * inherit the mask and only sigwait() in main sees SIGINT/SIGTERM. */
static int
ref_block_signals(void)
{
	sigset_t set;

	if (sigemptyset(&set) != 0 || sigaddset(&set, SIGINT) != 0 ||
	    sigaddset(&set, SIGTERM) != 0 || sigaddset(&set, SIGPIPE) != 0)
		return -1;
	return pthread_sigmask(SIG_BLOCK, &set, NULL) == 0 ? 0 : -1;
}

static struct MHD_Daemon *
ref_start(uint16_t port)
{
	struct sockaddr_in sa;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* Invariant 1: the same flags and limits as src/http/server.c. */
	return MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
	        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO,
	    port, NULL, NULL, ref_handler, NULL, MHD_OPTION_SOCK_ADDR,
	    (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE,
	    (unsigned int)REF_POOL_THREADS, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)REF_CONN_MEMORY, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned int)REF_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned int)REF_CONN_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED,
	    ref_completed, NULL, MHD_OPTION_END);
}

static void
ref_usage(FILE *out)
{
	fprintf(out,
	    "usage: refserver PORT\n"
	    "  Serves 127.0.0.1:PORT until SIGINT or SIGTERM, then "
	    "prints its counters.\n");
}

int
main(int argc, char **argv)
{
	struct MHD_Daemon *d = NULL;
	uint16_t port;
	int rc = 1;

	if (argc != 2 || ref_parse_port(argv[1], &port) != 0) {
		ref_usage(stderr);
		return 2;
	}
	ref_get_body = ref_make_get_body();
	if (ref_get_body == NULL || ref_block_signals() != 0)
		goto fail;
	d = ref_start(port);
	if (d == NULL) {
		fprintf(stderr, "refserver: cannot listen on 127.0.0.1:%u\n",
		    (unsigned)port);
		goto fail;
	}
	printf("refserver: listening on 127.0.0.1:%u\n", (unsigned)port);
	if (fflush(stdout) != 0 || ref_wait_for_signal() != 0)
		goto fail;
	printf("refserver: %" PRIu64 " POSTs, %" PRIu64 " body bytes\n",
	    (uint64_t)atomic_load(&ref_posts),
	    (uint64_t)atomic_load(&ref_body_bytes));
	rc = 0;
fail:
	if (d != NULL)
		MHD_stop_daemon(d);
	free(ref_get_body);
	return rc;
}
