#include "config.h"
/* test_smtp_data.c - unit tests for libmail/smtp_data.c: the end of DATA, dot-unstuffing, bare
 * LF/CR detection (SMTP smuggling), chunking independence, long lines, Received: counting, size. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libmail/smtp_data.h"
#include "../../libutil/buf.h"
#include "unit.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
/* BIN - a string literal and its length, NULs included. */
#define BIN(s) s, sizeof(s) - 1

struct sink {
	struct buf out;
	size_t calls;
	size_t biggest;
};

static void sink_output(void *ctx, const void *data, size_t len)
{
	struct sink *k = ctx;

	assert_true(len > 0);
	buf_append(&k->out, data, len);
	k->calls++;
	if (len > k->biggest)
		k->biggest = len;
}

/* The result of scanning one input. */
struct result {
	struct buf out;
	size_t consumed;
	bool ended;
	bool bare_lf, bare_cr;
	unsigned received;
	unsigned long long size;
};

static void result_free(struct result *r)
{
	buf_free(&r->out);
}

/* scan - feed in[0..len) cut at the given offsets (cuts ascending, each
 * < len), stopping when the scanner stops consuming. */
static void scan(enum smtp_data_mode mode, const char *in, size_t len, const size_t *cuts, size_t ncuts,
		 struct result *r)
{
	struct sink k = { BUF_INIT, 0, 0 };
	struct smtp_data *d = smtp_data_create(sink_output, &k);
	size_t pos = 0;

	smtp_data_begin(d, mode);
	for (size_t i = 0; i <= ncuts && pos < len; i++) {
		size_t end = i < ncuts ? cuts[i] : len;
		size_t want, n;

		if (end <= pos)
			continue;
		want = end - pos;
		n = smtp_data_feed(d, in + pos, want);
		assert_true(n <= want);
		pos += n;
		if (n < want) /* stopped early: the end was found */
			break;
	}
	if (mode == SMTP_DATA_RAW)
		smtp_data_finish(d);
	r->out = k.out;
	r->consumed = pos;
	r->ended = smtp_data_ended(d);
	r->bare_lf = smtp_data_bare_lf(d);
	r->bare_cr = smtp_data_bare_cr(d);
	r->received = smtp_data_received(d);
	r->size = smtp_data_size(d);
	assert_true(k.biggest <= SMTP_DATA_CHUNK);
	/* size counts exactly what was passed out */
	assert_true(r->size == k.out.len);
	/* after the end, nothing more is taken */
	if (r->ended)
		assert_int_equal(smtp_data_feed(d, "x\r\n", 3), 0);
	smtp_data_free(&d);
	assert_null(d);
}

static void scan_whole(enum smtp_data_mode mode, const char *in, size_t len, struct result *r)
{
	scan(mode, in, len, NULL, 0, r);
}

static void assert_same(const char *what, const struct result *a, const struct result *b)
{
	if (a->out.len != b->out.len || (a->out.len > 0 && memcmp(a->out.data, b->out.data, a->out.len) != 0))
		fail_msg("%s: output differs (%zu vs %zu octets)", what, a->out.len, b->out.len);
	if (a->consumed != b->consumed || a->ended != b->ended || a->bare_lf != b->bare_lf ||
	    a->bare_cr != b->bare_cr || a->received != b->received || a->size != b->size)
		fail_msg("%s: consumed %zu/%zu ended %d/%d bare_lf %d/%d bare_cr %d/%d received %u/%u", what,
			 a->consumed, b->consumed, a->ended, b->ended, a->bare_lf, b->bare_lf, a->bare_cr, b->bare_cr,
			 a->received, b->received);
}

/* One DATA case: input, and the expected output and flags. */
struct data_case {
	const char *name;
	const char *in;
	size_t in_len;
	const char *out;
	size_t out_len;
	size_t consumed; /* 0: all of the input */
	bool ended;
	bool bare_lf, bare_cr;
	unsigned received;
};

#define IN(s) s, sizeof(s) - 1
#define OUT(s) s, sizeof(s) - 1

