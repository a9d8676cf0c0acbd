/* ipc_async.c - asynchronous requests over the internal encoding. */
#include "config.h"
#include "ipc_async.h"
#include "log.h"
#include "mem.h"
#include "sock.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A descriptor to pass with the frame that starts at stream offset at. */
struct out_fd {
	uint64_t at;
	int fd;                   /* our duplicate; closed once it is sent */
	struct out_fd *next;
};

struct pending {
	int64_t req;
	ipc_reply_fn *fn;
	void *arg;
	time_t deadline;
	struct pending *next;
};

struct ipc_async {
	struct event_base *base;
	char *path;
	char *protocol;
	int timeout_s;
	int fd;
	bool greeted;
	int64_t next_req;
	struct event *read_ev;
	struct event *write_ev;
	struct event *timer;      /* the oldest request's deadline */
	struct event *fail_ev;    /* runs failed requests' callbacks, at once */
	struct buf in;
	struct buf out;           /* frames not yet written */
	uint64_t out_start;       /* stream offset of out.data[0] */
	struct out_fd *fds, **fds_tail; /* descriptors to pass, in stream order */
	struct pending *head, *tail;
	struct pending *failed;   /* callbacks to run from the timer */
	char *failed_error;
};

static void schedule_timer(struct ipc_async *c, int seconds)
{
	struct timeval tv = { .tv_sec = seconds };

	event_add(c->timer, &tv);
}

/* disconnect - close and move every pending request to the failed list,
 * whose callbacks run from the event loop, never from the caller's stack. */
static void disconnect(struct ipc_async *c, const char *error)
{
	if (c->fd >= 0) {
		event_free(c->read_ev);
		event_free(c->write_ev);
		c->read_ev = c->write_ev = NULL;
		close(c->fd);
		c->fd = -1;
	}
	c->greeted = false;
	buf_reset(&c->in);
	buf_reset(&c->out);
	c->out_start = 0;
	while (c->fds != NULL) {
		struct out_fd *f = c->fds;

		c->fds = f->next;
		close(f->fd);
		free(f);
	}
	c->fds_tail = &c->fds;
	if (c->head != NULL) {
		struct pending **end = &c->failed;

		while (*end != NULL)
			end = &(*end)->next;
		*end = c->head;
		c->head = c->tail = NULL;
		free(c->failed_error);
		c->failed_error = xstrdup(error);
		/* Not the deadline timer: a new request re-arms that one with the
		 * full timeout, which would hold these callbacks back for minutes. */
		event_active(c->fail_ev, EV_TIMEOUT, 0);
	}
}

/* send_with_fd - send len bytes starting with the frame that carries fd:
 * the descriptor travels with the first byte sent. */
static ssize_t send_with_fd(struct ipc_async *c, size_t len, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = c->out.data, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			    .msg_controllen = sizeof control.buf };
	struct cmsghdr *cm;

	memset(&control, 0, sizeof control); /* padding goes to the kernel too */
	cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof fd);
	return sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* send_some - one send of what is queued, stopping where the next
 * descriptor's frame begins (that frame goes with its own sendmsg). */
static ssize_t send_some(struct ipc_async *c)
{
	struct out_fd *f = c->fds;
	size_t len = c->out.len;
	ssize_t n;

	if (f == NULL || f->at > c->out_start) {
		if (f != NULL)
			len = (size_t)(f->at - c->out_start);
		return send(c->fd, c->out.data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	if (f->next != NULL)
		len = (size_t)(f->next->at - c->out_start);
	n = send_with_fd(c, len, f->fd);
	if (n > 0) {
		c->fds = f->next;
		if (c->fds == NULL)
			c->fds_tail = &c->fds;
		close(f->fd);
		free(f);
	}
	return n;
}

/* flush_out - write what the socket takes; the rest waits for on_write.
 * A full socket is back-pressure, never a reason to block the loop. */
static void flush_out(struct ipc_async *c)
{
	while (c->out.len > 0) {
		ssize_t n = send_some(c);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				event_add(c->write_ev, NULL);
				return;
			}
			disconnect(c, strerror(errno));
			return;
		}
		buf_consume(&c->out, (size_t)n);
		c->out_start += (uint64_t)n;
	}
	event_del(c->write_ev);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	flush_out(arg);
}

