/* qmgr_deliver.c - the scheduler: find due messages, resolve each due
 * recipient through auth, hand local mailboxes to the local agent, record
 * the outcome, retry with back-off, bounce what failed for good. */
#include "config.h"
#include "qmgr.h"
#include "../libmail/auth_proto.h"
#include "../libutil/ipc_async.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/sanitize.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define SCAN_INTERVAL_S 1

/* One recipient's attempt: one or more local deliveries (an alias can
 * reach several mailboxes) whose outcomes combine into one. */
struct attempt {
	struct qmgr_active *act;
	size_t index;
	int outstanding;        /* local deliveries not answered yet */
	enum queue_rcpt_state worst;
	char *status, *text;    /* of the worst outcome so far */
};

long long qmgr_backoff(const struct yb_params *p, int attempts)
{
	long long delay = p->minimal_backoff_time;

	for (int i = 1; i < attempts && delay < p->maximal_backoff_time; i++)
		delay *= 2;
	return delay < p->maximal_backoff_time ? delay : p->maximal_backoff_time;
}

void qmgr_scan_soon(struct qmgr *q)
{
	struct timeval now = { 0, 0 };

	evtimer_add(q->scan_ev, &now);
}

/* rank - how several outcomes combine: a failure outranks a deferral,
 * which outranks success. */
static int rank(enum queue_rcpt_state s)
{
	return s == QUEUE_RCPT_FAILED ? 2 : s == QUEUE_RCPT_DEFERRED ? 1 : 0;
}

static void record(struct attempt *a, enum queue_rcpt_state state, const char *status, const char *text)
{
	if (a->status == NULL || rank(state) > rank(a->worst)) {
		a->worst = state;
		free(a->status);
		free(a->text);
		a->status = xstrdup(status);
		a->text = xstrdup(text);
	}
}

static void active_remove(struct qmgr *q, struct qmgr_active *act);

static bool all_final(const struct queue_envelope *env)
{
	for (size_t i = 0; i < env->rcpt_count; i++)
		if (env->rcpts[i].state == QUEUE_RCPT_PENDING || env->rcpts[i].state == QUEUE_RCPT_DEFERRED)
			return false;
	return true;
}

/* warn_if_late - once a message has waited delay_warning_time, its
 * sender hears that it is still being retried (once per message). */
static void warn_if_late(struct qmgr_active *act)
{
	const struct yb_params *p = act->q->params;
	char *error = NULL;

	if (p->delay_warning_time == 0 || act->env.warned ||
	    (long long)time(NULL) - act->env.arrival < p->delay_warning_time)
		return;
	if (qmgr_delay_warning(act->q, &act->env, &error) < 0) {
		/* tried again at the next attempt */
		log_warn("%s: cannot create the delay warning: %s", act->env.id, error);
		free(error);
		return;
	}
	act->env.warned = true;
}

/* finish_message - every due recipient has an outcome: bounce and remove
 * the message when nothing is left to do, else store the new state (after
 * the delay warning, if it is time for one). */
static void finish_message(struct qmgr_active *act)
{
	struct qmgr *q = act->q;
	char *error = NULL;

	if (all_final(&act->env)) {
		if (qmgr_bounce(q, &act->env, &error) < 0) {
			/* Keep the message; the bounce is tried again later. */
			log_warn("%s: cannot create the bounce: %s", act->env.id, error);
			free(error);
			error = NULL;
			for (size_t i = 0; i < act->env.rcpt_count; i++)
				if (act->env.rcpts[i].state == QUEUE_RCPT_FAILED) {
					act->env.rcpts[i].state = QUEUE_RCPT_DEFERRED;
					act->env.rcpts[i].next_try = (long long)time(NULL) + q->params->minimal_backoff_time;
				}
		}
	}
	if (all_final(&act->env)) {
		struct qmgr_unlink *u = xnew(struct qmgr_unlink);

		if (queue_store_delete(q->store, act->env.id, &error) < 0) {
			log_warn("%s: cannot remove the envelope: %s", act->env.id, error);
			free(error);
			free(u);
		} else {
			snprintf(u->id, sizeof u->id, "%s", act->env.id);
			u->next = q->unlinks;
			q->unlinks = u;
			log_info("%s: removed", act->env.id);
		}
	} else {
		warn_if_late(act);
		if (queue_store_put(q->store, &act->env, &error) < 0) {
			log_warn("%s: cannot store the delivery state: %s", act->env.id, error);
			free(error);
		}
	}
	/* Losing this to a crash costs a repeat delivery, which local
	 * recognises; the content is recycled only after the flush. */
	qmgr_commit_later(q);
	active_remove(q, act);
	close(act->content_fd);
	queue_envelope_free(&act->env);
	free(act);
}

