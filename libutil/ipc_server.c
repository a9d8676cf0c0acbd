/* ipc_server.c - the event-driven server side of the internal protocols. */
#include "config.h"
#include "ipc_server.h"
#include "log.h"
#include "mem.h"
#include "sock.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PEER_FDS_MAX 8

struct ipc_server {
	struct event_base *base;
	char *protocol;
	size_t max_frame;
	int idle_timeout_s;
	ipc_handler_fn *handler;
	ipc_close_fn *on_close;
	void *ctx;
	struct ipc_peer *peers;
	int peer_count;
};

struct ipc_peer {
	struct ipc_server *server;
	int fd;
	int refs;
	bool closed;
	bool greeted;
	struct event *read_ev;
	struct event *write_ev;
	struct buf in;
	struct buf out;
	/* Passed descriptors in arrival order. A request that carries one says
	 * so (field "fd"); such requests take them in order, others none. */
	int fds[PEER_FDS_MAX];
	int fd_count;
	int frame_fds;          /* descriptors the request in hand may take */
	void *data;             /* the server's own (ipc_peer_set_data) */
	struct ipc_peer *prev, *next;
};

static void peer_release(struct ipc_peer *p)
{
	for (int i = 0; i < p->fd_count; i++)
		close(p->fds[i]);
	buf_free(&p->in);
	buf_free(&p->out);
	free(p);
}

void ipc_peer_ref(struct ipc_peer *peer)
{
	peer->refs++;
}

void ipc_peer_unref(struct ipc_peer **peer)
{
	struct ipc_peer *p = *peer;

	*peer = NULL;
	if (p != NULL && --p->refs == 0)
		peer_release(p);
}

bool ipc_peer_closed(const struct ipc_peer *peer)
{
	return peer->closed;
}

void ipc_peer_close(struct ipc_peer *p)
{
	struct ipc_server *s = p->server;

	if (p->closed)
		return;
	p->closed = true;
	event_free(p->read_ev);
	event_free(p->write_ev);
	close(p->fd);
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		s->peers = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	s->peer_count--;
	if (s->on_close != NULL)
		s->on_close(p, s->ctx);
	ipc_peer_unref(&p);
}

void ipc_peer_set_data(struct ipc_peer *peer, void *data)
{
	peer->data = data;
}

void *ipc_peer_data(const struct ipc_peer *peer)
{
	return peer->data;
}

void ipc_server_set_close(struct ipc_server *server, ipc_close_fn *fn)
{
	server->on_close = fn;
}

/* drop_fd - remove fds[0]. */
static void drop_fd(struct ipc_peer *p)
{
	memmove(p->fds, p->fds + 1, (size_t)(p->fd_count - 1) * sizeof p->fds[0]);
	p->fd_count--;
}

int ipc_peer_take_fd(struct ipc_peer *p)
{
	int fd;

	if (p->frame_fds == 0 || p->fd_count == 0)
		return -1;
	fd = p->fds[0];
	drop_fd(p);
	p->frame_fds--;
	return fd;
}

bool ipc_peer_uid(const struct ipc_peer *peer, uint32_t *uid_r)
{
	uid_t uid;

	if (peer->closed || sock_peer_cred(peer->fd, &uid, NULL) < 0)
		return false;
	*uid_r = (uint32_t)uid;
	return true;
}

void ipc_reply_begin(struct buf *out, int64_t req)
{
	ipc_begin(out);
	ipc_put_int(out, "req", req);
}

static void flush_out(struct ipc_peer *p)
{
	while (p->out.len > 0) {
		ssize_t n = send(p->fd, p->out.data, p->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				event_add(p->write_ev, NULL);
				return;
			}
			ipc_peer_close(p);
			return;
		}
		buf_consume(&p->out, (size_t)n);
	}
	event_del(p->write_ev);
}

bool ipc_peer_send(struct ipc_peer *p, struct buf *frame)
{
	ipc_end(frame);
	if (p->closed)
		return false;
	buf_append(&p->out, frame->data, frame->len);
	flush_out(p);
	return !p->closed;
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	flush_out(arg);
}

/* send_hello_reply - the answer to the handshake (no request id). */
static void send_hello_reply(struct ipc_peer *p, const char *error)
{
	struct buf out = BUF_INIT;

	ipc_begin(&out);
	ipc_put_str(&out, "status", error == NULL ? "ok" : "error");
	if (error != NULL)
		ipc_put_str(&out, "reason", error);
	else
		ipc_put_int(&out, "version", IPC_VERSION);
	ipc_peer_send(p, &out);
	buf_free(&out);
}

/* take_fd_flag - remove the "fd" field (the request carries a descriptor). */
static int take_fd_flag(struct ipc_msg *msg)
{
	for (size_t i = 0; i < msg->count; i++) {
		if (strcmp(msg->fields[i].name, "fd") == 0 && msg->fields[i].type == IPC_INT) {
			memmove(&msg->fields[i], &msg->fields[i + 1], (msg->count - i - 1) * sizeof msg->fields[0]);
			msg->count--;
			return 1;
		}
	}
	return 0;
}

