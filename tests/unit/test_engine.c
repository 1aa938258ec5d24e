/* test_engine: unit tests of scanengine/engine.c against the real libclamav
 * (cmocka).
 *
 * Definitions are built per case in a private directory: ClamAV's own test
 * hashes (shared testdata clamav.hdb, which detects the clam* samples of the
 * clamav-testfiles package) plus .ndb body signatures for EICAR. The config
 * comes from config_defaults(), as the daemon builds it.
 *
 * A case that needs another identity runs in a forked child that never
 * calls cmocka: it writes its findings to a pipe and _exit()s.
 *
 * Tests named test_* fail against the current code on purpose: each one
 * documents a defect (comment above it) and passes once it is fixed. */
#include "scanengine/engine.h"
#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "tests/unit/testdata.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <clamav.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define NOBODY_ID 65534
#define TESTFILES "/usr/share/clamav-testfiles"
#define EICAR_HEX                                                                                  \
	"58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d5354414e444152442d41" \
	"4e544956495255532d544553542d46494c452124482b482a"
#define EICAR_NDB "Eicar-Test-Signature:0:0:" EICAR_HEX "\n"
/* a second signature on the same file: "EICAR-STANDARD" anywhere */
#define SECOND_NDB "Eicar-Second:0:*:45494341522d5354414e44415244\n"
/* the first 24 bytes of clam.exe (Debian's clamav-testfiles) */
#define CLAM_EXE_HEAD_HEX "4d5a50000200000004000f00ffff0000b800000021000000"
#define EICAR		  "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

/* Shared by the whole group: libclamav is initialised once per process. */
static struct {
	char dir[64];
	char log[128];
} g;

struct fx {
	char dir[128];	 /* per case, under g.dir */
	char db[160];	 /* definitions */
	char tmp[160];	 /* scratch */
	char eicar[160]; /* EICAR test file */
	char clean[160]; /* harmless text */
	struct config cfg;
	struct engine *e;
};

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void rm_tree(const char *path)
{
	nftw(path, rm_cb, 32, FTW_DEPTH | FTW_PHYS);
}

static int write_text(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	int r;

	if (fd < 0)
		return -1;
	r = util_write_all(fd, text, strlen(text));
	close(fd);
	return r;
}

static int copy_file(const char *from, const char *to)
{
	char buf[4096];
	int in = open(from, O_RDONLY | O_CLOEXEC), out;
	ssize_t n;

	if (in < 0)
		return -1;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (util_write_all(out, buf, (size_t)n) < 0)
			break;
	close(in);
	close(out);
	return n == 0 ? 0 : -1;
}

static int group_setup(void **state)
{
	char err[256];
	struct log_options lo = {.ident = "test_engine", .to_stderr = false, .verbose = true};

	(void)state;
	snprintf(g.dir, sizeof(g.dir), "/tmp/test_engine.XXXXXX");
	if (!mkdtemp(g.dir) || chmod(g.dir, 0755) < 0)
		return -1;
	/* libclamav's messages go to this log instead of the test output */
	snprintf(g.log, sizeof(g.log), "%s/log", g.dir);
	lo.file = g.log;
	if (log_open(&lo) < 0)
		return -1;
	if (engine_global_init(err) != 0) {
		fprintf(stderr, "engine_global_init: %s\n", err);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	log_close();
	rm_tree(g.dir);
	return 0;
}

static int setup(void **state)
{
	static int seq;
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "%s/case%d", g.dir, ++seq);
	snprintf(fx->db, sizeof(fx->db), "%s/db", fx->dir);
	snprintf(fx->tmp, sizeof(fx->tmp), "%s/tmp", fx->dir);
	snprintf(fx->eicar, sizeof(fx->eicar), "%s/eicar.com", fx->dir);
	snprintf(fx->clean, sizeof(fx->clean), "%s/clean.txt", fx->dir);
	if (mkdir(fx->dir, 0755) < 0 || mkdir(fx->db, 0755) < 0 || mkdir(fx->tmp, 0755) < 0)
		return -1;
	if (write_text(fx->eicar, EICAR, 0644) < 0 ||
	    write_text(fx->clean, "just some harmless text\n", 0644) < 0)
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	engine_free(fx->e);
	config_free(&fx->cfg);
	rm_tree(fx->dir);
	free(fx);
	return 0;
}

/* The daemon's defaults, with DatabaseDirectory pointed at dir. */
static void make_cfg(struct fx *fx, const char *dir)
{
	int r;

	config_free(&fx->cfg);
	r = config_defaults(&fx->cfg);
	if (r != 0)
		fail_msg("config_defaults() failed: %d (common/config.c not ready?)", r);
	free(fx->cfg.database_dir);
	fx->cfg.database_dir = strdup(dir);
	assert_non_null(fx->cfg.database_dir);
}

