/* priv.c - the privilege drop, in the only order that works:
 * groups and gid while still root, chroot while still privileged, uid last. */
#include "config.h"
#include "priv.h"
#include "log.h"
#include "mem.h"
#include "strutil.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int priv_lookup_user(const char *name, uid_t *uid_r, gid_t *gid_r, char **error_r)
{
	struct passwd *pw;

	errno = 0;
	pw = getpwnam(name);
	if (pw == NULL) {
		*error_r = errno != 0 ? xasprintf("user %s: %s", name, strerror(errno))
				      : xasprintf("user %s does not exist", name);
		return -1;
	}
	*uid_r = pw->pw_uid;
	*gid_r = pw->pw_gid;
	return 0;
}

int priv_verify(const struct priv_target *t, char **error_r)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	gid_t groups[8];
	int n;

	if (getresuid(&ru, &eu, &su) < 0 || ru != t->uid || eu != t->uid || su != t->uid) {
		*error_r = xasprintf("uid is %d/%d/%d, wanted %d", (int)ru, (int)eu, (int)su, (int)t->uid);
		return -1;
	}
	if (getresgid(&rg, &eg, &sg) < 0 || rg != t->gid || eg != t->gid || sg != t->gid) {
		*error_r = xasprintf("gid is %d/%d/%d, wanted %d", (int)rg, (int)eg, (int)sg, (int)t->gid);
		return -1;
	}
	n = getgroups(8, groups);
	if (n < 0 || n > 1 || (n == 1 && groups[0] != t->gid)) {
		*error_r = xstrdup("supplementary groups remain");
		return -1;
	}
	if (t->uid != 0) {
		/* Each of these must fail with EPERM: the way back must be shut. */
		if (setuid(0) == 0 || seteuid(0) == 0) {
			*error_r = xstrdup("root could be regained (setuid)");
			return -1;
		}
		if (t->gid != 0 && (setgid(0) == 0 || setegid(0) == 0)) {
			*error_r = xstrdup("group root could be regained (setgid)");
			return -1;
		}
	}
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) {
		*error_r = xstrdup("no_new_privs is not set");
		return -1;
	}
	return 0;
}

int priv_drop(const struct priv_target *t, char **error_r)
{
	if (geteuid() != 0) {
		/* master has said so once for the whole suite. */
		log_debug("not root: running as uid %d, no privilege drop or chroot", (int)geteuid());
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			log_warn("prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
		return 1;
	}
	if (setgroups(1, &t->gid) < 0) {
		*error_r = xasprintf("setgroups: %s", strerror(errno));
		return -1;
	}
	if (setresgid(t->gid, t->gid, t->gid) < 0) {
		*error_r = xasprintf("setresgid(%d): %s", (int)t->gid, strerror(errno));
		return -1;
	}
	if (t->root_dir != NULL) {
		if (chroot(t->root_dir) < 0 || chdir("/") < 0) {
			*error_r = xasprintf("chroot %s: %s", t->root_dir, strerror(errno));
			return -1;
		}
	}
	if (setresuid(t->uid, t->uid, t->uid) < 0) {
		*error_r = xasprintf("setresuid(%d): %s", (int)t->uid, strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		*error_r = xasprintf("prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
		return -1;
	}
	return priv_verify(t, error_r);
}
