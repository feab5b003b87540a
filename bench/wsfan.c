/*
 * wsfan.c - the WebSocket subscribers of bench/run-consume's fan-out case:
 * N broadcast connections in one epoll loop, cheap enough that the client
 * is not what the benchmark measures (the Python client used 1.2 cores
 * of 2 for 200k frames/s and so became the bottleneck).
 *
 * Owns: only itself; it links libc alone. It connects N WebSockets to
 * 127.0.0.1:PORT/PATH, prints "ready" once all are upgraded, then counts
 * every text frame per connection and, for a body "s<seq>t<ns>" (seq and
 * CLOCK_MONOTONIC send time of the publisher), the publish->deliver
 * latency: the time the read() carrying the frame's end returned minus
 * the send time. It ends when every connection has NMSGS messages or
 * after LIMIT seconds, and prints one line of key=value figures.
 *
 * Does not own: publishing, targets, or judging the figures (the driver).
 *
 * Invariants:
 *  1. Every wait is bounded (connect and handshake by socket timeouts,
 *     the loop by LIMIT).
 *  2. A seq is counted once per connection; a repeat is a duplicate.
 *  3. Server frames are unmasked and at most BUF_SIZE - 14 bytes long;
 *     anything else ends the connection as an error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (256 * 1024)

struct conn {
	int fd;
	size_t len;
	unsigned char *buf;
	unsigned char *seen;
	uint64_t msgs;
	uint64_t dups;
	int close_code;
	int dead;
};

struct run {
	uint32_t nmsgs;
	int64_t *lat;
	size_t nlat;
	size_t cap;
	uint64_t total;
	int64_t last_ns;
};

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double
cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* The opening handshake, blocking with a timeout; bytes past the 101 are
 * kept in the connection's buffer. */
static int
ws_open(struct conn *c, int port, const char *path)
{
	struct sockaddr_in sa = {
	    .sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {.tv_sec = 10};
	char req[1024];
	char *end;
	int n;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0)
		return -1;
	if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
	    connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		return -1;
	n = snprintf(req, sizeof(req),
	    "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\n\r\n",
	    path);
	if (n <= 0 || (size_t)n >= sizeof(req) ||
	    write(c->fd, req, (size_t)n) != n)
		return -1;
	while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL) {
		ssize_t r = read(c->fd, c->buf + c->len, BUF_SIZE - c->len);

		if (r <= 0)
			return -1;
		c->len += (size_t)r;
	}
	if (c->len < 12 || memcmp(c->buf, "HTTP/1.1 101", 12) != 0)
		return -1;
	end += 4;
	c->len -= (size_t)(end - (char *)c->buf);
	memmove(c->buf, end, c->len);
	return 0;
}

static void
on_text(
    struct run *r, struct conn *c, const unsigned char *p, size_t n, int64_t t)
{
	const char *b = memmem(p, n, "\"body\":\"s", 9);
	unsigned long long seq, sent;
	char *e;

	c->msgs++;
	r->total++;
	r->last_ns = t;
	if (b == NULL)
		return;
	seq = strtoull(b + 9, &e, 10);
	if (*e != 't')
		return;
	sent = strtoull(e + 1, NULL, 10);
	if (seq < r->nmsgs) {
		if (c->seen[seq])
			c->dups++;
		c->seen[seq] = 1;
	}
	if (r->nlat < r->cap)
		r->lat[r->nlat++] = t - (int64_t)sent;
}

/*
 * Server frame (RFC 6455 5.2), unmasked:
 *
 *   byte 0: FIN RSV1-3 opcode(4)   byte 1: MASK=0 len(7)
 *   len 126: 16-bit length follows; 127: 64-bit length follows
 *   then the payload
 */
