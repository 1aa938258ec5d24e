"""Reloading definitions: a new engine generation loads while the old one
keeps scanning, then takes over; no request fails across the switch; a
set that does not load leaves the old one active."""

import json
import os
import re
import subprocess
import sys
import signal
import threading
import time
import unittest

from harness import EICAR, ROOT, SCANENGINED, Daemon, make_samples, tmpdir


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

    def test_reload_right_after_start_retires_the_old_engine(self):
        """A RELOAD while the first workers are still starting: the old
        engine must still be retired (its workers' pids arrive late)."""
        self.daemon.stop()
        self.daemon.cleanup()
        self.daemon = Daemon(workers=4)
        self.daemon.start()
        self.add_marker_signature()
        self.assertEqual(self.daemon.command(b"zRELOAD\0"), b"RELOADING\0")
        self.wait_generation(2)
        self.daemon.wait_for(lambda: "engine 1 retired" in self.daemon.read_log(), timeout=20,
                             what="engine 1 retired")
        self.assertIn(b"FOUND", self.scan(self.marker))

    def test_sigusr2_reloads(self):
        self.add_marker_signature()
        self.daemon.proc.send_signal(signal.SIGUSR2)
        self.wait_generation(2)
        self.assertIn(b"FOUND", self.scan(self.marker))

    def test_bad_definitions_keep_the_active_set(self):
        """A bad file dropped into DatabaseDirectory is refused by the
        validator before any engine sees it: no failed load, no fault 7,
        the active set stays, scanning never stops, the set is in
        quarantine with the reason."""
        loads = self.daemon.status()["engine_loads"]
        with open(os.path.join(self.daemon.defs, "broken.ndb"), "w") as fh:
            fh.write("not a signature line\n")
        self.assertEqual(self.daemon.command(b"zRELOAD\0"), b"RELOADING\0")
        self.assertEqual(self.scan(self.eicar),
                         self.eicar.encode() + b": Eicar-Test-Signature.UNOFFICIAL FOUND\0")
        self.daemon.wait_for(lambda: self.daemon.events("definitions_refused"), timeout=60,
                             what="the refusal")
        ev = self.daemon.events("definitions_refused")[-1]
        self.assertIn("refused: test load", ev["message"])
        self.assertIn("broken.ndb", ev["message"])
        with open(os.path.join(ev["quarantine"], "reason.json")) as fh:
            reason = json.load(fh)
        self.assertEqual(reason["stage"], "test load")
        st = self.daemon.status()
        self.assertEqual(st["engine_load_failures"], 0)
        # the engine of the active set goes on: nothing was reloaded
        self.assertEqual(st["engine_loads"], loads)
        self.assertEqual(st["definitions_last_validation"]["result"], "refused")
        self.assertEqual(st["definitions_generation"], 1)
        self.assertEqual(st["engine_generation"], 1)
        self.assertEqual(st["definitions"]["signatures"], 2)
        self.assertEqual(st["workers_alive"], 2)
        self.assertEqual(self.daemon.fault_ids(), [])
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


def own_memory_cgroup_v1():
    """This process's cgroup v1 memory directory, or None."""
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                _, ctrls, path = line.rstrip("\n").split(":", 2)
                if "memory" in ctrls.split(","):
                    d = "/sys/fs/cgroup/memory" + path
                    return d if os.path.isdir(d) else None
    except OSError:
        pass
    return None


def cgroup_write(cg, name, value):
    with open(os.path.join(cg, name), "w") as fh:
        fh.write(str(value))


