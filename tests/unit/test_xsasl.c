#include "config.h"
/* test_xsasl.c - unit tests for libmail/xsasl.c: real SASL exchanges
 * between libsasl2's client (the plugins an MUA's library would use) and
 * xsasl's server side, for PLAIN, LOGIN and SCRAM-SHA-256, against a
 * fake user table given through the lookup callback. Also: what may be
 * offered with and without TLS, failures that look alike to the client,
 * and that configuration files and the sasldb plugin are not used.
 *
 * The test (not Yubin) includes <sasl/sasl.h>: it plays the client. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <sasl/sasl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../libmail/directory.h"
#include "../../libmail/password.h"
#include "../../libmail/xsasl.h"
#include "../../libutil/mem.h"
#include "unit.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define CB(f) ((int (*)(void))(void (*)(void))(f))

/* SHA-crypt's test vector: quick to check, also under valgrind. */
#define HASH_OF_HELLO "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
#define HELLO "Hello world!"

static char *scram_secret; /* of HELLO */
static int lookups;

static enum xsasl_lookup fake_lookup(void *ctx, const char *user, struct dir_user *u, char **error_r)
{
	(void)ctx;
	lookups++;
	memset(u, 0, sizeof *u);
	if (strcmp(user, "err@example.com") == 0) {
		*error_r = xstrdup("users.db: Permission denied");
		return XSASL_LOOKUP_ERROR;
	}
	if (strcmp(user, "blocked@example.com") == 0)
		return XSASL_LOOKUP_BLOCKED;
	if (strcmp(user, "bob@example.com") != 0 && strcmp(user, "alice@example.com") != 0 &&
	    strcmp(user, "old@example.com") != 0)
		return XSASL_LOOKUP_UNKNOWN;
	u->password = xstrdup(HASH_OF_HELLO);
	u->enabled = strcmp(user, "alice@example.com") != 0;
	if (strcmp(user, "old@example.com") != 0)
		u->scram = xstrdup(scram_secret);
	return XSASL_LOOKUP_FOUND;
}

/* --- the client side ------------------------------------------------ */

static const char *cli_authid, *cli_authzid, *cli_password;
static struct {
	sasl_secret_t s;
	char room[256];
} cli_secret;

static int cli_simple(void *context, int id, const char **result, unsigned *len)
{
	(void)context;
	*result = id == SASL_CB_AUTHNAME ? cli_authid : cli_authzid != NULL ? cli_authzid : "";
	if (len != NULL)
		*len = (unsigned)strlen(*result);
	return SASL_OK;
}

static int cli_pass(sasl_conn_t *conn, void *context, int id, sasl_secret_t **psecret)
{
	(void)conn;
	(void)context;
	(void)id;
	cli_secret.s.len = strlen(cli_password);
	memcpy(cli_secret.s.data, cli_password, cli_secret.s.len);
	*psecret = &cli_secret.s;
	return SASL_OK;
}

static int cli_verifyfile(void *context, const char *file, sasl_verify_type_t type)
{
	(void)context;
	if (type == SASL_VRFY_PLUGIN &&
	    (strstr(file, "/libplain.so") || strstr(file, "/liblogin.so") || strstr(file, "/libscram.so")))
		return SASL_OK;
	return SASL_CONTINUE;
}

/* cli_getpath - the client's plugins: beside libsasl2, as the server's
 * (SASL_PATH is set to an empty directory, for the server to ignore). */
static int cli_getpath(void *context, const char **path)
{
	static char dir[512];
	Dl_info info;

	(void)context;
	if (dir[0] == '\0') {
		assert_true(dladdr((void *)sasl_client_init, &info) != 0);
		snprintf(dir, sizeof dir, "%.*s/sasl2", (int)(strrchr(info.dli_fname, '/') - info.dli_fname),
			 info.dli_fname);
	}
	*path = dir;
	return SASL_OK;
}

