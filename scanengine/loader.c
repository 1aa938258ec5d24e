/* loader: which definitions the engine loads, and fault 7 (see loader.h). */
#include "scanengine/loader.h"
#include "common/log.h"
#include "common/util.h"
#include "defs/install.h"
#include "defs/store.h"
#include "defs/validate.h"
#include "sandbox/memlimit.h"
#include "scanengine/faults.h"
#include "scanengine/pool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RETRY_MAX_MS 300000ULL /* back-off ceiling; the first is LoadRetryInterval */
#define MAX_GOOD     64	       /* generations remembered as having loaded */

struct loader {
	const struct config *cfg;
	const struct sandbox_identity *id;
	struct pool *pool;
	struct faults *faults;
	struct memlimit *mem;
	struct defs_store *store;
	char state_path[PATH_MAX];

	unsigned int loading_gen; /* generation being loaded, 0: none */
	unsigned int active_gen;  /* generation of the engine that is up */

	/* persisted in <StateDirectory>/loader.json */
	char source_fp[24];	     /* DatabaseDirectory as last imported */
	unsigned int good[MAX_GOOD]; /* generations that loaded at least once */
	unsigned int ngood;
	uint64_t last_rss_kb, last_bytes; /* the last successful load */

	unsigned int attempts; /* failed loads since the last success */
	uint64_t retry_at_ms;  /* 0: no retry scheduled */

	/* the validation of DatabaseDirectory's files, when one runs */
	bool validating; /* a validator or a committer runs */
	struct install_job job;
	struct install_commit commit; /* commit.pid: committing what passed */
	unsigned int validate_tries;  /* validations in a row that ran out of memory */
	struct install_req req;
	char **files; /* req.files, req.drop: owned here */
	char **drop;
	char pending_fp[24];	    /* DatabaseDirectory as the running validation saw it */
	char reload_why[64];	    /* load the current generation once it is done */
	uint64_t validate_at_ms;    /* a validation to start (after -EAGAIN), 0: none */
	char start_failure[600];    /* why there is nothing to load at all */
	loader_import_cb import_cb; /* the running validation is a loader_import */
	void *import_arg;
	struct json_object *last; /* the last validation's outcome, for STATUS */
};

/* ---- persisted state ------------------------------------------------------ */

static void state_load(struct loader *l)
{
	struct json_object *o = json_object_from_file(l->state_path), *v;

	if (!o)
		return;
	if (json_object_object_get_ex(o, "source_fingerprint", &v))
		util_strlcpy(l->source_fp, json_object_get_string(v), sizeof(l->source_fp));
	if (json_object_object_get_ex(o, "good_generations", &v) &&
	    json_object_is_type(v, json_type_array))
		for (size_t i = 0; i < json_object_array_length(v) && l->ngood < MAX_GOOD; i++)
			l->good[l->ngood++] =
				(unsigned int)json_object_get_int(json_object_array_get_idx(v, i));
	if (json_object_object_get_ex(o, "last_rss_kb", &v))
		l->last_rss_kb = (uint64_t)json_object_get_int64(v);
	if (json_object_object_get_ex(o, "last_bytes", &v))
		l->last_bytes = (uint64_t)json_object_get_int64(v);
	json_object_put(o);
}

static void state_save(struct loader *l)
{
	struct json_object *o = json_object_new_object(), *good = json_object_new_array();
	char tmp[PATH_MAX + 8];

	for (unsigned int i = 0; i < l->ngood; i++)
		json_object_array_add(good, json_object_new_int((int)l->good[i]));
	json_object_object_add(o, "source_fingerprint", json_object_new_string(l->source_fp));
	json_object_object_add(o, "good_generations", good);
	json_object_object_add(o, "last_rss_kb", json_object_new_int64((int64_t)l->last_rss_kb));
	json_object_object_add(o, "last_bytes", json_object_new_int64((int64_t)l->last_bytes));
	snprintf(tmp, sizeof(tmp), "%s.tmp", l->state_path);
	/* transaction point: the rename; a crash before it leaves the old state */
	if (json_object_to_file_ext(tmp, o, JSON_C_TO_STRING_PRETTY) < 0 ||
	    rename(tmp, l->state_path) < 0)
		log_error("cannot save %s: %s", l->state_path, strerror(errno));
	json_object_put(o);
}

static bool is_good(const struct loader *l, unsigned int gen)
{
	for (unsigned int i = 0; i < l->ngood; i++)
		if (l->good[i] == gen)
			return true;
	return false;
}

static void mark_good(struct loader *l, unsigned int gen)
{
	if (is_good(l, gen))
		return;
	if (l->ngood == MAX_GOOD) {
		memmove(l->good, l->good + 1, (MAX_GOOD - 1) * sizeof(l->good[0]));
		l->ngood--;
	}
	l->good[l->ngood++] = gen;
}

/* ---- DatabaseDirectory --------------------------------------------------- */

/* A cheap fingerprint (names, sizes, mtimes) of DatabaseDirectory: a change
 * means someone put new definitions there. The store fingerprints content. */
