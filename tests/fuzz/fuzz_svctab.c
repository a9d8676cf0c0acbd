#include "config.h"
/* fuzz_svctab.c - libFuzzer target for the master.conf parser (libutil/svctab.c).
 *
 * svctab_load takes a path, so each input is written to one temporary file
 * (fixed name with the pid, created once, rewritten every run). ${key}
 * lookups answer from a small fixed table. Checks, with abort() on any
 * violation, that a loaded table obeys every rule svctab.h states (unique
 * valid names, parseable listen addresses, absolute chroot, 1..1000
 * processes, NULL-terminated lists), and that an error is a
 * "file:line: message" string. Everything is freed on every run.
 */
#include <ctype.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../libutil/svctab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                     \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "fuzz_svctab: check failed: %s (line %d)\n", #cond, \
				__LINE__);                                              \
			abort();                                                        \
		}                                                                       \
	} while (0)

static const char *const vars[][2] = {
	{ "queue_directory", "/var/spool/yubin" },
	{ "port", "2525" },
	{ "empty", "" },
	{ "user", "yubin" },
	{ "spaces", "a b" },
	{ "nested", "${port}" },
};

static const char *lookup(const char *name, void *context)
{
	(void)context;
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
		if (strcmp(vars[i][0], name) == 0)
			return vars[i][1];
	return NULL;
}

static char temp_path[64];

static void remove_temp(void)
{
	if (temp_path[0] != '\0')
		unlink(temp_path);
}

static void write_temp(const uint8_t *data, size_t size)
{
	int fd;

	if (temp_path[0] == '\0') {
		snprintf(temp_path, sizeof temp_path, "/tmp/fuzz_svctab.%ld.conf", (long)getpid());
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

static bool valid_name(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 32)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
			return false;
	return true;
}

static void check_entry(const struct svc_table *t, const struct svc_entry *e)
{
	CHECK(e->name != NULL && valid_name(e->name));
	CHECK(svctab_find(t, e->name) == e); /* names are unique */
	CHECK(e->type == SVC_INET || e->type == SVC_UNIX);
	CHECK(e->listen != NULL && e->listen[e->listen_count] == NULL);
	if (e->type == SVC_INET)
		CHECK(e->listen_count > 0);
	for (size_t i = 0; i < e->listen_count; i++) {
		const char *a = e->listen[i];

		CHECK(a != NULL);
		if (e->type == SVC_INET) {
			char *host = NULL;
			int port = 0;
			const char *error = NULL;

			CHECK(svctab_parse_inet(a, &host, &port, &error) == 0);
			CHECK(port >= 1 && port <= 65535);
			CHECK(host == NULL || host[0] != '\0');
			free(host);
		} else {
			/* an absolute path, a plain name (private/), or public/NAME */
			CHECK(a[0] == '/' || (strchr(a, '/') == NULL && valid_name(a)) ||
			      (strncmp(a, "public/", 7) == 0 && strchr(a + 7, '/') == NULL && valid_name(a + 7)));
			CHECK(strlen(a) < 100);
		}
	}
	CHECK(svc_entry_same_listen(e, e));
	CHECK(e->user != NULL);
	CHECK(e->chroot_dir == NULL || e->chroot_dir[0] == '/');
	CHECK(e->procs >= 1 && e->procs <= 1000);
	CHECK(e->program != NULL);
	CHECK(e->argv != NULL && e->argv[e->argc] == NULL);
	for (size_t i = 0; i < e->argc; i++)
		CHECK(e->argv[i] != NULL);
	CHECK(e->line >= 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct svc_table t;
	char *error = NULL;
	int rc;

	write_temp(data, size);
	rc = svctab_load(temp_path, lookup, NULL, &t, &error);
	if (rc == 0) {
		CHECK(error == NULL);
		for (size_t i = 0; i < t.count; i++) {
			check_entry(&t, &t.entries[i]);
			if (i > 0)
				CHECK(t.entries[i].line > t.entries[i - 1].line);
		}
	} else {
		size_t plen = strlen(temp_path);

		CHECK(rc == -1);
		CHECK(error != NULL);
		CHECK(strncmp(error, temp_path, plen) == 0 && error[plen] == ':');
		CHECK(t.entries == NULL && t.count == 0);
		free(error);
	}
	svctab_free(&t);
	return 0;
}
