/*
 * test_msgid.c - msgId encoding: round trips, the exact layout, and
 * refusal of every malformed input. Links msgid.c alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/err.h"
#include "broker/msgid.h"

static void
round_trip(void **state)
{
	static const uint64_t offsets[] = {
	    0, 1, 4096, 0x123456789abcdefull, UINT64_MAX};
	struct fm_msgid_addr a = {0x7f000001u, 8080};

	for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
		char id[FM_MSGID_HEX + 1];
		struct fm_msgid_addr b;
		uint64_t off;

		fm_msgid_encode(&a, offsets[i], id);
		assert_int_equal(strlen(id), FM_MSGID_HEX);
		assert_int_equal(fm_msgid_decode(id, &b, &off), 0);
		assert_int_equal(b.ip, a.ip);
		assert_int_equal(b.port, a.port);
		assert_true(off == offsets[i]);
	}
}

static void
exact_layout(void **state)
{
	struct fm_msgid_addr a = {0xC0A80102u, 9876};
	char id[FM_MSGID_HEX + 1];

	fm_msgid_encode(&a, 0x0102030405060708ull, id);
	assert_string_equal(id, "C0A80102000026940102030405060708");
}

static void
lowercase_accepted(void **state)
{
	struct fm_msgid_addr b;
	uint64_t off;

	assert_int_equal(
	    fm_msgid_decode("c0a80102000026940102030405060aff", &b, &off), 0);
	assert_int_equal(b.ip, 0xC0A80102u);
	assert_true(off == 0x0102030405060affull);
}

static void
bad_input(void **state)
{
	static const char *const bad[] = {
	    "",
	    "C0A8010200002694010203040506070", /* 31 */
	    "C0A801020000269401020304050607080", /* 33 */
	    "C0A8010200002694010203040506070G",
	    "C0A80102 0002694010203040506070",
	    "-0A80102000026940102030405060708",
	};
	struct fm_msgid_addr b;
	uint64_t off;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(
		    fm_msgid_decode(bad[i], &b, &off), -FM_E_INVALID);
	assert_int_equal(fm_msgid_decode(NULL, &b, &off), -FM_E_INVALID);
}

static void
ip_parse_and_format(void **state)
{
	uint32_t ip;
	char s[32];
	struct fm_msgid_addr a;

	assert_int_equal(fm_msgid_parse_ip("10.1.2.3", &ip), 0);
	assert_int_equal(ip, 0x0A010203u);
	assert_int_equal(fm_msgid_parse_ip("localhost", &ip), -FM_E_INVALID);
	assert_int_equal(fm_msgid_parse_ip("1.2.3", &ip), -FM_E_INVALID);
	a.ip = ip;
	a.port = 8081;
	fm_msgid_addr_format(&a, s, sizeof(s));
	assert_string_equal(s, "10.1.2.3:8081");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(round_trip),
	    cmocka_unit_test(exact_layout),
	    cmocka_unit_test(lowercase_accepted),
	    cmocka_unit_test(bad_input),
	    cmocka_unit_test(ip_parse_and_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
