#include "config.h"
/* test_smtp_server.c - unit tests for libmail/smtp_server.c, the SMTP server engine.
 *
 * Scripted conversations: {client input, exact server output} steps, run
 * against a fake application whose answers depend on the addresses
 * (unknown@ -> 550 5.1.1, relay@ -> 554 5.7.1, ...). Every script runs
 * four ways with the same expected output: answers given inside the
 * callbacks; answers given later (queued, then given after the input);
 * input fed one octet at a time; and both. The clock is faked at link
 * time (time() below) so the Received header is exact.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../libmail/addr.h"
#include "../../libmail/smtp_reply.h"
#include "../../libmail/smtp_server.h"
#include "../../libutil/buf.h"
#include "../../libutil/pool.h"
#include "unit.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* The fake clock: Tue, 14 Nov 2023 22:13:20 UTC (main sets TZ=UTC). */
#define FAKE_NOW ((time_t)1700000000)
#define DATE "Tue, 14 Nov 2023 22:13:20 +0000"

time_t time(time_t *t)
{
	if (t != NULL)
		*t = FAKE_NOW;
	return FAKE_NOW;
}

/* ---- expected replies --------------------------------------------- */

#define GREETING "220 mx.example.org ESMTP Yubin\r\n"
#define EHLO_OK                                                                                              \
	"250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n" \
	"250-SMTPUTF8\r\n250-CHUNKING\r\n250 DSN\r\n"
#define HELO_OK "250 mx.example.org\r\n"
#define MAIL_OK "250 2.1.0 Sender ok\r\n"
#define RCPT_OK "250 2.1.5 Recipient ok\r\n"
#define GO_AHEAD "354 End data with <CR><LF>.<CR><LF>\r\n"
#define QUEUED(id) "250 2.0.0 Ok: queued as " id "\r\n"
#define OK "250 2.0.0 Ok\r\n"
#define BYE "221 2.0.0 Bye\r\n"
#define HELP "214 2.0.0 Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY\r\n"
#define VRFY "252 2.5.0 Cannot verify the user, but will accept the message and attempt delivery\r\n"
#define BDAT_OK(n) "250 2.0.0 " n " octets received\r\n"
#define E_NEED_HELO "503 5.5.1 Send EHLO or HELO first\r\n"
#define E_NESTED "503 5.5.1 Sender already specified\r\n"
#define E_NEED_MAIL "503 5.5.1 Need MAIL command\r\n"
#define E_NEED_RCPT "503 5.5.1 Need RCPT command\r\n"
#define E_SEQ "503 5.5.1 Bad sequence of commands\r\n"
#define E_NO_VALID "554 5.5.1 No valid recipients\r\n"
#define E_SYNTAX "501 5.5.4 Syntax error in parameters or arguments\r\n"
#define E_BAD_ADDR "501 5.1.3 Bad address syntax\r\n"
#define E_BAD_SENDER "553 5.1.7 Sender address rejected: bad address syntax\r\n"
#define E_NOT_OWNED "553 5.7.1 Sender address rejected: not owned by the authenticated user\r\n"
#define E_UTF8 "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n"
#define E_TOO_BIG "552 5.3.4 Message size exceeds fixed limit\r\n"
#define E_PARAM "555 5.5.4 Unsupported or malformed parameter\r\n"
#define E_TOO_MANY_RCPTS "452 4.5.3 Too many recipients\r\n"
#define E_UNKNOWN_USER "550 5.1.1 Recipient address rejected: user unknown\r\n"
#define E_RELAY "554 5.7.1 Relay access denied\r\n"
#define E_RCPT_TEMP "451 4.3.0 Temporary lookup failure, try again later\r\n"
#define E_MOVED "551 5.1.6 Recipient has moved\r\n"
#define E_LOOP "554 5.4.6 Too many Received headers: mail loop\r\n"
#define E_BARE_LF "550 5.5.2 Message contains bare CR or LF; lines must end with CRLF\r\n"
#define E_QUEUE "451 4.3.0 Temporary queue failure, try again later\r\n"
#define E_NO_SPACE "452 4.3.1 Insufficient system storage, try again later\r\n"
#define E_QUOTA_TEMP "452 4.2.2 Mailbox full, try again later\r\n"
#define E_UNKNOWN_CMD "500 5.5.2 Command not recognized\r\n"
#define E_TOO_LONG "500 5.5.2 Line too long\r\n"
#define E_BAD_CHAR "500 5.5.2 NUL or bare CR in command line\r\n"
#define E_NOT_IMPL "502 5.5.1 Command not implemented\r\n"
#define E_TOO_MANY_ERRORS "421 4.7.0 Too many errors, closing connection\r\n"
#define E_TIMEOUT "421 4.4.2 Idle timeout, closing connection\r\n"
#define E_SHUTDOWN "421 4.3.2 Service shutting down, try again later\r\n"
#define E_OVERFLOW "421 4.7.0 Too much pipelined input, closing connection\r\n"

#define CLIENT "client.example.net[192.0.2.1]"
#define RECEIVED_BY(proto, id) "\tby mx.example.org (Yubin) with " proto " id " id
#define RECEIVED(helo, proto, id, rcpt)                                                     \
	"Received: from " helo " (client.example.net [192.0.2.1])\r\n" RECEIVED_BY(proto, id) \
	"\r\n\tfor <" rcpt ">; " DATE "\r\n"

/* ---- the fake application ----------------------------------------- */

enum pend { P_NONE, P_MAIL, P_RCPT, P_OPEN, P_DONE };

struct fake {
	struct smtp_session *s;
	struct smtp_server_config config;
	const char *client_addr;
	const char *client_name;
	bool tls;
	bool async;          /* queue the answers; drain() gives them */
	struct buf out;      /* everything written to the client */
	size_t out_seen;     /* how much of out the steps have checked */
	struct buf content;  /* the message being written */
	struct buf last;     /* the last message committed */
	struct buf envelope; /* the envelope at the last commit */
	struct buf log;      /* log lines, each ending in "\n" */
	int closes, mails, rcpts, opens, commits, discards;
	bool file_open;
	enum pend pend;
	int pend_id;
	int open_reply;      /* data_open answer */
	int done_reply;      /* data_done answer */
	long fail_write_at;  /* data_write fails once content passes this (-1: never) */
	int write_errno;
	int qid_seq;
	char qid[16];
	bool free_on_close;
	bool free_in_write;
	struct smtp_session *alias; /* freed from data_close, if set */
	const char *input_on_354;   /* given as input from inside the 354 write */
	int pauses, resumes;
	bool paused;
	/* TLS and AUTH */
	int starttls_calls, auth_cancels;
	int login_stage;     /* LOGIN: 1 asked for the user, 2 for the password */
	char login_user[64];
};

static void fake_answer(struct fake *f, enum pend kind, int id)
{
	switch (kind) {
	case P_MAIL:
		smtp_session_mail_done(f->s, id);
		break;
	case P_RCPT:
		smtp_session_rcpt_done(f->s, id);
		break;
	case P_OPEN:
		if (id == 0) {
			f->file_open = true;
			buf_reset(&f->content);
			snprintf(f->qid, sizeof f->qid, "QID%d", ++f->qid_seq);
		}
		smtp_session_data_open_done(f->s, id, id == 0 ? f->qid : NULL);
		break;
	case P_DONE:
		smtp_session_data_done(f->s, id, NULL);
		break;
	case P_NONE:
		break;
	}
}

/* answer - now, or later when async. */
static void answer(struct fake *f, enum pend kind, int id)
{
	if (f->async) {
		assert_int_equal(f->pend, P_NONE); /* one request at a time */
		f->pend = kind;
		f->pend_id = id;
		return;
	}
	fake_answer(f, kind, id);
}

/* drain - give the queued answers (each may lead to another request). */
static void drain(struct fake *f)
{
	while (f->pend != P_NONE && f->s != NULL) {
		enum pend kind = f->pend;

		f->pend = P_NONE;
		fake_answer(f, kind, f->pend_id);
	}
}

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void f_write(void *ctx, const char *data, size_t len)
{
	struct fake *f = ctx;

	if (f->closes > 0)
		fail_msg("write after close: \"%.*s\"", (int)len, data);
	buf_append(&f->out, data, len);
	if (f->input_on_354 != NULL && len >= 4 && memcmp(data, "354 ", 4) == 0) {
		const char *in = f->input_on_354;

		f->input_on_354 = NULL;
		smtp_session_input(f->s, in, strlen(in));
	}
}

static void f_close(void *ctx)
{
	struct fake *f = ctx;

	assert_int_equal(f->closes, 0);
	f->closes++;
	if (f->free_on_close)
		smtp_session_free(&f->s);
}

static void f_mail(void *ctx, const struct mail_addr *sender, const struct smtp_mail_params *p)
{
	struct fake *f = ctx;
	int id = 0;

	(void)p;
	f->mails++;
	if (has_prefix(sender->local, "reject"))
		id = R_SENDER_NOT_OWNED;
	answer(f, P_MAIL, id);
}

static void f_rcpt(void *ctx, const struct mail_addr *rcpt, const struct smtp_rcpt_params *p)
{
	struct fake *f = ctx;
	int id = 0;

	(void)p;
	f->rcpts++;
	if (has_prefix(rcpt->local, "unknown"))
		id = R_UNKNOWN_USER;
	else if (has_prefix(rcpt->local, "relay"))
		id = R_RELAY_DENIED;
	else if (has_prefix(rcpt->local, "temp"))
		id = R_RCPT_TEMPFAIL;
	else if (has_prefix(rcpt->local, "moved"))
		id = R_MOVED;
	else if (has_prefix(rcpt->local, "bye"))
		id = R_SHUTDOWN;
	answer(f, P_RCPT, id);
}

static void f_data_open(void *ctx)
{
	struct fake *f = ctx;

	assert_false(f->file_open);
	f->opens++;
	answer(f, P_OPEN, f->open_reply);
}

static int f_data_write(void *ctx, const void *data, size_t len)
{
	struct fake *f = ctx;

	assert_true(f->file_open);
	if (f->free_in_write) {
		smtp_session_free(&f->s);
		return 0;
	}
	if (f->fail_write_at >= 0 && f->content.len + len > (size_t)f->fail_write_at) {
		errno = f->write_errno;
		return -1;
	}
	buf_append(&f->content, data, len);
	return 0;
}

