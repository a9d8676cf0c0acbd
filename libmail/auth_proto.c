/* auth_proto.c - names, request building and reply parsing of the
 * auth-lookup and auth-sasl protocols (auth_proto.h). */
#include "config.h"
#include "auth_proto.h"
#include "../libutil/mem.h"

#include <stdlib.h>
#include <string.h>

static const struct {
	enum auth_result result;
	const char *name;
} auth_results[] = {
	{ AUTH_R_ERROR, "error" },     { AUTH_R_LOCAL, "local" }, { AUTH_R_ALIAS, "alias" },
	{ AUTH_R_UNKNOWN, "unknown" }, { AUTH_R_NOT_HOSTED, "not_hosted" },
	{ AUTH_R_OK, "ok" },           { AUTH_R_LOOP, "loop" },   { AUTH_R_HOSTED, "hosted" },
	{ AUTH_R_NO, "no" },
};

#define AUTH_RESULT_COUNT (sizeof auth_results / sizeof auth_results[0])

const char *auth_result_name(enum auth_result result)
{
	for (size_t i = 0; i < AUTH_RESULT_COUNT; i++)
		if (auth_results[i].result == result)
			return auth_results[i].name;
	return "error";
}

int auth_result_parse(const char *name, enum auth_result *result_r)
{
	for (size_t i = 0; i < AUTH_RESULT_COUNT; i++) {
		if (strcmp(auth_results[i].name, name) == 0) {
			*result_r = auth_results[i].result;
			return 0;
		}
	}
	return -1;
}

void auth_put_rcpt(struct buf *frame, const char *address)
{
	ipc_put_str(frame, AUTH_F_CMD, AUTH_CMD_RCPT);
	ipc_put_str(frame, AUTH_F_ADDRESS, address);
}

void auth_put_expand(struct buf *frame, const char *address)
{
	ipc_put_str(frame, AUTH_F_CMD, AUTH_CMD_EXPAND);
	ipc_put_str(frame, AUTH_F_ADDRESS, address);
}

void auth_put_domain(struct buf *frame, const char *domain)
{
	ipc_put_str(frame, AUTH_F_CMD, AUTH_CMD_DOMAIN);
	ipc_put_str(frame, AUTH_F_DOMAIN, domain);
}

/* parse_result - the "result" field, which every reply has once. */
static int parse_result(const struct ipc_msg *msg, enum auth_result *result_r, const char **error_r)
{
	const char *word = NULL;

	for (size_t i = 0; i < msg->count; i++) {
		const struct ipc_field *f = &msg->fields[i];

		if (strcmp(f->name, AUTH_F_RESULT) != 0)
			continue;
		if (f->type != IPC_STR || word != NULL) {
			*error_r = "bad result field";
			return -1;
		}
		word = (const char *)f->data;
	}
	if (word == NULL) {
		*error_r = "reply without a result";
		return -1;
	}
	if (auth_result_parse(word, result_r) < 0) {
		*error_r = "unknown result";
		return -1;
	}
	return 0;
}

int auth_parse_rcpt(const struct ipc_msg *msg, struct auth_rcpt_reply *r, const char **error_r)
{
	bool have_quota = false, have_enabled = false;

	memset(r, 0, sizeof *r);
	r->reason = "";
	if (parse_result(msg, &r->result, error_r) < 0)
		return -1;
	for (size_t i = 0; i < msg->count; i++) {
		const struct ipc_field *f = &msg->fields[i];

		if (strcmp(f->name, AUTH_F_MAILBOX) == 0 && f->type == IPC_STR && r->mailbox == NULL) {
			r->mailbox = (const char *)f->data;
		} else if (strcmp(f->name, AUTH_F_QUOTA) == 0 && f->type == IPC_INT && !have_quota && f->num >= 0) {
			r->quota = f->num;
			have_quota = true;
		} else if (strcmp(f->name, AUTH_F_ENABLED) == 0 && f->type == IPC_INT && !have_enabled &&
			   (f->num == 0 || f->num == 1)) {
			r->enabled = f->num == 1;
			have_enabled = true;
		} else if (strcmp(f->name, AUTH_F_REASON) == 0 && f->type == IPC_STR) {
			r->reason = (const char *)f->data;
		} else if (strcmp(f->name, AUTH_F_MAILBOX) == 0 || strcmp(f->name, AUTH_F_QUOTA) == 0 ||
			   strcmp(f->name, AUTH_F_ENABLED) == 0) {
			*error_r = "bad or repeated field in rcpt reply";
			return -1;
		}
	}
	switch (r->result) {
	case AUTH_R_LOCAL:
		if (r->mailbox == NULL || !have_quota || !have_enabled) {
			*error_r = "local rcpt reply without mailbox, quota or enabled";
			return -1;
		}
		return 0;
	case AUTH_R_ALIAS:
	case AUTH_R_UNKNOWN:
	case AUTH_R_NOT_HOSTED:
	case AUTH_R_ERROR:
		return 0;
	default:
		*error_r = "result not valid for rcpt";
		return -1;
	}
}

