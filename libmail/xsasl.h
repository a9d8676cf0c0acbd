/* xsasl.h - the server side of SASL (Cyrus libsasl2), as the auth daemon
 * runs it: mechanisms PLAIN, LOGIN and SCRAM-SHA-256, checked against
 * Yubin's own user table through a lookup callback, never against
 * /etc/sasl2 files or sasldb. xsasl.c is the only file that includes
 * <sasl/sasl.h>; nothing here exposes the library's types.
 *
 * How logins are checked:
 *   PLAIN, LOGIN   the password against the user's crypt(3) hash
 *                  (password.h), in libsasl2's checkpass callback;
 *   SCRAM-SHA-256  the client's proof against the user's stored secret,
 *                  which an in-process auxprop plugin hands to the scram
 *                  plugin as authPassword. The plugin never supplies
 *                  userPassword (libsasl2 would compare it with the
 *                  typed password as plain text).
 * Unknown users, disabled users and users without a SCRAM secret fail
 * the same way and after about the same time as a wrong password (a
 * dummy hash check; a fake but stable SCRAM salt), so that answers do
 * not tell which accounts exist; the reason is given for the log only.
 * A successful verdict is double-checked against what the callbacks
 * themselves concluded, so that no path inside the library can log
 * someone in that the table did not vouch for.
 *
 * Which mechanisms exist, and which send the password itself, is
 * sasl_mechs.h's to say (smtpd advertises from the same list). No SASL
 * security layer is negotiated (max_ssf 0): TLS protects the connection.
 * Mechanisms that send the password itself need a secure connection
 * (TLS, or plaintext logins allowed by the operator); without one they
 * answer XSASL_ENCRYPT.
 *
 * Not thread-safe (libsasl2 is not): one event loop calls it.
 */
#ifndef YB_XSASL_H
#define YB_XSASL_H

#include <stdbool.h>
#include <stddef.h>

struct dir_user;

/* What the lookup callback says about a login name (lower case). */
enum xsasl_lookup {
	XSASL_LOOKUP_FOUND,   /* *user filled in; xsasl frees it (dir_user_free) */
	XSASL_LOOKUP_UNKNOWN, /* no such user */
	XSASL_LOOKUP_BLOCKED, /* too many failed logins for this name: check nothing */
	XSASL_LOOKUP_ERROR,   /* the table cannot be read now; *error_r (new memory) says why */
};

typedef enum xsasl_lookup xsasl_lookup_fn(void *ctx, const char *user, struct dir_user *user_r, char **error_r);

struct xsasl_server_config {
	const char *app_name;   /* for libsasl2 ("yubin") */
	const char *mechanisms; /* auth_mechanisms: from PLAIN, LOGIN, SCRAM-SHA-256 */
	const char *hostname;   /* this server's name */
	const char *plugin_dir; /* NULL: the sasl2 directory next to libsasl2 */
	xsasl_lookup_fn *lookup;
	void *ctx;
};

/* xsasl_server_init - load the mechanisms (before chroot: libsasl2
 * dlopens its plugins here). 0, or -1 and a new *error_r (an unknown or
 * unavailable mechanism, a library failure). Once per process. */
int xsasl_server_init(const struct xsasl_server_config *config, char **error_r);

/* xsasl_server_check_random - after the chroot: libsasl2 seeds each
 * exchange's generator from /dev/urandom when the exchange first needs
 * it (SCRAM nonces), and falls back silently to the time and pid. If the
 * device cannot be read here, the mechanisms that need it are withdrawn:
 * -1 and a new *warning_r saying so; 0 when all is well. */
int xsasl_server_check_random(char **warning_r);

/* xsasl_server_done - unload; accepts being called without init. */
void xsasl_server_done(void);

/* xsasl_server_mechs - the mechanisms to offer, blank-separated in the
 * configured order: all of them on a secure connection, otherwise only
 * those that do not send the password ("" if none). Static storage. */
const char *xsasl_server_mechs(bool secure);

enum xsasl_status {
	XSASL_CONTINUE, /* send challenge; the client's answer goes to xsasl_exchange_step */
	XSASL_OK,       /* authenticated as user */
	XSASL_FAIL,     /* refused; reason is for the log */
	XSASL_ENCRYPT,  /* this mechanism needs a secure connection */
	XSASL_TEMP,     /* could not decide now (blocked, table unreadable); reason */
};

struct xsasl_reply {
	enum xsasl_status status;
	const void *challenge; /* CONTINUE (may be empty) */
	size_t challenge_len;
	const char *user;      /* OK: the canonical login name, the table key */
	const char *reason;    /* FAIL, TEMP, ENCRYPT: what happened, for the log */
	bool blocked;          /* TEMP: because the account is blocked */
};

struct xsasl_exchange;

/* xsasl_exchange_start - begin an exchange for service ("smtp", "pop",
 * "imap") with mechanism mech (any case). has_resp false: no initial
 * response; true: resp[0..len) (len 0: an empty one). secure: the client
 * connection is encrypted. Always returns an exchange, also when the
 * reply is final; its pointers live until the next call on it. */
struct xsasl_exchange *xsasl_exchange_start(const char *service, const char *mech, const void *resp, size_t len,
					    bool has_resp, bool secure, struct xsasl_reply *reply);

/* xsasl_exchange_step - the client's answer to the last challenge. On
 * an exchange that already ended, the reply is FAIL. */
void xsasl_exchange_step(struct xsasl_exchange *ex, const void *resp, size_t len, struct xsasl_reply *reply);

/* xsasl_exchange_user - the login name the client gave, lower-cased as
 * the tables are (for logs and throttling; not sanitised), or NULL if it
 * has not given one yet. */
const char *xsasl_exchange_user(const struct xsasl_exchange *ex);

/* xsasl_exchange_mech - the mechanism's name as registered ("PLAIN"), or
 * NULL if the client asked for one that is not offered. */
const char *xsasl_exchange_mech(const struct xsasl_exchange *ex);

/* xsasl_exchange_free - end it (at any point); accepts NULL. */
void xsasl_exchange_free(struct xsasl_exchange **ex);

#endif
