/* auth_sasl.c - the auth-sasl protocol (auth/PROTOCOL.md): SASL logins
 * for the network daemons, which relay their clients' exchanges here,
 * and the abuse defence every service shares.
 *
 * Sessions: each start creates an exchange (libmail/xsasl.h) under the
 * session number the client chose; step and cancel find it by that
 * number on the same connection. An exchange ends with its verdict, a
 * cancel, its connection closing, or SESSION_IDLE_S without a step.
 * SESSIONS_PER_CONN and SESSIONS_MAX bound the memory clients can tie up.
 *
 * Throttling (auth_throttle.h): before anything, a blocked client address
 * is refused; the account's block is checked when the mechanism names it
 * (the lookup callback), before its password is looked at. Each verdict
 * (ok or fail) for an address or account with auth_delay_after failures
 * or more is sent auth_failure_delay late, from a timer: auth serves
 * everybody from one event loop and never sleeps. Successes are delayed
 * too, so that a client cannot tell a failure by its lateness and hang
 * up early. Every "fail" counts as one failure for the address and the
 * account named (if any).
 *
 * Log lines, one per event, with client-given text made printable:
 *   auth ok: service=smtp, user=<bob@example.com>, rip=192.0.2.7, mech=PLAIN
 *   auth failed: service=smtp, user=<bob@example.com>, rip=192.0.2.7, mech=PLAIN, reason=bad password
 *   auth blocked: service=smtp, rip=192.0.2.7, user=<bob@example.com>, mech=PLAIN, reason=...
 * The "auth failed" line is the one for fail2ban. Neither passwords nor
 * responses are ever logged.
 */
#include "config.h"
#include "auth.h"
#include "auth_throttle.h"
#include "../libmail/auth_proto.h"
#include "../libmail/xsasl.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/sanitize.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define SESSIONS_PER_CONN 1024
#define SESSIONS_MAX 4096
#define SESSION_IDLE_S 300
#define SERVICE_MAX 8

struct session;

/* One connection's sessions (ipc_peer_data). */
struct conn {
	struct session *sessions;
	int count;
};

struct session {
	struct auth_sasl *a;
	struct conn *conn;
	int64_t id;
	struct xsasl_exchange *ex;
	char service[SERVICE_MAX];
	char rip[INET6_ADDRSTRLEN];        /* the client's address, as logged */
	char addr_key[AUTH_THROTTLE_KEY_MAX]; /* what it is counted under */
	struct event *idle;
	struct session *prev, *next;
};

/* A verdict waiting out its delay. */
struct delayed {
	struct auth_sasl *a;
	struct ipc_peer *peer; /* referenced */
	struct buf frame;
	struct event *timer;
	struct delayed *prev, *next;
};

struct auth_sasl {
	struct auth_state *st;
	struct event_base *base;
	struct ipc_server *server;
	struct auth_throttle *throttle;
	struct delayed *delayed;
	int sessions; /* all connections */
	bool initialized; /* libsasl2 */
};

/* now - seconds on the monotonic clock. */
static int64_t now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

/* --- replies and log lines ----------------------------------------- */

static void reply_simple(struct ipc_peer *peer, int64_t req, enum auth_sasl_result result, const char *reason)
{
	struct buf out = BUF_INIT;

	ipc_reply_begin(&out, req);
	ipc_put_str(&out, AUTH_F_RESULT, auth_sasl_result_name(result));
	if (reason != NULL)
		ipc_put_str(&out, AUTH_F_REASON, reason);
	ipc_peer_send(peer, &out);
	buf_free(&out);
}

/* reply_malformed - a request that does not follow the protocol: temp,
 * so the client's user hears "try later", and one log line. */
