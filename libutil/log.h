/* log.h - one diagnostics API for every Yubin program.
 *
 * Levels have fixed meanings:
 *   log_panic  our own bug (an invariant broke): logs and aborts.
 *   log_fatal  the environment failed (missing file, no memory, bad config):
 *              logs and exits with status 1.
 *   log_warn   something is wrong but the program goes on.
 *   log_info   a normal event worth a line.
 *   log_debug  only when verbose logging is on.
 * Each line carries the program name and pid. Strings that came from a
 * client must go through sanitize.h before they reach a log line.
 *
 * Sinks: stderr (foreground and tests), syslog (facility mail by default),
 * or a datagram channel to master (a daemon's fd 2 when master started it;
 * master then writes the line to its own sink), or a file.
 */
#ifndef YB_LOG_H
#define YB_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_FATAL, LOG_LEVEL_PANIC };

enum log_sink { LOG_SINK_STDERR, LOG_SINK_SYSLOG, LOG_SINK_CHANNEL, LOG_SINK_FILE };

/* log_init - set the program name ("smtpd") and the sink. */
void log_init(const char *program, enum log_sink sink);

/* log_set_syslog_facility - "mail", "local0".."local7", "daemon"; -1 if unknown. */
int log_set_syslog_facility(const char *name);

/* log_set_file - append lines to path (opened now, kept open); -1 on error. */
int log_set_file(const char *path);

/* log_set_verbose - let log_debug lines through. */
void log_set_verbose(bool on);

/* log_program - the name given to log_init. */
const char *log_program(void);

/* log_write_line - emit an already formatted line from another process
 * (used by master to forward its children's lines). */
void log_write_line(enum log_level level, const char *tag, const char *text);

/* log_level_name / log_level_parse - "info" <-> LOG_LEVEL_INFO. */
const char *log_level_name(enum log_level level);
int log_level_parse(const char *name, enum log_level *level_r);

/* log_set_fatal_hook - called instead of exit(1) / abort(), for tests. The
 * hook must not return (it can longjmp). */
typedef void log_fatal_hook_fn(enum log_level level, const char *message);
void log_set_fatal_hook(log_fatal_hook_fn *hook);

/* The format attributes let gcc and clang check every call's arguments
 * against its format string; both compilers we build with support them. */
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void log_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#endif
