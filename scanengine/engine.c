/* engine: the only module that speaks libclamav. */
#include "scanengine/engine.h"
#include "common/log.h"
#include "common/util.h"

#include <clamav.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct engine {
	struct cl_engine *cl;
	struct cl_scan_options opts;
	iconv_t iconv[2]; /* kept open by engine_warm_up, see there */
};

/* Per-scan state reached from libclamav's callbacks through the context
 * pointer of cl_scandesc_callback. */
struct scan_ctx {
	struct engine_result *res;
};

/* libclamav reports load errors only through the global message callback,
 * which has no context at load time: keep the last error here. */
static char last_clmsg[512];

static void clmsg_cb(enum cl_msg severity, const char *fullmsg, const char *msg, void *context)
{
	struct scan_ctx *sc = context;
	size_t len;

	(void)fullmsg;
	if (!msg)
		return;
	len = strlen(msg);
	while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		len--;
	if (severity == CL_MSG_ERROR) {
		/* during a scan the context is ours: an error there means the
		 * file was not (fully) scanned, whatever the return code says */
		char *dst = sc ? sc->res->error : last_clmsg;
		size_t cap = sc ? sizeof(sc->res->error) : sizeof(last_clmsg);

		if (!sc || !dst[0])
			snprintf(dst, cap, "%.*s", (int)len, msg);
	}
	switch (severity) {
	case CL_MSG_ERROR:
		log_error("libclamav: %.*s", (int)len, msg);
		break;
	case CL_MSG_WARN:
		log_warn("libclamav: %.*s", (int)len, msg);
		break;
	default:
		log_debug("libclamav: %.*s", (int)len, msg);
		break;
	}
}

static void virus_found_cb(int fd, const char *virname, void *context)
{
	struct scan_ctx *sc = context;
	struct engine_result *r;

	(void)fd;
	if (!sc || !virname)
		return;
	r = sc->res;
	if (r->nnames >= MSG_RESULT_MAX_NAMES)
		return;
	/* libclamav may report the same name twice in all-match mode (e.g.
	 * the file and an embedded copy); clamd prints each report. */
	util_strlcpy(r->names[r->nnames++], virname, sizeof(r->names[0]));
}

int engine_global_init(char *err)
{
	cl_error_t rc;

	cl_set_clcb_msg(clmsg_cb);
	rc = cl_init(CL_INIT_DEFAULT);
	if (rc != CL_SUCCESS) {
		snprintf(err, 256, "cannot initialise libclamav: %s", cl_strerror(rc));
		return -EIO;
	}
	return 0;
}

const char *engine_version(void)
{
	return cl_retver();
}

static int cl_to_errno(cl_error_t rc)
{
	switch (rc) {
	case CL_SUCCESS:
		return 0;
	case CL_EMEM:
	case CL_EMAP:
		return ENOMEM;
	case CL_EOPEN:
	case CL_ESTAT:
		return errno == EACCES ? EACCES : ENOENT;
	case CL_EACCES:
		return EACCES;
	case CL_ETIMEOUT:
		return ETIMEDOUT;
	default:
		return EINVAL;
	}
}

struct limit {
	enum cl_engine_field field;
	size_t off; /* offset in struct config */
	int is64;
};

#define LIM32(f, m)                                                                                \
	{                                                                                          \
		f, offsetof(struct config, m), 0                                                   \
	}
#define LIM64(f, m)                                                                                \
	{                                                                                          \
		f, offsetof(struct config, m), 1                                                   \
	}

static const struct limit limits[] = {
	LIM64(CL_ENGINE_MAX_SCANSIZE, max_scan_size),
	LIM64(CL_ENGINE_MAX_FILESIZE, max_file_size),
	LIM32(CL_ENGINE_MAX_RECURSION, max_recursion),
	LIM32(CL_ENGINE_MAX_FILES, max_files),
	LIM64(CL_ENGINE_MAX_EMBEDDEDPE, max_embedded_pe),
	LIM64(CL_ENGINE_MAX_HTMLNORMALIZE, max_html_normalize),
	LIM64(CL_ENGINE_MAX_HTMLNOTAGS, max_html_notags),
	LIM64(CL_ENGINE_MAX_SCRIPTNORMALIZE, max_script_normalize),
	LIM64(CL_ENGINE_MAX_ZIPTYPERCG, max_zip_type_rcg),
	LIM32(CL_ENGINE_MAX_PARTITIONS, max_partitions),
	LIM32(CL_ENGINE_MAX_ICONSPE, max_icons_pe),
	LIM32(CL_ENGINE_MAX_RECHWP3, max_rec_hwp3),
	LIM32(CL_ENGINE_MAX_SCANTIME, max_scan_time),
	LIM64(CL_ENGINE_PCRE_MATCH_LIMIT, pcre_match_limit),
	LIM64(CL_ENGINE_PCRE_RECMATCH_LIMIT, pcre_rec_match_limit),
	LIM64(CL_ENGINE_PCRE_MAX_FILESIZE, pcre_max_file_size),
	LIM32(CL_ENGINE_BYTECODE_TIMEOUT, bytecode_timeout),
};

