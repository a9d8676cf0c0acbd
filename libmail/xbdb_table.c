/* xbdb_table.c - the Berkeley DB backend of table.h: one standalone hash
 * file per table, no environment (notes/bdb.md, "Read-only lookup tables").
 *
 * Readers open with DB_RDONLY and never write; a writer builds a new file
 * that table.c renames into place, so a reader's open handle always sees
 * one consistent file and no locks are needed. Handles are not shared
 * across fork(): every process opens its own.
 *
 * This is the only file of the tables code that includes <db.h>.
 */
#include "config.h"
#include "table.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"

#include <db.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if DB_VERSION_MAJOR < 5
#error "Berkeley DB 5 or later is needed"
#endif

/* The last message Berkeley DB gave through its error callback: it says
 * more than the return code ("unexpected file type or format"). Each
 * call clears it first; the programs are single-threaded. */
static char xbdb_last_error[256];

static void xbdb_errcall(const DB_ENV *env, const char *prefix, const char *msg)
{
	(void)env;
	(void)prefix;
	snprintf(xbdb_last_error, sizeof xbdb_last_error, "%s", msg);
	log_debug("berkeley db: %s", msg);
}

/* xbdb_error - a new message for a failed call on path. */
static char *xbdb_error(const char *what, const char *path, int ret)
{
	if (xbdb_last_error[0] != '\0')
		return xasprintf("%s %s: %s (%s)", what, path, db_strerror(ret), xbdb_last_error);
	return xasprintf("%s %s: %s", what, path, db_strerror(ret));
}

/* A writer builds the table in its cache and writes it at close instead
 * of evicting pages while it builds. Readers keep the small default. */
#define XBDB_BUILD_CACHE (16u * 1024 * 1024)

struct xbdb {
	DB *db;
	char *path;
};

/* xbdb_zmalloc - Berkeley DB's allocator here. It writes pages to disk
 * with their unused parts as malloc left them: whatever the heap held
 * before (in mailctl: other records, a password being hashed) would end
 * up in the table file, and valgrind rightly complains. Zeroed memory
 * costs little at these sizes. */
static void *xbdb_zmalloc(size_t size)
{
	return calloc(1, size > 0 ? size : 1);
}

static int xbdb_open_flags(const char *path, u_int32_t flags, int mode, void **handle_r, char **error_r)
{
	static bool allocator_set;
	struct xbdb *x;
	DB *db;
	int ret;

	if (!allocator_set) {
		/* Process-wide, and only before the first handle exists. */
		ret = db_env_set_func_malloc(xbdb_zmalloc);
		if (ret != 0)
			log_warn("berkeley db: cannot set the allocator: %s", db_strerror(ret));
		allocator_set = true;
	}
	xbdb_last_error[0] = '\0';
	ret = db_create(&db, NULL, 0);
	if (ret != 0) {
		*error_r = xbdb_error("db_create for", path, ret);
		errno = ret > 0 ? ret : EIO;
		return -1;
	}
	db->set_errcall(db, xbdb_errcall);
	if ((flags & DB_CREATE) && (ret = db->set_cachesize(db, 0, XBDB_BUILD_CACHE, 1)) != 0) {
		*error_r = xbdb_error("set_cachesize for", path, ret);
		db->close(db, DB_NOSYNC);
		errno = EINVAL;
		return -1;
	}
	ret = db->open(db, NULL, path, NULL, DB_HASH, flags, mode);
	if (ret != 0) {
		*error_r = xbdb_error("open", path, ret);
		db->close(db, DB_NOSYNC);
		/* table.c tells a missing table (ENOENT) from a broken one. */
		errno = ret > 0 ? ret : EINVAL;
		return -1;
	}
	x = xnew(struct xbdb);
	x->db = db;
	x->path = xstrdup(path);
	*handle_r = x;
	return 0;
}

static int xbdb_open(const char *path, void **handle_r, char **error_r)
{
	return xbdb_open_flags(path, DB_RDONLY, 0, handle_r, error_r);
}

