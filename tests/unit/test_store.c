/* test_store: unit tests of defs/store.c (cmocka): import, current,
 * prune, listing, open, import metadata, manifests and crash safety; the
 * quarantine, work directories and history are in test_store_quarantine.c,
 * the fixture in store_fixture.h.
 *
 * Each test gets a private tree under /tmp (a real, journaling file system:
 * the fsyncs and renames are the ones production sees) holding the store
 * and a source directory; a second source directory lives on /dev/shm when
 * there is one, so that imports go through both copy_file_range and the
 * read/write fallback (copy_file_range refuses tmpfs -> ext4).
 *
 * Cases that need another identity (nobody) or a second process holding
 * the store lock run in a forked child that never calls cmocka: it prints
 * what went wrong to stderr and _exit()s non-zero.
 *
 * The crash-safety test runs this binary again ("--crash-child ROOT SRC")
 * as a writer that util_crash_point kills (SCANENGINE_CRASH_POINT=n), one
 * process per point, and checks what the next open finds. */
#include "defs/store.h"
#include "tests/unit/store_fixture.h"

#include <grp.h>
#include <signal.h>
#include <sys/file.h>
#include <time.h>

/* ---- import ---- */

struct sample {
	const char *name;
	size_t len;
	char *data;
};

/* A set with a large file (several copy chunks), an empty one, binary
 * content and names whose byte order differs from most locales' order. */
static void make_samples(struct sample *v, size_t n)
{
	static const char *const names[] = {"daily.cld", "B.ign2", "a.cvd", "z-empty.hdb"};
	static const size_t lens[] = {300 * 1024 + 17, 40, 4096, 0};
	unsigned int seed = 42;

	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++) {
		v[i].name = names[i];
		v[i].len = lens[i];
		v[i].data = malloc(lens[i] + 1);
		assert_non_null(v[i].data);
		for (size_t j = 0; j < lens[i]; j++)
			v[i].data[j] = (char)(rand_r(&seed) & 0xff);
	}
}

static void free_samples(struct sample *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].data);
}

static int cmp_sample(const void *a, const void *b)
{
	return strcmp(((const struct sample *)a)->name, ((const struct sample *)b)->name);
}

/* The fingerprint as store.h defines it, computed here independently:
 * SHA-256 over "<sha256 hex>  <name>\n" of the files in byte order. */
static void expected_fingerprint(struct sample *v, size_t n, char *hex)
{
	char text[4096] = "", sha[65], line[512];

	qsort(v, n, sizeof(*v), cmp_sample);
	for (size_t i = 0; i < n; i++) {
		sha256_hex(v[i].data, v[i].len, sha);
		snprintf(line, sizeof(line), "%s  %s\n", sha, v[i].name);
		strcat(text, line);
	}
	sha256_hex(text, strlen(text), hex);
}

static void check_import(struct fx *fx, const char *src)
{
	struct sample v[4];
	char gdir[PATH_MAX], path[PATH_MAX], src_path[PATH_MAX], fp[65], want_fp[65], sha[65];
	char real_src[PATH_MAX];
	struct json_object *m, *files;
	const char *created;
	struct stat st, sst;
	unsigned int gen;
	mode_t old_umask;

	make_samples(v, 4);
	for (size_t i = 0; i < 4; i++)
		write_file(src, v[i].name, v[i].data, v[i].len);
	/* the modes must not depend on the caller's umask */
	old_umask = umask(077);
	gen = import_ok(fx, src);
	umask(old_umask);
	assert_int_equal(gen, 1);
	assert_int_equal(defs_store_current(fx->s), 0); /* not activated */
	assert_true(staging_empty(fx));

	gen_dir(fx, gen, gdir, sizeof(gdir));
	assert_int_equal(lstat(gdir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(count_entries(gdir), 5); /* 4 files + manifest.json */

	for (size_t i = 0; i < 4; i++) {
		size_t len;
		char *data;

		join(path, sizeof(path), gdir, v[i].name);
		assert_int_equal(lstat(path, &st), 0);
		assert_true(S_ISREG(st.st_mode));
		assert_int_equal(st.st_mode & 07777, 0644);
		/* a copy, not a link to the source */
		join(src_path, sizeof(src_path), src, v[i].name);
		assert_int_equal(stat(src_path, &sst), 0);
		assert_int_equal(st.st_nlink, 1);
		assert_true(st.st_ino != sst.st_ino || st.st_dev != sst.st_dev);
		data = read_all(path, &len);
		assert_int_equal(len, v[i].len);
		assert_memory_equal(data, v[i].data, len);
		free(data);
	}
	join(path, sizeof(path), gdir, "manifest.json");
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);

	/* manifest fields */
	expected_fingerprint(v, 4, want_fp);
	m = load_json(gdir, "manifest.json");
	assert_int_equal(member_int(m, "manifest_version"), DEFS_MANIFEST_VERSION);
	assert_int_equal(member_int(m, "generation"), 1);
	created = member_str(m, "created");
	{
		struct tm tm = {0};
		const char *end = strptime(created, "%Y-%m-%dT%H:%M:%SZ", &tm);
		time_t t = timegm(&tm);

		assert_non_null(end);
		assert_int_equal(*end, '\0');
		assert_true(t <= time(NULL) && t > time(NULL) - 600);
	}
	assert_non_null(realpath(src, real_src));
	assert_string_equal(member_str(m, "source"), real_src);
	assert_int_equal(json_object_array_length(member(m, "skipped")), 0);
	files = member(m, "files");
	assert_int_equal(json_object_array_length(files), 4);
	for (size_t i = 0; i < 4; i++) { /* v is sorted now, as files must be */
		struct json_object *f = json_object_array_get_idx(files, i);

		assert_string_equal(member_str(f, "name"), v[i].name);
		assert_int_equal(member_int(f, "size"), (int64_t)v[i].len);
		sha256_hex(v[i].data, v[i].len, sha);
		assert_string_equal(member_str(f, "sha256"), sha);
	}
	assert_string_equal(v[0].name, "B.ign2"); /* byte order, not locale order */
	assert_string_equal(member_str(m, "fingerprint"), want_fp);
	assert_int_equal(defs_store_fingerprint(fx->s, gen, fp), 0);
	assert_string_equal(fp, want_fp);
	json_object_put(m);

	/* the source may change in place later; the generation does not */
	write_text(src, "a.cvd", "changed");
	for (size_t i = 0; i < 4; i++) {
		if (!strcmp(v[i].name, "a.cvd")) {
			size_t len;
			char *data;

			join(path, sizeof(path), gdir, "a.cvd");
			data = read_all(path, &len);
			assert_int_equal(len, v[i].len);
			assert_memory_equal(data, v[i].data, len);
			free(data);
		}
	}
	free_samples(v, 4);
}

/* Same file system: copy_file_range. */
static void test_import_same_fs(void **state)
{
	struct fx *fx = *state;

	check_import(fx, fx->src);
}

/* From /dev/shm to /tmp: the read/write fallback. */
static void test_import_other_fs(void **state)
{
	struct fx *fx = *state;

	check_import(fx, fx->src_shm);
}

/* The fingerprint is what coreutils computes: an operator can check it
 * with sha256sum alone. */
static void test_fingerprint_is_sha256sum(void **state)
{
	struct fx *fx = *state;
	char gdir[PATH_MAX], cmd[PATH_MAX + 256], out[128] = "", fp[65];
	struct sample v[4];
	unsigned int gen;
	FILE *p;

	if (system("command -v sha256sum >/dev/null 2>&1") != 0)
		skip();
	make_samples(v, 4);
	for (size_t i = 0; i < 4; i++)
		write_file(fx->src, v[i].name, v[i].data, v[i].len);
	free_samples(v, 4);
	gen = import_ok(fx, fx->src);
	gen_dir(fx, gen, gdir, sizeof(gdir));
	snprintf(
		cmd, sizeof(cmd),
		"cd '%s' && LC_ALL=C sha256sum $(LC_ALL=C ls | grep -vx manifest.json) | sha256sum",
		gdir);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(out, sizeof(out), p));
	assert_int_equal(pclose(p), 0);
	out[64] = '\0';
	assert_int_equal(defs_store_fingerprint(fx->s, gen, fp), 0);
	assert_string_equal(fp, out);
}

