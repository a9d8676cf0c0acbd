/* directory.h - the mail model: hosted domains, users and aliases, over
 * three tables (table.h) in data_directory:
 *
 *   domains.db  key "example.com"        -> { version }
 *   users.db    key "bob@example.com"    -> { version, password, quota, enabled [, scram] }
 *   aliases.db  key "info@example.com"   -> { version, target, target, ... }
 *               key "@example.com"       -> the same: the domain's catch-all
 *
 * Records are ipc.h field lists (never raw structs) with a version field;
 * a record of another version, or one that does not decode, is an error
 * for the lookup that met it, never a crash. Keys are lower case: domains
 * are case-insensitive, and local parts are treated so too, as Postfix's
 * virtual maps and every hosting panel do (only ASCII letters are folded).
 * The password is a crypt(3) hash; scram, when present, the user's
 * SCRAM-SHA-256 secret (password.h), without which SCRAM logins fail
 * (users created before secrets were stored have none); quota is in
 * bytes, 0 = unlimited. The mailbox is derived, never stored:
 * mail_root/DOMAIN/LOCALPART/Maildir.
 *
 * Precedence, for an address in a hosted domain (first match wins):
 *   1. an alias for the exact address (so an alias can redirect a user's
 *      mail; listing the user's own address as a target keeps a copy),
 *   2. a user with the exact address,
 *   3. plus-addressing: "user+tag@d" with no exact match is looked up as
 *      "user@d" (alias, then user); the tag is dropped,
 *   4. the catch-all "@d",
 *   5. otherwise the address is unknown.
 * Alias targets are expanded the same way, recursively; a target in a
 * domain that is not hosted is remote. A target equal to the address its
 * alias matched ("bob -> bob, bob@elsewhere") means that user's mailbox
 * and is not expanded again. A chain that comes back to an address on
 * its own path is a loop; chains deeper than DIR_EXPAND_DEPTH_MAX count as
 * loops too. The same mailbox or remote address reached twice appears
 * once in the result.
 *
 * Disabled users (enabled = 0) still receive mail, as with Postfix and
 * Dovecot: disabling stops logins (SASL, POP3, IMAP), not delivery.
 * resolve reports the flag so smtpd may decide otherwise.
 *
 * Lookups never abort; errors come back as DIR_ERROR with a reason.
 */
#ifndef YB_DIRECTORY_H
#define YB_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../libutil/buf.h"

#define DIR_DOMAINS_TABLE "domains.db"
#define DIR_USERS_TABLE "users.db"
#define DIR_ALIASES_TABLE "aliases.db"

#define DIR_RECORD_VERSION 1
#define DIR_ADDRESS_MAX 256       /* longest address looked up or stored */
#define DIR_PASSWORD_MAX 512      /* longest stored hash */
#define DIR_SCRAM_MAX 512         /* longest stored SCRAM secret */
#define DIR_ALIAS_TARGETS_MAX 1000 /* targets in one alias record */
#define DIR_EXPAND_DEPTH_MAX 100  /* alias chain length */
#define DIR_EXPAND_TARGETS_MAX 1000 /* final targets of one expansion */
#define DIR_EXPAND_LOOKUPS_MAX 10000 /* addresses classified in one expansion */
#define DIR_RECIPIENT_DELIMITER '+'

enum dir_result {
	DIR_NOT_HOSTED, /* the domain is not ours */
	DIR_UNKNOWN,    /* hosted domain, nobody of that name */
	DIR_LOCAL,      /* resolve: a user */
	DIR_ALIAS,      /* resolve: an alias or the catch-all, and it expands */
	DIR_OK,         /* expand: the targets are listed */
	DIR_LOOP,       /* expand: the aliases loop */
	DIR_ERROR,      /* a table could not be read, or a record is corrupt */
};

/* dir_result_name - "not_hosted", "unknown", "local", "alias", "ok",
 * "loop", "error": the words of the auth protocol. */
const char *dir_result_name(enum dir_result result);

/* --- records ------------------------------------------------------- */

struct dir_user {
	char *password; /* crypt(3) hash */
	char *scram;    /* SCRAM-SHA-256 secret, or NULL (then not stored) */
	int64_t quota;  /* bytes; 0 = unlimited */
	bool enabled;
};

struct dir_alias {
	char **targets;
	size_t count;
};

/* *_encode - the record's bytes in out (replacing what it held). */
void dir_domain_encode(struct buf *out);
void dir_user_encode(struct buf *out, const struct dir_user *user);
void dir_alias_encode(struct buf *out, const struct dir_alias *alias);
/* *_decode - 0, or -1 and a new *error_r. Strings are new memory. */
int dir_domain_decode(const void *data, size_t len, char **error_r);
int dir_user_decode(const void *data, size_t len, struct dir_user *user, char **error_r);
int dir_alias_decode(const void *data, size_t len, struct dir_alias *alias, char **error_r);
void dir_user_free(struct dir_user *user);
void dir_alias_free(struct dir_alias *alias);
/* dir_alias_add - append a copy of target unless it is there (compared
 * as dir_target_equal); returns whether it was added. */
