/* cvd_fixture: what the unit tests of defs/cvd.c and defs/auth.c
 * (test_cvd.c, test_cvd_sign.c, test_auth.c) share: where the genuine
 * Talos-signed test definitions of the shared testdata/clamav directory
 * are (tests/unit/testdata.h; tests that need them skip without them),
 * reading them, and the group set-up. Every function is static inline: a
 * test program that does not use one still builds with
 * -Wunused-function. */
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

#include "tests/unit/testdata.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The directory of the test definitions (group_setup), or "". */
static char testdata[512];

/* ---- helpers ---- */

static inline bool find_testdata(void)
{
	const char *d = testdata_dir();

	if (!d)
		return false;
	snprintf(testdata, sizeof(testdata), "%s", d);
	return true;
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