static const sasl_callback_t client_callbacks[] = {
	{ SASL_CB_GETPATH, CB(cli_getpath), NULL },
	{ SASL_CB_AUTHNAME, CB(cli_simple), NULL },
	{ SASL_CB_USER, CB(cli_simple), NULL },
	{ SASL_CB_PASS, CB(cli_pass), NULL },
	{ SASL_CB_VERIFYFILE, CB(cli_verifyfile), NULL },
	{ SASL_CB_LIST_END, NULL, NULL },
};

struct result {
	enum xsasl_status status;
	char user[128];
	char reason[256];
	int rounds; /* challenges the server sent */
	bool blocked;
};

static void keep(struct result *res, const struct xsasl_reply *r)
{
	res->status = r->status;
	res->blocked = r->blocked;
	snprintf(res->user, sizeof res->user, "%s", r->user != NULL ? r->user : "");
	snprintf(res->reason, sizeof res->reason, "%s", r->reason != NULL ? r->reason : "");
}

/* login - a whole exchange: the libsasl2 client against xsasl. */
static void login(const char *mech, const char *authid, const char *password, bool secure, bool initial,
		  struct result *res)
{
	sasl_conn_t *client = NULL;
	struct xsasl_exchange *ex;
	struct xsasl_reply r;
	const char *out = NULL, *chosen = NULL;
	unsigned outlen = 0;
	int cr;

	memset(res, 0, sizeof *res);
	cli_authid = authid;
	cli_password = password;
	assert_int_equal(sasl_client_new("smtp", "mail.example.com", NULL, NULL, NULL, 0, &client), SASL_OK);
	cr = sasl_client_start(client, mech, NULL, initial ? &out : NULL, initial ? &outlen : NULL, &chosen);
	if (cr != SASL_OK && cr != SASL_CONTINUE)
		fail_msg("sasl_client_start %s: %s", mech, sasl_errdetail(client));
	ex = xsasl_exchange_start("smtp", mech, out, outlen, initial && out != NULL, secure, &r);
	while (r.status == XSASL_CONTINUE) {
		res->rounds++;
		cr = sasl_client_step(client, r.challenge, (unsigned)r.challenge_len, NULL, &out, &outlen);
		if (cr != SASL_OK && cr != SASL_CONTINUE) {
			/* The client gives up (the server's SCRAM signature was
			 * wrong, say): what a real client does is cancel. */
			res->status = XSASL_FAIL;
			snprintf(res->reason, sizeof res->reason, "client: %s", sasl_errdetail(client));
			xsasl_exchange_free(&ex);
			sasl_dispose(&client);
			return;
		}
		xsasl_exchange_step(ex, out, out != NULL ? outlen : 0, &r);
	}
	keep(res, &r);
	xsasl_exchange_free(&ex);
	assert_null(ex);
	sasl_dispose(&client);
}

/* start_raw - one start with a response we make ourselves. */
static void start_raw(const char *mech, const void *resp, size_t len, bool has_resp, bool secure,
		      struct result *res)
{
	struct xsasl_reply r;
	struct xsasl_exchange *ex = xsasl_exchange_start("smtp", mech, resp, len, has_resp, secure, &r);

	memset(res, 0, sizeof *res);
	keep(res, &r);
	if (r.status == XSASL_CONTINUE)
		res->rounds = 1;
	xsasl_exchange_free(&ex);
}

/* --- set-up: server and client, with a configuration file about ---- */

static char *conf_dir, *conf_file, *log_path;

