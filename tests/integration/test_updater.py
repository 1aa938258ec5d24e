"""The updater as a process and the update schedule (issue 5): it runs as
the scan user with no new privileges and only its IPC socket and the log;
a crash or hang of it is contained and reported, the active definitions
untouched; a version that made the engine fail to load (fault 7) is not
activated again when a mirror offers it; Checks schedules the next check
with jitter. Mirrors: the real nginx of mirror.py, and the stalling server
of test_update."""

import json
import os
import shutil
import signal
import subprocess
import threading
import time

from harness import SCANENGINED, SHARED, SLOW, Daemon, make_defs, plant_bad_generation, tmpdir
from mirror import Mirror
from test_update import StallingMirror, UpdateTestCase


def children(pid):
    """Direct children of pid, as (pid, comm)."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as fh:
                st = fh.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        if ppid == pid:
            out.append((int(p), comm))
    return out


def status_fields(pid):
    with open("/proc/%d/status" % pid) as fh:
        return dict(l.split(":", 1) for l in fh.read().splitlines() if ":" in l)


class UpdaterProcessTest(UpdateTestCase):
    """The updater while it waits on a mirror that stalls mid-body."""

    def setUp(self):
        super().setUp()
        self.stall = StallingMirror()
        self.addCleanup(self.stall.stop)
        self.start([self.stall.url], host_version=5, ReceiveTimeout="60")
        self.before = self.active()
        self.result = {}
        self.thread = threading.Thread(target=self.run_update, daemon=True)
        self.thread.start()
        self.d.wait_for(lambda: self.stall.stalled_at, timeout=20 * SLOW,
                        what="the updater in the stalled download")
        ups = [p for p, comm in children(self.d.proc.pid) if comm == "se-updater"]
        self.assertEqual(len(ups), 1, children(self.d.proc.pid))
        self.updater = ups[0]

    def run_update(self):
        r = self.d.scanctl("--json", "update")
        self.result["rc"] = r.returncode
        self.result["out"] = json.loads(r.stdout) if r.stdout.strip() else r.stderr

    def finish(self):
        self.thread.join(30 * SLOW)
        self.assertFalse(self.thread.is_alive(), "scanctl update did not return")
        return self.result["rc"], self.result["out"]

    def test_unprivileged_and_confined(self):
        st = status_fields(self.updater)
        scan_uid = str(os.stat(os.path.join(self.d.state, "update", "cycle")).st_uid)
        self.assertNotEqual(scan_uid, "0")
        self.assertEqual(st["Uid"].split(), [scan_uid] * 4)
        self.assertEqual(st["NoNewPrivs"].strip(), "1")
        self.assertEqual(int(st["CapEff"], 16), 0)
        self.assertEqual(int(st["CapBnd"], 16), 0)
        # nothing of the supervisor's: no control socket, no store; stdio,
        # the log, its IPC socket, libcurl's and its work directory's files
        fds = {}
        for fd in os.listdir("/proc/%d/fd" % self.updater):
            try:
                fds[int(fd)] = os.readlink("/proc/%d/fd/%s" % (self.updater, fd))
            except OSError:
                pass
        self.assertNotIn(self.d.sock, fds.values())
        self.assertFalse([t for t in fds.values() if t.startswith(self.d.state + "/defs")], fds)
        self.assertIn(self.d.log, fds.values())
        for t in fds.values():
            self.assertTrue(t.startswith(("socket:", "/dev/null", "pipe:", self.d.dir)), fds)
            self.assertFalse(t.startswith(self.d.state) and "/update/cycle" not in t, fds)
        # while it waits, the service scans
        self.assert_scanning()
        os.kill(self.updater, signal.SIGKILL)
        rc, out = self.finish()
        self.assertEqual(rc, 1, out)

    def test_killed_updater_is_reported_and_contained(self):
        os.kill(self.updater, signal.SIGKILL)
        rc, out = self.finish()
        self.assertEqual(rc, 1, out)
        self.assertEqual(out["result"], "failed", out)
        db = out["databases"][0]
        self.assertEqual(db["result"], "failed", db)
        self.assertEqual(db["failure"], "updater", db)
        self.assertIn("killed by signal 9", db["reason"])
        self.assertEqual(self.active(), self.before)
        self.assertEqual(self.version(), 5)
        self.assert_scanning()
        ev = self.d.events("update_failed")
        self.assertTrue(ev and "killed by signal 9" in ev[-1]["message"], ev)
        self.assertFalse(os.path.exists(os.path.join(self.d.state, "update", "cycle")))
        # and the next cycle runs a fresh updater
        self.stall.release.set()
        out2, db2 = self.update()
        self.assertNotEqual(db2.get("failure"), "updater", db2)


class KnownBadVersionTest(UpdateTestCase):
    """A version that made the engine fail to load is not activated again."""

    def setUp(self):
        super().setUp()
        self.m = Mirror().start()
        self.addCleanup(self.m.stop)

    def test_version_that_caused_fault_7_is_skipped(self):
        self.m.serve(5, cdiffs=())
        self.start([self.m.url], host_version=1)
        out, db = self.update(want_rc=0)
        self.assertEqual(db["new_version"], 5, db)
        # a set holding test version 6 that slipped past validation and
        # failed in the engine: quarantined with stage "load" (fault 7)
        plant_bad_generation(os.path.join(self.d.state, "defs"), {"test": 6})
        self.d.command(b"zRELOAD\0")
        self.d.wait_for(lambda: self.d.events("clear", 7), timeout=30 * SLOW,
                        what="fault 7 raised and cleared by the rollback")
        q = [e for e in self.d.events() if e["event"] == "quarantined"]
        self.assertEqual(len(q), 1, q)
        self.assertEqual(self.version(), 5)
        before = self.active()

        # the mirror now offers version 6
        self.m.serve(6, cdiffs=())
        out, db = self.update(want_rc=1)
        self.assertEqual(db["result"], "skipped", db)
        self.assertEqual(db["mirror_version"], 6, db)
        self.assertIn("version 6 made the engine fail to load before", db["reason"])
        self.assertIn(q[0]["quarantine"], db["reason"])
        self.assertNotIn("retry_in_s", db)  # never taken: no retry announced
        self.assertEqual(self.active(), before)
        self.assertEqual(self.version(), 5)
        ev = self.d.events("update_skipped")
        self.assertEqual(len(ev), 1, ev)
        self.assertIn("not activated again", ev[0]["message"])
        self.assert_scanning()


class ScheduleTest(UpdateTestCase):
    """Checks per day: the next check one interval away, moved by jitter."""

    def test_next_check_within_the_jittered_interval(self):
        m = Mirror().start()
        self.addCleanup(m.stop)
        m.serve(5, cdiffs=())
        t0 = time.time()
        self.start([m.url], Checks="48")
        u = self.update_status()
        self.assertTrue(u["enabled"], u)
        nxt = time.mktime(time.strptime(u["next_check"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        interval = 86400 / 48
        self.assertGreaterEqual(nxt, t0 + interval * 0.75 - 2, u)
        self.assertLessEqual(nxt, time.time() + interval * 1.25 + 2, u)
        human = self.d.scanctl("status").stdout
        self.assertRegex(human, r"next update check\s+" + u["next_check"])

    def test_no_mirror_no_updates(self):
        self.start([])
        self.assertFalse(self.update_status()["enabled"])
        r = self.d.scanctl("update")
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("no mirror is configured", r.stdout + r.stderr)
        self.assertIn("updates", self.d.scanctl("status").stdout)

    def test_bad_mirror_refused_at_start(self):
        d = Daemon(conf={"DatabaseMirror": "ftp://mirror.example"})
        self.addCleanup(d.cleanup)
        d.write_conf()
        r = subprocess.run([SCANENGINED, "--check-config", "--config-file", d.conf_path],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("mirror 'ftp://mirror.example': scheme not supported", r.stderr)


class PatchSignTest(UpdateTestCase):
    """The .sign of each patch, where the mirror has one."""

    def setUp(self):
        super().setUp()
        self.m = Mirror().start()
        self.addCleanup(self.m.stop)

    def test_patches_with_sign_files_are_checked(self):
        self.m.serve(6, cdiffs=range(2, 7))
        self.start([self.m.url], host_version=1)
        mark = self.m.mark()
        out, db = self.update(want_rc=0)
        self.assertEqual((db["incremental"], db["cdiff_signatures"]), (True, 5), db)
        got = sorted(r.path for r in self.m.requests(mark) if r.path.endswith(".cdiff.sign"))
        self.assertEqual(got, ["/test-%d.cdiff.sign" % n for n in range(2, 7)])

    def test_patch_sign_that_does_not_verify(self):
        self.m.serve(6, cdiffs=range(2, 7))
        # test-3's signature served as test-4's: the patch is not what was signed
        self.m.put("test-4.cdiff.sign", os.path.join(SHARED, "test-3.cdiff.sign"))
        self.start([self.m.url], host_version=1)
        before = self.active()
        out, db = self.update(want_rc=1)
        self.assertEqual((db["result"], db["failure"]), ("failed", "bad data"), db)
        self.assertRegex(db["reason"], r"test-4\.cdiff: authenticity: .*does not verify")
        self.assertEqual(self.active(), before)
        self.assertEqual(self.version(), 1)
        self.assert_retry(db, 60)
        self.assert_scanning()

    def test_require_sign_file_takes_the_whole_signed_file(self):
        self.m.serve(6, cdiffs=range(4, 7), sign=False)
        self.m.put("test-6.cvd.sign", os.path.join(SHARED, "test-6.cvd.sign"))
        # every file must have a .sign: the host starts from test-3 and its .sign
        defs = make_defs(os.path.join(tmpdir(), "defs"),
                         [os.path.join(SHARED, f) for f in ("test-3.cvd", "test-3.cvd.sign")],
                         ndb_eicar=False)
        self.d = Daemon(conf={"DatabaseMirror": self.m.url, "DatabaseName": "test",
                              "Checks": "0", "CertsDirectory": self.certs,
                              "RequireSignFile": "yes"}, defs_dir=defs).start()
        self.d.wait_for(lambda: self.version() == 3, timeout=60 * SLOW, what="test version 3")
        out, db = self.update(want_rc=0)
        self.assertEqual((db["result"], db["new_version"], db["incremental"]),
                         ("updated", 6, False), db)
        path, entry = self.installed_file()
        self.assertEqual(entry["authentication"], "sign", entry)


class FileMirrorTest(UpdateTestCase):
    """A file:// mirror (a share), and DatabaseDirectory beside the updater."""

    def test_file_mirror_by_patches(self):
        share = tmpdir()
        os.chmod(share, 0o755)
        shutil.copy(os.path.join(SHARED, "test-6.cvd"), os.path.join(share, "test.cvd"))
        for n in range(2, 7):
            for suffix in (".cdiff", ".cdiff.sign"):
                shutil.copy(os.path.join(SHARED, "test-%d%s" % (n, suffix)), share)
        for f in os.listdir(share):
            os.chmod(os.path.join(share, f), 0o644)
        self.start(["file://" + share], host_version=2)
        out, db = self.update(want_rc=0)
        self.assertEqual((db["result"], db["old_version"], db["new_version"]),
                         ("updated", 2, 6), db)
        self.assertEqual((db["incremental"], db["cdiffs"], db["mirror"]),
                         (True, 4, "file://" + share), db)
        self.assertEqual(self.version(), 6)
        out, db = self.update(want_rc=0)
        self.assertEqual(db["result"], "up to date", db)
        self.assertEqual(db["bytes"], 512, db)

    def test_database_directory_copy_is_not_taken_over_the_update(self):
        share = tmpdir()
        os.chmod(share, 0o755)
        shutil.copy(os.path.join(SHARED, "test-6.cvd"), os.path.join(share, "test.cvd"))
        os.chmod(os.path.join(share, "test.cvd"), 0o644)
        self.start(["file://" + share])
        # the host's test database came from DatabaseDirectory (version 1)
        shutil.copy(os.path.join(SHARED, "test-1.cvd"), self.d.defs)
        os.chmod(os.path.join(self.d.defs, "test-1.cvd"), 0o644)
        self.d.command(b"zRELOAD\0")
        self.d.wait_for(lambda: self.version() == 1, timeout=30 * SLOW, what="test version 1")
        out, db = self.update(want_rc=0)
        self.assertEqual(db["new_version"], 6, db)
        # DatabaseDirectory changes again: its other files are taken, its
        # old copy of the updated database is not (that would be a downgrade)
        with open(os.path.join(self.d.defs, "local.ndb"), "w") as fh:
            fh.write("Local.Test.Sig:0:*:6c6f63616c2d746573742d7369676e6174757265\n")
        os.chmod(os.path.join(self.d.defs, "local.ndb"), 0o644)
        gen = self.d.status()["definitions_generation"]
        self.d.command(b"zRELOAD\0")
        self.d.wait_for(lambda: self.d.status()["engine_generation"] > gen,
                        timeout=30 * SLOW, what="the new DatabaseDirectory set loaded")
        self.assertEqual(self.version(), 6)
        names = [db["name"] for db in self.d.status()["definitions_databases"]]
        self.assertIn("local.ndb", names)
        self.assertEqual(self.d.events("definitions_refused"), [])
        self.assertIn("test-1.cvd not taken: database test is updated from the mirrors",
                      self.d.read_log())
        sample = os.path.join(self.samples, "local.txt")
        with open(sample, "w") as fh:
            fh.write("local-test-signature")
        self.assertEqual(self.scan(sample), sample.encode() + b": Local.Test.Sig.UNOFFICIAL FOUND\0")


