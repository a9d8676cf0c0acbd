/* tls.c - the OpenSSL glue (tls.h): server contexts with SNI, libevent's
 * OpenSSL bufferevents, and self-signed certificates.
 *
 * Every certificate, the default one and each SNI entry, gets its own
 * SSL_CTX configured by one function (ctx_new), because when the SNI
 * callback swaps the context of a connection OpenSSL keeps the options of
 * the first one and only takes the certificate and key from the second:
 * contexts that differ would give a client different settings depending
 * on the name it sent.
 *
 * Files are read here, not by OpenSSL's *_file functions, so that an error
 * can say which file and why in the operator's words ("No such file or
 * directory") rather than as an OpenSSL error stack. Key material read
 * into memory is wiped before it is freed.
 */
#include "config.h"
#include "tls.h"
#include "fileutil.h"
#include "log.h"
#include "mem.h"
#include "strutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* A certificate file holds a chain of a few certificates; anything much
 * larger is a mistake (a whole CA bundle, a wrong path). */
#define TLS_FILE_MAX (1024 * 1024)
#define SNI_MAP_LINE_MAX 4096
#define HOSTNAME_MAX 253
#define CN_MAX 64 /* ub-common-name: a longer name goes in subjectAltName only */
#define DAYS_MAX 36500

/* One SNI entry. */
struct sni_cert {
	char *name;   /* lower case; "*.example.com" for a wildcard */
	SSL_CTX *ctx; /* one reference */
};

struct tls_server {
	SSL_CTX *ctx;           /* the default certificate */
	struct sni_cert *certs; /* sorted by name */
	size_t count;
};

/* --- errors and files ------------------------------------------------ */

/* ssl_reason - the oldest error on OpenSSL's queue as text (usually the
 * cause; the later ones say where it surfaced), and empty the queue. */
static const char *ssl_reason(char *buf, size_t size)
{
	unsigned long e = ERR_get_error();
	const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

	if (e == 0)
		snprintf(buf, size, "unknown OpenSSL error");
	else if (reason != NULL)
		snprintf(buf, size, "%s", reason);
	else
		snprintf(buf, size, "OpenSSL error %08lx", e);
	ERR_clear_error();
	return buf;
}

/* wipe_free - free memory that may have held a private key. */
static void wipe_free(char *data, size_t len)
{
	if (data != NULL) {
		OPENSSL_cleanse(data, len);
		free(data);
	}
}

/* read_file - the whole file at path into new memory (*len_r bytes, plus a
 * NUL); NULL and a new "what path: reason" error. */
static char *read_file(const char *what, const char *path, size_t *len_r, char **error_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	char *data;
	size_t len = 0, cap;

	if (fd < 0) {
		*error_r = xasprintf("%s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		*error_r = xasprintf("%s %s: %s", what, path, strerror(errno));
		close(fd);
		return NULL;
	}
	if (S_ISDIR(st.st_mode)) {
		*error_r = xasprintf("%s %s: %s", what, path, strerror(EISDIR));
		close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		*error_r = xasprintf("%s %s: not a regular file", what, path);
		close(fd);
		return NULL;
	}
	/* Room for one byte more than the file's size, so that the normal
	 * case ends with one read of 0; a file that grows meanwhile gets a
	 * bigger buffer (a copy: key material is wiped, not realloc'ed). */
	cap = st.st_size < TLS_FILE_MAX ? (size_t)st.st_size + 1 : TLS_FILE_MAX + 1;
	data = xmalloc(cap + 1);
	for (;;) {
		ssize_t n;

		if (len == cap) {
			char *bigger;

			if (cap > TLS_FILE_MAX) {
				*error_r = xasprintf("%s %s: larger than %d bytes", what, path, TLS_FILE_MAX);
				wipe_free(data, len);
				close(fd);
				return NULL;
			}
			cap = cap * 2 < TLS_FILE_MAX + 1 ? cap * 2 : TLS_FILE_MAX + 1;
			bigger = xmalloc(cap + 1);
			memcpy(bigger, data, len);
			wipe_free(data, len);
			data = bigger;
		}
		n = read(fd, data + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = xasprintf("%s %s: %s", what, path, strerror(errno));
			wipe_free(data, len);
			close(fd);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	data[len] = '\0';
	*len_r = len;
	return data;
}

/* time_text - an ASN.1 time as "2027-05-01 12:00:00 UTC". */
static void time_text(const ASN1_TIME *t, char *buf, size_t size)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1 || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, size, "(unreadable date)");
}

/* --- loading certificates and keys ----------------------------------- */

/* load_certs - the PEM certificates in path: the first is the leaf, the
 * others (a stack, possibly empty) its chain. -1 and a new error. */
static int load_certs(const char *what, const char *path, X509 **leaf_r, STACK_OF(X509) **chain_r,
		      char **error_r)
{
	char reason[256];
	size_t len;
	char *data = read_file(what, path, &len, error_r);
	BIO *bio;
	X509 *x;

	if (data == NULL)
		return -1;
	ERR_clear_error();
	bio = BIO_new_mem_buf(data, (int)len);
	if (bio == NULL)
		log_fatal("TLS: out of memory");
	*leaf_r = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (*leaf_r == NULL) {
		*error_r = xasprintf("%s %s: no PEM certificate in it (%s)", what, path,
				     ssl_reason(reason, sizeof reason));
		goto fail;
	}
	*chain_r = sk_X509_new_null();
	if (*chain_r == NULL)
		log_fatal("TLS: out of memory");
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
		if (sk_X509_push(*chain_r, x) <= 0)
			log_fatal("TLS: out of memory");
	/* The loop ends at the end of the file ("no start line") or at a
	 * block that is not a valid certificate. */
	if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
		*error_r = xasprintf("%s %s: certificate %d of the chain: %s", what, path, sk_X509_num(*chain_r) + 2,
				     ssl_reason(reason, sizeof reason));
		X509_free(*leaf_r);
		sk_X509_pop_free(*chain_r, X509_free);
		goto fail;
	}
	ERR_clear_error();
	BIO_free(bio);
	wipe_free(data, len);
	return 0;
fail:
	BIO_free(bio);
	wipe_free(data, len); /* a file may hold the key as well */
	*leaf_r = NULL;
	*chain_r = NULL;
	return -1;
}

