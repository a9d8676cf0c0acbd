/* master_control.c - the control socket mailctl talks to (see PROTOCOL.md).
 * Only root, or the account master runs as, may connect (peer credentials).
 * Requests are small and answered at once, so each connection is served
 * with blocking writes under a deadline. */
#include "config.h"
#include "master.h"
#include "../libutil/ipc.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/sock.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONTROL_PROTOCOL "master-control"
#define CONTROL_TIMEOUT_MS 5000
#define CONTROL_FRAME_MAX 4096

struct control_client {
	struct master *m;
	int fd;
	struct event *ev;
	struct buf in;
	bool greeted;
};

static void client_close(struct control_client *c)
{
	event_free(c->ev);
	close(c->fd);
	buf_free(&c->in);
	free(c);
}

static int send_frame(struct control_client *c, struct buf *frame)
{
	ipc_end(frame);
	return fd_write_full(c->fd, frame->data, frame->len, CONTROL_TIMEOUT_MS);
}

static int reply_error(struct control_client *c, const char *reason)
{
	struct buf out = BUF_INIT;
	int rc;

	ipc_begin(&out);
	ipc_put_str(&out, "status", "error");
	ipc_put_str(&out, "reason", reason);
	rc = send_frame(c, &out);
	buf_free(&out);
	return rc;
}

static int reply_ok(struct control_client *c)
{
	struct buf out = BUF_INIT;
	int rc;

	ipc_begin(&out);
	ipc_put_str(&out, "status", "ok");
	ipc_put_int(&out, "version", IPC_VERSION);
	rc = send_frame(c, &out);
	buf_free(&out);
	return rc;
}

/* reply_status - a header, one frame per service, one per worker. */
static int reply_status(struct control_client *c)
{
	struct master *m = c->m;
	struct buf out = BUF_INIT;
	int workers = 0;
	int rc;

	for (struct master_worker *w = m->workers; w != NULL; w = w->next)
		workers++;
	ipc_begin(&out);
	ipc_put_str(&out, "status", "ok");
	ipc_put_int(&out, "pid", getpid());
	ipc_put_int(&out, "uid", geteuid());
	ipc_put_int(&out, "started", m->started_at);
	ipc_put_str(&out, "config_dir", m->config_dir);
	ipc_put_int(&out, "services", (int64_t)m->service_count);
	ipc_put_int(&out, "workers", workers);
	rc = send_frame(c, &out);
	for (size_t i = 0; rc == 0 && i < m->service_count; i++) {
		const struct master_service *s = &m->services[i];
		const struct svc_entry *e = s->entry;

		ipc_begin(&out);
		ipc_put_str(&out, "name", e->name);
		ipc_put_str(&out, "type", e->type == SVC_INET ? "inet" : "unix");
		for (size_t j = 0; j < e->listen_count; j++)
			ipc_put_str(&out, "listen", e->listen[j]);
		ipc_put_str(&out, "user", e->user);
		ipc_put_int(&out, "uid", s->uid);
		ipc_put_str(&out, "chroot", e->chroot_dir != NULL ? e->chroot_dir : "");
		ipc_put_int(&out, "procs", e->procs);
		ipc_put_str(&out, "state", master_service_state_name(m, s));
		ipc_put_int(&out, "restarts", s->restarts);
		ipc_put_str(&out, "last_exit", s->last_exit != NULL ? s->last_exit : "");
		rc = send_frame(c, &out);
	}
	for (struct master_worker *w = m->workers; rc == 0 && w != NULL; w = w->next) {
		struct timespec now;

		clock_gettime(CLOCK_MONOTONIC, &now);
		ipc_begin(&out);
		ipc_put_str(&out, "service", w->service != NULL ? w->service->entry->name : "");
		ipc_put_int(&out, "pid", w->pid);
		ipc_put_str(&out, "state", master_worker_state_name(w->state));
		ipc_put_int(&out, "age", now.tv_sec - w->started.tv_sec);
		rc = send_frame(c, &out);
	}
	buf_free(&out);
	return rc;
}

