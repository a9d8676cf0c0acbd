/* pop3_server.c - the POP3 server protocol engine (see pop3_server.h for
 * the API, pop3_server.md for the policy decisions).
 *
 * Shape: bytes go into s->in; process() runs whatever can run: command
 * lines through the command table, SASL responses, and the multi-line
 * response under way (a message, LIST or UIDL), one slice at a time so
 * that output flow control can stop it. A command that needs the
 * application (a login step, the mailbox, the UPDATE) sets s->wait and
 * calls out; nothing else runs until the matching *_done answer
 * arrives, so responses to pipelined commands leave in order.
 *
 * Re-entrancy, as in smtp_server.c: callbacks may call back into the
 * engine. *_done inside a callback records the answer and responds; the
 * loop already running goes on. Input given while any engine call is on
 * the stack (s->depth counts them) waits in s->in.later until the engine
 * is between steps. pop3_session_free inside a callback marks the
 * session dead: no callback is made after that (but the close_message a
 * message is owed), and the memory goes when the outermost engine call
 * returns.
 *
 * Limits are enforced here, at the edge: command line length, SASL line
 * length, errors, buffered input. Message content is the application's
 * file and is not limited: it only passes through, a slice at a time.
 */
#include "config.h"
#include "pop3_server.h"
#include "sasl_mechs.h"
#include "../libutil/base64.h"
#include "../libutil/buf.h"
#include "../libutil/inbuf.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/pool.h"
#include "../libutil/sanitize.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 2449 4: a command line is at most 255 octets with its CRLF. */
#define LINE_MAX_CMD 255
/* RFC 5034 4 asks for room for whatever the mechanisms need, whatever
 * the command line limit; as in SMTP (RFC 4954 4), AUTH lines (with an
 * initial response) and responses to challenges may be 12288 octets. */
#define LINE_MAX_AUTH 12288
/* SASL mechanism names: RFC 4422 3.1, at most 20 characters. */
#define MECH_NAME_MAX 20
/* RFC 1939 7: a unique-id is 1 to 70 octets of 0x21..0x7e. */
#define UIDL_MAX 70
/* A message number has at most this many digits (more is no message). */
#define MSGNUM_DIGITS 10
/* LIST and UIDL go out in slices of about this size. */
#define LISTING_SLICE 8192

/* Every error response, in one place. The ones with a RFC 3206 or RFC
 * 2449 code in brackets are what clients act on. */
#define E_UNKNOWN "-ERR Unknown command"
#define E_TOO_LONG "-ERR Line too long"
#define E_BAD_CHAR "-ERR NUL or bare CR in command line"
#define E_BEFORE_LOGIN "-ERR Command not valid before login"
#define E_AFTER_LOGIN "-ERR Command not valid after login"
#define E_NO_ARGS "-ERR This command takes no argument"
#define E_BAD_MSGNUM "-ERR Invalid message number"
#define E_NO_SUCH "-ERR No such message"
#define E_DELETED "-ERR Message %zu is already deleted"
#define E_TOP_SYNTAX "-ERR TOP needs a message number and a line count"
#define E_UNREADABLE "-ERR [SYS/TEMP] Cannot read message %zu, try again later"
#define E_TOO_MANY_ERRORS "-ERR Too many errors, closing connection"
#define E_OVERFLOW "-ERR Too much pipelined input, closing connection"
#define E_SHUTDOWN "-ERR [SYS/TEMP] Server shutting down, try again later"
#define E_APOP "-ERR APOP is not supported"
#define E_USER_OFF "-ERR USER/PASS login is not enabled"
#define E_USER_SYNTAX "-ERR USER needs a user name"
#define E_NEED_USER "-ERR Send USER first"
#define E_PASS_SYNTAX "-ERR PASS needs a password"
#define E_PLAINTEXT "-ERR Plaintext login requires TLS"
#define E_NO_LOGIN "-ERR Login is not enabled"
#define E_AUTH_MECH "-ERR Unsupported authentication mechanism"
#define E_AUTH_BASE64 "-ERR Invalid base64 data"
#define E_AUTH_CANCELLED "-ERR Authentication cancelled"
#define E_AUTH_FAILED "-ERR [AUTH] Authentication failed"
#define E_AUTH_TEMP "-ERR [SYS/TEMP] Temporary authentication failure, try again later"
#define E_IN_USE "-ERR [IN-USE] Mailbox in use by another session, try again later"
#define E_MAILBOX_TEMP "-ERR [SYS/TEMP] Cannot open the mailbox, try again later"
#define E_MAILBOX_PERM "-ERR [SYS/PERM] Cannot open the mailbox"
#define E_TLS_ACTIVE "-ERR TLS is already active"
#define E_NO_STLS "-ERR STLS is not available"
#define E_UPDATE "-ERR [SYS/TEMP] Some deleted messages were not removed"

enum session_state {
	S_NEW,           /* before pop3_session_start */
	S_AUTHORIZATION, /* reading commands, not logged in */
	S_SASL,          /* reading the response to a "+ " challenge */
	S_TLS,           /* STLS answered, handshake under way: input discarded */
	S_TRANSACTION,   /* logged in, the mailbox open */
	S_UPDATE,        /* QUIT: waiting for update_done */
	S_CLOSED         /* close called: input ignored */
};

enum wait {
	W_NONE,
	W_AUTH,    /* auth or auth_step */
	W_MAILBOX, /* mailbox_open */
};

/* The multi-line response being written. */
enum job { J_NONE, J_LIST, J_UIDL, J_MESSAGE };

struct message {
	long long size;
	const char *uidl; /* session pool */
};

struct pop3_session;
typedef void cmd_handler(struct pop3_session *s, const char *args, size_t len);

#define C_AUTHZ 0x1   /* valid in AUTHORIZATION */
#define C_TRANS 0x2   /* valid in TRANSACTION */
#define C_NO_ARGS 0x4 /* an argument is an error */
#define C_LONG 0x8    /* may be LINE_MAX_AUTH long (AUTH's initial response) */
#define C_RAW 0x10    /* the argument is taken as sent, blanks and all (PASS) */

struct pop3_command {
	const char *name;
	cmd_handler *handler;
	unsigned flags;
};

static cmd_handler cmd_user, cmd_pass, cmd_apop, cmd_auth, cmd_stls, cmd_capa, cmd_quit, cmd_stat, cmd_list,
	cmd_uidl, cmd_retr, cmd_top, cmd_dele, cmd_noop, cmd_rset;

