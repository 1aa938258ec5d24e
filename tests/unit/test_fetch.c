/* test_fetch: unit tests of updater/fetch.c (cmocka) against file:// and a
 * small HTTP server on a loopback port in a thread of this process (each
 * test scripts what it answers): the header range, statuses and what the
 * policy makes of them, Retry-After, a stalled body, a closed port, the
 * size bound. The real mirror (nginx) is in tests/integration. */
#include "updater/fetch.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

/* ---- a scripted HTTP server ---- */

struct srv {
	int lfd;
	int port;
	const char *head; /* status line and headers, without the blank line */
	size_t body_len;  /* body bytes to send ('A'..) */
	size_t send_only; /* send only this many body bytes, then stall; 0: all */
	unsigned int stall_ms;
	char request[2048]; /* the last request's head */
	unsigned int requests;
	pthread_t th;
};

static void *serve(void *arg)
{
	struct srv *s = arg;

	for (;;) {
		int c = accept(s->lfd, NULL, NULL);
		char hdr[512], *body;
		size_t n, got = 0;
		ssize_t r;

		if (c < 0)
			return NULL;
		while (got < sizeof(s->request) - 1 &&
		       (r = read(c, s->request + got, sizeof(s->request) - 1 - got)) > 0) {
			got += (size_t)r;
			s->request[got] = '\0';
			if (strstr(s->request, "\r\n\r\n"))
				break;
		}
		s->requests++;
		n = (size_t)snprintf(hdr, sizeof(hdr), "%s\r\nContent-Length: %zu\r\n\r\n", s->head,
				     s->body_len);
		body = malloc(s->body_len + 1);
		memset(body, 'A', s->body_len);
		util_write_all(c, hdr, n);
		util_write_all(c, body, s->send_only ? s->send_only : s->body_len);
		if (s->stall_ms)
			usleep(s->stall_ms * 1000);
		free(body);
		close(c);
	}
}

static struct srv *srv_start(const char *head, size_t body_len)
{
	struct srv *s = calloc(1, sizeof(*s));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);

	s->head = head;
	s->body_len = body_len;
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->lfd, 8), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&s->th, NULL, serve, s), 0);
	return s;
}

static void srv_stop(struct srv *s)
{
	shutdown(s->lfd, SHUT_RDWR);
	close(s->lfd);
	pthread_join(s->th, NULL);
	free(s);
}

static const struct fetch_opts opts = {
	.connect_timeout_s = 2, .receive_timeout_s = 1, .max_attempts = 1};

static int tmpfile_fd(void)
{
	char path[] = "/tmp/test_fetch.XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	return fd;
}

static off_t fd_size(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return st.st_size;
}

static int get(struct srv *s, const char *leaf, bool head_only, uint64_t max,
	       struct fetch_result *r, char *err, int fd, const struct fetch_opts *o)
{
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/%s", s->port, leaf);
	return fetch_url(o ? o : &opts, url, fd, head_only, max, r, err);
}

/* ---- tests ---- */

static void test_http_range_and_whole(void **state)
{
	struct srv *s = srv_start("HTTP/1.1 206 Partial Content", 512);
	struct fetch_result r;
	char err[FETCH_ERR_LEN];
	int fd = tmpfile_fd();

	(void)state;
	assert_int_equal(get(s, "daily.cvd", true, 0, &r, err, fd, NULL), 0);
	assert_non_null(strstr(s->request, "Range: bytes=0-511"));
	assert_non_null(strstr(s->request, "GET /daily.cvd "));
	assert_int_equal(r.status, 206);
	assert_int_equal(r.bytes, 512);
	assert_int_equal(fd_size(fd), 512);
	srv_stop(s);

	/* a server that ignores the range: cut after the header, still ok */
	s = srv_start("HTTP/1.1 200 OK", 100000);
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(get(s, "daily.cvd", true, 0, &r, err, fd, NULL), 0);
	assert_int_equal(fd_size(fd), 512);

	/* the whole body, no range asked */
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(get(s, "daily.cvd", false, 0, &r, err, fd, NULL), 0);
	assert_null(strstr(s->request, "Range:"));
	assert_int_equal(r.bytes, 100000);
	assert_int_equal(fd_size(fd), 100000);

	/* over the bound */
	assert_int_equal(get(s, "daily.cvd", false, 4096, &r, err, fd, NULL), -EFBIG);
	assert_int_equal(r.kind, UPD_FAIL_BAD_DATA);
	srv_stop(s);
	close(fd);
}

