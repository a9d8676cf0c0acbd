#include "config.h"
/* test_directory.c - unit tests for libmail/directory.c: records, address
 * rules, and resolve/expand over real Berkeley DB tables in a temporary
 * directory, written the way mailctl writes them. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../libmail/auth_proto.h"
#include "../../libmail/directory.h"
#include "../../libmail/table.h"
#include "../../libutil/ipc.h"
#include "../../libutil/mem.h"
#include "unit.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* --- the hosting setup the lookups run against ---------------------- */

static const char *const domains[] = { "example.com", "example.org", "example.net" };

static const struct {
	const char *address;
	int64_t quota;
	bool enabled;
} users[] = {
	{ "bob@example.com", 1000000, true },
	{ "alice@example.com", 0, false }, /* disabled: still gets mail */
	{ "carol@example.org", 5, true },
	{ "dave@example.org", 0, true },
	{ "copy@example.com", 7, true },
};

/* Targets separated by blanks. */
static const struct {
	const char *address;
	const char *targets;
} aliases[] = {
	{ "info@example.com", "bob@example.com alice@example.com" },
	{ "sales@example.com", "info@example.com carol@example.org" },          /* chain */
	{ "team@example.com", "bob@example.com info@example.com BOB@example.com" }, /* bob three ways */
	{ "both@example.com", "info@example.com sales@example.com" },            /* diamond */
	{ "ext@example.com", "someone@remote.net Other@Remote.NET other@remote.net" },
	{ "mixed@example.com", "Bob@Example.COM x@remote.net" },
	{ "copy@example.com", "copy@example.com copy@remote.net" }, /* keep a copy, forward */
	{ "list+tag@example.com", "x@remote.net" },                 /* exact plus alias */
	{ "bob+fwd@example.com", "bob@example.com y@remote.net" },
	{ "loop1@example.com", "loop2@example.com" },
	{ "loop2@example.com", "loop3@example.com" },
	{ "loop3@example.com", "loop1@example.com" },
	{ "selfloop@example.com", "selfloop+x@example.com" },
	{ "partloop@example.com", "bob@example.com loop1@example.com" },
	{ "lonely@example.com", "lonely@example.com" }, /* itself, but no such user */
	{ "dead@example.com", "nobody@example.com" },
	{ "half@example.com", "bob@example.com nobody@example.com" },
	{ "@example.org", "carol@example.org" }, /* catch-all */
	{ "@example.net", "ghost@example.net" }, /* catch-all to itself: loops */
	{ "tocatch@example.com", "anything@example.org" },
};

struct fixture {
	char *dir;
	char *paths[3];
	struct directory *d;
};

static void put(struct table_writer *w, const char *key, const struct buf *value)
{
	char *error = NULL;

	if (table_writer_put(w, key, value->data, value->len, &error) < 0)
		fail_msg("put %s: %s", key, error);
}

static struct table_writer *begin(const char *path)
{
	char *error = NULL;
	struct table_writer *w = table_writer_begin(path, 0640, (uid_t)-1, (gid_t)-1, &error);

	if (w == NULL)
		fail_msg("writer %s: %s", path, error);
	return w;
}

static void commit(struct table_writer *w)
{
	char *error = NULL;

	if (table_writer_commit(&w, &error) < 0)
		fail_msg("commit: %s", error);
}

static void write_user(struct table_writer *w, const char *address, int64_t quota, bool enabled)
{
	struct dir_user u = { .password = (char *)"$y$j9T$salt$hash", .quota = quota, .enabled = enabled };
	struct buf b = BUF_INIT;

	dir_user_encode(&b, &u);
	put(w, address, &b);
	buf_free(&b);
}

static void write_alias(struct table_writer *w, const char *address, const char *targets)
{
	struct dir_alias a = { 0 };
	char *copy = xstrdup(targets);
	struct buf b = BUF_INIT;

	for (char *t = strtok(copy, " "); t != NULL; t = strtok(NULL, " ")) {
		a.targets = xreallocarray(a.targets, a.count + 1, sizeof *a.targets);
		a.targets[a.count++] = xstrdup(t);
	}
	dir_alias_encode(&b, &a);
	put(w, address, &b);
	dir_alias_free(&a);
	buf_free(&b);
	free(copy);
}

static void write_domains(struct fixture *f, const char *const *list, size_t n)
{
	struct table_writer *w = begin(f->paths[0]);
	struct buf b = BUF_INIT;

	dir_domain_encode(&b);
	for (size_t i = 0; i < n; i++)
		put(w, list[i], &b);
	buf_free(&b);
	commit(w);
}

static void write_users(struct fixture *f, const char *extra, const char *raw_key, const void *raw, size_t raw_len)
{
	struct table_writer *w = begin(f->paths[1]);

	for (size_t i = 0; i < NELEM(users); i++)
		write_user(w, users[i].address, users[i].quota, users[i].enabled);
	if (extra != NULL)
		write_user(w, extra, 42, true);
	if (raw_key != NULL) {
		char *error = NULL;

		if (table_writer_put(w, raw_key, raw, raw_len, &error) < 0)
			fail_msg("put: %s", error);
	}
	commit(w);
}

static void write_aliases(struct fixture *f, const char *extra_key, const char *extra_targets)
{
	struct table_writer *w = begin(f->paths[2]);

	for (size_t i = 0; i < NELEM(aliases); i++)
		write_alias(w, aliases[i].address, aliases[i].targets);
	if (extra_key != NULL)
		write_alias(w, extra_key, extra_targets);
	commit(w);
}

static int setup_empty(void **state)
{
	struct fixture *f = xnew(struct fixture);
	static const char *const names[3] = { DIR_DOMAINS_TABLE, DIR_USERS_TABLE, DIR_ALIASES_TABLE };

	f->dir = unit_make_temp_dir();
	for (int i = 0; i < 3; i++) {
		f->paths[i] = xasprintf("%s/%s", f->dir, names[i]);
		unit_temp_track(f->paths[i], true);
	}
	*state = f;
	return 0;
}

static int setup(void **state)
{
	struct fixture *f;

	setup_empty(state);
	f = *state;
	write_domains(f, domains, NELEM(domains));
	write_users(f, NULL, NULL, NULL, 0);
	write_aliases(f, NULL, NULL);
	f->d = directory_open(f->dir);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char *tmp;

	directory_close(&f->d);
	for (int i = 0; i < 3; i++) {
		unit_temp_track(f->paths[i], false);
		unlink(f->paths[i]);
		tmp = xasprintf("%s.tmp", f->paths[i]);
		unlink(tmp);
		free(tmp);
		free(f->paths[i]);
	}
	unit_remove_temp_dir(f->dir);
	free(f);
	return 0;
}

static void refresh_ok(struct fixture *f)
{
	char *error = NULL;

	if (directory_refresh(f->d, &error) < 0)
		fail_msg("directory_refresh: %s", error);
}

/* --- resolve ------------------------------------------------------- */

