#include "config.h"
/* test_maildir.c - unit tests for local/maildir.c: mailbox names, CRLF to
 * LF across chunk boundaries, unique names, delivery into a temporary
 * mail_root (exact bytes, headers, modes), Maildir++ quota accounting,
 * rebuilding, refusal, symlink refusal, and that a failed delivery leaves
 * nothing in tmp/ or new/. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../libutil/buf.h"
#include "../../libutil/mem.h"
#include "../../libmail/maildir.h"
#include "unit.h"

#define MBOX "example.org/alice/Maildir"

/* ---- fixture: a temporary mail_root ------------------------------------ */

struct fx {
	char *root;
	int root_fd;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path);
	return unlink(path);
}

static int setup(void **state)
{
	struct fx *f = xnew(struct fx);

	f->root = unit_make_temp_dir();
	f->root_fd = open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->root_fd >= 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	maildir_cache_clear();
	close(f->root_fd);
	/* The tree below root, then root itself through unit.h. */
	nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	unit_temp_track(f->root, false);
	free(f->root);
	free(f);
	return 0;
}

static char *path_in(struct fx *f, const char *rel)
{
	return xasprintf("%s/%s", f->root, rel);
}

/* count_dir - entries (not dot files) in root/rel; the last name in *name_r. */
static int count_dir(struct fx *f, const char *rel, char **name_r)
{
	char *path = path_in(f, rel);
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	free(path);
	if (name_r != NULL)
		*name_r = NULL;
	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		n++;
		if (name_r != NULL) {
			free(*name_r);
			*name_r = xstrdup(de->d_name);
		}
	}
	closedir(d);
	return n;
}

static char *read_file(struct fx *f, const char *rel, size_t *len_r)
{
	char *path = path_in(f, rel);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct buf b = BUF_INIT;
	char chunk[4096];
	ssize_t n;

	free(path);
	assert_true(fd >= 0);
	while ((n = read(fd, chunk, sizeof chunk)) > 0)
		buf_append(&b, chunk, (size_t)n);
	close(fd);
	if (len_r != NULL)
		*len_r = b.len;
	buf_reserve(&b, 0);
	return buf_steal(&b);
}

static void write_rel(struct fx *f, const char *rel, const char *text)
{
	char *path = path_in(f, rel);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	free(path);
	assert_true(fd >= 0);
	unit_write_all(fd, text, strlen(text));
	close(fd);
}

static void mkdir_rel(struct fx *f, const char *rel)
{
	char *path = path_in(f, rel);

	assert_int_equal(mkdir(path, 0700), 0);
	free(path);
}

/* content_fd - a read-only descriptor of a file holding data (the file
 * itself is unlinked at once, like a queue file qmgr holds open). */
static int content_fd(const void *data, size_t len)
{
	char *path = unit_write_temp(data, len);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	unit_remove_temp(path);
	return fd;
}

static struct maildir_msg msg_for(int fd, const char *mailbox, int64_t quota)
{
	struct maildir_msg m = {
		.content_fd = fd,
		.sender = "bob@example.net",
		.recipient = "Alice@Example.org",
		.mailbox = mailbox,
		.quota = quota,
		.quota_permanent = false,
		.hostname = "mx1.example.org",
		.sync_dir = true,
	};
	return m;
}

/* deliver_text - deliver text (CRLF) to alice with quota; the result. */
static enum maildir_outcome deliver_text(struct fx *f, const char *text, int64_t quota, bool permanent,
					 struct maildir_result *res)
{
	int fd = content_fd(text, strlen(text));
	struct maildir_msg m = msg_for(fd, "alice@example.org", quota);
	enum maildir_outcome o;

	m.quota_permanent = permanent;
	o = maildir_deliver(f->root_fd, &m, res);
	close(fd);
	return o;
}

/* ---- mailbox names ------------------------------------------------------ */

