/* smtp_cmd.c - parse SMTP command arguments (see smtp_cmd.h).
 *
 * Grammar (RFC 5321 4.1.2, 4.1.1.11):
 *   Mail-parameters = esmtp-param *(SP esmtp-param)
 *   esmtp-param     = esmtp-keyword ["=" esmtp-value]
 *   esmtp-keyword   = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
 *   esmtp-value     = 1*(%d33-60 / %d62-126)
 * Runs of spaces between parameters and trailing spaces are tolerated
 * (common client habits that make nothing ambiguous); a TAB is not a
 * separator. Non-ASCII parameter values are refused: the only extension
 * that would allow them (RFC 6533 utf-8 ORCPT) keeps them inside
 * ORCPT=utf-8;..., which we take as printable ASCII escapes.
 */
#include "config.h"
#include "smtp_cmd.h"
#include "addr.h"
#include "smtp_reply.h"
#include "../libutil/buf.h"
#include "../libutil/pool.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

struct param {
	const char *key;
	size_t key_len;
	const char *value; /* NULL: no "=" */
	size_t value_len;
};

static bool is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* equal_nocase - s[0..len) is word, ignoring ASCII case. */
static bool equal_nocase(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

void smtp_cmd_split(const char *line, size_t len, struct smtp_cmd *cmd)
{
	const char *sp = memchr(line, ' ', len);

	cmd->verb = line;
	if (sp == NULL) {
		cmd->verb_len = len;
		cmd->args = line + len;
		cmd->args_len = 0;
	} else {
		cmd->verb_len = (size_t)(sp - line);
		cmd->args = sp + 1;
		cmd->args_len = len - cmd->verb_len - 1;
	}
}

bool smtp_cmd_verb_is(const struct smtp_cmd *cmd, const char *name)
{
	return equal_nocase(cmd->verb, cmd->verb_len, name);
}

/* hex_value - the value of a hex digit (either case), or -1. */
static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int smtp_xtext_decode(const char *s, size_t len, struct buf *out)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '+') {
			int hi, lo;

			if (len - i < 3)
				return -1;
			hi = hex_value((unsigned char)s[i + 1]);
			lo = hex_value((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -1;
			buf_append_byte(out, (unsigned char)(hi << 4 | lo));
			i += 2;
		} else if (c >= 33 && c <= 126 && c != '=') {
			buf_append_byte(out, c);
		} else {
			return -1;
		}
	}
	return 0;
}

void smtp_xtext_encode(const void *data, size_t len, struct buf *out)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		if (p[i] >= 33 && p[i] <= 126 && p[i] != '+' && p[i] != '=')
			buf_append_byte(out, p[i]);
		else
			buf_printf(out, "+%02X", p[i]);
	}
}

/* next_param - the next "KEY[=VALUE]" in s[*pos..len). Returns 1 with
 * *prm filled, 0 at the end, or -1 (a malformed keyword or value). */
static int next_param(const char *s, size_t len, size_t *pos, struct param *prm, const char **error_r)
{
	size_t i = *pos, start;

	while (i < len && s[i] == ' ')
		i++;
	if (i >= len) {
		*pos = i;
		return 0;
	}
	start = i;
	while (i < len && s[i] != ' ')
		i++;
	*pos = i;
	prm->key = s + start;
	prm->value = NULL;
	prm->value_len = 0;
	const char *eq = memchr(s + start, '=', i - start);

	prm->key_len = eq != NULL ? (size_t)(eq - (s + start)) : i - start;
	if (prm->key_len == 0) {
		*error_r = "empty parameter keyword";
		return -1;
	}
	for (size_t k = 0; k < prm->key_len; k++) {
		unsigned char c = (unsigned char)prm->key[k];

		if (!is_alnum(c) && (k == 0 || c != '-')) {
			*error_r = "bad parameter keyword";
			return -1;
		}
	}
	if (eq != NULL) {
		prm->value = eq + 1;
		prm->value_len = (size_t)(s + i - prm->value);
	}
	return 1;
}

/* check_value - esmtp-value syntax; required says whether "=VALUE" must
 * be there (it must not be, otherwise). */
static int check_value(const struct param *prm, bool required, const char **error_r)
{
	if (!required) {
		if (prm->value != NULL) {
			*error_r = "parameter takes no value";
			return -1;
		}
		return 0;
	}
	if (prm->value == NULL || prm->value_len == 0) {
		*error_r = "parameter needs a value";
		return -1;
	}
	for (size_t k = 0; k < prm->value_len; k++) {
		unsigned char c = (unsigned char)prm->value[k];

		if (c < 33 || c > 126 || c == '=') {
			*error_r = "bad character in parameter value";
			return -1;
		}
	}
	return 0;
}

