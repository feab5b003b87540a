/*
 * codec.h - JSON in and out for the front ends: the only module that
 * includes jansson.
 *
 * Owns: a small streaming JSON writer over an fm_buf (replies are built
 * with it, so every reply is valid JSON by construction and no handler
 * assembles JSON with printf), the message encoder (hot path: no jansson,
 * FACTS.md measures ~4 us per jansson object), string escaping, UTF-8
 * validation, base64, and the parsers of request bodies (NDJSON publish
 * batches, topic settings) which use jansson.
 * Does not own: HTTP statuses, MHD, what the fields mean to the broker.
 *
 * Invariants: every string written is valid UTF-8 JSON: invalid UTF-8
 * in a name, tag, key or property becomes U+FFFD; a body that is not
 * valid UTF-8 is written as base64 with "bodyEncoding": "base64".
 */
#ifndef FM_HTTP_CODEC_H
#define FM_HTTP_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "broker/broker.h"

/* ---- the writer ---- */

#define FM_JSON_MAX_DEPTH 16

struct fm_json {
	struct fm_buf *out; /* borrowed: the reply body being built */
	unsigned depth; /* open objects/arrays */
	unsigned char
	    first[FM_JSON_MAX_DEPTH]; /* 1 until a member is written */
};

/* Every value function takes key: the member name inside an object, NULL
 * inside an array or at the top. */
void fm_json_init(struct fm_json *j, struct fm_buf *out);
/* Continue an object whose opening brace and first members are already
 * in out (copied from a cache): the next member is written with its comma,
 * and fm_json_obj_end closes it. */
void fm_json_resume_obj(struct fm_json *j, struct fm_buf *out);
void fm_json_obj(struct fm_json *j, const char *key);
void fm_json_obj_end(struct fm_json *j);
void fm_json_arr(struct fm_json *j, const char *key);
void fm_json_arr_end(struct fm_json *j);
/* s == NULL writes null. */
void fm_json_str(struct fm_json *j, const char *key, const char *s);
void fm_json_strn(struct fm_json *j, const char *key, const char *s, size_t n);
void fm_json_i64(struct fm_json *j, const char *key, int64_t v);
void fm_json_u64(struct fm_json *j, const char *key, uint64_t v);
/* NaN and infinities are written as null. */
void fm_json_dbl(struct fm_json *j, const char *key, double v);
void fm_json_bool(struct fm_json *j, const char *key, int v);
void fm_json_null(struct fm_json *j, const char *key);

/* ---- primitives ---- */

/* Append s as a quoted JSON string (invalid UTF-8 -> U+FFFD). */
void fm_codec_escape(struct fm_buf *out, const void *s, size_t n);
/* 1 when the n bytes are valid UTF-8 (no overlongs, no surrogates). */
int fm_codec_utf8_valid(const void *s, size_t n);
/* Append the standard base64 (padded) of n bytes. */
void fm_codec_base64(struct fm_buf *out, const void *p, size_t n);
/* Decode standard base64 (padding optional) into out. -FM_E_INVALID on a
 * character outside the alphabet or a bad length. */
int fm_codec_unbase64(struct fm_buf *out, const char *s, size_t n);

/* ---- messages and errors ---- */

/* Write m as the message object of CONTRACT.md. */
void fm_codec_message(
    struct fm_json *j, const char *key, const struct fm_message *m);
/* The same, leaving the object open for the caller's own members (a
 * receiptHandle, a cursor); the caller closes it with fm_json_obj_end. */
void fm_codec_message_open(
    struct fm_json *j, const char *key, const struct fm_message *m);
/* Write the gap marker {"topic", "queueId", "fromOffset", "toOffset",
 * "lost"} under key: the offsets [from, to) of the queue are no longer
 * retained. The same members as a broadcast stream's gap event. */
void fm_codec_gap(struct fm_json *j, const char *key, const char *topic,
    uint32_t queue_id, uint64_t from, uint64_t to);
/* Append {"error": {"code": code, "message": message}}. */
void fm_codec_error(struct fm_buf *out, const char *code, const char *message);
/* The same with "receiptHandle": receipt beside "error" (the handle the
 * error is about), when receipt is not NULL. */
void fm_codec_error_receipt(struct fm_buf *out, const char *code,
    const char *message, const char *receipt);

/* ---- request bodies ---- */

/* 1 when s holds nothing but spaces, tabs and line ends (an empty body). */
int fm_codec_blank(const char *s, size_t n);

/* Split s in place at commas into keys, trimming spaces and dropping
 * empty pieces. Returns a new array (free()) of pointers into s. */
const char **fm_codec_split_keys(char *s, size_t *n);

/* A parsed NDJSON publish batch: msgs point into memory the batch owns. */
struct fm_batch {
	struct fm_pub_msg *msgs; /* owned, n entries */
	size_t n;
	void **owned; /* owned allocations (bodies, key and prop arrays) */
	size_t nowned, owned_cap;
	void **docs; /* owned jansson documents the strings are borrowed from */
	size_t ndocs;
};

#define FM_BATCH_INIT \
	{ \
		NULL, 0, NULL, 0, 0, NULL, 0 \
	}

/* Parse an application/x-ndjson body: one object per line, blank lines
 * ignored. Members: "body" (string) or "bodyBase64", optional "tag",
 * "keys" (array of strings or comma-separated string), "shardingKey",
 * "properties" (object of strings), "delay" (seconds, 0..max_delay_s) or
 * "deliverAt" (epoch ms). delay becomes deliver_at = now_ms + delay.
 * At most max_msgs lines. On error -FM_E_INVALID (or -FM_E_TOO_LARGE
 * for too many lines) with *cause (new) naming the line, and out empty. */
int fm_codec_parse_batch(const char *data, size_t len, int64_t now_ms,
    double max_delay_s, size_t max_msgs, struct fm_batch *out, char **cause);
void fm_codec_batch_free(struct fm_batch *b);

/* Parse the body of PUT /v1/topics/{topic}: {"queues": 1..1024, "perm":
 * "rw" | "r" | "w" | 2 | 4 | 6}. An empty body is {}. Absent members
 * leave *queues / *perm at 0. -FM_E_INVALID with *cause (new). */
int fm_codec_parse_topic_put(const char *data, size_t len, uint32_t *queues,
    uint32_t *perm, char **cause);

/* "rw", "r", "w" or "-" for FM_PERM_* bits. Borrowed, static. */
const char *fm_codec_perm_name(uint32_t perm);

#endif
