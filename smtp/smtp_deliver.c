/* smtp_deliver.c - one delivery request from qmgr: route the destination
 * (MX, or the relay host), try its addresses in order until one session
 * gives every recipient a verdict, speak SMTP there through the client
 * engine (libmail/smtp_client.h) with opportunistic STARTTLS, log each
 * recipient's outcome, and answer qmgr (smtp/PROTOCOL.md).
 *
 * An address is given up for the next one when connecting fails or the
 * session fails before the transaction (greeting, EHLO, TLS, timeouts,
 * a lost connection: the engine's next_host); recipients the server
 * answered keep that answer. When no address is left, the recipients
 * still open are deferred with the last reason. */
#include "config.h"
#include "smtp.h"
#include "../libmail/dns.h"
#include "../libmail/queue_id.h"
#include "../libmail/smtp_client.h"
#include "../libutil/buf.h"
#include "../libutil/ipc.h"
#include "../libutil/ipc_server.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/pool.h"
#include "../libutil/sanitize.h"
#include "../libutil/service.h"
#include "../libutil/tls.h"
#include "../libutil/tls_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RCPTS_MAX 1000
#define TEXT_MAX 1024

enum rcpt_state { R_OPEN, R_SENT, R_DEFERRED, R_BOUNCED };

struct rcpt {
	const char *addr;   /* in the delivery's pool */
	const char *orcpt;  /* "" for none */
	unsigned notify;
	enum rcpt_state state;
	char dsn[16];
	char *text;         /* the reply or our reason */
};

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
	int fd;
	off_t offset;
	bool body_8bit;
	struct rcpt *rcpts;
	size_t nrcpt;
	struct dns_query *dnsq;
	struct target *targets;
	size_t ntargets, next;
	char *last_dsn, *last_text; /* why the last address did not do */
	/* the session under way */
	struct target *cur;
	char relay[320];        /* "host[addr]:port" */
	struct bufferevent *bev;
	struct smtp_client *client;
	struct event *timer;
	bool tls_pending;
	bool closing;           /* close once the output is out */
	size_t *batch;          /* rcpts[] indices of the message given */
	size_t nbatch;
	struct timespec arrival;
	struct smtp_dest *dest;
	struct delivery *next_waiting;
	int busy;               /* our callbacks on the stack: free when they return */
	bool finished;
};

static void delivery_free(struct delivery *dl);

/* hold / release - keep dl while a callback that drives the engine runs:
 * the engine may end the delivery from inside (finish). */
static void hold(struct delivery *dl)
{
	dl->busy++;
}

static bool release(struct delivery *dl)
{
	if (--dl->busy == 0 && dl->finished) {
		delivery_free(dl);
		return false;
	}
	return !dl->finished;
}

static void try_next(struct delivery *dl);
static void dest_done(struct smtp_daemon *d, struct smtp_dest *dest);

/* ---- the end ---------------------------------------------------------- */

static const char *state_name(enum rcpt_state s)
{
	return s == R_SENT ? "sent" : s == R_BOUNCED ? "bounced" : "deferred";
}

static double delay_since(const struct delivery *dl)
{
	struct timespec now;
	double d;

	clock_gettime(CLOCK_REALTIME, &now);
	d = (double)(now.tv_sec - dl->arrival.tv_sec) + (double)(now.tv_nsec - dl->arrival.tv_nsec) / 1e9;
	return d < 0 ? 0 : d;
}

/* settle - a recipient's verdict, logged as operators expect. */
static void settle(struct delivery *dl, struct rcpt *r, enum rcpt_state state, const char *dsn, const char *text,
		   const char *relay)
{
	char s_to[SANITIZE_MAX], s_text[SANITIZE_MAX], s_relay[SANITIZE_MAX];

	r->state = state;
	snprintf(r->dsn, sizeof r->dsn, "%s", dsn);
	free(r->text);
	r->text = xstrdup(text);
	sanitize(s_to, sizeof s_to, r->addr, strlen(r->addr));
	sanitize(s_text, sizeof s_text, text, strlen(text));
	sanitize(s_relay, sizeof s_relay, relay, strlen(relay));
	log_info("%s: to=<%s>, relay=%s, delay=%.2f, dsn=%s, status=%s (%s)", dl->id, s_to, s_relay, delay_since(dl),
		 r->dsn, state_name(state), s_text);
}

