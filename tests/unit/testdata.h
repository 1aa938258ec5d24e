/* testdata: where the unit tests find the shared ClamAV test definitions
 * (genuine Talos-signed .cvd, .cdiff, .sign files and certificates):
 * $SCANENGINE_TESTDATA, else ../shared/testdata/clamav from the working
 * directory (make runs the tests from the top of the tree), else the same
 * place seen from the test binary (<tree>/<build>/tests/). */
#ifndef SE_TESTS_UNIT_TESTDATA_H
#define SE_TESTS_UNIT_TESTDATA_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* testdata_dir: the directory holding test-1.cvd, or NULL. */
static inline const char *testdata_dir(void)
{
	static char found[PATH_MAX];
	char exe[512], beside[600] = "", probe[800];
	const char *dirs[3] = {getenv("SCANENGINE_TESTDATA"), "../shared/testdata/clamav", beside};
	ssize_t n;

	if (found[0])
		return found;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		*strrchr(exe, '/') = '\0';
		snprintf(beside, sizeof(beside), "%s/../../../shared/testdata/clamav", exe);
	}
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!dirs[i] || !*dirs[i])
			continue;
		snprintf(probe, sizeof(probe), "%s/test-1.cvd", dirs[i]);
		if (access(probe, R_OK) == 0 && realpath(dirs[i], found))
			return found;
	}
	found[0] = '\0';
	return NULL;
}

#endif
