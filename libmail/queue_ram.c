/* queue_ram.c - the in-memory queue store backend, for unit tests of qmgr.
 *
 * Same semantics as the Berkeley DB backend: records (the same encoded
 * bytes) keyed by ID, the due index by the key in each record's header,
 * ties in ID order; changes visible at once, durable at commit. "Durable"
 * here means "survives queue_store_ram_crash()": every staged change is
 * journalled with what it replaced, and a crash rolls the journal back.
 *
 * Records live in an array sorted by ID; the due scan sorts a snapshot.
 * Fine for tests, not meant for large queues.
 */
#include "config.h"
#define QUEUE_STORE_BACKEND 1
#include "queue_store.h"
#include "../libutil/buf.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"

#include <stdlib.h>
#include <string.h>

struct ram_record {
	char id[QUEUE_ID_SIZE];
	uint8_t *data;
	size_t len;
};

/* One staged change: the record as it was before (data NULL: absent). */
struct ram_undo {
	struct ram_record before;
};

struct ram_store {
	struct queue_store q; /* first: the common part */
	struct ram_record *recs;
	size_t count, cap;
	struct ram_undo *journal;
	size_t journal_count, journal_cap;
	unsigned fail_ops;
	unsigned fail_count;
};

static const struct queue_store_ops ram_ops;

static struct ram_store *ram_of(struct queue_store *q)
{
	if (q->ops != &ram_ops)
		log_panic("queue store: RAM backend hook used on a %s store", q->ops->name);
	return (struct ram_store *)q;
}

/* injected - whether this call of op is one the test asked to fail. */
static int injected(struct ram_store *r, unsigned op, const char *what, char **error_r)
{
	if ((r->fail_ops & op) == 0 || r->fail_count == 0)
		return 0;
	if (--r->fail_count == 0)
		r->fail_ops = 0;
	return queue_store_error(error_r, "queue store: %s: injected failure (No space left on device)", what);
}

/* find - the index of id, or where it would go (*found false). */
static size_t find(const struct ram_store *r, const char *id, bool *found)
{
	size_t lo = 0, hi = r->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(r->recs[mid].id, id, QUEUE_ID_LEN);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static void journal_add(struct ram_store *r, const char *id, uint8_t *data, size_t len)
{
	struct ram_undo *u;

	if (r->journal_count == r->journal_cap) {
		r->journal_cap = r->journal_cap == 0 ? 16 : size_mul(r->journal_cap, 2);
		r->journal = xreallocarray(r->journal, r->journal_cap, sizeof *r->journal);
	}
	u = &r->journal[r->journal_count++];
	memcpy(u->before.id, id, QUEUE_ID_LEN);
	u->before.id[QUEUE_ID_LEN] = '\0';
	u->before.data = data;
	u->before.len = len;
}

static void journal_clear(struct ram_store *r)
{
	for (size_t i = 0; i < r->journal_count; i++)
		free(r->journal[i].before.data);
	r->journal_count = 0;
}

/* set - make id hold data (owned by the store now; NULL: remove it);
 * returns what it held before (NULL: nothing), for the journal. */
static uint8_t *set(struct ram_store *r, const char *id, uint8_t *data, size_t len, size_t *old_len_r)
{
	bool found;
	size_t i = find(r, id, &found);
	uint8_t *old = NULL;

	*old_len_r = 0;
	if (found) {
		old = r->recs[i].data;
		*old_len_r = r->recs[i].len;
		if (data != NULL) {
			r->recs[i].data = data;
			r->recs[i].len = len;
		} else {
			memmove(&r->recs[i], &r->recs[i + 1], (r->count - i - 1) * sizeof *r->recs);
			r->count--;
		}
		return old;
	}
	if (data == NULL)
		return NULL;
	if (r->count == r->cap) {
		r->cap = r->cap == 0 ? 16 : size_mul(r->cap, 2);
		r->recs = xreallocarray(r->recs, r->cap, sizeof *r->recs);
	}
	memmove(&r->recs[i + 1], &r->recs[i], (r->count - i) * sizeof *r->recs);
	memcpy(r->recs[i].id, id, QUEUE_ID_LEN);
	r->recs[i].id[QUEUE_ID_LEN] = '\0';
	r->recs[i].data = data;
	r->recs[i].len = len;
	r->count++;
	return NULL;
}

static int ram_put(struct queue_store *q, const char *id, const uint8_t *rec, size_t len, char **error_r)
{
	struct ram_store *r = ram_of(q);
	uint8_t *copy, *old;
	size_t old_len;

	if (injected(r, QUEUE_RAM_PUT, "put", error_r) < 0)
		return -1;
	copy = xmalloc(len);
	memcpy(copy, rec, len);
	old = set(r, id, copy, len, &old_len);
	journal_add(r, id, old, old_len);
	return 0;
}

static int ram_del(struct queue_store *q, const char *id, char **error_r)
{
	struct ram_store *r = ram_of(q);
	uint8_t *old;
	size_t old_len;

	if (injected(r, QUEUE_RAM_DELETE, "delete", error_r) < 0)
		return -1;
	old = set(r, id, NULL, 0, &old_len);
	journal_add(r, id, old, old_len);
	return 0;
}

static int ram_commit(struct queue_store *q, char **error_r)
{
	struct ram_store *r = ram_of(q);

	if (injected(r, QUEUE_RAM_COMMIT, "commit", error_r) < 0)
		return -1;
	journal_clear(r);
	return 0;
}

static int ram_get(struct queue_store *q, const char *id, struct buf *rec_r, char **error_r)
{
	struct ram_store *r = ram_of(q);
	bool found;
	size_t i;

	if (injected(r, QUEUE_RAM_READ, "get", error_r) < 0)
		return -1;
	i = find(r, id, &found);
	if (!found)
		return 0;
	buf_append(rec_r, r->recs[i].data, r->recs[i].len);
	return 1;
}

struct due_entry {
	uint64_t key;
	size_t index;
};

static int due_cmp(const void *a, const void *b)
{
	const struct due_entry *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	/* the records are sorted by ID, so index order is ID order */
	return x->index < y->index ? -1 : x->index > y->index ? 1 : 0;
}

static int ram_scan(struct queue_store *q, enum queue_scan_order order, uint64_t now, queue_scan_fn *fn, void *arg,
		    char **error_r)
{
	struct ram_store *r = ram_of(q);
	struct due_entry *due;
	size_t n = 0;
	int rc = 0;

	if (injected(r, QUEUE_RAM_READ, "scan", error_r) < 0)
		return -1;
	/* The shared code refuses calls on the store while fn runs, so the
	 * array cannot change under the loops. */
	if (order == QUEUE_SCAN_BY_ID) {
		for (size_t i = 0; i < r->count && rc == 0; i++)
			rc = fn(r->recs[i].id, QUEUE_ID_LEN, r->recs[i].data, r->recs[i].len, arg, error_r);
		return rc < 0 ? -1 : 0;
	}
	due = xcalloc(r->count, sizeof *due);
	for (size_t i = 0; i < r->count; i++) {
		uint64_t key;

		if (queue_record_index_key(r->recs[i].data, r->recs[i].len, &key) && key <= now) {
			due[n].key = key;
			due[n].index = i;
			n++;
		}
	}
	qsort(due, n, sizeof *due, due_cmp);
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct ram_record *rec = &r->recs[due[i].index];

		rc = fn(rec->id, QUEUE_ID_LEN, rec->data, rec->len, arg, error_r);
	}
	free(due);
	return rc < 0 ? -1 : 0;
}

