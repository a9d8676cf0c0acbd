#include "config.h"
/* fuzz_smtp_client.c - libFuzzer target for the SMTP client engine
 * (libmail/smtp_client.c with smtp_reply_parse.c) against a fuzzed
 * server.
 *
 * Input: three octets of setup, then the server's byte stream.
 *   octet 0: configuration (TLS policy none/may/encrypt/implicit TLS,
 *            AUTH credentials, AUTH over plaintext allowed, no
 *            pipelining, how many messages, QUIT asked for at once);
 *   octet 1: behaviour (feed one octet at a time; answer want_tls
 *            later instead of inside the callback; the handshake fails;
 *            the output is "full" now and then; free the session from
 *            callbacks now and then; free it from close; timeouts, lost
 *            connections and QUIT now and then);
 *   octet 2: seed for the choices below.
 * A fake application gives up to four messages (from a fixed set:
 * dots, bare LF and CR in the content, the null sender, DSN, 8-bit,
 * UTF-8 and malformed addresses, a large SIZE), serves their content in
 * pseudo-random pieces, sometimes fails to read it, and answers the TLS
 * handshake now or after the next chunk. At the end the connection is
 * "lost" unless the session was freed or closed.
 *
 * Checks, with abort() on any violation (besides ASan/UBSan/LSan):
 *   - every write outside the content is whole command lines ending in
 *     CRLF with no CR, LF or NUL inside, and only commands the session
 *     may send: STARTTLS only under a TLS policy and before TLS, AUTH
 *     only with credentials and over TLS (or when allowed), MAIL and
 *     RCPT only for a message in progress, and under "encrypt" only
 *     after a successful handshake; nothing after a QUIT;
 *   - the content as sent ends with CRLF "." CRLF, has no bare CR or
 *     LF, and once un-stuffed is the message's content with its line
 *     ends made CRLF (and a last one added);
 *   - message_done comes exactly once per message given, with one
 *     result per recipient: a known status, a code of 200..599, an
 *     enhanced code whose class agrees, printable text; "delivered"
 *     only after the whole content went out;
 *   - close comes at most once, after every message's message_done;
 *     nothing at all comes after close or after the session was freed;
 *     a lost connection at the end always closes the session.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libmail/smtp_client.h"
#include "../../libutil/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                   \
	do {                                                                                          \
		if (!(cond)) {                                                                        \
			fprintf(stderr, "fuzz_smtp_client: check failed: %s (line %d)\n", #cond, __LINE__); \
			abort();                                                                      \
		}                                                                                     \
	} while (0)

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const struct smtp_client_rcpt rcpts_a[] = {
	{ "b@example.org", 0, NULL },
	{ "c@example.org", SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY, "rfc822;c@example.org" },
};
static const struct smtp_client_rcpt rcpts_b[] = {
	{ "d@example.org", SMTP_NOTIFY_NEVER, NULL },
};
static const struct smtp_client_rcpt rcpts_c[] = {
	{ "j\xc3\xbcrgen@example.org", 0, "utf-8;j\xc3\xbcrgen@example.org" },
	{ "bad\r\n@example.org", 0, NULL },
	{ "e@example.org", SMTP_NOTIFY_FAILURE, "x" },
};

struct msgspec {
	struct smtp_client_message msg;
	const char *content;
};

static const struct msgspec messages[] = {
	{ { "a@example.com", 40, false, false, NULL, NULL, rcpts_a, 2 },
	  "Received: x\r\n\r\n.dot\r\n..two\r\nbare\nlf\rcr\r.\r\nend" },
	{ { "", 0, true, false, "FULL", "id+1", rcpts_b, 1 }, "" },
	{ { "a@example.com", 30, true, true, "HDRS", NULL, rcpts_c, 3 }, "\xc3\xa9\r\n.\r\n.\n" },
	{ { "a@example.com", 1 << 20, false, false, NULL, NULL, rcpts_a, 2 }, "." },
	{ { "bad\x01sender", -1, false, false, NULL, NULL, rcpts_b, 1 }, "x\r\n" },
};

struct app {
	struct smtp_client *c;
	struct smtp_client_config config;
	uint32_t rnd;
	bool freed;
	int closes;
	bool free_randomly;
	bool free_on_close;
	bool events;
	bool flow;
	bool blocked;
	bool tls_later;
	bool tls_fail;
	bool tls_pending;
	bool tls_on;
	bool quit_written;
	bool quit_called;  /* smtp_client_quit was called: no more messages */
	size_t nmsgs, given;
	bool in_msg;
	const struct msgspec *cur;
	size_t content_pos;
	bool content_mode;
	bool content_complete;
	struct buf sent;   /* the current message's content as sent */
	const uint8_t *stream;
	size_t stream_len, stream_pos;
};