struct flag {
	size_t off; /* bool in struct config */
	uint32_t *(*word)(struct cl_scan_options *o);
	uint32_t bit;
};

static uint32_t *w_general(struct cl_scan_options *o)
{
	return &o->general;
}
static uint32_t *w_parse(struct cl_scan_options *o)
{
	return &o->parse;
}
static uint32_t *w_heur(struct cl_scan_options *o)
{
	return &o->heuristic;
}
static uint32_t *w_mail(struct cl_scan_options *o)
{
	return &o->mail;
}

#define FLAG(m, w, b)                                                                              \
	{                                                                                          \
		offsetof(struct config, m), w, b                                                   \
	}

/* clamd.conf switch -> scan option bit, as clamd maps them. */
static const struct flag flags[] = {
	FLAG(heuristic_alerts, w_general, CL_SCAN_GENERAL_HEURISTICS),
	FLAG(heuristic_scan_precedence, w_general, CL_SCAN_GENERAL_HEURISTIC_PRECEDENCE),
	FLAG(scan_archive, w_parse, CL_SCAN_PARSE_ARCHIVE),
	FLAG(scan_elf, w_parse, CL_SCAN_PARSE_ELF),
	FLAG(scan_pdf, w_parse, CL_SCAN_PARSE_PDF),
	FLAG(scan_swf, w_parse, CL_SCAN_PARSE_SWF),
	FLAG(scan_hwp3, w_parse, CL_SCAN_PARSE_HWP3),
	FLAG(scan_xmldocs, w_parse, CL_SCAN_PARSE_XMLDOCS),
	FLAG(scan_mail, w_parse, CL_SCAN_PARSE_MAIL),
	FLAG(scan_ole2, w_parse, CL_SCAN_PARSE_OLE2),
	FLAG(scan_html, w_parse, CL_SCAN_PARSE_HTML),
	FLAG(scan_pe, w_parse, CL_SCAN_PARSE_PE),
	FLAG(scan_onenote, w_parse, CL_SCAN_PARSE_ONENOTE),
	FLAG(scan_image, w_parse, CL_SCAN_PARSE_IMAGE),
	FLAG(scan_image_fuzzy_hash, w_parse, CL_SCAN_PARSE_IMAGE_FUZZY_HASH),
	FLAG(alert_broken_executables, w_heur, CL_SCAN_HEURISTIC_BROKEN),
	FLAG(alert_broken_media, w_heur, CL_SCAN_HEURISTIC_BROKEN_MEDIA),
	FLAG(alert_exceeds_max, w_heur, CL_SCAN_HEURISTIC_EXCEEDS_MAX),
	FLAG(alert_phishing_ssl_mismatch, w_heur, CL_SCAN_HEURISTIC_PHISHING_SSL_MISMATCH),
	FLAG(alert_phishing_cloak, w_heur, CL_SCAN_HEURISTIC_PHISHING_CLOAK),
	FLAG(alert_ole2_macros, w_heur, CL_SCAN_HEURISTIC_MACROS),
	FLAG(alert_encrypted_archive, w_heur, CL_SCAN_HEURISTIC_ENCRYPTED_ARCHIVE),
	FLAG(alert_encrypted_doc, w_heur, CL_SCAN_HEURISTIC_ENCRYPTED_DOC),
	FLAG(alert_encrypted, w_heur,
	     CL_SCAN_HEURISTIC_ENCRYPTED_ARCHIVE | CL_SCAN_HEURISTIC_ENCRYPTED_DOC),
	FLAG(alert_partition_intersection, w_heur, CL_SCAN_HEURISTIC_PARTITION_INTXN),
	FLAG(scan_partial_messages, w_mail, CL_SCAN_MAIL_PARTIAL_MESSAGE),
};

static bool cfg_bool(const struct config *cfg, size_t off)
{
	return *(const bool *)((const char *)cfg + off);
}