/* no_passphrase - the PEM password callback: never prompt (a daemon has
 * no terminal), only note that the key wanted one. */
static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	*(bool *)arg = true;
	return -1;
}

/* load_key - the first PEM private key in path; NULL and a new error. */
static EVP_PKEY *load_key(const char *what, const char *path, char **error_r)
{
	char reason[256];
	size_t len;
	char *data = read_file(what, path, &len, error_r);
	bool wanted_passphrase = false;
	EVP_PKEY *key;
	BIO *bio;

	if (data == NULL)
		return NULL;
	ERR_clear_error();
	bio = BIO_new_mem_buf(data, (int)len);
	if (bio == NULL)
		log_fatal("TLS: out of memory");
	key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &wanted_passphrase);
	BIO_free(bio);
	wipe_free(data, len);
	if (key == NULL && wanted_passphrase) {
		ERR_clear_error();
		*error_r = xasprintf("%s %s: the key is protected by a passphrase; store it without one", what, path);
	} else if (key == NULL) {
		*error_r = xasprintf("%s %s: no PEM private key in it (%s)", what, path,
				     ssl_reason(reason, sizeof reason));
	}
	return key;
}

/* on_servername - the SNI callback of every context: switch the connection
 * to the context of the name the client asked for, if the map has one. */
static int on_servername(SSL *ssl, int *alert, void *arg);

/* ctx_new - a server context with the settings every one of ours shares. */
static SSL_CTX *ctx_new(struct tls_server *t)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL)
		log_fatal("TLS: cannot create a context: out of memory");
	/* TLS 1.0 and 1.1 are refused; the maximum is left to OpenSSL (1.3).
	 * Ciphers and the security level stay the system's (openssl.cnf;
	 * Debian: level 2, no RSA or DH under 2048 bits). */
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
		log_panic("TLS: cannot set TLS 1.2 as the minimum version");
	/* No session tickets: each worker process would have its own ticket
	 * key, so a ticket would be useless at a sibling anyway. Session IDs
	 * (TLS 1.2) still resume within one worker. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
	/* A client closing TCP without close_notify is an end of file, not
	 * an error: mail protocols notice truncation themselves (SMTP's ".",
	 * IMAP literals). OpenSSL 3 reports such a close as a protocol error,
	 * which libevent 2.1 passes on as BEV_EVENT_ERROR even when dirty
	 * shutdowns are allowed; with this option it is a plain EOF. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"yubin", 5);
	/* Many idle connections per worker: give buffers back between reads. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
	SSL_CTX_set_tlsext_servername_arg(ctx, t);
	return ctx;
}

/* ctx_load - put the chain in cert_file and the key in key_file into ctx.
 * cert_what and key_what name the files in errors ("tls_cert_file"). */
