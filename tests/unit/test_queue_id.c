#include "config.h"
/* test_queue_id.c - unit tests for libmail/queue_id.c: format, validity,
 * uniqueness and arrival order, across fork. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../libmail/queue_id.h"
#include "unit.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void test_make(void **state)
{
	static const struct {
		long long usec;
		unsigned long pid;
		unsigned counter;
		const char *want;
	} cases[] = {
		{ 0, 0, 0, "000000000000000000000000" },
		{ 0x123, 0x45, 0x6, "000000000001230000450006" },
		{ 1763812345678901LL, 12345, 1, "06442D90508C350030390001" },
		/* each part keeps only its low digits */
		{ 0x7123456789ABCDEFLL, 0x1ABCDEF, 0x12345, "23456789ABCDEFABCDEF2345" },
		{ 0xFFFFFFFFFFFFFFLL, 0xFFFFFF, 0xFFFF, "FFFFFFFFFFFFFFFFFFFFFFFF" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		char id[QUEUE_ID_SIZE];

		queue_id_make(id, cases[i].usec, cases[i].pid, cases[i].counter);
		assert_string_equal(id, cases[i].want);
		assert_true(queue_id_valid(id));
	}
}

static void test_valid(void **state)
{
	static const struct {
		const char *s;
		bool want;
	} cases[] = {
		{ "06442D90508C350030390001", true },
		{ "000000000000000000000000", true },
		{ "FFFFFFFFFFFFFFFFFFFFFFFF", true },
		{ "06442d90508c350030390001", false }, /* lowercase */
		{ "06442D90508C35003039000", false },  /* 23 */
		{ "06442D90508C3500303900012", false }, /* 25 */
		{ "06442D90508C35003039000G", false },
		{ "06442D90508C3500303900 1", false },
		{ "06442D90508C35003039000\n", false },
		{ "../../../../../etc/passwd", false },
		{ "", false },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		if (queue_id_valid(cases[i].s) != cases[i].want)
			fail_msg("queue_id_valid(\"%s\") != %d", cases[i].s, cases[i].want);
	}
	assert_false(queue_id_valid(NULL));
	/* not terminated: only the given length counts */
	assert_true(queue_id_valid_n("06442D90508C350030390001XYZ", QUEUE_ID_LEN));
	assert_false(queue_id_valid_n("06442D90508C350030390001XYZ", QUEUE_ID_LEN + 1));
	assert_false(queue_id_valid_n("06442D90508C3500303900", QUEUE_ID_LEN));
	assert_false(queue_id_valid_n(NULL, QUEUE_ID_LEN));
}

static void test_usec(void **state)
{
	char id[QUEUE_ID_SIZE];
	struct timeval tv;
	long long now, got;

	(void)state;
	queue_id_make(id, 1763812345678901LL, 1, 2);
	assert_int_equal(queue_id_usec(id), 1763812345678901LL);
	assert_int_equal(queue_id_usec("nonsense"), -1);
	assert_int_equal(queue_id_usec(NULL), -1);

	gettimeofday(&tv, NULL);
	now = (long long)tv.tv_sec * 1000000 + tv.tv_usec;
	queue_id_new(id);
	got = queue_id_usec(id);
	/* at or just after now (the generator may run a little ahead) */
	assert_true(got >= now - 1000000 && got <= now + 5000000);
}

static void test_unique_and_ordered(void **state)
{
	enum { N = 100000 };
	char prev[QUEUE_ID_SIZE], id[QUEUE_ID_SIZE];
	char pid_part[QUEUE_ID_PID_DIGITS + 1];

	(void)state;
	snprintf(pid_part, sizeof pid_part, "%06lX", (unsigned long)getpid() & 0xFFFFFF);
	queue_id_new(prev);
	for (int i = 0; i < N; i++) {
		queue_id_new(id);
		assert_true(queue_id_valid(id));
		/* strictly increasing: unique, and byte order is arrival order */
		if (strcmp(prev, id) >= 0)
			fail_msg("IDs out of order: %s then %s", prev, id);
		assert_memory_equal(id + QUEUE_ID_TIME_DIGITS, pid_part, QUEUE_ID_PID_DIGITS);
		memcpy(prev, id, sizeof id);
	}
}

static int cmp_ids(const void *a, const void *b)
{
	return memcmp(a, b, QUEUE_ID_SIZE);
}

/* After fork, parent and child share the generator's state: the pid part
 * must keep them apart. */
static void test_fork(void **state)
{
	enum { N = 2000 };
	char (*ids)[QUEUE_ID_SIZE] = calloc(2 * N, QUEUE_ID_SIZE);
	int fds[2];
	pid_t pid;
	int status;
	size_t got = 0;

	(void)state;
	assert_non_null(ids);
	queue_id_new(ids[0]); /* some state to inherit */
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char id[QUEUE_ID_SIZE];

		free(ids); /* the child exits under valgrind too */
		close(fds[0]);
		for (int i = 0; i < N; i++) {
			queue_id_new(id);
			if (write(fds[1], id, QUEUE_ID_SIZE) != QUEUE_ID_SIZE)
				_exit(1);
		}
		_exit(0);
	}
	close(fds[1]);
	for (int i = 0; i < N; i++)
		queue_id_new(ids[i]);
	while (got < (size_t)N * QUEUE_ID_SIZE) {
		ssize_t n = read(fds[0], (char *)ids[N] + got, (size_t)N * QUEUE_ID_SIZE - got);

		assert_true(n > 0);
		got += (size_t)n;
	}
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	qsort(ids, 2 * N, QUEUE_ID_SIZE, cmp_ids);
	for (int i = 0; i < 2 * N; i++) {
		assert_true(queue_id_valid(ids[i]));
		if (i > 0 && memcmp(ids[i - 1], ids[i], QUEUE_ID_SIZE) == 0)
			fail_msg("duplicate ID %s", ids[i]);
	}
	free(ids);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_make),
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_usec),
		cmocka_unit_test(test_unique_and_ordered),
		cmocka_unit_test(test_fork),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
