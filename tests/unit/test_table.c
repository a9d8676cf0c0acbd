#include "config.h"
/* test_table.c - unit tests for libmail/table.c and the Berkeley DB hash
 * backend (xbdb_table.c): real files in a temporary directory. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../libmail/table.h"
#include "../../libutil/mem.h"
#include "unit.h"

/* Berkeley DB copies struct padding from its stack into the overflow
 * pages of large items and writes it to disk; valgrind reports that as
 * uninitialised bytes in pwrite. It is libdb's, not ours, so the test of
 * large values does not run under valgrind. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct fixture {
	char *dir;
	char *path; /* dir/t.db */
	char *tmp;  /* dir/t.db.tmp: where the writer builds */
};

static int setup(void **state)
{
	struct fixture *f = xnew(struct fixture);

	f->dir = unit_make_temp_dir();
	f->path = xasprintf("%s/t.db", f->dir);
	f->tmp = xasprintf("%s/t.db.tmp", f->dir);
	/* Removed at exit even if a test fails half-way. */
	unit_temp_track(f->path, true);
	unit_temp_track(f->tmp, true);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	unit_temp_track(f->path, false);
	unit_temp_track(f->tmp, false);
	unlink(f->path);
	unlink(f->tmp);
	unit_remove_temp_dir(f->dir);
	free(f->path);
	free(f->tmp);
	free(f);
	return 0;
}

struct record {
	const char *key;
	const char *value;
	size_t len;
};

#define REC(k, v) { k, v, sizeof(v) - 1 }

/* write_table - build path with these records; the writer must succeed. */
static void write_table(const char *path, const struct record *r, size_t n)
{
	char *error = NULL;
	struct table_writer *w = table_writer_begin(path, 0640, (uid_t)-1, (gid_t)-1, &error);

	if (w == NULL)
		fail_msg("table_writer_begin: %s", error);
	for (size_t i = 0; i < n; i++)
		if (table_writer_put(w, r[i].key, r[i].value, r[i].len, &error) < 0)
			fail_msg("put %s: %s", r[i].key, error);
	if (table_writer_commit(&w, &error) < 0)
		fail_msg("commit: %s", error);
	assert_null(w);
}

static struct table *open_ok(const char *path, int flags)
{
	char *error = NULL;
	struct table *t = table_open(path, flags, &error);

	if (t == NULL)
		fail_msg("table_open %s: %s", path, error);
	return t;
}

static void assert_get(struct table *t, const char *key, int want, const char *value, size_t len)
{
	struct buf b = BUF_INIT;
	char *error = NULL;
	int rc = table_get(t, key, &b, &error);

	if (rc != want)
		fail_msg("get %s: %d, wanted %d (%s)", key, rc, want, error != NULL ? error : "");
	if (want == 1) {
		assert_int_equal(b.len, len);
		assert_memory_equal(b.data, value, len);
	}
	free(error);
	buf_free(&b);
}

static const struct record sample[] = {
	REC("example.com", "one"),
	REC("bob@example.com", "two"),
	REC("with-nul", "a\0b\0c"),
	REC("empty", ""),
	REC("@catch.all", "\x01\x02\xff"),
};

static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	struct table *t;

	write_table(f->path, sample, NELEM(sample));
	t = open_ok(f->path, 0);
	for (size_t i = 0; i < NELEM(sample); i++)
		assert_get(t, sample[i].key, 1, sample[i].value, sample[i].len);
	/* Not there, and not matched by prefix or case. */
	static const char *const absent[] = { "nobody", "example.co", "EXAMPLE.COM", "", "bob@example.com " };
	for (size_t i = 0; i < NELEM(absent); i++)
		assert_get(t, absent[i], 0, NULL, 0);
	assert_string_equal(table_path(t), f->path);
	assert_false(table_changed(t));
	table_close(&t);
	assert_null(t);
	table_close(&t); /* NULL is fine */
}

