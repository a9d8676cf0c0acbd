/* password.c - crypt(3) hashes and SCRAM-SHA-256 secrets (password.h).
 *
 * The only file that calls libxcrypt, and with libmail/xsasl.c's help
 * (it reads secrets through here), the only one that knows how a SCRAM
 * secret is made. struct crypt_data is about 32 KiB: always on the heap,
 * and wiped after use, since it held the password.
 */
#include "config.h"
#include "password.h"
#include "../libutil/base64.h"
#include "../libutil/buf.h"
#include "../libutil/mem.h"

#include <crypt.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define SCRAM_KEY_LEN 32               /* SHA-256 */
#define SCRAM_ITERATIONS_MAX 10000000  /* a stored count above this is corrupt */
#define SCRAM_SALT_MAX 64

int password_random(void *out, size_t len)
{
	uint8_t *p = out;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* phrase_copy - the password as a C string for crypt(3), or NULL if it
 * holds a NUL or is too long. */
static char *phrase_copy(const void *password, size_t len)
{
	char *phrase;

	if (len > PASSWORD_MAX || memchr(password, '\0', len) != NULL)
		return NULL;
	phrase = xmalloc(len + 1);
	memcpy(phrase, password, len);
	phrase[len] = '\0';
	return phrase;
}

static void phrase_free(char *phrase)
{
	if (phrase != NULL) {
		explicit_bzero(phrase, strlen(phrase));
		free(phrase);
	}
}

/* crypt_with - crypt_rn into a heap crypt_data; the result (new memory)
 * or NULL if libxcrypt refused the setting. */
static char *crypt_with(const char *phrase, const char *setting)
{
	struct crypt_data *data = xcalloc(1, sizeof *data);
	const char *out = crypt_rn(phrase, setting, data, (int)sizeof *data);
	char *result = NULL;

	/* crypt_rn returns NULL on failure; "*" strings are the failure
	 * tokens of the other variants, refused too to be sure. */
	if (out != NULL && out[0] != '*')
		result = xstrdup(out);
	explicit_bzero(data, sizeof *data);
	free(data);
	return result;
}

char *password_hash(const void *password, size_t len, const char **error_r)
{
	char *phrase = phrase_copy(password, len);
	char *setting, *hash;

	if (phrase == NULL) {
		*error_r = "the password is too long or holds a NUL byte";
		return NULL;
	}
	errno = 0;
	setting = crypt_gensalt_ra("$y$", 0, NULL, 0);
	if (setting == NULL) {
		phrase_free(phrase);
		*error_r = "cannot make a password salt";
		return NULL;
	}
	hash = crypt_with(phrase, setting);
	free(setting);
	phrase_free(phrase);
	if (hash == NULL)
		*error_r = "cannot hash the password";
	return hash;
}

/* Recent successful checks, so that a client logging in every minute
 * (POP3 fetchers, phones) does not cost a yescrypt run (some 20 ms of
 * auth's one event loop) each time: per stored hash (by its SHA-256), an
 * HMAC-SHA-256 of the password under a random key of this process. Only
 * the right password for that very hash matches; a new password means a
 * new hash, so nothing needs invalidating. Failures are never cached, and
 * always cost a full check. */
#define VERIFIED_SLOTS 4096
#define VERIFIED_TTL_S 600

struct verified {
	unsigned char hash_digest[SHA256_DIGEST_LENGTH];
	unsigned char mac[SHA256_DIGEST_LENGTH];
	time_t when; /* CLOCK_MONOTONIC seconds; 0: empty */
};

static struct verified *verified;
static unsigned char verified_key[32];

static time_t monotonic_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + 1; /* never 0 */
}

/* verified_slot - the slot for hash (its digest in digest_r), or NULL
 * when the cache cannot be set up. */
static struct verified *verified_slot(const char *hash, unsigned char digest_r[SHA256_DIGEST_LENGTH])
{
	if (verified == NULL) {
		if (password_random(verified_key, sizeof verified_key) < 0)
			return NULL;
		verified = xcalloc(VERIFIED_SLOTS, sizeof *verified);
	}
	SHA256((const unsigned char *)hash, strlen(hash), digest_r);
	return &verified[(digest_r[0] | (unsigned)digest_r[1] << 8) % VERIFIED_SLOTS];
}

static void password_mac(const void *password, size_t len, unsigned char mac_r[SHA256_DIGEST_LENGTH])
{
	unsigned int n = SHA256_DIGEST_LENGTH;

	HMAC(EVP_sha256(), verified_key, sizeof verified_key, password, len, mac_r, &n);
}

