/* auth.h - the auth daemon's own state, shared by auth.c (start-up),
 * auth_lookup.c (the auth-lookup protocol) and auth_sasl.c (auth-sasl).
 * Not for other programs: they use libmail/auth_proto.h. */
#ifndef YB_AUTH_H
#define YB_AUTH_H

#include <stdint.h>
#include <sys/types.h>

#include "../libmail/directory.h"
#include "../libmail/params.h"
#include "../libutil/ipc_server.h"

struct auth_sasl;
struct event_base;

struct auth_state {
	struct yb_params *params;
	struct directory *dir;   /* opened after the privilege drop */
	struct ipc_server *lookup;
	struct auth_sasl *sasl;  /* auth-sasl, on the second listener */
	const char *table_dir;   /* data_directory as seen now: "/" in the jail */
	dev_t data_dev;          /* data_directory's identity, taken before the jail */
	ino_t data_ino;
};

/* auth_lookup_request - one auth-lookup request (ipc_handler_fn). */
void auth_lookup_request(struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg, void *ctx);

/* auth_sasl_pre_jail - as root, before the chroot: the random device in
 * the jail, and libsasl2 with its plugins. 0 or -1 and *error_r. */
int auth_sasl_pre_jail(struct auth_state *st, char **error_r);
/* auth_sasl_post_jail - in the jail: the auth-sasl server. */
void auth_sasl_post_jail(struct auth_state *st, struct event_base *base);
/* auth_sasl_accept - a connection on the sasl listener. */
void auth_sasl_accept(struct auth_state *st, int fd);
/* auth_sasl_stop - close every connection, drop every exchange; safe to
 * call more than once. */
void auth_sasl_stop(struct auth_state *st);

#endif
