#!/usr/bin/python3
"""Memory during a definitions reload: scanengined's two strategies, and
clamd's concurrent reload for comparison.

    bench_reload.py --build BUILD [--hash 1000000] [--body 50000] [--cache DIR]
                    [--target 1.3]

With the signature set of the other benchmarks (over a million signatures),
each daemon runs in a memory cgroup; the peak of the cgroup (v1
memory.max_usage_in_bytes, v2 memory.peak) is reset just before RELOAD and
read once the new engine alone serves. "One engine" is the cgroup's usage
after the first load.

1. scanengined, MemoryLimit far above need: it reloads concurrently (the
   old engine serves while the new one loads): peak about two engines.
2. scanengined, MemoryLimit set to 1.5 engines before the RELOAD: two do
   not fit, so it reloads one engine at a time. Target: peak below --target
   (1.3) times one engine, and no OOM kill.
   The validator's test load of the new set (before the reload, a process
   of its own outside the cgroup) is printed beside it.
3. clamd (moved into a cgroup of its own), RELOAD with its default
   concurrent reload: for comparison.

Exit status: 0 PASS, 1 FAIL, 2 error.
"""

import argparse
import json
import os
import shutil
import sys
import time

sys.dont_write_bytecode = True
import benchlib as bl  # noqa: E402


def status(d):
    return json.loads(bl.command(d.socket, b"zSTATUS\0")[:-1])


class Cgroup:
    """Read (and reset) a memory cgroup's usage and peak, v1 or v2."""

    def __init__(self, path):
        self.path = path
        self.v2 = os.path.exists(os.path.join(path, "memory.current"))

    def read(self, name):
        with open(os.path.join(self.path, name)) as f:
            return int(f.read().split()[0])

    def usage(self):
        return self.read("memory.current" if self.v2 else "memory.usage_in_bytes")

    def reset_peak(self):
        name = "memory.peak" if self.v2 else "memory.max_usage_in_bytes"
        try:
            with open(os.path.join(self.path, name), "w") as f:
                f.write("0")
        except OSError:
            pass  # older v2 kernels cannot reset memory.peak: it then covers the whole run

    def peak(self):
        return self.read("memory.peak" if self.v2 else "memory.max_usage_in_bytes")


def own_memory_cgroup():
    """The v1 memory cgroup directory this process is in, or None."""
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, ctrls, path = line.rstrip("\n").split(":", 2)
                if "memory" in ctrls.split(","):
                    d = "/sys/fs/cgroup/memory" + path
                    return d if os.path.isdir(d) else None
    except OSError:
        pass
    return None


