/* smtp_client.c - the SMTP client protocol engine (see smtp_client.h for
 * the API).
 *
 * Shape: every command sent is pushed on a queue of pending replies;
 * the server's bytes go through the reply parser (smtp_reply_parse.c)
 * and each whole reply is matched with the oldest pending command, so
 * pipelined replies are matched in order. Session set-up (greeting,
 * EHLO/HELO, STARTTLS, AUTH) is one command at a time; a transaction is
 * RSET (after a failed one), MAIL, the RCPTs and DATA, all in one write
 * when the server offers PIPELINING, one by one otherwise. After 354 the
 * content is pulled from read_content, dot-stuffed and written in
 * slices. The results are handed over when the message is done.
 *
 * Re-entrancy, as in the server engine: public functions bracket their
 * work with enter/leave; input given while the engine is on the stack
 * waits in c->in_later; smtp_client_free inside a callback marks the
 * session dead, and the memory goes when the outermost call returns.
 *
 * Policy decisions:
 *  - Reply lines may end in a bare LF (see smtp_reply_parse.h). A
 *    malformed reply, a reply nobody asked for (except a 421), or input
 *    while waiting for the TLS handshake ends the session: 4.5.0
 *    deferral with next_host, no QUIT (the conversation is out of step).
 *  - 421 in reply to anything (or unasked) ends the session at once, no
 *    QUIT: the open recipients are deferred with the server's reply.
 *  - Before MAIL (greeting, EHLO/HELO, STARTTLS, AUTH), every failure is
 *    a deferral with next_host, even a 5xx: RFC 5321 3.1 says a 554
 *    greeting means "no service here", not "no such mailbox", and
 *    another MX host (or a later try) may serve. The server's code is
 *    kept; the enhanced code's class becomes 4. The application may
 *    bounce when it runs out of hosts. The engine sends QUIT after a
 *    refusal it understood (e.g. 554 greeting, RFC 5321 3.1).
 *  - EHLO 5xx: HELO, without extensions. EHLO 4xx: deferral.
 *  - 8BITMIME: BODY=8BITMIME when the message is 8-bit and the server
 *    offers it. When it does not, the message goes as it is: no
 *    conversion to quoted-printable. That is what Exim, qmail and
 *    sendmail's default do, and what nearly every server takes today;
 *    Postfix converts by default (disable_mime_output_conversion = no),
 *    but conversion breaks DKIM signatures and is rarely needed.
 *  - SMTPUTF8: needed when msg->smtputf8 or any address is non-ASCII.
 *    Not offered: every recipient fails with 554 5.6.7, nothing sent.
 *  - SIZE: when the server announces a limit and msg->size is larger,
 *    every recipient fails with 552 5.3.4 and MAIL is not sent. SIZE=
 *    goes on MAIL whenever SIZE is offered and the size is known.
 *  - DSN: RET/ENVID on MAIL and NOTIFY/ORCPT on RCPT only when DSN is
 *    offered (values xtext-encoded; an ENVID over 100 octets or an
 *    ORCPT over 500 as sent (RFC 3461 4.2, 4.4), or an ORCPT without
 *    "type;", is left out rather than risk a 555 for the message).
 *  - STARTTLS (RFC 3207): "may" uses it when offered and goes on in
 *    plaintext when refused; "encrypt" defers 4.7.4 when it is not
 *    offered or refused. A failed handshake defers 4.7.5 either way (the
 *    connection is unusable; whether to retry in plaintext is the
 *    application's choice). Octets after the 220 are an injected
 *    response (CVE-2011-0411 class): the session fails. After the
 *    handshake the old EHLO answer is forgotten and EHLO sent again.
 *  - AUTH (RFC 4954), when credentials are configured and the server
 *    offers AUTH: PLAIN with an initial response, or LOGIN when only
 *    that is offered; neither: 4.7.0 deferral. Over plaintext only with
 *    auth_plaintext, else 4.7.0 deferral (the password stays home). Any
 *    failure, 535 included, defers every recipient with the reply.
 *    No AUTH offered: the message goes without (a relay may know us
 *    by address); a log line says so.
 *  - Pipelining (RFC 2920): MAIL, the RCPTs and DATA in one write (RSET
 *    first when needed). A failed MAIL fails every recipient with its
 *    reply; the RCPT and DATA replies that follow are only read. If no
 *    recipient was accepted and DATA still gets 354, an empty message
 *    (".") is sent and its reply ignored.
 *  - A transaction that did not end in 2xx to the content is followed by
 *    RSET before the next MAIL on the same session.
 *  - Content: every line end is sent as CRLF (a bare LF or a bare CR
 *    becomes CRLF, so no receiver can find a line end, or an end of
 *    data, that we did not mean: the sending side of the SMTP smuggling
 *    defence), lines starting with '.' get another '.', a last line
 *    without its line end gets one, then ".". Long lines are sent as
 *    they are.
 *  - Addresses must be free of control characters and at most 254
 *    octets: a bad sender fails every recipient with 553 5.1.7, a bad
 *    recipient fails with 553 5.1.3, without sending them.
 */
#include "config.h"
#include "smtp_client.h"
#include "addr.h"
#include "smtp_cmd.h"
#include "smtp_reply_parse.h"
#include "../libutil/base64.h"
#include "../libutil/buf.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/pool.h"
#include "../libutil/sanitize.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The longest address text we send (a path is 256 with its brackets). */
#define ADDR_TEXT_MAX (ADDR_PATH_MAX - 2)

/* Compact the input buffer once this much of it has been read. */
#define IN_COMPACT 4096

/* Commands whose replies are pending. */
enum cmd {
	K_GREETING,
	K_EHLO,
	K_HELO,
	K_STARTTLS,
	K_AUTH,        /* AUTH PLAIN (with response), or the LOGIN password */
	K_AUTH_USER,   /* AUTH LOGIN: waiting for the user name challenge */
	K_AUTH_PASS,   /* LOGIN user name sent: waiting for the password one */
	K_AUTH_CANCEL, /* "*" sent: the exchange failed */
	K_RSET,
	K_MAIL,
	K_RCPT,
	K_DATA,
	K_DOT,
	K_QUIT,
};

struct pending {
	enum cmd kind;
	size_t rcpt; /* K_RCPT: the recipient's index */
};

enum c_state {
	C_OPEN,    /* replies are read and matched */
	C_TLS,     /* want_tls called: waiting for tls_done */
	C_CONTENT, /* sending content (input is held) */
	C_CLOSED,  /* close called */
};

/* Where a transaction is in sending its commands. */
enum step { STEP_RSET, STEP_MAIL, STEP_RCPT, STEP_DATA, STEP_SENT };

