/* cmd_tables.c - mailctl domain, user and alias: the hosted domains, the
 * users and their passwords, and the aliases (directory.h).
 *
 * The tables live in data_directory as domains.db, users.db, aliases.db.
 * A change loads the whole table, edits it in memory and writes a new file
 * that is renamed into place (table.h), so auth sees either the old table
 * or the new one, never half of each. Concurrent mailctl runs take turns
 * through an exclusive flock on data_directory/.lock; read-only commands
 * need no lock.
 *
 * Ownership: data_directory is root's, 0755; each table is owned by root,
 * group auth_owner's group (when that account exists), mode 0640, so auth
 * can read it and the mail system cannot. Not as root (a developer's
 * instance) the files belong to whoever runs mailctl; writing a
 * data_directory one cannot write exits 77.
 *
 * Passwords are read twice from /dev/tty with echo off, or as one line
 * from stdin with --password-stdin; what is stored is their yescrypt hash
 * (for PLAIN and LOGIN logins) and their SCRAM-SHA-256 secret (for SCRAM
 * logins; libmail/password.h), never the password, and neither is ever
 * printed. "user test-login" checks a password against the table.
 */
#include "config.h"
#include "mailctl.h"
#include "../libmail/directory.h"
#include "../libmail/params.h"
#include "../libmail/password.h"
#include "../libmail/table.h"
#include "../libutil/fileutil.h"
#include "../libutil/json.h"
#include "../libutil/mem.h"
#include "../libutil/priv.h"
#include "../libutil/strutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#define PASSWORD_LINE_MAX 1024
#define TABLE_MODE 0640

/* --- options ------------------------------------------------------- */

#define OPT_JSON 0x01
#define OPT_FORCE 0x02
#define OPT_QUOTA 0x04
#define OPT_ENABLE 0x08 /* --enable and --disable */
#define OPT_PASSWORD_STDIN 0x10

struct opts {
	bool json;
	bool force;
	bool password_stdin;
	bool quota_set;
	long long quota;
	int enabled; /* -1: not given */
	char **pos;  /* positional arguments */
	int npos;
};

/* usage - say how the command is used; returns the usage exit code. */
static int usage(const char *text)
{
	mailctl_error("usage: mailctl %s", text);
	return MAILCTL_USAGE;
}

/* parse_quota - a size ("10M", "1G", "500k", bytes), 0 or "unlimited". */
static int parse_quota(const char *text, long long *quota_r)
{
	const char *error;

	if (strcmp(text, "unlimited") == 0 || strcmp(text, "none") == 0) {
		*quota_r = 0;
		return 0;
	}
	if (str_to_size(text, quota_r, &error) < 0 || *quota_r < 0) {
		mailctl_error("--quota %s: %s", text, error != NULL ? error : "not a size");
		return -1;
	}
	return 0;
}

/* parse_opts - options anywhere among the arguments ("--" ends them);
 * 0, or MAILCTL_USAGE having said why. max_pos < 0: no upper limit. */
static int parse_opts(struct mailctl *ctl, unsigned allowed, int min_pos, int max_pos, const char *text,
		      struct opts *o)
{
	bool only_pos = false;

	memset(o, 0, sizeof *o);
	o->enabled = -1;
	o->pos = xcalloc((size_t)ctl->argc + 1, sizeof *o->pos);
	for (int i = 0; i < ctl->argc; i++) {
		const char *a = ctl->argv[i];

		if (only_pos || a[0] != '-' || a[1] == '\0') {
			o->pos[o->npos++] = ctl->argv[i];
		} else if (strcmp(a, "--") == 0) {
			only_pos = true;
		} else if ((allowed & OPT_JSON) && strcmp(a, "--json") == 0) {
			o->json = true;
		} else if ((allowed & OPT_FORCE) && strcmp(a, "--force") == 0) {
			o->force = true;
		} else if ((allowed & OPT_PASSWORD_STDIN) && strcmp(a, "--password-stdin") == 0) {
			o->password_stdin = true;
		} else if ((allowed & OPT_ENABLE) && (strcmp(a, "--enable") == 0 || strcmp(a, "--disable") == 0)) {
			int want = strcmp(a, "--enable") == 0;

			if (o->enabled >= 0 && o->enabled != want) {
				mailctl_error("--enable and --disable exclude each other");
				return usage(text);
			}
			o->enabled = want;
		} else if ((allowed & OPT_QUOTA) && (strcmp(a, "--quota") == 0 || str_has_prefix(a, "--quota="))) {
			const char *value = a[7] == '=' ? a + 8 : (i + 1 < ctl->argc ? ctl->argv[++i] : NULL);

			if (value == NULL) {
				mailctl_error("--quota needs a size");
				return usage(text);
			}
			if (parse_quota(value, &o->quota) < 0)
				return MAILCTL_USAGE;
			o->quota_set = true;
		} else {
			mailctl_error("unknown option %s", a);
			return usage(text);
		}
	}
	if (o->npos < min_pos || (max_pos >= 0 && o->npos > max_pos))
		return usage(text);
	return 0;
}

/* opts_free - release what parse_opts allocated. */
static void opts_free(struct opts *o)
{
	xfree_ptr(&o->pos);
}

/* --- the place and its lock ---------------------------------------- */

struct place {
	struct yb_params params;
	bool loaded;
	int lock_fd;
	uid_t uid; /* owner of the files written; -1: leave as created */
	gid_t gid;
};

/* place_close - drop the lock and the configuration. */
static void place_close(struct place *pl)
{
	if (pl->lock_fd >= 0)
		close(pl->lock_fd); /* releases the flock */
	pl->lock_fd = -1;
	if (pl->loaded)
		conf_free(&params_table, &pl->params);
	pl->loaded = false;
}

/* place_open - yubin.conf; with write, also data_directory made ready
 * and locked. 0 or an exit code, having said why. */