static int apply_settings(struct engine *e, const struct config *cfg, const char *tmpdir, char *err)
{
	cl_error_t rc;

	for (size_t i = 0; i < SE_ARRAY_SIZE(limits); i++) {
		const void *p = (const char *)cfg + limits[i].off;
		long long v = limits[i].is64 ? (long long)*(const uint64_t *)p
					     : (long long)*(const unsigned int *)p;

		rc = cl_engine_set_num(e->cl, limits[i].field, v);
		if (rc != CL_SUCCESS) {
			snprintf(err, 512, "cannot set engine limit %d: %s", (int)limits[i].field,
				 cl_strerror(rc));
			return -EINVAL;
		}
	}
	cl_engine_set_num(e->cl, CL_ENGINE_BYTECODE_SECURITY,
			  cfg->bytecode_security ? CL_BYTECODE_TRUST_NOTHING
						 : CL_BYTECODE_TRUST_SIGNED);
	if (cfg->force_to_disk)
		cl_engine_set_num(e->cl, CL_ENGINE_FORCETODISK, 1);
	if (cfg->disable_cache)
		cl_engine_set_num(e->cl, CL_ENGINE_DISABLE_CACHE, 1);
	if (cfg->leave_temporary_files)
		cl_engine_set_num(e->cl, CL_ENGINE_KEEPTMP, 1);
	if (cfg->disable_cert_check)
		cl_engine_set_num(e->cl, CL_ENGINE_DISABLE_PE_CERTS, 1);
	if (tmpdir && cl_engine_set_str(e->cl, CL_ENGINE_TMPDIR, tmpdir) != CL_SUCCESS) {
		snprintf(err, 512, "cannot set TemporaryDirectory %s", tmpdir);
		return -EINVAL;
	}

	memset(&e->opts, 0, sizeof(e->opts));
	for (size_t i = 0; i < SE_ARRAY_SIZE(flags); i++)
		if (cfg_bool(cfg, flags[i].off))
			*flags[i].word(&e->opts) |= flags[i].bit;
	return 0;
}

/* Name the first database file that is not readable, so "unreadable
 * definitions" is reported as exactly that instead of libclamav's generic
 * load error. */
static int check_readable(const char *dir, char *err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	unsigned int files = 0;
	int ret = 0;

	if (!d) {
		snprintf(err, 512, "DatabaseDirectory %s: %s", dir, strerror(errno));
		return -errno;
	}
	while ((de = readdir(d))) {
		char path[4096];
		int fd;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0) {
			ret = -errno;
			snprintf(err, 512, "cannot read definitions file %.400s: %s", path,
				 strerror(errno));
			break;
		}
		close(fd);
		files++;
	}
	closedir(d);
	if (!ret && !files) {
		snprintf(err, 512, "no signatures found in %s", dir);
		ret = -ENOENT;
	}
	return ret;
}

static engine_progress_fn progress_fn;
static void *progress_arg;

void engine_set_progress(engine_progress_fn fn, void *arg)
{
	progress_fn = fn;
	progress_arg = arg;
}

static cl_error_t sigload_progress_cb(size_t total, size_t done, void *ctx)
{
	(void)ctx;
	if (progress_fn)
		progress_fn(progress_arg, "load", (uint64_t)done, (uint64_t)total);
	return CL_SUCCESS;
}

static cl_error_t compile_progress_cb(size_t total, size_t done, void *ctx)
{
	(void)ctx;
	if (progress_fn)
		progress_fn(progress_arg, "compile", (uint64_t)done, (uint64_t)total);
	return CL_SUCCESS;
}

uint32_t engine_flevel(void)
{
	return cl_retflevel();
}

/* The engine with cfg's settings, nothing loaded yet. */
static struct engine *engine_create(const struct config *cfg, const char *tmpdir, int *eno,
				    char *err)
{
	struct engine *e;
	int r;

	*eno = ENOMEM;
	e = calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, 512, "out of memory creating the engine");
		return NULL;
	}
	e->iconv[0] = e->iconv[1] = (iconv_t)-1;
	e->cl = cl_engine_new();
	if (!e->cl) {
		snprintf(err, 512, "out of memory creating the engine");
		goto err_free;
	}
	r = apply_settings(e, cfg, tmpdir, err);
	if (r < 0) {
		*eno = -r;
		goto err_free;
	}
	if (progress_fn) {
		cl_engine_set_clcb_sigload_progress(e->cl, sigload_progress_cb, NULL);
		cl_engine_set_clcb_engine_compile_progress(e->cl, compile_progress_cb, NULL);
	}
	return e;

err_free:
	engine_free(e);
	return NULL;
}