static const struct {
	const char *address;
	enum dir_result result;
	const char *mailbox; /* LOCAL */
	int64_t quota;
	bool enabled;
} resolve_cases[] = {
	{ "bob@example.com", DIR_LOCAL, "bob@example.com", 1000000, true },
	{ "alice@example.com", DIR_LOCAL, "alice@example.com", 0, false },
	/* case-insensitive, both parts */
	{ "BOB@EXAMPLE.COM", DIR_LOCAL, "bob@example.com", 1000000, true },
	{ "Bob@Example.Com", DIR_LOCAL, "bob@example.com", 1000000, true },
	/* plus-addressing */
	{ "bob+news@example.com", DIR_LOCAL, "bob@example.com", 1000000, true },
	{ "Bob+News@example.com", DIR_LOCAL, "bob@example.com", 1000000, true },
	{ "bob+a+b@example.com", DIR_LOCAL, "bob@example.com", 1000000, true },
	{ "bob+@example.com", DIR_LOCAL, "bob@example.com", 1000000, true },
	{ "+bob@example.com", DIR_UNKNOWN, NULL, 0, false },
	{ "info+x@example.com", DIR_ALIAS, NULL, 0, false },
	{ "list+tag@example.com", DIR_ALIAS, NULL, 0, false }, /* the exact alias */
	{ "list+other@example.com", DIR_UNKNOWN, NULL, 0, false },
	{ "list@example.com", DIR_UNKNOWN, NULL, 0, false },
	{ "bob+fwd@example.com", DIR_ALIAS, NULL, 0, false }, /* exact alias beats plus-addressing */
	/* aliases */
	{ "info@example.com", DIR_ALIAS, NULL, 0, false },
	{ "sales@example.com", DIR_ALIAS, NULL, 0, false },
	{ "ext@example.com", DIR_ALIAS, NULL, 0, false },
	{ "copy@example.com", DIR_ALIAS, NULL, 0, false }, /* the alias shadows the user */
	{ "half@example.com", DIR_ALIAS, NULL, 0, false },
	{ "dead@example.com", DIR_UNKNOWN, NULL, 0, false },   /* its only target does not exist */
	{ "lonely@example.com", DIR_UNKNOWN, NULL, 0, false }, /* itself, no such user */
	{ "loop1@example.com", DIR_ERROR, NULL, 0, false },
	{ "selfloop@example.com", DIR_ERROR, NULL, 0, false },
	{ "partloop@example.com", DIR_ERROR, NULL, 0, false },
	/* catch-all: only when nothing else matches */
	{ "carol@example.org", DIR_LOCAL, "carol@example.org", 5, true },
	{ "dave@example.org", DIR_LOCAL, "dave@example.org", 0, true },
	{ "random@example.org", DIR_ALIAS, NULL, 0, false },
	{ "carol+x@example.org", DIR_LOCAL, "carol@example.org", 5, true },
	{ "x@example.net", DIR_ERROR, NULL, 0, false }, /* its catch-all loops */
	/* hosted, nobody */
	{ "nobody@example.com", DIR_UNKNOWN, NULL, 0, false },
	/* not ours */
	{ "bob@example.co", DIR_NOT_HOSTED, NULL, 0, false },
	{ "bob@sub.example.com", DIR_NOT_HOSTED, NULL, 0, false },
	{ "bob@remote.net", DIR_NOT_HOSTED, NULL, 0, false },
	/* not addresses */
	{ "bob", DIR_ERROR, NULL, 0, false },
	{ "@example.org", DIR_ERROR, NULL, 0, false }, /* must not hit the catch-all key */
	{ "bob@", DIR_ERROR, NULL, 0, false },
	{ "", DIR_ERROR, NULL, 0, false },
	{ "bob\n@example.com", DIR_ERROR, NULL, 0, false },
};

static void test_resolve(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < NELEM(resolve_cases); i++) {
		struct dir_resolution r;

		directory_resolve(f->d, resolve_cases[i].address, &r);
		if (r.result != resolve_cases[i].result)
			fail_msg("resolve \"%s\": %s, wanted %s (%s)", resolve_cases[i].address,
				 dir_result_name(r.result), dir_result_name(resolve_cases[i].result),
				 r.reason != NULL ? r.reason : "");
		if (r.result == DIR_LOCAL) {
			assert_string_equal(r.mailbox, resolve_cases[i].mailbox);
			assert_int_equal(r.quota, resolve_cases[i].quota);
			assert_int_equal(r.enabled, resolve_cases[i].enabled);
		} else {
			assert_null(r.mailbox);
		}
		if (r.result == DIR_ERROR)
			assert_non_null(r.reason);
		dir_resolution_free(&r);
	}
}

static void test_resolve_long_address(void **state)
{
	struct fixture *f = *state;
	char address[400];
	struct dir_resolution r;

	memset(address, 'a', sizeof address);
	strcpy(address + 300, "@example.com");
	directory_resolve(f->d, address, &r);
	assert_int_equal(r.result, DIR_ERROR);
	assert_non_null(strstr(r.reason, "256"));
	dir_resolution_free(&r);
	/* 256 exactly is looked up (and is nobody). */
	memset(address, 'a', sizeof address);
	strcpy(address + 256 - strlen("@example.com"), "@example.com");
	assert_int_equal(strlen(address), 256);
	directory_resolve(f->d, address, &r);
	assert_int_equal(r.result, DIR_UNKNOWN);
	dir_resolution_free(&r);
}

/* --- expand -------------------------------------------------------- */

static const struct {
	const char *address;
	enum dir_result result;
	const char *local;   /* "mailbox:quota ..." in order */
	const char *remote;  /* in order */
	const char *unknown;
	const char *reason;  /* a part of it, for LOOP and ERROR */
} expand_cases[] = {
	{ "bob@example.com", DIR_OK, "bob@example.com:1000000", "", "", NULL },
	{ "BOB+x@Example.com", DIR_OK, "bob@example.com:1000000", "", "", NULL },
	{ "alice@example.com", DIR_OK, "alice@example.com:0", "", "", NULL }, /* disabled, delivered */
	{ "info@example.com", DIR_OK, "bob@example.com:1000000 alice@example.com:0", "", "", NULL },
	{ "sales@example.com", DIR_OK, "bob@example.com:1000000 alice@example.com:0 carol@example.org:5", "", "", NULL },
	/* the same mailbox through several paths: once */
	{ "team@example.com", DIR_OK, "bob@example.com:1000000 alice@example.com:0", "", "", NULL },
	{ "both@example.com", DIR_OK, "bob@example.com:1000000 alice@example.com:0 carol@example.org:5", "", "", NULL },
	/* remote targets: domain lower-cased, local part kept, once */
	{ "ext@example.com", DIR_OK, "", "someone@remote.net Other@remote.net", "", NULL },
	{ "mixed@example.com", DIR_OK, "bob@example.com:1000000", "x@remote.net", "", NULL },
	{ "copy@example.com", DIR_OK, "copy@example.com:7", "copy@remote.net", "", NULL },
	{ "copy+x@example.com", DIR_OK, "copy@example.com:7", "copy@remote.net", "", NULL },
	{ "list+tag@example.com", DIR_OK, "", "x@remote.net", "", NULL },
	{ "bob+fwd@example.com", DIR_OK, "bob@example.com:1000000", "y@remote.net", "", NULL },
	{ "half@example.com", DIR_OK, "bob@example.com:1000000", "", "nobody@example.com", NULL },
	{ "dead@example.com", DIR_UNKNOWN, "", "", "nobody@example.com", NULL },
	{ "lonely@example.com", DIR_UNKNOWN, "", "", "lonely@example.com", NULL },
	/* catch-all */
	{ "random@example.org", DIR_OK, "carol@example.org:5", "", "", NULL },
	{ "dave@example.org", DIR_OK, "dave@example.org:0", "", "", NULL },
	{ "tocatch@example.com", DIR_OK, "carol@example.org:5", "", "", NULL },
	/* loops: an error result, not a hang */
	{ "loop1@example.com", DIR_LOOP, "", "", "",
	  "loop1@example.com -> loop2@example.com -> loop3@example.com -> loop1@example.com" },
	{ "loop2@example.com", DIR_LOOP, "", "", "", "alias loop" },
	{ "partloop@example.com", DIR_LOOP, "", "", "", "alias loop" },
	{ "selfloop@example.com", DIR_LOOP, "", "", "", "selfloop+x@example.com" },
	{ "x@example.net", DIR_LOOP, "", "", "", "ghost@example.net" },
	/* the rest */
	{ "nobody@example.com", DIR_UNKNOWN, "", "", "", NULL },
	{ "bob@remote.net", DIR_NOT_HOSTED, "", "", "", NULL },
	{ "@example.org", DIR_ERROR, "", "", "", "local@domain" },
	{ "nonsense", DIR_ERROR, "", "", "", "local@domain" },
};

