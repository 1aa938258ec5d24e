"""The control socket answers like clamd 1.4: every command in every
framing, the edge cases of the protocol (arguments, descriptors, INSTREAM
limits, IDSESSION rules, timeouts), the clamd.conf keys that shape the
answers (ExcludePath, Follow*Symlinks, StreamMaxLength,
CommandReadTimeout), access control for admin commands, and load that a
real client can produce (1,000 requests in one session, hundreds of idle
connections, clients that vanish mid-scan).

Expected replies are the ones clamd 1.4.6 gives (see the protocol notes),
except for the differences scanengined makes on purpose (README)."""

import ctypes
import ctypes.util
import hashlib
import json
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest
from collections import Counter

from harness import EICAR, SLOW, Daemon, DaemonTestCase, instream_bytes, recv_all, tmpdir

SIG = b"Eicar-Test-Signature.UNOFFICIAL"
FRAMES = ((b"z", b"\0"), (b"n", b"\n"), (b"", b"\n"))  # prefix, reply terminator
CLAMD_COMMANDS = (b"SCAN QUIT RELOAD PING CONTSCAN VERSIONCOMMANDS VERSION END SHUTDOWN "
                  b"MULTISCAN FILDES STATS IDSESSION INSTREAM DETSTATSCLEAR DETSTATS ALLMATCHSCAN")
# scanengine admin extensions, listed after clamd's own
EXTENSIONS = b" STATUS FAULTS FAULTHISTORY RESETPOISON UPDATE"
STATS_RE = re.compile(
    rb"POOLS: 1\n\nSTATE: VALID PRIMARY\n"
    rb"THREADS: live (\d+)  idle (\d+) max (\d+) idle-timeout (\d+)\n"
    rb"QUEUE: (\d+) items(?: min_wait: [\d.]+ max_wait: [\d.]+ avg_wait: [\d.]+)?\n"
    rb"(?:\t[A-Z]+ -?\d+\.\d{6} [^\n]*\n)*\n"
    rb"MEMSTATS: heap N/A mmap N/A used N/A free N/A releasable N/A pools 1 "
    rb"pools_used \d+\.\d{3}M pools_total \d+\.\d{3}M\nEND")
FD_REPLY = re.compile(rb"fd\[\d+\]: (.*)", re.S)
NOT_IN_SESSION = b"Command invalid inside IDSESSION. ERROR"
ONLY_PREFIXED = b"Only nCMDS\\n and zCMDS\\0 are accepted inside IDSESSION. ERROR"
STRAY_FD = b"PROTOCOL ERROR: ancillary data sent without FILDES. ERROR"
GENERIC = b"Error processing command. ERROR"
NOENT = b"File path check failure: No such file or directory. ERROR"


def libclamav_version():
    lib = ctypes.CDLL(ctypes.util.find_library("clamav"))
    lib.cl_retver.restype = ctypes.c_char_p
    return lib.cl_retver()


VERSION = b"ClamAV " + libclamav_version()


def write(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)
    return path.encode()


def lines(data, term=b"\0"):
    """Split replies; the data must end with the terminator."""
    assert data.endswith(term), data
    return data[:-1].split(term)


def session_replies(data, term=b"\0"):
    """IDSESSION replies -> {id: [text, ...]} (any order on the wire)."""
    out = {}
    for line in lines(data, term):
        m = re.fullmatch(rb"(\d+): (.*)", line, re.S)
        assert m, line
        out.setdefault(int(m.group(1)), []).append(m.group(2))
    return out


def send_fildes(s, path, prefix=b"z", term=b"\0"):
    """FILDES as clamdscan sends it: the command, then one byte carrying
    a descriptor of path."""
    s.sendall(prefix + b"FILDES" + term)
    fd = os.open(path, os.O_RDONLY)
    try:
        socket.send_fds(s, [b"\0"], [fd])
    finally:
        os.close(fd)


def fd_reply(test, data, want, term=b"\0"):
    """data is exactly one 'fd[N]: <want>' reply."""
    test.assertEqual(len(lines(data, term)), 1, data)
    m = FD_REPLY.fullmatch(lines(data, term)[0])
    test.assertIsNotNone(m, data)
    test.assertEqual(m.group(1), want)


# A client running as another user (os.setuid in a child): sends each
# command on its own connection, prints the replies as hex.
AS_USER_CLIENT = r"""
import json, socket, sys
out = []
for cmd in json.loads(sys.argv[2]):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(sys.argv[1])
    s.sendall(bytes.fromhex(cmd))
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    out.append(data.hex())
print(json.dumps(out))
"""


def run_as(sock, cmds, user="nobody", group=None, extra_groups=()):
    pw = pwd.getpwnam(user)
    r = subprocess.run([sys.executable, "-c", AS_USER_CLIENT, sock,
                        json.dumps([c.hex() for c in cmds])],
                       user=pw.pw_uid, group=pw.pw_gid if group is None else group,
                       extra_groups=list(extra_groups), cwd="/", capture_output=True, text=True,
                       timeout=120 * SLOW)
    assert r.returncode == 0, r.stderr
    return [bytes.fromhex(h) for h in json.loads(r.stdout)]


