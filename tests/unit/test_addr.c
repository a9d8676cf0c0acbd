#include "config.h"
/* test_addr.c - unit tests for libmail/addr.c: RFC 5321 paths (addr_parse_path), addr_format and
 * addr_valid_domain. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libmail/addr.h"
#include "../../libutil/pool.h"
#include "unit.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define NUL ADDR_ALLOW_NULL
#define UTF ADDR_ALLOW_UTF8
#define PM ADDR_ALLOW_POSTMASTER

/* One valid path: input, flags, and what must come out. consumed 0 means
 * the whole input. */
struct good_case {
	const char *in;
	unsigned flags;
	const char *local;
	const char *domain;
	bool is_null;
	bool utf8;
	size_t consumed;
};

static const struct good_case good_cases[] = {
	{ "<user@example.org>", 0, "user", "example.org", false, false, 0 },
	{ "<user@example.org> SIZE=100", 0, "user", "example.org", false, false, 18 },
	{ "<user@example.org>junk", 0, "user", "example.org", false, false, 18 },
	{ "<First.Last+tag@Sub.Example.ORG>", 0, "First.Last+tag", "Sub.Example.ORG", false, false, 0 },
	{ "<!#$%&'*+-/=?^_`{|}~@example.org>", 0, "!#$%&'*+-/=?^_`{|}~", "example.org", false, false, 0 },
	{ "<u@a-b_c.example>", 0, "u", "a-b_c.example", false, false, 0 },
	{ "<u@localhost>", 0, "u", "localhost", false, false, 0 },
	{ "<u@123.example>", 0, "u", "123.example", false, false, 0 },
	/* quoted local parts: quotes removed, quoted-pairs resolved */
	{ "<\"quoted local\"@example.org>", 0, "quoted local", "example.org", false, false, 0 },
	{ "<\"a\\\"b\\\\c\"@example.org>", 0, "a\"b\\c", "example.org", false, false, 0 },
	{ "<\"\\x\"@example.org>", 0, "x", "example.org", false, false, 0 },
	{ "<\"\"@example.org>", 0, "", "example.org", false, false, 0 },
	{ "<\"a@b\"@example.org>", 0, "a@b", "example.org", false, false, 0 },
	{ "<\"with.dots.\"@example.org>", 0, "with.dots.", "example.org", false, false, 0 },
	/* address literals */
	{ "<user@[192.0.2.1]>", 0, "user", "[192.0.2.1]", false, false, 0 },
	{ "<user@[IPv6:2001:db8::1]>", 0, "user", "[IPv6:2001:db8::1]", false, false, 0 },
	{ "<user@[ipv6:::1]>", 0, "user", "[ipv6:::1]", false, false, 0 },
	{ "<user@[IPv6:::ffff:192.0.2.1]>", 0, "user", "[IPv6:::ffff:192.0.2.1]", false, false, 0 },
	/* source routes are dropped (RFC 5321 4.1.2, C.) */
	{ "<@relay.example:user@example.org>", 0, "user", "example.org", false, false, 0 },
	{ "<@a.example,@b.example:user@example.org>", 0, "user", "example.org", false, false, 0 },
	{ "<@[192.0.2.1]:user@example.org>", 0, "user", "example.org", false, false, 0 },
	/* the null path */
	{ "<>", NUL, "", "", true, false, 0 },
	{ "<> BODY=8BITMIME", NUL, "", "", true, false, 2 },
	/* <postmaster>, any case */
	{ "<postmaster>", PM, "postmaster", "", false, false, 0 },
	{ "<PostMaster>", PM, "postmaster", "", false, false, 0 },
	{ "<postmaster@example.org>", PM, "postmaster", "example.org", false, false, 0 },
	{ "<postmaster@example.org>", 0, "postmaster", "example.org", false, false, 0 },
	/* UTF-8 with SMTPUTF8 */
	{ "<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>", UTF,
	  "\xe7\x94\xa8\xe6\x88\xb7", "\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a", false, true, 0 },
	{ "<user@b\xc3\xbc" "cher.example>", UTF, "user", "b\xc3\xbc" "cher.example", false, true, 0 },
	{ "<\xc3\xbcser@example.org>", UTF, "\xc3\xbcser", "example.org", false, true, 0 },
	{ "<\"\xc3\xbc x\"@example.org>", UTF, "\xc3\xbc x", "example.org", false, true, 0 },
	{ "<\xf0\x9f\x93\xae@example.org>", UTF, "\xf0\x9f\x93\xae", "example.org", false, true, 0 },
	{ "<user@example.org>", UTF, "user", "example.org", false, false, 0 },
};

