/* auth_throttle.c - failed-login counters per client address and per
 * account (auth_throttle.h): two bounded hash tables, each with its
 * entries in the order of their last failure, so that the oldest one is
 * at hand when a full table needs room. */
#include "config.h"
#include "auth_throttle.h"
#include "../libutil/mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

struct entry {
	char *key;
	uint64_t hash;
	int64_t failures;
	int64_t last_failure;
	int64_t blocked_until; /* 0: not blocked */
	struct entry *chain;      /* next in the bucket */
	struct entry *older, *newer; /* by last failure */
};

struct table {
	struct entry **buckets;
	size_t nbuckets; /* a power of two */
	size_t count;
	struct entry *oldest, *newest;
};

struct auth_throttle {
	struct auth_throttle_limits limits;
	uint64_t seed;
	struct table addrs;
	struct table accounts;
};

/* --- one table ----------------------------------------------------- */

static uint64_t key_hash(const struct auth_throttle *t, const char *key)
{
	/* FNV-1a from a random basis, with a final mix: enough to keep a
	 * client from choosing names that share a bucket. */
	uint64_t h = 0xcbf29ce484222325ULL ^ t->seed;

	for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

static void table_init(struct table *tab, size_t max_entries)
{
	size_t n = 16;

	while (n < max_entries && n < ((size_t)1 << 24))
		n <<= 1;
	tab->nbuckets = n;
	tab->buckets = xcalloc(n, sizeof *tab->buckets);
}

static void unlink_order(struct table *tab, struct entry *e)
{
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		tab->oldest = e->newer;
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		tab->newest = e->older;
	e->older = e->newer = NULL;
}

static void append_order(struct table *tab, struct entry *e)
{
	e->older = tab->newest;
	e->newer = NULL;
	if (tab->newest != NULL)
		tab->newest->newer = e;
	else
		tab->oldest = e;
	tab->newest = e;
}

static void table_remove(struct table *tab, struct entry *e)
{
	struct entry **pp = &tab->buckets[e->hash & (tab->nbuckets - 1)];

	while (*pp != e)
		pp = &(*pp)->chain;
	*pp = e->chain;
	unlink_order(tab, e);
	tab->count--;
	free(e->key);
	free(e);
}

static void table_clear(struct table *tab)
{
	while (tab->oldest != NULL)
		table_remove(tab, tab->oldest);
	xfree_ptr(&tab->buckets);
}

static struct entry *table_find(const struct auth_throttle *t, struct table *tab, const char *key)
{
	uint64_t h = key_hash(t, key);

	for (struct entry *e = tab->buckets[h & (tab->nbuckets - 1)]; e != NULL; e = e->chain)
		if (e->hash == h && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

/* lapse - drop the entry if its block ended or its count lapsed;
 * whether it is still there. */
static bool lapse(const struct auth_throttle *t, struct table *tab, struct entry *e, int64_t now)
{
	bool gone = e->blocked_until > 0 ? now >= e->blocked_until : now - e->last_failure >= t->limits.window;

	if (gone)
		table_remove(tab, e);
	return !gone;
}

static enum auth_throttle_state table_state(struct auth_throttle *t, struct table *tab, const char *key,
					    int64_t now)
{
	struct entry *e;

	if (key == NULL || (e = table_find(t, tab, key)) == NULL || !lapse(t, tab, e, now))
		return AUTH_THROTTLE_OK;
	if (e->blocked_until > now)
		return AUTH_THROTTLE_BLOCK;
	return e->failures >= t->limits.delay_after ? AUTH_THROTTLE_DELAY : AUTH_THROTTLE_OK;
}

static void table_failure(struct auth_throttle *t, struct table *tab, const char *key, int64_t now)
{
	struct entry *e = table_find(t, tab, key);

	if (e != NULL && !lapse(t, tab, e, now))
		e = NULL;
	if (e == NULL) {
		if (tab->count >= t->limits.max_entries && tab->oldest != NULL)
			table_remove(tab, tab->oldest);
		e = xnew(struct entry);
		e->key = xstrdup(key);
		e->hash = key_hash(t, key);
		e->chain = tab->buckets[e->hash & (tab->nbuckets - 1)];
		tab->buckets[e->hash & (tab->nbuckets - 1)] = e;
		tab->count++;
	} else {
		unlink_order(tab, e);
	}
	append_order(tab, e);
	e->failures++;
	e->last_failure = now;
	/* A block is not extended by failures that were already under way
	 * when it began (answers delayed in parallel). */
	if (e->blocked_until == 0 && e->failures >= t->limits.block_after)
		e->blocked_until = now + t->limits.block;
}

static void table_forget(struct auth_throttle *t, struct table *tab, const char *key)
{
	struct entry *e;

	if (key != NULL && (e = table_find(t, tab, key)) != NULL)
		table_remove(tab, e);
}

/* --- the interface ------------------------------------------------- */

struct auth_throttle *auth_throttle_new(const struct auth_throttle_limits *limits)
{
	struct auth_throttle *t = xnew(struct auth_throttle);

	t->limits = *limits;
	if (t->limits.max_entries == 0)
		t->limits.max_entries = AUTH_THROTTLE_ENTRIES_DEFAULT;
	if (getrandom(&t->seed, sizeof t->seed, GRND_NONBLOCK) != (ssize_t)sizeof t->seed)
		t->seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)t;
	table_init(&t->addrs, t->limits.max_entries);
	table_init(&t->accounts, t->limits.max_entries);
	return t;
}

void auth_throttle_free(struct auth_throttle **tp)
{
	struct auth_throttle *t = *tp;

	if (t == NULL)
		return;
	table_clear(&t->addrs);
	table_clear(&t->accounts);
	free(t);
	*tp = NULL;
}

int auth_throttle_addr_key(const char *text, char out[AUTH_THROTTLE_KEY_MAX])
{
	struct in_addr v4;
	struct in6_addr v6;

	if (inet_pton(AF_INET, text, &v4) == 1) {
		inet_ntop(AF_INET, &v4, out, AUTH_THROTTLE_KEY_MAX);
		return 0;
	}
	if (inet_pton(AF_INET6, text, &v6) != 1)
		return -1;
	if (IN6_IS_ADDR_V4MAPPED(&v6)) {
		memcpy(&v4, &v6.s6_addr[12], 4);
		inet_ntop(AF_INET, &v4, out, AUTH_THROTTLE_KEY_MAX);
		return 0;
	}
	memset(&v6.s6_addr[8], 0, 8);
	inet_ntop(AF_INET6, &v6, out, AUTH_THROTTLE_KEY_MAX - 4);
	strcat(out, "/64");
	return 0;
}

enum auth_throttle_state auth_throttle_addr(struct auth_throttle *t, const char *addr, int64_t now)
{
	return table_state(t, &t->addrs, addr, now);
}

enum auth_throttle_state auth_throttle_account(struct auth_throttle *t, const char *account, int64_t now)
{
	return table_state(t, &t->accounts, account, now);
}

void auth_throttle_failure(struct auth_throttle *t, const char *addr, const char *account, int64_t now)
{
	if (addr != NULL)
		table_failure(t, &t->addrs, addr, now);
	if (account != NULL)
		table_failure(t, &t->accounts, account, now);
}

void auth_throttle_success(struct auth_throttle *t, const char *addr, const char *account)
{
	table_forget(t, &t->addrs, addr);
	table_forget(t, &t->accounts, account);
}

size_t auth_throttle_entries(const struct auth_throttle *t)
{
	return t->addrs.count + t->accounts.count;
}
