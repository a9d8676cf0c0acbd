#include "config.h"
/* test_conf.c - unit tests for libutil/conf.c, the table-driven "key = value" parser. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libutil/conf.h"
#include "../../libutil/mem.h"
#include "unit.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
/* BIN - a string literal and its length, NULs included. */
#define BIN(s) s, sizeof(s) - 1

/* A settings struct with one key of every type. */
struct test_conf {
	char *name;        /* CONF_STRING */
	char *spool;       /* CONF_PATH */
	char *mode;        /* CONF_ENUM */
	long long count;   /* CONF_INT */
	bool verbose;      /* CONF_BOOL */
	long long timeout; /* CONF_DURATION */
	long long limit;   /* CONF_SIZE */
};

#define T(field) offsetof(struct test_conf, field)
#define GIB (1024LL * 1024 * 1024)

static const struct conf_key test_keys[] = {
	{ "name", CONF_STRING, "anon", 0, 0, NULL, T(name), "a name" },
	{ "spool", CONF_PATH, "/var/spool/test", 0, 0, NULL, T(spool), "a directory" },
	{ "mode", CONF_ENUM, "fast", 0, 0, "fast|safe|off", T(mode), "how to run" },
	{ "count", CONF_INT, "10", -10, 100, NULL, T(count), "how many" },
	{ "verbose", CONF_BOOL, "no", 0, 0, NULL, T(verbose), "say more" },
	{ "timeout", CONF_DURATION, "30s", 1, 4 * 604800, NULL, T(timeout), "how long" },
	{ "limit", CONF_SIZE, "1M", 1024, 4 * GIB, NULL, T(limit), "how big" },
};

static const struct conf_table test_table = { test_keys, NELEM(test_keys) };

static void assert_defaults(const struct test_conf *c)
{
	assert_string_equal(c->name, "anon");
	assert_string_equal(c->spool, "/var/spool/test");
	assert_string_equal(c->mode, "fast");
	assert_int_equal(c->count, 10);
	assert_false(c->verbose);
	assert_int_equal(c->timeout, 30);
	assert_int_equal(c->limit, 1024 * 1024);
}

static void test_defaults(void **state)
{
	struct test_conf c;

	(void)state;
	memset(&c, 0xa5, sizeof c); /* conf_defaults must not free what is there */
	conf_defaults(&test_table, &c);
	assert_defaults(&c);
	for (size_t i = 0; i < NELEM(test_keys); i++)
		assert_true(conf_is_default(&test_keys[i], &c));
	conf_free(&test_table, &c);
	assert_null(c.name);
	assert_null(c.spool);
	assert_null(c.mode);
	conf_free(&test_table, &c); /* a second free is harmless */
}

static void test_bad_default_panics(void **state)
{
	static const struct conf_key bad[] = {
		{ "ok", CONF_STRING, "x", 0, 0, NULL, T(name), "fine" },
		{ "count", CONF_INT, "1000", 1, 10, NULL, T(count), "default out of its own range" },
	};
	static const struct conf_table bad_table = { bad, NELEM(bad) };
	struct test_conf c = { 0 };

	(void)state;
	UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "config key count: default \"1000\": out of range",
			  conf_defaults(&bad_table, &c));
	conf_free(&bad_table, &c);
}

static void test_load_valid(void **state)
{
	static const char text[] =
		"# a comment\n"
		"\n"
		"   # an indented comment\n"
		"\t\n"
		"name = mail.example.org\n"
		"spool=/srv/spool\n"
		"  mode\t=\tsafe  \n"
		"count = -10\n"
		"verbose = Yes\r\n"
		"timeout = 2h\n"
		"limit = 10M"; /* no newline at the end */
	struct test_conf c;
	char *path = unit_write_temp_str(text);
	char *error = NULL;

	(void)state;
	assert_int_equal(conf_load(&test_table, &c, path, &error), 0);
	assert_null(error);
	assert_string_equal(c.name, "mail.example.org");
	assert_string_equal(c.spool, "/srv/spool");
	assert_string_equal(c.mode, "safe");
	assert_int_equal(c.count, -10);
	assert_true(c.verbose);
	assert_int_equal(c.timeout, 7200);
	assert_int_equal(c.limit, 10 * 1024 * 1024);
	for (size_t i = 0; i < NELEM(test_keys); i++)
		assert_false(conf_is_default(&test_keys[i], &c));
	conf_free(&test_table, &c);
	unit_remove_temp(path);
}

