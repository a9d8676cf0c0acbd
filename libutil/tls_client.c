/* tls_client.c - client side TLS for STARTTLS to other mail servers
 * (tls_client.h). */
#include "config.h"
#include "tls_client.h"
#include "log.h"
#include "mem.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

struct tls_client {
	SSL_CTX *ctx;
};

/* reason - the oldest queued OpenSSL error as text; empties the queue. */
static const char *reason(char *buf, size_t size)
{
	unsigned long e = ERR_get_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	snprintf(buf, size, "%s", r != NULL ? r : "unknown OpenSSL error");
	ERR_clear_error();
	return buf;
}

struct tls_client *tls_client_new(const char *ca_file, char **error_r)
{
	struct tls_client *c = xnew(struct tls_client);
	char why[256];
	int ok;

	c->ctx = SSL_CTX_new(TLS_client_method());
	if (c->ctx == NULL)
		log_fatal("TLS: cannot create a client context: %s", reason(why, sizeof why));
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(c->ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (ca_file != NULL && ca_file[0] != '\0') {
		ok = SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL);
	} else {
		/* The system's bundle, read now: a hashed directory would be
		 * read at each verification, from inside the chroot. Without
		 * one (no ca-certificates), verified connections fail. */
		if (SSL_CTX_load_verify_locations(c->ctx, X509_get_default_cert_file(), NULL) != 1)
			ERR_clear_error();
		ok = 1;
	}
	if (ok != 1) {
		*error_r = xasprintf("CA certificates %s: %s", ca_file != NULL && ca_file[0] ? ca_file : "(system)",
				     reason(why, sizeof why));
		tls_client_free(&c);
		return NULL;
	}
	return c;
}

void tls_client_free(struct tls_client **cp)
{
	struct tls_client *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	SSL_CTX_free(c->ctx);
	free(c);
}

struct bufferevent *tls_connect_filter(struct tls_client *c, struct event_base *base, struct bufferevent *plain,
				       const char *hostname, bool verify)
{
	SSL *ssl = SSL_new(c->ctx);
	struct bufferevent *bev;

	if (ssl == NULL)
		log_fatal("TLS: cannot create a connection: out of memory");
	SSL_set_tlsext_host_name(ssl, hostname);
	/* The name is checked during verification either way, so that an
	 * opportunistic connection can still say whether it was trusted. */
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	SSL_set1_host(ssl, hostname);
	SSL_set_verify(ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	bufferevent_set_timeouts(plain, NULL, NULL);
	bev = bufferevent_openssl_filter_new(base, plain, ssl, BUFFEREVENT_SSL_CONNECTING,
					     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL)
		log_fatal("TLS: cannot create a bufferevent: out of memory");
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

bool tls_peer_verified(struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	X509 *peer;
	bool ok;

	if (ssl == NULL || !SSL_is_init_finished(ssl))
		return false;
	peer = SSL_get1_peer_certificate(ssl);
	ok = peer != NULL && SSL_get_verify_result(ssl) == X509_V_OK;
	X509_free(peer);
	return ok;
}
