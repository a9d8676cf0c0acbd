/* smtp_server.c - the SMTP server protocol engine (see smtp_server.h for
 * the API, smtp_server.md for the policy decisions).
 *
 * Shape: bytes go into s->in; process() runs whatever can run: command
 * lines through the command table, DATA content through the scanner
 * (smtp_data.c), BDAT chunks by count. A command that needs the
 * application (MAIL, RCPT, DATA/BDAT, the end of a message) sets s->wait
 * and calls out; nothing else runs until the matching *_done answer
 * arrives, so replies to pipelined commands leave in order.
 *
 * Re-entrancy: callbacks may call back into the engine. *_done inside a
 * callback only records the answer and replies; the loop already running
 * goes on. Input given while any engine call is on the stack (s->depth
 * counts them) waits in s->in.later until the engine is between steps:
 * nothing moves under the pointers the loop holds, and no command runs
 * half-way through a state change. smtp_session_free inside a callback
 * marks the session dead: no callback is made after that, and the
 * memory goes when the outermost engine call returns.
 *
 * Limits are enforced here, at the edge: command line length, errors,
 * junk commands, recipients, message size, Received headers, buffered
 * input.
 */
#include "config.h"
#include "smtp_server.h"
#include "addr.h"
#include "smtp_cmd.h"
#include "smtp_data.h"
#include "smtp_reply.h"
#include "../libutil/base64.h"
#include "../libutil/buf.h"
#include "../libutil/inbuf.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/pool.h"
#include "../libutil/sanitize.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Command line limits, CRLF included. RFC 5321 4.5.3.1.4 gives 512 and
 * lets extensions add: SIZE= 26 (RFC 1870), ENVID= and RET= 100 (RFC
 * 3461 4), " BODY=8BITMIME" 14 and " SMTPUTF8" 9 on MAIL; NOTIFY= and
 * ORCPT= 500 (RFC 3461 4) on RCPT. We offer all of them, so a client
 * using them with long (legal) addresses must not be cut off. */
#define LINE_MAX_DEFAULT 512
#define LINE_MAX_MAIL (LINE_MAX_DEFAULT + 26 + 100 + 14 + 9)
#define LINE_MAX_RCPT (LINE_MAX_DEFAULT + 500)
/* RFC 4954 4: AUTH lines (the command with an initial response, and the
 * responses to challenges) may be 12288 octets. */
#define LINE_MAX_AUTH 12288
#define LINE_MAX_ANY LINE_MAX_AUTH
/* SASL mechanism names: RFC 4422 3.1, at most 20 characters. */
#define MECH_NAME_MAX 20

/* Junk commands (NOOP, RSET, HELP, VRFY, EXPN, ...) allowed between two
 * accepted messages before each further one counts as an error. */
#define JUNK_LIMIT 100


enum session_state {
	S_NEW,   /* before smtp_session_start */
	S_CMD,   /* reading command lines */
	S_DATA,  /* reading DATA content */
	S_BDAT,  /* reading a BDAT chunk */
	S_AUTH,  /* reading the response to an AUTH challenge */
	S_TLS,   /* STARTTLS answered, handshake under way: input discarded */
	S_CLOSED /* close called: input ignored */
};

enum wait {
	W_NONE,
	W_MAIL,      /* mail callback */
	W_RCPT,      /* rcpt callback */
	W_DATA_OPEN, /* data_open callback */
	W_DATA_DONE, /* data_close(true): committing */
	W_AUTH       /* auth_start or auth_step */
};

enum helo_mode { HELO_NONE, HELO_HELO, HELO_EHLO };

enum data_kind { D_NONE, D_DATA, D_BDAT };

struct rcpt {
	struct mail_addr addr;
	struct smtp_rcpt_params params;
};

struct smtp_session;
typedef void cmd_handler(struct smtp_session *s, const char *args, size_t len);

#define CMD_NEED_HELO 0x1 /* 503 5.5.1 before EHLO/HELO */
#define CMD_NO_ARGS 0x2   /* 501 5.5.4 with an argument */
#define CMD_JUNK 0x4      /* counts toward the junk limit */

struct smtp_command {
	const char *name;
	cmd_handler *handler;
	unsigned flags;
	size_t line_max; /* 0: LINE_MAX_DEFAULT */
};

static cmd_handler cmd_ehlo, cmd_helo, cmd_mail, cmd_rcpt, cmd_data, cmd_bdat, cmd_rset, cmd_noop,
	cmd_quit, cmd_help, cmd_vrfy, cmd_starttls, cmd_auth, cmd_not_implemented;

/* The command table. BDAT checks EHLO/HELO itself: it must read its
 * chunk before it may answer. */
static const struct smtp_command commands[] = {
	{ "EHLO", cmd_ehlo, 0, 0 },
	{ "HELO", cmd_helo, 0, 0 },
	{ "MAIL", cmd_mail, CMD_NEED_HELO, LINE_MAX_MAIL },
	{ "RCPT", cmd_rcpt, CMD_NEED_HELO, LINE_MAX_RCPT },
	{ "DATA", cmd_data, CMD_NEED_HELO | CMD_NO_ARGS, 0 },
	{ "BDAT", cmd_bdat, 0, 0 },
	{ "RSET", cmd_rset, CMD_NO_ARGS | CMD_JUNK, 0 },
	{ "NOOP", cmd_noop, CMD_JUNK, 0 },
	{ "QUIT", cmd_quit, CMD_NO_ARGS, 0 },
	{ "HELP", cmd_help, CMD_JUNK, 0 },
	{ "VRFY", cmd_vrfy, CMD_JUNK, 0 },
	{ "EXPN", cmd_not_implemented, CMD_JUNK, 0 },
	{ "STARTTLS", cmd_starttls, CMD_NEED_HELO | CMD_NO_ARGS, 0 },
	{ "AUTH", cmd_auth, CMD_NEED_HELO, LINE_MAX_AUTH },
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])
#define CMD_UNKNOWN N_COMMANDS /* index of the "unknown" counters */
#define CMD_NONE (N_COMMANDS + 1)

/* EHLO keywords after the host name line, in this order (the last one
 * is always offered). */
enum { CAP_PLAIN, CAP_SIZE, CAP_UTF8, CAP_STARTTLS, CAP_AUTH };
static const struct {
	const char *keyword;
	int kind;
} capabilities[] = {
	{ "PIPELINING", CAP_PLAIN }, { "SIZE", CAP_SIZE }, { "STARTTLS", CAP_STARTTLS }, { "AUTH", CAP_AUTH },
	{ "8BITMIME", CAP_PLAIN }, { "ENHANCEDSTATUSCODES", CAP_PLAIN }, { "SMTPUTF8", CAP_UTF8 },
	{ "CHUNKING", CAP_PLAIN }, { "DSN", CAP_PLAIN },
};

struct smtp_session {
	struct smtp_server_config config;
	struct smtp_server_callbacks cb;
	void *ctx;
	struct pool *pool;       /* session lifetime */
	struct pool *trans_pool; /* one transaction */
	struct pool *cmd_pool;   /* one command (and its pending answer) */
	const char *client_addr;
	const char *client_name;
	const char *client_log; /* "name[addr]", sanitised */

	enum session_state state;
	enum wait wait;
	unsigned depth;  /* engine calls on the stack */
	bool dead;       /* freed by the application */
	bool processing; /* process() is on the stack */
	bool paused;     /* flow(ctx, true) in force */
	bool tls;
	const char *tls_desc;  /* "TLSv1.3 with cipher ... (256/256 bits)" (pool), or NULL */
	const char *auth_mechs; /* offered now (pool), NULL: none */
	const char *auth_user; /* authenticated as (pool), or NULL */
	const char *auth_mech; /* the mechanism of the exchange, or of the success (pool) */
	bool auth_exchange;    /* an AUTH exchange is under way: auth_cancel owed if abandoned */
	bool discard_line; /* skipping the rest of an overlong line */
	bool logged_disconnect;

