/*
 * test_base.c - unit tests of the base layer: CRC-32C (both the hardware
 * and the portable path), the growable buffer, the error table.
 *
 * Owns nothing beyond its test cases; each case is independent.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/crc32c.h"
#include "base/err.h"

/* Defined in crc32c.c for this test only: the table path, always. */
uint32_t fm_crc32c_portable(uint32_t crc, const void *data, size_t len);

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

static const crc_fn crc_paths[] = {fm_crc32c, fm_crc32c_portable};

static void
test_crc_vectors(void **state)
{
	unsigned char zeros[32] = {0}, ones[32];

	memset(ones, 0xff, sizeof ones);
	for (size_t i = 0; i < 2; i++) {
		crc_fn f = crc_paths[i];
		assert_int_equal(f(0, "123456789", 9), 0xE3069283u);
		assert_int_equal(f(0, "", 0), 0);
		assert_int_equal(f(0, zeros, sizeof zeros), 0x8A9136AAu);
		assert_int_equal(f(0, ones, sizeof ones), 0x62A8AB43u);
	}
}

/* Any split of the input gives the one-shot CRC, on both paths and for
 * lengths around the 8-byte stride. */
static void
test_crc_incremental(void **state)
{
	unsigned char data[100];

	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (unsigned char)(i * 37 + 11);
	for (size_t p = 0; p < 2; p++) {
		crc_fn f = crc_paths[p];
		for (size_t len = 0; len <= sizeof data; len += 7) {
			uint32_t whole = f(0, data, len);
			assert_int_equal(whole, crc_paths[1 - p](0, data, len));
			for (size_t cut = 0; cut <= len; cut++)
				assert_int_equal(
				    f(f(0, data, cut), data + cut, len - cut),
				    whole);
		}
	}
}

static void
test_buf(void **state)
{
	struct fm_buf b = FM_BUF_INIT;
	size_t len;
	char *s;

	fm_buf_adds(&b, "hello");
	fm_buf_addc(&b, ' ');
	fm_buf_printf(&b, "%d-%s", 42, "x");
	assert_int_equal(b.len, 10);
	assert_string_equal(b.data, "hello 42-x");
	fm_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	for (int i = 0; i < 1000; i++)
		fm_buf_add(&b, "abc", 3);
	assert_int_equal(b.len, 3000);
	assert_true(b.cap > b.len);
	assert_int_equal(b.data[3000], '\0');
	assert_memory_equal(b.data + 2997, "abc", 3);
	fm_buf_add(&b, "", 0);
	assert_int_equal(b.len, 3000);
	s = fm_buf_steal(&b, &len);
	assert_int_equal(len, 3000);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	free(s);
	/* Stealing an empty buffer still gives memory to free. */
	s = fm_buf_steal(&b, &len);
	assert_non_null(s);
	assert_int_equal(len, 0);
	free(s);
	fm_buf_free(&b);
}

/* Readers reserve room, fill it, then claim it: growing the buffer in
 * between must keep what they wrote past len. */
static void
test_buf_reserve_keeps_unclaimed_bytes(void **state)
{
	struct fm_buf b = FM_BUF_INIT;

	(void)state;
	fm_buf_reserve(&b, 16);
	assert_int_equal(b.data[0], '\0');
	memcpy(b.data, "0123456789abcdef", 16);
	fm_buf_reserve(&b, 4096);
	assert_memory_equal(b.data, "0123456789abcdef", 16);
	b.len = 16;
	fm_buf_addc(&b, 'x');
	assert_string_equal(b.data, "0123456789abcdefx");
	fm_buf_free(&b);
}

static void
test_err(void **state)
{
	assert_string_equal(fm_err_name(0), "OK");
	assert_string_equal(fm_err_name(-FM_E_NOT_FOUND), "NOT_FOUND");
	assert_string_equal(fm_err_name(FM_E_NOT_FOUND), "NOT_FOUND");
	assert_string_equal(fm_err_name(-FM_E_BUSY), "BUSY");
	assert_string_equal(fm_err_msg(-FM_E_NOSPC), "no space left on device");
	/* Out of range codes never index past the tables. */
	assert_string_equal(fm_err_name(-FM_E__COUNT - 5), "IO");
	assert_non_null(fm_err_msg(1000000));
	for (int e = 1; e < FM_E__COUNT; e++) {
		assert_non_null(fm_err_name(-e));
		assert_true(strlen(fm_err_msg(-e)) > 0);
	}
	assert_int_equal(fm_err_from_errno(0), 0);
	assert_int_equal(fm_err_from_errno(ENOSPC), -FM_E_NOSPC);
	assert_int_equal(fm_err_from_errno(EIO), -FM_E_IO);
	assert_int_equal(fm_err_from_errno(ENOENT), -FM_E_NOT_FOUND);
	assert_int_equal(fm_err_from_errno(EROFS), -FM_E_NOT_WRITABLE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc_vectors),
	    cmocka_unit_test(test_crc_incremental),
	    cmocka_unit_test(test_buf),
	    cmocka_unit_test(test_buf_reserve_keeps_unclaimed_bytes),
	    cmocka_unit_test(test_err),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
