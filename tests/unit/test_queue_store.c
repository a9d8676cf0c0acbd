#include "config.h"
/* test_queue_store.c - unit tests for libmail/queue_store.c and its two
 * backends. The same table of tests runs against the RAM backend and the
 * Berkeley DB backend (in a fresh directory per test); a few tests are
 * for one backend only (reopening, the lock, crash simulation), and the
 * record tests hammer the decoder with truncations and bit flips. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define QUEUE_STORE_BACKEND 1 /* the corrupt-record tests write raw records */
#include "../../libmail/queue_store.h"
#include "../../libmail/xbdb_queue.h"
#include "../../libutil/buf.h"
#include "../../libutil/ipc.h"
#include "../../libutil/mem.h"
#include "unit.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- fixtures --------------------------------------------------------- */

struct backend {
	const char *name;
	bool bdb;
};

static const struct backend backend_ram = { "ram", false };
static const struct backend backend_bdb = { "bdb", true };

struct fixture {
	const struct backend *be;
	char *dir; /* bdb: the queue directory */
	struct queue_store *q;
};

/* remove_tree - remove dir and the files in it (the store makes no
 * subdirectories). */
static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char path[PATH_MAX];

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static struct queue_store *fixture_open(struct fixture *f)
{
	struct queue_store *q;
	char *error = NULL;

	if (!f->be->bdb)
		return queue_store_open_ram();
	q = queue_store_open_bdb(f->dir, &error);
	if (q == NULL)
		fail_msg("open %s: %s", f->dir, error);
	return q;
}

