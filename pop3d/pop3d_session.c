/* pop3d_session.c - one client connection: bytes between the socket (or
 * its TLS layer) and the POP3 engine, logins relayed to auth's SASL
 * socket, and the engine's mailbox requests served from the user's
 * Maildir (pop3d_mailbox.c). */
#include "config.h"
#include "pop3d.h"
#include "pop3d_mailbox.h"
#include "../libmail/sasl_relay.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/sanitize.h"
#include "../libutil/service.h"
#include "../libutil/sock.h"
#include "../libutil/tls.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* More output than this waiting: the engine pauses a message until it
 * drains. */
#define OUTPUT_HIGH (256 * 1024)
/* Closing under a TLS filter: only the filter's drain is reported, the
 * last response may still sit below it; look again every LINGER_MS, at
 * most LINGER_CHECKS times. */
#define LINGER_MS 10
#define LINGER_CHECKS 3000

struct pop3d_conn {
	struct pop3d *d;
	struct bufferevent *bev;
	struct pop3_session *s;
	char client_addr[INET6_ADDRSTRLEN];
	int refs;                 /* the connection, and each pending request */
	bool gone;                /* socket closed: answers go nowhere */
	bool closing;             /* close once the output is out */
	bool tls;                 /* the bufferevent is a TLS one */
	bool output_paused;       /* output_full said so: tell the engine when drained */
	long long sasl_session;   /* the SASL exchange under way with auth, 0: none */
	struct pop3_mailbox *mb;  /* locked while the session lives */
	char *user;
	int msg_fd;               /* the message being sent */
	off_t msg_off;
	struct event *linger_ev;
	int linger_checks;
	struct event *resume_ev;  /* output paused under a TLS filter: look again */
	struct pop3d_conn *prev, *next;
};

static void conn_free(struct pop3d_conn *c)
{
	struct pop3d *d = c->d;

	/* the session first: it owes close_message and auth_cancel */
	pop3_session_free(&c->s);
	if (c->msg_fd >= 0)
		close(c->msg_fd);
	pop3_mailbox_close(&c->mb);
	free(c->user);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		d->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c);
}

static void conn_unref(struct pop3d_conn *c)
{
	if (--c->refs == 0)
		conn_free(c);
}

/* conn_close - the socket goes now; pending requests finish into nothing. */
static void conn_close(struct pop3d_conn *c)
{
	if (c->gone)
		return;
	c->gone = true;
	if (c->linger_ev != NULL)
		event_free(c->linger_ev);
	c->linger_ev = NULL;
	if (c->resume_ev != NULL)
		event_free(c->resume_ev);
	c->resume_ev = NULL;
	bufferevent_free(c->bev);
	c->bev = NULL;
	service_client_closed(c->d->svc);
	conn_unref(c);
}

/* output_pending - octets not handed to the kernel yet, under a TLS
 * filter the plain bufferevent's too. */
static size_t output_pending(struct pop3d_conn *c)
{
	struct bufferevent *under = bufferevent_get_underlying(c->bev);
	size_t n = evbuffer_get_length(bufferevent_get_output(c->bev));

	if (under != NULL)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

static void close_when_sent(struct pop3d_conn *c);

static void on_linger(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	close_when_sent(arg);
}

static void close_when_sent(struct pop3d_conn *c)
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

/* ---- engine callbacks ------------------------------------------------- */

/* cb_write - a response goes straight to the socket when nothing waits
 * before it (most do: they are short); only what the socket does not
 * take now is left to the bufferevent, whose write event would otherwise
 * cost two epoll changes and a loop pass per response. */
static void cb_write(void *ctx, const void *data, size_t len)
{
	struct pop3d_conn *c = ctx;
	ssize_t n;

	if (c->gone)
		return;
	if (!c->tls && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		n = send(bufferevent_getfd(c->bev), data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			data = (const char *)data + n;
			len -= (size_t)n;
		}
		/* An error other than a full socket shows up at the next
		 * read or write of the bufferevent, which closes. */
	}
	if (len > 0)
		bufferevent_write(c->bev, data, len);
}

static void cb_close(void *ctx)
{
	struct pop3d_conn *c = ctx;

	c->closing = true;
	if (c->gone)
		return;
	bufferevent_disable(c->bev, EV_READ);
	close_when_sent(c);
}

static bool cb_output_full(void *ctx)
{
	struct pop3d_conn *c = ctx;

	if (c->gone || output_pending(c) < OUTPUT_HIGH)
		return false;
	c->output_paused = true;
	return true;
}

/* resume_when_drained - output was paused: go on once it is below
 * OUTPUT_HIGH. The drain callback reports only the TLS filter's own
 * buffer; what waits below it is looked at again every LINGER_MS. */
static void resume_when_drained(struct pop3d_conn *c);

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	resume_when_drained(arg);
}