struct trcpt {
	const char *addr;
	unsigned notify;
	const char *orcpt; /* "type;xtext" ready to send, or NULL */
	bool done;         /* results[i] is final */
	bool accepted;     /* 2xx to RCPT: the end of the message decides */
};

/* One message, from smtp_client_send to message_done. */
struct txn {
	struct pool *pool;
	const char *sender;
	bool bad_sender;
	long long size;
	bool body_8bit;
	bool smtputf8;
	const char *ret;
	const char *envid; /* xtext, ready to send */
	struct trcpt *rcpts;
	struct smtp_client_result *results;
	size_t n;
	bool started;
	enum step step;
	size_t next_rcpt;
	bool mail_ok;
	size_t naccepted;
};

struct smtp_client {
	struct smtp_client_config config;
	struct smtp_client_callbacks cb;
	void *ctx;
	struct pool *pool; /* session lifetime */
	struct smtp_reply_parser *parser;

	enum c_state state;
	unsigned depth;   /* engine calls on the stack */
	bool dead;        /* freed by the application */
	bool processing;  /* process() is on the stack */
	bool closing;     /* the session is ending: close is on its way */
	bool ready;       /* greeting, EHLO, STARTTLS and AUTH are behind us */
	bool tls;
	bool tls_refused; /* STARTTLS got 4xx/5xx under "may" */
	bool auth_done;   /* AUTH succeeded, or was not offered */
	const char *auth_mech;
	bool quit_wanted;
	bool quit_sent;
	bool need_rset;   /* the last transaction did not end in 2xx */
	struct smtp_ehlo caps;

	struct buf in;       /* unprocessed input, from in_off */
	size_t in_off;
	struct buf in_later; /* input given from inside a callback */
	struct buf out;      /* commands being put together */

	struct pending *pend;
	size_t pend_head, pend_len, pend_cap;

	struct txn *txn;

	/* Content. */
	bool line_start;
	bool pending_cr;
	bool content_paused;
	uint8_t *chunk; /* SMTP_CLIENT_CONTENT_CHUNK octets */

	struct smtp_client_result fail; /* why the session ended */
};

static void process(struct smtp_client *c);
static void next_step(struct smtp_client *c);
static void after_helo(struct smtp_client *c);

/* ---- entry and exit ------------------------------------------------ */

static void enter(struct smtp_client *c)
{
	c->depth++;
}

static void txn_free(struct txn **tp)
{
	struct txn *t = *tp;

	if (t == NULL)
		return;
	*tp = NULL;
	pool_destroy(&t->pool);
	free(t);
}

static void destroy(struct smtp_client *c)
{
	if (c->config.auth_password != NULL)
		explicit_bzero((char *)c->config.auth_password, strlen(c->config.auth_password));
	txn_free(&c->txn);
	smtp_reply_parser_free(&c->parser);
	buf_free(&c->in);
	buf_free(&c->in_later);
	buf_free(&c->out);
	free(c->pend);
	free(c->chunk);
	pool_destroy(&c->pool);
	free(c);
}

static void leave(struct smtp_client *c)
{
	if (--c->depth == 0 && c->dead)
		destroy(c);
}

/* enter_state - the one place the state changes; nothing leaves
 * C_CLOSED. */
static void enter_state(struct smtp_client *c, enum c_state state)
{
	if (c->state != C_CLOSED)
		c->state = state;
}

