#!/usr/bin/python3
"""On-access overhead: what monitoring adds to an unprivileged process's
opens, scanengined's on-access scanning against Debian's clamd + clamonacc,
both measured against no monitoring in the same run.

    bench_onaccess.py --build BUILD [--files 3000] [--cached-files 200]
                      [--opens 100] [--trials 31] [--budget 20]
                      [--target 1.05] [--python] [--clamd-only]
                      [--no-dir-marks] [--keep]

Configurations, one after the other, each on a fresh tmpfs mounted at
MNT (the disk does not take part) holding --files files in MNT/files
(random bytes, 1 KiB to 200 KiB, log-uniform, the same sizes every time),
created before the daemons start, so that no verdict, mark or hash is
cached:

  unmonitored            no daemon (the baseline)
  scanengined            OnAccessIncludePath MNT, OnAccessPrevention yes,
                         User scanengine; ready when STATUS says
                         onaccess.running. MNT is a mount root: one mount
                         mark (the recommended set-up, see the README)
  scanengined (dir marks) the same with OnAccessIncludePath MNT/files, not
                         a mount root: a directory mark (for information;
                         --no-dir-marks leaves it out)
  clamonacc              clamd (User root) and clamonacc --fdpass
                         --foreground, OnAccessIncludePath MNT,
                         OnAccessPrevention yes, OnAccessExcludeRootUID yes
                         (clamd's and clamonacc's own opens are not scanned)
  unmonitored (again)    the baseline once more, to show drift

Both daemons load the bundled definitions (defs/default) from one
directory, with MaxThreads 2 and their default caches (benchlib's
DisableCache yes is dropped here: the caches are what is measured). A
monitored configuration is only measured once opening an EICAR file in
the directory as nobody fails with EPERM (that file is then removed); the
same probe with a new EICAR file after the measurement shows monitoring
was still on.

The opener runs as nobody (setpriv --reuid=65534 --regid=65534
--clear-groups): a small C program compiled with gcc into the run
directory (--python, or no gcc: a Python one, about 1 us of interpreter per
open). It measures

  (a) first open of uncached files: every file opened, read to the end and
      closed once; ns per file, and the part of it spent in open() itself
      (clamonacc marks FAN_ACCESS_PERM too: its reads wait on clamd as
      well, so it loses more outside open() than in it; the marks of each
      service are printed from /proc/PID/fdinfo);
  (b) cached clean opens, every configuration against twins of its
      files: a second tmpfs, written in turns with the first (file i of
      one, then of the other, so that their pages are placed alike),
      that nobody watches. One warm-up pass over both, then trials, each
      of up to --opens passes over the files and the same over their
      twins (every other trial the twins first), until --trials are done
      or --budget / 2 seconds have passed; a trial takes about a second at
      most (fewer passes when a pass is slow). Ratio: the fastest trial
      over the files to the fastest over the twins. The fastest, not the
      median: on a shared virtual machine other tenants only ever add
      time; the median of the trials' ratios is printed beside. Twins in
      the same moment cancel drift: the unmonitored configurations show
      what the method itself gives (1.00 +- 0.01 here).
      (b1) the files of (a) again, the same way (opened, read to the end,
           closed): the target (--target, 1.05), the same operation as
           (a) with the verdicts cached;
      (b2) open+close alone, of the first --cached-files: the most
           demanding measure, printed beside. A file covered by any
           permission mark costs the kernel one walk of its marks per
           open, even when an ignore mark then drops the event (about
           0.26 us here with a mount mark, 0.6 us with a directory mark):
           about 1.12x a bare open+close that costs 2.2 us.

(a) is compared with the mean of the two unmonitored runs.

Exit status: 0 (b1) with scanengined (its mount mark) within --target
(1.05) times its twins and its first opens faster than clamonacc's (with
--clamd-only: the measurement ran), 1 a target missed, 2 error, 130
interrupted.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
import benchlib as bl  # noqa: E402

CLAMONACC = "/usr/sbin/clamonacc"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
DEFAULT_DEFS = os.path.join(bl.HERE, "..", "..", "defs", "default")
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-" + b"ANTIVIRUS-TEST-FILE!$H+H*"
MIN_SIZE, MAX_SIZE = 1 << 10, 200 << 10

# The opener. "first LIST": each file of LIST (one path a line) opened,
# read to the end and closed; prints "first NS_PER_FILE NS_IN_OPEN
# FAILED_OPENS" (NS_IN_OPEN: the part spent in open() itself).
# "cached MODE LIST TWIN PASSES TRIALS BUDGET_MS": MODE "open" (open+close)
# or "read" (open, read to the end, close). One warm-up pass over LIST (the
# files watched) and TWIN (copies on a tmpfs nobody watches), then trials,
# each of passes over LIST and then TWIN (every other trial TWIN first),
# printed as "trial NS_PER_OPEN_LIST NS_PER_OPEN_TWIN", until TRIALS are
# done or BUDGET_MS has passed (at least one trial). A trial makes PASSES
# passes, fewer when the warm-up pass over LIST was slow (a trial takes
# about a second at most; "passes N" says how many). A failed open ends it
# with "failed ERRNO PATH" and status 1.
OPENER_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char buf[1 << 17];

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static char **load(const char *list, size_t *n)
{
	FILE *f = fopen(list, "r");
	char line[4096], **v = NULL;
	size_t cap = 0;
	if (!f) {
		perror(list);
		exit(2);
	}
	*n = 0;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		if (!line[0])
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 1024;
			if (!(v = realloc(v, cap * sizeof *v)))
				exit(2);
		}
		if (!(v[(*n)++] = strdup(line)))
			exit(2);
	}
	fclose(f);
	if (!*n)
		exit(2);
	return v;
}

static int pass(char **p, size_t n, int rd)
{
	for (size_t i = 0; i < n; i++) {
		int fd = open(p[i], O_RDONLY);
		if (fd < 0) {
			printf("failed %d %s\n", errno, p[i]);
			return -1;
		}
		if (rd)
			while (read(fd, buf, sizeof buf) > 0)
				;
		close(fd);
	}
	return 0;
}

/* ns per open of passes passes over p, or -1 */
static double timed(char **p, size_t n, long passes, int rd)
{
	long long t0 = now_ns();
	for (long r = 0; r < passes; r++)
		if (pass(p, n, rd))
			return -1;
	return (double)(now_ns() - t0) / ((double)passes * n);
}

int main(int argc, char **argv)
{
	size_t n;
	char **p;

	if (argc == 3 && !strcmp(argv[1], "first")) {
		long failed = 0;
		long long in_open = 0;
		p = load(argv[2], &n);
		long long t0 = now_ns();
		for (size_t i = 0; i < n; i++) {
			long long t1 = now_ns();
			int fd = open(p[i], O_RDONLY);
			in_open += now_ns() - t1;
			if (fd < 0) {
				failed++;
				continue;
			}
			while (read(fd, buf, sizeof buf) > 0)
				;
			close(fd);
		}
		long long t = now_ns() - t0;
		printf("first %.1f %.1f %ld\n", (double)t / n, (double)in_open / n, failed);
		return 0;
	}
	if (argc == 8 && !strcmp(argv[1], "cached")) {
		int rd = !strcmp(argv[2], "read");
		long passes = atol(argv[5]), trials = atol(argv[6]);
		long long budget = atoll(argv[7]) * 1000000LL;
		size_t m;
		char **q = load(argv[4], &m);
		p = load(argv[3], &n);
		double warm = timed(p, n, 1, rd);
		if (warm < 0 || timed(q, m, 1, rd) < 0)
			return 1;
		if (warm * n * passes > 1e9)
			passes = (long)(1e9 / (warm * n)) + 1;
		printf("passes %ld\n", passes);
		long long start = now_ns();
		for (long t = 0; t < trials; t++) {
			double a, b;
			if (t & 1) {
				b = timed(q, m, passes, rd);
				a = b < 0 ? -1 : timed(p, n, passes, rd);
			} else {
				a = timed(p, n, passes, rd);
				b = a < 0 ? -1 : timed(q, m, passes, rd);
			}
			if (a < 0 || b < 0)
				return 1;
			printf("trial %.1f %.1f\n", a, b);
			fflush(stdout);
			if (now_ns() - start >= budget)
				break;
		}
		return 0;
	}
	fprintf(stderr, "usage: opener first LIST | "
			"opener cached open|read LIST TWIN PASSES TRIALS BUDGET_MS\n");
	return 2;
}
"""

