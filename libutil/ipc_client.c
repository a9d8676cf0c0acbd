/* ipc_client.c - blocking request/reply over the ipc.h encoding. */
#include "config.h"
#include "ipc_client.h"
#include "mem.h"
#include "sock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ipc_conn {
	int fd;
	int timeout_ms;
	size_t max_frame;
};

int ipc_conn_send(struct ipc_conn *conn, const struct buf *frame, char **error_r)
{
	if (fd_write_full(conn->fd, frame->data, frame->len, conn->timeout_ms) < 0) {
		*error_r = xasprintf("send: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int ipc_conn_recv(struct ipc_conn *conn, struct ipc_msg *msg, char **error_r)
{
	uint8_t header[4];
	size_t frame_len;
	uint8_t *payload;
	const char *error;
	int rc;

	if (fd_read_full(conn->fd, header, 4, conn->timeout_ms) < 0) {
		*error_r = xasprintf("receive: %s", errno == ECONNRESET ? "connection closed" : strerror(errno));
		return -1;
	}
	frame_len = ipc_header_length(header);
	if (frame_len > conn->max_frame) {
		*error_r = xstrdup("receive: reply larger than the frame limit");
		return -1;
	}
	payload = xmalloc(frame_len);
	if (fd_read_full(conn->fd, payload, frame_len, conn->timeout_ms) < 0) {
		*error_r = xasprintf("receive: %s", errno == ECONNRESET ? "truncated reply" : strerror(errno));
		free(payload);
		return -1;
	}
	rc = ipc_decode(payload, frame_len, msg, &error);
	free(payload);
	if (rc < 0)
		*error_r = xasprintf("receive: malformed reply: %s", error);
	return rc;
}

struct ipc_conn *ipc_conn_open(const char *path, const char *protocol, int timeout_ms, char **error_r)
{
	struct ipc_conn *conn;
	struct buf hello = BUF_INIT;
	struct ipc_msg reply;
	const char *status;

	int fd = sock_connect_unix(path, timeout_ms, error_r);
	if (fd < 0)
		return NULL;
	conn = xnew(struct ipc_conn);
	conn->fd = fd;
	conn->timeout_ms = timeout_ms;
	conn->max_frame = IPC_FRAME_MAX_DEFAULT;
	ipc_put_hello(&hello, protocol);
	if (ipc_conn_send(conn, &hello, error_r) < 0 || ipc_conn_recv(conn, &reply, error_r) < 0) {
		int saved = errno; /* callers tell refusals from failures by it */

		buf_free(&hello);
		ipc_conn_close(&conn);
		errno = saved;
		return NULL;
	}
	buf_free(&hello);
	status = ipc_get_str(&reply, "status");
	if (status == NULL || strcmp(status, "ok") != 0) {
		const char *reason = ipc_get_str(&reply, "reason");

		*error_r = xasprintf("handshake refused: %s", reason != NULL ? reason : "no reason given");
		ipc_msg_free(&reply);
		ipc_conn_close(&conn);
		return NULL;
	}
	ipc_msg_free(&reply);
	return conn;
}

void ipc_conn_close(struct ipc_conn **conn)
{
	if (*conn == NULL)
		return;
	close((*conn)->fd);
	free(*conn);
	*conn = NULL;
}
