/* fileutil.h - durable file writes and directory helpers. */
#ifndef YB_FILEUTIL_H
#define YB_FILEUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* fd_write_all - write the whole buffer to a file descriptor (retrying
 * short writes and EINTR); 0, or -1 with errno. */
int fd_write_all(int fd, const void *data, size_t len);

/* file_write_atomic - write data to path via a temporary file in the same
 * directory: write, fsync, rename, fsync the directory. -1 with errno. */
int file_write_atomic(const char *path, const void *data, size_t len, int mode);

/* dir_fsync - fsync the directory that holds path (or path itself if it is
 * a directory when is_dir). */
int dir_fsync(const char *dir);

/* dir_make_parents - create the missing ancestors of path (mode 0755),
 * not path itself. -1 with a new error string. */
int dir_make_parents(const char *path, char **error_r);

/* dir_ensure - create dir if missing; set its owner (uid/gid -1: leave)
 * and mode. -1 with a new error string. */
int dir_ensure(const char *dir, uid_t uid, gid_t gid, int mode, char **error_r);

/* file_read_small - read a whole small file (at most max bytes) into a new
 * NUL-terminated string; NULL with errno. */
char *file_read_small(const char *path, size_t max);

#endif
