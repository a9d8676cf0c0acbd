#include "config.h"
/* fuzz_smtp_auth.c - libFuzzer target for the SMTP engine's STARTTLS and
 * AUTH handling (libmail/smtp_server.c): mechanism parsing, base64
 * framing of initial responses and of the responses to 334 challenges,
 * "*" cancels, overlong AUTH lines, the discard of input around
 * STARTTLS, and the submission rule that MAIL needs AUTH first.
 *
 * Input: two octets of setup, then the client's byte stream.
 *   octet 0: behaviour (bit 0: STARTTLS offered, the session starts in
 *            clear; bit 1: answers come after each chunk, not inside the
 *            callbacks; bit 2: feed one octet at a time);
 *   octet 1: seed for the fake SASL server's choices.
 * The fake SASL server answers each start/step with a pseudo-random mix
 * of challenges (random octets), success, failure, "encryption needed"
 * and temporary failure.
 *
 * Checks, with abort() on any violation (besides ASan/UBSan/LSan):
 *   - every write is whole reply lines; a 334 line carries exactly the
 *     base64 of the challenge just given, in canonical form;
 *   - auth_start/auth_step only when no answer is outstanding, steps and
 *     cancels only inside an exchange, and the mechanism is an offered one;
 *   - MAIL reaches the application only after a successful AUTH, and
 *     nothing reaches it while the TLS handshake is pending;
 *   - the engine reports the user the application authenticated.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libmail/addr.h"
#include "../../libmail/smtp_reply.h"
#include "../../libmail/smtp_server.h"
#include "../../libutil/base64.h"
#include "../../libutil/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                 \
	do {                                                                                        \
		if (!(cond)) {                                                                      \
			fprintf(stderr, "fuzz_smtp_auth: check failed: %s (line %d)\n", #cond, __LINE__); \
			abort();                                                                    \
		}                                                                                   \
	} while (0)

#define MECHS "PLAIN LOGIN SCRAM-SHA-256"

enum ask { ASK_NONE, ASK_AUTH, ASK_MAIL, ASK_RCPT, ASK_OPEN, ASK_DONE };

struct app {
	struct smtp_session *s;
	uint32_t rnd;
	bool async;
	bool tls_pending;    /* starttls called, handshake "running" */
	bool tls;
	bool in_exchange;    /* between auth_start and the verdict or a cancel */
	bool authenticated;
	bool file_open;
	int closes;
	enum ask asked;      /* the request the engine waits for */
	int auth_answer;     /* queued AUTH answer (async) */
	uint8_t challenge[48];
	size_t challenge_len;
	bool challenge_sent; /* the 334 for it must be the next write */
};

static uint32_t next(struct app *a)
{
	a->rnd ^= a->rnd << 13;
	a->rnd ^= a->rnd >> 17;
	a->rnd ^= a->rnd << 5;
	return a->rnd;
}

static void check_write(struct app *a, const char *data, size_t len)
{
	for (size_t i = 0; i < len;) {
		const char *line = data + i, *lf = memchr(line, '\n', len - i);
		size_t n;

		CHECK(lf != NULL);
		n = (size_t)(lf - line) + 1;
		CHECK(n >= 6 && line[n - 2] == '\r' && (line[3] == ' ' || line[3] == '-'));
		CHECK(line[0] >= '2' && line[0] <= '5');
		if (memcmp(line, "334 ", 4) == 0) {
			struct buf want = BUF_INIT;

			CHECK(a->challenge_sent);
			a->challenge_sent = false;
			base64_encode(&want, a->challenge, a->challenge_len);
			CHECK(n - 6 == want.len && memcmp(line + 4, buf_cstr(&want), want.len) == 0);
			buf_free(&want);
		}
		i += n;
	}
}

static void on_write(void *ctx, const char *data, size_t len)
{
	struct app *a = ctx;

	CHECK(a->closes == 0);
	check_write(a, data, len);
}

static void on_close(void *ctx)
{
	struct app *a = ctx;

	CHECK(a->closes == 0);
	a->closes++;
}

/* answer_auth - the fake SASL server's verdict (or next challenge). */
static void answer_auth(struct app *a, int choice)
{
	static const char *const user = "bob@example.org";

	a->asked = ASK_NONE;
	switch (choice) {
	case 0:
	case 1:
		a->challenge_len = next(a) % sizeof a->challenge;
		for (size_t i = 0; i < a->challenge_len; i++)
			a->challenge[i] = (uint8_t)next(a);
		a->challenge_sent = true;
		smtp_session_auth_done(a->s, SMTP_AUTH_CONTINUE, a->challenge, a->challenge_len, NULL);
		return;
	case 2:
		a->in_exchange = false;
		a->authenticated = true;
		smtp_session_auth_done(a->s, SMTP_AUTH_OK, NULL, 0, user);
		CHECK(a->s == NULL || smtp_session_closed(a->s) || strcmp(smtp_session_auth_user(a->s), user) == 0);
		return;
	case 3:
		a->in_exchange = false;
		smtp_session_auth_done(a->s, SMTP_AUTH_ENCRYPT, NULL, 0, NULL);
		return;
	case 4:
		a->in_exchange = false;
		smtp_session_auth_done(a->s, SMTP_AUTH_TEMP, NULL, 0, NULL);
		return;
	default:
		a->in_exchange = false;
		smtp_session_auth_done(a->s, SMTP_AUTH_FAIL, NULL, 0, NULL);
		return;
	}
}

