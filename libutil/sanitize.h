/* sanitize.h - printable copies of untrusted strings for log lines.
 * Control characters, bytes >= 0x7f and backslash become \xNN escapes;
 * the result is cut at a maximum length with "..." appended. */
#ifndef YB_SANITIZE_H
#define YB_SANITIZE_H

#include <stddef.h>

/* sanitize - write a printable copy of data[0..len) into out (size outsize,
 * at least 4); returns out. */
char *sanitize(char *out, size_t outsize, const void *data, size_t len);

/* SANITIZE_MAX - a convenient buffer size for one logged field. */
#define SANITIZE_MAX 256

#endif
