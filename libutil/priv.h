/* priv.h - drop root for good: groups, gid, chroot, uid, no-new-privs,
 * then verify that root cannot be regained. When the process is not root
 * the drop is skipped (a developer's or the test suite's instance). */
#ifndef YB_PRIV_H
#define YB_PRIV_H

#include <stdbool.h>
#include <sys/types.h>

struct priv_target {
	uid_t uid;
	gid_t gid;
	const char *root_dir; /* NULL: no chroot */
};

/* priv_lookup_user - uid and primary gid of a user name (or "#uid"). */
int priv_lookup_user(const char *name, uid_t *uid_r, gid_t *gid_r, char **error_r);

/* priv_drop - as root: setgroups, setresgid, chroot+chdir, setresuid,
 * PR_SET_NO_NEW_PRIVS, then verify. Not root: returns 1 having changed
 * nothing but no-new-privs (master warns about that once for the suite). -1 with a new error string on failure. */
int priv_drop(const struct priv_target *target, char **error_r);

/* priv_verify - check the process has exactly the target identity and
 * cannot become root again; -1 with a new error string if not. */
int priv_verify(const struct priv_target *target, char **error_r);

#endif