struct seen {
	int count;
	int stop_at;
	bool found[NELEM(sample)];
};

static int on_record(const char *key, const void *value, size_t len, void *ctx)
{
	struct seen *s = ctx;

	for (size_t i = 0; i < NELEM(sample); i++) {
		if (strcmp(sample[i].key, key) == 0) {
			assert_false(s->found[i]);
			assert_int_equal(len, sample[i].len);
			assert_memory_equal(value, sample[i].value, len);
			s->found[i] = true;
		}
	}
	return ++s->count == s->stop_at ? 42 : 0;
}

static void test_foreach(void **state)
{
	struct fixture *f = *state;
	struct seen s = { 0 };
	char *error = NULL;
	struct table *t;

	write_table(f->path, sample, NELEM(sample));
	t = open_ok(f->path, 0);
	assert_int_equal(table_foreach(t, on_record, &s, &error), 0);
	assert_int_equal(s.count, (int)NELEM(sample));
	for (size_t i = 0; i < NELEM(sample); i++)
		assert_true(s.found[i]);
	/* A non-zero callback result stops the walk and is returned. */
	memset(&s, 0, sizeof s);
	s.stop_at = 2;
	assert_int_equal(table_foreach(t, on_record, &s, &error), 42);
	assert_int_equal(s.count, 2);
	table_close(&t);
}

static void test_put_replaces(void **state)
{
	struct fixture *f = *state;
	static const struct record twice[] = { REC("k", "first"), REC("k", "second") };
	struct seen s = { 0 };
	char *error = NULL;
	struct table *t;

	write_table(f->path, twice, NELEM(twice));
	t = open_ok(f->path, 0);
	assert_get(t, "k", 1, "second", 6);
	assert_int_equal(table_foreach(t, on_record, &s, &error), 0);
	assert_int_equal(s.count, 1);
	table_close(&t);
}

static void test_missing(void **state)
{
	struct fixture *f = *state;
	struct seen s = { 0 };
	char *error = NULL;
	struct table *t;

	/* Without TABLE_MISSING_OK a missing file is an error (ENOENT). */
	errno = 0;
	t = table_open(f->path, 0, &error);
	assert_null(t);
	assert_int_equal(errno, ENOENT);
	assert_non_null(error);
	free(error);
	error = NULL;
	/* With it: an empty table that notices when the file appears. */
	t = open_ok(f->path, TABLE_MISSING_OK);
	assert_get(t, "example.com", 0, NULL, 0);
	assert_int_equal(table_foreach(t, on_record, &s, &error), 0);
	assert_int_equal(s.count, 0);
	assert_false(table_changed(t));
	write_table(f->path, sample, 1);
	assert_true(table_changed(t));
	table_close(&t);
	t = open_ok(f->path, TABLE_MISSING_OK);
	assert_get(t, "example.com", 1, "one", 3);
	assert_false(table_changed(t));
	/* Removed: a change too. */
	assert_int_equal(unlink(f->path), 0);
	assert_true(table_changed(t));
	table_close(&t);
}

static void test_replace_is_seen_and_old_handle_keeps_snapshot(void **state)
{
	struct fixture *f = *state;
	static const struct record v1[] = { REC("k", "old"), REC("gone", "x") };
	static const struct record v2[] = { REC("k", "new"), REC("added", "y") };
	struct table *old, *fresh;

	write_table(f->path, v1, NELEM(v1));
	old = open_ok(f->path, 0);
	assert_false(table_changed(old));
	write_table(f->path, v2, NELEM(v2));
	assert_true(table_changed(old));
	/* The old handle reads the old (renamed-over) file consistently. */
	assert_get(old, "k", 1, "old", 3);
	assert_get(old, "gone", 1, "x", 1);
	assert_get(old, "added", 0, NULL, 0);
	fresh = open_ok(f->path, 0);
	assert_false(table_changed(fresh));
	assert_get(fresh, "k", 1, "new", 3);
	assert_get(fresh, "gone", 0, NULL, 0);
	assert_get(fresh, "added", 1, "y", 1);
	table_close(&old);
	table_close(&fresh);
}

