/* smtp_server.h - the SMTP server protocol engine (RFC 5321 with
 * PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8, CHUNKING and
 * DSN), free of sockets: bytes from the client go in through
 * smtp_session_input(), replies come out through the write callback, and
 * every decision that needs the outside world (sender policy, recipient
 * lookup, the content file, the queue) is a callback that the
 * application answers, at once or later. smtpd drives it; the unit tests
 * and the fuzzers drive it the same way. smtp_server.md has the policy
 * decisions.
 *
 * Lifetime rules:
 *  - The config and callbacks are copied; the config's strings too.
 *  - Pointers handed to the mail and rcpt callbacks stay valid until the
 *    application calls the matching *_done function.
 *  - The envelope accessors return data that stays valid until the
 *    transaction ends (the reply to the end of the message, RSET, a new
 *    EHLO/HELO, or the session ending).
 *  - Any callback may call any smtp_session_* function, including
 *    smtp_session_free (the memory is then released when the engine
 *    returns; no callback is made after that).
 *  - After the close callback the session ignores input; a late
 *    *_done answer is ignored, except that a successful data_open_done
 *    is followed at once by data_close(ctx, false).
 *  - smtp_session_free calls data_close(ctx, false) if a content file is
 *    open, so free the session before the context the callbacks use.
 *
 * Misuse (an answer nobody asked for) is our own bug: log_panic.
 */
#ifndef YB_SMTP_SERVER_H
#define YB_SMTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "smtp_cmd.h"   /* struct smtp_mail_params, smtp_rcpt_params, SMTP_NOTIFY_* */
#include "smtp_reply.h" /* reply ids */

struct smtp_session;
struct mail_addr; /* addr.h */

struct smtp_server_config {
	const char *hostname;       /* for 220/250/Received */
	long long max_message_size; /* SIZE limit: 552 5.3.4 at MAIL SIZE= and while streaming; 0 = none */
	int max_recipients;         /* 452 4.5.3 past it; 0 = no limit */
	int max_errors;             /* client errors before 421 4.7.0 and close; 0 = no limit */
	int max_received;           /* hopcount: more Received headers than this -> 554 5.4.6; 0 = no limit */
	bool smtputf8;              /* offer SMTPUTF8 */
	bool starttls;              /* offer STARTTLS (needs the starttls callback) */
	bool auth_required;         /* submission: MAIL before AUTH gets 530 5.7.0 */
};

/* The outcome of one step of an AUTH exchange (smtp_session_auth_done). */
enum smtp_auth_answer {
	SMTP_AUTH_CONTINUE, /* send the challenge (334), read the client's response */
	SMTP_AUTH_OK,       /* 235 2.7.0: the user is authenticated */
	SMTP_AUTH_FAIL,     /* 535 5.7.8 (one text for every reason: no user enumeration) */
	SMTP_AUTH_ENCRYPT,  /* 538 5.7.11: the mechanism needs TLS */
	SMTP_AUTH_TEMP,     /* 454 4.7.0: the check could not be made, or too many failures */
};

/* The application's side. Every request the engine makes is answered by
 * the application calling the matching smtp_session_*_done(), either
 * inside the callback or later (after an asynchronous lookup). While one
 * is pending the engine buffers further input (pipelining) and processes
 * it after the answer, keeping replies in order. */
struct smtp_server_callbacks {
	/* bytes to send to the client (replies); never NULL */
	void (*write)(void *ctx, const char *data, size_t len);
	/* the session is over (after 221, 421, or too many errors): close
	 * once the output written so far has been sent */
	void (*close)(void *ctx);
	/* MAIL FROM accepted syntactically: check the sender (policy);
	 * answer smtp_session_mail_done */
	void (*mail)(void *ctx, const struct mail_addr *sender, const struct smtp_mail_params *p);
	/* RCPT TO accepted syntactically: look the recipient up; answer
	 * smtp_session_rcpt_done */
	void (*rcpt)(void *ctx, const struct mail_addr *rcpt, const struct smtp_rcpt_params *p);
	/* DATA/first BDAT: open the content file; answer with
	 * smtp_session_data_open_done(s, reply_id_or_0, queue_id) */
	void (*data_open)(void *ctx);
	/* message content (unstuffed; Received header first); returns 0, or
	 * -1 if the write failed (the engine then reads to the end and
	 * answers 451 4.3.0 or, with errno ENOSPC/EDQUOT, 452 4.3.1) */
	int (*data_write)(void *ctx, const void *data, size_t len);
	/* end of message: ok=true: commit it (fsync, enqueue) and answer
	 * smtp_session_data_done(s, R_QUEUED or an error id); ok=false: the
	 * engine refused it (size, loop, bare LF...) or the transaction was
	 * abandoned - discard it, no answer needed */
	void (*data_close)(void *ctx, bool ok);
	/* one line per event for the log (already sanitised); may be NULL */
	void (*log)(void *ctx, const char *line);
	/* Added: flow control, may be NULL. paused=true: the engine holds
	 * more than SMTP_INPUT_HIGH octets of unprocessed input while it
	 * waits for an answer - stop reading from the client; paused=false:
	 * read again. Without it the engine gives up (421 4.7.0) once it
	 * holds SMTP_INPUT_MAX octets. */
	void (*flow)(void *ctx, bool paused);
	/* Added, for TLS and AUTH; may be NULL (then not offered). */
	/* STARTTLS: "220 2.0.0 Ready to start TLS" has been written and any
	 * input that came with the command was thrown away; start the
	 * handshake once that reply is out, and call smtp_session_tls_started
	 * when it is done (or close the connection if it failed). Input
	 * given meanwhile is discarded. */
	void (*starttls)(void *ctx);
	/* AUTH mech [initial-response]: mech is upper case and one of the
	 * offered ones; resp is the decoded initial response (has_resp:
	 * there was one; "=" gives an empty one). Answer with
	 * smtp_session_auth_done. */
	void (*auth_start)(void *ctx, const char *mech, const void *resp, size_t len, bool has_resp);
	/* the client's decoded response to a 334 challenge */
	void (*auth_step)(void *ctx, const void *resp, size_t len);
	/* the exchange ended without an answer being wanted (the client
	 * sent "*", an undecodable line, or the session ended): forget it */
	void (*auth_cancel)(void *ctx);
};

