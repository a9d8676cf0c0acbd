/* qmgr_control.c - "qmgr-control": the operator's view of the queue
 * (mailctl queue ...). Only root and qmgr's own uid may use it; the
 * private directory already keeps everyone else out. Changes are staged
 * and answered after the commit that makes them durable, through the
 * same acknowledgement list as enqueue (qmgr_enqueue.c). See PROTOCOL.md. */
#include "config.h"
#include "qmgr.h"
#include "../libmail/queue_id.h"
#include "../libutil/ipc_server.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/sanitize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LIST_MAX 10000
#define BATCH 32 /* messages or recipients per reply frame (IPC_FIELDS_MAX) */

static void reply_error(struct ipc_peer *peer, int64_t req, const char *reason)
{
	struct buf out = BUF_INIT;

	ipc_reply_begin(&out, req);
	ipc_put_str(&out, "status", "error");
	ipc_put_str(&out, "reason", reason);
	ipc_peer_send(peer, &out);
	buf_free(&out);
}

static struct qmgr_active *find_active(struct qmgr *q, const char *id)
{
	for (struct qmgr_active *a = q->active; a != NULL; a = a->next)
		if (strcmp(a->env.id, id) == 0)
			return a;
	return NULL;
}

static const char *summary(struct qmgr *q, const struct queue_envelope *e)
{
	bool deferred = false, pending = false;

	if (find_active(q, e->id) != NULL)
		return "active";
	if (e->held)
		return "held";
	for (size_t i = 0; i < e->rcpt_count; i++) {
		if (e->rcpts[i].state == QUEUE_RCPT_DEFERRED)
			deferred = true;
		else if (e->rcpts[i].state == QUEUE_RCPT_PENDING)
			pending = true;
	}
	return deferred ? "deferred" : pending ? "pending" : "done";
}

/* ---- list ---- */

struct list_filter {
	const char *sender, *rcpt, *domain;
	long long max_arrival; /* min_age: arrival <= this; -1: any */
};

struct list_ctx {
	struct qmgr *q;
	const struct list_filter *f;
	struct queue_envelope *items;
	size_t count;
	bool truncated;
};

