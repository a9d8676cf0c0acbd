#include "config.h"
/* test_smtp_client.c - unit tests for libmail/smtp_client.c, the SMTP
 * client engine.
 *
 * Scripted conversations, the server engine's tests in reverse: each step
 * is what a fake server sends (or an event: TLS handshake done, timeout,
 * lost connection) and the exact bytes the client must write in answer.
 * A fake application gives the messages (the next one from message_done,
 * then QUIT), serves their content, and renders every result as one line
 * of text that the script's check compares. Every script runs three ways
 * with the same expected output: the server's bytes in whole steps with
 * the content read in one go; one octet at a time with the content read
 * one octet at a time; and in pieces of three with the content in pieces
 * of seven and the output "full" every other slice (flow control).
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libmail/smtp_client.h"
#include "../../libutil/buf.h"
#include "unit.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- what the server says ------------------------------------------- */

#define GREET "220 mx.example.org ESMTP\r\n"
#define EHLO "EHLO client.example.com\r\n"
#define HELO "HELO client.example.com\r\n"
#define QUIT "QUIT\r\n"
#define BYE "221 2.0.0 Bye\r\n"
#define EHLO_FULL                                                                                        \
	"250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n" \
	"250 ENHANCEDSTATUSCODES\r\n"
#define EHLO_NOPIPE "250-mx.example.org\r\n250-SIZE\r\n250 ENHANCEDSTATUSCODES\r\n"
#define EHLO_BARE "250 mx.example.org\r\n"
#define MAIL_OK "250 2.1.0 Ok\r\n"
#define RCPT_OK "250 2.1.5 Ok\r\n"
#define GO "354 End data with <CR><LF>.<CR><LF>\r\n"
#define QUEUED "250 2.0.0 Ok: queued as 4Tq\r\n"

/* ---- messages ------------------------------------------------------- */

struct msgspec {
	struct smtp_client_message msg;
	const char *content;
};

static const struct smtp_client_rcpt two_rcpts[] = {
	{ "b@example.org", 0, NULL },
	{ "c@example.org", 0, NULL },
};
static const struct smtp_client_rcpt one_rcpt[] = { { "b@example.org", 0, NULL } };
static const struct smtp_client_rcpt three_rcpts[] = {
	{ "ok@example.org", 0, NULL },
	{ "later@example.org", 0, NULL },
	{ "never@example.org", 0, NULL },
};

#define CONTENT "Received: from x\r\n\r\nHello\r\n"
#define STUFFED CONTENT ".\r\n"

static const struct msgspec msg_two = { { "a@example.com", 28, false, false, NULL, NULL, two_rcpts, 2 }, CONTENT };
static const struct msgspec msg_one = { { "a@example.com", 28, false, false, NULL, NULL, one_rcpt, 1 }, CONTENT };
static const struct msgspec msg_three = { { "a@example.com", -1, false, false, NULL, NULL, three_rcpts, 3 },
					  CONTENT };

/* ---- the fake application ---------------------------------------- */

enum mode { M_WHOLE, M_BYTES, M_PIECES, M_COUNT };
static const char *const mode_names[M_COUNT] = { "whole", "bytes", "pieces" };

struct fake {
	struct smtp_client *c;
	struct smtp_client_config config;
	enum mode mode;
	const struct msgspec *msgs[4];
	size_t nmsgs, next_msg;
	bool no_quit;          /* stay idle after the last message */
	const char *content;   /* the current message's */
	size_t content_pos;
	size_t read_max;       /* octets per read_content */
	long read_fail_at;     /* read_content fails once past this (-1: never) */
	bool flow;             /* output_full says "full" every other time */
	unsigned full_calls;
	bool blocked;
	struct buf out;
	size_t out_seen;
	struct buf results;    /* rendered results and close */
	struct buf log;
	int dones, closes, tls_calls;
	bool tls_wanted;       /* want_tls called, not answered yet */
	bool free_in_done, free_in_close, free_in_write, free_in_read, free_in_tls;
	const char *input_in_write; /* given from inside the next write */
};

static void render_result(struct buf *out, const struct smtp_client_result *r)
{
	static const char *const names[] = { "delivered", "deferred", "failed" };

	buf_printf(out, "%s %d %s [%s%s] %s: %s", names[r->status], r->code, r->enhanced, r->remote ? "r" : "",
		   r->next_host ? "n" : "", smtp_client_stage_name(r->stage), r->text);
	for (const char *p = r->text; *p; p++)
		if ((unsigned char)*p < 32 || (unsigned char)*p > 126)
			fail_msg("result text with octet %#x", (unsigned char)*p);
	assert_int_equal(r->enhanced[0], "245"[r->status]);
}

static void give_next(struct fake *f)
{
	const struct msgspec *m = f->msgs[f->next_msg++];

	f->content = m->content;
	f->content_pos = 0;
	smtp_client_send(f->c, &m->msg);
}

static void f_write(void *ctx, const void *data, size_t len)
{
	struct fake *f = ctx;

	if (f->closes > 0)
		fail_msg("write after close: \"%.*s\"", (int)len, (const char *)data);
	assert_true(len > 0);
	buf_append(&f->out, data, len);
	if (f->free_in_write) {
		smtp_client_free(&f->c);
		return;
	}
	if (f->input_in_write != NULL) {
		const char *in = f->input_in_write;

		f->input_in_write = NULL;
		smtp_client_input(f->c, in, strlen(in));
	}
}

static ssize_t f_read_content(void *ctx, void *buf, size_t max)
{
	struct fake *f = ctx;
	size_t left = strlen(f->content) - f->content_pos, n = left < max ? left : max;

	assert_true(max > 0);
	if (f->free_in_read) {
		smtp_client_free(&f->c);
		return 0;
	}
	if (f->read_max > 0 && n > f->read_max)
		n = f->read_max;
	if (f->read_fail_at >= 0 && f->content_pos + n > (size_t)f->read_fail_at)
		return -1;
	memcpy(buf, f->content + f->content_pos, n);
	f->content_pos += n;
	return (ssize_t)n;
}

static void f_message_done(void *ctx, const struct smtp_client_result *results, size_t n, bool reusable)
{
	struct fake *f = ctx;

	assert_int_equal(f->closes, 0);
	f->dones++;
	buf_printf(&f->results, "msg%d%s:\n", f->dones, reusable ? "" : " (session over)");
	for (size_t i = 0; i < n; i++) {
		buf_printf(&f->results, " %zu: ", i);
		render_result(&f->results, &results[i]);
		buf_append_str(&f->results, "\n");
	}
	if (f->free_in_done) {
		smtp_client_free(&f->c);
		return;
	}
	if (!reusable)
		return;
	assert_int_equal(smtp_client_stage(f->c), SMTP_STAGE_IDLE);
	if (f->next_msg < f->nmsgs)
		give_next(f);
	else if (!f->no_quit)
		smtp_client_quit(f->c);
}

static void f_close(void *ctx, const struct smtp_client_result *why)
{
	struct fake *f = ctx;

	assert_int_equal(f->closes, 0);
	f->closes++;
	buf_append_str(&f->results, "close: ");
	if (why == NULL)
		buf_append_str(&f->results, "ok");
	else
		render_result(&f->results, why);
	buf_append_str(&f->results, "\n");
	if (f->free_in_close)
		smtp_client_free(&f->c);
}

static void f_want_tls(void *ctx)
{
	struct fake *f = ctx;

	assert_false(f->tls_wanted);
	f->tls_calls++;
	f->tls_wanted = true;
	if (f->free_in_tls)
		smtp_client_free(&f->c);
}

static bool f_output_full(void *ctx)
{
	struct fake *f = ctx;

	if (!f->flow || f->full_calls++ % 2 == 0)
		return false;
	f->blocked = true;
	return true;
}

static void f_log(void *ctx, const char *line)
{
	struct fake *f = ctx;

	for (const char *p = line; *p; p++)
		if ((unsigned char)*p < 32 || (unsigned char)*p > 126)
			fail_msg("log line with octet %#x: %s", (unsigned char)*p, line);
	buf_append_str(&f->log, line);
	buf_append_byte(&f->log, '\n');
}

static const struct smtp_client_callbacks fake_callbacks = {
	.write = f_write,
	.read_content = f_read_content,
	.message_done = f_message_done,
	.close = f_close,
	.want_tls = f_want_tls,
	.output_full = f_output_full,
	.log = f_log,
};

static void fake_init(struct fake *f, enum mode mode)
{
	memset(f, 0, sizeof *f);
	f->mode = mode;
	f->config.helo_name = "client.example.com";
	f->config.tls = SMTP_CLIENT_TLS_NONE;
	f->read_fail_at = -1;
	f->read_max = mode == M_BYTES ? 1 : mode == M_PIECES ? 7 : 0;
	f->flow = mode == M_PIECES;
}

/* fake_start - the engine, with the first message (if any) given. */
static void fake_start(struct fake *f)
{
	f->c = smtp_client_new(&f->config, &fake_callbacks, f);
	assert_int_equal(smtp_client_stage(f->c), SMTP_STAGE_GREETING);
	if (f->nmsgs > 0)
		give_next(f);
}

static void fake_free(struct fake *f)
{
	smtp_client_free(&f->c);
	assert_null(f->c);
	buf_free(&f->out);
	buf_free(&f->results);
	buf_free(&f->log);
}

static const char *fake_output(struct fake *f)
{
	const char *p = buf_cstr(&f->out) + f->out_seen;

	f->out_seen = f->out.len;
	return p;
}

/* unblock - the output drained: let the engine go on while it wants. */
static void unblock(struct fake *f)
{
	while (f->blocked && f->c != NULL) {
		f->blocked = false;
		smtp_client_output_ready(f->c);
	}
}

/* server - the server's bytes, fed as the mode says. */
static void server(struct fake *f, const char *in, size_t len)
{
	size_t step = f->mode == M_BYTES ? 1 : f->mode == M_PIECES ? 3 : len;

	for (size_t pos = 0; pos < len && f->c != NULL; pos += step) {
		size_t n = len - pos < step ? len - pos : step;
		char *copy = malloc(n);

		assert_non_null(copy);
		memcpy(copy, in + pos, n); /* exact size: no reading past it */
		smtp_client_input(f->c, copy, n);
		free(copy);
		unblock(f);
	}
}

