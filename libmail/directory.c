/* directory.c - domains, users and aliases over three tables: records,
 * address rules, and the resolve/expand lookups described in directory.h. */
#include "config.h"
#include "directory.h"
#include "addr.h"
#include "table.h"
#include "../libutil/ipc.h"
#include "../libutil/mem.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *dir_result_name(enum dir_result result)
{
	switch (result) {
	case DIR_NOT_HOSTED:
		return "not_hosted";
	case DIR_UNKNOWN:
		return "unknown";
	case DIR_LOCAL:
		return "local";
	case DIR_ALIAS:
		return "alias";
	case DIR_OK:
		return "ok";
	case DIR_LOOP:
		return "loop";
	case DIR_ERROR:
		break;
	}
	return "error";
}

/* --- records ------------------------------------------------------- */

/* A record is the payload of one ipc.h frame: the same typed fields the
 * daemons speak, without the 4-byte frame length. */
static void record_begin(struct buf *out)
{
	ipc_begin(out);
	ipc_put_int(out, "version", DIR_RECORD_VERSION);
}

static void record_end(struct buf *out)
{
	ipc_end(out);
	buf_consume(out, 4);
}

/* record_open - decode and check the version; the rest is the caller's. */
static int record_open(const void *data, size_t len, struct ipc_msg *msg, char **error_r)
{
	const char *error;
	int64_t version;

	if (ipc_decode(data, len, msg, &error) < 0) {
		*error_r = xasprintf("corrupt record: %s", error);
		return -1;
	}
	if (!ipc_get_int(msg, "version", &version)) {
		*error_r = xstrdup("corrupt record: no version");
		ipc_msg_free(msg);
		return -1;
	}
	if (version != DIR_RECORD_VERSION) {
		*error_r = xasprintf("record version %lld is not supported (this program reads %d)",
				     (long long)version, DIR_RECORD_VERSION);
		ipc_msg_free(msg);
		return -1;
	}
	return 0;
}

void dir_domain_encode(struct buf *out)
{
	record_begin(out);
	record_end(out);
}

int dir_domain_decode(const void *data, size_t len, char **error_r)
{
	struct ipc_msg msg;
	const char *error;
	const struct ipc_spec spec[] = {
		{ .name = "version", .type = IPC_INT, .required = true },
	};
	int rc = 0;

	if (record_open(data, len, &msg, error_r) < 0)
		return -1;
	if (ipc_scan(&msg, spec, sizeof spec / sizeof spec[0], IPC_STRICT, &error) < 0) {
		*error_r = xasprintf("corrupt domain record: %s", error);
		rc = -1;
	}
	ipc_msg_free(&msg);
	return rc;
}

void dir_user_encode(struct buf *out, const struct dir_user *user)
{
	record_begin(out);
	ipc_put_str(out, "password", user->password != NULL ? user->password : "");
	ipc_put_int(out, "quota", user->quota);
	ipc_put_int(out, "enabled", user->enabled ? 1 : 0);
	/* Optional, so that records written before it existed stay valid
	 * (and DIR_RECORD_VERSION stays 1). */
	if (user->scram != NULL && user->scram[0] != '\0')
		ipc_put_str(out, "scram", user->scram);
	record_end(out);
}

int dir_user_decode(const void *data, size_t len, struct dir_user *user, char **error_r)
{
	struct ipc_msg msg;
	const char *error, *password = NULL, *scram = NULL;
	int64_t quota = 0, enabled = 0;
	const struct ipc_spec spec[] = {
		{ .name = "version", .type = IPC_INT, .required = true },
		{ .name = "password", .type = IPC_STR, .required = true, .max_len = DIR_PASSWORD_MAX,
		  .str_r = &password },
		{ .name = "quota", .type = IPC_INT, .required = true, .min = 0, .max = INT64_MAX,
		  .int_r = &quota },
		{ .name = "enabled", .type = IPC_INT, .required = true, .min = 0, .max = 1, .int_r = &enabled },
		{ .name = "scram", .type = IPC_STR, .max_len = DIR_SCRAM_MAX, .str_r = &scram },
	};

	memset(user, 0, sizeof *user);
	if (record_open(data, len, &msg, error_r) < 0)
		return -1;
	if (ipc_scan(&msg, spec, sizeof spec / sizeof spec[0], IPC_STRICT, &error) < 0) {
		*error_r = xasprintf("corrupt user record: %s", error);
		ipc_msg_free(&msg);
		return -1;
	}
	user->password = xstrdup(password);
	user->scram = scram != NULL && scram[0] != '\0' ? xstrdup(scram) : NULL;
	user->quota = quota;
	user->enabled = enabled != 0;
	ipc_msg_free(&msg);
	return 0;
}

