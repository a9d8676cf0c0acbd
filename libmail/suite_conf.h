/* suite_conf.h - load and validate the whole configuration: yubin.conf and
 * master.conf, with ${key} in master.conf taken from yubin.conf. master uses
 * it at start and reload; mailctl uses it for "config check". */
#ifndef YB_SUITE_CONF_H
#define YB_SUITE_CONF_H

#include <stdbool.h>

#include "params.h"
#include "../libutil/svctab.h"

struct suite_conf {
	struct yb_params params;
	struct svc_table services;
	char **programs; /* resolved program path per service */
};

/* suite_conf_load - load CONFIG_DIR/yubin.conf and CONFIG_DIR/master.conf.
 * check_users: also require every service user to exist. -1 and a new
 * error string (naming file and line where there is one) on failure. */
int suite_conf_load(struct suite_conf *sc, const char *config_dir, bool check_users, char **error_r);

void suite_conf_free(struct suite_conf *sc);

#endif
