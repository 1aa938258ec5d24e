/* fuzz_control: arbitrary client bytes (with an optional descriptor) into
 * the clamd-protocol server, in-process, with a real event loop and socket.
 * No engine is loaded, so scan commands are answered with an error at once;
 * path commands still go through the walker. The server must answer or
 * close, never crash, hang or leak. */
#include "common/config.h"
#include "common/evloop.h"
#include "common/log.h"
#include "common/util.h"
#include "scanengine/control.h"
#include "scanengine/pool.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct {
	struct config cfg;
	struct evloop *ev;
	struct pool *pool;
	struct control *ctl;
	struct sockaddr_un sa;
} f;

/* Path commands walk what they name: ExcludePath everything outside the
 * fuzz directory, so "SCAN /" does not crawl the machine for every input.
 * ERE has no negation; "not under P" is: some prefix of P, then a
 * different character or the end. */
static void exclude_all_but(const char *dir)
{
	size_t n = strlen(dir);

	f.cfg.exclude_path.items = calloc(n, sizeof(char *));
	if (!f.cfg.exclude_path.items)
		abort();
	for (size_t i = 1; i < n; i++) {
		char *re;

		if (asprintf(&re, "^%.*s([^%c]|$)", (int)i, dir, dir[i]) < 0)
			abort();
		f.cfg.exclude_path.items[f.cfg.exclude_path.n++] = re;
	}
}

static void setup(void)
{
	char err[512];
	struct log_options lo = {.ident = "fuzz"};
	/* fixed, so that seeds can name files in it */
	const char *dir = "/tmp/scanengine-fuzz";

	log_open(&lo); /* quiet */
	mkdir(dir, 0755);
	unlink("/tmp/scanengine-fuzz/s");
	if (config_defaults(&f.cfg) < 0)
		abort();
	free(f.cfg.local_socket);
	if (asprintf(&f.cfg.local_socket, "%s/s", dir) < 0)
		abort();
	f.cfg.max_threads = 2;
	exclude_all_but(dir);
	{
		char *sub, *file;

		if (asprintf(&sub, "%s/d", dir) < 0 || asprintf(&file, "%s/d/f", dir) < 0)
			abort();
		mkdir(sub, 0755);
		close(open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
		free(sub);
		free(file);
	}
	f.ev = evloop_new();
	f.pool = pool_new(&f.cfg, NULL, f.ev, NULL);
	f.ctl = control_new(&f.cfg, f.ev, f.pool, (gid_t)-1, NULL);
	if (!f.ev || !f.pool || !f.ctl || control_listen(f.ctl, err) < 0)
		abort();
	control_start(f.ctl);
	f.sa.sun_family = AF_UNIX;
	util_strlcpy(f.sa.sun_path, f.cfg.local_socket, sizeof(f.sa.sun_path));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int c, fd = -1;
	char buf[4096];
	bool eof = false;

	if (!f.ctl)
		setup();
	c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&f.sa, sizeof(f.sa)) < 0)
		abort();
	/* first byte: where (if at all) a descriptor rides along */
	if (size && data[0] & 0x80)
		fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	{
		size_t at = size ? (data[0] & 0x7f) : 0;
		const uint8_t *p = size ? data + 1 : data;
		size_t len = size ? size - 1 : 0;

		if (at > len)
			at = len;
		if (at && send(c, p, at, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			/* the server may have closed already */
		}
		if (len > at) {
			struct iovec iov = {.iov_base = (void *)(p + at), .iov_len = len - at};

			util_sendmsg_fd(c, &iov, 1, fd, MSG_DONTWAIT);
		}
	}
	util_close(&fd);
	shutdown(c, SHUT_WR);
	util_set_nonblock(c, true);
	/* serve until the server closes the connection (bounded) */
	for (int i = 0; i < 2000 && !eof; i++) {
		ssize_t n;

		evloop_run_once(f.ev, 1);
		control_flush(f.ctl);
		while ((n = recv(c, buf, sizeof(buf), 0)) > 0)
			;
		eof = n == 0;
	}
	close(c);
	/* a connection still open here is waiting for a timeout; close it
	 * from the server side so state does not pile up between inputs */
	for (int i = 0; i < 10 && control_connections(f.ctl); i++) {
		evloop_run_once(f.ev, 0);
		control_flush(f.ctl);
	}
	return 0;
}
