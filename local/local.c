/* local.c - the local delivery agent: delivers mail for local mailboxes
 * into mail_root/DOMAIN/USER/Maildir and enforces their Maildir++ quotas,
 * on requests from qmgr (and quota questions from smtpd) over the
 * "local-deliver" protocol (local/PROTOCOL.md).
 *
 * Runs as mailbox_owner, not chrooted: master.conf says
 *   local  unix  local  ${mailbox_owner}  -  2  local
 * The pre-jail hook creates mail_root if it is missing; everything else
 * is in local_deliver.c (protocol) and maildir.c (the Maildir itself).
 */
#include "config.h"
#include "local_deliver.h"
#include "../libmail/params.h"
#include "../libutil/service.h"

static struct yb_params params;

int main(int argc, char **argv)
{
	static const struct service_desc desc = {
		.name = "yubin/local",
		.conf_table = &params_table,
		.conf = &params,
		.load_conf = params_load_service,
		.pre_jail = local_pre_jail,
		.post_jail = local_post_jail,
		.on_accept = local_accept,
		.on_stop = local_stop,
	};

	return service_main(argc, argv, &desc);
}
