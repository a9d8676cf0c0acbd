/* service.h - the daemon skeleton every Yubin service runs on.
 *
 * A daemon's main() fills a struct service_desc and calls service_main(),
 * which owns everything common: options, yubin.conf, the inherited fds
 * (master_proto.h), logging to master, the pre-jail hook (open what lives
 * outside the jail), the privilege drop, the post-jail hook, the event loop,
 * graceful stop on SIGTERM and exit when master goes away.
 */
#ifndef YB_SERVICE_H
#define YB_SERVICE_H

#include <stdbool.h>
#include <sys/types.h>

#include "conf.h"
#include "master_proto.h"

struct event_base;
struct service_ctx;

struct service_desc {
	const char *name;                    /* program name, for logs */
	const struct conf_table *conf_table; /* the yubin.conf keys */
	void *conf;                          /* where they are loaded */
	/* Optional: loads CONFIG_DIR's settings into conf (default: conf_load
	 * of CONFIG_DIR/yubin.conf); 0 or -1 with *error_r. */
	int (*load_conf)(void *conf, const char *config_dir, char **error_r);
	/* Optional: runs as root before the drop. 0 or -1 with *error_r. */
	int (*pre_jail)(struct service_ctx *ctx, char **error_r);
	/* Optional: runs after the drop, before serving. */
	int (*post_jail)(struct service_ctx *ctx, char **error_r);
	/* A client connected on listener number index; the fd is non-blocking
	 * and now belongs to the service. */
	void (*on_accept)(struct service_ctx *ctx, int fd, int index);
	/* Optional: SIGTERM arrived; listeners are closed already. */
	void (*on_stop)(struct service_ctx *ctx);
};

struct service_ctx {
	const struct service_desc *desc;
	struct event_base *base;
	const char *config_dir;
	const char *service_name; /* the master.conf entry */
	int listen_fds[MASTER_LISTEN_MAX];
	int listen_count;
	uid_t uid;     /* the account the service runs as (after the drop) */
	gid_t gid;
	int clients;   /* open client connections */
	bool stopping; /* SIGTERM seen: finish clients, then exit */
	void *app;     /* the daemon's own state */
};

/* service_dir_ensure - in a pre-jail hook: create dir if missing, owned by
 * the service's account (when started as root), with mode. */
int service_dir_ensure(const struct service_ctx *ctx, const char *dir, int mode, char **error_r);

/* service_main - run the daemon; returns the process exit status. */
int service_main(int argc, char **argv, const struct service_desc *desc);

/* service_client_opened / service_client_closed - keep the client count,
 * which drives the busy/idle status and the graceful stop. */
void service_client_opened(struct service_ctx *ctx);

/* service_pause_accepting - leave new connections on the shared listeners
 * to the other workers for ms milliseconds. For services whose clients
 * keep a few long-lived connections each (local): without a pause, the
 * first worker to wake takes a whole burst of them. */
void service_pause_accepting(struct service_ctx *ctx, int ms);
void service_client_closed(struct service_ctx *ctx);

#endif
