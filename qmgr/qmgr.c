/* qmgr.c - the queue manager: sole owner of the queue store. It commits
 * what smtpd enqueues (one log flush for every request that arrived
 * together), hands recipients to the delivery agents, retries deferred
 * ones with back-off, and bounces the failures. See PROTOCOL.md. */
#include "config.h"
#include "qmgr.h"
#include "../libutil/fileop_pool.h"
#include "../libmail/auth_proto.h"
#include "../libmail/params.h"
#include "../libutil/fileutil.h"
#include "../libutil/ipc_async.h"
#include "../libutil/ipc_server.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/service.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct yb_params params;
static struct qmgr qmgr;

/* qmgr_pre_jail - as root: the queue's working directories. */
static int qmgr_pre_jail(struct service_ctx *ctx, char **error_r)
{
	/* Relative paths from here on: the queue directory is the working
	 * directory whether or not we are chrooted into it. */
	if (chdir(params.queue_directory) < 0) {
		*error_r = xasprintf("chdir %s: %s", params.queue_directory, strerror(errno));
		return -1;
	}
	if (service_dir_ensure(ctx, QUEUE_CONTENT_DIR, 0700, error_r) < 0 ||
	    service_dir_ensure(ctx, QUEUE_SPARE_DIR, 0700, error_r) < 0 ||
	    service_dir_ensure(ctx, QMGR_STORE_DIR, 0700, error_r) < 0)
		return -1;
	return 0;
}

static int qmgr_post_jail(struct service_ctx *ctx, char **error_r)
{
	struct qmgr *q = &qmgr;

	q->svc = ctx;
	q->params = &params;
	q->store = queue_store_open_bdb(QMGR_STORE_DIR, error_r);
	if (q->store == NULL)
		return -1;
	q->enqueue = ipc_server_new(ctx->base, "qmgr-enqueue", 1024 * 1024, 0, qmgr_enqueue_request, q);
	q->control = ipc_server_new(ctx->base, "qmgr-control", 64 * 1024, 60, qmgr_control_request, q);
	q->auth = ipc_async_new(ctx->base, QMGR_AUTH_SOCKET, AUTH_PROTOCOL, 30);
	for (int i = 0; i < QMGR_LOCAL_CONNECTIONS; i++)
		q->local[i] = ipc_async_new(ctx->base, QMGR_LOCAL_SOCKET, "local-deliver", 300);
	q->smtp = ipc_async_new(ctx->base, QMGR_SMTP_SOCKET, "smtp-deliver", QMGR_SMTP_TIMEOUT_S);
	q->commit_ev = event_new(ctx->base, -1, 0, qmgr_on_commit, q);
	q->commit_later_ev = evtimer_new(ctx->base, qmgr_on_commit, q);
	q->scan_ev = event_new(ctx->base, -1, 0, qmgr_on_scan, q);
	q->sweep_ev = event_new(ctx->base, -1, 0, qmgr_on_sweep, q);
	/* One thread: removals take the content directory's lock anyway. */
	q->fileops = fileop_pool_new(ctx->base, 1);
	qmgr_on_sweep(-1, 0, q);
	/* Whatever was queued before a restart is due now. */
	qmgr_scan_soon(q);
	return 0;
}

static void qmgr_accept(struct service_ctx *ctx, int fd, int index)
{
	(void)ctx;
	/* Listener 0: qmgr (enqueue); 1: qmgr-control (master.conf). */
	ipc_server_accept(index == 1 ? qmgr.control : qmgr.enqueue, fd);
}

static void qmgr_stop(struct service_ctx *ctx)
{
	(void)ctx;
	/* Pending commits finish now (delivery outcomes waiting for a later
	 * flush too); deliveries in flight are retried after the restart. */
	if (qmgr.acks != NULL || queue_store_staged(qmgr.store) > 0)
		qmgr_on_commit(-1, 0, &qmgr);
	fileop_pool_free(&qmgr.fileops); /* the removals already asked for are made */
	event_base_loopbreak(ctx->base);
}

int main(int argc, char **argv)
{
	static const struct service_desc desc = {
		.name = "yubin/qmgr",
		.conf_table = &params_table,
		.conf = &params,
		.load_conf = params_load_service,
		.pre_jail = qmgr_pre_jail,
		.post_jail = qmgr_post_jail,
		.on_accept = qmgr_accept,
		.on_stop = qmgr_stop,
	};
	int rc = service_main(argc, argv, &desc);

	queue_store_close(&qmgr.store);
	free(qmgr.fresh);
	return rc;
}
