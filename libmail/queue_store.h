/* queue_store.h - durable storage of queue envelopes, behind a small
 * vtable: Berkeley DB for qmgr (xbdb_queue.c), RAM for unit tests
 * (queue_ram.c). Both backends have the same semantics; see
 * queue_store.md for the record format and the durability contract.
 *
 * One owner: the store is opened by one process (qmgr), used from one
 * thread, never across fork.
 *
 * Writes are staged, then made durable in a batch:
 *
 *   queue_store_put / queue_store_delete  stage one change. Each is atomic
 *       on its own and visible to reads at once (read-your-writes), but
 *       not yet durable.
 *   queue_store_commit  makes everything staged so far durable with one
 *       log flush. Only after it returns 0 may the caller acknowledge
 *       anything staged ("250 queued", "delivered" to an agent).
 *
 * Errors: every call returns < 0 with a new string in *error_r (free it)
 * on failure. A failed put or delete changed nothing and leaves the
 * other staged changes alone (they are still staged). A failed commit
 * guarantees nothing about what was staged: any of it may or may not
 * survive a crash (the caller answers 451 4.3.0 for all of it; a change
 * that survives unacknowledged only makes a duplicate, which SMTP
 * tolerates). What survives a crash is always a prefix of the staged
 * changes in the order they were made. The store stays usable after
 * an error, unless queue_store_failed() says otherwise (Berkeley DB
 * asked for recovery): then every call fails, and the owner must exit
 * so that master restarts it and the next open recovers.
 *
 * Strings: in envelopes given to queue_store_put a NULL string means "";
 * envelopes coming out of the store always have non-NULL strings, owned
 * by the envelope (queue_envelope_free).
 *
 * No call may be made on the store from inside a queue_store_foreach or
 * queue_store_foreach_due callback; such calls fail.
 */
#ifndef YB_QUEUE_STORE_H
#define YB_QUEUE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue_id.h"

struct buf;

/* Limits checked by queue_store_put (and by the decoder): longer values
 * are refused, not cut. */
#define QUEUE_ADDRESS_MAX 1024  /* sender, recipient, ORCPT */
#define QUEUE_ENVID_MAX 512
#define QUEUE_CLIENT_MAX 1024
#define QUEUE_STATUS_MAX 16     /* "4.2.2"; "" or class.subject.detail */
#define QUEUE_RESPONSE_MAX 4096 /* last response text */
#define QUEUE_RCPT_MAX 10000    /* recipients per envelope */
#define QUEUE_RECORD_MAX (8 * 1024 * 1024) /* one encoded envelope */

enum queue_rcpt_state {
	QUEUE_RCPT_PENDING,
	QUEUE_RCPT_DEFERRED,
	QUEUE_RCPT_DELIVERED,
	QUEUE_RCPT_FAILED,
};

struct queue_rcpt {
	char *address;
	char *orcpt;         /* ORCPT as given, or "" */
	char *rcpt_to;       /* the RCPT TO address as the client gave it, or "" */
	int notify;          /* NOTIFY bitmask (qmgr's), >= 0 */
	enum queue_rcpt_state state;
	int attempts;        /* >= 0 */
	long long next_try;  /* unix seconds, >= 0; used while PENDING/DEFERRED */
	char *last_status;   /* "4.2.2" or "" */
	char *last_response; /* text or "" */
};

struct queue_envelope {
	char id[QUEUE_ID_SIZE];
	long long arrival; /* unix seconds, >= 0 */
	char *sender;      /* "" for the null sender */
	long long size;    /* bytes, >= 0 */
	char *envid;       /* ENVID or "" */
	char *ret;         /* "FULL", "HDRS" or "" */
	char *client;      /* client description for logs and DSNs */
	bool held;
	bool warned;       /* the sender has had the delay warning */
	struct queue_rcpt *rcpts;
	size_t rcpt_count;
};

/* queue_envelope_free - free the strings and recipients (not e itself);
 * e is zeroed after. Accepts NULL. */
void queue_envelope_free(struct queue_envelope *e);

/* queue_envelope_list_free - free count envelopes and the array from
 * queue_store_due; sets *list to NULL. */
void queue_envelope_list_free(struct queue_envelope **list, size_t count);

/* queue_envelope_copy - a deep copy of src in *dst (new memory). */
void queue_envelope_copy(struct queue_envelope *dst, const struct queue_envelope *src);

/* queue_envelope_next_try - the earliest next_try of the PENDING and
 * DEFERRED recipients; -1 if there is nothing left to do. Holding does
 * not change it (but keeps the envelope out of the due index). */
long long queue_envelope_next_try(const struct queue_envelope *e);

