#include "config.h"
/* fuzz_smtp_reply.c - libFuzzer target for the client side's SMTP reply
 * parser and EHLO reader (libmail/smtp_reply_parse.c).
 *
 * Input: one octet of seed for the chunk sizes, then the server's byte
 * stream. The stream is fed twice: in chunks of pseudo-random size, and
 * whole; after an error the parser is reset and reading goes on after
 * the octets the error used.
 *
 * Checks, with abort() on any violation (besides ASan/UBSan/LSan):
 *   - the parser uses no more than it is given, all of it when it wants
 *     more, and stops right after a line end when a reply is whole;
 *   - a reply is 1..SMTP_REPLY_LINES_MAX lines, a code of 200..599 that
 *     every line of its octets carries, texts without CR, LF or NUL and
 *     within the line limit, the size limit respected; its enhanced
 *     status is well formed and of the code's class;
 *   - the octets a reply used, parsed again on their own, give the same
 *     reply; chunking changes nothing (the renderings of both feeds are
 *     equal);
 *   - smtp_reply_text and smtp_ehlo_parse stay within their bounds: the
 *     AUTH list is NUL-terminated, each of its words is found by
 *     smtp_ehlo_has_auth, and the SIZE value is 0 unless SIZE is set.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libmail/smtp_reply_parse.h"
#include "../../libutil/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                  \
	do {                                                                                         \
		if (!(cond)) {                                                                       \
			fprintf(stderr, "fuzz_smtp_reply: check failed: %s (line %d)\n", #cond, __LINE__); \
			abort();                                                                     \
		}                                                                                    \
	} while (0)

static uint32_t next(uint32_t *rnd)
{
	*rnd ^= *rnd << 13;
	*rnd ^= *rnd >> 17;
	*rnd ^= *rnd << 5;
	return *rnd;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* check_status - "C.S.D" with C of the code's class, 1-3 digits each. */
static void check_status(const char *st, int code)
{
	size_t i = 2, n;

	if (st[0] == '\0')
		return;
	CHECK(st[0] - '0' == code / 100 && st[1] == '.');
	for (int part = 0; part < 2; part++) {
		n = 0;
		while (is_digit(st[i])) {
			i++;
			n++;
		}
		CHECK(n >= 1 && n <= 3);
		if (part == 0)
			CHECK(st[i++] == '.');
	}
	CHECK(st[i] == '\0');
}

/* check_reply - the reply is well formed and agrees with the octets it
 * was read from (raw[0..len)). */
static void check_reply(const struct smtp_parsed_reply *r, const uint8_t *raw, size_t len)
{
	size_t total = 0, lines = 0;
	struct buf text = BUF_INIT;
	struct smtp_ehlo caps;

	CHECK(r->code >= 200 && r->code <= 599);
	CHECK(r->nlines >= 1 && r->nlines <= SMTP_REPLY_LINES_MAX);
	check_status(r->status, r->code);
	for (size_t i = 0; i < r->nlines; i++) {
		size_t n = strlen(r->lines[i]);

		CHECK(n + 6 <= SMTP_REPLY_LINE_MAX);
		CHECK(memchr(r->lines[i], '\r', n) == NULL && memchr(r->lines[i], '\n', n) == NULL);
		total += n + 5;
	}
	CHECK(total <= SMTP_REPLY_SIZE_MAX);
	/* the raw octets: lines ending in LF, each starting with the code */
	CHECK(len > 0 && raw[len - 1] == '\n');
	for (size_t pos = 0; pos < len; lines++) {
		const uint8_t *lf = memchr(raw + pos, '\n', len - pos);

		CHECK(lf != NULL);
		CHECK((raw[pos] - '0') * 100 + (raw[pos + 1] - '0') * 10 + (raw[pos + 2] - '0') == r->code);
		pos = (size_t)(lf - raw) + 1;
	}
	CHECK(lines == r->nlines);
	smtp_reply_text(r, &text);
	CHECK(text.len <= total);
	buf_free(&text);
	smtp_ehlo_parse(r, &caps);
	CHECK(memchr(caps.auth, '\0', sizeof caps.auth) != NULL);
	CHECK(caps.size == 0 || (caps.ext & SMTP_EXT_SIZE));
	CHECK(caps.auth[0] == '\0' || (caps.ext & SMTP_EXT_AUTH));
	for (const char *p = caps.auth; *p != '\0';) {
		char word[32];
		size_t w = strcspn(p, " ");

		CHECK(w > 0 && w < sizeof word);
		memcpy(word, p, w);
		word[w] = '\0';
		CHECK(smtp_ehlo_has_auth(&caps, word));
		p += w;
		if (*p == ' ')
			p++;
	}
}

