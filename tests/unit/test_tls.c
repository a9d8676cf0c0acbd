/* test_tls.c - the OpenSSL glue (libutil/tls.c), against real handshakes.
 *
 * A throwaway PKI is made in a temporary directory at start: a root CA, an
 * intermediate, certificates for a default name (chained through the
 * intermediate), "mx.example.com" and "*.example.com" (signed by the root),
 * and one from tls_make_selfsigned. Covered: loading a good pair; errors
 * that name the file (missing, unreadable, no PEM, a key that does not
 * match, a passphrase, a key the security level refuses); the SNI map
 * (exact and wildcard names, case, shared files, bad lines with file:line,
 * duplicate names); handshakes over a socketpair between tls_accept_socket
 * and an OpenSSL client bufferevent, checking which certificate the client
 * got and what tls_get_info reports; STARTTLS through tls_accept_filter
 * after a plaintext exchange; TLS 1.1 refused; a close without close_notify
 * seen as EOF; and tls_make_selfsigned's files, names, modes and errors.
 */
#include "config.h"
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit.h"
#include "../../libutil/mem.h"
#include "../../libutil/tls.h"

#include <dirent.h>
#include <signal.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

/* The PKI, made once for every test. */
struct pki {
	char *dir;
	X509 *root;
	char *default_chain, *default_key; /* CN default.example.net, via the intermediate */
	char *mx_cert, *mx_key;            /* CN mx.example.com, by the root */
	char *wild_cert, *wild_key;        /* CN wildcard.example.com, SAN *.example.com */
	char *org_cert, *org_key;          /* tls_make_selfsigned a.example.org */
	char *other_key;                   /* matches nothing */
	char *garbage;                     /* not PEM at all */
	char *weak_cert, *weak_key;        /* RSA 1024 */
	char *locked_key;                  /* the default key under a passphrase */
	char *combined;                    /* mx's certificate and key in one file */
	char *expired_cert, *expired_key;  /* expired yesterday */
	char *files[40];                   /* everything to remove at the end */
	size_t nfiles;
};

static struct pki pki;

/* --- making the PKI ------------------------------------------------- */

