#include "config.h"
/* fuzz_pop3_server.c - libFuzzer target for the POP3 server engine
 * (libmail/pop3_server.c): command lines, USER/PASS, SASL framing and
 * cancels, STLS, the TRANSACTION commands, message content on the wire,
 * pipelining, output and input flow control.
 *
 * Input: four octets of setup, the mailbox, then the client's byte
 * stream.
 *   octet 0: configuration (bit 0: STLS offered; bit 1: TLS from the
 *            start; bit 2: plaintext logins allowed; bits 3-4: the SASL
 *            mechanisms; bits 5-6: the error limit; bit 7: the output
 *            buffer is full now and then);
 *   octet 1: behaviour (bit 0: answers come after each chunk, not
 *            inside the callbacks; bit 1: feed one octet at a time;
 *            bit 2: free the session from the close callback; bit 3:
 *            free it from any callback now and then; bit 4: an input
 *            flow-control callback; bit 5: the next part of the stream
 *            arrives from inside a write now and then; bit 6: files are
 *            read in small pieces; bit 7: timeouts and shutdowns now and
 *            then);
 *   octet 2: seed for the fake application's choices;
 *   octet 3: bits 0-6: the number of messages (mod 6); bit 7: now and
 *            then a burst of up to 20000 copies of the stream's next
 *            octet (overlong lines, input flow control); then each
 *            message as one length octet and that many octets of file
 *            content.
 * The fake application answers each login step with a pseudo-random mix
 * of challenges (random octets), success, failure, temporary failure
 * and "needs TLS"; the mailbox with success (mostly), in-use, temporary
 * and permanent failure, listing a wrong size now and then; reads fail
 * now and then; the UPDATE fails now and then.
 *
 * Checks, with abort() on any violation (besides ASan/UBSan/LSan):
 *   - outside message content, every write is whole CRLF lines of
 *     printable ASCII, at most 512 octets, challenge lines excepted; a
 *     "+ " line carries exactly the base64 of the challenge just given;
 *   - every complete RETR response un-stuffs to the file with LF turned
 *     into CRLF (and a last line ended), whose length pop3_size gives,
 *     and its "+OK N octets" is the listed size; a complete TOP response
 *     is a prefix of it that ends at a line end; a cut response only
 *     ever comes with a read error or the end of the session;
 *   - requests come one at a time and in their turn: auth_step and
 *     auth_cancel only inside an exchange, PLAIN and LOGIN only over
 *     TLS unless plaintext is allowed, only configured mechanisms;
 *     mailbox_open only after a
 *     successful login, with its user; nothing at all while the STLS
 *     handshake runs; open_message only in TRANSACTION, never for a
 *     message the engine said it deleted, one at a time; update only on
 *     QUIT with some message marked, with exactly the marks DELE and
 *     RSET answered;
 *   - close at most once, nothing written after it, no callback after
 *     a free (but the close_message an open message is owed); at the end
 *     no message is open and no exchange is pending.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libmail/pop3_server.h"
#include "../../libutil/base64.h"
#include "../../libutil/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                   \
	do {                                                                                          \
		if (!(cond)) {                                                                        \
			fprintf(stderr, "fuzz_pop3_server: check failed: %s (line %d)\n", #cond, __LINE__); \
			abort();                                                                      \
		}                                                                                     \
	} while (0)

#define MAX_MSGS 5

enum ask { ASK_NONE, ASK_AUTH, ASK_MAILBOX, ASK_UPDATE };

struct app {
	struct pop3_session *s;
	struct pop3_server_config config;
	uint32_t rnd;
	bool async, free_on_close, free_randomly, write_feeds, small_reads, chaos, flaky_output, bursts;
	bool freed;
	int closes;
	/* the request the engine waits for, and its queued answer */
	enum ask asked;
	int answer;
	/* TLS */
	bool tls, tls_pending;
	/* the login */
	bool in_exchange;
	uint8_t challenge[40];
	size_t challenge_len;
	bool challenge_due; /* the "+ " line for it must come next */
	bool logged_in;
	const char *user;
	/* the mailbox */
	const uint8_t *content[MAX_MSGS];
	size_t content_len[MAX_MSGS];
	long long listed[MAX_MSGS]; /* the size given to the engine */
	size_t nmsgs;
	bool deleted[MAX_MSGS]; /* as the engine's responses said */
	bool updated;
	/* the open message */
	bool msg_open;
	size_t msg_index, msg_pos;
	bool read_failed;
	struct buf msg_out; /* what was written while it was open */
	bool blocked;       /* output_full said true */
	bool paused;
	/* the client's stream */
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

