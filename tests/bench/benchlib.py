"""Shared parts of the scanengine benchmarks: the cached signature set and
corpus, daemon configuration, start/ready/stop, clamdscan runs, /proc
readings. Standard library only."""

import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLAMD = "/usr/sbin/clamd"
CLAMDSCAN = "/usr/bin/clamdscan"

# Settings given to both daemons, so they do the same work: the clamd 1.4
# default limits written out, no clean-file cache (libclamav would otherwise
# remember every clean file after the first round and the later rounds would
# time only reading and hashing), no database re-check during a round.
COMMON_SETTINGS = [
    ("MaxScanSize", "400M"),
    ("MaxFileSize", "100M"),
    ("MaxRecursion", "17"),
    ("MaxFiles", "10000"),
    ("StreamMaxLength", "100M"),
    ("MaxScanTime", "120000"),
    ("DisableCache", "yes"),
    ("SelfCheck", "0"),
]


def log(msg):
    try:
        print(msg, flush=True)
    except BrokenPipeError:  # the reader (tee) went away; keep cleaning up
        pass


def die_on_sigterm():
    """Turn SIGTERM/SIGHUP into SystemExit so `finally` blocks stop the
    daemons and remove the temporary directories (Ctrl-C already raises
    KeyboardInterrupt)."""
    def handler(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


# ---- data: signature set and corpus, generated once into a cache dir -------

def _script_digest():
    h = hashlib.sha256()
    for name in ("gen_sigs.py", "gen_corpus.py"):
        with open(os.path.join(HERE, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def ensure_data(cache, n_hash, n_body):
    """Return (sigdir, corpusdir, corpus manifest, expected signature count),
    generating them into cache unless a previous run left the same ones
    there. Everything is world-readable: the scan user loads the set."""
    os.umask(0o022)
    cache = os.path.abspath(cache)
    sigdir = os.path.join(cache, "sigs")
    corpus = os.path.join(cache, "corpus")
    stamp_path = os.path.join(cache, "data.json")
    want = {"hash": n_hash, "body": n_body, "generators": _script_digest()}
    try:
        with open(stamp_path) as f:
            stamp = json.load(f)
        if stamp["params"] == want and os.path.isdir(sigdir) and os.path.isdir(corpus):
            log("data: reusing %s" % cache)
            return sigdir, corpus, stamp["corpus"], stamp["signatures"]
    except (OSError, ValueError, KeyError):
        pass

    log("data: generating into %s" % cache)
    for d in (sigdir, corpus, stamp_path):
        if os.path.isdir(d):
            shutil.rmtree(d)
        elif os.path.exists(d):
            os.unlink(d)
    os.makedirs(cache, exist_ok=True)
    os.chmod(cache, 0o755)
    t0 = time.monotonic()
    subprocess.run([sys.executable, os.path.join(HERE, "gen_corpus.py"), corpus], check=True)
    t1 = time.monotonic()
    subprocess.run([sys.executable, os.path.join(HERE, "gen_sigs.py"), sigdir,
                    "--hash", str(n_hash), "--body", str(n_body),
                    "--positive", os.path.join(corpus, "known-positive.bin")], check=True)
    t2 = time.monotonic()
    log("RESULT data: generated the corpus in %.1f s, the signatures in %.1f s" %
        (t1 - t0, t2 - t1))
    with open(os.path.join(corpus, "corpus.json")) as f:
        manifest = json.load(f)
    signatures = n_hash + n_body + 1 + 1  # + EICAR + the known positive
    with open(stamp_path, "w") as f:
        json.dump({"params": want, "corpus": manifest, "signatures": signatures}, f)
    return sigdir, corpus, manifest, signatures


# ---- daemons ----------------------------------------------------------------

def scan_user():
    """The account scanengined's workers run as."""
    for name in ("scanengine", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    raise RuntimeError("neither a 'scanengine' nor a 'nobody' account exists")


def make_rundir():
    """A private temporary directory the scan user can traverse."""
    d = tempfile.mkdtemp(prefix="scanengine-bench.")
    os.chmod(d, 0o755)
    return d


def write_conf(path, items):
    with open(path, "w") as f:
        for key, value in items:
            f.write("%s %s\n" % (key, value))


def command(sock_path, cmd, timeout=30):
    """Send one command to the daemon at sock_path; its reply (read until
    the daemon closes the connection). OSError if it cannot be reached."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        s.sendall(cmd)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
    finally:
        s.close()


def ping(sock_path, timeout=5.0):
    """True if the daemon at sock_path answers zPING with PONG."""
    try:
        return command(sock_path, b"zPING\0", timeout) == b"PONG\0"
    except OSError:
        return False


class Daemon:
    """clamd or scanengined, in its own directory under the run dir.

    Started in a new session (Ctrl-C on the terminal reaches only the
    benchmark, which then stops the daemon itself)."""

    def __init__(self, kind, rundir, build=None, max_threads=2, sigdir=None, extra=()):
        self.kind = kind
        self.dir = os.path.join(rundir, kind)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.socket = os.path.join(self.dir, "socket")
        self.conf = os.path.join(self.dir, kind + ".conf")
        self.client_conf = os.path.join(self.dir, "clamdscan.conf")
        self.log = os.path.join(self.dir, kind + ".log")
        self.out = os.path.join(self.dir, kind + ".out")
        self.proc = None
        self.load_time = None
        common = [
            ("LocalSocket", self.socket),
            ("PidFile", os.path.join(self.dir, kind + ".pid")),
            ("DatabaseDirectory", sigdir),
            ("LogFile", self.log),
            ("MaxThreads", str(max_threads)),
        ] + COMMON_SETTINGS + list(extra)
        self.items = None
        if kind == "clamd":
            tmp = os.path.join(self.dir, "tmp")
            os.makedirs(tmp)
            items = common + [("Foreground", "yes"), ("User", "root"),
                              ("TemporaryDirectory", tmp)]
            self.argv = [CLAMD, "--config-file=" + self.conf]
        elif kind == "scanengined":
            state = os.path.join(self.dir, "state")
            items = common + [("User", scan_user()), ("StateDirectory", state),
                              ("TemporaryDirectory", os.path.join(state, "tmp"))]
            self.argv = [os.path.join(os.path.abspath(build), "scanengined"),
                         "--config-file", self.conf, "--foreground"]
        else:
            raise ValueError(kind)
        self.items = items
        write_conf(self.conf, items)
        # clamdscan only needs to know where the socket is
        write_conf(self.client_conf, [("LocalSocket", self.socket)])

    def start(self):
        self._t0 = time.monotonic()
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout=600):
        """Wait until the socket answers PING; returns the seconds since start."""
        deadline = self._t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with status %d during start-up\n%s" %
                                   (self.kind, self.proc.returncode, self.tail()))
            if os.path.exists(self.socket) and ping(self.socket):
                self.load_time = time.monotonic() - self._t0
                return self.load_time
            time.sleep(0.1)
        raise RuntimeError("%s did not answer PING within %d s\n%s" %
                           (self.kind, timeout, self.tail()))

    def tail(self, lines=15):
        text = []
        for path in (self.out, self.log):
            try:
                with open(path, errors="replace") as f:
                    content = f.read().splitlines()[-lines:]
            except OSError:
                continue
            if content:
                text.append("--- %s:\n%s" % (path, "\n".join(content)))
        return "\n".join(text)

    def stop(self, timeout=30):
        """SIGTERM, then SIGKILL after timeout; then kill anything of ours
        that outlived the main process (its descendants, its process group)."""
        if self.proc is None:
            return
        pid = self.proc.pid
        leftovers = [(p, start_time(p)) for p in descendants(pid)]
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log("%s did not stop within %d s of SIGTERM; killing it" % (self.kind, timeout))
                self.proc.kill()
                self.proc.wait()
        for p, t in leftovers:
            if t is not None and start_time(p) == t:
                log("%s left process %d behind; killing it" % (self.kind, p))
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            os.killpg(pid, signal.SIGKILL)  # the group we created; usually empty
        except (ProcessLookupError, PermissionError):
            pass
        self.proc = None


def cleanup(daemons, rundir, keep=False):
    """Stop the daemons and remove the run directory; a second Ctrl-C or
    SIGTERM does not interrupt this (a stuck daemon is SIGKILLed after 30 s)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    for d in daemons:
        d.stop()
    if keep:
        log("run directory kept: %s" % rundir)
    else:
        shutil.rmtree(rundir, ignore_errors=True)


# ---- clients ----------------------------------------------------------------

def clamdscan(daemon, paths, capture=False):
    """Run clamdscan --fdpass --multiscan against daemon. Returns
    (exit status, seconds, stdout or None, stderr)."""
    argv = [CLAMDSCAN, "--config-file=" + daemon.client_conf, "--fdpass", "--multiscan"]
    if not capture:
        argv.append("--no-summary")
    t0 = time.monotonic()
    p = subprocess.run(argv + list(paths), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    return p.returncode, time.monotonic() - t0, p.stdout, p.stderr


def found_lines(output):
    """{path: signature name} of the 'PATH: NAME FOUND' lines."""
    found = {}
    for line in output.splitlines():
        if line.endswith(" FOUND"):
            path, _, name = line[:-len(" FOUND")].rpartition(": ")
            found[path] = name
    return found


# ---- /proc ------------------------------------------------------------------

def _stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()  # fields from 3 (state) on


def start_time(pid):
    try:
        return int(_stat_fields(pid)[19])  # field 22: starttime
    except (OSError, ValueError, IndexError):
        return None


def descendants(pid):
    """Every live descendant of pid, found through the ppid chains."""
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                ppid = int(_stat_fields(int(name))[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return sorted(out)


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return "?"


def memory(pid):
    """(Rss, Pss) of pid in bytes, from /proc/PID/smaps_rollup."""
    vals = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] in ("Rss:", "Pss:"):
                vals[parts[0][:-1]] = int(parts[1]) * 1024
    return vals["Rss"], vals["Pss"]


def mib(n):
    return n / 2**20


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
