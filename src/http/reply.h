/*
 * reply.h - replies shared by every handler: JSON answers, the one error
 * form, and the one table from error to HTTP status and JSON code.
 *
 * Owns: FM_HTTP_CODES (code name, status, Retry-After seconds) and the map
 * from FM_E_* to it, plus argument parsers that answer 400 themselves.
 * Invariant: every error a client sees is {"error": {"code", "message"}}
 * with a status from this table; client mistakes are never 5xx.
 */
#ifndef FM_HTTP_REPLY_H
#define FM_HTTP_REPLY_H

#include <stdint.h>

#include "codec/codec.h"
#include "http/http.h"

/* X(CODE, status, retry_after_seconds): CODE is the JSON "code". */
#define FM_HTTP_CODES(X) \
	X(BAD_REQUEST, 400, 0) \
	X(INVALID_ARGUMENT, 400, 0) \
	X(NOT_FOUND, 404, 0) \
	X(TOPIC_NOT_FOUND, 404, 0) \
	X(QUEUE_NOT_FOUND, 404, 0) \
	X(MESSAGE_NOT_FOUND, 404, 0) \
	X(METHOD_NOT_ALLOWED, 405, 0) \
	X(CONFLICT, 409, 0) \
	X(GONE, 410, 0) \
	X(PAYLOAD_TOO_LARGE, 413, 0) \
	X(INTERNAL, 500, 0) \
	X(IO_ERROR, 500, 0) \
	X(CORRUPT, 500, 0) \
	X(NOT_WRITABLE, 503, 5) \
	X(BUSY, 503, 1) \
	X(TIMEOUT, 503, 1) \
	X(SHUTTING_DOWN, 503, 5) \
	X(OUT_OF_MEMORY, 503, 5) \
	X(DISK_FULL, 507, 60) \
	X(NO_SPACE, 507, 60)

enum fm_http_code {
#define FM_HTTP_CODE_ENUM(name, status, retry) FM_HC_##name,
	FM_HTTP_CODES(FM_HTTP_CODE_ENUM)
#undef FM_HTTP_CODE_ENUM
	    FM_HC__COUNT
};

const char *fm_http_code_name(enum fm_http_code c);
unsigned fm_http_code_status(enum fm_http_code c);
/* The code for a (negative) FM_E_* error. */
enum fm_http_code fm_http_code_of(int err);

/* Start a JSON reply with status; write the body with j. */
void fm_reply_json(struct fm_req *r, unsigned status, struct fm_json *j);
/* Answer the error form with code and a printf message. */
void fm_reply_error(struct fm_req *r, enum fm_http_code code, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));
/* Answer a broker error: cause (may be NULL) as the message; NOT_FOUND
 * becomes not_found (e.g. FM_HC_TOPIC_NOT_FOUND). Frees cause. */
void fm_reply_err(
    struct fm_req *r, int err, char *cause, enum fm_http_code not_found);

/* Query argument parsers: the full string must parse and lie in
 * [min, max]; an absent argument gives def. On failure they answer 400
 * INVALID_ARGUMENT naming the argument and return -1. */
int fm_arg_u64(struct fm_req *r, const char *name, uint64_t def, uint64_t min,
    uint64_t max, uint64_t *out);
int fm_arg_i64(struct fm_req *r, const char *name, int64_t def, int64_t min,
    int64_t max, int64_t *out);
/* A route parameter ({queueId}) as an integer in 0..max. */
int fm_param_u64(
    struct fm_req *r, const char *name, uint64_t max, uint64_t *out);
/* Seconds, decimals allowed. */
int fm_arg_seconds(
    struct fm_req *r, const char *name, double def, double max, double *out);
/* A route parameter that must be a valid topic name; answers 400. */
const char *fm_arg_topic(struct fm_req *r);

#endif