/* snapshot - the envelope as the engine shows it at the commit. */
static void snapshot(struct fake *f)
{
	struct pool *pool = pool_create();
	const struct smtp_mail_params *mp = smtp_session_mail_params(f->s);

	buf_reset(&f->envelope);
	buf_printf(&f->envelope, "helo=%s from=<%s> size=%lld 8bit=%d utf8=%d ret=%s envid=%s",
		   smtp_session_helo(f->s), addr_format(pool, smtp_session_sender(f->s)), mp->size, mp->body_8bit,
		   mp->smtputf8, mp->ret != NULL ? mp->ret : "-", mp->envid != NULL ? mp->envid : "-");
	for (size_t i = 0; i < smtp_session_rcpt_count(f->s); i++) {
		const struct smtp_rcpt_params *rp = smtp_session_rcpt_params(f->s, i);

		buf_printf(&f->envelope, " | to=<%s> notify=%u orcpt=%s", addr_format(pool, smtp_session_rcpt(f->s, i)),
			   rp->notify, rp->orcpt != NULL ? rp->orcpt : "-");
	}
	assert_null(smtp_session_rcpt(f->s, smtp_session_rcpt_count(f->s)));
	assert_null(smtp_session_rcpt_params(f->s, smtp_session_rcpt_count(f->s)));
	assert_string_equal(smtp_session_queue_id(f->s), f->qid);
	pool_destroy(&pool);
}

static void f_data_close(void *ctx, bool ok)
{
	struct fake *f = ctx;

	assert_true(f->file_open);
	f->file_open = false;
	if (f->alias != NULL)
		smtp_session_free(&f->alias); /* a second free, from inside the first */
	if (!ok) {
		f->discards++;
		return;
	}
	f->commits++;
	snapshot(f);
	buf_reset(&f->last);
	buf_append(&f->last, f->content.data, f->content.len);
	answer(f, P_DONE, f->done_reply);
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

static void f_flow(void *ctx, bool paused)
{
	struct fake *f = ctx;

	assert_true(paused != f->paused);
	f->paused = paused;
	if (paused)
		f->pauses++;
	else
		f->resumes++;
}

static const struct smtp_server_callbacks fake_callbacks = {
	.write = f_write,
	.close = f_close,
	.mail = f_mail,
	.rcpt = f_rcpt,
	.data_open = f_data_open,
	.data_write = f_data_write,
	.data_close = f_data_close,
	.log = f_log,
	.flow = f_flow,
};

static void fake_init(struct fake *f)
{
	memset(f, 0, sizeof *f);
	f->config.hostname = "mx.example.org";
	f->config.max_message_size = 10000;
	f->config.max_recipients = 3;
	f->config.max_errors = 5;
	f->config.max_received = 3;
	f->config.smtputf8 = true;
	f->client_addr = "192.0.2.1";
	f->client_name = "client.example.net";
	f->fail_write_at = -1;
}

/* fake_start - the session, and its greeting checked. */
static void fake_start(struct fake *f, const struct smtp_server_callbacks *cb, const char *greeting)
{
	f->s = smtp_session_new(&f->config, cb, f, f->client_addr, f->client_name);
	if (f->tls)
		smtp_session_set_tls(f->s, true, NULL, NULL, 0);
	smtp_session_start(f->s);
	if (strcmp(buf_cstr(&f->out), greeting) != 0)
		fail_msg("greeting \"%s\", want \"%s\"", buf_cstr(&f->out), greeting);
	f->out_seen = f->out.len;
}

static void fake_free(struct fake *f)
{
	smtp_session_free(&f->s);
	assert_null(f->s);
	assert_false(f->file_open); /* every open file was closed */
	buf_free(&f->out);
	buf_free(&f->content);
	buf_free(&f->last);
	buf_free(&f->envelope);
	buf_free(&f->log);
}

/* fake_output - what was written since the last call. */
static const char *fake_output(struct fake *f)
{
	const char *p = buf_cstr(&f->out) + f->out_seen;

	f->out_seen = f->out.len;
	return p;
}

/* input_str - a C string as client input. */
static void input_str(struct fake *f, const char *s)
{
	smtp_session_input(f->s, s, strlen(s));
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

static void assert_content(const struct fake *f, const char *want)
{
	if (strcmp(buf_cstr(&f->last), want) != 0)
		fail_msg("message content:\n\"%s\"\nwant:\n\"%s\"", buf_cstr(&f->last), want);
}

/* ---- scripts ------------------------------------------------------ */

enum action { A_INPUT, A_TIMEOUT, A_SHUTDOWN };

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

enum mode { M_SYNC, M_ASYNC, M_BYTES, M_BYTES_ASYNC, M_COUNT };
static const char *const mode_names[M_COUNT] = { "sync", "async", "bytes", "bytes+async" };

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

	if (st->action == A_TIMEOUT) {
		if (f->s != NULL)
			smtp_session_timeout(f->s);
	} else if (st->action == A_SHUTDOWN) {
		if (f->s != NULL)
			smtp_session_shutdown(f->s);
	} else if (mode == M_BYTES || mode == M_BYTES_ASYNC) {
		for (size_t i = 0; i < len && f->s != NULL; i++) {
			smtp_session_input(f->s, st->in + i, 1);
			drain(f);
		}
	} else if (f->s != NULL) {
		/* from an exact-size copy: the engine must not read past it */
		char *copy = malloc(len > 0 ? len : 1);

		assert_non_null(copy);
		memcpy(copy, st->in, len);
		smtp_session_input(f->s, copy, len);
		free(copy);
	}
	drain(f);
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
		if (sc->setup != NULL)
			sc->setup(&f);
		fake_start(&f, &fake_callbacks, GREETING);
		for (size_t i = 0; i < sc->nsteps; i++)
			run_step(&f, sc->name, i, &sc->steps[i], (enum mode)mode);
		if (sc->check != NULL)
			sc->check(&f);
		fake_free(&f);
	}
}

#define SCRIPT(name, setup, check) { #name, name, NELEM(name), setup, check }

/* -- full transaction ---------------------------------------------- */

static const struct step full_transaction[] = {
	SEND("EHLO client.example\r\n", EHLO_OK),
	SEND("MAIL FROM:<sender@example.com>\r\n", MAIL_OK),
	SEND("RCPT TO:<rcpt@example.org>\r\n", RCPT_OK),
	SEND("DATA\r\n", GO_AHEAD),
	SEND("Subject: hi\r\n\r\nHello.\r\n..dot\r\n", ""),
	SEND(".\r\n", QUEUED("QID1")),
	SEND("QUIT\r\n", BYE),
	SEND("NOOP\r\n", ""),
};

static void check_full_transaction(struct fake *f)
{
	assert_int_equal(f->commits, 1);
	assert_int_equal(f->closes, 1);
	assert_content(f, RECEIVED("client.example", "ESMTP", "QID1", "rcpt@example.org")
		       "Subject: hi\r\n\r\nHello.\r\n.dot\r\n");
	assert_string_equal(buf_cstr(&f->envelope), "helo=client.example from=<sender@example.com> size=-1 8bit=0 "
						    "utf8=0 ret=- envid=- | to=<rcpt@example.org> notify=0 orcpt=-");
	assert_logged(f, "connect from " CLIENT);
	assert_logged(f, "QID1: client=" CLIENT);
	assert_logged(f, "QID1: from=<sender@example.com>, size=29, nrcpt=1, proto=ESMTP, helo=<client.example>");
	assert_logged(f, "disconnect from " CLIENT " ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5");
	assert_true(smtp_session_closed(f->s));
}

/* -- pipelining: whole transactions in one chunk ------------------- */

static const struct step pipelining[] = {
	SEND("EHLO c.example\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<unknown@example.org>\r\n"
	     "RCPT TO:<c@example.org>\r\nDATA\r\n",
	     EHLO_OK MAIL_OK RCPT_OK E_UNKNOWN_USER RCPT_OK GO_AHEAD),
	SEND("one\r\n.\r\nMAIL FROM:<a2@x.org>\r\nRCPT TO:<d@example.org>\r\nDATA\r\n",
	     QUEUED("QID1") MAIL_OK RCPT_OK GO_AHEAD),
	SEND("two\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n", QUEUED("QID2") OK OK BYE),
};

static void check_pipelining(struct fake *f)
{
	assert_int_equal(f->commits, 2);
	assert_int_equal(f->rcpts, 4);
	assert_content(f, RECEIVED("c.example", "ESMTP", "QID2", "d@example.org") "two\r\n");
	assert_logged(f, "reject: RCPT from " CLIENT ": 550 5.1.1 <unknown@example.org>: Recipient address "
			 "rejected: user unknown; from=<a@x.org> to=<unknown@example.org> proto=ESMTP helo=<c.example>");
	assert_logged(f, "disconnect from " CLIENT " ehlo=1 mail=2 rcpt=3/4 data=2 rset=1 noop=1 quit=1 commands=11/12");
}

/* two recipients: no "for" in the Received header */
static const struct step two_recipients[] = {
	SEND("EHLO c.example\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n"
	     "DATA\r\nx\r\n.\r\n",
	     EHLO_OK MAIL_OK RCPT_OK RCPT_OK GO_AHEAD QUEUED("QID1")),
};

static void check_two_recipients(struct fake *f)
{
	assert_content(f, "Received: from c.example (client.example.net [192.0.2.1])\r\n" RECEIVED_BY("ESMTP", "QID1")
			  ";\r\n\t" DATE "\r\nx\r\n");
	assert_string_equal(buf_cstr(&f->envelope), "helo=c.example from=<a@x.org> size=-1 8bit=0 utf8=0 ret=- "
						    "envid=- | to=<b@example.org> notify=0 orcpt=- | "
						    "to=<c@example.org> notify=0 orcpt=-");
}

/* -- HELO ----------------------------------------------------------- */

static const struct step helo[] = {
	SEND("HELO client.example\r\n", HELO_OK),
	SEND("MAIL FROM:<a@x.org> SIZE=10\r\n", E_PARAM),
	SEND("MAIL FROM:<a@x.org>\r\n", MAIL_OK),
	SEND("RCPT TO:<b@example.org> NOTIFY=NEVER\r\n", E_PARAM),
	SEND("RCPT TO:<b@example.org>\r\n", RCPT_OK),
	SEND("DATA\r\nx\r\n.\r\n", GO_AHEAD QUEUED("QID1")),
};

static void check_helo(struct fake *f)
{
	assert_content(f, RECEIVED("client.example", "SMTP", "QID1", "b@example.org") "x\r\n");
}

/* -- sequence errors ------------------------------------------------ */

static void many_errors(struct fake *f)
{
	f->config.max_errors = 50;
}