static void source_fingerprint(const char *dir, char out[24])
{
	uint64_t h = 1469598103934665603ULL;
	DIR *d = opendir(dir);
	struct dirent *de;

	snprintf(out, 24, "none");
	if (!d)
		return;
	while ((de = readdir(d))) {
		struct stat st;
		uint64_t fh = 1099511628211ULL;

		if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, 0) < 0)
			continue;
		for (const char *c = de->d_name; *c; c++)
			fh = (fh ^ (unsigned char)*c) * 1099511628211ULL;
		fh ^= (uint64_t)st.st_size * 31 + (uint64_t)st.st_mtim.tv_sec * 1000003 +
		      (uint64_t)st.st_mtim.tv_nsec;
		h += fh * 2654435761ULL; /* order-independent */
	}
	closedir(d);
	snprintf(out, 24, "%016llx", (unsigned long long)h);
}

/* The engine reads definitions as the scan user: a file that user cannot
 * read is named now, as a start-up error, rather than found by libclamav.
 * Checked in a child that becomes the scan user. */
static int check_readable_as_scan_user(struct loader *l, char *err)
{
	int pfd[2], status, ret = 0;
	char msg[512] = "";
	pid_t pid;
	ssize_t n;

	if (!l->id->valid)
		return 0;
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		ret = -errno;
		close(pfd[0]);
		close(pfd[1]);
		return ret;
	}
	if (pid == 0) {
		DIR *d;
		struct dirent *de;

		close(pfd[0]);
		if (setgroups(1, &l->id->gid) < 0 || setgid(l->id->gid) < 0 ||
		    setuid(l->id->uid) < 0)
			_exit(0); /* cannot check; the engine will tell */
		d = opendir(l->cfg->database_dir);
		if (!d) {
			dprintf(pfd[1], "%d\tDatabaseDirectory %s", errno, l->cfg->database_dir);
			_exit(1);
		}
		while ((de = readdir(d))) {
			int fd;

			if (de->d_name[0] == '.')
				continue;
			fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
			if (fd < 0) {
				dprintf(pfd[1], "%d\tdefinitions file %s/%s", errno,
					l->cfg->database_dir, de->d_name);
				_exit(1);
			}
			close(fd);
		}
		_exit(0);
	}
	close(pfd[1]);
	n = read(pfd[0], msg, sizeof(msg) - 1);
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (n > 0) {
		char *tab;
		int e;

		msg[n] = '\0';
		tab = strchr(msg, '\t');
		e = atoi(msg);
		snprintf(err, 512, "cannot read %.400s as %.32s: %s", tab ? tab + 1 : msg,
			 l->id->name, strerror(e));
		ret = -(e ? e : EACCES);
	}
	return ret;
}

static void free_list(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static int add_name(char ***v, size_t *n, const char *name)
{
	char **nv = realloc(*v, (*n + 2) * sizeof(**v));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n] = strdup(name);
	if (!nv[*n])
		return -ENOMEM;
	nv[++*n] = NULL;
	return 0;
}

/* The definitions files of DatabaseDirectory (full paths, with their
 * .sign files), and the database names among them. What is no
 * definitions file (freshclam.dat, a temporary file) is left alone. */
/* Whether the active generation's database db came from the updater: it
 * is kept up to date from the mirrors, and DatabaseDirectory's copy (often
 * the one it started from) is not taken over it, which would be a
 * downgrade. */
static bool updated_db(struct json_object *manifest, const char *db)
{
	struct json_object *list;

	if (!manifest || !json_object_object_get_ex(manifest, "databases", &list))
		return false;
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		struct json_object *d = json_object_array_get_idx(list, i), *n, *o;

		if (json_object_object_get_ex(d, "name", &n) &&
		    json_object_object_get_ex(d, "origin", &o) &&
		    !strcmp(json_object_get_string(n), db) &&
		    !strcmp(json_object_get_string(o), "update"))
			return true;
	}
	return false;
}