static void test_fingerprint_equal_sets(void **state)
{
	struct fx *fx = *state;
	char a[PATH_MAX], b[PATH_MAX], c[PATH_MAX], d[PATH_MAX];
	char fa[65], fb[65], fc[65], fd[65];
	unsigned int ga, gb, gc, gd;

	/* same names and contents from another directory (on another file
	 * system when there is one), written in another order, other modes */
	make_src(fx, "a", "x", a, sizeof(a));
	write_text(a, "daily.cld", "daily");
	join(b, sizeof(b), fx->src_shm, "b");
	assert_int_equal(mkdir(b, 0700), 0);
	write_text(b, "daily.cld", "daily");
	write_text(b, "main.cvd", "x");
	join(c, sizeof(c), b, "main.cvd");
	assert_int_equal(chmod(c, 0444), 0);
	ga = import_ok(fx, a);
	gb = import_ok(fx, b);
	assert_int_equal(defs_store_fingerprint(fx->s, ga, fa), 0);
	assert_int_equal(defs_store_fingerprint(fx->s, gb, fb), 0);
	assert_string_equal(fa, fb);

	/* a generation re-imported (its manifest.json is not part of the set) */
	gen_dir(fx, ga, c, sizeof(c));
	gc = import_ok(fx, c);
	assert_int_equal(defs_store_fingerprint(fx->s, gc, fc), 0);
	assert_string_equal(fa, fc);

	/* one byte differs */
	make_src(fx, "c", "x", c, sizeof(c));
	write_text(c, "daily.cld", "dailY");
	gc = import_ok(fx, c);
	assert_int_equal(defs_store_fingerprint(fx->s, gc, fc), 0);
	assert_string_not_equal(fa, fc);

	/* same contents under another name */
	make_src(fx, "d", "x", d, sizeof(d));
	write_text(d, "daily.cud", "daily");
	gd = import_ok(fx, d);
	assert_int_equal(defs_store_fingerprint(fx->s, gd, fd), 0);
	assert_string_not_equal(fa, fd);
	assert_string_not_equal(fc, fd);
}

static void test_import_empty(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX], qdir[PATH_MAX];
	unsigned int gen = 777;
	struct json_object *list;

	/* nothing at all */
	fx->err[0] = '\0';
	assert_int_equal(defs_store_import_dir(fx->s, fx->src, NULL, &gen, fx->err), -ENOENT);
	assert_true(fx->err[0] != '\0');
	assert_int_equal(gen, 777);

	/* only what is skipped */
	join(path, sizeof(path), fx->src, "sub");
	assert_int_equal(mkdir(path, 0755), 0);
	write_text(path, "inner.cvd", "inner");
	write_text(fx->src, ".hidden.cvd", "hidden");
	fx->err[0] = '\0';
	assert_int_equal(defs_store_import_dir(fx->s, fx->src, NULL, &gen, fx->err), -ENOENT);
	assert_true(fx->err[0] != '\0');

	/* no such directory */
	join(path, sizeof(path), fx->base, "missing");
	assert_int_equal(defs_store_import_dir(fx->s, path, NULL, &gen, fx->err), -ENOENT);

	assert_int_equal(gen, 777);
	list = defs_store_list_json(fx->s);
	assert_non_null(list);
	assert_int_equal(json_object_array_length(list), 0);
	json_object_put(list);
	assert_true(staging_empty(fx));
	join(qdir, sizeof(qdir), fx->root, "quarantine");
	assert_int_equal(count_entries(qdir), 0);
}