static const struct step sequence[] = {
	SEND("MAIL FROM:<a@x.org>\r\n", E_NEED_HELO),
	SEND("RCPT TO:<a@x.org>\r\n", E_NEED_HELO),
	SEND("DATA\r\n", E_NEED_HELO),
	SEND("BDAT 4\r\nQUIT", E_NEED_HELO),
	SEND("EHLO c.example\r\n", EHLO_OK),
	SEND("RCPT TO:<a@x.org>\r\n", E_NEED_MAIL),
	SEND("DATA\r\n", E_NEED_MAIL),
	SEND("BDAT 5\r\nhello", E_NEED_MAIL),
	SEND("MAIL FROM:<a@x.org>\r\n", MAIL_OK),
	SEND("MAIL FROM:<a@x.org>\r\n", E_NESTED),
	SEND("DATA\r\n", E_NEED_RCPT),
	SEND("BDAT 1 LAST\r\nx", E_NEED_RCPT),
	SEND("RCPT TO:<unknown@example.org>\r\n", E_UNKNOWN_USER),
	SEND("DATA\r\n", E_NO_VALID),
	SEND("BDAT 2 LAST\r\nxy", E_NO_VALID),
	SEND("DATA extra\r\n", E_SYNTAX),
	SEND("RSET\r\n", OK),
	SEND("RCPT TO:<b@example.org>\r\n", E_NEED_MAIL),
	SEND("QUIT\r\n", BYE),
};

static void check_sequence(struct fake *f)
{
	assert_int_equal(f->mails, 1);
	assert_int_equal(f->rcpts, 1);
	assert_int_equal(f->opens, 0);
	assert_logged(f, "reject: MAIL from " CLIENT ": 503 5.5.1 Send EHLO or HELO first; proto=SMTP");
	assert_logged(f, "reject: DATA from " CLIENT ": 554 5.5.1 No valid recipients; from=<a@x.org> proto=ESMTP "
			 "helo=<c.example>");
}

/* RSET clears the transaction; a second EHLO does too */
static const struct step rset_clears[] = {
	SEND("EHLO c.example\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@example.org>\r\n", EHLO_OK MAIL_OK RCPT_OK),
	SEND("RSET\r\n", OK),
	SEND("RCPT TO:<b@example.org>\r\n", E_NEED_MAIL),
	SEND("DATA\r\n", E_NEED_MAIL),
	SEND("MAIL FROM:<a@x.org>\r\nRCPT TO:<b@example.org>\r\n", MAIL_OK RCPT_OK),
	SEND("EHLO again.example\r\n", EHLO_OK),
	SEND("DATA\r\n", E_NEED_MAIL),
	SEND("MAIL FROM:<a@x.org>\r\nRCPT TO:<b@example.org>\r\n", MAIL_OK RCPT_OK),
	SEND("HELO third.example\r\n", HELO_OK),
	SEND("DATA\r\n", E_NEED_MAIL),
	SEND("MAIL FROM:<new@x.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\nx\r\n.\r\n",
	     MAIL_OK RCPT_OK GO_AHEAD QUEUED("QID1")),
};

static void check_rset_clears(struct fake *f)
{
	assert_int_equal(f->commits, 1);
	assert_string_equal(buf_cstr(&f->envelope), "helo=third.example from=<new@x.org> size=-1 8bit=0 utf8=0 "
						    "ret=- envid=- | to=<c@example.org> notify=0 orcpt=-");
	assert_content(f, RECEIVED("third.example", "SMTP", "QID1", "c@example.org") "x\r\n");
}

/* -- MAIL FROM replies ---------------------------------------------- */

static const struct step mail_replies[] = {
	SEND("EHLO c.example\r\n", EHLO_OK),
	SEND("MAIL FROM<a@x.org>\r\n", E_SYNTAX),
	SEND("MAIL\r\n", E_SYNTAX),
	SEND("MAIL FROM:<a@x.org\r\n", E_BAD_SENDER),
	SEND("MAIL FROM:<a@@x.org>\r\n", E_BAD_SENDER),
	SEND("MAIL FROM:<\xc3\xbc@x.org>\r\n", E_UTF8),
	SEND("MAIL FROM:<a@x.org> SIZE=10001\r\n", E_TOO_BIG),
	SEND("MAIL FROM:<a@x.org> FOO=1\r\n", E_PARAM),
	SEND("MAIL FROM:<a@x.org> BODY=BINARYMIME\r\n", E_PARAM),
	SEND("MAIL FROM:<a@x.org> BODY=9BIT\r\n", E_SYNTAX),
	SEND("MAIL FROM:<reject@x.org>\r\n", E_NOT_OWNED),
	SEND("MAIL FROM: <a@x.org> SIZE=10000 BODY=8BITMIME RET=HDRS ENVID=id+2B1\r\n", MAIL_OK),
	SEND("RCPT TO:<b@example.org>\r\nDATA\r\n.\r\n", RCPT_OK GO_AHEAD QUEUED("QID1")),
	SEND("MAIL FROM:<>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n.\r\n", MAIL_OK RCPT_OK GO_AHEAD QUEUED("QID2")),
	SEND("QUIT\r\n", BYE),
};

static void check_mail_replies(struct fake *f)
{
	/* the 552 to SIZE= and the policy refusal are not client errors:
	 * 7 errors would have closed the session at max_errors 5 otherwise */
	assert_int_equal(f->mails, 3);
	assert_string_equal(buf_cstr(&f->envelope), "helo=c.example from=<> size=-1 8bit=0 utf8=0 ret=- envid=- "
						    "| to=<b@example.org> notify=0 orcpt=-");
	assert_logged(f, "reject: MAIL from " CLIENT ": 552 5.3.4 <a@x.org>: Message size exceeds fixed limit "
			 "(declared SIZE); from=<a@x.org> proto=ESMTP helo=<c.example>");
	assert_logged(f, "reject: MAIL from " CLIENT ": 553 5.7.1 <reject@x.org>: Sender address rejected: not owned "
			 "by the authenticated user; from=<reject@x.org> proto=ESMTP helo=<c.example>");
	assert_logged(f, "reject: MAIL from " CLIENT ": 553 5.1.7 Sender address rejected: bad address syntax "
			 "(address must end with >); proto=ESMTP helo=<c.example>");
	assert_logged(f, "QID2: from=<>, size=0, nrcpt=1, proto=ESMTP, helo=<c.example>");
}

static void max_errors_10(struct fake *f)
{
	f->config.max_errors = 10;
}

static const struct step mail_params[] = {
	SEND("EHLO c.example\r\n", EHLO_OK),
	SEND("MAIL FROM:<a@x.org> SIZE=10000 BODY=8BITMIME RET=HDRS ENVID=id+2B1\r\nRCPT TO:<b@example.org>\r\n"
	     "DATA\r\n.\r\n",
	     MAIL_OK RCPT_OK GO_AHEAD QUEUED("QID1")),
};

static void check_mail_params(struct fake *f)
{
	assert_string_equal(buf_cstr(&f->envelope), "helo=c.example from=<a@x.org> size=10000 8bit=1 utf8=0 "
						    "ret=HDRS envid=id+1 | to=<b@example.org> notify=0 orcpt=-");
}

/* -- RCPT TO replies ------------------------------------------------ */

static const struct step rcpt_replies[] = {
	SEND("EHLO c.example\r\nMAIL FROM:<a@x.org>\r\n", EHLO_OK MAIL_OK),
	SEND("RCPT TO:<postmaster>\r\n", RCPT_OK),
	SEND("RCPT TO:<a@b\r\n", E_BAD_ADDR),
	SEND("RCPT TO:<>\r\n", E_BAD_ADDR),
	SEND("RCPT TO<b@example.org>\r\n", E_SYNTAX),
	SEND("RCPT TO:<\xc3\xb6@example.org>\r\n", E_UTF8),
	SEND("RCPT TO:<relay@other.example>\r\n", E_RELAY),
	SEND("RCPT TO:<temp@example.org>\r\n", E_RCPT_TEMP),
	SEND("RCPT TO:<moved@example.org>\r\n", E_MOVED),
	SEND("RCPT TO:<e@example.org> FOO=1\r\n", E_PARAM),
	SEND("RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+40example.org\r\n", RCPT_OK),
	SEND("RCPT TO:<c@example.org>\r\n", RCPT_OK),
	SEND("RCPT TO:<d@example.org>\r\n", E_TOO_MANY_RCPTS),
	SEND("RCPT TO:<unknown@example.org>\r\n", E_TOO_MANY_RCPTS),
	SEND("DATA\r\n.\r\n", GO_AHEAD QUEUED("QID1")),
};

static void check_rcpt_replies(struct fake *f)
{
	assert_int_equal(f->rcpts, 6); /* the 452s ask nobody */
	assert_string_equal(buf_cstr(&f->envelope),
			    "helo=c.example from=<a@x.org> size=-1 8bit=0 utf8=0 ret=- envid=- "
			    "| to=<postmaster> notify=0 orcpt=- "
			    "| to=<b@example.org> notify=6 orcpt=rfc822;b@example.org "
			    "| to=<c@example.org> notify=0 orcpt=-");
	assert_logged(f, "reject: RCPT from " CLIENT ": 452 4.5.3 <d@example.org>: Too many recipients; "
			 "from=<a@x.org> to=<d@example.org> proto=ESMTP helo=<c.example>");
	assert_logged(f, "reject: RCPT from " CLIENT ": 554 5.7.1 <relay@other.example>: Relay access denied; "
			 "from=<a@x.org> to=<relay@other.example> proto=ESMTP helo=<c.example>");
}

/* an application answer with 421 ends the session */
static const struct step rcpt_421[] = {
	SEND("EHLO c.example\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<bye@example.org>\r\nRCPT TO:<b@example.org>\r\n",
	     EHLO_OK MAIL_OK E_SHUTDOWN),
};

static void check_closed_once(struct fake *f)
{
	assert_int_equal(f->closes, 1);
	assert_int_equal(f->commits, 0);
}

/* -- SMTPUTF8 ------------------------------------------------------- */

static const struct step smtputf8[] = {
	SEND("EHLO c.example\r\n", EHLO_OK),
	SEND("MAIL FROM:<\xc3\xbc@x.org> SMTPUTF8\r\n", MAIL_OK),
	SEND("RCPT TO:<\xc3\xb6@example.org>\r\n", RCPT_OK),
	SEND("DATA\r\nSubject: \xc3\xa4\r\n\r\nx\r\n.\r\n", GO_AHEAD QUEUED("QID1")),
};

static void check_smtputf8(struct fake *f)
{
	assert_content(f, RECEIVED("c.example", "UTF8SMTP", "QID1", "\xc3\xb6@example.org") "Subject: \xc3\xa4\r\n\r\nx\r\n");
	assert_logged(f, "QID1: from=<\\xc3\\xbc@x.org>, size=18, nrcpt=1, proto=UTF8SMTP, helo=<c.example>");
}

