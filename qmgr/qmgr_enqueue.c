/* qmgr_enqueue.c - "qmgr-enqueue": smtpd hands over a message whose
 * content file it has written and fsynced; qmgr stages the envelope, and
 * once per event-loop turn commits everything staged with one log flush,
 * then answers every waiting client. Nothing is acknowledged before the
 * commit has returned. */
#include "config.h"
#include "qmgr.h"
#include "../libmail/queue_id.h"
#include "../libutil/fileop_pool.h"
#include "../libutil/ipc_server.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/sanitize.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ENQUEUE_RCPT_MAX 100000

static void reply(struct ipc_peer *peer, int64_t req, const char *error)
{
	struct buf out = BUF_INIT;

	ipc_reply_begin(&out, req);
	ipc_put_str(&out, "status", error == NULL ? "ok" : "error");
	if (error != NULL)
		ipc_put_str(&out, "reason", error);
	ipc_peer_send(peer, &out);
	buf_free(&out);
}

void qmgr_commit_soon(struct qmgr *q)
{
	/* An active event with no fd runs after the events already ready:
	 * every request that arrived in this turn shares the commit. */
	if (!event_pending(q->commit_ev, EV_TIMEOUT, NULL))
		event_active(q->commit_ev, EV_TIMEOUT, 0);
}

/* on_content_removed - a content file was recycled or removed (on the
 * pool's thread: its file-system lock waits happen there, not here). */
static void on_content_removed(int err, void *arg)
{
	struct qmgr_unlink *u = arg;

	if (err != 0 && err != ENOENT)
		log_warn("%s: cannot remove the content file: %s", u->id, strerror(err));
	free(u);
}

void qmgr_commit_later(struct qmgr *q)
{
	struct timeval delay = { 0, QMGR_COMMIT_DELAY_MS * 1000 };

	if (!evtimer_pending(q->commit_later_ev, NULL))
		evtimer_add(q->commit_later_ev, &delay);
}

void qmgr_on_commit(int fd, short what, void *arg)
{
	struct qmgr *q = arg;
	char *error = NULL;
	int rc;
	struct qmgr_ack *a = q->acks;
	int count = 0;

	(void)fd;
	(void)what;
	/* This flush covers whatever was waiting for a later one. */
	evtimer_del(q->commit_later_ev);
	q->acks = NULL;
	rc = queue_store_commit(q->store, &error);
	if (rc < 0)
		log_warn("queue commit failed: %s", error);
	if (rc < 0 && queue_store_failed(q->store)) {
		/* The store needs recovery, which runs when it is opened: answer
		 * the waiting clients (nothing was queued), then let master
		 * start a fresh qmgr. */
		for (struct qmgr_ack *x = a; x != NULL; x = x->next)
			reply(x->peer, x->req, "queue needs recovery");
		log_fatal("queue store failed (%s); exiting so that recovery runs", error);
	}
	while (a != NULL) {
		struct qmgr_ack *next = a->next;

		reply(a->peer, a->req, rc < 0 ? "queue write failed" : NULL);
		ipc_peer_unref(&a->peer);
		free(a);
		a = next;
		count++;
	}
	free(error);
	/* Content goes only once the removal of its envelope is durable; after
	 * a failed commit it stays, and the envelope is delivered again. */
	while (q->unlinks != NULL) {
		struct qmgr_unlink *u = q->unlinks;
		char path[64];

		q->unlinks = u->next;
		snprintf(path, sizeof path, "%s/%s", QUEUE_CONTENT_DIR, u->id);
		if (rc != 0) {
			free(u);
		} else if (q->fileops != NULL) {
			/* Emptied and kept for smtpd's next message: see queue_layout.h. */
			char spare[64];

			snprintf(spare, sizeof spare, "%s/%s", QUEUE_SPARE_DIR, u->id);
			fileop_recycle(q->fileops, path, spare, on_content_removed, u);
		} else { /* stopping */
			on_content_removed(unlink(path) < 0 ? errno : 0, u);
		}
	}
	/* Newly queued mail goes straight to delivery, in arrival order; a
	 * failed commit queued nothing. */
	if (rc == 0)
		q->enqueued += q->fresh_count;
	for (size_t i = 0; i < q->fresh_count; i++) {
		if (rc == 0)
			qmgr_start_fresh(q, &q->fresh[i]);
		else
			queue_envelope_free(&q->fresh[i]);
	}
	q->fresh_count = 0;
	if (rc == 0) {
		log_debug("committed %d envelopes with one flush", count);
		if (q->rescan) {
			q->rescan = false;
			qmgr_scan_soon(q);
		}
	}
}