static int setup(void **state)
{
	const struct xsasl_server_config bad = { .mechanisms = "PLAIN CRAM-MD5", .lookup = fake_lookup };
	struct xsasl_server_config config = {
		.app_name = "yubin", .mechanisms = "plain, LOGIN SCRAM-SHA-256 PLAIN", .hostname = "mail.example.com",
		.lookup = fake_lookup,
	};
	static const uint8_t salt[16] = "0123456789abcdef";
	char *error = NULL;

	(void)state;
	scram_secret = password_scram_compute(HELLO, strlen(HELLO), salt, sizeof salt, 4096);
	/* A configuration file libsasl2 would read if it were let: it
	 * would switch to sasldb and allow everything. */
	conf_dir = unit_make_temp_dir();
	conf_file = unit_write_file(conf_dir, "yubin.conf",
				    "pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: ANONYMOUS PLAIN "
				    "CRAM-MD5\nsasldb_path: /nonexistent\nlog_level: 7\n");
	setenv("SASL_CONF_PATH", conf_dir, 1);
	setenv("SASL_PATH", conf_dir, 1); /* must be ignored too */
	log_path = unit_write_temp_str("");
	assert_int_equal(log_set_file(log_path), 0);
	log_set_verbose(true);

	/* An unknown mechanism stops start-up, before the library runs. */
	assert_int_equal(xsasl_server_init(&bad, &error), -1);
	assert_non_null(strstr(error, "CRAM-MD5"));
	free(error);
	error = NULL;
	if (xsasl_server_init(&config, &error) < 0)
		fail_msg("xsasl_server_init: %s", error);
	assert_int_equal(sasl_client_init(client_callbacks), SASL_OK);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sasl_client_done();
	xsasl_server_done();
	log_set_verbose(false);
	unit_remove_temp(conf_file);
	unit_remove_temp_dir(conf_dir);
	unit_remove_temp(log_path);
	free(scram_secret);
	return 0;
}

/* --- tests ---------------------------------------------------------- */

static void test_offers(void **state)
{
	char *warning = NULL;

	(void)state;
	/* The configured order, once each; PLAIN and LOGIN only with TLS. */
	assert_string_equal(xsasl_server_mechs(true), "PLAIN LOGIN SCRAM-SHA-256");
	assert_string_equal(xsasl_server_mechs(false), "SCRAM-SHA-256");
	/* /dev/urandom is there (not jailed): nothing is withdrawn. */
	assert_int_equal(xsasl_server_check_random(&warning), 0);
	assert_null(warning);
	assert_string_equal(xsasl_server_mechs(false), "SCRAM-SHA-256");
}

static void test_plain(void **state)
{
	struct result res;

	(void)state;
	login("PLAIN", "bob@example.com", HELLO, true, true, &res);
	assert_int_equal(res.status, XSASL_OK);
	assert_string_equal(res.user, "bob@example.com");
	/* Names are matched as the tables are: the canonical one comes back. */
	login("PLAIN", "BOB@Example.COM", HELLO, true, true, &res);
	assert_int_equal(res.status, XSASL_OK);
	assert_string_equal(res.user, "bob@example.com");
	/* Without an initial response: an empty challenge first. */
	login("plain", "bob@example.com", HELLO, true, false, &res);
	assert_int_equal(res.status, XSASL_OK);
	assert_int_equal(res.rounds, 1);
	/* Without TLS, PLAIN is refused before anything is checked. */
	lookups = 0;
	login("PLAIN", "bob@example.com", HELLO, false, true, &res);
	assert_int_equal(res.status, XSASL_ENCRYPT);
	assert_int_equal(lookups, 0);
}

static void test_plain_failures(void **state)
{
	static const struct {
		const char *authid;
		const char *password;
		enum xsasl_status status;
		const char *reason;
	} cases[] = {
		{ "bob@example.com", "Hello world?", XSASL_FAIL, "bad password" },
		{ "bob@example.com", "", XSASL_FAIL, "bad password" },
		{ "bob@example.com", HASH_OF_HELLO, XSASL_FAIL, "bad password" }, /* the hash is not the password */
		{ "nobody@example.com", HELLO, XSASL_FAIL, "unknown user" },
		{ "bob", HELLO, XSASL_FAIL, "unknown user" },
		{ "alice@example.com", HELLO, XSASL_FAIL, "account disabled" },
		{ "alice@example.com", "wrong", XSASL_FAIL, "bad password" },
		{ "err@example.com", HELLO, XSASL_TEMP, "users.db: Permission denied" },
		{ "blocked@example.com", HELLO, XSASL_TEMP, "too many failed logins" },
	};
	struct result res;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		login("PLAIN", cases[i].authid, cases[i].password, true, true, &res);
		if (res.status != cases[i].status || strstr(res.reason, cases[i].reason) == NULL)
			fail_msg("%s / %s: status %d reason \"%s\"", cases[i].authid, cases[i].password, res.status,
				 res.reason);
		assert_int_equal(res.blocked, cases[i].status == XSASL_TEMP && strstr(cases[i].reason, "too many"));
		assert_string_equal(res.user, "");
	}
}

