/* canary: the samples of the canary stage of definitions validation
 * (DESIGN.md section 4, stage 7): files a candidate engine must detect and
 * files it must not.
 *
 *   detect   EICAR (assembled in memory: the project's files hold no
 *            complete copy), and every regular file directly inside
 *            CanaryDirectory (an organisation's own known-bad samples)
 *   clean    the bundled samples (text, HTML, JSON, a shell script, a
 *            PDF, an empty file: in memory, every set must leave them
 *            alone), system files every Linux host has (/bin/sh,
 *            /bin/true, /usr/bin/env, the running C library: ELF
 *            executables and a shared object, what a signature matching
 *            "every ELF file" hits), and every regular file directly inside
 *            CleanCorpusDirectory
 *
 * The samples are opened here, before the test load drops privileges, and
 * scanned through their descriptors. At most CANARY_DIR_MAX files are taken
 * from each directory (in name order; dot files are skipped). A configured
 * directory that cannot be read is an error: a canary that silently checks
 * nothing would pass every set. */
#ifndef SE_DEFS_CANARY_H
#define SE_DEFS_CANARY_H

#include <stdbool.h>
#include <stddef.h>

#define CANARY_DIR_MAX	 1000
#define CANARY_LABEL_MAX 300
#define CANARY_ERR_LEN	 512

struct canary_sample {
	char label[CANARY_LABEL_MAX]; /* "EICAR", "/bin/sh (system file)", a path */
	int fd;			      /* open for reading */
	bool must_detect;	      /* true: a canary; false: a clean sample */
};

struct canary_set {
	struct canary_sample *v;
	size_t n;
};

/* canary_open: open every sample: EICAR, the files of canary_dir (NULL:
 * none), the bundled clean samples, the system files that exist, the files
 * of clean_dir (NULL: none). Returns 0 or -errno with a reason naming the
 * directory or file in err[CANARY_ERR_LEN]; *set is then empty. */
int canary_open(const char *canary_dir, const char *clean_dir, struct canary_set *set, char *err);

/* canary_close: close and free what canary_open opened (zeroes *set). */
void canary_close(struct canary_set *set);

/* canary_eicar_fd: a new sealed memfd holding the EICAR test file, or
 * -errno. */
int canary_eicar_fd(void);

#endif
