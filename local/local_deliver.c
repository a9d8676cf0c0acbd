/* local_deliver.c - the "local-deliver" protocol on local's socket, and
 * the start-up hooks that prepare mail_root. The protocol is described in
 * local/PROTOCOL.md; the Maildir work is maildir.c's.
 *
 * Deliveries run to completion inside the handler: local is a delivery
 * agent, not a connection server, and a delivery is a few file-system
 * calls ending in two fsyncs. Concurrency comes from master running
 * several local processes. A consequence worth knowing: when SIGTERM
 * arrives, no delivery is half done, so local may stop at once.
 *
 * Every string that came over the socket is passed through sanitize()
 * before it reaches a log line; header values are refused if they hold
 * control characters, so nothing can be injected into the message.
 */
#include "config.h"
#include "local_deliver.h"
#include "../libmail/queue_id.h"
#include "../libmail/maildir.h"
#include "../libmail/params.h"
#include "../libutil/fileutil.h"
#include "../libutil/ipc.h"
#include "../libutil/ipc_server.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/priv.h"
#include "../libutil/sanitize.h"
#include "../libutil/service.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOCAL_FRAME_MAX (64 * 1024)
#define LOCAL_IDLE_TIMEOUT 300 /* s; qmgr reconnects when it needs us */
#define LOCAL_ID_MAX 128
#define LOCAL_ADDR_MAX 1024
#define LOCAL_CMD_MAX 16
#define LOCAL_SPREAD_MS 50 /* after an accept, let other local processes take the next */

struct local_state {
	struct local_config cfg;
	struct ipc_server *server;
	char hostname[256];
};

/* ---- replies and the log -------------------------------------------- */

static const char *outcome_status(enum maildir_outcome o)
{
	return o == MAILDIR_OK ? "ok" : o == MAILDIR_TEMP ? "defer" : "fail";
}

static const char *outcome_log(enum maildir_outcome o)
{
	return o == MAILDIR_OK ? "sent" : o == MAILDIR_TEMP ? "deferred" : "bounced";
}

static void reply_delivery(struct ipc_peer *peer, int64_t req, const struct maildir_result *res)
{
	struct buf out = BUF_INIT;

	ipc_reply_begin(&out, req);
	ipc_put_str(&out, "status", outcome_status(res->outcome));
	ipc_put_str(&out, "dsn", res->dsn);
	ipc_put_str(&out, "text", res->text);
	ipc_peer_send(peer, &out);
	buf_free(&out);
}

static void reply_quota(struct ipc_peer *peer, int64_t req, const char *status, const char *reason)
{
	struct buf out = BUF_INIT;

	ipc_reply_begin(&out, req);
	ipc_put_str(&out, "status", status);
	if (reason != NULL)
		ipc_put_str(&out, "reason", reason);
	ipc_peer_send(peer, &out);
	buf_free(&out);
}

/* log_delivery - the one line per delivery operators grep for:
 * ID: to=<mailbox>, [orig_to=<recipient>, ]relay=local, delay=S, dsn=X.Y.Z, status=WORD (text)
 * As in Postfix, to= is the final recipient (the mailbox) and orig_to=
 * the address the sender used, shown only when the two differ. */
static void log_delivery(const char *id, const char *recipient, const char *mailbox, double delay,
			 const struct maildir_result *res)
{
	char s_id[SANITIZE_MAX], s_to[SANITIZE_MAX], s_orig[SANITIZE_MAX], s_text[SANITIZE_MAX * 2];
	char orig[SANITIZE_MAX + 16] = "";

	sanitize(s_id, sizeof s_id, id, strlen(id));
	sanitize(s_to, sizeof s_to, mailbox, strlen(mailbox));
	sanitize(s_text, sizeof s_text, res->text, strlen(res->text));
	if (strcasecmp(recipient, mailbox) != 0) {
		sanitize(s_orig, sizeof s_orig, recipient, strlen(recipient));
		snprintf(orig, sizeof orig, "orig_to=<%s>, ", s_orig);
	}
	log_info("%s: to=<%s>, %srelay=local, delay=%.2f, dsn=%s, status=%s (%s)", s_id, s_to, orig, delay,
		 res->dsn, outcome_log(res->outcome), s_text);
}

