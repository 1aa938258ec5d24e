"""On-access scanning with fanotify (fanotify/onaccess.h), end to end:
real opens and execs by an unprivileged user (nobody, through setpriv) in
a watched directory, answered by the daemon's scans; the fail policy when
no verdict comes (workers stopped, descriptors failing); kill -9 of the
supervisor with openers waiting; fault 8 when fanotify cannot be set up."""

import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import time
import unittest

from harness import EICAR, SCAN_USER, SLOW, TESTFILES, Daemon, make_defs, tmpdir

NOBODY = 65534
NOT_PERMITTED = "Operation not permitted"


def as_uid(uid, argv):
    return ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups"] + list(argv)


def spawn(uid, argv, stdin=subprocess.DEVNULL):
    """argv as uid (setpriv execs it: the Popen's pid is the program's)."""
    return subprocess.Popen(as_uid(uid, argv), stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def run_as(uid, argv, timeout=30, stdin_data=None):
    """(returncode, stdout bytes, stderr text, pid, seconds)."""
    t0 = time.monotonic()
    p = spawn(uid, argv, stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL)
    try:
        out, err = p.communicate(stdin_data, timeout=timeout * SLOW)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError("%s as uid %d still blocked after %.0f s" %
                             (" ".join(argv), uid, timeout * SLOW))
    return p.returncode, out, err.decode(errors="replace"), p.pid, time.monotonic() - t0


def put(path, data, mode=0o644):
    with open(path, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)
    return path


def oa(daemon):
    return daemon.status()["onaccess"]


def build_elf(directory, name, text):
    """A small static program that prints text."""
    src = os.path.join(directory, name + ".c")
    with open(src, "w") as fh:
        fh.write('#include <stdio.h>\nint main(void) { puts("%s"); return 0; }\n' % text)
    out = os.path.join(directory, name)
    subprocess.run(["gcc", "-static", "-O2", "-o", out, src], check=True, capture_output=True)
    return out


def descendants(pid):
    """Every process below pid (for cleaning up after a SIGKILL)."""
    children = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(p))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def scan_uid():
    return pwd.getpwnam(SCAN_USER).pw_uid


def signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class OnAccessCase(unittest.TestCase):
    """Helpers shared by the classes below."""

    def assertDenied(self, r, what):
        rc, out, err = r[0], r[1], r[2]
        self.assertNotEqual(rc, 0, "%s was allowed: %r" % (what, out[:80]))
        self.assertIn(NOT_PERMITTED, err, what)
        self.assertEqual(out, b"", what)

    def assertAllowed(self, r, what, content=None):
        rc, out, err = r[0], r[1], r[2]
        self.assertEqual(rc, 0, "%s: %s" % (what, err))
        if content is not None:
            self.assertEqual(out, content, what)

    def detections(self, daemon, path=None):
        return [e for e in daemon.events("onaccess_detection") if path is None or e["path"] == path]

    def wait_detection(self, daemon, path, timeout=10):
        return daemon.wait_for(lambda: self.detections(daemon, path), timeout=timeout,
                               what="an onaccess_detection of " + path)[-1]


