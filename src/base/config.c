/*
 * config.c - the directive table behind struct fm_config, and everything
 * that walks it: defaults, KEY=VALUE parsing, broker.conf-style files,
 * validation, --print-config, --help and etc/ferrymq.conf.
 *
 * Owns: the table (one row per key: name, type, field offset, default
 * text, limits, one-line help) and the strings it stores in a config.
 * Does not own: what the values mean to the broker or the HTTP server, nor
 * command-line syntax (main.c splits --KEY=VALUE and hands over the parts).
 *
 * Invariants:
 *  1. Adding a key is adding one row; no code names a key outside the
 *     table, except the cross-key rules of fm_config_validate.
 *  2. Every default text parses under its own row's rules (asserted by
 *     fm_config_defaults), so a default can never be out of range.
 *  3. fm_config_print writes values in the form fm_config_set reads, so
 *     printing and loading again gives an identical config.
 *  4. fm_config_set changes nothing when it fails.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"

/*
 * How a row's value is stored in struct fm_config. The integer kinds
 * differ only in the width of the field; ENUM stores the index of the
 * name in an int-sized enum, CHOICE stores the name itself as a string.
 */
enum ctype {
	CT_STR,
	CT_INT,
	CT_LONG,
	CT_U32,
	CT_U64,
	CT_RATIO,
	CT_BOOL,
	CT_ENUM,
	CT_CHOICE,
};

/* A string row's extra check: NULL when value is fine, else why not. */
typedef const char *(*check_fn)(const char *value);

struct directive {
	const char *key; /* RocketMQ's name where it has one */
	enum ctype type;
	size_t off; /* offsetof(struct fm_config, field) */
	const char *def; /* default, in the form fm_config_set reads */
	int64_t min, max; /* integers: bounds; strings: min 1 = non-empty */
	const char *const *names; /* ENUM and CHOICE: the accepted words */
	check_fn check; /* STR: optional syntax check */
	const char *help; /* one line, no trailing period */
};

/* A parsed value on its way into a config (s is new). */
struct value {
	int64_t i;
	double r;
	char *s;
};

static const char *const role_names[] = {
    "ASYNC_MASTER", "SYNC_MASTER", "SLAVE", NULL};
static const char *const flush_names[] = {"ASYNC_FLUSH", "SYNC_FLUSH", NULL};
/* Indexed by enum fm_log_level. */
static const char *const level_names[] = {
    "error", "warn", "info", "debug", NULL};

_Static_assert(sizeof(enum fm_role) == sizeof(int), "ENUM stores an int");
_Static_assert(sizeof(enum fm_flush) == sizeof(int), "ENUM stores an int");

static const char *check_ip(const char *value);
static const char *check_host(const char *value);
static const char *check_hostport(const char *value);
static const char *check_hostport_list(const char *value);

#define OFF(field) offsetof(struct fm_config, field)
#define MIB (1024 * 1024)

/* Row builders, one per kind of value, so each row reads as a sentence. */
#define TEXT(key, field, def, required, check, help) \
	{ \
		key, CT_STR, OFF(field), def, required, 0, NULL, check, help \
	}
#define NUM(type, key, field, def, min, max, help) \
	{ \
		key, type, OFF(field), def, min, max, NULL, NULL, help \
	}
#define WORD(type, key, field, def, names, help) \
	{ \
		key, type, OFF(field), def, 0, 0, names, NULL, help \
	}

