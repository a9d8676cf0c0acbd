/* svctab.h - the service table (master.conf): which daemons master runs.
 *
 * One service per line, blank-separated columns:
 *
 *   name  type  listen  user  chroot  procs  program  [args...]
 *
 *   name     unique service name ("smtpd", "submission")
 *   type     inet (TCP listeners) or unix (a UNIX-domain socket)
 *   listen   inet: comma-separated host:port, [v6addr]:port or *:port
 *            (* means every IPv4 and IPv6 address); unix: a socket name in
 *            the private directory, public/NAME, mailbox/NAME, or an
 *            absolute path; "-" for none
 *   user     the account the workers run as
 *   chroot   the directory workers are jailed in, or "-" for none
 *   procs    number of worker processes (1 to 1000)
 *   program  file name in the daemon directory, or an absolute path
 *
 * "${key}" in any column is replaced by a value from the caller (yubin.conf
 * keys); '#' starts a comment line.
 */
#ifndef YB_SVCTAB_H
#define YB_SVCTAB_H

#include <stdbool.h>
#include <stddef.h>

enum svc_type { SVC_INET, SVC_UNIX };

/* Unix socket names with a prefix: public/NAME lives in
 * queue_directory/public (every local user may connect), mailbox/NAME in
 * mail_root/.yubin (only the mailbox owner: pop3d and imapd, which are
 * jailed in mail_root, reach auth there). */
#define SVC_PUBLIC_PREFIX "public/"
#define SVC_MAILBOX_PREFIX "mailbox/"
#define SVC_MAILBOX_DIR ".yubin" /* in mail_root */

struct svc_entry {
	char *name;
	enum svc_type type;
	char **listen;      /* listen addresses (NULL-terminated) */
	size_t listen_count;
	char *user;
	char *chroot_dir;   /* NULL: no chroot */
	int procs;
	char *program;
	char **argv;        /* extra arguments (NULL-terminated) */
	size_t argc;
	int line;           /* where it was defined */
};

struct svc_table {
	struct svc_entry *entries;
	size_t count;
};

/* svc_lookup_fn - value of ${name}, or NULL if there is no such key. The
 * returned string belongs to the callee. */
typedef const char *svc_lookup_fn(const char *name, void *context);

/* svctab_load - parse path into table. On error -1 and *error_r is a new
 * "file:line: message" string. */
int svctab_load(const char *path, svc_lookup_fn *lookup, void *context, struct svc_table *table,
		char **error_r);

/* svctab_parse_inet - split "host:port" (host may be "*", "[v6]" or a name)
 * into a new host string (NULL for "*") and a port. */
int svctab_parse_inet(const char *spec, char **host_r, int *port_r, const char **error_r);

const struct svc_entry *svctab_find(const struct svc_table *table, const char *name);

/* svc_entry_same_listen - whether two entries listen on the same sockets. */
bool svc_entry_same_listen(const struct svc_entry *a, const struct svc_entry *b);

void svctab_free(struct svc_table *table);

#endif