bool dir_alias_add(struct dir_alias *alias, const char *target);
/* dir_target_equal - the same target: the whole address compared without
 * regard to ASCII case, like the lookups (and the expansion's duplicate
 * suppression) do. */
bool dir_target_equal(const char *a, const char *b);

/* --- addresses ----------------------------------------------------- */

/* dir_lookup_key - the table key for an address looked up: lower-cased,
 * split at the last '@'; -1 with a static reason if it is not
 * "local@domain" (both parts non-empty) or longer than DIR_ADDRESS_MAX. */
int dir_lookup_key(const char *address, struct buf *key, const char **error_r);

/* What mailctl accepts when it writes (stricter than lookups, because the
 * names become directories under mail_root):
 *   domain  a DNS name (letters, digits, '-', '_'; no address literal)
 *   user    local part of letters, digits, '.', '-', '_' (a Dot-string;
 *           no '+', which is the recipient delimiter), at most 64 octets
 *   alias   "local@domain" with an RFC 5321 Dot-string local part (any
 *           atext, '+' included), or "@domain" for the catch-all
 *   target  "local@domain" with a Dot-string local part
 * Each writes the normalised form to out (lower case; a target keeps the
 * case of its local part, which is the remote host's business) or
 * returns -1 with a static reason. */
int dir_check_domain(const char *domain, struct buf *out, const char **error_r);
int dir_check_user(const char *address, struct buf *out, const char **error_r);
int dir_check_alias(const char *address, struct buf *out, const char **error_r);
int dir_check_target(const char *address, struct buf *out, const char **error_r);

/* dir_address_domain - the part after the last '@' ("" if none). */
const char *dir_address_domain(const char *address);

/* dir_maildir_path - mail_root/DOMAIN/LOCALPART/Maildir for a mailbox
 * "localpart@domain" (new memory). */
char *dir_maildir_path(const char *mail_root, const char *mailbox);

/* --- lookups ------------------------------------------------------- */

struct directory;

/* directory_open - the tables in dir (a missing table is empty). Never
 * fails: a table that cannot be opened makes the lookups that need it
 * answer DIR_ERROR; directory_refresh() says why and tries again. */
struct directory *directory_open(const char *dir);

/* directory_refresh - reopen every table whose file changed (one stat
 * each) and retry broken ones. 0, or -1 and a new *error_r naming the
 * first table that is unusable now. */
int directory_refresh(struct directory *d, char **error_r);

void directory_close(struct directory **d);

/* directory_domain - 1 hosted, 0 not, -1 error (new *error_r). */
int directory_domain(struct directory *d, const char *domain, char **error_r);

struct dir_resolution {
	enum dir_result result; /* NOT_HOSTED, UNKNOWN, LOCAL, ALIAS, ERROR */
	char *mailbox;          /* LOCAL: "user@domain" */
	int64_t quota;          /* LOCAL */
	bool enabled;           /* LOCAL */
	char *reason;           /* ERROR */
};

/* directory_resolve - smtpd's RCPT check. ALIAS is given only when the
 * alias expands to at least one mailbox or remote address; an alias
 * whose targets are all unknown resolves to UNKNOWN, and a looping or
 * unreadable one to ERROR (a temporary failure: the operator can fix it
 * before the sender gives up). */
void directory_resolve(struct directory *d, const char *address, struct dir_resolution *r);
void dir_resolution_free(struct dir_resolution *r);

struct dir_mailbox {
	char *mailbox; /* "user@domain" */
	int64_t quota;
};

struct dir_expansion {
	enum dir_result result;    /* OK, UNKNOWN, NOT_HOSTED, LOOP, ERROR */
	struct dir_mailbox *local; /* in the order first reached */
	size_t local_count;
	char **remote;
	size_t remote_count;
	char **unknown; /* hosted targets nobody has (qmgr bounces them) */
	size_t unknown_count;
	char *reason;   /* LOOP and ERROR */
};

/* directory_user - the record of a login name: "user@domain" in any
 * case, matched exactly (no plus-addressing, no aliases, no catch-all),
 * in a hosted domain. 1 and *user (free it with dir_user_free), 0 if
 * there is no such user (also for a name that is not an address), or -1
 * and a new *error_r. */
int directory_user(struct directory *d, const char *address, struct dir_user *user, char **error_r);

/* directory_sender_owned - may the user (a login name, as directory_user
 * takes it) send as address? Yes for the user's own address, also with a
 * "+tag", and for an alias (matched exactly or through its "+tag" form)
 * whose expansion reaches the user's mailbox; never through a catch-all,
 * which would give the whole domain to its target. 1 yes, 0 no (also for
 * a name that is not an address), or -1 and a new *error_r when a table
 * cannot be read or the alias loops. */
int directory_sender_owned(struct directory *d, const char *user, const char *address, char **error_r);

/* directory_expand - qmgr's routing: every final target of address. OK
 * when at least one mailbox or remote address results; UNKNOWN when none
 * does (unknown lists the dead ends, if aliases led there). */
void directory_expand(struct directory *d, const char *address, struct dir_expansion *e);
void dir_expansion_free(struct dir_expansion *e);

#endif