static const struct data_case data_cases[] = {
	{ "simple", IN("Hello\r\n.\r\n"), OUT("Hello\r\n"), 0, true, false, false, 0 },
	{ "empty message", IN(".\r\n"), OUT(""), 0, true, false, false, 0 },
	{ "end, then the next command", IN("a\r\n.\r\nQUIT\r\n"), OUT("a\r\n"), 6, true, false, false, 0 },
	{ "empty lines", IN("\r\n\r\n.\r\n"), OUT("\r\n\r\n"), 0, true, false, false, 0 },
	{ "no end yet", IN("a\r\nb\r\n"), OUT("a\r\nb\r\n"), 0, false, false, false, 0 },
	{ "dot waits", IN("a\r\n."), OUT("a\r\n"), 0, false, false, false, 0 },
	{ "dot CR waits", IN("a\r\n.\r"), OUT("a\r\n"), 0, false, false, false, 0 },
	{ "text CR waits", IN("a\r"), OUT("a\r"), 0, false, false, false, 0 },
	/* dot-unstuffing (RFC 5321 4.5.2) */
	{ "stuffed dot", IN("..x\r\n.\r\n"), OUT(".x\r\n"), 0, true, false, false, 0 },
	{ "stuffed dot line", IN("a\r\n..\r\n.\r\n"), OUT("a\r\n.\r\n"), 0, true, false, false, 0 },
	{ "stuffed dots", IN("...\r\n.\r\n"), OUT("..\r\n"), 0, true, false, false, 0 },
	{ "unstuffed dot", IN(".x\r\n.\r\n"), OUT("x\r\n"), 0, true, false, false, 0 },
	{ "dot inside a line", IN("a.b\r\n a.\r\n.\r\n"), OUT("a.b\r\n a.\r\n"), 0, true, false, false, 0 },
	{ "dot space", IN(". \r\n.\r\n"), OUT(" \r\n"), 0, true, false, false, 0 },
	/* SMTP smuggling patterns: none ends the message, each is flagged;
	 * the real <CRLF>.<CRLF> after them does end it. */
	{ "<LF>.<LF>", IN("a\n.\nMAIL FROM:<e@x>\r\n.\r\n"), OUT("a\n.\nMAIL FROM:<e@x>\r\n"), 0, true, true,
	  false, 0 },
	{ "<CR>.<CR>", IN("a\r.\rMAIL FROM:<e@x>\r\n.\r\n"), OUT("a\r.\rMAIL FROM:<e@x>\r\n"), 0, true, false,
	  true, 0 },
	{ "<LF>.<CR><LF>", IN("a\n.\r\nMAIL FROM:<e@x>\r\n.\r\n"), OUT("a\n.\r\nMAIL FROM:<e@x>\r\n"), 0, true,
	  true, false, 0 },
	{ "<CR><LF>.<LF>", IN("a\r\n.\nMAIL FROM:<e@x>\r\n.\r\n"), OUT("a\r\n\nMAIL FROM:<e@x>\r\n"), 0, true,
	  true, false, 0 },
	{ "<CR><LF>.<CR>", IN("a\r\n.\rMAIL FROM:<e@x>\r\n.\r\n"), OUT("a\r\n\rMAIL FROM:<e@x>\r\n"), 0, true,
	  false, true, 0 },
	{ "<CR><LF>.<CR><CR><LF>", IN("a\r\n.\r\r\nb\r\n.\r\n"), OUT("a\r\n\r\r\nb\r\n"), 0, true, false, true,
	  0 },
	{ "<CR>.<CR><LF>", IN("a\r.\r\nb\r\n.\r\n"), OUT("a\r.\r\nb\r\n"), 0, true, false, true, 0 },
	{ "<LF>.<CR><LF> at the start", IN("\n.\r\nb\r\n.\r\n"), OUT("\n.\r\nb\r\n"), 0, true, true, false, 0 },
	{ "<LF> at the start", IN(".\n.\r\n.\r\n"), OUT("\n.\r\n"), 0, true, true, false, 0 },
	{ "<CR><CR><LF>", IN("a\r\r\n.\r\n"), OUT("a\r\r\n"), 0, true, false, true, 0 },
	{ "bare CR then dot line", IN("a\r\r\n.\r\nrest"), OUT("a\r\r\n"), 7, true, false, true, 0 },
	{ "NUL passes", IN("a\0b\r\n.\r\n"), OUT("a\0b\r\n"), 0, true, false, false, 0 },
	/* Received: counting, header section only */
	{ "received",
	  IN("Received: a\r\nreceived:b\r\nRECEIVED \t:c\r\n d\r\nReceived-SPF: x\r\nX-Received: y\r\n"
	     "Receivedx: z\r\n Received: w\r\nReceived\r\n\r\nReceived: body\r\n.\r\n"),
	  OUT("Received: a\r\nreceived:b\r\nRECEIVED \t:c\r\n d\r\nReceived-SPF: x\r\nX-Received: y\r\n"
	      "Receivedx: z\r\n Received: w\r\nReceived\r\n\r\nReceived: body\r\n"),
	  0, true, false, false, 3 },
	{ "received, stuffed", IN("Received: a\r\n.Received: b\r\n\r\n.\r\n"),
	  OUT("Received: a\r\nReceived: b\r\n\r\n"), 0, true, false, false, 2 },
	{ "received, no body", IN("Received: a\r\nReceived: b\r\n.\r\n"), OUT("Received: a\r\nReceived: b\r\n"),
	  0, true, false, false, 2 },
	{ "received, empty line with bare LF", IN("Received: a\r\n\nReceived: b\r\n.\r\n"),
	  OUT("Received: a\r\n\nReceived: b\r\n"), 0, true, true, false, 1 },
	{ "received, CR line", IN("Received: a\r\n\rReceived: b\r\n.\r\n"), OUT("Received: a\r\n\rReceived: b\r\n"),
	  0, true, false, true, 1 },
};

