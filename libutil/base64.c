/* base64.c - RFC 4648 base64 encoding and strict decoding (base64.h). */
#include "config.h"
#include "base64.h"

#include <stdbool.h>
#include <stdint.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void base64_encode(struct buf *out, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t i;

	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		buf_append_byte(out, (uint8_t)alphabet[v >> 18]);
		buf_append_byte(out, (uint8_t)alphabet[(v >> 12) & 63]);
		buf_append_byte(out, (uint8_t)alphabet[(v >> 6) & 63]);
		buf_append_byte(out, (uint8_t)alphabet[v & 63]);
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;

		buf_append_byte(out, (uint8_t)alphabet[v >> 18]);
		buf_append_byte(out, (uint8_t)alphabet[(v >> 12) & 63]);
		buf_append(out, "==", 2);
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;

		buf_append_byte(out, (uint8_t)alphabet[v >> 18]);
		buf_append_byte(out, (uint8_t)alphabet[(v >> 12) & 63]);
		buf_append_byte(out, (uint8_t)alphabet[(v >> 6) & 63]);
		buf_append_byte(out, '=');
	}
}

/* value - the 6 bits a letter stands for, or -1. */
static int value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int base64_decode(struct buf *out, const char *text, size_t len)
{
	size_t start = out->len;

	if (len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		bool last = i + 4 == len;
		int pad = last && text[i + 3] == '=' ? (text[i + 2] == '=' ? 2 : 1) : 0;
		int v[4];
		uint32_t bits = 0;

		for (int k = 0; k < 4 - pad; k++) {
			v[k] = value(text[i + k]);
			if (v[k] < 0)
				goto bad;
			bits = bits << 6 | (uint32_t)v[k];
		}
		bits <<= 6 * pad;
		/* The bits under the padding must be zero (canonical form). */
		if ((pad == 1 && (bits & 0xff) != 0) || (pad == 2 && (bits & 0xffff) != 0))
			goto bad;
		buf_append_byte(out, (uint8_t)(bits >> 16));
		if (pad < 2)
			buf_append_byte(out, (uint8_t)(bits >> 8));
		if (pad < 1)
			buf_append_byte(out, (uint8_t)bits);
	}
	return 0;
bad:
	buf_truncate(out, start);
	return -1;
}
