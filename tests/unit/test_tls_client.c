#include "config.h"
/* test_tls_client.c - unit tests for libutil/tls_client.c: real handshakes
 * over a socketpair against libutil/tls.c's server side, with a
 * certificate from tls_make_selfsigned: opportunistic and verified
 * connections, a wrong name, an unknown CA, a missing CA file. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../libutil/mem.h"
#include "../../libutil/tls.h"
#include "../../libutil/tls_client.h"

static char dir[] = "/tmp/test_tls_client.XXXXXX";
static char *cert, *key;

struct side {
	struct bufferevent *bev;
	bool connected, failed;
};

struct conv {
	struct event_base *base;
	struct side srv, cli;
};

static void check_done(struct conv *c)
{
	if ((c->srv.connected || c->srv.failed) && (c->cli.connected || c->cli.failed))
		event_base_loopbreak(c->base);
	if (c->cli.failed)
		event_base_loopbreak(c->base);
}

static void on_srv(struct bufferevent *bev, short what, void *arg)
{
	struct conv *c = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		c->srv.connected = true;
	else
		c->srv.failed = true;
	check_done(c);
}

static void on_cli(struct bufferevent *bev, short what, void *arg)
{
	struct conv *c = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		c->cli.connected = true;
	else
		c->cli.failed = true;
	check_done(c);
}

/* handshake - one connection; whether the client got through, and (if
 * so) whether it called the peer verified. */
static bool handshake(const char *ca_file, const char *name, bool verify, bool *verified_r)
{
	char *error = NULL;
	struct tls_server *t = tls_server_new(cert, key, NULL, &error);
	struct tls_client *tc = tls_client_new(ca_file, &error);
	struct conv c = { 0 };
	struct timeval tv = { 10, 0 };
	struct bufferevent *plain;
	int fds[2];
	bool ok;

	assert_non_null(t);
	assert_non_null(tc);
	c.base = event_base_new();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds), 0);
	c.srv.bev = tls_accept_socket(t, c.base, fds[0]);
	plain = bufferevent_socket_new(c.base, fds[1], BEV_OPT_CLOSE_ON_FREE);
	c.cli.bev = tls_connect_filter(tc, c.base, plain, name, verify);
	bufferevent_setcb(c.srv.bev, NULL, NULL, on_srv, &c);
	bufferevent_setcb(c.cli.bev, NULL, NULL, on_cli, &c);
	bufferevent_enable(c.srv.bev, EV_READ | EV_WRITE);
	bufferevent_enable(c.cli.bev, EV_READ | EV_WRITE);
	event_base_loopexit(c.base, &tv);
	event_base_dispatch(c.base);
	ok = c.cli.connected && !c.cli.failed;
	*verified_r = ok && tls_peer_verified(c.cli.bev);
	if (ok) {
		struct tls_info info;

		assert_int_equal(tls_get_info(c.cli.bev, &info), 0);
		assert_true(info.bits > 0);
	}
	bufferevent_free(c.srv.bev);
	bufferevent_free(c.cli.bev);
	event_base_free(c.base);
	tls_client_free(&tc);
	tls_server_free(&t);
	return ok;
}

static void test_opportunistic(void **state)
{
	bool verified;

	(void)state;
	/* any certificate is taken, and said to be untrusted */
	assert_true(handshake(NULL, "mx.example.test", false, &verified));
	assert_false(verified);
	/* the same with the CA that signed it: trusted */
	assert_true(handshake(cert, "mx.example.test", false, &verified));
	assert_true(verified);
	/* a name the certificate does not carry: untrusted, still connected */
	assert_true(handshake(cert, "other.example.test", false, &verified));
	assert_false(verified);
}

static void test_verified(void **state)
{
	bool verified;

	(void)state;
	assert_true(handshake(cert, "mx.example.test", true, &verified));
	assert_true(verified);
	assert_true(handshake(cert, "MX.Example.TEST", true, &verified)); /* names are case-insensitive */
	assert_false(handshake(cert, "other.example.test", true, &verified));
	assert_false(handshake(NULL, "mx.example.test", true, &verified)); /* not signed by a system CA */
}

static void test_bad_ca_file(void **state)
{
	char *error = NULL;
	char *missing = xasprintf("%s/missing.pem", dir);
	struct tls_client *c = tls_client_new(missing, &error);

	(void)state;
	assert_null(c);
	assert_non_null(strstr(error, missing));
	free(error);
	free(missing);
}

static int setup(void **state)
{
	char *error = NULL;

	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	cert = xasprintf("%s/cert.pem", dir);
	key = xasprintf("%s/key.pem", dir);
	return tls_make_selfsigned("mx.example.test", NULL, 0, 2, cert, key, &error);
}

static int teardown(void **state)
{
	(void)state;
	unlink(cert);
	unlink(key);
	rmdir(dir);
	free(cert);
	free(key);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_opportunistic),
		cmocka_unit_test(test_verified),
		cmocka_unit_test(test_bad_ca_file),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