static void test_writer_mode_and_no_leftovers(void **state)
{
	struct fixture *f = *state;
	struct stat st;

	write_table(f->path, sample, NELEM(sample));
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(access(f->tmp, F_OK), -1);
	/* Another mode on the next write. */
	{
		char *error = NULL;
		struct table_writer *w = table_writer_begin(f->path, 0600, (uid_t)-1, (gid_t)-1, &error);

		assert_non_null(w);
		assert_int_equal(table_writer_commit(&w, &error), 0);
	}
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_writer_abort_keeps_old_table(void **state)
{
	struct fixture *f = *state;
	char *error = NULL;
	struct table_writer *w;
	struct table *t;

	write_table(f->path, sample, 2);
	w = table_writer_begin(f->path, 0640, (uid_t)-1, (gid_t)-1, &error);
	assert_non_null(w);
	assert_int_equal(access(f->tmp, F_OK), 0);
	assert_int_equal(table_writer_put(w, "example.com", "changed", 7, &error), 0);
	table_writer_abort(&w);
	assert_null(w);
	table_writer_abort(&w); /* NULL is fine */
	assert_int_equal(access(f->tmp, F_OK), -1);
	t = open_ok(f->path, 0);
	assert_get(t, "example.com", 1, "one", 3);
	table_close(&t);
}

static void test_writer_replaces_leftover_tmp(void **state)
{
	struct fixture *f = *state;
	FILE *fp = fopen(f->tmp, "w");
	struct table *t;

	/* A crashed writer's half-built file. */
	assert_non_null(fp);
	fputs("garbage", fp);
	fclose(fp);
	write_table(f->path, sample, 1);
	t = open_ok(f->path, 0);
	assert_get(t, "example.com", 1, "one", 3);
	table_close(&t);
}

static void test_writer_fails_cleanly(void **state)
{
	struct fixture *f = *state;
	char *error = NULL;
	char *path = xasprintf("%s/no-such-dir/t.db", f->dir);

	assert_null(table_writer_begin(path, 0640, (uid_t)-1, (gid_t)-1, &error));
	assert_non_null(error);
	free(error);
	free(path);
}

/* Files that are not tables: open fails with a message, nothing crashes. */
static const struct {
	const char *name;
	const char *content;
	size_t len;
} not_tables[] = {
	{ "empty file", "", 0 },
	{ "text", "example.com OK\n", 15 },
	{ "zeros", "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 32 },
};

static void test_corrupt_files(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < NELEM(not_tables); i++) {
		FILE *fp = fopen(f->path, "w");
		char *error = NULL;
		struct table *t;

		assert_non_null(fp);
		assert_int_equal(fwrite(not_tables[i].content, 1, not_tables[i].len, fp), not_tables[i].len);
		fclose(fp);
		t = table_open(f->path, TABLE_MISSING_OK, &error);
		if (t != NULL)
			fail_msg("%s: opened as a table", not_tables[i].name);
		assert_non_null(error);
		assert_int_not_equal(errno, ENOENT);
		free(error);
	}
}

static void test_truncated_table(void **state)
{
	struct fixture *f = *state;
	char *error = NULL;
	struct stat st;
	struct table *t;

	write_table(f->path, sample, NELEM(sample));
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(truncate(f->path, st.st_size / 2), 0);
	/* Either the open or the lookups fail; none of it crashes. */
	t = table_open(f->path, 0, &error);
	if (t == NULL) {
		assert_non_null(error);
		free(error);
		return;
	}
	for (size_t i = 0; i < NELEM(sample); i++) {
		struct buf b = BUF_INIT;
		int rc = table_get(t, sample[i].key, &b, &error);

		assert_true(rc >= -1 && rc <= 1);
		if (rc < 0)
			xfree_ptr(&error);
		buf_free(&b);
	}
	table_close(&t);
}

static void test_key_too_long(void **state)
{
	struct fixture *f = *state;
	char *key = xmalloc(TABLE_KEY_MAX + 2);
	char *error = NULL;
	struct buf b = BUF_INIT;
	struct table_writer *w;
	struct table *t;

	memset(key, 'a', TABLE_KEY_MAX + 1);
	key[TABLE_KEY_MAX + 1] = '\0';
	w = table_writer_begin(f->path, 0640, (uid_t)-1, (gid_t)-1, &error);
	assert_non_null(w);
	assert_int_equal(table_writer_put(w, key, "v", 1, &error), -1);
	free(error);
	error = NULL;
	key[TABLE_KEY_MAX] = '\0'; /* exactly the limit: fine */
	assert_int_equal(table_writer_put(w, key, "v", 1, &error), 0);
	assert_int_equal(table_writer_commit(&w, &error), 0);
	t = open_ok(f->path, 0);
	assert_get(t, key, 1, "v", 1);
	key[TABLE_KEY_MAX] = 'a';
	assert_int_equal(table_get(t, key, &b, &error), -1);
	free(error);
	table_close(&t);
	buf_free(&b);
	free(key);
}

static void test_many_records(void **state)
{
	struct fixture *f = *state;
	char *error = NULL;
	struct table_writer *w = table_writer_begin(f->path, 0640, (uid_t)-1, (gid_t)-1, &error);
	struct seen s = { 0 };
	struct table *t;
	char key[32], value[32];

	assert_non_null(w);
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof key, "user%d@example.com", i);
		snprintf(value, sizeof value, "v%d", i * 7);
		assert_int_equal(table_writer_put(w, key, value, strlen(value), &error), 0);
	}
	assert_int_equal(table_writer_commit(&w, &error), 0);
	t = open_ok(f->path, 0);
	for (int i = 0; i < 5000; i += 97) {
		snprintf(key, sizeof key, "user%d@example.com", i);
		snprintf(value, sizeof value, "v%d", i * 7);
		assert_get(t, key, 1, value, strlen(value));
	}
	assert_int_equal(table_foreach(t, on_record, &s, &error), 0);
	assert_int_equal(s.count, 5000);
	table_close(&t);
}

