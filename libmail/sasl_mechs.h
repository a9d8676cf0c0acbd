/* sasl_mechs.h - the SASL mechanisms Yubin knows, and which of them a
 * service offers: those configured (auth_mechanisms), minus the ones
 * that send the password in clear (PLAIN, LOGIN) on a connection that is
 * not secure. The one place this is decided: auth checks a client's
 * choice with it, smtpd (and later pop3d and imapd) advertise with it. */
#ifndef YB_SASL_MECHS_H
#define YB_SASL_MECHS_H

#include <stdbool.h>

#include "../libutil/buf.h"

/* sasl_mech_known - PLAIN, LOGIN or SCRAM-SHA-256 (exact, upper case). */
bool sasl_mech_known(const char *mech);

/* sasl_mech_plaintext - whether the mechanism carries the password
 * itself (only over TLS, unless the operator allows otherwise). */
bool sasl_mech_plaintext(const char *mech);

/* sasl_mechs_offered - the configured list (space-separated, any case)
 * reduced to what may be offered: known mechanisms, upper case, each
 * once, in the configured order; plaintext ones only if secure. out is
 * replaced; it may end up empty. */
void sasl_mechs_offered(const char *configured, bool secure, struct buf *out);

/* sasl_mechs_check - every name in configured is known and there is at
 * least one; -1 with a static reason otherwise. */
int sasl_mechs_check(const char *configured, const char **error_r);

#endif
