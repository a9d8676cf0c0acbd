#include "config.h"
/* test_ipc.c - unit tests for libutil/ipc.c: frame encoding, decoding, ipc_scan and the hello. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libutil/buf.h"
#include "../../libutil/ipc.h"
#include "../../libutil/mem.h"
#include "unit.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
/* BIN - a string literal and its length, NULs included. */
#define BIN(s) (const uint8_t *)(s), sizeof(s) - 1

/* A field to encode: type 's' (str), 'b' (str[0..len)) or 'i' (num). */
struct tf {
	char type;
	const char *name;
	const char *str;
	size_t len;
	int64_t num;
};

#define S(n, v) { 's', (n), (v), 0, 0 }
#define B(n, v, l) { 'b', (n), (v), (l), 0 }
#define I(n, v) { 'i', (n), NULL, 0, (v) }
#define END { 0, NULL, NULL, 0, 0 }

/* build - a whole frame holding the fields up to END. */
static void build(struct buf *out, const struct tf *f)
{
	ipc_begin(out);
	for (; f->type != 0; f++) {
		switch (f->type) {
		case 's':
			ipc_put_str(out, f->name, f->str);
			break;
		case 'b':
			ipc_put_bytes(out, f->name, f->str, f->len);
			break;
		case 'i':
			ipc_put_int(out, f->name, f->num);
			break;
		default:
			fail_msg("bad test field type %c", f->type);
		}
	}
	ipc_end(out);
}

/* decode_copy - ipc_decode on an exactly sized heap copy of data, so that
 * valgrind sees any read past the end. */
static int decode_copy(const uint8_t *data, size_t len, struct ipc_msg *msg, const char **error_r)
{
	uint8_t *copy = xmalloc(len);
	int rc;

	if (len > 0)
		memcpy(copy, data, len);
	rc = ipc_decode(copy, len, msg, error_r);
	/* the message owns its values: scribble over the input */
	if (len > 0)
		memset(copy, 0xee, len);
	free(copy);
	return rc;
}

/* decode_frame - decode the payload of a frame built with build(). */
static int decode_frame(const struct buf *frame, struct ipc_msg *msg, const char **error_r)
{
	size_t frame_len = 0;

	assert_int_equal(ipc_frame_length(frame->data, frame->len, IPC_FRAME_MAX_DEFAULT, &frame_len), 1);
	assert_int_equal(frame_len, frame->len);
	return decode_copy(frame->data + 4, frame->len - 4, msg, error_r);
}

/* assert_fields - msg holds exactly the fields up to END. */
static void assert_fields(const struct ipc_msg *msg, const struct tf *want)
{
	size_t n = 0;

	for (; want[n].type != 0; n++) {
		const struct ipc_field *f = &msg->fields[n];

		assert_true(n < msg->count);
		assert_string_equal(f->name, want[n].name);
		assert_int_equal(f->type, want[n].type);
		switch (want[n].type) {
		case 's':
			assert_int_equal(f->len, strlen(want[n].str));
			assert_string_equal((const char *)f->data, want[n].str);
			break;
		case 'b':
			assert_int_equal(f->len, want[n].len);
			if (want[n].len > 0)
				assert_memory_equal(f->data, want[n].str, want[n].len);
			break;
		case 'i':
			assert_int_equal(f->num, want[n].num);
			break;
		}
	}
	assert_int_equal(msg->count, n);
}

static void test_wire_format(void **state)
{
	static const struct tf fields[] = { S("a", "xy"), B("b2", "\0\1", 2), I("n", -2), END };
	static const uint8_t want[] = {
		0, 0, 0, 30,
		's', 1, 'a', 0, 0, 0, 2, 'x', 'y',
		'b', 2, 'b', '2', 0, 0, 0, 2, 0, 1,
		'i', 1, 'n', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
	};
	struct buf b = BUF_INIT;

	(void)state;
	build(&b, fields);
	assert_int_equal(b.len, sizeof want);
	assert_memory_equal(b.data, want, sizeof want);
	assert_int_equal(ipc_header_length(b.data), 30);
	/* an empty message is a bare header */
	ipc_begin(&b);
	ipc_end(&b);
	assert_int_equal(b.len, 4);
	assert_memory_equal(b.data, "\0\0\0\0", 4);
	buf_free(&b);
}

