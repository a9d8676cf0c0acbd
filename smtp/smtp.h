/* smtp.h - the outbound delivery agent's internal types (smtp/PROTOCOL.md
 * has its protocol with qmgr). */
#ifndef YB_SMTP_H
#define YB_SMTP_H

#include <stdbool.h>
#include <stdint.h>

#include "../libmail/params.h"

struct dns_resolver;
struct ipc_msg;
struct ipc_peer;
struct ipc_server;
struct service_ctx;
struct tls_client;
struct delivery;

#define SMTP_DELIVER_PROTOCOL "smtp-deliver"
#define SMTP_REQUEST_MAX (1024 * 1024)

struct smtp_daemon {
	struct service_ctx *svc;
	const struct yb_params *params;
	struct dns_resolver *dns;
	struct tls_client *tls;
	struct ipc_server *server;
	/* relayhost: "[host]:port" (no MX lookup) or "host[:port]" (MX of host) */
	char *relay_host;   /* NULL: deliver by the recipient domain's MX */
	int relay_port;
	bool relay_mx;      /* look up the relay host's MX */
	char *relay_user;   /* SASL login there, from relayhost_password_file */
	char *relay_password;
	struct smtp_tls_policy *policies; /* smtp_tls_policy_map, sorted by domain */
	size_t npolicies;
	int active;         /* deliveries in progress */
	struct smtp_dest *dests; /* destinations with deliveries running or waiting */
};

/* A destination (the recipients' domain, or the relay host): at most
 * smtp_destination_concurrency_limit deliveries at once; with
 * smtp_destination_rate_delay, one at a time with that pause between. */
struct smtp_dest {
	char *name;
	int running;
	struct delivery *waiting, **waiting_tail; /* FIFO */
	struct event *delay_ev;   /* the rate delay's timer */
	long long last_start_ms;  /* CLOCK_MONOTONIC */
	struct smtp_dest *next;
};

/* TLS for one destination (smtp_tls_policy_map). */
enum smtp_tls_level { SMTP_TLS_NONE, SMTP_TLS_MAY, SMTP_TLS_ENCRYPT, SMTP_TLS_VERIFY };
struct smtp_tls_policy {
	char *domain;
	enum smtp_tls_level level;
};

/* smtp.c */
/* smtp_tls_level_for - the policy for a destination (default: may). */
enum smtp_tls_level smtp_tls_level_for(const struct smtp_daemon *d, const char *destination);

/* smtp_deliver.c */
void smtp_deliver_request(struct ipc_peer *peer, int64_t req, const struct ipc_msg *msg, void *ctx);

#endif
