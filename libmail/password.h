/* password.h - the two forms a password is stored in, and how each is
 * checked (glue for libxcrypt and OpenSSL):
 *
 *   a crypt(3) hash (yescrypt, "$y$..."), which PLAIN and LOGIN logins and
 *   "mailctl user test-login" check the typed password against;
 *
 *   a SCRAM-SHA-256 secret, "SCRAM-SHA-256$<iter>:<b64 salt>$<b64
 *   StoredKey>:<b64 ServerKey>" (the form Cyrus SASL's scram plugin reads
 *   from the authPassword property): enough for the server side of a
 *   SCRAM exchange, useless for logging in with another mechanism.
 *   SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iter),
 *   StoredKey = SHA-256(HMAC(SaltedPassword, "Client Key")),
 *   ServerKey = HMAC(SaltedPassword, "Server Key") (RFC 5802, RFC 7677).
 *
 * Neither holds the password. Passwords are bytes with a length (a SASL
 * response is not NUL-terminated); one with a NUL inside never matches.
 *
 * XXX SCRAM clients SASLprep the password (RFC 4013) before hashing it;
 * the secret is computed from the password's bytes as typed, which is the
 * same thing for ASCII and for text already in NFKC without mapped
 * characters. A password outside that still works with PLAIN and LOGIN.
 */
#ifndef YB_PASSWORD_H
#define YB_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PASSWORD_MAX 1024             /* longer passwords never match */
#define PASSWORD_SCRAM_ITERATIONS 4096 /* RFC 7677's minimum, Cyrus's default */
#define PASSWORD_SCRAM_SALT_LEN 16
#define PASSWORD_SCRAM_PREFIX "SCRAM-SHA-256$"
#define PASSWORD_FAKE_KEY_LEN 32

/* password_hash - a yescrypt hash of the password with a fresh salt (new
 * memory), or NULL and a static *error_r. */
char *password_hash(const void *password, size_t len, const char **error_r);

/* password_verify - 1 if the password matches the crypt(3) hash, 0 if it
 * does not, -1 if the hash is unusable (empty, not a crypt(3) string).
 * Compares in constant time. */
int password_verify(const char *hash, const void *password, size_t len);

/* password_verify_dummy - spend about the time password_verify takes on
 * a default yescrypt hash, and match nothing: for an unknown user, so
 * that the answer's timing does not tell which users exist. */
void password_verify_dummy(const void *password, size_t len);

/* password_scram_secret - the SCRAM-SHA-256 secret of the password with
 * a fresh salt (new memory), or NULL and a static *error_r. */
char *password_scram_secret(const void *password, size_t len, const char **error_r);

/* password_scram_compute - the secret for a given salt and iteration
 * count (new memory), or NULL if the password is unusable (NUL inside,
 * too long) or the count is 0. */
char *password_scram_compute(const void *password, size_t len, const uint8_t *salt, size_t salt_len,
			     unsigned iterations);

/* password_scram_valid - the secret has the form above, with a 32-byte
 * StoredKey and ServerKey and an iteration count of at least 4096. */
bool password_scram_valid(const char *secret);

/* password_scram_check - 1 if the secret was made from this password, 0
 * if not, -1 if the secret is not valid. Constant time in the keys. */
int password_scram_check(const char *secret, const void *password, size_t len);

/* password_scram_fake - a well-formed secret for a user who has none
 * (unknown, disabled, or created before secrets were stored), derived
 * from key and the name (new memory): the same name always gets the
 * same salt, so a SCRAM exchange for it looks like a real user's and
 * then fails at the proof. */
char *password_scram_fake(const uint8_t key[PASSWORD_FAKE_KEY_LEN], const char *user);

/* password_random - len bytes from the kernel's generator; -1 if it failed. */
int password_random(void *out, size_t len);

#endif
