#include "config.h"
/* test_smtp_reply_parse.c - unit tests for libmail/smtp_reply_parse.c,
 * the client side's SMTP reply parser and EHLO keyword reader.
 *
 * Table-driven: each case is a byte stream and the replies (or the
 * error) it must give, rendered as text. Every case runs three ways:
 * the whole stream at once, one octet at a time, and split in two at
 * every position; all must give the same rendering, and the parser
 * must use the octets exactly up to the end of each reply.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libmail/smtp_reply_parse.h"
#include "../../libutil/buf.h"
#include "unit.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* render_reply - "CODE[status]{line|line}" */
static void render_reply(struct buf *out, const struct smtp_parsed_reply *r)
{
	buf_printf(out, "%03d[%s]{", r->code, r->status);
	for (size_t i = 0; i < r->nlines; i++)
		buf_printf(out, "%s%s", i > 0 ? "|" : "", r->lines[i]);
	buf_append_str(out, "}");
}

/* feed_all - feed data[0..len) in pieces of at most step octets (0: all
 * at once; split > 0: two pieces cut there), rendering every result. */
static void feed_all(const char *data, size_t len, size_t step, size_t split, struct buf *out)
{
	struct smtp_reply_parser *p = smtp_reply_parser_new();
	size_t pos = 0;

	while (pos < len) {
		size_t n = len - pos, used;
		enum smtp_reply_parse_result rc;
		char *copy;

		if (step > 0 && n > step)
			n = step;
		if (split > 0 && pos < split && n > split - pos)
			n = split - pos;
		/* an exact-size copy: reading past it is an error under valgrind */
		copy = malloc(n);
		assert_non_null(copy);
		memcpy(copy, data + pos, n);
		rc = smtp_reply_parser_feed(p, copy, n, &used);
		free(copy);
		assert_true(used <= n);
		pos += used;
		if (rc == SMTP_REPLY_DONE) {
			render_reply(out, smtp_reply_parser_reply(p));
			buf_append_str(out, ";");
			assert_null(smtp_reply_parser_error(p));
			assert_false(smtp_reply_parser_partial(p));
		} else if (rc == SMTP_REPLY_ERROR) {
			assert_null(smtp_reply_parser_reply(p));
			buf_printf(out, "ERROR(%s)@%zu", smtp_reply_parser_error(p), pos);
			/* sticky */
			assert_int_equal(smtp_reply_parser_feed(p, "250 x\r\n", 7, &used), SMTP_REPLY_ERROR);
			assert_int_equal(used, 0);
			break;
		} else {
			assert_int_equal(used, n);
		}
	}
	if (pos == len && smtp_reply_parser_partial(p))
		buf_append_str(out, "+partial");
	smtp_reply_parser_free(&p);
	assert_null(p);
}

struct parse_case {
	const char *name;
	const char *in;
	size_t len; /* 0: strlen */
	const char *want;
};

#define CASE(name, in, want) { name, in, 0, want }
#define CASEB(name, in, want) { name, in, sizeof(in) - 1, want }