/* decode_printable - xtext-decode value into pool memory; the result must
 * be 1..max octets of printable ASCII (SP allowed). NULL on error. */
static char *decode_printable(struct pool *pool, const char *value, size_t len, size_t max)
{
	struct buf out = BUF_INIT;
	char *result = NULL;

	if (smtp_xtext_decode(value, len, &out) == 0 && out.len > 0 && out.len <= max) {
		size_t k;

		for (k = 0; k < out.len; k++)
			if (out.data[k] < 32 || out.data[k] > 126)
				break;
		if (k == out.len)
			result = pool_strndup(pool, buf_cstr(&out), out.len);
	}
	buf_free(&out);
	return result;
}

/* parse_path_arg - "KEYWORD:" (any case), one optional space, a path;
 * *pos is left after the path. Returns 0, -1 (no keyword) or -2 (bad
 * path, *error_r from addr_parse_path). */
static int parse_path_arg(const char *args, size_t len, const char *keyword, unsigned addr_flags,
			  struct pool *pool, struct mail_addr *addr, size_t *pos, const char **error_r)
{
	size_t klen = strlen(keyword), used = 0;

	if (len < klen || strncasecmp(args, keyword, klen) != 0) {
		*error_r = "missing \"FROM:\" or \"TO:\"";
		return -1;
	}
	*pos = klen;
	if (*pos < len && args[*pos] == ' ')
		(*pos)++;
	if (addr_parse_path(args + *pos, len - *pos, addr_flags, pool, addr, &used, error_r) < 0)
		return -2;
	*pos += used;
	if (*pos < len && args[*pos] != ' ') {
		*error_r = "junk after the address";
		return -1;
	}
	return 0;
}

#define SEEN_SIZE 0x1
#define SEEN_BODY 0x2
#define SEEN_UTF8 0x4
#define SEEN_RET 0x8
#define SEEN_ENVID 0x10
#define SEEN_NOTIFY 0x20
#define SEEN_ORCPT 0x40
#define SEEN_AUTH 0x80

/* once - note that a parameter was seen; R_SYNTAX the second time. */
static int once(unsigned *seen, unsigned bit, const char **error_r)
{
	if (*seen & bit) {
		*error_r = "parameter given twice";
		return R_SYNTAX;
	}
	*seen |= bit;
	return 0;
}

/* mail_param - one MAIL FROM parameter. */
static int mail_param(const struct param *prm, unsigned flags, struct pool *pool, unsigned *seen,
		      struct smtp_mail_params *p, const char **error_r)
{
	int rc;