static int ctx_load(SSL_CTX *ctx, const char *cert_what, const char *cert_file, const char *key_what,
		    const char *key_file, char **error_r)
{
	char reason[256];
	char date[32];
	X509 *leaf;
	STACK_OF(X509) *chain;
	EVP_PKEY *key;
	int rc = -1;

	if (load_certs(cert_what, cert_file, &leaf, &chain, error_r) < 0)
		return -1;
	key = load_key(key_what, key_file, error_r);
	if (key == NULL)
		goto out;
	ERR_clear_error();
	if (X509_check_private_key(leaf, key) != 1) {
		ERR_clear_error();
		*error_r = xasprintf("%s %s does not match %s %s", key_what, key_file, cert_what, cert_file);
		goto out;
	}
	/* These fail when the security level refuses a key or a signature
	 * ("ee key too small", "ca md too weak"). */
	if (SSL_CTX_use_certificate(ctx, leaf) != 1) {
		*error_r = xasprintf("%s %s: %s", cert_what, cert_file, ssl_reason(reason, sizeof reason));
		goto out;
	}
	if (SSL_CTX_set1_chain(ctx, chain) != 1) {
		*error_r = xasprintf("%s %s: chain: %s", cert_what, cert_file, ssl_reason(reason, sizeof reason));
		goto out;
	}
	if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		*error_r = xasprintf("%s %s: %s", key_what, key_file, ssl_reason(reason, sizeof reason));
		goto out;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) {
		time_text(X509_get0_notAfter(leaf), date, sizeof date);
		log_warn("%s %s: the certificate expired on %s", cert_what, cert_file, date);
	} else if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0) {
		time_text(X509_get0_notBefore(leaf), date, sizeof date);
		log_warn("%s %s: the certificate is not valid before %s", cert_what, cert_file, date);
	}
	rc = 0;
out:
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(key);
	return rc;
}

/* --- SNI names ----------------------------------------------------- */

/* hostname_valid - s is LDH labels joined by dots (lower case expected). */
static bool hostname_valid(const char *s)
{
	size_t label = 0, total = strlen(s);

	if (total == 0 || total > HOSTNAME_MAX)
		return false;
	for (const char *p = s;; p++) {
		if (*p == '.' || *p == '\0') {
			if (label == 0 || label > 63 || p[-1] == '-')
				return false;
			if (*p == '\0')
				return true;
			label = 0;
		} else if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
			   (*p == '-' && label > 0)) {
			label++;
		} else {
			return false;
		}
	}
}

/* name_normalize - a map name in lower case, without a final dot; NULL if
 * it is neither a host name nor "*." and one. */
