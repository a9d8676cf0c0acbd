/* smtp_reply_parse.c - the client side's SMTP reply parser and the EHLO
 * keyword reader (see smtp_reply_parse.h for the rules).
 *
 * Shape: octets collect in p->line until a LF; each whole line is
 * checked, and its text (after "CODE-"/"CODE ") appended to p->text
 * with a NUL after it. The last line of a reply builds the line pointer
 * array and stops the feed, so the caller sees one reply at a time and
 * knows exactly which octets came after it (the STARTTLS injection check
 * depends on that). An overlong line is not stored: the parser skips to
 * its end and only then reports the error.
 */
#include "config.h"
#include "smtp_reply_parse.h"
#include "../libutil/buf.h"
#include "../libutil/mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The longest line text (without its line end). */
#define TEXT_MAX (SMTP_REPLY_LINE_MAX - 2)

struct smtp_reply_parser {
	struct buf line;  /* the line being read, as received (a CR before the
			   * LF is still there) */
	bool skipping;    /* an overlong line: skip to its LF, then fail */
	struct buf text;  /* the reply's line texts, each followed by a NUL */
	size_t offsets[SMTP_REPLY_LINES_MAX];
	const char *ptrs[SMTP_REPLY_LINES_MAX];
	size_t nlines;
	size_t size;      /* octets of the reply so far, CRLF counted */
	int code;         /* the code of its first line, 0 before */
	bool done;        /* reply holds a whole reply */
	const char *error;
	struct smtp_parsed_reply reply;
};

struct smtp_reply_parser *smtp_reply_parser_new(void)
{
	return xnew(struct smtp_reply_parser);
}

void smtp_reply_parser_free(struct smtp_reply_parser **pp)
{
	struct smtp_reply_parser *p = *pp;

	if (p == NULL)
		return;
	*pp = NULL;
	buf_free(&p->line);
	buf_free(&p->text);
	free(p);
}

/* start_reply - forget the reply collected so far. */
static void start_reply(struct smtp_reply_parser *p)
{
	buf_reset(&p->text);
	p->nlines = 0;
	p->size = 0;
	p->code = 0;
	p->done = false;
	memset(&p->reply, 0, sizeof p->reply);
}

