#include "config.h"
/* fuzz_smtp_data.c - libFuzzer target for the DATA/BDAT content scanner
 * (libmail/smtp_data.c).
 *
 * Input: one octet (bit 0: BDAT mode; the rest seeds how the content is
 * cut into chunks), then the content as it comes from the client. It is
 * scanned in one piece and again in chunks. Checks, with abort() on any
 * violation, against simple whole-buffer reference implementations:
 *   - chunking changes nothing (output, octets consumed, end found, bare
 *     LF/CR flags, Received: count, size);
 *   - DOT mode ends exactly at the first <CRLF>.<CRLF> (or a "." line at
 *     the very start) and nowhere else;
 *   - bare LF / bare CR are flagged exactly when the input has an LF
 *     without CR before it / a CR without LF after it;
 *   - the output is the input with one leading dot removed from every
 *     line that has one (lines end at CRLF only); RAW mode passes input
 *     through untouched;
 *   - the Received: count matches a line-by-line count of the output's
 *     header section; size is the output length;
 *   - a clean message re-stuffed and scanned again gives the same output.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../libmail/smtp_data.h"
#include "../../libutil/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                               \
	do {                                                                                      \
		if (!(cond)) {                                                                    \
			fprintf(stderr, "fuzz_smtp_data: check failed: %s (line %d)\n", #cond, __LINE__); \
			abort();                                                                  \
		}                                                                                 \
	} while (0)

struct result {
	struct buf out;
	size_t consumed;
	bool ended, bare_lf, bare_cr;
	unsigned received;
	unsigned long long size;
};

static void output(void *ctx, const void *data, size_t len)
{
	struct buf *out = ctx;

	CHECK(len > 0 && len <= SMTP_DATA_CHUNK);
	buf_append(out, data, len);
}

/* scan - feed in[0..len) in chunks whose sizes come from seed (0: one
 * piece). */
static void scan(enum smtp_data_mode mode, const uint8_t *in, size_t len, uint32_t seed, struct result *r)
{
	struct smtp_data *d;
	size_t pos = 0;

	memset(r, 0, sizeof *r);
	d = smtp_data_create(output, &r->out);
	smtp_data_begin(d, mode);
	while (pos < len) {
		size_t want = len - pos, n;

		if (seed != 0) {
			seed = seed * 1103515245u + 12345u;
			want = 1 + (seed >> 16) % (want < 17 ? want : 17);
		}
		n = smtp_data_feed(d, in + pos, want);
		CHECK(n <= want);
		pos += n;
		if (n < want) {
			CHECK(smtp_data_ended(d));
			break;
		}
	}
	if (mode == SMTP_DATA_RAW)
		smtp_data_finish(d);
	r->consumed = pos;
	r->ended = smtp_data_ended(d);
	r->bare_lf = smtp_data_bare_lf(d);
	r->bare_cr = smtp_data_bare_cr(d);
	r->received = smtp_data_received(d);
	r->size = smtp_data_size(d);
	if (r->ended)
		CHECK(smtp_data_feed(d, "\r\n.\r\n", 5) == 0);
	smtp_data_free(&d);
}

/* ref_end - where DOT mode must stop: after the first <CRLF>.<CRLF>, or
 * after a "." line at the very start; 0 if there is none. */
static size_t ref_end(const uint8_t *in, size_t len)
{
	if (len >= 3 && memcmp(in, ".\r\n", 3) == 0)
		return 3;
	for (size_t i = 0; i + 5 <= len; i++)
		if (memcmp(in + i, "\r\n.\r\n", 5) == 0)
			return i + 5;
	return 0;
}

/* ref_unstuff - the content of a complete DATA message in[0..len) (the
 * final ".\r\n" already removed): drop the first dot of each line. */
static void ref_unstuff(const uint8_t *in, size_t len, struct buf *out)
{
	bool line_start = true;

	for (size_t i = 0; i < len; i++) {
		if (!(line_start && in[i] == '.'))
			buf_append_byte(out, in[i]);
		line_start = in[i] == '\n' && i > 0 && in[i - 1] == '\r';
	}
}

/* ref_received - Received: lines in the header section of content. */
static unsigned ref_received(const uint8_t *p, size_t len)
{
	unsigned count = 0;
	size_t i = 0;

	while (i < len) {
		size_t start = i, end, text;

		while (i < len && p[i] != '\n')
			i++;
		if (i >= len)
			end = len; /* a last line without LF still counts */
		else
			end = i;
		text = end - start;
		if (i < len && text > 0 && p[end - 1] == '\r')
			text--;
		if (i < len && text == 0)
			break; /* the empty line */
		if (text >= 9 && strncasecmp((const char *)p + start, "received", 8) == 0) {
			size_t k = start + 8;

			while (k < start + text && (p[k] == ' ' || p[k] == '\t'))
				k++;
			if (k < start + text && p[k] == ':')
				count++;
		}
		i++;
	}
	return count;
}

