/* test_store_quarantine: unit tests of defs/store_quarantine.c and
 * defs/store_history.c (cmocka): quarantine of generations and of work
 * directories, finding a quarantined set, numbering, work directories and
 * their leftovers, history.jsonl. The rest of the store is tested in
 * test_store.c; the fixture (store_fixture.h) is theirs in common.
 *
 * Cases that need another identity (nobody) run in a forked child that
 * never calls cmocka: it prints what went wrong to stderr and _exit()s
 * non-zero. */
#include "defs/store.h"
#include "tests/unit/store_fixture.h"

#include <grp.h>
#include <signal.h>
#include <time.h>

/* ---- quarantine ---- */

static bool is_stamp_name(const char *name, const char *gen)
{
	size_t i;

	/* YYYYmmddTHHMMSSZ-gen-NNNNNN */
	for (i = 0; i < 8; i++)
		if (name[i] < '0' || name[i] > '9')
			return false;
	if (name[8] != 'T')
		return false;
	for (i = 9; i < 15; i++)
		if (name[i] < '0' || name[i] > '9')
			return false;
	return name[15] == 'Z' && name[16] == '-' && !strcmp(name + 17, gen);
}

static void test_quarantine(void **state)
{
	struct fx *fx = *state;
	char a[PATH_MAX], b[PATH_MAX], gdir[PATH_MAX], qpath[PATH_MAX], qdir[PATH_MAX];
	char fp[65], link[PATH_MAX], target[64];
	struct json_object *detail, *r, *d;
	const char *base;
	unsigned int g1, g2;
	ssize_t n;

	make_src(fx, "a", "one", a, sizeof(a));
	make_src(fx, "b", "two", b, sizeof(b));
	g1 = import_ok(fx, a);
	g2 = import_ok(fx, b);
	assert_int_equal(defs_store_activate(fx->s, g2), 0);
	assert_int_equal(defs_store_fingerprint(fx->s, g2, fp), 0);
	gen_dir(fx, g2, gdir, sizeof(gdir));

	detail = json_object_new_object();
	json_object_object_add(detail, "signatures", json_object_new_int(7));
	assert_int_equal(defs_store_quarantine(fx->s, g2, "test load", "cl_load failed", detail,
					       qpath, sizeof(qpath)),
			 0);

	/* moved, whole */
	assert_false(exists(gdir));
	join(qdir, sizeof(qdir), fx->root, "quarantine");
	assert_int_equal(strncmp(qpath, qdir, strlen(qdir)), 0);
	base = qpath + strlen(qdir) + 1;
	assert_true(is_stamp_name(base, "gen-000002"));
	assert_true(exists_in(qpath, "main.cvd"));
	assert_true(exists_in(qpath, "manifest.json"));
	assert_int_equal(count_entries(qpath), 3);

	r = load_json(qpath, "reason.json");
	assert_int_equal(member_int(r, "generation"), 2);
	assert_string_equal(member_str(r, "stage"), "test load");
	assert_string_equal(member_str(r, "reason"), "cl_load failed");
	assert_string_equal(member_str(r, "fingerprint"), fp);
	assert_true(json_object_get_boolean(member(r, "was_current")));
	assert_int_equal(strlen(member_str(r, "time")), strlen("2024-01-01T00:00:00Z"));
	d = member(r, "detail");
	assert_int_equal(member_int(d, "signatures"), 7);
	json_object_put(r);

	/* current dangles; the caller activates another */
	join(link, sizeof(link), fx->root, "current");
	n = readlink(link, target, sizeof(target) - 1);
	assert_true(n > 0);
	target[n] = '\0';
	assert_string_equal(target, "gen-000002");
	assert_int_equal(defs_store_current(fx->s), 0);
	assert_int_equal(defs_store_previous(fx->s, g2), g1);
	assert_int_equal(defs_store_fingerprint(fx->s, g2, fp), -ENOENT);
	assert_int_equal(defs_store_activate(fx->s, g2), -ENOENT);
	assert_int_equal(defs_store_activate(fx->s, g1), 0);

	/* not current, no detail, no qpath */
	assert_int_equal(
		defs_store_quarantine(fx->s, g1, "canary", "false positive", NULL, NULL, 0), 0);
	assert_int_equal(count_entries(qdir), 2);
	assert_true(staging_empty(fx));
}