static int list_source(const struct loader *l, char ***files, size_t *nfiles, char ***dbs,
		       size_t *ndbs, char *err)
{
	struct json_object *active =
		defs_store_current(l->store)
			? defs_store_manifest(l->store, defs_store_current(l->store))
			: NULL;
	const char *dir = l->cfg->database_dir;
	struct dirent **names = NULL;
	int n, r = 0, skipped = 0;

	*files = *dbs = NULL;
	*nfiles = *ndbs = 0;
	n = scandir(dir, &names, NULL, alphasort);
	if (n < 0) {
		r = -errno;
		snprintf(err, 512, "DatabaseDirectory %.400s: %s", dir, strerror(-r));
		return r;
	}
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX], db[128], plain[256];
		struct stat st;
		size_t len = strlen(names[i]->d_name);

		util_strlcpy(plain, names[i]->d_name, sizeof(plain));
		if (len > 5 && !strcmp(plain + len - 5, ".sign"))
			plain[len - 5] = '\0';
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if (!r && names[i]->d_name[0] != '.' && stat(path, &st) == 0 &&
		    S_ISREG(st.st_mode) && validate_db_name(plain, db, sizeof(db)) == 0 &&
		    updated_db(active, db)) {
			log_info("DatabaseDirectory: %s not taken: database %s is updated from the "
				 "mirrors",
				 names[i]->d_name, db);
			skipped++;
		} else if (!r && names[i]->d_name[0] != '.' && stat(path, &st) == 0 &&
			   S_ISREG(st.st_mode) && validate_db_name(plain, db, sizeof(db)) == 0) {
			r = add_name(files, nfiles, path);
			if (!r && !strcmp(plain, names[i]->d_name))
				r = add_name(dbs, ndbs, db);
		} else if (!r && names[i]->d_name[0] != '.') {
			log_debug("DatabaseDirectory: %s is no definitions file; not taken",
				  names[i]->d_name);
		}
		free(names[i]);
	}
	free(names);
	json_object_put(active);
	if (!r && !*ndbs && skipped)
		return 0; /* all of it is kept up to date by the updater */
	if (!r && !*ndbs) {
		r = -ENOENT;
		snprintf(err, 512,
			 "cannot import definitions from %.400s: it holds no regular files "
			 "to import",
			 dir);
	}
	if (r && r != -ENOENT)
		snprintf(err, 512, "DatabaseDirectory %.400s: %s", dir, strerror(-r));
	if (r) {
		free_list(*files);
		free_list(*dbs);
		*files = *dbs = NULL;
	}
	return r;
}

/* The databases of the active generation that came from DatabaseDirectory
 * (all of them, for a generation from before manifests told) and are no
 * longer there: the new set leaves them out. */
static int gone_from_source(const struct loader *l, char **dbs, char ***drop)
{
	struct json_object *m = NULL, *list;
	unsigned int cur = defs_store_current(l->store);
	size_t n = 0;
	int r = 0;

	*drop = NULL;
	if (cur)
		m = defs_store_manifest(l->store, cur);
	if (!m)
		return 0;
	if (!json_object_object_get_ex(m, "databases", &list)) {
		/* older manifest: every file came from DatabaseDirectory */
		struct json_object *files;

		if (json_object_object_get_ex(m, "files", &files))
			for (size_t i = 0; !r && i < json_object_array_length(files); i++) {
				const char *f = json_object_get_string(json_object_object_get(
					json_object_array_get_idx(files, i), "name"));
				char db[128];
				bool there = false;

				if (!f || validate_db_name(f, db, sizeof(db)))
					continue;
				for (size_t j = 0; dbs[j]; j++)
					there |= !strcmp(dbs[j], db);
				if (!there)
					r = add_name(drop, &n, db);
			}
		json_object_put(m);
		return r;
	}
	for (size_t i = 0; !r && i < json_object_array_length(list); i++) {
		struct json_object *d = json_object_array_get_idx(list, i), *v;
		const char *name = json_object_get_string(json_object_object_get(d, "name"));
		bool there = false;

		if (!name || !json_object_object_get_ex(d, "origin", &v) ||
		    strcmp(json_object_get_string(v), "DatabaseDirectory") != 0)
			continue;
		for (size_t j = 0; dbs[j]; j++)
			there |= !strcmp(dbs[j], name);
		if (!there)
			r = add_name(drop, &n, name);
	}
	json_object_put(m);
	return r;
}

/* Start validating DatabaseDirectory's files if they changed since they
 * were last taken (or nothing is active). Returns 1 when a validation was
 * started, 0 when nothing changed (or one runs already), -errno with err
 * when the files cannot be taken at all. */
static int sync_source(struct loader *l, char *err)
{
	char fp[24], **dbs = NULL;
	size_t nfiles = 0, ndbs = 0, ndrop = 0;
	int r;

	if (l->validating)
		return 0;
	source_fingerprint(l->cfg->database_dir, fp);
	if (!strcmp(fp, l->source_fp) && defs_store_current(l->store))
		return 0;
	r = check_readable_as_scan_user(l, err);
	if (r < 0)
		return r;
	free_list(l->files);
	free_list(l->drop);
	l->files = l->drop = NULL;
	r = list_source(l, &l->files, &nfiles, &dbs, &ndbs, err);
	if (!r)
		r = gone_from_source(l, dbs, &l->drop);
	free_list(dbs);
	if (r) {
		if (r == -ENOMEM)
			snprintf(err, 512, "out of memory");
		return r;
	}
	for (ndrop = 0; l->drop && l->drop[ndrop]; ndrop++)
		;
	if (!nfiles && !ndrop) {
		/* everything there is updated from the mirrors instead */
		util_strlcpy(l->source_fp, fp, sizeof(l->source_fp));
		state_save(l);
		return 0;
	}
	l->req = (struct install_req){
		.cfg = l->cfg,
		.id = l->id,
		.files = (const char *const *)l->files,
		.nfiles = nfiles,
		.origin = "DatabaseDirectory",
		.local = true,
		.skip_unchanged = true,
		.drop = (const char *const *)l->drop,
		.ndrop = ndrop,
		.progress_fd = -1,
		.actor = "scanengined",
	};
	r = install_start(l->store, &l->req, &l->job, err);
	if (r)
		return r;
	l->validating = true;
	util_strlcpy(l->pending_fp, fp, sizeof(l->pending_fp));
	log_info("validating the definitions of %s (%zu files%s), validator pid %d",
		 l->cfg->database_dir, nfiles, ndrop ? ", some databases gone" : "",
		 (int)l->job.pid);
	return 1;
}

