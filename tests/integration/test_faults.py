"""Faults 5, 6 and 7 end to end with the real daemon: raised, acted on,
cleared, persisted; checked in the event log and `scanctl faults --json`."""

import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import unittest

from harness import EICAR, ROOT, SCANENGINED, SLOW, Daemon, plant_bad_generation, tmpdir


def one_reply(data):
    assert data.endswith(b"\0") and data.count(b"\0") == 1, data
    return data[:-1]


def slow_file(directory, name, mib=6):
    """Random data scans at a few tens of MB/s: long enough to be caught
    in the middle of a scan."""
    p = os.path.join(directory, name)
    with open(p, "wb") as fh:
        fh.write(os.urandom(mib << 20))
    os.chmod(p, 0o644)
    return p


def busy_on(daemon, suffix, first_attempt_only=False):
    """pids of workers scanning a file whose path ends with suffix."""
    pids = []
    for g in daemon.status()["engines"]:
        for w in g.get("workers", []):
            if w["state"] == "busy" and w.get("scanning", "").endswith(suffix):
                if not first_attempt_only or w.get("attempt") == 1:
                    pids.append(w["pid"])
    return pids


class Killer:
    """Sends sig to every worker found scanning a file matching suffix."""

    def __init__(self, daemon, suffix, sig=signal.SIGSEGV):
        self.daemon, self.suffix, self.sig = daemon, suffix, sig
        self.stop = threading.Event()
        self.killed = []
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            try:
                for pid in busy_on(self.daemon, self.suffix):
                    # status may still show a worker we signalled
                    if pid in self.killed:
                        continue
                    os.kill(pid, self.sig)
                    self.killed.append(pid)
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.005)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join()


