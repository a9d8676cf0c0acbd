/* control.c - mailctl's side of master's control socket. */
#include "config.h"
#include "mailctl.h"
#include "../libmail/params.h"
#include "../libutil/mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONTROL_PROTOCOL "master-control"
#define CONTROL_TIMEOUT_MS 10000

/* The two control sockets mailctl talks to. */
static const struct {
	const char *daemon;   /* for messages */
	const char *protocol;
	int timeout_ms;
} endpoints[] = {
	[ENDPOINT_MASTER] = { "master", CONTROL_PROTOCOL, CONTROL_TIMEOUT_MS },
	[ENDPOINT_QMGR] = { "qmgr", "qmgr-control", 30000 },
};

static char *endpoint_path(enum control_endpoint which, const struct yb_params *p)
{
	return which == ENDPOINT_MASTER ? xasprintf("%s/master.ctl", p->run_directory)
					: xasprintf("%s/private/qmgr-control", p->queue_directory);
}

struct ipc_conn *mailctl_open(struct mailctl *ctl, enum control_endpoint which, enum connect_mode mode,
			      int *exit_r)
{
	struct yb_params params;
	char *error = NULL;
	char *path;
	struct ipc_conn *conn;

	if (params_load(&params, ctl->config_dir, &error) < 0) {
		if (mode != CONNECT_PROBE)
			mailctl_error("%s", error);
		free(error);
		conf_free(&params_table, &params);
		*exit_r = MAILCTL_FAIL;
		return NULL;
	}
	path = endpoint_path(which, &params);
	conf_free(&params_table, &params);
	errno = 0;
	conn = ipc_conn_open(path, endpoints[which].protocol, endpoints[which].timeout_ms, &error);
	if (conn == NULL) {
		int saved = errno;

		if (saved == ENOENT || saved == ECONNREFUSED) {
			*exit_r = MAILCTL_NOT_RUNNING;
			if (mode == CONNECT_REPORT)
				mailctl_error("%s is not running (no %s at %s)",
					      which == ENDPOINT_MASTER ? "yubin" : "the queue manager",
					      endpoints[which].daemon, path);
		} else if (saved == EACCES || saved == EPERM || saved == EPIPE || saved == ECONNRESET) {
			/* EPIPE/ECONNRESET: a peer check closed the socket before
			 * or after our hello. */
			*exit_r = MAILCTL_NOPERM;
			if (mode != CONNECT_PROBE)
				mailctl_error("permission denied: %s: run mailctl as root "
					      "(or as the user that started master)", path);
		} else {
			*exit_r = MAILCTL_FAIL;
			if (mode != CONNECT_PROBE)
				mailctl_error("%s", error);
		}
		free(error);
		free(path);
		return NULL;
	}
	free(path);
	return conn;
}

struct ipc_conn *mailctl_connect(struct mailctl *ctl, enum connect_mode mode, int *exit_r)
{
	return mailctl_open(ctl, ENDPOINT_MASTER, mode, exit_r);
}

int mailctl_request(struct ipc_conn *conn, const char *cmd, struct ipc_msg *reply)
{
	struct buf req = BUF_INIT;
	char *error = NULL;
	const char *status;

	ipc_begin(&req);
	ipc_put_str(&req, "cmd", cmd);
	ipc_end(&req);
	if (ipc_conn_send(conn, &req, &error) < 0 || ipc_conn_recv(conn, reply, &error) < 0) {
		mailctl_error("%s: %s", cmd, error);
		free(error);
		buf_free(&req);
		return -1;
	}
	buf_free(&req);
	status = ipc_get_str(reply, "status");
	if (status == NULL || strcmp(status, "ok") != 0) {
		const char *reason = ipc_get_str(reply, "reason");

		mailctl_error("%s failed: %s", cmd, reason != NULL ? reason : "no reason given");
		ipc_msg_free(reply);
		return -1;
	}
	return 0;
}
