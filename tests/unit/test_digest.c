/* Unit tests for common/digest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/digest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int memfd_with(const void *data, size_t len)
{
	int fd = memfd_create("digest-test", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	return fd;
}

static void hex_of_fd(int fd, char *hex)
{
	unsigned char md[DIGEST_SHA256_LEN];
	uint64_t size = 0;

	assert_int_equal(digest_sha256_fd(fd, 0, md, &size), 0);
	digest_hex(md, sizeof(md), hex);
}

static void test_known_vectors(void **state)
{
	char hex[2 * DIGEST_SHA256_LEN + 1];
	int fd;

	(void)state;
	fd = memfd_with("abc", 3);
	hex_of_fd(fd, hex);
	assert_string_equal(hex,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	close(fd);
	fd = memfd_with("", 0);
	hex_of_fd(fd, hex);
	assert_string_equal(hex,
			    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	close(fd);
}

/* Several read blocks, and the descriptor's offset is left where it was. */
static void test_large_and_offset_untouched(void **state)
{
	size_t len = 3 * 65536 + 123;
	char *data = malloc(len);
	unsigned char a[DIGEST_SHA256_LEN], b[DIGEST_SHA256_LEN];
	uint64_t size = 0;
	int fd;

	(void)state;
	assert_non_null(data);
	for (size_t i = 0; i < len; i++)
		data[i] = (char)(i * 7);
	fd = memfd_with(data, len);
	assert_int_equal(lseek(fd, 1000, SEEK_SET), 1000);
	assert_int_equal(digest_sha256_fd(fd, 0, a, &size), 0);
	assert_int_equal(size, len);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 1000);
	/* the same bytes in one go through another descriptor */
	close(fd);
	fd = memfd_with(data, len);
	assert_int_equal(digest_sha256_fd(fd, 0, b, NULL), 0);
	assert_memory_equal(a, b, sizeof(a));
	close(fd);
	free(data);
}

static void test_limit_and_errors(void **state)
{
	unsigned char md[DIGEST_SHA256_LEN], untouched[DIGEST_SHA256_LEN];
	int fd = memfd_with("0123456789", 10), p[2];

	(void)state;
	assert_int_equal(digest_sha256_fd(fd, 10, md, NULL), 0);
	memset(md, 0x5a, sizeof(md));
	memcpy(untouched, md, sizeof(md));
	assert_int_equal(digest_sha256_fd(fd, 9, md, NULL), -EFBIG);
	assert_memory_equal(md, untouched, sizeof(md)); /* written only on success */
	close(fd);
	assert_int_equal(digest_sha256_fd(-1, 0, md, NULL), -EBADF);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(digest_sha256_fd(p[0], 0, md, NULL), -ESPIPE);
	close(p[0]);
	close(p[1]);
	/* /proc files report size 0: the limit holds while reading */
	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(digest_sha256_fd(fd, 16, md, NULL), -EFBIG);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_vectors),
		cmocka_unit_test(test_large_and_offset_untouched),
		cmocka_unit_test(test_limit_and_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