static void server_str(struct fake *f, const char *in)
{
	server(f, in, strlen(in));
}

/* ---- scripts ------------------------------------------------------ */

enum action { A_SERVER, A_TLS_OK, A_TLS_FAIL, A_TIMEOUT, A_LOST, A_QUIT };

struct step {
	enum action action;
	const char *in;
	const char *out;
	enum smtp_client_stage stage; /* after the step */
};

#define S(in, out, stage) { A_SERVER, in, out, SMTP_STAGE_##stage }
#define TLS_OK(out) { A_TLS_OK, NULL, out, SMTP_STAGE_HELO }
#define TLS_FAIL(out) { A_TLS_FAIL, NULL, out, SMTP_STAGE_CLOSED }
#define TIMEOUT(out) { A_TIMEOUT, NULL, out, SMTP_STAGE_CLOSED }
#define LOST(out) { A_LOST, NULL, out, SMTP_STAGE_CLOSED }

struct script {
	const char *name;
	const struct step *steps;
	size_t nsteps;
	void (*setup)(struct fake *f);
	const char *results; /* everything rendered, close included */
};

static void run_step(struct fake *f, const struct script *sc, size_t n)
{
	const struct step *st = &sc->steps[n];
	const char *got;

	switch (st->action) {
	case A_SERVER:
		server_str(f, st->in);
		break;
	case A_TLS_OK:
	case A_TLS_FAIL:
		assert_true(f->tls_wanted);
		f->tls_wanted = false;
		smtp_client_tls_done(f->c, st->action == A_TLS_OK);
		unblock(f);
		break;
	case A_TIMEOUT:
		smtp_client_timeout(f->c);
		break;
	case A_LOST:
		smtp_client_lost(f->c, "Connection reset by peer");
		break;
	case A_QUIT:
		smtp_client_quit(f->c);
		break;
	}
	got = fake_output(f);
	if (strcmp(got, st->out) != 0)
		fail_msg("%s (%s), step %zu: output\n\"%s\"\nwant\n\"%s\"", sc->name, mode_names[f->mode], n, got,
			 st->out);
	if (f->c != NULL && smtp_client_stage(f->c) != st->stage)
		fail_msg("%s (%s), step %zu: stage %s, want %s", sc->name, mode_names[f->mode], n,
			 smtp_client_stage_name(smtp_client_stage(f->c)), smtp_client_stage_name(st->stage));
}

static void run_script(const struct script *sc)
{
	for (int mode = 0; mode < M_COUNT; mode++) {
		struct fake f;

		fake_init(&f, (enum mode)mode);
		if (sc->setup != NULL)
			sc->setup(&f);
		fake_start(&f);
		for (size_t i = 0; i < sc->nsteps; i++)
			run_step(&f, sc, i);
		if (strcmp(buf_cstr(&f.results), sc->results) != 0)
			fail_msg("%s (%s): results\n%s\nwant\n%s", sc->name, mode_names[mode], buf_cstr(&f.results),
				 sc->results);
		assert_int_equal(f.closes, 1);
		assert_true(smtp_client_closed(f.c));
		/* nothing comes after close */
		smtp_client_input(f.c, "250 more\r\n", 10);
		smtp_client_timeout(f.c);
		smtp_client_lost(f.c, NULL);
		smtp_client_quit(f.c);
		assert_string_equal(fake_output(&f), "");
		fake_free(&f);
	}
}

#define SCRIPT(name, setup, results) { #name, name, NELEM(name), setup, results }

static void setup_two(struct fake *f)
{
	f->msgs[f->nmsgs++] = &msg_two;
}

static void setup_one(struct fake *f)
{
	f->msgs[f->nmsgs++] = &msg_one;
}

static void setup_three(struct fake *f)
{
	f->msgs[f->nmsgs++] = &msg_three;
}

/* -- the happy path, pipelined ------------------------------------- */

static const struct step pipelined[] = {
	S("220-mx.example.org ESMTP\r\n220 second line\r\n", EHLO, HELO),
	S(EHLO_FULL, "MAIL FROM:<a@example.com> SIZE=28\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n"
		     "DATA\r\n",
	  MAIL),
	S(MAIL_OK, "", RCPT),
	S(RCPT_OK RCPT_OK, "", DATA),
	S(GO, STUFFED, DOT),
	S(QUEUED, QUIT, QUIT),
	S(BYE, "", CLOSED),
};
#define DELIVERED2                                                        \
	"msg1:\n"                                                         \
	" 0: delivered 250 2.0.0 [r] end of DATA: Ok: queued as 4Tq\n"    \
	" 1: delivered 250 2.0.0 [r] end of DATA: Ok: queued as 4Tq\n"

/* -- one command at a time ----------------------------------------- */

static const struct step unpipelined[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_NOPIPE, "MAIL FROM:<a@example.com> SIZE=28\r\n", MAIL),
	S(MAIL_OK, "RCPT TO:<b@example.org>\r\n", RCPT),
	S(RCPT_OK, "RCPT TO:<c@example.org>\r\n", RCPT),
	S(RCPT_OK, "DATA\r\n", DATA),
	S(GO, STUFFED, DOT),
	S(QUEUED, QUIT, QUIT),
	S(BYE, "", CLOSED),
};

/* no_pipelining in the config: one at a time even when offered */
static void setup_nopipe_config(struct fake *f)
{
	setup_one(f);
	f->config.no_pipelining = true;
}

static const struct step nopipe_config[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_FULL, "MAIL FROM:<a@example.com> SIZE=28\r\n", MAIL),
	S(MAIL_OK, "RCPT TO:<b@example.org>\r\n", RCPT),
	S(RCPT_OK, "DATA\r\n", DATA),
	S(GO, STUFFED, DOT),
	S(QUEUED, QUIT, QUIT),
	S(BYE, "", CLOSED),
};
#define DELIVERED1                                                     \
	"msg1:\n"                                                      \
	" 0: delivered 250 2.0.0 [r] end of DATA: Ok: queued as 4Tq\n"

/* -- HELO fallback -------------------------------------------------- */

static const struct step helo_fallback[] = {
	S(GREET, EHLO, HELO),
	S("502 5.5.2 Error: command not recognized\r\n", HELO, HELO),
	S("250 mx.example.org\r\n", "MAIL FROM:<a@example.com>\r\n", MAIL),
	S(MAIL_OK, "RCPT TO:<b@example.org>\r\n", RCPT),
	S("250 Ok\r\n", "DATA\r\n", DATA),
	S(GO, STUFFED, DOT),
	S("250 Ok\r\n", QUIT, QUIT),
	S(BYE, "", CLOSED),
};

/* EHLO 4xx: no HELO, a deferral for another host */
static const struct step ehlo_4xx[] = {
	S(GREET, EHLO, HELO),
	S("451 4.3.0 try later\r\n", QUIT, CLOSED),
};
#define EHLO_4XX                                                       \
	"msg1 (session over):\n"                                       \
	" 0: deferred 451 4.3.0 [rn] EHLO/HELO: try later\n"           \
	"close: deferred 451 4.3.0 [rn] EHLO/HELO: try later\n"

/* HELO refused too */
static const struct step helo_5xx[] = {
	S(GREET, EHLO, HELO),
	S("500 what\r\n", HELO, HELO),
	S("550 5.7.1 go away\r\n", QUIT, CLOSED),
};
#define HELO_5XX                                                       \
	"msg1 (session over):\n"                                       \
	" 0: deferred 550 4.7.1 [rn] EHLO/HELO: go away\n"             \
	"close: deferred 550 4.7.1 [rn] EHLO/HELO: go away\n"

/* -- SIZE ----------------------------------------------------------- */

static const struct msgspec msg_big = { { "a@example.com", 20000, false, false, NULL, NULL, two_rcpts, 2 },
					CONTENT };

static void setup_big(struct fake *f)
{
	f->msgs[f->nmsgs++] = &msg_big;
}

static const struct step size_refused[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_FULL, QUIT, QUIT),
	S(BYE, "", CLOSED),
};
#define SIZE_REFUSED                                                                                         \
	"msg1:\n"                                                                                            \
	" 0: failed 552 5.3.4 [] MAIL FROM: message size 20000 exceeds size limit 10000 of the server\n"    \
	" 1: failed 552 5.3.4 [] MAIL FROM: message size 20000 exceeds size limit 10000 of the server\n"    \
	"close: ok\n"

/* SIZE without a limit: SIZE= still goes on MAIL */
static const struct step size_no_limit[] = {
	S(GREET, EHLO, HELO),
	S("250-mx\r\n250-PIPELINING\r\n250 SIZE\r\n",
	  "MAIL FROM:<a@example.com> SIZE=20000\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n",
	  MAIL),
	S(MAIL_OK RCPT_OK RCPT_OK GO, STUFFED, DOT),
	S(QUEUED, QUIT, QUIT),
	S(BYE, "", CLOSED),
};

/* -- SMTPUTF8 ------------------------------------------------------- */

static const struct smtp_client_rcpt utf8_rcpt[] = { { "j\xc3\xbcrgen@example.org", 0, NULL } };
static const struct msgspec msg_utf8 = { { "a@example.com", 28, false, false, NULL, NULL, utf8_rcpt, 1 },
					 CONTENT };
static const struct msgspec msg_utf8_hdr = { { "a@example.com", -1, true, true, NULL, NULL, one_rcpt, 1 },
					     CONTENT };

static void setup_utf8(struct fake *f)
{
	f->msgs[f->nmsgs++] = &msg_utf8;
	f->msgs[f->nmsgs++] = &msg_utf8_hdr;
}

static const struct step utf8_refused[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_NOPIPE, QUIT, QUIT),
	S(BYE, "", CLOSED),
};
#define UTF8_REFUSED                                                                                \
	"msg1:\n"                                                                                   \
	" 0: failed 554 5.6.7 [] MAIL FROM: SMTPUTF8 is required, but was not offered by the server\n" \
	"msg2:\n"                                                                                   \
	" 0: failed 554 5.6.7 [] MAIL FROM: SMTPUTF8 is required, but was not offered by the server\n" \
	"close: ok\n"

