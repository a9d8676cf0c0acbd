#include "config.h"
/* fuzz_ipc.c - libFuzzer target for the IPC wire format (libutil/ipc.c).
 *
 * The input is a frame as it arrives on a socket: a 4-byte big-endian
 * length, then the payload. Checks, with abort() on any violation:
 *   - ipc_frame_length agrees with the header and never claims more bytes
 *     than it was given;
 *   - ipc_decode either fails cleanly (nothing left to free) or returns
 *     well-formed fields;
 *   - ipc_scan (loose and IPC_STRICT) and ipc_hello_check never crash and
 *     give consistent answers;
 *   - re-encoding the decoded fields with ipc_put_* gives the same bytes
 *     and decodes to the same fields.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libutil/buf.h"
#include "../../libutil/ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "fuzz_ipc: check failed: %s (line %d)\n", #cond, \
				__LINE__);                                           \
			abort();                                                     \
		}                                                                    \
	} while (0)

static bool valid_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > IPC_NAME_MAX)
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

/* check_msg - every decoded field is well formed. */
static void check_msg(const struct ipc_msg *msg, size_t payload_len)
{
	CHECK(msg->count <= IPC_FIELDS_MAX);
	CHECK(msg->count == 0 || msg->fields != NULL);
	for (size_t i = 0; i < msg->count; i++) {
		const struct ipc_field *f = &msg->fields[i];

		CHECK(valid_name(f->name));
		switch (f->type) {
		case IPC_STR:
			CHECK(f->data != NULL);
			CHECK(f->len <= payload_len);
			CHECK(f->data[f->len] == '\0');
			CHECK(strlen((const char *)f->data) == f->len);
			break;
		case IPC_BYTES:
			CHECK(f->data != NULL);
			CHECK(f->len <= payload_len);
			CHECK(f->data[f->len] == '\0');
			break;
		case IPC_INT:
			break;
		default:
			CHECK(!"unknown field type after decode");
		}
	}
}

/* same_fields - two decoded messages hold the same fields. */
static bool same_fields(const struct ipc_msg *a, const struct ipc_msg *b)
{
	if (a->count != b->count)
		return false;
	for (size_t i = 0; i < a->count; i++) {
		const struct ipc_field *x = &a->fields[i], *y = &b->fields[i];

		if (strcmp(x->name, y->name) != 0 || x->type != y->type)
			return false;
		if (x->type == IPC_INT) {
			if (x->num != y->num)
				return false;
		} else if (x->len != y->len || (x->len > 0 && memcmp(x->data, y->data, x->len) != 0)) {
			return false;
		}
	}
	return true;
}

/* scan - ipc_scan with a spec that covers the hello and a few typed fields. */
static void scan(const struct ipc_msg *msg)
{
	const char *hello = NULL, *proto = NULL, *error = NULL;
	const uint8_t *bytes = NULL;
	size_t bytes_len = 0;
	int64_t version = 0, count = 0;
	bool version_present = false;
	const struct ipc_spec spec[] = {
		{ .name = "hello", .type = IPC_STR, .max_len = 16, .str_r = &hello },
		{ .name = "protocol", .type = IPC_STR, .max_len = 64, .str_r = &proto },
		{ .name = "version", .type = IPC_INT, .int_r = &version, .present_r = &version_present },
		{ .name = "data", .type = IPC_BYTES, .max_len = 256, .bytes_r = &bytes, .len_r = &bytes_len },
		{ .name = "count", .type = IPC_INT, .min = -5, .max = 1000, .int_r = &count },
	};
	const struct ipc_spec required[] = {
		{ .name = "status", .type = IPC_STR, .required = true, .max_len = 8 },
	};
	int loose = ipc_scan(msg, spec, sizeof spec / sizeof spec[0], 0, &error);
	int strict;

	CHECK(loose == 0 || (loose == -1 && error != NULL));
	if (loose == 0) {
		CHECK(hello == NULL || strlen(hello) <= 16);
		CHECK(proto == NULL || strlen(proto) <= 64);
		CHECK(bytes == NULL || bytes_len <= 256);
		CHECK(count >= -5 && count <= 1000);
		CHECK(version_present == ipc_get_int(msg, "version", &(int64_t){ 0 }));
	}
	error = NULL;
	strict = ipc_scan(msg, spec, sizeof spec / sizeof spec[0], IPC_STRICT, &error);
	CHECK(strict == 0 || (strict == -1 && error != NULL));
	/* strict accepts a subset of what the loose scan accepts */
	CHECK(strict != 0 || loose == 0);
	error = NULL;
	if (ipc_scan(msg, required, 1, IPC_STRICT, &error) == 0) {
		const char *status = ipc_get_str(msg, "status");

		CHECK(status != NULL && strlen(status) <= 8);
	} else {
		CHECK(error != NULL);
	}
	error = NULL;
	if (ipc_hello_check(msg, "control", &error) == 0) {
		CHECK(strict == 0);
		CHECK(strcmp(ipc_get_str(msg, "hello"), "yubin") == 0);
		CHECK(strcmp(ipc_get_str(msg, "protocol"), "control") == 0);
	} else {
		CHECK(error != NULL);
	}
}

