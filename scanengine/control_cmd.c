/* control_cmd: the clamd commands and the requests they start (see
 * control_int.h). Replies follow clamd 1.4's texts; control.c's header
 * comment says where they deliberately differ. */
#include "common/log.h"
#include "common/util.h"
#include "scanengine/control_int.h"
#include "scanengine/engine.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void req_pump(struct req *r);

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

void ctl_req_unlink(struct conn *c, struct req *r)
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
			ctl_reply(c, r->seq, r->term, "%s: OK", r->name);
		ctl_req_unlink(c, r);
		ctl_conn_dirty(c);
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
			ctl_reply(c, r->seq, r->term, "%s: OK", it->path);
		break;
	case VERDICT_VIRUS:
		r->found++;
		for (unsigned int i = 0; i < res->nnames; i++) {
			log_info("%s: %s FOUND%s", it->path, res->names[i], verdict_log_name(r));
			ctl_reply(c, r->seq, r->term, "%s: %s FOUND", it->path, res->names[i]);
		}
		if (r->cmd->flags & CF_STOP_FIRST)
			r->stop = true;
		break;
	default:
		r->errors++;
		log_info("%s: %s ERROR%s", it->path, res->error ? res->error : "",
			 verdict_log_name(r));
		ctl_reply(c, r->seq, r->term, "%s: %s ERROR", it->path,
			  res->error ? res->error : "");
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
		ctl_reply(r->conn, r->seq, r->term, "%s: Can't allocate memory ERROR", path);
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
		ctl_reply(r->conn, r->seq, r->term, "%s: Access denied. ERROR", path);
		break;
	case EINVAL:
		ctl_reply(r->conn, r->seq, r->term, "%s: Not supported file type ERROR", path);
		break;
	default:
		ctl_reply(r->conn, r->seq, r->term, "%s: File path check failure: %s. ERROR", path,
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
		ctl_reply(r->conn, r->seq, r->term, "%s: Excluded (another filesystem)", e->path);
		break;
	case ELOOP:
		ctl_reply(r->conn, r->seq, r->term, "%s: Excluded (symbolic link not followed)",
			  e->path);
		break;
	default:
		ctl_reply(r->conn, r->seq, r->term, "%s: Excluded", e->path);
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
			ctl_reply(r->conn, r->seq, r->term, "%s: Can't allocate memory ERROR",
				  r->name);
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

void ctl_resume_paused(struct control *ctl)
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
		ctl_reply(c, seq, term, "Can't allocate memory ERROR");
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
void ctl_req_orphan(struct req *r)
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
	ctl_reply(c, seq, term, "PONG");
}

static void cmd_version(struct conn *c, const struct command *cmd, const char *arg,
			unsigned int seq, char term)
{
	char v[160];

	(void)cmd;
	(void)arg;
	version_string(c->ctl, v, sizeof(v));
	ctl_reply(c, seq, term, "%s", v);
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
	ctl_reply(c, seq, term, "%s| COMMANDS:%s", v, list);
}

static void cmd_reload(struct conn *c, const struct command *cmd, const char *arg, unsigned int seq,
		       char term)
{
	(void)cmd;
	(void)arg;
	ctl_reply(c, seq, term, "RELOADING");
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
	char pool_lines[256], extra[512] = "";

	(void)cmd;
	(void)arg;
	pool_stats_text(c->ctl->pool, pool_lines, sizeof(pool_lines));
	if (c->ctl->hooks.stats_lines)
		c->ctl->hooks.stats_lines(c->ctl->hooks.arg, extra, sizeof(extra));
	ctl_reply(c, seq, term,
		  "POOLS: 1\n\nSTATE: VALID PRIMARY\n%s\tSTATS 0.000000 \n\n%s"
		  "MEMSTATS: heap N/A mmap N/A used N/A free N/A releasable N/A pools 1 "
		  "pools_used %.3fM pools_total %.3fM\nEND",
		  pool_lines, extra, mib, mib);
}

