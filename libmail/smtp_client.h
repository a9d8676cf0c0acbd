/* smtp_client.h - the SMTP client protocol engine for outbound delivery
 * (RFC 5321 with PIPELINING, SIZE, 8BITMIME, SMTPUTF8, DSN, STARTTLS and
 * AUTH PLAIN/LOGIN), free of sockets like the server engine: the
 * server's bytes go in through smtp_client_input(), commands and message
 * content come out through the write callback, the message content is
 * pulled from the application with read_content, and the outcome of
 * each recipient comes back through message_done. The smtp daemon
 * drives it; the unit tests and the fuzzers drive it the same way.
 * The policy decisions are listed at the top of smtp_client.c.
 *
 * One session is one connection. The application creates the engine
 * once the TCP connection is up, gives it a message (smtp_client_send),
 * and feeds it the server's bytes. The engine reads the greeting, sends
 * EHLO (HELO when EHLO gets a 5xx), STARTTLS and AUTH as configured, then
 * the transaction, and reports. After message_done the application may
 * give the next message for the same session, or QUIT
 * (smtp_client_quit).
 *
 * Lifetime rules:
 *  - The config and callbacks are copied, the config's strings too.
 *  - The message given to smtp_client_send is copied: the caller's
 *    memory may go as soon as the call returns.
 *  - The results given to message_done, and the result given to close,
 *    are valid during that callback only.
 *  - Any callback may call any smtp_client_* function, including
 *    smtp_client_free (the memory is then released when the engine
 *    returns; no callback is made after that). Input given from inside a
 *    callback is processed once the engine is between steps.
 *  - message_done comes exactly once for each message given, before
 *    close. It may come from inside smtp_client_send, when the message
 *    is refused without a word to the server (SIZE, SMTPUTF8, bad
 *    addresses). close comes exactly once (unless the session is freed
 *    before), and nothing comes after it.
 *  - Misuse (a message while one is in progress or after the end,
 *    tls_done nobody asked for) is our own bug: log_panic.
 *
 * Timeouts are the application's: it arms the timer that fits
 * smtp_client_stage() (connect timeout for SMTP_STAGE_GREETING, data
 * timeout for SMTP_STAGE_CONTENT and SMTP_STAGE_DOT, command timeout for
 * the others, its own idle policy for SMTP_STAGE_IDLE) and calls
 * smtp_client_timeout() when it fires.
 */
#ifndef YB_SMTP_CLIENT_H
#define YB_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "smtp_cmd.h"         /* SMTP_NOTIFY_* */
#include "smtp_reply_parse.h" /* SMTP_EXT_*, SMTP_STATUS_SIZE */

struct smtp_client;

/* STARTTLS policy (the smtp daemon maps "verify" to ENCRYPT and checks
 * the certificate itself, failing the handshake when it must). */
enum smtp_client_tls {
	SMTP_CLIENT_TLS_NONE,    /* never STARTTLS */
	SMTP_CLIENT_TLS_MAY,     /* STARTTLS when offered, plaintext otherwise */
	SMTP_CLIENT_TLS_ENCRYPT, /* STARTTLS or nothing: 4.7.4 deferral when
				  * not offered or refused, 4.7.5 when the
				  * handshake fails */
};

struct smtp_client_config {
	const char *helo_name;        /* the EHLO/HELO argument (myhostname) */
	enum smtp_client_tls tls;     /* needs the want_tls callback unless NONE */
	bool tls_active;              /* the connection is TLS from the start
				       * (port 465): no STARTTLS */
	const char *auth_user;        /* SASL login at a relay host; NULL or
				       * "": none */
	const char *auth_password;
	bool auth_plaintext;          /* allow AUTH without TLS (else an AUTH
				       * over plaintext is a 4.7.0 deferral) */
	bool no_pipelining;           /* one command at a time even when the
				       * server offers PIPELINING */
};

/* One recipient of a message. Addresses are the text between '<' and
 * '>' (addr_format's form: "local@domain", the local part quoted where
 * needed); "" is the null sender. */
