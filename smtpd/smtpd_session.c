/* smtpd_session.c - one client connection: bytes between the socket (or
 * its TLS layer) and the protocol engine, SASL exchanges and recipient
 * checks through auth (and local for the quota), the content file, and
 * the hand-over to qmgr. */
#include "config.h"
#include "smtpd.h"
#include "../libmail/addr.h"
#include "../libmail/auth_proto.h"
#include "../libmail/queue_id.h"
#include "../libmail/sasl_relay.h"
#include "../libmail/smtp_reply.h"
#include "../libutil/fileop_pool.h"
#include "../libutil/fileutil.h"
#include "../libutil/ipc_async.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/pool.h"
#include "../libutil/sanitize.h"
#include "../libutil/service.h"
#include "../libutil/sock.h"
#include "../libutil/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* A final delivery target collected at RCPT time, with the recipient the
 * client gave (ORCPT for the DSN). Targets are unique per message: two
 * recipients reaching one mailbox through aliases deliver once. */
struct target {
	char *address;
	char *orcpt;     /* ORCPT as the client gave it, or "" */
	char *rcpt_to;   /* the RCPT TO address as the client gave it */
	int notify;
};

struct smtpd_conn {
	struct smtpd *d;
	struct bufferevent *bev;
	struct smtp_session *s;
	struct pool *pool;         /* per transaction */
	char client_addr[INET6_ADDRSTRLEN];
	char client_name[64];
	bool local;                /* pickup: a local user, by peer credentials */
	uid_t uid;                 /* ... that one */
	int refs;                  /* the connection, and each pending request */
	bool gone;                 /* socket closed: answers go nowhere */
	bool closing;              /* close once the output is out */
	bool enqueueing;           /* syncing the content or waiting for qmgr: do not cut this short */
	bool shutdown_after;       /* stop requested while enqueueing */
	bool tls;                  /* the bufferevent is a TLS one (handshake done or under way) */
	long long sasl_session;    /* the SASL exchange under way with auth, 0: none */
	struct event *linger_ev;   /* closing under a STARTTLS filter: look again */
	int linger_checks;
	int content_fd;
	struct buf content_out;    /* written to content_fd in CONTENT_WRITE_CHUNK pieces */
	off_t content_size;
	char queue_id[QUEUE_ID_SIZE];
	struct target *targets;
	size_t target_count;
	/* RCPT in progress: its targets, copied out of auth's reply */
	char **rcpt_targets;
	size_t rcpt_target_count;
	int quota_pending;
	int quota_checked;         /* local targets asked about */
	int quota_over;            /* of those, how many are full */
	char *rcpt_orcpt;
	char *rcpt_given;
	int rcpt_notify;
	bool rcpt_postmaster;      /* <postmaster>: must be accepted */
	struct smtpd_conn *prev, *next;
};

/* The message is written to its file in pieces of this size, most
 * messages in one write. */
#define CONTENT_WRITE_CHUNK 65536

static void conn_unref(struct smtpd_conn *c);

static void clear_targets(struct smtpd_conn *c)
{
	for (size_t i = 0; i < c->target_count; i++) {
		free(c->targets[i].address);
		free(c->targets[i].orcpt);
		free(c->targets[i].rcpt_to);
	}
	free(c->targets);
	c->targets = NULL;
	c->target_count = 0;
}

static void clear_rcpt(struct smtpd_conn *c)
{
	for (size_t i = 0; i < c->rcpt_target_count; i++)
		free(c->rcpt_targets[i]);
	free(c->rcpt_targets);
	c->rcpt_targets = NULL;
	c->rcpt_target_count = 0;
	free(c->rcpt_orcpt);
	c->rcpt_orcpt = NULL;
	free(c->rcpt_given);
	c->rcpt_given = NULL;
}

static void discard_content(struct smtpd_conn *c)
{
	char path[64];

	buf_free(&c->content_out);
	if (c->content_fd < 0)
		return;
	close(c->content_fd);
	c->content_fd = -1;
	snprintf(path, sizeof path, "%s/%s", QUEUE_CONTENT_DIR, c->queue_id);
	unlink(path);
}

