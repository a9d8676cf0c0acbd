/* ipc_client.h - a blocking IPC client with a deadline on every step, for
 * command-line tools and simple callers (daemons in an event loop use
 * ipc_event.h instead). */
#ifndef YB_IPC_CLIENT_H
#define YB_IPC_CLIENT_H

#include "ipc.h"

struct ipc_conn;

/* ipc_conn_open - connect to a UNIX socket and complete the handshake for
 * protocol. NULL and a new *error_r on failure. */
struct ipc_conn *ipc_conn_open(const char *path, const char *protocol, int timeout_ms, char **error_r);

/* ipc_conn_send - send a frame built with ipc_begin..ipc_end. */
int ipc_conn_send(struct ipc_conn *conn, const struct buf *frame, char **error_r);

/* ipc_conn_recv - read one message (at most max_frame bytes). */
int ipc_conn_recv(struct ipc_conn *conn, struct ipc_msg *msg, char **error_r);

void ipc_conn_close(struct ipc_conn **conn);

#endif
