/*
 * codec_ws.c - parsing the acks and nacks a client sends as text frames
 * on /v1/topics/{topic}/groups/{group}/ws?ack=client (see codec_ws.h).
 *
 * Owns only the frame shapes; what a receipt handle means is the
 * broker's. Invariant: on success every handle is a new string in out,
 * on failure out is empty.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/xmalloc.h"
#include "codec/codec_ws.h"

static int
add_handle(struct fm_settle_body *out, json_t *v, char **cause)
{
	if (!json_is_string(v)) {
		xasprintf(cause, "a receipt handle must be a string");
		return -FM_E_INVALID;
	}
	out->handles[out->n++] = xstrdup(json_string_value(v));
	return 0;
}

static int
handles(json_t *h, struct fm_settle_body *out, char **cause)
{
	json_t *v;
	size_t i;

	if (!json_is_array(h)) {
		out->handles = xcalloc(1, sizeof(char *));
		return add_handle(out, h, cause);
	}
	if (json_array_size(h) == 0 || json_array_size(h) > FM_SETTLE_MAX) {
		xasprintf(
		    cause, "1..%d receipt handles per frame", FM_SETTLE_MAX);
		return -FM_E_INVALID;
	}
	out->handles = xcalloc(json_array_size(h), sizeof(char *));
	json_array_foreach(h, i, v)
	{
		if (add_handle(out, v, cause) < 0)
			return -FM_E_INVALID;
	}
	return 0;
}

static int
delay(json_t *doc, int nack, double max, double *out, char **cause)
{
	json_t *d = json_object_get(doc, "delay");

	*out = -1;
	if (d == NULL)
		return 0;
	if (!nack || !json_is_number(d) || !isfinite(json_number_value(d)) ||
	    json_number_value(d) < 0 || json_number_value(d) > max) {
		xasprintf(cause, "delay: a nack's seconds, 0..%.0f", max);
		return -FM_E_INVALID;
	}
	*out = json_number_value(d);
	return 0;
}

int
fm_codec_parse_ws_settle(const char *data, size_t len, double max_delay_s,
    int *nack, struct fm_settle_body *out, char **cause)
{
	json_error_t e;
	json_t *doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &e);
	json_t *ack, *nk;
	int rc = -FM_E_INVALID;

	memset(out, 0, sizeof(*out));
	out->delay_s = -1;
	if (doc == NULL) {
		xasprintf(cause, "not JSON: %s", e.text);
		return rc;
	}
	ack = json_object_get(doc, "ack");
	nk = json_object_get(doc, "nack");
	if (!json_is_object(doc) || (ack == NULL) == (nk == NULL) ||
	    json_object_size(doc) !=
	        1u + (json_object_get(doc, "delay") != NULL)) {
		xasprintf(cause,
		    "expected {\"ack\": handles} or {\"nack\": "
		    "handles, \"delay\": seconds}");
		goto done;
	}
	*nack = nk != NULL;
	if (handles(nk != NULL ? nk : ack, out, cause) < 0 ||
	    delay(doc, *nack, max_delay_s, &out->delay_s, cause) < 0)
		goto done;
	rc = 0;
done:
	json_decref(doc);
	if (rc < 0)
		fm_codec_settle_free(out);
	return rc;
}