static const struct pop3_command commands[] = {
	{ "USER", cmd_user, C_AUTHZ },
	{ "PASS", cmd_pass, C_AUTHZ | C_RAW },
	{ "APOP", cmd_apop, C_AUTHZ },
	{ "AUTH", cmd_auth, C_AUTHZ | C_LONG },
	{ "STLS", cmd_stls, C_AUTHZ | C_NO_ARGS },
	{ "CAPA", cmd_capa, C_AUTHZ | C_TRANS | C_NO_ARGS },
	{ "QUIT", cmd_quit, C_AUTHZ | C_TRANS | C_NO_ARGS },
	{ "STAT", cmd_stat, C_TRANS | C_NO_ARGS },
	{ "LIST", cmd_list, C_TRANS },
	{ "UIDL", cmd_uidl, C_TRANS },
	{ "RETR", cmd_retr, C_TRANS },
	{ "TOP", cmd_top, C_TRANS },
	{ "DELE", cmd_dele, C_TRANS },
	{ "NOOP", cmd_noop, C_TRANS | C_NO_ARGS },
	{ "RSET", cmd_rset, C_TRANS | C_NO_ARGS },
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

struct pop3_session {
	struct pop3_server_config config;
	struct pop3_server_callbacks cb;
	void *ctx;
	struct pool *pool; /* session lifetime */
	const char *hostname;   /* printable (pool) */
	const char *client_log; /* "name[addr]", sanitised (pool) */
	const char *mechs_all;  /* what may ever be offered (pool) */
	const char *mechs_now;  /* what is offered now (pool) */
	bool userpass;          /* USER/PASS enabled (PLAIN is configured) */

	enum session_state state;
	enum wait wait;
	unsigned depth;    /* engine calls on the stack */
	bool dead;         /* freed by the application */
	bool processing;   /* process() is on the stack */
	bool paused;       /* flow(ctx, true) in force */
	bool out_blocked;  /* output_full said true: wait for output_ready */
	bool tls;
	bool discard_line; /* skipping the rest of an overlong line */
	unsigned long long tls_discarded; /* octets thrown away around STLS */
	bool logged_disconnect;
	char verb_log[24]; /* the current verb, sanitised, for log lines */

	struct inbuf in;     /* unprocessed input */
	struct buf line;     /* the command line being handled */
	int errors;

	/* The login. */
	struct buf user_arg; /* USER's name, waiting for PASS */
	bool has_user_arg;
	char auth_mech[MECH_NAME_MAX + 1]; /* "USER" for USER/PASS */
	bool auth_exchange;                /* auth_cancel owed if abandoned */
	struct buf user;                   /* the name auth_done gave */
	bool logged_in;                    /* the mailbox is open */

	/* The mailbox (TRANSACTION). */
	struct message *msgs;
	bool *deleted;
	size_t nmsgs, ndeleted;
	unsigned long long total_size, deleted_size;

	/* The multi-line response under way. */
	enum job job;
	size_t job_index;  /* LIST/UIDL: the next message; J_MESSAGE: the message */
	bool job_started;  /* its first line has gone out */
	bool msg_open;     /* close_message is owed */
	bool top;          /* TOP: stop after top_lines body lines */
	unsigned long long top_lines, body_lines;
	bool in_header;    /* before the empty line that ends the header */
	bool line_start;   /* the next octet starts a line */
	bool prev_cr;      /* the last octet sent was a CR */
	size_t line_len;   /* octets of the current line so far */
	unsigned long long msg_sent; /* wire octets of the message, unstuffed */
	uint8_t *chunk;    /* POP3_CONTENT_CHUNK, for read_message */
	struct buf out;    /* a slice being built */

	/* For the disconnect line. */
	unsigned n_retr, n_top, n_dele;
	size_t removed;
	unsigned long long octets;
};

static void process(struct pop3_session *s);
static void session_close(struct pop3_session *s);

/* ---- entry and exit, callbacks ------------------------------------ */

/* enter / leave - bracket every public function that can call back, so
 * that a free from inside a callback waits until the engine is done. */
static void enter(struct pop3_session *s)
{
	s->depth++;
}

/* wipe - clear a buffer that may have held a password. */
static void wipe(struct buf *b)
{
	if (b->data != NULL)
		explicit_bzero(b->data, b->cap);
	buf_reset(b);
}

static void destroy(struct pop3_session *s)
{
	inbuf_free(&s->in);
	wipe(&s->line);
	buf_free(&s->line);
	buf_free(&s->user_arg);
	buf_free(&s->user);
	buf_free(&s->out);
	free(s->chunk);
	free(s->msgs);
	free(s->deleted);
	pool_destroy(&s->pool);
	free(s);
}

static void leave(struct pop3_session *s)
{
	if (--s->depth == 0 && s->dead)
		destroy(s);
}

/* enter_state - the one place the state changes; nothing leaves
 * S_CLOSED. */
static void enter_state(struct pop3_session *s, enum session_state state)
{
	if (s->state != S_CLOSED)
		s->state = state;
}

static void cb_write(struct pop3_session *s, const void *data, size_t len)
{
	if (!s->dead && s->state != S_CLOSED && len > 0)
		s->cb.write(s->ctx, data, len);
}

/* auth_abandon - a login exchange ends without a verdict: the
 * application forgets its side of it. */
static void auth_abandon(struct pop3_session *s)
{
	if (!s->auth_exchange)
		return;
	s->auth_exchange = false;
	if (!s->dead && s->cb.auth_cancel != NULL)
		s->cb.auth_cancel(s->ctx);
}

/* message_close - give the open message back. Made even when the
 * session is dead: close_message is owed for every successful open. */
static void message_close(struct pop3_session *s)
{
	if (!s->msg_open)
		return;
	s->msg_open = false;
	s->cb.close_message(s->ctx);
}

static void log_event(struct pop3_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void log_event(struct pop3_session *s, const char *fmt, ...)
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

/* LOG_NAME_SIZE - room for log_name's "<name>". */
#define LOG_NAME_SIZE (SANITIZE_MAX + 3)

/* log_name - "<name>" made printable, into out (LOG_NAME_SIZE). */
static const char *log_name(char *out, size_t size, const struct buf *name)
{
	char clean[SANITIZE_MAX];

	sanitize(clean, sizeof clean, name->data != NULL ? name->data : (const uint8_t *)"", name->len);
	snprintf(out, size, "<%s>", clean);
	return out;
}

/* blocked - whether the engine cannot take commands now. */
static bool blocked(const struct pop3_session *s)
{
	return s->wait != W_NONE || s->job != J_NONE || s->out_blocked || s->state == S_NEW ||
	       s->state == S_UPDATE || s->state == S_TLS;
}

/* flow_update - tell the application to stop or resume reading. */
static void flow_update(struct pop3_session *s)
{
	if (s->cb.flow == NULL || s->dead || s->state == S_CLOSED)
		return;
	if (!s->paused && blocked(s) && inbuf_held(&s->in) > POP3_INPUT_HIGH) {
		s->paused = true;
		s->cb.flow(s->ctx, true);
	} else if (s->paused && (!blocked(s) || inbuf_held(&s->in) <= POP3_INPUT_HIGH / 2)) {
		s->paused = false;
		s->cb.flow(s->ctx, false);
	}
}

/* output_full - ask the application; true means stop until
 * output_ready. */
static bool output_full(struct pop3_session *s)
{
	if (s->cb.output_full == NULL || s->dead)
		return false;
	if (s->cb.output_full(s->ctx))
		s->out_blocked = true;
	return s->out_blocked;
}

/* ---- responses ---------------------------------------------------- */

static void reply(struct pop3_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* reply - one response line; CRLF is added. */
static void reply(struct pop3_session *s, const char *fmt, ...)
{
	struct buf line = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&line, fmt, ap);
	va_end(ap);
	buf_append(&line, "\r\n", 2);
	cb_write(s, line.data, line.len);
	buf_free(&line);
}

static void count_error(struct pop3_session *s)
{
	s->errors++;
	if (s->state != S_CLOSED && s->config.max_errors > 0 && s->errors >= s->config.max_errors) {
		log_event(s, "too many errors after %s from %s", s->verb_log, s->client_log);
		reply(s, E_TOO_MANY_ERRORS);
		session_close(s);
	}
}

static void fail(struct pop3_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* fail - refuse a command for a client mistake: the response and one
 * more error. */
static void fail(struct pop3_session *s, const char *fmt, ...)
{
	struct buf line = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&line, fmt, ap);
	va_end(ap);
	buf_append(&line, "\r\n", 2);
	cb_write(s, line.data, line.len);
	buf_free(&line);
	count_error(s);
}

static void log_disconnect(struct pop3_session *s)
{
	char user[LOG_NAME_SIZE];
	struct buf line = BUF_INIT;

	if (s->logged_disconnect || s->state == S_NEW)
		return;
	s->logged_disconnect = true;
	buf_printf(&line, "disconnect from %s", s->client_log);
	if (s->logged_in)
		buf_printf(&line, " user=%s", log_name(user, sizeof user, &s->user));
	buf_printf(&line, " retr=%u top=%u dele=%u deleted=%zu octets=%llu errors=%d", s->n_retr, s->n_top,
		   s->n_dele, s->removed, s->octets, s->errors);
	log_event(s, "%s", buf_cstr(&line));
	buf_free(&line);
}

/* session_close - the end: give back what is open, log, close. The
 * input buffer is left alone (a loop up the stack may be reading it). */
static void session_close(struct pop3_session *s)
{
	if (s->state == S_CLOSED)
		return;
	message_close(s);
	s->job = J_NONE;
	auth_abandon(s);
	log_disconnect(s);
	s->state = S_CLOSED;
	if (!s->dead)
		s->cb.close(s->ctx);
}

/* ---- mechanisms --------------------------------------------------- */

/* secure - whether passwords may cross this connection. */
static bool secure(const struct pop3_session *s)
{
	return s->tls || s->config.plaintext_auth;
}

/* word_in - whether word (len octets, upper case) is in the
 * space-separated list. */
static bool word_in(const char *list, const char *word, size_t len)
{
	for (const char *p = list; p != NULL && *p != '\0';) {
		const char *end = strchr(p, ' ');
		size_t w = end != NULL ? (size_t)(end - p) : strlen(p);

		if (w == len && memcmp(p, word, len) == 0)
			return true;
		p = end != NULL ? end + 1 : p + w;
	}
	return false;
}

/* update_mechs - what is offered now (at the start and after STLS). */
static void update_mechs(struct pop3_session *s)
{
	struct buf b = BUF_INIT;

	sasl_mechs_offered(s->config.sasl_mechs != NULL ? s->config.sasl_mechs : "", secure(s), &b);
	s->mechs_now = pool_strdup(s->pool, buf_cstr(&b));
	buf_free(&b);
}

static bool stls_offered(const struct pop3_session *s)
{
	return s->config.stls && s->cb.starttls != NULL && !s->tls;
}

/* ---- multi-line responses ----------------------------------------- */

/* job_end - the multi-line response is complete. */
static void job_end(struct pop3_session *s)
{
	s->job = J_NONE;
	s->job_started = false;
}

/* listing_step - one slice of LIST or UIDL. */
static void listing_step(struct pop3_session *s)
{
	buf_reset(&s->out);
	if (!s->job_started) {
		s->job_started = true;
		if (s->job == J_LIST)
			buf_printf(&s->out, "+OK %zu message%s (%llu octets)\r\n", s->nmsgs - s->ndeleted,
				   s->nmsgs - s->ndeleted == 1 ? "" : "s", s->total_size - s->deleted_size);
		else
			buf_append_str(&s->out, "+OK Unique-ID listing follows\r\n");
	}
	for (; s->job_index < s->nmsgs && s->out.len < LISTING_SLICE; s->job_index++) {
		const struct message *m = &s->msgs[s->job_index];

		if (s->deleted[s->job_index])
			continue;
		if (s->job == J_LIST)
			buf_printf(&s->out, "%zu %lld\r\n", s->job_index + 1, m->size);
		else
			buf_printf(&s->out, "%zu %s\r\n", s->job_index + 1, m->uidl);
	}
	if (s->job_index == s->nmsgs) {
		buf_append(&s->out, ".\r\n", 3);
		job_end(s);
	}
	cb_write(s, s->out.data, s->out.len);
}

/* end_line - a line of the message has been sent: TOP's counting.
 * Returns true when TOP has sent all it should. */
static bool end_line(struct pop3_session *s, bool empty)
{
	s->line_start = true;
	s->line_len = 0;
	if (!s->top)
		return false;
	if (s->in_header) {
		if (!empty)
			return false;
		s->in_header = false;
	} else {
		s->body_lines++;
	}
	return s->body_lines >= s->top_lines;
}

/* convert - data[0..len) of the message as it goes on the wire into
 * s->out: a LF not after a CR becomes CRLF, a dot at the start of a line
 * is doubled (RFC 1939 3), all else passes unchanged. Returns true when
 * TOP needs nothing more. */
static bool convert(struct pop3_session *s, const uint8_t *data, size_t len)
{
	size_t i = 0;

	while (i < len) {
		const uint8_t *lf;
		size_t run;

		if (data[i] == '\n') {
			bool empty = s->line_len == 0 || (s->line_len == 1 && s->prev_cr);

			if (s->prev_cr) {
				buf_append_byte(&s->out, '\n');
				s->msg_sent++;
			} else {
				buf_append(&s->out, "\r\n", 2);
				s->msg_sent += 2;
			}
			s->prev_cr = false;
			i++;
			if (end_line(s, empty))
				return true;
			continue;
		}
		if (s->line_start && data[i] == '.')
			buf_append_byte(&s->out, '.');
		s->line_start = false;
		lf = memchr(data + i, '\n', len - i);
		run = lf != NULL ? (size_t)(lf - (data + i)) : len - i;
		buf_append(&s->out, data + i, run);
		s->msg_sent += run;
		s->line_len += run;
		s->prev_cr = data[i + run - 1] == '\r';
		i += run;
	}
	return false;
}

/* convert_end - end the last line if it is open, and the response. */
static void convert_end(struct pop3_session *s)
{
	if (!s->line_start) {
		if (s->prev_cr) {
			buf_append_byte(&s->out, '\n');
			s->msg_sent++;
		} else {
			buf_append(&s->out, "\r\n", 2);
			s->msg_sent += 2;
		}
	}
	buf_append(&s->out, ".\r\n", 3);
}

/* message_step - one slice of RETR or TOP. The first slice is read
 * before "+OK" goes out, so that a file that cannot be read at all still
 * gets an -ERR; after that, a read error can only end the session: the
 * client would take anything else as more of the message. */
static void message_step(struct pop3_session *s)
{
	size_t index = s->job_index;
	ssize_t n;
	bool done;

	n = s->cb.read_message(s->ctx, s->chunk, POP3_CONTENT_CHUNK);
	if (s->dead || s->job != J_MESSAGE)
		return; /* freed or closed from inside */
	if (n > (ssize_t)POP3_CONTENT_CHUNK)
		log_panic("pop3 read_message: %zd octets for a buffer of %d", n, POP3_CONTENT_CHUNK);
	if (n < 0) {
		if (!s->job_started) {
			message_close(s);
			job_end(s);
			log_event(s, "cannot read message %zu for %s", index + 1, s->client_log);
			reply(s, E_UNREADABLE, index + 1);
			return;
		}
		log_event(s, "read error in message %zu after %llu octets for %s; closing", index + 1, s->msg_sent,
			  s->client_log);
		session_close(s);
		return;
	}
	buf_reset(&s->out);
	if (!s->job_started) {
		s->job_started = true;
		if (s->top)
			buf_printf(&s->out, "+OK Top of message %zu follows\r\n", index + 1);
		else
			buf_printf(&s->out, "+OK %lld octets\r\n", s->msgs[index].size);
	}
	done = n == 0 || convert(s, s->chunk, (size_t)n);
	if (done)
		convert_end(s);
	cb_write(s, s->out.data, s->out.len);
	if (!done || s->dead || s->job != J_MESSAGE)
		return; /* more to come, or freed or closed inside the write */
	message_close(s);
	job_end(s);
	s->octets += s->msg_sent;
	if (!s->top && s->msg_sent != (unsigned long long)s->msgs[index].size)
		log_event(s, "message %zu: size %lld listed, %llu sent", index + 1, s->msgs[index].size, s->msg_sent);
}

/* job_step - one slice of the multi-line response under way; false when
 * it must wait for the output to drain. */
static bool job_step(struct pop3_session *s)
{
	if (output_full(s) || s->dead || s->job == J_NONE)
		return false;
	if (s->job == J_MESSAGE)
		message_step(s);
	else
		listing_step(s);
	return true;
}

/* ---- the loop ----------------------------------------------------- */

static const struct pop3_command *find_command(const char *verb, size_t len)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strlen(commands[i].name) == len && strncasecmp(commands[i].name, verb, len) == 0)
			return &commands[i];
	return NULL;
}

