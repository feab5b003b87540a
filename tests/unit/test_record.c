/*
 * test_record.c - unit tests of the commit log record codec: round trips
 * of every field, the limits, and that decode refuses every damaged or
 * inconsistent record.
 *
 * Owns nothing beyond its test cases; each case is independent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/err.h"
#include "base/xmalloc.h"
#include "store/record.h"

static void
fill_sample(struct fm_record *r)
{
	static const char keys[] = "k1\0key-two\0";
	static const char props[] = "region\0eu\0trace\0abc\0";
	static const unsigned char body[] = {0, 1, 2, 0xff, 0xfe, 0, 'x'};

	memset(r, 0, sizeof *r);
	r->flags = 0x80000000u;
	r->queue_offset = 0x0102030405060708ull;
	r->queue_id = 7;
	r->reconsume_times = 3;
	r->born_ts = 1700000000123;
	r->store_ts = -1;
	r->deliver_at = INT64_MAX;
	r->log_offset = 0xfffffffffff0ull;
	r->topic = "orders";
	r->topic_len = 6;
	r->tag = "TagA";
	r->tag_len = 4;
	r->keys = keys;
	r->keys_len = sizeof keys - 1;
	r->props = props;
	r->props_len = sizeof props - 1;
	r->body = body;
	r->body_len = sizeof body;
}

static unsigned char *
encode_new(struct fm_record *r)
{
	unsigned char *buf = xmalloc(fm_record_size(r));

	assert_int_equal(fm_record_encode(r, buf), 0);
	assert_int_equal(r->size, fm_record_size(r));
	return buf;
}

static void
assert_same(const struct fm_record *a, const struct fm_record *b)
{
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->log_offset, b->log_offset);
	assert_int_equal(a->queue_offset, b->queue_offset);
	assert_int_equal(a->queue_id, b->queue_id);
	assert_int_equal(a->reconsume_times, b->reconsume_times);
	assert_true(a->born_ts == b->born_ts);
	assert_true(a->store_ts == b->store_ts);
	assert_true(a->deliver_at == b->deliver_at);
	assert_int_equal(a->topic_len, b->topic_len);
	assert_memory_equal(a->topic, b->topic, a->topic_len);
	assert_int_equal(a->tag_len, b->tag_len);
	if (a->tag_len)
		assert_memory_equal(a->tag, b->tag, a->tag_len);
	assert_int_equal(a->keys_len, b->keys_len);
	if (a->keys_len)
		assert_memory_equal(a->keys, b->keys, a->keys_len);
	assert_int_equal(a->props_len, b->props_len);
	if (a->props_len)
		assert_memory_equal(a->props, b->props, a->props_len);
	assert_int_equal(a->body_len, b->body_len);
	if (a->body_len)
		assert_memory_equal(a->body, b->body, a->body_len);
}

static void
round_trip(struct fm_record *r)
{
	unsigned char *buf = encode_new(r);
	struct fm_record d;

	assert_int_equal(fm_record_decode(buf, r->size, &d), 0);
	assert_same(r, &d);
	/* Views point into the encoded bytes. */
	assert_true((const unsigned char *)d.topic >= buf &&
	    (const unsigned char *)d.topic + d.topic_len <= buf + r->size);
	assert_true(
	    (const unsigned char *)d.body + d.body_len == buf + r->size);
	free(buf);
}

static void
test_round_trip(void **state)
{
	struct fm_record r;

	fill_sample(&r);
	round_trip(&r);
}

static void
test_round_trip_empty(void **state)
{
	struct fm_record r;
	unsigned char *buf;
	struct fm_record d;

	memset(&r, 0, sizeof r);
	r.topic = "t";
	r.topic_len = 1;
	round_trip(&r);
	assert_int_equal(fm_record_size(&r), FM_REC_HEADER_SIZE + 1);
	buf = encode_new(&r);
	assert_int_equal(fm_record_decode(buf, r.size, &d), 0);
	assert_null(d.tag);
	assert_int_equal(d.keys_len + d.props_len + d.body_len, 0);
	free(buf);
	r.topic_len = 0;
	r.topic = NULL;
	round_trip(&r);
}

static void
test_round_trip_maximal(void **state)
{
	char topic[FM_REC_MAX_TOPIC], tag[FM_REC_MAX_TAG];
	size_t big = 1u << 20;
	unsigned char *body = xmalloc(big);
	char *keys = xmalloc(70000), *props = xmalloc(70000);
	struct fm_record r;

	memset(topic, 'T', sizeof topic);
	memset(tag, 'g', sizeof tag);
	for (size_t i = 0; i < big; i++)
		body[i] = (unsigned char)(i * 131 + (i >> 9));
	memset(keys, 'k', 70000);
	memset(props, 'p', 70000);
	fill_sample(&r);
	r.topic = topic;
	r.topic_len = sizeof topic;
	r.tag = tag;
	r.tag_len = sizeof tag;
	r.keys = keys;
	r.keys_len = 70000;
	r.props = props;
	r.props_len = 70000;
	r.body = body;
	r.body_len = (uint32_t)big;
	r.queue_id = UINT32_MAX;
	r.reconsume_times = UINT32_MAX;
	r.queue_offset = UINT64_MAX;
	r.log_offset = UINT64_MAX;
	r.born_ts = INT64_MIN;
	round_trip(&r);
	free(body);
	free(keys);
	free(props);
}