static const struct parse_case cases[] = {
	CASE("greeting", "220 mx.example.org ESMTP\r\n", "220[]{mx.example.org ESMTP};"),
	CASE("multiline", "250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 1000\r\n",
	     "250[]{mx.example.org|PIPELINING|SIZE 1000};"),
	CASE("two replies", "250 2.1.0 Ok\r\n550 5.1.1 <x@y>: unknown\r\n",
	     "250[2.1.0]{2.1.0 Ok};550[5.1.1]{5.1.1 <x@y>: unknown};"),
	CASE("bare LF accepted", "250-a\n250 b\n", "250[]{a|b};"),
	CASE("mixed line ends", "250-a\r\n250 b\n", "250[]{a|b};"),
	CASE("bare code", "250\r\n", "250[]{};"),
	CASE("empty texts", "250-\r\n250 \r\n", "250[]{|};"),
	CASE("status with tab", "450 4.7.1\tgreylisted\r\n", "450[4.7.1]{4.7.1\tgreylisted};"),
	CASE("status alone", "550 5.1.1\r\n", "550[5.1.1]{5.1.1};"),
	CASE("status three digits", "550 5.123.456 x\r\n", "550[5.123.456]{5.123.456 x};"),
	CASE("status class mismatch", "250 5.1.1 odd\r\n", "250[]{5.1.1 odd};"),
	CASE("status class 3", "354 3.0.0 go\r\n", "354[]{3.0.0 go};"),
	CASE("status class 6", "550 6.1.1 x\r\n", "550[]{6.1.1 x};"),
	CASE("status four digits", "550 5.1.1234 x\r\n", "550[]{5.1.1234 x};"),
	CASE("status subject four digits", "550 5.1000.1 x\r\n", "550[]{5.1000.1 x};"),
	CASE("status glued", "550 5.1.1x\r\n", "550[]{5.1.1x};"),
	CASE("status incomplete", "550 5.1 x\r\n", "550[]{5.1 x};"),
	CASE("status from first line", "550-x\r\n550 5.1.1 y\r\n", "550[]{x|5.1.1 y};"),
	CASE("partial line", "250 ok", "+partial"),
	CASE("partial reply", "250-a\r\n250-b\r\n", "+partial"),
	CASE("partial CR", "250 ok\r", "+partial"),
	CASE("reply then partial", "220 hi\r\n250", "220[]{hi};+partial"),
	/* protocol errors */
	CASE("no code", "hello\r\n", "ERROR(malformed reply line (no reply code))@7"),
	CASE("short code", "25\r\n", "ERROR(malformed reply line (no reply code))@4"),
	CASE("empty line", "\r\n", "ERROR(malformed reply line (no reply code))@2"),
	CASE("code too low", "199 x\r\n", "ERROR(reply code out of range)@7"),
	CASE("code too high", "600 x\r\n", "ERROR(reply code out of range)@7"),
	CASE("code 100", "100 x\r\n", "ERROR(reply code out of range)@7"),
	CASE("bad separator", "250x\r\n", "ERROR(malformed reply line (bad separator after the code))@6"),
	CASE("bad separator tab", "250\tx\r\n", "ERROR(malformed reply line (bad separator after the code))@7"),
	CASE("mismatched codes", "250-a\r\n251 b\r\n", "ERROR(different codes in the lines of one reply)@14"),
	CASE("mismatched after reply", "220 hi\r\n250-a\r\n550 b\r\n",
	     "220[]{hi};ERROR(different codes in the lines of one reply)@22"),
	CASEB("NUL", "250 a\0b\r\n", "ERROR(NUL in a reply line)@9"),
	CASE("bare CR", "250 a\rb\r\n", "ERROR(bare CR in a reply line)@9"),
	CASE("CR CR LF", "250 a\r\r\n", "ERROR(bare CR in a reply line)@8"),
	CASE("garbage then good", "junk\r\n250 ok\r\n", "ERROR(malformed reply line (no reply code))@6"),
	CASE("8-bit text kept", "550 5.1.1 \xc3\xbc\r\n", "550[5.1.1]{5.1.1 \xc3\xbc};"),
};

static void test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		const struct parse_case *tc = &cases[i];
		size_t len = tc->len != 0 ? tc->len : strlen(tc->in);
		struct buf whole = BUF_INIT, got = BUF_INIT;

		feed_all(tc->in, len, 0, 0, &whole);
		if (strcmp(buf_cstr(&whole), tc->want) != 0)
			fail_msg("%s: got \"%s\", want \"%s\"", tc->name, buf_cstr(&whole), tc->want);
		feed_all(tc->in, len, 1, 0, &got);
		if (strcmp(buf_cstr(&got), tc->want) != 0)
			fail_msg("%s (bytewise): got \"%s\", want \"%s\"", tc->name, buf_cstr(&got), tc->want);
		for (size_t cut = 1; cut < len; cut++) {
			buf_reset(&got);
			feed_all(tc->in, len, 0, cut, &got);
			if (strcmp(buf_cstr(&got), tc->want) != 0)
				fail_msg("%s (cut at %zu): got \"%s\", want \"%s\"", tc->name, cut, buf_cstr(&got),
					 tc->want);
		}
		buf_free(&whole);
		buf_free(&got);
	}
}

/* Line length: 2048 octets with CRLF is the most; longer lines are
 * skipped to their end, and only then reported. */
