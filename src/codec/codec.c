/*
 * codec.c - the JSON codec (see codec.h): writer, message encoder,
 * escaping, UTF-8, base64, and the jansson-based request parsers.
 *
 * Owns: nothing beyond the fm_batch it fills. The writer keeps one "first
 * member" flag per nesting level so commas are placed without look-back.
 * Invariant: jansson is included in src/codec/ and nowhere else.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/err.h"
#include "base/xmalloc.h"
#include "codec/codec.h"

/* ---- the writer ---- */

void
fm_json_init(struct fm_json *j, struct fm_buf *out)
{
	j->out = out;
	j->depth = 0;
	j->first[0] = 1;
}

void
fm_json_resume_obj(struct fm_json *j, struct fm_buf *out)
{
	j->out = out;
	j->depth = 1;
	j->first[0] = 0;
	j->first[1] = 0;
}

/* Comma and key before a value at the current level. */
static void
member(struct fm_json *j, const char *key)
{
	if (!j->first[j->depth])
		fm_buf_addc(j->out, ',');
	j->first[j->depth] = 0;
	if (key != NULL) {
		fm_codec_escape(j->out, key, strlen(key));
		fm_buf_addc(j->out, ':');
	}
}

static void
open_level(struct fm_json *j, const char *key, char c)
{
	member(j, key);
	fm_buf_addc(j->out, c);
	if (j->depth + 1 < FM_JSON_MAX_DEPTH)
		j->depth++;
	j->first[j->depth] = 1;
}

static void
close_level(struct fm_json *j, char c)
{
	fm_buf_addc(j->out, c);
	if (j->depth > 0)
		j->depth--;
}

void
fm_json_obj(struct fm_json *j, const char *key)
{
	open_level(j, key, '{');
}

void
fm_json_obj_end(struct fm_json *j)
{
	close_level(j, '}');
}

void
fm_json_arr(struct fm_json *j, const char *key)
{
	open_level(j, key, '[');
}

void
fm_json_arr_end(struct fm_json *j)
{
	close_level(j, ']');
}

void
fm_json_str(struct fm_json *j, const char *key, const char *s)
{
	if (s == NULL) {
		fm_json_null(j, key);
		return;
	}
	fm_json_strn(j, key, s, strlen(s));
}

void
fm_json_strn(struct fm_json *j, const char *key, const char *s, size_t n)
{
	member(j, key);
	fm_codec_escape(j->out, s, n);
}

/* Decimal digits of v: every message carries half a dozen numbers, and
 * printf's machinery was a tenth of a WebSocket fan-out's CPU. */
static void
put_u64(struct fm_buf *out, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	fm_buf_add(out, tmp + sizeof(tmp) - n, n);
}

void
fm_json_i64(struct fm_json *j, const char *key, int64_t v)
{
	member(j, key);
	if (v < 0) {
		fm_buf_addc(j->out, '-');
		put_u64(j->out, (uint64_t)0 - (uint64_t)v);
	} else {
		put_u64(j->out, (uint64_t)v);
	}
}

void
fm_json_u64(struct fm_json *j, const char *key, uint64_t v)
{
	member(j, key);
	put_u64(j->out, v);
}

void
fm_json_dbl(struct fm_json *j, const char *key, double v)
{
	member(j, key);
	if (isfinite(v))
		fm_buf_printf(j->out, "%.6g", v);
	else
		fm_buf_adds(j->out, "null");
}

void
fm_json_bool(struct fm_json *j, const char *key, int v)
{
	member(j, key);
	fm_buf_adds(j->out, v ? "true" : "false");
}

void
fm_json_null(struct fm_json *j, const char *key)
{
	member(j, key);
	fm_buf_adds(j->out, "null");
}

/* ---- UTF-8 ---- */

/* Length (1..4) of the valid UTF-8 sequence at s, or 0 when invalid.
 * Ranges per RFC 3629: no overlongs, no surrogates, nothing above
 * U+10FFFF. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (n < len)
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

int
fm_codec_utf8_valid(const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i = 0;

	while (i < n) {
		size_t len;

		if (s[i] < 0x80) {
			i++;
			continue;
		}
		len = utf8_seq(s + i, n - i);
		if (len == 0)
			return 0;
		i += len;
	}
	return 1;
}

/* ---- escaping ---- */

