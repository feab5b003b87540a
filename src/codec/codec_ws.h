/*
 * codec_ws.h - the WebSocket part of the JSON codec: the frames a client
 * sends on a consumer group's stream. Part of the codec module (codec.h):
 * a file that may include jansson, so the WebSocket service parses no
 * JSON itself.
 */
#ifndef FM_HTTP_CODEC_WS_H
#define FM_HTTP_CODEC_WS_H

#include <stddef.h>

#include "codec/codec_groups.h"

/* {"ack": "h" | ["h", ...]} or {"nack": "h" | ["h", ...], "delay": s}
 * (delay 0..max_delay_s, absent: the retry ladder). *nack says which.
 * -FM_E_INVALID with *cause (new), out empty. */
int fm_codec_parse_ws_settle(const char *data, size_t len, double max_delay_s,
    int *nack, struct fm_settle_body *out, char **cause);

#endif
