"""On-access scanning over the system's own trees (issue 6, point 9):
watching /usr and /etc with prevention on, the host keeps working — a
recursive listing of /usr/lib and 50 starts of python3 complete, every
permission event is answered, nothing times out — and the service itself,
whose own opens (user lookups in /etc, paths it is asked to scan) fall in
the watched trees, keeps answering."""

import os
import subprocess
import time
import unittest

from harness import EICAR, SLOW, Daemon, tmpdir

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


class SystemTreesTest(unittest.TestCase):
    def setUp(self):
        self.d = Daemon(conf={"OnAccessIncludePath": ["/usr", "/etc"],
                              "OnAccessPrevention": "yes", "HealthCheckInterval": "1"})
        self.d.start(timeout=120)
        self.d.wait_for(lambda: self.d.status()["onaccess"]["running"], timeout=60,
                        what="on-access running")

    def tearDown(self):
        self.d.finish()

    def test_host_keeps_working(self):
        oa0 = self.d.status()["onaccess"]
        self.assertGreater(oa0["watched_directories"], 1000, oa0)
        t0 = time.time()
        r = subprocess.run(NOBODY + ["/usr/bin/ls", "-R", "/usr/lib"], capture_output=True,
                           timeout=300 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        for _ in range(50):
            r = subprocess.run(NOBODY + ["/usr/bin/python3", "-c", "pass"], capture_output=True,
                               timeout=60 * SLOW)
            self.assertEqual(r.returncode, 0, r.stderr)
        elapsed = time.time() - t0
        self.assertLess(elapsed, 120 * SLOW)
        oa = self.d.status()["onaccess"]
        # python's modules and libraries were opened and scanned (or found
        # clean in the cache), and every event was answered at once
        self.assertGreater(oa["events"]["open_perm"], oa0["events"]["open_perm"], oa)
        self.assertGreater(oa["scans"], 0, oa)
        self.assertEqual(oa["timed_out"], 0, oa)
        self.assertEqual(oa["answer_errors"], 0, oa)
        self.assertEqual(oa["in_flight"], 0, oa)
        self.assertEqual(self.d.fault_ids(), [])

    def test_service_opening_watched_files_does_not_wait_on_itself(self):
        # the health check looks the scan user up in /etc every second, and
        # a SCAN of a watched path is opened by the supervisor itself
        time.sleep(2.5)
        samples = tmpdir()
        eicar = os.path.join(samples, "eicar.com")
        with open(eicar, "wb") as fh:
            fh.write(EICAR)
        reply = self.d.command(b"zSCAN /etc/hostname\0", timeout=30)
        self.assertEqual(reply, b"/etc/hostname: OK\0")
        self.assertTrue(self.d.command(b"zSCAN " + eicar.encode() + b"\0").endswith(b" FOUND\0"))
        self.assertEqual(self.d.command(b"zRELOAD\0"), b"RELOADING\0")
        self.assertEqual(self.d.command(b"zPING\0"), b"PONG\0")
        self.assertGreater(self.d.status()["onaccess"]["excluded"], 0)