static void db_add(struct fx *fx, const char *name, const char *text)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", fx->db, name);
	assert_int_equal(write_text(p, text, 0644), 0);
}

static void db_add_hdb(struct fx *fx)
{
	char p[256], src[PATH_MAX + 32];

	snprintf(p, sizeof(p), "%s/clamav.hdb", fx->db);
	assert_non_null(testdata_dir());
	snprintf(src, sizeof(src), "%s/clamav.hdb", testdata_dir());
	assert_int_equal(copy_file(src, p), 0);
}

/* hdb + EICAR ndb, loaded with the defaults. */
static void load_std(struct fx *fx, struct msg_engine_info *info)
{
	char err[512] = "";

	db_add_hdb(fx);
	db_add(fx, "eicar.ndb", EICAR_NDB);
	make_cfg(fx, fx->db);
	fx->e = engine_load(&fx->cfg, fx->cfg.database_dir, fx->tmp, info, err);
	if (!fx->e)
		fail_msg("engine_load: %s", err);
}

static void scan_path(struct engine *e, const char *path, bool allmatch, struct engine_result *r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	memset(r, 0x5a, sizeof(*r)); /* engine_scan must fill every field */
	assert_int_equal(engine_scan(e, fd, allmatch, r), 0);
	close(fd);
}

