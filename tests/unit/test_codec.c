/*
 * test_codec.c - the JSON codec: messages encoded by the fast encoder and
 * parsed back with jansson equal the input (text, binary as base64,
 * invalid UTF-8, control characters, empty body); UTF-8 and base64
 * corner cases; NDJSON batches, good and bad lines; the error form.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "base/err.h"
#include "codec/codec.h"

/* Encode a message built from the arguments and parse it back. */
static json_t *
roundtrip(const void *body, size_t body_len, const char *tag, size_t tag_len,
    const char *keys, size_t keys_len, const char *props, size_t props_len)
{
	struct fm_message m;
	struct fm_buf out = FM_BUF_INIT;
	struct fm_json j;
	json_error_t jerr;
	json_t *doc;

	memset(&m, 0, sizeof(m));
	strcpy(m.msg_id, "0123456789abcdef0123456789abcdef");
	m.rec.topic = "orders";
	m.rec.topic_len = 6;
	m.rec.queue_id = 3;
	m.rec.queue_offset = 42;
	m.rec.tag = tag;
	m.rec.tag_len = (uint16_t)tag_len;
	m.rec.keys = keys;
	m.rec.keys_len = (uint32_t)keys_len;
	m.rec.props = props;
	m.rec.props_len = (uint32_t)props_len;
	m.rec.born_ts = 1764057600000;
	m.rec.store_ts = 1764057600003;
	m.rec.reconsume_times = 2;
	m.rec.body = body;
	m.rec.body_len = (uint32_t)body_len;
	fm_json_init(&j, &out);
	fm_codec_message(&j, NULL, &m);
	doc = json_loadb(out.data, out.len, JSON_ALLOW_NUL, &jerr);
	if (doc == NULL)
		fail_msg("not JSON: %s: %s", jerr.text, out.data);
	fm_buf_free(&out);
	return doc;
}

static void
assert_body(json_t *doc, const void *body, size_t len, const char *enc)
{
	json_t *b = json_object_get(doc, "body");

	assert_string_equal(
	    json_string_value(json_object_get(doc, "bodyEncoding")), enc);
	if (strcmp(enc, "text") == 0) {
		assert_int_equal(json_string_length(b), len);
		assert_memory_equal(json_string_value(b), body, len);
	} else {
		struct fm_buf dec = FM_BUF_INIT;

		assert_int_equal(fm_codec_unbase64(&dec, json_string_value(b),
		                     json_string_length(b)),
		    0);
		assert_int_equal(dec.len, len);
		assert_memory_equal(dec.data, body, len);
		fm_buf_free(&dec);
	}
}

static void
test_message_text(void **state)
{
	const char keys[] = "order-42\0k2\0";
	const char props[] = "region\0eu\0empty\0\0";
	json_t *doc = roundtrip("hello \xc3\xa9\xe2\x82\xac", 11, "created", 7,
	    keys, sizeof(keys) - 1, props, sizeof(props) - 1);
	json_t *k = json_object_get(doc, "keys");
	json_t *p = json_object_get(doc, "properties");

	assert_string_equal(json_string_value(json_object_get(doc, "msgId")),
	    "0123456789abcdef0123456789abcdef");
	assert_string_equal(
	    json_string_value(json_object_get(doc, "topic")), "orders");
	assert_int_equal(
	    json_integer_value(json_object_get(doc, "queueId")), 3);
	assert_int_equal(
	    json_integer_value(json_object_get(doc, "queueOffset")), 42);
	assert_string_equal(
	    json_string_value(json_object_get(doc, "tag")), "created");
	assert_int_equal(json_array_size(k), 2);
	assert_string_equal(
	    json_string_value(json_array_get(k, 0)), "order-42");
	assert_string_equal(json_string_value(json_array_get(k, 1)), "k2");
	assert_int_equal(json_object_size(p), 2);
	assert_string_equal(
	    json_string_value(json_object_get(p, "region")), "eu");
	assert_string_equal(json_string_value(json_object_get(p, "empty")), "");
	assert_int_equal(
	    json_integer_value(json_object_get(doc, "bornTimestamp")),
	    1764057600000);
	assert_int_equal(
	    json_integer_value(json_object_get(doc, "storeTimestamp")),
	    1764057600003);
	assert_int_equal(
	    json_integer_value(json_object_get(doc, "reconsumeTimes")), 2);
	assert_body(doc, "hello \xc3\xa9\xe2\x82\xac", 11, "text");
	json_decref(doc);
}

