/* smtp-tls-source.c - the TLS load generator of bench/smtp-inbound: like
 * Postfix's smtp-source (which has no TLS), but every session says
 * STARTTLS and does a full handshake (no session resumption) before its
 * message. Blocking sockets, one thread per concurrent session.
 *
 *   smtp-tls-source [-s SESSIONS] [-m MESSAGES] [-l BODY] [-H]
 *                   -f FROM -t TO HOST:PORT
 *
 * -m counts messages over all sessions (one per connection); -H does the
 * handshake and QUIT only, no message. Prints one line: sessions done,
 * failures, seconds, handshakes/s. Exit 1 if any session failed.
 *
 * Built by bench/smtp-inbound with: cc -O2 smtp-tls-source.c -lssl
 * -lcrypto -lpthread. Not part of the suite. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *from_addr, *to_addr;
static struct sockaddr_in server;
static int body_len = 4096;
static int handshake_only;
static atomic_int next_message, done_sessions, failed_sessions;
static int total;
static SSL_CTX *ctx;
static char *body;

struct conn {
	int fd;
	SSL *ssl;
	char buf[4096];
	size_t len;
};

static int conn_read(struct conn *c, void *p, size_t n)
{
	return c->ssl != NULL ? SSL_read(c->ssl, p, (int)n) : (int)read(c->fd, p, n);
}

static int conn_write(struct conn *c, const void *p, size_t n)
{
	const char *s = p;

	while (n > 0) {
		int w = c->ssl != NULL ? SSL_write(c->ssl, s, (int)n) : (int)write(c->fd, s, n);

		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* reply - read one whole reply; its code, or -1. */
static int reply(struct conn *c)
{
	for (;;) {
		char *line = c->buf, *lf;

		while ((lf = memchr(line, '\n', c->len - (size_t)(line - c->buf))) != NULL) {
			size_t n = (size_t)(lf - line) + 1;

			if (n >= 4 && line[3] == ' ') {
				int code = atoi(line);

				c->len -= (size_t)(lf + 1 - c->buf);
				memmove(c->buf, lf + 1, c->len);
				return code;
			}
			line = lf + 1;
		}
		if (c->len == sizeof c->buf)
			return -1;
		int r = conn_read(c, c->buf + c->len, sizeof c->buf - c->len);

		if (r <= 0)
			return -1;
		c->len += (size_t)r;
	}
}

static int command(struct conn *c, const char *line, int want)
{
	if (conn_write(c, line, strlen(line)) < 0)
		return -1;
	return reply(c) / 100 == want / 100 ? 0 : -1;
}

/* session - one connection: STARTTLS, then a message (or QUIT). */
static int session(void)
{
	struct conn c = { .fd = socket(AF_INET, SOCK_STREAM, 0) };
	char line[600];
	int one = 1, rc = -1;

	if (c.fd < 0)
		return -1;
	setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(c.fd, (struct sockaddr *)&server, sizeof server) < 0)
		goto out;
	if (reply(&c) != 220 || command(&c, "EHLO load.example.net\r\n", 250) < 0 ||
	    command(&c, "STARTTLS\r\n", 220) < 0)
		goto out;
	c.ssl = SSL_new(ctx);
	SSL_set_fd(c.ssl, c.fd);
	SSL_set_tlsext_host_name(c.ssl, "mx.example.test");
	if (SSL_connect(c.ssl) != 1)
		goto out;
	if (command(&c, "EHLO load.example.net\r\n", 250) < 0)
		goto out;
	if (!handshake_only) {
		snprintf(line, sizeof line, "MAIL FROM:<%s>\r\n", from_addr);
		if (command(&c, line, 250) < 0)
			goto out;
		snprintf(line, sizeof line, "RCPT TO:<%s>\r\n", to_addr);
		if (command(&c, line, 250) < 0 || command(&c, "DATA\r\n", 354) < 0)
			goto out;
		if (conn_write(&c, body, strlen(body)) < 0 || command(&c, ".\r\n", 250) < 0)
			goto out;
	}
	if (command(&c, "QUIT\r\n", 221) < 0)
		goto out;
	rc = 0;
out:
	if (c.ssl != NULL) {
		SSL_shutdown(c.ssl);
		SSL_free(c.ssl);
	}
	close(c.fd);
	return rc;
}

static void *worker(void *arg)
{
	(void)arg;
	while (atomic_fetch_add(&next_message, 1) < total) {
		if (session() == 0)
			atomic_fetch_add(&done_sessions, 1);
		else
			atomic_fetch_add(&failed_sessions, 1);
	}
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: smtp-tls-source [-s SESSIONS] [-m MESSAGES] [-l BODY] [-H] -f FROM -t TO HOST:PORT\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int sessions = 1, opt;
	char host[64];
	int port;
	struct timespec t0, t1;
	pthread_t *threads;

	total = 100;
	while ((opt = getopt(argc, argv, "s:m:l:Hf:t:")) != -1) {
		switch (opt) {
		case 's': sessions = atoi(optarg); break;
		case 'm': total = atoi(optarg); break;
		case 'l': body_len = atoi(optarg); break;
		case 'H': handshake_only = 1; break;
		case 'f': from_addr = optarg; break;
		case 't': to_addr = optarg; break;
		default: usage();
		}
	}
	if (optind + 1 != argc || from_addr == NULL || to_addr == NULL || sessions < 1 || total < 1 ||
	    sscanf(argv[optind], "%63[^:]:%d", host, &port) != 2)
		usage();
	server.sin_family = AF_INET;
	server.sin_port = htons((unsigned short)port);
	if (inet_pton(AF_INET, host, &server.sin_addr) != 1)
		usage();
	/* Headers, then lines of 'x' up to body_len octets; CRLF ends. */
	body = malloc((size_t)body_len + 256);
	if (body == NULL)
		return 1;
	int n = snprintf(body, 256, "From: <%s>\r\nTo: <%s>\r\nSubject: tls load\r\n\r\n", from_addr, to_addr);
	while (n < body_len) {
		int k = body_len - n < 78 ? body_len - n : 78;

		memset(body + n, 'x', (size_t)k);
		n += k;
		memcpy(body + n, "\r\n", 3);
		n += 2;
	}
	ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	threads = calloc((size_t)sessions, sizeof *threads);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < sessions; i++)
		pthread_create(&threads[i], NULL, worker, NULL);
	for (int i = 0; i < sessions; i++)
		pthread_join(threads[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("sessions=%d failed=%d seconds=%.3f handshakes_per_s=%.1f\n", atomic_load(&done_sessions),
	       atomic_load(&failed_sessions), secs, atomic_load(&done_sessions) / secs);
	free(threads);
	free(body);
	SSL_CTX_free(ctx);
	return atomic_load(&failed_sessions) > 0;
}