static const struct step utf8_offered[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_FULL,
	  "MAIL FROM:<a@example.com> SIZE=28 SMTPUTF8\r\nRCPT TO:<j\xc3\xbcrgen@example.org>\r\nDATA\r\n", MAIL),
	S(MAIL_OK RCPT_OK GO, STUFFED, DOT),
	S(QUEUED, "MAIL FROM:<a@example.com> BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<b@example.org>\r\nDATA\r\n", MAIL),
	S(MAIL_OK RCPT_OK GO, STUFFED, DOT),
	S(QUEUED, QUIT, QUIT),
	S(BYE, "", CLOSED),
};
#define DELIVERED_1_1 DELIVERED1 "msg2:\n 0: delivered 250 2.0.0 [r] end of DATA: Ok: queued as 4Tq\n"

/* -- 8BITMIME ------------------------------------------------------ */

static const struct msgspec msg_8bit = { { "a@example.com", 28, true, false, NULL, NULL, one_rcpt, 1 },
					 "Subject: \xc3\xa9t\xc3\xa9\r\n\r\n\xff\r\n" };

static void setup_8bit(struct fake *f)
{
	f->msgs[f->nmsgs++] = &msg_8bit;
	f->msgs[f->nmsgs++] = &msg_8bit;
}

/* offered: BODY=8BITMIME; after RSET-less reuse, the same again */
static const struct step eightbit[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_FULL, "MAIL FROM:<a@example.com> SIZE=28 BODY=8BITMIME\r\nRCPT TO:<b@example.org>\r\nDATA\r\n", MAIL),
	S(MAIL_OK RCPT_OK GO, "Subject: \xc3\xa9t\xc3\xa9\r\n\r\n\xff\r\n.\r\n", DOT),
	S(QUEUED, "MAIL FROM:<a@example.com> SIZE=28 BODY=8BITMIME\r\nRCPT TO:<b@example.org>\r\nDATA\r\n", MAIL),
	S(MAIL_OK RCPT_OK GO, "Subject: \xc3\xa9t\xc3\xa9\r\n\r\n\xff\r\n.\r\n", DOT),
	S(QUEUED, QUIT, QUIT),
	S(BYE, "", CLOSED),
};

/* not offered: sent as it is, no BODY= */
static const struct step eightbit_not_offered[] = {
	S(GREET, EHLO, HELO),
	S("250-mx\r\n250 PIPELINING\r\n", "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n", MAIL),
	S(MAIL_OK RCPT_OK GO, "Subject: \xc3\xa9t\xc3\xa9\r\n\r\n\xff\r\n.\r\n", DOT),
	S(QUEUED, "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n", MAIL),
	S(MAIL_OK RCPT_OK GO, "Subject: \xc3\xa9t\xc3\xa9\r\n\r\n\xff\r\n.\r\n", DOT),
	S(QUEUED, QUIT, QUIT),
	S(BYE, "", CLOSED),
};

/* -- DSN ---------------------------------------------------------- */

static const struct smtp_client_rcpt dsn_rcpts[] = {
	{ "b@example.org", SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE, "rfc822;b+x@example.org" },
	{ "c@example.org", SMTP_NOTIFY_NEVER, NULL },
	{ "d@example.org", SMTP_NOTIFY_DELAY | SMTP_NOTIFY_NEVER, "bad orcpt" },
	{ "e@example.org", 0, "utf-8;\xc3\xa9=x" },
};
static const struct msgspec msg_dsn = { { "", 28, false, false, "hdrs", "id 1+2", dsn_rcpts, 4 }, CONTENT };

static void setup_dsn(struct fake *f)
{
	f->msgs[f->nmsgs++] = &msg_dsn;
	f->msgs[f->nmsgs++] = &msg_dsn;
}

#define DSN_CMDS                                                                            \
	"MAIL FROM:<> SIZE=28 RET=HDRS ENVID=id+201+2B2\r\n"                                 \
	"RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx@example.org\r\n" \
	"RCPT TO:<c@example.org> NOTIFY=NEVER\r\n"                                          \
	"RCPT TO:<d@example.org> NOTIFY=DELAY\r\n"                                          \
	"RCPT TO:<e@example.org> ORCPT=utf-8;+C3+A9+3Dx\r\n"                                \
	"DATA\r\n"
#define NODSN_CMDS                                                                                         \
	"MAIL FROM:<> SIZE=28\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nRCPT TO:<d@example.org>\r\n" \
	"RCPT TO:<e@example.org>\r\nDATA\r\n"

static const struct step dsn[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_FULL, DSN_CMDS, MAIL),
	S(MAIL_OK RCPT_OK RCPT_OK RCPT_OK RCPT_OK GO, STUFFED, DOT),
	S("250 ok\r\n", DSN_CMDS, MAIL),
	S(MAIL_OK RCPT_OK RCPT_OK RCPT_OK RCPT_OK GO, STUFFED, DOT),
	S("250 ok\r\n", QUIT, QUIT),
	S(BYE, "", CLOSED),
};

static const struct step dsn_not_offered[] = {
	S(GREET, EHLO, HELO),
	S("250-mx\r\n250-PIPELINING\r\n250 SIZE 100000\r\n", NODSN_CMDS, MAIL),
	S(MAIL_OK RCPT_OK RCPT_OK RCPT_OK RCPT_OK GO, STUFFED, DOT),
	S("250 ok\r\n", NODSN_CMDS, MAIL),
	S(MAIL_OK RCPT_OK RCPT_OK RCPT_OK RCPT_OK GO, STUFFED, DOT),
	S("250 ok\r\n", QUIT, QUIT),
	S(BYE, "", CLOSED),
};
#define DSN_DELIVERED                                        \
	"msg1:\n"                                            \
	" 0: delivered 250 2.0.0 [r] end of DATA: ok\n"      \
	" 1: delivered 250 2.0.0 [r] end of DATA: ok\n"      \
	" 2: delivered 250 2.0.0 [r] end of DATA: ok\n"      \
	" 3: delivered 250 2.0.0 [r] end of DATA: ok\n"      \
	"msg2:\n"                                            \
	" 0: delivered 250 2.0.0 [r] end of DATA: ok\n"      \
	" 1: delivered 250 2.0.0 [r] end of DATA: ok\n"      \
	" 2: delivered 250 2.0.0 [r] end of DATA: ok\n"      \
	" 3: delivered 250 2.0.0 [r] end of DATA: ok\n"      \
	"close: ok\n"

/* -- recipients: 2xx, 4xx, 5xx; DATA refused ------------------------ */

#define THREE_CMDS \
	"MAIL FROM:<a@example.com>\r\nRCPT TO:<ok@example.org>\r\nRCPT TO:<later@example.org>\r\n" \
	"RCPT TO:<never@example.org>\r\nDATA\r\n"

static const struct step rcpt_mixed[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_FULL, THREE_CMDS, MAIL),
	S(MAIL_OK RCPT_OK "450-4.2.1 mailbox busy\r\n450 4.2.1 try later\r\n"
			  "550 5.1.1 <never@example.org>: user unknown\r\n" GO,
	  STUFFED, DOT),
	S(QUEUED, QUIT, QUIT),
	S(BYE, "", CLOSED),
};
#define RCPT_MIXED                                                                  \
	"msg1:\n"                                                                   \
	" 0: delivered 250 2.0.0 [r] end of DATA: Ok: queued as 4Tq\n"              \
	" 1: deferred 450 4.2.1 [r] RCPT TO: mailbox busy try later\n"              \
	" 2: failed 550 5.1.1 [r] RCPT TO: <never@example.org>: user unknown\n"     \
	"close: ok\n"

static const struct step data_4xx[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_FULL, THREE_CMDS, MAIL),
	S(MAIL_OK RCPT_OK RCPT_OK "550 5.1.1 unknown\r\n451 4.3.0 queue trouble\r\n", QUIT, QUIT),
	S(BYE, "", CLOSED),
};
#define DATA_4XX                                                      \
	"msg1:\n"                                                     \
	" 0: deferred 451 4.3.0 [r] DATA: queue trouble\n"            \
	" 1: deferred 451 4.3.0 [r] DATA: queue trouble\n"            \
	" 2: failed 550 5.1.1 [r] RCPT TO: unknown\n"                 \
	"close: ok\n"

/* the end of DATA refused (no enhanced code given: X.0.0) */
static const struct step dot_5xx[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_FULL, THREE_CMDS, MAIL),
	S(MAIL_OK RCPT_OK RCPT_OK "452 4.5.3 too many\r\n" GO, STUFFED, DOT),
	S("554 spam\r\n", QUIT, QUIT),
	S(BYE, "", CLOSED),
};
#define DOT_5XX                                              \
	"msg1:\n"                                            \
	" 0: failed 554 5.0.0 [r] end of DATA: spam\n"       \
	" 1: failed 554 5.0.0 [r] end of DATA: spam\n"       \
	" 2: deferred 452 4.5.3 [r] RCPT TO: too many\n"     \
	"close: ok\n"

/* MAIL refused, pipelined: the RCPT and DATA replies are only read */
static const struct step mail_5xx[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_FULL, THREE_CMDS, MAIL),
	S("553 5.7.1 sender rejected\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n", "", DATA),
	S("554 5.5.1 no valid recipients\r\n", QUIT, QUIT),
	S(BYE, "", CLOSED),
};
#define MAIL_5XX                                                     \
	"msg1:\n"                                                    \
	" 0: failed 553 5.7.1 [r] MAIL FROM: sender rejected\n"      \
	" 1: failed 553 5.7.1 [r] MAIL FROM: sender rejected\n"      \
	" 2: failed 553 5.7.1 [r] MAIL FROM: sender rejected\n"      \
	"close: ok\n"

/* MAIL 4xx without pipelining: nothing more is sent */
static const struct step mail_4xx_nopipe[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_NOPIPE, "MAIL FROM:<a@example.com>\r\n", MAIL),
	S("451 4.3.0 try later\r\n", QUIT, QUIT),
	S(BYE, "", CLOSED),
};
#define MAIL_4XX                                                     \
	"msg1:\n"                                                    \
	" 0: deferred 451 4.3.0 [r] MAIL FROM: try later\n"          \
	" 1: deferred 451 4.3.0 [r] MAIL FROM: try later\n"          \
	" 2: deferred 451 4.3.0 [r] MAIL FROM: try later\n"          \
	"close: ok\n"

