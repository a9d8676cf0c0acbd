/* auth_proto.h - the client side of auth's two protocols (the server and
 * the full description: auth/PROTOCOL.md). This header is the one place
 * the protocols' names live: the daemon builds its replies with these
 * constants too.
 *
 * "auth-lookup" (private/auth): smtpd asks "rcpt" for each RCPT TO and
 * "sender" for an authenticated client's MAIL FROM, qmgr asks "expand" to
 * route a recipient, anyone may ask "domain". Requests (the client
 * library adds the request id):
 *   { cmd = "rcpt",   address = "user@domain" }
 *   { cmd = "expand", address = "user@domain" }
 *   { cmd = "domain", domain = "example.com" }
 *   { cmd = "sender", user = "bob@example.com", address = "x@example.com" }
 *
 * "auth-sasl" (private/sasl): SASL authentication for smtpd, pop3d and
 * imapd, which relay the client's exchange and get challenges and the
 * verdict back (the mechanisms run in auth):
 *   { cmd = "mechs",  service, secure }
 *   { cmd = "start",  session, service, mech, client, secure [, response] }
 *   { cmd = "step",   session, response }
 *   { cmd = "cancel", session }
 * A session is one client connection's exchange, numbered by the network
 * daemon; one auth connection carries any number of them.
 *
 * The parse functions accept a reply as ipc_async hands it over (the
 * "req" field removed, though one left in is ignored) and ignore fields
 * they do not know, so that auth can add some without breaking clients.
 * Returned strings point into the message: they live as long as it.
 */
#ifndef YB_AUTH_PROTO_H
#define YB_AUTH_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../libutil/buf.h"
#include "../libutil/ipc.h"

#define AUTH_PROTOCOL "auth-lookup"
#define AUTH_SOCKET "auth" /* the socket name in queue_directory/private */
#define AUTH_FRAME_MAX (1024 * 1024) /* largest reply (an expand) */
#define AUTH_REQUEST_MAX 4096        /* largest request auth reads */

/* Field names. */
#define AUTH_F_CMD "cmd"
#define AUTH_F_ADDRESS "address"
#define AUTH_F_DOMAIN "domain"
#define AUTH_F_RESULT "result"
#define AUTH_F_MAILBOX "mailbox"
#define AUTH_F_QUOTA "quota"
#define AUTH_F_ENABLED "enabled"
#define AUTH_F_REASON "reason"
#define AUTH_F_LOCAL "local"
#define AUTH_F_REMOTE "remote"
#define AUTH_F_UNKNOWN "unknown"

#define AUTH_F_USER "user"

/* Commands. */
#define AUTH_CMD_RCPT "rcpt"
#define AUTH_CMD_EXPAND "expand"
#define AUTH_CMD_DOMAIN "domain"
#define AUTH_CMD_SENDER "sender"

#define AUTH_ADDRESS_MAX 256 /* longer addresses are refused */
#define AUTH_DOMAIN_MAX 255  /* longer domains are refused */

enum auth_result {
	AUTH_R_ERROR,      /* "error": temporary; reason says why */
	AUTH_R_LOCAL,      /* "local" (rcpt) */
	AUTH_R_ALIAS,      /* "alias" (rcpt) */
	AUTH_R_UNKNOWN,    /* "unknown" (rcpt, expand) */
	AUTH_R_NOT_HOSTED, /* "not_hosted" (all three) */
	AUTH_R_OK,         /* "ok" (expand) */
	AUTH_R_LOOP,       /* "loop" (expand) */
	AUTH_R_HOSTED,     /* "hosted" (domain) */
	AUTH_R_NO,         /* "no" (sender; "ok" is yes) */
};

/* auth_result_name / auth_result_parse - the protocol's words. parse
 * returns -1 for a word it does not know. */
const char *auth_result_name(enum auth_result result);
int auth_result_parse(const char *name, enum auth_result *result_r);

/* Building requests: after ipc_begin(frame), before ipc_async_request. */
void auth_put_rcpt(struct buf *frame, const char *address);
void auth_put_expand(struct buf *frame, const char *address);
void auth_put_domain(struct buf *frame, const char *domain);

struct auth_rcpt_reply {
	enum auth_result result; /* LOCAL, ALIAS, UNKNOWN, NOT_HOSTED, ERROR */
	const char *mailbox;     /* LOCAL */
	int64_t quota;           /* LOCAL: bytes, 0 = unlimited */
	bool enabled;            /* LOCAL: logins allowed (mail is delivered either way) */
	const char *reason;      /* ERROR ("" if none was given) */
};

/* auth_parse_rcpt - 0, or -1 and a static *error_r if the reply is not a
 * well-formed rcpt reply (treat that as a temporary failure). */
int auth_parse_rcpt(const struct ipc_msg *msg, struct auth_rcpt_reply *r, const char **error_r);

struct auth_local_target {
	const char *mailbox;
	int64_t quota;
};

struct auth_expand_reply {
	enum auth_result result; /* OK, UNKNOWN, NOT_HOSTED, LOOP, ERROR */
	struct auth_local_target *local; /* new array; free with auth_expand_reply_free */
	size_t local_count;
	const char **remote;     /* new array */
	size_t remote_count;
	const char **unknown;    /* new array: hosted targets without a mailbox */
	size_t unknown_count;
	const char *reason;      /* LOOP, ERROR */
};

