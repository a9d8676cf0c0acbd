/* smtp_data.h - the message content scanner behind SMTP DATA and BDAT.
 *
 * Incremental: feed it the bytes as they arrive, in chunks of any size;
 * the output and every count are the same however the input is split.
 *
 * SMTP_DATA_DOT (DATA): the content ends at <CRLF>.<CRLF> and nowhere
 * else. The scanner starts "at line start", so a "." line right after
 * the DATA command ends an empty message. A line that starts with "."
 * loses that dot (RFC 5321 4.5.2). A bare LF (an LF without CR before
 * it) or a bare CR (a CR without LF after it) never ends a line for the
 * purpose of finding the end or of unstuffing; the scanner passes it on
 * and remembers it saw one. This is the SMTP smuggling defence: the
 * caller refuses such a message (smtp_server.c), it never normalises.
 *
 * SMTP_DATA_RAW (BDAT): every byte is content; the caller knows where a
 * chunk ends. Bare LF/CR are still noticed, but the caller ignores them.
 *
 * Both modes count the content size (after unstuffing) and the
 * "Received:" header lines of the header section (lines up to the first
 * empty one; the name is matched case-insensitively at line start,
 * optionally followed by blanks before the colon), and hand the content
 * to the output function in chunks of at most SMTP_DATA_CHUNK octets.
 * Lines are never split, joined or shortened, whatever their length.
 *
 * Errors: none; the scanner cannot fail. Memory: one allocation per
 * scanner, reusable for any number of messages via smtp_data_begin.
 */
#ifndef YB_SMTP_DATA_H
#define YB_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>

enum smtp_data_mode {
	SMTP_DATA_DOT, /* DATA: dot-stuffed, ends at <CRLF>.<CRLF> */
	SMTP_DATA_RAW  /* BDAT: counted octets, no stuffing */
};

/* The largest chunk given to the output function at once. */
#define SMTP_DATA_CHUNK 8192

typedef void smtp_data_output_fn(void *ctx, const void *data, size_t len);

struct smtp_data;

/* smtp_data_create - a scanner that gives its output to output(ctx, ...);
 * ready for a DATA message (as if smtp_data_begin(d, SMTP_DATA_DOT)). */
struct smtp_data *smtp_data_create(smtp_data_output_fn *output, void *ctx);

/* smtp_data_free - release *d and set it to NULL; accepts NULL. */
void smtp_data_free(struct smtp_data **d);

/* smtp_data_begin - forget everything and start a new message. */
void smtp_data_begin(struct smtp_data *d, enum smtp_data_mode mode);

/* smtp_data_feed - scan data[0..len). Returns how many octets belong to
 * the message: len, except in DOT mode when the end was found, where the
 * count stops right after the terminating <CRLF>.<CRLF> (the rest is the
 * next command). After the end, feeding consumes nothing. All output for
 * the consumed octets that is certain has been passed out on return; in
 * DOT mode a "." or "." CR at the end of the input waits for the next
 * octet to decide. */
size_t smtp_data_feed(struct smtp_data *d, const void *data, size_t len);

/* smtp_data_finish - RAW mode: the last chunk was fed; a CR at its very
 * end counts as bare. Harmless in DOT mode and when called twice. */
void smtp_data_finish(struct smtp_data *d);

/* smtp_data_ended - DOT mode: whether <CRLF>.<CRLF> was seen. */
bool smtp_data_ended(const struct smtp_data *d);

/* smtp_data_size - content octets passed out (after unstuffing). */
unsigned long long smtp_data_size(const struct smtp_data *d);

/* smtp_data_received - "Received:" lines in the header section. */
unsigned smtp_data_received(const struct smtp_data *d);

/* smtp_data_bare_lf / smtp_data_bare_cr - whether a bare LF / bare CR
 * was seen (for DATA including the terminator's neighbourhood, e.g.
 * "<CRLF>.<LF>"). */
bool smtp_data_bare_lf(const struct smtp_data *d);
bool smtp_data_bare_cr(const struct smtp_data *d);

#endif
