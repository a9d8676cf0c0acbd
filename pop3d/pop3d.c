/* pop3d.c - the POP3 server: users fetch the mail of their Maildir, over
 * STLS on the pop3 port (110) or implicit TLS on pop3s (995). Logins go
 * to auth (SASL, with its throttling); the protocol is libmail's engine
 * (pop3_server.h), the connections pop3d_session.c, the Maildir
 * pop3d_mailbox.c. Runs as the mailbox owner, jailed in mail_root; the
 * TLS certificates are loaded before. */
#include "config.h"
#include "pop3d.h"
#include "../libmail/auth_proto.h"
#include "../libmail/sasl_mechs.h"
#include "../libutil/fileop_pool.h"
#include "../libutil/ipc_async.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/service.h"
#include "../libutil/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct yb_params params;
static struct pop3d pop3d = { .root_fd = -1 };

/* load_tls - the certificates, as root, before the jail. pop3s cannot do
 * without; pop3 without them offers no STLS, and then no login at all
 * unless pop3d_auth_plaintext allows one in clear. */
static int load_tls(struct service_ctx *ctx, char **error_r)
{
	if (params.tls_cert_file[0] == '\0') {
		if (!pop3d.implicit_tls)
			return 0;
		*error_r = xasprintf("service %s needs TLS: set tls_cert_file and tls_key_file in yubin.conf "
				     "(mailctl tls selfsigned HOSTNAME makes a test certificate)",
				     ctx->service_name);
		return -1;
	}
	pop3d.tls = tls_server_new(params.tls_cert_file, params.tls_key_file, params.tls_sni_map, error_r);
	return pop3d.tls != NULL ? 0 : -1;
}

static int pop3d_pre_jail(struct service_ctx *ctx, char **error_r)
{
	const char *reason;

	pop3d.implicit_tls = strcmp(ctx->service_name, POP3D_POP3S_SERVICE) == 0;
	if (sasl_mechs_check(params.auth_mechanisms, &reason) < 0) {
		*error_r = xasprintf("auth_mechanisms = %s: %s", params.auth_mechanisms, reason);
		return -1;
	}
	if (load_tls(ctx, error_r) < 0)
		return -1;
	/* Relative paths from here on: mail_root is the working directory
	 * whether or not we are chrooted into it. */
	if (chdir(params.mail_root) < 0) {
		*error_r = xasprintf("chdir %s: %s", params.mail_root, strerror(errno));
		return -1;
	}
	return 0;
}

static int pop3d_post_jail(struct service_ctx *ctx, char **error_r)
{
	struct pop3d *d = &pop3d;

	d->root_fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->root_fd < 0) {
		*error_r = xasprintf("mail_root %s: %s", params.mail_root, strerror(errno));
		return -1;
	}
	d->svc = ctx;
	d->params = &params;
	d->engine = (struct pop3_server_config){
		.hostname = params.myhostname,
		.sasl_mechs = params.auth_mechanisms,
		.max_errors = (int)params.pop3d_error_limit,
		.stls = d->tls != NULL && !d->implicit_tls,
		.tls_active = d->implicit_tls,
		.plaintext_auth = params.pop3d_auth_plaintext,
	};
	d->sasl = ipc_async_new(ctx->base, POP3D_SASL_SOCKET, AUTH_SASL_PROTOCOL, AUTH_SASL_TIMEOUT_S);
	d->fileops = fileop_pool_new(ctx->base, POP3D_FILEOP_THREADS);
	return 0;
}

static void pop3d_accept(struct service_ctx *ctx, int fd, int index)
{
	(void)ctx;
	(void)index;
	pop3d_conn_accept(&pop3d, fd);
}

static void pop3d_stop(struct service_ctx *ctx)
{
	(void)ctx;
	pop3d_conn_shutdown_all(&pop3d);
}

int main(int argc, char **argv)
{
	static const struct service_desc desc = {
		.name = "yubin/pop3d",
		.conf_table = &params_table,
		.conf = &params,
		.load_conf = params_load_service,
		.pre_jail = pop3d_pre_jail,
		.post_jail = pop3d_post_jail,
		.on_accept = pop3d_accept,
		.on_stop = pop3d_stop,
	};
	int rc = service_main(argc, argv, &desc);

	fileop_pool_free(&pop3d.fileops);
	ipc_async_free(&pop3d.sasl);
	tls_server_free(&pop3d.tls);
	if (pop3d.root_fd >= 0)
		close(pop3d.root_fd);
	return rc;
}