static char *name_normalize(const char *name)
{
	char *n = xstrdup(name);
	size_t len = strlen(n);

	for (char *p = n; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (len > 1 && n[len - 1] == '.')
		n[len - 1] = '\0';
	if (!hostname_valid(str_has_prefix(n, "*.") ? n + 2 : n))
		xfree_ptr(&n);
	return n;
}

static int cert_cmp(const void *a, const void *b)
{
	return strcmp(((const struct sni_cert *)a)->name, ((const struct sni_cert *)b)->name);
}

/* sni_find - the context for a normalized name, or NULL. */
static SSL_CTX *sni_find(const struct tls_server *t, const char *name)
{
	struct sni_cert probe = { .name = (char *)name };
	const struct sni_cert *c;

	if (t->count == 0)
		return NULL;
	c = bsearch(&probe, t->certs, t->count, sizeof *t->certs, cert_cmp);
	return c != NULL ? c->ctx : NULL;
}

/* sni_lookup - the context for the name a client sent: the exact name,
 * else "*." and all but its first label; NULL for the default. */
static SSL_CTX *sni_lookup(const struct tls_server *t, const char *sent)
{
	char name[HOSTNAME_MAX + 1], wild[HOSTNAME_MAX + 2];
	size_t len = strlen(sent);
	const char *dot;
	SSL_CTX *ctx;

	if (len > 1 && sent[len - 1] == '.')
		len--;
	if (len == 0 || len > HOSTNAME_MAX)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		char c = sent[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		/* '*' and anything else odd: never match a wildcard entry
		 * literally, nor anything at all. */
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return NULL;
		name[i] = c;
	}
	name[len] = '\0';
	if ((ctx = sni_find(t, name)) != NULL)
		return ctx;
	dot = strchr(name, '.');
	if (dot == NULL || dot == name || dot[1] == '\0')
		return NULL;
	snprintf(wild, sizeof wild, "*%s", dot); /* "*" ".example.com" */
	return sni_find(t, wild);
}

static int on_servername(SSL *ssl, int *alert, void *arg)
{
	const struct tls_server *t = arg;
	const char *sent = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	SSL_CTX *ctx;

	(void)alert;
	if (sent == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	ctx = sni_lookup(t, sent);
	if (ctx != NULL && SSL_get_SSL_CTX(ssl) != ctx && SSL_set_SSL_CTX(ssl, ctx) == NULL)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	return SSL_TLSEXT_ERR_OK;
}

/* sni_insert - add a loaded entry, keeping the array sorted; the caller
 * has checked the name is new. Takes over name and the ctx reference. */
static void sni_insert(struct tls_server *t, char *name, SSL_CTX *ctx)
{
	size_t at = t->count;

	while (at > 0 && strcmp(t->certs[at - 1].name, name) > 0)
		at--;
	t->certs = xreallocarray(t->certs, t->count + 1, sizeof *t->certs);
	for (size_t i = t->count; i > at; i--)
		t->certs[i] = t->certs[i - 1];
	t->certs[at].name = name;
	t->certs[at].ctx = ctx;
	t->count++;
}

int tls_server_add_cert(struct tls_server *t, const struct tls_cert_spec *spec, char **error_r)
{
	char *name = name_normalize(spec->name);
	SSL_CTX *ctx;

	if (name == NULL) {
		*error_r = xasprintf("\"%s\" is neither a host name nor \"*.\" and one", spec->name);
		return -1;
	}
	if (sni_find(t, name) != NULL) {
		*error_r = xasprintf("%s: a certificate for this name is already loaded", name);
		free(name);
		return -1;
	}
	ctx = ctx_new(t);
	if (ctx_load(ctx, "cert_file", spec->cert_file, "key_file", spec->key_file, error_r) < 0) {
		SSL_CTX_free(ctx);
		free(name);
		return -1;
	}
	sni_insert(t, name, ctx);
	return 0;
}

/* --- the SNI map --------------------------------------------------- */

struct map_line {
	char *name; /* normalized */
	char *cert_file, *key_file;
	int lineno;
	SSL_CTX *ctx;
};

static int line_by_name(const void *a, const void *b)
{
	const struct map_line *x = *(const struct map_line *const *)a, *y = *(const struct map_line *const *)b;
	int c = strcmp(x->name, y->name);

	return c != 0 ? c : x->lineno - y->lineno;
}

static int line_by_files(const void *a, const void *b)
{
	const struct map_line *x = *(const struct map_line *const *)a, *y = *(const struct map_line *const *)b;
	int c = strcmp(x->cert_file, y->cert_file);

	if (c == 0)
		c = strcmp(x->key_file, y->key_file);
	return c != 0 ? c : x->lineno - y->lineno;
}

/* map_path - a file named in the map: relative names are taken from the
 * map's directory. */
static char *map_path(const char *map, const char *file)
{
	char *copy, *path;

	if (file[0] == '/')
		return xstrdup(file);
	copy = xstrdup(map);
	path = xasprintf("%s/%s", dirname(copy), file);
	free(copy);
	return path;
}

/* map_read - the map's lines into *lines_r (*n_r of them); -1 and a new
 * "file:line: " error. */
static int map_read(const char *path, struct map_line **lines_r, size_t *n_r, char **error_r)
{
	FILE *fp = fopen(path, "re");
	struct map_line *lines = NULL;
	size_t n = 0;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, rc = 0;

	*lines_r = NULL;
	*n_r = 0;
	if (fp == NULL) {
		*error_r = xasprintf("tls_sni_map %s: %s", path, strerror(errno));
		return -1;
	}
	while (rc == 0 && (len = getline(&line, &cap, fp)) >= 0) {
		char *words[3];
		char *hash, *name;
		int nw;

		lineno++;
		if ((size_t)len > SNI_MAP_LINE_MAX || strlen(line) != (size_t)len) {
			*error_r = xasprintf("%s:%d: line too long or holds a NUL", path, lineno);
			rc = -1;
			break;
		}
		line[str_text_length(line, (size_t)len)] = '\0';
		if ((hash = strchr(line, '#')) != NULL)
			*hash = '\0';
		nw = str_split_ws(line, words, 3);
		if (nw == 0)
			continue;
		if (nw != 3) {
			*error_r = xasprintf("%s:%d: expected \"name cert_file key_file\"", path, lineno);
			rc = -1;
			break;
		}
		name = name_normalize(words[0]);
		if (name == NULL) {
			*error_r = xasprintf("%s:%d: \"%s\" is neither a host name nor \"*.\" and one", path, lineno,
					     words[0]);
			rc = -1;
			break;
		}
		lines = xreallocarray(lines, n + 1, sizeof *lines);
		lines[n++] = (struct map_line){
			.name = name,
			.cert_file = map_path(path, words[1]),
			.key_file = map_path(path, words[2]),
			.lineno = lineno,
		};
	}
	if (rc == 0 && ferror(fp)) {
		*error_r = xasprintf("tls_sni_map %s: %s", path, strerror(errno));
		rc = -1;
	}
	free(line);
	fclose(fp);
	*lines_r = lines;
	*n_r = n;
	return rc;
}

static void map_lines_free(struct map_line *lines, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(lines[i].name);
		free(lines[i].cert_file);
		free(lines[i].key_file);
		if (lines[i].ctx != NULL)
			SSL_CTX_free(lines[i].ctx);
	}
	free(lines);
}

/* map_load - read the map, refuse duplicate names, load each distinct
 * cert_file/key_file pair once, and add the entries to t. */
static int map_load(struct tls_server *t, const char *path, char **error_r)
{
	struct map_line *lines;
	struct map_line **order;
	size_t n;
	int rc = 0;

	if (map_read(path, &lines, &n, error_r) < 0) {
		map_lines_free(lines, n);
		return -1;
	}
	order = xcalloc(n + 1, sizeof *order);
	for (size_t i = 0; i < n; i++)
		order[i] = &lines[i];
	qsort(order, n, sizeof *order, line_by_name);
	for (size_t i = 1; i < n && rc == 0; i++) {
		if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
			*error_r = xasprintf("%s:%d: %s is already on line %d", path, order[i]->lineno, order[i]->name,
					     order[i - 1]->lineno);
			rc = -1;
		}
	}
	qsort(order, n, sizeof *order, line_by_files);
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct map_line *l = order[i];
		struct map_line *prev = i > 0 ? order[i - 1] : NULL;

		if (prev != NULL && strcmp(prev->cert_file, l->cert_file) == 0 &&
		    strcmp(prev->key_file, l->key_file) == 0) {
			SSL_CTX_up_ref(prev->ctx);
			l->ctx = prev->ctx;
			continue;
		}
		l->ctx = ctx_new(t);
		if (ctx_load(l->ctx, "cert_file", l->cert_file, "key_file", l->key_file, error_r) < 0) {
			char *inner = *error_r;

			*error_r = xasprintf("%s:%d: %s", path, l->lineno, inner);
			free(inner);
			rc = -1;
		}
	}
	free(order);
	if (rc == 0 && n > 0) {
		t->certs = xreallocarray(t->certs, t->count + n, sizeof *t->certs);
		for (size_t i = 0; i < n; i++) {
			t->certs[t->count++] = (struct sni_cert){ .name = lines[i].name, .ctx = lines[i].ctx };
			lines[i].name = NULL;
			lines[i].ctx = NULL;
		}
		qsort(t->certs, t->count, sizeof *t->certs, cert_cmp);
	}
	map_lines_free(lines, n);
	return rc;
}

