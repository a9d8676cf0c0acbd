/* strutil.c - strict parsing helpers shared by config, svctab and CLIs. */
#include "config.h"
#include "strutil.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int str_to_ll(const char *s, long long min, long long max, long long *value_r, const char **error_r)
{
	char *end;
	long long v;

	/* Digits with an optional '-', like every other number we parse. */
	if (*s == '\0' || isspace((unsigned char)*s) || *s == '+') {
		*error_r = "not a number";
		return -1;
	}
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end != '\0') {
		*error_r = "not a number";
		return -1;
	}
	if (errno == ERANGE || v < min || v > max) {
		*error_r = "out of range";
		return -1;
	}
	*value_r = v;
	return 0;
}

struct unit {
	const char *suffix;
	long long factor;
};

/* parse_with_unit - a non-negative number followed by one of the units. */
static int parse_with_unit(const char *s, const struct unit *units, size_t nunits,
			   long long *value_r, const char **error_r)
{
	char *end;
	unsigned long long v;

	if (!isdigit((unsigned char)*s)) {
		*error_r = "not a number";
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE || v > LLONG_MAX) {
		*error_r = "out of range";
		return -1;
	}
	for (size_t i = 0; i < nunits; i++) {
		if (strcmp(end, units[i].suffix) == 0) {
			if (v > (unsigned long long)(LLONG_MAX / units[i].factor)) {
				*error_r = "out of range";
				return -1;
			}
			*value_r = (long long)v * units[i].factor;
			return 0;
		}
	}
	*error_r = "unknown unit";
	return -1;
}

int str_to_duration(const char *s, long long *seconds_r, const char **error_r)
{
	static const struct unit units[] = {
		{ "", 1 }, { "s", 1 }, { "m", 60 }, { "h", 3600 }, { "d", 86400 }, { "w", 604800 },
	};
	if (parse_with_unit(s, units, sizeof units / sizeof units[0], seconds_r, error_r) < 0) {
		if (strcmp(*error_r, "unknown unit") == 0)
			*error_r = "unknown unit (use s, m, h, d or w)";
		return -1;
	}
	return 0;
}

int str_to_size(const char *s, long long *bytes_r, const char **error_r)
{
	static const struct unit units[] = {
		{ "", 1 }, { "k", 1024 }, { "K", 1024 }, { "KiB", 1024 },
		{ "m", 1024 * 1024 }, { "M", 1024 * 1024 }, { "MiB", 1024 * 1024 },
		{ "g", 1024LL * 1024 * 1024 }, { "G", 1024LL * 1024 * 1024 }, { "GiB", 1024LL * 1024 * 1024 },
	};
	if (parse_with_unit(s, units, sizeof units / sizeof units[0], bytes_r, error_r) < 0) {
		if (strcmp(*error_r, "unknown unit") == 0)
			*error_r = "unknown unit (use k, M or G)";
		return -1;
	}
	return 0;
}

int str_to_bool(const char *s, bool *value_r, const char **error_r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*value_r = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*value_r = false;
			return 0;
		}
	}
	*error_r = "not a boolean (use yes or no)";
	return -1;
}

char *str_trim(char *s)
{
	size_t n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = '\0';
	return s;
}

bool str_has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

size_t str_text_length(const char *line, size_t len)
{
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	return len;
}

int str_split_ws(char *s, char **words, int max)
{
	int n = 0;

	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0')
			return n;
		if (n == max)
			return -1;
		words[n++] = s;
		while (*s != '\0' && *s != ' ' && *s != '\t')
			s++;
		if (*s != '\0')
			*s++ = '\0';
	}
}