/* maybe_free - now and then the application drops the session from
 * inside a callback. */
static bool maybe_free(struct app *a)
{
	if (!a->free_randomly || a->s == NULL || !one_in(a, 200))
		return false;
	pop3_session_free(&a->s);
	a->freed = true;
	return true;
}

/* feed - the next n octets of the stream, from an exact-size copy so
 * that ASan sees any read past it. */
static void feed(struct app *a, size_t n)
{
	uint8_t *chunk;

	if (n > a->stream_len - a->stream_pos)
		n = a->stream_len - a->stream_pos;
	if (n == 0 || a->s == NULL || (chunk = malloc(n)) == NULL)
		return;
	memcpy(chunk, a->stream + a->stream_pos, n);
	a->stream_pos += n;
	pop3_session_input(a->s, chunk, n);
	free(chunk);
}

/* burst - many copies of the stream's next octet in one input (a few
 * only of a LF: each would be a command). */
static void burst(struct app *a)
{
	size_t n = 1 + next(a) % 20000;
	uint8_t *chunk, c;

	if (a->stream_pos == a->stream_len || a->s == NULL)
		return;
	c = a->stream[a->stream_pos++];
	if (c == '\n')
		n = n % 64 + 1;
	if ((chunk = malloc(n)) == NULL)
		return;
	memset(chunk, c, n);
	pop3_session_input(a->s, chunk, n);
	free(chunk);
}

/* ---- the wire form, computed independently of the engine ---------- */

static void wire(const uint8_t *c, size_t n, struct buf *out)
{
	buf_reset(out);
	for (size_t i = 0; i < n; i++) {
		if (c[i] == '\n' && (i == 0 || c[i - 1] != '\r'))
			buf_append_byte(out, '\r');
		buf_append_byte(out, c[i]);
	}
	if (n > 0 && c[n - 1] != '\n')
		buf_append_str(out, c[n - 1] == '\r' ? "\n" : "\r\n");
}

/* check_message - what was written for one RETR or TOP. */
static void check_message(struct app *a, bool cut_allowed)
{
	const char *o = buf_cstr(&a->msg_out);
	size_t len = a->msg_out.len, hdr;
	const char *lf;
	struct buf want = BUF_INIT, got = BUF_INIT;
	struct pop3_size z;

	if (len == 0)
		return; /* the first read failed, or the session ended before */
	lf = memchr(o, '\n', len);
	CHECK(lf != NULL && lf > o && lf[-1] == '\r');
	hdr = (size_t)(lf - o) + 1;
	CHECK(strncmp(o, "+OK ", 4) == 0);
	if (len < hdr + 3 || memcmp(o + len - 3, ".\r\n", 3) != 0 ||
	    (len > hdr + 3 && memcmp(o + len - 5, "\r\n", 2) != 0)) {
		CHECK(cut_allowed);
		return;
	}
	/* un-stuff the body, o[hdr .. len - 3): whole CRLF lines */
	for (size_t i = hdr, body_end = len - 3; i < body_end;) {
		size_t j = i;

		while (j + 1 < body_end && !(o[j] == '\r' && o[j + 1] == '\n'))
			j++;
		CHECK(j + 1 < body_end); /* the line has its CRLF */
		if (o[i] == '.') {
			CHECK(j > i + 1 && o[i + 1] == '.'); /* stuffed, never a lone dot */
			i++;
		}
		buf_append(&got, o + i, j + 2 - i);
		i = j + 2;
	}
	wire(a->content[a->msg_index], a->content_len[a->msg_index], &want);
	pop3_size_init(&z);
	pop3_size_add(&z, a->content[a->msg_index], a->content_len[a->msg_index]);
	CHECK(pop3_size_result(&z) == want.len);
	if (strncmp(o, "+OK Top of message ", 19) == 0) {
		CHECK(got.len <= want.len && memcmp(buf_cstr(&got), buf_cstr(&want), got.len) == 0);
	} else {
		char head[64];

		snprintf(head, sizeof head, "+OK %lld octets\r\n", a->listed[a->msg_index]);
		CHECK(hdr == strlen(head) && memcmp(o, head, hdr) == 0);
		CHECK(got.len == want.len && memcmp(buf_cstr(&got), buf_cstr(&want), got.len) == 0);
	}
	buf_free(&want);
	buf_free(&got);
}