static void test_quarantine_missing(void **state)
{
	struct fx *fx = *state;
	char qpath[PATH_MAX] = "x";
	struct json_object *detail = json_object_new_object();

	/* detail is taken over on failure too (LeakSanitizer checks) */
	assert_int_equal(
		defs_store_quarantine(fx->s, 5, "format", "bad", detail, qpath, sizeof(qpath)),
		-ENOENT);
	assert_string_equal(qpath, "");
	assert_int_equal(defs_store_quarantine(fx->s, 0, "format", "bad", NULL, NULL, 0), -ENOENT);
}

/* A time-based name that exists already gets a suffix; the existing
 * quarantine is left alone. */
static void test_quarantine_name_clash(void **state)
{
	struct fx *fx = *state;
	char a[PATH_MAX], qpath[PATH_MAX], qdir[PATH_MAX], stamp[32], path[PATH_MAX];
	time_t now = time(NULL);
	unsigned int g1;

	make_src(fx, "a", "one", a, sizeof(a));
	g1 = import_ok(fx, a);
	join(qdir, sizeof(qdir), fx->root, "quarantine");
	/* the names of this second and the next few */
	for (int i = 0; i < 3; i++) {
		time_t t = now + i;
		struct tm tm;
		char name[64];

		gmtime_r(&t, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
		snprintf(name, sizeof(name), "%s-gen-000001", stamp);
		join(path, sizeof(path), qdir, name);
		assert_int_equal(mkdir(path, 0755), 0);
	}
	assert_int_equal(
		defs_store_quarantine(fx->s, g1, "format", "bad", NULL, qpath, sizeof(qpath)), 0);
	assert_int_equal(strcmp(qpath + strlen(qpath) - 2, ".1"), 0);
	assert_true(exists_in(qpath, "reason.json"));
	assert_int_equal(count_entries(qdir), 4);
}

static void test_find_quarantined(void **state)
{
	struct fx *fx = *state;
	char a[PATH_MAX], b[PATH_MAX], qpath[PATH_MAX], found[PATH_MAX], fp1[65], fp2[65];
	char upper[65];
	unsigned int g1, g2, g3;

	make_src(fx, "a", "one", a, sizeof(a));
	make_src(fx, "b", "two", b, sizeof(b));
	g1 = import_ok(fx, a);
	g2 = import_ok(fx, b);
	assert_int_equal(defs_store_fingerprint(fx->s, g1, fp1), 0);
	assert_int_equal(defs_store_fingerprint(fx->s, g2, fp2), 0);
	assert_false(defs_store_find_quarantined(fx->s, fp1, found, sizeof(found)));

	assert_int_equal(defs_store_quarantine(fx->s, g1, "canary", "eicar missed", NULL, qpath,
					       sizeof(qpath)),
			 0);
	assert_true(defs_store_find_quarantined(fx->s, fp1, found, sizeof(found)));
	assert_string_equal(found, qpath);
	assert_true(defs_store_find_quarantined(fx->s, fp1, NULL, 0));
	for (int i = 0; i < 65; i++)
		upper[i] = (char)((fp1[i] >= 'a' && fp1[i] <= 'f') ? fp1[i] - 32 : fp1[i]);
	assert_true(defs_store_find_quarantined(fx->s, upper, NULL, 0));
	assert_false(defs_store_find_quarantined(fx->s, fp2, found, sizeof(found)));
	assert_false(defs_store_find_quarantined(fx->s, "", NULL, 0));
	assert_false(defs_store_find_quarantined(fx->s, "not a fingerprint", NULL, 0));
	assert_false(defs_store_find_quarantined(fx->s, NULL, NULL, 0));

	/* the same set imported again is recognised: what the updater asks
	 * before offering a known-bad set once more */
	g3 = import_ok(fx, a);
	assert_int_equal(defs_store_fingerprint(fx->s, g3, fp2), 0);
	assert_string_equal(fp2, fp1);
	assert_true(defs_store_find_quarantined(fx->s, fp2, NULL, 0));

	/* a crash right after the move left no reason.json: the manifest
	 * still names it */
	join(found, sizeof(found), qpath, "reason.json");
	assert_int_equal(unlink(found), 0);
	assert_true(defs_store_find_quarantined(fx->s, fp1, found, sizeof(found)));
	assert_string_equal(found, qpath);
}

/* A quarantined generation's number is never handed out again, neither by
 * this handle nor after a restart, nor when its quarantine was cleaned
 * while current still names it. */
static void test_numbering_no_reuse(void **state)
{
	struct fx *fx = *state;
	char a[PATH_MAX], qpath[PATH_MAX];
	unsigned int g;

	make_src(fx, "a", "one", a, sizeof(a));
	assert_int_equal(import_ok(fx, a), 1);
	assert_int_equal(import_ok(fx, a), 2);
	assert_int_equal(import_ok(fx, a), 3);
	assert_int_equal(defs_store_quarantine(fx->s, 3, "format", "bad", NULL, NULL, 0), 0);
	assert_int_equal(import_ok(fx, a), 4);

	/* every generation quarantined (3 already is), then reopened */
	for (g = 1; g <= 4; g++)
		if (g != 3)
			assert_int_equal(
				defs_store_quarantine(fx->s, g, "format", "bad", NULL, NULL, 0), 0);
	defs_store_close(fx->s);
	fx->s = defs_store_open(fx->root, 2, fx->err);
	assert_non_null(fx->s);
	assert_int_equal(import_ok(fx, a), 5);

	/* the quarantine of 6 is cleaned up, current still names it */
	assert_int_equal(import_ok(fx, a), 6);
	assert_int_equal(defs_store_activate(fx->s, 6), 0);
	assert_int_equal(
		defs_store_quarantine(fx->s, 6, "test load", "crash", NULL, qpath, sizeof(qpath)),
		0);
	rm_tree(qpath);
	assert_int_equal(import_ok(fx, a), 7);
}

static void test_previous(void **state)
{
	struct fx *fx = *state;
	char a[PATH_MAX];

	make_src(fx, "a", "one", a, sizeof(a));
	assert_int_equal(defs_store_previous(fx->s, 1), 0);
	for (int i = 0; i < 5; i++)
		import_ok(fx, a);
	assert_int_equal(defs_store_quarantine(fx->s, 4, "format", "bad", NULL, NULL, 0), 0);
	assert_int_equal(defs_store_previous(fx->s, 5), 3); /* 4 no longer exists */
	assert_int_equal(defs_store_previous(fx->s, 3), 2);
	assert_int_equal(defs_store_previous(fx->s, 2), 1);
	assert_int_equal(defs_store_previous(fx->s, 1), 0);
	assert_int_equal(defs_store_previous(fx->s, 100), 5);
	assert_int_equal(defs_store_previous(fx->s, 0), 0);
}

/* ---- work directories ---- */

/* Whether name is "work-<pid>-<seq>-<tag>"; the seq into *seq. */
static bool is_work_name(const char *name, pid_t pid, const char *tag, unsigned int *seq)
{
	char prefix[64];
	size_t n;

	n = (size_t)snprintf(prefix, sizeof(prefix), "work-%ld-", (long)pid);
	if (strncmp(name, prefix, n))
		return false;
	name += n;
	*seq = 0;
	for (n = 0; name[n] >= '0' && name[n] <= '9'; n++)
		*seq = *seq * 10 + (unsigned int)(name[n] - '0');
	return n > 0 && name[n] == '-' && !strcmp(name + n + 1, tag);
}

static void test_make_work(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX], path2[PATH_MAX], staging[PATH_MAX], small[16], a[PATH_MAX];
	char long_tag[100], want_tag[33];
	unsigned int seq1, seq2;
	struct stat st;
	mode_t old;

	join(staging, sizeof(staging), fx->root, "staging");
	old = umask(0277); /* even so: rwx for its owner */
	assert_int_equal(defs_store_make_work(fx->s, "validate", NOBODY_ID, NOBODY_ID, path,
					      sizeof(path), fx->err),
			 0);
	umask(old);
	assert_int_equal(strncmp(path, staging, strlen(staging)), 0);
	assert_int_equal(path[strlen(staging)], '/');
	assert_true(is_work_name(path + strlen(staging) + 1, getpid(), "validate", &seq1));
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(st.st_uid, NOBODY_ID);
	assert_int_equal(st.st_gid, NOBODY_ID);

	/* uid -1: the caller's; tags sanitised and cut; NULL tag */
	assert_int_equal(defs_store_make_work(fx->s, "a/b c..?\n", (uid_t)-1, (gid_t)-1, path2,
					      sizeof(path2), fx->err),
			 0);
	assert_true(is_work_name(path2 + strlen(staging) + 1, getpid(), "a_b_c..__", &seq2));
	assert_true(seq2 > seq1);
	assert_int_equal(lstat(path2, &st), 0);
	assert_int_equal(st.st_uid, geteuid());
	memset(long_tag, 'x', sizeof(long_tag) - 1);
	long_tag[sizeof(long_tag) - 1] = '\0';
	memset(want_tag, 'x', 32);
	want_tag[32] = '\0';
	assert_int_equal(defs_store_make_work(fx->s, long_tag, (uid_t)-1, (gid_t)-1, path2,
					      sizeof(path2), fx->err),
			 0);
	assert_true(is_work_name(path2 + strlen(staging) + 1, getpid(), want_tag, &seq2));
	assert_int_equal(
		defs_store_make_work(fx->s, NULL, (uid_t)-1, (gid_t)-1, path2, sizeof(path2), NULL),
		0);
	assert_true(is_work_name(path2 + strlen(staging) + 1, getpid(), "work", &seq2));
	assert_int_equal(count_entries(staging), 4);

	/* no room for the path: nothing created */
	assert_int_equal(defs_store_make_work(fx->s, "x", (uid_t)-1, (gid_t)-1, small,
					      sizeof(small), fx->err),
			 -ENAMETOOLONG);
	assert_string_equal(small, "");
	assert_int_equal(count_entries(staging), 4);

	/* work directories, whatever their tag, do not enter the numbering */
	assert_int_equal(defs_store_make_work(fx->s, "gen-000500", (uid_t)-1, (gid_t)-1, path2,
					      sizeof(path2), fx->err),
			 0);
	make_src(fx, "a", "one", a, sizeof(a));
	assert_int_equal(import_ok(fx, a), 1);
}