class ProtocolTest(DaemonTestCase):
    conf = {"CommandReadTimeout": "2", "StreamMaxLength": "1K", "ExcludePath": "/se-excluded",
            "LocalSocketMode": "666"}

    @classmethod
    def setUpClass(cls):
        d = cls.dir = tmpdir()
        cls.addClassCleanup(shutil.rmtree, d, True)
        cls.eicar = write(os.path.join(d, "eicar.com"), EICAR)
        cls.clean = write(os.path.join(d, "clean.txt"), b"nothing to see\n")
        cls.empty = write(os.path.join(d, "empty"), b"")
        cls.inf = os.path.join(d, "inf").encode()
        cls.inf_files = [write(os.path.join(d, "inf", "e%d.com" % i), EICAR) for i in range(3)]
        write(os.path.join(d, "inf", "clean.txt"), b"clean\n")
        write(os.path.join(d, "inf", "sub", "deep.com"), EICAR)
        cls.inf_files.append(os.path.join(d, "inf", "sub", "deep.com").encode())
        cls.cleandir = os.path.join(d, "cleandir").encode()
        write(os.path.join(d, "cleandir", "a.txt"), b"a\n")
        write(os.path.join(d, "cleandir", "sub", "b.txt"), b"b\n")
        cls.emptydir = os.path.join(d, "emptydir").encode()
        os.mkdir(cls.emptydir)
        cls.link = os.path.join(d, "link").encode()
        os.symlink(cls.eicar, cls.link)
        cls.dirlink = os.path.join(d, "dirlink").encode()
        os.symlink(cls.inf, cls.dirlink)
        cls.withlinks = os.path.join(d, "withlinks").encode()
        write(os.path.join(d, "withlinks", "ok.txt"), b"ok\n")
        os.symlink(cls.eicar, os.path.join(cls.withlinks, b"l.com"))
        cls.excl = os.path.join(d, "excl").encode()
        write(os.path.join(d, "excl", "se-excluded", "e.com"), EICAR)
        write(os.path.join(d, "excl", "se-excluded.com"), EICAR)
        cls.excl_found = write(os.path.join(d, "excl", "other", "e.com"), EICAR)
        write(os.path.join(d, "excl", "ok.txt"), b"ok\n")
        cls.fifo = os.path.join(d, "fifo").encode()
        os.mkfifo(cls.fifo)
        cls.big = os.path.join(d, "big").encode()
        for i in range(200):
            write(os.path.join(d, "big", "f%03d.txt" % i), b"clean file %d\n" % i * 200)
        super().setUpClass()

    def cmd(self, data, fds=None, timeout=10):
        return self.daemon.command(data, fds=fds, timeout=timeout)

    def found(self, path, term=b"\0"):
        return path + b": " + SIG + b" FOUND" + term

    # ---- every command, every framing -------------------------------------

    def test_ping_version_every_framing(self):
        for prefix, term in FRAMES:
            with self.subTest(prefix=prefix):
                self.assertEqual(self.cmd(prefix + b"PING" + term), b"PONG" + term)
                self.assertEqual(self.cmd(prefix + b"VERSION" + term), VERSION + term)

    def test_versioncommands(self):
        for prefix, term in FRAMES[:2]:
            # scanengined lists its admin extension after clamd's commands
            self.assertEqual(self.cmd(prefix + b"VERSIONCOMMANDS" + term),
                             VERSION + b"| COMMANDS: " + CLAMD_COMMANDS + EXTENSIONS + term)
        self.assertEqual(self.cmd(b"VERSIONCOMMANDS\n"), b"UNKNOWN COMMAND\n")

    def test_reload_every_framing(self):
        loads = self.daemon.status()["engine_loads"]
        for prefix, term in FRAMES:
            with self.subTest(prefix=prefix):
                self.assertEqual(self.cmd(prefix + b"RELOAD" + term), b"RELOADING" + term)
                self.daemon.wait_for(lambda: self.daemon.status()["engine_loads"] > loads,
                                     timeout=30, what="the reload")
                self.daemon.wait_for(lambda: len(self.daemon.status()["engines"]) == 1,
                                     timeout=30, what="the old generation to retire")
                loads = self.daemon.status()["engine_loads"]
        self.assertEqual(self.cmd(b"zSCAN " + self.eicar + b"\0"), self.found(self.eicar))

    def test_path_commands_every_framing(self):
        for name in (b"SCAN", b"CONTSCAN", b"MULTISCAN", b"ALLMATCHSCAN"):
            for prefix, term in FRAMES:
                with self.subTest(cmd=name, prefix=prefix):
                    got = self.cmd(prefix + name + b" " + self.eicar + term)
                    if not prefix and name == b"ALLMATCHSCAN":
                        self.assertEqual(got, b"UNKNOWN COMMAND\n")
                        continue
                    self.assertEqual(got, self.found(self.eicar, term))
                    self.assertEqual(self.cmd(prefix + name + b" " + self.clean + term),
                                     self.clean + b": OK" + term)
                    self.assertEqual(self.cmd(prefix + name + b" " + self.cleandir + term),
                                     self.cleandir + b": OK" + term)

    def test_instream_every_framing(self):
        for prefix, term in FRAMES[:2]:
            with self.subTest(prefix=prefix):
                head = prefix + b"INSTREAM" + term
                self.assertEqual(self.cmd(head + instream_bytes(EICAR)[10:]),
                                 b"stream: " + SIG + b" FOUND" + term)
                self.assertEqual(self.cmd(head + instream_bytes(b"hello\n")[10:]),
                                 b"stream: OK" + term)
                self.assertEqual(self.cmd(head + b"\0\0\0\0"), b"stream: OK" + term)
        self.assertEqual(self.cmd(b"INSTREAM\n"), b"UNKNOWN COMMAND\n")

    def test_instream_split_anywhere(self):
        s = self.daemon.connect()
        for b in instream_bytes(EICAR, chunk=7):
            s.send(bytes([b]))
        self.assertEqual(recv_all(s), b"stream: " + SIG + b" FOUND\0")
        s.close()
        # bytes after the terminator are ignored (pyclamd sends a second one)
        self.assertEqual(self.cmd(b"zINSTREAM\0\0\0\0\0\0\0\0\0"), b"stream: OK\0")

    def test_instream_half_close_still_answered(self):
        s = self.daemon.connect()
        s.sendall(instream_bytes(EICAR))
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_all(s), b"stream: " + SIG + b" FOUND\0")
        s.close()

    def test_fildes_every_framing(self):
        for prefix, term in FRAMES:
            with self.subTest(prefix=prefix):
                for path, want in ((self.eicar, SIG + b" FOUND"), (self.clean, b"OK"),
                                   (self.empty, b"OK"), (self.inf, b"Not a regular file ERROR")):
                    s = self.daemon.connect()
                    send_fildes(s, path, prefix, term)
                    fd_reply(self, recv_all(s), want, term)
                    s.close()
        # command, extra byte and descriptor in one message also works
        fd = os.open(self.eicar, os.O_RDONLY)
        try:
            fd_reply(self, self.cmd(b"zFILDES\0X", fds=[fd]), SIG + b" FOUND")
        finally:
            os.close(fd)

    def test_stats_every_framing(self):
        for prefix, term in FRAMES[:2]:
            with self.subTest(prefix=prefix):
                got = self.cmd(prefix + b"STATS" + term)
                self.assertTrue(got.endswith(b"END" + term), got)
                m = STATS_RE.fullmatch(got[:-1])
                self.assertIsNotNone(m, got)
                live, idle, mx, idle_timeout, queue = map(int, m.groups())
                self.assertEqual((mx, idle_timeout), (2, 30))
                self.assertEqual(live, 2)
                self.assertLessEqual(idle, live)
        self.assertEqual(self.cmd(b"STATS\n"), b"UNKNOWN COMMAND\n")

    def test_idsession_and_end_every_framing(self):
        self.assertEqual(self.cmd(b"zIDSESSION\0zPING\0zEND\0"), b"1: PONG\0")
        self.assertEqual(self.cmd(b"nIDSESSION\nnPING\nnEND\n"), b"1: PONG\n")
        self.assertEqual(self.cmd(b"IDSESSION\n"), b"UNKNOWN COMMAND\n")
        # END outside a session
        for prefix, term in FRAMES:
            self.assertEqual(self.cmd(prefix + b"END" + term), b"UNKNOWN COMMAND" + term)

    def test_removed_commands(self):
        for prefix, term in FRAMES:
            with self.subTest(prefix=prefix):
                # DETSTATS: closed without a reply
                self.assertEqual(self.cmd(prefix + b"DETSTATS" + term), b"")
                self.assertEqual(self.cmd(prefix + b"DETSTATSCLEAR" + term), b"")
                for name in (b"STREAM", b"RAWSCAN " + self.eicar, b"SESSION",
                             b"OPTSCAN " + self.eicar):
                    self.assertEqual(self.cmd(prefix + name + term), b"UNKNOWN COMMAND" + term)

    def test_status_extension(self):
        got = self.cmd(b"zSTATUS\0")
        self.assertTrue(got.endswith(b"}\0"), got)
        self.assertEqual(json.loads(got[:-1])["service"], "scanengined")
        got = self.cmd(b"nSTATUS\n")
        self.assertEqual(json.loads(got[:-1])["workers_configured"], 2)
        self.assertEqual(self.cmd(b"STATUS\n"), b"UNKNOWN COMMAND\n")

    # ---- command syntax ----------------------------------------------------

    def test_unknown_and_lowercase(self):
        for prefix, term in FRAMES:
            for name in (b"FOO", b"ping", b"Ping", b"version", b"scan " + self.eicar, b""):
                with self.subTest(prefix=prefix, name=name):
                    self.assertEqual(self.cmd(prefix + name + term), b"UNKNOWN COMMAND" + term)
        self.assertEqual(self.cmd(b"zPING\r\0"), b"UNKNOWN COMMAND\0")

    def test_commands_without_argument_take_none(self):
        for data in (b"zPING \0", b"zPINGX\0", b"zVERSION \0", b"zRELOAD \0", b"zSHUTDOWN \0",
                     b"zQUITX\0", b"zSTATSX\0", b"zINSTREAMX\0", b"zIDSESSIONX\0", b"zENDX\0"):
            with self.subTest(data=data):
                self.assertEqual(self.cmd(data), b"UNKNOWN COMMAND\0")

    def test_missing_argument(self):
        for name in (b"SCAN", b"CONTSCAN", b"MULTISCAN", b"ALLMATCHSCAN"):
            with self.subTest(cmd=name):
                self.assertEqual(self.cmd(b"z" + name + b"\0"), b"UNKNOWN COMMAND\0")
                self.assertEqual(self.cmd(b"n" + name + b"\n"), b"UNKNOWN COMMAND\n")
                self.assertEqual(self.cmd(b"z" + name + b" \0"), b": " + NOENT + b"\0")
                self.assertEqual(self.cmd(b"n" + name + b" \n"), b": " + NOENT + b"\n")
        self.assertEqual(self.cmd(b"SCAN\n"), b"UNKNOWN COMMAND\n")
        self.assertEqual(self.cmd(b"SCAN \n"), b": " + NOENT + b"\n")

    def test_argument_separator_is_any_one_byte(self):
        for sep in (b" ", b"\t", b"X"):
            self.assertEqual(self.cmd(b"zSCAN" + sep + self.eicar + b"\0"), self.found(self.eicar))
        # a second space belongs to the path: not absolute any more
        self.assertEqual(self.cmd(b"zSCAN  " + self.eicar + b"\0"),
                         b" " + self.eicar +
                         b": File path check failure: Relative paths are not supported. ERROR\0")
        self.assertEqual(self.cmd(b"zSCAN " + self.eicar + b" \0"),
                         self.eicar + b" : " + NOENT + b"\0")

    def test_nonexistent_path(self):
        missing = os.path.join(self.dir, "missing").encode()
        for name in (b"SCAN", b"CONTSCAN", b"MULTISCAN", b"ALLMATCHSCAN"):
            for prefix, term in FRAMES[:2]:
                self.assertEqual(self.cmd(prefix + name + b" " + missing + term),
                                 missing + b": " + NOENT + term)
        self.assertEqual(self.cmd(b"SCAN " + missing + b"\n"), missing + b": " + NOENT + b"\n")
        self.assertEqual(self.cmd(b"zSCAN /x\xe9\xe8\0"), b"/x\xe9\xe8: " + NOENT + b"\0")

    def test_path_echo(self):
        self.assertEqual(self.cmd(b"zCONTSCAN " + self.cleandir + b"//\0"),
                         self.cleandir + b": OK\0")
        dotted = self.inf + b"/../eicar.com"
        self.assertEqual(self.cmd(b"zSCAN " + dotted + b"\0"), self.found(dotted))
        self.assertEqual(self.cmd(b"zCONTSCAN " + self.inf + b"/sub/\0"),
                         self.found(self.inf + b"/sub/deep.com"))

    def test_unprefixed_is_one_packet(self):
        # no terminator needed, trailing CR/LF chomped, a NUL ends it
        self.assertEqual(self.cmd(b"PING"), b"PONG\n")
        self.assertEqual(self.cmd(b"PING\r\n"), b"PONG\n")
        self.assertEqual(self.cmd(b"PING\0junk"), b"PONG\n")
        self.assertEqual(self.cmd(b"SCAN " + self.eicar), self.found(self.eicar, b"\n"))
        # split over two packets: the first is the command
        s = self.daemon.connect()
        s.sendall(b"PI")
        self.assertEqual(recv_all(s), b"UNKNOWN COMMAND\n")
        s.close()
        # z/n commands may be split anywhere
        for first, second, want in ((b"zPI", b"NG\0", b"PONG\0"),
                                    (b"nVERS", b"ION\n", VERSION + b"\n"),
                                    (b"z", b"SCAN " + self.eicar + b"\0", self.found(self.eicar))):
            s = self.daemon.connect()
            s.sendall(first)
            time.sleep(0.05)
            s.sendall(second)
            self.assertEqual(recv_all(s), want)
            s.close()

    def test_one_command_per_connection(self):
        self.assertEqual(self.cmd(b"zPING\0zPING\0"), b"PONG\0")
        self.assertEqual(self.cmd(b"PING\nPING\n"), b"PONG\n")
        self.assertEqual(self.cmd(b"zVERSION\0zSHUTDOWN\0"), VERSION + b"\0")

    def test_command_length_limit(self):
        # clamd's buffer: 4104 bytes with prefix and terminator
        name = b"/" + b"a" * (4104 - len(b"zSCAN \0") - 1)
        self.assertEqual(self.cmd(b"zSCAN " + name + b"\0"),
                         name + b": File path check failure: File name too long. ERROR\0")
        # one byte more: dropped without a reply
        self.assertEqual(self.cmd(b"zSCAN " + name + b"a\0"), b"")
        self.assertEqual(self.cmd(b"nSCAN " + name + b"\r\n"), b"")
        s = self.daemon.connect()
        s.sendall(b"z" + b"A" * 5000)
        self.assertEqual(recv_all(s), b"")
        s.close()

    # ---- scan results -----------------------------------------------------------

    def test_directory_scan_modes(self):
        everything = sorted(self.found(p) for p in self.inf_files)
        # SCAN stops at the first infected file
        got = lines(self.cmd(b"zSCAN " + self.inf + b"\0"))
        self.assertEqual(len(got), 1, got)
        self.assertIn(got[0] + b"\0", everything)
        # CONTSCAN and MULTISCAN report every one, and no OK line
        for name in (b"CONTSCAN", b"MULTISCAN"):
            got = self.cmd(b"z" + name + b" " + self.inf + b"\0")
            self.assertEqual(sorted(l + b"\0" for l in lines(got)), everything, name)
        # ALLMATCHSCAN stops at the first infected file too
        got = lines(self.cmd(b"zALLMATCHSCAN " + self.inf + b"\0"))
        self.assertEqual(len(got), 1, got)
        self.assertIn(got[0] + b"\0", everything)

    def test_clean_and_empty(self):
        for name in (b"SCAN", b"CONTSCAN", b"MULTISCAN", b"ALLMATCHSCAN"):
            with self.subTest(cmd=name):
                self.assertEqual(self.cmd(b"z" + name + b" " + self.cleandir + b"\0"),
                                 self.cleandir + b": OK\0")
                self.assertEqual(self.cmd(b"z" + name + b" " + self.empty + b"\0"),
                                 self.empty + b": OK\0")
                # clamd sends nothing for MULTISCAN of an empty directory;
                # scanengined says OK (README)
                self.assertEqual(self.cmd(b"z" + name + b" " + self.emptydir + b"\0"),
                                 self.emptydir + b": OK\0")
                self.assertEqual(self.cmd(b"z" + name + b" " + self.big + b"\0"),
                                 self.big + b": OK\0")

    def test_special_file(self):
        # clamd adds a contradictory "<path>: OK" line; scanengined does not (README)
        for path in (self.fifo, b"/dev/null"):
            self.assertEqual(self.cmd(b"zSCAN " + path + b"\0"),
                             path + b": Not supported file type ERROR\0")

    def test_exclude_path(self):
        top = self.excl + b"/se-excluded"
        self.assertEqual(self.cmd(b"zSCAN " + top + b"\0"), top + b": Excluded\0")
        self.assertEqual(self.cmd(b"zSCAN " + top + b"/e.com\0"), top + b"/e.com: Excluded\0")
        want = sorted([top + b": Excluded", top + b".com: Excluded",
                       self.excl_found + b": " + SIG + b" FOUND"])
        for name in (b"CONTSCAN", b"SCAN"):
            got = sorted(lines(self.cmd(b"z" + name + b" " + self.excl + b"\0")))
            if name == b"SCAN":
                # stops at the infected file; exclusions before it are listed
                self.assertIn(self.excl_found + b": " + SIG + b" FOUND", got)
                self.assertTrue(set(got) <= set(want), got)
            else:
                self.assertEqual(got, want)
        # MULTISCAN skips excluded entries silently
        self.assertEqual(self.cmd(b"zMULTISCAN " + self.excl + b"\0"), self.found(self.excl_found))

    def test_symlinks_not_followed(self):
        # clamd says "OK" without scanning; scanengined says why (README)
        for name in (b"SCAN", b"CONTSCAN", b"MULTISCAN", b"ALLMATCHSCAN"):
            self.assertEqual(self.cmd(b"z" + name + b" " + self.link + b"\0"),
                             self.link + b": Excluded (symbolic link not followed)\0")
        self.assertEqual(self.cmd(b"zCONTSCAN " + self.dirlink + b"\0"),
                         self.dirlink + b": Excluded (symbolic link not followed)\0")
        # inside a directory: skipped silently
        self.assertEqual(self.cmd(b"zCONTSCAN " + self.withlinks + b"\0"),
                         self.withlinks + b": OK\0")

    # ---- descriptors ------------------------------------------------------------

    def test_fildes_without_descriptor(self):
        self.assertEqual(self.cmd(b"zFILDES\0X"), b"No file descriptor received. ERROR\0")
        self.assertEqual(self.cmd(b"nFILDES\nX"), b"No file descriptor received. ERROR\n")
        s = self.daemon.connect()
        s.sendall(b"zFILDES\0")
        time.sleep(0.05)
        s.sendall(b"X")
        self.assertEqual(recv_all(s), b"No file descriptor received. ERROR\0")
        s.close()
        # two descriptors in one message are refused the same way
        fds = [os.open(self.eicar, os.O_RDONLY), os.open(self.clean, os.O_RDONLY)]
        try:
            s = self.daemon.connect()
            s.sendall(b"zFILDES\0")
            socket.send_fds(s, [b"\0"], fds)
            self.assertEqual(recv_all(s), b"No file descriptor received. ERROR\0")
            s.close()
        finally:
            for fd in fds:
                os.close(fd)

    def test_descriptor_without_fildes(self):
        fd = os.open(self.clean, os.O_RDONLY)
        try:
            # on a scan command: refused, the command still runs
            got = lines(self.cmd(b"zSCAN " + self.clean + b"\0", fds=[fd]))
            self.assertEqual(sorted(got), sorted([STRAY_FD, GENERIC, self.clean + b": OK"]))
            self.assertLess(got.index(STRAY_FD), got.index(GENERIC))
            # on FILDES itself: the descriptor must come with the byte after
            # it; an immediate error, not a wait
            t = time.time()
            self.assertEqual(self.cmd(b"zFILDES\0", fds=[fd]), STRAY_FD + b"\0" + GENERIC + b"\0")
            self.assertLess(time.time() - t, 1.5)
            s = self.daemon.connect()
            s.sendall(b"zIDSESSION\0")
            socket.send_fds(s, [b"zFILDES\0"], [fd])
            self.assertEqual(recv_all(s), b"1: " + STRAY_FD + b"\0" + b"1: " + GENERIC + b"\0")
            s.close()
            # in a session the complaint has the next id
            self.assertEqual(self.cmd(b"zIDSESSION\0", fds=[fd]), b"1: " + STRAY_FD + b"\0")
            s = self.daemon.connect()
            s.sendall(b"zIDSESSION\0")
            socket.send_fds(s, [b"zPING\0"], [fd])
            self.assertEqual(recv_all(s), b"1: PONG\0" + b"2: " + STRAY_FD + b"\0")
            s.close()
            # with a packet that is no command: just that
            self.assertEqual(self.cmd(b"X", fds=[fd]), b"UNKNOWN COMMAND\n")
            # INSTREAM ignores it, as clamd does
            self.assertEqual(self.cmd(b"zINSTREAM\0\0\0\0\0", fds=[fd]), b"stream: OK\0")
        finally:
            os.close(fd)

    # ---- INSTREAM limits (StreamMaxLength 1K) -----------------------------------

    def test_instream_size_limit(self):
        chunk = lambda n: struct.pack("!L", n) + b"a" * n  # noqa: E731
        cases = (([1024], b"stream: OK\0"), ([1000, 24], b"stream: OK\0"),
                 ([512, 512], b"stream: OK\0"), ([1025], None), ([600, 600], None),
                 ([1024, 1], None))
        for sizes, want in cases:
            with self.subTest(sizes=sizes):
                data = b"zINSTREAM\0" + b"".join(chunk(n) for n in sizes) + b"\0\0\0\0"
                self.assertEqual(self.cmd(data),
                                 want or b"INSTREAM size limit exceeded. ERROR\0")
        # an infected stream within the limit
        self.assertEqual(self.cmd(instream_bytes(EICAR)), b"stream: " + SIG + b" FOUND\0")

    def test_instream_huge_chunk_closes_at_once(self):
        for prefix, term in FRAMES[:2]:
            s = self.daemon.connect()
            # the header alone: no data follows, the client keeps its side open
            s.sendall(prefix + b"INSTREAM" + term + b"\xff\xff\xff\xff")
            self.assertEqual(recv_all(s), b"INSTREAM size limit exceeded. ERROR" + term)
            s.close()

    # ---- IDSESSION ---------------------------------------------------------------

    def test_idsession_ids_and_prefixes(self):
        s = self.daemon.connect()
        s.sendall(b"zIDSESSION\0zPING\0zVERSION\0zSCAN " + self.eicar + b"\0zSCAN " +
                  self.clean + b"\0" + instream_bytes(EICAR) + b"zSTATS\0zVERSIONCOMMANDS\0")
        send_fildes(s, self.eicar)
        s.sendall(b"zSCAN " + self.inf + b"/../missing\0zEND\0")
        got = session_replies(recv_all(s))
        s.close()
        self.assertEqual(sorted(got), list(range(1, 10)))
        self.assertTrue(all(len(v) == 1 for v in got.values()), got)
        got = {k: v[0] for k, v in got.items()}
        self.assertEqual(got[1], b"PONG")
        self.assertEqual(got[2], VERSION)
        self.assertEqual(got[3], self.eicar + b": " + SIG + b" FOUND")
        self.assertEqual(got[4], self.clean + b": OK")
        self.assertEqual(got[5], b"stream: " + SIG + b" FOUND")
        self.assertIsNotNone(STATS_RE.fullmatch(got[6]), got[6])
        self.assertEqual(got[7], VERSION + b"| COMMANDS: " + CLAMD_COMMANDS + EXTENSIONS)
        self.assertEqual(FD_REPLY.fullmatch(got[8]).group(1), SIG + b" FOUND")
        self.assertEqual(got[9], self.inf + b"/../missing: " + NOENT)

    def test_idsession_framing_per_command(self):
        self.assertEqual(self.cmd(b"nIDSESSION\nnPING\nzPING\0nEND\n"), b"1: PONG\n2: PONG\0")
        got = self.cmd(b"nIDSESSION\nnSCAN " + self.eicar + b"\nnVERSION\nnEND\n")
        self.assertEqual(session_replies(got, b"\n"),
                         {1: [self.eicar + b": " + SIG + b" FOUND"], 2: [VERSION]})

    def test_idsession_invalid_commands(self):
        for name in (b"CONTSCAN " + self.clean, b"MULTISCAN " + self.clean,
                     b"ALLMATCHSCAN " + self.clean, b"RELOAD", b"SHUTDOWN", b"QUIT", b"IDSESSION",
                     b"DETSTATS", b"STATUS", b"FOO", b"ping", b"SCAN"):
            with self.subTest(name=name):
                s = self.daemon.connect()
                # the session ends there: later commands are not read
                s.sendall(b"zIDSESSION\0zPING\0z" + name + b"\0zPING\0")
                self.assertEqual(recv_all(s), b"1: PONG\0002: " + NOT_IN_SESSION + b"\0")
                s.close()
        self.assertEqual(self.cmd(b"nIDSESSION\nnCONTSCAN /x\n"), b"1: " + NOT_IN_SESSION + b"\n")

    def test_idsession_unprefixed_command(self):
        for start, term in ((b"zIDSESSION\0", b"\0"), (b"nIDSESSION\n", b"\n")):
            s = self.daemon.connect()
            s.sendall(start)
            time.sleep(0.05)
            s.sendall(b"PING\n")
            # answered in the session's framing
            self.assertEqual(recv_all(s), b"1: " + ONLY_PREFIXED + term + b"1: " + GENERIC + term)
            s.close()

    def test_idsession_end(self):
        self.assertEqual(self.cmd(b"zIDSESSION\0zEND\0"), b"")
        # nothing after END is read
        self.assertEqual(self.cmd(b"zIDSESSION\0zPING\0zEND\0zPING\0"), b"1: PONG\0")
        # END waits for the pending replies, then closes
        s = self.daemon.connect()
        s.sendall(b"zIDSESSION\0zSCAN " + self.big + b"\0zSCAN " + self.inf + b"/e0.com\0zEND\0")
        self.assertEqual(session_replies(recv_all(s)),
                         {1: [self.big + b": OK"], 2: [self.inf + b"/e0.com: " + SIG + b" FOUND"]})
        s.close()

    def test_idsession_errors_end_it(self):
        self.assertEqual(self.cmd(b"zIDSESSION\0zFILDES\0X"),
                         b"1: No file descriptor received. ERROR\0")
        s = self.daemon.connect()
        s.sendall(b"zIDSESSION\0zPING\0zINSTREAM\0\xff\xff\xff\xff")
        self.assertEqual(recv_all(s), b"1: PONG\0002: INSTREAM size limit exceeded. ERROR\0")
        s.close()

    # ---- timeouts ---------------------------------------------------------------

    def test_command_read_timeout(self):
        """CommandReadTimeout 2: silence, a trickle without a terminator and
        a FILDES without its byte all end the same way."""
        socks = [self.daemon.connect(timeout=20) for _ in range(3)]
        t0 = time.time()
        socks[1].sendall(b"zPI")
        socks[2].sendall(b"zFILDES\0")
        time.sleep(1)
        socks[1].sendall(b"N")
        results = []
        for s in socks:
            results.append((recv_all(s), time.time() - t0))
            s.close()
        for data, elapsed in results:
            self.assertEqual(data, b"COMMAND READ TIMED OUT\n")
            self.assertGreaterEqual(elapsed, 1.9)
            self.assertLess(elapsed, 2 + 2 * SLOW)

    # ---- access control ---------------------------------------------------------

    def test_admin_commands_refused_for_unprivileged_peer(self):
        cmds = [b"zRELOAD\0", b"zSHUTDOWN\0", b"zQUIT\0", b"zSTATUS\0", b"RELOAD\n", b"nSHUTDOWN\n",
                b"zPING\0", b"zSCAN " + self.eicar + b"\0", b"zVERSION\0"]
        loads = self.daemon.status()["engine_loads"]
        got = run_as(self.daemon.sock, cmds)
        denied = b": Permission denied (root or AdminGroup required). ERROR"
        self.assertEqual(got, [b"RELOAD" + denied + b"\0", b"SHUTDOWN" + denied + b"\0",
                               b"QUIT" + denied + b"\0", b"STATUS" + denied + b"\0",
                               b"RELOAD" + denied + b"\n", b"SHUTDOWN" + denied + b"\n",
                               b"PONG\0", self.found(self.eicar), VERSION + b"\0"])
        uid = pwd.getpwnam("nobody").pw_uid
        for name in ("RELOAD", "SHUTDOWN", "QUIT", "STATUS"):
            self.daemon.wait_for(lambda: "refused %s from uid %d" % (name, uid)
                                 in self.daemon.read_log(), what="the refusal in the log")
        time.sleep(0.2)
        self.assertEqual(self.daemon.status()["engine_loads"], loads)
        self.assertIsNone(self.daemon.proc.poll())


