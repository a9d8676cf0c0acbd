/* master_log.c - the log channel: workers write one datagram per line to
 * their fd 2; master tags each with the sender's program name and pid
 * (from the kernel's SCM_CREDENTIALS, not from the text) and writes it to
 * its own sink (syslog, log_file, or stderr in the foreground). */
#include "config.h"
#include "master.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/sock.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOG_DATAGRAM_MAX 4096

static void on_log(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;

	(void)what;
	for (int i = 0; i < 64; i++) {
		char data[LOG_DATAGRAM_MAX];
		char text[LOG_DATAGRAM_MAX];
		char tag[128];
		union {
			char buf[CMSG_SPACE(sizeof(struct ucred))];
			struct cmsghdr align;
		} control;
		struct iovec iov = { .iov_base = data, .iov_len = sizeof data - 1 };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
				      .msg_controllen = sizeof control.buf };
		pid_t pid = 0;
		enum log_level level = LOG_LEVEL_WARN;
		const char *body = data;
		ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);

		if (n < 0)
			return;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
				struct ucred cred;

				memcpy(&cred, CMSG_DATA(c), sizeof cred);
				pid = cred.pid;
			}
		}
		/* Our own lines start "<level>"; anything else a library wrote
		 * to stderr is passed on as a warning. */
		if (n >= 3 && data[0] == '<' && data[1] >= '0' && data[1] <= '4' && data[2] == '>') {
			level = (enum log_level)(data[1] - '0');
			body = data + 3;
			n -= 3;
		}
		while (n > 0 && (body[n - 1] == '\n' || body[n - 1] == '\r'))
			n--;
		struct master_worker *w = master_find_worker(m, pid);

		snprintf(tag, sizeof tag, "yubin/%s[%ld]", w != NULL ? w->program_name : "unknown", (long)pid);
		/* Workers sanitise what their clients send; here a line only has
		 * to stay one line (escaping again would double every backslash). */
		for (ssize_t k = 0; k < n; k++)
			text[k] = (unsigned char)body[k] < 0x20 || body[k] == 0x7f ? ' ' : body[k];
		text[n] = '\0';
		log_write_line(level, tag, text);
	}
}

int master_log_open(struct master *m, char **error_r)
{
	int pair[2];
	int one = 1;

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair) < 0) {
		*error_r = xasprintf("log channel: %s", strerror(errno));
		return -1;
	}
	if (setsockopt(pair[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0) {
		*error_r = xasprintf("log channel: SO_PASSCRED: %s", strerror(errno));
		close(pair[0]);
		close(pair[1]);
		return -1;
	}
	m->log_fd = pair[0];
	m->log_child_fd = pair[1];
	sock_set_nonblock(m->log_fd, 1);
	m->log_ev = event_new(m->base, m->log_fd, EV_READ | EV_PERSIST, on_log, m);
	event_add(m->log_ev, NULL);
	return 0;
}

void master_log_configure(struct master *m)
{
	const struct yb_params *p = &m->conf.params;

	log_set_verbose(p->debug_logging);
	if (m->foreground) {
		log_init("yubin/master", LOG_SINK_STDERR);
		return;
	}
	if (p->log_file[0] != '\0') {
		log_init("yubin/master", LOG_SINK_STDERR);
		if (log_set_file(p->log_file) < 0)
			log_warn("log_file %s: %s; logging to syslog", p->log_file, strerror(errno));
		else
			return;
	}
	log_set_syslog_facility(p->syslog_facility);
	log_init("yubin/master", LOG_SINK_SYSLOG);
}
