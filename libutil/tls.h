/* tls.h - the OpenSSL glue: server certificates (a default one plus others
 * chosen by SNI), TLS bufferevents for implicit TLS and STARTTLS, what a
 * handshake agreed on, and self-signed certificates for mailctl.
 *
 * This module is the only one (tests aside) that includes OpenSSL and
 * event2/bufferevent_ssl.h: daemons see the opaque struct tls_server and
 * plain struct bufferevent pointers, so OpenSSL can be replaced here alone.
 *
 * Ownership: functions that fail return NULL or -1 and a new *error_r
 * (free it) that names the file at fault. Running out of memory inside
 * OpenSSL or libevent is fatal, as everywhere else (mem.h).
 *
 * SIGPIPE must be ignored (the service skeleton does): OpenSSL may answer
 * a peer that has gone with an alert written to the closed socket.
 *
 * Privileges: build the tls_server as root, before chroot and the
 * privilege drop (key files are root's, and OpenSSL reads openssl.cnf at
 * its first use); what it loaded stays usable after setuid. A certificate
 * change therefore needs new worker processes (mailctl reload).
 */
#ifndef YB_TLS_H
#define YB_TLS_H

#include <stddef.h>

struct bufferevent;
struct event_base;

/* Server side TLS: a default certificate plus optional ones chosen by SNI. */
struct tls_server;

/* One certificate: cert_file is a PEM chain, leaf first, then the
 * intermediates; key_file the leaf's PEM private key, without passphrase.
 * name (for tls_server_add_cert) is a host name or "*.example.com". */
struct tls_cert_spec {
	const char *name;
	const char *cert_file;
	const char *key_file;
};

/* tls_server_new - load the default certificate (cert_file, key_file) and,
 * if sni_map_path is neither NULL nor empty, the SNI map. TLS 1.2 at least,
 * no renegotiation, the server's cipher order, no session tickets, and the
 * system's security level and cipher defaults (Debian: level 2). NULL and a
 * new *error_r naming the file on any error: a file missing or unreadable,
 * no certificate or key in it, a key that does not match its certificate,
 * a certificate the security level refuses, a bad map line ("file:line:").
 * An expired or not yet valid certificate is loaded with a log_warn. */
struct tls_server *tls_server_new(const char *cert_file, const char *key_file, const char *sni_map_path,
				  char **error_r);

/* tls_server_add_cert - add one certificate chosen by SNI (what a map line
 * does). Call before the first handshake. -1 and a new *error_r if the
 * name is not a host name or "*." wildcard, is already there, or the
 * files do not load. */
int tls_server_add_cert(struct tls_server *t, const struct tls_cert_spec *spec, char **error_r);

/* tls_server_free - free the certificates and keys; NULLs *t, accepts NULL.
 * Connections still open keep what they use (OpenSSL counts references). */
void tls_server_free(struct tls_server **t);

/* The SNI map (tls_sni_map): one "name cert_file key_file" per line, blank
 * lines and '#' comments allowed. Relative file names are taken from the
 * map's directory. name is a host name, matched without regard to ASCII
 * case, or "*.example.com", which matches exactly one more label
 * ("mx.example.com", neither "example.com" nor "a.b.example.com"). An
 * exact name wins over a wildcard. A client naming nothing in the map, or
 * nothing at all, gets the default certificate. A name given twice is an
 * error. Lines holding the same cert_file and key_file share one copy. */

/* tls_accept_socket - implicit TLS (ports 465, 993, 995): a new bufferevent
 * doing the server handshake on the accepted socket fd, which it owns
 * (closed when the result is freed) and makes non-blocking. Callbacks are
 * deferred (BEV_OPT_DEFER_CALLBACKS), and a peer closing TCP without a TLS
 * close_notify is reported as BEV_EVENT_EOF, not an error: mail protocols
 * detect truncation themselves. The event callback sees BEV_EVENT_CONNECTED
 * when the handshake is done, BEV_EVENT_ERROR if it failed. */
struct bufferevent *tls_accept_socket(struct tls_server *t, struct event_base *base, int fd);

/* tls_accept_filter - STARTTLS: a TLS bufferevent over the plaintext one,
 * which it takes over: freeing the result frees the TLS state, plain and
 * (when plain was made with BEV_OPT_CLOSE_ON_FREE) its socket; do not free
 * plain yourself. Output already queued on plain (the "220 Ready to start
 * TLS") goes out before the handshake. Bytes still in plain's input are
 * read as the start of the handshake, so a client that pipelined commands
 * after STARTTLS fails it: drain them first to answer differently. plain's
 * callbacks belong to the filter now and its timeouts are cleared: set
 * callbacks and timeouts on the result. Same behaviour otherwise as
 * tls_accept_socket (deferred callbacks, dirty shutdown is EOF). */
struct bufferevent *tls_accept_filter(struct tls_server *t, struct event_base *base, struct bufferevent *plain);

/* What a finished handshake agreed on. */
struct tls_info {
	char version[16]; /* "TLSv1.3" */
	char cipher[64];  /* "TLS_AES_256_GCM_SHA384" */
	int bits;         /* 256: the cipher's secret bits */
	char sni[256];    /* the name the client asked for, "" if none; as
			   * sent (any byte but NUL): sanitize before logging */
};

/* tls_get_info - after BEV_EVENT_CONNECTED: 0, or -1 if bev is not TLS
 * (or its handshake has not finished). */
int tls_get_info(struct bufferevent *bev, struct tls_info *out);

/* tls_last_error - a one-line description of why TLS failed on bev (after
 * BEV_EVENT_ERROR), for logs: OpenSSL's reasons ("unsupported protocol"),
 * else the system error. Takes the errors off bev's list; returns buf. */
const char *tls_last_error(struct bufferevent *bev, char *buf, size_t size);

/* tls_make_selfsigned - write a new self-signed certificate for hostname
 * (subject CN=hostname, subjectAltName DNS:hostname plus extra_names: host
 * names, "*." wildcards, or IP addresses, which become IP entries) valid
 * for days from now, for TLS servers (CA:FALSE, serverAuth), with a new
 * ECDSA P-256 key signed with SHA-256. The key goes to key_path (mode
 * 0600), the certificate to cert_path (0644), each written atomically
 * (temporary file, fsync, rename), replacing what was there; the two
 * renames come last, key first. -1 and a new *error_r on failure. */
int tls_make_selfsigned(const char *hostname, const char *const *extra_names, size_t n_extra, int days,
			const char *cert_path, const char *key_path, char **error_r);

/* Digests of a certificate, in the forms operators compare them. */
struct tls_cert_digests {
	char cert_sha256[96]; /* "AB:CD:...": openssl x509 -fingerprint -sha256 */
	char spki_sha256[65]; /* hex of the public key's SHA-256: the data of a
			       * DANE "TLSA 3 1 1" record */
	char not_after[32];   /* "2027-05-01 12:00:00 UTC" */
};

/* tls_cert_digests - of the first certificate in the PEM file at path;
 * -1 and a new *error_r if it cannot be read. */
int tls_cert_digests(const char *path, struct tls_cert_digests *out, char **error_r);

#endif