static uint32_t next(struct app *a)
{
	a->rnd ^= a->rnd << 13;
	a->rnd ^= a->rnd >> 17;
	a->rnd ^= a->rnd << 5;
	return a->rnd;
}

static bool one_in(struct app *a, uint32_t n)
{
	return next(a) % n == 0;
}

static bool maybe_free(struct app *a)
{
	if (!a->free_randomly || a->c == NULL || !one_in(a, 200))
		return false;
	smtp_client_free(&a->c);
	a->freed = true;
	return true;
}

static void give_message(struct app *a)
{
	a->cur = &messages[next(a) % NELEM(messages)];
	a->given++;
	a->in_msg = true;
	a->content_pos = 0;
	a->content_mode = false;
	a->content_complete = false;
	buf_reset(&a->sent);
	smtp_client_send(a->c, &a->cur->msg);
}

/* normalized - the content with every line end CRLF, and a last one. */
static void normalized(const char *s, struct buf *out)
{
	for (; *s != '\0'; s++) {
		if (*s == '\r') {
			buf_append(out, "\r\n", 2);
			if (s[1] == '\n')
				s++;
		} else if (*s == '\n') {
			buf_append(out, "\r\n", 2);
		} else {
			buf_append_byte(out, (uint8_t)*s);
		}
	}
	if (out->len > 0 && out->data[out->len - 1] != '\n')
		buf_append(out, "\r\n", 2);
}

/* check_content - what was sent is the content, stuffed and ended. */
static void check_content(struct app *a)
{
	const struct buf *b = &a->sent;
	struct buf unstuffed = BUF_INIT, want = BUF_INIT;
	size_t pos = 0;

	CHECK(b->len >= 3 && memcmp(b->data + b->len - 3, ".\r\n", 3) == 0);
	CHECK(b->len == 3 || (b->len >= 5 && b->data[b->len - 5] == '\r' && b->data[b->len - 4] == '\n'));
	for (size_t i = 0; i < b->len; i++) {
		if (b->data[i] == '\n')
			CHECK(i > 0 && b->data[i - 1] == '\r');
		if (b->data[i] == '\r')
			CHECK(i + 1 < b->len && b->data[i + 1] == '\n');
	}
	while (pos < b->len - 3) {
		const uint8_t *lf = memchr(b->data + pos, '\n', b->len - pos);
		size_t n = (size_t)(lf - (b->data + pos)) + 1;

		if (b->data[pos] == '.') {
			CHECK(n > 3 && b->data[pos + 1] == '.'); /* never a lone "." inside */
			buf_append(&unstuffed, b->data + pos + 1, n - 1);
		} else {
			buf_append(&unstuffed, b->data + pos, n);
		}
		pos += n;
	}
	CHECK(pos == b->len - 3);
	normalized(a->cur->content, &want);
	CHECK(unstuffed.len == want.len && memcmp(buf_cstr(&unstuffed), buf_cstr(&want), want.len) == 0);
	buf_free(&unstuffed);
	buf_free(&want);
}

static bool is_base64(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '+' || s[i] == '/' || s[i] == '='))
			return false;
	return n > 0;
}

static bool starts(const char *s, size_t n, const char *prefix)
{
	size_t p = strlen(prefix);

	return n >= p && memcmp(s, prefix, p) == 0;
}

/* check_command - one command line (without its CRLF). */
static void check_command(struct app *a, const char *s, size_t n)
{
	CHECK(!a->quit_written);
	CHECK(memchr(s, '\r', n) == NULL && memchr(s, '\0', n) == NULL);
	CHECK(n <= 2000);
	if (n == 4 && memcmp(s, "QUIT", 4) == 0) {
		a->quit_written = true;
	} else if (starts(s, n, "EHLO ") || starts(s, n, "HELO ")) {
		CHECK(n == 23 && memcmp(s + 5, "client.example.com", 18) == 0);
	} else if (n == 8 && memcmp(s, "STARTTLS", 8) == 0) {
		CHECK(a->config.tls != SMTP_CLIENT_TLS_NONE && !a->tls_on);
	} else if (starts(s, n, "AUTH ")) {
		CHECK(a->config.auth_user != NULL && (a->tls_on || a->config.auth_plaintext));
		CHECK((n == 10 && memcmp(s, "AUTH LOGIN", 10) == 0) || (starts(s, n, "AUTH PLAIN ") &&
									 is_base64(s + 11, n - 11)));
	} else if (starts(s, n, "MAIL FROM:<") || starts(s, n, "RCPT TO:<") || (n == 4 && memcmp(s, "DATA", 4) == 0)) {
		CHECK(a->in_msg);
		if (a->config.tls == SMTP_CLIENT_TLS_ENCRYPT)
			CHECK(a->tls_on);
	} else if (n == 4 && memcmp(s, "RSET", 4) == 0) {
		CHECK(a->in_msg);
	} else if ((n == 1 && s[0] == '*') || (n == 1 && s[0] == '.')) {
		/* AUTH cancelled; the empty message after a stray 354 */
	} else {
		CHECK(a->config.auth_user != NULL && is_base64(s, n)); /* AUTH LOGIN answers */
	}
}

