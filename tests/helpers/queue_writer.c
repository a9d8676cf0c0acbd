/* queue_writer.c - drives the Berkeley DB queue store for the durability
 * test (tests/integration/test_queue_durability.py) and for measurements.
 *
 *   queue_writer write DIR [--batch N] [--count N] [--no-flush]
 *       Enqueue envelopes (one recipient each) in batches: N puts, one
 *       queue_store_commit, then print the batch's IDs, one per line, in
 *       one write(2). An ID is printed only after the commit returned 0.
 *       --no-flush is the negative control: it prints the IDs right after
 *       the puts and never commits, i.e. acknowledges before the log
 *       flush. Runs until killed, or for --count envelopes.
 *   queue_writer fill DIR [--batch N]
 *       Like write, until a put or commit fails (a full disk): then print
 *       "FULL <error>", wait for a line on stdin (the test has made room),
 *       reopen if the store asked for recovery ("REOPENED"), write 20 more
 *       batches (all must succeed), print "DONE" and exit 0.
 *   queue_writer check DIR ACKFILE|-
 *       Open the store (recovery runs), and check that every ID listed
 *       (one per line) is there with the content write gave it, and that
 *       the due index and the ID order agree. Prints
 *       "acked=N present=N missing=N records=N due=N" and exits 0 when
 *       nothing is missing and the index is consistent, 1 otherwise.
 *   queue_writer bench DIR --batch N --count N
 *       Time --count envelopes in batches of N; print one line of JSON with
 *       commits per second and log syncs per commit.
 *
 * Exit status 2: a usage or unexpected store error (on stderr).
 */
#include "config.h"
#include "../../libmail/queue_store.h"
#include "../../libutil/buf.h"
#include "../../libutil/log.h"
#include "../../libutil/mem.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void usage(void)
{
	fprintf(stderr, "usage: queue_writer write|fill|check|bench DIR [options]\n");
	exit(2);
}

/* make_env - the envelope write gives id; check expects exactly this. */
static void make_env(struct queue_envelope *e, const char *id, long long now)
{
	memset(e, 0, sizeof *e);
	memcpy(e->id, id, QUEUE_ID_SIZE);
	e->arrival = now;
	e->sender = xasprintf("sender-%s@example.org", id);
	e->size = 4321;
	e->envid = xstrdup("");
	e->ret = xstrdup("FULL");
	e->client = xstrdup("client.example.net[192.0.2.25]");
	e->rcpts = xcalloc(1, sizeof *e->rcpts);
	e->rcpt_count = 1;
	e->rcpts[0].address = xasprintf("rcpt-%s@example.com", id);
	e->rcpts[0].orcpt = xasprintf("rfc822;rcpt-%s@example.com", id);
	e->rcpts[0].state = QUEUE_RCPT_PENDING;
	e->rcpts[0].next_try = now;
	e->rcpts[0].last_status = xstrdup("");
	e->rcpts[0].last_response = xstrdup("");
}

static void write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			exit(2);
		p += n;
		len -= (size_t)n;
	}
}

/* say - one status line (words, then the rest) on stdout, in one write. */
static void say(const char *word, const char *rest)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "%s%s%s\n", word, rest[0] != '\0' ? " " : "", rest);
	write_all(STDOUT_FILENO, (const char *)b.data, b.len);
	buf_free(&b);
}

static struct queue_store *open_store(const char *dir)
{
	char *error = NULL;
	struct queue_store *q = queue_store_open_bdb(dir, &error);

	if (q == NULL) {
		fprintf(stderr, "queue_writer: %s\n", error);
		exit(2);
	}
	return q;
}

/* one_batch - put n envelopes and (unless no_flush) commit; on success
 * print their IDs to ack_fd (after the commit; -1: nowhere), return 0. On
 * a store error return -1 with the error, having printed nothing. */
