/* cmd_lifecycle.c - mailctl start, stop and reload. */
#include "config.h"
#include "mailctl.h"
#include "../libmail/params.h"
#include "../libmail/suite_conf.h"
#include "../libutil/fileutil.h"
#include "../libutil/mem.h"
#include "../libutil/strutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

/* wait_for_line - read the master's one-line start-up report. */
static char *wait_for_line(int fd, int timeout_ms)
{
	char buf[1024];
	size_t len = 0;
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	while (len < sizeof buf - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;
		long waited;

		clock_gettime(CLOCK_MONOTONIC, &now);
		waited = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (waited >= timeout_ms || poll(&p, 1, (int)(timeout_ms - waited)) == 0)
			return xstrdup("error: no start-up report from master in time; see the log");
		n = read(fd, buf + len, sizeof buf - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (memchr(buf, '\n', len) != NULL)
			break;
	}
	buf[len] = '\0';
	return xstrdup(len > 0 ? str_trim(buf) : "error: master exited during start-up; see the log");
}

int cmd_start(struct mailctl *ctl)
{
	struct suite_conf sc;
	char *error = NULL;
	char *master;
	bool foreground = false;
	int pipefd[2];
	int code;
	pid_t pid;

	for (int i = 0; i < ctl->argc; i++) {
		if (strcmp(ctl->argv[i], "-f") != 0) {
			mailctl_error("usage: mailctl start [-f]");
			return MAILCTL_USAGE;
		}
		foreground = true;
	}
	if (suite_conf_load(&sc, ctl->config_dir, geteuid() == 0, &error) < 0) {
		mailctl_error("%s", error);
		free(error);
		return MAILCTL_FAIL;
	}
	struct ipc_conn *running = mailctl_connect(ctl, CONNECT_PROBE, &code);
	if (running != NULL || code == MAILCTL_NOPERM) {
		char *pidpath = xasprintf("%s/master.pid", sc.params.run_directory);
		char *pidtext = file_read_small(pidpath, 32);

		mailctl_error("yubin is already running (master pid %s)", pidtext != NULL ? str_trim(pidtext) : "unknown");
		free(pidtext);
		free(pidpath);
		ipc_conn_close(&running);
		suite_conf_free(&sc);
		return MAILCTL_FAIL;
	}
	master = xasprintf("%s/master", sc.params.daemon_directory);
	int ready_timeout_ms = (int)(sc.params.service_ready_timeout + 10) * 1000;
	suite_conf_free(&sc);

	if (foreground) {
		execl(master, master, "-c", ctl->config_dir, "-f", (char *)NULL);
		mailctl_error("exec %s: %s", master, strerror(errno));
		free(master);
		return MAILCTL_FAIL;
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		mailctl_error("pipe: %s", strerror(errno));
		return MAILCTL_FAIL;
	}
	pid = fork();
	if (pid < 0) {
		mailctl_error("fork: %s", strerror(errno));
		return MAILCTL_FAIL;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		/* Detach: a new session, no terminal, logs go to syslog or log_file. */
		setsid();
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(devnull, 2);
		if (dup2(pipefd[1], 3) < 0)
			_exit(127);
		execl(master, master, "-c", ctl->config_dir, "-R", "3", (char *)NULL);
		if (write(3, "error: cannot run master\n", 25) < 0)
			_exit(127);
		_exit(127);
	}
	close(pipefd[1]);
	char *report = wait_for_line(pipefd[0], ready_timeout_ms);
	close(pipefd[0]);
	if (strcmp(report, "ok") != 0) {
		mailctl_error("start failed: %s",
			      str_has_prefix(report, "error: ") ? report + 7 : report);
		free(report);
		free(master);
		return MAILCTL_FAIL;
	}
	printf("yubin started (master pid %ld, config %s)\n", (long)pid, ctl->config_dir);
	free(report);
	free(master);
	return MAILCTL_OK;
}

/* wait_for_exit - master holds an exclusive lock on master.lock for its
 * whole life; the kernel drops it the moment master exits, before anyone
 * reaps it. Waits up to timeout_s; 0 once master is gone. */
static int wait_for_exit(const char *lock_path, int timeout_s)
{
	int fd = open(lock_path, O_RDONLY | O_CLOEXEC);
	int rc = -1;

	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	for (int i = 0; i < timeout_s * 10; i++) {
		if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
			rc = 0;
			break;
		}
		usleep(100 * 1000);
	}
	close(fd);
	return rc;
}

int cmd_stop(struct mailctl *ctl)
{
	struct yb_params params;
	struct ipc_msg reply;
	char *error = NULL;
	char *lock_path;
	long long timeout_s;
	int code;
	struct ipc_conn *conn;

	if (ctl->argc != 0) {
		mailctl_error("usage: mailctl stop");
		return MAILCTL_USAGE;
	}
	conn = mailctl_connect(ctl, CONNECT_REPORT, &code);
	if (conn == NULL)
		return code == MAILCTL_NOT_RUNNING ? MAILCTL_FAIL : code;
	if (params_load(&params, ctl->config_dir, &error) < 0) {
		mailctl_error("%s", error);
		free(error);
		conf_free(&params_table, &params);
		ipc_conn_close(&conn);
		return MAILCTL_FAIL;
	}
	lock_path = xasprintf("%s/master.lock", params.run_directory);
	/* master kills what is left after stop_timeout; allow for that. */
	timeout_s = params.stop_timeout + 10;
	conf_free(&params_table, &params);
	if (mailctl_request(conn, "stop", &reply) < 0) {
		ipc_conn_close(&conn);
		free(lock_path);
		return MAILCTL_FAIL;
	}
	ipc_msg_free(&reply);
	ipc_conn_close(&conn);
	if (wait_for_exit(lock_path, (int)timeout_s) < 0) {
		mailctl_error("master is still running after %llds (%s is locked)", timeout_s, lock_path);
		free(lock_path);
		return MAILCTL_FAIL;
	}
	free(lock_path);
	printf("yubin stopped\n");
	return MAILCTL_OK;
}

int cmd_reload(struct mailctl *ctl)
{
	struct ipc_msg reply;
	int code;
	struct ipc_conn *conn;

	if (ctl->argc != 0) {
		mailctl_error("usage: mailctl reload");
		return MAILCTL_USAGE;
	}
	conn = mailctl_connect(ctl, CONNECT_REPORT, &code);
	if (conn == NULL)
		return code == MAILCTL_NOT_RUNNING ? MAILCTL_FAIL : code;
	if (mailctl_request(conn, "reload", &reply) < 0) {
		ipc_conn_close(&conn);
		return MAILCTL_FAIL;
	}
	ipc_msg_free(&reply);
	ipc_conn_close(&conn);
	printf("yubin reloaded\n");
	return MAILCTL_OK;
}
