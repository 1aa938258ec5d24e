"""Smoke tests: the daemon starts, answers, scans a file, stops cleanly."""

import os

from harness import EICAR, DaemonTestCase, tmpdir


class BasicTest(DaemonTestCase):
    def test_ping_and_version(self):
        self.assertEqual(self.daemon.command(b"zPING\0"), b"PONG\0")
        self.assertTrue(self.daemon.command(b"zVERSION\0").startswith(b"ClamAV 1."))

    def test_scan_infected_and_clean(self):
        d = tmpdir()
        bad, good = os.path.join(d, "eicar.com"), os.path.join(d, "clean.txt")
        with open(bad, "wb") as fh:
            fh.write(EICAR)
        with open(good, "w") as fh:
            fh.write("hello\n")
        self.assertEqual(self.daemon.command(b"zSCAN " + bad.encode() + b"\0"),
                         bad.encode() + b": Eicar-Test-Signature.UNOFFICIAL FOUND\0")
        self.assertEqual(self.daemon.command(b"zSCAN " + good.encode() + b"\0"),
                         good.encode() + b": OK\0")

    def test_status_reports_engine(self):
        st = self.daemon.status()
        self.assertTrue(st["definitions"]["loaded"])
        self.assertEqual(st["definitions"]["signatures"], 2)
        self.assertEqual(st["workers_alive"], 2)