static int one_batch(struct queue_store *q, size_t n, bool no_flush, int ack_fd, char **error_r)
{
	struct buf acks = BUF_INIT;
	long long now = (long long)time(NULL);

	for (size_t i = 0; i < n; i++) {
		struct queue_envelope e;
		char id[QUEUE_ID_SIZE];
		int rc;

		queue_id_new(id);
		make_env(&e, id, now);
		rc = queue_store_put(q, &e, error_r);
		queue_envelope_free(&e);
		if (rc < 0) {
			buf_free(&acks);
			return -1;
		}
		buf_printf(&acks, "%s\n", id);
	}
	if (!no_flush && queue_store_commit(q, error_r) < 0) {
		buf_free(&acks);
		return -1;
	}
	/* acknowledge: one write, so a kill never cuts a line in half for
	 * batches that fit in a pipe write (the test ignores a cut line) */
	if (ack_fd >= 0)
		write_all(ack_fd, (const char *)acks.data, acks.len);
	buf_free(&acks);
	return 0;
}

static int cmd_write(const char *dir, size_t batch, long long count, bool no_flush)
{
	struct queue_store *q = open_store(dir);
	long long done = 0;
	char *error = NULL;

	while (count <= 0 || done < count) {
		if (one_batch(q, batch, no_flush, STDOUT_FILENO, &error) < 0) {
			fprintf(stderr, "queue_writer: %s\n", error);
			exit(2);
		}
		done += (long long)batch;
	}
	queue_store_close(&q);
	return 0;
}

static int cmd_fill(const char *dir, size_t batch)
{
	struct queue_store *q = open_store(dir);
	char *error = NULL, line[64];

	while (one_batch(q, batch, false, STDOUT_FILENO, &error) == 0)
		;
	for (char *p = error; *p != '\0'; p++)
		if (*p == '\n')
			*p = ' ';
	say("FULL", error);
	free(error);
	error = NULL;
	if (fgets(line, sizeof line, stdin) == NULL)
		return 2;
	if (queue_store_failed(q)) {
		/* what qmgr does: exit, and master restarts it (recovery) */
		queue_store_close(&q);
		q = open_store(dir);
		say("REOPENED", "");
	}
	for (int i = 0; i < 20; i++) {
		if (one_batch(q, batch, false, STDOUT_FILENO, &error) < 0) {
			fprintf(stderr, "queue_writer: after making room: %s\n", error);
			return 3;
		}
	}
	queue_store_close(&q);
	say("DONE", "");
	return 0;
}

struct check_ctx {
	size_t count;
	long long last_key;
	char last_id[QUEUE_ID_SIZE];
	bool disorder;
};

static int count_fn(const struct queue_envelope *e, void *arg)
{
	struct check_ctx *c = arg;

	c->count++;
	if (strcmp(e->id, c->last_id) <= 0)
		c->disorder = true;
	memcpy(c->last_id, e->id, QUEUE_ID_SIZE);
	return 0;
}

static int due_fn(const struct queue_envelope *e, void *arg)
{
	struct check_ctx *c = arg;
	long long key = queue_envelope_next_try(e);

	c->count++;
	if (key < c->last_key || (key == c->last_key && strcmp(e->id, c->last_id) <= 0))
		c->disorder = true;
	c->last_key = key;
	memcpy(c->last_id, e->id, QUEUE_ID_SIZE);
	return 0;
}

/* content_ok - whether e is what make_env wrote for its ID. */
static bool content_ok(const struct queue_envelope *e)
{
	struct queue_envelope want;
	bool ok;

	make_env(&want, e->id, e->arrival);
	ok = strcmp(e->sender, want.sender) == 0 && e->size == want.size && strcmp(e->ret, want.ret) == 0 &&
	     strcmp(e->client, want.client) == 0 && !e->held && e->rcpt_count == 1 &&
	     strcmp(e->rcpts[0].address, want.rcpts[0].address) == 0 &&
	     strcmp(e->rcpts[0].orcpt, want.rcpts[0].orcpt) == 0 && e->rcpts[0].state == QUEUE_RCPT_PENDING &&
	     e->rcpts[0].next_try == e->arrival;
	queue_envelope_free(&want);
	return ok;
}