class CrashLoopTest(unittest.TestCase):
    """Fault 6 and poisoned files."""

    def setUp(self):
        self.samples = tmpdir()
        self.d = Daemon(conf={"CrashLoopThreshold": "3", "CrashLoopWindow": "60",
                              "FaultClearStableSeconds": str(int(4 * SLOW)),
                              "WorkerRespawnInterval": "50", "CrashBackoffMax": "1",
                              "PoisonThreshold": "2"}).start()

    def tearDown(self):
        try:
            self.d.stop()
        finally:
            self.d.cleanup()

    def scan(self, path):
        return one_reply(self.d.command(b"zSCAN " + path.encode() + b"\0", timeout=60))

    def test_crash_loop_raises_fault_6_once_and_clears_by_itself(self):
        slows = [slow_file(self.samples, "slow%d.bin" % i) for i in range(3)]
        clean = os.path.join(self.samples, "clean.txt")
        with open(clean, "w") as fh:
            fh.write("clean\n")
        stop = threading.Event()
        answered, wrong = [0], []

        def client(paths):
            while not stop.is_set():
                for p in paths:
                    r = self.scan(p)
                    # a killed scan is retried once on a fresh worker
                    if r != p.encode() + b": OK":
                        wrong.append(r)
                    answered[0] += 1

        threads = [threading.Thread(target=client, args=([s, clean],)) for s in slows]
        for t in threads:
            t.start()
        killed = []
        try:
            for s in slows:  # one kill per file: none is poisoned
                while True:
                    pid = self.d.wait_for(
                        lambda: (busy_on(self.d, os.path.basename(s), True) or [None])[0],
                        timeout=30, what="a worker scanning " + s)
                    # Stopped, the worker cannot move on to another file: if
                    # the supervisor still has it on this one (a "done" sent
                    # just before would have been read by now), the signal
                    # lands in this scan and no other file shares the crash.
                    os.kill(pid, signal.SIGSTOP)
                    time.sleep(0.1)
                    if pid in busy_on(self.d, os.path.basename(s), True):
                        os.kill(pid, signal.SIGSEGV)
                        os.kill(pid, signal.SIGCONT)
                        break
                    os.kill(pid, signal.SIGCONT)
                killed.append(pid)
                self.d.wait_for(lambda: pid not in self.d.worker_pids(), timeout=30,
                                what="worker %d gone" % pid)
            self.d.wait_for(lambda: 6 in self.d.fault_ids(), timeout=10, what="fault 6")
            before = answered[0]
            time.sleep(0.5)
            self.assertGreater(answered[0], before, "scanning stopped during the crash loop")
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(wrong, [])
        raises = self.d.events("raise", 6)
        self.assertEqual(len(raises), 1, raises)
        detail = raises[0]["detail"]
        self.assertGreaterEqual(detail["crashes"], 3)
        self.assertEqual(detail["window_seconds"], 60)
        self.assertTrue(all("signal 11" in x for x in detail["deaths"]), detail)
        self.assertEqual(sorted(set(detail["files_in_flight"])), sorted(slows))
        f6 = [f for f in self.d.faults() if f["id"] == 6][0]
        self.assertEqual(f6["name"], "frequent scan service restarts")
        self.assertIn("3 scanner crashes", f6["reason"])
        self.assertTrue(f6["remediation"])
        self.assertIn(6, self.d.status()["faults"])
        # no crash for the stable window: cleared by itself
        self.d.wait_for(lambda: 6 not in self.d.fault_ids(), timeout=30, what="fault 6 cleared")
        clears = self.d.events("clear", 6)
        self.assertEqual(len(clears), 1)
        self.assertGreaterEqual(clears[0]["time"] - raises[0]["time"], 3)
        self.assertEqual(self.scan(clean), clean.encode() + b": OK")

    def test_poisoned_file_is_refused_until_new_definitions(self):
        poison = slow_file(self.samples, "poison.bin")
        copy = os.path.join(self.samples, "copy-of-poison.bin")
        shutil.copyfile(poison, copy)
        other = slow_file(self.samples, "other.bin", mib=1)
        with Killer(self.d, "poison.bin") as k:
            # killed on the first attempt and on the retry
            self.assertEqual(self.scan(poison), poison.encode() + b": Scanner.Crashed ERROR")
        self.assertEqual(len(k.killed), 2, k.killed)
        ev = self.d.events("poisoned")
        self.assertEqual(len(ev), 1)
        self.assertEqual(ev[0]["path"], poison)
        self.assertEqual(ev[0]["crashes"], 2)
        st = self.d.status()
        self.assertEqual([p["path"] for p in st["poisoned"]], [poison])
        # refused at once: never handed to a worker again
        t0 = time.time()
        self.assertEqual(self.scan(poison), poison.encode() + b": Scanner.Crashed ERROR")
        self.assertLess(time.time() - t0, 0.5 * SLOW)
        # the same content under another name, and as a stream
        self.assertEqual(self.scan(copy), copy.encode() + b": Scanner.Crashed ERROR")
        with open(poison, "rb") as fh:
            data = fh.read()
        s = self.d.connect()
        s.sendall(b"zINSTREAM\0")
        for i in range(0, len(data), 1 << 20):
            part = data[i:i + (1 << 20)]
            s.sendall(len(part).to_bytes(4, "big") + part)
        s.sendall(b"\0\0\0\0")
        reply = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            reply += b
        s.close()
        self.assertEqual(reply, b"stream: Scanner.Crashed ERROR\0")
        self.assertEqual(self.scan(other), other.encode() + b": OK")
        r = self.d.scanctl("status", check=0)
        self.assertIn(poison, r.stdout)
        # new definitions lift it
        with open(os.path.join(self.d.defs, "extra.ndb"), "w") as fh:
            fh.write("Scanengine.Test.Extra:0:*:%s\n" % os.urandom(12).hex())
        self.assertEqual(self.d.command(b"zRELOAD\0"), b"RELOADING\0")
        self.d.wait_for(lambda: self.d.status()["engine_loads"] == 2 and not self.d.status()["poisoned"],
                        timeout=30, what="new definitions")
        self.assertEqual(self.scan(poison), poison.encode() + b": OK")
        self.assertEqual(len(self.d.events("poison_lifted")), 1)

    def test_reset_poison_by_operator(self):
        poison = slow_file(self.samples, "p2.bin")
        with Killer(self.d, "p2.bin"):
            self.assertEqual(self.scan(poison), poison.encode() + b": Scanner.Crashed ERROR")
        self.assertEqual(self.scan(poison), poison.encode() + b": Scanner.Crashed ERROR")
        r = self.d.scanctl("faults", "--reset-poison", check=0)
        self.assertIn("POISON RESET: 1", r.stdout)
        self.assertEqual(self.scan(poison), poison.encode() + b": OK")


