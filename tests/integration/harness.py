"""Integration-test harness: runs the real scanengined from the build
directory in a private temporary directory, talks to it over its socket.

Every daemon a test starts gets its own directory, config file, socket,
state directory and log, so tests never share state. Stopping a daemon
checks that it exited cleanly and that no sanitizer report reached its
stderr (the ASan+UBSan build runs these same tests)."""

import atexit
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("SCANENGINE_BUILD", "build"))
SCANENGINED = os.path.join(BUILD, "scanengined")
SCANCTL = os.path.join(BUILD, "scanctl")
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared", "testdata", "clamav"))
DEFAULT_DEFS = os.path.join(ROOT, "defs", "default")
TESTFILES = "/usr/share/clamav-testfiles"
SCAN_USER = "scanengine"
SANITIZED = "asan" in os.path.basename(BUILD)
# Sanitized binaries are slower; time budgets scale with this.
SLOW = 3.0 if SANITIZED else 1.0

# Assembled at run time so this file is not itself a detection.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-" + b"ANTIVIRUS-TEST-FILE!$H+H*"
EICAR_NDB = ("Eicar-Test-Signature:0:0:" + EICAR.hex() + "\n")


_TMPDIRS = []


@atexit.register
def _remove_tmpdirs():
    if os.environ.get("SCANENGINE_KEEP_TEST_DIRS"):  # for a post-mortem
        return
    for d in _TMPDIRS:
        shutil.rmtree(d, ignore_errors=True)