/* handle_line - one command line, without its line end. */
static void handle_line(struct pop3_session *s, const char *line, size_t len)
{
	const struct pop3_command *c;
	const char *args;
	size_t verb_len = 0, args_len;

	while (verb_len < len && line[verb_len] != ' ')
		verb_len++;
	c = find_command(line, verb_len);
	if (c != NULL)
		snprintf(s->verb_log, sizeof s->verb_log, "%s", c->name);
	else if (verb_len > 0)
		sanitize(s->verb_log, sizeof s->verb_log, line, verb_len);
	else
		snprintf(s->verb_log, sizeof s->verb_log, "%s", "UNKNOWN");
	if (len + 2 > (c != NULL && (c->flags & C_LONG) ? LINE_MAX_AUTH : LINE_MAX_CMD)) {
		fail(s, E_TOO_LONG);
		return;
	}
	if (memchr(line, '\0', len) != NULL || memchr(line, '\r', len) != NULL) {
		fail(s, E_BAD_CHAR);
		return;
	}
	if (c == NULL) {
		fail(s, E_UNKNOWN);
		return;
	}
	if (s->state == S_AUTHORIZATION && !(c->flags & C_AUTHZ)) {
		fail(s, E_BEFORE_LOGIN);
		return;
	}
	if (s->state == S_TRANSACTION && !(c->flags & C_TRANS)) {
		fail(s, E_AFTER_LOGIN);
		return;
	}
	/* One space separates the verb from the arguments (RFC 1939 3).
	 * PASS takes the rest as it is; elsewhere blanks around the
	 * arguments are forgiven. */
	args = line + verb_len;
	args_len = len - verb_len;
	if (args_len > 0) {
		args++;
		args_len--;
	}
	if (!(c->flags & C_RAW)) {
		while (args_len > 0 && args[0] == ' ') {
			args++;
			args_len--;
		}
		while (args_len > 0 && args[args_len - 1] == ' ')
			args_len--;
	}
	if ((c->flags & C_NO_ARGS) && args_len > 0) {
		fail(s, E_NO_ARGS);
		return;
	}
	c->handler(s, args, args_len);
}