class PreventionTest(OnAccessCase):
    """One daemon with OnAccessPrevention on a directory prepared before it
    started: every detected sample, EICAR, clean files, two static ELFs
    (one of them detected by an .hdb made for it)."""

    @classmethod
    def setUpClass(cls):
        cls.w = tmpdir("se-oa-watched-")
        cls.clean = {}
        for name in sorted(os.listdir(TESTFILES)):
            if name.startswith("clam"):
                shutil.copyfile(os.path.join(TESTFILES, name), os.path.join(cls.w, name))
                os.chmod(os.path.join(cls.w, name), 0o644)
        put(os.path.join(cls.w, "eicar.com"), EICAR)
        for name, data in (("clean.txt", b"nothing to see\n"),
                           ("random.bin", os.urandom(300 << 10)),
                           ("empty", b""),
                           ("true.elf", open("/bin/true", "rb").read())):
            put(os.path.join(cls.w, name), data)
            cls.clean[name] = data
        # the ELF pair: built elsewhere, copied in
        build = tmpdir()
        bad = build_elf(build, "bad", "infected-elf-ran")
        good = build_elf(build, "good", "clean-elf-ran")
        data = open(bad, "rb").read()
        defs = make_defs(os.path.join(tmpdir(), "defs"))
        with open(os.path.join(defs, "onaccess-elf.hdb"), "w") as fh:
            fh.write("%s:%d:Test.OnAccess.ELF\n" % (hashlib.md5(data).hexdigest(), len(data)))
        os.chmod(os.path.join(defs, "onaccess-elf.hdb"), 0o644)
        cls.bad_elf = put(os.path.join(cls.w, "bad-elf"), data, 0o755)
        cls.good_elf = put(os.path.join(cls.w, "good-elf"), open(good, "rb").read(), 0o755)
        # a directory nobody can write to
        cls.drop = os.path.join(cls.w, "drop")
        os.mkdir(cls.drop)
        os.chown(cls.drop, NOBODY, NOBODY)
        os.chmod(cls.drop, 0o755)
        cls.daemon = Daemon(conf={"OnAccessIncludePath": cls.w, "OnAccessPrevention": "yes"},
                            defs_dir=defs)
        cls.daemon.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.daemon.stop()
        finally:
            cls.daemon.cleanup()

    def setUp(self):
        self.cats = []

    def tearDown(self):
        for p in self.cats:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertIsNone(self.daemon.proc.poll(), "scanengined died")
        self.assertEqual(self.daemon.command(b"zPING\0", timeout=20), b"PONG\0")

    def test_0_status_before_any_open(self):  # first: no directory added yet
        s = oa(self.daemon)
        self.assertTrue(s["enabled"])
        self.assertTrue(s["running"], s)
        self.assertTrue(s["prevention"])
        self.assertEqual(s["fail_policy"], "allow")
        self.assertNotIn("failure", s)
        self.assertEqual(s["watched_directories"], 2)  # the tree and drop/
        self.assertNotIn(8, self.daemon.fault_ids())

    def test_infected_files_denied_clean_read(self):
        # the samples a plain zSCAN of the originals finds
        found = []
        for name in sorted(os.listdir(self.w)):
            orig = os.path.join(TESTFILES, name)
            if name.startswith("clam") and os.path.exists(orig):
                r = self.daemon.command(b"zSCAN " + orig.encode() + b"\0", timeout=60)
                if r.endswith(b" FOUND\0"):
                    found.append(name)
        self.assertGreaterEqual(len(found), 40, "the default definitions detect the samples")
        found.append("eicar.com")
        defs_version = self.daemon.status()["definitions"]["database_version"]
        before = oa(self.daemon)
        pids = {}
        for name in found:
            path = os.path.join(self.w, name)
            r = run_as(NOBODY, ["cat", path])
            self.assertDenied(r, name)
            pids[path] = r[3]
        for name, data in self.clean.items():
            self.assertAllowed(run_as(NOBODY, ["cat", os.path.join(self.w, name)]), name, data)
        after = oa(self.daemon)
        self.assertEqual(after["denied"] - before["denied"], len(found), after)
        self.assertEqual(after["allowed"] - before["allowed"], len(self.clean), after)
        self.assertEqual(after["events"]["open_perm"] - before["events"]["open_perm"],
                         len(found) + len(self.clean), after)
        self.assertEqual(after["detections"] - before["detections"], len(found), after)
        self.assertEqual((after["timed_out"], after["scan_errors"], after["answer_errors"]),
                         (0, 0, 0), after)
        self.assertEqual(after["in_flight"], 0)
        wrong = []
        for path, pid in pids.items():
            ev = self.detections(self.daemon, path)
            self.assertEqual(len(ev), 1, (path, ev))
            e = ev[0]
            sig = "Eicar-Test-Signature" if path.endswith("eicar.com") else "ClamAV-Test-File"
            want = {"action": "denied", "pid": pid, "uid": NOBODY, "exe": "/usr/bin/cat",
                    "definitions_version": defs_version,
                    "message": "%s: %s FOUND (denied; pid %d, uid %d, /usr/bin/cat)"
                               % (path, e["signature"], pid, NOBODY)}
            if {k: e.get(k) for k in want} != want or not e["signature"].startswith(sig):
                wrong.append(e["message"])
        self.assertFalse(wrong, "%d of %d detection events wrong:\n%s" %
                         (len(wrong), len(pids), "\n".join(wrong)))
        # and in the log file
        self.assertIn("%s: Eicar-Test-Signature.UNOFFICIAL FOUND (denied; pid %d, uid %d, "
                      "/usr/bin/cat)" % (os.path.join(self.w, "eicar.com"),
                                         pids[os.path.join(self.w, "eicar.com")], NOBODY),
                      self.daemon.read_log())

    def test_infected_elf_cannot_run_clean_one_runs(self):
        before = oa(self.daemon)
        rc, out, err, pid, _ = run_as(NOBODY, [self.bad_elf])
        self.assertNotEqual(rc, 0)
        self.assertIn(NOT_PERMITTED, err)
        self.assertNotIn(b"infected-elf-ran", out)
        rc, out, err, _, _ = run_as(NOBODY, [self.good_elf])
        self.assertEqual((rc, out), (0, b"clean-elf-ran\n"), err)
        after = oa(self.daemon)
        self.assertGreaterEqual(after["events"]["open_exec_perm"] - before["events"]["open_exec_perm"], 2)
        e = self.wait_detection(self.daemon, self.bad_elf)
        self.assertEqual((e["signature"], e["action"], e["pid"], e["uid"]),
                         ("Test.OnAccess.ELF.UNOFFICIAL", "denied", pid, NOBODY), e)
        self.assertEqual(e["exe"], "/usr/bin/setpriv", e)  # the exec failed: still setpriv

    def test_new_directories_are_watched(self):
        n0 = oa(self.daemon)["watched_directories"]
        top = os.path.join(self.w, "new-%d" % time.monotonic_ns())
        deep = os.path.join(top, "a", "b")
        os.makedirs(deep, mode=0o755)
        for d in (top, os.path.join(top, "a"), deep):
            os.chmod(d, 0o755)
        self.daemon.wait_for(lambda: oa(self.daemon)["watched_directories"] == n0 + 3,
                             timeout=5, what="marks on the three new directories")
        for d in (top, deep):
            p = put(os.path.join(d, "eicar.com"), EICAR)  # written here, by content
            self.assertDenied(run_as(NOBODY, ["cat", p]), p)
            self.assertAllowed(run_as(NOBODY, ["cat", put(os.path.join(d, "ok.txt"), b"ok\n")]),
                               d, b"ok\n")
        # a tree moved in from outside
        outside = os.path.join(tmpdir(), "moved")
        os.makedirs(os.path.join(outside, "sub"))
        for d in (outside, os.path.join(outside, "sub")):
            os.chmod(d, 0o755)
        put(os.path.join(outside, "sub", "eicar.com"), EICAR)
        n1 = oa(self.daemon)["watched_directories"]
        dst = os.path.join(self.w, "moved-%d" % time.monotonic_ns())
        os.rename(outside, dst)
        self.daemon.wait_for(lambda: oa(self.daemon)["watched_directories"] == n1 + 2,
                             timeout=5, what="marks on the moved-in directories")
        self.assertDenied(run_as(NOBODY, ["cat", os.path.join(dst, "sub", "eicar.com")]),
                          "moved-in file")

    def test_written_by_nobody_is_scanned_on_close(self):
        """The writer (a shell: printf is a builtin, the shell itself opens,
        writes and closes) stays alive until the detection is seen, so that
        its uid and executable can be told."""
        path = os.path.join(self.drop, "written-%d.com" % time.monotonic_ns())
        before = oa(self.daemon)
        t0 = time.monotonic()
        p = spawn(NOBODY, ["sh", "-c", 'printf "%s" "$2" > "$1" && { read x || :; }', "sh", path,
                           EICAR.decode()], stdin=subprocess.PIPE)
        self.cats.append(p)
        e = self.wait_detection(self.daemon, path, timeout=1)
        took = time.monotonic() - t0
        p.stdin.close()
        self.assertEqual(p.wait(10), 0, p.stderr.read())
        self.assertLess(took, 1.0 * SLOW)
        self.assertEqual((e["action"], e["pid"], e["uid"], e["exe"]),
                         ("notified", p.pid, NOBODY, os.path.realpath("/bin/sh")), e)
        self.assertTrue(e["signature"].startswith("Eicar-Test-Signature"), e)
        self.assertGreater(oa(self.daemon)["events"]["close_write"], before["events"]["close_write"])
        # and the file is denied to readers from now on
        self.assertDenied(run_as(NOBODY, ["cat", path]), path)