static void test_import_skips(void **state)
{
	struct fx *fx = *state;
	static const struct {
		const char *name, *reason;
	} want[] = {
		{".hidden.cvd", "dot file"},
		{"back\\slash.cvd", "name with a backslash or newline"},
		{"escape.cvd", "symbolic link"},
		{"fifo", "not a regular file"},
		{"link.cvd", "symbolic link"},
		{"manifest.json", "reserved name"},
		{"sub", "directory"},
	};
	char path[PATH_MAX], gdir[PATH_MAX];
	struct json_object *m, *skipped, *files;
	unsigned int gen;

	write_text(fx->src, "good.cvd", "good");
	join(path, sizeof(path), fx->src, "sub");
	assert_int_equal(mkdir(path, 0755), 0);
	write_text(path, "inner.cvd", "inner");
	write_text(fx->src, ".hidden.cvd", "hidden");
	write_text(fx->src, "back\\slash.cvd", "odd name");
	write_text(fx->src, "manifest.json", "{\"generation\": 999}");
	join(path, sizeof(path), fx->src, "link.cvd");
	assert_int_equal(symlink("good.cvd", path), 0);
	join(path, sizeof(path), fx->src, "escape.cvd");
	assert_int_equal(symlink("/etc/passwd", path), 0);
	join(path, sizeof(path), fx->src, "fifo");
	assert_int_equal(mkfifo(path, 0644), 0);

	gen = import_ok(fx, fx->src);
	gen_dir(fx, gen, gdir, sizeof(gdir));
	assert_int_equal(count_entries(gdir), 2);
	assert_true(exists_in(gdir, "good.cvd"));
	assert_true(exists_in(gdir, "manifest.json"));

	m = load_json(gdir, "manifest.json");
	assert_int_equal(member_int(m, "generation"), gen); /* ours, not the source's */
	files = member(m, "files");
	assert_int_equal(json_object_array_length(files), 1);
	assert_string_equal(member_str(json_object_array_get_idx(files, 0), "name"), "good.cvd");
	skipped = member(m, "skipped");
	assert_int_equal(json_object_array_length(skipped), sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		struct json_object *e = json_object_array_get_idx(skipped, i);

		assert_string_equal(member_str(e, "name"), want[i].name);
		assert_string_equal(member_str(e, "reason"), want[i].reason);
	}
	json_object_put(m);
}

/* ---- current ---- */

static void test_activate_current(void **state)
{
	struct fx *fx = *state;
	char a[PATH_MAX], b[PATH_MAX], link[PATH_MAX], target[64], want[PATH_MAX];
	unsigned int g1, g2;
	ssize_t n;

	assert_int_equal(defs_store_current(fx->s), 0);
	join(want, sizeof(want), fx->root, "current");
	assert_string_equal(defs_store_current_path(fx->s), want);

	make_src(fx, "a", "one", a, sizeof(a));
	make_src(fx, "b", "two", b, sizeof(b));
	g1 = import_ok(fx, a);
	g2 = import_ok(fx, b);
	assert_int_equal(g2, g1 + 1);

	assert_int_equal(defs_store_activate(fx->s, g1), 0);
	assert_int_equal(defs_store_current(fx->s), g1);
	/* a symlink with a relative target */
	n = readlink(defs_store_current_path(fx->s), target, sizeof(target) - 1);
	assert_true(n > 0);
	target[n] = '\0';
	assert_string_equal(target, "gen-000001");

	assert_int_equal(defs_store_activate(fx->s, g2), 0);
	assert_int_equal(defs_store_current(fx->s), g2);
	/* rollback: re-activate the older one */
	assert_int_equal(defs_store_activate(fx->s, g1), 0);
	assert_int_equal(defs_store_current(fx->s), g1);

	/* what the engine loads: the files through the link */
	join(link, sizeof(link), defs_store_current_path(fx->s), "main.cvd");
	{
		size_t len;
		char *data = read_all(link, &len);

		assert_int_equal(len, 3);
		assert_memory_equal(data, "one", 3);
		free(data);
	}
	/* no temporary links left */
	assert_int_equal(count_entries(fx->root), 5); /* current staging quarantine gen x2 */
}

static void test_activate_missing(void **state)
{
	struct fx *fx = *state;
	char a[PATH_MAX];
	unsigned int g1;

	make_src(fx, "a", "one", a, sizeof(a));
	g1 = import_ok(fx, a);
	assert_int_equal(defs_store_activate(fx->s, 42), -ENOENT);
	assert_int_equal(defs_store_current(fx->s), 0);
	assert_false(exists_in(fx->root, "current"));
	assert_int_equal(defs_store_activate(fx->s, g1), 0);
	assert_int_equal(defs_store_activate(fx->s, 42), -ENOENT);
	assert_int_equal(defs_store_activate(fx->s, 0), -ENOENT);
	assert_int_equal(defs_store_current(fx->s), g1);
}

/* current pointing at no generation reads as none. */
static void test_current_bogus(void **state)
{
	struct fx *fx = *state;
	static const char *const targets[] = {"elsewhere", "gen-000009", "gen-0000001",
					      "../defs/gen-000001", "gen-000001/"};
	char a[PATH_MAX], link[PATH_MAX];

	make_src(fx, "a", "one", a, sizeof(a));
	assert_int_equal(import_ok(fx, a), 1);
	join(link, sizeof(link), fx->root, "current");
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		unlink(link);
		assert_int_equal(symlink(targets[i], link), 0);
		assert_int_equal(defs_store_current(fx->s), 0);
	}
	/* a plain file named current */
	unlink(link);
	write_text(fx->root, "current", "gen-000001");
	assert_int_equal(defs_store_current(fx->s), 0);
}

/* Two writers (another process here) take turns: activation waits for the
 * holder of the store lock. */