static void conn_free(struct delivery *dl)
{
	smtp_client_free(&dl->client);
	if (dl->bev != NULL)
		bufferevent_free(dl->bev);
	dl->bev = NULL;
	if (dl->timer != NULL)
		event_free(dl->timer);
	dl->timer = NULL;
	dl->tls_pending = dl->closing = false;
	free(dl->batch);
	dl->batch = NULL;
	dl->nbatch = 0;
}

/* finish - every recipient has a verdict: answer qmgr, free. */
static void finish(struct delivery *dl)
{
	struct buf out = BUF_INIT;

	conn_free(dl);
	ipc_reply_begin(&out, dl->req);
	ipc_put_str(&out, "status", "ok");
	for (size_t i = 0; i < dl->nrcpt; i++) {
		struct rcpt *r = &dl->rcpts[i];

		ipc_put_str(&out, "rcpt", r->addr);
		ipc_put_str(&out, "result", state_name(r->state));
		ipc_put_str(&out, "dsn", r->dsn);
		ipc_put_str(&out, "text", r->text != NULL ? r->text : "");
	}
	ipc_peer_send(dl->peer, &out);
	buf_free(&out);
	ipc_peer_unref(&dl->peer);
	dl->finished = true;
	if (dl->busy == 0)
		delivery_free(dl);
}

static void delivery_free(struct delivery *dl)
{
	dns_cancel(dl->dnsq);
	for (size_t i = 0; i < dl->nrcpt; i++)
		free(dl->rcpts[i].text);
	free(dl->rcpts);
	for (size_t i = 0; i < dl->ntargets; i++)
		free(dl->targets[i].host);
	free(dl->targets);
	free(dl->last_dsn);
	free(dl->last_text);
	if (dl->fd >= 0)
		close(dl->fd);
	pool_destroy(&dl->pool);
	dl->d->active--;
	{
		struct smtp_daemon *d = dl->d;
		struct smtp_dest *dest = dl->dest;

		free(dl);
		dest_done(d, dest);
	}
}

/* settle_open - every recipient still open gets this verdict. */
static void settle_open(struct delivery *dl, enum rcpt_state state, const char *dsn, const char *text,
			const char *relay)
{
	for (size_t i = 0; i < dl->nrcpt; i++)
		if (dl->rcpts[i].state == R_OPEN)
			settle(dl, &dl->rcpts[i], state, dsn, text, relay);
}

static bool all_settled(const struct delivery *dl)
{
	for (size_t i = 0; i < dl->nrcpt; i++)
		if (dl->rcpts[i].state == R_OPEN)
			return false;
	return true;
}

static void note_failure(struct delivery *dl, const char *dsn, const char *text)
{
	free(dl->last_dsn);
	free(dl->last_text);
	dl->last_dsn = xstrdup(dsn);
	dl->last_text = xstrdup(text);
}

/* session_over - the connection is done with: the next address, or the end. */
static void session_over(struct delivery *dl)
{
	conn_free(dl);
	if (all_settled(dl)) {
		finish(dl);
		return;
	}
	try_next(dl);
}

/* ---- the engine's callbacks ------------------------------------------- */