	struct inbuf in;     /* unprocessed input */
	struct buf line;     /* the command line being handled */
	struct buf helo;
	enum helo_mode helo_mode;
	int errors;
	int junk;
	size_t cur_cmd; /* commands[] index, CMD_UNKNOWN or CMD_NONE */
	char verb_log[24]; /* the current verb, sanitised, for log lines */
	unsigned stat_total[N_COMMANDS + 1];
	unsigned stat_ok[N_COMMANDS + 1];

	/* The command waiting for an answer (cmd_pool). */
	struct mail_addr pend_addr;
	struct smtp_mail_params pend_mail;
	struct smtp_rcpt_params pend_rcpt;

	/* The transaction (trans_pool). */
	bool has_mail;
	struct mail_addr sender;
	struct smtp_mail_params mail_params;
	struct rcpt *rcpts; /* malloc'ed array */
	size_t nrcpt, rcpt_cap;
	unsigned rcpt_attempts;
	enum data_kind data_kind;
	bool data_opened; /* content file open: data_close is owed */
	const char *queue_id;
	struct smtp_data *scanner;
	unsigned long long written;
	bool too_big;
	bool write_failed;
	int write_errno;

	/* The BDAT chunk being read (or waiting for data_open). */
	unsigned long long chunk_size;
	unsigned long long chunk_left;
	bool chunk_last;
	bool chunk_discard;   /* read and drop it, then send chunk_reply */
	int chunk_reply;
	bool chunk_is_error;  /* chunk_reply counts as a client error */
};

static void process(struct smtp_session *s);
static void session_close(struct smtp_session *s);

/* ---- entry and exit, callbacks ------------------------------------ */

/* enter / leave - bracket every public function that can call back, so
 * that a free from inside a callback waits until the engine is done. */
static void enter(struct smtp_session *s)
{
	s->depth++;
}

static void destroy(struct smtp_session *s)
{
	smtp_data_free(&s->scanner);
	inbuf_free(&s->in);
	buf_free(&s->line);
	buf_free(&s->helo);
	free(s->rcpts);
	pool_destroy(&s->cmd_pool);
	pool_destroy(&s->trans_pool);
	pool_destroy(&s->pool);
	free(s);
}

static void leave(struct smtp_session *s)
{
	if (--s->depth == 0 && s->dead)
		destroy(s);
}

/* runnable - whether process() may do more work now. */
static bool runnable(const struct smtp_session *s)
{
	return !s->dead && s->wait == W_NONE &&
	       (s->state == S_CMD || s->state == S_DATA || s->state == S_BDAT || s->state == S_AUTH);
}

/* enter_state - the one place the state changes; nothing leaves
 * S_CLOSED. */
static void enter_state(struct smtp_session *s, enum session_state state)
{
	if (s->state != S_CLOSED)
		s->state = state;
}

static void cb_write(struct smtp_session *s, const void *data, size_t len)
{
	if (!s->dead && s->state != S_CLOSED)
		s->cb.write(s->ctx, data, len);
}

static void cb_data_close(struct smtp_session *s, bool ok)
{
	if (!s->dead)
		s->cb.data_close(s->ctx, ok);
}

/* auth_abandon - an AUTH exchange ends without a verdict: the
 * application forgets its side of it. */
static void auth_abandon(struct smtp_session *s)
{
	if (!s->auth_exchange)
		return;
	s->auth_exchange = false;
	if (!s->dead && s->cb.auth_cancel != NULL)
		s->cb.auth_cancel(s->ctx);
}