static void test_writers_serialised(void **state)
{
	struct fx *fx = *state;
	char a[PATH_MAX], c;
	struct timespec t0, t1;
	int sync[2];
	unsigned int g1;
	pid_t pid;
	long ms;

	make_src(fx, "a", "one", a, sizeof(a));
	g1 = import_ok(fx, a);
	assert_int_equal(pipe(sync), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(fx->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		CHILD_CHECK(fd >= 0);
		CHILD_CHECK(flock(fd, LOCK_EX) == 0);
		CHILD_CHECK(write(sync[1], "x", 1) == 1);
		usleep(300 * 1000);
		_exit(0);
	}
	close(sync[1]);
	assert_int_equal(read(sync[0], &c, 1), 1);
	close(sync[0]);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(defs_store_activate(fx->s, g1), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	wait_ok(pid);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 200);
	assert_int_equal(defs_store_current(fx->s), g1);
}

/* ---- prune, list ---- */

static void test_prune(void **state)
{
	struct fx *fx = *state;
	char a[PATH_MAX], gdir[PATH_MAX];
	static const bool left1[] = {false, true, false, false, true, true};
	static const bool left2[] = {false, false, false, false, true, true};

	make_src(fx, "a", "one", a, sizeof(a));
	assert_int_equal(defs_store_prune(fx->s), 0); /* empty store */
	for (int i = 0; i < 5; i++)
		import_ok(fx, a);
	/* the current one stays even though it is the oldest */
	assert_int_equal(defs_store_activate(fx->s, 1), 0);
	assert_int_equal(defs_store_prune(fx->s), 2);
	for (unsigned int g = 1; g <= 5; g++) {
		gen_dir(fx, g, gdir, sizeof(gdir));
		assert_int_equal(exists(gdir), left1[g]);
	}
	assert_int_equal(defs_store_current(fx->s), 1);
	assert_true(staging_empty(fx));
	assert_int_equal(defs_store_prune(fx->s), 0);

	/* current is among the newest: exactly keep remain */
	assert_int_equal(defs_store_activate(fx->s, 5), 0);
	assert_int_equal(defs_store_prune(fx->s), 1);
	for (unsigned int g = 1; g <= 5; g++) {
		gen_dir(fx, g, gdir, sizeof(gdir));
		assert_int_equal(exists(gdir), left2[g]);
	}
	assert_true(staging_empty(fx));
	/* numbering goes on past the pruned ones */
	assert_int_equal(import_ok(fx, a), 6);
}

static void test_list_json(void **state)
{
	struct fx *fx = *state;
	char a[PATH_MAX], b[PATH_MAX], fp[65], gdir[PATH_MAX];
	struct json_object *list, *e;
	unsigned int g1, g2;

	make_src(fx, "a", "one", a, sizeof(a));
	write_text(a, "daily.cld", "daily!");
	make_src(fx, "b", "two", b, sizeof(b));
	g1 = import_ok(fx, a);
	g2 = import_ok(fx, b);
	assert_int_equal(defs_store_activate(fx->s, g1), 0);

	list = defs_store_list_json(fx->s);
	assert_non_null(list);
	assert_int_equal(json_object_array_length(list), 2);
	e = json_object_array_get_idx(list, 0); /* newest first */
	assert_int_equal(member_int(e, "generation"), g2);
	assert_false(json_object_get_boolean(member(e, "current")));
	assert_int_equal(member_int(e, "files"), 1);
	assert_int_equal(member_int(e, "bytes"), 3);
	assert_int_equal(defs_store_fingerprint(fx->s, g2, fp), 0);
	assert_string_equal(member_str(e, "fingerprint"), fp);
	assert_int_equal(strlen(member_str(e, "created")), strlen("2024-01-01T00:00:00Z"));
	e = json_object_array_get_idx(list, 1);
	assert_int_equal(member_int(e, "generation"), g1);
	assert_true(json_object_get_boolean(member(e, "current")));
	assert_int_equal(member_int(e, "files"), 2);
	assert_int_equal(member_int(e, "bytes"), 9);
	json_object_put(list);

	/* a broken manifest: listed with nulls; quarantine still works */
	gen_dir(fx, g2, gdir, sizeof(gdir));
	write_text(gdir, "manifest.json", "{ not json");
	assert_int_equal(defs_store_fingerprint(fx->s, g2, fp), -EBADMSG);
	list = defs_store_list_json(fx->s);
	assert_non_null(list);
	e = json_object_array_get_idx(list, 0);
	assert_int_equal(member_int(e, "generation"), g2);
	assert_null(member(e, "fingerprint"));
	assert_null(member(e, "files"));
	assert_null(member(e, "created"));
	json_object_put(list);
	assert_int_equal(
		defs_store_quarantine(fx->s, g2, "format", "manifest", NULL, gdir, sizeof(gdir)),
		0);
	{
		struct json_object *r = load_json(gdir, "reason.json");

		assert_null(member(r, "fingerprint"));
		json_object_put(r);
	}
}

/* ---- open ---- */

/* What a writer that died left in staging (a half-built generation, a
 * pruned one half-deleted) and a temporary current link are removed at
 * open, and none of it is ever a visible generation. */
static void test_staging_leftovers(void **state)
{
	struct fx *fx = *state;
	char a[PATH_MAX], stage[PATH_MAX], half[PATH_MAX], link[PATH_MAX];
	struct json_object *list;
	unsigned int g1, g;

	make_src(fx, "a", "one", a, sizeof(a));
	g1 = import_ok(fx, a);
	assert_int_equal(defs_store_activate(fx->s, g1), 0);

	/* an import that crashed after copying everything but before the
	 * rename: complete-looking, with a manifest */
	join(stage, sizeof(stage), fx->root, "staging");
	join(half, sizeof(half), stage, "gen-000002.tmp-99999");
	assert_int_equal(mkdir(half, 0755), 0);
	write_text(half, "main.cvd", "two");
	write_text(half, "manifest.json", "{\"generation\": 2}");
	join(half, sizeof(half), stage, "gen-000001.del-99998");
	assert_int_equal(mkdir(half, 0755), 0);
	write_text(half, "main.cvd", "half deleted");
	write_text(stage, "stray", "x");
	join(link, sizeof(link), fx->root, "current.tmp-99997");
	assert_int_equal(symlink("gen-000002", link), 0);

	/* while running: not a generation */
	assert_int_equal(defs_store_activate(fx->s, 2), -ENOENT);
	assert_int_equal(defs_store_previous(fx->s, 100), g1);
	list = defs_store_list_json(fx->s);
	assert_int_equal(json_object_array_length(list), 1);
	json_object_put(list);

	/* restart */
	defs_store_close(fx->s);
	fx->s = defs_store_open(fx->root, 2, fx->err);
	assert_non_null(fx->s);
	assert_true(staging_empty(fx));
	assert_false(exists(link));
	assert_int_equal(defs_store_current(fx->s), g1);
	list = defs_store_list_json(fx->s);
	assert_int_equal(json_object_array_length(list), 1);
	json_object_put(list);
	g = import_ok(fx, a);
	assert_true(g > g1);
	assert_int_equal(count_entries(fx->root), 5); /* current staging quarantine gen x2 */
}

/* The layout is created readable by the scan user whatever the umask. */
static void test_open_layout(void **state)
{
	struct fx *fx = *state;
	static const char *const dirs[] = {"", "staging", "quarantine"};
	char root[PATH_MAX], path[PATH_MAX], gp[PATH_MAX];
	struct defs_store *s;
	struct stat st;
	mode_t old;

	join(root, sizeof(root), fx->base, "new/deeper/defs");
	old = umask(077);
	s = defs_store_open(root, 3, fx->err);
	umask(old);
	assert_non_null(s);
	for (size_t i = 0; i < 3; i++) {
		join(path, sizeof(path), root, dirs[i]);
		assert_int_equal(lstat(path, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(st.st_mode & 07777, 0755);
	}
	assert_int_equal(defs_store_gen_path(s, 7, gp, sizeof(gp)), 0);
	join(path, sizeof(path), root, "gen-000007");
	assert_string_equal(gp, path);
	assert_int_equal(defs_store_gen_path(s, 7, gp, 10), -ENAMETOOLONG);
	defs_store_close(s);
	defs_store_close(NULL);

	/* a relative root: the paths handed out are absolute anyway */
	{
		char cwd[PATH_MAX];

		assert_non_null(getcwd(cwd, sizeof(cwd)));
		assert_int_equal(chdir(fx->base), 0);
		s = defs_store_open("rel/defs", 2, fx->err);
		assert_int_equal(chdir(cwd), 0);
		assert_non_null(s);
		join(path, sizeof(path), fx->base, "rel/defs/current");
		assert_string_equal(defs_store_current_path(s), path);
		defs_store_close(s);
	}
}

static void test_open_errors(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX], file[PATH_MAX];
	struct defs_store *s;
	pid_t pid;

	fx->err[0] = '\0';
	errno = 0;
	assert_null(defs_store_open(fx->root, 1, fx->err));
	assert_int_equal(errno, EINVAL);
	assert_true(fx->err[0] != '\0');

	/* under a regular file */
	write_text(fx->base, "file", "x");
	join(file, sizeof(file), fx->base, "file");
	join(path, sizeof(path), file, "defs");
	fx->err[0] = '\0';
	errno = 0;
	assert_null(defs_store_open(path, 2, fx->err));
	assert_int_equal(errno, ENOTDIR);
	assert_non_null(strstr(fx->err, path));

	/* unwritable: as nobody, a store to create under a directory of
	 * root's, and the existing store (root's, 0755) */
	join(path, sizeof(path), fx->base, "ro");
	assert_int_equal(mkdir(path, 0755), 0);
	join(path, sizeof(path), fx->base, "ro/defs");
	if (geteuid() != 0) {
		assert_int_equal(chmod(fx->base, 0555), 0);
		join(path, sizeof(path), fx->base, "defs2");
		errno = 0;
		s = defs_store_open(path, 2, fx->err);
		chmod(fx->base, 0755);
		assert_null(s);
		assert_int_equal(errno, EACCES);
		return;
	}
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[256] = "";

		CHILD_CHECK(setgroups(0, NULL) == 0);
		CHILD_CHECK(setgid(NOBODY_ID) == 0);
		CHILD_CHECK(setuid(NOBODY_ID) == 0);
		errno = 0;
		CHILD_CHECK(defs_store_open(path, 2, err) == NULL);
		CHILD_CHECK(errno == EACCES);
		CHILD_CHECK(err[0] != '\0');
		CHILD_CHECK(access(path, F_OK) != 0);
		err[0] = '\0';
		errno = 0;
		CHILD_CHECK(defs_store_open(fx->root, 2, err) == NULL);
		CHILD_CHECK(errno == EACCES);
		CHILD_CHECK(strstr(err, "not writable") != NULL);
		_exit(0);
	}
	wait_ok(pid);
}

/* ---- import metadata ---- */

static unsigned int import_meta_ok(struct fx *fx, const char *src, struct json_object *meta)
{
	unsigned int gen = 0;
	int r = defs_store_import_dir(fx->s, src, meta, &gen, fx->err);

	if (r)
		fail_msg("import of %s: %d (%s)", src, r, fx->err);
	assert_true(gen > 0);
	return gen;
}

static size_t list_length(const struct fx *fx)
{
	struct json_object *list = defs_store_list_json(fx->s);
	size_t n;

	assert_non_null(list);
	n = json_object_array_length(list);
	json_object_put(list);
	return n;
}

/* The members of meta follow the standard ones, in order; the listing
 * carries copies of the four it knows. */
static void test_import_meta(void **state)
{
	struct fx *fx = *state;
	static const char *const want_keys[] = {
		"manifest_version", "generation", "created",   "source",     "files",  "skipped",
		"fingerprint",	    "origin",	  "databases", "engine_kib", "forced", "custom",
	};
	struct json_object *meta, *dbs, *m, *list, *e;
	char a[PATH_MAX], b[PATH_MAX];
	unsigned int g, g2;
	size_t i = 0;

	make_src(fx, "a", "one", a, sizeof(a));
	meta = json_object_new_object();
	json_object_object_add(meta, "origin", json_object_new_string("mirror.example"));
	dbs = json_object_new_array();
	json_object_array_add(dbs, json_object_new_string("main"));
	json_object_array_add(dbs, json_object_new_string("daily"));
	json_object_object_add(meta, "databases", dbs);
	json_object_object_add(meta, "engine_kib", json_object_new_int(123456));
	json_object_object_add(meta, "forced", json_object_new_array());
	json_object_object_add(meta, "custom", json_object_new_string("kept"));
	g = import_meta_ok(fx, a, meta);

	m = defs_store_manifest(fx->s, g);
	assert_non_null(m);
	{
		json_object_object_foreach(m, key, val)
		{
			assert_true(i < sizeof(want_keys) / sizeof(want_keys[0]));
			assert_string_equal(key, want_keys[i]);
			i++;
		}
	}
	assert_int_equal(i, sizeof(want_keys) / sizeof(want_keys[0]));
	assert_string_equal(member_str(m, "origin"), "mirror.example");
	assert_int_equal(member_int(m, "engine_kib"), 123456);
	assert_string_equal(member_str(m, "custom"), "kept");
	json_object_put(m);

	/* wrong types are not carried into the listing */
	make_src(fx, "b", "two", b, sizeof(b));
	meta = json_object_new_object();
	json_object_object_add(meta, "origin", json_object_new_int(5));
	json_object_object_add(meta, "databases", json_object_new_string("main"));
	json_object_object_add(meta, "engine_kib", json_object_new_double(1.5));
	g2 = import_meta_ok(fx, b, meta);

	list = defs_store_list_json(fx->s);
	assert_non_null(list);
	assert_int_equal(json_object_array_length(list), 2);
	e = json_object_array_get_idx(list, 0);
	assert_int_equal(member_int(e, "generation"), g2);
	assert_false(json_object_object_get_ex(e, "origin", NULL));
	assert_false(json_object_object_get_ex(e, "databases", NULL));
	assert_false(json_object_object_get_ex(e, "forced", NULL));
	assert_true(json_object_is_type(member(e, "engine_kib"), json_type_double));
	e = json_object_array_get_idx(list, 1);
	assert_int_equal(member_int(e, "generation"), g);
	assert_string_equal(member_str(e, "origin"), "mirror.example");
	assert_int_equal(member_int(e, "engine_kib"), 123456);
	dbs = member(e, "databases");
	assert_true(json_object_is_type(dbs, json_type_array));
	assert_int_equal(json_object_array_length(dbs), 2);
	assert_string_equal(json_object_get_string(json_object_array_get_idx(dbs, 1)), "daily");
	assert_true(json_object_is_type(member(e, "forced"), json_type_array));
	assert_false(json_object_object_get_ex(e, "custom", NULL));
	json_object_put(list);
	/* the listing holds copies: the manifests are untouched */
	m = defs_store_manifest(fx->s, g);
	assert_non_null(m);
	assert_int_equal(json_object_array_length(member(m, "databases")), 2);
	json_object_put(m);
}

/* meta may not name a standard member, nor be anything but an object;
 * it is taken over on every failure (LeakSanitizer checks). */
static void test_import_meta_errors(void **state)
{
	struct fx *fx = *state;
	static const char *const keys[] = {"manifest_version", "generation", "created",
					   "source",	       "files",	     "skipped",
					   "fingerprint"};
	struct json_object *meta;
	char a[PATH_MAX], path[PATH_MAX];
	unsigned int gen = 777;

	make_src(fx, "a", "one", a, sizeof(a));
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		meta = json_object_new_object();
		json_object_object_add(meta, "origin", json_object_new_string("x"));
		json_object_object_add(meta, keys[i], json_object_new_int(1));
		fx->err[0] = '\0';
		assert_int_equal(defs_store_import_dir(fx->s, a, meta, &gen, fx->err), -EINVAL);
		assert_non_null(strstr(fx->err, keys[i]));
	}
	meta = json_object_new_array();
	assert_int_equal(defs_store_import_dir(fx->s, a, meta, &gen, fx->err), -EINVAL);
	/* taken over when the import fails for another reason too */
	join(path, sizeof(path), fx->base, "missing");
	meta = json_object_new_object();
	json_object_object_add(meta, "origin", json_object_new_string("x"));
	assert_int_equal(defs_store_import_dir(fx->s, path, meta, &gen, fx->err), -ENOENT);
	assert_int_equal(gen, 777);
	assert_int_equal(list_length(fx), 0);
	assert_true(staging_empty(fx));
	/* NULL stays fine */
	assert_int_equal(import_meta_ok(fx, a, NULL), 1);
}

