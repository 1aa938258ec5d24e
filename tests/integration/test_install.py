"""make install into a DESTDIR: programs, definitions, a configuration the
daemon accepts and whose definitions load, and a Type=notify unit."""

import os
import subprocess
import unittest

from harness import BUILD, ROOT, SCANENGINED, tmpdir


class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dest = tmpdir("se-install-")
        r = subprocess.run([os.path.join(ROOT, "scripts", "install.sh"), cls.dest, "/usr/local", BUILD],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr

    def path(self, p):
        return os.path.join(self.dest, p.lstrip("/"))

    def test_files(self):
        for p, mode in (("/usr/local/sbin/scanengined", 0o755), ("/usr/local/bin/scanctl", 0o755),
                        ("/etc/scanengine/scanengined.conf", 0o644),
                        ("/etc/systemd/system/scanengined.service", 0o644),
                        ("/usr/local/share/scanengine/defs/eicar.ndb", 0o644),
                        ("/usr/local/share/scanengine/defs/clamav-testfiles.hdb", 0o644),
                        ("/etc/scanengine/certs/clamav-root.crt", 0o644),
                        ("/usr/local/share/doc/scanengine/README.md", 0o644)):
            st = os.stat(self.path(p))
            self.assertEqual(st.st_mode & 0o777, mode, p)
        self.assertTrue(os.path.isdir(self.path("/var/lib/scanengine")))

    def test_config_is_accepted_and_names_the_installed_definitions(self):
        conf = self.path("/etc/scanengine/scanengined.conf")
        r = subprocess.run([SCANENGINED, "--check-config", "--config-file", conf],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(conf) as fh:
            self.assertIn("DatabaseDirectory /usr/local/share/scanengine/defs\n", fh.read())

    def test_unit(self):
        with open(self.path("/etc/systemd/system/scanengined.service")) as fh:
            unit = fh.read()
        self.assertIn("Type=notify\n", unit)
        self.assertIn("ExecStart=/usr/local/sbin/scanengined --foreground --config-file "
                      "/etc/scanengine/scanengined.conf\n", unit)
        self.assertIn("ExecReload=/bin/kill -USR2 $MAINPID\n", unit)
        self.assertIn("WatchdogSec=", unit)
        self.assertNotIn("@", unit.replace("$MAINPID", ""))

    def test_existing_config_is_kept(self):
        conf = self.path("/etc/scanengine/scanengined.conf")
        with open(conf, "a") as fh:
            fh.write("MaxThreads 3\n")
        r = subprocess.run([os.path.join(ROOT, "scripts", "install.sh"), self.dest, "/usr/local", BUILD],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("kept existing", r.stdout)
        with open(conf) as fh:
            self.assertIn("MaxThreads 3\n", fh.read())


if __name__ == "__main__":
    unittest.main()