static int ram_checkpoint(struct queue_store *q, char **error_r)
{
	return injected(ram_of(q), QUEUE_RAM_CHECKPOINT, "checkpoint", error_r);
}

static int ram_stats(struct queue_store *q, struct queue_store_stats *st, char **error_r)
{
	(void)q;
	(void)error_r;
	/* one "sync" per commit: what the BDB backend does, by design */
	st->log_syncs = st->commits;
	st->log_writes = st->commits;
	st->log_bytes = 0;
	return 0;
}

static void ram_close(struct queue_store *q)
{
	struct ram_store *r = ram_of(q);

	journal_clear(r);
	free(r->journal);
	for (size_t i = 0; i < r->count; i++)
		free(r->recs[i].data);
	free(r->recs);
	free(r);
}

static const struct queue_store_ops ram_ops = {
	.name = "ram",
	.put = ram_put,
	.del = ram_del,
	.commit = ram_commit,
	.get = ram_get,
	.scan = ram_scan,
	.checkpoint = ram_checkpoint,
	.stats = ram_stats,
	.close = ram_close,
};

struct queue_store *queue_store_open_ram(void)
{
	struct ram_store *r = xnew(struct ram_store);

	queue_store_init(&r->q, &ram_ops);
	return &r->q;
}

void queue_store_ram_fail(struct queue_store *q, unsigned ops, unsigned count)
{
	struct ram_store *r = ram_of(q);

	r->fail_ops = count > 0 ? ops : 0;
	r->fail_count = count;
}

void queue_store_ram_crash(struct queue_store *q)
{
	struct ram_store *r = ram_of(q);

	if (q->busy)
		log_panic("queue_store_ram_crash: called from inside a scan callback");
	/* newest first, so that the oldest "before" wins */
	while (r->journal_count > 0) {
		struct ram_undo *u = &r->journal[--r->journal_count];
		size_t len;

		free(set(r, u->before.id, u->before.data, u->before.len, &len));
	}
	q->staged = 0;
}

void queue_store_ram_panic(struct queue_store *q)
{
	(void)ram_of(q);
	queue_store_set_failed(q, "injected panic (as Berkeley DB's DB_RUNRECOVERY)");
}