/* meta {"expected_files": {a.cvd: <sha>, b.cvd: <sha>}} for the sources
 * a.cvd = "alpha", b.cvd = "bravo" (upper case: any case matches). */
static struct json_object *expected_meta(bool upper, const char *extra)
{
	struct json_object *meta = json_object_new_object(), *ef = json_object_new_object();
	char sha[65];

	sha256_hex("alpha", 5, sha);
	json_object_object_add(ef, "a.cvd", json_object_new_string(sha));
	sha256_hex("bravo", 5, sha);
	if (upper)
		for (char *p = sha; *p; p++)
			if (*p >= 'a' && *p <= 'f')
				*p = (char)(*p - 32);
	json_object_object_add(ef, "b.cvd", json_object_new_string(sha));
	if (extra) {
		sha256_hex(extra, strlen(extra), sha);
		json_object_object_add(ef, extra, json_object_new_string(sha));
	}
	json_object_object_add(meta, "expected_files", ef);
	json_object_object_add(meta, "origin", json_object_new_string("validated"));
	return meta;
}

static void expect_import_fails(struct fx *fx, const char *src, struct json_object *meta, int want,
				const char *reason)
{
	unsigned int gen = 777;
	size_t before = list_length(fx);

	fx->err[0] = '\0';
	assert_int_equal(defs_store_import_dir(fx->s, src, meta, &gen, fx->err), want);
	if (reason && strcmp(fx->err, reason))
		fail_msg("reason \"%s\", want \"%s\"", fx->err, reason);
	assert_int_equal(gen, 777);
	assert_int_equal(list_length(fx), before); /* no generation appeared */
	assert_true(staging_empty(fx));
}

