"""On-access scanning (issue 6): the verdict cache (a clean file opened
10 000 times is scanned once; a write, a file open for writing, and new
definitions make it scanned again), the overload fault 18 under a storm
of opens from 8 processes (every permission event answered, the storm's
processes named, cleared afterwards), quarantine, and the process
exclusion. Real fanotify, real workers; the opener is nobody (setpriv)."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from harness import EICAR, SLOW, Daemon, tmpdir

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

# opens every file of a directory whose name ends in a given digit, counts
# the opens that succeeded and failed, prints "<ok> <failed>"
STORM = r"""
import os, sys
ok = bad = 0
for f in sorted(os.listdir(sys.argv[1])):
    if f.endswith(sys.argv[2]):
        try:
            os.close(os.open(os.path.join(sys.argv[1], f), os.O_RDONLY))
            ok += 1
        except OSError:
            bad += 1
print(ok, bad)
"""


def as_nobody(*cmd, **kw):
    return subprocess.run(NOBODY + list(cmd), capture_output=True, timeout=60 * SLOW, **kw)


class OnAccessTestCase(unittest.TestCase):
    def setUp(self):
        self.w = tmpdir("se-oa-")
        os.chmod(self.w, 0o755)
        self.d = None

    def tearDown(self):
        if self.d:
            self.d.finish()

    def put(self, name, data, mode=0o644):
        p = os.path.join(self.w, name)
        with open(p, "wb") as fh:
            fh.write(data)
        os.chmod(p, mode)
        return p

    def start(self, **conf):
        c = {"OnAccessIncludePath": self.w, "OnAccessPrevention": "yes"}
        c.update(conf)
        self.d = Daemon(conf=c).start()
        self.d.wait_for(lambda: self.oa()["running"], timeout=20, what="on-access running")
        return self.d

    def oa(self):
        return self.d.status()["onaccess"]


class CacheTest(OnAccessTestCase):
    """Point 2: scanned once; again after a write; again after a reload."""

    def test_scanned_once_then_again_after_write_and_reload(self):
        clean = self.put("clean.txt", b"nothing to see\n", 0o666)
        self.start()
        r = as_nobody("sh", "-c", "for i in $(seq 1 10000); do cat %s; done >/dev/null" % clean)
        self.assertEqual(r.returncode, 0, r.stderr)
        oa = self.oa()
        self.assertEqual(oa["scans"], 1, oa)
        # the ignore mark made the other 9 999 opens invisible to user space
        self.assertEqual(oa["events"]["open_perm"], 1, oa)
        self.assertEqual(oa["marks_placed"], 1, oa)

        r = as_nobody("sh", "-c", "echo x >> %s && cat %s >/dev/null" % (clean, clean))
        self.assertEqual(r.returncode, 0, r.stderr)
        oa2 = self.oa()
        # the write removed the mark: the next open is scanned (and the
        # close-write was scanned too)
        self.assertEqual(oa2["events"]["close_write"], 1, oa2)
        self.assertEqual(oa2["scans"], 3, oa2)

        gen = self.d.status()["engine_generation"]
        self.d.command(b"zRELOAD\0")
        self.d.wait_for(lambda: self.d.status()["engine_generation"] != gen or
                        self.oa()["cache_flushes"] >= 1, timeout=30 * SLOW,
                        what="the reload")
        self.d.wait_for(lambda: self.oa()["cache_flushes"] >= 1, timeout=30 * SLOW,
                        what="the verdicts forgotten")
        # removed one by one, by file handle: the tree's marks stayed
        self.assertRegex(self.d.read_log(),
                         r"clean verdicts forgotten \(new definitions\): 1 ignore marks removed")
        self.assertNotIn("marks renewed", self.d.read_log())
        as_nobody("cat", clean)
        oa3 = self.oa()
        self.assertEqual(oa3["scans"], 4, oa3)
        as_nobody("cat", clean)
        self.assertEqual(self.oa()["scans"], 4)
        # the counters in clamd's STATS and in scanctl status
        self.assertRegex(self.d.command(b"zSTATS\0"),
                         rb"\tSTATS 0\.000000 \n\nONACCESS: running events \d+ allowed \d+ "
                         rb"denied 0 timed_out 0 cache_hits \d+ in_flight 0 "
                         rb"max_latency_us \d+\n\nMEMSTATS: ")
        human = self.d.scanctl("status").stdout
        self.assertRegex(human, r"on-access +running, prevention, fail policy allow\n")
        self.assertRegex(human, r"on-access cache +4 scans, \d+ hits in user space, 3 marks")

    def test_new_definitions_that_detect_a_cached_file_deny_it(self):
        # a file found clean (and cached in the kernel) is scanned again
        # under new definitions, which now detect it
        data = b"harmless until the next update\n"
        f = self.put("soon.txt", data)
        self.start()
        r = as_nobody("sh", "-c", "for i in $(seq 1 100); do cat %s; done >/dev/null" % f)
        self.assertEqual(r.returncode, 0, r.stderr)
        oa = self.oa()
        self.assertEqual((oa["scans"], oa["events"]["open_perm"]), (1, 1), oa)
        db = os.path.join(self.d.defs, "zz-oa-new.hdb")
        with open(db, "w") as fh:
            fh.write("%s:%d:Scanengine.Test.OnAccessNewDefs\n" % (
                hashlib.md5(data).hexdigest(), len(data)))
        os.chmod(db, 0o644)
        gen = self.d.status()["engine_generation"]
        self.assertEqual(self.d.command(b"zRELOAD\0"), b"RELOADING\0")
        self.d.wait_for(lambda: self.d.status()["engine_generation"] != gen and
                        self.oa()["cache_flushes"] >= 1, timeout=60 * SLOW,
                        what="the new definitions and the verdicts forgotten")
        r = as_nobody("cat", f)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn(b"Operation not permitted", r.stderr)
        ev = self.d.wait_for(lambda: self.d.events("onaccess_detection"), timeout=10,
                             what="the detection")[-1]
        self.assertIn("Scanengine.Test.OnAccessNewDefs", json.dumps(ev))

    def test_file_open_for_write_is_scanned_again_after_the_writer_closes(self):
        f = self.put("growing.txt", b"", 0o666)
        self.start()
        writer = subprocess.Popen(NOBODY + ["/usr/bin/python3", "-c",
                                            "import sys, time\n"
                                            "fh = open(sys.argv[1], 'a')\n"
                                            "sys.stdin.readline()\n"
                                            "fh.write(sys.argv[2]); fh.close()\n", f,
                                            EICAR.decode()],
                                  stdin=subprocess.PIPE, text=True)
        try:
            time.sleep(0.5)  # the writer holds it open for writing now
            r = as_nobody("cat", f)
            self.assertEqual(r.returncode, 0, r.stderr)
            scans = self.oa()["scans"]
            writer.stdin.write("go\n")
            writer.stdin.flush()
            writer.wait(timeout=30)
        finally:
            if writer.poll() is None:
                writer.kill()
        # now it holds EICAR: no mark may have stuck from the read above
        self.d.wait_for(lambda: self.d.events("onaccess_detection"), timeout=10,
                        what="the close-write detection")
        r = as_nobody("cat", f)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn(b"Operation not permitted", r.stderr)
        self.assertGreater(self.oa()["scans"], scans)

    def test_concurrent_opens_of_one_file_share_a_scan(self):
        f = self.put("shared.bin", os.urandom(4 << 20))
        self.start(MaxThreads="1")
        procs = [subprocess.Popen(NOBODY + ["cat", f], stdout=subprocess.DEVNULL)
                 for _ in range(8)]
        for p in procs:
            self.assertEqual(p.wait(timeout=60), 0)
        oa = self.oa()
        # one scan answered every opener that came while it ran
        self.assertEqual(oa["scans"] + oa["joined"] + oa["cache_hits"] +
                         (8 - oa["events"]["open_perm"]), 8, oa)
        self.assertLess(oa["scans"], 8, oa)


class OverloadTest(OnAccessTestCase):
    """Point 6: a storm of opens from 8 processes: no hang, every permission
    event answered, fault 18 with the storm's processes, cleared after."""

    def test_storm_raises_and_clears_fault_18(self):
        n = 200000
        # on tmpfs: 200 000 files take 90 s to create on this disk, 4 s there
        self.w = tempfile.mkdtemp(prefix="se-oa-storm-", dir="/dev/shm")
        self.addCleanup(shutil.rmtree, self.w, True)
        os.chmod(self.w, 0o755)
        for i in range(n):
            with open(os.path.join(self.w, "f%06d.%d" % (i, i % 8)), "w") as fh:
                fh.write("file %d\n" % i)
        self.start(OnAccessQueueHigh="4", OnAccessQueueLow="2", OverloadSeconds="1")
        before = self.oa()
        t0 = time.time()
        procs = [subprocess.Popen(NOBODY + [sys.executable if os.path.exists(sys.executable)
                                            else "/usr/bin/python3", "-c", STORM, self.w,
                                            str(k)],
                                  stdout=subprocess.PIPE, text=True)
                 for k in range(8)]
        pids = {p.pid for p in procs}
        counts = [tuple(map(int, p.communicate(timeout=300)[0].split())) for p in procs]
        elapsed = time.time() - t0
        # every open came back (none hung), and all were allowed
        self.assertEqual(sum(c[0] for c in counts), n, counts)
        self.assertEqual(sum(c[1] for c in counts), 0, counts)
        oa = self.oa()
        # every permission event the kernel sent got its one answer
        answered = (oa["allowed"] + oa["denied"]) - (before["allowed"] + before["denied"])
        sent = oa["events"]["open_perm"] - before["events"]["open_perm"]
        self.assertEqual(sent, n, oa)
        self.assertEqual(answered, sent, oa)
        self.assertEqual(oa["answer_errors"], 0, oa)
        self.assertGreater(oa["overloaded"], 0, oa)
        raised = [e for e in self.d.events() if e.get("id") == 18 and e["event"] == "raise"]
        self.assertEqual(len(raised), 1, raised)
        top = raised[0]["detail"]["top"]
        # the storm's processes (setpriv execs python in place: same pids)
        self.assertTrue(top and all(t["pid"] in pids for t in top), (top, pids))
        self.assertIn("python3", top[0]["exe"])
        self.assertIn("most events from: pid", raised[0]["reason"])
        self.d.wait_for(lambda: self.d.events("clear", 18), timeout=30,
                        what="fault 18 cleared after the storm")
        self.assertNotIn(18, self.d.fault_ids())
        self.assertFalse(self.oa()["overload"])
        print("storm: %d opens from 8 processes in %.1f s" % (n, elapsed), file=sys.stderr)


