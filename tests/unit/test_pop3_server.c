#include "config.h"
/* test_pop3_server.c - unit tests for libmail/pop3_server.c, the POP3
 * server engine.
 *
 * Scripted conversations: {client input, exact server output} steps, run
 * against a fake application: a fake auth daemon (bob@example.org with
 * password "secret"; "temp" as a password stands for an unreadable
 * table), a fake mailbox of three messages, and fake message files.
 * Every script runs five ways with the same expected output: answers
 * given inside the callbacks; answers given later (queued, then given
 * after the input); input fed and files read one octet at a time; both;
 * and an output buffer that is full every other time the engine asks.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libmail/pop3_server.h"
#include "../../libutil/buf.h"
#include "unit.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- expected responses ------------------------------------------- */

#define GREETING "+OK pop.example.org Yubin POP3 server ready\r\n"
#define CAPA_HEAD "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
#define CAPA_TAIL "IMPLEMENTATION Yubin\r\n.\r\n"
#define CAPA_TLS CAPA_HEAD "USER\r\nSASL PLAIN LOGIN SCRAM-SHA-256\r\n" CAPA_TAIL
#define CAPA_CLEAR CAPA_HEAD "STLS\r\nSASL SCRAM-SHA-256\r\n" CAPA_TAIL
#define CAPA_TRANS CAPA_HEAD CAPA_TAIL
#define PASS_NEEDED "+OK Password required\r\n"
#define LOGGED_IN "+OK Logged in, 3 messages (134 octets)\r\n"
#define BYE "+OK pop.example.org signing off\r\n"
#define OK "+OK\r\n"
#define TLS_GO "+OK Begin TLS negotiation\r\n"
#define STAT_ALL "+OK 3 134\r\n"
#define LIST_ALL "+OK 3 messages (134 octets)\r\n1 41\r\n2 46\r\n3 47\r\n.\r\n"
#define UIDL_ALL "+OK Unique-ID listing follows\r\n1 uid-1\r\n2 uid-2\r\n3 uid-3\r\n.\r\n"
#define RSET_ALL "+OK Mailbox has 3 messages (134 octets)\r\n"

/* the three messages: as the files hold them, and as RETR sends them */
#define MSG1 "Subject: one\n\nHello\n.dot line\n..two\n"
#define MSG2 "From: a\nSubject: two\n\nline1\nline2\nline3\n"
#define MSG3 "Subject: three\r\n\r\nCRLF body\r\nno final newline"
#define RETR1 "+OK 41 octets\r\nSubject: one\r\n\r\nHello\r\n..dot line\r\n...two\r\n.\r\n"
#define RETR2 "+OK 46 octets\r\nFrom: a\r\nSubject: two\r\n\r\nline1\r\nline2\r\nline3\r\n.\r\n"
#define RETR3 "+OK 47 octets\r\nSubject: three\r\n\r\nCRLF body\r\nno final newline\r\n.\r\n"

#define E_UNKNOWN "-ERR Unknown command\r\n"
#define E_TOO_LONG "-ERR Line too long\r\n"
#define E_BAD_CHAR "-ERR NUL or bare CR in command line\r\n"
#define E_BEFORE "-ERR Command not valid before login\r\n"
#define E_AFTER "-ERR Command not valid after login\r\n"
#define E_NO_ARGS "-ERR This command takes no argument\r\n"
#define E_BAD_MSGNUM "-ERR Invalid message number\r\n"
#define E_NO_SUCH "-ERR No such message\r\n"
#define E_DELETED(n) "-ERR Message " n " is already deleted\r\n"
#define E_TOP_SYNTAX "-ERR TOP needs a message number and a line count\r\n"
#define E_UNREADABLE(n) "-ERR [SYS/TEMP] Cannot read message " n ", try again later\r\n"
#define E_TOO_MANY "-ERR Too many errors, closing connection\r\n"
#define E_OVERFLOW "-ERR Too much pipelined input, closing connection\r\n"
#define E_SHUTDOWN "-ERR [SYS/TEMP] Server shutting down, try again later\r\n"
#define E_APOP "-ERR APOP is not supported\r\n"
#define E_USER_OFF "-ERR USER/PASS login is not enabled\r\n"
#define E_USER_SYNTAX "-ERR USER needs a user name\r\n"
#define E_NEED_USER "-ERR Send USER first\r\n"
#define E_PASS_SYNTAX "-ERR PASS needs a password\r\n"
#define E_PLAINTEXT "-ERR Plaintext login requires TLS\r\n"
#define E_NO_LOGIN "-ERR Login is not enabled\r\n"
#define E_AUTH_MECH "-ERR Unsupported authentication mechanism\r\n"
#define E_AUTH_BASE64 "-ERR Invalid base64 data\r\n"
#define E_AUTH_CANCELLED "-ERR Authentication cancelled\r\n"
#define E_AUTH_FAILED "-ERR [AUTH] Authentication failed\r\n"
#define E_AUTH_TEMP "-ERR [SYS/TEMP] Temporary authentication failure, try again later\r\n"
#define E_IN_USE "-ERR [IN-USE] Mailbox in use by another session, try again later\r\n"
#define E_MAILBOX_TEMP "-ERR [SYS/TEMP] Cannot open the mailbox, try again later\r\n"
#define E_MAILBOX_PERM "-ERR [SYS/PERM] Cannot open the mailbox\r\n"
#define E_TLS_ACTIVE "-ERR TLS is already active\r\n"
#define E_NO_STLS "-ERR STLS is not available\r\n"
#define E_UPDATE "-ERR [SYS/TEMP] Some deleted messages were not removed\r\n"

/* base64 of "\0bob@example.org\0secret", "\0bob@example.org\0wrong",
 * "\0bob@example.org\0temp" */
#define PLAIN_GOOD "AGJvYkBleGFtcGxlLm9yZwBzZWNyZXQ="
#define PLAIN_BAD "AGJvYkBleGFtcGxlLm9yZwB3cm9uZw=="
#define PLAIN_TEMP "AGJvYkBleGFtcGxlLm9yZwB0ZW1w"
#define USER_BOB "USER bob@example.org\r\n"
#define LOGIN_BOB USER_BOB "PASS secret\r\n"

#define CLIENT "client.example.net[192.0.2.1]"

/* ---- the fake application ----------------------------------------- */

enum pend { P_NONE, P_AUTH, P_MAILBOX, P_UPDATE };

struct fake {
	struct pop3_session *s;
	struct pop3_server_config config;
	bool async;         /* queue the answers; drain() gives them */
	size_t read_step;   /* read_message gives at most this (0: all asked) */
	bool slow_output;   /* output_full says true every other time */
	bool full_next;
	bool blocked;       /* output_full said true: output_ready owed */
	struct buf out;     /* everything written to the client */
	size_t out_seen;    /* how much of out the steps have checked */
	struct buf log;     /* log lines, each ending in "\n" */
	/* the queued answer */
	enum pend pend;
	int pend_answer;
	char pend_text[64];
	/* counters */
	int closes, auths, steps, cancels, mailbox_opens, opens, msg_closes, updates, starttls_calls;
	/* the login */
	int stage;          /* 1, 2: LOGIN; 10, 11: SCRAM */
	char login_user[64];
	char last_mech[32];
	/* the mailbox */
	const char *const *contents;
	size_t nmsgs;
	bool msg_open;
	size_t msg_index, msg_pos;
	int open_fail;      /* open_message fails for this index (-1: never) */
	long read_fail_at;  /* read_message fails at this offset (-1: never) */
	bool update_ok;
	bool deleted[8];
	/* misbehaviour on demand */
	bool free_on_close, free_in_read, free_in_open, free_in_update, free_in_mailbox, timeout_in_open;
};

static const char *const default_contents[] = { MSG1, MSG2, MSG3 };

static void fake_give(struct fake *f, enum pend kind, int answer, const char *text);

/* answer - now, or later when async. */
static void answer(struct fake *f, enum pend kind, int ans, const char *text)
{
	if (f->async) {
		assert_int_equal(f->pend, P_NONE); /* one request at a time */
		f->pend = kind;
		f->pend_answer = ans;
		snprintf(f->pend_text, sizeof f->pend_text, "%s", text != NULL ? text : "");
		return;
	}
	fake_give(f, kind, ans, text);
}

/* drain - give the queued answers (each may lead to another request). */
static void drain(struct fake *f)
{
	while (f->pend != P_NONE && f->s != NULL) {
		enum pend kind = f->pend;
		char text[64];

		f->pend = P_NONE;
		memcpy(text, f->pend_text, sizeof text);
		fake_give(f, kind, f->pend_answer, text);
	}
}

static void fake_mailbox(struct fake *f, int result)
{
	struct pop3_message msgs[8];
	char uidls[8][32];

	for (size_t i = 0; i < f->nmsgs; i++) {
		struct pop3_size z;

		pop3_size_init(&z);
		pop3_size_add(&z, f->contents[i], strlen(f->contents[i]));
		msgs[i].size = (long long)pop3_size_result(&z);
		snprintf(uidls[i], sizeof uidls[i], "uid-%zu", i + 1);
		msgs[i].uidl = uidls[i];
	}
	pop3_session_mailbox_done(f->s, (enum pop3_mailbox_result)result, msgs, f->nmsgs);
	/* copied: scribble over ours */
	memset(uidls, 'x', sizeof uidls);
}