/* take_reply - match one decoded reply to its request. */
static void take_reply(struct ipc_async *c, struct ipc_msg *msg)
{
	struct pending **pp, *p;
	int64_t req = -1;

	for (size_t i = 0; i < msg->count; i++) {
		if (strcmp(msg->fields[i].name, "req") == 0 && msg->fields[i].type == IPC_INT) {
			req = msg->fields[i].num;
			memmove(&msg->fields[i], &msg->fields[i + 1], (msg->count - i - 1) * sizeof msg->fields[0]);
			msg->count--;
			break;
		}
	}
	for (pp = &c->head; *pp != NULL && (*pp)->req != req; pp = &(*pp)->next)
		;
	if (*pp == NULL) {
		log_warn("%s: reply to unknown request %lld; reconnecting", c->protocol, (long long)req);
		disconnect(c, "protocol error");
		return;
	}
	p = *pp;
	*pp = p->next;
	if (c->tail == p) {
		c->tail = NULL;
		for (struct pending *q = c->head; q != NULL; q = q->next)
			c->tail = q;
	}
	p->fn(msg, NULL, p->arg);
	free(p);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct ipc_async *c = arg;
	uint8_t chunk[16384];
	ssize_t n = recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
	size_t frame_len;
	int more;

	(void)what;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		disconnect(c, n == 0 ? "connection closed by the server" : strerror(errno));
		return;
	}
	buf_append(&c->in, chunk, (size_t)n);
	while (c->fd >= 0 && (more = ipc_frame_length(c->in.data, c->in.len, IPC_FRAME_MAX_DEFAULT, &frame_len)) != 0) {
		struct ipc_msg msg;
		const char *error;

		if (more < 0 || ipc_decode(c->in.data + 4, frame_len - 4, &msg, &error) < 0) {
			disconnect(c, "malformed reply");
			return;
		}
		buf_consume(&c->in, frame_len);
		if (!c->greeted) {
			const char *status = ipc_get_str(&msg, "status");

			if (status == NULL || strcmp(status, "ok") != 0) {
				const char *reason = ipc_get_str(&msg, "reason");
				char *text = xasprintf("handshake refused: %s", reason != NULL ? reason : "?");

				ipc_msg_free(&msg);
				disconnect(c, text);
				free(text);
				return;
			}
			c->greeted = true;
		} else {
			take_reply(c, &msg);
		}
		ipc_msg_free(&msg);
	}
}

/* connect_server - open the socket and queue the handshake. */
static int connect_server(struct ipc_async *c, char **error_r)
{
	struct buf hello = BUF_INIT;

	c->fd = sock_connect_unix(c->path, 1000, error_r);
	if (c->fd < 0)
		return -1;
	sock_set_nonblock(c->fd, 1);
	c->read_ev = event_new(c->base, c->fd, EV_READ | EV_PERSIST, on_read, c);
	c->write_ev = event_new(c->base, c->fd, EV_WRITE | EV_PERSIST, on_write, c);
	event_add(c->read_ev, NULL);
	ipc_put_hello(&hello, c->protocol);
	buf_append(&c->out, hello.data, hello.len);
	buf_free(&hello);
	return 0;
}

/* run_failed - the callbacks of requests that failed, each exactly once. */
static void run_failed(struct ipc_async *c)
{
	while (c->failed != NULL) {
		struct pending *p = c->failed;

		c->failed = p->next;
		p->fn(NULL, c->failed_error, p->arg);
		free(p);
	}
}

static void on_failed(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	run_failed(arg);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct ipc_async *c = arg;
	time_t now = time(NULL);

	(void)fd;
	(void)what;
	if (c->head != NULL && c->head->deadline <= now) {
		log_warn("%s: no reply within %ds; reconnecting", c->protocol, c->timeout_s);
		disconnect(c, "timed out");
		return;
	}
	if (c->head != NULL)
		schedule_timer(c, (int)(c->head->deadline - now));
}

struct ipc_async *ipc_async_new(struct event_base *base, const char *path, const char *protocol, int timeout_s)
{
	struct ipc_async *c = xnew(struct ipc_async);

	c->base = base;
	c->path = xstrdup(path);
	c->protocol = xstrdup(protocol);
	c->timeout_s = timeout_s;
	c->fd = -1;
	c->next_req = 1;
	c->fds_tail = &c->fds;
	c->timer = evtimer_new(base, on_timer, c);
	c->fail_ev = event_new(base, -1, 0, on_failed, c);
	return c;
}

void ipc_async_request(struct ipc_async *c, struct buf *frame, int pass_fd, ipc_reply_fn *fn, void *arg)
{
	struct pending *p = xnew(struct pending);
	char *error = NULL;

	p->req = c->next_req++;
	p->fn = fn;
	p->arg = arg;
	p->deadline = time(NULL) + c->timeout_s;
	ipc_put_int(frame, "req", p->req);
	if (pass_fd >= 0)
		ipc_put_int(frame, "fd", 1); /* see ipc_peer_take_fd */
	ipc_end(frame);
	if (c->tail != NULL)
		c->tail->next = p;
	else
		c->head = p;
	c->tail = p;
	if (c->fd < 0 && connect_server(c, &error) < 0) {
		disconnect(c, error);
		free(error);
		return;
	}
	if (pass_fd >= 0) {
		/* Our own copy: the caller may close its descriptor at once,
		 * while the frame waits for room in the socket. */
		struct out_fd *f = xnew(struct out_fd);

		f->fd = fcntl(pass_fd, F_DUPFD_CLOEXEC, 0);
		if (f->fd < 0) {
			free(f);
			disconnect(c, strerror(errno));
			return;
		}
		f->at = c->out_start + c->out.len;
		*c->fds_tail = f;
		c->fds_tail = &f->next;
	}
	buf_append(&c->out, frame->data, frame->len);
	flush_out(c);
	if (c->head == p)
		schedule_timer(c, c->timeout_s);
}

int ipc_async_pending(const struct ipc_async *c)
{
	int n = 0;

	for (struct pending *p = c->head; p != NULL; p = p->next)
		n++;
	return n;
}

void ipc_async_free(struct ipc_async **client)
{
	struct ipc_async *c = *client;

	if (c == NULL)
		return;
	disconnect(c, "client shut down");
	run_failed(c);
	event_free(c->timer);
	event_free(c->fail_ev);
	buf_free(&c->in);
	buf_free(&c->out);
	free(c->failed_error);
	free(c->path);
	free(c->protocol);
	free(c);
	*client = NULL;
}
