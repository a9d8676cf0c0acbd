/* test_ipc_event.c - ipc_server and ipc_async together over a real UNIX
 * socket in one event loop: handshake, ids, late and out-of-order replies,
 * passed descriptors, deadlines and a server that goes away. */
#include "config.h"
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../libutil/ipc_async.h"
#include "../../libutil/ipc_server.h"
#include "../../libutil/mem.h"
#include "../../libutil/sock.h"

#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct fixture {
	struct event_base *base;
	char path[64];
	int listen_fd;
	struct event *accept_ev;
	struct ipc_server *server;
	/* the server's behaviour */
	bool hold;                  /* keep requests unanswered */
	struct ipc_peer *held_peer[4];
	int64_t held_req[4];
	int held;
	char passed_text[64];       /* what a passed fd held */
	int fds_passed;             /* requests that came with a descriptor */
	char fd_by_word[4][32];     /* "word:yes|no" per request, in order */
	int requests;
	/* what the client saw */
	int replies;
	char answers[8][64];
	char last_error[128];
};

static void handler(struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg, void *ctx)
{
	struct fixture *f = ctx;
	const char *word = ipc_get_str(msg, "word");
	int fd = ipc_peer_take_fd(peer);
	struct buf out = BUF_INIT;

	if (f->requests < 4)
		snprintf(f->fd_by_word[f->requests++], sizeof f->fd_by_word[0], "%s:%s", word ? word : "?",
			 fd >= 0 ? "yes" : "no");
	if (fd >= 0) {
		ssize_t n = pread(fd, f->passed_text, sizeof f->passed_text - 1, 0);

		f->fds_passed++;
		f->passed_text[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	if (f->hold) {
		ipc_peer_ref(peer);
		f->held_peer[f->held] = peer;
		f->held_req[f->held++] = req;
		return;
	}
	ipc_reply_begin(&out, req);
	ipc_put_str(&out, "answer", word != NULL ? word : "?");
	ipc_peer_send(peer, &out);
	buf_free(&out);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct fixture *f = arg;
	int client = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

	(void)what;
	if (client >= 0)
		ipc_server_accept(f->server, client);
}

static void on_reply(const struct ipc_msg *reply, const char *error, void *arg)
{
	struct fixture *f = arg;

	if (reply != NULL) {
		const char *a = ipc_get_str(reply, "answer");

		snprintf(f->answers[f->replies % 8], sizeof f->answers[0], "%s", a != NULL ? a : "(none)");
		/* the id field never reaches the caller */
		assert_null(ipc_get_str(reply, "req"));
	} else {
		snprintf(f->answers[f->replies % 8], sizeof f->answers[0], "error");
		snprintf(f->last_error, sizeof f->last_error, "%s", error);
	}
	f->replies++;
}

static int setup(void **state)
{
	struct fixture *f = xnew(struct fixture);
	char *error = NULL;

	f->base = event_base_new();
	snprintf(f->path, sizeof f->path, "/tmp/yb-ipc-event-%ld.sock", (long)getpid());
	f->listen_fd = sock_listen_unix(f->path, 0600, 16, &error);
	assert_true(f->listen_fd >= 0);
	f->accept_ev = event_new(f->base, f->listen_fd, EV_READ | EV_PERSIST, on_accept, f);
	event_add(f->accept_ev, NULL);
	f->server = ipc_server_new(f->base, "test-proto", 4096, 0, handler, f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < f->held; i++)
		ipc_peer_unref(&f->held_peer[i]);
	ipc_server_free(&f->server);
	event_free(f->accept_ev);
	close(f->listen_fd);
	unlink(f->path);
	event_base_free(f->base);
	free(f);
	return 0;
}

/* run_until - turn the loop until the client has seen n replies. */
static void run_until(struct fixture *f, int n)
{
	for (int i = 0; i < 2000 && f->replies < n; i++)
		event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
	assert_int_equal(f->replies, n);
}

static void request(struct ipc_async *c, struct fixture *f, const char *word, int fd)
{
	struct buf req = BUF_INIT;

	ipc_begin(&req);
	ipc_put_str(&req, "word", word);
	ipc_async_request(c, &req, fd, on_reply, f);
	buf_free(&req);
}

static void test_requests_in_order(void **state)
{
	struct fixture *f = *state;
	struct ipc_async *c = ipc_async_new(f->base, f->path, "test-proto", 5);

	request(c, f, "one", -1);
	request(c, f, "two", -1);
	request(c, f, "three", -1);
	assert_int_equal(ipc_async_pending(c), 3);
	/* callbacks never run inside the request call */
	assert_int_equal(f->replies, 0);
	run_until(f, 3);
	assert_string_equal(f->answers[0], "one");
	assert_string_equal(f->answers[1], "two");
	assert_string_equal(f->answers[2], "three");
	assert_int_equal(ipc_async_pending(c), 0);
	ipc_async_free(&c);
}

static void test_out_of_order_replies_match_ids(void **state)
{
	struct fixture *f = *state;
	struct ipc_async *c = ipc_async_new(f->base, f->path, "test-proto", 5);
	struct buf out = BUF_INIT;

	f->hold = true;
	request(c, f, "first", -1);
	request(c, f, "second", -1);
	for (int i = 0; i < 2000 && f->held < 2; i++)
		event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
	assert_int_equal(f->held, 2);
	/* answer the second first */
	for (int i = 1; i >= 0; i--) {
		ipc_reply_begin(&out, f->held_req[i]);
		ipc_put_str(&out, "answer", i == 1 ? "answer-to-second" : "answer-to-first");
		assert_true(ipc_peer_send(f->held_peer[i], &out));
	}
	buf_free(&out);
	run_until(f, 2);
	assert_string_equal(f->answers[0], "answer-to-second");
	assert_string_equal(f->answers[1], "answer-to-first");
	ipc_async_free(&c);
}

static void test_passed_descriptor(void **state)
{
	struct fixture *f = *state;
	struct ipc_async *c = ipc_async_new(f->base, f->path, "test-proto", 5);
	char file[] = "/tmp/yb-ipc-fd-XXXXXX";
	int fd = mkstemp(file);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "content of the file", 19), 19);
	lseek(fd, 0, SEEK_SET);
	request(c, f, "with-fd", fd);
	close(fd);
	unlink(file);
	run_until(f, 1);
	assert_string_equal(f->answers[0], "with-fd");
	assert_string_equal(f->passed_text, "content of the file");
	ipc_async_free(&c);
}