static void load_current(struct loader *l, const char *why);
static void raise_7(struct loader *l, const char *cause, const char *reason,
		    struct json_object *detail);

static void remember_outcome(struct loader *l, const char *result, const char *reason,
			     unsigned int gen)
{
	struct json_object *o = json_object_new_object();
	char when[32];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_object_add(o, "time", json_object_new_string(when));
	json_object_object_add(o, "result", json_object_new_string(result));
	if (reason)
		json_object_object_add(o, "reason", json_object_new_string(reason));
	if (gen)
		json_object_object_add(o, "generation", json_object_new_int((int)gen));
	json_object_put(l->last);
	l->last = o;
}

/* The wait before the next try after failures (>= 1) in a row:
 * LoadRetryInterval, doubling per failure, at most RETRY_MAX_MS. */
static uint64_t retry_delay_ms(const struct loader *l, unsigned int failures)
{
	uint64_t delay = l->cfg->load_retry_interval * 1000ULL;

	for (unsigned int i = 1; i < failures && delay < RETRY_MAX_MS; i++)
		delay *= 2;
	return SE_MIN(delay, RETRY_MAX_MS);
}

/* A loader_import is over: its caller is told; the engine loads what was
 * activated. */
static void import_outcome(struct loader *l, int r, struct install_outcome *out)
{
	loader_import_cb cb = l->import_cb;

	l->import_cb = NULL;
	if (r == 0 && out->gen) {
		remember_outcome(l, "activated", NULL, out->gen);
		l->start_failure[0] = '\0';
		util_strlcpy(l->reload_why, "updated definitions", sizeof(l->reload_why));
	} else if (r) {
		remember_outcome(l, r == -EBADMSG ? "refused" : "error", out->reason, 0);
	}
	cb(l->import_arg, r, out);
}

/* The validation and its commit are over (r and out as install_finish
 * gives them): activate, or say why not. */
static void validation_outcome(struct loader *l, int r, struct install_outcome *out_)
{
	struct install_outcome out = *out_;

	l->validating = false;
	if (l->import_cb) {
		import_outcome(l, r, &out);
	} else if (r == -EAGAIN) {
		/* a CLI install got in first: validate again over it */
		log_warn("%s", out.reason);
		l->validate_at_ms = util_now_ms() + 1000;
	} else if (r == 0 && out.gen) {
		l->validate_tries = 0;
		util_strlcpy(l->source_fp, l->pending_fp, sizeof(l->source_fp));
		log_info("definitions from %s passed validation; generation %u is active",
			 l->cfg->database_dir, out.gen);
		remember_outcome(l, "activated", NULL, out.gen);
		l->start_failure[0] = '\0';
		state_save(l);
		util_strlcpy(l->reload_why, "new definitions", sizeof(l->reload_why));
	} else if (r == 0) {
		l->validate_tries = 0;
		util_strlcpy(l->source_fp, l->pending_fp, sizeof(l->source_fp));
		log_info("definitions from %s: nothing new", l->cfg->database_dir);
		remember_outcome(l, "unchanged", NULL, 0);
		state_save(l);
	} else {
		struct json_object *d = json_object_new_object();
		char msg[1200];

		/* Remembered either way: the same files are not taken again. */
		if (r == -EBADMSG)
			util_strlcpy(l->source_fp, l->pending_fp, sizeof(l->source_fp));
		snprintf(msg, sizeof(msg), "definitions from %.300s %s: %.500s%s%.300s",
			 l->cfg->database_dir, r == -EBADMSG ? "refused" : "could not be validated",
			 out.reason, out.qpath[0] ? "; quarantined in " : "", out.qpath);
		log_error("%s", msg);
		remember_outcome(l, r == -EBADMSG ? "refused" : "error", out.reason, 0);
		if (r == -ENOMEM) {
			/* not judged: again later, backing off as loads do */
			uint64_t delay = retry_delay_ms(l, ++l->validate_tries);

			l->validate_at_ms = util_now_ms() + delay;
			log_info("validating the definitions of %s again in %llu s",
				 l->cfg->database_dir, (unsigned long long)(delay / 1000));
		}
		state_save(l);
		json_object_object_add(d, "source", json_object_new_string(l->cfg->database_dir));
		if (out.qpath[0])
			json_object_object_add(d, "quarantine", json_object_new_string(out.qpath));
		if (l->faults)
			faults_event(l->faults, "definitions_refused", msg, d);
		else
			json_object_put(d);
		if (!defs_store_current(l->store)) {
			char reason[700];

			snprintf(reason, sizeof(reason), "%.600s; no good definitions set is left",
				 msg);
			util_strlcpy(l->start_failure, reason, sizeof(l->start_failure));
			raise_7(l, "bad definitions", reason, json_object_new_object());
		}
		/* the engine that runs the active generation goes on: a reload
		 * of the same set would only cost memory and time */
		if (l->active_gen && l->active_gen == defs_store_current(l->store))
			l->reload_why[0] = '\0';
	}
	json_object_put(out.result);
	free_list(l->files);
	free_list(l->drop);
	l->files = l->drop = NULL;
	if (l->reload_why[0] && defs_store_current(l->store)) {
		char why[64];

		util_strlcpy(why, l->reload_why, sizeof(why));
		l->reload_why[0] = '\0';
		load_current(l, why);
	}
}