static void test_http_statuses(void **state)
{
	static const struct {
		const char *head;
		int ret;
		enum upd_failure kind;
		uint64_t retry_after;
		const char *says;
	} cases[] = {
		{"HTTP/1.1 404 Not Found", -ENOENT, UPD_FAIL_BAD_DATA, 0, "not found (404)"},
		{"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 120", -EBUSY, UPD_FAIL_RATE_LIMIT,
		 120, "rate limited (429)"},
		{"HTTP/1.1 429 Too Many Requests", -EBUSY, UPD_FAIL_RATE_LIMIT, 0, "429"},
		{"HTTP/1.1 403 Forbidden", -EACCES, UPD_FAIL_FORBIDDEN, 0, "forbidden (403)"},
		{"HTTP/1.1 503 Service Unavailable", -EIO, UPD_FAIL_NETWORK, 0, "server error 503"},
		{"HTTP/1.1 302 Found", -EPROTO, UPD_FAIL_BAD_DATA, 0, "unexpected HTTP status 302"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct srv *s = srv_start(cases[i].head, 10);
		struct fetch_result r;
		char err[FETCH_ERR_LEN];
		int fd = tmpfile_fd();

		assert_int_equal(get(s, "main.cvd", false, 0, &r, err, fd, NULL), cases[i].ret);
		assert_int_equal(r.kind, cases[i].kind);
		assert_int_equal(r.retry_after_s, cases[i].retry_after);
		assert_non_null(strstr(err, cases[i].says));
		assert_non_null(strstr(err, "/main.cvd"));
		close(fd);
		srv_stop(s);
	}
}

static void test_http_stall_and_retries(void **state)
{
	struct srv *s = srv_start("HTTP/1.1 200 OK", 4096);
	struct fetch_opts two = opts;
	struct fetch_result r;
	char err[FETCH_ERR_LEN];
	uint64_t t0;
	int fd = tmpfile_fd();

	(void)state;
	/* headers and 100 bytes, then nothing for 4 s: ReceiveTimeout 1 */
	s->send_only = 100;
	s->stall_ms = 4000;
	two.max_attempts = 2;
	t0 = util_now_ms();
	assert_int_equal(get(s, "daily.cvd", false, 0, &r, err, fd, &two), -ETIMEDOUT);
	assert_int_equal(r.kind, UPD_FAIL_NETWORK);
	assert_int_equal(r.attempts, 2);
	/* the one-connection server still sleeps in the first: the second
	 * try got nothing at all and stalled too */
	assert_int_equal(r.bytes, 100);
	assert_true(util_now_ms() - t0 < 8000);
	assert_non_null(strstr(err, "timed out"));
	/* a failed try leaves no partial body behind the next */
	assert_true(fd_size(fd) <= 100);
	close(fd);
	srv_stop(s);
}

static void test_http_refused(void **state)
{
	struct srv *s = srv_start("HTTP/1.1 200 OK", 1);
	struct fetch_opts three = opts;
	struct fetch_result r;
	char err[FETCH_ERR_LEN], url[64];
	int port = s->port, fd = tmpfile_fd();

	(void)state;
	srv_stop(s); /* the port is closed now */
	three.max_attempts = 3;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/daily.cvd", port);
	assert_int_equal(fetch_url(&three, url, fd, true, 0, &r, err), -ECONNREFUSED);
	assert_int_equal(r.kind, UPD_FAIL_NETWORK);
	assert_int_equal(r.attempts, 3);
	assert_non_null(strstr(err, "cannot connect"));
	assert_int_equal(fetch_url(&opts, "ftp://example.org/x", fd, true, 0, &r, err), -EINVAL);
	close(fd);
}

static void test_file_url(void **state)
{
	char dir[] = "/tmp/test_fetch_dir.XXXXXX", path[128], url[160], err[FETCH_ERR_LEN];
	struct fetch_result r;
	FILE *f;
	int fd = tmpfile_fd();

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/main.cvd", dir);
	f = fopen(path, "w");
	for (int i = 0; i < 3000; i++)
		fputc('a' + i % 26, f);
	fclose(f);
	snprintf(url, sizeof(url), "file://%s", path);
	assert_int_equal(fetch_url(&opts, url, fd, true, 0, &r, err), 0);
	assert_int_equal(r.status, 206);
	assert_int_equal(fd_size(fd), 512);
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(fetch_url(&opts, url, fd, false, 0, &r, err), 0);
	assert_int_equal(r.bytes, 3000);
	assert_int_equal(fetch_url(&opts, url, fd, false, 1000, &r, err), -EFBIG);
	snprintf(url, sizeof(url), "file://%s/daily.cvd", dir);
	assert_int_equal(fetch_url(&opts, url, fd, true, 0, &r, err), -ENOENT);
	assert_int_equal(r.status, 404);
	assert_int_equal(r.kind, UPD_FAIL_BAD_DATA);
	assert_non_null(strstr(err, "daily.cvd"));
	unlink(path);
	rmdir(dir);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_range_and_whole),
		cmocka_unit_test(test_http_statuses),
		cmocka_unit_test(test_http_stall_and_retries),
		cmocka_unit_test(test_http_refused),
		cmocka_unit_test(test_file_url),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