static const struct directive directives[] = {
    TEXT("listenAddress", listen_address, "127.0.0.1", 1, check_ip,
        "IPv4 or IPv6 address the HTTP port listens on"),
    NUM(CT_INT, "listenPort", listen_port, "8080", 1, 65535,
        "TCP port of the HTTP API, console and WebSocket"),
    TEXT("brokerIP1", broker_ip1, "127.0.0.1", 1, check_host,
        "address advertised to clients and the name servers"),
    TEXT("storePathRootDir", store_path_root_dir, "./ferrymq-data", 1, NULL,
        "directory holding the commit log, indexes and state"),
    TEXT("brokerClusterName", broker_cluster_name, "DefaultCluster", 1, NULL,
        "name of the cluster this broker belongs to"),
    TEXT("brokerName", broker_name, "broker-a", 1, NULL,
        "name shared by a master and its slaves"),
    NUM(CT_LONG, "brokerId", broker_id, "0", 0, INT32_MAX,
        "0 for the master, 1 and up for its slaves"),
    WORD(CT_ENUM, "brokerRole", broker_role, "ASYNC_MASTER", role_names,
        "ASYNC_MASTER, SYNC_MASTER (answers once a slave has the message) "
        "or SLAVE"),
    WORD(CT_ENUM, "flushDiskType", flush_disk_type, "ASYNC_FLUSH", flush_names,
        "ASYNC_FLUSH flushes in the background, SYNC_FLUSH before answering"),
    NUM(CT_INT, "flushIntervalCommitLog", flush_interval_commit_log, "500", 1,
        60000, "milliseconds between background flushes with ASYNC_FLUSH"),
    TEXT("namesrvAddr", namesrv_addr, "", 0, check_hostport_list,
        "name servers to register with, as host:port;host:port"),
    TEXT("haMasterAddress", ha_master_address, "", 0, check_hostport,
        "host:port of the master a SLAVE replicates from"),
    NUM(CT_U64, "mappedFileSizeCommitLog", mapped_file_size_commit_log,
        "1073741824", 65536, (int64_t)1 << 40,
        "bytes per commit log segment file"),
    NUM(CT_INT, "fileReservedTime", file_reserved_time, "72", 1, 87600,
        "hours a commit log segment is kept after its last write"),
    NUM(CT_INT, "cleanResourceInterval", clean_resource_interval, "10000", 10,
        3600000, "milliseconds between two disk checks and retention passes"),
    NUM(CT_RATIO, "diskSpaceWarningLevelRatio", disk_space_warning_level_ratio,
        "0.90", 0, 1, "disk usage (0 to 1) above which publishing is refused"),
    NUM(CT_U32, "maxMessageSize", max_message_size, "4194304", 1, 64 * MIB,
        "largest message body accepted, in bytes"),
    NUM(CT_BOOL, "autoCreateTopicEnable", auto_create_topic_enable, "true", 0,
        1, "create a topic on its first publish"),
    NUM(CT_INT, "defaultTopicQueueNums", default_topic_queue_nums, "8", 1, 1024,
        "queues of an automatically created topic"),
    NUM(CT_INT, "maxReconsumeTimes", max_reconsume_times, "16", 0, 1000,
        "redeliveries of a message before it goes to the dead letter topic"),
    NUM(CT_INT, "timerMaxDelaySec", timer_max_delay_sec, "259200", 1, 315360000,
        "longest delay a scheduled message may ask for, in seconds"),
    NUM(CT_INT, "wsPingInterval", ws_ping_interval, "30000", 100, 3600000,
        "milliseconds a WebSocket client may stay silent before it is "
        "pinged; closed when a ping goes unanswered as long"),
    NUM(CT_INT, "sseKeepaliveInterval", sse_keepalive_interval, "15000", 100,
        3600000,
        "milliseconds without events after which an EventSource stream "
        "gets a keepalive comment"),
    NUM(CT_INT, "httpThreadPoolNums", http_thread_pool_nums, "2", 1, 256,
        "threads serving HTTP requests"),
    NUM(CT_INT, "maxConnections", max_connections, "10000", 1, 1000000,
        "most simultaneous HTTP and WebSocket connections"),
    TEXT("webRoot", web_root, "", 0, NULL,
        "directory of the web console files; empty for the installed ones"),
    WORD(CT_CHOICE, "logLevel", log_level, "info", level_names,
        "least severe messages logged: error, warn, info or debug"),
};

#define NDIRECTIVES (sizeof directives / sizeof directives[0])

