#include "config.h"
/* fuzz_smtp_cmd.c - libFuzzer target for SMTP command arguments
 * (libmail/smtp_cmd.c).
 *
 * Input: one octet of parser flags (SMTP_CMD_*), then a command line as
 * a client would send it (without CRLF). The line is split into verb and
 * argument, and the argument goes through every parser: MAIL, RCPT, BDAT
 * and xtext. Checks, with abort() on any violation:
 *   - nothing reads past the input (exact-size copies);
 *   - a failure is a known reply id with an error text;
 *   - a success obeys the grammar: SIZE >= -1, RET is FULL/HDRS, ENVID
 *     and ORCPT are printable and within their limits, NOTIFY=NEVER is
 *     alone, SMTPUTF8 only when offered, non-ASCII only with SMTPUTF8;
 *   - the parsed result, written back as a canonical command, parses to
 *     the same result (for MAIL, RCPT, BDAT and xtext).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libmail/addr.h"
#include "../../libmail/smtp_cmd.h"
#include "../../libmail/smtp_reply.h"
#include "../../libutil/buf.h"
#include "../../libutil/pool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                              \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "fuzz_smtp_cmd: check failed: %s (line %d)\n", #cond, __LINE__); \
			abort();                                                                 \
		}                                                                                \
	} while (0)

static bool printable(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 32 || (unsigned char)*s > 126)
			return false;
	return true;
}

static bool same_addr(const struct mail_addr *a, const struct mail_addr *b)
{
	return strcmp(a->local, b->local) == 0 && strcmp(a->domain, b->domain) == 0 && a->is_null == b->is_null &&
	       a->utf8 == b->utf8;
}

static bool same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void check_failure(int rc, const char *error)
{
	CHECK(rc > 0 && rc < R_REPLY_COUNT && rc != R_GREETING);
	CHECK(error != NULL && error[0] != '\0');
}

static void fuzz_mail(const char *args, size_t len, unsigned flags, struct pool *pool)
{
	struct mail_addr a, b;
	struct smtp_mail_params p, q;
	struct buf line = BUF_INIT;
	const char *error = NULL;
	int rc = smtp_cmd_parse_mail(args, len, flags, pool, &a, &p, &error);

	if (rc != 0) {
		check_failure(rc, error);
		CHECK(rc == R_SYNTAX || rc == R_BAD_SENDER || rc == R_BAD_PARAM || rc == R_UTF8_REQUIRED);
		return;
	}
	CHECK(p.size >= -1);
	CHECK(p.ret == NULL || strcmp(p.ret, "FULL") == 0 || strcmp(p.ret, "HDRS") == 0);
	CHECK(p.envid == NULL || printable(p.envid, SMTP_ENVID_MAX));
	CHECK(!p.smtputf8 || (flags & SMTP_CMD_UTF8_OFFERED));
	CHECK(!a.utf8 || p.smtputf8);
	if (!(flags & SMTP_CMD_ESMTP))
		CHECK(p.size == -1 && !p.body_8bit && !p.smtputf8 && p.ret == NULL && p.envid == NULL);

	/* canonical form */
	buf_printf(&line, "FROM:<%s>", addr_format(pool, &a));
	if (p.size >= 0)
		buf_printf(&line, " SIZE=%lld", p.size);
	if (p.body_8bit)
		buf_append_str(&line, " BODY=8BITMIME");
	if (p.smtputf8)
		buf_append_str(&line, " SMTPUTF8");
	if (p.ret != NULL)
		buf_printf(&line, " RET=%s", p.ret);
	if (p.envid != NULL) {
		buf_append_str(&line, " ENVID=");
		smtp_xtext_encode(p.envid, strlen(p.envid), &line);
	}
	rc = smtp_cmd_parse_mail((const char *)line.data, line.len, flags, pool, &b, &q, &error);
	if (rc != 0) {
		fprintf(stderr, "fuzz_smtp_cmd: \"%s\" does not parse back: %d %s\n", buf_cstr(&line), rc, error);
		abort();
	}
	CHECK(same_addr(&a, &b));
	CHECK(p.size == q.size && p.body_8bit == q.body_8bit && p.smtputf8 == q.smtputf8);
	CHECK(same_str(p.ret, q.ret) && same_str(p.envid, q.envid));
	buf_free(&line);
}