class QuarantineAndExclusionTest(OnAccessTestCase):
    def test_move_to_quarantine(self):
        q = tmpdir()
        f = self.put("eicar.com", EICAR)
        self.start(OnAccessQuarantineDirectory=q, OnAccessQuarantineAction="move")
        r = as_nobody("cat", f)
        self.assertEqual(r.returncode, 1, r)
        self.d.wait_for(lambda: not os.path.exists(f), timeout=10, what="the original removed")
        ev = self.d.events("onaccess_detection")[-1]
        self.assertEqual(os.path.dirname(ev["quarantine"]), q)
        with open(ev["quarantine"], "rb") as fh:
            self.assertEqual(fh.read(), EICAR)
        self.assertEqual(os.stat(ev["quarantine"]).st_mode & 0o777, 0o600)
        self.assertIn("moved to " + ev["quarantine"], ev["message"])

    def test_copy_to_quarantine_keeps_the_original(self):
        q = tmpdir()
        f = self.put("eicar.com", EICAR)
        self.start(OnAccessQuarantineDirectory=q)
        as_nobody("cat", f)
        self.d.wait_for(lambda: self.d.events("onaccess_detection"), timeout=10,
                        what="the detection")
        ev = self.d.events("onaccess_detection")[-1]
        self.assertTrue(os.path.exists(f))
        self.assertTrue(os.path.exists(ev["quarantine"]))

    def test_excluded_process_is_not_scanned(self):
        f = self.put("eicar.com", EICAR)
        self.start(OnAccessExcludeProcess="/usr/bin/cat")
        r = as_nobody("cat", f)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout, EICAR)
        self.assertGreaterEqual(self.oa()["excluded"], 1)
        r = as_nobody("head", "-c", "100", f)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn(b"Operation not permitted", r.stderr)


