/* conf.h - the table-driven parser for "key = value" files.
 *
 * A program describes its settings in ONE table of struct conf_key
 * (name, type, default, limits, where the value lives in the caller's
 * struct, one-line doc). The parser, "mailctl config show" and the
 * documentation all read that table. Errors come back as "file:line: text".
 *
 * File syntax: one "key = value" per line; blank lines and lines whose
 * first non-blank character is '#' are ignored; blanks around key and value
 * are dropped. A key may appear once. Unknown keys are errors.
 */
#ifndef YB_CONF_H
#define YB_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum conf_type {
	CONF_STRING,   /* any text; stored as char * */
	CONF_PATH,     /* absolute path; stored as char * */
	CONF_ENUM,     /* one of the '|'-separated choices; stored as char * */
	CONF_INT,      /* decimal integer within [min, max]; long long */
	CONF_BOOL,     /* yes/no; bool */
	CONF_DURATION, /* seconds, with unit s/m/h/d/w; long long */
	CONF_SIZE,     /* bytes, with unit k/M/G; long long */
};

struct conf_key {
	const char *name;
	enum conf_type type;
	const char *def;      /* default, written as in the file */
	long long min, max;   /* numeric types: inclusive limits */
	const char *choices;  /* CONF_ENUM: "a|b|c" */
	size_t offset;        /* where the value lives in the caller's struct */
	const char *doc;      /* one line: what the key means */
};

struct conf_table {
	const struct conf_key *keys;
	size_t count;
};

/* conf_defaults - fill every field of out with its default. out must hold
 * no values (fresh memory, or after conf_free). */
void conf_defaults(const struct conf_table *t, void *out);

/* conf_load - defaults, then the file at path (out as for conf_defaults;
 * call conf_free afterwards even on error). On error returns -1 and
 * sets *error_r to a new "file:line: message" string (free it). */
int conf_load(const struct conf_table *t, void *out, const char *path, char **error_r);

/* conf_set - set one key from text (file values, -o overrides). */
int conf_set(const struct conf_table *t, void *out, const char *name, const char *value,
	       const char **error_r);

/* conf_free - release the strings held in out. */
void conf_free(const struct conf_table *t, void *out);

const struct conf_key *conf_find(const struct conf_table *t, const char *name);

/* conf_format - the value of key in out, as it would be written in the file. */
char *conf_format(const struct conf_key *key, const void *out);

/* conf_is_default - whether the value equals the key's default. */
bool conf_is_default(const struct conf_key *key, const void *out);

/* conf_type_name - "string", "duration", ... for docs. */
const char *conf_type_name(enum conf_type type);

#endif
