/* params.c - the table of yubin.conf keys: name, type, default, limits, doc. */
#include "config.h"
#include "params.h"
#include "../libutil/mem.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define P(field) offsetof(struct yb_params, field)
#define DAY (24LL * 3600)

static const struct conf_key params_keys[] = {
	{ "myhostname", CONF_STRING, "", 0, 0, NULL, P(myhostname),
	  "this host's fully qualified name, used in greetings and headers (empty: the system's)" },
	{ "mail_owner", CONF_STRING, "yubin", 0, 0, NULL, P(mail_owner),
	  "account that runs smtpd, qmgr and smtp and owns the queue" },
	{ "auth_owner", CONF_STRING, "yubin-auth", 0, 0, NULL, P(auth_owner),
	  "account that runs auth; the only one that can read password hashes" },
	{ "mailbox_owner", CONF_STRING, "vmail", 0, 0, NULL, P(mailbox_owner),
	  "account that owns the mailboxes and runs local, pop3d and imapd" },
	{ "queue_directory", CONF_PATH, YB_QUEUE_DIR, 0, 0, NULL, P(queue_directory),
	  "the mail queue; also the jail of the network-facing daemons" },
	{ "data_directory", CONF_PATH, YB_DATA_DIR, 0, 0, NULL, P(data_directory),
	  "tables: domains, users, aliases" },
	{ "run_directory", CONF_PATH, YB_RUN_DIR, 0, 0, NULL, P(run_directory),
	  "master's pid file, lock file and control socket" },
	{ "daemon_directory", CONF_PATH, YB_DAEMON_DIR, 0, 0, NULL, P(daemon_directory),
	  "where master finds the daemon programs named in master.conf" },
	{ "syslog_facility", CONF_ENUM, "mail", 0, 0,
	  "mail|daemon|user|local0|local1|local2|local3|local4|local5|local6|local7",
	  P(syslog_facility), "syslog facility for every Yubin program" },
	{ "log_file", CONF_STRING, "", 0, 0, NULL, P(log_file),
	  "append log lines to this file instead of syslog (empty: syslog)" },
	{ "debug_logging", CONF_BOOL, "no", 0, 0, NULL, P(debug_logging),
	  "log debug lines too" },
	{ "service_crash_window", CONF_DURATION, "10s", 1, DAY, NULL, P(service_crash_window),
	  "a worker that exits within this time of starting counts as a crash" },
	{ "service_crash_limit", CONF_INT, "5", 1, 1000, NULL, P(service_crash_limit),
	  "consecutive crashes after which master throttles the service" },
	{ "service_throttle_time", CONF_DURATION, "60s", 1, DAY, NULL, P(service_throttle_time),
	  "how long a throttled service waits before master starts it again" },
	{ "service_ready_timeout", CONF_DURATION, "30s", 1, 3600, NULL, P(service_ready_timeout),
	  "how long mailctl start waits for every worker to report ready" },
	{ "stop_timeout", CONF_DURATION, "10s", 1, 3600, NULL, P(stop_timeout),
	  "on stop, how long master waits for workers before killing them" },
	{ "mail_root", CONF_PATH, YB_MAIL_ROOT, 0, 0, NULL, P(mail_root),
	  "mailboxes live in mail_root/DOMAIN/USER/Maildir" },
	{ "quota_over_permanent", CONF_BOOL, "no", 0, 0, NULL, P(quota_over_permanent),
	  "refuse mail for a full mailbox with 552 5.2.2 (no: 452 4.2.2, the sender retries)" },
	{ "message_size_limit", CONF_SIZE, "50M", 1024, 2LL * 1024 * 1024 * 1024, NULL, P(message_size_limit),
	  "largest message accepted, headers included" },
	{ "smtpd_recipient_limit", CONF_INT, "1000", 1, 100000, NULL, P(smtpd_recipient_limit),
	  "most recipients accepted for one message" },
	{ "smtpd_error_limit", CONF_INT, "10", 1, 1000, NULL, P(smtpd_error_limit),
	  "client errors after which smtpd says 421 and closes the connection" },
	{ "smtpd_timeout", CONF_DURATION, "300s", 1, 3600, NULL, P(smtpd_timeout),
	  "how long smtpd waits for a client command or data before 421 4.4.2" },
	{ "hopcount_limit", CONF_INT, "50", 1, 1000, NULL, P(hopcount_limit),
	  "Received headers above which a message is refused as a mail loop (554 5.4.6)" },
	{ "smtpd_auth_on_mx", CONF_BOOL, "no", 0, 0, NULL, P(smtpd_auth_on_mx),
	  "offer AUTH on the MX port (25) too; submission (587, 465) always requires it" },
	{ "smtpd_auth_plaintext", CONF_BOOL, "no", 0, 0, NULL, P(smtpd_auth_plaintext),
	  "offer AUTH before STARTTLS, over an unencrypted connection (not recommended)" },
	{ "pop3d_timeout", CONF_DURATION, "10m", 60, 3600, NULL, P(pop3d_timeout),
	  "how long pop3d waits for a client command before it closes the connection (RFC 1939: at least 10 minutes)" },
	{ "pop3d_error_limit", CONF_INT, "10", 1, 1000, NULL, P(pop3d_error_limit),
	  "client errors after which pop3d closes the connection" },
	{ "pop3d_auth_plaintext", CONF_BOOL, "no", 0, 0, NULL, P(pop3d_auth_plaintext),
	  "allow USER/PASS and AUTH before STLS, over an unencrypted connection (not recommended)" },
	{ "tls_cert_file", CONF_STRING, "", 0, 0, NULL, P(tls_cert_file),
	  "PEM certificate chain (leaf first) for STARTTLS and implicit TLS (empty: no TLS)" },
	{ "tls_key_file", CONF_STRING, "", 0, 0, NULL, P(tls_key_file),
	  "PEM private key of tls_cert_file (read as root, before privileges drop)" },
	{ "tls_sni_map", CONF_STRING, "", 0, 0, NULL, P(tls_sni_map),
	  "file of \"name cert_file key_file\" lines: certificates chosen by the name a client asks for (SNI)" },
	{ "auth_mechanisms", CONF_STRING, "PLAIN LOGIN SCRAM-SHA-256", 0, 0, NULL, P(auth_mechanisms),
	  "SASL mechanisms offered, from PLAIN, LOGIN and SCRAM-SHA-256" },
	{ "auth_failure_window", CONF_DURATION, "15m", 1, DAY, NULL, P(auth_failure_window),
	  "how long a failed login counts against its client address and its account" },
	{ "auth_delay_after", CONF_INT, "3", 1, 1000, NULL, P(auth_delay_after),
	  "failed logins (per client address or account, within auth_failure_window) after which answers are delayed" },
	{ "auth_failure_delay", CONF_DURATION, "2s", 0, 60, NULL, P(auth_failure_delay),
	  "how long each further login answer is delayed" },
	{ "auth_block_after", CONF_INT, "10", 1, 100000, NULL, P(auth_block_after),
	  "failed logins after which logins from that address, or to that account, are refused" },
	{ "auth_block_time", CONF_DURATION, "15m", 1, 7 * DAY, NULL, P(auth_block_time),
	  "how long such a block lasts" },
	{ "dns_resolvers", CONF_STRING, "", 0, 0, NULL, P(dns_resolvers),
	  "name servers for outbound delivery, \"ADDR[@PORT]\" separated by spaces (empty: /etc/resolv.conf)" },
	{ "relayhost", CONF_STRING, "", 0, 0, NULL, P(relayhost),
	  "send all outbound mail through this host: [host]:port (no MX lookup) or host:port (empty: by MX)" },
	{ "relayhost_password_file", CONF_STRING, "", 0, 0, NULL, P(relayhost_password_file),
	  "file of \"host user password\" lines: SASL client login at the relay host (root-only, read at start)" },
	{ "smtp_tls_policy_map", CONF_STRING, "", 0, 0, NULL, P(smtp_tls_policy_map),
	  "file of \"domain policy\" lines, policy none|may|encrypt|verify (default for others: may)" },
	{ "smtp_tls_ca_file", CONF_STRING, "", 0, 0, NULL, P(smtp_tls_ca_file),
	  "CA certificates (PEM) for verified outbound TLS (empty: the system's bundle)" },
	{ "smtp_tcp_port", CONF_INT, "25", 1, 65535, NULL, P(smtp_tcp_port),
	  "the port outbound delivery connects to on MX hosts" },
	{ "smtp_connect_timeout", CONF_DURATION, "30s", 1, 3600, NULL, P(smtp_connect_timeout),
	  "how long the smtp client waits for a TCP connection and the greeting" },
	{ "smtp_command_timeout", CONF_DURATION, "300s", 1, 3600, NULL, P(smtp_command_timeout),
	  "how long the smtp client waits for the reply to a command (RFC 5321 4.5.3.2)" },
	{ "smtp_data_timeout", CONF_DURATION, "600s", 1, 7200, NULL, P(smtp_data_timeout),
	  "how long the smtp client waits for the reply to the end of a message" },
	{ "smtp_destination_concurrency_limit", CONF_INT, "20", 1, 1000, NULL,
	  P(smtp_destination_concurrency_limit), "most connections at once to one destination domain" },
	{ "smtp_destination_rate_delay", CONF_DURATION, "0s", 0, 3600, NULL, P(smtp_destination_rate_delay),
	  "pause between two deliveries to one destination (0: none)" },
	{ "smtp_destination_recipient_limit", CONF_INT, "50", 1, 1000, NULL, P(smtp_destination_recipient_limit),
	  "most recipients of one message in one delivery" },
	{ "smtp_connection_cache_time_limit", CONF_DURATION, "2s", 0, 300, NULL,
	  P(smtp_connection_cache_time_limit),
	  "how long a connection that delivered a message waits for the next one to the same destination (0: no reuse)" },
	{ "smtp_connection_reuse_time_limit", CONF_DURATION, "300s", 1, 86400, NULL,
	  P(smtp_connection_reuse_time_limit), "no more messages on a connection older than this" },
	{ "delay_warning_time", CONF_DURATION, "0s", 0, 7 * DAY, NULL, P(delay_warning_time),
	  "tell the sender once when a message is still undelivered after this long (0: never)" },
	{ "minimal_backoff_time", CONF_DURATION, "300s", 1, DAY, NULL, P(minimal_backoff_time),
	  "first wait before retrying a deferred delivery" },
	{ "maximal_backoff_time", CONF_DURATION, "4000s", 1, 7 * DAY, NULL, P(maximal_backoff_time),
	  "longest wait between retries of a deferred delivery" },
	{ "maximal_queue_lifetime", CONF_DURATION, "5d", 1, 100 * DAY, NULL, P(maximal_queue_lifetime),
	  "how long a message may stay deferred before it bounces" },
	{ "queue_minfree", CONF_SIZE, "100M", 0, 1024LL * 1024 * 1024 * 1024, NULL, P(queue_minfree),
	  "free space the queue file system keeps; below it smtpd answers 452 4.3.1" },
};

const struct conf_table params_table = {
	.keys = params_keys,
	.count = sizeof params_keys / sizeof params_keys[0],
};

int params_load(struct yb_params *p, const char *config_dir, char **error_r)
{
	char *path = xasprintf("%s/yubin.conf", config_dir);
	int rc = conf_load(&params_table, p, path, error_r);

	free(path);
	if (rc < 0)
		return -1;
	if (p->myhostname[0] == '\0') {
		char host[256] = "";

		gethostname(host, sizeof host - 1);
		free(p->myhostname);
		p->myhostname = xstrdup(host[0] != '\0' ? host : "localhost");
	}
	return 0;
}

int params_load_service(void *p, const char *config_dir, char **error_r)
{
	return params_load(p, config_dir, error_r);
}
