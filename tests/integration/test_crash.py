"""Crash containment: workers killed with real signals while clients keep
sending requests. Every request must get exactly one, correct, reply; the
replacement worker is forked from the loaded engine (no definitions reload)
and the time to replace it is logged."""

import os
import re
import signal
import socket
import struct
import threading
import time
import unittest

from harness import EICAR, SLOW, Daemon, tmpdir


def one_reply(data, term=b"\0"):
    """The reply must be exactly one terminated line."""
    assert data.endswith(term) and data.count(term) == 1, data
    return data[:-1]


class Load:
    """Client threads sending a mix of requests until stopped; every
    request's reply is checked against the expected verdict."""

    def __init__(self, daemon, files, threads=3):
        self.daemon = daemon
        self.files = files  # list of (path, expected suffix)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent = 0
        self.ok = 0
        self.failures = []
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(threads)]

    def request(self, i, n):
        path, expect = self.files[(i + n) % len(self.files)]
        mode = (i + n) % 3
        if mode == 0:  # the daemon opens the path
            reply = one_reply(self.daemon.command(b"zSCAN " + path.encode() + b"\0", timeout=60))
            want = path.encode() + b": " + expect
        elif mode == 1:  # descriptor passing
            fd = os.open(path, os.O_RDONLY)
            try:
                s = self.daemon.connect(timeout=60)
                s.sendall(b"zFILDES\0")
                socket.send_fds(s, [b"\0"], [fd])
                data = b""
                while True:
                    b = s.recv(4096)
                    if not b:
                        break
                    data += b
                s.close()
            finally:
                os.close(fd)
            reply = one_reply(data)
            reply = re.sub(rb"^fd\[\d+\]", b"fd", reply)
            want = b"fd: " + expect
        else:  # stream
            with open(path, "rb") as fh:
                payload = fh.read()
            msg = [b"zINSTREAM\0"]
            for k in range(0, len(payload), 1 << 20):
                part = payload[k:k + (1 << 20)]
                msg.append(struct.pack("!L", len(part)) + part)
            msg.append(b"\0\0\0\0")
            reply = one_reply(self.daemon.command(b"".join(msg), timeout=60))
            want = b"stream: " + expect
        return reply, want

    def run(self, i):
        n = 0
        while not self.stop.is_set():
            with self.lock:
                self.sent += 1
            try:
                reply, want = self.request(i, n)
                if reply == want:
                    with self.lock:
                        self.ok += 1
                else:
                    with self.lock:
                        self.failures.append((want, reply))
            except Exception as e:  # a lost or broken reply
                with self.lock:
                    self.failures.append(("request %d/%d" % (i, n), repr(e)))
            n += 1

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(120 * SLOW)
        return False


class CrashContainmentTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.samples = tmpdir()
        # Random data scans at a few tens of MB/s: a few MB keep a worker
        # busy long enough to be killed mid-scan.
        cls.slow = os.path.join(cls.samples, "slow.bin")
        with open(cls.slow, "wb") as fh:
            fh.write(os.urandom(6 << 20))
        cls.eicar = os.path.join(cls.samples, "eicar.com")
        with open(cls.eicar, "wb") as fh:
            fh.write(EICAR)
        cls.clean = os.path.join(cls.samples, "clean.txt")
        with open(cls.clean, "w") as fh:
            fh.write("nothing to see\n" * 100)
        cls.files = [(cls.slow, b"OK"), (cls.eicar, b"Eicar-Test-Signature.UNOFFICIAL FOUND"),
                     (cls.slow, b"OK"), (cls.clean, b"OK")]

    def setUp(self):
        # Poisoning (tested in test_faults) would stop the slow file from
        # being scanned after two kills; here every kill must be survived.
        self.daemon = Daemon(conf={"MaxScanTime": str(int(4000 * SLOW)),
                                   "WorkerRespawnInterval": "100", "CrashBackoffMax": "1",
                                   "PoisonThreshold": "1000"}, workers=2).start()

    def tearDown(self):
        try:
            self.daemon.stop()
        finally:
            self.daemon.cleanup()

    def busy_worker(self):
        """pid of a worker scanning right now (the slow file)."""
        def find():
            for g in self.daemon.status()["engines"]:
                if g["state"] != "active":
                    continue
                for w in g["workers"]:
                    # a first attempt: killing a retry would make that
                    # request fail for real (tested separately)
                    if (w["state"] == "busy" and w.get("scanning", "").endswith("slow.bin")
                            and w["attempt"] == 1):
                        return w["pid"]
            return None
        return self.daemon.wait_for(find, timeout=30, what="a busy worker")

    def kill_workers(self, sig, rounds=3):
        engine = self.daemon.engine_pid()
        killed = []
        with Load(self.daemon, self.files) as load:
            for _ in range(rounds):
                pid = self.busy_worker()
                os.kill(pid, sig)
                killed.append(pid)
                # wait until the slot is refilled by a new process
                self.daemon.wait_for(
                    lambda: pid not in self.daemon.worker_pids() and
                    len(self.daemon.worker_pids()) == 2,
                    timeout=30, what="the replacement of worker %d" % pid)
            time.sleep(0.5)
        self.assertEqual(load.failures, [], "requests lost or wrong")
        self.assertGreater(load.ok, 10)
        self.assertEqual(load.ok, load.sent)
        st = self.daemon.status()
        # replacements come from the same engine: no reload
        self.assertEqual(st["engine_loads"], 1)
        self.assertEqual(self.daemon.engine_pid(), engine)
        self.assertGreaterEqual(st["worker_crashes"], rounds)
        self.assertGreaterEqual(st["retries"], 1)
        log = self.daemon.read_log()
        for pid in killed:
            self.assertRegex(log, r"replacement \d+ accepting work \d+ ms after worker %d died "
                                  r"\(forked from the loaded engine, no definitions reload\)" % pid)
        return st, log, killed

    def test_sigsegv(self):
        st, log, killed = self.kill_workers(signal.SIGSEGV)
        for pid in killed:
            self.assertIn("worker %d killed by signal 11" % pid, log)

    def test_sigkill(self):
        st, log, killed = self.kill_workers(signal.SIGKILL)
        for pid in killed:
            self.assertIn("worker %d killed by signal 9" % pid, log)

    def test_sigstop_counts_as_overrun(self):
        st, log, killed = self.kill_workers(signal.SIGSTOP, rounds=2)
        self.assertGreaterEqual(st["worker_timeouts"], 2)
        for pid in killed:
            self.assertIn("worker %d exceeded MaxScanTime" % pid, log)

    def test_file_that_always_crashes_gets_an_error_after_one_retry(self):
        """A job whose worker dies on both attempts is answered with an
        error, once, and the service goes on."""
        stop = threading.Event()

        def killer():
            while not stop.is_set():
                try:
                    for g in self.daemon.status()["engines"]:
                        for w in g["workers"]:
                            if w["state"] == "busy" and w.get("scanning", "").endswith("slow.bin"):
                                os.kill(w["pid"], signal.SIGSEGV)
                except (OSError, ProcessLookupError, ValueError):
                    pass
                time.sleep(0.01)

        t = threading.Thread(target=killer, daemon=True)
        t.start()
        try:
            reply = one_reply(self.daemon.command(b"zSCAN " + self.slow.encode() + b"\0", timeout=60))
        finally:
            stop.set()
            t.join()
        self.assertEqual(reply, self.slow.encode() + b": Scanner.Crashed ERROR")
        self.assertIn("worker", self.daemon.read_log())
        self.assertRegex(self.daemon.read_log(), r"killed by signal 11 .* while scanning %s" %
                         re.escape(self.slow))
        self.assertEqual(one_reply(self.daemon.command(b"zSCAN " + self.eicar.encode() + b"\0")),
                         self.eicar.encode() + b": Eicar-Test-Signature.UNOFFICIAL FOUND")

    def test_respawn_backs_off_while_crashing(self):
        """A worker that dies as soon as it starts cannot make the
        supervisor fork in a tight loop: respawns wait WorkerRespawnInterval,
        then twice as long after each crash in the window."""
        self.daemon.stop()
        self.daemon.cleanup()
        self.daemon = Daemon(conf={"WorkerRespawnInterval": "200", "CrashLoopWindow": "60",
                                   "CrashBackoffMax": "30"}, workers=1).start()
        births = []
        seen = set()
        t0 = time.time()
        while time.time() - t0 < 5 * SLOW and len(births) < 5:
            pids = self.daemon.worker_pids()
            if pids and pids[0] not in seen:
                seen.add(pids[0])
                births.append(time.time())
                os.kill(pids[0], signal.SIGKILL)
            time.sleep(0.01)
        gaps = [b - a for a, b in zip(births, births[1:])]
        # 0.2 s, 0.4 s, 0.8 s, 1.6 s ... (plus the fork itself)
        self.assertGreaterEqual(len(gaps), 3, gaps)
        for k, g in enumerate(gaps):
            self.assertGreaterEqual(g, 0.2 * 2 ** k * 0.9, gaps)
        st = self.daemon.status()
        self.assertGreaterEqual(st["respawn_backoff_ms"], 800)
        # scanning resumes once a worker stays up
        self.assertEqual(one_reply(self.daemon.command(b"zSCAN " + self.clean.encode() + b"\0",
                                                       timeout=60)),
                         self.clean.encode() + b": OK")


if __name__ == "__main__":
    unittest.main()