static void test_import_expected_files(void **state)
{
	struct fx *fx = *state;
	struct json_object *m, *ef;
	char path[PATH_MAX];
	unsigned int g;

	write_text(fx->src, "a.cvd", "alpha");
	write_text(fx->src, "b.cvd", "bravo");
	write_text(fx->src, ".hidden", "skipped, so not expected");
	g = import_meta_ok(fx, fx->src, expected_meta(true, NULL));
	m = defs_store_manifest(fx->s, g);
	assert_non_null(m);
	assert_false(json_object_object_get_ex(m, "expected_files", NULL)); /* not copied */
	assert_string_equal(member_str(m, "origin"), "validated");
	assert_int_equal(json_object_array_length(member(m, "files")), 2);
	json_object_put(m);

	/* changed after validation (same size) */
	write_text(fx->src, "b.cvd", "brav0");
	expect_import_fails(fx, fx->src, expected_meta(false, NULL), -EBADMSG,
			    "file b.cvd changed since it was validated");
	write_text(fx->src, "b.cvd", "bravo");

	/* a file added after validation */
	write_text(fx->src, "c.cvd", "charlie");
	expect_import_fails(fx, fx->src, expected_meta(false, NULL), -EBADMSG,
			    "file c.cvd was not validated");
	join(path, sizeof(path), fx->src, "c.cvd");
	assert_int_equal(unlink(path), 0);

	/* a file validated but gone, or no longer a regular file */
	expect_import_fails(fx, fx->src, expected_meta(false, "d.cvd"), -EBADMSG,
			    "file d.cvd is missing");
	join(path, sizeof(path), fx->src, "d.cvd");
	assert_int_equal(symlink("a.cvd", path), 0);
	expect_import_fails(fx, fx->src, expected_meta(false, "d.cvd"), -EBADMSG,
			    "file d.cvd is missing");
	assert_int_equal(unlink(path), 0);

	/* malformed expectations */
	m = json_object_new_object();
	json_object_object_add(m, "expected_files", json_object_new_array());
	expect_import_fails(fx, fx->src, m, -EINVAL, NULL);
	m = json_object_new_object();
	ef = json_object_new_object();
	json_object_object_add(ef, "a.cvd", json_object_new_string("abc"));
	json_object_object_add(m, "expected_files", ef);
	expect_import_fails(fx, fx->src, m, -EINVAL, NULL);
	assert_non_null(strstr(fx->err, "a.cvd"));
	m = json_object_new_object();
	ef = json_object_new_object();
	json_object_object_add(ef, "a.cvd", json_object_new_int(1));
	json_object_object_add(m, "expected_files", ef);
	expect_import_fails(fx, fx->src, m, -EINVAL, NULL);

	/* what was validated is still importable, under the next number */
	assert_int_equal(import_meta_ok(fx, fx->src, expected_meta(false, NULL)), g + 1);
}

