/* canary: the samples of the canary stage (see canary.h). */
#include "defs/canary.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

/* EICAR in two halves, joined at run time. */
static const char eicar_a[] = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-";
static const char eicar_b[] = "STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

struct bundled {
	const char *label;
	const char *data;
	size_t len; /* 0: strlen(data) */
};

static const struct bundled bundled[] = {
	{"bundled text",
	 "The quick brown fox jumps over the lazy dog.\n"
	 "Quarterly report: revenue up 3 %, costs flat.\n",
	 0},
	{"bundled HTML page",
	 "<!DOCTYPE html>\n<html><head><title>Welcome</title></head>\n"
	 "<body><h1>It works</h1><p>This is the default page.</p>"
	 "<a href=\"https://example.org/\">example</a></body></html>\n",
	 0},
	{"bundled JSON", "{\"name\": \"example\", \"version\": 3, \"tags\": [\"a\", \"b\"]}\n", 0},
	{"bundled shell script", "#!/bin/sh\nset -e\nfor f in \"$@\"; do\n\techo \"$f\"\ndone\n",
	 0},
	{"bundled PDF",
	 "%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
	 "2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
	 "trailer<</Root 1 0 R>>\n%%EOF\n",
	 0},
	{"bundled empty file", "", 0},
};

/* Files every Linux host has; those missing here are skipped. */
static const char *const system_files[] = {"/bin/sh", "/bin/true", "/usr/bin/env"};

static int memfd_with(const char *name, const void *data, size_t len)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int r;

	if (fd < 0)
		return -errno;
	r = util_write_all(fd, data, len);
	if (!r && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
		r = -errno;
	if (r) {
		close(fd);
		return r;
	}
	return fd;
}

int canary_eicar_fd(void)
{
	char buf[sizeof(eicar_a) + sizeof(eicar_b)];

	snprintf(buf, sizeof(buf), "%s%s", eicar_a, eicar_b);
	return memfd_with("eicar", buf, strlen(buf));
}

static int add(struct canary_set *set, const char *label, int fd, bool detect)
{
	struct canary_sample *v = realloc(set->v, (set->n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	set->v = v;
	util_strlcpy(v[set->n].label, label, sizeof(v[0].label));
	v[set->n].fd = fd;
	v[set->n].must_detect = detect;
	set->n++;
	return 0;
}

/* Open a regular file without following a final link; -EISDIR etc. for
 * anything else. */
static int open_regular(int dirfd, const char *name)
{
	struct stat st;
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int skip_dot(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* The regular files of dir (top level, name order, at most
 * CANARY_DIR_MAX). */
static int add_dir(struct canary_set *set, const char *key, const char *dir, bool detect, char *err)
{
	struct dirent **names = NULL;
	char label[CANARY_LABEL_MAX];
	int dfd, n, r = 0, taken = 0;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		r = -errno;
		snprintf(err, CANARY_ERR_LEN, "%s %s: %s", key, dir, strerror(-r));
		return r;
	}
	n = scandirat(dfd, ".", &names, skip_dot, by_name);
	if (n < 0) {
		r = -errno;
		snprintf(err, CANARY_ERR_LEN, "%s %s: %s", key, dir, strerror(-r));
		close(dfd);
		return r;
	}
	for (int i = 0; i < n; i++) {
		int fd;

		if (!r && taken < CANARY_DIR_MAX) {
			fd = open_regular(dfd, names[i]->d_name);
			if (fd == -EACCES || fd == -EPERM) {
				r = fd;
				snprintf(err, CANARY_ERR_LEN, "%s %s: cannot read %s: %s", key, dir,
					 names[i]->d_name, strerror(-r));
			} else if (fd >= 0) {
				snprintf(label, sizeof(label), "%.200s/%.80s", dir,
					 names[i]->d_name);
				r = add(set, label, fd, detect);
				if (r)
					close(fd);
				else
					taken++;
			}
		}
		free(names[i]);
	}
	free(names);
	close(dfd);
	if (!r && detect && taken == 0) {
		r = -ENOENT;
		snprintf(err, CANARY_ERR_LEN, "%s %s holds no regular file", key, dir);
	}
	return r;
}

/* The C library this process runs on, from its own mappings. */
static int libc_path(char *out, size_t len)
{
	char line[4096];
	FILE *f = fopen("/proc/self/maps", "re");
	int r = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *p = strchr(line, '/');

		if (!p || !strstr(p, "/libc.so"))
			continue;
		p[strcspn(p, "\n")] = '\0';
		util_strlcpy(out, p, len);
		r = 0;
		break;
	}
	fclose(f);
	return r;
}

static int add_system(struct canary_set *set)
{
	char label[CANARY_LABEL_MAX], libc[256];
	int fd, r;

	for (size_t i = 0; i <= SE_ARRAY_SIZE(system_files); i++) {
		const char *path = i < SE_ARRAY_SIZE(system_files) ? system_files[i] : NULL;

		if (!path) {
			if (libc_path(libc, sizeof(libc)))
				continue;
			path = libc;
		}
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		snprintf(label, sizeof(label), "%.250s (system file)", path);
		r = add(set, label, fd, false);
		if (r) {
			close(fd);
			return r;
		}
	}
	return 0;
}

int canary_open(const char *canary_dir, const char *clean_dir, struct canary_set *set, char *err)
{
	int fd, r;

	memset(set, 0, sizeof(*set));
	fd = canary_eicar_fd();
	r = fd < 0 ? fd : add(set, "EICAR", fd, true);
	if (r) {
		if (fd >= 0)
			close(fd);
		snprintf(err, CANARY_ERR_LEN, "cannot create the EICAR sample: %s", strerror(-r));
		goto err;
	}
	if (canary_dir && (r = add_dir(set, "CanaryDirectory", canary_dir, true, err)))
		goto err;
	for (size_t i = 0; i < SE_ARRAY_SIZE(bundled); i++) {
		const struct bundled *b = &bundled[i];

		fd = memfd_with(b->label, b->data, b->len ? b->len : strlen(b->data));
		r = fd < 0 ? fd : add(set, b->label, fd, false);
		if (r) {
			if (fd >= 0)
				close(fd);
			snprintf(err, CANARY_ERR_LEN, "cannot create the %s: %s", b->label,
				 strerror(-r));
			goto err;
		}
	}
	r = add_system(set);
	if (r) {
		snprintf(err, CANARY_ERR_LEN, "cannot open the system files: %s", strerror(-r));
		goto err;
	}
	if (clean_dir && (r = add_dir(set, "CleanCorpusDirectory", clean_dir, false, err)))
		goto err;
	return 0;

err:
	canary_close(set);
	return r;
}

void canary_close(struct canary_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->v[i].fd >= 0)
			close(set->v[i].fd);
	free(set->v);
	memset(set, 0, sizeof(*set));
}
