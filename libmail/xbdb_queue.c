/* xbdb_queue.c - the Berkeley DB queue store backend: the only file that
 * includes <db.h> for the queue (see shared/notes/bdb.md for the tested
 * facts every choice below rests on).
 *
 * Layout of the queue directory:
 *   .lock           flock()ed by the one owner, holds its pid
 *   queue.db        btree: queue ID -> record (queue_store.c's format)
 *   queue-due.db    btree, sorted duplicates: 8-byte big-endian next
 *                   attempt -> queue ID; a secondary index of queue.db,
 *                   maintained by Berkeley DB through by_next_try()
 *   log.NNNNNNNNNN  the write-ahead log (removed once not needed)
 *
 * The environment is DB_PRIVATE (regions on the heap: no __db.NNN files
 * for anybody to attach to, no SIGBUS when the disk fills under an mmap),
 * opened with DB_RECOVER every time: the owner is the only process, so a
 * crash of the owner leaves nobody else holding the environment, and the
 * next open replays the log.
 *
 * Staging: every put and delete is its own transaction, committed with
 * DB_TXN_NOSYNC: atomic and visible at once, in the log buffer only.
 * queue_store_commit is one env->log_flush(NULL), which writes and fsyncs
 * the log up to the last of them. Because the log is written in order, a
 * crash keeps a prefix of the staged changes. (Not one transaction per
 * batch: one failed put would then take the whole batch with it, reads
 * between puts would have to join the open transaction, and its locks
 * would grow with the batch.)
 *
 * Valgrind: libdb5.3 as Debian builds it (without --enable-umrw) writes
 * uninitialised padding into its log and pages and branches on it, so
 * every write reports errors inside libdb. Around each libdb call we turn
 * error reporting off (a valgrind client request, a no-op otherwise) and
 * back on before any of our code runs again, so our own code - the
 * decoder, the caller's scan callbacks - stays checked.
 */
#include "config.h"
#define QUEUE_STORE_BACKEND 1
#include "queue_store.h"
#include "xbdb_queue.h"
#include "../libutil/buf.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"

#include <db.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#if DB_VERSION_MAJOR < 5
#error "Berkeley DB 5 or later is needed (Debian: libdb5.3-dev)"
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define XBDB_HAVE_VALGRIND 1
#endif
#endif

#define QUEUE_DB_FILE "queue.db"
#define QUEUE_DUE_FILE "queue-due.db"
#define QUEUE_LOCK_FILE ".lock"
#define QUEUE_PAGE_SIZE 4096          /* never above the fs block: page writes must be atomic */
#define QUEUE_CACHE_SIZE (32u << 20)  /* large: a full disk then fails commits, not evictions */
/* Recovery (every open) zero-fills the rest of the last log file up to
 * this size: that much free space is needed to start. Measured: with
 * 16 MB files a queue fs enlarged from 2 to 16 MB after ENOSPC still
 * could not recover. Small files also let DB_LOG_AUTO_REMOVE free space
 * sooner; the cost is an extra log sync at each switch. */
#define QUEUE_LOG_FILE_SIZE (4u << 20)

struct bdb_store {
	struct queue_store q; /* first: the common part */
	DB_ENV *env;
	DB *db;  /* primary */
	DB *due; /* secondary: the due index */
	int lock_fd;
	char *dir;
};

static const struct queue_store_ops bdb_ops;

/* quiet - turn valgrind's error reporting off (on) around a libdb call. */
static void quiet(bool on)
{
#ifdef XBDB_HAVE_VALGRIND
	if (on)
		VALGRIND_DISABLE_ERROR_REPORTING;
	else
		VALGRIND_ENABLE_ERROR_REPORTING;
#else
	(void)on;
#endif
}

static struct bdb_store *bdb_of(struct queue_store *q)
{
	return (struct bdb_store *)q;
}

/* fail - an error from libdb as a new string; DB_RUNRECOVERY also marks
 * the store failed for good (the owner must exit; the next open recovers). */
static int fail(struct bdb_store *b, int ret, char **error_r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(struct bdb_store *b, int ret, char **error_r, const char *fmt, ...)
{
	struct buf what = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&what, fmt, ap);
	va_end(ap);
	if (ret == DB_RUNRECOVERY) {
		queue_store_error(error_r, "queue store %s: %s: %s (Berkeley DB needs recovery: restart the queue manager)",
				  b->dir, buf_cstr(&what), db_strerror(ret));
		queue_store_set_failed(&b->q, *error_r);
	} else {
		queue_store_error(error_r, "queue store %s: %s: %s", b->dir, buf_cstr(&what), db_strerror(ret));
	}
	buf_free(&what);
	return -1;
}