static int setup(void **state)
{
	struct fixture *f = xnew(struct fixture);
	char tmpl[PATH_MAX];

	f->be = *state;
	if (f->be->bdb) {
		snprintf(tmpl, sizeof tmpl, "%s/yb-queue-XXXXXX", unit_tmpdir());
		if (mkdtemp(tmpl) == NULL)
			return -1;
		/* a directory the store must create itself */
		f->dir = xasprintf("%s/queue", tmpl);
	}
	f->q = fixture_open(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	/* a failed assertion in a scan callback jumps out of the scan */
	if (f->q != NULL)
		f->q->busy = false;
	queue_store_close(&f->q);
	if (f->dir != NULL) {
		char *parent = xstrdup(f->dir);

		remove_tree(f->dir);
		*strrchr(parent, '/') = '\0';
		rmdir(parent);
		free(parent);
		free(f->dir);
	}
	free(f);
	return 0;
}

/* reopen - close and open the same store (bdb: recovery runs). */
static void reopen(struct fixture *f)
{
	queue_store_close(&f->q);
	f->q = fixture_open(f);
}

/* ---- helpers ---------------------------------------------------------- */

/* ID n: fixed time so that ID order is n order. */
static void test_id(char id[QUEUE_ID_SIZE], unsigned n)
{
	queue_id_make(id, 1700000000000000LL + n, 4242, n);
}

/* make_env - an envelope with nrcpt PENDING recipients due at next_try. */
static void make_env(struct queue_envelope *e, unsigned n, size_t nrcpt, long long next_try)
{
	memset(e, 0, sizeof *e);
	test_id(e->id, n);
	e->arrival = 1700000000 + n;
	e->sender = xasprintf("sender%u@example.org", n);
	e->size = 1000 + n;
	e->envid = xstrdup("");
	e->ret = xstrdup("");
	e->client = xstrdup("mx.example.net[192.0.2.1]");
	e->rcpts = xcalloc(nrcpt, sizeof *e->rcpts);
	e->rcpt_count = nrcpt;
	for (size_t i = 0; i < nrcpt; i++) {
		struct queue_rcpt *r = &e->rcpts[i];

		r->address = xasprintf("user%zu@example.com", i);
		r->orcpt = xstrdup("");
		r->state = QUEUE_RCPT_PENDING;
		r->next_try = next_try;
		r->last_status = xstrdup("");
		r->last_response = xstrdup("");
	}
}

static void put_ok(struct queue_store *q, const struct queue_envelope *e)
{
	char *error = NULL;

	if (queue_store_put(q, e, &error) < 0)
		fail_msg("put %s: %s", e->id, error);
}

static void commit_ok(struct queue_store *q)
{
	char *error = NULL;

	if (queue_store_commit(q, &error) < 0)
		fail_msg("commit: %s", error);
}

/* put_new - make, put and free envelope n. */
static void put_new(struct queue_store *q, unsigned n, size_t nrcpt, long long next_try)
{
	struct queue_envelope e;

	make_env(&e, n, nrcpt, next_try);
	put_ok(q, &e);
	queue_envelope_free(&e);
}

static void assert_rcpt_equal(const struct queue_rcpt *a, const struct queue_rcpt *b)
{
	assert_string_equal(a->address, b->address);
	assert_string_equal(a->orcpt, b->orcpt != NULL ? b->orcpt : "");
	assert_int_equal(a->notify, b->notify);
	assert_int_equal(a->state, b->state);
	assert_int_equal(a->attempts, b->attempts);
	assert_int_equal(a->next_try, b->next_try);
	assert_string_equal(a->last_status, b->last_status != NULL ? b->last_status : "");
	assert_string_equal(a->last_response, b->last_response != NULL ? b->last_response : "");
}

/* assert_env_equal - got (from the store) equals want (NULL strings as ""). */
static void assert_env_equal(const struct queue_envelope *got, const struct queue_envelope *want)
{
	assert_string_equal(got->id, want->id);
	assert_int_equal(got->arrival, want->arrival);
	assert_string_equal(got->sender, want->sender != NULL ? want->sender : "");
	assert_int_equal(got->size, want->size);
	assert_string_equal(got->envid, want->envid != NULL ? want->envid : "");
	assert_string_equal(got->ret, want->ret != NULL ? want->ret : "");
	assert_string_equal(got->client, want->client != NULL ? want->client : "");
	assert_int_equal(got->held, want->held);
	assert_int_equal(got->rcpt_count, want->rcpt_count);
	for (size_t i = 0; i < want->rcpt_count; i++)
		assert_rcpt_equal(&got->rcpts[i], &want->rcpts[i]);
}

static int get_one(struct queue_store *q, const char *id, struct queue_envelope *e)
{
	char *error = NULL;
	int rc = queue_store_get(q, id, e, &error);

	if (rc < 0)
		fail_msg("get %s: %s", id, error);
	return rc;
}

/* due_ids - the IDs queue_store_due returns, as "n,n,n" of test_id numbers. */
static char *due_ids(struct queue_store *q, long long now, size_t max)
{
	struct queue_envelope *list = NULL;
	size_t count = 0;
	char *error = NULL;
	struct buf out = BUF_INIT;

	if (queue_store_due(q, now, max, &list, &count, &error) < 0)
		fail_msg("due: %s", error);
	for (size_t i = 0; i < count; i++) {
		unsigned n = (unsigned)(queue_id_usec(list[i].id) - 1700000000000000LL);

		buf_printf(&out, "%s%u", i > 0 ? "," : "", n);
	}
	queue_envelope_list_free(&list, count);
	assert_null(list);
	return buf_steal(&out);
}

static void assert_due(struct queue_store *q, long long now, size_t max, const char *want)
{
	char *got = due_ids(q, now, max);

	if (strcmp(got, want) != 0)
		fail_msg("due(now=%lld, max=%zu) = \"%s\", want \"%s\"", now, max, got, want);
	free(got);
}

struct collect {
	struct buf ids;
	size_t count;
	size_t stop_after; /* 0: never */
};

static int collect_fn(const struct queue_envelope *e, void *arg)
{
	struct collect *c = arg;
	unsigned n = (unsigned)(queue_id_usec(e->id) - 1700000000000000LL);

	buf_printf(&c->ids, "%s%u", c->count > 0 ? "," : "", n);
	c->count++;
	return c->stop_after != 0 && c->count == c->stop_after;
}

static void assert_foreach(struct queue_store *q, size_t stop_after, const char *want)
{
	struct collect c = { BUF_INIT, 0, stop_after };
	char *error = NULL;

	if (queue_store_foreach(q, collect_fn, &c, &error) < 0)
		fail_msg("foreach: %s", error);
	if (strcmp(buf_cstr(&c.ids), want) != 0)
		fail_msg("foreach = \"%s\", want \"%s\"", buf_cstr(&c.ids), want);
	buf_free(&c.ids);
}

/* assert_error - rc is -1 and *error_p (read after rc was computed: pass
 * the address) mentions text; frees it and sets it to NULL. */
static void assert_error(int rc, char **error_p, const char *text)
{
	char *error = *error_p;

	*error_p = NULL;
	assert_int_equal(rc, -1);
	assert_non_null(error);
	if (strstr(error, text) == NULL)
		fail_msg("error \"%s\" does not mention \"%s\"", error, text);
	free(error);
}

/* ---- tests for both backends ----------------------------------------- */

static void test_put_get(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope e, got;
	char id[QUEUE_ID_SIZE];

	assert_string_equal(queue_store_backend(f->q), f->be->name);
	make_env(&e, 1, 3, 1700000100);
	free(e.envid);
	e.envid = xstrdup("QQ314159");
	free(e.ret);
	e.ret = xstrdup("HDRS");
	free(e.sender);
	e.sender = xstrdup(""); /* the null sender */
	e.rcpts[0].state = QUEUE_RCPT_DELIVERED;
	e.rcpts[0].last_status = (free(e.rcpts[0].last_status), xstrdup("2.0.0"));
	e.rcpts[0].last_response = (free(e.rcpts[0].last_response), xstrdup("250 2.0.0 Ok: queued as X"));
	e.rcpts[1].state = QUEUE_RCPT_DEFERRED;
	e.rcpts[1].attempts = 7;
	e.rcpts[1].notify = 0x5;
	e.rcpts[1].orcpt = (free(e.rcpts[1].orcpt), xstrdup("rfc822;Original@Example.COM"));
	e.rcpts[1].last_status = (free(e.rcpts[1].last_status), xstrdup("4.2.2"));
	e.rcpts[1].last_response = (free(e.rcpts[1].last_response),
				    xstrdup("452-4.2.2 Mailbox full\n452 4.2.2 try later \xc3\xa9"));
	e.rcpts[2].state = QUEUE_RCPT_FAILED;
	e.rcpts[2].last_status = (free(e.rcpts[2].last_status), xstrdup("5.1.10"));
	put_ok(f->q, &e);
	commit_ok(f->q);
	assert_int_equal(get_one(f->q, e.id, &got), 1);
	assert_env_equal(&got, &e);
	assert_int_equal(queue_envelope_next_try(&got), 1700000100);
	queue_envelope_free(&got);

	/* NULL strings are stored as "" */
	free(e.client);
	e.client = NULL;
	free(e.rcpts[2].orcpt);
	e.rcpts[2].orcpt = NULL;
	put_ok(f->q, &e);
	assert_int_equal(get_one(f->q, e.id, &got), 1);
	assert_string_equal(got.client, "");
	assert_string_equal(got.rcpts[2].orcpt, "");
	queue_envelope_free(&got);
	queue_envelope_free(&e);

	/* not there */
	test_id(id, 99);
	memset(&got, 0x55, sizeof got);
	assert_int_equal(get_one(f->q, id, &got), 0);
	assert_null(got.sender);
	assert_int_equal(got.rcpt_count, 0);
	queue_envelope_free(&got); /* fine on a zeroed envelope */
	queue_envelope_free(NULL);
}

static void test_replace(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope e, got;

	make_env(&e, 1, 1, 100);
	put_ok(f->q, &e);
	commit_ok(f->q);
	assert_due(f->q, 1000, 10, "1");
	/* a new try time moves the envelope in the index: no stale entry */
	e.rcpts[0].state = QUEUE_RCPT_DEFERRED;
	e.rcpts[0].attempts = 1;
	e.rcpts[0].next_try = 2000;
	put_ok(f->q, &e);
	commit_ok(f->q);
	assert_due(f->q, 1000, 10, "");
	assert_due(f->q, 2000, 10, "1");
	assert_int_equal(get_one(f->q, e.id, &got), 1);
	assert_env_equal(&got, &e);
	queue_envelope_free(&got);
	/* all done: out of the index, still stored */
	e.rcpts[0].state = QUEUE_RCPT_DELIVERED;
	put_ok(f->q, &e);
	commit_ok(f->q);
	assert_due(f->q, LLONG_MAX, 10, "");
	assert_foreach(f->q, 0, "1");
	queue_envelope_free(&e);
}

static void test_delete(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope got;
	char id[QUEUE_ID_SIZE], *error = NULL;

	put_new(f->q, 1, 1, 10);
	put_new(f->q, 2, 1, 20);
	commit_ok(f->q);
	test_id(id, 1);
	assert_int_equal(queue_store_delete(f->q, id, &error), 0);
	commit_ok(f->q);
	assert_int_equal(get_one(f->q, id, &got), 0);
	assert_due(f->q, 100, 10, "2");
	assert_foreach(f->q, 0, "2");
	/* deleting what is not there is fine */
	assert_int_equal(queue_store_delete(f->q, id, &error), 0);
	commit_ok(f->q);
	assert_error(queue_store_delete(f->q, "../etc/passwd", &error), &error, "invalid queue ID");
	assert_foreach(f->q, 0, "2");
}

static void test_staged_reads(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope got;
	char id[QUEUE_ID_SIZE], *error = NULL;
	struct queue_store_stats st;

	assert_int_equal(queue_store_staged(f->q), 0);
	put_new(f->q, 3, 1, 10);
	put_new(f->q, 1, 1, 30);
	test_id(id, 1);
	/* reads see staged changes at once */
	assert_int_equal(get_one(f->q, id, &got), 1);
	queue_envelope_free(&got);
	assert_due(f->q, 100, 10, "3,1");
	assert_foreach(f->q, 0, "1,3");
	assert_int_equal(queue_store_delete(f->q, id, &error), 0);
	assert_int_equal(get_one(f->q, id, &got), 0);
	assert_int_equal(queue_store_staged(f->q), 3);
	assert_int_equal(queue_store_stats(f->q, &st, &error), 0);
	assert_int_equal(st.staged, 3);
	assert_int_equal(st.puts, 2);
	assert_int_equal(st.deletes, 1);
	assert_int_equal(st.commits, 0);
	commit_ok(f->q);
	assert_int_equal(queue_store_staged(f->q), 0);
	/* nothing staged: commit does nothing */
	commit_ok(f->q);
	assert_int_equal(queue_store_stats(f->q, &st, &error), 0);
	assert_int_equal(st.commits, 1);
	assert_foreach(f->q, 0, "3");
}

static void test_due_order(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope e;

	/* inserted out of order; 2 and 4 tie at 100 and come in ID order */
	put_new(f->q, 4, 1, 100);
	put_new(f->q, 5, 2, 300);
	put_new(f->q, 1, 1, 200);
	put_new(f->q, 2, 1, 100);
	put_new(f->q, 7, 1, 0);
	/* held: never due */
	make_env(&e, 3, 1, 50);
	e.held = true;
	put_ok(f->q, &e);
	queue_envelope_free(&e);
	/* nothing to do: never due */
	make_env(&e, 6, 2, 10);
	e.rcpts[0].state = QUEUE_RCPT_DELIVERED;
	e.rcpts[1].state = QUEUE_RCPT_FAILED;
	put_ok(f->q, &e);
	queue_envelope_free(&e);
	commit_ok(f->q);

	assert_due(f->q, 250, 100, "7,2,4,1");
	assert_due(f->q, 250, 2, "7,2");
	assert_due(f->q, 250, 0, "");
	assert_due(f->q, 100, 100, "7,2,4");
	assert_due(f->q, 99, 100, "7");
	assert_due(f->q, 0, 100, "7");
	assert_due(f->q, -1, 100, "");
	assert_due(f->q, LLONG_MAX, 100, "7,2,4,1,5");
	assert_foreach(f->q, 0, "1,2,3,4,5,6,7");

	/* released from hold: due at its time */
	make_env(&e, 3, 1, 50);
	put_ok(f->q, &e);
	queue_envelope_free(&e);
	commit_ok(f->q);
	assert_due(f->q, 250, 100, "7,3,2,4,1");
}

static void test_next_try_rules(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope e;

	/* the earliest PENDING/DEFERRED recipient counts; done ones do not */
	make_env(&e, 1, 4, 500);
	e.rcpts[0].state = QUEUE_RCPT_DELIVERED;
	e.rcpts[0].next_try = 5;
	e.rcpts[1].state = QUEUE_RCPT_FAILED;
	e.rcpts[1].next_try = 6;
	e.rcpts[2].state = QUEUE_RCPT_DEFERRED;
	e.rcpts[2].next_try = 400;
	assert_int_equal(queue_envelope_next_try(&e), 400);
	put_ok(f->q, &e);
	commit_ok(f->q);
	assert_due(f->q, 399, 10, "");
	assert_due(f->q, 400, 10, "1");
	e.rcpts[2].state = QUEUE_RCPT_DELIVERED;
	assert_int_equal(queue_envelope_next_try(&e), 500);
	e.rcpts[3].state = QUEUE_RCPT_FAILED;
	assert_int_equal(queue_envelope_next_try(&e), -1);
	/* held does not change the time, only the index */
	e.rcpts[3].state = QUEUE_RCPT_PENDING;
	e.held = true;
	assert_int_equal(queue_envelope_next_try(&e), 500);
	queue_envelope_free(&e);
	make_env(&e, 2, 0, 0);
	assert_int_equal(queue_envelope_next_try(&e), -1);
	queue_envelope_free(&e);
}

/* skip_odd_fn - pass over the envelopes whose test number is odd. */
static bool skip_odd_fn(const char *id, void *arg)
{
	(void)arg;
	return (queue_id_usec(id) - 1700000000000000LL) % 2 == 1;
}

static void test_foreach(void **state)
{
	struct fixture *f = *state;
	static const unsigned order[] = { 9, 3, 7, 1, 5, 2, 8, 4, 6 };
	struct collect c = { BUF_INIT, 0, 0 };
	char *error = NULL;

	assert_foreach(f->q, 0, "");
	for (size_t i = 0; i < NELEM(order); i++)
		put_new(f->q, order[i], 1, 1000 - order[i]);
	commit_ok(f->q);
	assert_foreach(f->q, 0, "1,2,3,4,5,6,7,8,9");
	assert_foreach(f->q, 3, "1,2,3");
	assert_foreach(f->q, 1, "1");

	/* the due walk, without a limit, stopped by the callback */
	c.stop_after = 4;
	assert_int_equal(queue_store_foreach_due(f->q, 995, NULL, NULL, collect_fn, &c, &error), 0);
	assert_string_equal(buf_cstr(&c.ids), "9,8,7,6");
	buf_free(&c.ids);

	/* skip passes IDs over before they are decoded or shown */
	c.stop_after = 0;
	c.count = 0;
	assert_int_equal(queue_store_foreach_due(f->q, 995, skip_odd_fn, NULL, collect_fn, &c, &error), 0);
	assert_string_equal(buf_cstr(&c.ids), "8,6");
	buf_free(&c.ids);
}

struct reentry {
	struct queue_store *q;
	int calls;
};

static int reentry_fn(const struct queue_envelope *e, void *arg)
{
	struct reentry *r = arg;
	struct queue_envelope got;
	struct queue_envelope *list = NULL;
	size_t count = 0;
	char *error = NULL;

	r->calls++;
	assert_error(queue_store_put(r->q, e, &error), &error, "inside a scan");
	error = NULL;
	assert_error(queue_store_delete(r->q, e->id, &error), &error, "inside a scan");
	error = NULL;
	assert_error(queue_store_get(r->q, e->id, &got, &error), &error, "inside a scan");
	error = NULL;
	assert_error(queue_store_commit(r->q, &error), &error, "inside a scan");
	error = NULL;
	assert_error(queue_store_due(r->q, 0, 10, &list, &count, &error), &error, "inside a scan");
	error = NULL;
	assert_error(queue_store_checkpoint(r->q, &error), &error, "inside a scan");
	return 0;
}

static void test_reentry_refused(void **state)
{
	struct fixture *f = *state;
	struct reentry r = { f->q, 0 };
	char *error = NULL;

	put_new(f->q, 1, 1, 10);
	put_new(f->q, 2, 1, 10);
	commit_ok(f->q);
	assert_int_equal(queue_store_foreach(f->q, reentry_fn, &r, &error), 0);
	assert_int_equal(queue_store_foreach_due(f->q, 100, NULL, NULL, reentry_fn, &r, &error), 0);
	assert_int_equal(r.calls, 4);
	/* usable again afterwards */
	put_new(f->q, 3, 1, 10);
	commit_ok(f->q);
	assert_foreach(f->q, 0, "1,2,3");
}

static void test_invalid_envelopes(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *what;
		const char *want;
	} cases[] = {
		{ "id", "invalid queue ID" },
		{ "id_lower", "invalid queue ID" },
		{ "arrival", "negative arrival" },
		{ "size", "negative size" },
		{ "ret", "RET" },
		{ "sender_long", "sender too long" },
		{ "envid_long", "ENVID too long" },
		{ "client_long", "client description too long" },
		{ "rcpt_empty", "recipient address is empty" },
		{ "rcpt_null", "recipient address is empty" },
		{ "state", "invalid recipient state" },
		{ "attempts", "negative attempt" },
		{ "notify", "negative notify" },
		{ "next_try", "negative next attempt" },
		{ "status", "enhanced status" },
		{ "status2", "enhanced status" },
		{ "status3", "enhanced status" },
		{ "response_long", "last response too long" },
		{ "too_many", "too many recipients" },
		{ "no_rcpts", "recipient count without" },
	};
	char *error = NULL;

	/* one good change is staged first: refusals must leave it alone */
	put_new(f->q, 1, 1, 10);
	for (size_t i = 0; i < NELEM(cases); i++) {
		const char *w = cases[i].what;
		struct queue_envelope e;
		size_t saved_count = 0;
		struct queue_rcpt *saved = NULL;

		make_env(&e, 2, 1, 10);
		if (strcmp(w, "id") == 0)
			strcpy(e.id, "XYZ");
		else if (strcmp(w, "id_lower") == 0)
			e.id[0] = 'a', e.id[1] = 'b', e.id[QUEUE_ID_LEN - 1] = 'f';
		else if (strcmp(w, "arrival") == 0)
			e.arrival = -1;
		else if (strcmp(w, "size") == 0)
			e.size = -5;
		else if (strcmp(w, "ret") == 0)
			e.ret = (free(e.ret), xstrdup("full"));
		else if (strcmp(w, "sender_long") == 0) {
			free(e.sender);
			e.sender = xmalloc(QUEUE_ADDRESS_MAX + 2);
			memset(e.sender, 'a', QUEUE_ADDRESS_MAX + 1);
			e.sender[QUEUE_ADDRESS_MAX + 1] = '\0';
		} else if (strcmp(w, "envid_long") == 0) {
			free(e.envid);
			e.envid = xmalloc(QUEUE_ENVID_MAX + 2);
			memset(e.envid, 'e', QUEUE_ENVID_MAX + 1);
			e.envid[QUEUE_ENVID_MAX + 1] = '\0';
		} else if (strcmp(w, "client_long") == 0) {
			free(e.client);
			e.client = xmalloc(QUEUE_CLIENT_MAX + 2);
			memset(e.client, 'c', QUEUE_CLIENT_MAX + 1);
			e.client[QUEUE_CLIENT_MAX + 1] = '\0';
		} else if (strcmp(w, "rcpt_empty") == 0)
			e.rcpts[0].address[0] = '\0';
		else if (strcmp(w, "rcpt_null") == 0)
			e.rcpts[0].address = (free(e.rcpts[0].address), NULL);
		else if (strcmp(w, "state") == 0)
			e.rcpts[0].state = (enum queue_rcpt_state)7;
		else if (strcmp(w, "attempts") == 0)
			e.rcpts[0].attempts = -1;
		else if (strcmp(w, "notify") == 0)
			e.rcpts[0].notify = -1;
		else if (strcmp(w, "next_try") == 0)
			e.rcpts[0].next_try = -1;
		else if (strcmp(w, "status") == 0)
			e.rcpts[0].last_status = (free(e.rcpts[0].last_status), xstrdup("4.2"));
		else if (strcmp(w, "status2") == 0)
			e.rcpts[0].last_status = (free(e.rcpts[0].last_status), xstrdup("3.0.0"));
		else if (strcmp(w, "status3") == 0)
			e.rcpts[0].last_status = (free(e.rcpts[0].last_status), xstrdup("4.1234.1"));
		else if (strcmp(w, "response_long") == 0) {
			free(e.rcpts[0].last_response);
			e.rcpts[0].last_response = xmalloc(QUEUE_RESPONSE_MAX + 2);
			memset(e.rcpts[0].last_response, 'r', QUEUE_RESPONSE_MAX + 1);
			e.rcpts[0].last_response[QUEUE_RESPONSE_MAX + 1] = '\0';
		} else if (strcmp(w, "too_many") == 0) {
			saved_count = e.rcpt_count;
			e.rcpt_count = QUEUE_RCPT_MAX + 1;
		} else if (strcmp(w, "no_rcpts") == 0) {
			saved = e.rcpts;
			saved_count = e.rcpt_count;
			e.rcpts = NULL;
		} else
			fail_msg("unknown case %s", w);
		error = NULL;
		assert_error(queue_store_put(f->q, &e, &error), &error, cases[i].want);
		if (saved != NULL)
			e.rcpts = saved;
		if (saved_count != 0)
			e.rcpt_count = saved_count;
		queue_envelope_free(&e);
		assert_int_equal(queue_store_staged(f->q), 1);
	}
	commit_ok(f->q);
	assert_foreach(f->q, 0, "1");
}