/* test_cases - each case as a whole, then cut at every single offset,
 * then one octet at a time: the same result every time. */
static void test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(data_cases); i++) {
		const struct data_case *c = &data_cases[i];
		struct result whole, part;
		size_t *cuts = calloc(c->in_len + 1, sizeof *cuts);

		assert_non_null(cuts);
		scan_whole(SMTP_DATA_DOT, c->in, c->in_len, &whole);
		if (whole.out.len != c->out_len || memcmp(buf_cstr(&whole.out), c->out, c->out_len) != 0)
			fail_msg("%s: output \"%s\" (%zu octets), want %zu octets", c->name, buf_cstr(&whole.out),
				 whole.out.len, c->out_len);
		if (whole.consumed != (c->consumed != 0 ? c->consumed : c->in_len))
			fail_msg("%s: consumed %zu", c->name, whole.consumed);
		if (whole.ended != c->ended || whole.bare_lf != c->bare_lf || whole.bare_cr != c->bare_cr ||
		    whole.received != c->received)
			fail_msg("%s: ended %d bare_lf %d bare_cr %d received %u", c->name, whole.ended, whole.bare_lf,
				 whole.bare_cr, whole.received);
		for (size_t cut = 1; cut < c->in_len; cut++) {
			scan(SMTP_DATA_DOT, c->in, c->in_len, &cut, 1, &part);
			assert_same(c->name, &whole, &part);
			result_free(&part);
		}
		for (size_t k = 0; k + 1 < c->in_len; k++)
			cuts[k] = k + 1;
		scan(SMTP_DATA_DOT, c->in, c->in_len, cuts, c->in_len > 0 ? c->in_len - 1 : 0, &part);
		assert_same(c->name, &whole, &part);
		result_free(&part);
		result_free(&whole);
		free(cuts);
	}
}