int loader_import(struct loader *l, const char *const *files, size_t nfiles, const char *origin,
		  loader_import_cb done, void *arg, char *err)
{
	int r;

	if (l->validating || l->validate_at_ms) {
		snprintf(err, 512, "a definitions validation is running");
		return -EBUSY;
	}
	free_list(l->files);
	l->files = calloc(nfiles + 1, sizeof(*l->files));
	for (size_t i = 0; l->files && i < nfiles; i++)
		if (!(l->files[i] = strdup(files[i]))) {
			free_list(l->files);
			l->files = NULL;
		}
	if (!l->files) {
		snprintf(err, 512, "out of memory");
		return -ENOMEM;
	}
	l->req = (struct install_req){
		.cfg = l->cfg,
		.id = l->id,
		.files = (const char *const *)l->files,
		.nfiles = nfiles,
		.copy_inputs = true,
		.origin = origin,
		.progress_fd = -1,
		.actor = "scanengined",
	};
	r = install_start(l->store, &l->req, &l->job, err);
	if (r) {
		free_list(l->files);
		l->files = NULL;
		return r;
	}
	l->validating = true;
	l->import_cb = done;
	l->import_arg = arg;
	log_info("validating %zu updated definitions file%s, validator pid %d", nfiles,
		 nfiles == 1 ? "" : "s", (int)l->job.pid);
	return 0;
}

bool loader_failed_before(const struct loader *l, const char *db, uint32_t version, char *qpath,
			  size_t qlen)
{
	return defs_store_find_failed_db(l->store, db, version, qpath, qlen);
}

const char *loader_active_dir(const struct loader *l)
{
	return defs_store_current(l->store) ? defs_store_current_path(l->store) : NULL;
}

/* The validator is done: commit (import, activate, or quarantine) in a
 * child process, so that the copies and fsyncs of a big set do not stall
 * the event loop; in this process only if that child cannot start. */
static void validation_done(struct loader *l)
{
	struct install_outcome out;
	int r = install_finish_start(l->store, &l->job, &l->req, &l->commit);

	if (r == 0)
		return;
	log_warn("cannot start the definitions commit process (%s); committing in the "
		 "service",
		 strerror(-r));
	r = install_finish(l->store, &l->job, &l->req, &out);
	validation_outcome(l, r, &out);
}

/* The committer has exited with status st. */
static void commit_done(struct loader *l, int st)
{
	struct install_outcome out;
	int r = install_finish_collect(&l->commit, &l->job, st, &out);

	validation_outcome(l, r, &out);
}

/* ---- loading --------------------------------------------------------------- */

static uint64_t gen_bytes(const char *dir)
{
	uint64_t sum = 0;
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		struct stat st;

		if (de->d_name[0] != '.' && fstatat(dirfd(d), de->d_name, &st, 0) == 0 &&
		    S_ISREG(st.st_mode))
			sum += (uint64_t)st.st_size;
	}
	closedir(d);
	return sum;
}

/* What an engine for definitions of these bytes will take: the last
 * successful load scaled to the set's size; without one, libclamav's
 * engines take about twice their files. */
static uint64_t estimate_engine_bytes(const struct loader *l, uint64_t bytes)
{
	if (l->last_rss_kb && l->last_bytes)
		return (uint64_t)((double)l->last_rss_kb * 1024.0 *
				  ((double)bytes / (double)l->last_bytes));
	return bytes * 2;
}

/* Memory a new engine could use beside everything running now. */
static uint64_t available_bytes(const struct loader *l)
{
	if (l->mem) {
		uint64_t limit = memlimit_bytes(l->mem), used = memlimit_usage(l->mem);

		return limit > used ? limit - used : 0;
	}
	return memlimit_available();
}

/* Reload beside the running engine when a second one fits (no gap in
 * scanning), else one at a time (scans wait in the queue) rather than
 * risk the OOM killer; say which and why. */
/* The engine memory the validator's test load measured for gen (its
 * manifest's engine_kib), or 0. */
static uint64_t measured_engine_bytes(const struct loader *l, unsigned int gen)
{
	struct json_object *m = defs_store_manifest(l->store, gen), *v;
	uint64_t bytes = 0;

	if (m && json_object_object_get_ex(m, "engine_kib", &v))
		bytes = (uint64_t)json_object_get_int64(v) << 10;
	json_object_put(m);
	return bytes;
}

