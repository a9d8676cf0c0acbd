/* service.c - the daemon skeleton: from exec by master to serving clients. */
#include "config.h"
#include "service.h"
#include "fileutil.h"
#include "log.h"
#include "mem.h"
#include "priv.h"
#include "sock.h"
#include "strutil.h"

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct service_run {
	struct service_ctx ctx;
	struct event *listen_ev[MASTER_LISTEN_MAX];
	struct event *status_ev;
	struct event *term_ev;
	struct event *resume_ev;  /* ends a pause in accepting */
	bool status_ok;
};

static void send_status(struct service_run *run, enum master_worker_state state)
{
	struct master_status st = { .pid = (uint32_t)getpid(), .state = (uint32_t)state };

	if (!run->status_ok)
		return;
	if (send(MASTER_STATUS_FD, &st, sizeof st, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof st)
		log_warn("status channel: %s", strerror(errno));
}

void service_client_opened(struct service_ctx *ctx)
{
	struct service_run *run = (struct service_run *)ctx;

	if (ctx->clients++ == 0)
		send_status(run, MASTER_WORKER_BUSY);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct service_run *run = arg;

	(void)fd;
	(void)what;
	for (int i = 0; i < run->ctx.listen_count; i++)
		if (run->listen_ev[i] != NULL)
			event_add(run->listen_ev[i], NULL);
}

void service_pause_accepting(struct service_ctx *ctx, int ms)
{
	struct service_run *run = (struct service_run *)ctx;
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	if (run->resume_ev == NULL)
		run->resume_ev = evtimer_new(ctx->base, on_resume, run);
	for (int i = 0; i < ctx->listen_count; i++)
		if (run->listen_ev[i] != NULL)
			event_del(run->listen_ev[i]);
	evtimer_add(run->resume_ev, &tv);
}

void service_client_closed(struct service_ctx *ctx)
{
	struct service_run *run = (struct service_run *)ctx;

	if (ctx->clients <= 0)
		log_panic("service_client_closed: no client open");
	if (--ctx->clients == 0) {
		send_status(run, MASTER_WORKER_IDLE);
		if (ctx->stopping)
			event_base_loopbreak(ctx->base);
	}
}

static void on_listen(evutil_socket_t fd, short what, void *arg)
{
	struct service_run *run = arg;
	int index = -1;
	int client;

	(void)what;
	for (int i = 0; i < run->ctx.listen_count; i++)
		if (run->ctx.listen_fds[i] == fd)
			index = i;
	/* Several workers share the listener: losing the race is normal. */
	client = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (client < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED && errno != EINTR)
			log_warn("accept: %s", strerror(errno));
		return;
	}
	run->ctx.desc->on_accept(&run->ctx, client, index);
}

/* on_status - master's end of the status channel became readable: master
 * is gone (EOF) or wrote something it never writes. Either way, leave. */
static void on_status(evutil_socket_t fd, short what, void *arg)
{
	struct service_run *run = arg;
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);

	(void)what;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	log_info("master went away; exiting");
	run->status_ok = false;
	exit(0);
}

static void stop_listening(struct service_run *run)
{
	for (int i = 0; i < run->ctx.listen_count; i++) {
		if (run->listen_ev[i] != NULL)
			event_free(run->listen_ev[i]);
		run->listen_ev[i] = NULL;
		close(run->ctx.listen_fds[i]);
	}
	run->ctx.listen_count = 0;
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
	struct service_run *run = arg;

	(void)sig;
	(void)what;
	if (run->ctx.stopping)
		return;
	run->ctx.stopping = true;
	stop_listening(run);
	if (run->ctx.desc->on_stop != NULL)
		run->ctx.desc->on_stop(&run->ctx);
	if (run->ctx.clients == 0)
		event_base_loopbreak(run->ctx.base);
}

static _Noreturn void usage(const char *prog)
{
	fprintf(stderr, "usage: %s -c CONFIG_DIR -n SERVICE [-u UID -g GID] [-r ROOT] [-v]\n"
			"(services are started by master, through mailctl start)\n", prog);
	exit(64);
}

