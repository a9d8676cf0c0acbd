/* cmd_queue.c - mailctl queue ...: look at and act on the mail queue
 * through qmgr's control socket (qmgr/PROTOCOL.md, "qmgr-control").
 * mailctl never opens the queue database itself: qmgr is its only owner. */
#include "config.h"
#include "mailctl.h"
#include "../libmail/params.h"
#include "../libmail/queue_id.h"
#include "../libutil/buf.h"
#include "../libutil/json.h"
#include "../libutil/mem.h"
#include "../libutil/strutil.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QCTL_LIST_MAX 10000
#define QCTL_RCPT_MAX 10000

struct qmsg {
	char *id, *sender, *state;
	int64_t arrival, size, held, rcpts;
};

struct qrcpt {
	char *address, *orcpt, *state, *last_status, *last_response;
	int64_t attempts, next_try;
};

static char *dup_field(const struct ipc_msg *msg, const char *name)
{
	const char *v = ipc_get_str(msg, name);

	return xstrdup(v != NULL ? v : "");
}

/* qctl_exchange - send req (built with ipc_begin, "req" added here) and
 * read the first reply. Returns an exit code; MAILCTL_OK with *reply set. */
static int qctl_exchange(struct ipc_conn *conn, struct buf *req, const char *what, const char *id,
			 struct ipc_msg *reply)
{
	char *error = NULL;
	const char *status, *reason;

	ipc_put_int(req, "req", 1);
	ipc_end(req);
	if (ipc_conn_send(conn, req, &error) < 0 || ipc_conn_recv(conn, reply, &error) < 0) {
		mailctl_error("queue %s: %s", what, error);
		free(error);
		return MAILCTL_FAIL;
	}
	status = ipc_get_str(reply, "status");
	if (status != NULL && strcmp(status, "ok") == 0)
		return MAILCTL_OK;
	reason = ipc_get_str(reply, "reason");
	if (reason == NULL)
		reason = "no reason given";
	int code = MAILCTL_FAIL;

	if (strcmp(reason, "no such message") == 0)
		mailctl_error("no message %s in the queue", id != NULL ? id : "?");
	else if (strcmp(reason, "permission denied") == 0) {
		mailctl_error("permission denied: run mailctl as root");
		code = MAILCTL_NOPERM;
	} else
		mailctl_error("queue %s failed: %s", what, reason);
	ipc_msg_free(reply);
	return code;
}

static void age_str(char *out, size_t size, long long secs)
{
	if (secs < 0)
		secs = 0;
	if (secs < 60)
		snprintf(out, size, "%llds", secs);
	else if (secs < 3600)
		snprintf(out, size, "%lldm", secs / 60);
	else if (secs < 86400)
		snprintf(out, size, "%lldh%02lldm", secs / 3600, secs / 60 % 60);
	else
		snprintf(out, size, "%lldd%02lldh", secs / 86400, secs / 3600 % 24);
}