/* open leaves the work of another live process alone (also another
 * user's, which kill(pid, 0) answers with EPERM) and removes that of dead
 * ones and its own pid's. */
static void test_work_leftovers(void **state)
{
	struct fx *fx = *state;
	char staging[PATH_MAX], path[PATH_MAX], live[PATH_MAX], c;
	int to_parent[2], to_child[2];
	pid_t pid, dead;

	join(staging, sizeof(staging), fx->root, "staging");
	/* a process that died */
	dead = fork();
	assert_true(dead >= 0);
	if (dead == 0)
		_exit(0);
	wait_ok(dead);
	FMT(path, "%s/work-%ld-1-dead", staging, (long)dead);
	assert_int_equal(mkdir(path, 0700), 0);
	write_text(path, "file", "x");
	/* an earlier process with our pid */
	FMT(path, "%s/work-%ld-9-mine", staging, (long)getpid());
	assert_int_equal(mkdir(path, 0700), 0);
	/* a live one, with its own handle */
	assert_int_equal(pipe(to_parent), 0);
	assert_int_equal(pipe(to_child), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[256];
		struct defs_store *s;

		/* EOF on to_child when the parent is gone, whatever happens */
		close(to_parent[0]);
		close(to_child[1]);
		s = defs_store_open(fx->root, 2, err);

		CHILD_CHECK(s != NULL);
		CHILD_CHECK(defs_store_make_work(s, "cli", (uid_t)-1, (gid_t)-1, live, sizeof(live),
						 err) == 0);
		write_text(live, "file", "in progress");
		CHILD_CHECK(write(to_parent[1], live, strlen(live) + 1) ==
			    (ssize_t)strlen(live) + 1);
		CHILD_CHECK(read(to_child[0], &c, 1) == 1);
		defs_store_close(s);
		_exit(0);
	}
	close(to_parent[1]);
	close(to_child[0]);
	assert_true(read(to_parent[0], live, sizeof(live)) > 0);
	close(to_parent[0]);
	/* a stray file named like work of a live process is no work */
	FMT(path, "%s/work-%ld-5-file", staging, (long)pid);
	write_text(staging, strrchr(path, '/') + 1, "x");

	defs_store_close(fx->s);
	fx->s = defs_store_open(fx->root, 2, fx->err);
	assert_non_null(fx->s);
	assert_int_equal(count_entries(staging), 1);
	assert_true(exists_in(live, "file"));

	/* once it is gone, its work goes at the next open */
	assert_int_equal(write(to_child[1], "x", 1), 1);
	close(to_child[1]);
	wait_ok(pid);
	defs_store_close(fx->s);
	fx->s = defs_store_open(fx->root, 2, fx->err);
	assert_non_null(fx->s);
	assert_true(staging_empty(fx));

	/* another user's live process: pid 1 as seen by nobody (EPERM), in
	 * a store nobody owns */
	if (geteuid() != 0)
		return;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char root[PATH_MAX], err[256], w1[PATH_MAX], w2[PATH_MAX];
		struct defs_store *s;

		join(root, sizeof(root), fx->base, "nobody");
		CHILD_CHECK(mkdir(root, 0755) == 0 && chown(root, NOBODY_ID, NOBODY_ID) == 0);
		CHILD_CHECK((size_t)snprintf(w1, sizeof(w1), "%s/staging", root) < sizeof(w1));
		CHILD_CHECK(mkdir(w1, 0755) == 0 && chown(w1, NOBODY_ID, NOBODY_ID) == 0);
		CHILD_CHECK((size_t)snprintf(w1, sizeof(w1), "%s/staging/work-1-1-init", root) <
			    sizeof(w1));
		CHILD_CHECK(mkdir(w1, 0700) == 0);
		CHILD_CHECK((size_t)snprintf(w2, sizeof(w2), "%s/staging/work-%ld-1-dead", root,
					     (long)dead) < sizeof(w2));
		CHILD_CHECK(mkdir(w2, 0700) == 0 && chown(w2, NOBODY_ID, NOBODY_ID) == 0);
		CHILD_CHECK(setgroups(0, NULL) == 0);
		CHILD_CHECK(setgid(NOBODY_ID) == 0);
		CHILD_CHECK(setuid(NOBODY_ID) == 0);
		CHILD_CHECK(kill(1, 0) < 0 && errno == EPERM);
		s = defs_store_open(root, 2, err);
		CHILD_CHECK(s != NULL);
		CHILD_CHECK(exists(w1));
		CHILD_CHECK(!exists(w2));
		defs_store_close(s);
		_exit(0);
	}
	wait_ok(pid);
}