static void arm_timer(struct delivery *dl)
{
	const struct yb_params *p = dl->d->params;
	enum smtp_client_stage st = dl->client != NULL ? smtp_client_stage(dl->client) : SMTP_STAGE_GREETING;
	struct timeval tv = { .tv_sec = p->smtp_command_timeout };

	if (st == SMTP_STAGE_GREETING)
		tv.tv_sec = p->smtp_connect_timeout;
	else if (st == SMTP_STAGE_CONTENT || st == SMTP_STAGE_DOT)
		tv.tv_sec = p->smtp_data_timeout;
	evtimer_add(dl->timer, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct delivery *dl = arg;

	(void)fd;
	(void)what;
	if (dl->client != NULL) {
		smtp_client_timeout(dl->client);
		return;
	}
	/* connecting */
	char text[512];

	snprintf(text, sizeof text, "connect to %s: Connection timed out", dl->relay);
	note_failure(dl, "4.4.1", text);
	session_over(dl);
}

static void cl_write(void *ctx, const void *data, size_t len)
{
	struct delivery *dl = ctx;

	bufferevent_write(dl->bev, data, len);
}

static ssize_t cl_read_content(void *ctx, void *buf, size_t max)
{
	struct delivery *dl = ctx;
	ssize_t n = pread(dl->fd, buf, max, dl->offset);

	if (n > 0)
		dl->offset += n;
	return n;
}

static void cl_message_done(void *ctx, const struct smtp_client_result *res, size_t n, bool reusable)
{
	struct delivery *dl = ctx;

	for (size_t i = 0; i < n && i < dl->nbatch; i++) {
		struct rcpt *r = &dl->rcpts[dl->batch[i]];
		char text[TEXT_MAX + 16];

		snprintf(text, sizeof text, "%d %s %s", res[i].code, res[i].enhanced, res[i].text);
		if (res[i].status == SMTP_CLIENT_DEFERRED && res[i].next_host) {
			/* the session failed, not the recipient: another host */
			note_failure(dl, res[i].enhanced, res[i].remote ? text : res[i].text);
			continue;
		}
		if (res[i].status == SMTP_CLIENT_DELIVERED)
			settle(dl, r, R_SENT, res[i].enhanced, text, dl->relay);
		else
			settle(dl, r, res[i].status == SMTP_CLIENT_FAILED ? R_BOUNCED : R_DEFERRED, res[i].enhanced,
			       res[i].remote ? text : res[i].text, dl->relay);
	}
	if (reusable)
		smtp_client_quit(dl->client);
}

static void cl_close(void *ctx, const struct smtp_client_result *why)
{
	struct delivery *dl = ctx;

	if (why != NULL) {
		char text[TEXT_MAX + 16];

		snprintf(text, sizeof text, "%d %s %s", why->code, why->enhanced, why->text);
		note_failure(dl, why->enhanced, why->remote ? text : why->text);
	}
	/* Let the last command (QUIT) leave before the socket goes. */
	dl->closing = true;
	if (dl->bev == NULL || evbuffer_get_length(bufferevent_get_output(dl->bev)) == 0)
		session_over(dl);
}

static void on_read(struct bufferevent *bev, void *arg);
static void on_drained(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

static void cl_want_tls(void *ctx)
{
	struct delivery *dl = ctx;
	struct evbuffer *in = bufferevent_get_input(dl->bev);

	evbuffer_drain(in, evbuffer_get_length(in));
	/* verify: the chain must lead to a trusted CA and the certificate name
	 * the MX host (RFC 7672 without DANE: the names DNS gave us). */
	dl->bev = tls_connect_filter(dl->d->tls, dl->d->svc->base, dl->bev, dl->cur->host,
				     smtp_tls_level_for(dl->d, dl->dest->name) == SMTP_TLS_VERIFY);
	dl->tls_pending = true;
	bufferevent_setcb(dl->bev, on_read, on_drained, on_event, dl);
	bufferevent_enable(dl->bev, EV_READ | EV_WRITE);
}

static void cl_log(void *ctx, const char *line)
{
	struct delivery *dl = ctx;

	log_info("%s: %s", dl->id, line);
}

static const struct smtp_client_callbacks client_callbacks = {
	.write = cl_write,
	.read_content = cl_read_content,
	.message_done = cl_message_done,
	.close = cl_close,
	.want_tls = cl_want_tls,
	.log = cl_log,
};

/* ---- the connection --------------------------------------------------- */

static void start_session(struct delivery *dl)
{
	struct smtp_daemon *d = dl->d;
	enum smtp_tls_level level = smtp_tls_level_for(d, dl->dest->name);
	struct smtp_client_config config = {
		.helo_name = d->params->myhostname,
		.tls = level == SMTP_TLS_NONE ? SMTP_CLIENT_TLS_NONE :
		       level == SMTP_TLS_MAY  ? SMTP_CLIENT_TLS_MAY :
						SMTP_CLIENT_TLS_ENCRYPT,
		.auth_user = d->relay_host != NULL ? d->relay_user : NULL,
		.auth_password = d->relay_host != NULL ? d->relay_password : NULL,
	};
	struct smtp_client_rcpt *rcpts = xcalloc(dl->nrcpt, sizeof *rcpts);
	struct smtp_client_message m = {
		.sender = dl->sender,
		.size = dl->size,
		.body_8bit = dl->body_8bit,
		.ret = dl->ret,
		.envid = dl->envid,
	};

	dl->batch = xcalloc(dl->nrcpt, sizeof *dl->batch);
	for (size_t i = 0; i < dl->nrcpt; i++) {
		if (dl->rcpts[i].state != R_OPEN)
			continue;
		rcpts[dl->nbatch].addr = dl->rcpts[i].addr;
		rcpts[dl->nbatch].notify = dl->rcpts[i].notify;
		rcpts[dl->nbatch].orcpt = dl->rcpts[i].orcpt[0] != '\0' ? dl->rcpts[i].orcpt : NULL;
		dl->batch[dl->nbatch++] = i;
	}
	m.rcpts = rcpts;
	m.nrcpt = dl->nbatch;
	dl->offset = 0;
	dl->client = smtp_client_new(&config, &client_callbacks, dl);
	smtp_client_send(dl->client, &m);
	free(rcpts);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct delivery *dl = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	unsigned char chunk[16384];
	size_t n;

	hold(dl);
	while (!dl->finished && dl->client != NULL && bev == dl->bev && (n = evbuffer_remove(in, chunk, sizeof chunk)) > 0) {
		smtp_client_input(dl->client, chunk, n);
		if (!dl->finished && dl->client != NULL && !smtp_client_closed(dl->client))
			arm_timer(dl);
	}
	release(dl);
}

static void on_drained(struct bufferevent *bev, void *arg)
{
	struct delivery *dl = arg;

	(void)bev;
	if (dl->closing)
		session_over(dl);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct delivery *dl = arg;
	char why[256];

	if (bev != dl->bev)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		hold(dl);
		if (dl->tls_pending) {
			struct tls_info info;

			dl->tls_pending = false;
			if (tls_get_info(bev, &info) == 0)
				log_info("%s: %s TLS connection established to %s: %s with cipher %s (%d/%d bits)", dl->id,
					 tls_peer_verified(bev) ? "Trusted" : "Untrusted", dl->relay, info.version,
					 info.cipher, info.bits, info.bits);
			smtp_client_tls_done(dl->client, true);
		} else {
			start_session(dl);
		}
		if (release(dl) && dl->client != NULL && !smtp_client_closed(dl->client))
			arm_timer(dl);
		return;
	}
	if (dl->client == NULL) {
		char text[512];

		snprintf(text, sizeof text, "connect to %s: %s", dl->relay,
			 EVUTIL_SOCKET_ERROR() != 0 ? strerror(EVUTIL_SOCKET_ERROR()) : "Connection refused");
		note_failure(dl, "4.4.1", text);
		session_over(dl);
		return;
	}
	if (dl->tls_pending) {
		dl->tls_pending = false;
		log_info("%s: TLS handshake with %s failed: %s", dl->id, dl->relay, tls_last_error(bev, why, sizeof why));
		smtp_client_tls_done(dl->client, false);
		return;
	}
	if (dl->closing) {
		session_over(dl);
		return;
	}
	smtp_client_lost(dl->client, (what & BEV_EVENT_EOF) ? "connection closed by the server" : "connection error");
}

/* try_next - connect to the next address, or defer what is left. */
static void try_next(struct delivery *dl)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char addr[DNS_ADDR_STRLEN];
	/* the relay host's port, whether found by MX or not */
	int port = dl->d->relay_host != NULL ? dl->d->relay_port : (int)dl->d->params->smtp_tcp_port;

	if (dl->next >= dl->ntargets) {
		settle_open(dl, R_DEFERRED, dl->last_dsn != NULL ? dl->last_dsn : "4.4.1",
			    dl->last_text != NULL ? dl->last_text : "no host to deliver to",
			    dl->relay[0] != '\0' ? dl->relay : "none");
		finish(dl);
		return;
	}
	dl->cur = &dl->targets[dl->next++];
	memset(&ss, 0, sizeof ss);
	if (dl->cur->addr.family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((unsigned short)port);
		memcpy(&s6->sin6_addr, dl->cur->addr.addr, 16);
		len = sizeof *s6;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((unsigned short)port);
		memcpy(&s4->sin_addr, dl->cur->addr.addr, 4);
		len = sizeof *s4;
	}
	snprintf(dl->relay, sizeof dl->relay, "%s[%s]:%d", dl->cur->host,
		 dns_address_str(&dl->cur->addr, addr, sizeof addr), port);
	dl->timer = evtimer_new(dl->d->svc->base, on_timer, dl);
	dl->bev = bufferevent_socket_new(dl->d->svc->base, -1, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(dl->bev, on_read, on_drained, on_event, dl);
	bufferevent_enable(dl->bev, EV_READ | EV_WRITE);
	arm_timer(dl);
	if (bufferevent_socket_connect(dl->bev, (struct sockaddr *)&ss, (int)len) < 0) {
		/* No socket at all (a refused connection comes to on_event). */
		char text[512];

		snprintf(text, sizeof text, "connect to %s: %s", dl->relay, strerror(errno));
		note_failure(dl, "4.4.1", text);
		session_over(dl);
	}
}

/* on_route - where to deliver: every address of every usable host. */
static void on_route(const struct dns_mx_result *res, void *arg)
{
	struct delivery *dl = arg;

	dl->dnsq = NULL;
	if (res->status != DNS_OK) {
		settle_open(dl, res->status == DNS_TEMP ? R_DEFERRED : R_BOUNCED, res->dsn, res->reason, "none");
		finish(dl);
		return;
	}
	for (size_t h = 0; h < res->nhosts; h++)
		for (size_t a = 0; a < res->hosts[h].naddrs; a++) {
			dl->targets = xreallocarray(dl->targets, dl->ntargets + 1, sizeof *dl->targets);
			dl->targets[dl->ntargets].host = xstrdup(res->hosts[h].name);
			dl->targets[dl->ntargets].addr = res->hosts[h].addrs[a];
			dl->ntargets++;
		}
	note_failure(dl, "4.4.3", res->reason);
	try_next(dl);
}

/* ---- destinations: concurrency and rate ------------------------------- */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* route - the delivery starts: where does its mail go? */
static void route(struct delivery *dl)
{
	struct smtp_daemon *d = dl->d;

	dl->dest->running++;
	dl->dest->last_start_ms = now_ms();
	if (d->relay_host != NULL && !d->relay_mx)
		dl->dnsq = dns_route_host(d->dns, d->relay_host, on_route, dl);
	else
		dl->dnsq = dns_route_mx(d->dns, d->relay_host != NULL ? d->relay_host : dl->nexthop,
					d->params->myhostname, on_route, dl);
}

static void dest_pump(struct smtp_daemon *d, struct smtp_dest *dest);
static void dest_sweep(struct smtp_daemon *d);

static void on_rate_delay(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_dest *dest = arg;
	struct smtp_daemon *d = dest->waiting != NULL ? dest->waiting->d : NULL;

	(void)fd;
	(void)what;
	if (d != NULL)
		dest_pump(d, dest);
}

/* dest_pump - start what the destination's limits allow now. */
static void dest_pump(struct smtp_daemon *d, struct smtp_dest *dest)
{
	long long delay_ms = d->params->smtp_destination_rate_delay * 1000;
	long long limit = delay_ms > 0 ? 1 : d->params->smtp_destination_concurrency_limit;

	while (dest->waiting != NULL && dest->running < limit) {
		struct delivery *dl = dest->waiting;
		long long wait = dest->last_start_ms + delay_ms - now_ms();

		if (delay_ms > 0 && dest->last_start_ms > 0 && wait > 0) {
			struct timeval tv = { wait / 1000, (wait % 1000) * 1000 };

			if (dest->delay_ev == NULL)
				dest->delay_ev = evtimer_new(d->svc->base, on_rate_delay, dest);
			evtimer_add(dest->delay_ev, &tv);
			return;
		}
		dest->waiting = dl->next_waiting;
		if (dest->waiting == NULL)
			dest->waiting_tail = &dest->waiting;
		route(dl);
	}
}

/* dest_enter - queue a delivery at its destination (created on demand). */
static void dest_enter(struct smtp_daemon *d, struct delivery *dl)
{
	const char *name = d->relay_host != NULL ? d->relay_host : dl->nexthop;
	struct smtp_dest *dest;

	dest_sweep(d);
	for (dest = d->dests; dest != NULL; dest = dest->next)
		if (strcasecmp(dest->name, name) == 0)
			break;
	if (dest == NULL) {
		dest = xnew(struct smtp_dest);
		dest->name = xstrdup(name);
		dest->waiting_tail = &dest->waiting;
		dest->next = d->dests;
		d->dests = dest;
	}
	dl->dest = dest;
	*dest->waiting_tail = dl;
	dest->waiting_tail = &dl->next_waiting;
	dest_pump(d, dest);
}

/* dest_sweep - forget destinations with nothing running or waiting and
 * no rate delay left to keep. */
static void dest_sweep(struct smtp_daemon *d)
{
	long long delay_ms = d->params->smtp_destination_rate_delay * 1000, now = now_ms();

	for (struct smtp_dest **pp = &d->dests; *pp != NULL;) {
		struct smtp_dest *dest = *pp;

		if (dest->running > 0 || dest->waiting != NULL || now - dest->last_start_ms < delay_ms) {
			pp = &dest->next;
			continue;
		}
		*pp = dest->next;
		if (dest->delay_ev != NULL)
			event_free(dest->delay_ev);
		free(dest->name);
		free(dest);
	}
}

/* dest_done - a delivery ended: the next may start. */
static void dest_done(struct smtp_daemon *d, struct smtp_dest *dest)
{
	dest->running--;
	dest_pump(d, dest);
	dest_sweep(d);
}

/* ---- the request -------------------------------------------------------- */

static void reply_error(struct ipc_peer *peer, int64_t req, const char *reason)
{
	struct buf out = BUF_INIT;
	char safe[SANITIZE_MAX];

	log_warn("bad request: %s", sanitize(safe, sizeof safe, reason, strlen(reason)));
	ipc_reply_begin(&out, req);
	ipc_put_str(&out, "status", "error");
	ipc_put_str(&out, "reason", reason);
	ipc_peer_send(peer, &out);
	buf_free(&out);
}

/* scan_8bit - whether the content holds octets over 127 (BODY=8BITMIME). */
static bool scan_8bit(int fd)
{
	unsigned char buf[65536];
	off_t off = 0;
	ssize_t n;

	while ((n = pread(fd, buf, sizeof buf, off)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] & 0x80)
				return true;
		off += n;
	}
	return false;
}

