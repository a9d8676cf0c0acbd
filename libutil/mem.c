/* mem.c - checked allocation: out of memory and size overflow are fatal. */
#include "config.h"
#include "mem.h"
#include "log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t size_add(size_t a, size_t b)
{
	if (a > SIZE_MAX - b)
		log_fatal("size overflow: %zu + %zu", a, b);
	return a + b;
}

size_t size_mul(size_t a, size_t b)
{
	if (b != 0 && a > SIZE_MAX / b)
		log_fatal("size overflow: %zu * %zu", a, b);
	return a * b;
}

void *xmalloc(size_t size)
{
	void *p = malloc(size == 0 ? 1 : size);

	if (p == NULL)
		log_fatal("out of memory allocating %zu bytes", size);
	return p;
}

void *xcalloc(size_t count, size_t size)
{
	void *p = calloc(count == 0 ? 1 : count, size == 0 ? 1 : size);

	if (p == NULL)
		log_fatal("out of memory allocating %zu x %zu bytes", count, size);
	return p;
}

void *xreallocarray(void *ptr, size_t count, size_t size)
{
	size_t total = size_mul(count, size);
	void *p = realloc(ptr, total == 0 ? 1 : total);

	if (p == NULL)
		log_fatal("out of memory allocating %zu bytes", total);
	return p;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = xmalloc(size_add(len, 1));

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		log_panic("xasprintf: bad format \"%s\"", fmt);
	p = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

void xfree_ptr(void *ptr_address)
{
	void **pp = ptr_address;

	free(*pp);
	*pp = NULL;
}
