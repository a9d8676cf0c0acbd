#include "config.h"
/* fuzz_smtp_server.c - libFuzzer target for the whole SMTP server engine
 * (libmail/smtp_server.c with smtp_cmd.c, smtp_data.c, addr.c).
 *
 * Input: three octets of setup, then the client's byte stream.
 *   octet 0: configuration (SMTPUTF8 offered, size limit, recipient
 *            limit, error limit, hop limit);
 *   octet 1: behaviour (answers later instead of inside the callbacks;
 *            free the session from the close callback; feed one octet
 *            at a time; free it from any callback now and then; give
 *            the engine a flow-control callback);
 *   octet 2: seed for the choices below.
 * The stream is fed in chunks of pseudo-random size. A fake application
 * answers every request, now or queued and answered after a chunk, with
 * a pseudo-random mix of successes and refusals (unknown user, relay
 * denied, temporary failures, 421, failed content writes, failed
 * commits); now and then the session times out or shuts down, and
 * now and then the next part of the stream arrives from inside a write
 * callback (input given while the engine is busy).
 *
 * Checks, with abort() on any violation (besides ASan/UBSan/LSan):
 *   - every write is whole reply lines: 3 digits, ' ' or '-', text, CRLF;
 *   - one request at a time, and only the expected ones: no MAIL/RCPT
 *     while a message file is open, no content write or close without
 *     an open file, no second open;
 *   - close at most once; nothing written after it; no callback at all
 *     after the session was freed;
 *   - the content of a message committed after DATA (354) holds no bare
 *     LF or CR (the smuggling defence), respects the size limit and the
 *     Received: hop limit, and starts with our Received header;
 *   - a committed message has a sender and at least one recipient.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../libmail/addr.h"
#include "../../libmail/smtp_reply.h"
#include "../../libmail/smtp_server.h"
#include "../../libutil/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                 \
	do {                                                                                        \
		if (!(cond)) {                                                                      \
			fprintf(stderr, "fuzz_smtp_server: check failed: %s (line %d)\n", #cond, __LINE__); \
			abort();                                                                    \
		}                                                                                   \
	} while (0)

enum pend { P_NONE, P_MAIL, P_RCPT, P_OPEN, P_DONE };

struct app {
	struct smtp_session *s;
	struct smtp_server_config config;
	uint32_t rnd;
	bool async;
	bool free_on_close;
	bool free_randomly;
	bool freed;
	int closes;
	enum pend pend;       /* a queued answer */
	int pend_id;
	enum pend asked;      /* the request the engine is waiting for */
	bool paused;
	bool file_open;
	bool header_seen;
	bool data_mode;       /* a 354 was sent for the open file */
	struct buf content;   /* the open file, after the Received header */
	const uint8_t *stream; /* the client's bytes, and how many were fed */
	size_t stream_len, stream_pos;
	int qid;
	char qid_text[16];
};

static uint32_t next(struct app *a)
{
	a->rnd ^= a->rnd << 13;
	a->rnd ^= a->rnd >> 17;
	a->rnd ^= a->rnd << 5;
	return a->rnd;
}

/* one_in - true once in n times. */
static bool one_in(struct app *a, uint32_t n)
{
	return next(a) % n == 0;
}

/* maybe_free - now and then, the application drops the session from
 * inside a callback (the client went away meanwhile). */
static bool maybe_free(struct app *a)
{
	if (!a->free_randomly || a->s == NULL || !one_in(a, 300))
		return false;
	smtp_session_free(&a->s);
	a->freed = true;
	return true;
}

static void give_answer(struct app *a, enum pend kind, int id)
{
	CHECK(a->asked == kind);
	a->asked = P_NONE;
	switch (kind) {
	case P_MAIL:
		smtp_session_mail_done(a->s, id);
		break;
	case P_RCPT:
		smtp_session_rcpt_done(a->s, id);
		break;
	case P_OPEN:
		if (id == 0) {
			a->file_open = true;
			a->header_seen = false;
			a->data_mode = false;
			buf_reset(&a->content);
			snprintf(a->qid_text, sizeof a->qid_text, "Q%d", ++a->qid);
		}
		smtp_session_data_open_done(a->s, id, id == 0 ? a->qid_text : NULL);
		break;
	case P_DONE:
		smtp_session_data_done(a->s, id, NULL);
		break;
	case P_NONE:
		break;
	}
}

static void request(struct app *a, enum pend kind, int id)
{
	CHECK(!a->freed);
	CHECK(a->closes == 0);
	CHECK(a->asked == P_NONE && a->pend == P_NONE);
	a->asked = kind;
	if (a->async) {
		a->pend = kind;
		a->pend_id = id;
	} else {
		give_answer(a, kind, id);
	}
}

static void drain(struct app *a)
{
	while (a->pend != P_NONE && a->s != NULL) {
		enum pend kind = a->pend;

		a->pend = P_NONE;
		give_answer(a, kind, a->pend_id);
	}
}