def tmpdir(prefix="se-test-"):
    """A directory the scan user can traverse (the engine reads definitions
    from it as that user); removed when the test run ends."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    _TMPDIRS.append(d)
    return d


def make_defs(directory, files=None, ndb_eicar=True):
    """Fill directory with definitions: copies of files (paths) plus the
    EICAR body signature. Readable by the scan user."""
    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, 0o755)
    for f in files if files is not None else [os.path.join(SHARED, "clamav.hdb")]:
        dst = os.path.join(directory, os.path.basename(f))
        shutil.copyfile(f, dst)
        os.chmod(dst, 0o644)
    if ndb_eicar:
        p = os.path.join(directory, "eicar.ndb")
        with open(p, "w") as fh:
            fh.write(EICAR_NDB)
        os.chmod(p, 0o644)
    return directory


class Daemon:
    """One scanengined instance in its own directory."""

    def __init__(self, conf=None, defs_dir=None, workers=2):
        self.dir = tmpdir()
        self.sock = os.path.join(self.dir, "scanengined.sock")
        self.pidfile = os.path.join(self.dir, "scanengined.pid")
        self.state = os.path.join(self.dir, "state")
        self.log = os.path.join(self.dir, "scanengined.log")
        self.stderr_path = os.path.join(self.dir, "stderr")
        self.defs = defs_dir or make_defs(os.path.join(self.dir, "defs"))
        self.conf_path = os.path.join(self.dir, "scanengined.conf")
        self.conf = {
            "LocalSocket": self.sock,
            "PidFile": self.pidfile,
            "StateDirectory": self.state,
            "DatabaseDirectory": self.defs,
            "LogFile": self.log,
            "LogVerbose": "yes",
            "User": SCAN_USER,
            "MaxThreads": str(workers),
        }
        self.conf.update(conf or {})
        self.env = None  # extra environment for the daemon
        self.argv_prefix = []  # a command the daemon is started through (capsh ... -c)
        self.cgroup = None  # a v1/v2 cgroup directory to start the daemon in
        self.proc = None

    def write_conf(self):
        with open(self.conf_path, "w") as fh:
            for k, v in self.conf.items():
                if isinstance(v, (list, tuple)):
                    for item in v:
                        fh.write("%s %s\n" % (k, item))
                elif v is not None:
                    fh.write("%s %s\n" % (k, v))

    def start(self, timeout=30):
        self.write_conf()
        self.stderr = open(self.stderr_path, "ab")
        argv = [SCANENGINED, "--config-file", self.conf_path, "--foreground"]
        if self.argv_prefix:  # the prefix ends in a shell's -c: one command line
            argv = self.argv_prefix + ["exec " + " ".join(argv)]
        self.proc = subprocess.Popen(
            argv,
            stdout=self.stderr, stderr=self.stderr,
            env=dict(os.environ, **self.env) if self.env else None,
            preexec_fn=self._join_cgroup if self.cgroup else None)
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("scanengined exited during start-up (%d): %s" %
                                     (self.proc.returncode, self.read_stderr()[-2000:]))
            try:
                if self.command(b"zPING\0", timeout=2) == b"PONG\0":
                    self._settle(deadline)
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        # not left running: the caller may never get the object to clean up
        self.proc.kill()
        self.proc.wait()
        raise AssertionError("scanengined did not answer PING in time: " + self.read_stderr()[-2000:])

    def _join_cgroup(self):
        with open(os.path.join(self.cgroup, "cgroup.procs"), "w") as fh:
            fh.write(str(os.getpid()))

    def _settle(self, deadline):
        """Ready answers PING as soon as an engine is up; its workers are
        forked right after. Tests that look at workers want them there."""
        want = int(self.conf.get("MaxThreads", 0) or 0)
        while time.time() < deadline:
            try:
                st = self.status()
            except (OSError, ValueError):
                return
            if not st.get("engine_generation") or st.get("workers_alive", 0) >= want:
                return
            time.sleep(0.02)

    def read_stderr(self):
        try:
            with open(self.stderr_path, "rb") as fh:
                return fh.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def read_log(self):
        try:
            with open(self.log, "rb") as fh:
                return fh.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def assert_no_sanitizer_report(self):
        err = self.read_stderr()
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer"):
            if marker in err:
                raise AssertionError("sanitizer report in scanengined's stderr:\n" + err[-4000:])

    def stop(self, timeout=20):
        """SIGTERM; require a clean exit and no sanitizer report."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("scanengined did not stop on SIGTERM")
        code = self.proc.returncode
        self.proc = None
        self.stderr.close()
        self.assert_no_sanitizer_report()
        if code != 0:
            raise AssertionError("scanengined exited with %d:\n%s" % (code, self.read_stderr()[-3000:]))

    def finish(self):
        """The end of a test: it must still run; stopped (a clean exit, no
        sanitizer report), and its files removed either way."""
        try:
            if self.proc is None or self.proc.poll() is not None:
                raise AssertionError("scanengined died")
            self.stop()
        finally:
            self.cleanup()

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not os.environ.get("SCANENGINE_KEEP_TEST_DIRS"):
            shutil.rmtree(self.dir, ignore_errors=True)

    # ---- talking to it ------------------------------------------------

    def connect(self, timeout=10):
        # With a timeout the socket is non-blocking, and a UNIX connect to
        # a full listen backlog fails with EAGAIN instead of waiting: retry.
        deadline = time.time() + timeout * SLOW
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout * SLOW)
            try:
                s.connect(self.sock)
                return s
            except BlockingIOError:
                s.close()
                if time.time() >= deadline:
                    raise
                time.sleep(0.02)

    def command(self, data, fds=None, timeout=10):
        """Send data (with fds attached to it) and read until EOF."""
        s = self.connect(timeout)
        try:
            if fds:
                socket.send_fds(s, [data], fds)
            else:
                s.sendall(data)
            return recv_all(s)
        finally:
            s.close()

    def status(self):
        reply = self.command(b"zSTATUS\0")
        assert reply.endswith(b"\0"), reply
        return json.loads(reply[:-1])

    def worker_pids(self):
        st = self.status()
        for g in st["engines"]:
            if g["state"] == "active":
                return list(g["worker_pids"])
        return []

    def engine_pid(self):
        for g in self.status()["engines"]:
            if g["state"] == "active":
                return g["engine_pid"]
        return None

    def faults(self):
        """The active faults, as `scanctl faults --json` shows them."""
        r = self.scanctl("--json", "faults", check=0)
        return json.loads(r.stdout)

    def fault_ids(self):
        return [f["id"] for f in self.faults()]

    def events(self, kind=None, fault=None):
        """The event log, parsed; optionally only one event type or fault."""
        out = []
        try:
            with open(os.path.join(self.state, "events.log")) as fh:
                for line in fh:
                    e = json.loads(line)
                    if kind and e.get("event") != kind:
                        continue
                    if fault and e.get("id") != fault:
                        continue
                    out.append(e)
        except FileNotFoundError:
            pass
        return out

    def wait_for(self, predicate, timeout=10, what="condition"):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            v = predicate()
            if v:
                return v
            time.sleep(0.05)
        raise AssertionError("timed out waiting for " + what)

    def scanctl(self, *args, check=None):
        r = subprocess.run([SCANCTL, "--socket", self.sock] + list(args),
                           capture_output=True, text=True, timeout=120 * SLOW)
        if check is not None and r.returncode != check:
            raise AssertionError("scanctl %s exited %d (wanted %d): %s%s" %
                                 (" ".join(args), r.returncode, check, r.stdout, r.stderr))
        return r


