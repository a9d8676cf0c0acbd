/* buf.h - one growable, binary-safe byte buffer, always NUL-terminated
 * after its length so that text users can treat it as a C string. */
#ifndef YB_BUF_H
#define YB_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT { NULL, 0, 0 }

void buf_init(struct buf *b);
/* buf_free - release the memory; the buffer is empty and reusable after. */
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
/* buf_reserve - make room for n more bytes; returns a pointer to them. */
uint8_t *buf_reserve(struct buf *b, size_t n);
void buf_append(struct buf *b, const void *data, size_t n);
void buf_append_str(struct buf *b, const char *s);
void buf_append_byte(struct buf *b, uint8_t c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* buf_consume - drop the first n bytes. */
void buf_consume(struct buf *b, size_t n);
/* buf_truncate - keep the first n bytes (n <= len). */
void buf_truncate(struct buf *b, size_t n);
/* buf_cstr - the contents as a C string (may hold NULs inside). */
static inline const char *buf_cstr(const struct buf *b)
{
	return b->data != NULL ? (const char *)b->data : "";
}
/* buf_steal - hand the memory to the caller (a C string) and reset. */
char *buf_steal(struct buf *b);

#endif
