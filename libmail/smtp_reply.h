/* smtp_reply.h - every SMTP reply Yubin sends, in one table: code,
 * enhanced status code (RFC 3463) and text. It mirrors DESIGN.md's
 * "Status codes users meet"; protocol code names a reply, never writes
 * one by hand. */
#ifndef YB_SMTP_REPLY_H
#define YB_SMTP_REPLY_H

enum smtp_reply_id {
	R_GREETING,          /* 220 */
	R_BYE,               /* 221 2.0.0 */
	R_OK,                /* 250 2.0.0 */
	R_SENDER_OK,         /* 250 2.1.0 */
	R_RCPT_OK,           /* 250 2.1.5 */
	R_QUEUED,            /* 250 2.0.0 queued as */
	R_VRFY,              /* 252 2.5.0 */
	R_DATA_GO,           /* 354 */
	R_SHUTDOWN,          /* 421 4.3.2 */
	R_IDLE_TIMEOUT,      /* 421 4.4.2 */
	R_TOO_MANY_ERRORS,   /* 421 4.7.0 */
	R_QUEUE_ERROR,       /* 451 4.3.0 */
	R_RCPT_TEMPFAIL,     /* 451 4.3.0 lookup failed */
	R_QUOTA_TEMP,        /* 452 4.2.2 */
	R_NO_SPACE,          /* 452 4.3.1 */
	R_TOO_MANY_RCPTS,    /* 452 4.5.3 */
	R_UNKNOWN_COMMAND,   /* 500 5.5.2 */
	R_LINE_TOO_LONG,     /* 500 5.5.2 */
	R_SYNTAX,            /* 501 5.5.4 */
	R_BAD_ADDRESS,       /* 501 5.1.3 */
	R_BAD_PARAM,         /* 555 5.5.4 */
	R_NOT_IMPLEMENTED,   /* 502 5.5.1 */
	R_BAD_SEQUENCE,      /* 503 5.5.1 */
	R_NEED_RCPT,         /* 554 5.5.1 no valid recipients */
	R_UNKNOWN_USER,      /* 550 5.1.1 */
	R_BARE_LF,           /* 550 5.5.2 */
	R_MOVED,             /* 551 5.1.6 */
	R_TOO_BIG,           /* 552 5.3.4 */
	R_QUOTA_PERM,        /* 552 5.2.2 */
	R_BAD_SENDER,        /* 553 5.1.7 */
	R_SENDER_NOT_OWNED,  /* 553 5.7.1 */
	R_RELAY_DENIED,      /* 554 5.7.1 */
	R_LOOP,              /* 554 5.4.6 */
	R_AUTH_REQUIRED,     /* 530 5.7.0 */
	R_AUTH_FAILED,       /* 535 5.7.8 */
	R_UTF8_REQUIRED,     /* 553 5.6.7 */
	/* Added with the SMTP server engine (libmail/smtp_server.c). */
	R_HELO,              /* 250 HOSTNAME: HELO reply, first EHLO line */
	R_HELP,              /* 214 2.0.0 */
	R_BDAT_OK,           /* 250 2.0.0 N octets received */
	R_NEED_HELO,         /* 503 5.5.1 */
	R_NESTED_MAIL,       /* 503 5.5.1 */
	R_NEED_MAIL,         /* 503 5.5.1 */
	R_NEED_RCPT_CMD,     /* 503 5.5.1 no RCPT given at all */
	R_BAD_CHAR,          /* 500 5.5.2 NUL or bare CR in a command line */
	R_INPUT_OVERFLOW,    /* 421 4.7.0 too much pipelined input */
	R_TLS_GO,            /* 220 2.0.0 ready to start TLS */
	R_TLS_ACTIVE,        /* 503 5.5.1 TLS already active */
	R_TLS_FIRST,         /* 530 5.7.0 STARTTLS first (AUTH before TLS) */
	R_AUTH_OK,           /* 235 2.7.0 */
	R_AUTH_CHALLENGE,    /* 334 (the base64 challenge follows) */
	R_AUTH_NOT_ENABLED,  /* 503 5.5.1 */
	R_AUTH_ALREADY,      /* 503 5.5.1 already authenticated */
	R_AUTH_IN_MAIL,      /* 503 5.5.1 AUTH inside a transaction */
	R_AUTH_BAD_MECH,     /* 504 5.5.4 */
	R_AUTH_BAD_BASE64,   /* 501 5.5.2 */
	R_AUTH_CANCELLED,    /* 501 5.7.0 client sent "*" */
	R_AUTH_TEMP,         /* 454 4.7.0 */
	R_AUTH_ENCRYPT,      /* 538 5.7.11 */
	R_REPLY_COUNT
};

struct smtp_reply {
	int code;
	const char *status; /* enhanced code, or NULL where none is sent */
	const char *text;
};

const struct smtp_reply *smtp_reply_get(enum smtp_reply_id id);

#endif
