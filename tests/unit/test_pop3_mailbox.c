#include "config.h"
/* test_pop3_mailbox.c - unit tests for pop3d/pop3d_mailbox.c against
 * temporary Maildirs: listing (order, sizes as sent, UIDLs), the session
 * lock, messages moved by another client, and expunge with its quota
 * accounting. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../libmail/maildir.h"
#include "../../libutil/fileop_pool.h"
#include "../../libutil/mem.h"
#include "../../pop3d/pop3d_mailbox.h"
#include "unit.h"

#define MD "example.org/bob/Maildir"

struct fx {
	char root[64];
	int root_fd;
};

static int setup(void **state)
{
	struct fx *f = xnew(struct fx);

	snprintf(f->root, sizeof f->root, "/tmp/test_pop3_mailbox.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	f->root_fd = open(f->root, O_RDONLY | O_DIRECTORY);
	assert_true(f->root_fd >= 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	close(f->root_fd);
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->root);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void write_file(struct fx *f, const char *rel, const char *data)
{
	char path[512];
	FILE *fp;

	snprintf(path, sizeof path, "%s/%s", f->root, rel);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(data, fp);
	fclose(fp);
}

static bool exists(struct fx *f, const char *rel)
{
	char path[512];

	snprintf(path, sizeof path, "%s/%s", f->root, rel);
	return access(path, F_OK) == 0;
}

static char *read_rel(struct fx *f, const char *rel)
{
	char path[512], *data = xmalloc(4096);
	int fd;
	ssize_t n;

	snprintf(path, sizeof path, "%s/%s", f->root, rel);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, data, 4095);
	assert_true(n >= 0);
	data[n] = '\0';
	close(fd);
	return data;
}

static struct pop3_mailbox *open_ok(struct fx *f)
{
	struct pop3_mailbox *mb = NULL;
	char *error = NULL;

	assert_int_equal(pop3_mailbox_open(f->root_fd, "Bob@Example.org", &mb, &error), POP3_MAILBOX_OK);
	assert_null(error);
	return mb;
}

/* A user who never had mail: the Maildir is made, and it is empty. */
static void test_empty(void **state)
{
	struct fx *f = *state;
	struct pop3_mailbox *mb = open_ok(f);

	assert_int_equal(mb->count, 0);
	assert_true(exists(f, MD "/new") && exists(f, MD "/cur") && exists(f, MD "/tmp"));
	pop3_mailbox_close(&mb);
	assert_null(mb);
}

/* Order by arrival across new/ and cur/; sizes as sent from W=, or
 * counted for a file without it; the UIDL is the name before ',' or ':'. */
static void test_listing(void **state)
{
	struct fx *f = *state;
	struct pop3_mailbox *mb = open_ok(f);

	pop3_mailbox_close(&mb);
	write_file(f, MD "/new/1700000300.Y0000000000000000000000C3.mx,S=6,W=8", "a\nbcd\n");
	write_file(f, MD "/cur/1700000100.M1P2Q3.mx,S=9,W=12:2,S", "x\ny\nzzzz\n");
	/* no S=/W= (copied in by hand): measured; CRLF kept as is, a bare LF
	 * and the unterminated end grow */
	write_file(f, MD "/cur/1700000200.M5P6Q7.other:2,", "one\r\ntwo\nthree");
	write_file(f, MD "/new/.hidden", "not a message\n");
	mb = open_ok(f);
	assert_int_equal(mb->count, 3);
	assert_string_equal(mb->mails[0].uidl, "1700000100.M1P2Q3.mx");
	assert_int_equal(mb->mails[0].vsize, 12);
	assert_int_equal(mb->mails[0].size, 9);
	assert_true(mb->mails[0].in_cur);
	assert_string_equal(mb->mails[1].uidl, "1700000200.M5P6Q7.other");
	assert_int_equal(mb->mails[1].size, 14);
	assert_int_equal(mb->mails[1].vsize, 17);
	assert_string_equal(mb->mails[2].uidl, "1700000300.Y0000000000000000000000C3.mx");
	assert_int_equal(mb->mails[2].vsize, 8);
	assert_false(mb->mails[2].in_cur);
	pop3_mailbox_close(&mb);
}

/* One session at a time: the second gets IN_USE until the first ends. */
static void test_lock(void **state)
{
	struct fx *f = *state;
	struct pop3_mailbox *a = open_ok(f), *b = NULL;
	char *error = NULL;

	assert_int_equal(pop3_mailbox_open(f->root_fd, "bob@example.org", &b, &error), POP3_MAILBOX_IN_USE);
	assert_null(b);
	assert_non_null(error);
	free(error);
	pop3_mailbox_close(&a);
	b = open_ok(f);
	pop3_mailbox_close(&b);
}

static void test_bad_user(void **state)
{
	struct fx *f = *state;
	struct pop3_mailbox *mb = NULL;
	char *error = NULL;

	assert_int_equal(pop3_mailbox_open(f->root_fd, "../etc@x", &mb, &error), POP3_MAILBOX_PERM);
	assert_null(mb);
	free(error);
}

