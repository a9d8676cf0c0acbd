/* cmd_status.c - mailctl status: a table for people, --json for tools. */
#include "config.h"
#include "mailctl.h"
#include "../libutil/buf.h"
#include "../libutil/json.h"
#include "../libutil/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct status_worker {
	char *service;
	int64_t pid;
	char *state;
	int64_t age;
};

struct status_service {
	char *name, *type, *listen, *user, *chroot, *state, *last_exit;
	int64_t uid, procs, restarts;
};

struct status_report {
	int64_t pid, uid, started;
	char *config_dir;
	struct status_service *services;
	size_t service_count;
	struct status_worker *workers;
	size_t worker_count;
};

static char *dup_field(const struct ipc_msg *msg, const char *name)
{
	const char *v = ipc_get_str(msg, name);

	return xstrdup(v != NULL ? v : "");
}

/* join_listen - the repeated "listen" fields, comma-separated. */
static char *join_listen(const struct ipc_msg *msg)
{
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < msg->count; i++) {
		if (strcmp(msg->fields[i].name, "listen") != 0 || msg->fields[i].type != IPC_STR)
			continue;
		if (b.len > 0)
			buf_append_byte(&b, ',');
		buf_append_str(&b, (const char *)msg->fields[i].data);
	}
	return buf_steal(&b);
}

static int read_report(struct ipc_conn *conn, struct status_report *r)
{
	struct ipc_msg msg;
	int64_t services = 0, workers = 0;
	char *error = NULL;

	memset(r, 0, sizeof *r);
	if (mailctl_request(conn, "status", &msg) < 0)
		return -1;
	ipc_get_int(&msg, "pid", &r->pid);
	ipc_get_int(&msg, "uid", &r->uid);
	ipc_get_int(&msg, "started", &r->started);
	ipc_get_int(&msg, "services", &services);
	ipc_get_int(&msg, "workers", &workers);
	r->config_dir = dup_field(&msg, "config_dir");
	ipc_msg_free(&msg);
	if (services < 0 || services > 10000 || workers < 0 || workers > 100000) {
		mailctl_error("status: implausible counts from master");
		return -1;
	}
	r->services = xcalloc((size_t)services + 1, sizeof *r->services);
	r->workers = xcalloc((size_t)workers + 1, sizeof *r->workers);
	for (int64_t i = 0; i < services; i++) {
		struct status_service *s = &r->services[r->service_count++];

		if (ipc_conn_recv(conn, &msg, &error) < 0)
			goto fail;
		s->name = dup_field(&msg, "name");
		s->type = dup_field(&msg, "type");
		s->listen = join_listen(&msg);
		s->user = dup_field(&msg, "user");
		s->chroot = dup_field(&msg, "chroot");
		s->state = dup_field(&msg, "state");
		s->last_exit = dup_field(&msg, "last_exit");
		ipc_get_int(&msg, "uid", &s->uid);
		ipc_get_int(&msg, "procs", &s->procs);
		ipc_get_int(&msg, "restarts", &s->restarts);
		ipc_msg_free(&msg);
	}
	for (int64_t i = 0; i < workers; i++) {
		struct status_worker *w = &r->workers[r->worker_count++];

		if (ipc_conn_recv(conn, &msg, &error) < 0)
			goto fail;
		w->service = dup_field(&msg, "service");
		w->state = dup_field(&msg, "state");
		ipc_get_int(&msg, "pid", &w->pid);
		ipc_get_int(&msg, "age", &w->age);
		ipc_msg_free(&msg);
	}
	return 0;
fail:
	mailctl_error("status: %s", error);
	free(error);
	return -1;
}

static void free_report(struct status_report *r)
{
	for (size_t i = 0; i < r->service_count; i++) {
		struct status_service *s = &r->services[i];

		free(s->name), free(s->type), free(s->listen), free(s->user);
		free(s->chroot), free(s->state), free(s->last_exit);
	}
	for (size_t i = 0; i < r->worker_count; i++) {
		free(r->workers[i].service);
		free(r->workers[i].state);
	}
	free(r->services);
	free(r->workers);
	free(r->config_dir);
}

