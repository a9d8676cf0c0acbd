/* auth_throttle.h - failed-login counters for auth, per client address
 * and per account, shared by every service that logs in through auth
 * (smtpd now, pop3d and imapd later).
 *
 * A failure counts for its address and for the account named (the login
 * name as given, lower-cased: unknown accounts count too, so that
 * guessing names costs the same as guessing passwords). A count lapses
 * when no failure came for window seconds. With delay_after failures or
 * more, answers are to be delayed (the caller delays them: see
 * auth_sasl.c); with block_after, the address or account is blocked for
 * block seconds, during which attempts are refused without checking
 * anything, and its count starts again from zero afterwards. A success
 * clears the address's and the account's counts.
 *
 * IPv6 clients are counted per /64 (auth_throttle_addr_key): one host
 * usually has a whole /64 to pick addresses from.
 *
 * Memory is bounded: each of the two tables holds at most max_entries;
 * when full, the entry that failed longest ago goes. Keys are hashed
 * with a per-process random seed, so that chosen names cannot pile up in
 * one bucket. Time is passed in (seconds on a monotonic clock), so that
 * the tests can run the clock. */
#ifndef YB_AUTH_THROTTLE_H
#define YB_AUTH_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

struct auth_throttle_limits {
	int64_t window;      /* auth_failure_window, seconds */
	int64_t delay_after; /* auth_delay_after, failures */
	int64_t block_after; /* auth_block_after, failures */
	int64_t block;       /* auth_block_time, seconds */
	size_t max_entries;  /* per table */
};

#define AUTH_THROTTLE_ENTRIES_DEFAULT 16384
#define AUTH_THROTTLE_KEY_MAX 64 /* an address key: "a.b.c.d" or "x:x:x:x::/64" */

enum auth_throttle_state {
	AUTH_THROTTLE_OK,
	AUTH_THROTTLE_DELAY, /* answer, but only after the failure delay */
	AUTH_THROTTLE_BLOCK, /* refuse without checking */
};

struct auth_throttle;

struct auth_throttle *auth_throttle_new(const struct auth_throttle_limits *limits);
void auth_throttle_free(struct auth_throttle **t);

/* auth_throttle_addr_key - the key an IP address is counted under: IPv4
 * as dotted quad (also when written as ::ffff:a.b.c.d), IPv6 as its /64
 * ("2001:db8:1:2::/64"). 0, or -1 if text is not an IP address. */
int auth_throttle_addr_key(const char *text, char out[AUTH_THROTTLE_KEY_MAX]);

/* auth_throttle_addr / auth_throttle_account - the state of one address
 * key or account name at now (NULL: OK). */
enum auth_throttle_state auth_throttle_addr(struct auth_throttle *t, const char *addr, int64_t now);
enum auth_throttle_state auth_throttle_account(struct auth_throttle *t, const char *account, int64_t now);

/* auth_throttle_failure - count one failed login for the address and the
 * account (either may be NULL). */
void auth_throttle_failure(struct auth_throttle *t, const char *addr, const char *account, int64_t now);

/* auth_throttle_success - forget the address's and the account's
 * failures (either may be NULL). */
void auth_throttle_success(struct auth_throttle *t, const char *addr, const char *account);

/* auth_throttle_entries - entries held now, both tables (for tests). */
size_t auth_throttle_entries(const struct auth_throttle *t);

#endif
