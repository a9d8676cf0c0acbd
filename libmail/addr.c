/* addr.c - parse and format RFC 5321 paths. */
#include "config.h"
#include "addr.h"
#include "../libutil/buf.h"
#include "../libutil/pool.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

/* utf8_decode - length of the valid UTF-8 sequence at p (at most n octets),
 * or 0 if it is not valid (overlong, surrogate, out of range, cut); the
 * code point in *cp_r. */
static size_t utf8_decode(const unsigned char *p, size_t n, unsigned long *cp_r)
{
	unsigned char c = p[0];
	size_t len;
	unsigned long cp;

	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return len;
}

static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned long cp;

	return utf8_decode(p, n, &cp);
}

size_t addr_utf8_name_char(const char *s, size_t len)
{
	unsigned long cp;
	size_t n = utf8_decode((const unsigned char *)s, len, &cp);

	if (n == 0 || cp <= 0x9f ||                    /* C1 controls */
	    (cp >= 0x200b && cp <= 0x200f) ||          /* zero-width, LRM, RLM */
	    (cp >= 0x2028 && cp <= 0x202e) ||          /* separators, bidi embeddings */
	    (cp >= 0x2060 && cp <= 0x206f) ||          /* invisible operators, bidi isolates */
	    cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb) || /* BOM, annotation */
	    (cp >= 0xe0000 && cp <= 0xe007f))          /* tags */
		return 0;
	return n;
}

static bool is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static bool is_ldh(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '_';
}

/* valid_literal - "[1.2.3.4]" or "[IPv6:...]" (s includes the brackets). */
static bool valid_literal(const char *s, size_t len)
{
	char text[64];
	unsigned char bin[16];

	/* inet_pton reads a C string: a NUL inside the brackets would end
	 * the literal early and let whatever follows it through. */
	if (len < 3 || len - 2 >= sizeof text || s[0] != '[' || s[len - 1] != ']' || memchr(s, '\0', len) != NULL)
		return false;
	memcpy(text, s + 1, len - 2);
	text[len - 2] = '\0';
	if (strncasecmp(text, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, text + 5, bin) == 1;
	return inet_pton(AF_INET, text, bin) == 1;
}

bool addr_valid_domain(const char *s, size_t len, bool allow_utf8)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t label = 0;

	if (len == 0 || len > ADDR_DOMAIN_MAX)
		return false;
	if (s[0] == '[')
		return valid_literal(s, len);
	for (size_t i = 0; i < len;) {
		if (p[i] == '.') {
			/* No empty label, no label that starts or ends with '-'. */
			if (label == 0 || p[i - 1] == '-')
				return false;
			label = 0;
			i++;
			continue;
		}
		if (p[i] >= 0x80) {
			size_t n = allow_utf8 ? utf8_len(p + i, len - i) : 0;

			if (n == 0)
				return false;
			i += n;
			label += n;
			continue;
		}
		if (!is_ldh(p[i]) || (label == 0 && p[i] == '-'))
			return false;
		i++;
		label++;
		if (label > 63)
			return false;
	}
	return label > 0 && p[len - 1] != '-';
}

/* parse_local - Dot-string or Quoted-string at s; appends the unquoted
 * form to out; returns octets consumed or 0 on error. */
static size_t parse_local(const char *s, size_t len, bool allow_utf8, struct buf *out, bool *utf8_r)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	if (len > 0 && p[0] == '"') {
		for (i = 1; i < len; i++) {
			if (p[i] == '"')
				return i + 1;
			if (p[i] == '\\') {
				if (i + 1 >= len || p[i + 1] < 32 || p[i + 1] > 126)
					return 0;
				buf_append_byte(out, p[++i]);
			} else if (p[i] >= 32 && p[i] <= 126) {
				buf_append_byte(out, p[i]);
			} else if (p[i] >= 0x80 && allow_utf8) {
				size_t n = utf8_len(p + i, len - i);

				if (n == 0)
					return 0;
				buf_append(out, p + i, n);
				*utf8_r = true;
				i += n - 1;
			} else {
				return 0;
			}
		}
		return 0; /* no closing quote */
	}
	/* Dot-string: atoms separated by single dots. */
	bool need_atom = true;

	while (i < len) {
		if (p[i] == '.') {
			if (need_atom)
				return 0;
			need_atom = true;
			buf_append_byte(out, '.');
			i++;
		} else if (is_atext(p[i])) {
			buf_append_byte(out, p[i++]);
			need_atom = false;
		} else if (p[i] >= 0x80 && allow_utf8) {
			size_t n = utf8_len(p + i, len - i);

			if (n == 0)
				return 0;
			buf_append(out, p + i, n);
			*utf8_r = true;
			i += n;
			need_atom = false;
		} else {
			break;
		}
	}
	return need_atom ? 0 : i;
}

/* skip_route - "@a,@b:" before the mailbox; returns octets to skip. */
static size_t skip_route(const char *s, size_t len, bool allow_utf8, bool *bad_r)
{
	size_t i = 0;

	*bad_r = false;
	if (len == 0 || s[0] != '@')
		return 0;
	for (;;) {
		size_t start = ++i; /* past '@' */

		while (i < len && s[i] != ',' && s[i] != ':')
			i++;
		if (i >= len || !addr_valid_domain(s + start, i - start, allow_utf8)) {
			*bad_r = true;
			return 0;
		}
		if (s[i] == ':')
			return i + 1;
		i++; /* ',' */
		if (i >= len || s[i] != '@') {
			*bad_r = true;
			return 0;
		}
	}
}

