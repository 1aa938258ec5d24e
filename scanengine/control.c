/* control: the clamd-protocol control socket (see control.h).
 *
 * Behaviour follows clamd 1.4 wherever a client could notice: framing,
 * reply texts, one command per connection outside IDSESSION, the commands
 * allowed unprefixed and inside a session, FILDES' extra byte. Where clamd
 * answers contradictorily (an ERROR line followed by "OK" for the same
 * path, or no answer at all for MULTISCAN of an empty directory) the answer
 * here is the single truthful line; the README lists these. */
#include "scanengine/control.h"
#include "common/log.h"
#include "common/util.h"
#include "scanengine/engine.h"
#include "scanengine/walk.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CMD_MAX		    (PATH_MAX + 8) /* clamd's command buffer: longer is dropped */
#define RBUF_SIZE	    (64 * 1024)	   /* also the INSTREAM read granularity */
#define OBUF_MAX	    (16u << 20)	   /* a client this far behind is dropped */
#define SESSION_MAX_PENDING 1024	   /* requests in flight per IDSESSION */
#define STALL_DROP_MS	    10000	   /* replies not accepted for this long: drop */

enum cmd_flags {
	CF_ARG = 0x1,	     /* takes an argument after one separator byte */
	CF_ADMIN = 0x2,	     /* peer must be root or in AdminGroup */
	CF_SESSION = 0x4,    /* allowed inside IDSESSION */
	CF_UNPREFIXED = 0x8, /* allowed without the z/n prefix */
	CF_STOP_FIRST = 0x10 /* a directory scan stops at the first infected file */
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

static void conn_destroy(struct conn *c);
static void req_pump(struct req *r);

/* ---- output ------------------------------------------------------------ */

static void conn_dirty(struct conn *c)
{
	struct control *ctl;

	if (!c || c->dirty)
		return;
	ctl = c->ctl;
	c->dirty = true;
	c->dprev = NULL;
	c->dnext = ctl->dirty;
	if (ctl->dirty)
		ctl->dirty->dprev = c;
	ctl->dirty = c;
}

static void conn_undirty(struct conn *c)
{
	if (!c->dirty)
		return;
	if (c->dprev)
		c->dprev->dnext = c->dnext;
	else
		c->ctl->dirty = c->dnext;
	if (c->dnext)
		c->dnext->dprev = c->dprev;
	c->dirty = false;
	c->dnext = c->dprev = NULL;
}

static void out_append(struct conn *c, const char *s, size_t len)
{
	if (c->olen + len > c->ocap) {
		size_t cap = c->ocap ? c->ocap : 4096;
		char *n;

		while (cap < c->olen + len)
			cap *= 2;
		n = realloc(c->obuf, cap);
		if (!n) {
			log_error("client %llu: out of memory for replies; dropping it",
				  (unsigned long long)c->id);
			c->rstate = RS_DONE;
			return;
		}
		c->obuf = n;
		c->ocap = cap;
	}
	memcpy(c->obuf + c->olen, s, len);
	c->olen += len;
	conn_dirty(c);
}

/* Write one reply: "<seq>: " inside a session, the text, then the
 * terminator of the command's framing ('\0' for z, '\n' otherwise). */
static void reply(struct conn *c, unsigned int seq, char term, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void reply(struct conn *c, unsigned int seq, char term, const char *fmt, ...)
{
	char line[PATH_MAX + 1024];
	int n = 0, m;
	va_list ap;

	if (!c)
		return;
	if (c->session && seq)
		n = snprintf(line, sizeof(line), "%u: ", seq);
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	n += m;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = term;
	out_append(c, line, (size_t)n);
}

/* Try to write pending output. Returns false when the peer is gone. */
static bool conn_flush(struct conn *c)
{
	size_t off = 0;

	while (off < c->olen) {
		ssize_t n =
			send(c->ev.fd, c->obuf + off, c->olen - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return false;
		}
		off += (size_t)n;
	}
	if (off) {
		memmove(c->obuf, c->obuf + off, c->olen - off);
		c->olen -= off;
		c->out_stuck_ms = 0;
	}
	if (c->olen && !c->out_stuck_ms)
		c->out_stuck_ms = util_now_ms();
	return true;
}

/* ---- requests and jobs ----------------------------------------------- */

static void req_free(struct req *r)
{
	walk_free(r->walk);
	util_close(&r->stream_fd);
	util_close(&r->single_fd);
	free(r);
}

static void paused_remove(struct control *ctl, struct req *r)
{
	struct req *prev = NULL;

	if (!r->paused)
		return;
	for (struct req *q = ctl->paused_head; q; prev = q, q = q->pnext) {
		if (q != r)
			continue;
		if (prev)
			prev->pnext = q->pnext;
		else
			ctl->paused_head = q->pnext;
		if (ctl->paused_tail == q)
			ctl->paused_tail = prev;
		break;
	}
	r->paused = false;
	r->pnext = NULL;
}

static void pause_req(struct req *r)
{
	struct control *ctl = r->ctl;

	if (r->paused)
		return;
	r->paused = true;
	r->pnext = NULL;
	if (ctl->paused_tail)
		ctl->paused_tail->pnext = r;
	else
		ctl->paused_head = r;
	ctl->paused_tail = r;
}

static void conn_unlink_req(struct conn *c, struct req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		c->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->next = r->prev = NULL;
	c->pending--;
}

/* The request has produced everything it will: answer its summary line
 * and release it. */
static void req_finish(struct req *r)
{
	struct conn *c = r->conn;

	r->finished = true;
	paused_remove(r->ctl, r);
	if (c) {
		/* clamd: a directory with nothing to report is "<dir>: OK". */
		if (r->is_dir && !r->found && !r->errors)
			reply(c, r->seq, r->term, "%s: OK", r->name);
		conn_unlink_req(c, r);
		conn_dirty(c);
	}
	req_free(r);
}

static const char *verdict_log_name(const struct req *r)
{
	return r->conn ? "" : " (client gone)";
}

static void item_done(struct job *j, const struct job_result *res)
{
	struct item *it = container_of(j, struct item, job);
	struct req *r = it->req;
	struct conn *c = r->conn;

	if (it->prev)
		it->prev->next = it->next;
	else
		r->items = it->next;
	if (it->next)
		it->next->prev = it->prev;
	r->inflight--;

	switch (res->verdict) {
	case VERDICT_CLEAN:
		if (r->ctl->cfg->log_clean)
			log_info("%s: OK%s", it->path, verdict_log_name(r));
		if (!r->is_dir)
			reply(c, r->seq, r->term, "%s: OK", it->path);
		break;
	case VERDICT_VIRUS:
		r->found++;
		for (unsigned int i = 0; i < res->nnames; i++) {
			log_info("%s: %s FOUND%s", it->path, res->names[i], verdict_log_name(r));
			reply(c, r->seq, r->term, "%s: %s FOUND", it->path, res->names[i]);
		}
		if (r->cmd->flags & CF_STOP_FIRST)
			r->stop = true;
		break;
	default:
		r->errors++;
		log_info("%s: %s ERROR%s", it->path, res->error ? res->error : "",
			 verdict_log_name(r));
		reply(c, r->seq, r->term, "%s: %s ERROR", it->path, res->error ? res->error : "");
		break;
	}
	free(it);
	if (!r->pumping)
		req_pump(r); /* may free r */
}

static void req_submit(struct req *r, int fd, const char *path)
{
	size_t len = strlen(path);
	struct item *it = calloc(1, sizeof(*it) + len + 1);

	if (!it) {
		close(fd);
		r->errors++;
		reply(r->conn, r->seq, r->term, "%s: Can't allocate memory ERROR", path);
		return;
	}
	memcpy(it->path, path, len + 1);
	it->req = r;
	it->job.fd = fd;
	it->job.flags = r->cmd->jflags;
	it->job.label = it->path;
	it->job.done = item_done;
	it->job.owner = it;
	it->next = r->items;
	if (r->items)
		r->items->prev = it;
	r->items = it;
	r->inflight++;
	pool_submit(r->ctl->pool, &it->job);
}

static void walk_error_line(struct req *r, const char *path, int err)
{
	r->errors++;
	switch (err) {
	case EACCES:
	case EPERM:
		reply(r->conn, r->seq, r->term, "%s: Access denied. ERROR", path);
		break;
	case EINVAL:
		reply(r->conn, r->seq, r->term, "%s: Not supported file type ERROR", path);
		break;
	default:
		reply(r->conn, r->seq, r->term, "%s: File path check failure: %s. ERROR", path,
		      strerror(err));
		break;
	}
}

static void walk_excluded_line(struct req *r, const struct walk_entry *e, bool top)
{
	/* MULTISCAN skips excluded entries silently, as clamd does. */
	if (r->cmd->parallel && !top)
		return;
	switch (e->err) {
	case EXDEV:
		reply(r->conn, r->seq, r->term, "%s: Excluded (another filesystem)", e->path);
		break;
	case ELOOP:
		reply(r->conn, r->seq, r->term, "%s: Excluded (symbolic link not followed)",
		      e->path);
		break;
	default:
		reply(r->conn, r->seq, r->term, "%s: Excluded", e->path);
		break;
	}
}

/* Feed the request's file(s) into the pool while it has room; finish it
 * when nothing is left. Every path into a request ends here. */
static void req_pump(struct req *r)
{
	struct control *ctl = r->ctl;

	r->pumping = true;
	if (r->single_fd >= 0 && !r->stop) {
		int fd = r->single_fd;

		r->single_fd = -1;
		req_submit(r, fd, r->name);
	}
	while (r->walk && !r->walk_done && !r->stop && r->inflight < r->max_inflight) {
		struct walk_entry e;

		if (pool_queued(ctl->pool) >= ctl->max_queue) {
			pause_req(r);
			break;
		}
		if (walk_next(r->walk, &e) < 0) {
			r->errors++;
			reply(r->conn, r->seq, r->term, "%s: Can't allocate memory ERROR", r->name);
			r->walk_done = true;
			break;
		}
		switch (e.kind) {
		case WALK_DONE:
			r->walk_done = true;
			break;
		case WALK_FILE:
			req_submit(r, e.fd, e.path);
			break;
		case WALK_EXCLUDED:
			walk_excluded_line(r, &e, !strcmp(e.path, r->name));
			break;
		case WALK_ERROR:
			walk_error_line(r, e.path, e.err);
			break;
		}
	}
	r->pumping = false;
	if (!r->inflight && !r->paused && (r->stop || !r->walk || r->walk_done))
		req_finish(r);
}

static void resume_paused(struct control *ctl)
{
	while (ctl->paused_head && pool_queued(ctl->pool) < ctl->max_queue) {
		struct req *r = ctl->paused_head;

		ctl->paused_head = r->pnext;
		if (!ctl->paused_head)
			ctl->paused_tail = NULL;
		r->paused = false;
		r->pnext = NULL;
		req_pump(r);
	}
}

static struct req *req_new(struct conn *c, const struct command *cmd, unsigned int seq, char term)
{
	struct req *r = calloc(1, sizeof(*r));

	if (!r) {
		reply(c, seq, term, "Can't allocate memory ERROR");
		c->rstate = RS_DONE;
		return NULL;
	}
	r->ctl = c->ctl;
	r->conn = c;
	r->cmd = cmd;
	r->seq = seq;
	r->term = term;
	r->stream_fd = -1;
	r->single_fd = -1;
	r->max_inflight = 1;
	r->next = c->reqs;
	if (c->reqs)
		c->reqs->prev = r;
	c->reqs = r;
	c->pending++;
	return r;
}

/* The client went away: stop the walk, withdraw queued jobs, let running
 * ones finish into the void. */
static void req_orphan(struct req *r)
{
	r->conn = NULL;
	r->stop = true;
	paused_remove(r->ctl, r);
	r->pumping = true; /* cancelled jobs must not re-enter the pump */
	for (struct item *it = r->items, *next; it; it = next) {
		next = it->next;
		pool_cancel(r->ctl->pool, &it->job);
	}
	r->pumping = false;
	if (!r->inflight)
		req_finish(r);
}

/* ---- commands ---------------------------------------------------------- */

static void version_string(struct control *ctl, char *buf, size_t len)
{
	const struct msg_engine_info *info = pool_engine_info(ctl->pool);

	if (info && info->db_version) {
		char ts[64];
		time_t t = (time_t)info->db_time;
		struct tm tm;

		/* ctime() layout, as clamd prints it */
		localtime_r(&t, &tm);
		strftime(ts, sizeof(ts), "%a %b %e %H:%M:%S %Y", &tm);
		snprintf(buf, len, "ClamAV %s/%u/%s", info->version, info->db_version, ts);
	} else {
		snprintf(buf, len, "ClamAV %s", engine_version());
	}
}

static void cmd_ping(struct conn *c, const struct command *cmd, const char *arg, unsigned int seq,
		     char term)
{
	(void)cmd;
	(void)arg;
	reply(c, seq, term, "PONG");
}

static void cmd_version(struct conn *c, const struct command *cmd, const char *arg,
			unsigned int seq, char term)
{
	char v[160];

	(void)cmd;
	(void)arg;
	version_string(c->ctl, v, sizeof(v));
	reply(c, seq, term, "%s", v);
}

static const struct command commands[];

static void cmd_versioncommands(struct conn *c, const struct command *cmd, const char *arg,
				unsigned int seq, char term)
{
	char v[160], list[512] = "";
	size_t n = 0;

	(void)cmd;
	(void)arg;
	version_string(c->ctl, v, sizeof(v));
	for (const struct command *k = commands; k->name && n < sizeof(list); k++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, " %s", k->name);
	reply(c, seq, term, "%s| COMMANDS:%s", v, list);
}

static void cmd_reload(struct conn *c, const struct command *cmd, const char *arg, unsigned int seq,
		       char term)
{
	(void)cmd;
	(void)arg;
	reply(c, seq, term, "RELOADING");
	if (c->ctl->hooks.reload)
		c->ctl->hooks.reload(c->ctl->hooks.arg);
}

static void cmd_shutdown(struct conn *c, const struct command *cmd, const char *arg,
			 unsigned int seq, char term)
{
	(void)cmd;
	(void)arg;
	(void)seq;
	(void)term;
	if (c->ctl->hooks.shutdown)
		c->ctl->hooks.shutdown(c->ctl->hooks.arg);
}

/* DETSTATS and DETSTATSCLEAR: removed from clamd long ago; it closes
 * without a reply, and so do we. */
static void cmd_silent(struct conn *c, const struct command *cmd, const char *arg, unsigned int seq,
		       char term)
{
	(void)c;
	(void)cmd;
	(void)arg;
	(void)seq;
	(void)term;
}

static void cmd_stats(struct conn *c, const struct command *cmd, const char *arg, unsigned int seq,
		      char term)
{
	const struct msg_engine_info *info = pool_engine_info(c->ctl->pool);
	double mib = info ? (double)info->rss_kb / 1024.0 : 0.0;
	char pool_lines[256];

	(void)cmd;
	(void)arg;
	pool_stats_text(c->ctl->pool, pool_lines, sizeof(pool_lines));
	reply(c, seq, term,
	      "POOLS: 1\n\nSTATE: VALID PRIMARY\n%s\tSTATS 0.000000 \n\n"
	      "MEMSTATS: heap N/A mmap N/A used N/A free N/A releasable N/A pools 1 "
	      "pools_used %.3fM pools_total %.3fM\nEND",
	      pool_lines, mib, mib);
}

static void cmd_status(struct conn *c, const struct command *cmd, const char *arg, unsigned int seq,
		       char term)
{
	struct json_object *o = json_object_new_object();

	(void)cmd;
	(void)arg;
	if (c->ctl->hooks.status)
		c->ctl->hooks.status(c->ctl->hooks.arg, o);
	reply(c, seq, term, "%s", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

static void cmd_idsession(struct conn *c, const struct command *cmd, const char *arg,
			  unsigned int seq, char term)
{
	(void)cmd;
	(void)arg;
	(void)seq;
	(void)term;
	c->session = true;
	c->seq = 0;
}

static void cmd_end(struct conn *c, const struct command *cmd, const char *arg, unsigned int seq,
		    char term)
{
	(void)cmd;
	(void)arg;
	(void)seq;
	(void)term;
	c->ended = true; /* close once every pending reply is out */
	c->rstate = RS_DONE;
}

static void cmd_scan_path(struct conn *c, const struct command *cmd, const char *arg,
			  unsigned int seq, char term)
{
	struct req *r;

	if (arg[0] && arg[0] != '/') {
		/* the daemon's working directory means nothing to a client */
		reply(c, seq, term,
		      "%s: File path check failure: Relative paths are not supported. ERROR", arg);
		return;
	}
	r = req_new(c, cmd, seq, term);
	if (!r)
		return;
	util_strlcpy(r->name, arg, sizeof(r->name));
	/* clamd echoes the path as given, trailing slashes trimmed */
	for (size_t n = strlen(r->name); n > 1 && r->name[n - 1] == '/'; n--)
		r->name[n - 1] = '\0';
	r->walk = walk_new(arg, &c->ctl->wopts);
	if (!r->walk) {
		reply(c, seq, term, "%s: Can't allocate memory ERROR", arg);
		r->errors++;
		r->walk_done = true;
	} else {
		r->is_dir = walk_is_dir(r->walk);
	}
	if (cmd->parallel)
		r->max_inflight = c->ctl->cfg->max_threads * 2;
	req_pump(r);
}

static void cmd_fildes(struct conn *c, const struct command *cmd, const char *arg, unsigned int seq,
		       char term)
{
	(void)arg;
	c->rstate = RS_FILDES;
	c->fildes_cmd = cmd;
	c->fildes_seq = seq;
	c->fildes_term = term;
}

/* The byte after FILDES has arrived: its descriptor is the one to scan. */
static void fildes_take(struct conn *c)
{
	unsigned int seq = c->fildes_seq;
	char term = c->fildes_term;
	struct stat st;
	struct req *r;
	int fd = c->rx_fd;

	c->rstate = c->session ? RS_CMD : RS_DONE;
	c->rx_fd = -1;
	if (fd < 0) {
		reply(c, seq, term, "No file descriptor received. ERROR");
		c->rstate = RS_DONE;
		return;
	}
	r = req_new(c, c->fildes_cmd, seq, term);
	if (!r) {
		close(fd);
		return;
	}
	snprintf(r->name, sizeof(r->name), "fd[%d]", fd);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		reply(c, seq, term, "%s: Not a regular file ERROR", r->name);
		r->errors++;
		close(fd);
	} else {
		r->single_fd = fd;
	}
	req_pump(r);
}

static void cmd_instream(struct conn *c, const struct command *cmd, const char *arg,
			 unsigned int seq, char term)
{
	struct req *r;

	(void)arg;
	r = req_new(c, cmd, seq, term);
	if (!r)
		return;
	util_strlcpy(r->name, "stream", sizeof(r->name));
	r->stream_fd = memfd_create("scanengine-instream", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (r->stream_fd < 0) {
		reply(c, seq, term, "stream: Error writing to temporary file ERROR");
		r->errors++;
		c->rstate = RS_DONE;
		req_pump(r);
		return;
	}
	c->stream = r;
	c->rstate = RS_STREAM;
	c->lenhave = 0;
	c->chunk_left = 0;
}

/* The stream is complete: seal it so the worker sees exactly what the
 * client sent, and scan it. */
static void stream_complete(struct conn *c)
{
	struct req *r = c->stream;

	c->stream = NULL;
	c->rstate = c->session ? RS_CMD : RS_DONE;
	fcntl(r->stream_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
	r->single_fd = r->stream_fd;
	r->stream_fd = -1;
	req_pump(r);
}

static void stream_abort(struct conn *c, const char *msg)
{
	struct req *r = c->stream;

	c->stream = NULL;
	c->rstate = RS_DONE;
	r->errors++;
	reply(c, r->seq, r->term, "%s", msg);
	req_pump(r);
}

/* Consume INSTREAM chunks. Returns the bytes used. */
static size_t stream_feed(struct conn *c, const char *p, size_t len)
{
	struct req *r = c->stream;
	size_t used = 0;

	while (used < len && c->rstate == RS_STREAM) {
		if (c->chunk_left == 0) {
			uint32_t n;

			while (c->lenhave < 4 && used < len)
				c->lenbuf[c->lenhave++] = (unsigned char)p[used++];
			if (c->lenhave < 4)
				break;
			c->lenhave = 0;
			n = (uint32_t)c->lenbuf[0] << 24 | (uint32_t)c->lenbuf[1] << 16 |
			    (uint32_t)c->lenbuf[2] << 8 | c->lenbuf[3];
			if (n == 0) {
				stream_complete(c);
				break;
			}
			/* The quota is cumulative and checked before the data
			 * is read, so a huge length fails at once. */
			if (r->stream_len + n > c->ctl->cfg->stream_max_length) {
				log_info("client %llu: INSTREAM over StreamMaxLength (%llu bytes)",
					 (unsigned long long)c->id,
					 (unsigned long long)c->ctl->cfg->stream_max_length);
				stream_abort(c, "INSTREAM size limit exceeded. ERROR");
				break;
			}
			c->chunk_left = n;
			continue;
		}
		size_t take = SE_MIN((size_t)c->chunk_left, len - used);

		if (util_write_all(r->stream_fd, p + used, take) < 0) {
			stream_abort(c, "stream: Error writing to temporary file ERROR");
			break;
		}
		used += take;
		c->chunk_left -= (uint32_t)take;
		r->stream_len += take;
	}
	return used;
}

/* In clamd's order: VERSIONCOMMANDS lists them as they stand here. */
static const struct command commands[] = {
	{"SCAN", CF_ARG | CF_SESSION | CF_UNPREFIXED | CF_STOP_FIRST, cmd_scan_path},
	{"QUIT", CF_ADMIN | CF_UNPREFIXED, cmd_shutdown},
	{"RELOAD", CF_ADMIN | CF_UNPREFIXED, cmd_reload},
	{"PING", CF_SESSION | CF_UNPREFIXED, cmd_ping},
	{"CONTSCAN", CF_ARG | CF_UNPREFIXED, cmd_scan_path},
	{"VERSIONCOMMANDS", CF_SESSION, cmd_versioncommands},
	{"VERSION", CF_SESSION | CF_UNPREFIXED, cmd_version},
	{"END", CF_SESSION, cmd_end},
	{"SHUTDOWN", CF_ADMIN | CF_UNPREFIXED, cmd_shutdown},
	{"MULTISCAN", CF_ARG | CF_UNPREFIXED, cmd_scan_path, 0, true},
	{"FILDES", CF_SESSION | CF_UNPREFIXED, cmd_fildes},
	{"STATS", CF_SESSION, cmd_stats},
	{"IDSESSION", 0, cmd_idsession},
	{"INSTREAM", CF_SESSION, cmd_instream},
	{"DETSTATSCLEAR", CF_UNPREFIXED, cmd_silent},
	{"DETSTATS", CF_UNPREFIXED, cmd_silent},
	{"ALLMATCHSCAN", CF_ARG | CF_STOP_FIRST, cmd_scan_path, MSG_SCAN_ALLMATCH},
	/* scanengine admin extensions */
	{"STATUS", CF_ADMIN, cmd_status},
	{0},
};

/* clamd matches names as prefixes in table order; a command with an
 * argument skips exactly one byte after its name, whatever it is. */
static const struct command *find_command(const char *line, const char **arg)
{
	for (const struct command *k = commands; k->name; k++) {
		size_t n = strlen(k->name);

		if (strncmp(line, k->name, n))
			continue;
		if (k->flags & CF_ARG) {
			if (!line[n])
				continue;
			*arg = line + n + 1;
			return k;
		}
		if (line[n])
			continue;
		*arg = "";
		return k;
	}
	return NULL;
}

/* Run one complete command line (framing prefix removed). fd_attached: a
 * descriptor came with exactly these bytes. */
static void run_command(struct conn *c, char *line, char term, bool prefixed, bool fd_attached)
{
	const struct command *k;
	const char *arg = "";
	unsigned int seq = 0;

	c->got_command = true;
	c->last_cmd_ms = util_now_ms();
	k = find_command(line, &arg);
	if (prefixed)
		c->term = term;
	if (c->session) {
		seq = ++c->seq;
		if (!prefixed) {
			/* clamd answers in the session's framing, not the
			 * unprefixed command's, and adds its generic line */
			reply(c, seq, c->term,
			      "Only nCMDS\\n and zCMDS\\0 are accepted inside IDSESSION. ERROR");
			reply(c, seq, c->term, "Error processing command. ERROR");
			c->rstate = RS_DONE;
			return;
		}
		if (!k || !(k->flags & CF_SESSION)) {
			reply(c, seq, term, "Command invalid inside IDSESSION. ERROR");
			c->rstate = RS_DONE;
			return;
		}
	} else if (!k || (!prefixed && !(k->flags & CF_UNPREFIXED)) || k->fn == cmd_end) {
		log_debug("client %llu (uid %d): unknown command '%.64s'",
			  (unsigned long long)c->id, (int)c->cred.uid, line);
		reply(c, seq, term, "UNKNOWN COMMAND");
		c->rstate = RS_DONE;
		return;
	}
	if ((k->flags & CF_ADMIN) && !c->admin) {
		log_warn("refused %s from uid %d pid %d: requires root or AdminGroup", k->name,
			 (int)c->cred.uid, (int)c->cred.pid);
		reply(c, seq, term, "%s: Permission denied (root or AdminGroup required). ERROR",
		      k->name);
		c->rstate = RS_DONE;
		return;
	}
	log_debug("client %llu: %s%s%s", (unsigned long long)c->id, k->name, *arg ? " " : "", arg);
	if (fd_attached && k->fn != cmd_instream) {
		/* A descriptor must ride on the byte after FILDES, never on a
		 * command's own bytes (INSTREAM: clamd ignores it). clamd
		 * notices the stray one after running the command (FILDES:
		 * instead of it): in a session the complaint carries the next
		 * id; outside one it is only heard while work is pending. */
		util_close(&c->rx_fd);
		if (k->fn != cmd_fildes) {
			k->fn(c, k, arg, seq, term);
			if (c->session)
				seq = ++c->seq;
		}
		if (c->session || c->pending || k->fn == cmd_fildes) {
			reply(c, seq, term,
			      "PROTOCOL ERROR: ancillary data sent without FILDES. ERROR");
			/* clamd's generic follow-up (in a session: FILDES only) */
			if (!c->session || k->fn == cmd_fildes)
				reply(c, seq, term, "Error processing command. ERROR");
		}
		c->rstate = RS_DONE;
		return;
	}
	k->fn(c, k, arg, seq, term);
	/* Outside a session, one command per connection, as clamd. */
	if (!c->session && c->rstate == RS_CMD)
		c->rstate = RS_DONE;
}

static bool conn_can_take_command(const struct conn *c)
{
	if (c->session && c->pending >= SESSION_MAX_PENDING)
		return false;
	return pool_queued(c->ctl->pool) < c->ctl->max_queue;
}

/* Find the end of the command starting at p: z is NUL-terminated, n is
 * LF-terminated, an unprefixed command ends at LF or NUL (clamd reads it
 * as a C string). */
static char *command_end(char *p, size_t avail, bool *prefixed, char *term)
{
	char *nl, *nul;

	*prefixed = p[0] == 'z' || p[0] == 'n';
	*term = p[0] == 'z' ? '\0' : '\n';
	if (*prefixed)
		return memchr(p, *term, avail);
	nl = memchr(p, '\n', avail);
	nul = memchr(p, '\0', avail);
	if (nl && nul)
		return nl < nul ? nl : nul;
	return nl ? nl : nul;
}

/* Parse and run buffered input while allowed. */
static void conn_process(struct conn *c)
{
	size_t off = 0;

	while (off < c->rlen && c->rstate != RS_DONE) {
		char *p = c->rbuf + off;
		size_t avail = c->rlen - off;
		bool prefixed;
		char term, *end, *line;

		if (c->rstate == RS_STREAM) {
			size_t used = stream_feed(c, p, avail);

			off += used;
			if (!used)
				break;
			continue;
		}
		if (c->rstate == RS_FILDES) {
			off++; /* the byte the descriptor rides on */
			fildes_take(c);
			continue;
		}
		if (!conn_can_take_command(c))
			break;
		end = command_end(p, avail, &prefixed, &term);
		if (!prefixed) {
			/* clamd takes one read as one command, cut to its
			 * buffer's size, whether or not a terminator came */
			if (!end || end - p > CMD_MAX)
				end = p + SE_MIN(avail, (size_t)CMD_MAX);
		} else if (end ? (size_t)(end - p) >= CMD_MAX : avail >= CMD_MAX) {
			/* clamd's buffer holds CMD_MAX bytes, prefix and
			 * terminator included; longer is dropped unanswered */
			log_info("client %llu: command longer than %d bytes; closing",
				 (unsigned long long)c->id, CMD_MAX);
			c->rstate = RS_DONE;
			break;
		} else if (!end) {
			break;
		}
		*end = '\0';
		line = prefixed ? p + 1 : p;
		/* n and unprefixed commands: trailing CR/LF chomped */
		if (term == '\n')
			for (char *q = end - 1; q >= line && (*q == '\r' || *q == '\n'); q--)
				*q = '\0';
		/* the terminator is consumed too, unless the command simply
		 * ended with the client's data */
		off += (size_t)(end - p) + (end < p + avail);
		run_command(c, line, term, prefixed, c->rx_fd >= 0 && c->rx_fd_end == off);
	}
	if (off) {
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
		if (c->rx_fd >= 0) {
			/* Its bytes are consumed and nothing claimed it: a
			 * descriptor without FILDES is not kept around. */
			if (c->rx_fd_end <= off && c->rstate != RS_FILDES)
				util_close(&c->rx_fd);
			else
				c->rx_fd_end = c->rx_fd_end > off ? c->rx_fd_end - off : 0;
		}
	}
	if (c->rstate == RS_DONE)
		util_close(&c->rx_fd);
}

/* ---- connections ------------------------------------------------------- */

static bool conn_wants_input(const struct conn *c)
{
	if (c->rstate == RS_DONE || c->rd_eof || c->rlen >= RBUF_SIZE)
		return false;
	if (c->rstate == RS_CMD && c->rlen && !conn_can_take_command(c))
		return false;
	return true;
}

/* Process what can be processed, write what can be written, wait for the
 * right events, and close when everything is said and done. */
static void conn_service(struct conn *c)
{
	struct control *ctl = c->ctl;
	uint32_t ev = 0;
	bool throttled;

	conn_undirty(c);
	if (c->rlen && c->rstate != RS_DONE)
		conn_process(c);
	conn_undirty(c); /* processing may have marked it again */
	if (!conn_flush(c)) {
		conn_destroy(c);
		return;
	}
	if (c->olen > OBUF_MAX) {
		log_warn("client %llu is not reading its replies; dropping it",
			 (unsigned long long)c->id);
		conn_destroy(c);
		return;
	}
	if (c->rd_eof && c->stream) {
		/* hung up in the middle of a stream: nobody to answer */
		struct req *r = c->stream;

		c->stream = NULL;
		c->rstate = RS_DONE;
		r->conn = NULL;
		conn_unlink_req(c, r);
		req_orphan(r);
	}
	if ((c->rstate == RS_DONE || c->rd_eof) && !c->pending && !c->olen) {
		conn_destroy(c);
		return;
	}
	if (conn_wants_input(c))
		ev |= EPOLLIN | EPOLLRDHUP;
	throttled = c->rstate == RS_CMD && !c->rd_eof && c->rlen && !conn_can_take_command(c);
	if (throttled != c->throttled) {
		c->throttled = throttled;
		if (throttled)
			ctl->nthrottled++;
		else
			ctl->nthrottled--;
	}
	if (c->olen)
		ev |= EPOLLOUT;
	evloop_mod(ctl->ev, &c->ev, ev);
}

static void conn_read(struct conn *c)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} cm;
	struct iovec iov = {.iov_base = c->rbuf + c->rlen, .iov_len = RBUF_SIZE - c->rlen};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cm.buf,
			    .msg_controllen = sizeof(cm.buf)};
	int got[8], ngot = 0;
	ssize_t n;

	if (!iov.iov_len)
		return;
	n = recvmsg(c->ev.fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			c->rd_eof = true;
		return;
	}
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		size_t cnt = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		for (size_t i = 0; i < cnt; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
			if (ngot < 8)
				got[ngot++] = fd;
			else
				close(fd);
		}
	}
	if (mh.msg_flags & MSG_CTRUNC)
		log_warn("client %llu sent too many descriptors", (unsigned long long)c->id);
	if (ngot) {
		/* One descriptor per message; a later one replaces an
		 * unclaimed one, and several at once are refused (clamd). */
		util_close(&c->rx_fd);
		if (ngot == 1) {
			c->rx_fd = got[0];
			c->rx_fd_end = c->rlen + (size_t)(n > 0 ? n : 0);
		} else {
			for (int i = 0; i < ngot; i++)
				close(got[i]);
		}
	}
	if (n == 0) {
		c->rd_eof = true;
		return;
	}
	c->rlen += (size_t)n;
	c->last_rx_ms = util_now_ms();
}

static void conn_event(struct ev_handler *h, uint32_t revents)
{
	struct conn *c = container_of(h, struct conn, ev);

	if (revents & (EPOLLHUP | EPOLLERR)) {
		/* Both directions are gone: run what was sent (a RELOAD or
		 * SHUTDOWN still counts), but nobody will read replies. */
		while (conn_wants_input(c) && !c->rd_eof) {
			size_t before = c->rlen;

			conn_read(c);
			if (c->rlen == before)
				break;
			conn_process(c);
		}
		conn_process(c);
		conn_destroy(c);
		return;
	}
	if ((revents & (EPOLLIN | EPOLLRDHUP)) && conn_wants_input(c))
		conn_read(c);
	conn_service(c);
}

static void conn_destroy(struct conn *c)
{
	struct control *ctl = c->ctl;

	conn_undirty(c);
	if (c->throttled)
		ctl->nthrottled--;
	evloop_del(ctl->ev, &c->ev);
	util_close(&c->ev.fd);
	util_close(&c->rx_fd);
	c->stream = NULL;
	while (c->reqs) {
		struct req *r = c->reqs;

		conn_unlink_req(c, r);
		req_orphan(r);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		ctl->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ctl->nconns--;
	free(c->rbuf);
	free(c->obuf);
	free(c);
}

/* A read timeout: clamd's one message, always LF-terminated, no session
 * id; pending answers of the session are abandoned. */
static void conn_timeout(struct conn *c)
{
	out_append(c, "COMMAND READ TIMED OUT\n", 23);
	c->rstate = RS_DONE;
	c->stream = NULL;
	while (c->reqs) {
		struct req *r = c->reqs;

		conn_unlink_req(c, r);
		req_orphan(r);
	}
	conn_dirty(c);
}

static bool peer_is_admin(struct control *ctl, int fd, const struct ucred *cr)
{
	gid_t groups[256];
	socklen_t len = sizeof(groups);

	if (cr->uid == 0)
		return true;
	if (ctl->admin_gid == (gid_t)-1)
		return false;
	if (cr->gid == ctl->admin_gid)
		return true;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
		for (size_t i = 0; i < len / sizeof(gid_t); i++)
			if (groups[i] == ctl->admin_gid)
				return true;
	return false;
}

static void accept_event(struct ev_handler *h, uint32_t revents)
{
	struct control *ctl = container_of(h, struct control, lev);

	(void)revents;
	for (int i = 0; i < 64; i++) {
		socklen_t len = sizeof(struct ucred);
		struct conn *c;
		int fd = accept4(ctl->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				log_error("cannot accept a client: %s", strerror(errno));
			return;
		}
		c = calloc(1, sizeof(*c));
		if (c)
			c->rbuf = malloc(RBUF_SIZE + 1); /* + a command's NUL */
		if (!c || !c->rbuf) {
			free(c);
			close(fd);
			log_error("cannot accept a client: out of memory");
			return;
		}
		c->ctl = ctl;
		c->ev.fd = fd;
		c->ev.cb = conn_event;
		c->rx_fd = -1;
		c->id = ++ctl->next_conn_id;
		c->accept_ms = c->last_rx_ms = c->last_cmd_ms = util_now_ms();
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) < 0) {
			c->cred.uid = (uid_t)-1;
			c->cred.gid = (gid_t)-1;
		}
		c->admin = peer_is_admin(ctl, fd, &c->cred);
		c->next = ctl->conns;
		if (ctl->conns)
			ctl->conns->prev = c;
		ctl->conns = c;
		ctl->nconns++;
		if (evloop_add(ctl->ev, &c->ev, EPOLLIN | EPOLLRDHUP) < 0)
			conn_destroy(c);
	}
}