static void reply_malformed(struct ipc_peer *peer, int64_t req, const char *cmd, const char *error)
{
	char reason[160], clean[32];

	snprintf(reason, sizeof reason, "malformed %s request: %s",
		 cmd != NULL ? sanitize(clean, sizeof clean, cmd, strlen(cmd)) : "", error);
	log_warn("%s: %s", AUTH_SASL_PROTOCOL, reason);
	reply_simple(peer, req, AUTH_SASL_TEMP, reason);
}

/* Printable copies of what goes into the log lines. */
struct names {
	char user[SANITIZE_MAX];
	char mech[AUTH_SASL_MECH_MAX + 8];
	char reason[SANITIZE_MAX];
};

static void names_of(struct names *n, const struct xsasl_exchange *ex, const char *mech_given, const char *reason)
{
	const char *user = ex != NULL ? xsasl_exchange_user(ex) : NULL;
	const char *mech = ex != NULL ? xsasl_exchange_mech(ex) : NULL;

	if (mech == NULL)
		mech = mech_given != NULL ? mech_given : "";
	sanitize(n->user, sizeof n->user, user != NULL ? user : "", user != NULL ? strlen(user) : 0);
	sanitize(n->mech, sizeof n->mech, mech, strlen(mech));
	sanitize(n->reason, sizeof n->reason, reason != NULL ? reason : "", reason != NULL ? strlen(reason) : 0);
}

/* --- sessions ------------------------------------------------------ */

static void session_free(struct session *s)
{
	struct conn *c = s->conn;

	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		c->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	c->count--;
	s->a->sessions--;
	if (s->idle != NULL)
		event_free(s->idle);
	xsasl_exchange_free(&s->ex);
	free(s);
}