/* --- the server ---------------------------------------------------- */

struct tls_server *tls_server_new(const char *cert_file, const char *key_file, const char *sni_map_path,
				  char **error_r)
{
	struct tls_server *t = xnew(struct tls_server);

	if (cert_file == NULL || cert_file[0] == '\0' || key_file == NULL || key_file[0] == '\0') {
		*error_r = xasprintf("TLS needs both tls_cert_file and tls_key_file");
		free(t);
		return NULL;
	}
	t->ctx = ctx_new(t);
	if (ctx_load(t->ctx, "tls_cert_file", cert_file, "tls_key_file", key_file, error_r) < 0 ||
	    (sni_map_path != NULL && sni_map_path[0] != '\0' && map_load(t, sni_map_path, error_r) < 0)) {
		tls_server_free(&t);
		return NULL;
	}
	return t;
}

void tls_server_free(struct tls_server **tp)
{
	struct tls_server *t = *tp;

	if (t == NULL)
		return;
	for (size_t i = 0; i < t->count; i++) {
		free(t->certs[i].name);
		SSL_CTX_free(t->certs[i].ctx);
	}
	free(t->certs);
	SSL_CTX_free(t->ctx);
	free(t);
	*tp = NULL;
}

/* --- connections ----------------------------------------------------- */

/* Deferred callbacks: the OpenSSL bufferevent may otherwise call back from
 * inside bufferevent_write and the like, re-entering the caller. */
#define TLS_BEV_OPTIONS (BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS)

static SSL *ssl_new(struct tls_server *t)
{
	SSL *ssl = SSL_new(t->ctx);

	if (ssl == NULL)
		log_fatal("TLS: cannot create a connection: out of memory");
	return ssl;
}