class BadDefinitionsTest(unittest.TestCase):
    """Fault 7, bad definitions: quarantine, rollback, clear."""

    def setUp(self):
        self.d = Daemon().start()
        self.store = os.path.join(self.d.state, "defs")
        self.samples = tmpdir()
        self.eicar = os.path.join(self.samples, "eicar.com")
        with open(self.eicar, "wb") as fh:
            fh.write(EICAR)

    def tearDown(self):
        try:
            self.d.stop()
        finally:
            self.d.cleanup()

    def current_gen(self):
        return int(os.readlink(os.path.join(self.store, "current")).split("-")[1])

    def plant_bad_generation(self):
        return plant_bad_generation(self.store)

    def assert_story(self, good, bad, t0):
        """raise 7 -> quarantined -> restored -> clear 7, in this order."""
        self.d.wait_for(lambda: self.d.events("clear", 7), timeout=30, what="fault 7 cleared")
        self.assertLess(time.time() - t0, 15 * SLOW)
        story = [e for e in self.d.events()
                 if e.get("id") == 7 or e["event"] in ("quarantined", "restored")]
        self.assertEqual([e["event"] for e in story], ["raise", "quarantined", "restored", "clear"],
                         story)
        raise7, quar, rest, clear = story
        self.assertEqual(raise7["detail"]["cause"], "bad definitions")
        self.assertEqual(raise7["detail"]["generation"], bad)
        self.assertIn("broken.ndb", raise7["reason"])
        self.assertEqual(quar["generation"], bad)
        self.assertEqual(rest["generation"], good)
        self.assertIn("engine up", clear["reason"])
        qdir = quar["quarantine"]
        with open(os.path.join(qdir, "reason.json")) as fh:
            reason = json.load(fh)
        self.assertEqual(reason["generation"], bad)
        self.assertEqual(reason["stage"], "load")
        self.assertIn("broken.ndb", reason["reason"])
        self.assertFalse(os.path.exists(os.path.join(self.store, "gen-%06d" % bad)))
        self.assertEqual(self.current_gen(), good)
        self.assertEqual(self.d.fault_ids(), [])
        self.assertEqual(one_reply(self.d.command(b"zSCAN " + self.eicar.encode() + b"\0")),
                         self.eicar.encode() + b": Eicar-Test-Signature.UNOFFICIAL FOUND")

    def test_bad_set_on_reload_is_quarantined_and_rolled_back(self):
        good, bad = self.plant_bad_generation()
        t0 = time.time()
        self.assertEqual(self.d.command(b"zRELOAD\0"), b"RELOADING\0")
        self.assert_story(good, bad, t0)

    def test_bad_set_at_start_is_quarantined_and_rolled_back(self):
        self.d.stop()
        good, bad = self.plant_bad_generation()
        t0 = time.time()
        self.d.start()
        self.assert_story(good, bad, t0)

    def test_no_good_set_left_every_scan_names_fault_7(self):
        self.d.stop()
        self.d.cleanup()
        self.d = Daemon()
        with open(os.path.join(self.d.defs, "broken.ndb"), "w") as fh:
            fh.write("Broken.Sig:0:0:this-is-not-hex\n")
        self.d.write_conf()
        r = subprocess.run([SCANENGINED, "--config-file", self.d.conf_path],
                           capture_output=True, text=True, timeout=60 * SLOW)
        # running, degraded, and saying so
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stderr.strip(), r"^scanengined: warning: started without a working "
                                           r"engine: fault 7 \(scan service failed to start\)")
        with open(self.d.pidfile) as fh:
            pid = int(fh.read())
        try:
            ids = self.d.fault_ids()
            self.assertIn(7, ids)
            f7 = [f for f in self.d.faults() if f["id"] == 7][0]
            self.assertIn("no good definitions set is left", f7["reason"])
            reply = one_reply(self.d.command(b"zSCAN " + self.eicar.encode() + b"\0"))
            self.assertRegex(reply.decode(), r": Service unavailable: fault 7 \(scan service failed "
                                             r"to start\): .* ERROR$")
            self.assertEqual(self.d.command(b"zPING\0"), b"PONG\0")
            # the same files delivered again are not activated again
            os.utime(os.path.join(self.d.defs, "broken.ndb"))
            self.d.command(b"zRELOAD\0")
            self.d.wait_for(lambda: self.d.events("definitions_refused"), timeout=20,
                            what="the refusal event")
            ev = self.d.events("definitions_refused")[-1]
            self.assertIn("refused: test load", ev["message"])
            self.assertIn("broken.ndb: Malformed database", ev["message"])
            self.assertNotIn("staging", ev["message"])
            self.assertIn(7, self.d.fault_ids())
        finally:
            os.kill(pid, signal.SIGTERM)
            self.d.wait_for(lambda: not os.path.exists("/proc/%d" % pid), timeout=20,
                            what="daemon exit")