/* db_errcall - libdb's own diagnostics, into our log. */
static void db_errcall(const DB_ENV *env, const char *prefix, const char *msg)
{
	(void)env;
	(void)prefix;
	quiet(false);
	log_warn("queue store: Berkeley DB: %s", msg);
	quiet(true);
}

static void db_msgcall(const DB_ENV *env, const char *msg)
{
	(void)env;
	quiet(false);
	log_info("queue store: Berkeley DB: %s", msg);
	quiet(true);
}

/* db_event - a panic anywhere (also in a call that then returns another
 * error) fails the store. */
static void db_event(DB_ENV *env, u_int32_t event, void *info)
{
	struct bdb_store *b = env->app_private;

	(void)info;
	if (event == DB_EVENT_PANIC && b != NULL) {
		quiet(false);
		queue_store_set_failed(&b->q, "Berkeley DB environment panic (DB_RUNRECOVERY)");
		quiet(true);
	}
}

/* by_next_try - the due index's key: the 8 big-endian bytes of the
 * record header (pointing into the record, which libdb allows). Held
 * envelopes and those with nothing left to do are not indexed. */
static int by_next_try(DB *sdb, const DBT *pkey, const DBT *pdata, DBT *skey)
{
	uint64_t key;

	(void)sdb;
	(void)pkey;
	quiet(false);
	if (!queue_record_index_key(pdata->data, pdata->size, &key)) {
		quiet(true);
		return DB_DONOTINDEX;
	}
	quiet(true);
	memset(skey, 0, sizeof *skey);
	skey->data = (uint8_t *)pdata->data + QUEUE_RECORD_INDEX_KEY_OFFSET;
	skey->size = QUEUE_RECORD_INDEX_KEY_LEN;
	return 0;
}

static void dbt_init(DBT *d, const void *data, size_t len)
{
	memset(d, 0, sizeof *d);
	d->data = (void *)data;
	d->size = (u_int32_t)len;
}

static int bdb_put(struct queue_store *q, const char *id, const uint8_t *rec, size_t len, char **error_r)
{
	struct bdb_store *b = bdb_of(q);
	DB_TXN *txn = NULL;
	DBT key, data;
	int ret;

	if (len > UINT32_MAX)
		return queue_store_error(error_r, "queue store %s: put %s: record too large", b->dir, id);
	dbt_init(&key, id, QUEUE_ID_LEN);
	dbt_init(&data, rec, len);
	quiet(true);
	ret = b->env->txn_begin(b->env, NULL, &txn, 0);
	if (ret == 0) {
		ret = b->db->put(b->db, txn, &key, &data, 0);
		if (ret != 0)
			txn->abort(txn);
		else
			ret = txn->commit(txn, DB_TXN_NOSYNC);
	}
	quiet(false);
	return ret == 0 ? 0 : fail(b, ret, error_r, "put %s", id);
}

static int bdb_del(struct queue_store *q, const char *id, char **error_r)
{
	struct bdb_store *b = bdb_of(q);
	DB_TXN *txn = NULL;
	DBT key;
	int ret;

	dbt_init(&key, id, QUEUE_ID_LEN);
	quiet(true);
	ret = b->env->txn_begin(b->env, NULL, &txn, 0);
	if (ret == 0) {
		ret = b->db->del(b->db, txn, &key, 0);
		if (ret == DB_NOTFOUND) {
			/* nothing to undo; the abort writes nothing to the log */
			ret = txn->abort(txn);
		} else if (ret != 0) {
			txn->abort(txn);
		} else {
			ret = txn->commit(txn, DB_TXN_NOSYNC);
		}
	}
	quiet(false);
	return ret == 0 ? 0 : fail(b, ret, error_r, "delete %s", id);
}

static int bdb_commit(struct queue_store *q, char **error_r)
{
	struct bdb_store *b = bdb_of(q);
	int ret;

	quiet(true);
	ret = b->env->log_flush(b->env, NULL);
	quiet(false);
	return ret == 0 ? 0 : fail(b, ret, error_r, "log flush");
}