/* check_inherited - the status channel and listeners master promised. */
static void check_inherited(struct service_run *run)
{
	const char *env = getenv(MASTER_LISTEN_FD_ENV);
	long long n = 0;
	const char *error;
	int type;
	socklen_t len = sizeof type;

	if (getsockopt(MASTER_STATUS_FD, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		log_fatal("fd %d is not master's status channel: this program is started by master",
			  MASTER_STATUS_FD);
	run->status_ok = true;
	if (env != NULL && str_to_ll(env, 0, MASTER_LISTEN_MAX, &n, &error) < 0)
		log_fatal("%s=%s: %s", MASTER_LISTEN_FD_ENV, env, error);
	for (int i = 0; i < (int)n; i++) {
		int fd = MASTER_LISTEN_FD + i;
		int listening = 0;

		len = sizeof listening;
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening)
			log_fatal("fd %d is not a listening socket", fd);
		fd_set_cloexec(fd, 1);
		sock_set_nonblock(fd, 1);
		run->ctx.listen_fds[i] = fd;
	}
	run->ctx.listen_count = (int)n;
	fd_set_cloexec(MASTER_STATUS_FD, 1);
	unsetenv(MASTER_LISTEN_FD_ENV);
}

/* log_sink_for_fd2 - master's log channel is a datagram socket on fd 2. */
static enum log_sink log_sink_for_fd2(void)
{
	int type;
	socklen_t len = sizeof type;

	if (getsockopt(MASTER_LOG_FD, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_DGRAM)
		return LOG_SINK_CHANNEL;
	return LOG_SINK_STDERR;
}

int service_dir_ensure(const struct service_ctx *ctx, const char *dir, int mode, char **error_r)
{
	bool root = geteuid() == 0;

	return dir_ensure(dir, root ? ctx->uid : (uid_t)-1, root ? ctx->gid : (gid_t)-1, mode, error_r);
}

/* raise_fd_limit - the soft limit on open descriptors up to the hard one:
 * servers hold one per connection (smtpd) or per message in flight (qmgr),
 * and the usual soft default of 1024 is a limit for interactive shells. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("cannot raise the open file limit: %s", strerror(errno));
	}
}

int service_main(int argc, char **argv, const struct service_desc *desc)
{
	struct service_run run = { 0 };
	struct priv_target target = { .uid = getuid(), .gid = getgid(), .root_dir = NULL };
	const char *config_dir = NULL;
	char *conf_path;
	char *error = NULL;
	int c;

	run.ctx.desc = desc;
	log_init(desc->name, log_sink_for_fd2());
	while ((c = getopt(argc, argv, "c:n:u:g:r:v")) != -1) {
		long long v;
		const char *err;

		switch (c) {
		case 'c':
			config_dir = optarg;
			break;
		case 'n':
			run.ctx.service_name = optarg;
			break;
		case 'u':
			if (str_to_ll(optarg, 0, 0x7fffffff, &v, &err) < 0)
				usage(argv[0]);
			target.uid = (uid_t)v;
			break;
		case 'g':
			if (str_to_ll(optarg, 0, 0x7fffffff, &v, &err) < 0)
				usage(argv[0]);
			target.gid = (gid_t)v;
			break;
		case 'r':
			target.root_dir = optarg;
			break;
		case 'v':
			log_set_verbose(true);
			break;
		default:
			usage(argv[0]);
		}
	}
	if (config_dir == NULL || run.ctx.service_name == NULL)
		usage(argv[0]);
	run.ctx.config_dir = config_dir;
	check_inherited(&run);
	run.ctx.uid = target.uid;
	run.ctx.gid = target.gid;

	if (desc->load_conf != NULL) {
		if (desc->load_conf(desc->conf, config_dir, &error) < 0)
			log_fatal("%s", error);
	} else {
		conf_path = xasprintf("%s/yubin.conf", config_dir);
		if (conf_load(desc->conf_table, desc->conf, conf_path, &error) < 0)
			log_fatal("%s", error);
		free(conf_path);
	}

	signal(SIGPIPE, SIG_IGN);
	umask(077);
	raise_fd_limit();
	if (desc->pre_jail != NULL && desc->pre_jail(&run.ctx, &error) < 0)
		log_fatal("%s", error);
	if (priv_drop(&target, &error) < 0)
		log_fatal("privilege drop failed: %s", error);
	/* Cleared by the credential change; set it now so that even a master
	 * killed with SIGKILL takes its workers along. */
	prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
	if (getppid() == 1)
		log_fatal("master exited during start-up");

	run.ctx.base = event_base_new();
	if (run.ctx.base == NULL)
		log_fatal("event_base_new failed");
	if (desc->post_jail != NULL && desc->post_jail(&run.ctx, &error) < 0)
		log_fatal("%s", error);

	for (int i = 0; i < run.ctx.listen_count; i++) {
		run.listen_ev[i] = event_new(run.ctx.base, run.ctx.listen_fds[i], EV_READ | EV_PERSIST,
					     on_listen, &run);
		event_add(run.listen_ev[i], NULL);
	}
	run.status_ev = event_new(run.ctx.base, MASTER_STATUS_FD, EV_READ | EV_PERSIST, on_status, &run);
	event_add(run.status_ev, NULL);
	run.term_ev = evsignal_new(run.ctx.base, SIGTERM, on_term, &run);
	event_add(run.term_ev, NULL);

	send_status(&run, MASTER_WORKER_READY);
	log_debug("service %s ready", run.ctx.service_name);
	event_base_dispatch(run.ctx.base);

	stop_listening(&run);
	event_free(run.status_ev);
	event_free(run.term_ev);
	if (run.resume_ev != NULL)
		event_free(run.resume_ev);
	event_base_free(run.ctx.base);
	conf_free(desc->conf_table, desc->conf);
	return 0;
}
