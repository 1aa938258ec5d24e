"""Real clamd clients work against scanengined unchanged: Debian's
clamdscan in every mode gives clamscan's verdicts on clamav-testfiles,
pyclamd and Perl ClamAV::Client get the answers they parse."""

import ctypes
import ctypes.util
import json
import os
import re
import shutil
import subprocess
import unittest

import pyclamd

from harness import EICAR, SLOW, TESTFILES, DaemonTestCase, make_defs, tmpdir, write_clamd_conf

MODES = ([], ["--multiscan"], ["--stream"], ["--stream", "--multiscan"], ["--fdpass"],
         ["--fdpass", "--multiscan"])
EICAR_SIG = "Eicar-Test-Signature.UNOFFICIAL"
LINE = re.compile(r"^(.*): (?:(OK)|(.+) (FOUND)|(.*) (ERROR))$")


def libclamav_version():
    lib = ctypes.CDLL(ctypes.util.find_library("clamav"))
    lib.cl_retver.restype = ctypes.c_char_p
    return lib.cl_retver().decode()


def parse_lines(text):
    """clamscan/clamdscan output -> {path: ("OK",) | ("FOUND", {names}) | ("ERROR", msg)}."""
    out = {}
    for line in text.splitlines():
        if not line:
            continue
        m = LINE.match(line)
        if not m:
            raise AssertionError("unparsable line: %r" % line)
        path = m.group(1)
        if m.group(2):
            out[path] = ("OK",)
        elif m.group(4):
            prev = out.get(path, ("FOUND", frozenset()))
            out[path] = ("FOUND", prev[1] | {m.group(3)})
        else:
            out[path] = ("ERROR", m.group(5))
    return out


def clean_samples(d):
    """A few clean files of different kinds (none empty: clamscan calls an
    empty file "Empty file", clamd "OK")."""
    files = {
        "hello.txt": b"hello, world\n",
        "script.sh": b"#!/bin/sh\necho scanengine\n",
        "page.html": b"<html><body><p>nothing to see</p></body></html>\n",
        "random.bin": os.urandom(70000),
        "almost-eicar.txt": EICAR[:-3] + b"\n",
    }
    paths = []
    for name, data in sorted(files.items()):
        p = os.path.join(d, name)
        with open(p, "wb") as fh:
            fh.write(data)
        os.chmod(p, 0o644)
        paths.append(p)
    return paths