void dir_user_free(struct dir_user *user)
{
	if (user->password != NULL) {
		/* A hash, not a password; still, leave no copies around. */
		memset(user->password, 0, strlen(user->password));
		free(user->password);
	}
	user->password = NULL;
	if (user->scram != NULL) {
		memset(user->scram, 0, strlen(user->scram));
		free(user->scram);
	}
	user->scram = NULL;
}

void dir_alias_encode(struct buf *out, const struct dir_alias *alias)
{
	record_begin(out);
	for (size_t i = 0; i < alias->count; i++)
		ipc_put_str(out, "target", alias->targets[i]);
	record_end(out);
}

int dir_alias_decode(const void *data, size_t len, struct dir_alias *alias, char **error_r)
{
	struct ipc_msg msg;
	bool seen_version = false;

	memset(alias, 0, sizeof *alias);
	if (record_open(data, len, &msg, error_r) < 0)
		return -1;
	/* Not ipc_scan: "target" repeats, once per target. */
	for (size_t i = 0; i < msg.count; i++) {
		const struct ipc_field *f = &msg.fields[i];

		if (strcmp(f->name, "version") == 0 && f->type == IPC_INT && !seen_version) {
			seen_version = true;
		} else if (strcmp(f->name, "target") == 0 && f->type == IPC_STR && f->len > 0 &&
			   f->len <= DIR_ADDRESS_MAX && alias->count < DIR_ALIAS_TARGETS_MAX) {
			alias->targets = xreallocarray(alias->targets, alias->count + 1, sizeof *alias->targets);
			alias->targets[alias->count++] = xstrdup((const char *)f->data);
		} else {
			*error_r = xasprintf("corrupt alias record: unexpected field %s", f->name);
			goto fail;
		}
	}
	if (alias->count == 0) {
		*error_r = xstrdup("corrupt alias record: no target");
		goto fail;
	}
	ipc_msg_free(&msg);
	return 0;
fail:
	ipc_msg_free(&msg);
	dir_alias_free(alias);
	return -1;
}

void dir_alias_free(struct dir_alias *alias)
{
	for (size_t i = 0; i < alias->count; i++)
		free(alias->targets[i]);
	free(alias->targets);
	alias->targets = NULL;
	alias->count = 0;
}

bool dir_target_equal(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

bool dir_alias_add(struct dir_alias *alias, const char *target)
{
	for (size_t i = 0; i < alias->count; i++)
		if (dir_target_equal(alias->targets[i], target))
			return false;
	alias->targets = xreallocarray(alias->targets, alias->count + 1, sizeof *alias->targets);
	alias->targets[alias->count++] = xstrdup(target);
	return true;
}

/* --- addresses ----------------------------------------------------- */

/* ASCII only: a locale must not change which key an address maps to. */
static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static void append_lower(struct buf *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf_append_byte(out, (uint8_t)ascii_lower(s[i]));
}

const char *dir_address_domain(const char *address)
{
	const char *at = strrchr(address, '@');

	return at != NULL ? at + 1 : "";
}

int dir_lookup_key(const char *address, struct buf *key, const char **error_r)
{
	size_t len = strlen(address);
	const char *at = strrchr(address, '@');

	buf_reset(key);
	if (len > DIR_ADDRESS_MAX) {
		*error_r = "address longer than 256 octets";
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)address[i];

		if (c < 0x20 || c == 0x7f) {
			*error_r = "control character in address";
			return -1;
		}
	}
	if (at == NULL || at == address || at[1] == '\0') {
		*error_r = "address must be local@domain";
		return -1;
	}
	append_lower(key, address, len);
	return 0;
}

static bool is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static bool is_user_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '_';
}

/* check_dot_string - atoms of allowed characters separated by single
 * dots; non-ASCII characters (UTF-8, for SMTPUTF8 mail) count as letters
 * unless addr_utf8_name_char refuses them. */