/* next_random - a small deterministic generator (xorshift). */
static uint32_t next_random(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* test_random_chunking - a message full of tricky sequences, cut into
 * random chunks many times: always the same result. */
static void test_random_chunking(void **state)
{
	static const char *const pieces[] = { "\r\n", "\n", "\r", ".", "..", "\r\n.", "\r\n..", "x",
					      "Received: r\r\n", "\r\n\r\n", "\r\n.\r", "\n.\n", "long line" };
	uint32_t rnd = 12345;
	struct buf msg = BUF_INIT;

	(void)state;
	for (int round = 0; round < 200; round++) {
		struct result whole, part;
		size_t cuts[64], ncuts = 0;

		buf_reset(&msg);
		for (int k = 0; k < 40; k++)
			buf_append_str(&msg, pieces[next_random(&rnd) % NELEM(pieces)]);
		buf_append_str(&msg, "\r\n.\r\nNEXT");
		for (int mode = 0; mode < 2; mode++) {
			enum smtp_data_mode m = mode == 0 ? SMTP_DATA_DOT : SMTP_DATA_RAW;

			scan_whole(m, (const char *)msg.data, msg.len, &whole);
			for (int rep = 0; rep < 20; rep++) {
				size_t pos = 0;

				ncuts = 0;
				while (ncuts < NELEM(cuts)) {
					pos += 1 + next_random(&rnd) % 9;
					if (pos >= msg.len)
						break;
					cuts[ncuts++] = pos;
				}
				scan(m, (const char *)msg.data, msg.len, cuts, ncuts, &part);
				assert_same("random chunking", &whole, &part);
				result_free(&part);
			}
			if (m == SMTP_DATA_DOT) {
				assert_true(whole.ended);
				/* the real end is always found, and nothing after it is taken */
				assert_true(whole.consumed <= msg.len - 4);
			} else {
				assert_int_equal(whole.consumed, msg.len);
				assert_int_equal(whole.out.len, msg.len);
			}
			result_free(&whole);
		}
	}
	buf_free(&msg);
}

/* stuff - dot-stuff text (which must use CRLF only) and add the end. */
static void stuff(const struct buf *text, struct buf *out)
{
	bool line_start = true;

	for (size_t i = 0; i < text->len; i++) {
		if (line_start && text->data[i] == '.')
			buf_append_byte(out, '.');
		buf_append_byte(out, text->data[i]);
		line_start = text->data[i] == '\n';
	}
	buf_append_str(out, ".\r\n");
}

/* test_long_lines - lines far past 998 octets pass unchanged, unstuffed
 * and stuffed; content round-trips through stuffing. */
static void test_long_lines(void **state)
{
	struct buf text = BUF_INIT, wire = BUF_INIT;
	struct result r;
	size_t cuts[3] = { 997, 998, 20000 };

	(void)state;
	for (int i = 0; i < 5000; i++)
		buf_append_byte(&text, (uint8_t)('a' + i % 26));
	buf_append_str(&text, "\r\n.");
	for (int i = 0; i < 3000; i++)
		buf_append_byte(&text, '.');
	buf_append_str(&text, "\r\nshort\r\n");
	for (int i = 0; i < 70000; i++)
		buf_append_byte(&text, (uint8_t)('0' + i % 10));
	buf_append_str(&text, "\r\n");
	stuff(&text, &wire);
	scan(SMTP_DATA_DOT, (const char *)wire.data, wire.len, cuts, 3, &r);
	assert_true(r.ended);
	assert_false(r.bare_lf);
	assert_false(r.bare_cr);
	assert_int_equal(r.consumed, wire.len);
	assert_int_equal(r.out.len, text.len);
	assert_memory_equal(r.out.data, text.data, text.len);
	assert_true(r.size == text.len);
	result_free(&r);
	buf_free(&text);
	buf_free(&wire);
}

/* test_size - size counts the content after unstuffing, not the wire. */
static void test_size(void **state)
{
	struct result r;

	(void)state;
	scan_whole(SMTP_DATA_DOT, BIN("..\r\nab\r\n.\r\n"), &r);
	assert_true(r.size == 7);
	result_free(&r);
	scan_whole(SMTP_DATA_DOT, BIN(".\r\n"), &r);
	assert_true(r.size == 0);
	result_free(&r);
	scan_whole(SMTP_DATA_RAW, BIN("..\r\nab\r\n.\r\n"), &r);
	assert_true(r.size == 11);
	result_free(&r);
}

/* test_raw - BDAT mode: every octet is content; bare LF/CR are noticed
 * (including a CR at the very end, at smtp_data_finish). */
static void test_raw(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		bool bare_lf, bare_cr;
		unsigned received;
	} cases[] = {
		{ BIN("a\r\nb\r\n"), false, false, 0 },
		{ BIN(".\r\n"), false, false, 0 },
		{ BIN("a\nb"), true, false, 0 },
		{ BIN("a\rb"), false, true, 0 },
		{ BIN("a\r"), false, true, 0 },
		{ BIN("\n"), true, false, 0 },
		{ BIN("Received: a\nReceived: b\r\n\r\nReceived: c\r\n"), true, false, 2 },
		{ BIN("received:a\r\n.Received: b\r\n"), false, false, 1 },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct result r;

		scan_whole(SMTP_DATA_RAW, cases[i].in, cases[i].len, &r);
		assert_false(r.ended);
		assert_int_equal(r.consumed, cases[i].len);
		assert_int_equal(r.out.len, cases[i].len);
		assert_memory_equal(r.out.data, cases[i].in, cases[i].len);
		if (r.bare_lf != cases[i].bare_lf || r.bare_cr != cases[i].bare_cr || r.received != cases[i].received)
			fail_msg("raw case %zu: bare_lf %d bare_cr %d received %u", i, r.bare_lf, r.bare_cr,
				 r.received);
		result_free(&r);
	}
}

