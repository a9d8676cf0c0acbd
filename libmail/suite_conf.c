/* suite_conf.c - yubin.conf plus master.conf, checked together. */
#include "config.h"
#include "suite_conf.h"
#include "../libutil/mem.h"
#include "../libutil/priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* lookup_param - ${key} in master.conf: the value of a yubin.conf key. */
static const char *lookup_param(const char *name, void *context)
{
	struct yb_params *p = context;
	const struct conf_key *k = conf_find(&params_table, name);
	static char *formatted;

	if (k == NULL)
		return NULL;
	free(formatted);
	formatted = conf_format(k, p);
	return formatted;
}

int suite_conf_load(struct suite_conf *sc, const char *config_dir, bool check_users, char **error_r)
{
	char *master_path;
	int rc;

	memset(sc, 0, sizeof *sc);
	if (params_load(&sc->params, config_dir, error_r) < 0) {
		conf_free(&params_table, &sc->params);
		return -1;
	}
	master_path = xasprintf("%s/master.conf", config_dir);
	rc = svctab_load(master_path, lookup_param, &sc->params, &sc->services, error_r);
	lookup_param("", NULL); /* release the last formatted value */
	if (rc < 0) {
		free(master_path);
		suite_conf_free(sc);
		return -1;
	}
	sc->programs = xcalloc(sc->services.count + 1, sizeof *sc->programs);
	for (size_t i = 0; i < sc->services.count; i++) {
		const struct svc_entry *e = &sc->services.entries[i];
		char *path = e->program[0] == '/' ? xstrdup(e->program)
						  : xasprintf("%s/%s", sc->params.daemon_directory, e->program);
		struct stat st;

		sc->programs[i] = path;
		const char *problem = NULL;

		if (stat(path, &st) < 0)
			problem = strerror(errno);
		else if (!S_ISREG(st.st_mode))
			problem = "not a regular file";
		else if (access(path, X_OK) < 0)
			problem = strerror(errno);
		if (problem != NULL) {
			*error_r = xasprintf("%s:%d: service %s: program %s: %s", master_path, e->line, e->name,
					     path, problem);
			goto fail;
		}
		/* mail_root is the one jail master makes itself when missing
		 * (a new installation has had no mail yet) */
		if (e->chroot_dir != NULL && strcmp(e->chroot_dir, sc->params.mail_root) != 0 &&
		    (stat(e->chroot_dir, &st) < 0 || !S_ISDIR(st.st_mode))) {
			*error_r = xasprintf("%s:%d: service %s: chroot directory %s does not exist", master_path,
					     e->line, e->name, e->chroot_dir);
			goto fail;
		}
		if (check_users) {
			uid_t uid;
			gid_t gid;
			char *error;

			if (priv_lookup_user(e->user, &uid, &gid, &error) < 0) {
				*error_r = xasprintf("%s:%d: service %s: %s", master_path, e->line, e->name, error);
				free(error);
				goto fail;
			}
			if (uid == 0) {
				*error_r = xasprintf("%s:%d: service %s: workers must not run as root (user %s)",
						     master_path, e->line, e->name, e->user);
				goto fail;
			}
		}
	}
	free(master_path);
	return 0;
fail:
	free(master_path);
	suite_conf_free(sc);
	return -1;
}

void suite_conf_free(struct suite_conf *sc)
{
	if (sc->programs != NULL) {
		for (size_t i = 0; i < sc->services.count; i++)
			free(sc->programs[i]);
		free(sc->programs);
		sc->programs = NULL;
	}
	svctab_free(&sc->services);
	conf_free(&params_table, &sc->params);
}
