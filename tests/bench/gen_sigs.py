#!/usr/bin/python3
"""Generate a deterministic, realistically sized ClamAV signature set.

    gen_sigs.py OUTDIR [--hash 1000000] [--body 50000] [--seed 1]
                [--md5-fraction 0.5] [--positive FILE]... [--verify]

Writes into OUTDIR (which must be empty or absent):

    bench.hdb   MD5 hash signatures      md5:size:Name
    bench.hsb   SHA-256 hash signatures  sha256:size:Name
                (--hash in total, split by --md5-fraction; sizes log-uniform
                between 512 bytes and 8 MiB, like real malware samples)
    bench.ndb   --body body signatures   Name:0:*:hexbytes, random 16-32
                byte patterns; ~90 % plain (Boyer-Moore matcher), ~10 % with
                '??', '{n-m}' or '*' (Aho-Corasick matcher); plus the EICAR
                signature at offset 0.

Each --positive FILE adds its SHA-256 to bench.hsb as Bench.Known.Positive-N,
so a corpus has known hash detections. The random part depends only on
--seed, --hash, --body and --md5-fraction.

--verify runs clamscan with the set against an EICAR sample and the
--positive files, checks the detections and the signature count, and prints
how long clamscan took to load the set.
"""

import argparse
import hashlib
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time

EICAR_SIG = ("Eicar-Test-Signature:0:0:58354f2150254041505b345c505a58353428505e"
             "2937434329377d2445494341522d5354414e444152442d414e544956495255532d"
             "544553542d46494c452124482b482a")
EICAR = bytes.fromhex(EICAR_SIG.split(":")[3])

PLATFORMS = ["Win", "Win", "Win", "Unix", "Doc", "Xls", "Html", "Js", "Pdf",
             "Andr", "Osx", "Multios", "Email", "Txt"]
CATEGORIES = ["Trojan", "Trojan", "Malware", "Downloader", "Dropper", "Exploit",
              "Virus", "Worm", "Adware", "Ransomware", "Coinminer", "Phishing",
              "Packed", "Spyware", "Backdoor"]
SYLLABLES = ["ag", "ent", "zeu", "s", "emo", "tet", "qak", "bot", "mir", "ai",
             "lok", "i", "rem", "cos", "dri", "dex", "for", "m", "book", "urs",
             "nif", "cat", "ryu", "k", "trick", "tic", "vid", "ar", "raz", "y"]


def family_names(rng, n=3000):
    fams = set()
    while len(fams) < n:
        w = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        fams.add(w.capitalize())
    return sorted(fams)


class Namer:
    """Names in the style of the official database: Win.Trojan.Agent-1234567-0."""

    def __init__(self, rng):
        self.rng = rng
        self.families = family_names(rng)
        self.serial = 1000000

    def __call__(self):
        self.serial += 1
        r = self.rng
        return "%s.%s.%s-%d-%d" % (r.choice(PLATFORMS), r.choice(CATEGORIES),
                                   r.choice(self.families), self.serial,
                                   r.choice((0, 0, 0, 1, 2)))


def sample_size(rng):
    return int(512 * (16384 ** rng.random()))  # 512 B .. 8 MiB, log-uniform


def write_hash_sigs(path_md5, path_sha, rng, namer, n, md5_fraction):
    n_md5 = int(round(n * md5_fraction))
    with open(path_md5, "w") as f:
        for _ in range(n_md5):
            f.write("%032x:%d:%s\n" % (rng.getrandbits(128), sample_size(rng), namer()))
    with open(path_sha, "w") as f:
        for _ in range(n - n_md5):
            f.write("%064x:%d:%s\n" % (rng.getrandbits(256), sample_size(rng), namer()))
    return n_md5, n - n_md5


def hexbytes(rng, n):
    return rng.randbytes(n).hex()


def body_pattern(rng):
    """Hex pattern of a body signature: 16-32 random bytes, sometimes with a
    wildcard. Every fixed part is at least 6 bytes, so random data matching
    one is out of the question (and libclamav accepts the pattern)."""
    n = rng.randint(16, 32)
    kind = rng.random()
    if kind < 0.90:                         # plain: Boyer-Moore
        return hexbytes(rng, n)
    cut = rng.randint(6, n - 6)
    a, b = hexbytes(rng, cut), hexbytes(rng, n - cut)
    if kind < 0.95:                         # single-byte wildcard(s)
        return a + "??" * rng.randint(1, 2) + b
    if kind < 0.98:                         # bounded gap
        lo = rng.randint(0, 8)
        return "%s{%d-%d}%s" % (a, lo, lo + rng.randint(1, 32), b)
    return a + "*" + b                      # unbounded gap


