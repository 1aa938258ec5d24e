/* test_notify: unit tests of common/notify.c (cmocka).
 *
 * A real AF_UNIX datagram socket stands in for the service manager, bound
 * at a filesystem path and in the abstract namespace ('@' in
 * NOTIFY_SOCKET), exactly as systemd passes it. */
#include "common/notify.h"
#include "common/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

struct fx {
	char dir[64];
	char path[128];
	int sock;
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_notify.XXXXXX");
	if (!mkdtemp(fx->dir)) {
		free(fx);
		return -1;
	}
	snprintf(fx->path, sizeof(fx->path), "%s/notify", fx->dir);
	fx->sock = -1;
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	util_close(&fx->sock);
	unlink(fx->path);
	rmdir(fx->dir);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	free(fx);
	return 0;
}

static int count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) != -1;
	return n;
}

/* Bind a datagram socket at path, or in the abstract namespace when name
 * starts with '@' (the address is then exactly the name's bytes, no NUL). */
static int bind_dgram(const char *name)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(name);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);

	assert_true(fd >= 0);
	assert_true(len < sizeof(sa.sun_path));
	memcpy(sa.sun_path, name, len);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	else
		salen++; /* with the NUL, as usual for paths */
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, salen), 0);
	return fd;
}

static void expect_datagram(int sock, const char *want)
{
	char buf[512];
	ssize_t n = recv(sock, buf, sizeof(buf), 0);

	assert_int_equal(n, (ssize_t)strlen(want)); /* no NUL on the wire */
	assert_memory_equal(buf, want, strlen(want));
	/* one datagram per call */
	assert_int_equal(recv(sock, buf, sizeof(buf), 0), -1);
	assert_int_equal(errno, EAGAIN);
}

static void test_not_under_systemd(void **state)
{
	(void)state;
	assert_int_equal(notify_send("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	assert_int_equal(notify_send("READY=1"), 0);
}

static void test_path_socket(void **state)
{
	struct fx *fx = *state;
	int before;

	fx->sock = bind_dgram(fx->path);
	setenv("NOTIFY_SOCKET", fx->path, 1);
	before = count_fds();
	assert_int_equal(notify_send("READY=1\nSTATUS=loaded 3 signatures"), 0);
	assert_int_equal(count_fds(), before); /* its socket is closed */
	expect_datagram(fx->sock, "READY=1\nSTATUS=loaded 3 signatures");
	assert_int_equal(notify_send("WATCHDOG=1"), 0);
	expect_datagram(fx->sock, "WATCHDOG=1");
	assert_int_equal(notify_send("STOPPING=1"), 0);
	expect_datagram(fx->sock, "STOPPING=1");
}

static void test_abstract_socket(void **state)
{
	struct fx *fx = *state;
	char name[64];
	int decoy;

	/* the name must match exactly: a socket whose name is a prefix-plus-
	 * NUL must not receive it (address length counts) */
	snprintf(name, sizeof(name), "@test_notify/%d", (int)getpid());
	fx->sock = bind_dgram(name);
	{
		char longer[80];

		snprintf(longer, sizeof(longer), "%s.x", name);
		decoy = bind_dgram(longer);
	}
	setenv("NOTIFY_SOCKET", name, 1);
	assert_int_equal(notify_send("READY=1"), 0);
	expect_datagram(fx->sock, "READY=1");
	{
		char buf[16];

		assert_int_equal(recv(decoy, buf, sizeof(buf), 0), -1);
		assert_int_equal(errno, EAGAIN);
	}
	close(decoy);

	/* nobody listening in the abstract namespace */
	snprintf(name, sizeof(name), "@test_notify/none/%d", (int)getpid());
	setenv("NOTIFY_SOCKET", name, 1);
	assert_int_equal(notify_send("READY=1"), -ECONNREFUSED);
}

static void test_errors(void **state)
{
	struct fx *fx = *state;
	char longp[200];
	int before = count_fds();

	/* not absolute, not abstract */
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	assert_int_equal(notify_send("READY=1"), -EINVAL);
	setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
	assert_int_equal(notify_send("READY=1"), -EINVAL);

	/* longer than sun_path */
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	setenv("NOTIFY_SOCKET", longp, 1);
	assert_int_equal(notify_send("READY=1"), -EINVAL);

	/* no such socket */
	setenv("NOTIFY_SOCKET", fx->path, 1);
	assert_int_equal(notify_send("READY=1"), -ENOENT);

	/* a path that is not a socket */
	setenv("NOTIFY_SOCKET", "/etc/passwd", 1);
	assert_int_equal(notify_send("READY=1"), -ECONNREFUSED);

	assert_int_equal(count_fds(), before); /* nothing leaked on error paths */
}

/* ---- watchdog ---- */

static void test_watchdog(void **state)
{
	char pid[32];

	(void)state;
	assert_true(notify_watchdog_usec() == 0); /* unset */

	setenv("WATCHDOG_USEC", "30000000", 1);
	assert_true(notify_watchdog_usec() == 30000000u); /* no PID: ours */

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	assert_true(notify_watchdog_usec() == 30000000u);

	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	assert_true(notify_watchdog_usec() == 0); /* meant for another process */

	setenv("WATCHDOG_PID", "1", 1);
	assert_true(notify_watchdog_usec() == 0);

	setenv("WATCHDOG_PID", "abc", 1);
	assert_true(notify_watchdog_usec() == 0);
	setenv("WATCHDOG_PID", "", 1);
	assert_true(notify_watchdog_usec() == 0);
	setenv("WATCHDOG_PID", "-1", 1);
	assert_true(notify_watchdog_usec() == 0);
	unsetenv("WATCHDOG_PID");

	static const char *const bad[] = {"",	"abc",	"12x", "-5",
					  "+5", "0x10", "1.5", "99999999999999999999999"};

	for (size_t i = 0; i < SE_ARRAY_SIZE(bad); i++) {
		setenv("WATCHDOG_USEC", bad[i], 1);
		if (notify_watchdog_usec() != 0)
			fail_msg("WATCHDOG_USEC=\"%s\" gave non-zero", bad[i]);
	}
	setenv("WATCHDOG_USEC", "0", 1);
	assert_true(notify_watchdog_usec() == 0);
	setenv("WATCHDOG_USEC", "18446744073709551615", 1);
	assert_true(notify_watchdog_usec() == UINT64_MAX);
	setenv("WATCHDOG_USEC", "1", 1);
	assert_true(notify_watchdog_usec() == 1);
}

/* The PID check is against the caller: a forked child (not the process
 * systemd started) gets 0. */
static void test_watchdog_child(void **state)
{
	char pid[32];
	int p[2];
	pid_t child;
	uint64_t v = 99;

	(void)state;
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	setenv("WATCHDOG_USEC", "5000000", 1);
	assert_int_equal(pipe(p), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		uint64_t got = notify_watchdog_usec();

		_exit(write(p[1], &got, sizeof(got)) == sizeof(got) ? 0 : 1);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &v, sizeof(v)), sizeof(v));
	close(p[0]);
	assert_int_equal(waitpid(child, NULL, 0), child);
	assert_true(v == 0);
	assert_true(notify_watchdog_usec() == 5000000u);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_not_under_systemd), T(test_path_socket),
		T(test_abstract_socket),   T(test_errors),
		T(test_watchdog),	   T(test_watchdog_child),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
