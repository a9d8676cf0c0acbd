#include "config.h"
/* test_buf.c - unit tests for libutil/buf.c, the growable byte buffer. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libutil/buf.h"
#include "unit.h"

/* assert_terminated - the invariants every buffer keeps: data[len] is NUL
 * and the capacity covers it (or the buffer has never held memory). */
static void assert_terminated(const struct buf *b)
{
	if (b->data == NULL) {
		assert_int_equal(b->len, 0);
		assert_int_equal(b->cap, 0);
		assert_string_equal(buf_cstr(b), "");
		return;
	}
	assert_true(b->cap >= b->len + 1);
	assert_int_equal(b->data[b->len], '\0');
	assert_ptr_equal(buf_cstr(b), (const char *)b->data);
}

static void test_init(void **state)
{
	struct buf a = BUF_INIT;
	struct buf b;

	(void)state;
	memset(&b, 0xa5, sizeof b);
	buf_init(&b);
	assert_null(a.data);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	assert_string_equal(buf_cstr(&a), "");
	assert_terminated(&b);
	buf_free(&a); /* freeing a never-used buffer is fine */
	assert_terminated(&a);
}

static void test_append_growth(void **state)
{
	struct buf b = BUF_INIT;
	size_t reallocs = 0;
	uint8_t *last = NULL;
	size_t last_cap = 0;
	const size_t total = 100000;

	(void)state;
	for (size_t i = 0; i < total; i++) {
		buf_append_byte(&b, (uint8_t)('a' + i % 26));
		assert_int_equal(b.len, i + 1);
		assert_int_equal(b.data[b.len], '\0');
		if (b.cap != last_cap || b.data != last) {
			reallocs++;
			last_cap = b.cap;
			last = b.data;
		}
	}
	/* 100000 bytes from a 64-byte start doubles at least 10 times. */
	assert_true(reallocs >= 10);
	assert_true(b.cap >= total + 1);
	for (size_t i = 0; i < total; i++)
		assert_int_equal(b.data[i], 'a' + i % 26);
	assert_int_equal(strlen(buf_cstr(&b)), total);
	buf_free(&b);
	assert_terminated(&b);
}