static bool one_at_a_time(const struct loader *l, unsigned int gen, const char *dir)
{
	uint64_t need, avail;
	bool exclusive;

	if (!pool_ready(l->pool))
		return false;
	need = measured_engine_bytes(l, gen);
	if (!need)
		need = estimate_engine_bytes(l, gen_bytes(dir));
	avail = available_bytes(l);
	/* a tenth more: compiling needs more than the engine keeps */
	exclusive = !l->cfg->concurrent_reload || need + need / 10 > avail;
	log_info("reload strategy: %s: the new engine needs about %llu MiB, %llu MiB available "
		 "beside the running one%s",
		 exclusive ? "one engine at a time" : "concurrent",
		 (unsigned long long)(need >> 20), (unsigned long long)(avail >> 20),
		 l->cfg->concurrent_reload ? "" : " (ConcurrentDatabaseReload no)");
	return exclusive;
}

static void load_current(struct loader *l, const char *why)
{
	unsigned int gen = defs_store_current(l->store);
	char path[PATH_MAX];
	int r;

	if (!gen) {
		log_error("%s: no definitions generation is active", why);
		return;
	}
	if (defs_store_gen_path(l->store, gen, path, sizeof(path)) < 0)
		return;
	r = pool_load(l->pool, path, one_at_a_time(l, gen, path));
	if (r == -EBUSY) {
		log_info("%s: a definitions load is already in progress", why);
		return;
	}
	if (r < 0) {
		log_error("%s: cannot start the engine: %s", why, strerror(-r));
		return;
	}
	l->loading_gen = gen;
	l->retry_at_ms = 0;
	log_info("%s: loading definitions generation %u", why, gen);
}

static void set_unavailable(struct loader *l, const char *reason)
{
	char msg[256];

	snprintf(msg, sizeof(msg),
		 "Service unavailable: fault 7 (scan service failed to start): %s", reason);
	pool_set_unavailable(l->pool, msg);
}

static void raise_7(struct loader *l, const char *cause, const char *reason,
		    struct json_object *detail)
{
	json_object_object_add(detail, "cause", json_object_new_string(cause));
	json_object_object_add(detail, "attempts", json_object_new_int((int)l->attempts));
	if (l->faults)
		faults_raise(l->faults, FAULT_START_FAILED, reason, detail);
	else
		json_object_put(detail);
	if (!pool_ready(l->pool))
		set_unavailable(l, reason);
}

static void schedule_retry(struct loader *l)
{
	uint64_t delay = retry_delay_ms(l, l->attempts);

	l->retry_at_ms = util_now_ms() + delay;
	log_warn("retrying the definitions load in %llu s (attempt %u failed)",
		 (unsigned long long)(delay / 1000), l->attempts);
}

/* Bad definitions: quarantine the generation, go back to the previous one. */
static void failed_bad_defs(struct loader *l, unsigned int gen, const char *why)
{
	struct json_object *d = json_object_new_object(), *qd;
	char qpath[PATH_MAX] = "", reason[600];
	unsigned int prev = defs_store_previous(l->store, gen);
	int r;

	snprintf(reason, sizeof(reason), "definitions generation %u failed to load: %s", gen, why);
	json_object_object_add(d, "generation", json_object_new_int((int)gen));
	json_object_object_add(d, "error", json_object_new_string(why));
	raise_7(l, "bad definitions", reason, d);

	qd = json_object_new_object();
	json_object_object_add(qd, "error", json_object_new_string(why));
	r = defs_store_quarantine(l->store, gen, "load", why, qd, qpath, sizeof(qpath));
	if (r < 0) {
		log_error("cannot quarantine definitions generation %u: %s", gen, strerror(-r));
	} else if (l->faults) {
		struct json_object *e = json_object_new_object();

		json_object_object_add(e, "generation", json_object_new_int((int)gen));
		json_object_object_add(e, "quarantine", json_object_new_string(qpath));
		faults_event(l->faults, "quarantined",
			     "definitions that failed to load were moved to quarantine", e);
		log_error("definitions generation %u quarantined in %s", gen, qpath);
	}
	if (!prev) {
		char none[700];

		snprintf(none, sizeof(none), "%s; no good definitions set is left", reason);
		raise_7(l, "bad definitions", none, json_object_new_object());
		return;
	}
	r = defs_store_activate(l->store, prev);
	if (r < 0) {
		log_error("cannot restore definitions generation %u: %s", prev, strerror(-r));
		return;
	}
	if (l->faults) {
		struct json_object *e = json_object_new_object();

		json_object_object_add(e, "generation", json_object_new_int((int)prev));
		json_object_object_add(e, "replaces", json_object_new_int((int)gen));
		faults_event(l->faults, "restored", "the previous definitions set is active again",
			     e);
	}
	log_warn("definitions generation %u restored", prev);
	load_current(l, "rollback");
}