/* handle_request - one decoded request; -1 closes the connection. */
static int handle_request(struct control_client *c, const struct ipc_msg *msg)
{
	const char *cmd = NULL;
	const char *error;
	const struct ipc_spec spec[] = {
		{ .name = "cmd", .type = IPC_STR, .required = true, .max_len = 32, .str_r = &cmd },
	};

	if (!c->greeted) {
		if (ipc_hello_check(msg, CONTROL_PROTOCOL, &error) < 0) {
			reply_error(c, error);
			return -1;
		}
		c->greeted = true;
		return reply_ok(c);
	}
	if (ipc_scan(msg, spec, 1, IPC_STRICT, &error) < 0) {
		reply_error(c, error);
		return -1;
	}
	if (strcmp(cmd, "status") == 0)
		return reply_status(c);
	if (strcmp(cmd, "reload") == 0) {
		char *reason = NULL;
		int rc;

		log_info("reload requested by mailctl");
		if (master_reload(c->m, &reason) < 0) {
			log_warn("reload failed, keeping the running configuration: %s", reason);
			rc = reply_error(c, reason);
			free(reason);
			return rc;
		}
		return reply_ok(c);
	}
	if (strcmp(cmd, "stop") == 0) {
		log_info("stop requested by mailctl");
		reply_ok(c);
		master_begin_stop(c->m);
		return -1;
	}
	reply_error(c, "unknown command");
	return -1;
}

static void on_client(evutil_socket_t fd, short what, void *arg)
{
	struct control_client *c = arg;
	uint8_t chunk[1024];
	ssize_t n = read(fd, chunk, sizeof chunk);
	size_t frame_len;
	int more;

	(void)what;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_close(c);
		return;
	}
	buf_append(&c->in, chunk, (size_t)n);
	while ((more = ipc_frame_length(c->in.data, c->in.len, CONTROL_FRAME_MAX, &frame_len)) == 1) {
		struct ipc_msg msg;
		const char *error;
		int rc;

		if (ipc_decode(c->in.data + 4, frame_len - 4, &msg, &error) < 0) {
			log_warn("control: malformed request: %s", error);
			reply_error(c, error);
			client_close(c);
			return;
		}
		buf_consume(&c->in, frame_len);
		rc = handle_request(c, &msg);
		ipc_msg_free(&msg);
		if (rc < 0) {
			client_close(c);
			return;
		}
	}
	if (more < 0) {
		log_warn("control: request larger than %d bytes", CONTROL_FRAME_MAX);
		reply_error(c, "request too large");
		client_close(c);
	}
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;
	struct control_client *c;
	uid_t uid;
	pid_t pid;
	int client = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	(void)what;
	if (client < 0)
		return;
	if (sock_peer_cred(client, &uid, &pid) < 0 || (uid != 0 && uid != geteuid())) {
		log_warn("control: refused a connection from uid %d (pid %d)", (int)uid, (int)pid);
		close(client);
		return;
	}
	c = xnew(struct control_client);
	c->m = m;
	c->fd = client;
	c->ev = event_new(m->base, client, EV_READ | EV_PERSIST, on_client, c);
	event_add(c->ev, NULL);
}

int master_control_open(struct master *m, char **error_r)
{
	m->control_path = xasprintf("%s/master.ctl", m->conf.params.run_directory);
	m->control_fd = sock_listen_unix(m->control_path, 0600, 16, error_r);
	if (m->control_fd < 0)
		return -1;
	sock_set_nonblock(m->control_fd, 1);
	m->control_ev = event_new(m->base, m->control_fd, EV_READ | EV_PERSIST, on_accept, m);
	event_add(m->control_ev, NULL);
	return 0;
}

void master_control_close(struct master *m)
{
	if (m->control_ev != NULL) {
		event_free(m->control_ev);
		m->control_ev = NULL;
	}
	if (m->control_fd >= 0) {
		close(m->control_fd);
		unlink(m->control_path);
		m->control_fd = -1;
	}
}
