/* qmgr_bounce.c - the DSNs qmgr sends the sender, each queued as a new
 * message from the null sender:
 *  - when a message is done: one for the recipients that failed, and the
 *    delivered ones that asked for a success notice (NOTIFY=SUCCESS);
 *  - once, when it is still undelivered after delay_warning_time: a delay
 *    warning for the recipients still being retried (headers only).
 * Never for a message from the null sender (no bounce of a bounce), never
 * for recipients that asked for none (NOTIFY=NEVER, or a NOTIFY list
 * without FAILURE, or without DELAY for the warning). */
#include "config.h"
#include "qmgr.h"
#include "../libmail/dsn.h"
#include "../libmail/queue_id.h"
#include "../libmail/smtp_server.h"
#include "../libutil/buf.h"
#include "../libutil/fileutil.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BOUNCE_ORIGINAL_MAX (10 * 1024 * 1024)

/* wants_failure_notice, wants_delay_notice - with NOTIFY absent, RFC 3461
 * leaves it to us: failures and delays, as other servers do. */
static bool wants_failure_notice(const struct queue_rcpt *r)
{
	return r->notify == 0 || (r->notify & SMTP_NOTIFY_FAILURE) != 0;
}

static bool wants_delay_notice(const struct queue_rcpt *r)
{
	return r->notify == 0 || (r->notify & SMTP_NOTIFY_DELAY) != 0;
}

/* read_original - the queued message, at most max octets. */
static char *read_original(const char *id, size_t max, size_t *len_r)
{
	char path[64];
	struct buf b = BUF_INIT;
	char chunk[65536];
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "%s/%s", QUEUE_CONTENT_DIR, id);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	*len_r = 0;
	if (fd < 0)
		return xstrdup("");
	while (b.len < max && (n = read(fd, chunk, sizeof chunk)) > 0)
		buf_append(&b, chunk, (size_t)n);
	close(fd);
	*len_r = b.len;
	return buf_steal(&b);
}

/* write_content - a new content file, fsynced before it is referenced. */
static int write_content(const char *id, const struct buf *text, char **error_r)
{
	char path[64];
	int fd;

	snprintf(path, sizeof path, "%s/%s", QUEUE_CONTENT_DIR, id);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	if (fd_write_all(fd, text->data, text->len) < 0) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		unlink(path);
		return -1;
	}
	return 0;
}

/* original_recipient - the DSN's Original-Recipient: the client's ORCPT,
 * else the address it gave in RCPT TO (after alias expansion the final
 * one can be a stranger); NULL for none. New memory. */
static char *original_recipient(const struct queue_rcpt *r)
{
	if (r->orcpt[0] != '\0')
		return xstrdup(r->orcpt);
	if (r->rcpt_to != NULL && r->rcpt_to[0] != '\0')
		return xasprintf("rfc822;%s", r->rcpt_to);
	return NULL;
}

/* queue_notice - build the DSN about env for these recipients and stage
 * it as a new message to env's sender; what ("non-delivery", "delay",
 * ...) names it in the log. */
static int queue_notice(struct qmgr *q, const struct queue_envelope *env, const struct dsn_rcpt *rcpts, int count,
			bool return_full, const char *what, char **error_r)
{
	char id[QUEUE_ID_SIZE];
	char boundary[QUEUE_ID_SIZE + 16];
	struct buf text = BUF_INIT;
	struct queue_envelope notice = { 0 };
	size_t original_len;
	char *original;
	int rc;

	queue_id_new(id);
	snprintf(boundary, sizeof boundary, "%s/%s", id, q->params->myhostname);
	original = read_original(env->id, BOUNCE_ORIGINAL_MAX + 1, &original_len);
	struct dsn_report report = {
		.reporting_mta = q->params->myhostname,
		.queue_id = env->id,
		.sender = env->sender,
		.arrival = env->arrival,
		.envid = env->envid,
		.return_full = return_full,
		.rcpts = rcpts,
		.rcpt_count = count,
		.message_id = id,
		.boundary = boundary,
	};
	dsn_build(&text, &report, original, original_len, BOUNCE_ORIGINAL_MAX);
	free(original);
	if (write_content(id, &text, error_r) < 0) {
		buf_free(&text);
		return -1;
	}
	snprintf(notice.id, sizeof notice.id, "%s", id);
	notice.arrival = (long long)time(NULL);
	notice.sender = "";
	notice.size = (long long)text.len;
	notice.envid = "";
	notice.ret = "";
	notice.client = "local bounce";
	struct queue_rcpt to = {
		.address = env->sender, .orcpt = "", .notify = SMTP_NOTIFY_NEVER,
		.state = QUEUE_RCPT_PENDING, .next_try = notice.arrival, .last_status = "", .last_response = "",
	};
	notice.rcpts = &to;
	notice.rcpt_count = 1;
	buf_free(&text);
	rc = queue_store_put(q->store, &notice, error_r);
	if (rc == 0) {
		log_info("%s: sender %s notification: %s", env->id, what, id);
		q->rescan = true; /* deliver the notification after the commit */
	}
	return rc;
}