/* check_lines - a write outside message content: whole lines, printable;
 * DELE and RSET responses update the shadow marks. */
static void check_lines(struct app *a, const char *data, size_t len)
{
	for (size_t i = 0; i < len;) {
		const char *line = data + i, *lf = memchr(line, '\n', len - i);
		size_t n;

		CHECK(lf != NULL);
		n = (size_t)(lf - line) + 1;
		CHECK(n >= 2 && line[n - 2] == '\r');
		for (size_t k = 0; k + 2 < n; k++)
			CHECK(line[k] >= 32 && line[k] < 127);
		if (n >= 2 && line[0] == '+' && line[1] == ' ') {
			struct buf b64 = BUF_INIT;

			CHECK(a->challenge_due);
			a->challenge_due = false;
			base64_encode(&b64, a->challenge, a->challenge_len);
			CHECK(n - 4 == b64.len && memcmp(line + 2, buf_cstr(&b64), b64.len) == 0);
			buf_free(&b64);
		} else {
			CHECK(n <= 512);
		}
		if (n > 16 && memcmp(line, "+OK Message ", 12) == 0) {
			unsigned long k = strtoul(line + 12, NULL, 10);

			CHECK(k >= 1 && k <= a->nmsgs && !a->deleted[k - 1]);
			a->deleted[k - 1] = true;
		}
		if (n > 16 && memcmp(line, "+OK Mailbox has ", 16) == 0)
			memset(a->deleted, 0, sizeof a->deleted);
		if (n > 14 && memcmp(line, "+OK Logged in,", 14) == 0)
			CHECK(a->logged_in);
		i += n;
	}
}

/* ---- callbacks ---------------------------------------------------- */

static void on_write(void *ctx, const void *data, size_t len)
{
	struct app *a = ctx;

	CHECK(!a->freed && a->closes == 0 && len > 0);
	CHECK(!a->tls_pending);
	if (a->msg_open)
		buf_append(&a->msg_out, data, len);
	else
		check_lines(a, data, len);
	if (maybe_free(a))
		return;
	if (a->write_feeds && one_in(a, 32))
		feed(a, 1 + next(a) % 16); /* input while the engine is busy */
}

static void on_close(void *ctx)
{
	struct app *a = ctx;

	CHECK(!a->freed && a->closes == 0);
	a->closes++;
	if (a->free_on_close) {
		pop3_session_free(&a->s);
		a->freed = true;
	}
}

static void on_starttls(void *ctx)
{
	struct app *a = ctx;

	CHECK(!a->freed && !a->tls && !a->tls_pending && !a->in_exchange && !a->logged_in);
	CHECK(a->config.stls);
	a->tls_pending = true;
}

