/* master.h - the supervisor's internal types, shared by its source files. */
#ifndef YB_MASTER_H
#define YB_MASTER_H

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "../libmail/suite_conf.h"
#include "../libutil/master_proto.h"

struct event;
struct event_base;

enum worker_state { WORKER_STARTING, WORKER_READY, WORKER_BUSY, WORKER_IDLE, WORKER_RETIRING };

struct master_worker {
	pid_t pid;
	int status_fd;          /* master's end of the status channel */
	struct event *status_ev;
	struct timespec started; /* monotonic */
	enum worker_state state;
	struct master_service *service; /* NULL once retired */
	char *program_name;     /* for log tags */
	struct master_worker *next;
};

struct master_service {
	struct master *master;
	struct svc_entry *entry; /* in master->conf.services */
	const char *program;     /* resolved path */
	uid_t uid;
	gid_t gid;
	int listen_fds[MASTER_LISTEN_MAX];
	int listen_count;
	char **unix_paths;       /* socket files to remove at stop */
	int workers;             /* live, non-retired workers */
	int restarts;            /* workers replaced since start */
	int crashes;             /* consecutive quick abnormal exits */
	bool throttled;
	struct event *throttle_ev;
	char *last_exit;         /* how the last worker ended */
};

struct master {
	const char *config_dir;
	struct suite_conf conf;
	struct master_service *services;
	size_t service_count;
	struct master_worker *workers; /* every live child, retired ones too */
	struct event_base *base;
	int log_fd;             /* master's end of the log channel */
	int log_child_fd;       /* the workers' end */
	struct event *log_ev;
	int control_fd;
	struct event *control_ev;
	int lock_fd;
	int ready_fd;           /* mailctl start waits on it; -1 when done */
	bool foreground;
	bool starting;
	bool stopping;
	bool failed;            /* start-up failed: exit non-zero */
	struct event *ready_timer;
	struct event *stop_timer;
	time_t started_at;
	char *pid_path;
	char *control_path;
};

/* master_services.c */
int master_services_create(struct master *m, char **error_r);
void master_services_start(struct master *m);
void master_services_destroy(struct master *m, struct master_service *services, size_t count);
void master_reap(struct master *m);
void master_signal_all(struct master *m, int sig);
int master_reload(struct master *m, char **error_r);
const char *master_worker_state_name(enum worker_state state);
const char *master_service_state_name(const struct master *m, const struct master_service *s);
bool master_service_ready(const struct master *m, const struct master_service *s);
struct master_worker *master_find_worker(struct master *m, pid_t pid);

/* master_listen.c */
int master_listen_service(struct master *m, struct master_service *s, char **error_r);
void master_close_listeners(struct master_service *s, bool remove_files);

/* master_control.c */
int master_control_open(struct master *m, char **error_r);
void master_control_close(struct master *m);

/* master_log.c */
int master_log_open(struct master *m, char **error_r);
void master_log_configure(struct master *m);

/* master.c */
void master_report_ready(struct master *m, const char *error);
void master_check_started(struct master *m);
void master_begin_stop(struct master *m);
void master_check_stopped(struct master *m);

#endif
