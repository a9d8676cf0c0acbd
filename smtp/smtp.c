/* smtp.c - the outbound delivery agent: delivers qmgr's remote recipients
 * to the destination's MX hosts (or the relay host) over SMTP, with
 * opportunistic STARTTLS, and answers qmgr with each recipient's outcome
 * (smtp/PROTOCOL.md). Runs as mail_owner, jailed in the queue directory;
 * the resolver configuration, the CA bundle and the relay password are
 * read before the jail. This file holds main() and the set-up; the
 * deliveries are in smtp_deliver.c. */
#include "config.h"
#include "smtp.h"
#include "../libmail/dns.h"
#include "../libutil/buf.h"
#include "../libutil/ipc_server.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/service.h"
#include "../libutil/strutil.h"
#include "../libutil/tls_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static struct yb_params params;
static struct smtp_daemon smtp;

/* parse_relayhost - "[host]:port", "[host]", "host:port" or "host". */
static int parse_relayhost(const char *text, char **error_r)
{
	const char *p = text, *end;
	char *host;
	long port = 25;

	smtp.relay_mx = p[0] != '[';
	if (p[0] == '[') {
		end = strchr(p, ']');
		if (end == NULL || end == p + 1) {
			*error_r = xasprintf("relayhost = %s: missing ']'", text);
			return -1;
		}
		host = xstrndup(p + 1, (size_t)(end - p - 1));
		p = end + 1;
	} else {
		end = strchr(p, ':');
		host = end != NULL ? xstrndup(p, (size_t)(end - p)) : xstrdup(p);
		p = end != NULL ? end : p + strlen(p);
	}
	if (*p == ':') {
		char *stop;

		port = strtol(p + 1, &stop, 10);
		if (*stop != '\0' || port < 1 || port > 65535) {
			*error_r = xasprintf("relayhost = %s: bad port", text);
			free(host);
			return -1;
		}
	} else if (*p != '\0') {
		*error_r = xasprintf("relayhost = %s: expected [host]:port or host:port", text);
		free(host);
		return -1;
	}
	smtp.relay_host = host;
	smtp.relay_port = (int)port;
	return 0;
}

/* load_relay_password - the "host user password" line for the relay
 * host, from a file only root reads (read before the privilege drop). */
static int load_relay_password(char **error_r)
{
	FILE *f;
	char line[1024];
	int lineno = 0;

	if (params.relayhost_password_file[0] == '\0')
		return 0;
	f = fopen(params.relayhost_password_file, "r");
	if (f == NULL) {
		*error_r = xasprintf("relayhost_password_file %s: %s", params.relayhost_password_file, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof line, f) != NULL) {
		char host[256], user[256], pass[512];

		lineno++;
		if (line[0] == '#' || strspn(line, " \t\r\n") == strlen(line))
			continue;
		if (sscanf(line, "%255s %255s %511s", host, user, pass) != 3) {
			*error_r = xasprintf("%s:%d: expected \"host user password\"", params.relayhost_password_file,
					     lineno);
			fclose(f);
			return -1;
		}
		if (smtp.relay_host != NULL && strcasecmp(host, smtp.relay_host) == 0) {
			smtp.relay_user = xstrdup(user);
			smtp.relay_password = xstrdup(pass);
		}
		explicit_bzero(pass, sizeof pass);
	}
	explicit_bzero(line, sizeof line);
	fclose(f);
	return 0;
}

/* The name servers: dns_resolvers, or those of /etc/resolv.conf, read
 * here because the jail has no /etc. */
static char *servers;

static int read_resolv_conf(char **error_r)
{
	FILE *f = fopen("/etc/resolv.conf", "r");
	char line[512];
	struct buf b = BUF_INIT;

	if (f == NULL) {
		*error_r = xasprintf("/etc/resolv.conf: %s (or set dns_resolvers)", strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof line, f) != NULL) {
		char addr[128];

		if (sscanf(line, " nameserver %127s", addr) == 1)
			buf_printf(&b, "%s%s", b.len > 0 ? " " : "", addr);
	}
	fclose(f);
	if (b.len == 0) {
		buf_free(&b);
		*error_r = xstrdup("/etc/resolv.conf names no nameserver (or set dns_resolvers)");
		return -1;
	}
	servers = buf_steal(&b);
	return 0;
}

/* load_tls_policies - smtp_tls_policy_map: "domain policy" lines, policy
 * none, may, encrypt or verify; '#' comments. */
