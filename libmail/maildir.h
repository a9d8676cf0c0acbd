/* maildir.h - Maildir delivery and Maildir++ quota accounting, as pure
 * functions on directory descriptors: no daemon, no configuration, no
 * global state but a per-process name counter and the Maildirs kept open
 * between deliveries (maildir_cache.c). local_deliver.c drives the
 * delivery; pop3d opens Maildirs, reads their names and accounts for
 * what it removes; tests/unit/test_maildir.c drives it against temporary
 * directories.
 *
 * Layout: ROOT/DOMAIN/LOCALPART/Maildir/{tmp,new,cur}, ROOT being
 * mail_root, DOMAIN and LOCALPART the lower-cased halves of the mailbox
 * address (maildir_mailbox_parse). Every directory below ROOT is opened
 * with openat(O_NOFOLLOW | O_DIRECTORY) relative to its parent and created
 * (mode 0700) when missing, so a symlink planted anywhere inside cannot
 * redirect a delivery: it makes the delivery fail (temporarily) instead.
 *
 * A delivery (maildir_deliver) writes tmp/UNIQUE with O_CREAT|O_EXCL,
 * prepends Return-Path, X-Original-To and Delivered-To, copies the content
 * converting CRLF line ends to LF, checks the quota with the exact size,
 * fsyncs the file, renames it to new/UNIQUE,S=SIZE,W=CRLFSIZE (never replacing a
 * file there), records it in maildirsize and fsyncs new/. On any failure
 * the tmp file is removed: new/ only ever holds complete messages.
 *
 * Quota (Maildir++): Maildir/maildirsize holds the limit on its first line
 * ("<bytes>S"; 0S: no limit) and then one "<bytes> <count>" line per change
 * (deliveries here, expunges by POP3/IMAP later, negative numbers allowed).
 * Usage is the sum of those lines. The file is rebuilt by scanning new/ and
 * cur/ of the Maildir and of its Maildir++ folders (.NAME/) when it is
 * missing, unparsable, larger than 5120 bytes, holds another limit than
 * the one given, or says "over quota" and is more than 15 minutes old.
 * Deliveries into one Maildir are serialised by flock() on the Maildir
 * directory, so two local processes cannot both squeeze into the last
 * free bytes; POP3/IMAP only ever lower the usage, so they need not lock.
 *
 * Outcomes follow the delivery-agent vocabulary (STYLE.md practice 26):
 * MAILDIR_OK / MAILDIR_TEMP / MAILDIR_PERM plus an RFC 3463 code and text.
 */
#ifndef YB_MAILDIR_H
#define YB_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <sys/types.h>

#define MAILDIR_LOCAL_MAX 64       /* RFC 5321 4.5.3.1.1 */
#define MAILDIR_DOMAIN_MAX 255     /* RFC 5321 4.5.3.1.2 */
#define MAILDIRSIZE_MAX 5120       /* Maildir++: rebuild above this size */
#define MAILDIRSIZE_STALE_SECS (15 * 60)

enum maildir_outcome { MAILDIR_OK, MAILDIR_TEMP, MAILDIR_PERM };

/* What one delivery needs. */
struct maildir_msg {
	int content_fd;        /* the queue content file; read with pread from 0 */
	const char *sender;    /* envelope sender, "" for the null sender */
	const char *recipient; /* envelope recipient as the sender wrote it */
	const char *mailbox;   /* resolved local mailbox "user@domain" */
	int64_t quota;         /* bytes; 0: unlimited */
	bool quota_permanent;  /* over quota: 5.2.2 (else 4.2.2) */
	const char *hostname;  /* for the unique file name */
	const char *queue_id;  /* names the file in new/, so a repeat is recognised; NULL: none */
	bool recheck;          /* this may be a repeat: look for the message in new/ and cur/ too */
	bool sync_dir;         /* fsync new/ after the rename (always, but in benchmarks) */
};

struct maildir_result {
	enum maildir_outcome outcome;
	char dsn[8];          /* "2.0.0", "4.2.2", ... */
	char text[320];       /* "delivered to maildir", "mailbox full", ... */
	int64_t size;         /* bytes written (MAILDIR_OK) */
	char file[256];       /* the name in new/ (MAILDIR_OK) */
};

/* maildir_mailbox_parse - check a resolved mailbox address and split it
 * into lower-cased local part and domain, the two directory names below
 * mail_root. Refused: no '@' or more than one, an empty or overlong half,
 * a half starting or ending with '.' or holding "..", '/', blanks, control
 * characters; local parts are RFC 5322 dot-atoms that may hold UTF-8 (not
 * what addr_utf8_name_char refuses), domains ASCII letters, digits, '-'
 * and '.'. Only ASCII letters are lower-cased. -1 with a static reason. */
int maildir_mailbox_parse(const char *mailbox, char local_r[MAILDIR_LOCAL_MAX + 1],
			  char domain_r[MAILDIR_DOMAIN_MAX + 1], const char **error_r);

/* An open Maildir: descriptors of the Maildir and its three directories. */
struct maildir {
	int dir_fd, tmp_fd, new_fd, cur_fd;
	char *name; /* "DOMAIN/LOCAL/Maildir", for messages */
};