def wait_switch(d, loads, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = status(d)
        if st["engine_loads"] >= loads and len(st["engines"]) == 1:
            return st
        time.sleep(0.1)
    raise RuntimeError("the reload did not finish in time\n" + d.tail())


def scanengined_reload(args, rundir, sigdir, name, limit_factor):
    defs = os.path.join(rundir, name + "-defs")
    shutil.copytree(sigdir, defs)
    d = bl.Daemon("scanengined", os.path.join(rundir, name), build=args.build, sigdir=defs,
                  extra=[("MemoryLimit", "64G")])
    d.start()
    try:
        d.wait_ready(args.load_timeout)
        wait_switch(d, 1)
        st = status(d)
        cg = Cgroup(st["memory_cgroup"])
        one = cg.usage()
        if limit_factor:
            bl.write_conf(d.conf, [(k, v) for k, v in d.items if k != "MemoryLimit"] +
                          [("MemoryLimit", str(int(one * limit_factor)))])
        with open(os.path.join(defs, "zz-reload.ndb"), "w") as f:
            f.write("Bench.Reload.Marker:0:*:%s\n" % os.urandom(12).hex())
        os.chmod(os.path.join(defs, "zz-reload.ndb"), 0o644)
        cg.reset_peak()
        t0 = time.monotonic()
        if bl.command(d.socket, b"zRELOAD\0") != b"RELOADING\0":
            raise RuntimeError("RELOAD refused")
        st = wait_switch(d, 2, args.load_timeout)
        secs = time.monotonic() - t0
        peak = cg.peak()
        with open(d.log) as f:
            strategy = [l.split("reload strategy: ", 1)[1].strip() for l in f
                        if "reload strategy: " in l]
        bl.log("%s: one engine %.1f MiB, peak during reload %.1f MiB (%.2fx), reload %.1f s" %
               (name, bl.mib(one), bl.mib(peak), peak / one, secs))
        bl.log("%s: %s" % (name, strategy[-1] if strategy else "strategy not logged"))
        # The validator's test load ran before the reload, in a process of
        # its own outside the engine's cgroup: its peak is the manifest's.
        gens = [g for g in st.get("definitions_store", []) if g.get("current")]
        if gens and gens[0].get("engine_kib"):
            bl.log("%s: validation test load before the reload (own process, outside the "
                   "cgroup): peak %.1f MiB" % (name, gens[0]["engine_kib"] / 1024))
        crashes, faults = st["worker_crashes"], st["faults"]
        if crashes or 7 in faults:
            raise RuntimeError("%s: %d worker crashes, faults %s\n%s" % (name, crashes, faults,
                                                                         d.tail()))
        return one, peak, strategy
    finally:
        d.stop()


def clamd_reload(args, rundir, sigdir):
    parent = own_memory_cgroup()
    if not parent:
        bl.log("clamd: no v1 memory cgroup here; skipped")
        return None
    cgdir = os.path.join(parent, "bench-clamd-%d" % os.getpid())
    os.mkdir(cgdir)
    d = bl.Daemon("clamd", os.path.join(rundir, "clamd"), sigdir=sigdir)
    d.start()
    try:
        with open(os.path.join(cgdir, "cgroup.procs"), "w") as f:
            f.write(str(d.proc.pid))
        d.wait_ready(args.load_timeout)
        cg = Cgroup(cgdir)
        one = cg.usage()
        cg.reset_peak()
        before = open(d.log).read().count("Database correctly reloaded")
        if not bl.command(d.socket, b"zRELOAD\0").startswith(b"RELOADING"):
            raise RuntimeError("clamd refused RELOAD")
        deadline = time.monotonic() + args.load_timeout
        while open(d.log).read().count("Database correctly reloaded") == before:
            if time.monotonic() > deadline:
                raise RuntimeError("clamd did not reload\n" + d.tail())
            time.sleep(0.1)
        time.sleep(1)  # clamd frees the old engine after the switch
        peak = cg.peak()
        bl.log("clamd: one engine %.1f MiB, peak during reload %.1f MiB (%.2fx)" %
               (bl.mib(one), bl.mib(peak), peak / one))
        return one, peak
    finally:
        d.stop()
        try:
            os.rmdir(cgdir)
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="directory holding scanengined")
    ap.add_argument("--target", type=float, default=1.3, help="PASS below this ratio")
    ap.add_argument("--hash", type=int, default=1000000, help="hash signatures")
    ap.add_argument("--body", type=int, default=50000, help="body signatures")
    ap.add_argument("--cache", help="data cache (default BUILD/bench-cache)")
    ap.add_argument("--load-timeout", type=int, default=600, help="seconds (default 600)")
    ap.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    args = ap.parse_args()
    bl.die_on_sigterm()
    sigdir, _, _, nsigs = bl.ensure_data(args.cache or os.path.join(args.build, "bench-cache"),
                                         args.hash, args.body)
    rundir = bl.make_rundir()
    try:
        bl.log("signatures: %d" % nsigs)
        one_c, peak_c, strat_c = scanengined_reload(args, rundir, sigdir, "concurrent", None)
        one_s, peak_s, strat_s = scanengined_reload(args, rundir, sigdir, "one-at-a-time", 1.5)
        clamd = clamd_reload(args, rundir, sigdir)
    except RuntimeError as e:
        bl.log("error: %s" % e)
        return 2
    finally:
        bl.cleanup([], rundir, keep=args.keep)
    ok = peak_s / one_s < args.target and strat_s and strat_s[-1].startswith("one engine at a time")
    bl.log("RESULT reload: concurrent peak %.2fx one engine (%s)" %
           (peak_c / one_c, strat_c[-1].split(":")[0] if strat_c else "?"))
    bl.log("RESULT reload: under a limit of 1.5 engines: peak %.2fx one engine, %s, target < %.2f: %s"
           % (peak_s / one_s, strat_s[-1].split(":")[0] if strat_s else "?", args.target,
              "PASS" if ok else "FAIL"))
    if clamd:
        bl.log("RESULT reload: clamd concurrent reload peak %.2fx one engine" % (clamd[1] / clamd[0]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