/* every RCPT refused without pipelining: no DATA */
static const struct step all_rcpts_refused[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_NOPIPE, "MAIL FROM:<a@example.com>\r\n", MAIL),
	S(MAIL_OK, "RCPT TO:<ok@example.org>\r\n", RCPT),
	S("550 5.1.1 no\r\n", "RCPT TO:<later@example.org>\r\n", RCPT),
	S("550 5.1.1 no\r\n", "RCPT TO:<never@example.org>\r\n", RCPT),
	S("450 4.1.1 hmm\r\n", QUIT, QUIT),
	S(BYE, "", CLOSED),
};
#define ALL_REFUSED                                          \
	"msg1:\n"                                            \
	" 0: failed 550 5.1.1 [r] RCPT TO: no\n"             \
	" 1: failed 550 5.1.1 [r] RCPT TO: no\n"             \
	" 2: deferred 450 4.1.1 [r] RCPT TO: hmm\n"          \
	"close: ok\n"

/* pipelined, every RCPT refused, and the server still says 354: an empty
 * message, its reply ignored; the next message starts with RSET */
static void setup_three_then_one(struct fake *f)
{
	f->msgs[f->nmsgs++] = &msg_three;
	f->msgs[f->nmsgs++] = &msg_one;
}

static const struct step broken_354[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_FULL, THREE_CMDS, MAIL),
	S(MAIL_OK "550 no\r\n550 no\r\n550 no\r\n" GO, ".\r\n", DOT),
	S("554 no message\r\n",
	  "RSET\r\nMAIL FROM:<a@example.com> SIZE=28\r\nRCPT TO:<b@example.org>\r\nDATA\r\n", RSET),
	S("250 2.0.0 ok\r\n" MAIL_OK RCPT_OK GO, STUFFED, DOT),
	S(QUEUED, QUIT, QUIT),
	S(BYE, "", CLOSED),
};
#define BROKEN_354                                                   \
	"msg1:\n"                                                    \
	" 0: failed 550 5.0.0 [r] RCPT TO: no\n"                     \
	" 1: failed 550 5.0.0 [r] RCPT TO: no\n"                     \
	" 2: failed 550 5.0.0 [r] RCPT TO: no\n" DELIVERED1_AS_MSG2  \
	"close: ok\n"
#define DELIVERED1_AS_MSG2 "msg2:\n 0: delivered 250 2.0.0 [r] end of DATA: Ok: queued as 4Tq\n"

/* 421 in the middle: no QUIT, the open recipients deferred with it */
static const struct step mid_421[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_FULL, THREE_CMDS, MAIL),
	S(MAIL_OK "550 5.1.1 no\r\n421 4.3.2 shutting down\r\n", "", CLOSED),
};
#define MID_421                                                      \
	"msg1 (session over):\n"                                     \
	" 0: failed 550 5.1.1 [r] RCPT TO: no\n"                     \
	" 1: deferred 421 4.3.2 [rn] RCPT TO: shutting down\n"       \
	" 2: deferred 421 4.3.2 [rn] RCPT TO: shutting down\n"       \
	"close: deferred 421 4.3.2 [rn] RCPT TO: shutting down\n"

/* -- content ------------------------------------------------------- */

static const struct msgspec msg_dots = {
	{ "a@example.com", -1, false, false, NULL, NULL, one_rcpt, 1 },
	".hidden\r\n..two\r\nx.y\r\n.\r\n.\r\n\r\n. \r\nend"
};
static const struct msgspec msg_bare = { { "a@example.com", -1, false, false, NULL, NULL, one_rcpt, 1 },
					 "a\nb\rc\r\r\n.\n.\r.x\r" };
static const struct msgspec msg_empty = { { "a@example.com", 0, false, false, NULL, NULL, one_rcpt, 1 }, "" };
static const struct msgspec msg_dot_only = { { "a@example.com", 1, false, false, NULL, NULL, one_rcpt, 1 }, "." };

static void setup_content(struct fake *f)
{
	f->msgs[f->nmsgs++] = &msg_dots;
	f->msgs[f->nmsgs++] = &msg_bare;
	f->msgs[f->nmsgs++] = &msg_empty;
	f->msgs[f->nmsgs++] = &msg_dot_only;
}

#define ONE_CMDS "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"

static const struct step content[] = {
	S(GREET, EHLO, HELO),
	S("250-mx\r\n250 PIPELINING\r\n", ONE_CMDS, MAIL),
	S(MAIL_OK RCPT_OK GO, "..hidden\r\n...two\r\nx.y\r\n..\r\n..\r\n\r\n.. \r\nend\r\n.\r\n", DOT),
	S(QUEUED, ONE_CMDS, MAIL),
	S(MAIL_OK RCPT_OK GO, "a\r\nb\r\nc\r\n\r\n..\r\n..\r\n..x\r\n.\r\n", DOT),
	S(QUEUED, ONE_CMDS, MAIL),
	S(MAIL_OK RCPT_OK GO, ".\r\n", DOT),
	S(QUEUED, ONE_CMDS, MAIL),
	S(MAIL_OK RCPT_OK GO, "..\r\n.\r\n", DOT),
	S(QUEUED, QUIT, QUIT),
	S(BYE, "", CLOSED),
};
#define DELIVERED_4                                                    \
	"msg1:\n 0: delivered 250 2.0.0 [r] end of DATA: Ok: queued as 4Tq\n" \
	"msg2:\n 0: delivered 250 2.0.0 [r] end of DATA: Ok: queued as 4Tq\n" \
	"msg3:\n 0: delivered 250 2.0.0 [r] end of DATA: Ok: queued as 4Tq\n" \
	"msg4:\n 0: delivered 250 2.0.0 [r] end of DATA: Ok: queued as 4Tq\n" \
	"close: ok\n"

/* The server talks before the end of the content: held until the dot,
 * then read as its reply. */
static const struct step early_reply[] = {
	S(GREET, EHLO, HELO),
	S("250-mx\r\n250 PIPELINING\r\n", ONE_CMDS, MAIL),
	S(MAIL_OK RCPT_OK GO "552 5.3.4 too big\r\n", STUFFED QUIT, QUIT),
	S(BYE, "", CLOSED),
};
#define EARLY_REPLY                                                 \
	"msg1:\n 0: failed 552 5.3.4 [r] end of DATA: too big\n"    \
	"close: ok\n"

/* -- STARTTLS ----------------------------------------------------- */

#define EHLO_TLS "250-mx.example.org\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
#define EHLO_AFTER_TLS "250-mx.example.org\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"

static void setup_tls_may(struct fake *f)
{
	setup_one(f);
	f->config.tls = SMTP_CLIENT_TLS_MAY;
}

static void setup_tls_encrypt(struct fake *f)
{
	setup_one(f);
	f->config.tls = SMTP_CLIENT_TLS_ENCRYPT;
}

static const struct step tls_may[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_TLS, "STARTTLS\r\n", STARTTLS),
	S("220 2.0.0 Ready to start TLS\r\n", "", STARTTLS),
	TLS_OK(EHLO),
	S(EHLO_AFTER_TLS, ONE_CMDS, MAIL),
	S(MAIL_OK RCPT_OK GO, STUFFED, DOT),
	S(QUEUED, QUIT, QUIT),
	S(BYE, "", CLOSED),
};

/* may, not offered: plaintext */
static const struct step tls_may_not_offered[] = {
	S(GREET, EHLO, HELO),
	S("250-mx\r\n250 PIPELINING\r\n", ONE_CMDS, MAIL),
	S(MAIL_OK RCPT_OK GO, STUFFED, DOT),
	S(QUEUED, QUIT, QUIT),
	S(BYE, "", CLOSED),
};

/* may, refused: plaintext on the same connection */
static const struct step tls_may_refused[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_TLS, "STARTTLS\r\n", STARTTLS),
	S("454 4.7.0 TLS not available\r\n", ONE_CMDS, MAIL),
	S(MAIL_OK RCPT_OK GO, STUFFED, DOT),
	S(QUEUED, QUIT, QUIT),
	S(BYE, "", CLOSED),
};

/* may, the handshake fails: 4.7.5, no QUIT on a broken connection */
static const struct step tls_may_fails[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_TLS, "STARTTLS\r\n", STARTTLS),
	S("220 go ahead\r\n", "", STARTTLS),
	TLS_FAIL(""),
};
#define TLS_FAILED                                                         \
	"msg1 (session over):\n"                                           \
	" 0: deferred 451 4.7.5 [n] STARTTLS: TLS handshake failed\n"      \
	"close: deferred 451 4.7.5 [n] STARTTLS: TLS handshake failed\n"

static const struct step tls_encrypt_not_offered[] = {
	S(GREET, EHLO, HELO),
	S("250-mx\r\n250 PIPELINING\r\n", QUIT, CLOSED),
};
#define TLS_NOT_OFFERED                                                                              \
	"msg1 (session over):\n"                                                                     \
	" 0: deferred 451 4.7.4 [n] STARTTLS: TLS is required, but was not offered by the server\n"  \
	"close: deferred 451 4.7.4 [n] STARTTLS: TLS is required, but was not offered by the server\n"

static const struct step tls_encrypt_refused[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_TLS, "STARTTLS\r\n", STARTTLS),
	S("554 5.7.0 no TLS for you\r\n", QUIT, CLOSED),
};
#define TLS_REFUSED                                                    \
	"msg1 (session over):\n"                                       \
	" 0: deferred 554 4.7.0 [rn] STARTTLS: no TLS for you\n"       \
	"close: deferred 554 4.7.0 [rn] STARTTLS: no TLS for you\n"

/* encrypt: after the handshake, EHLO again; a second STARTTLS offer is
 * ignored */
static const struct step tls_encrypt[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_TLS, "STARTTLS\r\n", STARTTLS),
	S("220 go ahead\r\n", "", STARTTLS),
	TLS_OK(EHLO),
	S(EHLO_TLS, ONE_CMDS, MAIL),
	S(MAIL_OK RCPT_OK GO, STUFFED, DOT),
	S(QUEUED, QUIT, QUIT),
	S(BYE, "", CLOSED),
};

/* -- AUTH -------------------------------------------------------- */

