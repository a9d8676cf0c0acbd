/* master.c - the root supervisor: reads the configuration, binds the
 * listeners, spawns every service's workers under their own accounts,
 * replaces the ones that die, reloads on SIGHUP, stops on SIGTERM, and
 * answers mailctl on its control socket. It never reads from the network. */
#include "config.h"
#include "master.h"
#include "../libutil/fileutil.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/priv.h"
#include "../libutil/sock.h"
#include "../libutil/strutil.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* master_report_ready - tell a waiting "mailctl start" how start-up went
 * (error NULL: ready). Only the first report counts. */
void master_report_ready(struct master *m, const char *error)
{
	char *line;

	if (error != NULL)
		m->failed = true;
	if (m->ready_fd < 0)
		return;
	line = error == NULL ? xstrdup("ok\n") : xasprintf("error: %s\n", error);
	if (write(m->ready_fd, line, strlen(line)) < 0)
		log_warn("cannot tell mailctl the start-up result: %s", strerror(errno));
	free(line);
	close(m->ready_fd);
	m->ready_fd = -1;
}

void master_check_started(struct master *m)
{
	for (size_t i = 0; i < m->service_count; i++)
		if (!master_service_ready(m, &m->services[i]))
			return;
	m->starting = false;
	if (m->ready_timer != NULL)
		evtimer_del(m->ready_timer);
	log_info("ready: %zu services running", m->service_count);
	master_report_ready(m, NULL);
}

static void on_ready_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;
	char *reason = NULL;

	(void)fd;
	(void)what;
	if (!m->starting)
		return;
	for (size_t i = 0; i < m->service_count && reason == NULL; i++)
		if (!master_service_ready(m, &m->services[i]))
			reason = xasprintf("service %s: workers did not report ready within %llds",
					   m->services[i].entry->name, m->conf.params.service_ready_timeout);
	log_warn("%s", reason);
	master_report_ready(m, reason);
	free(reason);
	master_begin_stop(m);
}

/* finish - the last step of a stop: everything is reaped. */
static void finish(struct master *m)
{
	for (size_t i = 0; i < m->service_count; i++)
		master_close_listeners(&m->services[i], true);
	master_control_close(m);
	unlink(m->pid_path);
	log_info("stopped");
	event_base_loopbreak(m->base);
}

void master_check_stopped(struct master *m)
{
	if (m->workers == NULL)
		finish(m);
}

static void on_stop_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;

	(void)fd;
	(void)what;
	for (struct master_worker *w = m->workers; w != NULL; w = w->next)
		log_warn("worker %ld (%s) did not stop within %llds; killing it", (long)w->pid,
			 w->program_name, m->conf.params.stop_timeout);
	master_signal_all(m, SIGKILL);
}

void master_begin_stop(struct master *m)
{
	struct timeval tv = { .tv_sec = m->conf.params.stop_timeout };

	if (m->stopping)
		return;
	m->stopping = true;
	log_info("stopping");
	/* No new connections while workers finish what they hold. */
	master_control_close(m);
	for (size_t i = 0; i < m->service_count; i++)
		master_close_listeners(&m->services[i], true);
	master_signal_all(m, SIGTERM);
	m->stop_timer = evtimer_new(m->base, on_stop_timeout, m);
	evtimer_add(m->stop_timer, &tv);
	master_check_stopped(m);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct master *m = arg;

	(void)what;
	switch (sig) {
	case SIGCHLD:
		master_reap(m);
		break;
	case SIGHUP: {
		char *error = NULL;

		log_info("SIGHUP: reloading configuration");
		if (master_reload(m, &error) < 0) {
			log_warn("reload failed, keeping the running configuration: %s", error);
			free(error);
		}
		break;
	}
	default:
		master_begin_stop(m);
		break;
	}
}