static void time_str(char *out, size_t size, long long t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(out, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(out, size, "%lld", t);
}

static bool need_id(struct mailctl *ctl, const char *usage, const char **id_r)
{
	if (ctl->argc < 1 || ctl->argv[0][0] == '-') {
		mailctl_error("usage: mailctl queue %s", usage);
		return false;
	}
	*id_r = ctl->argv[0];
	return true;
}

/* check_id - IDs are uppercase hex; take lowercase too (id is argv). */
static int check_id(const char *id)
{
	for (char *p = (char *)id; *p != '\0'; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	if (!queue_id_valid(id)) {
		mailctl_error("malformed queue ID \"%.64s\"", id);
		return -1;
	}
	return 0;
}

/* ---- list ---- */

static void free_msgs(struct qmsg *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(m[i].id), free(m[i].sender), free(m[i].state);
	free(m);
}

int cmd_queue_list(struct mailctl *ctl)
{
	const char *usage = "list [--sender S] [--rcpt S] [--domain D] [--age DURATION] [--json]";
	const char *sender = NULL, *rcpt = NULL, *domain = NULL;
	long long age = -1;
	bool json = false;
	struct ipc_conn *conn;
	struct buf req = BUF_INIT;
	struct ipc_msg msg;
	int64_t count = 0, truncated = 0;
	struct qmsg *m;
	size_t n = 0;
	int code;
	char *error = NULL;

	for (int i = 0; i < ctl->argc; i++) {
		const char *a = ctl->argv[i];
		const char *v = i + 1 < ctl->argc ? ctl->argv[i + 1] : NULL;

		if (strcmp(a, "--json") == 0) {
			json = true;
			continue;
		}
		if (v == NULL || (strcmp(a, "--sender") != 0 && strcmp(a, "--rcpt") != 0 &&
				  strcmp(a, "--domain") != 0 && strcmp(a, "--age") != 0)) {
			mailctl_error("usage: mailctl queue %s", usage);
			return MAILCTL_USAGE;
		}
		i++;
		if (strcmp(a, "--sender") == 0)
			sender = v;
		else if (strcmp(a, "--rcpt") == 0)
			rcpt = v;
		else if (strcmp(a, "--domain") == 0)
			domain = v;
		else {
			const char *why;

			if (str_to_duration(v, &age, &why) < 0) {
				mailctl_error("--age %s: %s", v, why);
				return MAILCTL_USAGE;
			}
		}
	}
	conn = mailctl_open(ctl, ENDPOINT_QMGR, CONNECT_REPORT, &code);
	if (conn == NULL)
		return code;
	ipc_begin(&req);
	ipc_put_str(&req, "cmd", "list");
	if (sender != NULL)
		ipc_put_str(&req, "sender", sender);
	if (rcpt != NULL)
		ipc_put_str(&req, "rcpt", rcpt);
	if (domain != NULL)
		ipc_put_str(&req, "domain", domain);
	if (age >= 0)
		ipc_put_int(&req, "min_age", age);
	code = qctl_exchange(conn, &req, "list", NULL, &msg);
	buf_free(&req);
	if (code != MAILCTL_OK) {
		ipc_conn_close(&conn);
		return code;
	}
	ipc_get_int(&msg, "count", &count);
	ipc_get_int(&msg, "truncated", &truncated);
	ipc_msg_free(&msg);
	if (count < 0 || count > QCTL_LIST_MAX) {
		mailctl_error("queue list: implausible count from qmgr");
		ipc_conn_close(&conn);
		return MAILCTL_FAIL;
	}
	m = xcalloc((size_t)count + 1, sizeof *m);
	while (n < (size_t)count) {
		size_t before = n;

		if (ipc_conn_recv(conn, &msg, &error) < 0) {
			mailctl_error("queue list: %s", error);
			free(error);
			free_msgs(m, n);
			ipc_conn_close(&conn);
			return MAILCTL_FAIL;
		}
		/* Aligned repeated fields: each "id" starts the next message. */
		for (size_t i = 0; i < msg.count; i++) {
			const struct ipc_field *f = &msg.fields[i];
			struct qmsg *cur = n > before ? &m[n - 1] : NULL;

			if (strcmp(f->name, "id") == 0 && f->type == IPC_STR) {
				if (n == (size_t)count)
					break;
				cur = &m[n++];
				cur->id = xstrdup((const char *)f->data);
				cur->sender = xstrdup("");
				cur->state = xstrdup("");
			} else if (cur == NULL) {
				continue;
			} else if (f->type == IPC_STR && strcmp(f->name, "sender") == 0) {
				free(cur->sender);
				cur->sender = xstrdup((const char *)f->data);
			} else if (f->type == IPC_STR && strcmp(f->name, "state") == 0) {
				free(cur->state);
				cur->state = xstrdup((const char *)f->data);
			} else if (f->type == IPC_INT && strcmp(f->name, "arrival") == 0) {
				cur->arrival = f->num;
			} else if (f->type == IPC_INT && strcmp(f->name, "size") == 0) {
				cur->size = f->num;
			} else if (f->type == IPC_INT && strcmp(f->name, "held") == 0) {
				cur->held = f->num;
			} else if (f->type == IPC_INT && strcmp(f->name, "rcpts") == 0) {
				cur->rcpts = f->num;
			}
		}
		ipc_msg_free(&msg);
		if (n == before) {
			mailctl_error("queue list: malformed reply from qmgr");
			free_msgs(m, n);
			ipc_conn_close(&conn);
			return MAILCTL_FAIL;
		}
	}
	ipc_conn_close(&conn);

	long long now = (long long)time(NULL);
	struct buf b = BUF_INIT;

	if (json) {
		buf_printf(&b, "{\"count\": %zu, \"truncated\": %s, \"messages\": [", n, truncated ? "true" : "false");
		for (size_t i = 0; i < n; i++) {
			buf_append_str(&b, i == 0 ? "\n  {\"id\": " : ",\n  {\"id\": ");
			json_str(&b, m[i].id);
			buf_printf(&b, ", \"arrival\": %lld, \"age\": %lld, \"size\": %lld, \"sender\": ",
				   (long long)m[i].arrival, now - (long long)m[i].arrival, (long long)m[i].size);
			json_str(&b, m[i].sender);
			buf_printf(&b, ", \"held\": %s, \"rcpts\": %lld, \"state\": ", m[i].held ? "true" : "false",
				   (long long)m[i].rcpts);
			json_str(&b, m[i].state);
			buf_append_str(&b, "}");
		}
		buf_append_str(&b, n > 0 ? "\n]}\n" : "]}\n");
	} else if (n == 0) {
		buf_append_str(&b, "the queue is empty\n");
	} else {
		buf_printf(&b, "%-24s %-7s %10s  %-32s %s\n", "ID", "AGE", "SIZE", "SENDER", "RCPTS STATE");
		for (size_t i = 0; i < n; i++) {
			char age_buf[32];

			age_str(age_buf, sizeof age_buf, now - (long long)m[i].arrival);
			buf_printf(&b, "%-24s %-7s %10lld  %-32s %lld %s\n", m[i].id, age_buf, (long long)m[i].size,
				   m[i].sender[0] != '\0' ? m[i].sender : "<>", (long long)m[i].rcpts, m[i].state);
		}
		buf_printf(&b, "-- %zu message%s%s\n", n, n == 1 ? "" : "s",
			   truncated ? " (truncated: more match)" : "");
	}
	fputs(buf_cstr(&b), stdout);
	buf_free(&b);
	free_msgs(m, n);
	return MAILCTL_OK;
}

/* ---- show ---- */

int cmd_queue_show(struct mailctl *ctl)
{
	const char *usage = "show ID [--json]";
	const char *id;
	bool json = false;
	struct ipc_conn *conn;
	struct buf req = BUF_INIT;
	struct ipc_msg msg;
	int code;
	char *error = NULL;
	char *sender, *envid, *ret, *client, *state, *mid;
	int64_t arrival = 0, size = 0, held = 0, count = 0;
	struct qrcpt *r;
	size_t n = 0;

	if (!need_id(ctl, usage, &id))
		return MAILCTL_USAGE;
	for (int i = 1; i < ctl->argc; i++) {
		if (strcmp(ctl->argv[i], "--json") != 0) {
			mailctl_error("usage: mailctl queue %s", usage);
			return MAILCTL_USAGE;
		}
		json = true;
	}
	if (check_id(id) < 0)
		return MAILCTL_USAGE;
	conn = mailctl_open(ctl, ENDPOINT_QMGR, CONNECT_REPORT, &code);
	if (conn == NULL)
		return code;
	ipc_begin(&req);
	ipc_put_str(&req, "cmd", "show");
	ipc_put_str(&req, "id", id);
	code = qctl_exchange(conn, &req, "show", id, &msg);
	buf_free(&req);
	if (code != MAILCTL_OK) {
		ipc_conn_close(&conn);
		return code;
	}
	mid = dup_field(&msg, "id");
	sender = dup_field(&msg, "sender");
	envid = dup_field(&msg, "envid");
	ret = dup_field(&msg, "ret");
	client = dup_field(&msg, "client");
	state = dup_field(&msg, "state");
	ipc_get_int(&msg, "arrival", &arrival);
	ipc_get_int(&msg, "size", &size);
	ipc_get_int(&msg, "held", &held);
	ipc_get_int(&msg, "rcpts", &count);
	ipc_msg_free(&msg);
	if (count < 0 || count > QCTL_RCPT_MAX)
		count = 0;
	r = xcalloc((size_t)count + 1, sizeof *r);
	while (n < (size_t)count) {
		size_t before = n;

		if (ipc_conn_recv(conn, &msg, &error) < 0) {
			mailctl_error("queue show: %s", error);
			free(error);
			code = MAILCTL_FAIL;
			break;
		}
		for (size_t i = 0; i < msg.count; i++) {
			const struct ipc_field *f = &msg.fields[i];
			struct qrcpt *cur = n > before ? &r[n - 1] : NULL;
			char **sp = NULL;

			if (strcmp(f->name, "address") == 0 && f->type == IPC_STR) {
				if (n == (size_t)count)
					break;
				cur = &r[n++];
				cur->address = xstrdup((const char *)f->data);
				cur->orcpt = xstrdup("");
				cur->state = xstrdup("");
				cur->last_status = xstrdup("");
				cur->last_response = xstrdup("");
				continue;
			}
			if (cur == NULL)
				continue;
			if (f->type == IPC_INT && strcmp(f->name, "attempts") == 0)
				cur->attempts = f->num;
			else if (f->type == IPC_INT && strcmp(f->name, "next_try") == 0)
				cur->next_try = f->num;
			else if (f->type == IPC_STR && strcmp(f->name, "orcpt") == 0)
				sp = &cur->orcpt;
			else if (f->type == IPC_STR && strcmp(f->name, "rcpt_state") == 0)
				sp = &cur->state;
			else if (f->type == IPC_STR && strcmp(f->name, "last_status") == 0)
				sp = &cur->last_status;
			else if (f->type == IPC_STR && strcmp(f->name, "last_response") == 0)
				sp = &cur->last_response;
			if (sp != NULL) {
				free(*sp);
				*sp = xstrdup((const char *)f->data);
			}
		}
		ipc_msg_free(&msg);
		if (n == before) {
			mailctl_error("queue show: malformed reply from qmgr");
			code = MAILCTL_FAIL;
			break;
		}
	}
	ipc_conn_close(&conn);

	struct buf b = BUF_INIT;
	long long now = (long long)time(NULL);
	char when[64], age_buf[32];

	if (code != MAILCTL_OK) {
		/* nothing to print */
	} else if (json) {
		buf_append_str(&b, "{\"id\": ");
		json_str(&b, mid);
		buf_printf(&b, ", \"arrival\": %lld, \"age\": %lld, \"size\": %lld, \"sender\": ", (long long)arrival,
			   now - (long long)arrival, (long long)size);
		json_str(&b, sender);
		buf_append_str(&b, ", \"envid\": ");
		json_str(&b, envid);
		buf_append_str(&b, ", \"ret\": ");
		json_str(&b, ret);
		buf_append_str(&b, ", \"client\": ");
		json_str(&b, client);
		buf_printf(&b, ", \"held\": %s, \"state\": ", held ? "true" : "false");
		json_str(&b, state);
		buf_append_str(&b, ", \"recipients\": [");
		for (size_t i = 0; i < n; i++) {
			buf_append_str(&b, i == 0 ? "\n  {\"address\": " : ",\n  {\"address\": ");
			json_str(&b, r[i].address);
			buf_append_str(&b, ", \"orcpt\": ");
			json_str(&b, r[i].orcpt);
			buf_append_str(&b, ", \"state\": ");
			json_str(&b, r[i].state);
			buf_printf(&b, ", \"attempts\": %lld, \"next_try\": %lld, \"last_status\": ",
				   (long long)r[i].attempts, (long long)r[i].next_try);
			json_str(&b, r[i].last_status);
			buf_append_str(&b, ", \"last_response\": ");
			json_str(&b, r[i].last_response);
			buf_append_str(&b, "}");
		}
		buf_append_str(&b, n > 0 ? "\n]}\n" : "]}\n");
	} else {
		time_str(when, sizeof when, arrival);
		age_str(age_buf, sizeof age_buf, now - (long long)arrival);
		buf_printf(&b, "id:       %s\n", mid);
		buf_printf(&b, "arrival:  %s (%s ago)\n", when, age_buf);
		buf_printf(&b, "size:     %lld\n", (long long)size);
		buf_printf(&b, "sender:   <%s>\n", sender);
		if (client[0] != '\0')
			buf_printf(&b, "client:   %s\n", client);
		if (envid[0] != '\0' || ret[0] != '\0')
			buf_printf(&b, "dsn:      envid=%s ret=%s\n", envid[0] ? envid : "-", ret[0] ? ret : "-");
		buf_printf(&b, "state:    %s%s\n", state, held && strcmp(state, "held") != 0 ? " (held)" : "");
		buf_printf(&b, "recipients: %zu\n", n);
		for (size_t i = 0; i < n; i++) {
			buf_printf(&b, "  <%s>\n", r[i].address);
			if (r[i].orcpt[0] != '\0')
				buf_printf(&b, "    orcpt:         %s\n", r[i].orcpt);
			buf_printf(&b, "    state:         %s\n", r[i].state);
			buf_printf(&b, "    attempts:      %lld\n", (long long)r[i].attempts);
			if (strcmp(r[i].state, "pending") == 0 || strcmp(r[i].state, "deferred") == 0) {
				time_str(when, sizeof when, r[i].next_try);
				buf_printf(&b, "    next try:      %s\n", when);
			}
			if (r[i].last_status[0] != '\0' || r[i].last_response[0] != '\0')
				buf_printf(&b, "    last response: %s %s\n", r[i].last_status, r[i].last_response);
		}
	}
	fputs(buf_cstr(&b), stdout);
	buf_free(&b);
	for (size_t i = 0; i < n; i++) {
		free(r[i].address), free(r[i].orcpt), free(r[i].state);
		free(r[i].last_status), free(r[i].last_response);
	}
	free(r);
	free(mid), free(sender), free(envid), free(ret), free(client), free(state);
	return code;
}

/* ---- changes ---- */

/* simple - one request {cmd[, id]} whose reply is only a status. */
static int simple(struct mailctl *ctl, const char *cmd, const char *id, const char *done)
{
	struct ipc_conn *conn;
	struct buf req = BUF_INIT;
	struct ipc_msg msg;
	int code;

	conn = mailctl_open(ctl, ENDPOINT_QMGR, CONNECT_REPORT, &code);
	if (conn == NULL)
		return code;
	ipc_begin(&req);
	ipc_put_str(&req, "cmd", cmd);
	if (id != NULL)
		ipc_put_str(&req, "id", id);
	code = qctl_exchange(conn, &req, cmd, id, &msg);
	buf_free(&req);
	ipc_conn_close(&conn);
	if (code != MAILCTL_OK)
		return code;
	ipc_msg_free(&msg);
	if (id != NULL && strcmp(id, "all") != 0)
		printf("%s: %s\n", id, done);
	else
		printf("%s\n", done);
	return MAILCTL_OK;
}

static int with_id(struct mailctl *ctl, const char *cmd, const char *done)
{
	char usage[32];
	const char *id;

	snprintf(usage, sizeof usage, "%s ID", cmd);
	if (!need_id(ctl, usage, &id))
		return MAILCTL_USAGE;
	if (ctl->argc > 1) {
		mailctl_error("usage: mailctl queue %s", usage);
		return MAILCTL_USAGE;
	}
	if (check_id(id) < 0)
		return MAILCTL_USAGE;
	return simple(ctl, cmd, id, done);
}

int cmd_queue_delete(struct mailctl *ctl)
{
	return with_id(ctl, "delete", "deleted");
}

int cmd_queue_hold(struct mailctl *ctl)
{
	return with_id(ctl, "hold", "held");
}

int cmd_queue_release(struct mailctl *ctl)
{
	return with_id(ctl, "release", "released");
}

int cmd_queue_flush(struct mailctl *ctl)
{
	if (ctl->argc != 0) {
		mailctl_error("usage: mailctl queue flush");
		return MAILCTL_USAGE;
	}
	return simple(ctl, "flush", NULL, "deferred messages are due now");
}

int cmd_queue_requeue(struct mailctl *ctl)
{
	const char *id;

	if (ctl->argc != 1) {
		mailctl_error("usage: mailctl queue requeue ID|all");
		return MAILCTL_USAGE;
	}
	id = ctl->argv[0];
	if (strcmp(id, "all") == 0)
		return simple(ctl, "requeue", "all", "every queued message is due now, attempts reset");
	if (check_id(id) < 0)
		return MAILCTL_USAGE;
	return simple(ctl, "requeue", id, "requeued");
}

/* ---- stats ---- */

int cmd_queue_stats(struct mailctl *ctl)
{
	static const char *const names[] = { "enqueued", "commits", "log_syncs", "log_writes", "checkpoints", "active" };
	int64_t v[sizeof names / sizeof names[0]] = { 0 };
	bool json = ctl->argc == 1 && strcmp(ctl->argv[0], "--json") == 0;
	struct ipc_conn *conn;
	struct buf req = BUF_INIT, b = BUF_INIT;
	struct ipc_msg msg;
	int code;

	if (ctl->argc > 1 || (ctl->argc == 1 && !json)) {
		mailctl_error("usage: mailctl queue stats [--json]");
		return MAILCTL_USAGE;
	}
	conn = mailctl_open(ctl, ENDPOINT_QMGR, CONNECT_REPORT, &code);
	if (conn == NULL)
		return code;
	ipc_begin(&req);
	ipc_put_str(&req, "cmd", "stats");
	code = qctl_exchange(conn, &req, "stats", NULL, &msg);
	buf_free(&req);
	ipc_conn_close(&conn);
	if (code != MAILCTL_OK)
		return code;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (!ipc_get_int(&msg, names[i], &v[i])) {
			mailctl_error("queue stats: malformed reply from qmgr");
			ipc_msg_free(&msg);
			return MAILCTL_FAIL;
		}
	}
	ipc_msg_free(&msg);
	if (json) {
		buf_append_str(&b, "{");
		for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
			buf_printf(&b, "%s\"%s\": %lld", i > 0 ? ", " : "", names[i], (long long)v[i]);
		buf_append_str(&b, "}\n");
	} else {
		buf_printf(&b, "messages queued:        %lld\n", (long long)v[0]);
		buf_printf(&b, "queue commits:          %lld\n", (long long)v[1]);
		buf_printf(&b, "log syncs:              %lld", (long long)v[2]);
		if (v[2] > 0)
			buf_printf(&b, " (%.2f messages queued per sync)", (double)v[0] / (double)v[2]);
		buf_printf(&b, "\nlog writes:             %lld\n", (long long)v[3]);
		buf_printf(&b, "checkpoints:            %lld\n", (long long)v[4]);
		buf_printf(&b, "messages in delivery:   %lld\n", (long long)v[5]);
		buf_append_str(&b, "(counted since qmgr started)\n");
	}
	fputs(buf_cstr(&b), stdout);
	buf_free(&b);
	return MAILCTL_OK;
}
