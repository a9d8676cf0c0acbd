/* smtp_cmd.h - SMTP command-line parsing for the server engine: split a
 * line into verb and argument, parse the MAIL FROM and RCPT TO arguments
 * with their ESMTP parameters (RFC 1870 SIZE, RFC 6152 BODY, RFC 6531
 * SMTPUTF8, RFC 3461 DSN), the BDAT argument (RFC 3030), and xtext.
 *
 * No state, no sockets, no logging: every function works on the bytes it
 * is given (not necessarily NUL-terminated) and allocates results from
 * the caller's pool.
 *
 * Failures return a reply id from smtp_reply.h (never 0: R_GREETING is
 * no error) and a static detail text for the log in *error_r:
 *   R_SYNTAX         501 5.5.4  no "FROM:"/"TO:", junk after the path,
 *                               a malformed or repeated parameter
 *   R_BAD_SENDER     553 5.1.7  malformed MAIL FROM path
 *   R_BAD_ADDRESS    501 5.1.3  malformed RCPT TO path
 *   R_BAD_PARAM      555 5.5.4  unknown or not offered parameter
 *                               (also any parameter after HELO)
 *   R_UTF8_REQUIRED  553 5.6.7  non-ASCII path without SMTPUTF8
 * The SIZE= limit is the caller's to check (it knows the limit).
 */
#ifndef YB_SMTP_CMD_H
#define YB_SMTP_CMD_H

#include <stdbool.h>
#include <stddef.h>

struct buf;
struct mail_addr;
struct pool;

/* DSN NOTIFY= bits (RFC 3461 4.1). */
#define SMTP_NOTIFY_NEVER 0x1
#define SMTP_NOTIFY_SUCCESS 0x2
#define SMTP_NOTIFY_FAILURE 0x4
#define SMTP_NOTIFY_DELAY 0x8

struct smtp_mail_params {
	long long size;    /* SIZE=, -1 if absent */
	bool body_8bit;    /* BODY=8BITMIME */
	bool smtputf8;     /* SMTPUTF8 */
	const char *ret;   /* "FULL", "HDRS" or NULL */
	const char *envid; /* decoded ENVID or NULL */
};

struct smtp_rcpt_params {
	unsigned notify;   /* SMTP_NOTIFY_* bits; 0 = not given */
	const char *orcpt; /* "rfc822;addr" (type in lower case, address
			    * xtext-decoded), or NULL */
};

/* A command line cut in two: the verb (up to the first space) and the
 * argument (everything after that space, possibly empty). Both point
 * into the line. */
struct smtp_cmd {
	const char *verb;
	size_t verb_len;
	const char *args;
	size_t args_len;
};

/* Flags for the parsers. */
#define SMTP_CMD_ESMTP 0x1       /* the client said EHLO: parameters allowed */
#define SMTP_CMD_UTF8_OFFERED 0x2 /* MAIL: the server offers SMTPUTF8 */
#define SMTP_CMD_UTF8 0x4         /* RCPT: the transaction uses SMTPUTF8 */

/* Limits on parameter values (RFC 3461 4.4 and 5.4, decoded length). */
#define SMTP_ENVID_MAX 100
#define SMTP_ORCPT_MAX 500

/* smtp_cmd_split - cut line[0..len) (without its line end) at the first
 * space. */
void smtp_cmd_split(const char *line, size_t len, struct smtp_cmd *cmd);

/* smtp_cmd_verb_is - whether the verb is name, ignoring case. */
bool smtp_cmd_verb_is(const struct smtp_cmd *cmd, const char *name);

/* smtp_cmd_parse_mail - the argument of MAIL: "FROM:<path> [params]",
 * one optional space allowed after the colon. Fills *addr and *p (which
 * it clears first); returns 0, or a reply id as listed above. */
int smtp_cmd_parse_mail(const char *args, size_t len, unsigned flags, struct pool *pool,
			struct mail_addr *addr, struct smtp_mail_params *p, const char **error_r);

/* smtp_cmd_parse_rcpt - the argument of RCPT: "TO:<path> [params]";
 * <postmaster> is accepted, <> is not. */
int smtp_cmd_parse_rcpt(const char *args, size_t len, unsigned flags, struct pool *pool,
			struct mail_addr *addr, struct smtp_rcpt_params *p, const char **error_r);

/* smtp_cmd_parse_bdat - the argument of BDAT: "SIZE [LAST]" with SIZE at
 * most 2^63 - 1 (leading zeros allowed). Returns 0 or R_SYNTAX. */
int smtp_cmd_parse_bdat(const char *args, size_t len, unsigned long long *size_r, bool *last_r,
			const char **error_r);

/* smtp_xtext_decode - append the decoding of the xtext s[0..len) (RFC
 * 3461 4: "+XX" hex escapes, lower-case hex tolerated) to out. Returns 0,
 * or -1 for an octet outside xtext, a bad escape, or an escaped NUL. */
int smtp_xtext_decode(const char *s, size_t len, struct buf *out);

/* smtp_xtext_encode - append data[0..len) as xtext to out. */
void smtp_xtext_encode(const void *data, size_t len, struct buf *out);

#endif
