/* validate_int: what defs/validate.c and defs/validate_load.c share: the
 * validation context of one candidate set. Internal to defs/validate*.c. */
#ifndef SCANENGINE_DEFS_VALIDATE_INT_H
#define SCANENGINE_DEFS_VALIDATE_INT_H

#include "defs/auth.h"
#include "defs/cvd.h"
#include "defs/validate.h"

#include <limits.h>
#include <magic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

/* One file of the candidate set. */
struct vfile {
	char src[PATH_MAX];	 /* where it came from */
	char sign_src[PATH_MAX]; /* its .sign, or "" */
	char base[256];		 /* src's base name, for messages */
	char db[128];
	char setname[256]; /* its name in the set: "<db>.<ext>" */
	enum cvd_type type;
	bool is_new;
	int fd; /* the copy in the set, O_RDONLY */
	struct stat st;
	struct cvd_header hdr;
	struct cvd_info info;
	bool has_info;
	char sha256[65];
	struct auth_result auth;
	const char *auth_name;
	uint32_t loaded;   /* signatures the test load counted */
	uint32_t load_ms;  /* its cl_load in the test load */
	uint64_t load_kib; /* memory the test load grew by loading it */
};

struct vctx {
	const struct validate_policy *pol;
	struct validate_result *res;
	const char *activedir;
	const char *const *files; /* as given */
	size_t nfiles;
	char dir[PATH_MAX];
	char setdir[PATH_MAX + 8];
	char tmpdir[PATH_MAX + 8];
	int dirfd, setfd, unpackfd;
	struct vfile *f;
	size_t nf;
	size_t ncarried, ndropped;   /* databases carried over / left out by pol->drop */
	struct validate_file *signs; /* the .sign files of the set */
	size_t nsigns;
	magic_t magic;
	struct json_object *child; /* the test load's report */
	char why[VALIDATE_REASON_MAX];
	char note[VALIDATE_REASON_MAX];
};

/* vctx_fail: a stage failure: the one-line reason (into c->why) and the
 * member, file or line it is about (offending, may be NULL). Returns
 * -EBADMSG. */
__attribute__((format(printf, 3, 4))) int vctx_fail(struct vctx *c, const char *offending,
						    const char *fmt, ...);

/* vctx_internal: a failure that is not the definitions' fault (r, a
 * -errno, about what). Returns r. */
int vctx_internal(struct vctx *c, int r, const char *what);

/* vctx_note: append to the pass summary of the running stage. */
__attribute__((format(printf, 2, 3))) void vctx_note(struct vctx *c, const char *fmt, ...);

/* vctx_progress: one progress line to the policy's callback, if any. */
__attribute__((format(printf, 2, 3))) void vctx_progress(struct vctx *c, const char *fmt, ...);

/* validate_stage_test_load: stage 6, in a child process as the scan user:
 * cl_load + cl_engine_compile of the whole candidate set under
 * ValidatorMemoryLimit and ValidatorTimeout, the signature counts against
 * the headers, the peak memory; the child then runs the canary samples,
 * whose results validate_stage_canary (stage 7) judges. 0 or as
 * vctx_fail/vctx_internal. */
int validate_stage_test_load(struct vctx *c);
int validate_stage_canary(struct vctx *c);

#endif