static void a_write(void *ctx, const void *data, size_t len)
{
	struct app *a = ctx;
	enum smtp_client_stage stage;

	CHECK(!a->freed && a->closes == 0 && len > 0);
	stage = smtp_client_stage(a->c);
	if (stage == SMTP_STAGE_CONTENT || (stage == SMTP_STAGE_DOT && a->content_mode)) {
		CHECK(a->in_msg && a->content_mode);
		a->content_mode = stage == SMTP_STAGE_CONTENT;
		buf_append(&a->sent, data, len);
		if (stage == SMTP_STAGE_DOT) {
			check_content(a);
			a->content_complete = true;
		}
	} else {
		const char *s = data;
		size_t pos = 0;

		CHECK(len >= 2 && s[len - 2] == '\r' && s[len - 1] == '\n');
		while (pos < len) {
			const char *lf = memchr(s + pos, '\n', len - pos);
			size_t n = (size_t)(lf - (s + pos));

			CHECK(n >= 1 && s[pos + n - 1] == '\r');
			check_command(a, s + pos, n - 1);
			pos += n + 1;
		}
	}
	maybe_free(a);
}

static ssize_t a_read_content(void *ctx, void *buf, size_t max)
{
	struct app *a = ctx;
	size_t left, n;

	CHECK(!a->freed && a->closes == 0 && a->in_msg);
	CHECK(smtp_client_stage(a->c) == SMTP_STAGE_CONTENT);
	CHECK(max > 0);
	a->content_mode = true; /* the writes from here to the final dot are content */
	if (maybe_free(a))
		return 0;
	if (one_in(a, 400))
		return -1;
	left = strlen(a->cur->content) - a->content_pos;
	n = left < max ? left : max;
	if (n > 1)
		n = 1 + next(a) % n;
	memcpy(buf, a->cur->content + a->content_pos, n);
	a->content_pos += n;
	return (ssize_t)n;
}

static void a_message_done(void *ctx, const struct smtp_client_result *results, size_t n, bool reusable)
{
	struct app *a = ctx;

	CHECK(!a->freed && a->closes == 0 && a->in_msg);
	CHECK(n == a->cur->msg.nrcpt);
	for (size_t i = 0; i < n; i++) {
		const struct smtp_client_result *r = &results[i];

		CHECK(r->status == SMTP_CLIENT_DELIVERED || r->status == SMTP_CLIENT_DEFERRED ||
		      r->status == SMTP_CLIENT_FAILED);
		CHECK(r->code >= 200 && r->code <= 599);
		CHECK(r->enhanced[0] == "245"[r->status] && r->enhanced[1] == '.');
		CHECK(r->text != NULL && strlen(r->text) <= SMTP_CLIENT_TEXT_MAX);
		for (const char *p = r->text; *p; p++)
			CHECK((unsigned char)*p >= 32 && (unsigned char)*p < 127);
		if (r->status == SMTP_CLIENT_DELIVERED)
			CHECK(a->content_complete && r->remote);
		CHECK(r->stage <= SMTP_STAGE_CLOSED);
	}
	a->in_msg = false;
	if (maybe_free(a))
		return;
	if (!reusable) {
		CHECK(smtp_client_stage(a->c) == SMTP_STAGE_CLOSED);
		return;
	}
	CHECK(smtp_client_stage(a->c) == SMTP_STAGE_IDLE);
	if (a->given < a->nmsgs && !a->quit_called && !one_in(a, 8)) {
		give_message(a);
	} else if (!one_in(a, 4)) {
		a->quit_called = true;
		smtp_client_quit(a->c);
	}
}

static void a_close(void *ctx, const struct smtp_client_result *why)
{
	struct app *a = ctx;

	CHECK(!a->freed && a->closes == 0);
	CHECK(!a->in_msg); /* every message was answered first */
	a->closes++;
	if (why != NULL) {
		CHECK(why->status == SMTP_CLIENT_DEFERRED || why->status == SMTP_CLIENT_FAILED);
		CHECK(why->code >= 200 && why->code <= 599);
	}
	CHECK(smtp_client_closed(a->c));
	if (a->free_on_close) {
		smtp_client_free(&a->c);
		a->freed = true;
	}
}