/* ---- public -------------------------------------------------------------- */

struct control *control_new(const struct config *cfg, struct evloop *ev, struct pool *pool,
			    gid_t admin_gid, const struct control_hooks *hooks)
{
	struct control *ctl = calloc(1, sizeof(*ctl));
	char err[256];

	if (!ctl)
		return NULL;
	ctl->cfg = cfg;
	ctl->ev = ev;
	ctl->pool = pool;
	ctl->admin_gid = admin_gid;
	ctl->lfd = -1;
	if (hooks)
		ctl->hooks = *hooks;
	/* clamd raises MaxQueue to at least twice the number of threads */
	ctl->max_queue = SE_MAX(cfg->max_queue, cfg->max_threads * 2);
	if (cfg->exclude_path.n) {
		ctl->excludes = calloc(cfg->exclude_path.n, sizeof(*ctl->excludes));
		if (!ctl->excludes) {
			free(ctl);
			return NULL;
		}
		for (size_t i = 0; i < cfg->exclude_path.n; i++)
			if (walk_exclude_compile(cfg->exclude_path.items[i],
						 &ctl->excludes[ctl->nexcludes], err,
						 sizeof(err)) == 0)
				ctl->nexcludes++;
			else
				log_error("ExcludePath %s: %s", cfg->exclude_path.items[i], err);
	}
	ctl->wopts.follow_dir_symlinks = cfg->follow_dir_symlinks;
	ctl->wopts.follow_file_symlinks = cfg->follow_file_symlinks;
	ctl->wopts.cross_filesystems = cfg->cross_filesystems;
	ctl->wopts.excludes = ctl->excludes;
	ctl->wopts.nexcludes = ctl->nexcludes;
	return ctl;
}