/* joined - the expansion's lists as the table above writes them. */
static char *joined_local(const struct dir_expansion *e)
{
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < e->local_count; i++)
		buf_printf(&b, "%s%s:%lld", i > 0 ? " " : "", e->local[i].mailbox, (long long)e->local[i].quota);
	return buf_steal(&b);
}

static char *joined(char *const *list, size_t n)
{
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < n; i++)
		buf_printf(&b, "%s%s", i > 0 ? " " : "", list[i]);
	return buf_steal(&b);
}

static void test_expand(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < NELEM(expand_cases); i++) {
		struct dir_expansion e;
		char *local, *remote, *unknown;

		directory_expand(f->d, expand_cases[i].address, &e);
		local = joined_local(&e);
		remote = joined(e.remote, e.remote_count);
		unknown = joined(e.unknown, e.unknown_count);
		if (e.result != expand_cases[i].result || strcmp(local, expand_cases[i].local) != 0 ||
		    strcmp(remote, expand_cases[i].remote) != 0 || strcmp(unknown, expand_cases[i].unknown) != 0)
			fail_msg("expand \"%s\": %s [%s] [%s] [%s] (%s); wanted %s [%s] [%s] [%s]",
				 expand_cases[i].address, dir_result_name(e.result), local, remote, unknown,
				 e.reason != NULL ? e.reason : "", dir_result_name(expand_cases[i].result),
				 expand_cases[i].local, expand_cases[i].remote, expand_cases[i].unknown);
		if (expand_cases[i].reason != NULL) {
			assert_non_null(e.reason);
			if (strstr(e.reason, expand_cases[i].reason) == NULL)
				fail_msg("expand \"%s\": reason \"%s\" lacks \"%s\"", expand_cases[i].address, e.reason,
					 expand_cases[i].reason);
		}
		free(local);
		free(remote);
		free(unknown);
		dir_expansion_free(&e);
	}
}

/* A chain longer than the depth limit counts as a loop; a wide tree of
 * aliases hits the target limit. Neither hangs. */
static void test_expand_limits(void **state)
{
	struct fixture *f = *state;
	struct table_writer *w = begin(f->paths[2]);
	struct dir_expansion e;
	char key[64], target[64];
	struct buf wide = BUF_INIT;

	for (int i = 0; i < DIR_EXPAND_DEPTH_MAX + 10; i++) {
		snprintf(key, sizeof key, "chain%d@example.com", i);
		snprintf(target, sizeof target, "chain%d@example.com", i + 1);
		write_alias(w, key, target);
	}
	/* wide: 10 x 10 aliases of 20 remote targets each, all different
	 * (small records: Berkeley DB writes stack padding into overflow
	 * items, which valgrind reports; test_table covers large values) */
	for (int i = 0; i < 10; i++) {
		struct buf middle = BUF_INIT;

		for (int j = 0; j < 10; j++) {
			struct buf targets = BUF_INIT;

			for (int k = 0; k < 20; k++)
				buf_printf(&targets, "%su%d.%d.%d@remote.net", k > 0 ? " " : "", i, j, k);
			snprintf(key, sizeof key, "w%d.%d@example.com", i, j);
			write_alias(w, key, buf_cstr(&targets));
			buf_printf(&middle, "%s%s", j > 0 ? " " : "", key);
			buf_free(&targets);
		}
		snprintf(key, sizeof key, "w%d@example.com", i);
		write_alias(w, key, buf_cstr(&middle));
		buf_printf(&wide, "%s%s", i > 0 ? " " : "", key);
		buf_free(&middle);
	}
	write_alias(w, "wide@example.com", buf_cstr(&wide));
	buf_free(&wide);
	/* short chain: fine */
	write_alias(w, "short@example.com", "chain100@example.com");
	commit(w);
	refresh_ok(f);

	directory_expand(f->d, "chain0@example.com", &e);
	assert_int_equal(e.result, DIR_LOOP);
	assert_non_null(strstr(e.reason, "longer than"));
	assert_int_equal(e.local_count + e.remote_count + e.unknown_count, 0);
	dir_expansion_free(&e);

	directory_expand(f->d, "short@example.com", &e);
	assert_int_equal(e.result, DIR_UNKNOWN); /* chain110 is nobody */
	assert_int_equal(e.unknown_count, 1);
	assert_string_equal(e.unknown[0], "chain110@example.com");
	dir_expansion_free(&e);

	directory_expand(f->d, "wide@example.com", &e);
	assert_int_equal(e.result, DIR_ERROR);
	assert_non_null(strstr(e.reason, "targets"));
	dir_expansion_free(&e);

	directory_expand(f->d, "w3@example.com", &e);
	assert_int_equal(e.result, DIR_OK);
	assert_int_equal(e.remote_count, 200);
	dir_expansion_free(&e);
}

/* --- domain, refresh, broken tables -------------------------------- */

static void test_domain(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *domain;
		int want;
	} cases[] = {
		{ "example.com", 1 }, { "EXAMPLE.ORG", 1 }, { "example.net", 1 },
		{ "example.co", 0 },  { "remote.net", 0 },  { "", -1 },
	};

	for (size_t i = 0; i < NELEM(cases); i++) {
		char *error = NULL;
		int rc = directory_domain(f->d, cases[i].domain, &error);

		if (rc != cases[i].want)
			fail_msg("domain \"%s\": %d, wanted %d", cases[i].domain, rc, cases[i].want);
		free(error);
	}
}