/* ---- quarantine of work directories ---- */

static void make_work_set(struct fx *fx, const char *tag, char *work, size_t len)
{
	char set[PATH_MAX];

	assert_int_equal(defs_store_make_work(fx->s, tag, NOBODY_ID, NOBODY_ID, work, len, fx->err),
			 0);
	join(set, sizeof(set), work, "set");
	assert_int_equal(mkdir(set, 0755), 0);
	write_text(set, "main.cvd", "main");
	write_text(set, "daily.cld", "daily");
	write_text(set, ".partial", "not part of the set");
	write_text(work, "log.txt", "outside the set");
}

static void test_quarantine_dir(void **state)
{
	struct fx *fx = *state;
	char work[PATH_MAX], qpath[PATH_MAX], qdir[PATH_MAX], found[PATH_MAX], fp[65];
	char set[PATH_MAX], path[PATH_MAX];
	struct json_object *detail, *r;
	const char *base;
	struct stat st;
	unsigned int g;

	/* the fingerprint an import of the same files gets */
	make_work_set(fx, "validate", work, sizeof(work));
	join(set, sizeof(set), work, "set");
	g = import_ok(fx, set);
	assert_int_equal(defs_store_fingerprint(fx->s, g, fp), 0);

	detail = json_object_new_object();
	json_object_object_add(detail, "missed", json_object_new_string("eicar"));
	assert_int_equal(defs_store_quarantine_dir(fx->s, work, "update bad/label", "canary",
						   "false positive", detail, qpath, sizeof(qpath)),
			 0);
	assert_false(exists(work));
	join(qdir, sizeof(qdir), fx->root, "quarantine");
	assert_int_equal(strncmp(qpath, qdir, strlen(qdir)), 0);
	base = qpath + strlen(qdir) + 1;
	assert_true(is_stamp_name(base, "update_bad_label"));
	assert_true(exists_in(qpath, "log.txt"));
	join(path, sizeof(path), qpath, "set");
	assert_true(exists_in(path, "main.cvd"));
	/* its filler has no more say over it */
	assert_int_equal(lstat(qpath, &st), 0);
	assert_int_equal(st.st_uid, geteuid());

	r = load_json(qpath, "reason.json");
	assert_true(json_object_object_get_ex(r, "generation", NULL));
	assert_null(member(r, "generation"));
	assert_string_equal(member_str(r, "stage"), "canary");
	assert_string_equal(member_str(r, "reason"), "false positive");
	assert_string_equal(member_str(r, "fingerprint"), fp);
	assert_false(json_object_get_boolean(member(r, "was_current")));
	assert_true(json_object_is_type(member(r, "was_current"), json_type_boolean));
	assert_int_equal(strlen(member_str(r, "time")), strlen("2024-01-01T00:00:00Z"));
	assert_string_equal(member_str(member(r, "detail"), "missed"), "eicar");
	json_object_put(r);
	assert_true(defs_store_find_quarantined(fx->s, fp, found, sizeof(found)));
	assert_string_equal(found, qpath);
	/* a crash right after the move left no reason.json: its set/ names it */
	join(path, sizeof(path), qpath, "reason.json");
	assert_int_equal(unlink(path), 0);
	found[0] = '\0';
	assert_true(defs_store_find_quarantined(fx->s, fp, found, sizeof(found)));
	assert_string_equal(found, qpath);

	/* no set/: fingerprint null; same label: a suffix; no detail, qpath */
	assert_int_equal(
		defs_store_make_work(fx->s, "x", (uid_t)-1, (gid_t)-1, work, sizeof(work), NULL),
		0);
	assert_int_equal(defs_store_quarantine_dir(fx->s, work, "update bad/label", "unpack", "bad",
						   NULL, qpath, sizeof(qpath)),
			 0);
	assert_int_equal(strcmp(qpath + strlen(qpath) - 2, ".1"), 0);
	r = load_json(qpath, "reason.json");
	assert_null(member(r, "fingerprint"));
	assert_null(member(r, "detail"));
	json_object_put(r);
	assert_int_equal(
		defs_store_make_work(fx->s, "x", (uid_t)-1, (gid_t)-1, work, sizeof(work), NULL),
		0);
	assert_int_equal(defs_store_quarantine_dir(fx->s, work, NULL, NULL, NULL, NULL, NULL, 0),
			 0);
	assert_int_equal(count_entries(qdir), 3);
	assert_true(staging_empty(fx));
	assert_true(defs_store_find_quarantined(fx->s, fp, NULL, 0));

	/* a label like a generation's does not enter the numbering */
	assert_int_equal(
		defs_store_make_work(fx->s, "x", (uid_t)-1, (gid_t)-1, work, sizeof(work), NULL),
		0);
	assert_int_equal(defs_store_quarantine_dir(fx->s, work, "gen-000500", "s", "r", NULL, qpath,
						   sizeof(qpath)),
			 0);
	assert_true(is_stamp_name(qpath + strlen(qdir) + 1, "gen_000500"));
	defs_store_close(fx->s);
	fx->s = defs_store_open(fx->root, 2, fx->err);
	assert_non_null(fx->s);
	make_src(fx, "b", "two", path, sizeof(path));
	assert_int_equal(import_ok(fx, path), g + 1);
}

