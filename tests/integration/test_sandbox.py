"""The real workers are sandboxed: checked from /proc, and by making a live
worker call open(), socket(), execve() and ptrace() itself (through gdb,
which as root may attach to it)."""

import os
import pwd
import re
import shutil
import subprocess
import unittest

from harness import EICAR, SCAN_USER, SLOW, DaemonTestCase


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def gdb_eval(pid, exprs):
    """Attach to pid, evaluate each expression in the process, detach.
    Returns gdb's output."""
    cmd = ["gdb", "-p", str(pid), "-batch", "-nx", "-q",
           "-ex", "set confirm off", "-ex", "set pagination off"]
    for e in exprs:
        cmd += ["-ex", e]
    cmd += ["-ex", "detach"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60 * SLOW)
    return r.stdout + r.stderr


class SandboxTest(DaemonTestCase):
    def setUp(self):
        self.user = pwd.getpwnam(SCAN_USER)

    def test_workers_run_confined_as_scan_user(self):
        pids = self.daemon.worker_pids()
        self.assertEqual(len(pids), 2)
        for pid in pids:
            st = proc_status(pid)
            self.assertEqual(st["Name"], "scanengine-wrk")
            self.assertEqual(st["Uid"].split(), [str(self.user.pw_uid)] * 4)
            self.assertEqual(st["Gid"].split(), [str(self.user.pw_gid)] * 4)
            self.assertEqual(st["Groups"].split(), [str(self.user.pw_gid)])
            for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
                self.assertEqual(int(st[cap], 16), 0, cap)
            self.assertEqual(st["NoNewPrivs"], "1")
            self.assertEqual(st["Seccomp"], "2")  # filter mode
            # re-parented to the supervisor, the child subreaper
            self.assertEqual(int(st["PPid"]), self.daemon.proc.pid)

    def test_engine_runs_as_scan_user(self):
        st = proc_status(self.daemon.engine_pid())
        self.assertEqual(st["Name"], "scanengine-zyg")
        self.assertEqual(st["Uid"].split(), [str(self.user.pw_uid)] * 4)
        self.assertEqual(int(st["CapEff"], 16), 0)
        self.assertEqual(st["NoNewPrivs"], "1")

    def test_worker_holds_only_its_socket(self):
        """No inherited descriptors: no listening socket, no log file, no
        definitions, nothing a compromised worker could use."""
        for pid in self.daemon.worker_pids():
            fds = {}
            for fd in os.listdir("/proc/%d/fd" % pid):
                fds[int(fd)] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            extra = {fd: t for fd, t in fds.items() if fd > 2}
            # its socket, and an O_PATH handle on its own scratch directory
            self.assertEqual(len(extra), 2, extra)
            kinds = sorted(extra.values())
            self.assertTrue(kinds[1].startswith("socket:"), extra)
            self.assertEqual(kinds[0], os.path.join(self.daemon.state, "tmp", "worker-%d" % pid))

    def test_worker_without_scratch_directory_is_replaced(self):
        """A scratch directory removed behind a worker's back: the worker
        makes way for a fresh one, and the job it was given is retried
        there; nothing is answered OK unscanned."""
        pids = self.daemon.worker_pids()
        # even the directory above them
        shutil.rmtree(os.path.join(self.daemon.state, "tmp"))
        eicar = os.path.join(self.daemon.dir, "eicar.com")
        with open(eicar, "wb") as fh:
            fh.write(EICAR)
        replies = [self.daemon.command(b"zSCAN " + eicar.encode() + b"\0") for _ in range(4)]
        for r in replies:
            self.assertEqual(r, eicar.encode() + b": Eicar-Test-Signature.UNOFFICIAL FOUND\0")
        self.daemon.wait_for(lambda: len(self.daemon.worker_pids()) == 2 and
                             not set(pids) & set(self.daemon.worker_pids()),
                             timeout=30, what="fresh workers")
        self.assertEqual(self.daemon.command(b"zSCAN " + eicar.encode() + b"\0"),
                         eicar.encode() + b": Eicar-Test-Signature.UNOFFICIAL FOUND\0")
        self.assertIn("scratch directory removed", self.daemon.read_log())

    @unittest.skipUnless(shutil.which("gdb"), "gdb not installed")
    def test_open_and_socket_fail_inside_a_live_worker(self):
        pid = self.daemon.worker_pids()[0]
        out = gdb_eval(pid, [
            'print (int)open("/etc/passwd", 0)',
            'print (int)*(int*)__errno_location()',
            'print (int)open("/etc/hostname", 0)',
            'print (int)*(int*)__errno_location()',
            'print (int)socket(2, 1, 0)',
            'print (int)*(int*)__errno_location()',
            'print (int)socket(1, 1, 0)',
            'print (int)*(int*)__errno_location()',
        ])
        vals = [int(v) for v in re.findall(r"^\$\d+ = (-?\d+)$", out, re.M)]
        self.assertEqual(len(vals), 8, out)
        eacces, eperm = 13, 1
        # Landlock refuses paths outside the scratch directory
        self.assertEqual(vals[0], -1, out)
        self.assertIn(vals[1], (eacces, eperm), out)
        self.assertEqual(vals[2], -1, out)
        self.assertIn(vals[3], (eacces, eperm), out)
        # seccomp refuses socket creation
        self.assertEqual((vals[4], vals[5]), (-1, eperm), out)
        self.assertEqual((vals[6], vals[7]), (-1, eperm), out)
        # the worker survived the probe and still scans
        self.assertIn(pid, self.daemon.worker_pids())

    def _expect_killed_by_sigsys(self, expr):
        pid = self.daemon.worker_pids()[0]
        out = gdb_eval(pid, [expr])
        self.daemon.wait_for(lambda: "worker %d killed by signal 31" % pid in self.daemon.read_log(),
                             timeout=20, what="the worker's death by SIGSYS")
        # and a replacement took its place
        self.daemon.wait_for(lambda: len(self.daemon.worker_pids()) == 2 and
                             pid not in self.daemon.worker_pids(), timeout=20,
                             what="a replacement worker")
        return out

    @unittest.skipUnless(shutil.which("gdb"), "gdb not installed")
    def test_execve_kills_the_worker(self):
        self._expect_killed_by_sigsys(
            'print (int)execve("/bin/true", (char**)0, (char**)0)')

    @unittest.skipUnless(shutil.which("gdb"), "gdb not installed")
    def test_ptrace_kills_the_worker(self):
        self._expect_killed_by_sigsys('print (long)ptrace(0, 0, 0, 0)')


if __name__ == "__main__":
    unittest.main()