static void test_refresh_sees_changes(void **state)
{
	struct fixture *f = *state;
	static const char *const more[] = { "example.com", "example.org", "example.net", "new.example" };
	struct dir_resolution r;

	directory_resolve(f->d, "new@example.com", &r);
	assert_int_equal(r.result, DIR_UNKNOWN);
	dir_resolution_free(&r);
	write_users(f, "new@example.com", NULL, NULL, 0);
	/* Not before the refresh: the old file is still open. */
	directory_resolve(f->d, "new@example.com", &r);
	assert_int_equal(r.result, DIR_UNKNOWN);
	dir_resolution_free(&r);
	refresh_ok(f);
	directory_resolve(f->d, "new@example.com", &r);
	assert_int_equal(r.result, DIR_LOCAL);
	assert_int_equal(r.quota, 42);
	dir_resolution_free(&r);

	directory_resolve(f->d, "x@new.example", &r);
	assert_int_equal(r.result, DIR_NOT_HOSTED);
	dir_resolution_free(&r);
	write_domains(f, more, NELEM(more));
	write_aliases(f, "@new.example", "bob@example.com");
	refresh_ok(f);
	directory_resolve(f->d, "x@new.example", &r);
	assert_int_equal(r.result, DIR_ALIAS);
	dir_resolution_free(&r);

	/* A table removed: empty again. */
	assert_int_equal(unlink(f->paths[1]), 0);
	refresh_ok(f);
	directory_resolve(f->d, "bob@example.com", &r);
	assert_int_equal(r.result, DIR_UNKNOWN);
	dir_resolution_free(&r);
}

static void test_missing_tables(void **state)
{
	struct fixture *f = *state;
	struct dir_resolution r;
	struct dir_expansion e;

	f->d = directory_open(f->dir);
	refresh_ok(f);
	directory_resolve(f->d, "bob@example.com", &r);
	assert_int_equal(r.result, DIR_NOT_HOSTED);
	dir_resolution_free(&r);
	directory_expand(f->d, "bob@example.com", &e);
	assert_int_equal(e.result, DIR_NOT_HOSTED);
	dir_expansion_free(&e);
	/* The first tables appear. */
	write_domains(f, domains, 1);
	write_users(f, NULL, NULL, NULL, 0);
	refresh_ok(f);
	directory_resolve(f->d, "bob@example.com", &r);
	assert_int_equal(r.result, DIR_LOCAL);
	dir_resolution_free(&r);
}

static void test_unreadable_table(void **state)
{
	struct fixture *f = *state;
	char *path = f->paths[0];
	FILE *fp = fopen(path, "w");
	struct dir_resolution r;
	char *error = NULL;

	assert_non_null(fp);
	fputs("this is not a table\n", fp);
	fclose(fp);
	f->d = directory_open(f->dir);
	assert_int_equal(directory_refresh(f->d, &error), -1);
	assert_non_null(strstr(error, DIR_DOMAINS_TABLE));
	free(error);
	directory_resolve(f->d, "bob@example.com", &r);
	assert_int_equal(r.result, DIR_ERROR);
	assert_non_null(strstr(r.reason, DIR_DOMAINS_TABLE));
	dir_resolution_free(&r);
	/* Fixed while running: the next refresh picks it up. */
	write_domains(f, domains, NELEM(domains));
	write_users(f, NULL, NULL, NULL, 0);
	refresh_ok(f);
	directory_resolve(f->d, "bob@example.com", &r);
	assert_int_equal(r.result, DIR_LOCAL);
	dir_resolution_free(&r);
}

/* record_bytes - a user-table value built field by field. */
static void record_bytes(struct buf *out, int64_t version, bool extra)
{
	ipc_begin(out);
	ipc_put_int(out, "version", version);
	ipc_put_str(out, "password", "$y$x");
	ipc_put_int(out, "quota", 1);
	ipc_put_int(out, "enabled", 1);
	if (extra)
		ipc_put_str(out, "surprise", "!");
	ipc_end(out);
	buf_consume(out, 4);
}

static void test_corrupt_records(void **state)
{
	struct fixture *f = *state;
	struct buf v2 = BUF_INIT, extra = BUF_INIT;
	struct dir_resolution r;
	struct dir_expansion e;
	struct table_writer *w;

	record_bytes(&v2, 2, false);
	record_bytes(&extra, 1, true);
	const struct {
		const char *what;
		const void *data;
		size_t len;
		const char *reason;
	} cases[] = {
		{ "garbage", "\xff\xff\xff", 3, "corrupt" },
		{ "empty", "", 0, "version" },
		{ "truncated", "i\x07version\x00\x00", 11, "corrupt" },
		{ "version 2", v2.data, v2.len, "version 2" },
		{ "unknown field", extra.data, extra.len, "unexpected field" },
	};

	for (size_t i = 0; i < NELEM(cases); i++) {
		write_users(f, NULL, "broken@example.com", cases[i].data, cases[i].len);
		refresh_ok(f);
		directory_resolve(f->d, "broken@example.com", &r);
		if (r.result != DIR_ERROR || strstr(r.reason, cases[i].reason) == NULL)
			fail_msg("%s: %s (%s)", cases[i].what, dir_result_name(r.result), r.reason != NULL ? r.reason : "");
		dir_resolution_free(&r);
		/* The rest of the table still answers. */
		directory_resolve(f->d, "bob@example.com", &r);
		assert_int_equal(r.result, DIR_LOCAL);
		dir_resolution_free(&r);
	}
	/* A corrupt alias met half-way through an expansion. */
	w = begin(f->paths[2]);
	write_alias(w, "via@example.com", "bob@example.com bad@example.com");
	{
		char *error = NULL;

		assert_int_equal(table_writer_put(w, "bad@example.com", "\x01", 1, &error), 0);
	}
	commit(w);
	refresh_ok(f);
	directory_expand(f->d, "via@example.com", &e);
	assert_int_equal(e.result, DIR_ERROR);
	assert_non_null(strstr(e.reason, "bad@example.com"));
	assert_int_equal(e.local_count, 0);
	dir_expansion_free(&e);
	directory_resolve(f->d, "via@example.com", &r);
	assert_int_equal(r.result, DIR_ERROR);
	dir_resolution_free(&r);
	buf_free(&v2);
	buf_free(&extra);
}

/* --- logins and sender addresses ----------------------------------- */

static void test_user_lookup(void **state)
{
	static const struct {
		const char *address;
		int rc;
		bool enabled;
	} cases[] = {
		{ "bob@example.com", 1, true },
		{ "BOB@Example.COM", 1, true },
		{ "alice@example.com", 1, false },
		{ "copy@example.com", 1, true },  /* a user, even though an alias shadows it for mail */
		{ "bob+tag@example.com", 0, false }, /* logins take the name itself */
		{ "info@example.com", 0, false },    /* an alias is not an account */
		{ "random@example.org", 0, false },  /* nor is the catch-all */
		{ "nobody@example.com", 0, false },
		{ "bob@remote.net", 0, false },
		{ "bob", 0, false },
		{ "", 0, false },
		{ "bob\n@example.com", 0, false },
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < NELEM(cases); i++) {
		struct dir_user u;
		char *error = NULL;
		int rc = directory_user(f->d, cases[i].address, &u, &error);

		if (rc != cases[i].rc)
			fail_msg("directory_user(%s) = %d, wanted %d (%s)", cases[i].address, rc, cases[i].rc,
				 error != NULL ? error : "");
		if (rc > 0) {
			assert_int_equal(u.enabled, cases[i].enabled);
			assert_string_equal(u.password, "$y$j9T$salt$hash");
			assert_null(u.scram);
		}
		dir_user_free(&u);
	}
}