static void test_plain_raw(void **state)
{
	static const char authz_other[] = "alice@example.com\0bob@example.com\0" HELLO;
	static const char authz_same[] = "BOB@example.com\0bob@example.com\0" HELLO;
	static const char nul_in_password[] = "\0bob@example.com\0Hello\0world!";
	static const char ctl_in_name[] = "\0bob\n@example.com\0" HELLO;
	static const char no_password[] = "\0bob@example.com";
	struct result res;

	(void)state;
	/* Someone else's identity: refused (the default proxy policy). */
	start_raw("PLAIN", authz_other, sizeof authz_other - 1, true, true, &res);
	assert_int_equal(res.status, XSASL_FAIL);
	/* The same identity, spelt differently: fine. */
	start_raw("PLAIN", authz_same, sizeof authz_same - 1, true, true, &res);
	assert_int_equal(res.status, XSASL_OK);
	assert_string_equal(res.user, "bob@example.com");
	start_raw("PLAIN", nul_in_password, sizeof nul_in_password - 1, true, true, &res);
	assert_int_equal(res.status, XSASL_FAIL);
	start_raw("PLAIN", ctl_in_name, sizeof ctl_in_name - 1, true, true, &res);
	assert_int_equal(res.status, XSASL_FAIL);
	start_raw("PLAIN", no_password, sizeof no_password - 1, true, true, &res);
	assert_int_equal(res.status, XSASL_FAIL);
	/* "=": an empty initial response. */
	start_raw("PLAIN", "", 0, true, true, &res);
	assert_int_equal(res.status, XSASL_FAIL);
	/* Mechanisms not offered, offered ones in any case. */
	start_raw("CRAM-MD5", NULL, 0, false, true, &res);
	assert_int_equal(res.status, XSASL_FAIL);
	assert_string_equal(res.reason, "mechanism not available");
	start_raw("ANONYMOUS", "x", 1, true, true, &res);
	assert_int_equal(res.status, XSASL_FAIL);
	start_raw("SCRAM-SHA-1", NULL, 0, false, true, &res);
	assert_int_equal(res.status, XSASL_FAIL);
	start_raw("", NULL, 0, false, true, &res);
	assert_int_equal(res.status, XSASL_FAIL);
	start_raw("login", NULL, 0, false, true, &res);
	assert_int_equal(res.status, XSASL_CONTINUE);
}

