/* sock.c - listeners, connections and peer credentials. */
#include "config.h"
#include "sock.h"
#include "mem.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int fd_set_cloexec(int fd, int on)
{
	int flags = fcntl(fd, F_GETFD);

	if (flags < 0)
		return -1;
	flags = on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC;
	return fcntl(fd, F_SETFD, flags);
}

int sock_set_nonblock(int fd, int on)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0)
		return -1;
	flags = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
	return fcntl(fd, F_SETFL, flags);
}

/* listen_one - socket, options, bind and listen for one address. */
static int listen_one(const struct sockaddr *sa, socklen_t salen, int backlog, char **error_r,
		      const char *what)
{
	int one = 1;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		*error_r = xasprintf("%s: socket: %s", what, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	/* An IPv6 socket listens on IPv6 only, so "*" can bind both families. */
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, sa, salen) < 0 || listen(fd, backlog) < 0) {
		bool low_port = errno == EACCES;

		*error_r = xasprintf("%s: %s%s", what, strerror(errno),
				     low_port ? " (ports below 1024 need root)" : "");
		close(fd);
		return -1;
	}
	return fd;
}

int sock_listen_inet(const char *host, int port, int backlog, int fds_r[2], char **error_r)
{
	char what[300];

	if (host == NULL) {
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
		struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port) };
		char *error6 = NULL;

		sin.sin_addr.s_addr = htonl(INADDR_ANY);
		sin6.sin6_addr = in6addr_any;
		snprintf(what, sizeof what, "bind *:%d", port);
		fds_r[0] = listen_one((struct sockaddr *)&sin, sizeof sin, backlog, error_r, what);
		if (fds_r[0] < 0)
			return -1;
		fds_r[1] = listen_one((struct sockaddr *)&sin6, sizeof sin6, backlog, &error6, what);
		if (fds_r[1] < 0) {
			/* A host without IPv6 still serves IPv4. */
			if (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL) {
				log_warn("%s (IPv4 only)", error6);
				free(error6);
				return 1;
			}
			*error_r = error6;
			close(fds_r[0]);
			return -1;
		}
		return 2;
	}

	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV | AI_PASSIVE };
	struct addrinfo *res;
	char portstr[16];
	int rc;

	snprintf(portstr, sizeof portstr, "%d", port);
	snprintf(what, sizeof what, "bind %s:%d", host, port);
	rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0) {
		*error_r = xasprintf("%s: %s", what, gai_strerror(rc));
		return -1;
	}
	fds_r[0] = listen_one(res->ai_addr, res->ai_addrlen, backlog, error_r, what);
	freeaddrinfo(res);
	return fds_r[0] < 0 ? -1 : 1;
}

/* fill_sun - a sockaddr_un for path, or -1 if it does not fit. */
static int fill_sun(struct sockaddr_un *sun, const char *path)
{
	memset(sun, 0, sizeof *sun);
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun->sun_path)
		return -1;
	memcpy(sun->sun_path, path, strlen(path) + 1);
	return 0;
}

int sock_listen_unix(const char *path, int mode, int backlog, char **error_r)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd;

	if (fill_sun(&sun, path) < 0) {
		*error_r = xasprintf("%s: socket path too long", path);
		return -1;
	}
	/* Replace a stale socket, never any other kind of file. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			*error_r = xasprintf("%s: exists and is not a socket", path);
			return -1;
		}
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = xasprintf("%s: socket: %s", path, strerror(errno));
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 || chmod(path, (mode_t)mode) < 0 ||
	    listen(fd, backlog) < 0) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int sock_connect_unix(const char *path, int timeout_ms, char **error_r)
{
	struct sockaddr_un sun;
	int fd;

	if (fill_sun(&sun, path) < 0) {
		*error_r = xasprintf("%s: socket path too long", path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		*error_r = xasprintf("socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		if (errno == EAGAIN || errno == EINPROGRESS) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int err = 0;
			socklen_t len = sizeof err;

			if (poll(&p, 1, timeout_ms) <= 0) {
				errno = ETIMEDOUT;
			} else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
				sock_set_nonblock(fd, 0);
				return fd;
			} else {
				errno = err;
			}
		}
		*error_r = xasprintf("connect to %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	sock_set_nonblock(fd, 0);
	return fd;
}

void sock_peer_addr(int fd, char *out, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	snprintf(out, size, "unknown");
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)size);
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)size);
}

int sock_peer_cred(int fd, uid_t *uid_r, pid_t *pid_r)
{
	struct ucred cred;
	socklen_t len = sizeof cred;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -1;
	*uid_r = cred.uid;
	if (pid_r != NULL)
		*pid_r = cred.pid;
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* wait_fd - poll for events until the deadline; -1 with ETIMEDOUT. */
static int wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
		struct pollfd p = { .fd = fd, .events = events };
		int rc;

		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		rc = poll(&p, 1, (int)left);
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

int fd_write_full(int fd, const void *data, size_t len, int timeout_ms)
{
	const char *p = data;
	long long deadline = now_ms() + timeout_ms;

	while (len > 0) {
		ssize_t n;

		if (wait_fd(fd, POLLOUT, deadline) < 0)
			return -1;
		n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			if (errno == ENOTSOCK)
				n = write(fd, p, len);
			if (n < 0)
				return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fd_read_full(int fd, void *data, size_t len, int timeout_ms)
{
	char *p = data;
	long long deadline = now_ms() + timeout_ms;

	while (len > 0) {
		ssize_t n;

		if (wait_fd(fd, POLLIN, deadline) < 0)
			return -1;
		n = read(fd, p, len);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = ECONNRESET;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
