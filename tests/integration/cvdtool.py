"""Definitions containers made by the tests: a correct .cud (gzip'd tar of
COPYING, <db>.info, the signature files; a 512-byte header with the
payload's MD5), and the same with hostile tar members added, the way an
attacker or a broken mirror would make them. Built independently of the
project's own builder, from the format as libclamav reads it."""

import gzip
import hashlib
import io
import os
import tarfile
import time

HEADER_LEN = 512


def header(version, sigs, flevel, md5="X", dsig="X", builder="tests", stime=1700000000,
           when="14 Nov 2023 22-13 +0000"):
    text = "ClamAV-VDB:%s:%d:%d:%d:%s:%s:%s:%d" % (when, version, sigs, flevel, md5, dsig,
                                                   builder, stime)
    return text.encode().ljust(HEADER_LEN, b" ")


def info_text(db_version, sigs, flevel, members, builder="tests", stime=1700000000,
              when="14 Nov 2023 22-13 +0000"):
    lines = ["ClamAV-VDB:%s:%d:%d:%d:X:X:%s:%d" % (when, db_version, sigs, flevel, builder,
                                                   stime)]
    for name, data in members:
        lines.append("%s:%d:%s" % (name, len(data), hashlib.sha256(data).hexdigest()))
    return ("\n".join(lines) + "\n").encode()


def _add(tar, name, data, mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = mode
    ti.mtime = 0
    tar.addfile(ti, io.BytesIO(data))


def payload(db, version, sigs, flevel, members, extra=None, raw_tail=b""):
    """The gzip'd tar: COPYING, <db>.info listing members, members, then
    the TarInfo objects of extra (hostile entries: (TarInfo, bytes or
    None)); raw_tail is appended to the tar stream before gzip (a member
    whose header lies, say)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        _add(tar, "COPYING", b"made by the scanengine tests\n")
        _add(tar, db + ".info", info_text(version, sigs, flevel, members))
        for name, data in members:
            _add(tar, name, data)
        for ti, data in extra or []:
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
        if raw_tail:
            # tarfile writes its end-of-archive blocks on close: put the
            # tail in before them
            tar.fileobj.write(raw_tail)
            tar.offset += len(raw_tail)
    return gzip.compress(buf.getvalue(), mtime=0)


def write_cud(path, db, version, members, sigs=None, flevel=81, extra=None, raw_tail=b"",
              zipped=None):
    """A .cud at path. sigs defaults to one per non-comment line."""
    if sigs is None:
        sigs = sum(1 for _, d in members for line in d.splitlines()
                   if line.strip() and not line.startswith(b"#"))
    body = zipped if zipped is not None else payload(db, version, sigs, flevel, members, extra,
                                                     raw_tail)
    with open(path, "wb") as fh:
        fh.write(header(version, sigs, flevel, md5=hashlib.md5(body).hexdigest()))
        fh.write(body)
    os.chmod(path, 0o644)
    return path


def many_entries_payload(db, n):
    """A tar of n empty .hdb members after COPYING and a valid .info."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        _add(tar, "COPYING", b"c\n")
        _add(tar, db + ".info", info_text(1, 1, 81, [("a.ndb", b"x\n")]))
        for i in range(n):
            _add(tar, "f%06d.hdb" % i, b"")
    return gzip.compress(buf.getvalue(), compresslevel=1, mtime=0)


def bomb_tail(size=10 * 10 ** 9, written=4 << 20):
    """A member header declaring size bytes followed by `written` zeros:
    what a 10 GB member starts with (the rest never needs to exist)."""
    ti = tarfile.TarInfo("bomb.hdb")
    ti.size = size
    ti.mtime = 0
    return ti.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * written


def flip(path, out, offset):
    with open(path, "rb") as fh:
        data = bytearray(fh.read())
    data[offset] ^= 0x01
    with open(out, "wb") as fh:
        fh.write(data)
    os.chmod(out, 0o644)
    return out


def sign_entries(path):
    """The base64 DER blobs of a .sign file."""
    out = []
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(line.split(":", 3)[3])
    return out


def now():
    return time.time()