static void
test_limits(void **state)
{
	char topic[FM_REC_MAX_TOPIC + 1], tag[FM_REC_MAX_TAG + 1];
	unsigned char buf[1024];
	struct fm_record r;

	memset(topic, 'T', sizeof topic);
	memset(tag, 'g', sizeof tag);
	fill_sample(&r);
	r.topic = topic;
	r.topic_len = sizeof topic;
	assert_int_equal(fm_record_encode(&r, buf), -FM_E_INVALID);
	fill_sample(&r);
	r.tag = tag;
	r.tag_len = sizeof tag;
	assert_int_equal(fm_record_encode(&r, buf), -FM_E_INVALID);
	fill_sample(&r);
	r.body = NULL;
	assert_int_equal(fm_record_encode(&r, buf), -FM_E_INVALID);
	/* Over 4 GiB in total: refused before anything is written. */
	fill_sample(&r);
	r.body_len = UINT32_MAX;
	assert_int_equal(fm_record_encode(&r, buf), -FM_E_TOO_LARGE);
}

/* Flipping any bit of any byte is caught: the header by the size and
 * magic checks, the rest by the CRC. */
static void
test_flipped_bytes(void **state)
{
	struct fm_record r, d;
	unsigned char *buf;

	fill_sample(&r);
	buf = encode_new(&r);
	for (uint32_t i = 0; i < r.size; i++)
		for (int bit = 0; bit < 8; bit++) {
			buf[i] ^= (unsigned char)(1u << bit);
			assert_int_equal(
			    fm_record_decode(buf, r.size, &d), -FM_E_CORRUPT);
			buf[i] ^= (unsigned char)(1u << bit);
		}
	assert_int_equal(fm_record_decode(buf, r.size, &d), 0);
	free(buf);
}

static void
put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void
test_bad_lengths(void **state)
{
	struct fm_record r, d;
	unsigned char *buf;

	fill_sample(&r);
	buf = encode_new(&r);
	/* Too short for a header, and a length that disagrees with size. */
	assert_int_equal(fm_record_decode(buf, 10, &d), -FM_E_CORRUPT);
	assert_int_equal(fm_record_decode(buf, r.size - 1, &d), -FM_E_CORRUPT);
	/* Field lengths that overflow 32 bits when summed must not wrap
	 * around to the right total. */
	put32(buf + 68, 0xffffffffu);
	put32(buf + 72, 0xffffffffu);
	assert_int_equal(fm_record_decode(buf, r.size, &d), -FM_E_CORRUPT);
	free(buf);
	/* A blank filler is not a record. */
	buf = xcalloc(1, 100);
	fm_record_encode_blank(buf, 100);
	assert_int_equal(fm_record_decode(buf, 100, &d), -FM_E_CORRUPT);
	free(buf);
}

static void
test_blank_and_peek(void **state)
{
	unsigned char buf[12], rec[256];
	uint32_t size, magic;
	struct fm_record r;

	fm_record_encode_blank(buf, 65536);
	fm_record_peek(buf, &size, &magic);
	assert_int_equal(size, 65536);
	assert_int_equal(magic, FM_REC_BLANK_MAGIC);
	assert_memory_equal(buf + 8, "\0\0\0\0", 4);
	/* Explicitly little-endian on disk. */
	assert_memory_equal(buf, "\x00\x00\x01\x00", 4);
	fill_sample(&r);
	assert_int_equal(fm_record_encode(&r, rec), 0);
	fm_record_peek(rec, &size, &magic);
	assert_int_equal(size, r.size);
	assert_int_equal(magic, FM_REC_MAGIC);
	assert_memory_equal(rec + 4, "1QMF", 4);
}

static void
test_tag_hash(void **state)
{
	assert_true(fm_tag_hash(NULL, 0) == 0);
	assert_true(fm_tag_hash("x", 0) == 0);
	/* FNV-1a test vectors: the value is stored on disk, so it must never
	 * change. */
	assert_true(fm_tag_hash("a", 1) == 0xaf63dc4c8601ec8cull);
	assert_true(fm_tag_hash("foobar", 6) == 0x85944171f73967e8ull);
	assert_true(fm_tag_hash("TagA", 4) != fm_tag_hash("TagB", 4));
	assert_true(fm_tag_hash("TagA", 4) == fm_tag_hash("TagA", 4));
	for (int c = 0; c < 256; c++) {
		char ch = (char)c;
		assert_true(fm_tag_hash(&ch, 1) != 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_round_trip_empty),
	    cmocka_unit_test(test_round_trip_maximal),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_flipped_bytes),
	    cmocka_unit_test(test_bad_lengths),
	    cmocka_unit_test(test_blank_and_peek),
	    cmocka_unit_test(test_tag_hash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
