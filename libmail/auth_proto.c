/* auth_proto.c - names and reply parsing of the auth-lookup protocol. */
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