/* Only a directory directly inside this store's staging/ can be moved;
 * detail is taken over on every failure (LeakSanitizer checks). */
static void test_quarantine_dir_errors(void **state)
{
	struct fx *fx = *state;
	char work[PATH_MAX], path[PATH_MAX], staging[PATH_MAX], qdir[PATH_MAX];
	char qpath[PATH_MAX], other[PATH_MAX], cwd[PATH_MAX];
	struct defs_store *s2;
	struct {
		const char *path;
		int want;
	} cases[8];
	size_t n = 0;

	join(staging, sizeof(staging), fx->root, "staging");
	join(qdir, sizeof(qdir), fx->root, "quarantine");
	make_work_set(fx, "w", work, sizeof(work));
	cases[n].path = fx->src; /* elsewhere */
	cases[n++].want = -EINVAL;
	cases[n].path = staging; /* staging itself */
	cases[n++].want = -EINVAL;
	join(path, sizeof(path), work, "set"); /* not directly inside */
	cases[n].path = path;
	cases[n++].want = -EINVAL;
	write_text(staging, "file", "x"); /* no directory */
	join(other, sizeof(other), staging, "file");
	cases[n].path = other;
	cases[n++].want = -EINVAL;
	cases[n].path = "/nonexistent/work";
	cases[n++].want = -ENOENT;
	for (size_t i = 0; i < n; i++) {
		struct json_object *detail = json_object_new_object();

		strcpy(qpath, "x");
		assert_int_equal(defs_store_quarantine_dir(fx->s, cases[i].path, "l", "s", "r",
							   detail, qpath, sizeof(qpath)),
				 cases[i].want);
		assert_string_equal(qpath, "");
	}
	assert_int_equal(defs_store_quarantine_dir(fx->s, NULL, "l", "s", "r", NULL, NULL, 0),
			 -EINVAL);
	/* a symlink in staging to a directory elsewhere */
	join(path, sizeof(path), staging, "link");
	assert_int_equal(symlink(fx->src, path), 0);
	assert_int_equal(defs_store_quarantine_dir(fx->s, path, "l", "s", "r", NULL, NULL, 0),
			 -EINVAL);
	assert_true(exists(fx->src));
	/* a directory of the same name, next to staging rather than in it */
	join(path, sizeof(path), fx->root, strrchr(work, '/') + 1);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(defs_store_quarantine_dir(fx->s, path, "l", "s", "r", NULL, NULL, 0),
			 -EINVAL);
	assert_int_equal(rmdir(path), 0);
	/* another store's staging */
	join(path, sizeof(path), fx->base, "other");
	s2 = defs_store_open(path, 2, fx->err);
	assert_non_null(s2);
	assert_int_equal(defs_store_quarantine_dir(s2, work, "l", "s", "r", NULL, NULL, 0),
			 -EINVAL);
	defs_store_close(s2);
	assert_int_equal(count_entries(qdir), 0);
	assert_true(exists(work));

	/* a relative path to the right place is fine */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(staging), 0);
	assert_int_equal(defs_store_quarantine_dir(fx->s, strrchr(work, '/') + 1, "rel", "s", "r",
						   NULL, qpath, sizeof(qpath)),
			 0);
	assert_int_equal(chdir(cwd), 0);
	assert_int_equal(count_entries(qdir), 1);
	assert_false(exists(work));
}