/* Bytes that end a run of plain characters. */
static int
special(unsigned char c)
{
	return c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
}

static void
escape_ctl(struct fm_buf *out, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

	switch (c) {
	case '"':
		fm_buf_add(out, "\\\"", 2);
		break;
	case '\\':
		fm_buf_add(out, "\\\\", 2);
		break;
	case '\n':
		fm_buf_add(out, "\\n", 2);
		break;
	case '\r':
		fm_buf_add(out, "\\r", 2);
		break;
	case '\t':
		fm_buf_add(out, "\\t", 2);
		break;
	case '\b':
		fm_buf_add(out, "\\b", 2);
		break;
	case '\f':
		fm_buf_add(out, "\\f", 2);
		break;
	default:
		fm_buf_add(out, u, sizeof(u));
		break;
	}
}

void
fm_codec_escape(struct fm_buf *out, const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i = 0, start = 0;

	fm_buf_reserve(out, n + 2);
	fm_buf_addc(out, '"');
	while (i < n) {
		size_t len;

		if (!special(s[i])) {
			i++;
			continue;
		}
		fm_buf_add(out, s + start, i - start);
		if (s[i] < 0x80) {
			escape_ctl(out, s[i]);
			i++;
		} else if ((len = utf8_seq(s + i, n - i)) > 0) {
			fm_buf_add(out, s + i, len);
			i += len;
		} else {
			fm_buf_add(out, "\xef\xbf\xbd", 3);
			i++;
		}
		start = i;
	}
	fm_buf_add(out, s + start, i - start);
	fm_buf_addc(out, '"');
}

/* ---- base64 ---- */

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void
fm_codec_base64(struct fm_buf *out, const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i;
	char *d;

	fm_buf_reserve(out, (n + 2) / 3 * 4);
	d = out->data + out->len;
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v =
		    (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];

		*d++ = b64[v >> 18];
		*d++ = b64[(v >> 12) & 63];
		*d++ = b64[(v >> 6) & 63];
		*d++ = b64[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)s[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)s[i + 1] << 8;
		*d++ = b64[v >> 18];
		*d++ = b64[(v >> 12) & 63];
		*d++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		*d++ = '=';
	}
	out->len = (size_t)(d - out->data);
	out->data[out->len] = '\0';
}

static int
b64_value(char c)
{
	const char *p = c != '\0' ? strchr(b64, c) : NULL;

	return p != NULL ? (int)(p - b64) : -1;
}

/* Group of 2..4 sextets into 1..3 bytes. */
static int
b64_group(struct fm_buf *out, const char *s, size_t k)
{
	uint32_t v = 0;
	unsigned char bytes[3];

	for (size_t i = 0; i < 4; i++) {
		int x = i < k ? b64_value(s[i]) : 0;

		if (x < 0)
			return -FM_E_INVALID;
		v = v << 6 | (uint32_t)x;
	}
	bytes[0] = (unsigned char)(v >> 16);
	bytes[1] = (unsigned char)(v >> 8);
	bytes[2] = (unsigned char)v;
	fm_buf_add(out, bytes, k - 1);
	return 0;
}

int
fm_codec_unbase64(struct fm_buf *out, const char *s, size_t n)
{
	if (n % 4 == 0 && n >= 1 && s[n - 1] == '=')
		n -= (n >= 2 && s[n - 2] == '=') ? 2 : 1;
	if (n % 4 == 1)
		return -FM_E_INVALID;
	fm_buf_reserve(out, n / 4 * 3 + 3);
	for (size_t i = 0; i < n; i += 4) {
		size_t k = n - i < 4 ? n - i : 4;

		if (b64_group(out, s + i, k) != 0)
			return -FM_E_INVALID;
	}
	return 0;
}

/* ---- messages ---- */

/* "k1\0k2\0" as a JSON array of strings. */
static void
write_keys(struct fm_json *j, const char *keys, size_t len)
{
	size_t i = 0;

	fm_json_arr(j, "keys");
	while (i < len) {
		const char *end = memchr(keys + i, '\0', len - i);
		size_t n = end != NULL ? (size_t)(end - (keys + i)) : len - i;

		if (n > 0)
			fm_json_strn(j, NULL, keys + i, n);
		i += n + 1;
	}
	fm_json_arr_end(j);
}