static int fail(char **cause, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Sets *cause (when wanted) and returns -FM_E_INVALID, so callers can
 * "return fail(...)". */
static int
fail(char **cause, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (cause == NULL)
		return -FM_E_INVALID;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	*cause = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(*cause, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return -FM_E_INVALID;
}

static void *
field(const struct fm_config *cfg, const struct directive *d)
{
	return (char *)cfg + d->off;
}

static const struct directive *
find_key(const char *key, size_t len)
{
	size_t i;

	for (i = 0; i < NDIRECTIVES; i++) {
		if (strlen(directives[i].key) == len &&
		    memcmp(directives[i].key, key, len) == 0)
			return &directives[i];
	}
	return NULL;
}

/* Edit distance, for "did you mean"; long inputs are never close. */
static size_t
distance(const char *a, const char *b)
{
	size_t row[64], la = strlen(a), lb = strlen(b), i, j, diag, up;

	if (la >= 64 || lb >= 64)
		return SIZE_MAX;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		diag = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			up = row[j];
			row[j] = diag +
			    (tolower((unsigned char)a[i - 1]) !=
			        tolower((unsigned char)b[j - 1]));
			if (up + 1 < row[j])
				row[j] = up + 1;
			if (row[j - 1] + 1 < row[j])
				row[j] = row[j - 1] + 1;
			diag = up;
		}
	}
	return row[lb];
}

static int
unknown_key(const char *key, char **cause)
{
	const char *best = NULL;
	size_t i, d, best_d = 3;

	for (i = 0; i < NDIRECTIVES; i++) {
		d = distance(key, directives[i].key);
		if (d < best_d) {
			best_d = d;
			best = directives[i].key;
		}
	}
	if (best != NULL)
		return fail(
		    cause, "unknown key '%s' (did you mean '%s'?)", key, best);
	return fail(cause, "unknown key '%s'", key);
}

static int
find_name(const char *const *names, const char *word)
{
	int i;

	for (i = 0; names[i] != NULL; i++) {
		if (strcasecmp(names[i], word) == 0)
			return i;
	}
	return -1;
}

static int
count_names(const char *const *names)
{
	int n = 0;

	while (names[n] != NULL)
		n++;
	return n;
}

static void
join_names(const char *const *names, const char *sep, char *out, size_t size)
{
	size_t i, n = 0;

	out[0] = '\0';
	for (i = 0; names[i] != NULL && n < size; i++)
		n += (size_t)snprintf(
		    out + n, size - n, "%s%s", i > 0 ? sep : "", names[i]);
}

/* Plain decimal only: no sign unless negatives are allowed, no spaces,
 * no hex or octal, nothing after the digits. */
static int
parse_int(
    const struct directive *d, const char *text, struct value *v, char **cause)
{
	const char *p = text;
	long long n;
	char *end;

	if (*p == '-' && d->min < 0)
		p++;
	if (!isdigit((unsigned char)*p))
		return fail(cause, "%s: '%s' is not a number", d->key, text);
	errno = 0;
	n = strtoll(text, &end, 10);
	if (*end != '\0')
		return fail(cause, "%s: '%s' is not a number", d->key, text);
	if (errno == ERANGE || n < d->min || n > d->max)
		return fail(cause, "%s: '%s' is out of range (%lld-%lld)",
		    d->key, text, (long long)d->min, (long long)d->max);
	v->i = n;
	return 0;
}

static int
parse_ratio(
    const struct directive *d, const char *text, struct value *v, char **cause)
{
	size_t digits = strspn(text, "0123456789.");
	char *end;
	double r;

	if (digits == 0 || text[digits] != '\0' ||
	    strchr(text, '.') != strrchr(text, '.'))
		return fail(cause, "%s: '%s' is not a number", d->key, text);
	r = strtod(text, &end);
	if (*end != '\0' || end == text)
		return fail(cause, "%s: '%s' is not a number", d->key, text);
	if (r < (double)d->min || r > (double)d->max)
		return fail(cause, "%s: '%s' is out of range (%lld-%lld)",
		    d->key, text, (long long)d->min, (long long)d->max);
	v->r = r;
	return 0;
}