	if (equal_nocase(prm->key, prm->key_len, "SIZE")) {
		if ((rc = once(seen, SEEN_SIZE, error_r)) != 0)
			return rc;
		if (check_value(prm, true, error_r) < 0 || prm->value_len > 20)
			goto bad_size;
		p->size = 0;
		for (size_t k = 0; k < prm->value_len; k++) {
			int digit = prm->value[k] - '0';

			if (!is_digit((unsigned char)prm->value[k]))
				goto bad_size;
			/* Saturate: a size past what we count is simply too
			 * big (552), not a syntax error. */
			if (p->size > (LLONG_MAX - digit) / 10)
				p->size = LLONG_MAX;
			else
				p->size = p->size * 10 + digit;
		}
		return 0;
bad_size:
		*error_r = "bad SIZE value";
		return R_SYNTAX;
	}
	if (equal_nocase(prm->key, prm->key_len, "BODY")) {
		if ((rc = once(seen, SEEN_BODY, error_r)) != 0)
			return rc;
		if (check_value(prm, true, error_r) < 0)
			return R_SYNTAX;
		if (equal_nocase(prm->value, prm->value_len, "7BIT")) {
			p->body_8bit = false;
		} else if (equal_nocase(prm->value, prm->value_len, "8BITMIME")) {
			p->body_8bit = true;
		} else if (equal_nocase(prm->value, prm->value_len, "BINARYMIME")) {
			*error_r = "BODY=BINARYMIME is not offered";
			return R_BAD_PARAM;
		} else {
			*error_r = "bad BODY value";
			return R_SYNTAX;
		}
		return 0;
	}
	if (equal_nocase(prm->key, prm->key_len, "SMTPUTF8")) {
		if (!(flags & SMTP_CMD_UTF8_OFFERED)) {
			*error_r = "SMTPUTF8 is not offered";
			return R_BAD_PARAM;
		}
		if ((rc = once(seen, SEEN_UTF8, error_r)) != 0)
			return rc;
		if (check_value(prm, false, error_r) < 0)
			return R_SYNTAX;
		p->smtputf8 = true;
		return 0;
	}
	if (equal_nocase(prm->key, prm->key_len, "RET")) {
		if ((rc = once(seen, SEEN_RET, error_r)) != 0)
			return rc;
		if (check_value(prm, true, error_r) < 0)
			return R_SYNTAX;
		if (equal_nocase(prm->value, prm->value_len, "FULL")) {
			p->ret = "FULL";
		} else if (equal_nocase(prm->value, prm->value_len, "HDRS")) {
			p->ret = "HDRS";
		} else {
			*error_r = "bad RET value";
			return R_SYNTAX;
		}
		return 0;
	}
	if (equal_nocase(prm->key, prm->key_len, "ENVID")) {
		if ((rc = once(seen, SEEN_ENVID, error_r)) != 0)
			return rc;
		if (check_value(prm, true, error_r) < 0)
			return R_SYNTAX;
		p->envid = decode_printable(pool, prm->value, prm->value_len, SMTP_ENVID_MAX);
		if (p->envid == NULL) {
			*error_r = "bad ENVID value";
			return R_SYNTAX;
		}
		return 0;
	}
	if (equal_nocase(prm->key, prm->key_len, "AUTH")) {
		/* RFC 4954 5: who submitted the message originally. Accepted
		 * and not used: we pass on no such claim (the same as AUTH=<>). */
		if ((rc = once(seen, SEEN_AUTH, error_r)) != 0)
			return rc;
		if (check_value(prm, true, error_r) < 0)
			return R_SYNTAX;
		return 0;
	}
	*error_r = "unknown MAIL parameter";
	return R_BAD_PARAM;
}

/* parse_notify - "NEVER" or a list of SUCCESS, FAILURE, DELAY. */
static int parse_notify(const char *s, size_t len, unsigned *notify_r)
{
	unsigned notify = 0;
	size_t i = 0;

	for (;;) {
		size_t start = i;

		while (i < len && s[i] != ',')
			i++;
		if (equal_nocase(s + start, i - start, "NEVER"))
			notify |= SMTP_NOTIFY_NEVER;
		else if (equal_nocase(s + start, i - start, "SUCCESS"))
			notify |= SMTP_NOTIFY_SUCCESS;
		else if (equal_nocase(s + start, i - start, "FAILURE"))
			notify |= SMTP_NOTIFY_FAILURE;
		else if (equal_nocase(s + start, i - start, "DELAY"))
			notify |= SMTP_NOTIFY_DELAY;
		else
			return -1;
		if (i >= len)
			break;
		i++; /* ',' */
	}
	/* NEVER stands alone (RFC 3461 4.1). */
	if ((notify & SMTP_NOTIFY_NEVER) && notify != SMTP_NOTIFY_NEVER)
		return -1;
	*notify_r = notify;
	return 0;
}

/* parse_orcpt - "addr-type;xtext"; the result is "type;decoded" with the
 * type in lower case. */
static const char *parse_orcpt(struct pool *pool, const char *s, size_t len)
{
	const char *semi = memchr(s, ';', len);
	size_t tlen;
	char *addr, *result;

	if (semi == NULL || len > SMTP_ORCPT_MAX)
		return NULL;
	tlen = (size_t)(semi - s);
	if (tlen == 0)
		return NULL;
	for (size_t k = 0; k < tlen; k++)
		if (!is_alnum((unsigned char)s[k]) && (k == 0 || s[k] != '-'))
			return NULL;
	addr = decode_printable(pool, semi + 1, len - tlen - 1, SMTP_ORCPT_MAX);
	if (addr == NULL)
		return NULL;
	result = pool_printf(pool, "%.*s;%s", (int)tlen, s, addr);
	for (size_t k = 0; k < tlen; k++)
		if (result[k] >= 'A' && result[k] <= 'Z')
			result[k] = (char)(result[k] | 0x20);
	return result;
}

