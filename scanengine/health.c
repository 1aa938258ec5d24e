/* health: fault 5 (see health.h). */
#include "scanengine/health.h"
#include "common/log.h"
#include "common/util.h"
#include "scanengine/faults.h"

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

struct expect {
	char path[PATH_MAX];
	uid_t uid;
	mode_t mode;
};

/* Compare one directory with what make install sets; describe a mismatch
 * into problems and return false. */
static bool check_dir(const struct expect *e, struct json_object *problems, char *first,
		      size_t firstlen)
{
	struct stat st;
	char actual[64];
	struct json_object *p;

	if (stat(e->path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == e->uid &&
	    (st.st_mode & 07777) == e->mode)
		return true;
	if (stat(e->path, &st) < 0)
		snprintf(actual, sizeof(actual), "%s", strerror(errno));
	else
		snprintf(actual, sizeof(actual), "owner uid %u, mode %04o", (unsigned int)st.st_uid,
			 (unsigned int)(st.st_mode & 07777));
	p = json_object_new_object();
	json_object_object_add(p, "path", json_object_new_string(e->path));
	json_object_object_add(p, "expected_uid", json_object_new_int((int)e->uid));
	json_object_object_add(p, "expected_mode", json_object_new_int((int)e->mode));
	json_object_object_add(p, "actual", json_object_new_string(actual));
	json_object_array_add(problems, p);
	if (!first[0])
		snprintf(first, firstlen,
			 "%.3000s should be owned by uid %u with mode %04o, has %s", e->path,
			 (unsigned int)e->uid, (unsigned int)e->mode, actual);
	return false;
}

bool health_check(const struct config *cfg, struct sandbox_identity *id, struct faults *f)
{
	struct sandbox_identity now = {0};
	struct json_object *problems = json_object_new_array();
	struct expect dirs[2];
	char first[PATH_MAX + 128] = "", reason[PATH_MAX + 256];
	bool was_valid = id->valid, all_ok = true;
	int r = sandbox_lookup_user(cfg->user, &now);

	if (r < 0 && r != -ENOENT) {
		/* NSS trouble is no verdict on the account: keep what we had */
		log_warn("cannot look up scan user %s: %s", cfg->user, strerror(-r));
		now = *id;
	}
	*id = now;

	util_strlcpy(dirs[0].path, cfg->state_dir, sizeof(dirs[0].path));
	dirs[0].uid = 0;
	dirs[0].mode = 0755;
	snprintf(dirs[1].path, sizeof(dirs[1].path), "%s/defs", cfg->state_dir);
	dirs[1].uid = 0;
	dirs[1].mode = 0755;
	for (size_t i = 0; i < SE_ARRAY_SIZE(dirs); i++)
		all_ok &= check_dir(&dirs[i], problems, first, sizeof(first));

	if (!id->valid) {
		struct json_object *d = json_object_new_object();

		snprintf(reason, sizeof(reason),
			 "scan user '%s' does not exist: the engine and scan workers run as root",
			 cfg->user);
		json_object_object_add(d, "user", json_object_new_string(cfg->user));
		json_object_object_add(d, "directories", problems);
		if (f)
			faults_raise(f, FAULT_USER_UNAVAILABLE, reason, d);
		else
			json_object_put(d);
	} else if (!all_ok) {
		struct json_object *d = json_object_new_object();

		json_object_object_add(d, "user", json_object_new_string(cfg->user));
		json_object_object_add(d, "directories", problems);
		if (f)
			faults_raise(f, FAULT_USER_UNAVAILABLE, first, d);
		else
			json_object_put(d);
	} else {
		json_object_put(problems);
		if (f && faults_is_active(f, FAULT_USER_UNAVAILABLE)) {
			snprintf(reason, sizeof(reason),
				 "scan user '%s' exists and the directories have their modes",
				 cfg->user);
			faults_clear(f, FAULT_USER_UNAVAILABLE, reason);
		}
	}
	return was_valid != id->valid;
}
