/* pop3_server.h - the POP3 server protocol engine (RFC 1939 with CAPA,
 * RESP-CODES, PIPELINING from RFC 2449, STLS from RFC 2595, SASL AUTH
 * from RFC 5034 and the response codes of RFC 3206), free of sockets:
 * bytes from the client go in through pop3_session_input(), responses
 * come out through the write callback, and everything that needs the
 * outside world (the login, through the auth daemon; the Maildir: its
 * lock, its listing, the message files, the deletions) is a callback
 * that the application answers, at once or later. pop3d drives it; the
 * unit tests and the fuzzer drive it the same way. pop3_server.md has
 * the policy decisions.
 *
 * A session goes AUTHORIZATION -> (login) -> TRANSACTION -> (QUIT) ->
 * UPDATE -> closed. Every login, USER/PASS included, is one SASL
 * exchange relayed to the application (auth, auth_step): USER/PASS is
 * sent as the PLAIN mechanism ("\0user\0password"), so the auth daemon
 * checks and throttles every attempt alike. After a successful login the
 * application opens the mailbox (mailbox_open) and hands over its
 * listing; message content is pulled from it (open_message,
 * read_message, close_message) and sent dot-stuffed; deletions are only
 * marks until QUIT, which hands them to update.
 *
 * Lifetime rules:
 *  - The config and callbacks are copied; the config's strings too.
 *  - The strings given to callbacks are valid during the call only.
 *  - The message listing given to pop3_session_mailbox_done is copied:
 *    the caller's array and strings may go when the call returns.
 *  - The deleted-flags array given to update stays valid until
 *    pop3_session_update_done or the session's free.
 *  - Any callback may call any pop3_session_* function, including
 *    pop3_session_free (the memory is then released when the engine
 *    returns; no callback is made after that, except the close_message
 *    the open message is owed). Input given from inside a callback is
 *    processed once the engine is between steps.
 *  - close_message comes exactly once for each open_message that
 *    returned 0: after the last read, on a read error, when the session
 *    ends, and also when the session was freed inside open_message
 *    itself (then right after open_message returns).
 *  - After the close callback the session ignores input, and a late
 *    *_done answer is ignored.
 *  - pop3_session_free makes the callbacks the session still owes
 *    (auth_cancel during a login, close_message during a message), so
 *    free the session before the context the callbacks use.
 *
 * Misuse (an answer nobody asked for, a listing the protocol cannot
 * carry) is our own bug: log_panic.
 */
#ifndef YB_POP3_SERVER_H
#define YB_POP3_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct pop3_session;

struct pop3_server_config {
	const char *hostname;   /* for the greeting and the QUIT reply */
	const char *sasl_mechs; /* the mechanisms the auth daemon runs, e.g.
				 * "PLAIN LOGIN SCRAM-SHA-256": reduced with
				 * sasl_mechs_offered() to what CAPA SASL and
				 * AUTH offer now. USER/PASS is offered when
				 * PLAIN is (it is PLAIN underneath). NULL or
				 * "": no login at all */
	int max_errors;         /* client errors before "-ERR Too many
				 * errors" and close; 0 = no limit */
	bool stls;              /* offer STLS (needs the starttls callback) */
	bool tls_active;        /* the connection is TLS from the start (995) */
	bool plaintext_auth;    /* allow USER/PASS, PLAIN and LOGIN without
				 * TLS (SCRAM is always allowed) */
};

/* The outcome of one step of a login (pop3_session_auth_done). */
enum pop3_auth_answer {
	POP3_AUTH_CONTINUE, /* send the challenge ("+ base64"), read the
			     * client's response (auth_step) */
	POP3_AUTH_OK,       /* the user is authenticated: the mailbox is
			     * opened next (mailbox_open) */
	POP3_AUTH_FAIL,     /* "-ERR [AUTH] ...": one text for every reason */
	POP3_AUTH_TEMP,     /* "-ERR [SYS/TEMP] ...": could not decide now
			     * (tables unreadable, too many failures) */
	POP3_AUTH_ENCRYPT,  /* the mechanism needs TLS */
};