# The same in Python (the fallback), timed with time.perf_counter_ns.
OPENER_PY = r"""
import os, sys, time

def load(path):
    with open(path) as f:
        return [l for l in f.read().split("\n") if l]

def one_pass(paths, rd):
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        while rd and os.read(fd, 131072):
            pass
        os.close(fd)


def timed(paths, passes, rd):
    t0 = time.perf_counter_ns()
    for _ in range(passes):
        one_pass(paths, rd)
    return (time.perf_counter_ns() - t0) / (passes * len(paths))

if sys.argv[1] == "first":
    paths = load(sys.argv[2])
    failed = in_open = 0
    t0 = time.perf_counter_ns()
    for p in paths:
        t1 = time.perf_counter_ns()
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            failed += 1
            continue
        finally:
            in_open += time.perf_counter_ns() - t1
        while os.read(fd, 131072):
            pass
        os.close(fd)
    t = time.perf_counter_ns() - t0
    print("first %.1f %.1f %d" % (t / len(paths), in_open / len(paths), failed))
else:
    rd = sys.argv[2] == "read"
    paths, twin = load(sys.argv[3]), load(sys.argv[4])
    passes, trials, budget = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]) * 10**6
    try:
        warm = timed(paths, 1, rd)
        timed(twin, 1, rd)
        if warm * len(paths) * passes > 1e9:
            passes = int(1e9 / (warm * len(paths))) + 1
        print("passes %d" % passes)
        start = time.perf_counter_ns()
        for t in range(trials):
            if t % 2:
                b = timed(twin, passes, rd)
                a = timed(paths, passes, rd)
            else:
                a = timed(paths, passes, rd)
                b = timed(twin, passes, rd)
            print("trial %.1f %.1f" % (a, b), flush=True)
            if time.perf_counter_ns() - start >= budget:
                break
    except OSError as e:
        print("failed %d %s" % (e.errno, e.filename))
        sys.exit(1)
"""


