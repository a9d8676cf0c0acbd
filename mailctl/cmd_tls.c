/* cmd_tls.c - mailctl tls selfsigned: a new self-signed certificate and
 * key, written where yubin.conf's tls_cert_file and tls_key_file point.
 *
 * A self-signed certificate is what an MX needs for opportunistic TLS
 * (senders do not check it) and for DANE-EE ("TLSA 3 1 1", printed here),
 * and a start for submission before a CA-signed one is installed.
 *
 * Both keys must be set first: the command does not invent paths that
 * smtpd would not read (EX_CONFIG otherwise). Existing files are kept
 * unless --force. Missing parent directories are created, 0755. The key is
 * 0600 and the certificate 0644, both owned by whoever runs mailctl: root
 * for an installed suite (the daemons read them as root, before they drop
 * privileges); a developer's instance, run as its own user, may write its
 * own directories, as with the tables (cmd_tables.c), and a directory one
 * cannot write exits 77 (EX_NOPERM).
 *
 * The daemons load certificates when they start: mailctl reload puts a new
 * one into service.
 */
#include "config.h"
#include "mailctl.h"
#include "../libmail/params.h"
#include "../libutil/mem.h"
#include "../libutil/strutil.h"
#include "../libutil/tls.h"

#include <errno.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* EX_CONFIG from sysexits.h: yubin.conf lacks what the command needs. */
#define MAILCTL_CONFIG 78

#define SELFSIGNED_USAGE "tls selfsigned HOSTNAME [NAME...] [--days N] [--force]"
#define DEFAULT_DAYS 365
#define DAYS_MAX 36500

/* make_parents - create the missing directories above path, 0755. 0 or an
 * exit code, having said why. */
static int make_parents(const char *path)
{
	char *dir = xstrdup(path);
	char *end = strrchr(dir, '/');
	int rc = MAILCTL_OK;

	if (end == NULL || end == dir) {
		free(dir);
		return MAILCTL_OK;
	}
	*end = '\0';
	/* Each prefix in turn: "/etc", "/etc/yubin", "/etc/yubin/tls". */
	for (char *p = dir + 1;; p++) {
		struct stat st;
		bool last = *p == '\0';

		if (*p != '/' && !last)
			continue;
		*p = '\0';
		if (stat(dir, &st) == 0) {
			if (!S_ISDIR(st.st_mode)) {
				mailctl_error("%s: not a directory", dir);
				rc = MAILCTL_FAIL;
			}
		} else if (errno != ENOENT) {
			mailctl_error("%s: %s", dir, strerror(errno));
			rc = errno == EACCES ? MAILCTL_NOPERM : MAILCTL_FAIL;
		} else if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			int saved = errno;

			mailctl_error("mkdir %s: %s%s", dir, strerror(saved),
				      saved == EACCES || saved == EPERM ? ": run mailctl as root" : "");
			rc = saved == EACCES || saved == EPERM ? MAILCTL_NOPERM : MAILCTL_FAIL;
		} else if (chmod(dir, 0755) < 0) { /* whatever the umask */
			mailctl_error("chmod %s: %s", dir, strerror(errno));
			rc = MAILCTL_FAIL;
		} else {
			printf("created directory %s\n", dir);
		}
		if (last || rc != MAILCTL_OK)
			break;
		*p = '/';
	}
	free(dir);
	return rc;
}

/* check_writable - a user other than root can write the directory of path
 * (root can, or will fail with a reason worth showing as it is). */
static int check_writable(const char *path)
{
	char *copy = xstrdup(path);
	const char *dir = dirname(copy);
	int rc = MAILCTL_OK;

	if (geteuid() != 0 && access(dir, W_OK | X_OK) < 0) {
		if (errno == EACCES || errno == EPERM) {
			mailctl_error("permission denied: cannot write in %s: run mailctl as root", dir);
			rc = MAILCTL_NOPERM;
		} else {
			mailctl_error("%s: %s", dir, strerror(errno));
			rc = MAILCTL_FAIL;
		}
	}
	free(copy);
	return rc;
}

/* check_target - path is free to write: absent, or a file and --force. */
static int check_target(const char *key, const char *path, bool force)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return MAILCTL_OK;
		mailctl_error("%s %s: %s", key, path, strerror(errno));
		return errno == EACCES ? MAILCTL_NOPERM : MAILCTL_FAIL;
	}
	if (!S_ISREG(st.st_mode)) {
		mailctl_error("%s %s exists and is not a file: not replacing it", key, path);
		return MAILCTL_FAIL;
	}
	if (!force) {
		mailctl_error("%s %s exists: not replacing it (--force writes a new certificate and key)", key, path);
		return MAILCTL_FAIL;
	}
	return MAILCTL_OK;
}

