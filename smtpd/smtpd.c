/* smtpd.c - the SMTP server: accepts mail for hosted domains on the
 * listeners master hands it, checks each recipient through auth, writes
 * the message into the queue and answers 250 only after qmgr committed
 * it. Runs unprivileged, chrooted in the queue directory; the TLS
 * certificates are loaded before. The service name chooses what it
 * serves (enum smtpd_mode): MX on 25, submission on 587 (STARTTLS, then
 * AUTH), smtps on 465 (implicit TLS), or pickup for the sendmail command. */
#include "config.h"
#include "smtpd.h"
#include "../libmail/auth_proto.h"
#include "../libmail/sasl_mechs.h"
#include "../libutil/fileop_pool.h"
#include "../libutil/ipc_async.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/service.h"
#include "../libutil/tls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct yb_params params;
static struct smtpd smtpd;

static enum smtpd_mode mode_of(const char *service)
{
	if (strcmp(service, SMTPD_PICKUP_SERVICE) == 0)
		return SMTPD_PICKUP;
	if (strcmp(service, SMTPD_SUBMISSION_SERVICE) == 0)
		return SMTPD_SUBMISSION;
	if (strcmp(service, SMTPD_SMTPS_SERVICE) == 0)
		return SMTPD_SMTPS;
	return SMTPD_MX;
}

/* load_tls - the certificates, as root, before the jail: a missing or
 * unreadable file, or a key that does not match, stops start-up. */
static int load_tls(struct service_ctx *ctx, char **error_r)
{
	struct smtpd *d = &smtpd;

	if (d->mode == SMTPD_PICKUP)
		return 0;
	if (params.tls_cert_file[0] == '\0') {
		if (d->mode == SMTPD_MX)
			return 0; /* no STARTTLS offered */
		*error_r = xasprintf("service %s needs TLS: set tls_cert_file and tls_key_file in yubin.conf "
				     "(mailctl tls selfsigned HOSTNAME makes a test certificate)",
				     ctx->service_name);
		return -1;
	}
	d->tls = tls_server_new(params.tls_cert_file, params.tls_key_file, params.tls_sni_map, error_r);
	return d->tls != NULL ? 0 : -1;
}

/* choose_mechs - what AUTH offers before and after TLS. */
static int choose_mechs(char **error_r)
{
	struct smtpd *d = &smtpd;
	bool offered = d->mode == SMTPD_SUBMISSION || d->mode == SMTPD_SMTPS ||
		       (d->mode == SMTPD_MX && params.smtpd_auth_on_mx);
	struct buf b = BUF_INIT;
	const char *reason;

	if (!offered)
		return 0;
	if (sasl_mechs_check(params.auth_mechanisms, &reason) < 0) {
		*error_r = xasprintf("auth_mechanisms = %s: %s", params.auth_mechanisms, reason);
		return -1;
	}
	sasl_mechs_offered(params.auth_mechanisms, true, &b);
	d->mechs_tls = b.len > 0 ? xstrdup(buf_cstr(&b)) : NULL;
	if (params.smtpd_auth_plaintext || d->tls == NULL) {
		/* Allowed in clear by the operator; or, with no TLS at all,
		 * only what keeps the password off the wire. */
		sasl_mechs_offered(params.auth_mechanisms, params.smtpd_auth_plaintext, &b);
		d->mechs_clear = b.len > 0 ? xstrdup(buf_cstr(&b)) : NULL;
	}
	buf_free(&b);
	return 0;
}

static int smtpd_pre_jail(struct service_ctx *ctx, char **error_r)
{
	smtpd.mode = mode_of(ctx->service_name);
	if (load_tls(ctx, error_r) < 0 || choose_mechs(error_r) < 0)
		return -1;
	/* Relative paths from here on: the queue directory is the working
	 * directory whether or not we are chrooted into it. */
	if (chdir(params.queue_directory) < 0) {
		*error_r = xasprintf("chdir %s: %s", params.queue_directory, strerror(errno));
		return -1;
	}
	if (smtpd.mode == SMTPD_PICKUP)
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
	d->engine = (struct smtp_server_config){
		.hostname = params.myhostname,
		.max_message_size = params.message_size_limit,
		.max_recipients = (int)params.smtpd_recipient_limit,
		.max_errors = (int)params.smtpd_error_limit,
		.max_received = (int)params.hopcount_limit,
		.smtputf8 = true,
		.starttls = d->tls != NULL && d->mode != SMTPD_SMTPS,
		.auth_required = d->mode == SMTPD_SUBMISSION || d->mode == SMTPD_SMTPS,
	};
	d->auth = ipc_async_new(ctx->base, SMTPD_AUTH_SOCKET, AUTH_PROTOCOL, 30);
	if (d->mechs_clear != NULL || d->mechs_tls != NULL)
		d->sasl = ipc_async_new(ctx->base, SMTPD_SASL_SOCKET, AUTH_SASL_PROTOCOL, AUTH_SASL_TIMEOUT_S);
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

static void smtpd_free(void)
{
	tls_server_free(&smtpd.tls);
	free(smtpd.mechs_clear);
	free(smtpd.mechs_tls);
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
	int rc = service_main(argc, argv, &desc);

	smtpd_free();
	return rc;
}