static void setup_auth(struct fake *f)
{
	setup_tls_may(f);
	f->config.auth_user = "user";
	f->config.auth_password = "secret";
}

static void setup_auth_plaintext(struct fake *f)
{
	setup_one(f);
	f->config.auth_user = "user";
	f->config.auth_password = "secret";
	f->config.auth_plaintext = true;
}

static void setup_auth_no_tls(struct fake *f)
{
	setup_one(f);
	f->config.auth_user = "user";
	f->config.auth_password = "secret";
}

#define AUTH_PLAIN "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n"

static const struct step auth_plain[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_TLS, "STARTTLS\r\n", STARTTLS),
	S("220 go ahead\r\n", "", STARTTLS),
	TLS_OK(EHLO),
	S(EHLO_AFTER_TLS, AUTH_PLAIN, AUTH),
	S("235 2.7.0 Authentication successful\r\n", ONE_CMDS, MAIL),
	S(MAIL_OK RCPT_OK GO, STUFFED, DOT),
	S(QUEUED, QUIT, QUIT),
	S(BYE, "", CLOSED),
};

static const struct step auth_login[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_TLS, "STARTTLS\r\n", STARTTLS),
	S("220 go ahead\r\n", "", STARTTLS),
	TLS_OK(EHLO),
	S("250-mx\r\n250 AUTH=LOGIN\r\n", "AUTH LOGIN\r\n", AUTH),
	S("334 VXNlcm5hbWU6\r\n", "dXNlcg==\r\n", AUTH),
	S("334 UGFzc3dvcmQ6\r\n", "c2VjcmV0\r\n", AUTH),
	S("235 2.7.0 ok\r\n", "MAIL FROM:<a@example.com>\r\n", MAIL),
	S(MAIL_OK, "RCPT TO:<b@example.org>\r\n", RCPT),
	S(RCPT_OK, "DATA\r\n", DATA),
	S(GO, STUFFED, DOT),
	S(QUEUED, QUIT, QUIT),
	S(BYE, "", CLOSED),
};

static const struct step auth_535[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_TLS, "STARTTLS\r\n", STARTTLS),
	S("220 go ahead\r\n", "", STARTTLS),
	TLS_OK(EHLO),
	S(EHLO_AFTER_TLS, AUTH_PLAIN, AUTH),
	S("535 5.7.8 Error: authentication failed\r\n", QUIT, CLOSED),
};
#define AUTH_535                                                                       \
	"msg1 (session over):\n"                                                       \
	" 0: deferred 535 4.7.8 [rn] AUTH: Error: authentication failed\n"             \
	"close: deferred 535 4.7.8 [rn] AUTH: Error: authentication failed\n"

/* LOGIN refused half-way */
static const struct step auth_login_refused[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_TLS, "STARTTLS\r\n", STARTTLS),
	S("220 go ahead\r\n", "", STARTTLS),
	TLS_OK(EHLO),
	S("250-mx\r\n250 AUTH LOGIN\r\n", "AUTH LOGIN\r\n", AUTH),
	S("334 VXNlcm5hbWU6\r\n", "dXNlcg==\r\n", AUTH),
	S("535 5.7.8 no\r\n", QUIT, CLOSED),
};
#define AUTH_LOGIN_REFUSED                                   \
	"msg1 (session over):\n"                             \
	" 0: deferred 535 4.7.8 [rn] AUTH: no\n"             \
	"close: deferred 535 4.7.8 [rn] AUTH: no\n"

/* a challenge after PLAIN's initial response: "*", then give up */
static const struct step auth_plain_challenge[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_TLS, "STARTTLS\r\n", STARTTLS),
	S("220 go ahead\r\n", "", STARTTLS),
	TLS_OK(EHLO),
	S(EHLO_AFTER_TLS, AUTH_PLAIN, AUTH),
	S("334 \r\n", "*\r\n", AUTH),
	S("501 5.7.0 cancelled\r\n", QUIT, CLOSED),
};
#define AUTH_CHALLENGE                                                                                      \
	"msg1 (session over):\n"                                                                            \
	" 0: deferred 451 4.7.0 [n] AUTH: SASL PLAIN: unexpected challenge after the initial response\n"    \
	"close: deferred 451 4.7.0 [n] AUTH: SASL PLAIN: unexpected challenge after the initial response\n"

/* AUTH over plaintext allowed */
static const struct step auth_plaintext[] = {
	S(GREET, EHLO, HELO),
	S("250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n", AUTH_PLAIN, AUTH),
	S("235 ok\r\n", ONE_CMDS, MAIL),
	S(MAIL_OK RCPT_OK GO, STUFFED, DOT),
	S(QUEUED, QUIT, QUIT),
	S(BYE, "", CLOSED),
};

/* AUTH over plaintext not allowed */
static const struct step auth_no_tls[] = {
	S(GREET, EHLO, HELO),
	S("250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n", QUIT, CLOSED),
};
#define AUTH_NO_TLS                                                                                       \
	"msg1 (session over):\n"                                                                          \
	" 0: deferred 451 4.7.0 [n] AUTH: SASL authentication over an unencrypted connection is not allowed\n" \
	"close: deferred 451 4.7.0 [n] AUTH: SASL authentication over an unencrypted connection is not allowed\n"

/* no mechanism we know */
static const struct step auth_no_mech[] = {
	S(GREET, EHLO, HELO),
	S("250-mx\r\n250 AUTH CRAM-MD5 GSSAPI\r\n", QUIT, CLOSED),
};
#define AUTH_NO_MECH                                                                                 \
	"msg1 (session over):\n"                                                                     \
	" 0: deferred 451 4.7.0 [n] AUTH: no usable SASL mechanism offered (the server offers: "     \
	"CRAM-MD5 GSSAPI)\n"                                                                         \
	"close: deferred 451 4.7.0 [n] AUTH: no usable SASL mechanism offered (the server offers: "  \
	"CRAM-MD5 GSSAPI)\n"

/* no AUTH offered: sent without */
static const struct step auth_not_offered[] = {
	S(GREET, EHLO, HELO),
	S("250-mx\r\n250 PIPELINING\r\n", ONE_CMDS, MAIL),
	S(MAIL_OK RCPT_OK GO, STUFFED, DOT),
	S(QUEUED, QUIT, QUIT),
	S(BYE, "", CLOSED),
};

/* -- greetings and garbage ----------------------------------------- */

static const struct step greeting_4xx[] = {
	S("421 4.3.2 Service not available\r\n", "", CLOSED),
};
#define GREETING_4XX                                                                \
	"msg1 (session over):\n"                                                    \
	" 0: deferred 421 4.3.2 [rn] initial greeting: Service not available\n"     \
	"close: deferred 421 4.3.2 [rn] initial greeting: Service not available\n"

static const struct step greeting_450[] = {
	S("450 busy\r\n", QUIT, CLOSED),
};
#define GREETING_450                                                   \
	"msg1 (session over):\n"                                       \
	" 0: deferred 450 4.0.0 [rn] initial greeting: busy\n"         \
	"close: deferred 450 4.0.0 [rn] initial greeting: busy\n"

static const struct step greeting_5xx[] = {
	S("554-5.7.1 mx.example.org\r\n554 5.7.1 No SMTP service here\r\n", QUIT, CLOSED),
};
#define GREETING_5XX                                                                     \
	"msg1 (session over):\n"                                                         \
	" 0: deferred 554 4.7.1 [rn] initial greeting: mx.example.org No SMTP service here\n" \
	"close: deferred 554 4.7.1 [rn] initial greeting: mx.example.org No SMTP service here\n"

static const struct step garbage[] = {
	S("SSH-2.0-OpenSSH_9.2\r\n", "", CLOSED),
};
#define GARBAGE                                                                                              \
	"msg1 (session over):\n"                                                                             \
	" 0: deferred 451 4.5.0 [n] initial greeting: protocol error while receiving the initial greeting: " \
	"malformed reply line (no reply code)\n"                                                             \
	"close: deferred 451 4.5.0 [n] initial greeting: protocol error while receiving the initial greeting: " \
	"malformed reply line (no reply code)\n"

static const struct step garbage_rcpt[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_FULL, THREE_CMDS, MAIL),
	S(MAIL_OK RCPT_OK "250-ok\r\n251 odd\r\n", "", CLOSED),
};
#define GARBAGE_RCPT                                                                                         \
	"msg1 (session over):\n"                                                                             \
	" 0: deferred 451 4.5.0 [n] RCPT TO: protocol error while waiting for the reply to RCPT TO: different " \
	"codes in the lines of one reply\n"                                                                  \
	" 1: deferred 451 4.5.0 [n] RCPT TO: protocol error while waiting for the reply to RCPT TO: different " \
	"codes in the lines of one reply\n"                                                                  \
	" 2: deferred 451 4.5.0 [n] RCPT TO: protocol error while waiting for the reply to RCPT TO: different " \
	"codes in the lines of one reply\n"                                                                  \
	"close: deferred 451 4.5.0 [n] RCPT TO: protocol error while waiting for the reply to RCPT TO: "     \
	"different codes in the lines of one reply\n"

/* an unexpected reply class (2xx to DATA) */
static const struct step data_250[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_NOPIPE, "MAIL FROM:<a@example.com>\r\n", MAIL),
	S(MAIL_OK, "RCPT TO:<ok@example.org>\r\n", RCPT),
	S(RCPT_OK, "RCPT TO:<later@example.org>\r\n", RCPT),
	S(RCPT_OK, "RCPT TO:<never@example.org>\r\n", RCPT),
	S(RCPT_OK, "DATA\r\n", DATA),
	S("250 sure\r\n", "", CLOSED),
};
#define DATA_250_TEXT \
	"deferred 451 4.5.0 [n] DATA: protocol error while waiting for the reply to DATA: unexpected reply 250\n"
#define DATA_250 \
	"msg1 (session over):\n 0: " DATA_250_TEXT " 1: " DATA_250_TEXT " 2: " DATA_250_TEXT "close: " DATA_250_TEXT

