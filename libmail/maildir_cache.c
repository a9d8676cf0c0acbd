/* maildir_cache.c - Maildirs kept open between deliveries (maildir.h).
 *
 * Opening a Maildir safely takes six openat calls (one per component,
 * O_NOFOLLOW, see maildir.c). A mailbox that receives one message usually
 * receives the next soon, so a local process keeps its most recently used
 * Maildirs open. Before a kept one is used again it is checked: the path
 * must still lead to the same directory (device and inode) as the kept
 * descriptor. If the Maildir was removed, replaced or renamed away, the
 * check fails and the Maildir is opened afresh; the kept descriptors hold
 * their inodes, so a number cannot be reused by a new directory while
 * they are open. The check may follow a symlink planted by a mailbox user,
 * but it only decides whether to reuse what was opened safely before.
 * A directory below the Maildir (tmp/, new/) replaced since is not seen
 * here: the delivery fails on it, and maildir_deliver tries once more with
 * everything opened afresh.
 */
#include "config.h"
#include "maildir.h"
#include "../libutil/mem.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAILDIR_CACHE_SIZE 32

struct cached_maildir {
	char *path;           /* "domain/local/Maildir" below the root */
	struct maildir *md;
	dev_t dev;            /* of md->dir_fd */
	ino_t ino;
	unsigned long used;   /* for least-recently-used replacement */
};

static struct cached_maildir cache[MAILDIR_CACHE_SIZE];
static unsigned long use_clock;

static void drop(struct cached_maildir *c)
{
	free(c->path);
	maildir_close(&c->md);
	memset(c, 0, sizeof *c);
}

int maildir_open_cached(int root_fd, const char *domain, const char *local, bool fresh, struct maildir **md_r,
			bool *kept_r, char **error_r)
{
	char path[MAILDIR_DOMAIN_MAX + MAILDIR_LOCAL_MAX + 16];
	struct cached_maildir *slot = &cache[0];
	struct maildir *md;
	struct stat st;

	*kept_r = false;
	snprintf(path, sizeof path, "%s/%s/Maildir", domain, local);
	for (size_t i = 0; i < MAILDIR_CACHE_SIZE; i++) {
		struct cached_maildir *c = &cache[i];

		if (c->md != NULL && strcmp(c->path, path) == 0) {
			if (!fresh && fstatat(root_fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
			    st.st_dev == c->dev && st.st_ino == c->ino) {
				c->used = ++use_clock;
				*md_r = c->md;
				*kept_r = true;
				return 0;
			}
			drop(c);
			slot = c;
			break;
		}
		if (c->md == NULL || (slot->md != NULL && c->used < slot->used))
			slot = c;
	}
	if (maildir_open(root_fd, domain, local, true, &md, error_r) < 0)
		return -1;
	*md_r = md;
	if (fstat(md->dir_fd, &st) < 0)
		return 0; /* usable all the same, just not kept */
	if (slot->md != NULL)
		drop(slot);
	slot->path = xstrdup(path);
	slot->md = md;
	slot->dev = st.st_dev;
	slot->ino = st.st_ino;
	slot->used = ++use_clock;
	return 0;
}

void maildir_forget(struct maildir *md)
{
	for (size_t i = 0; i < MAILDIR_CACHE_SIZE; i++)
		if (cache[i].md == md) {
			drop(&cache[i]);
			return;
		}
	maildir_close(&md);
}

void maildir_release(struct maildir **mdp)
{
	for (size_t i = 0; i < MAILDIR_CACHE_SIZE; i++)
		if (cache[i].md != NULL && cache[i].md == *mdp) {
			*mdp = NULL;
			return;
		}
	maildir_close(mdp);
}

void maildir_cache_clear(void)
{
	for (size_t i = 0; i < MAILDIR_CACHE_SIZE; i++)
		if (cache[i].md != NULL)
			drop(&cache[i]);
}
