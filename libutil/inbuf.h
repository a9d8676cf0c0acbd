/* inbuf.h - a protocol engine's unprocessed input: the bytes that have
 * arrived and a read offset into them, plus what arrives while the engine
 * is inside one of its own callbacks, kept apart until it is between
 * steps so that no pointer into the buffer moves under it. The SMTP and
 * POP3 server engines keep their client's input in one. */
#ifndef YB_INBUF_H
#define YB_INBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct inbuf {
	struct buf data;   /* unprocessed input from off on */
	size_t off;
	struct buf later;  /* input given from inside a callback */
};

/* The buffer is compacted once this much of it has been read. */
#define INBUF_COMPACT 4096

/* inbuf_data, inbuf_len - the unprocessed bytes (never a NULL pointer). */
const uint8_t *inbuf_data(const struct inbuf *in);
size_t inbuf_len(const struct inbuf *in);
/* inbuf_held - everything not processed yet, the later part included. */
size_t inbuf_held(const struct inbuf *in);
/* inbuf_skip - n bytes are processed. */
void inbuf_skip(struct inbuf *in, size_t n);
/* inbuf_add - new input: kept apart when later (a callback is on the
 * stack), else appended (after folding in what was kept apart, and
 * compacting when much has been read). */
void inbuf_add(struct inbuf *in, const void *data, size_t len, bool later);
/* inbuf_merge_later - fold in what was kept apart; only where no pointer
 * into the buffer is held. */
void inbuf_merge_later(struct inbuf *in);
/* inbuf_tidy - after processing: compact when much has been read, or
 * when what is left is smaller than what has been read. */
void inbuf_tidy(struct inbuf *in);
/* inbuf_discard - throw everything away; returns how many bytes. */
size_t inbuf_discard(struct inbuf *in);
void inbuf_free(struct inbuf *in);

#endif