@unittest.skipUnless(os.path.exists("/sys/fs/cgroup/memory") or
                     os.path.exists("/sys/fs/cgroup/cgroup.controllers"), "no memory cgroup")
class MemoryTest(unittest.TestCase):
    """Fault 7, insufficient memory: under a MemoryLimit below what a set of
    over a million signatures needs."""

    @classmethod
    def setUpClass(cls):
        cls.defs = tmpdir()
        r = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "bench", "gen_sigs.py"),
                            cls.defs, "--hash", "1000000", "--body", "1000"],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        for f in os.listdir(cls.defs):
            os.chmod(os.path.join(cls.defs, f), 0o644)

    def test_insufficient_memory_backs_off_and_recovers(self):
        d = Daemon(defs_dir=self.defs, conf={"MemoryLimit": "48M", "LoadRetryInterval": "1"})
        try:
            d.start(timeout=120)
            d.wait_for(lambda: 7 in d.fault_ids(), timeout=60, what="fault 7")
            f7 = [f for f in d.faults() if f["id"] == 7][0]
            detail = f7["detail"]
            self.assertEqual(detail["cause"], "insufficient memory")
            self.assertGreater(detail["needed_bytes"], 48 << 20)
            self.assertLessEqual(detail["available_bytes"], 48 << 20)
            self.assertEqual(detail["limit_bytes"], 48 << 20)
            self.assertRegex(f7["reason"], r"needs about \d+ MiB, \d+ MiB available")
            # back-off: 1 s, 2 s, 4 s between attempts, so few attempts
            t0 = time.time()
            time.sleep(8 * SLOW)
            log = d.read_log()
            delays = [int(x) for x in re.findall(r"retrying the definitions load in (\d+) s", log)]
            self.assertGreaterEqual(len(delays), 3, log[-2000:])
            self.assertEqual(delays[:3], [1, 2, 4])
            self.assertLessEqual(len(delays), 5)
            # good definitions are never deleted for a memory failure
            self.assertEqual(d.events("quarantined"), [])
            store = os.path.join(d.state, "defs")
            gen = os.readlink(os.path.join(store, "current"))
            self.assertTrue(os.path.isdir(os.path.join(store, gen)))
            # lift the limit and reload: engine up, fault cleared
            d.conf["MemoryLimit"] = "4G"
            d.write_conf()
            self.assertEqual(d.command(b"zRELOAD\0"), b"RELOADING\0")
            d.wait_for(lambda: 7 not in d.fault_ids(), timeout=120, what="fault 7 cleared")
            st = d.status()
            self.assertTrue(st["definitions"]["loaded"])
            self.assertGreater(st["definitions"]["signatures"], 1000000)
            self.assertEqual(d.events("clear", 7)[0]["id"], 7)
            self.assertLess(time.time() - t0, 200)
        finally:
            try:
                d.stop()
            finally:
                d.cleanup()