class MountAndRootTest(OnAccessTestCase):
    def test_mount_path(self):
        mnt = tmpdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "se-oa-test", mnt],
                       check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", mnt])
        eicar = os.path.join(mnt, "deep", "er")
        os.makedirs(eicar)
        os.chmod(os.path.join(mnt, "deep"), 0o755)
        os.chmod(eicar, 0o755)
        eicar = os.path.join(eicar, "eicar.com")
        with open(eicar, "wb") as fh:
            fh.write(EICAR)
        os.chmod(eicar, 0o644)
        self.start(OnAccessIncludePath=None, OnAccessMountPath=mnt)
        r = as_nobody("cat", eicar)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn(b"Operation not permitted", r.stderr)
        # a directory made later needs no mark of its own on a mount
        later = os.path.join(mnt, "later")
        os.mkdir(later)
        os.chmod(later, 0o755)
        with open(os.path.join(later, "e.com"), "wb") as fh:
            fh.write(EICAR)
        os.chmod(os.path.join(later, "e.com"), 0o644)
        self.assertEqual(as_nobody("cat", os.path.join(later, "e.com")).returncode, 1)
        self.assertEqual(self.oa()["watched_directories"], 0)

    def mount_tmpfs(self, where):
        os.makedirs(where, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "se-oa-test", where],
                       check=True)
        # (a test may have unmounted it already)
        self.addCleanup(subprocess.run, ["umount", "-l", where], capture_output=True)
        return where

    def put_in(self, path, data):
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)
        os.chmod(path, 0o644)
        return path

    def test_include_path_on_a_mount_root_is_a_mount_mark(self):
        # an include path that is a mount root: one mount mark for it and
        # one for each mount below it, no directory marks
        mnt = self.mount_tmpfs(tmpdir())
        inner = self.mount_tmpfs(os.path.join(mnt, "inner"))
        eicar = self.put_in(os.path.join(mnt, "deep", "er", "eicar.com"), EICAR)
        inner_eicar = self.put_in(os.path.join(inner, "sub", "e.com"), EICAR)
        clean = self.put_in(os.path.join(inner, "clean.txt"), b"nothing to see\n")
        self.start(OnAccessIncludePath=mnt)
        oa = self.oa()
        self.assertEqual((oa["watched_mounts"], oa["watched_directories"]), (2, 0), oa)
        for f in (eicar, inner_eicar):
            r = as_nobody("cat", f)
            self.assertEqual(r.returncode, 1, r)
            self.assertIn(b"Operation not permitted", r.stderr)
        # a directory made later is covered at once: no mark to wait for
        later = self.put_in(os.path.join(mnt, "later", "e.com"), EICAR)
        os.chmod(os.path.dirname(later), 0o755)
        self.assertEqual(as_nobody("cat", later).returncode, 1)
        # the verdict cache works through the mount mark: 1 000 opens of a
        # clean file on the inner mount, one permission event
        oa0 = self.oa()
        r = as_nobody("sh", "-c", "for i in $(seq 1 1000); do cat %s; done >/dev/null" % clean)
        self.assertEqual(r.returncode, 0, r.stderr)
        oa = self.oa()
        self.assertEqual(oa["marks_placed"] - oa0["marks_placed"], 1, oa)
        self.assertEqual(oa["events"]["open_perm"] - oa0["events"]["open_perm"], 1, oa)
        # new definitions: that mark is removed by file handle through the
        # inner mount's root (no flush), and the file is scanned again
        self.d.command(b"zRELOAD\0")
        self.d.wait_for(lambda: self.oa()["cache_flushes"] >= 1, timeout=30 * SLOW,
                        what="the verdicts forgotten")
        self.assertRegex(self.d.read_log(),
                         r"clean verdicts forgotten \(new definitions\): 1 ignore marks removed")
        self.assertNotIn("marks renewed", self.d.read_log())
        scans = self.oa()["scans"]
        self.assertEqual(as_nobody("cat", clean).returncode, 0)
        self.assertEqual(self.oa()["scans"], scans + 1)
        self.assertIn("0 directories and 2 mounts of include paths watched", self.d.read_log())

    def test_mounts_made_later_in_include_trees_are_watched_and_not_held(self):
        # a tree of mount marks (mnt) and one of directory marks (self.w):
        # a mount made in either after the start is watched within a
        # moment (the mount table is polled), and unmounting works (the
        # service holds no descriptor in it)
        mnt = self.mount_tmpfs(tmpdir())
        self.start(OnAccessIncludePath=[mnt, self.w])
        self.assertEqual(self.oa()["watched_mounts"], 1)
        late_m = self.mount_tmpfs(os.path.join(mnt, "late"))
        late_d = self.mount_tmpfs(os.path.join(self.w, "late"))
        self.d.wait_for(lambda: self.oa()["watched_mounts"] == 2, timeout=10,
                        what="the new mount in the mount-marked tree watched")
        self.d.wait_for(lambda: "new mount %s watched" % late_d in self.d.read_log(),
                        timeout=10, what="the new mount in the directory tree watched")
        for top in (late_m, late_d):
            f = self.put_in(os.path.join(top, "sub", "eicar.com"), EICAR)
            r = as_nobody("cat", f)
            self.assertEqual(r.returncode, 1, (top, r))
            self.assertIn(b"Operation not permitted", r.stderr)
            clean = self.put_in(os.path.join(top, "clean.txt"), b"clean\n")
            self.assertEqual(as_nobody("cat", clean).returncode, 0)
        # new definitions: the ignore marks are removed through the roots
        # opened for the moment, then the mounts can go
        self.d.command(b"zRELOAD\0")
        self.d.wait_for(lambda: self.oa()["cache_flushes"] >= 1, timeout=30 * SLOW,
                        what="the verdicts forgotten")
        for top in (late_m, late_d, mnt):
            r = subprocess.run(["umount", top], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, (top, r.stderr))
        self.d.wait_for(lambda: self.oa()["watched_mounts"] == 0, timeout=10,
                        what="the unmounted mounts no longer counted")
        self.assertIn("%s was unmounted" % mnt, self.d.read_log())
        self.assertTrue(self.oa()["running"])

    def test_include_mount_root_with_an_exclusion_inside_uses_directory_marks(self):
        # a mount mark would see the excluded tree's opens too: with an
        # OnAccessExcludePath inside, the tree gets directory marks
        mnt = self.mount_tmpfs(tmpdir())
        eicar = self.put_in(os.path.join(mnt, "eicar.com"), EICAR)
        skipped = self.put_in(os.path.join(mnt, "skip", "eicar.com"), EICAR)
        self.start(OnAccessIncludePath=mnt, OnAccessExcludePath=os.path.join(mnt, "skip"))
        oa = self.oa()
        self.assertEqual((oa["watched_mounts"], oa["watched_directories"]), (0, 1), oa)
        self.assertEqual(as_nobody("cat", eicar).returncode, 1)
        r = as_nobody("cat", skipped)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout, EICAR)

    def test_exclude_root_uid(self):
        f = self.put("eicar.com", EICAR)
        self.start(OnAccessExcludeRootUID="yes")
        with open(f, "rb") as fh:  # this test runs as root
            self.assertEqual(fh.read(), EICAR)
        self.assertEqual(as_nobody("cat", f).returncode, 1)


class ExecTest(OnAccessTestCase):
    def test_exec_costs_one_scan(self):
        # an execve can make two permission events (FAN_OPEN_EXEC_PERM and
        # FAN_OPEN_PERM: on 6.18 one event carries the exec bit); however
        # many come, one scan answers them, and later execs of the
        # unchanged file cost none
        prog = os.path.join(self.w, "true")
        with open("/usr/bin/true", "rb") as src, open(prog, "wb") as dst:
            dst.write(src.read())
        os.chmod(prog, 0o755)
        self.start()
        for _ in range(3):
            r = as_nobody(prog)
            self.assertEqual(r.returncode, 0, r)
        oa = self.oa()
        self.assertGreaterEqual(oa["events"]["open_exec_perm"], 1, oa)
        self.assertEqual(oa["scans"], 1, oa)
        self.assertEqual(oa["timed_out"], 0, oa)
