/* xsasl.c - Cyrus libsasl2 on the server side (xsasl.h): configuration by
 * callbacks, an in-process auxprop plugin for SCRAM secrets, and one
 * exchange per client login.
 *
 * libsasl2 2.1.28 pitfalls this file works around (see also the notes
 * in the design documents):
 *   - Options the GETOPT callback does not answer are taken from
 *     /etc/sasl2/APP.conf and friends: VERIFYFILE refuses every
 *     configuration file, and every plugin but plain, login and scram
 *     (so sasldb is never loaded), and GETPATH pins the plugin directory
 *     (SASL_PATH in the environment is ignored).
 *   - The checkpass callback is not authoritative: on anything but
 *     SASL_OK the library tries pwcheck_method (auxprop) next, which
 *     compares the typed password with any "userPassword" property. Our
 *     auxprop plugin only ever supplies "*authPassword", and only for
 *     the SCRAM mechanism, and every verdict the library gives is
 *     checked against what the callbacks themselves concluded.
 *   - The library's return code for a failure is the fallback's, not
 *     ours: the reason for the log comes from the callbacks.
 *   - Without SASL_SUCCESS_DATA the server's final SCRAM message comes
 *     as one more challenge; the client's empty answer to it ends the
 *     exchange with SASL_OK.
 *
 * The callbacks need the exchange being worked on: libsasl2 calls them
 * from inside sasl_server_start/step, so "current" points at it for the
 * duration of those calls (one thread, no reentry).
 */
#include "config.h"
#include "xsasl.h"
#include "directory.h"
#include "password.h"
#include "sasl_mechs.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/sanitize.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sasl/sasl.h>
#include <sasl/saslplug.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define AUXPROP_NAME "yubin"
#define SECRET_PROP "*authPassword"
#define MECHS_TEXT_MAX 128
#define EXTERNAL_SSF 256 /* any value > 1 lifts SASL_SEC_NOPLAINTEXT */
#define RANDOM_DEVICE "/dev/urandom"

/* libsasl2 declares every callback as int (*)(void); going through
 * void (*)(void) tells the compiler the cast is meant. */
#define SASL_CB(f) ((int (*)(void))(void (*)(void))(f))

/* The mechanisms Yubin offers (sasl_mechs.h has the list and which of
 * them send the password itself), and what libsasl2 needs for each. */
struct mech {
	const char *name;
	bool uses_secret;   /* checked against the SCRAM secret (auxprop) */
	bool needs_random;  /* server nonces from libsasl2's generator */
	const char *plugin; /* the plugin file that provides it */
};

static const struct mech mechs[] = {
	{ "PLAIN", false, false, "libplain.so" },
	{ "LOGIN", false, false, "liblogin.so" },
	{ "SCRAM-SHA-256", true, true, "libscram.so" },
};

#define MECH_COUNT (sizeof mechs / sizeof mechs[0])

static struct {
	bool initialized;
	xsasl_lookup_fn *lookup;
	void *ctx;
	char *hostname;
	char *plugin_dir;
	const struct mech *order[MECH_COUNT]; /* configured, in order */
	size_t count;
	bool withdrawn[MECH_COUNT];           /* by xsasl_server_check_random */
	char mech_list[MECHS_TEXT_MAX];       /* for libsasl2's mech_list option */
	char offer_secure[MECHS_TEXT_MAX];
	char offer_plain[MECHS_TEXT_MAX];
	uint8_t fake_key[PASSWORD_FAKE_KEY_LEN];
} xs;

/* What the callbacks concluded about the exchange. */
enum outcome {
	OUT_NONE,
	OUT_VERIFIED, /* PLAIN/LOGIN: the password matched, the user is enabled */
	OUT_SECRET,   /* SCRAM: the real secret of an enabled user was handed out */
	OUT_BAD_PASSWORD,
	OUT_NO_HASH,
	OUT_UNKNOWN,
	OUT_DISABLED,
	OUT_NO_SECRET,
	OUT_BLOCKED,
	OUT_ERROR,
};

