/* auth_proto.h - the client side of auth's "auth-lookup" protocol (the
 * server and the full description: auth/PROTOCOL.md). smtpd asks "rcpt"
 * for each RCPT TO, qmgr asks "expand" to route a recipient, anyone may
 * ask "domain". This header is the one place the protocol's names live:
 * the daemon builds its replies with these constants too.
 *
 * Requests (the client library adds the request id):
 *   { cmd = "rcpt",   address = "user@domain" }
 *   { cmd = "expand", address = "user@domain" }
 *   { cmd = "domain", domain = "example.com" }
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

/* Commands. */
#define AUTH_CMD_RCPT "rcpt"
#define AUTH_CMD_EXPAND "expand"
#define AUTH_CMD_DOMAIN "domain"

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

#endif