class NotifyOnlyTest(OnAccessCase):
    """Without OnAccessPrevention: opens go through, detections are
    reported (notified)."""

    def setUp(self):
        self.w = tmpdir("se-oa-watched-")
        self.eicar = put(os.path.join(self.w, "eicar.com"), EICAR)
        self.drop = os.path.join(self.w, "drop")
        os.mkdir(self.drop)
        os.chown(self.drop, NOBODY, NOBODY)
        os.chmod(self.drop, 0o755)
        self.d = Daemon(conf={"OnAccessIncludePath": self.w}).start()

    def tearDown(self):
        try:
            self.d.stop()
        finally:
            self.d.cleanup()

    def test_open_reported_write_reported(self):
        s = oa(self.d)
        self.assertEqual((s["running"], s["prevention"]), (True, False), s)
        rc, out, err, pid, _ = run_as(NOBODY, ["cat", self.eicar])
        self.assertEqual((rc, out), (0, EICAR), err)
        e = self.wait_detection(self.d, self.eicar, timeout=2)
        # notify only, the opener does not wait: if cat has exited before
        # its event is read, its uid is unknown (null), but the detection
        # is in the event log all the same
        self.assertEqual((e["action"], e["pid"]), ("notified", pid), e)
        self.assertIn(e["uid"], (NOBODY, None), e)
        # a writer that is gone by the time its close is read: the file is
        # still scanned (its uid may be unknown then: null)
        path = os.path.join(self.drop, "written.com")
        r = run_as(NOBODY, ["sh", "-c", 'cat > "$1"', "sh", path], stdin_data=EICAR)
        t_closed = time.monotonic()
        self.assertAllowed(r, "the write")
        # (the one-second bound is test_written_by_nobody_is_scanned_on_close's;
        # here the point is that a writer gone before its event is read is
        # still scanned)
        e = self.wait_detection(self.d, path, timeout=5)
        self.assertLess(time.monotonic() - t_closed, 5.0 * SLOW)
        self.assertEqual(e["action"], "notified", e)
        self.assertIn(e["uid"], (NOBODY, None), e)
        s = oa(self.d)
        self.assertEqual(s["events"]["open_perm"], 0, s)
        self.assertGreaterEqual(s["events"]["open"], 2, s)
        self.assertGreaterEqual(s["events"]["close_write"], 1, s)
        self.assertEqual(s["denied"], 0, s)