static const struct {
	const char *user;
	const char *address;
	int rc;
} sender_cases[] = {
	{ "bob@example.com", "bob@example.com", 1 },
	{ "BOB@example.com", "Bob@Example.COM", 1 },
	{ "bob@example.com", "bob+lists@example.com", 1 },
	{ "bob@example.com", "info@example.com", 1 },       /* info -> bob, alice */
	{ "alice@example.com", "info@example.com", 1 },
	{ "carol@example.org", "info@example.com", 0 },
	{ "bob@example.com", "info+x@example.com", 1 },     /* the alias through its +tag form */
	{ "carol@example.org", "sales@example.com", 1 },    /* sales -> info, carol */
	{ "bob@example.com", "sales@example.com", 1 },      /* through info */
	{ "bob@example.com", "team@example.com", 1 },
	{ "bob@example.com", "bob+fwd@example.com", 1 },    /* its own exact alias, to bob and away */
	{ "bob@example.com", "mixed@example.com", 1 },
	{ "copy@example.com", "copy@example.com", 1 },      /* keep a copy and forward */
	{ "bob@example.com", "half@example.com", 1 },
	{ "bob@example.com", "alice@example.com", 0 },      /* someone else */
	{ "bob@example.com", "ext@example.com", 0 },        /* remote targets only */
	{ "bob@example.com", "list+tag@example.com", 0 },
	{ "carol@example.org", "carol@example.org", 1 },
	{ "carol@example.org", "random@example.org", 0 },   /* the catch-all gives nothing */
	{ "carol@example.org", "carol+x@example.org", 1 },
	{ "dave@example.org", "random@example.org", 0 },
	{ "carol@example.org", "tocatch@example.com", 1 },  /* an explicit alias reaching carol */
	{ "bob@example.com", "nobody@example.com", 0 },
	{ "bob@example.com", "bob@remote.net", 0 },
	{ "bob@example.com", "dead@example.com", 0 },
	{ "bob@example.com", "", 0 },                       /* the null sender is no address */
	{ "bob@example.com", "bob", 0 },
	{ "bob", "bob@example.com", 0 },
	{ "nobody@example.com", "nobody@example.com", 0 },
	{ "bob@example.com", "loop1@example.com", -1 },     /* trouble is trouble */
	{ "bob@example.com", "partloop@example.com", -1 },
};

static void test_sender_owned(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < NELEM(sender_cases); i++) {
		char *error = NULL;
		int rc = directory_sender_owned(f->d, sender_cases[i].user, sender_cases[i].address, &error);

		if (rc != sender_cases[i].rc)
			fail_msg("sender_owned(%s, %s) = %d, wanted %d (%s)", sender_cases[i].user,
				 sender_cases[i].address, rc, sender_cases[i].rc, error != NULL ? error : "");
		if (rc < 0)
			assert_non_null(error);
		free(error);
	}
}

/* --- records and address rules ------------------------------------- */

static void test_records_round_trip(void **state)
{
	struct dir_user u = { .password = (char *)"$y$j9T$abc$def", .quota = 123456789012LL, .enabled = false };
	struct dir_user got;
	struct dir_alias a = { 0 }, back;
	struct buf b = BUF_INIT;
	char *error = NULL;

	(void)state;
	dir_user_encode(&b, &u);
	assert_int_equal(dir_user_decode(b.data, b.len, &got, &error), 0);
	assert_string_equal(got.password, u.password);
	assert_int_equal(got.quota, u.quota);
	assert_false(got.enabled);
	dir_user_free(&got);
	assert_null(got.password);
	/* No SCRAM secret: no field at all, so that records keep the shape
	 * they had before secrets were stored; with one, it comes back. */
	assert_null(memmem(b.data, b.len, "scram", 5));
	u.scram = (char *)"SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5";
	dir_user_encode(&b, &u);
	assert_int_equal(dir_user_decode(b.data, b.len, &got, &error), 0);
	assert_string_equal(got.scram, u.scram);
	assert_string_equal(got.password, u.password);
	dir_user_free(&got);
	assert_null(got.scram);
	u.scram = NULL;
	/* A secret of the wrong type is a corrupt record. */
	{
		struct buf bad = BUF_INIT;

		ipc_begin(&bad);
		ipc_put_int(&bad, "version", DIR_RECORD_VERSION);
		ipc_put_str(&bad, "password", "x");
		ipc_put_int(&bad, "quota", 0);
		ipc_put_int(&bad, "enabled", 1);
		ipc_put_int(&bad, "scram", 7);
		ipc_end(&bad);
		assert_int_equal(dir_user_decode(bad.data + 4, bad.len - 4, &got, &error), -1);
		free(error);
		error = NULL;
		buf_free(&bad);
	}

	assert_true(dir_alias_add(&a, "a@example.com"));
	assert_true(dir_alias_add(&a, "b@remote.net"));
	assert_false(dir_alias_add(&a, "A@EXAMPLE.com"));
	assert_int_equal(a.count, 2);
	dir_alias_encode(&b, &a);
	assert_int_equal(dir_alias_decode(b.data, b.len, &back, &error), 0);
	assert_int_equal(back.count, 2);
	assert_string_equal(back.targets[0], "a@example.com");
	assert_string_equal(back.targets[1], "b@remote.net");
	dir_alias_free(&back);
	dir_alias_free(&a);
	/* An alias without targets is corrupt. */
	dir_alias_encode(&b, &a);
	assert_int_equal(dir_alias_decode(b.data, b.len, &back, &error), -1);
	free(error);
	error = NULL;

	dir_domain_encode(&b);
	assert_int_equal(dir_domain_decode(b.data, b.len, &error), 0);
	/* A user record is not a domain record. */
	dir_user_encode(&b, &u);
	assert_int_equal(dir_domain_decode(b.data, b.len, &error), -1);
	free(error);
	buf_free(&b);
}