class ClamdscanTest(DaemonTestCase):
    """clamdscan in every mode agrees file by file with clamscan on the
    same definitions."""

    @classmethod
    def setUpClass(cls):
        cls.work = tmpdir()
        cls.addClassCleanup(shutil.rmtree, cls.work, True)
        cls.clean_dir = os.path.join(cls.work, "clean")
        os.mkdir(cls.clean_dir)
        os.chmod(cls.clean_dir, 0o755)
        cls.clean_files = clean_samples(cls.clean_dir)
        # clamscan's verdicts, once for the class, on the same definitions
        # as the daemon's (harness default: clamav.hdb + the EICAR .ndb)
        defs = make_defs(os.path.join(cls.work, "defs"))
        r = subprocess.run(["clamscan", "--no-summary", "-d", defs, TESTFILES + "/",
                            cls.clean_dir], capture_output=True, text=True, timeout=300)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        cls.expected = parse_lines(r.stdout)
        super().setUpClass()
        cls.conf_file = write_clamd_conf(os.path.join(cls.work, "clamd.conf"), cls.daemon.sock)

    def clamdscan(self, mode, *paths):
        return subprocess.run(["clamdscan", "--no-summary", "--config-file", self.conf_file] +
                              mode + list(paths), capture_output=True, text=True,
                              timeout=120 * SLOW, cwd="/")

    def test_clamscan_reference_is_sane(self):
        testfiles = sorted(os.path.join(TESTFILES, f) for f in os.listdir(TESTFILES))
        self.assertEqual(sorted(p for p in self.expected if p.startswith(TESTFILES)), testfiles)
        infected = [p for p, v in self.expected.items() if v[0] == "FOUND"]
        self.assertGreaterEqual(len(infected), 40)
        for p in self.clean_files:
            self.assertEqual(self.expected[p], ("OK",))

    def test_testfiles_every_mode(self):
        want = {p: v for p, v in self.expected.items() if p.startswith(TESTFILES + "/")}
        for mode in MODES:
            with self.subTest(mode=" ".join(mode) or "default"):
                r = self.clamdscan(mode, TESTFILES + "/")
                self.assertEqual(r.stderr, "")
                got = parse_lines(r.stdout)
                # infected files: the same paths and signature names
                self.assertEqual({p: v for p, v in got.items() if v[0] == "FOUND"},
                                 {p: v for p, v in want.items() if v[0] == "FOUND"})
                # nothing else is printed for an infected directory
                self.assertEqual({p: v for p, v in got.items() if v[0] != "FOUND"}, {})
                self.assertEqual(r.returncode, 1)

    def test_clean_directory_every_mode(self):
        for mode in MODES:
            with self.subTest(mode=" ".join(mode) or "default"):
                r = self.clamdscan(mode, self.clean_dir)
                self.assertEqual((r.stdout, r.stderr, r.returncode),
                                 (self.clean_dir + ": OK\n", "", 0))

    def test_clean_files_individually_every_mode(self):
        for mode in MODES:
            for p in self.clean_files:
                with self.subTest(mode=" ".join(mode) or "default", file=os.path.basename(p)):
                    r = self.clamdscan(mode, p)
                    self.assertEqual((r.stdout, r.stderr, r.returncode), (p + ": OK\n", "", 0))
                    self.assertEqual(parse_lines(r.stdout), {p: self.expected[p]})
        # several arguments: one line each
        r = self.clamdscan([], *self.clean_files)
        self.assertEqual((r.stdout, r.returncode),
                         ("".join(p + ": OK\n" for p in self.clean_files), 0))

    def test_infected_and_clean_together(self):
        eicar = os.path.join(self.work, "eicar.com")
        with open(eicar, "wb") as fh:
            fh.write(EICAR)
        os.chmod(eicar, 0o644)
        for mode in MODES:
            with self.subTest(mode=" ".join(mode) or "default"):
                r = self.clamdscan(mode, eicar, self.clean_files[0])
                self.assertEqual(r.stdout, "%s: %s FOUND\n%s: OK\n" %
                                 (eicar, EICAR_SIG, self.clean_files[0]))
                self.assertEqual((r.stderr, r.returncode), ("", 1))

    def test_version_and_ping(self):
        r = self.clamdscan(["--version"])
        self.assertEqual((r.stdout, r.returncode), ("ClamAV %s\n" % libclamav_version(), 0))
        r = self.clamdscan(["--ping", "1"])
        self.assertEqual((r.stdout, r.returncode), ("PONG\n", 0))


