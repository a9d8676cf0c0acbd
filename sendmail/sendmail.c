/* sendmail.c - the sendmail-compatible submission command, for cron, PHP
 * mail() and every script that pipes a message into "sendmail":
 *
 *   sendmail [-t] [-i|-oi] [-f sender] [-F fullname] [-C config_dir] [recipient...]
 *
 * It reads the message from standard input (to the end: a lone "." line is
 * text, so -i is the only behaviour), converts it to CRLF, dot-stuffs it
 * and submits it over plain SMTP on queue_directory/public/pickup, where
 * smtpd (pickup mode) names the caller by the socket's peer credentials.
 * No privilege: not setuid, not setgid; the caller's identity is the
 * kernel's word, not ours.
 *
 * Exit codes (sysexits.h): 0 queued; 64 usage (bad option, no recipient);
 * 65 refused by the server (5xx); 67 unknown user (550 5.1.1); 75 try
 * again later (server unreachable, 4xx, connection lost); 74 reading the
 * message; 78 configuration. */
#include "config.h"
#include "../libmail/params.h"
#include "../libutil/buf.h"
#include "../libutil/conf.h"
#include "../libutil/mem.h"
#include "../libutil/sock.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#define PICKUP_SOCKET "public/pickup"
#define CONNECT_TIMEOUT_MS 10000
#define IO_TIMEOUT_MS 300000

static const char *progname = "sendmail";

static _Noreturn void usage(void)
{
	fprintf(stderr, "usage: %s [-t] [-i|-oi] [-f sender] [-F fullname] [-C config_dir] [recipient ...]\n",
		progname);
	exit(EX_USAGE);
}

static _Noreturn void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static _Noreturn void die(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

/* ---- addresses ------------------------------------------------------ */

struct strv {
	char **v;
	size_t n;
};

static void strv_add(struct strv *s, const char *text, size_t len)
{
	s->v = xreallocarray(s->v, s->n + 1, sizeof *s->v);
	s->v[s->n] = xmalloc(len + 1);
	memcpy(s->v[s->n], text, len);
	s->v[s->n][len] = '\0';
	s->n++;
}

/* valid_address - fit for MAIL FROM:<...>/RCPT TO:<...>: no controls,
 * spaces or angle brackets (the server checks the rest). */
static bool valid_address(const char *a)
{
	for (; *a != '\0'; a++)
		if ((unsigned char)*a <= ' ' || *a == '<' || *a == '>' || *a == 0x7f)
			return false;
	return true;
}

static bool is_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/* add_mailbox - one element of an address list: "Name <addr>", "addr",
 * "addr (comment)"; the address goes into out. */
static void add_mailbox(struct strv *out, const char *s, size_t len)
{
	const char *lt = NULL, *gt = NULL;
	struct buf a = BUF_INIT;
	bool quoted = false;
	int comment = 0;

	for (size_t i = 0; i < len; i++) {
		if (quoted) {
			if (s[i] == '\\' && i + 1 < len)
				i++;
			else if (s[i] == '"')
				quoted = false;
		} else if (comment > 0) {
			if (s[i] == '\\' && i + 1 < len)
				i++;
			else if (s[i] == '(')
				comment++;
			else if (s[i] == ')')
				comment--;
		} else if (s[i] == '"') {
			quoted = true;
		} else if (s[i] == '(') {
			comment++;
		} else if (s[i] == '<' && lt == NULL) {
			lt = s + i;
		} else if (s[i] == '>' && lt != NULL && gt == NULL) {
			gt = s + i;
		}
	}
	if (lt != NULL && gt != NULL) {
		s = lt + 1;
		len = (size_t)(gt - lt - 1);
	}
	/* Drop whitespace and comments; keep quoted local parts as they are. */
	quoted = false;
	comment = 0;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];

		if (comment > 0) {
			if (ch == '(')
				comment++;
			else if (ch == ')')
				comment--;
			continue;
		}
		if (!quoted && ch == '(') {
			comment++;
			continue;
		}
		if (ch == '"')
			quoted = !quoted;
		if (!quoted && isspace((unsigned char)ch))
			continue;
		buf_append_byte(&a, (uint8_t)ch);
	}
	if (a.len > 0)
		strv_add(out, (const char *)a.data, a.len);
	buf_free(&a);
}

/* parse_address_list - the addresses of a To/Cc/Bcc field value. Groups
 * ("team: a, b;") give their members. */
