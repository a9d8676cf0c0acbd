/* mem.h - allocation that never returns NULL, with overflow-checked sizes.
 * Running out of memory is fatal (log_fatal): callers never test for NULL.
 * Memory from xcalloc/xnew is zeroed. */
#ifndef YB_MEM_H
#define YB_MEM_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xreallocarray(void *ptr, size_t count, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* xasprintf - a formatted string in new memory. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* size_add / size_mul - a + b and a * b; fatal on overflow. */
size_t size_add(size_t a, size_t b);
size_t size_mul(size_t a, size_t b);

/* xfree_ptr - free *ptr and set it to NULL; accepts NULL. */
void xfree_ptr(void *ptr_address);

#define xnew(type) ((type *)xcalloc(1, sizeof(type)))

#endif
