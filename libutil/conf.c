/* conf.c - parse "key = value" files against a key table. */
#include "config.h"
#include "conf.h"
#include "mem.h"
#include "strutil.h"
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CONF_LINE_MAX 4096

static char **field_str(const struct conf_key *k, void *out)
{
	return (char **)((char *)out + k->offset);
}

static long long *field_ll(const struct conf_key *k, void *out)
{
	return (long long *)((char *)out + k->offset);
}

static bool *field_bool(const struct conf_key *k, void *out)
{
	return (bool *)((char *)out + k->offset);
}

const char *conf_type_name(enum conf_type type)
{
	static const char *const names[] = {
		[CONF_STRING] = "string", [CONF_PATH] = "path", [CONF_ENUM] = "choice",
		[CONF_INT] = "integer", [CONF_BOOL] = "boolean", [CONF_DURATION] = "duration",
		[CONF_SIZE] = "size",
	};
	return names[type];
}

const struct conf_key *conf_find(const struct conf_table *t, const char *name)
{
	for (size_t i = 0; i < t->count; i++)
		if (strcmp(t->keys[i].name, name) == 0)
			return &t->keys[i];
	return NULL;
}

/* enum_allows - whether value is one of the '|'-separated choices. */
static bool enum_allows(const char *choices, const char *value)
{
	size_t vlen = strlen(value);
	const char *p = choices;

	while (*p != '\0') {
		const char *bar = strchr(p, '|');
		size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);

		if (len == vlen && strncmp(p, value, len) == 0)
			return true;
		if (bar == NULL)
			break;
		p = bar + 1;
	}
	return false;
}

/* parse_value - check value against the key's type and limits, then store it. */
static int parse_value(const struct conf_key *k, void *out, const char *value, const char **error_r)
{
	long long n;
	bool b;

	switch (k->type) {
	case CONF_PATH:
		if (value[0] != '/') {
			*error_r = "must be an absolute path";
			return -1;
		}
		/* fall through */
	case CONF_STRING:
		free(*field_str(k, out));
		*field_str(k, out) = xstrdup(value);
		return 0;
	case CONF_ENUM:
		if (!enum_allows(k->choices, value)) {
			*error_r = "not one of the allowed values";
			return -1;
		}
		free(*field_str(k, out));
		*field_str(k, out) = xstrdup(value);
		return 0;
	case CONF_BOOL:
		if (str_to_bool(value, &b, error_r) < 0)
			return -1;
		*field_bool(k, out) = b;
		return 0;
	case CONF_INT:
		if (str_to_ll(value, LLONG_MIN, LLONG_MAX, &n, error_r) < 0)
			return -1;
		break;
	case CONF_DURATION:
		if (str_to_duration(value, &n, error_r) < 0)
			return -1;
		break;
	case CONF_SIZE:
		if (str_to_size(value, &n, error_r) < 0)
			return -1;
		break;
	}
	if (n < k->min || n > k->max) {
		*error_r = "out of range";
		return -1;
	}
	*field_ll(k, out) = n;
	return 0;
}

int conf_set(const struct conf_table *t, void *out, const char *name, const char *value,
	       const char **error_r)
{
	const struct conf_key *k = conf_find(t, name);

	if (k == NULL) {
		*error_r = "unknown key";
		return -1;
	}
	return parse_value(k, out, value, error_r);
}

void conf_defaults(const struct conf_table *t, void *out)
{
	for (size_t i = 0; i < t->count; i++) {
		const struct conf_key *k = &t->keys[i];
		const char *error;

		/* out may be uninitialised: never free what is there. */
		if (k->type == CONF_STRING || k->type == CONF_PATH || k->type == CONF_ENUM)
			*field_str(k, out) = NULL;
		if (parse_value(k, out, k->def, &error) < 0)
			log_panic("config key %s: default \"%s\": %s", t->keys[i].name, t->keys[i].def, error);
	}
}

void conf_free(const struct conf_table *t, void *out)
{
	for (size_t i = 0; i < t->count; i++) {
		const struct conf_key *k = &t->keys[i];

		if (k->type == CONF_STRING || k->type == CONF_PATH || k->type == CONF_ENUM)
			xfree_ptr(field_str(k, out));
	}
}

/* describe_limits - the allowed range or choices, for error messages. */
static char *describe_limits(const struct conf_key *k)
{
	switch (k->type) {
	case CONF_ENUM:
		return xasprintf(" (one of: %s)", k->choices);
	case CONF_INT:
		return xasprintf(" (%lld to %lld)", k->min, k->max);
	case CONF_DURATION:
		return xasprintf(" (%llds to %llds)", k->min, k->max);
	case CONF_SIZE:
		return xasprintf(" (%lld to %lld bytes)", k->min, k->max);
	default:
		return xstrdup("");
	}
}