static void test_login(void **state)
{
	struct result res;
	struct xsasl_reply r;
	struct xsasl_exchange *ex;

	(void)state;
	login("LOGIN", "bob@example.com", HELLO, true, false, &res);
	assert_int_equal(res.status, XSASL_OK);
	assert_string_equal(res.user, "bob@example.com");
	assert_int_equal(res.rounds, 2); /* "Username:", "Password:" */
	login("LOGIN", "bob@example.com", "nope", true, false, &res);
	assert_int_equal(res.status, XSASL_FAIL);
	assert_string_equal(res.reason, "bad password");
	login("LOGIN", "bob@example.com", HELLO, false, false, &res);
	assert_int_equal(res.status, XSASL_ENCRYPT);
	/* By hand, as smtpd relays it; the plugin names the user to the
	 * library with the password, so it is known after step two. */
	ex = xsasl_exchange_start("smtp", "LOGIN", NULL, 0, false, true, &r);
	assert_int_equal(r.status, XSASL_CONTINUE);
	assert_null(xsasl_exchange_user(ex));
	assert_string_equal(xsasl_exchange_mech(ex), "LOGIN");
	xsasl_exchange_step(ex, "Bob@Example.com", 15, &r);
	assert_int_equal(r.status, XSASL_CONTINUE);
	xsasl_exchange_step(ex, HELLO, strlen(HELLO), &r);
	assert_int_equal(r.status, XSASL_OK);
	assert_string_equal(xsasl_exchange_user(ex), "bob@example.com");
	assert_string_equal(r.user, "bob@example.com");
	/* After the verdict, nothing more. */
	xsasl_exchange_step(ex, "x", 1, &r);
	assert_int_equal(r.status, XSASL_FAIL);
	xsasl_exchange_free(&ex);
	xsasl_exchange_free(&ex); /* NULL is fine */
}

static void test_scram(void **state)
{
	struct result res;

	(void)state;
	/* Also without TLS: the password is never sent. */
	login("SCRAM-SHA-256", "bob@example.com", HELLO, false, true, &res);
	assert_int_equal(res.status, XSASL_OK);
	assert_string_equal(res.user, "bob@example.com");
	/* server-first, then server-final as a challenge, then ok */
	assert_int_equal(res.rounds, 2);
	login("SCRAM-SHA-256", "Bob@EXAMPLE.com", HELLO, true, true, &res);
	assert_int_equal(res.status, XSASL_OK);
	assert_string_equal(res.user, "bob@example.com");
}

static void test_scram_failures(void **state)
{
	static const struct {
		const char *authid;
		const char *password;
		enum xsasl_status status;
		const char *reason;
		int rounds;
	} cases[] = {
		/* All of these get as far as a wrong password does: a
		 * server-first message, then the refusal of the proof. */
		{ "bob@example.com", "Hello world?", XSASL_FAIL, "bad password", 1 },
		{ "nobody@example.com", HELLO, XSASL_FAIL, "unknown user", 1 },
		{ "alice@example.com", HELLO, XSASL_FAIL, "account disabled", 1 },
		{ "old@example.com", HELLO, XSASL_FAIL, "no SCRAM secret", 1 },
		/* These end at once. */
		{ "blocked@example.com", HELLO, XSASL_TEMP, "too many failed logins", 0 },
		{ "err@example.com", HELLO, XSASL_TEMP, "Permission denied", 0 },
	};
	struct result res;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		login("SCRAM-SHA-256", cases[i].authid, cases[i].password, false, true, &res);
		if (res.status != cases[i].status || strstr(res.reason, cases[i].reason) == NULL ||
		    res.rounds != cases[i].rounds)
			fail_msg("%s: status %d reason \"%s\" rounds %d", cases[i].authid, res.status, res.reason,
				 res.rounds);
	}
}

static void test_no_config_files(void **state)
{
	FILE *fp;
	char line[1024];
	bool conf_refused = false;

	(void)state;
	/* libsasl2 was shown the configuration file and skipped it, and it
	 * loaded nothing from SASL_PATH (the plugins came from the pinned
	 * directory: the exchanges above worked). */
	fp = fopen(log_path, "r");
	assert_non_null(fp);
	while (fgets(line, sizeof line, fp) != NULL) {
		if (strstr(line, "not using ") != NULL && strstr(line, "/yubin.conf") != NULL)
			conf_refused = true;
		assert_null(strstr(line, HELLO));
	}
	fclose(fp);
	assert_true(conf_refused);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_offers),         cmocka_unit_test(test_plain),
		cmocka_unit_test(test_plain_failures), cmocka_unit_test(test_plain_raw),
		cmocka_unit_test(test_login),          cmocka_unit_test(test_scram),
		cmocka_unit_test(test_scram_failures), cmocka_unit_test(test_no_config_files),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
