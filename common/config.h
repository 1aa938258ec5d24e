/* config: scanengined.conf, in clamd.conf syntax.
 *
 * "Key value" lines, '#' comments on lines of their own ("value # note" is refused: clamd 1.4
 * keeps the note in the value, clamd 1.5 strips it), blank lines, CRLF tolerated. Keys are matched
 * case-sensitively as clamd does. Keys that clamd has and that apply here keep their clamd
 * meaning; clamd keys that do not apply are refused by name ("option 'X' is a clamd option that
 * scanengined does not support"), as is any unknown key, bad value or non-list key given twice,
 * with FILE:LINE in the message. The accepted keys live in one table in config.c. */
#ifndef SE_COMMON_CONFIG_H
#define SE_COMMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CONFIG_DEFAULT_PATH "/etc/scanengine/scanengined.conf"
#define CONFIG_ERR_MAX	    512
#define CONFIG_LINE_MAX	    4096 /* longest accepted line, without its "\n" */

struct config_list {
	char **items; /* n strings, then NULL (items itself NULL when n is 0) */
	size_t n;
};

struct config {
	char *path; /* file that was read, or NULL for built-in defaults */

	/* control socket */
	char *local_socket;		/* LocalSocket */
	char *local_socket_group;	/* LocalSocketGroup, NULL: leave as created */
	unsigned int local_socket_mode; /* LocalSocketMode (octal in the file) */
	bool fix_stale_socket;		/* FixStaleSocket */
	unsigned int max_conn_queue;	/* MaxConnectionQueueLength: listen backlog */
	char *admin_group;		/* AdminGroup (new): may use admin commands */

	/* process */
	char *pid_file;	    /* PidFile */
	bool foreground;    /* Foreground */
	char *user;	    /* User: the scan account workers run as */
	char *state_dir;    /* StateDirectory (new) */
	char *database_dir; /* DatabaseDirectory */
	char *temp_dir;	    /* TemporaryDirectory; default <StateDirectory>/tmp */

	/* logging */
	char *log_file;	  /* LogFile */
	bool log_time;	  /* LogTime */
	bool log_syslog;  /* LogSyslog */
	int log_facility; /* LogFacility, as LOG_* value */
	bool log_verbose; /* LogVerbose */
	bool log_clean;	  /* LogClean */

	/* workers and queues */
	unsigned int max_threads;	   /* MaxThreads: worker count; default nproc */
	unsigned int max_queue;		   /* MaxQueue: jobs waiting for a worker */
	unsigned int idle_timeout;	   /* IdleTimeout, seconds */
	unsigned int command_read_timeout; /* CommandReadTimeout, seconds */
	unsigned int read_timeout;	   /* ReadTimeout, seconds: idle session, stalled stream */
	unsigned int send_buf_timeout;	   /* SendBufTimeout, milliseconds */
	uint64_t stream_max_length;	   /* StreamMaxLength, bytes */
	unsigned int max_scan_time;	   /* MaxScanTime, milliseconds (clamd unit) */
	unsigned int respawn_interval;	   /* WorkerRespawnInterval (new), ms */
	unsigned int load_timeout;	   /* DatabaseLoadTimeout (new), seconds */
	uint64_t worker_memory_limit;	   /* WorkerMemoryLimit (new), bytes; 0: none */
	bool concurrent_reload;		   /* ConcurrentDatabaseReload */
	unsigned int self_check;	   /* SelfCheck: only 0 (off) is accepted */

	/* faults (new keys) */
	char *fault_event_log;		    /* FaultEventLog; default <StateDirectory>/events.log */
	unsigned int crash_loop_threshold;  /* CrashLoopThreshold: crashes that make fault 6 */
	unsigned int crash_loop_window;	    /* CrashLoopWindow, seconds */
	unsigned int crash_backoff_max;	    /* CrashBackoffMax, seconds */
	unsigned int fault_clear_stable;    /* FaultClearStableSeconds */
	unsigned int poison_threshold;	    /* PoisonThreshold: crashes that poison a file */
	unsigned int health_check_interval; /* HealthCheckInterval, seconds (fault 5) */
	uint64_t memory_limit;		    /* MemoryLimit: engine + workers, bytes; 0: none */
	unsigned int keep_generations;	    /* KeepGenerations: definitions sets kept */
	unsigned int load_retry_interval;   /* LoadRetryInterval: first retry of a failed load, s */

	/* definitions validation (new keys) */
	char *certs_dir;		 /* CertsDirectory: CAs that .sign files chain to */
	bool allow_unsigned;		 /* AllowUnsignedDefinitions */
	bool require_sign;		 /* RequireSignFile */
	unsigned int max_def_entries;	 /* MaxDefinitionEntries */
	char *canary_dir;		 /* CanaryDirectory: files every set must detect */
	char *clean_corpus_dir;		 /* CleanCorpusDirectory: files no set may detect */
	uint64_t validator_memory_limit; /* ValidatorMemoryLimit: test load, bytes; 0 none */
	unsigned int validator_timeout;	 /* ValidatorTimeout, seconds */

