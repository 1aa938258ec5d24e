/* config: scanengined.conf in clamd.conf syntax (see config.h).
 *
 * Every accepted key is one row of keys[] below: name, type, field, default
 * (written in file syntax and parsed by the same code as the file, so a
 * default can never be a value the file could not hold), range. clamd keys
 * that scanengined does not implement are rows of clamd_only[], so that an
 * admin porting a clamd.conf is told by name what to remove instead of
 * getting "unknown option". The key list follows clamd 1.4.6
 * (clamconf -g clamd.conf and common/optparser.c). */
#include "common/config.h"
#include "common/util.h"

#include <errno.h>
#include <limits.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

enum key_type {
	T_BOOL,	    /* bool */
	T_UINT,	    /* unsigned int, decimal, [min, max] */
	T_U64,	    /* uint64_t, decimal, [min, max] */
	T_SIZE,	    /* uint64_t, decimal with optional K/M/G suffix, <= max */
	T_MODE,	    /* unsigned int, octal permission bits */
	T_STRING,   /* char *, any non-empty text */
	T_PATH,	    /* char *, absolute path */
	T_FACILITY, /* int, LOG_* name */
	T_BCSEC,    /* int, TrustSigned (0) or Paranoid (1) */
	T_REGEX,    /* struct config_list, repeatable, each a POSIX ERE */
	T_LIST,	    /* struct config_list, repeatable, each one word (no blanks) */
};

#define F_SOCKET   0x1 /* path must fit in sockaddr_un.sun_path */
#define F_NPROC	   0x2 /* default: number of online CPUs, clamped to the range */
#define F_ZERO_MAX 0x4 /* 0 means "no limit" and is stored as INT64_MAX (clamd) */

struct key {
	const char *name;
	enum key_type type;
	size_t off;	 /* field in struct config */
	const char *def; /* default in file syntax; NULL: unset */
	unsigned int flags;
	uint64_t min, max;
	const char *hint; /* added to range errors: why the range is what it is */
};

/* offsetof that refuses to compile when the field's type does not match the
 * row's type, so a table row cannot write 8 bytes into an unsigned int. */