static void log_event(struct smtp_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void log_event(struct smtp_session *s, const char *fmt, ...)
{
	struct buf line = BUF_INIT;
	va_list ap;

	if (s->cb.log == NULL || s->dead)
		return;
	va_start(ap, fmt);
	buf_vprintf(&line, fmt, ap);
	va_end(ap);
	s->cb.log(s->ctx, buf_cstr(&line));
	buf_free(&line);
}

/* flow_update - tell the application to stop or resume reading. */
static void flow_update(struct smtp_session *s)
{
	bool blocked = s->wait != W_NONE || s->state == S_NEW;

	if (s->cb.flow == NULL || s->dead || s->state == S_CLOSED)
		return;
	if (!s->paused && blocked && inbuf_held(&s->in) > SMTP_INPUT_HIGH) {
		s->paused = true;
		s->cb.flow(s->ctx, true);
	} else if (s->paused && (!blocked || inbuf_held(&s->in) <= SMTP_INPUT_HIGH / 2)) {
		s->paused = false;
		s->cb.flow(s->ctx, false);
	}
}

/* ---- replies ------------------------------------------------------ */

/* format_reply - "CODE[ -]STATUS PREFIX TEXT SUFFIX" without CRLF; the
 * parts that are missing leave no double spaces. */
static void format_reply(struct buf *out, int id, char sep, const char *prefix, const char *suffix)
{
	const struct smtp_reply *r = smtp_reply_get((enum smtp_reply_id)id);
	const char *parts[4] = { r->status, prefix, r->text, suffix };
	bool first = true;

	buf_printf(out, "%03d%c", r->code, sep);
	for (size_t i = 0; i < 4; i++) {
		if (parts[i] == NULL || parts[i][0] == '\0')
			continue;
		if (!first)
			buf_append_byte(out, ' ');
		buf_append_str(out, parts[i]);
		first = false;
	}
}

static int reply_code(int id)
{
	return smtp_reply_get((enum smtp_reply_id)id)->code;
}

/* send_reply - one final reply line; counts a 2xx towards the current
 * command's successes; a 421 ends the session (RFC 5321 3.8). */
static void send_reply(struct smtp_session *s, int id, const char *prefix, const char *suffix)
{
	struct buf out = BUF_INIT;
	int code = reply_code(id);

	format_reply(&out, id, ' ', prefix, suffix);
	buf_append(&out, "\r\n", 2);
	cb_write(s, out.data, out.len);
	buf_free(&out);
	if (code >= 200 && code < 300 && s->cur_cmd < CMD_NONE)
		s->stat_ok[s->cur_cmd]++;
	if (code == 421)
		session_close(s);
}

/* ---- log helpers -------------------------------------------------- */

/* proto_name - the "with" of the Received header (RFC 3848). */
static const char *proto_name(const struct smtp_session *s)
{
	static const char *const names[2][2][2] = {
		/* [utf8][tls][auth] */
		{ { "ESMTP", "ESMTPA" }, { "ESMTPS", "ESMTPSA" } },
		{ { "UTF8SMTP", "UTF8SMTPA" }, { "UTF8SMTPS", "UTF8SMTPSA" } },
	};

	if (s->helo_mode != HELO_EHLO)
		return s->tls ? "SMTPS" : "SMTP";
	return names[s->has_mail && s->mail_params.smtputf8][s->tls][s->auth_user != NULL];
}

/* log_addr - "<address>" sanitised for a log line (cmd_pool memory). */
static const char *log_addr(struct smtp_session *s, const struct mail_addr *addr)
{
	char clean[SANITIZE_MAX];
	const char *text = addr_format(s->cmd_pool, addr);

	sanitize(clean, sizeof clean, text, strlen(text));
	return pool_printf(s->cmd_pool, "<%s>", clean);
}

static const char *log_helo(struct smtp_session *s)
{
	char clean[SANITIZE_MAX];

	sanitize(clean, sizeof clean, s->helo.data != NULL ? s->helo.data : (const uint8_t *)"", s->helo.len);
	return pool_printf(s->cmd_pool, "<%s>", clean);
}

/* log_reject - "reject: VERB from CLIENT: REPLY; from=<> to=<> proto=
 * helo=<>". about is the address the reply is about (it goes before the
 * reply text, as Postfix does): the recipient when is_rcpt, else the
 * would-be sender. */
static void log_reject(struct smtp_session *s, int id, const struct mail_addr *about, bool is_rcpt,
		       const char *detail)
{
	struct buf reply = BUF_INIT;
	struct buf tail = BUF_INIT;
	const struct mail_addr *from = about != NULL && !is_rcpt ? about : s->has_mail ? &s->sender : NULL;

	format_reply(&reply, id, ' ', about != NULL ? pool_printf(s->cmd_pool, "%s:", log_addr(s, about)) : NULL,
		     NULL);
	if (detail != NULL)
		buf_printf(&reply, " (%s)", detail);
	if (from != NULL)
		buf_printf(&tail, " from=%s", log_addr(s, from));
	if (about != NULL && is_rcpt)
		buf_printf(&tail, " to=%s", log_addr(s, about));
	buf_printf(&tail, " proto=%s", proto_name(s));
	if (s->helo_mode != HELO_NONE)
		buf_printf(&tail, " helo=%s", log_helo(s));
	log_event(s, "%s%sreject: %s from %s: %s;%s", s->queue_id != NULL ? s->queue_id : "",
		  s->queue_id != NULL ? ": " : "", s->verb_log, s->client_log, buf_cstr(&reply), buf_cstr(&tail));
	buf_free(&reply);
	buf_free(&tail);
}

static void log_disconnect(struct smtp_session *s)
{
	struct buf line = BUF_INIT;
	unsigned total = 0, ok = 0;

	if (s->logged_disconnect)
		return;
	s->logged_disconnect = true;
	buf_printf(&line, "disconnect from %s", s->client_log);
	for (size_t i = 0; i <= N_COMMANDS; i++) {
		const char *name = i < N_COMMANDS ? commands[i].name : "unknown";

		if (s->stat_total[i] == 0)
			continue;
		buf_append_byte(&line, ' ');
		for (const char *p = name; *p; p++)
			buf_append_byte(&line, (uint8_t)(*p >= 'A' && *p <= 'Z' ? *p | 0x20 : *p));
		buf_printf(&line, "=%u", s->stat_ok[i]);
		if (s->stat_ok[i] != s->stat_total[i])
			buf_printf(&line, "/%u", s->stat_total[i]);
		total += s->stat_total[i];
		ok += s->stat_ok[i];
	}
	buf_printf(&line, " commands=%u", ok);
	if (ok != total)
		buf_printf(&line, "/%u", total);
	log_event(s, "%s", buf_cstr(&line));
	buf_free(&line);
}

/* ---- errors, closing ---------------------------------------------- */

static void count_error(struct smtp_session *s)
{
	s->errors++;
	if (s->state != S_CLOSED && s->config.max_errors > 0 && s->errors >= s->config.max_errors) {
		log_event(s, "too many errors after %s from %s", s->verb_log, s->client_log);
		send_reply(s, R_TOO_MANY_ERRORS, NULL, NULL);
	}
}

/* reply_error - refuse a command for a client mistake: the reply, a log
 * line, and one more error. */
static void reply_error(struct smtp_session *s, int id, const char *detail)
{
	send_reply(s, id, NULL, NULL);
	log_reject(s, id, NULL, false, detail);
	count_error(s);
}

/* trans_reset - end the transaction; an open content file is discarded. */
static void trans_reset(struct smtp_session *s)
{
	if (s->data_opened) {
		s->data_opened = false;
		cb_data_close(s, false);
	}
	s->has_mail = false;
	memset(&s->sender, 0, sizeof s->sender);
	memset(&s->mail_params, 0, sizeof s->mail_params);
	s->mail_params.size = -1;
	s->nrcpt = 0;
	s->rcpt_attempts = 0;
	s->data_kind = D_NONE;
	s->queue_id = NULL;
	s->written = 0;
	s->too_big = false;
	s->write_failed = false;
	s->write_errno = 0;
	pool_clear(s->trans_pool);
}

/* session_close - the end: discard any open message, log, close. The
 * input buffer is left alone (a loop up the stack may be reading it). */
static void session_close(struct smtp_session *s)
{
	if (s->state == S_CLOSED)
		return;
	trans_reset(s);
	auth_abandon(s);
	log_disconnect(s);
	s->state = S_CLOSED;
	if (!s->dead)
		s->cb.close(s->ctx);
}

/* ---- message content ---------------------------------------------- */

/* content_write - to the content file, unless it failed or the message
 * is already too big (the rest is only counted). */
static void content_write(struct smtp_session *s, const void *data, size_t len)
{
	if (!s->data_opened || s->write_failed || s->too_big || s->dead)
		return;
	if (s->cb.data_write(s->ctx, data, len) < 0) {
		s->write_failed = true;
		s->write_errno = errno;
	}
}

/* scanner_output - the scanner's output function. */
static void scanner_output(void *ctx, const void *data, size_t len)
{
	struct smtp_session *s = ctx;
	long long max = s->config.max_message_size;

	if (max > 0 && s->written + len > (unsigned long long)max) {
		s->too_big = true;
		return;
	}
	s->written += len;
	content_write(s, data, len);
}

/* header_text - a client- or DNS-supplied name made safe for a header:
 * printable ASCII only, and none of the characters that structure a
 * Received header ("()[];\"), each replaced by '?'; cut to fit. */
static void header_text(char *out, size_t size, const char *in)
{
	size_t o = 0;

	if (in == NULL || *in == '\0')
		in = "unknown";
	for (; *in != '\0' && o + 1 < size; in++) {
		unsigned char c = (unsigned char)*in;

		out[o++] = c > 32 && c < 127 && strchr("()[];\\", c) == NULL ? (char)c : '?';
	}
	out[o] = '\0';
}

/* rfc5322_date - "Mon, 2 Jan 2006 15:04:05 +0100", in local time, with
 * English names whatever the locale. */
static void rfc5322_date(char *out, size_t size, time_t t)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	long off;
	char sign = '+';

	if (localtime_r(&t, &tm) == NULL) {
		snprintf(out, size, "Thu, 1 Jan 1970 00:00:00 +0000");
		return;
	}
	off = tm.tm_gmtoff / 60;
	if (off < 0) {
		sign = '-';
		off = -off;
	}
	snprintf(out, size, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday % 7], tm.tm_mday,
		 months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, sign,
		 (off / 60) % 100, off % 60);
}

/* write_received - our Received header, first in the content. */
static void write_received(struct smtp_session *s)
{
	struct buf h = BUF_INIT;
	char helo[256], name[256], addr[128], date[64];
	bool v6;

	header_text(helo, sizeof helo, buf_cstr(&s->helo));
	header_text(name, sizeof name, s->client_name);
	header_text(addr, sizeof addr, s->client_addr);
	v6 = strchr(s->client_addr, ':') != NULL && strncasecmp(s->client_addr, "IPv6:", 5) != 0;
	rfc5322_date(date, sizeof date, time(NULL));
	buf_printf(&h, "Received: from %s (%s [%s%s])\r\n", helo, name, v6 ? "IPv6:" : "", addr);
	if (s->tls_desc != NULL)
		buf_printf(&h, "\t(using %s)\r\n", s->tls_desc);
	if (s->auth_user != NULL) {
		char user[256];

		header_text(user, sizeof user, s->auth_user);
		buf_printf(&h, "\t(Authenticated sender: %s)\r\n", user);
	}
	buf_printf(&h, "\tby %s (Yubin) with %s", s->config.hostname, proto_name(s));
	if (s->queue_id != NULL && s->queue_id[0] != '\0')
		buf_printf(&h, " id %s", s->queue_id);
	if (s->nrcpt == 1)
		buf_printf(&h, "\r\n\tfor <%s>; %s\r\n", addr_format(s->cmd_pool, &s->rcpts[0].addr), date);
	else
		buf_printf(&h, ";\r\n\t%s\r\n", date);
	content_write(s, h.data, h.len);
	buf_free(&h);
}