static void a_want_tls(void *ctx)
{
	struct app *a = ctx;

	CHECK(!a->freed && a->closes == 0 && !a->tls_pending);
	CHECK(a->config.tls != SMTP_CLIENT_TLS_NONE && !a->tls_on);
	CHECK(smtp_client_stage(a->c) == SMTP_STAGE_STARTTLS);
	if (maybe_free(a))
		return;
	if (a->tls_later) {
		a->tls_pending = true;
		return;
	}
	if (!a->tls_fail)
		a->tls_on = true;
	smtp_client_tls_done(a->c, !a->tls_fail);
}

static bool a_output_full(void *ctx)
{
	struct app *a = ctx;

	CHECK(!a->freed && a->closes == 0);
	if (!a->flow || !one_in(a, 3))
		return false;
	a->blocked = true;
	return true;
}

static void a_log(void *ctx, const char *line)
{
	struct app *a = ctx;

	CHECK(!a->freed && a->closes == 0);
	for (; *line; line++)
		CHECK((unsigned char)*line >= 32 && (unsigned char)*line < 127);
}

static const struct smtp_client_callbacks callbacks = {
	.write = a_write,
	.read_content = a_read_content,
	.message_done = a_message_done,
	.close = a_close,
	.want_tls = a_want_tls,
	.output_full = a_output_full,
	.log = a_log,
};

static void feed(struct app *a, size_t n)
{
	uint8_t *chunk;

	if (n > a->stream_len - a->stream_pos)
		n = a->stream_len - a->stream_pos;
	if (n == 0 || (chunk = malloc(n)) == NULL)
		return;
	memcpy(chunk, a->stream + a->stream_pos, n);
	a->stream_pos += n;
	smtp_client_input(a->c, chunk, n);
	free(chunk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct app a;
	bool bytewise;

	if (size < 3)
		return 0;
	memset(&a, 0, sizeof a);
	a.config.helo_name = "client.example.com";
	switch (data[0] & 3) {
	case 0:
		a.config.tls = SMTP_CLIENT_TLS_NONE;
		break;
	case 1:
		a.config.tls = SMTP_CLIENT_TLS_MAY;
		break;
	case 2:
		a.config.tls = SMTP_CLIENT_TLS_ENCRYPT;
		break;
	default:
		a.config.tls = SMTP_CLIENT_TLS_ENCRYPT;
		a.config.tls_active = true;
		a.tls_on = true;
		break;
	}
	if (data[0] & 4) {
		a.config.auth_user = "user";
		a.config.auth_password = "secret";
	}
	a.config.auth_plaintext = data[0] & 8;
	a.config.no_pipelining = data[0] & 16;
	a.nmsgs = (size_t)(data[0] >> 5) & 3;
	bytewise = data[1] & 1;
	a.tls_later = data[1] & 2;
	a.tls_fail = data[1] & 4;
	a.flow = data[1] & 8;
	a.free_randomly = data[1] & 16;
	a.free_on_close = data[1] & 32;
	a.events = data[1] & 64;
	a.rnd = 0x9e3779b9u ^ ((uint32_t)data[2] << 8) ^ data[1];
	a.stream = data + 3;
	a.stream_len = size - 3;

	a.c = smtp_client_new(&a.config, &callbacks, &a);
	if (a.nmsgs > 0)
		give_message(&a);
	if (data[0] & 128) {
		a.quit_called = true;
		smtp_client_quit(a.c);
	}
	while (a.stream_pos < a.stream_len && a.c != NULL && !smtp_client_closed(a.c)) {
		feed(&a, bytewise ? 1 : 1 + next(&a) % 64);
		if (a.c == NULL)
			break;
		if (a.tls_pending && !one_in(&a, 4)) {
			a.tls_pending = false;
			if (!a.tls_fail)
				a.tls_on = true;
			smtp_client_tls_done(a.c, !a.tls_fail);
		}
		if (a.c != NULL && a.blocked && !one_in(&a, 8)) {
			a.blocked = false;
			smtp_client_output_ready(a.c);
		}
		if (a.c != NULL && a.events && one_in(&a, 200))
			smtp_client_timeout(a.c);
		if (a.c != NULL && a.events && one_in(&a, 200))
			smtp_client_lost(a.c, "Connection reset by peer");
		if (a.c != NULL && a.events && one_in(&a, 100)) {
			a.quit_called = true;
			smtp_client_quit(a.c);
		}
	}
	if (a.c != NULL) {
		/* The server went away: the session must end, and every
		 * message given must have had its results. */
		while (a.blocked && a.c != NULL && !smtp_client_closed(a.c) && one_in(&a, 2)) {
			a.blocked = false;
			smtp_client_output_ready(a.c);
		}
		if (a.c != NULL)
			smtp_client_lost(a.c, NULL);
		if (a.c != NULL) {
			CHECK(smtp_client_closed(a.c));
			CHECK(a.closes == 1);
			smtp_client_free(&a.c);
		}
		CHECK(!a.in_msg || a.freed);
	}
	buf_free(&a.sent);
	return 0;
}