/* pki_path - dir/name (tracked: removed at teardown). */
static char *pki_path(const char *name)
{
	char *path = xasprintf("%s/%s", pki.dir, name);

	assert_true(pki.nfiles < sizeof pki.files / sizeof pki.files[0]);
	pki.files[pki.nfiles++] = path;
	unit_temp_track(path, true);
	return path;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/* make_cert - a certificate for key, signed by issuer (NULL: itself). */
static X509 *make_cert(const char *cn, const char *san, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, bool ca)
{
	static long serial = 1;
	X509 *x = X509_new();

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -60));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	assert_int_equal(X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
						    (const unsigned char *)cn, -1, -1, 0),
			 1);
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(issuer != NULL ? issuer : x)), 1);
	add_ext(x, issuer != NULL ? issuer : x, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
	if (ca)
		add_ext(x, issuer != NULL ? issuer : x, NID_key_usage, "critical,keyCertSign,cRLSign");
	if (san != NULL)
		add_ext(x, issuer != NULL ? issuer : x, NID_subject_alt_name, san);
	assert_true(X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

static EVP_PKEY *make_key(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");

	assert_non_null(key);
	return key;
}

/* write_pem - certs (n of them) and then key (may be NULL) to path. */
static void write_pem(const char *path, X509 **certs, int n, EVP_PKEY *key, const char *passphrase)
{
	BIO *bio = BIO_new_file(path, "w");

	assert_non_null(bio);
	for (int i = 0; i < n; i++)
		assert_int_equal(PEM_write_bio_X509(bio, certs[i]), 1);
	if (key != NULL)
		assert_int_equal(PEM_write_bio_PrivateKey(bio, key, passphrase != NULL ? EVP_aes_128_cbc() : NULL,
							  (const unsigned char *)passphrase,
							  passphrase != NULL ? (int)strlen(passphrase) : 0, NULL, NULL),
				 1);
	assert_int_equal(BIO_free(bio), 1);
}

static int pki_setup(void **state)
{
	EVP_PKEY *root_key = make_key(), *inter_key = make_key(), *def_key = make_key();
	EVP_PKEY *mx_key = make_key(), *wild_key = make_key(), *other_key = make_key();
	EVP_PKEY *weak_key = EVP_RSA_gen(1024);
	X509 *inter, *def, *mx, *wild, *weak, *expired;
	X509 *chain[2];
	char *error = NULL;
	char *root_path;

	(void)state;
	assert_non_null(weak_key);
	pki.dir = unit_make_temp_dir();
	pki.root = make_cert("Yubin Test Root", NULL, root_key, NULL, NULL, true);
	inter = make_cert("Yubin Test Intermediate", NULL, inter_key, pki.root, root_key, true);
	def = make_cert("default.example.net", "DNS:default.example.net", def_key, inter, inter_key, false);
	mx = make_cert("mx.example.com", "DNS:mx.example.com", mx_key, pki.root, root_key, false);
	wild = make_cert("wildcard.example.com", "DNS:*.example.com", wild_key, pki.root, root_key, false);
	weak = make_cert("weak.example.com", NULL, weak_key, NULL, NULL, false);
	expired = make_cert("expired.example.com", NULL, other_key, pki.root, root_key, false);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(expired), -2 * 86400));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(expired), -86400));
	assert_true(X509_sign(expired, root_key, EVP_sha256()) > 0);

	root_path = pki_path("root.pem");
	write_pem(root_path, &pki.root, 1, NULL, NULL);
	chain[0] = def;
	chain[1] = inter;
	pki.default_chain = pki_path("default-chain.pem");
	write_pem(pki.default_chain, chain, 2, NULL, NULL);
	pki.default_key = pki_path("default-key.pem");
	write_pem(pki.default_key, NULL, 0, def_key, NULL);
	pki.mx_cert = pki_path("mx.pem");
	write_pem(pki.mx_cert, &mx, 1, NULL, NULL);
	pki.mx_key = pki_path("mx-key.pem");
	write_pem(pki.mx_key, NULL, 0, mx_key, NULL);
	pki.wild_cert = pki_path("wild.pem");
	write_pem(pki.wild_cert, &wild, 1, NULL, NULL);
	pki.wild_key = pki_path("wild-key.pem");
	write_pem(pki.wild_key, NULL, 0, wild_key, NULL);
	pki.other_key = pki_path("other-key.pem");
	write_pem(pki.other_key, NULL, 0, other_key, NULL);
	pki.weak_cert = pki_path("weak.pem");
	write_pem(pki.weak_cert, &weak, 1, NULL, NULL);
	pki.weak_key = pki_path("weak-key.pem");
	write_pem(pki.weak_key, NULL, 0, weak_key, NULL);
	pki.locked_key = pki_path("locked-key.pem");
	write_pem(pki.locked_key, NULL, 0, def_key, "secret");
	pki.combined = pki_path("combined.pem");
	write_pem(pki.combined, &mx, 1, mx_key, NULL);
	pki.expired_cert = pki_path("expired.pem");
	write_pem(pki.expired_cert, &expired, 1, NULL, NULL);
	pki.expired_key = pki.other_key;
	pki.garbage = pki_path("garbage.pem");
	{
		FILE *fp = fopen(pki.garbage, "w");

		assert_non_null(fp);
		fputs("this is not a certificate\n", fp);
		assert_int_equal(fclose(fp), 0);
	}
	pki.org_cert = pki_path("org.pem");
	pki.org_key = pki_path("org-key.pem");
	if (tls_make_selfsigned("a.example.org", NULL, 0, 2, pki.org_cert, pki.org_key, &error) < 0)
		fail_msg("tls_make_selfsigned: %s", error);

	X509_free(inter);
	X509_free(def);
	X509_free(mx);
	X509_free(wild);
	X509_free(weak);
	X509_free(expired);
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(inter_key);
	EVP_PKEY_free(def_key);
	EVP_PKEY_free(mx_key);
	EVP_PKEY_free(wild_key);
	EVP_PKEY_free(other_key);
	EVP_PKEY_free(weak_key);
	return 0;
}

static int pki_teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < pki.nfiles; i++)
		unit_remove_temp(pki.files[i]);
	pki.nfiles = 0;
	unit_remove_temp_dir(pki.dir);
	X509_free(pki.root);
	return 0;
}

/* --- loading ---------------------------------------------------------- */

/* expect_error - tls_server_new fails with an error containing want
 * (exactly want when exact). */
static void expect_error(const char *cert, const char *key, const char *map, const char *want, bool exact)
{
	char *error = NULL;
	struct tls_server *t = tls_server_new(cert, key, map, &error);

	if (t != NULL)
		fail_msg("loaded %s / %s / %s; expected \"%s\"", cert, key, map != NULL ? map : "", want);
	assert_non_null(error);
	if (exact ? strcmp(error, want) != 0 : strstr(error, want) == NULL)
		fail_msg("error \"%s\", expected %s\"%s\"", error, exact ? "" : "something with ", want);
	free(error);
}

static void test_load_good_pair(void **state)
{
	char *error = NULL;
	struct tls_server *t;

	(void)state;
	t = tls_server_new(pki.default_chain, pki.default_key, NULL, &error);
	assert_non_null(t);
	assert_null(error);
	tls_server_free(&t);
	assert_null(t);
	tls_server_free(&t); /* NULL is fine */
	t = tls_server_new(pki.mx_cert, pki.mx_key, "", &error);
	assert_non_null(t);
	tls_server_free(&t);
	/* Certificate and key in one file, named twice. */
	t = tls_server_new(pki.combined, pki.combined, NULL, &error);
	assert_non_null(t);
	tls_server_free(&t);
	/* Expired: loaded all the same (with a warning in the log). */
	t = tls_server_new(pki.expired_cert, pki.expired_key, NULL, &error);
	assert_non_null(t);
	tls_server_free(&t);
}