static int place_open(struct mailctl *ctl, bool write, struct place *pl)
{
	char *error = NULL;
	char *lock_path;
	const char *dir;

	memset(pl, 0, sizeof *pl);
	pl->lock_fd = -1;
	pl->uid = (uid_t)-1;
	pl->gid = (gid_t)-1;
	if (params_load(&pl->params, ctl->config_dir, &error) < 0) {
		mailctl_error("%s", error);
		free(error);
		conf_free(&params_table, &pl->params);
		return MAILCTL_FAIL;
	}
	pl->loaded = true;
	if (!write)
		return 0;
	dir = pl->params.data_directory;
	if (geteuid() == 0) {
		uid_t auth_uid;
		gid_t auth_gid;

		/* An account not created yet leaves the tables root's group,
		 * as the install manifest does; auth then cannot read them. */
		pl->uid = 0;
		pl->gid = 0;
		if (priv_lookup_user(pl->params.auth_owner, &auth_uid, &auth_gid, &error) == 0)
			pl->gid = auth_gid;
		else
			xfree_ptr(&error);
		if (dir_ensure(dir, 0, 0, 0755, &error) < 0) {
			mailctl_error("%s", error);
			free(error);
			return MAILCTL_FAIL;
		}
	} else {
		struct stat st;

		if (stat(dir, &st) < 0 && errno == ENOENT && mkdir(dir, 0755) < 0 && errno != EEXIST) {
			int saved = errno;

			mailctl_error("mkdir %s: %s", dir, strerror(saved));
			return saved == EACCES || saved == EPERM ? MAILCTL_NOPERM : MAILCTL_FAIL;
		}
		if (access(dir, W_OK | X_OK) < 0) {
			if (errno == EACCES || errno == EPERM || errno == EROFS) {
				mailctl_error("permission denied: cannot write the tables in %s: run mailctl as root",
					      dir);
				return errno == EROFS ? MAILCTL_FAIL : MAILCTL_NOPERM;
			}
			mailctl_error("%s: %s", dir, strerror(errno));
			return MAILCTL_FAIL;
		}
	}
	lock_path = xasprintf("%s/.lock", dir);
	pl->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (pl->lock_fd < 0 || flock(pl->lock_fd, LOCK_EX) < 0) {
		mailctl_error("%s: %s", lock_path, strerror(errno));
		free(lock_path);
		return MAILCTL_FAIL;
	}
	free(lock_path);
	return 0;
}

/* table_file - data_directory/NAME (new memory). */
static char *table_file(const struct place *pl, const char *name)
{
	return xasprintf("%s/%s", pl->params.data_directory, name);
}

/* --- a table in memory --------------------------------------------- */

struct entry {
	char *key;
	struct buf value;
};

struct tmap {
	const char *name; /* "users.db" */
	char *path;
	struct entry *entries; /* sorted by key */
	size_t count;
	bool changed;
};

/* entry_cmp - order entries by key (qsort and bsearch). */
static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->key, ((const struct entry *)b)->key);
}

/* collect - table_foreach callback: copy one record into the map. */
static int collect(const char *key, const void *value, size_t len, void *ctx)
{
	struct tmap *m = ctx;
	struct entry *e;

	m->entries = xreallocarray(m->entries, m->count + 1, sizeof *m->entries);
	e = &m->entries[m->count++];
	e->key = xstrdup(key);
	buf_init(&e->value);
	buf_append(&e->value, value, len);
	return 0;
}

/* tmap_free - release the map; it is empty afterwards. */
static void tmap_free(struct tmap *m)
{
	for (size_t i = 0; i < m->count; i++) {
		free(m->entries[i].key);
		buf_free(&m->entries[i].value);
	}
	free(m->entries);
	free(m->path);
	memset(m, 0, sizeof *m);
}

/* tmap_load - the whole table (none yet: empty). 0 or an exit code. */
static int tmap_load(const struct place *pl, const char *name, struct tmap *m)
{
	struct table *t;
	char *error = NULL;

	memset(m, 0, sizeof *m);
	m->name = name;
	m->path = table_file(pl, name);
	t = table_open(m->path, TABLE_MISSING_OK, &error);
	if (t == NULL) {
		int code = errno == EACCES || errno == EPERM ? MAILCTL_NOPERM : MAILCTL_FAIL;

		if (code == MAILCTL_NOPERM)
			mailctl_error("permission denied: %s: run mailctl as root", m->path);
		else
			mailctl_error("%s", error);
		free(error);
		return code;
	}
	if (table_foreach(t, collect, m, &error) < 0) {
		mailctl_error("%s", error);
		free(error);
		table_close(&t);
		return MAILCTL_FAIL;
	}
	table_close(&t);
	if (m->count > 0)
		qsort(m->entries, m->count, sizeof *m->entries, entry_cmp);
	return 0;
}

/* tmap_find - the entry of key, or NULL. */
static struct entry *tmap_find(struct tmap *m, const char *key)
{
	struct entry probe = { .key = (char *)key };

	if (m->count == 0)
		return NULL;
	return bsearch(&probe, m->entries, m->count, sizeof *m->entries, entry_cmp);
}

/* tmap_put - add or replace key's value, keeping the order. */
static void tmap_put(struct tmap *m, const char *key, const struct buf *value)
{
	struct entry *e = tmap_find(m, key);

	if (e == NULL) {
		m->entries = xreallocarray(m->entries, m->count + 1, sizeof *m->entries);
		e = &m->entries[m->count++];
		e->key = xstrdup(key);
		buf_init(&e->value);
		qsort(m->entries, m->count, sizeof *m->entries, entry_cmp);
		e = tmap_find(m, key);
	}
	buf_reset(&e->value);
	buf_append(&e->value, value->data, value->len);
	m->changed = true;
}

/* tmap_del_at - remove entry i. */
static void tmap_del_at(struct tmap *m, size_t i)
{
	free(m->entries[i].key);
	buf_free(&m->entries[i].value);
	memmove(&m->entries[i], &m->entries[i + 1], (m->count - i - 1) * sizeof *m->entries);
	m->count--;
	m->changed = true;
}

/* tmap_del - remove key; whether it was there. */
static bool tmap_del(struct tmap *m, const char *key)
{
	struct entry *e = tmap_find(m, key);

	if (e == NULL)
		return false;
	tmap_del_at(m, (size_t)(e - m->entries));
	return true;
}

/* tmap_save - write the table anew and rename it into place, if it
 * changed. 0 or an exit code. */
