#!/usr/bin/python3
"""Scan throughput: scanengined against Debian's clamd, same signatures,
same corpus, same client.

    bench_scan.py --build BUILD [--rounds 7] [--hash 1000000] [--body 50000]
                  [--cache DIR] [--clamd-only]

Generates (or reuses) the signature set and the corpus in the cache dir
(default BUILD/bench-cache), starts clamd and scanengined one after the other
(each MaxThreads 2, private socket and directories, the same scan limits and
DisableCache yes: see benchlib.COMMON_SETTINGS) and times their loading until
they answer PING. Then it checks that both report the same detections
for the corpus and times

    clamdscan --fdpass --multiscan --no-summary CORPUS

against each daemon in alternation (ABBA order), --rounds rounds of which
the first is a discarded warm-up. Prints the median wall time per daemon and
the ratio scanengined/clamd. Both daemons are stopped and the temporary
directory removed on exit, Ctrl-C and errors.

Exit status: 0 done, 1 the daemons disagree, 2 error.
"""

import argparse
import os
import sys

sys.dont_write_bytecode = True
import benchlib as bl  # noqa: E402


def check_detections(daemons, corpus, manifest):
    """Scan once with the summary on; both must find the same files."""
    results = {}
    for d in daemons:
        rc, secs, out, err = bl.clamdscan(d, [corpus], capture=True)
        if rc != 1:
            raise RuntimeError("clamdscan against %s: exit status %d (expected 1)\n%s%s"
                               % (d.kind, rc, err, d.tail()))
        results[d.kind] = bl.found_lines(out)
        bl.log("detections: %s found %d infected files (%.1f s)" %
               (d.kind, len(results[d.kind]), secs))
    expected = manifest["eicar_detections"] + 1  # + the known hash positive
    ok = True
    for kind, found in results.items():
        if len(found) != expected:
            bl.log("detections: %s found %d, the corpus holds %d" % (kind, len(found), expected))
            ok = False
    if len(results) == 2:
        a, b = results.values()
        if a != b:
            ok = False
            for path in sorted(set(a) | set(b)):
                if a.get(path) != b.get(path):
                    bl.log("detections differ: %s: clamd %s, scanengined %s" %
                           (path, a.get(path, "-"), b.get(path, "-")))
    return ok, {k: len(v) for k, v in results.items()}


def timed_rounds(daemons, corpus, rounds):
    times = {d.kind: [] for d in daemons}
    for r in range(rounds):
        order = daemons if r % 2 == 0 else daemons[::-1]
        for d in order:
            rc, secs, _, err = bl.clamdscan(d, [corpus])
            if rc != 1:
                raise RuntimeError("round %d, %s: clamdscan exit status %d (expected 1)\n%s%s"
                                   % (r, d.kind, rc, err, d.tail()))
            if r > 0:
                times[d.kind].append(secs)
            bl.log("round %d%s: %-11s %6.2f s" % (r, " (warm-up)" if r == 0 else "", d.kind, secs))
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="directory holding scanengined")
    ap.add_argument("--rounds", type=int, default=7, help="rounds incl. warm-up (default 7)")
    ap.add_argument("--hash", type=int, default=1000000, help="hash signatures")
    ap.add_argument("--body", type=int, default=50000, help="body signatures")
    ap.add_argument("--cache", help="data cache (default BUILD/bench-cache)")
    ap.add_argument("--load-timeout", type=int, default=600, help="seconds (default 600)")
    ap.add_argument("--clamd-only", action="store_true", help="benchmark clamd alone")
    ap.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    args = ap.parse_args()
    if args.rounds < 2:
        ap.error("--rounds must be at least 2 (the first is a warm-up)")
    engine = os.path.join(args.build, "scanengined")
    if not args.clamd_only and not os.access(engine, os.X_OK):
        ap.error("%s does not exist or is not executable (--clamd-only to skip it)" % engine)

    bl.die_on_sigterm()
    sigdir, corpus, manifest, nsigs = bl.ensure_data(
        args.cache or os.path.join(args.build, "bench-cache"), args.hash, args.body)
    bl.log("corpus: %d files, %.0f MiB; signatures: %d" %
           (manifest["files"], bl.mib(manifest["bytes"]), nsigs))

    load1 = os.getloadavg()[0]
    bl.log("machine: %d CPUs, load average %.2f%s" % (
        os.cpu_count(), load1, " (busy: expect noisy timings)" if load1 > 0.5 else ""))

    rundir = bl.make_rundir()
    daemons = []
    try:
        kinds = ["clamd"] if args.clamd_only else ["clamd", "scanengined"]
        for kind in kinds:
            d = bl.Daemon(kind, rundir, build=args.build, max_threads=2, sigdir=sigdir)
            daemons.append(d)
            d.start()
            bl.log("load: %-11s ready after %.1f s" % (kind, d.wait_ready(args.load_timeout)))

        same, counts = check_detections(daemons, corpus, manifest)
        times = timed_rounds(daemons, corpus, args.rounds)

        med = {k: bl.median(v) for k, v in times.items()}
        bl.log("")
        for d in daemons:
            t = times[d.kind]
            bl.log("RESULT scan: %-11s load %5.1f s, median scan %6.2f s (%.2f-%.2f) over "
                   "%d rounds, %d detections" % (d.kind, d.load_time, med[d.kind], min(t),
                                                 max(t), len(t), counts[d.kind]))
        if "scanengined" in med:
            bl.log("RESULT scan: ratio scanengined/clamd %.2f (scan), %.2f (load)%s" % (
                med["scanengined"] / med["clamd"], daemons[1].load_time / daemons[0].load_time,
                "" if same else "; DETECTIONS DIFFER"))
        return 0 if same else 1
    except RuntimeError as e:
        bl.log("bench_scan: error: %s" % e)
        return 2
    except KeyboardInterrupt:
        bl.log("bench_scan: interrupted; stopping the daemons")
        return 130
    finally:
        bl.cleanup(daemons, rundir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