def write_body_sigs(path, rng, namer, n):
    kinds = {"plain": 0, "wildcard": 0}
    with open(path, "w") as f:
        for _ in range(n):
            pat = body_pattern(rng)
            kinds["plain" if re.fullmatch("[0-9a-f]+", pat) else "wildcard"] += 1
            f.write("%s:0:*:%s\n" % (namer(), pat))
        f.write(EICAR_SIG + "\n")
    return kinds


def append_positives(path, files):
    with open(path, "a") as f:
        for i, p in enumerate(files):
            with open(p, "rb") as fp:
                data = fp.read()
            f.write("%s:%d:Bench.Known.Positive-%d\n" % (
                hashlib.sha256(data).hexdigest(), len(data), i))


def generate(outdir, n_hash, n_body, seed, md5_fraction, positives):
    """Write the set; returns the number of signatures clamscan should report."""
    os.makedirs(outdir, exist_ok=True)
    # A stream of its own: with the corpus' seed the Mersenne Twister would
    # hand out the very bytes of the corpus' random files as patterns.
    rng = random.Random("gen_sigs-%d" % seed)
    namer = Namer(rng)
    n_md5, n_sha = write_hash_sigs(os.path.join(outdir, "bench.hdb"),
                                   os.path.join(outdir, "bench.hsb"),
                                   rng, namer, n_hash, md5_fraction)
    kinds = write_body_sigs(os.path.join(outdir, "bench.ndb"), rng, namer, n_body)
    append_positives(os.path.join(outdir, "bench.hsb"), positives)
    print("sigs: %d MD5 + %d SHA-256 hash, %d plain + %d wildcard body, EICAR, "
          "%d known positive(s)" % (n_md5, n_sha, kinds["plain"], kinds["wildcard"],
                                    len(positives)))
    return n_hash + n_body + 1 + len(positives)


def verify(outdir, expected, positives):
    """Scan an EICAR sample and the positives with clamscan using only this set."""
    with tempfile.TemporaryDirectory() as tmp:
        sample = os.path.join(tmp, "eicar.com")
        with open(sample, "wb") as f:
            f.write(EICAR)
        t0 = time.monotonic()
        p = subprocess.run(["clamscan", "--database=" + outdir, sample] + positives,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        elapsed = time.monotonic() - t0
    out = p.stdout
    found = re.findall(r"^(.*): (\S+) FOUND$", out, re.M)
    known = re.search(r"^Known viruses: (\d+)$", out, re.M)
    problems = []
    if p.returncode != 1:
        problems.append("clamscan exit status %d (expected 1)" % p.returncode)
    if not known or int(known.group(1)) != expected:
        problems.append("clamscan loaded %s signatures, expected %d" %
                        (known.group(1) if known else "?", expected))
    if len(found) != 1 + len(positives):
        problems.append("%d detections, expected %d" % (len(found), 1 + len(positives)))
    if problems:
        sys.stderr.write(out)
        for msg in problems:
            print("verify: FAILED: " + msg, file=sys.stderr)
        return False
    print("verify: clamscan loaded %s signatures and found %d of %d samples in %.1f s"
          % (known.group(1), len(found), 1 + len(positives), elapsed))
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--hash", type=int, default=1000000, metavar="N",
                    help="hash signatures (default 1000000)")
    ap.add_argument("--body", type=int, default=50000, metavar="M",
                    help="body signatures, EICAR not counted (default 50000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--md5-fraction", type=float, default=0.5,
                    help="share of the hash signatures that are MD5 (default 0.5)")
    ap.add_argument("--positive", action="append", default=[], metavar="FILE",
                    help="add FILE's SHA-256 as a known detection (repeatable)")
    ap.add_argument("--verify", action="store_true",
                    help="check the set with clamscan and time its loading")
    args = ap.parse_args()
    if not 0 <= args.md5_fraction <= 1:
        ap.error("--md5-fraction must be between 0 and 1")
    if os.path.exists(args.outdir) and os.listdir(args.outdir):
        ap.error("%s exists and is not empty" % args.outdir)
    t0 = time.monotonic()
    expected = generate(args.outdir, args.hash, args.body, args.seed,
                        args.md5_fraction, args.positive)
    size = sum(os.path.getsize(os.path.join(args.outdir, n)) for n in os.listdir(args.outdir))
    print("sigs: %d signatures, %.0f MiB, written in %.1f s" %
          (expected, size / 2**20, time.monotonic() - t0))
    if args.verify and not verify(args.outdir, expected, args.positive):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
