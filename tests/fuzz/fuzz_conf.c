#include "config.h"
/* fuzz_conf.c - libFuzzer target for the "key = value" parser (libutil/conf.c).
 *
 * conf_load takes a path, so each input is written to one temporary file
 * (fixed name with the pid, created once, rewritten every run). The file
 * is loaded twice: against yubin.conf's own table (params_table) and
 * against a test table with one key of every type. Checks, with abort()
 * on any violation:
 *   - an error is a "file:line: message" (or "file: message") string;
 *   - after a successful load, every value formats with conf_format to
 *     text that conf_set accepts and that formats the same again;
 *   - conf_is_default agrees with comparing against conf_defaults.
 * Everything is freed on every run so LeakSanitizer stays quiet.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../libmail/params.h"
#include "../../libutil/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                   \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "fuzz_conf: check failed: %s (line %d)\n", #cond, \
				__LINE__);                                            \
			abort();                                                      \
		}                                                                     \
	} while (0)

/* One key of every type, as a program's table would have. */
struct fuzz_conf {
	char *name;
	char *spool;
	char *mode;
	long long count;
	bool verbose;
	long long timeout;
	long long limit;
	char *empty_default;
};

#define F(field) offsetof(struct fuzz_conf, field)

static const struct conf_key fuzz_keys[] = {
	{ "name", CONF_STRING, "anon", 0, 0, NULL, F(name), "a name" },
	{ "spool", CONF_PATH, "/var/spool/test", 0, 0, NULL, F(spool), "a directory" },
	{ "mode", CONF_ENUM, "fast", 0, 0, "fast|safe|off", F(mode), "how to run" },
	{ "count", CONF_INT, "10", -1000, 1000000, NULL, F(count), "how many" },
	{ "verbose", CONF_BOOL, "no", 0, 0, NULL, F(verbose), "say more" },
	{ "timeout", CONF_DURATION, "30s", 0, 4LL * 365 * 86400, NULL, F(timeout), "how long" },
	{ "limit", CONF_SIZE, "1M", 0, 64LL * 1024 * 1024 * 1024, NULL, F(limit), "how big" },
	{ "empty_default", CONF_STRING, "", 0, 0, NULL, F(empty_default), "starts empty" },
};

static const struct conf_table fuzz_table = { fuzz_keys, sizeof fuzz_keys / sizeof fuzz_keys[0] };

static char temp_path[64];

static void remove_temp(void)
{
	if (temp_path[0] != '\0')
		unlink(temp_path);
}

/* write_temp - put the input in the temporary file. */
static void write_temp(const uint8_t *data, size_t size)
{
	int fd;

	if (temp_path[0] == '\0') {
		snprintf(temp_path, sizeof temp_path, "/tmp/fuzz_conf.%ld.conf", (long)getpid());
		atexit(remove_temp);
	}
	fd = open(temp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		perror(temp_path);
		abort();
	}
	while (size > 0) {
		ssize_t n = write(fd, data, size);

		if (n <= 0) {
			perror(temp_path);
			abort();
		}
		data += n;
		size -= (size_t)n;
	}
	close(fd);
}

/* Room for any of the structs the tables describe. */
union conf_space {
	struct fuzz_conf f;
	struct yb_params p;
};

/* check_round_trip - every key's formatted value parses back to itself. */
static void check_round_trip(const struct conf_table *t, const void *c)
{
	union conf_space again, defaults;

	conf_defaults(t, &again);
	conf_defaults(t, &defaults);
	for (size_t i = 0; i < t->count; i++) {
		const struct conf_key *k = &t->keys[i];
		char *text = conf_format(k, c);
		char *text2, *def_text;
		const char *error = NULL;

		if (conf_set(t, &again, k->name, text, &error) != 0) {
			fprintf(stderr, "fuzz_conf: %s: formatted value \"%s\" does not parse: %s\n", k->name,
				text, error);
			abort();
		}
		text2 = conf_format(k, &again);
		if (strcmp(text, text2) != 0) {
			fprintf(stderr, "fuzz_conf: %s: \"%s\" formats as \"%s\" after parsing\n", k->name, text,
				text2);
			abort();
		}
		/* default-ness follows the value (formatting is one-to-one) */
		def_text = conf_format(k, &defaults);
		CHECK(conf_is_default(k, c) == (strcmp(text, def_text) == 0));
		CHECK(conf_is_default(k, &again) == conf_is_default(k, c));
		free(def_text);
		free(text);
		free(text2);
	}
	conf_free(t, &again);
	conf_free(t, &defaults);
}

/* enum_allows - value is one of the '|'-separated choices (our own copy). */
static bool enum_allows(const char *choices, const char *value)
{
	size_t vlen = strlen(value);

	for (const char *p = choices;;) {
		const char *bar = strchr(p, '|');
		size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);

		if (len == vlen && strncmp(p, value, len) == 0)
			return true;
		if (bar == NULL)
			return false;
		p = bar + 1;
	}
}

/* load - conf_load against t; check the result and free everything. */
static void load(const struct conf_table *t)
{
	union conf_space c;
	char *error = NULL;
	int rc = conf_load(t, &c, temp_path, &error);

	if (rc == 0) {
		CHECK(error == NULL);
		for (size_t i = 0; i < t->count; i++) {
			const struct conf_key *k = &t->keys[i];
			const void *field = (const char *)&c + k->offset;
			const char *s;
			long long n;

			switch (k->type) {
			case CONF_PATH:
				s = *(char *const *)field;
				CHECK(s != NULL && s[0] == '/');
				break;
			case CONF_STRING:
				s = *(char *const *)field;
				CHECK(s != NULL && strchr(s, '\n') == NULL);
				break;
			case CONF_ENUM:
				s = *(char *const *)field;
				CHECK(s != NULL && enum_allows(k->choices, s));
				break;
			case CONF_INT:
			case CONF_DURATION:
			case CONF_SIZE:
				n = *(const long long *)field;
				CHECK(n >= k->min && n <= k->max);
				break;
			case CONF_BOOL:
				break;
			}
		}
		check_round_trip(t, &c);
	} else {
		size_t plen = strlen(temp_path);

		CHECK(rc == -1);
		CHECK(error != NULL);
		/* "path:line: message" or "path: message" */
		CHECK(strncmp(error, temp_path, plen) == 0 && error[plen] == ':');
		free(error);
	}
	conf_free(t, &c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	write_temp(data, size);
	load(&fuzz_table);
	load(&params_table);
	return 0;
}
