/* json.h - the little JSON output the CLIs need: escaped string literals. */
#ifndef YB_JSON_H
#define YB_JSON_H

#include "buf.h"

/* json_str - append s as a JSON string literal ("..." with escapes). */
void json_str(struct buf *b, const char *s);

#endif