static void parse_address_list(struct strv *out, const char *s, size_t len)
{
	size_t start = 0;
	bool quoted = false, angle = false;
	int comment = 0;

	for (size_t i = 0; i <= len; i++) {
		char ch = i < len ? s[i] : ',';

		if (quoted) {
			if (ch == '\\' && i + 1 < len)
				i++;
			else if (ch == '"')
				quoted = false;
			continue;
		}
		if (comment > 0) {
			if (ch == '\\' && i + 1 < len)
				i++;
			else if (ch == '(')
				comment++;
			else if (ch == ')')
				comment--;
			continue;
		}
		switch (ch) {
		case '"':
			quoted = true;
			break;
		case '(':
			comment++;
			break;
		case '<':
			angle = true;
			break;
		case '>':
			angle = false;
			break;
		case ':':
			if (!angle)
				start = i + 1; /* a group's display name */
			break;
		case ',':
		case ';':
			if (!angle || i == len) {
				add_mailbox(out, s + start, i - start);
				start = i + 1;
				angle = false;
			}
			break;
		default:
			break;
		}
	}
}

/* ---- the message ---------------------------------------------------- */

struct line {
	const char *text; /* without the line end */
	size_t len;
};

struct message {
	struct line *lines;
	size_t count;
	size_t header_end; /* lines[0 .. header_end) are the header */
	bool eight_bit;
};

static void read_message(struct buf *in)
{
	char chunk[65536];
	ssize_t n;

	for (;;) {
		n = read(STDIN_FILENO, chunk, sizeof chunk);
		if (n == 0)
			return;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die(EX_IOERR, "reading the message: %s", strerror(errno));
		}
		buf_append(in, chunk, (size_t)n);
	}
}

/* split_message - lines (LF or CRLF ends) and where the header ends. */
static void split_message(const struct buf *in, struct message *m)
{
	const char *p = (const char *)in->data, *end = p + in->len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl != NULL ? nl : end;
		size_t len = (size_t)(e - p);

		if (len > 0 && p[len - 1] == '\r')
			len--;
		m->lines = xreallocarray(m->lines, m->count + 1, sizeof *m->lines);
		m->lines[m->count++] = (struct line){ p, len };
		p = nl != NULL ? nl + 1 : end;
	}
	for (size_t i = 0; i < in->len; i++)
		if (in->data[i] & 0x80) {
			m->eight_bit = true;
			break;
		}
	/* The header: field lines and their continuations, up to the first
	 * empty line or the first line that is neither. */
	m->header_end = 0;
	for (size_t i = 0; i < m->count; i++) {
		const struct line *l = &m->lines[i];
		size_t k = 0;

		if (l->len > 0 && (l->text[0] == ' ' || l->text[0] == '\t') && i > 0) {
			m->header_end = i + 1;
			continue;
		}
		while (k < l->len && l->text[k] > ' ' && l->text[k] < 127 && l->text[k] != ':')
			k++;
		if (k == 0 || k >= l->len || l->text[k] != ':')
			break;
		m->header_end = i + 1;
	}
}

/* field_is - whether header line l starts field name. */
static bool field_is(const struct line *l, const char *name)
{
	size_t n = strlen(name);

	return l->len > n && strncasecmp(l->text, name, n) == 0 && l->text[n] == ':';
}

/* header_recipients - -t: the To, Cc and Bcc addresses; the Bcc fields
 * are marked for removal (skip[i] = true). */
static void header_recipients(const struct message *m, struct strv *out, bool *skip)
{
	for (size_t i = 0; i < m->header_end; i++) {
		const struct line *l = &m->lines[i];
		bool bcc = field_is(l, "Bcc");
		size_t j;
		struct buf value = BUF_INIT;

		if (!field_is(l, "To") && !field_is(l, "Cc") && !bcc)
			continue;
		{
			const char *colon = memchr(l->text, ':', l->len);

			buf_append(&value, colon + 1, l->len - (size_t)(colon + 1 - l->text));
		}
		skip[i] = bcc;
		for (j = i + 1; j < m->header_end && m->lines[j].len > 0 &&
				(m->lines[j].text[0] == ' ' || m->lines[j].text[0] == '\t');
		     j++) {
			buf_append_byte(&value, ' ');
			buf_append(&value, m->lines[j].text, m->lines[j].len);
			skip[j] = bcc;
		}
		parse_address_list(out, (const char *)value.data, value.len);
		buf_free(&value);
		i = j - 1;
	}
}

static bool has_field(const struct message *m, const char *name)
{
	for (size_t i = 0; i < m->header_end; i++)
		if (field_is(&m->lines[i], name))
			return true;
	return false;
}

/* ---- SMTP over the pickup socket ------------------------------------ */

struct conn {
	int fd;
	struct buf in;
	struct buf out;
};

struct reply {
	int code;
	char text[1024]; /* the last line, "NNN x.y.z text" */
};

static _Noreturn void lost(const char *what)
{
	die(EX_TEMPFAIL, "connection to the mail system lost (%s): try again later", what);
}

