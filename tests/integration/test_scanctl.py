"""scanctl against the real daemon: output, --json, exit codes, socket
discovery from a config file, admin refusal, and the service not running."""

import json
import os
import pwd
import subprocess
import unittest

from harness import EICAR, SCANCTL, DaemonTestCase, tmpdir


class ScanctlTest(DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.samples = tmpdir()
        cls.eicar = os.path.join(cls.samples, "eicar.com")
        with open(cls.eicar, "wb") as fh:
            fh.write(EICAR)
        cls.clean = os.path.join(cls.samples, "clean.txt")
        with open(cls.clean, "w") as fh:
            fh.write("plain text\n")
        os.makedirs(os.path.join(cls.samples, "sub"))
        cls.nested = os.path.join(cls.samples, "sub", "again.com")
        with open(cls.nested, "wb") as fh:
            fh.write(EICAR)
        for p in (cls.eicar, cls.clean, cls.nested):
            os.chmod(p, 0o644)

    def test_scan_modes_agree(self):
        for mode in ([], ["--fdpass"], ["--stream"], ["--multiscan"], ["--fdpass", "--multiscan"]):
            r = self.daemon.scanctl("scan", *mode, self.samples)
            self.assertEqual(r.returncode, 1, (mode, r.stdout, r.stderr))
            lines = sorted(l for l in r.stdout.splitlines() if l.endswith("FOUND"))
            self.assertEqual(lines, sorted([
                "%s: Eicar-Test-Signature.UNOFFICIAL FOUND" % self.eicar,
                "%s: Eicar-Test-Signature.UNOFFICIAL FOUND" % self.nested]), mode)
            self.assertIn("Infected files: 2", r.stdout)

    def test_clean_file_exit_zero(self):
        for mode in ([], ["--fdpass"], ["--stream"]):
            r = self.daemon.scanctl("scan", *mode, self.clean)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("%s: OK" % self.clean, r.stdout)
            self.assertIn("Infected files: 0", r.stdout)

    def test_relative_path_is_made_absolute(self):
        r = subprocess.run([SCANCTL, "--socket", self.daemon.sock, "scan", "eicar.com"],
                           cwd=self.samples, capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("%s: Eicar-Test-Signature.UNOFFICIAL FOUND" % self.eicar, r.stdout)

    def test_missing_file_is_an_error(self):
        missing = os.path.join(self.samples, "nope")
        r = self.daemon.scanctl("scan", missing)
        self.assertEqual(r.returncode, 1)
        self.assertIn("%s: Can't access file: No such file or directory. ERROR" % missing, r.stdout)
        self.assertIn("Total errors: 1", r.stdout)

    def test_scan_json(self):
        r = self.daemon.scanctl("--json", "scan", self.eicar, self.clean)
        self.assertEqual(r.returncode, 1)
        out = json.loads(r.stdout)
        self.assertEqual(out["infected_files"], 1)
        self.assertEqual(out["errors"], 0)
        by_path = {x["path"]: x for x in out["results"]}
        self.assertEqual(by_path[self.eicar]["result"], "FOUND")
        self.assertEqual(by_path[self.eicar]["signature"], "Eicar-Test-Signature.UNOFFICIAL")
        self.assertEqual(by_path[self.clean]["result"], "OK")

    def test_status_human_and_json(self):
        r = self.daemon.scanctl("status", check=0)
        self.assertRegex(r.stdout, r"definitions\s+2 signatures")
        self.assertRegex(r.stdout, r"workers\s+2 alive of 2")
        r = self.daemon.scanctl("status", "--json", check=0)
        st = json.loads(r.stdout)
        self.assertEqual(st["definitions"]["signatures"], 2)
        self.assertEqual(st["workers_alive"], 2)
        self.assertEqual(st["socket"], self.daemon.sock)
        self.assertEqual(st["pid"], self.daemon.proc.pid)

    def test_ping_version(self):
        self.assertEqual(self.daemon.scanctl("ping", check=0).stdout, "PONG\n")
        self.assertTrue(self.daemon.scanctl("version", check=0).stdout.startswith("ClamAV 1."))

    def test_socket_from_config_file(self):
        r = subprocess.run([SCANCTL, "--config-file", self.daemon.conf_path, "ping"],
                           capture_output=True, text=True)
        self.assertEqual((r.returncode, r.stdout), (0, "PONG\n"))

    def test_admin_commands_refused_for_other_users(self):
        nobody = pwd.getpwnam("nobody")
        os.chmod(self.daemon.sock, 0o666)

        def as_nobody():
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)

        r = subprocess.run([SCANCTL, "--socket", self.daemon.sock, "status"], capture_output=True,
                           text=True, preexec_fn=as_nobody)
        self.assertEqual(r.returncode, 1)
        self.assertIn("STATUS: Permission denied (root or AdminGroup required). ERROR", r.stderr)
        r = subprocess.run([SCANCTL, "--socket", self.daemon.sock, "reload"], capture_output=True,
                           text=True, preexec_fn=as_nobody)
        self.assertEqual(r.returncode, 1)
        self.assertIn("Permission denied", r.stdout + r.stderr)
        # scanning is for anyone who can connect
        r = subprocess.run([SCANCTL, "--socket", self.daemon.sock, "scan", "--stream", self.eicar],
                           capture_output=True, text=True, preexec_fn=as_nobody)
        self.assertEqual(r.returncode, 1)
        self.assertIn("FOUND", r.stdout)
        self.assertIn("refused STATUS from uid %d" % nobody.pw_uid, self.daemon.read_log())

    def test_not_running(self):
        gone = os.path.join(self.samples, "no.sock")
        for cmd in (["ping"], ["status"], ["scan", self.clean]):
            r = subprocess.run([SCANCTL, "--socket", gone] + cmd, capture_output=True, text=True)
            self.assertEqual(r.returncode, 2, cmd)
            self.assertEqual(r.stderr.strip(),
                             "scanctl: cannot connect to scanengined at %s: No such file or "
                             "directory (is the service running?)" % gone)

    def test_usage_errors(self):
        for args in ([], ["frobnicate"], ["scan"], ["ping", "extra"]):
            r = subprocess.run([SCANCTL, "--socket", self.daemon.sock] + args,
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 2, args)
            self.assertNotEqual(r.stderr, "")


if __name__ == "__main__":
    unittest.main()