static void test_limits(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope e, got;

	/* exactly at every limit: accepted and returned intact */
	make_env(&e, 1, 1000, 10);
	free(e.rcpts[999].last_response);
	e.rcpts[999].last_response = xmalloc(QUEUE_RESPONSE_MAX + 1);
	memset(e.rcpts[999].last_response, 'r', QUEUE_RESPONSE_MAX);
	e.rcpts[999].last_response[QUEUE_RESPONSE_MAX] = '\0';
	free(e.sender);
	e.sender = xmalloc(QUEUE_ADDRESS_MAX + 1);
	memset(e.sender, 's', QUEUE_ADDRESS_MAX);
	e.sender[QUEUE_ADDRESS_MAX] = '\0';
	e.rcpts[500].state = QUEUE_RCPT_DEFERRED;
	e.rcpts[500].next_try = 5;
	e.rcpts[500].last_status = (free(e.rcpts[500].last_status), xstrdup("4.999.999"));
	e.size = LLONG_MAX;
	e.rcpts[3].attempts = INT_MAX;
	e.rcpts[3].notify = INT_MAX;
	put_ok(f->q, &e);
	commit_ok(f->q);
	assert_int_equal(get_one(f->q, e.id, &got), 1);
	assert_env_equal(&got, &e);
	queue_envelope_free(&got);
	assert_due(f->q, 5, 10, "1");
	queue_envelope_free(&e);
}