/* collect_rcpts - the repeated rcpt/orcpt/notify fields, aligned. */
static int collect_rcpts(const struct ipc_msg *msg, struct queue_envelope *env, const char **error_r)
{
	size_t n = 0, no = 0, nn = 0, nt = 0;

	for (size_t i = 0; i < msg->count; i++)
		if (strcmp(msg->fields[i].name, "rcpt") == 0)
			n++;
	if (n == 0 || n > ENQUEUE_RCPT_MAX) {
		*error_r = "no recipients, or too many";
		return -1;
	}
	env->rcpts = xcalloc(n, sizeof *env->rcpts);
	env->rcpt_count = n;
	/* In order: the k-th orcpt, rcpt_to and notify belong to the k-th rcpt. */
	n = 0;
	for (size_t i = 0; i < msg->count; i++) {
		const struct ipc_field *f = &msg->fields[i];

		if (strcmp(f->name, "rcpt") == 0) {
			if (f->type != IPC_STR || f->len == 0 || f->len > 256) {
				*error_r = "bad recipient";
				return -1;
			}
			env->rcpts[n].address = xstrdup((const char *)f->data);
			env->rcpts[n].orcpt = xstrdup("");
			env->rcpts[n].rcpt_to = xstrdup("");
			env->rcpts[n].last_status = xstrdup("");
			env->rcpts[n].last_response = xstrdup("");
			env->rcpts[n].state = QUEUE_RCPT_PENDING;
			n++;
		} else if (strcmp(f->name, "orcpt") == 0) {
			if (f->type != IPC_STR || no >= n || f->len > 512) {
				*error_r = "bad orcpt";
				return -1;
			}
			free(env->rcpts[no].orcpt);
			env->rcpts[no++].orcpt = xstrdup((const char *)f->data);
		} else if (strcmp(f->name, "rcpt_to") == 0) {
			if (f->type != IPC_STR || nt >= n || f->len > 256) {
				*error_r = "bad rcpt_to";
				return -1;
			}
			free(env->rcpts[nt].rcpt_to);
			env->rcpts[nt++].rcpt_to = xstrdup((const char *)f->data);
		} else if (strcmp(f->name, "notify") == 0) {
			if (f->type != IPC_INT || nn >= n) {
				*error_r = "bad notify";
				return -1;
			}
			env->rcpts[nn++].notify = (int)f->num;
		}
	}
	return 0;
}

