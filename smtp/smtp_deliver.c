/* smtp_deliver.c - one delivery request from qmgr: route the destination
 * (MX, or the relay host), try its addresses in order until one session
 * gives every recipient a verdict, log each recipient's outcome, and
 * answer qmgr (smtp/PROTOCOL.md). The connections themselves are
 * smtp_session.c's; an idle one to the same destination is used before
 * DNS is asked at all.
 *
 * An address is given up for the next one when connecting fails or the
 * session fails before the transaction (greeting, EHLO, TLS, timeouts,
 * a lost connection: the engine's next_host); recipients the server
 * answered keep that answer. When no address is left, the recipients
 * still open are deferred with the last reason. */
#include "config.h"
#include "smtp.h"
#include "../libmail/dns.h"
#include "../libmail/queue_id.h"
#include "../libutil/buf.h"
#include "../libutil/ipc.h"
#include "../libutil/ipc_server.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/pool.h"
#include "../libutil/sanitize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RCPTS_MAX 1000

static void try_next(struct delivery *dl);

/* ---- verdicts and the end --------------------------------------------- */

static const char *state_name(enum rcpt_state s)
{
	return s == R_SENT ? "sent" : s == R_BOUNCED ? "bounced" : "deferred";
}

static double delay_since(const struct delivery *dl)
{
	struct timespec now;
	double d;

	clock_gettime(CLOCK_REALTIME, &now);
	d = (double)(now.tv_sec - dl->arrival.tv_sec) + (double)(now.tv_nsec - dl->arrival.tv_nsec) / 1e9;
	return d < 0 ? 0 : d;
}

void delivery_settle(struct delivery *dl, struct rcpt *r, enum rcpt_state state, const char *dsn, const char *text,
		     const struct smtp_session *s)
{
	char s_to[SANITIZE_MAX], s_text[SANITIZE_MAX], s_relay[SANITIZE_MAX], conn_use[32] = "";
	const char *relay = s != NULL ? s->relay : dl->last_relay != NULL ? dl->last_relay : "none";

	r->state = state;
	snprintf(r->dsn, sizeof r->dsn, "%s", dsn);
	free(r->text);
	r->text = xstrdup(text);
	if (s != NULL && s->uses > 1)
		snprintf(conn_use, sizeof conn_use, ", conn_use=%u", s->uses);
	sanitize(s_to, sizeof s_to, r->addr, strlen(r->addr));
	sanitize(s_text, sizeof s_text, text, strlen(text));
	sanitize(s_relay, sizeof s_relay, relay, strlen(relay));
	log_info("%s: to=<%s>, relay=%s%s, delay=%.2f, dsn=%s, status=%s (%s)", dl->id, s_to, s_relay, conn_use,
		 delay_since(dl), r->dsn, state_name(state), s_text);
}

static void delivery_free(struct delivery *dl)
{
	struct smtp_daemon *d = dl->d;
	struct smtp_dest *dest = dl->dest;

	dns_cancel(dl->dnsq);
	for (size_t i = 0; i < dl->nrcpt; i++)
		free(dl->rcpts[i].text);
	free(dl->rcpts);
	for (size_t i = 0; i < dl->ntargets; i++)
		free(dl->targets[i].host);
	free(dl->targets);
	free(dl->last_dsn);
	free(dl->last_text);
	free(dl->last_relay);
	if (dl->fd >= 0)
		close(dl->fd);
	pool_destroy(&dl->pool);
	free(dl);
	d->active--;
	dest_done(d, dest); /* a delivery ends only after it started */
}

void delivery_finish(struct delivery *dl)
{
	struct buf out = BUF_INIT;

	ipc_reply_begin(&out, dl->req);
	ipc_put_str(&out, "status", "ok");
	for (size_t i = 0; i < dl->nrcpt; i++) {
		struct rcpt *r = &dl->rcpts[i];

		ipc_put_str(&out, "rcpt", r->addr);
		ipc_put_str(&out, "result", state_name(r->state));
		ipc_put_str(&out, "dsn", r->dsn);
		ipc_put_str(&out, "text", r->text != NULL ? r->text : "");
	}
	ipc_peer_send(dl->peer, &out);
	buf_free(&out);
	ipc_peer_unref(&dl->peer);
	delivery_free(dl);
}