/* take_req - remove the "req" field; -1 if it is missing or not an int. */
static int take_req(struct ipc_msg *msg, int64_t *req_r)
{
	for (size_t i = 0; i < msg->count; i++) {
		if (strcmp(msg->fields[i].name, "req") != 0)
			continue;
		if (msg->fields[i].type != IPC_INT)
			return -1;
		*req_r = msg->fields[i].num;
		memmove(&msg->fields[i], &msg->fields[i + 1], (msg->count - i - 1) * sizeof msg->fields[0]);
		msg->count--;
		return 0;
	}
	return -1;
}

/* handle_frames - every complete frame in p->in. */
static void handle_frames(struct ipc_peer *p)
{
	struct ipc_server *s = p->server;
	size_t frame_len;
	int more;

	ipc_peer_ref(p);
	while (!p->closed &&
	       (more = ipc_frame_length(p->in.data, p->in.len, s->max_frame, &frame_len)) != 0) {
		struct ipc_msg msg;
		const char *error;
		int64_t req;

		if (more < 0) {
			log_warn("%s: request larger than %zu bytes; closing", s->protocol, s->max_frame);
			ipc_peer_close(p);
			break;
		}
		if (ipc_decode(p->in.data + 4, frame_len - 4, &msg, &error) < 0) {
			log_warn("%s: malformed request: %s; closing", s->protocol, error);
			ipc_peer_close(p);
			break;
		}
		buf_consume(&p->in, frame_len);
		if (!p->greeted) {
			if (ipc_hello_check(&msg, s->protocol, &error) < 0) {
				log_warn("%s: handshake refused: %s", s->protocol, error);
				send_hello_reply(p, error);
				ipc_peer_close(p);
			} else {
				p->greeted = true;
				send_hello_reply(p, NULL);
			}
		} else if (take_req(&msg, &req) < 0) {
			log_warn("%s: request without an id; closing", s->protocol);
			ipc_peer_close(p);
		} else {
			p->frame_fds = take_fd_flag(&msg);
			s->handler(p, req, &msg, s->ctx);
			/* A descriptor the handler did not take goes. */
			if (p->frame_fds > 0 && p->fd_count > 0) {
				close(p->fds[0]);
				drop_fd(p);
			}
			p->frame_fds = 0;
		}
		ipc_msg_free(&msg);
	}
	ipc_peer_unref(&p);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct ipc_peer *p = arg;
	uint8_t chunk[16384];
	union {
		char buf[CMSG_SPACE(sizeof(int) * PEER_FDS_MAX)];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = chunk, .iov_len = sizeof chunk };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			    .msg_controllen = sizeof control.buf };
	ssize_t n;

	if (what & EV_TIMEOUT) {
		log_debug("%s: idle peer dropped", p->server->protocol);
		ipc_peer_close(p);
		return;
	}
	n = recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); n >= 0 && c != NULL; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		for (size_t i = 0; i < count; i++) {
			int passed;

			memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof passed);
			if (p->fd_count < PEER_FDS_MAX)
				p->fds[p->fd_count++] = passed;
			else
				close(passed); /* undeclared descriptors piling up */
		}
	}
	if (n <= 0 || (m.msg_flags & MSG_CTRUNC)) {
		ipc_peer_close(p);
		return;
	}
	buf_append(&p->in, chunk, (size_t)n);
	handle_frames(p);
}

struct ipc_server *ipc_server_new(struct event_base *base, const char *protocol, size_t max_frame,
				  int idle_timeout_s, ipc_handler_fn *handler, void *ctx)
{
	struct ipc_server *s = xnew(struct ipc_server);

	s->base = base;
	s->protocol = xstrdup(protocol);
	s->max_frame = max_frame;
	s->idle_timeout_s = idle_timeout_s;
	s->handler = handler;
	s->ctx = ctx;
	return s;
}

void ipc_server_accept(struct ipc_server *s, int fd)
{
	struct ipc_peer *p = xnew(struct ipc_peer);
	struct timeval tv = { .tv_sec = s->idle_timeout_s };

	p->server = s;
	p->fd = fd;
	p->refs = 1;
	sock_set_nonblock(fd, 1);
	p->read_ev = event_new(s->base, fd, EV_READ | EV_PERSIST, on_read, p);
	p->write_ev = event_new(s->base, fd, EV_WRITE | EV_PERSIST, on_write, p);
	event_add(p->read_ev, s->idle_timeout_s > 0 ? &tv : NULL);
	p->next = s->peers;
	if (s->peers != NULL)
		s->peers->prev = p;
	s->peers = p;
	s->peer_count++;
}

int ipc_server_peers(const struct ipc_server *s)
{
	return s->peer_count;
}

void ipc_server_free(struct ipc_server **server)
{
	struct ipc_server *s = *server;

	if (s == NULL)
		return;
	while (s->peers != NULL)
		ipc_peer_close(s->peers);
	free(s->protocol);
	free(s);
	*server = NULL;
}