class ExclusionTest(OnAccessCase):
    """Excluded users and trees, the service's own user, and files over
    OnAccessMaxFileSize are allowed without a scan and counted."""

    OTHER = 12345  # a uid with no entry in passwd: not excluded

    @classmethod
    def setUpClass(cls):
        cls.w = tmpdir("se-oa-watched-")
        cls.eicar = put(os.path.join(cls.w, "eicar.com"), EICAR)
        cls.small = put(os.path.join(cls.w, "clam.exe"),
                        open(os.path.join(TESTFILES, "clam.exe"), "rb").read())
        cls.large_data = open(os.path.join(TESTFILES, "clam-aspack.exe"), "rb").read()
        cls.large = put(os.path.join(cls.w, "clam-aspack.exe"), cls.large_data)
        assert os.path.getsize(cls.small) < 1024 < os.path.getsize(cls.large)
        cls.xdir = os.path.join(cls.w, "excluded")
        os.mkdir(cls.xdir, 0o755)
        cls.xeicar = put(os.path.join(cls.xdir, "eicar.com"), EICAR)
        cls.daemon = Daemon(conf={"OnAccessIncludePath": cls.w, "OnAccessPrevention": "yes",
                                  "OnAccessExcludeUID": str(NOBODY),
                                  "OnAccessExcludeUname": "daemon",
                                  "OnAccessExcludePath": cls.xdir,
                                  "OnAccessMaxFileSize": "1K"})
        cls.daemon.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.daemon.stop()
        finally:
            cls.daemon.cleanup()

    def test_excluded_uid_and_name(self):
        for uid in (NOBODY, pwd.getpwnam("daemon").pw_uid, scan_uid()):
            before = oa(self.daemon)
            self.assertAllowed(run_as(uid, ["cat", self.eicar]), "uid %d" % uid, EICAR)
            after = oa(self.daemon)
            self.assertEqual(after["excluded"] - before["excluded"], 1, (uid, after))
            self.assertEqual(after["denied"], before["denied"])
        self.assertEqual(self.detections(self.daemon), [])
        # root is not excluded by default, nor is any other user
        for uid in (0, self.OTHER):
            self.assertDenied(run_as(uid, ["cat", self.eicar]), "uid %d" % uid)

    def test_excluded_tree(self):
        # (not even marked today: no event at all; settled as excluded
        # would do too) never scanned
        before = oa(self.daemon)
        self.assertAllowed(run_as(self.OTHER, ["cat", self.xeicar]), "excluded tree", EICAR)
        after = oa(self.daemon)
        self.assertEqual((after["scans"], after["denied"]), (before["scans"], before["denied"]))
        self.assertEqual(self.detections(self.daemon, self.xeicar), [])
        # and a directory created in it later is not watched either
        n = after["watched_directories"]
        sub = os.path.join(self.xdir, "sub-%d" % time.monotonic_ns())
        os.mkdir(sub, 0o755)
        x = put(os.path.join(sub, "eicar.com"), EICAR)
        time.sleep(0.2)
        self.assertAllowed(run_as(self.OTHER, ["cat", x]), "new dir in excluded tree", EICAR)
        self.assertEqual(oa(self.daemon)["watched_directories"], n)

    def test_max_file_size(self):
        before = oa(self.daemon)
        self.assertAllowed(run_as(self.OTHER, ["cat", self.large]), "too large", self.large_data)
        after = oa(self.daemon)
        self.assertEqual(after["too_large"] - before["too_large"], 1, after)
        self.assertEqual(after["denied"], before["denied"])
        self.assertEqual(self.detections(self.daemon, self.large), [])
        self.assertDenied(run_as(self.OTHER, ["cat", self.small]), "small enough")


