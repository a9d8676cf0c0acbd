#include "config.h"
/* fuzz_addr.c - libFuzzer target for RFC 5321 paths (libmail/addr.c).
 *
 * Input: one octet of flags (ADDR_ALLOW_*), then the path text. Checks,
 * with abort() on any violation:
 *   - addr_parse_path never reads past the input (parsed from an
 *     exact-size copy), and fails with an error text or succeeds with
 *     consumed <= size, ending in '>';
 *   - a parsed address respects the limits (local part 64, domain 255,
 *     path 256) and the flags (null path, UTF-8, postmaster);
 *   - addr_format output, put back in <>, parses to the same address;
 *   - addr_valid_domain with UTF-8 allowed accepts what it accepts
 *     without.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libmail/addr.h"
#include "../../libutil/pool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                          \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "fuzz_addr: check failed: %s (line %d)\n", #cond, __LINE__); \
			abort();                                                             \
		}                                                                            \
	} while (0)

static bool all_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pool *pool;
	struct mail_addr a, b;
	const char *error = NULL;
	size_t consumed = 0, len;
	unsigned flags;
	char *copy;
	int rc;

	if (size < 1)
		return 0;
	flags = data[0] & (ADDR_ALLOW_NULL | ADDR_ALLOW_UTF8 | ADDR_ALLOW_POSTMASTER);
	len = size - 1;
	copy = malloc(len > 0 ? len : 1);
	if (copy == NULL)
		return 0;
	memcpy(copy, data + 1, len);
	pool = pool_create();

	rc = addr_parse_path(copy, len, flags, pool, &a, &consumed, &error);
	if (rc != 0) {
		CHECK(rc == -1 && error != NULL && error[0] != '\0');
	} else {
		CHECK(consumed >= 2 && consumed <= len && copy[0] == '<' && copy[consumed - 1] == '>');
		CHECK(a.local != NULL && a.domain != NULL);
		CHECK(strlen(a.local) <= ADDR_LOCAL_MAX);
		CHECK(strlen(a.domain) <= ADDR_DOMAIN_MAX);
		if (a.is_null) {
			CHECK(flags & ADDR_ALLOW_NULL);
			CHECK(consumed == 2 && a.local[0] == '\0' && a.domain[0] == '\0');
		} else if (a.domain[0] == '\0') {
			/* only <postmaster> has no domain */
			CHECK(flags & ADDR_ALLOW_POSTMASTER);
			CHECK(strcmp(a.local, "postmaster") == 0 && consumed == 12);
		} else {
			CHECK(addr_valid_domain(a.domain, strlen(a.domain), (flags & ADDR_ALLOW_UTF8) != 0));
			/* the route may make the text longer, not the address */
			CHECK(strlen(a.local) + strlen(a.domain) + 3 <= ADDR_PATH_MAX || consumed > ADDR_PATH_MAX);
		}
		CHECK(a.utf8 == !(all_ascii(a.local) && all_ascii(a.domain)));
		if (!(flags & ADDR_ALLOW_UTF8))
			CHECK(!a.utf8);

		/* round trip through addr_format */
		char *text = addr_format(pool, &a);
		char *path = pool_printf(pool, "<%s>", text);
		size_t used = 0;

		if (addr_parse_path(path, strlen(path), flags, pool, &b, &used, &error) != 0) {
			fprintf(stderr, "fuzz_addr: \"%s\" does not parse back: %s\n", path, error);
			abort();
		}
		CHECK(used == strlen(path));
		CHECK(strcmp(a.local, b.local) == 0 && strcmp(a.domain, b.domain) == 0);
		CHECK(a.is_null == b.is_null && a.utf8 == b.utf8);
	}

	if (addr_valid_domain(copy, len, false))
		CHECK(addr_valid_domain(copy, len, true));
	pool_destroy(&pool);
	free(copy);
	return 0;
}