static void resume_when_drained(struct pop3d_conn *c)
{
	struct timeval tv = { 0, LINGER_MS * 1000 };

	if (c->gone || !c->output_paused)
		return;
	if (output_pending(c) >= OUTPUT_HIGH) {
		if (bufferevent_get_underlying(c->bev) == NULL)
			return; /* on_drained comes */
		if (c->resume_ev == NULL)
			c->resume_ev = evtimer_new(c->d->svc->base, on_resume, c);
		evtimer_add(c->resume_ev, &tv);
		return;
	}
	c->output_paused = false;
	c->refs++;
	pop3_session_output_ready(c->s);
	conn_unref(c);
}

static void cb_flow(void *ctx, bool paused)
{
	struct pop3d_conn *c = ctx;

	if (c->gone || c->closing)
		return;
	if (paused)
		bufferevent_disable(c->bev, EV_READ);
	else
		bufferevent_enable(c->bev, EV_READ);
}

static void cb_log(void *ctx, const char *line)
{
	(void)ctx;
	log_info("%s", line);
}

/* ---- TLS -------------------------------------------------------------- */

static void on_read(struct bufferevent *bev, void *arg);
static void on_drained(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

static void set_timeouts(struct pop3d_conn *c)
{
	struct timeval tv = { .tv_sec = c->d->params->pop3d_timeout };

	bufferevent_set_timeouts(c->bev, &tv, &tv);
}

/* cb_starttls - "+OK Begin TLS negotiation" is queued on the plain
 * bufferevent, which the filter sends before its handshake. */
static void cb_starttls(void *ctx)
{
	struct pop3d_conn *c = ctx;
	struct bufferevent *tls;
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
	set_timeouts(c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* tls_ready - the handshake is done: STLS goes on, pop3s starts. */
static void tls_ready(struct pop3d_conn *c)
{
	struct tls_info info;

	if (tls_get_info(c->bev, &info) == 0)
		log_info("%s: TLS established: %s with cipher %s (%d/%d bits)", c->client_addr, info.version,
			 info.cipher, info.bits, info.bits);
	if (c->d->implicit_tls)
		pop3_session_start(c->s);
	else
		pop3_session_tls_done(c->s, true);
}

/* ---- logins, through auth ------------------------------------------------ */

/* The engine's answers, by auth's verdict. */
static const enum pop3_auth_answer pop3_answer[] = {
	[AUTH_SASL_CONTINUE] = POP3_AUTH_CONTINUE, [AUTH_SASL_OK] = POP3_AUTH_OK, [AUTH_SASL_FAIL] = POP3_AUTH_FAIL,
	[AUTH_SASL_ENCRYPT] = POP3_AUTH_ENCRYPT, [AUTH_SASL_TEMP] = POP3_AUTH_TEMP,
};

static void on_sasl(void *arg, enum auth_sasl_result result, const void *challenge, size_t len, const char *user)
{
	struct pop3d_conn *c = arg;

	if (!c->gone && c->sasl_session != 0) {
		if (result != AUTH_SASL_CONTINUE)
			c->sasl_session = 0;
		pop3_session_auth_done(c->s, pop3_answer[result], challenge, len, user);
	}
	conn_unref(c);
}

static void cb_auth(void *ctx, const char *mech, const void *resp, size_t len, bool has_resp)
{
	struct pop3d_conn *c = ctx;

	c->sasl_session = sasl_relay_new_session();
	c->refs++;
	/* "secure": the password may travel (TLS, or the operator allows it) */
	sasl_relay_start(c->d->sasl, c->sasl_session, AUTH_SASL_SERVICE_POP, mech, resp, len, has_resp,
			 c->client_addr, c->tls || c->d->params->pop3d_auth_plaintext, on_sasl, c);
}

static void cb_auth_step(void *ctx, const void *resp, size_t len)
{
	struct pop3d_conn *c = ctx;

	c->refs++;
	sasl_relay_step(c->d->sasl, c->sasl_session, resp, len, on_sasl, c);
}

/* cb_auth_cancel - the client gave up (or went away): auth forgets the
 * exchange; an answer still on its way finds no session here. */
static void cb_auth_cancel(void *ctx)
{
	struct pop3d_conn *c = ctx;

	if (c->sasl_session == 0)
		return;
	sasl_relay_cancel(c->d->sasl, c->sasl_session);
	c->sasl_session = 0;
}

/* ---- the mailbox ---------------------------------------------------------- */

static void cb_mailbox_open(void *ctx, const char *user)
{
	struct pop3d_conn *c = ctx;
	struct pop3_message *list;
	enum pop3_mailbox_result r;
	char *error = NULL;
	char safe[SANITIZE_MAX];

	sanitize(safe, sizeof safe, user, strlen(user));
	r = pop3_mailbox_open(c->d->root_fd, user, &c->mb, &error);
	if (r != POP3_MAILBOX_OK) {
		if (r == POP3_MAILBOX_IN_USE)
			log_info("%s: user=<%s>: mailbox in use by another session", c->client_addr, safe);
		else
			log_warn("%s: user=<%s>: %s", c->client_addr, safe, error);
		free(error);
		pop3_session_mailbox_done(c->s, r, NULL, 0);
		return;
	}
	c->user = xstrdup(safe);
	list = xcalloc(c->mb->count + 1, sizeof *list);
	long long total = 0;

	for (size_t i = 0; i < c->mb->count; i++) {
		list[i].size = c->mb->mails[i].vsize;
		list[i].uidl = c->mb->mails[i].uidl;
		total += list[i].size;
	}
	log_info("%s: login: user=<%s>, messages=%zu, octets=%lld%s", c->client_addr, safe, c->mb->count, total,
		 c->tls ? ", TLS" : "");
	pop3_session_mailbox_done(c->s, POP3_MAILBOX_OK, list, c->mb->count);
	free(list);
}

static int cb_open_message(void *ctx, size_t index)
{
	struct pop3d_conn *c = ctx;

	if (c->mb == NULL || index >= c->mb->count)
		return -1;
	c->msg_fd = pop3_mailbox_open_message(c->mb, index);
	if (c->msg_fd < 0) {
		log_warn("%s: user=<%s>: message %zu (%s): %s", c->client_addr, c->user, index + 1,
			 c->mb->mails[index].name, strerror(errno));
		return -1;
	}
	c->msg_off = 0;
	return 0;
}

static ssize_t cb_read_message(void *ctx, void *buf, size_t max)
{
	struct pop3d_conn *c = ctx;
	ssize_t n;

	do
		n = pread(c->msg_fd, buf, max, c->msg_off);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		c->msg_off += n;
	return n;
}

static void cb_close_message(void *ctx)
{
	struct pop3d_conn *c = ctx;

	if (c->msg_fd >= 0)
		close(c->msg_fd);
	c->msg_fd = -1;
}

static void on_expunged(void *arg, bool ok, size_t removed, char *error)
{
	struct pop3d_conn *c = arg;

	if (!ok) {
		log_warn("%s: user=<%s>: %s", c->client_addr, c->user, error);
		free(error);
	}
	(void)removed;
	if (!c->gone)
		pop3_session_update_done(c->s, ok);
	conn_unref(c); /* the mailbox may close now */
}

/* cb_update - QUIT: the marked messages go, off the loop. The connection
 * (and its mailbox) stays until the removals are over, even if the
 * client goes first. */
static void cb_update(void *ctx, const bool *deleted, size_t n)
{
	struct pop3d_conn *c = ctx;

	c->refs++;
	pop3_mailbox_expunge(c->mb, deleted, n, c->d->fileops, on_expunged, c);
}

static const struct pop3_server_callbacks callbacks = {
	.write = cb_write,
	.close = cb_close,
	.starttls = cb_starttls,
	.auth = cb_auth,
	.auth_step = cb_auth_step,
	.auth_cancel = cb_auth_cancel,
	.mailbox_open = cb_mailbox_open,
	.open_message = cb_open_message,
	.read_message = cb_read_message,
	.close_message = cb_close_message,
	.output_full = cb_output_full,
	.update = cb_update,
	.log = cb_log,
	.flow = cb_flow,
};

/* ---- socket events ------------------------------------------------------- */

static void on_read(struct bufferevent *bev, void *arg)
{
	struct pop3d_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	unsigned char chunk[16384];
	size_t n;

	c->refs++;
	/* STLS replaces c->bev: what is left of the old one is not read. */
	while (!c->gone && c->bev == bev && (n = evbuffer_remove(in, chunk, sizeof chunk)) > 0)
		pop3_session_input(c->s, chunk, n);
	conn_unref(c);
}

static void on_drained(struct bufferevent *bev, void *arg)
{
	struct pop3d_conn *c = arg;

	(void)bev;
	if (c->closing) {
		close_when_sent(c);
		return;
	}
	resume_when_drained(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct pop3d_conn *c = arg;

	if (bev != c->bev)
		return; /* the plain bufferevent under a TLS filter */
	c->refs++;
	if (what & BEV_EVENT_CONNECTED) {
		tls_ready(c);
	} else if ((what & BEV_EVENT_TIMEOUT) && !c->closing) {
		log_info("%s: idle for %llds: closed%s%s%s", c->client_addr, (long long)c->d->params->pop3d_timeout,
			 c->user != NULL ? " (user=<" : "", c->user != NULL ? c->user : "", c->user != NULL ? ">)" : "");
		pop3_session_timeout(c->s);
		if (!c->gone)
			conn_close(c);
	} else {
		if ((what & BEV_EVENT_ERROR) && c->tls) {
			char why[256];

			log_info("TLS error from %s: %s", c->client_addr, tls_last_error(bev, why, sizeof why));
			if (!pop3_session_tls(c->s) && !c->d->implicit_tls)
				pop3_session_tls_done(c->s, false);
		}
		conn_close(c);
	}
	conn_unref(c);
}

void pop3d_conn_accept(struct pop3d *d, int fd)
{
	struct pop3d_conn *c = xnew(struct pop3d_conn);

	c->d = d;
	c->refs = 1;
	c->msg_fd = -1;
	sock_peer_addr(fd, c->client_addr, sizeof c->client_addr);
	/* A RETR leaves as several writes (the +OK line, then the content):
	 * without this, Nagle holds each one after the first until the
	 * client's delayed ACK, some 40 ms per message. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	if (d->implicit_tls) {
		c->bev = tls_accept_socket(d->tls, d->svc->base, fd);
		c->tls = true;
	} else {
		c->bev = bufferevent_socket_new(d->svc->base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	if (c->bev == NULL) {
		log_warn("%s: cannot set up the connection", c->client_addr);
		close(fd);
		free(c);
		return;
	}
	bufferevent_setcb(c->bev, on_read, on_drained, on_event, c);
	set_timeouts(c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->next = d->conns;
	if (d->conns != NULL)
		d->conns->prev = c;
	d->conns = c;
	service_client_opened(d->svc);
	c->s = pop3_session_new(&d->engine, &callbacks, c, c->client_addr, NULL);
	/* Implicit TLS: the greeting waits for the handshake (tls_ready). */
	if (!d->implicit_tls)
		pop3_session_start(c->s);
}

void pop3d_conn_shutdown_all(struct pop3d *d)
{
	struct pop3d_conn *next;

	/* a session may close (and its connection go) inside the call */
	for (struct pop3d_conn *c = d->conns; c != NULL; c = next) {
		c->refs++;
		if (!c->gone)
			pop3_session_shutdown(c->s);
		next = c->next;
		conn_unref(c);
	}
}