static void test_many(void **state)
{
	struct fixture *f = *state;
	enum { N = 3000 };
	struct queue_envelope *list = NULL;
	size_t count = 0;
	char *error = NULL;
	struct collect c = { BUF_INIT, 0, 0 };

	/* several commits, times spread with many ties */
	for (unsigned i = 0; i < N; i++) {
		put_new(f->q, i, 1, (long long)((i * 7919u) % 500u));
		if (i % 100 == 99)
			commit_ok(f->q);
	}
	commit_ok(f->q);
	assert_int_equal(queue_store_due(f->q, LLONG_MAX, SIZE_MAX, &list, &count, &error), 0);
	assert_int_equal(count, N);
	for (size_t i = 1; i < count; i++) {
		long long a = queue_envelope_next_try(&list[i - 1]), b = queue_envelope_next_try(&list[i]);

		assert_true(a < b || (a == b && strcmp(list[i - 1].id, list[i].id) < 0));
	}
	queue_envelope_list_free(&list, count);
	assert_int_equal(queue_store_foreach(f->q, collect_fn, &c, &error), 0);
	assert_int_equal(c.count, N);
	buf_free(&c.ids);
	assert_int_equal(queue_store_checkpoint(f->q, &error), 0);
	assert_int_equal(queue_store_checkpoint(f->q, &error), 0); /* nothing new: cheap */
}

