/* log: leveled logging to stderr, a log file and syslog.
 *
 * One logger per process. Children that have no file access (workers) use
 * log_set_sink() to forward lines over their IPC socket instead. */
#ifndef SE_COMMON_LOG_H
#define SE_COMMON_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

struct log_options {
	const char *ident;   /* program name in lines and syslog */
	const char *file;    /* append here, or NULL */
	bool to_stderr;	     /* also write to stderr */
	bool to_syslog;	     /* also send to syslog */
	int syslog_facility; /* LOG_LOCAL6 etc. */
	bool verbose;	     /* include LOG_LVL_DEBUG */
	bool timestamps;     /* prefix lines with local time (file/stderr) */
};

/* log_open: configure the process logger. The file is opened O_APPEND and
 * O_CLOEXEC. Returns 0 or -errno (the file could not be opened; the other
 * sinks are still set). */
int log_open(const struct log_options *opt);

/* log_reopen: reopen the log file (after rotation). Returns 0 or -errno. */
int log_reopen(void);

/* log_close: close the file and syslog; later lines go to stderr only if it
 * was configured. */
void log_close(void);

/* log_before_close_fds: in a child about to close every descriptor but
 * log_file_fd() and a few of its own: let go of the syslog connection
 * (the next line opens a new one), so that a later descriptor of the same
 * number is never written to as the log. */
void log_before_close_fds(void);

/* log_file_fd: descriptor of the log file or -1 (kept open across fork). */
int log_file_fd(void);

/* log_set_sink: route every line to fn (level, text) instead of the
 * configured outputs; NULL restores them. Used by sandboxed children. */
void log_set_sink(void (*fn)(enum log_level, const char *));

/* log_msg: format and emit one line at level. */
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* log_vmsg: va_list form of log_msg. */
void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* log_emit: emit an already formatted line (no formatting applied). */
void log_emit(enum log_level lvl, const char *line);

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

/* fatal: log at error level and _exit(status). Only at start-up or inside a
 * child (DESIGN.md section 6). */
void fatal(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

#endif