static void test_round_trip(void **state)
{
	static const char nuls[] = { 0, 'a', 0, 0, (char)0xff, 0 };
	static const struct tf fields[] = {
		S("user", "bob@example.org"),
		S("empty", ""),
		S("high", "\xc3\xa9t\xc3\xa9 \x01\x7f"),
		B("blob", nuls, sizeof nuls),
		B("none", "", 0),
		I("zero", 0),
		I("minus_one", -1),
		I("min", INT64_MIN),
		I("max", INT64_MAX),
		I("big", (int64_t)1 << 40),
		I("a2345678901234567890123456789012", 7), /* longest name */
		S("user", "second user field"),             /* duplicates decode fine */
		END,
	};
	struct buf b = BUF_INIT;
	struct ipc_msg msg;
	const char *error = NULL;
	int64_t v = 0;

	(void)state;
	build(&b, fields);
	if (decode_frame(&b, &msg, &error) != 0)
		fail_msg("decode: %s", error);
	assert_fields(&msg, fields);
	/* every text value is NUL-terminated in the message's storage */
	for (size_t i = 0; i < msg.count; i++)
		if (msg.fields[i].type != IPC_INT)
			assert_int_equal(msg.fields[i].data[msg.fields[i].len], '\0');
	/* loose lookups: first field of the name, right type only */
	assert_string_equal(ipc_get_str(&msg, "user"), "bob@example.org");
	assert_string_equal(ipc_get_str(&msg, "empty"), "");
	assert_null(ipc_get_str(&msg, "blob"));
	assert_null(ipc_get_str(&msg, "zero"));
	assert_null(ipc_get_str(&msg, "nosuch"));
	assert_true(ipc_get_int(&msg, "min", &v));
	assert_true(v == INT64_MIN);
	assert_true(ipc_get_int(&msg, "max", &v));
	assert_true(v == INT64_MAX);
	v = 99;
	assert_false(ipc_get_int(&msg, "user", &v));
	assert_false(ipc_get_int(&msg, "nosuch", &v));
	assert_int_equal(v, 99);
	ipc_msg_free(&msg);
	assert_null(msg.fields);
	assert_null(msg.storage);
	assert_int_equal(msg.count, 0);
	ipc_msg_free(&msg); /* twice is fine */
	buf_free(&b);
}

static void test_ints(void **state)
{
	static const int64_t values[] = {
		0, 1, -1, 127, 128, 255, 256, -128, -129, 65535, 0x7fffffff, -0x80000000LL, 0xffffffffLL,
		0x100000000LL, INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1, 0x0123456789abcdefLL,
	};

	(void)state;
	for (size_t i = 0; i < NELEM(values); i++) {
		struct tf fields[] = { I("v", values[i]), END };
		struct buf b = BUF_INIT;
		struct ipc_msg msg;
		const char *error;
		uint64_t u = (uint64_t)values[i];

		build(&b, fields);
		/* 8 bytes, big-endian two's complement */
		assert_int_equal(b.len, 4 + 3 + 8);
		for (int j = 0; j < 8; j++)
			assert_int_equal(b.data[7 + j], (uint8_t)(u >> (56 - 8 * j)));
		assert_int_equal(decode_frame(&b, &msg, &error), 0);
		if (msg.fields[0].num != values[i])
			fail_msg("%lld came back as %lld", (long long)values[i], (long long)msg.fields[0].num);
		ipc_msg_free(&msg);
		buf_free(&b);
	}
}

static void test_large_values(void **state)
{
	size_t n = 300000;
	char *text = xmalloc(n + 1);
	uint8_t *bytes = xmalloc(n);
	struct buf b = BUF_INIT;
	struct ipc_msg msg;
	const char *error;

	(void)state;
	for (size_t i = 0; i < n; i++) {
		text[i] = (char)('a' + i % 26);
		bytes[i] = (uint8_t)(i * 7);
	}
	text[n] = '\0';
	ipc_begin(&b);
	ipc_put_str(&b, "text", text);
	ipc_put_bytes(&b, "bytes", bytes, n);
	ipc_end(&b);
	assert_int_equal(ipc_header_length(b.data), 2 * n + 2 + 4 + 4 + 2 + 5 + 4);
	assert_int_equal(decode_frame(&b, &msg, &error), 0);
	assert_int_equal(msg.count, 2);
	assert_int_equal(msg.fields[0].len, n);
	assert_string_equal((const char *)msg.fields[0].data, text);
	assert_int_equal(msg.fields[1].len, n);
	assert_memory_equal(msg.fields[1].data, bytes, n);
	ipc_msg_free(&msg);
	buf_free(&b);
	free(text);
	free(bytes);
}

