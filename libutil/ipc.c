/* ipc.c - encode and decode the typed-field frames of ipc.h. */
#include "config.h"
#include "ipc.h"
#include "log.h"
#include "mem.h"

#include <stdlib.h>
#include <string.h>

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool valid_field_name(const char *name, size_t len)
{
	if (len == 0 || len > IPC_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return true;
}

void ipc_begin(struct buf *out)
{
	buf_reset(out);
	buf_append(out, "\0\0\0\0", 4);
}

static void put_header(struct buf *out, enum ipc_type type, const char *name)
{
	size_t len = strlen(name);

	if (!valid_field_name(name, len))
		log_panic("ipc: bad field name \"%s\"", name);
	buf_append_byte(out, (uint8_t)type);
	buf_append_byte(out, (uint8_t)len);
	buf_append(out, name, len);
}

void ipc_put_bytes(struct buf *out, const char *name, const void *data, size_t len)
{
	uint8_t n[4];

	if (len > UINT32_MAX)
		log_panic("ipc: field %s too long", name);
	put_header(out, IPC_BYTES, name);
	put_u32(n, (uint32_t)len);
	buf_append(out, n, 4);
	buf_append(out, data, len);
}

void ipc_put_str(struct buf *out, const char *name, const char *value)
{
	size_t len = strlen(value);
	uint8_t n[4];

	if (len > UINT32_MAX)
		log_panic("ipc: field %s too long", name);
	put_header(out, IPC_STR, name);
	put_u32(n, (uint32_t)len);
	buf_append(out, n, 4);
	buf_append(out, value, len);
}

void ipc_put_int(struct buf *out, const char *name, int64_t value)
{
	uint8_t n[8];
	uint64_t u = (uint64_t)value;

	put_header(out, IPC_INT, name);
	for (int i = 0; i < 8; i++)
		n[i] = (uint8_t)(u >> (56 - 8 * i));
	buf_append(out, n, 8);
}

void ipc_end(struct buf *out)
{
	if (out->len < 4 || out->len - 4 > UINT32_MAX)
		log_panic("ipc_end: no frame begun");
	put_u32(out->data, (uint32_t)(out->len - 4));
}

size_t ipc_header_length(const uint8_t header[4])
{
	return get_u32(header);
}

int ipc_frame_length(const uint8_t *data, size_t len, size_t max, size_t *frame_len_r)
{
	uint32_t n;

	if (len < 4)
		return 0;
	n = get_u32(data);
	if (n > max)
		return -1;
	if (len - 4 < n)
		return 0;
	*frame_len_r = (size_t)n + 4;
	return 1;
}

void ipc_msg_free(struct ipc_msg *msg)
{
	free(msg->fields);
	free(msg->storage);
	msg->fields = NULL;
	msg->storage = NULL;
	msg->count = 0;
}

int ipc_decode(const uint8_t *payload, size_t len, struct ipc_msg *msg, const char **error_r)
{
	size_t pos = 0;
	size_t cap = 0;
	uint8_t *copy;

	msg->fields = NULL;
	msg->count = 0;
	/* One spare byte per field for text terminators: copy into a layout
	 * where each value is followed by a NUL. At most len/6 fields fit. */
	copy = xmalloc(size_add(len, len / 6 + 1));
	msg->storage = copy;
	size_t cpos = 0;

	while (pos < len) {
		struct ipc_field *f;
		uint8_t type, nlen;

		if (len - pos < 2) {
			*error_r = "truncated field header";
			goto fail;
		}
		type = payload[pos];
		nlen = payload[pos + 1];
		pos += 2;
		if (type != IPC_STR && type != IPC_BYTES && type != IPC_INT) {
			*error_r = "unknown field type";
			goto fail;
		}
		if (len - pos < nlen || !valid_field_name((const char *)payload + pos, nlen)) {
			*error_r = "bad field name";
			goto fail;
		}
		if (msg->count == IPC_FIELDS_MAX) {
			*error_r = "too many fields";
			goto fail;
		}
		if (msg->count == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			msg->fields = xreallocarray(msg->fields, cap, sizeof *msg->fields);
		}
		f = &msg->fields[msg->count];
		memset(f, 0, sizeof *f);
		memcpy(f->name, payload + pos, nlen);
		f->name[nlen] = '\0';
		f->type = (enum ipc_type)type;
		pos += nlen;
		if (type == IPC_INT) {
			uint64_t u = 0;

			if (len - pos < 8) {
				*error_r = "truncated integer";
				goto fail;
			}
			for (int i = 0; i < 8; i++)
				u = u << 8 | payload[pos + (size_t)i];
			f->num = (int64_t)u;
			pos += 8;
		} else {
			uint32_t vlen;

			if (len - pos < 4) {
				*error_r = "truncated length";
				goto fail;
			}
			vlen = get_u32(payload + pos);
			pos += 4;
			if (len - pos < vlen) {
				*error_r = "truncated value";
				goto fail;
			}
			if (type == IPC_STR && memchr(payload + pos, '\0', vlen) != NULL) {
				*error_r = "NUL in text field";
				goto fail;
			}
			memcpy(copy + cpos, payload + pos, vlen);
			copy[cpos + vlen] = '\0';
			f->data = copy + cpos;
			f->len = vlen;
			cpos += (size_t)vlen + 1;
			pos += vlen;
		}
		msg->count++;
	}
	return 0;
fail:
	ipc_msg_free(msg);
	return -1;
}

static const struct ipc_field *find_field(const struct ipc_msg *msg, const char *name)
{
	for (size_t i = 0; i < msg->count; i++)
		if (strcmp(msg->fields[i].name, name) == 0)
			return &msg->fields[i];
	return NULL;
}

const char *ipc_get_str(const struct ipc_msg *msg, const char *name)
{
	const struct ipc_field *f = find_field(msg, name);

	return f != NULL && f->type == IPC_STR ? (const char *)f->data : NULL;
}

bool ipc_get_int(const struct ipc_msg *msg, const char *name, int64_t *value_r)
{
	const struct ipc_field *f = find_field(msg, name);

	if (f == NULL || f->type != IPC_INT)
		return false;
	*value_r = f->num;
	return true;
}

int ipc_scan(const struct ipc_msg *msg, const struct ipc_spec *spec, size_t count, int flags,
	     const char **error_r)
{
	for (size_t i = 0; i < msg->count; i++) {
		const struct ipc_field *f = &msg->fields[i];
		const struct ipc_spec *s = NULL;

		for (size_t j = 0; j < count; j++)
			if (strcmp(spec[j].name, f->name) == 0)
				s = &spec[j];
		for (size_t j = 0; j < i; j++) {
			if (strcmp(msg->fields[j].name, f->name) == 0) {
				*error_r = "duplicate field";
				return -1;
			}
		}
		if (s == NULL) {
			if (flags & IPC_STRICT) {
				*error_r = "unexpected field";
				return -1;
			}
			continue;
		}
		if (s->type != f->type) {
			*error_r = "field has the wrong type";
			return -1;
		}
		if (f->type != IPC_INT && s->max_len != 0 && f->len > s->max_len) {
			*error_r = "field too long";
			return -1;
		}
		if (f->type == IPC_INT && (s->min != 0 || s->max != 0) && (f->num < s->min || f->num > s->max)) {
			*error_r = "field out of range";
			return -1;
		}
	}
	for (size_t j = 0; j < count; j++) {
		const struct ipc_spec *s = &spec[j];
		const struct ipc_field *f = find_field(msg, s->name);

		if (s->present_r != NULL)
			*s->present_r = f != NULL;
		if (f == NULL) {
			if (s->required) {
				*error_r = "missing field";
				return -1;
			}
			continue;
		}
		switch (s->type) {
		case IPC_STR:
			if (s->str_r != NULL)
				*s->str_r = (const char *)f->data;
			break;
		case IPC_BYTES:
			if (s->bytes_r != NULL)
				*s->bytes_r = f->data;
			if (s->len_r != NULL)
				*s->len_r = f->len;
			break;
		case IPC_INT:
			if (s->int_r != NULL)
				*s->int_r = f->num;
			break;
		}
	}
	return 0;
}

void ipc_put_hello(struct buf *out, const char *protocol)
{
	ipc_begin(out);
	ipc_put_str(out, "hello", "yubin");
	ipc_put_str(out, "protocol", protocol);
	ipc_put_int(out, "version", IPC_VERSION);
	ipc_end(out);
}

int ipc_hello_check(const struct ipc_msg *msg, const char *protocol, const char **error_r)
{
	const char *hello = NULL, *proto = NULL;
	int64_t version = 0;
	const struct ipc_spec spec[] = {
		{ .name = "hello", .type = IPC_STR, .required = true, .max_len = 16, .str_r = &hello },
		{ .name = "protocol", .type = IPC_STR, .required = true, .max_len = 64, .str_r = &proto },
		{ .name = "version", .type = IPC_INT, .required = true, .int_r = &version },
	};

	if (ipc_scan(msg, spec, 3, IPC_STRICT, error_r) < 0)
		return -1;
	if (strcmp(hello, "yubin") != 0) {
		*error_r = "not a yubin client";
		return -1;
	}
	if (strcmp(proto, protocol) != 0) {
		*error_r = "wrong protocol for this socket";
		return -1;
	}
	if (version != IPC_VERSION) {
		*error_r = "unsupported protocol version";
		return -1;
	}
	return 0;
}