static void reply_json(struct conn *c, unsigned int seq, char term, struct json_object *o)
{
	ctl_reply_long(c, seq, term, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

static void cmd_status(struct conn *c, const struct command *cmd, const char *arg, unsigned int seq,
		       char term)
{
	struct json_object *o = json_object_new_object();

	(void)cmd;
	(void)arg;
	if (c->ctl->hooks.status)
		c->ctl->hooks.status(c->ctl->hooks.arg, o);
	reply_json(c, seq, term, o);
}

static void cmd_faults(struct conn *c, const struct command *cmd, const char *arg, unsigned int seq,
		       char term)
{
	(void)arg;
	if (!c->ctl->hooks.faults) {
		ctl_reply(c, seq, term, "%s: not available. ERROR", cmd->name);
		return;
	}
	reply_json(c, seq, term,
		   c->ctl->hooks.faults(c->ctl->hooks.arg, !strcmp(cmd->name, "FAULTHISTORY")));
}

static void cmd_reset_poison(struct conn *c, const struct command *cmd, const char *arg,
			     unsigned int seq, char term)
{
	size_t n = 0;

	(void)arg;
	(void)cmd;
	if (c->ctl->hooks.reset_poison)
		n = c->ctl->hooks.reset_poison(c->ctl->hooks.arg);
	ctl_reply(c, seq, term, "POISON RESET: %zu", n);
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
		ctl_reply(c, seq, term,
			  "%s: File path check failure: Relative paths are not supported. ERROR",
			  arg);
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
		ctl_reply(c, seq, term, "%s: Can't allocate memory ERROR", arg);
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
void ctl_fildes_take(struct conn *c)
{
	unsigned int seq = c->fildes_seq;
	char term = c->fildes_term;
	struct stat st;
	struct req *r;
	int fd = c->rx_fd;

	c->rstate = c->session ? RS_CMD : RS_DONE;
	c->rx_fd = -1;
	if (fd < 0) {
		ctl_reply(c, seq, term, "No file descriptor received. ERROR");
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
		ctl_reply(c, seq, term, "%s: Not a regular file ERROR", r->name);
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
		ctl_reply(c, seq, term, "stream: Error writing to temporary file ERROR");
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
	ctl_reply(c, r->seq, r->term, "%s", msg);
	req_pump(r);
}

/* Consume INSTREAM chunks. Returns the bytes used. */
size_t ctl_stream_feed(struct conn *c, const char *p, size_t len)
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

/* An UPDATE waiting for its cycle: the connection is found again by its
 * id (it stays open while it has a reply pending). */
struct update_wait {
	struct control *ctl;
	uint64_t conn_id;
	unsigned int seq;
	char term;
};

static void update_done(void *ctx, const char *json)
{
	struct update_wait *w = ctx;
	struct conn *c = w->ctl->conns;

	while (c && c->id != w->conn_id)
		c = c->next;
	if (c) {
		if (json)
			ctl_reply_long(c, w->seq, w->term, json);
		else
			ctl_reply(c, w->seq, w->term, "UPDATE: the service is stopping. ERROR");
		c->pending--;
		ctl_conn_dirty(c);
	}
	free(w);
}

static void cmd_update(struct conn *c, const struct command *cmd, const char *arg, unsigned int seq,
		       char term)
{
	struct update_wait *w = malloc(sizeof(*w));
	int r = -ENOSYS;

	(void)arg;
	if (!w) {
		ctl_reply(c, seq, term, "%s: out of memory. ERROR", cmd->name);
		return;
	}
	*w = (struct update_wait){c->ctl, c->id, seq, term};
	c->pending++;
	if (c->ctl->hooks.update)
		r = c->ctl->hooks.update(c->ctl->hooks.arg, update_done, w);
	if (r == 0)
		return;
	c->pending--;
	free(w);
	if (r == -ENOENT)
		ctl_reply(c, seq, term,
			  "%s: no mirror is configured (DatabaseMirror, PrivateMirror). ERROR",
			  cmd->name);
	else
		ctl_reply(c, seq, term, "%s: %s. ERROR", cmd->name, strerror(-r));
}

/* In clamd's order: VERSIONCOMMANDS lists them as they stand here. */
static const struct command commands[] = {
	{"SCAN", CF_ARG | CF_SESSION | CF_UNPREFIXED | CF_STOP_FIRST | CF_WORKER, cmd_scan_path},
	{"QUIT", CF_ADMIN | CF_UNPREFIXED, cmd_shutdown},
	{"RELOAD", CF_ADMIN | CF_UNPREFIXED, cmd_reload},
	{"PING", CF_SESSION | CF_UNPREFIXED, cmd_ping},
	{"CONTSCAN", CF_ARG | CF_UNPREFIXED | CF_WORKER, cmd_scan_path},
	{"VERSIONCOMMANDS", CF_SESSION, cmd_versioncommands},
	{"VERSION", CF_SESSION | CF_UNPREFIXED, cmd_version},
	{"END", CF_SESSION, cmd_end},
	{"SHUTDOWN", CF_ADMIN | CF_UNPREFIXED, cmd_shutdown},
	{"MULTISCAN", CF_ARG | CF_UNPREFIXED | CF_WORKER, cmd_scan_path, 0, true},
	{"FILDES", CF_SESSION | CF_UNPREFIXED | CF_WORKER, cmd_fildes},
	{"STATS", CF_SESSION, cmd_stats},
	{"IDSESSION", 0, cmd_idsession},
	{"INSTREAM", CF_SESSION | CF_WORKER, cmd_instream},
	{"DETSTATSCLEAR", CF_UNPREFIXED, cmd_silent},
	{"DETSTATS", CF_UNPREFIXED, cmd_silent},
	{"ALLMATCHSCAN", CF_ARG | CF_STOP_FIRST | CF_WORKER, cmd_scan_path, MSG_SCAN_ALLMATCH},
	/* scanengine admin extensions */
	{"STATUS", CF_ADMIN, cmd_status},
	{"FAULTS", CF_ADMIN, cmd_faults},
	{"FAULTHISTORY", CF_ADMIN, cmd_faults},
	{"RESETPOISON", CF_ADMIN, cmd_reset_poison},
	{"UPDATE", CF_ADMIN, cmd_update},
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

bool ctl_command_needs_worker(const char *line)
{
	const char *arg;
	const struct command *k = find_command(line, &arg);

	/* unknown or incomplete: it runs only once complete and known */
	return k && (k->flags & CF_WORKER);
}

/* Run one complete command line (framing prefix removed). fd_attached: a
 * descriptor came with exactly these bytes. */
void ctl_run_command(struct conn *c, char *line, char term, bool prefixed, bool fd_attached)
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
			ctl_reply(
				c, seq, c->term,
				"Only nCMDS\\n and zCMDS\\0 are accepted inside IDSESSION. ERROR");
			ctl_reply(c, seq, c->term, "Error processing command. ERROR");
			c->rstate = RS_DONE;
			return;
		}
		if (!k || !(k->flags & CF_SESSION)) {
			ctl_reply(c, seq, term, "Command invalid inside IDSESSION. ERROR");
			c->rstate = RS_DONE;
			return;
		}
	} else if (!k || (!prefixed && !(k->flags & CF_UNPREFIXED)) || k->fn == cmd_end) {
		log_debug("client %llu (uid %d): unknown command '%.64s'",
			  (unsigned long long)c->id, (int)c->cred.uid, line);
		ctl_reply(c, seq, term, "UNKNOWN COMMAND");
		c->rstate = RS_DONE;
		return;
	}
	if ((k->flags & CF_ADMIN) && !c->admin) {
		log_warn("refused %s from uid %d pid %d: requires root or AdminGroup", k->name,
			 (int)c->cred.uid, (int)c->cred.pid);
		ctl_reply(c, seq, term,
			  "%s: Permission denied (root or AdminGroup required). ERROR", k->name);
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
			ctl_reply(c, seq, term,
				  "PROTOCOL ERROR: ancillary data sent without FILDES. ERROR");
			/* clamd's generic follow-up (in a session: FILDES only) */
			if (!c->session || k->fn == cmd_fildes)
				ctl_reply(c, seq, term, "Error processing command. ERROR");
		}
		c->rstate = RS_DONE;
		return;
	}
	k->fn(c, k, arg, seq, term);
	/* Outside a session, one command per connection, as clamd. */
	if (!c->session && c->rstate == RS_CMD)
		c->rstate = RS_DONE;
}