class LibraryClientsTest(DaemonTestCase):
    """pyclamd and Perl ClamAV::Client, unchanged."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tmpdir()
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.eicar = os.path.join(cls.dir, "eicar.com")
        cls.clean = os.path.join(cls.dir, "clean.txt")
        with open(cls.eicar, "wb") as fh:
            fh.write(EICAR)
        with open(cls.clean, "w") as fh:
            fh.write("nothing to see\n")
        cls.tree = os.path.join(cls.dir, "tree")
        os.makedirs(os.path.join(cls.tree, "sub"))
        for p, data in (("a.txt", b"clean a\n"), ("e1.com", EICAR), ("sub/e2.com", EICAR),
                        ("sub/b.txt", b"clean b\n")):
            with open(os.path.join(cls.tree, p), "wb") as fh:
                fh.write(data)
        subprocess.run(["chmod", "-R", "a+rX", cls.dir], check=True)
        super().setUpClass()

    def py(self):
        return pyclamd.ClamdUnixSocket(filename=self.daemon.sock, timeout=30 * SLOW)

    def test_pyclamd_ping_version(self):
        self.assertIs(self.py().ping(), True)
        self.assertEqual(self.py().version(), "ClamAV " + libclamav_version())

    def test_pyclamd_scan_file(self):
        c = self.py()
        self.assertEqual(c.scan_file(self.eicar), {self.eicar: ("FOUND", EICAR_SIG)})
        self.assertIsNone(c.scan_file(self.clean))
        missing = os.path.join(self.dir, "missing")
        self.assertEqual(c.scan_file(missing), {
            missing: ("ERROR", "File path check failure: No such file or directory.")})

    def test_pyclamd_scan_stream(self):
        c = self.py()
        self.assertEqual(c.scan_stream(EICAR), {"stream": ("FOUND", EICAR_SIG)})
        self.assertIsNone(c.scan_stream(b"clean data\n"))
        # a multiple of its chunk size: pyclamd sends the terminator twice
        self.assertIsNone(c.scan_stream(b"x" * 8192))
        # several chunks (the signature is anchored at offset 0)
        self.assertEqual(c.scan_stream(EICAR + b" " * 9000), {"stream": ("FOUND", EICAR_SIG)})

    def test_pyclamd_multiscan_contscan(self):
        want = {os.path.join(self.tree, "e1.com"): ("FOUND", EICAR_SIG),
                os.path.join(self.tree, "sub/e2.com"): ("FOUND", EICAR_SIG)}
        self.assertEqual(self.py().multiscan_file(self.tree), want)
        self.assertEqual(self.py().contscan_file(self.tree), want)
        self.assertIsNone(self.py().contscan_file(os.path.join(self.tree, "sub", "b.txt")))
        self.assertEqual(self.py().multiscan_file(self.eicar), {self.eicar: ("FOUND", EICAR_SIG)})

    def test_pyclamd_allmatchscan(self):
        self.assertEqual(self.py().allmatchscan(self.tree), {
            os.path.join(self.tree, "e1.com"): [("FOUND", EICAR_SIG)],
            os.path.join(self.tree, "sub/e2.com"): [("FOUND", EICAR_SIG)]})

    def test_pyclamd_stats(self):
        stats = self.py().stats()
        self.assertTrue(stats.startswith("POOLS: 1\n"), stats)
        self.assertTrue(stats.rstrip().endswith("END"), stats)

    def perl(self, code, *args):
        r = subprocess.run(["perl", "-MClamAV::Client", "-MJSON::PP", "-e",
                            "my $c = ClamAV::Client->new(socket_name => shift @ARGV);" + code,
                            self.daemon.sock] + list(args),
                           capture_output=True, text=True, timeout=60 * SLOW)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        return json.loads(r.stdout)

    def test_perl_client(self):
        self.assertEqual(self.perl("print encode_json([$c->ping, $c->version])"),
                         ["PONG", "ClamAV " + libclamav_version()])
        self.assertEqual(self.perl("print encode_json([$c->scan_path($ARGV[0])])", self.eicar),
                         [self.eicar, EICAR_SIG])
        self.assertEqual(self.perl("print encode_json([$c->scan_path($ARGV[0])])", self.clean),
                         [self.clean, None])
        # a directory: SCAN stops at the first infected file
        got = self.perl("print encode_json([$c->scan_path($ARGV[0])])", self.tree)
        self.assertIn(got, ([os.path.join(self.tree, "e1.com"), EICAR_SIG],
                            [os.path.join(self.tree, "sub/e2.com"), EICAR_SIG]))
        self.assertEqual(self.perl("print encode_json({$c->scan_path_complete($ARGV[0])})",
                                   self.tree),
                         {os.path.join(self.tree, "e1.com"): EICAR_SIG,
                          os.path.join(self.tree, "sub/e2.com"): EICAR_SIG})

    def test_perl_client_error_reply_throws(self):
        r = subprocess.run(["perl", "-MClamAV::Client", "-e",
                            "my $c = ClamAV::Client->new(socket_name => shift @ARGV);"
                            "eval { $c->scan_path($ARGV[0]) }; print $@",
                            self.daemon.sock, os.path.join(self.dir, "missing")],
                           capture_output=True, text=True, timeout=60 * SLOW)
        self.assertIn('Invalid server response to scan command: "%s: File path check failure: '
                      'No such file or directory. ERROR"' % os.path.join(self.dir, "missing"),
                      r.stdout)


if __name__ == "__main__":
    unittest.main()
