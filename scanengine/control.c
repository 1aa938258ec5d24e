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
#include "scanengine/control_int.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void conn_destroy(struct conn *c);

/* ---- output ------------------------------------------------------------ */

void ctl_conn_dirty(struct conn *c)
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
	if (!len)
		return;
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
	ctl_conn_dirty(c);
}

void ctl_reply(struct conn *c, unsigned int seq, char term, const char *fmt, ...)
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

void ctl_reply_long(struct conn *c, unsigned int seq, char term, const char *text)
{
	char prefix[16];
	int n = 0;

	if (!c)
		return;
	if (c->session && seq)
		n = snprintf(prefix, sizeof(prefix), "%u: ", seq);
	out_append(c, prefix, (size_t)n);
	out_append(c, text, strlen(text));
	out_append(c, &term, 1);
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

bool ctl_conn_can_take_command(const struct conn *c, const char *p, size_t avail)
{
	char line[CMD_MAX + 1], term, *end, *cmd = line;
	bool prefixed;
	size_t n = SE_MIN(avail, (size_t)CMD_MAX);

	if (c->session && c->pending >= SESSION_MAX_PENDING)
		return false;
	if (pool_queued(c->ctl->pool) < c->ctl->max_queue)
		return true;
	/* a full queue holds back what needs a worker; the rest (PING,
	 * STATUS, STATS...) is answered: the operator sees the overload */
	memcpy(line, p, n);
	line[n] = '\0';
	end = command_end(line, n, &prefixed, &term);
	if (end)
		*end = '\0';
	if (prefixed)
		cmd++;
	for (char *q = cmd + strlen(cmd); q > cmd && (q[-1] == '\r' || q[-1] == '\n');)
		*--q = '\0';
	return !ctl_command_needs_worker(cmd);
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
			size_t used = ctl_stream_feed(c, p, avail);

			off += used;
			if (!used)
				break;
			continue;
		}
		if (c->rstate == RS_FILDES) {
			off++; /* the byte the descriptor rides on */
			ctl_fildes_take(c);
			continue;
		}
		if (!ctl_conn_can_take_command(c, p, avail))
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
		ctl_run_command(c, line, term, prefixed, c->rx_fd >= 0 && c->rx_fd_end == off);
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
	if (c->rstate == RS_CMD && c->rlen && !ctl_conn_can_take_command(c, c->rbuf, c->rlen))
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
		ctl_req_unlink(c, r);
		ctl_req_orphan(r);
	}
	if ((c->rstate == RS_DONE || c->rd_eof) && !c->pending && !c->olen) {
		conn_destroy(c);
		return;
	}
	if (conn_wants_input(c))
		ev |= EPOLLIN | EPOLLRDHUP;
	throttled = c->rstate == RS_CMD && !c->rd_eof && c->rlen &&
		    !ctl_conn_can_take_command(c, c->rbuf, c->rlen);
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

		ctl_req_unlink(c, r);
		ctl_req_orphan(r);
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

		ctl_req_unlink(c, r);
		ctl_req_orphan(r);
	}
	ctl_conn_dirty(c);
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
			ctl_conn_dirty(c);
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
	ctl_resume_paused(ctl);
	if (ctl->nthrottled && pool_queued(ctl->pool) < ctl->max_queue)
		for (struct conn *c = ctl->conns; c; c = c->next)
			if (c->throttled)
				ctl_conn_dirty(c);
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