/* One invalid path and the error it must give. */
struct bad_case {
	const char *in;
	unsigned flags;
	const char *error;
};

static const struct bad_case bad_cases[] = {
	{ "", 0, "address must be enclosed in <>" },
	{ "user@example.org", 0, "address must be enclosed in <>" },
	{ " <user@example.org>", 0, "address must be enclosed in <>" },
	{ "<>", 0, "null address not allowed here" },
	{ "<>", PM | UTF, "null address not allowed here" },
	{ "<", 0, "bad local part" },
	{ "< >", NUL, "bad local part" },
	{ "<@example.org>", 0, "bad source route" },
	{ "<.user@example.org>", 0, "bad local part" },
	{ "<user.@example.org>", 0, "bad local part" },
	{ "<us..er@example.org>", 0, "bad local part" },
	{ "<\"open@example.org>", 0, "bad local part" },
	{ "<\"a\x01" "b\"@example.org>", 0, "bad local part" },
	{ "<\"a\\\x01" "b\"@example.org>", 0, "bad local part" },
	{ "<\"tab\there\"@example.org>", 0, "bad local part" },
	{ "<\"a\\", 0, "bad local part" },
	{ "<user>", 0, "address must be local@domain" },
	{ "<postmaster>", 0, "address must be local@domain" },
	{ "<postmaster>", NUL | UTF, "address must be local@domain" },
	/* only the exact "<Postmaster>" form is special */
	{ "<\"postmaster\">", PM, "address must be local@domain" },
	{ "<@relay.example:postmaster>", PM, "address must be local@domain" },
	{ "<postmaster.x>", PM, "address must be local@domain" },
	{ "<user example.org>", 0, "address must be local@domain" },
	{ "<user@example.org", 0, "address must end with >" },
	{ "<user@exa mple.org>", 0, "address must end with >" },
	{ "<user@[192.0.2.1>", 0, "address must end with >" },
	{ "<user@[192.0.2.1]x>", 0, "address must end with >" },
	{ "<user@>", 0, "bad domain" },
	{ "<user@-example.org>", 0, "bad domain" },
	{ "<user@example-.org>", 0, "bad domain" },
	{ "<user@example..org>", 0, "bad domain" },
	{ "<user@.example.org>", 0, "bad domain" },
	{ "<user@example.org.>", 0, "bad domain" },
	{ "<user@exa!mple.org>", 0, "bad domain" },
	{ "<user@exa\tmple.org>", 0, "bad domain" },
	{ "<user@[300.1.1.1]>", 0, "bad domain" },
	{ "<user@[192.0.2]>", 0, "bad domain" },
	{ "<user@[IPv6:zz::1]>", 0, "bad domain" },
	{ "<user@[IPv6:192.0.2.1]>", 0, "bad domain" },
	{ "<user@[]>", 0, "bad domain" },
	{ "<user@[2001:db8::1]>", 0, "bad domain" },
	{ "<@bad route:user@example.org>", 0, "bad source route" },
	{ "<@a.example user@example.org>", 0, "bad source route" },
	{ "<@a.example,b.example:user@example.org>", 0, "bad source route" },
	{ "<@a.example,@:user@example.org>", 0, "bad source route" },
	{ "<@a.example,", 0, "bad source route" },
	/* non-ASCII without SMTPUTF8 */
	{ "<\xc3\xbcser@example.org>", 0, "non-ASCII address without SMTPUTF8" },
	{ "<\"\xc3\xbcser\"@example.org>", NUL | PM, "non-ASCII address without SMTPUTF8" },
	{ "<user@b\xc3\xbc" "cher.example>", 0, "non-ASCII address without SMTPUTF8" },
	/* malformed UTF-8 even with SMTPUTF8 */
	{ "<\xff@example.org>", UTF, "bad local part" },
	{ "<\xc3@example.org>", UTF, "bad local part" },
	{ "<\xc0\x80@example.org>", UTF, "bad local part" },            /* overlong NUL */
	{ "<\xe0\x80\xaf@example.org>", UTF, "bad local part" },        /* overlong '/' */
	{ "<\xed\xa0\x80@example.org>", UTF, "bad local part" },        /* surrogate */
	{ "<\xf4\x90\x80\x80@example.org>", UTF, "bad local part" },    /* past U+10FFFF */
	{ "<user@b\xc3(cher.example>", UTF, "bad domain" },
	{ "<user@\xed\xa0\x80.example>", UTF, "bad domain" },
};