/* One log sync per commit, whatever the size of the batch. */
static void test_one_sync_per_commit(void **state)
{
	struct fixture *f = *state;
	struct queue_store_stats before, after;
	char *error = NULL;
	unsigned n = 0;

	assert_int_equal(queue_store_stats(f->q, &before, &error), 0);
	for (int batch = 0; batch < 5; batch++) {
		for (int i = 0; i < 20; i++)
			put_new(f->q, n++, 1, 10);
		commit_ok(f->q);
	}
	commit_ok(f->q); /* nothing staged: no sync */
	assert_int_equal(queue_store_stats(f->q, &after, &error), 0);
	assert_int_equal(after.commits - before.commits, 5);
	assert_int_equal(after.puts - before.puts, 100);
	assert_int_equal(after.log_syncs - before.log_syncs, 5);
}

/* raw_put - store bytes under id, bypassing the encoder (as corruption
 * on disk would). */
static void raw_put(struct queue_store *q, const char *id, const void *data, size_t len)
{
	char *error = NULL;

	if (q->ops->put(q, id, data, len, &error) < 0)
		fail_msg("raw put: %s", error);
	q->staged++;
}

static void test_corrupt_records(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope e, got;
	struct buf rec = BUF_INIT;
	char id2[QUEUE_ID_SIZE], id3[QUEUE_ID_SIZE], id4[QUEUE_ID_SIZE], *error = NULL;
	/* a record header saying "due at 5", then garbage */
	static const uint8_t garbage[] = { 'Y', 'Q', 1, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 3, 'x', 'y', 'z' };

	put_new(f->q, 1, 1, 10);
	test_id(id2, 2);
	raw_put(f->q, id2, garbage, sizeof garbage);
	/* a good record stored under the wrong ID */
	make_env(&e, 5, 1, 10);
	assert_int_equal(queue_record_encode(&e, &rec, &error), 0);
	test_id(id3, 3);
	raw_put(f->q, id3, rec.data, rec.len);
	/* a record of a future version */
	rec.data[2] = 3;
	test_id(id4, 4);
	raw_put(f->q, id4, rec.data, rec.len);
	buf_free(&rec);
	queue_envelope_free(&e);
	put_new(f->q, 6, 1, 10);
	commit_ok(f->q);

	assert_error(queue_store_get(f->q, id2, &got, &error), &error, "corrupt queue record");
	assert_null(got.sender);
	error = NULL;
	assert_error(queue_store_get(f->q, id3, &got, &error), &error, "another ID");
	error = NULL;
	assert_error(queue_store_get(f->q, id4, &got, &error), &error, "version 3");
	/* scans skip them (with a warning) and go on */
	assert_foreach(f->q, 0, "1,6");
	assert_due(f->q, 100, 10, "1,6");
	/* and they can be deleted */
	error = NULL;
	assert_int_equal(queue_store_delete(f->q, id2, &error), 0);
	assert_int_equal(queue_store_delete(f->q, id3, &error), 0);
	assert_int_equal(queue_store_delete(f->q, id4, &error), 0);
	commit_ok(f->q);
	assert_int_equal(get_one(f->q, id2, &got), 0);
	assert_due(f->q, 100, 10, "1,6");
}

/* ---- BDB only --------------------------------------------------------- */

static void test_bdb_reopen(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope e, got;
	char id[QUEUE_ID_SIZE];

	make_env(&e, 1, 2, 300);
	put_ok(f->q, &e);
	put_new(f->q, 2, 1, 100);
	put_new(f->q, 3, 1, 200);
	commit_ok(f->q);
	test_id(id, 3);
	{
		char *error = NULL;

		assert_int_equal(queue_store_delete(f->q, id, &error), 0);
	}
	commit_ok(f->q);
	/* staged, never committed: close makes it durable anyway */
	put_new(f->q, 4, 1, 50);
	reopen(f);
	assert_int_equal(get_one(f->q, e.id, &got), 1);
	assert_env_equal(&got, &e);
	queue_envelope_free(&got);
	assert_int_equal(get_one(f->q, id, &got), 0);
	/* the index is kept up to date after a reopen (associate on open) */
	assert_due(f->q, 1000, 10, "4,2,1");
	put_new(f->q, 5, 1, 150);
	commit_ok(f->q);
	reopen(f);
	assert_due(f->q, 1000, 10, "4,2,5,1");
	assert_foreach(f->q, 0, "1,2,4,5");
	queue_envelope_free(&e);
}

