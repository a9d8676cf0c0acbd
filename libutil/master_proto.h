/* master_proto.h - the contract between master and the workers it spawns.
 *
 * Inherited descriptors (everything else is closed before exec):
 *   0        /dev/null
 *   1        /dev/null
 *   2        the log channel: a datagram socket; each datagram is one line
 *            "<level>text" that master writes to its own log sink
 *   3        the status channel: a stream socket to master. The worker
 *            writes struct master_status records; when master goes away
 *            the worker reads EOF here and exits.
 *   4 ...    the service's listening sockets, MASTER_LISTEN_FD_ENV of them
 *
 * Arguments: program -c CONFIG_DIR -n SERVICE -u UID -g GID [-r ROOT] [extra...]
 * Environment: only what master sets (PATH, TZ, MASTER_LISTEN_FD_ENV).
 */
#ifndef YB_MASTER_PROTO_H
#define YB_MASTER_PROTO_H

#include <stdint.h>

#define MASTER_LOG_FD 2
#define MASTER_STATUS_FD 3
#define MASTER_LISTEN_FD 4
#define MASTER_LISTEN_FD_ENV "YUBIN_LISTEN_FDS"
#define MASTER_LISTEN_MAX 16

enum master_worker_state {
	MASTER_WORKER_READY = 1, /* privileges dropped, serving */
	MASTER_WORKER_BUSY = 2,  /* holding at least one client */
	MASTER_WORKER_IDLE = 3,  /* holding no client */
};

struct master_status {
	uint32_t pid;
	uint32_t state; /* enum master_worker_state */
};

#endif
