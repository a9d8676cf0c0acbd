/* params.h - yubin.conf: the settings every Yubin program reads.
 *
 * The ONE table of keys is params_table in params.c; struct yb_params holds
 * the loaded values. Add a key by adding a field here and a row there; the
 * parser, "mailctl config show" and the documentation follow. */
#ifndef YB_PARAMS_H
#define YB_PARAMS_H

#include <stdbool.h>

#include "../libutil/conf.h"

struct yb_params {
	/* identity */
	char *myhostname;
	char *mail_owner;
	char *auth_owner;
	char *mailbox_owner;
	/* places */
	char *queue_directory;
	char *data_directory;
	char *run_directory;
	char *daemon_directory;
	/* logging */
	char *syslog_facility;
	char *log_file;
	bool debug_logging;
	/* master */
	long long service_crash_window;
	long long service_crash_limit;
	long long service_throttle_time;
	long long service_ready_timeout;
	long long stop_timeout;
	/* mailboxes */
	char *mail_root;
	bool quota_over_permanent;
	/* smtpd */
	long long message_size_limit;
	long long smtpd_recipient_limit;
	long long smtpd_error_limit;
	long long smtpd_timeout;
	long long hopcount_limit;
	bool smtpd_auth_on_mx;
	bool smtpd_auth_plaintext;
	/* pop3d */
	long long pop3d_timeout;
	long long pop3d_error_limit;
	bool pop3d_auth_plaintext;
	/* TLS (smtpd now; pop3d and imapd later) */
	char *tls_cert_file;
	char *tls_key_file;
	char *tls_sni_map;
	/* logins (auth, for every service) */
	char *auth_mechanisms;
	long long auth_failure_window;
	long long auth_delay_after;
	long long auth_failure_delay;
	long long auth_block_after;
	long long auth_block_time;
	/* outbound delivery (smtp) */
	char *dns_resolvers;
	char *relayhost;
	char *relayhost_password_file;
	char *smtp_tls_policy_map;
	char *smtp_tls_ca_file;
	long long smtp_tcp_port;
	long long smtp_connect_timeout;
	long long smtp_command_timeout;
	long long smtp_data_timeout;
	long long smtp_destination_concurrency_limit;
	long long smtp_destination_rate_delay;
	long long smtp_destination_recipient_limit;
	long long smtp_connection_cache_time_limit;
	long long smtp_connection_reuse_time_limit;
	long long delay_warning_time;
	/* queue */
	long long minimal_backoff_time;
	long long maximal_backoff_time;
	long long maximal_queue_lifetime;
	long long queue_minfree;
};

extern const struct conf_table params_table;

/* params_load - load CONFIG_DIR/yubin.conf; fills in myhostname from the
 * system when it is empty. -1 and a new "file:line: text" on error. */
int params_load(struct yb_params *p, const char *config_dir, char **error_r);

/* params_load_service - params_load for the daemon skeleton's load_conf. */
int params_load_service(void *p, const char *config_dir, char **error_r);

#endif