static void test_line_length(void **state)
{
	struct smtp_reply_parser *p = smtp_reply_parser_new();
	struct buf line = BUF_INIT;
	size_t used;

	(void)state;
	/* exactly 2048 with CRLF */
	buf_append_str(&line, "250 ");
	while (line.len < SMTP_REPLY_LINE_MAX - 2)
		buf_append_byte(&line, 'x');
	buf_append_str(&line, "\r\n");
	assert_int_equal(line.len, SMTP_REPLY_LINE_MAX);
	assert_int_equal(smtp_reply_parser_feed(p, line.data, line.len, &used), SMTP_REPLY_DONE);
	assert_int_equal(used, line.len);
	assert_int_equal(strlen(smtp_reply_parser_reply(p)->lines[0]), SMTP_REPLY_LINE_MAX - 6);
	/* the same with a bare LF */
	buf_truncate(&line, line.len - 2);
	buf_append_str(&line, "\n");
	assert_int_equal(smtp_reply_parser_feed(p, line.data, line.len, &used), SMTP_REPLY_DONE);
	/* one more: an error, at the end of the line */
	buf_truncate(&line, line.len - 1);
	buf_append_str(&line, "y\r\n");
	assert_int_equal(smtp_reply_parser_feed(p, line.data, line.len, &used), SMTP_REPLY_ERROR);
	assert_int_equal(used, line.len);
	assert_string_equal(smtp_reply_parser_error(p), "reply line too long");
	smtp_reply_parser_reset(p);
	assert_null(smtp_reply_parser_error(p));
	assert_false(smtp_reply_parser_partial(p));

	/* a huge line in pieces: everything is used, nothing stored, the
	 * error comes with the line end */
	buf_reset(&line);
	buf_append_str(&line, "250 ");
	while (line.len < 100000)
		buf_append_str(&line, "0123456789");
	for (size_t off = 0; off < line.len; off += 1000) {
		size_t n = line.len - off < 1000 ? line.len - off : 1000;

		assert_int_equal(smtp_reply_parser_feed(p, line.data + off, n, &used), SMTP_REPLY_MORE);
		assert_int_equal(used, n);
		assert_true(smtp_reply_parser_partial(p));
	}
	assert_int_equal(smtp_reply_parser_feed(p, "\r\n250 next\r\n", 12, &used), SMTP_REPLY_ERROR);
	assert_int_equal(used, 2);
	assert_string_equal(smtp_reply_parser_error(p), "reply line too long");
	/* after a reset the parser reads the next reply */
	smtp_reply_parser_reset(p);
	assert_int_equal(smtp_reply_parser_feed(p, "250 next\r\n", 10, &used), SMTP_REPLY_DONE);
	assert_string_equal(smtp_reply_parser_reply(p)->lines[0], "next");
	buf_free(&line);
	smtp_reply_parser_free(&p);
	smtp_reply_parser_free(&p); /* NULL is fine */
}