class StoppedWorkersCase(OnAccessCase):
    """A daemon whose workers the test SIGSTOPs (SIGCONT at the end). Files
    are written before the daemon starts: the test runs as root, which is
    not excluded, and must open nothing in the watched tree itself."""

    conf = {}
    workers = 2

    def setUp(self):
        self.w = tmpdir("se-oa-watched-")
        self.d = Daemon(conf=dict({"OnAccessIncludePath": self.w, "OnAccessPrevention": "yes"},
                                  **self.conf), workers=self.workers)
        self.content = {}
        self.stopped = []
        self.cats = []

    def start(self, **env):
        if env:
            self.d.env = env
        self.d.start()

    def stop_workers(self):
        self.stopped = self.d.worker_pids()
        self.assertEqual(len(self.stopped), self.workers)
        signal_all(self.stopped, signal.SIGSTOP)

    def resume_workers(self):
        signal_all(self.stopped, signal.SIGCONT)
        self.stopped = []

    def tearDown(self):
        for p in self.cats:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.resume_workers()
        try:
            self.d.stop()
        finally:
            self.d.cleanup()

    def clean_file(self, name, data=None):
        data = data or ("%s %d\n" % (name, time.monotonic_ns())).encode()
        path = put(os.path.join(self.w, name), data)
        self.content[path] = data
        return path

    def cat_result(self, p, path, timeout):
        """None if p read path's content; else what happened."""
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            return "still blocked"
        if p.returncode != 0 or out != self.content[path]:
            return (p.returncode, out[:40], err.decode(errors="replace"))
        return None


class PermTimeoutTest(StoppedWorkersCase):
    conf = {"OnAccessPermTimeout": "1"}

    def test_allow_policy_after_the_timeout(self):
        f = self.clean_file("clean.txt")
        self.start()
        self.stop_workers()
        before = oa(self.d)
        rc, out, err, _, took = run_as(NOBODY, ["cat", f], timeout=10)
        self.assertEqual((rc, out), (0, self.content[f]), err)
        self.assertGreaterEqual(took, 0.9, "answered before the timeout: not waiting for a scan?")
        self.assertLess(took, 3.0 * SLOW)
        after = oa(self.d)
        self.assertEqual(after["timed_out"] - before["timed_out"], 1, after)
        self.assertEqual(after["allowed"] - before["allowed"], 1, after)
        self.assertEqual(after["denied"], before["denied"], after)
        self.assertGreaterEqual(after["max_latency_us"], 900000)
        # its scan is still held by a stopped worker; it ends when they go on
        self.assertEqual(after["in_flight"], 1, after)
        self.resume_workers()
        self.d.wait_for(lambda: oa(self.d)["in_flight"] == 0, timeout=10, what="the late scan back")
        self.assertEqual(oa(self.d)["answer_errors"], 0)

    def test_infected_opened_after_timeout_is_reported(self):
        """A late verdict cannot deny any more: reported as allowed (timed out)."""
        f = put(os.path.join(self.w, "late.com"), EICAR)
        self.start()
        self.stop_workers()
        rc, out, err, pid, took = run_as(NOBODY, ["cat", f], timeout=10)
        self.assertEqual((rc, out), (0, EICAR), err)
        self.resume_workers()
        e = self.wait_detection(self.d, f, timeout=10)
        self.assertEqual((e["action"], e["pid"], e["uid"]), ("allowed (timed out)", pid, NOBODY), e)
        s = oa(self.d)
        self.assertEqual((s["timed_out"], s["allowed"], s["denied"], s["answer_errors"]),
                         (1, 1, 0, 0), s)

    def test_clean_verdict_is_remembered(self):
        """A file found clean is not scanned again: with the workers
        stopped, it still opens at once (an uncached one waits)."""
        f = self.clean_file("scanned-once.txt")
        self.start()
        self.assertAllowed(run_as(NOBODY, ["cat", f]), "first open", self.content[f])
        self.d.wait_for(lambda: oa(self.d)["in_flight"] == 0, timeout=5, what="the scan back")
        scans = oa(self.d)["scans"]
        self.stop_workers()
        rc, out, err, _, took = run_as(NOBODY, ["cat", f], timeout=10)
        self.assertEqual((rc, out), (0, self.content[f]), err)
        self.assertLess(took, 0.5, "a remembered clean file waited for a scan")
        s = oa(self.d)
        self.assertEqual((s["scans"], s["timed_out"]), (scans, 0), s)