static int
parse_bool(
    const struct directive *d, const char *text, struct value *v, char **cause)
{
	static const char *const yes[] = {"true", "1", "yes", NULL};
	static const char *const no[] = {"false", "0", "no", NULL};

	if (find_name(yes, text) >= 0)
		v->i = 1;
	else if (find_name(no, text) >= 0)
		v->i = 0;
	else
		return fail(
		    cause, "%s: '%s' is not true or false", d->key, text);
	return 0;
}

static int
parse_word(
    const struct directive *d, const char *text, struct value *v, char **cause)
{
	char list[256];
	int i = find_name(d->names, text);

	if (i < 0) {
		join_names(d->names, ", ", list, sizeof list);
		return fail(
		    cause, "%s: '%s' is not one of %s", d->key, text, list);
	}
	v->i = i;
	if (d->type == CT_CHOICE)
		v->s = xstrdup(d->names[i]);
	return 0;
}

static int
parse_str(
    const struct directive *d, const char *text, struct value *v, char **cause)
{
	const char *why;

	if (d->min > 0 && *text == '\0')
		return fail(cause, "%s: must not be empty", d->key);
	if (d->check != NULL && *text != '\0' && (why = d->check(text)) != NULL)
		return fail(cause, "%s: '%s' %s", d->key, text, why);
	v->s = xstrdup(text);
	return 0;
}

/* text is already trimmed and free of control characters. */
static int
parse_value(
    const struct directive *d, const char *text, struct value *v, char **cause)
{
	memset(v, 0, sizeof *v);
	switch (d->type) {
	case CT_STR:
		return parse_str(d, text, v, cause);
	case CT_INT:
	case CT_LONG:
	case CT_U32:
	case CT_U64:
		return parse_int(d, text, v, cause);
	case CT_RATIO:
		return parse_ratio(d, text, v, cause);
	case CT_BOOL:
		return parse_bool(d, text, v, cause);
	case CT_ENUM:
	case CT_CHOICE:
		return parse_word(d, text, v, cause);
	}
	return fail(cause, "%s: unknown type", d->key);
}

/* Takes ownership of v->s. */
static void
store_value(struct fm_config *cfg, const struct directive *d, struct value *v)
{
	void *p = field(cfg, d);

	switch (d->type) {
	case CT_STR:
	case CT_CHOICE:
		free(*(char **)p);
		*(char **)p = v->s;
		break;
	case CT_INT:
	case CT_BOOL:
	case CT_ENUM:
		*(int *)p = (int)v->i;
		break;
	case CT_LONG:
		*(long *)p = (long)v->i;
		break;
	case CT_U32:
		*(uint32_t *)p = (uint32_t)v->i;
		break;
	case CT_U64:
		*(uint64_t *)p = (uint64_t)v->i;
		break;
	case CT_RATIO:
		*(double *)p = v->r;
		break;
	}
}

/* The shortest text with at least two decimals that reads back as r. */
static void
format_ratio(double r, char *buf, size_t size)
{
	int prec;

	for (prec = 2; prec <= 17; prec++) {
		snprintf(buf, size, "%.*f", prec, r);
		if (strtod(buf, NULL) == r)
			return;
	}
	snprintf(buf, size, "%.17g", r);
}

/* The value of d in cfg as fm_config_set reads it: either buf or a string
 * borrowed from cfg or the table. */
static const char *
format_value(const struct fm_config *cfg, const struct directive *d, char *buf,
    size_t size)
{
	const void *p = field(cfg, d);
	int i;

	switch (d->type) {
	case CT_STR:
	case CT_CHOICE:
		return *(char *const *)p != NULL ? *(char *const *)p : "";
	case CT_INT:
		snprintf(buf, size, "%d", *(const int *)p);
		break;
	case CT_LONG:
		snprintf(buf, size, "%ld", *(const long *)p);
		break;
	case CT_U32:
		snprintf(buf, size, "%" PRIu32, *(const uint32_t *)p);
		break;
	case CT_U64:
		snprintf(buf, size, "%" PRIu64, *(const uint64_t *)p);
		break;
	case CT_RATIO:
		format_ratio(*(const double *)p, buf, size);
		break;
	case CT_BOOL:
		return *(const int *)p ? "true" : "false";
	case CT_ENUM:
		i = *(const int *)p;
		return i >= 0 && i < count_names(d->names) ? d->names[i] : "?";
	}
	return buf;
}

