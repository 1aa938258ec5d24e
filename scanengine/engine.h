/* engine: the only module that speaks libclamav. cl_error_t values are
 * converted to -errno or to messages here and nowhere else. */
#ifndef SE_SCANENGINE_ENGINE_H
#define SE_SCANENGINE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "scanengine/msgs.h"

struct engine;

struct engine_result {
	enum msg_verdict verdict;
	unsigned int nnames;
	char names[MSG_RESULT_MAX_NAMES][128]; /* signature names, in match order */
	char error[256];		       /* for VERDICT_ERROR */
	uint64_t scanned_bytes;
};

/* engine_global_init: cl_init once per process. Returns 0 or -EIO with a
 * message in err[256]. */
int engine_global_init(char *err);

/* engine_load: create an engine with the limits and switches of cfg, load
 * every database in dbdir, compile it, and fill info. Scratch files go to
 * tmpdir. Returns the engine or NULL with a one-line reason in err[512] and
 * errno classifying it: EINVAL the definitions are malformed or rejected by
 * libclamav, ENOMEM memory ran out, ENOENT/EACCES files missing or
 * unreadable. Free with engine_free. */
struct engine *engine_load(const struct config *cfg, const char *dbdir, const char *tmpdir,
			   struct msg_engine_info *info, char *err);

/* What one file brought to an engine_load_files load. */
struct engine_file_load {
	uint32_t sigs;	  /* signatures it contributed */
	uint32_t ms;	  /* time its cl_load took */
	uint64_t rss_kib; /* resident memory the process grew by while loading it */
};

/* engine_load_files: like engine_load, but cl_load each of paths[0..n)
 * (files or directories) in turn into one engine, so that per[i] (per may
 * be NULL) gets what paths[i] contributed, then compile.
 * lflags: ENGINE_LOAD_ALL_SIGS also loads PUA signatures whatever cfg says,
 * so that a container's count can be compared with its header (the
 * validator's test load). Errors as engine_load. */
#define ENGINE_LOAD_ALL_SIGS 1u
struct engine *engine_load_files(const struct config *cfg, const char *const *paths, size_t n,
				 unsigned int lflags, struct engine_file_load *per,
				 const char *tmpdir, struct msg_engine_info *info, char *err);

/* engine_keep_statm: open /proc/self/statm now and keep it, for a process
 * about to be confined (Landlock) that still wants engine_load_files's
 * per-file memory. Returns 0 or -errno. */
int engine_keep_statm(void);

/* engine_progress_fn: what engine loads report while they run: phase
 * "load" or "compile", done of total items (libclamav's progress
 * callbacks; total may be 0 when unknown). */
typedef void (*engine_progress_fn)(void *arg, const char *phase, uint64_t done, uint64_t total);

/* engine_set_progress: report the progress of engines created after this
 * call in this process to fn (NULL: none). */
void engine_set_progress(engine_progress_fn fn, void *arg);

/* engine_flevel: the functionality level of the linked libclamav. */
uint32_t engine_flevel(void);

/* engine_warm_up: do, once in the zygote, what libclamav and glibc would
 * otherwise do lazily on a worker's first scan and can no longer do inside
 * its sandbox: load iconv modules, initialise OpenSSL. Returns 0 or -EIO
 * when the test scan of a harmless buffer is not clean. */
int engine_warm_up(struct engine *e);

/* engine_set_tmpdir: point scratch files at dir (each worker has its own;
 * the engine struct is a private copy-on-write page in each). Returns 0 or
 * -errno. */
int engine_set_tmpdir(struct engine *e, const char *dir);

/* engine_scan: scan the open file fd. allmatch reports every signature that
 * matches instead of the first. Returns 0 with res filled (including scan
 * errors, which are a verdict, not a failure of the call). */
int engine_scan(struct engine *e, int fd, bool allmatch, struct engine_result *res);

/* engine_free: release the engine (NULL ok). */
void engine_free(struct engine *e);

/* engine_version: libclamav's version string. */
const char *engine_version(void);

#endif