class LoadTest(DaemonTestCase):
    """Default limits; many requests, many connections, vanishing clients."""

    @classmethod
    def setUpClass(cls):
        d = cls.dir = tmpdir()
        cls.addClassCleanup(shutil.rmtree, d, True)
        cls.eicar = write(os.path.join(d, "eicar.com"), EICAR)
        cls.clean = write(os.path.join(d, "clean.txt"), b"nothing to see\n")
        cls.big = os.path.join(d, "big").encode()
        for i in range(400):
            write(os.path.join(d, "big", "f%03d.bin" % i), os.urandom(8192))
        super().setUpClass()

    def wait_settled(self):
        """Nothing queued or running, only the asking connection open, and
        every job counted exactly once."""
        def settled():
            st = self.daemon.status()
            return (st["queue"] == 0 and st["workers_busy"] == 0 and st["connections"] == 1 and
                    st["jobs"] == st["clean"] + st["found"] + st["errors"]) and st
        st = self.daemon.wait_for(settled, timeout=30, what="the daemon to settle")
        self.assertEqual(st["workers_alive"], 2)
        self.assertEqual(st["worker_crashes"], 0)
        return st

    def fildes_session(self, n, read_while_writing):
        s = self.daemon.connect(timeout=120)
        received = []
        reader = threading.Thread(target=lambda: received.append(recv_all(s)))
        if read_while_writing:
            reader.start()
        expected = {}
        s.sendall(b"zIDSESSION\0")
        for i in range(1, n + 1):
            path = self.eicar if i % 3 == 0 else self.clean
            expected[i] = SIG + b" FOUND" if i % 3 == 0 else b"OK"
            send_fildes(s, path)
        s.sendall(b"zEND\0")
        if read_while_writing:
            reader.join(120 * SLOW)
            self.assertFalse(reader.is_alive())
        else:
            received.append(recv_all(s))
        s.close()
        data = received[0]
        ids = Counter()
        for line in lines(data):
            m = re.fullmatch(rb"(\d+): fd\[\d+\]: (.*)", line)
            self.assertIsNotNone(m, line)
            i = int(m.group(1))
            ids[i] += 1
            self.assertEqual(m.group(2), expected.get(i), line)
        self.assertEqual(ids, Counter(range(1, n + 1)))

    def test_control_commands_answered_while_the_queue_is_full(self):
        """With the workers stopped, 110 INSTREAMs fill the queue
        (MaxQueue 100): a further scan waits for room, but PING, STATUS
        and STATS are answered at once (an overload must be visible)."""
        pids = self.daemon.worker_pids()
        socks = []
        os.kill(pids[0], signal.SIGSTOP)
        os.kill(pids[1], signal.SIGSTOP)
        try:
            for _ in range(110):
                s = self.daemon.connect(timeout=60)
                s.sendall(instream_bytes(b"queued %d" % len(socks)))
                socks.append(s)
            self.daemon.wait_for(lambda: self.daemon.status()["queue"] >= 100, timeout=10,
                                 what="the queue full")
            waiting = self.daemon.connect(timeout=60)
            waiting.sendall(b"zSCAN %s\0" % self.clean)
            t0 = time.monotonic()
            self.assertEqual(self.daemon.command(b"zPING\0", timeout=5), b"PONG\0")
            self.assertGreaterEqual(self.daemon.status()["queue"], 100)
            self.assertIn(b"QUEUE:", self.daemon.command(b"zSTATS\0", timeout=5))
            self.assertLess(time.monotonic() - t0, 3 * SLOW)
            waiting.settimeout(1)
            with self.assertRaises(socket.timeout):
                waiting.recv(100)  # a scan waits for room in the queue
        finally:
            os.kill(pids[0], signal.SIGCONT)
            os.kill(pids[1], signal.SIGCONT)
        waiting.settimeout(60)
        self.assertEqual(recv_all(waiting), b"%s: OK\0" % self.clean)
        for s in socks:
            self.assertEqual(recv_all(s), b"stream: OK\0")
            s.close()
        waiting.close()
        self.wait_settled()

    def test_1000_fildes_in_one_session_reading_while_writing(self):
        before = self.daemon.status()["jobs"]
        self.fildes_session(1000, read_while_writing=True)
        self.assertEqual(self.wait_settled()["jobs"] - before, 1000)

    def test_1000_fildes_in_one_session_writing_all_first(self):
        before = self.daemon.status()["jobs"]
        self.fildes_session(1000, read_while_writing=False)
        self.assertEqual(self.wait_settled()["jobs"] - before, 1000)

    def test_250_idle_connections_and_reload(self):
        idle = []
        try:
            for _ in range(250):
                # a blocking connect waits while the listen backlog is full
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                idle.append(s)
                s.connect(self.daemon.sock)
                s.settimeout(60 * SLOW)
            self.daemon.wait_for(lambda: self.daemon.status()["connections"] == 251,
                                 what="250 idle connections accepted")
            loads = self.daemon.status()["engine_loads"]
            self.assertEqual(self.daemon.command(b"zRELOAD\0"), b"RELOADING\0")
            self.daemon.wait_for(lambda: self.daemon.status()["engine_loads"] == loads + 1,
                                 timeout=30, what="the reload")
            self.daemon.wait_for(lambda: len(self.daemon.status()["engines"]) == 1,
                                 timeout=30, what="the old generation to retire")
            # every idle connection is still served, by the new engine
            for i, s in enumerate(idle):
                s.sendall(b"zPING\0" if i % 2 else b"zSCAN " + self.eicar + b"\0")
            for i, s in enumerate(idle):
                self.assertEqual(recv_all(s), b"PONG\0" if i % 2 else
                                 self.eicar + b": " + SIG + b" FOUND\0")
        finally:
            for s in idle:
                s.close()
        self.wait_settled()

    def test_clients_disconnecting_mid_scan(self):
        payload = os.urandom(12 << 20)
        # INSTREAM cut off in the middle of the data
        s = self.daemon.connect()
        s.sendall(b"zINSTREAM\0" + struct.pack("!L", len(payload)) + payload[:5 << 20])
        s.close()
        # a whole stream, gone before the verdict
        s = self.daemon.connect()
        s.sendall(instream_bytes(payload, chunk=1 << 20))
        s.close()
        # path scans of a big directory, gone at once
        for name in (b"SCAN", b"CONTSCAN", b"MULTISCAN", b"ALLMATCHSCAN"):
            s = self.daemon.connect()
            s.sendall(b"z" + name + b" " + self.big + b"\0")
            s.close()
        # a session with pending descriptors, gone without END
        s = self.daemon.connect()
        s.sendall(b"zIDSESSION\0")
        for _ in range(50):
            send_fildes(s, self.clean)
        s.close()
        # half a command
        s = self.daemon.connect()
        s.sendall(b"zSCAN " + self.big)
        s.close()
        self.assertEqual(self.daemon.command(b"zSCAN " + self.eicar + b"\0"),
                         self.eicar + b": " + SIG + b" FOUND\0")
        self.wait_settled()
        # and a full scan of the same directory still works
        self.assertEqual(self.daemon.command(b"zCONTSCAN " + self.big + b"\0", timeout=60),
                         self.big + b": OK\0")
        self.wait_settled()

    def test_instream_huge_chunk_default_limit(self):
        s = self.daemon.connect()
        s.sendall(b"zINSTREAM\0\xff\xff\xff\xff")
        self.assertEqual(recv_all(s), b"INSTREAM size limit exceeded. ERROR\0")
        s.close()