/* a timeout, and a lost connection */
static const struct step timeout_rcpt[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_NOPIPE, "MAIL FROM:<a@example.com>\r\n", MAIL),
	S(MAIL_OK, "RCPT TO:<ok@example.org>\r\n", RCPT),
	S("550 5.1.1 no\r\n", "RCPT TO:<later@example.org>\r\n", RCPT),
	TIMEOUT(""),
};
#define TIMEOUT_TEXT "deferred 451 4.4.2 [n] RCPT TO: conversation timed out while waiting for the reply to RCPT TO\n"
#define TIMEOUT_RCPT                                                 \
	"msg1 (session over):\n"                                     \
	" 0: failed 550 5.1.1 [r] RCPT TO: no\n"                     \
	" 1: " TIMEOUT_TEXT " 2: " TIMEOUT_TEXT "close: " TIMEOUT_TEXT

static const struct step lost_dot[] = {
	S(GREET, EHLO, HELO),
	S("250-mx\r\n250 PIPELINING\r\n", ONE_CMDS, MAIL),
	S(MAIL_OK RCPT_OK GO, STUFFED, DOT),
	LOST(""),
};
#define LOST_TEXT                                                                                        \
	"deferred 451 4.4.2 [n] end of DATA: lost connection while waiting for the reply to end of DATA " \
	"(the message may be delivered twice) (Connection reset by peer)\n"
#define LOST_DOT "msg1 (session over):\n 0: " LOST_TEXT "close: " LOST_TEXT

/* a lost connection after QUIT is the expected end */
static const struct step lost_after_quit[] = {
	S(GREET, EHLO, HELO),
	S("250-mx\r\n250 PIPELINING\r\n", ONE_CMDS, MAIL),
	S(MAIL_OK RCPT_OK GO, STUFFED, DOT),
	S(QUEUED, QUIT, QUIT),
	LOST(""),
};

/* -- connection reuse ---------------------------------------------- */

static void setup_reuse(struct fake *f)
{
	f->msgs[f->nmsgs++] = &msg_one;
	f->msgs[f->nmsgs++] = &msg_two;
	f->msgs[f->nmsgs++] = &msg_one;
}

static const struct step reuse[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_FULL, "MAIL FROM:<a@example.com> SIZE=28\r\nRCPT TO:<b@example.org>\r\nDATA\r\n", MAIL),
	S(MAIL_OK RCPT_OK GO, STUFFED, DOT),
	/* completed: no RSET */
	S(QUEUED, "MAIL FROM:<a@example.com> SIZE=28\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n",
	  MAIL),
	S("452 4.3.1 full\r\n503 no\r\n503 no\r\n503 no\r\n", "RSET\r\nMAIL FROM:<a@example.com> SIZE=28\r\n"
							       "RCPT TO:<b@example.org>\r\nDATA\r\n",
	  RSET),
	S("250 2.0.0 Ok\r\n" MAIL_OK RCPT_OK GO, STUFFED, DOT),
	S(QUEUED, QUIT, QUIT),
	S(BYE, "", CLOSED),
};
#define REUSE                                                          \
	DELIVERED1                                                     \
	"msg2:\n"                                                      \
	" 0: deferred 452 4.3.1 [r] MAIL FROM: full\n"                 \
	" 1: deferred 452 4.3.1 [r] MAIL FROM: full\n"                 \
	"msg3:\n"                                                      \
	" 0: delivered 250 2.0.0 [r] end of DATA: Ok: queued as 4Tq\n" \
	"close: ok\n"

/* RSET one at a time, and RSET refused */
static void setup_reuse2(struct fake *f)
{
	f->msgs[f->nmsgs++] = &msg_one;
	f->msgs[f->nmsgs++] = &msg_one;
}

static const struct step reuse_rset_refused[] = {
	S(GREET, EHLO, HELO),
	S(EHLO_NOPIPE, "MAIL FROM:<a@example.com> SIZE=28\r\n", MAIL),
	S("550 5.7.1 no\r\n", "RSET\r\n", RSET),
	S("500 what\r\n", QUIT, CLOSED),
};
#define RSET_REFUSED                                                   \
	"msg1:\n 0: failed 550 5.7.1 [r] MAIL FROM: no\n"              \
	"msg2 (session over):\n 0: deferred 500 4.0.0 [rn] RSET: what\n" \
	"close: deferred 500 4.0.0 [rn] RSET: what\n"

/* a 421 while idle */
static void setup_idle(struct fake *f)
{
	setup_one(f);
	f->no_quit = true;
}

static const struct step idle_421[] = {
	S(GREET, EHLO, HELO),
	S("250-mx\r\n250 PIPELINING\r\n", ONE_CMDS, MAIL),
	S(MAIL_OK RCPT_OK GO, STUFFED, DOT),
	S(QUEUED, "", IDLE),
	S("421 4.4.2 idle timeout\r\n", "", CLOSED),
};
#define IDLE_421 DELIVERED1 "close: deferred 421 4.4.2 [rn] idle: idle timeout\n"

/* junk while idle */
static const struct step idle_junk[] = {
	S(GREET, EHLO, HELO),
	S("250-mx\r\n250 PIPELINING\r\n", ONE_CMDS, MAIL),
	S(MAIL_OK RCPT_OK GO, STUFFED, DOT),
	S(QUEUED, "", IDLE),
	S("250 hello?\r\n", "", CLOSED),
};
#define IDLE_JUNK DELIVERED1 "close: deferred 451 4.5.0 [n] idle: protocol error while idle: unexpected reply 250\n"

/* the application quits an idle session */
static const struct step idle_quit[] = {
	S(GREET, EHLO, HELO),
	S("250-mx\r\n250 PIPELINING\r\n", ONE_CMDS, MAIL),
	S(MAIL_OK RCPT_OK GO, STUFFED, DOT),
	S(QUEUED, "", IDLE),
	{ A_QUIT, NULL, QUIT, SMTP_STAGE_QUIT },
	S("221 bye\r\n", "", CLOSED),
};

/* bad addresses: not sent */
static const struct smtp_client_rcpt bad_rcpts[] = {
	{ "b@example.org\r\nDATA", 0, NULL },
	{ "", 0, NULL },
	{ "c@example.org", 0, NULL },
};
static const struct msgspec msg_bad_rcpt = { { "a@example.com", -1, false, false, NULL, NULL, bad_rcpts, 3 },
					     CONTENT };
static const struct msgspec msg_bad_sender = { { "a@example.com>\n", -1, false, false, NULL, NULL, one_rcpt, 1 },
					       CONTENT };

static void setup_bad(struct fake *f)
{
	f->msgs[f->nmsgs++] = &msg_bad_sender;
	f->msgs[f->nmsgs++] = &msg_bad_rcpt;
}

static const struct step bad_addresses[] = {
	S(GREET, EHLO, HELO),
	S("250-mx\r\n250 PIPELINING\r\n", "MAIL FROM:<a@example.com>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n", MAIL),
	S(MAIL_OK RCPT_OK GO, STUFFED, DOT),
	S(QUEUED, QUIT, QUIT),
	S(BYE, "", CLOSED),
};
#define BAD_ADDRESSES                                                  \
	"msg1:\n 0: failed 553 5.1.7 [] MAIL FROM: bad sender address syntax\n" \
	"msg2:\n"                                                      \
	" 0: failed 553 5.1.3 [] RCPT TO: bad recipient address syntax\n" \
	" 1: failed 553 5.1.3 [] RCPT TO: bad recipient address syntax\n" \
	" 2: delivered 250 2.0.0 [r] end of DATA: Ok: queued as 4Tq\n" \
	"close: ok\n"

/* control characters in reply texts are escaped */
static const struct step unprintable_text[] = {
	S(GREET, EHLO, HELO),
	S("250-mx\r\n250 PIPELINING\r\n", ONE_CMDS, MAIL),
	S(MAIL_OK "550 5.1.1 bad\tuser \xc3\xbc \\\r\n" "554 5.5.1 no valid recipients\r\n", QUIT, QUIT),
	S(BYE, "", CLOSED),
};
#define UNPRINTABLE                                                             \
	"msg1:\n 0: failed 550 5.1.1 [r] RCPT TO: bad\\x09user \\xc3\\xbc \\x5c\n" \
	"close: ok\n"