/* refusal - why the message (so far) must be refused, or 0. */
static int refusal(struct smtp_session *s)
{
	long long max = s->config.max_message_size;

	if (s->too_big || (max > 0 && smtp_data_size(s->scanner) > (unsigned long long)max))
		return R_TOO_BIG;
	if (s->config.max_received > 0 && smtp_data_received(s->scanner) > (unsigned)s->config.max_received)
		return R_LOOP;
	if (s->data_kind == D_DATA && (smtp_data_bare_lf(s->scanner) || smtp_data_bare_cr(s->scanner)))
		return R_BARE_LF;
	if (s->write_failed) {
#ifdef EDQUOT
		if (s->write_errno == EDQUOT)
			return R_NO_SPACE;
#endif
		return s->write_errno == ENOSPC ? R_NO_SPACE : R_QUEUE_ERROR;
	}
	return 0;
}

/* refuse_message - discard the message and say why. */
static void refuse_message(struct smtp_session *s, int id)
{
	log_reject(s, id, NULL, false, NULL);
	trans_reset(s);
	send_reply(s, id, NULL, NULL);
}

/* end_message - all content is in: refuse it or hand it over. */
static void end_message(struct smtp_session *s)
{
	int id = refusal(s);

	if (id != 0) {
		refuse_message(s, id);
		return;
	}
	s->wait = W_DATA_DONE;
	s->data_opened = false;
	cb_data_close(s, true);
}

/* start_chunk - read a BDAT chunk of size octets. */
static void start_chunk(struct smtp_session *s, unsigned long long size, bool last, bool discard, int reply,
			bool is_error)
{
	s->chunk_size = s->chunk_left = size;
	s->chunk_last = last;
	s->chunk_discard = discard;
	s->chunk_reply = reply;
	s->chunk_is_error = is_error;
	enter_state(s, S_BDAT);
}

/* chunk_end - a BDAT chunk has been read. */
static void chunk_end(struct smtp_session *s)
{
	char count[32];
	int id;

	enter_state(s, S_CMD);
	if (s->chunk_discard) {
		if (s->chunk_is_error) {
			reply_error(s, s->chunk_reply, NULL);
		} else {
			send_reply(s, s->chunk_reply, NULL, NULL);
			log_reject(s, s->chunk_reply, NULL, false, NULL);
		}
		return;
	}
	if (s->chunk_last) {
		smtp_data_finish(s->scanner);
		end_message(s);
		return;
	}
	if ((id = refusal(s)) != 0) {
		refuse_message(s, id);
		return;
	}
	snprintf(count, sizeof count, "%llu", s->chunk_size);
	send_reply(s, R_BDAT_OK, count, NULL);
}

/* ---- the loop ----------------------------------------------------- */

/* data_step - DATA content; true when the end was reached. */
static bool data_step(struct smtp_session *s)
{
	size_t n;

	if (inbuf_len(&s->in) == 0)
		return false;
	n = smtp_data_feed(s->scanner, inbuf_data(&s->in), inbuf_len(&s->in));
	inbuf_skip(&s->in, n);
	if (s->state != S_DATA || !smtp_data_ended(s->scanner))
		return s->state != S_DATA;
	enter_state(s, S_CMD);
	end_message(s);
	return true;
}

/* bdat_step - BDAT chunk octets; true when the chunk is complete. */
static bool bdat_step(struct smtp_session *s)
{
	if (s->chunk_left > 0) {
		size_t take = inbuf_len(&s->in);

		if (take == 0)
			return false;
		if (take > s->chunk_left)
			take = (size_t)s->chunk_left;
		if (!s->chunk_discard)
			smtp_data_feed(s->scanner, inbuf_data(&s->in), take);
		inbuf_skip(&s->in, take);
		s->chunk_left -= take;
		if (s->state != S_BDAT)
			return true;
		if (s->chunk_left > 0)
			return false;
	}
	chunk_end(s);
	return true;
}

static const struct smtp_command *find_command(const struct smtp_cmd *cmd)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (smtp_cmd_verb_is(cmd, commands[i].name))
			return &commands[i];
	return NULL;
}

/* only_blanks - whether s[0..len) holds nothing but spaces and tabs. */
static bool only_blanks(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != ' ' && p[i] != '\t')
			return false;
	return true;
}

/* handle_line - one command line, without its line end. */
static void handle_line(struct smtp_session *s, const char *line, size_t len)
{
	const struct smtp_command *c;
	struct smtp_cmd cmd;
	size_t max;

	pool_clear(s->cmd_pool);
	smtp_cmd_split(line, len, &cmd);
	c = find_command(&cmd);
	s->cur_cmd = c != NULL ? (size_t)(c - commands) : CMD_UNKNOWN;
	s->stat_total[s->cur_cmd]++;
	if (c != NULL)
		snprintf(s->verb_log, sizeof s->verb_log, "%s", c->name);
	else
		sanitize(s->verb_log, sizeof s->verb_log, cmd.verb, cmd.verb_len);
	max = c != NULL && c->line_max > 0 ? c->line_max : LINE_MAX_DEFAULT;
	if (len + 2 > max) {
		reply_error(s, R_LINE_TOO_LONG, NULL);
		return;
	}
	if (memchr(line, '\0', len) != NULL || memchr(line, '\r', len) != NULL) {
		reply_error(s, R_BAD_CHAR, NULL);
		return;
	}
	if (c == NULL) {
		reply_error(s, R_UNKNOWN_COMMAND, NULL);
		return;
	}
	if ((c->flags & CMD_NEED_HELO) && s->helo_mode == HELO_NONE) {
		reply_error(s, R_NEED_HELO, NULL);
		return;
	}
	if ((c->flags & CMD_NO_ARGS) && !only_blanks(cmd.args, cmd.args_len)) {
		reply_error(s, R_SYNTAX, "no argument allowed");
		return;
	}
	if ((c->flags & CMD_JUNK) && ++s->junk > JUNK_LIMIT) {
		/* Answer as usual, but a client that only talks junk
		 * reaches the error limit. */
		c->handler(s, cmd.args, cmd.args_len);
		log_event(s, "too many junk commands from %s", s->client_log);
		count_error(s);
		return;
	}
	c->handler(s, cmd.args, cmd.args_len);
}

/* command_step - one command line if a whole one is there. */
static bool command_step(struct smtp_session *s)
{
	const uint8_t *data = inbuf_data(&s->in), *lf;
	size_t len = inbuf_len(&s->in), total, text;

	lf = len > 0 ? memchr(data, '\n', len) : NULL;
	if (s->discard_line) {
		if (lf == NULL) {
			inbuf_skip(&s->in, len);
			return false;
		}
		inbuf_skip(&s->in, (size_t)(lf - data) + 1);
		s->discard_line = false;
		return true;
	}
	if (lf == NULL) {
		if (len < LINE_MAX_ANY)
			return false;
		/* No line end in sight, and no command may be this long:
		 * answer now and skip to the next line end. */
		inbuf_skip(&s->in, len);
		s->discard_line = true;
		s->cur_cmd = CMD_UNKNOWN;
		s->stat_total[CMD_UNKNOWN]++;
		snprintf(s->verb_log, sizeof s->verb_log, "%s", "UNKNOWN");
		reply_error(s, R_LINE_TOO_LONG, NULL);
		return true;
	}
	total = (size_t)(lf - data) + 1;
	text = total - 1;
	if (text > 0 && data[text - 1] == '\r')
		text--;
	/* A bare LF ends a command line too (a common client bug, harmless
	 * outside DATA). The line is copied: handlers may call back, and
	 * input given then must not move it. */
	buf_reset(&s->line);
	buf_append(&s->line, data, text);
	inbuf_skip(&s->in, total);
	handle_line(s, (const char *)s->line.data, s->line.len);
	return true;
}