static const char *
check_ip(const char *value)
{
	unsigned char addr[16];

	if (inet_pton(AF_INET, value, addr) == 1 ||
	    inet_pton(AF_INET6, value, addr) == 1)
		return NULL;
	return "is not an IPv4 or IPv6 address";
}

/* RFC 1123 host name: dot-separated labels of letters, digits and inner
 * hyphens, 1-63 characters each, 253 in all. */
static int
is_hostname(const char *s, size_t len)
{
	size_t i, label = 0;

	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
		} else if (isalnum((unsigned char)s[i]) ||
		    (s[i] == '-' && label > 0)) {
			if (++label > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return label > 0 && s[len - 1] != '-';
}

static const char *
check_host(const char *value)
{
	if (check_ip(value) == NULL || is_hostname(value, strlen(value)))
		return NULL;
	return "is not a host name or IP address";
}

/* One "host:port" or "[ipv6]:port" of len bytes at s. */
static int
is_hostport(const char *s, size_t len)
{
	const char *colon = NULL;
	unsigned char addr[16];
	char host[64];
	size_t i, hlen;
	long port = 0;

	for (i = len; i > 0 && colon == NULL; i--) {
		if (s[i - 1] == ':')
			colon = s + i - 1;
	}
	if (colon == NULL || colon + 1 == s + len)
		return 0;
	for (i = (size_t)(colon + 1 - s); i < len; i++) {
		if (!isdigit((unsigned char)s[i]) || port > 65535)
			return 0;
		port = port * 10 + (s[i] - '0');
	}
	if (port < 1 || port > 65535)
		return 0;
	hlen = (size_t)(colon - s);
	if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
		if (hlen - 2 >= sizeof host)
			return 0;
		memcpy(host, s + 1, hlen - 2);
		host[hlen - 2] = '\0';
		return inet_pton(AF_INET6, host, addr) == 1;
	}
	return is_hostname(s, hlen);
}

static const char *
check_hostport(const char *value)
{
	return is_hostport(value, strlen(value)) ? NULL : "is not host:port";
}

static const char *
check_hostport_list(const char *value)
{
	const char *p = value, *end;

	for (;;) {
		end = strchr(p, ';');
		if (end == NULL)
			end = p + strlen(p);
		if (!is_hostport(p, (size_t)(end - p)))
			return "is not a list of host:port separated by ';'";
		if (*end == '\0')
			return NULL;
		p = end + 1;
	}
}

/* The part of s without leading and trailing white space (CR included). */
static const char *
span_trim(const char *s, size_t *len)
{
	size_t n;

	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	*len = n;
	return s;
}

static int
has_control(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	}
	return 0;
}

/* A copy of len bytes at s fit to quote in a one-line message: control
 * characters become '?'. New. */
static char *
printable(const char *s, size_t len)
{
	char *p = xstrndup(s, len);
	size_t i;

	for (i = 0; p[i] != '\0'; i++) {
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			p[i] = '?';
	}
	return p;
}

void
fm_config_defaults(struct fm_config *cfg)
{
	struct value v;
	size_t i;
	int rc;

	memset(cfg, 0, sizeof *cfg);
	for (i = 0; i < NDIRECTIVES; i++) {
		rc = parse_value(&directives[i], directives[i].def, &v, NULL);
		assert(rc == 0);
		(void)rc;
		store_value(cfg, &directives[i], &v);
	}
}

int
fm_config_set(
    struct fm_config *cfg, const char *key, const char *value, char **cause)
{
	const struct directive *d;
	const char *k, *t;
	char *name = NULL, *text = NULL;
	struct value v;
	size_t klen, tlen;
	int rc;