struct xsasl_exchange {
	sasl_conn_t *conn;
	const struct mech *mech; /* NULL: not offered */
	bool done;
	char *given_user;        /* the authentication id as the client gave it, lower-cased */
	bool looked_up;
	enum xsasl_lookup lookup;
	struct dir_user user;
	char *lookup_error;
	enum outcome outcome;
	char *vouched;           /* the name the outcome is about */
	char *reason;            /* built text for the reply */
};

static struct xsasl_exchange *current;

/* --- configuration ------------------------------------------------- */

static const struct mech *mech_find(const char *name, size_t len)
{
	for (size_t i = 0; i < MECH_COUNT; i++)
		if (strlen(mechs[i].name) == len && strncasecmp(mechs[i].name, name, len) == 0)
			return &mechs[i];
	return NULL;
}

static bool mech_enabled(const struct mech *m)
{
	for (size_t i = 0; i < xs.count; i++)
		if (xs.order[i] == m)
			return !xs.withdrawn[m - mechs];
	return false;
}

/* parse_mechanisms - auth_mechanisms into xs.order (sasl_mechs.h
 * checks and orders the list); -1 and *error_r. */
static int parse_mechanisms(const char *text, char **error_r)
{
	struct buf list = BUF_INIT;
	const char *reason, *p;
	char clean[SANITIZE_MAX];

	xs.count = 0;
	if (sasl_mechs_check(text, &reason) < 0) {
		*error_r = xasprintf("auth_mechanisms = \"%s\": %s", sanitize(clean, sizeof clean, text, strlen(text)),
				     reason);
		return -1;
	}
	sasl_mechs_offered(text, true, &list);
	for (p = buf_cstr(&list); *p != '\0';) {
		size_t len = strcspn(p, " ");
		const struct mech *m = mech_find(p, len);

		if (m == NULL)
			log_panic("SASL mechanism %.*s has no libsasl2 plugin in xsasl.c", (int)len, p);
		if (xs.count < MECH_COUNT)
			xs.order[xs.count++] = m;
		p += len + strspn(p + len, " ");
	}
	buf_free(&list);
	return 0;
}

/* build_offers - the two offer lists and libsasl2's mech_list. */
static void build_offers(void)
{
	xs.mech_list[0] = xs.offer_secure[0] = xs.offer_plain[0] = '\0';
	for (size_t i = 0; i < xs.count; i++) {
		const struct mech *m = xs.order[i];

		if (xs.withdrawn[m - mechs])
			continue;
		if (xs.offer_secure[0] != '\0')
			strcat(xs.offer_secure, " ");
		strcat(xs.offer_secure, m->name);
		if (!sasl_mech_plaintext(m->name)) {
			if (xs.offer_plain[0] != '\0')
				strcat(xs.offer_plain, " ");
			strcat(xs.offer_plain, m->name);
		}
	}
	/* The library loads what mech_list names (an empty option would
	 * mean "all"; sasl_mechs_check lets no empty list through). */
	snprintf(xs.mech_list, sizeof xs.mech_list, "%s", xs.offer_secure[0] != '\0' ? xs.offer_secure : "PLAIN");
}

/* default_plugin_dir - the sasl2 directory beside the libsasl2 this
 * process runs (Debian: /usr/lib/<triplet>/sasl2, and so on for other
 * systems' libdir); new memory. */
static char *default_plugin_dir(void)
{
	Dl_info info;
	const char *slash;

	if (dladdr((void *)sasl_server_init, &info) != 0 && info.dli_fname != NULL &&
	    (slash = strrchr(info.dli_fname, '/')) != NULL)
		return xasprintf("%.*s/sasl2", (int)(slash - info.dli_fname), info.dli_fname);
	return xstrdup("/usr/lib/sasl2");
}

/* --- libsasl2 callbacks -------------------------------------------- */

