/* pool.h - arenas: many small allocations freed in one call, used per
 * session and per transaction (freed at RSET, end of message, QUIT). */
#ifndef YB_POOL_H
#define YB_POOL_H

#include <stddef.h>

struct pool;

struct pool *pool_create(void);
/* pool_destroy - free everything allocated from *pool; sets it to NULL. */
void pool_destroy(struct pool **pool);
/* pool_clear - free everything but keep the pool for reuse. */
void pool_clear(struct pool *pool);
/* pool_alloc - zeroed memory living as long as the pool; never NULL. */
void *pool_alloc(struct pool *pool, size_t size);
char *pool_strdup(struct pool *pool, const char *s);
char *pool_strndup(struct pool *pool, const char *s, size_t n);
char *pool_printf(struct pool *pool, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* pool_size - bytes handed out since create or clear (for limits and tests). */
size_t pool_size(const struct pool *pool);

#endif
