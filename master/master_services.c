/* master_services.c - spawn, watch, replace and throttle workers; reload. */
#include "config.h"
#include "master.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/priv.h"
#include "../libutil/sock.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void spawn_worker(struct master *m, struct master_service *s);

const char *master_worker_state_name(enum worker_state state)
{
	static const char *const names[] = {
		[WORKER_STARTING] = "starting", [WORKER_READY] = "ready", [WORKER_BUSY] = "busy",
		[WORKER_IDLE] = "idle", [WORKER_RETIRING] = "retiring",
	};
	return names[state];
}

const char *master_service_state_name(const struct master *m, const struct master_service *s)
{
	if (s->throttled)
		return "throttled";
	return master_service_ready(m, s) ? "running" : "starting";
}

static double elapsed_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

struct master_worker *master_find_worker(struct master *m, pid_t pid)
{
	for (struct master_worker *w = m->workers; w != NULL; w = w->next)
		if (w->pid == pid)
			return w;
	return NULL;
}

bool master_service_ready(const struct master *m, const struct master_service *s)
{
	int ready = 0;

	for (struct master_worker *w = m->workers; w != NULL; w = w->next)
		if (w->service == s && w->state != WORKER_STARTING)
			ready++;
	return ready >= s->entry->procs;
}

/* on_worker_status - a status record from a worker. */
static void on_worker_status(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;
	struct master_status st;
	ssize_t n;

	(void)what;
	n = recv(fd, &st, sizeof st, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	for (struct master_worker *w = m->workers; w != NULL; w = w->next) {
		if (w->status_fd != fd)
			continue;
		if (n != (ssize_t)sizeof st) {
			/* EOF (the worker is exiting) or garbage: stop listening;
			 * SIGCHLD does the bookkeeping. */
			event_del(w->status_ev);
			return;
		}
		if (st.pid != (uint32_t)w->pid) {
			log_warn("worker %ld sent a status record for pid %lu; ignored", (long)w->pid,
				 (unsigned long)st.pid);
			return;
		}
		if (w->state == WORKER_RETIRING)
			return;
		switch (st.state) {
		case MASTER_WORKER_READY:
			w->state = WORKER_READY;
			break;
		case MASTER_WORKER_BUSY:
			w->state = WORKER_BUSY;
			break;
		case MASTER_WORKER_IDLE:
			w->state = WORKER_IDLE;
			break;
		default:
			log_warn("worker %ld sent unknown state %lu", (long)w->pid, (unsigned long)st.state);
			return;
		}
		if (m->starting)
			master_check_started(m);
		return;
	}
}

/* child_setup_fds - arrange the fds of master_proto.h in the new child.
 * Every source fd is first moved above the target range so that no dup2
 * overwrites a source still needed. */
static void child_setup_fds(struct master *m, struct master_service *s, int status_fd)
{
	int high[MASTER_LISTEN_MAX + 2];
	int devnull = open("/dev/null", O_RDWR);
	int base = MASTER_LISTEN_FD + MASTER_LISTEN_MAX + 8;

	if (devnull < 0)
		_exit(126);
	high[0] = fcntl(m->log_child_fd, F_DUPFD, base);
	high[1] = fcntl(status_fd, F_DUPFD, base);
	for (int i = 0; i < s->listen_count; i++)
		high[2 + i] = fcntl(s->listen_fds[i], F_DUPFD, base);
	for (int i = 0; i < 2 + s->listen_count; i++)
		if (high[i] < 0)
			_exit(126);
	if (dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(high[0], MASTER_LOG_FD) < 0 ||
	    dup2(high[1], MASTER_STATUS_FD) < 0)
		_exit(126);
	for (int i = 0; i < s->listen_count; i++)
		if (dup2(high[2 + i], MASTER_LISTEN_FD + i) < 0)
			_exit(126);
	/* Nothing else of master's crosses exec: not its control socket,
	 * not other services' listeners, not fds inherited by master. */
	for (int fd = MASTER_LISTEN_FD + s->listen_count; fd < 1024; fd++)
		close(fd);
}

static void spawn_worker(struct master *m, struct master_service *s)
{
	int pair[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
		log_warn("service %s: socketpair: %s", s->entry->name, strerror(errno));
		return;
	}
	pid = fork();
	if (pid < 0) {
		log_warn("service %s: fork: %s", s->entry->name, strerror(errno));
		close(pair[0]);
		close(pair[1]);
		return;
	}
	if (pid == 0) {
		char *argv[32 + 16];
		char uid[16], gid[16], nfds[64];
		char *envp[8];
		int argc = 0, envc = 0;
		sigset_t none;

		/* Own process group: a terminal's ^C reaches master alone, and
		 * master stops the workers in order. */
		setpgid(0, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		for (int sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		child_setup_fds(m, s, pair[1]);
		snprintf(uid, sizeof uid, "%d", (int)s->uid);
		snprintf(gid, sizeof gid, "%d", (int)s->gid);
		snprintf(nfds, sizeof nfds, "%s=%d", MASTER_LISTEN_FD_ENV, s->listen_count);
		argv[argc++] = (char *)s->program;
		argv[argc++] = "-c";
		argv[argc++] = (char *)m->config_dir;
		argv[argc++] = "-n";
		argv[argc++] = s->entry->name;
		argv[argc++] = "-u";
		argv[argc++] = uid;
		argv[argc++] = "-g";
		argv[argc++] = gid;
		if (s->entry->chroot_dir != NULL) {
			argv[argc++] = "-r";
			argv[argc++] = s->entry->chroot_dir;
		}
		if (m->conf.params.debug_logging)
			argv[argc++] = "-v";
		for (size_t i = 0; i < s->entry->argc && argc < 32 + 15; i++)
			argv[argc++] = s->entry->argv[i];
		argv[argc] = NULL;
		/* A minimal environment: libraries read SASL_PATH, RES_OPTIONS,
		 * LOCALDOMAIN, TZ and LD_* from it. Sanitizer options pass
		 * through so that sanitizer builds report from workers too. */
		envp[envc++] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
		envp[envc++] = nfds;
		{
			static const char *const keep[] = { "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS" };

			for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
				const char *v = getenv(keep[i]);

				if (v != NULL)
					envp[envc++] = xasprintf("%s=%s", keep[i], v);
			}
		}
		envp[envc] = NULL;
		execve(s->program, argv, envp);
		fprintf(stderr, "<%d>exec %s: %s", (int)LOG_LEVEL_FATAL, s->program, strerror(errno));
		_exit(127);
	}
	close(pair[1]);
	struct master_worker *w = xnew(struct master_worker);
	char *copy = xstrdup(s->program);

	w->pid = pid;
	w->status_fd = pair[0];
	sock_set_nonblock(w->status_fd, 1);
	w->status_ev = event_new(m->base, w->status_fd, EV_READ | EV_PERSIST, on_worker_status, m);
	event_add(w->status_ev, NULL);
	clock_gettime(CLOCK_MONOTONIC, &w->started);
	w->state = WORKER_STARTING;
	w->service = s;
	w->program_name = xstrdup(basename(copy));
	free(copy);
	w->next = m->workers;
	m->workers = w;
	s->workers++;
	log_debug("service %s: started worker %ld", s->entry->name, (long)pid);
}

static void spawn_missing(struct master *m, struct master_service *s)
{
	while (!m->stopping && !s->throttled && s->workers < s->entry->procs)
		spawn_worker(m, s);
}

static void on_throttle_end(evutil_socket_t fd, short what, void *arg)
{
	struct master_service *s = arg;

	(void)fd;
	(void)what;
	s->throttled = false;
	/* One more quick crash throttles again; a worker that lives resets it. */
	s->crashes = s->master->conf.params.service_crash_limit - 1;
	log_info("service %s: throttle time over, starting workers again", s->entry->name);
	spawn_missing(s->master, s);
}

/* describe_exit - "exit status 1" / "killed by signal 9 (Killed)". */
static char *describe_exit(int status)
{
	if (WIFEXITED(status))
		return xasprintf("exit status %d", WEXITSTATUS(status));
	if (WIFSIGNALED(status))
		return xasprintf("killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	return xasprintf("wait status %d", status);
}

static void free_worker(struct master_worker *w)
{
	if (w->status_ev != NULL)
		event_free(w->status_ev);
	close(w->status_fd);
	free(w->program_name);
	free(w);
}

/* worker_exited - bookkeeping for one reaped child. */
static void worker_exited(struct master *m, struct master_worker *w, int status)
{
	struct master_service *s = w->service;
	bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	double lived = elapsed_since(&w->started);
	char *how = describe_exit(status);

	if (s == NULL || m->stopping) {
		log_debug("worker %ld (%s) ended: %s", (long)w->pid, w->program_name, how);
		free(how);
		return;
	}
	s->workers--;
	free(s->last_exit);
	s->last_exit = how;
	if (m->starting && w->state == WORKER_STARTING) {
		char *reason = xasprintf("service %s: worker exited during start-up (%s); see the log",
					 s->entry->name, how);

		log_warn("%s", reason);
		master_report_ready(m, reason);
		free(reason);
		master_begin_stop(m);
		return;
	}
	if (!clean)
		log_warn("service %s: worker %ld %s", s->entry->name, (long)w->pid, how);
	s->restarts++;
	/* Any exit master did not ask for, this soon after start, is a crash:
	 * a program that exits 0 at once would otherwise fork without end. */
	if (lived < (double)m->conf.params.service_crash_window)
		s->crashes++;
	else
		s->crashes = 0;
	/* Already throttled: a worker that was on its way out adds nothing. */
	if (s->throttled)
		return;
	if (s->crashes >= m->conf.params.service_crash_limit) {
		struct timeval tv = { .tv_sec = m->conf.params.service_throttle_time };

		s->throttled = true;
		log_warn("service %s: throttled: %d workers in a row exited within %llds of starting "
			 "(last: %s); next attempt in %llds", s->entry->name, s->crashes,
			 m->conf.params.service_crash_window, how, m->conf.params.service_throttle_time);
		if (s->throttle_ev == NULL)
			s->throttle_ev = evtimer_new(m->base, on_throttle_end, s);
		evtimer_add(s->throttle_ev, &tv);
		return;
	}
	spawn_missing(m, s);
}

void master_reap(struct master *m)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct master_worker **pp = &m->workers;

		while (*pp != NULL && (*pp)->pid != pid)
			pp = &(*pp)->next;
		if (*pp == NULL)
			continue;
		struct master_worker *w = *pp;

		*pp = w->next;
		worker_exited(m, w, status);
		free_worker(w);
	}
	/* Throttled services get their workers back when the timer ends; any
	 * service short of workers for another reason is topped up here. */
	for (size_t i = 0; i < m->service_count; i++)
		spawn_missing(m, &m->services[i]);
	if (m->stopping)
		master_check_stopped(m);
}

void master_signal_all(struct master *m, int sig)
{
	for (struct master_worker *w = m->workers; w != NULL; w = w->next)
		kill(w->pid, sig);
}

/* build_services - one master_service per master.conf entry; users are
 * resolved here (as root: the configured account; otherwise ourselves). */
static int build_services(struct master *m, struct suite_conf *conf, struct master_service **out,
			  char **error_r)
{
	struct master_service *services = xcalloc(conf->services.count + 1, sizeof *services);

	for (size_t i = 0; i < conf->services.count; i++) {
		struct master_service *s = &services[i];

		s->master = m;
		s->entry = &conf->services.entries[i];
		s->program = conf->programs[i];
		if (geteuid() == 0) {
			if (priv_lookup_user(s->entry->user, &s->uid, &s->gid, error_r) < 0) {
				free(services);
				return -1;
			}
		} else {
			s->uid = geteuid();
			s->gid = getegid();
		}
	}
	*out = services;
	return 0;
}

int master_services_create(struct master *m, char **error_r)
{
	if (build_services(m, &m->conf, &m->services, error_r) < 0)
		return -1;
	m->service_count = m->conf.services.count;
	for (size_t i = 0; i < m->service_count; i++) {
		if (master_listen_service(m, &m->services[i], error_r) < 0) {
			for (size_t j = 0; j < i; j++)
				master_close_listeners(&m->services[j], true);
			return -1;
		}
	}
	return 0;
}

void master_services_start(struct master *m)
{
	for (size_t i = 0; i < m->service_count; i++)
		spawn_missing(m, &m->services[i]);
}

void master_services_destroy(struct master *m, struct master_service *services, size_t count)
{
	(void)m;
	for (size_t i = 0; i < count; i++) {
		if (services[i].throttle_ev != NULL)
			event_free(services[i].throttle_ev);
		free(services[i].last_exit);
	}
	free(services);
}

/* retire_workers - the workers of s finish their clients and exit. */
static void retire_workers(struct master *m, struct master_service *s)
{
	for (struct master_worker *w = m->workers; w != NULL; w = w->next) {
		if (w->service != s)
			continue;
		w->service = NULL;
		w->state = WORKER_RETIRING;
		kill(w->pid, SIGTERM);
	}
}

int master_reload(struct master *m, char **error_r)
{
	struct suite_conf fresh;
	struct master_service *services;
	size_t count;

	if (suite_conf_load(&fresh, m->config_dir, geteuid() == 0, error_r) < 0)
		return -1;
	if (build_services(m, &fresh, &services, error_r) < 0) {
		suite_conf_free(&fresh);
		return -1;
	}
	count = fresh.services.count;
	/* Listeners first: a reload that cannot bind changes nothing. */
	for (size_t i = 0; i < count; i++) {
		struct master_service *s = &services[i];
		const struct svc_entry *old = svctab_find(&m->conf.services, s->entry->name);

		if (old != NULL && svc_entry_same_listen(old, s->entry))
			continue;
		if (master_listen_service(m, s, error_r) < 0) {
			for (size_t j = 0; j < i; j++)
				if (services[j].unix_paths != NULL)
					master_close_listeners(&services[j], false);
			master_services_destroy(m, services, count);
			suite_conf_free(&fresh);
			return -1;
		}
	}
	/* Commit: carry listeners over, retire every old worker. */
	for (size_t i = 0; i < m->service_count; i++) {
		struct master_service *old = &m->services[i];
		struct master_service *keep = NULL;

		for (size_t j = 0; j < count; j++)
			if (strcmp(services[j].entry->name, old->entry->name) == 0 &&
			    svc_entry_same_listen(old->entry, services[j].entry))
				keep = &services[j];
		retire_workers(m, old);
		if (keep != NULL) {
			memcpy(keep->listen_fds, old->listen_fds, sizeof old->listen_fds);
			keep->listen_count = old->listen_count;
			keep->unix_paths = old->unix_paths;
			keep->restarts = old->restarts;
			old->unix_paths = NULL;
			old->listen_count = 0;
		} else {
			master_close_listeners(old, true);
		}
	}
	master_services_destroy(m, m->services, m->service_count);
	suite_conf_free(&m->conf);
	m->conf = fresh;
	m->services = services;
	m->service_count = count;
	master_log_configure(m);
	master_services_start(m);
	log_info("reloaded configuration: %zu services", count);
	return 0;
}