static void test_load_partial_and_empty(void **state)
{
	static const struct {
		const char *name;
		const char *text;
	} cases[] = {
		{ "empty file", "" },
		{ "only comments and blanks", "# nothing\n\n   \n\t# still nothing\n" },
	};
	struct test_conf c;
	char *error = NULL;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		char *path = unit_write_temp_str(cases[i].text);

		if (conf_load(&test_table, &c, path, &error) != 0)
			fail_msg("%s: %s", cases[i].name, error);
		assert_defaults(&c);
		conf_free(&test_table, &c);
		unit_remove_temp(path);
	}

	/* a file setting some keys leaves the others at their defaults */
	char *path = unit_write_temp_str("count = 7\n");

	assert_int_equal(conf_load(&test_table, &c, path, &error), 0);
	assert_int_equal(c.count, 7);
	assert_string_equal(c.name, "anon");
	assert_int_equal(c.timeout, 30);
	assert_false(conf_is_default(&test_keys[3], &c));
	assert_true(conf_is_default(&test_keys[0], &c));
	conf_free(&test_table, &c);
	unit_remove_temp(path);
}

static void test_load_values(void **state)
{
	/* Parsing details of single lines: want is the name or count result. */
	static const struct {
		const char *line;
		const char *want_name;
	} cases[] = {
		{ "name = value with  inner   blanks", "value with  inner   blanks" },
		{ "name = a # not a comment", "a # not a comment" },
		{ "name = a=b=c", "a=b=c" },
		{ "name =", "" },
		{ "name=", "" },
		{ "\t name \t = \t x \t", "x" },
		{ "name = trailing cr\r", "trailing cr" },
		{ "name = #", "#" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct test_conf c;
		char *error = NULL;
		char *path = unit_write_temp_str(cases[i].line);

		if (conf_load(&test_table, &c, path, &error) != 0)
			fail_msg("\"%s\": %s", cases[i].line, error);
		if (strcmp(c.name, cases[i].want_name) != 0)
			fail_msg("\"%s\": name is \"%s\", want \"%s\"", cases[i].line, c.name, cases[i].want_name);
		conf_free(&test_table, &c);
		unit_remove_temp(path);
	}
}

static void test_load_errors(void **state)
{
	/* want is the error after the file name: ":line: message". */
	static const struct {
		const char *name;
		const char *text;
		size_t len; /* 0: strlen(text) */
		const char *want;
	} cases[] = {
		{ "no equals sign", "name = ok\njust words\n", 0, ":2: expected \"key = value\"" },
		{ "unknown key", "# c\n\nbogus = 1\n", 0, ":3: unknown key \"bogus\"" },
		{ "empty key", "= 1\n", 0, ":1: unknown key \"\"" },
		{ "key case matters", "Name = x\n", 0, ":1: unknown key \"Name\"" },
		{ "duplicate key", "count = 1\nname = x\n\ncount = 2\n", 0,
		  ":4: count is already set at line 1" },
		{ "duplicate with same value", "verbose = yes\nverbose = yes\n", 0,
		  ":2: verbose is already set at line 1" },
		{ "path not absolute", "spool = var/spool\n", 0,
		  ":1: spool = var/spool: must be an absolute path" },
		{ "path empty", "spool =\n", 0, ":1: spool = : must be an absolute path" },
		{ "enum not allowed", "mode = slow\n", 0,
		  ":1: mode = slow: not one of the allowed values (one of: fast|safe|off)" },
		{ "enum prefix of a choice", "mode = fas\n", 0,
		  ":1: mode = fas: not one of the allowed values (one of: fast|safe|off)" },
		{ "enum case matters", "mode = FAST\n", 0,
		  ":1: mode = FAST: not one of the allowed values (one of: fast|safe|off)" },
		{ "enum with bar", "mode = fast|safe\n", 0,
		  ":1: mode = fast|safe: not one of the allowed values (one of: fast|safe|off)" },
		{ "int above range", "count = 101\n", 0, ":1: count = 101: out of range (-10 to 100)" },
		{ "int below range", "count = -11\n", 0, ":1: count = -11: out of range (-10 to 100)" },
		{ "int overflow", "count = 99999999999999999999\n", 0,
		  ":1: count = 99999999999999999999: out of range (-10 to 100)" },
		{ "int junk", "count = 5x\n", 0, ":1: count = 5x: not a number (-10 to 100)" },
		{ "int empty", "count =\n", 0, ":1: count = : not a number (-10 to 100)" },
		{ "bad bool", "verbose = maybe\n", 0, ":1: verbose = maybe: not a boolean (use yes or no)" },
		{ "bad duration unit", "timeout = 5x\n", 0,
		  ":1: timeout = 5x: unknown unit (use s, m, h, d or w) (1s to 2419200s)" },
		{ "negative duration", "timeout = -1\n", 0,
		  ":1: timeout = -1: not a number (1s to 2419200s)" },
		{ "duration above range", "timeout = 5w\n", 0,
		  ":1: timeout = 5w: out of range (1s to 2419200s)" },
		{ "duration zero", "timeout = 0s\n", 0, ":1: timeout = 0s: out of range (1s to 2419200s)" },
		{ "duration overflow", "timeout = 99999999999999999w\n", 0,
		  ":1: timeout = 99999999999999999w: out of range (1s to 2419200s)" },
		{ "bad size unit", "limit = 10T\n", 0,
		  ":1: limit = 10T: unknown unit (use k, M or G) (1024 to 4294967296 bytes)" },
		{ "size below range", "limit = 1023\n", 0,
		  ":1: limit = 1023: out of range (1024 to 4294967296 bytes)" },
		{ "size above range", "limit = 5G\n", 0,
		  ":1: limit = 5G: out of range (1024 to 4294967296 bytes)" },
		{ "NUL in a line", BIN("count = 1\nname = a\0b\n"), ":2: NUL character in line" },
		{ "NUL at the start", BIN("\0name = a\n"), ":1: NUL character in line" },
		{ "NUL in a comment", BIN("# a\0b\n"), ":1: NUL character in line" },
		{ "error stops at the first bad line", "bogus = 1\nalso bogus\n", 0, ":1: unknown key \"bogus\"" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct test_conf c;
		char *error = NULL;
		size_t len = cases[i].len != 0 ? cases[i].len : strlen(cases[i].text);
		char *path = unit_write_temp(cases[i].text, len);
		char *want = xasprintf("%s%s", path, cases[i].want);

		if (conf_load(&test_table, &c, path, &error) != -1)
			fail_msg("%s: conf_load succeeded", cases[i].name);
		assert_non_null(error);
		if (strcmp(error, want) != 0)
			fail_msg("%s:\n got \"%s\"\nwant \"%s\"", cases[i].name, error, want);
		free(error);
		free(want);
		conf_free(&test_table, &c);
		unit_remove_temp(path);
	}
}

static void test_load_missing_file(void **state)
{
	struct test_conf c;
	char *error = NULL;
	char *dir = unit_make_temp_dir();
	char *path = xasprintf("%s/no-such.conf", dir);
	char *want = xasprintf("%s: cannot open: No such file or directory", path);

	(void)state;
	assert_int_equal(conf_load(&test_table, &c, path, &error), -1);
	assert_non_null(error);
	assert_string_equal(error, want);
	/* the defaults are there all the same, and must be freed */
	assert_defaults(&c);
	conf_free(&test_table, &c);
	free(error);
	free(want);
	free(path);
	unit_remove_temp_dir(dir);
}

/* make_line - "name = " and x's up to total bytes, then the newline. */
static char *make_line(size_t total, const char *end)
{
	char *s = xmalloc(total + strlen(end) + 1);

	memcpy(s, "name = ", 7);
	memset(s + 7, 'x', total - 7);
	strcpy(s + total, end);
	return s;
}

static void test_long_lines(void **state)
{
	static const struct {
		const char *name;
		size_t chars; /* before the line end */
		const char *end;
		int rc;
	} cases[] = {
		{ "4095 characters and a newline", 4095, "\n", 0 },
		{ "4096 characters and a newline", 4096, "\n", 0 },
		{ "4096 characters and CRLF", 4096, "\r\n", 0 },
		{ "4096 characters, last line without newline", 4096, "", 0 },
		{ "4097 characters, last line without newline", 4097, "", -1 },
		{ "4097 characters and a newline", 4097, "\n", -1 },
		{ "5000 characters and a newline", 5000, "\n", -1 },
		{ "100000 characters", 100000, "", -1 },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct test_conf c;
		char *error = NULL;
		char *line = make_line(cases[i].chars, cases[i].end);
		char *text = xasprintf("# first\n%s", line);
		char *path = unit_write_temp_str(text);
		int rc = conf_load(&test_table, &c, path, &error);

		if (rc != cases[i].rc)
			fail_msg("%s: rc %d, want %d (%s)", cases[i].name, rc, cases[i].rc, error ? error : "");
		if (rc == 0) {
			assert_int_equal(strlen(c.name), cases[i].chars - 7);
		} else {
			char *want = xasprintf("%s:2: line longer than 4096 characters", path);

			assert_string_equal(error, want);
			free(want);
			free(error);
		}
		conf_free(&test_table, &c);
		unit_remove_temp(path);
		free(text);
		free(line);
	}
}

static void test_set(void **state)
{
	static const struct {
		const char *key;
		const char *value;
		const char *error; /* NULL: accepted */
	} cases[] = {
		{ "name", "x y z", NULL },
		{ "name", "", NULL },
		{ "spool", "/abs", NULL },
		{ "spool", "rel", "must be an absolute path" },
		{ "mode", "off", NULL },
		{ "mode", "on", "not one of the allowed values" },
		{ "count", "100", NULL },
		{ "count", "1000", "out of range" },
		{ "count", " 1", "not a number" },
		{ "verbose", "ON", NULL },
		{ "verbose", "y", "not a boolean (use yes or no)" },
		{ "timeout", "1w", NULL },
		{ "timeout", "1y", "unknown unit (use s, m, h, d or w)" },
		{ "limit", "1KiB", NULL },
		{ "limit", "1P", "unknown unit (use k, M or G)" },
		{ "limit", "1", "out of range" },
		{ "nope", "1", "unknown key" },
		{ "", "1", "unknown key" },
	};
	struct test_conf c;

	(void)state;
	conf_defaults(&test_table, &c);
	for (size_t i = 0; i < NELEM(cases); i++) {
		const char *error = NULL;
		char *before = NULL;
		const struct conf_key *k = conf_find(&test_table, cases[i].key);
		int rc;

		if (k != NULL)
			before = conf_format(k, &c);
		rc = conf_set(&test_table, &c, cases[i].key, cases[i].value, &error);
		if (cases[i].error == NULL) {
			if (rc != 0)
				fail_msg("conf_set %s = \"%s\": %s", cases[i].key, cases[i].value, error);
		} else {
			if (rc != -1)
				fail_msg("conf_set %s = \"%s\" succeeded", cases[i].key, cases[i].value);
			assert_string_equal(error, cases[i].error);
			/* a rejected value leaves the old one */
			if (k != NULL) {
				char *after = conf_format(k, &c);

				assert_string_equal(after, before);
				free(after);
			}
		}
		free(before);
	}
	assert_string_equal(c.name, "");
	assert_string_equal(c.spool, "/abs");
	assert_string_equal(c.mode, "off");
	assert_int_equal(c.count, 100);
	assert_true(c.verbose);
	assert_int_equal(c.timeout, 604800);
	assert_int_equal(c.limit, 1024);
	conf_free(&test_table, &c);
}

static void test_format_round_trip(void **state)
{
	static const struct {
		const char *key;
		const char *value;
		const char *want;
	} cases[] = {
		{ "name", "any text  here", "any text  here" },
		{ "name", "", "" },
		{ "spool", "/var/x", "/var/x" },
		{ "mode", "safe", "safe" },
		{ "count", "-10", "-10" },
		{ "count", "0", "0" },
		{ "count", "100", "100" },
		{ "verbose", "on", "yes" },
		{ "verbose", "TRUE", "yes" },
		{ "verbose", "0", "no" },
		{ "timeout", "90s", "90s" },
		{ "timeout", "90", "90s" },
		{ "timeout", "1", "1s" },
		{ "timeout", "60", "1m" },
		{ "timeout", "120s", "2m" },
		{ "timeout", "3600", "1h" },
		{ "timeout", "5400", "90m" },
		{ "timeout", "86400", "1d" },
		{ "timeout", "48h", "2d" },
		{ "timeout", "604800", "1w" },
		{ "timeout", "14d", "2w" },
		{ "timeout", "8d", "8d" },
		{ "limit", "1048576", "1M" },
		{ "limit", "1024", "1k" },
		{ "limit", "1536", "1536" },
		{ "limit", "2048K", "2M" },
		{ "limit", "1GiB", "1G" },
		{ "limit", "1536M", "1536M" },
		{ "limit", "4G", "4G" },
		{ "limit", "3072k", "3M" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct test_conf c, again;
		const struct conf_key *k = conf_find(&test_table, cases[i].key);
		const char *error = NULL;
		char *text, *text2;

		assert_non_null(k);
		conf_defaults(&test_table, &c);
		conf_defaults(&test_table, &again);
		if (conf_set(&test_table, &c, cases[i].key, cases[i].value, &error) != 0)
			fail_msg("%s = %s: %s", cases[i].key, cases[i].value, error);
		text = conf_format(k, &c);
		if (strcmp(text, cases[i].want) != 0)
			fail_msg("%s = %s formats as \"%s\", want \"%s\"", cases[i].key, cases[i].value, text,
				 cases[i].want);
		/* parsing the formatted text gives the same value */
		if (conf_set(&test_table, &again, cases[i].key, text, &error) != 0)
			fail_msg("%s = %s: formatted \"%s\" does not parse: %s", cases[i].key, cases[i].value,
				 text, error);
		text2 = conf_format(k, &again);
		assert_string_equal(text2, text);
		if (k->type == CONF_BOOL)
			assert_int_equal(again.verbose, c.verbose);
		else if (k->type == CONF_INT || k->type == CONF_DURATION || k->type == CONF_SIZE)
			assert_int_equal(*(long long *)((char *)&again + k->offset),
					 *(long long *)((char *)&c + k->offset));
		free(text);
		free(text2);
		conf_free(&test_table, &c);
		conf_free(&test_table, &again);
	}
}

static void test_format_zero(void **state)
{
	/* Zero has no largest unit: a duration shows as "0s", a size as "0". */
	struct zero {
		long long d, s;
	};
	static const struct conf_key keys[] = {
		{ "d", CONF_DURATION, "0", 0, 100, NULL, offsetof(struct zero, d), "a duration" },
		{ "s", CONF_SIZE, "0", 0, 100, NULL, offsetof(struct zero, s), "a size" },
	};
	static const struct conf_table table = { keys, NELEM(keys) };
	struct zero z;
	char *text;

	(void)state;
	conf_defaults(&table, &z);
	assert_int_equal(z.d, 0);
	assert_int_equal(z.s, 0);
	text = conf_format(&keys[0], &z);
	assert_string_equal(text, "0s");
	free(text);
	text = conf_format(&keys[1], &z);
	assert_string_equal(text, "0");
	free(text);
	assert_true(conf_is_default(&keys[0], &z));
	z.d = 100;
	text = conf_format(&keys[0], &z);
	assert_string_equal(text, "100s");
	free(text);
	assert_false(conf_is_default(&keys[0], &z));
	conf_free(&table, &z);
}

static void test_format_defaults(void **state)
{
	static const char *const want[] = { "anon", "/var/spool/test", "fast", "10", "no", "30s", "1M" };
	struct test_conf c;

	(void)state;
	conf_defaults(&test_table, &c);
	for (size_t i = 0; i < NELEM(test_keys); i++) {
		char *text = conf_format(&test_keys[i], &c);

		if (strcmp(text, want[i]) != 0)
			fail_msg("%s: \"%s\", want \"%s\"", test_keys[i].name, text, want[i]);
		free(text);
	}
	conf_free(&test_table, &c);
}

static void test_is_default(void **state)
{
	/* Each value is set on fresh defaults; is_default compares values, not text. */
	static const struct {
		const char *key;
		const char *value;
		bool want;
	} cases[] = {
		{ "name", "anon", true },
		{ "name", "anon ", false }, /* conf_set keeps the blank (files trim it) */
		{ "name", "Anon", false },
		{ "name", "", false },
		{ "spool", "/var/spool/test", true },
		{ "spool", "/var/spool/test/", false },
		{ "mode", "fast", true },
		{ "mode", "off", false },
		{ "count", "10", true },
		{ "count", "11", false },
		{ "verbose", "off", true },
		{ "verbose", "no", true },
		{ "verbose", "yes", false },
		{ "timeout", "30", true },
		{ "timeout", "30s", true },
		{ "timeout", "31s", false },
		{ "timeout", "1m", false },
		{ "limit", "1024k", true },
		{ "limit", "1048576", true },
		{ "limit", "1MiB", true },
		{ "limit", "2M", false },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct test_conf c;
		const char *error = NULL;
		const struct conf_key *k = conf_find(&test_table, cases[i].key);

		conf_defaults(&test_table, &c);
		assert_true(conf_is_default(k, &c));
		if (conf_set(&test_table, &c, cases[i].key, cases[i].value, &error) != 0)
			fail_msg("%s = %s: %s", cases[i].key, cases[i].value, error);
		if (conf_is_default(k, &c) != cases[i].want)
			fail_msg("%s = \"%s\": conf_is_default is %d, want %d", cases[i].key, cases[i].value,
				 !cases[i].want, cases[i].want);
		conf_free(&test_table, &c);
	}
}

static void test_find_and_type_names(void **state)
{
	static const struct {
		enum conf_type type;
		const char *name;
	} types[] = {
		{ CONF_STRING, "string" }, { CONF_PATH, "path" }, { CONF_ENUM, "choice" },
		{ CONF_INT, "integer" }, { CONF_BOOL, "boolean" }, { CONF_DURATION, "duration" },
		{ CONF_SIZE, "size" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(test_keys); i++)
		assert_ptr_equal(conf_find(&test_table, test_keys[i].name), &test_keys[i]);
	assert_null(conf_find(&test_table, "nam"));
	assert_null(conf_find(&test_table, "names"));
	assert_null(conf_find(&test_table, ""));
	for (size_t i = 0; i < NELEM(types); i++)
		assert_string_equal(conf_type_name(types[i].type), types[i].name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_bad_default_panics),
		cmocka_unit_test(test_load_valid),
		cmocka_unit_test(test_load_partial_and_empty),
		cmocka_unit_test(test_load_values),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_load_missing_file),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_format_round_trip),
		cmocka_unit_test(test_format_zero),
		cmocka_unit_test(test_format_defaults),
		cmocka_unit_test(test_is_default),
		cmocka_unit_test(test_find_and_type_names),
	};

	log_init("test_conf", LOG_SINK_STDERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