/* Many requests with descriptors, faster than the server reads: the
 * socket fills up, and ipc_async_request queues rather than blocks (the
 * server runs in this same loop, so a blocking send could only give up).
 * Every descriptor reaches its own request, and the caller may close its
 * descriptor right after the call. */
static void test_descriptors_queue_when_the_socket_is_full(void **state)
{
	struct fixture *f = *state;
	/* A generous deadline: 3000 requests under valgrind on a busy machine
	 * can take more than a second, and the deadline is not what this
	 * test is about (test_deadline is). */
	struct ipc_async *c = ipc_async_new(f->base, f->path, "test-proto", 60);
	char file[] = "/tmp/yb-ipc-fd-XXXXXX";
	int fd = mkstemp(file);
	const int n = 3000;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "shared content", 14), 14);
	for (int i = 0; i < n; i++) {
		char word[16];
		int copy = open(file, O_RDONLY | O_CLOEXEC);

		assert_true(copy >= 0);
		snprintf(word, sizeof word, "w%d", i);
		request(c, f, word, i % 3 == 2 ? -1 : copy);
		close(copy);
	}
	close(fd);
	unlink(file);
	for (int i = 0; i < 20000 && f->replies < n; i++)
		event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_int_equal(f->replies, n);
	assert_int_equal(f->fds_passed, n - n / 3);
	assert_string_equal(f->passed_text, "shared content");
	assert_string_equal(f->fd_by_word[0], "w0:yes");
	assert_string_equal(f->fd_by_word[2], "w2:no");
	assert_string_equal(f->fd_by_word[3], "w3:yes");
	for (int i = 0; i < 8; i++)
		assert_string_not_equal(f->answers[i], "error");
	ipc_async_free(&c);
}

/* A request without a descriptor, then one with: even when both arrive in
 * one read, the first must not take the second's descriptor. */