static void fake_give(struct fake *f, enum pend kind, int ans, const char *text)
{
	switch (kind) {
	case P_AUTH:
		if (ans == POP3_AUTH_OK)
			pop3_session_auth_done(f->s, POP3_AUTH_OK, NULL, 0, text);
		else
			pop3_session_auth_done(f->s, (enum pop3_auth_answer)ans, text, text != NULL ? strlen(text) : 0,
					       NULL);
		break;
	case P_MAILBOX:
		fake_mailbox(f, ans);
		break;
	case P_UPDATE:
		pop3_session_update_done(f->s, ans != 0);
		break;
	case P_NONE:
		break;
	}
}

static void f_write(void *ctx, const void *data, size_t len)
{
	struct fake *f = ctx;

	if (f->closes > 0)
		fail_msg("write after close: \"%.*s\"", (int)len, (const char *)data);
	assert_true(len > 0);
	buf_append(&f->out, data, len);
}

static void f_close(void *ctx)
{
	struct fake *f = ctx;

	assert_int_equal(f->closes, 0);
	f->closes++;
	if (f->free_on_close)
		pop3_session_free(&f->s);
}

static void f_starttls(void *ctx)
{
	struct fake *f = ctx;

	f->starttls_calls++;
}

/* check - the fake auth daemon's verdict on a user and password. */
static void check(struct fake *f, const char *user, const char *pass)
{
	static const char *const users[] = { "bob@example.org", "locked@example.org", "broken@example.org",
					     "gone@example.org" };
	char canon[64];
	size_t i;

	if (strcmp(pass, "temp") == 0) {
		answer(f, P_AUTH, POP3_AUTH_TEMP, NULL);
		return;
	}
	if (strcmp(pass, "challenge") == 0) {
		answer(f, P_AUTH, POP3_AUTH_CONTINUE, "more?");
		return;
	}
	if (strcmp(pass, "encrypt") == 0) {
		answer(f, P_AUTH, POP3_AUTH_ENCRYPT, NULL);
		return;
	}
	for (i = 0; user[i] != '\0' && i + 1 < sizeof canon; i++)
		canon[i] = user[i] >= 'A' && user[i] <= 'Z' ? (char)(user[i] | 0x20) : user[i];
	canon[i] = '\0';
	for (i = 0; i < NELEM(users); i++)
		if (strcmp(canon, users[i]) == 0 && strcmp(pass, "secret") == 0) {
			answer(f, P_AUTH, POP3_AUTH_OK, canon);
			return;
		}
	answer(f, P_AUTH, POP3_AUTH_FAIL, NULL);
}

/* check_plain - "\0user\0password" */
static void check_plain(struct fake *f, const char *p, size_t len)
{
	const char *u = len > 1 && p[0] == '\0' ? memchr(p + 1, '\0', len - 1) : NULL;
	char user[64] = "", pass[64] = "";

	if (u != NULL && (size_t)(u - p) < sizeof user && len - (size_t)(u - p) - 1 < sizeof pass) {
		memcpy(user, p + 1, (size_t)(u - p) - 1);
		memcpy(pass, u + 1, len - (size_t)(u - p) - 1);
	}
	check(f, user, pass);
}

static void f_auth(void *ctx, const char *mech, const void *resp, size_t len, bool has_resp)
{
	struct fake *f = ctx;

	assert_true(has_resp || len == 0);
	f->auths++;
	snprintf(f->last_mech, sizeof f->last_mech, "%s", mech);
	if (strcmp(mech, "LOGIN") == 0) {
		f->stage = 1;
		answer(f, P_AUTH, POP3_AUTH_CONTINUE, "Username:");
	} else if (strcmp(mech, "SCRAM-SHA-256") == 0) {
		f->stage = 10;
		answer(f, P_AUTH, POP3_AUTH_CONTINUE, "r=nonce,s=c2FsdA==,i=4096");
	} else {
		assert_string_equal(mech, "PLAIN");
		f->stage = 0;
		if (!has_resp)
			answer(f, P_AUTH, POP3_AUTH_CONTINUE, "");
		else
			check_plain(f, resp, len);
	}
}

static void f_auth_step(void *ctx, const void *resp, size_t len)
{
	struct fake *f = ctx;
	char text[64] = "";

	f->steps++;
	memcpy(text, resp, len < sizeof text - 1 ? len : sizeof text - 1);
	switch (f->stage) {
	case 1:
		snprintf(f->login_user, sizeof f->login_user, "%s", text);
		f->stage = 2;
		answer(f, P_AUTH, POP3_AUTH_CONTINUE, "Password:");
		break;
	case 2:
		f->stage = 0;
		check(f, f->login_user, text);
		break;
	case 10:
		f->stage = 11;
		if (strcmp(text, "c=biws,r=nonce,p=proof") == 0)
			answer(f, P_AUTH, POP3_AUTH_CONTINUE, "v=signature");
		else
			answer(f, P_AUTH, POP3_AUTH_FAIL, NULL);
		break;
	case 11:
		f->stage = 0;
		answer(f, P_AUTH, len == 0 ? POP3_AUTH_OK : POP3_AUTH_FAIL, len == 0 ? "scram@example.org" : NULL);
		break;
	default:
		check_plain(f, resp, len);
		break;
	}
}

static void f_auth_cancel(void *ctx)
{
	struct fake *f = ctx;

	f->stage = 0;
	f->cancels++;
}

static void f_mailbox_open(void *ctx, const char *user)
{
	struct fake *f = ctx;

	f->mailbox_opens++;
	if (f->free_in_mailbox) {
		pop3_session_free(&f->s);
		return;
	}
	if (strcmp(user, "locked@example.org") == 0)
		answer(f, P_MAILBOX, POP3_MAILBOX_IN_USE, NULL);
	else if (strcmp(user, "broken@example.org") == 0)
		answer(f, P_MAILBOX, POP3_MAILBOX_TEMP, NULL);
	else if (strcmp(user, "gone@example.org") == 0)
		answer(f, P_MAILBOX, POP3_MAILBOX_PERM, NULL);
	else
		answer(f, P_MAILBOX, POP3_MAILBOX_OK, NULL);
}

static int f_open_message(void *ctx, size_t index)
{
	struct fake *f = ctx;

	assert_false(f->msg_open);
	assert_true(index < f->nmsgs);
	assert_false(f->deleted[index]);
	f->opens++;
	if ((int)index == f->open_fail)
		return -1;
	f->msg_open = true;
	f->msg_index = index;
	f->msg_pos = 0;
	if (f->free_in_open)
		pop3_session_free(&f->s);
	if (f->timeout_in_open)
		pop3_session_timeout(f->s);
	return 0;
}

static ssize_t f_read_message(void *ctx, void *buf, size_t max)
{
	struct fake *f = ctx;
	const char *c;
	size_t n;

	assert_true(f->msg_open);
	assert_true(max > 0);
	if (f->free_in_read) {
		pop3_session_free(&f->s);
		return -1;
	}
	c = f->contents[f->msg_index];
	if (f->read_fail_at >= 0 && f->msg_pos >= (size_t)f->read_fail_at)
		return -1;
	n = strlen(c) - f->msg_pos;
	if (n > max)
		n = max;
	if (f->read_step > 0 && n > f->read_step)
		n = f->read_step;
	if (f->read_fail_at >= 0 && f->msg_pos + n > (size_t)f->read_fail_at)
		n = (size_t)f->read_fail_at - f->msg_pos;
	memcpy(buf, c + f->msg_pos, n);
	f->msg_pos += n;
	return (ssize_t)n;
}

static void f_close_message(void *ctx)
{
	struct fake *f = ctx;

	assert_true(f->msg_open);
	f->msg_open = false;
	f->msg_closes++;
}

static bool f_output_full(void *ctx)
{
	struct fake *f = ctx;

	if (!f->slow_output)
		return false;
	f->full_next = !f->full_next;
	if (f->full_next)
		f->blocked = true;
	return f->full_next;
}

static void f_update(void *ctx, const bool *deleted, size_t n)
{
	struct fake *f = ctx;

	assert_int_equal(n, f->nmsgs);
	assert_false(f->msg_open);
	f->updates++;
	memcpy(f->deleted, deleted, n * sizeof *deleted);
	if (f->free_in_update) {
		pop3_session_free(&f->s);
		return;
	}
	answer(f, P_UPDATE, f->update_ok, NULL);
}

static void f_log(void *ctx, const char *line)
{
	struct fake *f = ctx;

	/* already sanitised: printable, one line */
	for (const char *p = line; *p; p++)
		if ((unsigned char)*p < 32 || (unsigned char)*p > 126)
			fail_msg("log line with octet %#x: %s", (unsigned char)*p, line);
	buf_append_str(&f->log, line);
	buf_append_byte(&f->log, '\n');
}

static const struct pop3_server_callbacks fake_callbacks = {
	.write = f_write,
	.close = f_close,
	.starttls = f_starttls,
	.auth = f_auth,
	.auth_step = f_auth_step,
	.auth_cancel = f_auth_cancel,
	.mailbox_open = f_mailbox_open,
	.open_message = f_open_message,
	.read_message = f_read_message,
	.close_message = f_close_message,
	.output_full = f_output_full,
	.update = f_update,
	.log = f_log,
};

static void fake_init(struct fake *f)
{
	memset(f, 0, sizeof *f);
	f->config.hostname = "pop.example.org";
	f->config.sasl_mechs = "PLAIN LOGIN SCRAM-SHA-256";
	f->config.max_errors = 10;
	f->config.stls = true;
	f->config.tls_active = true;
	f->contents = default_contents;
	f->nmsgs = NELEM(default_contents);
	f->open_fail = -1;
	f->read_fail_at = -1;
	f->update_ok = true;
}