/* The outcome of mailbox_open (pop3_session_mailbox_done). */
enum pop3_mailbox_result {
	POP3_MAILBOX_OK,     /* locked and listed: TRANSACTION */
	POP3_MAILBOX_IN_USE, /* "-ERR [IN-USE] ...": another session holds
			      * the lock (RFC 2449 8.1.2) */
	POP3_MAILBOX_TEMP,   /* "-ERR [SYS/TEMP] ...": cannot open it now */
	POP3_MAILBOX_PERM,   /* "-ERR [SYS/PERM] ...": cannot open it, and
			      * trying again will not help */
};

/* One message of the mailbox, in the order of the message numbers. */
struct pop3_message {
	long long size;   /* octets on the wire: pop3_size_*() of its
			   * content (>= 0) */
	const char *uidl; /* the unique ID: 1 to 70 octets of 0x21..0x7e
			   * (RFC 1939 7), the same in every session */
};

/* Where the session is (RFC 1939 3). During the STLS handshake and the
 * login the session is still in AUTHORIZATION. */
enum pop3_state {
	POP3_STATE_AUTHORIZATION,
	POP3_STATE_TRANSACTION,
	POP3_STATE_UPDATE, /* QUIT: waiting for update_done */
	POP3_STATE_CLOSED, /* close has been called */
};

/* The application's side. Each request the engine makes (auth,
 * auth_step, mailbox_open, update; starttls is answered with
 * pop3_session_tls_done) is answered by the matching pop3_session_*()
 * call, inside the callback or later. While one is pending, and while a
 * multi-line response is being written, the engine only buffers input;
 * pipelined commands then run, and their responses go out, in order. */
struct pop3_server_callbacks {
	/* bytes for the client; never NULL */
	void (*write)(void *ctx, const void *data, size_t len);
	/* the session is over (QUIT answered, too many errors, a failed TLS
	 * handshake, a message that could not be read to its end): close
	 * once the output written so far has been sent; never NULL */
	void (*close)(void *ctx);
	/* STLS: "+OK Begin TLS negotiation" has been written and the input
	 * that came with the command thrown away; start the handshake once
	 * that response is out, then call pop3_session_tls_done. Input given
	 * meanwhile is discarded. NULL: STLS is not offered. */
	void (*starttls)(void *ctx);
	/* A login begins: mech is upper case and offered ("PLAIN" for
	 * USER/PASS); resp is the decoded initial response (has_resp: there
	 * was one; "=" gives an empty one). Answer pop3_session_auth_done.
	 * Never NULL. */
	void (*auth)(void *ctx, const char *mech, const void *resp, size_t len, bool has_resp);
	/* the client's decoded response to a challenge; never NULL */
	void (*auth_step)(void *ctx, const void *resp, size_t len);
	/* the exchange ended without a verdict being wanted (the client sent
	 * "*", an undecodable or overlong line, or the session ended):
	 * forget it. May be NULL. */
	void (*auth_cancel)(void *ctx);
	/* the login succeeded as user (the canonical name auth_done gave):
	 * lock and list the mailbox, answer pop3_session_mailbox_done. The
	 * lock is the application's to release when the session ends (also
	 * when the answer came too late to be used). Never NULL. */
	void (*mailbox_open)(void *ctx, const char *user);
	/* RETR/TOP: open message index (0-based: message number - 1);
	 * 0, or -1 if it cannot be read. Never NULL. */
	int (*open_message)(void *ctx, size_t index);
	/* the next octets of the open message (the Maildir file as it is:
	 * LF line ends) into buf, at most max: how many, 0 at the end, -1
	 * on a read error. Never NULL. */
	ssize_t (*read_message)(void *ctx, void *buf, size_t max);
	/* the open message is not needed any more; never NULL */
	void (*close_message)(void *ctx);
	/* Flow control for output, may be NULL. Asked before each command
	 * and before each slice of a multi-line response: true = the
	 * output buffer is full, stop; the application then calls
	 * pop3_session_output_ready when it has drained. Without it, output
	 * is written as fast as it is made. */
	bool (*output_full)(void *ctx);
	/* QUIT in TRANSACTION with messages marked deleted: remove those
	 * with deleted[i] (n = the number of messages), then answer
	 * pop3_session_update_done. Only ever called on QUIT: a session that
	 * ends any other way deletes nothing. Never NULL. */
	void (*update)(void *ctx, const bool *deleted, size_t n);
	/* one line per event for the log (already sanitised); may be NULL */
	void (*log)(void *ctx, const char *line);
	/* Input flow control, may be NULL. paused=true: the engine holds
	 * more than POP3_INPUT_HIGH octets of input it cannot process yet -
	 * stop reading from the client; paused=false: read again. Without
	 * it the engine gives up (close) once it holds POP3_INPUT_MAX. */
	void (*flow)(void *ctx, bool paused);
};