int auth_parse_expand(const struct ipc_msg *msg, struct auth_expand_reply *r, const char **error_r)
{
	bool quota_due = false; /* a "local" waits for its "quota" */

	memset(r, 0, sizeof *r);
	r->reason = "";
	if (parse_result(msg, &r->result, error_r) < 0)
		return -1;
	if (r->result != AUTH_R_OK && r->result != AUTH_R_UNKNOWN && r->result != AUTH_R_NOT_HOSTED &&
	    r->result != AUTH_R_LOOP && r->result != AUTH_R_ERROR) {
		*error_r = "result not valid for expand";
		return -1;
	}
	for (size_t i = 0; i < msg->count; i++) {
		const struct ipc_field *f = &msg->fields[i];
		const char *text = (const char *)f->data;

		if (strcmp(f->name, AUTH_F_LOCAL) == 0) {
			if (f->type != IPC_STR || quota_due)
				goto bad;
			r->local = xreallocarray(r->local, r->local_count + 1, sizeof *r->local);
			r->local[r->local_count].mailbox = text;
			r->local[r->local_count].quota = 0;
			r->local_count++;
			quota_due = true;
		} else if (strcmp(f->name, AUTH_F_QUOTA) == 0) {
			if (f->type != IPC_INT || !quota_due || f->num < 0)
				goto bad;
			r->local[r->local_count - 1].quota = f->num;
			quota_due = false;
		} else if (strcmp(f->name, AUTH_F_REMOTE) == 0) {
			if (f->type != IPC_STR || quota_due)
				goto bad;
			r->remote = xreallocarray(r->remote, r->remote_count + 1, sizeof *r->remote);
			r->remote[r->remote_count++] = text;
		} else if (strcmp(f->name, AUTH_F_UNKNOWN) == 0) {
			if (f->type != IPC_STR || quota_due)
				goto bad;
			r->unknown = xreallocarray(r->unknown, r->unknown_count + 1, sizeof *r->unknown);
			r->unknown[r->unknown_count++] = text;
		} else if (strcmp(f->name, AUTH_F_REASON) == 0 && f->type == IPC_STR) {
			r->reason = text;
		}
	}
	if (quota_due)
		goto bad;
	if (r->result == AUTH_R_OK && r->local_count + r->remote_count == 0) {
		*error_r = "expand reply ok without targets";
		auth_expand_reply_free(r);
		return -1;
	}
	return 0;
bad:
	*error_r = "malformed target list in expand reply";
	auth_expand_reply_free(r);
	return -1;
}

void auth_expand_reply_free(struct auth_expand_reply *r)
{
	xfree_ptr(&r->local);
	xfree_ptr(&r->remote);
	xfree_ptr(&r->unknown);
	r->local_count = r->remote_count = r->unknown_count = 0;
}

int auth_parse_domain(const struct ipc_msg *msg, enum auth_result *result_r, const char **reason_r,
		      const char **error_r)
{
	*reason_r = "";
	if (parse_result(msg, result_r, error_r) < 0)
		return -1;
	if (*result_r != AUTH_R_HOSTED && *result_r != AUTH_R_NOT_HOSTED && *result_r != AUTH_R_ERROR) {
		*error_r = "result not valid for domain";
		return -1;
	}
	for (size_t i = 0; i < msg->count; i++)
		if (strcmp(msg->fields[i].name, AUTH_F_REASON) == 0 && msg->fields[i].type == IPC_STR)
			*reason_r = (const char *)msg->fields[i].data;
	return 0;
}

void auth_put_sender(struct buf *frame, const char *user, const char *address)
{
	ipc_put_str(frame, AUTH_F_CMD, AUTH_CMD_SENDER);
	ipc_put_str(frame, AUTH_F_USER, user);
	ipc_put_str(frame, AUTH_F_ADDRESS, address);
}

int auth_parse_sender(const struct ipc_msg *reply, bool *owned_r, const char **error_r)
{
	enum auth_result result;

	*owned_r = false;
	if (parse_result(reply, &result, error_r) < 0)
		return -1;
	switch (result) {
	case AUTH_R_OK:
		*owned_r = true;
		return 0;
	case AUTH_R_NO:
		return 0;
	case AUTH_R_ERROR:
		*error_r = "auth could not tell";
		for (size_t i = 0; i < reply->count; i++)
			if (strcmp(reply->fields[i].name, AUTH_F_REASON) == 0 && reply->fields[i].type == IPC_STR)
				*error_r = (const char *)reply->fields[i].data;
		return -1;
	default:
		*error_r = "result not valid for sender";
		return -1;
	}
}

