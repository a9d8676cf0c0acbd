/* unit.h - helpers shared by the unit tests: temporary files and
 * directories, and catching log_panic/log_fatal through the log hook.
 *
 * Include after config.h and the cmocka headers. Every helper is static
 * inline so a test program that does not use one gets no warning. */
#ifndef YB_UNIT_H
#define YB_UNIT_H

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../libutil/log.h"

/* unit_tmpdir - where temporary files go: $TMPDIR or /tmp. */
static inline const char *unit_tmpdir(void)
{
	const char *dir = getenv("TMPDIR");

	return dir != NULL && dir[0] == '/' ? dir : "/tmp";
}

/* Every temporary file and directory is also remembered here, so that a
 * test that fails half-way (cmocka longjmps out of it) leaves nothing
 * behind: what is still listed at exit is removed, files first, then the
 * (then empty) directories. */
#define UNIT_TEMP_MAX 64

static inline char **unit_temp_list(void)
{
	static char *list[UNIT_TEMP_MAX];

	return list;
}

static inline void unit_temp_cleanup(void)
{
	char **list = unit_temp_list();

	for (size_t i = 0; i < UNIT_TEMP_MAX; i++)
		if (list[i] != NULL && unlink(list[i]) == 0)
			list[i] = NULL;
	for (size_t i = 0; i < UNIT_TEMP_MAX; i++) {
		if (list[i] != NULL)
			rmdir(list[i]);
		list[i] = NULL;
	}
}

/* unit_temp_track - remember path (on) or forget it (off). */
static inline void unit_temp_track(char *path, bool on)
{
	static bool registered;
	char **list = unit_temp_list();

	if (!registered) {
		atexit(unit_temp_cleanup);
		registered = true;
	}
	for (size_t i = 0; i < UNIT_TEMP_MAX; i++) {
		if (on && list[i] == NULL) {
			list[i] = path;
			return;
		}
		if (!on && list[i] == path) {
			list[i] = NULL;
			return;
		}
	}
	if (on)
		fail_msg("more than %d temporary files at once", UNIT_TEMP_MAX);
}

/* unit_write_all - write len bytes to fd; fails the test on error. */
static inline void unit_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

/* unit_write_temp - a new temporary file holding data[0..len); returns its
 * path (new memory; give it to unit_remove_temp). */
static inline char *unit_write_temp(const void *data, size_t len)
{
	size_t size = strlen(unit_tmpdir()) + sizeof "/yb-unit-XXXXXX";
	char *path = malloc(size);
	int fd;

	assert_non_null(path);
	snprintf(path, size, "%s/yb-unit-XXXXXX", unit_tmpdir());
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unit_temp_track(path, true);
	unit_write_all(fd, data, len);
	assert_int_equal(close(fd), 0);
	return path;
}

/* unit_write_temp_str - unit_write_temp for a C string. */
static inline char *unit_write_temp_str(const char *text)
{
	return unit_write_temp(text, strlen(text));
}

/* unit_remove_temp - unlink the file and free its path; accepts NULL. */
static inline void unit_remove_temp(char *path)
{
	if (path == NULL)
		return;
	unit_temp_track(path, false);
	assert_int_equal(unlink(path), 0);
	free(path);
}

/* unit_make_temp_dir - a new empty directory; returns its path (new memory). */
static inline char *unit_make_temp_dir(void)
{
	size_t size = strlen(unit_tmpdir()) + sizeof "/yb-unit-XXXXXX";
	char *path = malloc(size);

	assert_non_null(path);
	snprintf(path, size, "%s/yb-unit-XXXXXX", unit_tmpdir());
	assert_non_null(mkdtemp(path));
	unit_temp_track(path, true);
	return path;
}

/* unit_write_file - create or replace dir/name with the text; returns the
 * full path (new memory; give it to unit_remove_temp). */
static inline char *unit_write_file(const char *dir, const char *name, const char *text)
{
	size_t size = strlen(dir) + 1 + strlen(name) + 1;
	char *path = malloc(size);
	int fd;

	assert_non_null(path);
	snprintf(path, size, "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	unit_temp_track(path, true);
	unit_write_all(fd, text, strlen(text));
	assert_int_equal(close(fd), 0);
	return path;
}

/* unit_remove_temp_dir - rmdir the (by now empty) directory, free its path. */
static inline void unit_remove_temp_dir(char *dir)
{
	unit_temp_track(dir, false);
	assert_int_equal(rmdir(dir), 0);
	free(dir);
}

/* Catching log_fatal / log_panic: the hook longjmps back into the test. */
struct unit_death {
	jmp_buf jmp;
	enum log_level level;
	char message[1024];
};

static inline struct unit_death *unit_death_state(void)
{
	static struct unit_death state;

	return &state;
}

static inline void unit_death_hook(enum log_level level, const char *message)
{
	struct unit_death *d = unit_death_state();

	d->level = level;
	snprintf(d->message, sizeof d->message, "%s", message);
	log_set_fatal_hook(NULL);
	longjmp(d->jmp, 1);
}

/* UNIT_EXPECT_DEATH - run stmt, which must end in log_panic (LOG_LEVEL_PANIC)
 * or log_fatal (LOG_LEVEL_FATAL) with a message containing text. stmt must
 * not have allocated anything it would leak by not returning. */
#define UNIT_EXPECT_DEATH(want_level, text, stmt)                                         \
	do {                                                                              \
		struct unit_death *unit_d_ = unit_death_state();                          \
		unit_d_->message[0] = '\0';                                               \
		log_set_fatal_hook(unit_death_hook);                                      \
		if (setjmp(unit_d_->jmp) == 0) {                                          \
			stmt;                                                             \
			log_set_fatal_hook(NULL);                                         \
			fail_msg("%s: returned instead of dying", #stmt);                 \
		}                                                                         \
		assert_int_equal(unit_d_->level, (want_level));                           \
		if (strstr(unit_d_->message, (text)) == NULL)                             \
			fail_msg("%s: died with \"%s\", expected \"%s\" in it", #stmt,    \
				 unit_d_->message, (text));                               \
	} while (0)

/* UNIT_NO_DEATH - run stmt; fail the test (instead of aborting the whole
 * program) if it calls log_panic or log_fatal. */
#define UNIT_NO_DEATH(stmt)                                                               \
	do {                                                                              \
		struct unit_death *unit_d_ = unit_death_state();                          \
		log_set_fatal_hook(unit_death_hook);                                      \
		if (setjmp(unit_d_->jmp) != 0)                                            \
			fail_msg("%s: died: %s", #stmt, unit_d_->message);                \
		stmt;                                                                     \
		log_set_fatal_hook(NULL);                                                 \
	} while (0)

#endif
