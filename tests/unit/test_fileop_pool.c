/* test_fileop_pool.c - fsync and unlink on worker threads, completions on
 * the event loop: results and errno arrive, callbacks may submit more,
 * recycling empties and renames (or removes) a file, and
 * freeing the pool with calls outstanding finishes them without leaks. */
#include "config.h"
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit.h"
#include "../../libutil/fileop_pool.h"
#include "../../libutil/mem.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILES 40

struct tally {
	struct event_base *base;
	struct fileop_pool *pool;
	int done, failed, last_err;
	int expected;
	pthread_t loop_thread;
	bool wrong_thread;
	char *chain_path; /* unlinked from inside a callback */
};

static void count(int err, void *arg)
{
	struct tally *t = arg;

	t->wrong_thread |= !pthread_equal(pthread_self(), t->loop_thread);
	t->done++;
	if (err != 0) {
		t->failed++;
		t->last_err = err;
	}
	if (t->done == t->expected)
		event_base_loopbreak(t->base);
}

static void chain(int err, void *arg)
{
	struct tally *t = arg;

	assert_int_equal(err, 0);
	t->expected++;
	fileop_unlink(t->pool, t->chain_path, count, t);
	count(err, arg);
}

static void run_until_done(struct tally *t)
{
	struct timeval limit = { 10, 0 };

	event_base_loopexit(t->base, &limit);
	event_base_dispatch(t->base);
	assert_int_equal(t->done, t->expected);
}

static void test_fsync_then_unlink(void **state)
{
	struct tally t = { .base = event_base_new(), .loop_thread = pthread_self() };
	char *paths[FILES];
	int fds[FILES];
	struct stat st;

	(void)state;
	t.pool = fileop_pool_new(t.base, 3);
	for (int i = 0; i < FILES; i++) {
		paths[i] = unit_write_temp_str("some content\n");
		fds[i] = open(paths[i], O_WRONLY | O_APPEND | O_CLOEXEC);
		assert_true(fds[i] >= 0);
		assert_int_equal(write(fds[i], "more\n", 5), 5);
		fileop_fsync(t.pool, fds[i], count, &t);
	}
	t.expected = FILES;
	run_until_done(&t);
	assert_int_equal(t.failed, 0);
	assert_false(t.wrong_thread);
	for (int i = 0; i < FILES; i++) {
		close(fds[i]);
		fileop_unlink(t.pool, paths[i], count, &t);
	}
	t.expected += FILES;
	run_until_done(&t);
	assert_int_equal(t.failed, 0);
	for (int i = 0; i < FILES; i++) {
		assert_int_equal(stat(paths[i], &st), -1);
		assert_int_equal(errno, ENOENT);
		unit_temp_track(paths[i], false);
		free(paths[i]);
	}
	fileop_pool_free(&t.pool);
	assert_null(t.pool);
	event_base_free(t.base);
}

static void test_errors_reported(void **state)
{
	struct tally t = { .base = event_base_new(), .loop_thread = pthread_self() };
	int pipefd[2];
	char *dir = unit_make_temp_dir();
	char *missing = xasprintf("%s/missing", dir);

	(void)state;
	t.pool = fileop_pool_new(t.base, 1);
	assert_int_equal(pipe(pipefd), 0);
	fileop_fsync(t.pool, pipefd[0], count, &t); /* a pipe cannot be synced */
	t.expected = 1;
	run_until_done(&t);
	assert_int_equal(t.failed, 1);
	assert_int_equal(t.last_err, EINVAL);
	fileop_unlink(t.pool, missing, count, &t);
	t.expected++;
	run_until_done(&t);
	assert_int_equal(t.failed, 2);
	assert_int_equal(t.last_err, ENOENT);
	close(pipefd[0]);
	close(pipefd[1]);
	fileop_pool_free(&t.pool);
	event_base_free(t.base);
	free(missing);
	assert_int_equal(rmdir(dir), 0);
	unit_temp_track(dir, false);
	free(dir);
}

static void test_submit_from_callback(void **state)
{
	struct tally t = { .base = event_base_new(), .loop_thread = pthread_self() };
	char *first = unit_write_temp_str("x");
	int fd = open(first, O_RDONLY | O_CLOEXEC);
	struct stat st;

	(void)state;
	t.chain_path = first;
	t.pool = fileop_pool_new(t.base, 2);
	fileop_fsync(t.pool, fd, chain, &t);
	t.expected = 1;
	run_until_done(&t);
	assert_int_equal(t.expected, 2);
	assert_int_equal(t.failed, 0);
	assert_int_equal(stat(first, &st), -1);
	close(fd);
	fileop_pool_free(&t.pool);
	event_base_free(t.base);
	unit_temp_track(first, false);
	free(first);
}

/* recycle empties the file and renames it; when the rename cannot be
 * made, the file is removed instead; a missing file is ENOENT. */
static void test_recycle(void **state)
{
	struct tally t = { .base = event_base_new(), .loop_thread = pthread_self() };
	char *dir = unit_make_temp_dir();
	char *from = xasprintf("%s/content", dir), *to = xasprintf("%s/spare", dir);
	char *nowhere = xasprintf("%s/missing-dir/spare", dir);
	struct stat st;
	FILE *fp;

	(void)state;
	t.pool = fileop_pool_new(t.base, 1);
	fp = fopen(from, "w");
	assert_non_null(fp);
	fputs("a delivered message\n", fp);
	fclose(fp);
	fileop_recycle(t.pool, from, to, count, &t);
	t.expected = 1;
	run_until_done(&t);
	assert_int_equal(t.failed, 0);
	assert_int_equal(stat(from, &st), -1);
	assert_int_equal(stat(to, &st), 0);
	assert_int_equal(st.st_size, 0);

	assert_int_equal(rename(to, from), 0);
	fileop_recycle(t.pool, from, nowhere, count, &t);
	t.expected++;
	run_until_done(&t);
	assert_int_equal(t.failed, 0);
	assert_int_equal(stat(from, &st), -1);

	fileop_recycle(t.pool, from, to, count, &t);
	t.expected++;
	run_until_done(&t);
	assert_int_equal(t.failed, 1);
	assert_int_equal(t.last_err, ENOENT);

	fileop_pool_free(&t.pool);
	event_base_free(t.base);
	assert_int_equal(rmdir(dir), 0);
	unit_temp_track(dir, false);
	free(dir);
	free(from);
	free(to);
	free(nowhere);
}

/* Freeing with calls still queued: they are made, their callbacks are
 * dropped, nothing leaks (valgrind checks the last part). */
static void test_free_with_calls_queued(void **state)
{
	struct tally t = { .base = event_base_new(), .loop_thread = pthread_self() };
	char *paths[FILES];
	struct stat st;

	(void)state;
	t.pool = fileop_pool_new(t.base, 2);
	for (int i = 0; i < FILES; i++) {
		paths[i] = unit_write_temp_str("x");
		fileop_unlink(t.pool, paths[i], count, &t);
	}
	fileop_pool_free(&t.pool);
	assert_int_equal(t.done, 0);
	for (int i = 0; i < FILES; i++) {
		assert_int_equal(stat(paths[i], &st), -1);
		unit_temp_track(paths[i], false);
		free(paths[i]);
	}
	event_base_free(t.base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fsync_then_unlink),
		cmocka_unit_test(test_errors_reported),
		cmocka_unit_test(test_submit_from_callback),
		cmocka_unit_test(test_recycle),
		cmocka_unit_test(test_free_with_calls_queued),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
