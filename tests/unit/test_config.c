/* Unit tests for common/config.c: defaults, every value type, every error
 * class (FILE:LINE and key in the message), clamd compatibility rules. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"
#include "fanotify/onaccess.h"
#include "common/util.h"

struct fx {
	char dir[64];
	char path[96];
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_config.XXXXXX");
	if (!mkdtemp(fx->dir)) {
		free(fx);
		return -1;
	}
	snprintf(fx->path, sizeof(fx->path), "%s/scanengined.conf", fx->dir);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	util_rm_rf(fx->dir);
	free(fx);
	return 0;
}

/* write len bytes of text as the config file */
static void write_raw(struct fx *fx, const char *text, size_t len)
{
	FILE *f = fopen(fx->path, "we");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static int load(struct fx *fx, const char *text, struct config *cfg, char *err)
{
	write_raw(fx, text, strlen(text));
	return config_load(cfg, fx->path, err);
}

static void assert_substr(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("expected \"%s\" in \"%s\"", needle, hay);
}

static void assert_zeroed(const struct config *cfg)
{
	static const struct config zero;

	assert_memory_equal(cfg, &zero, sizeof(zero));
}

/* expect_error: loading text fails with -EINVAL, a one-line message that
 * starts with "PATH:LINE: " and contains want, and a zeroed cfg. */
static void expect_error(struct fx *fx, const char *text, unsigned int line, const char *want)
{
	struct config cfg;
	char err[CONFIG_ERR_MAX], prefix[128];

	memset(err, 'x', sizeof(err));
	assert_int_equal(load(fx, text, &cfg, err), -EINVAL);
	snprintf(prefix, sizeof(prefix), "%s:%u: ", fx->path, line);
	if (strncmp(err, prefix, strlen(prefix)))
		fail_msg("expected prefix \"%s\" in \"%s\"", prefix, err);
	assert_substr(err, want);
	assert_null(strchr(err, '\n'));
	assert_zeroed(&cfg);
}

static void expect_ok(struct fx *fx, const char *text, struct config *cfg)
{
	char err[CONFIG_ERR_MAX] = "";
	int ret = load(fx, text, cfg, err);

	if (ret)
		fail_msg("load failed (%d): %s", ret, err);
}

static void test_defaults(void **state)
{
	struct config c;
	char err[CONFIG_ERR_MAX];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	(void)state;
	assert_int_equal(config_load(&c, NULL, err), 0);
	assert_null(c.path);
	assert_string_equal(c.local_socket, "/run/scanengine/scanengined.sock");
	assert_null(c.local_socket_group);
	assert_int_equal(c.local_socket_mode, 0660);
	assert_true(c.fix_stale_socket);
	assert_int_equal(c.max_conn_queue, 200);
	assert_null(c.admin_group);
	assert_string_equal(c.pid_file, "/run/scanengine/scanengined.pid");
	assert_false(c.foreground);
	assert_string_equal(c.user, "scanengine");
	assert_string_equal(c.state_dir, "/var/lib/scanengine");
	assert_string_equal(c.database_dir, "/usr/share/scanengine/defs");
	assert_string_equal(c.temp_dir, "/var/lib/scanengine/tmp");
	assert_null(c.log_file);
	assert_true(c.log_time);
	assert_false(c.log_syslog);
	assert_int_equal(c.log_facility, LOG_LOCAL6);
	assert_false(c.log_verbose);
	assert_false(c.log_clean);
	assert_int_equal(c.max_threads, ncpu < 1 ? 1 : ncpu > 256 ? 256 : ncpu);
	assert_int_equal(c.max_queue, 100);
	assert_int_equal(c.idle_timeout, 30);
	assert_int_equal(c.command_read_timeout, 30);
	assert_int_equal(c.read_timeout, 120);
	assert_int_equal(c.send_buf_timeout, 500);
	assert_int_equal(c.stream_max_length, 100ULL << 20);
	assert_int_equal(c.max_scan_time, 120000);
	assert_int_equal(c.respawn_interval, 100);
	assert_int_equal(c.load_timeout, 600);
	assert_int_equal(c.worker_memory_limit, 2ULL << 30);
	assert_true(c.concurrent_reload);
	assert_int_equal(c.self_check, 0); /* only "off" is accepted */
	assert_int_equal(c.exclude_path.n, 0);
	assert_null(c.exclude_path.items);
	assert_false(c.follow_dir_symlinks);
	assert_false(c.follow_file_symlinks);
	assert_true(c.cross_filesystems);
	/* clamd 1.4.6 defaults (clamconf -g clamd.conf) */
	assert_int_equal(c.max_scan_size, 400ULL << 20);
	assert_int_equal(c.max_file_size, 100ULL << 20);
	assert_int_equal(c.max_recursion, 17);
	assert_int_equal(c.max_files, 10000);
	assert_int_equal(c.max_embedded_pe, 40ULL << 20);
	assert_int_equal(c.max_html_normalize, 40ULL << 20);
	assert_int_equal(c.max_html_notags, 8ULL << 20);
	assert_int_equal(c.max_script_normalize, 20ULL << 20);
	assert_int_equal(c.max_zip_type_rcg, 1ULL << 20);
	assert_int_equal(c.max_partitions, 50);
	assert_int_equal(c.max_icons_pe, 100);
	assert_int_equal(c.max_rec_hwp3, 16);
	assert_int_equal(c.pcre_match_limit, 100000);
	assert_int_equal(c.pcre_rec_match_limit, 2000);
	assert_int_equal(c.pcre_max_file_size, 100ULL << 20);
	assert_int_equal(c.bytecode_timeout, 10000);
	assert_int_equal(c.bytecode_security, 0);
	assert_true(c.bytecode);
	assert_false(c.detect_pua);
	assert_true(c.heuristic_alerts);
	assert_false(c.heuristic_scan_precedence);
	assert_true(c.scan_pe && c.scan_elf && c.scan_ole2 && c.scan_pdf && c.scan_swf);
	assert_true(c.scan_xmldocs && c.scan_hwp3 && c.scan_onenote && c.scan_image);
	assert_true(c.scan_image_fuzzy_hash && c.scan_mail && c.scan_html && c.scan_archive);
	assert_false(c.scan_partial_messages);
	assert_true(c.phishing_signatures && c.phishing_scan_urls);
	assert_false(c.alert_exceeds_max || c.alert_broken_executables || c.alert_broken_media);
	assert_false(c.alert_encrypted || c.alert_encrypted_archive || c.alert_encrypted_doc);
	assert_false(c.alert_ole2_macros || c.alert_phishing_ssl_mismatch);
	assert_false(c.alert_phishing_cloak || c.alert_partition_intersection);
	assert_false(c.force_to_disk || c.disable_cache || c.leave_temporary_files);
	assert_false(c.disable_cert_check);
	config_free(&c);
	assert_zeroed(&c);

	/* config_defaults alone gives the same, derived directory included */
	assert_int_equal(config_defaults(&c), 0);
	assert_string_equal(c.temp_dir, "/var/lib/scanengine/tmp");
	config_free(&c);
}

/* The keys of definitions validation: defaults and values. */
static void test_validation_keys(void **state)
{
	struct config c;

	assert_int_equal(config_defaults(&c), 0);
	assert_string_equal(c.certs_dir, "/etc/scanengine/certs");
	assert_false(c.allow_unsigned);
	assert_false(c.require_sign);
	assert_int_equal(c.max_def_entries, 10000);
	assert_null(c.canary_dir);
	assert_null(c.clean_corpus_dir);
	assert_int_equal(c.validator_memory_limit, 8ULL << 30);
	assert_int_equal(c.validator_timeout, 600);
	config_free(&c);
	expect_ok(*state,
		  "CertsDirectory /opt/certs\n"
		  "AllowUnsignedDefinitions yes\n"
		  "RequireSignFile yes\n"
		  "MaxDefinitionEntries 500\n"
		  "CanaryDirectory /srv/canary\n"
		  "CleanCorpusDirectory /srv/clean\n"
		  "ValidatorMemoryLimit 2G\n"
		  "ValidatorTimeout 30\n",
		  &c);
	assert_string_equal(c.certs_dir, "/opt/certs");
	assert_true(c.allow_unsigned);
	assert_true(c.require_sign);
	assert_int_equal(c.max_def_entries, 500);
	assert_string_equal(c.canary_dir, "/srv/canary");
	assert_string_equal(c.clean_corpus_dir, "/srv/clean");
	assert_int_equal(c.validator_memory_limit, 2ULL << 30);
	assert_int_equal(c.validator_timeout, 30);
	config_free(&c);
}

static void test_empty_file(void **state)
{
	struct config c;

	expect_ok(*state, "", &c);
	assert_non_null(c.path);
	assert_string_equal(c.path, ((struct fx *)*state)->path);
	assert_string_equal(c.user, "scanengine");
	config_free(&c);
}

static void test_every_type(void **state)
{
	struct config c;

	expect_ok(*state,
		  "Foreground yes\n"			/* bool */
		  "MaxThreads 7\n"			/* uint */
		  "PCREMatchLimit 123456\n"		/* u64 */
		  "StreamMaxLength 25M\n"		/* size */
		  "LocalSocketMode 0600\n"		/* octal mode */
		  "User clamav\n"			/* string */
		  "LocalSocketGroup virusgroup\n"	/* string */
		  "AdminGroup wheel\n"			/* string */
		  "DatabaseDirectory /var/lib/clamav\n" /* path */
		  "LogFile /var/log/scanengine.log\n"	/* path */
		  "LogFacility LOG_MAIL\n"		/* facility */
		  "BytecodeSecurity Paranoid\n"		/* bytecode security */
		  "ExcludePath ^/proc/\n"		/* list */
		  "MaxScanTime 0\n"
		  "WorkerMemoryLimit 512m\n"
		  "ReadTimeout 180\n"
		  "SelfCheck 0\n",
		  &c);
	assert_true(c.foreground);
	assert_int_equal(c.max_threads, 7);
	assert_int_equal(c.pcre_match_limit, 123456);
	assert_int_equal(c.stream_max_length, 25ULL << 20);
	assert_int_equal(c.local_socket_mode, 0600);
	assert_string_equal(c.user, "clamav");
	assert_string_equal(c.local_socket_group, "virusgroup");
	assert_string_equal(c.admin_group, "wheel");
	assert_string_equal(c.database_dir, "/var/lib/clamav");
	assert_string_equal(c.log_file, "/var/log/scanengine.log");
	assert_int_equal(c.log_facility, LOG_MAIL);
	assert_int_equal(c.bytecode_security, 1);
	assert_int_equal(c.exclude_path.n, 1);
	assert_string_equal(c.exclude_path.items[0], "^/proc/");
	assert_int_equal(c.max_scan_time, 0);
	assert_int_equal(c.worker_memory_limit, 512ULL << 20);
	assert_int_equal(c.read_timeout, 180);
	assert_int_equal(c.self_check, 0);
	config_free(&c);
}

static void test_unknown_key(void **state)
{
	expect_error(*state, "# c\nFoo bar\n", 2, "unknown option 'Foo'");
	expect_error(*state, "Foo\n", 1, "unknown option 'Foo'");
	/* names are case-sensitive as in clamd, with a hint */
	expect_error(*state, "maxthreads 4\n", 1,
		     "unknown option 'maxthreads' (option names are case-sensitive: did you "
		     "mean 'MaxThreads'?)");
	/* freshclam's keys are not clamd's */
	expect_error(*state, "DatabaseOwner clamav\n", 1, "unknown option 'DatabaseOwner'");
}

static void test_clamd_only_keys(void **state)
{
	static const char *const refused[] = {
		"TCPSocket",
		"TCPAddr",
		"StreamMinPort",
		"StreamMaxPort",
		"LogFileMaxSize",
		"LogRotate",
		"LogFileUnlock",
		"ExitOnOOM",
		"VirusEvent",
		"PreludeEnable",
		"ExtendedDetectionInfo",
		"AllowAllMatchScan",
		"OfficialDatabaseOnly",
		"OnAccessExtraScanning",
		"OnAccessMaxThreads",
		"ArchiveBlockEncrypted",
		"DevLiblog",
		"ScanOnAccess",
	};
	char text[128], want[160];

	for (size_t i = 0; i < SE_ARRAY_SIZE(refused); i++) {
		snprintf(text, sizeof(text), "LogTime yes\n\n%s 1\n", refused[i]);
		snprintf(want, sizeof(want),
			 "option '%s' is a clamd option that scanengined does not support",
			 refused[i]);
		expect_error(*state, text, 3, want);
	}
	expect_error(*state, "BlockMax yes\n", 1, "(use AlertExceedsMax)");
}

/* Every clamd.conf key of clamd 1.4.6 (clamconf -g clamd.conf, plus the
 * hidden Dev* and the deprecated ones) is either accepted or refused as a
 * clamd option: none may fall through to "unknown option". */
static void test_every_clamd_key_classified(void **state)
{
	static const char *const clamd_keys[] = {
		"AlertBrokenExecutables",
		"AlertBrokenMedia",
		"AlertEncrypted",
		"AlertEncryptedArchive",
		"AlertEncryptedDoc",
		"AlertExceedsMax",
		"AlertOLE2Macros",
		"AlertPartitionIntersection",
		"AlertPhishingCloak",
		"AlertPhishingSSLMismatch",
		"AlgorithmicDetection",
		"AllowAllMatchScan",
		"AllowSupplementaryGroups",
		"ArchiveBlockEncrypted",
		"ArchiveBlockMax",
		"ArchiveLimitMemoryUsage",
		"ArchiveMaxCompressionRatio",
		"ArchiveMaxFiles",
		"ArchiveMaxRecursion",
		"ArchiveMaxScanSize",
		"BlockMax",
		"Bytecode",
		"BytecodeMode",
		"BytecodeSecurity",
		"BytecodeTimeout",
		"BytecodeUnsigned",
		"CacheSize",
		"CommandReadTimeout",
		"ConcurrentDatabaseReload",
		"CrossFilesystems",
		"DatabaseDirectory",
		"Debug",
		"DetectBrokenExecutables",
		"DetectPUA",
		"DevACDepth",
		"DevACOnly",
		"DevLiblog",
		"DevPerformance",
		"DisableCache",
		"DisableCertCheck",
		"ExcludePUA",
		"ExcludePath",
		"ExitOnOOM",
		"ExtendedDetectionInfo",
		"FailIfCvdOlderThan",
		"FixStaleSocket",
		"FollowDirectorySymlinks",
		"FollowFileSymlinks",
		"ForceToDisk",
		"Foreground",
		"GenerateMetadataJson",
		"HeuristicAlerts",
		"HeuristicScanPrecedence",
		"IdleTimeout",
		"IncludePUA",
		"LeaveTemporaryFiles",
		"LocalSocket",
		"LocalSocketGroup",
		"LocalSocketMode",
		"LogClean",
		"LogFacility",
		"LogFile",
		"LogFileMaxSize",
		"LogFileUnlock",
		"LogRotate",
		"LogSyslog",
		"LogTime",
		"LogVerbose",
		"MailFollowURLs",
		"MailMaxRecursion",
		"MaxConnectionQueueLength",
		"MaxDirectoryRecursion",
		"MaxEmbeddedPE",
		"MaxFileSize",
		"MaxFiles",
		"MaxHTMLNoTags",
		"MaxHTMLNormalize",
		"MaxIconsPE",
		"MaxPartitions",
		"MaxQueue",
		"MaxRecHWP3",
		"MaxRecursion",
		"MaxScanSize",
		"MaxScanTime",
		"MaxScriptNormalize",
		"MaxThreads",
		"MaxZipTypeRcg",
		"OLE2BlockMacros",
		"OfficialDatabaseOnly",
		"OnAccessCurlTimeout",
		"OnAccessDenyOnError",
		"OnAccessDisableDDD",
		"OnAccessExcludePath",
		"OnAccessExcludeRootUID",
		"OnAccessExcludeUID",
		"OnAccessExcludeUname",
		"OnAccessExtraScanning",
		"OnAccessIncludePath",
		"OnAccessMaxFileSize",
		"OnAccessMaxThreads",
		"OnAccessMountPath",
		"OnAccessPrevention",
		"OnAccessRetryAttempts",
		"PCREMatchLimit",
		"PCREMaxFileSize",
		"PCRERecMatchLimit",
		"PartitionIntersection",
		"PhishingAlwaysBlockCloak",
		"PhishingAlwaysBlockSSLMismatch",
		"PhishingScanURLs",
		"PhishingSignatures",
		"PidFile",
		"PreludeAnalyzerName",
		"PreludeEnable",
		"ReadTimeout",
		"ScanArchive",
		"ScanELF",
		"ScanHTML",
		"ScanHWP3",
		"ScanImage",
		"ScanImageFuzzyHash",
		"ScanMail",
		"ScanOLE2",
		"ScanOnAccess",
		"ScanOneNote",
		"ScanPDF",
		"ScanPE",
		"ScanPartialMessages",
		"ScanSWF",
		"ScanXMLDOCS",
		"SelfCheck",
		"SendBufTimeout",
		"StreamMaxLength",
		"StreamMaxPort",
		"StreamMinPort",
		"StructuredCCOnly",
		"StructuredDataDetection",
		"StructuredMinCreditCardCount",
		"StructuredMinSSNCount",
		"StructuredSSNFormatNormal",
		"StructuredSSNFormatStripped",
		"TCPAddr",
		"TCPSocket",
		"TemporaryDirectory",
		"User",
		"VirusEvent",
	};
	struct config c;
	char text[128], err[CONFIG_ERR_MAX];

	assert_int_equal(SE_ARRAY_SIZE(clamd_keys), 146);
	for (size_t i = 0; i < SE_ARRAY_SIZE(clamd_keys); i++) {
		snprintf(text, sizeof(text), "%s 1\n", clamd_keys[i]);
		err[0] = '\0';
		if (load(*state, text, &c, err) == 0) {
			config_free(&c);
			continue;
		}
		if (strstr(err, "unknown option"))
			fail_msg("clamd key %s is not classified: %s", clamd_keys[i], err);
	}
}

static void test_example_line(void **state)
{
	expect_error(*state, "# sample\nExample\nLogTime yes\n", 2, "'Example' line");
}

static void test_number_errors(void **state)
{
	struct config c;

	expect_error(*state, "LogTime yes\n\nMaxThreads abc\n", 3,
		     "MaxThreads: 'abc' is not a number (1..256)");
	expect_error(*state, "MaxThreads -1\n", 1, "MaxThreads: '-1' is not a number (1..256)");
	expect_error(*state, "MaxThreads +1\n", 1, "MaxThreads: '+1' is not a number");
	expect_error(*state, "MaxThreads 4x\n", 1, "MaxThreads: '4x' is not a number");
	expect_error(*state, "MaxThreads 0\n", 1, "MaxThreads: '0' is out of range (1..256)");
	expect_error(*state, "MaxThreads 257\n", 1, "MaxThreads: '257' is out of range (1..256)");
	expect_error(*state, "MaxQueue 99999999999999999999999\n", 1,
		     "MaxQueue: '99999999999999999999999' is out of range");
	expect_error(*state, "PCREMatchLimit 2147483648\n", 1,
		     "PCREMatchLimit: '2147483648' is out of range (0..2147483647)");
	expect_ok(*state, "MaxThreads 256\nMaxRecursion 0\n", &c);
	assert_int_equal(c.max_threads, 256);
	assert_int_equal(c.max_recursion, 0);
	config_free(&c);
}

static void test_parse_size(void **state)
{
	static const struct {
		const char *s;
		uint64_t v;
	} ok[] = {
		{"0", 0},
		{"123", 123},
		{"10K", 10240},
		{"10k", 10240},
		{"25M", 25ULL << 20},
		{"25m", 25ULL << 20},
		{"2G", 2ULL << 30},
		{"2g", 2ULL << 30},
		{"007", 7}, /* decimal, not clamd's accidental octal */
		{"18446744073709551615", UINT64_MAX},
		{"17179869183G", 17179869183ULL << 30},
	};
	static const char *const bad[] = {
		"", "K", "1T", "1KB", " 1", "1 ", "-1", "+1", "1.5M", "0x10", "M1",
	};
	static const char *const big[] = {
		"99999999999G",
		"18446744073709551616",
		"17179869184G",
		"999999999999999999999999K",
	};
	uint64_t v;

	(void)state;
	for (size_t i = 0; i < SE_ARRAY_SIZE(ok); i++) {
		v = 42;
		assert_int_equal(config_parse_size(ok[i].s, &v), 0);
		assert_int_equal(v, ok[i].v);
	}
	for (size_t i = 0; i < SE_ARRAY_SIZE(bad); i++) {
		v = 42;
		assert_int_equal(config_parse_size(bad[i], &v), -EINVAL);
		assert_int_equal(v, 42);
	}
	for (size_t i = 0; i < SE_ARRAY_SIZE(big); i++)
		assert_int_equal(config_parse_size(big[i], &v), -ERANGE);
	assert_int_equal(config_parse_size(NULL, &v), -EINVAL);
}

static void test_size_keys(void **state)
{
	struct config c;

	expect_error(*state, "MaxScanSize 99999999999G\n", 1,
		     "MaxScanSize: '99999999999G' is too large");
	/* fits in 64 bits, not in libclamav's long long */
	expect_error(*state, "MaxFileSize 9223372036854775808\n", 1,
		     "MaxFileSize: '9223372036854775808' is too large");
	expect_error(*state, "StreamMaxLength 25MB\n", 1,
		     "StreamMaxLength: '25MB' is not a size (a number, optionally followed by K, M "
		     "or G)");
	expect_error(*state, "WorkerMemoryLimit lots\n", 1, "WorkerMemoryLimit: 'lots'");
	/* 0 is "no limit" for clamd's sizes (stored as clamd does), a plain
	 * 0 for WorkerMemoryLimit */
	expect_ok(*state,
		  "StreamMaxLength 0\nMaxScanSize 0\nWorkerMemoryLimit 0\nMaxFileSize 4g\n"
		  "MaxHTMLNoTags 300k\n",
		  &c);
	assert_int_equal(c.stream_max_length, INT64_MAX);
	assert_int_equal(c.max_scan_size, INT64_MAX);
	assert_int_equal(c.worker_memory_limit, 0);
	assert_int_equal(c.max_file_size, 4ULL << 30);
	assert_int_equal(c.max_html_notags, 300ULL << 10);
	config_free(&c);
}

static void test_mode(void **state)
{
	static const struct {
		const char *s;
		unsigned int v;
	} ok[] = {
		{"660", 0660}, {"0660", 0660}, {"600", 0600}, {"777", 0777}, {"0", 0},
	};
	struct config c;
	char text[64];

	for (size_t i = 0; i < SE_ARRAY_SIZE(ok); i++) {
		snprintf(text, sizeof(text), "LocalSocketMode %s\n", ok[i].s);
		expect_ok(*state, text, &c);
		assert_int_equal(c.local_socket_mode, ok[i].v);
		config_free(&c);
	}
	expect_error(*state, "\nLocalSocketMode 999\n", 2,
		     "LocalSocketMode: '999' is not an octal file mode");
	expect_error(*state, "LocalSocketMode 1777\n", 1, "'1777' is not an octal file mode");
	expect_error(*state, "LocalSocketMode 66a\n", 1, "'66a' is not an octal file mode");
	expect_error(*state, "LocalSocketMode 00660\n", 1, "'00660' is not an octal file mode");
	expect_error(*state, "LocalSocketMode -660\n", 1, "'-660' is not an octal file mode");
}

static void test_bool(void **state)
{
	static const char *const yes[] = {"yes", "YES", "Yes", "true", "TRUE", "on", "On", "1"};
	static const char *const no[] = {"no", "NO", "false", "False", "off", "OFF", "0"};
	static const char *const bad[] = {"", "maybe", "yess", "2", "y", "n", "enabled"};
	struct config c;
	bool b;

	for (size_t i = 0; i < SE_ARRAY_SIZE(yes); i++) {
		b = false;
		assert_int_equal(config_parse_bool(yes[i], &b), 0);
		assert_true(b);
	}
	for (size_t i = 0; i < SE_ARRAY_SIZE(no); i++) {
		b = true;
		assert_int_equal(config_parse_bool(no[i], &b), 0);
		assert_false(b);
	}
	for (size_t i = 0; i < SE_ARRAY_SIZE(bad); i++)
		assert_int_equal(config_parse_bool(bad[i], &b), -EINVAL);
	assert_int_equal(config_parse_bool(NULL, &b), -EINVAL);

	expect_ok(*state, "Foreground TRUE\nFixStaleSocket off\nDetectPUA 1\n", &c);
	assert_true(c.foreground);
	assert_false(c.fix_stale_socket);
	assert_true(c.detect_pua);
	config_free(&c);
	expect_error(*state, "LogTime nah\n", 1,
		     "LogTime: 'nah' is not a boolean (yes/no, true/false, on/off, 1/0)");
}

static void test_facility(void **state)
{
	static const struct {
		const char *s;
		int v;
	} ok[] = {
		{"LOG_LOCAL0", LOG_LOCAL0}, {"LOG_LOCAL7", LOG_LOCAL7},	    {"LOG_USER", LOG_USER},
		{"LOG_DAEMON", LOG_DAEMON}, {"LOG_AUTHPRIV", LOG_AUTHPRIV},
	};
	struct config c;
	char text[64];

	for (size_t i = 0; i < SE_ARRAY_SIZE(ok); i++) {
		snprintf(text, sizeof(text), "LogFacility %s\n", ok[i].s);
		expect_ok(*state, text, &c);
		assert_int_equal(c.log_facility, ok[i].v);
		config_free(&c);
	}
	expect_error(*state, "LogFacility local6\n", 1,
		     "LogFacility: 'local6' is not a syslog facility");
	expect_error(*state, "LogFacility LOG_LOCAL8\n", 1,
		     "'LOG_LOCAL8' is not a syslog facility");
}

static void test_bytecode_security(void **state)
{
	struct config c;

	expect_ok(*state, "BytecodeSecurity TrustSigned\n", &c);
	assert_int_equal(c.bytecode_security, 0);
	config_free(&c);
	expect_ok(*state, "BytecodeSecurity paranoid\n", &c);
	assert_int_equal(c.bytecode_security, 1);
	config_free(&c);
	expect_error(*state, "BytecodeSecurity Strict\n", 1,
		     "BytecodeSecurity: 'Strict' is not TrustSigned or Paranoid");
}

static void test_paths(void **state)
{
	struct config c;
	char text[256];

	expect_error(*state, "StateDirectory var/lib/x\n", 1,
		     "StateDirectory: 'var/lib/x' is not an absolute path");
	expect_error(*state, "PidFile ./x.pid\n", 1, "PidFile: './x.pid' is not an absolute path");
	expect_error(*state, "LogFile ~/x.log\n", 1, "LogFile: '~/x.log' is not an absolute path");
	/* sun_path holds 107 bytes and the NUL */
	snprintf(text, sizeof(text), "LocalSocket /%0107d\n", 0);
	expect_error(*state, text, 1, "is too long for a UNIX socket path (at most 107 bytes)");
	snprintf(text, sizeof(text), "LocalSocket /%0106d\n", 0);
	expect_ok(*state, text, &c);
	assert_int_equal(strlen(c.local_socket), 107);
	config_free(&c);
	/* trailing slashes dropped */
	expect_ok(*state, "DatabaseDirectory /srv/defs//\n", &c);
	assert_string_equal(c.database_dir, "/srv/defs");
	config_free(&c);
}

static void test_derived_temp_dir(void **state)
{
	struct config c;

	expect_ok(*state, "StateDirectory /srv/se\n", &c);
	assert_string_equal(c.state_dir, "/srv/se");
	assert_string_equal(c.temp_dir, "/srv/se/tmp");
	config_free(&c);
	expect_ok(*state, "StateDirectory /srv/se/\n", &c);
	assert_string_equal(c.temp_dir, "/srv/se/tmp");
	config_free(&c);
	expect_ok(*state, "StateDirectory /\n", &c);
	assert_string_equal(c.temp_dir, "/tmp");
	config_free(&c);
	/* an explicit one wins, whichever line comes first */
	expect_ok(*state, "TemporaryDirectory /scratch\nStateDirectory /srv/se\n", &c);
	assert_string_equal(c.temp_dir, "/scratch");
	config_free(&c);
	expect_ok(*state, "StateDirectory /srv/se\nTemporaryDirectory /scratch\n", &c);
	assert_string_equal(c.temp_dir, "/scratch");
	config_free(&c);
}

static void test_exclude_path(void **state)
{
	struct config c;

	expect_ok(*state,
		  "ExcludePath ^/proc/\n"
		  "LogTime no\n"
		  "ExcludePath ^/sys/\n"
		  "ExcludePath \\.(iso|img)$\n",
		  &c);
	assert_int_equal(c.exclude_path.n, 3);
	assert_string_equal(c.exclude_path.items[0], "^/proc/");
	assert_string_equal(c.exclude_path.items[1], "^/sys/");
	assert_string_equal(c.exclude_path.items[2], "\\.(iso|img)$");
	config_free(&c);
	expect_error(*state, "ExcludePath ^/ok/\nExcludePath ^/proc/(\n", 2,
		     "ExcludePath: '^/proc/(' is not a valid extended regular expression: ");
	expect_error(*state, "ExcludePath [z-a]\n", 1,
		     "ExcludePath: '[z-a]' is not a valid extended regular expression");
}

static void test_update_keys(void **state)
{
	struct config c;

	/* freshclam's defaults; no mirror: updates are off */
	expect_ok(*state, "LogTime no\n", &c);
	assert_int_equal(c.database_mirror.n, 0);
	assert_int_equal(c.database_name.n, 0);
	assert_int_equal(c.checks, 12);
	assert_int_equal(c.connect_timeout, 30);
	assert_int_equal(c.receive_timeout, 60);
	assert_int_equal(c.max_attempts, 3);
	assert_true(c.scripted_updates);
	assert_null(c.proxy_server);
	config_free(&c);
	expect_ok(*state,
		  "PrivateMirror http://10.0.0.1:8080/clamav\n"
		  "DatabaseMirror database.clamav.net\n"
		  "DatabaseMirror file:///srv/mirror\n"
		  "DatabaseName daily\n"
		  "DatabaseName test\n"
		  "Checks 0\n"
		  "ReceiveTimeout 0\n"
		  "HTTPProxyServer proxy.example\n"
		  "HTTPProxyPort 3128\n",
		  &c);
	assert_int_equal(c.private_mirror.n, 1);
	assert_int_equal(c.database_mirror.n, 2);
	assert_string_equal(c.database_mirror.items[1], "file:///srv/mirror");
	assert_int_equal(c.database_name.n, 2);
	assert_string_equal(c.database_name.items[1], "test");
	assert_null(c.database_name.items[2]); /* a string vector for upd_mirrors_build */
	assert_int_equal(c.checks, 0);
	assert_int_equal(c.receive_timeout, 0);
	assert_string_equal(c.proxy_server, "proxy.example");
	assert_int_equal(c.proxy_port, 3128);
	config_free(&c);
	expect_error(*state, "Checks 51\n", 1, "Checks: '51' is out of range");
	expect_error(*state, "DatabaseMirror a b\n", 1,
		     "DatabaseMirror: 'a b' is more than one word; give one per line");
	expect_error(*state, "MaxAttempts 0\n", 1, "MaxAttempts: '0' is out of range");
}

static void test_onaccess_keys(void **state)
{
	struct config c;
	char err[256];

	expect_ok(*state, "LogTime no\n", &c);
	assert_int_equal(c.oa_include_path.n, 0);
	assert_false(c.oa_prevention);
	assert_string_equal(c.oa_fail_policy, "allow");
	assert_int_equal(c.oa_perm_timeout, 5);
	assert_int_equal(c.oa_max_file_size, 5u << 20);
	assert_int_equal(oa_check_config(&c, err), 0);
	config_free(&c);
	expect_ok(*state,
		  "OnAccessIncludePath /srv/upload\n"
		  "OnAccessIncludePath /home\n"
		  "OnAccessExcludePath /home/build\n"
		  "OnAccessExcludeUID 1000\n"
		  "OnAccessExcludeUname backup\n"
		  "OnAccessPrevention yes\n"
		  "OnAccessFailPolicy deny\n"
		  "OnAccessPermTimeout 2\n",
		  &c);
	assert_int_equal(c.oa_include_path.n, 2);
	assert_true(c.oa_prevention);
	assert_int_equal(oa_check_config(&c, err), 0);
	config_free(&c);
	expect_ok(*state, "OnAccessFailPolicy maybe\n", &c);
	assert_int_equal(oa_check_config(&c, err), -EINVAL);
	assert_string_equal(err, "OnAccessFailPolicy: 'maybe' is not allow or deny");
	config_free(&c);
	expect_ok(*state, "OnAccessExcludeUID bob\n", &c);
	assert_int_equal(oa_check_config(&c, err), -EINVAL);
	assert_string_equal(err, "OnAccessExcludeUID: 'bob' is not a user ID");
	config_free(&c);
	expect_ok(*state, "OnAccessIncludePath srv\n", &c);
	assert_int_equal(oa_check_config(&c, err), -EINVAL);
	assert_string_equal(err, "on-access path 'srv' is not absolute");
	config_free(&c);
	expect_error(*state, "OnAccessDenyOnError yes\n", 1, "(use OnAccessFailPolicy deny)");
	expect_error(*state, "OnAccessPermTimeout 0\n", 1,
		     "OnAccessPermTimeout: '0' is out of range");
}

static void test_repeated_key(void **state)
{
	expect_error(*state, "MaxThreads 2\nLogTime no\nMaxThreads 3\n", 3,
		     "MaxThreads: given twice (first on line 1)");
	expect_error(*state, "User a\nUser a\n", 2, "User: given twice (first on line 1)");
}

static void test_crlf(void **state)
{
	struct config c;

	expect_ok(*state,
		  "# written on Windows\r\n"
		  "\r\n"
		  "LogFile /var/log/se.log\r\n"
		  "Foreground yes\r\n"
		  "MaxThreads 3 \r\n"
		  "ExcludePath ^/a$\r\n"
		  "User se",
		  &c);
	assert_string_equal(c.log_file, "/var/log/se.log");
	assert_true(c.foreground);
	assert_int_equal(c.max_threads, 3);
	assert_string_equal(c.exclude_path.items[0], "^/a$");
	assert_string_equal(c.user, "se"); /* last line without newline */
	config_free(&c);
	/* a byte order mark before the first key is skipped */
	expect_ok(*state, "\xef\xbb\xbfMaxThreads 5\r\n", &c);
	assert_int_equal(c.max_threads, 5);
	config_free(&c);
}

static void test_comments(void **state)
{
	struct config c;

	expect_ok(*state,
		  "# comment\n"
		  "   # indented comment\n"
		  "\t#tab-indented\n"
		  "#MaxThreads abc\n"
		  "\n"
		  "   \t \n"
		  "MaxThreads\t \t4\n"
		  "  LogFile   /var/log/x.log  \t\n"
		  "ExcludePath ^/a#b\n"
		  "LocalSocketGroup \"se #1\"\n",
		  &c);
	assert_int_equal(c.max_threads, 4);
	assert_string_equal(c.log_file, "/var/log/x.log");
	/* no blank before '#': part of the value, as in clamd 1.4 */
	assert_string_equal(c.exclude_path.items[0], "^/a#b");
	/* quoted: part of the value */
	assert_string_equal(c.local_socket_group, "se #1");
	config_free(&c);
	/* "value # note": clamd 1.4 and 1.5 disagree, so it is refused */
	expect_error(*state, "MaxThreads 4 # four\n", 1,
		     "MaxThreads: '#' after the value: a comment must be on a line of its own");
	expect_error(*state, "\nUser se\t# the scan user\n", 2, "User: '#' after the value");
	expect_error(*state, "LogFile /var/log/x.log #\n", 1, "LogFile: '#' after the value");
}

static void test_quotes(void **state)
{
	struct config c;

	expect_ok(*state,
		  "LogFile \"/var/log/a b.log\"\n"
		  "User \"scanengine\"\n"
		  "ExcludePath ^/a\"b\n"
		  "LocalSocketGroup \" g \"\n",
		  &c);
	assert_string_equal(c.log_file, "/var/log/a b.log");
	assert_string_equal(c.user, "scanengine");
	assert_string_equal(c.exclude_path.items[0], "^/a\"b");
	assert_string_equal(c.local_socket_group, " g ");
	config_free(&c);
	expect_error(*state, "LogFile \"/x\n", 1, "LogFile: missing closing '\"'");
	expect_error(*state, "LogFile \"/x\" junk\n", 1,
		     "LogFile: unexpected text after the closing '\"'");
	expect_error(*state, "User \"\"\n", 1, "User: empty value");
	expect_error(*state, "LogFile \"relative\"\n", 1, "'relative' is not an absolute path");
}

static void test_missing_value(void **state)
{
	expect_error(*state, "MaxThreads\n", 1, "MaxThreads: missing value");
	expect_error(*state, "\n\nUser  \t \n", 3, "User: missing value");
}

static void test_overlong_line(void **state)
{
	struct fx *fx = *state;
	size_t n = CONFIG_LINE_MAX + 64;
	char *text = malloc(n), err[CONFIG_ERR_MAX], prefix[256];
	struct config c;

	assert_non_null(text);
	/* exactly CONFIG_LINE_MAX bytes, with and without "\r": accepted */
	memset(text, ' ', n);
	memcpy(text, "MaxThreads 2\n#", 14);
	memcpy(text + 13 + CONFIG_LINE_MAX, "\r\nUser u\n", 9);
	write_raw(fx, text, 13 + CONFIG_LINE_MAX + 9);
	assert_int_equal(config_load(&c, fx->path, err), 0);
	assert_string_equal(c.user, "u");
	config_free(&c);

	/* one more byte: refused, naming the line */
	memcpy(text + 13 + CONFIG_LINE_MAX, " \nUser u\n", 9);
	write_raw(fx, text, 13 + CONFIG_LINE_MAX + 9);
	assert_int_equal(config_load(&c, fx->path, err), -EINVAL);
	snprintf(prefix, sizeof(prefix), "%s:2: line too long (more than 4096 bytes)", fx->path);
	assert_string_equal(err, prefix);
	assert_zeroed(&c);
	free(text);
}

static void test_nul_byte(void **state)
{
	struct fx *fx = *state;
	static const char text[] = "MaxThreads 2\nUser a\0b\n";
	struct config c;
	char err[CONFIG_ERR_MAX];

	write_raw(fx, text, sizeof(text) - 1);
	assert_int_equal(config_load(&c, fx->path, err), -EINVAL);
	assert_substr(err, ":2: line contains a NUL byte");
}

static void test_unreadable(void **state)
{
	struct fx *fx = *state;
	struct config c;
	char err[CONFIG_ERR_MAX], want[256];

	snprintf(want, sizeof(want), "%s/nope.conf", fx->dir);
	assert_int_equal(config_load(&c, want, err), -ENOENT);
	snprintf(want, sizeof(want),
		 "cannot read config file %s/nope.conf: No such file or directory", fx->dir);
	assert_string_equal(err, want);
	assert_zeroed(&c);

	assert_int_equal(config_load(&c, fx->dir, err), -EISDIR);
	assert_substr(err, "cannot read config file ");
	assert_substr(err, ": Is a directory");
	assert_zeroed(&c);
}

static void test_control_chars_in_message(void **state)
{
	struct config c;
	char err[CONFIG_ERR_MAX];
	char text[256];

	/* long or odd values are cut and made printable in the one line */
	snprintf(text, sizeof(text), "MaxThreads 1\x1b[2J%0150d\n", 0);
	assert_int_equal(load(*state, text, &c, err), -EINVAL);
	assert_null(strchr(err, '\x1b'));
	assert_substr(err, "MaxThreads: '1?[2J0");
	assert_substr(err, "...' is not a number");
	assert_true(strlen(err) < 200);
}

static void test_null_err(void **state)
{
	struct config c;

	assert_int_equal(load(*state, "Foo 1\n", &c, NULL), -EINVAL);
	assert_zeroed(&c);
}

static void test_free_zeroed(void **state)
{
	struct config c;

	(void)state;
	memset(&c, 0, sizeof(c));
	config_free(&c);
	config_free(&c);
	config_free(NULL);
	assert_int_equal(config_defaults(&c), 0);
	config_free(&c);
	config_free(&c); /* already freed */
	assert_zeroed(&c);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_defaults),
		T(test_validation_keys),
		T(test_empty_file),
		T(test_every_type),
		T(test_unknown_key),
		T(test_clamd_only_keys),
		T(test_every_clamd_key_classified),
		T(test_example_line),
		T(test_number_errors),
		T(test_parse_size),
		T(test_size_keys),
		T(test_mode),
		T(test_bool),
		T(test_facility),
		T(test_bytecode_security),
		T(test_paths),
		T(test_derived_temp_dir),
		T(test_exclude_path),
		T(test_update_keys),
		T(test_onaccess_keys),
		T(test_repeated_key),
		T(test_crlf),
		T(test_comments),
		T(test_quotes),
		T(test_missing_value),
		T(test_overlong_line),
		T(test_nul_byte),
		T(test_unreadable),
		T(test_control_chars_in_message),
		T(test_null_err),
		T(test_free_zeroed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