static void failed_memory(struct loader *l, unsigned int gen, const char *why, const char *dir)
{
	struct json_object *d = json_object_new_object();
	uint64_t bytes = gen_bytes(dir), needed, limit = 0, available;
	char reason[700];

	needed = estimate_engine_bytes(l, bytes);
	available = available_bytes(l);
	if (l->mem)
		limit = memlimit_bytes(l->mem);
	snprintf(reason, sizeof(reason),
		 "insufficient memory to load definitions generation %u: needs about %llu MiB, "
		 "%llu MiB available%s%s (%s)",
		 gen, (unsigned long long)(needed >> 20), (unsigned long long)(available >> 20),
		 l->mem ? " under MemoryLimit via " : "",
		 l->mem ? memlimit_kind_name(memlimit_kind(l->mem)) : "", why);
	json_object_object_add(d, "generation", json_object_new_int((int)gen));
	json_object_object_add(d, "error", json_object_new_string(why));
	json_object_object_add(d, "needed_bytes", json_object_new_int64((int64_t)needed));
	json_object_object_add(d, "available_bytes", json_object_new_int64((int64_t)available));
	json_object_object_add(d, "definitions_bytes", json_object_new_int64((int64_t)bytes));
	if (l->mem) {
		json_object_object_add(d, "limit_bytes", json_object_new_int64((int64_t)limit));
		json_object_object_add(
			d, "mechanism",
			json_object_new_string(memlimit_kind_name(memlimit_kind(l->mem))));
	}
	raise_7(l, "insufficient memory", reason, d);
	schedule_retry(l);
}

static void failed_other(struct loader *l, unsigned int gen, const char *why)
{
	struct json_object *d = json_object_new_object();
	char reason[600];

	snprintf(reason, sizeof(reason), "engine for definitions generation %u did not start: %s",
		 gen, why);
	json_object_object_add(d, "generation", json_object_new_int((int)gen));
	json_object_object_add(d, "error", json_object_new_string(why));
	raise_7(l, "other", reason, d);
	schedule_retry(l);
}

void loader_engine_failed(struct loader *l, enum load_failure cls, const char *why, const char *dir)
{
	unsigned int gen = l->loading_gen;

	l->loading_gen = 0;
	l->attempts++;
	if (!gen)
		return;
	/* A set that loaded before is no "bad set": something else changed
	 * (libclamav, the machine); keep it and retry. */
	if (cls == LOAD_FAIL_DEFS && is_good(l, gen))
		cls = LOAD_FAIL_OTHER;
	switch (cls) {
	case LOAD_FAIL_DEFS:
		failed_bad_defs(l, gen, why);
		break;
	case LOAD_FAIL_MEMORY:
		failed_memory(l, gen, why, dir);
		break;
	default:
		failed_other(l, gen, why);
		break;
	}
}

void loader_engine_ready(struct loader *l, const struct msg_engine_info *info)
{
	unsigned int gen = l->loading_gen;
	char path[PATH_MAX];

	l->loading_gen = 0;
	l->active_gen = gen;
	l->attempts = 0;
	l->retry_at_ms = 0;
	pool_set_unavailable(l->pool, NULL);
	if (gen) {
		mark_good(l, gen);
		if (defs_store_gen_path(l->store, gen, path, sizeof(path)) == 0) {
			l->last_bytes = gen_bytes(path);
			l->last_rss_kb = info->rss_kb;
		}
		state_save(l);
	}
	if (l->faults && faults_is_active(l->faults, FAULT_START_FAILED)) {
		char reason[160];

		snprintf(reason, sizeof(reason),
			 "engine up: definitions generation %u, %u signatures", gen, info->sigs);
		faults_clear(l->faults, FAULT_START_FAILED, reason);
	}
	if (defs_store_prune(l->store) < 0)
		log_warn("cannot prune old definitions generations");
}

/* ---- public ------------------------------------------------------------- */

struct loader *loader_new(const struct config *cfg, const struct sandbox_identity *id,
			  struct pool *pool, struct faults *faults, char *err)
{
	struct loader *l = calloc(1, sizeof(*l));
	char root[PATH_MAX], serr[256];

	if (!l) {
		snprintf(err, 512, "out of memory");
		return NULL;
	}
	l->cfg = cfg;
	l->commit.fd = -1;
	l->id = id;
	l->pool = pool;
	l->faults = faults;
	snprintf(root, sizeof(root), "%s/defs", cfg->state_dir);
	snprintf(l->state_path, sizeof(l->state_path), "%s/loader.json", cfg->state_dir);
	l->store = defs_store_open(root, cfg->keep_generations, serr);
	if (!l->store) {
		snprintf(err, 512, "definitions store %.200s: %.250s", root, serr);
		free(l);
		return NULL;
	}
	state_load(l);
	return l;
}

void loader_free(struct loader *l)
{
	if (!l)
		return;
	if (l->validating && l->commit.pid) {
		int st;

		/* a commit is short and its store steps are atomic: let it end */
		while (waitpid(l->commit.pid, &st, 0) < 0 && errno == EINTR)
			;
		util_close(&l->commit.fd);
	} else if (l->validating) {
		install_abort(&l->job);
	}
	free_list(l->files);
	free_list(l->drop);
	json_object_put(l->last);
	defs_store_close(l->store);
	free(l);
}

void loader_set_memlimit(struct loader *l, struct memlimit *m)
{
	l->mem = m;
}