/* queue_envelope_check - whether e can be stored: a valid ID, values in
 * range, strings within the limits above. -1 with a static reason. */
int queue_envelope_check(const struct queue_envelope *e, const char **error_r);

/* queue_rcpt_state_name - "pending", "deferred", "delivered", "failed". */
const char *queue_rcpt_state_name(enum queue_rcpt_state state);

/* Records: the serialised form of an envelope (see queue_store.md). The
 * backends store these; they are exposed for tests and tools. */

/* queue_record_encode - append e's record to out; -1 (out unchanged) with
 * a new error string if e fails queue_envelope_check. */
int queue_record_encode(const struct queue_envelope *e, struct buf *out, char **error_r);

/* queue_record_decode - parse a record strictly into *e_r (new memory).
 * Anything malformed, of an unknown version, out of range or
 * inconsistent is refused: -1 with a new error string, *e_r zeroed. */
int queue_record_decode(const uint8_t *rec, size_t len, struct queue_envelope *e_r, char **error_r);

/* queue_record_index_key - the due-index key stored in a record's fixed
 * header: true and the key (next attempt time) if the record belongs in
 * the due index, false if not (held, nothing to do, or no valid header). */
bool queue_record_index_key(const uint8_t *rec, size_t len, uint64_t *key_r);

/* The store. */
struct queue_store;

/* queue_store_open_bdb - open (create if missing) the Berkeley DB store in
 * dir, creating dir (mode 0700) if it is missing. Takes an exclusive lock
 * on dir/.lock first: a second owner (another process, or a second open
 * in this one) fails with an error naming the holder's pid. Recovery
 * always runs. NULL with a new error string on failure. */
struct queue_store *queue_store_open_bdb(const char *dir, char **error_r);

/* queue_store_open_ram - an empty in-memory store (for tests). */
struct queue_store *queue_store_open_ram(void);

/* queue_store_close - make anything staged durable if possible (errors
 * are logged), close, free, set *store to NULL. Accepts NULL. */
void queue_store_close(struct queue_store **store);

/* queue_store_backend - "bdb" or "ram". */
const char *queue_store_backend(const struct queue_store *q);

/* queue_store_put - stage inserting e, or replacing the envelope with e's
 * ID. The store keeps its own copy. */
int queue_store_put(struct queue_store *q, const struct queue_envelope *e, char **error_r);

/* queue_store_delete - stage removing the envelope id; 0 also when there
 * was none. */
int queue_store_delete(struct queue_store *q, const char *id, char **error_r);

/* queue_store_commit - make every change staged since the last successful
 * commit durable, with one log flush (none when nothing is staged). */
int queue_store_commit(struct queue_store *q, char **error_r);

/* queue_store_staged - how many changes are staged but not yet committed. */
size_t queue_store_staged(const struct queue_store *q);

/* Reads see committed and staged changes alike. */

/* queue_store_get - 1 and the envelope in *e_r (new memory), 0 if there
 * is none, -1 on error (also for a corrupt record). */
int queue_store_get(struct queue_store *q, const char *id, struct queue_envelope *e_r, char **error_r);

/* queue_store_due - the envelopes whose next attempt is <= now, not held,
 * in order of next attempt (ties in ID order, i.e. by arrival), at most
 * max of them: *list_r is a new array of *count_r envelopes (free with
 * queue_envelope_list_free; NULL when none). Corrupt records are logged
 * and skipped. */
int queue_store_due(struct queue_store *q, long long now, size_t max, struct queue_envelope **list_r,
		    size_t *count_r, char **error_r);

/* queue_store_foreach - call fn for every envelope in ID (arrival) order,
 * stopping early when fn returns non-zero. Corrupt records are logged and
 * skipped. 0 when done or stopped by fn, -1 on a store error. */
typedef int queue_store_foreach_fn(const struct queue_envelope *e, void *arg);
int queue_store_foreach(struct queue_store *q, queue_store_foreach_fn *fn, void *arg, char **error_r);

/* queue_store_foreach_due - like queue_store_due, but calls fn for each
 * due envelope in order until fn returns non-zero. skip (may be NULL) is
 * asked about each ID first: a true answer passes the record over without
 * decoding it, which keeps a scan cheap when most due envelopes are
 * already in the caller's hands. */
typedef bool queue_store_skip_fn(const char *id, void *arg);
int queue_store_foreach_due(struct queue_store *q, long long now, queue_store_skip_fn *skip, void *skip_arg,
			    queue_store_foreach_fn *fn, void *arg, char **error_r);

/* queue_store_checkpoint - periodic maintenance (BDB: checkpoint, which
 * lets old log files go); cheap when nothing changed. Call it each minute. */
