/* tls_client.h - the client side of the OpenSSL glue (tls.h has the
 * server side and what both share: tls_get_info, tls_last_error): STARTTLS
 * to another mail server, opportunistic or verified.
 *
 * Like tls.h, the only place besides tls.c that includes OpenSSL. Build the
 * tls_client before the chroot (it reads the CA store then). */
#ifndef YB_TLS_CLIENT_H
#define YB_TLS_CLIENT_H

#include <stdbool.h>

struct bufferevent;
struct event_base;

struct tls_client;

/* tls_client_new - TLS 1.2 at least, the system's security level, no
 * session tickets; for verified connections the CA certificates of
 * ca_file (PEM), or the system's bundle (OpenSSL's default cert file,
 * /etc/ssl/certs/ca-certificates.crt on Debian) when ca_file is NULL or
 * empty; either is read at once, so it keeps working in a chroot. NULL
 * and a new *error_r naming ca_file when it cannot be read. */
struct tls_client *tls_client_new(const char *ca_file, char **error_r);
void tls_client_free(struct tls_client **c);

/* tls_connect_filter - STARTTLS: a TLS bufferevent over the plain one
 * (which it takes over, as tls_accept_filter does), sending hostname as
 * SNI. verify: the handshake fails unless the peer's chain leads to a
 * trusted CA and its certificate names hostname (RFC 6125, no partial
 * wildcards); without, any certificate is taken (opportunistic TLS, RFC
 * 7435) and tls_peer_verified tells afterwards whether it would have
 * passed. */
struct bufferevent *tls_connect_filter(struct tls_client *c, struct event_base *base, struct bufferevent *plain,
				       const char *hostname, bool verify);

/* tls_peer_verified - after the handshake: whether the peer's certificate
 * verified (chain and name), as logged: "Trusted" or "Untrusted". */
bool tls_peer_verified(struct bufferevent *bev);

#endif