static int tmap_save(const struct place *pl, struct tmap *m)
{
	struct table_writer *w;
	char *error = NULL;

	if (!m->changed)
		return 0;
	w = table_writer_begin(m->path, TABLE_MODE, pl->uid, pl->gid, &error);
	if (w == NULL)
		goto fail;
	for (size_t i = 0; i < m->count; i++) {
		if (table_writer_put(w, m->entries[i].key, m->entries[i].value.data, m->entries[i].value.len,
				     &error) < 0) {
			table_writer_abort(&w);
			goto fail;
		}
	}
	if (table_writer_commit(&w, &error) < 0)
		goto fail;
	m->changed = false;
	return 0;
fail:
	mailctl_error("%s (the old table is unchanged)", error);
	free(error);
	return MAILCTL_FAIL;
}

/* in_domain - whether a key ("x@d" or "@d") belongs to domain d. */
static bool in_domain(const char *key, const char *domain)
{
	return strcmp(dir_address_domain(key), domain) == 0;
}

/* --- output -------------------------------------------------------- */

/* print_buf - write b to stdout and free it. */
static void print_buf(struct buf *b)
{
	if (b->len > 0) /* an empty buffer has no memory to pass */
		fwrite(b->data, 1, b->len, stdout);
	buf_free(b);
}

/* format_size - "unlimited", or bytes in the largest exact unit. */
static char *format_size(long long bytes)
{
	static const char units[] = "kMGT";
	int u = -1;

	if (bytes == 0)
		return xstrdup("unlimited");
	while (u < 3 && bytes % 1024 == 0) {
		bytes /= 1024;
		u++;
	}
	return u < 0 ? xasprintf("%lld", bytes) : xasprintf("%lld%c", bytes, units[u]);
}

/* --- checks shared by the commands --------------------------------- */

/* check_arg - normalise an argument with a dir_check_* function; 0 or an
 * exit code, having said why. */
static int check_arg(int (*check)(const char *, struct buf *, const char **), const char *what,
		     const char *arg, struct buf *out)
{
	const char *error;

	if (check(arg, out, &error) < 0) {
		mailctl_error("%s \"%s\": %s", what, arg, error);
		return MAILCTL_FAIL;
	}
	return 0;
}

/* require_domain - the domain must be hosted. 0 or an exit code. */
static int require_domain(struct tmap *domains, const char *domain)
{
	if (tmap_find(domains, domain) == NULL) {
		mailctl_error("domain %s is not hosted (add it first: mailctl domain add %s)", domain, domain);
		return MAILCTL_FAIL;
	}
	return 0;
}

/* decode_user / decode_alias - a stored record; 0 or an exit code. */
static int decode_user(const struct entry *e, struct dir_user *user)
{
	char *error = NULL;

	if (dir_user_decode(e->value.data, e->value.len, user, &error) < 0) {
		mailctl_error("users.db: %s: %s", e->key, error);
		free(error);
		return MAILCTL_FAIL;
	}
	return 0;
}

static int decode_alias(const struct entry *e, struct dir_alias *alias)
{
	char *error = NULL;

	if (dir_alias_decode(e->value.data, e->value.len, alias, &error) < 0) {
		mailctl_error("aliases.db: %s: %s", e->key, error);
		free(error);
		return MAILCTL_FAIL;
	}
	return 0;
}

/* --- passwords ----------------------------------------------------- */

static int tty_fd = -1;
static struct termios tty_saved;