static void check_good(struct pool *pool, const char *in, size_t len, unsigned flags, const struct good_case *c)
{
	struct mail_addr a;
	const char *error = NULL;
	size_t consumed = 0;
	int rc = addr_parse_path(in, len, flags, pool, &a, &consumed, &error);

	if (rc != 0)
		fail_msg("addr_parse_path(\"%s\", %#x): failed: %s", in, flags, error);
	if (strcmp(a.local, c->local) != 0)
		fail_msg("addr_parse_path(\"%s\"): local \"%s\", want \"%s\"", in, a.local, c->local);
	if (strcmp(a.domain, c->domain) != 0)
		fail_msg("addr_parse_path(\"%s\"): domain \"%s\", want \"%s\"", in, a.domain, c->domain);
	if (a.is_null != c->is_null || a.utf8 != c->utf8)
		fail_msg("addr_parse_path(\"%s\"): is_null %d utf8 %d, want %d %d", in, a.is_null, a.utf8,
			 c->is_null, c->utf8);
	if (consumed != (c->consumed != 0 ? c->consumed : strlen(c->in)))
		fail_msg("addr_parse_path(\"%s\"): consumed %zu", in, consumed);
}

static void test_parse_valid(void **state)
{
	struct pool *pool = pool_create();

	(void)state;
	for (size_t i = 0; i < NELEM(good_cases); i++) {
		const struct good_case *c = &good_cases[i];
		size_t len = strlen(c->in);
		char *copy = malloc(len + 1);

		check_good(pool, c->in, len, c->flags, c);
		/* Extra flags never make a valid path invalid. */
		check_good(pool, c->in, len, c->flags | NUL | UTF | PM, c);
		/* The parser never reads past len: an exact-size copy (no NUL
		 * at the end) gives the same result under valgrind/ASan. */
		assert_non_null(copy);
		memcpy(copy, c->in, len);
		check_good(pool, copy, len, c->flags, c);
		free(copy);
	}
	pool_destroy(&pool);
}