/* check_paths - both keys set, absolute and distinct. */
static int check_paths(const struct mailctl *ctl, const struct yb_params *p)
{
	if (p->tls_cert_file[0] == '\0' || p->tls_key_file[0] == '\0') {
		mailctl_error("tls_cert_file and tls_key_file must both be set in %s/yubin.conf to say where the "
			      "certificate and key go (for example tls_cert_file = %s/tls/cert.pem and "
			      "tls_key_file = %s/tls/key.pem)",
			      ctl->config_dir, YB_CONFIG_DIR, YB_CONFIG_DIR);
		return MAILCTL_CONFIG;
	}
	if (p->tls_cert_file[0] != '/' || p->tls_key_file[0] != '/') {
		mailctl_error("tls_cert_file and tls_key_file must be absolute paths (%s/yubin.conf)", ctl->config_dir);
		return MAILCTL_CONFIG;
	}
	if (strcmp(p->tls_cert_file, p->tls_key_file) == 0) {
		mailctl_error("tls_cert_file and tls_key_file are both %s: they must be two files", p->tls_cert_file);
		return MAILCTL_CONFIG;
	}
	return MAILCTL_OK;
}

/* report - what was written, and the digests a client or a TLSA record
 * would pin. */
static int report(const struct yb_params *p, const char *const *names, int n_names)
{
	struct tls_cert_digests d;
	char *error = NULL;

	if (tls_cert_digests(p->tls_cert_file, &d, &error) < 0) {
		mailctl_error("%s", error);
		free(error);
		return MAILCTL_FAIL;
	}
	printf("wrote %s: self-signed certificate for", p->tls_cert_file);
	for (int i = 0; i < n_names; i++)
		printf("%s %s", i > 0 ? "," : "", names[i]);
	printf(", valid until %s\n", d.not_after);
	printf("wrote %s: its ECDSA P-256 private key (mode 0600)\n", p->tls_key_file);
	printf("SHA-256 fingerprint: %s\n", d.cert_sha256);
	printf("DANE TLSA 3 1 1 data: %s\n", d.spki_sha256);
	printf("workers load it when they start: run mailctl reload if the suite is running\n");
	return MAILCTL_OK;
}

int cmd_tls_selfsigned(struct mailctl *ctl)
{
	struct yb_params params;
	char **names = xcalloc((size_t)ctl->argc + 1, sizeof *names);
	int n_names = 0;
	long long days = DEFAULT_DAYS;
	bool force = false, only_names = false;
	char *error = NULL;
	int rc;

	for (int i = 0; i < ctl->argc; i++) {
		const char *a = ctl->argv[i];

		if (only_names || a[0] != '-') {
			names[n_names++] = ctl->argv[i];
		} else if (strcmp(a, "--") == 0) {
			only_names = true;
		} else if (strcmp(a, "--force") == 0) {
			force = true;
		} else if (strcmp(a, "--days") == 0 || str_has_prefix(a, "--days=")) {
			const char *value = a[6] == '=' ? a + 7 : (i + 1 < ctl->argc ? ctl->argv[++i] : NULL);
			const char *why;

			if (value == NULL || str_to_ll(value, 1, DAYS_MAX, &days, &why) < 0) {
				mailctl_error("--days needs a number of days from 1 to %d", DAYS_MAX);
				free(names);
				return MAILCTL_USAGE;
			}
		} else {
			mailctl_error("unknown option %s", a);
			mailctl_error("usage: mailctl %s", SELFSIGNED_USAGE);
			free(names);
			return MAILCTL_USAGE;
		}
	}
	if (n_names == 0) {
		mailctl_error("usage: mailctl %s", SELFSIGNED_USAGE);
		free(names);
		return MAILCTL_USAGE;
	}
	if (params_load(&params, ctl->config_dir, &error) < 0) {
		mailctl_error("%s", error);
		free(error);
		conf_free(&params_table, &params);
		free(names);
		return MAILCTL_FAIL;
	}
	/* Everything is checked before anything is written: a refusal
	 * changes nothing. */
	rc = check_paths(ctl, &params);
	if (rc == MAILCTL_OK)
		rc = check_target("tls_cert_file", params.tls_cert_file, force);
	if (rc == MAILCTL_OK)
		rc = check_target("tls_key_file", params.tls_key_file, force);
	if (rc == MAILCTL_OK)
		rc = make_parents(params.tls_cert_file);
	if (rc == MAILCTL_OK)
		rc = make_parents(params.tls_key_file);
	if (rc == MAILCTL_OK)
		rc = check_writable(params.tls_cert_file);
	if (rc == MAILCTL_OK)
		rc = check_writable(params.tls_key_file);
	if (rc == MAILCTL_OK &&
	    tls_make_selfsigned(names[0], (const char *const *)names + 1, (size_t)n_names - 1, (int)days,
				params.tls_cert_file, params.tls_key_file, &error) < 0) {
		mailctl_error("%s", error);
		free(error);
		rc = MAILCTL_FAIL;
	}
	if (rc == MAILCTL_OK)
		rc = report(&params, (const char *const *)names, n_names);
	conf_free(&params_table, &params);
	free(names);
	return rc;
}