struct smtp_client_rcpt {
	const char *addr;
	unsigned notify;   /* DSN NOTIFY=: SMTP_NOTIFY_* bits, 0 = not given */
	const char *orcpt; /* DSN ORCPT= "type;address" (decoded), or NULL */
};

struct smtp_client_message {
	const char *sender;  /* "" for the null sender */
	long long size;      /* content octets, for SIZE; -1 = unknown */
	bool body_8bit;      /* the content holds 8-bit octets: BODY=8BITMIME */
	bool smtputf8;       /* needs SMTPUTF8 (UTF-8 headers); also implied by
			      * a non-ASCII address */
	const char *ret;     /* DSN RET= "FULL" or "HDRS", or NULL */
	const char *envid;   /* DSN ENVID= (decoded), or NULL */
	const struct smtp_client_rcpt *rcpts;
	size_t nrcpt;
};

/* Where the session is: which reply (or event) it waits for. */
enum smtp_client_stage {
	SMTP_STAGE_GREETING, /* connected, waiting for the greeting */
	SMTP_STAGE_HELO,     /* EHLO or HELO */
	SMTP_STAGE_STARTTLS, /* STARTTLS, and the handshake after it */
	SMTP_STAGE_AUTH,
	SMTP_STAGE_RSET,     /* RSET before a message after a failed one */
	SMTP_STAGE_MAIL,
	SMTP_STAGE_RCPT,
	SMTP_STAGE_DATA,     /* the reply to DATA (354) */
	SMTP_STAGE_CONTENT,  /* sending the message content */
	SMTP_STAGE_DOT,      /* the reply to the end of the content */
	SMTP_STAGE_IDLE,     /* ready, nothing outstanding: give a message or
			      * quit */
	SMTP_STAGE_QUIT,     /* QUIT sent */
	SMTP_STAGE_CLOSED,   /* close has been called */
};

enum smtp_client_status {
	SMTP_CLIENT_DELIVERED, /* the server took the message for it */
	SMTP_CLIENT_DEFERRED,  /* try again later (or, with next_host, now at
				* the next MX host) */
	SMTP_CLIENT_FAILED,    /* permanent: bounce it */
};

/* The outcome of one recipient (or the reason a session ended). */
struct smtp_client_result {
	enum smtp_client_status status;
	int code;                        /* reply code: the server's when
					  * remote, else ours (e.g. 451) */
	char enhanced[SMTP_STATUS_SIZE]; /* RFC 3463 status, always set; its
					  * class agrees with status (a 5xx
					  * that only defers is reported 4.x.x) */
	const char *text;                /* printable ASCII, without code and
					  * enhanced status */
	bool remote;                     /* the text is the server's reply */
	bool next_host;                  /* a session-level failure (greeting,
					  * EHLO, TLS, AUTH, lost connection,
					  * timeout, protocol error): another
					  * MX host may do better */
	enum smtp_client_stage stage;    /* what was being done: "in reply to"
					  * for the DSN */
};

struct smtp_client_callbacks {
	/* bytes for the server: a whole command line (or a pipelined group
	 * of them) or a slice of dot-stuffed content; never NULL */
	void (*write)(void *ctx, const void *data, size_t len);
	/* the next content octets of the current message into buf (at most
	 * max): returns how many, 0 at the end, -1 on a read error (the
	 * session is then given up: the accepted recipients are deferred).
	 * The content is the queue file's CRLF text, our Received header
	 * first; the engine dot-stuffs it, and ends it with CRLF if it
	 * does not. Never NULL. */
	ssize_t (*read_content)(void *ctx, void *buf, size_t max);
	/* the message is done: one result per recipient, results[i] for
	 * msg->rcpts[i]. reusable: the session can take another message now
	 * (smtp_client_send) or be ended (smtp_client_quit); otherwise it is
	 * over and close follows. Never NULL. */
	void (*message_done)(void *ctx, const struct smtp_client_result *results, size_t n, bool reusable);
	/* the session is over: close the connection once the output written
	 * so far has been sent. why is NULL after a QUIT the application
	 * asked for, else the failure. Never NULL. */
	void (*close)(void *ctx, const struct smtp_client_result *why);
	/* the server said 220 to STARTTLS, and nothing came after it: start
	 * the TLS handshake on the connection, then call
	 * smtp_client_tls_done. NULL: TLS is never attempted. */
	void (*want_tls)(void *ctx);
	/* Flow control for content, may be NULL. Asked before each slice of
	 * content: true = the output buffer is full, stop; the application
	 * then calls smtp_client_output_ready when it has drained. Without
	 * it the whole message is written in one go. */
	bool (*output_full)(void *ctx);
	/* one line per event for the log (already sanitised); may be NULL */
	void (*log)(void *ctx, const char *line);
};