static void test_load_errors(void **state)
{
	char *missing = xasprintf("%s/nothing-here.pem", pki.dir);
	char *want;

	(void)state;
	want = xasprintf("tls_cert_file %s: No such file or directory", missing);
	expect_error(missing, pki.default_key, NULL, want, true);
	free(want);
	want = xasprintf("tls_key_file %s: No such file or directory", missing);
	expect_error(pki.default_chain, missing, NULL, want, true);
	free(want);

	/* Unreadable: root reads any mode, so as root a directory stands in. */
	if (geteuid() != 0) {
		char *locked = unit_write_file(pki.dir, "locked.pem", "");

		assert_int_equal(chmod(locked, 0), 0);
		want = xasprintf("tls_cert_file %s: Permission denied", locked);
		expect_error(locked, pki.default_key, NULL, want, true);
		free(want);
		unit_remove_temp(locked);
	}
	want = xasprintf("tls_cert_file %s: Is a directory", pki.dir);
	expect_error(pki.dir, pki.default_key, NULL, want, true);
	free(want);

	want = xasprintf("tls_cert_file %s: no PEM certificate in it", pki.garbage);
	expect_error(pki.garbage, pki.default_key, NULL, want, false);
	free(want);
	want = xasprintf("tls_key_file %s: no PEM private key in it", pki.mx_cert);
	expect_error(pki.default_chain, pki.mx_cert, NULL, want, false);
	free(want);
	want = xasprintf("tls_key_file %s does not match tls_cert_file %s", pki.other_key, pki.default_chain);
	expect_error(pki.default_chain, pki.other_key, NULL, want, true);
	free(want);
	want = xasprintf("tls_key_file %s: the key is protected by a passphrase", pki.locked_key);
	expect_error(pki.default_chain, pki.locked_key, NULL, want, false);
	free(want);
	expect_error("", pki.default_key, NULL, "tls_cert_file", false);

	/* At Debian's security level 2, an RSA key under 2048 bits. */
	{
		SSL_CTX *probe = SSL_CTX_new(TLS_server_method());
		int level = SSL_CTX_get_security_level(probe);

		SSL_CTX_free(probe);
		if (level >= 2) {
			want = xasprintf("tls_cert_file %s: ee key too small", pki.weak_cert);
			expect_error(pki.weak_cert, pki.weak_key, NULL, want, true);
			free(want);
		}
	}
	free(missing);
}

/* write_map - a map file in the PKI directory (removed by the caller). */
static char *write_map(const char *text)
{
	return unit_write_file(pki.dir, "sni.map", text);
}

static void test_sni_map_errors(void **state)
{
	char *missing = xasprintf("%s/no.map", pki.dir);
	char *map, *want, *text;

	(void)state;
	want = xasprintf("tls_sni_map %s: No such file or directory", missing);
	expect_error(pki.default_chain, pki.default_key, missing, want, true);
	free(want);

	map = write_map("# ok so far\n\nmx.example.com mx.pem mx-key.pem\nwild.example.com wild.pem\n");
	want = xasprintf("%s:4: expected \"name cert_file key_file\"", map);
	expect_error(pki.default_chain, pki.default_key, map, want, true);
	free(want);
	unit_remove_temp(map);

	map = write_map("mx.example.com mx.pem mx-key.pem extra\n");
	want = xasprintf("%s:1: expected \"name cert_file key_file\"", map);
	expect_error(pki.default_chain, pki.default_key, map, want, true);
	free(want);
	unit_remove_temp(map);

	static const char *const bad_names[] = { "bad..example.com", "*.*.example.com", "mx.*.example.com",
						 "-mx.example.com", "mx_1.example.com", "*", "*." };
	for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
		text = xasprintf("mx.example.com mx.pem mx-key.pem\n%s wild.pem wild-key.pem\n", bad_names[i]);
		map = write_map(text);
		want = xasprintf("%s:2: \"%s\" is neither a host name nor \"*.\" and one", map, bad_names[i]);
		expect_error(pki.default_chain, pki.default_key, map, want, true);
		free(want);
		free(text);
		unit_remove_temp(map);
	}

	/* Duplicates, also when only the case differs. */
	map = write_map("*.example.com wild.pem wild-key.pem\nmx.example.com mx.pem mx-key.pem\n"
			"a.example.com wild.pem wild-key.pem\nMX.Example.COM wild.pem wild-key.pem\n");
	want = xasprintf("%s:4: mx.example.com is already on line 2", map);
	expect_error(pki.default_chain, pki.default_key, map, want, true);
	free(want);
	unit_remove_temp(map);

	map = write_map("mx.example.com nothing.pem mx-key.pem\n");
	want = xasprintf("%s:1: cert_file %s/nothing.pem: No such file or directory", map, pki.dir);
	expect_error(pki.default_chain, pki.default_key, map, want, true);
	free(want);
	unit_remove_temp(map);

	map = write_map("mx.example.com mx.pem mx-key.pem\n*.example.com wild.pem other-key.pem\n");
	want = xasprintf("%s:2: key_file %s/other-key.pem does not match cert_file %s/wild.pem", map, pki.dir,
			 pki.dir);
	expect_error(pki.default_chain, pki.default_key, map, want, true);
	free(want);
	unit_remove_temp(map);
	free(missing);
}

