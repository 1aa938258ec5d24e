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

from harness import SCANENGINED, SLOW, Daemon
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
        store = os.path.join(self.d.state, "defs")
        good = int(os.readlink(os.path.join(store, "current")).split("-")[1])
        bad = good + 1
        src, dst = (os.path.join(store, "gen-%06d" % g) for g in (good, bad))
        shutil.copytree(src, dst)
        with open(os.path.join(dst, "broken.ndb"), "w") as fh:
            fh.write("Broken.Sig:0:0:this-is-not-hex\n")
        with open(os.path.join(dst, "manifest.json")) as fh:
            m = json.load(fh)
        m["generation"] = bad
        m["fingerprint"] = os.urandom(32).hex()
        for d in m["databases"]:
            if d["name"] == "test":
                d["version"] = 6
        with open(os.path.join(dst, "manifest.json"), "w") as fh:
            json.dump(m, fh)
        os.symlink("gen-%06d" % bad, os.path.join(store, "current.tmp"))
        os.rename(os.path.join(store, "current.tmp"), os.path.join(store, "current"))
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
