/* qmgr.h - the queue manager's internal types. */
#ifndef YB_QMGR_H
#define YB_QMGR_H

#include <stdbool.h>
#include <stdint.h>

#include "../libmail/params.h"
#include "../libmail/queue_layout.h"
#include "../libmail/queue_store.h"
#include "../libutil/ipc.h"

struct event;
struct fileop_pool;
struct ipc_async;
struct ipc_peer;
struct ipc_server;
struct service_ctx;

/* Paths inside the queue directory (qmgr's working directory, chrooted
 * or not); content/ and spare/ are in libmail/queue_layout.h. */
#define QMGR_STORE_DIR "db"
#define QMGR_AUTH_SOCKET "private/auth"
#define QMGR_LOCAL_SOCKET "private/local"
#define QMGR_SMTP_SOCKET "private/smtp"
/* A delivery to another server may take a while: DNS, several hosts,
 * the data timeout (smtp_data_timeout). */
#define QMGR_SMTP_TIMEOUT_S 3600
#define QMGR_LOCAL_CONNECTIONS 8 /* at most this many local processes busy at once */
#define QMGR_SCAN_BATCH 200
#define QMGR_ACTIVE_MAX 2000     /* messages in flight at once */
#define QMGR_ACTIVE_BUCKETS 4096 /* hash of in-flight IDs */
#define QMGR_COMMIT_DELAY_MS 20

/* A reply owed to an enqueue client once the staged write is durable. */
struct qmgr_ack {
	struct ipc_peer *peer;
	int64_t req;
	struct qmgr_ack *next;
};

/* A content file whose envelope deletion is staged. */
struct qmgr_unlink {
	char id[QUEUE_ID_SIZE];
	struct qmgr_unlink *next;
};

/* A message with deliveries in flight. */
/* A remote target of one recipient's attempt, waiting for its batch. */
struct qmgr_remote {
	struct attempt *attempt;
	char *address;
	const char *orcpt;
	int notify;
};

struct qmgr_active {
	struct qmgr *q;
	struct qmgr_active *hnext; /* in q->active_hash */
	struct qmgr_active **pprev; /* the pointer to us in q->active */
	struct queue_envelope env;
	int content_fd;
	int outstanding;       /* recipient deliveries not yet answered */
	/* Started right after its commit: never handed to a delivery agent
	 * before. Anything a scan starts may have been (a crash or a lost
	 * answer hides that), and local then looks for a repeat. */
	bool first_hand_over;
	int expanding;          /* recipients whose auth expansion is pending */
	struct qmgr_remote *remotes; /* remote targets, sent to smtp once all are known */
	size_t nremotes;
	struct qmgr_active *next;
};

struct qmgr {
	struct service_ctx *svc;
	struct yb_params *params;
	struct queue_store *store;
	struct ipc_server *enqueue;
	struct ipc_server *control; /* listener 1: qmgr-control */
	struct ipc_async *auth;
	struct ipc_async *local[QMGR_LOCAL_CONNECTIONS];
	struct ipc_async *smtp;
	int local_next;
	struct qmgr_ack *acks;     /* staged, waiting for the commit */
	struct event *commit_ev;
	struct event *commit_later_ev; /* a commit that may wait a little */
	struct event *scan_ev;
	struct event *sweep_ev;
	struct qmgr_active *active;
	struct qmgr_active *active_hash[QMGR_ACTIVE_BUCKETS];
	size_t active_count;
	struct qmgr_unlink *unlinks; /* content files to remove after the commit */
	struct fileop_pool *fileops; /* removes them off the event loop */
	/* Envelopes enqueued since the last commit: started as soon as it
	 * succeeds, without a scan of the queue for each commit. */
	struct queue_envelope *fresh;
	size_t fresh_count, fresh_cap;
	bool rescan;               /* the next commit made other mail due: scan */
	unsigned long long enqueued; /* envelopes queued (committed) since start */
	bool backlog;              /* due mail was left out of a full active set */
};

/* qmgr_enqueue.c */
void qmgr_enqueue_request(struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg, void *ctx);
void qmgr_commit_soon(struct qmgr *q);
/* qmgr_commit_later - for changes that may wait up to QMGR_COMMIT_DELAY_MS
 * for their log flush (a delivery's outcome): they share the next one
 * that enqueues need anyway. */
void qmgr_commit_later(struct qmgr *q);
/* qmgr_reply_after_commit - answer {status="ok"} (or the commit's error)
 * to req once everything staged so far is durable. */
void qmgr_reply_after_commit(struct qmgr *q, struct ipc_peer *peer, int64_t req);
void qmgr_on_commit(int fd, short what, void *arg);

/* qmgr_deliver.c */
void qmgr_scan_soon(struct qmgr *q);
/* qmgr_start_fresh - start delivering a just-committed envelope (ownership
 * moves); when too much is in flight it is left for the periodic scan. */
void qmgr_start_fresh(struct qmgr *q, struct queue_envelope *env);
void qmgr_on_scan(int fd, short what, void *arg);
long long qmgr_backoff(const struct yb_params *p, int attempts);

/* qmgr_control.c */
void qmgr_control_request(struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg, void *ctx);

/* qmgr_sweep.c */
void qmgr_on_sweep(int fd, short what, void *arg);

/* qmgr_bounce.c */
/* qmgr_bounce - stage the DSN for a finished message (failures, and
 * successes asked for), if it needs one. */
int qmgr_bounce(struct qmgr *q, const struct queue_envelope *env, char **error_r);
/* qmgr_delay_warning - stage the delay warning for a message still
 * being retried, if any of its recipients wants one. */
int qmgr_delay_warning(struct qmgr *q, const struct queue_envelope *env, char **error_r);

#endif