/* --- handshakes ------------------------------------------------------- */

struct side {
	struct bufferevent *bev;
	bool connected, eof, error;
	bool answered;  /* server: "pong" sent */
	char text[512]; /* what arrived */
	size_t len;
	char why[256];  /* tls_last_error at the error */
};

struct conv {
	struct event_base *base;
	struct tls_server *server;
	SSL_CTX *client_ctx;
	const char *sni;
	struct side srv, cli;
	bool close_dirty; /* client: once answered, drop the connection */
	bool done;
};

static void take_input(struct side *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t n = evbuffer_get_length(in);

	if (n > sizeof s->text - 1 - s->len)
		n = sizeof s->text - 1 - s->len;
	evbuffer_remove(in, s->text + s->len, n);
	s->len += n;
	s->text[s->len] = '\0';
}

static void finish(struct conv *c)
{
	c->done = true;
	event_base_loopbreak(c->base);
}

/* The server answers "ping" with "pong". */
static void srv_read(struct bufferevent *bev, void *arg)
{
	struct conv *c = arg;

	(void)bev;
	take_input(&c->srv);
	if (strstr(c->srv.text, "ping\r\n") != NULL && !c->srv.answered) {
		bufferevent_write(c->srv.bev, "pong\r\n", 6);
		c->srv.answered = true;
	}
}

static void srv_event(struct bufferevent *bev, short what, void *arg)
{
	struct conv *c = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		c->srv.connected = true;
	if (what & BEV_EVENT_EOF) {
		c->srv.eof = true;
		finish(c);
	}
	if (what & BEV_EVENT_ERROR) {
		c->srv.error = true;
		tls_last_error(c->srv.bev, c->srv.why, sizeof c->srv.why);
		finish(c);
	}
}

static void cli_read(struct bufferevent *bev, void *arg)
{
	struct conv *c = arg;

	(void)bev;
	take_input(&c->cli);
	if (strstr(c->cli.text, "pong\r\n") != NULL) {
		if (c->close_dirty) {
			/* Freeing an OpenSSL bufferevent sends no close_notify. */
			bufferevent_free(c->cli.bev);
			c->cli.bev = NULL;
		} else {
			finish(c);
		}
	}
}

static void cli_event(struct bufferevent *bev, short what, void *arg)
{
	struct conv *c = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		c->cli.connected = true;
		bufferevent_write(c->cli.bev, "ping\r\n", 6);
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		c->cli.error = (what & BEV_EVENT_ERROR) != 0;
		c->cli.eof = (what & BEV_EVENT_EOF) != 0;
		/* The server's side of a failure is what the tests look at;
		 * give it a moment to see its own. */
		if (c->srv.error || c->srv.eof)
			finish(c);
	}
}

/* client_ctx - trusts the test root; max_version 0: OpenSSL's maximum. */
static SSL_CTX *client_ctx(int max_version)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	assert_non_null(ctx);
	assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), pki.root), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (max_version != 0) {
		assert_int_equal(SSL_CTX_set_max_proto_version(ctx, max_version), 1);
		if (max_version < TLS1_2_VERSION) {
			/* Let the client offer what the server must refuse. */
			SSL_CTX_set_security_level(ctx, 0);
			assert_int_equal(SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION), 1);
			assert_int_equal(SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0"), 1);
		}
	}
	return ctx;
}

/* client_ssl - a client SSL for c, sending c->sni and checking it against
 * the certificate when check_host. */
static SSL *client_ssl(struct conv *c, bool check_host)
{
	SSL *ssl = SSL_new(c->client_ctx);

	assert_non_null(ssl);
	if (c->sni != NULL) {
		assert_int_equal(SSL_set_tlsext_host_name(ssl, c->sni), 1);
		if (check_host)
			assert_int_equal(SSL_set1_host(ssl, c->sni), 1);
	}
	return ssl;
}

static void run(struct conv *c)
{
	struct timeval limit = { 10, 0 };

	event_base_loopexit(c->base, &limit);
	event_base_dispatch(c->base);
	if (!c->done)
		fail_msg("the conversation did not finish within 10 s");
}

/* conv_start - a socketpair with the server on tls_accept_socket. */
static void conv_start(struct conv *c, SSL_CTX *cctx, const char *sni, bool check_host)
{
	int fds[2];

	c->base = event_base_new();
	assert_non_null(c->base);
	c->client_ctx = cctx;
	c->sni = sni;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	c->srv.bev = tls_accept_socket(c->server, c->base, fds[0]);
	assert_non_null(c->srv.bev);
	bufferevent_setcb(c->srv.bev, srv_read, NULL, srv_event, c);
	bufferevent_enable(c->srv.bev, EV_READ | EV_WRITE);
	evutil_make_socket_nonblocking(fds[1]);
	c->cli.bev = bufferevent_openssl_socket_new(c->base, fds[1], client_ssl(c, check_host),
						    BUFFEREVENT_SSL_CONNECTING,
						    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	assert_non_null(c->cli.bev);
	bufferevent_setcb(c->cli.bev, cli_read, NULL, cli_event, c);
	bufferevent_enable(c->cli.bev, EV_READ | EV_WRITE);
}

static void conv_end(struct conv *c)
{
	if (c->srv.bev != NULL)
		bufferevent_free(c->srv.bev);
	if (c->cli.bev != NULL)
		bufferevent_free(c->cli.bev);
	event_base_free(c->base);
}

/* peer_cn - the CN of the certificate the client received. */
static void peer_cn(struct bufferevent *bev, char *cn, size_t size)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	X509 *peer;

	assert_non_null(ssl);
	peer = SSL_get0_peer_certificate(ssl);
	assert_non_null(peer);
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, (int)size) > 0);
}