static bool auth_line_step(struct smtp_session *s);

/* process - run everything that can run now. */
static void process(struct smtp_session *s)
{
	if (s->processing)
		return;
	s->processing = true;
	while (runnable(s)) {
		bool progress;

		inbuf_merge_later(&s->in);
		if (s->state == S_DATA)
			progress = data_step(s);
		else if (s->state == S_BDAT)
			progress = bdat_step(s);
		else if (s->state == S_AUTH)
			progress = auth_line_step(s);
		else
			progress = command_step(s);
		if (!progress && s->in.later.len == 0)
			break;
	}
	s->processing = false;
	if (s->dead)
		return;
	inbuf_tidy(&s->in);
	if (s->state != S_CLOSED && inbuf_held(&s->in) > SMTP_INPUT_MAX) {
		log_event(s, "too much pipelined input from %s", s->client_log);
		send_reply(s, R_INPUT_OVERFLOW, NULL, NULL);
	}
	flow_update(s);
}

/* ---- commands ----------------------------------------------------- */

/* helo_arg - the EHLO/HELO argument without surrounding blanks; NULL if
 * empty or holding control characters. */
static const char *helo_arg(const char *args, size_t *len)
{
	while (*len > 0 && (args[0] == ' ' || args[0] == '\t')) {
		args++;
		(*len)--;
	}
	while (*len > 0 && (args[*len - 1] == ' ' || args[*len - 1] == '\t'))
		(*len)--;
	if (*len == 0)
		return NULL;
	for (size_t i = 0; i < *len; i++)
		if ((unsigned char)args[i] < 32 || args[i] == 127)
			return NULL;
	return args;
}

static void set_helo(struct smtp_session *s, const char *arg, size_t len, enum helo_mode mode)
{
	trans_reset(s);
	buf_reset(&s->helo);
	buf_append(&s->helo, arg, len);
	s->helo_mode = mode;
}

static bool starttls_offered(const struct smtp_session *s)
{
	return s->config.starttls && s->cb.starttls != NULL && !s->tls;
}

static void cmd_ehlo(struct smtp_session *s, const char *args, size_t len)
{
	const char *arg = helo_arg(args, &len);
	struct buf out = BUF_INIT;

	if (arg == NULL) {
		reply_error(s, R_SYNTAX, "EHLO needs a domain");
		return;
	}
	set_helo(s, arg, len, HELO_EHLO);
	format_reply(&out, R_HELO, '-', s->config.hostname, NULL);
	buf_append(&out, "\r\n", 2);
	for (size_t i = 0; i < sizeof capabilities / sizeof capabilities[0]; i++) {
		bool last = i + 1 == sizeof capabilities / sizeof capabilities[0];

		if ((capabilities[i].kind == CAP_UTF8 && !s->config.smtputf8) ||
		    (capabilities[i].kind == CAP_STARTTLS && !starttls_offered(s)) ||
		    (capabilities[i].kind == CAP_AUTH && s->auth_mechs == NULL))
			continue;
		buf_printf(&out, "250%c%s", last ? ' ' : '-', capabilities[i].keyword);
		if (capabilities[i].kind == CAP_SIZE && s->config.max_message_size > 0)
			buf_printf(&out, " %lld", s->config.max_message_size);
		if (capabilities[i].kind == CAP_AUTH)
			buf_printf(&out, " %s", s->auth_mechs);
		buf_append(&out, "\r\n", 2);
	}
	cb_write(s, out.data, out.len);
	buf_free(&out);
	s->stat_ok[s->cur_cmd]++;
}

static void cmd_helo(struct smtp_session *s, const char *args, size_t len)
{
	const char *arg = helo_arg(args, &len);

	if (arg == NULL) {
		reply_error(s, R_SYNTAX, "HELO needs a domain");
		return;
	}
	set_helo(s, arg, len, HELO_HELO);
	send_reply(s, R_HELO, s->config.hostname, NULL);
}

static void cmd_mail(struct smtp_session *s, const char *args, size_t len)
{
	unsigned flags = (s->helo_mode == HELO_EHLO ? SMTP_CMD_ESMTP : 0) |
			 (s->config.smtputf8 ? SMTP_CMD_UTF8_OFFERED : 0);
	const char *error = NULL;
	int rc;

	if (s->config.auth_required && s->auth_user == NULL) {
		reply_error(s, R_AUTH_REQUIRED, NULL);
		return;
	}
	if (s->has_mail) {
		reply_error(s, R_NESTED_MAIL, NULL);
		return;
	}
	rc = smtp_cmd_parse_mail(args, len, flags, s->cmd_pool, &s->pend_addr, &s->pend_mail, &error);
	if (rc != 0) {
		reply_error(s, rc, error);
		return;
	}
	if (s->config.max_message_size > 0 && s->pend_mail.size > s->config.max_message_size) {
		/* Not the client's mistake: no error counted. */
		send_reply(s, R_TOO_BIG, NULL, NULL);
		log_reject(s, R_TOO_BIG, &s->pend_addr, false, "declared SIZE");
		return;
	}
	s->wait = W_MAIL;
	if (!s->dead)
		s->cb.mail(s->ctx, &s->pend_addr, &s->pend_mail);
}

static void cmd_rcpt(struct smtp_session *s, const char *args, size_t len)
{
	unsigned flags = (s->helo_mode == HELO_EHLO ? SMTP_CMD_ESMTP : 0) |
			 (s->has_mail && s->mail_params.smtputf8 ? SMTP_CMD_UTF8 : 0);
	const char *error = NULL;
	int rc;

	if (!s->has_mail) {
		reply_error(s, R_NEED_MAIL, NULL);
		return;
	}
	if (s->data_kind != D_NONE) {
		/* RCPT between BDAT chunks (RFC 3030 3). */
		reply_error(s, R_BAD_SEQUENCE, "RCPT after BDAT");
		return;
	}
	s->rcpt_attempts++;
	rc = smtp_cmd_parse_rcpt(args, len, flags, s->cmd_pool, &s->pend_addr, &s->pend_rcpt, &error);
	if (rc != 0) {
		reply_error(s, rc, error);
		return;
	}
	if (s->config.max_recipients > 0 && s->nrcpt >= (size_t)s->config.max_recipients) {
		/* RFC 5321 4.5.3.1.10: the client sends the rest later. */
		send_reply(s, R_TOO_MANY_RCPTS, NULL, NULL);
		log_reject(s, R_TOO_MANY_RCPTS, &s->pend_addr, true, NULL);
		return;
	}
	s->wait = W_RCPT;
	if (!s->dead)
		s->cb.rcpt(s->ctx, &s->pend_addr, &s->pend_rcpt);
}

/* no_transaction - why DATA/BDAT cannot start now, or 0. */
static int no_transaction(const struct smtp_session *s)
{
	if (s->helo_mode == HELO_NONE)
		return R_NEED_HELO;
	if (!s->has_mail)
		return R_NEED_MAIL;
	if (s->nrcpt == 0)
		return s->rcpt_attempts > 0 ? R_NEED_RCPT : R_NEED_RCPT_CMD;
	return 0;
}