/* test_reuse - smtp_data_begin forgets the previous message; the header
 * state and the Received count carry over BDAT chunks. */
static void test_reuse(void **state)
{
	struct sink k = { BUF_INIT, 0, 0 };
	struct smtp_data *d = smtp_data_create(sink_output, &k);

	(void)state;
	assert_int_equal(smtp_data_feed(d, BIN("Received: x\n.\r\n")), 15);
	assert_true(smtp_data_bare_lf(d));
	assert_false(smtp_data_ended(d));
	smtp_data_begin(d, SMTP_DATA_DOT);
	assert_false(smtp_data_bare_lf(d));
	assert_int_equal(smtp_data_received(d), 0);
	assert_true(smtp_data_size(d) == 0);
	assert_int_equal(smtp_data_feed(d, BIN(".\r\n")), 3);
	assert_true(smtp_data_ended(d));
	smtp_data_begin(d, SMTP_DATA_RAW);
	buf_reset(&k.out);
	assert_int_equal(smtp_data_feed(d, BIN("Recei")), 5);
	assert_int_equal(smtp_data_feed(d, BIN("ved: 1\r")), 7);
	assert_int_equal(smtp_data_feed(d, BIN("\nReceived: 2\r\n")), 14);
	smtp_data_finish(d);
	smtp_data_finish(d);
	assert_int_equal(smtp_data_received(d), 2);
	assert_false(smtp_data_bare_cr(d));
	assert_false(smtp_data_ended(d));
	assert_string_equal(buf_cstr(&k.out), "Received: 1\r\nReceived: 2\r\n");
	smtp_data_free(&d);
	smtp_data_free(&d); /* NULL is fine */
	buf_free(&k.out);
}

/* test_big - a large message passes through in bounded chunks. */
static void test_big(void **state)
{
	struct sink k = { BUF_INIT, 0, 0 };
	struct smtp_data *d = smtp_data_create(sink_output, &k);
	struct buf in = BUF_INIT;

	(void)state;
	for (int i = 0; i < 100000; i++)
		buf_append_str(&in, i % 80 == 79 ? "\r\n" : "x");
	buf_append_str(&in, "\r\n.\r\n");
	assert_int_equal(smtp_data_feed(d, in.data, in.len), in.len);
	assert_true(smtp_data_ended(d));
	assert_int_equal(k.out.len, in.len - 3);
	assert_true(k.biggest <= SMTP_DATA_CHUNK);
	assert_true(k.calls >= (in.len - 3) / SMTP_DATA_CHUNK);
	smtp_data_free(&d);
	buf_free(&in);
	buf_free(&k.out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_random_chunking),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_raw),
		cmocka_unit_test(test_reuse),
		cmocka_unit_test(test_big),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