static void test_mailbox_parse(void **state)
{
	static const struct {
		const char *in, *local, *domain;
	} good[] = {
		{ "alice@example.org", "alice", "example.org" },
		{ "Alice.Smith@Example.ORG", "alice.smith", "example.org" },
		{ "a+tag@x-y.example", "a+tag", "x-y.example" },
		{ "o'neil!#$%&*=?^_`{|}~-@a.b", "o'neil!#$%&*=?^_`{|}~-", "a.b" },
		{ "x@localhost", "x", "localhost" },
		/* UTF-8 local parts (SMTPUTF8): kept as written, ASCII lower-cased */
		{ "Caf\xc3\xa9@example.org", "caf\xc3\xa9", "example.org" },
		{ "\xe5\xb1\xb1\xe7\x94\xb0.J@example.org", "\xe5\xb1\xb1\xe7\x94\xb0.j", "example.org" },
	};
	static const char *const bad[] = {
		"", "alice", "@example.org", "alice@", "a@b@c", "../etc@example.org", "a/b@example.org",
		".hidden@example.org", "alice.@example.org", "a..b@example.org", "alice@..", "alice@.example.org",
		"alice@example.org.", "alice@exa..mple.org", "alice@exa/mple.org", "alice@example_org",
		"al ice@example.org", "al\tice@example.org", "al\nice@example.org", "\"a\"@example.org",
		"caf\xc3@example.org",         /* cut UTF-8 */
		"caf\xc0\xa9@example.org",     /* overlong */
		"a\xe2\x80\xae" "b@example.org",  /* U+202E, right-to-left override */
		"a\xe2\x80\x8b" "b@example.org",  /* U+200B, zero-width space */
		"a\xc2\x85" "b@example.org",      /* U+0085, a C1 control */
		"alice@b\xc3\xbc" "cher.example", /* domains are A-labels */
		"a\\b@example.org", "alice@[127.0.0.1]", ".@example.org",
		"alice@.", "..@example.org",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.org", /* 65 */
	};
	char local[MAILDIR_LOCAL_MAX + 1], domain[MAILDIR_DOMAIN_MAX + 1];
	const char *error;

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		if (maildir_mailbox_parse(good[i].in, local, domain, &error) < 0)
			fail_msg("\"%s\" refused: %s", good[i].in, error);
		assert_string_equal(local, good[i].local);
		assert_string_equal(domain, good[i].domain);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		error = NULL;
		if (maildir_mailbox_parse(bad[i], local, domain, &error) == 0)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_non_null(error);
	}
	assert_int_equal(maildir_mailbox_parse("a/b@x.org", local, domain, &error), -1);
	assert_string_equal(error, "'/' in local part");
}

/* ---- CRLF -> LF --------------------------------------------------------- */

/* lf_reference - the expected conversion, done the slow obvious way. */
static size_t lf_reference(const char *in, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
			continue;
		out[o++] = in[i];
	}
	return o;
}

/* convert_split - convert in, cut into chunks at the given positions. */
static size_t convert_split(const char *in, size_t len, const size_t *cuts, size_t ncuts, char *out)
{
	struct maildir_lf st = { false };
	size_t o = 0, from = 0;

	for (size_t c = 0; c <= ncuts; c++) {
		size_t to = c < ncuts ? cuts[c] : len;

		o += maildir_lf_convert(&st, (const uint8_t *)in + from, to - from, (uint8_t *)out + o);
		from = to;
	}
	o += maildir_lf_finish(&st, (uint8_t *)out + o);
	return o;
}

static void test_lf_convert(void **state)
{
	static const char *const cases[] = {
		"", "\r", "\n", "\r\n", "\r\r\n", "\n\r", "a\r", "\rb", "line\r\n", "a\r\nb\r\nc",
		"bare\rcr\r\n", "\r\n\r\n.\r\n", "x\r\ny\rz\r\n\r", "\r\r\r\n\n\n\r",
	};
	char out[64], want[64];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *in = cases[i];
		size_t len = strlen(in);
		size_t want_len = lf_reference(in, len, want);

		/* no cut, every single cut, and one byte at a time */
		for (size_t cut = 0; cut <= len; cut++) {
			size_t got = convert_split(in, len, &cut, cut < len ? 1 : 0, out);

			if (got != want_len || memcmp(out, want, got) != 0)
				fail_msg("case %zu cut at %zu: wrong result", i, cut);
		}
		if (len > 1) {
			size_t cuts[32];

			for (size_t k = 1; k < len; k++)
				cuts[k - 1] = k;
			assert_int_equal(convert_split(in, len, cuts, len - 1, out), want_len);
			assert_memory_equal(out, want, want_len);
			/* empty chunks in between change nothing */
			size_t twice[2] = { len / 2, len / 2 };
			assert_int_equal(convert_split(in, len, twice, 2, out), want_len);
			assert_memory_equal(out, want, want_len);
		}
	}
}

/* ---- names -------------------------------------------------------------- */

static void test_unique_name(void **state)
{
	struct timeval tv = { .tv_sec = 1700000000, .tv_usec = 42 };
	char *a = maildir_unique_name(&tv, 123, 7, "mx1.example.org");
	char *b = maildir_unique_name(&tv, 123, 8, "mx1.example.org");
	char *c = maildir_unique_name(&tv, 123, 9, "odd/host:name,x y");

	(void)state;
	assert_string_equal(a, "1700000000.M42P123Q7.mx1.example.org");
	assert_string_not_equal(a, b);
	assert_string_equal(c, "1700000000.M42P123Q9.odd\\057host\\072name\\054x\\040y");
	free(a);
	free(b);
	free(c);
	a = maildir_queue_name("060A24181E400000007B0001", "odd/host");
	assert_string_equal(a, "1700000000.Y060A24181E400000007B0001.odd\\057host");
	free(a);

	assert_int_equal(maildir_name_size("1.M1P1Q1.h,S=1234"), 1234);
	assert_int_equal(maildir_name_size("1.M1P1Q1.h,S=1234:2,S"), 1234);
	assert_int_equal(maildir_name_size("1.M1P1Q1.h,S=99,W=101:2,"), 99);
	assert_int_equal(maildir_name_vsize("1.M1P1Q1.h,S=99,W=101:2,"), 101);
	assert_int_equal(maildir_name_vsize("1.M1P1Q1.h,W=7"), 7);
	assert_int_equal(maildir_name_vsize("1.M1P1Q1.h,S=99"), -1);
	assert_int_equal(maildir_name_vsize("1.M1P1Q1.h,S=99:2,W=5"), -1); /* W= in the flags is not a size */
	assert_int_equal(maildir_name_size("1.M1P1Q1.h:2,S=5"), -1);
	assert_int_equal(maildir_name_size("1.M1P1Q1.h:2,S"), -1);
	assert_int_equal(maildir_name_size("1.M1P1Q1.h,S="), -1);
	assert_int_equal(maildir_name_size("1.M1P1Q1.h,S=12x"), -1);
	assert_int_equal(maildir_name_size("1.h,S=99999999999999999999999"), -1);
}