/* maildir_open - open ROOT/domain/local/Maildir below root_fd without
 * following symlinks; create what is missing (mode 0700) when create.
 * -1 with errno kept and a new error string (ENOENT: no such Maildir). */
int maildir_open(int root_fd, const char *domain, const char *local, bool create,
		 struct maildir **md_r, char **error_r);
void maildir_close(struct maildir **md);

/* maildir_open_cached - maildir_open(create) through the per-process
 * cache of recently used Maildirs (maildir_cache.c): *kept_r says whether
 * a kept one was reused; fresh: never reuse, open anew (and keep that).
 * Hand the Maildir back with maildir_release when done, or with
 * maildir_forget after a failure that a fresh open might cure. */
int maildir_open_cached(int root_fd, const char *domain, const char *local, bool fresh, struct maildir **md_r,
			bool *kept_r, char **error_r);
void maildir_release(struct maildir **md);
void maildir_forget(struct maildir *md);
/* maildir_cache_clear - close every kept Maildir (at exit, in tests). */
void maildir_cache_clear(void);

/* maildir_deliver - deliver msg into the Maildir of msg->mailbox below
 * root_fd (created on first delivery); fills every field of *res and
 * returns res->outcome. */
enum maildir_outcome maildir_deliver(int root_fd, const struct maildir_msg *msg, struct maildir_result *res);

/* ---- quota ---------------------------------------------------------- */

struct maildir_usage {
	int64_t limit; /* bytes, 0: none */
	int64_t bytes;
	int64_t count;
};

/* maildir_quota_over - whether adding size bytes exceeds the limit. A size
 * of 0 (unknown) counts as 1, so a mailbox that is exactly full is over. */
bool maildir_quota_over(const struct maildir_usage *u, int64_t size);

/* maildirsize_parse - the usage a maildirsize file holds; -1 if it is not
 * one (bad first line, bad line, missing final newline, overflow). A
 * count limit ("...,NC") is read but not kept: Yubin limits bytes only. */
int maildirsize_parse(const char *text, size_t len, struct maildir_usage *u_r);

/* maildir_quota_usage - the Maildir's usage, rebuilding maildirsize when it
 * must be (see the top of this file). limit >= 0 is the limit in force
 * (a stored different one triggers a rebuild); limit < 0 takes the stored
 * one. will_add: the size about to be added (for the stale-over rule).
 * -1 with errno and a new error string. */
int maildir_quota_usage(struct maildir *md, int64_t limit, int64_t will_add, struct maildir_usage *u_r,
			char **error_r);

/* maildir_quota_recalc - rebuild maildirsize from the messages on disk. */
int maildir_quota_recalc(struct maildir *md, int64_t limit, struct maildir_usage *u_r, char **error_r);

/* maildir_quota_add - append one "bytes count" line (a single O_APPEND
 * write, as Maildir++ wants); if the file is missing or unsafe it is
 * rebuilt instead. */
int maildir_quota_add(struct maildir *md, int64_t limit, int64_t bytes, int64_t count, char **error_r);

/* maildir_quota_query - for the "quota" request: would a message of size
 * bytes fit in the mailbox? limit < 0: the limit stored in maildirsize.
 * A Maildir that does not exist yet is empty. 1 over, 0 fits, -1 error
 * (with a new error string; bad mailbox names included). */
int maildir_quota_query(int root_fd, const char *mailbox, int64_t size, int64_t limit, char **error_r);

/* ---- building blocks, exposed for the tests ------------------------- */

/* CRLF -> LF across chunk boundaries: a CR at the end of a chunk is held
 * back until the next byte shows whether it ends a line. Bare CRs and
 * bare LFs are copied unchanged. out must hold len + 1 bytes. */
struct maildir_lf {
	bool cr; /* a CR is held back */
};
size_t maildir_lf_convert(struct maildir_lf *st, const uint8_t *in, size_t len, uint8_t *out);
/* maildir_lf_finish - at end of input: the held-back CR, if any (out: 1 byte). */
size_t maildir_lf_finish(struct maildir_lf *st, uint8_t *out);

/* maildir_unique_name - "SECS.M<usec>P<pid>Q<counter>.HOST" in new memory,
 * with '/', ':' and ',' in HOST (and anything unprintable) written \ooo. */
char *maildir_unique_name(const struct timeval *tv, pid_t pid, unsigned long counter, const char *host);
/* maildir_queue_name - "SECS.Y<queue_id>.HOST" in new memory (SECS: the
 * message's arrival, from the ID; HOST written as above): the name in
 * new/ of that message, the same each time it is delivered. */
char *maildir_queue_name(const char *queue_id, const char *host);

/* maildir_name_size - the S=<size> a Maildir++ file name carries; -1 if none. */
int64_t maildir_name_size(const char *name);
/* maildir_name_vsize - the W=<size> (the size with CRLF line ends, as POP3
 * and IMAP count it) a file name carries; -1 if none. */
int64_t maildir_name_vsize(const char *name);

#endif