int conf_load(const struct conf_table *t, void *out, const char *path, char **error_r)
{
	FILE *fp;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0;
	/* The line where each key was set, to report duplicates. */
	int *seen = xcalloc(t->count, sizeof *seen);
	int rc = 0;

	conf_defaults(t, out);
	fp = fopen(path, "re");
	if (fp == NULL) {
		*error_r = xasprintf("%s: cannot open: %s", path, strerror(errno));
		free(seen);
		return -1;
	}
	while (rc == 0 && (len = getline(&line, &cap, fp)) >= 0) {
		char *p, *eq, *key, *value;
		const struct conf_key *k;
		const char *error;

		lineno++;
		if (str_text_length(line, (size_t)len) > CONF_LINE_MAX) {
			*error_r = xasprintf("%s:%d: line longer than %d characters", path, lineno, CONF_LINE_MAX);
			rc = -1;
			break;
		}
		if (strlen(line) != (size_t)len) {
			*error_r = xasprintf("%s:%d: NUL character in line", path, lineno);
			rc = -1;
			break;
		}
		p = str_trim(line);
		if (*p == '\0' || *p == '#')
			continue;
		eq = strchr(p, '=');
		if (eq == NULL) {
			*error_r = xasprintf("%s:%d: expected \"key = value\"", path, lineno);
			rc = -1;
			break;
		}
		*eq = '\0';
		key = str_trim(p);
		value = str_trim(eq + 1);
		k = conf_find(t, key);
		if (k == NULL) {
			*error_r = xasprintf("%s:%d: unknown key \"%s\"", path, lineno, key);
			rc = -1;
			break;
		}
		if (seen[k - t->keys] != 0) {
			*error_r = xasprintf("%s:%d: %s is already set at line %d", path, lineno, key,
					     seen[k - t->keys]);
			rc = -1;
			break;
		}
		seen[k - t->keys] = lineno;
		if (parse_value(k, out, value, &error) < 0) {
			char *limits = describe_limits(k);

			*error_r = xasprintf("%s:%d: %s = %s: %s%s", path, lineno, key, value, error, limits);
			free(limits);
			rc = -1;
		}
	}
	if (rc == 0 && ferror(fp)) {
		*error_r = xasprintf("%s: read error: %s", path, strerror(errno));
		rc = -1;
	}
	free(line);
	free(seen);
	fclose(fp);
	return rc;
}

/* format_scaled - print n with the largest unit that divides it exactly. */
static char *format_scaled(long long n, const char *const *units, const long long *factors, size_t count)
{
	for (size_t i = count; i-- > 1;)
		if (n != 0 && n % factors[i] == 0)
			return xasprintf("%lld%s", n / factors[i], units[i]);
	return xasprintf("%lld%s", n, units[0]);
}

char *conf_format(const struct conf_key *k, const void *out)
{
	static const char *const dur_units[] = { "s", "m", "h", "d", "w" };
	static const long long dur_factors[] = { 1, 60, 3600, 86400, 604800 };
	static const char *const size_units[] = { "", "k", "M", "G" };
	static const long long size_factors[] = { 1, 1024, 1024 * 1024, 1024LL * 1024 * 1024 };
	void *o = (void *)(uintptr_t)out;

	switch (k->type) {
	case CONF_STRING:
	case CONF_PATH:
	case CONF_ENUM:
		return xstrdup(*field_str(k, o));
	case CONF_BOOL:
		return xstrdup(*field_bool(k, o) ? "yes" : "no");
	case CONF_INT:
		return xasprintf("%lld", *field_ll(k, o));
	case CONF_DURATION:
		return format_scaled(*field_ll(k, o), dur_units, dur_factors, 5);
	case CONF_SIZE:
		return format_scaled(*field_ll(k, o), size_units, size_factors, 4);
	}
	log_panic("conf_format: bad type %d", (int)k->type);
}

bool conf_is_default(const struct conf_key *k, const void *out)
{
	/* Compare through a scratch struct holding only this key's default. */
	union {
		char *s;
		long long n;
		bool b;
	} scratch = { 0 };
	struct conf_key shifted = *k;
	const char *error;
	bool same;
	void *o = (void *)(uintptr_t)out;

	shifted.offset = 0;
	if (parse_value(&shifted, &scratch, k->def, &error) < 0)
		log_panic("config key %s: bad default", k->name);
	switch (k->type) {
	case CONF_STRING:
	case CONF_PATH:
	case CONF_ENUM:
		same = strcmp(scratch.s, *field_str(k, o)) == 0;
		free(scratch.s);
		return same;
	case CONF_BOOL:
		return scratch.b == *field_bool(k, o);
	default:
		return scratch.n == *field_ll(k, o);
	}
}
