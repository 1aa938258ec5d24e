"""A definitions mirror for the update tests: a real nginx (Debian's
package) serving a directory that the test fills, on a free port of
127.0.0.1, with its own configuration, pid file, logs and temporary
directories in a private directory. Its access log records every request
with its status, the body bytes sent and the Range header, so a test can
tell a 512-byte header probe (206) from a whole download (200).

    m = Mirror().start()
    m.serve(6, cdiffs=range(2, 7))     # test.cvd = test-6.cvd, test-N.cdiff, .sign files
    ... DatabaseMirror m.url ...
    mark = m.mark()
    ... scanctl update ...
    m.requests(mark)                   # [Request(method, path, status, bytes, range)]
    m.stop()

Also here: a closed port (a mirror that is down)."""

import collections
import os
import re
import shutil
import signal
import socket
import subprocess
import time

from harness import SHARED, tmpdir

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

Request = collections.namedtuple("Request", "method path status bytes range line")

_LOG_LINE = re.compile(r'^(\S+) (\S+) \S+ (\d{3}) (\d+) "(.*)"$')

CONF = """\
daemon off;
master_process on;
worker_processes 1;
user nobody nogroup;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
    default_type application/octet-stream;
    log_format m '$request $status $body_bytes_sent "$http_range"';
    access_log {dir}/access.log m;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    server_tokens off;
    server {{
        listen 127.0.0.1:{port};
        root {root};
{extra}
    }}
}}
"""


def free_port():
    """A TCP port of 127.0.0.1 that nothing listens on (just now)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def closed_url():
    """The URL of a mirror that is down: a port nothing listens on."""
    return "http://127.0.0.1:%d" % free_port()


class Mirror:
    """One nginx serving self.root at self.url."""

    def __init__(self, extra=""):
        if not os.path.exists(NGINX):
            raise AssertionError("nginx is not installed (scripts/setup.sh installs it)")
        self.dir = tmpdir("se-mirror-")
        self.root = os.path.join(self.dir, "www")
        os.mkdir(self.root)
        os.chmod(self.root, 0o755)
        os.mkdir(os.path.join(self.dir, "tmp"))
        self.conf_path = os.path.join(self.dir, "nginx.conf")
        self.access_log = os.path.join(self.dir, "access.log")
        self.error_log = os.path.join(self.dir, "error.log")
        self.extra = extra  # server-block directives (a location returning 429, say)
        self.port = None
        self.proc = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    # ---- running ---------------------------------------------------------

    def start(self, timeout=10):
        """Start nginx; on a port of its own unless it had one (a restart
        keeps the port, so the daemon's configuration stays right)."""
        keep = self.port is not None
        for _ in range(5):
            if not keep:
                self.port = free_port()
            if self._start_once(timeout):
                return self
            if keep:
                break
        raise AssertionError("nginx did not start:\n" + self.read_error_log()[-3000:])

    def _start_once(self, timeout):
        with open(self.conf_path, "w") as fh:
            fh.write(CONF.format(dir=self.dir, root=self.root, port=self.port,
                                 extra="\n".join("        " + l for l in self.extra.splitlines())))
        self.errfh = open(os.path.join(self.dir, "stderr"), "ab")
        self.proc = subprocess.Popen([NGINX, "-p", self.dir, "-e", self.error_log,
                                      "-c", self.conf_path],
                                     stdin=subprocess.DEVNULL, stdout=self.errfh,
                                     stderr=self.errfh)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                self.errfh.close()
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.02)
        self.stop()
        return False

    def stop(self):
        """Fast shutdown (SIGTERM); the port is closed when this returns."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.errfh.close()

    def restart(self, extra=None):
        """The same port and content, another server configuration."""
        if extra is not None:
            self.extra = extra
        self.stop()
        return self.start()

    def read_error_log(self):
        out = ""
        for p in (self.error_log, os.path.join(self.dir, "stderr")):
            try:
                with open(p, errors="replace") as fh:
                    out += fh.read()
            except FileNotFoundError:
                pass
        return out

    # ---- content ---------------------------------------------------------

    def put(self, name, src=None, data=None):
        """Serve src's content (or data) as name."""
        dst = os.path.join(self.root, name)
        if src is not None:
            shutil.copyfile(src, dst)
        else:
            with open(dst, "wb") as fh:
                fh.write(data.encode() if isinstance(data, str) else data)
        os.chmod(dst, 0o644)
        return dst

    def remove(self, name):
        os.unlink(os.path.join(self.root, name))

    def clear(self):
        for f in os.listdir(self.root):
            os.unlink(os.path.join(self.root, f))

    def files(self):
        return sorted(os.listdir(self.root))

    def serve(self, version=6, cdiffs=(), sign=True, db="test", src_dir=SHARED):
        """Lay out the mirror as freshclam's mirrors are: <db>.cvd is
        <db>-<version>.cvd, the patches <db>-<N>.cdiff under their own
        names, and (sign) the ClamAV 1.5 .sign files beside them."""
        self.clear()
        self.put(db + ".cvd", os.path.join(src_dir, "%s-%d.cvd" % (db, version)))
        names = ["%s-%d.cdiff" % (db, n) for n in cdiffs]
        if sign:
            names.append("%s-%d.cvd.sign" % (db, version))
            names += [n + ".sign" for n in list(names) if n.endswith(".cdiff")]
        for n in names:
            self.put(n, os.path.join(src_dir, n))
        return self

    # ---- what was asked --------------------------------------------------

    def requests(self, since=0):
        """The requests logged so far (from the since-th on), parsed."""
        try:
            with open(self.access_log, errors="replace") as fh:
                lines = fh.read().splitlines()
        except FileNotFoundError:
            lines = []
        out = []
        for line in lines[since:]:
            m = _LOG_LINE.match(line)
            if m:
                out.append(Request(m.group(1), m.group(2), int(m.group(3)), int(m.group(4)),
                                   m.group(5) if m.group(5) != "-" else None, line))
            else:  # a request line nginx could not parse, say
                out.append(Request(None, None, None, None, None, line))
        return out

    def mark(self):
        """A position in the access log: requests(mark) is what came after."""
        return len(self.requests())
