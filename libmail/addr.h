/* addr.h - RFC 5321 envelope addresses: parse a Reverse-path or
 * Forward-path ("<local@domain>"), and format one back for the wire.
 *
 * Accepted: Dot-string and Quoted-string local parts, domains of
 * letters, digits, '-' and '_' labels, [IPv4] and [IPv6:...] literals, a
 * source route ("<@a,@b:user@c>", ignored as RFC 5321 asks), "<>" where
 * the caller allows the null path, "<postmaster>" where the caller allows
 * it, and UTF-8 in both parts where the caller allows it (SMTPUTF8).
 * Limits: local part 64 octets, domain 255, whole path 256.
 */
#ifndef YB_ADDR_H
#define YB_ADDR_H

#include <stdbool.h>
#include <stddef.h>

struct pool;

struct mail_addr {
	const char *local;  /* unquoted: quotes removed, quoted-pairs resolved */
	const char *domain; /* as given ("" for <> and <postmaster>) */
	bool is_null;       /* <> */
	bool utf8;          /* holds non-ASCII octets */
};

#define ADDR_ALLOW_NULL 0x1       /* MAIL FROM:<> */
#define ADDR_ALLOW_UTF8 0x2       /* SMTPUTF8 given */
#define ADDR_ALLOW_POSTMASTER 0x4 /* RCPT TO:<postmaster> */

#define ADDR_LOCAL_MAX 64
#define ADDR_DOMAIN_MAX 255
#define ADDR_PATH_MAX 256

/* addr_parse_path - parse the path at the start of s[0..len). On success
 * fills *addr (strings from pool) and *consumed_r (up to and including
 * '>'); returns 0. On failure returns -1 and a static reason. */
int addr_parse_path(const char *s, size_t len, unsigned flags, struct pool *pool, struct mail_addr *addr,
		    size_t *consumed_r, const char **error_r);

/* addr_format - "local@domain", quoting the local part when it is not a
 * Dot-string; "" for the null path. Allocated from pool. */
char *addr_format(struct pool *pool, const struct mail_addr *addr);

/* addr_valid_domain - whether s is a domain or address literal as above. */
bool addr_valid_domain(const char *s, size_t len, bool allow_utf8);

/* addr_utf8_name_char - for a non-ASCII character in a mailbox name (a
 * user, alias or directory name): the length of the UTF-8 character at s
 * (at most len octets), or 0 if it is invalid UTF-8 or a character that
 * lets one name pass for another (C1 controls, invisible format and bidi
 * control characters). */
size_t addr_utf8_name_char(const char *s, size_t len);

#endif