/* Input buffering limits (octets of unprocessed client input). */
#define SMTP_INPUT_HIGH (64 * 1024)
#define SMTP_INPUT_MAX (1024 * 1024)

struct smtp_session *smtp_session_new(const struct smtp_server_config *config,
				      const struct smtp_server_callbacks *cb, void *ctx, const char *client_addr,
				      const char *client_name);
/* smtp_session_start - send the 220 greeting; input before it is kept. */
void smtp_session_start(struct smtp_session *s);
void smtp_session_input(struct smtp_session *s, const void *data, size_t len);
void smtp_session_timeout(struct smtp_session *s);  /* 421 4.4.2, close */
void smtp_session_shutdown(struct smtp_session *s); /* 421 4.3.2, close */
/* The answers. 0 means the usual success reply; otherwise any reply id
 * (a 2xx one counts as success). */
void smtp_session_mail_done(struct smtp_session *s, int reply_id /* 0 = R_SENDER_OK */);
void smtp_session_rcpt_done(struct smtp_session *s, int reply_id /* 0 = R_RCPT_OK */);
/* reply_id 0 (or R_DATA_GO) = the file is open, queue_id names it (it
 * goes into the Received header); anything else refuses the message. */
void smtp_session_data_open_done(struct smtp_session *s, int reply_id, const char *queue_id);
/* reply_id 0 = R_QUEUED; queue_id NULL = the one from data_open_done. */
void smtp_session_data_done(struct smtp_session *s, int reply_id, const char *queue_id);

/* Envelope access for data_close / logging: */
const struct mail_addr *smtp_session_sender(const struct smtp_session *s);
size_t smtp_session_rcpt_count(const struct smtp_session *s);
const struct mail_addr *smtp_session_rcpt(const struct smtp_session *s, size_t i);
const struct smtp_rcpt_params *smtp_session_rcpt_params(const struct smtp_session *s, size_t i);
const struct smtp_mail_params *smtp_session_mail_params(const struct smtp_session *s);
/* smtp_session_helo - the EHLO/HELO argument as the client sent it (no
 * control characters, but otherwise client text: sanitise before
 * logging), or NULL before EHLO/HELO. */
const char *smtp_session_helo(const struct smtp_session *s);

/* Added: */
/* smtp_session_set_tls - the connection is encrypted from the start
 * (implicit TLS): "with ESMTPS" / "UTF8SMTPS" in the Received header,
 * with the protocol version, cipher and its bits (any may be NULL/0). */
void smtp_session_set_tls(struct smtp_session *s, bool on, const char *version, const char *cipher, int bits);
/* smtp_session_tls_started - the STARTTLS handshake is done: the session
 * starts over (RFC 3207 4.2: the client must send EHLO again) and is
 * encrypted, as with smtp_session_set_tls. */
void smtp_session_tls_started(struct smtp_session *s, const char *version, const char *cipher, int bits);
/* smtp_session_set_auth_mechs - the SASL mechanisms AUTH offers now
 * ("PLAIN LOGIN", upper case, space-separated); NULL or "" offers none.
 * The application calls it again when TLS starts. */
void smtp_session_set_auth_mechs(struct smtp_session *s, const char *mechs);
/* smtp_session_auth_done - answer auth_start or auth_step. challenge
 * (CONTINUE) is sent base64-encoded; user (OK) is the authenticated
 * name, for the Received header and the log. */
void smtp_session_auth_done(struct smtp_session *s, enum smtp_auth_answer answer, const void *challenge,
			    size_t len, const char *user);
/* smtp_session_auth_user - the authenticated user, or NULL. */
const char *smtp_session_auth_user(const struct smtp_session *s);
/* smtp_session_queue_id - the current message's queue ID (from
 * data_open_done), or NULL. */
const char *smtp_session_queue_id(const struct smtp_session *s);
/* smtp_session_closed - whether the close callback has been called. */
bool smtp_session_closed(const struct smtp_session *s);

/* smtp_session_free - release *s (NULL is fine) and set it to NULL. */
void smtp_session_free(struct smtp_session **s);

#endif