/* "name\0value\0..." as a JSON object; a dangling name is dropped. */
static void
write_props(struct fm_json *j, const char *props, size_t len)
{
	size_t i = 0;

	fm_json_obj(j, "properties");
	while (i < len) {
		const char *name = props + i, *value;
		size_t nl = strnlen(name, len - i), vl;

		if (i + nl + 1 >= len)
			break;
		value = name + nl + 1;
		vl = strnlen(value, len - (i + nl + 1));
		member(j, NULL);
		fm_codec_escape(j->out, name, nl);
		fm_buf_addc(j->out, ':');
		fm_codec_escape(j->out, value, vl);
		i += nl + 1 + vl + 1;
	}
	fm_json_obj_end(j);
}

static void
write_body(struct fm_json *j, const void *body, size_t len)
{
	int text = fm_codec_utf8_valid(body, len);

	member(j, "body");
	if (text) {
		fm_codec_escape(j->out, body, len);
	} else {
		fm_buf_addc(j->out, '"');
		fm_codec_base64(j->out, body, len);
		fm_buf_addc(j->out, '"');
	}
	fm_json_str(j, "bodyEncoding", text ? "text" : "base64");
}

void
fm_codec_message_open(
    struct fm_json *j, const char *key, const struct fm_message *m)
{
	const struct fm_record *r = &m->rec;

	fm_json_obj(j, key);
	fm_json_str(j, "msgId", m->msg_id);
	fm_json_strn(j, "topic", r->topic, r->topic_len);
	fm_json_u64(j, "queueId", r->queue_id);
	fm_json_u64(j, "queueOffset", r->queue_offset);
	if (r->tag_len > 0)
		fm_json_strn(j, "tag", r->tag, r->tag_len);
	else
		fm_json_null(j, "tag");
	write_keys(j, r->keys, r->keys_len);
	write_props(j, r->props, r->props_len);
	fm_json_i64(j, "bornTimestamp", r->born_ts);
	fm_json_i64(j, "storeTimestamp", r->store_ts);
	fm_json_u64(j, "reconsumeTimes", r->reconsume_times);
	write_body(j, r->body, r->body_len);
}

void
fm_codec_message(struct fm_json *j, const char *key, const struct fm_message *m)
{
	fm_codec_message_open(j, key, m);
	fm_json_obj_end(j);
}

void
fm_codec_gap(struct fm_json *j, const char *key, const char *topic,
    uint32_t queue_id, uint64_t from, uint64_t to)
{
	fm_json_obj(j, key);
	fm_json_str(j, "topic", topic);
	fm_json_u64(j, "queueId", queue_id);
	fm_json_u64(j, "fromOffset", from);
	fm_json_u64(j, "toOffset", to);
	fm_json_u64(j, "lost", to > from ? to - from : 0);
	fm_json_obj_end(j);
}

void
fm_codec_error_receipt(struct fm_buf *out, const char *code,
    const char *message, const char *receipt)
{
	struct fm_json j;

	fm_json_init(&j, out);
	fm_json_obj(&j, NULL);
	fm_json_obj(&j, "error");
	fm_json_str(&j, "code", code);
	fm_json_str(&j, "message", message);
	fm_json_obj_end(&j);
	if (receipt != NULL)
		fm_json_str(&j, "receiptHandle", receipt);
	fm_json_obj_end(&j);
}

void
fm_codec_error(struct fm_buf *out, const char *code, const char *message)
{
	fm_codec_error_receipt(out, code, message, NULL);
}

/* ---- request bodies ---- */

const char **
fm_codec_split_keys(char *s, size_t *n)
{
	size_t cap = 1, k = 0;
	const char **keys;

	for (const char *p = s; *p != '\0'; p++)
		cap += *p == ',';
	keys = xcalloc(cap, sizeof(*keys));
	for (char *tok = s; tok != NULL;) {
		char *comma = strchr(tok, ','), *end;

		if (comma != NULL)
			*comma = '\0';
		while (*tok == ' ')
			tok++;
		end = tok + strlen(tok);
		while (end > tok && end[-1] == ' ')
			*--end = '\0';
		if (*tok != '\0')
			keys[k++] = tok;
		tok = comma != NULL ? comma + 1 : NULL;
	}
	*n = k;
	return keys;
}