/* give_auth - the fake auth daemon's verdict, or its next challenge. */
static void give_auth(struct app *a, int choice)
{
	static const char *const users[] = { "bob@example.org", "alice@example.org" };

	a->asked = ASK_NONE;
	switch (choice) {
	case 0:
	case 1:
		a->challenge_len = next(a) % sizeof a->challenge;
		for (size_t i = 0; i < a->challenge_len; i++)
			a->challenge[i] = (uint8_t)next(a);
		/* after USER/PASS the engine cancels instead (auth_cancel
		 * clears this) */
		a->challenge_due = true;
		pop3_session_auth_done(a->s, POP3_AUTH_CONTINUE, a->challenge, a->challenge_len, NULL);
		return;
	case 2:
	case 3:
	case 4:
	case 5:
		a->in_exchange = false;
		a->logged_in = true; /* until the mailbox says otherwise */
		a->user = users[next(a) % 2];
		a->asked = ASK_MAILBOX; /* mailbox_open comes next */
		pop3_session_auth_done(a->s, POP3_AUTH_OK, NULL, 0, a->user);
		return;
	case 6:
		a->in_exchange = false;
		pop3_session_auth_done(a->s, POP3_AUTH_TEMP, NULL, 0, NULL);
		return;
	case 7:
		a->in_exchange = false;
		pop3_session_auth_done(a->s, POP3_AUTH_ENCRYPT, NULL, 0, NULL);
		return;
	default:
		a->in_exchange = false;
		pop3_session_auth_done(a->s, POP3_AUTH_FAIL, NULL, 0, NULL);
		return;
	}
}

static void give_mailbox(struct app *a, int choice)
{
	struct pop3_message msgs[MAX_MSGS];
	char uidl[MAX_MSGS][16];
	enum pop3_mailbox_result r = choice < 7 ? POP3_MAILBOX_OK : (enum pop3_mailbox_result)(choice - 6);

	a->asked = ASK_NONE;
	for (size_t i = 0; i < a->nmsgs; i++) {
		struct pop3_size z;

		pop3_size_init(&z);
		pop3_size_add(&z, a->content[i], a->content_len[i]);
		msgs[i].size = (long long)pop3_size_result(&z) + (one_in(a, 16) ? 1 : 0);
		a->listed[i] = msgs[i].size;
		snprintf(uidl[i], sizeof uidl[i], "U%zu.%u", i, (unsigned)(a->rnd & 0xff));
		msgs[i].uidl = uidl[i];
	}
	if (r != POP3_MAILBOX_OK)
		a->logged_in = false;
	pop3_session_mailbox_done(a->s, r, msgs, a->nmsgs);
}

static void give_update(struct app *a, int choice)
{
	a->asked = ASK_NONE;
	pop3_session_update_done(a->s, choice != 0);
}

static void give(struct app *a)
{
	switch (a->asked) {
	case ASK_AUTH:
		give_auth(a, a->answer);
		break;
	case ASK_MAILBOX:
		give_mailbox(a, a->answer);
		break;
	case ASK_UPDATE:
		give_update(a, a->answer);
		break;
	case ASK_NONE:
		break;
	}
}

/* ask - a request: answered now, or queued. */
static void ask(struct app *a, enum ask what, int choice)
{
	a->asked = what;
	a->answer = choice;
	if (!a->async)
		give(a);
}

static void on_auth(void *ctx, const char *mech, const void *resp, size_t len, bool has_resp)
{
	struct app *a = ctx;
	bool plaintext = strcmp(mech, "PLAIN") == 0 || strcmp(mech, "LOGIN") == 0;
	const char *mechs = a->config.sasl_mechs != NULL ? a->config.sasl_mechs : "";
	const char *hit = strstr(mechs, mech);

	CHECK(!a->freed && a->closes == 0 && !a->tls_pending);
	CHECK(a->asked == ASK_NONE && !a->in_exchange && !a->logged_in);
	CHECK(hit != NULL && (hit == mechs || hit[-1] == ' ') && (hit[strlen(mech)] == ' ' || hit[strlen(mech)] == '\0'));
	CHECK(!plaintext || a->tls || a->config.plaintext_auth);
	CHECK(has_resp || len == 0);
	CHECK(len <= 12288);
	(void)resp;
	a->in_exchange = true;
	if (maybe_free(a))
		return;
	ask(a, ASK_AUTH, (int)(next(a) % 10));
}