int auth_parse_expand(const struct ipc_msg *msg, struct auth_expand_reply *r, const char **error_r);
void auth_expand_reply_free(struct auth_expand_reply *r);

/* auth_parse_domain - result HOSTED, NOT_HOSTED or ERROR. */
int auth_parse_domain(const struct ipc_msg *msg, enum auth_result *result_r, const char **reason_r,
		      const char **error_r);

/* sender: may the authenticated user send as address? The reply is
 * {result="ok"}, {result="no"} or {result="error", reason}. */
void auth_put_sender(struct buf *frame, const char *user, const char *address);
/* auth_parse_sender - 0 and *owned_r; -1 for "error" (*error_r is the
 * reason auth gave) or a reply that is not a sender reply (a static
 * *error_r). Either way -1 is a temporary failure. */
int auth_parse_sender(const struct ipc_msg *reply, bool *owned_r, const char **error_r);

/* --- auth-sasl ----------------------------------------------------- */

#define AUTH_SASL_PROTOCOL "auth-sasl"
#define AUTH_SASL_SOCKET "sasl" /* the socket name in queue_directory/private */
#define AUTH_SASL_REQUEST_MAX (16 * 1024) /* largest request auth reads */
#define AUTH_SASL_RESPONSE_MAX 12288      /* longest response (decoded bytes) */
#define AUTH_SASL_MECH_MAX 64             /* longest mechanism name */
#define AUTH_SASL_CLIENT_MAX 64           /* longest client address */
/* Client read timeout: above the longest verdict delay auth may add
 * (auth_failure_delay, at most 60s) plus a password check. */
#define AUTH_SASL_TIMEOUT_S 75

/* Services, the "service" field. */
#define AUTH_SASL_SERVICE_SMTP "smtp"
#define AUTH_SASL_SERVICE_POP "pop"
#define AUTH_SASL_SERVICE_IMAP "imap"

/* Field names (besides cmd, result, reason, user). */
#define AUTH_F_SESSION "session"
#define AUTH_F_SERVICE "service"
#define AUTH_F_MECH "mech"
#define AUTH_F_MECHS "mechs"
#define AUTH_F_CLIENT "client"
#define AUTH_F_SECURE "secure"
#define AUTH_F_RESPONSE "response"
#define AUTH_F_CHALLENGE "challenge"

#define AUTH_CMD_MECHS "mechs"
#define AUTH_CMD_START "start"
#define AUTH_CMD_STEP "step"
#define AUTH_CMD_CANCEL "cancel"

/* Building requests: after ipc_begin(frame), before ipc_async_request.
 * secure: the client connection is encrypted (TLS), or the operator
 * allows plaintext logins without it (smtpd_auth_plaintext), so that
 * mechanisms that send the password itself (PLAIN, LOGIN) may run; with
 * secure false they answer "encrypt". Responses are the client's bytes,
 * decoded from base64 (at most AUTH_SASL_RESPONSE_MAX). has_resp false:
 * the client gave no initial response; true with resp_len 0: it sent
 * "=" (an empty one). client: the client's IP address. */
void auth_put_sasl_mechs(struct buf *frame, const char *service, bool secure);
void auth_put_sasl_start(struct buf *frame, int64_t session, const char *service, const char *mech,
			 const void *resp, size_t resp_len, bool has_resp, const char *client, bool secure);
void auth_put_sasl_step(struct buf *frame, int64_t session, const void *resp, size_t len);
void auth_put_sasl_cancel(struct buf *frame, int64_t session);

enum auth_sasl_result {
	AUTH_SASL_CONTINUE, /* "continue": send challenge, read the client's answer, then step */
	AUTH_SASL_OK,       /* "ok": authenticated as user (start/step); mechs (mechs); cancel done */
	AUTH_SASL_FAIL,     /* "fail": authentication failed; answer generically (no reason) */
	AUTH_SASL_ENCRYPT,  /* "encrypt": this mechanism needs TLS first */
	AUTH_SASL_TEMP,     /* "temp": try later (blocked, tables unreadable, bad request) */
};

struct auth_sasl_reply {
	enum auth_sasl_result result;
	const void *challenge; /* CONTINUE: raw bytes, to send base64-encoded (may be empty) */
	size_t challenge_len;
	const char *user;      /* OK after start/step: the canonical login name */
	const char *mechs;     /* OK after mechs: "PLAIN LOGIN SCRAM-SHA-256" (may be "") */
	const char *reason;    /* FAIL, TEMP: for the log only ("" if none) */
};

/* auth_parse_sasl - any auth-sasl reply; 0, or -1 and a static *error_r
 * if it is not one (treat that as a temporary failure). Strings point
 * into the message. */
int auth_parse_sasl(const struct ipc_msg *reply, struct auth_sasl_reply *out, const char **error_r);

/* auth_sasl_result_name - "continue", "ok", "fail", "encrypt", "temp". */
const char *auth_sasl_result_name(enum auth_sasl_result result);

#endif