	/* updates (freshclam.conf keys) */
	struct config_list database_mirror; /* DatabaseMirror: failover order */
	struct config_list private_mirror;  /* PrivateMirror: tried before DatabaseMirror */
	struct config_list database_name;   /* DatabaseName; empty: main, daily, bytecode */
	unsigned int checks;		    /* Checks per day; 0: no scheduled checks */
	unsigned int connect_timeout;	    /* ConnectTimeout, seconds */
	unsigned int receive_timeout; /* ReceiveTimeout: no progress for this long, s; 0 none */
	unsigned int max_attempts;    /* MaxAttempts: tries per file and mirror */
	bool scripted_updates;	      /* ScriptedUpdates: .cdiff patches when offered */
	char *proxy_server;	      /* HTTPProxyServer */
	unsigned int proxy_port;      /* HTTPProxyPort; 0: the scheme's */
	char *proxy_username;	      /* HTTPProxyUsername */
	char *proxy_password;	      /* HTTPProxyPassword */

	/* on-access scanning */
	struct config_list oa_mount_path;    /* OnAccessMountPath: mounts to watch */
	struct config_list oa_include_path;  /* OnAccessIncludePath: directory trees */
	struct config_list oa_exclude_path;  /* OnAccessExcludePath: trees left alone */
	struct config_list oa_exclude_uname; /* OnAccessExcludeUname */
	struct config_list oa_exclude_uid;   /* OnAccessExcludeUID (numbers) */
	bool oa_exclude_root;		     /* OnAccessExcludeRootUID */
	uint64_t oa_max_file_size;	     /* OnAccessMaxFileSize: larger files are not scanned */
	bool oa_prevention;		     /* OnAccessPrevention: deny what is infected */
	char *oa_fail_policy;		     /* OnAccessFailPolicy: allow or deny */
	unsigned int oa_perm_timeout;	     /* OnAccessPermTimeout, seconds */
	struct config_list oa_exclude_process; /* OnAccessExcludeProcess: executables */
	unsigned int oa_queue_high;	       /* OnAccessQueueHigh: events in flight */
	unsigned int oa_queue_low;	       /* OnAccessQueueLow */
	unsigned int oa_overload_seconds;      /* OverloadSeconds */
	char *oa_quarantine_dir;	       /* OnAccessQuarantineDirectory */
	char *oa_quarantine_action;	       /* OnAccessQuarantineAction: copy or move */

	/* path scanning */
	struct config_list exclude_path; /* ExcludePath (POSIX extended regex) */
	bool follow_dir_symlinks;	 /* FollowDirectorySymlinks */
	bool follow_file_symlinks;	 /* FollowFileSymlinks */
	bool cross_filesystems;		 /* CrossFilesystems */

	/* libclamav limits */
	uint64_t max_scan_size, max_file_size;
	unsigned int max_recursion, max_files;
	uint64_t max_embedded_pe, max_html_normalize, max_html_notags;
	uint64_t max_script_normalize, max_zip_type_rcg;
	unsigned int max_partitions, max_icons_pe, max_rec_hwp3;
	uint64_t pcre_match_limit, pcre_rec_match_limit, pcre_max_file_size;
	unsigned int bytecode_timeout; /* BytecodeTimeout, ms */
	int bytecode_security;	       /* BytecodeSecurity: 0 TrustSigned, 1 Paranoid */

	/* libclamav behaviour switches (clamd names, clamd defaults) */
	bool bytecode, detect_pua, heuristic_alerts, heuristic_scan_precedence;
	bool scan_pe, scan_elf, scan_ole2, scan_pdf, scan_swf, scan_xmldocs, scan_hwp3;
	bool scan_onenote, scan_image, scan_image_fuzzy_hash, scan_mail, scan_partial_messages;
	bool scan_html, scan_archive, phishing_signatures, phishing_scan_urls;
	bool alert_exceeds_max, alert_broken_executables, alert_broken_media;
	bool alert_encrypted, alert_encrypted_archive, alert_encrypted_doc;
	bool alert_ole2_macros, alert_phishing_ssl_mismatch, alert_phishing_cloak;
	bool alert_partition_intersection;
	bool force_to_disk, disable_cache, leave_temporary_files, disable_cert_check;
};

/* config_defaults: fill cfg with built-in defaults (allocating the strings),
 * including the derived TemporaryDirectory. cfg's previous content is
 * overwritten, not freed. Returns 0 or -ENOMEM; cfg is zeroed on error.
 * Free with config_free. */
int config_defaults(struct config *cfg);

/* config_load: defaults, then the file at path applied over them (path NULL:
 * defaults only), then the derived defaults (TemporaryDirectory from
 * StateDirectory). On error returns -errno (file cannot be read), -ENOMEM or
 * -EINVAL (bad content) and writes a one-line message naming the file, the
 * line and the problem into err[CONFIG_ERR_MAX] (err may be NULL); cfg is
 * then freed and zeroed. */
int config_load(struct config *cfg, const char *path, char *err);

/* config_free: release everything config_defaults/config_load allocated.
 * Accepts a zeroed or already freed cfg. */
void config_free(struct config *cfg);

/* config_parse_size: "123", "10K", "25M", "2G" (also lowercase) to bytes.
 * Returns 0 or -EINVAL/-ERANGE. */
int config_parse_size(const char *s, uint64_t *out);

/* config_parse_bool: yes/no, true/false, on/off, 1/0 (any case).
 * Returns 0 or -EINVAL. */
int config_parse_bool(const char *s, bool *out);

#endif
