#include "config.h"
/* test_base64.c - unit tests for libutil/base64.c: RFC 4648 vectors both
 * ways, and the strict decoder's refusals. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "../../libutil/base64.h"

static void test_vectors(void **state)
{
	/* RFC 4648 section 10. */
	static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const coded[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };

	(void)state;
	for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
		struct buf b = BUF_INIT;

		base64_encode(&b, plain[i], strlen(plain[i]));
		assert_string_equal(buf_cstr(&b), coded[i]);
		buf_reset(&b);
		assert_int_equal(base64_decode(&b, coded[i], strlen(coded[i])), 0);
		assert_int_equal(b.len, strlen(plain[i]));
		assert_memory_equal(b.data != NULL ? (const char *)b.data : "", plain[i], b.len);
		buf_free(&b);
	}
}

static void test_binary_round_trip(void **state)
{
	uint8_t all[256];
	struct buf coded = BUF_INIT, back = BUF_INIT;

	(void)state;
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	for (size_t n = 0; n <= sizeof all; n++) {
		buf_reset(&coded);
		buf_reset(&back);
		base64_encode(&coded, all, n);
		assert_int_equal(coded.len % 4, 0);
		assert_int_equal(base64_decode(&back, buf_cstr(&coded), coded.len), 0);
		assert_int_equal(back.len, n);
		if (n > 0)
			assert_memory_equal(back.data, all, n);
	}
	buf_free(&coded);
	buf_free(&back);
}

static void test_refusals(void **state)
{
	/* not canonical, or not base64 at all: PLAIN's "\0user\0pass" is
	 * AHVzZXIAcGFzcw== */
	static const char *const bad[] = {
		"=",            /* what SMTP means by an empty response: handled before decoding */
		"AHVzZXIAcGFzcw",     /* padding missing */
		"AHVzZXIAcGFzcw=",    /* length not a multiple of 4 */
		"AHVzZXIA cGFzcw==",  /* a space */
		"AHVzZXIAcGFzcw==\r", /* a line end */
		"AHVz=XIAcGFzcw==",   /* '=' inside */
		"AHVzZXIAcGFzcx==",   /* bits set under the padding */
		"Zm9=",               /* the same with one '=' */
		"Zm9v====",           /* a whole group of padding */
		"Zm-v",               /* URL-safe alphabet */
		"Zm9v\0\0\0\0",       /* NULs (length given explicitly below) */
	};
	struct buf b = BUF_INIT;

	(void)state;
	buf_append_str(&b, "kept");
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t len = i + 1 == sizeof bad / sizeof bad[0] ? 8 : strlen(bad[i]);

		assert_int_equal(base64_decode(&b, bad[i], len), -1);
		assert_string_equal(buf_cstr(&b), "kept"); /* nothing appended */
	}
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_binary_round_trip),
		cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
