/* ipc_server.h - serve one internal protocol (ipc.h encoding) inside a
 * daemon's event loop: the handshake, frame reassembly with a size cap,
 * request ids, descriptors passed with SCM_RIGHTS, and replies.
 *
 * Every request carries an integer field "req" put there by the client
 * (ipc_async.h); the server takes it out before the handler sees the
 * message, and the reply must carry it back: build replies with
 * ipc_reply_begin(). A handler may answer at once or later; to answer
 * later it keeps a reference (ipc_peer_ref) so the peer outlives a
 * disconnect, and sending to a closed peer is a no-op. */
#ifndef YB_IPC_SERVER_H
#define YB_IPC_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "ipc.h"

struct event_base;
struct ipc_server;
struct ipc_peer;

/* A request arrived. msg is valid during the call only. */
typedef void ipc_handler_fn(struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg, void *ctx);

/* ipc_server_new - serve protocol (checked in the handshake) with frames
 * of at most max_frame bytes; a peer silent for idle_timeout_s seconds
 * while it has nothing pending is dropped (0: never). */
struct ipc_server *ipc_server_new(struct event_base *base, const char *protocol, size_t max_frame,
				  int idle_timeout_s, ipc_handler_fn *handler, void *ctx);
/* A connection closed (the peer hung up, a protocol error, or
 * ipc_server_free); the peer is still valid during the call. */
typedef void ipc_close_fn(struct ipc_peer *peer, void *ctx);

/* ipc_server_set_close - call fn (with the handler's ctx) whenever a
 * connection closes: where per-connection state (ipc_peer_data) goes. */
void ipc_server_set_close(struct ipc_server *server, ipc_close_fn *fn);
/* ipc_server_accept - take over a connected socket (from service on_accept). */
void ipc_server_accept(struct ipc_server *server, int fd);
/* ipc_server_peers - connections open now. */
int ipc_server_peers(const struct ipc_server *server);
void ipc_server_free(struct ipc_server **server);

/* ipc_reply_begin - start a reply frame to request req. */
void ipc_reply_begin(struct buf *out, int64_t req);
/* ipc_peer_send - end the frame and queue it; false if the peer is gone. */
bool ipc_peer_send(struct ipc_peer *peer, struct buf *frame);
/* ipc_peer_take_fd - during the handler: the descriptor this request
 * carries, or -1. A request that carries one declares it with the field
 * "fd" (ipc_async adds it; the server removes it before the handler), and
 * declared requests take the passed descriptors in order, so a request
 * that declares none can never take another's. The caller owns it; one
 * the handler does not take is closed. */
int ipc_peer_take_fd(struct ipc_peer *peer);
/* ipc_peer_uid - the peer's uid from its socket credentials. */
bool ipc_peer_uid(const struct ipc_peer *peer, uint32_t *uid_r);
void ipc_peer_ref(struct ipc_peer *peer);
void ipc_peer_unref(struct ipc_peer **peer);
bool ipc_peer_closed(const struct ipc_peer *peer);
/* ipc_peer_set_data / ipc_peer_data - one pointer of the server's own
 * per connection (NULL until set); free it in the close callback. */
void ipc_peer_set_data(struct ipc_peer *peer, void *data);
void *ipc_peer_data(const struct ipc_peer *peer);
/* ipc_peer_close - drop the connection (protocol error). */
void ipc_peer_close(struct ipc_peer *peer);

#endif