static bool has_substr(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	if (n == 0)
		return true;
	for (; *hay != '\0'; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return true;
	return false;
}

static bool matches(const struct list_filter *f, const struct queue_envelope *e)
{
	bool rcpt_ok = f->rcpt == NULL, domain_ok = f->domain == NULL;

	if (f->max_arrival >= 0 && e->arrival > f->max_arrival)
		return false;
	if (f->sender != NULL && !has_substr(e->sender, f->sender))
		return false;
	for (size_t i = 0; i < e->rcpt_count && (!rcpt_ok || !domain_ok); i++) {
		const char *addr = e->rcpts[i].address;
		const char *at = strrchr(addr, '@');

		if (!rcpt_ok && has_substr(addr, f->rcpt))
			rcpt_ok = true;
		if (!domain_ok && at != NULL && strcasecmp(at + 1, f->domain) == 0)
			domain_ok = true;
	}
	return rcpt_ok && domain_ok;
}

static int list_one(const struct queue_envelope *e, void *arg)
{
	struct list_ctx *c = arg;

	if (!matches(c->f, e))
		return 0;
	if (c->count == LIST_MAX) {
		c->truncated = true;
		return 1;
	}
	queue_envelope_copy(&c->items[c->count++], e);
	return 0;
}

static void do_list(struct qmgr *q, struct ipc_peer *peer, int64_t req, const struct list_filter *f)
{
	struct list_ctx c = { .q = q, .f = f };
	char *error = NULL;
	struct buf out = BUF_INIT;

	c.items = xcalloc(LIST_MAX, sizeof *c.items);
	if (queue_store_foreach(q->store, list_one, &c, &error) < 0) {
		log_warn("queue list: %s", error);
		free(error);
		reply_error(peer, req, "queue read failed");
		queue_envelope_list_free(&c.items, c.count);
		return;
	}
	ipc_reply_begin(&out, req);
	ipc_put_str(&out, "status", "ok");
	ipc_put_int(&out, "count", (int64_t)c.count);
	ipc_put_int(&out, "truncated", c.truncated ? 1 : 0);
	ipc_peer_send(peer, &out);
	for (size_t i = 0; i < c.count; i += BATCH) {
		buf_free(&out);
		ipc_reply_begin(&out, req);
		for (size_t j = i; j < c.count && j < i + BATCH; j++) {
			const struct queue_envelope *e = &c.items[j];

			ipc_put_str(&out, "id", e->id);
			ipc_put_int(&out, "arrival", e->arrival);
			ipc_put_int(&out, "size", e->size);
			ipc_put_str(&out, "sender", e->sender);
			ipc_put_int(&out, "held", e->held ? 1 : 0);
			ipc_put_int(&out, "rcpts", (int64_t)e->rcpt_count);
			ipc_put_str(&out, "state", summary(q, e));
		}
		ipc_peer_send(peer, &out);
	}
	buf_free(&out);
	queue_envelope_list_free(&c.items, c.count);
}

/* ---- show ---- */

static void do_show(struct qmgr *q, struct ipc_peer *peer, int64_t req, const struct queue_envelope *e)
{
	struct buf out = BUF_INIT;

	ipc_reply_begin(&out, req);
	ipc_put_str(&out, "status", "ok");
	ipc_put_str(&out, "id", e->id);
	ipc_put_int(&out, "arrival", e->arrival);
	ipc_put_int(&out, "size", e->size);
	ipc_put_str(&out, "sender", e->sender);
	ipc_put_str(&out, "envid", e->envid);
	ipc_put_str(&out, "ret", e->ret);
	ipc_put_str(&out, "client", e->client);
	ipc_put_int(&out, "held", e->held ? 1 : 0);
	ipc_put_str(&out, "state", summary(q, e));
	ipc_put_int(&out, "rcpts", (int64_t)e->rcpt_count);
	ipc_peer_send(peer, &out);
	for (size_t i = 0; i < e->rcpt_count; i += BATCH) {
		buf_free(&out);
		ipc_reply_begin(&out, req);
		for (size_t j = i; j < e->rcpt_count && j < i + BATCH; j++) {
			const struct queue_rcpt *r = &e->rcpts[j];

			ipc_put_str(&out, "address", r->address);
			ipc_put_str(&out, "orcpt", r->orcpt);
			ipc_put_str(&out, "rcpt_state", queue_rcpt_state_name(r->state));
			ipc_put_int(&out, "attempts", r->attempts);
			ipc_put_int(&out, "next_try", r->next_try);
			ipc_put_str(&out, "last_status", r->last_status);
			ipc_put_str(&out, "last_response", r->last_response);
		}
		ipc_peer_send(peer, &out);
	}
	buf_free(&out);
}

/* ---- changes ---- */

static bool retry_now(struct queue_envelope *e, bool reset, bool deferred_only, long long now)
{
	bool changed = false;

	for (size_t i = 0; i < e->rcpt_count; i++) {
		struct queue_rcpt *r = &e->rcpts[i];

		if (r->state != QUEUE_RCPT_DEFERRED && (deferred_only || r->state != QUEUE_RCPT_PENDING))
			continue;
		r->next_try = now;
		if (reset)
			r->attempts = 0;
		changed = true;
	}
	return changed;
}

struct id_list {
	char (*ids)[QUEUE_ID_SIZE];
	size_t count, cap;
};

static int collect_id(const struct queue_envelope *e, void *arg)
{
	struct id_list *l = arg;

	if (l->count == l->cap) {
		l->cap = l->cap == 0 ? 64 : l->cap * 2;
		l->ids = xreallocarray(l->ids, l->cap, sizeof *l->ids);
	}
	snprintf(l->ids[l->count++], QUEUE_ID_SIZE, "%s", e->id);
	return 0;
}

/* retry_all - flush (deferred only) or requeue (reset attempts) every
 * message not in flight. -1 with *error_r on a store error. */
static int retry_all(struct qmgr *q, bool reset, bool deferred_only, char **error_r)
{
	struct id_list l = { 0 };
	long long now = (long long)time(NULL);
	int rc = 0;

	if (queue_store_foreach(q->store, collect_id, &l, error_r) < 0)
		return -1;
	for (size_t i = 0; i < l.count && rc == 0; i++) {
		struct queue_envelope e;

		if (find_active(q, l.ids[i]) != NULL)
			continue;
		rc = queue_store_get(q->store, l.ids[i], &e, error_r);
		if (rc <= 0)
			continue;
		rc = 0;
		if (retry_now(&e, reset, deferred_only, now))
			rc = queue_store_put(q->store, &e, error_r);
		queue_envelope_free(&e);
	}
	free(l.ids);
	return rc < 0 ? -1 : 0;
}

static void do_change(struct qmgr *q, struct ipc_peer *peer, int64_t req, const char *cmd,
		      struct queue_envelope *e)
{
	struct qmgr_active *act = find_active(q, e->id);
	char *error = NULL;
	int rc;

	if (strcmp(cmd, "delete") == 0) {
		if (act != NULL) {
			reply_error(peer, req, "message is being delivered; try again");
			return;
		}
		rc = queue_store_delete(q->store, e->id, &error);
		if (rc == 0) {
			struct qmgr_unlink *u = xnew(struct qmgr_unlink);

			snprintf(u->id, sizeof u->id, "%s", e->id);
			u->next = q->unlinks;
			q->unlinks = u;
			log_info("%s: removed by the operator", e->id);
		}
	} else if (strcmp(cmd, "hold") == 0 || strcmp(cmd, "release") == 0) {
		e->held = strcmp(cmd, "hold") == 0;
		/* A delivery in flight stores its copy when it ends: that copy
		 * must carry the new flag too. */
		if (act != NULL)
			act->env.held = e->held;
		rc = queue_store_put(q->store, e, &error);
		if (rc == 0)
			log_info("%s: %s by the operator", e->id, e->held ? "held" : "released");
	} else { /* requeue ID */
		if (act != NULL) {
			reply_error(peer, req, "message is being delivered; try again");
			return;
		}
		retry_now(e, true, false, (long long)time(NULL));
		rc = queue_store_put(q->store, e, &error);
		if (rc == 0)
			log_info("%s: requeued by the operator", e->id);
	}
	if (rc < 0) {
		log_warn("%s: %s: %s", e->id, cmd, error);
		free(error);
		reply_error(peer, req, "queue write failed");
		return;
	}
	q->rescan = true;
	qmgr_reply_after_commit(q, peer, req);
}

/* do_stats - counters since qmgr started: how many envelopes were
 * queued, and how many commits and log syncs that took (group commit
 * makes the syncs fewer than the envelopes). */
static void do_stats(struct qmgr *q, struct ipc_peer *peer, int64_t req)
{
	struct queue_store_stats st;
	char *error = NULL;
	struct buf out = BUF_INIT;

	if (queue_store_stats(q->store, &st, &error) < 0) {
		log_warn("queue stats: %s", error);
		free(error);
		reply_error(peer, req, "queue store unavailable");
		return;
	}
	ipc_reply_begin(&out, req);
	ipc_put_str(&out, "status", "ok");
	ipc_put_int(&out, "enqueued", (int64_t)q->enqueued);
	ipc_put_int(&out, "commits", (int64_t)st.commits);
	ipc_put_int(&out, "log_syncs", (int64_t)st.log_syncs);
	ipc_put_int(&out, "log_writes", (int64_t)st.log_writes);
	ipc_put_int(&out, "checkpoints", (int64_t)st.checkpoints);
	ipc_put_int(&out, "active", (int64_t)q->active_count);
	ipc_peer_send(peer, &out);
	buf_free(&out);
}

void qmgr_control_request(struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg, void *ctx)
{
	struct qmgr *q = ctx;
	const char *cmd = NULL, *id = NULL, *sender = NULL, *rcpt = NULL, *domain = NULL;
	int64_t min_age = -1;
	bool has_age = false;
	const char *error = NULL;
	uint32_t uid;
	const struct ipc_spec spec[] = {
		{ .name = "cmd", .type = IPC_STR, .required = true, .max_len = 16, .str_r = &cmd },
		{ .name = "id", .type = IPC_STR, .max_len = 64, .str_r = &id },
		{ .name = "sender", .type = IPC_STR, .max_len = QUEUE_ADDRESS_MAX, .str_r = &sender },
		{ .name = "rcpt", .type = IPC_STR, .max_len = QUEUE_ADDRESS_MAX, .str_r = &rcpt },
		{ .name = "domain", .type = IPC_STR, .max_len = 255, .str_r = &domain },
		{ .name = "min_age", .type = IPC_INT, .min = 0, .max = INT64_MAX / 2, .int_r = &min_age,
		  .present_r = &has_age },
	};
	struct queue_envelope env = { 0 };
	char *store_error = NULL;
	int rc;

	if (!ipc_peer_uid(peer, &uid) || (uid != 0 && uid != (uint32_t)getuid())) {
		reply_error(peer, req, "permission denied");
		return;
	}
	if (ipc_scan(msg, spec, sizeof spec / sizeof spec[0], IPC_STRICT, &error) < 0) {
		reply_error(peer, req, error);
		return;
	}
	if (strcmp(cmd, "stats") == 0) {
		do_stats(q, peer, req);
		return;
	}
	if (strcmp(cmd, "list") == 0) {
		struct list_filter f = { .sender = sender, .rcpt = rcpt, .domain = domain, .max_arrival = -1 };

		if (has_age)
			f.max_arrival = (long long)time(NULL) - min_age;
		do_list(q, peer, req, &f);
		return;
	}
	if (strcmp(cmd, "flush") == 0 || (strcmp(cmd, "requeue") == 0 && id != NULL && strcmp(id, "all") == 0)) {
		bool flush = strcmp(cmd, "flush") == 0;

		if (retry_all(q, !flush, flush, &store_error) < 0) {
			log_warn("queue %s: %s", cmd, store_error);
			free(store_error);
			reply_error(peer, req, "queue write failed");
			return;
		}
		log_info("queue %s by the operator", flush ? "flushed" : "requeued");
		q->rescan = true;
		qmgr_reply_after_commit(q, peer, req);
		return;
	}
	if (strcmp(cmd, "show") != 0 && strcmp(cmd, "delete") != 0 && strcmp(cmd, "hold") != 0 &&
	    strcmp(cmd, "release") != 0 && strcmp(cmd, "requeue") != 0) {
		reply_error(peer, req, "unknown command");
		return;
	}
	if (id == NULL) {
		reply_error(peer, req, "missing field");
		return;
	}
	if (!queue_id_valid(id)) {
		reply_error(peer, req, "bad queue id");
		return;
	}
	rc = queue_store_get(q->store, id, &env, &store_error);
	if (rc < 0) {
		log_warn("%s: %s: %s", id, cmd, store_error);
		free(store_error);
		reply_error(peer, req, "queue read failed");
		return;
	}
	if (rc == 0) {
		reply_error(peer, req, "no such message");
		return;
	}
	if (strcmp(cmd, "show") == 0)
		do_show(q, peer, req, &env);
	else
		do_change(q, peer, req, cmd, &env);
	queue_envelope_free(&env);
}