int control_listen(struct control *ctl, char *err)
{
	const struct config *cfg = ctl->cfg;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	char dir[sizeof(sa.sun_path)];
	char *slash;
	int fd, r;

	if (strlen(cfg->local_socket) >= sizeof(sa.sun_path)) {
		snprintf(err, 512, "LocalSocket %s: path too long (max %zu bytes)",
			 cfg->local_socket, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	util_strlcpy(sa.sun_path, cfg->local_socket, sizeof(sa.sun_path));
	util_strlcpy(dir, cfg->local_socket, sizeof(dir));
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		r = util_mkdir_p(dir, 0755);
		if (r < 0) {
			snprintf(err, 512, "LocalSocket directory %s: %s", dir, strerror(-r));
			return r;
		}
	}
	if (lstat(cfg->local_socket, &st) == 0) {
		int probe;

		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, 512, "LocalSocket %s exists and is not a socket",
				 cfg->local_socket);
			return -EEXIST;
		}
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			snprintf(err, 512, "LocalSocket %s is in use by another process",
				 cfg->local_socket);
			return -EADDRINUSE;
		}
		util_close(&probe);
		if (!cfg->fix_stale_socket) {
			snprintf(err, 512,
				 "LocalSocket %s exists (stale; FixStaleSocket yes replaces it)",
				 cfg->local_socket);
			return -EEXIST;
		}
		log_info("removing stale socket %s", cfg->local_socket);
		unlink(cfg->local_socket);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, 512, "LocalSocket: socket: %s", strerror(errno));
		return -errno;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		snprintf(err, 512, "LocalSocket %s: bind: %s", cfg->local_socket, strerror(-r));
		close(fd);
		return r;
	}
	ctl->created_socket = true;
	if (chmod(cfg->local_socket, cfg->local_socket_mode) < 0) {
		snprintf(err, 512, "LocalSocket %s: chmod: %s", cfg->local_socket, strerror(errno));
		goto err_unlink;
	}
	if (cfg->local_socket_group) {
		struct group *gr = getgrnam(cfg->local_socket_group);

		if (!gr) {
			snprintf(err, 512, "LocalSocketGroup %s: no such group",
				 cfg->local_socket_group);
			goto err_unlink;
		}
		if (chown(cfg->local_socket, (uid_t)-1, gr->gr_gid) < 0) {
			snprintf(err, 512, "LocalSocket %s: chown: %s", cfg->local_socket,
				 strerror(errno));
			goto err_unlink;
		}
	}
	if (listen(fd, (int)cfg->max_conn_queue) < 0) {
		snprintf(err, 512, "LocalSocket %s: listen: %s", cfg->local_socket,
			 strerror(errno));
		goto err_unlink;
	}
	ctl->lfd = fd;
	ctl->lev.fd = fd;
	ctl->lev.cb = accept_event;
	return 0;