void smtp_reply_parser_reset(struct smtp_reply_parser *p)
{
	start_reply(p);
	buf_reset(&p->line);
	p->skipping = false;
	p->error = NULL;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* digits - 1 to 3 digits at s[*i..len); false if none. */
static bool digits(const char *s, size_t len, size_t *i)
{
	size_t start = *i;

	while (*i < len && *i - start < 3 && is_digit(s[*i]))
		(*i)++;
	return *i > start;
}

size_t smtp_reply_status(const char *text, size_t len, int code_class, char *status)
{
	size_t i = 2;

	status[0] = '\0';
	if (len < 5 || (text[0] != '2' && text[0] != '4' && text[0] != '5') || text[1] != '.')
		return 0;
	if (code_class != 0 && text[0] - '0' != code_class)
		return 0;
	if (!digits(text, len, &i) || i >= len || text[i] != '.')
		return 0;
	i++;
	if (!digits(text, len, &i))
		return 0;
	if (i < len && text[i] != ' ' && text[i] != '\t')
		return 0; /* a fourth digit, or something else glued on */
	memcpy(status, text, i);
	status[i] = '\0';
	return i;
}

/* finish - the last line is in: make the reply visible. */
static void finish(struct smtp_reply_parser *p)
{
	for (size_t i = 0; i < p->nlines; i++)
		p->ptrs[i] = (const char *)p->text.data + p->offsets[i];
	p->reply.code = p->code;
	p->reply.nlines = p->nlines;
	p->reply.lines = p->ptrs;
	smtp_reply_status(p->ptrs[0], strlen(p->ptrs[0]), p->code / 100, p->reply.status);
	p->done = true;
}

/* take_line - check the line in p->line and add it to the reply: 1 when
 * it was the last line, 0 when more follow, -1 (p->error set) when it is
 * malformed. */
static int take_line(struct smtp_reply_parser *p)
{
	const char *s = buf_cstr(&p->line);
	size_t n = p->line.len;
	int code;
	bool last;

	if (n > 0 && s[n - 1] == '\r')
		n--;
	if (n > TEXT_MAX)
		p->error = "reply line too long";
	else if (memchr(s, '\0', n) != NULL)
		p->error = "NUL in a reply line";
	else if (memchr(s, '\r', n) != NULL)
		p->error = "bare CR in a reply line";
	else if (n < 3 || !is_digit(s[0]) || !is_digit(s[1]) || !is_digit(s[2]))
		p->error = "malformed reply line (no reply code)";
	if (p->error != NULL) {
		buf_reset(&p->line);
		return -1;
	}
	code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	if (code < 200 || code > 599)
		p->error = "reply code out of range";
	else if (n > 3 && s[3] != ' ' && s[3] != '-')
		p->error = "malformed reply line (bad separator after the code)";
	else if (p->code != 0 && code != p->code)
		p->error = "different codes in the lines of one reply";
	else if (p->nlines == SMTP_REPLY_LINES_MAX)
		p->error = "too many lines in one reply";
	else if (p->size + n + 2 > SMTP_REPLY_SIZE_MAX)
		p->error = "reply too long";
	if (p->error != NULL) {
		buf_reset(&p->line);
		return -1;
	}
	last = n == 3 || s[3] == ' ';
	p->code = code;
	p->size += n + 2;
	p->offsets[p->nlines++] = p->text.len;
	if (n > 4)
		buf_append(&p->text, s + 4, n - 4);
	buf_append_byte(&p->text, '\0');
	buf_reset(&p->line);
	if (last)
		finish(p);
	return last ? 1 : 0;
}

enum smtp_reply_parse_result smtp_reply_parser_feed(struct smtp_reply_parser *p, const void *data, size_t len,
						    size_t *used_r)
{
	const uint8_t *d = data;
	size_t used = 0;

	*used_r = 0;
	if (p->error != NULL)
		return SMTP_REPLY_ERROR;
	if (p->done)
		start_reply(p);
	while (used < len) {
		const uint8_t *lf = memchr(d + used, '\n', len - used);
		size_t n = lf != NULL ? (size_t)(lf - (d + used)) + 1 : len - used;
		size_t text = lf != NULL ? n - 1 : n;
		int rc;

		used += n;
		if (p->skipping) {
			if (lf == NULL)
				continue;
			p->skipping = false;
			p->error = "reply line too long";
			*used_r = used;
			return SMTP_REPLY_ERROR;
		}
		/* One octet more than the longest text: room for the CR. */
		if (p->line.len + text > TEXT_MAX + 1) {
			buf_reset(&p->line);
			p->skipping = true;
			used -= n;
			continue; /* the skip above finds the end (or not) */
		}
		buf_append(&p->line, d + used - n, text);
		if (lf == NULL)
			break;
		rc = take_line(p);
		if (rc != 0) {
			*used_r = used;
			return rc > 0 ? SMTP_REPLY_DONE : SMTP_REPLY_ERROR;
		}
	}
	*used_r = used;
	return SMTP_REPLY_MORE;
}

const struct smtp_parsed_reply *smtp_reply_parser_reply(const struct smtp_reply_parser *p)
{
	return p->done && p->error == NULL ? &p->reply : NULL;
}

const char *smtp_reply_parser_error(const struct smtp_reply_parser *p)
{
	return p->error;
}

bool smtp_reply_parser_partial(const struct smtp_reply_parser *p)
{
	return p->error == NULL && (p->line.len > 0 || p->skipping || (!p->done && p->nlines > 0));
}

void smtp_reply_text(const struct smtp_parsed_reply *r, struct buf *out)
{
	size_t slen = strlen(r->status);
	bool first = true;

	for (size_t i = 0; i < r->nlines; i++) {
		const char *t = r->lines[i];

		if (slen > 0 && strncmp(t, r->status, slen) == 0 &&
		    (t[slen] == '\0' || t[slen] == ' ' || t[slen] == '\t')) {
			t += slen;
			while (*t == ' ' || *t == '\t')
				t++;
		}
		if (*t == '\0')
			continue;
		if (!first)
			buf_append_byte(out, ' ');
		buf_append_str(out, t);
		first = false;
	}
}

/* ---- EHLO ---------------------------------------------------------- */

static bool is_alnum(char c)
{
	return is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static char upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

size_t smtp_ehlo_keyword(const char *line, char *kw, size_t kwsize, const char **params_r)
{
	size_t n = 0;
	const char *s = line;

	kw[0] = '\0';
	*params_r = "";
	while (is_blank(*s))
		s++;
	if (!is_alnum(*s))
		return 0;
	for (; is_alnum(*s) || *s == '-'; s++) {
		if (n + 1 >= kwsize) {
			kw[0] = '\0';
			return 0;
		}
		kw[n++] = upper(*s);
	}
	kw[n] = '\0';
	if (*s == '=') {
		s++; /* the pre-RFC 2554 "AUTH=LOGIN PLAIN" form */
	} else if (is_blank(*s)) {
		while (is_blank(*s))
			s++;
	} else if (*s != '\0') {
		kw[0] = '\0';
		return 0;
	}
	*params_r = s;
	return n;
}

/* add_mechs - the mechanism names in params, upper case, to caps->auth. */
static void add_mechs(struct smtp_ehlo *caps, const char *params)
{
	const char *s = params;

	while (*s != '\0') {
		char mech[24];
		size_t n = 0, have;
		bool ok = true;

		while (is_blank(*s))
			s++;
		if (*s == '\0')
			break;
		for (; *s != '\0' && !is_blank(*s); s++) {
			/* RFC 4422 3.1: 1 to 20 of A-Z 0-9 - _ */
			if (n == 20 || !(is_alnum(*s) || *s == '-' || *s == '_'))
				ok = false;
			else
				mech[n++] = upper(*s);
		}
		if (!ok || n == 0)
			continue;
		mech[n] = '\0';
		if (smtp_ehlo_has_auth(caps, mech))
			continue;
		have = strlen(caps->auth);
		if (have + (have > 0) + n + 1 > sizeof caps->auth)
			continue;
		if (have > 0)
			caps->auth[have++] = ' ';
		memcpy(caps->auth + have, mech, n + 1);
	}
}

/* parse_size - the SIZE parameter: digits only, else 0 (no limit known). */
static unsigned long long parse_size(const char *params)
{
	unsigned long long v = 0;
	const char *s = params;

	if (!is_digit(*s))
		return 0;
	for (; is_digit(*s); s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (~0ULL - d) / 10)
			return 0; /* beyond anything we count: no limit to respect */
		v = v * 10 + d;
	}
	while (is_blank(*s))
		s++;
	return *s == '\0' ? v : 0;
}

void smtp_ehlo_parse(const struct smtp_parsed_reply *r, struct smtp_ehlo *caps)
{
	static const struct {
		const char *keyword;
		unsigned bit;
	} known[] = {
		{ "PIPELINING", SMTP_EXT_PIPELINING },
		{ "SIZE", SMTP_EXT_SIZE },
		{ "8BITMIME", SMTP_EXT_8BITMIME },
		{ "SMTPUTF8", SMTP_EXT_SMTPUTF8 },
		{ "DSN", SMTP_EXT_DSN },
		{ "STARTTLS", SMTP_EXT_STARTTLS },
		{ "AUTH", SMTP_EXT_AUTH },
		{ "ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCEDSTATUSCODES },
		{ "CHUNKING", SMTP_EXT_CHUNKING },
	};

	memset(caps, 0, sizeof *caps);
	for (size_t i = 1; i < r->nlines; i++) {
		char kw[SMTP_EHLO_KEYWORD_MAX];
		const char *params;

		if (smtp_ehlo_keyword(r->lines[i], kw, sizeof kw, &params) == 0)
			continue;
		for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
			if (strcmp(kw, known[k].keyword) != 0)
				continue;
			caps->ext |= known[k].bit;
			if (known[k].bit == SMTP_EXT_SIZE)
				caps->size = parse_size(params);
			else if (known[k].bit == SMTP_EXT_AUTH)
				add_mechs(caps, params);
			break;
		}
	}
}

bool smtp_ehlo_has_auth(const struct smtp_ehlo *caps, const char *mech)
{
	size_t n = strlen(mech);

	for (const char *p = caps->auth; *p != '\0';) {
		const char *end = strchr(p, ' ');
		size_t w = end != NULL ? (size_t)(end - p) : strlen(p);

		if (w == n && memcmp(p, mech, n) == 0)
			return true;
		p += w;
		if (*p == ' ')
			p++;
	}
	return false;
}