/* attempt_done - the recipient's outcome is known: store it. */
static void attempt_done(struct attempt *a)
{
	struct qmgr_active *act = a->act;
	struct queue_rcpt *r = &act->env.rcpts[a->index];
	const struct yb_params *p = act->q->params;
	long long now = (long long)time(NULL);
	char safe[SANITIZE_MAX];

	r->attempts++;
	r->state = a->worst;
	free(r->last_status);
	free(r->last_response);
	r->last_status = xstrdup(a->status);
	r->last_response = xstrdup(a->text);
	if (r->state == QUEUE_RCPT_DEFERRED) {
		if (now - act->env.arrival >= p->maximal_queue_lifetime) {
			r->state = QUEUE_RCPT_FAILED;
			free(r->last_status);
			free(r->last_response);
			r->last_status = xstrdup("4.4.7");
			r->last_response = xasprintf("delivery time expired: %s", a->text);
		} else {
			r->next_try = now + qmgr_backoff(p, r->attempts);
		}
	}
	if (r->state != QUEUE_RCPT_DELIVERED)
		log_info("%s: to=<%s>, status=%s (%s %s)", act->env.id,
			 sanitize(safe, sizeof safe, r->address, strlen(r->address)),
			 r->state == QUEUE_RCPT_FAILED ? "bounced" : "deferred", r->last_status, r->last_response);
	free(a->status);
	free(a->text);
	free(a);
	if (--act->outstanding == 0)
		finish_message(act);
}

static void on_local_reply(const struct ipc_msg *reply, const char *error, void *arg)
{
	struct attempt *a = arg;
	const char *status = reply != NULL ? ipc_get_str(reply, "status") : NULL;
	const char *dsn = reply != NULL ? ipc_get_str(reply, "dsn") : NULL;
	const char *text = reply != NULL ? ipc_get_str(reply, "text") : NULL;

	if (status == NULL || dsn == NULL) {
		char *why = xasprintf("local delivery agent unavailable: %s", error != NULL ? error : "bad reply");

		record(a, QUEUE_RCPT_DEFERRED, "4.3.0", why);
		free(why);
	} else if (strcmp(status, "ok") == 0) {
		record(a, QUEUE_RCPT_DELIVERED, dsn, text != NULL ? text : "delivered");
	} else if (strcmp(status, "fail") == 0) {
		record(a, QUEUE_RCPT_FAILED, dsn, text != NULL ? text : "delivery failed");
	} else {
		record(a, QUEUE_RCPT_DEFERRED, dsn, text != NULL ? text : "delivery deferred");
	}
	if (--a->outstanding == 0)
		attempt_done(a);
}

/* deliver_local - one mailbox: the agent gets the message's read-only
 * descriptor (it reads with pread from offset 0, so deliveries of one
 * message can share it). */
static void deliver_local(struct attempt *a, const char *mailbox, long long quota)
{
	struct qmgr *q = a->act->q;
	const struct queue_envelope *env = &a->act->env;
	const struct queue_rcpt *r = &env->rcpts[a->index];
	struct buf req = BUF_INIT;

	a->outstanding++;
	ipc_begin(&req);
	ipc_put_str(&req, "cmd", "deliver");
	ipc_put_str(&req, "id", env->id);
	ipc_put_str(&req, "sender", env->sender);
	/* X-Original-To: the RCPT TO address as the client gave it. */
	ipc_put_str(&req, "recipient", r->rcpt_to != NULL && r->rcpt_to[0] != '\0' ? r->rcpt_to : r->address);
	ipc_put_str(&req, "mailbox", mailbox);
	ipc_put_int(&req, "quota", quota);
	ipc_put_int(&req, "recheck", !a->act->first_hand_over);
	ipc_async_request(q->local[q->local_next++ % QMGR_LOCAL_CONNECTIONS], &req, a->act->content_fd,
			  on_local_reply, a);
	buf_free(&req);
}

/* ---- remote recipients: to smtp, one request per destination ---------- */

static void keep_remote(struct attempt *a, const char *address)
{
	struct qmgr_active *act = a->act;
	const struct queue_rcpt *r = &act->env.rcpts[a->index];

	act->remotes = xreallocarray(act->remotes, act->nremotes + 1, sizeof *act->remotes);
	act->remotes[act->nremotes++] = (struct qmgr_remote){
		.attempt = a,
		.address = xstrdup(address),
		.orcpt = r->orcpt != NULL ? r->orcpt : "",
		.notify = r->notify,
	};
	a->outstanding++;
}