/* scan_problem - name the field ipc_scan objected to, for the log and the
 * reply ("missing field" alone does not help whoever debugs qmgr). */
static const char *scan_problem(const struct ipc_msg *msg, const struct ipc_spec *spec, size_t count)
{
	for (size_t i = 0; i < msg->count; i++) {
		size_t j = 0;

		while (j < count && strcmp(spec[j].name, msg->fields[i].name) != 0)
			j++;
		if (j == count || spec[j].type != msg->fields[i].type)
			return msg->fields[i].name;
		if (msg->fields[i].type != IPC_INT && msg->fields[i].len > spec[j].max_len)
			return msg->fields[i].name;
		if (msg->fields[i].type == IPC_INT &&
		    (msg->fields[i].num < spec[j].min || msg->fields[i].num > spec[j].max))
			return msg->fields[i].name;
	}
	for (size_t j = 0; j < count; j++) {
		bool found = false;

		for (size_t i = 0; i < msg->count; i++)
			found |= strcmp(spec[j].name, msg->fields[i].name) == 0;
		if (spec[j].required && !found)
			return spec[j].name;
	}
	return "?";
}

/* has_control - whether s holds a control character (CR, LF, ...). */
static bool has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* delay_since - seconds since the content file was written (smtpd wrote
 * and fsynced it when the message arrived: its mtime is the arrival). */
static double delay_since(int fd)
{
	struct stat st;
	struct timespec now;
	double d;

	if (fd < 0 || fstat(fd, &st) < 0)
		return 0;
	clock_gettime(CLOCK_REALTIME, &now);
	d = (double)(now.tv_sec - st.st_mtim.tv_sec) + (double)(now.tv_nsec - st.st_mtim.tv_nsec) / 1e9;
	return d < 0 ? 0 : d;
}

/* ---- the requests --------------------------------------------------- */

static void do_deliver(const struct local_config *cfg, struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg)
{
	const char *cmd, *id = NULL, *sender = NULL, *recipient = NULL, *mailbox = NULL;
	int64_t quota = 0, recheck = 0;
	const struct ipc_spec spec[] = {
		{ .name = "cmd", .type = IPC_STR, .required = true, .max_len = LOCAL_CMD_MAX, .str_r = &cmd },
		{ .name = "id", .type = IPC_STR, .required = true, .max_len = LOCAL_ID_MAX, .str_r = &id },
		{ .name = "sender", .type = IPC_STR, .required = true, .max_len = LOCAL_ADDR_MAX, .str_r = &sender },
		{ .name = "recipient", .type = IPC_STR, .required = true, .max_len = LOCAL_ADDR_MAX,
		  .str_r = &recipient },
		{ .name = "mailbox", .type = IPC_STR, .required = true, .max_len = LOCAL_ADDR_MAX, .str_r = &mailbox },
		{ .name = "quota", .type = IPC_INT, .required = true, .min = 0, .max = INT64_MAX, .int_r = &quota },
		{ .name = "recheck", .type = IPC_INT, .required = true, .min = 0, .max = 1, .int_r = &recheck },
	};
	const size_t nspec = sizeof spec / sizeof spec[0];
	/* Take the descriptor first, whatever else is wrong: one left behind
	 * would be handed to the next request on this connection. */
	int fd = ipc_peer_take_fd(peer);
	struct maildir_result res;
	const char *error;
	double delay;

	memset(&res, 0, sizeof res);
	if (ipc_scan(msg, spec, nspec, IPC_STRICT, &error) < 0) {
		snprintf(res.text, sizeof res.text, "bad request: %s: %s", error, scan_problem(msg, spec, nspec));
	} else if (fd < 0) {
		snprintf(res.text, sizeof res.text, "bad request: no message descriptor passed");
	} else if (has_control(sender) || has_control(recipient)) {
		snprintf(res.text, sizeof res.text, "bad request: control character in an address");
	} else {
		struct maildir_msg m = {
			.content_fd = fd,
			.sender = sender,
			.recipient = recipient,
			.mailbox = mailbox,
			.quota = quota,
			.quota_permanent = cfg->quota_over_permanent,
			.hostname = cfg->hostname,
			.queue_id = queue_id_valid(id) ? id : NULL,
			.recheck = recheck != 0,
			.sync_dir = cfg->sync_dir,
		};

		maildir_deliver(cfg->root_fd, &m, &res);
		delay = delay_since(fd);
		log_delivery(id, recipient, mailbox, delay, &res);
		reply_delivery(peer, req, &res);
		close(fd);
		return;
	}
	/* A request qmgr should never have sent. Defer rather than bounce:
	 * the message is fine, and once qmgr is fixed the retry delivers it. */
	res.outcome = MAILDIR_TEMP;
	snprintf(res.dsn, sizeof res.dsn, "4.3.0");
	{
		char s_id[SANITIZE_MAX];

		sanitize(s_id, sizeof s_id, id != NULL ? id : "?", strlen(id != NULL ? id : "?"));
		log_warn("%s: %s", s_id, res.text);
		if (id != NULL && recipient != NULL && mailbox != NULL)
			log_delivery(id, recipient, mailbox, delay_since(fd), &res);
	}
	reply_delivery(peer, req, &res);
	if (fd >= 0)
		close(fd);
}