class SplitMirror:
    """A mirror out of sync: the header probe (a Range request) gets the
    header of one version, the download of the whole file another."""

    def __init__(self, announced, served):
        import http.server

        with open(os.path.join(SHARED, "test-%d.cvd" % announced), "rb") as fh:
            head = fh.read(512)
        with open(os.path.join(SHARED, "test-%d.cvd" % served), "rb") as fh:
            body = fh.read()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != "/test.cvd":
                    self.send_error(404)
                    return
                data = head if self.headers.get("Range") else body
                self.send_response(206 if self.headers.get("Range") else 200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class StaleMirrorTest(UpdateTestCase):
    """A mirror behind the host, or behind its own announcement: never a
    downgrade; reported, and asked again later."""

    def test_mirror_behind_the_host(self):
        m = Mirror().start()
        self.addCleanup(m.stop)
        m.serve(4)
        self.start([m.url], host_version=5)
        before = self.active()
        mark = m.mark()
        out, db = self.update(want_rc=1)
        self.assertEqual((db["result"], db["failure"], db["mirror_version"]),
                         ("failed", "stale mirror", 4), db)
        self.assertIn("never a downgrade", db["reason"])
        self.assert_retry(db, 60)
        # only the header was asked for
        self.assertEqual([(r.path, r.status) for r in m.requests(mark)], [("/test.cvd", 206)])
        self.assertEqual(self.active(), before)
        self.assertEqual(self.version(), 5)
        self.assert_scanning()

    def test_mirror_serving_less_than_it_announced(self):
        split = SplitMirror(announced=6, served=4)
        self.addCleanup(split.stop)
        self.start([split.url], host_version=5, ScriptedUpdates="no")
        before = self.active()
        out, db = self.update(want_rc=1)
        self.assertEqual((db["result"], db["failure"]), ("failed", "stale mirror"), db)
        self.assertIn("out of sync: it announced version 6 and served 4", db["reason"])
        self.assertEqual(self.active(), before)
        self.assertEqual(self.version(), 5)
        self.assert_scanning()

    def test_stale_first_mirror_then_a_current_one(self):
        old, new = Mirror().start(), Mirror().start()
        self.addCleanup(old.stop)
        self.addCleanup(new.stop)
        old.serve(4)
        new.serve(6)
        self.start([old.url, new.url], host_version=5)
        out, db = self.update(want_rc=0)
        self.assertEqual((db["result"], db["new_version"], db["mirror"]),
                         ("updated", 6, new.url), db)
        self.assertEqual([(a["mirror"], a["result"]) for a in db["attempts"]],
                         [(old.url, "failed"), (new.url, "ok")], db)


class ForbiddenTest(UpdateTestCase):
    def test_403_cools_down_for_a_day(self):
        m = Mirror(extra="location / {\n    return 403;\n}").start()
        self.addCleanup(m.stop)
        m.serve(6)
        self.start([m.url], host_version=5)
        out, db = self.update(want_rc=1)
        self.assertEqual((db["result"], db["failure"]), ("failed", "forbidden (403)"), db)
        self.assertGreater(db["retry_in_s"], 86400 - 60, db)
        self.assertLessEqual(db["retry_in_s"], 86400, db)
        mark = m.mark()
        out, db = self.update(want_rc=1)
        self.assertEqual(m.requests(mark), [])  # not asked during the cool-down
        self.assertIn("cool-down", db["reason"])