/* One request to smtp: the targets it carries, in order. */
struct remote_batch {
	struct qmgr_remote *targets;
	size_t count;
};

static void on_smtp_reply(const struct ipc_msg *reply, const char *error, void *arg)
{
	struct remote_batch *b = arg;
	const char *status = reply != NULL ? ipc_get_str(reply, "status") : NULL;
	size_t i = 0;

	if (status != NULL && strcmp(status, "ok") == 0) {
		/* result, dsn and text follow each rcpt, in the request's order */
		const char *result = NULL, *dsn = NULL;

		for (size_t f = 0; f < reply->count && i < b->count; f++) {
			const struct ipc_field *fl = &reply->fields[f];
			const char *v = (const char *)fl->data;

			if (fl->type != IPC_STR)
				continue;
			if (strcmp(fl->name, "result") == 0) {
				result = v;
			} else if (strcmp(fl->name, "dsn") == 0) {
				dsn = v;
			} else if (strcmp(fl->name, "text") == 0 && result != NULL && dsn != NULL) {
				enum queue_rcpt_state st = strcmp(result, "sent") == 0 ? QUEUE_RCPT_DELIVERED :
							   strcmp(result, "bounced") == 0 ? QUEUE_RCPT_FAILED :
											    QUEUE_RCPT_DEFERRED;

				record(b->targets[i].attempt, st, dsn, v);
				i++;
				result = dsn = NULL;
			}
		}
	}
	for (size_t k = i; k < b->count; k++) {
		char *why = xasprintf("smtp delivery agent unavailable: %s",
				      status == NULL ? (error != NULL ? error : "no reply") : "a reply without results");

		record(b->targets[k].attempt, QUEUE_RCPT_DEFERRED, "4.3.0", why);
		free(why);
	}
	for (size_t k = 0; k < b->count; k++) {
		struct attempt *a = b->targets[k].attempt;

		free(b->targets[k].address);
		if (--a->outstanding == 0)
			attempt_done(a);
	}
	free(b->targets);
	free(b);
}

static int domain_cmp(const void *x, const void *y)
{
	const struct qmgr_remote *a = x, *b = y;
	const char *da = strrchr(a->address, '@'), *db = strrchr(b->address, '@');

	return strcasecmp(da != NULL ? da + 1 : "", db != NULL ? db + 1 : "");
}

/* dispatch_remote - every expansion is in: the remote targets go to smtp,
 * one request per destination domain (at most
 * smtp_destination_recipient_limit recipients each). */
static void dispatch_remote(struct qmgr_active *act)
{
	struct qmgr *q = act->q;
	size_t limit = (size_t)q->params->smtp_destination_recipient_limit;
	size_t i = 0;

	qsort(act->remotes, act->nremotes, sizeof *act->remotes, domain_cmp);
	while (i < act->nremotes) {
		struct remote_batch *b = xnew(struct remote_batch);
		const char *at = strrchr(act->remotes[i].address, '@');
		const char *domain = at != NULL ? at + 1 : "";
		size_t n = 1;
		struct buf req = BUF_INIT;

		while (i + n < act->nremotes && n < limit && domain_cmp(&act->remotes[i], &act->remotes[i + n]) == 0)
			n++;
		b->targets = xcalloc(n, sizeof *b->targets);
		memcpy(b->targets, &act->remotes[i], n * sizeof *b->targets);
		b->count = n;
		ipc_begin(&req);
		ipc_put_str(&req, "cmd", "deliver");
		ipc_put_str(&req, "id", act->env.id);
		ipc_put_str(&req, "sender", act->env.sender);
		ipc_put_int(&req, "size", act->env.size);
		if (act->env.envid != NULL && act->env.envid[0] != '\0')
			ipc_put_str(&req, "envid", act->env.envid);
		if (act->env.ret != NULL && act->env.ret[0] != '\0')
			ipc_put_str(&req, "ret", act->env.ret);
		ipc_put_str(&req, "nexthop", domain);
		for (size_t k = 0; k < n; k++)
			ipc_put_str(&req, "rcpt", b->targets[k].address);
		for (size_t k = 0; k < n; k++)
			ipc_put_str(&req, "orcpt", b->targets[k].orcpt);
		for (size_t k = 0; k < n; k++)
			ipc_put_int(&req, "notify", b->targets[k].notify);
		ipc_async_request(q->smtp, &req, act->content_fd, on_smtp_reply, b);
		buf_free(&req);
		i += n;
	}
	free(act->remotes);
	act->remotes = NULL;
	act->nremotes = 0;
}