class DescriptorLimitTest(StoppedWorkersCase):
    """Events in flight stay within RLIMIT_NOFILE: the kernel denies an
    open whose event descriptor it cannot make (EMFILE), silently. With
    the limit at 600 and the workers stopped, 300 openers of distinct files
    at once would need 600 descriptors (an event's, its scan's duplicate):
    those over the cap are answered by the fail policy at once, the others
    at their deadline; none is denied."""

    conf = {"OnAccessPermTimeout": "2"}

    def test_events_in_flight_stay_within_the_descriptor_limit(self):
        files = [self.clean_file("f%03d.txt" % i) for i in range(300)]
        self.d.argv_prefix = ["prlimit", "--nofile=600:600", "sh", "-c"]
        self.start()
        s = oa(self.d)
        self.assertEqual(s["max_in_flight"], (600 - 256 - 16) // 3, s)
        self.assertIn("at most %d events in flight (RLIMIT_NOFILE 600)" % s["max_in_flight"],
                      self.d.read_log())
        self.stop_workers()
        for f in files:
            self.cats.append(spawn(NOBODY, ["cat", f]))
        bad = {}
        for p, f in zip(self.cats, files):
            why = self.cat_result(p, f, timeout=30 * SLOW)
            if why:
                bad[f] = why
        self.assertEqual(bad, {}, "%d of %d opens failed" % (len(bad), len(files)))
        s = oa(self.d)
        self.assertGreater(s["overloaded"], 0, s)
        self.assertGreater(s["timed_out"], 0, s)
        self.assertEqual((s["denied"], s["answer_errors"]), (0, 0), s)
        self.assertEqual(s["allowed"], s["events"]["open_perm"], s)


class PermTimeoutDenyTest(StoppedWorkersCase):
    conf = {"OnAccessPermTimeout": "1", "OnAccessFailPolicy": "deny",
            "OnAccessMaxFileSize": "1K"}

    def test_deny_policy_after_the_timeout(self):
        f = self.clean_file("clean.txt")
        self.start()
        self.stop_workers()
        before = oa(self.d)
        self.assertEqual(before["fail_policy"], "deny")
        r = run_as(NOBODY, ["cat", f], timeout=10)
        self.assertDenied(r, "clean file, no verdict, deny policy")
        self.assertGreaterEqual(r[4], 0.9)
        self.assertLess(r[4], 3.0 * SLOW)
        after = oa(self.d)
        self.assertEqual(after["timed_out"] - before["timed_out"], 1, after)
        self.assertEqual(after["denied"] - before["denied"], 1, after)
        self.assertEqual(self.detections(self.d), [])

    def test_settled_events_release_no_other_opener(self):
        """One opener waits for its verdict (workers stopped) while many
        events around it are settled at once (too large, the service's own
        user: their descriptors closed right away): none of those answers
        reaches it; it is answered once, by the fail policy, at its
        deadline."""
        waiting = self.clean_file("waiting.txt")
        big = self.clean_file("big.bin", os.urandom(4096))
        small = [self.clean_file("s%d.txt" % i) for i in range(10)]
        self.start()
        self.stop_workers()
        t0 = time.monotonic()
        p = spawn(NOBODY, ["cat", waiting])
        self.cats.append(p)
        self.d.wait_for(lambda: oa(self.d)["in_flight"] == 1, timeout=5, what="the opener waiting")
        for _ in range(5):
            self.assertAllowed(run_as(NOBODY, ["cat", big]), "too large", self.content[big])
            for f in small:
                self.assertAllowed(run_as(scan_uid(), ["cat", f]), "scan user", self.content[f])
        self.assertIsNone(p.poll(), "the waiting opener was released by another event's answer")
        out, err = p.communicate(timeout=10 * SLOW)
        took = time.monotonic() - t0
        self.assertNotEqual(p.returncode, 0, out)
        self.assertIn(NOT_PERMITTED, err.decode())
        self.assertLess(took, 3.0 * SLOW)
        s = oa(self.d)
        self.assertEqual((s["timed_out"], s["too_large"], s["excluded"]), (1, 5, 50), s)
        self.assertEqual((s["denied"], s["allowed"], s["answer_errors"]), (1, 55, 0), s)


class KillSupervisorTest(StoppedWorkersCase):
    conf = {"OnAccessPermTimeout": "60"}
    N = 50

    def test_kill_9_releases_every_waiting_opener(self):
        files = [self.clean_file("f%02d.txt" % i) for i in range(self.N)]
        eicar = put(os.path.join(self.w, "eicar.com"), EICAR)
        self.start()
        self.stop_workers()
        family = descendants(self.d.proc.pid)
        self.cats = [spawn(NOBODY, ["cat", f]) for f in files]
        try:
            self.d.wait_for(lambda: oa(self.d)["in_flight"] == self.N, timeout=10,
                            what="%d openers waiting" % self.N)
        except AssertionError:
            raise AssertionError("in_flight %s" % oa(self.d)["in_flight"])
        time.sleep(0.2)
        self.assertEqual([p.poll() for p in self.cats], [None] * self.N, "an opener was answered")
        os.kill(self.d.proc.pid, signal.SIGKILL)
        t0 = time.monotonic()
        self.d.proc.wait()
        results = []
        for p, f in zip(self.cats, files):
            r = self.cat_result(p, f, max(0.1, t0 + 5 * SLOW - time.monotonic()))
            if r:
                results.append((f, r))
        took = time.monotonic() - t0
        # what is left of the killed daemon (stopped workers, zygote)
        leftover = [pid for pid in family if os.path.exists("/proc/%d" % pid)]
        signal_all(leftover, signal.SIGKILL)
        self.stopped = []
        self.d.proc = None
        self.d.stderr.close()
        self.assertEqual(results, [], "openers not released by the kill (%.1f s)" % took)
        # the same configuration again: prevention works
        self.start()
        s = oa(self.d)
        self.assertTrue(s["running"], s)
        self.assertDenied(run_as(NOBODY, ["cat", eicar]), "after the restart")
        self.assertAllowed(run_as(NOBODY, ["cat", files[0]]), "after the restart",
                           self.content[files[0]])

    def test_same_file_opens_share_one_scan(self):
        """Openers of one file waiting together: one scan, one verdict
        for each (denied, reported for each), none left waiting."""
        eicar = put(os.path.join(self.w, "shared.com"), EICAR)
        self.start()
        self.stop_workers()
        before = oa(self.d)
        self.cats = [spawn(NOBODY, ["cat", eicar]) for _ in range(5)]
        self.d.wait_for(lambda: oa(self.d)["in_flight"] == 5, timeout=10, what="5 openers waiting")
        s = oa(self.d)
        self.assertEqual((s["scans"] - before["scans"], s["joined"] - before["joined"]), (1, 4), s)
        self.resume_workers()
        t0 = time.monotonic()
        for p in self.cats:
            try:
                out, err = p.communicate(timeout=max(0.1, t0 + 10 * SLOW - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise AssertionError("opener %d still waits after the verdict" % p.pid)
            self.assertDenied((p.returncode, out, err.decode()), "opener %d" % p.pid)
        ev = self.detections(self.d, eicar)
        self.assertEqual(sorted(e["pid"] for e in ev), sorted(p.pid for p in self.cats), ev)
        self.assertEqual({(e["action"], e["uid"], e["exe"]) for e in ev},
                         {("denied", NOBODY, "/usr/bin/cat")}, ev)
        s = oa(self.d)
        self.assertEqual((s["denied"] - before["denied"], s["in_flight"], s["answer_errors"]),
                         (5, 0, 0), s)


class InjectedDupFailureTest(StoppedWorkersCase):
    """SCANENGINE_FAULT_INJECT=onaccess.dup: no event can be scanned; each
    is answered once, by the fail policy, at once (OnAccessPermTimeout is
    30 s: an answer by the timeout would show)."""

    conf = {"OnAccessPermTimeout": "30"}
    N = 20

    def setUp(self):
        super().setUp()
        self.files = [self.clean_file("c%02d.txt" % i) for i in range(self.N)]
        self.eicar = put(os.path.join(self.w, "eicar.com"), EICAR)

    def cats_at_once(self):
        t0 = time.monotonic()
        self.cats = [spawn(NOBODY, ["cat", f]) for f in self.files]
        res = []
        for p in self.cats:
            try:
                out, err = p.communicate(timeout=max(0.1, t0 + 10 * SLOW - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise AssertionError("an opener still waits %.0f s on" % (10 * SLOW))
            res.append((p.returncode, out, err.decode()))
        return res, time.monotonic() - t0

    def test_deny_policy(self):
        self.d.conf["OnAccessFailPolicy"] = "deny"
        self.start(SCANENGINE_FAULT_INJECT="onaccess.dup")
        res, took = self.cats_at_once()
        for f, r in zip(self.files, res):
            self.assertDenied(r, f)
        self.assertLess(took, 5.0 * SLOW, "waited for something")
        s = oa(self.d)
        self.assertEqual((s["denied"], s["allowed"], s["scan_errors"], s["timed_out"]),
                         (self.N, 0, self.N, 0), s)
        self.assertEqual((s["answer_errors"], s["in_flight"]), (0, 0), s)
        self.assertLess(s["max_latency_us"], 1000000 * SLOW, s)

    def test_allow_policy(self):
        self.start(SCANENGINE_FAULT_INJECT="onaccess.dup")
        res, took = self.cats_at_once()
        for f, r in zip(self.files, res):
            self.assertAllowed(r, f, self.content[f])
        self.assertLess(took, 5.0 * SLOW, "waited for something")
        # not scanned: even EICAR goes through
        self.assertAllowed(run_as(NOBODY, ["cat", self.eicar]), "unscanned", EICAR)
        s = oa(self.d)
        self.assertEqual((s["allowed"], s["denied"], s["scan_errors"], s["timed_out"]),
                         (self.N + 1, 0, self.N + 1, 0), s)
        self.assertEqual((s["answer_errors"], s["in_flight"], s["detections"]), (0, 0, 0), s)


class Fault8Test(OnAccessCase):

    def setUp(self):
        self.w = tmpdir("se-oa-watched-")
        self.eicar = put(os.path.join(self.w, "eicar.com"), EICAR)

    def fault8(self, d):
        f = [f for f in d.faults() if f["id"] == 8]
        return f[0] if f else None

    def test_without_cap_sys_admin(self):
        if not shutil.which("capsh"):
            self.skipTest("capsh (libcap2-bin) is not installed")
        d = Daemon(conf={"OnAccessIncludePath": self.w, "OnAccessPrevention": "yes"})
        d.argv_prefix = ["capsh", "--drop=cap_sys_admin", "--", "-c"]
        try:
            d.start()
            with open("/proc/%d/status" % d.proc.pid) as fh:
                capeff = int([l for l in fh if l.startswith("CapEff:")][0].split()[1], 16)
            self.assertFalse(capeff & (1 << 21), "the daemon still has CAP_SYS_ADMIN")
            f8 = d.wait_for(lambda: self.fault8(d), timeout=10, what="fault 8")
            self.assertIn(NOT_PERMITTED, f8["reason"], f8)
            self.assertIn("fanotify_init", f8["reason"], f8)
            s = oa(d)
            self.assertEqual((s["enabled"], s["running"]), (True, False), s)
            self.assertIn(NOT_PERMITTED, s["failure"], s)
            self.assertEqual(d.command(b"zSCAN " + self.eicar.encode() + b"\0"),
                             self.eicar.encode() + b": Eicar-Test-Signature.UNOFFICIAL FOUND\0")
            # not watched: nobody reads it
            self.assertAllowed(run_as(NOBODY, ["cat", self.eicar]), "unwatched", EICAR)
            self.assertEqual(len(d.events("raise", 8)), 1)
            d.stop()
        finally:
            d.cleanup()

    def test_missing_include_path_then_reload(self):
        missing = os.path.join(self.w, "later")
        d = Daemon(conf={"OnAccessIncludePath": missing, "OnAccessPrevention": "yes"})
        try:
            d.start()
            f8 = d.wait_for(lambda: self.fault8(d), timeout=10, what="fault 8")
            self.assertIn(missing, f8["reason"], f8)
            self.assertIn("No such file or directory", f8["reason"], f8)
            s = oa(d)
            self.assertEqual((s["enabled"], s["running"]), (True, False), s)
            self.assertEqual(d.command(b"zSCAN " + self.eicar.encode() + b"\0"),
                             self.eicar.encode() + b": Eicar-Test-Signature.UNOFFICIAL FOUND\0")
            os.mkdir(missing, 0o755)
            e = put(os.path.join(missing, "eicar.com"), EICAR)
            self.assertEqual(d.command(b"zRELOAD\0"), b"RELOADING\0")
            d.wait_for(lambda: 8 not in d.fault_ids(), timeout=10, what="fault 8 cleared")
            s = oa(d)
            self.assertTrue(s["running"], s)
            self.assertNotIn("failure", s)
            self.assertEqual(s["watched_directories"], 1, s)
            self.assertDenied(run_as(NOBODY, ["cat", e]), "watched after RELOAD")
            self.assertEqual([x["event"] for x in d.events(fault=8)], ["raise", "clear"])
            d.stop()
        finally:
            d.cleanup()


if __name__ == "__main__":
    unittest.main()