static void no_smtputf8(struct fake *f)
{
	f->config.smtputf8 = false;
	f->config.max_message_size = 0;
}

static const struct step no_utf8[] = {
	SEND("EHLO c.example\r\n", "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n"
				   "250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250 DSN\r\n"),
	SEND("MAIL FROM:<a@x.org> SMTPUTF8\r\n", E_PARAM),
	SEND("MAIL FROM:<\xc3\xbc@x.org>\r\n", E_UTF8),
	SEND("MAIL FROM:<a@x.org> SIZE=999999999999\r\n", MAIL_OK),
};

/* -- message refusals ----------------------------------------------- */

static void small_size(struct fake *f)
{
	f->config.max_message_size = 50;
}

#define START_DATA "EHLO c.example\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
#define START_DATA_OK(size) "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE " size "\r\n250-8BITMIME\r\n" \
	"250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 DSN\r\n" MAIL_OK RCPT_OK GO_AHEAD
#define START_BDAT "EHLO c.example\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@example.org>\r\n"
#define START_BDAT_OK EHLO_OK MAIL_OK RCPT_OK

static const struct step too_big[] = {
	SEND(START_DATA, START_DATA_OK("50")),
	SEND("0123456789012345678901234567890123456789\r\n", ""),
	SEND("0123456789\r\n", ""),
	SEND(".\r\nQUIT\r\n", E_TOO_BIG BYE),
};

static void check_refused(struct fake *f)
{
	assert_int_equal(f->commits, 0);
	assert_int_equal(f->discards, 1);
	assert_int_equal(f->opens, 1);
}

static void check_too_big(struct fake *f)
{
	check_refused(f);
	/* nothing past the limit was written */
	assert_true(f->content.len <= 50 + strlen(RECEIVED("c.example", "ESMTP", "QID1", "b@example.org")));
	assert_logged(f, "QID1: reject: DATA from " CLIENT ": 552 5.3.4 Message size exceeds fixed limit; "
			 "from=<a@x.org> proto=ESMTP helo=<c.example>");
}

/* exactly the limit is fine */
static const struct step size_limit[] = {
	SEND(START_DATA, START_DATA_OK("50")),
	SEND("012345678901234567890123456789012345678901234567\r\n.\r\n", QUEUED("QID1")),
};

static const struct step loop[] = {
	SEND(START_DATA, START_DATA_OK("10000")),
	SEND("Received: 1\r\nReceived: 2\r\nreceived: 3\r\nRECEIVED: 4\r\n\r\nx\r\n.\r\n", E_LOOP),
	/* the session goes on */
	SEND("MAIL FROM:<a@x.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n", MAIL_OK RCPT_OK GO_AHEAD),
	SEND("Received: 1\r\nReceived: 2\r\nreceived: 3\r\n\r\nReceived: body\r\n.\r\n", QUEUED("QID2")),
};

static void check_loop(struct fake *f)
{
	assert_int_equal(f->commits, 1);
	assert_int_equal(f->discards, 1);
}

/* -- SMTP smuggling ------------------------------------------------- */

/* A message hiding a second transaction behind a bare-LF "end": one
 * message, refused, and no second transaction. */
#define SMUGGLE(name, end)                                                                             \
	static const struct step name[] = {                                                            \
		SEND(START_DATA, START_DATA_OK("10000")),                                              \
		SEND("Subject: s\r\n\r\nhello" end "MAIL FROM:<evil@x.org>\r\nRCPT TO:<victim@example.org>\r\n" \
		     "DATA\r\nevil body\r\n.\r\n",                                                     \
		     E_BARE_LF),                                                                       \
		SEND("QUIT\r\n", BYE),                                                                 \
	}

SMUGGLE(smuggle_lf_dot_lf, "\n.\n");
SMUGGLE(smuggle_cr_dot_cr, "\r.\r");
SMUGGLE(smuggle_lf_dot_crlf, "\n.\r\n");
SMUGGLE(smuggle_crlf_dot_lf, "\r\n.\n");
SMUGGLE(smuggle_crlf_dot_cr, "\r\n.\r");
SMUGGLE(smuggle_cr_dot_crlf, "\r.\r\n");

static void check_smuggle(struct fake *f)
{
	assert_int_equal(f->mails, 1);
	assert_int_equal(f->rcpts, 1);
	check_refused(f);
	assert_logged(f, "QID1: reject: DATA from " CLIENT ": 550 5.5.2 Message contains bare CR or LF; lines must "
			 "end with CRLF; from=<a@x.org> proto=ESMTP helo=<c.example>");
}

/* a bare LF or CR anywhere in DATA is refused */
static const struct step bare_lf[] = {
	SEND(START_DATA, START_DATA_OK("10000")),
	SEND("a\nb\r\n.\r\n", E_BARE_LF),
	SEND("MAIL FROM:<a@x.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nx\ry\r\n.\r\n",
	     MAIL_OK RCPT_OK GO_AHEAD E_BARE_LF),
	SEND("MAIL FROM:<a@x.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nok\r\n.\r\n",
	     MAIL_OK RCPT_OK GO_AHEAD QUEUED("QID3")),
};

static void check_bare_lf(struct fake *f)
{
	assert_int_equal(f->commits, 1);
	assert_int_equal(f->discards, 2);
}

/* -- content file failures ------------------------------------------ */

static void write_fails(struct fake *f)
{
	/* past the Received header, inside the content */
	f->fail_write_at = 170;
	f->write_errno = EIO;
}

static void disk_full(struct fake *f)
{
	f->fail_write_at = 170;
	f->write_errno = ENOSPC;
}

static const struct step write_error[] = {
	SEND(START_DATA, START_DATA_OK("10000")),
	SEND("line one\r\nline two\r\n", ""),
	SEND("line three\r\n.\r\n", E_QUEUE),
};

static const struct step write_enospc[] = {
	SEND(START_DATA, START_DATA_OK("10000")),
	SEND("line one\r\nline two\r\nline three\r\n.\r\n", E_NO_SPACE),
};

static void open_fails(struct fake *f)
{
	f->open_reply = R_QUEUE_ERROR;
}

static const struct step open_error[] = {
	SEND(START_DATA, START_BDAT_OK E_QUEUE),
	SEND("RCPT TO:<b@example.org>\r\n", E_NEED_MAIL),
};

static void check_open_error(struct fake *f)
{
	assert_int_equal(f->opens, 1);
	assert_int_equal(f->commits + f->discards, 0);
	assert_logged(f, "reject: DATA from " CLIENT ": 451 4.3.0 Temporary queue failure, try again later; "
			 "from=<a@x.org> proto=ESMTP helo=<c.example>");
}

static void done_fails(struct fake *f)
{
	f->done_reply = R_QUOTA_TEMP;
}

static const struct step done_error[] = {
	SEND(START_DATA, START_DATA_OK("10000")),
	SEND("x\r\n.\r\n", E_QUOTA_TEMP),
	SEND("RCPT TO:<b@example.org>\r\n", E_NEED_MAIL),
};

/* -- simple commands ------------------------------------------------ */

static const struct step simple[] = {
	SEND("NOOP\r\n", OK),
	SEND("noop with an argument\r\n", OK),
	SEND("HELP\r\n", HELP),
	SEND("help mail\r\n", HELP),
	SEND("VRFY someone\r\n", VRFY),
	SEND("VRFY\r\n", E_SYNTAX),
	SEND("EXPN list\r\n", E_NOT_IMPL),
	SEND("STARTTLS\r\n", E_NEED_HELO),
	SEND("AUTH PLAIN\r\n", E_NEED_HELO),
	SEND("RSET\r\n", OK),
	SEND("RSET x\r\n", E_SYNTAX),
	SEND("HELO\r\n", E_SYNTAX),
	SEND("EHLO   \r\n", E_SYNTAX),
	SEND("EHLO a\tb\r\n", E_SYNTAX),
	SEND("EHLO  spaced.example  \r\n", EHLO_OK),
	SEND("FOO\r\n", E_UNKNOWN_CMD),
	SEND("\r\n", E_UNKNOWN_CMD),
	SEND("NOOP\n", OK),
	SEND("QUIT now\r\n", E_SYNTAX),
	SEND("quit\r\n", BYE),
	SEND("NOOP\r\n", ""),
};

static void check_simple(struct fake *f)
{
	assert_int_equal(f->closes, 1);
	assert_string_equal(smtp_session_helo(f->s), "spaced.example");
	assert_logged(f, "disconnect from " CLIENT " ehlo=1/3 helo=0/1 rset=1/2 noop=3 quit=1/2 help=2 vrfy=1/2 "
			 "expn=0/1 starttls=0/1 auth=0/1 unknown=0/2 commands=9/20");
}

/* -- line limits ---------------------------------------------------- */

static const struct step bad_lines[] = {
	SENDB("NO\0OP\r\n", E_BAD_CHAR),
	SEND("NOOP\rX\r\n", E_BAD_CHAR),
	SEND("NOOP\r\r\n", E_BAD_CHAR),
	SEND("NOOP\r\n", OK),
};

/* -- error limit ---------------------------------------------------- */

static const struct step error_limit[] = {
	SEND("FOO\r\nBAR\r\n", E_UNKNOWN_CMD E_UNKNOWN_CMD),
	SEND("NOOP\r\n", OK),
	SEND("BAZ\r\nMAIL FROM:<a@x.org>\r\n", E_UNKNOWN_CMD E_NEED_HELO),
	SEND("EHLO\r\nNOOP\r\nQUIT\r\n", E_SYNTAX E_TOO_MANY_ERRORS),
	SEND("NOOP\r\n", ""),
};

static void check_error_limit(struct fake *f)
{
	assert_int_equal(f->closes, 1);
	assert_logged(f, "too many errors after EHLO from " CLIENT);
}

/* -- timeout and shutdown ------------------------------------------- */

static const struct step timeout[] = {
	SEND("EHLO c.example\r\nMAIL FROM:<a@x.org>\r\n", EHLO_OK MAIL_OK),
	TIMEOUT(E_TIMEOUT),
	SEND("RCPT TO:<b@example.org>\r\n", ""),
	TIMEOUT(""),
};

static void check_timeout(struct fake *f)
{
	assert_int_equal(f->closes, 1);
	assert_logged(f, "timeout after MAIL from " CLIENT);
}

static const struct step shutdown_in_data[] = {
	SEND(START_DATA, START_DATA_OK("10000")),
	SEND("half a message\r\n", ""),
	SHUTDOWN(E_SHUTDOWN),
	SEND(".\r\n", ""),
	SHUTDOWN(""),
};