/* unblock - what the application does when the output drains. */
static void unblock(struct fake *f)
{
	while (f->blocked && f->s != NULL) {
		f->blocked = false;
		pop3_session_output_ready(f->s);
		drain(f);
	}
}

/* fake_start - the session, and its greeting checked. */
static void fake_start(struct fake *f, const struct pop3_server_callbacks *cb)
{
	f->s = pop3_session_new(&f->config, cb, f, "192.0.2.1", "client.example.net");
	pop3_session_start(f->s);
	unblock(f);
	if (strcmp(buf_cstr(&f->out), GREETING) != 0)
		fail_msg("greeting \"%s\", want \"%s\"", buf_cstr(&f->out), GREETING);
	f->out_seen = f->out.len;
}

static void fake_free(struct fake *f)
{
	pop3_session_free(&f->s);
	assert_null(f->s);
	assert_false(f->msg_open); /* every open message was closed */
	buf_free(&f->out);
	buf_free(&f->log);
}

/* fake_output - what was written since the last call. */
static const char *fake_output(struct fake *f)
{
	const char *p = buf_cstr(&f->out) + f->out_seen;

	f->out_seen = f->out.len;
	return p;
}

/* input_str - a C string as client input; answers and output drained. */
static void input_str(struct fake *f, const char *s)
{
	pop3_session_input(f->s, s, strlen(s));
	drain(f);
	unblock(f);
}

/* log_has - whether this exact line was logged. */
static bool log_has(const struct fake *f, const char *line)
{
	const char *log = buf_cstr(&f->log);
	size_t len = strlen(line);

	for (const char *p = log; (p = strstr(p, line)) != NULL; p++)
		if ((p == log || p[-1] == '\n') && p[len] == '\n')
			return true;
	return false;
}

#define assert_logged(f, line)                                                                     \
	do {                                                                                       \
		if (!log_has((f), (line)))                                                         \
			fail_msg("not logged: \"%s\"\nlog:\n%s", (line), buf_cstr(&(f)->log));     \
	} while (0)

#define assert_output(f, want)                                                                     \
	do {                                                                                       \
		const char *got_ = fake_output(f);                                                 \
		if (strcmp(got_, (want)) != 0)                                                     \
			fail_msg("output\n\"%s\"\nwant\n\"%s\"", got_, (want));                    \
	} while (0)

/* ---- scripts ------------------------------------------------------ */

enum action { A_INPUT, A_TIMEOUT, A_SHUTDOWN, A_TLS_OK, A_TLS_FAIL };

struct step {
	enum action action;
	const char *in;
	size_t in_len; /* 0: strlen(in) */
	const char *out;
};

#define SEND(in, out) { A_INPUT, in, 0, out }
#define SENDB(in, out) { A_INPUT, in, sizeof(in) - 1, out } /* input with NULs */
#define TIMEOUT(out) { A_TIMEOUT, NULL, 0, out }
#define SHUTDOWN(out) { A_SHUTDOWN, NULL, 0, out }
#define TLS_OK(out) { A_TLS_OK, NULL, 0, out }
#define TLS_FAIL(out) { A_TLS_FAIL, NULL, 0, out }

enum mode { M_SYNC, M_ASYNC, M_BYTES, M_BYTES_ASYNC, M_SLOW_OUTPUT, M_COUNT };
static const char *const mode_names[M_COUNT] = { "sync", "async", "bytes", "bytes+async", "slow output" };

struct script {
	const char *name;
	const struct step *steps;
	size_t nsteps;
	void (*setup)(struct fake *f);
	void (*check)(struct fake *f);
};

/* run_step - one step in the given mode; fails on an output mismatch. */
static void run_step(struct fake *f, const char *name, size_t n, const struct step *st, enum mode mode)
{
	size_t len = st->in != NULL ? (st->in_len != 0 ? st->in_len : strlen(st->in)) : 0;
	const char *got;

	if (f->s == NULL) {
		/* freed: nothing more happens */
	} else if (st->action == A_TIMEOUT) {
		pop3_session_timeout(f->s);
	} else if (st->action == A_SHUTDOWN) {
		pop3_session_shutdown(f->s);
	} else if (st->action == A_TLS_OK || st->action == A_TLS_FAIL) {
		pop3_session_tls_done(f->s, st->action == A_TLS_OK);
	} else if (mode == M_BYTES || mode == M_BYTES_ASYNC) {
		for (size_t i = 0; i < len && f->s != NULL; i++) {
			pop3_session_input(f->s, st->in + i, 1);
			drain(f);
		}
	} else {
		/* from an exact-size copy: the engine must not read past it */
		char *copy = malloc(len > 0 ? len : 1);

		assert_non_null(copy);
		memcpy(copy, st->in, len);
		pop3_session_input(f->s, copy, len);
		free(copy);
	}
	drain(f);
	unblock(f);
	got = fake_output(f);
	if (strcmp(got, st->out) != 0)
		fail_msg("%s (%s), step %zu: output\n\"%s\"\nwant\n\"%s\"", name, mode_names[mode], n, got, st->out);
}

static void run_script(const struct script *sc)
{
	for (int mode = 0; mode < M_COUNT; mode++) {
		struct fake f;

		fake_init(&f);
		f.async = mode == M_ASYNC || mode == M_BYTES_ASYNC;
		f.read_step = mode == M_BYTES || mode == M_BYTES_ASYNC ? 1 : mode == M_ASYNC ? 5 : 0;
		f.slow_output = mode == M_SLOW_OUTPUT;
		if (sc->setup != NULL)
			sc->setup(&f);
		fake_start(&f, &fake_callbacks);
		for (size_t i = 0; i < sc->nsteps; i++)
			run_step(&f, sc->name, i, &sc->steps[i], (enum mode)mode);
		if (sc->check != NULL)
			sc->check(&f);
		fake_free(&f);
	}
}

#define SCRIPT(name, setup, check) { #name, name, NELEM(name), setup, check }

/* -- a whole session ------------------------------------------------ */

static const struct step full_session[] = {
	SEND("CAPA\r\n", CAPA_TLS),
	SEND(USER_BOB, PASS_NEEDED),
	SEND("PASS secret\r\n", LOGGED_IN),
	SEND("CAPA\r\n", CAPA_TRANS),
	SEND("STAT\r\n", STAT_ALL),
	SEND("LIST\r\n", LIST_ALL),
	SEND("UIDL\r\n", UIDL_ALL),
	SEND("LIST 2\r\n", "+OK 2 46\r\n"),
	SEND("UIDL 3\r\n", "+OK 3 uid-3\r\n"),
	SEND("RETR 1\r\n", RETR1),
	SEND("retr 2\r\n", RETR2),
	SEND("RETR 3\r\n", RETR3),
	SEND("TOP 2 1\r\n", "+OK Top of message 2 follows\r\nFrom: a\r\nSubject: two\r\n\r\nline1\r\n.\r\n"),
	SEND("TOP 2 0\r\n", "+OK Top of message 2 follows\r\nFrom: a\r\nSubject: two\r\n\r\n.\r\n"),
	SEND("TOP 3 100\r\n", "+OK Top of message 3 follows\r\nSubject: three\r\n\r\nCRLF body\r\nno final newline\r\n"
			      ".\r\n"),
	SEND("NOOP\r\n", OK),
	SEND("DELE 1\r\n", "+OK Message 1 deleted\r\n"),
	SEND("STAT\r\n", "+OK 2 93\r\n"),
	SEND("LIST\r\n", "+OK 2 messages (93 octets)\r\n2 46\r\n3 47\r\n.\r\n"),
	SEND("UIDL\r\n", "+OK Unique-ID listing follows\r\n2 uid-2\r\n3 uid-3\r\n.\r\n"),
	SEND("DELE 1\r\n", E_DELETED("1")),
	SEND("RETR 1\r\n", E_DELETED("1")),
	SEND("LIST 1\r\n", E_DELETED("1")),
	SEND("UIDL 1\r\n", E_DELETED("1")),
	SEND("TOP 1 0\r\n", E_DELETED("1")),
	SEND("RSET\r\n", RSET_ALL),
	SEND("STAT\r\n", STAT_ALL),
	SEND("DELE 3\r\nDELE 2\r\n", "+OK Message 3 deleted\r\n+OK Message 2 deleted\r\n"),
	SEND("LIST\r\n", "+OK 1 message (41 octets)\r\n1 41\r\n.\r\n"),
	SEND("QUIT\r\n", "+OK pop.example.org signing off, 2 messages deleted\r\n"),
	SEND("NOOP\r\n", ""),
};

static void check_full_session(struct fake *f)
{
	assert_int_equal(f->updates, 1);
	assert_false(f->deleted[0]);
	assert_true(f->deleted[1]);
	assert_true(f->deleted[2]);
	assert_int_equal(f->closes, 1);
	assert_int_equal(f->opens, 6);
	assert_int_equal(f->msg_closes, 6);
	assert_string_equal(f->last_mech, "PLAIN");
	assert_true(pop3_session_closed(f->s));
	assert_int_equal(pop3_session_state(f->s), POP3_STATE_CLOSED);
	assert_logged(f, "connect from " CLIENT " (TLS)");
	assert_logged(f, "login from " CLIENT ": user=<bob@example.org> method=USER messages=3 octets=134");
	assert_logged(f, "disconnect from " CLIENT " user=<bob@example.org> retr=3 top=3 dele=3 deleted=2 "
			 "octets=238 errors=5");
}

/* -- pipelining: a whole session in one packet ----------------------- */

