/* svctab.c - parse and validate master.conf. */
#include "config.h"
#include "svctab.h"
#include "buf.h"
#include "mem.h"
#include "strutil.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SVCTAB_LINE_MAX 4096
#define SVCTAB_MAX_WORDS 64
#define SVCTAB_MAX_PROCS 1000

/* expand - replace ${name} with lookup(name); new string or NULL + error. */
static char *expand(const char *word, svc_lookup_fn *lookup, void *context, char **error_r)
{
	struct buf out = BUF_INIT;
	const char *p = word;

	while (*p != '\0') {
		if (p[0] == '$' && p[1] == '{') {
			const char *end = strchr(p + 2, '}');
			char *name;
			const char *value;

			if (end == NULL) {
				*error_r = xasprintf("unterminated \"${\" in \"%s\"", word);
				buf_free(&out);
				return NULL;
			}
			name = xstrndup(p + 2, (size_t)(end - p - 2));
			value = lookup != NULL ? lookup(name, context) : NULL;
			if (value == NULL) {
				*error_r = xasprintf("unknown variable \"${%s}\"", name);
				free(name);
				buf_free(&out);
				return NULL;
			}
			free(name);
			buf_append_str(&out, value);
			p = end + 1;
		} else {
			buf_append_byte(&out, (uint8_t)*p++);
		}
	}
	return buf_steal(&out);
}

int svctab_parse_inet(const char *spec, char **host_r, int *port_r, const char **error_r)
{
	const char *colon;
	long long port;
	size_t hostlen;

	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');

		if (close == NULL || close[1] != ':') {
			*error_r = "expected [address]:port";
			return -1;
		}
		colon = close + 1;
		hostlen = (size_t)(close - spec - 1);
		spec++;
	} else {
		colon = strrchr(spec, ':');
		if (colon == NULL) {
			*error_r = "expected host:port";
			return -1;
		}
		if (memchr(spec, ':', (size_t)(colon - spec)) != NULL) {
			*error_r = "write IPv6 addresses as [address]:port";
			return -1;
		}
		hostlen = (size_t)(colon - spec);
	}
	if (hostlen == 0) {
		*error_r = "missing host (use * for every address)";
		return -1;
	}
	if (str_to_ll(colon + 1, 1, 65535, &port, error_r) < 0) {
		*error_r = "bad port (1 to 65535)";
		return -1;
	}
	*port_r = (int)port;
	*host_r = (hostlen == 1 && spec[0] == '*') ? NULL : xstrndup(spec, hostlen);
	return 0;
}

/* split_list - split a comma-separated list into a NULL-terminated array. */
static char **split_list(const char *s, size_t *count_r)
{
	size_t n = 1;
	char **v;
	const char *p = s;

	for (const char *q = s; *q; q++)
		if (*q == ',')
			n++;
	v = xcalloc(n + 1, sizeof *v);
	for (size_t i = 0; i < n; i++) {
		const char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);

		v[i] = xstrndup(p, len);
		p = comma != NULL ? comma + 1 : p + len;
	}
	*count_r = n;
	return v;
}