static void
parse(struct run *r, struct conn *c, int64_t t)
{
	size_t pos = 0;

	while (c->len - pos >= 2 && !c->dead) {
		const unsigned char *f = c->buf + pos;
		size_t avail = c->len - pos, h = 2;
		uint64_t n = f[1] & 0x7f;

		if (f[1] & 0x80) {
			c->dead = 1;
			break;
		}
		if (n == 126) {
			if (avail < 4)
				break;
			n = (uint64_t)f[2] << 8 | f[3];
			h = 4;
		} else if (n == 127) {
			if (avail < 10)
				break;
			n = 0;
			for (int i = 2; i < 10; i++)
				n = n << 8 | f[i];
			h = 10;
		}
		if (n > BUF_SIZE - 14) {
			c->dead = 1;
			break;
		}
		if (avail < h + n)
			break;
		if ((f[0] & 0x0f) == 1)
			on_text(r, c, f + h, (size_t)n, t);
		else if ((f[0] & 0x0f) == 8) {
			c->close_code = n >= 2 ? f[h] << 8 | f[h + 1] : 1005;
			c->dead = 1;
		}
		pos += h + (size_t)n;
	}
	c->len -= pos;
	memmove(c->buf, c->buf + pos, c->len);
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static double
pct_ms(const struct run *r, double p)
{
	size_t i;

	if (r->nlat == 0)
		return -1;
	i = (size_t)(p / 100.0 * (double)(r->nlat - 1) + 0.5);
	return (double)r->lat[i] / 1e6;
}

static void
report(struct run *r, struct conn *cs, int n, int64_t t0)
{
	uint64_t mn = UINT64_MAX, mx = 0, dups = 0, seen;
	int complete = 0, closed = 0, last_code = 0;

	for (int i = 0; i < n; i++) {
		seen = 0;
		for (uint32_t s = 0; s < r->nmsgs; s++)
			seen += cs[i].seen[s];
		mn = seen < mn ? seen : mn;
		mx = seen > mx ? seen : mx;
		complete += seen == r->nmsgs;
		dups += cs[i].dups;
		if (cs[i].close_code) {
			closed++;
			last_code = cs[i].close_code;
		}
	}
	qsort(r->lat, r->nlat, sizeof(*r->lat), cmp_i64);
	printf("conns=%d complete=%d delivered=%" PRIu64 " min=%" PRIu64
	       " max=%" PRIu64 " dups=%" PRIu64 " closed=%d close_code=%d"
	       " p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f"
	       " first_ns=%" PRId64 " last_ns=%" PRId64 " cpu_s=%.3f\n",
	    n, complete, r->total, mn, mx, dups, closed, last_code,
	    pct_ms(r, 50), pct_ms(r, 90), pct_ms(r, 99), pct_ms(r, 100), t0,
	    r->last_ns, cpu_s());
}

static int
loop(struct run *r, struct conn *cs, int n, double limit)
{
	struct epoll_event evs[256];
	int ep = epoll_create1(0), live = n, err = -1;
	int64_t deadline = now_ns() + (int64_t)(limit * 1e9);
	uint64_t want = (uint64_t)n * r->nmsgs;

	if (ep < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};

		if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) != 0)
			goto fail;
		parse(r, &cs[i], now_ns());
	}
	while (r->total < want && live > 0 && now_ns() < deadline) {
		int k = epoll_wait(ep, evs, 256, 200);

		if (k < 0 && errno != EINTR)
			goto fail;
		for (int i = 0; i < k; i++) {
			struct conn *c = evs[i].data.ptr;
			ssize_t got =
			    read(c->fd, c->buf + c->len, BUF_SIZE - c->len);
			int64_t t = now_ns();

			if (got > 0) {
				c->len += (size_t)got;
				parse(r, c, t);
			} else if (got == 0 || errno != EAGAIN)
				c->dead = 1;
			if (c->dead) {
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				live--;
			}
		}
	}
	err = 0;
fail:
	close(ep);
	return err;
}

int
main(int argc, char **argv)
{
	struct run r = {0};
	struct conn *cs = NULL;
	int n, port, opened = 0, rc = 1;
	double limit;
	int64_t t0;

	if (argc != 6) {
		fprintf(stderr, "usage: wsfan PORT PATH NCONN NMSGS LIMIT_S\n");
		return 2;
	}
	port = atoi(argv[1]);
	n = atoi(argv[3]);
	r.nmsgs = (uint32_t)strtoul(argv[4], NULL, 10);
	limit = atof(argv[5]);
	if (n < 1 || r.nmsgs < 1 || limit <= 0)
		return 2;
	r.cap = (size_t)n * r.nmsgs;
	r.lat = calloc(r.cap, sizeof(*r.lat));
	cs = calloc((size_t)n, sizeof(*cs));
	if (r.lat == NULL || cs == NULL)
		goto fail;
	for (; opened < n; opened++) {
		struct conn *c = &cs[opened];

		c->buf = malloc(BUF_SIZE);
		c->seen = calloc(r.nmsgs, 1);
		if (c->buf == NULL || c->seen == NULL ||
		    ws_open(c, port, argv[2]) != 0) {
			fprintf(stderr, "wsfan: connection %d: %s\n", opened,
			    strerror(errno));
			opened++;
			goto fail;
		}
	}
	printf("ready\n");
	fflush(stdout);
	t0 = now_ns();
	if (loop(&r, cs, n, limit) != 0)
		goto fail;
	report(&r, cs, n, t0);
	rc = 0;
fail:
	for (int i = 0; i < opened; i++) {
		if (cs[i].fd > 0)
			close(cs[i].fd);
		free(cs[i].buf);
		free(cs[i].seen);
	}
	free(cs);
	free(r.lat);
	return rc;
}