class Opener:
    """The open loop, run as nobody."""

    def __init__(self, rundir, force_python=False):
        self.argv = None
        self.kind = "Python (time.perf_counter_ns)"
        if not force_python and shutil.which("gcc"):
            src = os.path.join(rundir, "opener.c")
            exe = os.path.join(rundir, "opener")
            with open(src, "w") as f:
                f.write(OPENER_C)
            p = subprocess.run(["gcc", "-O2", "-Wall", "-o", exe, src],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if p.returncode == 0:
                os.chmod(exe, 0o755)
                self.argv = [exe]
                self.kind = "C (gcc -O2, clock_gettime CLOCK_MONOTONIC)"
            else:
                bl.log("opener: gcc failed, using the Python opener\n%s" % p.stdout)
        if self.argv is None:
            src = os.path.join(rundir, "opener.py")
            with open(src, "w") as f:
                f.write(OPENER_PY)
            os.chmod(src, 0o644)
            self.argv = ["/usr/bin/python3", "-I", src]
        self.rundir = rundir

    def _run(self, args, timeout):
        try:
            p = subprocess.run(NOBODY + self.argv + args, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError("the opener took more than %d s" % timeout)
        if p.returncode != 0:
            raise RuntimeError("the opener failed (status %d): %s%s" %
                               (p.returncode, p.stdout[-500:], p.stderr[-500:]))
        return p.stdout.split("\n")

    def _list(self, name, paths):
        path = os.path.join(self.rundir, name)
        with open(path, "w") as f:
            f.write("".join(p + "\n" for p in paths))
        os.chmod(path, 0o644)
        return path

    def first(self, paths, timeout=900):
        """(ns per file, ns of it in open(), failed opens) for one
        open+read+close of each."""
        for line in self._run(["first", self._list("first.list", paths)], timeout):
            if line.startswith("first "):
                _, ns, in_open, failed = line.split()
                return float(ns), float(in_open), int(failed)
        raise RuntimeError("the opener printed no result")

    def cached(self, mode, paths, twin, passes, trials, budget_s, timeout=900):
        """(passes per trial, [(ns per open of paths, of twin)] per trial)
        for opens ("open": +close, "read": +read to the end +close) of
        paths and their unwatched twin, after one warm-up pass."""
        out = self._run(["cached", mode, self._list("cached.list", paths),
                         self._list("twin.list", twin), str(passes), str(trials),
                         str(int(budget_s * 1000))], timeout)
        used = [int(line.split()[1]) for line in out if line.startswith("passes ")]
        ns = [tuple(float(x) for x in line.split()[1:3]) for line in out
              if line.startswith("trial ")]
        if not ns or not used:
            raise RuntimeError("the opener printed no trial")
        return used[0], ns


class Clamonacc(bl.Daemon):
    """clamonacc for the clamd of `clamd` (its clamd.conf holds the
    OnAccess settings), run and stopped like benchlib's daemons: only the
    attributes that start, tail and stop use are set."""

    def __init__(self, clamd):
        self.kind = "clamonacc"
        self.dir = clamd.dir
        self.out = os.path.join(self.dir, "clamonacc.out")
        self.log = os.path.join(self.dir, "clamonacc.log")
        self.proc = None
        self.argv = [CLAMONACC, "--config-file=" + clamd.conf, "--foreground", "--fdpass",
                     "--log=" + self.log]


def status(d):
    """scanengined's STATUS, parsed."""
    return json.loads(bl.command(d.socket, b"zSTATUS\0", timeout=10).rstrip(b"\0"))


def refused(path):
    """True if nobody's open of path fails with EPERM."""
    try:
        p = subprocess.run(NOBODY + ["cat", path], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           timeout=30)
    except subprocess.TimeoutExpired:
        return False
    return p.returncode != 0 and "Operation not permitted" in p.stderr


FAN_BITS = [(0x01, "ACCESS"), (0x02, "MODIFY"), (0x08, "CLOSE_WRITE"), (0x10, "CLOSE_NOWRITE"),
            (0x20, "OPEN"), (0x1000, "OPEN_EXEC"), (0x10000, "OPEN_PERM"),
            (0x20000, "ACCESS_PERM"), (0x40000, "OPEN_EXEC_PERM"), (0x8000000, "EVENT_ON_CHILD")]


def fanotify_marks(pid):
    """The event masks of the marks (not the ignore marks) of pid's
    fanotify groups, from /proc/PID/fdinfo, as text."""
    masks = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if "fanotify" not in os.readlink("/proc/%d/fd/%s" % (pid, fd)):
                continue
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                for line in f:
                    fields = dict(x.split(":", 1) for x in line.split()[1:] if ":" in x)
                    if line.startswith("fanotify ") and int(fields.get("mask", "0"), 16):
                        masks.add(int(fields["mask"], 16))
        except (OSError, ValueError):
            continue
    return ", ".join("|".join(name for bit, name in FAN_BITS if m & bit) or hex(m)
                     for m in sorted(masks)) or "none found"


def put_eicar(directory, name):
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(EICAR)
    os.chmod(path, 0o644)
    return path


def wait_refused(path, daemons, timeout=60):
    """Wait until opening path (EICAR) as nobody is refused; returns the
    seconds it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        for d in daemons:
            if d.proc is None or d.proc.poll() is not None:
                raise RuntimeError("%s exited\n%s" % (d.kind, d.tail()))
        if refused(path):
            return time.monotonic() - t0
        time.sleep(0.2)
    raise RuntimeError("opening an EICAR file as nobody was not refused within %d s\n%s" %
                       (timeout, "\n".join(d.tail() for d in daemons)))


def make_defs(rundir):
    """The bundled definitions, in a directory both daemons can read."""
    d = os.path.join(rundir, "defs")
    os.makedirs(d)
    os.chmod(d, 0o755)
    names = sorted(n for n in os.listdir(DEFAULT_DEFS)
                   if n.rsplit(".", 1)[-1] in ("hdb", "hsb", "ndb", "ldb", "cvd", "cld"))
    if not names:
        raise RuntimeError("no definitions in %s" % DEFAULT_DEFS)
    for n in names:
        shutil.copyfile(os.path.join(DEFAULT_DEFS, n), os.path.join(d, n))
        os.chmod(os.path.join(d, n), 0o644)
    return d, names


def make_files(parent, sizes):
    """Two fresh tmpfs mounted in parent, each with len(sizes) files of
    fresh random bytes in its directory files/, written in turns (file i
    of one, then of the other: their pages are alike in placement):
    [(mount point, directory, paths)] of the two."""
    out = []
    for _ in range(2):
        mnt = tempfile.mkdtemp(prefix="mnt.", dir=parent)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "scanengine-bench", mnt],
                       check=True)
        d = os.path.join(mnt, "files")
        os.mkdir(d)
        os.chmod(d, 0o755)
        out.append((mnt, d, []))
    for i, size in enumerate(sizes):
        for _, d, paths in out:
            p = os.path.join(d, "f%05d.bin" % i)
            with open(p, "wb") as f:
                f.write(os.urandom(size))
            os.chmod(p, 0o644)
            paths.append(p)
    return out


def unmount(mnt):
    subprocess.run(["umount", "-l", mnt], check=False)
    try:
        os.rmdir(mnt)
    except OSError as e:
        bl.log("bench_onaccess: %s stays: %s" % (mnt, e.strerror))


def daemon(kind, rundir, build, defs, extra):
    """A benchlib daemon with its default cache (no DisableCache)."""
    d = bl.Daemon(kind, rundir, build=build, max_threads=2, sigdir=defs, extra=extra)
    d.items = [(k, v) for k, v in d.items if k != "DisableCache"]
    bl.write_conf(d.conf, d.items)
    return d


def pair_ratio(trials):
    """The fastest trial over the files watched to the fastest over their
    twins, from [(ns watched, ns twin)] per trial."""
    return min(a for a, _ in trials) / min(b for _, b in trials)


def fmt_ns(ns):
    if ns >= 1e6:
        return "%.2f ms" % (ns / 1e6)
    if ns >= 1e3:
        return "%.2f us" % (ns / 1e3)
    return "%.0f ns" % ns


def fmt_ratio(r):
    return "%.2f" % r if r < 10 else "%.0f" % r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="directory holding scanengined")
    ap.add_argument("--files", type=int, default=3000, help="uncached files (default 3000)")
    ap.add_argument("--cached-files", type=int, default=200,
                    help="files opened again and again (default 200)")
    ap.add_argument("--opens", type=int, default=100,
                    help="opens of each of them per trial (default 100)")
    ap.add_argument("--trials", type=int, default=31, help="trials at most (default 31)")
    ap.add_argument("--budget", type=float, default=20,
                    help="seconds of trials per configuration, at most (default 20)")
    ap.add_argument("--target", type=float, default=1.05,
                    help="cached opens: PASS at or below this ratio (default 1.05)")
    ap.add_argument("--python", action="store_true", help="the Python opener, not C")
    ap.add_argument("--clamd-only", action="store_true", help="measure clamonacc alone")
    ap.add_argument("--no-dir-marks", action="store_true",
                    help="leave out scanengined with a directory mark")
    ap.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    args = ap.parse_args()
    if not 1 <= args.cached_files <= args.files:
        ap.error("--cached-files must be between 1 and --files")
    engine = os.path.join(args.build, "scanengined")
    if not args.clamd_only and not os.access(engine, os.X_OK):
        ap.error("%s does not exist or is not executable (--clamd-only to skip it)" % engine)
    if os.getuid() != 0:
        ap.error("must run as root (fanotify, clamonacc, setpriv)")
    for tool in (bl.CLAMD, CLAMONACC):
        if not os.access(tool, os.X_OK):
            ap.error("%s is missing (apt-get install clamav-daemon)" % tool)
    if not shutil.which("mount"):
        ap.error("mount is missing (util-linux)")
    if not shutil.which("setpriv"):
        ap.error("setpriv is missing (util-linux)")

    bl.die_on_sigterm()
    load1 = os.getloadavg()[0]
    bl.log("machine: %d CPUs, load average %.2f%s" % (
        os.cpu_count(), load1, " (busy: expect noisy timings)" if load1 > 0.5 else ""))

    rundir = bl.make_rundir()
    mounts = []
    daemons = []
    try:
        os.chmod(rundir, 0o755)
        defs, names = make_defs(rundir)
        opener = Opener(rundir, args.python)
        rng = random.Random(9)
        sizes = [int(MIN_SIZE * (MAX_SIZE / MIN_SIZE) ** rng.random()) for _ in range(args.files)]
        bl.log("files: %d per configuration, %.1f MiB, %d B to %d KiB (log-uniform), each "
               "configuration on a tmpfs of its own; definitions: %s; opener: %s, as nobody" % (
                   args.files, bl.mib(sum(sizes)), min(sizes), max(sizes) >> 10,
                   " ".join(names), opener.kind))
        bl.log("(a) first open: each file opened, read and closed once; (b) cached: the files "
               "and their twins on a tmpfs nobody watches, one warm-up pass, then trials of up "
               "to %d passes over each, alternating: (b1) all files opened, read to the end "
               "and closed again, (b2) open+close alone of the first %d" % (
                   args.opens, args.cached_files))

        configs = ["unmonitored"]
        if not args.clamd_only:
            configs.append("scanengined")
            if not args.no_dir_marks:
                configs.append("scanengined (dir marks)")
        configs += ["clamonacc", "unmonitored (again)"]
        res = {}
        for name in configs:
            t_config = time.monotonic()
            (mnt, fdir, paths), (twin_mnt, _, twin) = make_files(rundir, sizes)
            mounts += [mnt, twin_mnt]
            here = []
            se = name.startswith("scanengined")
            if not name.startswith("unmonitored"):
                probe = put_eicar(fdir, "probe-eicar.com")
                on = [("OnAccessIncludePath", fdir if name.endswith("(dir marks)") else mnt),
                      ("OnAccessPrevention", "yes")]
                if se:
                    # each in a directory of its own (benchlib names it by kind)
                    own = os.path.join(rundir, "dir-marks" if "dir marks" in name else "mount")
                    os.mkdir(own)
                    os.chmod(own, 0o755)
                    d = daemon("scanengined", own, args.build, defs, on)
                    daemons.insert(0, d)
                    here = [d]
                    d.start()
                    d.wait_ready(60)
                    t0 = time.monotonic()
                    while not status(d).get("onaccess", {}).get("running"):
                        if time.monotonic() - t0 > 30:
                            raise RuntimeError("scanengined: on-access not running after 30 s: "
                                               "%s\n%s" % (status(d).get("onaccess"), d.tail()))
                        if d.proc.poll() is not None:
                            raise RuntimeError("scanengined exited\n%s" % d.tail())
                        time.sleep(0.1)
                else:
                    d = daemon("clamd", rundir, None, defs,
                               on + [("OnAccessExcludeRootUID", "yes")])
                    daemons.insert(0, d)
                    d.start()
                    d.wait_ready(60)
                    acc = Clamonacc(d)
                    daemons.insert(0, acc)
                    here = [acc, d]
                    acc.start()
                secs = wait_refused(probe, here)
                os.unlink(probe)
                bl.log("%s: watching %s; EICAR refused %.1f s after start-up; fanotify "
                       "marks: %s" % (name, on[0][1], secs, fanotify_marks(here[0].proc.pid)))
            before = status(here[0])["onaccess"] if se else None

            first, in_open, failed = opener.first(paths)
            if failed:
                raise RuntimeError("%s: %d of %d first opens failed" % (name, failed, len(paths)))
            after_a = status(here[0])["onaccess"] if se else None
            cached = {}
            # (b1) the files of (a) again, the same way; (b2) open+close
            # alone, of the first --cached-files
            cached["read"] = opener.cached("read", paths, twin, args.opens, args.trials,
                                           args.budget / 2)
            cached["open"] = opener.cached("open", paths[:args.cached_files],
                                           twin[:args.cached_files], args.opens, args.trials,
                                           args.budget / 2)
            res[name] = (first, cached, in_open)
            bl.log("%-20s (a) first open %10s per file (open() alone %s)" % (
                name, fmt_ns(first), fmt_ns(in_open)))
            for mode, what in (("read", "(b1) cached open+read+close"),
                               ("open", "(b2) cached open+close alone")):
                used, trials = cached[mode]
                r = pair_ratio(trials)
                bl.log("%-20s %s %10s per open, twins %s: %.3fx (fastest of %d trials of %d "
                       "passes; median of the trials' ratios %.3fx)" % (
                           "", what, fmt_ns(min(a for a, _ in trials)),
                           fmt_ns(min(b for _, b in trials)), r, len(trials), used,
                           bl.median([a / b for a, b in trials])))

            if se:
                after_b = status(here[0])["onaccess"]
                n_b = sum(n * (used * len(trials) + 1) for n, (used, trials) in
                          ((len(paths), cached["read"]), (args.cached_files, cached["open"])))
                bl.log("  %s counters: watched mounts %d, directories %d; (a) %d scans, %d "
                       "permission events for %d opens; (b) %d permission events for %d opens "
                       "(incl. the warm-up passes), %d user-space cache hits; max latency %d us, "
                       "marks placed %d, refused %d, timed out %d, overloaded %d" % (
                           name, after_b["watched_mounts"], after_b["watched_directories"],
                           after_a["scans"] - before["scans"],
                           after_a["events"]["open_perm"] - before["events"]["open_perm"],
                           len(paths),
                           after_b["events"]["open_perm"] - after_a["events"]["open_perm"], n_b,
                           after_b["cache_hits"] - after_a["cache_hits"],
                           after_b["max_latency_us"], after_b["marks_placed"],
                           after_b["marks_refused"], after_b["timed_out"],
                           after_b["overloaded"]))
            if here:
                probe = put_eicar(fdir, "probe-eicar-after.com")
                still = refused(probe)
                os.unlink(probe)
                if not still:
                    raise RuntimeError("%s: an EICAR file was no longer refused after the "
                                       "measurement\n%s" % (name, "\n".join(
                                           d.tail() for d in here)))
                for d in here:
                    d.stop()
                if name == "clamonacc":
                    try:
                        with open(here[0].log, errors="replace") as f:
                            lines = [line for line in f.read().splitlines() if line.strip()]
                    except OSError:
                        lines = []
                    odd = [line for line in lines if "FOUND" not in line]
                    bl.log("  clamonacc log: %d lines, %d FOUND%s" % (
                        len(lines), len(lines) - len(odd),
                        "; the others:\n    " + "\n    ".join(odd[-10:]) if odd else ""))
            for m in (mnt, twin_mnt):
                unmount(m)
                mounts.remove(m)
            bl.log("  (%s took %.0f s)" % (name, time.monotonic() - t_config))

        # ---- results
        b1, b2 = res["unmonitored"], res["unmonitored (again)"]
        base_first = (b1[0] + b2[0]) / 2
        bl.log("")
        bl.log("unmonitored baseline: first open %s and %s (drift %+.1f%%)" % (
            fmt_ns(b1[0]), fmt_ns(b2[0]), (b2[0] / b1[0] - 1) * 100))
        mon = [n for n in configs if not n.startswith("unmonitored")]
        first_ratio = {n: res[n][0] / base_first for n in mon}
        parts = ["%s %s (x %s unmonitored)" % (n, fmt_ns(res[n][0]), fmt_ratio(first_ratio[n]))
                 for n in mon]
        faster = True
        tail = ""
        if "scanengined" in mon:
            speed = res["clamonacc"][0] / res["scanengined"][0]
            faster = speed > 1
            tail = " -> scanengined %s" % ("%sx faster" % fmt_ratio(speed) if faster else
                                           "%sx SLOWER" % fmt_ratio(1 / speed))
        bl.log("RESULT onaccess: first open of uncached files: unmonitored %s, %s%s" % (
            fmt_ns(base_first), ", ".join(parts), tail))
        base_open = (b1[2] + b2[2]) / 2
        parts = ["%s %s" % (n, fmt_ns(res[n][2])) for n in mon]
        bl.log("RESULT onaccess: (of which in open() itself: unmonitored %s, %s%s)" % (
            fmt_ns(base_open), ", ".join(parts),
            " -> scanengined %.2fx faster" % (res["clamonacc"][2] / res["scanengined"][2])
            if "scanengined" in mon else ""))
        ok = faster
        for mode, what in (("read", "cached clean opens (open, read, close; the target)"),
                           ("open", "cached clean opens, open+close alone")):
            parts = []
            for n in configs:
                trials = res[n][1][mode][1]
                ratio = pair_ratio(trials)
                fast = min(a for a, _ in trials)
                twin_fast = min(b for _, b in trials)
                s = "%s %s, %.3fx its unwatched twin (%s%s)" % (
                    n, fmt_ns(fast), ratio, "+" if fast >= twin_fast else "-",
                    fmt_ns(abs(fast - twin_fast)))
                if n == "scanengined" and mode == "read":
                    met = ratio <= args.target
                    ok = ok and met
                    s += " (target <= %.2f: %s)" % (args.target, "PASS" if met else "FAIL")
                parts.append(s)
            bl.log("RESULT onaccess: %s: %s" % (what, ", ".join(parts)))
        if "scanengined" in mon:
            bl.log("RESULT onaccess: %s (cached open, read and close <= %.2fx unmonitored and "
                   "first opens faster than clamonacc; opener: %s)" % (
                       "PASS" if ok else "FAIL", args.target, opener.kind.split()[0]))
            return 0 if ok else 1
        return 0
    except RuntimeError as e:
        bl.log("bench_onaccess: error: %s" % e)
        return 2
    except KeyboardInterrupt:
        bl.log("bench_onaccess: interrupted; stopping the daemons")
        return 130
    finally:
        for m in mounts:
            unmount(m)
        bl.cleanup(daemons, rundir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