static const struct script scripts[] = {
	SCRIPT(pipelined, setup_two, DELIVERED2 "close: ok\n"),
	SCRIPT(unpipelined, setup_two, DELIVERED2 "close: ok\n"),
	SCRIPT(nopipe_config, setup_nopipe_config, DELIVERED1 "close: ok\n"),
	SCRIPT(helo_fallback, setup_one, "msg1:\n 0: delivered 250 2.0.0 [r] end of DATA: Ok\nclose: ok\n"),
	SCRIPT(ehlo_4xx, setup_one, EHLO_4XX),
	SCRIPT(helo_5xx, setup_one, HELO_5XX),
	SCRIPT(size_refused, setup_big, SIZE_REFUSED),
	SCRIPT(size_no_limit, setup_big, DELIVERED2 "close: ok\n"),
	SCRIPT(utf8_refused, setup_utf8, UTF8_REFUSED),
	SCRIPT(utf8_offered, setup_utf8, DELIVERED_1_1 "close: ok\n"),
	SCRIPT(eightbit, setup_8bit, DELIVERED_1_1 "close: ok\n"),
	SCRIPT(eightbit_not_offered, setup_8bit, DELIVERED_1_1 "close: ok\n"),
	SCRIPT(dsn, setup_dsn, DSN_DELIVERED),
	SCRIPT(dsn_not_offered, setup_dsn, DSN_DELIVERED),
	SCRIPT(rcpt_mixed, setup_three, RCPT_MIXED),
	SCRIPT(data_4xx, setup_three, DATA_4XX),
	SCRIPT(dot_5xx, setup_three, DOT_5XX),
	SCRIPT(mail_5xx, setup_three, MAIL_5XX),
	SCRIPT(mail_4xx_nopipe, setup_three, MAIL_4XX),
	SCRIPT(all_rcpts_refused, setup_three, ALL_REFUSED),
	SCRIPT(broken_354, setup_three_then_one, BROKEN_354),
	SCRIPT(mid_421, setup_three, MID_421),
	SCRIPT(content, setup_content, DELIVERED_4),
	SCRIPT(early_reply, setup_one, EARLY_REPLY),
	SCRIPT(tls_may, setup_tls_may, DELIVERED1 "close: ok\n"),
	SCRIPT(tls_may_not_offered, setup_tls_may, DELIVERED1 "close: ok\n"),
	SCRIPT(tls_may_refused, setup_tls_may, DELIVERED1 "close: ok\n"),
	SCRIPT(tls_may_fails, setup_tls_may, TLS_FAILED),
	SCRIPT(tls_encrypt_not_offered, setup_tls_encrypt, TLS_NOT_OFFERED),
	SCRIPT(tls_encrypt_refused, setup_tls_encrypt, TLS_REFUSED),
	SCRIPT(tls_encrypt, setup_tls_encrypt, DELIVERED1 "close: ok\n"),
	SCRIPT(auth_plain, setup_auth, DELIVERED1 "close: ok\n"),
	SCRIPT(auth_login, setup_auth, DELIVERED1 "close: ok\n"),
	SCRIPT(auth_535, setup_auth, AUTH_535),
	SCRIPT(auth_login_refused, setup_auth, AUTH_LOGIN_REFUSED),
	SCRIPT(auth_plain_challenge, setup_auth, AUTH_CHALLENGE),
	SCRIPT(auth_plaintext, setup_auth_plaintext, DELIVERED1 "close: ok\n"),
	SCRIPT(auth_no_tls, setup_auth_no_tls, AUTH_NO_TLS),
	SCRIPT(auth_no_mech, setup_auth_plaintext, AUTH_NO_MECH),
	SCRIPT(auth_not_offered, setup_auth_no_tls, DELIVERED1 "close: ok\n"),
	SCRIPT(greeting_4xx, setup_one, GREETING_4XX),
	SCRIPT(greeting_450, setup_one, GREETING_450),
	SCRIPT(greeting_5xx, setup_one, GREETING_5XX),
	SCRIPT(garbage, setup_one, GARBAGE),
	SCRIPT(garbage_rcpt, setup_three, GARBAGE_RCPT),
	SCRIPT(data_250, setup_three, DATA_250),
	SCRIPT(timeout_rcpt, setup_three, TIMEOUT_RCPT),
	SCRIPT(lost_dot, setup_one, LOST_DOT),
	SCRIPT(lost_after_quit, setup_one, DELIVERED1 "close: ok\n"),
	SCRIPT(reuse, setup_reuse, REUSE),
	SCRIPT(reuse_rset_refused, setup_reuse2, RSET_REFUSED),
	SCRIPT(idle_421, setup_idle, IDLE_421),
	SCRIPT(idle_junk, setup_idle, IDLE_JUNK),
	SCRIPT(idle_quit, setup_idle, DELIVERED1 "close: ok\n"),
	SCRIPT(bad_addresses, setup_bad, BAD_ADDRESSES),
	SCRIPT(unprintable_text, setup_one, UNPRINTABLE),
};

static void test_scripts(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(scripts); i++)
		run_script(&scripts[i]);
}

/* ---- special cases ------------------------------------------------- */

/* STARTTLS response injection: anything after the 220, in the same
 * read or before the handshake, fails the session without TLS. */
static void test_tls_injection(void **state)
{
	static const char *const inputs[] = {
		"220 go ahead\r\n250-mx\r\n250 AUTH PLAIN\r\n", /* one read */
		"220 go ahead\r\n2",                           /* a partial line */
	};

	(void)state;
	for (size_t i = 0; i < NELEM(inputs); i++) {
		struct fake f;

		fake_init(&f, M_WHOLE);
		setup_tls_encrypt(&f);
		fake_start(&f);
		server_str(&f, GREET EHLO_TLS);
		assert_string_equal(fake_output(&f), EHLO "STARTTLS\r\n");
		server_str(&f, inputs[i]);
		assert_string_equal(fake_output(&f), "");
		assert_int_equal(f.tls_calls, 0);
		assert_string_equal(buf_cstr(&f.results),
				    "msg1 (session over):\n 0: deferred 451 4.5.0 [n] STARTTLS: protocol error while "
				    "waiting for the reply to STARTTLS: response injected after the reply to STARTTLS\n"
				    "close: deferred 451 4.5.0 [n] STARTTLS: protocol error while waiting for the reply "
				    "to STARTTLS: response injected after the reply to STARTTLS\n");
		fake_free(&f);
	}

	/* the 220 alone, then more plaintext before the handshake is done */
	{
		struct fake f;

		fake_init(&f, M_WHOLE);
		setup_tls_encrypt(&f);
		fake_start(&f);
		server_str(&f, GREET EHLO_TLS "220 go ahead\r\n");
		assert_int_equal(f.tls_calls, 1);
		assert_int_equal(smtp_client_stage(f.c), SMTP_STAGE_STARTTLS);
		server_str(&f, "250 injected\r\n");
		assert_int_equal(f.closes, 1);
		assert_non_null(strstr(buf_cstr(&f.results), "input before the TLS handshake"));
		/* a late handshake answer is ignored */
		smtp_client_tls_done(f.c, true);
		assert_string_equal(fake_output(&f), EHLO "STARTTLS\r\n");
		fake_free(&f);
	}
}

/* Replies longer than the limits end the session. */
static void test_overlong(void **state)
{
	struct fake f;
	struct buf line = BUF_INIT;

	(void)state;
	fake_init(&f, M_WHOLE);
	setup_one(&f);
	fake_start(&f);
	server_str(&f, GREET);
	assert_string_equal(fake_output(&f), EHLO);
	buf_append_str(&line, "250-");
	while (line.len < 5000)
		buf_append_str(&line, "x");
	server(&f, (const char *)line.data, line.len);
	assert_int_equal(f.closes, 0); /* read to the end of the line first */
	server_str(&f, "\r\n250 more\r\n");
	assert_int_equal(f.closes, 1);
	assert_string_equal(fake_output(&f), "");
	assert_non_null(strstr(buf_cstr(&f.results), "[n] EHLO/HELO: protocol error while waiting for the reply to "
						     "EHLO/HELO: reply line too long\n"));
	buf_free(&line);
	fake_free(&f);

	/* too many lines */
	fake_init(&f, M_WHOLE);
	setup_one(&f);
	fake_start(&f);
	server_str(&f, GREET);
	for (int i = 0; i < SMTP_REPLY_LINES_MAX + 1; i++)
		server_str(&f, "250-X\r\n");
	assert_int_equal(f.closes, 1);
	assert_non_null(strstr(buf_cstr(&f.results), "too many lines in one reply"));
	fake_free(&f);
}

/* read_content fails: no final dot, the accepted recipients deferred,
 * the refused ones keep their reply. */
static void test_read_error(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f, M_PIECES);
	setup_three(&f);
	f.read_fail_at = 10;
	fake_start(&f);
	server_str(&f, GREET EHLO_FULL);
	assert_string_equal(fake_output(&f), EHLO THREE_CMDS);
	server_str(&f, MAIL_OK RCPT_OK "550 5.1.1 no\r\n" RCPT_OK GO);
	assert_string_equal(fake_output(&f), "Receive"); /* one slice of 7; the next read fails */
	assert_string_equal(buf_cstr(&f.results),
			    "msg1 (session over):\n"
			    " 0: deferred 451 4.3.0 [] message content: error reading the message content\n"
			    " 1: failed 550 5.1.1 [r] RCPT TO: no\n"
			    " 2: deferred 451 4.3.0 [] message content: error reading the message content\n"
			    "close: deferred 451 4.3.0 [] message content: error reading the message content\n");
	fake_free(&f);
}

/* Flow control: with the output full, content waits for output_ready,
 * and what the server says meanwhile waits for the end of the content;
 * a timeout while sending content ends the session. */
static void test_flow(void **state)
{
	struct fake f;

	(void)state;
	for (int round = 0; round < 2; round++) {
		fake_init(&f, M_WHOLE);
		setup_one(&f);
		f.read_max = 5;
		fake_start(&f);
		server_str(&f, GREET "250-mx\r\n250 PIPELINING\r\n" MAIL_OK RCPT_OK);
		assert_string_equal(fake_output(&f), EHLO ONE_CMDS);
		f.flow = true;
		f.full_calls = 1; /* the first question says "full" */
		smtp_client_input(f.c, GO, strlen(GO));
		assert_true(f.blocked);
		assert_string_equal(fake_output(&f), "");
		assert_int_equal(smtp_client_stage(f.c), SMTP_STAGE_CONTENT);
		/* an early reply is held */
		smtp_client_input(f.c, "552 5.3.4 too big\r\n", 19);
		assert_string_equal(buf_cstr(&f.results), "");
		f.blocked = false;
		smtp_client_output_ready(f.c); /* one slice, then full again */
		assert_true(f.blocked);
		assert_string_equal(fake_output(&f), "Recei");
		smtp_client_input(f.c, "\r\n", 2); /* junk, held as well */
		if (round == 0) {
			unblock(&f);
			assert_string_equal(fake_output(&f), "ved: from x\r\n\r\nHello\r\n.\r\nQUIT\r\n");
			/* the 552 answered the content; the junk after it came
			 * in reply to QUIT, which ends the session anyway */
			assert_string_equal(buf_cstr(&f.results),
					    "msg1:\n 0: failed 552 5.3.4 [r] end of DATA: too big\nclose: ok\n");
		} else {
			smtp_client_output_ready(f.c); /* not paused: harmless */
			smtp_client_output_ready(f.c);
			smtp_client_timeout(f.c);
			assert_int_equal(f.closes, 1);
			assert_string_equal(buf_cstr(&f.results),
					    "msg1 (session over):\n 0: deferred 451 4.4.2 [n] message content: "
					    "conversation timed out while sending the message content\n"
					    "close: deferred 451 4.4.2 [n] message content: conversation timed out while "
					    "sending the message content\n");
		}
		fake_free(&f);
	}
}

