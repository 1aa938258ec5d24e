"""Reloading definitions: a new engine generation loads while the old one
keeps scanning, then takes over; no request fails across the switch; a
set that does not load leaves the old one active."""

import os
import subprocess
import signal
import threading
import time
import unittest

from harness import EICAR, SCANENGINED, SLOW, Daemon, tmpdir


class ReloadTest(unittest.TestCase):
    def setUp(self):
        self.daemon = Daemon(workers=2).start()
        self.samples = tmpdir()
        self.eicar = os.path.join(self.samples, "eicar.com")
        with open(self.eicar, "wb") as fh:
            fh.write(EICAR)
        # a file only a signature added later detects
        self.marker = os.path.join(self.samples, "marker.txt")
        self.marker_bytes = b"scanengine reload marker " + os.urandom(8).hex().encode()
        with open(self.marker, "wb") as fh:
            fh.write(self.marker_bytes)

    def tearDown(self):
        try:
            self.daemon.stop()
        finally:
            self.daemon.cleanup()

    def scan(self, path):
        return self.daemon.command(b"zSCAN " + path.encode() + b"\0", timeout=30)

    def add_marker_signature(self):
        p = os.path.join(self.daemon.defs, "marker.ndb")
        with open(p, "w") as fh:
            fh.write("Scanengine.Test.Marker:0:*:%s\n" % self.marker_bytes.hex())
        os.chmod(p, 0o644)

    def wait_generation(self, n):
        self.daemon.wait_for(lambda: self.daemon.status()["engine_loads"] >= n and
                             len(self.daemon.status()["engines"]) == 1,
                             timeout=30, what="generation %d to take over alone" % n)

    def test_reload_picks_up_new_signatures_without_failed_requests(self):
        self.assertEqual(self.scan(self.marker), self.marker.encode() + b": OK\0")
        old_engine = self.daemon.engine_pid()
        stop = threading.Event()
        failures, done = [], [0]

        def client():
            while not stop.is_set():
                r = self.scan(self.eicar)
                if r != self.eicar.encode() + b": Eicar-Test-Signature.UNOFFICIAL FOUND\0":
                    failures.append(r)
                done[0] += 1

        threads = [threading.Thread(target=client) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.3)
            self.add_marker_signature()
            self.assertEqual(self.daemon.command(b"zRELOAD\0"), b"RELOADING\0")
            self.wait_generation(2)
            time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(failures, [])
        self.assertGreater(done[0], 20)
        self.assertNotEqual(self.daemon.engine_pid(), old_engine)
        self.assertFalse(os.path.exists("/proc/%d" % old_engine) and
                         open("/proc/%d/comm" % old_engine).read().strip() == "scanengine-zyg",
                         "the old engine process was not retired")
        self.assertEqual(self.scan(self.marker),
                         self.marker.encode() + b": Scanengine.Test.Marker.UNOFFICIAL FOUND\0")
        self.assertEqual(self.daemon.status()["definitions"]["signatures"], 3)
        self.assertIn("engine 1 retired", self.daemon.read_log())

    def test_sigusr2_reloads(self):
        self.add_marker_signature()
        self.daemon.proc.send_signal(signal.SIGUSR2)
        self.wait_generation(2)
        self.assertIn(b"FOUND", self.scan(self.marker))

    def test_bad_definitions_keep_the_active_set(self):
        """A set that does not load is quarantined (fault 7 raised and
        cleared, see test_faults); the set that was active stays, and
        scanning never stops."""
        with open(os.path.join(self.daemon.defs, "broken.ndb"), "w") as fh:
            fh.write("not a signature line\n")
        self.assertEqual(self.daemon.command(b"zRELOAD\0"), b"RELOADING\0")
        self.daemon.wait_for(lambda: self.daemon.status()["engine_load_failures"] == 1,
                             timeout=30, what="the failed load")
        self.assertIn("the previous definitions stay active", self.daemon.read_log())
        self.assertEqual(self.scan(self.eicar),
                         self.eicar.encode() + b": Eicar-Test-Signature.UNOFFICIAL FOUND\0")
        self.daemon.wait_for(lambda: self.daemon.events("clear", 7), timeout=30,
                             what="fault 7 cleared after the rollback")
        st = self.daemon.status()
        self.assertIn("cannot load definitions", st["last_load_error"] if "last_load_error" in st
                      else self.daemon.events("raise", 7)[0]["reason"])
        self.assertEqual(st["definitions_generation"], 1)
        self.assertEqual(st["definitions"]["signatures"], 2)
        self.assertEqual(st["workers_alive"], 2)
        self.assertEqual(self.scan(self.eicar),
                         self.eicar.encode() + b": Eicar-Test-Signature.UNOFFICIAL FOUND\0")

    def test_selfcheck_is_refused(self):
        """Definitions change only through the store or an explicit
        RELOAD: a file dropped into DatabaseDirectory does nothing until
        then, and SelfCheck other than 0 is a configuration error."""
        self.add_marker_signature()
        time.sleep(1.5)
        self.assertEqual(self.scan(self.marker), self.marker.encode() + b": OK\0")
        d = Daemon(conf={"SelfCheck": "600"})
        try:
            d.write_conf()
            r = subprocess.run([SCANENGINED, "--config-file", d.conf_path, "--check-config"],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 2)
            self.assertIn("SelfCheck: '600' is out of range (0..0): definitions are activated "
                          "through the store", r.stderr)
        finally:
            d.cleanup()


if __name__ == "__main__":
    unittest.main()