static void check_shutdown(struct fake *f)
{
	check_refused(f);
	assert_int_equal(f->closes, 1);
	assert_logged(f, "shutdown after END-OF-MESSAGE from " CLIENT);
}

/* -- BDAT ----------------------------------------------------------- */

static const struct step bdat_single[] = {
	SEND(START_BDAT, START_BDAT_OK),
	SEND("BDAT 12 LAST\r\nHello\nworld\n", QUEUED("QID1")),
	SEND("QUIT\r\n", BYE),
};

static void check_bdat_single(struct fake *f)
{
	/* bare LF is fine in BDAT: there is no terminator to fake */
	assert_content(f, RECEIVED("c.example", "ESMTP", "QID1", "b@example.org") "Hello\nworld\n");
	assert_logged(f, "disconnect from " CLIENT " ehlo=1 mail=1 rcpt=1 bdat=1 quit=1 commands=5");
}

static const struct step bdat_chunks[] = {
	SEND(START_BDAT, START_BDAT_OK),
	SEND("BDAT 5\r\nHello", BDAT_OK("5")),
	SEND("BDAT 0\r\n", BDAT_OK("0")),
	SEND("bdat 8\r\n world\r\n", BDAT_OK("8")),
	SEND("BDAT 0 LAST\r\n", QUEUED("QID1")),
};

static void check_bdat_chunks(struct fake *f)
{
	assert_content(f, RECEIVED("c.example", "ESMTP", "QID1", "b@example.org") "Hello world\r\n");
	assert_int_equal(f->opens, 1);
}

static const struct step bdat_pipelined[] = {
	SEND(START_BDAT "BDAT 3\r\nabcBDAT 3 LAST\r\ndef"
		       "MAIL FROM:<a@x.org>\r\nRCPT TO:<c@example.org>\r\nBDAT 4 LAST\r\n.\r\n\nQUIT\r\n",
	     START_BDAT_OK BDAT_OK("3") QUEUED("QID1") MAIL_OK RCPT_OK QUEUED("QID2") BYE),
};

static void check_bdat_pipelined(struct fake *f)
{
	assert_int_equal(f->commits, 2);
	assert_content(f, RECEIVED("c.example", "ESMTP", "QID2", "c@example.org") ".\r\n\n");
}

static const struct step bdat_then_data[] = {
	SEND(START_BDAT, START_BDAT_OK),
	SEND("BDAT 3\r\nabc", BDAT_OK("3")),
	SEND("DATA\r\n", E_SEQ),
	SEND("RCPT TO:<c@example.org>\r\n", E_SEQ),
	SEND("BDAT 0 LAST\r\n", QUEUED("QID1")),
	SEND("BDAT 3 LAST\r\nxyz", E_NEED_MAIL),
	SEND("BDAT x\r\n", E_SYNTAX),
};

static void bdat_small(struct fake *f)
{
	f->config.max_message_size = 50;
	f->config.max_errors = 50;
}

static const struct step bdat_too_big[] = {
	SEND(START_BDAT, "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 50\r\n250-8BITMIME\r\n"
			 "250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 DSN\r\n" MAIL_OK RCPT_OK),
	SEND("BDAT 40\r\n0123456789012345678901234567890123456789", BDAT_OK("40")),
	/* the chunk that crosses the limit is read, then refused */
	SEND("BDAT 20\r\n01234567890123456789", E_TOO_BIG),
	/* chunks already in the pipeline are read and dropped */
	SEND("BDAT 3 LAST\r\nabc", E_NEED_MAIL),
	SEND("NOOP\r\n", OK),
};

static const struct step bdat_loop[] = {
	SEND(START_BDAT, START_BDAT_OK),
	SEND("BDAT 26\r\nReceived: 1\r\nReceived: 2\r\n", BDAT_OK("26")),
	SEND("BDAT 26 LAST\r\nReceived: 3\r\nReceived: 4\r\n", E_LOOP),
};

static const struct step bdat_open_error[] = {
	SEND(START_BDAT, START_BDAT_OK),
	SEND("BDAT 3\r\nabc", E_QUEUE),
	SEND("BDAT 3 LAST\r\nxyz", E_NEED_MAIL),
};

static const struct step bdat_rset[] = {
	SEND(START_BDAT, START_BDAT_OK),
	SEND("BDAT 3\r\nabc", BDAT_OK("3")),
	SEND("RSET\r\n", OK),
	SEND("BDAT 3 LAST\r\nxyz", E_NEED_MAIL),
};

static void check_bdat_rset(struct fake *f)
{
	assert_int_equal(f->discards, 1);
	assert_int_equal(f->commits, 0);
}

static const struct step bdat_quit[] = {
	SEND(START_BDAT "BDAT 3\r\nabcQUIT\r\n", START_BDAT_OK BDAT_OK("3") BYE),
};

/* -- Received header details ---------------------------------------- */

static void odd_client(struct fake *f)
{
	f->client_addr = "2001:db8::1";
	f->client_name = NULL;
	f->tls = true;
}

static const struct step received_sanitised[] = {
	SEND("EHLO evil(host);[x]\\y\xc3\xa9\r\n", EHLO_OK),
	SEND("MAIL FROM:<a@x.org>\r\nRCPT TO:<\"q u\"@example.org>\r\nDATA\r\nx\r\n.\r\n",
	     MAIL_OK RCPT_OK GO_AHEAD QUEUED("QID1")),
};

static void check_received_sanitised(struct fake *f)
{
	assert_content(f, "Received: from evil?host???x??y?? (unknown [IPv6:2001:db8::1])\r\n"
			  RECEIVED_BY("ESMTPS", "QID1") "\r\n\tfor <\"q u\"@example.org>; " DATE "\r\nx\r\n");
	assert_logged(f, "connect from unknown[2001:db8::1]");
	assert_logged(f, "QID1: from=<a@x.org>, size=3, nrcpt=1, proto=ESMTPS, helo=<evil(host);[x]\\x5cy\\xc3\\xa9>");
}

static const struct script scripts[] = {
	SCRIPT(full_transaction, NULL, check_full_transaction),
	SCRIPT(pipelining, NULL, check_pipelining),
	SCRIPT(two_recipients, NULL, check_two_recipients),
	SCRIPT(helo, NULL, check_helo),
	SCRIPT(sequence, many_errors, check_sequence),
	SCRIPT(rset_clears, NULL, check_rset_clears),
	SCRIPT(mail_replies, max_errors_10, check_mail_replies),
	SCRIPT(mail_params, NULL, check_mail_params),
	SCRIPT(rcpt_replies, many_errors, check_rcpt_replies),
	SCRIPT(rcpt_421, NULL, check_closed_once),
	SCRIPT(smtputf8, NULL, check_smtputf8),
	SCRIPT(no_utf8, no_smtputf8, NULL),
	SCRIPT(too_big, small_size, check_too_big),
	SCRIPT(size_limit, small_size, NULL),
	SCRIPT(loop, NULL, check_loop),
	SCRIPT(smuggle_lf_dot_lf, NULL, check_smuggle),
	SCRIPT(smuggle_cr_dot_cr, NULL, check_smuggle),
	SCRIPT(smuggle_lf_dot_crlf, NULL, check_smuggle),
	SCRIPT(smuggle_crlf_dot_lf, NULL, check_smuggle),
	SCRIPT(smuggle_crlf_dot_cr, NULL, check_smuggle),
	SCRIPT(smuggle_cr_dot_crlf, NULL, check_smuggle),
	SCRIPT(bare_lf, NULL, check_bare_lf),
	SCRIPT(write_error, write_fails, check_refused),
	SCRIPT(write_enospc, disk_full, check_refused),
	SCRIPT(open_error, open_fails, check_open_error),
	SCRIPT(done_error, done_fails, NULL),
	SCRIPT(simple, many_errors, check_simple),
	SCRIPT(bad_lines, NULL, NULL),
	SCRIPT(error_limit, NULL, check_error_limit),
	SCRIPT(timeout, NULL, check_timeout),
	SCRIPT(shutdown_in_data, NULL, check_shutdown),
	SCRIPT(bdat_single, NULL, check_bdat_single),
	SCRIPT(bdat_chunks, NULL, check_bdat_chunks),
	SCRIPT(bdat_pipelined, NULL, check_bdat_pipelined),
	SCRIPT(bdat_then_data, many_errors, NULL),
	SCRIPT(bdat_too_big, bdat_small, check_refused),
	SCRIPT(bdat_loop, NULL, check_refused),
	SCRIPT(bdat_open_error, open_fails, NULL),
	SCRIPT(bdat_rset, NULL, check_bdat_rset),
	SCRIPT(bdat_quit, NULL, check_bdat_rset),
	SCRIPT(received_sanitised, odd_client, check_received_sanitised),
};

static void test_scripts(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(scripts); i++)
		run_script(&scripts[i]);
}

/* ---- tests built at run time -------------------------------------- */

/* run_dynamic - one session through steps whose text is built here. */
static void run_dynamic(const char *name, void (*setup)(struct fake *), const struct step *steps, size_t n)
{
	const struct script sc = { name, steps, n, setup, NULL };

	run_script(&sc);
}

static char *repeat(const char *prefix, char c, size_t n, const char *suffix)
{
	size_t plen = strlen(prefix), slen = strlen(suffix);
	char *s = malloc(plen + n + slen + 1);

	assert_non_null(s);
	memcpy(s, prefix, plen);
	memset(s + plen, c, n);
	memcpy(s + plen + n, suffix, slen + 1);
	return s;
}

/* test_line_length - 512 octets with CRLF for most commands; MAIL and
 * RCPT get what SIZE/DSN add (RFC 1870, RFC 3461); longer lines get 500
 * and the rest of the line is skipped. */
