/* dsn.h - RFC 3464 delivery status notifications: the message qmgr sends
 * the sender when recipients fail, are delivered with NOTIFY=SUCCESS, or
 * are still undelivered after delay_warning_time (multipart/report with a
 * human part, message/delivery-status, and the original's headers or
 * whole text). One report is of one kind: failures (with any successes),
 * successes only, or delays only. */
#ifndef YB_DSN_H
#define YB_DSN_H

#include <stdbool.h>

#include "../libutil/buf.h"

struct dsn_rcpt {
	const char *final_rcpt;  /* the address delivery was attempted to */
	const char *orcpt;       /* "rfc822;addr" as given with ORCPT, or NULL */
	const char *action;      /* "failed", "delayed", "delivered" */
	const char *status;      /* enhanced status, "5.1.1" */
	const char *diagnostic;  /* the reason, as the agent said it */
	long long retry_until;   /* "delayed": the last retry (unix time), 0 = not said */
};

struct dsn_report {
	const char *reporting_mta; /* myhostname */
	const char *queue_id;
	const char *sender;        /* the original sender: the DSN's recipient */
	long long arrival;         /* unix time the original arrived */
	const char *envid;         /* ENVID or NULL */
	bool return_full;          /* RET=FULL: include the whole message */
	const struct dsn_rcpt *rcpts;
	int rcpt_count;
	const char *message_id;    /* for the DSN's own Message-ID */
	const char *boundary;      /* MIME boundary (unique per report) */
};

/* dsn_build - append the whole DSN message (CRLF line ends, ready to be a
 * queue content file) to out. original is the queued message (CRLF); at
 * most original_max octets of it are included when return_full. */
void dsn_build(struct buf *out, const struct dsn_report *r, const char *original, size_t original_len,
	       size_t original_max);

/* dsn_rfc5322_date - "Sun, 22 Nov 2026 16:42:00 +0000" for t. */
void dsn_rfc5322_date(char out[64], long long t);

#endif