static void test_descriptor_belongs_to_its_request(void **state)
{
	struct fixture *f = *state;
	char *error = NULL;
	int sock = sock_connect_unix(f->path, 1000, &error);
	struct buf hello = BUF_INIT, first = BUF_INIT, second = BUF_INIT;
	int fd = open("/dev/null", O_RDONLY);
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov[2];
	struct msghdr m = { 0 };
	struct cmsghdr *cm;

	assert_true(sock >= 0 && fd >= 0);
	ipc_put_hello(&hello, "test-proto");
	assert_int_equal(write(sock, hello.data, hello.len), (ssize_t)hello.len);
	ipc_begin(&first);
	ipc_put_str(&first, "word", "plain");
	ipc_put_int(&first, "req", 1);
	ipc_end(&first);
	ipc_begin(&second);
	ipc_put_str(&second, "word", "carrier");
	ipc_put_int(&second, "req", 2);
	ipc_put_int(&second, "fd", 1);
	ipc_end(&second);
	/* "plain" and then "carrier" (which declares a descriptor and is sent
	 * with it) reach the server before it reads: one read may return both. */
	iov[0] = (struct iovec){ .iov_base = first.data, .iov_len = first.len };
	assert_int_equal(write(sock, first.data, first.len), (ssize_t)first.len);
	iov[1] = (struct iovec){ .iov_base = second.data, .iov_len = second.len };
	memset(&control, 0, sizeof control);
	m.msg_iov = &iov[1];
	m.msg_iovlen = 1;
	m.msg_control = control.buf;
	m.msg_controllen = sizeof control.buf;
	cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof fd);
	assert_int_equal(sendmsg(sock, &m, 0), (ssize_t)second.len);
	for (int i = 0; i < 2000 && f->requests < 2; i++)
		event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
	assert_int_equal(f->requests, 2);
	assert_string_equal(f->fd_by_word[0], "plain:no");
	assert_string_equal(f->fd_by_word[1], "carrier:yes");
	close(fd);
	close(sock);
	buf_free(&hello);
	buf_free(&first);
	buf_free(&second);
}

static void test_no_server_fails_later(void **state)
{
	struct fixture *f = *state;
	struct ipc_async *c = ipc_async_new(f->base, "/tmp/yb-no-such-socket", "test-proto", 5);

	request(c, f, "lost", -1);
	assert_int_equal(f->replies, 0);
	run_until(f, 1);
	assert_string_equal(f->answers[0], "error");
	assert_non_null(strstr(f->last_error, "No such file"));
	ipc_async_free(&c);
}

static void test_server_gone_fails_pending(void **state)
{
	struct fixture *f = *state;
	struct ipc_async *c = ipc_async_new(f->base, f->path, "test-proto", 5);

	f->hold = true;
	request(c, f, "pending", -1);
	for (int i = 0; i < 2000 && f->held < 1; i++)
		event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
	ipc_peer_close(f->held_peer[0]);
	run_until(f, 1);
	assert_string_equal(f->answers[0], "error");
	assert_string_equal(f->last_error, "connection closed by the server");
	/* the next request reconnects and works */
	f->hold = false;
	request(c, f, "again", -1);
	run_until(f, 2);
	assert_string_equal(f->answers[1], "again");
	ipc_async_free(&c);
}

/* A failure is reported at once, even when a new request right after it
 * arms the deadline timer with a long timeout (which once held failure
 * callbacks back for the whole timeout, stranding work). */
static void test_failure_not_held_back_by_new_request(void **state)
{
	struct fixture *f = *state;
	struct ipc_async *c = ipc_async_new(f->base, f->path, "test-proto", 300);

	f->hold = true;
	request(c, f, "first", -1);
	for (int i = 0; i < 2000 && f->held < 1; i++)
		event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
	ipc_peer_close(f->held_peer[0]);
	/* let the client see the close, then ask again at once */
	for (int i = 0; i < 50 && ipc_async_pending(c) > 0; i++)
		event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
	request(c, f, "second", -1);
	for (int i = 0; i < 2000 && f->replies < 1; i++)
		event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
	assert_int_equal(f->replies, 1);
	assert_string_equal(f->answers[0], "error");
	ipc_async_free(&c);
}

static void test_deadline(void **state)
{
	struct fixture *f = *state;
	struct ipc_async *c = ipc_async_new(f->base, f->path, "test-proto", 1);

	f->hold = true;
	request(c, f, "slow", -1);
	for (int i = 0; i < 3000 && f->replies < 1; i++)
		event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
	assert_int_equal(f->replies, 1);
	assert_string_equal(f->last_error, "timed out");
	ipc_async_free(&c);
}

static void test_wrong_protocol_refused(void **state)
{
	struct fixture *f = *state;
	struct ipc_async *c = ipc_async_new(f->base, f->path, "other-proto", 5);

	request(c, f, "x", -1);
	run_until(f, 1);
	assert_string_equal(f->answers[0], "error");
	assert_non_null(strstr(f->last_error, "handshake refused"));
	ipc_async_free(&c);
}

static void test_free_fails_pending(void **state)
{
	struct fixture *f = *state;
	struct ipc_async *c = ipc_async_new(f->base, f->path, "test-proto", 5);

	f->hold = true;
	request(c, f, "abandoned", -1);
	ipc_async_free(&c);
	assert_int_equal(f->replies, 1);
	assert_string_equal(f->last_error, "client shut down");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_requests_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_order_replies_match_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_passed_descriptor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_descriptor_belongs_to_its_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_descriptors_queue_when_the_socket_is_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_server_fails_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_gone_fails_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_not_held_back_by_new_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_protocol_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_fails_pending, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