static void cmd_data(struct smtp_session *s, const char *args, size_t len)
{
	int id = no_transaction(s);

	(void)args;
	(void)len;
	if (id == R_NEED_RCPT) {
		/* With PIPELINING the client sent DATA before it saw its
		 * RCPTs refused (RFC 2920 3.1): not its mistake. */
		send_reply(s, id, NULL, NULL);
		log_reject(s, id, NULL, false, NULL);
		return;
	}
	if (id != 0) {
		reply_error(s, id, NULL);
		return;
	}
	if (s->data_kind == D_BDAT) {
		reply_error(s, R_BAD_SEQUENCE, "DATA after BDAT");
		return;
	}
	s->data_kind = D_DATA;
	s->wait = W_DATA_OPEN;
	if (!s->dead)
		s->cb.data_open(s->ctx);
}

static void cmd_bdat(struct smtp_session *s, const char *args, size_t len)
{
	unsigned long long size;
	const char *error = NULL;
	bool last;
	int id;

	if ((id = smtp_cmd_parse_bdat(args, len, &size, &last, &error)) != 0) {
		/* We cannot know how much to skip; what follows will be
		 * taken as commands, and the error limit ends that. */
		reply_error(s, id, error);
		return;
	}
	if ((id = no_transaction(s)) != 0) {
		/* Read and drop the chunk, then answer (RFC 3030 2). */
		start_chunk(s, size, last, true, id, id != R_NEED_RCPT);
		return;
	}
	if (s->data_kind == D_NONE) {
		s->data_kind = D_BDAT;
		s->chunk_size = size;
		s->chunk_last = last;
		s->wait = W_DATA_OPEN;
		if (!s->dead)
			s->cb.data_open(s->ctx);
		return;
	}
	start_chunk(s, size, last, false, 0, false);
}

static void cmd_rset(struct smtp_session *s, const char *args, size_t len)
{
	(void)args;
	(void)len;
	trans_reset(s);
	send_reply(s, R_OK, NULL, NULL);
}

static void cmd_noop(struct smtp_session *s, const char *args, size_t len)
{
	(void)args;
	(void)len;
	send_reply(s, R_OK, NULL, NULL);
}

static void cmd_quit(struct smtp_session *s, const char *args, size_t len)
{
	(void)args;
	(void)len;
	send_reply(s, R_BYE, NULL, NULL);
	session_close(s);
}

static void cmd_help(struct smtp_session *s, const char *args, size_t len)
{
	(void)args;
	(void)len;
	send_reply(s, R_HELP, NULL, NULL);
}

static void cmd_vrfy(struct smtp_session *s, const char *args, size_t len)
{
	if (only_blanks(args, len)) {
		reply_error(s, R_SYNTAX, "VRFY needs an argument");
		return;
	}
	/* RFC 5321 3.5.3: 252 tells nothing about the user. */
	send_reply(s, R_VRFY, NULL, NULL);
}

static void cmd_starttls(struct smtp_session *s, const char *args, size_t len)
{
	size_t dropped;

	(void)args;
	(void)len;
	if (s->tls) {
		reply_error(s, R_TLS_ACTIVE, NULL);
		return;
	}
	if (!starttls_offered(s)) {
		send_reply(s, R_NOT_IMPLEMENTED, NULL, NULL);
		return;
	}
	/* What the client sent after STARTTLS, before the handshake, came
	 * in clear and could have been injected by anyone on the path
	 * (CVE-2011-0411): it must never be taken as sent over TLS. */
	dropped = inbuf_discard(&s->in);
	if (dropped > 0)
		log_event(s, "discarded %zu octets sent after STARTTLS by %s", dropped, s->client_log);
	trans_reset(s);
	send_reply(s, R_TLS_GO, NULL, NULL);
	enter_state(s, S_TLS);
	if (!s->dead && s->state == S_TLS)
		s->cb.starttls(s->ctx);
}

/* mech_offered - whether mech (upper case) is a word of the offer. */
static bool mech_offered(const struct smtp_session *s, const char *mech)
{
	size_t n = strlen(mech);

	for (const char *p = s->auth_mechs; p != NULL && *p != '\0';) {
		const char *end = strchr(p, ' ');
		size_t w = end != NULL ? (size_t)(end - p) : strlen(p);

		if (w == n && memcmp(p, mech, n) == 0)
			return true;
		p = end != NULL ? end + 1 : p + w;
	}
	return false;
}

/* decode_response - an AUTH response line (or initial response) into out:
 * "=" is the empty response (RFC 4954 4). */
static int decode_response(const char *text, size_t len, struct buf *out)
{
	buf_reset(out);
	if (len == 1 && text[0] == '=')
		return 0;
	return base64_decode(out, text, len);
}

static void cmd_auth(struct smtp_session *s, const char *args, size_t len)
{
	char mech[MECH_NAME_MAX + 1];
	size_t i = 0, m = 0;
	struct buf resp = BUF_INIT;
	bool has_resp;

	if (s->auth_user != NULL) {
		reply_error(s, R_AUTH_ALREADY, NULL);
		return;
	}
	if (s->auth_mechs == NULL || s->helo_mode != HELO_EHLO || s->cb.auth_start == NULL) {
		/* Not offered here. Where TLS would make it so, say that. */
		reply_error(s, starttls_offered(s) ? R_TLS_FIRST : R_AUTH_NOT_ENABLED, NULL);
		return;
	}
	if (s->has_mail) {
		reply_error(s, R_AUTH_IN_MAIL, NULL);
		return;
	}
	while (i < len && args[i] == ' ')
		i++;
	for (; i < len && args[i] != ' '; i++) {
		char c = args[i];

		if (m == MECH_NAME_MAX || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
					     (c >= '0' && c <= '9') || c == '-' || c == '_')) {
			m = 0;
			break;
		}
		mech[m++] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
	}
	mech[m] = '\0';
	if (m == 0) {
		reply_error(s, R_SYNTAX, "AUTH needs a mechanism");
		return;
	}
	if (!mech_offered(s, mech)) {
		reply_error(s, R_AUTH_BAD_MECH, NULL);
		return;
	}
	while (i < len && args[i] == ' ')
		i++;
	while (len > i && args[len - 1] == ' ')
		len--;
	has_resp = i < len;
	if (has_resp && decode_response(args + i, len - i, &resp) < 0) {
		buf_free(&resp);
		reply_error(s, R_AUTH_BAD_BASE64, NULL);
		return;
	}
	s->auth_mech = pool_strdup(s->pool, mech);
	s->auth_exchange = true;
	s->wait = W_AUTH;
	if (!s->dead)
		s->cb.auth_start(s->ctx, mech, resp.data != NULL ? resp.data : (const uint8_t *)"", resp.len,
				 has_resp);
	buf_free(&resp);
}

/* auth_line_step - the client's response to a challenge, if a whole
 * line is there. */
static bool auth_line_step(struct smtp_session *s)
{
	const uint8_t *data = inbuf_data(&s->in), *lf;
	size_t len = inbuf_len(&s->in), text;
	struct buf resp = BUF_INIT;

	lf = len > 0 ? memchr(data, '\n', len) : NULL;
	if (lf == NULL ? len >= LINE_MAX_AUTH : (size_t)(lf - data) + 1 > LINE_MAX_AUTH) {
		/* RFC 4954 4: 500 5.5.6 for an overlong line, whether or not
		 * its end came with it; the exchange is over, the rest of the
		 * line is skipped. */
		inbuf_skip(&s->in, lf == NULL ? len : (size_t)(lf - data) + 1);
		s->discard_line = lf == NULL;
		enter_state(s, S_CMD);
		auth_abandon(s);
		reply_error(s, R_LINE_TOO_LONG, "AUTH response");
		return true;
	}
	if (lf == NULL)
		return false;
	text = (size_t)(lf - data);
	if (text > 0 && data[text - 1] == '\r')
		text--;
	buf_reset(&s->line);
	buf_append(&s->line, data, text);
	inbuf_skip(&s->in, (size_t)(lf - data) + 1);
	enter_state(s, S_CMD);
	if (s->line.len == 1 && s->line.data[0] == '*') {
		auth_abandon(s);
		send_reply(s, R_AUTH_CANCELLED, NULL, NULL);
		log_reject(s, R_AUTH_CANCELLED, NULL, false, NULL);
		return true;
	}
	if (decode_response((const char *)s->line.data, s->line.len, &resp) < 0) {
		auth_abandon(s);
		reply_error(s, R_AUTH_BAD_BASE64, NULL);
		buf_free(&resp);
		return true;
	}
	s->wait = W_AUTH;
	if (!s->dead)
		s->cb.auth_step(s->ctx, resp.data != NULL ? resp.data : (const uint8_t *)"", resp.len);
	buf_free(&resp);
	return true;
}

