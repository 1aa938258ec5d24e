/* msgs: message types and payloads between the supervisor, the engine
 * zygote and the scan workers, all carried by common/ipc framing.
 *
 * Every payload is a fixed struct (exact length checked by the dispatch
 * tables) or a bounded NUL-terminated string. */
#ifndef SE_SCANENGINE_MSGS_H
#define SE_SCANENGINE_MSGS_H

#include <stdint.h>

enum msg_type {
	/* supervisor -> zygote */
	MSG_ZY_SPAWN = 0x100, /* id: worker slot; fd: worker's end of its socketpair */
	/* zygote -> supervisor */
	MSG_ZY_READY = 0x180, /* struct msg_engine_info */
	MSG_ZY_FAILED,	      /* struct msg_load_failed */
	MSG_ZY_SPAWNED,	      /* id: slot; struct msg_spawned */
	MSG_ZY_LOG,	      /* struct msg_log */
	/* supervisor -> worker */
	MSG_WK_SCAN = 0x200, /* id: job id; struct msg_scan; fd: the file */
	/* worker -> supervisor */
	MSG_WK_READY = 0x280, /* struct msg_spawned (own pid, sandbox entered) */
	MSG_WK_RESULT,	      /* id: job id; struct msg_result + names/error */
	MSG_WK_LOG,	      /* struct msg_log */
};

/* A worker exits with this status when it cannot work for reasons that
 * are not the file's (its scratch directory vanished): the job it held is
 * retried without counting as an attempt. */
#define WORKER_EXIT_TEMPFAIL 75

struct msg_engine_info {
	uint32_t sigs;	     /* signatures loaded */
	uint32_t db_version; /* highest database version (0: none, plain files) */
	int64_t db_time;     /* its build time, seconds since the epoch */
	uint32_t flevel;     /* functionality level of the linked libclamav */
	uint32_t load_ms;    /* cl_load + cl_engine_compile wall time */
	uint64_t rss_kb;     /* zygote's VmRSS after compile */
	char version[32];    /* libclamav version string */
};

/* Why an engine could not be brought up; the supervisor acts on the class
 * (fault 7): bad definitions are quarantined, memory and other failures
 * are retried with back-off and leave the definitions alone. */
enum load_failure {
	LOAD_FAIL_DEFS = 1,   /* libclamav rejected the definitions, or crashed on them */
	LOAD_FAIL_MEMORY = 2, /* out of memory (ENOMEM, CL_EMEM, the OOM killer) */
	LOAD_FAIL_OTHER = 3,  /* missing or unreadable files, timeouts, ... */
};

struct msg_load_failed {
	uint32_t cls; /* enum load_failure */
	int32_t eno;  /* errno behind it */
	char text[512];
};

struct msg_spawned {
	int32_t pid;
	uint32_t pad;
};

#define MSG_SCAN_ALLMATCH 0x1

struct msg_scan {
	uint32_t flags;
	uint32_t pad;
};

enum msg_verdict {
	VERDICT_CLEAN = 0,
	VERDICT_VIRUS = 1,
	VERDICT_ERROR = 2,
};

#define MSG_RESULT_MAX_NAMES 64

/* Followed by text: for VIRUS, nnames NUL-terminated signature names; for
 * ERROR, one NUL-terminated message. */
struct msg_result {
	uint32_t verdict;
	uint32_t nnames;
	uint64_t scanned_bytes;
	uint64_t scan_us;
};

#define MSG_LOG_TEXT_MAX 1024

struct msg_log {
	uint32_t level; /* enum log_level */
	char text[MSG_LOG_TEXT_MAX];
};

#endif
