/* mailctl.h - shared pieces of the operator CLI. */
#ifndef YB_MAILCTL_H
#define YB_MAILCTL_H

#include <stdbool.h>

#include "../libutil/ipc_client.h"

/* Exit codes (sysexits.h where one fits). */
#define MAILCTL_OK 0
#define MAILCTL_FAIL 1
#define MAILCTL_NOT_RUNNING 3 /* status: as LSB init scripts use it */
#define MAILCTL_USAGE 64      /* EX_USAGE */
#define MAILCTL_NOPERM 77     /* EX_NOPERM */

struct mailctl {
	const char *config_dir;
	int argc;     /* the command's own arguments, after its words */
	char **argv;
};

struct mailctl_command {
	const char *words[3];  /* "config", "show" */
	int (*run)(struct mailctl *ctl);
	const char *args;      /* usage of the arguments */
	const char *doc;       /* one line */
};

/* mailctl_error - "mailctl: ..." on stderr. */
void mailctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* How much mailctl_connect says when it cannot connect. */
enum connect_mode {
	CONNECT_REPORT,           /* print why */
	CONNECT_QUIET_IF_STOPPED, /* print why, except "not running" */
	CONNECT_PROBE,            /* print nothing: the caller only asks */
};

enum control_endpoint { ENDPOINT_MASTER, ENDPOINT_QMGR };

/* mailctl_open - open master's or qmgr's control socket; NULL and the exit
 * code (not running, no permission, failure), having said why as mode says. */
struct ipc_conn *mailctl_open(struct mailctl *ctl, enum control_endpoint which, enum connect_mode mode,
			      int *exit_r);

/* mailctl_connect - open the control socket of the running master.
 * Returns NULL and the exit code to use (not running, no permission,
 * failure), having printed why as mode says. */
struct ipc_conn *mailctl_connect(struct mailctl *ctl, enum connect_mode mode, int *exit_r);

/* mailctl_request - send {cmd} and read the first reply; prints an error
 * and returns -1 if the reply is not "ok". */
int mailctl_request(struct ipc_conn *conn, const char *cmd, struct ipc_msg *reply);

int cmd_start(struct mailctl *ctl);
int cmd_stop(struct mailctl *ctl);
int cmd_reload(struct mailctl *ctl);
int cmd_status(struct mailctl *ctl);
int cmd_config_show(struct mailctl *ctl);
int cmd_config_check(struct mailctl *ctl);
/* cmd_tables.c: hosted domains, users, aliases */
int cmd_domain_add(struct mailctl *ctl);
int cmd_domain_del(struct mailctl *ctl);
int cmd_domain_list(struct mailctl *ctl);
int cmd_user_add(struct mailctl *ctl);
int cmd_user_del(struct mailctl *ctl);
int cmd_user_passwd(struct mailctl *ctl);
int cmd_user_set(struct mailctl *ctl);
int cmd_user_list(struct mailctl *ctl);
int cmd_user_show(struct mailctl *ctl);
int cmd_user_test_login(struct mailctl *ctl);
int cmd_alias_add(struct mailctl *ctl);
int cmd_alias_del(struct mailctl *ctl);
int cmd_alias_list(struct mailctl *ctl);
/* cmd_queue.c: the mail queue, through qmgr's control socket */
int cmd_queue_list(struct mailctl *ctl);
int cmd_queue_show(struct mailctl *ctl);
int cmd_queue_delete(struct mailctl *ctl);
int cmd_queue_hold(struct mailctl *ctl);
int cmd_queue_release(struct mailctl *ctl);
int cmd_queue_flush(struct mailctl *ctl);
int cmd_queue_stats(struct mailctl *ctl);
int cmd_queue_requeue(struct mailctl *ctl);
int cmd_tls_selfsigned(struct mailctl *ctl); /* cmd_tls.c */

#endif
