/* table.h - read-only key -> value lookup tables, and the writer that
 * replaces one atomically.
 *
 * The mail model (directory.h) reads domains, users and aliases through
 * this narrow interface and nothing else, so that where the data lives is
 * one backend's business: today a Berkeley DB hash file per table
 * (xbdb_table.c, the only file that includes <db.h>); later possibly LMDB,
 * or a PostgreSQL database shared by several front-end hosts. A backend is
 * a struct table_backend of function pointers.
 *
 * Readers open a table, look keys up, and ask table_changed() between
 * requests: for a file that is a stat() of the path, compared with the
 * inode, size and mtime that were opened. A changed table is closed and
 * opened again by the caller; the old handle still reads the old file (it
 * is unlinked, not modified), so no locking is needed.
 *
 * Writers never modify a table in place: table_writer_begin() builds a new
 * file next to it, table_writer_commit() closes it, sets owner and mode,
 * fsyncs it, renames it over the old one and fsyncs the directory. Writers
 * of one table must be serialised by the caller (mailctl holds a lock).
 *
 * Keys are C strings (stored without their NUL); values are bytes. A
 * returned error string is new memory the caller frees. Nothing here is
 * fatal except running out of memory.
 */
#ifndef YB_TABLE_H
#define YB_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "../libutil/buf.h"

struct table;
struct table_writer;

/* table_foreach_fn - one record; return 0 to go on, anything else stops
 * the walk and becomes table_foreach's result. */
typedef int table_foreach_fn(const char *key, const void *value, size_t len, void *ctx);

/* A backend. Each function gets the backend's own handle. */
struct table_backend {
	const char *name; /* "hash" */
	/* open - 0 with *handle_r, or -1 with errno set (ENOENT: no such
	 * table) and a new *error_r. */
	int (*open)(const char *path, void **handle_r, char **error_r);
	/* get - 1 found (value replaced), 0 not found, -1 error. */
	int (*get)(void *handle, const char *key, struct buf *value, char **error_r);
	/* foreach - 0 after the last record, the callback's non-zero result,
	 * or -1 with *error_r. */
	int (*foreach)(void *handle, table_foreach_fn *fn, void *ctx, char **error_r);
	void (*close)(void *handle);
	/* create / put / finish - build a new table at path (which does not
	 * exist). finish closes it; afterwards the file is complete. */
	int (*create)(const char *path, void **handle_r, char **error_r);
	int (*put)(void *handle, const char *key, const void *value, size_t len, char **error_r);
	int (*finish)(void *handle, char **error_r);
	void (*discard)(void *handle); /* abandon a table being built */
};

/* The Berkeley DB hash backend (xbdb_table.c): the default. */
extern const struct table_backend table_backend_hash;

#define TABLE_KEY_MAX 1024 /* longest key accepted by get and put */

/* Flags for table_open. */
#define TABLE_MISSING_OK 0x1 /* no file yet: an empty table, not an error */

/* table_open - open the table at path with the default backend. With
 * TABLE_MISSING_OK a missing file gives an empty table whose
 * table_changed() turns true once the file appears. NULL and a new
 * *error_r on failure, with errno saying why (ENOENT, EACCES, EINVAL for
 * a file that is not a table). */
struct table *table_open(const char *path, int flags, char **error_r);
struct table *table_open_backend(const struct table_backend *backend, const char *path, int flags,
				 char **error_r);

/* table_get - look key up: 1 and the value in *value, 0 if there is no
 * such key, -1 and a new *error_r if the table could not be read. */
int table_get(struct table *t, const char *key, struct buf *value, char **error_r);

/* table_foreach - every record, in the backend's order. */
int table_foreach(struct table *t, table_foreach_fn *fn, void *ctx, char **error_r);

/* table_changed - whether the file at the table's path is no longer the
 * one that was opened (replaced, created or removed). Cheap: one stat. */
bool table_changed(const struct table *t);

/* table_path - the path given to table_open. */
const char *table_path(const struct table *t);

/* table_close - close *t and set it to NULL; accepts NULL. */
void table_close(struct table **t);

/* table_writer_begin - start building a replacement for the table at
 * path (in path.tmp, removed first if a crashed writer left it). When
 * committed the file gets mode, and owner uid/gid unless they are -1.
 * NULL and a new *error_r on failure. */
struct table_writer *table_writer_begin(const char *path, mode_t mode, uid_t uid, gid_t gid, char **error_r);
struct table_writer *table_writer_begin_backend(const struct table_backend *backend, const char *path,
						mode_t mode, uid_t uid, gid_t gid, char **error_r);

/* table_writer_put - add or replace one record. */
int table_writer_put(struct table_writer *w, const char *key, const void *value, size_t len, char **error_r);

/* table_writer_commit - finish the file and rename it into place (see
 * above); frees *w and sets it to NULL whatever the outcome. -1 and a new
 * *error_r on failure, and then the old table is untouched. */
int table_writer_commit(struct table_writer **w, char **error_r);

/* table_writer_abort - throw the new file away; accepts NULL. */
void table_writer_abort(struct table_writer **w);

#endif
