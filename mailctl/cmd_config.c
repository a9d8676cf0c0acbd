/* cmd_config.c - mailctl config show and config check. */
#include "config.h"
#include "mailctl.h"
#include "../libmail/params.h"
#include "../libmail/suite_conf.h"
#include "../libutil/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cmd_config_show(struct mailctl *ctl)
{
	struct yb_params params;
	char *path = xasprintf("%s/yubin.conf", ctl->config_dir);
	char *error = NULL;
	bool only_changed = false, docs = false;
	int first_key = ctl->argc;
	int rc = MAILCTL_OK;

	for (int i = 0; i < ctl->argc; i++) {
		if (strcmp(ctl->argv[i], "-n") == 0) {
			only_changed = true;
		} else if (strcmp(ctl->argv[i], "-d") == 0) {
			docs = true;
		} else if (ctl->argv[i][0] == '-') {
			mailctl_error("usage: mailctl config show [-n] [-d] [KEY...]");
			free(path);
			return MAILCTL_USAGE;
		} else {
			first_key = i;
			break;
		}
	}
	/* The file's values, not params_load's: "-n" must show what the
	 * operator set, not what was filled in from the system. */
	if (conf_load(&params_table, &params, path, &error) < 0) {
		mailctl_error("%s", error);
		free(error);
		free(path);
		conf_free(&params_table, &params);
		return MAILCTL_FAIL;
	}
	free(path);
	for (int i = first_key; i < ctl->argc; i++) {
		if (conf_find(&params_table, ctl->argv[i]) == NULL) {
			mailctl_error("unknown key \"%s\"", ctl->argv[i]);
			rc = MAILCTL_FAIL;
		}
	}
	for (size_t k = 0; rc == MAILCTL_OK && k < params_table.count; k++) {
		const struct conf_key *key = &params_table.keys[k];
		bool wanted = first_key == ctl->argc;
		char *value;

		for (int i = first_key; i < ctl->argc; i++)
			if (strcmp(ctl->argv[i], key->name) == 0)
				wanted = true;
		if (!wanted || (only_changed && conf_is_default(key, &params)))
			continue;
		value = conf_format(key, &params);
		if (docs)
			printf("# %s (%s, default \"%s\")\n", key->doc, conf_type_name(key->type), key->def);
		printf("%s = %s\n", key->name, value);
		if (docs)
			printf("\n");
		free(value);
	}
	conf_free(&params_table, &params);
	return rc;
}

int cmd_config_check(struct mailctl *ctl)
{
	struct suite_conf sc;
	char *error = NULL;
	bool as_root = geteuid() == 0;

	if (ctl->argc != 0) {
		mailctl_error("usage: mailctl config check");
		return MAILCTL_USAGE;
	}
	if (suite_conf_load(&sc, ctl->config_dir, as_root, &error) < 0) {
		mailctl_error("%s", error);
		free(error);
		return MAILCTL_FAIL;
	}
	printf("configuration in %s is valid: %zu services%s\n", ctl->config_dir, sc.services.count,
	       as_root ? "" : " (service accounts not checked: not root)");
	suite_conf_free(&sc);
	return MAILCTL_OK;
}