static void conn_free(struct smtpd_conn *c)
{
	struct smtpd *d = c->d;

	discard_content(c);
	clear_targets(c);
	clear_rcpt(c);
	smtp_session_free(&c->s);
	pool_destroy(&c->pool);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		d->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c);
}

static void conn_unref(struct smtpd_conn *c)
{
	if (--c->refs == 0)
		conn_free(c);
}

/* conn_close - the socket goes now; pending requests finish into nothing. */
static void conn_close(struct smtpd_conn *c)
{
	if (c->gone)
		return;
	c->gone = true;
	if (c->linger_ev != NULL)
		event_free(c->linger_ev);
	c->linger_ev = NULL;
	bufferevent_free(c->bev);
	c->bev = NULL;
	service_client_closed(c->d->svc);
	conn_unref(c);
}

/* ---- engine callbacks ---------------------------------------------- */

/* cb_write - a reply goes straight to the socket when nothing waits
 * before it (as good as always: replies are short); only what the socket
 * does not take now is left to the bufferevent, whose write event would
 * otherwise cost two epoll changes and a loop pass per reply. */
static void cb_write(void *ctx, const char *data, size_t len)
{
	struct smtpd_conn *c = ctx;
	struct evbuffer *out;
	ssize_t n;

	if (c->gone)
		return;
	out = bufferevent_get_output(c->bev);
	if (!c->tls && evbuffer_get_length(out) == 0) {
		n = send(bufferevent_getfd(c->bev), data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			data += n;
			len -= (size_t)n;
		}
		/* An error other than a full socket shows up at the next
		 * read or write of the bufferevent, which closes. */
	}
	if (len > 0)
		bufferevent_write(c->bev, data, len);
}

/* output_pending - octets not handed to the kernel yet: the
 * bufferevent's, and under a STARTTLS filter the plain one's below it. */
