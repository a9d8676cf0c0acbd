/* fileutil.c - write-fsync-rename and directory helpers. */
#include "config.h"
#include "fileutil.h"
#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int dir_fsync(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

int fd_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int file_write_atomic(const char *path, const void *data, size_t len, int mode)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	char *copy = xstrdup(path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	int saved;

	if (fd < 0)
		goto fail;
	if (fd_write_all(fd, data, len) < 0)
		goto fail_close;
	if (fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		goto fail_unlink;
	}
	if (rename(tmp, path) < 0)
		goto fail_unlink;
	dir_fsync(dirname(copy));
	free(tmp);
	free(copy);
	return 0;
fail_close:
	close(fd);
fail_unlink:
	saved = errno;
	unlink(tmp);
	errno = saved;
fail:
	saved = errno;
	free(tmp);
	free(copy);
	errno = saved;
	return -1;
}

int dir_make_parents(const char *path, char **error_r)
{
	char *copy = xstrdup(path);

	for (char *p = strchr(copy + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdir(copy, 0755) == 0) {
			if (chmod(copy, 0755) < 0) {
				*error_r = xasprintf("chmod %s: %s", copy, strerror(errno));
				free(copy);
				return -1;
			}
		} else if (errno != EEXIST) {
			*error_r = xasprintf("mkdir %s: %s", copy, strerror(errno));
			free(copy);
			return -1;
		}
		*p = '/';
	}
	free(copy);
	return 0;
}

int dir_ensure(const char *dir, uid_t uid, gid_t gid, int mode, char **error_r)
{
	struct stat st;

	if (mkdir(dir, (mode_t)mode) < 0 && errno != EEXIST) {
		*error_r = xasprintf("mkdir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		*error_r = xasprintf("%s: not a directory", dir);
		return -1;
	}
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(dir, uid, gid) < 0) {
		*error_r = xasprintf("chown %s: %s", dir, strerror(errno));
		return -1;
	}
	if (chmod(dir, (mode_t)mode) < 0) {
		*error_r = xasprintf("chmod %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

char *file_read_small(const char *path, size_t max)
{
	FILE *fp = fopen(path, "re");
	char *data;
	size_t n;

	if (fp == NULL)
		return NULL;
	data = xmalloc(max + 1);
	n = fread(data, 1, max, fp);
	fclose(fp);
	data[n] = '\0';
	return data;
}
