/*
 * reply.c - the error table, JSON and error replies, and the query
 * argument parsers (see reply.h).
 *
 * Owns the two static tables: FM_HTTP_CODES expanded, and FM_E_* -> code.
 * Invariant: the FM_E_* map has an entry for every error (checked at
 * compile time), so no broker error can reach a client unmapped.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/xmalloc.h"
#include "http/reply.h"

static const struct {
	const char *name;
	unsigned status;
	int retry_after;
} codes[] = {
#define FM_HTTP_CODE_ROW(name, status, retry) {#name, status, retry},
    FM_HTTP_CODES(FM_HTTP_CODE_ROW)
#undef FM_HTTP_CODE_ROW
};

static const enum fm_http_code err_codes[] = {
    [FM_OK] = FM_HC_INTERNAL,
    [FM_E_NOMEM] = FM_HC_OUT_OF_MEMORY,
    [FM_E_IO] = FM_HC_IO_ERROR,
    [FM_E_NOSPC] = FM_HC_NO_SPACE,
    [FM_E_CORRUPT] = FM_HC_CORRUPT,
    [FM_E_INVALID] = FM_HC_INVALID_ARGUMENT,
    [FM_E_NOT_FOUND] = FM_HC_NOT_FOUND,
    [FM_E_EXISTS] = FM_HC_CONFLICT,
    [FM_E_TOO_LARGE] = FM_HC_PAYLOAD_TOO_LARGE,
    [FM_E_NOT_WRITABLE] = FM_HC_NOT_WRITABLE,
    [FM_E_DISK_FULL] = FM_HC_DISK_FULL,
    [FM_E_TIMEOUT] = FM_HC_TIMEOUT,
    [FM_E_SHUTDOWN] = FM_HC_SHUTTING_DOWN,
    [FM_E_GONE] = FM_HC_GONE,
    [FM_E_BUSY] = FM_HC_BUSY,
};

_Static_assert(sizeof(err_codes) / sizeof(err_codes[0]) == FM_E__COUNT,
    "every FM_E_* error needs an HTTP code");

const char *
fm_http_code_name(enum fm_http_code c)
{
	return codes[c].name;
}

unsigned
fm_http_code_status(enum fm_http_code c)
{
	return codes[c].status;
}

enum fm_http_code
fm_http_code_of(int err)
{
	if (err < 0)
		err = -err;
	return err > 0 && err < FM_E__COUNT ? err_codes[err] : FM_HC_INTERNAL;
}

void
fm_reply_json(struct fm_req *r, unsigned status, struct fm_json *j)
{
	r->status = status;
	r->ctype = "application/json";
	fm_buf_reset(&r->out);
	fm_json_init(j, &r->out);
}

void
fm_reply_error(struct fm_req *r, enum fm_http_code code, const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	r->status = codes[code].status;
	r->ctype = "application/json";
	r->retry_after = codes[code].retry_after;
	fm_buf_reset(&r->out);
	fm_codec_error(&r->out, codes[code].name,
	    msg != NULL ? msg : fm_err_msg(FM_E_NOMEM));
	free(msg);
}

void
fm_reply_err(
    struct fm_req *r, int err, char *cause, enum fm_http_code not_found)
{
	enum fm_http_code code = fm_http_code_of(err);

	if (code == FM_HC_NOT_FOUND)
		code = not_found;
	fm_reply_error(r, code, "%s", cause != NULL ? cause : fm_err_msg(err));
	free(cause);
}

/* The whole of s as a decimal integer in [min, max]. */
static int
parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v < min ||
	    v > max)
		return -1;
	*out = v;
	return 0;
}

int
fm_arg_u64(struct fm_req *r, const char *name, uint64_t def, uint64_t min,
    uint64_t max, uint64_t *out)
{
	const char *s = fm_req_arg(r, name);

	*out = def;
	if (s == NULL || parse_u64(s, min, max, out) == 0)
		return 0;
	fm_reply_error(r, FM_HC_INVALID_ARGUMENT,
	    "%s: '%s' is not an integer in %llu..%llu", name, s,
	    (unsigned long long)min, (unsigned long long)max);
	return -1;
}

int
fm_param_u64(struct fm_req *r, const char *name, uint64_t max, uint64_t *out)
{
	const char *s = fm_req_param(r, name);

	if (s != NULL && parse_u64(s, 0, max, out) == 0)
		return 0;
	fm_reply_error(r, FM_HC_INVALID_ARGUMENT,
	    "%s: '%s' is not an integer in 0..%llu", name, s ? s : "",
	    (unsigned long long)max);
	return -1;
}

int
fm_arg_i64(struct fm_req *r, const char *name, int64_t def, int64_t min,
    int64_t max, int64_t *out)
{
	const char *s = fm_req_arg(r, name);
	long long v;
	char *end;

	*out = def;
	if (s == NULL)
		return 0;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (s[0] == '\0' || s[0] == ' ' || s[0] == '+' || *end != '\0' ||
	    errno != 0 || v < min || v > max) {
		fm_reply_error(r, FM_HC_INVALID_ARGUMENT,
		    "%s: '%s' is not an integer in %lld..%lld", name, s,
		    (long long)min, (long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

int
fm_arg_seconds(
    struct fm_req *r, const char *name, double def, double max, double *out)
{
	const char *s = fm_req_arg(r, name);
	double v;
	char *end;

	*out = def;
	if (s == NULL)
		return 0;
	errno = 0;
	v = strtod(s, &end);
	if (s[0] == '\0' || s[strspn(s, "0123456789.")] != '\0' ||
	    *end != '\0' || errno != 0 || !isfinite(v) || v < 0 || v > max) {
		fm_reply_error(r, FM_HC_INVALID_ARGUMENT,
		    "%s: '%s' is not a number of seconds in 0..%g", name, s,
		    max);
		return -1;
	}
	*out = v;
	return 0;
}

const char *
fm_arg_topic(struct fm_req *r)
{
	const char *topic = fm_req_param(r, "topic");
	char *cause = NULL;

	if (fm_broker_check_topic_name(topic, &cause) != 0) {
		fm_reply_error(r, FM_HC_INVALID_ARGUMENT, "%s",
		    cause != NULL ? cause : "invalid topic name");
		free(cause);
		return NULL;
	}
	return topic;
}