static int bdb_get(struct queue_store *q, const char *id, struct buf *rec_r, char **error_r)
{
	struct bdb_store *b = bdb_of(q);
	DBT key, data;
	int ret;

	dbt_init(&key, id, QUEUE_ID_LEN);
	dbt_init(&data, NULL, 0);
	/* Without DB_THREAD the data points into libdb's memory until the
	 * next call on the handle: copy it before anything else runs. */
	quiet(true);
	ret = b->db->get(b->db, NULL, &key, &data, 0);
	quiet(false);
	if (ret == DB_NOTFOUND)
		return 0;
	if (ret != 0)
		return fail(b, ret, error_r, "get %s", id);
	buf_append(rec_r, data.data, data.size);
	return 1;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static int bdb_scan(struct queue_store *q, enum queue_scan_order order, uint64_t now, queue_scan_fn *fn, void *arg,
		    char **error_r)
{
	struct bdb_store *b = bdb_of(q);
	uint8_t start[QUEUE_RECORD_INDEX_KEY_LEN] = { 0 };
	DB_TXN *txn = NULL;
	DBC *cursor = NULL;
	DBT skey, pkey, pdata;
	int ret, rc = 0;

	dbt_init(&skey, start, sizeof start);
	dbt_init(&pkey, NULL, 0);
	dbt_init(&pdata, NULL, 0);
	/* Read-committed: a long scan holds no more than the current page's
	 * locks, so no size of queue can exhaust the lock table. */
	quiet(true);
	ret = b->env->txn_begin(b->env, NULL, &txn, DB_READ_COMMITTED);
	if (ret != 0) {
		quiet(false);
		return fail(b, ret, error_r, "scan: begin");
	}
	if (order == QUEUE_SCAN_BY_DUE) {
		ret = b->due->cursor(b->due, txn, &cursor, 0);
		if (ret == 0)
			ret = cursor->pget(cursor, &skey, &pkey, &pdata, DB_SET_RANGE);
	} else {
		ret = b->db->cursor(b->db, txn, &cursor, 0);
		if (ret == 0)
			ret = cursor->get(cursor, &pkey, &pdata, DB_NEXT);
	}
	quiet(false);
	while (ret == 0) {
		if (order == QUEUE_SCAN_BY_DUE) {
			if (skey.size != QUEUE_RECORD_INDEX_KEY_LEN) {
				rc = queue_store_error(error_r, "queue store %s: scan: due index key of %u bytes",
						       b->dir, skey.size);
				break;
			}
			if (get_u64(skey.data) > now)
				break;
		}
		rc = fn(pkey.data, pkey.size, pdata.data, pdata.size, arg, error_r);
		if (rc != 0)
			break;
		quiet(true);
		if (order == QUEUE_SCAN_BY_DUE)
			ret = cursor->pget(cursor, &skey, &pkey, &pdata, DB_NEXT);
		else
			ret = cursor->get(cursor, &pkey, &pdata, DB_NEXT);
		quiet(false);
	}
	if (ret == DB_NOTFOUND)
		ret = 0;
	quiet(true);
	if (cursor != NULL) {
		int ret2 = cursor->close(cursor);

		if (ret == 0)
			ret = ret2;
	}
	/* read-only: the commit writes nothing to the log */
	if (ret == 0) {
		ret = txn->commit(txn, DB_TXN_NOSYNC);
	} else {
		txn->abort(txn);
	}
	quiet(false);
	if (ret != 0) {
		if (rc < 0)
			free(*error_r);
		return fail(b, ret, error_r, "scan");
	}
	return rc < 0 ? -1 : 0;
}

static int bdb_checkpoint(struct queue_store *q, char **error_r)
{
	struct bdb_store *b = bdb_of(q);
	int ret;

	/* Skipped by libdb when nothing was logged since the last one. With
	 * DB_LOG_AUTO_REMOVE it also lets the log files before it go. */
	quiet(true);
	ret = b->env->txn_checkpoint(b->env, 0, 0, 0);
	quiet(false);
	return ret == 0 ? 0 : fail(b, ret, error_r, "checkpoint");
}

static int bdb_stats(struct queue_store *q, struct queue_store_stats *st, char **error_r)
{
	struct bdb_store *b = bdb_of(q);
	DB_LOG_STAT *ls = NULL;
	int ret;

	quiet(true);
	ret = b->env->log_stat(b->env, &ls, 0);
	quiet(false);
	if (ret != 0)
		return fail(b, ret, error_r, "log statistics");
	st->log_syncs = ls->st_scount;
	st->log_writes = ls->st_wcount;
	st->log_bytes = (unsigned long long)ls->st_w_mbytes * 1024 * 1024 + ls->st_w_bytes;
	free(ls);
	return 0;
}

/* close_handles - close whatever is open, in order: secondary, primary,
 * environment, then the lock. Errors are logged: nothing can be done. */
static void close_handles(struct bdb_store *b)
{
	int ret;

	quiet(true);
	if (b->due != NULL && (ret = b->due->close(b->due, 0)) != 0)
		log_warn("queue store %s: close %s: %s", b->dir, QUEUE_DUE_FILE, db_strerror(ret));
	if (b->db != NULL && (ret = b->db->close(b->db, 0)) != 0)
		log_warn("queue store %s: close %s: %s", b->dir, QUEUE_DB_FILE, db_strerror(ret));
	if (b->env != NULL && (ret = b->env->close(b->env, 0)) != 0)
		log_warn("queue store %s: close environment: %s", b->dir, db_strerror(ret));
	quiet(false);
	b->due = NULL;
	b->db = NULL;
	b->env = NULL;
	if (b->lock_fd >= 0)
		close(b->lock_fd); /* releases the flock */
	b->lock_fd = -1;
}

static void bdb_close(struct queue_store *q)
{
	struct bdb_store *b = bdb_of(q);
	int ret;

	if (!q->failed && b->env != NULL) {
		quiet(true);
		ret = b->env->log_flush(b->env, NULL);
		if (ret == 0)
			ret = b->env->txn_checkpoint(b->env, 0, 0, 0);
		quiet(false);
		if (ret != 0)
			log_warn("queue store %s: closing: %s", b->dir, db_strerror(ret));
	}
	close_handles(b);
	free(b->dir);
	free(b);
}

static const struct queue_store_ops bdb_ops = {
	.name = "bdb",
	.put = bdb_put,
	.del = bdb_del,
	.commit = bdb_commit,
	.get = bdb_get,
	.scan = bdb_scan,
	.checkpoint = bdb_checkpoint,
	.stats = bdb_stats,
	.close = bdb_close,
};

/* lock_dir - take dir/.lock for this open (flock: per open file, so a
 * second open in the same process is refused too); write our pid in it
 * for the error message of the next would-be owner. */
static int lock_dir(struct bdb_store *b, char **error_r)
{
	char *path = xasprintf("%s/%s", b->dir, QUEUE_LOCK_FILE);
	char pidbuf[32];
	int fd, len;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		queue_store_error(error_r, "queue store %s: open %s: %s", b->dir, path, strerror(errno));
		free(path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int saved = errno;
		ssize_t n = pread(fd, pidbuf, sizeof pidbuf - 1, 0);

		pidbuf[n > 0 ? n : 0] = '\0';
		pidbuf[strcspn(pidbuf, "\n")] = '\0';
		if (saved == EWOULDBLOCK)
			queue_store_error(error_r, "queue store %s is in use by another owner (pid %s)", b->dir,
					  pidbuf[0] != '\0' ? pidbuf : "unknown");
		else
			queue_store_error(error_r, "queue store %s: lock %s: %s", b->dir, path, strerror(saved));
		close(fd);
		free(path);
		return -1;
	}
	free(path);
	/* best effort: on a full disk the pid may not fit */
	len = snprintf(pidbuf, sizeof pidbuf, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pidbuf, (size_t)len, 0) != len)
		log_warn("queue store %s: writing the pid into %s: %m", b->dir, QUEUE_LOCK_FILE);
	b->lock_fd = fd;
	return 0;
}

