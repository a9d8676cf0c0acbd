/* auth.h - the auth daemon's own state, shared by auth.c (start-up) and
 * auth_lookup.c (the auth-lookup protocol). Not for other programs: they
 * use libmail/auth_proto.h. */
#ifndef YB_AUTH_H
#define YB_AUTH_H

#include <stdint.h>
#include <sys/types.h>

#include "../libmail/directory.h"
#include "../libmail/params.h"
#include "../libutil/ipc_server.h"

struct auth_state {
	struct yb_params *params;
	struct directory *dir;   /* opened after the privilege drop */
	struct ipc_server *lookup;
	const char *table_dir;   /* data_directory as seen now: "/" in the jail */
	dev_t data_dev;          /* data_directory's identity, taken before the jail */
	ino_t data_ino;
};

/* auth_lookup_request - one auth-lookup request (ipc_handler_fn). */
void auth_lookup_request(struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg, void *ctx);

#endif