/* smtp_client_free from inside each callback. */
static void test_free_in_callbacks(void **state)
{
	struct fake f;

	(void)state;
	/* in message_done */
	fake_init(&f, M_WHOLE);
	setup_two(&f);
	f.free_in_done = true;
	fake_start(&f);
	server_str(&f, GREET EHLO_FULL MAIL_OK RCPT_OK RCPT_OK GO QUEUED "250 junk after\r\n");
	assert_null(f.c);
	assert_int_equal(f.dones, 1);
	assert_int_equal(f.closes, 0);
	fake_free(&f);

	/* in close */
	fake_init(&f, M_BYTES);
	setup_one(&f);
	f.free_in_close = true;
	fake_start(&f);
	server_str(&f, "554 no\r\n");
	assert_null(f.c);
	assert_int_equal(f.closes, 1);
	fake_free(&f);

	/* in write */
	fake_init(&f, M_WHOLE);
	setup_one(&f);
	f.free_in_write = true;
	fake_start(&f);
	server_str(&f, GREET "250 more\r\n");
	assert_null(f.c);
	assert_int_equal(f.dones, 0);
	assert_int_equal(f.closes, 0);
	fake_free(&f);

	/* in read_content */
	fake_init(&f, M_WHOLE);
	setup_one(&f);
	f.free_in_read = true;
	fake_start(&f);
	server_str(&f, GREET "250-mx\r\n250 PIPELINING\r\n" MAIL_OK RCPT_OK GO);
	assert_null(f.c);
	fake_free(&f);

	/* in want_tls */
	fake_init(&f, M_WHOLE);
	setup_tls_may(&f);
	f.free_in_tls = true;
	fake_start(&f);
	server_str(&f, GREET EHLO_TLS "220 go\r\n");
	assert_null(f.c);
	fake_free(&f);

	/* before anything happened, and with a message pending */
	fake_init(&f, M_WHOLE);
	setup_one(&f);
	fake_start(&f);
	fake_free(&f);
	assert_int_equal(f.dones, 0);
}

/* Input given from inside a callback is processed after it, in order. */
static void test_input_in_callback(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f, M_WHOLE);
	setup_one(&f);
	fake_start(&f);
	f.input_in_write = "250-mx\r\n250 PIPELINING\r\n"; /* given while EHLO is written */
	server_str(&f, GREET);
	assert_string_equal(fake_output(&f), EHLO ONE_CMDS);
	f.input_in_write = QUEUED; /* the reply, given while the content is written */
	server_str(&f, MAIL_OK RCPT_OK GO);
	assert_string_equal(fake_output(&f), STUFFED QUIT);
	server_str(&f, BYE);
	assert_string_equal(buf_cstr(&f.results), DELIVERED1 "close: ok\n");
	fake_free(&f);
}

/* No message at all: QUIT right after the greeting. A message given
 * before the greeting, with QUIT asked for at once: delivered, then
 * QUIT. */
static void test_quit_only(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f, M_WHOLE);
	fake_start(&f);
	smtp_client_quit(f.c);
	assert_string_equal(fake_output(&f), "");
	server_str(&f, GREET);
	assert_string_equal(fake_output(&f), QUIT);
	assert_int_equal(smtp_client_stage(f.c), SMTP_STAGE_QUIT);
	smtp_client_timeout(f.c); /* no 221: fine */
	assert_string_equal(buf_cstr(&f.results), "close: ok\n");
	fake_free(&f);

	fake_init(&f, M_WHOLE);
	setup_one(&f);
	f.no_quit = true;
	fake_start(&f);
	smtp_client_quit(f.c);
	server_str(&f, GREET "250-mx\r\n250 PIPELINING\r\n" MAIL_OK RCPT_OK GO QUEUED BYE);
	assert_string_equal(fake_output(&f), EHLO ONE_CMDS STUFFED QUIT);
	assert_string_equal(buf_cstr(&f.results), DELIVERED1 "close: ok\n");
	fake_free(&f);

	/* a timeout while idle closes without results */
	fake_init(&f, M_WHOLE);
	setup_one(&f);
	f.no_quit = true;
	fake_start(&f);
	server_str(&f, GREET "250-mx\r\n250 PIPELINING\r\n" MAIL_OK RCPT_OK GO QUEUED);
	assert_int_equal(smtp_client_stage(f.c), SMTP_STAGE_IDLE);
	smtp_client_timeout(f.c);
	assert_string_equal(buf_cstr(&f.results),
			    DELIVERED1 "close: deferred 451 4.4.2 [n] idle: conversation timed out while idle\n");
	fake_free(&f);
}

/* Implicit TLS (port 465): no STARTTLS, AUTH at once. */
static void test_tls_active(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f, M_WHOLE);
	setup_one(&f);
	f.config.tls = SMTP_CLIENT_TLS_ENCRYPT;
	f.config.tls_active = true;
	f.config.auth_user = "user";
	f.config.auth_password = "secret";
	fake_start(&f);
	assert_true(smtp_client_tls(f.c));
	server_str(&f, GREET EHLO_AFTER_TLS);
	assert_string_equal(fake_output(&f), EHLO AUTH_PLAIN);
	assert_null(smtp_client_auth_mech(f.c));
	server_str(&f, "235 ok\r\n");
	assert_string_equal(smtp_client_auth_mech(f.c), "PLAIN");
	assert_int_equal(smtp_client_extensions(f.c), SMTP_EXT_PIPELINING | SMTP_EXT_AUTH | SMTP_EXT_8BITMIME);
	assert_int_equal(smtp_client_size_limit(f.c), 0);
	fake_free(&f);
}

/* A timeout during the TLS handshake. */
static void test_tls_timeout(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f, M_WHOLE);
	setup_tls_encrypt(&f);
	fake_start(&f);
	server_str(&f, GREET EHLO_TLS "220 go\r\n");
	assert_int_equal(smtp_client_stage(f.c), SMTP_STAGE_STARTTLS);
	smtp_client_timeout(f.c);
	assert_string_equal(fake_output(&f), EHLO "STARTTLS\r\n");
	assert_string_equal(buf_cstr(&f.results),
			    "msg1 (session over):\n 0: deferred 451 4.4.2 [n] STARTTLS: conversation timed out while "
			    "performing the TLS handshake\n"
			    "close: deferred 451 4.4.2 [n] STARTTLS: conversation timed out while performing the TLS "
			    "handshake\n");
	fake_free(&f);
}

/* DSN values too long as sent (RFC 3461: ENVID 100, ORCPT 500) are left
 * out rather than risk a 555 for the whole message. */
static void test_dsn_limits(void **state)
{
	struct fake f;
	struct buf envid = BUF_INIT, orcpt = BUF_INIT, want = BUF_INIT;
	struct smtp_client_rcpt rcpts[2];
	struct msgspec m;

	(void)state;
	for (int i = 0; i < 40; i++)
		buf_append_str(&envid, "a "); /* 80 octets, 140 as xtext */
	buf_append_str(&orcpt, "rfc822;");
	while (orcpt.len < 495)
		buf_append_str(&orcpt, "x");
	buf_append_str(&orcpt, "@y.z"); /* 499 octets: fits */
	memset(rcpts, 0, sizeof rcpts);
	rcpts[0].addr = "b@example.org";
	rcpts[0].orcpt = buf_cstr(&orcpt);
	rcpts[1].addr = "c@example.org";
	rcpts[1].orcpt = "rfc822;+long+"; /* grows to 19 as xtext, fine */
	memset(&m, 0, sizeof m);
	m.msg.sender = "a@example.com";
	m.msg.size = -1;
	m.msg.envid = buf_cstr(&envid);
	m.msg.rcpts = rcpts;
	m.msg.nrcpt = 2;
	m.content = "x\r\n";
	fake_init(&f, M_WHOLE);
	f.msgs[f.nmsgs++] = &m;
	fake_start(&f);
	server_str(&f, GREET EHLO_FULL);
	buf_printf(&want, EHLO "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org> ORCPT=%s\r\n"
			       "RCPT TO:<c@example.org> ORCPT=rfc822;+2Blong+2B\r\nDATA\r\n",
		   buf_cstr(&orcpt));
	assert_string_equal(fake_output(&f), buf_cstr(&want));
	fake_free(&f);

	/* 501 octets: the ORCPT goes */
	buf_append_str(&orcpt, "xx");
	rcpts[0].orcpt = buf_cstr(&orcpt);
	fake_init(&f, M_WHOLE);
	f.msgs[f.nmsgs++] = &m;
	fake_start(&f);
	server_str(&f, GREET EHLO_FULL);
	assert_string_equal(fake_output(&f), EHLO "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\n"
						 "RCPT TO:<c@example.org> ORCPT=rfc822;+2Blong+2B\r\nDATA\r\n");
	fake_free(&f);
	buf_free(&envid);
	buf_free(&orcpt);
	buf_free(&want);
}

/* Misuse is a bug: log_panic. */
static void test_misuse(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f, M_WHOLE);
	setup_one(&f);
	fake_start(&f);
	UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "a message is already in progress", smtp_client_send(f.c, &msg_one.msg));
	UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "no STARTTLS pending", smtp_client_tls_done(f.c, true));
	fake_free(&f);

	fake_init(&f, M_WHOLE);
	fake_start(&f);
	server_str(&f, "554 no\r\n");
	UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "the session is over", smtp_client_send(f.c, &msg_one.msg));
	fake_free(&f);

	fake_init(&f, M_WHOLE);
	f.config.tls = SMTP_CLIENT_TLS_MAY;
	{
		struct smtp_client_callbacks cb = fake_callbacks;

		cb.want_tls = NULL;
		UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "want_tls", smtp_client_new(&f.config, &cb, &f));
	}
	fake_free(&f);
}

/* Stage names exist for every stage. */
static void test_stage_names(void **state)
{
	(void)state;
	for (int s = SMTP_STAGE_GREETING; s <= SMTP_STAGE_CLOSED; s++)
		assert_string_not_equal(smtp_client_stage_name((enum smtp_client_stage)s), "unknown");
	assert_string_equal(smtp_client_stage_name(SMTP_STAGE_DOT), "end of DATA");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scripts),
		cmocka_unit_test(test_tls_injection),
		cmocka_unit_test(test_overlong),
		cmocka_unit_test(test_read_error),
		cmocka_unit_test(test_flow),
		cmocka_unit_test(test_free_in_callbacks),
		cmocka_unit_test(test_input_in_callback),
		cmocka_unit_test(test_quit_only),
		cmocka_unit_test(test_tls_active),
		cmocka_unit_test(test_tls_timeout),
		cmocka_unit_test(test_dsn_limits),
		cmocka_unit_test(test_misuse),
		cmocka_unit_test(test_stage_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
