/* sock.h - sockets: inet and UNIX listeners, UNIX connect with a
 * deadline, peer credentials, and flag helpers. All fds are close-on-exec. */
#ifndef YB_SOCK_H
#define YB_SOCK_H

#include <stddef.h>
#include <sys/types.h>

/* sock_listen_inet - listen on host:port (host NULL: every IPv4 and IPv6
 * address, one socket each). Appends up to 2 fds to fds_r; returns how
 * many, or -1 with a new error string. */
int sock_listen_inet(const char *host, int port, int backlog, int fds_r[2], char **error_r);

/* sock_listen_unix - bind a stream socket at path (a stale socket there is
 * replaced) with the given mode; -1 with a new error string. */
int sock_listen_unix(const char *path, int mode, int backlog, char **error_r);

/* sock_connect_unix - connect to path, waiting at most timeout_ms. */
int sock_connect_unix(const char *path, int timeout_ms, char **error_r);

/* sock_peer_addr - the numeric address of a TCP peer (IPv4 or IPv6) into
 * out, or "unknown". */
void sock_peer_addr(int fd, char *out, size_t size);

/* sock_peer_cred - uid and pid of a UNIX-socket peer. */
int sock_peer_cred(int fd, uid_t *uid_r, pid_t *pid_r);

int sock_set_nonblock(int fd, int on);
int fd_set_cloexec(int fd, int on);

/* fd_read_full / fd_write_full - whole buffers with a deadline in ms;
 * -1 with errno (ETIMEDOUT on timeout, 0 bytes at EOF gives ECONNRESET). */
int fd_write_full(int fd, const void *data, size_t len, int timeout_ms);
int fd_read_full(int fd, void *data, size_t len, int timeout_ms);

#endif