class FollowSymlinksTest(DaemonTestCase):
    conf = {"FollowFileSymlinks": "yes", "FollowDirectorySymlinks": "yes"}

    def test_symlinks_followed(self):
        d = tmpdir()
        try:
            eicar = write(os.path.join(d, "eicar.com"), EICAR)
            link = os.path.join(d, "link").encode()
            os.symlink(eicar, link)
            sub = os.path.join(d, "sub").encode()
            write(os.path.join(d, "sub", "ok.txt"), b"ok\n")
            os.symlink(eicar, os.path.join(sub, b"l.com"))
            dirlink = os.path.join(d, "dirlink").encode()
            os.symlink(sub, dirlink)
            for name in (b"SCAN", b"CONTSCAN", b"MULTISCAN", b"ALLMATCHSCAN"):
                self.assertEqual(self.daemon.command(b"z" + name + b" " + link + b"\0"),
                                 link + b": " + SIG + b" FOUND\0")
            self.assertEqual(self.daemon.command(b"zCONTSCAN " + sub + b"\0"),
                             sub + b"/l.com: " + SIG + b" FOUND\0")
            self.assertEqual(self.daemon.command(b"zCONTSCAN " + dirlink + b"\0"),
                             dirlink + b"/l.com: " + SIG + b" FOUND\0")
        finally:
            shutil.rmtree(d)