/* ---- maildirsize -------------------------------------------------------- */

static void test_maildirsize_parse(void **state)
{
	static const struct {
		const char *text;
		int rc;
		int64_t limit, bytes, count;
	} cases[] = {
		{ "1000S\n", 0, 1000, 0, 0 },
		{ "1000S\n10 1\n20 1\n", 0, 1000, 30, 2 },
		{ "1000S,50C\n10 1\n", 0, 1000, 10, 1 },
		{ "50C,1000S\n10 1\n", 0, 1000, 10, 1 },
		{ "0S\n5 1\n-5 -1\n7 1\n", 0, 0, 7, 1 },
		{ "\n  12   3\n", 0, 0, 12, 3 },
		{ "1000S\n10\t1\n", 0, 1000, 10, 1 },
		{ "", -1, 0, 0, 0 },
		{ "1000S", -1, 0, 0, 0 },
		{ "1000S\n10 1", -1, 0, 0, 0 },     /* torn last line */
		{ "1000X\n", -1, 0, 0, 0 },
		{ "S\n", -1, 0, 0, 0 },
		{ "-5S\n", -1, 0, 0, 0 },
		{ "1000S,\n", -1, 0, 0, 0 },
		{ "1000S\n10\n", -1, 0, 0, 0 },
		{ "1000S\n10 1 1\n", -1, 0, 0, 0 },
		{ "1000S\nten 1\n", -1, 0, 0, 0 },
		{ "1000S\n\n", -1, 0, 0, 0 },
		{ "1000S\n9223372036854775807 1\n1 1\n", -1, 0, 0, 0 }, /* overflow */
		{ "99999999999999999999S\n", -1, 0, 0, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct maildir_usage u = { -1, -1, -1 };
		int rc = maildirsize_parse(cases[i].text, strlen(cases[i].text), &u);

		if (rc != cases[i].rc)
			fail_msg("case %zu \"%s\": rc %d, wanted %d", i, cases[i].text, rc, cases[i].rc);
		if (rc == 0 && (u.limit != cases[i].limit || u.bytes != cases[i].bytes || u.count != cases[i].count))
			fail_msg("case %zu: got %lld/%lld/%lld", i, (long long)u.limit, (long long)u.bytes,
				 (long long)u.count);
	}
}

static void test_quota_over(void **state)
{
	struct maildir_usage u = { 100, 60, 3 };

	(void)state;
	assert_false(maildir_quota_over(&u, 40));
	assert_true(maildir_quota_over(&u, 41));
	u.bytes = 100;
	assert_true(maildir_quota_over(&u, 0)); /* exactly full: nothing more fits */
	u.limit = 0;
	assert_false(maildir_quota_over(&u, INT64_MAX));
	u.limit = INT64_MAX;
	u.bytes = INT64_MAX - 1;
	assert_false(maildir_quota_over(&u, 1));
	assert_true(maildir_quota_over(&u, INT64_MAX));
}

/* ---- delivery ----------------------------------------------------------- */

static const char BODY[] = "Received: from client (client [192.0.2.1])\r\n\tby mx1.example.org\r\n"
			   "Subject: hi\r\n\r\nline one\r\nbare\rcr\r\n.\r\nend";
static const char WANT_HEAD[] = "Return-Path: <bob@example.net>\nX-Original-To: Alice@Example.org\n"
				"Delivered-To: alice@example.org\n";
static const char WANT_BODY[] = "Received: from client (client [192.0.2.1])\n\tby mx1.example.org\n"
				"Subject: hi\n\nline one\nbare\rcr\n.\nend";

static void test_deliver(void **state)
{
	struct fx *f = *state;
	struct maildir_result res;
	char *name, *rel, *data, *want;
	size_t len;
	struct stat st;
	static const char *const dirs[] = { "example.org", "example.org/alice", MBOX, MBOX "/tmp", MBOX "/new",
					    MBOX "/cur" };

	assert_int_equal(deliver_text(f, BODY, 0, false, &res), MAILDIR_OK);
	assert_string_equal(res.dsn, "2.0.0");
	assert_string_equal(res.text, "delivered to maildir");
	assert_int_equal(count_dir(f, MBOX "/tmp", NULL), 0);
	assert_int_equal(count_dir(f, MBOX "/cur", NULL), 0);
	assert_int_equal(count_dir(f, MBOX "/new", &name), 1);
	assert_string_equal(name, res.file);

	rel = xasprintf(MBOX "/new/%s", name);
	data = read_file(f, rel, &len);
	want = xasprintf("%s%s", WANT_HEAD, WANT_BODY);
	assert_int_equal(len, strlen(want));
	assert_string_equal(data, want);
	assert_int_equal(res.size, (int64_t)len);
	assert_int_equal(maildir_name_size(name), (int64_t)len);
	/* W=: the size with CRLF line ends (one more octet per line) */
	{
		int64_t lines = 0;

		for (size_t i = 0; i < len; i++)
			lines += data[i] == '\n';
		assert_int_equal(maildir_name_vsize(name), (int64_t)len + lines);
	}
	/* TIME.M<usec>P<pid>Q<n>.HOST,S=<size>,W=<size> */
	char *pid = xasprintf("P%ld", (long)getpid());
	assert_non_null(strstr(name, ".M"));
	assert_non_null(strstr(name, pid));
	assert_non_null(strstr(name, ".mx1.example.org,S="));
	free(pid);

	/* modes: 0700 directories owned by us, 0600 message */
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		char *p = path_in(f, dirs[i]);

		assert_int_equal(lstat(p, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		if ((st.st_mode & 07777) != 0700)
			fail_msg("%s: mode %o", dirs[i], (unsigned)(st.st_mode & 07777));
		assert_int_equal(st.st_uid, geteuid());
		free(p);
	}
	char *p = path_in(f, rel);
	assert_int_equal(lstat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	free(p);

	/* the accounting: limit 0 (none), one message of len bytes */
	char *ms = read_file(f, MBOX "/maildirsize", NULL);
	char *want_ms = xasprintf("0S\n0 0\n%zu 1\n", len);
	assert_string_equal(ms, want_ms);
	free(ms);
	free(want_ms);
	free(want);
	free(data);
	free(rel);
	free(name);
}

static void test_deliver_null_sender_and_empty(void **state)
{
	struct fx *f = *state;
	int fd = content_fd("", 0);
	struct maildir_msg m = msg_for(fd, "alice@example.org", 0);
	struct maildir_result res;
	char *name, *rel, *data;

	m.sender = "";
	assert_int_equal(maildir_deliver(f->root_fd, &m, &res), MAILDIR_OK);
	close(fd);
	assert_int_equal(count_dir(f, MBOX "/new", &name), 1);
	rel = xasprintf(MBOX "/new/%s", name);
	data = read_file(f, rel, NULL);
	assert_string_equal(data, "Return-Path: <>\nX-Original-To: Alice@Example.org\n"
				  "Delivered-To: alice@example.org\n");
	free(data);
	free(rel);
	free(name);
}

/* A message of several copy chunks with a CRLF split across every chunk
 * boundary the copy uses (64 KiB), and at other odd places. */
static void test_deliver_large(void **state)
{
	struct fx *f = *state;
	size_t len = 3 * 65536 + 1000;
	char *in = xmalloc(len);
	char *want = xmalloc(len + sizeof WANT_HEAD);
	size_t want_len;
	struct maildir_result res;
	char *name, *rel, *data;
	size_t got_len;
	int fd;

	(void)state;
	for (size_t i = 0; i < len; i++)
		in[i] = (char)('a' + i % 26);
	for (size_t i = 77; i + 1 < len; i += 77) {
		in[i] = '\r';
		in[i + 1] = '\n';
	}
	for (size_t k = 1; k <= 3; k++) {
		in[k * 65536 - 1] = '\r'; /* CR last in a chunk, LF first in the next */
		in[k * 65536] = '\n';
	}
	in[100] = '\r'; /* and a bare CR */
	in[101] = 'x';
	memcpy(want, WANT_HEAD, strlen(WANT_HEAD));
	want_len = strlen(WANT_HEAD) + lf_reference(in, len, want + strlen(WANT_HEAD));

	fd = content_fd(in, len);
	struct maildir_msg m = msg_for(fd, "alice@example.org", 0);
	assert_int_equal(maildir_deliver(f->root_fd, &m, &res), MAILDIR_OK);
	close(fd);
	assert_int_equal(count_dir(f, MBOX "/new", &name), 1);
	rel = xasprintf(MBOX "/new/%s", name);
	data = read_file(f, rel, &got_len);
	assert_int_equal(got_len, want_len);
	assert_memory_equal(data, want, want_len);
	assert_int_equal(maildir_name_size(name), (int64_t)want_len);
	free(data);
	free(rel);
	free(name);
	free(in);
	free(want);
}

static void test_two_deliveries(void **state)
{
	struct fx *f = *state;
	struct maildir_result a, b;
	char *ms, *want;

	assert_int_equal(deliver_text(f, "one\r\n", 0, false, &a), MAILDIR_OK);
	assert_int_equal(deliver_text(f, "two\r\n", 0, false, &b), MAILDIR_OK);
	assert_string_not_equal(a.file, b.file);
	assert_int_equal(count_dir(f, MBOX "/new", NULL), 2);
	assert_int_equal(count_dir(f, MBOX "/tmp", NULL), 0);
	ms = read_file(f, MBOX "/maildirsize", NULL);
	want = xasprintf("0S\n0 0\n%lld 1\n%lld 1\n", (long long)a.size, (long long)b.size);
	assert_string_equal(ms, want);
	free(ms);
	free(want);
}

/* A Maildir kept open from the last delivery is used again only while its
 * path still leads to it: after it is renamed away, or its tmp/ removed,
 * the next delivery lands where the path now leads. */
static void test_kept_maildir_revalidated(void **state)
{
	struct fx *f = *state;
	struct maildir_result r;
	char *from, *to;

	assert_int_equal(deliver_text(f, "one\r\n", 0, false, &r), MAILDIR_OK);
	from = path_in(f, MBOX);
	to = path_in(f, MBOX ".old");
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(deliver_text(f, "two\r\n", 0, false, &r), MAILDIR_OK);
	assert_int_equal(count_dir(f, MBOX "/new", NULL), 1);
	assert_int_equal(count_dir(f, MBOX ".old/new", NULL), 1);
	free(from);
	free(to);

	from = path_in(f, MBOX "/tmp");
	assert_int_equal(rmdir(from), 0);
	assert_int_equal(deliver_text(f, "three\r\n", 0, false, &r), MAILDIR_OK);
	assert_int_equal(count_dir(f, MBOX "/new", NULL), 2);
	assert_int_equal(count_dir(f, MBOX "/tmp", NULL), 0);
	free(from);
}

/* deliver_id - deliver text to alice as queue ID id. */
static enum maildir_outcome deliver_id(struct fx *f, const char *text, const char *id, bool recheck,
				       struct maildir_result *res)
{
	int fd = content_fd(text, strlen(text));
	struct maildir_msg m = msg_for(fd, "alice@example.org", 0);
	enum maildir_outcome o;

	m.queue_id = id;
	m.recheck = recheck;
	o = maildir_deliver(f->root_fd, &m, res);
	close(fd);
	return o;
}

/* move_rel - rename root/from to root/to. */
static void move_rel(struct fx *f, const char *from, const char *to)
{
	assert_int_equal(renameat(f->root_fd, from, f->root_fd, to), 0);
}

/* A message of the queue is named after its queue ID in new/. Handed over
 * again, it is answered "already delivered" without a second copy: found
 * in new/ always, and in cur/ (where a reader moved it and added flags)
 * when the hand-over is marked as a possible repeat. Once its file is
 * gone (read and deleted), the ID delivers again. */
static void test_repeat_delivery(void **state)
{
	struct fx *f = *state;
	struct maildir_result r;
	const char *id = "060A24181E400000007B0001"; /* arrived at 1700000000 */
	char *name = NULL, from[600], to[600];

	assert_int_equal(deliver_id(f, "one\r\n", id, false, &r), MAILDIR_OK);
	assert_string_equal(r.text, "delivered to maildir");
	assert_int_equal(strncmp(r.file, "1700000000.Y060A24181E400000007B0001.mx1.example.org,S=", 55), 0);
	assert_int_equal(deliver_id(f, "one\r\n", id, false, &r), MAILDIR_OK);
	assert_string_equal(r.text, "already delivered to maildir");
	assert_int_equal(count_dir(f, MBOX "/new", &name), 1);
	assert_int_equal(count_dir(f, MBOX "/tmp", NULL), 0);

	/* a reader took it to cur/ and flagged it seen */
	snprintf(from, sizeof from, "%s/new/%s", MBOX, name);
	snprintf(to, sizeof to, "%s/cur/%s:2,S", MBOX, name);
	move_rel(f, from, to);
	assert_int_equal(deliver_id(f, "one\r\n", id, true, &r), MAILDIR_OK);
	assert_string_equal(r.text, "already delivered to maildir");
	assert_int_equal(count_dir(f, MBOX "/new", NULL), 0);
	assert_int_equal(count_dir(f, MBOX "/cur", NULL), 1);
	assert_int_equal(count_dir(f, MBOX "/tmp", NULL), 0);

	/* another message of the same second is not mistaken for it */
	assert_int_equal(deliver_id(f, "two\r\n", "060A24181E400000007B0002", true, &r), MAILDIR_OK);
	assert_string_equal(r.text, "delivered to maildir");
	assert_int_equal(count_dir(f, MBOX "/new", NULL), 1);

	/* read and deleted: the same ID is a new delivery */
	assert_int_equal(unlinkat(f->root_fd, to, 0), 0);
	assert_int_equal(deliver_id(f, "one\r\n", id, true, &r), MAILDIR_OK);
	assert_string_equal(r.text, "delivered to maildir");
	assert_int_equal(count_dir(f, MBOX "/new", NULL), 2);
	free(name);
}

/* ---- quota -------------------------------------------------------------- */

static void test_quota_refusal(void **state)
{
	struct fx *f = *state;
	struct maildir_result res;
	int64_t one;
	char *ms_before, *ms_after;

	/* How big is one message? Deliver one without a limit. */
	assert_int_equal(deliver_text(f, "hello\r\n", 0, false, &res), MAILDIR_OK);
	one = res.size;

	/* Room for exactly one more: it fits, then nothing does. */
	assert_int_equal(deliver_text(f, "hello\r\n", 2 * one, false, &res), MAILDIR_OK);
	ms_before = read_file(f, MBOX "/maildirsize", NULL);
	/* The limit went from 0 to 2*one: the file was rebuilt with the new
	 * first line (counting the first message), then the second one added. */
	char *want = xasprintf("%lldS\n%lld 1\n%lld 1\n", (long long)(2 * one), (long long)one, (long long)one);
	assert_string_equal(ms_before, want);
	free(want);

	assert_int_equal(deliver_text(f, "hello\r\n", 2 * one, false, &res), MAILDIR_TEMP);
	assert_string_equal(res.dsn, "4.2.2");
	assert_string_equal(res.text, "mailbox full");
	assert_int_equal(deliver_text(f, "hello\r\n", 2 * one, true, &res), MAILDIR_PERM);
	assert_string_equal(res.dsn, "5.2.2");
	assert_string_equal(res.text, "mailbox full");
	/* nothing left behind, nothing counted */
	assert_int_equal(count_dir(f, MBOX "/tmp", NULL), 0);
	assert_int_equal(count_dir(f, MBOX "/new", NULL), 2);
	ms_after = read_file(f, MBOX "/maildirsize", NULL);
	assert_string_equal(ms_before, ms_after);
	free(ms_before);
	free(ms_after);

	/* A bigger limit lets it in. */
	assert_int_equal(deliver_text(f, "hello\r\n", 3 * one, false, &res), MAILDIR_OK);
	assert_int_equal(count_dir(f, MBOX "/new", NULL), 3);
}

static void test_quota_recalc(void **state)
{
	struct fx *f = *state;
	struct maildir_result res;
	struct maildir_usage u;
	struct maildir *md;
	char *error = NULL, *ms;
	int64_t total = 0;

	for (int i = 0; i < 3; i++) {
		assert_int_equal(deliver_text(f, "a message\r\n", 0, false, &res), MAILDIR_OK);
		total += res.size;
	}
	/* Mail in cur/ and in a Maildir++ folder counts too; a file without
	 * S= is measured; dot files and tmp/ do not count. */
	mkdir_rel(f, MBOX "/.Sent");
	mkdir_rel(f, MBOX "/.Sent/cur");
	write_rel(f, MBOX "/.Sent/cur/1.M1P1Q1.h,S=500:2,S", "x");
	write_rel(f, MBOX "/cur/2.M1P1Q1.h:2,", "0123456789");
	write_rel(f, MBOX "/cur/.hidden", "0123456789");
	write_rel(f, MBOX "/tmp/3.M1P1Q1.h", "0123456789");
	write_rel(f, MBOX "/.dovecot.index", "not a folder");
	total += 500 + 10;

	assert_int_equal(maildir_open(f->root_fd, "example.org", "alice", false, &md, &error), 0);

	/* the stale sum still says 3 messages */
	assert_int_equal(maildir_quota_usage(md, 0, 0, &u, &error), 0);
	assert_int_equal(u.count, 3);

	/* missing -> rebuilt */
	char *p = path_in(f, MBOX "/maildirsize");
	assert_int_equal(unlink(p), 0);
	assert_int_equal(maildir_quota_usage(md, 0, 0, &u, &error), 0);
	assert_int_equal(u.bytes, total);
	assert_int_equal(u.count, 5);
	ms = read_file(f, MBOX "/maildirsize", NULL);
	char *want = xasprintf("0S\n%lld 5\n", (long long)total);
	assert_string_equal(ms, want);
	free(ms);
	free(want);

	/* unparsable -> rebuilt */
	write_rel(f, MBOX "/maildirsize", "garbage\n");
	assert_int_equal(maildir_quota_usage(md, 0, 0, &u, &error), 0);
	assert_int_equal(u.bytes, total);

	/* torn last line -> rebuilt */
	write_rel(f, MBOX "/maildirsize", "0S\n1 1\n2");
	assert_int_equal(maildir_quota_usage(md, 0, 0, &u, &error), 0);
	assert_int_equal(u.bytes, total);

	/* negative sum -> rebuilt */
	write_rel(f, MBOX "/maildirsize", "0S\n-100 -1\n");
	assert_int_equal(maildir_quota_usage(md, 0, 0, &u, &error), 0);
	assert_int_equal(u.bytes, total);

	/* over 5120 bytes -> rebuilt into a small file */
	{
		struct buf big = BUF_INIT;

		buf_append_str(&big, "0S\n");
		while (big.len <= MAILDIRSIZE_MAX)
			buf_append_str(&big, "1 1\n");
		write_rel(f, MBOX "/maildirsize", buf_cstr(&big));
		buf_free(&big);
	}
	assert_int_equal(maildir_quota_usage(md, 0, 0, &u, &error), 0);
	assert_int_equal(u.bytes, total);
	assert_int_equal(u.count, 5);

	/* another limit -> rebuilt with the new first line */
	assert_int_equal(maildir_quota_usage(md, 123456, 0, &u, &error), 0);
	assert_int_equal(u.limit, 123456);
	ms = read_file(f, MBOX "/maildirsize", NULL);
	assert_true(strncmp(ms, "123456S\n", 8) == 0);
	free(ms);
	/* limit < 0: take the stored one */
	assert_int_equal(maildir_quota_usage(md, -1, 0, &u, &error), 0);
	assert_int_equal(u.limit, 123456);

	/* a sum that says "over" is trusted while fresh, recounted when old */
	write_rel(f, MBOX "/maildirsize", "1000000S\n999999 1\n");
	assert_int_equal(maildir_quota_usage(md, 1000000, 10, &u, &error), 0);
	assert_int_equal(u.bytes, 999999);
	struct timespec old[2] = { { .tv_sec = time(NULL) - MAILDIRSIZE_STALE_SECS - 10 },
				   { .tv_sec = time(NULL) - MAILDIRSIZE_STALE_SECS - 10 } };
	assert_int_equal(utimensat(AT_FDCWD, p, old, 0), 0);
	assert_int_equal(maildir_quota_usage(md, 1000000, 10, &u, &error), 0);
	assert_int_equal(u.bytes, total);

	/* no temporary files left by the rebuilds (the one planted remains) */
	assert_int_equal(count_dir(f, MBOX "/tmp", NULL), 1);
	free(p);
	maildir_close(&md);
	assert_null(md);
	assert_null(error);
}

static void test_quota_query(void **state)
{
	struct fx *f = *state;
	struct maildir_result res;
	char *error = NULL;

	/* no Maildir yet: empty; only the given limit counts */
	assert_int_equal(maildir_quota_query(f->root_fd, "alice@example.org", 100, -1, &error), 0);
	assert_int_equal(maildir_quota_query(f->root_fd, "alice@example.org", 100, 100, &error), 0);
	assert_int_equal(maildir_quota_query(f->root_fd, "alice@example.org", 101, 100, &error), 1);
	assert_int_equal(count_dir(f, "example.org", NULL), -1); /* and nothing was created */

	assert_int_equal(deliver_text(f, "0123456789\r\n", 1000, false, &res), MAILDIR_OK);
	/* stored limit 1000, usage res.size */
	assert_int_equal(maildir_quota_query(f->root_fd, "ALICE@example.org", 1000 - res.size, -1, &error), 0);
	assert_int_equal(maildir_quota_query(f->root_fd, "alice@example.org", 1001 - res.size, -1, &error), 1);
	assert_int_equal(maildir_quota_query(f->root_fd, "alice@example.org", 0, -1, &error), 0);
	/* a limit in the query wins over the stored one */
	assert_int_equal(maildir_quota_query(f->root_fd, "alice@example.org", 5000, 0, &error), 0);
	assert_int_equal(maildir_quota_query(f->root_fd, "alice@example.org", 5000, 5000, &error), 1);
	assert_null(error);

	assert_int_equal(maildir_quota_query(f->root_fd, "../x@example.org", 1, -1, &error), -1);
	assert_non_null(strstr(error, "bad mailbox name"));
	free(error);
}

/* ---- refusals ----------------------------------------------------------- */

static void test_bad_mailbox(void **state)
{
	struct fx *f = *state;
	static const char *const names[] = { "../../etc@example.org", "a/b@example.org", ".x@example.org",
					     "alice@../..", "alice", "alice@x@y" };
	struct maildir_result res;
	int fd = content_fd("x\r\n", 3);

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		struct maildir_msg m = msg_for(fd, names[i], 0);

		assert_int_equal(maildir_deliver(f->root_fd, &m, &res), MAILDIR_PERM);
		assert_string_equal(res.dsn, "5.1.1");
		assert_non_null(strstr(res.text, "bad mailbox name"));
	}
	close(fd);
	/* mail_root is still empty */
	assert_int_equal(count_dir(f, ".", NULL), 0);
}

/* plant - a symlink at root/rel pointing to a fresh directory outside. */
static char *plant(struct fx *f, const char *rel)
{
	char *outside = unit_make_temp_dir();
	char *p = path_in(f, rel);

	assert_int_equal(symlink(outside, p), 0);
	free(p);
	return outside;
}

static void unplant(struct fx *f, const char *rel, char *outside)
{
	char *p = path_in(f, rel);

	assert_int_equal(unlink(p), 0);
	free(p);
	nftw(outside, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	unit_temp_track(outside, false);
	free(outside);
}

static int count_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

static void test_symlinks_refused(void **state)
{
	struct fx *f = *state;
	struct maildir_result res;
	static const char *const places[] = { "example.org", "example.org/alice", MBOX, MBOX "/tmp",
					      MBOX "/new", MBOX "/cur" };

	for (size_t i = 0; i < sizeof places / sizeof places[0]; i++) {
		char *outside;

		/* make the parents real, then plant the link */
		for (size_t j = 0; j < i; j++) {
			char *p = path_in(f, places[j]);

			mkdir(p, 0700);
			free(p);
		}
		outside = plant(f, places[i]);
		if (deliver_text(f, "x\r\n", 0, false, &res) != MAILDIR_TEMP)
			fail_msg("symlink at %s: delivered (%s %s)", places[i], res.dsn, res.text);
		assert_string_equal(res.dsn, "4.2.0");
		if (strstr(res.text, "symbolic link") == NULL)
			fail_msg("symlink at %s: \"%s\"", places[i], res.text);
		assert_int_equal(count_tree(outside), 0);
		if (i >= 4)
			assert_int_equal(count_dir(f, MBOX "/tmp", NULL), 0);
		unplant(f, places[i], outside);
	}
	/* with every link gone it works */
	assert_int_equal(deliver_text(f, "x\r\n", 0, false, &res), MAILDIR_OK);

	/* a symlinked maildirsize is replaced, its target left alone */
	char *target = unit_write_temp_str("1000S\n0 0\n");
	char *p = path_in(f, MBOX "/maildirsize");
	struct stat st;

	assert_int_equal(unlink(p), 0);
	assert_int_equal(symlink(target, p), 0);
	assert_int_equal(deliver_text(f, "x\r\n", 0, false, &res), MAILDIR_OK);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	int tfd = open(target, O_RDONLY | O_CLOEXEC);
	char tbuf[64] = "";
	assert_true(read(tfd, tbuf, sizeof tbuf - 1) > 0);
	close(tfd);
	assert_string_equal(tbuf, "1000S\n0 0\n");
	free(p);
	unit_remove_temp(target);
}

/* test_error_leaves_nothing - a read error half-way (a descriptor that is
 * not readable) and a write error half-way (RLIMIT_FSIZE in a child):
 * temporary failure, tmp/ and new/ empty, nothing counted. */
static void test_error_leaves_nothing(void **state)
{
	struct fx *f = *state;
	struct maildir_result res;
	char *path = unit_write_temp_str("x\r\n");
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	struct maildir_msg m = msg_for(fd, "alice@example.org", 0);
	pid_t pid;
	int status;

	assert_true(fd >= 0);
	assert_int_equal(maildir_deliver(f->root_fd, &m, &res), MAILDIR_TEMP);
	assert_string_equal(res.dsn, "4.3.0");
	assert_non_null(strstr(res.text, "read message content"));
	close(fd);
	unit_remove_temp(path);
	assert_int_equal(count_dir(f, MBOX "/tmp", NULL), 0);
	assert_int_equal(count_dir(f, MBOX "/new", NULL), 0);

	/* a content fd that is not a file at all */
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	m.content_fd = pipefd[0];
	assert_int_equal(maildir_deliver(f->root_fd, &m, &res), MAILDIR_TEMP);
	close(pipefd[0]);
	close(pipefd[1]);

	/* A write that fails in the middle (EFBIG: the file size limit). */
	size_t big = 200000;
	char *data = xmalloc(big);
	memset(data, 'z', big);
	fd = content_fd(data, big);
	free(data);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit rl = { 100000, 100000 };
		struct maildir_result r;
		struct maildir_msg cm = msg_for(fd, "alice@example.org", 0);
		enum maildir_outcome o;

		signal(SIGXFSZ, SIG_IGN);
		setrlimit(RLIMIT_FSIZE, &rl);
		o = maildir_deliver(f->root_fd, &cm, &r);
		_exit(o == MAILDIR_TEMP && strstr(r.text, "File too large") != NULL ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(fd);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(count_dir(f, MBOX "/tmp", NULL), 0);
	assert_int_equal(count_dir(f, MBOX "/new", NULL), 0);
	/* and the next delivery works */
	assert_int_equal(deliver_text(f, "x\r\n", 0, false, &res), MAILDIR_OK);
	char *ms = read_file(f, MBOX "/maildirsize", NULL);
	char *want = xasprintf("0S\n0 0\n%lld 1\n", (long long)res.size);
	assert_string_equal(ms, want);
	free(ms);
	free(want);
}

/* A file where a Maildir directory belongs: deferred, not replaced. */
static void test_not_a_directory(void **state)
{
	struct fx *f = *state;
	struct maildir_result res;

	mkdir_rel(f, "example.org");
	write_rel(f, "example.org/alice", "a file where a directory belongs");
	assert_int_equal(deliver_text(f, "x\r\n", 0, false, &res), MAILDIR_TEMP);
	assert_string_equal(res.dsn, "4.2.0");
	assert_non_null(strstr(res.text, "not a directory"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mailbox_parse),
		cmocka_unit_test(test_lf_convert),
		cmocka_unit_test(test_unique_name),
		cmocka_unit_test(test_maildirsize_parse),
		cmocka_unit_test(test_quota_over),
		cmocka_unit_test_setup_teardown(test_deliver, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deliver_null_sender_and_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deliver_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_repeat_delivery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_deliveries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kept_maildir_revalidated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quota_refusal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quota_recalc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quota_query, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_mailbox, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlinks_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_directory, setup, teardown),
	};

	log_init("test_maildir", LOG_SINK_STDERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
