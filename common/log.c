/* log: leveled logging to stderr, a log file and syslog. */
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

static struct {
	char ident[32];
	char path[4096];
	int fd;
	bool to_stderr, to_syslog, verbose, timestamps;
	int facility;
	void (*sink)(enum log_level, const char *);
} lg = {.ident = "scanengine", .fd = -1, .to_stderr = true};

static const char *const level_names[] = {
	[LOG_LVL_ERROR] = "ERROR",
	[LOG_LVL_WARN] = "WARNING",
	[LOG_LVL_INFO] = "INFO",
	[LOG_LVL_DEBUG] = "DEBUG",
};

static const int level_prio[] = {
	[LOG_LVL_ERROR] = LOG_ERR,
	[LOG_LVL_WARN] = LOG_WARNING,
	[LOG_LVL_INFO] = LOG_INFO,
	[LOG_LVL_DEBUG] = LOG_DEBUG,
};

int log_open(const struct log_options *opt)
{
	util_strlcpy(lg.ident, opt->ident ? opt->ident : "scanengine", sizeof(lg.ident));
	lg.to_stderr = opt->to_stderr;
	lg.verbose = opt->verbose;
	lg.timestamps = opt->timestamps;
	if (lg.to_syslog)
		closelog();
	lg.to_syslog = opt->to_syslog;
	lg.facility = opt->syslog_facility;
	if (lg.to_syslog)
		openlog(lg.ident, LOG_PID | LOG_NDELAY, opt->syslog_facility);
	lg.path[0] = '\0';
	util_close(&lg.fd);
	if (opt->file && *opt->file) {
		util_strlcpy(lg.path, opt->file, sizeof(lg.path));
		return log_reopen();
	}
	return 0;
}

int log_reopen(void)
{
	int fd;

	if (!lg.path[0])
		return 0;
	fd = open(lg.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0)
		return -errno;
	util_close(&lg.fd);
	lg.fd = fd;
	return 0;
}

void log_close(void)
{
	util_close(&lg.fd);
	lg.path[0] = '\0';
	if (lg.to_syslog)
		closelog();
	lg.to_syslog = false;
}

void log_before_close_fds(void)
{
	if (!lg.to_syslog)
		return;
	closelog();
	/* without LOG_NDELAY: the next line connects anew */
	openlog(lg.ident, LOG_PID, lg.facility);
}

int log_file_fd(void)
{
	return lg.fd;
}

void log_set_sink(void (*fn)(enum log_level, const char *))
{
	lg.sink = fn;
}

void log_emit(enum log_level lvl, const char *line)
{
	char buf[LOG_LINE_MAX + 128];
	char ts[40] = "";
	int n;

	if (lvl == LOG_LVL_DEBUG && !lg.verbose)
		return;
	if (lg.sink) {
		lg.sink(lvl, line);
		return;
	}
	if (lg.to_syslog)
		syslog(level_prio[lvl], "%s", line);
	if (lg.fd < 0 && !lg.to_stderr)
		return;
	if (lg.timestamps) {
		struct timespec now;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &now);
		localtime_r(&now.tv_sec, &tm);
		n = (int)strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
		snprintf(ts + n, sizeof(ts) - (size_t)n, ".%03ld ", now.tv_nsec / 1000000L);
	}
	n = snprintf(buf, sizeof(buf), "%s%s[%d]: %s: %s\n", ts, lg.ident, (int)getpid(),
		     level_names[lvl], line);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf)) {
		n = sizeof(buf) - 1;
		buf[n - 1] = '\n';
	}
	/* One write per line, so lines of concurrent processes do not mix. */
	if (lg.fd >= 0 && write(lg.fd, buf, (size_t)n) < 0) {
		/* nowhere better to report it */
	}
	if (lg.to_stderr && write(STDERR_FILENO, buf, (size_t)n) < 0) {
		/* ditto */
	}
}

void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	int saved = errno;

	if (lvl == LOG_LVL_DEBUG && !lg.verbose)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	log_emit(lvl, line);
	errno = saved;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}

void fatal(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERROR, fmt, ap);
	va_end(ap);
	_exit(status);
}