int password_verify(const char *hash, const void *password, size_t len)
{
	char *phrase, *got;
	size_t hash_len;
	int rc;
	unsigned char digest[SHA256_DIGEST_LENGTH], mac[SHA256_DIGEST_LENGTH];
	struct verified *slot;
	time_t now;

	/* "" is no password; "*..." and "!..." are the conventional
	 * locked-account markers, and libxcrypt's failure tokens. */
	if (hash == NULL || hash[0] == '\0' || hash[0] == '*' || hash[0] == '!')
		return -1;
	phrase = phrase_copy(password, len);
	if (phrase == NULL)
		return 0;
	now = monotonic_now();
	slot = verified_slot(hash, digest);
	if (slot != NULL) {
		password_mac(password, len, mac);
		if (slot->when != 0 && now - slot->when < VERIFIED_TTL_S &&
		    CRYPTO_memcmp(slot->hash_digest, digest, sizeof digest) == 0 &&
		    CRYPTO_memcmp(slot->mac, mac, sizeof mac) == 0) {
			phrase_free(phrase);
			explicit_bzero(mac, sizeof mac);
			return 1;
		}
	}
	got = crypt_with(phrase, hash);
	phrase_free(phrase);
	if (got == NULL)
		return -1;
	/* The length of a hash says nothing about the password: only the
	 * bytes are compared in constant time. */
	hash_len = strlen(hash);
	rc = strlen(got) == hash_len && CRYPTO_memcmp(got, hash, hash_len) == 0 ? 1 : 0;
	explicit_bzero(got, strlen(got));
	free(got);
	if (rc == 1 && slot != NULL) {
		memcpy(slot->hash_digest, digest, sizeof digest);
		memcpy(slot->mac, mac, sizeof mac);
		slot->when = now;
	}
	explicit_bzero(mac, sizeof mac);
	return rc;
}

void password_verify_dummy(const void *password, size_t len)
{
	/* Made once per process, with the default cost of the hashes that
	 * mailctl writes; it matches no password anybody can type (it is
	 * the hash of random bytes). */
	static char *dummy;

	if (dummy == NULL) {
		uint8_t seed[16];
		char phrase[sizeof seed * 2 + 1];
		const char *error;

		if (password_random(seed, sizeof seed) < 0)
			memset(seed, 0x5a, sizeof seed);
		for (size_t i = 0; i < sizeof seed; i++)
			snprintf(phrase + 2 * i, 3, "%02x", seed[i]);
		dummy = password_hash(phrase, strlen(phrase), &error);
		explicit_bzero(phrase, sizeof phrase);
		if (dummy == NULL)
			return;
	}
	(void)password_verify(dummy, password, len);
}

/* --- SCRAM-SHA-256 ------------------------------------------------- */

struct scram_keys {
	unsigned iterations;
	uint8_t salt[SCRAM_SALT_MAX];
	size_t salt_len;
	uint8_t stored[SCRAM_KEY_LEN];
	uint8_t server[SCRAM_KEY_LEN];
};

/* scram_derive - StoredKey and ServerKey from the password, k's salt and
 * iteration count. -1 if OpenSSL failed. */
static int scram_derive(const void *password, size_t len, struct scram_keys *k)
{
	uint8_t salted[SCRAM_KEY_LEN], client[SCRAM_KEY_LEN];
	unsigned int n = 0;
	int rc = -1;

	if (PKCS5_PBKDF2_HMAC(password, (int)len, k->salt, (int)k->salt_len, (int)k->iterations, EVP_sha256(),
			      SCRAM_KEY_LEN, salted) != 1)
		goto out;
	if (HMAC(EVP_sha256(), salted, SCRAM_KEY_LEN, (const uint8_t *)"Client Key", 10, client, &n) == NULL ||
	    n != SCRAM_KEY_LEN)
		goto out;
	if (SHA256(client, SCRAM_KEY_LEN, k->stored) == NULL)
		goto out;
	if (HMAC(EVP_sha256(), salted, SCRAM_KEY_LEN, (const uint8_t *)"Server Key", 10, k->server, &n) == NULL ||
	    n != SCRAM_KEY_LEN)
		goto out;
	rc = 0;
out:
	explicit_bzero(salted, sizeof salted);
	explicit_bzero(client, sizeof client);
	return rc;
}

/* b64_decode - canonical base64 of text[0..len) into out (size max);
 * the decoded length, or -1 (also for nothing, or more than max). */
static long b64_decode(const char *text, size_t len, uint8_t *out, size_t max)
{
	struct buf b = BUF_INIT;
	long n = -1;

	if (len > 0 && base64_decode(&b, text, len) == 0 && b.len <= max) {
		memcpy(out, b.data, b.len);
		n = (long)b.len;
	}
	if (b.data != NULL)
		explicit_bzero(b.data, b.len); /* key material */
	buf_free(&b);
	return n;
}

/* scram_format - the stored form of k (new memory). */
static char *scram_format(const struct scram_keys *k)
{
	struct buf out = BUF_INIT;

	buf_printf(&out, "%s%u:", PASSWORD_SCRAM_PREFIX, k->iterations);
	base64_encode(&out, k->salt, k->salt_len);
	buf_append_str(&out, "$");
	base64_encode(&out, k->stored, SCRAM_KEY_LEN);
	buf_append_str(&out, ":");
	base64_encode(&out, k->server, SCRAM_KEY_LEN);
	return buf_steal(&out);
}