static void test_bdb_second_owner(void **state)
{
	struct fixture *f = *state;
	char *error = NULL, pid[32];

	assert_null(queue_store_open_bdb(f->dir, &error));
	assert_non_null(error);
	snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
	if (strstr(error, "in use") == NULL || strstr(error, pid) == NULL)
		fail_msg("unexpected error: %s", error);
	free(error);
	/* the first owner is unharmed */
	put_new(f->q, 1, 1, 10);
	commit_ok(f->q);
	/* a path that cannot be a directory */
	error = NULL;
	assert_null(queue_store_open_bdb("/dev/null/queue", &error));
	assert_non_null(error);
	free(error);
}

/* panic_child - in a child: open, commit envelope 2, panic the store, see
 * every call fail. 0 if all went as expected. The child then dies by
 * SIGKILL without closing: what the owner does after a panic is exit, and
 * libdb frees nothing of a panicked DB_PRIVATE environment (valgrind
 * would count its regions as leaks at a normal exit). */
static int panic_child(const char *dir)
{
	struct queue_store *q;
	struct queue_envelope e, got;
	char *error = NULL;
	int rc = 0;

	q = queue_store_open_bdb(dir, &error);
	if (q == NULL)
		return 10;
	make_env(&e, 2, 1, 10);
	if (queue_store_put(q, &e, &error) < 0 || queue_store_commit(q, &error) < 0)
		rc = 11;
	else if (queue_store_failed(q) || xbdb_queue_inject_panic(q) < 0 || !queue_store_failed(q))
		rc = 12;
	else if (queue_store_get(q, e.id, &got, &error) != -1 || strstr(error, "restart") == NULL)
		rc = 13;
	else if ((free(error), queue_store_put(q, &e, &error)) != -1 || strstr(error, "needs recovery") == NULL)
		rc = 14;
	else if ((free(error), queue_store_commit(q, &error)) != -1 || strstr(error, "needs recovery") == NULL)
		rc = 15;
	free(error);
	queue_envelope_free(&e);
	return rc;
}

static void test_bdb_panic(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope got;
	char id[QUEUE_ID_SIZE];
	pid_t pid;
	int status, fds[2], rc = -1;

	put_new(f->q, 1, 1, 10);
	commit_ok(f->q);
	/* the child must be the only owner */
	queue_store_close(&f->q);
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		rc = panic_child(f->dir);
		if (write(fds[1], &rc, sizeof rc) != sizeof rc)
			_exit(1);
		for (;;)
			pause(); /* for the SIGKILL */
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &rc, sizeof rc), sizeof rc);
	close(fds[0]);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	if (rc != 0)
		fail_msg("panic child: step %d went wrong", rc);
	/* what master does for the owner: start it again; the open recovers */
	f->q = fixture_open(f);
	assert_false(queue_store_failed(f->q));
	test_id(id, 2);
	assert_int_equal(get_one(f->q, id, &got), 1);
	queue_envelope_free(&got);
	assert_foreach(f->q, 0, "1,2");
	assert_due(f->q, 10, 10, "1,2");
}

/* ---- RAM only --------------------------------------------------------- */

static void test_ram_crash(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope e;
	char id[QUEUE_ID_SIZE], *error = NULL;

	put_new(f->q, 1, 1, 10);
	make_env(&e, 2, 1, 20);
	put_ok(f->q, &e);
	commit_ok(f->q);
	/* staged: a new one, a change, a delete */
	put_new(f->q, 3, 1, 30);
	e.rcpts[0].next_try = 5;
	put_ok(f->q, &e);
	test_id(id, 1);
	assert_int_equal(queue_store_delete(f->q, id, &error), 0);
	put_new(f->q, 3, 2, 40);
	assert_due(f->q, 100, 10, "2,3");
	queue_store_ram_crash(f->q);
	assert_int_equal(queue_store_staged(f->q), 0);
	assert_due(f->q, 100, 10, "1,2");
	assert_foreach(f->q, 0, "1,2");
	queue_envelope_free(&e);
}

static void test_ram_failures(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope e;
	char *error = NULL;

	put_new(f->q, 1, 1, 10);
	queue_store_ram_fail(f->q, QUEUE_RAM_PUT | QUEUE_RAM_COMMIT, 2);
	make_env(&e, 2, 1, 10);
	assert_error(queue_store_put(f->q, &e, &error), &error, "injected");
	error = NULL;
	assert_error(queue_store_commit(f->q, &error), &error, "injected");
	/* the failed commit left the staged change staged, not durable */
	assert_int_equal(queue_store_staged(f->q), 1);
	put_ok(f->q, &e);
	queue_envelope_free(&e);
	commit_ok(f->q);
	queue_store_ram_crash(f->q);
	assert_foreach(f->q, 0, "1,2");
	queue_store_ram_fail(f->q, QUEUE_RAM_READ, 1);
	error = NULL;
	assert_error(queue_store_foreach(f->q, collect_fn, NULL, &error), &error, "injected");
	queue_store_ram_fail(f->q, QUEUE_RAM_CHECKPOINT, 1);
	error = NULL;
	assert_error(queue_store_checkpoint(f->q, &error), &error, "injected");
	assert_int_equal(queue_store_checkpoint(f->q, &error), 0);
	queue_store_ram_panic(f->q);
	assert_true(queue_store_failed(f->q));
	error = NULL;
	assert_error(queue_store_commit(f->q, &error), &error, "needs recovery");
}

/* ---- records ---------------------------------------------------------- */

static void encode_ok(const struct queue_envelope *e, struct buf *out)
{
	char *error = NULL;

	if (queue_record_encode(e, out, &error) < 0)
		fail_msg("encode: %s", error);
}

/* Every cut of a record, and every single-bit flip, is refused or decodes
 * to an envelope that encodes back to exactly those bytes (the encoding
 * is canonical, so nothing was silently lost or invented). */
