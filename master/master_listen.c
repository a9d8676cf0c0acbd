/* master_listen.c - bind each service's listeners (root work, done here so
 * that no worker ever needs privilege to listen on port 25). */
#include "config.h"
#include "master.h"
#include "../libutil/fileutil.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/sock.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LISTEN_BACKLOG 512

/* unix_socket_path - where a unix service's socket lives. */
static char *unix_socket_path(struct master *m, const char *listen)
{
	if (listen[0] == '/')
		return xstrdup(listen);
	/* "public/NAME" (validated by svctab): the directory every local
	 * user may enter, for sendmail's pickup socket. */
	if (strncmp(listen, SVC_PUBLIC_PREFIX, strlen(SVC_PUBLIC_PREFIX)) == 0)
		return xasprintf("%s/%s", m->conf.params.queue_directory, listen);
	/* "mailbox/NAME": inside the mailbox daemons' jail, in a directory
	 * only the mailbox owner enters (prepared by master_mailbox_dir). */
	if (strncmp(listen, SVC_MAILBOX_PREFIX, strlen(SVC_MAILBOX_PREFIX)) == 0)
		return xasprintf("%s/%s/%s", m->conf.params.mail_root, SVC_MAILBOX_DIR,
				 listen + strlen(SVC_MAILBOX_PREFIX));
	return xasprintf("%s/private/%s", m->conf.params.queue_directory, listen);
}

int master_listen_service(struct master *m, struct master_service *s, char **error_r)
{
	const struct svc_entry *e = s->entry;

	s->listen_count = 0;
	s->unix_paths = xcalloc(e->listen_count + 1, sizeof *s->unix_paths);
	for (size_t i = 0; i < e->listen_count; i++) {
		if (e->type == SVC_INET) {
			char *host;
			int port, fds[2], n;
			const char *error;

			if (svctab_parse_inet(e->listen[i], &host, &port, &error) < 0)
				log_panic("master.conf address passed validation: %s", e->listen[i]);
			if (s->listen_count + 2 > MASTER_LISTEN_MAX) {
				*error_r = xasprintf("service %s: more than %d listeners", e->name, MASTER_LISTEN_MAX);
				free(host);
				goto fail;
			}
			n = sock_listen_inet(host, port, LISTEN_BACKLOG, fds, error_r);
			free(host);
			if (n < 0) {
				char *inner = *error_r;

				*error_r = xasprintf("service %s: %s", e->name, inner);
				free(inner);
				goto fail;
			}
			for (int j = 0; j < n; j++)
				s->listen_fds[s->listen_count++] = fds[j];
		} else {
			char *path = unix_socket_path(m, e->listen[i]);
			int fd;

			if (s->listen_count + 1 > MASTER_LISTEN_MAX) {
				*error_r = xasprintf("service %s: more than %d listeners", e->name, MASTER_LISTEN_MAX);
				free(path);
				goto fail;
			}
			/* Mode 0666 inside a directory only the mail system may enter:
			 * the directory is the access control. In public/ every local
			 * user may connect: such a service must identify its clients
			 * by their peer credentials (smtpd's pickup mode does). */
			fd = sock_listen_unix(path, 0666, LISTEN_BACKLOG, error_r);
			if (fd < 0) {
				char *inner = *error_r;

				*error_r = xasprintf("service %s: %s", e->name, inner);
				free(inner);
				free(path);
				goto fail;
			}
			s->listen_fds[s->listen_count++] = fd;
			s->unix_paths[i] = path;
		}
	}
	return 0;
fail:
	master_close_listeners(s, true);
	return -1;
}

void master_close_listeners(struct master_service *s, bool remove_files)
{
	for (int i = 0; i < s->listen_count; i++)
		close(s->listen_fds[i]);
	s->listen_count = 0;
	if (s->unix_paths != NULL) {
		for (char **p = s->unix_paths; p - s->unix_paths < (ptrdiff_t)s->entry->listen_count; p++) {
			if (*p != NULL && remove_files)
				unlink(*p);
			free(*p);
		}
		free(s->unix_paths);
		s->unix_paths = NULL;
	}
}