static int load_tls_policies(char **error_r)
{
	static const char *const names[] = { [SMTP_TLS_NONE] = "none", [SMTP_TLS_MAY] = "may",
					      [SMTP_TLS_ENCRYPT] = "encrypt", [SMTP_TLS_VERIFY] = "verify" };
	const char *path = params.smtp_tls_policy_map;
	FILE *f;
	char line[512];
	int lineno = 0;

	if (path[0] == '\0')
		return 0;
	f = fopen(path, "r");
	if (f == NULL) {
		*error_r = xasprintf("smtp_tls_policy_map %s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof line, f) != NULL) {
		char domain[256], level[32], extra[2];
		int n, found = -1;

		lineno++;
		if (line[0] == '#' || strspn(line, " \t\r\n") == strlen(line))
			continue;
		n = sscanf(line, "%255s %31s %1s", domain, level, extra);
		for (int i = 0; n == 2 && i < 4; i++)
			if (strcasecmp(level, names[i]) == 0)
				found = i;
		if (found < 0) {
			*error_r = xasprintf("%s:%d: expected \"domain none|may|encrypt|verify\"", path, lineno);
			fclose(f);
			return -1;
		}
		smtp.policies = xreallocarray(smtp.policies, smtp.npolicies + 1, sizeof *smtp.policies);
		smtp.policies[smtp.npolicies].domain = xstrdup(domain);
		smtp.policies[smtp.npolicies].level = (enum smtp_tls_level)found;
		smtp.npolicies++;
	}
	fclose(f);
	return 0;
}

enum smtp_tls_level smtp_tls_level_for(const struct smtp_daemon *d, const char *destination)
{
	for (size_t i = 0; i < d->npolicies; i++)
		if (strcasecmp(d->policies[i].domain, destination) == 0)
			return d->policies[i].level;
	return SMTP_TLS_MAY;
}

static int smtp_pre_jail(struct service_ctx *ctx, char **error_r)
{
	(void)ctx;
	if (params.dns_resolvers[0] != '\0')
		servers = xstrdup(params.dns_resolvers);
	else if (read_resolv_conf(error_r) < 0)
		return -1;
	if (params.relayhost[0] != '\0' && parse_relayhost(params.relayhost, error_r) < 0)
		return -1;
	if (load_relay_password(error_r) < 0)
		return -1;
	if (load_tls_policies(error_r) < 0)
		return -1;
	smtp.tls = tls_client_new(params.smtp_tls_ca_file, error_r);
	if (smtp.tls == NULL)
		return -1;
	if (chdir(params.queue_directory) < 0) {
		*error_r = xasprintf("chdir %s: %s", params.queue_directory, strerror(errno));
		return -1;
	}
	return 0;
}

static int smtp_post_jail(struct service_ctx *ctx, char **error_r)
{
	smtp.dns = dns_resolver_new(ctx->base, servers, error_r);
	if (smtp.dns == NULL)
		return -1;
	smtp.svc = ctx;
	smtp.params = &params;
	smtp.server = ipc_server_new(ctx->base, SMTP_DELIVER_PROTOCOL, SMTP_REQUEST_MAX, 0, smtp_deliver_request, &smtp);
	return 0;
}

static void smtp_accept(struct service_ctx *ctx, int fd, int index)
{
	(void)ctx;
	(void)index;
	ipc_server_accept(smtp.server, fd);
}

static void smtp_stop(struct service_ctx *ctx)
{
	(void)ctx;
	/* Deliveries in progress are abandoned: qmgr sees the connection
	 * close and defers them; a repeat is harmless for the receiver's
	 * duplicate check and rare. */
	ipc_server_free(&smtp.server);
}

int main(int argc, char **argv)
{
	static const struct service_desc desc = {
		.name = "yubin/smtp",
		.conf_table = &params_table,
		.conf = &params,
		.load_conf = params_load_service,
		.pre_jail = smtp_pre_jail,
		.post_jail = smtp_post_jail,
		.on_accept = smtp_accept,
		.on_stop = smtp_stop,
	};
	int rc = service_main(argc, argv, &desc);

	ipc_server_free(&smtp.server);
	dns_resolver_free(&smtp.dns);
	tls_client_free(&smtp.tls);
	for (size_t i = 0; i < smtp.npolicies; i++)
		free(smtp.policies[i].domain);
	free(smtp.policies);
	free(servers);
	free(smtp.relay_host);
	free(smtp.relay_user);
	if (smtp.relay_password != NULL)
		explicit_bzero(smtp.relay_password, strlen(smtp.relay_password));
	free(smtp.relay_password);
	return rc;
}