/* --- auth-sasl ----------------------------------------------------- */

static const char *const sasl_results[] = {
	[AUTH_SASL_CONTINUE] = "continue", [AUTH_SASL_OK] = "ok",     [AUTH_SASL_FAIL] = "fail",
	[AUTH_SASL_ENCRYPT] = "encrypt",   [AUTH_SASL_TEMP] = "temp",
};

#define SASL_RESULT_COUNT (sizeof sasl_results / sizeof sasl_results[0])

const char *auth_sasl_result_name(enum auth_sasl_result result)
{
	return (size_t)result < SASL_RESULT_COUNT ? sasl_results[result] : "temp";
}

void auth_put_sasl_mechs(struct buf *frame, const char *service, bool secure)
{
	ipc_put_str(frame, AUTH_F_CMD, AUTH_CMD_MECHS);
	ipc_put_str(frame, AUTH_F_SERVICE, service);
	ipc_put_int(frame, AUTH_F_SECURE, secure ? 1 : 0);
}

void auth_put_sasl_start(struct buf *frame, int64_t session, const char *service, const char *mech,
			 const void *resp, size_t resp_len, bool has_resp, const char *client, bool secure)
{
	ipc_put_str(frame, AUTH_F_CMD, AUTH_CMD_START);
	ipc_put_int(frame, AUTH_F_SESSION, session);
	ipc_put_str(frame, AUTH_F_SERVICE, service);
	ipc_put_str(frame, AUTH_F_MECH, mech);
	ipc_put_str(frame, AUTH_F_CLIENT, client);
	ipc_put_int(frame, AUTH_F_SECURE, secure ? 1 : 0);
	if (has_resp)
		ipc_put_bytes(frame, AUTH_F_RESPONSE, resp_len > 0 ? resp : "", resp_len);
}

void auth_put_sasl_step(struct buf *frame, int64_t session, const void *resp, size_t len)
{
	ipc_put_str(frame, AUTH_F_CMD, AUTH_CMD_STEP);
	ipc_put_int(frame, AUTH_F_SESSION, session);
	ipc_put_bytes(frame, AUTH_F_RESPONSE, len > 0 ? resp : "", len);
}

void auth_put_sasl_cancel(struct buf *frame, int64_t session)
{
	ipc_put_str(frame, AUTH_F_CMD, AUTH_CMD_CANCEL);
	ipc_put_int(frame, AUTH_F_SESSION, session);
}

int auth_parse_sasl(const struct ipc_msg *reply, struct auth_sasl_reply *out, const char **error_r)
{
	const char *word = NULL;
	bool have_challenge = false;

	memset(out, 0, sizeof *out);
	out->reason = "";
	/* Unknown fields are ignored (auth may add some); known ones must
	 * have their type and appear once. */
	for (size_t i = 0; i < reply->count; i++) {
		const struct ipc_field *f = &reply->fields[i];
		const char **slot = NULL;

		if (strcmp(f->name, AUTH_F_CHALLENGE) == 0) {
			if (f->type != IPC_BYTES || have_challenge)
				goto bad;
			out->challenge = f->data;
			out->challenge_len = f->len;
			have_challenge = true;
			continue;
		}
		if (strcmp(f->name, AUTH_F_RESULT) == 0)
			slot = &word;
		else if (strcmp(f->name, AUTH_F_USER) == 0)
			slot = &out->user;
		else if (strcmp(f->name, AUTH_F_MECHS) == 0)
			slot = &out->mechs;
		else if (strcmp(f->name, AUTH_F_REASON) == 0 && f->type == IPC_STR)
			out->reason = (const char *)f->data;
		if (slot == NULL)
			continue;
		if (f->type != IPC_STR || *slot != NULL)
			goto bad;
		*slot = (const char *)f->data;
	}
	if (word == NULL) {
		*error_r = "reply without a result";
		return -1;
	}
	for (size_t i = 0; i < SASL_RESULT_COUNT; i++) {
		if (strcmp(word, sasl_results[i]) == 0) {
			out->result = (enum auth_sasl_result)i;
			if (out->result == AUTH_SASL_CONTINUE && !have_challenge) {
				*error_r = "continue reply without a challenge";
				return -1;
			}
			if (out->result != AUTH_SASL_CONTINUE) {
				out->challenge = NULL;
				out->challenge_len = 0;
			}
			if (out->result != AUTH_SASL_OK)
				out->user = out->mechs = NULL;
			return 0;
		}
	}
	*error_r = "unknown result";
	return -1;
bad:
	*error_r = "bad or repeated field in auth-sasl reply";
	return -1;
}