static void test_frame_length(void **state)
{
	static const struct {
		const char *name;
		const uint8_t *data;
		size_t len;
		size_t max;
		int rc;
		size_t frame_len;
	} cases[] = {
		{ "nothing", BIN(""), 100, 0, 0 },
		{ "1 byte", BIN("\0"), 100, 0, 0 },
		{ "3 bytes", BIN("\0\0\0"), 100, 0, 0 },
		{ "empty frame", BIN("\0\0\0\0"), 100, 1, 4 },
		{ "empty frame and more", BIN("\0\0\0\0\0\0\0\5"), 100, 1, 4 },
		{ "header only", BIN("\0\0\0\5"), 100, 0, 0 },
		{ "one short", BIN("\0\0\0\5abcd"), 100, 0, 0 },
		{ "complete", BIN("\0\0\0\5abcde"), 100, 1, 9 },
		{ "complete and the next", BIN("\0\0\0\5abcdef\0\0"), 100, 1, 9 },
		{ "exactly max", BIN("\0\0\0\5abcde"), 5, 1, 9 },
		{ "max, need more", BIN("\0\0\0\5ab"), 5, 0, 0 },
		{ "over max", BIN("\0\0\0\6abcdef"), 5, -1, 0 },
		{ "over max, header only", BIN("\0\0\0\6"), 5, -1, 0 },
		{ "high byte", BIN("\1\0\0\0"), IPC_FRAME_MAX_DEFAULT, -1, 0 },
		{ "all ones", BIN("\xff\xff\xff\xff"), IPC_FRAME_MAX_DEFAULT, -1, 0 },
		{ "default max", BIN("\0\x10\0\0"), IPC_FRAME_MAX_DEFAULT, 0, 0 },
		{ "default max plus one", BIN("\0\x10\0\1"), IPC_FRAME_MAX_DEFAULT, -1, 0 },
		{ "max 0", BIN("\0\0\0\0"), 0, 1, 4 },
		{ "max 0, one byte", BIN("\0\0\0\1x"), 0, -1, 0 },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		size_t frame_len = 12345;
		int rc = ipc_frame_length(cases[i].data, cases[i].len, cases[i].max, &frame_len);

		if (rc != cases[i].rc)
			fail_msg("%s: rc %d, want %d", cases[i].name, rc, cases[i].rc);
		if (rc == 1 && frame_len != cases[i].frame_len)
			fail_msg("%s: frame length %zu, want %zu", cases[i].name, frame_len, cases[i].frame_len);
		if (rc != 1 && frame_len != 12345)
			fail_msg("%s: frame length set without a frame", cases[i].name);
	}
}

static void test_header_length(void **state)
{
	static const struct {
		uint8_t h[4];
		size_t want;
	} cases[] = {
		{ { 0, 0, 0, 0 }, 0 },
		{ { 0, 0, 0, 1 }, 1 },
		{ { 0, 0, 1, 0 }, 256 },
		{ { 1, 2, 3, 4 }, 0x01020304 },
		{ { 0xff, 0xff, 0xff, 0xff }, 0xffffffffu },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++)
		assert_int_equal(ipc_header_length(cases[i].h), cases[i].want);
}

/* expected_prefix_result - what decoding the first cut bytes of a payload
 * built from fields must give: NULL (success) or the error. */
static const char *expected_prefix_result(const struct tf *fields, size_t cut, size_t *count_r)
{
	size_t start = 0;

	for (size_t i = 0; fields[i].type != 0; i++) {
		size_t nlen = strlen(fields[i].name);
		size_t vlen = fields[i].type == 's' ? strlen(fields[i].str) : fields[i].len;
		size_t end = fields[i].type == 'i' ? start + 2 + nlen + 8 : start + 2 + nlen + 4 + vlen;
		size_t off = cut - start;

		if (cut == start) {
			*count_r = i;
			return NULL;
		}
		if (cut < end) {
			if (off == 1)
				return "truncated field header";
			if (off < 2 + nlen)
				return "bad field name";
			if (fields[i].type == 'i')
				return "truncated integer";
			if (off < 2 + nlen + 4)
				return "truncated length";
			return "truncated value";
		}
		start = end;
	}
	assert_int_equal(cut, start);
	*count_r = 0;
	while (fields[*count_r].type != 0)
		(*count_r)++;
	return NULL;
}