/* ---- history ---- */

static size_t count_lines(const char *path)
{
	size_t len, n = 0;
	char *text = read_all(path, &len);

	for (size_t i = 0; i < len; i++)
		n += text[i] == '\n';
	free(text);
	return n;
}

static void test_history(void **state)
{
	struct fx *fx = *state;
	struct json_object *h, *e, *detail;
	char path[PATH_MAX];
	struct stat st;
	mode_t old;

	/* none yet: empty */
	h = defs_store_history_json(fx->s, 0);
	assert_non_null(h);
	assert_int_equal(json_object_array_length(h), 0);
	json_object_put(h);

	old = umask(077);
	detail = json_object_new_object();
	json_object_object_add(detail, "source", json_object_new_string("/var/lib/x\nnewline"));
	json_object_object_add(detail, "files", json_object_new_int(3));
	assert_int_equal(defs_store_history_add(fx->s, "imported", 7, detail), 0);
	umask(old);
	join(path, sizeof(path), fx->root, "history.jsonl");
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(defs_store_history_add(fx->s, "activated", 7, NULL), 0);
	assert_int_equal(defs_store_history_add(fx->s, "rolled back", 0, json_object_new_object()),
			 0);
	assert_int_equal(count_lines(path), 3); /* one line each, whatever they hold */

	h = defs_store_history_json(fx->s, 0);
	assert_non_null(h);
	assert_int_equal(json_object_array_length(h), 3);
	e = json_object_array_get_idx(h, 0); /* oldest first */
	{
		static const char *const keys[] = {"time", "event", "generation", "source",
						   "files"};
		size_t i = 0;

		json_object_object_foreach(e, key, val)
		{
			assert_true(i < 5);
			assert_string_equal(key, keys[i]);
			i++;
		}
		assert_int_equal(i, 5);
	}
	assert_int_equal(strlen(member_str(e, "time")), strlen("2024-01-01T00:00:00Z"));
	assert_int_equal(member_str(e, "time")[19], 'Z');
	assert_string_equal(member_str(e, "event"), "imported");
	assert_int_equal(member_int(e, "generation"), 7);
	assert_string_equal(member_str(e, "source"), "/var/lib/x\nnewline");
	assert_int_equal(member_int(e, "files"), 3);
	e = json_object_array_get_idx(h, 2);
	assert_string_equal(member_str(e, "event"), "rolled back");
	assert_null(member(e, "generation"));
	json_object_put(h);

	/* the last max */
	h = defs_store_history_json(fx->s, 2);
	assert_non_null(h);
	assert_int_equal(json_object_array_length(h), 2);
	assert_string_equal(member_str(json_object_array_get_idx(h, 0), "event"), "activated");
	json_object_put(h);
	h = defs_store_history_json(fx->s, 10);
	assert_int_equal(json_object_array_length(h), 3);
	json_object_put(h);

	/* errors append nothing; detail is taken over (LeakSanitizer) */
	detail = json_object_new_object();
	json_object_object_add(detail, "generation", json_object_new_int(1));
	assert_int_equal(defs_store_history_add(fx->s, "x", 1, detail), -EINVAL);
	detail = json_object_new_object();
	json_object_object_add(detail, "time", json_object_new_int(1));
	assert_int_equal(defs_store_history_add(fx->s, "x", 1, detail), -EINVAL);
	detail = json_object_new_object();
	json_object_object_add(detail, "event", json_object_new_int(1));
	assert_int_equal(defs_store_history_add(fx->s, "x", 1, detail), -EINVAL);
	assert_int_equal(defs_store_history_add(fx->s, NULL, 1, json_object_new_object()), -EINVAL);
	assert_int_equal(defs_store_history_add(fx->s, "", 1, NULL), -EINVAL);
	assert_int_equal(defs_store_history_add(fx->s, "x", 1, json_object_new_array()), -EINVAL);
	assert_int_equal(count_lines(path), 3);
}