/* next_line - the next whole line of input, without its line end, into
 * s->line (copied: handlers may call back, and input given then must not
 * move it). Returns 1 with a line, 0 if none is complete yet, -1 if the
 * line is too long to wait for (it is skipped to its end). A bare LF
 * ends a line too: a common client bug, harmless here. */
static int next_line(struct pop3_session *s)
{
	const uint8_t *data = inbuf_data(&s->in), *lf;
	size_t len = inbuf_len(&s->in), text;

	lf = len > 0 ? memchr(data, '\n', len) : NULL;
	while (s->discard_line) {
		if (lf == NULL) {
			inbuf_skip(&s->in, len);
			return 0;
		}
		inbuf_skip(&s->in, (size_t)(lf - data) + 1);
		s->discard_line = false;
		data = inbuf_data(&s->in);
		len = inbuf_len(&s->in);
		lf = len > 0 ? memchr(data, '\n', len) : NULL;
	}
	if (lf == NULL && len < LINE_MAX_AUTH)
		return 0;
	if (output_full(s))
		return 0;
	if (lf == NULL) {
		/* No line end in sight, and no line may be this long:
		 * answer now and skip to the next line end. */
		inbuf_skip(&s->in, len);
		s->discard_line = true;
		return -1;
	}
	text = (size_t)(lf - data);
	if (text > 0 && data[text - 1] == '\r')
		text--;
	wipe(&s->line);
	buf_append(&s->line, data, text);
	inbuf_skip(&s->in, (size_t)(lf - data) + 1);
	return 1;
}

/* command_step - one command line if a whole one is there. */
static bool command_step(struct pop3_session *s)
{
	int rc = next_line(s);

	if (rc == 0)
		return false;
	if (rc < 0) {
		snprintf(s->verb_log, sizeof s->verb_log, "%s", "UNKNOWN");
		fail(s, E_TOO_LONG);
		return true;
	}
	handle_line(s, (const char *)s->line.data, s->line.len);
	return true;
}