static void test_add_cert(void **state)
{
	char *error = NULL;
	struct tls_server *t = tls_server_new(pki.default_chain, pki.default_key, NULL, &error);
	struct tls_cert_spec mx = { "mx.example.com", pki.mx_cert, pki.mx_key };
	struct tls_cert_spec again = { "MX.example.com.", pki.wild_cert, pki.wild_key };
	struct tls_cert_spec bad = { "no such name!", pki.wild_cert, pki.wild_key };
	struct tls_cert_spec before = { "A.example.com", pki.wild_cert, pki.wild_key };

	(void)state;
	assert_non_null(t);
	assert_int_equal(tls_server_add_cert(t, &mx, &error), 0);
	assert_int_equal(tls_server_add_cert(t, &again, &error), -1);
	assert_string_equal(error, "mx.example.com: a certificate for this name is already loaded");
	free(error);
	assert_int_equal(tls_server_add_cert(t, &bad, &error), -1);
	assert_non_null(strstr(error, "neither a host name"));
	free(error);
	/* Added in any order, found by name. */
	assert_int_equal(tls_server_add_cert(t, &before, &error), 0);
	{
		static const char *const names[] = { "a.example.com", "mx.example.com", "b.example.com" };
		static const char *const cns[] = { "wildcard.example.com", "mx.example.com", "default.example.net" };
		SSL_CTX *cctx = client_ctx(0);

		for (size_t i = 0; i < 3; i++) {
			struct conv c = { .server = t };
			char cn[256];

			conv_start(&c, cctx, names[i], false);
			run(&c);
			assert_true(c.cli.connected);
			peer_cn(c.cli.bev, cn, sizeof cn);
			assert_string_equal(cn, cns[i]);
			conv_end(&c);
		}
		SSL_CTX_free(cctx);
	}
	tls_server_free(&t);
}

static void test_sni_handshakes(void **state)
{
	static const struct {
		const char *sni;
		const char *cn;  /* of the certificate the client must get */
		bool verified;   /* chain to the root and name both check */
	} cases[] = {
		{ "mx.example.com", "mx.example.com", true },        /* exact beats *.example.com */
		{ "MX.Example.COM", "mx.example.com", true },        /* any case */
		{ "other.example.com", "wildcard.example.com", true },
		{ "example.com", "default.example.net", false },     /* a wildcard needs one more label */
		{ "a.b.example.com", "default.example.net", false }, /* ... exactly one */
		{ "a.example.org", "a.example.org", false },         /* exact beats *.example.org */
		{ "b.example.org", "mx.example.com", false },        /* *.example.org, files shared with mx */
		{ "unknown.test", "default.example.net", false },
		{ NULL, "default.example.net", true },              /* no SNI; chain via the intermediate */
	};
	char *text = xasprintf("# SNI map for the test\n\n"
			       "mx.example.com   mx.pem   mx-key.pem\n"
			       "  *.example.com  wild.pem wild-key.pem   # wildcard\n"
			       "a.example.org %s %s\n"
			       "*.example.org mx.pem mx-key.pem\n",
			       pki.org_cert, pki.org_key);
	char *map = write_map(text);
	char *error = NULL;
	struct tls_server *t = tls_server_new(pki.default_chain, pki.default_key, map, &error);
	SSL_CTX *cctx = client_ctx(0);

	(void)state;
	if (t == NULL)
		fail_msg("tls_server_new: %s", error);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct conv c = { .server = t };
		struct tls_info info;
		char cn[256];

		conv_start(&c, cctx, cases[i].sni, cases[i].verified);
		run(&c);
		if (!c.srv.connected || !c.cli.connected)
			fail_msg("%s: no handshake (server: %s)", cases[i].sni, c.srv.why);
		assert_non_null(strstr(c.cli.text, "pong\r\n"));
		peer_cn(c.cli.bev, cn, sizeof cn);
		if (strcmp(cn, cases[i].cn) != 0)
			fail_msg("SNI %s: got the certificate of %s, expected %s",
				 cases[i].sni ? cases[i].sni : "(none)", cn, cases[i].cn);
		if (cases[i].verified) {
			long v = SSL_get_verify_result(bufferevent_openssl_get_ssl(c.cli.bev));

			if (v != X509_V_OK)
				fail_msg("SNI %s: verification failed: %s", cases[i].sni ? cases[i].sni : "(none)",
					 X509_verify_cert_error_string(v));
		}
		assert_int_equal(tls_get_info(c.srv.bev, &info), 0);
		assert_string_equal(info.version, "TLSv1.3");
		assert_true(info.cipher[0] != '\0');
		assert_true(info.bits >= 128);
		assert_string_equal(info.sni, cases[i].sni != NULL ? cases[i].sni : "");
		conv_end(&c);
	}
	SSL_CTX_free(cctx);
	tls_server_free(&t);
	unit_remove_temp(map);
	free(text);
}