static void test_parse_invalid(void **state)
{
	struct pool *pool = pool_create();

	(void)state;
	for (size_t i = 0; i < NELEM(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct mail_addr a;
		const char *error = NULL;
		size_t consumed = 12345;
		size_t len = strlen(c->in);
		char *copy = malloc(len + 1);
		int rc;

		assert_non_null(copy);
		memcpy(copy, c->in, len);
		rc = addr_parse_path(copy, len, c->flags, pool, &a, &consumed, &error);
		if (rc != -1)
			fail_msg("addr_parse_path(\"%s\", %#x): accepted (local \"%s\", domain \"%s\")", c->in,
				 c->flags, a.local, a.domain);
		assert_non_null(error);
		if (strcmp(error, c->error) != 0)
			fail_msg("addr_parse_path(\"%s\", %#x): error \"%s\", want \"%s\"", c->in, c->flags, error,
				 c->error);
		assert_int_equal(consumed, 12345); /* untouched on failure */
		free(copy);
	}
	pool_destroy(&pool);
}

/* repeat - n copies of c. */
static char *repeat(char *out, char c, size_t n)
{
	memset(out, c, n);
	out[n] = '\0';
	return out;
}

/* parse_str - addr_parse_path on a C string; returns the error or NULL. */
static const char *parse_str(struct pool *pool, const char *path, struct mail_addr *a)
{
	const char *error = NULL;
	size_t consumed;

	return addr_parse_path(path, strlen(path), 0, pool, a, &consumed, &error) == 0 ? NULL : error;
}

static void test_length_limits(void **state)
{
	struct pool *pool = pool_create();
	struct mail_addr a;
	char local[100], label[100], path[1024], domain[512];
	const char *error;

	(void)state;
	/* local part: 64 octets, unquoted length */
	snprintf(path, sizeof path, "<%s@example.org>", repeat(local, 'a', 64));
	assert_null(parse_str(pool, path, &a));
	assert_int_equal(strlen(a.local), 64);
	snprintf(path, sizeof path, "<%s@example.org>", repeat(local, 'a', 65));
	assert_string_equal(parse_str(pool, path, &a), "local part longer than 64 octets");
	/* quoted: the limit is on the unquoted form */
	snprintf(path, sizeof path, "<\"%s\"@example.org>", repeat(local, 'b', 64));
	assert_null(parse_str(pool, path, &a));
	snprintf(path, sizeof path, "<\"%s\"@example.org>", repeat(local, 'b', 65));
	assert_string_equal(parse_str(pool, path, &a), "local part longer than 64 octets");

	/* labels: 63 octets */
	snprintf(path, sizeof path, "<u@%s.example>", repeat(label, 'c', 63));
	assert_null(parse_str(pool, path, &a));
	snprintf(path, sizeof path, "<u@%s.example>", repeat(label, 'c', 64));
	assert_string_equal(parse_str(pool, path, &a), "bad domain");

	/* the whole path: 256 octets with the brackets. "<" "a" "@" domain
	 * ">" is 256 with a 252-octet domain. */
	snprintf(domain, sizeof domain, "%s.%s.%s.%s", repeat(label, 'd', 63), label, label, label);
	domain[252] = '\0'; /* 63.63.63.60 */
	snprintf(path, sizeof path, "<a@%s>", domain);
	assert_int_equal(strlen(path), 256);
	assert_null(parse_str(pool, path, &a));
	assert_int_equal(strlen(a.domain), 252);
	snprintf(path, sizeof path, "<ab@%s>", domain);
	assert_int_equal(strlen(path), 257);
	assert_string_equal(parse_str(pool, path, &a), "path longer than 256 octets");
	/* a domain of 255 octets is valid as such, but no path holds it */
	snprintf(domain, sizeof domain, "%s.%s.%s.%s", repeat(label, 'e', 63), label, label, label);
	assert_int_equal(strlen(domain), 255);
	assert_true(addr_valid_domain(domain, 255, false));
	snprintf(path, sizeof path, "<a@%s>", domain);
	assert_string_equal(parse_str(pool, path, &a), "path longer than 256 octets");
	/* 256 octets is not a domain */
	snprintf(domain, sizeof domain, "%s.%s.%s.%s.e", repeat(label, 'f', 63), label, label, repeat(local, 'f', 62));
	assert_int_equal(strlen(domain), 256);
	assert_false(addr_valid_domain(domain, 256, false));
	snprintf(path, sizeof path, "<a@%s>", domain);
	error = parse_str(pool, path, &a);
	assert_string_equal(error, "bad domain");
	pool_destroy(&pool);
}

/* test_embedded_nul - a NUL anywhere in a path is refused, never taken
 * as the end of a string (found by fuzz_addr: an address literal used
 * to be checked with inet_pton up to the NUL only). */
static void test_embedded_nul(void **state)
{
	static const struct {
		const char *in;
		size_t len;
	} cases[] = {
		{ "<user@[IPv6:::ff\0<ff:192.0.2.1]>", sizeof("<user@[IPv6:::ff\0<ff:192.0.2.1]>") - 1 },
		{ "<u@[IPv6:28::\0]>", sizeof("<u@[IPv6:28::\0]>") - 1 },
		{ "<u@[192.0.2.1\0]>", sizeof("<u@[192.0.2.1\0]>") - 1 },
		{ "<u\0@example.org>", sizeof("<u\0@example.org>") - 1 },
		{ "<\"u\0\"@example.org>", sizeof("<\"u\0\"@example.org>") - 1 },
		{ "<u@exa\0mple.org>", sizeof("<u@exa\0mple.org>") - 1 },
		{ "<@a\0:u@example.org>", sizeof("<@a\0:u@example.org>") - 1 },
		{ "<\0>", sizeof("<\0>") - 1 },
	};
	struct pool *pool = pool_create();

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct mail_addr a;
		const char *error = NULL;
		size_t consumed;

		if (addr_parse_path(cases[i].in, cases[i].len, NUL | UTF | PM, pool, &a, &consumed, &error) == 0)
			fail_msg("case %zu with a NUL accepted: local \"%s\" domain \"%s\"", i, a.local, a.domain);
	}
	assert_false(addr_valid_domain("[192.0.2.1\0]", sizeof("[192.0.2.1\0]") - 1, false));
	assert_false(addr_valid_domain("[IPv6:::1\0x]", sizeof("[IPv6:::1\0x]") - 1, true));
	pool_destroy(&pool);
}

