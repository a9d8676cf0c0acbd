/* ipc.h - the one request/response encoding for every UNIX-socket protocol.
 *
 * A message is a frame: a 4-byte big-endian payload length, then fields.
 * Each field is named and typed:
 *
 *   type (1 byte: 's' text, 'b' bytes, 'i' signed 64-bit integer)
 *   name length (1 byte, 1..IPC_NAME_MAX), name ([a-z0-9_])
 *   's'/'b': value length (4 bytes BE) and the value; 'i': 8 bytes BE
 *
 * Text values hold no NUL; byte values may. Decoding never trusts the peer:
 * every length is checked against what is left, the frame size and the
 * caller's per-field caps. ipc_scan() in strict mode rejects missing,
 * unknown, duplicated and mistyped fields.
 *
 * Every connection starts with a version handshake: the client sends
 * { hello = "yubin", protocol = NAME, version = N }, the server answers
 * { status = "ok", version = N } or { status = "error", reason = ... }.
 */
#ifndef YB_IPC_H
#define YB_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define IPC_VERSION 1
#define IPC_NAME_MAX 32
#define IPC_FIELDS_MAX 256
#define IPC_FRAME_MAX_DEFAULT (1024 * 1024)

enum ipc_type { IPC_STR = 's', IPC_BYTES = 'b', IPC_INT = 'i' };

/* Building a frame. */
void ipc_begin(struct buf *out);
void ipc_put_str(struct buf *out, const char *name, const char *value);
void ipc_put_bytes(struct buf *out, const char *name, const void *data, size_t len);
void ipc_put_int(struct buf *out, const char *name, int64_t value);
/* ipc_end - fill in the frame length. */
void ipc_end(struct buf *out);

/* A decoded message: fields point into the message's own copy. */
struct ipc_field {
	char name[IPC_NAME_MAX + 1];
	enum ipc_type type;
	const uint8_t *data; /* 's': NUL-terminated text; 'b': bytes */
	size_t len;
	int64_t num;
};

struct ipc_msg {
	struct ipc_field *fields;
	size_t count;
	uint8_t *storage;
};

/* ipc_frame_length - with len bytes of input at data: 1 and the total
 * frame length (header included) if a whole frame is there, 0 if more is
 * needed, -1 if the announced length exceeds max. */
int ipc_frame_length(const uint8_t *data, size_t len, size_t max, size_t *frame_len_r);

/* ipc_header_length - the payload length a 4-byte frame header announces. */
size_t ipc_header_length(const uint8_t header[4]);

/* ipc_decode - parse the payload of one frame (without its 4-byte header). */
int ipc_decode(const uint8_t *payload, size_t len, struct ipc_msg *msg, const char **error_r);
void ipc_msg_free(struct ipc_msg *msg);

/* Pull typed values out of a message. */
struct ipc_spec {
	const char *name;
	enum ipc_type type;
	bool required;
	size_t max_len;       /* 's' and 'b': longest value accepted */
	int64_t min, max;     /* 'i': accepted range (both 0: any value) */
	const char **str_r;   /* 's' */
	const uint8_t **bytes_r; size_t *len_r; /* 'b' */
	int64_t *int_r;       /* 'i' */
	bool *present_r;      /* optional: set if the field was there */
};

#define IPC_STRICT 1 /* unknown fields are errors */

int ipc_scan(const struct ipc_msg *msg, const struct ipc_spec *spec, size_t count, int flags,
	     const char **error_r);

/* ipc_get_str / ipc_get_int - loose lookups (first field of that name). */
const char *ipc_get_str(const struct ipc_msg *msg, const char *name);
bool ipc_get_int(const struct ipc_msg *msg, const char *name, int64_t *value_r);

/* The handshake. ipc_hello_check returns 0 if msg is a hello for protocol
 * at IPC_VERSION; else -1 with a reason to send back. */
void ipc_put_hello(struct buf *out, const char *protocol);
int ipc_hello_check(const struct ipc_msg *msg, const char *protocol, const char **error_r);

#endif
