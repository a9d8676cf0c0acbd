#include "config.h"
/* test_params.c - unit tests for libmail/params.c: the yubin.conf key table and params_load. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../libmail/params.h"
#include "../../libutil/mem.h"
#include "unit.h"

static bool is_string_type(enum conf_type type)
{
	return type == CONF_STRING || type == CONF_PATH || type == CONF_ENUM;
}

static void test_table_keys(void **state)
{
	const struct conf_table *t = &params_table;

	(void)state;
	assert_true(t->count > 0);
	for (size_t i = 0; i < t->count; i++) {
		const struct conf_key *k = &t->keys[i];

		assert_non_null(k->name);
		if (k->name[0] == '\0')
			fail_msg("key %zu has an empty name", i);
		/* names are what users type: lower case, digits and _ */
		for (const char *p = k->name; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
				fail_msg("key \"%s\": bad character '%c' in name", k->name, *p);
		for (size_t j = 0; j < i; j++)
			if (strcmp(t->keys[j].name, k->name) == 0)
				fail_msg("key \"%s\" appears twice (rows %zu and %zu)", k->name, j, i);
		assert_ptr_equal(conf_find(t, k->name), k);
		/* one doc line */
		if (k->doc == NULL || k->doc[0] == '\0')
			fail_msg("key \"%s\" has no doc line", k->name);
		if (strchr(k->doc, '\n') != NULL)
			fail_msg("key \"%s\": doc holds a newline", k->name);
		if (strlen(k->doc) >= 120)
			fail_msg("key \"%s\": doc is %zu characters (at most 119)", k->name, strlen(k->doc));
		/* a default written as in the file */
		if (k->def == NULL)
			fail_msg("key \"%s\" has no default", k->name);
		if (k->type == CONF_ENUM && (k->choices == NULL || k->choices[0] == '\0'))
			fail_msg("key \"%s\": enum without choices", k->name);
		if ((k->type == CONF_INT || k->type == CONF_DURATION || k->type == CONF_SIZE) && k->min > k->max)
			fail_msg("key \"%s\": min %lld > max %lld", k->name, k->min, k->max);
		/* the offset lies inside struct yb_params */
		assert_true(k->offset + (is_string_type(k->type) ? sizeof(char *)
					 : k->type == CONF_BOOL ? sizeof(bool) : sizeof(long long))
			    <= sizeof(struct yb_params));
		assert_string_not_equal(conf_type_name(k->type), "");
	}
}

static void test_table_offsets_distinct(void **state)
{
	const struct conf_table *t = &params_table;

	(void)state;
	for (size_t i = 0; i < t->count; i++)
		for (size_t j = 0; j < i; j++)
			if (t->keys[i].offset == t->keys[j].offset)
				fail_msg("keys \"%s\" and \"%s\" share a field", t->keys[j].name, t->keys[i].name);
}

static void test_defaults(void **state)
{
	const struct conf_table *t = &params_table;
	struct yb_params p;

	(void)state;
	memset(&p, 0x5a, sizeof p);
	/* a bad default would log_panic: report it as a test failure */
	UNIT_NO_DEATH(conf_defaults(t, &p));
	for (size_t i = 0; i < t->count; i++) {
		const struct conf_key *k = &t->keys[i];
		char *text = conf_format(k, &p);
		struct yb_params again;
		const char *error = NULL;

		assert_true(conf_is_default(k, &p));
		if (is_string_type(k->type))
			assert_non_null(*(char **)((char *)&p + k->offset));
		if (k->type == CONF_PATH)
			assert_int_equal(k->def[0], '/');
		/* the formatted default parses back to the default */
		conf_defaults(t, &again);
		if (conf_set(t, &again, k->name, text, &error) != 0)
			fail_msg("key \"%s\": formatted default \"%s\" does not parse: %s", k->name, text, error);
		assert_true(conf_is_default(k, &again));
		conf_free(t, &again);
		free(text);
	}
	/* spot checks of documented defaults */
	assert_string_equal(p.mail_owner, "yubin");
	assert_string_equal(p.syslog_facility, "mail");
	assert_false(p.debug_logging);
	assert_int_equal(p.service_crash_limit, 5);
	assert_int_equal(p.service_crash_window, 10);
	conf_free(t, &p);
}

