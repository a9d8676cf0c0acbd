#include "config.h"
/* test_dsn.c - unit tests for libmail/dsn.c: the three kinds of report
 * (failure, delay warning, success), the RFC 3464 fields of each
 * recipient, and how much of the original each carries. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "../../libmail/dsn.h"
#include "../../libutil/buf.h"
#include "unit.h"

static const char original[] = "Subject: hello\r\nMessage-Id: <m1@example.test>\r\n\r\nthe body\r\n";

static char *build(const struct dsn_rcpt *rcpts, int n, bool full)
{
	struct buf out = BUF_INIT;
	struct dsn_report r = {
		.reporting_mta = "mx.example.test",
		.queue_id = "0660E76F9678250078E70000",
		.sender = "alice@example.test",
		.arrival = 1795000000,
		.envid = "env-1",
		.return_full = full,
		.rcpts = rcpts,
		.rcpt_count = n,
		.message_id = "0660E76F9678250078E70001",
		.boundary = "0660E76F9678250078E70001/mx.example.test",
	};

	dsn_build(&out, &r, original, sizeof original - 1, 1000);
	buf_append_byte(&out, '\0');
	return buf_steal(&out);
}

static void test_failure(void **state)
{
	const struct dsn_rcpt rcpts[] = {
		{ "bob@remote.test", "rfc822;bob@example.test", "failed", "5.1.1",
		  "550 5.1.1 <bob@remote.test>: no such user", 0 },
		{ "carol@remote.test", NULL, "delivered", "2.0.0", "250 2.0.0 Ok", 0 },
	};
	char *t = build(rcpts, 2, true);

	(void)state;
	assert_non_null(strstr(t, "Subject: Undelivered Mail Returned to Sender\r\n"));
	assert_non_null(strstr(t, "could not be delivered to one or more recipients"));
	assert_non_null(strstr(t, "Original-Recipient: rfc822;bob@example.test\r\n"
				  "Final-Recipient: rfc822; bob@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
				  "Diagnostic-Code: smtp; 550 5.1.1 <bob@remote.test>: no such user\r\n"));
	assert_non_null(strstr(t, "Action: delivered\r\n"));
	assert_null(strstr(t, "Will-Retry-Until"));
	assert_non_null(strstr(t, "Original-Envelope-Id: env-1\r\n"));
	/* RET=FULL: the whole message */
	assert_non_null(strstr(t, "Content-Type: message/rfc822\r\n\r\nSubject: hello\r\n"));
	assert_non_null(strstr(t, "the body\r\n"));
	free(t);
}

static void test_delay_warning(void **state)
{
	const struct dsn_rcpt rcpts[] = {
		{ "bob@remote.test", NULL, "delayed", "4.4.1", "connect to mx.remote.test[192.0.2.1]:25: Connection refused",
		  1795432000 },
	};
	char *t = build(rcpts, 1, false);

	(void)state;
	assert_non_null(strstr(t, "Subject: Delayed Mail (still being retried)\r\n"));
	assert_non_null(strstr(t, "could not be delivered yet"));
	assert_null(strstr(t, "could not be delivered to one or more"));
	assert_non_null(strstr(t, "Action: delayed\r\nStatus: 4.4.1\r\n"
				  "Diagnostic-Code: X-Yubin; connect to mx.remote.test[192.0.2.1]:25: Connection refused\r\n"
				  "Will-Retry-Until: "));
	/* 1795432000 is Mon, 23 Nov 2026 11:06:40 UTC */
	assert_non_null(strstr(t, "Will-Retry-Until: Mon, 23 Nov 2026 11:06:40 +0000\r\n"));
	assert_non_null(strstr(t, "    retried until Mon, 23 Nov 2026 11:06:40 +0000\r\n"));
	/* headers only */
	assert_non_null(strstr(t, "Content-Type: text/rfc822-headers\r\n\r\nSubject: hello\r\n"));
	assert_null(strstr(t, "the body"));
	free(t);
}

static void test_success_only(void **state)
{
	const struct dsn_rcpt rcpts[] = {
		{ "carol@remote.test", NULL, "delivered", "2.0.0", "250 2.0.0 Ok: queued as X", 0 },
	};
	char *t = build(rcpts, 1, false);

	(void)state;
	assert_non_null(strstr(t, "Subject: Successful Mail Delivery Report\r\n"));
	assert_non_null(strstr(t, "Your message was delivered to the recipients below."));
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_failure),
		cmocka_unit_test(test_delay_warning),
		cmocka_unit_test(test_success_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