static const struct step pipelining[] = {
	SEND("CAPA\r\n" LOGIN_BOB "STAT\r\nRETR 1\r\nLIST\r\nDELE 1\r\nRETR 2\r\nQUIT\r\n",
	     CAPA_TLS PASS_NEEDED LOGGED_IN STAT_ALL RETR1 LIST_ALL "+OK Message 1 deleted\r\n" RETR2
	     "+OK pop.example.org signing off, 1 message deleted\r\n"),
};

static void check_pipelining(struct fake *f)
{
	assert_int_equal(f->updates, 1);
	assert_true(f->deleted[0]);
	assert_false(f->deleted[1]);
	assert_int_equal(f->closes, 1);
}

/* -- QUIT without deletions: no UPDATE call ------------------------- */

static const struct step quit_no_deletions[] = {
	SEND(LOGIN_BOB, PASS_NEEDED LOGGED_IN),
	SEND("DELE 2\r\nRSET\r\n", "+OK Message 2 deleted\r\n" RSET_ALL),
	SEND("QUIT\r\n", BYE),
};

static void check_no_update(struct fake *f)
{
	assert_int_equal(f->updates, 0);
	assert_int_equal(f->closes, 1);
}

/* -- QUIT before login ---------------------------------------------- */

static const struct step quit_early[] = {
	SEND(USER_BOB, PASS_NEEDED),
	SEND("QUIT\r\nUSER x\r\n", BYE),
};

/* -- the UPDATE fails ----------------------------------------------- */

static void update_fails(struct fake *f)
{
	f->update_ok = false;
}

static const struct step update_failure[] = {
	SEND(LOGIN_BOB "DELE 1\r\nQUIT\r\n", PASS_NEEDED LOGGED_IN "+OK Message 1 deleted\r\n" E_UPDATE),
};

static void check_update_failure(struct fake *f)
{
	assert_int_equal(f->updates, 1);
	assert_int_equal(f->closes, 1);
	assert_logged(f, "deletions failed for " CLIENT);
}

/* -- commands in the wrong state, unknown commands ------------------ */

static void many_errors(struct fake *f)
{
	f->config.max_errors = 100;
}

static const struct step wrong_state[] = {
	SEND("STAT\r\n", E_BEFORE),
	SEND("LIST\r\n", E_BEFORE),
	SEND("UIDL 1\r\n", E_BEFORE),
	SEND("RETR 1\r\n", E_BEFORE),
	SEND("TOP 1 1\r\n", E_BEFORE),
	SEND("DELE 1\r\n", E_BEFORE),
	SEND("NOOP\r\n", E_BEFORE),
	SEND("RSET\r\n", E_BEFORE),
	SEND("APOP bob@example.org c4c9334bac560ecc979e58001b3e22fb\r\n", E_APOP),
	SEND("HELO there\r\n", E_UNKNOWN),
	SEND("\r\n", E_UNKNOWN),
	SEND(" USER bob\r\n", E_UNKNOWN),
	SEND("PASS secret\r\n", E_NEED_USER),
	SEND("USER\r\n", E_USER_SYNTAX),
	SEND("USER  \r\n", E_USER_SYNTAX),
	SEND(USER_BOB "PASS\r\n", PASS_NEEDED E_PASS_SYNTAX),
	SEND("PASS wrong\r\n", E_AUTH_FAILED),
	SEND("PASS secret\r\n", E_NEED_USER), /* USER again after a failure */
	SEND("user bob@example.org\r\npass secret\r\n", PASS_NEEDED LOGGED_IN),
	SEND("USER bob\r\n", E_AFTER),
	SEND("PASS x\r\n", E_AFTER),
	SEND("AUTH PLAIN\r\n", E_AFTER),
	SEND("AUTH\r\n", E_AFTER),
	SEND("STLS\r\n", E_AFTER),
	SEND("APOP a b\r\n", E_AFTER),
	SEND("XTND XMIT\r\n", E_UNKNOWN),
	SEND("STAT x\r\n", E_NO_ARGS),
	SEND("NOOP 1\r\n", E_NO_ARGS),
	SEND("STAT \r\n", STAT_ALL), /* a trailing blank is forgiven */
	SEND("QUIT now\r\n", E_NO_ARGS),
	SEND("QUIT\r\n", BYE),
};

static void check_wrong_state(struct fake *f)
{
	assert_int_equal(f->auths, 2);
	assert_logged(f, "login failed from " CLIENT ": method=USER user=<bob@example.org>");
}

/* -- message numbers ------------------------------------------------ */

static const struct step numbers[] = {
	SEND(LOGIN_BOB, PASS_NEEDED LOGGED_IN),
	SEND("RETR 0\r\n", E_NO_SUCH),
	SEND("RETR 4\r\n", E_NO_SUCH),
	SEND("RETR 99999999999999999999\r\n", E_NO_SUCH),
	SEND("LIST 4294967297\r\n", E_NO_SUCH),
	SEND("RETR x\r\n", E_BAD_MSGNUM),
	SEND("RETR -1\r\n", E_BAD_MSGNUM),
	SEND("RETR +1\r\n", E_BAD_MSGNUM),
	SEND("RETR 1 2\r\n", E_BAD_MSGNUM),
	SEND("RETR 1x\r\n", E_BAD_MSGNUM),
	SEND("RETR\r\n", E_BAD_MSGNUM),
	SEND("DELE\r\n", E_BAD_MSGNUM),
	SEND("LIST a\r\n", E_BAD_MSGNUM),
	SEND("UIDL 0\r\n", E_NO_SUCH),
	SEND("TOP 1\r\n", E_TOP_SYNTAX),
	SEND("TOP\r\n", E_TOP_SYNTAX),
	SEND("TOP 1 x\r\n", E_TOP_SYNTAX),
	SEND("TOP 1 -1\r\n", E_TOP_SYNTAX),
	SEND("TOP 1 1 1\r\n", E_TOP_SYNTAX),
	SEND("TOP x 1\r\n", E_BAD_MSGNUM),
	SEND("TOP 9 1\r\n", E_NO_SUCH),
	SEND("LIST 02\r\n", "+OK 2 46\r\n"),
	SEND("LIST  2 \r\n", "+OK 2 46\r\n"),
	SEND("TOP 1 99999999999999999999999\r\n", "+OK Top of message 1 follows\r\nSubject: one\r\n\r\nHello\r\n"
						  "..dot line\r\n...two\r\n.\r\n"),
	SEND("QUIT\r\n", BYE),
};

static void check_numbers(struct fake *f)
{
	assert_int_equal(f->opens, 1);
	assert_int_equal(f->updates, 0);
}

/* -- too many errors ------------------------------------------------ */

static void few_errors(struct fake *f)
{
	f->config.max_errors = 3;
}

static const struct step too_many_errors[] = {
	SEND("STAT\r\n", E_BEFORE),
	SEND("FOO\r\n", E_UNKNOWN),
	SEND("BAR\r\nCAPA\r\n", E_UNKNOWN E_TOO_MANY),
	SEND("CAPA\r\n", ""),
};

static void check_too_many_errors(struct fake *f)
{
	assert_int_equal(f->closes, 1);
	assert_logged(f, "too many errors after BAR from " CLIENT);
}

/* failed logins count: three of them end the session */
static const struct step failed_logins[] = {
	SEND("AUTH PLAIN " PLAIN_BAD "\r\n", E_AUTH_FAILED),
	SEND("USER bob@example.org\r\nPASS nope\r\n", PASS_NEEDED E_AUTH_FAILED),
	SEND("AUTH PLAIN " PLAIN_TEMP "\r\n", E_AUTH_TEMP), /* not the client's fault */
	SEND("AUTH PLAIN " PLAIN_BAD "\r\n", E_AUTH_FAILED E_TOO_MANY),
};

static void check_failed_logins(struct fake *f)
{
	assert_int_equal(f->closes, 1);
	assert_int_equal(f->auths, 4);
	assert_logged(f, "login failed from " CLIENT ": method=PLAIN");
	assert_logged(f, "login failed temporarily from " CLIENT ": method=PLAIN");
}

/* -- SASL ----------------------------------------------------------- */

static const struct step sasl[] = {
	SEND("AUTH\r\n", "+OK Mechanisms follow\r\nPLAIN\r\nLOGIN\r\nSCRAM-SHA-256\r\n.\r\n"),
	SEND("AUTH CRAM-MD5\r\n", E_AUTH_MECH),
	SEND("AUTH PL@IN\r\n", E_AUTH_MECH),
	SEND("AUTH ABCDEFGHIJKLMNOPQRSTU\r\n", E_AUTH_MECH), /* 21 characters */
	SEND("AUTH PLAIN not-base64!\r\n", E_AUTH_BASE64),
	SEND("AUTH PLAIN " PLAIN_GOOD "x\r\n", E_AUTH_BASE64), /* not canonical */
	SEND("AUTH PLAIN =\r\n", E_AUTH_FAILED),               /* empty */
	/* LOGIN, cancelled at the password */
	SEND("AUTH LOGIN\r\n", "+ VXNlcm5hbWU6\r\n"),
	SEND("Ym9iQGV4YW1wbGUub3Jn\r\n", "+ UGFzc3dvcmQ6\r\n"),
	SEND("*\r\n", E_AUTH_CANCELLED),
	/* a response that is not base64 ends the exchange */
	SEND("AUTH LOGIN\r\n", "+ VXNlcm5hbWU6\r\n"),
	SEND("bob@example.org\r\n", E_AUTH_BASE64),
	/* bad only at its end, once the decoder has begun */
	SEND("AUTH LOGIN\r\n", "+ VXNlcm5hbWU6\r\n"),
	SEND("Ym9iQGV4YW1wbGUub3Jn!!!!\r\n", E_AUTH_BASE64),
	SEND("NOOP\r\n", E_BEFORE),
	/* SCRAM: a final server message, answered with an empty line */
	SEND("AUTH SCRAM-SHA-256 biwsbj1ib2Iscj1ub25jZQ==\r\n", "+ cj1ub25jZSxzPWMyRnNkQT09LGk9NDA5Ng==\r\n"),
	SEND("Yz1iaXdzLHI9bm9uY2UscD1wcm9vZg==\r\n", "+ dj1zaWduYXR1cmU=\r\n"),
	SEND("\r\n", "+OK Logged in, 3 messages (134 octets)\r\n"),
	SEND("AUTH PLAIN " PLAIN_GOOD "\r\n", E_AFTER),
};