static void
batch_own(struct fm_batch *b, void *p)
{
	if (b->nowned == b->owned_cap) {
		b->owned_cap = b->owned_cap ? b->owned_cap * 2 : 16;
		b->owned =
		    xreallocarray(b->owned, b->owned_cap, sizeof(*b->owned));
	}
	b->owned[b->nowned++] = p;
}

void
fm_codec_batch_free(struct fm_batch *b)
{
	for (size_t i = 0; i < b->nowned; i++)
		free(b->owned[i]);
	for (size_t i = 0; i < b->ndocs; i++)
		json_decref(b->docs[i]);
	free(b->owned);
	free(b->docs);
	free(b->msgs);
	memset(b, 0, sizeof(*b));
}

/* A string member without embedded NULs (NUL separates keys and
 * properties in the record), or NULL with *cause. */
static const char *
plain_string(json_t *v, const char *what, char **cause)
{
	const char *s = json_string_value(v);

	if (s == NULL) {
		xasprintf(cause, "%s must be a string", what);
		return NULL;
	}
	if (strlen(s) != json_string_length(v)) {
		xasprintf(cause, "%s must not contain NUL characters", what);
		return NULL;
	}
	return s;
}

static int
line_body(struct fm_batch *b, struct fm_pub_msg *m, json_t *obj, char **cause)
{
	json_t *text = json_object_get(obj, "body");
	json_t *b64v = json_object_get(obj, "bodyBase64");
	struct fm_buf dec = FM_BUF_INIT;

	if ((text == NULL) == (b64v == NULL)) {
		*cause =
		    xstrdup("exactly one of body and bodyBase64 is required");
		return -FM_E_INVALID;
	}
	if (text != NULL) {
		if (!json_is_string(text)) {
			*cause = xstrdup("body must be a string");
			return -FM_E_INVALID;
		}
		m->body = json_string_value(text);
		m->body_len = json_string_length(text);
		return 0;
	}
	if (!json_is_string(b64v) ||
	    fm_codec_unbase64(
	        &dec, json_string_value(b64v), json_string_length(b64v)) != 0) {
		fm_buf_free(&dec);
		*cause = xstrdup("bodyBase64 must be a base64 string");
		return -FM_E_INVALID;
	}
	m->body_len = dec.len;
	m->body = fm_buf_steal(&dec, NULL);
	batch_own(b, (void *)m->body);
	return 0;
}

static int
line_keys(struct fm_batch *b, struct fm_pub_msg *m, json_t *v, char **cause)
{
	const char **keys;
	size_t i;
	json_t *k;

	if (v == NULL)
		return 0;
	if (json_is_string(v)) {
		char *copy;

		if (plain_string(v, "keys", cause) == NULL)
			return -FM_E_INVALID;
		copy = xstrdup(json_string_value(v));
		batch_own(b, copy);
		keys = fm_codec_split_keys(copy, &m->nkeys);
		batch_own(b, keys);
		m->keys = keys;
		return 0;
	}
	if (!json_is_array(v)) {
		*cause =
		    xstrdup("keys must be an array of strings or a string");
		return -FM_E_INVALID;
	}
	keys = xcalloc(json_array_size(v) + 1, sizeof(*keys));
	batch_own(b, keys);
	json_array_foreach(v, i, k)
	{
		if ((keys[i] = plain_string(k, "each key", cause)) == NULL)
			return -FM_E_INVALID;
		if (keys[i][0] == '\0') {
			*cause = xstrdup("keys must not be empty strings");
			return -FM_E_INVALID;
		}
	}
	m->keys = keys;
	m->nkeys = json_array_size(v);
	return 0;
}

static int
line_props(struct fm_batch *b, struct fm_pub_msg *m, json_t *v, char **cause)
{
	struct fm_prop *props;
	const char *name;
	json_t *val;
	size_t i = 0;

	if (v == NULL)
		return 0;
	if (!json_is_object(v)) {
		*cause = xstrdup("properties must be an object of strings");
		return -FM_E_INVALID;
	}
	props = xcalloc(json_object_size(v) + 1, sizeof(*props));
	batch_own(b, props);
	json_object_foreach(v, name, val)
	{
		if (name[0] == '\0') {
			*cause = xstrdup("property names must not be empty");
			return -FM_E_INVALID;
		}
		props[i].name = name;
		if ((props[i].value = plain_string(
		         val, "each property value", cause)) == NULL)
			return -FM_E_INVALID;
		i++;
	}
	m->props = props;
	m->nprops = i;
	return 0;
}