static size_t output_pending(struct smtpd_conn *c)
{
	struct bufferevent *under = bufferevent_get_underlying(c->bev);
	size_t n = evbuffer_get_length(bufferevent_get_output(c->bev));

	if (under != NULL)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

/* Under a filter, only the filter's drain is reported: the last reply
 * (221, 421) may still sit below it. Look again every LINGER_MS, for at
 * most LINGER_CHECKS times. */
#define LINGER_MS 10
#define LINGER_CHECKS 3000

static void close_when_sent(struct smtpd_conn *c);

static void on_linger(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	close_when_sent(arg);
}

/* close_when_sent - close once everything written is out. */
static void close_when_sent(struct smtpd_conn *c)
{
	struct timeval tv = { 0, LINGER_MS * 1000 };

	if (c->gone)
		return;
	if (output_pending(c) == 0 || c->linger_checks >= LINGER_CHECKS) {
		conn_close(c);
		return;
	}
	if (bufferevent_get_underlying(c->bev) == NULL)
		return; /* on_drained comes */
	if (c->linger_ev == NULL)
		c->linger_ev = evtimer_new(c->d->svc->base, on_linger, c);
	c->linger_checks++;
	evtimer_add(c->linger_ev, &tv);
}

static void on_drained(struct bufferevent *bev, void *arg)
{
	struct smtpd_conn *c = arg;

	(void)bev;
	if (c->closing)
		close_when_sent(c);
}

static void cb_close(void *ctx)
{
	struct smtpd_conn *c = ctx;

	c->closing = true;
	if (c->gone)
		return;
	bufferevent_disable(c->bev, EV_READ);
	close_when_sent(c);
}

static void cb_log(void *ctx, const char *line)
{
	(void)ctx;
	log_info("%s", line);
}

static void on_sender(const struct ipc_msg *reply, const char *error, void *arg)
{
	struct smtpd_conn *c = arg;
	const char *parse_error = NULL;
	bool owned = false;

	if (c->gone) {
		conn_unref(c);
		return;
	}
	if (reply == NULL || auth_parse_sender(reply, &owned, &parse_error) < 0) {
		log_warn("sender lookup failed: %s", reply == NULL ? error : parse_error);
		smtp_session_mail_done(c->s, R_RCPT_TEMPFAIL);
	} else {
		smtp_session_mail_done(c->s, owned ? 0 : R_SENDER_NOT_OWNED);
	}
	conn_unref(c);
}

static void cb_mail(void *ctx, const struct mail_addr *sender, const struct smtp_mail_params *p)
{
	struct smtpd_conn *c = ctx;
	const char *user = smtp_session_auth_user(c->s);
	struct buf req = BUF_INIT;

	(void)p;
	/* A new transaction: nothing from an earlier one survives. */
	clear_targets(c);
	pool_clear(c->pool);
	/* An authenticated user sends only as an address of theirs (their
	 * own, or an alias that reaches them); bounces (<>) are theirs too. */
	if (user == NULL || sender->local[0] == '\0') {
		smtp_session_mail_done(c->s, 0);
		return;
	}
	c->refs++;
	ipc_begin(&req);
	auth_put_sender(&req, user, addr_format(c->pool, sender));
	ipc_async_request(c->d->auth, &req, -1, on_sender, c);
	buf_free(&req);
}

static void add_target(struct smtpd_conn *c, const char *address, const char *orcpt, const char *rcpt_to,
		       int notify)
{
	for (size_t i = 0; i < c->target_count; i++)
		if (strcasecmp(c->targets[i].address, address) == 0)
			return;
	c->targets = xreallocarray(c->targets, c->target_count + 1, sizeof *c->targets);
	c->targets[c->target_count].address = xstrdup(address);
	c->targets[c->target_count].orcpt = xstrdup(orcpt);
	c->targets[c->target_count].rcpt_to = xstrdup(rcpt_to);
	c->targets[c->target_count].notify = notify;
	c->target_count++;
}

/* rcpt_finish - every check of this RCPT is in: answer it. */
static void rcpt_finish(struct smtpd_conn *c)
{
	int reply = 0;

	/* Refused only when every target is a full mailbox: an alias with one
	 * full member still reaches the others (the full one defers or
	 * bounces at delivery). */
	if (c->quota_over > 0 && c->quota_over == c->quota_checked &&
	    (size_t)c->quota_checked == c->rcpt_target_count)
		reply = c->d->params->quota_over_permanent ? R_QUOTA_PERM : R_QUOTA_TEMP;
	else
		for (size_t i = 0; i < c->rcpt_target_count; i++)
			add_target(c, c->rcpt_targets[i], c->rcpt_orcpt, c->rcpt_given, c->rcpt_notify);
	clear_rcpt(c);
	smtp_session_rcpt_done(c->s, reply);
}

static void on_quota(const struct ipc_msg *reply, const char *error, void *arg)
{
	struct smtpd_conn *c = arg;
	const char *status = reply != NULL ? ipc_get_str(reply, "status") : NULL;

	if (status != NULL && strcmp(status, "over") == 0)
		c->quota_over++;
	else if (status == NULL || strcmp(status, "ok") != 0)
		/* The quota cannot be checked now: accept, local decides. */
		log_warn("quota check failed: %s", error != NULL ? error : status);
	if (--c->quota_pending == 0 && !c->gone)
		rcpt_finish(c);
	conn_unref(c);
}

static void keep_target(struct smtpd_conn *c, const char *address)
{
	c->rcpt_targets = xreallocarray(c->rcpt_targets, c->rcpt_target_count + 1, sizeof *c->rcpt_targets);
	c->rcpt_targets[c->rcpt_target_count++] = xstrdup(address);
}

/* accept_as_given - take the recipient as the client wrote it (a local
 * sender's remote recipient, or <postmaster>), with no quota to check. */
static void accept_as_given(struct smtpd_conn *c, struct auth_expand_reply *res)
{
	auth_expand_reply_free(res);
	keep_target(c, c->rcpt_given);
	c->quota_checked = c->quota_over = 0;
	rcpt_finish(c);
	conn_unref(c);
}

static void on_expand(const struct ipc_msg *reply, const char *error, void *arg)
{
	struct smtpd_conn *c = arg;
	struct auth_expand_reply res;
	const char *parse_error = NULL;
	int id = 0;

	if (c->gone) {
		conn_unref(c);
		return;
	}
	if (reply == NULL || auth_parse_expand(reply, &res, &parse_error) < 0) {
		log_warn("recipient lookup failed: %s", reply == NULL ? error : parse_error);
		smtp_session_rcpt_done(c->s, R_RCPT_TEMPFAIL);
		conn_unref(c);
		return;
	}
	switch (res.result) {
	case AUTH_R_OK:
		break;
	case AUTH_R_UNKNOWN:
		id = R_UNKNOWN_USER;
		break;
	case AUTH_R_NOT_HOSTED:
		if (c->local || smtp_session_auth_user(c->s) != NULL) {
			/* Local users (pickup) and authenticated ones may send
			 * anywhere: queued for outbound delivery. */
			accept_as_given(c, &res);
			return;
		}
		id = R_RELAY_DENIED;
		break;
	default:
		log_warn("recipient lookup: %s %s", auth_result_name(res.result), res.reason ? res.reason : "");
		id = R_RCPT_TEMPFAIL;
		break;
	}
	if (id != 0 && c->rcpt_postmaster) {
		/* RFC 5321 4.5.1: <postmaster> is always accepted; undeliverable,
		 * it bounces like any failed recipient. */
		log_warn("<postmaster> goes to %s, which is %s: add it with mailctl alias add",
			 c->rcpt_given, auth_result_name(res.result));
		accept_as_given(c, &res);
		return;
	}
	if (id != 0) {
		auth_expand_reply_free(&res);
		smtp_session_rcpt_done(c->s, id);
		conn_unref(c);
		return;
	}
	/* Every target is queued; targets in a hosted domain without a
	 * mailbox are queued too, so that qmgr bounces them to the sender. */
	for (size_t i = 0; i < res.local_count; i++)
		keep_target(c, res.local[i].mailbox);
	for (size_t i = 0; i < res.remote_count; i++)
		keep_target(c, res.remote[i]);
	for (size_t i = 0; i < res.unknown_count; i++)
		keep_target(c, res.unknown[i]);

	/* Mailboxes with a quota: ask local whether this message still fits. */
	const struct smtp_mail_params *mp = smtp_session_mail_params(c->s);
	long long size = mp != NULL && mp->size > 0 ? mp->size : 0;

	c->quota_over = 0;
	c->quota_checked = 0;
	c->quota_pending = 1;
	for (size_t i = 0; i < res.local_count; i++) {
		struct buf req = BUF_INIT;

		if (res.local[i].quota <= 0)
			continue;
		c->quota_pending++;
		c->quota_checked++;
		c->refs++;
		ipc_begin(&req);
		ipc_put_str(&req, "cmd", "quota");
		ipc_put_str(&req, "mailbox", res.local[i].mailbox);
		ipc_put_int(&req, "size", size);
		ipc_put_int(&req, "quota", res.local[i].quota);
		ipc_async_request(c->d->local, &req, -1, on_quota, c);
		buf_free(&req);
	}
	auth_expand_reply_free(&res);
	if (--c->quota_pending == 0)
		rcpt_finish(c);
	conn_unref(c);
}

static void cb_rcpt(void *ctx, const struct mail_addr *rcpt, const struct smtp_rcpt_params *p)
{
	struct smtpd_conn *c = ctx;
	struct buf req = BUF_INIT;
	char *address = addr_format(c->pool, rcpt);

	/* <postmaster> without a domain means this host's postmaster. */
	c->rcpt_postmaster = rcpt->domain[0] == '\0';
	if (c->rcpt_postmaster)
		address = pool_printf(c->pool, "postmaster@%s", c->d->params->myhostname);

	clear_rcpt(c);
	/* ORCPT goes only where the client gave it (RFC 3461); the address as
	 * given is kept apart, for X-Original-To: a client must not write
	 * that header by choosing an ORCPT. */
	c->rcpt_orcpt = xstrdup(p->orcpt != NULL ? p->orcpt : "");
	c->rcpt_given = xstrdup(address);
	c->rcpt_notify = (int)p->notify;
	c->refs++;
	ipc_begin(&req);
	auth_put_expand(&req, address);
	ipc_async_request(c->d->auth, &req, -1, on_expand, c);
	buf_free(&req);
}

/* queue_has_room - below queue_minfree the queue refuses new mail. */
static bool queue_has_room(const struct smtpd *d)
{
	struct statvfs st;

	if (statvfs(".", &st) < 0)
		return true;
	return (long long)st.f_bavail * (long long)st.f_frsize >= d->params->queue_minfree;
}

static void cb_data_open(void *ctx)
{
	struct smtpd_conn *c = ctx;
	char path[64];

	if (!queue_has_room(c->d)) {
		log_warn("queue file system below queue_minfree: refusing mail");
		smtp_session_data_open_done(c->s, R_NO_SPACE, NULL);
		return;
	}
	queue_id_new(c->queue_id);
	snprintf(path, sizeof path, "%s/%s", QUEUE_CONTENT_DIR, c->queue_id);
	c->content_fd = smtpd_spare_take(&c->d->spares, path);
	if (c->content_fd < 0)
		c->content_fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (c->content_fd < 0) {
		int err = errno;

		log_warn("%s: cannot create: %s", path, strerror(err));
		smtp_session_data_open_done(c->s, err == ENOSPC || err == EDQUOT ? R_NO_SPACE : R_QUEUE_ERROR,
					    NULL);
		return;
	}
	smtp_session_data_open_done(c->s, 0, c->queue_id);
}

/* content_flush - write what content_out holds; 0, or -1 with errno. */
static int content_flush(struct smtpd_conn *c)
{
	int rc = fd_write_all(c->content_fd, c->content_out.data, c->content_out.len);

	buf_reset(&c->content_out);
	return rc;
}

static int cb_data_write(void *ctx, const void *data, size_t len)
{
	struct smtpd_conn *c = ctx;

	buf_append(&c->content_out, data, len);
	return c->content_out.len >= CONTENT_WRITE_CHUNK ? content_flush(c) : 0;
}

static void on_enqueued(const struct ipc_msg *reply, const char *error, void *arg)
{
	struct smtpd_conn *c = arg;
	const char *status = reply != NULL ? ipc_get_str(reply, "status") : NULL;
	bool ok = status != NULL && strcmp(status, "ok") == 0;

	c->enqueueing = false;
	if (!ok) {
		const char *reason = reply != NULL ? ipc_get_str(reply, "reason") : error;

		log_warn("%s: enqueue failed: %s", c->queue_id, reason != NULL ? reason : "?");
		/* The file goes only if qmgr certainly did not take it. */
		char path[64];

		snprintf(path, sizeof path, "%s/%s", QUEUE_CONTENT_DIR, c->queue_id);
		if (reply != NULL)
			unlink(path);
	}
	if (!c->gone) {
		smtp_session_data_done(c->s, ok ? R_QUEUED : R_QUEUE_ERROR, c->queue_id);
		if (c->shutdown_after)
			smtp_session_shutdown(c->s);
	}
	clear_targets(c);
	conn_unref(c);
}

/* enqueue - the content is durable: hand the envelope to qmgr, whose
 * answer (on_enqueued) becomes the reply to the client. */
static void enqueue(struct smtpd_conn *c, off_t size)
{
	const struct mail_addr *sender = smtp_session_sender(c->s);
	const struct smtp_mail_params *mp = smtp_session_mail_params(c->s);
	struct buf req = BUF_INIT;
	char who[300];

	snprintf(who, sizeof who, "%s[%s]", c->client_name, c->client_addr);
	if (c->local)
		log_info("%s: uid=%lu (%s), from=<%s>", c->queue_id, (unsigned long)c->uid, c->client_name,
			 addr_format(c->pool, sender));
	ipc_begin(&req);
	ipc_put_str(&req, "cmd", "enqueue");
	ipc_put_str(&req, "id", c->queue_id);
	ipc_put_str(&req, "sender", addr_format(c->pool, sender));
	ipc_put_int(&req, "size", size);
	if (mp->envid != NULL)
		ipc_put_str(&req, "envid", mp->envid);
	if (mp->ret != NULL)
		ipc_put_str(&req, "ret", mp->ret);
	ipc_put_str(&req, "client", who);
	for (size_t i = 0; i < c->target_count; i++) {
		ipc_put_str(&req, "rcpt", c->targets[i].address);
		ipc_put_str(&req, "orcpt", c->targets[i].orcpt);
		ipc_put_str(&req, "rcpt_to", c->targets[i].rcpt_to);
		ipc_put_int(&req, "notify", c->targets[i].notify);
	}
	ipc_async_request(c->d->qmgr, &req, -1, on_enqueued, c);
	buf_free(&req);
}

/* content_failed - the content could not be written or synced: nothing
 * stays behind, and the client hears why (disk full, or queue trouble). */
static void content_failed(struct smtpd_conn *c, const char *what, int err)
{
	log_warn("%s: %s: %s", c->queue_id, what, strerror(err));
	discard_content(c);
	c->enqueueing = false;
	if (!c->gone) {
		smtp_session_data_done(c->s, err == ENOSPC || err == EDQUOT ? R_NO_SPACE : R_QUEUE_ERROR, NULL);
		if (c->shutdown_after)
			smtp_session_shutdown(c->s);
	}
	conn_unref(c);
}

/* on_content_synced - the fsync ran on a worker thread (a blocking call
 * here would stall every other session of this process). */
static void on_content_synced(int err, void *arg)
{
	struct smtpd_conn *c = arg;
	char path[64];

	if (err != 0) {
		content_failed(c, "fsync", err);
		return;
	}
	snprintf(path, sizeof path, "%s/%s", QUEUE_CONTENT_DIR, c->queue_id);
	if (close(c->content_fd) < 0) {
		err = errno;
		c->content_fd = -1;
		unlink(path);
		content_failed(c, "close", err);
		return;
	}
	c->content_fd = -1;
	if (c->gone) {
		/* Nobody heard a 250: the client will send it again. */
		unlink(path);
		c->enqueueing = false;
		clear_targets(c);
		conn_unref(c);
		return;
	}
	enqueue(c, c->content_size); /* the reference moves to the request */
}

static void cb_data_close(void *ctx, bool ok)
{
	struct smtpd_conn *c = ctx;

	if (!ok) {
		discard_content(c);
		return;
	}
	c->enqueueing = true;
	c->refs++;
	if (content_flush(c) < 0) {
		content_failed(c, "write", errno);
		return;
	}
	buf_free(&c->content_out);
	c->content_size = lseek(c->content_fd, 0, SEEK_END);
	fileop_fsync(c->d->fileops, c->content_fd, on_content_synced, c);
}

/* cb_flow - the engine holds much unprocessed input while it waits for an
 * answer: stop reading from this client until it catches up. */
static void cb_flow(void *ctx, bool paused)
{
	struct smtpd_conn *c = ctx;

	if (c->gone || c->closing)
		return;
	if (paused)
		bufferevent_disable(c->bev, EV_READ);
	else
		bufferevent_enable(c->bev, EV_READ);
}

/* ---- TLS ------------------------------------------------------------ */

static void on_read(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

/* offer_auth - what AUTH offers now, by whether TLS is on. */
static void offer_auth(struct smtpd_conn *c, bool secure)
{
	smtp_session_set_auth_mechs(c->s, secure ? c->d->mechs_tls : c->d->mechs_clear);
}

/* cb_starttls - the 220 is written (straight to the socket, or queued on
 * the plain bufferevent, which the filter sends before its handshake). */
static void cb_starttls(void *ctx)
{
	struct smtpd_conn *c = ctx;
	struct bufferevent *tls;
	struct timeval tv = { .tv_sec = c->d->params->smtpd_timeout };
	struct evbuffer *in;

	if (c->gone)
		return;
	/* Whatever else this read brought came in clear: never run it. */
	in = bufferevent_get_input(c->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	tls = tls_accept_filter(c->d->tls, c->d->svc->base, c->bev);
	if (tls == NULL) {
		log_warn("%s: cannot start TLS", c->client_addr);
		conn_close(c);
		return;
	}
	c->bev = tls;
	c->tls = true;
	bufferevent_setcb(c->bev, on_read, on_drained, on_event, c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* tls_ready - the handshake is done: STARTTLS continues the session,
 * implicit TLS starts it. */
static void tls_ready(struct smtpd_conn *c)
{
	struct tls_info info;

	if (tls_get_info(c->bev, &info) < 0)
		memset(&info, 0, sizeof info);
	offer_auth(c, true);
	if (c->d->mode == SMTPD_SMTPS) {
		smtp_session_set_tls(c->s, true, info.version, info.cipher, info.bits);
		smtp_session_start(c->s);
	} else {
		smtp_session_tls_started(c->s, info.version, info.cipher, info.bits);
	}
}

/* ---- SASL, through auth ------------------------------------------------ */

/* The engine's answers, by auth's verdict. */
static const enum smtp_auth_answer smtp_answer[] = {
	[AUTH_SASL_CONTINUE] = SMTP_AUTH_CONTINUE, [AUTH_SASL_OK] = SMTP_AUTH_OK, [AUTH_SASL_FAIL] = SMTP_AUTH_FAIL,
	[AUTH_SASL_ENCRYPT] = SMTP_AUTH_ENCRYPT, [AUTH_SASL_TEMP] = SMTP_AUTH_TEMP,
};

static void on_sasl(void *arg, enum auth_sasl_result result, const void *challenge, size_t len, const char *user)
{
	struct smtpd_conn *c = arg;

	if (!c->gone && c->sasl_session != 0) {
		if (result != AUTH_SASL_CONTINUE)
			c->sasl_session = 0;
		smtp_session_auth_done(c->s, smtp_answer[result], challenge, len, user);
	}
	conn_unref(c);
}

static void cb_auth_start(void *ctx, const char *mech, const void *resp, size_t len, bool has_resp)
{
	struct smtpd_conn *c = ctx;

	c->sasl_session = sasl_relay_new_session();
	c->refs++;
	/* "secure": the password may travel (TLS, or the operator allows it) */
	sasl_relay_start(c->d->sasl, c->sasl_session, AUTH_SASL_SERVICE_SMTP, mech, resp, len, has_resp,
			 c->client_addr, c->tls || c->d->params->smtpd_auth_plaintext, on_sasl, c);
}

static void cb_auth_step(void *ctx, const void *resp, size_t len)
{
	struct smtpd_conn *c = ctx;

	c->refs++;
	sasl_relay_step(c->d->sasl, c->sasl_session, resp, len, on_sasl, c);
}

/* cb_auth_cancel - the client gave up (or went away): auth forgets the
 * exchange; an answer still on its way finds no session here. */
static void cb_auth_cancel(void *ctx)
{
	struct smtpd_conn *c = ctx;

	if (c->sasl_session == 0)
		return;
	sasl_relay_cancel(c->d->sasl, c->sasl_session);
	c->sasl_session = 0;
}

static const struct smtp_server_callbacks callbacks = {
	.write = cb_write,
	.close = cb_close,
	.mail = cb_mail,
	.rcpt = cb_rcpt,
	.data_open = cb_data_open,
	.data_write = cb_data_write,
	.data_close = cb_data_close,
	.log = cb_log,
	.flow = cb_flow,
	.starttls = cb_starttls,
	.auth_start = cb_auth_start,
	.auth_step = cb_auth_step,
	.auth_cancel = cb_auth_cancel,
};

/* ---- socket events ------------------------------------------------- */

static void on_read(struct bufferevent *bev, void *arg)
{
	struct smtpd_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	unsigned char chunk[16384];
	size_t n;

	c->refs++;
	/* STARTTLS replaces c->bev: what is left of the old one is not read. */
	while (!c->gone && c->bev == bev && (n = evbuffer_remove(in, chunk, sizeof chunk)) > 0)
		smtp_session_input(c->s, chunk, n);
	conn_unref(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtpd_conn *c = arg;

	if (bev != c->bev)
		return; /* the plain bufferevent under a TLS filter */
	if (what & BEV_EVENT_CONNECTED) {
		tls_ready(c);
		return;
	}
	if ((what & BEV_EVENT_ERROR) && c->tls) {
		char why[256];

		log_info("TLS error from %s[%s]: %s", c->client_name, c->client_addr,
			 tls_last_error(bev, why, sizeof why));
	}
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) && !c->closing) {
		bufferevent_enable(c->bev, EV_READ); /* a timeout disables reading */
		smtp_session_timeout(c->s);
		return;
	}
	conn_close(c);
}

/* ---- local users (pickup) ------------------------------------------ */

/* Account names by uid, read before the jail (which has no /etc/passwd). */
struct user_name {
	uid_t uid;
	char *name;
};
static struct user_name *users;
static size_t user_count;

#define USERS_MAX 100000

void smtpd_users_load(void)
{
	struct passwd *pw;

	setpwent();
	while (user_count < USERS_MAX && (pw = getpwent()) != NULL) {
		users = xreallocarray(users, user_count + 1, sizeof *users);
		users[user_count].uid = pw->pw_uid;
		users[user_count].name = xstrdup(pw->pw_name);
		user_count++;
	}
	endpwent();
}

/* user_name - the account name of uid into out: from the list read at
 * start, else the system (unjailed), else "unknown". */
static void user_name(uid_t uid, char *out, size_t size)
{
	struct passwd *pw;

	for (size_t i = 0; i < user_count; i++)
		if (users[i].uid == uid) {
			snprintf(out, size, "%s", users[i].name);
			return;
		}
	pw = getpwuid(uid);
	snprintf(out, size, "%s", pw != NULL ? pw->pw_name : "unknown");
}

/* local_identity - pickup: the client is the peer's uid, whatever it
 * says later (EHLO, MAIL FROM). */
static int local_identity(int fd, struct smtpd_conn *c)
{
	pid_t pid = 0;

	if (sock_peer_cred(fd, &c->uid, &pid) < 0) {
		log_warn("pickup: no peer credentials: %s", strerror(errno));
		return -1;
	}
	c->local = true;
	user_name(c->uid, c->client_name, sizeof c->client_name);
	snprintf(c->client_addr, sizeof c->client_addr, "uid=%lu", (unsigned long)c->uid);
	log_info("pickup: connect from uid=%lu (%s), pid=%ld", (unsigned long)c->uid, c->client_name, (long)pid);
	return 0;
}

static void client_identity(int fd, struct smtpd_conn *c)
{
	sock_peer_addr(fd, c->client_addr, sizeof c->client_addr);
	/* Reverse DNS comes with the DNS work (libunbound, asynchronous). */
	snprintf(c->client_name, sizeof c->client_name, "unknown");
}

void smtpd_conn_accept(struct smtpd *d, int fd)
{
	struct smtpd_conn *c;
	struct timeval tv = { .tv_sec = d->params->smtpd_timeout };

	c = xnew(struct smtpd_conn);
	c->d = d;
	c->refs = 1;
	c->content_fd = -1;
	if (d->mode == SMTPD_PICKUP) {
		if (local_identity(fd, c) < 0) {
			close(fd);
			free(c);
			return;
		}
	} else {
		client_identity(fd, c);
	}
	c->pool = pool_create();
	if (d->mode == SMTPD_SMTPS) {
		c->bev = tls_accept_socket(d->tls, d->svc->base, fd);
		c->tls = true;
	} else {
		c->bev = bufferevent_socket_new(d->svc->base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	if (c->bev == NULL) {
		log_warn("%s: cannot set up the connection", c->client_addr);
		close(fd);
		pool_destroy(&c->pool);
		free(c);
		return;
	}
	bufferevent_setcb(c->bev, on_read, on_drained, on_event, c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->next = d->conns;
	if (d->conns != NULL)
		d->conns->prev = c;
	d->conns = c;
	service_client_opened(d->svc);
	c->s = smtp_session_new(&d->engine, &callbacks, c, c->client_addr, c->client_name);
	offer_auth(c, false);
	/* Implicit TLS: the greeting waits for the handshake (tls_ready). */
	if (d->mode != SMTPD_SMTPS)
		smtp_session_start(c->s);
}

void smtpd_conn_shutdown_all(struct smtpd *d)
{
	struct smtpd_conn *next;

	/* The 421 usually leaves at once (cb_write), and then the connection
	 * closes inside the call: hold it until its successor is known. */
	for (struct smtpd_conn *c = d->conns; c != NULL; c = next) {
		c->refs++;
		if (c->gone)
			; /* closed already, a request still pending */
		else if (c->enqueueing)
			c->shutdown_after = true; /* answer the message first */
		else
			smtp_session_shutdown(c->s);
		next = c->next;
		conn_unref(c);
	}
}