static void check_sasl(struct fake *f)
{
	assert_int_equal(f->cancels, 3);
	assert_string_equal(pop3_session_user(f->s), "scram@example.org");
	assert_logged(f, "login from " CLIENT ": user=<scram@example.org> method=SCRAM-SHA-256 messages=3 octets=134");
}

static const struct step sasl_plain[] = {
	/* PLAIN without an initial response: an empty challenge */
	SEND("AUTH plain\r\n", "+ \r\n"),
	SEND(PLAIN_BAD "\r\n", E_AUTH_FAILED),
	SEND("AUTH PLAIN\r\n" PLAIN_GOOD "\r\nSTAT\r\n", "+ \r\n" LOGGED_IN STAT_ALL),
};

static const struct step sasl_login_pipelined[] = {
	/* LOGIN with the answers pipelined: each waits its turn */
	SEND(USER_BOB "AUTH LOGIN\r\nQm9iQEV4YW1wbGUuT1JH\r\nc2VjcmV0\r\nSTAT\r\n",
	     PASS_NEEDED "+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\n" LOGGED_IN STAT_ALL),
	SEND("PASS secret\r\n", E_AFTER),
};

static void check_sasl_login(struct fake *f)
{
	/* the canonical name from the auth daemon, not the typed one */
	assert_string_equal(pop3_session_user(f->s), "bob@example.org");
	assert_string_equal(f->last_mech, "LOGIN");
}

/* USER/PASS answered with a challenge (auth and we disagree) */
static const struct step userpass_challenge[] = {
	SEND(USER_BOB "PASS challenge\r\n", PASS_NEEDED E_AUTH_TEMP),
	SEND(USER_BOB "PASS encrypt\r\n", PASS_NEEDED E_PLAINTEXT),
	SEND(USER_BOB "PASS secret\r\n", PASS_NEEDED LOGGED_IN),
};

static void check_userpass_challenge(struct fake *f)
{
	assert_int_equal(f->cancels, 1);
	assert_logged(f, "login: unexpected challenge from " CLIENT ": method=USER user=<bob@example.org>");
}

/* -- the mailbox cannot be had -------------------------------------- */

static const struct step mailbox_results[] = {
	SEND("USER locked@example.org\r\nPASS secret\r\n", PASS_NEEDED E_IN_USE),
	SEND("STAT\r\n", E_BEFORE),
	SEND("USER broken@example.org\r\nPASS secret\r\n", PASS_NEEDED E_MAILBOX_TEMP),
	SEND("USER gone@example.org\r\nPASS secret\r\n", PASS_NEEDED E_MAILBOX_PERM),
	SEND(LOGIN_BOB, PASS_NEEDED LOGGED_IN),
};

static void check_mailbox_results(struct fake *f)
{
	assert_int_equal(f->mailbox_opens, 4);
	assert_logged(f, "mailbox in use for " CLIENT ": user=<locked@example.org>");
	assert_logged(f, "mailbox unavailable for " CLIENT ": user=<broken@example.org>");
	assert_string_equal(pop3_session_user(f->s), "bob@example.org");
}

/* -- STLS, and logins before it ------------------------------------- */

static void clear_text(struct fake *f)
{
	f->config.tls_active = false;
}

static const struct step stls[] = {
	SEND("CAPA\r\n", CAPA_CLEAR),
	SEND(USER_BOB, E_PLAINTEXT),
	SEND("PASS secret\r\n", E_NEED_USER),
	SEND("AUTH PLAIN " PLAIN_GOOD "\r\n", E_PLAINTEXT),
	SEND("AUTH LOGIN\r\n", E_PLAINTEXT),
	SEND("AUTH\r\n", "+OK Mechanisms follow\r\nSCRAM-SHA-256\r\n.\r\n"),
	SEND("STLS extra\r\n", E_NO_ARGS),
	/* the injection: commands in the same packet as STLS */
	SEND("STLS\r\nUSER evil@example.org\r\nPASS evil\r\n", TLS_GO),
	SEND("STAT\r\n", ""), /* before the handshake: thrown away */
	TLS_OK(""),
	SEND("PASS evil\r\n", E_NEED_USER),
	SEND("CAPA\r\n", CAPA_TLS),
	SEND("STLS\r\n", E_TLS_ACTIVE),
	SEND(LOGIN_BOB, PASS_NEEDED LOGGED_IN),
};

static void check_stls(struct fake *f)
{
	assert_int_equal(f->starttls_calls, 1);
	assert_int_equal(f->auths, 1);
	assert_true(pop3_session_tls(f->s));
	assert_logged(f, "TLS established with " CLIENT);
	/* "USER evil@example.org\r\nPASS evil\r\n" with STLS, "STAT\r\n" after */
	assert_logged(f, "discarded 40 octets sent after STLS by " CLIENT);
}

static const struct step stls_failed[] = {
	SEND(USER_BOB "STLS\r\n", E_PLAINTEXT TLS_GO),
	TLS_FAIL(""),
	SEND("CAPA\r\n", ""),
};

static void check_stls_failed(struct fake *f)
{
	assert_int_equal(f->closes, 1);
	assert_false(pop3_session_tls(f->s));
	assert_logged(f, "TLS handshake failed with " CLIENT);
}

/* plaintext logins allowed by the operator */
static void clear_text_allowed(struct fake *f)
{
	f->config.tls_active = false;
	f->config.plaintext_auth = true;
}

static const struct step plaintext_allowed[] = {
	SEND("CAPA\r\n", CAPA_HEAD "STLS\r\nUSER\r\nSASL PLAIN LOGIN SCRAM-SHA-256\r\n" CAPA_TAIL),
	SEND(LOGIN_BOB, PASS_NEEDED LOGGED_IN),
};

/* STLS not configured, and no login configured at all */
static void no_stls_no_login(struct fake *f)
{
	f->config.tls_active = false;
	f->config.stls = false;
	f->config.sasl_mechs = NULL;
}

static const struct step nothing_offered[] = {
	SEND("CAPA\r\n", CAPA_TRANS),
	SEND("STLS\r\n", E_NO_STLS),
	SEND(USER_BOB, E_USER_OFF),
	SEND("AUTH PLAIN " PLAIN_GOOD "\r\n", E_NO_LOGIN),
	SEND("AUTH\r\n", "+OK Mechanisms follow\r\n.\r\n"),
};

/* SCRAM only: no USER/PASS, whatever the connection */
static void scram_only(struct fake *f)
{
	f->config.sasl_mechs = "scram-sha-256 CRAM-MD5";
}

static const struct step scram_only_session[] = {
	SEND("CAPA\r\n", CAPA_HEAD "SASL SCRAM-SHA-256\r\n" CAPA_TAIL),
	SEND(USER_BOB, E_USER_OFF),
	SEND("AUTH PLAIN " PLAIN_GOOD "\r\n", E_AUTH_MECH),
	SEND("AUTH CRAM-MD5\r\n", E_AUTH_MECH),
};

/* -- bad octets ----------------------------------------------------- */

static const struct step bad_octets[] = {
	SENDB("US\0R bob\r\n", E_BAD_CHAR),
	SEND("USER b\rob\r\n", E_BAD_CHAR),
	SEND("CAPA\n", CAPA_TLS), /* a bare LF ends a command line too */
	SEND("NOOP\r\r\n", E_BAD_CHAR),
};

/* -- timeouts and shutdown ------------------------------------------ */

static const struct step timeout_session[] = {
	SEND(LOGIN_BOB "DELE 1\r\n", PASS_NEEDED LOGGED_IN "+OK Message 1 deleted\r\n"),
	TIMEOUT(""), /* RFC 1939 3: no response, no UPDATE */
	SEND("QUIT\r\n", ""),
};

static void check_timeout(struct fake *f)
{
	assert_int_equal(f->closes, 1);
	assert_int_equal(f->updates, 0);
	assert_logged(f, "timeout after DELE from " CLIENT);
}

static const struct step shutdown_session[] = {
	SEND(LOGIN_BOB "DELE 1\r\n", PASS_NEEDED LOGGED_IN "+OK Message 1 deleted\r\n"),
	SHUTDOWN(E_SHUTDOWN),
	SEND("QUIT\r\n", ""),
};

static void check_shutdown(struct fake *f)
{
	assert_int_equal(f->closes, 1);
	assert_int_equal(f->updates, 0);
}

/* -- message content on the wire ------------------------------------ */

static const char *const odd_contents[] = {
	"",                                           /* 1: empty */
	"no newline at all",                          /* 2 */
	".\n..\n.x\nx.\n.\r\n\n.",                    /* 3: dots */
	"Subject: x\nX-Header: y\n",                  /* 4: no body */
	"Subject: crlf\r\n\r\nb1\r\nb2\r\n",          /* 5: CRLF in the file */
	"A: b\n\nbare\rcr\r\n\r\r\nend\r",            /* 6: bare CRs */
	"\nbody first\nsecond\n",                     /* 7: empty header */
};