static void conn_flush(struct conn *c)
{
	if (c->out.len == 0)
		return;
	if (fd_write_full(c->fd, c->out.data, c->out.len, IO_TIMEOUT_MS) < 0)
		lost(strerror(errno));
	buf_reset(&c->out);
}

/* read_line - one reply line into line (without CRLF). */
static void read_line(struct conn *c, char *line, size_t size)
{
	for (;;) {
		uint8_t *nl = c->in.len > 0 ? memchr(c->in.data, '\n', c->in.len) : NULL;

		if (nl != NULL) {
			size_t len = (size_t)(nl - c->in.data);
			size_t keep = len > 0 && c->in.data[len - 1] == '\r' ? len - 1 : len;

			if (keep >= size)
				keep = size - 1;
			memcpy(line, c->in.data, keep);
			line[keep] = '\0';
			buf_consume(&c->in, len + 1);
			return;
		}
		if (c->in.len > 65536)
			lost("reply line too long");
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int r = poll(&pfd, 1, IO_TIMEOUT_MS);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			lost(r == 0 ? "timeout" : strerror(errno));
		char chunk[4096];
		ssize_t n = read(c->fd, chunk, sizeof chunk);

		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			lost(n == 0 ? "closed" : strerror(errno));
		buf_append(&c->in, chunk, (size_t)n);
	}
}

static void read_reply(struct conn *c, struct reply *r)
{
	char line[1024];

	conn_flush(c);
	for (;;) {
		read_line(c, line, sizeof line);
		if (strlen(line) < 3 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1]) ||
		    !isdigit((unsigned char)line[2]) || (line[3] != '\0' && line[3] != ' ' && line[3] != '-'))
			lost("malformed reply");
		if (line[3] != '-')
			break;
	}
	r->code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	snprintf(r->text, sizeof r->text, "%s", line);
}

/* reply_exit - the exit code for a refusal. */
static int reply_exit(const struct reply *r)
{
	if (r->code >= 400 && r->code < 500)
		return EX_TEMPFAIL;
	if (r->code == 550 && strncmp(r->text + 3, " 5.1.1", 6) == 0)
		return EX_NOUSER;
	return EX_DATAERR;
}

/* refused - the server said no: report it, say goodbye, leave. */
static _Noreturn void refused(struct conn *c, const char *what, const struct reply *r)
{
	struct reply bye;

	fprintf(stderr, "%s: %s: %s\n", progname, what, r->text);
	if (r->code != 421) {
		buf_append_str(&c->out, "QUIT\r\n");
		if (fd_write_full(c->fd, c->out.data, c->out.len, 5000) == 0) {
			buf_reset(&c->out);
			struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

			if (poll(&pfd, 1, 5000) > 0)
				read_reply(c, &bye);
		}
	}
	exit(reply_exit(r));
}

static void expect(struct conn *c, int want_class, const char *what)
{
	struct reply r;

	read_reply(c, &r);
	if (r.code / 100 != want_class)
		refused(c, what, &r);
}

/* send_content - the message, CRLF line ends, dot-stuffed, then the end. */
static void send_content(struct conn *c, const struct message *m, const bool *skip, const char *from_line)
{
	if (from_line != NULL) {
		buf_append_str(&c->out, from_line);
		buf_append_str(&c->out, "\r\n");
	}
	for (size_t i = 0; i < m->count; i++) {
		const struct line *l = &m->lines[i];

		if (skip[i])
			continue;
		if (l->len > 0 && l->text[0] == '.')
			buf_append_byte(&c->out, '.');
		buf_append(&c->out, l->text, l->len);
		buf_append_str(&c->out, "\r\n");
		if (c->out.len >= 65536)
			conn_flush(c);
	}
	buf_append_str(&c->out, ".\r\n");
}

/* ---- main ----------------------------------------------------------- */