static void ask_auth(struct app *a)
{
	CHECK(a->asked == ASK_NONE);
	a->asked = ASK_AUTH;
	a->auth_answer = (int)(next(a) % 7);
	if (!a->async)
		answer_auth(a, a->auth_answer);
}

static void on_auth_start(void *ctx, const char *mech, const void *resp, size_t len, bool has_resp)
{
	struct app *a = ctx;
	static const char offered[] = MECHS;
	const char *hit = strstr(offered, mech);
	size_t n = strlen(mech);

	(void)resp;
	CHECK(!a->tls_pending && !a->in_exchange && !a->authenticated);
	CHECK(n > 0 && hit != NULL && (hit == offered || hit[-1] == ' ') && (hit[n] == ' ' || hit[n] == '\0'));
	CHECK(has_resp || len == 0);
	CHECK(len <= 12288);
	a->in_exchange = true;
	ask_auth(a);
}

static void on_auth_step(void *ctx, const void *resp, size_t len)
{
	struct app *a = ctx;

	(void)resp;
	CHECK(a->in_exchange && !a->challenge_sent);
	CHECK(len <= 12288);
	ask_auth(a);
}

static void on_auth_cancel(void *ctx)
{
	struct app *a = ctx;

	CHECK(a->in_exchange);
	a->in_exchange = false;
	a->challenge_sent = false;
	if (a->asked == ASK_AUTH)
		a->asked = ASK_NONE; /* the session ended while we thought */
}

static void on_starttls(void *ctx)
{
	struct app *a = ctx;

	CHECK(!a->tls && !a->tls_pending && !a->in_exchange);
	a->tls_pending = true;
}

static void on_mail(void *ctx, const struct mail_addr *sender, const struct smtp_mail_params *p)
{
	struct app *a = ctx;

	(void)sender;
	(void)p;
	CHECK(a->authenticated && !a->tls_pending);
	smtp_session_mail_done(a->s, 0);
}

static void on_rcpt(void *ctx, const struct mail_addr *rcpt, const struct smtp_rcpt_params *p)
{
	struct app *a = ctx;

	(void)rcpt;
	(void)p;
	CHECK(!a->tls_pending);
	smtp_session_rcpt_done(a->s, 0);
}

static void on_data_open(void *ctx)
{
	struct app *a = ctx;

	CHECK(!a->file_open && !a->tls_pending);
	a->file_open = true;
	smtp_session_data_open_done(a->s, 0, "Q1");
}

static int on_data_write(void *ctx, const void *data, size_t len)
{
	struct app *a = ctx;

	(void)data;
	(void)len;
	CHECK(a->file_open);
	return 0;
}

static void on_data_close(void *ctx, bool ok)
{
	struct app *a = ctx;

	CHECK(a->file_open);
	a->file_open = false;
	if (ok)
		smtp_session_data_done(a->s, 0, NULL);
}

static const struct smtp_server_callbacks callbacks = {
	.write = on_write,
	.close = on_close,
	.mail = on_mail,
	.rcpt = on_rcpt,
	.data_open = on_data_open,
	.data_write = on_data_write,
	.data_close = on_data_close,
	.starttls = on_starttls,
	.auth_start = on_auth_start,
	.auth_step = on_auth_step,
	.auth_cancel = on_auth_cancel,
};

/* settle - what a real application does between reads: finish the TLS
 * handshake, give a queued answer. */
static void settle(struct app *a)
{
	if (a->tls_pending && !smtp_session_closed(a->s)) {
		a->tls_pending = false;
		a->tls = true;
		smtp_session_tls_started(a->s, "TLSv1.3", "TLS_AES_128_GCM_SHA256", 128);
		smtp_session_set_auth_mechs(a->s, MECHS);
	}
	if (a->asked == ASK_AUTH && a->in_exchange && !smtp_session_closed(a->s))
		answer_auth(a, a->auth_answer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_server_config config = {
		.hostname = "mx.example.org",
		.max_message_size = 100000,
		.max_errors = 20,
		.auth_required = true,
		.smtputf8 = true,
	};
	struct app a;
	size_t pos = 2;

	if (size < 2)
		return 0;
	memset(&a, 0, sizeof a);
	config.starttls = (data[0] & 1) != 0;
	a.async = (data[0] & 2) != 0;
	a.rnd = 0x9e3779b9u ^ data[1];
	a.s = smtp_session_new(&config, &callbacks, &a, "192.0.2.1", "client.example.net");
	if (!config.starttls) {
		a.tls = true;
		smtp_session_set_tls(a.s, true, "TLSv1.3", "TLS_AES_128_GCM_SHA256", 128);
		smtp_session_set_auth_mechs(a.s, MECHS);
	}
	smtp_session_start(a.s);
	while (pos < size && !smtp_session_closed(a.s)) {
		size_t n = (data[0] & 4) ? 1 : 1 + next(&a) % 64;
		uint8_t *chunk;

		if (n > size - pos)
			n = size - pos;
		chunk = malloc(n);
		if (chunk == NULL)
			break;
		memcpy(chunk, data + pos, n);
		pos += n;
		smtp_session_input(a.s, chunk, n);
		free(chunk);
		settle(&a);
	}
	smtp_session_free(&a.s);
	CHECK(!a.file_open);
	CHECK(!a.in_exchange);
	return 0;
}