/* check_replies - whole reply lines only. */
static void check_replies(const char *data, size_t len)
{
	size_t i = 0;

	CHECK(len >= 6);
	while (i < len) {
		const char *line = data + i, *lf = memchr(line, '\n', len - i);
		size_t n;
		int code;

		CHECK(lf != NULL);
		n = (size_t)(lf - line) + 1;
		CHECK(n >= 6 && line[n - 2] == '\r');
		CHECK(line[0] >= '2' && line[0] <= '5' && line[1] >= '0' && line[1] <= '5' && line[2] >= '0' &&
		      line[2] <= '9');
		code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
		CHECK(code >= 211 && code <= 555);
		CHECK(line[3] == ' ' || line[3] == '-');
		CHECK(memchr(line, '\r', n - 2) == NULL);
		/* the last line of a write ends the reply */
		if (i + n == len)
			CHECK(line[3] == ' ');
		i += n;
	}
}

/* feed - the next n octets of the stream, from an exact-size copy so
 * that ASan sees any read past it. */
static void feed(struct app *a, size_t n)
{
	uint8_t *chunk;

	if (n > a->stream_len - a->stream_pos)
		n = a->stream_len - a->stream_pos;
	if (n == 0 || (chunk = malloc(n)) == NULL)
		return;
	memcpy(chunk, a->stream + a->stream_pos, n);
	a->stream_pos += n;
	smtp_session_input(a->s, chunk, n);
	free(chunk);
}

static void a_write(void *ctx, const char *data, size_t len)
{
	struct app *a = ctx;

	CHECK(!a->freed && a->closes == 0);
	check_replies(data, len);
	if (a->file_open && len >= 4 && memcmp(data, "354 ", 4) == 0)
		a->data_mode = true;
	if (maybe_free(a))
		return;
	if (one_in(a, 32))
		feed(a, 1 + next(a) % 16); /* input while the engine is busy */
}

static void a_close(void *ctx)
{
	struct app *a = ctx;

	CHECK(!a->freed && a->closes == 0);
	a->closes++;
	if (a->free_on_close) {
		smtp_session_free(&a->s);
		a->freed = true;
	}
}

static void a_mail(void *ctx, const struct mail_addr *sender, const struct smtp_mail_params *p)
{
	struct app *a = ctx;
	static const int ids[] = { 0, 0, 0, 0, 0, R_SENDER_NOT_OWNED, R_BAD_SENDER, R_QUEUE_ERROR };

	CHECK(sender != NULL && p != NULL && !a->file_open);
	CHECK(p->size >= -1);
	if (maybe_free(a))
		return;
	request(a, P_MAIL, ids[next(a) % 8]);
}

static void a_rcpt(void *ctx, const struct mail_addr *rcpt, const struct smtp_rcpt_params *p)
{
	struct app *a = ctx;
	static const int ids[] = { 0, 0, 0, 0, R_UNKNOWN_USER, R_RELAY_DENIED, R_RCPT_TEMPFAIL, R_MOVED };

	CHECK(rcpt != NULL && p != NULL && !rcpt->is_null && !a->file_open);
	CHECK(smtp_session_sender(a->s) != NULL);
	if (maybe_free(a))
		return;
	request(a, P_RCPT, one_in(a, 64) ? R_SHUTDOWN : ids[next(a) % 8]);
}

static void a_data_open(void *ctx)
{
	struct app *a = ctx;

	CHECK(!a->file_open);
	CHECK(smtp_session_sender(a->s) != NULL && smtp_session_rcpt_count(a->s) > 0);
	if (maybe_free(a))
		return;
	request(a, P_OPEN, one_in(a, 8) ? R_QUEUE_ERROR : 0);
}

static int a_data_write(void *ctx, const void *data, size_t len)
{
	struct app *a = ctx;

	CHECK(!a->freed && a->file_open && len > 0);
	if (!a->header_seen) {
		/* our Received header comes first, in one piece */
		CHECK(len > 20 && memcmp(data, "Received: from ", 15) == 0);
		CHECK(memcmp((const char *)data + len - 2, "\r\n", 2) == 0);
		a->header_seen = true;
	} else {
		buf_append(&a->content, data, len);
	}
	if (maybe_free(a))
		return 0;
	if (one_in(a, 512)) {
		errno = one_in(a, 2) ? ENOSPC : EIO;
		return -1;
	}
	return 0;
}

/* received_lines - Received: lines in the header section. */
static unsigned received_lines(const struct buf *b)
{
	const char *p = buf_cstr(b), *end = p + b->len;
	unsigned count = 0;

	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		size_t n = lf != NULL ? (size_t)(lf - p) : (size_t)(end - p);

		if (n == 0 || (n == 1 && p[0] == '\r' && lf != NULL))
			break;
		if (n >= 9 && strncasecmp(p, "received", 8) == 0) {
			size_t k = 8;

			while (k < n && (p[k] == ' ' || p[k] == '\t'))
				k++;
			if (k < n && p[k] == ':')
				count++;
		}
		if (lf == NULL)
			break;
		p = lf + 1;
	}
	return count;
}