/* decode_response - a SASL response (or initial response) into out: "="
 * is the empty response (RFC 5034 4). */
static int decode_response(const char *text, size_t len, struct buf *out)
{
	buf_reset(out);
	if (len == 1 && text[0] == '=')
		return 0;
	return base64_decode(out, text, len);
}

/* sasl_step - the client's response to a challenge, if a whole line is
 * there. */
static bool sasl_step(struct pop3_session *s)
{
	struct buf resp = BUF_INIT;
	int rc = next_line(s);

	if (rc == 0)
		return false;
	enter_state(s, S_AUTHORIZATION);
	if (rc < 0 || s->line.len + 2 > LINE_MAX_AUTH) {
		auth_abandon(s);
		fail(s, E_TOO_LONG);
		return true;
	}
	if (s->line.len == 1 && s->line.data[0] == '*') {
		/* RFC 5034 4: the client gave up; not its mistake. */
		auth_abandon(s);
		reply(s, E_AUTH_CANCELLED);
		return true;
	}
	if (decode_response((const char *)s->line.data, s->line.len, &resp) < 0) {
		/* (the decoder may have used memory before it failed) */
		buf_free(&resp);
		auth_abandon(s);
		fail(s, E_AUTH_BASE64);
		return true;
	}
	s->wait = W_AUTH;
	if (!s->dead)
		s->cb.auth_step(s->ctx, resp.data != NULL ? resp.data : (const uint8_t *)"", resp.len);
	wipe(&resp);
	buf_free(&resp);
	return true;
}

/* process - run everything that can run now. */
static void process(struct pop3_session *s)
{
	if (s->processing)
		return;
	s->processing = true;
	while (!s->dead && !s->out_blocked) {
		bool progress;

		inbuf_merge_later(&s->in);
		if (s->job != J_NONE)
			progress = job_step(s);
		else if (s->wait != W_NONE)
			break;
		else if (s->state == S_AUTHORIZATION || s->state == S_TRANSACTION)
			progress = command_step(s);
		else if (s->state == S_SASL)
			progress = sasl_step(s);
		else
			break;
		if (!progress && s->in.later.len == 0)
			break;
	}
	s->processing = false;
	if (s->dead)
		return;
	inbuf_tidy(&s->in);
	if (s->state != S_CLOSED && inbuf_held(&s->in) > POP3_INPUT_MAX) {
		log_event(s, "too much pipelined input from %s", s->client_log);
		/* In the middle of a multi-line response an -ERR would read
		 * as part of it: then just close. */
		if (s->job == J_NONE)
			reply(s, E_OVERFLOW);
		session_close(s);
	}
	flow_update(s);
}

/* ---- AUTHORIZATION ------------------------------------------------ */

/* start_login - hand a login to the application. */
static void start_login(struct pop3_session *s, const char *mech, const void *resp, size_t len, bool has_resp)
{
	snprintf(s->auth_mech, sizeof s->auth_mech, "%s", mech);
	s->auth_exchange = true;
	s->wait = W_AUTH;
	if (!s->dead)
		s->cb.auth(s->ctx, strcmp(mech, "USER") == 0 ? "PLAIN" : mech, resp, len, has_resp);
}

static void forget_user_arg(struct pop3_session *s)
{
	s->has_user_arg = false;
	buf_reset(&s->user_arg);
}

static void cmd_user(struct pop3_session *s, const char *args, size_t len)
{
	if (!s->userpass) {
		fail(s, E_USER_OFF);
		return;
	}
	if (!secure(s)) {
		fail(s, E_PLAINTEXT);
		return;
	}
	if (len == 0) {
		fail(s, E_USER_SYNTAX);
		return;
	}
	/* Whether the user exists is for PASS to find out (through auth):
	 * USER says nothing about it. */
	buf_reset(&s->user_arg);
	buf_append(&s->user_arg, args, len);
	s->has_user_arg = true;
	reply(s, "+OK Password required");
}

static void cmd_pass(struct pop3_session *s, const char *args, size_t len)
{
	struct buf resp = BUF_INIT;

	if (!s->has_user_arg) {
		fail(s, E_NEED_USER);
		return;
	}
	if (len == 0) {
		fail(s, E_PASS_SYNTAX);
		return;
	}
	/* PLAIN's message (RFC 4616): no authorization identity, the user,
	 * the password; neither can hold a NUL (handle_line refused it). */
	buf_append_byte(&resp, '\0');
	buf_append(&resp, s->user_arg.data, s->user_arg.len);
	buf_append_byte(&resp, '\0');
	buf_append(&resp, args, len);
	s->has_user_arg = false; /* the name stays for the log line */
	start_login(s, "USER", resp.data, resp.len, true);
	wipe(&resp);
	buf_free(&resp);
}

static void cmd_apop(struct pop3_session *s, const char *args, size_t len)
{
	(void)args;
	(void)len;
	/* It needs the password in clear on the server, and our greeting
	 * has no timestamp: not a client mistake, just not here. */
	reply(s, E_APOP);
}

static void cmd_auth(struct pop3_session *s, const char *args, size_t len)
{
	char mech[MECH_NAME_MAX + 1];
	struct buf resp = BUF_INIT;
	size_t i = 0, m = 0;
	bool has_resp;

	if (len == 0) {
		/* RFC 1734's listing, which clients still probe for. */
		struct buf out = BUF_INIT;

		buf_append_str(&out, "+OK Mechanisms follow\r\n");
		for (const char *p = s->mechs_now; *p != '\0';) {
			size_t w = strcspn(p, " ");

			buf_append(&out, p, w);
			buf_append(&out, "\r\n", 2);
			p += w;
			if (*p == ' ')
				p++;
		}
		buf_append(&out, ".\r\n", 3);
		cb_write(s, out.data, out.len);
		buf_free(&out);
		return;
	}
	for (; i < len && args[i] != ' '; i++) {
		char c = args[i];

		if (m == MECH_NAME_MAX || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
					     (c >= '0' && c <= '9') || c == '-' || c == '_')) {
			fail(s, E_AUTH_MECH);
			return;
		}
		mech[m++] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
	}
	mech[m] = '\0';
	if (!word_in(s->mechs_now, mech, m)) {
		if (s->mechs_now[0] == '\0' && s->mechs_all[0] == '\0')
			fail(s, E_NO_LOGIN);
		else if (word_in(s->mechs_all, mech, m))
			fail(s, E_PLAINTEXT);
		else
			fail(s, E_AUTH_MECH);
		return;
	}
	while (i < len && args[i] == ' ')
		i++;
	has_resp = i < len;
	if (has_resp && decode_response(args + i, len - i, &resp) < 0) {
		buf_free(&resp);
		fail(s, E_AUTH_BASE64);
		return;
	}
	forget_user_arg(s);
	start_login(s, mech, resp.data != NULL ? resp.data : (const uint8_t *)"", resp.len, has_resp);
	wipe(&resp);
	buf_free(&resp);
}