static void odd_mailbox(struct fake *f)
{
	f->contents = odd_contents;
	f->nmsgs = NELEM(odd_contents);
}

static const struct step content[] = {
	SEND(LOGIN_BOB, PASS_NEEDED "+OK Logged in, 7 messages (139 octets)\r\n"),
	SEND("RETR 1\r\n", "+OK 0 octets\r\n.\r\n"),
	SEND("TOP 1 5\r\n", "+OK Top of message 1 follows\r\n.\r\n"),
	SEND("RETR 2\r\n", "+OK 19 octets\r\nno newline at all\r\n.\r\n"),
	SEND("RETR 3\r\n", "+OK 23 octets\r\n..\r\n...\r\n..x\r\nx.\r\n..\r\n\r\n..\r\n.\r\n"),
	SEND("TOP 3 1\r\n", "+OK Top of message 3 follows\r\n..\r\n...\r\n..x\r\nx.\r\n..\r\n\r\n..\r\n.\r\n"),
	SEND("TOP 4 0\r\n", "+OK Top of message 4 follows\r\nSubject: x\r\nX-Header: y\r\n.\r\n"),
	SEND("TOP 5 1\r\n", "+OK Top of message 5 follows\r\nSubject: crlf\r\n\r\nb1\r\n.\r\n"),
	SEND("RETR 5\r\n", "+OK 25 octets\r\nSubject: crlf\r\n\r\nb1\r\nb2\r\n.\r\n"),
	SEND("RETR 6\r\n", "+OK 25 octets\r\nA: b\r\n\r\nbare\rcr\r\n\r\r\nend\r\n.\r\n"),
	SEND("TOP 6 1\r\n", "+OK Top of message 6 follows\r\nA: b\r\n\r\nbare\rcr\r\n.\r\n"),
	SEND("TOP 7 1\r\n", "+OK Top of message 7 follows\r\n\r\nbody first\r\n.\r\n"),
	SEND("LIST\r\n", "+OK 7 messages (139 octets)\r\n1 0\r\n2 19\r\n3 23\r\n4 25\r\n5 25\r\n6 25\r\n7 22\r\n"
			 ".\r\n"),
};

static void check_content(struct fake *f)
{
	/* the listed sizes (pop3_size) are what RETR sent: no mismatch */
	assert_null(strstr(buf_cstr(&f->log), "listed"));
}

/* -- messages that cannot be read ----------------------------------- */

static void unreadable_2(struct fake *f)
{
	f->open_fail = 1;
}

static const struct step unreadable[] = {
	SEND(LOGIN_BOB "RETR 2\r\nTOP 2 0\r\nRETR 1\r\n",
	     PASS_NEEDED LOGGED_IN E_UNREADABLE("2") E_UNREADABLE("2") RETR1),
	SEND("DELE 2\r\nQUIT\r\n", "+OK Message 2 deleted\r\n+OK pop.example.org signing off, 1 message deleted\r\n"),
};

static void check_unreadable(struct fake *f)
{
	assert_logged(f, "cannot open message 2 for " CLIENT);
	assert_int_equal(f->opens, 3);
	assert_int_equal(f->msg_closes, 1);
	assert_true(f->deleted[1]);
}

static void read_fails_at_once(struct fake *f)
{
	f->read_fail_at = 0;
}

static const struct step read_error_first[] = {
	SEND(LOGIN_BOB "RETR 1\r\nNOOP\r\n", PASS_NEEDED LOGGED_IN E_UNREADABLE("1") OK),
};

static void check_read_error_first(struct fake *f)
{
	assert_int_equal(f->closes, 0);
	assert_int_equal(f->msg_closes, 1);
	assert_logged(f, "cannot read message 1 for " CLIENT);
}

static const struct script scripts[] = {
	SCRIPT(full_session, many_errors, check_full_session),
	SCRIPT(pipelining, NULL, check_pipelining),
	SCRIPT(quit_no_deletions, NULL, check_no_update),
	SCRIPT(quit_early, NULL, check_no_update),
	SCRIPT(update_failure, update_fails, check_update_failure),
	SCRIPT(wrong_state, many_errors, check_wrong_state),
	SCRIPT(numbers, many_errors, check_numbers),
	SCRIPT(too_many_errors, few_errors, check_too_many_errors),
	SCRIPT(failed_logins, few_errors, check_failed_logins),
	SCRIPT(sasl, many_errors, check_sasl),
	SCRIPT(sasl_plain, NULL, NULL),
	SCRIPT(sasl_login_pipelined, NULL, check_sasl_login),
	SCRIPT(userpass_challenge, NULL, check_userpass_challenge),
	SCRIPT(mailbox_results, NULL, check_mailbox_results),
	SCRIPT(stls, clear_text, check_stls),
	SCRIPT(stls_failed, clear_text, check_stls_failed),
	SCRIPT(plaintext_allowed, clear_text_allowed, NULL),
	SCRIPT(nothing_offered, no_stls_no_login, NULL),
	SCRIPT(scram_only_session, scram_only, NULL),
	SCRIPT(bad_octets, NULL, NULL),
	SCRIPT(timeout_session, NULL, check_timeout),
	SCRIPT(shutdown_session, NULL, check_shutdown),
	SCRIPT(content, odd_mailbox, check_content),
	SCRIPT(unreadable, unreadable_2, check_unreadable),
	SCRIPT(read_error_first, read_fails_at_once, check_read_error_first),
};

static void test_scripts(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(scripts); i++)
		run_script(&scripts[i]);
}

/* ---- single tests ------------------------------------------------- */

/* repeat - prefix, n copies of c, suffix (new memory). */
static char *repeat(const char *prefix, char c, size_t n, const char *suffix)
{
	size_t a = strlen(prefix), b = strlen(suffix);
	char *s = malloc(a + n + b + 1);

	assert_non_null(s);
	memcpy(s, prefix, a);
	memset(s + a, c, n);
	memcpy(s + a + n, suffix, b + 1);
	return s;
}

/* test_line_length - 255 octets with CRLF is the limit (RFC 2449 4);
 * AUTH lines and SASL responses may be 12288; a line with no end in
 * sight is answered at once and skipped to its end. */
static void test_line_length(void **state)
{
	struct fake f;
	char *line;

	(void)state;
	fake_init(&f);
	f.config.max_errors = 100;
	fake_start(&f, &fake_callbacks);
	line = repeat("USER ", 'u', 255 - 7, "\r\n"); /* 255 with CRLF */
	input_str(&f, line);
	assert_output(&f, PASS_NEEDED);
	free(line);
	line = repeat("USER ", 'u', 256 - 7, "\r\n");
	input_str(&f, line);
	assert_output(&f, E_TOO_LONG);
	free(line);
	line = repeat("PASS ", 'p', 300, "\n");
	input_str(&f, line);
	assert_output(&f, E_TOO_LONG);
	free(line);
	/* no line end within 12288 octets: answered before the end */
	line = repeat("", 'x', 12288, "");
	input_str(&f, line);
	assert_output(&f, E_TOO_LONG);
	input_str(&f, line);
	assert_output(&f, "");
	input_str(&f, "xx\r\nCAPA\r\n"); /* the rest of it, then a command */
	assert_output(&f, CAPA_TLS);
	free(line);
	/* a long initial response is fine (12288 with CRLF) */
	line = repeat("AUTH PLAIN ", 'A', 12288 - 13, "\r\n");
	input_str(&f, line);
	assert_output(&f, E_AUTH_BASE64);
	free(line);
	line = repeat("AUTH PLAIN ", 'A', 12000, "\r\n");
	input_str(&f, line);
	assert_output(&f, E_AUTH_FAILED);
	free(line);
	line = repeat("AUTH PLAIN ", 'A', 12288 - 12, "\r\n"); /* one more */
	input_str(&f, line);
	assert_output(&f, E_TOO_LONG);
	free(line);
	/* an overlong SASL response ends the exchange */
	input_str(&f, "AUTH LOGIN\r\n");
	assert_output(&f, "+ VXNlcm5hbWU6\r\n");
	line = repeat("", 'A', 13000, "");
	input_str(&f, line);
	assert_output(&f, E_TOO_LONG);
	assert_int_equal(f.cancels, 1);
	input_str(&f, "AAAA\r\nCAPA\r\n");
	assert_output(&f, CAPA_TLS);
	free(line);
	/* and so does one whose line end comes in the same packet */
	input_str(&f, "AUTH LOGIN\r\n");
	assert_output(&f, "+ VXNlcm5hbWU6\r\n");
	line = repeat("", 'A', 12288 - 1, "\r\nCAPA\r\n");
	input_str(&f, line);
	assert_output(&f, E_TOO_LONG CAPA_TLS);
	assert_int_equal(f.cancels, 2);
	assert_int_equal(f.steps, 0);
	free(line);
	/* 12288 with the CRLF is still fine */
	input_str(&f, "AUTH LOGIN\r\n");
	assert_output(&f, "+ VXNlcm5hbWU6\r\n");
	line = repeat("", 'A', 12288 - 2, "\r\n");
	input_str(&f, line);
	assert_output(&f, E_AUTH_BASE64); /* 12286 is no multiple of 4 */
	free(line);
	fake_free(&f);
}

/* test_async_order - while an answer is pending nothing else is
 * answered; the buffered commands run, in order, after it. */