static const struct {
	int (*check)(const char *, struct buf *, const char **);
	const char *name;
	const char *in;
	const char *out; /* NULL: refused */
} checks[] = {
	{ dir_check_domain, "domain", "Example.COM", "example.com" },
	{ dir_check_domain, "domain", "mail-1.example_x.org", "mail-1.example_x.org" },
	{ dir_check_domain, "domain", "localhost", "localhost" },
	{ dir_check_domain, "domain", "", NULL },
	{ dir_check_domain, "domain", "example..com", NULL },
	{ dir_check_domain, "domain", "-example.com", NULL },
	{ dir_check_domain, "domain", "example.com.", NULL },
	{ dir_check_domain, "domain", "[192.0.2.1]", NULL },
	{ dir_check_domain, "domain", "exa mple.com", NULL },
	{ dir_check_domain, "domain", "ex/ample.com", NULL },
	{ dir_check_domain, "domain", "bücher.example", NULL },
	{ dir_check_user, "user", "Bob@Example.com", "bob@example.com" },
	{ dir_check_user, "user", "first.last-1_x@example.com", "first.last-1_x@example.com" },
	{ dir_check_user, "user", "J\xc3\xb6rg@example.com", "j\xc3\xb6rg@example.com" },
	{ dir_check_user, "user", "\xe5\xb1\xb1\xe7\x94\xb0@example.com", "\xe5\xb1\xb1\xe7\x94\xb0@example.com" },
	{ dir_check_user, "user", "j\xc3rg@example.com", NULL },
	{ dir_check_user, "user", "a\xe2\x80\xae" "b@example.com", NULL },
	{ dir_check_user, "user", "bob+tag@example.com", NULL },
	{ dir_check_user, "user", "a/b@example.com", NULL },
	{ dir_check_user, "user", "../x@example.com", NULL },
	{ dir_check_user, "user", ".bob@example.com", NULL },
	{ dir_check_user, "user", "bob.@example.com", NULL },
	{ dir_check_user, "user", "bo..b@example.com", NULL },
	{ dir_check_user, "user", "@example.com", NULL },
	{ dir_check_user, "user", "bob", NULL },
	{ dir_check_user, "user", "bob@", NULL },
	{ dir_check_user, "user", "bob@example..com", NULL },
	{ dir_check_user, "user", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.com", NULL },
	{ dir_check_alias, "alias", "Info@Example.com", "info@example.com" },
	{ dir_check_alias, "alias", "list+tag@example.com", "list+tag@example.com" },
	{ dir_check_alias, "alias", "@Example.ORG", "@example.org" },
	{ dir_check_alias, "alias", "a b@example.com", NULL },
	{ dir_check_alias, "alias", "\xc3\xbc@Example.com", "\xc3\xbc@example.com" },
	{ dir_check_alias, "alias", "\"q\"@example.com", NULL },
	{ dir_check_alias, "alias", "@", NULL },
	{ dir_check_alias, "alias", "info", NULL },
	{ dir_check_target, "target", "Some.One@Remote.NET", "Some.One@remote.net" },
	{ dir_check_target, "target", "bob+tag@example.com", "bob+tag@example.com" },
	{ dir_check_target, "target", "@example.com", NULL },
	{ dir_check_target, "target", "bob", NULL },
	{ dir_check_target, "target", "bob@[192.0.2.1]", NULL },
	{ dir_check_target, "target", "b,c@example.com", NULL },
};

static void test_address_checks(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(checks); i++) {
		struct buf out = BUF_INIT;
		const char *error = NULL;
		int rc = checks[i].check(checks[i].in, &out, &error);

		if (checks[i].out == NULL) {
			if (rc != -1)
				fail_msg("%s \"%s\" accepted as \"%s\"", checks[i].name, checks[i].in, buf_cstr(&out));
			assert_non_null(error);
		} else {
			if (rc != 0)
				fail_msg("%s \"%s\" refused: %s", checks[i].name, checks[i].in, error);
			assert_string_equal(buf_cstr(&out), checks[i].out);
		}
		buf_free(&out);
	}
}

static void test_maildir_path(void **state)
{
	char *p = dir_maildir_path("/var/mail/yubin", "bob@example.com");

	(void)state;
	assert_string_equal(p, "/var/mail/yubin/example.com/bob/Maildir");
	free(p);
	assert_string_equal(dir_address_domain("a@b@c.org"), "c.org");
	assert_string_equal(dir_address_domain("@c.org"), "c.org");
	assert_string_equal(dir_address_domain("none"), "");
	assert_string_equal(dir_result_name(DIR_NOT_HOSTED), "not_hosted");
	assert_string_equal(dir_result_name(DIR_LOOP), "loop");
}

/* --- auth_proto.c: the client side of the protocol auth speaks ------ */

/* reply - a decoded message from fields added by fill(). */
static void reply(struct ipc_msg *msg, struct buf *frame)
{
	const char *error;

	ipc_end(frame);
	if (ipc_decode(frame->data + 4, frame->len - 4, msg, &error) < 0)
		fail_msg("decode: %s", error);
}

static void test_auth_proto_rcpt(void **state)
{
	struct buf f = BUF_INIT;
	struct ipc_msg msg;
	struct auth_rcpt_reply r;
	const char *error;

	(void)state;
	ipc_begin(&f);
	ipc_put_str(&f, AUTH_F_RESULT, "local");
	ipc_put_str(&f, AUTH_F_MAILBOX, "bob@example.com");
	ipc_put_int(&f, AUTH_F_QUOTA, 99);
	ipc_put_int(&f, AUTH_F_ENABLED, 0);
	ipc_put_str(&f, "added_later", "ignored");
	reply(&msg, &f);
	assert_int_equal(auth_parse_rcpt(&msg, &r, &error), 0);
	assert_int_equal(r.result, AUTH_R_LOCAL);
	assert_string_equal(r.mailbox, "bob@example.com");
	assert_int_equal(r.quota, 99);
	assert_false(r.enabled);
	ipc_msg_free(&msg);

	static const struct {
		const char *result;
		bool with_local_fields;
		int rc;
		enum auth_result want;
	} cases[] = {
		{ "alias", false, 0, AUTH_R_ALIAS },      { "unknown", false, 0, AUTH_R_UNKNOWN },
		{ "not_hosted", false, 0, AUTH_R_NOT_HOSTED }, { "error", false, 0, AUTH_R_ERROR },
		{ "local", false, -1, AUTH_R_LOCAL },      /* local needs its fields */
		{ "ok", false, -1, AUTH_R_OK },           /* an expand word */
		{ "maybe", false, -1, AUTH_R_ERROR },
	};
	for (size_t i = 0; i < NELEM(cases); i++) {
		ipc_begin(&f);
		ipc_put_str(&f, AUTH_F_RESULT, cases[i].result);
		ipc_put_str(&f, AUTH_F_REASON, "why");
		reply(&msg, &f);
		if (auth_parse_rcpt(&msg, &r, &error) != cases[i].rc)
			fail_msg("rcpt reply \"%s\": wanted %d", cases[i].result, cases[i].rc);
		if (cases[i].rc == 0)
			assert_int_equal(r.result, cases[i].want);
		ipc_msg_free(&msg);
	}
	/* no result at all; a repeated quota */
	ipc_begin(&f);
	ipc_put_str(&f, AUTH_F_MAILBOX, "bob@example.com");
	reply(&msg, &f);
	assert_int_equal(auth_parse_rcpt(&msg, &r, &error), -1);
	ipc_msg_free(&msg);
	ipc_begin(&f);
	ipc_put_str(&f, AUTH_F_RESULT, "local");
	ipc_put_str(&f, AUTH_F_MAILBOX, "bob@example.com");
	ipc_put_int(&f, AUTH_F_QUOTA, 1);
	ipc_put_int(&f, AUTH_F_QUOTA, 2);
	ipc_put_int(&f, AUTH_F_ENABLED, 1);
	reply(&msg, &f);
	assert_int_equal(auth_parse_rcpt(&msg, &r, &error), -1);
	ipc_msg_free(&msg);
	buf_free(&f);
}