static void do_quota(const struct local_config *cfg, struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg)
{
	const char *cmd, *mailbox = NULL;
	int64_t size = 0, quota = -1;
	bool has_quota = false;
	const struct ipc_spec spec[] = {
		{ .name = "cmd", .type = IPC_STR, .required = true, .max_len = LOCAL_CMD_MAX, .str_r = &cmd },
		{ .name = "mailbox", .type = IPC_STR, .required = true, .max_len = LOCAL_ADDR_MAX, .str_r = &mailbox },
		{ .name = "size", .type = IPC_INT, .required = true, .min = 0, .max = INT64_MAX, .int_r = &size },
		{ .name = "quota", .type = IPC_INT, .required = false, .min = 0, .max = INT64_MAX, .int_r = &quota,
		  .present_r = &has_quota },
	};
	const size_t nspec = sizeof spec / sizeof spec[0];
	const char *error;
	char *why = NULL;
	int rc;

	if (ipc_scan(msg, spec, nspec, IPC_STRICT, &error) < 0) {
		why = xasprintf("bad request: %s: %s", error, scan_problem(msg, spec, nspec));
		log_warn("quota: %s", why);
		reply_quota(peer, req, "error", why);
		free(why);
		return;
	}
	rc = maildir_quota_query(cfg->root_fd, mailbox, size, has_quota ? quota : -1, &why);
	if (rc < 0) {
		char s_why[SANITIZE_MAX];

		sanitize(s_why, sizeof s_why, why, strlen(why));
		log_warn("quota: %s", s_why);
		reply_quota(peer, req, "error", why);
		free(why);
		return;
	}
	reply_quota(peer, req, rc > 0 ? "over" : "ok", NULL);
}

void local_deliver_handler(struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg, void *ctx)
{
	const struct local_config *cfg = ctx;
	const char *cmd = ipc_get_str(msg, "cmd");

	if (cmd != NULL && strcmp(cmd, "deliver") == 0) {
		do_deliver(cfg, peer, req, msg);
	} else if (cmd != NULL && strcmp(cmd, "quota") == 0) {
		do_quota(cfg, peer, req, msg);
	} else {
		char s_cmd[SANITIZE_MAX];

		sanitize(s_cmd, sizeof s_cmd, cmd != NULL ? cmd : "", cmd != NULL ? strlen(cmd) : 0);
		log_warn("unknown command \"%s\"", s_cmd);
		reply_quota(peer, req, "error", "unknown command");
	}
}

/* ---- start-up --------------------------------------------------------- */

