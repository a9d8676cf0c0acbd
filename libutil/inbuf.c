/* inbuf.c - a protocol engine's unprocessed input (inbuf.h). */
#include "config.h"
#include "inbuf.h"

const uint8_t *inbuf_data(const struct inbuf *in)
{
	/* Nothing buffered yet: no pointer arithmetic on NULL. */
	return in->data.data != NULL ? in->data.data + in->off : (const uint8_t *)"";
}

size_t inbuf_len(const struct inbuf *in)
{
	return in->data.len - in->off;
}

size_t inbuf_held(const struct inbuf *in)
{
	return inbuf_len(in) + in->later.len;
}

void inbuf_skip(struct inbuf *in, size_t n)
{
	in->off += n;
	if (in->off == in->data.len) {
		buf_reset(&in->data);
		in->off = 0;
	}
}

static void compact(struct inbuf *in)
{
	if (in->off > 0) {
		buf_consume(&in->data, in->off);
		in->off = 0;
	}
}

void inbuf_merge_later(struct inbuf *in)
{
	if (in->later.len > 0) {
		if (in->off > INBUF_COMPACT)
			compact(in);
		buf_append(&in->data, in->later.data, in->later.len);
		buf_reset(&in->later);
	}
}

void inbuf_add(struct inbuf *in, const void *data, size_t len, bool later)
{
	if (later) {
		buf_append(&in->later, data, len);
		return;
	}
	inbuf_merge_later(in);
	if (in->off > INBUF_COMPACT)
		compact(in);
	buf_append(&in->data, data, len);
}

void inbuf_tidy(struct inbuf *in)
{
	if (in->off > INBUF_COMPACT || (in->off > 0 && inbuf_len(in) < in->off))
		compact(in);
}

size_t inbuf_discard(struct inbuf *in)
{
	size_t n = inbuf_held(in);

	inbuf_skip(in, inbuf_len(in));
	buf_reset(&in->later);
	return n;
}

void inbuf_free(struct inbuf *in)
{
	buf_free(&in->data);
	buf_free(&in->later);
	in->off = 0;
}