static int
line_when(struct fm_pub_msg *m, json_t *obj, int64_t now_ms, double max_delay_s,
    char **cause)
{
	json_t *delay = json_object_get(obj, "delay");
	json_t *at = json_object_get(obj, "deliverAt");

	if (delay != NULL && at != NULL) {
		*cause = xstrdup("give delay or deliverAt, not both");
		return -FM_E_INVALID;
	}
	if (delay != NULL) {
		double d = json_number_value(delay);

		if (!json_is_number(delay) || !(d >= 0 && d <= max_delay_s)) {
			xasprintf(cause,
			    "delay must be a number of seconds in 0..%.0f",
			    max_delay_s);
			return -FM_E_INVALID;
		}
		m->deliver_at = d > 0 ? now_ms + (int64_t)(d * 1000 + 0.5) : 0;
	}
	if (at != NULL) {
		if (!json_is_integer(at) || json_integer_value(at) < 0 ||
		    json_integer_value(at) >
		        now_ms + (int64_t)(max_delay_s * 1000)) {
			xasprintf(cause,
			    "deliverAt must be epoch milliseconds at most %.0f "
			    "seconds ahead",
			    max_delay_s);
			return -FM_E_INVALID;
		}
		m->deliver_at = json_integer_value(at);
	}
	return 0;
}

static int
known_members(json_t *obj, char **cause)
{
	static const char *const names[] = {"body", "bodyBase64", "tag", "keys",
	    "shardingKey", "properties", "delay", "deliverAt"};
	const char *name;
	json_t *v;

	json_object_foreach(obj, name, v)
	{
		size_t i;

		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strcmp(name, names[i]) == 0)
				break;
		if (i == sizeof(names) / sizeof(names[0])) {
			xasprintf(cause, "unknown member '%s'", name);
			return -FM_E_INVALID;
		}
	}
	return 0;
}

static int
line_optional_string(
    json_t *obj, const char *name, const char **out, char **cause)
{
	json_t *v = json_object_get(obj, name);

	if (v == NULL || json_is_null(v))
		return 0;
	*out = plain_string(v, name, cause);
	return *out != NULL ? 0 : -FM_E_INVALID;
}

/* One line's object into m; on error *cause says why (without the line
 * number, which the caller adds). */
static int
parse_line(struct fm_batch *b, struct fm_pub_msg *m, json_t *obj,
    int64_t now_ms, double max_delay_s, char **cause)
{
	int err;

	if (!json_is_object(obj)) {
		*cause = xstrdup("expected a JSON object");
		return -FM_E_INVALID;
	}
	if ((err = known_members(obj, cause)) != 0 ||
	    (err = line_body(b, m, obj, cause)) != 0 ||
	    (err = line_optional_string(obj, "tag", &m->tag, cause)) != 0 ||
	    (err = line_optional_string(
	         obj, "shardingKey", &m->sharding_key, cause)) != 0 ||
	    (err = line_keys(b, m, json_object_get(obj, "keys"), cause)) != 0 ||
	    (err = line_props(
	         b, m, json_object_get(obj, "properties"), cause)) != 0 ||
	    (err = line_when(m, obj, now_ms, max_delay_s, cause)) != 0)
		return err;
	return 0;
}

int
fm_codec_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return 0;
	return 1;
}

static size_t
count_lines(const char *data, size_t len)
{
	size_t n = 1;

	for (const char *p = data;
	     (p = memchr(p, '\n', len - (size_t)(p - data))); p++)
		n++;
	return n;
}