/* render - the reply as text, for comparing two feeds. */
static void render(struct buf *out, const struct smtp_parsed_reply *r)
{
	buf_printf(out, "%d[%s]%zu", r->code, r->status, r->nlines);
	for (size_t i = 0; i < r->nlines; i++) {
		buf_append_byte(out, '|');
		buf_append_str(out, r->lines[i]);
	}
	buf_append_byte(out, ';');
}

/* reparse - the reply's own octets, alone, give the same reply. */
static void reparse(const uint8_t *raw, size_t len, const char *want)
{
	struct smtp_reply_parser *p = smtp_reply_parser_new();
	struct buf got = BUF_INIT;
	size_t used;

	CHECK(smtp_reply_parser_feed(p, raw, len, &used) == SMTP_REPLY_DONE);
	CHECK(used == len);
	render(&got, smtp_reply_parser_reply(p));
	CHECK(strcmp(buf_cstr(&got), want) == 0);
	buf_free(&got);
	smtp_reply_parser_free(&p);
}

/* run - parse the stream in chunks (max 0: whole), rendering into out. */
static void run(const uint8_t *s, size_t len, uint32_t seed, size_t max, struct buf *out)
{
	struct smtp_reply_parser *p = smtp_reply_parser_new();
	size_t pos = 0, start = 0; /* start: where the current reply began */
	uint32_t rnd = seed | 1;

	while (pos < len) {
		size_t n = len - pos, used;
		enum smtp_reply_parse_result rc;
		uint8_t *chunk;

		if (max > 0) {
			size_t k = 1 + next(&rnd) % max;

			if (n > k)
				n = k;
		}
		chunk = malloc(n); /* exact size: ASan sees reads past it */
		if (chunk == NULL)
			break;
		memcpy(chunk, s + pos, n);
		rc = smtp_reply_parser_feed(p, chunk, n, &used);
		CHECK(used <= n);
		if (rc == SMTP_REPLY_MORE) {
			CHECK(used == n);
			CHECK(smtp_reply_parser_reply(p) == NULL);
		} else if (rc == SMTP_REPLY_DONE) {
			const struct smtp_parsed_reply *r = smtp_reply_parser_reply(p);
			size_t mark = out->len;

			CHECK(used > 0 && chunk[used - 1] == '\n');
			CHECK(!smtp_reply_parser_partial(p) && smtp_reply_parser_error(p) == NULL);
			check_reply(r, s + start, pos + used - start);
			render(out, r);
			if (max > 0)
				reparse(s + start, pos + used - start, buf_cstr(out) + mark);
			start = pos + used;
		} else {
			const char *error = smtp_reply_parser_error(p);
			size_t end = pos + used;

			CHECK(error != NULL && smtp_reply_parser_reply(p) == NULL);
			CHECK(used > 0 && chunk[used - 1] == '\n');
			buf_printf(out, "ERROR(%s)@%zu;", error, end);
			CHECK(smtp_reply_parser_feed(p, chunk, n, &used) == SMTP_REPLY_ERROR && used == 0);
			CHECK(!smtp_reply_parser_partial(p));
			/* go on after the octets the error used */
			smtp_reply_parser_reset(p);
			free(chunk);
			pos = start = end;
			continue;
		}
		free(chunk);
		pos += used;
	}
	if (smtp_reply_parser_partial(p))
		buf_append_str(out, "+partial");
	smtp_reply_parser_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf chunked = BUF_INIT, whole = BUF_INIT;
	static const size_t maxes[] = { 1, 3, 16, 300, 5000 };

	if (size < 1)
		return 0;
	run(data + 1, size - 1, 0x9e3779b9u ^ data[0], maxes[data[0] % 5], &chunked);
	run(data + 1, size - 1, 1, 0, &whole);
	CHECK(strcmp(buf_cstr(&chunked), buf_cstr(&whole)) == 0);
	buf_free(&chunked);
	buf_free(&whole);
	return 0;
}