int main(int argc, char **argv)
{
	const char *config_dir = getenv("YUBIN_CONFIG_DIR");
	const char *sender_opt = NULL, *full_name = NULL;
	bool from_headers = false, utf8;
	struct yb_params params;
	struct strv rcpts = { 0 };
	struct buf input = BUF_INIT;
	struct message msg = { 0 };
	struct conn c = { .fd = -1, .in = BUF_INIT, .out = BUF_INIT };
	char *error = NULL, *sender, *socket_path, *from_line = NULL;
	bool *skip;
	struct passwd *pw;
	int opt;

	if (argv[0] != NULL && argv[0][0] != '\0') {
		const char *slash = strrchr(argv[0], '/');

		progname = slash != NULL ? slash + 1 : argv[0];
	}
	if (config_dir == NULL || *config_dir == '\0')
		config_dir = YB_CONFIG_DIR;
	opterr = 0;
	while ((opt = getopt(argc, argv, "+tif:F:C:o:b:")) != -1) {
		switch (opt) {
		case 't':
			from_headers = true;
			break;
		case 'i':
			break; /* we always read to the end of the input */
		case 'o':
			if (strcmp(optarg, "i") != 0) {
				fprintf(stderr, "%s: unsupported option -o%s\n", progname, optarg);
				usage();
			}
			break;
		case 'b':
			if (strcmp(optarg, "m") != 0) { /* -bm: deliver mail, the default */
				fprintf(stderr, "%s: unsupported mode -b%s\n", progname, optarg);
				usage();
			}
			break;
		case 'f':
			sender_opt = optarg;
			break;
		case 'F':
			full_name = optarg;
			break;
		case 'C':
			config_dir = optarg;
			break;
		default:
			if (optopt != 0 && strchr("fFCob", optopt) != NULL)
				fprintf(stderr, "%s: option -%c needs an argument\n", progname, optopt);
			else
				fprintf(stderr, "%s: unknown option -%c\n", progname, optopt != 0 ? optopt : '?');
			usage();
		}
	}
	for (int i = optind; i < argc; i++)
		parse_address_list(&rcpts, argv[i], strlen(argv[i]));
	if (!from_headers && rcpts.n == 0) {
		fprintf(stderr, "%s: no recipients given (name them, or use -t)\n", progname);
		usage();
	}

	if (params_load(&params, config_dir, &error) < 0)
		die(EX_CONFIG, "%s", error);

	/* The default sender is the caller: the server knows the uid anyway. */
	if (sender_opt != NULL) {
		sender = xstrdup(sender_opt);
		if (strcmp(sender, "<>") == 0)
			sender[0] = '\0';
	} else {
		pw = getpwuid(getuid());
		if (pw == NULL)
			die(EX_NOUSER, "uid %lu has no account name", (unsigned long)getuid());
		sender = xasprintf("%s@%s", pw->pw_name, params.myhostname);
	}
	if (!valid_address(sender))
		die(EX_DATAERR, "bad sender address \"%s\"", sender);

	read_message(&input);
	split_message(&input, &msg);
	skip = xcalloc(msg.count + 1, sizeof *skip);
	if (from_headers)
		header_recipients(&msg, &rcpts, skip);
	if (rcpts.n == 0) {
		fprintf(stderr, "%s: no recipients in the message's To, Cc or Bcc fields\n", progname);
		usage();
	}
	utf8 = !is_ascii(sender);
	for (size_t i = 0; i < rcpts.n; i++) {
		if (!valid_address(rcpts.v[i]))
			die(EX_DATAERR, "bad recipient address \"%s\"", rcpts.v[i]);
		if (!is_ascii(rcpts.v[i]))
			utf8 = true; /* internationalised addresses need SMTPUTF8 */
	}
	if (full_name != NULL && !has_field(&msg, "From")) {
		/* The name goes out as a quoted string, control characters dropped. */
		struct buf q = BUF_INIT;

		buf_append_str(&q, "From: \"");
		for (const char *p = full_name; *p != '\0'; p++) {
			if ((unsigned char)*p < ' ' || *p == 0x7f)
				continue;
			if (*p == '"' || *p == '\\')
				buf_append_byte(&q, '\\');
			buf_append_byte(&q, (uint8_t)*p);
		}
		buf_printf(&q, "\" <%s>", sender);
		from_line = buf_steal(&q);
	}

	signal(SIGPIPE, SIG_IGN);
	socket_path = xasprintf("%s/%s", params.queue_directory, PICKUP_SOCKET);
	c.fd = sock_connect_unix(socket_path, CONNECT_TIMEOUT_MS, &error);
	if (c.fd < 0)
		die(EX_TEMPFAIL, "cannot reach the mail system: %s (is Yubin running?)", error);

	expect(&c, 2, "greeting");
	buf_append_str(&c.out, "EHLO localhost\r\n");
	expect(&c, 2, "EHLO");
	buf_printf(&c.out, "MAIL FROM:<%s>%s%s\r\n", sender, msg.eight_bit ? " BODY=8BITMIME" : "",
		   utf8 ? " SMTPUTF8" : "");
	expect(&c, 2, "sender refused");
	for (size_t i = 0; i < rcpts.n; i++) {
		char *what = xasprintf("recipient <%s> refused", rcpts.v[i]);

		buf_printf(&c.out, "RCPT TO:<%s>\r\n", rcpts.v[i]);
		expect(&c, 2, what);
		free(what);
	}
	buf_append_str(&c.out, "DATA\r\n");
	expect(&c, 3, "DATA");
	send_content(&c, &msg, skip, from_line);
	expect(&c, 2, "message refused");
	buf_append_str(&c.out, "QUIT\r\n");
	conn_flush(&c);
	close(c.fd);
	return EX_OK;
}