class BigReloadTest(unittest.TestCase):
    """Reloading a set of over a million signatures while a client scans
    without pause: no error, no dropped request, with both strategies."""

    @classmethod
    def setUpClass(cls):
        cls.defs = tmpdir()
        r = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "bench", "gen_sigs.py"),
                            cls.defs, "--hash", "1000000", "--body", "1000"],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        for f in os.listdir(cls.defs):
            os.chmod(os.path.join(cls.defs, f), 0o644)

    def setUp(self):
        self.samples, self.eicar, self.clean = make_samples()

    def run_reload_under_load(self, d, change_conf=None):
        want = {self.eicar: self.eicar.encode() + b": Eicar-Test-Signature.UNOFFICIAL FOUND\0",
                self.clean: self.clean.encode() + b": OK\0"}
        stop = threading.Event()
        sent, bad = [0], []

        def client(path):
            while not stop.is_set():
                try:
                    r = d.command(b"zSCAN " + path.encode() + b"\0", timeout=120)
                except OSError as e:
                    r = repr(e).encode()
                sent[0] += 1
                if r != want[path]:
                    bad.append(r)

        threads = [threading.Thread(target=client, args=(p,)) for p in (self.eicar, self.clean)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            with open(os.path.join(d.defs, "zz-new.ndb"), "w") as fh:
                fh.write("Scanengine.Test.New:0:*:%s\n" % os.urandom(12).hex())
            os.chmod(os.path.join(d.defs, "zz-new.ndb"), 0o644)
            if change_conf:
                d.conf.update(change_conf)
                d.write_conf()
            before = sent[0]
            logged = len(d.read_log())
            self.assertEqual(d.command(b"zRELOAD\0"), b"RELOADING\0")
            # The answer came while the validator still runs (it holds no
            # client connection), and the validator, a second engine for
            # its test load, is the OOM killer's first choice, not the
            # engine that scans.
            pid = d.wait_for(lambda: re.findall(r"validator pid (\d+)", d.read_log()[logged:]),
                             timeout=60, what="the validator")[-1]
            # (it sets that itself, first thing after the fork: wait for it)
            d.wait_for(lambda: open("/proc/%s/oom_score_adj" % pid).read().strip() == "1000",
                       timeout=10, what="the validator's oom_score_adj 1000")
            # its test load parses the definitions confined as a scan worker
            # (seccomp filter mode 2, no new privileges)
            child = d.wait_for(lambda: open("/proc/%s/task/%s/children" % (pid, pid)).read().split(),
                               timeout=30, what="the test-load process")[0]
            d.wait_for(lambda: "Seccomp:\t2" in open("/proc/%s/status" % child).read(),
                       timeout=30, what="the test load confined")
            with open("/proc/%s/status" % child) as fh:
                self.assertIn("NoNewPrivs:\t1", fh.read())
            d.wait_for(lambda: d.status()["engine_loads"] == 2 and len(d.status()["engines"]) == 1,
                       timeout=180, what="the new engine alone")
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(bad, [])
        self.assertGreater(sent[0] - before, 0)
        st = d.status()
        self.assertEqual(st["worker_crashes"], 0)
        self.assertEqual(st["engine_load_failures"], 0)
        self.assertEqual(d.events("raise", 7), [])
        self.assertIn("engine 1 retired", d.read_log())
        return st

    def test_concurrent_reload(self):
        d = Daemon(defs_dir=self.defs)
        try:
            d.start(timeout=180)
            st = self.run_reload_under_load(d)
            self.assertIn("reload strategy: concurrent", d.read_log())
            # the manifest: what each database cost at the test load
            dbs = {db["file"]: db for g in st["definitions_store"] if g["current"]
                   for db in g["databases"]}
            self.assertGreater(dbs["bench.hdb"]["engine_kib"], 10 * 1024, dbs)
            self.assertGreater(dbs["bench.hdb"]["test_load_ms"], 0, dbs)
            self.assertLess(dbs["zz-new.ndb"]["engine_kib"], dbs["bench.hdb"]["engine_kib"])
        finally:
            try:
                d.stop()
            finally:
                d.cleanup()

    @unittest.skipUnless(own_memory_cgroup_v1(), "no cgroup v1 memory controller")
    def test_validator_out_of_memory_is_not_a_bad_set(self):
        """The validator's test load killed by the OOM killer (here: of a
        memory cgroup the daemon runs in, with room for the running engine
        but not a second one) is no verdict on the set: nothing is
        quarantined, the running engine stays, and the validation is tried
        again by itself, and passes once there is memory."""
        cg = os.path.join(own_memory_cgroup_v1(), "se-test-oom-%d" % os.getpid())
        os.mkdir(cg)
        d = Daemon(defs_dir=self.defs, conf={"LoadRetryInterval": "1"})
        d.cgroup = cg
        # the sanitizer's quarantine would fill the cgroup by itself
        d.env = {"ASAN_OPTIONS": "quarantine_size_mb=8"}
        try:
            d.start(timeout=180)
            st = d.status()
            gen, loads = st["engine_generation"], st["engine_loads"]
            engine_kib = [g for g in st["definitions_store"] if g["current"]][0]["engine_kib"]
            # anonymous memory in use (the page cache of the signature files
            # would only be reclaimed), plus half an engine
            with open(os.path.join(cg, "memory.stat")) as fh:
                rss = dict(l.split() for l in fh)["total_rss"]
            cgroup_write(cg, "memory.limit_in_bytes", int(rss) + engine_kib * 1024 // 2)
            with open(os.path.join(d.defs, "zz-new.ndb"), "w") as fh:
                fh.write("Scanengine.Test.New:0:*:%s\n" % os.urandom(12).hex())
            os.chmod(os.path.join(d.defs, "zz-new.ndb"), 0o644)
            self.assertEqual(d.command(b"zRELOAD\0"), b"RELOADING\0")
            last = d.wait_for(lambda: (d.status()["definitions_last_validation"]
                                       if "again in" in d.read_log() else None),
                              timeout=120, what="the validation to run out of memory")
            self.assertEqual(last["result"], "error", last)
            self.assertIn("insufficient memory", last["reason"])
            self.assertIn("OOM killer", last["reason"])
            st = d.status()
            self.assertEqual((st["engine_generation"], st["engine_loads"]), (gen, loads))
            self.assertEqual(os.listdir(os.path.join(d.state, "defs", "quarantine")), [])
            self.assertEqual(d.command(b"zSCAN " + self.eicar.encode() + b"\0"),
                             self.eicar.encode() + b": Eicar-Test-Signature.UNOFFICIAL FOUND\0")
            # memory again: the retry (LoadRetryInterval, doubling) takes it
            cgroup_write(cg, "memory.limit_in_bytes", -1)
            d.wait_for(lambda: d.status()["engine_generation"] > gen, timeout=120,
                       what="the set, validated again and loaded")
            self.assertEqual(d.status()["definitions_last_validation"]["result"], "activated")
        finally:
            try:
                d.stop()
            finally:
                d.cleanup()
                os.rmdir(cg)

    @unittest.skipUnless(os.path.exists("/sys/fs/cgroup/memory") or
                         os.path.exists("/sys/fs/cgroup/cgroup.controllers"), "no memory cgroup")
    def test_one_at_a_time_when_two_engines_do_not_fit(self):
        d = Daemon(defs_dir=self.defs, conf={"MemoryLimit": "8G"})
        # In a sanitizer build, freed memory is held in a quarantine (256 MiB
        # per process by default) that the workers fill while scanning
        # without pause: keep it small so the cgroup measures the engine.
        d.env = {"ASAN_OPTIONS": "quarantine_size_mb=8"}
        try:
            d.start(timeout=180)
            used = d.status()["memory_used_bytes"]
            self.assertGreater(used, 100 << 20)
            # room for one engine and a half: not for two
            st = self.run_reload_under_load(d, {"MemoryLimit": str(used * 3 // 2)})
            self.assertRegex(d.read_log(), r"reload strategy: one engine at a time: the new engine "
                                           r"needs about \d+ MiB, \d+ MiB available")
            self.assertIn("retiring engine 1 before loading", d.read_log())
            self.assertEqual(st["memory_limit_bytes"] // 4096, (used * 3 // 2) // 4096)
        finally:
            try:
                d.stop()
            finally:
                d.cleanup()