/* copy_request - the request's fields, checked; -1 with a reason. */
static int copy_request(struct delivery *dl, const struct ipc_msg *msg, const char **why)
{
	size_t nr = 0, no = 0, nn = 0;

	for (size_t i = 0; i < msg->count; i++) {
		const struct ipc_field *f = &msg->fields[i];
		const char *v = f->type == IPC_STR ? pool_strdup(dl->pool, (const char *)f->data) : "";

		if (strcmp(f->name, "cmd") == 0 || strcmp(f->name, "req") == 0)
			continue;
		if (f->type == IPC_STR && strcmp(f->name, "id") == 0)
			dl->id = v;
		else if (f->type == IPC_STR && strcmp(f->name, "sender") == 0)
			dl->sender = v;
		else if (f->type == IPC_STR && strcmp(f->name, "nexthop") == 0)
			dl->nexthop = v;
		else if (f->type == IPC_STR && strcmp(f->name, "envid") == 0)
			dl->envid = v[0] != '\0' ? v : NULL;
		else if (f->type == IPC_STR && strcmp(f->name, "ret") == 0)
			dl->ret = v[0] != '\0' ? v : NULL;
		else if (f->type == IPC_INT && strcmp(f->name, "size") == 0)
			dl->size = f->num;
		else if (f->type == IPC_STR && strcmp(f->name, "rcpt") == 0) {
			if (nr == RCPTS_MAX) {
				*why = "too many recipients";
				return -1;
			}
			dl->rcpts = xreallocarray(dl->rcpts, nr + 1, sizeof *dl->rcpts);
			memset(&dl->rcpts[nr], 0, sizeof dl->rcpts[nr]);
			dl->rcpts[nr].addr = v;
			dl->rcpts[nr].orcpt = "";
			nr++;
		} else if (f->type == IPC_STR && strcmp(f->name, "orcpt") == 0 && no < nr) {
			dl->rcpts[no++].orcpt = v;
		} else if (f->type == IPC_INT && strcmp(f->name, "notify") == 0 && nn < nr) {
			dl->rcpts[nn++].notify = (unsigned)f->num;
		} else {
			*why = "unexpected field";
			return -1;
		}
	}
	dl->nrcpt = nr;
	if (!queue_id_valid(dl->id) || dl->sender == NULL || dl->nexthop == NULL || nr == 0 || no != nr || nn != nr) {
		*why = "missing or misaligned fields";
		return -1;
	}
	return 0;
}

void smtp_deliver_request(struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg, void *ctx)
{
	struct smtp_daemon *d = ctx;
	const char *cmd = ipc_get_str(msg, "cmd");
	int fd = ipc_peer_take_fd(peer);
	struct delivery *dl;
	const char *why = NULL;
	struct stat st;

	if (cmd == NULL || strcmp(cmd, "deliver") != 0) {
		if (fd >= 0)
			close(fd);
		reply_error(peer, req, "unknown command");
		return;
	}
	if (fd < 0) {
		reply_error(peer, req, "no message descriptor passed");
		return;
	}
	dl = xnew(struct delivery);
	dl->d = d;
	dl->fd = fd;
	dl->req = req;
	dl->size = -1;
	dl->pool = pool_create();
	if (copy_request(dl, msg, &why) < 0) {
		reply_error(peer, req, why);
		close(fd);
		free(dl->rcpts);
		pool_destroy(&dl->pool);
		free(dl);
		return;
	}
	if (fstat(fd, &st) == 0)
		dl->arrival = st.st_mtim;
	dl->body_8bit = scan_8bit(fd);
	ipc_peer_ref(peer);
	dl->peer = peer;
	d->active++;
	dest_enter(d, dl);
}