static void test_line_length(void **state)
{
	char *noop_510 = repeat("NOOP ", 'x', 505, "\r\n");    /* 512 with CRLF */
	char *noop_511 = repeat("NOOP ", 'x', 506, "\r\n");    /* 513 */
	char *noop_511lf = repeat("NOOP ", 'x', 505, "\n");
	char *endless = repeat("NOOP ", 'y', 5000, "\r\nNOOP\r\n");
	struct buf mail_long = BUF_INIT;
	char *mail_too_long = repeat("MAIL FROM:<a@x.org> ENVID=", 'e', 700, "\r\n");
	char *rcpt_long = repeat("RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;", 'o', 490,
				 "\r\n");
	char *rcpt_too_long = repeat("RCPT TO:<b@example.org> ORCPT=rfc822;", 'o', 1000, "\r\n");

	/* A long (247-octet) path and every MAIL parameter, the ENVID
	 * xtext-encoded: over 512, within 512 + 149. */
	buf_append_str(&mail_long, "MAIL FROM:<");
	for (int i = 0; i < 64; i++)
		buf_append_byte(&mail_long, 'l');
	buf_append_byte(&mail_long, '@');
	for (int i = 0; i < 170; i++)
		buf_append_byte(&mail_long, i % 61 == 60 ? '.' : 'd');
	buf_append_str(&mail_long, ".example> ENVID=");
	for (int i = 0; i < 100; i++)
		buf_append_str(&mail_long, "+41");
	buf_append_str(&mail_long, " RET=HDRS SIZE=12345678901234567890 BODY=8BITMIME SMTPUTF8\r\n");

	const struct step steps[] = {
		SEND(noop_510, OK),
		SEND(noop_511, E_TOO_LONG),
		SEND(noop_511lf, OK), /* 510 + LF: counted as 512 */
		SEND(endless, E_TOO_LONG OK),
		SEND("EHLO c.example\r\n", EHLO_OK),
		SEND(mail_too_long, E_TOO_LONG),
		SEND((const char *)mail_long.data, E_TOO_BIG),
		SEND("MAIL FROM:<a@x.org>\r\n", MAIL_OK),
		SEND(rcpt_too_long, E_TOO_LONG),
		SEND(rcpt_long, RCPT_OK),
	};

	(void)state;
	assert_int_equal(strlen(noop_510), 512);
	assert_true(mail_long.len > 512 && mail_long.len <= 661);
	assert_true(strlen(rcpt_long) > 512 && strlen(rcpt_long) < 1012);
	run_dynamic("line length", many_errors, steps, NELEM(steps));
	free(noop_510);
	free(noop_511);
	free(noop_511lf);
	free(endless);
	buf_free(&mail_long);
	free(mail_too_long);
	free(rcpt_long);
	free(rcpt_too_long);
}

/* test_long_message_lines - lines past 998 octets go through DATA and
 * BDAT unchanged. */
static void test_long_message_lines(void **state)
{
	char *line = repeat("", 'L', 5000, "\r\n");
	struct fake f;

	(void)state;
	fake_init(&f);
	f.config.max_message_size = 0;
	fake_start(&f, &fake_callbacks, GREETING);
	smtp_session_input(f.s, START_DATA, strlen(START_DATA));
	smtp_session_input(f.s, line, strlen(line));
	smtp_session_input(f.s, ".\r\n", 3);
	assert_int_equal(f.commits, 1);
	assert_int_equal(f.last.len, strlen(RECEIVED("c.example", "ESMTP", "QID1", "b@example.org")) + 5002);
	assert_memory_equal(f.last.data + f.last.len - 5002, line, 5002);
	fake_free(&f);
	free(line);
}

/* test_async_order - while an answer is pending nothing else is
 * answered; the buffered commands run, in order, after it. */
static void test_async_order(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f);
	f.async = true;
	fake_start(&f, &fake_callbacks, GREETING);
	input_str(&f, "EHLO c.example\r\nMAIL FROM:<a@x.org>\r\nNOOP\r\nRCPT TO:<b@example.org>\r\n");
	assert_string_equal(fake_output(&f), EHLO_OK);
	assert_int_equal(f.pend, P_MAIL);
	input_str(&f, "RCPT TO:<unknown@example.org>\r\nDATA\r\n");
	assert_string_equal(fake_output(&f), "");
	f.pend = P_NONE;
	smtp_session_mail_done(f.s, 0);
	assert_string_equal(fake_output(&f), MAIL_OK OK);
	assert_int_equal(f.pend, P_RCPT);
	f.pend = P_NONE;
	smtp_session_rcpt_done(f.s, 0);
	assert_string_equal(fake_output(&f), RCPT_OK);
	assert_int_equal(f.pend, P_RCPT);
	f.pend = P_NONE;
	smtp_session_rcpt_done(f.s, R_UNKNOWN_USER);
	assert_string_equal(fake_output(&f), E_UNKNOWN_USER);
	assert_int_equal(f.pend, P_OPEN);
	/* content pipelined before the 354 waits for it */
	input_str(&f, "body\r\n.\r\nQUIT\r\n");
	assert_string_equal(fake_output(&f), "");
	drain(&f);
	assert_string_equal(fake_output(&f), GO_AHEAD QUEUED("QID1") BYE);
	assert_int_equal(f.commits, 1);
	assert_int_equal(f.closes, 1);
	fake_free(&f);
}

/* test_late_answers - answers that arrive after the session ended are
 * ignored; an open that succeeds too late is discarded at once. */
static void test_late_answers(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f);
	f.async = true;
	fake_start(&f, &fake_callbacks, GREETING);
	smtp_session_input(f.s, START_DATA, strlen(START_DATA));
	drain(&f);
	assert_int_equal(f.pend, P_NONE);
	assert_string_equal(fake_output(&f), START_DATA_OK("10000"));
	/* freed with the DATA content file open: it is discarded */
	fake_free(&f);
	assert_int_equal(f.discards, 1);

	/* a data_open answer after the session timed out */

	fake_init(&f);
	f.async = true;
	fake_start(&f, &fake_callbacks, GREETING);
	input_str(&f, START_BDAT "BDAT 3 LAST\r\nabc");
	f.pend = P_NONE;
	smtp_session_mail_done(f.s, 0);
	f.pend = P_NONE;
	smtp_session_rcpt_done(f.s, 0);
	assert_int_equal(f.pend, P_OPEN);
	f.pend = P_NONE;
	smtp_session_timeout(f.s);
	assert_string_equal(fake_output(&f), START_BDAT_OK E_TIMEOUT);
	assert_int_equal(f.closes, 1);
	fake_answer(&f, P_OPEN, 0); /* too late: closed again at once */
	assert_false(f.file_open);
	assert_int_equal(f.discards, 1);
	smtp_session_mail_done(f.s, 0); /* ignored */
	assert_string_equal(fake_output(&f), "");
	fake_free(&f);

	/* a commit still running when the client times out */
	fake_init(&f);
	f.async = true;
	fake_start(&f, &fake_callbacks, GREETING);
	input_str(&f, START_DATA "x\r\n.\r\n");
	for (int i = 0; i < 3; i++) {
		enum pend kind = f.pend;

		f.pend = P_NONE;
		fake_answer(&f, kind, 0);
	}
	assert_int_equal(f.pend, P_DONE);
	assert_int_equal(f.commits, 1);
	smtp_session_timeout(f.s);
	drain(&f); /* the 250 is not sent any more */
	assert_string_equal(fake_output(&f), START_DATA_OK("10000") E_TIMEOUT);
	assert_int_equal(f.discards, 0);
	fake_free(&f);
}

/* test_free_in_callback - the application may free the session from
 * inside any callback; nothing is called after that. */
static void test_free_in_callback(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f);
	f.free_on_close = true;
	fake_start(&f, &fake_callbacks, GREETING);
	input_str(&f, "EHLO c\r\nQUIT\r\nNOOP\r\n");
	assert_null(f.s);
	assert_string_equal(fake_output(&f), "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10000\r\n"
					     "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n"
					     "250-CHUNKING\r\n250 DSN\r\n" BYE);
	fake_free(&f);

	/* freed while writing the message: the file is discarded there and
	 * then, and nothing else is called (no commit, no close, no 250) */
	fake_init(&f);
	fake_start(&f, &fake_callbacks, GREETING);
	input_str(&f, START_DATA);
	fake_output(&f);
	f.free_in_write = true;
	input_str(&f, "x\r\n.\r\nQUIT\r\n");
	assert_null(f.s);
	assert_int_equal(f.commits, 0);
	assert_int_equal(f.discards, 1);
	assert_int_equal(f.closes, 0);
	assert_string_equal(fake_output(&f), "");
	fake_free(&f);

	/* freed by the client going away in the middle of a message: the
	 * open file is discarded */
	fake_init(&f);
	fake_start(&f, &fake_callbacks, GREETING);
	input_str(&f, START_DATA "half\r\n");
	smtp_session_free(&f.s);
	assert_int_equal(f.discards, 1);
	assert_int_equal(f.closes, 0);
	assert_logged(&f, "lost connection after END-OF-MESSAGE from " CLIENT);
	assert_logged(&f, "disconnect from " CLIENT " ehlo=1 mail=1 rcpt=1 data=0/1 commands=3/4");
	fake_free(&f);

	/* freed again, through another pointer, from the data_close that
	 * the first free makes */
	fake_init(&f);
	fake_start(&f, &fake_callbacks, GREETING);
	input_str(&f, START_DATA "half\r\n");
	f.alias = f.s;
	smtp_session_free(&f.s);
	assert_null(f.alias);
	assert_int_equal(f.discards, 1);
	fake_free(&f);
}

/* test_input_in_callback - input given from inside a callback waits
 * until the engine is between steps: here the message content arrives
 * while the 354 is being written, before the Received header is. */
static void test_input_in_callback(void **state)
{
	struct fake f;

	(void)state;
	for (int async = 0; async < 2; async++) {
		fake_init(&f);
		f.async = async;
		fake_start(&f, &fake_callbacks, GREETING);
		f.input_on_354 = "Subject: s\r\n\r\nbody\r\n.\r\nQUIT\r\n";
		input_str(&f, START_DATA);
		drain(&f);
		assert_string_equal(fake_output(&f), START_DATA_OK("10000") QUEUED("QID1") BYE);
		assert_content(&f, RECEIVED("c.example", "ESMTP", "QID1", "b@example.org") "Subject: s\r\n\r\nbody\r\n");
		fake_free(&f);
	}
}

/* test_flow - while an answer is pending, buffered input past 64 KiB
 * pauses reading; the answer resumes it. */
static void test_flow(void **state)
{
	struct fake f;
	char *chunk = repeat("", 'z', 16384, "");
	char bdat[64];

	(void)state;
	fake_init(&f);
	f.async = true;
	f.config.max_message_size = 0;
	fake_start(&f, &fake_callbacks, GREETING);
	smtp_session_input(f.s, START_BDAT, strlen(START_BDAT));
	drain(&f);
	snprintf(bdat, sizeof bdat, "BDAT %d LAST\r\n", 16384 * 8);
	smtp_session_input(f.s, bdat, strlen(bdat));
	assert_int_equal(f.pend, P_OPEN);
	for (int i = 0; i < 8; i++)
		smtp_session_input(f.s, chunk, 16384);
	assert_int_equal(f.pauses, 1);
	assert_true(f.paused);
	drain(&f);
	assert_false(f.paused);
	assert_int_equal(f.resumes, 1);
	assert_string_equal(fake_output(&f), "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n"
					     "250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 DSN\r\n"
					     MAIL_OK RCPT_OK QUEUED("QID1"));
	assert_int_equal(f.last.len, strlen(RECEIVED("c.example", "ESMTP", "QID1", "b@example.org")) + 16384 * 8);
	fake_free(&f);
	free(chunk);
}

