/* sanitize.c - make client strings safe to log. */
#include "config.h"
#include "sanitize.h"

#include <stdio.h>
#include <string.h>

char *sanitize(char *out, size_t outsize, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t o = 0;
	/* Leave room for "..." and the NUL. */
	size_t limit = outsize - 4;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		size_t need = (c < 0x20 || c >= 0x7f || c == '\\') ? 4 : 1;

		if (o + need > limit) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (need == 4) {
			snprintf(out + o, 5, "\\x%02x", c);
		} else {
			out[o] = (char)c;
		}
		o += need;
	}
	out[o] = '\0';
	return out;
}
