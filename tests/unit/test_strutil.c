#include "config.h"
/* test_strutil.c - unit tests for libutil/strutil.c: numbers, durations, sizes, booleans, trim, split. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "../../libutil/strutil.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* One parse case: input, expected rc, value and error text (NULL: any). */
struct num_case {
	const char *in;
	int rc;
	long long want;
	const char *error;
};

/* check_num_case - compare one parser result against its case. */
static void check_num_case(const char *what, const struct num_case *c, int rc, long long value,
			   const char *error)
{
	if (rc != c->rc)
		fail_msg("%s(\"%s\"): rc %d, want %d (error: %s)", what, c->in, rc, c->rc,
			 rc < 0 ? error : "-");
	if (rc == 0 && value != c->want)
		fail_msg("%s(\"%s\"): %lld, want %lld", what, c->in, value, c->want);
	if (rc < 0 && c->error != NULL && strcmp(error, c->error) != 0)
		fail_msg("%s(\"%s\"): error \"%s\", want \"%s\"", what, c->in, error, c->error);
}

static void test_to_ll(void **state)
{
	static const struct {
		long long min, max;
		struct num_case c;
	} cases[] = {
		{ 0, 100, { "0", 0, 0, NULL } },
		{ 0, 100, { "100", 0, 100, NULL } },
		{ 0, 100, { "42", 0, 42, NULL } },
		{ 0, 100, { "101", -1, 0, "out of range" } },
		{ 0, 100, { "-1", -1, 0, "out of range" } },
		{ -10, 10, { "-10", 0, -10, NULL } },
		{ -10, 10, { "-11", -1, 0, "out of range" } },
		{ 1, 1, { "1", 0, 1, NULL } },
		{ LLONG_MIN, LLONG_MAX, { "9223372036854775807", 0, LLONG_MAX, NULL } },
		{ LLONG_MIN, LLONG_MAX, { "-9223372036854775808", 0, LLONG_MIN, NULL } },
		{ LLONG_MIN, LLONG_MAX, { "9223372036854775808", -1, 0, "out of range" } },
		{ LLONG_MIN, LLONG_MAX, { "-9223372036854775809", -1, 0, "out of range" } },
		{ LLONG_MIN, LLONG_MAX, { "99999999999999999999999", -1, 0, "out of range" } },
		{ 0, 100, { "", -1, 0, "not a number" } },
		{ 0, 100, { " 1", -1, 0, "not a number" } },
		{ 0, 100, { "\t1", -1, 0, "not a number" } },
		{ 0, 100, { "1 ", -1, 0, "not a number" } },
		{ 0, 100, { "1x", -1, 0, "not a number" } },
		{ 0, 100, { "+5", -1, 0, "not a number" } },
		{ 0, 100, { "x1", -1, 0, "not a number" } },
		{ 0, 100, { "-", -1, 0, "not a number" } },
		{ 0, 100, { "1.5", -1, 0, "not a number" } },
		{ 0, 100, { "0x10", -1, 0, "not a number" } },
		{ 0, 100, { "1e2", -1, 0, "not a number" } },
		{ 0, 100, { "010", 0, 10, NULL } }, /* decimal, not octal */
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		long long v = -12345;
		const char *error = NULL;
		int rc = str_to_ll(cases[i].c.in, cases[i].min, cases[i].max, &v, &error);

		check_num_case("str_to_ll", &cases[i].c, rc, v, error);
		if (rc < 0)
			assert_int_equal(v, -12345); /* untouched on error */
	}
}