static void
test_message_control_chars(void **state)
{
	static const char body[] = "a\"b\\c\n\r\t\b\f\x01\x1f\x7f/\0end";
	json_t *doc =
	    roundtrip(body, sizeof(body) - 1, NULL, 0, NULL, 0, NULL, 0);

	assert_body(doc, body, sizeof(body) - 1, "text");
	assert_true(json_is_null(json_object_get(doc, "tag")));
	assert_int_equal(json_array_size(json_object_get(doc, "keys")), 0);
	assert_int_equal(
	    json_object_size(json_object_get(doc, "properties")), 0);
	json_decref(doc);
}

static void
test_message_binary(void **state)
{
	unsigned char body[256];

	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (unsigned char)(255 - i);
	for (size_t n = 1; n <= sizeof(body); n += 37) {
		json_t *doc = roundtrip(body, n, NULL, 0, NULL, 0, NULL, 0);

		assert_body(doc, body, n, "base64");
		json_decref(doc);
	}
}

static void
test_message_invalid_utf8(void **state)
{
	static const char *const bad[] = {"\xc0\x80", "\xed\xa0\x80",
	    "\xf4\x90\x80\x80", "abc\xe2\x82", "\xff", "\x80x",
	    "\xf8\x88\x80\x80\x80"};
	const char tag[] = "t\xffg";
	const char props[] = "n\xc3\0v\xe2\0";

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *doc = roundtrip(bad[i], strlen(bad[i]), tag,
		    sizeof(tag) - 1, "k\xfe\0", 3, props, sizeof(props) - 1);
		json_t *p = json_object_get(doc, "properties");

		assert_body(doc, bad[i], strlen(bad[i]), "base64");
		assert_string_equal(
		    json_string_value(json_object_get(doc, "tag")),
		    "t\xef\xbf\xbdg");
		assert_string_equal(json_string_value(json_array_get(
		                        json_object_get(doc, "keys"), 0)),
		    "k\xef\xbf\xbd");
		assert_string_equal(
		    json_string_value(json_object_get(p, "n\xef\xbf\xbd")),
		    "v\xef\xbf\xbd");
		json_decref(doc);
	}
}

static void
test_message_empty_body(void **state)
{
	json_t *doc = roundtrip("", 0, "", 0, NULL, 0, NULL, 0);

	assert_body(doc, "", 0, "text");
	assert_true(json_is_null(json_object_get(doc, "tag")));
	json_decref(doc);
}

static void
test_utf8_valid(void **state)
{
	assert_true(fm_codec_utf8_valid("", 0));
	assert_true(fm_codec_utf8_valid("plain", 5));
	assert_true(fm_codec_utf8_valid("\xf0\x9f\x98\x80", 4));
	assert_true(fm_codec_utf8_valid("\xed\x9f\xbf", 3));
	assert_true(fm_codec_utf8_valid("\xf4\x8f\xbf\xbf", 4));
	assert_false(fm_codec_utf8_valid("\xc1\xbf", 2));
	assert_false(fm_codec_utf8_valid("\xe0\x80\xaf", 3));
	assert_false(fm_codec_utf8_valid("\xed\xbf\xbf", 3));
	assert_false(fm_codec_utf8_valid("\xf0\x8f\xbf\xbf", 4));
	assert_false(fm_codec_utf8_valid("\xf0\x9f\x98", 3));
	assert_false(fm_codec_utf8_valid("\xc3(", 2));
}

