/* sasl_relay.h - a network daemon's side of a login that auth runs: start,
 * step and cancel one SASL exchange over the daemon's connection to
 * auth's SASL socket (the auth-sasl protocol, auth_proto.h), and get
 * auth's verdict back as one enum auth_sasl_result, whatever protocol the
 * client speaks (SMTP AUTH, POP3 AUTH or USER/PASS, IMAP later). smtpd and
 * pop3d use it; each maps the verdict to its own replies. */
#ifndef YB_SASL_RELAY_H
#define YB_SASL_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth_proto.h"

struct ipc_async;

/* sasl_relay_fn - auth's answer to a start or step: challenge for
 * AUTH_SASL_CONTINUE, user (never NULL or empty) for AUTH_SASL_OK. A
 * reply that is not one, or none at all (auth unreachable), comes as
 * AUTH_SASL_TEMP, logged here. Called exactly once per start or step,
 * never from inside the call; the pointers live during the call only. */
typedef void sasl_relay_fn(void *arg, enum auth_sasl_result result, const void *challenge, size_t len,
			   const char *user);

/* sasl_relay_new_session - a number for a new exchange, unique in this
 * process (auth tells one client connection's exchanges apart by it). */
int64_t sasl_relay_new_session(void);

/* sasl_relay_start - the client's AUTH (or USER/PASS as PLAIN): mech, the
 * decoded initial response if has_resp; client is its address for auth's
 * throttling and log; secure: the password may travel (TLS, or allowed in
 * clear). */
void sasl_relay_start(struct ipc_async *auth, int64_t session, const char *service, const char *mech,
		      const void *resp, size_t len, bool has_resp, const char *client, bool secure,
		      sasl_relay_fn *fn, void *arg);
/* sasl_relay_step - the client's decoded response to a challenge. */
void sasl_relay_step(struct ipc_async *auth, int64_t session, const void *resp, size_t len, sasl_relay_fn *fn,
		     void *arg);
/* sasl_relay_cancel - the client gave up or went away: auth forgets the
 * exchange. No answer comes. */
void sasl_relay_cancel(struct ipc_async *auth, int64_t session);

#endif