/* A line torn by a crash (no newline) is skipped by readers and ended by
 * the next append, which is not lost with it. Other malformed lines are
 * skipped too. */
static void test_history_torn(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX];
	struct json_object *h;
	int fd;

	assert_int_equal(defs_store_history_add(fx->s, "first", 1, NULL), 0);
	join(path, sizeof(path), fx->root, "history.jsonl");
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	assert_true(fd >= 0);
	{
		static const char junk[] = "[1]\n{} {}\n\n{\"time\": \"2024";

		assert_int_equal(write(fd, junk, strlen(junk)), (ssize_t)strlen(junk));
	}
	close(fd);
	h = defs_store_history_json(fx->s, 0);
	assert_non_null(h);
	assert_int_equal(json_object_array_length(h), 1);
	json_object_put(h);

	assert_int_equal(defs_store_history_add(fx->s, "second", 2, NULL), 0);
	h = defs_store_history_json(fx->s, 0);
	assert_non_null(h);
	assert_int_equal(json_object_array_length(h), 2);
	assert_string_equal(member_str(json_object_array_get_idx(h, 0), "event"), "first");
	assert_string_equal(member_str(json_object_array_get_idx(h, 1), "event"), "second");
	json_object_put(h);
}

/* Past DEFS_HISTORY_MAX the file is first cut to its newest half. */
static void test_history_halved(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX], pad[1001];
	struct json_object *h, *e;
	size_t nlines = 0, want;
	struct stat st;
	FILE *f;

	memset(pad, 'p', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	join(path, sizeof(path), fx->root, "history.jsonl");
	f = fopen(path, "w");
	assert_non_null(f);
	/* just past the limit: it is not cut at exactly the limit */
	while (ftell(f) <= (long)DEFS_HISTORY_MAX)
		fprintf(f, "{\"event\": \"old\", \"i\": %zu, \"pad\": \"%s\"}\n", nlines++, pad);
	assert_int_equal(fclose(f), 0);

	assert_int_equal(defs_store_history_add(fx->s, "new", 3, NULL), 0);
	want = nlines / 2 + 1;
	assert_int_equal(count_lines(path), want);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size < (off_t)DEFS_HISTORY_MAX);
	assert_int_equal(st.st_mode & 07777, 0644);
	h = defs_store_history_json(fx->s, 0);
	assert_non_null(h);
	assert_int_equal(json_object_array_length(h), want);
	e = json_object_array_get_idx(h, 0); /* the oldest kept: the newest half */
	assert_int_equal(member_int(e, "i"), (int64_t)(nlines - nlines / 2));
	e = json_object_array_get_idx(h, want - 2);
	assert_int_equal(member_int(e, "i"), (int64_t)(nlines - 1));
	e = json_object_array_get_idx(h, want - 1);
	assert_string_equal(member_str(e, "event"), "new");
	json_object_put(h);
	assert_int_equal(count_entries(fx->root), 3); /* staging quarantine history.jsonl */
	assert_int_equal(defs_store_history_add(fx->s, "newer", 4, NULL), 0);
	assert_int_equal(count_lines(path), want + 1); /* under the limit: appended only */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_quarantine),
		T(test_quarantine_missing),
		T(test_quarantine_name_clash),
		T(test_find_quarantined),
		T(test_numbering_no_reuse),
		T(test_previous),
		T(test_make_work),
		T(test_work_leftovers),
		T(test_quarantine_dir),
		T(test_quarantine_dir_errors),
		T(test_history),
		T(test_history_torn),
		T(test_history_halved),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
