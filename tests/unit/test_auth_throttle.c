#include "config.h"
/* test_auth_throttle.c - unit tests for auth/auth_throttle.c: delays and
 * blocks per address and per account, lapsing counts, success resets,
 * the bounded tables, and the address keys (IPv6 per /64). */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../../auth/auth_throttle.h"
#include "unit.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const struct auth_throttle_limits limits = {
	.window = 900, .delay_after = 3, .block_after = 10, .block = 600, .max_entries = 100,
};

static void test_delay_then_block(void **state)
{
	struct auth_throttle *t = auth_throttle_new(&limits);
	int64_t now = 1000;

	(void)state;
	for (int i = 1; i <= 12; i++) {
		enum auth_throttle_state want = i <= 3 ? AUTH_THROTTLE_OK
					       : i <= 10 ? AUTH_THROTTLE_DELAY : AUTH_THROTTLE_BLOCK;

		/* Before attempt i, i - 1 failures are counted. */
		if (auth_throttle_addr(t, "192.0.2.7", now) != want)
			fail_msg("attempt %d: address state %d, wanted %d", i, auth_throttle_addr(t, "192.0.2.7", now),
				 want);
		assert_int_equal(auth_throttle_account(t, "bob@example.com", now), want);
		if (want != AUTH_THROTTLE_BLOCK)
			auth_throttle_failure(t, "192.0.2.7", "bob@example.com", now);
		now += 5;
	}
	/* Others are not affected. */
	assert_int_equal(auth_throttle_addr(t, "192.0.2.8", now), AUTH_THROTTLE_OK);
	assert_int_equal(auth_throttle_account(t, "alice@example.com", now), AUTH_THROTTLE_OK);
	assert_int_equal(auth_throttle_addr(t, NULL, now), AUTH_THROTTLE_OK);
	/* The block lasts block seconds from the failure that caused it
	 * (at 1000 + 9 * 5), then the count starts from zero. */
	assert_int_equal(auth_throttle_addr(t, "192.0.2.7", 1045 + 599), AUTH_THROTTLE_BLOCK);
	assert_int_equal(auth_throttle_addr(t, "192.0.2.7", 1045 + 600), AUTH_THROTTLE_OK);
	assert_int_equal(auth_throttle_account(t, "bob@example.com", 1045 + 600), AUTH_THROTTLE_OK);
	assert_int_equal(auth_throttle_entries(t), 0);
	auth_throttle_failure(t, "192.0.2.7", NULL, 2000);
	assert_int_equal(auth_throttle_addr(t, "192.0.2.7", 2000), AUTH_THROTTLE_OK);
	auth_throttle_free(&t);
	assert_null(t);
	auth_throttle_free(&t);
}

static void test_window_lapses(void **state)
{
	struct auth_throttle *t = auth_throttle_new(&limits);

	(void)state;
	for (int i = 0; i < 3; i++)
		auth_throttle_failure(t, "192.0.2.1", "carol@example.org", 100 + i);
	assert_int_equal(auth_throttle_addr(t, "192.0.2.1", 102), AUTH_THROTTLE_DELAY);
	/* A count lapses window seconds after the last failure... */
	assert_int_equal(auth_throttle_addr(t, "192.0.2.1", 102 + 899), AUTH_THROTTLE_DELAY);
	assert_int_equal(auth_throttle_account(t, "carol@example.org", 102 + 900), AUTH_THROTTLE_OK);
	assert_int_equal(auth_throttle_addr(t, "192.0.2.1", 102 + 900), AUTH_THROTTLE_OK);
	/* ... and each failure keeps it alive: two a little less than a
	 * window apart add up. */
	for (int i = 0; i < 10; i++)
		auth_throttle_failure(t, "192.0.2.1", NULL, 5000 + i * 800);
	assert_int_equal(auth_throttle_addr(t, "192.0.2.1", 5000 + 9 * 800), AUTH_THROTTLE_BLOCK);
	auth_throttle_free(&t);
}

static void test_success_resets(void **state)
{
	struct auth_throttle *t = auth_throttle_new(&limits);

	(void)state;
	for (int i = 0; i < 5; i++)
		auth_throttle_failure(t, "192.0.2.1", "bob@example.com", 10);
	auth_throttle_failure(t, "192.0.2.2", "bob@example.com", 10);
	assert_int_equal(auth_throttle_account(t, "bob@example.com", 10), AUTH_THROTTLE_DELAY);
	auth_throttle_success(t, "192.0.2.1", "bob@example.com");
	assert_int_equal(auth_throttle_addr(t, "192.0.2.1", 11), AUTH_THROTTLE_OK);
	assert_int_equal(auth_throttle_account(t, "bob@example.com", 11), AUTH_THROTTLE_OK);
	/* The other address keeps its (one) failure. */
	assert_int_equal(auth_throttle_entries(t), 1);
	auth_throttle_success(t, NULL, NULL);
	auth_throttle_free(&t);
}

static void test_bounded(void **state)
{
	struct auth_throttle_limits small = limits;
	struct auth_throttle *t;
	char name[64];

	(void)state;
	small.max_entries = 50;
	small.delay_after = 1;
	t = auth_throttle_new(&small);
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof name, "user%d@example.com", i);
		auth_throttle_failure(t, NULL, name, 100 + i);
	}
	assert_int_equal(auth_throttle_entries(t), 50);
	/* The newest are kept, the oldest went. */
	assert_int_equal(auth_throttle_account(t, "user999@example.com", 1100), AUTH_THROTTLE_DELAY);
	assert_int_equal(auth_throttle_account(t, "user950@example.com", 1100), AUTH_THROTTLE_DELAY);
	assert_int_equal(auth_throttle_account(t, "user949@example.com", 1100), AUTH_THROTTLE_OK);
	/* A failure refreshes an entry's place. */
	auth_throttle_failure(t, NULL, "user950@example.com", 1101);
	auth_throttle_failure(t, NULL, "new@example.com", 1102);
	assert_int_equal(auth_throttle_account(t, "user950@example.com", 1102), AUTH_THROTTLE_DELAY);
	assert_int_equal(auth_throttle_account(t, "user951@example.com", 1102), AUTH_THROTTLE_OK);
	auth_throttle_free(&t);
}

static const struct {
	const char *in;
	const char *key; /* NULL: not an address */
} keys[] = {
	{ "192.0.2.7", "192.0.2.7" },
	{ "::ffff:192.0.2.7", "192.0.2.7" },
	{ "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64" },
	{ "2001:DB8:1:2::99", "2001:db8:1:2::/64" },
	{ "::1", "::/64" },
	{ "192.0.2", NULL },
	{ "192.0.2.256", NULL },
	{ "example.com", NULL },
	{ "", NULL },
	{ "1.2.3.4 ", NULL },
};

static void test_addr_keys(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(keys); i++) {
		char out[AUTH_THROTTLE_KEY_MAX];
		int rc = auth_throttle_addr_key(keys[i].in, out);

		if (keys[i].key == NULL) {
			if (rc != -1)
				fail_msg("\"%s\" accepted as an address", keys[i].in);
		} else {
			if (rc != 0)
				fail_msg("\"%s\" refused", keys[i].in);
			assert_string_equal(out, keys[i].key);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delay_then_block), cmocka_unit_test(test_window_lapses),
		cmocka_unit_test(test_success_resets),   cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_addr_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