static bool have_testfiles(void)
{
	return access(TESTFILES "/clam.zip", R_OK) == 0 && access(TESTFILES "/clam.exe", R_OK) == 0;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

static void expect_names(const struct engine_result *r, const char *const *want, unsigned int n)
{
	assert_int_equal(r->nnames, n);
	for (unsigned int i = 0; i < n; i++) {
		bool found = false;

		for (unsigned int j = 0; j < r->nnames; j++)
			found |= !strcmp(r->names[j], want[i]);
		if (!found)
			fail_msg("signature %s not reported (first: %s)", want[i],
				 r->nnames ? r->names[0] : "-");
	}
}

/* ---- versions and load info ---- */

static void test_version(void **state)
{
	(void)state;
	assert_non_null(engine_version());
	assert_string_equal(engine_version(), cl_retver());
	assert_true(strlen(engine_version()) > 0);
}

static void test_load_info(void **state)
{
	struct fx *fx = *state;
	struct msg_engine_info info;

	memset(&info, 0x5a, sizeof(info));
	load_std(fx, &info);
	assert_int_equal(info.sigs, 2);	      /* one hash + one body signature */
	assert_int_equal(info.db_version, 0); /* plain files, no .cvd */
	assert_int_equal(info.flevel, cl_retflevel());
	assert_string_equal(info.version, cl_retver());
	assert_true(info.load_ms < 60000);
	engine_free(NULL);
}

/* ---- scanning ---- */

static void test_scan_eicar(void **state)
{
	struct fx *fx = *state;
	struct msg_engine_info info;
	struct engine_result r;
	int fd;

	load_std(fx, &info);
	scan_path(fx->e, fx->eicar, false, &r);
	assert_int_equal(r.verdict, VERDICT_VIRUS);
	assert_int_equal(r.nnames, 1);
	assert_string_equal(r.names[0], "Eicar-Test-Signature.UNOFFICIAL");
	assert_string_equal(r.error, "");

	/* a descriptor handed over at an offset is still scanned from 0 */
	fd = open(fx->eicar, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(lseek(fd, 40, SEEK_SET), 40);
	assert_int_equal(engine_scan(fx->e, fd, false, &r), 0);
	assert_int_equal(r.verdict, VERDICT_VIRUS);
	/* and the same descriptor again */
	assert_int_equal(engine_scan(fx->e, fd, false, &r), 0);
	assert_int_equal(r.verdict, VERDICT_VIRUS);
	assert_int_equal(r.nnames, 1);
	close(fd);

	/* all-match with one matching signature: still exactly one name */
	scan_path(fx->e, fx->eicar, true, &r);
	assert_int_equal(r.verdict, VERDICT_VIRUS);
	assert_int_equal(r.nnames, 1);
	assert_string_equal(r.names[0], "Eicar-Test-Signature.UNOFFICIAL");
}

static void test_scan_clean(void **state)
{
	struct fx *fx = *state;
	struct msg_engine_info info;
	struct engine_result r;

	load_std(fx, &info);
	scan_path(fx->e, fx->clean, false, &r);
	assert_int_equal(r.verdict, VERDICT_CLEAN);
	assert_int_equal(r.nnames, 0);
	assert_string_equal(r.error, "");
	scan_path(fx->e, fx->clean, true, &r);
	assert_int_equal(r.verdict, VERDICT_CLEAN);
	assert_int_equal(r.nnames, 0);

	/* an empty file */
	{
		char p[200];

		snprintf(p, sizeof(p), "%s/empty", fx->dir);
		assert_int_equal(write_text(p, "", 0644), 0);
		scan_path(fx->e, p, false, &r);
		assert_int_equal(r.verdict, VERDICT_CLEAN);
	}
}

/* The hash database: clam.exe is ClamAV-Test-File. */
static void test_scan_hdb(void **state)
{
	struct fx *fx = *state;
	struct msg_engine_info info;
	struct engine_result r;

	if (!have_testfiles())
		skip();
	load_std(fx, &info);
	scan_path(fx->e, TESTFILES "/clam.exe", false, &r);
	assert_int_equal(r.verdict, VERDICT_VIRUS);
	assert_int_equal(r.nnames, 1);
	assert_string_equal(r.names[0], "ClamAV-Test-File.UNOFFICIAL");
}

/* An archive: clam.exe inside clam.zip, extracted through the scratch
 * directory, which is empty again afterwards. ScanArchive off: clean. */
static void test_scan_zip(void **state)
{
	struct fx *fx = *state;
	struct msg_engine_info info;
	struct engine_result r;
	char err[512];

	if (!have_testfiles())
		skip();
	load_std(fx, &info);
	assert_true(fx->cfg.scan_archive); /* clamd's default */
	scan_path(fx->e, TESTFILES "/clam.zip", false, &r);
	assert_int_equal(r.verdict, VERDICT_VIRUS);
	assert_int_equal(r.nnames, 1);
	assert_string_equal(r.names[0], "ClamAV-Test-File.UNOFFICIAL");
	assert_int_equal(count_entries(fx->tmp), 0);
	scan_path(fx->e, TESTFILES "/clam.zip", true, &r);
	assert_int_equal(r.verdict, VERDICT_VIRUS);
	assert_true(r.nnames >= 1);
	assert_string_equal(r.names[0], "ClamAV-Test-File.UNOFFICIAL");

	engine_free(fx->e);
	fx->cfg.scan_archive = false;
	fx->e = engine_load(&fx->cfg, fx->cfg.database_dir, fx->tmp, &info, err);
	assert_non_null(fx->e);
	scan_path(fx->e, TESTFILES "/clam.zip", false, &r);
	assert_int_equal(r.verdict, VERDICT_CLEAN);
	assert_int_equal(r.nnames, 0);
}

/* The tmpdir argument and engine_set_tmpdir really steer scratch files:
 * with LeaveTemporaryFiles they stay where they were written. */
static void test_tmpdir(void **state)
{
	struct fx *fx = *state;
	struct msg_engine_info info;
	struct engine_result r;
	char err[512], other[200];

	if (!have_testfiles())
		skip();
	db_add_hdb(fx);
	make_cfg(fx, fx->db);
	fx->cfg.leave_temporary_files = true;
	fx->e = engine_load(&fx->cfg, fx->cfg.database_dir, fx->tmp, &info, err);
	assert_non_null(fx->e);
	scan_path(fx->e, TESTFILES "/clam.zip", false, &r);
	assert_int_equal(r.verdict, VERDICT_VIRUS);
	assert_true(count_entries(fx->tmp) > 0);

	snprintf(other, sizeof(other), "%s/other", fx->dir);
	assert_int_equal(mkdir(other, 0755), 0);
	assert_int_equal(engine_set_tmpdir(fx->e, other), 0);
	scan_path(fx->e, TESTFILES "/clam.zip", false, &r);
	assert_int_equal(r.verdict, VERDICT_VIRUS);
	assert_true(count_entries(other) > 0);
}

/* All-match: every matching signature, in one result. */
static void test_allmatch(void **state)
{
	struct fx *fx = *state;
	struct msg_engine_info info;
	struct engine_result r;
	char err[512];
	static const char *const both[] = {"Eicar-Test-Signature.UNOFFICIAL",
					   "Eicar-Second.UNOFFICIAL"};

	db_add_hdb(fx);
	db_add(fx, "eicar.ndb", EICAR_NDB SECOND_NDB);
	make_cfg(fx, fx->db);
	fx->e = engine_load(&fx->cfg, fx->cfg.database_dir, fx->tmp, &info, err);
	assert_non_null(fx->e);
	assert_int_equal(info.sigs, 3);

	scan_path(fx->e, fx->eicar, true, &r);
	assert_int_equal(r.verdict, VERDICT_VIRUS);
	expect_names(&r, both, 2);
	assert_string_equal(r.error, "");

	/* without all-match: the first one only */
	scan_path(fx->e, fx->eicar, false, &r);
	assert_int_equal(r.verdict, VERDICT_VIRUS);
	assert_int_equal(r.nnames, 1);
	assert_true(!strcmp(r.names[0], both[0]) || !strcmp(r.names[0], both[1]));

	scan_path(fx->e, fx->clean, true, &r);
	assert_int_equal(r.verdict, VERDICT_CLEAN);
	assert_int_equal(r.nnames, 0);
}

/* All-match across database types: clam.exe matches its hash (.hdb) and a
 * body signature on its first bytes (.ndb). */
static void test_allmatch_hash_and_body(void **state)
{
	struct fx *fx = *state;
	struct msg_engine_info info;
	struct engine_result r;
	char err[512];
	static const char *const both[] = {"ClamAV-Test-File.UNOFFICIAL",
					   "ClamExe-Head.UNOFFICIAL"};

	if (!have_testfiles())
		skip();
	db_add_hdb(fx);
	db_add(fx, "head.ndb", "ClamExe-Head:0:0:" CLAM_EXE_HEAD_HEX "\n");
	make_cfg(fx, fx->db);
	fx->e = engine_load(&fx->cfg, fx->cfg.database_dir, fx->tmp, &info, err);
	assert_non_null(fx->e);
	scan_path(fx->e, TESTFILES "/clam.exe", true, &r);
	assert_int_equal(r.verdict, VERDICT_VIRUS);
	expect_names(&r, both, 2);
	scan_path(fx->e, TESTFILES "/clam.exe", false, &r);
	assert_int_equal(r.verdict, VERDICT_VIRUS);
	assert_int_equal(r.nnames, 1);
}

/* More matches than a result holds: capped at MSG_RESULT_MAX_NAMES, and a
 * name longer than the slot is cut, terminated. */
static void test_allmatch_many_and_long(void **state)
{
	struct fx *fx = *state;
	struct msg_engine_info info;
	struct engine_result r;
	char err[512], line[512], longname[201];
	char *text = calloc(1, 64 * 1024);
	size_t used = 0;

	assert_non_null(text);
	for (int i = 0; i < MSG_RESULT_MAX_NAMES + 6; i++) {
		/* different prefixes of the EICAR body */
		snprintf(line, sizeof(line), "Sig-%03d:0:*:%.*s\n", i, 40 + (i % 20) * 2,
			 EICAR_HEX);
		used += (size_t)snprintf(text + used, 64 * 1024 - used, "%s", line);
	}
	db_add(fx, "many.ndb", text);
	free(text);
	make_cfg(fx, fx->db);
	fx->e = engine_load(&fx->cfg, fx->cfg.database_dir, fx->tmp, &info, err);
	assert_non_null(fx->e);
	assert_int_equal(info.sigs, MSG_RESULT_MAX_NAMES + 6);
	scan_path(fx->e, fx->eicar, true, &r);
	assert_int_equal(r.verdict, VERDICT_VIRUS);
	assert_int_equal(r.nnames, MSG_RESULT_MAX_NAMES);
	for (unsigned int i = 0; i < r.nnames; i++) {
		assert_true(memchr(r.names[i], '\0', sizeof(r.names[i])) != NULL);
		assert_true(!strncmp(r.names[i], "Sig-", 4));
	}

	/* a 200-character name */
	engine_free(fx->e);
	fx->e = NULL;
	rm_tree(fx->db);
	assert_int_equal(mkdir(fx->db, 0755), 0);
	memset(longname, 'L', 200);
	longname[200] = '\0';
	snprintf(line, sizeof(line), "%s:0:*:%s\n", longname, EICAR_HEX);
	db_add(fx, "long.ndb", line);
	fx->e = engine_load(&fx->cfg, fx->cfg.database_dir, fx->tmp, &info, err);
	assert_non_null(fx->e);
	scan_path(fx->e, fx->eicar, false, &r);
	assert_int_equal(r.verdict, VERDICT_VIRUS);
	assert_int_equal(r.nnames, 1);
	assert_int_equal(strlen(r.names[0]), sizeof(r.names[0]) - 1);
	assert_true(strspn(r.names[0], "L") == sizeof(r.names[0]) - 1);
}

/* Limits from the config reach libclamav: MaxFileSize below the file's size
 * skips it, and AlertExceedsMax turns that into a detection. */
static void test_limits(void **state)
{
	struct fx *fx = *state;
	struct msg_engine_info info;
	struct engine_result r;
	char err[512];

	db_add(fx, "eicar.ndb", EICAR_NDB);
	make_cfg(fx, fx->db);
	fx->cfg.max_file_size = 10;
	fx->cfg.alert_exceeds_max = false;
	fx->e = engine_load(&fx->cfg, fx->cfg.database_dir, fx->tmp, &info, err);
	assert_non_null(fx->e);
	scan_path(fx->e, fx->eicar, false, &r);
	assert_int_equal(r.verdict, VERDICT_CLEAN);
	engine_free(fx->e);

	fx->cfg.alert_exceeds_max = true;
	fx->e = engine_load(&fx->cfg, fx->cfg.database_dir, fx->tmp, &info, err);
	assert_non_null(fx->e);
	scan_path(fx->e, fx->eicar, false, &r);
	assert_int_equal(r.verdict, VERDICT_VIRUS);
	assert_int_equal(r.nnames, 1);
	assert_string_equal(r.names[0], "Heuristics.Limits.Exceeded.MaxFileSize");
}

/* Two engines are independent; freeing one leaves the other working. */
static void test_two_engines(void **state)
{
	struct fx *fx = *state;
	struct msg_engine_info info;
	struct engine_result r;
	struct engine *other;
	char err[512];

	load_std(fx, &info);
	other = engine_load(&fx->cfg, fx->cfg.database_dir, fx->tmp, &info, err);
	assert_non_null(other);
	engine_free(fx->e);
	fx->e = NULL;
	scan_path(other, fx->eicar, false, &r);
	assert_int_equal(r.verdict, VERDICT_VIRUS);
	engine_free(other);
}

static void test_scan_bad_fd(void **state)
{
	struct fx *fx = *state;
	struct msg_engine_info info;
	struct engine_result r;
	int p[2];

	load_std(fx, &info);
	memset(&r, 0x5a, sizeof(r));
	assert_int_equal(engine_scan(fx->e, -1, false, &r), 0); /* a verdict, not a failure */
	assert_int_equal(r.verdict, VERDICT_ERROR);
	assert_int_equal(r.nnames, 0);
	assert_true(strlen(r.error) > 0);
	assert_string_equal(r.error, cl_strerror(CL_ESTAT));

	assert_int_equal(pipe(p), 0);
	close(p[0]);
	close(p[1]);
	assert_int_equal(engine_scan(fx->e, p[0], false, &r), 0);
	assert_int_equal(r.verdict, VERDICT_ERROR);
}

/* Regression (scanengine/engine.c, engine_scan): libclamav reports some scan
 * failures only through the message callback and returns CL_CLEAN, and
 * engine_scan turns that into VERDICT_CLEAN. Inputs: (1) the scratch
 * directory does not exist ("Can't create temporary directory for scan" is
 * logged), scanning EICAR; (2) a descriptor opened O_WRONLY ("fmap_readpage:
 * pread error: Bad file descriptor"), scanning EICAR. Expected VERDICT_ERROR
 * (a file that was not scanned must not be reported "OK"); it once returned
 * VERDICT_CLEAN with no error. Case (1) is what every scan returns when a
 * worker's scratch directory vanishes or cannot be written (disk full).
 * engine_scan now records CL_MSG_ERROR messages raised during the scan. */
static void test_scan_wronly_fd_reported_clean(void **state)
{
	struct fx *fx = *state;
	struct msg_engine_info info;
	struct engine_result r;
	int fd;

	load_std(fx, &info);
	fd = open(fx->eicar, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(engine_scan(fx->e, fd, false, &r), 0);
	close(fd);
	if (r.verdict != VERDICT_ERROR)
		fail_msg("O_WRONLY descriptor: verdict %d (%s), want VERDICT_ERROR", (int)r.verdict,
			 r.verdict == VERDICT_CLEAN ? "CLEAN" : "VIRUS");
}

/* Regression (same cause as above), case (1). */
static void test_scan_missing_tmpdir_reported_clean(void **state)
{
	struct fx *fx = *state;
	struct msg_engine_info info;
	struct engine_result r;
	char missing[200];

	load_std(fx, &info);
	snprintf(missing, sizeof(missing), "%s/gone", fx->dir);
	assert_int_equal(engine_set_tmpdir(fx->e, missing), 0);
	scan_path(fx->e, fx->eicar, false, &r);
	if (r.verdict != VERDICT_ERROR)
		fail_msg("missing scratch directory: EICAR verdict %d (%s), want VERDICT_ERROR",
			 (int)r.verdict, r.verdict == VERDICT_CLEAN ? "CLEAN" : "VIRUS");
}

/* ---- load errors ---- */

static struct engine *load_dir(struct fx *fx, const char *dir, char *err, int *eno)
{
	struct msg_engine_info info;
	struct engine *e;

	make_cfg(fx, dir);
	err[0] = '\0';
	errno = 0;
	e = engine_load(&fx->cfg, fx->cfg.database_dir, fx->tmp, &info, err);
	*eno = errno;
	return e;
}

static void test_load_missing_dir(void **state)
{
	struct fx *fx = *state;
	char err[512], dir[200], want[512];
	int eno;

	snprintf(dir, sizeof(dir), "%s/nonexistent", fx->dir);
	assert_null(load_dir(fx, dir, err, &eno));
	assert_int_equal(eno, ENOENT);
	snprintf(want, sizeof(want), "DatabaseDirectory %s: No such file or directory", dir);
	assert_string_equal(err, want);

	/* a file, not a directory */
	assert_null(load_dir(fx, fx->clean, err, &eno));
	assert_int_equal(eno, ENOTDIR);
	snprintf(want, sizeof(want), "DatabaseDirectory %s: Not a directory", fx->clean);
	assert_string_equal(err, want);
}

/* A malformed signature: EINVAL, and the message names the database file
 * and the problem. libclamav's detailed messages reach the log. */
static void test_load_malformed(void **state)
{
	struct fx *fx = *state;
	char err[512];
	int eno;
	const char *bad[] = {
		"Bad:0:0:zz\n", /* not hex */
		"NoFields\n",	/* too few fields */
		"Good:0:0:" EICAR_HEX "\n",
	};

	db_add_hdb(fx);
	db_add(fx, "bad.ndb", bad[0]);
	assert_null(load_dir(fx, fx->db, err, &eno));
	assert_int_equal(eno, EINVAL);
	assert_non_null(strstr(err, fx->db));
	assert_non_null(strstr(err, "Malformed database"));
	assert_non_null(strstr(err, "bad.ndb"));

	db_add(fx, "bad.ndb", bad[1]);
	assert_null(load_dir(fx, fx->db, err, &eno));
	assert_int_equal(eno, EINVAL);
	assert_non_null(strstr(err, "bad.ndb"));

	/* a broken hash line */
	db_add(fx, "bad.ndb", bad[2]);
	db_add(fx, "broken.hdb", "nothex:xx:Name\n");
	assert_null(load_dir(fx, fx->db, err, &eno));
	assert_int_equal(eno, EINVAL);
	assert_non_null(strstr(err, "broken.hdb"));

	/* the log got libclamav's own lines, each on one line */
	{
		FILE *f = fopen(g.log, "re");
		char l[1024];
		bool parse = false;

		assert_non_null(f);
		while (fgets(l, sizeof(l), f)) {
			assert_true(strlen(l) > 1); /* no empty lines */
			if (strstr(l, "]: ERROR: libclamav: ") && strstr(l, "Problem parsing"))
				parse = true;
		}
		fclose(f);
		assert_true(parse);
	}
}

/* Regression (scanengine/engine.c, clmsg_cb / engine_load): libclamav's message
 * ends in "\n"; clmsg_cb trims it for the log but copies it untrimmed into
 * last_clmsg, which engine_load appends to err. Input: a definitions
 * directory with "Bad:0:0:zz" in bad.ndb. Expected a one-line err (header:
 * "a one-line reason"); it once returned "cannot load definitions from <dir>:
 * Malformed database: cli_loaddbdir: error loading database <dir>/bad.ndb\n".
 * The reason is forwarded in MSG_ZY_FAILED and printed by the supervisor,
 * so the newline lands inside log lines and status output. */
static void test_load_error_has_newline(void **state)
{
	struct fx *fx = *state;
	char err[512];
	int eno;

	db_add(fx, "bad.ndb", "Bad:0:0:zz\n");
	assert_null(load_dir(fx, fx->db, err, &eno));
	if (strchr(err, '\n'))
		fail_msg("err contains a newline: \"%s\"", err);
}

/* A dangling symlink among the databases: named, ENOENT. */
static void test_load_dangling(void **state)
{
	struct fx *fx = *state;
	char err[512], p[256], want[512];
	int eno;

	db_add_hdb(fx);
	snprintf(p, sizeof(p), "%s/zz.ndb", fx->db);
	assert_int_equal(symlink("/nonexistent/x.ndb", p), 0);
	assert_null(load_dir(fx, fx->db, err, &eno));
	assert_int_equal(eno, ENOENT);
	snprintf(want, sizeof(want), "cannot read definitions file %s: No such file or directory",
		 p);
	assert_string_equal(err, want);
}

/* Unreadable definitions: root reads everything, so as nobody in a child. */
struct unreadable_report {
	bool loaded[2];
	int eno[2];
	char err[2][512];
};

static void test_load_unreadable(void **state)
{
	struct fx *fx = *state;
	char p[256], want[512], locked[200];
	struct unreadable_report rep;
	int pp[2], status;
	pid_t pid;

	if (geteuid() != 0)
		skip(); /* needs root to switch to nobody */
	db_add_hdb(fx);
	db_add(fx, "eicar.ndb", EICAR_NDB);
	snprintf(p, sizeof(p), "%s/eicar.ndb", fx->db);
	assert_int_equal(chmod(p, 0), 0);
	snprintf(locked, sizeof(locked), "%s/locked", fx->dir);
	assert_int_equal(mkdir(locked, 0700), 0);
	make_cfg(fx, fx->db);
	assert_int_equal(pipe(pp), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct msg_engine_info info;
		struct unreadable_report cr;
		struct engine *e;

		memset(&cr, 0, sizeof(cr));
		if (setresgid(NOBODY_ID, NOBODY_ID, NOBODY_ID) < 0 ||
		    setresuid(NOBODY_ID, NOBODY_ID, NOBODY_ID) < 0)
			_exit(2);
		errno = 0;
		e = engine_load(&fx->cfg, fx->cfg.database_dir, NULL, &info, cr.err[0]);
		cr.loaded[0] = e != NULL;
		cr.eno[0] = errno;
		engine_free(e);
		free(fx->cfg.database_dir);
		fx->cfg.database_dir = locked;
		errno = 0;
		e = engine_load(&fx->cfg, fx->cfg.database_dir, NULL, &info, cr.err[1]);
		cr.loaded[1] = e != NULL;
		cr.eno[1] = errno;
		engine_free(e);
		_exit(util_write_all(pp[1], &cr, sizeof(cr)) == 0 ? 0 : 1);
	}
	close(pp[1]);
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(read(pp[0], &rep, sizeof(rep)), sizeof(rep));
	close(pp[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	assert_false(rep.loaded[0]);
	assert_int_equal(rep.eno[0], EACCES);
	snprintf(want, sizeof(want), "cannot read definitions file %s: Permission denied", p);
	assert_string_equal(rep.err[0], want);

	assert_false(rep.loaded[1]);
	assert_int_equal(rep.eno[1], EACCES);
	snprintf(want, sizeof(want), "DatabaseDirectory %s: Permission denied", locked);
	assert_string_equal(rep.err[1], want);
}

/* Database files that load but hold no signature: "no signatures". */
static void test_load_no_signatures(void **state)
{
	struct fx *fx = *state;
	char err[512], want[512];
	int eno;

	db_add(fx, "local.ign2", "Eicar-Test-Signature\n");
	assert_null(load_dir(fx, fx->db, err, &eno));
	assert_int_equal(eno, ENOENT);
	snprintf(want, sizeof(want), "no signatures found in %s", fx->db);
	assert_string_equal(err, want);

	/* files libclamav does not know are ignored, not loaded */
	db_add(fx, "README.txt", "not a database\n");
	assert_null(load_dir(fx, fx->db, err, &eno));
	assert_int_equal(eno, ENOENT);
}

/* Regression (scanengine/engine.c, engine_load): an empty DatabaseDirectory fails
 * in cl_load itself (CL_EOPEN), so the "no signatures found in <dir>" branch
 * is never reached for it. Input: an empty directory. Expected errno ENOENT
 * and err "no signatures found in <dir>"; it once returned errno ENOENT and err
 * "cannot load definitions from <dir>: Can't open file or directory:
 * cli_loaddbdir: No supported database files found in <dir>\n" (the
 * directory was opened fine, and there is the stray newline above). */
static void test_load_empty_dir(void **state)
{
	struct fx *fx = *state;
	char err[512], want[512];
	int eno;

	assert_null(load_dir(fx, fx->db, err, &eno));
	assert_int_equal(eno, ENOENT);
	snprintf(want, sizeof(want), "no signatures found in %s", fx->db);
	if (strcmp(err, want))
		fail_msg("empty DatabaseDirectory: err \"%s\", want \"%s\"", err, want);
}

/* A failed load does not disturb a loaded engine. */
static void test_load_error_then_scan(void **state)
{
	struct fx *fx = *state;
	struct msg_engine_info info;
	struct engine_result r;
	char err[512], bad[200], p[256];
	struct engine *e2;
	int eno;

	load_std(fx, &info);
	snprintf(bad, sizeof(bad), "%s/baddb", fx->dir);
	assert_int_equal(mkdir(bad, 0755), 0);
	snprintf(p, sizeof(p), "%s/x.ndb", bad);
	assert_int_equal(write_text(p, "Bad:0:0:zz\n", 0644), 0);
	{
		struct config keep = fx->cfg;

		memset(&fx->cfg, 0, sizeof(fx->cfg));
		e2 = load_dir(fx, bad, err, &eno);
		assert_null(e2);
		assert_int_equal(eno, EINVAL);
		config_free(&fx->cfg);
		fx->cfg = keep;
	}
	scan_path(fx->e, fx->eicar, false, &r);
	assert_int_equal(r.verdict, VERDICT_VIRUS);
}

/* engine_load_files: each file's own count; ENGINE_LOAD_ALL_SIGS makes a
 * real CVD's count equal its header's (test-3.cvd: 11, 4 of them PUA
 * variants that a default load skips); progress is reported; a bad file
 * names itself. */
static unsigned int progress_calls;

static void count_progress(void *arg, const char *phase, uint64_t done, uint64_t total)
{
	(void)arg;
	(void)done;
	(void)total;
	assert_true(strcmp(phase, "load") == 0 || strcmp(phase, "compile") == 0);
	progress_calls++;
}

static void test_load_files_counts(void **state)
{
	struct fx *fx = *state;
	struct msg_engine_info info;
	char ndb[256], bad[256], err[512] = "";
	char cvd[PATH_MAX + 32];
	const char *paths[2] = {cvd, ndb};
	struct engine_file_load per[2] = {{0}};
	struct engine_result r;

	assert_non_null(testdata_dir());
	snprintf(cvd, sizeof(cvd), "%s/test-3.cvd", testdata_dir());
	snprintf(ndb, sizeof(ndb), "%s/eicar.ndb", fx->db);
	assert_int_equal(write_text(ndb, EICAR_NDB SECOND_NDB, 0644), 0);
	make_cfg(fx, fx->db);
	fx->e = engine_load_files(&fx->cfg, paths, 2, ENGINE_LOAD_ALL_SIGS, per, fx->tmp, &info,
				  err);
	if (!fx->e)
		fail_msg("engine_load_files: %s", err);
	assert_int_equal(per[0].sigs, 11);
	assert_int_equal(per[1].sigs, 2);
	assert_int_equal(info.sigs, 13);
	/* each file's load is part of the whole, which also compiles */
	assert_true((uint64_t)per[0].ms + per[1].ms <= info.load_ms);
	scan_path(fx->e, fx->eicar, false, &r);
	assert_int_equal(r.verdict, VERDICT_VIRUS);
	engine_free(fx->e);

	progress_calls = 0;
	engine_set_progress(count_progress, NULL);
	fx->e = engine_load_files(&fx->cfg, paths, 1, 0, per, fx->tmp, &info, err);
	engine_set_progress(NULL, NULL);
	assert_non_null(fx->e);
	assert_int_equal(per[0].sigs, 7);
	assert_true(progress_calls > 0);
	engine_free(fx->e);

	snprintf(bad, sizeof(bad), "%s/bad.ndb", fx->db);
	assert_int_equal(write_text(bad, "Bad:0:0:zz\n", 0644), 0);
	paths[1] = bad;
	fx->e = engine_load_files(&fx->cfg, paths, 2, 0, NULL, fx->tmp, &info, err);
	assert_null(fx->e);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(err, "bad.ndb"));
	assert_int_equal(engine_flevel(), cl_retflevel());
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version),
		T(test_load_info),
		T(test_scan_eicar),
		T(test_scan_clean),
		T(test_scan_hdb),
		T(test_scan_zip),
		T(test_tmpdir),
		T(test_allmatch),
		T(test_allmatch_hash_and_body),
		T(test_allmatch_many_and_long),
		T(test_limits),
		T(test_two_engines),
		T(test_scan_bad_fd),
		T(test_scan_wronly_fd_reported_clean),
		T(test_scan_missing_tmpdir_reported_clean),
		T(test_load_missing_dir),
		T(test_load_malformed),
		T(test_load_error_has_newline),
		T(test_load_dangling),
		T(test_load_unreadable),
		T(test_load_no_signatures),
		T(test_load_empty_dir),
		T(test_load_error_then_scan),
		T(test_load_files_counts),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
