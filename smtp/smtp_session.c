/* smtp_session.c - one outbound SMTP connection: connect to an address,
 * drive the client engine (libmail/smtp_client.h) with the socket's bytes
 * and the delivery's content, STARTTLS through libutil/tls_client, time
 * every stage, and hand each recipient's answer to the delivery it works
 * for. After a message, a connection that can take another waits idle at
 * its destination (smtp_dest.c) for the next delivery there; one that
 * waited too long says QUIT.
 *
 * Memory: the engine may end the session from inside any callback, so
 * the session is freed only once no callback of ours is on the stack
 * (hold/release); the delivery is told through delivery_session_over. */
#include "config.h"
#include "smtp.h"
#include "../libmail/smtp_client.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
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
#include <unistd.h>

#define TEXT_MAX 1024

static void session_free(struct smtp_session *s)
{
	free(s->host);
	free(s->batch);
	free(s);
}

static void hold(struct smtp_session *s)
{
	s->busy++;
}

static void release(struct smtp_session *s)
{
	if (--s->busy == 0 && s->ended)
		session_free(s);
}

/* session_end - the connection is done with: close it, tell the delivery
 * (if any) so it moves on. */
static void session_end(struct smtp_session *s)
{
	struct delivery *dl = s->dl;

	if (s->ended)
		return;
	s->ended = true;
	dest_unpark(s->dest, s);
	smtp_client_free(&s->client);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	s->bev = NULL;
	if (s->timer != NULL)
		event_free(s->timer);
	s->timer = NULL;
	s->dl = NULL;
	if (s->busy == 0)
		session_free(s);
	if (dl != NULL) {
		dl->session = NULL;
		delivery_session_over(dl);
	}
}