/* open_databases - the primary, the due index and their association, in
 * one transaction. associate() is not stored in the files: it must run on
 * every open, or writes would stop updating the index. DB_CREATE on it
 * builds the index from the primary when the index file is new. */
static int open_databases(struct bdb_store *b, char **error_r)
{
	DB_TXN *txn = NULL;
	int ret;
	const char *step = "begin";

	quiet(true);
	ret = b->env->txn_begin(b->env, NULL, &txn, 0);
	if (ret != 0)
		goto out;
	step = "create " QUEUE_DB_FILE;
	if ((ret = db_create(&b->db, b->env, 0)) != 0)
		goto abort;
	if ((ret = b->db->set_pagesize(b->db, QUEUE_PAGE_SIZE)) != 0 ||
	    (ret = b->db->set_flags(b->db, DB_CHKSUM)) != 0)
		goto abort;
	step = "open " QUEUE_DB_FILE;
	if ((ret = b->db->open(b->db, txn, QUEUE_DB_FILE, NULL, DB_BTREE, DB_CREATE, 0600)) != 0)
		goto abort;
	step = "create " QUEUE_DUE_FILE;
	if ((ret = db_create(&b->due, b->env, 0)) != 0)
		goto abort;
	if ((ret = b->due->set_pagesize(b->due, QUEUE_PAGE_SIZE)) != 0 ||
	    (ret = b->due->set_flags(b->due, DB_DUPSORT | DB_CHKSUM)) != 0)
		goto abort;
	step = "open " QUEUE_DUE_FILE;
	if ((ret = b->due->open(b->due, txn, QUEUE_DUE_FILE, NULL, DB_BTREE, DB_CREATE, 0600)) != 0)
		goto abort;
	step = "associate the due index";
	if ((ret = b->db->associate(b->db, txn, b->due, by_next_try, DB_CREATE)) != 0)
		goto abort;
	step = "commit";
	ret = txn->commit(txn, 0);
	goto out;
abort:
	txn->abort(txn);
out:
	quiet(false);
	return ret == 0 ? 0 : fail(b, ret, error_r, "%s", step);
}

