/* scanengined: command line, configuration, daemonizing. */
#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "scanengine/engine.h"
#include "scanengine/supervisor.h"
#include "scanengine/version.h"
#include "fanotify/onaccess.h"
#include "updater/policy.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f, "Usage: scanengined [OPTIONS]\n"
		   "\n"
		   "On-access and on-demand malware scanning service on libclamav, speaking\n"
		   "the clamd socket protocol.\n"
		   "\n"
		   "  -c, --config-file FILE  read FILE (default " CONFIG_DEFAULT_PATH ")\n"
		   "  -F, --foreground        stay in the foreground, log to stderr too\n"
		   "  -t, --check-config      check the configuration file and exit\n"
		   "  -V, --version           print the version and exit\n"
		   "  -h, --help              this help\n"
		   "\n"
		   "Signals: SIGTERM/SIGINT stop, SIGUSR2 reloads definitions, SIGHUP reopens\n"
		   "the log file. Exit status: 0 stopped cleanly, 1 start-up failed, 2 usage\n"
		   "or configuration error.\n");
}

static void open_logs(const struct config *cfg, bool to_stderr)
{
	struct log_options lo = {
		.ident = "scanengined",
		.file = cfg->log_file,
		.to_stderr = to_stderr,
		.to_syslog = cfg->log_syslog,
		.syslog_facility = cfg->log_facility,
		.verbose = cfg->log_verbose,
		.timestamps = cfg->log_time,
	};
	int r = log_open(&lo);

	if (r < 0) {
		fprintf(stderr, "scanengined: LogFile %s: %s\n", cfg->log_file, strerror(-r));
		exit(1);
	}
}

/* Fork into the background. The parent waits until the child reports that
 * the engine is loaded and the socket accepts (or why it failed), so the
 * exit status of `scanengined` tells the truth about the start. */
static int daemonize(int *ready_fd)
{
	int pfd[2];
	pid_t pid;
	char buf[600];
	ssize_t n;
	size_t got = 0;
	int status;

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		fprintf(stderr, "scanengined: pipe: %s\n", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "scanengined: fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		int null;

		close(pfd[0]);
		setsid();
		if (chdir("/") < 0) {
			/* not fatal: paths are absolute */
		}
		null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
			close(null);
		}
		*ready_fd = pfd[1];
		return 0;
	}
	close(pfd[1]);
	while (got < sizeof(buf) - 1 && (n = read(pfd[0], buf + got, sizeof(buf) - 1 - got)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		got += (size_t)n;
		if (memchr(buf, '\n', got))
			break;
	}
	buf[got] = '\0';
	if (!strncmp(buf, "OK", 2)) {
		/* running, but degraded: say so on the way out */
		buf[strcspn(buf, "\n")] = '\0';
		if (buf[2] == ' ')
			fprintf(stderr,
				"scanengined: warning: started without a working engine: %s\n",
				buf + 3);
		_exit(0);
	}
	buf[strcspn(buf, "\n")] = '\0';
	if (!strncmp(buf, "ERR ", 4)) {
		fprintf(stderr, "scanengined: %s\n", buf + 4);
	} else {
		waitpid(pid, &status, 0);
		fprintf(stderr, "scanengined: the service exited during start-up (status 0x%x)\n",
			status);
	}
	_exit(1);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config-file", required_argument, NULL, 'c'},
		{"foreground", no_argument, NULL, 'F'},
		{"check-config", no_argument, NULL, 't'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *path = NULL;
	bool foreground = false, check = false;
	struct config cfg = {0};
	char err[CONFIG_ERR_MAX];
	int c, ready_fd = -1, status;
	struct stat st;

	while ((c = getopt_long(argc, argv, "c:FtVh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'F':
			foreground = true;
			break;
		case 't':
			check = true;
			break;
		case 'V':
			printf("scanengined %s (libclamav %s)\n", SCANENGINE_VERSION,
			       engine_version());
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "scanengined: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	/* Without --config-file the default file is optional. */
	if (!path && stat(CONFIG_DEFAULT_PATH, &st) == 0)
		path = CONFIG_DEFAULT_PATH;
	if (config_load(&cfg, path, err) < 0) {
		fprintf(stderr, "scanengined: %s\n", err);
		return 2;
	}
	{
		/* the mirrors are checked with the rest of the configuration */
		struct upd_mirrors m;
		char merr[256];
		int r = upd_mirrors_build((const char *const *)cfg.private_mirror.items,
					  (const char *const *)cfg.database_mirror.items, &m, merr);

		if ((r && r != -ENOENT) || oa_check_config(&cfg, merr)) {
			fprintf(stderr, "scanengined: %s: %s\n",
				path ? path : "(built-in defaults)", merr);
			config_free(&cfg);
			return 2;
		}
	}
	if (check) {
		printf("%s: OK\n", path ? path : "(built-in defaults)");
		config_free(&cfg);
		return 0;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "scanengined: must be started as root (it drops privileges for "
				"scanning itself)\n");
		config_free(&cfg);
		return 1;
	}
	foreground = foreground || cfg.foreground;
	if (!foreground && daemonize(&ready_fd) < 0)
		return 1;
	open_logs(&cfg, foreground);
	status = supervisor_run(&cfg, ready_fd);
	config_free(&cfg);
	return status;
}
