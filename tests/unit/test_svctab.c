#include "config.h"
/* test_svctab.c - unit tests for libutil/svctab.c, the master.conf service table. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libutil/mem.h"
#include "../../libutil/svctab.h"
#include "unit.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
/* BIN - a string literal and its length, NULs included. */
#define BIN(s) s, sizeof(s) - 1

/* The ${key} values the tests offer, as yubin.conf would. */
static const char *const vars[][2] = {
	{ "queue_directory", "/var/spool/yubin" },
	{ "port", "2525" },
	{ "empty", "" },
	{ "user", "yubin" },
	{ "dollar", "${port}" }, /* not expanded a second time */
};

static int lookup_calls;

static const char *lookup(const char *name, void *context)
{
	assert_ptr_equal(context, &lookup_calls);
	lookup_calls++;
	for (size_t i = 0; i < NELEM(vars); i++)
		if (strcmp(vars[i][0], name) == 0)
			return vars[i][1];
	return NULL;
}

/* load - svctab_load on a temp file holding text[0..len). */
static int load(const char *text, size_t len, struct svc_table *t, char **path_r, char **error_r)
{
	*path_r = unit_write_temp(text, len);
	return svctab_load(*path_r, lookup, &lookup_calls, t, error_r);
}

static void assert_strv(char *const *got, size_t count, const char *const *want)
{
	size_t n = 0;

	while (want[n] != NULL)
		n++;
	assert_int_equal(count, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(got[i], want[i]);
	assert_null(got[n]);
}

static void test_load_valid(void **state)
{
	static const char text[] =
		"# name type listen user chroot procs program args\n"
		"\n"
		"smtpd      inet *:25 yubin /var/spool/yubin 4 smtpd -v\n"
		"   # indented comment\n"
		"submission inet [::1]:587,127.0.0.1:587,mx.example.org:587 yubin - 2 smtpd -o auth=yes\n"
		"qmgr\tunix\tqmgr\tyubin\t-\t1\tqmgr\n"
		"auth unix /run/yubin/auth.sock yubin-auth - 1000 /usr/lib/yubin/auth\n"
		"pickup unix - yubin - 1 pickup\n"
		"pub unix public/pickup yubin - 1 smtpd\n"
		"mbx unix sasl,mailbox/sasl yubin - 1 auth\n"
		"expanded inet *:${port} ${user} ${queue_directory} 1 smtpd ${queue_directory}/x a${empty}b ${dollar}\n"
		"Smtp_2-x inet localhost:65535 yubin - 1 smtp\n";
	struct svc_table t;
	char *path, *error = NULL;
	const struct svc_entry *e;

	(void)state;
	lookup_calls = 0;
	if (load(BIN(text), &t, &path, &error) != 0)
		fail_msg("svctab_load: %s", error);
	assert_int_equal(t.count, 9);
	assert_int_equal(lookup_calls, 6);

	e = svctab_find(&t, "smtpd");
	assert_ptr_equal(e, &t.entries[0]);
	assert_int_equal(e->type, SVC_INET);
	assert_strv(e->listen, e->listen_count, (const char *const[]){ "*:25", NULL });
	assert_string_equal(e->user, "yubin");
	assert_string_equal(e->chroot_dir, "/var/spool/yubin");
	assert_int_equal(e->procs, 4);
	assert_string_equal(e->program, "smtpd");
	assert_strv(e->argv, e->argc, (const char *const[]){ "-v", NULL });
	assert_int_equal(e->line, 3);

	e = svctab_find(&t, "submission");
	assert_int_equal(e->type, SVC_INET);
	assert_strv(e->listen, e->listen_count,
		    (const char *const[]){ "[::1]:587", "127.0.0.1:587", "mx.example.org:587", NULL });
	assert_null(e->chroot_dir);
	assert_int_equal(e->procs, 2);
	assert_strv(e->argv, e->argc, (const char *const[]){ "-o", "auth=yes", NULL });
	assert_int_equal(e->line, 5);

	e = svctab_find(&t, "qmgr");
	assert_int_equal(e->type, SVC_UNIX);
	assert_strv(e->listen, e->listen_count, (const char *const[]){ "qmgr", NULL });
	assert_null(e->chroot_dir);
	assert_strv(e->argv, e->argc, (const char *const[]){ NULL });
	assert_int_equal(e->line, 6);

	e = svctab_find(&t, "auth");
	assert_int_equal(e->type, SVC_UNIX);
	assert_strv(e->listen, e->listen_count, (const char *const[]){ "/run/yubin/auth.sock", NULL });
	assert_string_equal(e->user, "yubin-auth");
	assert_int_equal(e->procs, 1000);
	assert_string_equal(e->program, "/usr/lib/yubin/auth");

	e = svctab_find(&t, "pickup");
	assert_int_equal(e->type, SVC_UNIX);
	assert_strv(e->listen, e->listen_count, (const char *const[]){ NULL });

	e = svctab_find(&t, "pub");
	assert_int_equal(e->type, SVC_UNIX);
	assert_strv(e->listen, e->listen_count, (const char *const[]){ "public/pickup", NULL });

	e = svctab_find(&t, "mbx");
	assert_strv(e->listen, e->listen_count, (const char *const[]){ "sasl", "mailbox/sasl", NULL });

	e = svctab_find(&t, "expanded");
	assert_strv(e->listen, e->listen_count, (const char *const[]){ "*:2525", NULL });
	assert_string_equal(e->user, "yubin");
	assert_string_equal(e->chroot_dir, "/var/spool/yubin");
	assert_strv(e->argv, e->argc,
		    (const char *const[]){ "/var/spool/yubin/x", "ab", "${port}", NULL });

	e = svctab_find(&t, "Smtp_2-x");
	assert_non_null(e);
	assert_int_equal(e->line, 12);

	assert_null(svctab_find(&t, "smtp"));
	assert_null(svctab_find(&t, "SMTPD"));
	svctab_free(&t);
	assert_null(t.entries);
	assert_int_equal(t.count, 0);
	unit_remove_temp(path);
}

static void test_load_empty(void **state)
{
	static const char *const texts[] = { "", "\n\n", "# only a comment\n", "  \t \n# x\n" };

	(void)state;
	for (size_t i = 0; i < NELEM(texts); i++) {
		struct svc_table t;
		char *path, *error = NULL;

		if (load(texts[i], strlen(texts[i]), &t, &path, &error) != 0)
			fail_msg("\"%s\": %s", texts[i], error);
		assert_int_equal(t.count, 0);
		svctab_free(&t);
		unit_remove_temp(path);
	}
}

static void test_load_errors(void **state)
{
	static const struct {
		const char *name;
		const char *text;
		size_t len;
		const char *want; /* after the file name */
	} cases[] = {
		{ "too few columns", BIN("smtpd inet *:25 yubin - 1\n"),
		  ":1: expected at least 7 columns (name type listen user chroot procs program), found 6" },
		{ "one column", BIN("# x\nsmtpd\n"),
		  ":2: expected at least 7 columns (name type listen user chroot procs program), found 1" },
		{ "bad name", BIN("smt.pd inet *:25 yubin - 1 smtpd\n"),
		  ":1: bad service name \"smt.pd\" (letters, digits, - and _; at most 32)" },
		{ "name too long", BIN("a23456789012345678901234567890123 inet *:25 yubin - 1 smtpd\n"),
		  ":1: bad service name \"a23456789012345678901234567890123\" (letters, digits, - and _; at most 32)" },
		{ "name empty after expansion", BIN("${empty} inet *:25 yubin - 1 smtpd\n"),
		  ":1: bad service name \"\" (letters, digits, - and _; at most 32)" },
		{ "bad type", BIN("smtpd tcp *:25 yubin - 1 smtpd\n"),
		  ":1: service smtpd: bad type \"tcp\" (inet or unix)" },
		{ "type case matters", BIN("smtpd INET *:25 yubin - 1 smtpd\n"),
		  ":1: service smtpd: bad type \"INET\" (inet or unix)" },
		{ "inet without listen", BIN("smtpd inet - yubin - 1 smtpd\n"),
		  ":1: service smtpd: an inet service needs a listen address" },
		{ "port 0", BIN("smtpd inet *:0 yubin - 1 smtpd\n"),
		  ":1: service smtpd: listen address \"*:0\": bad port (1 to 65535)" },
		{ "port 65536", BIN("smtpd inet *:65536 yubin - 1 smtpd\n"),
		  ":1: service smtpd: listen address \"*:65536\": bad port (1 to 65535)" },
		{ "port x", BIN("smtpd inet *:x yubin - 1 smtpd\n"),
		  ":1: service smtpd: listen address \"*:x\": bad port (1 to 65535)" },
		{ "port missing", BIN("smtpd inet localhost yubin - 1 smtpd\n"),
		  ":1: service smtpd: listen address \"localhost\": expected host:port" },
		{ "second address bad", BIN("smtpd inet *:25,[::1]:0 yubin - 1 smtpd\n"),
		  ":1: service smtpd: listen address \"[::1]:0\": bad port (1 to 65535)" },
		{ "empty list element", BIN("smtpd inet *:25, yubin - 1 smtpd\n"),
		  ":1: service smtpd: listen address \"\": expected host:port" },
		{ "IPv6 without brackets", BIN("smtpd inet ::1:25 yubin - 1 smtpd\n"),
		  ":1: service smtpd: listen address \"::1:25\": write IPv6 addresses as [address]:port" },
		{ "bracket without port", BIN("smtpd inet [::1] yubin - 1 smtpd\n"),
		  ":1: service smtpd: listen address \"[::1]\": expected [address]:port" },
		{ "no host", BIN("smtpd inet :25 yubin - 1 smtpd\n"),
		  ":1: service smtpd: listen address \":25\": missing host (use * for every address)" },
		{ "unix name with a slash", BIN("qmgr unix a/b yubin - 1 qmgr\n"),
		  ":1: service qmgr: unix socket \"a/b\": use a plain name, public/NAME, mailbox/NAME or an absolute path" },
		{ "unix public without a name", BIN("qmgr unix public/ yubin - 1 qmgr\n"),
		  ":1: service qmgr: unix socket \"public/\": use a plain name, public/NAME, mailbox/NAME or an absolute path" },
		{ "unix public two levels", BIN("qmgr unix public/a/b yubin - 1 qmgr\n"),
		  ":1: service qmgr: unix socket \"public/a/b\": use a plain name, public/NAME, mailbox/NAME or an absolute path" },
		{ "unix mailbox without a name", BIN("auth unix mailbox/ yubin - 1 auth\n"),
		  ":1: service auth: unix socket \"mailbox/\": use a plain name, public/NAME, mailbox/NAME or an absolute path" },
		{ "unix mailbox two levels", BIN("auth unix mailbox/a/b yubin - 1 auth\n"),
		  ":1: service auth: unix socket \"mailbox/a/b\": use a plain name, public/NAME, mailbox/NAME or an absolute path" },
		{ "unix private prefix", BIN("qmgr unix private/qmgr yubin - 1 qmgr\n"),
		  ":1: service qmgr: unix socket \"private/qmgr\": use a plain name, public/NAME, mailbox/NAME or an absolute path" },
		{ "unix name with a dot", BIN("qmgr unix a.sock yubin - 1 qmgr\n"),
		  ":1: service qmgr: unix socket \"a.sock\": use a plain name, public/NAME, mailbox/NAME or an absolute path" },
		{ "unix path too long",
		  BIN("qmgr unix /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa yubin - 1 qmgr\n"),
		  ":1: service qmgr: unix socket path "
		  "\"/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" is too long" },
		{ "chroot not absolute", BIN("smtpd inet *:25 yubin var/spool 1 smtpd\n"),
		  ":1: service smtpd: chroot \"var/spool\" must be an absolute path or -" },
		{ "procs 0", BIN("smtpd inet *:25 yubin - 0 smtpd\n"),
		  ":1: service smtpd: process count \"0\": out of range (1 to 1000)" },
		{ "procs 1001", BIN("smtpd inet *:25 yubin - 1001 smtpd\n"),
		  ":1: service smtpd: process count \"1001\": out of range (1 to 1000)" },
		{ "procs x", BIN("smtpd inet *:25 yubin - x smtpd\n"),
		  ":1: service smtpd: process count \"x\": not a number (1 to 1000)" },
		{ "procs -1", BIN("smtpd inet *:25 yubin - -1 smtpd\n"),
		  ":1: service smtpd: process count \"-1\": out of range (1 to 1000)" },
		{ "duplicate service", BIN("smtpd inet *:25 yubin - 1 smtpd\n# x\nqmgr unix qmgr yubin - 1 qmgr\nsmtpd inet *:26 yubin - 1 smtpd\n"),
		  ":4: service smtpd is already defined at line 1" },
		{ "duplicate after expansion", BIN("p2525 inet *:1 yubin - 1 smtpd\np${port} inet *:2 yubin - 1 smtpd\n"),
		  ":2: service p2525 is already defined at line 1" },
		{ "unknown variable", BIN("smtpd inet *:${nope} yubin - 1 smtpd\n"),
		  ":1: unknown variable \"${nope}\"" },
		{ "unknown variable in an argument", BIN("smtpd inet *:25 yubin - 1 smtpd -x ${Port}\n"),
		  ":1: unknown variable \"${Port}\"" },
		{ "empty variable name", BIN("smtpd inet *:25 yubin - 1 smtpd ${}\n"),
		  ":1: unknown variable \"${}\"" },
		{ "unterminated ${", BIN("smtpd inet *:${port yubin - 1 smtpd\n"),
		  ":1: unterminated \"${\" in \"*:${port\"" },
		{ "unterminated ${ in the name", BIN("${ inet *:25 yubin - 1 smtpd\n"),
		  ":1: unterminated \"${\" in \"${\"" },
		{ "65 columns",
		  BIN("s inet *:1 u - 1 p a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a\n"),
		  ":1: more than 64 columns" },
		{ "NUL in a line", BIN("# ok\nsmtpd inet *:25 yubin - 1 sm\0tpd\n"),
		  ":2: line too long or holds a NUL" },
		{ "error on a later line", BIN("smtpd inet *:25 yubin - 1 smtpd\nbad\n"),
		  ":2: expected at least 7 columns (name type listen user chroot procs program), found 1" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct svc_table t;
		char *path, *error = NULL, *want;

		if (load(cases[i].text, cases[i].len, &t, &path, &error) != -1)
			fail_msg("%s: svctab_load succeeded", cases[i].name);
		want = xasprintf("%s%s", path, cases[i].want);
		assert_non_null(error);
		if (strcmp(error, want) != 0)
			fail_msg("%s:\n got \"%s\"\nwant \"%s\"", cases[i].name, error, want);
		/* a failed load leaves an empty table */
		assert_null(t.entries);
		assert_int_equal(t.count, 0);
		svctab_free(&t);
		free(want);
		free(error);
		unit_remove_temp(path);
	}
}

static void test_columns_limit(void **state)
{
	/* 64 columns are fine: 7 fixed and 57 arguments. */
	char text[512] = "s inet *:1 u - 1 p";
	size_t len = strlen(text);
	struct svc_table t;
	char *path, *error = NULL;

	(void)state;
	for (int i = 0; i < 57; i++)
		len += (size_t)snprintf(text + len, sizeof text - len, " a%d", i);
	text[len++] = '\n';
	if (load(text, len, &t, &path, &error) != 0)
		fail_msg("64 columns: %s", error);
	assert_int_equal(t.count, 1);
	assert_int_equal(t.entries[0].argc, 57);
	assert_string_equal(t.entries[0].argv[56], "a56");
	svctab_free(&t);
	unit_remove_temp(path);
}

static void test_long_lines(void **state)
{
	static const struct {
		size_t chars; /* before the newline */
		int rc;
	} cases[] = { { 4095, 0 }, { 4096, 0 }, { 4097, -1 }, { 10000, -1 } };

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		static const char head[] = "smtpd inet *:25 yubin - 1 smtpd ";
		char *text = xmalloc(cases[i].chars + 2);
		struct svc_table t;
		char *path, *error = NULL;
		int rc;

		memcpy(text, head, sizeof head - 1);
		memset(text + sizeof head - 1, 'x', cases[i].chars - (sizeof head - 1));
		text[cases[i].chars] = '\n';
		text[cases[i].chars + 1] = '\0';
		rc = load(text, cases[i].chars + 1, &t, &path, &error);
		if (rc != cases[i].rc)
			fail_msg("%zu characters: rc %d, want %d", cases[i].chars, rc, cases[i].rc);
		if (rc == 0) {
			assert_int_equal(strlen(t.entries[0].argv[0]), cases[i].chars - (sizeof head - 1));
		} else {
			char *want = xasprintf("%s:1: line too long or holds a NUL", path);

			assert_string_equal(error, want);
			free(want);
			free(error);
		}
		svctab_free(&t);
		unit_remove_temp(path);
		free(text);
	}
}

static void test_missing_file_and_no_lookup(void **state)
{
	struct svc_table t;
	char *error = NULL, *want;
	char *dir = unit_make_temp_dir();
	char *path = xasprintf("%s/master.conf", dir);

	(void)state;
	want = xasprintf("%s: cannot open: No such file or directory", path);
	assert_int_equal(svctab_load(path, lookup, &lookup_calls, &t, &error), -1);
	assert_string_equal(error, want);
	assert_int_equal(t.count, 0);
	free(error);
	free(want);
	free(path);
	unit_remove_temp_dir(dir);

	/* without a lookup function every ${...} is unknown */
	path = unit_write_temp_str("smtpd inet *:${port} yubin - 1 smtpd\n");
	assert_int_equal(svctab_load(path, NULL, NULL, &t, &error), -1);
	want = xasprintf("%s:1: unknown variable \"${port}\"", path);
	assert_string_equal(error, want);
	free(error);
	free(want);
	unit_remove_temp(path);

	/* ... but lines without one load fine */
	path = unit_write_temp_str("smtpd inet *:25 yubin - 1 smtpd\n");
	assert_int_equal(svctab_load(path, NULL, NULL, &t, &error), 0);
	assert_int_equal(t.count, 1);
	svctab_free(&t);
	unit_remove_temp(path);
}

static void test_parse_inet(void **state)
{
	static const struct {
		const char *spec;
		int rc;
		const char *host; /* NULL: every address */
		int port;
		const char *error;
	} cases[] = {
		{ "*:25", 0, NULL, 25, NULL },
		{ "*:1", 0, NULL, 1, NULL },
		{ "*:65535", 0, NULL, 65535, NULL },
		{ "127.0.0.1:587", 0, "127.0.0.1", 587, NULL },
		{ "mx.example.org:25", 0, "mx.example.org", 25, NULL },
		{ "localhost:2525", 0, "localhost", 2525, NULL },
		{ "[::1]:25", 0, "::1", 25, NULL },
		{ "[::]:25", 0, "::", 25, NULL },
		{ "[2001:db8::1]:465", 0, "2001:db8::1", 465, NULL },
		{ "*:0", -1, NULL, 0, "bad port (1 to 65535)" },
		{ "*:65536", -1, NULL, 0, "bad port (1 to 65535)" },
		{ "*:-1", -1, NULL, 0, "bad port (1 to 65535)" },
		{ "*:x", -1, NULL, 0, "bad port (1 to 65535)" },
		{ "*:", -1, NULL, 0, "bad port (1 to 65535)" },
		{ "*: 25", -1, NULL, 0, "bad port (1 to 65535)" },
		{ "*:25x", -1, NULL, 0, "bad port (1 to 65535)" },
		{ "[::1]:0", -1, NULL, 0, "bad port (1 to 65535)" },
		{ "[::1]:", -1, NULL, 0, "bad port (1 to 65535)" },
		{ "25", -1, NULL, 0, "expected host:port" },
		{ "", -1, NULL, 0, "expected host:port" },
		{ "::1:25", -1, NULL, 0, "write IPv6 addresses as [address]:port" },
		{ "a:b:25", -1, NULL, 0, "write IPv6 addresses as [address]:port" },
		{ "[::1]", -1, NULL, 0, "expected [address]:port" },
		{ "[::1]25", -1, NULL, 0, "expected [address]:port" },
		{ "[::1", -1, NULL, 0, "expected [address]:port" },
		{ ":25", -1, NULL, 0, "missing host (use * for every address)" },
		{ "[]:25", -1, NULL, 0, "missing host (use * for every address)" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		char *host = (char *)"unset";
		int port = -7;
		const char *error = NULL;
		int rc = svctab_parse_inet(cases[i].spec, &host, &port, &error);

		if (rc != cases[i].rc)
			fail_msg("\"%s\": rc %d, want %d (%s)", cases[i].spec, rc, cases[i].rc,
				 error != NULL ? error : "");
		if (rc < 0) {
			assert_string_equal(error, cases[i].error);
			continue;
		}
		assert_int_equal(port, cases[i].port);
		if (cases[i].host == NULL) {
			if (host != NULL)
				fail_msg("\"%s\": host \"%s\", want NULL", cases[i].spec, host);
		} else {
			assert_non_null(host);
			if (strcmp(host, cases[i].host) != 0)
				fail_msg("\"%s\": host \"%s\", want \"%s\"", cases[i].spec, host, cases[i].host);
		}
		free(host);
	}
}

static void test_same_listen(void **state)
{
	static char *l_25[] = { (char *)"*:25", NULL };
	static char *l_26[] = { (char *)"*:26", NULL };
	static char *l_25_587[] = { (char *)"*:25", (char *)"*:587", NULL };
	static char *l_587_25[] = { (char *)"*:587", (char *)"*:25", NULL };
	static char *l_qmgr[] = { (char *)"*:25", NULL };
	static char *l_none[] = { NULL };
	static const struct {
		const char *name;
		struct svc_entry a, b;
		bool want;
	} cases[] = {
		{ "same single", { .type = SVC_INET, .listen = l_25, .listen_count = 1 },
		  { .type = SVC_INET, .listen = l_25, .listen_count = 1 }, true },
		{ "different port", { .type = SVC_INET, .listen = l_25, .listen_count = 1 },
		  { .type = SVC_INET, .listen = l_26, .listen_count = 1 }, false },
		{ "same list", { .type = SVC_INET, .listen = l_25_587, .listen_count = 2 },
		  { .type = SVC_INET, .listen = l_25_587, .listen_count = 2 }, true },
		{ "other order", { .type = SVC_INET, .listen = l_25_587, .listen_count = 2 },
		  { .type = SVC_INET, .listen = l_587_25, .listen_count = 2 }, false },
		{ "one more", { .type = SVC_INET, .listen = l_25, .listen_count = 1 },
		  { .type = SVC_INET, .listen = l_25_587, .listen_count = 2 }, false },
		{ "one fewer", { .type = SVC_INET, .listen = l_25_587, .listen_count = 2 },
		  { .type = SVC_INET, .listen = l_25, .listen_count = 1 }, false },
		{ "other type", { .type = SVC_INET, .listen = l_25, .listen_count = 1 },
		  { .type = SVC_UNIX, .listen = l_qmgr, .listen_count = 1 }, false },
		{ "both none", { .type = SVC_UNIX, .listen = l_none, .listen_count = 0 },
		  { .type = SVC_UNIX, .listen = l_none, .listen_count = 0 }, true },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++)
		if (svc_entry_same_listen(&cases[i].a, &cases[i].b) != cases[i].want)
			fail_msg("%s: want %d", cases[i].name, cases[i].want);
}

static void test_same_listen_loaded(void **state)
{
	/* Entries from two loads of edited files, as on a reload. */
	static const char old_text[] =
		"smtpd inet *:25,[::1]:25 yubin - 1 smtpd\n"
		"qmgr unix qmgr yubin - 1 qmgr\n"
		"submission inet *:587 yubin - 1 smtpd\n";
	static const char new_text[] =
		"qmgr unix qmgr yubin - 4 qmgr -v\n"
		"smtpd inet *:25,[::1]:25 yubin /var/spool/yubin 8 smtpd\n"
		"submission inet *:${port} yubin - 1 smtpd\n";
	struct svc_table a, b;
	char *pa, *pb, *error = NULL;

	(void)state;
	assert_int_equal(load(BIN(old_text), &a, &pa, &error), 0);
	assert_int_equal(load(BIN(new_text), &b, &pb, &error), 0);
	assert_true(svc_entry_same_listen(svctab_find(&a, "smtpd"), svctab_find(&b, "smtpd")));
	assert_true(svc_entry_same_listen(svctab_find(&a, "qmgr"), svctab_find(&b, "qmgr")));
	assert_false(svc_entry_same_listen(svctab_find(&a, "submission"), svctab_find(&b, "submission")));
	assert_false(svc_entry_same_listen(svctab_find(&a, "smtpd"), svctab_find(&b, "qmgr")));
	svctab_free(&a);
	svctab_free(&b);
	unit_remove_temp(pa);
	unit_remove_temp(pb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_valid),
		cmocka_unit_test(test_load_empty),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_columns_limit),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_missing_file_and_no_lookup),
		cmocka_unit_test(test_parse_inet),
		cmocka_unit_test(test_same_listen),
		cmocka_unit_test(test_same_listen_loaded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
