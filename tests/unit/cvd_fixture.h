/* cvd_fixture: what the unit tests of defs/cvd.c (test_cvd.c,
 * test_cvd_sign.c) share: where the genuine Talos-signed test definitions
 * of the shared testdata/clamav directory are ($SCANENGINE_TESTDATA, else
 * found from the working directory or this binary; tests that need them
 * skip without them), reading them, and the group set-up. Every function
 * is static inline: a test program that does not use one still builds
 * with -Wunused-function. */
#ifndef SE_TESTS_UNIT_CVD_FIXTURE_H
#define SE_TESTS_UNIT_CVD_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <clamav.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The directory of the test definitions (group_setup), or "". */
static char testdata[512];

/* ---- helpers ---- */

static inline bool find_testdata(void)
{
	char exe[512], beside[600] = "";
	const char *dirs[] = {getenv("SCANENGINE_TESTDATA"), "../shared/testdata/clamav", beside,
			      "/work/shared/testdata/clamav"};
	char probe[700];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n > 0) {
		exe[n] = '\0';
		*strrchr(exe, '/') = '\0';
		snprintf(beside, sizeof(beside), "%s/../../../shared/testdata/clamav", exe);
	}
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		if (!dirs[i] || !*dirs[i])
			continue;
		snprintf(probe, sizeof(probe), "%s/test-1.cvd", dirs[i]);
		if (access(probe, R_OK) == 0) {
			snprintf(testdata, sizeof(testdata), "%s", dirs[i]);
			return true;
		}
	}
	return false;
}

#define NEED_TESTDATA()                                                                            \
	do {                                                                                       \
		if (!testdata[0]) {                                                                \
			print_message("skipped: shared testdata/clamav not found (set "            \
				      "SCANENGINE_TESTDATA)\n");                                   \
			skip();                                                                    \
		}                                                                                  \
	} while (0)

/* read_all: the whole file, NUL-terminated (not counted in *len). */
static inline char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static inline char *read_data(const char *name, size_t *len)
{
	char path[700];

	snprintf(path, sizeof(path), "%s/%s", testdata, name);
	return read_all(path, len);
}

static inline int group_setup(void **state)
{
	(void)state;
	if (cl_init(CL_INIT_DEFAULT) != CL_SUCCESS)
		return -1;
	if (!find_testdata())
		testdata[0] = '\0';
	return 0;
}

#endif