static int xbdb_get(void *handle, const char *key, struct buf *value, char **error_r)
{
	struct xbdb *x = handle;
	DBT k, v;
	int ret;

	memset(&k, 0, sizeof k);
	memset(&v, 0, sizeof v);
	k.data = (void *)key;
	k.size = (u_int32_t)strlen(key);
	xbdb_last_error[0] = '\0';
	ret = x->db->get(x->db, NULL, &k, &v, 0);
	if (ret == DB_NOTFOUND)
		return 0;
	if (ret != 0) {
		*error_r = xbdb_error("read", x->path, ret);
		return -1;
	}
	buf_reset(value);
	buf_append(value, v.data, v.size);
	return 1;
}

static int xbdb_foreach(void *handle, table_foreach_fn *fn, void *ctx, char **error_r)
{
	struct xbdb *x = handle;
	struct buf key = BUF_INIT;
	DBC *c;
	DBT k, v;
	int ret, rc = 0;

	xbdb_last_error[0] = '\0';
	ret = x->db->cursor(x->db, NULL, &c, 0);
	if (ret != 0) {
		*error_r = xbdb_error("cursor on", x->path, ret);
		return -1;
	}
	for (;;) {
		memset(&k, 0, sizeof k);
		memset(&v, 0, sizeof v);
		ret = c->get(c, &k, &v, DB_NEXT);
		if (ret == DB_NOTFOUND)
			break;
		if (ret != 0) {
			*error_r = xbdb_error("read", x->path, ret);
			rc = -1;
			break;
		}
		/* Keys are stored without their NUL: give the callback a string. */
		buf_reset(&key);
		buf_append(&key, k.data, k.size);
		rc = fn(buf_cstr(&key), v.data, v.size, ctx);
		if (rc != 0)
			break;
	}
	c->close(c);
	buf_free(&key);
	return rc;
}

static void xbdb_free(struct xbdb *x)
{
	free(x->path);
	free(x);
}

static void xbdb_close(void *handle)
{
	struct xbdb *x = handle;

	/* Read-only: nothing to write back. */
	x->db->close(x->db, DB_NOSYNC);
	xbdb_free(x);
}

static int xbdb_create(const char *path, void **handle_r, char **error_r)
{
	/* DB_EXCL: table.c removed any leftover, so the name must be free. */
	return xbdb_open_flags(path, DB_CREATE | DB_EXCL, 0600, handle_r, error_r);
}

static int xbdb_put(void *handle, const char *key, const void *value, size_t len, char **error_r)
{
	struct xbdb *x = handle;
	DBT k, v;
	int ret;

	if (len > UINT32_MAX / 2) {
		*error_r = xasprintf("write %s: value too large", x->path);
		return -1;
	}
	memset(&k, 0, sizeof k);
	memset(&v, 0, sizeof v);
	k.data = (void *)key;
	k.size = (u_int32_t)strlen(key);
	v.data = (void *)value;
	v.size = (u_int32_t)len;
	xbdb_last_error[0] = '\0';
	ret = x->db->put(x->db, NULL, &k, &v, 0);
	if (ret != 0) {
		*error_r = xbdb_error("write", x->path, ret);
		return -1;
	}
	return 0;
}

static int xbdb_finish(void *handle, char **error_r)
{
	struct xbdb *x = handle;
	int ret;

	xbdb_last_error[0] = '\0';
	/* close writes every dirty page back; the handle is gone either way. */
	ret = x->db->close(x->db, 0);
	if (ret != 0) {
		*error_r = xbdb_error("close", x->path, ret);
		xbdb_free(x);
		return -1;
	}
	xbdb_free(x);
	return 0;
}

static void xbdb_discard(void *handle)
{
	xbdb_close(handle);
}

const struct table_backend table_backend_hash = {
	.name = "hash",
	.open = xbdb_open,
	.get = xbdb_get,
	.foreach = xbdb_foreach,
	.close = xbdb_close,
	.create = xbdb_create,
	.put = xbdb_put,
	.finish = xbdb_finish,
	.discard = xbdb_discard,
};
