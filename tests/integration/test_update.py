"""Definition updates from mirrors (issue 5): `scanctl update` against a
real nginx serving the genuine ClamAV test databases (test-1..6.cvd, the
test-2..6.cdiff patches and their .sign files) laid out as freshclam's
mirrors are, and against mirrors that misbehave: truncated, tampered or
HTML content, a .sign that does not verify, a mirror that stalls, one
that is down, one that rate-limits (429). Whatever comes, the active set
changes only to a validated newer one, the service scans throughout, and
the result says what happened and when the next try is."""

import base64
import hashlib
import io
import json
import os
import re
import select
import shutil
import socketserver
import subprocess
import tarfile
import threading
import time
import unittest

import cvdtool
from harness import SHARED, SLOW, TESTFILES, Daemon, make_samples, tmpdir
from mirror import Mirror, closed_url
from test_defs import as_json, scanctl_defs

CVD6 = os.path.join(SHARED, "test-6.cvd")
CLAM_EXE = os.path.join(TESTFILES, "clam.exe")


def file_sha256(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def cvd_member(path, member):
    """A member of a CVD's payload (a gzip'd tar after the 512-byte header)."""
    with open(path, "rb") as fh:
        data = fh.read()
    with tarfile.open(fileobj=io.BytesIO(data[512:]), mode="r:gz") as tar:
        return tar.extractfile(member).read()


def list_sigs(path):
    """sigtool's (Debian's clamav package) list of a database's signatures."""
    r = subprocess.run(["sigtool", "--list-sigs=" + path], capture_output=True, text=True,
                       timeout=60, cwd=tmpdir())
    assert r.returncode == 0, r.stderr
    return sorted(l for l in r.stdout.splitlines() if l.strip())


def sigtool_version(path):
    r = subprocess.run(["sigtool", "--info=" + path], capture_output=True, text=True,
                       timeout=60, cwd=tmpdir())
    assert r.returncode == 0, r.stderr
    m = re.search(r"^Version: (\d+)$", r.stdout, re.M)
    assert m, r.stdout
    return int(m.group(1))


class StallingMirror:
    """A tiny HTTP server: answers the header probe of test.cvd (a Range
    request) properly from test-6.cvd, 404 for everything else, and on the
    download of the whole test.cvd sends the headers and half the body,
    then nothing more. It notes when the client gave up."""

    def __init__(self, cvd=CVD6):
        with open(cvd, "rb") as fh:
            self.data = fh.read()
        self.requests = []   # (method, path, range)
        self.stalled_at = None
        self.closed_at = None
        self.release = threading.Event()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                outer._serve(self.request)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]

    def _serve(self, sock):
        f = sock.makefile("rb")
        while True:
            line = f.readline()
            if not line:
                return
            parts = line.decode("latin-1").split()
            headers = {}
            while True:
                h = f.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                k, _, v = h.decode("latin-1").partition(":")
                headers[k.strip().lower()] = v.strip()
            method, path = (parts + ["", ""])[:2]
            rng = headers.get("range")
            self.requests.append((method, path, rng))
            if path == "/test.cvd" and rng:
                m = re.match(r"bytes=(\d+)-(\d*)$", rng)
                a = int(m.group(1))
                b = min(int(m.group(2)) if m.group(2) else len(self.data) - 1,
                        len(self.data) - 1)
                body = self.data[a:b + 1]
                sock.sendall(b"HTTP/1.1 206 Partial Content\r\nContent-Length: %d\r\n"
                             b"Content-Range: bytes %d-%d/%d\r\n"
                             b"Content-Type: application/octet-stream\r\n\r\n"
                             % (len(body), a, b, len(self.data)) + body)
            elif path == "/test.cvd":
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                             b"Content-Type: application/octet-stream\r\n\r\n" % len(self.data)
                             + self.data[:len(self.data) // 2])
                self.stalled_at = time.monotonic()
                # silence; note when the client hangs up
                while not self.release.is_set():
                    if select.select([sock], [], [], 0.05)[0]:
                        try:
                            if not sock.recv(4096):
                                self.closed_at = time.monotonic()
                                return
                        except OSError:
                            self.closed_at = time.monotonic()
                            return
                return
            else:
                sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class UpdateTestCase(unittest.TestCase):
    """A daemon per test (its back-off state is the test's), configured
    for the mirrors the test names; samples to scan."""

    def setUp(self):
        self.samples, self.eicar, self.clean = make_samples()
        # a file only test-6.cvd's signatures detect (Win.Worm.Klez-1 is new in 6)
        pattern = [l for l in cvd_member(CVD6, "test.ndb").decode().splitlines()
                   if l.startswith("Win.Worm.Klez-1:")][0].split(":")[3]
        self.v6_sample = os.path.join(self.samples, "v6-only.bin")
        with open(self.v6_sample, "wb") as fh:
            fh.write(bytes.fromhex(pattern))
        self.certs = tmpdir()
        shutil.copy(os.path.join(SHARED, "clamav-test-root.crt"), self.certs)
        self.d = None

    def tearDown(self):
        if self.d is None:
            return
        self.d.finish()

    def start(self, mirrors=(), private=(), host_version=None, **conf):
        c = {"DatabaseMirror": list(mirrors) or None,
             "PrivateMirror": list(private) or None,
             "DatabaseName": "test",
             "Checks": "0",
             "ConnectTimeout": "2",
             "ReceiveTimeout": "2",
             "MaxAttempts": "1",
             "CertsDirectory": self.certs}
        c.update(conf)
        self.d = Daemon(conf=c)
        self.d.start()
        self.d.wait_for(lambda: self.d.status().get("engine_generation"), timeout=60,
                        what="the first engine")
        if host_version is not None:
            d = tmpdir()
            shutil.copy(os.path.join(SHARED, "test-%d.cvd" % host_version), d)
            out = as_json(scanctl_defs(self.d, "install",
                                       os.path.join(d, "test-%d.cvd" % host_version), check=0))
            self.assertTrue(out["installed"], out)
            self.assertEqual(self.version(), host_version)
        return self.d

    # ---- what the service says -------------------------------------------

    def version(self):
        """The active version of the test database, from STATUS."""
        for db in self.d.status().get("definitions_databases", []):
            if db["name"] == "test":
                return db.get("version")
        return None

    def active(self):
        """Everything that must not move when an update fails."""
        st = self.d.status()
        return {"definitions_generation": st["definitions_generation"],
                "engine_generation": st["engine_generation"],
                "databases": [(db["name"], db.get("version"), db["file"])
                              for db in st["definitions_databases"]],
                "current": os.readlink(os.path.join(self.d.state, "defs", "current"))}

    def scan(self, path):
        return self.d.command(b"zSCAN " + path.encode() + b"\0", timeout=30)

    def assert_scanning(self):
        r = self.scan(self.eicar)
        self.assertTrue(r.startswith(self.eicar.encode() + b": Eicar-Test-Signature") and
                        r.endswith(b" FOUND\0"), r)
        self.assertIn(b" FOUND\0", self.scan(CLAM_EXE))
        self.assertEqual(self.scan(self.clean), self.clean.encode() + b": OK\0")

    def installed_file(self, name="test"):
        """The active store generation's file of database name."""
        cur = os.path.join(self.d.state, "defs", "current")
        with open(os.path.join(cur, "manifest.json")) as fh:
            m = json.load(fh)
        for db in m["databases"]:
            if db["name"] == name:
                return os.path.join(cur, db["file"]), db
        raise AssertionError("no database %s in %s" % (name, m["databases"]))

    def update_status(self):
        st = self.d.status()
        self.assertIn("update", st)
        return st["update"]

    def update(self, want_rc=None):
        """scanctl --json update: (its JSON, the test database's entry)."""
        r = self.d.scanctl("--json", "update")
        time.sleep(0.1)  # nginx logs a request just after its last byte went out
        if want_rc is not None:
            self.assertEqual(r.returncode, want_rc, r.stdout + r.stderr)
        try:
            out = json.loads(r.stdout)
        except ValueError:
            raise AssertionError("scanctl update --json: not JSON (exit %d): %r / %r" %
                                 (r.returncode, r.stdout, r.stderr))
        dbs = [db for db in out["databases"] if db["name"] == "test"]
        self.assertEqual(len(dbs), 1, out)
        return out, dbs[0]

    def assert_retry(self, db, seconds):
        """The back-off: seconds, plus the policy's jitter of up to 10 %."""
        self.assertIsInstance(db.get("retry_in_s"), int, db)
        self.assertGreaterEqual(db["retry_in_s"], seconds - 5, db)
        self.assertLessEqual(db["retry_in_s"], seconds * 1.1 + 1, db)

    def assert_failed(self, before, out, db, failure, reason, retry_s, mirror):
        """A failed run that left everything as it was."""
        self.assertEqual(out["result"], "failed", out)
        self.assertEqual(db["result"], "failed", db)
        self.assertEqual(db["failure"], failure, db)
        self.assertRegex(db["reason"], reason)
        self.assertNotIn("\n", db["reason"])
        self.assertEqual((db["old_version"], db["new_version"]), (5, 5), db)
        self.assert_retry(db, retry_s)
        self.assertEqual(out["generation"], before["definitions_generation"], out)
        self.assertEqual(self.active(), before)
        self.assertEqual(self.version(), 5)
        self.assertTrue(any(a["mirror"] == mirror for a in db["attempts"]), db)
        self.assert_scanning()
        ev = self.d.events("update_failed")
        self.assertTrue(ev, "no update_failed event")
        self.assertEqual(self.d.events("definitions_updated"), [])
        u = self.update_status()
        self.assertEqual(u["last_result"], "failed", u)
        self.assertTrue(u["last_reason"], u)
        self.assertTrue(u["last_attempt"], u)
        m = [x for x in u["mirrors"] if x["url"] == mirror]
        self.assertEqual(len(m), 1, u)
        self.assertGreaterEqual(m[0]["failures"], 1, u)
        self.assertTrue(m[0]["not_before"], u)


class UpdateTest(UpdateTestCase):
    """Points 1 and 2: incremental by cdiffs, up to date, whole file."""

    def setUp(self):
        super().setUp()
        self.m = Mirror().start()
        self.addCleanup(self.m.stop)

    def cdiff_requests(self, reqs):
        return sorted((r.path, r.status) for r in reqs if r.path and r.path.endswith(".cdiff"))

    def test_incremental_then_up_to_date(self):
        self.m.serve(6, cdiffs=range(2, 7))
        self.start([self.m.url], host_version=1)
        before = self.active()
        self.assertEqual(self.scan(self.v6_sample), self.v6_sample.encode() + b": OK\0")

        mark = self.m.mark()
        out, db = self.update(want_rc=0)
        self.assertEqual(out["result"], "updated", out)
        self.assertEqual((db["result"], db["old_version"], db["new_version"], db["mirror_version"]),
                         ("updated", 1, 6, 6), db)
        self.assertEqual((db["incremental"], db["cdiffs"]), (True, 5), db)
        self.assertEqual(db["mirror"], self.m.url)
        self.assertEqual(db["validation"], "passed")
        self.assertIsInstance(db["ms"], int)
        self.assertIsInstance(out["ms"], int)
        self.assertIsNone(out["next_check"])  # Checks 0
        # the mirror saw the header probe and the five patches, no download of test.cvd
        reqs = self.m.requests(mark)
        self.assertEqual(self.cdiff_requests(reqs),
                         [("/test-%d.cdiff" % n, 200) for n in range(2, 7)], reqs)
        cvd = [r for r in reqs if r.path == "/test.cvd"]
        self.assertTrue(cvd, reqs)
        for r in cvd:
            self.assertEqual((r.status, r.bytes, r.range), (206, 512, "bytes=0-511"), r)
        self.assertEqual([r for r in reqs if r.status not in (200, 206)], [], reqs)
        cdiff_bytes = sum(os.path.getsize(os.path.join(SHARED, "test-%d.cdiff" % n))
                          for n in range(2, 7))
        self.assertGreaterEqual(db["bytes"], 512 + cdiff_bytes, db)
        self.assertLessEqual(db["bytes"], sum(r.bytes for r in reqs), (db, reqs))

        # the new set is active: a generation of its own, version 6, test-6's signatures
        st = self.d.status()
        self.assertEqual(out["generation"], st["definitions_generation"])
        self.assertEqual(st["engine_generation"], st["definitions_generation"])
        self.assertGreater(out["generation"], before["definitions_generation"])
        self.assertEqual(self.version(), 6)
        path, entry = self.installed_file()
        self.assertEqual(os.path.basename(path), "test.cld", entry)
        self.assertEqual(entry["version"], 6)
        self.assertEqual(sigtool_version(path), 6)
        self.assertEqual(list_sigs(path), list_sigs(CVD6))
        listed = [db for g in as_json(scanctl_defs(self.d, "list", check=0)) if g["current"]
                  for db in g["databases"] if db["name"] == "test"]
        self.assertEqual(listed[0]["version"], 6, listed)
        self.assertEqual(self.scan(self.v6_sample),
                         self.v6_sample.encode() + b": Win.Worm.Klez-1 FOUND\0")
        self.assert_scanning()
        self.assertEqual(len(self.d.events("definitions_updated")), 1)
        self.assertEqual(self.d.events("update_failed"), [])
        u = self.update_status()
        self.assertEqual(u["last_result"], "updated", u)
        self.assertIsNone(u["last_reason"], u)
        self.assertIsNone(u["next_check"], u)
        self.assertEqual([(x["url"], x["failures"], x["not_before"]) for x in u["mirrors"]],
                         [(self.m.url, 0, None)], u)

        # nothing newer: only the header probe, nothing changes
        gen = self.active()
        mark = self.m.mark()
        out, db = self.update(want_rc=0)
        self.assertEqual((out["result"], db["result"]), ("up to date", "up to date"), out)
        self.assertEqual((db["old_version"], db["new_version"], db["mirror_version"]), (6, 6, 6))
        self.assertEqual(out["generation"], gen["definitions_generation"])
        reqs = self.m.requests(mark)
        self.assertTrue(reqs)
        for r in reqs:
            self.assertEqual((r.path, r.status, r.bytes, r.range),
                             ("/test.cvd", 206, 512, "bytes=0-511"), r)
        self.assertEqual(db["bytes"], 512 * len(reqs), db)
        self.assertEqual(self.active(), gen)
        self.assertEqual(self.update_status()["last_result"], "up to date")
        # and as a person reads it
        r = self.d.scanctl("update", check=0)
        self.assertRegex(r.stdout, r"(?m)^test: up to date \(version 6\), 512 bytes")
        self.assertEqual(len(self.d.events("definitions_updated")), 1)

    def check_whole(self, host_version, cdiffs):
        self.m.serve(6, cdiffs=cdiffs)
        self.start([self.m.url], host_version=host_version)
        before = self.active()
        mark = self.m.mark()
        out, db = self.update(want_rc=0)
        self.assertEqual(out["result"], "updated", out)
        self.assertEqual((db["result"], db["old_version"], db["new_version"], db["mirror_version"]),
                         ("updated", host_version, 6, 6), db)
        self.assertEqual(db["incremental"], False, db)
        self.assertEqual(db["cdiffs"], 0, db)
        self.assertEqual(db["mirror"], self.m.url)
        self.assertEqual(db["validation"], "passed")
        reqs = self.m.requests(mark)
        whole = [r for r in reqs if r.path == "/test.cvd" and r.range is None]
        self.assertEqual([(r.status, r.bytes) for r in whole], [(200, os.path.getsize(CVD6))], reqs)
        self.assertIn(("/test-6.cvd.sign", 200), [(r.path, r.status) for r in reqs])
        # no patch was applied: none fetched but (perhaps) the ones there were
        self.assertEqual([r for r in reqs if (r.path or "").endswith(".cdiff") and r.status == 200
                          and int(re.search(r"-(\d+)\.", r.path).group(1)) not in cdiffs], [])
        self.assertGreaterEqual(db["bytes"], 512 + os.path.getsize(CVD6), db)
        self.assertGreater(out["generation"], before["definitions_generation"])
        self.assertEqual(self.version(), 6)
        path, entry = self.installed_file()
        self.assertEqual(file_sha256(path), file_sha256(CVD6))
        # the .sign came along and verified against CertsDirectory
        self.assertEqual(entry["authentication"], "sign", entry)
        self.assertEqual(self.scan(self.v6_sample),
                         self.v6_sample.encode() + b": Win.Worm.Klez-1 FOUND\0")
        self.assert_scanning()
        self.assertEqual(len(self.d.events("definitions_updated")), 1)

    def test_whole_file_when_the_mirror_has_no_cdiffs(self):
        self.check_whole(5, cdiffs=())

    def test_whole_file_when_a_cdiff_is_missing(self):
        self.check_whole(1, cdiffs=(3, 4, 5, 6))


class BadMirrorTest(UpdateTestCase):
    """Point 3: a host at version 5, a mirror offering 6 as a whole file
    (no cdiffs) that goes wrong in one way per test."""

    def setUp(self):
        super().setUp()
        self.m = Mirror()

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            self.m.stop()

    def bad_data(self, reason, sign=False, extra="", validation=True):
        self.m.extra = extra
        self.m.start()
        self.start([self.m.url], host_version=5)
        before = self.active()
        out, db = self.update(want_rc=1)
        self.assert_failed(before, out, db, "bad data", reason, 60, self.m.url)
        if validation:
            self.assertRegex(db["validation"] or "", r"^refused: ")
        return out, db

    def test_truncated_cvd(self):
        self.m.serve(6, sign=False)
        with open(CVD6, "rb") as fh:
            self.m.put("test.cvd", data=fh.read()[:6000])
        _, db = self.bad_data(r"(?i)integrity|md5|truncat|short|incomplete|format")
        self.assertEqual(db["mirror_version"], 6)

    def test_flipped_byte(self):
        self.m.serve(6, sign=False)
        cvdtool.flip(CVD6, os.path.join(self.m.root, "test.cvd"), os.path.getsize(CVD6) // 2)
        _, db = self.bad_data(r"(?i)integrity|md5|corrupt|format")
        self.assertEqual(db["mirror_version"], 6)

    def test_html_page_with_status_200(self):
        # a captive portal or a broken proxy: 200 and a page, Range or not
        self.m.serve(6, sign=False)
        self.m.put("test.cvd", data="<!DOCTYPE html>\n<html><head><title>Welcome</title></head>"
                                    "<body><h1>Please log in</h1>" + "<p>portal</p>" * 60 +
                                    "</body></html>\n")
        _, db = self.bad_data(r"(?i)html|header|not a cvd|format", extra="max_ranges 0;",
                              validation=False)
        self.assertIsNone(db["mirror_version"], db)
        reqs = self.m.requests()
        self.assertTrue(reqs and all(r.status == 200 for r in reqs), reqs)

    def test_sign_file_that_does_not_verify(self):
        self.m.serve(6, sign=False)
        self.m.put("test-6.cvd.sign", os.path.join(SHARED, "test-5.cvd.sign"))
        _, db = self.bad_data(r"(?i)sign|authenticity|verify")
        self.assertRegex(db["validation"], r"authenticity|does not verify")
        self.assertIn(("/test-6.cvd.sign", 200), [(r.path, r.status) for r in self.m.requests()])

    def test_stalling_mirror(self):
        stall = StallingMirror()
        self.addCleanup(stall.stop)
        self.start([stall.url], host_version=5)
        before = self.active()
        t0 = time.monotonic()
        out, db = self.update(want_rc=1)
        took = time.monotonic() - t0
        self.assert_failed(before, out, db, "network", r"(?i)time|stall|progress|receiv", 60,
                           stall.url)
        self.assertEqual(db["mirror_version"], 6, db)
        self.assertIsNotNone(stall.stalled_at, stall.requests)
        # cut off after ReceiveTimeout (2 s) without progress, not much later
        self.assertIsNotNone(stall.closed_at, "the updater never gave up on the stalled transfer")
        self.assertGreaterEqual(stall.closed_at - stall.stalled_at, 1.5)
        self.assertLess(stall.closed_at - stall.stalled_at, 6 * SLOW)
        self.assertLess(took, 15 * SLOW)

    def test_mirror_down(self):
        url = closed_url()
        self.start([url], host_version=5)
        before = self.active()
        out, db = self.update(want_rc=1)
        self.assert_failed(before, out, db, "network", r"(?i)refused|connect", 60, url)
        self.assertIsNone(db["mirror"], db)
        self.assertIsNone(db["mirror_version"], db)
        # a manual run tries again at once; the second failure backs off twice as long
        r = self.d.scanctl("update", check=1)
        m = re.search(r"(?m)^test: failed \(network\): (.+); next try in (\d+) s$", r.stdout)
        self.assertTrue(m, r.stdout + r.stderr)
        self.assertGreaterEqual(int(m.group(2)), 115)
        self.assertLessEqual(int(m.group(2)), 133)
        self.assertEqual(self.active(), before)
        self.assertEqual(len(self.d.events("update_failed")), 2)

    def test_rate_limited(self):
        self.m.serve(6)
        self.m.extra = "location / {\n    add_header Retry-After 120 always;\n    return 429;\n}"
        self.m.start()
        self.start([self.m.url], host_version=5)
        before = self.active()
        out, db = self.update(want_rc=1)
        self.assert_failed(before, out, db, "rate limited (429)", r"(?i)429|rate", 120, self.m.url)
        self.assertLessEqual(db["retry_in_s"], 120, db)
        self.assertTrue(all(r.status == 429 for r in self.m.requests()), self.m.requests())
        # during the cool-down a manual run does not ask that mirror at all
        mark = self.m.mark()
        out, db = self.update(want_rc=1)
        self.assertEqual(self.m.requests(mark), [])
        self.assertEqual(db["result"], "failed", db)
        self.assertEqual(db["failure"], "rate limited (429)", db)
        self.assertRegex(db["reason"], r"(?i)cool|429|rate|retry|until")
        self.assertGreater(db["retry_in_s"], 100, db)
        self.assertLessEqual(db["retry_in_s"], 120, db)
        self.assertEqual(self.active(), before)
        self.assert_scanning()


class FailoverTest(UpdateTestCase):
    """Point 4: the PrivateMirror is down, the DatabaseMirror is good."""

    def test_private_mirror_down_then_database_mirror(self):
        good = Mirror().start()
        self.addCleanup(good.stop)
        good.serve(6, cdiffs=(6,))
        down = closed_url()
        self.start([good.url], private=[down], host_version=5)
        out, db = self.update(want_rc=0)
        self.assertEqual((out["result"], db["result"], db["new_version"]),
                         ("updated", "updated", 6), out)
        self.assertEqual(db["mirror"], good.url)
        self.assertEqual((db["incremental"], db["cdiffs"]), (True, 1), db)
        attempts = db["attempts"]
        self.assertGreaterEqual(len(attempts), 2, db)
        self.assertEqual(attempts[0]["mirror"], down, db)
        self.assertNotIn(attempts[0]["result"], ("updated", "up to date"), db)
        self.assertRegex(attempts[0]["reason"], r"(?i)refused|connect")
        self.assertEqual(attempts[-1]["mirror"], good.url, db)
        self.assertIn(attempts[-1]["result"], ("updated", "ok"), db)
        self.assertEqual(self.version(), 6)
        self.assertEqual(self.scan(self.v6_sample),
                         self.v6_sample.encode() + b": Win.Worm.Klez-1 FOUND\0")
        mirrors = {x["url"]: x for x in self.update_status()["mirrors"]}
        self.assertEqual(list(mirrors), [down, good.url])
        self.assertGreaterEqual(mirrors[down]["failures"], 1)
        self.assertEqual((mirrors[good.url]["failures"], mirrors[good.url]["not_before"]), (0, None))


class ProxyTest(UpdateTestCase):
    """HTTPProxyServer/Port/Username/Password: the requests go through the
    proxy (a second nginx, answering 407 without the right credentials)."""

    def test_through_an_authenticating_proxy(self):
        origin = Mirror().start()
        self.addCleanup(origin.stop)
        origin.serve(6, cdiffs=(6,))
        auth = base64.b64encode(b"upd-user:s3cret pass").decode()
        proxy = Mirror(extra='location / {\n'
                             '    if ($http_proxy_authorization != "Basic %s") { return 407; }\n'
                             '    proxy_pass http://$http_host;\n'
                             '}' % auth).start()
        self.addCleanup(proxy.stop)
        self.start([origin.url], host_version=5, HTTPProxyServer="127.0.0.1",
                   HTTPProxyPort=str(proxy.port), HTTPProxyUsername="upd-user",
                   HTTPProxyPassword="s3cret pass")
        out, db = self.update(want_rc=0)
        self.assertEqual((db["result"], db["new_version"], db["incremental"]),
                         ("updated", 6, True), db)
        via = [(r.path, r.status) for r in proxy.requests()]
        self.assertEqual(via, [(origin.url + "/test.cvd", 206),
                               (origin.url + "/test-6.cdiff", 200),
                               (origin.url + "/test-6.cdiff.sign", 200)], proxy.requests())
        self.assertEqual([(r.path, r.status) for r in origin.requests()],
                         [("/test.cvd", 206), ("/test-6.cdiff", 200),
                          ("/test-6.cdiff.sign", 200)])
        self.assertEqual(self.version(), 6)


class ScanDuringUpdateTest(UpdateTestCase):
    """Point 5: clients scanning without pause while an update replaces
    the definitions see no error."""

    def test_no_errors_while_updating(self):
        m = Mirror().start()
        self.addCleanup(m.stop)
        m.serve(6, cdiffs=range(2, 7))
        self.start([m.url], host_version=1)
        gen = self.d.status()["engine_generation"]
        stop = threading.Event()
        sent, bad = [0], []

        def good(path, r):
            if path == self.clean:
                return r == path.encode() + b": OK\0"
            # EICAR: the local signature before, perhaps test-6's own after
            return r.startswith(path.encode() + b": Eicar-Test-Signature") and r.endswith(b" FOUND\0")

        def client(path):
            while not stop.is_set():
                try:
                    r = self.scan(path)
                except OSError as e:
                    r = repr(e).encode()
                sent[0] += 1
                if not good(path, r):
                    bad.append(r)

        threads = [threading.Thread(target=client, args=(p,)) for p in (self.eicar, self.clean)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.3)
            before = sent[0]
            # as a person runs it
            r = self.d.scanctl("update", check=0)
            self.assertRegex(r.stdout, r"(?m)^test: 1 -> 6, incremental \(5 cdiffs\), \d+ bytes from "
                             + re.escape(m.url) + r", validation passed, \d+\.\d+ s$")
            self.d.wait_for(lambda: self.d.status()["engine_generation"] > gen and
                            len(self.d.status()["engines"]) == 1, timeout=30,
                            what="the new engine alone")
            time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(bad, [])
        self.assertGreater(sent[0] - before, 10)
        self.assertEqual(self.version(), 6)
        self.assertEqual(self.scan(self.v6_sample),
                         self.v6_sample.encode() + b": Win.Worm.Klez-1 FOUND\0")


if __name__ == "__main__":
    unittest.main()
