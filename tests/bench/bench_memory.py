#!/usr/bin/python3
"""Memory: scanengined's engine zygote + 4 workers against one clamd.

    bench_memory.py --build BUILD [--workers 4] [--target 1.3]
                    [--hash 1000000] [--body 50000] [--cache DIR] [--clamd-only]

With the same signature set as bench_scan.py (cache dir default
BUILD/bench-cache), one daemon at a time:

1. clamd, MaxThreads 4: wait for PING, scan a few corpus directories and the large files, read
   Rss and Pss of its single process from /proc/PID/smaps_rollup.
2. scanengined, MaxThreads 4: wait for PING, scan the same files, wait until
   all 4 workers exist, find the supervisor's descendants through the /proc
   ppid chains and tell them apart by comm (scanengine-zyg, scanengine-wrk),
   read their Rss and Pss.

The figure of merit is PSS(zygote + workers) / RSS(clamd): the workers are
forks of the zygote and share its engine pages copy-on-write, so the sum of
their proportional set sizes is what the engine costs the machine. The target
is a ratio below --target (1.3). The supervisor is listed but not counted.

Exit status: 0 PASS, 1 FAIL, 2 error.
"""

import argparse
import os
import sys
import time

sys.dont_write_bytecode = True
import benchlib as bl  # noqa: E402

# The files scanned before measuring, so that every worker has scanned
# something (text, HTML, binaries, zips, EICAR samples) and the large files
# have left whatever their scans keep allocated.
WARMUP_DIRS = ["small/d%02d" % i for i in range(4)] + ["large"]


def warm_up(d, corpus):
    paths = [os.path.join(corpus, p) for p in WARMUP_DIRS]
    rc, secs, _, err = bl.clamdscan(d, paths)
    if rc != 1:
        raise RuntimeError("warm-up scan against %s: exit status %d (expected 1)\n%s%s"
                           % (d.kind, rc, err, d.tail()))
    bl.log("%s: warm-up scan of %d directories took %.1f s" % (d.kind, len(paths), secs))


def row(pid, role):
    rss, pss = bl.memory(pid)
    bl.log("  %7d  %-10s  %-15s  %9.1f  %9.1f" % (pid, role, bl.comm(pid), bl.mib(rss), bl.mib(pss)))
    return rss, pss


def header():
    bl.log("  %7s  %-10s  %-15s  %9s  %9s" % ("pid", "role", "comm", "RSS MiB", "PSS MiB"))


def measure_clamd(d):
    header()
    rss, _ = row(d.proc.pid, "single")
    others = bl.descendants(d.proc.pid)
    if others:
        bl.log("  (clamd has child processes %s, not counted)" % others)
    return rss


def engine_processes(d, workers, timeout=30):
    """(zygote pids, worker pids, other pids) under the supervisor, waiting
    up to timeout seconds for the full set of workers."""
    deadline = time.monotonic() + timeout
    while True:
        procs = bl.descendants(d.proc.pid)
        names = {p: bl.comm(p) for p in procs}
        zyg = [p for p in procs if names[p] == "scanengine-zyg"]
        wrk = [p for p in procs if names[p] == "scanengine-wrk"]
        other = [p for p in procs if p not in zyg and p not in wrk]
        if (len(zyg) == 1 and len(wrk) >= workers) or time.monotonic() > deadline:
            return zyg, wrk, other
        time.sleep(0.2)


def measure_scanengined(d, workers):
    zyg, wrk, other = engine_processes(d, workers)
    problems = []
    if len(zyg) != 1:
        problems.append("%d processes named scanengine-zyg (expected 1)" % len(zyg))
    if len(wrk) != workers:
        problems.append("%d processes named scanengine-wrk (expected %d)" % (len(wrk), workers))
    header()
    sup_rss, sup_pss = row(d.proc.pid, "supervisor")
    pss_sum = rss_sum = 0
    for pids, role in ((zyg, "zygote"), (wrk, "worker")):
        for p in pids:
            rss, pss = row(p, role)
            pss_sum += pss
            rss_sum += rss
    for p in other:
        row(p, "other")
    bl.log("  zygote + %d workers: PSS %.1f MiB (RSS would count %.1f MiB); "
           "with the supervisor: PSS %.1f MiB" % (len(wrk), bl.mib(pss_sum), bl.mib(rss_sum),
                                                  bl.mib(pss_sum + sup_pss)))
    return pss_sum, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="directory holding scanengined")
    ap.add_argument("--workers", type=int, default=4, help="MaxThreads (default 4)")
    ap.add_argument("--target", type=float, default=1.3, help="PASS below this ratio")
    ap.add_argument("--hash", type=int, default=1000000, help="hash signatures")
    ap.add_argument("--body", type=int, default=50000, help="body signatures")
    ap.add_argument("--cache", help="data cache (default BUILD/bench-cache)")
    ap.add_argument("--load-timeout", type=int, default=600, help="seconds (default 600)")
    ap.add_argument("--clamd-only", action="store_true", help="measure clamd alone")
    ap.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    args = ap.parse_args()
    engine = os.path.join(args.build, "scanengined")
    if not args.clamd_only and not os.access(engine, os.X_OK):
        ap.error("%s does not exist or is not executable (--clamd-only to skip it)" % engine)

    bl.die_on_sigterm()
    sigdir, corpus, _, nsigs = bl.ensure_data(
        args.cache or os.path.join(args.build, "bench-cache"), args.hash, args.body)

    rundir = bl.make_rundir()
    daemons = []
    try:
        kinds = ["clamd"] if args.clamd_only else ["clamd", "scanengined"]
        result = {}
        for kind in kinds:
            d = bl.Daemon(kind, rundir, build=args.build, max_threads=args.workers,
                          sigdir=sigdir)
            daemons.append(d)
            d.start()
            bl.log("%s: ready after %.1f s (%d signatures, MaxThreads %d)" %
                   (kind, d.wait_ready(args.load_timeout), nsigs, args.workers))
            warm_up(d, corpus)
            if kind == "clamd":
                result[kind] = measure_clamd(d)
            else:
                result[kind], problems = measure_scanengined(d, args.workers)
            d.stop()  # one engine in memory at a time

        bl.log("")
        bl.log("RESULT memory: clamd RSS %.1f MiB (load %.1f s)" %
               (bl.mib(result["clamd"]), daemons[0].load_time))
        if args.clamd_only:
            return 0
        ratio = result["scanengined"] / result["clamd"]
        ok = ratio < args.target and not problems
        for p in problems:
            bl.log("memory: %s" % p)
        bl.log("RESULT memory: scanengined zygote+%d workers PSS %.1f MiB (load %.1f s)" %
               (args.workers, bl.mib(result["scanengined"]), daemons[1].load_time))
        bl.log("RESULT memory: ratio PSS_sum/RSS_clamd %.2f, target < %.2f: %s" %
               (ratio, args.target, "PASS" if ok else "FAIL"))
        return 0 if ok else 1
    except RuntimeError as e:
        bl.log("bench_memory: error: %s" % e)
        return 2
    except KeyboardInterrupt:
        bl.log("bench_memory: interrupted; stopping the daemons")
        return 130
    finally:
        bl.cleanup(daemons, rundir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