int loader_start(struct loader *l, char *err)
{
	int r = sync_source(l, err);

	if (r < 0) {
		if (!defs_store_current(l->store))
			return r;
		/* keep what is active; the new files are refused */
		log_error("%s; keeping definitions generation %u", err,
			  defs_store_current(l->store));
	}
	/* Serve with the active set meanwhile; a set that passes
	 * validation takes over when it is loaded. */
	if (defs_store_current(l->store))
		load_current(l, "start-up");
	else if (r == 1)
		util_strlcpy(l->reload_why, "start-up", sizeof(l->reload_why));
	return 0;
}

void loader_reload(struct loader *l, const char *why)
{
	char err[512];
	int r;

	if (l->validating) {
		/* what the validator brings will be loaded when it is done */
		util_strlcpy(l->reload_why, why, sizeof(l->reload_why));
		log_info("%s: the definitions of %s are being validated; the engine reloads "
			 "when that is done",
			 why, l->cfg->database_dir);
		return;
	}
	r = sync_source(l, err);
	if (r == 1) {
		util_strlcpy(l->reload_why, why, sizeof(l->reload_why));
		return;
	}
	if (r < 0) {
		log_error("%s: %s; keeping definitions generation %u", why, err,
			  defs_store_current(l->store));
		if (l->faults) {
			struct json_object *d = json_object_new_object();

			json_object_object_add(d, "source",
					       json_object_new_string(l->cfg->database_dir));
			faults_event(l->faults, "definitions_refused", err, d);
		}
	}
	load_current(l, why);
}

bool loader_busy(const struct loader *l)
{
	return l->validating;
}

const char *loader_start_failure(const struct loader *l)
{
	return l->start_failure[0] ? l->start_failure : NULL;
}

void loader_tick(struct loader *l)
{
	uint64_t now = util_now_ms();

	if (l->validating && l->commit.pid) {
		int st;
		pid_t p;

		/* the pool reaps every child; it keeps the committer's status */
		if (pool_claim_death(l->pool, l->commit.pid, &st))
			commit_done(l, st);
		else if ((p = waitpid(l->commit.pid, &st, WNOHANG)) == l->commit.pid ||
			 (p < 0 && errno == ECHILD))
			commit_done(l, p < 0 ? 0 : st);
	} else if (l->validating) {
		int st, w = 1;

		/* the pool reaps every child; it keeps the validator's status */
		if (pool_claim_death(l->pool, l->job.pid, &st)) {
			l->job.status = st;
			l->job.pid = 0;
			w = 0;
		} else {
			w = install_wait(&l->job, false);
			if (w == -ECHILD) { /* reaped, status lost: result.json tells */
				l->job.pid = 0;
				w = 0;
			}
		}
		if (w == 0)
			validation_done(l);
	}
	if (l->validate_at_ms && now >= l->validate_at_ms && !l->validating) {
		char err[512];

		l->validate_at_ms = 0;
		if (sync_source(l, err) < 0)
			log_error("%s", err);
	}
	if (l->retry_at_ms && now >= l->retry_at_ms && !pool_loading(l->pool)) {
		l->retry_at_ms = 0;
		load_current(l, "retry");
	}
}

/* What the engine scans with: the databases of its generation's
 * manifest, as the operator asks "which version is active". */
static struct json_object *engine_databases(const struct loader *l)
{
	struct json_object *m, *dbs, *out = json_object_new_array();

	if (!l->active_gen || !out)
		return out;
	m = defs_store_manifest(l->store, l->active_gen);
	if (m && json_object_object_get_ex(m, "databases", &dbs))
		for (size_t i = 0; i < json_object_array_length(dbs); i++) {
			struct json_object *d = json_object_array_get_idx(dbs, i), *e, *v;
			static const char *const keys[] = {"name",	     "file",
							   "version",	     "signatures",
							   "authentication", "origin"};

			e = json_object_new_object();
			for (size_t k = 0; e && k < SE_ARRAY_SIZE(keys); k++)
				if (json_object_object_get_ex(d, keys[k], &v))
					json_object_object_add(e, keys[k], json_object_get(v));
			json_object_array_add(out, e);
		}
	json_object_put(m);
	return out;
}

void loader_status(const struct loader *l, struct json_object *o)
{
	json_object_object_add(o, "definitions_generation",
			       json_object_new_int((int)defs_store_current(l->store)));
	json_object_object_add(o, "engine_generation", json_object_new_int((int)l->active_gen));
	json_object_object_add(o, "definitions_databases", engine_databases(l));
	json_object_object_add(o, "definitions_validating", json_object_new_boolean(l->validating));
	if (l->last)
		json_object_object_add(o, "definitions_last_validation", json_object_get(l->last));
	json_object_object_add(o, "definitions_store", defs_store_list_json(l->store));
	if (l->retry_at_ms) {
		uint64_t now = util_now_ms();

		json_object_object_add(
			o, "load_retry_in_seconds",
			json_object_new_int64(
				(int64_t)((l->retry_at_ms > now ? l->retry_at_ms - now : 0) /
					  1000)));
	}
	json_object_object_add(o, "load_attempts_failed", json_object_new_int((int)l->attempts));
}
