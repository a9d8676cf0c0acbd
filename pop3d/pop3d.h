/* pop3d.h - the POP3 server daemon's internal types. */
#ifndef YB_POP3D_H
#define YB_POP3D_H

#include <stdbool.h>

#include "../libmail/params.h"
#include "../libmail/pop3_server.h"

struct fileop_pool;
struct ipc_async;
struct service_ctx;
struct tls_server;
struct pop3d_conn;

/* The service name that serves implicit TLS (995); any other name
 * (pop3, 110) offers STLS. */
#define POP3D_POP3S_SERVICE "pop3s"
/* Threads that remove deleted messages (an unlink may wait for the disk). */
#define POP3D_FILEOP_THREADS 4
/* auth's SASL socket inside the jail (master.conf: mailbox/sasl), relative
 * to mail_root, pop3d's working directory whether chrooted or not. */
#define POP3D_SASL_SOCKET ".yubin/sasl"

struct pop3d {
	struct service_ctx *svc;
	const struct yb_params *params;
	struct pop3_server_config engine;
	struct tls_server *tls;   /* loaded before the jail; NULL: no TLS */
	bool implicit_tls;        /* pop3s */
	struct ipc_async *sasl;
	int root_fd;              /* mail_root */
	struct fileop_pool *fileops; /* removes the messages deleted at QUIT */
	struct pop3d_conn *conns; /* open connections (for shutdown) */
};

/* pop3d_session.c */
void pop3d_conn_accept(struct pop3d *d, int fd);
void pop3d_conn_shutdown_all(struct pop3d *d);

#endif