/* take_lock - one master per run directory; the lock dies with us. */
static int take_lock(struct master *m, char **error_r)
{
	char *path = xasprintf("%s/master.lock", m->conf.params.run_directory);

	m->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (m->lock_fd < 0) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	free(path);
	if (flock(m->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		char *pid = file_read_small(m->pid_path, 32);

		*error_r = xasprintf("yubin is already running (master pid %s)",
				     pid != NULL ? str_trim(pid) : "unknown");
		free(pid);
		return -1;
	}
	return 0;
}

/* prepare_directories - the places master itself needs. As root the queue
 * directory is root-owned (it is a jail) with a private subdirectory only
 * the mail system may enter and a public one every local user may. */
static int prepare_directories(struct master *m, char **error_r)
{
	const struct yb_params *p = &m->conf.params;
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	char *priv_dir;
	int rc;

	if (geteuid() == 0) {
		if (priv_lookup_user(p->mail_owner, &uid, &gid, error_r) < 0)
			return -1;
		gid = 0; /* as in the install manifest, conf/yubin-files */
		if (dir_ensure(p->run_directory, 0, 0, 0755, error_r) < 0 ||
		    dir_ensure(p->queue_directory, 0, 0, 0755, error_r) < 0)
			return -1;
	} else if (dir_ensure(p->run_directory, (uid_t)-1, (gid_t)-1, 0755, error_r) < 0 ||
		   dir_ensure(p->queue_directory, (uid_t)-1, (gid_t)-1, 0755, error_r) < 0) {
		return -1;
	}
	priv_dir = xasprintf("%s/private", p->queue_directory);
	rc = dir_ensure(priv_dir, uid, gid, 0700, error_r);
	free(priv_dir);
	if (rc < 0)
		return rc;
	/* public: root-owned, open to every local user (sendmail's pickup
	 * socket); the services listening there check peer credentials. */
	priv_dir = xasprintf("%s/public", p->queue_directory);
	rc = geteuid() == 0 ? dir_ensure(priv_dir, 0, 0, 0755, error_r)
			    : dir_ensure(priv_dir, (uid_t)-1, (gid_t)-1, 0755, error_r);
	free(priv_dir);
	return rc;
}

/* wants_mailbox_dir - whether a service listens on a mailbox/NAME socket. */
static bool wants_mailbox_dir(const struct master *m)
{
	const struct svc_table *t = &m->conf.services;

	for (size_t i = 0; i < t->count; i++)
		for (size_t j = 0; t->entries[i].type == SVC_UNIX && j < t->entries[i].listen_count; j++)
			if (strncmp(t->entries[i].listen[j], SVC_MAILBOX_PREFIX, strlen(SVC_MAILBOX_PREFIX)) == 0)
				return true;
	return false;
}

/* jails_in_mail_root - whether a service is chrooted in mail_root. */
static bool jails_in_mail_root(const struct master *m)
{
	const struct svc_table *t = &m->conf.services;

	for (size_t i = 0; i < t->count; i++)
		if (t->entries[i].chroot_dir != NULL && strcmp(t->entries[i].chroot_dir, m->conf.params.mail_root) == 0)
			return true;
	return false;
}

/* prepare_mail_root - mail_root, made as local would make it if it is
 * missing and a service (pop3d, imapd) is jailed there, and
 * mail_root/.yubin, where those daemons find auth's socket: owned by the
 * mailbox owner, mode 0700, so that no other account can reach it. */
static int prepare_mail_root(struct master *m, char **error_r)
{
	const struct yb_params *p = &m->conf.params;
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	struct stat st;
	char *dir;
	int rc;

	if (!jails_in_mail_root(m) && !wants_mailbox_dir(m))
		return 0;
	if (geteuid() == 0 && priv_lookup_user(p->mailbox_owner, &uid, &gid, error_r) < 0)
		return -1;
	if (stat(p->mail_root, &st) < 0) {
		if (errno != ENOENT) {
			*error_r = xasprintf("mail_root %s: %s", p->mail_root, strerror(errno));
			return -1;
		}
		if (dir_make_parents(p->mail_root, error_r) < 0 || dir_ensure(p->mail_root, uid, gid, 0750, error_r) < 0)
			return -1;
	}
	if (!wants_mailbox_dir(m))
		return 0;
	dir = xasprintf("%s/%s", p->mail_root, SVC_MAILBOX_DIR);
	rc = dir_ensure(dir, uid, gid, 0700, error_r);
	free(dir);
	return rc;
}

static _Noreturn void usage(void)
{
	fprintf(stderr, "usage: master -c CONFIG_DIR [-f] [-R READY_FD]\n"
			"(use \"mailctl start\" to start Yubin)\n");
	exit(64);
}

/* start_failed - start-up could not complete: tell mailctl and leave. */
static _Noreturn void start_failed(struct master *m, const char *error)
{
	log_warn("start-up failed: %s", error);
	master_report_ready(m, error);
	exit(1);
}

int main(int argc, char **argv)
{
	struct master m = { .ready_fd = -1, .control_fd = -1, .lock_fd = -1, .log_fd = -1 };
	struct event *signals[5];
	static const int signal_numbers[] = { SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGQUIT };
	char *error = NULL;
	char pid_text[32];
	int c;

	log_init("yubin/master", LOG_SINK_STDERR);
	while ((c = getopt(argc, argv, "c:fR:")) != -1) {
		long long v;
		const char *err;

		switch (c) {
		case 'c':
			m.config_dir = optarg;
			break;
		case 'f':
			m.foreground = true;
			break;
		case 'R':
			if (str_to_ll(optarg, 3, 1023, &v, &err) < 0)
				usage();
			m.ready_fd = (int)v;
			fd_set_cloexec(m.ready_fd, 1);
			break;
		default:
			usage();
		}
	}
	if (m.config_dir == NULL || optind != argc)
		usage();
	if (suite_conf_load(&m.conf, m.config_dir, geteuid() == 0, &error) < 0)
		start_failed(&m, error);
	master_log_configure(&m);
	if (geteuid() != 0)
		log_warn("not started as root: every service runs as uid %d, without chroot", (int)geteuid());
	m.pid_path = xasprintf("%s/master.pid", m.conf.params.run_directory);
	umask(022);
	signal(SIGPIPE, SIG_IGN);
	if (prepare_directories(&m, &error) < 0 || prepare_mail_root(&m, &error) < 0 || take_lock(&m, &error) < 0)
		start_failed(&m, error);
	snprintf(pid_text, sizeof pid_text, "%ld\n", (long)getpid());
	if (file_write_atomic(m.pid_path, pid_text, strlen(pid_text), 0644) < 0) {
		error = xasprintf("%s: %s", m.pid_path, strerror(errno));
		start_failed(&m, error);
	}
	m.base = event_base_new();
	if (m.base == NULL)
		start_failed(&m, "event_base_new failed");
	if (master_log_open(&m, &error) < 0 || master_services_create(&m, &error) < 0 ||
	    master_control_open(&m, &error) < 0) {
		unlink(m.pid_path);
		start_failed(&m, error);
	}
	for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
		signals[i] = evsignal_new(m.base, signal_numbers[i], on_signal, &m);
		event_add(signals[i], NULL);
	}
	m.started_at = time(NULL);
	m.starting = true;
	log_info("starting: config %s, %zu services", m.config_dir, m.service_count);
	master_services_start(&m);
	{
		struct timeval tv = { .tv_sec = m.conf.params.service_ready_timeout };

		m.ready_timer = evtimer_new(m.base, on_ready_timeout, &m);
		evtimer_add(m.ready_timer, &tv);
	}
	master_check_started(&m);
	event_base_dispatch(m.base);

	for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
		event_free(signals[i]);
	if (m.starting)
		master_report_ready(&m, "master was stopped during start-up");
	return m.failed ? 1 : 0;
}