	k = span_trim(key, &klen);
	d = find_key(k, klen);
	if (d == NULL) {
		name = printable(k, klen);
		rc = unknown_key(name, cause);
		goto out;
	}
	t = span_trim(value, &tlen);
	text = xstrndup(t, tlen);
	if (has_control(text)) {
		rc = fail(
		    cause, "%s: value contains a control character", d->key);
		goto out;
	}
	rc = parse_value(d, text, &v, cause);
	if (rc == 0)
		store_value(cfg, d, &v);
out:
	free(name);
	free(text);
	return rc;
}

/* One line of a file, NUL-terminated and without its newline. */
static int
load_line(struct fm_config *cfg, char *line, char **why)
{
	const char *k;
	char *eq, *shown;
	size_t klen, len;
	int rc;

	k = span_trim(line, &len);
	if (len == 0 || *k == '#')
		return 0;
	eq = strchr(k, '=');
	if (eq == NULL) {
		shown = printable(k, len);
		rc = fail(
		    why, "missing '=' in '%s' (expected key=value)", shown);
		free(shown);
		return rc;
	}
	*eq = '\0';
	span_trim(k, &klen);
	if (klen == 0)
		return fail(why, "missing key before '='");
	return fm_config_set(cfg, k, eq + 1, why);
}

int
fm_config_load_file(struct fm_config *cfg, const char *path, char **cause)
{
	static const char bom[] = "\xef\xbb\xbf";
	char *line = NULL, *why = NULL, *p;
	unsigned lineno = 0;
	size_t cap = 0;
	ssize_t n;
	FILE *f;
	int rc = 0, e;

	f = fopen(path, "r");
	if (f == NULL) {
		e = errno;
		fail(cause, "%s: %s", path, strerror(e));
		return fm_err_from_errno(e);
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		p = line;
		if (++lineno == 1 && strncmp(p, bom, 3) == 0)
			p += 3;
		if (strlen(line) != (size_t)n)
			rc = fail(&why, "line contains a NUL byte");
		else
			rc = load_line(cfg, p, &why);
		if (rc < 0) {
			rc = fail(cause, "%s:%u: %s", path, lineno, why);
			goto out;
		}
	}
	if (ferror(f)) {
		e = errno != 0 ? errno : EIO;
		fail(cause, "%s: %s", path, strerror(e));
		rc = fm_err_from_errno(e);
	}
out:
	free(why);
	free(line);
	fclose(f);
	return rc;
}

/* Every field holds a value its row accepts: catches configs filled in by
 * hand rather than through fm_config_set. */
static int
rule_fields(const struct fm_config *cfg, char **cause)
{
	char buf[64];
	struct value v;
	size_t i;
	int rc;

	for (i = 0; i < NDIRECTIVES; i++) {
		rc = parse_value(&directives[i],
		    format_value(cfg, &directives[i], buf, sizeof buf), &v,
		    cause);
		if (rc < 0)
			return rc;
		free(v.s);
	}
	return 0;
}

/* RocketMQ: brokerId 0 is the master of a brokerName, others its slaves. */
static int
rule_role_id(const struct fm_config *cfg, char **cause)
{
	const char *role = fm_role_name(cfg->broker_role);

	if (cfg->broker_role == FM_ROLE_SLAVE && cfg->broker_id == 0)
		return fail(cause,
		    "brokerRole SLAVE needs brokerId 1 or more (brokerId 0 is "
		    "the master)");
	if (cfg->broker_role != FM_ROLE_SLAVE && cfg->broker_id != 0)
		return fail(cause,
		    "brokerRole %s needs brokerId 0 (got %ld; only a SLAVE has "
		    "another id)",
		    role, cfg->broker_id);
	return 0;
}

static int
rule_slave_master(const struct fm_config *cfg, char **cause)
{
	if (cfg->broker_role == FM_ROLE_SLAVE &&
	    (cfg->ha_master_address == NULL || *cfg->ha_master_address == '\0'))
		return fail(cause,
		    "brokerRole SLAVE needs haMasterAddress (the master's "
		    "host:port)");
	return 0;
}

