/* auth_lookup.c - the auth-lookup protocol (auth/PROTOCOL.md): rcpt for
 * smtpd's RCPT check, sender for an authenticated MAIL FROM, expand for
 * qmgr's routing, domain for anyone.
 *
 * Every request is checked strictly (ipc_scan: no missing, unknown,
 * repeated or mistyped field) and answered at once; a malformed one gets
 * { result = "error", reason } and the connection stays usable. Before
 * each request the tables are checked for replacement (one stat each), so
 * a mailctl change is seen by the next lookup without a restart.
 *
 * One log line per failure: a malformed request, or a lookup that
 * answered "error" or "loop". Addresses go through sanitize() first.
 */
#include "config.h"
#include "auth.h"
#include "../libmail/auth_proto.h"
#include "../libutil/log.h"
#include "../libutil/sanitize.h"

#include <stdlib.h>
#include <string.h>

#define AUTH_CMD_MAX 16

/* reply_error - { result = "error", reason }. */
static void reply_error(struct ipc_peer *peer, int64_t req, const char *reason)
{
	struct buf out = BUF_INIT;

	ipc_reply_begin(&out, req);
	ipc_put_str(&out, AUTH_F_RESULT, auth_result_name(AUTH_R_ERROR));
	ipc_put_str(&out, AUTH_F_REASON, reason);
	ipc_peer_send(peer, &out);
	buf_free(&out);
}

/* log_failure - the one line for a request that failed. */
static void log_failure(const char *cmd, const char *subject, const char *reason)
{
	char clean[SANITIZE_MAX];

	log_warn("%s <%s>: %s", cmd, sanitize(clean, sizeof clean, subject, strlen(subject)), reason);
}

/* scan_request - strict check of { cmd, NAME } (cmd is known to be one
 * of ours) with NAME at most max octets; the value in *value_r. -1 after
 * answering the client. */
static int scan_request(struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg, const char *cmd,
			const char *name, size_t max, const char **value_r)
{
	const char *error;
	const struct ipc_spec spec[] = {
		{ .name = AUTH_F_CMD, .type = IPC_STR, .required = true, .max_len = AUTH_CMD_MAX },
		{ .name = name, .type = IPC_STR, .required = true, .str_r = value_r },
	};
	char reason[128];

	if (ipc_scan(msg, spec, sizeof spec / sizeof spec[0], IPC_STRICT, &error) < 0) {
		snprintf(reason, sizeof reason, "malformed %s request: %s", cmd, error);
		log_warn("%s", reason);
		reply_error(peer, req, reason);
		return -1;
	}
	if (strlen(*value_r) > max) {
		snprintf(reason, sizeof reason, "%s longer than %zu octets", name, max);
		log_failure(cmd, *value_r, reason);
		reply_error(peer, req, reason);
		return -1;
	}
	return 0;
}

static void lookup_rcpt(struct auth_state *st, struct ipc_peer *peer, int64_t req, const char *address)
{
	struct dir_resolution r;
	struct buf out = BUF_INIT;

	directory_resolve(st->dir, address, &r);
	ipc_reply_begin(&out, req);
	ipc_put_str(&out, AUTH_F_RESULT, dir_result_name(r.result));
	switch (r.result) {
	case DIR_LOCAL:
		ipc_put_str(&out, AUTH_F_MAILBOX, r.mailbox);
		ipc_put_int(&out, AUTH_F_QUOTA, r.quota);
		ipc_put_int(&out, AUTH_F_ENABLED, r.enabled ? 1 : 0);
		break;
	case DIR_ERROR:
		ipc_put_str(&out, AUTH_F_REASON, r.reason != NULL ? r.reason : "lookup failed");
		log_failure(AUTH_CMD_RCPT, address, r.reason != NULL ? r.reason : "lookup failed");
		break;
	default:
		break;
	}
	ipc_peer_send(peer, &out);
	buf_free(&out);
	dir_resolution_free(&r);
}

static void lookup_expand(struct auth_state *st, struct ipc_peer *peer, int64_t req, const char *address)
{
	struct dir_expansion e;
	struct buf out = BUF_INIT;

	directory_expand(st->dir, address, &e);
	ipc_reply_begin(&out, req);
	ipc_put_str(&out, AUTH_F_RESULT, dir_result_name(e.result));
	for (size_t i = 0; i < e.local_count; i++) {
		ipc_put_str(&out, AUTH_F_LOCAL, e.local[i].mailbox);
		ipc_put_int(&out, AUTH_F_QUOTA, e.local[i].quota);
	}
	for (size_t i = 0; i < e.remote_count; i++)
		ipc_put_str(&out, AUTH_F_REMOTE, e.remote[i]);
	for (size_t i = 0; i < e.unknown_count; i++)
		ipc_put_str(&out, AUTH_F_UNKNOWN, e.unknown[i]);
	if (e.result == DIR_LOOP || e.result == DIR_ERROR) {
		ipc_put_str(&out, AUTH_F_REASON, e.reason != NULL ? e.reason : "lookup failed");
		log_failure(AUTH_CMD_EXPAND, address, e.reason != NULL ? e.reason : "lookup failed");
	}
	ipc_peer_send(peer, &out);
	buf_free(&out);
	dir_expansion_free(&e);
}