static void print_json(const struct status_report *r)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "{\"running\": true, \"master\": {\"pid\": %lld, \"uid\": %lld, \"started\": %lld, \"config_dir\": ",
		   (long long)r->pid, (long long)r->uid, (long long)r->started);
	json_str(&b, r->config_dir);
	buf_append_str(&b, "},\n \"services\": [");
	for (size_t i = 0; i < r->service_count; i++) {
		const struct status_service *s = &r->services[i];
		bool first = true;

		buf_append_str(&b, i == 0 ? "\n  {\"name\": " : ",\n  {\"name\": ");
		json_str(&b, s->name);
		buf_append_str(&b, ", \"type\": ");
		json_str(&b, s->type);
		buf_append_str(&b, ", \"listen\": [");
		for (char *p = s->listen; *p;) {
			char *comma = strchr(p, ',');
			char *item = xstrndup(p, comma != NULL ? (size_t)(comma - p) : strlen(p));

			buf_append_str(&b, first ? "" : ", ");
			json_str(&b, item);
			free(item);
			first = false;
			p = comma != NULL ? comma + 1 : p + strlen(p);
		}
		buf_append_str(&b, "], \"user\": ");
		json_str(&b, s->user);
		buf_printf(&b, ", \"uid\": %lld, \"chroot\": ", (long long)s->uid);
		json_str(&b, s->chroot);
		buf_printf(&b, ", \"procs\": %lld, \"state\": ", (long long)s->procs);
		json_str(&b, s->state);
		buf_printf(&b, ", \"restarts\": %lld, \"last_exit\": ", (long long)s->restarts);
		json_str(&b, s->last_exit);
		buf_append_str(&b, ", \"workers\": [");
		first = true;
		for (size_t j = 0; j < r->worker_count; j++) {
			const struct status_worker *w = &r->workers[j];

			if (strcmp(w->service, s->name) != 0)
				continue;
			buf_printf(&b, "%s{\"pid\": %lld, \"state\": ", first ? "" : ", ", (long long)w->pid);
			json_str(&b, w->state);
			buf_printf(&b, ", \"age\": %lld}", (long long)w->age);
			first = false;
		}
		buf_append_str(&b, "]}");
	}
	buf_append_str(&b, "\n ],\n \"retiring_workers\": [");
	bool first = true;
	for (size_t j = 0; j < r->worker_count; j++) {
		if (r->workers[j].service[0] != '\0')
			continue;
		buf_printf(&b, "%s%lld", first ? "" : ", ", (long long)r->workers[j].pid);
		first = false;
	}
	buf_append_str(&b, "]}\n");
	fputs(buf_cstr(&b), stdout);
	buf_free(&b);
}

static void print_table(const struct status_report *r)
{
	long up = (long)(time(NULL) - r->started);

	printf("yubin is running: master pid %lld, up %ldh%02ldm%02lds, config %s\n\n", (long long)r->pid,
	       up / 3600, up / 60 % 60, up % 60, r->config_dir);
	printf("%-12s %-5s %-24s %-10s %-10s %-8s %-8s %s\n", "SERVICE", "TYPE", "LISTEN", "USER", "STATE",
	       "WORKERS", "RESTARTS", "PIDS");
	for (size_t i = 0; i < r->service_count; i++) {
		const struct status_service *s = &r->services[i];
		struct buf pids = BUF_INIT;
		int live = 0;
		char count[32];

		for (size_t j = 0; j < r->worker_count; j++) {
			if (strcmp(r->workers[j].service, s->name) != 0)
				continue;
			buf_printf(&pids, "%s%lld", live > 0 ? "," : "", (long long)r->workers[j].pid);
			live++;
		}
		snprintf(count, sizeof count, "%d/%lld", live, (long long)s->procs);
		printf("%-12s %-5s %-24s %-10s %-10s %-8s %-8lld %s\n", s->name, s->type,
		       s->listen[0] != '\0' ? s->listen : "-", s->user, s->state, count, (long long)s->restarts,
		       live > 0 ? buf_cstr(&pids) : "-");
		if (strcmp(s->state, "throttled") == 0 && s->last_exit[0] != '\0')
			printf("%-12s last worker: %s\n", "", s->last_exit);
		buf_free(&pids);
	}
}

int cmd_status(struct mailctl *ctl)
{
	struct status_report r;
	bool json = false;
	int code;
	struct ipc_conn *conn;

	for (int i = 0; i < ctl->argc; i++) {
		if (strcmp(ctl->argv[i], "--json") != 0) {
			mailctl_error("usage: mailctl status [--json]");
			return MAILCTL_USAGE;
		}
		json = true;
	}
	conn = mailctl_connect(ctl, json ? CONNECT_QUIET_IF_STOPPED : CONNECT_REPORT, &code);
	if (conn == NULL) {
		if (json && code == MAILCTL_NOT_RUNNING)
			printf("{\"running\": false}\n");
		return code;
	}
	if (read_report(conn, &r) < 0) {
		free_report(&r);
		ipc_conn_close(&conn);
		return MAILCTL_FAIL;
	}
	ipc_conn_close(&conn);
	if (json)
		print_json(&r);
	else
		print_table(&r);
	free_report(&r);
	return MAILCTL_OK;
}