static void on_auth_step(void *ctx, const void *resp, size_t len)
{
	struct app *a = ctx;

	(void)resp;
	CHECK(!a->freed && a->closes == 0 && !a->tls_pending);
	CHECK(a->in_exchange && a->asked == ASK_NONE && !a->challenge_due);
	CHECK(len <= 12288);
	if (maybe_free(a))
		return;
	ask(a, ASK_AUTH, (int)(next(a) % 10));
}

static void on_auth_cancel(void *ctx)
{
	struct app *a = ctx;

	CHECK(!a->freed);
	CHECK(a->in_exchange);
	a->in_exchange = false;
	a->challenge_due = false;
	if (a->asked == ASK_AUTH)
		a->asked = ASK_NONE; /* the session ended while we thought */
}

static void on_mailbox_open(void *ctx, const char *user)
{
	struct app *a = ctx;

	CHECK(!a->freed && a->closes == 0);
	CHECK(a->asked == ASK_MAILBOX && a->logged_in && strcmp(user, a->user) == 0);
	a->asked = ASK_NONE;
	if (maybe_free(a))
		return;
	ask(a, ASK_MAILBOX, (int)(next(a) % 10));
}

static int on_open_message(void *ctx, size_t index)
{
	struct app *a = ctx;

	CHECK(!a->freed && a->closes == 0 && !a->msg_open && a->asked == ASK_NONE);
	CHECK(a->s != NULL && pop3_session_state(a->s) == POP3_STATE_TRANSACTION);
	CHECK(index < a->nmsgs && !a->deleted[index]);
	if (one_in(a, 16))
		return -1;
	a->msg_open = true;
	a->msg_index = index;
	a->msg_pos = 0;
	a->read_failed = false;
	buf_reset(&a->msg_out);
	maybe_free(a);
	return 0;
}

static ssize_t on_read_message(void *ctx, void *buf, size_t max)
{
	struct app *a = ctx;
	size_t n;

	CHECK(!a->freed && a->closes == 0 && a->msg_open && max > 0);
	if (maybe_free(a))
		return 0;
	if (one_in(a, 64)) {
		a->read_failed = true;
		return -1;
	}
	n = a->content_len[a->msg_index] - a->msg_pos;
	if (n > max)
		n = max;
	if (a->small_reads && n > 0)
		n = 1 + next(a) % (n < 7 ? n : 7);
	memcpy(buf, a->content[a->msg_index] + a->msg_pos, n);
	a->msg_pos += n;
	return (ssize_t)n;
}

static void on_close_message(void *ctx)
{
	struct app *a = ctx;

	CHECK(a->msg_open);
	a->msg_open = false;
	check_message(a, a->read_failed || a->s == NULL || pop3_session_closed(a->s));
}

static bool on_output_full(void *ctx)
{
	struct app *a = ctx;

	CHECK(!a->freed && a->closes == 0);
	if (a->flaky_output && one_in(a, 3)) {
		a->blocked = true;
		return true;
	}
	return false;
}

static void on_update(void *ctx, const bool *deleted, size_t n)
{
	struct app *a = ctx;
	bool any = false;

	CHECK(!a->freed && a->closes == 0 && !a->msg_open && !a->updated && a->asked == ASK_NONE);
	CHECK(a->logged_in && n == a->nmsgs);
	for (size_t i = 0; i < n; i++) {
		CHECK(deleted[i] == a->deleted[i]);
		any |= deleted[i];
	}
	CHECK(any);
	a->updated = true;
	if (maybe_free(a))
		return;
	ask(a, ASK_UPDATE, one_in(a, 4) ? 0 : 1);
}

static void on_log(void *ctx, const char *line)
{
	struct app *a = ctx;

	CHECK(!a->freed);
	for (; *line; line++)
		CHECK((unsigned char)*line >= 32 && (unsigned char)*line < 127);
}

