/* ipc_async.h - the event-driven client of an internal protocol: one
 * connection to a UNIX socket, opened on first use and again after a
 * failure, requests matched to replies by id, a deadline on each.
 *
 * When the connection fails, or a reply is late, every pending request
 * gets its callback with reply NULL and an error: callers answer their
 * own clients with a temporary error, they never exit. */
#ifndef YB_IPC_ASYNC_H
#define YB_IPC_ASYNC_H

#include "ipc.h"

struct event_base;
struct ipc_async;

/* reply is NULL on failure (then error says why); valid during the call. */
typedef void ipc_reply_fn(const struct ipc_msg *reply, const char *error, void *arg);

struct ipc_async *ipc_async_new(struct event_base *base, const char *path, const char *protocol,
				int timeout_s);
/* ipc_async_request - send a request: frame was begun with ipc_begin()
 * and filled, not ended (the client adds the id). pass_fd >= 0 goes with
 * it (SCM_RIGHTS; the caller keeps its own copy). The callback runs
 * exactly once, never from inside this call. */
void ipc_async_request(struct ipc_async *client, struct buf *frame, int pass_fd, ipc_reply_fn *fn, void *arg);
/* ipc_async_pending - requests waiting for a reply. */
int ipc_async_pending(const struct ipc_async *client);
/* ipc_async_free - fail what is pending, close. */
void ipc_async_free(struct ipc_async **client);

#endif
