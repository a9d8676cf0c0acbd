/* smtp.h - the outbound delivery agent's internal types (smtp/PROTOCOL.md
 * has its protocol with qmgr). Three parts share them: smtp_deliver.c
 * (a request from qmgr: routing and each recipient's verdict),
 * smtp_session.c (one SMTP connection, driven through the client engine)
 * and smtp_dest.c (per-destination limits and the idle connections kept
 * for reuse). */
#ifndef YB_SMTP_H
#define YB_SMTP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "../libmail/dns.h"
#include "../libmail/params.h"

struct event;
struct bufferevent;
struct ipc_msg;
struct ipc_peer;
struct ipc_server;
struct pool;
struct service_ctx;
struct smtp_client;
struct tls_client;

#define SMTP_DELIVER_PROTOCOL "smtp-deliver"
#define SMTP_REQUEST_MAX (1024 * 1024)

struct smtp_daemon {
	struct service_ctx *svc;
	const struct yb_params *params;
	struct dns_resolver *dns;
	struct tls_client *tls;
	struct ipc_server *server;
	/* relayhost: "[host]:port" (no MX lookup) or "host[:port]" (MX of host) */
	char *relay_host;   /* NULL: deliver by the recipient domain's MX */
	int relay_port;
	bool relay_mx;      /* look up the relay host's MX */
	char *relay_user;   /* SASL login there, from relayhost_password_file */
	char *relay_password;
	struct smtp_tls_policy *policies; /* smtp_tls_policy_map */
	size_t npolicies;
	int active;         /* deliveries in progress */
	struct smtp_dest *dests; /* destinations with deliveries or idle connections */
};

/* ---- a delivery: one request from qmgr --------------------------------- */

enum rcpt_state { R_OPEN, R_SENT, R_DEFERRED, R_BOUNCED };

struct rcpt {
	const char *addr;   /* in the delivery's pool */
	const char *orcpt;  /* "" for none */
	unsigned notify;
	enum rcpt_state state;
	char dsn[16];
	char *text;         /* the reply or our reason */
};

/* One address to try: an MX host's name and one of its addresses. */
struct target {
	char *host;
	struct dns_address addr;
};

struct delivery {
	struct smtp_daemon *d;
	struct ipc_peer *peer;
	int64_t req;
	struct pool *pool;      /* the request's strings */
	const char *id, *sender, *nexthop, *envid, *ret;
	long long size;
	int fd;                 /* the queue content */
	bool body_8bit;
	struct rcpt *rcpts;
	size_t nrcpt;
	struct timespec arrival;
	struct smtp_dest *dest;
	struct delivery *next_waiting;
	/* routing */
	struct dns_query *dnsq;
	bool routed;            /* DNS has been asked (targets are its answer) */
	struct target *targets;
	size_t ntargets, next;
	char *last_dsn, *last_text; /* why the last address did not do */
	char *last_relay;       /* the last address tried, for the log */
	struct smtp_session *session; /* the connection working for it */
};

/* smtp_deliver.c */
void smtp_deliver_request(struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg, void *ctx);
/* delivery_start - the destination's limits let dl go: an idle connection
 * to the destination, else routing and a new one. */
void delivery_start(struct delivery *dl);
/* delivery_settle - a recipient's verdict, logged as operators expect. */
void delivery_settle(struct delivery *dl, struct rcpt *r, enum rcpt_state state, const char *dsn,
		     const char *text, const struct smtp_session *s);
/* delivery_note_failure - why the connection at hand did not do. */
void delivery_note_failure(struct delivery *dl, const char *dsn, const char *text);
bool delivery_all_settled(const struct delivery *dl);
/* delivery_finish - every recipient has a verdict (no session): answer
 * qmgr and free dl. */
void delivery_finish(struct delivery *dl);
/* delivery_session_over - dl's connection ended: the end, or the next
 * address (after routing, when the connection was a reused one). */
void delivery_session_over(struct delivery *dl);

/* ---- a session: one SMTP connection ------------------------------------ */

struct smtp_session {
	struct smtp_daemon *d;
	struct smtp_dest *dest;
	struct delivery *dl;    /* the delivery it works for; NULL while idle */
	char *host;             /* the server's name (TLS verification) */
	char relay[320];        /* "host[addr]:port", for the log */
	struct bufferevent *bev;
	struct smtp_client *client;
	struct event *timer;
	bool tls_pending;
	bool closing;           /* close once the output is out */
	size_t *batch;          /* dl->rcpts[] indices of the message given */
	size_t nbatch;
	off_t offset;           /* in the content being sent */
	long long started_ms;   /* CLOCK_MONOTONIC: the reuse time limit */
	unsigned uses;          /* messages given (conn_use= in the log) */
	bool idle;              /* parked at its destination */
	struct smtp_session *next_idle;
	int busy;               /* our callbacks on the stack */
	bool ended;             /* free when busy drops to 0 */
};

/* smtp_session.c */
/* session_connect - a new connection to t for dl (which it is then
 * attached to); failures come back through delivery_session_over. */
void session_connect(struct delivery *dl, const struct target *t, int port);
/* session_give - an idle connection takes dl's message. */
void session_give(struct smtp_session *s, struct delivery *dl);

/* ---- destinations: limits and idle connections ------------------------- */

/* A destination (the recipients' domain, or the relay host): at most
 * smtp_destination_concurrency_limit deliveries at once; with
 * smtp_destination_rate_delay, one at a time with that pause between.
 * Connections that finished a message wait here a while for the next. */
struct smtp_dest {
	char *name;
	int running;
	struct delivery *waiting, **waiting_tail; /* FIFO */
	struct event *delay_ev;   /* the rate delay's timer */
	long long last_start_ms;  /* CLOCK_MONOTONIC */
	struct smtp_session *idle;
	int nidle;
	struct smtp_dest *next;
};

/* smtp_dest.c */
long long smtp_now_ms(void);
/* dest_enter - queue a delivery at its destination (created on demand). */
void dest_enter(struct smtp_daemon *d, struct delivery *dl);
/* dest_done - a delivery that had started has ended: the next may start. */
void dest_done(struct smtp_daemon *d, struct smtp_dest *dest);
/* dest_park - keep s for the destination's next delivery; false when it
 * should be closed instead (too old, too many idle, reuse disabled). */
bool dest_park(struct smtp_dest *dest, struct smtp_session *s);
/* dest_unpark - s leaves the idle list (taken, or ending). */
void dest_unpark(struct smtp_dest *dest, struct smtp_session *s);
/* dest_take_idle - an idle connection for the destination, or NULL. */
struct smtp_session *dest_take_idle(struct smtp_dest *dest);

/* ---- TLS policy (smtp.c) ----------------------------------------------- */

enum smtp_tls_level { SMTP_TLS_NONE, SMTP_TLS_MAY, SMTP_TLS_ENCRYPT, SMTP_TLS_VERIFY };
struct smtp_tls_policy {
	char *domain;
	enum smtp_tls_level level;
};

/* smtp_tls_level_for - the policy for a destination (default: may). */
enum smtp_tls_level smtp_tls_level_for(const struct smtp_daemon *d, const char *destination);

#endif