static struct session *session_find(struct conn *c, int64_t id)
{
	if (c == NULL)
		return NULL;
	for (struct session *s = c->sessions; s != NULL; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

static void on_idle(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)what;
	log_debug("%s: session %lld idle for %ds: dropped", AUTH_SASL_PROTOCOL, (long long)s->id, SESSION_IDLE_S);
	session_free(s);
}

static void session_touch(struct session *s)
{
	struct timeval tv = { .tv_sec = SESSION_IDLE_S };

	event_add(s->idle, &tv);
}

/* on_close - a client connection went: so do its exchanges. */
static void on_close(struct ipc_peer *peer, void *ctx)
{
	struct conn *c = ipc_peer_data(peer);

	(void)ctx;
	if (c == NULL)
		return;
	while (c->sessions != NULL)
		session_free(c->sessions);
	ipc_peer_set_data(peer, NULL);
	free(c);
}

/* --- verdicts ------------------------------------------------------ */

static void delayed_free(struct delayed *d)
{
	struct auth_sasl *a = d->a;

	if (d->prev != NULL)
		d->prev->next = d->next;
	else
		a->delayed = d->next;
	if (d->next != NULL)
		d->next->prev = d->prev;
	event_free(d->timer);
	buf_free(&d->frame);
	ipc_peer_unref(&d->peer);
	free(d);
}

static void on_delay_done(evutil_socket_t fd, short what, void *arg)
{
	struct delayed *d = arg;

	(void)fd;
	(void)what;
	ipc_peer_send(d->peer, &d->frame); /* a no-op if it hung up meanwhile */
	delayed_free(d);
}

/* send_verdict - the reply now, or after the failure delay. */
static void send_verdict(struct auth_sasl *a, struct ipc_peer *peer, struct buf *frame, bool delay)
{
	struct delayed *d;
	struct timeval tv = { .tv_sec = a->st->params->auth_failure_delay };

	if (!delay || tv.tv_sec <= 0) {
		ipc_peer_send(peer, frame);
		return;
	}
	d = xnew(struct delayed);
	d->a = a;
	d->peer = peer;
	ipc_peer_ref(peer);
	d->frame = *frame;
	buf_init(frame);
	d->timer = evtimer_new(a->base, on_delay_done, d);
	d->next = a->delayed;
	if (a->delayed != NULL)
		a->delayed->prev = d;
	a->delayed = d;
	evtimer_add(d->timer, &tv);
}

/* throttled - whether verdicts for this address or account wait. */
static bool throttled(struct auth_sasl *a, const char *addr_key, const char *account, int64_t t)
{
	return auth_throttle_addr(a->throttle, addr_key, t) != AUTH_THROTTLE_OK ||
	       auth_throttle_account(a->throttle, account, t) != AUTH_THROTTLE_OK;
}

/* What a request was about, for the reply and its log line. */
struct attempt {
	struct auth_sasl *a;
	struct ipc_peer *peer;
	int64_t req;
	const char *service;
	const char *rip;
	const char *addr_key;
	const char *mech_given;
};

/* protocol_result - xsasl's status in the protocol's words. */
static enum auth_sasl_result protocol_result(enum xsasl_status status)
{
	switch (status) {
	case XSASL_CONTINUE:
		return AUTH_SASL_CONTINUE;
	case XSASL_OK:
		return AUTH_SASL_OK;
	case XSASL_FAIL:
		return AUTH_SASL_FAIL;
	case XSASL_ENCRYPT:
		return AUTH_SASL_ENCRYPT;
	case XSASL_TEMP:
		break;
	}
	return AUTH_SASL_TEMP;
}

/* answer - reply to a start or step with the exchange's reply. Returns
 * whether the exchange goes on (CONTINUE). */
static bool answer(const struct attempt *at, struct xsasl_exchange *ex, const struct xsasl_reply *r)
{
	struct auth_sasl *a = at->a;
	const char *account = xsasl_exchange_user(ex);
	struct buf out = BUF_INIT;
	struct names n;
	int64_t t = now();
	bool delay = false;

	ipc_reply_begin(&out, at->req);
	ipc_put_str(&out, AUTH_F_RESULT, auth_sasl_result_name(protocol_result(r->status)));
	names_of(&n, ex, at->mech_given, r->reason);
	switch (r->status) {
	case XSASL_CONTINUE:
		ipc_put_bytes(&out, AUTH_F_CHALLENGE, r->challenge_len > 0 ? r->challenge : "", r->challenge_len);
		break;
	case XSASL_OK:
		ipc_put_str(&out, AUTH_F_USER, r->user);
		delay = throttled(a, at->addr_key, account, t);
		auth_throttle_success(a->throttle, at->addr_key, account);
		log_info("auth ok: service=%s, user=<%s>, rip=%s, mech=%s", at->service, n.user, at->rip, n.mech);
		break;
	case XSASL_FAIL:
		ipc_put_str(&out, AUTH_F_REASON, r->reason != NULL ? r->reason : "");
		delay = throttled(a, at->addr_key, account, t);
		auth_throttle_failure(a->throttle, at->addr_key, account, t);
		log_warn("auth failed: service=%s, user=<%s>, rip=%s, mech=%s, reason=%s", at->service, n.user,
			 at->rip, n.mech, n.reason);
		break;
	case XSASL_ENCRYPT:
		log_debug("auth needs TLS: service=%s, rip=%s, mech=%s", at->service, at->rip, n.mech);
		break;
	case XSASL_TEMP:
		ipc_put_str(&out, AUTH_F_REASON, r->reason != NULL ? r->reason : "");
		if (r->blocked)
			log_warn("auth blocked: service=%s, rip=%s, user=<%s>, mech=%s, reason=%s (account)",
				 at->service, at->rip, n.user, n.mech, n.reason);
		else
			log_warn("auth temporary failure: service=%s, user=<%s>, rip=%s, mech=%s, reason=%s",
				 at->service, n.user, at->rip, n.mech, n.reason);
		break;
	}
	send_verdict(a, at->peer, &out, delay);
	buf_free(&out);
	return r->status == XSASL_CONTINUE;
}

/* refuse_blocked - the client address is blocked: no exchange at all. */
static void refuse_blocked(const struct attempt *at, struct xsasl_exchange *ex)
{
	struct names n;

	names_of(&n, ex, at->mech_given, NULL);
	log_warn("auth blocked: service=%s, rip=%s, user=<%s>, mech=%s, reason=too many failed logins (client "
		 "address)",
		 at->service, at->rip, n.user, n.mech);
	reply_simple(at->peer, at->req, AUTH_SASL_TEMP, "too many failed logins");
}

/* --- requests ------------------------------------------------------ */

static bool service_known(const char *service)
{
	return strcmp(service, AUTH_SASL_SERVICE_SMTP) == 0 || strcmp(service, AUTH_SASL_SERVICE_POP) == 0 ||
	       strcmp(service, AUTH_SASL_SERVICE_IMAP) == 0;
}

/* normalise_ip - the address as logged: inet_ntop's form, IPv4 for an
 * IPv4-mapped IPv6 address. -1 if it is not an IP address. */
static int normalise_ip(const char *text, char out[INET6_ADDRSTRLEN])
{
	struct in_addr v4;
	struct in6_addr v6;

	if (inet_pton(AF_INET, text, &v4) == 1)
		return inet_ntop(AF_INET, &v4, out, INET6_ADDRSTRLEN) != NULL ? 0 : -1;
	if (inet_pton(AF_INET6, text, &v6) != 1)
		return -1;
	if (IN6_IS_ADDR_V4MAPPED(&v6)) {
		memcpy(&v4, &v6.s6_addr[12], 4);
		return inet_ntop(AF_INET, &v4, out, INET6_ADDRSTRLEN) != NULL ? 0 : -1;
	}
	return inet_ntop(AF_INET6, &v6, out, INET6_ADDRSTRLEN) != NULL ? 0 : -1;
}

static void refresh_tables(struct auth_sasl *a)
{
	char *error = NULL;

	/* A table that cannot be read shows in the lookup's answer. */
	if (directory_refresh(a->st->dir, &error) < 0)
		free(error);
}

static void request_mechs(struct auth_sasl *a, struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg)
{
	const char *service = NULL, *error;
	int64_t secure = 0;
	const struct ipc_spec spec[] = {
		{ .name = AUTH_F_CMD, .type = IPC_STR, .required = true },
		{ .name = AUTH_F_SERVICE, .type = IPC_STR, .required = true, .max_len = SERVICE_MAX, .str_r = &service },
		{ .name = AUTH_F_SECURE, .type = IPC_INT, .required = true, .min = 0, .max = 1, .int_r = &secure },
	};
	struct buf out = BUF_INIT;

	(void)a;
	if (ipc_scan(msg, spec, sizeof spec / sizeof spec[0], IPC_STRICT, &error) < 0) {
		reply_malformed(peer, req, AUTH_CMD_MECHS, error);
		return;
	}
	if (!service_known(service)) {
		reply_malformed(peer, req, AUTH_CMD_MECHS, "unknown service");
		return;
	}
	ipc_reply_begin(&out, req);
	ipc_put_str(&out, AUTH_F_RESULT, auth_sasl_result_name(AUTH_SASL_OK));
	ipc_put_str(&out, AUTH_F_MECHS, xsasl_server_mechs(secure == 1));
	ipc_peer_send(peer, &out);
	buf_free(&out);
}

static void request_start(struct auth_sasl *a, struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg)
{
	const char *service = NULL, *mech = NULL, *client = NULL, *error;
	const uint8_t *resp = NULL;
	size_t resp_len = 0;
	int64_t id = 0, secure = 0;
	bool has_resp = false;
	const struct ipc_spec spec[] = {
		{ .name = AUTH_F_CMD, .type = IPC_STR, .required = true },
		{ .name = AUTH_F_SESSION, .type = IPC_INT, .required = true, .int_r = &id },
		{ .name = AUTH_F_SERVICE, .type = IPC_STR, .required = true, .max_len = SERVICE_MAX, .str_r = &service },
		{ .name = AUTH_F_MECH, .type = IPC_STR, .required = true, .max_len = AUTH_SASL_MECH_MAX, .str_r = &mech },
		{ .name = AUTH_F_CLIENT, .type = IPC_STR, .required = true, .max_len = AUTH_SASL_CLIENT_MAX,
		  .str_r = &client },
		{ .name = AUTH_F_SECURE, .type = IPC_INT, .required = true, .min = 0, .max = 1, .int_r = &secure },
		{ .name = AUTH_F_RESPONSE, .type = IPC_BYTES, .max_len = AUTH_SASL_RESPONSE_MAX, .bytes_r = &resp,
		  .len_r = &resp_len, .present_r = &has_resp },
	};
	struct conn *c = ipc_peer_data(peer);
	struct session *s;
	struct xsasl_reply r;
	struct attempt at = { .a = a, .peer = peer, .req = req };
	char rip[INET6_ADDRSTRLEN], key[AUTH_THROTTLE_KEY_MAX];

	if (ipc_scan(msg, spec, sizeof spec / sizeof spec[0], IPC_STRICT, &error) < 0) {
		reply_malformed(peer, req, AUTH_CMD_START, error);
		return;
	}
	if (!service_known(service)) {
		reply_malformed(peer, req, AUTH_CMD_START, "unknown service");
		return;
	}
	if (normalise_ip(client, rip) < 0 || auth_throttle_addr_key(client, key) < 0) {
		reply_malformed(peer, req, AUTH_CMD_START, "client is not an IP address");
		return;
	}
	/* The same number again: the client gave up on the old exchange. */
	s = session_find(c, id);
	if (s != NULL)
		session_free(s);
	at.service = service;
	at.rip = rip;
	at.addr_key = key;
	at.mech_given = mech;
	if (auth_throttle_addr(a->throttle, key, now()) == AUTH_THROTTLE_BLOCK) {
		refuse_blocked(&at, NULL);
		return;
	}
	if ((c != NULL && c->count >= SESSIONS_PER_CONN) || a->sessions >= SESSIONS_MAX) {
		log_warn("%s: too many sessions (%d on this connection, %d in all)", AUTH_SASL_PROTOCOL,
			 c != NULL ? c->count : 0, a->sessions);
		reply_simple(peer, req, AUTH_SASL_TEMP, "too many sessions");
		return;
	}
	refresh_tables(a);
	s = xnew(struct session);
	s->ex = xsasl_exchange_start(service, mech, resp, resp_len, has_resp, secure == 1, &r);
	if (!answer(&at, s->ex, &r)) {
		xsasl_exchange_free(&s->ex);
		free(s);
		return;
	}
	if (c == NULL) {
		c = xnew(struct conn);
		ipc_peer_set_data(peer, c);
	}
	s->a = a;
	s->conn = c;
	s->id = id;
	snprintf(s->service, sizeof s->service, "%s", service);
	snprintf(s->rip, sizeof s->rip, "%s", rip);
	snprintf(s->addr_key, sizeof s->addr_key, "%s", key);
	s->idle = evtimer_new(a->base, on_idle, s);
	s->next = c->sessions;
	if (c->sessions != NULL)
		c->sessions->prev = s;
	c->sessions = s;
	c->count++;
	a->sessions++;
	session_touch(s);
}

static void request_step(struct auth_sasl *a, struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg)
{
	const uint8_t *resp = NULL;
	size_t resp_len = 0;
	int64_t id = 0;
	const char *error;
	const struct ipc_spec spec[] = {
		{ .name = AUTH_F_CMD, .type = IPC_STR, .required = true },
		{ .name = AUTH_F_SESSION, .type = IPC_INT, .required = true, .int_r = &id },
		{ .name = AUTH_F_RESPONSE, .type = IPC_BYTES, .required = true, .max_len = AUTH_SASL_RESPONSE_MAX,
		  .bytes_r = &resp, .len_r = &resp_len },
	};
	struct session *s;
	struct xsasl_reply r;
	struct attempt at = { .a = a, .peer = peer, .req = req };

	if (ipc_scan(msg, spec, sizeof spec / sizeof spec[0], IPC_STRICT, &error) < 0) {
		reply_malformed(peer, req, AUTH_CMD_STEP, error);
		return;
	}
	s = session_find(ipc_peer_data(peer), id);
	if (s == NULL) {
		reply_simple(peer, req, AUTH_SASL_TEMP, "unknown session (expired, or never started)");
		return;
	}
	at.service = s->service;
	at.rip = s->rip;
	at.addr_key = s->addr_key;
	/* Other attempts may have blocked the address meanwhile. */
	if (auth_throttle_addr(a->throttle, s->addr_key, now()) == AUTH_THROTTLE_BLOCK) {
		refuse_blocked(&at, s->ex);
		session_free(s);
		return;
	}
	refresh_tables(a);
	xsasl_exchange_step(s->ex, resp, resp_len, &r);
	if (answer(&at, s->ex, &r))
		session_touch(s);
	else
		session_free(s);
}

static void request_cancel(struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg)
{
	int64_t id = 0;
	const char *error;
	const struct ipc_spec spec[] = {
		{ .name = AUTH_F_CMD, .type = IPC_STR, .required = true },
		{ .name = AUTH_F_SESSION, .type = IPC_INT, .required = true, .int_r = &id },
	};
	struct session *s;

	if (ipc_scan(msg, spec, sizeof spec / sizeof spec[0], IPC_STRICT, &error) < 0) {
		reply_malformed(peer, req, AUTH_CMD_CANCEL, error);
		return;
	}
	s = session_find(ipc_peer_data(peer), id);
	if (s != NULL)
		session_free(s);
	reply_simple(peer, req, AUTH_SASL_OK, NULL);
}

/* sasl_request - one auth-sasl request (ipc_handler_fn). */
static void sasl_request(struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg, void *ctx)
{
	struct auth_sasl *a = ctx;
	const char *cmd = ipc_get_str(msg, AUTH_F_CMD);

	if (cmd == NULL)
		reply_malformed(peer, req, NULL, "no cmd field");
	else if (strcmp(cmd, AUTH_CMD_START) == 0)
		request_start(a, peer, req, msg);
	else if (strcmp(cmd, AUTH_CMD_STEP) == 0)
		request_step(a, peer, req, msg);
	else if (strcmp(cmd, AUTH_CMD_CANCEL) == 0)
		request_cancel(peer, req, msg);
	else if (strcmp(cmd, AUTH_CMD_MECHS) == 0)
		request_mechs(a, peer, req, msg);
	else
		reply_malformed(peer, req, cmd, "unknown command");
}

/* --- the lookup xsasl calls ---------------------------------------- */

static enum xsasl_lookup sasl_lookup(void *ctx, const char *user, struct dir_user *user_r, char **error_r)
{
	struct auth_sasl *a = ctx;
	int rc;