static void test_valid_domain(void **state)
{
	static const struct {
		const char *domain;
		bool utf8;
		bool want;
	} cases[] = {
		{ "example.org", false, true },
		{ "a", false, true },
		{ "x-y.example", false, true },
		{ "_dmarc.example", false, true },
		{ "[192.0.2.1]", false, true },
		{ "[IPv6:2001:db8::1]", false, true },
		{ "", false, false },
		{ ".", false, false },
		{ "-a.example", false, false },
		{ "a-.example", false, false },
		{ "a..example", false, false },
		{ "example.", false, false },
		{ "exa mple", false, false },
		{ "[192.0.2.1", false, false },
		{ "[1.2.3.4.5]", false, false },
		{ "[IPv6:1:2:3:4:5:6:7:8:9]", false, false },
		{ "b\xc3\xbc" "cher.example", false, false },
		{ "b\xc3\xbc" "cher.example", true, true },
		{ "b\xc3" "cher.example", true, false },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++)
		if (addr_valid_domain(cases[i].domain, strlen(cases[i].domain), cases[i].utf8) != cases[i].want)
			fail_msg("addr_valid_domain(\"%s\", %d) != %d", cases[i].domain, cases[i].utf8,
				 cases[i].want);
}

static void test_format(void **state)
{
	static const struct {
		struct mail_addr addr;
		const char *want;
	} cases[] = {
		{ { "user", "example.org", false, false }, "user@example.org" },
		{ { "First.Last+tag", "example.org", false, false }, "First.Last+tag@example.org" },
		{ { "quoted local", "example.org", false, false }, "\"quoted local\"@example.org" },
		{ { "a\"b\\c", "example.org", false, false }, "\"a\\\"b\\\\c\"@example.org" },
		{ { "", "example.org", false, false }, "\"\"@example.org" },
		{ { ".user", "example.org", false, false }, "\".user\"@example.org" },
		{ { "user.", "example.org", false, false }, "\"user.\"@example.org" },
		{ { "a..b", "example.org", false, false }, "\"a..b\"@example.org" },
		{ { "a@b", "example.org", false, false }, "\"a@b\"@example.org" },
		{ { "a(b)", "example.org", false, false }, "\"a(b)\"@example.org" },
		{ { "\xc3\xbcser", "b\xc3\xbc" "cher.example", false, true }, "\xc3\xbcser@b\xc3\xbc" "cher.example" },
		{ { "postmaster", "", false, false }, "postmaster" },
		{ { "", "", true, false }, "" },
		{ { "user", "[IPv6:2001:db8::1]", false, false }, "user@[IPv6:2001:db8::1]" },
	};
	struct pool *pool = pool_create();

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		const struct mail_addr *in = &cases[i].addr;
		char *text = addr_format(pool, in);
		char *path;
		struct mail_addr back;
		const char *error = NULL;
		size_t consumed;

		if (strcmp(text, cases[i].want) != 0)
			fail_msg("addr_format(\"%s\", \"%s\"): \"%s\", want \"%s\"", in->local, in->domain, text,
				 cases[i].want);
		/* round trip: the formatted path parses back to the same */
		path = pool_printf(pool, "<%s>", text);
		if (addr_parse_path(path, strlen(path), NUL | UTF | PM, pool, &back, &consumed, &error) != 0)
			fail_msg("addr_format round trip: \"%s\" does not parse: %s", path, error);
		assert_int_equal(consumed, strlen(path));
		assert_string_equal(back.local, in->local);
		assert_string_equal(back.domain, in->domain);
		assert_int_equal(back.is_null, in->is_null);
		assert_int_equal(back.utf8, in->utf8);
	}
	/* and the other way: every valid path formats to text that parses to
	 * the same address */
	for (size_t i = 0; i < NELEM(good_cases); i++) {
		struct mail_addr a, b;
		const char *error = NULL;
		size_t consumed;
		char *path;

		assert_int_equal(addr_parse_path(good_cases[i].in, strlen(good_cases[i].in), NUL | UTF | PM, pool, &a,
						 &consumed, &error),
				 0);
		path = pool_printf(pool, "<%s>", addr_format(pool, &a));
		if (addr_parse_path(path, strlen(path), NUL | UTF | PM, pool, &b, &consumed, &error) != 0)
			fail_msg("\"%s\" formats to \"%s\", which does not parse: %s", good_cases[i].in, path, error);
		assert_string_equal(a.local, b.local);
		assert_string_equal(a.domain, b.domain);
		assert_int_equal(a.is_null, b.is_null);
	}
	pool_destroy(&pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_length_limits),
		cmocka_unit_test(test_embedded_nul),
		cmocka_unit_test(test_valid_domain),
		cmocka_unit_test(test_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
