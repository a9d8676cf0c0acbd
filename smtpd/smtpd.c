/* smtpd.c - the SMTP server: accepts mail for hosted domains on the
 * listeners master hands it, checks each recipient through auth, writes
 * the message into the queue and answers 250 only after qmgr committed
 * it. Runs unprivileged, chrooted in the queue directory. The service
 * named "pickup" (on public/pickup) takes local submissions from the
 * sendmail command instead, naming each client by its peer credentials. */
#include "config.h"
#include "smtpd.h"
#include "../libmail/auth_proto.h"
#include "../libutil/fileop_pool.h"
#include "../libutil/ipc_async.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/service.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static struct yb_params params;
static struct smtpd smtpd;

static int smtpd_pre_jail(struct service_ctx *ctx, char **error_r)
{
	/* Relative paths from here on: the queue directory is the working
	 * directory whether or not we are chrooted into it. */
	if (chdir(params.queue_directory) < 0) {
		*error_r = xasprintf("chdir %s: %s", params.queue_directory, strerror(errno));
		return -1;
	}
	if (strcmp(ctx->service_name, SMTPD_PICKUP_SERVICE) == 0)
		smtpd_users_load();
	if (service_dir_ensure(ctx, QUEUE_SPARE_DIR, 0700, error_r) < 0)
		return -1;
	return service_dir_ensure(ctx, QUEUE_CONTENT_DIR, 0700, error_r);
}

static int smtpd_post_jail(struct service_ctx *ctx, char **error_r)
{
	struct smtpd *d = &smtpd;

	(void)error_r;
	d->svc = ctx;
	d->params = &params;
	d->pickup = strcmp(ctx->service_name, SMTPD_PICKUP_SERVICE) == 0;
	d->engine = (struct smtp_server_config){
		.hostname = params.myhostname,
		.max_message_size = params.message_size_limit,
		.max_recipients = (int)params.smtpd_recipient_limit,
		.max_errors = (int)params.smtpd_error_limit,
		.max_received = (int)params.hopcount_limit,
		.smtputf8 = true,
	};
	d->auth = ipc_async_new(ctx->base, SMTPD_AUTH_SOCKET, AUTH_PROTOCOL, 30);
	d->qmgr = ipc_async_new(ctx->base, SMTPD_QMGR_SOCKET, "qmgr-enqueue", 60);
	d->local = ipc_async_new(ctx->base, SMTPD_LOCAL_SOCKET, "local-deliver", 30);
	d->fileops = fileop_pool_new(ctx->base, SMTPD_SYNC_THREADS);
	smtpd_spares_open(&d->spares);
	return 0;
}

static void smtpd_accept(struct service_ctx *ctx, int fd, int index)
{
	(void)ctx;
	(void)index;
	smtpd_conn_accept(&smtpd, fd);
}

static void smtpd_stop(struct service_ctx *ctx)
{
	(void)ctx;
	smtpd_conn_shutdown_all(&smtpd);
}

int main(int argc, char **argv)
{
	static const struct service_desc desc = {
		.name = "yubin/smtpd",
		.conf_table = &params_table,
		.conf = &params,
		.load_conf = params_load_service,
		.pre_jail = smtpd_pre_jail,
		.post_jail = smtpd_post_jail,
		.on_accept = smtpd_accept,
		.on_stop = smtpd_stop,
	};
	return service_main(argc, argv, &desc);
}