/* Records never straddle segments, so one message must fit in one. */
static int
rule_message_fits(const struct fm_config *cfg, char **cause)
{
	if ((uint64_t)cfg->max_message_size >= cfg->mapped_file_size_commit_log)
		return fail(cause,
		    "maxMessageSize (%" PRIu32 ") must be smaller than "
		    "mappedFileSizeCommitLog (%" PRIu64 ")",
		    cfg->max_message_size, cfg->mapped_file_size_commit_log);
	return 0;
}

typedef int (*rule_fn)(const struct fm_config *cfg, char **cause);

static const rule_fn rules[] = {
    rule_fields, rule_role_id, rule_slave_master, rule_message_fits};

int
fm_config_validate(const struct fm_config *cfg, char **cause)
{
	size_t i;
	int rc;

	for (i = 0; i < sizeof rules / sizeof rules[0]; i++) {
		rc = rules[i](cfg, cause);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static const char header[] =
    "# ferrymq.conf - configuration of the ferrymq daemon (ferrymq -c FILE).\n"
    "#\n"
    "# One key=value per line; lines starting with '#' are comments. Key\n"
    "# names are those of RocketMQ's broker.conf. Any key can also be given\n"
    "# on the command line as --key=value, which wins over this file.\n"
    "# Each key follows its meaning and built-in default; the units and\n"
    "# ranges are in ferrymq.conf(5).\n";

void
fm_config_print(const struct fm_config *cfg, FILE *out, int with_help)
{
	const struct directive *d;
	char buf[64];
	size_t i;

	if (with_help)
		fputs(header, out);
	for (i = 0; i < NDIRECTIVES; i++) {
		d = &directives[i];
		if (with_help)
			fprintf(out, "\n# %s (default: %s)\n", d->help,
			    *d->def != '\0' ? d->def : "empty");
		fprintf(out, "%s=%s\n", d->key,
		    format_value(cfg, d, buf, sizeof buf));
	}
}

/* What --help shows after "--key=". */
static void
format_hint(const struct directive *d, char *buf, size_t size)
{
	switch (d->type) {
	case CT_STR:
		snprintf(buf, size, "<text>");
		break;
	case CT_INT:
	case CT_LONG:
	case CT_U32:
	case CT_U64:
	case CT_RATIO:
		snprintf(buf, size, "<%lld-%lld>", (long long)d->min,
		    (long long)d->max);
		break;
	case CT_BOOL:
		snprintf(buf, size, "true|false");
		break;
	case CT_ENUM:
	case CT_CHOICE:
		join_names(d->names, "|", buf, size);
		break;
	}
}

void
fm_config_print_help(FILE *out)
{
	const struct directive *d;
	char hint[128];
	size_t i;

	for (i = 0; i < NDIRECTIVES; i++) {
		d = &directives[i];
		format_hint(d, hint, sizeof hint);
		fprintf(out, "  --%s=%s\n      %s (default: %s)\n", d->key,
		    hint, d->help, *d->def != '\0' ? d->def : "empty");
	}
}

void
fm_config_free(struct fm_config *cfg)
{
	char **s;
	size_t i;

	for (i = 0; i < NDIRECTIVES; i++) {
		if (directives[i].type != CT_STR &&
		    directives[i].type != CT_CHOICE)
			continue;
		s = field(cfg, &directives[i]);
		free(*s);
		*s = NULL;
	}
}

int
fm_config_log_level(const struct fm_config *cfg)
{
	int i = -1;

	if (cfg->log_level != NULL)
		i = find_name(level_names, cfg->log_level);
	return i >= 0 ? i : FM_LOG_INFO;
}

const char *
fm_role_name(enum fm_role role)
{
	if ((int)role < 0 || (int)role >= count_names(role_names))
		return "?";
	return role_names[role];
}

const char *
fm_flush_name(enum fm_flush flush)
{
	if ((int)flush < 0 || (int)flush >= count_names(flush_names))
		return "?";
	return flush_names[flush];
}
