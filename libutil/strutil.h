/* strutil.h - bounded parsing of numbers, durations, sizes and booleans,
 * and small string helpers. Parsers return 0 on success and -1 with a
 * static error text on failure; they never accept trailing junk. */
#ifndef YB_STRUTIL_H
#define YB_STRUTIL_H

#include <stdbool.h>
#include <stddef.h>

int str_to_ll(const char *s, long long min, long long max, long long *value_r, const char **error_r);
/* str_to_duration - "30", "30s", "5m", "2h", "1d", "1w" -> seconds. */
int str_to_duration(const char *s, long long *seconds_r, const char **error_r);
/* str_to_size - "512", "10k", "10M", "1G" (also KiB/MiB/GiB) -> bytes. */
int str_to_size(const char *s, long long *bytes_r, const char **error_r);
/* str_to_bool - yes/no, true/false, on/off, 1/0. */
int str_to_bool(const char *s, bool *value_r, const char **error_r);

/* str_trim - strip leading and trailing blanks in place; returns the start. */
char *str_trim(char *s);
bool str_has_prefix(const char *s, const char *prefix);

/* str_text_length - length of a line read with getline, without its line
 * end ("\n" or "\r\n"): what line-length limits count. */
size_t str_text_length(const char *line, size_t len);

/* str_split_ws - split s in place at runs of blanks; fills at most max
 * pointers, returns the number of words, or -1 if there were more. */
int str_split_ws(char *s, char **words, int max);

#endif