static bool check_dot_string(const char *s, size_t len, bool (*allowed)(unsigned char))
{
	bool need_atom = true;

	if (len == 0 || len > ADDR_LOCAL_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (need_atom)
				return false;
			need_atom = true;
		} else if (allowed(c)) {
			need_atom = false;
		} else if (c >= 0x80) {
			size_t n = addr_utf8_name_char(s + i, len - i);

			if (n == 0)
				return false;
			i += n - 1;
			need_atom = false;
		} else {
			return false;
		}
	}
	return !need_atom;
}

int dir_check_domain(const char *domain, struct buf *out, const char **error_r)
{
	size_t len = strlen(domain);

	buf_reset(out);
	if (len > 0 && domain[0] == '[') {
		*error_r = "an address literal cannot be a hosted domain";
		return -1;
	}
	if (!addr_valid_domain(domain, len, false)) {
		*error_r = "not a valid domain name";
		return -1;
	}
	append_lower(out, domain, len);
	return 0;
}

/* split_check - "local@domain": check the domain, hand back the local part. */
static int split_check(const char *address, struct buf *domain, const char **local_r, size_t *local_len_r,
		       const char **error_r)
{
	const char *at = strrchr(address, '@');

	if (strlen(address) > DIR_ADDRESS_MAX) {
		*error_r = "address longer than 256 octets";
		return -1;
	}
	if (at == NULL) {
		*error_r = "address must be local@domain";
		return -1;
	}
	if (dir_check_domain(at + 1, domain, error_r) < 0)
		return -1;
	*local_r = address;
	*local_len_r = (size_t)(at - address);
	return 0;
}

/* The rules of the three kinds of address the tables hold. */
struct address_rule {
	bool (*allowed)(unsigned char);  /* characters of the local part */
	bool empty_local_ok;             /* "@domain" (the catch-all) */
	bool lower_local;                /* keys are lower-cased; targets keep case */
	const char *empty_error;         /* for an empty local part */
	const char *bad_error;           /* for a bad local part */
};

/* check_address - split, check against rule, write the canonical form. */
static int check_address(const char *address, const struct address_rule *rule, struct buf *out,
			 const char **error_r)
{
	struct buf domain = BUF_INIT;
	const char *local;
	size_t len;
	int rc = -1;

	buf_reset(out);
	if (split_check(address, &domain, &local, &len, error_r) < 0)
		goto out;
	if (len == 0 && !rule->empty_local_ok) {
		*error_r = rule->empty_error;
		goto out;
	}
	if (len > 0 && !check_dot_string(local, len, rule->allowed)) {
		*error_r = rule->bad_error;
		goto out;
	}
	if (rule->lower_local)
		append_lower(out, local, len);
	else
		buf_append(out, local, len);
	buf_append_byte(out, '@');
	buf_append(out, domain.data, domain.len);
	rc = 0;
out:
	buf_free(&domain);
	return rc;
}

int dir_check_user(const char *address, struct buf *out, const char **error_r)
{
	static const char bad[] = "a user name is 1 to 64 octets of letters (UTF-8 allowed), digits, '.', '-' "
				  "and '_' (no leading, trailing or double '.')";
	static const struct address_rule rule = {
		.allowed = is_user_char, .lower_local = true, .empty_error = bad, .bad_error = bad,
	};
	return check_address(address, &rule, out, error_r);
}

int dir_check_alias(const char *address, struct buf *out, const char **error_r)
{
	static const struct address_rule rule = {
		.allowed = is_atext, .empty_local_ok = true, .lower_local = true,
		.bad_error = "bad local part (an alias is local@domain, or @domain for the catch-all)",
	};
	return check_address(address, &rule, out, error_r);
}

int dir_check_target(const char *address, struct buf *out, const char **error_r)
{
	static const struct address_rule rule = {
		.allowed = is_atext, .empty_error = "a target is a whole address, local@domain",
		.bad_error = "bad local part in target",
	};
	return check_address(address, &rule, out, error_r);
}

char *dir_maildir_path(const char *mail_root, const char *mailbox)
{
	const char *at = strrchr(mailbox, '@');

	if (at == NULL)
		return xasprintf("%s/%s/Maildir", mail_root, mailbox);
	return xasprintf("%s/%s/%.*s/Maildir", mail_root, at + 1, (int)(at - mailbox), mailbox);
}

/* --- the tables ---------------------------------------------------- */

enum { T_DOMAINS, T_USERS, T_ALIASES, T_COUNT };

struct dir_table {
	char *path;
	struct table *t; /* NULL: could not be opened, see error */
	char *error;
};