static void test_every_prefix(void **state)
{
	static const struct tf fields[] = {
		S("user", "bob"),
		B("blob", "\0x\0", 3),
		I("n", -1),
		S("e", ""),
		B("z", "", 0),
		S("last_field", "the end"),
		END,
	};
	struct buf b = BUF_INIT;
	const uint8_t *payload;
	size_t len;

	(void)state;
	build(&b, fields);
	payload = b.data + 4;
	len = b.len - 4;
	for (size_t cut = 0; cut <= len; cut++) {
		struct ipc_msg msg;
		const char *error = NULL;
		size_t want_count = 0;
		const char *want = expected_prefix_result(fields, cut, &want_count);
		int rc = decode_copy(payload, cut, &msg, &error);

		if (want == NULL) {
			if (rc != 0)
				fail_msg("prefix %zu of %zu: failed (%s), should hold %zu fields", cut, len, error,
					 want_count);
			assert_int_equal(msg.count, want_count);
			for (size_t i = 0; i < want_count; i++)
				assert_string_equal(msg.fields[i].name, fields[i].name);
			ipc_msg_free(&msg);
		} else {
			if (rc != -1)
				fail_msg("prefix %zu of %zu: decoded, want \"%s\"", cut, len, want);
			assert_non_null(error);
			if (strcmp(error, want) != 0)
				fail_msg("prefix %zu of %zu: \"%s\", want \"%s\"", cut, len, error, want);
			/* a failed decode leaves nothing to free */
			assert_null(msg.fields);
			assert_null(msg.storage);
			assert_int_equal(msg.count, 0);
		}
	}
	buf_free(&b);
}