/* test_overflow - without flow control, the engine gives up once it
 * holds SMTP_INPUT_MAX octets it cannot process. */
static void test_overflow(void **state)
{
	struct smtp_server_callbacks cb = fake_callbacks;
	char *chunk = repeat("", 'z', 65536, "");
	struct fake f;

	(void)state;
	cb.flow = NULL;
	fake_init(&f);
	f.async = true;
	fake_start(&f, &cb, GREETING);
	input_str(&f, "EHLO c\r\nMAIL FROM:<a@x.org>\r\n");
	for (int i = 0; i < 17 && f.closes == 0; i++)
		smtp_session_input(f.s, chunk, 65536);
	assert_int_equal(f.closes, 1);
	assert_string_equal(fake_output(&f), "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10000\r\n"
					     "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n"
					     "250-CHUNKING\r\n250 DSN\r\n" E_OVERFLOW);
	drain(&f); /* the late MAIL answer is ignored */
	assert_string_equal(fake_output(&f), "");
	fake_free(&f);
	free(chunk);
}

/* test_junk_limit - more than 100 junk commands between messages count
 * as errors. */
static void test_junk_limit(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f);
	fake_start(&f, &fake_callbacks, GREETING);
	for (int i = 0; i < 100; i++)
		smtp_session_input(f.s, "NOOP\r\n", 6);
	assert_int_equal(f.closes, 0);
	for (int i = 0; i < 4; i++)
		smtp_session_input(f.s, "RSET\r\n", 6);
	assert_int_equal(f.closes, 0);
	fake_output(&f);
	smtp_session_input(f.s, "VRFY x\r\n", 8);
	assert_string_equal(fake_output(&f), VRFY E_TOO_MANY_ERRORS);
	assert_int_equal(f.closes, 1);
	assert_logged(&f, "too many junk commands from " CLIENT);
	fake_free(&f);
}

/* test_before_start - input before the greeting waits for it. */
static void test_before_start(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f);
	f.s = smtp_session_new(&f.config, &fake_callbacks, &f, "192.0.2.1", "client.example.net");
	smtp_session_input(f.s, "NOOP\r\n", 6);
	assert_string_equal(buf_cstr(&f.out), "");
	smtp_session_start(f.s);
	assert_string_equal(buf_cstr(&f.out), GREETING OK);
	fake_free(&f);

	/* shut down before it started: 421 instead of the greeting */
	fake_init(&f);
	f.s = smtp_session_new(&f.config, &fake_callbacks, &f, "192.0.2.1", "client.example.net");
	smtp_session_shutdown(f.s);
	smtp_session_start(f.s);
	smtp_session_input(f.s, "NOOP\r\n", 6);
	assert_string_equal(buf_cstr(&f.out), E_SHUTDOWN);
	assert_int_equal(f.closes, 1);
	fake_free(&f);

	/* freed before it ever started: nothing logged, nothing called */
	fake_init(&f);
	f.s = smtp_session_new(&f.config, &fake_callbacks, &f, NULL, NULL);
	smtp_session_free(&f.s);
	assert_string_equal(buf_cstr(&f.log), "");
	fake_free(&f);
}

/* ---- STARTTLS and AUTH ------------------------------------------- */

#define EHLO_TLS                                                                                   \
	"250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-STARTTLS\r\n250-8BITMIME\r\n" \
	"250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 DSN\r\n"
#define EHLO_AUTH                                                                                      \
	"250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n" \
	"250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 DSN\r\n"
#define TLS_GO "220 2.0.0 Ready to start TLS\r\n"
#define E_TLS_FIRST "530 5.7.0 Must issue a STARTTLS command first\r\n"
#define E_TLS_ACTIVE "503 5.5.1 TLS already active\r\n"
#define AUTH_OK "235 2.7.0 Authentication successful\r\n"
#define E_AUTH_REQUIRED "530 5.7.0 Authentication required\r\n"
#define E_AUTH_FAILED "535 5.7.8 Authentication credentials invalid\r\n"
#define E_AUTH_BAD_MECH "504 5.5.4 Unrecognized authentication mechanism\r\n"
#define E_AUTH_BASE64 "501 5.5.2 Cannot decode base64 response\r\n"
#define E_AUTH_CANCELLED "501 5.7.0 Authentication cancelled\r\n"
#define E_AUTH_ALREADY "503 5.5.1 Already authenticated\r\n"
#define E_AUTH_IN_MAIL "503 5.5.1 AUTH not allowed during a mail transaction\r\n"
#define E_AUTH_OFF "503 5.5.1 Authentication not enabled\r\n"
#define E_AUTH_TEMP "454 4.7.0 Temporary authentication failure, try again later\r\n"
/* "\0bob@example.org\0secret", "\0bob@example.org\0wrong" */
#define PLAIN_GOOD "AGJvYkBleGFtcGxlLm9yZwBzZWNyZXQ="
#define PLAIN_BAD "AGJvYkBleGFtcGxlLm9yZwB3cm9uZw=="

static void f_starttls(void *ctx)
{
	struct fake *f = ctx;

	f->starttls_calls++;
}

/* f_check_plain - "\0user\0password": user bob@example.org, password
 * "secret"; "temp" as the password stands for an unreadable table. */
static void f_check(struct fake *f, const char *user, const char *pass)
{
	if (strcmp(pass, "temp") == 0)
		smtp_session_auth_done(f->s, SMTP_AUTH_TEMP, NULL, 0, NULL);
	else if (strcmp(user, "bob@example.org") == 0 && strcmp(pass, "secret") == 0)
		smtp_session_auth_done(f->s, SMTP_AUTH_OK, NULL, 0, user);
	else
		smtp_session_auth_done(f->s, SMTP_AUTH_FAIL, NULL, 0, NULL);
}

static void f_auth_start(void *ctx, const char *mech, const void *resp, size_t len, bool has_resp)
{
	struct fake *f = ctx;

	if (strcmp(mech, "LOGIN") == 0) {
		f->login_stage = 1;
		smtp_session_auth_done(f->s, SMTP_AUTH_CONTINUE, "Username:", 9, NULL);
		return;
	}
	assert_string_equal(mech, "PLAIN");
	if (!has_resp) {
		smtp_session_auth_done(f->s, SMTP_AUTH_CONTINUE, "", 0, NULL);
		return;
	}
	{
		const char *p = resp;
		const char *u = len > 0 ? memchr(p + 1, '\0', len - 1) : NULL;
		char user[64] = "", pass[64] = "";

		if (len > 1 && p[0] == '\0' && u != NULL && (size_t)(u - p) < sizeof user &&
		    len - (size_t)(u - p) - 1 < sizeof pass) {
			memcpy(user, p + 1, (size_t)(u - p) - 1);
			memcpy(pass, u + 1, len - (size_t)(u - p) - 1);
		}
		f_check(f, user, pass);
	}
}

static void f_auth_step(void *ctx, const void *resp, size_t len)
{
	struct fake *f = ctx;
	char text[64] = "";

	memcpy(text, resp, len < sizeof text - 1 ? len : sizeof text - 1);
	if (f->login_stage == 1) {
		snprintf(f->login_user, sizeof f->login_user, "%s", text);
		f->login_stage = 2;
		smtp_session_auth_done(f->s, SMTP_AUTH_CONTINUE, "Password:", 9, NULL);
	} else if (f->login_stage == 2) {
		f->login_stage = 0;
		f_check(f, f->login_user, text);
	} else {
		f_auth_start(ctx, "PLAIN", resp, len, true);
	}
}

static void f_auth_cancel(void *ctx)
{
	struct fake *f = ctx;

	f->login_stage = 0;
	f->auth_cancels++;
}

static const struct smtp_server_callbacks tls_callbacks = {
	.write = f_write,
	.close = f_close,
	.mail = f_mail,
	.rcpt = f_rcpt,
	.data_open = f_data_open,
	.data_write = f_data_write,
	.data_close = f_data_close,
	.log = f_log,
	.flow = f_flow,
	.starttls = f_starttls,
	.auth_start = f_auth_start,
	.auth_step = f_auth_step,
	.auth_cancel = f_auth_cancel,
};

/* STARTTLS: offered before TLS only; what the client pipelined after it
 * is thrown away (CVE-2011-0411); the session starts over; the Received
 * header names the protocol version and cipher. */
static void test_starttls(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f);
	f.config.starttls = true;
	fake_start(&f, &tls_callbacks, GREETING);
	input_str(&f, "EHLO client.example.net\r\n");
	assert_string_equal(fake_output(&f), EHLO_TLS);
	/* AUTH waits for TLS: on the plain connection it is not offered */
	smtp_session_set_auth_mechs(f.s, NULL);
	input_str(&f, "AUTH PLAIN " PLAIN_GOOD "\r\n");
	assert_string_equal(fake_output(&f), E_TLS_FIRST);
	input_str(&f, "MAIL FROM:<a@example.net>\r\n");
	assert_string_equal(fake_output(&f), MAIL_OK);
	/* the injection: commands in the same packet as STARTTLS */
	input_str(&f, "STARTTLS\r\nRCPT TO:<evil@example.org>\r\n");
	assert_string_equal(fake_output(&f), TLS_GO);
	assert_int_equal(f.starttls_calls, 1);
	assert_logged(&f, "discarded 28 octets sent after STARTTLS by " CLIENT);
	/* and bytes that follow before the handshake is done */
	input_str(&f, "DATA\r\n");
	assert_string_equal(fake_output(&f), "");
	assert_int_equal(f.rcpts, 0);
	assert_int_equal(f.opens, 0);
	smtp_session_tls_started(f.s, "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256);
	/* everything from before is forgotten: EHLO again, MAIL again */
	input_str(&f, "RCPT TO:<bob@example.org>\r\n");
	assert_string_equal(fake_output(&f), E_NEED_HELO);
	input_str(&f, "EHLO client.example.net\r\n");
	assert_string_equal(fake_output(&f), EHLO_OK);
	input_str(&f, "STARTTLS\r\n");
	assert_string_equal(fake_output(&f), E_TLS_ACTIVE);
	input_str(&f, "RCPT TO:<bob@example.org>\r\n");
	assert_string_equal(fake_output(&f), E_NEED_MAIL);
	input_str(&f, "MAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nHi\r\n.\r\n");
	assert_string_equal(fake_output(&f), MAIL_OK RCPT_OK GO_AHEAD QUEUED("QID1"));
	assert_content(&f, "Received: from client.example.net (client.example.net [192.0.2.1])\r\n"
			   "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n"
			   RECEIVED_BY("ESMTPS", "QID1") "\r\n\tfor <bob@example.org>; " DATE "\r\nHi\r\n");
	fake_free(&f);

	/* not configured: not offered, and not an error */
	fake_init(&f);
	fake_start(&f, &tls_callbacks, GREETING);
	input_str(&f, "EHLO client.example.net\r\nSTARTTLS\r\n");
	assert_string_equal(fake_output(&f), EHLO_OK E_NOT_IMPL);
	assert_int_equal(f.starttls_calls, 0);
	fake_free(&f);
}

