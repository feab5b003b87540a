/*
 * codec_groups.c - the consumer group bodies (see codec_groups.h).
 *
 * Owns parsing of ack, nack, reset and group settings bodies with jansson
 * (duplicate keys refused, unknown members refused so that typos are not
 * ignored), and the message-with-receipt writer. Does not own what the
 * values mean.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/err.h"
#include "base/xmalloc.h"
#include "codec/codec_groups.h"

static int
fail(char **cause, const char *msg)
{
	*cause = xstrdup(msg);
	return -FM_E_INVALID;
}

static json_t *
load(const char *data, size_t len, char **cause)
{
	json_error_t e;
	json_t *doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &e);

	if (doc == NULL) {
		xasprintf(
		    cause, "body is not JSON: %s (line %d)", e.text, e.line);
		return NULL;
	}
	if (!json_is_object(doc)) {
		json_decref(doc);
		fail(cause, "body must be a JSON object");
		return NULL;
	}
	return doc;
}

/* Every member of obj is one of the NULL-terminated names. */
static int
only_members(json_t *obj, const char *const *names, char **cause)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v)
	{
		size_t i;

		for (i = 0; names[i] != NULL; i++)
			if (strcmp(key, names[i]) == 0)
				break;
		if (names[i] == NULL) {
			xasprintf(cause, "unknown member '%s'", key);
			return -FM_E_INVALID;
		}
	}
	return 0;
}

static int
settle_delay(json_t *doc, double max, double *out, char **cause)
{
	json_t *d = json_object_get(doc, "delay");

	*out = -1;
	if (d == NULL)
		return 0;
	if (!json_is_number(d) || !isfinite(json_number_value(d)) ||
	    json_number_value(d) < 0 || json_number_value(d) > max) {
		xasprintf(
		    cause, "delay must be a number of seconds, 0..%.0f", max);
		return -FM_E_INVALID;
	}
	*out = json_number_value(d);
	return 0;
}

int
fm_codec_parse_settle(const char *data, size_t len, int allow_delay,
    double max_delay_s, struct fm_settle_body *out, char **cause)
{
	static const char *const ack_names[] = {"receiptHandles", NULL};
	static const char *const nack_names[] = {
	    "receiptHandles", "delay", NULL};
	json_t *doc = load(data, len, cause), *arr, *v;
	size_t i;
	int rc = -FM_E_INVALID;

	memset(out, 0, sizeof(*out));
	out->delay_s = -1;
	if (doc == NULL)
		return -FM_E_INVALID;
	if (only_members(doc, allow_delay ? nack_names : ack_names, cause) < 0)
		goto done;
	arr = json_object_get(doc, "receiptHandles");
	if (!json_is_array(arr) || json_array_size(arr) == 0 ||
	    json_array_size(arr) > FM_SETTLE_MAX) {
		xasprintf(cause,
		    "receiptHandles must be an array of 1..%d strings",
		    FM_SETTLE_MAX);
		goto done;
	}
	out->handles = xcalloc(json_array_size(arr), sizeof(char *));
	json_array_foreach(arr, i, v)
	{
		if (!json_is_string(v)) {
			xasprintf(
			    cause, "receiptHandles[%zu] is not a string", i);
			goto done;
		}
		out->handles[out->n++] = xstrdup(json_string_value(v));
	}
	if (allow_delay &&
	    settle_delay(doc, max_delay_s, &out->delay_s, cause) < 0)
		goto done;
	rc = 0;
done:
	json_decref(doc);
	if (rc < 0)
		fm_codec_settle_free(out);
	return rc;
}

void
fm_codec_settle_free(struct fm_settle_body *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->handles[i]);
	free(b->handles);
	b->handles = NULL;
	b->n = 0;
}

static int
reset_offset(json_t *off, enum fm_reset *how, char **cause)
{
	const char *s = json_is_string(off) ? json_string_value(off) : "";

	if (strcmp(s, "earliest") == 0)
		*how = FM_RESET_EARLIEST;
	else if (strcmp(s, "latest") == 0)
		*how = FM_RESET_LATEST;
	else
		return fail(cause, "offset must be \"earliest\" or \"latest\"");
	return 0;
}

int
fm_codec_parse_reset(const char *data, size_t len, enum fm_reset *how,
    int64_t *ts_ms, char **cause)
{
	static const char *const names[] = {"offset", "timestamp", NULL};
	json_t *doc = load(data, len, cause), *off, *ts;
	int rc = -FM_E_INVALID;

	if (doc == NULL)
		return -FM_E_INVALID;
	if (only_members(doc, names, cause) < 0)
		goto done;
	off = json_object_get(doc, "offset");
	ts = json_object_get(doc, "timestamp");
	if ((off == NULL) == (ts == NULL)) {
		fail(cause, "give either offset or timestamp");
		goto done;
	}
	if (off != NULL) {
		rc = reset_offset(off, how, cause);
		goto done;
	}
	if (!json_is_integer(ts) || json_integer_value(ts) < 0) {
		fail(cause, "timestamp must be epoch milliseconds (>= 0)");
		goto done;
	}
	*how = FM_RESET_TIMESTAMP;
	*ts_ms = (int64_t)json_integer_value(ts);
	rc = 0;
done:
	json_decref(doc);
	return rc;
}

int
fm_codec_parse_group_put(const char *data, size_t len, int *fifo, char **cause)
{
	static const char *const names[] = {"fifo", NULL};
	json_t *doc, *v;
	int rc = -FM_E_INVALID;

	*fifo = -1;
	if (fm_codec_blank(data, len))
		return 0;
	if ((doc = load(data, len, cause)) == NULL)
		return -FM_E_INVALID;
	if (only_members(doc, names, cause) < 0)
		goto done;
	v = json_object_get(doc, "fifo");
	if (v != NULL && !json_is_boolean(v)) {
		fail(cause, "fifo must be true or false");
		goto done;
	}
	if (v != NULL)
		*fifo = json_is_true(v);
	rc = 0;
done:
	json_decref(doc);
	return rc;
}

void
fm_codec_message_receipt(struct fm_json *j, const char *key,
    const struct fm_message *m, const char *receipt)
{
	fm_codec_message_open(j, key, m);
	fm_json_str(j, "receiptHandle", receipt);
	fm_json_obj_end(j);
}