/* expanded - one recipient's targets are known: local mailboxes go to
 * local now, remote ones wait for the message's batch. */
static void expanded(struct attempt *a, const struct ipc_msg *reply, const char *error)
{
	struct auth_expand_reply res;
	const char *parse_error = NULL;
	char *why;

	if (reply == NULL || auth_parse_expand(reply, &res, &parse_error) < 0) {
		why = xasprintf("address lookup failed: %s", reply == NULL ? error : parse_error);
		record(a, QUEUE_RCPT_DEFERRED, "4.3.0", why);
		free(why);
		attempt_done(a);
		return;
	}
	switch (res.result) {
	case AUTH_R_OK:
		/* Hold the attempt open while the deliveries are launched. */
		a->outstanding++;
		for (size_t i = 0; i < res.local_count; i++)
			deliver_local(a, res.local[i].mailbox, res.local[i].quota);
		for (size_t i = 0; i < res.remote_count; i++)
			keep_remote(a, res.remote[i]);
		if (res.unknown_count > 0)
			record(a, QUEUE_RCPT_FAILED, "5.1.1", "alias target: user unknown");
		if (res.local_count == 0 && res.remote_count == 0 && res.unknown_count == 0)
			record(a, QUEUE_RCPT_FAILED, "5.1.1", "alias has no targets");
		if (--a->outstanding == 0)
			attempt_done(a);
		break;
	case AUTH_R_UNKNOWN:
		record(a, QUEUE_RCPT_FAILED, "5.1.1", "user unknown");
		attempt_done(a);
		break;
	case AUTH_R_NOT_HOSTED:
		/* the attempt stays open until smtp answers */
		keep_remote(a, a->act->env.rcpts[a->index].address);
		break;
	case AUTH_R_LOOP:
		record(a, QUEUE_RCPT_FAILED, "5.4.6", "alias loop");
		attempt_done(a);
		break;
	default:
		why = xasprintf("address lookup failed: %s", res.reason != NULL && res.reason[0] ? res.reason : "error");
		record(a, QUEUE_RCPT_DEFERRED, "4.3.0", why);
		free(why);
		attempt_done(a);
		break;
	}
	auth_expand_reply_free(&res);
}

static void on_expand(const struct ipc_msg *reply, const char *error, void *arg)
{
	struct attempt *a = arg;
	struct qmgr_active *act = a->act;

	/* The message is held open (start_message) until the last expansion:
	 * then its remote targets go out, and the hold is released. */
	expanded(a, reply, error);
	if (--act->expanding == 0) {
		if (act->nremotes > 0)
			dispatch_remote(act);
		if (--act->outstanding == 0)
			finish_message(act);
	}
}

/* The in-flight messages are also hashed by ID: every scan asks about
 * each due message, and a list walk made that quadratic under load. */
static size_t id_bucket(const char *id)
{
	size_t h = 5381;

	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = h * 33 + *p;
	return h % QMGR_ACTIVE_BUCKETS;
}

static bool is_active(const struct qmgr *q, const char *id)
{
	for (const struct qmgr_active *a = q->active_hash[id_bucket(id)]; a != NULL; a = a->hnext)
		if (strcmp(a->env.id, id) == 0)
			return true;
	return false;
}

static void active_add(struct qmgr *q, struct qmgr_active *act)
{
	size_t b = id_bucket(act->env.id);

	act->next = q->active;
	if (q->active != NULL)
		q->active->pprev = &act->next;
	act->pprev = &q->active;
	q->active = act;
	act->hnext = q->active_hash[b];
	q->active_hash[b] = act;
	q->active_count++;
}

static void active_remove(struct qmgr *q, struct qmgr_active *act)
{
	*act->pprev = act->next;
	if (act->next != NULL)
		act->next->pprev = act->pprev;
	for (struct qmgr_active **pp = &q->active_hash[id_bucket(act->env.id)]; *pp != NULL; pp = &(*pp)->hnext) {
		if (*pp == act) {
			*pp = act->hnext;
			break;
		}
	}
	q->active_count--;
	/* Mail waits behind a full active set: refill it once a scan's worth
	 * of room is free, not only at the next periodic scan. */
	if (q->backlog && q->active_count + QMGR_SCAN_BATCH == QMGR_ACTIVE_MAX)
		qmgr_scan_soon(q);
}

/* start_message - launch every due recipient of env (ownership moves);
 * first_hand_over: see struct qmgr_active. */