/* settle_open - every recipient still open gets this verdict. */
static void settle_open(struct delivery *dl, enum rcpt_state state, const char *dsn, const char *text)
{
	for (size_t i = 0; i < dl->nrcpt; i++)
		if (dl->rcpts[i].state == R_OPEN)
			delivery_settle(dl, &dl->rcpts[i], state, dsn, text, NULL);
}

bool delivery_all_settled(const struct delivery *dl)
{
	for (size_t i = 0; i < dl->nrcpt; i++)
		if (dl->rcpts[i].state == R_OPEN)
			return false;
	return true;
}

void delivery_note_failure(struct delivery *dl, const char *dsn, const char *text)
{
	free(dl->last_dsn);
	free(dl->last_text);
	dl->last_dsn = xstrdup(dsn);
	dl->last_text = xstrdup(text);
}

/* ---- routing ------------------------------------------------------------ */

/* on_route - where to deliver: every address of every usable host. */
static void on_route(const struct dns_mx_result *res, void *arg)
{
	struct delivery *dl = arg;

	dl->dnsq = NULL;
	if (res->status != DNS_OK) {
		settle_open(dl, res->dsn[0] == '4' ? R_DEFERRED : R_BOUNCED, res->dsn, res->reason);
		delivery_finish(dl);
		return;
	}
	for (size_t h = 0; h < res->nhosts; h++)
		for (size_t a = 0; a < res->hosts[h].naddrs; a++) {
			dl->targets = xreallocarray(dl->targets, dl->ntargets + 1, sizeof *dl->targets);
			dl->targets[dl->ntargets].host = xstrdup(res->hosts[h].name);
			dl->targets[dl->ntargets].addr = res->hosts[h].addrs[a];
			dl->ntargets++;
		}
	delivery_note_failure(dl, "4.4.3", res->reason);
	try_next(dl);
}

/* route - ask DNS where the destination's mail goes. */
static void route(struct delivery *dl)
{
	struct smtp_daemon *d = dl->d;

	dl->routed = true;
	if (d->relay_host != NULL && !d->relay_mx)
		dl->dnsq = dns_route_host(d->dns, d->relay_host, on_route, dl);
	else
		dl->dnsq = dns_route_mx(d->dns, d->relay_host != NULL ? d->relay_host : dl->nexthop,
					d->params->myhostname, on_route, dl);
}

/* try_next - connect to the next address, or defer what is left. */
static void try_next(struct delivery *dl)
{
	/* the relay host's port, whether found by MX or not */
	int port = dl->d->relay_host != NULL ? dl->d->relay_port : (int)dl->d->params->smtp_tcp_port;

	if (!dl->routed) {
		route(dl);
		return;
	}
	if (dl->next >= dl->ntargets) {
		settle_open(dl, R_DEFERRED, dl->last_dsn != NULL ? dl->last_dsn : "4.4.1",
			    dl->last_text != NULL ? dl->last_text : "no host to deliver to");
		delivery_finish(dl);
		return;
	}
	session_connect(dl, &dl->targets[dl->next++], port);
}

void delivery_start(struct delivery *dl)
{
	struct smtp_session *s = dest_take_idle(dl->dest);

	if (s != NULL)
		session_give(s, dl);
	else
		route(dl);
}

void delivery_session_over(struct delivery *dl)
{
	if (delivery_all_settled(dl))
		delivery_finish(dl);
	else
		try_next(dl);
}

/* ---- the request -------------------------------------------------------- */

static void reply_error(struct ipc_peer *peer, int64_t req, const char *reason)
{
	struct buf out = BUF_INIT;
	char safe[SANITIZE_MAX];

	log_warn("bad request: %s", sanitize(safe, sizeof safe, reason, strlen(reason)));
	ipc_reply_begin(&out, req);
	ipc_put_str(&out, "status", "error");
	ipc_put_str(&out, "reason", reason);
	ipc_peer_send(peer, &out);
	buf_free(&out);
}