static void cmd_not_implemented(struct smtp_session *s, const char *args, size_t len)
{
	(void)args;
	(void)len;
	/* Not an error: clients probe for these and go on without. */
	send_reply(s, R_NOT_IMPLEMENTED, NULL, NULL);
}

/* ---- public API --------------------------------------------------- */

struct smtp_session *smtp_session_new(const struct smtp_server_config *config,
				      const struct smtp_server_callbacks *cb, void *ctx, const char *client_addr,
				      const char *client_name)
{
	struct smtp_session *s = xnew(struct smtp_session);
	char name[SANITIZE_MAX], addr[SANITIZE_MAX];

	if (cb->write == NULL || cb->close == NULL || cb->mail == NULL || cb->rcpt == NULL ||
	    cb->data_open == NULL || cb->data_write == NULL || cb->data_close == NULL)
		log_panic("smtp_session_new: a required callback is missing");
	s->pool = pool_create();
	s->trans_pool = pool_create();
	s->cmd_pool = pool_create();
	s->config = *config;
	s->config.hostname = pool_strdup(s->pool, config->hostname != NULL ? config->hostname : "localhost");
	s->cb = *cb;
	s->ctx = ctx;
	s->client_addr = pool_strdup(s->pool, client_addr != NULL ? client_addr : "");
	s->client_name = pool_strdup(s->pool, client_name != NULL && *client_name ? client_name : "unknown");
	sanitize(name, sizeof name, s->client_name, strlen(s->client_name));
	sanitize(addr, sizeof addr, s->client_addr, strlen(s->client_addr));
	s->client_log = pool_printf(s->pool, "%s[%s]", name, addr);
	s->scanner = smtp_data_create(scanner_output, s);
	s->state = S_NEW;
	s->cur_cmd = CMD_NONE;
	snprintf(s->verb_log, sizeof s->verb_log, "%s", "CONNECT");
	s->mail_params.size = -1;
	return s;
}

void smtp_session_start(struct smtp_session *s)
{
	if (s->state == S_CLOSED || s->dead)
		return; /* shut down before it started: the 421 was sent */
	if (s->state != S_NEW)
		log_panic("smtp_session_start: session already started");
	enter(s);
	enter_state(s, S_CMD);
	log_event(s, "connect from %s", s->client_log);
	send_reply(s, R_GREETING, s->config.hostname, NULL);
	process(s);
	leave(s);
}

void smtp_session_input(struct smtp_session *s, const void *data, size_t len)
{
	if (s->state == S_CLOSED || s->dead || len == 0)
		return;
	if (s->state == S_TLS) {
		/* Sent in clear after STARTTLS, before the handshake. */
		log_event(s, "discarded %zu octets sent after STARTTLS by %s", len, s->client_log);
		return;
	}
	if (s->depth > 0) {
		/* From inside a callback: later, between steps. */
		inbuf_add(&s->in, data, len, true);
		return;
	}
	enter(s);
	inbuf_add(&s->in, data, len, false);
	process(s);
	leave(s);
}

/* close_with - an unsolicited 421 (timeout, shutdown). */
static void close_with(struct smtp_session *s, int id, const char *why)
{
	if (s->state == S_CLOSED || s->dead)
		return;
	enter(s);
	log_event(s, "%s after %s from %s", why, s->state == S_DATA || s->state == S_BDAT ? "END-OF-MESSAGE" : s->verb_log,
		  s->client_log);
	s->cur_cmd = CMD_NONE;
	send_reply(s, id, NULL, NULL);
	leave(s);
}

void smtp_session_timeout(struct smtp_session *s)
{
	close_with(s, R_IDLE_TIMEOUT, "timeout");
}

void smtp_session_shutdown(struct smtp_session *s)
{
	close_with(s, R_SHUTDOWN, "shutdown");
}

/* answer_ok - whether an answer id means success. */
static bool answer_ok(int id)
{
	int code = reply_code(id);

	return code >= 200 && code < 300;
}

/* check_answer - common to every *_done, called before enter(): false
 * if the session is over (the answer is ignored); a panic if nobody
 * asked. */
static bool check_answer(struct smtp_session *s, enum wait want, const char *what)
{
	if (s->dead || s->state == S_CLOSED)
		return false;
	if (s->wait != want)
		log_panic("%s: no such request pending", what);
	s->wait = W_NONE;
	return true;
}

static void copy_addr(struct pool *pool, struct mail_addr *dst, const struct mail_addr *src)
{
	*dst = *src;
	dst->local = pool_strdup(pool, src->local);
	dst->domain = pool_strdup(pool, src->domain);
}

void smtp_session_mail_done(struct smtp_session *s, int reply_id)
{
	int id = reply_id != 0 ? reply_id : R_SENDER_OK;
	bool ok = answer_ok(id); /* a bad id panics here, before enter() */

	if (check_answer(s, W_MAIL, "smtp_session_mail_done")) {
		enter(s);
		if (ok) {
			copy_addr(s->trans_pool, &s->sender, &s->pend_addr);
			s->mail_params = s->pend_mail;
			if (s->pend_mail.envid != NULL)
				s->mail_params.envid = pool_strdup(s->trans_pool, s->pend_mail.envid);
			s->has_mail = true;
			send_reply(s, id, NULL, NULL);
		} else {
			log_reject(s, id, &s->pend_addr, false, NULL);
			send_reply(s, id, NULL, NULL);
		}
		process(s);
		leave(s);
	}
}

void smtp_session_rcpt_done(struct smtp_session *s, int reply_id)
{
	int id = reply_id != 0 ? reply_id : R_RCPT_OK;
	bool ok = answer_ok(id); /* a bad id panics here, before enter() */

	if (check_answer(s, W_RCPT, "smtp_session_rcpt_done")) {
		enter(s);
		if (ok) {
			struct rcpt *r;

			if (s->nrcpt == s->rcpt_cap) {
				s->rcpt_cap = s->rcpt_cap == 0 ? 8 : size_mul(s->rcpt_cap, 2);
				s->rcpts = xreallocarray(s->rcpts, s->rcpt_cap, sizeof *s->rcpts);
			}
			r = &s->rcpts[s->nrcpt++];
			copy_addr(s->trans_pool, &r->addr, &s->pend_addr);
			r->params = s->pend_rcpt;
			if (s->pend_rcpt.orcpt != NULL)
				r->params.orcpt = pool_strdup(s->trans_pool, s->pend_rcpt.orcpt);
			send_reply(s, id, NULL, NULL);
		} else {
			log_reject(s, id, &s->pend_addr, true, NULL);
			send_reply(s, id, NULL, NULL);
		}
		process(s);
		leave(s);
	}
}