void qmgr_enqueue_request(struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg, void *ctx)
{
	struct qmgr *q = ctx;
	const char *cmd = NULL, *id = NULL, *sender = NULL, *envid = "", *ret = "", *client = "";
	int64_t size = 0;
	const char *error = NULL;
	struct queue_envelope env = { 0 };
	char *store_error = NULL;
	char path[64];
	struct stat st;
	const struct ipc_spec spec[] = {
		{ .name = "cmd", .type = IPC_STR, .required = true, .max_len = 16, .str_r = &cmd },
		{ .name = "id", .type = IPC_STR, .required = true, .max_len = QUEUE_ID_SIZE, .str_r = &id },
		{ .name = "sender", .type = IPC_STR, .required = true, .max_len = 256, .str_r = &sender },
		{ .name = "size", .type = IPC_INT, .required = true, .min = 0, .max = INT64_MAX, .int_r = &size },
		{ .name = "envid", .type = IPC_STR, .max_len = 100, .str_r = &envid },
		{ .name = "ret", .type = IPC_STR, .max_len = 4, .str_r = &ret },
		{ .name = "client", .type = IPC_STR, .max_len = 512, .str_r = &client },
		{ .name = "rcpt", .type = IPC_STR, .max_len = 256 },
		{ .name = "orcpt", .type = IPC_STR, .max_len = 512 },
		{ .name = "rcpt_to", .type = IPC_STR, .max_len = 256 },
		{ .name = "notify", .type = IPC_INT },
	};

	/* Repeated rcpt/orcpt/notify are checked by collect_rcpts; ipc_scan's
	 * duplicate check would refuse them, so scan the singletons loosely. */
	for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++) {
		const struct ipc_spec *s = &spec[i];
		bool seen = false;

		for (size_t j = 0; j < msg->count; j++) {
			const struct ipc_field *f = &msg->fields[j];

			if (strcmp(f->name, s->name) != 0)
				continue;
			if (f->type != s->type || (s->max_len != 0 && f->type != IPC_INT && f->len > s->max_len)) {
				error = "malformed field";
				break;
			}
			if (seen && s->str_r != NULL) {
				error = "duplicate field";
				break;
			}
			seen = true;
			if (s->str_r != NULL)
				*s->str_r = (const char *)f->data;
			if (s->int_r != NULL)
				*s->int_r = f->num;
		}
		if (error == NULL && s->required && !seen)
			error = "missing field";
	}
	if (error == NULL && strcmp(cmd, "enqueue") != 0)
		error = "unknown command";
	if (error == NULL && !queue_id_valid(id))
		error = "bad queue id";
	if (error == NULL) {
		snprintf(path, sizeof path, "%s/%s", QUEUE_CONTENT_DIR, id);
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
			error = "no content file for this id";
	}
	if (error == NULL)
		collect_rcpts(msg, &env, &error);
	if (error != NULL) {
		char safe[SANITIZE_MAX];

		log_warn("enqueue refused: %s (id %s)", error, sanitize(safe, sizeof safe, id ? id : "-", id ? strlen(id) : 1));
		reply(peer, req, error);
		queue_envelope_free(&env);
		return;
	}
	snprintf(env.id, sizeof env.id, "%s", id);
	env.arrival = (long long)time(NULL);
	env.sender = xstrdup(sender);
	env.size = size;
	env.envid = xstrdup(envid);
	env.ret = xstrdup(ret);
	env.client = xstrdup(client);
	for (size_t i = 0; i < env.rcpt_count; i++)
		env.rcpts[i].next_try = env.arrival;
	if (queue_store_put(q->store, &env, &store_error) < 0) {
		log_warn("%s: cannot stage the envelope: %s", env.id, store_error);
		free(store_error);
		reply(peer, req, "queue write failed");
		queue_envelope_free(&env);
		return;
	}
	{
		char safe[SANITIZE_MAX];

		log_info("%s: from=<%s>, size=%lld, nrcpt=%zu (queue active)", env.id,
			 sanitize(safe, sizeof safe, env.sender, strlen(env.sender)), (long long)size, env.rcpt_count);
	}
	if (q->fresh_count == q->fresh_cap) {
		q->fresh_cap = q->fresh_cap == 0 ? 64 : size_mul(q->fresh_cap, 2);
		q->fresh = xreallocarray(q->fresh, q->fresh_cap, sizeof *q->fresh);
	}
	q->fresh[q->fresh_count++] = env;
	qmgr_reply_after_commit(q, peer, req);
}

void qmgr_reply_after_commit(struct qmgr *q, struct ipc_peer *peer, int64_t req)
{
	struct qmgr_ack *a = xnew(struct qmgr_ack);

	ipc_peer_ref(peer);
	a->peer = peer;
	a->req = req;
	a->next = q->acks;
	q->acks = a;
	qmgr_commit_soon(q);
}