int queue_store_checkpoint(struct queue_store *q, char **error_r);

/* queue_store_failed - whether the store is unusable until the owner
 * restarts (Berkeley DB said DB_RUNRECOVERY). */
bool queue_store_failed(const struct queue_store *q);

struct queue_store_stats {
	unsigned long long puts;        /* successful queue_store_put calls */
	unsigned long long deletes;     /* successful queue_store_delete calls */
	unsigned long long commits;     /* successful commits that had something staged */
	unsigned long long checkpoints; /* successful checkpoints */
	unsigned long long log_syncs;   /* BDB: fsyncs of the log (incl. checkpoints); RAM: = commits */
	unsigned long long log_writes;  /* BDB: write()s to the log; RAM: = commits */
	unsigned long long log_bytes;   /* BDB: bytes written to the log since open; RAM: 0 */
	size_t staged;                  /* changes staged, not yet committed */
};

/* queue_store_stats - counters since open. */
int queue_store_stats(struct queue_store *q, struct queue_store_stats *st_r, char **error_r);

/* RAM backend test hooks (log_panic on a store of another backend). */
#define QUEUE_RAM_PUT 0x01u
#define QUEUE_RAM_DELETE 0x02u
#define QUEUE_RAM_COMMIT 0x04u
#define QUEUE_RAM_READ 0x08u /* get, due, foreach */
#define QUEUE_RAM_CHECKPOINT 0x10u

/* queue_store_ram_fail - make the next count calls of the operations in
 * ops fail (as a full disk would) without changing anything. */
void queue_store_ram_fail(struct queue_store *q, unsigned ops, unsigned count);

/* queue_store_ram_crash - forget every change not yet committed, as a
 * kill -9 of the owner before the log flush may. */
void queue_store_ram_crash(struct queue_store *q);

/* queue_store_ram_panic - make the store fail for good, as after
 * Berkeley DB's DB_RUNRECOVERY. */
void queue_store_ram_panic(struct queue_store *q);

#ifdef QUEUE_STORE_BACKEND
/* The backend side, for queue_store.c, xbdb_queue.c and queue_ram.c only.
 * Backends store opaque records under fixed-length IDs and keep the due
 * index by queue_record_index_key(); the shared code does the rest. */

/* A scan callback: id[0..id_len) is the key as stored (not checked yet),
 * rec[0..len) the record, valid only during the call. Return 0 to go on,
 * > 0 to stop, < 0 to stop with an error (already in *error_r). */
typedef int queue_scan_fn(const char *id, size_t id_len, const uint8_t *rec, size_t len, void *arg,
			  char **error_r);

enum queue_scan_order { QUEUE_SCAN_BY_ID, QUEUE_SCAN_BY_DUE };

/* Where a record keeps its due-index key: big-endian, so that byte order
 * is time order. Valid only when queue_record_index_key() says true. */
#define QUEUE_RECORD_INDEX_KEY_OFFSET 4
#define QUEUE_RECORD_INDEX_KEY_LEN 8

struct queue_store_ops {
	const char *name;
	int (*put)(struct queue_store *q, const char *id, const uint8_t *rec, size_t len, char **error_r);
	int (*del)(struct queue_store *q, const char *id, char **error_r);
	int (*commit)(struct queue_store *q, char **error_r);
	/* get: 1 and the record appended to rec_r, 0 if none, -1 error */
	int (*get)(struct queue_store *q, const char *id, struct buf *rec_r, char **error_r);
	/* scan: QUEUE_SCAN_BY_DUE visits records with index key <= now
	 * in (key, id) order; QUEUE_SCAN_BY_ID all records in ID order. */
	int (*scan)(struct queue_store *q, enum queue_scan_order order, uint64_t now, queue_scan_fn *fn, void *arg,
		    char **error_r);
	int (*checkpoint)(struct queue_store *q, char **error_r);
	/* stats: fill the backend's log counters */
	int (*stats)(struct queue_store *q, struct queue_store_stats *st, char **error_r);
	void (*close)(struct queue_store *q);
};

struct queue_store {
	const struct queue_store_ops *ops;
	bool busy;          /* inside a scan: calls on the store are refused */
	bool failed;        /* unusable until restart */
	char *failed_reason;
	size_t staged;
	struct queue_store_stats stats;
};

/* queue_store_init - fill the common part of a backend's new store. */
void queue_store_init(struct queue_store *q, const struct queue_store_ops *ops);

/* queue_store_set_failed - mark q unusable for reason (kept for errors). */
void queue_store_set_failed(struct queue_store *q, const char *reason);

/* queue_store_error - *error_r = a new formatted string; returns -1. */
int queue_store_error(char **error_r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#endif

#endif