/* AUTH on a submission session: required before MAIL; PLAIN with and
 * without an initial response, LOGIN, cancel, bad base64, failures
 * counted as errors. */
static void test_auth(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f);
	f.config.auth_required = true;
	f.config.max_errors = 20;
	f.tls = true;
	fake_start(&f, &tls_callbacks, GREETING);
	smtp_session_set_auth_mechs(f.s, "PLAIN LOGIN");
	input_str(&f, "AUTH PLAIN " PLAIN_GOOD "\r\n");
	assert_string_equal(fake_output(&f), E_NEED_HELO);
	input_str(&f, "EHLO client.example.net\r\n");
	assert_string_equal(fake_output(&f), EHLO_AUTH);
	input_str(&f, "MAIL FROM:<bob@example.org>\r\n");
	assert_string_equal(fake_output(&f), E_AUTH_REQUIRED);
	assert_int_equal(f.mails, 0);
	input_str(&f, "AUTH CRAM-MD5\r\n");
	assert_string_equal(fake_output(&f), E_AUTH_BAD_MECH);
	input_str(&f, "AUTH PLAIN not-base64!\r\n");
	assert_string_equal(fake_output(&f), E_AUTH_BASE64);
	input_str(&f, "AUTH PLAIN " PLAIN_BAD "\r\n");
	assert_string_equal(fake_output(&f), E_AUTH_FAILED);
	input_str(&f, "AUTH plain " PLAIN_GOOD "x\r\n"); /* not canonical base64 */
	assert_string_equal(fake_output(&f), E_AUTH_BASE64);
	input_str(&f, "AUTH PLAIN " PLAIN_BAD "\r\n");
	assert_string_equal(fake_output(&f), E_AUTH_FAILED);
	input_str(&f, "AUTH PLAIN =\r\n"); /* an empty initial response */
	assert_string_equal(fake_output(&f), E_AUTH_FAILED);
	/* LOGIN, cancelled at the password */
	input_str(&f, "AUTH LOGIN\r\n");
	assert_string_equal(fake_output(&f), "334 VXNlcm5hbWU6\r\n");
	input_str(&f, "Ym9iQGV4YW1wbGUub3Jn\r\n");
	assert_string_equal(fake_output(&f), "334 UGFzc3dvcmQ6\r\n");
	input_str(&f, "*\r\n");
	assert_string_equal(fake_output(&f), E_AUTH_CANCELLED);
	assert_int_equal(f.auth_cancels, 1);
	/* a response that is not base64 ends the exchange too */
	input_str(&f, "AUTH LOGIN\r\n");
	assert_string_equal(fake_output(&f), "334 VXNlcm5hbWU6\r\n");
	input_str(&f, "bob@example.org\r\n");
	assert_string_equal(fake_output(&f), E_AUTH_BASE64);
	assert_int_equal(f.auth_cancels, 2);
	/* a temporary failure is not the client's error */
	input_str(&f, "AUTH PLAIN AGJvYkBleGFtcGxlLm9yZwB0ZW1w\r\n"); /* password "temp" */
	assert_string_equal(fake_output(&f), E_AUTH_TEMP);
	/* PLAIN without an initial response: "334 " and an empty challenge */
	input_str(&f, "AUTH PLAIN\r\n");
	assert_string_equal(fake_output(&f), "334 \r\n");
	input_str(&f, PLAIN_GOOD "\r\n");
	assert_string_equal(fake_output(&f), AUTH_OK);
	assert_string_equal(smtp_session_auth_user(f.s), "bob@example.org");
	input_str(&f, "AUTH PLAIN " PLAIN_GOOD "\r\n");
	assert_string_equal(fake_output(&f), E_AUTH_ALREADY);
	input_str(&f, "MAIL FROM:<bob@example.org> AUTH=<>\r\nRCPT TO:<friend@example.net>\r\nDATA\r\nHi\r\n.\r\n");
	assert_string_equal(fake_output(&f), MAIL_OK RCPT_OK GO_AHEAD QUEUED("QID1"));
	assert_content(&f, "Received: from client.example.net (client.example.net [192.0.2.1])\r\n"
			   "\t(Authenticated sender: bob@example.org)\r\n"
			   RECEIVED_BY("ESMTPSA", "QID1") "\r\n\tfor <friend@example.net>; " DATE "\r\nHi\r\n");
	assert_logged(&f, "QID1: client=" CLIENT ", sasl_method=PLAIN, sasl_username=bob@example.org");
	assert_int_equal(f.closes, 0);
	fake_free(&f);

	/* LOGIN to the end, inside a session that does not require AUTH;
	 * AUTH refused inside a transaction; five failures reach the error
	 * limit */
	fake_init(&f);
	f.tls = true;
	fake_start(&f, &tls_callbacks, GREETING);
	smtp_session_set_auth_mechs(f.s, "PLAIN LOGIN");
	input_str(&f, "EHLO client.example.net\r\nMAIL FROM:<a@example.net>\r\nAUTH LOGIN\r\nRSET\r\n");
	assert_string_equal(fake_output(&f), EHLO_AUTH MAIL_OK E_AUTH_IN_MAIL OK);
	input_str(&f, "AUTH LOGIN Ym9iQGV4YW1wbGUub3Jn\r\n"); /* LOGIN ignores an initial response here */
	assert_string_equal(fake_output(&f), "334 VXNlcm5hbWU6\r\n");
	input_str(&f, "Ym9iQGV4YW1wbGUub3Jn\r\nc2VjcmV0\r\n"); /* pipelined: the second waits its turn */
	assert_string_equal(fake_output(&f), "334 UGFzc3dvcmQ6\r\n" AUTH_OK);
	fake_free(&f);

	fake_init(&f);
	f.tls = true;
	fake_start(&f, &tls_callbacks, GREETING);
	smtp_session_set_auth_mechs(f.s, "PLAIN");
	input_str(&f, "EHLO client.example.net\r\n");
	fake_output(&f);
	for (int i = 0; i < 4; i++) {
		input_str(&f, "AUTH PLAIN " PLAIN_BAD "\r\n");
		assert_string_equal(fake_output(&f), E_AUTH_FAILED);
	}
	input_str(&f, "AUTH PLAIN " PLAIN_BAD "\r\n");
	assert_string_equal(fake_output(&f), E_AUTH_FAILED E_TOO_MANY_ERRORS);
	assert_int_equal(f.closes, 1);
	fake_free(&f);

	/* not offered at all */
	fake_init(&f);
	fake_start(&f, &tls_callbacks, GREETING);
	input_str(&f, "EHLO client.example.net\r\nAUTH PLAIN " PLAIN_GOOD "\r\n");
	assert_string_equal(fake_output(&f), EHLO_OK E_AUTH_OFF);
	fake_free(&f);
}

/* AUTH lines may be 12288 octets (RFC 4954 4); longer ones end the
 * exchange with 500 and the rest of the line is skipped. A session that
 * ends during an exchange cancels it. */
static void test_auth_lines(void **state)
{
	struct fake f;
	struct buf line = BUF_INIT;

	(void)state;
	fake_init(&f);
	f.tls = true;
	fake_start(&f, &tls_callbacks, GREETING);
	smtp_session_set_auth_mechs(f.s, "PLAIN LOGIN");
	input_str(&f, "EHLO client.example.net\r\n");
	fake_output(&f);
	buf_append_str(&line, "AUTH PLAIN ");
	while (line.len < 12000)
		buf_append_str(&line, "AAAA");
	buf_append_str(&line, "\r\n");
	smtp_session_input(f.s, line.data, line.len);
	assert_string_equal(fake_output(&f), E_AUTH_FAILED); /* long, but legal */
	input_str(&f, "AUTH LOGIN\r\n");
	assert_string_equal(fake_output(&f), "334 VXNlcm5hbWU6\r\n");
	buf_reset(&line);
	while (line.len < 13000)
		buf_append_str(&line, "AAAA");
	smtp_session_input(f.s, line.data, line.len);
	assert_string_equal(fake_output(&f), E_TOO_LONG);
	assert_int_equal(f.auth_cancels, 1);
	input_str(&f, "AAAA\r\nNOOP\r\n"); /* the rest of that line, then a command */
	assert_string_equal(fake_output(&f), OK);
	/* overlong with its line end in the same read: the same */
	input_str(&f, "AUTH LOGIN\r\n");
	assert_string_equal(fake_output(&f), "334 VXNlcm5hbWU6\r\n");
	buf_reset(&line);
	while (line.len < 13000)
		buf_append_str(&line, "AAAA");
	buf_append_str(&line, "\r\nNOOP\r\n");
	smtp_session_input(f.s, line.data, line.len);
	assert_string_equal(fake_output(&f), E_TOO_LONG OK);
	assert_int_equal(f.auth_cancels, 2);
	input_str(&f, "AUTH LOGIN\r\n");
	assert_string_equal(fake_output(&f), "334 VXNlcm5hbWU6\r\n");
	smtp_session_timeout(f.s);
	assert_string_equal(fake_output(&f), E_TIMEOUT);
	assert_int_equal(f.auth_cancels, 3);
	buf_free(&line);
	fake_free(&f);
}

/* test_misuse - an answer nobody asked for is a bug: log_panic. */
static void test_misuse(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f);
	fake_start(&f, &fake_callbacks, GREETING);
	UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "smtp_session_rcpt_done: no such request pending",
			  smtp_session_rcpt_done(f.s, 0));
	fake_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scripts),
		cmocka_unit_test(test_line_length),
		cmocka_unit_test(test_long_message_lines),
		cmocka_unit_test(test_async_order),
		cmocka_unit_test(test_late_answers),
		cmocka_unit_test(test_free_in_callback),
		cmocka_unit_test(test_input_in_callback),
		cmocka_unit_test(test_flow),
		cmocka_unit_test(test_overflow),
		cmocka_unit_test(test_junk_limit),
		cmocka_unit_test(test_before_start),
		cmocka_unit_test(test_misuse),
		cmocka_unit_test(test_starttls),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_auth_lines),
	};

	setenv("TZ", "UTC", 1);
	tzset();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
