/* control_int: what the two halves of the control module share.
 *
 * control.c owns the socket and the connections (reading, framing, output,
 * timeouts); control_cmd.c owns the commands and the requests they start
 * (walks, streams, descriptors as pool jobs). Not for other modules. */
#ifndef SE_SCANENGINE_CONTROL_INT_H
#define SE_SCANENGINE_CONTROL_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/config.h"
#include "common/evloop.h"
#include "scanengine/control.h"
#include "scanengine/pool.h"
#include "scanengine/walk.h"

#define CMD_MAX		    (PATH_MAX + 8) /* clamd's command buffer: longer is dropped */
#define RBUF_SIZE	    (64 * 1024)	   /* also the INSTREAM read granularity */
#define OBUF_MAX	    (16u << 20)	   /* a client this far behind is dropped */
#define SESSION_MAX_PENDING 1024	   /* requests in flight per IDSESSION */
#define STALL_DROP_MS	    10000	   /* replies not accepted for this long: drop */

enum cmd_flags {
	CF_ARG = 0x1,	      /* takes an argument after one separator byte */
	CF_ADMIN = 0x2,	      /* peer must be root or in AdminGroup */
	CF_SESSION = 0x4,     /* allowed inside IDSESSION */
	CF_UNPREFIXED = 0x8,  /* allowed without the z/n prefix */
	CF_STOP_FIRST = 0x10, /* a directory scan stops at the first infected file */
	CF_WORKER = 0x20      /* queues jobs for the workers (waits while the queue is full) */
};

struct conn;
struct req;

struct command {
	const char *name;
	unsigned int flags;
	void (*fn)(struct conn *c, const struct command *cmd, const char *arg, unsigned int seq,
		   char term);
	uint32_t jflags; /* MSG_SCAN_* for the jobs */
	bool parallel;	 /* MULTISCAN: spread the walk over all workers */
};

struct control {
	const struct config *cfg;
	struct evloop *ev;
	struct pool *pool;
	gid_t admin_gid;
	struct control_hooks hooks;
	int lfd;
	struct ev_handler lev;
	bool created_socket;
	bool accepting;
	struct conn *conns;
	unsigned int nconns;
	unsigned int nthrottled;
	struct conn *dirty; /* connections to service in control_flush */
	uint64_t next_conn_id;
	struct walk_exclude *excludes;
	size_t nexcludes;
	struct walk_opts wopts;
	unsigned int max_queue;
	/* requests waiting for room in the pool queue (MaxQueue) */
	struct req *paused_head, *paused_tail;
};

enum rstate {
	RS_CMD,	   /* reading commands */
	RS_FILDES, /* FILDES read; waiting for the byte its descriptor rides on */
	RS_STREAM, /* reading INSTREAM chunks */
	RS_DONE,   /* no more input is processed; close when all is answered */
};

struct conn {
	struct control *ctl;
	struct ev_handler ev;
	uint64_t id;
	struct ucred cred;
	bool admin;

	char *rbuf;
	size_t rlen;
	int rx_fd;	  /* descriptor received and not yet claimed */
	size_t rx_fd_end; /* rbuf offset where the bytes it came with end */

	char *obuf;
	size_t olen, ocap;
	uint64_t out_stuck_ms; /* when unsent output stopped draining */

	enum rstate rstate;
	bool session, ended;
	bool rd_eof;	/* peer shut down its sending side */
	bool throttled; /* stopped reading: MaxQueue or session limit */
	bool dirty;
	bool got_command;
	char term; /* terminator of the last z/n command (a session's framing) */
	unsigned int seq;
	unsigned int pending; /* requests not finished */
	uint64_t accept_ms, last_cmd_ms, last_rx_ms;

	/* FILDES and INSTREAM in progress */
	unsigned int fildes_seq;
	char fildes_term;
	const struct command *fildes_cmd;
	struct req *stream;
	uint32_t chunk_left;
	unsigned char lenbuf[4];
	unsigned int lenhave;

	struct req *reqs;
	struct conn *next, *prev;
	struct conn *dnext, *dprev; /* dirty list */
};

/* One command that produces scan results: a path walk, a stream, an fd. */
struct req {
	struct control *ctl;
	struct conn *conn; /* NULL once the client is gone */
	const struct command *cmd;
	unsigned int seq;
	char term;
	char name[PATH_MAX + 32];
	struct walk *walk;
	int single_fd; /* FILDES/INSTREAM: the one file to scan */
	bool walk_done, stop, is_dir, pumping, paused, finished;
	unsigned int inflight, max_inflight;
	unsigned int found, errors;
	int stream_fd;
	uint64_t stream_len;
	struct item *items;
	struct req *next, *prev; /* in conn->reqs */
	struct req *pnext;	 /* in the paused list */
};

/* One file of a request, as a pool job. */
struct item {
	struct job job;
	struct req *req;
	struct item *next, *prev;
	char path[];
};

/* ---- control.c ---- */

/* ctl_reply_long: one reply of any length (a JSON document), with the
 * session prefix and term like ctl_reply, which bounds a line. */
void ctl_reply_long(struct conn *c, unsigned int seq, char term, const char *text);

/* Write one reply: "<seq>: " inside a session, the text, then the
 * terminator of the command's framing ('\0' for z, '\n' otherwise). */
void ctl_reply(struct conn *c, unsigned int seq, char term, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* ctl_conn_dirty: have control_flush service c (write, maybe close) after
 * this event-loop iteration. NULL is ignored. */
void ctl_conn_dirty(struct conn *c);

/* ctl_conn_can_take_command: whether the command buffered at p (avail
 * bytes) may run: not while c's session is full, nor while the pool queue
 * is full if it needs a worker (the connection is then not read). */
bool ctl_conn_can_take_command(const struct conn *c, const char *p, size_t avail);

/* ---- control_cmd.c ---- */

/* ctl_command_needs_worker: whether command line (framing removed; may be
 * incomplete) names a command that queues jobs for the workers. */
bool ctl_command_needs_worker(const char *line);

/* ctl_run_command: run one complete command line (framing removed);
 * fd_attached: a descriptor came with exactly these bytes. */
void ctl_run_command(struct conn *c, char *line, char term, bool prefixed, bool fd_attached);

/* ctl_fildes_take: the byte after FILDES arrived; scan the descriptor
 * received with it. */
void ctl_fildes_take(struct conn *c);

/* ctl_stream_feed: consume INSTREAM chunk bytes p[len]. Returns the bytes
 * used. */
size_t ctl_stream_feed(struct conn *c, const char *p, size_t len);

/* ctl_req_unlink: take r off c's list of pending requests. */
void ctl_req_unlink(struct conn *c, struct req *r);

/* ctl_req_orphan: r's client went away: stop its walk, withdraw its queued
 * jobs; r is freed when its running jobs are done. */
void ctl_req_orphan(struct req *r);

/* ctl_resume_paused: let requests waiting for room in the pool queue go on
 * while there is room. */
void ctl_resume_paused(struct control *ctl);

#endif