static void lookup_domain(struct auth_state *st, struct ipc_peer *peer, int64_t req, const char *domain)
{
	struct buf out = BUF_INIT;
	char *error = NULL;
	int rc = directory_domain(st->dir, domain, &error);

	ipc_reply_begin(&out, req);
	if (rc < 0) {
		ipc_put_str(&out, AUTH_F_RESULT, auth_result_name(AUTH_R_ERROR));
		ipc_put_str(&out, AUTH_F_REASON, error);
		log_failure(AUTH_CMD_DOMAIN, domain, error);
	} else {
		ipc_put_str(&out, AUTH_F_RESULT, auth_result_name(rc > 0 ? AUTH_R_HOSTED : AUTH_R_NOT_HOSTED));
	}
	ipc_peer_send(peer, &out);
	buf_free(&out);
	free(error);
}

/* lookup_sender - { cmd, user, address }: may user send as address? */
static void lookup_sender(struct auth_state *st, struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg)
{
	const char *user = NULL, *address = NULL, *error;
	const struct ipc_spec spec[] = {
		{ .name = AUTH_F_CMD, .type = IPC_STR, .required = true, .max_len = AUTH_CMD_MAX },
		{ .name = AUTH_F_USER, .type = IPC_STR, .required = true, .max_len = AUTH_ADDRESS_MAX, .str_r = &user },
		{ .name = AUTH_F_ADDRESS, .type = IPC_STR, .required = true, .max_len = AUTH_ADDRESS_MAX,
		  .str_r = &address },
	};
	struct buf out = BUF_INIT;
	char reason[128], *failure = NULL;
	int rc;

	if (ipc_scan(msg, spec, sizeof spec / sizeof spec[0], IPC_STRICT, &error) < 0) {
		snprintf(reason, sizeof reason, "malformed %s request: %s", AUTH_CMD_SENDER, error);
		log_warn("%s", reason);
		reply_error(peer, req, reason);
		return;
	}
	rc = directory_sender_owned(st->dir, user, address, &failure);
	ipc_reply_begin(&out, req);
	if (rc < 0) {
		ipc_put_str(&out, AUTH_F_RESULT, auth_result_name(AUTH_R_ERROR));
		ipc_put_str(&out, AUTH_F_REASON, failure);
		log_failure(AUTH_CMD_SENDER, address, failure);
	} else {
		ipc_put_str(&out, AUTH_F_RESULT, auth_result_name(rc > 0 ? AUTH_R_OK : AUTH_R_NO));
	}
	ipc_peer_send(peer, &out);
	buf_free(&out);
	free(failure);
}

void auth_lookup_request(struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg, void *ctx)
{
	struct auth_state *st = ctx;
	const char *cmd = ipc_get_str(msg, AUTH_F_CMD);
	const char *value = NULL;
	char *error = NULL;

	/* A table that cannot be opened shows up in the lookup's own answer
	 * (and log line): nothing to say twice here. */
	if (directory_refresh(st->dir, &error) < 0)
		free(error);
	if (cmd == NULL) {
		log_warn("malformed request: no %s field", AUTH_F_CMD);
		reply_error(peer, req, "malformed request: no cmd field");
	} else if (strcmp(cmd, AUTH_CMD_RCPT) == 0) {
		if (scan_request(peer, req, msg, AUTH_CMD_RCPT, AUTH_F_ADDRESS, AUTH_ADDRESS_MAX, &value) == 0)
			lookup_rcpt(st, peer, req, value);
	} else if (strcmp(cmd, AUTH_CMD_EXPAND) == 0) {
		if (scan_request(peer, req, msg, AUTH_CMD_EXPAND, AUTH_F_ADDRESS, AUTH_ADDRESS_MAX, &value) == 0)
			lookup_expand(st, peer, req, value);
	} else if (strcmp(cmd, AUTH_CMD_SENDER) == 0) {
		lookup_sender(st, peer, req, msg);
	} else if (strcmp(cmd, AUTH_CMD_DOMAIN) == 0) {
		if (scan_request(peer, req, msg, AUTH_CMD_DOMAIN, AUTH_F_DOMAIN, AUTH_DOMAIN_MAX, &value) == 0)
			lookup_domain(st, peer, req, value);
	} else {
		char clean[64];

		log_warn("unknown command \"%s\"", sanitize(clean, sizeof clean, cmd, strlen(cmd)));
		reply_error(peer, req, "unknown command");
	}
}