class ScanUserTest(unittest.TestCase):
    """Fault 5: the scan account and the directories' modes."""

    def setUp(self):
        self.user = "se-f5-%d" % os.getpid()
        subprocess.run(["userdel", self.user], capture_output=True)
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", self.user], check=True)
        self.d = Daemon(conf={"User": self.user, "HealthCheckInterval": "1"}).start()
        self.samples = tmpdir()
        self.eicar = os.path.join(self.samples, "eicar.com")
        with open(self.eicar, "wb") as fh:
            fh.write(EICAR)

    def tearDown(self):
        try:
            os.chmod(self.d.state, 0o755)
            self.d.stop()
        finally:
            self.d.cleanup()
            subprocess.run(["userdel", self.user], capture_output=True)
            subprocess.run(["groupdel", self.user], capture_output=True)

    def worker_uids(self):
        uids = []
        for pid in self.d.worker_pids():
            with open("/proc/%d/status" % pid) as fh:
                uids.append(int(re.search(r"^Uid:\s+(\d+)", fh.read(), re.M).group(1)))
        return uids

    def test_missing_user_then_restored(self):
        uid = pwd.getpwnam(self.user).pw_uid
        self.assertEqual(self.worker_uids(), [uid, uid])
        subprocess.run(["userdel", "--force", self.user], check=True)
        self.assertEqual(self.d.command(b"zRELOAD\0"), b"RELOADING\0")
        self.d.wait_for(lambda: 5 in self.d.fault_ids(), timeout=20, what="fault 5")
        f5 = [f for f in self.d.faults() if f["id"] == 5][0]
        self.assertIn("scan user '%s' does not exist" % self.user, f5["reason"])
        self.assertIn("useradd", f5["remediation"])
        # degraded: workers run as root and still scan
        self.d.wait_for(lambda: self.worker_uids() == [0, 0], timeout=30, what="root workers")
        self.assertEqual(one_reply(self.d.command(b"zSCAN " + self.eicar.encode() + b"\0")),
                         self.eicar.encode() + b": Eicar-Test-Signature.UNOFFICIAL FOUND")
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", self.user], check=True)
        self.d.wait_for(lambda: 5 not in self.d.fault_ids(), timeout=20, what="fault 5 cleared")
        uid = pwd.getpwnam(self.user).pw_uid
        try:
            self.d.wait_for(lambda: self.worker_uids() == [uid, uid], timeout=30,
                            what="workers back as the scan user")
        except AssertionError:
            raise AssertionError(self.d.read_log()[-6000:])
        self.assertEqual(one_reply(self.d.command(b"zSCAN " + self.eicar.encode() + b"\0")),
                         self.eicar.encode() + b": Eicar-Test-Signature.UNOFFICIAL FOUND")
        self.assertEqual([e["event"] for e in self.d.events(fault=5)], ["raise", "clear"])

    def test_state_directory_mode(self):
        os.chmod(self.d.state, 0o777)
        self.d.wait_for(lambda: 5 in self.d.fault_ids(), timeout=20, what="fault 5")
        f5 = [f for f in self.d.faults() if f["id"] == 5][0]
        self.assertIn(self.d.state, f5["reason"])
        self.assertIn("0755", f5["reason"])
        self.assertIn("0777", f5["reason"])
        os.chmod(self.d.state, 0o755)
        self.d.wait_for(lambda: 5 not in self.d.fault_ids(), timeout=20, what="fault 5 cleared")


class PersistenceTest(unittest.TestCase):
    def test_faults_survive_kill_9_of_the_supervisor(self):
        d = Daemon(conf={"CrashLoopThreshold": "2", "WorkerRespawnInterval": "20",
                         "CrashBackoffMax": "1"})
        try:
            d.start()
            for _ in range(2):
                pid = d.worker_pids()[0]
                os.kill(pid, signal.SIGSEGV)
                d.wait_for(lambda: pid not in d.worker_pids() and len(d.worker_pids()) == 2,
                           timeout=20, what="a replacement")
            d.wait_for(lambda: 6 in d.fault_ids(), timeout=10, what="fault 6")
            since = [f for f in d.faults() if f["id"] == 6][0]["since"]
            d.proc.kill()  # SIGKILL: no clean shutdown
            d.proc.wait()
            d.proc = None
            time.sleep(1.1)
            d.start()
            f6 = [f for f in d.faults() if f["id"] == 6]
            self.assertEqual(len(f6), 1)
            self.assertEqual(f6[0]["since"], since)
            # still one raise in the event log: the restart raised nothing new
            self.assertEqual(len(d.events("raise", 6)), 1)
        finally:
            try:
                d.stop()
            finally:
                d.cleanup()


if __name__ == "__main__":
    unittest.main()