static void
test_base64(void **state)
{
	static const char *const enc[] = {
	    "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	struct fm_buf b = FM_BUF_INIT;

	for (size_t n = 0; n <= 6; n++) {
		fm_buf_reset(&b);
		fm_codec_base64(&b, "foobar", n);
		assert_string_equal(b.data ? b.data : "", enc[n]);
		fm_buf_reset(&b);
		assert_int_equal(
		    fm_codec_unbase64(&b, enc[n], strlen(enc[n])), 0);
		assert_int_equal(b.len, n);
		if (n > 0)
			assert_memory_equal(b.data, "foobar", n);
	}
	fm_buf_reset(&b);
	assert_int_equal(fm_codec_unbase64(&b, "Zm9vYg", 6), 0);
	assert_int_equal(b.len, 4);
	assert_int_equal(fm_codec_unbase64(&b, "Zm9v!A==", 8), -FM_E_INVALID);
	assert_int_equal(fm_codec_unbase64(&b, "Zm9vY", 5), -FM_E_INVALID);
	assert_int_equal(fm_codec_unbase64(&b, "Zm=v", 4), -FM_E_INVALID);
	fm_buf_free(&b);
}

static void
test_writer(void **state)
{
	struct fm_buf out = FM_BUF_INIT;
	struct fm_json j;

	fm_json_init(&j, &out);
	fm_json_obj(&j, NULL);
	fm_json_arr(&j, "a");
	fm_json_i64(&j, NULL, -5);
	fm_json_u64(&j, NULL, UINT64_MAX);
	fm_json_i64(&j, NULL, INT64_MIN);
	fm_json_i64(&j, NULL, INT64_MAX);
	fm_json_u64(&j, NULL, 0);
	fm_json_obj(&j, NULL);
	fm_json_obj_end(&j);
	fm_json_arr_end(&j);
	fm_json_dbl(&j, "r", 0.25);
	fm_json_dbl(&j, "nan", 0.0 / 0.0);
	fm_json_bool(&j, "t", 1);
	fm_json_str(&j, "n", NULL);
	fm_json_str(&j, "q\"", "x");
	fm_json_obj_end(&j);
	assert_string_equal(out.data,
	    "{\"a\":[-5,18446744073709551615,-9223372036854775808,"
	    "9223372036854775807,0,{}],\"r\":0.25,\"nan\":null,"
	    "\"t\":true,\"n\":null,\"q\\\"\":\"x\"}");
	fm_buf_free(&out);
}

static void
test_error_json(void **state)
{
	struct fm_buf out = FM_BUF_INIT;
	json_t *doc, *e;

	fm_codec_error(&out, "TOPIC_NOT_FOUND", "topic 'x\"' does not exist");
	doc = json_loads(out.data, 0, NULL);
	assert_non_null(doc);
	e = json_object_get(doc, "error");
	assert_int_equal(json_object_size(doc), 1);
	assert_string_equal(
	    json_string_value(json_object_get(e, "code")), "TOPIC_NOT_FOUND");
	assert_string_equal(json_string_value(json_object_get(e, "message")),
	    "topic 'x\"' does not exist");
	json_decref(doc);
	fm_buf_free(&out);
}

static void
test_split_keys(void **state)
{
	char s[] = " a, b ,,c,";
	size_t n;
	const char **k = fm_codec_split_keys(s, &n);

	assert_int_equal(n, 3);
	assert_string_equal(k[0], "a");
	assert_string_equal(k[1], "b");
	assert_string_equal(k[2], "c");
	free(k);
}

static void
test_batch_good(void **state)
{
	static const char body[] =
	    "{\"body\": \"one\", \"tag\": \"t1\", \"keys\": [\"k1\", \"k2\"]}\n"
	    "\n"
	    "{\"bodyBase64\": \"AP8=\", \"keys\": \"a,b\", "
	    "\"properties\": {\"region\": \"eu\"}, \"delay\": 1.5}\r\n"
	    "{\"body\": \"x\\u0000y\", \"shardingKey\": \"s\", "
	    "\"deliverAt\": 1000}";
	struct fm_batch b;
	char *cause = NULL;

	assert_int_equal(fm_codec_parse_batch(body, sizeof(body) - 1, 5000,
	                     3600, 100, &b, &cause),
	    0);
	assert_int_equal(b.n, 3);
	assert_int_equal(b.msgs[0].body_len, 3);
	assert_memory_equal(b.msgs[0].body, "one", 3);
	assert_string_equal(b.msgs[0].tag, "t1");
	assert_int_equal(b.msgs[0].nkeys, 2);
	assert_string_equal(b.msgs[0].keys[1], "k2");
	assert_int_equal(b.msgs[0].deliver_at, 0);
	assert_int_equal(b.msgs[1].body_len, 2);
	assert_memory_equal(b.msgs[1].body, "\x00\xff", 2);
	assert_int_equal(b.msgs[1].nkeys, 2);
	assert_string_equal(b.msgs[1].keys[0], "a");
	assert_int_equal(b.msgs[1].nprops, 1);
	assert_string_equal(b.msgs[1].props[0].name, "region");
	assert_string_equal(b.msgs[1].props[0].value, "eu");
	assert_int_equal(b.msgs[1].deliver_at, 6500);
	assert_null(b.msgs[1].tag);
	assert_int_equal(b.msgs[2].body_len, 3);
	assert_memory_equal(b.msgs[2].body, "x\0y", 3);
	assert_string_equal(b.msgs[2].sharding_key, "s");
	assert_int_equal(b.msgs[2].deliver_at, 1000);
	fm_codec_batch_free(&b);
}

static void
expect_bad(const char *body, const char *want, int want_err)
{
	struct fm_batch b;
	char *cause = NULL;

	assert_int_equal(
	    fm_codec_parse_batch(body, strlen(body), 0, 60, 2, &b, &cause),
	    want_err);
	assert_non_null(cause);
	if (strstr(cause, want) == NULL)
		fail_msg("cause '%s' lacks '%s'", cause, want);
	assert_int_equal(b.n, 0);
	assert_null(b.msgs);
	free(cause);
}

static void
test_batch_bad(void **state)
{
	expect_bad("{\"body\":\"a\"}\n{\"body\":", "line 2: invalid JSON",
	    -FM_E_INVALID);
	expect_bad("\n\n[1]", "line 3: expected a JSON object", -FM_E_INVALID);
	expect_bad(
	    "{\"bdy\":\"a\"}", "line 1: unknown member 'bdy'", -FM_E_INVALID);
	expect_bad("{\"body\":\"a\",\"bodyBase64\":\"YQ==\"}",
	    "line 1: exactly one of body", -FM_E_INVALID);
	expect_bad("{\"tag\":\"a\"}", "exactly one of body", -FM_E_INVALID);
	expect_bad(
	    "{\"body\":1}", "line 1: body must be a string", -FM_E_INVALID);
	expect_bad(
	    "{\"bodyBase64\":\"**\"}", "bodyBase64 must be", -FM_E_INVALID);
	expect_bad("{\"body\":\"a\",\"properties\":{\"p\":1}}",
	    "each property value must be a string", -FM_E_INVALID);
	expect_bad("{\"body\":\"a\",\"keys\":[\"k\\u0000\"]}",
	    "must not contain NUL", -FM_E_INVALID);
	expect_bad(
	    "{\"body\":\"a\",\"keys\":5}", "keys must be", -FM_E_INVALID);
	expect_bad(
	    "{\"body\":\"a\",\"delay\":61}", "delay must be", -FM_E_INVALID);
	expect_bad(
	    "{\"body\":\"a\",\"delay\":-1}", "delay must be", -FM_E_INVALID);
	expect_bad("{\"body\":\"a\",\"delay\":1,\"deliverAt\":5}", "not both",
	    -FM_E_INVALID);
	expect_bad("{\"body\":\"a\",\"body\":\"b\"}", "line 1: invalid JSON",
	    -FM_E_INVALID);
	expect_bad("{\"body\":\"a\",\"tag\":[]}", "tag must be a string",
	    -FM_E_INVALID);
	expect_bad("\n \n", "no messages", -FM_E_INVALID);
	expect_bad("{\"body\":\"a\"}\n{\"body\":\"a\"}\n{\"body\":\"a\"}",
	    "line 3: a batch holds at most 2", -FM_E_TOO_LARGE);
}

static void
test_topic_put(void **state)
{
	static const char put8[] = "{\"queues\": 8, \"perm\": \"r\"}";
	uint32_t q, p;
	char *cause = NULL;

	assert_int_equal(fm_codec_parse_topic_put("", 0, &q, &p, &cause), 0);
	assert_int_equal(q, 0);
	assert_int_equal(p, 0);
	assert_int_equal(
	    fm_codec_parse_topic_put(put8, strlen(put8), &q, &p, &cause), 0);
	assert_int_equal(q, 8);
	assert_int_equal(p, FM_PERM_READ);
	assert_int_equal(
	    fm_codec_parse_topic_put("{\"queues\": 0}", 13, &q, &p, &cause),
	    -FM_E_INVALID);
	assert_non_null(strstr(cause, "queues"));
	free(cause);
	assert_int_equal(
	    fm_codec_parse_topic_put("{\"perm\": \"x\"}", 13, &q, &p, &cause),
	    -FM_E_INVALID);
	free(cause);
	assert_int_equal(
	    fm_codec_parse_topic_put("[", 1, &q, &p, &cause), -FM_E_INVALID);
	free(cause);
	assert_string_equal(fm_codec_perm_name(6), "rw");
	assert_string_equal(fm_codec_perm_name(4), "r");
	assert_string_equal(fm_codec_perm_name(0), "-");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_message_text),
	    cmocka_unit_test(test_message_control_chars),
	    cmocka_unit_test(test_message_binary),
	    cmocka_unit_test(test_message_invalid_utf8),
	    cmocka_unit_test(test_message_empty_body),
	    cmocka_unit_test(test_utf8_valid),
	    cmocka_unit_test(test_base64),
	    cmocka_unit_test(test_writer),
	    cmocka_unit_test(test_error_json),
	    cmocka_unit_test(test_split_keys),
	    cmocka_unit_test(test_batch_good),
	    cmocka_unit_test(test_batch_bad),
	    cmocka_unit_test(test_topic_put),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
