/* table.c - the backend-neutral half of table.h: change detection for
 * file tables, and the build-then-rename writer. */
#include "config.h"
#include "table.h"
#include "../libutil/fileutil.h"
#include "../libutil/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What identifies one version of a table file. */
struct table_id {
	bool exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct table {
	const struct table_backend *backend;
	void *handle; /* NULL: the file did not exist (an empty table) */
	char *path;
	struct table_id id;
};

struct table_writer {
	const struct table_backend *backend;
	void *handle;
	char *path;
	char *tmp_path;
	mode_t mode;
	uid_t uid;
	gid_t gid;
};

/* table_identify - the identity of the file at path now. */
static void table_identify(const char *path, struct table_id *id)
{
	struct stat st;

	memset(id, 0, sizeof *id);
	if (stat(path, &st) < 0)
		return;
	id->exists = true;
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->size = st.st_size;
	id->mtime = st.st_mtim;
}

static bool table_id_equal(const struct table_id *a, const struct table_id *b)
{
	if (a->exists != b->exists)
		return false;
	if (!a->exists)
		return true;
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec;
}

struct table *table_open_backend(const struct table_backend *backend, const char *path, int flags,
				 char **error_r)
{
	struct table *t = xnew(struct table);
	struct table_id before;

	t->backend = backend;
	t->path = xstrdup(path);
	/* Identify first: if the file is replaced while we open it, the
	 * identity is stale and the next table_changed() reopens. */
	table_identify(path, &before);
	if (backend->open(path, &t->handle, error_r) < 0) {
		if (errno == ENOENT && (flags & TABLE_MISSING_OK)) {
			free(*error_r);
			*error_r = NULL;
			/* Identity "missing": any file there later is a change. */
			t->handle = NULL;
			memset(&t->id, 0, sizeof t->id);
			return t;
		}
		int saved = errno;

		free(t->path);
		free(t);
		errno = saved; /* EACCES, ENOENT: callers tell them apart */
		return NULL;
	}
	t->id = before;
	return t;
}

struct table *table_open(const char *path, int flags, char **error_r)
{
	return table_open_backend(&table_backend_hash, path, flags, error_r);
}

int table_get(struct table *t, const char *key, struct buf *value, char **error_r)
{
	if (strlen(key) > TABLE_KEY_MAX) {
		*error_r = xasprintf("%s: key longer than %d bytes", t->path, TABLE_KEY_MAX);
		return -1;
	}
	if (t->handle == NULL)
		return 0;
	return t->backend->get(t->handle, key, value, error_r);
}

int table_foreach(struct table *t, table_foreach_fn *fn, void *ctx, char **error_r)
{
	if (t->handle == NULL)
		return 0;
	return t->backend->foreach(t->handle, fn, ctx, error_r);
}

bool table_changed(const struct table *t)
{
	struct table_id now;

	table_identify(t->path, &now);
	return !table_id_equal(&now, &t->id);
}

const char *table_path(const struct table *t)
{
	return t->path;
}

void table_close(struct table **tp)
{
	struct table *t = *tp;

	if (t == NULL)
		return;
	if (t->handle != NULL)
		t->backend->close(t->handle);
	free(t->path);
	free(t);
	*tp = NULL;
}

struct table_writer *table_writer_begin_backend(const struct table_backend *backend, const char *path,
						mode_t mode, uid_t uid, gid_t gid, char **error_r)
{
	struct table_writer *w = xnew(struct table_writer);

	w->backend = backend;
	w->path = xstrdup(path);
	w->tmp_path = xasprintf("%s.tmp", path);
	w->mode = mode;
	w->uid = uid;
	w->gid = gid;
	/* A writer that crashed may have left its file; writers are
	 * serialised by the caller, so nobody else is building it now. */
	if (unlink(w->tmp_path) < 0 && errno != ENOENT) {
		*error_r = xasprintf("unlink %s: %s", w->tmp_path, strerror(errno));
		goto fail;
	}
	if (backend->create(w->tmp_path, &w->handle, error_r) < 0)
		goto fail;
	return w;
fail:
	free(w->tmp_path);
	free(w->path);
	free(w);
	return NULL;
}

struct table_writer *table_writer_begin(const char *path, mode_t mode, uid_t uid, gid_t gid, char **error_r)
{
	return table_writer_begin_backend(&table_backend_hash, path, mode, uid, gid, error_r);
}

int table_writer_put(struct table_writer *w, const char *key, const void *value, size_t len, char **error_r)
{
	if (strlen(key) > TABLE_KEY_MAX) {
		*error_r = xasprintf("%s: key longer than %d bytes", w->path, TABLE_KEY_MAX);
		return -1;
	}
	return w->backend->put(w->handle, key, value, len, error_r);
}

static void writer_free(struct table_writer **wp)
{
	struct table_writer *w = *wp;

	free(w->tmp_path);
	free(w->path);
	free(w);
	*wp = NULL;
}

/* settle - owner, mode and fsync of the finished file. */
static int settle(const struct table_writer *w, char **error_r)
{
	int fd = open(w->tmp_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0) {
		*error_r = xasprintf("open %s: %s", w->tmp_path, strerror(errno));
		return -1;
	}
	/* chown first: it may clear mode bits, and chmod then sets them. */
	if ((w->uid != (uid_t)-1 || w->gid != (gid_t)-1) && fchown(fd, w->uid, w->gid) < 0) {
		*error_r = xasprintf("chown %s: %s", w->tmp_path, strerror(errno));
		close(fd);
		return -1;
	}
	if (fchmod(fd, w->mode) < 0 || fsync(fd) < 0) {
		*error_r = xasprintf("%s: %s", w->tmp_path, strerror(errno));
		close(fd);
		return -1;
	}
	if (close(fd) < 0) {
		*error_r = xasprintf("close %s: %s", w->tmp_path, strerror(errno));
		return -1;
	}
	return 0;
}

int table_writer_commit(struct table_writer **wp, char **error_r)
{
	struct table_writer *w = *wp;
	char *dir;
	int rc = -1;

	if (w->backend->finish(w->handle, error_r) < 0) {
		unlink(w->tmp_path);
		writer_free(wp);
		return -1;
	}
	w->handle = NULL;
	if (settle(w, error_r) < 0)
		goto out;
	if (rename(w->tmp_path, w->path) < 0) {
		*error_r = xasprintf("rename %s to %s: %s", w->tmp_path, w->path, strerror(errno));
		goto out;
	}
	dir = xstrdup(w->path);
	/* The rename is durable only once the directory is on disk too. */
	if (dir_fsync(dirname(dir)) < 0) {
		*error_r = xasprintf("fsync of the directory of %s: %s", w->path, strerror(errno));
		free(dir);
		writer_free(wp);
		return -1;
	}
	free(dir);
	rc = 0;
out:
	if (rc < 0)
		unlink(w->tmp_path);
	writer_free(wp);
	return rc;
}

void table_writer_abort(struct table_writer **wp)
{
	struct table_writer *w = *wp;

	if (w == NULL)
		return;
	if (w->handle != NULL)
		w->backend->discard(w->handle);
	unlink(w->tmp_path);
	writer_free(wp);
}