static void test_duration(void **state)
{
	static const struct num_case cases[] = {
		{ "0", 0, 0, NULL },
		{ "30", 0, 30, NULL },
		{ "30s", 0, 30, NULL },
		{ "5m", 0, 300, NULL },
		{ "2h", 0, 7200, NULL },
		{ "1d", 0, 86400, NULL },
		{ "1w", 0, 604800, NULL },
		{ "0w", 0, 0, NULL },
		{ "9223372036854775807", 0, LLONG_MAX, NULL },
		{ "9223372036854775807s", 0, LLONG_MAX, NULL },
		{ "15250284452471w", 0, 15250284452471LL * 604800, NULL },
		{ "9223372036854775808", -1, 0, "out of range" },
		{ "18446744073709551616", -1, 0, "out of range" },
		{ "153722867280912931m", -1, 0, "out of range" },
		{ "15250284452472w", -1, 0, "out of range" },
		{ "5x", -1, 0, "unknown unit (use s, m, h, d or w)" },
		{ "5S", -1, 0, "unknown unit (use s, m, h, d or w)" },
		{ "5 s", -1, 0, "unknown unit (use s, m, h, d or w)" },
		{ "5ss", -1, 0, "unknown unit (use s, m, h, d or w)" },
		{ "1.5h", -1, 0, "unknown unit (use s, m, h, d or w)" },
		{ "-1", -1, 0, "not a number" },
		{ "+1", -1, 0, "not a number" },
		{ "", -1, 0, "not a number" },
		{ " 5", -1, 0, "not a number" },
		{ "s", -1, 0, "not a number" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		long long v = -1;
		const char *error = NULL;
		int rc = str_to_duration(cases[i].in, &v, &error);

		check_num_case("str_to_duration", &cases[i], rc, v, error);
	}
}

static void test_size(void **state)
{
	static const struct num_case cases[] = {
		{ "0", 0, 0, NULL },
		{ "512", 0, 512, NULL },
		{ "10k", 0, 10240, NULL },
		{ "10K", 0, 10240, NULL },
		{ "10KiB", 0, 10240, NULL },
		{ "10m", 0, 10485760, NULL },
		{ "10M", 0, 10485760, NULL },
		{ "10MiB", 0, 10485760, NULL },
		{ "1g", 0, 1073741824, NULL },
		{ "1G", 0, 1073741824, NULL },
		{ "1GiB", 0, 1073741824, NULL },
		{ "8589934591G", 0, 8589934591LL * 1073741824, NULL },
		{ "8589934592G", -1, 0, "out of range" },
		{ "9223372036854775808", -1, 0, "out of range" },
		{ "1T", -1, 0, "unknown unit (use k, M or G)" },
		{ "1kb", -1, 0, "unknown unit (use k, M or G)" },
		{ "1kib", -1, 0, "unknown unit (use k, M or G)" },
		{ "1 k", -1, 0, "unknown unit (use k, M or G)" },
		{ "-1k", -1, 0, "not a number" },
		{ "", -1, 0, "not a number" },
		{ "k", -1, 0, "not a number" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		long long v = -1;
		const char *error = NULL;
		int rc = str_to_size(cases[i].in, &v, &error);

		check_num_case("str_to_size", &cases[i], rc, v, error);
	}
}

static void test_bool(void **state)
{
	static const struct {
		const char *in;
		int rc;
		bool want;
	} cases[] = {
		{ "yes", 0, true }, { "YES", 0, true }, { "Yes", 0, true },
		{ "true", 0, true }, { "TRUE", 0, true }, { "on", 0, true }, { "On", 0, true },
		{ "1", 0, true },
		{ "no", 0, false }, { "NO", 0, false }, { "false", 0, false }, { "False", 0, false },
		{ "off", 0, false }, { "OFF", 0, false }, { "0", 0, false },
		{ "", -1, false }, { "y", -1, false }, { "n", -1, false }, { "2", -1, false },
		{ "yes ", -1, false }, { " yes", -1, false }, { "yess", -1, false }, { "enable", -1, false },
		{ "00", -1, false },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		bool v = !cases[i].want;
		const char *error = NULL;
		int rc = str_to_bool(cases[i].in, &v, &error);

		if (rc != cases[i].rc)
			fail_msg("str_to_bool(\"%s\"): rc %d, want %d", cases[i].in, rc, cases[i].rc);
		if (rc == 0 && v != cases[i].want)
			fail_msg("str_to_bool(\"%s\"): %d, want %d", cases[i].in, v, cases[i].want);
		if (rc < 0)
			assert_string_equal(error, "not a boolean (use yes or no)");
	}
}

static void test_trim(void **state)
{
	static const struct {
		const char *in;
		const char *want;
	} cases[] = {
		{ "", "" },
		{ "a", "a" },
		{ "  a", "a" },
		{ "a  ", "a" },
		{ " \t a b \t ", "a b" },
		{ "a\r\n", "a" },
		{ "key = value \r\n", "key = value" },
		{ "\t\t", "" },
		{ "   ", "" },
		{ "a\tb", "a\tb" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		char s[64];
		char *p;

		snprintf(s, sizeof s, "%s", cases[i].in);
		p = str_trim(s);
		/* the result lies inside the original string */
		assert_true(p >= s && p <= s + strlen(cases[i].in));
		if (strcmp(p, cases[i].want) != 0)
			fail_msg("str_trim(\"%s\"): \"%s\", want \"%s\"", cases[i].in, p, cases[i].want);
	}
}

static void test_has_prefix(void **state)
{
	static const struct {
		const char *s, *prefix;
		bool want;
	} cases[] = {
		{ "hello", "he", true }, { "hello", "", true }, { "hello", "hello", true },
		{ "hello", "hello!", false }, { "hello", "x", false }, { "", "", true }, { "", "a", false },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++)
		if (str_has_prefix(cases[i].s, cases[i].prefix) != cases[i].want)
			fail_msg("str_has_prefix(\"%s\", \"%s\") != %d", cases[i].s, cases[i].prefix,
				 cases[i].want);
}

static void test_split_ws(void **state)
{
	static const struct {
		const char *in;
		int max;
		int want;
		const char *words[6];
	} cases[] = {
		{ "", 4, 0, { NULL } },
		{ "   \t ", 4, 0, { NULL } },
		{ "one", 4, 1, { "one" } },
		{ "one two", 4, 2, { "one", "two" } },
		{ "  one \t two\t\tthree  ", 4, 3, { "one", "two", "three" } },
		{ "a b c d", 4, 4, { "a", "b", "c", "d" } },
		{ "a b c d   ", 4, 4, { "a", "b", "c", "d" } },
		{ "a b c d e", 4, -1, { NULL } },
		{ "a", 0, -1, { NULL } },
		{ "", 0, 0, { NULL } },
		{ "x,y;z", 4, 1, { "x,y;z" } },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		char s[64];
		char *words[6] = { NULL };
		int n;

		snprintf(s, sizeof s, "%s", cases[i].in);
		n = str_split_ws(s, words, cases[i].max);
		if (n != cases[i].want)
			fail_msg("str_split_ws(\"%s\", %d): %d words, want %d", cases[i].in, cases[i].max, n,
				 cases[i].want);
		for (int j = 0; j < n; j++) {
			if (strcmp(words[j], cases[i].words[j]) != 0)
				fail_msg("str_split_ws(\"%s\"): word %d is \"%s\", want \"%s\"", cases[i].in, j,
					 words[j], cases[i].words[j]);
		}
		/* never more pointers than max */
		for (int j = cases[i].max; j < 6; j++)
			assert_null(words[j]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_to_ll),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_bool),
		cmocka_unit_test(test_trim),
		cmocka_unit_test(test_has_prefix),
		cmocka_unit_test(test_split_ws),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