static void test_append_str_and_chunks(void **state)
{
	static const struct {
		const char *name;
		const char *const parts[5];
		const char *want;
	} cases[] = {
		{ "nothing", { NULL }, "" },
		{ "empty strings", { "", "", NULL }, "" },
		{ "one", { "hello", NULL }, "hello" },
		{ "several", { "he", "llo", " ", "world", NULL }, "hello world" },
		{ "longer than 64 at once",
		  { "0123456789012345678901234567890123456789012345678901234567890123456789", "!", NULL },
		  "0123456789012345678901234567890123456789012345678901234567890123456789!" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct buf b = BUF_INIT;

		for (size_t j = 0; cases[i].parts[j] != NULL; j++) {
			buf_append_str(&b, cases[i].parts[j]);
			assert_terminated(&b);
		}
		if (strcmp(buf_cstr(&b), cases[i].want) != 0)
			fail_msg("%s: got \"%s\", want \"%s\"", cases[i].name, buf_cstr(&b), cases[i].want);
		assert_int_equal(b.len, strlen(cases[i].want));
		buf_free(&b);
	}
}

static void test_append_large_blocks(void **state)
{
	struct buf b = BUF_INIT;
	char chunk[3000];

	(void)state;
	for (int round = 0; round < 50; round++) {
		memset(chunk, 'A' + round % 26, sizeof chunk);
		buf_append(&b, chunk, sizeof chunk);
		assert_terminated(&b);
	}
	assert_int_equal(b.len, 50 * sizeof chunk);
	for (size_t i = 0; i < b.len; i++)
		assert_int_equal(b.data[i], 'A' + (i / sizeof chunk) % 26);
	/* appending zero bytes changes nothing */
	buf_append(&b, chunk, 0);
	assert_int_equal(b.len, 50 * sizeof chunk);
	assert_terminated(&b);
	buf_free(&b);
}

static void test_printf_growth(void **state)
{
	struct buf b = BUF_INIT;
	char *want = malloc(200000);
	size_t wlen = 0;

	(void)state;
	assert_non_null(want);
	for (int i = 0; i < 20000; i++) {
		buf_printf(&b, "%d,", i * 7);
		wlen += (size_t)sprintf(want + wlen, "%d,", i * 7);
		assert_int_equal(b.len, wlen);
		assert_int_equal(b.data[b.len], '\0');
	}
	assert_memory_equal(b.data, want, wlen);
	assert_string_equal(buf_cstr(&b), want);
	free(want);
	buf_free(&b);
}

static void test_printf_cases(void **state)
{
	/* Every case appends buf_printf(&b, "%s%d%%", str, num) after prefix. */
	static const struct {
		const char *name;
		const char *prefix;
		const char *str;
		int num;
		const char *want;
	} cases[] = {
		{ "fresh buffer", "", "", 0, "0%" },
		{ "after text", "x=", "a", -5, "x=a-5%" },
		{ "one call past the first block", "",
		  "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz", 12345,
		  "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz12345%" },
		{ "filling the first block exactly", "0123456789012345678901234567890123456789012345678901234567",
		  "ab", 12, "0123456789012345678901234567890123456789012345678901234567ab12%" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct buf b = BUF_INIT;

		buf_append_str(&b, cases[i].prefix);
		buf_printf(&b, "%s%d%%", cases[i].str, cases[i].num);
		assert_non_null(b.data);
		assert_terminated(&b);
		if (strcmp(buf_cstr(&b), cases[i].want) != 0)
			fail_msg("%s: got \"%s\", want \"%s\"", cases[i].name, buf_cstr(&b), cases[i].want);
		assert_int_equal(b.len, strlen(cases[i].want));
		buf_free(&b);
	}
}

static void test_binary_with_nuls(void **state)
{
	static const uint8_t bin[] = { 'a', 0, 'b', 0, 0, 0xff, 'c' };
	struct buf b = BUF_INIT;

	(void)state;
	buf_append(&b, bin, sizeof bin);
	buf_append_byte(&b, 0);
	buf_printf(&b, "%c", 'z');
	assert_int_equal(b.len, sizeof bin + 2);
	assert_memory_equal(b.data, bin, sizeof bin);
	assert_int_equal(b.data[sizeof bin], 0);
	assert_int_equal(b.data[sizeof bin + 1], 'z');
	assert_terminated(&b);
	/* As a C string it stops at the first NUL; the length does not. */
	assert_string_equal(buf_cstr(&b), "a");
	buf_consume(&b, 2);
	assert_int_equal(b.len, sizeof bin);
	assert_memory_equal(b.data, "b\0\0\xff" "c\0z", 7);
	assert_terminated(&b);
	buf_free(&b);
}

static void test_consume(void **state)
{
	static const struct {
		const char *name;
		const char *initial;
		size_t n;
		const char *want;
	} cases[] = {
		{ "nothing", "hello world", 0, "hello world" },
		{ "a prefix", "hello world", 6, "world" },
		{ "all but one", "hello world", 10, "d" },
		{ "everything", "hello world", 11, "" },
		{ "one byte", "x", 1, "" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct buf b = BUF_INIT;

		buf_append_str(&b, cases[i].initial);
		buf_consume(&b, cases[i].n);
		assert_terminated(&b);
		if (strcmp(buf_cstr(&b), cases[i].want) != 0)
			fail_msg("%s: got \"%s\", want \"%s\"", cases[i].name, buf_cstr(&b), cases[i].want);
		assert_int_equal(b.len, strlen(cases[i].want));
		/* the buffer stays usable */
		buf_append_str(&b, "!");
		assert_int_equal(b.len, strlen(cases[i].want) + 1);
		assert_terminated(&b);
		buf_free(&b);
	}
}

static void test_consume_repeatedly(void **state)
{
	struct buf b = BUF_INIT;
	char expect[16];

	(void)state;
	/* A queue: append lines, consume them one at a time. */
	for (int i = 0; i < 1000; i++)
		buf_printf(&b, "%04d\n", i);
	for (int i = 0; i < 1000; i++) {
		snprintf(expect, sizeof expect, "%04d\n", i);
		assert_memory_equal(b.data, expect, 5);
		buf_consume(&b, 5);
		assert_int_equal(b.len, (size_t)(999 - i) * 5);
		assert_terminated(&b);
	}
	buf_free(&b);
}

static void test_truncate(void **state)
{
	static const struct {
		const char *name;
		const char *initial;
		size_t n;
		const char *want;
	} cases[] = {
		{ "keep all", "hello", 5, "hello" },
		{ "keep some", "hello", 2, "he" },
		{ "keep none", "hello", 0, "" },
		{ "empty buffer", "", 0, "" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct buf b = BUF_INIT;

		buf_append_str(&b, cases[i].initial);
		buf_truncate(&b, cases[i].n);
		assert_terminated(&b);
		if (strcmp(buf_cstr(&b), cases[i].want) != 0)
			fail_msg("%s: got \"%s\", want \"%s\"", cases[i].name, buf_cstr(&b), cases[i].want);
		assert_int_equal(b.len, cases[i].n);
		buf_free(&b);
	}
}

static void test_truncate_fresh(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	buf_truncate(&b, 0);
	assert_terminated(&b);
	assert_null(b.data);
}

static void test_bad_lengths_panic(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	buf_append_str(&b, "abc");
	UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "buf_consume: 4 bytes from a buffer of 3", buf_consume(&b, 4));
	UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "buf_truncate: to 4 bytes, buffer holds 3", buf_truncate(&b, 4));
	/* nothing changed */
	assert_string_equal(buf_cstr(&b), "abc");
	assert_int_equal(b.len, 3);
	buf_free(&b);
}

static void test_steal(void **state)
{
	struct buf b = BUF_INIT;
	char *s;

	(void)state;
	buf_append_str(&b, "stolen text");
	s = buf_steal(&b);
	assert_string_equal(s, "stolen text");
	/* the buffer is reset and reusable, and no longer owns s */
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	buf_append_str(&b, "again");
	assert_string_equal(buf_cstr(&b), "again");
	assert_true((const char *)b.data != s);
	free(s);

	/* binary contents come out whole and NUL-terminated */
	buf_reset(&b);
	buf_append(&b, "a\0b", 3);
	s = buf_steal(&b);
	assert_memory_equal(s, "a\0b", 4);
	free(s);

	/* a buffer emptied by reset or consume steals as "" */
	buf_append_str(&b, "gone");
	buf_reset(&b);
	s = buf_steal(&b);
	assert_string_equal(s, "");
	free(s);
	buf_append_str(&b, "gone");
	buf_consume(&b, 4);
	s = buf_steal(&b);
	assert_string_equal(s, "");
	free(s);
	/* a buffer that never held anything steals as "" too */
	s = buf_steal(&b);
	assert_string_equal(s, "");
	free(s);
	buf_free(&b);
}

static void test_fresh_buffer_edges(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	/* consuming nothing from a never-allocated buffer is a no-op */
	buf_consume(&b, 0);
	assert_int_equal(b.len, 0);
	/* reserving keeps the contents a terminated (empty) string */
	buf_reserve(&b, 100);
	assert_string_equal(buf_cstr(&b), "");
	assert_int_equal(b.data[0], '\0');
	buf_free(&b);
}

static void test_reset(void **state)
{
	struct buf b = BUF_INIT;
	uint8_t *data;
	size_t cap;

	(void)state;
	buf_reset(&b); /* on a fresh buffer: nothing to do */
	assert_terminated(&b);
	buf_append_str(&b, "some text that is long enough to need a larger block than 64 bytes....");
	data = b.data;
	cap = b.cap;
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(buf_cstr(&b), "");
	/* the memory is kept for reuse */
	assert_ptr_equal(b.data, data);
	assert_int_equal(b.cap, cap);
	buf_append_str(&b, "new");
	assert_string_equal(buf_cstr(&b), "new");
	assert_ptr_equal(b.data, data);
	buf_free(&b);
	assert_terminated(&b);
	/* usable again after free */
	buf_printf(&b, "%d", 42);
	assert_string_equal(buf_cstr(&b), "42");
	buf_free(&b);
}

static void test_reserve(void **state)
{
	struct buf b = BUF_INIT;
	uint8_t *p;

	(void)state;
	buf_append_str(&b, "head:");
	p = buf_reserve(&b, 1000);
	assert_ptr_equal(p, b.data + b.len);
	assert_true(b.cap >= b.len + 1000 + 1);
	assert_int_equal(b.len, 5); /* reserve does not change the length */
	assert_string_equal(buf_cstr(&b), "head:");
	/* the reserved room is writable */
	memset(p, 'x', 1000);
	b.len += 1000;
	b.data[b.len] = '\0';
	assert_int_equal(strlen(buf_cstr(&b)), 1005);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_append_growth),
		cmocka_unit_test(test_append_str_and_chunks),
		cmocka_unit_test(test_append_large_blocks),
		cmocka_unit_test(test_printf_growth),
		cmocka_unit_test(test_printf_cases),
		cmocka_unit_test(test_binary_with_nuls),
		cmocka_unit_test(test_consume),
		cmocka_unit_test(test_consume_repeatedly),
		cmocka_unit_test(test_truncate),
		cmocka_unit_test(test_truncate_fresh),
		cmocka_unit_test(test_bad_lengths_panic),
		cmocka_unit_test(test_steal),
		cmocka_unit_test(test_fresh_buffer_edges),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_reserve),
	};

	log_init("test_buf", LOG_SINK_STDERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