int local_pre_jail(struct service_ctx *ctx, char **error_r)
{
	const struct yb_params *p = ctx->desc->conf;
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	struct stat st;
	char *tmp;
	int rc;

	if (stat(p->mail_root, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			*error_r = xasprintf("mail_root %s is not a directory", p->mail_root);
			return -1;
		}
		return 0; /* the operator's, as it is */
	}
	if (errno != ENOENT) {
		*error_r = xasprintf("mail_root %s: %s", p->mail_root, strerror(errno));
		return -1;
	}
	/* Not root (a developer's or the tests' instance): created as
	 * ourselves, which is who every service runs as then. */
	if (geteuid() == 0 && priv_lookup_user(p->mailbox_owner, &uid, &gid, error_r) < 0)
		return -1;
	if (dir_make_parents(p->mail_root, error_r) < 0)
		return -1;
	/* Every local process gets here at once on a first start. Each builds
	 * the directory aside, with owner and mode set, and renames it into
	 * place; the first rename wins. So nobody ever sees mail_root with
	 * root's owner and mode and fails to open it after the drop. */
	tmp = xasprintf("%s.new.%ld", p->mail_root, (long)getpid());
	rmdir(tmp);
	if (dir_ensure(tmp, uid, gid, 0750, error_r) < 0) {
		free(tmp);
		return -1;
	}
	rc = renameat2(AT_FDCWD, tmp, AT_FDCWD, p->mail_root, RENAME_NOREPLACE);
	if (rc < 0 && (errno == EINVAL || errno == ENOSYS)) /* no NOREPLACE here */
		rc = rename(tmp, p->mail_root);
	if (rc < 0) {
		int saved = errno;

		rmdir(tmp);
		free(tmp);
		if (saved == EEXIST || saved == ENOTEMPTY)
			return 0; /* another local process was first */
		*error_r = xasprintf("rename to mail_root %s: %s", p->mail_root, strerror(saved));
		return -1;
	}
	free(tmp);
	log_info("created mail_root %s (owner %s, mode 0750)", p->mail_root,
		 geteuid() == 0 ? p->mailbox_owner : "this user");
	return 0;
}

int local_post_jail(struct service_ctx *ctx, char **error_r)
{
	const struct yb_params *p = ctx->desc->conf;
	struct local_state *st = xnew(struct local_state);

	st->cfg.root_fd = open(p->mail_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->cfg.root_fd < 0) {
		*error_r = xasprintf("mail_root %s: %s", p->mail_root, strerror(errno));
		free(st);
		return -1;
	}
	/* Not fatal: an operator may create the domain directories himself
	 * and keep mail_root closed. Deliveries to a new domain then defer. */
	if (faccessat(st->cfg.root_fd, ".", W_OK | X_OK, AT_EACCESS) < 0)
		log_warn("mail_root %s is not writable by uid %d: mail for a new domain will be deferred",
			 p->mail_root, (int)geteuid());
	/* params_load filled in an empty myhostname from the system. */
	snprintf(st->hostname, sizeof st->hostname, "%s", p->myhostname);
	st->cfg.hostname = st->hostname;
	st->cfg.quota_over_permanent = p->quota_over_permanent;
	st->cfg.sync_dir = true;
	st->server = ipc_server_new(ctx->base, LOCAL_PROTOCOL, LOCAL_FRAME_MAX, LOCAL_IDLE_TIMEOUT,
				    local_deliver_handler, &st->cfg);
	ctx->app = st;
	return 0;
}

/* local_accept - a client (qmgr, smtpd) connected. Limitation: ipc_server tells
 * nobody when a peer goes away, so local cannot keep service.h's client
 * count: its workers show as ready, never busy. That costs nothing on
 * SIGTERM, since no delivery is ever in progress between two events. */
void local_accept(struct service_ctx *ctx, int fd, int index)
{
	struct local_state *st = ctx->app;

	(void)index;
	ipc_server_accept(st->server, fd);
	/* qmgr opens its connections in a burst; deliveries run one at a time
	 * per process, so each connection should reach a different one. */
	service_pause_accepting(ctx, LOCAL_SPREAD_MS);
}

void local_stop(struct service_ctx *ctx)
{
	struct local_state *st = ctx->app;

	if (st == NULL)
		return;
	ipc_server_free(&st->server);
	maildir_cache_clear();
	close(st->cfg.root_fd);
	free(st);
	ctx->app = NULL;
}
