#include "config.h"
/* test_pool.c - unit tests for libutil/pool.c, the arena allocator. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libutil/pool.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void assert_aligned(const void *p)
{
	if ((uintptr_t)p % alignof(max_align_t) != 0)
		fail_msg("%p is not aligned to %zu", p, alignof(max_align_t));
}

static void assert_zeroed(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			fail_msg("byte %zu of %zu is 0x%02x, not zero", i, n, p[i]);
}

static void test_create_destroy(void **state)
{
	struct pool *pool = pool_create();
	struct pool *none = NULL;

	(void)state;
	assert_non_null(pool);
	assert_int_equal(pool_size(pool), 0);
	pool_destroy(&pool);
	assert_null(pool);
	pool_destroy(&pool); /* again: a no-op on NULL */
	assert_null(pool);
	pool_destroy(&none);
	assert_null(none);
}

/* Many allocations of mixed sizes across many blocks: each aligned, zeroed
 * and disjoint from every other. */
static void test_many_allocations(void **state)
{
	enum { COUNT = 5000 };
	struct pool *pool = pool_create();
	unsigned char **ptrs = calloc(COUNT, sizeof *ptrs);
	size_t *sizes = calloc(COUNT, sizeof *sizes);
	size_t total = 0;

	(void)state;
	assert_non_null(ptrs);
	assert_non_null(sizes);
	for (size_t i = 0; i < COUNT; i++) {
		sizes[i] = 1 + (i * 37) % 301; /* 1..301 bytes */
		ptrs[i] = pool_alloc(pool, sizes[i]);
		assert_non_null(ptrs[i]);
		assert_aligned(ptrs[i]);
		assert_zeroed(ptrs[i], sizes[i]);
		memset(ptrs[i], (int)(i & 0xff), sizes[i]);
		total += sizes[i];
		assert_int_equal(pool_size(pool), total);
	}
	/* ~750 KB in 4 KB blocks: no allocation overwrote another. */
	for (size_t i = 0; i < COUNT; i++)
		for (size_t j = 0; j < sizes[i]; j++)
			if (ptrs[i][j] != (unsigned char)(i & 0xff))
				fail_msg("allocation %zu byte %zu overwritten", i, j);
	free(ptrs);
	free(sizes);
	pool_destroy(&pool);
}

static void test_sizes(void **state)
{
	/* Sizes around the block size and the alignment. */
	static const size_t sizes[] = {
		0, 1, 7, 15, 16, 17, 31, 32, 33, 100, 4095, 4096, 4097, 8191, 8192, 100000, 1, 3000, 3000,
	};
	struct pool *pool = pool_create();
	unsigned char *ptrs[NELEM(sizes)];
	size_t total = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(sizes); i++) {
		ptrs[i] = pool_alloc(pool, sizes[i]);
		assert_non_null(ptrs[i]);
		assert_aligned(ptrs[i]);
		assert_zeroed(ptrs[i], sizes[i]);
		memset(ptrs[i], 0x40 + (int)i, sizes[i]);
		total += sizes[i];
		assert_int_equal(pool_size(pool), total);
		for (size_t j = 0; j < i; j++)
			assert_true(ptrs[i] != ptrs[j]); /* even size 0 gets its own pointer */
	}
	for (size_t i = 0; i < NELEM(sizes); i++)
		for (size_t j = 0; j < sizes[i]; j++)
			if (ptrs[i][j] != 0x40 + i)
				fail_msg("allocation %zu (size %zu) byte %zu overwritten", i, sizes[i], j);
	pool_destroy(&pool);
	assert_null(pool);
}

static void test_large_allocation(void **state)
{
	struct pool *pool = pool_create();
	unsigned char *small1, *big, *small2;
	const size_t big_size = 1024 * 1024 + 3;

	(void)state;
	small1 = pool_alloc(pool, 10);
	memset(small1, 's', 10);
	big = pool_alloc(pool, big_size);
	assert_aligned(big);
	assert_zeroed(big, big_size);
	memset(big, 'B', big_size); /* valgrind: the whole range is ours */
	small2 = pool_alloc(pool, 10);
	assert_aligned(small2);
	assert_zeroed(small2, 10);
	memset(small2, 't', 10);
	for (size_t i = 0; i < 10; i++) {
		assert_int_equal(small1[i], 's');
		assert_int_equal(small2[i], 't');
	}
	assert_int_equal(big[0], 'B');
	assert_int_equal(big[big_size - 1], 'B');
	assert_int_equal(pool_size(pool), 20 + big_size);
	pool_destroy(&pool);
}

static void test_strings(void **state)
{
	static const struct {
		const char *s;
		size_t n;
		const char *want;
	} cases[] = {
		{ "hello", 5, "hello" },
		{ "hello", 3, "hel" },
		{ "hello", 0, "" },
		{ "hello", 100, "hello" },
		{ "", 10, "" },
	};
	struct pool *pool = pool_create();
	char big[10000];
	char *p;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		p = pool_strndup(pool, cases[i].s, cases[i].n);
		assert_aligned(p);
		if (strcmp(p, cases[i].want) != 0)
			fail_msg("pool_strndup(\"%s\", %zu): \"%s\", want \"%s\"", cases[i].s, cases[i].n, p,
				 cases[i].want);
		assert_true(p != cases[i].s);
	}
	p = pool_strdup(pool, "duplicate me");
	assert_string_equal(p, "duplicate me");
	p = pool_printf(pool, "%s-%d-%c", "x", 42, 'z');
	assert_string_equal(p, "x-42-z");
	p = pool_printf(pool, "%s", "");
	assert_string_equal(p, "");
	/* longer than a block */
	memset(big, 'q', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	p = pool_printf(pool, "<%s>", big);
	assert_int_equal(strlen(p), sizeof big + 1);
	assert_int_equal(p[0], '<');
	assert_int_equal(p[sizeof big], '>');
	p = pool_strdup(pool, big);
	assert_string_equal(p, big);
	pool_destroy(&pool);
}

static void test_clear_and_reuse(void **state)
{
	struct pool *pool = pool_create();

	(void)state;
	for (int round = 0; round < 5; round++) {
		size_t total = 0;

		assert_int_equal(pool_size(pool), 0);
		for (size_t i = 0; i < 500; i++) {
			size_t n = 1 + (i * 13 + (size_t)round) % 500;
			unsigned char *p = pool_alloc(pool, n);

			assert_aligned(p);
			/* memory used (and dirtied) in the previous round comes back zeroed */
			assert_zeroed(p, n);
			memset(p, 0xff, n);
			total += n;
		}
		assert_int_equal(pool_size(pool), total);
		pool_clear(pool);
		assert_int_equal(pool_size(pool), 0);
	}
	pool_clear(pool); /* clearing an empty pool is fine */
	assert_string_equal(pool_strdup(pool, "after clear"), "after clear");
	pool_destroy(&pool);
	assert_null(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_destroy),
		cmocka_unit_test(test_many_allocations),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_large_allocation),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_clear_and_reuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