static void free_strv(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static void entry_free(struct svc_entry *e)
{
	free(e->name);
	free_strv(e->listen);
	free(e->user);
	free(e->chroot_dir);
	free(e->program);
	free_strv(e->argv);
	memset(e, 0, sizeof *e);
}

void svctab_free(struct svc_table *table)
{
	for (size_t i = 0; i < table->count; i++)
		entry_free(&table->entries[i]);
	free(table->entries);
	table->entries = NULL;
	table->count = 0;
}

static bool valid_name(const char *s)
{
	if (*s == '\0' || strlen(s) > 32)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
			return false;
	return true;
}

/* check_listen - validate each listen address of an entry. */
static int check_listen(struct svc_entry *e, char **error_r)
{
	for (size_t i = 0; i < e->listen_count; i++) {
		const char *a = e->listen[i];

		if (e->type == SVC_INET) {
			char *host;
			int port;
			const char *error;

			if (svctab_parse_inet(a, &host, &port, &error) < 0) {
				*error_r = xasprintf("listen address \"%s\": %s", a, error);
				return -1;
			}
			free(host);
		} else if (a[0] != '/' && !valid_name(strncmp(a, SVC_PUBLIC_PREFIX, strlen(SVC_PUBLIC_PREFIX)) == 0 ?
							      a + strlen(SVC_PUBLIC_PREFIX) :
						      strncmp(a, SVC_MAILBOX_PREFIX, strlen(SVC_MAILBOX_PREFIX)) == 0 ?
							      a + strlen(SVC_MAILBOX_PREFIX) :
							      a)) {
			/* A plain name lives in queue_directory/private (the mail
			 * system only); "public/NAME" in queue_directory/public,
			 * which every local user may enter (sendmail's pickup);
			 * "mailbox/NAME" in mail_root/.yubin, which only the
			 * mailbox owner enters (pop3d and imapd, jailed there). */
			*error_r = xasprintf("unix socket \"%s\": use a plain name, public/NAME, mailbox/NAME or an "
					     "absolute path", a);
			return -1;
		} else if (strlen(a) >= 100) {
			*error_r = xasprintf("unix socket path \"%s\" is too long", a);
			return -1;
		}
	}
	return 0;
}

/* parse_line - fill e from the words of one line; error text on failure. */
static int parse_line(char **w, int n, svc_lookup_fn *lookup, void *context, struct svc_entry *e,
		      char **error_r)
{
	char *x[SVCTAB_MAX_WORDS];
	long long procs;
	const char *error;
	int i;

	if (n < 7) {
		*error_r = xasprintf("expected at least 7 columns (name type listen user chroot procs program), found %d", n);
		return -1;
	}
	for (i = 0; i < n; i++) {
		x[i] = expand(w[i], lookup, context, error_r);
		if (x[i] == NULL) {
			while (i-- > 0)
				free(x[i]);
			return -1;
		}
	}
	e->name = x[0];
	if (!valid_name(e->name)) {
		*error_r = xasprintf("bad service name \"%s\" (letters, digits, - and _; at most 32)", e->name);
		goto fail;
	}
	if (strcmp(x[1], "inet") == 0) {
		e->type = SVC_INET;
	} else if (strcmp(x[1], "unix") == 0) {
		e->type = SVC_UNIX;
	} else {
		*error_r = xasprintf("service %s: bad type \"%s\" (inet or unix)", e->name, x[1]);
		goto fail;
	}
	if (strcmp(x[2], "-") == 0) {
		e->listen = xcalloc(1, sizeof *e->listen);
		e->listen_count = 0;
	} else {
		e->listen = split_list(x[2], &e->listen_count);
	}
	if (e->type == SVC_INET && e->listen_count == 0) {
		*error_r = xasprintf("service %s: an inet service needs a listen address", e->name);
		goto fail;
	}
	if (check_listen(e, error_r) < 0) {
		char *inner = *error_r;

		*error_r = xasprintf("service %s: %s", e->name, inner);
		free(inner);
		goto fail;
	}
	e->user = xstrdup(x[3]);
	if (strcmp(x[4], "-") != 0) {
		if (x[4][0] != '/') {
			*error_r = xasprintf("service %s: chroot \"%s\" must be an absolute path or -", e->name, x[4]);
			goto fail;
		}
		e->chroot_dir = xstrdup(x[4]);
	}
	if (str_to_ll(x[5], 1, SVCTAB_MAX_PROCS, &procs, &error) < 0) {
		*error_r = xasprintf("service %s: process count \"%s\": %s (1 to %d)", e->name, x[5], error,
				     SVCTAB_MAX_PROCS);
		goto fail;
	}
	e->procs = (int)procs;
	e->program = xstrdup(x[6]);
	e->argc = (size_t)(n - 7);
	e->argv = xcalloc(e->argc + 1, sizeof *e->argv);
	for (i = 7; i < n; i++)
		e->argv[i - 7] = x[i];
	for (i = 1; i < 7; i++)
		free(x[i]);
	return 0;
fail:
	/* x[0] is e->name; the caller's entry_free releases it and the rest of e. */
	for (i = 1; i < n; i++)
		free(x[i]);
	return -1;
}

int svctab_load(const char *path, svc_lookup_fn *lookup, void *context, struct svc_table *table,
		char **error_r)
{
	FILE *fp = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0;
	int rc = 0;

	table->entries = NULL;
	table->count = 0;
	if (fp == NULL) {
		*error_r = xasprintf("%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	while ((len = getline(&line, &cap, fp)) >= 0) {
		char *words[SVCTAB_MAX_WORDS];
		char *p;
		int n;
		struct svc_entry e = { 0 };
		char *error = NULL;

		lineno++;
		if (str_text_length(line, (size_t)len) > SVCTAB_LINE_MAX ||
		    strlen(line) != (size_t)len) {
			*error_r = xasprintf("%s:%d: line too long or holds a NUL", path, lineno);
			rc = -1;
			break;
		}
		p = str_trim(line);
		if (*p == '\0' || *p == '#')
			continue;
		n = str_split_ws(p, words, SVCTAB_MAX_WORDS);
		if (n < 0) {
			*error_r = xasprintf("%s:%d: more than %d columns", path, lineno, SVCTAB_MAX_WORDS);
			rc = -1;
			break;
		}
		if (parse_line(words, n, lookup, context, &e, &error) < 0) {
			*error_r = xasprintf("%s:%d: %s", path, lineno, error);
			free(error);
			entry_free(&e);
			rc = -1;
			break;
		}
		if (svctab_find(table, e.name) != NULL) {
			*error_r = xasprintf("%s:%d: service %s is already defined at line %d", path, lineno,
					     e.name, svctab_find(table, e.name)->line);
			entry_free(&e);
			rc = -1;
			break;
		}
		e.line = lineno;
		table->entries = xreallocarray(table->entries, table->count + 1, sizeof *table->entries);
		table->entries[table->count++] = e;
	}
	free(line);
	fclose(fp);
	if (rc < 0)
		svctab_free(table);
	return rc;
}

const struct svc_entry *svctab_find(const struct svc_table *table, const char *name)
{
	for (size_t i = 0; i < table->count; i++)
		if (strcmp(table->entries[i].name, name) == 0)
			return &table->entries[i];
	return NULL;
}

bool svc_entry_same_listen(const struct svc_entry *a, const struct svc_entry *b)
{
	if (a->type != b->type || a->listen_count != b->listen_count)
		return false;
	for (size_t i = 0; i < a->listen_count; i++)
		if (strcmp(a->listen[i], b->listen[i]) != 0)
			return false;
	return true;
}