	/* Blocked accounts are refused before their record is read, so
	 * that nothing about the password is checked. */
	if (auth_throttle_account(a->throttle, user, now()) == AUTH_THROTTLE_BLOCK)
		return XSASL_LOOKUP_BLOCKED;
	rc = directory_user(a->st->dir, user, user_r, error_r);
	return rc > 0 ? XSASL_LOOKUP_FOUND : rc == 0 ? XSASL_LOOKUP_UNKNOWN : XSASL_LOOKUP_ERROR;
}

/* --- start and stop ------------------------------------------------ */

/* jail_random_device - data_directory/dev/urandom, a node of the kernel's
 * generator (character device 1,9), for libsasl2's nonces inside the
 * jail. Root-owned, mode 0666 like the real one; data_directory/dev is
 * root's, 0755. A node of the wrong kind is replaced. -1 with *error_r. */
static int jail_random_device(const char *data_dir, char **error_r)
{
	char *dev = xasprintf("%s/dev", data_dir);
	char *node = xasprintf("%s/dev/urandom", data_dir);
	struct stat st;
	int rc = -1;

	if (lstat(dev, &st) < 0) {
		if (errno != ENOENT || mkdir(dev, 0755) < 0 || chmod(dev, 0755) < 0) {
			*error_r = xasprintf("%s: %s", dev, strerror(errno));
			goto out;
		}
	} else if (!S_ISDIR(st.st_mode) || st.st_uid != 0) {
		*error_r = xasprintf("%s: not a root-owned directory", dev);
		goto out;
	}
	if (lstat(node, &st) == 0) {
		if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 9) && st.st_uid == 0 &&
		    (st.st_mode & 07777) == 0666) {
			rc = 0;
			goto out;
		}
		if (unlink(node) < 0) {
			*error_r = xasprintf("%s: %s", node, strerror(errno));
			goto out;
		}
	}
	if (mknod(node, S_IFCHR | 0666, makedev(1, 9)) < 0 || chmod(node, 0666) < 0) {
		*error_r = xasprintf("mknod %s: %s", node, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(dev);
	free(node);
	return rc;
}

int auth_sasl_pre_jail(struct auth_state *st, char **error_r)
{
	struct auth_sasl *a = xnew(struct auth_sasl);
	struct xsasl_server_config config = {
		.app_name = "yubin",
		.mechanisms = st->params->auth_mechanisms,
		.hostname = st->params->myhostname,
		.lookup = sasl_lookup,
		.ctx = a,
	};
	char *error = NULL;

	a->st = st;
	st->sasl = a;
	/* Started as root, auth is jailed in data_directory (master.conf):
	 * give it the random device there. Not as root there is no jail. A
	 * failure is not fatal: the check after the jail withdraws SCRAM. */
	if (geteuid() == 0 && jail_random_device(st->params->data_directory, &error) < 0) {
		log_warn("%s", error);
		free(error);
	}
	if (xsasl_server_init(&config, error_r) < 0)
		return -1;
	a->initialized = true;
	return 0;
}

void auth_sasl_post_jail(struct auth_state *st, struct event_base *base)
{
	struct auth_sasl *a = st->sasl;
	const struct yb_params *p = st->params;
	struct auth_throttle_limits limits = {
		.window = p->auth_failure_window,
		.delay_after = p->auth_delay_after,
		.block_after = p->auth_block_after,
		.block = p->auth_block_time,
		.max_entries = AUTH_THROTTLE_ENTRIES_DEFAULT,
	};
	char *warning = NULL;

	if (xsasl_server_check_random(&warning) < 0) {
		log_warn("%s", warning);
		free(warning);
	}
	a->base = base;
	a->throttle = auth_throttle_new(&limits);
	a->server = ipc_server_new(base, AUTH_SASL_PROTOCOL, AUTH_SASL_REQUEST_MAX, 0, sasl_request, a);
	ipc_server_set_close(a->server, on_close);
	log_debug("SASL mechanisms: \"%s\" with TLS, \"%s\" without", xsasl_server_mechs(true),
		  xsasl_server_mechs(false));
}

void auth_sasl_accept(struct auth_state *st, int fd)
{
	if (st->sasl == NULL || st->sasl->server == NULL) {
		close(fd);
		return;
	}
	ipc_server_accept(st->sasl->server, fd);
}

void auth_sasl_stop(struct auth_state *st)
{
	struct auth_sasl *a = st->sasl;

	if (a == NULL)
		return;
	/* Closing the connections frees their sessions (on_close). */
	ipc_server_free(&a->server);
	while (a->delayed != NULL)
		delayed_free(a->delayed);
	auth_throttle_free(&a->throttle);
	if (a->initialized)
		xsasl_server_done();
	free(a);
	st->sasl = NULL;
}
