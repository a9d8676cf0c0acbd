/* pop3d_mailbox.h - a user's Maildir as a POP3 session sees it: opened
 * and locked for the session ([IN-USE] for a second one), listed once at
 * login (new/ and cur/, in arrival order, each with its size as sent and
 * a UIDL that never changes), read message by message, and cleared of
 * the messages deleted at QUIT. Mail delivered during the session is not
 * seen by it (RFC 1939: the maildrop as it was at login). */
#ifndef YB_POP3D_MAILBOX_H
#define YB_POP3D_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "../libmail/pop3_server.h" /* enum pop3_mailbox_result */

/* RFC 1939 7: a unique-id is 1 to 70 characters 0x21..0x7E. */
#define POP3_UIDL_MAX 70

struct fileop_pool;
struct maildir;

struct pop3_mail {
	char *name;              /* the file's name in new/ or cur/ */
	bool in_cur;
	char uidl[POP3_UIDL_MAX + 1];
	long long size;          /* on disk (S=, or the file's size) */
	long long vsize;         /* as sent: CRLF line ends (W=, or counted) */
};

struct pop3_mailbox {
	struct maildir *md;
	int lock_fd;             /* flocked for the session */
	struct pop3_mail *mails;
	size_t count;
};

/* The lock file in the Maildir: held (flock) while a session is open. */
#define POP3_LOCK_FILE "yubin-pop3.lock"

/* pop3_mailbox_open - open ROOT/DOMAIN/LOCAL/Maildir for user
 * ("local@domain", as auth names it) below root_fd (created when the
 * user has had no mail yet), lock it and list it: POP3_MAILBOX_OK, or
 * IN_USE (another session has it), TEMP (cannot open or list it now) or
 * PERM (not a mailbox name) with a new error string for the log. */
enum pop3_mailbox_result pop3_mailbox_open(int root_fd, const char *user, struct pop3_mailbox **mb_r,
					   char **error_r);

/* pop3_mailbox_open_message - a read-only descriptor of message i (found
 * in the other directory if an IMAP client moved it meanwhile); -1 with
 * errno when it is gone. */
int pop3_mailbox_open_message(struct pop3_mailbox *mb, size_t i);

/* pop3_expunge_done_fn - the removals are over: ok = every marked
 * message is gone (removed counts them, including any that were gone
 * already); else error (new memory) says what was left. */
typedef void pop3_expunge_done_fn(void *arg, bool ok, size_t removed, char *error);

/* pop3_mailbox_expunge - remove the messages marked in deleted[] (count
 * entries) on the pool's threads, so that a slow unlink (a disk that
 * discards synchronously) stops no other session, then account for them
 * in maildirsize and call done on the loop (from inside this call only
 * when nothing is marked). mb must stay open until then. */
void pop3_mailbox_expunge(struct pop3_mailbox *mb, const bool *deleted, size_t count, struct fileop_pool *pool,
			  pop3_expunge_done_fn *done, void *arg);

/* pop3_mailbox_close - unlock and free; accepts NULL. */
void pop3_mailbox_close(struct pop3_mailbox **mb);

/* pop3_uidl - the UIDL of a Maildir file name: the name up to its first
 * ',' or ':' (which a delivery makes unique and nobody renames), or, when
 * that is longer than POP3_UIDL_MAX or holds other characters, "H" and 32
 * hex digits of its SHA-256. Exposed for the tests. */
void pop3_uidl(const char *name, char out[POP3_UIDL_MAX + 1]);

#endif