static unsigned int load_options(const struct config *cfg, unsigned int lflags)
{
	unsigned int dbopts = CL_DB_STDOPT;

	if (!cfg->bytecode)
		dbopts &= ~(unsigned int)CL_DB_BYTECODE;
	if (cfg->detect_pua || (lflags & ENGINE_LOAD_ALL_SIGS))
		dbopts |= CL_DB_PUA;
	if (!cfg->phishing_signatures)
		dbopts &= ~(unsigned int)CL_DB_PHISHING;
	if (!cfg->phishing_scan_urls)
		dbopts &= ~(unsigned int)CL_DB_PHISHING_URLS;
	return dbopts;
}

/* cl_load of path into e, adding to *sigs. Returns 0 or an errno. */
static int load_one(struct engine *e, const char *path, unsigned int dbopts, unsigned int *sigs,
		    char *err)
{
	cl_error_t rc;

	last_clmsg[0] = '\0';
	rc = cl_load(path, e->cl, sigs, dbopts);
	if (rc != CL_SUCCESS) {
		snprintf(err, 512, "cannot load definitions from %.200s: %s%s%.200s", path,
			 cl_strerror(rc), last_clmsg[0] ? ": " : "", last_clmsg);
		return cl_to_errno(rc);
	}
	return 0;
}

/* Compile e and fill info; what engine_load and engine_load_files share
 * after loading. Returns 0 or an errno. */
static int finish_load(struct engine *e, const char *what, unsigned int sigs, uint64_t t0,
		       struct msg_engine_info *info, char *err)
{
	cl_error_t rc;

	if (sigs == 0) {
		snprintf(err, 512, "no signatures found in %s", what);
		return ENOENT;
	}
	last_clmsg[0] = '\0';
	rc = cl_engine_compile(e->cl);
	if (rc != CL_SUCCESS) {
		snprintf(err, 512, "cannot compile definitions from %.200s: %s%s%.200s", what,
			 cl_strerror(rc), last_clmsg[0] ? ": " : "", last_clmsg);
		return cl_to_errno(rc);
	}
	info->sigs = sigs;
	info->db_version = (uint32_t)cl_engine_get_num(e->cl, CL_ENGINE_DB_VERSION, NULL);
	info->db_time = (int64_t)cl_engine_get_num(e->cl, CL_ENGINE_DB_TIME, NULL);
	info->flevel = cl_retflevel();
	info->load_ms = (uint32_t)(util_now_ms() - t0);
	util_strlcpy(info->version, cl_retver(), sizeof(info->version));
	cl_engine_set_clcb_virus_found(e->cl, virus_found_cb);
	return 0;
}

struct engine *engine_load(const struct config *cfg, const char *dbdir, const char *tmpdir,
			   struct msg_engine_info *info, char *err)
{
	struct engine *e;
	unsigned int sigs = 0;
	uint64_t t0 = util_now_ms();
	int r, eno;

	memset(info, 0, sizeof(*info));
	e = engine_create(cfg, tmpdir, &eno, err);
	if (!e)
		goto err;
	r = check_readable(dbdir, err);
	if (r < 0) {
		eno = -r;
		goto err_free;
	}
	eno = load_one(e, dbdir, load_options(cfg, 0), &sigs, err);
	if (!eno)
		eno = finish_load(e, dbdir, sigs, t0, info, err);
	if (eno)
		goto err_free;
	return e;

err_free:
	engine_free(e);
err:
	errno = eno;
	return NULL;
}

static int statm_fd = -1; /* engine_keep_statm: /proc/self/statm, kept open */

int engine_keep_statm(void)
{
	if (statm_fd < 0)
		statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	return statm_fd < 0 ? -errno : 0;
}

/* Resident memory of this process in KiB (0 if unknown). */
static uint64_t rss_kib(void)
{
	unsigned long long pages = 0;
	char buf[128];
	int fd = statm_fd >= 0 ? statm_fd : open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? pread(fd, buf, sizeof(buf) - 1, 0) : -1;

	if (fd >= 0 && fd != statm_fd)
		close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (sscanf(buf, "%*s %llu", &pages) != 1)
		return 0;
	return pages * (uint64_t)sysconf(_SC_PAGESIZE) / 1024;
}