static void on_flow(void *ctx, bool paused)
{
	struct app *a = ctx;

	CHECK(!a->freed && a->closes == 0 && paused != a->paused);
	a->paused = paused;
}

static const struct pop3_server_callbacks callbacks = {
	.write = on_write,
	.close = on_close,
	.starttls = on_starttls,
	.auth = on_auth,
	.auth_step = on_auth_step,
	.auth_cancel = on_auth_cancel,
	.mailbox_open = on_mailbox_open,
	.open_message = on_open_message,
	.read_message = on_read_message,
	.close_message = on_close_message,
	.output_full = on_output_full,
	.update = on_update,
	.log = on_log,
};

/* settle - what a real application does between reads: finish the TLS
 * handshake, give a queued answer, drain the output. */
static void settle(struct app *a)
{
	for (int round = 0; round < 1000 && a->s != NULL && !pop3_session_closed(a->s); round++) {
		if (a->tls_pending) {
			bool ok = !one_in(a, 8);

			a->tls_pending = false;
			a->tls = ok;
			pop3_session_tls_done(a->s, ok);
		} else if (a->asked != ASK_NONE && !one_in(a, 4)) {
			give(a);
		} else if (a->blocked) {
			a->blocked = false;
			pop3_session_output_ready(a->s);
		} else {
			break;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const mechs[] = { "PLAIN LOGIN SCRAM-SHA-256", "SCRAM-SHA-256", "PLAIN", "" };
	static const int errors[] = { 0, 3, 10, 50 };
	struct pop3_server_callbacks cb = callbacks;
	struct app a;
	bool bytewise;
	size_t pos = 4;

	if (size < 4)
		return 0;
	memset(&a, 0, sizeof a);
	a.config.hostname = "pop.example.org";
	a.config.stls = data[0] & 1;
	a.config.tls_active = data[0] & 2;
	a.config.plaintext_auth = data[0] & 4;
	a.config.sasl_mechs = mechs[(data[0] >> 3) & 3];
	a.config.max_errors = errors[(data[0] >> 5) & 3];
	a.flaky_output = data[0] & 128;
	a.async = data[1] & 1;
	bytewise = data[1] & 2;
	a.free_on_close = data[1] & 4;
	a.free_randomly = data[1] & 8;
	if (data[1] & 16)
		cb.flow = on_flow;
	a.write_feeds = data[1] & 32;
	a.small_reads = data[1] & 64;
	a.chaos = data[1] & 128;
	a.rnd = 0x9e3779b9u ^ ((uint32_t)data[2] << 8) ^ data[1];
	a.tls = a.config.tls_active;
	a.nmsgs = (data[3] & 0x7f) % (MAX_MSGS + 1);
	a.bursts = data[3] & 0x80;
	for (size_t i = 0; i < a.nmsgs; i++) {
		size_t len = pos < size ? data[pos++] : 0;

		if (len > size - pos)
			len = size - pos;
		a.content[i] = data + pos;
		a.content_len[i] = len;
		pos += len;
	}
	a.stream = data + pos;
	a.stream_len = size - pos;
	a.s = pop3_session_new(&a.config, &cb, &a, "192.0.2.1", "client.example");
	pop3_session_start(a.s);
	while (a.stream_pos < a.stream_len && a.s != NULL) {
		feed(&a, bytewise ? 1 : 1 + next(&a) % 64);
		if (a.bursts && one_in(&a, 8))
			burst(&a);
		settle(&a);
		if (a.chaos && a.s != NULL && one_in(&a, 100))
			pop3_session_timeout(a.s);
		if (a.chaos && a.s != NULL && one_in(&a, 100))
			pop3_session_shutdown(a.s);
	}
	settle(&a);
	if (a.s != NULL) {
		if (a.closes > 0)
			CHECK(pop3_session_closed(a.s));
		pop3_session_free(&a.s);
		a.freed = true;
	}
	CHECK(!a.msg_open);
	CHECK(!a.in_exchange);
	buf_free(&a.msg_out);
	return 0;
}