static void cmd_stls(struct pop3_session *s, const char *args, size_t len)
{
	(void)args;
	(void)len;
	if (s->tls) {
		fail(s, E_TLS_ACTIVE);
		return;
	}
	if (!stls_offered(s)) {
		reply(s, E_NO_STLS);
		return;
	}
	/* What the client sent after STLS, before the handshake, came in
	 * clear and could have been injected by anyone on the path
	 * (CVE-2011-0411 in SMTP; the same bug has been found in POP3 and
	 * IMAP servers since): it must never be taken as sent over TLS. */
	s->tls_discarded = inbuf_discard(&s->in);
	forget_user_arg(s);
	reply(s, "+OK Begin TLS negotiation");
	enter_state(s, S_TLS);
	if (!s->dead && s->state == S_TLS)
		s->cb.starttls(s->ctx);
}

static void cmd_capa(struct pop3_session *s, const char *args, size_t len)
{
	struct buf out = BUF_INIT;
	bool authz = s->state == S_AUTHORIZATION;

	(void)args;
	(void)len;
	buf_append_str(&out, "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
			     "PIPELINING\r\n");
	if (authz && stls_offered(s))
		buf_append_str(&out, "STLS\r\n");
	if (authz && s->userpass && secure(s))
		buf_append_str(&out, "USER\r\n");
	if (authz && s->mechs_now[0] != '\0')
		buf_printf(&out, "SASL %s\r\n", s->mechs_now);
	buf_append_str(&out, "IMPLEMENTATION Yubin\r\n.\r\n");
	cb_write(s, out.data, out.len);
	buf_free(&out);
}

static void cmd_quit(struct pop3_session *s, const char *args, size_t len)
{
	(void)args;
	(void)len;
	if (s->state == S_TRANSACTION && s->ndeleted > 0) {
		/* RFC 1939 6: only now, and only on QUIT, do deletions
		 * happen. */
		enter_state(s, S_UPDATE);
		if (!s->dead)
			s->cb.update(s->ctx, s->deleted, s->nmsgs);
		return;
	}
	reply(s, "+OK %s signing off", s->hostname);
	session_close(s);
}

/* ---- TRANSACTION -------------------------------------------------- */

/* msg_arg - the message a number argument names, as an index; false
 * after the error response. */
static bool msg_arg(struct pop3_session *s, const char *arg, size_t len, size_t *index_r)
{
	unsigned long long n = 0;

	if (len == 0) {
		fail(s, E_BAD_MSGNUM);
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		if (arg[i] < '0' || arg[i] > '9') {
			fail(s, E_BAD_MSGNUM);
			return false;
		}
		if (i < MSGNUM_DIGITS)
			n = n * 10 + (unsigned long long)(arg[i] - '0');
	}
	if (len > MSGNUM_DIGITS || n == 0 || n > s->nmsgs) {
		fail(s, E_NO_SUCH);
		return false;
	}
	if (s->deleted[n - 1]) {
		fail(s, E_DELETED, (size_t)n);
		return false;
	}
	*index_r = (size_t)n - 1;
	return true;
}

static void cmd_stat(struct pop3_session *s, const char *args, size_t len)
{
	(void)args;
	(void)len;
	reply(s, "+OK %zu %llu", s->nmsgs - s->ndeleted, s->total_size - s->deleted_size);
}

/* start_listing - LIST or UIDL: one message, or the whole listing. */
static void start_listing(struct pop3_session *s, enum job job, const char *args, size_t len)
{
	size_t i;

	if (len > 0) {
		if (!msg_arg(s, args, len, &i))
			return;
		if (job == J_LIST)
			reply(s, "+OK %zu %lld", i + 1, s->msgs[i].size);
		else
			reply(s, "+OK %zu %s", i + 1, s->msgs[i].uidl);
		return;
	}
	s->job = job;
	s->job_index = 0;
	s->job_started = false;
}

static void cmd_list(struct pop3_session *s, const char *args, size_t len)
{
	start_listing(s, J_LIST, args, len);
}

static void cmd_uidl(struct pop3_session *s, const char *args, size_t len)
{
	start_listing(s, J_UIDL, args, len);
}

/* start_message - RETR or TOP of message index. */
static void start_message(struct pop3_session *s, size_t index, bool top, unsigned long long lines)
{
	if (s->cb.open_message(s->ctx, index) < 0) {
		if (s->dead)
			return;
		log_event(s, "cannot open message %zu for %s", index + 1, s->client_log);
		reply(s, E_UNREADABLE, index + 1);
		return;
	}
	s->msg_open = true;
	if (s->dead || s->state != S_TRANSACTION) {
		/* Freed or closed inside open_message: still owed. */
		message_close(s);
		return;
	}
	if (s->chunk == NULL)
		s->chunk = xmalloc(POP3_CONTENT_CHUNK);
	if (top)
		s->n_top++;
	else
		s->n_retr++;
	s->job = J_MESSAGE;
	s->job_index = index;
	s->job_started = false;
	s->top = top;
	s->top_lines = lines;
	s->body_lines = 0;
	s->in_header = true;
	s->line_start = true;
	s->prev_cr = false;
	s->line_len = 0;
	s->msg_sent = 0;
}

static void cmd_retr(struct pop3_session *s, const char *args, size_t len)
{
	size_t i;

	if (msg_arg(s, args, len, &i))
		start_message(s, i, false, 0);
}

static void cmd_top(struct pop3_session *s, const char *args, size_t len)
{
	unsigned long long lines = 0;
	size_t num_len = 0, i, k;

	while (num_len < len && args[num_len] != ' ')
		num_len++;
	k = num_len;
	while (k < len && args[k] == ' ')
		k++;
	if (num_len == 0 || k == len) {
		fail(s, E_TOP_SYNTAX);
		return;
	}
	for (size_t j = k; j < len; j++) {
		if (args[j] < '0' || args[j] > '9') {
			fail(s, E_TOP_SYNTAX);
			return;
		}
		/* more lines than any message has: the whole body */
		lines = lines > ULLONG_MAX / 10 - 1 ? ULLONG_MAX : lines * 10 + (unsigned)(args[j] - '0');
	}
	if (msg_arg(s, args, num_len, &i))
		start_message(s, i, true, lines);
}

static void cmd_dele(struct pop3_session *s, const char *args, size_t len)
{
	size_t i;

	if (!msg_arg(s, args, len, &i))
		return;
	s->deleted[i] = true;
	s->ndeleted++;
	s->deleted_size += (unsigned long long)s->msgs[i].size;
	s->n_dele++;
	reply(s, "+OK Message %zu deleted", i + 1);
}

static void cmd_noop(struct pop3_session *s, const char *args, size_t len)
{
	(void)args;
	(void)len;
	reply(s, "+OK");
}

static void cmd_rset(struct pop3_session *s, const char *args, size_t len)
{
	(void)args;
	(void)len;
	memset(s->deleted, 0, s->nmsgs * sizeof *s->deleted);
	s->ndeleted = 0;
	s->deleted_size = 0;
	reply(s, "+OK Mailbox has %zu message%s (%llu octets)", s->nmsgs, s->nmsgs == 1 ? "" : "s",
	      s->total_size);
}