static void arm_timer(struct smtp_session *s)
{
	const struct yb_params *p = s->d->params;
	enum smtp_client_stage st = s->client != NULL ? smtp_client_stage(s->client) : SMTP_STAGE_GREETING;
	struct timeval tv = { .tv_sec = p->smtp_command_timeout };

	if (st == SMTP_STAGE_GREETING)
		tv.tv_sec = p->smtp_connect_timeout;
	else if (st == SMTP_STAGE_CONTENT || st == SMTP_STAGE_DOT)
		tv.tv_sec = p->smtp_data_timeout;
	else if (st == SMTP_STAGE_IDLE)
		tv.tv_sec = p->smtp_connection_cache_time_limit;
	evtimer_add(s->timer, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	(void)fd;
	(void)what;
	hold(s);
	if (s->client == NULL) {
		/* connecting */
		char text[512];

		snprintf(text, sizeof text, "connect to %s: Connection timed out", s->relay);
		delivery_note_failure(s->dl, "4.4.1", text);
		session_end(s);
	} else if (s->idle) {
		/* nobody came for it: goodbye */
		dest_unpark(s->dest, s);
		smtp_client_quit(s->client);
		if (!s->ended && s->client != NULL && !smtp_client_closed(s->client))
			arm_timer(s);
	} else {
		smtp_client_timeout(s->client);
	}
	release(s);
}

/* ---- the engine's callbacks ------------------------------------------- */

static void cl_write(void *ctx, const void *data, size_t len)
{
	struct smtp_session *s = ctx;

	bufferevent_write(s->bev, data, len);
}

static ssize_t cl_read_content(void *ctx, void *buf, size_t max)
{
	struct smtp_session *s = ctx;
	ssize_t n = pread(s->dl->fd, buf, max, s->offset);

	if (n > 0)
		s->offset += n;
	return n;
}

static void cl_message_done(void *ctx, const struct smtp_client_result *res, size_t n, bool reusable)
{
	struct smtp_session *s = ctx;
	struct delivery *dl = s->dl;

	for (size_t i = 0; i < n && i < s->nbatch; i++) {
		struct rcpt *r = &dl->rcpts[s->batch[i]];
		char text[TEXT_MAX + 16];

		snprintf(text, sizeof text, "%d %s %s", res[i].code, res[i].enhanced, res[i].text);
		if (res[i].status == SMTP_CLIENT_DEFERRED && res[i].next_host) {
			/* the session failed, not the recipient: another host */
			delivery_note_failure(dl, res[i].enhanced, res[i].remote ? text : res[i].text);
			continue;
		}
		if (res[i].status == SMTP_CLIENT_DELIVERED)
			delivery_settle(dl, r, R_SENT, res[i].enhanced, text, s);
		else
			delivery_settle(dl, r, res[i].status == SMTP_CLIENT_FAILED ? R_BOUNCED : R_DEFERRED,
					res[i].enhanced, res[i].remote ? text : res[i].text, s);
	}
	free(s->batch);
	s->batch = NULL;
	s->nbatch = 0;
	if (!reusable)
		return; /* close follows */
	if (!delivery_all_settled(dl)) {
		smtp_client_quit(s->client); /* then the next address */
		return;
	}
	/* The delivery is over; the connection may serve the next one. Park
	 * it first: finishing dl may start the next delivery right here. */
	s->dl = NULL;
	dl->session = NULL;
	if (!dest_park(s->dest, s))
		smtp_client_quit(s->client);
	delivery_finish(dl);
}

static void cl_close(void *ctx, const struct smtp_client_result *why)
{
	struct smtp_session *s = ctx;

	if (why != NULL && s->dl != NULL) {
		char text[TEXT_MAX + 16];

		snprintf(text, sizeof text, "%d %s %s", why->code, why->enhanced, why->text);
		delivery_note_failure(s->dl, why->enhanced, why->remote ? text : why->text);
	}
	/* Let the last command (QUIT) leave before the socket goes. */
	dest_unpark(s->dest, s);
	s->closing = true;
	if (s->bev == NULL || evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		session_end(s);
}

static void on_read(struct bufferevent *bev, void *arg);
static void on_drained(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

static void cl_want_tls(void *ctx)
{
	struct smtp_session *s = ctx;
	struct evbuffer *in = bufferevent_get_input(s->bev);

	evbuffer_drain(in, evbuffer_get_length(in));
	/* verify: the chain must lead to a trusted CA and the certificate name
	 * the MX host (RFC 7672 without DANE: the names DNS gave us). */
	s->bev = tls_connect_filter(s->d->tls, s->d->svc->base, s->bev, s->host,
				    smtp_tls_level_for(s->d, s->dest->name) == SMTP_TLS_VERIFY);
	s->tls_pending = true;
	bufferevent_setcb(s->bev, on_read, on_drained, on_event, s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

static void cl_log(void *ctx, const char *line)
{
	struct smtp_session *s = ctx;

	if (s->dl != NULL)
		log_info("%s: %s", s->dl->id, line);
	else
		log_info("%s: %s", s->relay, line);
}

static const struct smtp_client_callbacks client_callbacks = {
	.write = cl_write,
	.read_content = cl_read_content,
	.message_done = cl_message_done,
	.close = cl_close,
	.want_tls = cl_want_tls,
	.log = cl_log,
};

/* send_message - give the engine the attached delivery's open recipients. */
static void send_message(struct smtp_session *s)
{
	struct delivery *dl = s->dl;
	struct smtp_client_rcpt *rcpts = xcalloc(dl->nrcpt, sizeof *rcpts);
	struct smtp_client_message m = {
		.sender = dl->sender,
		.size = dl->size,
		.body_8bit = dl->body_8bit,
		.ret = dl->ret,
		.envid = dl->envid,
	};

	s->batch = xcalloc(dl->nrcpt, sizeof *s->batch);
	s->nbatch = 0;
	for (size_t i = 0; i < dl->nrcpt; i++) {
		if (dl->rcpts[i].state != R_OPEN)
			continue;
		rcpts[s->nbatch].addr = dl->rcpts[i].addr;
		rcpts[s->nbatch].notify = dl->rcpts[i].notify;
		rcpts[s->nbatch].orcpt = dl->rcpts[i].orcpt[0] != '\0' ? dl->rcpts[i].orcpt : NULL;
		s->batch[s->nbatch++] = i;
	}
	m.rcpts = rcpts;
	m.nrcpt = s->nbatch;
	s->offset = 0;
	s->uses++;
	smtp_client_send(s->client, &m);
	free(rcpts);
}

/* ---- the connection --------------------------------------------------- */

static void start_engine(struct smtp_session *s)
{
	struct smtp_daemon *d = s->d;
	enum smtp_tls_level level = smtp_tls_level_for(d, s->dest->name);
	struct smtp_client_config config = {
		.helo_name = d->params->myhostname,
		.tls = level == SMTP_TLS_NONE ? SMTP_CLIENT_TLS_NONE :
		       level == SMTP_TLS_MAY  ? SMTP_CLIENT_TLS_MAY :
						SMTP_CLIENT_TLS_ENCRYPT,
		.auth_user = d->relay_host != NULL ? d->relay_user : NULL,
		.auth_password = d->relay_host != NULL ? d->relay_password : NULL,
	};

	s->client = smtp_client_new(&config, &client_callbacks, s);
	send_message(s);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	unsigned char chunk[16384];
	size_t n;

	hold(s);
	while (!s->ended && s->client != NULL && bev == s->bev && (n = evbuffer_remove(in, chunk, sizeof chunk)) > 0) {
		smtp_client_input(s->client, chunk, n);
		if (!s->ended && s->client != NULL && !smtp_client_closed(s->client))
			arm_timer(s);
	}
	release(s);
}

static void on_drained(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	(void)bev;
	if (s->closing)
		session_end(s);
}

static void on_connected(struct smtp_session *s)
{
	if (s->tls_pending) {
		struct tls_info info;

		s->tls_pending = false;
		if (tls_get_info(s->bev, &info) == 0)
			log_info("%s: %s TLS connection established to %s: %s with cipher %s (%d/%d bits)",
				 s->dl != NULL ? s->dl->id : "-", tls_peer_verified(s->bev) ? "Trusted" : "Untrusted",
				 s->relay, info.version, info.cipher, info.bits, info.bits);
		smtp_client_tls_done(s->client, true);
	} else {
		start_engine(s);
	}
	if (!s->ended && s->client != NULL && !smtp_client_closed(s->client))
		arm_timer(s);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;
	char why[256];

	if (bev != s->bev)
		return;
	hold(s);
	if (what & BEV_EVENT_CONNECTED) {
		on_connected(s);
	} else if (s->client == NULL) {
		char text[512];

		snprintf(text, sizeof text, "connect to %s: %s", s->relay,
			 EVUTIL_SOCKET_ERROR() != 0 ? strerror(EVUTIL_SOCKET_ERROR()) : "Connection refused");
		delivery_note_failure(s->dl, "4.4.1", text);
		session_end(s);
	} else if (s->tls_pending) {
		s->tls_pending = false;
		log_info("%s: TLS handshake with %s failed: %s", s->dl != NULL ? s->dl->id : "-", s->relay,
			 tls_last_error(bev, why, sizeof why));
		smtp_client_tls_done(s->client, false);
	} else if (s->closing) {
		session_end(s);
	} else {
		smtp_client_lost(s->client,
				 (what & BEV_EVENT_EOF) ? "connection closed by the server" : "connection error");
	}
	release(s);
}

void session_connect(struct delivery *dl, const struct target *t, int port)
{
	struct smtp_session *s = xnew(struct smtp_session);
	struct sockaddr_storage ss;
	socklen_t len;
	char addr[DNS_ADDR_STRLEN];

	s->d = dl->d;
	s->dest = dl->dest;
	s->dl = dl;
	s->host = xstrdup(t->host);
	s->started_ms = smtp_now_ms();
	dl->session = s;
	memset(&ss, 0, sizeof ss);
	if (t->addr.family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((unsigned short)port);
		memcpy(&s6->sin6_addr, t->addr.addr, 16);
		len = sizeof *s6;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((unsigned short)port);
		memcpy(&s4->sin_addr, t->addr.addr, 4);
		len = sizeof *s4;
	}
	snprintf(s->relay, sizeof s->relay, "%s[%s]:%d", t->host, dns_address_str(&t->addr, addr, sizeof addr), port);
	free(dl->last_relay);
	dl->last_relay = xstrdup(s->relay);
	s->timer = evtimer_new(s->d->svc->base, on_timer, s);
	s->bev = bufferevent_socket_new(s->d->svc->base, -1, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(s->bev, on_read, on_drained, on_event, s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	arm_timer(s);
	if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&ss, (int)len) < 0) {
		/* No socket at all (a refused connection comes to on_event). */
		char text[512];

		snprintf(text, sizeof text, "connect to %s: %s", s->relay, strerror(errno));
		delivery_note_failure(dl, "4.4.1", text);
		session_end(s);
	}
}

void session_give(struct smtp_session *s, struct delivery *dl)
{
	s->dl = dl;
	dl->session = s;
	free(dl->last_relay);
	dl->last_relay = xstrdup(s->relay);
	hold(s);
	send_message(s);
	if (!s->ended && s->client != NULL && !smtp_client_closed(s->client))
		arm_timer(s);
	release(s);
}