static int cb_getopt(void *context, const char *plugin_name, const char *option, const char **result,
		     unsigned *len)
{
	const char *value = NULL;

	(void)context;
	/* Options of one plugin (the scram iteration count for new
	 * secrets, and so on): the plugins' defaults. */
	if (plugin_name != NULL)
		return SASL_FAIL;
	if (strcmp(option, "mech_list") == 0)
		value = xs.mech_list;
	else if (strcmp(option, "pwcheck_method") == 0)
		value = "auxprop";
	else if (strcmp(option, "auxprop_plugin") == 0)
		value = AUXPROP_NAME;
	else if (strcmp(option, "canon_user_plugin") == 0)
		value = "INTERNAL";
	else if (strcmp(option, "auto_transition") == 0)
		value = "no"; /* never write anything back */
	else if (strcmp(option, "allowanonymouslogin") == 0)
		value = "no";
	else if (strcmp(option, "log_level") == 0)
		value = "3"; /* SASL_LOG_WARN: nothing above it reaches cb_log */
	if (value == NULL)
		return SASL_FAIL;
	*result = value;
	if (len != NULL)
		*len = (unsigned)strlen(value);
	return SASL_OK;
}

static int cb_log(void *context, int level, const char *message)
{
	char clean[512];

	(void)context;
	if (message == NULL)
		return SASL_OK;
	/* Never SASL_LOG_PASS (7) or the traces: they can hold passwords.
	 * Failures are logged by auth, one line each, in its own words. */
	switch (level) {
	case SASL_LOG_ERR:
	case SASL_LOG_WARN:
		log_warn("libsasl2: %s", sanitize(clean, sizeof clean, message, strlen(message)));
		break;
	case SASL_LOG_FAIL:
	case SASL_LOG_NOTE:
		log_debug("libsasl2: %s", sanitize(clean, sizeof clean, message, strlen(message)));
		break;
	default:
		break;
	}
	return SASL_OK;
}

/* plugin_allowed - file is one of the plugins of the offered mechanisms. */
static bool plugin_allowed(const char *file)
{
	const char *base = strrchr(file, '/');

	base = base != NULL ? base + 1 : file;
	for (size_t i = 0; i < MECH_COUNT; i++)
		if (strcmp(base, mechs[i].plugin) == 0)
			return true;
	return false;
}

static int cb_verifyfile(void *context, const char *file, sasl_verify_type_t type)
{
	(void)context;
	/* SASL_CONTINUE: skip this file. No configuration file is ever
	 * read (everything comes from cb_getopt), and no plugin but the
	 * three we use is loaded: sasldb in particular never is. */
	if (type == SASL_VRFY_PLUGIN && file != NULL && plugin_allowed(file))
		return SASL_OK;
	log_debug("libsasl2: not using %s", file != NULL ? file : "(null)");
	return SASL_CONTINUE;
}

static int cb_getpath(void *context, const char **path)
{
	(void)context;
	*path = xs.plugin_dir;
	return SASL_OK;
}

/* cb_canon - the login name as the tables spell keys: blanks around it
 * trimmed (as libsasl2's INTERNAL step would), ASCII letters lower-cased.
 * The authentication id is kept as the exchange's user, so that the name
 * the throttle counts is the name that is looked up. Names with control
 * characters (NUL included) end the exchange. */