/* ---- public API --------------------------------------------------- */

/* printable - a copy of text with only printable ASCII, no blanks; cut
 * to 255 octets (it goes into response lines). */
static const char *printable(struct pool *pool, const char *text)
{
	char out[256];
	size_t o = 0;

	for (; text != NULL && *text != '\0' && o + 1 < sizeof out; text++)
		out[o++] = *text > 32 && *text < 127 ? *text : '?';
	out[o] = '\0';
	return pool_strdup(pool, o > 0 ? out : "localhost");
}

struct pop3_session *pop3_session_new(const struct pop3_server_config *config,
				      const struct pop3_server_callbacks *cb, void *ctx, const char *client_addr,
				      const char *client_name)
{
	struct pop3_session *s = xnew(struct pop3_session);
	char name[SANITIZE_MAX], addr[SANITIZE_MAX];
	struct buf b = BUF_INIT;

	if (cb->write == NULL || cb->close == NULL || cb->auth == NULL || cb->auth_step == NULL ||
	    cb->mailbox_open == NULL || cb->open_message == NULL || cb->read_message == NULL ||
	    cb->close_message == NULL || cb->update == NULL)
		log_panic("pop3_session_new: a required callback is missing");
	s->pool = pool_create();
	s->config = *config;
	s->config.hostname = NULL;
	s->config.sasl_mechs = pool_strdup(s->pool, config->sasl_mechs != NULL ? config->sasl_mechs : "");
	s->hostname = printable(s->pool, config->hostname);
	s->cb = *cb;
	s->ctx = ctx;
	if (client_addr == NULL)
		client_addr = "";
	if (client_name == NULL || *client_name == '\0')
		client_name = "unknown";
	sanitize(name, sizeof name, client_name, strlen(client_name));
	sanitize(addr, sizeof addr, client_addr, strlen(client_addr));
	s->client_log = pool_printf(s->pool, "%s[%s]", name, addr);
	s->tls = config->tls_active;
	sasl_mechs_offered(s->config.sasl_mechs, true, &b);
	s->mechs_all = pool_strdup(s->pool, buf_cstr(&b));
	s->userpass = word_in(s->mechs_all, "PLAIN", 5);
	buf_free(&b);
	update_mechs(s);
	s->state = S_NEW;
	snprintf(s->verb_log, sizeof s->verb_log, "%s", "CONNECT");
	return s;
}

void pop3_session_start(struct pop3_session *s)
{
	if (s->state == S_CLOSED || s->dead)
		return; /* shut down before it started */
	if (s->state != S_NEW)
		log_panic("pop3_session_start: session already started");
	enter(s);
	enter_state(s, S_AUTHORIZATION);
	log_event(s, "connect from %s%s", s->client_log, s->tls ? " (TLS)" : "");
	reply(s, "+OK %s Yubin POP3 server ready", s->hostname);
	process(s);
	leave(s);
}