int addr_parse_path(const char *s, size_t len, unsigned flags, struct pool *pool, struct mail_addr *addr,
		    size_t *consumed_r, const char **error_r)
{
	bool allow_utf8 = (flags & ADDR_ALLOW_UTF8) != 0;
	struct buf local = BUF_INIT;
	size_t i = 1, n, end;
	bool bad;

	memset(addr, 0, sizeof *addr);
	if (len == 0 || s[0] != '<') {
		*error_r = "address must be enclosed in <>";
		return -1;
	}
	if (len >= 2 && s[1] == '>') {
		if (!(flags & ADDR_ALLOW_NULL)) {
			*error_r = "null address not allowed here";
			return -1;
		}
		addr->is_null = true;
		addr->local = addr->domain = "";
		*consumed_r = 2;
		return 0;
	}
	i += skip_route(s + i, len - i, allow_utf8, &bad);
	if (bad) {
		*error_r = "bad source route";
		return -1;
	}
	n = parse_local(s + i, len - i, allow_utf8, &local, &addr->utf8);
	if (n == 0) {
		*error_r = "bad local part";
		for (size_t k = i; k < len && s[k] != '>'; k++)
			if ((unsigned char)s[k] >= 0x80 && !allow_utf8)
				*error_r = "non-ASCII address without SMTPUTF8";
		buf_free(&local);
		return -1;
	}
	if (local.len > ADDR_LOCAL_MAX) {
		*error_r = "local part longer than 64 octets";
		buf_free(&local);
		return -1;
	}
	i += n;
	/* Only the exact form "<Postmaster>" (any case; RFC 5321 4.1.1.3):
	 * not quoted, and without a source route before it. */
	if (i < len && s[i] == '>' && (flags & ADDR_ALLOW_POSTMASTER) && i - n == 1 &&
	    n == sizeof "postmaster" - 1 && strcasecmp(buf_cstr(&local), "postmaster") == 0) {
		addr->local = pool_strdup(pool, "postmaster");
		addr->domain = "";
		*consumed_r = i + 1;
		buf_free(&local);
		return 0;
	}
	if (i >= len || s[i] != '@') {
		*error_r = "address must be local@domain";
		buf_free(&local);
		return -1;
	}
	i++;
	end = i;
	if (end < len && s[end] == '[') {
		while (end < len && s[end] != ']')
			end++;
		if (end < len)
			end++;
	} else {
		while (end < len && s[end] != '>' && s[end] != ' ')
			end++;
	}
	if (end >= len || s[end] != '>') {
		*error_r = "address must end with >";
		buf_free(&local);
		return -1;
	}
	if (!addr_valid_domain(s + i, end - i, allow_utf8)) {
		bool non_ascii = false;

		for (size_t k = i; k < end; k++)
			non_ascii |= (unsigned char)s[k] >= 0x80;
		*error_r = non_ascii && !allow_utf8 ? "non-ASCII address without SMTPUTF8" : "bad domain";
		buf_free(&local);
		return -1;
	}
	if (end + 1 > ADDR_PATH_MAX) {
		*error_r = "path longer than 256 octets";
		buf_free(&local);
		return -1;
	}
	for (size_t k = i; k < end; k++)
		addr->utf8 |= (unsigned char)s[k] >= 0x80;
	addr->local = pool_strndup(pool, buf_cstr(&local), local.len);
	addr->domain = pool_strndup(pool, s + i, end - i);
	*consumed_r = end + 1;
	buf_free(&local);
	return 0;
}

/* needs_quotes - whether the local part is not a plain Dot-string. */
static bool needs_quotes(const char *local)
{
	const unsigned char *p = (const unsigned char *)local;
	bool dot_ok = false;

	if (*p == '\0')
		return true;
	for (; *p; p++) {
		if (*p == '.') {
			if (!dot_ok)
				return true;
			dot_ok = false;
		} else if (is_atext(*p) || *p >= 0x80) {
			dot_ok = true;
		} else {
			return true;
		}
	}
	return !dot_ok;
}

char *addr_format(struct pool *pool, const struct mail_addr *addr)
{
	struct buf out = BUF_INIT;
	char *result;

	if (addr->is_null)
		return pool_strdup(pool, "");
	if (needs_quotes(addr->local)) {
		buf_append_byte(&out, '"');
		for (const char *p = addr->local; *p; p++) {
			if (*p == '"' || *p == '\\')
				buf_append_byte(&out, '\\');
			buf_append_byte(&out, (unsigned char)*p);
		}
		buf_append_byte(&out, '"');
	} else {
		buf_append_str(&out, addr->local);
	}
	if (addr->domain[0] != '\0') {
		buf_append_byte(&out, '@');
		buf_append_str(&out, addr->domain);
	}
	result = pool_strndup(pool, buf_cstr(&out), out.len);
	buf_free(&out);
	return result;
}