/* Content is read in slices of this size. */
#define SMTP_CLIENT_CONTENT_CHUNK (16 * 1024)
/* Server input held while content is being sent (a server that talks
 * before the end of the content); more is a protocol error. */
#define SMTP_CLIENT_INPUT_MAX (64 * 1024)
/* Result texts are cut to this many octets (with "..."). */
#define SMTP_CLIENT_TEXT_MAX 1024

struct smtp_client *smtp_client_new(const struct smtp_client_config *config,
				    const struct smtp_client_callbacks *cb, void *ctx);

/* smtp_client_send - deliver msg: at once when the session is idle,
 * otherwise as soon as it is ready (before the greeting is fine). At
 * most one message at a time: the next one after message_done said
 * reusable. */
void smtp_client_send(struct smtp_client *c, const struct smtp_client_message *msg);

/* smtp_client_quit - end the session politely: QUIT once the current
 * message (if any) is done, then close (why NULL). Ignored once the
 * session is ending. */
void smtp_client_quit(struct smtp_client *c);

/* smtp_client_input - bytes from the server (decrypted, under TLS). */
void smtp_client_input(struct smtp_client *c, const void *data, size_t len);

/* smtp_client_tls_done - answer want_tls: ok = the handshake succeeded
 * (the engine forgets what EHLO said and sends EHLO again); !ok = it
 * failed: the session ends with a 4.7.5 deferral (next_host). */
void smtp_client_tls_done(struct smtp_client *c, bool ok);

/* smtp_client_output_ready - the output drained after output_full said
 * true: send more content. Harmless at any other time. */
void smtp_client_output_ready(struct smtp_client *c);

/* smtp_client_timeout - the timer for the current stage fired: the open
 * recipients get a 4.4.2 deferral (next_host), then close without QUIT.
 * Idle, there is no message: only close says why. After a QUIT it is
 * the expected end (close with why NULL). */
void smtp_client_timeout(struct smtp_client *c);

/* smtp_client_lost - the connection broke (EOF or an error; why, e.g.
 * strerror, may be NULL): like a timeout, with "lost connection". After
 * a QUIT it is the expected end (close with why NULL). */
void smtp_client_lost(struct smtp_client *c, const char *why);

/* Session state, for the application's timers and log lines. */
enum smtp_client_stage smtp_client_stage(const struct smtp_client *c);
/* smtp_client_stage_name - "MAIL FROM", "end of DATA", ... */
const char *smtp_client_stage_name(enum smtp_client_stage stage);
/* smtp_client_extensions - SMTP_EXT_* of the last EHLO (0 before it or
 * after HELO); e.g. DSN tells whether NOTIFY=SUCCESS was passed on, or
 * whether the application owes a "relayed" notice. */
unsigned smtp_client_extensions(const struct smtp_client *c);
/* smtp_client_size_limit - the server's SIZE limit (0: none given). */
unsigned long long smtp_client_size_limit(const struct smtp_client *c);
/* smtp_client_tls - whether the session is encrypted (tls_active, or
 * STARTTLS done). */
bool smtp_client_tls(const struct smtp_client *c);
/* smtp_client_auth_mech - the SASL mechanism that logged in, or NULL. */
const char *smtp_client_auth_mech(const struct smtp_client *c);
/* smtp_client_closed - whether close has been called. */
bool smtp_client_closed(const struct smtp_client *c);

/* smtp_client_free - release *c (NULL is fine) and set it to NULL. No
 * callback is made; a message in progress gets no message_done (the
 * application gave up on it). */
void smtp_client_free(struct smtp_client **c);

#endif