void pop3_session_input(struct pop3_session *s, const void *data, size_t len)
{
	if (s->state == S_CLOSED || s->dead || len == 0)
		return;
	if (s->state == S_TLS) {
		/* Sent in clear after STLS, before the handshake. */
		s->tls_discarded += len;
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

void pop3_session_timeout(struct pop3_session *s)
{
	if (s->state == S_CLOSED || s->dead)
		return;
	enter(s);
	log_event(s, "timeout after %s from %s", s->verb_log, s->client_log);
	session_close(s);
	leave(s);
}

void pop3_session_shutdown(struct pop3_session *s)
{
	if (s->state == S_CLOSED || s->dead)
		return;
	enter(s);
	log_event(s, "shutdown after %s from %s", s->verb_log, s->client_log);
	if (s->job == J_NONE && s->state != S_TLS)
		reply(s, E_SHUTDOWN);
	session_close(s);
	leave(s);
}

/* check_answer - common to the *_done answers, before enter(): false if
 * the session is over (the answer is ignored); a panic if nobody
 * asked. */
static bool check_answer(struct pop3_session *s, enum wait want, const char *what)
{
	if (s->dead || s->state == S_CLOSED)
		return false;
	if (s->wait != want)
		log_panic("%s: no such request pending", what);
	s->wait = W_NONE;
	return true;
}

void pop3_session_tls_done(struct pop3_session *s, bool ok)
{
	if (s->dead || s->state == S_CLOSED)
		return;
	if (s->state != S_TLS)
		log_panic("pop3_session_tls_done: no STLS pending");
	enter(s);
	if (s->tls_discarded > 0)
		log_event(s, "discarded %llu octets sent after STLS by %s", s->tls_discarded, s->client_log);
	if (ok) {
		/* RFC 2595 4: the client forgets what it learnt before; so
		 * do we (a USER name given in clear). */
		s->tls = true;
		forget_user_arg(s);
		update_mechs(s);
		enter_state(s, S_AUTHORIZATION);
		log_event(s, "TLS established with %s", s->client_log);
		process(s);
	} else {
		/* Nothing can be said: the stream is neither clear nor TLS. */
		log_event(s, "TLS handshake failed with %s", s->client_log);
		session_close(s);
	}
	leave(s);
}

/* log_login - a line about a login that did not succeed: the client,
 * the way of logging in, and the user when USER gave it. */
static void log_login(struct pop3_session *s, const char *what)
{
	char user[LOG_NAME_SIZE];

	if (strcmp(s->auth_mech, "USER") == 0)
		log_event(s, "%s from %s: method=USER user=%s", what, s->client_log,
			  log_name(user, sizeof user, &s->user_arg));
	else
		log_event(s, "%s from %s: method=%s", what, s->client_log, s->auth_mech);
}

void pop3_session_auth_done(struct pop3_session *s, enum pop3_auth_answer answer, const void *challenge,
			    size_t len, const char *user)
{
	if ((unsigned)answer > POP3_AUTH_ENCRYPT)
		log_panic("pop3_session_auth_done: bad answer %d", (int)answer);
	if (answer == POP3_AUTH_OK && (user == NULL || *user == '\0'))
		log_panic("pop3_session_auth_done: OK without a user name");
	if (!check_answer(s, W_AUTH, "pop3_session_auth_done"))
		return;
	enter(s);
	switch (answer) {
	case POP3_AUTH_CONTINUE:
		if (strcmp(s->auth_mech, "USER") == 0) {
			/* PASS has no way to answer a challenge: the auth
			 * daemon and we disagree about PLAIN. */
			auth_abandon(s);
			log_login(s, "login: unexpected challenge");
			reply(s, E_AUTH_TEMP);
			break;
		} else {
			struct buf line = BUF_INIT;

			buf_append(&line, "+ ", 2);
			base64_encode(&line, challenge, len);
			buf_append(&line, "\r\n", 2);
			cb_write(s, line.data, line.len);
			buf_free(&line);
			enter_state(s, S_SASL);
		}
		break;
	case POP3_AUTH_OK:
		s->auth_exchange = false;
		buf_reset(&s->user);
		buf_append_str(&s->user, user);
		s->wait = W_MAILBOX;
		if (!s->dead)
			s->cb.mailbox_open(s->ctx, user);
		break;
	case POP3_AUTH_FAIL:
		s->auth_exchange = false;
		log_login(s, "login failed");
		fail(s, E_AUTH_FAILED);
		break;
	case POP3_AUTH_ENCRYPT:
		s->auth_exchange = false;
		log_login(s, "login refused without TLS");
		fail(s, E_PLAINTEXT);
		break;
	case POP3_AUTH_TEMP:
		s->auth_exchange = false;
		log_login(s, "login failed temporarily");
		reply(s, E_AUTH_TEMP);
		break;
	}
	process(s);
	leave(s);
}

/* uidl_ok - 1 to 70 octets of 0x21..0x7e. */
static bool uidl_ok(const char *uidl)
{
	size_t n = 0;

	if (uidl == NULL)
		return false;
	for (; uidl[n] != '\0'; n++)
		if (n == UIDL_MAX || uidl[n] < 0x21 || uidl[n] > 0x7e)
			return false;
	return n > 0;
}

void pop3_session_mailbox_done(struct pop3_session *s, enum pop3_mailbox_result result,
			       const struct pop3_message *messages, size_t n)
{
	char user[LOG_NAME_SIZE];

	if ((unsigned)result > POP3_MAILBOX_PERM)
		log_panic("pop3_session_mailbox_done: bad result %d", (int)result);
	if (result == POP3_MAILBOX_OK) {
		if (messages == NULL && n > 0)
			log_panic("pop3_session_mailbox_done: no messages given");
		for (size_t i = 0; i < n; i++)
			if (messages[i].size < 0 || !uidl_ok(messages[i].uidl))
				log_panic("pop3_session_mailbox_done: message %zu: bad size or UIDL", i + 1);
	}
	if (!check_answer(s, W_MAILBOX, "pop3_session_mailbox_done"))
		return;
	enter(s);
	log_name(user, sizeof user, &s->user);
	if (result == POP3_MAILBOX_OK) {
		s->msgs = xreallocarray(NULL, n > 0 ? n : 1, sizeof *s->msgs);
		s->deleted = xcalloc(n > 0 ? n : 1, sizeof *s->deleted);
		s->nmsgs = n;
		for (size_t i = 0; i < n; i++) {
			s->msgs[i].size = messages[i].size;
			s->msgs[i].uidl = pool_strdup(s->pool, messages[i].uidl);
			s->total_size += (unsigned long long)messages[i].size;
		}
		s->logged_in = true;
		enter_state(s, S_TRANSACTION);
		log_event(s, "login from %s: user=%s method=%s messages=%zu octets=%llu", s->client_log, user,
			  s->auth_mech, n, s->total_size);
		reply(s, "+OK Logged in, %zu message%s (%llu octets)", n, n == 1 ? "" : "s", s->total_size);
	} else {
		static const char *const why[] = { "", "in use", "unavailable", "unavailable" };

		log_event(s, "mailbox %s for %s: user=%s", why[result], s->client_log, user);
		buf_reset(&s->user);
		reply(s, "%s", result == POP3_MAILBOX_IN_USE ? E_IN_USE :
				     result == POP3_MAILBOX_TEMP ? E_MAILBOX_TEMP : E_MAILBOX_PERM);
	}
	process(s);
	leave(s);
}

void pop3_session_update_done(struct pop3_session *s, bool ok)
{
	if (s->dead || s->state == S_CLOSED)
		return;
	if (s->state != S_UPDATE)
		log_panic("pop3_session_update_done: no UPDATE pending");
	enter(s);
	if (ok) {
		s->removed = s->ndeleted;
		reply(s, "+OK %s signing off, %zu message%s deleted", s->hostname, s->ndeleted,
		      s->ndeleted == 1 ? "" : "s");
	} else {
		log_event(s, "deletions failed for %s", s->client_log);
		reply(s, E_UPDATE);
	}
	session_close(s);
	leave(s);
}

void pop3_session_output_ready(struct pop3_session *s)
{
	if (s->dead || s->state == S_CLOSED || !s->out_blocked)
		return;
	enter(s);
	s->out_blocked = false;
	process(s);
	leave(s);
}

enum pop3_state pop3_session_state(const struct pop3_session *s)
{
	switch (s->state) {
	case S_TRANSACTION:
		return POP3_STATE_TRANSACTION;
	case S_UPDATE:
		return POP3_STATE_UPDATE;
	case S_CLOSED:
		return POP3_STATE_CLOSED;
	default:
		return POP3_STATE_AUTHORIZATION;
	}
}

const char *pop3_session_user(const struct pop3_session *s)
{
	return s->logged_in ? buf_cstr(&s->user) : NULL;
}

bool pop3_session_tls(const struct pop3_session *s)
{
	return s->tls;
}

bool pop3_session_closed(const struct pop3_session *s)
{
	return s->state == S_CLOSED;
}

void pop3_session_free(struct pop3_session **sp)
{
	struct pop3_session *s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	if (s->dead)
		return;
	/* Held across the callbacks below, which may free again. */
	enter(s);
	if (s->state != S_CLOSED) {
		enum session_state was = s->state;

		/* The client went away (or the application gave up): no
		 * UPDATE, nothing is deleted. */
		s->state = S_CLOSED;
		if (was != S_NEW && was != S_UPDATE)
			log_event(s, "lost connection after %s from %s", s->verb_log, s->client_log);
		message_close(s);
		s->job = J_NONE;
		auth_abandon(s);
		if (was != S_NEW)
			log_disconnect(s);
	}
	s->dead = true;
	leave(s);
}

/* ---- sizes -------------------------------------------------------- */

void pop3_size_init(struct pop3_size *z)
{
	z->octets = 0;
	z->cr = false;
	z->line_start = true;
}

void pop3_size_add(struct pop3_size *z, const void *data, size_t len)
{
	const uint8_t *p = data, *end = p + len;

	if (len == 0)
		return;
	while (p < end) {
		const uint8_t *lf = memchr(p, '\n', (size_t)(end - p));

		if (lf == NULL) {
			z->octets += (unsigned long long)(end - p);
			z->cr = end[-1] == '\r';
			z->line_start = false;
			return;
		}
		/* the run before the LF, then the LF as CRLF unless a CR
		 * is already there */
		z->octets += (unsigned long long)(lf - p);
		if (lf > p)
			z->cr = lf[-1] == '\r';
		z->octets += z->cr ? 1 : 2;
		z->cr = false;
		z->line_start = true;
		p = lf + 1;
	}
}

unsigned long long pop3_size_result(const struct pop3_size *z)
{
	return z->octets + (z->line_start ? 0 : z->cr ? 1 : 2);
}