/* scram_parse - split a stored secret; -1 if it is not well-formed. */
static int scram_parse(const char *secret, struct scram_keys *k)
{
	size_t prefix = strlen(PASSWORD_SCRAM_PREFIX);
	const char *p, *colon, *dollar, *colon2;
	unsigned long iter = 0;

	memset(k, 0, sizeof *k);
	if (secret == NULL || strncmp(secret, PASSWORD_SCRAM_PREFIX, prefix) != 0)
		return -1;
	p = secret + prefix;
	colon = strchr(p, ':');
	if (colon == NULL || colon == p || colon - p > 8 || p[0] == '0')
		return -1;
	for (const char *q = p; q < colon; q++) {
		if (*q < '0' || *q > '9')
			return -1;
		iter = iter * 10 + (unsigned long)(*q - '0');
	}
	if (iter < PASSWORD_SCRAM_ITERATIONS || iter > SCRAM_ITERATIONS_MAX)
		return -1;
	k->iterations = (unsigned)iter;
	dollar = strchr(colon + 1, '$');
	if (dollar == NULL)
		return -1;
	long n = b64_decode(colon + 1, (size_t)(dollar - colon - 1), k->salt, sizeof k->salt);
	if (n <= 0)
		return -1;
	k->salt_len = (size_t)n;
	colon2 = strchr(dollar + 1, ':');
	if (colon2 == NULL ||
	    b64_decode(dollar + 1, (size_t)(colon2 - dollar - 1), k->stored, sizeof k->stored) != SCRAM_KEY_LEN ||
	    b64_decode(colon2 + 1, strlen(colon2 + 1), k->server, sizeof k->server) != SCRAM_KEY_LEN)
		return -1;
	return 0;
}

char *password_scram_compute(const void *password, size_t len, const uint8_t *salt, size_t salt_len,
			     unsigned iterations)
{
	struct scram_keys k = { .iterations = iterations, .salt_len = salt_len };
	char *secret = NULL;

	if (len > PASSWORD_MAX || memchr(password, '\0', len) != NULL || iterations == 0 || salt_len == 0 ||
	    salt_len > sizeof k.salt)
		return NULL;
	memcpy(k.salt, salt, salt_len);
	if (scram_derive(password, len, &k) == 0)
		secret = scram_format(&k);
	explicit_bzero(&k, sizeof k);
	return secret;
}

char *password_scram_secret(const void *password, size_t len, const char **error_r)
{
	uint8_t salt[PASSWORD_SCRAM_SALT_LEN];
	char *secret;

	if (password_random(salt, sizeof salt) < 0) {
		*error_r = "cannot make a salt: no random bytes";
		return NULL;
	}
	secret = password_scram_compute(password, len, salt, sizeof salt, PASSWORD_SCRAM_ITERATIONS);
	if (secret == NULL)
		*error_r = "cannot compute the SCRAM secret (a NUL byte in the password, or too long)";
	return secret;
}

bool password_scram_valid(const char *secret)
{
	struct scram_keys k;

	return scram_parse(secret, &k) == 0;
}

int password_scram_check(const char *secret, const void *password, size_t len)
{
	struct scram_keys stored, fresh;
	int rc = 0;

	if (scram_parse(secret, &stored) < 0)
		return -1;
	if (len > PASSWORD_MAX || memchr(password, '\0', len) != NULL)
		return 0;
	fresh = stored;
	if (scram_derive(password, len, &fresh) < 0)
		return 0;
	if (CRYPTO_memcmp(fresh.stored, stored.stored, SCRAM_KEY_LEN) == 0 &&
	    CRYPTO_memcmp(fresh.server, stored.server, SCRAM_KEY_LEN) == 0)
		rc = 1;
	explicit_bzero(&fresh, sizeof fresh);
	return rc;
}

/* fake_part - HMAC-SHA-256(key, label NUL user) into out. */
static void fake_part(const uint8_t *key, const char *label, const char *user, uint8_t out[SCRAM_KEY_LEN])
{
	struct buf msg = BUF_INIT;
	unsigned int n = 0;

	buf_append(&msg, label, strlen(label) + 1);
	buf_append_str(&msg, user);
	if (HMAC(EVP_sha256(), key, PASSWORD_FAKE_KEY_LEN, msg.data, msg.len, out, &n) == NULL)
		memset(out, 0, SCRAM_KEY_LEN); /* still well-formed; still matches no proof */
	buf_free(&msg);
}

char *password_scram_fake(const uint8_t key[PASSWORD_FAKE_KEY_LEN], const char *user)
{
	struct scram_keys k = { .iterations = PASSWORD_SCRAM_ITERATIONS, .salt_len = PASSWORD_SCRAM_SALT_LEN };
	uint8_t salt[SCRAM_KEY_LEN];

	fake_part(key, "salt", user, salt);
	memcpy(k.salt, salt, PASSWORD_SCRAM_SALT_LEN);
	fake_part(key, "stored", user, k.stored);
	fake_part(key, "server", user, k.server);
	return scram_format(&k);
}
