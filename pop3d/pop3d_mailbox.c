/* pop3d_mailbox.c - a user's Maildir for one POP3 session (pop3d_mailbox.h):
 * open and lock, list, read, expunge. */
#include "config.h"
#include "pop3d_mailbox.h"
#include "../libmail/maildir.h"
#include "../libutil/fileop_pool.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

void pop3_uidl(const char *name, char out[POP3_UIDL_MAX + 1])
{
	size_t len = strcspn(name, ",:");
	bool plain = len > 0 && len <= POP3_UIDL_MAX;

	for (size_t i = 0; plain && i < len; i++)
		plain = name[i] >= 0x21 && name[i] <= 0x7e;
	if (plain) {
		memcpy(out, name, len);
		out[len] = '\0';
		return;
	}
	unsigned char digest[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)name, len, digest);
	out[0] = 'H';
	for (int i = 0; i < 16; i++)
		snprintf(out + 1 + 2 * i, 3, "%02x", digest[i]);
}

/* count_vsize - the size as sent of a file without W= (pop3_size_*). -1
 * on a read error. */
static long long count_vsize(int fd)
{
	char buf[65536];
	struct pop3_size z;
	ssize_t n;
	off_t off = 0;

	pop3_size_init(&z);
	while ((n = pread(fd, buf, sizeof buf, off)) > 0) {
		pop3_size_add(&z, buf, (size_t)n);
		off += n;
	}
	return n < 0 ? -1 : (long long)pop3_size_result(&z);
}

/* add_mail - one file of new/ or cur/; false when it cannot be used
 * (gone meanwhile, not a regular file). */
static bool add_mail(struct pop3_mailbox *mb, int dir_fd, const char *name, bool in_cur, size_t *cap)
{
	struct pop3_mail m = { .in_cur = in_cur };

	m.size = maildir_name_size(name);
	m.vsize = maildir_name_vsize(name);
	if (m.size < 0 || m.vsize < 0) {
		int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		struct stat st;

		if (fd < 0)
			return false;
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			close(fd);
			return false;
		}
		if (m.size < 0)
			m.size = st.st_size;
		if (m.vsize < 0)
			m.vsize = count_vsize(fd);
		close(fd);
		if (m.vsize < 0)
			return false;
	}
	m.name = xstrdup(name);
	pop3_uidl(name, m.uidl);
	if (mb->count == *cap) {
		*cap = *cap == 0 ? 64 : *cap * 2;
		mb->mails = xreallocarray(mb->mails, *cap, sizeof *mb->mails);
	}
	mb->mails[mb->count++] = m;
	return true;
}

/* read_dir - a listing of the kept directory dir_fd from its start (a
 * dup shares its offset); NULL with errno. */
static DIR *read_dir(int dir_fd)
{
	int fd = dup(dir_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (d == NULL) {
		int saved = errno;

		if (fd >= 0)
			close(fd);
		errno = saved;
		return NULL;
	}
	rewinddir(d);
	return d;
}

static int list_dir(struct pop3_mailbox *mb, int dir_fd, bool in_cur, size_t *cap, char **error_r)
{
	DIR *d = read_dir(dir_fd);
	struct dirent *de;

	if (d == NULL) {
		*error_r = xasprintf("%s/%s: %s", mb->md->name, in_cur ? "cur" : "new", strerror(errno));
		return -1;
	}
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		add_mail(mb, dir_fd, de->d_name, in_cur, cap);
		errno = 0;
	}
	if (errno != 0) {
		*error_r = xasprintf("%s/%s: %s", mb->md->name, in_cur ? "cur" : "new", strerror(errno));
		closedir(d);
		return -1;
	}
	closedir(d);
	return 0;
}

/* by_arrival - Maildir names start with the delivery's second. */
static int by_arrival(const void *a, const void *b)
{
	const struct pop3_mail *x = a, *y = b;
	long long tx = strtoll(x->name, NULL, 10), ty = strtoll(y->name, NULL, 10);
	int c;

	if (tx != ty)
		return tx < ty ? -1 : 1;
	c = strcmp(x->uidl, y->uidl);
	if (c != 0)
		return c;
	return x->in_cur - y->in_cur;
}

/* drop_doubles - a message moved from new/ to cur/ between the two
 * listings is seen twice: keep one. */
static void drop_doubles(struct pop3_mailbox *mb)
{
	size_t kept = 0;

	for (size_t i = 0; i < mb->count; i++) {
		if (kept > 0 && strcmp(mb->mails[kept - 1].uidl, mb->mails[i].uidl) == 0) {
			free(mb->mails[i].name);
			continue;
		}
		mb->mails[kept++] = mb->mails[i];
	}
	mb->count = kept;
}

