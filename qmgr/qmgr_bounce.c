/* qmgr_bounce.c - one DSN to the sender when a message is done: for the
 * recipients that failed, and for delivered ones that asked for a success
 * notice (NOTIFY=SUCCESS); queued as a new message from the null sender.
 * Never for a message from the null sender (no bounce of a bounce), never
 * for recipients that asked for none (NOTIFY=NEVER, or a NOTIFY list
 * without FAILURE). */
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

/* wants_failure_notice - NOTIFY absent means "failures only" (RFC 3461). */
static bool wants_failure_notice(const struct queue_rcpt *r)
{
	return r->notify == 0 || (r->notify & SMTP_NOTIFY_FAILURE) != 0;
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

int qmgr_bounce(struct qmgr *q, const struct queue_envelope *env, char **error_r)
{
	struct dsn_rcpt *rcpts;
	int count = 0;
	char id[QUEUE_ID_SIZE];
	char boundary[QUEUE_ID_SIZE + 16];
	struct buf text = BUF_INIT;
	struct queue_envelope bounce = { 0 };
	size_t original_len;
	char *original;
	int rc;

	if (env->sender[0] == '\0')
		return 0;
	rcpts = xcalloc(env->rcpt_count, sizeof *rcpts);
	/* Original-Recipient: the client's ORCPT, else the address it gave in
	 * RCPT TO (after alias expansion the final one can be a stranger). */
	char **orcpts = xcalloc(env->rcpt_count + 1, sizeof *orcpts);
	for (size_t i = 0; i < env->rcpt_count; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];

		bool failed = r->state == QUEUE_RCPT_FAILED && wants_failure_notice(r);
		bool delivered = r->state == QUEUE_RCPT_DELIVERED && (r->notify & SMTP_NOTIFY_SUCCESS) != 0;

		if (!failed && !delivered)
			continue;
		rcpts[count].final_rcpt = r->address;
		if (r->orcpt[0] != '\0')
			orcpts[count] = xstrdup(r->orcpt);
		else if (r->rcpt_to != NULL && r->rcpt_to[0] != '\0')
			orcpts[count] = xasprintf("rfc822;%s", r->rcpt_to);
		rcpts[count].orcpt = orcpts[count];
		rcpts[count].action = failed ? "failed" : "delivered";
		rcpts[count].status = r->last_status[0] != '\0' ? r->last_status : failed ? "5.0.0" : "2.0.0";
		rcpts[count].diagnostic = r->last_response;
		count++;
	}
	if (count == 0) {
		free(rcpts);
		free(orcpts);
		return 0;
	}
	queue_id_new(id);
	snprintf(boundary, sizeof boundary, "%s/%s", id, q->params->myhostname);
	original = read_original(env->id, BOUNCE_ORIGINAL_MAX + 1, &original_len);
	struct dsn_report report = {
		.reporting_mta = q->params->myhostname,
		.queue_id = env->id,
		.sender = env->sender,
		.arrival = env->arrival,
		.envid = env->envid,
		.return_full = strcmp(env->ret, "FULL") == 0,
		.rcpts = rcpts,
		.rcpt_count = count,
		.message_id = id,
		.boundary = boundary,
	};
	dsn_build(&text, &report, original, original_len, BOUNCE_ORIGINAL_MAX);
	free(original);
	free(rcpts);
	for (int i = 0; i < count; i++)
		free(orcpts[i]);
	free(orcpts);
	if (write_content(id, &text, error_r) < 0) {
		buf_free(&text);
		return -1;
	}
	snprintf(bounce.id, sizeof bounce.id, "%s", id);
	bounce.arrival = (long long)time(NULL);
	bounce.sender = "";
	bounce.size = (long long)text.len;
	bounce.envid = "";
	bounce.ret = "";
	bounce.client = "local bounce";
	struct queue_rcpt to = {
		.address = env->sender, .orcpt = "", .notify = SMTP_NOTIFY_NEVER,
		.state = QUEUE_RCPT_PENDING, .next_try = bounce.arrival, .last_status = "", .last_response = "",
	};
	bounce.rcpts = &to;
	bounce.rcpt_count = 1;
	buf_free(&text);
	rc = queue_store_put(q->store, &bounce, error_r);
	if (rc == 0) {
		bool failures = false;

		for (size_t i = 0; i < env->rcpt_count; i++)
			failures |= env->rcpts[i].state == QUEUE_RCPT_FAILED;
		log_info("%s: sender %s notification: %s", env->id, failures ? "non-delivery" : "delivery status", id);
		q->rescan = true; /* deliver the notification after the commit */
	}
	return rc;
}
