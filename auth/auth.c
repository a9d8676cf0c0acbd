/* auth.c - the auth daemon: answers user, alias and domain lookups for
 * smtpd and qmgr, and runs SASL logins for the network daemons
 * (auth/PROTOCOL.md); the only process that can read the password hashes
 * in users.db.
 *
 * master runs it as auth_owner, jailed in data_directory (master.conf:
 * "auth unix auth,sasl ${auth_owner} ${data_directory} 1 auth"): listener
 * 0 (private/auth) speaks auth-lookup, listener 1 (private/sasl)
 * auth-sasl. The tables are opened after the privilege drop, so they are
 * read with auth_owner's rights from the start, and inside the jail
 * data_directory is "/": the pre-jail hook notes the directory's identity
 * and the post-jail hook finds it again, at "/" or (not root: no jail) at
 * its own path. libsasl2 loads its plugins in the pre-jail hook.
 *
 * This file holds main() and the service description only; the protocols
 * are in auth_lookup.c and auth_sasl.c.
 */
#include "config.h"
#include "auth.h"
#include "../libmail/auth_proto.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/service.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static struct yb_params params;
static struct auth_state state = { .params = &params };

/* auth_pre_jail - remember which directory the tables live in. */
static int auth_pre_jail(struct service_ctx *ctx, char **error_r)
{
	struct stat st;

	if (stat(params.data_directory, &st) < 0) {
		*error_r = xasprintf("data_directory %s: %s", params.data_directory, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		*error_r = xasprintf("data_directory %s: not a directory", params.data_directory);
		return -1;
	}
	state.data_dev = st.st_dev;
	state.data_ino = st.st_ino;
	ctx->app = &state;
	return auth_sasl_pre_jail(&state, error_r);
}

static bool is_data_directory(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && st.st_dev == state.data_dev && st.st_ino == state.data_ino;
}

/* auth_post_jail - open the tables where the jail put them. */
static int auth_post_jail(struct service_ctx *ctx, char **error_r)
{
	char *error = NULL;

	/* "/" first: jailed there, data_directory's own path may mean
	 * something else (or nothing) inside. */
	if (is_data_directory("/")) {
		state.table_dir = "/";
	} else if (is_data_directory(params.data_directory)) {
		state.table_dir = params.data_directory;
	} else {
		*error_r = xasprintf("data_directory %s cannot be reached after the privilege drop: run auth "
				     "jailed in it, or without a jail (master.conf)",
				     params.data_directory);
		return -1;
	}
	state.dir = directory_open(state.table_dir);
	if (directory_refresh(state.dir, &error) < 0) {
		/* Not fatal: the operator can fix the table while auth runs,
		 * and every lookup that needs it says why it fails meanwhile. */
		log_warn("%s; lookups answer error until that is fixed", error);
		free(error);
	}
	state.lookup = ipc_server_new(ctx->base, AUTH_PROTOCOL, AUTH_REQUEST_MAX, 0, auth_lookup_request, &state);
	auth_sasl_post_jail(&state, ctx->base);
	log_debug("tables in %s (data_directory %s)", state.table_dir, params.data_directory);
	return 0;
}

static void auth_accept(struct service_ctx *ctx, int fd, int index)
{
	(void)ctx;
	/* Clients (smtpd and qmgr workers) keep their connection open:
	 * they are not counted as busy clients, and a SIGTERM stops auth at
	 * once. Lookups are answered as soon as they are read; a login under
	 * way is lost, and its client answers its user "try again later".
	 * Clients reconnect to the next auth. */
	/* listener 0: lookups (private/auth); every other: SASL (private/sasl
	 * for smtpd, mailbox/sasl for pop3d and imapd in their jail) */
	if (index >= 1)
		auth_sasl_accept(&state, fd);
	else
		ipc_server_accept(state.lookup, fd);
}

static void auth_stop(struct service_ctx *ctx)
{
	(void)ctx;
	auth_sasl_stop(&state);
	ipc_server_free(&state.lookup);
	directory_close(&state.dir);
}

int main(int argc, char **argv)
{
	static const struct service_desc desc = {
		.name = "yubin/auth",
		.conf_table = &params_table,
		.conf = &params,
		.load_conf = params_load_service,
		.pre_jail = auth_pre_jail,
		.post_jail = auth_post_jail,
		.on_accept = auth_accept,
		.on_stop = auth_stop,
	};
	int rc = service_main(argc, argv, &desc);

	auth_sasl_stop(&state);
	ipc_server_free(&state.lookup);
	directory_close(&state.dir);
	return rc;
}
