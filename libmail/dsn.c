/* dsn.c - build RFC 3464 delivery status notifications. */
#include "config.h"
#include "dsn.h"

#include <string.h>
#include <time.h>

void dsn_rfc5322_date(char out[64], long long t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, 64, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* header_end - length of the header section (up to and including the
 * empty line), or the whole text if it has no body. */
static size_t header_end(const char *text, size_t len)
{
	for (size_t i = 0; i + 3 < len; i++)
		if (memcmp(text + i, "\r\n\r\n", 4) == 0)
			return i + 4;
	return len;
}

/* append_line_safe - text that came from an agent or a remote server goes
 * into header-like lines: control characters must not start new ones. */
/* is_smtp_reply - whether text is a remote server's reply ("550 5.1.1 ..."). */
static bool is_smtp_reply(const char *text)
{
	return text != NULL && text[0] >= '2' && text[0] <= '5' && text[1] >= '0' && text[1] <= '9' && text[2] >= '0' &&
	       text[2] <= '9' && (text[3] == ' ' || text[3] == '-');
}

static void append_line_safe(struct buf *out, const char *text)
{
	for (const unsigned char *p = (const unsigned char *)text; *p; p++)
		buf_append_byte(out, *p < 0x20 || *p == 0x7f ? ' ' : *p);
}

static bool any_action(const struct dsn_report *r, const char *action)
{
	for (int i = 0; i < r->rcpt_count; i++)
		if (strcmp(r->rcpts[i].action, action) == 0)
			return true;
	return false;
}

/* The report's kind decides its subject and first sentence. */
enum dsn_kind { DSN_FAILED, DSN_DELAYED, DSN_DELIVERED };

static const struct {
	const char *subject, *first_line;
} dsn_kinds[] = {
	[DSN_FAILED] = { "Undelivered Mail Returned to Sender",
			 "Your message could not be delivered to one or more recipients." },
	[DSN_DELAYED] = { "Delayed Mail (still being retried)",
			  "Your message could not be delivered yet to the recipients below.\r\n"
			  "Nothing needs doing: it is being retried, and you will hear again only\r\n"
			  "if it cannot be delivered in the end." },
	[DSN_DELIVERED] = { "Successful Mail Delivery Report", "Your message was delivered to the recipients below." },
};

static enum dsn_kind kind_of(const struct dsn_report *r)
{
	return any_action(r, "failed") ? DSN_FAILED : any_action(r, "delayed") ? DSN_DELAYED : DSN_DELIVERED;
}

/* summary - the human-readable first part. */
static void summary(struct buf *out, const struct dsn_report *r)
{
	buf_printf(out, "This is the mail system at host %s.\r\n\r\n", r->reporting_mta);
	buf_printf(out, "%s\r\n", dsn_kinds[kind_of(r)].first_line);
	buf_append_str(out, "The details are below; the headers of your message are attached.\r\n\r\n");
	for (int i = 0; i < r->rcpt_count; i++) {
		const struct dsn_rcpt *x = &r->rcpts[i];

		buf_printf(out, "<%s>: ", x->final_rcpt);
		append_line_safe(out, x->diagnostic);
		buf_printf(out, " (%s)\r\n", x->status);
		if (x->retry_until > 0) {
			char until[64];

			dsn_rfc5322_date(until, x->retry_until);
			buf_printf(out, "    retried until %s\r\n", until);
		}
	}
}

void dsn_build(struct buf *out, const struct dsn_report *r, const char *original, size_t original_len,
	       size_t original_max)
{
	char date[64], arrival[64];
	size_t hdr_len = header_end(original, original_len);
	bool full = r->return_full && original_len <= original_max;

	dsn_rfc5322_date(date, (long long)time(NULL));
	dsn_rfc5322_date(arrival, r->arrival);
	buf_printf(out, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", r->reporting_mta);
	buf_printf(out, "To: <%s>\r\n", r->sender);
	buf_printf(out, "Subject: %s\r\n", dsn_kinds[kind_of(r)].subject);
	buf_printf(out, "Date: %s\r\n", date);
	buf_printf(out, "Message-ID: <%s@%s>\r\n", r->message_id, r->reporting_mta);
	buf_append_str(out, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
	buf_printf(out, "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n",
		   r->boundary);
	buf_append_str(out, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

	buf_printf(out, "--%s\r\nContent-Description: Notification\r\n"
			"Content-Type: text/plain; charset=utf-8\r\n\r\n", r->boundary);
	summary(out, r);

	buf_printf(out, "\r\n--%s\r\nContent-Description: Delivery report\r\n"
			"Content-Type: message/delivery-status\r\n\r\n", r->boundary);
	buf_printf(out, "Reporting-MTA: dns; %s\r\n", r->reporting_mta);
	buf_printf(out, "X-Yubin-Queue-ID: %s\r\n", r->queue_id);
	if (r->envid != NULL && r->envid[0] != '\0')
		buf_printf(out, "Original-Envelope-Id: %s\r\n", r->envid);
	buf_printf(out, "Arrival-Date: %s\r\n", arrival);
	for (int i = 0; i < r->rcpt_count; i++) {
		const struct dsn_rcpt *x = &r->rcpts[i];

		buf_append_str(out, "\r\n");
		if (x->orcpt != NULL && x->orcpt[0] != '\0')
			buf_printf(out, "Original-Recipient: %s\r\n", x->orcpt);
		buf_printf(out, "Final-Recipient: rfc822; %s\r\n", x->final_rcpt);
		buf_printf(out, "Action: %s\r\n", x->action);
		buf_printf(out, "Status: %s\r\n", x->status);
		/* RFC 3464 2.3.6: "smtp" when it is another server's reply. */
		buf_append_str(out, is_smtp_reply(x->diagnostic) ? "Diagnostic-Code: smtp; " : "Diagnostic-Code: X-Yubin; ");
		append_line_safe(out, x->diagnostic);
		buf_append_str(out, "\r\n");
		if (x->retry_until > 0) {
			char until[64];

			dsn_rfc5322_date(until, x->retry_until);
			buf_printf(out, "Will-Retry-Until: %s\r\n", until);
		}
	}

	buf_printf(out, "\r\n--%s\r\nContent-Description: %s\r\nContent-Type: %s\r\n\r\n", r->boundary,
		   full ? "Original Message" : "Original Message Headers",
		   full ? "message/rfc822" : "text/rfc822-headers");
	buf_append(out, original, full ? original_len : hdr_len);
	if (out->len >= 2 && memcmp(out->data + out->len - 2, "\r\n", 2) != 0)
		buf_append_str(out, "\r\n");
	buf_printf(out, "\r\n--%s--\r\n", r->boundary);
}