static void test_tls12_info(void **state)
{
	char *error = NULL;
	struct tls_server *t = tls_server_new(pki.default_chain, pki.default_key, NULL, &error);
	SSL_CTX *cctx = client_ctx(TLS1_2_VERSION);
	struct conv c = { .server = t };
	struct tls_info info;

	(void)state;
	assert_non_null(t);
	conv_start(&c, cctx, "mail.example.net", false);
	run(&c);
	assert_true(c.srv.connected);
	assert_int_equal(tls_get_info(c.srv.bev, &info), 0);
	assert_string_equal(info.version, "TLSv1.2");
	/* Server preference with the default list: an AEAD with ECDHE. */
	assert_non_null(strstr(info.cipher, "ECDHE"));
	assert_true(info.bits >= 128);
	assert_string_equal(info.sni, "mail.example.net");
	conv_end(&c);
	SSL_CTX_free(cctx);
	tls_server_free(&t);
}

static void test_tls11_refused(void **state)
{
	char *error = NULL;
	struct tls_server *t = tls_server_new(pki.default_chain, pki.default_key, NULL, &error);
	SSL_CTX *cctx = client_ctx(TLS1_1_VERSION);
	struct conv c = { .server = t };
	struct tls_info info;

	(void)state;
	assert_non_null(t);
	conv_start(&c, cctx, NULL, false);
	run(&c);
	assert_false(c.srv.connected);
	assert_false(c.cli.connected);
	assert_true(c.srv.error);
	if (strstr(c.srv.why, "unsupported protocol") == NULL)
		fail_msg("server error \"%s\", expected \"unsupported protocol\"", c.srv.why);
	assert_int_equal(tls_get_info(c.srv.bev, &info), -1); /* no handshake */
	conv_end(&c);
	SSL_CTX_free(cctx);
	tls_server_free(&t);
}

/* A client dropping TCP without close_notify: EOF, not an error. */
static void test_dirty_shutdown_is_eof(void **state)
{
	char *error = NULL;
	struct tls_server *t = tls_server_new(pki.default_chain, pki.default_key, NULL, &error);
	SSL_CTX *cctx = client_ctx(0);
	struct conv c = { .server = t, .close_dirty = true };

	(void)state;
	assert_non_null(t);
	conv_start(&c, cctx, NULL, false);
	run(&c);
	assert_true(c.srv.connected);
	if (!c.srv.eof || c.srv.error)
		fail_msg("server: eof %d, error %d (%s)", c.srv.eof, c.srv.error, c.srv.why);
	conv_end(&c);
	SSL_CTX_free(cctx);
	tls_server_free(&t);
}

/* --- STARTTLS --------------------------------------------------------- */

/* Plaintext: EHLO gets 250, STARTTLS gets 220 and the filter. */
static void plain_srv_read(struct bufferevent *bev, void *arg)
{
	struct conv *c = arg;
	struct tls_info info;
	char *line;
	size_t n;

	while ((line = evbuffer_readln(bufferevent_get_input(bev), &n, EVBUFFER_EOL_CRLF_STRICT)) != NULL) {
		bool starttls = strcmp(line, "STARTTLS") == 0;

		free(line);
		if (!starttls) {
			bufferevent_write(bev, "250 hello\r\n", 11);
			continue;
		}
		assert_int_equal(tls_get_info(bev, &info), -1); /* not TLS */
		bufferevent_write(bev, "220 go ahead\r\n", 14);
		c->srv.bev = tls_accept_filter(c->server, c->base, bev);
		assert_non_null(c->srv.bev);
		bufferevent_setcb(c->srv.bev, srv_read, NULL, srv_event, c);
		bufferevent_enable(c->srv.bev, EV_READ | EV_WRITE);
		return; /* bev is the filter's now */
	}
}