struct directory {
	struct dir_table tables[T_COUNT];
	struct buf value; /* scratch for table_get */
};

static void dir_table_reopen(struct dir_table *tab)
{
	table_close(&tab->t);
	xfree_ptr(&tab->error);
	tab->t = table_open(tab->path, TABLE_MISSING_OK, &tab->error);
}

struct directory *directory_open(const char *dir)
{
	static const char *const names[T_COUNT] = { DIR_DOMAINS_TABLE, DIR_USERS_TABLE, DIR_ALIASES_TABLE };
	struct directory *d = xnew(struct directory);
	size_t len = strlen(dir);
	/* Inside auth's jail the directory is "/": no "//domains.db". */
	const char *sep = len > 0 && dir[len - 1] == '/' ? "" : "/";

	for (int i = 0; i < T_COUNT; i++) {
		d->tables[i].path = xasprintf("%s%s%s", dir, sep, names[i]);
		dir_table_reopen(&d->tables[i]);
	}
	return d;
}

int directory_refresh(struct directory *d, char **error_r)
{
	int rc = 0;

	for (int i = 0; i < T_COUNT; i++) {
		struct dir_table *tab = &d->tables[i];

		if (tab->t == NULL || table_changed(tab->t))
			dir_table_reopen(tab);
		if (tab->t == NULL && rc == 0) {
			*error_r = xstrdup(tab->error);
			rc = -1;
		}
	}
	return rc;
}

void directory_close(struct directory **dp)
{
	struct directory *d = *dp;

	if (d == NULL)
		return;
	for (int i = 0; i < T_COUNT; i++) {
		table_close(&d->tables[i].t);
		free(d->tables[i].path);
		free(d->tables[i].error);
	}
	buf_free(&d->value);
	free(d);
	*dp = NULL;
}

/* dir_get - table_get on one of the three; an unopened table is an error. */
static int dir_get(struct directory *d, int which, const char *key, char **error_r)
{
	struct dir_table *tab = &d->tables[which];

	if (tab->t == NULL) {
		*error_r = xstrdup(tab->error != NULL ? tab->error : "table not open");
		return -1;
	}
	return table_get(tab->t, key, &d->value, error_r);
}

/* with_key - prefix a record error with the table key it came from. */
static char *with_key(struct directory *d, int which, const char *key, char *error)
{
	char *e = xasprintf("%s: key %s: %s", d->tables[which].path, key, error);

	free(error);
	return e;
}

static int lookup_domain(struct directory *d, const char *domain, char **error_r)
{
	int rc = dir_get(d, T_DOMAINS, domain, error_r);

	if (rc <= 0)
		return rc;
	if (dir_domain_decode(d->value.data, d->value.len, error_r) < 0) {
		*error_r = with_key(d, T_DOMAINS, domain, *error_r);
		return -1;
	}
	return 1;
}

static int lookup_user(struct directory *d, const char *key, struct dir_user *user, char **error_r)
{
	int rc = dir_get(d, T_USERS, key, error_r);

	if (rc <= 0)
		return rc;
	if (dir_user_decode(d->value.data, d->value.len, user, error_r) < 0) {
		*error_r = with_key(d, T_USERS, key, *error_r);
		return -1;
	}
	return 1;
}

static int lookup_alias(struct directory *d, const char *key, struct dir_alias *alias, char **error_r)
{
	int rc = dir_get(d, T_ALIASES, key, error_r);

	if (rc <= 0)
		return rc;
	if (dir_alias_decode(d->value.data, d->value.len, alias, error_r) < 0) {
		*error_r = with_key(d, T_ALIASES, key, *error_r);
		return -1;
	}
	return 1;
}

int directory_domain(struct directory *d, const char *domain, char **error_r)
{
	struct buf key = BUF_INIT;
	int rc;

	if (strlen(domain) > ADDR_DOMAIN_MAX || domain[0] == '\0') {
		*error_r = xstrdup("bad domain length");
		return -1;
	}
	append_lower(&key, domain, strlen(domain));
	rc = lookup_domain(d, buf_cstr(&key), error_r);
	buf_free(&key);
	return rc;
}

/* --- classification ------------------------------------------------ */

enum node_kind { NODE_REMOTE, NODE_UNKNOWN, NODE_USER, NODE_ALIAS };

/* What one address is, by the precedence in directory.h. */
struct node {
	enum node_kind kind;
	struct buf matched; /* the key that matched: the address, its base, or "@domain" */
	struct dir_user user;
	struct dir_alias alias;
};

