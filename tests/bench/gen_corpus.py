#!/usr/bin/python3
"""Generate the deterministic benchmark corpus.

    gen_corpus.py OUTDIR [--small 5000] [--large 5] [--large-mb 20] [--seed 1]

Layout (the same bytes for the same arguments, on every machine):

    OUTDIR/small/dNN/...   --small files spread over directories of 100:
                           text, HTML, random binary, zips (python zipfile,
                           fixed timestamps) and 20 EICAR samples (15 plain,
                           5 inside a zip)
    OUTDIR/large/...       --large files of --large-mb MiB each: random
                           binary, text, and a zip
    OUTDIR/known-positive.bin
                           one clean-looking file whose SHA-256 gen_sigs.py
                           --positive turns into a hash signature
    OUTDIR/corpus.json     parameters, file count, expected EICAR detections
                           and a digest of every file

None of the files match the random body signatures of gen_sigs.py.
"""

import argparse
import hashlib
import io
import json
import os
import random
import sys
import zipfile

EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!"
         b"$H+H*")
EICAR_PLAIN = 15
EICAR_ZIPPED = 5
FILES_PER_DIR = 100
ZIP_DATE = (2024, 1, 1, 0, 0, 0)

WORDS = ("the of and to in is that for it as was with be by on not he this are or "
         "his from at which but have an they you were her she there been one all "
         "would their we him when who will more no if out so said what up its "
         "about into than them can only other new some could time these two may "
         "then do first any my now such like our over man me even most made after "
         "also did many before must through back years where much your way well "
         "down should because each just those people how too little state good "
         "very make world still own see men work long get here between both life "
         "being under never day same another know while last might us great old "
         "year off come since against go came right used take three kernel socket "
         "process memory signature scan file buffer daemon config thread").split()


def log_uniform(rng, lo, hi):
    """An integer between lo and hi, spread evenly over the orders of magnitude."""
    return int(round(lo * (hi / lo) ** rng.random()))


def text_bytes(rng, size):
    out = []
    n = 0
    while n < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 16)))
        line = line.capitalize() + ".\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def html_bytes(rng, size):
    head = b"<!DOCTYPE html>\n<html><head><title>page</title>\n" \
           b"<script>var x = 1; function f(a) { return a + x; }</script>\n" \
           b"</head><body>\n"
    body = []
    n = len(head)
    while n < size:
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 20)))
        tag = rng.choice(["p", "div", "li", "td"])
        part = '<%s class="c%d"><a href="https://example.%s/%s">%s</a> %s</%s>\n' % (
            tag, rng.randint(0, 99), rng.choice(["com", "org", "net"]),
            rng.choice(WORDS), rng.choice(WORDS), words, tag)
        body.append(part)
        n += len(part)
    return head + "".join(body).encode() + b"</body></html>\n"


def zip_bytes(members, compress=zipfile.ZIP_DEFLATED):
    """A zip of (name, data) pairs with fixed timestamps, so it is reproducible."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = compress
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    return buf.getvalue()


def small_file(rng, i):
    """(relative name, bytes) of the i-th ordinary small file."""
    kind = rng.random()
    if kind < 0.40:
        return "f%05d.txt" % i, text_bytes(rng, log_uniform(rng, 200, 16384))
    if kind < 0.47:
        return "f%05d.html" % i, html_bytes(rng, log_uniform(rng, 500, 16384))
    if kind < 0.88:
        return "f%05d.bin" % i, rng.randbytes(log_uniform(rng, 64, 65536))
    members = []
    for m in range(rng.randint(1, 5)):
        if rng.random() < 0.6:
            members.append(("doc%d.txt" % m, text_bytes(rng, log_uniform(rng, 200, 16384))))
        else:
            members.append(("data%d.bin" % m, rng.randbytes(log_uniform(rng, 64, 16384))))
    return "f%05d.zip" % i, zip_bytes(members)


def write(path, data, digests, root):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    digests.append((os.path.relpath(path, root), hashlib.sha256(data).hexdigest()))


def generate(outdir, small, large, large_mb, seed):
    rng = random.Random("gen_corpus-%d" % seed)  # not gen_sigs' stream
    digests = []

    # The EICAR samples go to fixed, evenly spread positions among the small
    # files, so every directory slice of the corpus has a few.
    n_eicar = EICAR_PLAIN + EICAR_ZIPPED
    step = max(1, small // n_eicar)
    eicar_at = {(k * step + step // 2) % small: k for k in range(n_eicar)}

    for i in range(small):
        d = os.path.join(outdir, "small", "d%02d" % (i // FILES_PER_DIR))
        if i in eicar_at:
            k = eicar_at[i]
            if k < EICAR_PLAIN:
                name, data = "eicar%02d.com" % k, EICAR
            else:
                name = "eicar%02d.zip" % k
                data = zip_bytes([("readme.txt", text_bytes(rng, 500)),
                                  ("eicar.com", EICAR)])
        else:
            name, data = small_file(rng, i)
        write(os.path.join(d, name), data, digests, outdir)

    size = large_mb << 20
    for j in range(large):
        kind = j % 3
        if kind == 0:
            name, data = "large%d.bin" % j, rng.randbytes(size)
        elif kind == 1:
            # lines drawn from a pool: text-like, fast to generate
            pool = [text_bytes(rng, rng.randint(40, 120)) for _ in range(4096)]
            lines = []
            n = 0
            while n < size:
                chunk = rng.choices(pool, k=4096)
                lines.extend(chunk)
                n += sum(map(len, chunk))
            name, data = "large%d.txt" % j, b"".join(lines)[:size]
        else:
            half = size // 2
            data = zip_bytes([("part1.bin", rng.randbytes(half)),
                              ("part2.txt", text_bytes(rng, 1 << 20) * (half >> 20))],
                             compress=zipfile.ZIP_STORED)
            name = "large%d.zip" % j
        write(os.path.join(outdir, "large", name), data, digests, outdir)

    # A file no body signature matches; gen_sigs.py --positive makes it a
    # known hash detection ("Bench.Known.Positive").
    known = b"scanengine benchmark known positive\n" + rng.randbytes(4000)
    write(os.path.join(outdir, "known-positive.bin"), known, digests, outdir)

    manifest = {
        "seed": seed, "small": small, "large": large, "large_mb": large_mb,
        "files": len(digests),
        "eicar_detections": n_eicar,
        "bytes": sum(os.path.getsize(os.path.join(outdir, p)) for p, _ in digests),
        "digest": hashlib.sha256("".join(p + h for p, h in sorted(digests)).encode()).hexdigest(),
    }
    with open(os.path.join(outdir, "corpus.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    return manifest


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--small", type=int, default=5000, help="small files (default 5000)")
    ap.add_argument("--large", type=int, default=5, help="large files (default 5)")
    ap.add_argument("--large-mb", type=int, default=20, help="MiB per large file (default 20)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.small < EICAR_PLAIN + EICAR_ZIPPED:
        ap.error("--small must be at least %d" % (EICAR_PLAIN + EICAR_ZIPPED))
    if os.path.exists(args.outdir) and os.listdir(args.outdir):
        ap.error("%s exists and is not empty" % args.outdir)
    m = generate(args.outdir, args.small, args.large, args.large_mb, args.seed)
    print("corpus: %d files, %.1f MiB, %d EICAR samples, digest %s" %
          (m["files"], m["bytes"] / 2**20, m["eicar_detections"], m["digest"][:16]))


if __name__ == "__main__":
    sys.exit(main())