struct bufferevent *tls_accept_socket(struct tls_server *t, struct event_base *base, int fd)
{
	SSL *ssl = ssl_new(t);
	struct bufferevent *bev;

	evutil_make_socket_nonblocking(fd);
	/* On failure libevent may or may not have freed the SSL and closed
	 * the socket already; it only fails for want of memory, so give up. */
	bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, TLS_BEV_OPTIONS);
	if (bev == NULL)
		log_fatal("TLS: cannot create a bufferevent: out of memory");
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

struct bufferevent *tls_accept_filter(struct tls_server *t, struct event_base *base, struct bufferevent *plain)
{
	SSL *ssl = ssl_new(t);
	struct bufferevent *bev;

	/* The filter runs its own timeouts; plain's would fire behind them. */
	bufferevent_set_timeouts(plain, NULL, NULL);
	bev = bufferevent_openssl_filter_new(base, plain, ssl, BUFFEREVENT_SSL_ACCEPTING, TLS_BEV_OPTIONS);
	if (bev == NULL)
		log_fatal("TLS: cannot create a bufferevent: out of memory");
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* copy_text - strlcpy: the text, cut to fit. */
static void copy_text(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src != NULL ? src : "");
}

int tls_get_info(struct bufferevent *bev, struct tls_info *out)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	memset(out, 0, sizeof *out);
	if (ssl == NULL || !SSL_is_init_finished(ssl))
		return -1;
	copy_text(out->version, sizeof out->version, SSL_get_version(ssl));
	copy_text(out->cipher, sizeof out->cipher, SSL_get_cipher_name(ssl));
	out->bits = SSL_get_cipher_bits(ssl, NULL);
	copy_text(out->sni, sizeof out->sni, SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
	return 0;
}

const char *tls_last_error(struct bufferevent *bev, char *buf, size_t size)
{
	int saved = errno;
	size_t used = 0;
	unsigned long e;

	if (size == 0)
		return buf;
	buf[0] = '\0';
	/* libevent keeps the last few OpenSSL errors of the connection and
	 * hands them out newest first. */
	while ((e = bufferevent_get_openssl_error(bev)) != 0) {
		const char *reason = ERR_reason_error_string(e);
		int n;

		/* libevent also files SSL_get_error()'s small codes here. */
		if (reason == NULL && ERR_GET_LIB(e) == 0)
			continue;
		if (reason != NULL)
			n = snprintf(buf + used, size - used, "%s%s", used > 0 ? "; " : "", reason);
		else
			n = snprintf(buf + used, size - used, "%sOpenSSL error %08lx", used > 0 ? "; " : "", e);
		if (n < 0 || (size_t)n >= size - used) {
			used = size - 1;
			continue; /* full: still take the rest off the list */
		}
		used += (size_t)n;
	}
	if (used == 0)
		snprintf(buf, size, "%s", saved != 0 ? strerror(saved) : "connection closed during the TLS exchange");
	return buf;
}

/* --- self-signed certificates ---------------------------------------- */

/* add_ext - one extension in OpenSSL's configuration syntax (constant
 * text only: nothing from the user goes through this parser). */
static int add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, v3, nid, value);
	int ok;

	if (ext == NULL)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

/* san_add - one subjectAltName entry: an IP address if name is one, else
 * a DNS name. */
static int san_add(GENERAL_NAMES *names, const char *name)
{
	GENERAL_NAME *g = GENERAL_NAME_new();
	ASN1_OCTET_STRING *ip = NULL;
	ASN1_IA5STRING *dns = NULL;

	if (g == NULL)
		return -1;
	if ((ip = a2i_IPADDRESS(name)) != NULL) {
		GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
	} else {
		ERR_clear_error();
		dns = ASN1_IA5STRING_new();
		if (dns == NULL || ASN1_STRING_set(dns, name, -1) != 1) {
			ASN1_IA5STRING_free(dns);
			GENERAL_NAME_free(g);
			return -1;
		}
		GENERAL_NAME_set0_value(g, GEN_DNS, dns);
	}
	if (sk_GENERAL_NAME_push(names, g) <= 0) {
		GENERAL_NAME_free(g);
		return -1;
	}
	return 0;
}

/* is_ip - name is an IPv4 or IPv6 address. */
static bool is_ip(const char *name)
{
	unsigned char addr[16];

	return inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}