static void fuzz_rcpt(const char *args, size_t len, unsigned flags, struct pool *pool)
{
	struct mail_addr a, b;
	struct smtp_rcpt_params p, q;
	struct buf line = BUF_INIT;
	const char *error = NULL;
	int rc = smtp_cmd_parse_rcpt(args, len, flags, pool, &a, &p, &error);

	if (rc != 0) {
		check_failure(rc, error);
		CHECK(rc == R_SYNTAX || rc == R_BAD_ADDRESS || rc == R_BAD_PARAM || rc == R_UTF8_REQUIRED);
		return;
	}
	CHECK(!a.is_null);
	CHECK(!a.utf8 || (flags & SMTP_CMD_UTF8));
	CHECK((p.notify & ~0xfu) == 0);
	CHECK(!(p.notify & SMTP_NOTIFY_NEVER) || p.notify == SMTP_NOTIFY_NEVER);
	if (p.orcpt != NULL) {
		const char *semi = strchr(p.orcpt, ';');

		CHECK(semi != NULL && semi > p.orcpt && semi[1] != '\0');
		CHECK(printable(p.orcpt, 2 * SMTP_ORCPT_MAX));
		for (const char *t = p.orcpt; t < semi; t++)
			CHECK(!(*t >= 'A' && *t <= 'Z'));
	}
	if (!(flags & SMTP_CMD_ESMTP))
		CHECK(p.notify == 0 && p.orcpt == NULL);

	buf_printf(&line, "TO:<%s>", addr_format(pool, &a));
	if (p.notify != 0) {
		const char *sep = "";

		buf_append_str(&line, " NOTIFY=");
		if (p.notify & SMTP_NOTIFY_NEVER)
			buf_append_str(&line, "NEVER");
		if (p.notify & SMTP_NOTIFY_SUCCESS) {
			buf_printf(&line, "%sSUCCESS", sep);
			sep = ",";
		}
		if (p.notify & SMTP_NOTIFY_FAILURE) {
			buf_printf(&line, "%sFAILURE", sep);
			sep = ",";
		}
		if (p.notify & SMTP_NOTIFY_DELAY)
			buf_printf(&line, "%sDELAY", sep);
	}
	if (p.orcpt != NULL) {
		const char *semi = strchr(p.orcpt, ';');

		buf_printf(&line, " ORCPT=%.*s;", (int)(semi - p.orcpt), p.orcpt);
		smtp_xtext_encode(semi + 1, strlen(semi + 1), &line);
	}
	rc = smtp_cmd_parse_rcpt((const char *)line.data, line.len, flags, pool, &b, &q, &error);
	if (rc != 0) {
		/* xtext encoding can make an ORCPT longer than the 500 it was */
		CHECK(p.orcpt != NULL && rc == R_SYNTAX);
	} else {
		CHECK(same_addr(&a, &b));
		CHECK(p.notify == q.notify && same_str(p.orcpt, q.orcpt));
	}
	buf_free(&line);
}

static void fuzz_bdat(const char *args, size_t len)
{
	unsigned long long size = 0, again = 0;
	bool last = false, last_again = false;
	const char *error = NULL;
	char line[64];
	int rc = smtp_cmd_parse_bdat(args, len, &size, &last, &error);

	if (rc != 0) {
		CHECK(rc == R_SYNTAX && error != NULL);
		return;
	}
	CHECK(size <= 9223372036854775807ULL);
	snprintf(line, sizeof line, "%llu%s", size, last ? " LAST" : "");
	CHECK(smtp_cmd_parse_bdat(line, strlen(line), &again, &last_again, &error) == 0);
	CHECK(again == size && last_again == last);
}

static void fuzz_xtext(const char *s, size_t len)
{
	struct buf out = BUF_INIT, enc = BUF_INIT, back = BUF_INIT;

	if (smtp_xtext_decode(s, len, &out) == 0) {
		CHECK(out.len <= len);
		CHECK(memchr(out.data != NULL ? out.data : (const uint8_t *)"", '\0', out.len) == NULL);
		smtp_xtext_encode(out.data, out.len, &enc);
		CHECK(smtp_xtext_decode((const char *)enc.data, enc.len, &back) == 0);
		CHECK(back.len == out.len && (out.len == 0 || memcmp(back.data, out.data, out.len) == 0));
	}
	buf_free(&out);
	buf_free(&enc);
	buf_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_cmd cmd;
	struct pool *pool;
	unsigned flags;
	char *line;
	size_t len;

	if (size < 1)
		return 0;
	flags = data[0] & (SMTP_CMD_ESMTP | SMTP_CMD_UTF8_OFFERED | SMTP_CMD_UTF8);
	len = size - 1;
	line = malloc(len > 0 ? len : 1);
	if (line == NULL)
		return 0;
	memcpy(line, data + 1, len);
	pool = pool_create();

	smtp_cmd_split(line, len, &cmd);
	CHECK(cmd.verb == line && cmd.verb_len <= len);
	CHECK(memchr(cmd.verb, ' ', cmd.verb_len) == NULL);
	if (cmd.verb_len < len) {
		CHECK(line[cmd.verb_len] == ' ');
		CHECK(cmd.args == line + cmd.verb_len + 1 && cmd.args_len == len - cmd.verb_len - 1);
	} else {
		CHECK(cmd.args_len == 0);
	}

	/* Each parser on an exact-size copy of the argument. */
	char *args = malloc(cmd.args_len > 0 ? cmd.args_len : 1);

	if (args != NULL) {
		memcpy(args, cmd.args, cmd.args_len);
		fuzz_mail(args, cmd.args_len, flags, pool);
		fuzz_rcpt(args, cmd.args_len, flags, pool);
		fuzz_bdat(args, cmd.args_len);
		free(args);
	}
	fuzz_xtext(line, len);
	pool_destroy(&pool);
	free(line);
	return 0;
}