/* tty_restore_on_signal - ^C at the prompt must not leave echo off. */
static void tty_restore_on_signal(int sig)
{
	if (tty_fd >= 0)
		tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* read_line_fd - one line from fd without its end; -1 if too long or
 * nothing came. */
static int read_line_fd(int fd, char *out, size_t size)
{
	size_t len = 0;

	for (;;) {
		char c;
		ssize_t n = read(fd, &c, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return len > 0 ? 0 : -1;
		if (c == '\n')
			break;
		if (len + 1 >= size) {
			explicit_bzero(out, size);
			return -1;
		}
		out[len++] = c;
		out[len] = '\0';
	}
	if (len > 0 && out[len - 1] == '\r')
		out[--len] = '\0';
	return 0;
}

/* prompt_tty - show prompt on the terminal and read a line without echo. */
static int prompt_tty(const char *prompt, char *out, size_t size)
{
	struct termios quiet;
	int rc;

	/* Echo off (and typeahead dropped) before the prompt shows, so that
	 * nothing typed in answer to it can be echoed or lost. */
	quiet = tty_saved;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	if (tcsetattr(tty_fd, TCSAFLUSH, &quiet) < 0)
		return -1;
	if (write(tty_fd, prompt, strlen(prompt)) < 0) {
		tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
		return -1;
	}
	rc = read_line_fd(tty_fd, out, size);
	tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
	return rc;
}

/* read_password - from stdin (one line) or from the terminal: twice for
 * a new password, once (confirm false) to test one. 0, or an exit code
 * having said why. */
static int read_password(const char *address, bool from_stdin, bool confirm, char *out, size_t size)
{
	char again[PASSWORD_LINE_MAX];
	char *prompt;
	int rc = 0;

	out[0] = '\0';
	if (from_stdin) {
		if (read_line_fd(STDIN_FILENO, out, size) < 0) {
			mailctl_error("--password-stdin: no password on stdin (or longer than %d bytes)",
				      PASSWORD_LINE_MAX - 1);
			return MAILCTL_FAIL;
		}
	} else {
		tty_fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (tty_fd < 0 || tcgetattr(tty_fd, &tty_saved) < 0) {
			mailctl_error("no terminal to ask for the password: use --password-stdin");
			if (tty_fd >= 0)
				close(tty_fd);
			tty_fd = -1;
			return MAILCTL_FAIL;
		}
		signal(SIGINT, tty_restore_on_signal);
		signal(SIGTERM, tty_restore_on_signal);
		signal(SIGHUP, tty_restore_on_signal);
		signal(SIGQUIT, tty_restore_on_signal);
		prompt = xasprintf(confirm ? "New password for %s: " : "Password for %s: ", address);
		if (prompt_tty(prompt, out, size) < 0 || (confirm && prompt_tty("Again: ", again, sizeof again) < 0)) {
			mailctl_error("no password given");
			rc = MAILCTL_FAIL;
		} else if (confirm && strcmp(out, again) != 0) {
			mailctl_error("the passwords do not match");
			rc = MAILCTL_FAIL;
		}
		free(prompt);
		explicit_bzero(again, sizeof again);
		close(tty_fd);
		tty_fd = -1;
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGQUIT, SIG_DFL);
	}
	if (rc == 0 && out[0] == '\0') {
		mailctl_error("empty password refused");
		rc = MAILCTL_FAIL;
	}
	if (rc != 0)
		explicit_bzero(out, size);
	return rc;
}

/* new_secrets - read a new password and make what is stored of it: the
 * crypt(3) hash and the SCRAM-SHA-256 secret. 0, or an exit code having
 * said why. */
static int new_secrets(const char *address, bool from_stdin, char **hash_r, char **scram_r)
{
	char password[PASSWORD_LINE_MAX];
	const char *error = NULL;
	int rc = read_password(address, from_stdin, true, password, sizeof password);

	*hash_r = *scram_r = NULL;
	if (rc != 0)
		return rc;
	*hash_r = password_hash(password, strlen(password), &error);
	if (*hash_r != NULL)
		*scram_r = password_scram_secret(password, strlen(password), &error);
	explicit_bzero(password, sizeof password);
	if (*scram_r == NULL) {
		mailctl_error("%s", error);
		xfree_ptr(hash_r);
		return MAILCTL_FAIL;
	}
	return 0;
}

/* secret_free - wipe and free a stored form of a password. */
static void secret_free(char **secret)
{
	if (*secret != NULL) {
		explicit_bzero(*secret, strlen(*secret));
		free(*secret);
	}
	*secret = NULL;
}

/* --- domain -------------------------------------------------------- */

/* cmd_domain_add - mailctl domain add DOMAIN */
int cmd_domain_add(struct mailctl *ctl)
{
	struct opts o;
	struct buf key = BUF_INIT, value = BUF_INIT;
	struct place pl;
	struct tmap domains = { 0 };
	int rc;

	if ((rc = parse_opts(ctl, 0, 1, 1, "domain add DOMAIN", &o)) != 0)
		goto out_opts;
	if ((rc = check_arg(dir_check_domain, "domain", o.pos[0], &key)) != 0)
		goto out_opts;
	if ((rc = place_open(ctl, true, &pl)) != 0)
		goto out;
	if ((rc = tmap_load(&pl, DIR_DOMAINS_TABLE, &domains)) != 0)
		goto out;
	if (tmap_find(&domains, buf_cstr(&key)) != NULL) {
		mailctl_error("domain %s already exists", buf_cstr(&key));
		rc = MAILCTL_FAIL;
		goto out;
	}
	dir_domain_encode(&value);
	tmap_put(&domains, buf_cstr(&key), &value);
	rc = tmap_save(&pl, &domains);
out:
	tmap_free(&domains);
	place_close(&pl);
out_opts:
	buf_free(&key);
	buf_free(&value);
	opts_free(&o);
	return rc;
}

/* remove_domain_keys - every key of the domain; how many went. */
static size_t remove_domain_keys(struct tmap *m, const char *domain)
{
	size_t removed = 0;

	for (size_t i = m->count; i-- > 0;) {
		if (in_domain(m->entries[i].key, domain)) {
			tmap_del_at(m, i);
			removed++;
		}
	}
	return removed;
}

/* count_domain_keys - how many keys belong to the domain. */
static size_t count_domain_keys(const struct tmap *m, const char *domain)
{
	size_t n = 0;

	for (size_t i = 0; i < m->count; i++)
		n += in_domain(m->entries[i].key, domain);
	return n;
}

/* cmd_domain_del - mailctl domain del DOMAIN [--force] */
int cmd_domain_del(struct mailctl *ctl)
{
	struct opts o;
	struct buf key = BUF_INIT;
	struct place pl;
	struct tmap domains = { 0 }, users = { 0 }, aliases = { 0 };
	const char *domain;
	size_t nusers, naliases;
	int rc;

	if ((rc = parse_opts(ctl, OPT_FORCE, 1, 1, "domain del DOMAIN [--force]", &o)) != 0)
		goto out_opts;
	if ((rc = check_arg(dir_check_domain, "domain", o.pos[0], &key)) != 0)
		goto out_opts;
	domain = buf_cstr(&key);
	if ((rc = place_open(ctl, true, &pl)) != 0 || (rc = tmap_load(&pl, DIR_DOMAINS_TABLE, &domains)) != 0 ||
	    (rc = tmap_load(&pl, DIR_USERS_TABLE, &users)) != 0 ||
	    (rc = tmap_load(&pl, DIR_ALIASES_TABLE, &aliases)) != 0)
		goto out;
	if (tmap_find(&domains, domain) == NULL) {
		mailctl_error("domain %s does not exist", domain);
		rc = MAILCTL_FAIL;
		goto out;
	}
	nusers = count_domain_keys(&users, domain);
	naliases = count_domain_keys(&aliases, domain);
	if ((nusers > 0 || naliases > 0) && !o.force) {
		mailctl_error("domain %s still has %zu user%s and %zu alias%s: remove them first, or use --force",
			      domain, nusers, nusers == 1 ? "" : "s", naliases, naliases == 1 ? "" : "es");
		rc = MAILCTL_FAIL;
		goto out;
	}
	/* Users and aliases first: a crash in between leaves a domain with
	 * fewer entries, never entries without their domain. Mailboxes on
	 * disk stay where they are. */
	remove_domain_keys(&users, domain);
	remove_domain_keys(&aliases, domain);
	tmap_del(&domains, domain);
	if ((rc = tmap_save(&pl, &users)) != 0 || (rc = tmap_save(&pl, &aliases)) != 0)
		goto out;
	rc = tmap_save(&pl, &domains);
out:
	tmap_free(&domains);
	tmap_free(&users);
	tmap_free(&aliases);
	place_close(&pl);
out_opts:
	buf_free(&key);
	opts_free(&o);
	return rc;
}

/* cmd_domain_list - mailctl domain list [--json]; JSON adds the counts. */
int cmd_domain_list(struct mailctl *ctl)
{
	struct opts o;
	struct place pl;
	struct tmap domains = { 0 }, users = { 0 }, aliases = { 0 };
	struct buf out = BUF_INIT;
	int rc;

	if ((rc = parse_opts(ctl, OPT_JSON, 0, 0, "domain list [--json]", &o)) != 0)
		goto out_opts;
	if ((rc = place_open(ctl, false, &pl)) != 0 || (rc = tmap_load(&pl, DIR_DOMAINS_TABLE, &domains)) != 0)
		goto out;
	if (o.json) {
		if ((rc = tmap_load(&pl, DIR_USERS_TABLE, &users)) != 0 ||
		    (rc = tmap_load(&pl, DIR_ALIASES_TABLE, &aliases)) != 0)
			goto out;
		buf_append_str(&out, "[");
		for (size_t i = 0; i < domains.count; i++) {
			const char *d = domains.entries[i].key;

			buf_append_str(&out, i > 0 ? ",\n {\"domain\": " : "\n {\"domain\": ");
			json_str(&out, d);
			buf_printf(&out, ", \"users\": %zu, \"aliases\": %zu}", count_domain_keys(&users, d),
				   count_domain_keys(&aliases, d));
		}
		buf_append_str(&out, domains.count > 0 ? "\n]\n" : "]\n");
	} else {
		for (size_t i = 0; i < domains.count; i++)
			buf_printf(&out, "%s\n", domains.entries[i].key);
	}
	print_buf(&out);
out:
	buf_free(&out);
	tmap_free(&domains);
	tmap_free(&users);
	tmap_free(&aliases);
	place_close(&pl);
out_opts:
	opts_free(&o);
	return rc;
}

/* --- user ---------------------------------------------------------- */

/* user_check - the domain is hosted, and the user exists (want_exists) or
 * does not. 0 or an exit code, having said why. */
static int user_check(struct tmap *domains, struct tmap *users, const char *address, bool want_exists)
{
	int rc = require_domain(domains, dir_address_domain(address));

	if (rc != 0)
		return rc;
	if (want_exists && tmap_find(users, address) == NULL) {
		mailctl_error("user %s does not exist", address);
		return MAILCTL_FAIL;
	}
	if (!want_exists && tmap_find(users, address) != NULL) {
		mailctl_error("user %s already exists", address);
		return MAILCTL_FAIL;
	}
	return 0;
}

/* user_precheck - user_check without the lock, before a password is asked. */
static int user_precheck(struct mailctl *ctl, const char *address, bool want_exists)
{
	struct place pl;
	struct tmap domains = { 0 }, users = { 0 };
	int rc;

	if ((rc = place_open(ctl, false, &pl)) == 0 && (rc = tmap_load(&pl, DIR_DOMAINS_TABLE, &domains)) == 0 &&
	    (rc = tmap_load(&pl, DIR_USERS_TABLE, &users)) == 0)
		rc = user_check(&domains, &users, address, want_exists);
	tmap_free(&domains);
	tmap_free(&users);
	place_close(&pl);
	return rc;
}

enum user_change { USER_ADD, USER_PASSWD, USER_SET };

/* user_change - the common body of user add, passwd and set. */
static int user_change(struct mailctl *ctl, enum user_change what, unsigned allowed, const char *text)
{
	struct opts o;
	struct buf key = BUF_INIT, value = BUF_INIT;
	struct place pl = { .lock_fd = -1 };
	struct tmap domains = { 0 }, users = { 0 };
	struct dir_user user = { 0 };
	char *hash = NULL, *scram = NULL;
	const char *address;
	int rc;

	if ((rc = parse_opts(ctl, allowed, 1, 1, text, &o)) != 0)
		goto out_opts;
	if (what == USER_SET && !o.quota_set && o.enabled < 0) {
		mailctl_error("nothing to change: give --quota, --enable or --disable");
		rc = usage(text);
		goto out_opts;
	}
	if ((rc = check_arg(dir_check_user, "user", o.pos[0], &key)) != 0)
		goto out_opts;
	address = buf_cstr(&key);
	if (what != USER_SET) {
		/* Ask for the password only for a request that can succeed,
		 * and without holding the lock while somebody types. */
		if ((rc = user_precheck(ctl, address, what != USER_ADD)) != 0 ||
		    (rc = new_secrets(address, o.password_stdin, &hash, &scram)) != 0)
			goto out_opts;
	}
	if ((rc = place_open(ctl, true, &pl)) != 0 || (rc = tmap_load(&pl, DIR_DOMAINS_TABLE, &domains)) != 0 ||
	    (rc = tmap_load(&pl, DIR_USERS_TABLE, &users)) != 0 ||
	    (rc = user_check(&domains, &users, address, what != USER_ADD)) != 0)
		goto out;
	if (what == USER_ADD) {
		user.quota = 0;
		user.enabled = true;
	} else if ((rc = decode_user(tmap_find(&users, address), &user)) != 0) {
		goto out;
	}
	if (hash != NULL) {
		/* Both forms change together: a SCRAM secret of an older
		 * password must not outlive it. */
		dir_user_free(&user);
		user.password = hash;
		user.scram = scram;
		hash = scram = NULL;
	}
	if (o.quota_set)
		user.quota = o.quota;
	if (o.enabled >= 0)
		user.enabled = o.enabled == 1;
	dir_user_encode(&value, &user);
	tmap_put(&users, address, &value);
	rc = tmap_save(&pl, &users);
out:
	tmap_free(&domains);
	tmap_free(&users);
	place_close(&pl);
out_opts:
	dir_user_free(&user);
	secret_free(&hash);
	secret_free(&scram);
	if (value.data != NULL)
		explicit_bzero(value.data, value.len);
	buf_free(&value);
	buf_free(&key);
	opts_free(&o);
	return rc;
}

/* cmd_user_add / cmd_user_passwd / cmd_user_set - see the command table. */
int cmd_user_add(struct mailctl *ctl)
{
	return user_change(ctl, USER_ADD, OPT_QUOTA | OPT_ENABLE | OPT_PASSWORD_STDIN,
			   "user add ADDRESS [--quota SIZE] [--disable] [--password-stdin]");
}

int cmd_user_passwd(struct mailctl *ctl)
{
	return user_change(ctl, USER_PASSWD, OPT_PASSWORD_STDIN, "user passwd ADDRESS [--password-stdin]");
}

int cmd_user_set(struct mailctl *ctl)
{
	return user_change(ctl, USER_SET, OPT_QUOTA | OPT_ENABLE,
			   "user set ADDRESS [--quota SIZE] [--enable|--disable]");
}

/* cmd_user_del - mailctl user del ADDRESS */
int cmd_user_del(struct mailctl *ctl)
{
	struct opts o;
	struct buf key = BUF_INIT;
	struct place pl = { .lock_fd = -1 };
	struct tmap users = { 0 };
	int rc;

	if ((rc = parse_opts(ctl, 0, 1, 1, "user del ADDRESS", &o)) != 0)
		goto out_opts;
	if ((rc = check_arg(dir_check_user, "user", o.pos[0], &key)) != 0)
		goto out_opts;
	if ((rc = place_open(ctl, true, &pl)) != 0 || (rc = tmap_load(&pl, DIR_USERS_TABLE, &users)) != 0)
		goto out;
	if (!tmap_del(&users, buf_cstr(&key))) {
		mailctl_error("user %s does not exist", buf_cstr(&key));
		rc = MAILCTL_FAIL;
		goto out;
	}
	/* The mailbox stays on disk: removing mail is a separate decision. */
	rc = tmap_save(&pl, &users);
out:
	tmap_free(&users);
	place_close(&pl);
out_opts:
	buf_free(&key);
	opts_free(&o);
	return rc;
}

/* cmd_user_test_login - mailctl user test-login ADDRESS [--password-stdin]:
 * would this password log in? Checked directly against the table (as
 * PLAIN and LOGIN logins check it), without the auth daemon, so without
 * its failure counters. Reading users.db takes root or auth_owner. */
int cmd_user_test_login(struct mailctl *ctl)
{
	struct opts o;
	struct buf key = BUF_INIT;
	struct place pl = { .lock_fd = -1 };
	struct directory *d = NULL;
	struct dir_user u = { 0 };
	char password[PASSWORD_LINE_MAX];
	char *error = NULL;
	int rc, found, match;

	password[0] = '\0';
	if ((rc = parse_opts(ctl, OPT_PASSWORD_STDIN, 1, 1, "user test-login ADDRESS [--password-stdin]", &o)) != 0)
		goto out_opts;
	if ((rc = check_arg(dir_check_user, "user", o.pos[0], &key)) != 0)
		goto out_opts;
	if ((rc = place_open(ctl, false, &pl)) != 0)
		goto out;
	d = directory_open(pl.params.data_directory);
	if (directory_refresh(d, &error) < 0) {
		bool denied = strstr(error, "ermission denied") != NULL;

		mailctl_error("%s%s", error, denied ? ": run mailctl as root" : "");
		rc = denied ? MAILCTL_NOPERM : MAILCTL_FAIL;
		goto out;
	}
	found = directory_user(d, buf_cstr(&key), &u, &error);
	if (found < 0) {
		mailctl_error("%s", error);
		rc = MAILCTL_FAIL;
		goto out;
	}
	if (found == 0) {
		mailctl_error("login fails: user %s does not exist", buf_cstr(&key));
		rc = MAILCTL_FAIL;
		goto out;
	}
	if ((rc = read_password(buf_cstr(&key), o.password_stdin, false, password, sizeof password)) != 0)
		goto out;
	match = password_verify(u.password, password, strlen(password));
	if (match < 0) {
		mailctl_error("login fails: %s has no usable password hash (set one: mailctl user passwd %s)",
			      buf_cstr(&key), buf_cstr(&key));
		rc = MAILCTL_FAIL;
	} else if (match == 0) {
		mailctl_error("login fails: wrong password for %s", buf_cstr(&key));
		rc = MAILCTL_FAIL;
	} else if (!u.enabled) {
		mailctl_error("login fails: the password is right, but %s is disabled (mailctl user set %s --enable)",
			      buf_cstr(&key), buf_cstr(&key));
		rc = MAILCTL_FAIL;
	} else {
		printf("ok\n");
		if (u.scram == NULL)
			fprintf(stderr, "mailctl: note: no SCRAM-SHA-256 secret is stored for %s (a user made before "
					"secrets were kept): SCRAM logins fail until the password is set again\n",
				buf_cstr(&key));
		else if (password_scram_check(u.scram, password, strlen(password)) != 1)
			fprintf(stderr, "mailctl: warning: the SCRAM-SHA-256 secret stored for %s does not match "
					"this password: set the password again (mailctl user passwd %s)\n",
				buf_cstr(&key), buf_cstr(&key));
	}
out:
	explicit_bzero(password, sizeof password);
	dir_user_free(&u);
	free(error);
	directory_close(&d);
	place_close(&pl);
out_opts:
	buf_free(&key);
	opts_free(&o);
	return rc;
}

/* user_json - one user as a JSON object, without the hash. */
static void user_json(struct buf *out, const struct place *pl, const char *address, const struct dir_user *u)
{
	char *maildir = dir_maildir_path(pl->params.mail_root, address);

	buf_append_str(out, "{\"address\": ");
	json_str(out, address);
	buf_append_str(out, ", \"mailbox\": ");
	json_str(out, maildir);
	buf_printf(out, ", \"quota\": %lld, \"enabled\": %s}", (long long)u->quota, u->enabled ? "true" : "false");
	free(maildir);
}

/* cmd_user_list - mailctl user list [DOMAIN] [--json] */
int cmd_user_list(struct mailctl *ctl)
{
	struct opts o;
	struct buf domain = BUF_INIT, out = BUF_INIT;
	struct place pl = { .lock_fd = -1 };
	struct tmap domains = { 0 }, users = { 0 };
	size_t shown = 0;
	int rc;

	if ((rc = parse_opts(ctl, OPT_JSON, 0, 1, "user list [DOMAIN] [--json]", &o)) != 0)
		goto out_opts;
	if (o.npos == 1 && (rc = check_arg(dir_check_domain, "domain", o.pos[0], &domain)) != 0)
		goto out_opts;
	if ((rc = place_open(ctl, false, &pl)) != 0 || (rc = tmap_load(&pl, DIR_DOMAINS_TABLE, &domains)) != 0 ||
	    (rc = tmap_load(&pl, DIR_USERS_TABLE, &users)) != 0)
		goto out;
	if (o.npos == 1 && (rc = require_domain(&domains, buf_cstr(&domain))) != 0)
		goto out;
	if (o.json)
		buf_append_str(&out, "[");
	for (size_t i = 0; i < users.count; i++) {
		const struct entry *e = &users.entries[i];
		struct dir_user u;

		if (o.npos == 1 && !in_domain(e->key, buf_cstr(&domain)))
			continue;
		if (!o.json) {
			buf_printf(&out, "%s\n", e->key);
			continue;
		}
		if ((rc = decode_user(e, &u)) != 0)
			goto out;
		buf_append_str(&out, shown > 0 ? ",\n " : "\n ");
		user_json(&out, &pl, e->key, &u);
		dir_user_free(&u);
		shown++;
	}
	if (o.json)
		buf_append_str(&out, shown > 0 ? "\n]\n" : "]\n");
	print_buf(&out);
out:
	buf_free(&out);
	tmap_free(&domains);
	tmap_free(&users);
	place_close(&pl);
out_opts:
	buf_free(&domain);
	opts_free(&o);
	return rc;
}

/* cmd_user_show - mailctl user show ADDRESS [--json] */
int cmd_user_show(struct mailctl *ctl)
{
	struct opts o;
	struct buf key = BUF_INIT, out = BUF_INIT;
	struct place pl = { .lock_fd = -1 };
	struct tmap users = { 0 };
	const struct entry *e;
	struct dir_user u;
	int rc;

	if ((rc = parse_opts(ctl, OPT_JSON, 1, 1, "user show ADDRESS [--json]", &o)) != 0)
		goto out_opts;
	if ((rc = check_arg(dir_check_user, "user", o.pos[0], &key)) != 0)
		goto out_opts;
	if ((rc = place_open(ctl, false, &pl)) != 0 || (rc = tmap_load(&pl, DIR_USERS_TABLE, &users)) != 0)
		goto out;
	e = tmap_find(&users, buf_cstr(&key));
	if (e == NULL) {
		mailctl_error("user %s does not exist", buf_cstr(&key));
		rc = MAILCTL_FAIL;
		goto out;
	}
	if ((rc = decode_user(e, &u)) != 0)
		goto out;
	/* Never the hash: it is auth's business alone. */
	if (o.json) {
		user_json(&out, &pl, e->key, &u);
		buf_append_str(&out, "\n");
	} else {
		char *maildir = dir_maildir_path(pl.params.mail_root, e->key);
		char *quota = format_size(u.quota);

		buf_printf(&out, "address: %s\nmailbox: %s\nquota: %s", e->key, maildir, quota);
		if (u.quota > 0)
			buf_printf(&out, " (%lld bytes)", (long long)u.quota);
		buf_printf(&out, "\nenabled: %s\n", u.enabled ? "yes" : "no (no logins; mail is still delivered)");
		free(maildir);
		free(quota);
	}
	dir_user_free(&u);
	print_buf(&out);
out:
	buf_free(&out);
	tmap_free(&users);
	place_close(&pl);
out_opts:
	buf_free(&key);
	opts_free(&o);
	return rc;
}

/* --- alias --------------------------------------------------------- */

/* alias_warn - after a change, say what the alias now does wrong: a loop
 * (auth answers "error" for it, a temporary failure) or targets that are
 * nobody (their mail bounces). The change stands; the operator fixes it. */
static void alias_warn(const struct place *pl, const char *key)
{
	struct directory *d;
	struct dir_expansion e;
	char *error = NULL;

	if (key[0] == '@')
		return; /* a catch-all expands per recipient */
	d = directory_open(pl->params.data_directory);
	if (directory_refresh(d, &error) < 0) {
		free(error);
		directory_close(&d);
		return;
	}
	directory_expand(d, key, &e);
	if (e.result == DIR_LOOP)
		fprintf(stderr, "mailctl: warning: %s; mail to %s is deferred until that is fixed\n", e.reason, key);
	for (size_t i = 0; i < e.unknown_count; i++)
		fprintf(stderr, "mailctl: warning: alias %s leads to %s, which is nobody: its mail bounces\n", key,
			e.unknown[i]);
	dir_expansion_free(&e);
	directory_close(&d);
}

/* cmd_alias_add - mailctl alias add ADDRESS|@DOMAIN TARGET...: creates the
 * alias or adds the targets it lacks. */
int cmd_alias_add(struct mailctl *ctl)
{
	static const char text[] = "alias add ADDRESS|@DOMAIN TARGET [TARGET...]";
	struct opts o;
	struct buf key = BUF_INIT, target = BUF_INIT, value = BUF_INIT;
	struct place pl = { .lock_fd = -1 };
	struct tmap domains = { 0 }, aliases = { 0 };
	struct dir_alias alias = { 0 }, wanted = { 0 };
	const struct entry *e;
	int rc;

	if ((rc = parse_opts(ctl, 0, 2, -1, text, &o)) != 0)
		goto out_opts;
	if ((rc = check_arg(dir_check_alias, "alias", o.pos[0], &key)) != 0)
		goto out_opts;
	for (int i = 1; i < o.npos; i++) {
		if ((rc = check_arg(dir_check_target, "target", o.pos[i], &target)) != 0)
			goto out_opts;
		dir_alias_add(&wanted, buf_cstr(&target));
	}
	if ((rc = place_open(ctl, true, &pl)) != 0 || (rc = tmap_load(&pl, DIR_DOMAINS_TABLE, &domains)) != 0 ||
	    (rc = tmap_load(&pl, DIR_ALIASES_TABLE, &aliases)) != 0 ||
	    (rc = require_domain(&domains, dir_address_domain(buf_cstr(&key)))) != 0)
		goto out;
	e = tmap_find(&aliases, buf_cstr(&key));
	if (e != NULL && (rc = decode_alias(e, &alias)) != 0)
		goto out;
	for (size_t i = 0; i < wanted.count; i++)
		dir_alias_add(&alias, wanted.targets[i]);
	if (alias.count > DIR_ALIAS_TARGETS_MAX) {
		mailctl_error("alias %s would have more than %d targets", buf_cstr(&key), DIR_ALIAS_TARGETS_MAX);
		rc = MAILCTL_FAIL;
		goto out;
	}
	dir_alias_encode(&value, &alias);
	tmap_put(&aliases, buf_cstr(&key), &value);
	if ((rc = tmap_save(&pl, &aliases)) == 0)
		alias_warn(&pl, buf_cstr(&key));
out:
	tmap_free(&domains);
	tmap_free(&aliases);
	place_close(&pl);
out_opts:
	dir_alias_free(&alias);
	dir_alias_free(&wanted);
	buf_free(&key);
	buf_free(&target);
	buf_free(&value);
	opts_free(&o);
	return rc;
}

/* cmd_alias_del - mailctl alias del ADDRESS|@DOMAIN [TARGET]: the alias, or
 * one target (the alias goes with its last one). */
int cmd_alias_del(struct mailctl *ctl)
{
	struct opts o;
	struct buf key = BUF_INIT, value = BUF_INIT;
	struct place pl = { .lock_fd = -1 };
	struct tmap aliases = { 0 };
	struct dir_alias alias = { 0 };
	const struct entry *e;
	int rc;

	if ((rc = parse_opts(ctl, 0, 1, 2, "alias del ADDRESS|@DOMAIN [TARGET]", &o)) != 0)
		goto out_opts;
	if ((rc = check_arg(dir_check_alias, "alias", o.pos[0], &key)) != 0)
		goto out_opts;
	if ((rc = place_open(ctl, true, &pl)) != 0 || (rc = tmap_load(&pl, DIR_ALIASES_TABLE, &aliases)) != 0)
		goto out;
	e = tmap_find(&aliases, buf_cstr(&key));
	if (e == NULL) {
		mailctl_error("alias %s does not exist", buf_cstr(&key));
		rc = MAILCTL_FAIL;
		goto out;
	}
	if (o.npos == 2) {
		size_t i;

		if ((rc = decode_alias(e, &alias)) != 0)
			goto out;
		for (i = 0; i < alias.count && !dir_target_equal(alias.targets[i], o.pos[1]); i++)
			;
		if (i == alias.count) {
			mailctl_error("alias %s has no target %s", buf_cstr(&key), o.pos[1]);
			rc = MAILCTL_FAIL;
			goto out;
		}
		free(alias.targets[i]);
		memmove(&alias.targets[i], &alias.targets[i + 1], (alias.count - i - 1) * sizeof *alias.targets);
		alias.count--;
	}
	if (alias.count == 0) {
		tmap_del(&aliases, buf_cstr(&key));
	} else {
		dir_alias_encode(&value, &alias);
		tmap_put(&aliases, buf_cstr(&key), &value);
	}
	rc = tmap_save(&pl, &aliases);
out:
	tmap_free(&aliases);
	place_close(&pl);
out_opts:
	dir_alias_free(&alias);
	buf_free(&key);
	buf_free(&value);
	opts_free(&o);
	return rc;
}

/* cmd_alias_list - mailctl alias list [DOMAIN] [--json] */
int cmd_alias_list(struct mailctl *ctl)
{
	struct opts o;
	struct buf domain = BUF_INIT, out = BUF_INIT;
	struct place pl = { .lock_fd = -1 };
	struct tmap domains = { 0 }, aliases = { 0 };
	size_t shown = 0;
	int rc;

	if ((rc = parse_opts(ctl, OPT_JSON, 0, 1, "alias list [DOMAIN] [--json]", &o)) != 0)
		goto out_opts;
	if (o.npos == 1 && (rc = check_arg(dir_check_domain, "domain", o.pos[0], &domain)) != 0)
		goto out_opts;
	if ((rc = place_open(ctl, false, &pl)) != 0 || (rc = tmap_load(&pl, DIR_DOMAINS_TABLE, &domains)) != 0 ||
	    (rc = tmap_load(&pl, DIR_ALIASES_TABLE, &aliases)) != 0)
		goto out;
	if (o.npos == 1 && (rc = require_domain(&domains, buf_cstr(&domain))) != 0)
		goto out;
	if (o.json)
		buf_append_str(&out, "[");
	for (size_t i = 0; i < aliases.count; i++) {
		const struct entry *e = &aliases.entries[i];
		struct dir_alias a;

		if (o.npos == 1 && !in_domain(e->key, buf_cstr(&domain)))
			continue;
		if ((rc = decode_alias(e, &a)) != 0)
			goto out;
		if (o.json) {
			buf_append_str(&out, shown > 0 ? ",\n {\"address\": " : "\n {\"address\": ");
			json_str(&out, e->key);
			buf_append_str(&out, ", \"catch_all\": ");
			buf_append_str(&out, e->key[0] == '@' ? "true" : "false");
			buf_append_str(&out, ", \"targets\": [");
			for (size_t t = 0; t < a.count; t++) {
				if (t > 0)
					buf_append_str(&out, ", ");
				json_str(&out, a.targets[t]);
			}
			buf_append_str(&out, "]}");
		} else {
			buf_printf(&out, "%s ->", e->key);
			for (size_t t = 0; t < a.count; t++)
				buf_printf(&out, "%s %s", t > 0 ? "," : "", a.targets[t]);
			buf_append_str(&out, "\n");
		}
		dir_alias_free(&a);
		shown++;
	}
	if (o.json)
		buf_append_str(&out, shown > 0 ? "\n]\n" : "]\n");
	print_buf(&out);
out:
	buf_free(&out);
	tmap_free(&domains);
	tmap_free(&aliases);
	place_close(&pl);
out_opts:
	buf_free(&domain);
	opts_free(&o);
	return rc;
}
