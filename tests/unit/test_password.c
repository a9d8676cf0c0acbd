#include "config.h"
/* test_password.c - unit tests for libmail/password.c: crypt(3) hashes
 * (known vectors, constant-time verification, unusable hashes) and
 * SCRAM-SHA-256 secrets (RFC 7677's example, parsing, fakes). */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "../../libmail/password.h"
#include "unit.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* SHA-crypt's published test vector, and a yescrypt one made with
 * libxcrypt (crypt("pencil", "$y$j9T$abcdefghijklmnopqrstu.")). */
static const struct {
	const char *hash;
	const char *password;
} vectors[] = {
	{ "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
	  "Hello world!" },
	{ "$y$j9T$abcdefghijklmnopqrstu.$oy5mM7nFcgRZbQVAFb.9lKMNNCEoOUjL1JcJpqKBPD6", "pencil" },
};

static void test_crypt_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(vectors); i++) {
		const char *pw = vectors[i].password;

		assert_int_equal(password_verify(vectors[i].hash, pw, strlen(pw)), 1);
		assert_int_equal(password_verify(vectors[i].hash, pw, strlen(pw) - 1), 0);
		assert_int_equal(password_verify(vectors[i].hash, "Hello world?", 12), 0);
		assert_int_equal(password_verify(vectors[i].hash, "", 0), 0);
	}
}

static void test_crypt_round_trip(void **state)
{
	const char *error = NULL;
	char *hash = password_hash("s3cret pass", 11, &error);
	char *other;

	(void)state;
	assert_non_null(hash);
	assert_true(strncmp(hash, "$y$", 3) == 0);
	assert_null(strstr(hash, "s3cret"));
	assert_int_equal(password_verify(hash, "s3cret pass", 11), 1);
	assert_int_equal(password_verify(hash, "s3cret pasS", 11), 0);
	assert_int_equal(password_verify(hash, "s3cret pass\0x", 13), 0); /* NUL inside */
	/* A fresh salt each time. */
	other = password_hash("s3cret pass", 11, &error);
	assert_non_null(other);
	assert_string_not_equal(hash, other);
	free(other);
	/* The hash used as a password is not the password. */
	assert_int_equal(password_verify(hash, hash, strlen(hash)), 0);
	free(hash);
	assert_null(password_hash("a\0b", 3, &error));
	assert_non_null(error);
	/* The dummy check returns, whatever it is given. */
	password_verify_dummy("anything", 8);
	password_verify_dummy("", 0);
}

static void test_crypt_unusable(void **state)
{
	static const char *const bad[] = { "", "*", "*0", "!$y$j9T$abcdefghijklmnopqrstu.$oy5mM7nFcgRZ", "$9$nonsense" };
	char *long_pw = malloc(PASSWORD_MAX + 2);

	(void)state;
	for (size_t i = 0; i < NELEM(bad); i++)
		if (password_verify(bad[i], "plaintext", 9) != -1)
			fail_msg("hash \"%s\" accepted as usable", bad[i]);
	/* A stored string that is not a hash never matches itself (here
	 * libxcrypt reads "pl" as a DES salt). */
	assert_true(password_verify("plaintext", "plaintext", 9) <= 0);
	assert_int_equal(password_verify(NULL, "x", 1), -1);
	memset(long_pw, 'a', PASSWORD_MAX + 1);
	long_pw[PASSWORD_MAX + 1] = '\0';
	assert_int_equal(password_verify(vectors[1].hash, long_pw, PASSWORD_MAX + 1), 0);
	free(long_pw);
}

/* RFC 7677, section 3: user "user", password "pencil", this salt and
 * 4096 iterations. The keys below are the ones the RFC's exchange proves:
 * SHA-256(proof XOR HMAC(StoredKey, AuthMessage)) = StoredKey, and
 * HMAC(ServerKey, AuthMessage) is the server's v= value. */
#define RFC7677_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC7677_SECRET                                                                                    \
	"SCRAM-SHA-256$4096:" RFC7677_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"                \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

/* Remembered successes: the right password again is accepted (from the
 * cache), a wrong one is still refused, and a new hash for the same user
 * (a new password) does not accept the old password. */
