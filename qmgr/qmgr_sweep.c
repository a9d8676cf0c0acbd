/* qmgr_sweep.c - housekeeping on a timer: checkpoint the store, remove
 * content files that never became messages (smtpd was killed, or qmgr
 * refused them, before an envelope referred to them), and trim the spare
 * files (queue_layout.h) left over from a burst. Only content files older
 * than an hour go: a fresh one may be on its way to an enqueue. "Older"
 * counts the last change too: a spare renamed into place by smtpd keeps
 * its old modification time until the first write. */
#include "config.h"
#include "qmgr.h"
#include "../libmail/queue_id.h"
#include "../libutil/log.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SWEEP_INTERVAL_S 600
#define ORPHAN_AGE_S 3600

static void sweep_orphans(struct qmgr *q)
{
	DIR *dir = opendir(QUEUE_CONTENT_DIR);
	struct dirent *de;
	time_t now = time(NULL);
	int removed = 0;

	if (dir == NULL) {
		log_warn("%s: %s", QUEUE_CONTENT_DIR, strerror(errno));
		return;
	}
	while ((de = readdir(dir)) != NULL) {
		char path[300];
		struct stat st;
		struct queue_envelope env;
		char *error = NULL;
		int found;

		if (!queue_id_valid(de->d_name))
			continue;
		snprintf(path, sizeof path, "%s/%s", QUEUE_CONTENT_DIR, de->d_name);
		if (lstat(path, &st) < 0 || now - st.st_mtime < ORPHAN_AGE_S || now - st.st_ctime < ORPHAN_AGE_S)
			continue;
		found = queue_store_get(q->store, de->d_name, &env, &error);
		if (found < 0) {
			log_warn("sweep: %s", error);
			free(error);
			break;
		}
		if (found == 1) {
			queue_envelope_free(&env);
			continue;
		}
		if (unlink(path) == 0)
			removed++;
	}
	closedir(dir);
	if (removed > 0)
		log_info("removed %d content files that never became messages", removed);
}

/* trim_spares - keep at most QUEUE_SPARE_KEEP spare files: after a burst,
 * the spares of every message it queued would otherwise stay for good. */
static void trim_spares(void)
{
	DIR *dir = opendir(QUEUE_SPARE_DIR);
	struct dirent *de;
	int seen = 0, removed = 0;

	if (dir == NULL)
		return;
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.' || ++seen <= QUEUE_SPARE_KEEP)
			continue;
		if (unlinkat(dirfd(dir), de->d_name, 0) == 0)
			removed++;
	}
	closedir(dir);
	if (removed > 0)
		log_info("removed %d spare content files", removed);
}

void qmgr_on_sweep(int fd, short what, void *arg)
{
	struct qmgr *q = arg;
	struct timeval next = { .tv_sec = SWEEP_INTERVAL_S };
	char *error = NULL;

	(void)fd;
	(void)what;
	if (queue_store_checkpoint(q->store, &error) < 0) {
		log_warn("queue checkpoint: %s", error);
		free(error);
	}
	sweep_orphans(q);
	trim_spares();
	evtimer_add(q->sweep_ev, &next);
}
