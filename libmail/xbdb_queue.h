/* xbdb_queue.h - test hooks of the Berkeley DB queue store backend.
 *
 * The backend itself is reached through queue_store.h
 * (queue_store_open_bdb); nothing here is for production code. */
#ifndef YB_XBDB_QUEUE_H
#define YB_XBDB_QUEUE_H

struct queue_store;

/* xbdb_queue_inject_panic - panic the environment (DB_PANIC_ENVIRONMENT)
 * as a failed write during a page eviction would, so that tests can see
 * the DB_RUNRECOVERY path. The store is failed afterwards; close it and
 * open again to recover. -1 if q is not a Berkeley DB store. */
int xbdb_queue_inject_panic(struct queue_store *q);

#endif