static int
batch_line(struct fm_batch *b, const char *line, size_t n, size_t lineno,
    int64_t now_ms, double max_delay_s, char **cause)
{
	json_error_t jerr;
	json_t *doc;
	char *why = NULL;
	int err;

	doc =
	    json_loadb(line, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (doc == NULL) {
		xasprintf(
		    cause, "line %zu: invalid JSON: %s", lineno, jerr.text);
		return -FM_E_INVALID;
	}
	b->docs[b->ndocs++] = doc;
	err = parse_line(b, &b->msgs[b->n], doc, now_ms, max_delay_s, &why);
	if (err != 0) {
		xasprintf(cause, "line %zu: %s", lineno, why);
		free(why);
		return err;
	}
	b->n++;
	return 0;
}

int
fm_codec_parse_batch(const char *data, size_t len, int64_t now_ms,
    double max_delay_s, size_t max_msgs, struct fm_batch *out, char **cause)
{
	size_t lines = count_lines(data, len), lineno = 0, pos = 0;
	int err = 0;

	memset(out, 0, sizeof(*out));
	out->msgs = xcalloc(lines, sizeof(*out->msgs));
	out->docs = xcalloc(lines, sizeof(*out->docs));
	while (pos < len) {
		const char *line = data + pos,
		           *nl = memchr(line, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - line) : len - pos;

		lineno++;
		pos += n + 1;
		if (fm_codec_blank(line, n))
			continue;
		if (out->n == max_msgs) {
			xasprintf(cause,
			    "line %zu: a batch holds at most %zu "
			    "messages",
			    lineno, max_msgs);
			err = -FM_E_TOO_LARGE;
			goto fail;
		}
		err = batch_line(
		    out, line, n, lineno, now_ms, max_delay_s, cause);
		if (err != 0)
			goto fail;
	}
	if (out->n == 0) {
		*cause = xstrdup("the batch holds no messages");
		err = -FM_E_INVALID;
		goto fail;
	}
	return 0;
fail:
	fm_codec_batch_free(out);
	return err;
}

static int
parse_perm(json_t *v, uint32_t *perm, char **cause)
{
	static const struct {
		const char *name;
		uint32_t bits;
	} perms[] = {{"rw", FM_PERM_READ | FM_PERM_WRITE}, {"r", FM_PERM_READ},
	    {"w", FM_PERM_WRITE}};

	for (size_t i = 0; i < sizeof(perms) / sizeof(perms[0]); i++) {
		if ((json_is_string(v) &&
		        strcmp(json_string_value(v), perms[i].name) == 0) ||
		    (json_is_integer(v) &&
		        json_integer_value(v) == (json_int_t)perms[i].bits)) {
			*perm = perms[i].bits;
			return 0;
		}
	}
	*cause = xstrdup("perm must be \"rw\", \"r\" or \"w\" (or 6, 4, 2)");
	return -FM_E_INVALID;
}

static int
topic_members(json_t *doc, uint32_t *queues, uint32_t *perm, char **cause)
{
	const char *name;
	json_t *v;

	json_object_foreach(doc, name, v)
	{
		if (strcmp(name, "queues") == 0) {
			json_int_t q = json_integer_value(v);

			if (!json_is_integer(v) || q < 1 || q > 1024) {
				*cause = xstrdup("queues must be an integer "
				                 "in 1..1024");
				return -FM_E_INVALID;
			}
			*queues = (uint32_t)q;
		} else if (strcmp(name, "perm") == 0) {
			if (parse_perm(v, perm, cause) != 0)
				return -FM_E_INVALID;
		} else {
			xasprintf(cause, "unknown member '%s'", name);
			return -FM_E_INVALID;
		}
	}
	return 0;
}

int
fm_codec_parse_topic_put(const char *data, size_t len, uint32_t *queues,
    uint32_t *perm, char **cause)
{
	json_error_t jerr;
	json_t *doc = NULL;
	int err = 0;

	*queues = 0;
	*perm = 0;
	if (fm_codec_blank(data, len))
		return 0;
	doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL) {
		xasprintf(cause, "invalid JSON: %s", jerr.text);
		return -FM_E_INVALID;
	}
	if (!json_is_object(doc)) {
		*cause = xstrdup("expected a JSON object");
		err = -FM_E_INVALID;
		goto fail;
	}
	err = topic_members(doc, queues, perm, cause);
fail:
	json_decref(doc);
	return err;
}

const char *
fm_codec_perm_name(uint32_t perm)
{
	static const char *const names[] = {"-", "w", "r", "rw"};
	unsigned i =
	    ((perm & FM_PERM_READ) ? 2 : 0) | ((perm & FM_PERM_WRITE) ? 1 : 0);

	return names[i];
}