/* selfsigned_build - key and certificate in PEM (new memory). */
static int selfsigned_build(const char *hostname, char **names, size_t n_names, int days, char **cert_pem_r,
			    size_t *cert_len_r, char **key_pem_r, size_t *key_len_r, char **error_r)
{
	char reason[256];
	unsigned char serial[16];
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	X509_NAME *subject;
	X509V3_CTX v3;
	GENERAL_NAMES *sans = NULL;
	BIGNUM *bn = NULL;
	BIO *cert_bio = NULL, *key_bio = NULL;
	char *p;
	long len;
	int rc = -1;

	ERR_clear_error();
	key = EVP_EC_gen("P-256");
	x = X509_new();
	sans = sk_GENERAL_NAME_new_null();
	if (key == NULL || x == NULL || sans == NULL)
		goto fail;
	/* A random positive 127-bit serial: unique without a serial file. */
	if (RAND_bytes(serial, sizeof serial) != 1)
		goto fail;
	serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x40);
	bn = BN_bin2bn(serial, sizeof serial, NULL);
	if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
		goto fail;
	/* Valid from an hour ago: a client whose clock is a little slow
	 * should not see a certificate from the future. */
	if (X509_set_version(x, X509_VERSION_3) != 1 || X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) == NULL || X509_set_pubkey(x, key) != 1)
		goto fail;
	subject = X509_get_subject_name(x);
	if (strlen(hostname) <= CN_MAX &&
	    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, (const unsigned char *)hostname, -1, -1, 0) != 1)
		goto fail;
	if (X509_set_issuer_name(x, subject) != 1)
		goto fail;
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	if (add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(x, &v3, NID_key_usage, "critical,digitalSignature") < 0 ||
	    add_ext(x, &v3, NID_ext_key_usage, "serverAuth") < 0 ||
	    add_ext(x, &v3, NID_subject_key_identifier, "hash") < 0)
		goto fail;
	for (size_t i = 0; i < n_names; i++)
		if (san_add(sans, names[i]) < 0)
			goto fail;
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, sans, 0, X509V3_ADD_DEFAULT) != 1)
		goto fail;
	if (X509_sign(x, key, EVP_sha256()) <= 0)
		goto fail;
	/* The key goes through a BIO that wipes its memory when freed. */
	cert_bio = BIO_new(BIO_s_mem());
	key_bio = BIO_new(BIO_s_secmem());
	if (cert_bio == NULL || key_bio == NULL || PEM_write_bio_X509(cert_bio, x) != 1 ||
	    PEM_write_bio_PrivateKey(key_bio, key, NULL, NULL, 0, NULL, NULL) != 1)
		goto fail;
	len = BIO_get_mem_data(cert_bio, &p);
	*cert_pem_r = xstrndup(p, (size_t)len);
	*cert_len_r = (size_t)len;
	len = BIO_get_mem_data(key_bio, &p);
	*key_pem_r = xstrndup(p, (size_t)len);
	*key_len_r = (size_t)len;
	rc = 0;
fail:
	if (rc < 0)
		*error_r = xasprintf("cannot make a certificate for %s: %s", hostname,
				     ssl_reason(reason, sizeof reason));
	BIO_free(cert_bio);
	BIO_free(key_bio);
	BN_free(bn);
	GENERAL_NAMES_free(sans);
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

/* write_temp - data into a new temporary file beside path, with mode
 * (whatever the umask), synced; its name in *tmp_r. -1 and a new error. */