static void test_verified_cache(void **state)
{
	const char *error = NULL;
	char *old_hash = password_hash("first-secret", 12, &error);
	char *new_hash = password_hash("second-secret", 13, &error);

	(void)state;
	assert_non_null(old_hash);
	assert_non_null(new_hash);
	for (int i = 0; i < 3; i++)
		assert_int_equal(password_verify(old_hash, "first-secret", 12), 1);
	assert_int_equal(password_verify(old_hash, "first-secreT", 12), 0);
	assert_int_equal(password_verify(old_hash, "first-secret", 11), 0);
	assert_int_equal(password_verify(old_hash, "first-secret\0", 13), 0);
	assert_int_equal(password_verify(new_hash, "first-secret", 12), 0);
	assert_int_equal(password_verify(new_hash, "second-secret", 13), 1);
	assert_int_equal(password_verify(new_hash, "second-secret", 13), 1);
	assert_int_equal(password_verify(old_hash, "first-secret", 12), 1);
	free(old_hash);
	free(new_hash);
}

static void test_scram_rfc7677(void **state)
{
	static const uint8_t salt[] = { 0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
					0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81 };
	char *secret;

	(void)state;
	secret = password_scram_compute("pencil", 6, salt, sizeof salt, 4096);
	assert_non_null(secret);
	assert_string_equal(secret, RFC7677_SECRET);
	free(secret);
	assert_true(password_scram_valid(RFC7677_SECRET));
	assert_int_equal(password_scram_check(RFC7677_SECRET, "pencil", 6), 1);
	assert_int_equal(password_scram_check(RFC7677_SECRET, "pencil2", 7), 0);
	assert_int_equal(password_scram_check(RFC7677_SECRET, "Pencil", 6), 0);
	assert_int_equal(password_scram_check(RFC7677_SECRET, "pen\0il", 6), 0);
	assert_null(password_scram_compute("pencil", 6, salt, sizeof salt, 0));
	assert_null(password_scram_compute("pen\0il", 6, salt, sizeof salt, 4096));
}

static void test_scram_fresh(void **state)
{
	const char *error = NULL;
	char *a = password_scram_secret("correct horse", 13, &error);
	char *b = password_scram_secret("correct horse", 13, &error);

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_string_not_equal(a, b); /* salts differ */
	assert_true(strncmp(a, "SCRAM-SHA-256$4096:", 19) == 0);
	assert_null(strstr(a, "correct"));
	assert_true(password_scram_valid(a));
	assert_int_equal(password_scram_check(a, "correct horse", 13), 1);
	assert_int_equal(password_scram_check(b, "correct horse", 13), 1);
	assert_int_equal(password_scram_check(a, "correct horsE", 13), 0);
	free(a);
	free(b);
}

static void test_scram_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"SCRAM-SHA-1$4096:" RFC7677_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4095:" RFC7677_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$04096:" RFC7677_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$40x6:" RFC7677_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:" RFC7677_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4q=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:" RFC7677_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
		"SCRAM-SHA-256$4096:" RFC7677_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU= ",
		"SCRAM-SHA-256$4096:W22Z aJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"$y$j9T$abcdefghijklmnopqrstu.$oy5mM7nFcgRZbQVAFb.9lKMNNCEoOUjL1JcJpqKBPD6",
	};

	(void)state;
	for (size_t i = 0; i < NELEM(bad); i++) {
		if (password_scram_valid(bad[i]))
			fail_msg("secret %zu accepted: %s", i, bad[i]);
		assert_int_equal(password_scram_check(bad[i], "pencil", 6), -1);
	}
	assert_false(password_scram_valid(NULL));
}

static void test_scram_fake(void **state)
{
	uint8_t key[PASSWORD_FAKE_KEY_LEN], key2[PASSWORD_FAKE_KEY_LEN];
	char *a, *a2, *b, *c;

	(void)state;
	assert_int_equal(password_random(key, sizeof key), 0);
	memcpy(key2, key, sizeof key);
	key2[0] ^= 1;
	a = password_scram_fake(key, "nobody@example.com");
	a2 = password_scram_fake(key, "nobody@example.com");
	b = password_scram_fake(key, "other@example.com");
	c = password_scram_fake(key2, "nobody@example.com");
	assert_true(password_scram_valid(a));
	assert_string_equal(a, a2); /* stable: the same salt every time */
	assert_string_not_equal(a, b);
	assert_string_not_equal(a, c);
	assert_int_equal(password_scram_check(a, "", 0), 0);
	free(a);
	free(a2);
	free(b);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crypt_vectors),   cmocka_unit_test(test_crypt_round_trip),
		cmocka_unit_test(test_crypt_unusable),  cmocka_unit_test(test_scram_rfc7677),
		cmocka_unit_test(test_scram_fresh),     cmocka_unit_test(test_scram_malformed),
		cmocka_unit_test(test_scram_fake),      cmocka_unit_test(test_verified_cache),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
