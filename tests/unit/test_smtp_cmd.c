#include "config.h"
/* test_smtp_cmd.c - unit tests for libmail/smtp_cmd.c: verb splitting, MAIL FROM / RCPT TO
 * arguments with their ESMTP parameters, BDAT arguments, xtext. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libmail/addr.h"
#include "../../libmail/smtp_cmd.h"
#include "../../libmail/smtp_reply.h"
#include "../../libutil/buf.h"
#include "../../libutil/pool.h"
#include "unit.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define ESMTP SMTP_CMD_ESMTP
#define OFFER SMTP_CMD_ESMTP | SMTP_CMD_UTF8_OFFERED
#define UTF8 SMTP_CMD_ESMTP | SMTP_CMD_UTF8

/* parse_copy - call a parser on an exact-size copy (no NUL after it), so
 * that valgrind/ASan see any read past the end. */
static char *exact_copy(const char *s, size_t len)
{
	char *copy = malloc(len > 0 ? len : 1);

	assert_non_null(copy);
	memcpy(copy, s, len);
	return copy;
}

static void test_split(void **state)
{
	static const struct {
		const char *line;
		const char *verb;
		const char *args;
	} cases[] = {
		{ "QUIT", "QUIT", "" },
		{ "MAIL FROM:<a@b>", "MAIL", "FROM:<a@b>" },
		{ "EHLO  two spaces", "EHLO", " two spaces" },
		{ "NOOP ", "NOOP", "" },
		{ "", "", "" },
		{ " lead", "", "lead" },
		{ "VRFY\tx", "VRFY\tx", "" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct smtp_cmd cmd;

		smtp_cmd_split(cases[i].line, strlen(cases[i].line), &cmd);
		if (cmd.verb_len != strlen(cases[i].verb) || memcmp(cmd.verb, cases[i].verb, cmd.verb_len) != 0)
			fail_msg("split(\"%s\"): verb \"%.*s\"", cases[i].line, (int)cmd.verb_len, cmd.verb);
		if (cmd.args_len != strlen(cases[i].args) || memcmp(cmd.args, cases[i].args, cmd.args_len) != 0)
			fail_msg("split(\"%s\"): args \"%.*s\"", cases[i].line, (int)cmd.args_len, cmd.args);
	}

	struct smtp_cmd cmd;

	smtp_cmd_split("mAiL FROM:<>", 12, &cmd);
	assert_true(smtp_cmd_verb_is(&cmd, "MAIL"));
	assert_false(smtp_cmd_verb_is(&cmd, "MAI"));
	assert_false(smtp_cmd_verb_is(&cmd, "MAILX"));
}

/* One MAIL FROM argument case. want 0 = accepted, with these results. */
struct mail_case {
	const char *args;
	unsigned flags;
	int want;
	const char *error; /* NULL: not checked */
	const char *addr;  /* addr_format of the sender */
	long long size;
	bool body_8bit;
	bool smtputf8;
	const char *ret;
	const char *envid;
};

/* A refused MAIL argument: only the reply id and error matter. */
#define MAIL_BAD(args, flags, want, error) { args, flags, want, error, NULL, 0, false, false, NULL, NULL }

static const struct mail_case mail_cases[] = {
	{ "FROM:<user@example.org>", 0, 0, NULL, "user@example.org", -1, false, false, NULL, NULL },
	{ "from:<user@example.org>", 0, 0, NULL, "user@example.org", -1, false, false, NULL, NULL },
	{ "FROM: <user@example.org>", 0, 0, NULL, "user@example.org", -1, false, false, NULL, NULL },
	{ "FROM:<>", 0, 0, NULL, "", -1, false, false, NULL, NULL },
	{ "FROM:<> ", 0, 0, NULL, "", -1, false, false, NULL, NULL },
	{ "FROM:<user@example.org> SIZE=1000", ESMTP, 0, NULL, "user@example.org", 1000, false, false, NULL, NULL },
	{ "FROM:<u@x.org>  size=0   body=8bitmime  ", ESMTP, 0, NULL, "u@x.org", 0, true, false, NULL, NULL },
	{ "FROM:<u@x.org> BODY=7BIT", ESMTP, 0, NULL, "u@x.org", -1, false, false, NULL, NULL },
	{ "FROM:<u@x.org> SIZE=99999999999999999999", ESMTP, 0, NULL, "u@x.org", LLONG_MAX, false, false, NULL,
	  NULL },
	{ "FROM:<u@x.org> SIZE=9223372036854775807", ESMTP, 0, NULL, "u@x.org", LLONG_MAX, false, false, NULL,
	  NULL },
	{ "FROM:<u@x.org> SIZE=00000000000000000012", ESMTP, 0, NULL, "u@x.org", 12, false, false, NULL, NULL },
	{ "FROM:<u@x.org> SMTPUTF8", OFFER, 0, NULL, "u@x.org", -1, false, true, NULL, NULL },
	{ "FROM:<\xc3\xbc@x.org> SMTPUTF8", OFFER, 0, NULL, "\xc3\xbc@x.org", -1, false, true, NULL, NULL },
	{ "FROM:<u@x.org> RET=FULL", ESMTP, 0, NULL, "u@x.org", -1, false, false, "FULL", NULL },
	{ "FROM:<u@x.org> ret=hdrs", ESMTP, 0, NULL, "u@x.org", -1, false, false, "HDRS", NULL },
	{ "FROM:<u@x.org> ENVID=QQ314159", ESMTP, 0, NULL, "u@x.org", -1, false, false, NULL, "QQ314159" },
	{ "FROM:<u@x.org> ENVID=a+2Bb+3dc+20d", ESMTP, 0, NULL, "u@x.org", -1, false, false, NULL, "a+b=c d" },
	{ "FROM:<u@x.org> RET=HDRS ENVID=id SIZE=5 BODY=8BITMIME SMTPUTF8", OFFER, 0, NULL, "u@x.org", 5, true,
	  true, "HDRS", "id" },
	{ "FROM:<\"a b\"@x.org>", 0, 0, NULL, "\"a b\"@x.org", -1, false, false, NULL, NULL },
	{ "FROM:<@relay.example:u@x.org>", 0, 0, NULL, "u@x.org", -1, false, false, NULL, NULL },

	/* syntax: 501 5.5.4 */
	MAIL_BAD("", 0, R_SYNTAX, "missing \"FROM:\" or \"TO:\""),
	MAIL_BAD("FROM", 0, R_SYNTAX, "missing \"FROM:\" or \"TO:\""),
	MAIL_BAD("FROM <u@x.org>", 0, R_SYNTAX, "missing \"FROM:\" or \"TO:\""),
	MAIL_BAD("TO:<u@x.org>", 0, R_SYNTAX, "missing \"FROM:\" or \"TO:\""),
	MAIL_BAD("FROM:<u@x.org>SIZE=1", ESMTP, R_SYNTAX, "junk after the address"),
	MAIL_BAD("FROM:<u@x.org>>", ESMTP, R_SYNTAX, "junk after the address"),
	MAIL_BAD("FROM:<u@x.org>\tSIZE=1", ESMTP, R_SYNTAX, "junk after the address"),
	MAIL_BAD("FROM:<u@x.org> SIZE", ESMTP, R_SYNTAX, "bad SIZE value"),
	MAIL_BAD("FROM:<u@x.org> SIZE=", ESMTP, R_SYNTAX, "bad SIZE value"),
	MAIL_BAD("FROM:<u@x.org> SIZE=12k", ESMTP, R_SYNTAX, "bad SIZE value"),
	MAIL_BAD("FROM:<u@x.org> SIZE=-1", ESMTP, R_SYNTAX, "bad SIZE value"),
	MAIL_BAD("FROM:<u@x.org> SIZE=123456789012345678901", ESMTP, R_SYNTAX, "bad SIZE value"),
	MAIL_BAD("FROM:<u@x.org> SIZE=1 SIZE=1", ESMTP, R_SYNTAX, "parameter given twice"),
	MAIL_BAD("FROM:<u@x.org> BODY=8BIT", ESMTP, R_SYNTAX, "bad BODY value"),
	MAIL_BAD("FROM:<u@x.org> BODY", ESMTP, R_SYNTAX, "parameter needs a value"),
	MAIL_BAD("FROM:<u@x.org> BODY=7BIT body=7bit", ESMTP, R_SYNTAX, "parameter given twice"),
	MAIL_BAD("FROM:<u@x.org> SMTPUTF8=yes", OFFER, R_SYNTAX, "parameter takes no value"),
	MAIL_BAD("FROM:<u@x.org> SMTPUTF8 SMTPUTF8", OFFER, R_SYNTAX, "parameter given twice"),
	MAIL_BAD("FROM:<u@x.org> RET=ALL", ESMTP, R_SYNTAX, "bad RET value"),
	MAIL_BAD("FROM:<u@x.org> ENVID=", ESMTP, R_SYNTAX, "parameter needs a value"),
	MAIL_BAD("FROM:<u@x.org> ENVID=a+2", ESMTP, R_SYNTAX, "bad ENVID value"),
	MAIL_BAD("FROM:<u@x.org> ENVID=a+00b", ESMTP, R_SYNTAX, "bad ENVID value"),
	MAIL_BAD("FROM:<u@x.org> ENVID=a+0Ab", ESMTP, R_SYNTAX, "bad ENVID value"),
	MAIL_BAD("FROM:<u@x.org> ENVID=a+C3+BC", ESMTP, R_SYNTAX, "bad ENVID value"),
	MAIL_BAD("FROM:<u@x.org> ENVID=\xc3\xbc", ESMTP, R_SYNTAX, "bad character in parameter value"),
	MAIL_BAD("FROM:<u@x.org> ENVID=a=b", ESMTP, R_SYNTAX, "bad character in parameter value"),
	MAIL_BAD("FROM:<u@x.org> =1", ESMTP, R_SYNTAX, "empty parameter keyword"),
	MAIL_BAD("FROM:<u@x.org> -X=1", ESMTP, R_SYNTAX, "bad parameter keyword"),
	MAIL_BAD("FROM:<u@x.org> X_Y=1", ESMTP, R_SYNTAX, "bad parameter keyword"),

	/* bad sender path: 553 5.1.7 */
	MAIL_BAD("FROM:u@x.org", 0, R_BAD_SENDER, "address must be enclosed in <>"),
	MAIL_BAD("FROM:<u@x.org", 0, R_BAD_SENDER, "address must end with >"),
	MAIL_BAD("FROM:  <u@x.org>", 0, R_BAD_SENDER, "address must be enclosed in <>"),
	MAIL_BAD("FROM:<u>", 0, R_BAD_SENDER, "address must be local@domain"),
	MAIL_BAD("FROM:<postmaster>", 0, R_BAD_SENDER, "address must be local@domain"),
	MAIL_BAD("FROM:<u@-x.org>", 0, R_BAD_SENDER, "bad domain"),
	MAIL_BAD("FROM:<\xff@x.org> SMTPUTF8", OFFER, R_BAD_SENDER, "bad local part"),

	/* unknown or not offered: 555 5.5.4 */
	MAIL_BAD("FROM:<u@x.org> FOO=bar", ESMTP, R_BAD_PARAM, "unknown MAIL parameter"),
	MAIL_BAD("FROM:<u@x.org> AUTH=<> AUTH=<>", ESMTP, R_SYNTAX, "parameter given twice"),
	MAIL_BAD("FROM:<u@x.org> AUTH", ESMTP, R_SYNTAX, NULL),
	MAIL_BAD("FROM:<u@x.org> NOTIFY=NEVER", ESMTP, R_BAD_PARAM, "unknown MAIL parameter"),
	MAIL_BAD("FROM:<u@x.org> BODY=BINARYMIME", ESMTP, R_BAD_PARAM, "BODY=BINARYMIME is not offered"),
	MAIL_BAD("FROM:<u@x.org> SMTPUTF8", ESMTP, R_BAD_PARAM, "SMTPUTF8 is not offered"),
	MAIL_BAD("FROM:<u@x.org> SIZE=10", 0, R_BAD_PARAM, "parameters need EHLO"),
	MAIL_BAD("FROM:<u@x.org> SMTPUTF8", SMTP_CMD_UTF8_OFFERED, R_BAD_PARAM, "parameters need EHLO"),

	/* non-ASCII without SMTPUTF8: 553 5.6.7 */
	MAIL_BAD("FROM:<\xc3\xbc@x.org>", OFFER, R_UTF8_REQUIRED, "non-ASCII address without SMTPUTF8"),
	MAIL_BAD("FROM:<u@b\xc3\xbc" "cher.example> SIZE=1", OFFER, R_UTF8_REQUIRED, NULL),
	MAIL_BAD("FROM:<\xc3\xbc@x.org>", 0, R_UTF8_REQUIRED, NULL),
};

static void test_mail(void **state)
{
	struct pool *pool = pool_create();

	(void)state;
	for (size_t i = 0; i < NELEM(mail_cases); i++) {
		const struct mail_case *c = &mail_cases[i];
		size_t len = strlen(c->args);
		char *copy = exact_copy(c->args, len);
		struct mail_addr addr;
		struct smtp_mail_params p;
		const char *error = NULL;
		int rc = smtp_cmd_parse_mail(copy, len, c->flags, pool, &addr, &p, &error);

		if (rc != c->want)
			fail_msg("MAIL \"%s\" (flags %#x): %d (%s), want %d", c->args, c->flags, rc,
				 error != NULL ? error : "-", c->want);
		if (rc != 0) {
			assert_non_null(error);
			if (c->error != NULL && strcmp(error, c->error) != 0)
				fail_msg("MAIL \"%s\": error \"%s\", want \"%s\"", c->args, error, c->error);
			free(copy);
			continue;
		}
		assert_string_equal(addr_format(pool, &addr), c->addr);
		assert_int_equal(addr.is_null, c->addr[0] == '\0');
		if (p.size != c->size)
			fail_msg("MAIL \"%s\": size %lld, want %lld", c->args, p.size, c->size);
		assert_int_equal(p.body_8bit, c->body_8bit);
		assert_int_equal(p.smtputf8, c->smtputf8);
		if (c->ret == NULL)
			assert_null(p.ret);
		else
			assert_string_equal(p.ret, c->ret);
		if (c->envid == NULL)
			assert_null(p.envid);
		else
			assert_string_equal(p.envid, c->envid);
		free(copy);
	}
	pool_destroy(&pool);
}

/* One RCPT TO argument case. */
struct rcpt_case {
	const char *args;
	unsigned flags;
	int want;
	const char *error;
	const char *addr;
	unsigned notify;
	const char *orcpt;
};

#define N_NEVER SMTP_NOTIFY_NEVER
#define N_SUCCESS SMTP_NOTIFY_SUCCESS
#define N_FAILURE SMTP_NOTIFY_FAILURE
#define N_DELAY SMTP_NOTIFY_DELAY

#define RCPT_BAD(args, flags, want, error) { args, flags, want, error, NULL, 0, NULL }

static const struct rcpt_case rcpt_cases[] = {
	{ "TO:<user@example.org>", 0, 0, NULL, "user@example.org", 0, NULL },
	{ "to: <user@example.org>", 0, 0, NULL, "user@example.org", 0, NULL },
	{ "TO:<postmaster>", 0, 0, NULL, "postmaster", 0, NULL },
	{ "TO:<Postmaster>", 0, 0, NULL, "postmaster", 0, NULL },
	{ "TO:<u@x.org> NOTIFY=NEVER", ESMTP, 0, NULL, "u@x.org", N_NEVER, NULL },
	{ "TO:<u@x.org> NOTIFY=SUCCESS,FAILURE,DELAY", ESMTP, 0, NULL, "u@x.org", N_SUCCESS | N_FAILURE | N_DELAY,
	  NULL },
	{ "TO:<u@x.org> notify=delay,failure", ESMTP, 0, NULL, "u@x.org", N_FAILURE | N_DELAY, NULL },
	{ "TO:<u@x.org> NOTIFY=FAILURE,FAILURE", ESMTP, 0, NULL, "u@x.org", N_FAILURE, NULL },
	{ "TO:<u@x.org> ORCPT=rfc822;u@x.org", ESMTP, 0, NULL, "u@x.org", 0, "rfc822;u@x.org" },
	{ "TO:<u@x.org> ORCPT=RFC822;a+2Bb@x.org", ESMTP, 0, NULL, "u@x.org", 0, "rfc822;a+b@x.org" },
	{ "TO:<u@x.org> ORCPT=rfc822;\"a+20b\"@x.org", ESMTP, 0, NULL, "u@x.org", 0, "rfc822;\"a b\"@x.org" },
	{ "TO:<u@x.org> ORCPT=utf-8;u\\x{FC}@x.org", ESMTP, 0, NULL, "u@x.org", 0, "utf-8;u\\x{FC}@x.org" },
	{ "TO:<u@x.org> NOTIFY=SUCCESS ORCPT=rfc822;v@y.org", ESMTP, 0, NULL, "u@x.org", N_SUCCESS,
	  "rfc822;v@y.org" },
	{ "TO:<\xc3\xbc@x.org>", UTF8, 0, NULL, "\xc3\xbc@x.org", 0, NULL },

	RCPT_BAD("", 0, R_SYNTAX, "missing \"FROM:\" or \"TO:\""),
	RCPT_BAD("FROM:<u@x.org>", 0, R_SYNTAX, NULL),
	RCPT_BAD("TO:<u@x.org>x", 0, R_SYNTAX, "junk after the address"),
	RCPT_BAD("TO:<u@x.org> NOTIFY=", ESMTP, R_SYNTAX, "bad NOTIFY value"),
	RCPT_BAD("TO:<u@x.org> NOTIFY=NEVER,SUCCESS", ESMTP, R_SYNTAX, "bad NOTIFY value"),
	RCPT_BAD("TO:<u@x.org> NOTIFY=SUCCESS,", ESMTP, R_SYNTAX, "bad NOTIFY value"),
	RCPT_BAD("TO:<u@x.org> NOTIFY=,SUCCESS", ESMTP, R_SYNTAX, "bad NOTIFY value"),
	RCPT_BAD("TO:<u@x.org> NOTIFY=ALWAYS", ESMTP, R_SYNTAX, "bad NOTIFY value"),
	RCPT_BAD("TO:<u@x.org> NOTIFY=NEVER NOTIFY=NEVER", ESMTP, R_SYNTAX, "parameter given twice"),
	RCPT_BAD("TO:<u@x.org> ORCPT=u@x.org", ESMTP, R_SYNTAX, "bad ORCPT value"),
	RCPT_BAD("TO:<u@x.org> ORCPT=;u@x.org", ESMTP, R_SYNTAX, "bad ORCPT value"),
	RCPT_BAD("TO:<u@x.org> ORCPT=rfc822;", ESMTP, R_SYNTAX, "bad ORCPT value"),
	RCPT_BAD("TO:<u@x.org> ORCPT=rfc_822;u@x.org", ESMTP, R_SYNTAX, "bad ORCPT value"),
	RCPT_BAD("TO:<u@x.org> ORCPT=rfc822;u+0D+0A@x.org", ESMTP, R_SYNTAX, "bad ORCPT value"),
	RCPT_BAD("TO:<u@x.org> ORCPT=rfc822;u+@x.org", ESMTP, R_SYNTAX, "bad ORCPT value"),

	RCPT_BAD("TO:<>", 0, R_BAD_ADDRESS, "null address not allowed here"),
	RCPT_BAD("TO:<u>", 0, R_BAD_ADDRESS, "address must be local@domain"),
	RCPT_BAD("TO:u@x.org", 0, R_BAD_ADDRESS, "address must be enclosed in <>"),
	RCPT_BAD("TO:<u@x..org>", 0, R_BAD_ADDRESS, "bad domain"),

	RCPT_BAD("TO:<u@x.org> SIZE=1", ESMTP, R_BAD_PARAM, "unknown RCPT parameter"),
	RCPT_BAD("TO:<u@x.org> NOTIFY=NEVER", 0, R_BAD_PARAM, "parameters need EHLO"),

	RCPT_BAD("TO:<\xc3\xbc@x.org>", ESMTP, R_UTF8_REQUIRED, "non-ASCII address without SMTPUTF8"),
	RCPT_BAD("TO:<u@b\xc3\xbc" "cher.example>", OFFER, R_UTF8_REQUIRED, NULL),
};

static void test_rcpt(void **state)
{
	struct pool *pool = pool_create();

	(void)state;
	for (size_t i = 0; i < NELEM(rcpt_cases); i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		size_t len = strlen(c->args);
		char *copy = exact_copy(c->args, len);
		struct mail_addr addr;
		struct smtp_rcpt_params p;
		const char *error = NULL;
		int rc = smtp_cmd_parse_rcpt(copy, len, c->flags, pool, &addr, &p, &error);

		if (rc != c->want)
			fail_msg("RCPT \"%s\" (flags %#x): %d (%s), want %d", c->args, c->flags, rc,
				 error != NULL ? error : "-", c->want);
		if (rc != 0) {
			assert_non_null(error);
			if (c->error != NULL && strcmp(error, c->error) != 0)
				fail_msg("RCPT \"%s\": error \"%s\", want \"%s\"", c->args, error, c->error);
			free(copy);
			continue;
		}
		assert_string_equal(addr_format(pool, &addr), c->addr);
		if (p.notify != c->notify)
			fail_msg("RCPT \"%s\": notify %#x, want %#x", c->args, p.notify, c->notify);
		if (c->orcpt == NULL)
			assert_null(p.orcpt);
		else
			assert_string_equal(p.orcpt, c->orcpt);
		free(copy);
	}
	pool_destroy(&pool);
}

static void test_param_limits(void **state)
{
	struct pool *pool = pool_create();
	struct mail_addr addr;
	struct smtp_mail_params mp;
	struct smtp_rcpt_params rp;
	char args[1200], value[600];
	const char *error = NULL;

	(void)state;
	/* ENVID: at most 100 octets once decoded */
	memset(value, 'e', 100);
	value[100] = '\0';
	snprintf(args, sizeof args, "FROM:<u@x.org> ENVID=%s", value);
	assert_int_equal(smtp_cmd_parse_mail(args, strlen(args), ESMTP, pool, &addr, &mp, &error), 0);
	assert_int_equal(strlen(mp.envid), 100);
	snprintf(args, sizeof args, "FROM:<u@x.org> ENVID=%s+41", value);
	assert_int_equal(smtp_cmd_parse_mail(args, strlen(args), ESMTP, pool, &addr, &mp, &error), R_SYNTAX);
	assert_string_equal(error, "bad ENVID value");
	/* ORCPT: at most 500 octets as sent */
	memset(value, 'o', 493);
	value[493] = '\0';
	snprintf(args, sizeof args, "TO:<u@x.org> ORCPT=rfc822;%s", value);
	assert_int_equal(smtp_cmd_parse_rcpt(args, strlen(args), ESMTP, pool, &addr, &rp, &error), 0);
	assert_int_equal(strlen(rp.orcpt), 500);
	snprintf(args, sizeof args, "TO:<u@x.org> ORCPT=rfc822;%so", value);
	assert_int_equal(smtp_cmd_parse_rcpt(args, strlen(args), ESMTP, pool, &addr, &rp, &error), R_SYNTAX);
	/* a NUL anywhere is refused, never cut at */
	assert_int_equal(smtp_cmd_parse_mail("FROM:<u@x.org> SIZE=1\0", 22, ESMTP, pool, &addr, &mp, &error),
			 R_SYNTAX);
	assert_int_equal(smtp_cmd_parse_mail("FROM:<u@x.org>\0", 15, ESMTP, pool, &addr, &mp, &error), R_SYNTAX);
	assert_int_equal(smtp_cmd_parse_mail("FROM:<u\0@x.org>", 15, ESMTP, pool, &addr, &mp, &error),
			 R_BAD_SENDER);
	pool_destroy(&pool);
}

static void test_bdat(void **state)
{
	static const struct {
		const char *args;
		int want;
		unsigned long long size;
		bool last;
	} cases[] = {
		{ "0", 0, 0, false },
		{ "100", 0, 100, false },
		{ "100 LAST", 0, 100, true },
		{ "100 last", 0, 100, true },
		{ "100  LAST ", 0, 100, true },
		{ "0 LAST", 0, 0, true },
		{ "00042", 0, 42, false },
		{ "9223372036854775807 LAST", 0, 9223372036854775807ULL, true },
		{ "9223372036854775808", R_SYNTAX, 0, false },
		{ "99999999999999999999999", R_SYNTAX, 0, false },
		{ "", R_SYNTAX, 0, false },
		{ "LAST", R_SYNTAX, 0, false },
		{ "-1", R_SYNTAX, 0, false },
		{ "+1", R_SYNTAX, 0, false },
		{ "12x", R_SYNTAX, 0, false },
		{ "12 LASTX", R_SYNTAX, 0, false },
		{ "12 LAST LAST", R_SYNTAX, 0, false },
		{ "12 FIRST", R_SYNTAX, 0, false },
		{ " 12", R_SYNTAX, 0, false },
		{ "1\t", R_SYNTAX, 0, false },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		size_t len = strlen(cases[i].args);
		char *copy = exact_copy(cases[i].args, len);
		unsigned long long size = 777;
		bool last = false;
		const char *error = NULL;
		int rc = smtp_cmd_parse_bdat(copy, len, &size, &last, &error);

		if (rc != cases[i].want)
			fail_msg("BDAT \"%s\": %d, want %d", cases[i].args, rc, cases[i].want);
		if (rc == 0) {
			assert_true(size == cases[i].size);
			assert_int_equal(last, cases[i].last);
		} else {
			assert_non_null(error);
		}
		free(copy);
	}
}

static void test_xtext(void **state)
{
	static const struct {
		const char *in;
		int rc;
		const char *out;
	} cases[] = {
		{ "", 0, "" },
		{ "plain", 0, "plain" },
		{ "a+2Bb", 0, "a+b" },
		{ "a+2bb", 0, "a+b" },
		{ "+3D+20+7E", 0, "= ~" },
		{ "+E2+82+AC", 0, "\xe2\x82\xac" },
		{ "!\"#$%&'()*,-./09:;<>?@AZ[\\]^_`az{|}~", 0, "!\"#$%&'()*,-./09:;<>?@AZ[\\]^_`az{|}~" },
		{ "a=b", -1, NULL },
		{ "a b", -1, NULL },
		{ "a+", -1, NULL },
		{ "a+4", -1, NULL },
		{ "a+4G", -1, NULL },
		{ "a+G4", -1, NULL },
		{ "+00", -1, NULL },
		{ "\x7f", -1, NULL },
		{ "\xc3\xbc", -1, NULL },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct buf out = BUF_INIT;
		size_t len = strlen(cases[i].in);
		char *copy = exact_copy(cases[i].in, len);
		int rc = smtp_xtext_decode(copy, len, &out);

		if (rc != cases[i].rc)
			fail_msg("xtext_decode(\"%s\"): %d, want %d", cases[i].in, rc, cases[i].rc);
		if (rc == 0)
			assert_string_equal(buf_cstr(&out), cases[i].out);
		buf_free(&out);
		free(copy);
	}

	/* encode: every octet but NUL round-trips; the output is xtext */
	struct buf all = BUF_INIT, enc = BUF_INIT, dec = BUF_INIT;

	for (int c = 1; c < 256; c++)
		buf_append_byte(&all, (uint8_t)c);
	smtp_xtext_encode(all.data, all.len, &enc);
	for (size_t i = 0; i < enc.len; i++)
		assert_true(enc.data[i] >= 33 && enc.data[i] <= 126 && enc.data[i] != '=');
	assert_int_equal(smtp_xtext_decode((const char *)enc.data, enc.len, &dec), 0);
	assert_int_equal(dec.len, all.len);
	assert_memory_equal(dec.data, all.data, all.len);
	buf_reset(&enc);
	smtp_xtext_encode("a+b=c d", 7, &enc);
	assert_string_equal(buf_cstr(&enc), "a+2Bb+3Dc+20d");
	buf_free(&all);
	buf_free(&enc);
	buf_free(&dec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_mail),
		cmocka_unit_test(test_rcpt),
		cmocka_unit_test(test_param_limits),
		cmocka_unit_test(test_bdat),
		cmocka_unit_test(test_xtext),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