static void test_async_order(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f);
	f.async = true;
	fake_start(&f, &fake_callbacks);
	pop3_session_input(f.s, LOGIN_BOB "STAT\r\n", strlen(LOGIN_BOB "STAT\r\n"));
	assert_output(&f, PASS_NEEDED);
	assert_int_equal(f.pend, P_AUTH);
	pop3_session_input(f.s, "LIST 1\r\nQUIT\r\n", 14);
	assert_output(&f, "");
	f.pend = P_NONE;
	pop3_session_auth_done(f.s, POP3_AUTH_OK, NULL, 0, "bob@example.org");
	assert_output(&f, "");
	assert_int_equal(f.pend, P_MAILBOX);
	assert_int_equal(pop3_session_state(f.s), POP3_STATE_AUTHORIZATION);
	assert_null(pop3_session_user(f.s));
	drain(&f);
	assert_output(&f, LOGGED_IN STAT_ALL "+OK 1 41\r\n" BYE);
	fake_free(&f);
}

/* test_output_flow - output_full stops everything, also in the middle
 * of a message, until output_ready. */
static void test_output_flow(void **state)
{
	struct fake f;
	struct pop3_server_callbacks cb = fake_callbacks;

	(void)state;
	fake_init(&f);
	f.read_step = 4;
	fake_start(&f, &cb);
	input_str(&f, LOGIN_BOB);
	assert_output(&f, PASS_NEEDED LOGGED_IN);
	f.slow_output = true;
	f.full_next = false; /* the next call says full */
	pop3_session_input(f.s, "RETR 1\r\nNOOP\r\n", 14);
	assert_output(&f, "");
	assert_true(f.blocked);
	for (int i = 0; i < 1000 && f.blocked; i++) {
		const char *got;

		f.blocked = false;
		pop3_session_output_ready(f.s);
		got = fake_output(&f);
		assert_true(strlen(got) <= 64); /* one slice at a time */
	}
	assert_false(f.blocked);
	assert_string_equal(buf_cstr(&f.out) + strlen(GREETING PASS_NEEDED LOGGED_IN), RETR1 OK);
	pop3_session_output_ready(f.s); /* harmless */
	fake_free(&f);
}

/* test_big_listing - LIST and UIDL of a big mailbox go out in slices,
 * each asked for with output_full. */
static void test_big_listing(void **state)
{
	enum { N = 3000 };
	static const char pipelined[] = "PASS secret\r\nDELE 2\r\nLIST\r\nUIDL\r\nSTAT\r\n";
	struct pop3_message *msgs = calloc(N, sizeof *msgs);
	char (*uidls)[16] = calloc(N, sizeof *uidls);
	struct buf want = BUF_INIT, got = BUF_INIT;
	struct fake f;
	int slices = 0;

	(void)state;
	assert_non_null(msgs);
	assert_non_null(uidls);
	for (size_t i = 0; i < N; i++) {
		msgs[i].size = (long long)i * 7;
		snprintf(uidls[i], sizeof uidls[i], "u%zu", i);
		msgs[i].uidl = uidls[i];
	}
	fake_init(&f);
	f.async = true;
	fake_start(&f, &fake_callbacks);
	input_str(&f, USER_BOB);
	pop3_session_input(f.s, pipelined, strlen(pipelined));
	f.pend = P_NONE;
	pop3_session_auth_done(f.s, POP3_AUTH_OK, NULL, 0, "bob@example.org");
	f.pend = P_NONE;
	f.slow_output = true;
	pop3_session_mailbox_done(f.s, POP3_MAILBOX_OK, msgs, N);
	while (f.blocked) {
		buf_append_str(&got, fake_output(&f));
		slices++;
		f.blocked = false;
		pop3_session_output_ready(f.s);
	}
	buf_append_str(&got, fake_output(&f));
	buf_printf(&want, "%s+OK Logged in, %d messages (%lld octets)\r\n+OK Message 2 deleted\r\n", PASS_NEEDED,
		   N, 7LL * N * (N - 1) / 2);
	buf_printf(&want, "+OK %d messages (%lld octets)\r\n", N - 1, 7LL * N * (N - 1) / 2 - 7);
	for (size_t i = 0; i < N; i++)
		if (i != 1)
			buf_printf(&want, "%zu %lld\r\n", i + 1, (long long)i * 7);
	buf_append_str(&want, ".\r\n+OK Unique-ID listing follows\r\n");
	for (size_t i = 0; i < N; i++)
		if (i != 1)
			buf_printf(&want, "%zu u%zu\r\n", i + 1, i);
	buf_printf(&want, ".\r\n+OK %d %lld\r\n", N - 1, 7LL * N * (N - 1) / 2 - 7);
	assert_string_equal(buf_cstr(&got), buf_cstr(&want));
	assert_true(slices > 6); /* 8 KiB slices of ~60 KiB */
	buf_free(&want);
	buf_free(&got);
	free(msgs);
	free(uidls);
	fake_free(&f);
}

/* test_read_error_midway - after "+OK" a read error can only end the
 * session: the client must not take a cut message for a whole one. */
static void test_read_error_midway(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f);
	f.read_step = 8;
	f.read_fail_at = 16;
	fake_start(&f, &fake_callbacks);
	input_str(&f, LOGIN_BOB "DELE 2\r\nRETR 1\r\nQUIT\r\n");
	assert_output(&f, PASS_NEEDED LOGGED_IN "+OK Message 2 deleted\r\n+OK 41 octets\r\nSubject: one\r\n\r\nHe");
	assert_int_equal(f.closes, 1);
	assert_int_equal(f.msg_closes, 1);
	assert_int_equal(f.updates, 0);
	assert_logged(&f, "read error in message 1 after 18 octets for " CLIENT "; closing");
	fake_free(&f);
}

/* test_free_in_callback - the application may free the session from
 * inside any callback; nothing is called after that, but close_message
 * is owed for every successful open. */
static void test_free_in_callback(void **state)
{
	struct fake f;

	(void)state;
	/* from close */
	fake_init(&f);
	f.free_on_close = true;
	fake_start(&f, &fake_callbacks);
	input_str(&f, "QUIT\r\nCAPA\r\n");
	assert_null(f.s);
	assert_output(&f, BYE);
	fake_free(&f);

	/* from read_message */
	fake_init(&f);
	fake_start(&f, &fake_callbacks);
	input_str(&f, LOGIN_BOB);
	fake_output(&f);
	f.free_in_read = true;
	input_str(&f, "RETR 1\r\nQUIT\r\n");
	assert_null(f.s);
	assert_output(&f, "");
	assert_int_equal(f.msg_closes, 1);
	assert_int_equal(f.closes, 0);
	assert_logged(&f, "lost connection after RETR from " CLIENT);
	fake_free(&f);

	/* from open_message: the message it opened is closed right after */
	fake_init(&f);
	fake_start(&f, &fake_callbacks);
	input_str(&f, LOGIN_BOB);
	f.free_in_open = true;
	input_str(&f, "RETR 1\r\n");
	assert_null(f.s);
	assert_int_equal(f.msg_closes, 1);
	fake_free(&f);

	/* a timeout from inside open_message: closed too */
	fake_init(&f);
	fake_start(&f, &fake_callbacks);
	input_str(&f, LOGIN_BOB);
	fake_output(&f);
	f.timeout_in_open = true;
	input_str(&f, "RETR 1\r\n");
	assert_output(&f, "");
	assert_int_equal(f.msg_closes, 1);
	assert_int_equal(f.closes, 1);
	fake_free(&f);

	/* from update: the deletions are the application's business now */
	fake_init(&f);
	fake_start(&f, &fake_callbacks);
	f.free_in_update = true;
	input_str(&f, LOGIN_BOB "DELE 3\r\nQUIT\r\n");
	assert_null(f.s);
	assert_int_equal(f.updates, 1);
	assert_true(f.deleted[2]);
	fake_free(&f);

	/* from mailbox_open */
	fake_init(&f);
	fake_start(&f, &fake_callbacks);
	f.free_in_mailbox = true;
	input_str(&f, LOGIN_BOB "STAT\r\n");
	assert_null(f.s);
	assert_output(&f, PASS_NEEDED);
	fake_free(&f);
}

/* test_dropped - a connection that goes away deletes nothing, gives the
 * open message back, and cancels a login under way. */
static void test_dropped(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f);
	f.slow_output = true;
	f.read_step = 1;
	fake_start(&f, &fake_callbacks);
	input_str(&f, LOGIN_BOB "DELE 1\r\n");
	fake_output(&f);
	f.full_next = false;
	pop3_session_input(f.s, "RETR 2\r\n", 8);
	pop3_session_output_ready(f.s);
	assert_true(f.msg_open);
	pop3_session_free(&f.s);
	assert_int_equal(f.msg_closes, 1);
	assert_int_equal(f.updates, 0);
	assert_int_equal(f.closes, 0);
	assert_logged(&f, "disconnect from " CLIENT " user=<bob@example.org> retr=1 top=0 dele=1 deleted=0 "
			  "octets=0 errors=0");
	fake_free(&f);

	fake_init(&f);
	f.async = true;
	fake_start(&f, &fake_callbacks);
	pop3_session_input(f.s, "AUTH LOGIN\r\n", 12);
	assert_int_equal(f.pend, P_AUTH);
	f.pend = P_NONE;
	pop3_session_free(&f.s);
	assert_int_equal(f.cancels, 1);
	fake_free(&f);

	/* in the middle of a SASL exchange, by a timeout */
	fake_init(&f);
	fake_start(&f, &fake_callbacks);
	input_str(&f, "AUTH LOGIN\r\n");
	pop3_session_timeout(f.s);
	assert_int_equal(f.cancels, 1);
	assert_int_equal(f.closes, 1);
	fake_free(&f);
}