static void test_manifest(void **state)
{
	struct fx *fx = *state;
	char a[PATH_MAX], gdir[PATH_MAX], path[PATH_MAX], fp[65];
	struct json_object *m;
	unsigned int g;

	make_src(fx, "a", "one", a, sizeof(a));
	g = import_ok(fx, a);
	m = defs_store_manifest(fx->s, g);
	assert_non_null(m);
	assert_int_equal(member_int(m, "generation"), g);
	assert_int_equal(defs_store_fingerprint(fx->s, g, fp), 0);
	assert_string_equal(member_str(m, "fingerprint"), fp);
	json_object_put(m);

	errno = 0;
	assert_null(defs_store_manifest(fx->s, 0));
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_null(defs_store_manifest(fx->s, g + 1));
	assert_int_equal(errno, ENOENT);

	gen_dir(fx, g, gdir, sizeof(gdir));
	write_text(gdir, "manifest.json", "[1, 2]");
	errno = 0;
	assert_null(defs_store_manifest(fx->s, g));
	assert_int_equal(errno, EBADMSG);
	join(path, sizeof(path), gdir, "manifest.json");
	assert_int_equal(unlink(path), 0);
	errno = 0;
	assert_null(defs_store_manifest(fx->s, g));
	assert_int_equal(errno, EBADMSG);
}

/* ---- crash safety ---- */

/* What the crash test's child does, run in a fresh process (re-executed,
 * so that util_crash_point reads SCANENGINE_CRASH_POINT): on a store with
 * generations 1-4, 4 current, import and activate 5, record both in the
 * history, quarantine a work directory and generation 2, prune (3 and 1
 * go). Returns an exit status; never returns when killed. */
static int crash_child(const char *root, const char *src)
{
	char err[256] = "", work[PATH_MAX], set[PATH_MAX];
	struct json_object *meta;
	struct defs_store *s;
	unsigned int gen = 0;
	int fd;

	s = defs_store_open(root, 2, err);
	if (!s)
		goto fail;
	if (defs_store_make_work(s, "validate", (uid_t)-1, (gid_t)-1, work, sizeof(work), err))
		goto fail;
	if ((size_t)snprintf(set, sizeof(set), "%s/set", work) >= sizeof(set) ||
	    mkdir(set, 0755) < 0)
		goto fail;
	if ((size_t)snprintf(set, sizeof(set), "%s/set/main.cvd", work) >= sizeof(set))
		goto fail;
	fd = open(set, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, "bad", 3) != 3 || close(fd) < 0)
		goto fail;
	meta = json_object_new_object();
	json_object_object_add(meta, "origin", json_object_new_string("crash test"));
	if (defs_store_import_dir(s, src, meta, &gen, err) || gen != 5)
		goto fail;
	if (defs_store_history_add(s, "imported", gen, NULL) || defs_store_activate(s, gen) ||
	    defs_store_history_add(s, "activated", gen, NULL))
		goto fail;
	if (defs_store_quarantine_dir(s, work, "validate", "canary", "crash test", NULL, NULL, 0) ||
	    defs_store_quarantine(s, 2, "test load", "crash test", NULL, NULL, 0))
		goto fail;
	if (defs_store_prune(s) != 2)
		goto fail;
	defs_store_close(s);
	return 0;