void smtp_session_data_open_done(struct smtp_session *s, int reply_id, const char *queue_id)
{
	bool ok = reply_id == 0 || reply_code(reply_id) == 354;

	if (s->state == S_CLOSED && !s->dead && s->wait == W_DATA_OPEN) {
		/* Too late: the file the application opened is not wanted. */
		s->wait = W_NONE;
		if (ok) {
			enter(s);
			cb_data_close(s, false);
			leave(s);
		}
		return;
	}
	if (!check_answer(s, W_DATA_OPEN, "smtp_session_data_open_done"))
		return;
	enter(s);
	if (ok) {
		s->data_opened = true;
		s->queue_id = pool_strdup(s->trans_pool, queue_id != NULL ? queue_id : "");
		s->too_big = s->write_failed = false;
		s->written = 0;
		if (s->auth_user != NULL) {
			char user[SANITIZE_MAX];

			sanitize(user, sizeof user, s->auth_user, strlen(s->auth_user));
			log_event(s, "%s: client=%s, sasl_method=%s, sasl_username=%s", s->queue_id, s->client_log,
				  s->auth_mech, user);
		} else {
			log_event(s, "%s: client=%s", s->queue_id, s->client_log);
		}
		if (s->data_kind == D_DATA) {
			smtp_data_begin(s->scanner, SMTP_DATA_DOT);
			enter_state(s, S_DATA);
			send_reply(s, R_DATA_GO, NULL, NULL);
			write_received(s);
		} else {
			smtp_data_begin(s->scanner, SMTP_DATA_RAW);
			start_chunk(s, s->chunk_size, s->chunk_last, false, 0, false);
			write_received(s);
		}
	} else {
		bool bdat = s->data_kind == D_BDAT;

		log_reject(s, reply_id, NULL, false, NULL);
		trans_reset(s);
		if (bdat)
			start_chunk(s, s->chunk_size, s->chunk_last, true, reply_id, false);
		else
			send_reply(s, reply_id, NULL, NULL);
	}
	process(s);
	leave(s);
}

void smtp_session_data_done(struct smtp_session *s, int reply_id, const char *queue_id)
{
	int id = reply_id != 0 ? reply_id : R_QUEUED;
	bool ok = answer_ok(id); /* a bad id panics here, before enter() */

	if (check_answer(s, W_DATA_DONE, "smtp_session_data_done")) {
		const char *qid = queue_id != NULL ? queue_id : s->queue_id != NULL ? s->queue_id : "";

		enter(s);
		if (ok) {
			log_event(s, "%s: from=%s, size=%llu, nrcpt=%zu, proto=%s, helo=%s", qid,
				  log_addr(s, &s->sender), smtp_data_size(s->scanner), s->nrcpt, proto_name(s),
				  log_helo(s));
			s->junk = 0;
			send_reply(s, id, NULL, id == R_QUEUED ? qid : NULL);
		} else {
			log_reject(s, id, NULL, false, NULL);
			send_reply(s, id, NULL, NULL);
		}
		trans_reset(s);
		process(s);
		leave(s);
	}
}

const struct mail_addr *smtp_session_sender(const struct smtp_session *s)
{
	return s->has_mail ? &s->sender : NULL;
}

size_t smtp_session_rcpt_count(const struct smtp_session *s)
{
	return s->nrcpt;
}

const struct mail_addr *smtp_session_rcpt(const struct smtp_session *s, size_t i)
{
	return i < s->nrcpt ? &s->rcpts[i].addr : NULL;
}

const struct smtp_rcpt_params *smtp_session_rcpt_params(const struct smtp_session *s, size_t i)
{
	return i < s->nrcpt ? &s->rcpts[i].params : NULL;
}

const struct smtp_mail_params *smtp_session_mail_params(const struct smtp_session *s)
{
	return s->has_mail ? &s->mail_params : NULL;
}

const char *smtp_session_helo(const struct smtp_session *s)
{
	return s->helo_mode != HELO_NONE ? buf_cstr(&s->helo) : NULL;
}

void smtp_session_set_tls(struct smtp_session *s, bool on, const char *version, const char *cipher, int bits)
{
	s->tls = on;
	s->tls_desc = NULL;
	if (on && version != NULL && cipher != NULL) {
		char v[64], c[128];

		header_text(v, sizeof v, version);
		header_text(c, sizeof c, cipher);
		s->tls_desc = pool_printf(s->pool, "%s with cipher %s (%d/%d bits)", v, c, bits, bits);
	}
}

void smtp_session_tls_started(struct smtp_session *s, const char *version, const char *cipher, int bits)
{
	if (s->dead || s->state == S_CLOSED)
		return;
	if (s->state != S_TLS)
		log_panic("smtp_session_tls_started: no STARTTLS pending");
	enter(s);
	/* RFC 3207 4.2: forget everything learnt before; EHLO again. */
	trans_reset(s);
	buf_reset(&s->helo);
	s->helo_mode = HELO_NONE;
	s->auth_user = NULL;
	smtp_session_set_tls(s, true, version, cipher, bits);
	enter_state(s, S_CMD);
	log_event(s, "TLS established with %s: %s", s->client_log, s->tls_desc != NULL ? s->tls_desc : "?");
	process(s);
	leave(s);
}

void smtp_session_set_auth_mechs(struct smtp_session *s, const char *mechs)
{
	s->auth_mechs = mechs != NULL && mechs[0] != '\0' ? pool_strdup(s->pool, mechs) : NULL;
}

void smtp_session_auth_done(struct smtp_session *s, enum smtp_auth_answer answer, const void *challenge,
			    size_t len, const char *user)
{
	if (!check_answer(s, W_AUTH, "smtp_session_auth_done"))
		return;
	enter(s);
	switch (answer) {
	case SMTP_AUTH_CONTINUE: {
		struct buf b64 = BUF_INIT;

		base64_encode(&b64, challenge, len);
		send_reply(s, R_AUTH_CHALLENGE, NULL, buf_cstr(&b64));
		buf_free(&b64);
		enter_state(s, S_AUTH);
		break;
	}
	case SMTP_AUTH_OK:
		s->auth_exchange = false;
		s->auth_user = pool_strdup(s->pool, user != NULL ? user : "");
		send_reply(s, R_AUTH_OK, NULL, NULL);
		break;
	case SMTP_AUTH_FAIL:
		s->auth_exchange = false;
		reply_error(s, R_AUTH_FAILED, s->auth_mech);
		break;
	case SMTP_AUTH_ENCRYPT:
		s->auth_exchange = false;
		reply_error(s, R_AUTH_ENCRYPT, s->auth_mech);
		break;
	default:
		s->auth_exchange = false;
		send_reply(s, R_AUTH_TEMP, NULL, NULL);
		log_reject(s, R_AUTH_TEMP, NULL, false, s->auth_mech);
		break;
	}
	process(s);
	leave(s);
}

const char *smtp_session_auth_user(const struct smtp_session *s)
{
	return s->auth_user;
}

const char *smtp_session_queue_id(const struct smtp_session *s)
{
	return s->queue_id;
}

bool smtp_session_closed(const struct smtp_session *s)
{
	return s->state == S_CLOSED;
}

void smtp_session_free(struct smtp_session **sp)
{
	struct smtp_session *s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	if (s->dead)
		return;
	/* Held across the callbacks below, which may free again. */
	enter(s);
	if (s->state != S_CLOSED) {
		enum session_state was = s->state;

		/* The client went away (or the application gave up). */
		s->state = S_CLOSED;
		if (was != S_NEW)
			log_event(s, "lost connection after %s from %s",
				  was == S_DATA || was == S_BDAT ? "END-OF-MESSAGE" : s->verb_log, s->client_log);
		trans_reset(s);
		auth_abandon(s);
		if (was != S_NEW)
			log_disconnect(s);
	}
	s->dead = true;
	leave(s);
}