/* test_late_answers - answers that arrive after the session ended are
 * ignored. */
static void test_late_answers(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f);
	f.async = true;
	fake_start(&f, &fake_callbacks);
	input_str(&f, "USER bob@example.org\r\n");
	pop3_session_input(f.s, "PASS secret\r\n", 13);
	assert_int_equal(f.pend, P_AUTH);
	f.pend = P_NONE;
	pop3_session_auth_done(f.s, POP3_AUTH_OK, NULL, 0, "bob@example.org");
	assert_int_equal(f.pend, P_MAILBOX);
	f.pend = P_NONE;
	pop3_session_shutdown(f.s);
	assert_output(&f, PASS_NEEDED E_SHUTDOWN);
	fake_mailbox(&f, POP3_MAILBOX_OK); /* too late */
	pop3_session_auth_done(f.s, POP3_AUTH_FAIL, NULL, 0, NULL);
	pop3_session_update_done(f.s, true);
	pop3_session_tls_done(f.s, true);
	assert_output(&f, "");
	assert_int_equal(pop3_session_state(f.s), POP3_STATE_CLOSED);
	assert_null(pop3_session_user(f.s));
	fake_free(&f);

	/* shut down in the middle of a message: no -ERR inside it */
	fake_init(&f);
	f.slow_output = true;
	f.read_step = 1;
	fake_start(&f, &fake_callbacks);
	input_str(&f, LOGIN_BOB);
	fake_output(&f);
	f.full_next = false;
	pop3_session_input(f.s, "RETR 2\r\n", 8); /* blocked before the command */
	assert_output(&f, "");
	f.blocked = false;
	pop3_session_output_ready(f.s); /* the command runs, blocked before the first slice */
	assert_true(f.msg_open);
	assert_output(&f, "");
	f.blocked = false;
	pop3_session_output_ready(f.s);
	assert_output(&f, "+OK 46 octets\r\nF");
	pop3_session_shutdown(f.s);
	assert_output(&f, "");
	assert_int_equal(f.msg_closes, 1);
	assert_int_equal(f.closes, 1);
	fake_free(&f);
}

/* test_before_start - input before the greeting waits for it. */
static void test_before_start(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f);
	f.s = pop3_session_new(&f.config, &fake_callbacks, &f, "192.0.2.1", "client.example.net");
	pop3_session_input(f.s, "CAPA\r\n", 6);
	assert_string_equal(buf_cstr(&f.out), "");
	pop3_session_start(f.s);
	assert_string_equal(buf_cstr(&f.out), GREETING CAPA_TLS);
	fake_free(&f);

	/* shut down before it started: the -ERR instead of the greeting */
	fake_init(&f);
	f.s = pop3_session_new(&f.config, &fake_callbacks, &f, NULL, NULL);
	pop3_session_shutdown(f.s);
	pop3_session_start(f.s);
	pop3_session_input(f.s, "CAPA\r\n", 6);
	assert_string_equal(buf_cstr(&f.out), E_SHUTDOWN);
	assert_int_equal(f.closes, 1);
	fake_free(&f);

	/* freed before it ever started: nothing logged, nothing called */
	fake_init(&f);
	f.s = pop3_session_new(&f.config, &fake_callbacks, &f, NULL, NULL);
	pop3_session_free(&f.s);
	assert_string_equal(buf_cstr(&f.log), "");
	fake_free(&f);
}

/* test_input_flow - input buffered while an answer is pending pauses
 * reading past POP3_INPUT_HIGH; without flow control the engine gives
 * up at POP3_INPUT_MAX. */
static int pauses, resumes;

static void f_flow(void *ctx, bool paused)
{
	(void)ctx;
	if (paused)
		pauses++;
	else
		resumes++;
}

static void test_input_flow(void **state)
{
	struct pop3_server_callbacks cb = fake_callbacks;
	struct buf b = BUF_INIT;
	struct fake f;

	(void)state;
	for (int i = 0; i < 4096; i++)
		buf_append_str(&b, "NOOP\r\n");
	cb.flow = f_flow;
	fake_init(&f);
	f.async = true;
	fake_start(&f, &cb);
	input_str(&f, USER_BOB);
	pop3_session_input(f.s, "PASS secret\r\n", 13);
	pop3_session_input(f.s, b.data, b.len); /* 24 KiB */
	assert_int_equal(pauses, 1);
	drain(&f);
	assert_int_equal(resumes, 1);
	assert_int_equal(strlen(fake_output(&f)), strlen(PASS_NEEDED LOGGED_IN) + 4096 * strlen(OK));
	fake_free(&f);

	cb.flow = NULL;
	fake_init(&f);
	f.async = true;
	fake_start(&f, &cb);
	input_str(&f, USER_BOB);
	pop3_session_input(f.s, "PASS secret\r\n", 13);
	for (int i = 0; i < 11 && f.closes == 0; i++)
		pop3_session_input(f.s, b.data, b.len);
	assert_int_equal(f.closes, 1);
	assert_output(&f, PASS_NEEDED E_OVERFLOW);
	assert_int_equal(f.cancels, 1);
	drain(&f); /* the late answer is ignored */
	assert_output(&f, "");
	fake_free(&f);
	buf_free(&b);
}

/* test_size - pop3_size counts what RETR sends, in any pieces. */
static void test_size(void **state)
{
	static const struct {
		const char *text;
		unsigned long long size;
	} cases[] = {
		{ "", 0 },          { "a", 3 },           { "a\n", 3 },      { "a\r\n", 3 },
		{ "\n\n", 4 },      { "\r", 2 },          { "a\r", 3 },      { "\r\r\n", 3 },
		{ ".\n", 3 },       { "a\rb\n", 5 },      { "x\ny", 6 },     { MSG1, 41 },
		{ MSG2, 46 },       { MSG3, 47 },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		size_t len = strlen(cases[i].text);

		for (size_t step = 1; step <= len + 1; step++) {
			struct pop3_size z;

			pop3_size_init(&z);
			for (size_t off = 0; off < len; off += step)
				pop3_size_add(&z, cases[i].text + off, off + step <= len ? step : len - off);
			pop3_size_add(&z, "", 0);
			if (pop3_size_result(&z) != cases[i].size)
				fail_msg("\"%s\" in pieces of %zu: %llu, want %llu", cases[i].text, step,
					 pop3_size_result(&z), cases[i].size);
		}
	}
}

/* test_misuse - answers nobody asked for, and listings POP3 cannot
 * carry, are bugs: log_panic. */
static void test_misuse(void **state)
{
	struct pop3_message bad_uidl[] = { { 10, "has space" } };
	struct pop3_message long_uidl[] = {
		{ 10, "0123456789012345678901234567890123456789012345678901234567890123456789x" },
	};
	struct pop3_message empty_uidl[] = { { 10, "" } };
	struct pop3_message bad_size[] = { { -1, "ok" } };
	struct fake f;

	(void)state;
	fake_init(&f);
	fake_start(&f, &fake_callbacks);
	UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "pop3_session_auth_done: no such request pending",
			  pop3_session_auth_done(f.s, POP3_AUTH_FAIL, NULL, 0, NULL));
	UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "pop3_session_mailbox_done: no such request pending",
			  pop3_session_mailbox_done(f.s, POP3_MAILBOX_TEMP, NULL, 0));
	UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "no UPDATE pending", pop3_session_update_done(f.s, true));
	UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "no STLS pending", pop3_session_tls_done(f.s, true));
	UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "OK without a user name",
			  pop3_session_auth_done(f.s, POP3_AUTH_OK, NULL, 0, ""));
	UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "bad size or UIDL",
			  pop3_session_mailbox_done(f.s, POP3_MAILBOX_OK, bad_uidl, 1));
	UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "bad size or UIDL",
			  pop3_session_mailbox_done(f.s, POP3_MAILBOX_OK, long_uidl, 1));
	UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "bad size or UIDL",
			  pop3_session_mailbox_done(f.s, POP3_MAILBOX_OK, empty_uidl, 1));
	UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "bad size or UIDL",
			  pop3_session_mailbox_done(f.s, POP3_MAILBOX_OK, bad_size, 1));
	UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "session already started", pop3_session_start(f.s));
	fake_free(&f);
	/* a uidl of exactly 70 is fine */
	long_uidl[0].uidl = "0123456789012345678901234567890123456789012345678901234567890123456789";
	fake_init(&f);
	f.async = true;
	fake_start(&f, &fake_callbacks);
	input_str(&f, USER_BOB);
	pop3_session_input(f.s, "PASS secret\r\nUIDL\r\n", 19);
	f.pend = P_NONE;
	pop3_session_auth_done(f.s, POP3_AUTH_OK, NULL, 0, "bob@example.org");
	f.pend = P_NONE;
	pop3_session_mailbox_done(f.s, POP3_MAILBOX_OK, long_uidl, 1);
	assert_output(&f, PASS_NEEDED "+OK Logged in, 1 message (10 octets)\r\n+OK Unique-ID listing follows\r\n"
				      "1 0123456789012345678901234567890123456789012345678901234567890123456789\r\n.\r\n");
	fake_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scripts),
		cmocka_unit_test(test_line_length),
		cmocka_unit_test(test_async_order),
		cmocka_unit_test(test_output_flow),
		cmocka_unit_test(test_big_listing),
		cmocka_unit_test(test_read_error_midway),
		cmocka_unit_test(test_free_in_callback),
		cmocka_unit_test(test_dropped),
		cmocka_unit_test(test_late_answers),
		cmocka_unit_test(test_before_start),
		cmocka_unit_test(test_input_flow),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_misuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
