/* smtp_data.c - find the end of DATA, unstuff dots, count and pass on
 * the content. See smtp_data.h for the rules; the state machine below
 * is the whole story.
 *
 * The dot rules only know CRLF as a line end: after a bare LF a "." is
 * ordinary text, and ".<LF>" or ".<CR>x" at line start is not an end.
 * Senders and receivers that disagree on where a line ends is exactly
 * what SMTP smuggling exploits, so the one definition used here is the
 * strict one, and anything else is flagged for the caller to refuse.
 *
 * The header scanner (Received: counting) works on the output, i.e. the
 * content as it will be stored; it takes any LF as a line end, since
 * after a bare LF the message is refused anyway (DATA) or allowed to
 * use it (BDAT).
 */
#include "config.h"
#include "smtp_data.h"
#include "../libutil/mem.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

enum dot_state {
	ST_LINE_START, /* after CRLF (and at the start): a "." is special */
	ST_TEXT,       /* inside a line */
	ST_CR,         /* after a CR inside a line: LF ends the line */
	ST_DOT,        /* "." at line start, held back */
	ST_DOT_CR,     /* "." CR at line start, both held back */
	ST_END         /* <CRLF>.<CRLF> seen */
};

enum hdr_state {
	H_LINE_START, /* at the start of a header line */
	H_START_CR,   /* CR at line start: an empty line if LF follows */
	H_NAME,       /* matching "received" */
	H_BLANKS,     /* "received" matched; blanks, then ':' */
	H_SKIP,       /* rest of a line that is not a Received: header */
	H_BODY        /* past the empty line: no more counting */
};

static const char received_name[] = "received";

struct smtp_data {
	smtp_data_output_fn *output;
	void *ctx;
	enum smtp_data_mode mode;
	enum dot_state state;
	enum hdr_state hdr;
	size_t hdr_matched; /* octets of "received" matched so far */
	bool raw_cr;        /* RAW mode: the last octet was a CR */
	bool bare_lf;
	bool bare_cr;
	unsigned received;
	unsigned long long size;
	size_t staged;
	unsigned char stage[SMTP_DATA_CHUNK];
};

struct smtp_data *smtp_data_create(smtp_data_output_fn *output, void *ctx)
{
	struct smtp_data *d = xnew(struct smtp_data);

	d->output = output;
	d->ctx = ctx;
	smtp_data_begin(d, SMTP_DATA_DOT);
	return d;
}

void smtp_data_free(struct smtp_data **d)
{
	xfree_ptr(d);
}

void smtp_data_begin(struct smtp_data *d, enum smtp_data_mode mode)
{
	d->mode = mode;
	d->state = ST_LINE_START;
	d->hdr = H_LINE_START;
	d->hdr_matched = 0;
	d->raw_cr = false;
	d->bare_lf = false;
	d->bare_cr = false;
	d->received = 0;
	d->size = 0;
	d->staged = 0;
}

/* flush - pass the staged output on. */
static void flush(struct smtp_data *d)
{
	if (d->staged > 0) {
		size_t n = d->staged;

		d->staged = 0;
		d->output(d->ctx, d->stage, n);
	}
}

/* header_octet - advance the header scanner by one output octet. */
static void header_octet(struct smtp_data *d, unsigned char c)
{
	switch (d->hdr) {
	case H_LINE_START:
		if (c == '\n') {
			d->hdr = H_BODY;
		} else if (c == '\r') {
			d->hdr = H_START_CR;
		} else if ((c | 0x20) == received_name[0]) {
			d->hdr = H_NAME;
			d->hdr_matched = 1;
		} else {
			d->hdr = H_SKIP;
		}
		break;
	case H_START_CR:
		d->hdr = c == '\n' ? H_BODY : H_SKIP;
		break;
	case H_NAME:
		if (c == '\n') {
			d->hdr = H_LINE_START;
		} else if ((c | 0x20) == received_name[d->hdr_matched]) {
			if (++d->hdr_matched == sizeof received_name - 1)
				d->hdr = H_BLANKS;
		} else {
			d->hdr = H_SKIP;
		}
		break;
	case H_BLANKS:
		if (c == ':') {
			if (d->received < UINT_MAX)
				d->received++;
			d->hdr = H_SKIP;
		} else if (c == '\n') {
			d->hdr = H_LINE_START;
		} else if (c != ' ' && c != '\t') {
			d->hdr = H_SKIP;
		}
		break;
	case H_SKIP:
		if (c == '\n')
			d->hdr = H_LINE_START;
		break;
	case H_BODY:
		break;
	}
}