static void node_free(struct node *n)
{
	buf_free(&n->matched);
	dir_user_free(&n->user);
	dir_alias_free(&n->alias);
}

/* try_key - alias, then user, for one key; 1 if either matched. */
static int try_key(struct directory *d, const char *key, struct node *n, char **error_r)
{
	int rc = lookup_alias(d, key, &n->alias, error_r);

	if (rc == 0) {
		rc = lookup_user(d, key, &n->user, error_r);
		if (rc > 0)
			n->kind = NODE_USER;
	} else if (rc > 0) {
		n->kind = NODE_ALIAS;
	}
	if (rc > 0) {
		buf_reset(&n->matched);
		buf_append_str(&n->matched, key);
	}
	return rc;
}

/* classify - key is a lower-cased "local@domain". 0, or -1 and *error_r. */
static int classify(struct directory *d, const char *key, struct node *n, char **error_r)
{
	const char *at = strrchr(key, '@');
	const char *plus = memchr(key, DIR_RECIPIENT_DELIMITER, (size_t)(at - key));
	struct buf base = BUF_INIT;
	int rc;

	memset(n, 0, sizeof *n);
	rc = lookup_domain(d, at + 1, error_r);
	if (rc <= 0) {
		n->kind = NODE_REMOTE;
		return rc;
	}
	rc = try_key(d, key, n, error_r);
	if (rc == 0 && plus != NULL && plus > key) {
		buf_append(&base, key, (size_t)(plus - key));
		buf_append_str(&base, at);
		rc = try_key(d, buf_cstr(&base), n, error_r);
	}
	if (rc == 0) {
		rc = lookup_alias(d, at, &n->alias, error_r);
		if (rc > 0) {
			n->kind = NODE_ALIAS;
			buf_append_str(&n->matched, at);
		}
	}
	if (rc == 0)
		n->kind = NODE_UNKNOWN;
	buf_free(&base);
	return rc < 0 ? -1 : 0;
}

/* --- expansion ----------------------------------------------------- */

struct expand {
	struct directory *d;
	struct dir_expansion *e;
	const char *path[DIR_EXPAND_DEPTH_MAX]; /* the addresses being expanded */
	int depth;
	size_t lookups;
};

static void expand_fail(struct expand *x, enum dir_result result, char *reason)
{
	x->e->result = result;
	free(x->e->reason);
	x->e->reason = reason;
}

static bool expand_full(struct expand *x)
{
	const struct dir_expansion *e = x->e;

	if (e->local_count + e->remote_count + e->unknown_count < DIR_EXPAND_TARGETS_MAX)
		return false;
	expand_fail(x, DIR_ERROR, xasprintf("alias expansion gives more than %d targets", DIR_EXPAND_TARGETS_MAX));
	return true;
}

static int add_local(struct expand *x, const char *mailbox, int64_t quota)
{
	struct dir_expansion *e = x->e;

	for (size_t i = 0; i < e->local_count; i++)
		if (strcmp(e->local[i].mailbox, mailbox) == 0)
			return 0; /* the same mailbox through another alias */
	if (expand_full(x))
		return -1;
	e->local = xreallocarray(e->local, e->local_count + 1, sizeof *e->local);
	e->local[e->local_count].mailbox = xstrdup(mailbox);
	e->local[e->local_count].quota = quota;
	e->local_count++;
	return 0;
}

/* add_string - to a list of addresses, once. */
static int add_string(struct expand *x, char ***list, size_t *count, const char *address)
{
	for (size_t i = 0; i < *count; i++)
		if (dir_target_equal((*list)[i], address))
			return 0;
	if (expand_full(x))
		return -1;
	*list = xreallocarray(*list, *count + 1, sizeof **list);
	(*list)[(*count)++] = xstrdup(address);
	return 0;
}

/* add_remote - the domain lower-cased, the local part as written. */
static int add_remote(struct expand *x, const char *address)
{
	const char *at = strrchr(address, '@');
	struct buf norm = BUF_INIT;
	int rc;

	buf_append(&norm, address, (size_t)(at - address) + 1);
	append_lower(&norm, at + 1, strlen(at + 1));
	rc = add_string(x, &x->e->remote, &x->e->remote_count, buf_cstr(&norm));
	buf_free(&norm);
	return rc;
}