/* round_trip - re-encode msg; it must give back payload and the same fields. */
static void round_trip(const struct ipc_msg *msg, const uint8_t *payload, size_t len)
{
	struct buf out = BUF_INIT;
	struct ipc_msg again;
	const char *error = NULL;
	size_t frame_len = 0;

	ipc_begin(&out);
	for (size_t i = 0; i < msg->count; i++) {
		const struct ipc_field *f = &msg->fields[i];

		if (f->type == IPC_STR)
			ipc_put_str(&out, f->name, (const char *)f->data);
		else if (f->type == IPC_BYTES)
			ipc_put_bytes(&out, f->name, f->data, f->len);
		else
			ipc_put_int(&out, f->name, f->num);
	}
	ipc_end(&out);
	CHECK(ipc_frame_length(out.data, out.len, SIZE_MAX, &frame_len) == 1);
	CHECK(frame_len == out.len);
	/* the encoding is canonical: the same bytes come back */
	CHECK(out.len - 4 == len);
	CHECK(len == 0 || memcmp(out.data + 4, payload, len) == 0);
	if (ipc_decode(out.data + 4, out.len - 4, &again, &error) != 0) {
		fprintf(stderr, "fuzz_ipc: re-encoded message does not decode: %s\n", error);
		abort();
	}
	if (!same_fields(msg, &again)) {
		fprintf(stderr, "fuzz_ipc: re-encoded message decodes differently\n");
		abort();
	}
	ipc_msg_free(&again);
	buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *payload;
	size_t len, frame_len = 0;
	struct ipc_msg msg;
	const char *error = NULL;
	int rc;

	/* The framing layer, with the default and a small limit. */
	rc = ipc_frame_length(data, size, IPC_FRAME_MAX_DEFAULT, &frame_len);
	if (size < 4) {
		CHECK(rc == 0);
		return 0;
	}
	if (rc == 1) {
		CHECK(frame_len == ipc_header_length(data) + 4);
		CHECK(frame_len <= size);
	} else if (rc == 0) {
		CHECK(ipc_header_length(data) + 4 > size);
		CHECK(ipc_header_length(data) <= IPC_FRAME_MAX_DEFAULT);
	} else {
		CHECK(rc == -1);
		CHECK(ipc_header_length(data) > IPC_FRAME_MAX_DEFAULT);
	}
	if (ipc_frame_length(data, size, 16, &frame_len) == 1)
		CHECK(frame_len <= 20);

	/* Decode the framed payload if the frame is whole, else whatever
	 * follows the header (so mutated lengths still reach the decoder). */
	payload = data + 4;
	len = rc == 1 ? frame_len - 4 : size - 4;

	/* Decode from an exact-size copy so ASan sees reads past the end. */
	uint8_t *copy = malloc(len > 0 ? len : 1);

	if (copy == NULL)
		return 0;
	memcpy(copy, payload, len);
	rc = ipc_decode(copy, len, &msg, &error);
	if (rc != 0) {
		CHECK(rc == -1 && error != NULL);
		CHECK(msg.fields == NULL && msg.storage == NULL && msg.count == 0);
		free(copy);
		return 0;
	}
	/* the message owns its values */
	memset(copy, 0xa5, len);
	check_msg(&msg, len);
	scan(&msg);
	round_trip(&msg, payload, len);
	ipc_msg_free(&msg);
	free(copy);
	return 0;
}