def recv_all(s):
    chunks = []
    while True:
        b = s.recv(65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def instream_bytes(payload, chunk=4096):
    out = [b"zINSTREAM\0"]
    for i in range(0, len(payload), chunk):
        part = payload[i:i + chunk]
        out.append(struct.pack("!L", len(part)) + part)
    out.append(b"\0\0\0\0")
    return b"".join(out)


def write_clamd_conf(path, sock):
    """A clamd.conf for Debian's clamdscan pointing at sock."""
    with open(path, "w") as fh:
        fh.write("LocalSocket %s\n" % sock)
    return path


class DaemonTestCase(unittest.TestCase):
    """A test class with one daemon shared by its tests (setUpClass); the
    daemon must survive every test and stop cleanly at the end."""

    conf = None
    workers = 2
    defs_files = None

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(conf=cls.conf, workers=cls.workers)
        if cls.defs_files is not None:
            make_defs(cls.daemon.defs, cls.defs_files)
        cls.daemon.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.daemon.stop()
        finally:
            cls.daemon.cleanup()

    def tearDown(self):
        # No test may leave the daemon hung or crashed.
        self.assertIsNone(self.daemon.proc.poll(), "scanengined died")
        self.assertEqual(self.daemon.command(b"zPING\0", timeout=20), b"PONG\0")


def plant_bad_generation(store, versions=None):
    """A set that slipped past validation, made current directly in the
    store at store (<StateDirectory>/defs) as an installer would: a copy of
    the active generation plus a malformed signature line, so that the
    engine fails to load it (fault 7, bad definitions). versions: {database
    name: version} to record in its manifest. Returns (good, bad)."""
    good = int(os.readlink(os.path.join(store, "current")).split("-")[1])
    bad = good + 1
    src = os.path.join(store, "gen-%06d" % good)
    dst = os.path.join(store, "gen-%06d" % bad)
    shutil.copytree(src, dst)
    with open(os.path.join(dst, "broken.ndb"), "w") as fh:
        fh.write("Broken.Sig:0:0:this-is-not-hex\n")
    with open(os.path.join(dst, "manifest.json")) as fh:
        m = json.load(fh)
    m["generation"] = bad
    m["fingerprint"] = os.urandom(32).hex()
    for d in m.get("databases", []):
        if versions and d["name"] in versions:
            d["version"] = versions[d["name"]]
    with open(os.path.join(dst, "manifest.json"), "w") as fh:
        json.dump(m, fh)
    tmp = os.path.join(store, "current.tmp")
    os.symlink("gen-%06d" % bad, tmp)
    os.rename(tmp, os.path.join(store, "current"))
    return good, bad


def make_samples():
    """A directory with EICAR and a clean text file: (dir, eicar, clean)."""
    d = tmpdir()
    eicar = os.path.join(d, "eicar.com")
    with open(eicar, "wb") as fh:
        fh.write(EICAR)
    clean = os.path.join(d, "clean.txt")
    with open(clean, "w") as fh:
        fh.write("nothing to see\n")
    return d, eicar, clean