/* loop_reason - "alias loop: a -> b -> a". */
static char *loop_reason(const struct expand *x, const char *again)
{
	struct buf b = BUF_INIT;

	buf_append_str(&b, "alias loop: ");
	for (int i = 0; i < x->depth; i++)
		buf_printf(&b, "%s -> ", x->path[i]);
	buf_append_str(&b, again);
	return buf_steal(&b);
}

/* expand_self - a target naming the address its alias matched: that
 * user's own mailbox, not another round of the alias. */
static int expand_self(struct expand *x, const char *key)
{
	struct dir_user user;
	char *error = NULL;
	int rc = lookup_user(x->d, key, &user, &error);

	if (rc < 0) {
		expand_fail(x, DIR_ERROR, error);
		return -1;
	}
	if (rc == 0)
		return add_string(x, &x->e->unknown, &x->e->unknown_count, key);
	rc = add_local(x, key, user.quota);
	dir_user_free(&user);
	return rc;
}

/* expand_address - add the final targets of address; 0 to go on, -1 when
 * the expansion failed (result and reason are set). */
static int expand_address(struct expand *x, const char *address)
{
	struct buf key = BUF_INIT;
	struct node n;
	const char *reason;
	char *error = NULL;
	int rc = 0;

	if (dir_lookup_key(address, &key, &reason) < 0) {
		expand_fail(x, DIR_ERROR, xasprintf("alias target \"%s\": %s", address, reason));
		buf_free(&key);
		return -1;
	}
	for (int i = 0; i < x->depth; i++) {
		if (strcmp(x->path[i], buf_cstr(&key)) == 0) {
			expand_fail(x, DIR_LOOP, loop_reason(x, buf_cstr(&key)));
			buf_free(&key);
			return -1;
		}
	}
	if (x->depth >= DIR_EXPAND_DEPTH_MAX) {
		expand_fail(x, DIR_LOOP, xasprintf("alias chain longer than %d", DIR_EXPAND_DEPTH_MAX));
		buf_free(&key);
		return -1;
	}
	if (++x->lookups > DIR_EXPAND_LOOKUPS_MAX) {
		expand_fail(x, DIR_ERROR, xasprintf("alias expansion needs more than %d lookups",
						    DIR_EXPAND_LOOKUPS_MAX));
		buf_free(&key);
		return -1;
	}
	if (classify(x->d, buf_cstr(&key), &n, &error) < 0) {
		expand_fail(x, DIR_ERROR, error);
		node_free(&n);
		buf_free(&key);
		return -1;
	}
	switch (n.kind) {
	case NODE_REMOTE:
		if (x->depth == 0)
			x->e->result = DIR_NOT_HOSTED;
		else
			rc = add_remote(x, address);
		break;
	case NODE_UNKNOWN:
		if (x->depth == 0)
			x->e->result = DIR_UNKNOWN;
		else
			rc = add_string(x, &x->e->unknown, &x->e->unknown_count, buf_cstr(&key));
		break;
	case NODE_USER:
		rc = add_local(x, buf_cstr(&n.matched), n.user.quota);
		break;
	case NODE_ALIAS:
		x->path[x->depth++] = buf_cstr(&key);
		for (size_t i = 0; rc == 0 && i < n.alias.count; i++) {
			if (dir_target_equal(n.alias.targets[i], buf_cstr(&n.matched)))
				rc = expand_self(x, buf_cstr(&n.matched));
			else
				rc = expand_address(x, n.alias.targets[i]);
		}
		x->depth--;
		break;
	}
	node_free(&n);
	buf_free(&key);
	return rc;
}

static void expansion_clear_lists(struct dir_expansion *e)
{
	for (size_t i = 0; i < e->local_count; i++)
		free(e->local[i].mailbox);
	for (size_t i = 0; i < e->remote_count; i++)
		free(e->remote[i]);
	for (size_t i = 0; i < e->unknown_count; i++)
		free(e->unknown[i]);
	xfree_ptr(&e->local);
	xfree_ptr(&e->remote);
	xfree_ptr(&e->unknown);
	e->local_count = e->remote_count = e->unknown_count = 0;
}

void directory_expand(struct directory *d, const char *address, struct dir_expansion *e)
{
	struct expand x = { .d = d, .e = e };
	struct buf key = BUF_INIT;
	const char *reason;

	memset(e, 0, sizeof *e);
	e->result = DIR_OK;
	if (dir_lookup_key(address, &key, &reason) < 0) {
		e->result = DIR_ERROR;
		e->reason = xstrdup(reason);
		buf_free(&key);
		return;
	}
	buf_free(&key);
	if (expand_address(&x, address) < 0 || e->result != DIR_OK) {
		expansion_clear_lists(e);
		return;
	}
	if (e->local_count + e->remote_count == 0)
		e->result = DIR_UNKNOWN;
}