static void log_event(struct smtp_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void log_event(struct smtp_client *c, const char *fmt, ...)
{
	struct buf line = BUF_INIT;
	va_list ap;

	if (c->cb.log == NULL || c->dead)
		return;
	va_start(ap, fmt);
	buf_vprintf(&line, fmt, ap);
	va_end(ap);
	c->cb.log(c->ctx, buf_cstr(&line));
	buf_free(&line);
}

/* ---- input buffer -------------------------------------------------- */

static const uint8_t *in_data(const struct smtp_client *c)
{
	return c->in.data != NULL ? c->in.data + c->in_off : (const uint8_t *)"";
}

static size_t in_len(const struct smtp_client *c)
{
	return c->in.len - c->in_off;
}

static void in_skip(struct smtp_client *c, size_t n)
{
	c->in_off += n;
	if (c->in_off == c->in.len) {
		buf_reset(&c->in);
		c->in_off = 0;
	}
}

static void in_merge_later(struct smtp_client *c)
{
	if (c->in_later.len == 0)
		return;
	if (c->in_off > 0) {
		buf_consume(&c->in, c->in_off);
		c->in_off = 0;
	}
	buf_append(&c->in, c->in_later.data, c->in_later.len);
	buf_reset(&c->in_later);
}

static void in_drop(struct smtp_client *c)
{
	buf_reset(&c->in);
	c->in_off = 0;
	buf_reset(&c->in_later);
}

/* ---- output, the pending queue -------------------------------------- */

static size_t pend_count(const struct smtp_client *c)
{
	return c->pend_len - c->pend_head;
}

static void pend_push(struct smtp_client *c, enum cmd kind, size_t rcpt)
{
	if (c->pend_head > 0 && c->pend_head == c->pend_len)
		c->pend_head = c->pend_len = 0;
	if (c->pend_len == c->pend_cap) {
		c->pend_cap = c->pend_cap == 0 ? 8 : size_mul(c->pend_cap, 2);
		c->pend = xreallocarray(c->pend, c->pend_cap, sizeof *c->pend);
	}
	c->pend[c->pend_len].kind = kind;
	c->pend[c->pend_len].rcpt = rcpt;
	c->pend_len++;
}

static struct pending pend_pop(struct smtp_client *c)
{
	struct pending p = c->pend[c->pend_head++];

	if (c->pend_head == c->pend_len)
		c->pend_head = c->pend_len = 0;
	return p;
}

/* flush - write the commands put together so far. */
static void flush(struct smtp_client *c)
{
	if (c->out.len == 0)
		return;
	if (!c->dead && c->state != C_CLOSED)
		c->cb.write(c->ctx, c->out.data, c->out.len);
	buf_reset(&c->out);
}

/* end_command - close the command line put together in c->out, and
 * expect its reply. */
static void end_command(struct smtp_client *c, enum cmd kind, size_t rcpt)
{
	buf_append(&c->out, "\r\n", 2);
	pend_push(c, kind, rcpt);
}

/* command - one command line for the next write, and its pending reply. */
static void command(struct smtp_client *c, enum cmd kind, size_t rcpt, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void command(struct smtp_client *c, enum cmd kind, size_t rcpt, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&c->out, fmt, ap);
	va_end(ap);
	end_command(c, kind, rcpt);
}

/* ---- stages and results -------------------------------------------- */

static enum smtp_client_stage kind_stage(enum cmd kind)
{
	switch (kind) {
	case K_GREETING:
		return SMTP_STAGE_GREETING;
	case K_EHLO:
	case K_HELO:
		return SMTP_STAGE_HELO;
	case K_STARTTLS:
		return SMTP_STAGE_STARTTLS;
	case K_AUTH:
	case K_AUTH_USER:
	case K_AUTH_PASS:
	case K_AUTH_CANCEL:
		return SMTP_STAGE_AUTH;
	case K_RSET:
		return SMTP_STAGE_RSET;
	case K_MAIL:
		return SMTP_STAGE_MAIL;
	case K_RCPT:
		return SMTP_STAGE_RCPT;
	case K_DATA:
		return SMTP_STAGE_DATA;
	case K_DOT:
		return SMTP_STAGE_DOT;
	case K_QUIT:
		return SMTP_STAGE_QUIT;
	}
	return SMTP_STAGE_IDLE;
}

const char *smtp_client_stage_name(enum smtp_client_stage stage)
{
	switch (stage) {
	case SMTP_STAGE_GREETING:
		return "initial greeting";
	case SMTP_STAGE_HELO:
		return "EHLO/HELO";
	case SMTP_STAGE_STARTTLS:
		return "STARTTLS";
	case SMTP_STAGE_AUTH:
		return "AUTH";
	case SMTP_STAGE_RSET:
		return "RSET";
	case SMTP_STAGE_MAIL:
		return "MAIL FROM";
	case SMTP_STAGE_RCPT:
		return "RCPT TO";
	case SMTP_STAGE_DATA:
		return "DATA";
	case SMTP_STAGE_CONTENT:
		return "message content";
	case SMTP_STAGE_DOT:
		return "end of DATA";
	case SMTP_STAGE_IDLE:
		return "idle";
	case SMTP_STAGE_QUIT:
		return "QUIT";
	case SMTP_STAGE_CLOSED:
		return "closed";
	}
	return "unknown";
}

enum smtp_client_stage smtp_client_stage(const struct smtp_client *c)
{
	if (c->state == C_CLOSED || c->closing)
		return SMTP_STAGE_CLOSED;
	if (c->state == C_TLS)
		return SMTP_STAGE_STARTTLS;
	if (c->state == C_CONTENT)
		return SMTP_STAGE_CONTENT;
	if (pend_count(c) > 0)
		return kind_stage(c->pend[c->pend_head].kind);
	return SMTP_STAGE_IDLE;
}

/* stage_phrase - "while ..." for a local result text. */
static const char *stage_phrase(struct smtp_client *c, enum smtp_client_stage stage)
{
	if (stage == SMTP_STAGE_STARTTLS && c->state == C_TLS)
		return "performing the TLS handshake";
	switch (stage) {
	case SMTP_STAGE_GREETING:
		return "receiving the initial greeting";
	case SMTP_STAGE_CONTENT:
		return "sending the message content";
	case SMTP_STAGE_DOT:
		/* RFC 1047: the server may have taken it already. */
		return "waiting for the reply to end of DATA (the message may be delivered twice)";
	case SMTP_STAGE_IDLE:
	case SMTP_STAGE_CLOSED:
		return "idle";
	default:
		return pool_printf(c->pool, "waiting for the reply to %s", smtp_client_stage_name(stage));
	}
}

/* status_class - the first digit of an enhanced code for a status. */
static char status_class(enum smtp_client_status status)
{
	return status == SMTP_CLIENT_DELIVERED ? '2' : status == SMTP_CLIENT_DEFERRED ? '4' : '5';
}

/* set_enhanced - the enhanced code for status: the server's (its class
 * made to agree), else a generic X.0.0. */
static void set_enhanced(struct smtp_client_result *r, const char *peer)
{
	if (peer != NULL && peer[0] != '\0') {
		snprintf(r->enhanced, sizeof r->enhanced, "%s", peer);
		r->enhanced[0] = status_class(r->status);
	} else {
		snprintf(r->enhanced, sizeof r->enhanced, "%c.0.0", status_class(r->status));
	}
}

/* clean_text - a printable copy of text[0..len) (pool memory). */
static const char *clean_text(struct pool *pool, const char *text, size_t len)
{
	char *out = pool_alloc(pool, SMTP_CLIENT_TEXT_MAX + 1);

	return sanitize(out, SMTP_CLIENT_TEXT_MAX + 1, text, len);
}

/* reply_result - a result from a server reply. */
static void reply_result(struct pool *pool, struct smtp_client_result *r, const struct smtp_parsed_reply *reply,
			 enum smtp_client_status status, bool next_host, enum smtp_client_stage stage)
{
	struct buf text = BUF_INIT;

	memset(r, 0, sizeof *r);
	r->status = status;
	r->code = reply->code;
	set_enhanced(r, reply->status);
	smtp_reply_text(reply, &text);
	r->text = clean_text(pool, buf_cstr(&text), text.len);
	buf_free(&text);
	r->remote = true;
	r->next_host = next_host;
	r->stage = stage;
}

/* local_result - a result of our own making. */
static void local_result(struct pool *pool, struct smtp_client_result *r, enum smtp_client_status status, int code,
			 const char *enhanced, bool next_host, enum smtp_client_stage stage, const char *fmt, ...)
	__attribute__((format(printf, 8, 9)));

static void local_result(struct pool *pool, struct smtp_client_result *r, enum smtp_client_status status, int code,
			 const char *enhanced, bool next_host, enum smtp_client_stage stage, const char *fmt, ...)
{
	struct buf text = BUF_INIT;
	va_list ap;

	memset(r, 0, sizeof *r);
	r->status = status;
	r->code = code;
	set_enhanced(r, enhanced);
	va_start(ap, fmt);
	buf_vprintf(&text, fmt, ap);
	va_end(ap);
	r->text = clean_text(pool, buf_cstr(&text), text.len);
	buf_free(&text);
	r->remote = false;
	r->next_host = next_host;
	r->stage = stage;
}

/* reply_status - what a refusal means for a recipient. */
static enum smtp_client_status reply_status(int code)
{
	return code >= 500 ? SMTP_CLIENT_FAILED : SMTP_CLIENT_DEFERRED;
}

/* ---- ending ------------------------------------------------------- */

/* finish_txn - the message is done: every recipient without a result
 * gets *fill, and the application hears of it. */
static void finish_txn(struct smtp_client *c, const struct smtp_client_result *fill, bool reusable)
{
	struct txn *t = c->txn;

	if (t == NULL)
		return;
	c->txn = NULL;
	for (size_t i = 0; i < t->n; i++) {
		if (t->rcpts[i].done)
			continue;
		if (fill == NULL)
			log_panic("smtp_client: recipient %zu has no result", i);
		t->results[i] = *fill;
		t->rcpts[i].done = true;
	}
	if (!c->dead)
		c->cb.message_done(c->ctx, t->results, t->n, reusable);
	txn_free(&t);
}

/* end_session - close; why NULL after a QUIT we wanted. */
static void end_session(struct smtp_client *c, const struct smtp_client_result *why)
{
	if (c->state == C_CLOSED)
		return;
	c->closing = true;
	enter_state(c, C_CLOSED);
	in_drop(c);
	if (!c->dead)
		c->cb.close(c->ctx, why);
}

/* fail_session - the session cannot go on: the message in progress (if
 * any) gets why for its open recipients, then QUIT (if the conversation
 * is still in step) and close. */
static void fail_session(struct smtp_client *c, const struct smtp_client_result *why, bool quit)
{
	if (c->closing || c->state == C_CLOSED)
		return;
	c->closing = true;
	c->fail = *why;
	finish_txn(c, &c->fail, false);
	if (c->dead)
		return;
	if (quit) {
		buf_reset(&c->out);
		buf_append(&c->out, "QUIT\r\n", 6);
		flush(c);
	}
	end_session(c, &c->fail);
}

/* fail_reply - fail the session with the server's reply (a deferral,
 * next_host); QUIT unless it was a 421. */
static void fail_reply(struct smtp_client *c, const struct smtp_parsed_reply *r, enum smtp_client_stage stage)
{
	struct smtp_client_result why;

	reply_result(c->pool, &why, r, SMTP_CLIENT_DEFERRED, true, stage);
	fail_session(c, &why, r->code != 421);
}

/* fail_local - fail the session with a reason of our own. */
static void fail_local(struct smtp_client *c, const char *enhanced, bool next_host, bool quit,
		       enum smtp_client_stage stage, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void fail_local(struct smtp_client *c, const char *enhanced, bool next_host, bool quit,
		       enum smtp_client_stage stage, const char *fmt, ...)
{
	struct smtp_client_result why;
	struct buf text = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&text, fmt, ap);
	va_end(ap);
	local_result(c->pool, &why, SMTP_CLIENT_DEFERRED, 451, enhanced, next_host, stage, "%s", buf_cstr(&text));
	buf_free(&text);
	fail_session(c, &why, quit);
}

static void protocol_error(struct smtp_client *c, enum smtp_client_stage stage, const char *what)
{
	fail_local(c, "4.5.0", true, false, stage, "protocol error while %s: %s", stage_phrase(c, stage), what);
}

/* ---- the transaction ---------------------------------------------- */

/* addr_ok - an address we can put between < and >: no control
 * characters (no CR, LF or NUL to inject a command), not too long. */
static bool addr_ok(const char *s)
{
	size_t n = strlen(s);

	if (n > ADDR_TEXT_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static bool non_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

/* xtext - s as xtext (pool memory), or NULL if longer than max. */
static const char *xtext(struct pool *pool, const char *prefix, const char *s, size_t max)
{
	struct buf b = BUF_INIT;
	const char *out = NULL;

	buf_append_str(&b, prefix);
	smtp_xtext_encode(s, strlen(s), &b);
	if (b.len <= max)
		out = pool_strdup(pool, buf_cstr(&b));
	buf_free(&b);
	return out;
}

/* orcpt_value - "type;xtext" for an ORCPT "type;address", or NULL when
 * it is not of that form or too long (RFC 3461 4.2: 500 octets). */
static const char *orcpt_value(struct pool *pool, const char *orcpt)
{
	const char *semi = strchr(orcpt, ';');
	char *type;
	const char *out;

	if (semi == NULL || semi == orcpt || semi[1] == '\0' || semi - orcpt > 32)
		return NULL;
	for (const char *p = orcpt; p < semi; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
			return NULL;
	type = pool_printf(pool, "%.*s;", (int)(semi - orcpt), orcpt);
	out = xtext(pool, type, semi + 1, SMTP_ORCPT_MAX);
	return out;
}

/* txn_new - a copy of msg, checked. */
static struct txn *txn_new(const struct smtp_client_message *msg)
{
	struct txn *t = xnew(struct txn);
	size_t n = msg->nrcpt;

	t->pool = pool_create();
	t->sender = pool_strdup(t->pool, msg->sender != NULL ? msg->sender : "");
	t->bad_sender = !addr_ok(t->sender);
	t->size = msg->size >= 0 ? msg->size : -1;
	t->body_8bit = msg->body_8bit;
	t->smtputf8 = msg->smtputf8 || non_ascii(t->sender);
	if (msg->ret != NULL && (strcasecmp(msg->ret, "FULL") == 0 || strcasecmp(msg->ret, "HDRS") == 0))
		t->ret = msg->ret[0] == 'F' || msg->ret[0] == 'f' ? "FULL" : "HDRS";
	if (msg->envid != NULL && msg->envid[0] != '\0')
		t->envid = xtext(t->pool, "", msg->envid, SMTP_ENVID_MAX);
	t->n = n;
	t->rcpts = pool_alloc(t->pool, size_mul(n > 0 ? n : 1, sizeof *t->rcpts));
	t->results = pool_alloc(t->pool, size_mul(n > 0 ? n : 1, sizeof *t->results));
	for (size_t i = 0; i < n; i++) {
		const struct smtp_client_rcpt *in = &msg->rcpts[i];
		struct trcpt *r = &t->rcpts[i];
		unsigned notify = in->notify & (SMTP_NOTIFY_NEVER | SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE |
						 SMTP_NOTIFY_DELAY);

		r->addr = pool_strdup(t->pool, in->addr != NULL ? in->addr : "");
		if (r->addr[0] == '\0' || !addr_ok(r->addr)) {
			local_result(t->pool, &t->results[i], SMTP_CLIENT_FAILED, 553, "5.1.3", false, SMTP_STAGE_RCPT,
				     "bad recipient address syntax");
			r->done = true;
			continue;
		}
		if (non_ascii(r->addr))
			t->smtputf8 = true;
		/* RFC 3461 4.1: NEVER stands alone; with others it is dropped. */
		if ((notify & SMTP_NOTIFY_NEVER) && notify != SMTP_NOTIFY_NEVER)
			notify &= ~(unsigned)SMTP_NOTIFY_NEVER;
		r->notify = notify;
		if (in->orcpt != NULL)
			r->orcpt = orcpt_value(t->pool, in->orcpt);
	}
	return t;
}

/* all_fail - every open recipient gets the same local result. */
static void all_fail(struct txn *t, int code, const char *enhanced, enum smtp_client_stage stage, const char *text)
{
	struct smtp_client_result r;

	local_result(t->pool, &r, SMTP_CLIENT_FAILED, code, enhanced, false, stage, "%s", text);
	for (size_t i = 0; i < t->n; i++) {
		if (!t->rcpts[i].done) {
			t->results[i] = r;
			t->rcpts[i].done = true;
		}
	}
}

/* all_reply - every open recipient (accepted_only: every accepted one)
 * gets the server's reply. */
static void all_reply(struct txn *t, const struct smtp_parsed_reply *reply, enum smtp_client_stage stage,
		      bool accepted_only)
{
	struct smtp_client_result r;
	enum smtp_client_status status = reply->code < 300 ? SMTP_CLIENT_DELIVERED : reply_status(reply->code);

	reply_result(t->pool, &r, reply, status, false, stage);
	for (size_t i = 0; i < t->n; i++) {
		if (t->rcpts[i].done || (accepted_only && !t->rcpts[i].accepted))
			continue;
		t->results[i] = r;
		t->rcpts[i].done = true;
	}
}

static bool pipelining(const struct smtp_client *c)
{
	return (c->caps.ext & SMTP_EXT_PIPELINING) && !c->config.no_pipelining;
}

static size_t next_open_rcpt(const struct txn *t, size_t from)
{
	while (from < t->n && t->rcpts[from].done)
		from++;
	return from;
}

static void mail_command(struct smtp_client *c, struct txn *t)
{
	struct buf *o = &c->out;

	buf_printf(o, "MAIL FROM:<%s>", t->sender);
	if ((c->caps.ext & SMTP_EXT_SIZE) && t->size >= 0)
		buf_printf(o, " SIZE=%lld", t->size);
	if (t->body_8bit && (c->caps.ext & SMTP_EXT_8BITMIME))
		buf_append_str(o, " BODY=8BITMIME");
	if (t->smtputf8)
		buf_append_str(o, " SMTPUTF8");
	if (c->caps.ext & SMTP_EXT_DSN) {
		if (t->ret != NULL)
			buf_printf(o, " RET=%s", t->ret);
		if (t->envid != NULL)
			buf_printf(o, " ENVID=%s", t->envid);
	}
	end_command(c, K_MAIL, 0);
}

static void rcpt_command(struct smtp_client *c, struct txn *t, size_t i)
{
	const struct trcpt *r = &t->rcpts[i];
	struct buf *o = &c->out;

	buf_printf(o, "RCPT TO:<%s>", r->addr);
	if (c->caps.ext & SMTP_EXT_DSN) {
		if (r->notify == SMTP_NOTIFY_NEVER) {
			buf_append_str(o, " NOTIFY=NEVER");
		} else if (r->notify != 0) {
			const char *sep = " NOTIFY=";

			if (r->notify & SMTP_NOTIFY_SUCCESS) {
				buf_printf(o, "%sSUCCESS", sep);
				sep = ",";
			}
			if (r->notify & SMTP_NOTIFY_FAILURE) {
				buf_printf(o, "%sFAILURE", sep);
				sep = ",";
			}
			if (r->notify & SMTP_NOTIFY_DELAY)
				buf_printf(o, "%sDELAY", sep);
		}
		if (r->orcpt != NULL)
			buf_printf(o, " ORCPT=%s", r->orcpt);
	}
	end_command(c, K_RCPT, i);
}

/* trans_send - send what comes next: all of it when pipelining, else
 * one command. */
static void trans_send(struct smtp_client *c)
{
	struct txn *t = c->txn;
	bool pipe = pipelining(c);

	while (t->step != STEP_SENT) {
		bool sent = true;

		switch (t->step) {
		case STEP_RSET:
			command(c, K_RSET, 0, "RSET");
			c->need_rset = false;
			t->step = STEP_MAIL;
			break;
		case STEP_MAIL:
			mail_command(c, t);
			c->need_rset = true; /* until the content gets 2xx */
			t->step = STEP_RCPT;
			break;
		case STEP_RCPT: {
			size_t i = next_open_rcpt(t, t->next_rcpt);

			if (i < t->n) {
				rcpt_command(c, t, i);
				t->next_rcpt = i + 1;
			} else {
				t->step = STEP_DATA;
				sent = false;
			}
			break;
		}
		case STEP_DATA:
			command(c, K_DATA, 0, "DATA");
			t->step = STEP_SENT;
			break;
		case STEP_SENT:
			break;
		}
		if (sent && !pipe)
			break;
	}
	flush(c);
}

/* start_txn - the session is ready: refuse the message at once if the
 * server cannot take it, else send its commands. */
static void start_txn(struct smtp_client *c)
{
	struct txn *t = c->txn;
	char text[200];

	t->started = true;
	if (t->bad_sender) {
		all_fail(t, 553, "5.1.7", SMTP_STAGE_MAIL, "bad sender address syntax");
	} else if (t->smtputf8 && !(c->caps.ext & SMTP_EXT_SMTPUTF8)) {
		all_fail(t, 554, "5.6.7", SMTP_STAGE_MAIL, "SMTPUTF8 is required, but was not offered by the server");
	} else if ((c->caps.ext & SMTP_EXT_SIZE) && c->caps.size > 0 && t->size >= 0 &&
		   (unsigned long long)t->size > c->caps.size) {
		snprintf(text, sizeof text, "message size %lld exceeds size limit %llu of the server", t->size,
			 c->caps.size);
		all_fail(t, 552, "5.3.4", SMTP_STAGE_MAIL, text);
	}
	if (next_open_rcpt(t, 0) == t->n) {
		/* Nothing to send (or no recipient to send it to). */
		finish_txn(c, NULL, true);
		return;
	}
	t->step = c->need_rset ? STEP_RSET : STEP_MAIL;
	trans_send(c);
}

/* ---- content ------------------------------------------------------ */

/* stuff - data[0..len) into c->out: dot-stuffed, every line end CRLF. */
static void stuff(struct smtp_client *c, const uint8_t *d, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint8_t b = d[i];
		size_t j;

		if (c->pending_cr) {
			/* A CR at the end of the last piece: CRLF or a bare CR,
			 * both sent as CRLF. */
			c->pending_cr = false;
			buf_append(&c->out, "\r\n", 2);
			c->line_start = true;
			if (b == '\n') {
				i++;
				continue;
			}
		}
		if (b == '\r') {
			c->pending_cr = true;
			i++;
			continue;
		}
		if (b == '\n') {
			buf_append(&c->out, "\r\n", 2);
			c->line_start = true;
			i++;
			continue;
		}
		if (c->line_start && b == '.')
			buf_append_byte(&c->out, '.');
		for (j = i; j < len && d[j] != '\r' && d[j] != '\n'; j++)
			;
		buf_append(&c->out, d + i, j - i);
		c->line_start = false;
		i = j;
	}
}

/* stuff_end - close the last line and add the end of data. */
static void stuff_end(struct smtp_client *c)
{
	if (c->pending_cr) {
		c->pending_cr = false;
		c->line_start = true;
		buf_append(&c->out, "\r\n", 2);
	}
	if (!c->line_start)
		buf_append(&c->out, "\r\n", 2);
	buf_append(&c->out, ".\r\n", 3);
}

/* pump - send content until it ends, the output is full, or the session
 * ends. */
static void pump(struct smtp_client *c)
{
	c->content_paused = false;
	while (c->state == C_CONTENT && !c->dead && !c->closing) {
		ssize_t n;

		if (c->cb.output_full != NULL && c->cb.output_full(c->ctx)) {
			c->content_paused = true;
			return;
		}
		if (c->dead || c->state != C_CONTENT || c->closing)
			return;
		n = c->cb.read_content(c->ctx, c->chunk, SMTP_CLIENT_CONTENT_CHUNK);
		if (c->dead || c->state != C_CONTENT || c->closing)
			return;
		if (n < 0 || (size_t)n > SMTP_CLIENT_CONTENT_CHUNK) {
			/* The server would take a cut message as whole: leave
			 * without the final dot. */
			fail_local(c, "4.3.0", false, false, SMTP_STAGE_CONTENT, "error reading the message content");
			return;
		}
		buf_reset(&c->out);
		if (n == 0) {
			stuff_end(c);
			enter_state(c, C_OPEN);
			pend_push(c, K_DOT, 0);
		} else {
			stuff(c, c->chunk, (size_t)n);
		}
		flush(c);
	}
}

static void start_content(struct smtp_client *c)
{
	enter_state(c, C_CONTENT);
	c->line_start = true;
	c->pending_cr = false;
	if (c->chunk == NULL)
		c->chunk = xmalloc(SMTP_CLIENT_CONTENT_CHUNK);
	pump(c);
}

/* ---- set-up: greeting, EHLO, STARTTLS, AUTH --------------------------- */

static void send_quit(struct smtp_client *c)
{
	c->quit_sent = true;
	command(c, K_QUIT, 0, "QUIT");
	flush(c);
}

static void send_ehlo(struct smtp_client *c)
{
	memset(&c->caps, 0, sizeof c->caps);
	command(c, K_EHLO, 0, "EHLO %s", c->config.helo_name);
	flush(c);
}

/* setup_done - the session is ready for messages. */
static void setup_done(struct smtp_client *c)
{
	c->ready = true;
	next_step(c);
}

/* after_tls - TLS is settled (on, refused, or not wanted): AUTH. */
static void after_tls(struct smtp_client *c)
{
	const char *user = c->config.auth_user, *pass = c->config.auth_password;
	struct buf resp = BUF_INIT, b64 = BUF_INIT;

	if (user == NULL || c->auth_done) {
		setup_done(c);
		return;
	}
	if (!(c->caps.ext & SMTP_EXT_AUTH)) {
		log_event(c, "the server offers no AUTH: sending without authentication");
		c->auth_done = true;
		setup_done(c);
		return;
	}
	if (!c->tls && !c->config.auth_plaintext) {
		fail_local(c, "4.7.0", true, true, SMTP_STAGE_AUTH,
			   "SASL authentication over an unencrypted connection is not allowed");
		return;
	}
	if (smtp_ehlo_has_auth(&c->caps, "PLAIN")) {
		/* RFC 4616: authzid NUL authcid NUL passwd */
		buf_append_byte(&resp, 0);
		buf_append_str(&resp, user);
		buf_append_byte(&resp, 0);
		buf_append_str(&resp, pass);
		base64_encode(&b64, resp.data, resp.len);
		c->auth_mech = "PLAIN";
		command(c, K_AUTH, 0, "AUTH PLAIN %s", buf_cstr(&b64));
		flush(c);
		explicit_bzero(resp.data, resp.len);
		explicit_bzero(b64.data, b64.len);
	} else if (smtp_ehlo_has_auth(&c->caps, "LOGIN")) {
		c->auth_mech = "LOGIN";
		command(c, K_AUTH_USER, 0, "AUTH LOGIN");
		flush(c);
	} else {
		fail_local(c, "4.7.0", true, true, SMTP_STAGE_AUTH,
			   "no usable SASL mechanism offered (the server offers: %s)", c->caps.auth);
	}
	buf_free(&resp);
	buf_free(&b64);
}

/* after_helo - EHLO/HELO done: STARTTLS if wanted, else on to AUTH. */
static void after_helo(struct smtp_client *c)
{
	if (!c->tls && c->config.tls != SMTP_CLIENT_TLS_NONE && !c->tls_refused) {
		if (c->caps.ext & SMTP_EXT_STARTTLS) {
			command(c, K_STARTTLS, 0, "STARTTLS");
			flush(c);
			return;
		}
		if (c->config.tls == SMTP_CLIENT_TLS_ENCRYPT) {
			fail_local(c, "4.7.4", true, true, SMTP_STAGE_STARTTLS,
				   "TLS is required, but was not offered by the server");
			return;
		}
		log_event(c, "the server does not offer STARTTLS: going on in plaintext");
	}
	after_tls(c);
}

/* auth_line - one base64 line of a LOGIN exchange. */
static void auth_line(struct smtp_client *c, enum cmd kind, const char *secret)
{
	struct buf b64 = BUF_INIT;

	base64_encode(&b64, secret, strlen(secret));
	command(c, kind, 0, "%s", buf_cstr(&b64));
	flush(c);
	explicit_bzero(b64.data, b64.len);
	buf_free(&b64);
}

/* ---- replies ------------------------------------------------------ */

/* positive - whether the reply is the one that lets kind go on. */
static bool positive(enum cmd kind, int code)
{
	switch (kind) {
	case K_DATA:
		return code == 354;
	case K_AUTH:
		return code / 100 == 2 || code == 334;
	case K_AUTH_USER:
	case K_AUTH_PASS:
		return code == 334;
	default:
		return code / 100 == 2;
	}
}

/* txn_reply - a reply to a command of the transaction. */
static void txn_reply(struct smtp_client *c, struct pending p, const struct smtp_parsed_reply *r, bool ok)
{
	struct txn *t = c->txn;
	enum smtp_client_stage stage = kind_stage(p.kind);
	bool pipe = pipelining(c);

	switch (p.kind) {
	case K_RSET:
		if (!ok) {
			fail_reply(c, r, stage);
			return;
		}
		if (!pipe)
			trans_send(c);
		return;
	case K_MAIL:
		if (ok) {
			t->mail_ok = true;
			if (!pipe)
				trans_send(c);
			return;
		}
		all_reply(t, r, stage, false);
		if (!pipe)
			finish_txn(c, NULL, true);
		return; /* pipelined: the RCPT and DATA replies are still to come */
	case K_RCPT:
		if (!t->mail_ok)
			return;
		if (ok) {
			t->rcpts[p.rcpt].accepted = true;
			t->naccepted++;
		} else {
			reply_result(t->pool, &t->results[p.rcpt], r, reply_status(r->code), false, stage);
			t->rcpts[p.rcpt].done = true;
		}
		if (pipe)
			return;
		if (next_open_rcpt(t, t->next_rcpt) < t->n || t->naccepted > 0)
			trans_send(c); /* the next RCPT, or DATA */
		else
			finish_txn(c, NULL, true);
		return;
	case K_DATA:
		if (ok && t->mail_ok && t->naccepted > 0) {
			start_content(c);
			return;
		}
		if (ok) {
			/* 354 without an accepted recipient (RFC 2920 3.1):
			 * an empty message, whose reply is ignored. */
			buf_reset(&c->out);
			buf_append(&c->out, ".\r\n", 3);
			pend_push(c, K_DOT, 0);
			flush(c);
			return;
		}
		if (t->mail_ok)
			all_reply(t, r, stage, true);
		finish_txn(c, NULL, true);
		return;
	case K_DOT:
		if (t->mail_ok && t->naccepted > 0) {
			all_reply(t, r, stage, true);
			if (ok)
				c->need_rset = false;
		}
		finish_txn(c, NULL, true);
		return;
	default:
		log_panic("smtp_client: %d is no transaction command", (int)p.kind);
	}
}

/* handle_reply - a whole reply: match it with the oldest command. */
static void handle_reply(struct smtp_client *c, const struct smtp_parsed_reply *r)
{
	struct pending p;
	enum smtp_client_stage stage;
	bool ok;

	if (pend_count(c) == 0) {
		/* Nothing asked: a 421 (idle timeout, shutdown) ends the
		 * session, anything else is out of step. */
		if (r->code == 421)
			fail_reply(c, r, SMTP_STAGE_IDLE);
		else
			protocol_error(c, SMTP_STAGE_IDLE, pool_printf(c->pool, "unexpected reply %03d", r->code));
		return;
	}
	p = pend_pop(c);
	stage = kind_stage(p.kind);
	if (p.kind == K_QUIT) {
		end_session(c, NULL);
		return;
	}
	if (r->code == 421) {
		fail_reply(c, r, stage);
		return;
	}
	ok = positive(p.kind, r->code);
	if (!ok && r->code < 400) {
		protocol_error(c, stage, pool_printf(c->pool, "unexpected reply %03d", r->code));
		return;
	}
	switch (p.kind) {
	case K_GREETING:
		if (!ok) {
			fail_reply(c, r, stage);
		} else if (c->txn == NULL && c->quit_wanted) {
			send_quit(c);
		} else {
			send_ehlo(c);
		}
		return;
	case K_EHLO:
		if (ok) {
			smtp_ehlo_parse(r, &c->caps);
			after_helo(c);
		} else if (r->code >= 500) {
			struct buf text = BUF_INIT;

			smtp_reply_text(r, &text);
			log_event(c, "EHLO refused (%03d %s): trying HELO", r->code,
				  clean_text(c->pool, buf_cstr(&text), text.len));
			buf_free(&text);
			command(c, K_HELO, 0, "HELO %s", c->config.helo_name);
			flush(c);
		} else {
			fail_reply(c, r, stage);
		}
		return;
	case K_HELO:
		if (ok)
			after_helo(c);
		else
			fail_reply(c, r, stage);
		return;
	case K_STARTTLS:
		if (ok) {
			/* CVE-2011-0411: whatever came with or after the 220 was
			 * sent in clear and may be anyone's: never take it as
			 * spoken over TLS. */
			if (in_len(c) > 0 || c->in_later.len > 0 || smtp_reply_parser_partial(c->parser)) {
				protocol_error(c, stage, "response injected after the reply to STARTTLS");
				return;
			}
			enter_state(c, C_TLS);
			if (!c->dead)
				c->cb.want_tls(c->ctx);
		} else if (c->config.tls == SMTP_CLIENT_TLS_ENCRYPT) {
			fail_reply(c, r, stage);
		} else {
			log_event(c, "STARTTLS refused (%03d): going on in plaintext", r->code);
			c->tls_refused = true;
			after_tls(c);
		}
		return;
	case K_AUTH:
		if (ok && r->code == 334) {
			/* A challenge after our initial response: give up. */
			command(c, K_AUTH_CANCEL, 0, "*");
			flush(c);
		} else if (ok) {
			c->auth_done = true;
			log_event(c, "authenticated with %s", c->auth_mech);
			setup_done(c);
		} else {
			fail_reply(c, r, stage);
		}
		return;
	case K_AUTH_USER:
	case K_AUTH_PASS:
		if (!ok)
			fail_reply(c, r, stage);
		else if (p.kind == K_AUTH_USER)
			auth_line(c, K_AUTH_PASS, c->config.auth_user);
		else
			auth_line(c, K_AUTH, c->config.auth_password);
		return;
	case K_AUTH_CANCEL:
		fail_local(c, "4.7.0", true, true, stage, "SASL %s: unexpected challenge after the initial response",
			   c->auth_mech);
		return;
	case K_RSET:
	case K_MAIL:
	case K_RCPT:
	case K_DATA:
	case K_DOT:
		if (c->txn == NULL)
			log_panic("smtp_client: a transaction reply without a transaction");
		txn_reply(c, p, r, ok);
		return;
	case K_QUIT:
		return;
	}
}

/* next_step - between replies: start the next message, or QUIT. */
static void next_step(struct smtp_client *c)
{
	if (c->dead || c->closing || c->state != C_OPEN || !c->ready || pend_count(c) > 0)
		return;
	if (c->txn != NULL && !c->txn->started)
		start_txn(c);
	else if (c->txn == NULL && c->quit_wanted && !c->quit_sent)
		send_quit(c);
}

/* process - read whatever whole replies the input holds. */
static void process(struct smtp_client *c)
{
	if (c->processing)
		return;
	c->processing = true;
	while (!c->dead && c->state != C_CLOSED) {
		enum smtp_reply_parse_result rc;
		size_t used;

		in_merge_later(c);
		if (in_len(c) == 0)
			break;
		if (c->state == C_TLS) {
			protocol_error(c, SMTP_STAGE_STARTTLS, "input before the TLS handshake");
			break;
		}
		if (c->state == C_CONTENT) {
			/* The server talks before the end of the content: its
			 * words wait for the dot. */
			if (in_len(c) > SMTP_CLIENT_INPUT_MAX)
				protocol_error(c, SMTP_STAGE_CONTENT, "too much input while sending the content");
			break;
		}
		rc = smtp_reply_parser_feed(c->parser, in_data(c), in_len(c), &used);
		in_skip(c, used);
		if (rc == SMTP_REPLY_MORE)
			continue;
		if (rc == SMTP_REPLY_ERROR) {
			if (c->quit_sent)
				end_session(c, NULL); /* the end we asked for anyway */
			else
				protocol_error(c, smtp_client_stage(c), smtp_reply_parser_error(c->parser));
			break;
		}
		handle_reply(c, smtp_reply_parser_reply(c->parser));
		next_step(c);
	}
	c->processing = false;
	if (c->dead)
		return;
	if (c->state == C_CLOSED)
		in_drop(c);
	else if (c->in_off > IN_COMPACT) {
		buf_consume(&c->in, c->in_off);
		c->in_off = 0;
	}
}

/* ---- public API --------------------------------------------------- */

struct smtp_client *smtp_client_new(const struct smtp_client_config *config,
				    const struct smtp_client_callbacks *cb, void *ctx)
{
	struct smtp_client *c;

	if (cb->write == NULL || cb->read_content == NULL || cb->message_done == NULL || cb->close == NULL)
		log_panic("smtp_client_new: a required callback is missing");
	if (config->tls != SMTP_CLIENT_TLS_NONE && !config->tls_active && cb->want_tls == NULL)
		log_panic("smtp_client_new: a TLS policy without the want_tls callback");
	c = xnew(struct smtp_client);
	c->pool = pool_create();
	c->config = *config;
	c->config.helo_name = pool_strdup(c->pool, config->helo_name != NULL && config->helo_name[0] != '\0'
							   ? config->helo_name
							   : "localhost");
	if (!addr_ok(c->config.helo_name) || strchr(c->config.helo_name, ' ') != NULL)
		log_panic("smtp_client_new: bad helo_name");
	if (config->auth_user != NULL && config->auth_user[0] != '\0') {
		c->config.auth_user = pool_strdup(c->pool, config->auth_user);
		c->config.auth_password =
			pool_strdup(c->pool, config->auth_password != NULL ? config->auth_password : "");
	} else {
		c->config.auth_user = NULL;
		c->config.auth_password = NULL;
	}
	c->cb = *cb;
	c->ctx = ctx;
	c->tls = config->tls_active;
	c->parser = smtp_reply_parser_new();
	c->state = C_OPEN;
	pend_push(c, K_GREETING, 0);
	return c;
}

void smtp_client_send(struct smtp_client *c, const struct smtp_client_message *msg)
{
	if (c->dead)
		return;
	if (c->closing || c->state == C_CLOSED)
		log_panic("smtp_client_send: the session is over");
	if (c->txn != NULL)
		log_panic("smtp_client_send: a message is already in progress");
	if (c->quit_wanted)
		log_panic("smtp_client_send: after smtp_client_quit");
	enter(c);
	c->txn = txn_new(msg);
	next_step(c);
	process(c);
	leave(c);
}

void smtp_client_quit(struct smtp_client *c)
{
	if (c->dead || c->closing || c->state == C_CLOSED || c->quit_wanted)
		return;
	enter(c);
	c->quit_wanted = true;
	next_step(c);
	process(c);
	leave(c);
}

void smtp_client_input(struct smtp_client *c, const void *data, size_t len)
{
	if (c->dead || c->state == C_CLOSED || len == 0)
		return;
	if (c->depth > 0) {
		buf_append(&c->in_later, data, len);
		return;
	}
	enter(c);
	buf_append(&c->in, data, len);
	process(c);
	leave(c);
}

void smtp_client_tls_done(struct smtp_client *c, bool ok)
{
	if (c->dead || c->closing || c->state == C_CLOSED)
		return;
	if (c->state != C_TLS)
		log_panic("smtp_client_tls_done: no STARTTLS pending");
	enter(c);
	enter_state(c, C_OPEN);
	if (ok) {
		c->tls = true;
		log_event(c, "TLS started");
		/* RFC 3207 4.2: forget what the server said in clear. */
		smtp_reply_parser_reset(c->parser);
		send_ehlo(c);
	} else {
		fail_local(c, "4.7.5", true, false, SMTP_STAGE_STARTTLS, "TLS handshake failed");
	}
	process(c);
	leave(c);
}

void smtp_client_output_ready(struct smtp_client *c)
{
	if (c->dead || c->state != C_CONTENT || !c->content_paused)
		return;
	enter(c);
	pump(c);
	process(c);
	leave(c);
}

/* give_up - a timeout or a lost connection. */
static void give_up(struct smtp_client *c, const char *what, const char *why)
{
	enum smtp_client_stage stage = smtp_client_stage(c);
	char detail[SANITIZE_MAX];

	if (c->dead || c->closing || c->state == C_CLOSED)
		return;
	enter(c);
	if (c->quit_sent) {
		end_session(c, NULL); /* the end we asked for */
	} else {
		if (why != NULL)
			sanitize(detail, sizeof detail, why, strlen(why));
		fail_local(c, "4.4.2", true, false, stage, "%s while %s%s%s%s", what, stage_phrase(c, stage),
			   why != NULL ? " (" : "", why != NULL ? detail : "", why != NULL ? ")" : "");
	}
	leave(c);
}

void smtp_client_timeout(struct smtp_client *c)
{
	give_up(c, "conversation timed out", NULL);
}

void smtp_client_lost(struct smtp_client *c, const char *why)
{
	give_up(c, "lost connection", why);
}

unsigned smtp_client_extensions(const struct smtp_client *c)
{
	return c->caps.ext;
}

unsigned long long smtp_client_size_limit(const struct smtp_client *c)
{
	return c->caps.size;
}

bool smtp_client_tls(const struct smtp_client *c)
{
	return c->tls;
}

const char *smtp_client_auth_mech(const struct smtp_client *c)
{
	return c->auth_done ? c->auth_mech : NULL;
}

bool smtp_client_closed(const struct smtp_client *c)
{
	return c->state == C_CLOSED;
}

void smtp_client_free(struct smtp_client **cp)
{
	struct smtp_client *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	if (c->dead)
		return;
	c->dead = true;
	enter(c);
	leave(c);
}
