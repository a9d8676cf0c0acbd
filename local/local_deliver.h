/* local_deliver.h - local's side of the daemon skeleton and the
 * "local-deliver" protocol (local/PROTOCOL.md): requests from qmgr
 * ("deliver") and smtpd ("quota") on local's socket, served with
 * libutil/ipc_server.h and carried out by maildir.c.
 *
 * The hooks keep their state in ctx->app; the loaded yubin.conf is
 * ctx->desc->conf (a struct yb_params). */
#ifndef YB_LOCAL_DELIVER_H
#define YB_LOCAL_DELIVER_H

#include <stdbool.h>
#include <stdint.h>

#define LOCAL_PROTOCOL "local-deliver"

struct ipc_peer;
struct ipc_msg;
struct service_ctx;

struct local_config {
	int root_fd;               /* mail_root, opened once after the drop */
	const char *hostname;      /* myhostname: unique file names */
	bool quota_over_permanent; /* over quota: 5.2.2, else 4.2.2 */
	bool sync_dir;             /* fsync new/ after each delivery */
};

/* local_pre_jail - as root: create mail_root if it is missing (owned by
 * mailbox_owner, mode 0750; its missing parents root's, 0755). */
int local_pre_jail(struct service_ctx *ctx, char **error_r);

/* local_post_jail - as the mailbox owner: open mail_root, start serving. */
int local_post_jail(struct service_ctx *ctx, char **error_r);

void local_accept(struct service_ctx *ctx, int fd, int index);
void local_stop(struct service_ctx *ctx);

/* local_deliver_handler - the ipc_server handler; ctx is a struct local_config. */
void local_deliver_handler(struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg, void *ctx);

#endif