static void test_load_empty_fills_hostname(void **state)
{
	char *dir = unit_make_temp_dir();
	char *file = unit_write_file(dir, "yubin.conf", "");
	char host[256] = "";
	struct yb_params p;
	char *error = NULL;

	(void)state;
	assert_int_equal(gethostname(host, sizeof host - 1), 0);
	if (host[0] == '\0')
		snprintf(host, sizeof host, "localhost");
	if (params_load(&p, dir, &error) != 0)
		fail_msg("params_load: %s", error);
	assert_null(error);
	assert_string_equal(p.myhostname, host);
	/* everything else is at its default */
	for (size_t i = 0; i < params_table.count; i++)
		if (strcmp(params_table.keys[i].name, "myhostname") != 0)
			assert_true(conf_is_default(&params_table.keys[i], &p));
	conf_free(&params_table, &p);
	unit_remove_temp(file);
	unit_remove_temp_dir(dir);
}

static void test_load_values(void **state)
{
	char *dir = unit_make_temp_dir();
	char *file = unit_write_file(dir, "yubin.conf",
				     "myhostname = mx.example.org\n"
				     "queue_directory = /srv/queue\n"
				     "syslog_facility = local3\n"
				     "debug_logging = yes\n"
				     "service_crash_window = 2m\n"
				     "service_crash_limit = 1000\n");
	struct yb_params p;
	char *error = NULL;

	(void)state;
	if (params_load(&p, dir, &error) != 0)
		fail_msg("params_load: %s", error);
	assert_string_equal(p.myhostname, "mx.example.org");
	assert_string_equal(p.queue_directory, "/srv/queue");
	assert_string_equal(p.syslog_facility, "local3");
	assert_true(p.debug_logging);
	assert_int_equal(p.service_crash_window, 120);
	assert_int_equal(p.service_crash_limit, 1000);
	conf_free(&params_table, &p);
	unit_remove_temp(file);
	unit_remove_temp_dir(dir);
}

static void test_load_errors(void **state)
{
	static const struct {
		const char *text;
		const char *want; /* after "DIR/yubin.conf" */
	} cases[] = {
		{ "syslog_facility = kern\n",
		  ":1: syslog_facility = kern: not one of the allowed values (one of: "
		  "mail|daemon|user|local0|local1|local2|local3|local4|local5|local6|local7)" },
		{ "# c\nservice_crash_limit = 1001\n",
		  ":2: service_crash_limit = 1001: out of range (1 to 1000)" },
		{ "debug_logging = no\ndebug_logging = yes\n", ":2: debug_logging is already set at line 1" },
		{ "stop_timeout = 0\n", ":1: stop_timeout = 0: out of range (1s to 3600s)" },
		{ "queue_directory = spool\n", ":1: queue_directory = spool: must be an absolute path" },
		{ "no_such_key = 1\n", ":1: unknown key \"no_such_key\"" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *dir = unit_make_temp_dir();
		char *file = unit_write_file(dir, "yubin.conf", cases[i].text);
		char *want = xasprintf("%s%s", file, cases[i].want);
		struct yb_params p;
		char *error = NULL;

		assert_int_equal(params_load(&p, dir, &error), -1);
		assert_non_null(error);
		if (strcmp(error, want) != 0)
			fail_msg("\n got \"%s\"\nwant \"%s\"", error, want);
		free(error);
		free(want);
		conf_free(&params_table, &p);
		unit_remove_temp(file);
		unit_remove_temp_dir(dir);
	}
}

static void test_load_missing(void **state)
{
	char *dir = unit_make_temp_dir();
	char *want = xasprintf("%s/yubin.conf: cannot open: No such file or directory", dir);
	struct yb_params p;
	char *error = NULL;

	(void)state;
	assert_int_equal(params_load(&p, dir, &error), -1);
	assert_non_null(error);
	assert_string_equal(error, want);
	free(error);
	free(want);
	conf_free(&params_table, &p);
	unit_remove_temp_dir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_keys),
		cmocka_unit_test(test_table_offsets_distinct),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_load_empty_fills_hostname),
		cmocka_unit_test(test_load_values),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_load_missing),
	};

	log_init("test_params", LOG_SINK_STDERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