static void plain_cli_read(struct bufferevent *bev, void *arg)
{
	struct conv *c = arg;
	char *line;
	size_t n;

	while ((line = evbuffer_readln(bufferevent_get_input(bev), &n, EVBUFFER_EOL_CRLF_STRICT)) != NULL) {
		bool go = strcmp(line, "220 go ahead") == 0;

		if (strcmp(line, "250 hello") == 0)
			bufferevent_write(bev, "STARTTLS\r\n", 10);
		free(line);
		if (go) {
			c->cli.bev = bufferevent_openssl_filter_new(c->base, bev, client_ssl(c, true),
								    BUFFEREVENT_SSL_CONNECTING,
								    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
			assert_non_null(c->cli.bev);
			bufferevent_setcb(c->cli.bev, cli_read, NULL, cli_event, c);
			bufferevent_enable(c->cli.bev, EV_READ | EV_WRITE);
			return;
		}
	}
}

static void plain_event(struct bufferevent *bev, short what, void *arg)
{
	struct conv *c = arg;

	(void)bev;
	(void)what;
	finish(c); /* EOF or error before TLS: the test fails on !connected */
}

static void test_starttls(void **state)
{
	char *text = xasprintf("mx.example.com %s %s\n", pki.mx_cert, pki.mx_key);
	char *map = write_map(text);
	char *error = NULL;
	struct tls_server *t = tls_server_new(pki.default_chain, pki.default_key, map, &error);
	SSL_CTX *cctx = client_ctx(0);
	struct conv c = { .server = t, .client_ctx = cctx, .sni = "mx.example.com" };
	struct bufferevent *srv_plain, *cli_plain;
	struct tls_info info;
	struct timeval tv = { 30, 0 };
	char cn[256];
	int fds[2];

	(void)state;
	assert_non_null(t);
	c.base = event_base_new();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds), 0);
	srv_plain = bufferevent_socket_new(c.base, fds[0], BEV_OPT_CLOSE_ON_FREE);
	cli_plain = bufferevent_socket_new(c.base, fds[1], BEV_OPT_CLOSE_ON_FREE);
	/* A timeout on the plaintext side must not outlive the switch. */
	bufferevent_set_timeouts(srv_plain, &tv, &tv);
	bufferevent_setcb(srv_plain, plain_srv_read, NULL, plain_event, &c);
	bufferevent_setcb(cli_plain, plain_cli_read, NULL, plain_event, &c);
	bufferevent_enable(srv_plain, EV_READ | EV_WRITE);
	bufferevent_enable(cli_plain, EV_READ | EV_WRITE);
	bufferevent_write(cli_plain, "EHLO client\r\n", 13);
	run(&c);
	assert_true(c.srv.connected);
	assert_true(c.cli.connected);
	assert_non_null(strstr(c.srv.text, "ping\r\n"));
	assert_non_null(strstr(c.cli.text, "pong\r\n"));
	assert_int_equal(tls_get_info(c.srv.bev, &info), 0);
	assert_true(strcmp(info.version, "TLSv1.3") == 0 || strcmp(info.version, "TLSv1.2") == 0);
	assert_true(info.bits > 0);
	assert_string_equal(info.sni, "mx.example.com");
	peer_cn(c.cli.bev, cn, sizeof cn);
	assert_string_equal(cn, "mx.example.com");
	assert_int_equal(SSL_get_verify_result(bufferevent_openssl_get_ssl(c.cli.bev)), X509_V_OK);
	/* Each filter frees its plaintext bufferevent and socket. */
	conv_end(&c);
	SSL_CTX_free(cctx);
	tls_server_free(&t);
	unit_remove_temp(map);
	free(text);
}

/* --- self-signed ------------------------------------------------------ */

/* dir_entries - how many names dir holds besides . and .. */
static int dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static X509 *read_cert(const char *path)
{
	BIO *bio = BIO_new_file(path, "r");
	X509 *x;

	assert_non_null(bio);
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	assert_non_null(x);
	return x;
}