/* Lines per reply and octets per reply. */
static void test_reply_limits(void **state)
{
	struct smtp_reply_parser *p = smtp_reply_parser_new();
	struct buf in = BUF_INIT;
	size_t used;

	(void)state;
	for (int i = 0; i < SMTP_REPLY_LINES_MAX - 1; i++)
		buf_printf(&in, "250-line %d\r\n", i);
	buf_append_str(&in, "250 last\r\n");
	assert_int_equal(smtp_reply_parser_feed(p, in.data, in.len, &used), SMTP_REPLY_DONE);
	assert_int_equal(used, in.len);
	assert_int_equal(smtp_reply_parser_reply(p)->nlines, SMTP_REPLY_LINES_MAX);
	assert_string_equal(smtp_reply_parser_reply(p)->lines[SMTP_REPLY_LINES_MAX - 1], "last");

	buf_reset(&in);
	for (int i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		buf_printf(&in, "250-line %d\r\n", i);
	buf_append_str(&in, "250 last\r\n");
	assert_int_equal(smtp_reply_parser_feed(p, in.data, in.len, &used), SMTP_REPLY_ERROR);
	assert_string_equal(smtp_reply_parser_error(p), "too many lines in one reply");
	assert_int_equal(used, in.len);

	/* 64 KiB: 64 lines of 1024 octets (with CRLF) fit exactly */
	smtp_reply_parser_reset(p);
	buf_reset(&in);
	for (int i = 0; i < 64; i++) {
		buf_append_str(&in, i == 63 ? "250 " : "250-");
		for (int k = 0; k < 1024 - 6; k++)
			buf_append_byte(&in, 'a');
		buf_append_str(&in, "\r\n");
	}
	assert_int_equal(in.len, SMTP_REPLY_SIZE_MAX);
	assert_int_equal(smtp_reply_parser_feed(p, in.data, in.len, &used), SMTP_REPLY_DONE);
	/* one octet more is too much (a bare LF counts as CRLF) */
	in.data[in.len - 3] = 'b';
	buf_truncate(&in, in.len - 2);
	buf_append_str(&in, "c\n");
	assert_int_equal(smtp_reply_parser_feed(p, in.data, in.len, &used), SMTP_REPLY_ERROR);
	assert_string_equal(smtp_reply_parser_error(p), "reply too long");
	buf_free(&in);
	smtp_reply_parser_free(&p);
}

/* smtp_reply_status on its own, and smtp_reply_text. */
static void test_status_text(void **state)
{
	char st[SMTP_STATUS_SIZE];
	struct smtp_reply_parser *p = smtp_reply_parser_new();
	struct buf text = BUF_INIT;
	const char *in = "550-5.1.1 The account does not exist.\r\n550-5.1.1\r\n550-Please try\r\n"
			 "550 5.1.1   https://support.example/\r\n";
	size_t used;

	(void)state;
	assert_int_equal(smtp_reply_status("4.2.2 full", 10, 4, st), 5);
	assert_string_equal(st, "4.2.2");
	assert_int_equal(smtp_reply_status("4.2.2 full", 10, 5, st), 0);
	assert_string_equal(st, "");
	assert_int_equal(smtp_reply_status("4.2.2 full", 10, 0, st), 5);
	assert_int_equal(smtp_reply_status("5.999.999", 9, 5, st), 9);
	assert_string_equal(st, "5.999.999");
	assert_int_equal(smtp_reply_status("5.1.", 4, 5, st), 0);
	assert_int_equal(smtp_reply_status("5..1 x", 6, 5, st), 0);
	assert_int_equal(smtp_reply_status("2.0.0", 3, 2, st), 0); /* len counts */
	assert_int_equal(smtp_reply_status("", 0, 2, st), 0);

	assert_int_equal(smtp_reply_parser_feed(p, in, strlen(in), &used), SMTP_REPLY_DONE);
	smtp_reply_text(smtp_reply_parser_reply(p), &text);
	assert_string_equal(buf_cstr(&text), "The account does not exist. Please try https://support.example/");
	assert_string_equal(smtp_reply_parser_reply(p)->status, "5.1.1");

	buf_reset(&text);
	assert_int_equal(smtp_reply_parser_feed(p, "250 ok\r\n", 8, &used), SMTP_REPLY_DONE);
	smtp_reply_text(smtp_reply_parser_reply(p), &text);
	assert_string_equal(buf_cstr(&text), "ok");
	buf_free(&text);
	smtp_reply_parser_free(&p);
}

static void test_ehlo_keyword(void **state)
{
	static const struct {
		const char *line;
		const char *kw;
		const char *params;
	} kws[] = {
		{ "PIPELINING", "PIPELINING", "" },
		{ "size 1000", "SIZE", "1000" },
		{ "SIZE   1000 ", "SIZE", "1000 " },
		{ "AUTH=LOGIN PLAIN", "AUTH", "LOGIN PLAIN" },
		{ "auth plain login", "AUTH", "plain login" },
		{ "  8bitmime", "8BITMIME", "" },
		{ "X-EXPS GSSAPI", "X-EXPS", "GSSAPI" },
		{ "-BAD", "", "" },
		{ "BAD_KW", "", "" },
		{ "", "", "" },
		{ "=x", "", "" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(kws); i++) {
		char kw[SMTP_EHLO_KEYWORD_MAX];
		const char *params = NULL;
		size_t n = smtp_ehlo_keyword(kws[i].line, kw, sizeof kw, &params);

		if (strcmp(kw, kws[i].kw) != 0 || strcmp(params, kws[i].params) != 0 || n != strlen(kws[i].kw))
			fail_msg("\"%s\": got \"%s\" \"%s\" (%zu)", kws[i].line, kw, params, n);
	}
	/* a keyword that does not fit */
	{
		char kw[4];
		const char *params;

		assert_int_equal(smtp_ehlo_keyword("SIZE 10", kw, sizeof kw, &params), 0);
		assert_string_equal(kw, "");
		assert_int_equal(smtp_ehlo_keyword("DSN", kw, sizeof kw, &params), 3);
		assert_string_equal(kw, "DSN");
	}
}

/* parse_ehlo - feed text, parse its reply as EHLO. */
static void parse_ehlo(const char *in, struct smtp_ehlo *caps)
{
	struct smtp_reply_parser *p = smtp_reply_parser_new();
	size_t used;

	assert_int_equal(smtp_reply_parser_feed(p, in, strlen(in), &used), SMTP_REPLY_DONE);
	smtp_ehlo_parse(smtp_reply_parser_reply(p), caps);
	smtp_reply_parser_free(&p);
}

static void test_ehlo_parse(void **state)
{
	struct smtp_ehlo caps;

	(void)state;
	parse_ehlo("250-mx.example.org says hi\r\n250-pipelining\r\n250-SIZE 52428800\r\n250-AUTH PLAIN login\r\n"
		   "250-AUTH=LOGIN CRAM-MD5 bad_\xc3\xbc\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n"
		   "250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-X-UNKNOWN foo\r\n"
		   "250 BAD_KEYWORD\r\n",
		   &caps);
	assert_int_equal(caps.ext, SMTP_EXT_PIPELINING | SMTP_EXT_SIZE | SMTP_EXT_AUTH | SMTP_EXT_8BITMIME |
					   SMTP_EXT_SMTPUTF8 | SMTP_EXT_DSN | SMTP_EXT_STARTTLS |
					   SMTP_EXT_ENHANCEDSTATUSCODES | SMTP_EXT_CHUNKING);
	assert_int_equal(caps.size, 52428800);
	assert_string_equal(caps.auth, "PLAIN LOGIN CRAM-MD5");
	assert_true(smtp_ehlo_has_auth(&caps, "LOGIN"));
	assert_true(smtp_ehlo_has_auth(&caps, "CRAM-MD5"));
	assert_false(smtp_ehlo_has_auth(&caps, "CRAM"));
	assert_false(smtp_ehlo_has_auth(&caps, "LOG"));

	/* the greeting line is no keyword; SIZE without a number; only AUTH= */
	parse_ehlo("250-SIZE\r\n250-SIZE\r\n250 AUTH=PLAIN\r\n", &caps);
	assert_int_equal(caps.ext, SMTP_EXT_SIZE | SMTP_EXT_AUTH);
	assert_int_equal(caps.size, 0);
	assert_string_equal(caps.auth, "PLAIN");

	parse_ehlo("250-x\r\n250 SIZE abc\r\n", &caps);
	assert_int_equal(caps.ext, SMTP_EXT_SIZE);
	assert_int_equal(caps.size, 0);
	parse_ehlo("250-x\r\n250 SIZE 99999999999999999999999\r\n", &caps);
	assert_int_equal(caps.size, 0);
	parse_ehlo("250-x\r\n250 SIZE 18446744073709551615\r\n", &caps);
	assert_true(caps.size > 0); /* still counted */
	parse_ehlo("250-x\r\n250 SIZE 10 20\r\n", &caps);
	assert_int_equal(caps.size, 0);

	/* a one-line reply: no extensions */
	parse_ehlo("250 mx.example.org\r\n", &caps);
	assert_int_equal(caps.ext, 0);
	assert_string_equal(caps.auth, "");

	/* many mechanisms: what does not fit is dropped, whole */
	{
		struct buf in = BUF_INIT;

		buf_append_str(&in, "250-x\r\n250 AUTH");
		for (int i = 0; i < 40; i++)
			buf_printf(&in, " MECHANISM-%02d", i);
		buf_append_str(&in, "\r\n");
		parse_ehlo(buf_cstr(&in), &caps);
		assert_true(strlen(caps.auth) < SMTP_EHLO_AUTH_MAX);
		assert_true(smtp_ehlo_has_auth(&caps, "MECHANISM-00"));
		assert_false(smtp_ehlo_has_auth(&caps, "MECHANISM-39"));
		assert_true(caps.auth[strlen(caps.auth) - 1] != ' ');
		buf_free(&in);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_line_length),
		cmocka_unit_test(test_reply_limits),
		cmocka_unit_test(test_status_text),
		cmocka_unit_test(test_ehlo_keyword),
		cmocka_unit_test(test_ehlo_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