struct engine *engine_load_files(const struct config *cfg, const char *const *paths, size_t n,
				 unsigned int lflags, struct engine_file_load *per,
				 const char *tmpdir, struct msg_engine_info *info, char *err)
{
	unsigned int total = 0, before, dbopts = load_options(cfg, lflags);
	uint64_t t0 = util_now_ms();
	struct engine *e;
	int eno;

	memset(info, 0, sizeof(*info));
	e = engine_create(cfg, tmpdir, &eno, err);
	if (!e)
		goto err;
	eno = ENOENT;
	snprintf(err, 512, "no definitions files given");
	for (size_t i = 0; i < n; i++) {
		uint64_t t1 = util_now_ms(), rss = per ? rss_kib() : 0;

		before = total;
		eno = load_one(e, paths[i], dbopts, &total, err);
		if (eno)
			goto err_free;
		if (per) {
			uint64_t now_rss = rss_kib();

			per[i].sigs = total - before;
			per[i].ms = (uint32_t)(util_now_ms() - t1);
			per[i].rss_kib = now_rss > rss ? now_rss - rss : 0;
		}
	}
	if (n)
		eno = finish_load(e, n == 1 ? paths[0] : "the definitions set", total, t0, info,
				  err);
	if (eno)
		goto err_free;
	return e;

err_free:
	engine_free(e);
err:
	errno = eno;
	return NULL;
}

int engine_warm_up(struct engine *e)
{
	static const char *const utf16[] = {"UTF-16LE", "UTF-16BE"};
	static const char sample[] = "scanengine warm-up: nothing to find here\n";
	struct engine_result r;
	int fd, ret = 0;

	/* glibc loads iconv modules (gconv) on first use and keeps them while
	 * a handle is open; OLE2 parsing converts UTF-16 text. */
	for (size_t i = 0; i < SE_ARRAY_SIZE(utf16); i++)
		if (e->iconv[i] == (iconv_t)-1)
			e->iconv[i] = iconv_open("UTF-8", utf16[i]);
	/* The first scan initialises OpenSSL (its config file) for hashing. */
	fd = memfd_create("scanengine-warmup", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (util_write_all(fd, sample, sizeof(sample) - 1) < 0 || engine_scan(e, fd, false, &r) < 0)
		ret = -EIO;
	else if (r.verdict != VERDICT_CLEAN)
		ret = -EIO;
	close(fd);
	return ret;
}

int engine_set_tmpdir(struct engine *e, const char *dir)
{
	if (cl_engine_set_str(e->cl, CL_ENGINE_TMPDIR, dir) != CL_SUCCESS)
		return -EINVAL;
	return 0;
}

int engine_scan(struct engine *e, int fd, bool allmatch, struct engine_result *res)
{
	struct cl_scan_options opts = e->opts;
	struct scan_ctx sc = {.res = res};
	const char *virname = NULL;
	unsigned long scanned = 0;
	cl_error_t rc;
	int fl;

	memset(res, 0, sizeof(*res));
	/* libclamav reports a descriptor it cannot read as clean */
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && (fl & O_ACCMODE) == O_WRONLY) {
		res->verdict = VERDICT_ERROR;
		util_strlcpy(res->error, "File not open for reading", sizeof(res->error));
		return 0;
	}
	if (allmatch)
		opts.general |= CL_SCAN_GENERAL_ALLMATCHES;
	if (lseek(fd, 0, SEEK_SET) < 0 && errno != ESPIPE) {
		/* a descriptor handed over at an offset still scans from 0 */
	}
	/* Some errors are logged before libclamav has a scan context; the
	 * process scans one file at a time, so they are this scan's. */
	last_clmsg[0] = '\0';
	rc = cl_scandesc_callback(fd, NULL, &virname, &scanned, e->cl, &opts, &sc);
	if (!res->error[0] && last_clmsg[0])
		util_strlcpy(res->error, last_clmsg, sizeof(res->error));
	res->scanned_bytes = (uint64_t)scanned * CL_COUNT_PRECISION;
	switch (rc) {
	case CL_CLEAN:
		/* In all-match mode libclamav returns CL_CLEAN with matches
		 * reported only through the callback. A clean result after an
		 * error was logged (no scratch directory, unreadable data) is
		 * no verdict at all. */
		if (res->nnames)
			res->verdict = VERDICT_VIRUS;
		else
			res->verdict = res->error[0] ? VERDICT_ERROR : VERDICT_CLEAN;
		break;
	case CL_VIRUS:
		res->verdict = VERDICT_VIRUS;
		if (!res->nnames && virname)
			util_strlcpy(res->names[res->nnames++], virname, sizeof(res->names[0]));
		break;
	default:
		res->verdict = VERDICT_ERROR;
		util_strlcpy(res->error, cl_strerror(rc), sizeof(res->error));
		break;
	}
	if (res->verdict != VERDICT_ERROR)
		res->error[0] = '\0';
	return 0;
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	if (e->cl)
		cl_engine_free(e->cl);
	for (size_t i = 0; i < SE_ARRAY_SIZE(e->iconv); i++)
		if (e->iconv[i] != (iconv_t)-1)
			iconv_close(e->iconv[i]);
	free(e);
}