#define FIELD(f, T)                                                                                \
	(offsetof(struct config, f) +                                                              \
	 0 * sizeof(struct {                                                                       \
		 _Static_assert(                                                                   \
			 __builtin_types_compatible_p(__typeof__(((struct config *)0)->f), T),     \
			 "struct config." #f " is not " #T);                                       \
		 char c;                                                                           \
	 }))

/* Sizes end up in cl_engine_set_num(), which takes a long long. */
#define SIZE_LIMIT ((uint64_t)INT64_MAX)
#define NUM_LIMIT  ((uint64_t)INT_MAX) /* clamd reads numbers with atoi() */

#define K_BOOL(n, f, d)                                                                            \
	{                                                                                          \
		.name = n, .type = T_BOOL, .off = FIELD(f, bool), .def = d, .max = 1               \
	}
#define K_UINT(n, f, d, lo, hi, ...)                                                               \
	{                                                                                          \
		.name = n, .type = T_UINT, .off = FIELD(f, unsigned int), .def = d, .min = lo,     \
		.max = hi, __VA_ARGS__                                                             \
	}
#define K_U64(n, f, d, lo, hi)                                                                     \
	{                                                                                          \
		.name = n, .type = T_U64, .off = FIELD(f, uint64_t), .def = d, .min = lo,          \
		.max = hi                                                                          \
	}
#define K_SIZE(n, f, d, ...)                                                                       \
	{                                                                                          \
		.name = n, .type = T_SIZE, .off = FIELD(f, uint64_t), .def = d, .max = SIZE_LIMIT, \
		__VA_ARGS__                                                                        \
	}
#define K_MODE(n, f, d)                                                                            \
	{                                                                                          \
		.name = n, .type = T_MODE, .off = FIELD(f, unsigned int), .def = d, .max = 0777    \
	}
#define K_STR(n, f, d)                                                                             \
	{                                                                                          \
		.name = n, .type = T_STRING, .off = FIELD(f, char *), .def = d                     \
	}
#define K_PATH(n, f, d, ...)                                                                       \
	{                                                                                          \
		.name = n, .type = T_PATH, .off = FIELD(f, char *), .def = d, __VA_ARGS__          \
	}
#define K_FAC(n, f, d)                                                                             \
	{                                                                                          \
		.name = n, .type = T_FACILITY, .off = FIELD(f, int), .def = d                      \
	}
#define K_BCSEC(n, f, d)                                                                           \
	{                                                                                          \
		.name = n, .type = T_BCSEC, .off = FIELD(f, int), .def = d, .max = 1               \
	}
#define K_REGEX(n, f)                                                                              \
	{                                                                                          \
		.name = n, .type = T_REGEX, .off = FIELD(f, struct config_list)                    \
	}
#define K_LIST(n, f)                                                                               \
	{                                                                                          \
		.name = n, .type = T_LIST, .off = FIELD(f, struct config_list)                     \
	}

/* The accepted keys. Defaults are clamd 1.4.6's unless a comment says
 * otherwise. */
static const struct key keys[] = {
	/* control socket; clamd has no default socket, we always serve one */
	K_PATH("LocalSocket", local_socket, "/run/scanengine/scanengined.sock", .flags = F_SOCKET),
	K_STR("LocalSocketGroup", local_socket_group, NULL),
	K_MODE("LocalSocketMode", local_socket_mode, "660"), /* clamd: 0777 & 0666 */
	K_BOOL("FixStaleSocket", fix_stale_socket, "yes"),
	K_UINT("MaxConnectionQueueLength", max_conn_queue, "200", 1, 65535),
	K_STR("AdminGroup", admin_group, NULL), /* new */

	/* process */
	K_PATH("PidFile", pid_file, "/run/scanengine/scanengined.pid"),
	K_BOOL("Foreground", foreground, "no"),
	K_STR("User", user, "scanengine"),
	K_PATH("StateDirectory", state_dir, "/var/lib/scanengine"), /* new */
	K_PATH("DatabaseDirectory", database_dir, "/usr/share/scanengine/defs"),
	K_PATH("TemporaryDirectory", temp_dir, NULL), /* derived, see derive_temp_dir() */

	/* logging */
	K_PATH("LogFile", log_file, NULL),
	K_BOOL("LogTime", log_time, "yes"), /* clamd: no */
	K_BOOL("LogSyslog", log_syslog, "no"),
	K_FAC("LogFacility", log_facility, "LOG_LOCAL6"),
	K_BOOL("LogVerbose", log_verbose, "no"),
	K_BOOL("LogClean", log_clean, "no"),

	/* workers and queues */
	K_UINT("MaxThreads", max_threads, NULL, 1, 256, .flags = F_NPROC), /* clamd: 10 */
	K_UINT("MaxQueue", max_queue, "100", 1, 65536),
	K_UINT("IdleTimeout", idle_timeout, "30", 1, 86400),
	K_UINT("CommandReadTimeout", command_read_timeout, "30", 1, 86400),
	K_UINT("ReadTimeout", read_timeout, "120", 1, 86400),
	K_UINT("SendBufTimeout", send_buf_timeout, "500", 1, 3600000),
	K_SIZE("StreamMaxLength", stream_max_length, "100M", .flags = F_ZERO_MAX),
	K_UINT("MaxScanTime", max_scan_time, "120000", 0, 86400000),	     /* clamd: 0 (off) */
	K_UINT("WorkerRespawnInterval", respawn_interval, "100", 0, 600000), /* new */
	K_UINT("DatabaseLoadTimeout", load_timeout, "600", 1, 86400),	     /* new */
	K_SIZE("WorkerMemoryLimit", worker_memory_limit, "2G"),		     /* new; 0 stays 0 */
	K_BOOL("ConcurrentDatabaseReload", concurrent_reload, "yes"),
	/* only "off": activation goes through the store */
	K_UINT("SelfCheck", self_check, "0", 0, 0,
	       .hint = "definitions are activated through the store (scanctl defs install, or "
		       "RELOAD after changing DatabaseDirectory), never by watching files"),

	/* faults (all new) */
	K_PATH("FaultEventLog", fault_event_log, NULL), /* derived, see derive_paths() */
	K_UINT("CrashLoopThreshold", crash_loop_threshold, "3", 1, 1000),
	K_UINT("CrashLoopWindow", crash_loop_window, "60", 1, 86400),
	K_UINT("CrashBackoffMax", crash_backoff_max, "30", 1, 86400),
	K_UINT("FaultClearStableSeconds", fault_clear_stable, "600", 1, 604800),
	K_UINT("PoisonThreshold", poison_threshold, "2", 1, 1000),
	K_UINT("HealthCheckInterval", health_check_interval, "60", 1, 86400),
	K_SIZE("MemoryLimit", memory_limit, "0"), /* 0 stays 0: no limit */
	K_UINT("KeepGenerations", keep_generations, "3", 2, 100),
	K_UINT("LoadRetryInterval", load_retry_interval, "5", 1, 3600),

	/* definitions validation (all new) */
	K_PATH("CertsDirectory", certs_dir, "/etc/scanengine/certs"),
	K_BOOL("AllowUnsignedDefinitions", allow_unsigned, "no"),
	K_BOOL("RequireSignFile", require_sign, "no"),
	K_UINT("MaxDefinitionEntries", max_def_entries, "10000", 1, 1000000),
	K_PATH("CanaryDirectory", canary_dir, NULL),
	K_PATH("CleanCorpusDirectory", clean_corpus_dir, NULL),
	K_SIZE("ValidatorMemoryLimit", validator_memory_limit, "8G"), /* 0 stays 0: none */
	K_UINT("ValidatorTimeout", validator_timeout, "600", 1, 86400),

	/* updates (freshclam.conf names and defaults; mirrors: none, so
	 * updates are off until one is configured) */
	K_LIST("DatabaseMirror", database_mirror),
	K_LIST("PrivateMirror", private_mirror),
	K_LIST("DatabaseName", database_name), /* none given: main, daily, bytecode */
	K_UINT("Checks", checks, "12", 0, 50),
	K_UINT("ConnectTimeout", connect_timeout, "30", 1, 3600),
	K_UINT("ReceiveTimeout", receive_timeout, "60", 0, 86400),
	K_UINT("MaxAttempts", max_attempts, "3", 1, 100),
	K_BOOL("ScriptedUpdates", scripted_updates, "yes"),
	K_STR("HTTPProxyServer", proxy_server, NULL),
	K_UINT("HTTPProxyPort", proxy_port, "0", 0, 65535),
	K_STR("HTTPProxyUsername", proxy_username, NULL),
	K_STR("HTTPProxyPassword", proxy_password, NULL),

	/* on-access scanning (clamd.conf meaning; the rest is new) */
	K_LIST("OnAccessMountPath", oa_mount_path),
	K_LIST("OnAccessIncludePath", oa_include_path),
	K_LIST("OnAccessExcludePath", oa_exclude_path),
	K_LIST("OnAccessExcludeUname", oa_exclude_uname),
	K_LIST("OnAccessExcludeUID", oa_exclude_uid),
	K_BOOL("OnAccessExcludeRootUID", oa_exclude_root, "no"),
	K_SIZE("OnAccessMaxFileSize", oa_max_file_size, "5M"),
	K_BOOL("OnAccessPrevention", oa_prevention, "no"),
	K_STR("OnAccessFailPolicy", oa_fail_policy, "allow"),
	K_UINT("OnAccessPermTimeout", oa_perm_timeout, "5", 1, 3600),
	K_LIST("OnAccessExcludeProcess", oa_exclude_process),
	K_UINT("OnAccessQueueHigh", oa_queue_high, "256", 2, 100000),
	K_UINT("OnAccessQueueLow", oa_queue_low, "64", 1, 100000),
	K_UINT("OverloadSeconds", oa_overload_seconds, "5", 1, 3600),
	K_PATH("OnAccessQuarantineDirectory", oa_quarantine_dir, NULL),
	K_STR("OnAccessQuarantineAction", oa_quarantine_action, "copy"),

	/* path scanning */
	K_REGEX("ExcludePath", exclude_path),
	K_BOOL("FollowDirectorySymlinks", follow_dir_symlinks, "no"),
	K_BOOL("FollowFileSymlinks", follow_file_symlinks, "no"),
	K_BOOL("CrossFilesystems", cross_filesystems, "yes"),

	/* libclamav limits */
	K_SIZE("MaxScanSize", max_scan_size, "400M", .flags = F_ZERO_MAX),
	K_SIZE("MaxFileSize", max_file_size, "100M", .flags = F_ZERO_MAX),
	K_UINT("MaxRecursion", max_recursion, "17", 0, NUM_LIMIT),
	K_UINT("MaxFiles", max_files, "10000", 0, NUM_LIMIT),
	K_SIZE("MaxEmbeddedPE", max_embedded_pe, "40M", .flags = F_ZERO_MAX),
	K_SIZE("MaxHTMLNormalize", max_html_normalize, "40M", .flags = F_ZERO_MAX),
	K_SIZE("MaxHTMLNoTags", max_html_notags, "8M", .flags = F_ZERO_MAX),
	K_SIZE("MaxScriptNormalize", max_script_normalize, "20M", .flags = F_ZERO_MAX),
	K_SIZE("MaxZipTypeRcg", max_zip_type_rcg, "1M", .flags = F_ZERO_MAX),
	K_UINT("MaxPartitions", max_partitions, "50", 0, NUM_LIMIT),
	K_UINT("MaxIconsPE", max_icons_pe, "100", 0, NUM_LIMIT),
	K_UINT("MaxRecHWP3", max_rec_hwp3, "16", 0, NUM_LIMIT),
	K_U64("PCREMatchLimit", pcre_match_limit, "100000", 0, NUM_LIMIT),
	K_U64("PCRERecMatchLimit", pcre_rec_match_limit, "2000", 0, NUM_LIMIT),
	K_SIZE("PCREMaxFileSize", pcre_max_file_size, "100M", .flags = F_ZERO_MAX),
	K_UINT("BytecodeTimeout", bytecode_timeout, "10000", 0, NUM_LIMIT),
	K_BCSEC("BytecodeSecurity", bytecode_security, "TrustSigned"),

	/* libclamav behaviour switches */
	K_BOOL("Bytecode", bytecode, "yes"),
	K_BOOL("DetectPUA", detect_pua, "no"),
	K_BOOL("HeuristicAlerts", heuristic_alerts, "yes"),
	K_BOOL("HeuristicScanPrecedence", heuristic_scan_precedence, "no"),
	K_BOOL("ScanPE", scan_pe, "yes"),
	K_BOOL("ScanELF", scan_elf, "yes"),
	K_BOOL("ScanOLE2", scan_ole2, "yes"),
	K_BOOL("ScanPDF", scan_pdf, "yes"),
	K_BOOL("ScanSWF", scan_swf, "yes"),
	K_BOOL("ScanXMLDOCS", scan_xmldocs, "yes"),
	K_BOOL("ScanHWP3", scan_hwp3, "yes"),
	K_BOOL("ScanOneNote", scan_onenote, "yes"),
	K_BOOL("ScanImage", scan_image, "yes"),
	K_BOOL("ScanImageFuzzyHash", scan_image_fuzzy_hash, "yes"),
	K_BOOL("ScanMail", scan_mail, "yes"),
	K_BOOL("ScanPartialMessages", scan_partial_messages, "no"),
	K_BOOL("ScanHTML", scan_html, "yes"),
	K_BOOL("ScanArchive", scan_archive, "yes"),
	K_BOOL("PhishingSignatures", phishing_signatures, "yes"),
	K_BOOL("PhishingScanURLs", phishing_scan_urls, "yes"),
	K_BOOL("AlertExceedsMax", alert_exceeds_max, "no"),
	K_BOOL("AlertBrokenExecutables", alert_broken_executables, "no"),
	K_BOOL("AlertBrokenMedia", alert_broken_media, "no"),
	K_BOOL("AlertEncrypted", alert_encrypted, "no"),
	K_BOOL("AlertEncryptedArchive", alert_encrypted_archive, "no"),
	K_BOOL("AlertEncryptedDoc", alert_encrypted_doc, "no"),
	K_BOOL("AlertOLE2Macros", alert_ole2_macros, "no"),
	K_BOOL("AlertPhishingSSLMismatch", alert_phishing_ssl_mismatch, "no"),
	K_BOOL("AlertPhishingCloak", alert_phishing_cloak, "no"),
	K_BOOL("AlertPartitionIntersection", alert_partition_intersection, "no"),
	K_BOOL("ForceToDisk", force_to_disk, "no"),
	K_BOOL("DisableCache", disable_cache, "no"),
	K_BOOL("LeaveTemporaryFiles", leave_temporary_files, "no"),
	K_BOOL("DisableCertCheck", disable_cert_check, "no"),
};

#define NKEYS SE_ARRAY_SIZE(keys)

struct clamd_only {
	const char *name;
	const char *hint; /* why, or what to use instead; NULL: nothing to add */
};

/* Every other clamd.conf key of clamd 1.4.6, including its hidden (Dev*) and
 * deprecated ones. Refused rather than ignored: a setting that is silently
 * not honoured is worse than a start-up error naming the line. */
static const struct clamd_only clamd_only[] = {
	{"TCPSocket", "only the UNIX socket LocalSocket is served"},
	{"TCPAddr", "only the UNIX socket LocalSocket is served"},
	{"StreamMinPort", "the legacy STREAM command is not provided; clients use INSTREAM"},
	{"StreamMaxPort", "the legacy STREAM command is not provided; clients use INSTREAM"},
	{"LogFileMaxSize", "rotate LogFile with logrotate"},
	{"LogRotate", "rotate LogFile with logrotate"},
	{"LogFileUnlock", "the log file is not locked"},
	{"ExtendedDetectionInfo", NULL},
	{"ExitOnOOM", "memory exhaustion is handled by the supervisor, fault 7"},
	{"VirusEvent", "detections are reported as JSON events in the event log"},
	{"AllowAllMatchScan", NULL},
	{"OfficialDatabaseOnly", "definitions are admitted by the validation pipeline"},
	{"FailIfCvdOlderThan", NULL},
	{"PreludeEnable", NULL},
	{"PreludeAnalyzerName", NULL},
	{"CacheSize", NULL},
	{"Debug", NULL},
	{"GenerateMetadataJson", NULL},
	{"MaxDirectoryRecursion", NULL},
	{"ExcludePUA", NULL},
	{"IncludePUA", NULL},
	{"BytecodeUnsigned", NULL},
	{"BytecodeMode", NULL},
	{"StructuredDataDetection", NULL},
	{"StructuredMinCreditCardCount", NULL},
	{"StructuredMinSSNCount", NULL},
	{"StructuredSSNFormatNormal", NULL},
	{"StructuredSSNFormatStripped", NULL},
	{"StructuredCCOnly", NULL},
	{"OnAccessDisableDDD", "new directories under OnAccessIncludePath are always watched"},
	{"OnAccessExtraScanning",
	 "clamonacc's client setting; scanengined scans in its own workers"},
	{"OnAccessCurlTimeout", "clamonacc's client setting; scanengined scans in its own workers"},
	{"OnAccessMaxThreads", "clamonacc's client setting; scanengined scans in its own workers"},
	{"OnAccessRetryAttempts",
	 "clamonacc's client setting; scanengined scans in its own workers"},
	{"OnAccessDenyOnError", "use OnAccessFailPolicy deny"},
	/* deprecated aliases clamd still honours */
	{"AlgorithmicDetection", "use HeuristicAlerts"},
	{"BlockMax", "use AlertExceedsMax"},
	{"PhishingAlwaysBlockSSLMismatch", "use AlertPhishingSSLMismatch"},
	{"PhishingAlwaysBlockCloak", "use AlertPhishingCloak"},
	{"PartitionIntersection", "use AlertPartitionIntersection"},
	{"OLE2BlockMacros", "use AlertOLE2Macros"},
	{"ArchiveBlockEncrypted", "use AlertEncrypted"},
	/* deprecated options clamd ignores with a warning */
	{"DetectBrokenExecutables", "use AlertBrokenExecutables"},
	{"ArchiveMaxScanSize", "use MaxScanSize"},
	{"ArchiveMaxRecursion", "use MaxRecursion"},
	{"ArchiveMaxFiles", "use MaxFiles"},
	{"ArchiveBlockMax", "use AlertExceedsMax"},
	{"ArchiveMaxCompressionRatio", "ignored by clamd too"},
	{"ArchiveLimitMemoryUsage", "ignored by clamd too"},
	{"MailMaxRecursion", "ignored by clamd too"},
	{"MailFollowURLs", "ignored by clamd too"},
	{"AllowSupplementaryGroups", "ignored by clamd too"},
	{"ScanOnAccess", "ignored by clamd too"},
	/* clamd developer options */
	{"DevACOnly", NULL},
	{"DevACDepth", NULL},
	{"DevPerformance", NULL},
	{"DevLiblog", NULL},
};

struct facility {
	const char *name;
	int value;
};

/* clamd's logg_facility() table; matched case-sensitively as clamd does. */
static const struct facility facilities[] = {
	{"LOG_AUTH", LOG_AUTH},	    {"LOG_AUTHPRIV", LOG_AUTHPRIV}, {"LOG_CRON", LOG_CRON},
	{"LOG_DAEMON", LOG_DAEMON}, {"LOG_FTP", LOG_FTP},	    {"LOG_KERN", LOG_KERN},
	{"LOG_LPR", LOG_LPR},	    {"LOG_MAIL", LOG_MAIL},	    {"LOG_NEWS", LOG_NEWS},
	{"LOG_SYSLOG", LOG_SYSLOG}, {"LOG_USER", LOG_USER},	    {"LOG_UUCP", LOG_UUCP},
	{"LOG_LOCAL0", LOG_LOCAL0}, {"LOG_LOCAL1", LOG_LOCAL1},	    {"LOG_LOCAL2", LOG_LOCAL2},
	{"LOG_LOCAL3", LOG_LOCAL3}, {"LOG_LOCAL4", LOG_LOCAL4},	    {"LOG_LOCAL5", LOG_LOCAL5},
	{"LOG_LOCAL6", LOG_LOCAL6}, {"LOG_LOCAL7", LOG_LOCAL7},
};

/* Where a message is about: file and line, or a built-in default. */
struct where {
	const char *file; /* NULL: built-in default */
	unsigned int line;
};

static void *field(struct config *cfg, const struct key *k)
{
	return (char *)cfg + k->off;
}

/* fail: write "FILE:LINE: message" into err (if any) and return -EINVAL. */
static int fail(char *err, const struct where *w, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, const struct where *w, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err)
		return -EINVAL;
	if (w->file)
		n = snprintf(err, CONFIG_ERR_MAX, "%s:%u: ", w->file, w->line);
	else
		n = snprintf(err, CONFIG_ERR_MAX, "built-in default: ");
	if (n < 0 || n >= CONFIG_ERR_MAX)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(err + n, CONFIG_ERR_MAX - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

#define SHOW_MAX 64

/* show: a value fit for a one-line message: at most SHOW_MAX bytes, control
 * characters as '?', "..." when cut. buf must hold SHOW_MAX + 4 bytes. */
static const char *show(const char *v, char *buf)
{
	size_t i;

	for (i = 0; v[i] && i < SHOW_MAX; i++)
		buf[i] = ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) ? '?' : v[i];
	if (v[i]) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

/* parse_decimal: digits only (no sign, no space, no base prefix: clamd's
 * leading-zero-is-octal quirk is not reproduced). Returns 0, -EINVAL or
 * -ERANGE; on -ERANGE the rest of the string was still checked. */
static int parse_decimal(const char *s, const char **end, uint64_t *out)
{
	uint64_t v = 0;
	bool over = false;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned int d = (unsigned int)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			over = true;
		else
			v = v * 10 + d;
	}
	*end = p;
	*out = v;
	return over ? -ERANGE : 0;
}

int config_parse_size(const char *s, uint64_t *out)
{
	const char *end;
	uint64_t v, mult = 1;
	int ret;

	if (!s)
		return -EINVAL;
	ret = parse_decimal(s, &end, &v);
	if (ret == -EINVAL)
		return ret;
	switch (*end) {
	case 'K':
	case 'k':
		mult = 1ULL << 10;
		end++;
		break;
	case 'M':
	case 'm':
		mult = 1ULL << 20;
		end++;
		break;
	case 'G':
	case 'g':
		mult = 1ULL << 30;
		end++;
		break;
	default:
		break;
	}
	if (*end)
		return -EINVAL;
	if (ret < 0 || v > UINT64_MAX / mult)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

int config_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < SE_ARRAY_SIZE(yes); i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* parse_mode: 1 to 4 octal digits, at most 0777 ("660" and "0660" alike, as
 * clamd's strtol(, 8) reads them). Returns 0 or -EINVAL. */
static int parse_mode(const char *s, unsigned int *out)
{
	unsigned int v = 0;
	size_t n;

	for (n = 0; s[n]; n++) {
		if (n == 4 || s[n] < '0' || s[n] > '7')
			return -EINVAL;
		v = v * 8 + (unsigned int)(s[n] - '0');
	}
	if (!n || v > 0777)
		return -EINVAL;
	*out = v;
	return 0;
}

static int set_string(char **dst, const char *v)
{
	char *copy = strdup(v);

	if (!copy)
		return -ENOMEM;
	free(*dst);
	*dst = copy;
	return 0;
}

static int list_append(struct config_list *l, const char *v)
{
	char **items, *copy;

	copy = strdup(v);
	if (!copy)
		return -ENOMEM;
	/* one more: items stays NULL-terminated for the consumers that
	 * take a plain string vector */
	items = realloc(l->items, (l->n + 2) * sizeof(*items));
	if (!items) {
		free(copy);
		return -ENOMEM;
	}
	items[l->n++] = copy;
	items[l->n] = NULL;
	l->items = items;
	return 0;
}

static void list_free(struct config_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

static int apply_path(struct config *cfg, const struct key *k, const char *v, const struct where *w,
		      char *err)
{
	char buf[SHOW_MAX + 4], *copy;
	size_t len = strlen(v);
	int ret;

	if (v[0] != '/')
		return fail(err, w, "%s: '%s' is not an absolute path", k->name, show(v, buf));
	/* "/var/lib/x/" and "/var/lib/x" must derive the same "<dir>/tmp" */
	while (len > 1 && v[len - 1] == '/')
		len--;
	if ((k->flags & F_SOCKET) && len >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return fail(err, w,
			    "%s: '%s' is too long for a UNIX socket path (at most %zu bytes)",
			    k->name, show(v, buf), sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	copy = strndup(v, len);
	if (!copy)
		return -ENOMEM;
	ret = set_string(field(cfg, k), copy);
	free(copy);
	return ret;
}

static int apply_regex(struct config *cfg, const struct key *k, const char *v,
		       const struct where *w, char *err)
{
	char buf[SHOW_MAX + 4], msg[128];
	regex_t re;
	int rc;

	/* Same flags as the consumers (control.c) and clamd use. */
	rc = regcomp(&re, v, REG_EXTENDED | REG_NOSUB);
	if (rc) {
		regerror(rc, &re, msg, sizeof(msg));
		return fail(err, w, "%s: '%s' is not a valid extended regular expression: %s",
			    k->name, show(v, buf), msg);
	}
	regfree(&re);
	return list_append(field(cfg, k), v);
}

static bool is_blank(char c);

/* apply: parse v as key k's type and store it in cfg. Returns 0, -ENOMEM or
 * -EINVAL with the message in err. */
static int apply(struct config *cfg, const struct key *k, const char *v, const struct where *w,
		 char *err)
{
	char buf[SHOW_MAX + 4];
	uint64_t u;
	unsigned int mode;
	const char *end;
	int ret;

	switch (k->type) {
	case T_BOOL:
		if (config_parse_bool(v, field(cfg, k)) < 0)
			return fail(err, w,
				    "%s: '%s' is not a boolean (yes/no, true/false, on/off, 1/0)",
				    k->name, show(v, buf));
		return 0;
	case T_UINT:
	case T_U64:
		ret = parse_decimal(v, &end, &u);
		if (ret == -EINVAL || *end)
			return fail(err, w, "%s: '%s' is not a number (%llu..%llu)", k->name,
				    show(v, buf), (unsigned long long)k->min,
				    (unsigned long long)k->max);
		if (ret < 0 || u < k->min || u > k->max)
			return fail(err, w, "%s: '%s' is out of range (%llu..%llu)%s%s", k->name,
				    show(v, buf), (unsigned long long)k->min,
				    (unsigned long long)k->max, k->hint ? ": " : "",
				    k->hint ? k->hint : "");
		if (k->type == T_UINT)
			*(unsigned int *)field(cfg, k) = (unsigned int)u;
		else
			*(uint64_t *)field(cfg, k) = u;
		return 0;
	case T_SIZE:
		ret = config_parse_size(v, &u);
		if (ret == -EINVAL)
			return fail(
				err, w,
				"%s: '%s' is not a size (a number, optionally followed by K, M or G)",
				k->name, show(v, buf));
		if (ret < 0 || u > k->max)
			return fail(err, w, "%s: '%s' is too large (at most %llu bytes)", k->name,
				    show(v, buf), (unsigned long long)k->max);
		if (u == 0 && (k->flags & F_ZERO_MAX))
			u = SIZE_LIMIT;
		*(uint64_t *)field(cfg, k) = u;
		return 0;
	case T_MODE:
		if (parse_mode(v, &mode) < 0)
			return fail(err, w, "%s: '%s' is not an octal file mode (000..777)",
				    k->name, show(v, buf));
		*(unsigned int *)field(cfg, k) = mode;
		return 0;
	case T_STRING:
		return set_string(field(cfg, k), v);
	case T_PATH:
		return apply_path(cfg, k, v, w, err);
	case T_FACILITY:
		for (size_t i = 0; i < SE_ARRAY_SIZE(facilities); i++) {
			if (!strcmp(v, facilities[i].name)) {
				*(int *)field(cfg, k) = facilities[i].value;
				return 0;
			}
		}
		return fail(err, w,
			    "%s: '%s' is not a syslog facility (LOG_LOCAL0..LOG_LOCAL7, LOG_USER, "
			    "LOG_DAEMON, LOG_MAIL, ...)",
			    k->name, show(v, buf));
	case T_BCSEC:
		/* clamd's regex accepts any case, then compares exactly; take
		 * any case for both */
		if (!strcasecmp(v, "TrustSigned"))
			*(int *)field(cfg, k) = 0;
		else if (!strcasecmp(v, "Paranoid"))
			*(int *)field(cfg, k) = 1;
		else
			return fail(err, w, "%s: '%s' is not TrustSigned or Paranoid", k->name,
				    show(v, buf));
		return 0;
	case T_REGEX:
		return apply_regex(cfg, k, v, w, err);
	case T_LIST:
		for (end = v; *end; end++)
			if (is_blank(*end))
				return fail(err, w,
					    "%s: '%s' is more than one word; give one per line",
					    k->name, show(v, buf));
		return list_append(field(cfg, k), v);
	}
	return fail(err, w, "%s: internal error: unknown type", k->name);
}

static long online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n;
}

/* Paths that default to a place under StateDirectory when not set. */
static const struct derived {
	const char *key;
	size_t off;
	const char *leaf;
} derived[] = {
	{"TemporaryDirectory", offsetof(struct config, temp_dir), "tmp"},
	{"FaultEventLog", offsetof(struct config, fault_event_log), "events.log"},
};

static const struct key *find_key(const char *name);

/* derive_paths: set each derived path whose key was not given (seen may be
 * NULL: none given) to <StateDirectory>/<leaf>. */
static int derive_paths(struct config *cfg, const unsigned int *seen)
{
	for (size_t i = 0; i < SE_ARRAY_SIZE(derived); i++) {
		char **f = (char **)(void *)((char *)cfg + derived[i].off);
		char *p;

		if (seen && seen[find_key(derived[i].key) - keys])
			continue;
		/* StateDirectory is absolute with trailing '/' removed: "/" is
		 * the only value ending in '/' */
		if (asprintf(&p, "%s/%s", strcmp(cfg->state_dir, "/") ? cfg->state_dir : "",
			     derived[i].leaf) < 0)
			return -ENOMEM;
		free(*f);
		*f = p;
	}
	return 0;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];

		if (k->type == T_STRING || k->type == T_PATH)
			free(*(char **)field(cfg, k));
		else if (k->type == T_REGEX || k->type == T_LIST)
			list_free(field(cfg, k));
	}
	free(cfg->path);
	/* zeroed, so a second config_free is harmless */
	memset(cfg, 0, sizeof(*cfg));
}

int config_defaults(struct config *cfg)
{
	const struct where w = {NULL, 0};
	char num[24];
	int ret = 0;

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		const char *def = k->def;

		if (k->flags & F_NPROC) {
			long n = online_cpus();

			snprintf(num, sizeof(num), "%llu",
				 (unsigned long long)SE_MAX(SE_MIN((uint64_t)n, k->max), k->min));
			def = num;
		}
		if (!def)
			continue;
		/* a default that does not parse is a bug in keys[]: the unit
		 * test loads the defaults, so it cannot ship */
		ret = apply(cfg, k, def, &w, NULL);
		if (ret < 0)
			goto err_free;
	}
	ret = derive_paths(cfg, NULL);
	if (ret < 0)
		goto err_free;
	return 0;

err_free:
	config_free(cfg);
	return ret;
}

static const struct key *find_key(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

static const struct clamd_only *find_clamd_only(const char *name)
{
	for (size_t i = 0; i < SE_ARRAY_SIZE(clamd_only); i++)
		if (!strcmp(clamd_only[i].name, name))
			return &clamd_only[i];
	return NULL;
}

/* refuse_key: the message for a key that is not in keys[]. */
static int refuse_key(const char *name, const struct where *w, char *err)
{
	const struct clamd_only *c = find_clamd_only(name);
	char buf[SHOW_MAX + 4];

	if (c)
		return fail(
			err, w,
			"option '%s' is a clamd option that scanengined does not support%s%s%s; "
			"remove it",
			c->name, c->hint ? " (" : "", c->hint ? c->hint : "", c->hint ? ")" : "");
	/* keys are case-sensitive as in clamd; point at a case slip */
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcasecmp(keys[i].name, name))
			return fail(err, w,
				    "unknown option '%s' (option names are case-sensitive: did you "
				    "mean '%s'?)",
				    show(name, buf), keys[i].name);
	return fail(err, w, "unknown option '%s'", show(name, buf));
}

/* read_line: the next line of f into buf[CONFIG_LINE_MAX + 2], without "\n"
 * or "\r\n". Returns its length, -ENODATA at end of file, -E2BIG for a line
 * longer than CONFIG_LINE_MAX, -EILSEQ for a NUL byte, -errno on a read
 * error. Reads byte-wise so that neither a NUL nor a huge line slips by. */
static long read_line(FILE *f, char *buf)
{
	size_t n = 0;
	int c;

	while ((c = getc_unlocked(f)) != EOF && c != '\n') {
		if (c == '\0')
			return -EILSEQ;
		/* one spare byte for a '\r' that "\r\n" will drop */
		if (n == CONFIG_LINE_MAX + 1)
			return -E2BIG;
		buf[n++] = (char)c;
	}
	if (c == EOF && ferror(f))
		return errno ? -errno : -EIO;
	if (c == EOF && n == 0)
		return -ENODATA;
	if (n && buf[n - 1] == '\r')
		n--;
	if (n > CONFIG_LINE_MAX)
		return -E2BIG;
	buf[n] = '\0';
	return (long)n;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* parse_line: one line of the file, applied to cfg. seen[] holds the line
 * each key was first set on, for refusing repeats. */
static int parse_line(struct config *cfg, char *line, const struct where *w, unsigned int *seen,
		      char *err)
{
	char *name, *v, *end;
	const struct key *k;
	size_t len, idx;

	while (is_blank(*line))
		line++;
	if (!*line || *line == '#')
		return 0;
	name = line;
	while (*line && !is_blank(*line))
		line++;
	v = line;
	if (*v)
		*v++ = '\0';
	if (!strcmp(name, "Example"))
		return fail(err, w,
			    "'Example' line: this is an unedited example file; edit it and "
			    "remove that line");
	k = find_key(name);
	if (!k)
		return refuse_key(name, w, err);

	while (is_blank(*v))
		v++;
	len = strlen(v);
	while (len && is_blank(v[len - 1]))
		v[--len] = '\0';
	if (!len)
		return fail(err, w, "%s: missing value", k->name);
	/* "..." around the value is stripped (clamd does too), so a value may
	 * keep leading or trailing blanks; there is no escaping */
	if (v[0] == '"') {
		end = strchr(v + 1, '"');
		if (!end)
			return fail(err, w, "%s: missing closing '\"'", k->name);
		if (end[1])
			return fail(err, w, "%s: unexpected text after the closing '\"'", k->name);
		*end = '\0';
		v++;
		if (!*v)
			return fail(err, w, "%s: empty value", k->name);
	} else {
		/* clamd 1.4 keeps "value # note" whole (numbers and booleans
		 * then fail), clamd 1.5 strips the note: refuse what means
		 * different things to different clamd versions */
		for (end = v + 1; *end; end++)
			if (*end == '#' && is_blank(end[-1]))
				return fail(
					err, w,
					"%s: '#' after the value: a comment must be on a line of "
					"its own (quote the value if the '#' belongs to it)",
					k->name);
	}

	idx = (size_t)(k - keys);
	if (k->type != T_REGEX && k->type != T_LIST) {
		/* clamd silently keeps the first of two; refusing tells the
		 * admin which of the two lines is not in effect */
		if (seen[idx])
			return fail(err, w, "%s: given twice (first on line %u); keep one", k->name,
				    seen[idx]);
		seen[idx] = w->line;
	}
	return apply(cfg, k, v, w, err);
}

int config_load(struct config *cfg, const char *path, char *err)
{
	unsigned int seen[NKEYS] = {0};
	char *buf = NULL;
	FILE *f = NULL;
	struct where w = {path, 0};
	long n;
	int ret;

	if (err)
		err[0] = '\0';
	ret = config_defaults(cfg);
	if (ret < 0)
		goto err_msg;
	if (!path)
		return 0;

	cfg->path = strdup(path);
	buf = malloc(CONFIG_LINE_MAX + 2);
	if (!cfg->path || !buf) {
		ret = -ENOMEM;
		goto err_msg;
	}
	f = fopen(path, "re");
	if (!f) {
		ret = -errno;
		goto err_read;
	}
	for (;;) {
		char *line = buf;

		w.line++;
		n = read_line(f, buf);
		if (n == -ENODATA)
			break;
		if (n == -E2BIG) {
			ret = fail(err, &w, "line too long (more than %d bytes)", CONFIG_LINE_MAX);
			goto err_free;
		}
		if (n == -EILSEQ) {
			ret = fail(err, &w, "line contains a NUL byte");
			goto err_free;
		}
		if (n < 0) {
			ret = (int)n;
			goto err_read;
		}
		/* a UTF-8 byte order mark, as some Windows editors write */
		if (w.line == 1 && !strncmp(line, "\xef\xbb\xbf", 3))
			line += 3;
		ret = parse_line(cfg, line, &w, seen, err);
		if (ret < 0)
			goto err_free;
	}
	ret = derive_paths(cfg, seen);
	if (ret < 0)
		goto err_msg;
	fclose(f);
	free(buf);
	return 0;

err_read:
	/* reading a directory fails at the first read, with EISDIR */
	if (err)
		snprintf(err, CONFIG_ERR_MAX, "cannot read config file %s: %s", path,
			 strerror(-ret));
	goto err_free;
err_msg:
	/* only -ENOMEM gets here without a message */
	if (err && !err[0])
		snprintf(err, CONFIG_ERR_MAX, "%s: %s", path ? path : "built-in defaults",
			 strerror(-ret));
err_free:
	if (f)
		fclose(f);
	free(buf);
	config_free(cfg);
	return ret;
}