err_unlink:
	close(fd);
	unlink(cfg->local_socket);
	ctl->created_socket = false;
	return -EINVAL;
}

void control_start(struct control *ctl)
{
	if (ctl->lfd < 0 || ctl->accepting)
		return;
	if (evloop_add(ctl->ev, &ctl->lev, EPOLLIN) == 0)
		ctl->accepting = true;
}

void control_tick(struct control *ctl)
{
	uint64_t now = util_now_ms();
	const struct config *cfg = ctl->cfg;

	for (struct conn *c = ctl->conns; c; c = c->next) {
		if (c->olen && c->out_stuck_ms && now - c->out_stuck_ms > STALL_DROP_MS) {
			log_warn("client %llu has not accepted replies for %d s; dropping it",
				 (unsigned long long)c->id, STALL_DROP_MS / 1000);
			c->rstate = RS_DONE;
			c->rd_eof = true;
			c->olen = 0;
			conn_dirty(c);
			continue;
		}
		if (c->rstate == RS_DONE || c->ended)
			continue;
		if (c->rstate == RS_STREAM) {
			if (now - c->last_rx_ms > cfg->read_timeout * 1000ULL)
				conn_timeout(c);
			continue;
		}
		if (!c->session) {
			/* the first command must be complete in time; a
			 * trickle of bytes does not extend it */
			if (now - c->accept_ms > cfg->command_read_timeout * 1000ULL)
				conn_timeout(c);
			continue;
		}
		if (now - c->last_cmd_ms > cfg->read_timeout * 1000ULL)
			conn_timeout(c);
	}
	control_flush(ctl);
}

void control_flush(struct control *ctl)
{
	resume_paused(ctl);
	if (ctl->nthrottled && pool_queued(ctl->pool) < ctl->max_queue)
		for (struct conn *c = ctl->conns; c; c = c->next)
			if (c->throttled)
				conn_dirty(c);
	while (ctl->dirty)
		conn_service(ctl->dirty);
}

unsigned int control_connections(const struct control *ctl)
{
	return ctl->nconns;
}

void control_close(struct control *ctl)
{
	if (ctl->lfd >= 0) {
		if (ctl->accepting)
			evloop_del(ctl->ev, &ctl->lev);
		util_close(&ctl->lfd);
	}
	if (ctl->created_socket) {
		unlink(ctl->cfg->local_socket);
		ctl->created_socket = false;
	}
	while (ctl->conns) {
		conn_flush(ctl->conns); /* last answers, e.g. "shutting down" */
		conn_destroy(ctl->conns);
	}
}

void control_free(struct control *ctl)
{
	if (!ctl)
		return;
	for (size_t i = 0; i < ctl->nexcludes; i++)
		regfree(&ctl->excludes[i].re);
	free(ctl->excludes);
	free(ctl);
}
