/* fuzz_cdiff: what a mirror could send as a .cdiff, applied by
 * updater/cdiff.c to a small database in a private directory, then written
 * as a .cld. The first byte picks the form: even, the rest is the .cdiff
 * file as it is; odd, the rest is the script, wrapped here into a
 * well-formed .cdiff (header, gzip, ":" and a signature of the right
 * alphabet) so that the interpreter itself is reached. Besides never
 * crashing, leaking or reading out of bounds: a refusal must say why,
 * nothing may appear outside the directory, and no temporary file may be
 * left in it. */
#include "updater/cdiff.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root[64]; /* holds db/ and nothing else */

static void put(int dfd, const char *name, const char *text)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0 || util_write_all(fd, text, strlen(text)))
		abort();
	close(fd);
}

/* A fresh db/: a .info without DSIG (cld_write refuses it: that path is
 * exercised too) and two signature files. */
static int fresh_db(void)
{
	char db[96];
	int dfd;

	snprintf(db, sizeof(db), "%s/db", root);
	util_rm_rf(db);
	if (mkdir(db, 0700) < 0 || (dfd = open(db, O_DIRECTORY | O_RDONLY | O_CLOEXEC)) < 0)
		abort();
	put(dfd, "test.info",
	    "ClamAV-VDB:22 Jun 2021 20-40 -0400:1:2:81:X:X:fuzz:1624408809\n"
	    "test.hdb:45:0000000000000000000000000000000000000000000000000000000000000000\n");
	put(dfd, "test.hdb", "44d88612fea8a8f36de82e1278abb02f:68:Eicar\n");
	put(dfd, "test.ndb", "Sig.One:0:*:414243\nSig.Two:0:*:444546\nSig.Three:0:*:474849\n");
	put(dfd, "COPYING", "fuzz\n");
	return dfd;
}

/* Only db/ in root, and no ".cdiff-*" left in db/. */
static void check_tree(void)
{
	struct dirent *de;
	DIR *d = opendir(root);
	char db[96];

	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' && strcmp(de->d_name, "db"))
			abort(); /* something was written outside the database */
	if (d)
		closedir(d);
	snprintf(db, sizeof(db), "%s/db", root);
	d = opendir(db);
	while (d && (de = readdir(d)))
		if (!strncmp(de->d_name, ".cdiff", 6))
			abort(); /* a temporary left behind */
	if (d)
		closedir(d);
}

/* header + gzip(script) + ":" + signature, into a memfd. */
static int wrap(const uint8_t *script, size_t len)
{
	uLongf zlen = compressBound((uLong)len) + 64;
	unsigned char *z = malloc(zlen);
	z_stream s = {0};
	char hdr[64];
	int fd = memfd_create("cdiff", MFD_CLOEXEC), n;

	if (!z || fd < 0 || deflateInit2(&s, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	s.next_in = (unsigned char *)(uintptr_t)script;
	s.avail_in = (uInt)len;
	s.next_out = z;
	s.avail_out = (uInt)zlen;
	if (deflate(&s, Z_FINISH) != Z_STREAM_END)
		abort();
	n = snprintf(hdr, sizeof(hdr), "ClamAV-Diff:2:%zu:", len);
	if (util_write_all(fd, hdr, (size_t)n) || util_write_all(fd, z, s.total_out) ||
	    util_write_all(fd, ":QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0", 37))
		abort();
	deflateEnd(&s);
	free(z);
	return fd;
}

static void remove_root(void)
{
	util_rm_rf(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[CDIFF_ERR_LEN] = "";
	struct cdiff_stats st;
	int fd, dfd, out, r;

	if (!size || size > (1u << 20))
		return 0;
	if (!root[0]) {
		snprintf(root, sizeof(root), "/tmp/fuzz_cdiff.%d", (int)getpid());
		util_rm_rf(root);
		if (mkdir(root, 0700) < 0)
			abort();
		atexit(remove_root);
	}
	dfd = fresh_db();
	if (data[0] & 1) {
		fd = wrap(data + 1, size - 1);
	} else {
		fd = memfd_create("cdiff", MFD_CLOEXEC);
		if (fd < 0 || util_write_all(fd, data + 1, size - 1))
			abort();
	}
	r = cdiff_apply(fd, dfd, "test", &st, err);
	if (r > 0 || (r < 0 && !err[0]))
		abort(); /* 0 or -errno, and a refusal says why */
	check_tree();
	out = open("/dev/null", O_WRONLY | O_CLOEXEC);
	err[0] = '\0';
	r = cld_write(dfd, "test", out, NULL, err);
	if (r > 0 || (r < 0 && !err[0]))
		abort();
	close(out);
	close(fd);
	close(dfd);
	return 0;
}
