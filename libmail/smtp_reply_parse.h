/* smtp_reply_parse.h - reading SMTP replies on the client side: an
 * incremental parser that takes the server's bytes in any pieces and
 * gives back whole replies (RFC 5321 4.2: one or more "CODE-text" lines
 * ending in one "CODE text" line), the RFC 3463 enhanced status code of
 * a reply, its text, and the EHLO keywords (RFC 5321 4.1.1.1).
 *
 * What counts as a reply (anything else is a protocol error, reported
 * once the offending line has been read to its end):
 *  - each line is three digits, a code from 200 to 599, then ' ' (the
 *    last line), '-' (more lines follow) or the end of the line (a last
 *    line without text);
 *  - every line of a reply carries the same code;
 *  - a line ends in CRLF. A bare LF is accepted as a line end too (many
 *    servers send it, Postfix accepts it, and a reply carries no
 *    content whose boundaries could be faked); a CR anywhere else, or a
 *    NUL, is an error;
 *  - a line holds at most SMTP_REPLY_LINE_MAX octets counting a CRLF
 *    (longer: an error, after skipping to its end without storing it),
 *    a reply at most SMTP_REPLY_LINES_MAX lines and SMTP_REPLY_SIZE_MAX
 *    octets (each line counted with a CRLF).
 *
 * Memory: the parser owns the reply it returns; it stays valid until the
 * next feed, reset or free. No logging, no callbacks; nothing here is
 * fatal except running out of memory.
 */
#ifndef YB_SMTP_REPLY_PARSE_H
#define YB_SMTP_REPLY_PARSE_H

#include <stdbool.h>
#include <stddef.h>

struct buf;

#define SMTP_REPLY_LINE_MAX 2048        /* octets per line, CRLF included */
#define SMTP_REPLY_LINES_MAX 100        /* lines per reply */
#define SMTP_REPLY_SIZE_MAX (64 * 1024) /* octets per reply */

/* "5.999.999" and a NUL */
#define SMTP_STATUS_SIZE 10

struct smtp_parsed_reply {
	int code;                     /* 200..599 */
	char status[SMTP_STATUS_SIZE]; /* the enhanced status code of the first
				       * line ("5.1.1"), or "" */
	size_t nlines;                /* at least 1 */
	const char *const *lines;     /* each line's text after "CODE-" or "CODE "
				       * ("" for a bare code): no line end, no
				       * NUL, no CR */
};

enum smtp_reply_parse_result {
	SMTP_REPLY_MORE,  /* every octet given was used; no whole reply yet */
	SMTP_REPLY_DONE,  /* a whole reply: smtp_reply_parser_reply() */
	SMTP_REPLY_ERROR, /* a protocol error: smtp_reply_parser_error() */
};

struct smtp_reply_parser;

struct smtp_reply_parser *smtp_reply_parser_new(void);

/* smtp_reply_parser_free - release *p (NULL is fine) and set it to NULL. */
void smtp_reply_parser_free(struct smtp_reply_parser **p);

/* smtp_reply_parser_reset - forget any partial reply and any error. */
void smtp_reply_parser_reset(struct smtp_reply_parser *p);

/* smtp_reply_parser_feed - read data[0..len) up to the end of the next
 * whole reply, and no further: *used_r tells how many octets were taken
 * (all of them with MORE); the caller feeds the rest again for the next
 * reply. An error is sticky: later feeds use nothing and return ERROR
 * until a reset. The previous reply is gone once this is called. */
enum smtp_reply_parse_result smtp_reply_parser_feed(struct smtp_reply_parser *p, const void *data, size_t len,
						    size_t *used_r);

/* smtp_reply_parser_reply - the reply after DONE (else NULL). */
const struct smtp_parsed_reply *smtp_reply_parser_reply(const struct smtp_reply_parser *p);

/* smtp_reply_parser_error - what was wrong, after ERROR (a static text,
 * e.g. "reply line too long"), else NULL. */
const char *smtp_reply_parser_error(const struct smtp_reply_parser *p);

/* smtp_reply_parser_partial - whether octets of an unfinished reply are
 * held (a line without its end, or lines of a multiline reply). */
bool smtp_reply_parser_partial(const struct smtp_reply_parser *p);

/* smtp_reply_status - the RFC 3463 enhanced status code at the start of
 * text[0..len): class 2, 4 or 5, subject and detail of 1 to 3 digits,
 * followed by a space or the end. Copies it into status (size
 * SMTP_STATUS_SIZE) and returns its length, or returns 0 (status "")
 * when there is none. code_class, if not 0, is the reply code's first
 * digit: a status of another class does not count (RFC 3463 2: the
 * class must agree with the reply). */
size_t smtp_reply_status(const char *text, size_t len, int code_class, char *status);

/* smtp_reply_text - append the reply's text to out: the lines joined by
 * one space, with the enhanced status code (and the blanks after it)
 * left out of each line that starts with r->status. Not sanitised. */
void smtp_reply_text(const struct smtp_parsed_reply *r, struct buf *out);

/* ---- EHLO -------------------------------------------------------- */

/* Service extensions, as SMTP_EXT_* bits of smtp_ehlo.ext. */
#define SMTP_EXT_PIPELINING 0x001 /* RFC 2920 */
#define SMTP_EXT_SIZE 0x002       /* RFC 1870 */
#define SMTP_EXT_8BITMIME 0x004   /* RFC 6152 */
#define SMTP_EXT_SMTPUTF8 0x008   /* RFC 6531 */
#define SMTP_EXT_DSN 0x010        /* RFC 3461 */
#define SMTP_EXT_STARTTLS 0x020   /* RFC 3207 */
#define SMTP_EXT_AUTH 0x040       /* RFC 4954 (also the obsolete "AUTH=") */
#define SMTP_EXT_ENHANCEDSTATUSCODES 0x080 /* RFC 2034 */
#define SMTP_EXT_CHUNKING 0x100   /* RFC 3030 */

#define SMTP_EHLO_KEYWORD_MAX 64  /* longer keywords are ignored */
#define SMTP_EHLO_AUTH_MAX 256    /* room for the mechanism list */

struct smtp_ehlo {
	unsigned ext;                   /* SMTP_EXT_* */
	unsigned long long size;        /* the SIZE limit; 0 = none given (or
					 * not a number) */
	char auth[SMTP_EHLO_AUTH_MAX];  /* the AUTH mechanisms, upper case,
					 * one space between, without duplicates
					 * (those that do not fit are dropped) */
};

/* smtp_ehlo_keyword - split one EHLO line (a text of r->lines, from the
 * second on) into its keyword, upper-cased into kw (size kwsize, at
 * least 2), and its parameters: *params_r points to them in line (after
 * the blanks, or after '=' in "AUTH=..."), "" if none. Returns the
 * keyword's length, or 0 when the line does not start with a keyword
 * (letters, digits and '-', starting with a letter or digit) or it does
 * not fit. */
size_t smtp_ehlo_keyword(const char *line, char *kw, size_t kwsize, const char **params_r);

/* smtp_ehlo_parse - the extensions the EHLO reply r announces (its first
 * line, the greeting, is skipped). Unknown keywords are ignored. */
void smtp_ehlo_parse(const struct smtp_parsed_reply *r, struct smtp_ehlo *caps);

/* smtp_ehlo_has_auth - whether caps offers the mechanism (upper case). */
bool smtp_ehlo_has_auth(const struct smtp_ehlo *caps, const char *mech);

#endif
