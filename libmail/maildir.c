/* maildir.c - Maildir delivery and Maildir++ quota accounting (maildir.h).
 *
 * Trust: mail_root is the operator's; everything below it may have been
 * touched by a mailbox user (through IMAP, POP3 or a shell on a shared
 * host). So every name below root_fd is resolved one component at a time
 * with openat(O_NOFOLLOW) from the parent's descriptor, and files are only
 * ever created with O_EXCL: no planted symlink or hard link can make local
 * write outside the Maildir it means. What an attacker inside the Maildir
 * can still do is break deliveries to that same Maildir, which is theirs.
 */
#include "config.h"
#include "maildir.h"
#include "../libmail/addr.h"
#include "../libmail/queue_id.h"
#include "../libutil/buf.h"
#include "../libutil/fileutil.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define COPY_CHUNK 65536
#define NAME_TRIES 5
#define MAILDIRSIZE "maildirsize"

/* ---- mailbox names -------------------------------------------------- */

static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* is_atext - RFC 5322 atext, less '/': a local part names a directory. */
static bool is_atext(unsigned char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-=?^_`{|}~", c) != NULL);
}

static bool is_domain_char(unsigned char c)
{
	return is_alnum(c) || c == '-';
}

/* check_dot_atom - len bytes at s: atoms of allowed characters joined by
 * single dots. Besides the grammar this is what keeps ".", "..", hidden
 * names and path separators out of the directory names. */
static int check_dot_atom(const char *s, size_t len, size_t max, bool (*allowed)(unsigned char), bool utf8,
			  const char *what, const char **error_r)
{
	static char reason[96];

	if (len == 0) {
		snprintf(reason, sizeof reason, "empty %s", what);
		goto bad;
	}
	if (len > max) {
		snprintf(reason, sizeof reason, "%s longer than %zu characters", what, max);
		goto bad;
	}
	if (s[0] == '.' || s[len - 1] == '.') {
		snprintf(reason, sizeof reason, "%s starts or ends with '.'", what);
		goto bad;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		size_t n;

		if (c == '.') {
			if (s[i + 1] == '.') {
				snprintf(reason, sizeof reason, "\"..\" in %s", what);
				goto bad;
			}
		} else if (c >= 0x80 && utf8 && (n = addr_utf8_name_char(s + i, len - i)) > 0) {
			i += n - 1;
		} else if (!allowed(c)) {
			if (c == '/')
				snprintf(reason, sizeof reason, "'/' in %s", what);
			else if (c > 0x20 && c < 0x7f)
				snprintf(reason, sizeof reason, "character '%c' in %s", c, what);
			else
				snprintf(reason, sizeof reason, "character 0x%02x in %s", c, what);
			goto bad;
		}
	}
	return 0;
bad:
	*error_r = reason;
	return -1;
}

int maildir_mailbox_parse(const char *mailbox, char local_r[MAILDIR_LOCAL_MAX + 1],
			  char domain_r[MAILDIR_DOMAIN_MAX + 1], const char **error_r)
{
	const char *at = strchr(mailbox, '@');
	size_t local_len, domain_len;

	if (at == NULL) {
		*error_r = "no '@' in mailbox";
		return -1;
	}
	if (strchr(at + 1, '@') != NULL) {
		*error_r = "more than one '@' in mailbox";
		return -1;
	}
	local_len = (size_t)(at - mailbox);
	domain_len = strlen(at + 1);
	if (check_dot_atom(mailbox, local_len, MAILDIR_LOCAL_MAX, is_atext, true, "local part", error_r) < 0 ||
	    check_dot_atom(at + 1, domain_len, MAILDIR_DOMAIN_MAX, is_domain_char, false, "domain", error_r) < 0)
		return -1;
	for (size_t i = 0; i < local_len; i++)
		local_r[i] = ascii_lower(mailbox[i]);
	local_r[local_len] = '\0';
	for (size_t i = 0; i < domain_len; i++)
		domain_r[i] = ascii_lower(at[1 + i]);
	domain_r[domain_len] = '\0';
	return 0;
}

/* ---- opening a Maildir ---------------------------------------------- */

/* open_dir_at - parent/name as a directory, never through a symlink;
 * mkdir it first (0700) if it is missing and create. -1 with errno. */
static int open_dir_at(int parent, const char *name, bool create)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(parent, name, 0700) < 0 && errno != EEXIST)
			return -1;
		fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	return fd;
}

/* dir_error - explain why open_dir_at failed, naming a symlink as such. */
static char *dir_error(int parent, const char *name, const char *shown, int err)
{
	struct stat st;

	if ((err == ELOOP || err == ENOTDIR) && fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISLNK(st.st_mode))
			return xasprintf("%s is a symbolic link: refused", shown);
		if (!S_ISDIR(st.st_mode))
			return xasprintf("%s is not a directory", shown);
	}
	return xasprintf("open %s: %s", shown, strerror(err));
}

int maildir_open(int root_fd, const char *domain, const char *local, bool create, struct maildir **md_r,
		 char **error_r)
{
	const char *path[3] = { domain, local, "Maildir" };
	const char *sub[3] = { "tmp", "new", "cur" };
	int fds[3] = { -1, -1, -1 };
	int subfds[3] = { -1, -1, -1 };
	struct buf shown = BUF_INIT;
	struct maildir *md;
	int parent = root_fd;
	int saved = 0;

	for (int i = 0; i < 3; i++) {
		buf_printf(&shown, "%s%s", i > 0 ? "/" : "", path[i]);
		fds[i] = open_dir_at(parent, path[i], create);
		if (fds[i] < 0) {
			saved = errno;
			*error_r = dir_error(parent, path[i], buf_cstr(&shown), saved);
			goto fail;
		}
		parent = fds[i];
	}
	for (int i = 0; i < 3; i++) {
		subfds[i] = open_dir_at(fds[2], sub[i], create);
		if (subfds[i] < 0) {
			char *name;

			saved = errno;
			name = xasprintf("%s/%s", buf_cstr(&shown), sub[i]);
			*error_r = dir_error(fds[2], sub[i], name, saved);
			free(name);
			goto fail;
		}
	}
	close(fds[0]);
	close(fds[1]);
	md = xnew(struct maildir);
	md->dir_fd = fds[2];
	md->tmp_fd = subfds[0];
	md->new_fd = subfds[1];
	md->cur_fd = subfds[2];
	md->name = buf_steal(&shown);
	*md_r = md;
	return 0;
fail:
	for (int i = 0; i < 3; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		if (subfds[i] >= 0)
			close(subfds[i]);
	}
	buf_free(&shown);
	errno = saved;
	return -1;
}

void maildir_close(struct maildir **mdp)
{
	struct maildir *md = *mdp;

	if (md == NULL)
		return;
	close(md->dir_fd);
	close(md->tmp_fd);
	close(md->new_fd);
	close(md->cur_fd);
	free(md->name);
	free(md);
	*mdp = NULL;
}

/* ---- building blocks ------------------------------------------------ */

size_t maildir_lf_convert(struct maildir_lf *st, const uint8_t *in, size_t len, uint8_t *out)
{
	size_t o = 0, i = 0;

	if (len == 0)
		return 0;
	if (st->cr) {
		/* The CR held back from the last chunk: a line end if LF follows. */
		st->cr = false;
		if (in[0] == '\n') {
			out[o++] = '\n';
			i = 1;
		} else {
			out[o++] = '\r';
		}
	}
	while (i < len) {
		const uint8_t *cr = memchr(in + i, '\r', len - i);
		size_t run = cr == NULL ? len - i : (size_t)(cr - (in + i));

		memcpy(out + o, in + i, run);
		o += run;
		i += run;
		if (i == len)
			break;
		/* in[i] is a CR */
		if (i + 1 == len) {
			st->cr = true;
			i++;
		} else if (in[i + 1] == '\n') {
			out[o++] = '\n';
			i += 2;
		} else {
			out[o++] = '\r';
			i++;
		}
	}
	return o;
}

size_t maildir_lf_finish(struct maildir_lf *st, uint8_t *out)
{
	if (!st->cr)
		return 0;
	st->cr = false;
	out[0] = '\r';
	return 1;
}

/* append_host - the host part of a Maildir name: '/' and ':' become
 * \057 and \072 (Maildir); Maildir++ adds ',' (it separates ",S=" and
 * friends). */
static void append_host(struct buf *b, const char *host)
{
	for (const unsigned char *p = (const unsigned char *)host; *p != '\0'; p++) {
		if (*p == '/' || *p == ':' || *p == ',' || *p == '\\' || *p <= 0x20 || *p >= 0x7f)
			buf_printf(b, "\\%03o", *p);
		else
			buf_append_byte(b, *p);
	}
}

char *maildir_unique_name(const struct timeval *tv, pid_t pid, unsigned long counter, const char *host)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "%lld.M%ldP%ldQ%lu.", (long long)tv->tv_sec, (long)tv->tv_usec, (long)pid, counter);
	append_host(&b, host);
	return buf_steal(&b);
}

char *maildir_queue_name(const char *queue_id, const char *host)
{
	struct buf b = BUF_INIT;
	long long usec = queue_id_usec(queue_id);

	buf_printf(&b, "%lld.Y%s.", usec > 0 ? usec / 1000000 : 0, queue_id);
	append_host(&b, host);
	return buf_steal(&b);
}

/* name_number - the number after field ("S=", "W=") in a Maildir++ name's
 * ",field=N" list (before the ":2," info); -1 if absent or malformed. */
static int64_t name_number(const char *name, const char *field)
{
	const char *info = strchr(name, ':');
	size_t flen = strlen(field);
	int64_t n = 0;
	const char *p;

	for (p = strchr(name, ','); p != NULL && (info == NULL || p < info); p = strchr(p + 1, ','))
		if (strncmp(p + 1, field, flen) == 0)
			break;
	if (p == NULL || (info != NULL && p > info))
		return -1;
	p += 1 + flen;
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (INT64_MAX - (*p - '0')) / 10)
			return -1;
		n = n * 10 + (*p - '0');
	}
	return *p == '\0' || *p == ',' || *p == ':' ? n : -1;
}

int64_t maildir_name_size(const char *name)
{
	return name_number(name, "S=");
}

int64_t maildir_name_vsize(const char *name)
{
	return name_number(name, "W=");
}

/* ---- quota ---------------------------------------------------------- */

bool maildir_quota_over(const struct maildir_usage *u, int64_t size)
{
	if (u->limit <= 0)
		return false;
	if (size < 1)
		size = 1;
	/* bytes + size > limit, without overflowing */
	return u->bytes > u->limit - size;
}

/* parse_int - an optionally signed decimal at *pp; advances *pp. */
static int parse_int(const char **pp, const char *end, bool allow_sign, int64_t *v_r)
{
	const char *p = *pp;
	bool neg = false;
	int64_t v = 0;

	if (allow_sign && p < end && *p == '-') {
		neg = true;
		p++;
	}
	if (p == end || *p < '0' || *p > '9')
		return -1;
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		if (v > (INT64_MAX - (*p - '0')) / 10)
			return -1;
		v = v * 10 + (*p - '0');
	}
	*v_r = neg ? -v : v;
	*pp = p;
	return 0;
}

static const char *skip_blanks(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

int maildirsize_parse(const char *text, size_t len, struct maildir_usage *u_r)
{
	const char *p = text, *end = text + len;
	const char *eol = memchr(text, '\n', len);
	struct maildir_usage u = { 0, 0, 0 };

	if (eol == NULL || text[len - 1] != '\n')
		return -1; /* no first line, or a torn last one */
	/* The definition: "NS", "NC", "NS,NC" (empty: no limit). */
	while (p < eol) {
		int64_t v;

		if (parse_int(&p, eol, false, &v) < 0 || p == eol)
			return -1;
		if (*p == 'S')
			u.limit = v;
		else if (*p != 'C')
			return -1;
		p++;
		if (p < eol && (*p++ != ',' || p == eol))
			return -1; /* junk after an item, or a trailing comma */
	}
	for (p = eol + 1; p < end; p = eol + 1) {
		int64_t bytes, count;

		eol = memchr(p, '\n', (size_t)(end - p));
		p = skip_blanks(p, eol);
		if (parse_int(&p, eol, true, &bytes) < 0)
			return -1;
		if (p == eol || (*p != ' ' && *p != '\t'))
			return -1;
		p = skip_blanks(p, eol);
		if (parse_int(&p, eol, true, &count) < 0)
			return -1;
		if (skip_blanks(p, eol) != eol)
			return -1;
		if ((bytes > 0 && u.bytes > INT64_MAX - bytes) || (bytes < 0 && u.bytes < INT64_MIN - bytes) ||
		    (count > 0 && u.count > INT64_MAX - count) || (count < 0 && u.count < INT64_MIN - count))
			return -1;
		u.bytes += bytes;
		u.count += count;
	}
	*u_r = u;
	return 0;
}

/* sum_dir - add up the messages in parent/name (a cur/ or new/). A missing
 * directory or a symlink where it should be counts as empty. */
static int sum_dir(int parent, const char *name, int64_t *bytes, int64_t *count)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d;
	struct dirent *de;

	if (fd < 0)
		return errno == ENOENT || errno == ELOOP || errno == ENOTDIR ? 0 : -1;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return -1;
	}
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		int64_t size;

		if (de->d_name[0] == '.')
			continue;
		size = maildir_name_size(de->d_name);
		if (size < 0) {
			struct stat st;

			/* Not named by Maildir++ rules (another MDA): stat it. */
			if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
				continue;
			size = st.st_size;
		}
		if (*bytes > INT64_MAX - size)
			*bytes = INT64_MAX;
		else
			*bytes += size;
		(*count)++;
		errno = 0;
	}
	if (errno != 0) {
		int saved = errno;

		closedir(d);
		errno = saved;
		return -1;
	}
	closedir(d);
	return 0;
}

/* sum_maildir - the Maildir's new/ and cur/ and those of its Maildir++
 * folders (".NAME" subdirectories; Trash counts too). */
static int sum_maildir(struct maildir *md, int64_t *bytes, int64_t *count)
{
	int fd, saved;
	DIR *d;
	struct dirent *de;

	if (sum_dir(md->dir_fd, "new", bytes, count) < 0 || sum_dir(md->dir_fd, "cur", bytes, count) < 0)
		return -1;
	fd = openat(md->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		int folder;

		if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		folder = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (folder < 0)
			continue; /* a file such as a dovecot index, or a symlink */
		if (sum_dir(folder, "new", bytes, count) < 0 || sum_dir(folder, "cur", bytes, count) < 0) {
			saved = errno;
			close(folder);
			closedir(d);
			errno = saved;
			return -1;
		}
		close(folder);
	}
	closedir(d);
	return 0;
}

static unsigned long name_counter;

/* create_tmp - a new file in tmp/ with a unique name; -1 with errno. */
static int create_tmp(struct maildir *md, const char *host, const char *suffix, char **name_r)
{
	for (int try = 0; try < NAME_TRIES; try++) {
		struct timeval tv;
		char *base, *name;
		int fd;

		gettimeofday(&tv, NULL);
		base = maildir_unique_name(&tv, getpid(), ++name_counter, host);
		name = xasprintf("%s%s", base, suffix);
		free(base);
		fd = openat(md->tmp_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0) {
			*name_r = name;
			return fd;
		}
		free(name);
		if (errno != EEXIST)
			return -1;
	}
	errno = EEXIST;
	return -1;
}

int maildir_quota_recalc(struct maildir *md, int64_t limit, struct maildir_usage *u_r, char **error_r)
{
	struct maildir_usage u = { limit < 0 ? 0 : limit, 0, 0 };
	char *text, *name = NULL;
	int fd, saved;

	if (sum_maildir(md, &u.bytes, &u.count) < 0) {
		saved = errno;
		*error_r = xasprintf("%s: cannot count the messages: %s", md->name, strerror(saved));
		errno = saved;
		return -1;
	}
	/* Write it aside and rename it into place: readers see the old file
	 * or the new one, never half of one. It is a cache, not mail: no fsync
	 * (after a crash a bad file is simply rebuilt). */
	text = xasprintf("%lldS\n%lld %lld\n", (long long)u.limit, (long long)u.bytes, (long long)u.count);
	fd = create_tmp(md, "localhost", ".maildirsize", &name);
	if (fd < 0)
		goto fail;
	if (fd_write_all(fd, text, strlen(text)) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		goto fail_unlink;
	}
	if (close(fd) < 0 || renameat(md->tmp_fd, name, md->dir_fd, MAILDIRSIZE) < 0)
		goto fail_unlink;
	free(name);
	free(text);
	*u_r = u;
	return 0;
fail_unlink:
	saved = errno;
	unlinkat(md->tmp_fd, name, 0);
	errno = saved;
fail:
	saved = errno;
	*error_r = xasprintf("%s/%s: cannot rebuild: %s", md->name, MAILDIRSIZE, strerror(saved));
	free(name);
	free(text);
	errno = saved;
	return -1;
}

int maildir_quota_usage(struct maildir *md, int64_t limit, int64_t will_add, struct maildir_usage *u_r,
			char **error_r)
{
	char text[MAILDIRSIZE_MAX + 1];
	struct maildir_usage u;
	struct stat st;
	size_t len = 0;
	int fd;

	/* O_NONBLOCK: a FIFO planted here must not hang the delivery. */
	fd = openat(md->dir_fd, MAILDIRSIZE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ELOOP)
			return maildir_quota_recalc(md, limit, u_r, error_r);
		*error_r = xasprintf("%s/%s: %s", md->name, MAILDIRSIZE, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > MAILDIRSIZE_MAX) {
		close(fd);
		return maildir_quota_recalc(md, limit, u_r, error_r);
	}
	for (;;) {
		ssize_t n = read(fd, text + len, sizeof text - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int saved = errno;

			close(fd);
			*error_r = xasprintf("%s/%s: read: %s", md->name, MAILDIRSIZE, strerror(saved));
			errno = saved;
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sizeof text)
			break; /* grew past the limit meanwhile */
	}
	close(fd);
	if (len > MAILDIRSIZE_MAX || maildirsize_parse(text, len, &u) < 0 || u.bytes < 0 || u.count < 0 ||
	    (limit >= 0 && u.limit != limit))
		return maildir_quota_recalc(md, limit, u_r, error_r);
	/* Mail expunged by a client that does not keep maildirsize makes the
	 * sum drift upwards; before refusing mail, count again now and then. */
	if (maildir_quota_over(&u, will_add) && time(NULL) - st.st_mtime > MAILDIRSIZE_STALE_SECS)
		return maildir_quota_recalc(md, u.limit, u_r, error_r);
	*u_r = u;
	return 0;
}

int maildir_quota_add(struct maildir *md, int64_t limit, int64_t bytes, int64_t count, char **error_r)
{
	char line[64];
	struct stat st;
	struct maildir_usage u;
	int fd, n;

	fd = openat(md->dir_fd, MAILDIRSIZE, O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
		close(fd);
		fd = -1;
		errno = ELOOP;
	}
	if (fd < 0) {
		if (errno == ENOENT || errno == ELOOP)
			return maildir_quota_recalc(md, limit, &u, error_r);
		*error_r = xasprintf("%s/%s: %s", md->name, MAILDIRSIZE, strerror(errno));
		return -1;
	}
	/* One write() with O_APPEND: concurrent writers never interleave. */
	n = snprintf(line, sizeof line, "%lld %lld\n", (long long)bytes, (long long)count);
	if (write(fd, line, (size_t)n) != n) {
		int saved = errno;

		close(fd);
		/* A torn line makes the file unparsable, hence rebuilt: fine. */
		*error_r = xasprintf("%s/%s: write: %s", md->name, MAILDIRSIZE, strerror(saved));
		errno = saved;
		return -1;
	}
	close(fd);
	return 0;
}

int maildir_quota_query(int root_fd, const char *mailbox, int64_t size, int64_t limit, char **error_r)
{
	char local[MAILDIR_LOCAL_MAX + 1], domain[MAILDIR_DOMAIN_MAX + 1];
	struct maildir_usage u = { limit < 0 ? 0 : limit, 0, 0 };
	struct maildir *md;
	const char *reason;
	int rc;

	if (maildir_mailbox_parse(mailbox, local, domain, &reason) < 0) {
		*error_r = xasprintf("bad mailbox name: %s", reason);
		return -1;
	}
	if (maildir_open(root_fd, domain, local, false, &md, error_r) < 0) {
		if (errno != ENOENT)
			return -1;
		/* No mail yet: empty. */
		free(*error_r);
		*error_r = NULL;
		return maildir_quota_over(&u, size) ? 1 : 0;
	}
	/* The lock keeps a rebuild here from racing a delivery's accounting. */
	while (flock(md->dir_fd, LOCK_EX) < 0 && errno == EINTR)
		;
	rc = maildir_quota_usage(md, limit, size, &u, error_r);
	flock(md->dir_fd, LOCK_UN);
	maildir_close(&md);
	if (rc < 0)
		return -1;
	return maildir_quota_over(&u, size) ? 1 : 0;
}

/* ---- delivery ------------------------------------------------------- */

static enum maildir_outcome result(struct maildir_result *res, enum maildir_outcome outcome, const char *dsn,
				   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum maildir_outcome result(struct maildir_result *res, enum maildir_outcome outcome, const char *dsn,
				   const char *fmt, ...)
{
	va_list ap;

	res->outcome = outcome;
	snprintf(res->dsn, sizeof res->dsn, "%s", dsn);
	va_start(ap, fmt);
	vsnprintf(res->text, sizeof res->text, fmt, ap);
	va_end(ap);
	return outcome;
}

/* errno_dsn - the temporary status an errno stands for: a full disk (or a
 * file-system quota of the mailbox account) is "mail system full", an
 * unsafe mailbox (symlink, file where a directory belongs) "mailbox
 * unavailable", anything else a system error. */
static const char *errno_dsn(int err)
{
	switch (err) {
	case ENOSPC:
	case EDQUOT:
		return "4.3.1";
	case ELOOP:
	case ENOTDIR:
		return "4.2.0";
	default:
		return "4.3.0";
	}
}

/* count_lf - how many line ends data holds. */
static int64_t count_lf(const uint8_t *data, size_t len)
{
	int64_t n = 0;

	for (const uint8_t *p = data, *end = data + len; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
		n++;
	return n;
}

/* copy_content - headers, then the content with LF line ends, into fd;
 * the bytes written in *size_r, and in *vsize_r their size with CRLF
 * line ends (what POP3 and IMAP count). -1 with errno and a new error
 * string. */
static int copy_content(int fd, const struct maildir_msg *msg, const char *delivered_to, int64_t *size_r,
			int64_t *vsize_r, char **error_r)
{
	uint8_t *in = xmalloc(COPY_CHUNK);
	struct buf out = BUF_INIT;
	struct maildir_lf lf = { false };
	int64_t size = 0, lines = 0;
	off_t off = 0;
	int saved;

	buf_printf(&out, "Return-Path: <%s>\nX-Original-To: %s\nDelivered-To: %s\n", msg->sender,
		   msg->recipient, delivered_to);
	for (;;) {
		ssize_t n = pread(msg->content_fd, in, COPY_CHUNK, off);
		uint8_t *room;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			saved = errno;
			*error_r = xasprintf("read message content: %s", strerror(saved));
			goto fail;
		}
		room = buf_reserve(&out, (size_t)n + 1);
		out.len += n > 0 ? maildir_lf_convert(&lf, in, (size_t)n, room) : maildir_lf_finish(&lf, room);
		if (out.len >= COPY_CHUNK || n == 0) {
			if (fd_write_all(fd, out.data, out.len) < 0) {
				saved = errno;
				*error_r = xasprintf("write: %s", strerror(saved));
				goto fail;
			}
			size += (int64_t)out.len;
			lines += count_lf(out.data, out.len);
			buf_reset(&out);
		}
		if (n == 0)
			break;
		off += n;
	}
	free(in);
	buf_free(&out);
	*size_r = size;
	*vsize_r = size + lines;
	return 0;
fail:
	free(in);
	buf_free(&out);
	errno = saved;
	return -1;
}

/* ---- repeats ---------------------------------------------------------- */

/* A message of the queue gets a name in new/ that only depends on its
 * queue ID (maildir_queue_name): handed over a second time (local or qmgr
 * died after the delivery but before qmgr recorded it), it would get the
 * same name again, so the file itself is the record of the delivery:
 * the rename, which never replaces a file, finds it in new/. A reader may
 * have moved it to cur/ (adding ":2,FLAGS") in between; qmgr says when a
 * hand-over may be such a repeat (msg->recheck), and only then are new/
 * and cur/ searched for the name. */

/* dir_has_prefix - whether the directory dir (relative to md) holds a
 * name starting with prefix. */
static bool dir_has_prefix(struct maildir *md, const char *dir, const char *prefix)
{
	int fd = openat(md->dir_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	size_t plen = strlen(prefix);
	bool found = false;
	DIR *d;
	struct dirent *de;

	if (fd < 0)
		return false;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return false;
	}
	while (!found && (de = readdir(d)) != NULL)
		found = strncmp(de->d_name, prefix, plen) == 0;
	closedir(d);
	return found;
}

/* delivered_before - whether the message with this queue ID is in new/
 * or cur/ already, under any host name or flags. */
static bool delivered_before(struct maildir *md, const char *queue_id)
{
	char *prefix = maildir_queue_name(queue_id, "");
	bool found = dir_has_prefix(md, "new", prefix) || dir_has_prefix(md, "cur", prefix);

	free(prefix);
	return found;
}

/* rename_noreplace - tmp/name to new/final, failing with EEXIST rather
 * than replacing a file already there. RENAME_NOREPLACE where the file
 * system has it; else a look first (deliveries into one Maildir take
 * turns under its lock, so nothing comes in between). */
static int rename_noreplace(struct maildir *md, const char *name, const char *final)
{
#ifdef RENAME_NOREPLACE
	if (renameat2(md->tmp_fd, name, md->new_fd, final, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
#endif
	struct stat st;

	if (fstatat(md->new_fd, final, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		errno = EEXIST;
		return -1;
	}
	return renameat(md->tmp_fd, name, md->new_fd, final);
}

/* deliver_once - one try; *kept_r tells whether a kept Maildir was used. */
static enum maildir_outcome deliver_once(int root_fd, const struct maildir_msg *msg, bool fresh, bool *kept_r,
					 struct maildir_result *res)
{
	char local[MAILDIR_LOCAL_MAX + 1], domain[MAILDIR_DOMAIN_MAX + 1];
	char *delivered_to = NULL, *name = NULL, *final = NULL, *error = NULL;
	struct maildir *md = NULL;
	struct maildir_usage u = { 0, 0, 0 };
	const char *reason;
	struct stat st;
	int64_t size = 0, vsize = 0;
	int fd = -1, err;
	bool locked = false;

	memset(res, 0, sizeof *res);
	if (maildir_mailbox_parse(msg->mailbox, local, domain, &reason) < 0)
		return result(res, MAILDIR_PERM, "5.1.1", "bad mailbox name: %s", reason);
	if (fstat(msg->content_fd, &st) < 0 || !S_ISREG(st.st_mode))
		return result(res, MAILDIR_TEMP, "4.3.0", "message content is not a regular file");
	if (maildir_open_cached(root_fd, domain, local, fresh, &md, kept_r, &error) < 0) {
		result(res, MAILDIR_TEMP, errno_dsn(errno), "%s", error);
		free(error);
		return res->outcome;
	}
	delivered_to = xasprintf("%s@%s", local, domain);

	fd = create_tmp(md, msg->hostname, "", &name);
	if (fd < 0) {
		err = errno;
		result(res, MAILDIR_TEMP, errno_dsn(err), "create a file in %s/tmp: %s", md->name, strerror(err));
		goto out;
	}
	if (copy_content(fd, msg, delivered_to, &size, &vsize, &error) < 0) {
		result(res, MAILDIR_TEMP, errno_dsn(errno), "%s/tmp/%s: %s", md->name, name, error);
		goto out_unlink;
	}

	/* The message is on disk before the lock is taken: deliveries into
	 * one busy Maildir then wait for each other only for the bookkeeping
	 * below, not for each other's data. (An fsync is wasted when a full
	 * mailbox refuses the message; that is the rare case.) */
	if (fsync(fd) < 0) {
		err = errno;
		result(res, MAILDIR_TEMP, errno_dsn(err), "fsync %s/tmp/%s: %s", md->name, name, strerror(err));
		goto out_unlink;
	}
	if (close(fd) < 0) {
		fd = -1;
		err = errno;
		result(res, MAILDIR_TEMP, errno_dsn(err), "close %s/tmp/%s: %s", md->name, name, strerror(err));
		goto out_unlink;
	}
	fd = -1;
	if (msg->queue_id != NULL) {
		char *base = maildir_queue_name(msg->queue_id, msg->hostname);

		final = xasprintf("%s,S=%lld,W=%lld", base, (long long)size, (long long)vsize);
		free(base);
	} else {
		final = xasprintf("%s,S=%lld,W=%lld", name, (long long)size, (long long)vsize);
	}
	/* From the repeat and quota checks to the accounting line,
	 * deliveries into this Maildir take turns. */
	while (flock(md->dir_fd, LOCK_EX) < 0 && errno == EINTR)
		;
	locked = true;
	if (msg->queue_id != NULL && msg->recheck && delivered_before(md, msg->queue_id)) {
		result(res, MAILDIR_OK, "2.0.0", "already delivered to maildir");
		goto out_unlink;
	}
	if (maildir_quota_usage(md, msg->quota, size, &u, &error) < 0) {
		if (msg->quota > 0) {
			result(res, MAILDIR_TEMP, errno_dsn(errno), "quota: %s", error);
			goto out_unlink;
		}
		/* No limit to enforce: the accounting is rebuilt next time. */
		free(error);
		error = NULL;
		u.limit = 0;
	}
	if (maildir_quota_over(&u, size)) {
		if (msg->quota_permanent)
			result(res, MAILDIR_PERM, "5.2.2", "mailbox full");
		else
			result(res, MAILDIR_TEMP, "4.2.2", "mailbox full");
		goto out_unlink;
	}
	if (rename_noreplace(md, name, final) < 0) {
		err = errno;
		if (err == EEXIST && msg->queue_id != NULL) {
			result(res, MAILDIR_OK, "2.0.0", "already delivered to maildir");
			goto out_unlink;
		}
		result(res, MAILDIR_TEMP, errno_dsn(err), "rename into %s/new: %s", md->name, strerror(err));
		goto out_unlink;
	}
	if (maildir_quota_add(md, msg->quota, size, 1, &error) < 0) {
		/* The message is in new/ all the same. Remove the file so that
		 * the next delivery rebuilds it instead of trusting a sum that
		 * misses this message. */
		free(error);
		error = NULL;
		unlinkat(md->dir_fd, MAILDIRSIZE, 0);
	}
	flock(md->dir_fd, LOCK_UN);
	locked = false;
	/* The rename is durable only once new/ itself is on disk. */
	if (msg->sync_dir && fsync(md->new_fd) < 0) {
		err = errno;
		/* Take it back rather than risk a second copy on the retry. */
		if (unlinkat(md->new_fd, final, 0) == 0)
			(void)maildir_quota_add(md, msg->quota, -size, -1, &error);
		free(error);
		error = NULL;
		result(res, MAILDIR_TEMP, errno_dsn(err), "fsync %s/new: %s", md->name, strerror(err));
		goto out;
	}
	res->size = size;
	snprintf(res->file, sizeof res->file, "%s", final);
	result(res, MAILDIR_OK, "2.0.0", "delivered to maildir");
	goto out;

out_unlink:
	if (fd >= 0)
		close(fd);
	fd = -1;
	unlinkat(md->tmp_fd, name, 0);
out:
	if (locked)
		flock(md->dir_fd, LOCK_UN);
	if (fd >= 0)
		close(fd);
	free(error);
	free(final);
	free(name);
	free(delivered_to);
	/* A failure a fresh open might cure: do not keep this Maildir. */
	if (res->outcome == MAILDIR_TEMP && md != NULL)
		maildir_forget(md);
	else
		maildir_release(&md);
	return res->outcome;
}

enum maildir_outcome maildir_deliver(int root_fd, const struct maildir_msg *msg, struct maildir_result *res)
{
	bool kept = false;

	/* A kept Maildir that failed may be stale (a directory below it was
	 * replaced since): one more try with everything opened afresh. */
	if (deliver_once(root_fd, msg, false, &kept, res) == MAILDIR_TEMP && kept)
		deliver_once(root_fd, msg, true, &kept, res);
	return res->outcome;
}
