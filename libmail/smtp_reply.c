/* smtp_reply.c - the reply table. */
#include "config.h"
#include "smtp_reply.h"
#include "../libutil/log.h"

#include <stddef.h>

static const struct smtp_reply replies[R_REPLY_COUNT] = {
	[R_GREETING] = { 220, NULL, "ESMTP Yubin" },
	[R_BYE] = { 221, "2.0.0", "Bye" },
	[R_OK] = { 250, "2.0.0", "Ok" },
	[R_SENDER_OK] = { 250, "2.1.0", "Sender ok" },
	[R_RCPT_OK] = { 250, "2.1.5", "Recipient ok" },
	[R_QUEUED] = { 250, "2.0.0", "Ok: queued as" },
	[R_VRFY] = { 252, "2.5.0", "Cannot verify the user, but will accept the message and attempt delivery" },
	[R_DATA_GO] = { 354, NULL, "End data with <CR><LF>.<CR><LF>" },
	[R_SHUTDOWN] = { 421, "4.3.2", "Service shutting down, try again later" },
	[R_IDLE_TIMEOUT] = { 421, "4.4.2", "Idle timeout, closing connection" },
	[R_TOO_MANY_ERRORS] = { 421, "4.7.0", "Too many errors, closing connection" },
	[R_QUEUE_ERROR] = { 451, "4.3.0", "Temporary queue failure, try again later" },
	[R_RCPT_TEMPFAIL] = { 451, "4.3.0", "Temporary lookup failure, try again later" },
	[R_QUOTA_TEMP] = { 452, "4.2.2", "Mailbox full, try again later" },
	[R_NO_SPACE] = { 452, "4.3.1", "Insufficient system storage, try again later" },
	[R_TOO_MANY_RCPTS] = { 452, "4.5.3", "Too many recipients" },
	[R_UNKNOWN_COMMAND] = { 500, "5.5.2", "Command not recognized" },
	[R_LINE_TOO_LONG] = { 500, "5.5.2", "Line too long" },
	[R_SYNTAX] = { 501, "5.5.4", "Syntax error in parameters or arguments" },
	[R_BAD_ADDRESS] = { 501, "5.1.3", "Bad address syntax" },
	[R_BAD_PARAM] = { 555, "5.5.4", "Unsupported or malformed parameter" },
	[R_NOT_IMPLEMENTED] = { 502, "5.5.1", "Command not implemented" },
	[R_BAD_SEQUENCE] = { 503, "5.5.1", "Bad sequence of commands" },
	[R_NEED_RCPT] = { 554, "5.5.1", "No valid recipients" },
	[R_UNKNOWN_USER] = { 550, "5.1.1", "Recipient address rejected: user unknown" },
	[R_BARE_LF] = { 550, "5.5.2", "Message contains bare CR or LF; lines must end with CRLF" },
	[R_MOVED] = { 551, "5.1.6", "Recipient has moved" },
	[R_TOO_BIG] = { 552, "5.3.4", "Message size exceeds fixed limit" },
	[R_QUOTA_PERM] = { 552, "5.2.2", "Mailbox full" },
	[R_BAD_SENDER] = { 553, "5.1.7", "Sender address rejected: bad address syntax" },
	[R_SENDER_NOT_OWNED] = { 553, "5.7.1", "Sender address rejected: not owned by the authenticated user" },
	[R_RELAY_DENIED] = { 554, "5.7.1", "Relay access denied" },
	[R_LOOP] = { 554, "5.4.6", "Too many Received headers: mail loop" },
	[R_AUTH_REQUIRED] = { 530, "5.7.0", "Authentication required" },
	[R_AUTH_FAILED] = { 535, "5.7.8", "Authentication credentials invalid" },
	[R_UTF8_REQUIRED] = { 553, "5.6.7", "Non-ASCII address requires SMTPUTF8" },
	/* The server's host name goes before an empty text (RFC 5321 4.1.1.1);
	 * RFC 2034 leaves enhanced codes off the greeting and HELO/EHLO. */
	[R_HELO] = { 250, NULL, "" },
	[R_HELP] = { 214, "2.0.0", "Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY" },
	/* The chunk size goes before the text: "250 2.0.0 1024 octets received". */
	[R_BDAT_OK] = { 250, "2.0.0", "octets received" },
	[R_NEED_HELO] = { 503, "5.5.1", "Send EHLO or HELO first" },
	[R_NESTED_MAIL] = { 503, "5.5.1", "Sender already specified" },
	[R_NEED_MAIL] = { 503, "5.5.1", "Need MAIL command" },
	[R_NEED_RCPT_CMD] = { 503, "5.5.1", "Need RCPT command" },
	[R_BAD_CHAR] = { 500, "5.5.2", "NUL or bare CR in command line" },
	[R_INPUT_OVERFLOW] = { 421, "4.7.0", "Too much pipelined input, closing connection" },
	[R_TLS_GO] = { 220, "2.0.0", "Ready to start TLS" },
	[R_TLS_ACTIVE] = { 503, "5.5.1", "TLS already active" },
	[R_TLS_FIRST] = { 530, "5.7.0", "Must issue a STARTTLS command first" },
	[R_AUTH_OK] = { 235, "2.7.0", "Authentication successful" },
	/* RFC 4954: "334 " and the base64 challenge (the suffix), nothing else. */
	[R_AUTH_CHALLENGE] = { 334, NULL, "" },
	[R_AUTH_NOT_ENABLED] = { 503, "5.5.1", "Authentication not enabled" },
	[R_AUTH_ALREADY] = { 503, "5.5.1", "Already authenticated" },
	[R_AUTH_IN_MAIL] = { 503, "5.5.1", "AUTH not allowed during a mail transaction" },
	[R_AUTH_BAD_MECH] = { 504, "5.5.4", "Unrecognized authentication mechanism" },
	[R_AUTH_BAD_BASE64] = { 501, "5.5.2", "Cannot decode base64 response" },
	[R_AUTH_CANCELLED] = { 501, "5.7.0", "Authentication cancelled" },
	[R_AUTH_TEMP] = { 454, "4.7.0", "Temporary authentication failure, try again later" },
	[R_AUTH_ENCRYPT] = { 538, "5.7.11", "Encryption required for requested authentication mechanism" },
};

const struct smtp_reply *smtp_reply_get(enum smtp_reply_id id)
{
	if ((unsigned)id >= R_REPLY_COUNT || replies[id].code == 0)
		log_panic("smtp_reply_get: no reply %d", (int)id);
	return &replies[id];
}