struct queue_store *queue_store_open_bdb(const char *dir, char **error_r)
{
	struct bdb_store *b = xnew(struct bdb_store);
	int major = 0, minor = 0, ret;
	const char *step;

	queue_store_init(&b->q, &bdb_ops);
	b->lock_fd = -1;
	b->dir = xstrdup(dir);
	(void)db_version(&major, &minor, NULL);
	if (major != DB_VERSION_MAJOR || minor != DB_VERSION_MINOR) {
		queue_store_error(error_r, "queue store %s: built with Berkeley DB %d.%d, running with %d.%d", dir,
				  DB_VERSION_MAJOR, DB_VERSION_MINOR, major, minor);
		goto fail;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		queue_store_error(error_r, "queue store %s: mkdir: %s", dir, strerror(errno));
		goto fail;
	}
	if (lock_dir(b, error_r) < 0)
		goto fail;

	quiet(true);
	step = "create environment";
	if ((ret = db_env_create(&b->env, 0)) != 0) {
		b->env = NULL;
		goto db_fail;
	}
	b->env->app_private = b;
	b->env->set_errcall(b->env, db_errcall);
	b->env->set_msgcall(b->env, db_msgcall);
	step = "configure environment";
	if ((ret = b->env->set_event_notify(b->env, db_event)) != 0 ||
	    (ret = b->env->set_cachesize(b->env, 0, QUEUE_CACHE_SIZE, 1)) != 0 ||
	    (ret = b->env->set_lg_max(b->env, QUEUE_LOG_FILE_SIZE)) != 0 ||
	    (ret = b->env->log_set_config(b->env, DB_LOG_AUTO_REMOVE, 1)) != 0)
		goto db_fail;
	step = "open environment (with recovery)";
	ret = b->env->open(b->env, dir,
			   DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK | DB_INIT_LOG | DB_INIT_MPOOL | DB_RECOVER |
				   DB_PRIVATE,
			   0600);
	if (ret != 0)
		goto db_fail;
	quiet(false);
	if (open_databases(b, error_r) < 0)
		goto fail;
	return &b->q;

db_fail:
	quiet(false);
	fail(b, ret, error_r, "%s", step);
fail:
	free(b->q.failed_reason);
	close_handles(b);
	free(b->dir);
	free(b);
	return NULL;
}

int xbdb_queue_inject_panic(struct queue_store *q)
{
	struct bdb_store *b;
	int ret;

	if (q->ops != &bdb_ops)
		return -1;
	b = bdb_of(q);
	quiet(true);
	ret = b->env->set_flags(b->env, DB_PANIC_ENVIRONMENT, 1);
	quiet(false);
	/* the panic event has marked the store failed; be sure of it */
	queue_store_set_failed(q, "injected panic (DB_PANIC_ENVIRONMENT)");
	return ret == 0 || ret == DB_RUNRECOVERY ? 0 : -1;
}