static int cb_canon(sasl_conn_t *conn, void *context, const char *in, unsigned inlen, unsigned flags,
		    const char *user_realm, char *out, unsigned out_max, unsigned *out_len)
{
	struct xsasl_exchange *ex = current;
	unsigned len = 0;
	bool bad = false;

	(void)conn;
	(void)context;
	(void)user_realm;
	if (ex == NULL || out_max == 0)
		return SASL_FAIL;
	while (inlen > 0 && (in[0] == ' ' || in[0] == '\t')) {
		in++;
		inlen--;
	}
	while (inlen > 0 && (in[inlen - 1] == ' ' || in[inlen - 1] == '\t'))
		inlen--;
	for (unsigned i = 0; i < inlen && len + 1 < out_max && len < DIR_ADDRESS_MAX; i++) {
		unsigned char c = (unsigned char)in[i];

		bad |= c < 0x20 || c == 0x7f;
		out[len++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : (char)c;
	}
	out[len] = '\0';
	if ((flags & SASL_CU_AUTHID) && ex->given_user == NULL)
		ex->given_user = xstrndup(out, len); /* for the log: cut at a NUL, sanitised there */
	if (bad || len < inlen || len == 0)
		return SASL_BADPROT;
	*out_len = len;
	return SASL_OK;
}

/* look_up - the table's answer for name, once per exchange. */
static enum xsasl_lookup look_up(struct xsasl_exchange *ex, const char *name)
{
	if (!ex->looked_up) {
		ex->looked_up = true;
		ex->lookup = xs.lookup(xs.ctx, name, &ex->user, &ex->lookup_error);
		ex->vouched = xstrdup(name);
	} else if (strcmp(ex->vouched, name) != 0) {
		/* One exchange, one account: a second name is not looked up. */
		return XSASL_LOOKUP_UNKNOWN;
	}
	return ex->lookup;
}

static int cb_checkpass(sasl_conn_t *conn, void *context, const char *user, const char *pass, unsigned passlen,
			struct propctx *propctx)
{
	struct xsasl_exchange *ex = current;
	int rc;

	(void)conn;
	(void)context;
	(void)propctx;
	if (ex == NULL || ex->mech == NULL || ex->mech->uses_secret)
		return SASL_FAIL;
	if (ex->outcome != OUT_NONE)
		return ex->outcome == OUT_VERIFIED && strcmp(ex->vouched, user) == 0 ? SASL_OK : SASL_BADAUTH;
	switch (look_up(ex, user)) {
	case XSASL_LOOKUP_BLOCKED:
		ex->outcome = OUT_BLOCKED;
		return SASL_FAIL;
	case XSASL_LOOKUP_ERROR:
		ex->outcome = OUT_ERROR;
		return SASL_FAIL;
	case XSASL_LOOKUP_UNKNOWN:
		/* As long as checking a real user's password takes. */
		password_verify_dummy(pass, passlen);
		ex->outcome = OUT_UNKNOWN;
		return SASL_BADAUTH;
	case XSASL_LOOKUP_FOUND:
		break;
	}
	rc = password_verify(ex->user.password, pass, passlen);
	if (rc < 0) {
		password_verify_dummy(pass, passlen);
		ex->outcome = OUT_NO_HASH;
	} else if (rc == 0) {
		ex->outcome = OUT_BAD_PASSWORD;
	} else if (!ex->user.enabled) {
		ex->outcome = OUT_DISABLED;
	} else {
		ex->outcome = OUT_VERIFIED;
		return SASL_OK;
	}
	return SASL_BADAUTH;
}

/* secret_for - the SCRAM secret to hand out for name: the user's own
 * only for an enabled user that has a valid one; a fake one for anybody
 * else (so the exchange fails at the proof, like a wrong password);
 * NULL when nothing may be checked (blocked, table error). New memory. */
static char *secret_for(struct xsasl_exchange *ex, const char *name)
{
	enum xsasl_lookup found = look_up(ex, name);

	if (found == XSASL_LOOKUP_BLOCKED || found == XSASL_LOOKUP_ERROR) {
		if (ex->outcome == OUT_NONE)
			ex->outcome = found == XSASL_LOOKUP_BLOCKED ? OUT_BLOCKED : OUT_ERROR;
		return NULL;
	}
	if (ex->outcome == OUT_NONE) {
		if (found == XSASL_LOOKUP_UNKNOWN)
			ex->outcome = OUT_UNKNOWN;
		else if (!ex->user.enabled)
			ex->outcome = OUT_DISABLED;
		else if (ex->user.scram == NULL || !password_scram_valid(ex->user.scram))
			ex->outcome = OUT_NO_SECRET;
		else
			ex->outcome = OUT_SECRET;
	}
	if (ex->outcome == OUT_SECRET && strcmp(ex->vouched, name) == 0)
		return xstrdup(ex->user.scram);
	return password_scram_fake(xs.fake_key, name);
}

/* aux_lookup - the auxprop plugin: "*authPassword" for the SCRAM
 * mechanism, nothing else, ever. Always SASL_OK: whether the user
 * exists is not this plugin's to say (an error here would end a PLAIN
 * exchange before the password is checked, telling unknown users apart
 * by timing). */
static int aux_lookup(void *glob_context, sasl_server_params_t *sparams, unsigned flags, const char *user,
		      unsigned ulen)
{
	struct xsasl_exchange *ex = current;
	const struct propval *cur;
	char *name;

	(void)glob_context;
	if (ex == NULL || ex->mech == NULL || !ex->mech->uses_secret || (flags & SASL_AUXPROP_AUTHZID))
		return SASL_OK;
	name = xstrndup(user, ulen);
	for (cur = sparams->utils->prop_get(sparams->propctx); cur != NULL && cur->name != NULL; cur++) {
		char *secret;

		if (strcmp(cur->name, SECRET_PROP) != 0)
			continue;
		if (cur->values != NULL && !(flags & SASL_AUXPROP_OVERRIDE))
			continue;
		if (cur->values != NULL)
			sparams->utils->prop_erase(sparams->propctx, cur->name);
		secret = secret_for(ex, name);
		if (secret != NULL) {
			sparams->utils->prop_set(sparams->propctx, cur->name, secret, (unsigned)strlen(secret));
			explicit_bzero(secret, strlen(secret));
			free(secret);
		}
	}
	free(name);
	return SASL_OK;
}

static char aux_name[] = AUXPROP_NAME;

static sasl_auxprop_plug_t aux_plugin = {
	.features = 0,
	.spare_int1 = 0,
	.glob_context = NULL,
	.auxprop_free = NULL,
	.auxprop_lookup = aux_lookup,
	.name = aux_name,
	.auxprop_store = NULL, /* never stores anything */
};

static int aux_init(const sasl_utils_t *utils, int max_version, int *out_version, sasl_auxprop_plug_t **plug,
		    const char *plugname)
{
	(void)utils;
	(void)plugname;
	if (max_version < SASL_AUXPROP_PLUG_VERSION)
		return SASL_BADVERS;
	*out_version = SASL_AUXPROP_PLUG_VERSION;
	*plug = &aux_plugin;
	return SASL_OK;
}

static const sasl_callback_t server_callbacks[] = {
	{ SASL_CB_GETOPT, SASL_CB(cb_getopt), NULL },
	{ SASL_CB_LOG, SASL_CB(cb_log), NULL },
	{ SASL_CB_VERIFYFILE, SASL_CB(cb_verifyfile), NULL },
	{ SASL_CB_GETPATH, SASL_CB(cb_getpath), NULL },
	{ SASL_CB_CANON_USER, SASL_CB(cb_canon), NULL },
	{ SASL_CB_SERVER_USERDB_CHECKPASS, SASL_CB(cb_checkpass), NULL },
	{ SASL_CB_LIST_END, NULL, NULL },
};

/* --- the server ---------------------------------------------------- */

/* check_loaded - every configured mechanism is among those libsasl2
 * loaded; -1 and *error_r naming the first that is not. */
static int check_loaded(char **error_r)
{
	const char **loaded = sasl_global_listmech();

	for (size_t i = 0; i < xs.count; i++) {
		bool found = false;

		for (size_t j = 0; loaded != NULL && loaded[j] != NULL && !found; j++)
			found = strcmp(loaded[j], xs.order[i]->name) == 0;
		if (!found) {
			*error_r = xasprintf("SASL mechanism %s is not available: no %s in %s (Debian: apt-get "
					     "install libsasl2-modules)",
					     xs.order[i]->name, xs.order[i]->plugin, xs.plugin_dir);
			return -1;
		}
	}
	return 0;
}

int xsasl_server_init(const struct xsasl_server_config *config, char **error_r)
{
	struct stat st = { 0 };
	int r;

	if (xs.initialized) {
		*error_r = xstrdup("xsasl_server_init called twice");
		return -1;
	}
	memset(&xs, 0, sizeof xs);
	if (parse_mechanisms(config->mechanisms != NULL ? config->mechanisms : "", error_r) < 0)
		return -1;
	build_offers();
	xs.lookup = config->lookup;
	xs.ctx = config->ctx;
	xs.hostname = xstrdup(config->hostname != NULL ? config->hostname : "localhost");
	xs.plugin_dir = config->plugin_dir != NULL ? xstrdup(config->plugin_dir) : default_plugin_dir();
	if (stat(xs.plugin_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		const char *why = st.st_mode == 0 ? strerror(errno) : "not a directory";

		*error_r = xasprintf("SASL plugin directory %s: %s (Debian: apt-get install libsasl2-modules)",
				     xs.plugin_dir, why);
		goto fail;
	}
	if (password_random(xs.fake_key, sizeof xs.fake_key) < 0) {
		*error_r = xasprintf("no random bytes for the SASL fake-secret key: %s", strerror(errno));
		goto fail;
	}
	r = sasl_auxprop_add_plugin(AUXPROP_NAME, aux_init);
	if (r != SASL_OK) {
		*error_r = xasprintf("sasl_auxprop_add_plugin: %s", sasl_errstring(r, NULL, NULL));
		goto fail;
	}
	r = sasl_server_init(server_callbacks, config->app_name != NULL ? config->app_name : "yubin");
	if (r != SASL_OK) {
		*error_r = xasprintf("sasl_server_init: %s", sasl_errstring(r, NULL, NULL));
		sasl_server_done();
		goto fail;
	}
	xs.initialized = true;
	if (check_loaded(error_r) < 0) {
		xsasl_server_done();
		return -1;
	}
	return 0;
fail:
	xfree_ptr(&xs.hostname);
	xfree_ptr(&xs.plugin_dir);
	return -1;
}

int xsasl_server_check_random(char **warning_r)
{
	uint8_t probe[16];
	int fd = open(RANDOM_DEVICE, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, probe, sizeof probe) : -1;
	int saved = errno;
	struct buf dropped = BUF_INIT;

	if (fd >= 0)
		close(fd);
	if (n == (ssize_t)sizeof probe)
		return 0;
	for (size_t i = 0; i < xs.count; i++) {
		const struct mech *m = xs.order[i];

		if (m->needs_random && !xs.withdrawn[m - mechs]) {
			xs.withdrawn[m - mechs] = true;
			buf_printf(&dropped, "%s%s", dropped.len > 0 ? " " : "", m->name);
		}
	}
	build_offers();
	if (dropped.len == 0)
		return 0;
	*warning_r = xasprintf("%s cannot be read here (%s): not offering %s, whose server nonces would come "
			       "from the time and pid (create the device node in the jail, or run auth unjailed)",
			       RANDOM_DEVICE, n < 0 ? strerror(saved) : "short read", buf_cstr(&dropped));
	buf_free(&dropped);
	return -1;
}

void xsasl_server_done(void)
{
	if (xs.initialized)
		sasl_server_done();
	xs.initialized = false;
	xfree_ptr(&xs.hostname);
	xfree_ptr(&xs.plugin_dir);
	explicit_bzero(xs.fake_key, sizeof xs.fake_key);
}

const char *xsasl_server_mechs(bool secure)
{
	return secure ? xs.offer_secure : xs.offer_plain;
}

/* --- exchanges ----------------------------------------------------- */

/* set_reason - the reply's reason, owned by the exchange. */
static void set_reason(struct xsasl_exchange *ex, struct xsasl_reply *reply, char *text)
{
	free(ex->reason);
	ex->reason = text;
	reply->reason = text;
}

/* verdict_ok - SASL_OK from the library: accept it only if our own
 * callbacks vouched for exactly this user. */
static void verdict_ok(struct xsasl_exchange *ex, struct xsasl_reply *reply)
{
	const char *user = NULL, *authid = NULL;
	bool vouched = ex->outcome == (ex->mech->uses_secret ? OUT_SECRET : OUT_VERIFIED);

	if (sasl_getprop(ex->conn, SASL_USERNAME, (const void **)&user) != SASL_OK)
		user = NULL;
	if (sasl_getprop(ex->conn, SASL_AUTHUSER, (const void **)&authid) != SASL_OK)
		authid = NULL;
	if (!vouched || user == NULL || authid == NULL || ex->vouched == NULL || strcmp(user, ex->vouched) != 0 ||
	    strcmp(authid, ex->vouched) != 0) {
		log_warn("libsasl2 accepted a login that the user table did not vouch for (mechanism %s); refused",
			 ex->mech->name);
		reply->status = XSASL_FAIL;
		set_reason(ex, reply, xstrdup("internal check failed"));
		return;
	}
	reply->status = XSASL_OK;
	reply->user = ex->vouched;
}

/* verdict_fail - the library said no: say why from what the callbacks saw. */
static void verdict_fail(struct xsasl_exchange *ex, int r, struct xsasl_reply *reply)
{
	const char *why = NULL;

	reply->status = XSASL_FAIL;
	switch (ex->outcome) {
	case OUT_BLOCKED:
		reply->status = XSASL_TEMP;
		reply->blocked = true;
		why = "too many failed logins";
		break;
	case OUT_ERROR:
		reply->status = XSASL_TEMP;
		set_reason(ex, reply, xasprintf("user table: %s",
						ex->lookup_error != NULL ? ex->lookup_error : "lookup failed"));
		return;
	case OUT_UNKNOWN:
		why = "unknown user";
		break;
	case OUT_DISABLED:
		why = "account disabled";
		break;
	case OUT_NO_SECRET:
		why = "no SCRAM secret stored for this user (set the password again)";
		break;
	case OUT_BAD_PASSWORD:
		why = "bad password";
		break;
	case OUT_NO_HASH:
		why = "no usable password hash stored";
		break;
	case OUT_SECRET:
		/* The real secret was used and the proof did not match. */
		why = r == SASL_BADAUTH ? "bad password" : NULL;
		break;
	case OUT_VERIFIED:
	case OUT_NONE:
		break;
	}
	if (why == NULL) {
		if (r == SASL_BADPROT)
			why = "malformed response";
		else if (r == SASL_NOAUTHZ)
			why = "authorization identity refused";
	}
	if (why != NULL)
		set_reason(ex, reply, xstrdup(why));
	else
		set_reason(ex, reply, xasprintf("authentication failed (%s)", sasl_errstring(r, NULL, NULL)));
}

/* finish - turn the library's answer into the reply. */
static void finish(struct xsasl_exchange *ex, int r, const char *out, unsigned outlen, struct xsasl_reply *reply)
{
	switch (r) {
	case SASL_CONTINUE:
		reply->status = XSASL_CONTINUE;
		reply->challenge = out != NULL ? out : "";
		reply->challenge_len = out != NULL ? outlen : 0;
		return;
	case SASL_OK:
		verdict_ok(ex, reply);
		break;
	case SASL_ENCRYPT:
		reply->status = XSASL_ENCRYPT;
		set_reason(ex, reply, xstrdup("mechanism needs an encrypted connection"));
		break;
	case SASL_NOMECH:
	case SASL_TOOWEAK:
		reply->status = XSASL_FAIL;
		set_reason(ex, reply, xstrdup("mechanism not available"));
		break;
	default:
		verdict_fail(ex, r, reply);
		break;
	}
	ex->done = true;
}

/* call_library - run start or step with the callbacks pointed at ex. */
static int call_library(struct xsasl_exchange *ex, bool start, const void *resp, size_t len, bool has_resp,
			const char **out, unsigned *outlen)
{
	int r;

	current = ex;
	if (start)
		r = sasl_server_start(ex->conn, ex->mech->name, has_resp ? (len > 0 ? resp : "") : NULL,
				      (unsigned)len, out, outlen);
	else
		r = sasl_server_step(ex->conn, len > 0 ? resp : "", (unsigned)len, out, outlen);
	current = NULL;
	return r;
}

struct xsasl_exchange *xsasl_exchange_start(const char *service, const char *mech, const void *resp, size_t len,
					    bool has_resp, bool secure, struct xsasl_reply *reply)
{
	struct xsasl_exchange *ex = xnew(struct xsasl_exchange);
	sasl_security_properties_t props = {
		.min_ssf = 0,
		.max_ssf = 0, /* no SASL security layer: TLS does that */
		.maxbufsize = 0,
		.security_flags = SASL_SEC_NOANONYMOUS | (secure ? 0 : SASL_SEC_NOPLAINTEXT),
	};
	const char *out = NULL;
	unsigned outlen = 0;
	int r;

	memset(reply, 0, sizeof *reply);
	ex->mech = mech_find(mech, strlen(mech));
	if (!xs.initialized || ex->mech == NULL || !mech_enabled(ex->mech)) {
		ex->mech = NULL;
		ex->done = true;
		reply->status = XSASL_FAIL;
		set_reason(ex, reply, xstrdup("mechanism not available"));
		return ex;
	}
	if (sasl_mech_plaintext(ex->mech->name) && !secure) {
		ex->done = true;
		reply->status = XSASL_ENCRYPT;
		set_reason(ex, reply, xstrdup("mechanism needs an encrypted connection"));
		return ex;
	}
	/* No SASL_SUCCESS_DATA: SMTP, POP3 and IMAP send no data with the
	 * success reply, so SCRAM's final message comes as a challenge. */
	r = sasl_server_new(service, xs.hostname, NULL, NULL, NULL, NULL, 0, &ex->conn);
	if (r == SASL_OK)
		r = sasl_setprop(ex->conn, SASL_SEC_PROPS, &props);
	if (r == SASL_OK && secure) {
		sasl_ssf_t ssf = EXTERNAL_SSF;

		r = sasl_setprop(ex->conn, SASL_SSF_EXTERNAL, &ssf);
	}
	if (r != SASL_OK) {
		ex->done = true;
		reply->status = XSASL_TEMP;
		set_reason(ex, reply, xasprintf("cannot start a SASL exchange: %s", sasl_errstring(r, NULL, NULL)));
		return ex;
	}
	r = call_library(ex, true, resp, len, has_resp, &out, &outlen);
	finish(ex, r, out, outlen, reply);
	return ex;
}

void xsasl_exchange_step(struct xsasl_exchange *ex, const void *resp, size_t len, struct xsasl_reply *reply)
{
	const char *out = NULL;
	unsigned outlen = 0;
	int r;

	memset(reply, 0, sizeof *reply);
	if (ex->done || ex->conn == NULL) {
		reply->status = XSASL_FAIL;
		set_reason(ex, reply, xstrdup("exchange already ended"));
		return;
	}
	r = call_library(ex, false, resp, len, false, &out, &outlen);
	finish(ex, r, out, outlen, reply);
}

const char *xsasl_exchange_user(const struct xsasl_exchange *ex)
{
	return ex->given_user;
}

const char *xsasl_exchange_mech(const struct xsasl_exchange *ex)
{
	return ex->mech != NULL ? ex->mech->name : NULL;
}

void xsasl_exchange_free(struct xsasl_exchange **exp)
{
	struct xsasl_exchange *ex = *exp;

	if (ex == NULL)
		return;
	if (ex->conn != NULL)
		sasl_dispose(&ex->conn);
	free(ex->given_user);
	dir_user_free(&ex->user);
	free(ex->lookup_error);
	free(ex->vouched);
	free(ex->reason);
	free(ex);
	*exp = NULL;
}
