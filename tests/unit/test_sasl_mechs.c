#include "config.h"
/* test_sasl_mechs.c - unit tests for libmail/sasl_mechs.c: what is
 * offered with and without TLS, and the configuration check. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../libmail/sasl_mechs.h"

static void expect_offer(const char *configured, bool secure, const char *want)
{
	struct buf b = BUF_INIT;

	sasl_mechs_offered(configured, secure, &b);
	assert_string_equal(buf_cstr(&b), want);
	buf_free(&b);
}

static void test_offered(void **state)
{
	(void)state;
	expect_offer("PLAIN LOGIN SCRAM-SHA-256", true, "PLAIN LOGIN SCRAM-SHA-256");
	/* in clear, the password never travels */
	expect_offer("PLAIN LOGIN SCRAM-SHA-256", false, "SCRAM-SHA-256");
	expect_offer("PLAIN LOGIN", false, "");
	/* any case, commas, repeats and unknown names */
	expect_offer(" scram-sha-256,plain  Plain CRAM-MD5 ", true, "SCRAM-SHA-256 PLAIN");
	expect_offer("", true, "");
}

static void test_known(void **state)
{
	const char *why = NULL;

	(void)state;
	assert_true(sasl_mech_known("PLAIN"));
	assert_true(sasl_mech_known("SCRAM-SHA-256"));
	assert_false(sasl_mech_known("plain")); /* the engine upper-cases first */
	assert_false(sasl_mech_known("CRAM-MD5"));
	assert_true(sasl_mech_plaintext("LOGIN"));
	assert_false(sasl_mech_plaintext("SCRAM-SHA-256"));
	assert_true(sasl_mech_plaintext("UNKNOWN")); /* never offered in clear */
	assert_int_equal(sasl_mechs_check("PLAIN login", &why), 0);
	assert_int_equal(sasl_mechs_check("PLAIN DIGEST-MD5", &why), -1);
	assert_non_null(why);
	assert_int_equal(sasl_mechs_check("  ", &why), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_offered),
		cmocka_unit_test(test_known),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