static int cmd_check(const char *dir, const char *ackfile)
{
	FILE *in = strcmp(ackfile, "-") == 0 ? stdin : fopen(ackfile, "r");
	struct queue_store *q;
	struct check_ctx all = { 0, -1, "", false }, due = { 0, -1, "", false };
	size_t acked = 0, present = 0, missing = 0, bad = 0;
	char line[256], *error = NULL;

	if (in == NULL) {
		fprintf(stderr, "queue_writer: %s: %s\n", ackfile, strerror(errno));
		return 2;
	}
	q = open_store(dir);
	while (fgets(line, sizeof line, in) != NULL) {
		struct queue_envelope e;
		int rc;

		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '\0')
			continue;
		if (!queue_id_valid(line)) {
			fprintf(stderr, "queue_writer: bad ID in the list: %s\n", line);
			return 2;
		}
		acked++;
		rc = queue_store_get(q, line, &e, &error);
		if (rc < 0) {
			fprintf(stderr, "queue_writer: %s\n", error);
			return 2;
		}
		if (rc == 0) {
			if (missing < 10)
				fprintf(stderr, "missing: %s\n", line);
			missing++;
			continue;
		}
		present++;
		if (!content_ok(&e)) {
			fprintf(stderr, "wrong content: %s\n", line);
			bad++;
		}
		queue_envelope_free(&e);
	}
	if (in != stdin)
		fclose(in);
	if (queue_store_foreach(q, count_fn, &all, &error) < 0 ||
	    queue_store_foreach_due(q, LLONG_MAX, NULL, NULL, due_fn, &due, &error) < 0) {
		fprintf(stderr, "queue_writer: %s\n", error);
		return 2;
	}
	queue_store_close(&q);
	printf("acked=%zu present=%zu missing=%zu bad=%zu records=%zu due=%zu order=%s\n", acked, present, missing,
	       bad, all.count, due.count, all.disorder || due.disorder ? "wrong" : "ok");
	/* every record write makes is due: the index must hold them all */
	return missing == 0 && bad == 0 && all.count == due.count && !all.disorder && !due.disorder ? 0 : 1;
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmd_bench(const char *dir, size_t batch, long long count)
{
	struct queue_store *q = open_store(dir);
	struct queue_store_stats before, after;
	char *error = NULL;
	long long commits = 0;
	double t0, t;

	if (queue_store_stats(q, &before, &error) < 0)
		goto fail;
	t0 = now_seconds();
	for (long long done = 0; done < count; done += (long long)batch) {
		if (one_batch(q, batch, false, -1, &error) < 0)
			goto fail;
		commits++;
	}
	t = now_seconds() - t0;
	if (queue_store_stats(q, &after, &error) < 0)
		goto fail;
	printf("{\"batch\": %zu, \"envelopes\": %lld, \"commits\": %lld, \"seconds\": %.3f, "
	       "\"commits_per_second\": %.1f, \"envelopes_per_second\": %.1f, \"log_syncs\": %llu, "
	       "\"syncs_per_commit\": %.3f, \"log_bytes_per_envelope\": %.0f}\n",
	       batch, commits * (long long)batch, commits, t, (double)commits / t,
	       (double)(commits * (long long)batch) / t, after.log_syncs - before.log_syncs,
	       (double)(after.log_syncs - before.log_syncs) / (double)commits,
	       (double)(after.log_bytes - before.log_bytes) / (double)(commits * (long long)batch));
	queue_store_close(&q);
	return 0;
fail:
	fprintf(stderr, "queue_writer: %s\n", error != NULL ? error : strerror(errno));
	return 2;
}

int main(int argc, char **argv)
{
	const char *cmd, *dir;
	size_t batch = 10;
	long long count = 0;
	bool no_flush = false;
	int i;

	log_init("queue_writer", LOG_SINK_STDERR);
	if (argc < 3)
		usage();
	cmd = argv[1];
	dir = argv[2];
	if (strcmp(cmd, "check") == 0) {
		if (argc != 4)
			usage();
		return cmd_check(dir, argv[3]);
	}
	for (i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
			batch = (size_t)strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
			count = strtoll(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--no-flush") == 0)
			no_flush = true;
		else
			usage();
	}
	if (batch == 0)
		usage();
	if (strcmp(cmd, "write") == 0)
		return cmd_write(dir, batch, count, no_flush);
	if (strcmp(cmd, "fill") == 0)
		return cmd_fill(dir, batch);
	if (strcmp(cmd, "bench") == 0 && count > 0)
		return cmd_bench(dir, batch, count);
	usage();
	return 2;
}
