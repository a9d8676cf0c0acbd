/* json.c - JSON string literals for machine-readable CLI output. */
#include "config.h"
#include "json.h"

void json_str(struct buf *b, const char *s)
{
	buf_append_byte(b, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			buf_printf(b, "\\%c", *p);
		else if (*p < 0x20)
			buf_printf(b, "\\u%04x", *p);
		else
			buf_append_byte(b, *p);
	}
	buf_append_byte(b, '"');
}