static void test_large_values(void **state)
{
	struct fixture *f = *state;
	static const size_t sizes[] = { 1000, 3000, 100000, 300000 };
	char *error = NULL;
	struct table_writer *w;
	struct table *t;
	char key[32];

	if (RUNNING_ON_VALGRIND)
		skip();
	w = table_writer_begin(f->path, 0640, (uid_t)-1, (gid_t)-1, &error);
	assert_non_null(w);
	for (size_t i = 0; i < NELEM(sizes); i++) {
		char *value = xmalloc(sizes[i]);

		for (size_t j = 0; j < sizes[i]; j++)
			value[j] = (char)('a' + (i + j) % 26);
		snprintf(key, sizeof key, "big%zu", i);
		assert_int_equal(table_writer_put(w, key, value, sizes[i], &error), 0);
		free(value);
	}
	assert_int_equal(table_writer_commit(&w, &error), 0);
	t = open_ok(f->path, 0);
	for (size_t i = 0; i < NELEM(sizes); i++) {
		char *value = xmalloc(sizes[i]);

		for (size_t j = 0; j < sizes[i]; j++)
			value[j] = (char)('a' + (i + j) % 26);
		snprintf(key, sizeof key, "big%zu", i);
		assert_get(t, key, 1, value, sizes[i]);
		free(value);
	}
	table_close(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_replaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace_is_seen_and_old_handle_keeps_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_mode_and_no_leftovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_abort_keeps_old_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_replaces_leftover_tmp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_fails_cleanly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_too_long, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_values, setup, teardown),
	};

	log_init("test_table", LOG_SINK_STDERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