static void test_bad_payloads(void **state)
{
	static const struct {
		const char *name;
		const uint8_t *data;
		size_t len;
		const char *error; /* NULL: decodes */
	} cases[] = {
		{ "empty payload", BIN(""), NULL },
		{ "lone type byte", BIN("s"), "truncated field header" },
		{ "unknown type", BIN("x\1a\0\0\0\0"), "unknown field type" },
		{ "type NUL", BIN("\0\1a\0\0\0\0"), "unknown field type" },
		{ "type upper case", BIN("S\1a\0\0\0\0"), "unknown field type" },
		{ "unknown type after a good field", BIN("s\1a\0\0\0\0q\1a"), "unknown field type" },
		{ "empty name", BIN("s\0\0\0\0\0"), "bad field name" },
		{ "upper-case name", BIN("s\1A\0\0\0\0"), "bad field name" },
		{ "name with a dash", BIN("s\2a-\0\0\0\0"), "bad field name" },
		{ "name with a blank", BIN("s\2a \0\0\0\0"), "bad field name" },
		{ "name with a NUL", BIN("s\2a\0\0\0\0\0"), "bad field name" },
		{ "name with a high byte", BIN("s\2a\xe9\0\0\0\0"), "bad field name" },
		{ "name longer than the rest", BIN("s\5ab"), "bad field name" },
		{ "name length 255", BIN("i\xff" "aaaaaaaa"), "bad field name" },
		{ "name of 33", BIN("i\x21" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\0\0\0\0\0\0\0\0"), "bad field name" },
		{ "name of 32", BIN("i\x20" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\0\0\0\0\0\0\0\0"), NULL },
		{ "digits and underscore", BIN("i\3_9z\0\0\0\0\0\0\0\0"), NULL },
		{ "NUL in text", BIN("s\1a\0\0\0\2a\0"), "NUL in text field" },
		{ "NUL at text start", BIN("s\1a\0\0\0\1\0"), "NUL in text field" },
		{ "NUL in bytes", BIN("b\1a\0\0\0\2a\0"), NULL },
		{ "high bytes in text", BIN("s\1a\0\0\0\2\xff\x80"), NULL },
		{ "huge value length", BIN("s\1a\xff\xff\xff\xff"), "truncated value" },
		{ "value length one too many", BIN("b\1a\0\0\0\3xy"), "truncated value" },
		{ "short length", BIN("b\1a\0\0"), "truncated length" },
		{ "short integer", BIN("i\1a\0\0\0\0\0\0\0"), "truncated integer" },
		{ "trailing byte", BIN("i\1a\0\0\0\0\0\0\0\0i"), "truncated field header" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct ipc_msg msg;
		const char *error = NULL;
		int rc = decode_copy(cases[i].data, cases[i].len, &msg, &error);

		if (cases[i].error == NULL) {
			if (rc != 0)
				fail_msg("%s: %s", cases[i].name, error);
			ipc_msg_free(&msg);
			continue;
		}
		if (rc != -1)
			fail_msg("%s: decoded", cases[i].name);
		if (strcmp(error, cases[i].error) != 0)
			fail_msg("%s: \"%s\", want \"%s\"", cases[i].name, error, cases[i].error);
		assert_null(msg.fields);
		assert_int_equal(msg.count, 0);
	}
}

/* next_rand - a small fixed-seed generator, so failures reproduce. */
static uint32_t next_rand(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

static void test_garbage(void **state)
{
	/* Bytes biased towards the format so that many inputs get deep. */
	static const uint8_t alphabet[] = { 's', 'b', 'i', 0, 0, 0, 1, 2, 3, 4, 8, 'a', 'z', '_', '9', 0xff, 'X', ' ' };
	static const char *const errors[] = {
		"truncated field header", "unknown field type", "bad field name", "too many fields",
		"truncated integer", "truncated length", "truncated value", "NUL in text field",
	};
	uint32_t seed = 12345;
	uint8_t data[96];
	size_t decoded = 0;
	struct buf again = BUF_INIT;

	(void)state;
	for (int round = 0; round < 30000; round++) {
		size_t len = next_rand(&seed) % sizeof data;
		struct ipc_msg msg;
		const char *error = NULL;
		bool known = false;

		for (size_t i = 0; i < len; i++)
			data[i] = (next_rand(&seed) % 4 == 0) ? (uint8_t)next_rand(&seed)
							       : alphabet[next_rand(&seed) % sizeof alphabet];
		if (decode_copy(data, len, &msg, &error) < 0) {
			for (size_t i = 0; i < NELEM(errors); i++)
				known = known || strcmp(error, errors[i]) == 0;
			if (!known)
				fail_msg("round %d: unknown error \"%s\"", round, error);
			assert_null(msg.fields);
			continue;
		}
		decoded++;
		/* whatever decodes re-encodes to the same bytes */
		ipc_begin(&again);
		for (size_t i = 0; i < msg.count; i++) {
			const struct ipc_field *f = &msg.fields[i];

			if (f->type == IPC_STR) {
				assert_int_equal(strlen((const char *)f->data), f->len);
				ipc_put_str(&again, f->name, (const char *)f->data);
			} else if (f->type == IPC_BYTES) {
				ipc_put_bytes(&again, f->name, f->data, f->len);
			} else {
				assert_int_equal(f->type, IPC_INT);
				ipc_put_int(&again, f->name, f->num);
			}
		}
		ipc_end(&again);
		assert_int_equal(again.len - 4, len);
		if (len > 0)
			assert_memory_equal(again.data + 4, data, len);
		ipc_msg_free(&msg);
	}
	/* the generator reaches both outcomes */
	assert_true(decoded > 100);
	buf_free(&again);
}

static void test_too_many_fields(void **state)
{
	(void)state;
	for (size_t n = 255; n <= 258; n++) {
		struct buf b = BUF_INIT;
		struct ipc_msg msg;
		const char *error = NULL;
		int rc;

		ipc_begin(&b);
		for (size_t i = 0; i < n; i++)
			ipc_put_int(&b, i % 2 == 0 ? "even" : "odd", (int64_t)i);
		ipc_end(&b);
		rc = decode_frame(&b, &msg, &error);
		if (n <= IPC_FIELDS_MAX) {
			if (rc != 0)
				fail_msg("%zu fields: %s", n, error);
			assert_int_equal(msg.count, n);
			assert_int_equal(msg.fields[n - 1].num, (int64_t)n - 1);
			ipc_msg_free(&msg);
		} else {
			assert_int_equal(rc, -1);
			assert_string_equal(error, "too many fields");
		}
		buf_free(&b);
	}
}

static void test_put_panics(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	ipc_begin(&b);
	UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "ipc: bad field name \"Bad\"", ipc_put_str(&b, "Bad", "x"));
	UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "ipc: bad field name \"\"", ipc_put_int(&b, "", 1));
	UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "ipc: bad field name \"a-b\"", ipc_put_bytes(&b, "a-b", "", 0));
	UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "ipc: bad field name",
			  ipc_put_int(&b, "a23456789012345678901234567890123", 1));
	/* nothing was appended by the failed calls */
	assert_int_equal(b.len, 4);
	buf_free(&b);
	UNIT_EXPECT_DEATH(LOG_LEVEL_PANIC, "ipc_end: no frame begun", ipc_end(&b));
	buf_free(&b);
}

static void test_scan(void **state)
{
	static const struct {
		const char *name;
		struct tf fields[6];
		int flags;
		const char *error; /* NULL: accepted */
	} cases[] = {
		{ "required only", { S("user", "bob"), END }, IPC_STRICT, NULL },
		{ "all fields", { S("user", "bob"), B("data", "\0\1\2\3", 4), I("count", 10), I("any", INT64_MIN), END },
		  IPC_STRICT, NULL },
		{ "order does not matter", { I("count", 1), S("user", "bob"), END }, IPC_STRICT, NULL },
		{ "unknown field, strict", { S("user", "bob"), S("extra", "x"), END }, IPC_STRICT, "unexpected field" },
		{ "unknown field, loose", { S("user", "bob"), S("extra", "x"), I("more", 1), END }, 0, NULL },
		{ "unknown field of any type, loose", { B("extra", "", 0), S("user", "bob"), END }, 0, NULL },
		{ "duplicate, strict", { S("user", "bob"), S("user", "eve"), END }, IPC_STRICT, "duplicate field" },
		{ "duplicate, loose", { S("user", "bob"), S("user", "eve"), END }, 0, "duplicate field" },
		{ "duplicate int", { S("user", "bob"), I("count", 1), I("count", 1), END }, IPC_STRICT, "duplicate field" },
		{ "wrong type str as int", { I("user", 1), END }, IPC_STRICT, "field has the wrong type" },
		{ "wrong type str as bytes", { B("user", "bob", 3), END }, IPC_STRICT, "field has the wrong type" },
		{ "wrong type bytes as str", { S("user", "bob"), S("data", "x"), END }, IPC_STRICT, "field has the wrong type" },
		{ "wrong type int as str", { S("user", "bob"), S("count", "5"), END }, 0, "field has the wrong type" },
		{ "missing required", { I("count", 5), END }, IPC_STRICT, "missing field" },
		{ "empty message", { END }, IPC_STRICT, "missing field" },
		{ "empty message, loose", { END }, 0, "missing field" },
		{ "text at max length", { S("user", "12345678"), END }, IPC_STRICT, NULL },
		{ "text over max length", { S("user", "123456789"), END }, IPC_STRICT, "field too long" },
		{ "empty text", { S("user", ""), END }, IPC_STRICT, NULL },
		{ "bytes at max length", { S("user", "b"), B("data", "\0\0\0\0", 4), END }, IPC_STRICT, NULL },
		{ "bytes over max length", { S("user", "b"), B("data", "\0\0\0\0\0", 5), END }, IPC_STRICT, "field too long" },
		{ "no length limit", { S("user", "b"), S("note", "a note that is longer than any other limit here"), END },
		  IPC_STRICT, NULL },
		{ "int at min", { S("user", "b"), I("count", 1), END }, IPC_STRICT, NULL },
		{ "int at max", { S("user", "b"), I("count", 10), END }, IPC_STRICT, NULL },
		{ "int below min", { S("user", "b"), I("count", 0), END }, IPC_STRICT, "field out of range" },
		{ "int above max", { S("user", "b"), I("count", 11), END }, IPC_STRICT, "field out of range" },
		{ "int far below", { S("user", "b"), I("count", INT64_MIN), END }, IPC_STRICT, "field out of range" },
		{ "int far above", { S("user", "b"), I("count", INT64_MAX), END }, IPC_STRICT, "field out of range" },
		{ "unlimited int", { S("user", "b"), I("any", INT64_MAX), END }, IPC_STRICT, NULL },
		{ "negative range", { S("user", "b"), I("neg", -5), END }, IPC_STRICT, NULL },
		{ "negative range, above", { S("user", "b"), I("neg", 0), END }, IPC_STRICT, "field out of range" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		const char *user = NULL, *note = NULL;
		const uint8_t *data = NULL;
		size_t data_len = 999;
		int64_t count = -99, any = -99, neg = -99;
		bool data_present = true, count_present = false;
		const struct ipc_spec spec[] = {
			{ .name = "user", .type = IPC_STR, .required = true, .max_len = 8, .str_r = &user },
			{ .name = "data", .type = IPC_BYTES, .max_len = 4, .bytes_r = &data, .len_r = &data_len,
			  .present_r = &data_present },
			{ .name = "count", .type = IPC_INT, .min = 1, .max = 10, .int_r = &count,
			  .present_r = &count_present },
			{ .name = "any", .type = IPC_INT, .int_r = &any },
			{ .name = "note", .type = IPC_STR, .str_r = &note },
			{ .name = "neg", .type = IPC_INT, .min = -10, .max = -1, .int_r = &neg },
		};
		struct buf b = BUF_INIT;
		struct ipc_msg msg;
		const char *error = NULL;
		int rc;

		build(&b, cases[i].fields);
		assert_int_equal(decode_frame(&b, &msg, &error), 0);
		rc = ipc_scan(&msg, spec, NELEM(spec), cases[i].flags, &error);
		if (cases[i].error != NULL) {
			if (rc != -1)
				fail_msg("%s: accepted", cases[i].name);
			if (strcmp(error, cases[i].error) != 0)
				fail_msg("%s: \"%s\", want \"%s\"", cases[i].name, error, cases[i].error);
		} else {
			if (rc != 0)
				fail_msg("%s: %s", cases[i].name, error);
			bool has_data = false, has_count = false;

			/* each value landed where the spec says, and present_r is right */
			assert_string_equal(user, ipc_get_str(&msg, "user"));
			for (size_t j = 0; cases[i].fields[j].type != 0; j++) {
				const struct tf *f = &cases[i].fields[j];

				if (strcmp(f->name, "data") == 0) {
					has_data = true;
					assert_int_equal(data_len, f->len);
					assert_memory_equal(data, f->str, f->len);
				} else if (strcmp(f->name, "count") == 0) {
					has_count = true;
					assert_int_equal(count, f->num);
				} else if (strcmp(f->name, "any") == 0) {
					assert_true(any == f->num);
				} else if (strcmp(f->name, "neg") == 0) {
					assert_int_equal(neg, f->num);
				} else if (strcmp(f->name, "note") == 0) {
					assert_string_equal(note, f->str);
				}
			}
			assert_int_equal(data_present, has_data);
			assert_int_equal(count_present, has_count);
			if (!has_data)
				assert_int_equal(data_len, 999); /* absent: left alone */
			if (!has_count)
				assert_int_equal(count, -99);
		}
		ipc_msg_free(&msg);
		buf_free(&b);
	}
}

static void test_scan_present(void **state)
{
	static const struct tf fields[] = { S("user", "bob"), END };
	struct buf b = BUF_INIT;
	struct ipc_msg msg;
	const char *error, *user = NULL;
	bool user_present = false, opt_present = true;
	int64_t opt = 42;
	const struct ipc_spec spec[] = {
		{ .name = "user", .type = IPC_STR, .required = true, .str_r = &user, .present_r = &user_present },
		{ .name = "opt", .type = IPC_INT, .int_r = &opt, .present_r = &opt_present },
	};

	(void)state;
	build(&b, fields);
	assert_int_equal(decode_frame(&b, &msg, &error), 0);
	assert_int_equal(ipc_scan(&msg, spec, NELEM(spec), IPC_STRICT, &error), 0);
	assert_true(user_present);
	assert_false(opt_present);
	assert_int_equal(opt, 42);
	assert_string_equal(user, "bob");
	/* the value points into the message */
	assert_ptr_equal(user, (const char *)msg.fields[0].data);
	ipc_msg_free(&msg);
	buf_free(&b);
}

static void test_hello(void **state)
{
	static const struct {
		const char *name;
		struct tf fields[5];
		const char *error; /* NULL: accepted for protocol "control" */
	} cases[] = {
		{ "proper hello", { S("hello", "yubin"), S("protocol", "control"), I("version", IPC_VERSION), END }, NULL },
		{ "any order", { I("version", IPC_VERSION), S("protocol", "control"), S("hello", "yubin"), END }, NULL },
		{ "wrong protocol", { S("hello", "yubin"), S("protocol", "status"), I("version", IPC_VERSION), END },
		  "wrong protocol for this socket" },
		{ "protocol prefix", { S("hello", "yubin"), S("protocol", "contro"), I("version", IPC_VERSION), END },
		  "wrong protocol for this socket" },
		{ "wrong version", { S("hello", "yubin"), S("protocol", "control"), I("version", IPC_VERSION + 1), END },
		  "unsupported protocol version" },
		{ "version 0", { S("hello", "yubin"), S("protocol", "control"), I("version", 0), END },
		  "unsupported protocol version" },
		{ "version -1", { S("hello", "yubin"), S("protocol", "control"), I("version", -1), END },
		  "unsupported protocol version" },
		{ "not yubin", { S("hello", "smtp"), S("protocol", "control"), I("version", IPC_VERSION), END },
		  "not a yubin client" },
		{ "missing hello", { S("protocol", "control"), I("version", IPC_VERSION), END }, "missing field" },
		{ "missing protocol", { S("hello", "yubin"), I("version", IPC_VERSION), END }, "missing field" },
		{ "missing version", { S("hello", "yubin"), S("protocol", "control"), END }, "missing field" },
		{ "empty", { END }, "missing field" },
		{ "version as text", { S("hello", "yubin"), S("protocol", "control"), S("version", "1"), END },
		  "field has the wrong type" },
		{ "hello as bytes", { B("hello", "yubin", 5), S("protocol", "control"), I("version", IPC_VERSION), END },
		  "field has the wrong type" },
		{ "extra field", { S("hello", "yubin"), S("protocol", "control"), I("version", IPC_VERSION), S("x", ""), END },
		  "unexpected field" },
		{ "duplicate", { S("hello", "yubin"), S("protocol", "control"), I("version", IPC_VERSION), S("hello", "yubin"), END },
		  "duplicate field" },
		{ "hello too long", { S("hello", "yubinyubinyubinyubin"), S("protocol", "control"), I("version", IPC_VERSION), END },
		  "field too long" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct buf b = BUF_INIT;
		struct ipc_msg msg;
		const char *error = NULL;
		int rc;

		build(&b, cases[i].fields);
		assert_int_equal(decode_frame(&b, &msg, &error), 0);
		rc = ipc_hello_check(&msg, "control", &error);
		if (cases[i].error == NULL) {
			if (rc != 0)
				fail_msg("%s: %s", cases[i].name, error);
		} else {
			if (rc != -1)
				fail_msg("%s: accepted", cases[i].name);
			if (strcmp(error, cases[i].error) != 0)
				fail_msg("%s: \"%s\", want \"%s\"", cases[i].name, error, cases[i].error);
		}
		ipc_msg_free(&msg);
		buf_free(&b);
	}
}

static void test_put_hello(void **state)
{
	static const struct tf want[] = {
		S("hello", "yubin"), S("protocol", "master-control"), I("version", IPC_VERSION), END,
	};
	struct buf b = BUF_INIT;
	struct ipc_msg msg;
	const char *error = NULL;

	(void)state;
	buf_append_str(&b, "old contents are dropped");
	ipc_put_hello(&b, "master-control");
	assert_int_equal(decode_frame(&b, &msg, &error), 0);
	assert_fields(&msg, want);
	assert_int_equal(ipc_hello_check(&msg, "master-control", &error), 0);
	assert_int_equal(ipc_hello_check(&msg, "master", &error), -1);
	assert_string_equal(error, "wrong protocol for this socket");
	ipc_msg_free(&msg);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wire_format),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_ints),
		cmocka_unit_test(test_large_values),
		cmocka_unit_test(test_frame_length),
		cmocka_unit_test(test_header_length),
		cmocka_unit_test(test_every_prefix),
		cmocka_unit_test(test_bad_payloads),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_too_many_fields),
		cmocka_unit_test(test_put_panics),
		cmocka_unit_test(test_scan),
		cmocka_unit_test(test_scan_present),
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_put_hello),
	};

	log_init("test_ipc", LOG_SINK_STDERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
