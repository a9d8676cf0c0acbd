/* pool.c - a simple arena: a list of blocks, bump allocation inside each. */
#include "config.h"
#include "pool.h"
#include "mem.h"
#include "log.h"

#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POOL_BLOCK_SIZE 4096

struct pool_block {
	struct pool_block *next;
	size_t size;
	size_t used;
	alignas(max_align_t) unsigned char data[];
};

struct pool {
	struct pool_block *blocks;
	size_t handed_out;
};

struct pool *pool_create(void)
{
	return xnew(struct pool);
}

void pool_clear(struct pool *pool)
{
	struct pool_block *b = pool->blocks;

	while (b != NULL) {
		struct pool_block *next = b->next;

		free(b);
		b = next;
	}
	pool->blocks = NULL;
	pool->handed_out = 0;
}

void pool_destroy(struct pool **pool)
{
	if (*pool == NULL)
		return;
	pool_clear(*pool);
	free(*pool);
	*pool = NULL;
}

void *pool_alloc(struct pool *pool, size_t size)
{
	size_t align = alignof(max_align_t);
	size_t rounded = size_add(size, align - 1) & ~(align - 1);
	struct pool_block *b = pool->blocks;

	if (rounded == 0)
		rounded = align;
	if (b == NULL || b->size - b->used < rounded) {
		size_t want = rounded > POOL_BLOCK_SIZE ? rounded : POOL_BLOCK_SIZE;

		b = xmalloc(size_add(sizeof *b, want));
		b->size = want;
		b->used = 0;
		b->next = pool->blocks;
		pool->blocks = b;
	}
	void *p = b->data + b->used;
	b->used += rounded;
	pool->handed_out += size;
	memset(p, 0, rounded);
	return p;
}

char *pool_strndup(struct pool *pool, const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = pool_alloc(pool, size_add(len, 1));

	memcpy(p, s, len);
	return p;
}

char *pool_strdup(struct pool *pool, const char *s)
{
	return pool_strndup(pool, s, strlen(s));
}

char *pool_printf(struct pool *pool, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		log_panic("pool_printf: bad format \"%s\"", fmt);
	p = pool_alloc(pool, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

size_t pool_size(const struct pool *pool)
{
	return pool->handed_out;
}