static void test_selfsigned(void **state)
{
	static const char *const extra[] = { "alt.example.test", "192.0.2.7", "Host.Example.TEST", "*.w.example.test",
					     "2001:db8::25" };
	char *dir = unit_make_temp_dir();
	char *cert = xasprintf("%s/cert.pem", dir);
	char *key = xasprintf("%s/key.pem", dir);
	char *nowhere = xasprintf("%s/missing/cert.pem", dir);
	char *error = NULL;
	struct tls_cert_digests d, d2;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;
	char want[96], cn[256], *p = want;
	GENERAL_NAMES *sans;
	struct tls_server *t;
	struct stat st;
	mode_t old_umask;
	X509 *x;
	BIO *bio;
	EVP_PKEY *pkey;
	time_t now = time(NULL);
	int day_diff, sec_diff;

	(void)state;
	unit_temp_track(cert, true);
	unit_temp_track(key, true);
	/* The modes hold whatever the umask. */
	old_umask = umask(077);
	if (tls_make_selfsigned("Host.Example.Test", extra, 5, 30, cert, key, &error) < 0)
		fail_msg("tls_make_selfsigned: %s", error);
	umask(old_umask);
	assert_int_equal(stat(cert, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(dir_entries(dir), 2); /* no temporary files left */

	x = read_cert(cert);
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn) > 0);
	assert_string_equal(cn, "host.example.test");
	assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)), 0);
	assert_int_equal(X509_check_host(x, "host.example.test", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(x, "alt.example.test", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(x, "q.w.example.test", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(x, "192.0.2.7", 0), 1);
	assert_int_equal(X509_check_ip_asc(x, "2001:db8::25", 0), 1);
	assert_int_equal(X509_check_host(x, "other.example.test", 0, 0, NULL), 0);
	sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	assert_non_null(sans);
	assert_int_equal(sk_GENERAL_NAME_num(sans), 5); /* the duplicate once */
	GENERAL_NAMES_free(sans);
	assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0), 1);
	assert_int_equal(X509_check_ca(x), 0);
	/* 30 days from now (an hour back for the start). */
	assert_int_equal(ASN1_TIME_diff(&day_diff, &sec_diff, NULL, X509_get0_notAfter(x)), 1);
	assert_true(day_diff == 30 || (day_diff == 29 && sec_diff > 86000));
	assert_true(X509_cmp_time(X509_get0_notBefore(x), &now) < 0);

	/* The key is the certificate's, and the pair loads. */
	bio = BIO_new_file(key, "r");
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	assert_non_null(pkey);
	assert_int_equal(X509_check_private_key(x, pkey), 1);
	assert_string_equal(EVP_PKEY_get0_type_name(pkey), "EC");
	EVP_PKEY_free(pkey);
	t = tls_server_new(cert, key, NULL, &error);
	assert_non_null(t);
	tls_server_free(&t);

	/* The digests, as openssl x509 -fingerprint -sha256 shows them. */
	assert_int_equal(tls_cert_digests(cert, &d, &error), 0);
	assert_int_equal(X509_digest(x, EVP_sha256(), md, &mdlen), 1);
	for (unsigned i = 0; i < mdlen; i++)
		p += sprintf(p, "%s%02X", i > 0 ? ":" : "", md[i]);
	assert_string_equal(d.cert_sha256, want);
	/* ... and the DANE "3 1 1" data: SHA-256 of the DER public key info. */
	{
		unsigned char *der = NULL;
		int der_len = i2d_PUBKEY(X509_get0_pubkey(x), &der);

		assert_true(der_len > 0);
		assert_int_equal(EVP_Digest(der, (size_t)der_len, md, &mdlen, EVP_sha256(), NULL), 1);
		OPENSSL_free(der);
		p = want;
		for (unsigned i = 0; i < mdlen; i++)
			p += sprintf(p, "%02x", md[i]);
		assert_string_equal(d.spki_sha256, want);
	}
	assert_non_null(strstr(d.not_after, " UTC"));
	X509_free(x);

	/* Again: both files replaced by a new pair. */
	assert_int_equal(tls_make_selfsigned("host.example.test", NULL, 0, 1, cert, key, &error), 0);
	assert_int_equal(tls_cert_digests(cert, &d2, &error), 0);
	assert_string_not_equal(d.cert_sha256, d2.cert_sha256);
	assert_string_not_equal(d.spki_sha256, d2.spki_sha256);
	assert_int_equal(dir_entries(dir), 2);

	/* Errors leave nothing behind. */
	assert_int_equal(tls_make_selfsigned("bad_host!", NULL, 0, 30, cert, key, &error), -1);
	assert_string_equal(error, "\"bad_host!\" is not a host name");
	free(error);
	assert_int_equal(tls_make_selfsigned("*.example.test", NULL, 0, 30, cert, key, &error), -1);
	free(error);
	{
		const char *bad_extra[] = { "ok.example.test", "no way" };

		assert_int_equal(tls_make_selfsigned("h.example.test", bad_extra, 2, 30, cert, key, &error), -1);
		assert_non_null(strstr(error, "\"no way\""));
		free(error);
	}
	assert_int_equal(tls_make_selfsigned("h.example.test", NULL, 0, 0, cert, key, &error), -1);
	free(error);
	assert_int_equal(tls_make_selfsigned("h.example.test", NULL, 0, 30, cert, cert, &error), -1);
	free(error);
	assert_int_equal(tls_make_selfsigned("h.example.test", NULL, 0, 30, nowhere, key, &error), -1);
	if (strstr(error, nowhere) == NULL || strstr(error, "No such file or directory") == NULL)
		fail_msg("error \"%s\" does not name %s", error, nowhere);
	free(error);
	assert_int_equal(dir_entries(dir), 2);
	assert_int_equal(tls_cert_digests(cert, &d, &error), 0);
	assert_string_equal(d.cert_sha256, d2.cert_sha256); /* unchanged */

	assert_int_equal(tls_cert_digests(nowhere, &d, &error), -1);
	assert_non_null(strstr(error, nowhere));
	free(error);

	unit_remove_temp(cert);
	unit_remove_temp(key);
	free(nowhere);
	unit_remove_temp_dir(dir);
}

static void test_not_tls(void **state)
{
	struct event_base *base = event_base_new();
	struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
	struct tls_info info;
	char why[128];

	(void)state;
	assert_int_equal(tls_get_info(bev, &info), -1);
	errno = 0;
	assert_non_null(tls_last_error(bev, why, sizeof why));
	assert_true(why[0] != '\0');
	bufferevent_free(bev);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_good_pair),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_sni_map_errors),
		cmocka_unit_test(test_add_cert),
		cmocka_unit_test(test_sni_handshakes),
		cmocka_unit_test(test_tls12_info),
		cmocka_unit_test(test_tls11_refused),
		cmocka_unit_test(test_dirty_shutdown_is_eof),
		cmocka_unit_test(test_starttls),
		cmocka_unit_test(test_selfsigned),
		cmocka_unit_test(test_not_tls),
	};

	log_init("test_tls", LOG_SINK_STDERR);
	/* As in the daemons (service.c): OpenSSL answers a peer that went
	 * away with an alert, written to a closed socket. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