void dir_expansion_free(struct dir_expansion *e)
{
	expansion_clear_lists(e);
	xfree_ptr(&e->reason);
}

void directory_resolve(struct directory *d, const char *address, struct dir_resolution *r)
{
	struct buf key = BUF_INIT;
	struct dir_expansion e;
	const char *reason;
	char *error = NULL;
	struct node n;

	memset(r, 0, sizeof *r);
	if (dir_lookup_key(address, &key, &reason) < 0) {
		r->result = DIR_ERROR;
		r->reason = xstrdup(reason);
		buf_free(&key);
		return;
	}
	if (classify(d, buf_cstr(&key), &n, &error) < 0) {
		r->result = DIR_ERROR;
		r->reason = error;
		node_free(&n);
		buf_free(&key);
		return;
	}
	switch (n.kind) {
	case NODE_REMOTE:
		r->result = DIR_NOT_HOSTED;
		break;
	case NODE_UNKNOWN:
		r->result = DIR_UNKNOWN;
		break;
	case NODE_USER:
		r->result = DIR_LOCAL;
		r->mailbox = xstrdup(buf_cstr(&n.matched));
		r->quota = n.user.quota;
		r->enabled = n.user.enabled;
		break;
	case NODE_ALIAS:
		/* Accept only what can be delivered: expand it now. */
		directory_expand(d, address, &e);
		if (e.result == DIR_OK) {
			r->result = DIR_ALIAS;
		} else if (e.result == DIR_UNKNOWN) {
			r->result = DIR_UNKNOWN;
		} else {
			r->result = DIR_ERROR;
			r->reason = e.reason;
			e.reason = NULL;
		}
		dir_expansion_free(&e);
		break;
	}
	node_free(&n);
	buf_free(&key);
}

int directory_user(struct directory *d, const char *address, struct dir_user *user, char **error_r)
{
	struct buf key = BUF_INIT;
	const char *reason;
	int rc;

	memset(user, 0, sizeof *user);
	if (dir_lookup_key(address, &key, &reason) < 0) {
		buf_free(&key);
		return 0;
	}
	rc = lookup_domain(d, dir_address_domain(buf_cstr(&key)), error_r);
	if (rc > 0)
		rc = lookup_user(d, buf_cstr(&key), user, error_r);
	buf_free(&key);
	return rc;
}

int directory_sender_owned(struct directory *d, const char *user, const char *address, char **error_r)
{
	struct buf ukey = BUF_INIT, akey = BUF_INIT;
	struct dir_expansion e;
	const char *reason;
	struct node n;
	int rc = 0;

	if (dir_lookup_key(user, &ukey, &reason) < 0 || dir_lookup_key(address, &akey, &reason) < 0) {
		buf_free(&ukey);
		buf_free(&akey);
		return 0;
	}
	if (classify(d, buf_cstr(&akey), &n, error_r) < 0) {
		rc = -1;
	} else if (n.kind == NODE_USER) {
		/* The address itself, or its "+tag" form. */
		rc = strcmp(buf_cstr(&n.matched), buf_cstr(&ukey)) == 0;
	} else if (n.kind == NODE_ALIAS && buf_cstr(&n.matched)[0] != '@') {
		/* An alias counts when its mail reaches the user: the same
		 * expansion qmgr would make. A catch-all (matched "@d") does
		 * not. */
		directory_expand(d, address, &e);
		if (e.result == DIR_ERROR || e.result == DIR_LOOP) {
			*error_r = e.reason != NULL ? e.reason : xstrdup("alias lookup failed");
			e.reason = NULL;
			rc = -1;
		}
		for (size_t i = 0; rc == 0 && i < e.local_count; i++)
			rc = strcmp(e.local[i].mailbox, buf_cstr(&ukey)) == 0;
		dir_expansion_free(&e);
	}
	node_free(&n);
	buf_free(&ukey);
	buf_free(&akey);
	return rc;
}

void dir_resolution_free(struct dir_resolution *r)
{
	xfree_ptr(&r->mailbox);
	xfree_ptr(&r->reason);
}