class AllMatchTest(DaemonTestCase):
    """A definitions set where EICAR matches two signatures."""

    @classmethod
    def setUpClass(cls):
        d = cls.dir = tmpdir()
        cls.addClassCleanup(shutil.rmtree, d, True)
        cls.eicar = write(os.path.join(d, "eicar.com"), EICAR)
        cls.inf = os.path.join(d, "inf").encode()
        cls.inf_files = [write(os.path.join(d, "inf", "e%d.com" % i), EICAR) for i in range(2)]
        cls.daemon = Daemon(workers=2)
        cls.addClassCleanup(cls.daemon.cleanup)  # also when start() fails
        with open(os.path.join(cls.daemon.defs, "eicar-md5.hdb"), "w") as fh:
            fh.write("%s:%d:Eicar-MD5-Hash\n" % (hashlib.md5(EICAR).hexdigest(), len(EICAR)))
        os.chmod(os.path.join(cls.daemon.defs, "eicar-md5.hdb"), 0o644)
        cls.daemon.start()

    SIGS = [b"Eicar-MD5-Hash.UNOFFICIAL", SIG]

    def test_allmatchscan_lists_every_signature(self):
        self.assertEqual(self.daemon.status()["definitions"]["signatures"], 3)
        for prefix, term in FRAMES[:2]:
            got = lines(self.daemon.command(prefix + b"ALLMATCHSCAN " + self.eicar + term), term)
            self.assertEqual(sorted(got), sorted(self.eicar + b": " + s + b" FOUND"
                                                 for s in self.SIGS))

    def test_other_commands_report_one(self):
        for name in (b"SCAN", b"CONTSCAN", b"MULTISCAN"):
            got = lines(self.daemon.command(b"z" + name + b" " + self.eicar + b"\0"))
            self.assertEqual(len(got), 1, got)
            self.assertIn(got[0], [self.eicar + b": " + s + b" FOUND" for s in self.SIGS])

    def test_allmatchscan_directory_stops_after_first_file(self):
        got = lines(self.daemon.command(b"zALLMATCHSCAN " + self.inf + b"\0"))
        self.assertEqual(len(got), 2, got)
        path = got[0].split(b": ")[0]
        self.assertIn(path, self.inf_files)
        self.assertEqual(sorted(got), sorted(path + b": " + s + b" FOUND" for s in self.SIGS))