/* notice_for - the recipients that pass keep(), as DSN recipients; then
 * queue_notice. */
static int notice_for(struct qmgr *q, const struct queue_envelope *env,
		      bool (*keep)(const struct qmgr *q, const struct queue_envelope *env, const struct queue_rcpt *r,
				   struct dsn_rcpt *x),
		      bool return_full, const char *what, char **error_r)
{
	struct dsn_rcpt *rcpts = xcalloc(env->rcpt_count, sizeof *rcpts);
	char **orcpts = xcalloc(env->rcpt_count + 1, sizeof *orcpts);
	int count = 0, rc = 0;

	for (size_t i = 0; i < env->rcpt_count; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];
		struct dsn_rcpt *x = &rcpts[count];

		if (!keep(q, env, r, x))
			continue;
		x->final_rcpt = r->address;
		x->orcpt = orcpts[count] = original_recipient(r);
		x->diagnostic = r->last_response;
		count++;
	}
	if (count > 0)
		rc = queue_notice(q, env, rcpts, count, return_full, what, error_r);
	for (int i = 0; i < count; i++)
		free(orcpts[i]);
	free(orcpts);
	free(rcpts);
	return rc;
}

/* keep_final - failures (and successes that asked for a notice); fills
 * in the action and status. */
static bool keep_final(const struct qmgr *q, const struct queue_envelope *env, const struct queue_rcpt *r,
			      struct dsn_rcpt *x)
{
	bool failed = r->state == QUEUE_RCPT_FAILED && wants_failure_notice(r);
	bool delivered = r->state == QUEUE_RCPT_DELIVERED && (r->notify & SMTP_NOTIFY_SUCCESS) != 0;

	(void)q;
	(void)env;
	if (!failed && !delivered)
		return false;
	x->action = failed ? "failed" : "delivered";
	x->status = r->last_status[0] != '\0' ? r->last_status : failed ? "5.0.0" : "2.0.0";
	return true;
}

/* keep_delayed - recipients still being retried that want to hear. */
static bool keep_delayed(const struct qmgr *q, const struct queue_envelope *env, const struct queue_rcpt *r,
				struct dsn_rcpt *x)
{
	if ((r->state != QUEUE_RCPT_DEFERRED && r->state != QUEUE_RCPT_PENDING) || !wants_delay_notice(r))
		return false;
	x->action = "delayed";
	x->status = r->last_status[0] == '4' ? r->last_status : "4.0.0";
	x->retry_until = env->arrival + q->params->maximal_queue_lifetime;
	return true;
}

int qmgr_bounce(struct qmgr *q, const struct queue_envelope *env, char **error_r)
{
	bool failures = false;

	if (env->sender[0] == '\0')
		return 0;
	for (size_t i = 0; i < env->rcpt_count; i++)
		failures |= env->rcpts[i].state == QUEUE_RCPT_FAILED;
	return notice_for(q, env, keep_final, strcmp(env->ret, "FULL") == 0,
			  failures ? "non-delivery" : "delivery status", error_r);
}

int qmgr_delay_warning(struct qmgr *q, const struct queue_envelope *env, char **error_r)
{
	if (env->sender[0] == '\0')
		return 0;
	return notice_for(q, env, keep_delayed, false, "delay", error_r);
}