static void test_record_mutations(void **state)
{
	struct queue_envelope e, got;
	struct buf rec = BUF_INIT, again = BUF_INIT;
	char *error = NULL;
	size_t accepted = 0;

	(void)state;
	make_env(&e, 1, 2, 77);
	e.rcpts[1].state = QUEUE_RCPT_DEFERRED;
	e.rcpts[1].last_status = (free(e.rcpts[1].last_status), xstrdup("4.4.1"));
	encode_ok(&e, &rec);
	assert_int_equal(queue_record_decode(rec.data, rec.len, &got, &error), 0);
	assert_env_equal(&got, &e);
	queue_envelope_free(&got);

	for (size_t len = 0; len < rec.len; len++) {
		uint8_t *cut = xmalloc(len); /* exact size: valgrind sees overreads */

		if (len > 0)
			memcpy(cut, rec.data, len);
		error = NULL;
		assert_int_equal(queue_record_decode(cut, len, &got, &error), -1);
		assert_non_null(error);
		free(error);
		assert_null(got.sender);
		free(cut);
	}
	for (size_t i = 0; i < rec.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			uint8_t *m = xmalloc(rec.len);

			memcpy(m, rec.data, rec.len);
			m[i] ^= (uint8_t)(1u << bit);
			error = NULL;
			if (queue_record_decode(m, rec.len, &got, &error) == 0) {
				buf_reset(&again);
				encode_ok(&got, &again);
				assert_int_equal(again.len, rec.len);
				assert_memory_equal(again.data, m, rec.len);
				queue_envelope_free(&got);
				accepted++;
			} else {
				free(error);
			}
			free(m);
		}
	}
	/* some flips only change text or numbers: those are accepted */
	assert_true(accepted > 0);
	buf_free(&rec);
	buf_free(&again);
	queue_envelope_free(&e);
}

/* build_record - a record with our header around a hand-made frame. */
static void build_record(struct buf *out, bool indexed, uint64_t key, const struct buf *frame)
{
	uint8_t h[12] = { 'Y', 'Q', 1, indexed ? 1 : 0 };

	for (int i = 0; i < 8; i++)
		h[4 + i] = (uint8_t)(key >> (56 - 8 * i));
	buf_reset(out);
	buf_append(out, h, sizeof h);
	buf_append(out, frame->data, frame->len);
}

static void rcpt_frame(struct buf *rcpts, const char *address, int64_t state, int64_t next_try, bool extra)
{
	struct buf one = BUF_INIT;

	ipc_begin(&one);
	ipc_put_str(&one, "address", address);
	ipc_put_str(&one, "orcpt", "");
	ipc_put_int(&one, "notify", 0);
	ipc_put_int(&one, "state", state);
	ipc_put_int(&one, "attempts", 0);
	ipc_put_int(&one, "next_try", next_try);
	ipc_put_str(&one, "last_status", "");
	ipc_put_str(&one, "last_response", "");
	if (extra)
		ipc_put_int(&one, "priority", 1);
	ipc_end(&one);
	buf_append(rcpts, one.data, one.len);
	buf_free(&one);
}

static void env_frame(struct buf *frame, int64_t rcpt_count, const struct buf *rcpts, bool extra, bool held)
{
	char id[QUEUE_ID_SIZE];

	test_id(id, 1);
	ipc_begin(frame);
	ipc_put_str(frame, "id", id);
	ipc_put_int(frame, "arrival", 1);
	ipc_put_str(frame, "sender", "a@b");
	ipc_put_int(frame, "size", 1);
	ipc_put_str(frame, "envid", "");
	ipc_put_str(frame, "ret", "");
	ipc_put_str(frame, "client", "");
	ipc_put_int(frame, "held", held ? 1 : 0);
	ipc_put_int(frame, "rcpt_count", rcpt_count);
	ipc_put_bytes(frame, "rcpts", rcpts->data != NULL ? rcpts->data : (const uint8_t *)"", rcpts->len);
	if (extra)
		ipc_put_str(frame, "comment", "x");
	ipc_end(frame);
}