fail:
	fprintf(stderr, "crash child: %s (%s)\n", err, strerror(errno));
	defs_store_close(s);
	return 3;
}

/* gdir is a complete generation: a manifest that parses and lists exactly
 * the files there, with their SHA-256. */
static void check_gen_complete(const char *gdir)
{
	struct json_object *m, *files;
	size_t n;

	m = load_json(gdir, "manifest.json");
	files = member(m, "files");
	n = json_object_array_length(files);
	assert_true(n > 0);
	assert_int_equal(count_entries(gdir), (int)n + 1);
	for (size_t i = 0; i < n; i++) {
		struct json_object *f = json_object_array_get_idx(files, i);
		char path[PATH_MAX], sha[65];
		size_t len;
		char *data;

		join(path, sizeof(path), gdir, member_str(f, "name"));
		data = read_all(path, &len);
		sha256_hex(data, len, sha);
		free(data);
		assert_string_equal(member_str(f, "sha256"), sha);
		assert_int_equal(member_int(f, "size"), (int64_t)len);
	}
	json_object_put(m);
}

/* After a writer was killed anywhere, the next open finds: current on a
 * complete generation, no generation without its manifest, staging empty,
 * no temporary left, a readable history. */
static void check_after_crash(struct fx *fx, unsigned int point)
{
	struct json_object *h;
	struct dirent *de;
	unsigned int cur, gen;
	DIR *d;

	fx->s = defs_store_open(fx->root, 2, fx->err);
	if (!fx->s)
		fail_msg("open after crash point %u: %s", point, fx->err);
	assert_true(staging_empty(fx));
	cur = defs_store_current(fx->s);
	if (cur != 4 && cur != 5)
		fail_msg("crash point %u: current is %u", point, cur);
	d = opendir(fx->root);
	assert_non_null(d);
	while ((de = readdir(d))) {
		char gdir[PATH_MAX];

		assert_true(strncmp(de->d_name, "current.tmp-", 12) != 0);
		assert_true(strncmp(de->d_name, "history.jsonl.tmp-", 18) != 0);
		if (sscanf(de->d_name, "gen-%u", &gen) != 1)
			continue;
		join(gdir, sizeof(gdir), fx->root, de->d_name);
		check_gen_complete(gdir);
	}
	closedir(d);
	h = defs_store_history_json(fx->s, 0);
	assert_non_null(h);
	json_object_put(h);
}

/* Kills the child of crash_child at its 1st, 2nd, ... crash point until it
 * gets through, checking the store after each kill. */
static void test_crash_points(void **state)
{
	struct fx *fx = *state;
	static const char *const tags[] = {"one", "two", "three", "four"};
	char src[PATH_MAX], dir[PATH_MAX], exe[PATH_MAX];
	unsigned int point, killed = 0;
	ssize_t n;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	join(src, sizeof(src), fx->base, "five");
	assert_int_equal(mkdir(src, 0755), 0);
	write_text(src, "main.cvd", "five");
	write_text(src, "daily.cld", "five daily");
	write_text(src, "bytecode.cvd", "five bytecode");
	for (size_t i = 0; i < 4; i++) {
		make_src(fx, tags[i], tags[i], dir, sizeof(dir));
		write_text(dir, "daily.cld", tags[i]);
	}
	for (point = 1;; point++) {
		int status;
		pid_t pid;

		assert_true(point < 200);
		/* a fresh store: generations 1-4, 4 current */
		defs_store_close(fx->s);
		rm_tree(fx->root);
		fx->s = defs_store_open(fx->root, 2, fx->err);
		assert_non_null(fx->s);
		for (size_t i = 0; i < 4; i++) {
			join(dir, sizeof(dir), fx->base, tags[i]);
			assert_int_equal(import_ok(fx, dir), i + 1);
		}
		assert_int_equal(defs_store_activate(fx->s, 4), 0);
		assert_int_equal(defs_store_history_add(fx->s, "baseline", 4, NULL), 0);
		defs_store_close(fx->s);
		fx->s = NULL;

		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			char num[16];

			snprintf(num, sizeof(num), "%u", point);
			setenv("SCANENGINE_CRASH_POINT", num, 1);
			execl(exe, exe, "--crash-child", fx->root, src, (char *)NULL);
			_exit(127);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (WIFEXITED(status)) {
			assert_int_equal(WEXITSTATUS(status), 0);
			break;
		}
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGKILL);
		killed++;
		check_after_crash(fx, point);
	}
	/* import: staged, 3 copied, manifest, synced, renamed, published;
	 * history: 2 x 2; activate: 4; quarantine_dir, quarantine: 2 x 2;
	 * prune: 2 x 3 */
	assert_int_equal(killed, 8 + 4 + 4 + 4 + 6);
	check_after_crash(fx, point);
	assert_int_equal(defs_store_current(fx->s), 5);
	assert_int_equal(list_length(fx), 2);
	{
		struct json_object *h = defs_store_history_json(fx->s, 0);

		assert_int_equal(json_object_array_length(h), 3);
		json_object_put(h);
	}
	join(dir, sizeof(dir), fx->root, "quarantine");
	assert_int_equal(count_entries(dir), 2);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		T(test_import_same_fs),
		T(test_import_other_fs),
		T(test_fingerprint_is_sha256sum),
		T(test_fingerprint_equal_sets),
		T(test_import_empty),
		T(test_import_skips),
		T(test_activate_current),
		T(test_activate_missing),
		T(test_current_bogus),
		T(test_writers_serialised),
		T(test_prune),
		T(test_list_json),
		T(test_staging_leftovers),
		T(test_open_layout),
		T(test_open_errors),
		T(test_import_meta),
		T(test_import_meta_errors),
		T(test_import_expected_files),
		T(test_manifest),
		T(test_crash_points),
	};

	/* test_crash_points runs this binary again as the writer it kills */
	if (argc == 4 && !strcmp(argv[1], "--crash-child"))
		return crash_child(argv[2], argv[3]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