enum pop3_mailbox_result pop3_mailbox_open(int root_fd, const char *user, struct pop3_mailbox **mb_r,
					   char **error_r)
{
	char local[MAILDIR_LOCAL_MAX + 1], domain[MAILDIR_DOMAIN_MAX + 1];
	struct pop3_mailbox *mb;
	const char *reason;
	size_t cap = 0;

	*mb_r = NULL;
	if (maildir_mailbox_parse(user, local, domain, &reason) < 0) {
		*error_r = xasprintf("%s: not a mailbox name: %s", user, reason);
		return POP3_MAILBOX_PERM;
	}
	mb = xnew(struct pop3_mailbox);
	mb->lock_fd = -1;
	if (maildir_open(root_fd, domain, local, true, &mb->md, error_r) < 0) {
		free(mb);
		return POP3_MAILBOX_TEMP;
	}
	mb->lock_fd = openat(mb->md->dir_fd, POP3_LOCK_FILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (mb->lock_fd < 0) {
		*error_r = xasprintf("%s/%s: %s", mb->md->name, POP3_LOCK_FILE, strerror(errno));
		pop3_mailbox_close(&mb);
		return POP3_MAILBOX_TEMP;
	}
	if (flock(mb->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		enum pop3_mailbox_result r = errno == EWOULDBLOCK ? POP3_MAILBOX_IN_USE : POP3_MAILBOX_TEMP;

		*error_r = xasprintf("%s: lock: %s", mb->md->name, strerror(errno));
		pop3_mailbox_close(&mb);
		return r;
	}
	if (list_dir(mb, mb->md->new_fd, false, &cap, error_r) < 0 ||
	    list_dir(mb, mb->md->cur_fd, true, &cap, error_r) < 0) {
		pop3_mailbox_close(&mb);
		return POP3_MAILBOX_TEMP;
	}
	if (mb->count > 1)
		qsort(mb->mails, mb->count, sizeof *mb->mails, by_arrival);
	drop_doubles(mb);
	*mb_r = mb;
	return POP3_MAILBOX_OK;
}

/* find_moved - the file of message m under its current name: an IMAP
 * client may have moved it to cur/ or changed its flags (the part after
 * ':'). Updates m. -1 if it is gone. */
static int find_moved(struct pop3_mailbox *mb, struct pop3_mail *m)
{
	int dirs[2] = { mb->md->cur_fd, mb->md->new_fd };
	size_t base = strcspn(m->name, ":");

	for (int k = 0; k < 2; k++) {
		DIR *d = read_dir(dirs[k]);
		struct dirent *de;

		if (d == NULL)
			continue;
		while ((de = readdir(d)) != NULL) {
			if (strncmp(de->d_name, m->name, base) == 0 && (de->d_name[base] == ':' || de->d_name[base] == '\0')) {
				free(m->name);
				m->name = xstrdup(de->d_name);
				m->in_cur = k == 0;
				closedir(d);
				return 0;
			}
		}
		closedir(d);
	}
	errno = ENOENT;
	return -1;
}

int pop3_mailbox_open_message(struct pop3_mailbox *mb, size_t i)
{
	struct pop3_mail *m = &mb->mails[i];
	int fd = openat(m->in_cur ? mb->md->cur_fd : mb->md->new_fd, m->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT && find_moved(mb, m) == 0)
		fd = openat(m->in_cur ? mb->md->cur_fd : mb->md->new_fd, m->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	return fd;
}

/* One expunge, and one removal of it. */
struct expunge {
	struct pop3_mailbox *mb;
	struct fileop_pool *pool;
	size_t pending;
	long long bytes, files;
	size_t removed;
	int failures, first_errno;
	pop3_expunge_done_fn *done;
	void *arg;
};

struct removal {
	struct expunge *x;
	size_t index;
	bool looked; /* searched for it under another name already */
};

static void expunge_end(struct expunge *x)
{
	char *error = NULL;

	if (x->files > 0 && maildir_quota_add(x->mb->md, -1, -x->bytes, -x->files, &error) < 0) {
		/* Only the quota cache is off: it is rebuilt when found wrong. */
		log_warn("%s", error);
		free(error);
		error = NULL;
	}
	if (x->failures > 0)
		error = xasprintf("%s: %d message(s) not removed: %s", x->mb->md->name, x->failures,
				  strerror(x->first_errno));
	x->done(x->arg, x->failures == 0, x->removed, error);
	free(x);
}

static void remove_one(struct removal *r);

static void on_removed(int err, void *arg)
{
	struct removal *r = arg;
	struct expunge *x = r->x;
	struct pop3_mail *m = &x->mb->mails[r->index];

	if (err == ENOENT && !r->looked) {
		/* moved or renamed by another client meanwhile? */
		r->looked = true;
		if (find_moved(x->mb, m) == 0) {
			remove_one(r);
			return;
		}
	}
	if (err == 0) {
		x->bytes += m->size;
		x->files++;
	}
	if (err == 0 || err == ENOENT) {
		x->removed++;
	} else if (x->failures++ == 0) {
		x->first_errno = err;
	}
	free(r);
	if (--x->pending == 0)
		expunge_end(x);
}

static void remove_one(struct removal *r)
{
	struct pop3_mail *m = &r->x->mb->mails[r->index];

	fileop_unlinkat(r->x->pool, m->in_cur ? r->x->mb->md->cur_fd : r->x->mb->md->new_fd, m->name, on_removed, r);
}

void pop3_mailbox_expunge(struct pop3_mailbox *mb, const bool *deleted, size_t count, struct fileop_pool *pool,
			  pop3_expunge_done_fn *done, void *arg)
{
	struct expunge *x = xnew(struct expunge);

	x->mb = mb;
	x->pool = pool;
	x->done = done;
	x->arg = arg;
	x->pending = 1; /* until every removal is submitted */
	for (size_t i = 0; i < count && i < mb->count; i++) {
		struct removal *r;

		if (!deleted[i])
			continue;
		r = xnew(struct removal);
		r->x = x;
		r->index = i;
		x->pending++;
		remove_one(r);
	}
	if (--x->pending == 0)
		expunge_end(x); /* nothing was marked */
}

void pop3_mailbox_close(struct pop3_mailbox **mbp)
{
	struct pop3_mailbox *mb = *mbp;

	if (mb == NULL)
		return;
	for (size_t i = 0; i < mb->count; i++)
		free(mb->mails[i].name);
	free(mb->mails);
	if (mb->lock_fd >= 0)
		close(mb->lock_fd);
	maildir_close(&mb->md);
	free(mb);
	*mbp = NULL;
}