static void test_auth_proto_expand(void **state)
{
	struct buf f = BUF_INIT;
	struct ipc_msg msg;
	struct auth_expand_reply r;
	const char *error;

	(void)state;
	ipc_begin(&f);
	ipc_put_str(&f, AUTH_F_RESULT, "ok");
	ipc_put_str(&f, AUTH_F_LOCAL, "bob@example.com");
	ipc_put_int(&f, AUTH_F_QUOTA, 5);
	ipc_put_str(&f, AUTH_F_LOCAL, "alice@example.com");
	ipc_put_int(&f, AUTH_F_QUOTA, 0);
	ipc_put_str(&f, AUTH_F_REMOTE, "x@remote.net");
	ipc_put_str(&f, AUTH_F_UNKNOWN, "nobody@example.com");
	reply(&msg, &f);
	assert_int_equal(auth_parse_expand(&msg, &r, &error), 0);
	assert_int_equal(r.result, AUTH_R_OK);
	assert_int_equal(r.local_count, 2);
	assert_string_equal(r.local[0].mailbox, "bob@example.com");
	assert_int_equal(r.local[0].quota, 5);
	assert_string_equal(r.local[1].mailbox, "alice@example.com");
	assert_int_equal(r.remote_count, 1);
	assert_string_equal(r.remote[0], "x@remote.net");
	assert_int_equal(r.unknown_count, 1);
	auth_expand_reply_free(&r);
	ipc_msg_free(&msg);

	/* malformed target lists */
	static const char *const bad[][6] = {
		{ "ok", NULL },                                /* ok without targets */
		{ "ok", "local", "remote", NULL },             /* local without quota */
		{ "ok", "quota", NULL },                       /* quota without local */
		{ "local", NULL },                             /* an rcpt word */
	};
	for (size_t i = 0; i < NELEM(bad); i++) {
		ipc_begin(&f);
		ipc_put_str(&f, AUTH_F_RESULT, bad[i][0]);
		for (int j = 1; j < 6 && bad[i][j] != NULL; j++) {
			if (strcmp(bad[i][j], "quota") == 0)
				ipc_put_int(&f, AUTH_F_QUOTA, 1);
			else
				ipc_put_str(&f, bad[i][j], "a@b.example");
		}
		reply(&msg, &f);
		if (auth_parse_expand(&msg, &r, &error) != -1)
			fail_msg("bad expand reply %zu accepted", i);
		ipc_msg_free(&msg);
	}
	ipc_begin(&f);
	ipc_put_str(&f, AUTH_F_RESULT, "loop");
	ipc_put_str(&f, AUTH_F_REASON, "alias loop: a -> b -> a");
	reply(&msg, &f);
	assert_int_equal(auth_parse_expand(&msg, &r, &error), 0);
	assert_int_equal(r.result, AUTH_R_LOOP);
	assert_string_equal(r.reason, "alias loop: a -> b -> a");
	auth_expand_reply_free(&r);
	ipc_msg_free(&msg);
	buf_free(&f);
}

static void test_auth_proto_domain_and_names(void **state)
{
	struct buf f = BUF_INIT;
	struct ipc_msg msg;
	enum auth_result result;
	const char *reason, *error;

	(void)state;
	ipc_begin(&f);
	ipc_put_str(&f, AUTH_F_RESULT, "hosted");
	reply(&msg, &f);
	assert_int_equal(auth_parse_domain(&msg, &result, &reason, &error), 0);
	assert_int_equal(result, AUTH_R_HOSTED);
	ipc_msg_free(&msg);
	ipc_begin(&f);
	ipc_put_str(&f, AUTH_F_RESULT, "alias");
	reply(&msg, &f);
	assert_int_equal(auth_parse_domain(&msg, &result, &reason, &error), -1);
	ipc_msg_free(&msg);
	/* The daemon's words (dir_result_name) are the protocol's words. */
	static const enum dir_result all[] = { DIR_NOT_HOSTED, DIR_UNKNOWN, DIR_LOCAL, DIR_ALIAS,
					       DIR_OK, DIR_LOOP, DIR_ERROR };
	for (size_t i = 0; i < NELEM(all); i++)
		assert_int_equal(auth_result_parse(dir_result_name(all[i]), &result), 0);
	assert_string_equal(auth_result_name(AUTH_R_NOT_HOSTED), "not_hosted");
	/* Requests as a client builds them. */
	ipc_begin(&f);
	auth_put_rcpt(&f, "bob@example.com");
	reply(&msg, &f);
	assert_string_equal(ipc_get_str(&msg, AUTH_F_CMD), AUTH_CMD_RCPT);
	assert_string_equal(ipc_get_str(&msg, AUTH_F_ADDRESS), "bob@example.com");
	ipc_msg_free(&msg);
	buf_free(&f);
}

static void test_auth_proto_sender(void **state)
{
	struct buf f = BUF_INIT;
	struct ipc_msg msg;
	bool owned = true;
	const char *error = NULL;

	(void)state;
	ipc_begin(&f);
	auth_put_sender(&f, "bob@example.com", "x@example.com");
	reply(&msg, &f);
	assert_string_equal(ipc_get_str(&msg, AUTH_F_CMD), AUTH_CMD_SENDER);
	assert_string_equal(ipc_get_str(&msg, AUTH_F_USER), "bob@example.com");
	assert_string_equal(ipc_get_str(&msg, AUTH_F_ADDRESS), "x@example.com");
	ipc_msg_free(&msg);

	ipc_begin(&f);
	ipc_put_str(&f, AUTH_F_RESULT, "ok");
	reply(&msg, &f);
	assert_int_equal(auth_parse_sender(&msg, &owned, &error), 0);
	assert_true(owned);
	ipc_msg_free(&msg);
	ipc_begin(&f);
	ipc_put_str(&f, AUTH_F_RESULT, "no");
	reply(&msg, &f);
	assert_int_equal(auth_parse_sender(&msg, &owned, &error), 0);
	assert_false(owned);
	ipc_msg_free(&msg);
	ipc_begin(&f);
	ipc_put_str(&f, AUTH_F_RESULT, "error");
	ipc_put_str(&f, AUTH_F_REASON, "aliases.db: Permission denied");
	reply(&msg, &f);
	assert_int_equal(auth_parse_sender(&msg, &owned, &error), -1);
	assert_string_equal(error, "aliases.db: Permission denied");
	ipc_msg_free(&msg);
	ipc_begin(&f);
	ipc_put_str(&f, AUTH_F_RESULT, "local");
	reply(&msg, &f);
	assert_int_equal(auth_parse_sender(&msg, &owned, &error), -1);
	ipc_msg_free(&msg);
	buf_free(&f);
}

