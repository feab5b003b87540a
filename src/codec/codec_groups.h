/*
 * codec_groups.h - the consumer group part of the JSON codec: request
 * bodies of ack, nack, reset and group settings, and a message with its
 * receipt handle.
 *
 * Part of the codec module (codec.h): like codec.c it is a file that may
 * include jansson; handlers never parse JSON themselves.
 */
#ifndef FM_HTTP_CODEC_GROUPS_H
#define FM_HTTP_CODEC_GROUPS_H

#include <stddef.h>

#include "broker/broker.h"
#include "codec/codec.h"

#define FM_SETTLE_MAX 1024 /* receipt handles in one ack or nack */

/* {"receiptHandles": ["..."], "delay": seconds} */
struct fm_settle_body {
	char **handles; /* owned, n new strings */
	size_t n;
	double delay_s; /* -1 when absent */
};

/* Parse an ack (allow_delay 0) or nack body: 1..FM_SETTLE_MAX strings,
 * delay 0..max_delay_s. -FM_E_INVALID with *cause (new), out empty. */
int fm_codec_parse_settle(const char *data, size_t len, int allow_delay,
    double max_delay_s, struct fm_settle_body *out, char **cause);
void fm_codec_settle_free(struct fm_settle_body *b);

/* Parse a reset body: {"offset": "earliest" | "latest"} or
 * {"timestamp": epoch ms}, exactly one. -FM_E_INVALID with *cause. */
int fm_codec_parse_reset(const char *data, size_t len, enum fm_reset *how,
    int64_t *ts_ms, char **cause);

/* Parse the body of PUT /v1/groups/{group}: {"fifo": true | false}. An
 * empty body is {}. *fifo is 0 or 1, or -1 when absent. -FM_E_INVALID
 * with *cause (new). */
int fm_codec_parse_group_put(
    const char *data, size_t len, int *fifo, char **cause);

/* fm_codec_message plus "receiptHandle": receipt. */
void fm_codec_message_receipt(struct fm_json *j, const char *key,
    const struct fm_message *m, const char *receipt);

#endif
