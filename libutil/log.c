/* log.c - the diagnostics API: formatting, levels and sinks. */
#include "config.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

static const char *log_prog = "yubin";
static enum log_sink log_sink_kind = LOG_SINK_STDERR;
static int log_facility = LOG_MAIL;
static int log_file_fd = -1;
static bool log_verbose;
static log_fatal_hook_fn *log_hook;

static const struct {
	const char *name;
	int syslog_priority;
} log_levels[] = {
	[LOG_LEVEL_DEBUG] = { "debug", LOG_DEBUG },
	[LOG_LEVEL_INFO] = { "info", LOG_INFO },
	[LOG_LEVEL_WARN] = { "warning", LOG_WARNING },
	[LOG_LEVEL_FATAL] = { "fatal", LOG_CRIT },
	[LOG_LEVEL_PANIC] = { "panic", LOG_ALERT },
};

static const struct {
	const char *name;
	int value;
} log_facilities[] = {
	{ "mail", LOG_MAIL }, { "daemon", LOG_DAEMON }, { "user", LOG_USER },
	{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 },
	{ "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
	{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
};

void log_init(const char *program, enum log_sink sink)
{
	log_prog = program;
	log_sink_kind = sink;
	if (sink == LOG_SINK_SYSLOG)
		openlog(program, LOG_PID | LOG_NDELAY, log_facility);
}

int log_set_syslog_facility(const char *name)
{
	for (size_t i = 0; i < sizeof log_facilities / sizeof log_facilities[0]; i++) {
		if (strcasecmp(name, log_facilities[i].name) == 0) {
			log_facility = log_facilities[i].value;
			if (log_sink_kind == LOG_SINK_SYSLOG)
				openlog(log_prog, LOG_PID | LOG_NDELAY, log_facility);
			return 0;
		}
	}
	return -1;
}

int log_set_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

	if (fd < 0)
		return -1;
	if (log_file_fd >= 0)
		close(log_file_fd);
	log_file_fd = fd;
	log_sink_kind = LOG_SINK_FILE;
	return 0;
}

void log_set_verbose(bool on)
{
	log_verbose = on;
}

const char *log_program(void)
{
	return log_prog;
}

void log_set_fatal_hook(log_fatal_hook_fn *hook)
{
	log_hook = hook;
}

const char *log_level_name(enum log_level level)
{
	return log_levels[level].name;
}

int log_level_parse(const char *name, enum log_level *level_r)
{
	for (size_t i = 0; i < sizeof log_levels / sizeof log_levels[0]; i++) {
		if (strcmp(name, log_levels[i].name) == 0) {
			*level_r = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

/* write_all - write a whole line, retrying on EINTR; logging never fails loudly. */
static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

/* The channel format master reads: "<level>text", one datagram per line. */
static void emit_channel(enum log_level level, const char *text)
{
	char line[LOG_LINE_MAX + 8];
	int n = snprintf(line, sizeof line, "<%d>%s", (int)level, text);

	if (n < 0)
		return;
	if ((size_t)n >= sizeof line)
		n = sizeof line - 1;
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return; /* master is gone; nothing else can be told */
}

void log_write_line(enum log_level level, const char *tag, const char *text)
{
	char line[LOG_LINE_MAX + 256];
	const char *prefix = level == LOG_LEVEL_INFO ? "" : log_levels[level].name;
	const char *sep = level == LOG_LEVEL_INFO ? "" : ": ";
	int n;

	switch (log_sink_kind) {
	case LOG_SINK_SYSLOG:
		/* The tag carries the original program[pid]; syslog adds nothing. */
		openlog(tag, LOG_NDELAY, log_facility);
		syslog(log_levels[level].syslog_priority, "%s%s%s", prefix, sep, text);
		openlog(log_prog, LOG_PID | LOG_NDELAY, log_facility);
		return;
	case LOG_SINK_FILE: {
		char stamp[32];
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
		n = snprintf(line, sizeof line, "%s.%03ldZ %s: %s%s%s\n", stamp,
			     ts.tv_nsec / 1000000L, tag, prefix, sep, text);
		break;
	}
	default:
		n = snprintf(line, sizeof line, "%s: %s%s%s\n", tag, prefix, sep, text);
		break;
	}
	if (n < 0)
		return;
	if ((size_t)n >= sizeof line) {
		n = sizeof line - 1;
		line[n - 1] = '\n';
	}
	write_all(log_sink_kind == LOG_SINK_FILE ? log_file_fd : STDERR_FILENO, line, (size_t)n);
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char text[LOG_LINE_MAX];
	char tag[128];
	int saved_errno = errno;

	if (level == LOG_LEVEL_DEBUG && !log_verbose)
		return;
	vsnprintf(text, sizeof text, fmt, ap);
	/* One event, one line: a newline inside a message would forge a second one. */
	for (char *p = text; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (log_sink_kind == LOG_SINK_CHANNEL) {
		emit_channel(level, text);
	} else if (log_sink_kind == LOG_SINK_SYSLOG) {
		const char *prefix = level == LOG_LEVEL_INFO ? "" : log_levels[level].name;
		syslog(log_levels[level].syslog_priority, "%s%s%s", prefix,
		       level == LOG_LEVEL_INFO ? "" : ": ", text);
	} else {
		snprintf(tag, sizeof tag, "%s[%ld]", log_prog, (long)getpid());
		log_write_line(level, tag, text);
	}
	errno = saved_errno;
}

#define LOG_FN(fn, level)                          \
	void fn(const char *fmt, ...)              \
	{                                          \
		va_list ap;                        \
		va_start(ap, fmt);                 \
		log_vmsg(level, fmt, ap);          \
		va_end(ap);                        \
	}
LOG_FN(log_debug, LOG_LEVEL_DEBUG)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_warn, LOG_LEVEL_WARN)

/* die - shared tail of fatal and panic: the hook (tests) or exit/abort. */
static _Noreturn void die(enum log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
static _Noreturn void die(enum log_level level, const char *fmt, va_list ap)
{
	char text[LOG_LINE_MAX];
	va_list copy;

	va_copy(copy, ap);
	vsnprintf(text, sizeof text, fmt, copy);
	va_end(copy);
	log_vmsg(level, fmt, ap);
	if (log_hook != NULL)
		log_hook(level, text);
	if (level == LOG_LEVEL_PANIC)
		abort();
	exit(1);
}

void log_fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	die(LOG_LEVEL_FATAL, fmt, ap);
}

void log_panic(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	die(LOG_LEVEL_PANIC, fmt, ap);
}