/* scan_8bit - whether the content holds octets over 127 (BODY=8BITMIME). */
static bool scan_8bit(int fd)
{
	unsigned char buf[65536];
	off_t off = 0;
	ssize_t n;

	while ((n = pread(fd, buf, sizeof buf, off)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] & 0x80)
				return true;
		off += n;
	}
	return false;
}

/* copy_request - the request's fields, checked; -1 with a reason. */
static int copy_request(struct delivery *dl, const struct ipc_msg *msg, const char **why)
{
	size_t nr = 0, no = 0, nn = 0;

	for (size_t i = 0; i < msg->count; i++) {
		const struct ipc_field *f = &msg->fields[i];
		const char *v = f->type == IPC_STR ? pool_strdup(dl->pool, (const char *)f->data) : "";

		if (strcmp(f->name, "cmd") == 0 || strcmp(f->name, "req") == 0)
			continue;
		if (f->type == IPC_STR && strcmp(f->name, "id") == 0)
			dl->id = v;
		else if (f->type == IPC_STR && strcmp(f->name, "sender") == 0)
			dl->sender = v;
		else if (f->type == IPC_STR && strcmp(f->name, "nexthop") == 0)
			dl->nexthop = v;
		else if (f->type == IPC_STR && strcmp(f->name, "envid") == 0)
			dl->envid = v[0] != '\0' ? v : NULL;
		else if (f->type == IPC_STR && strcmp(f->name, "ret") == 0)
			dl->ret = v[0] != '\0' ? v : NULL;
		else if (f->type == IPC_INT && strcmp(f->name, "size") == 0)
			dl->size = f->num;
		else if (f->type == IPC_STR && strcmp(f->name, "rcpt") == 0) {
			if (nr == RCPTS_MAX) {
				*why = "too many recipients";
				return -1;
			}
			dl->rcpts = xreallocarray(dl->rcpts, nr + 1, sizeof *dl->rcpts);
			memset(&dl->rcpts[nr], 0, sizeof dl->rcpts[nr]);
			dl->rcpts[nr].addr = v;
			dl->rcpts[nr].orcpt = "";
			nr++;
		} else if (f->type == IPC_STR && strcmp(f->name, "orcpt") == 0 && no < nr) {
			dl->rcpts[no++].orcpt = v;
		} else if (f->type == IPC_INT && strcmp(f->name, "notify") == 0 && nn < nr) {
			dl->rcpts[nn++].notify = (unsigned)f->num;
		} else {
			*why = "unexpected field";
			return -1;
		}
	}
	dl->nrcpt = nr;
	if (!queue_id_valid(dl->id) || dl->sender == NULL || dl->nexthop == NULL || nr == 0 || no != nr || nn != nr) {
		*why = "missing or misaligned fields";
		return -1;
	}
	return 0;
}

void smtp_deliver_request(struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg, void *ctx)
{
	struct smtp_daemon *d = ctx;
	const char *cmd = ipc_get_str(msg, "cmd");
	int fd = ipc_peer_take_fd(peer);
	struct delivery *dl;
	const char *why = NULL;
	struct stat st;

	if (cmd == NULL || strcmp(cmd, "deliver") != 0) {
		if (fd >= 0)
			close(fd);
		reply_error(peer, req, "unknown command");
		return;
	}
	if (fd < 0) {
		reply_error(peer, req, "no message descriptor passed");
		return;
	}
	dl = xnew(struct delivery);
	dl->d = d;
	dl->fd = fd;
	dl->req = req;
	dl->size = -1;
	dl->pool = pool_create();
	if (copy_request(dl, msg, &why) < 0) {
		reply_error(peer, req, why);
		close(fd);
		free(dl->rcpts);
		pool_destroy(&dl->pool);
		free(dl);
		return;
	}
	if (fstat(fd, &st) == 0)
		dl->arrival = st.st_mtim;
	dl->body_8bit = scan_8bit(fd);
	ipc_peer_ref(peer);
	dl->peer = peer;
	d->active++;
	dest_enter(d, dl);
}