static int write_temp(const char *path, const char *data, size_t len, mode_t mode, char **tmp_r, char **error_r)
{
	char *tmp = xasprintf("%s.XXXXXX", path);
	int fd = mkostemp(tmp, O_CLOEXEC);

	if (fd < 0) {
		*error_r = xasprintf("cannot create %s: %s", path, strerror(errno));
		free(tmp);
		return -1;
	}
	if (fchmod(fd, mode) < 0 || fd_write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		*error_r = xasprintf("cannot write %s: %s", path, strerror(errno));
		close(fd);
		unlink(tmp);
		free(tmp);
		return -1;
	}
	if (close(fd) < 0) {
		*error_r = xasprintf("cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
		free(tmp);
		return -1;
	}
	*tmp_r = tmp;
	return 0;
}

/* sync_dir_of - fsync the directory holding path, so the rename lasts. */
static void sync_dir_of(const char *path)
{
	char *copy = xstrdup(path);

	dir_fsync(dirname(copy));
	free(copy);
}

int tls_make_selfsigned(const char *hostname, const char *const *extra_names, size_t n_extra, int days,
			const char *cert_path, const char *key_path, char **error_r)
{
	char **names = xcalloc(n_extra + 1, sizeof *names);
	size_t n_names = 0;
	char *host = name_normalize(hostname);
	char *cert_pem = NULL, *key_pem = NULL;
	size_t cert_len = 0, key_len = 0;
	char *cert_tmp = NULL, *key_tmp = NULL;
	int rc = -1;

	if (host == NULL || host[0] == '*') {
		*error_r = xasprintf("\"%s\" is not a host name", hostname);
		goto out;
	}
	if (days < 1 || days > DAYS_MAX) {
		*error_r = xasprintf("%d days: the validity must be 1 to %d days", days, DAYS_MAX);
		goto out;
	}
	if (strcmp(cert_path, key_path) == 0) {
		*error_r = xasprintf("the certificate and the key cannot both be %s", cert_path);
		goto out;
	}
	names[n_names++] = xstrdup(host);
	for (size_t i = 0; i < n_extra; i++) {
		char *n = is_ip(extra_names[i]) ? xstrdup(extra_names[i]) : name_normalize(extra_names[i]);
		bool seen = false;

		if (n == NULL) {
			*error_r = xasprintf("\"%s\" is neither a host name, \"*.\" and one, nor an IP address",
					     extra_names[i]);
			goto out;
		}
		for (size_t j = 0; j < n_names && !seen; j++)
			seen = strcmp(names[j], n) == 0;
		if (seen)
			free(n);
		else
			names[n_names++] = n;
	}
	if (selfsigned_build(host, names, n_names, days, &cert_pem, &cert_len, &key_pem, &key_len, error_r) < 0)
		goto out;
	/* Both files are complete on disk before either replaces anything. */
	if (write_temp(key_path, key_pem, key_len, 0600, &key_tmp, error_r) < 0 ||
	    write_temp(cert_path, cert_pem, cert_len, 0644, &cert_tmp, error_r) < 0)
		goto out;
	if (rename(key_tmp, key_path) < 0) {
		*error_r = xasprintf("cannot rename %s to %s: %s", key_tmp, key_path, strerror(errno));
		goto out;
	}
	xfree_ptr(&key_tmp);
	if (rename(cert_tmp, cert_path) < 0) {
		*error_r = xasprintf("cannot rename %s to %s: %s", cert_tmp, cert_path, strerror(errno));
		goto out;
	}
	xfree_ptr(&cert_tmp);
	sync_dir_of(key_path);
	sync_dir_of(cert_path);
	rc = 0;
out:
	if (key_tmp != NULL)
		unlink(key_tmp);
	if (cert_tmp != NULL)
		unlink(cert_tmp);
	free(key_tmp);
	free(cert_tmp);
	wipe_free(key_pem, key_len);
	free(cert_pem);
	for (size_t i = 0; i < n_names; i++)
		free(names[i]);
	free(names);
	free(host);
	return rc;
}

/* hex - bytes as hex, optionally separated by colons; out has room. */
static void hex(char *out, const unsigned char *md, unsigned int n, bool colons, const char *digits)
{
	char *p = out;

	for (unsigned int i = 0; i < n; i++) {
		if (colons && i > 0)
			*p++ = ':';
		*p++ = digits[md[i] >> 4];
		*p++ = digits[md[i] & 0xf];
	}
	*p = '\0';
}

int tls_cert_digests(const char *path, struct tls_cert_digests *out, char **error_r)
{
	char reason[256];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n;
	X509 *leaf;
	STACK_OF(X509) *chain;
	int rc = 0;

	memset(out, 0, sizeof *out);
	if (load_certs("certificate", path, &leaf, &chain, error_r) < 0)
		return -1;
	if (X509_digest(leaf, EVP_sha256(), md, &n) != 1 || n != 32) {
		*error_r = xasprintf("certificate %s: %s", path, ssl_reason(reason, sizeof reason));
		rc = -1;
	} else {
		hex(out->cert_sha256, md, n, true, "0123456789ABCDEF");
	}
	/* TLSA selector 1 is the whole DER SubjectPublicKeyInfo (not what
	 * X509_pubkey_digest hashes: the key's bits alone). */
	if (rc == 0) {
		unsigned char *der = NULL;
		int der_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(leaf), &der);

		if (der_len <= 0 || EVP_Digest(der, (size_t)der_len, md, &n, EVP_sha256(), NULL) != 1 || n != 32) {
			*error_r = xasprintf("certificate %s: %s", path, ssl_reason(reason, sizeof reason));
			rc = -1;
		} else {
			hex(out->spki_sha256, md, n, false, "0123456789abcdef");
		}
		OPENSSL_free(der);
	}
	time_text(X509_get0_notAfter(leaf), out->not_after, sizeof out->not_after);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	return rc;
}
