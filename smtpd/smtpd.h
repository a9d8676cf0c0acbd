/* smtpd.h - the SMTP server daemon's internal types. */
#ifndef YB_SMTPD_H
#define YB_SMTPD_H

#include "../libmail/params.h"
#include "../libmail/queue_layout.h"
#include "../libmail/smtp_server.h"

#include <dirent.h>
#include <time.h>

struct event_base;
struct fileop_pool;
struct ipc_async;
struct service_ctx;
struct tls_server;

/* What a worker serves, chosen by its master.conf service name. */
enum smtpd_mode {
	SMTPD_MX,         /* any other name (smtpd on 25): mail for hosted domains;
			   * STARTTLS when a certificate is configured, AUTH only if
			   * smtpd_auth_on_mx */
	SMTPD_SUBMISSION, /* "submission" (587): STARTTLS, AUTH before MAIL */
	SMTPD_SMTPS,      /* "smtps" (465): implicit TLS, AUTH before MAIL */
	SMTPD_PICKUP,     /* "pickup" (public/pickup): local submission from the
			   * sendmail command; the client is whoever the socket's
			   * peer credentials say; any recipient is accepted
			   * (hosted ones are still checked) */
};

/* Inside the queue directory (smtpd's working directory, chrooted or not);
 * content/ and spare/ are in libmail/queue_layout.h. */
#define SMTPD_AUTH_SOCKET "private/auth"
#define SMTPD_QMGR_SOCKET "private/qmgr"
#define SMTPD_LOCAL_SOCKET "private/local"
#define SMTPD_SASL_SOCKET "private/sasl"
/* Threads that fsync content files, so that one slow disk flush does not
 * stall the other sessions of the process; concurrent flushes also let
 * the file system combine them. */
#define SMTPD_SYNC_THREADS 4

/* Spare content files to reuse (smtpd_spare.c). */
struct smtpd_spares {
	DIR *dir;             /* QUEUE_SPARE_DIR; NULL: always create */
	struct timespec seen; /* its modification time at the last rewind */
};

struct smtpd {
	struct service_ctx *svc;
	const struct yb_params *params;
	struct smtp_server_config engine;
	struct ipc_async *auth;
	struct ipc_async *qmgr;
	struct ipc_async *local;
	struct fileop_pool *fileops;
	struct smtpd_spares spares;
	struct smtpd_conn *conns;  /* open connections (for shutdown) */
	enum smtpd_mode mode;
	struct tls_server *tls;    /* the certificates, loaded before the jail; NULL: no TLS */
	struct ipc_async *sasl;    /* auth's SASL socket */
	char *mechs_clear;         /* AUTH offer before TLS, NULL: none */
	char *mechs_tls;           /* AUTH offer over TLS, NULL: none */
};

/* The service names that select a mode. */
#define SMTPD_PICKUP_SERVICE "pickup"
#define SMTPD_SUBMISSION_SERVICE "submission"
#define SMTPD_SMTPS_SERVICE "smtps"

/* smtpd_spare.c */
void smtpd_spares_open(struct smtpd_spares *s);
/* smtpd_spare_take - rename a spare file to path and open it for writing,
 * emptied; -1 when there is none (then create path as usual). */
int smtpd_spare_take(struct smtpd_spares *s, const char *path);

/* smtpd_session.c */
void smtpd_conn_accept(struct smtpd *d, int fd);
void smtpd_conn_shutdown_all(struct smtpd *d);
/* smtpd_users_load - before the jail, in pickup mode: remember the
 * account names (the jail has no /etc/passwd) for naming local clients. */
void smtpd_users_load(void);

#endif
