/* sasl_relay.c - a network daemon's side of a login that auth runs
 * (sasl_relay.h). */
#include "config.h"
#include "sasl_relay.h"
#include "../libutil/buf.h"
#include "../libutil/ipc.h"
#include "../libutil/ipc_async.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"

#include <stdlib.h>

/* The caller's callback, for the reply to one request. */
struct pending {
	sasl_relay_fn *fn;
	void *arg;
};

int64_t sasl_relay_new_session(void)
{
	static int64_t last;

	return ++last;
}

static void on_reply(const struct ipc_msg *reply, const char *error, void *arg)
{
	struct pending *p = arg;
	struct auth_sasl_reply r;
	const char *parse_error = NULL;

	if (reply == NULL || auth_parse_sasl(reply, &r, &parse_error) < 0) {
		log_warn("SASL exchange with auth failed: %s", reply == NULL ? error : parse_error);
		p->fn(p->arg, AUTH_SASL_TEMP, NULL, 0, NULL);
	} else if (r.result == AUTH_SASL_OK && (r.user == NULL || r.user[0] == '\0')) {
		log_warn("SASL exchange with auth: success without a user name");
		p->fn(p->arg, AUTH_SASL_TEMP, NULL, 0, NULL);
	} else {
		p->fn(p->arg, r.result, r.challenge, r.challenge_len, r.result == AUTH_SASL_OK ? r.user : NULL);
	}
	free(p);
}

static void send_request(struct ipc_async *auth, struct buf *req, sasl_relay_fn *fn, void *arg)
{
	struct pending *p = xnew(struct pending);

	p->fn = fn;
	p->arg = arg;
	ipc_async_request(auth, req, -1, on_reply, p);
	buf_free(req);
}

void sasl_relay_start(struct ipc_async *auth, int64_t session, const char *service, const char *mech,
		      const void *resp, size_t len, bool has_resp, const char *client, bool secure,
		      sasl_relay_fn *fn, void *arg)
{
	struct buf req = BUF_INIT;

	ipc_begin(&req);
	auth_put_sasl_start(&req, session, service, mech, resp, len, has_resp, client, secure);
	send_request(auth, &req, fn, arg);
}

void sasl_relay_step(struct ipc_async *auth, int64_t session, const void *resp, size_t len, sasl_relay_fn *fn,
		     void *arg)
{
	struct buf req = BUF_INIT;

	ipc_begin(&req);
	auth_put_sasl_step(&req, session, resp, len);
	send_request(auth, &req, fn, arg);
}

static void on_cancelled(const struct ipc_msg *reply, const char *error, void *arg)
{
	(void)reply;
	(void)error;
	(void)arg;
}

void sasl_relay_cancel(struct ipc_async *auth, int64_t session)
{
	struct buf req = BUF_INIT;

	ipc_begin(&req);
	auth_put_sasl_cancel(&req, session);
	ipc_async_request(auth, &req, -1, on_cancelled, NULL);
	buf_free(&req);
}