/* emit - output n content octets (p may point into the input). */
static void emit(struct smtp_data *d, const unsigned char *p, size_t n)
{
	d->size += n;
	if (d->hdr != H_BODY)
		for (size_t i = 0; i < n && d->hdr != H_BODY; i++)
			header_octet(d, p[i]);
	while (n > 0) {
		size_t room = sizeof d->stage - d->staged;
		size_t take = n < room ? n : room;

		memcpy(d->stage + d->staged, p, take);
		d->staged += take;
		p += take;
		n -= take;
		if (d->staged == sizeof d->stage)
			flush(d);
	}
}

static void emit_octet(struct smtp_data *d, unsigned char c)
{
	emit(d, &c, 1);
}

/* text_octet - one octet inside a line (DOT mode). */
static void text_octet(struct smtp_data *d, unsigned char c)
{
	emit_octet(d, c);
	if (c == '\r') {
		d->state = ST_CR;
	} else {
		if (c == '\n')
			d->bare_lf = true;
		d->state = ST_TEXT;
	}
}

/* feed_raw - RAW mode: everything is content; note bare LF and CR. */
static size_t feed_raw(struct smtp_data *d, const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (d->raw_cr && p[i] != '\n')
			d->bare_cr = true;
		else if (!d->raw_cr && p[i] == '\n')
			d->bare_lf = true;
		d->raw_cr = p[i] == '\r';
	}
	emit(d, p, len);
	flush(d);
	return len;
}

size_t smtp_data_feed(struct smtp_data *d, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i = 0;

	if (d->mode == SMTP_DATA_RAW)
		return feed_raw(d, p, len);
	while (i < len && d->state != ST_END) {
		unsigned char c = p[i];

		switch (d->state) {
		case ST_TEXT: {
			/* The common case: a run of ordinary octets, passed on
			 * in one piece. */
			size_t start = i;

			while (i < len && p[i] != '\r' && p[i] != '\n')
				i++;
			if (i > start)
				emit(d, p + start, i - start);
			if (i < len)
				text_octet(d, p[i++]);
			continue;
		}
		case ST_LINE_START:
			if (c == '.')
				d->state = ST_DOT;
			else
				text_octet(d, c);
			break;
		case ST_CR:
			if (c == '\n') {
				emit_octet(d, c);
				d->state = ST_LINE_START;
			} else {
				/* The CR before this octet was bare. */
				d->bare_cr = true;
				text_octet(d, c);
			}
			break;
		case ST_DOT:
			if (c == '\r') {
				d->state = ST_DOT_CR;
			} else {
				/* The line has more than the dot: drop the dot
				 * (RFC 5321 4.5.2), keep the rest. */
				text_octet(d, c);
			}
			break;
		case ST_DOT_CR:
			if (c == '\n') {
				d->state = ST_END;
			} else {
				/* "." CR x: the CR was bare; the dot goes as
				 * on any longer line. */
				d->bare_cr = true;
				emit_octet(d, '\r');
				text_octet(d, c);
			}
			break;
		case ST_END:
			break;
		}
		i++;
	}
	flush(d);
	return i;
}

void smtp_data_finish(struct smtp_data *d)
{
	if (d->mode == SMTP_DATA_RAW && d->raw_cr) {
		d->bare_cr = true;
		d->raw_cr = false;
	}
	flush(d);
}

bool smtp_data_ended(const struct smtp_data *d)
{
	return d->state == ST_END;
}

unsigned long long smtp_data_size(const struct smtp_data *d)
{
	return d->size;
}

unsigned smtp_data_received(const struct smtp_data *d)
{
	return d->received;
}

bool smtp_data_bare_lf(const struct smtp_data *d)
{
	return d->bare_lf;
}

bool smtp_data_bare_cr(const struct smtp_data *d)
{
	return d->bare_cr;
}
