/* fileop_pool.h - file system calls that may block (fsync, unlink) run on
 * a few worker threads, so that an event loop serving many clients is not
 * stopped by one of them. Completion is reported on the loop.
 *
 * Only the system call runs on a worker: callbacks, logging and all other
 * state stay on the loop's thread. Create the pool after the privilege
 * drop (threads started before it would keep the old credentials in the
 * kernel's view until glibc fixes them up).
 */
#ifndef YB_FILEOP_POOL_H
#define YB_FILEOP_POOL_H

struct event_base;
struct fileop_pool;

/* fileop_done_fn - the call finished: err is 0 or its errno. Runs on the
 * loop, in a later turn than the submission. */
typedef void fileop_done_fn(int err, void *arg);

/* fileop_pool_new - a pool of threads workers (at least 1) reporting on
 * base. Fatal if a thread cannot be started. */
struct fileop_pool *fileop_pool_new(struct event_base *base, int threads);

/* fileop_fsync - fsync(fd); fd must stay open until done runs. */
void fileop_fsync(struct fileop_pool *p, int fd, fileop_done_fn *done, void *arg);

/* fileop_unlink - unlink(path) (path is copied); done may be NULL. */
void fileop_unlink(struct fileop_pool *p, const char *path, fileop_done_fn *done, void *arg);
/* fileop_unlinkat - unlinkat(dir_fd, name, 0): a name in a directory
 * opened without following symlinks; dir_fd must stay open until done
 * runs. */
void fileop_unlinkat(struct fileop_pool *p, int dir_fd, const char *name, fileop_done_fn *done, void *arg);

/* fileop_recycle - empty the file at path (truncate to 0) and rename it
 * to `to`; if the rename fails, unlink path instead. err is that of the
 * rename, or of the unlink after a failed one. */
void fileop_recycle(struct fileop_pool *p, const char *path, const char *to, fileop_done_fn *done, void *arg);

/* fileop_pool_free - let the workers finish every submitted call, stop
 * them, and free the pool. Callbacks not yet run are dropped. */
void fileop_pool_free(struct fileop_pool **p);

#endif