static void start_message(struct qmgr *q, struct queue_envelope *env, long long now, bool first_hand_over)
{
	struct qmgr_active *act = xnew(struct qmgr_active);
	char path[64];

	act->q = q;
	act->first_hand_over = first_hand_over;
	act->env = *env;
	memset(env, 0, sizeof *env);
	snprintf(path, sizeof path, "%s/%s", QUEUE_CONTENT_DIR, act->env.id);
	act->content_fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (act->content_fd < 0 && errno != ENOENT) {
		/* Out of descriptors, or the like: try again at a later scan. */
		log_warn("%s: cannot open the content file: %s; delivery postponed", act->env.id, strerror(errno));
		queue_envelope_free(&act->env);
		free(act);
		return;
	}
	if (act->content_fd < 0) {
		/* The envelope outlived its content: that is our bug or an
		 * operator's rm. Nothing can be delivered; say so loudly. */
		log_warn("%s: content file missing (%s); message removed", act->env.id, strerror(errno));
		for (size_t i = 0; i < act->env.rcpt_count; i++)
			act->env.rcpts[i].state = QUEUE_RCPT_DELIVERED;
		act->content_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		active_add(q, act);
		act->outstanding = 1;
		finish_message(act);
		return;
	}
	active_add(q, act);
	act->outstanding = 1; /* held until every attempt is launched */
	for (size_t i = 0; i < act->env.rcpt_count; i++) {
		struct queue_rcpt *r = &act->env.rcpts[i];
		struct buf req = BUF_INIT;
		struct attempt *a;

		if ((r->state != QUEUE_RCPT_PENDING && r->state != QUEUE_RCPT_DEFERRED) || r->next_try > now)
			continue;
		a = xnew(struct attempt);
		a->act = act;
		a->index = i;
		act->outstanding++;
		if (act->expanding++ == 0)
			act->outstanding++; /* the expansion hold, released by the last on_expand */
		ipc_begin(&req);
		auth_put_expand(&req, r->address);
		ipc_async_request(q->auth, &req, -1, on_expand, a);
		buf_free(&req);
	}
	if (--act->outstanding == 0)
		finish_message(act);
}

/* Due messages picked in one scan: copies, started after the scan (the
 * store takes no calls from inside its own callback). */
struct scan_pick {
	struct qmgr *q;
	struct queue_envelope *list;
	size_t count;
};

static int pick_due(const struct queue_envelope *e, void *arg)
{
	struct scan_pick *pick = arg;

	/* Messages already in flight were passed over by skip_active. */
	if (e->held)
		return 0;
	pick->list = xreallocarray(pick->list, pick->count + 1, sizeof *pick->list);
	queue_envelope_copy(&pick->list[pick->count++], e);
	return pick->count >= QMGR_SCAN_BATCH || pick->q->active_count + pick->count >= QMGR_ACTIVE_MAX;
}

/* skip_active - messages already in flight are passed over before they
 * are even decoded, and not counted: a full batch of them must never
 * starve the messages behind. */
static bool skip_active(const char *id, void *arg)
{
	return is_active(arg, id);
}

void qmgr_start_fresh(struct qmgr *q, struct queue_envelope *env)
{
	if (q->active_count >= QMGR_ACTIVE_MAX || is_active(q, env->id)) {
		q->backlog |= q->active_count >= QMGR_ACTIVE_MAX;
		queue_envelope_free(env);
		return;
	}
	start_message(q, env, (long long)time(NULL), true);
}

void qmgr_on_scan(int fd, short what, void *arg)
{
	struct qmgr *q = arg;
	long long now = (long long)time(NULL);
	struct scan_pick pick = { .q = q };
	char *error = NULL;
	struct timeval next = { .tv_sec = SCAN_INTERVAL_S };

	(void)fd;
	(void)what;
	/* Enough in flight: the rest waits until deliveries make room. */
	if (q->active_count >= QMGR_ACTIVE_MAX) {
		q->backlog = true;
		evtimer_add(q->scan_ev, &next);
		return;
	}
	if (queue_store_foreach_due(q->store, now, skip_active, q, pick_due, &pick, &error) < 0) {
		log_warn("queue scan failed: %s", error);
		free(error);
	}
	for (size_t i = 0; i < pick.count; i++)
		start_message(q, &pick.list[i], now, false);
	free(pick.list);
	/* Stopped by the batch size or the cap: more is due. With room left,
	 * scan again at once; else when deliveries make room (active_remove). */
	q->backlog = pick.count >= QMGR_SCAN_BATCH || q->active_count >= QMGR_ACTIVE_MAX;
	if (q->backlog && q->active_count + QMGR_SCAN_BATCH <= QMGR_ACTIVE_MAX)
		next.tv_sec = 0;
	evtimer_add(q->scan_ev, &next);
}
