/* buf.c - the growable byte buffer. */
#include "config.h"
#include "buf.h"
#include "log.h"
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void buf_free(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

uint8_t *buf_reserve(struct buf *b, size_t n)
{
	size_t need = size_add(size_add(b->len, n), 1);

	if (need > b->cap) {
		size_t cap = b->cap < 64 ? 64 : b->cap;

		while (cap < need)
			cap = size_mul(cap, 2);
		b->data = xreallocarray(b->data, cap, 1);
		b->cap = cap;
		/* Keep the promise of buf.h even before anything is appended. */
		b->data[b->len] = '\0';
	}
	return b->data + b->len;
}

void buf_append(struct buf *b, const void *data, size_t n)
{
	uint8_t *p = buf_reserve(b, n);

	if (n > 0)
		memcpy(p, data, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void buf_append_str(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void buf_append_byte(struct buf *b, uint8_t c)
{
	buf_append(b, &c, 1);
}

void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list copy;
	int n;

	va_copy(copy, ap);
	n = vsnprintf(NULL, 0, fmt, copy);
	va_end(copy);
	if (n < 0)
		log_panic("buf_printf: bad format \"%s\"", fmt);
	buf_reserve(b, (size_t)n);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void buf_consume(struct buf *b, size_t n)
{
	if (n > b->len)
		log_panic("buf_consume: %zu bytes from a buffer of %zu", n, b->len);
	if (n == 0)
		return;
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

void buf_truncate(struct buf *b, size_t n)
{
	if (n > b->len)
		log_panic("buf_truncate: to %zu bytes, buffer holds %zu", n, b->len);
	b->len = n;
	if (b->data != NULL)
		b->data[n] = '\0';
}

char *buf_steal(struct buf *b)
{
	char *p;

	buf_reserve(b, 0);
	p = (char *)b->data;
	buf_init(b);
	return p;
}