static void check_same(const struct result *a, const struct result *b)
{
	CHECK(a->out.len == b->out.len);
	CHECK(a->out.len == 0 || memcmp(a->out.data, b->out.data, a->out.len) == 0);
	CHECK(a->consumed == b->consumed && a->ended == b->ended);
	CHECK(a->bare_lf == b->bare_lf && a->bare_cr == b->bare_cr);
	CHECK(a->received == b->received && a->size == b->size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum smtp_data_mode mode;
	struct result whole, chunked, bytes;
	const uint8_t *in;
	size_t len, scope;
	bool lf = false, cr = false;

	if (size < 1)
		return 0;
	mode = data[0] & 1 ? SMTP_DATA_RAW : SMTP_DATA_DOT;
	in = data + 1;
	len = size - 1;

	scan(mode, in, len, 0, &whole);
	scan(mode, in, len, (uint32_t)data[0] | 0x100u, &chunked);
	check_same(&whole, &chunked);
	if (len <= 256) {
		/* one octet at a time */
		struct smtp_data *d;

		memset(&bytes, 0, sizeof bytes);
		d = smtp_data_create(output, &bytes.out);
		smtp_data_begin(d, mode);
		for (size_t i = 0; i < len && !smtp_data_ended(d); i++)
			bytes.consumed += smtp_data_feed(d, in + i, 1);
		if (mode == SMTP_DATA_RAW)
			smtp_data_finish(d);
		bytes.ended = smtp_data_ended(d);
		bytes.bare_lf = smtp_data_bare_lf(d);
		bytes.bare_cr = smtp_data_bare_cr(d);
		bytes.received = smtp_data_received(d);
		bytes.size = smtp_data_size(d);
		smtp_data_free(&d);
		check_same(&whole, &bytes);
		buf_free(&bytes.out);
	}

	CHECK(whole.size == whole.out.len);
	CHECK(whole.received == ref_received(whole.out.data, whole.out.len));

	/* the end, and bare LF/CR, against the references */
	if (mode == SMTP_DATA_DOT) {
		size_t end = ref_end(in, len);

		CHECK(whole.ended == (end != 0));
		CHECK(whole.consumed == (end != 0 ? end : len));
	} else {
		CHECK(!whole.ended && whole.consumed == len);
		CHECK(whole.out.len == len && (len == 0 || memcmp(whole.out.data, in, len) == 0));
	}
	scope = whole.consumed;
	for (size_t i = 0; i < scope; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			lf = true;
		/* a CR at the very end is undecided in DOT mode, bare in RAW */
		if (in[i] == '\r' && (i + 1 < scope ? in[i + 1] != '\n' : mode == SMTP_DATA_RAW))
			cr = true;
	}
	CHECK(whole.bare_lf == lf && whole.bare_cr == cr);

	if (mode == SMTP_DATA_DOT && whole.ended) {
		struct buf ref = BUF_INIT, wire = BUF_INIT;
		bool line_start = true;
		struct result again;

		ref_unstuff(in, whole.consumed - 3, &ref);
		CHECK(ref.len == whole.out.len && (ref.len == 0 || memcmp(ref.data, whole.out.data, ref.len) == 0));
		if (!lf && !cr) {
			/* clean: stuffing it again gives a message that scans
			 * back to the same content */
			for (size_t i = 0; i < whole.out.len; i++) {
				if (line_start && whole.out.data[i] == '.')
					buf_append_byte(&wire, '.');
				buf_append_byte(&wire, whole.out.data[i]);
				line_start = whole.out.data[i] == '\n';
			}
			buf_append_str(&wire, ".\r\n");
			scan(SMTP_DATA_DOT, wire.data, wire.len, 0, &again);
			CHECK(again.ended && again.consumed == wire.len && !again.bare_lf && !again.bare_cr);
			CHECK(again.out.len == whole.out.len &&
			      (whole.out.len == 0 || memcmp(again.out.data, whole.out.data, whole.out.len) == 0));
			buf_free(&again.out);
		}
		buf_free(&ref);
		buf_free(&wire);
	}
	buf_free(&whole.out);
	buf_free(&chunked.out);
	return 0;
}