/* Another client moved a message to cur/ with flags: it is still read. */
static void test_moved_message(void **state)
{
	struct fx *f = *state;
	struct pop3_mailbox *mb = open_ok(f);
	char buf[16];
	int fd;
	char from[256], to[256];

	pop3_mailbox_close(&mb);
	write_file(f, MD "/new/1700000000.A.mx,S=3,W=4", "hi\n");
	mb = open_ok(f);
	snprintf(from, sizeof from, "%s/" MD "/new/1700000000.A.mx,S=3,W=4", f->root);
	snprintf(to, sizeof to, "%s/" MD "/cur/1700000000.A.mx,S=3,W=4:2,S", f->root);
	assert_int_equal(rename(from, to), 0);
	fd = pop3_mailbox_open_message(mb, 0);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof buf), 3);
	close(fd);
	assert_true(mb->mails[0].in_cur);
	assert_string_equal(mb->mails[0].uidl, "1700000000.A.mx");
	/* and gone for good */
	assert_int_equal(unlink(to), 0);
	assert_int_equal(pop3_mailbox_open_message(mb, 0), -1);
	pop3_mailbox_close(&mb);
}

/* What an expunge reported. */
struct expunged {
	struct event_base *base;
	int calls;
	bool ok;
	size_t removed;
	char *error;
};

static void on_expunged(void *arg, bool ok, size_t removed, char *error)
{
	struct expunged *e = arg;

	e->calls++;
	e->ok = ok;
	e->removed = removed;
	e->error = error;
	event_base_loopbreak(e->base);
}

/* expunge - run one on a pool's threads, and wait for its answer. */
static void expunge(struct pop3_mailbox *mb, const bool *del, size_t n, struct expunged *e)
{
	struct fileop_pool *pool;

	memset(e, 0, sizeof *e);
	e->base = event_base_new();
	pool = fileop_pool_new(e->base, 2);
	pop3_mailbox_expunge(mb, del, n, pool, on_expunged, e);
	if (e->calls == 0)
		event_base_dispatch(e->base);
	fileop_pool_free(&pool);
	event_base_free(e->base);
}

/* Only the marked messages go, off the caller's thread; maildirsize
 * learns it; one already gone is fine. */
static void test_expunge(void **state)
{
	struct fx *f = *state;
	struct pop3_mailbox *mb = open_ok(f);
	bool del[3] = { true, false, true }, none[3] = { false, false, false };
	struct expunged e;
	char *quota;

	pop3_mailbox_close(&mb);
	write_file(f, MD "/new/1700000001.A.mx,S=2,W=3", "1\n");
	write_file(f, MD "/new/1700000002.B.mx,S=2,W=3", "2\n");
	write_file(f, MD "/cur/1700000003.C.mx,S=2,W=3:2,S", "3\n");
	write_file(f, MD "/maildirsize", "0S\n6 3\n");
	mb = open_ok(f);
	assert_int_equal(mb->count, 3);
	{
		char gone[256];

		snprintf(gone, sizeof gone, "%s/" MD "/cur/1700000003.C.mx,S=2,W=3:2,S", f->root);
		assert_int_equal(unlink(gone), 0);
	}
	expunge(mb, del, 3, &e);
	assert_int_equal(e.calls, 1);
	assert_true(e.ok);
	assert_null(e.error);
	assert_int_equal(e.removed, 2);
	assert_false(exists(f, MD "/new/1700000001.A.mx,S=2,W=3"));
	assert_true(exists(f, MD "/new/1700000002.B.mx,S=2,W=3"));
	quota = read_rel(f, MD "/maildirsize");
	assert_string_equal(quota, "0S\n6 3\n-2 -1\n");
	free(quota);
	/* nothing marked: answered at once, nothing touched */
	expunge(mb, none, 3, &e);
	assert_true(e.calls == 1 && e.ok && e.removed == 0);
	assert_true(exists(f, MD "/new/1700000002.B.mx,S=2,W=3"));
	pop3_mailbox_close(&mb);
}

/* A message another client moved to cur/ with flags is still removed. */
static void test_expunge_moved(void **state)
{
	struct fx *f = *state;
	struct pop3_mailbox *mb = open_ok(f);
	bool del[1] = { true };
	struct expunged e;
	char from[256], to[256];

	pop3_mailbox_close(&mb);
	write_file(f, MD "/new/1700000000.A.mx,S=3,W=4", "hi\n");
	mb = open_ok(f);
	snprintf(from, sizeof from, "%s/" MD "/new/1700000000.A.mx,S=3,W=4", f->root);
	snprintf(to, sizeof to, "%s/" MD "/cur/1700000000.A.mx,S=3,W=4:2,S", f->root);
	assert_int_equal(rename(from, to), 0);
	expunge(mb, del, 1, &e);
	assert_true(e.ok && e.removed == 1);
	assert_false(exists(f, MD "/cur/1700000000.A.mx,S=3,W=4:2,S"));
	pop3_mailbox_close(&mb);
}

static void test_uidl(void **state)
{
	char out[POP3_UIDL_MAX + 1];
	char long_name[200];

	(void)state;
	pop3_uidl("1700000000.Y0123.mx.example.org,S=12,W=14:2,S", out);
	assert_string_equal(out, "1700000000.Y0123.mx.example.org");
	memset(long_name, 'a', 100);
	strcpy(long_name + 100, ",S=1");
	pop3_uidl(long_name, out);
	assert_int_equal(strlen(out), 33);
	assert_int_equal(out[0], 'H');
	/* stable, and the flags do not change it */
	char again[POP3_UIDL_MAX + 1];

	strcpy(long_name + 100, ":2,S");
	pop3_uidl(long_name, again);
	assert_string_equal(out, again);
	/* a space is not allowed in a unique-id */
	pop3_uidl("17 00.x", out);
	assert_int_equal(out[0], 'H');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_user, setup, teardown),
		cmocka_unit_test_setup_teardown(test_moved_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expunge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expunge_moved, setup, teardown),
		cmocka_unit_test(test_uidl),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