/* rcpt_param - one RCPT TO parameter. */
static int rcpt_param(const struct param *prm, struct pool *pool, unsigned *seen, struct smtp_rcpt_params *p,
		      const char **error_r)
{
	int rc;

	if (equal_nocase(prm->key, prm->key_len, "NOTIFY")) {
		if ((rc = once(seen, SEEN_NOTIFY, error_r)) != 0)
			return rc;
		if (check_value(prm, true, error_r) < 0 || parse_notify(prm->value, prm->value_len, &p->notify) < 0) {
			*error_r = "bad NOTIFY value";
			return R_SYNTAX;
		}
		return 0;
	}
	if (equal_nocase(prm->key, prm->key_len, "ORCPT")) {
		if ((rc = once(seen, SEEN_ORCPT, error_r)) != 0)
			return rc;
		if (check_value(prm, true, error_r) < 0 ||
		    (p->orcpt = parse_orcpt(pool, prm->value, prm->value_len)) == NULL) {
			*error_r = "bad ORCPT value";
			return R_SYNTAX;
		}
		return 0;
	}
	*error_r = "unknown RCPT parameter";
	return R_BAD_PARAM;
}

int smtp_cmd_parse_mail(const char *args, size_t len, unsigned flags, struct pool *pool,
			struct mail_addr *addr, struct smtp_mail_params *p, const char **error_r)
{
	struct param prm;
	unsigned seen = 0;
	size_t pos;
	int rc;

	memset(p, 0, sizeof *p);
	p->size = -1;
	rc = parse_path_arg(args, len, "FROM:", ADDR_ALLOW_NULL | ADDR_ALLOW_UTF8, pool, addr, &pos, error_r);
	if (rc != 0)
		return rc == -2 ? R_BAD_SENDER : R_SYNTAX;
	while ((rc = next_param(args, len, &pos, &prm, error_r)) > 0) {
		if (!(flags & SMTP_CMD_ESMTP)) {
			*error_r = "parameters need EHLO";
			return R_BAD_PARAM;
		}
		if ((rc = mail_param(&prm, flags, pool, &seen, p, error_r)) != 0)
			return rc;
	}
	if (rc < 0)
		return R_SYNTAX;
	if (addr->utf8 && !p->smtputf8) {
		*error_r = "non-ASCII address without SMTPUTF8";
		return R_UTF8_REQUIRED;
	}
	return 0;
}

int smtp_cmd_parse_rcpt(const char *args, size_t len, unsigned flags, struct pool *pool,
			struct mail_addr *addr, struct smtp_rcpt_params *p, const char **error_r)
{
	struct param prm;
	unsigned seen = 0;
	size_t pos;
	int rc;

	memset(p, 0, sizeof *p);
	rc = parse_path_arg(args, len, "TO:", ADDR_ALLOW_POSTMASTER | ADDR_ALLOW_UTF8, pool, addr, &pos,
			    error_r);
	if (rc != 0)
		return rc == -2 ? R_BAD_ADDRESS : R_SYNTAX;
	while ((rc = next_param(args, len, &pos, &prm, error_r)) > 0) {
		if (!(flags & SMTP_CMD_ESMTP)) {
			*error_r = "parameters need EHLO";
			return R_BAD_PARAM;
		}
		if ((rc = rcpt_param(&prm, pool, &seen, p, error_r)) != 0)
			return rc;
	}
	if (rc < 0)
		return R_SYNTAX;
	if (addr->utf8 && !(flags & SMTP_CMD_UTF8)) {
		*error_r = "non-ASCII address without SMTPUTF8";
		return R_UTF8_REQUIRED;
	}
	return 0;
}

int smtp_cmd_parse_bdat(const char *args, size_t len, unsigned long long *size_r, bool *last_r,
			const char **error_r)
{
	unsigned long long size = 0;
	size_t i = 0;

	*last_r = false;
	while (i < len && is_digit((unsigned char)args[i])) {
		unsigned digit = (unsigned)(args[i] - '0');

		if (size > ((unsigned long long)LLONG_MAX - digit) / 10) {
			*error_r = "BDAT size too large";
			return R_SYNTAX;
		}
		size = size * 10 + digit;
		i++;
	}
	if (i == 0) {
		*error_r = "BDAT needs a size";
		return R_SYNTAX;
	}
	if (i < len && args[i] != ' ') {
		*error_r = "bad BDAT size";
		return R_SYNTAX;
	}
	while (i < len && args[i] == ' ')
		i++;
	if (len - i >= 4 && strncasecmp(args + i, "LAST", 4) == 0 && (len - i == 4 || args[i + 4] == ' ')) {
		*last_r = true;
		i += 4;
	}
	while (i < len && args[i] == ' ')
		i++;
	if (i < len) {
		*error_r = "junk after BDAT size";
		return R_SYNTAX;
	}
	*size_r = size;
	return 0;
}
