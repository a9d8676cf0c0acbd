/* fileop_pool.c - blocking file system calls on worker threads, with
 * completions handed back to the event loop (fileop_pool.h).
 *
 * Submitted calls wait in a FIFO; a worker takes one, makes the call
 * without holding the lock, and appends the result to the finished list.
 * A worker that finds the finished list empty writes one byte to a pipe;
 * the loop's read event empties the pipe, takes the whole list under the
 * lock, and runs the callbacks outside it (so they may submit more).
 */
#include "config.h"
#include "fileop_pool.h"
#include "log.h"
#include "mem.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum fileop_kind { FILEOP_FSYNC, FILEOP_UNLINK, FILEOP_RECYCLE };

struct fileop {
	enum fileop_kind kind;
	int fd;
	char *path;
	char *to;     /* FILEOP_RECYCLE */
	int err;
	fileop_done_fn *done;
	void *arg;
	struct fileop *next;
};

struct fileop_list {
	struct fileop *head;
	struct fileop **tail;
};

struct fileop_pool {
	pthread_mutex_t lock;
	pthread_cond_t work;
	struct fileop_list todo, finished;
	bool stopping;
	int wake[2]; /* pipe: a worker tells the loop that calls finished */
	struct event *wake_ev;
	pthread_t *threads;
	int nthreads;
};

static void list_init(struct fileop_list *l)
{
	l->head = NULL;
	l->tail = &l->head;
}

static void list_push(struct fileop_list *l, struct fileop *op)
{
	op->next = NULL;
	*l->tail = op;
	l->tail = &op->next;
}

static struct fileop *list_pop(struct fileop_list *l)
{
	struct fileop *op = l->head;

	if (op != NULL) {
		l->head = op->next;
		if (l->head == NULL)
			l->tail = &l->head;
	}
	return op;
}

/* run - the call itself, on a worker thread: 0 or an errno. */
static int run(const struct fileop *op)
{
	switch (op->kind) {
	case FILEOP_FSYNC:
		return fsync(op->fd) < 0 ? errno : 0;
	case FILEOP_UNLINK:
		return unlinkat(op->fd, op->path, 0) < 0 ? errno : 0;
	case FILEOP_RECYCLE:
		if (truncate(op->path, 0) < 0 && errno == ENOENT)
			return ENOENT;
		if (rename(op->path, op->to) == 0)
			return 0;
		return unlink(op->path) < 0 ? errno : 0;
	}
	return EINVAL;
}

static void *worker(void *arg)
{
	struct fileop_pool *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct fileop *op;
		bool was_empty;

		while (p->todo.head == NULL && !p->stopping)
			pthread_cond_wait(&p->work, &p->lock);
		op = list_pop(&p->todo);
		if (op == NULL)
			break; /* stopping, and nothing left to do */
		pthread_mutex_unlock(&p->lock);
		op->err = run(op);
		pthread_mutex_lock(&p->lock);
		was_empty = p->finished.head == NULL;
		list_push(&p->finished, op);
		if (was_empty) {
			/* The pipe is non-blocking: when it is full, the loop has
			 * a wake-up pending already. */
			ssize_t n = write(p->wake[1], "x", 1);

			(void)n;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void free_op(struct fileop *op)
{
	free(op->path);
	free(op->to);
	free(op);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct fileop_pool *p = arg;
	struct fileop_list done;
	struct fileop *op;
	char drain[64];

	(void)what;
	while (read(fd, drain, sizeof drain) > 0)
		;
	pthread_mutex_lock(&p->lock);
	done = p->finished;
	list_init(&p->finished);
	pthread_mutex_unlock(&p->lock);
	while ((op = list_pop(&done)) != NULL) {
		if (op->done != NULL)
			op->done(op->err, op->arg);
		free_op(op);
	}
}

struct fileop_pool *fileop_pool_new(struct event_base *base, int threads)
{
	struct fileop_pool *p = xnew(struct fileop_pool);
	sigset_t all, old;

	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	list_init(&p->todo);
	list_init(&p->finished);
	if (pipe2(p->wake, O_NONBLOCK | O_CLOEXEC) < 0)
		log_fatal("fileop pool: pipe: %s", strerror(errno));
	p->wake_ev = event_new(base, p->wake[0], EV_READ | EV_PERSIST, on_wake, p);
	event_add(p->wake_ev, NULL);
	p->nthreads = threads < 1 ? 1 : threads;
	p->threads = xcalloc((size_t)p->nthreads, sizeof *p->threads);
	/* Signals are the loop's business: workers start with all blocked. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 0; i < p->nthreads; i++) {
		int err = pthread_create(&p->threads[i], NULL, worker, p);

		if (err != 0)
			log_fatal("fileop pool: cannot start a thread: %s", strerror(err));
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return p;
}

static void submit(struct fileop_pool *p, struct fileop *op)
{
	pthread_mutex_lock(&p->lock);
	list_push(&p->todo, op);
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->lock);
}

void fileop_fsync(struct fileop_pool *p, int fd, fileop_done_fn *done, void *arg)
{
	struct fileop *op = xnew(struct fileop);

	op->kind = FILEOP_FSYNC;
	op->fd = fd;
	op->done = done;
	op->arg = arg;
	submit(p, op);
}

void fileop_unlink(struct fileop_pool *p, const char *path, fileop_done_fn *done, void *arg)
{
	fileop_unlinkat(p, AT_FDCWD, path, done, arg);
}

void fileop_unlinkat(struct fileop_pool *p, int dir_fd, const char *name, fileop_done_fn *done, void *arg)
{
	struct fileop *op = xnew(struct fileop);

	op->kind = FILEOP_UNLINK;
	op->fd = dir_fd;
	op->path = xstrdup(name);
	op->done = done;
	op->arg = arg;
	submit(p, op);
}

void fileop_recycle(struct fileop_pool *p, const char *path, const char *to, fileop_done_fn *done, void *arg)
{
	struct fileop *op = xnew(struct fileop);

	op->kind = FILEOP_RECYCLE;
	op->fd = -1;
	op->path = xstrdup(path);
	op->to = xstrdup(to);
	op->done = done;
	op->arg = arg;
	submit(p, op);
}

void fileop_pool_free(struct fileop_pool **pp)
{
	struct fileop_pool *p = *pp;
	struct fileop *op;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	while ((op = list_pop(&p->finished)) != NULL)
		free_op(op);
	event_free(p->wake_ev);
	close(p->wake[0]);
	close(p->wake[1]);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p);
	*pp = NULL;
}