static void a_data_close(void *ctx, bool ok)
{
	struct app *a = ctx;

	CHECK(!a->freed && a->file_open);
	a->file_open = false;
	if (!ok || maybe_free(a))
		return;
	CHECK(a->header_seen);
	CHECK(smtp_session_sender(a->s) != NULL && smtp_session_rcpt_count(a->s) > 0);
	CHECK(smtp_session_mail_params(a->s) != NULL && smtp_session_helo(a->s) != NULL);
	CHECK(smtp_session_queue_id(a->s) != NULL && strcmp(smtp_session_queue_id(a->s), a->qid_text) == 0);
	for (size_t i = 0; i < smtp_session_rcpt_count(a->s); i++) {
		const struct mail_addr *r = smtp_session_rcpt(a->s, i);

		CHECK(r != NULL && !r->is_null && smtp_session_rcpt_params(a->s, i) != NULL);
		if (r->utf8)
			CHECK(smtp_session_mail_params(a->s)->smtputf8);
	}
	CHECK(smtp_session_rcpt(a->s, smtp_session_rcpt_count(a->s)) == NULL);
	if (a->config.max_recipients > 0)
		CHECK(smtp_session_rcpt_count(a->s) <= (size_t)a->config.max_recipients);
	if (a->data_mode) {
		/* DATA: never a bare LF or CR in what we accept */
		for (size_t i = 0; i < a->content.len; i++) {
			if (a->content.data[i] == '\n')
				CHECK(i > 0 && a->content.data[i - 1] == '\r');
			if (a->content.data[i] == '\r')
				CHECK(i + 1 < a->content.len && a->content.data[i + 1] == '\n');
		}
		/* and it ends with a line end (or is empty) */
		CHECK(a->content.len == 0 || a->content.data[a->content.len - 1] == '\n');
	}
	if (a->config.max_message_size > 0)
		CHECK(a->content.len <= (size_t)a->config.max_message_size);
	if (a->config.max_received > 0)
		CHECK(received_lines(&a->content) <= (unsigned)a->config.max_received);
	request(a, P_DONE, one_in(a, 8) ? R_QUEUE_ERROR : 0);
}

static void a_log(void *ctx, const char *line)
{
	struct app *a = ctx;

	CHECK(!a->freed);
	for (; *line; line++)
		CHECK((unsigned char)*line >= 32 && (unsigned char)*line < 127);
	maybe_free(a);
}

static void a_flow(void *ctx, bool paused)
{
	struct app *a = ctx;

	CHECK(!a->freed && a->closes == 0);
	CHECK(paused != a->paused);
	a->paused = paused;
}

static const struct smtp_server_callbacks callbacks = {
	.write = a_write,
	.close = a_close,
	.mail = a_mail,
	.rcpt = a_rcpt,
	.data_open = a_data_open,
	.data_write = a_data_write,
	.data_close = a_data_close,
	.log = a_log,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long long sizes[] = { 0, 100, 10000, 1 << 20 };
	static const int rcpts[] = { 0, 1, 3, 100 };
	static const int errors[] = { 0, 1, 5, 20 };
	struct app a;
	bool bytewise;
	size_t pos = 3;

	if (size < 3)
		return 0;
	memset(&a, 0, sizeof a);
	a.config.hostname = "mx.example.org";
	a.config.smtputf8 = data[0] & 1;
	a.config.max_message_size = sizes[(data[0] >> 1) & 3];
	a.config.max_recipients = rcpts[(data[0] >> 3) & 3];
	a.config.max_errors = errors[(data[0] >> 5) & 3];
	a.config.max_received = data[0] & 0x80 ? 3 : 0;
	a.async = data[1] & 1;
	a.free_on_close = data[1] & 2;
	bytewise = data[1] & 4;
	a.free_randomly = data[1] & 64;
	a.rnd = 0x9e3779b9u ^ ((uint32_t)data[2] << 8) ^ data[1];

	struct smtp_server_callbacks cb = callbacks;

	if (data[1] & 128)
		cb.flow = a_flow;
	a.s = smtp_session_new(&a.config, &cb, &a, data[1] & 8 ? "2001:db8::1" : "192.0.2.1",
			       data[1] & 16 ? NULL : "client.example");
	if (data[1] & 32)
		smtp_session_set_tls(a.s, true, NULL, NULL, 0);
	a.stream = data + pos;
	a.stream_len = size - pos;
	smtp_session_start(a.s);
	while (a.stream_pos < a.stream_len && a.s != NULL) {
		feed(&a, bytewise ? 1 : 1 + next(&a) % 64);
		/* answers come after the chunk, or after a later one */
		if (!one_in(&a, 4))
			drain(&a);
		if (a.s != NULL && one_in(&a, 500))
			smtp_session_timeout(a.s);
		if (a.s != NULL && one_in(&a, 500))
			smtp_session_shutdown(a.s);
	}
	if (one_in(&a, 2))
		drain(&a);
	if (a.s != NULL) {
		if (a.closes > 0)
			CHECK(smtp_session_closed(a.s));
		smtp_session_free(&a.s);
		a.freed = true;
	}
	/* every file the application opened was closed */
	CHECK(!a.file_open);
	buf_free(&a.content);
	return 0;
}