static void test_auth_proto_sasl(void **state)
{
	struct buf f = BUF_INIT;
	struct ipc_msg msg;
	struct auth_sasl_reply r;
	const char *error = NULL;
	int64_t n = 0;

	(void)state;
	/* Requests as smtpd builds them. */
	ipc_begin(&f);
	auth_put_sasl_mechs(&f, "smtp", true);
	reply(&msg, &f);
	assert_string_equal(ipc_get_str(&msg, AUTH_F_CMD), AUTH_CMD_MECHS);
	assert_string_equal(ipc_get_str(&msg, AUTH_F_SERVICE), "smtp");
	assert_true(ipc_get_int(&msg, AUTH_F_SECURE, &n) && n == 1);
	ipc_msg_free(&msg);
	ipc_begin(&f);
	auth_put_sasl_start(&f, 42, "smtp", "PLAIN", NULL, 0, false, "192.0.2.7", false);
	reply(&msg, &f);
	assert_string_equal(ipc_get_str(&msg, AUTH_F_CMD), AUTH_CMD_START);
	assert_true(ipc_get_int(&msg, AUTH_F_SESSION, &n) && n == 42);
	assert_string_equal(ipc_get_str(&msg, AUTH_F_MECH), "PLAIN");
	assert_string_equal(ipc_get_str(&msg, AUTH_F_CLIENT), "192.0.2.7");
	assert_true(ipc_get_int(&msg, AUTH_F_SECURE, &n) && n == 0);
	assert_int_equal(msg.count, 6); /* no response field: no initial response */
	ipc_msg_free(&msg);
	ipc_begin(&f);
	auth_put_sasl_start(&f, 1, "imap", "PLAIN", NULL, 0, true, "::1", true);
	reply(&msg, &f);
	assert_int_equal(msg.count, 7); /* "=": present and empty */
	assert_int_equal(msg.fields[6].type, IPC_BYTES);
	assert_int_equal(msg.fields[6].len, 0);
	ipc_msg_free(&msg);
	ipc_begin(&f);
	auth_put_sasl_step(&f, 1, "a\0b", 3);
	reply(&msg, &f);
	assert_string_equal(ipc_get_str(&msg, AUTH_F_CMD), AUTH_CMD_STEP);
	assert_int_equal(msg.fields[2].len, 3);
	assert_memory_equal(msg.fields[2].data, "a\0b", 3);
	ipc_msg_free(&msg);
	ipc_begin(&f);
	auth_put_sasl_cancel(&f, 9);
	reply(&msg, &f);
	assert_string_equal(ipc_get_str(&msg, AUTH_F_CMD), AUTH_CMD_CANCEL);
	ipc_msg_free(&msg);

	/* Replies. */
	ipc_begin(&f);
	ipc_put_str(&f, AUTH_F_RESULT, "continue");
	ipc_put_bytes(&f, AUTH_F_CHALLENGE, "", 0);
	reply(&msg, &f);
	assert_int_equal(auth_parse_sasl(&msg, &r, &error), 0);
	assert_int_equal(r.result, AUTH_SASL_CONTINUE);
	assert_int_equal(r.challenge_len, 0);
	assert_non_null(r.challenge);
	ipc_msg_free(&msg);
	ipc_begin(&f);
	ipc_put_str(&f, AUTH_F_RESULT, "ok");
	ipc_put_str(&f, AUTH_F_USER, "bob@example.com");
	ipc_put_str(&f, "added_later", "x");
	reply(&msg, &f);
	assert_int_equal(auth_parse_sasl(&msg, &r, &error), 0);
	assert_int_equal(r.result, AUTH_SASL_OK);
	assert_string_equal(r.user, "bob@example.com");
	assert_null(r.mechs);
	ipc_msg_free(&msg);
	ipc_begin(&f);
	ipc_put_str(&f, AUTH_F_RESULT, "ok");
	ipc_put_str(&f, AUTH_F_MECHS, "SCRAM-SHA-256");
	reply(&msg, &f);
	assert_int_equal(auth_parse_sasl(&msg, &r, &error), 0);
	assert_string_equal(r.mechs, "SCRAM-SHA-256");
	ipc_msg_free(&msg);
	static const struct {
		const char *word;
		enum auth_sasl_result want;
	} words[] = { { "fail", AUTH_SASL_FAIL }, { "encrypt", AUTH_SASL_ENCRYPT }, { "temp", AUTH_SASL_TEMP } };
	for (size_t i = 0; i < NELEM(words); i++) {
		ipc_begin(&f);
		ipc_put_str(&f, AUTH_F_RESULT, words[i].word);
		ipc_put_str(&f, AUTH_F_REASON, "why");
		ipc_put_str(&f, AUTH_F_USER, "ignored@example.com");
		reply(&msg, &f);
		assert_int_equal(auth_parse_sasl(&msg, &r, &error), 0);
		assert_int_equal(r.result, words[i].want);
		assert_string_equal(r.reason, "why");
		assert_null(r.user); /* only an ok names a user */
		assert_string_equal(auth_sasl_result_name(words[i].want), words[i].word);
		ipc_msg_free(&msg);
	}
	/* Not auth-sasl replies. */
	static const char *const bad[][2] = {
		{ NULL, NULL },             /* no result */
		{ "continue", NULL },       /* continue without a challenge */
		{ "maybe", NULL },          /* unknown word */
		{ "ok", "user" },           /* user twice */
	};
	for (size_t i = 0; i < NELEM(bad); i++) {
		ipc_begin(&f);
		if (bad[i][0] != NULL)
			ipc_put_str(&f, AUTH_F_RESULT, bad[i][0]);
		if (bad[i][1] != NULL) {
			ipc_put_str(&f, bad[i][1], "a@example.com");
			ipc_put_str(&f, bad[i][1], "b@example.com");
		}
		reply(&msg, &f);
		if (auth_parse_sasl(&msg, &r, &error) != -1)
			fail_msg("bad auth-sasl reply %zu accepted", i);
		ipc_msg_free(&msg);
	}
	ipc_begin(&f);
	ipc_put_str(&f, AUTH_F_RESULT, "continue");
	ipc_put_str(&f, AUTH_F_CHALLENGE, "text, not bytes");
	reply(&msg, &f);
	assert_int_equal(auth_parse_sasl(&msg, &r, &error), -1);
	ipc_msg_free(&msg);
	buf_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_resolve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve_long_address, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expand, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expand_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_domain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refresh_sees_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_tables, setup_empty, teardown),
		cmocka_unit_test_setup_teardown(test_unreadable_table, setup_empty, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_records, setup, teardown),
		cmocka_unit_test(test_records_round_trip),
		cmocka_unit_test(test_address_checks),
		cmocka_unit_test(test_maildir_path),
		cmocka_unit_test(test_auth_proto_rcpt),
		cmocka_unit_test(test_auth_proto_expand),
		cmocka_unit_test(test_auth_proto_domain_and_names),
		cmocka_unit_test_setup_teardown(test_user_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sender_owned, setup, teardown),
		cmocka_unit_test(test_auth_proto_sender),
		cmocka_unit_test(test_auth_proto_sasl),
	};

	log_init("test_directory", LOG_SINK_STDERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