class ShutdownTest(unittest.TestCase):
    """SHUTDOWN and QUIT: no reply, the daemon exits 0 and removes its
    socket and pid file."""

    def test_shutdown_and_quit_every_framing(self):
        for data in (b"zSHUTDOWN\0", b"nSHUTDOWN\n", b"SHUTDOWN\n", b"zQUIT\0", b"QUIT"):
            with self.subTest(data=data):
                d = Daemon(workers=1)
                try:
                    d.start()
                    self.assertTrue(os.path.exists(d.pidfile) and os.path.exists(d.sock))
                    self.assertEqual(d.command(data), b"")
                    self.assertEqual(d.proc.wait(30 * SLOW), 0)
                    self.assertFalse(os.path.exists(d.sock))
                    self.assertFalse(os.path.exists(d.pidfile))
                    d.stop()
                finally:
                    d.cleanup()


class AdminGroupTest(unittest.TestCase):
    """With AdminGroup, its members (primary or supplementary group) may use
    the admin commands; others still may not."""

    def test_admin_group_members_allowed(self):
        group = grp.getgrnam("adm")
        d = Daemon(conf={"AdminGroup": group.gr_name, "LocalSocketMode": "666"}, workers=1)
        try:
            d.start()
            denied = b"RELOAD: Permission denied (root or AdminGroup required). ERROR\0"
            self.assertEqual(run_as(d.sock, [b"zRELOAD\0"]), [denied])
            loads = d.status()["engine_loads"]
            got = run_as(d.sock, [b"zRELOAD\0", b"zSTATUS\0"], extra_groups=[group.gr_gid])
            self.assertEqual(got[0], b"RELOADING\0")
            self.assertEqual(json.loads(got[1][:-1])["service"], "scanengined")
            d.wait_for(lambda: d.status()["engine_loads"] == loads + 1, timeout=30,
                       what="the reload")
            self.assertEqual(run_as(d.sock, [b"RELOAD\n"], group=group.gr_gid), [b"RELOADING\n"])
            self.assertEqual(run_as(d.sock, [b"zSHUTDOWN\0"], extra_groups=[group.gr_gid]), [b""])
            self.assertEqual(d.proc.wait(30 * SLOW), 0)
            self.assertFalse(os.path.exists(d.sock))
            d.stop()
        finally:
            d.cleanup()


if __name__ == "__main__":
    unittest.main()