/* Input buffering limits (octets of unprocessed client input). */
#define POP3_INPUT_HIGH (16 * 1024)
#define POP3_INPUT_MAX (256 * 1024)
/* Message content is read in slices of this size. */
#define POP3_CONTENT_CHUNK (16 * 1024)

/* pop3_session_new - a session for one client connection. client_addr
 * and client_name (NULL: "unknown") are for log lines only. */
struct pop3_session *pop3_session_new(const struct pop3_server_config *config,
				      const struct pop3_server_callbacks *cb, void *ctx, const char *client_addr,
				      const char *client_name);
/* pop3_session_start - send the greeting; input before it is kept. */
void pop3_session_start(struct pop3_session *s);
/* pop3_session_input - bytes from the client (decrypted, under TLS). */
void pop3_session_input(struct pop3_session *s, const void *data, size_t len);
/* pop3_session_timeout - the idle timer fired: close without a response
 * and without UPDATE (RFC 1939 3). */
void pop3_session_timeout(struct pop3_session *s);
/* pop3_session_shutdown - the server is stopping: "-ERR [SYS/TEMP]
 * Server shutting down" (unless a multi-line response or a TLS handshake
 * is under way), close; nothing is deleted. */
void pop3_session_shutdown(struct pop3_session *s);

/* The answers. */
/* pop3_session_tls_done - the STLS handshake is done: ok = encrypted
 * now (the session forgets a pending USER; CAPA changes); !ok = it
 * failed: the session closes without a word. */
void pop3_session_tls_done(struct pop3_session *s, bool ok);
/* pop3_session_auth_done - answer auth or auth_step: challenge (for
 * CONTINUE) is sent base64-encoded; user (for OK, not NULL or empty) is
 * the canonical login name, handed to mailbox_open. */
void pop3_session_auth_done(struct pop3_session *s, enum pop3_auth_answer answer, const void *challenge,
			    size_t len, const char *user);
/* pop3_session_mailbox_done - answer mailbox_open; for OK, messages[0..n)
 * (copied) are the mailbox. */
void pop3_session_mailbox_done(struct pop3_session *s, enum pop3_mailbox_result result,
			       const struct pop3_message *messages, size_t n);
/* pop3_session_update_done - answer update: ok = every marked message is
 * gone ("+OK"), else "-ERR [SYS/TEMP] ..."; the session closes. */
void pop3_session_update_done(struct pop3_session *s, bool ok);
/* pop3_session_output_ready - the output drained after output_full said
 * true: go on. Harmless at any other time. */
void pop3_session_output_ready(struct pop3_session *s);

/* Accessors. */
enum pop3_state pop3_session_state(const struct pop3_session *s);
/* pop3_session_user - the logged-in user (as auth_done named it) once
 * the mailbox is open, else NULL. */
const char *pop3_session_user(const struct pop3_session *s);
/* pop3_session_tls - whether the connection is encrypted. */
bool pop3_session_tls(const struct pop3_session *s);
/* pop3_session_closed - whether the close callback has been called. */
bool pop3_session_closed(const struct pop3_session *s);

/* pop3_session_free - release *s (NULL is fine) and set it to NULL. */
void pop3_session_free(struct pop3_session **s);

/* The size of a message on the wire, as LIST, STAT and RETR give it,
 * from its file fed in any pieces: each LF not preceded by a CR counts
 * as CRLF, everything else as itself, and a last line that does not end
 * in LF counts as if it did. Dot-stuffing is not counted (RFC 1939 5).
 * This is how the engine sends a file (pop3_server.md). */
struct pop3_size {
	unsigned long long octets;
	bool cr;         /* the last octet was a CR */
	bool line_start; /* nothing yet, or the last octet was a LF */
};

void pop3_size_init(struct pop3_size *z);
void pop3_size_add(struct pop3_size *z, const void *data, size_t len);
/* pop3_size_result - the size of what was added. */
unsigned long long pop3_size_result(const struct pop3_size *z);

#endif
