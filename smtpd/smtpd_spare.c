/* smtpd_spare.c - a new message's content file is, when one is there, a
 * spare file that qmgr emptied after a delivery (queue_layout.h), renamed
 * into place, rather than a newly created file.
 *
 * Two smtpd processes may go for the same spare: the rename decides, and
 * the loser (ENOENT) tries the next name. Names come from one open
 * directory stream, read a batch at a time by readdir; when it runs dry
 * the stream is rewound only if the directory changed since the last
 * rewind (its modification time), so that an empty spare/ costs an fstat
 * per message rather than a getdents.
 */
#include "config.h"
#include "smtpd.h"
#include "../libutil/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPARE_TRIES 64 /* names tried for one message before creating a file */

void smtpd_spares_open(struct smtpd_spares *s)
{
	s->dir = opendir(QUEUE_SPARE_DIR);
	if (s->dir == NULL)
		log_warn("%s: %s; content files are created, never reused", QUEUE_SPARE_DIR, strerror(errno));
	s->seen.tv_sec = 0;
	s->seen.tv_nsec = -1;
}

int smtpd_spare_take(struct smtpd_spares *s, const char *path)
{
	bool rewound_now = false;

	if (s->dir == NULL)
		return -1;
	for (int i = 0; i < SPARE_TRIES; i++) {
		struct dirent *de = readdir(s->dir);
		int fd;

		if (de == NULL) {
			struct stat st;

			if (rewound_now || fstat(dirfd(s->dir), &st) < 0 ||
			    (st.st_mtim.tv_sec == s->seen.tv_sec && st.st_mtim.tv_nsec == s->seen.tv_nsec))
				return -1;
			rewinddir(s->dir);
			s->seen = st.st_mtim;
			rewound_now = true;
			continue;
		}
		if (de->d_name[0] == '.' || (de->d_type != DT_REG && de->d_type != DT_UNKNOWN))
			continue;
		if (renameat(dirfd(s->dir), de->d_name, AT_FDCWD, path) < 0) {
			if (errno == ENOENT)
				continue; /* another smtpd took it */
			return -1;
		}
		fd = open(path, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		/* Not a plain file after all: out of the way, and create one. */
		unlink(path);
		return -1;
	}
	return -1;
}