static void test_record_strict(void **state)
{
	static const struct {
		const char *name;
		int rcpts;        /* recipients in the bytes field */
		int64_t count;    /* rcpt_count field */
		int64_t state;
		bool extra_env, extra_rcpt, held, indexed;
		uint64_t key;
		const char *want; /* NULL: accepted */
	} cases[] = {
		{ "good", 1, 1, 0, false, false, false, true, 9, NULL },
		{ "good held", 1, 1, 0, false, false, true, false, 0, NULL },
		{ "good none", 0, 0, 0, false, false, false, false, 0, NULL },
		{ "done not indexed", 1, 1, 2, false, false, false, false, 0, NULL },
		{ "count too high", 1, 2, 0, false, false, false, true, 9, "fewer recipients" },
		{ "count too low", 2, 1, 0, false, false, false, true, 9, "more recipients" },
		{ "count negative", 0, -1, 0, false, false, false, false, 0, "out of range" },
		{ "unknown env field", 1, 1, 0, true, false, false, true, 9, "unexpected field" },
		{ "unknown rcpt field", 1, 1, 0, false, true, false, true, 9, "unexpected field" },
		{ "bad state", 1, 1, 4, false, false, false, true, 9, "out of range" },
		{ "wrong key", 1, 1, 0, false, false, false, true, 8, "index key" },
		{ "held but indexed", 1, 1, 0, false, false, true, true, 9, "index key" },
		{ "due but not indexed", 1, 1, 0, false, false, false, false, 0, "index key" },
		{ "done but indexed", 1, 1, 3, false, false, false, true, 9, "index key" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct buf rcpts = BUF_INIT, frame = BUF_INIT, rec = BUF_INIT;
		struct queue_envelope got;
		char *error = NULL;
		int rc;

		for (int r = 0; r < cases[i].rcpts; r++)
			rcpt_frame(&rcpts, "x@y", cases[i].state, 9, cases[i].extra_rcpt);
		env_frame(&frame, cases[i].count, &rcpts, cases[i].extra_env, cases[i].held);
		build_record(&rec, cases[i].indexed, cases[i].key, &frame);
		rc = queue_record_decode(rec.data, rec.len, &got, &error);
		if (cases[i].want == NULL) {
			if (rc != 0)
				fail_msg("%s: refused: %s", cases[i].name, error);
			queue_envelope_free(&got);
		} else {
			if (rc == 0)
				fail_msg("%s: accepted", cases[i].name);
			if (strstr(error, cases[i].want) == NULL)
				fail_msg("%s: error \"%s\", want \"%s\"", cases[i].name, error, cases[i].want);
			free(error);
		}
		buf_free(&rcpts);
		buf_free(&frame);
		buf_free(&rec);
	}
}

static void test_record_header(void **state)
{
	struct queue_envelope e, got;
	struct buf rec = BUF_INIT;
	uint64_t key = 1;
	char *error = NULL;

	(void)state;
	make_env(&e, 1, 1, 0x0102030405060708LL);
	encode_ok(&e, &rec);
	assert_true(queue_record_index_key(rec.data, rec.len, &key));
	assert_true(key == 0x0102030405060708ULL);
	/* big-endian in the record: byte order is time order */
	assert_int_equal(rec.data[QUEUE_RECORD_INDEX_KEY_OFFSET], 1);
	assert_int_equal(rec.data[QUEUE_RECORD_INDEX_KEY_OFFSET + 7], 8);
	/* unknown flags and versions are refused */
	rec.data[3] |= 0x80;
	assert_error(queue_record_decode(rec.data, rec.len, &got, &error), &error, "unknown flags");
	rec.data[3] &= 0x7f;
	rec.data[0] = 'X';
	error = NULL;
	assert_error(queue_record_decode(rec.data, rec.len, &got, &error), &error, "not a queue record");
	assert_false(queue_record_index_key(rec.data, rec.len, &key));
	assert_false(queue_record_index_key(rec.data, 5, &key));
	buf_reset(&rec);
	e.held = true;
	encode_ok(&e, &rec);
	assert_false(queue_record_index_key(rec.data, rec.len, &key));
	/* extra bytes after the frame */
	buf_append(&rec, "!", 1);
	error = NULL;
	assert_error(queue_record_decode(rec.data, rec.len, &got, &error), &error, "bad length");
	buf_free(&rec);
	queue_envelope_free(&e);
}

static void test_envelope_copy(void **state)
{
	struct queue_envelope e, c;

	(void)state;
	make_env(&e, 1, 3, 5);
	free(e.envid);
	e.envid = NULL;
	queue_envelope_copy(&c, &e);
	assert_env_equal(&c, &e);
	assert_ptr_not_equal(c.sender, e.sender);
	assert_ptr_not_equal(c.rcpts, e.rcpts);
	queue_envelope_free(&e);
	assert_string_equal(c.rcpts[2].address, "user2@example.com");
	queue_envelope_free(&c);
	assert_string_equal(queue_rcpt_state_name(QUEUE_RCPT_DEFERRED), "deferred");
}

/* ---- main ------------------------------------------------------------- */

struct table_entry {
	const char *name;
	CMUnitTestFunction fn;
};

#define T(f) { #f, f }

/* The table both backends run. */
static const struct table_entry common_tests[] = {
	T(test_put_get),
	T(test_replace),
	T(test_delete),
	T(test_staged_reads),
	T(test_due_order),
	T(test_next_try_rules),
	T(test_foreach),
	T(test_reentry_refused),
	T(test_invalid_envelopes),
	T(test_limits),
	T(test_many),
	T(test_one_sync_per_commit),
	T(test_corrupt_records),
};

static const struct table_entry bdb_tests[] = {
	T(test_bdb_reopen),
	T(test_bdb_second_owner),
	T(test_bdb_panic),
};

static const struct table_entry ram_tests[] = {
	T(test_ram_crash),
	T(test_ram_failures),
};

#define MAX_TESTS (NELEM(common_tests) + NELEM(bdb_tests) + NELEM(ram_tests))

static int run_backend(const struct backend *be, const struct table_entry *extra, size_t extra_count)
{
	struct CMUnitTest tests[MAX_TESTS];
	char names[MAX_TESTS][64];
	size_t n = 0;

	for (size_t i = 0; i < NELEM(common_tests) + extra_count; i++, n++) {
		const struct table_entry *t = i < NELEM(common_tests) ? &common_tests[i] : &extra[i - NELEM(common_tests)];

		snprintf(names[n], sizeof names[n], "%s/%s", be->name, t->name);
		tests[n] = (struct CMUnitTest){ names[n], t->fn, setup, teardown, (void *)be };
	}
	return _cmocka_run_group_tests(be->name, tests, n, NULL, NULL);
}


/* record_as_version_1 - rec (a version 2 record) rewritten as version 1
 * wrote it: the same fields without "warned". */
static void record_as_version_1(const struct buf *rec, struct buf *out)
{
	struct ipc_msg msg;
	const char *why = NULL;
	struct buf frame = BUF_INIT;

	assert_int_equal(ipc_decode(rec->data + 12 + 4, rec->len - 12 - 4, &msg, &why), 0);
	ipc_begin(&frame);
	for (size_t i = 0; i < msg.count; i++) {
		const struct ipc_field *fl = &msg.fields[i];

		if (strcmp(fl->name, "warned") == 0)
			continue;
		if (fl->type == IPC_INT)
			ipc_put_int(&frame, fl->name, fl->num);
		else if (fl->type == IPC_STR)
			ipc_put_str(&frame, fl->name, (const char *)fl->data);
		else
			ipc_put_bytes(&frame, fl->name, fl->data, fl->len);
	}
	ipc_end(&frame);
	ipc_msg_free(&msg);
	buf_append(out, rec->data, 12);
	out->data[2] = 1;
	buf_append(out, frame.data, frame.len);
	buf_free(&frame);
}

/* Version 1 records (before "warned") are still read, as not warned; a
 * version 1 record that has the field is refused (strict per version). */
static void test_record_version_1_still_read(void **state)
{
	struct queue_envelope e, got;
	struct buf rec = BUF_INIT, v1 = BUF_INIT, again = BUF_INIT;
	char *error = NULL;

	(void)state;
	make_env(&e, 7, 2, 100);
	e.warned = true;
	encode_ok(&e, &rec);
	assert_int_equal(rec.data[2], 2);
	assert_int_equal(queue_record_decode(rec.data, rec.len, &got, &error), 0);
	assert_true(got.warned);
	queue_envelope_free(&got);

	record_as_version_1(&rec, &v1);
	assert_int_equal(queue_record_decode(v1.data, v1.len, &got, &error), 0);
	assert_false(got.warned);
	assert_string_equal(got.sender, e.sender);
	assert_int_equal(got.rcpt_count, 2);
	/* written back, it is version 2 */
	encode_ok(&got, &again);
	assert_int_equal(again.data[2], 2);
	queue_envelope_free(&got);

	/* "warned" in a version 1 record: unknown there */
	rec.data[2] = 1;
	assert_error(queue_record_decode(rec.data, rec.len, &got, &error), &error, "corrupt queue record");
	buf_free(&rec);
	buf_free(&v1);
	buf_free(&again);
	queue_envelope_free(&e);
}

int main(void)
{
	const struct CMUnitTest record_tests[] = {
		cmocka_unit_test(test_record_mutations),
		cmocka_unit_test(test_record_strict),
		cmocka_unit_test(test_record_header),
		cmocka_unit_test(test_record_version_1_still_read),
		cmocka_unit_test(test_envelope_copy),
	};
	int failed = 0;

	log_init("test_queue_store", LOG_SINK_STDERR);
	failed += cmocka_run_group_tests_name("record", record_tests, NULL, NULL);
	failed += run_backend(&backend_ram, ram_tests, NELEM(ram_tests));
	failed += run_backend(&backend_bdb, bdb_tests, NELEM(bdb_tests));
	return failed;
}
