"""Start-up failures: each is a one-line error naming the cause, a non-zero
exit, and nothing half-started left behind (no socket, no pid file, no
engine or worker process)."""

import os
import socket
import subprocess
import time
import unittest

from harness import SCANENGINED, SLOW, Daemon, make_defs


def our_processes(marker):
    """pids whose command line mentions marker (the test's directory)."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as fh:
                if marker.encode() in fh.read():
                    pids.append(int(p))
        except OSError:
            pass
    return pids


def engine_processes():
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % p) as fh:
                if fh.read().strip() in ("scanengine-zyg", "scanengine-wrk"):
                    pids.append(int(p))
        except OSError:
            pass
    return pids


class StartupFailureTest(unittest.TestCase):
    def setUp(self):
        self.d = Daemon()
        self.others = []
        self.engines_before = set(engine_processes())

    def tearDown(self):
        for o in self.others:
            try:
                o.stop()
            finally:
                o.cleanup()
        self.d.cleanup()

    def start_daemonized(self):
        """Start in the background the way an init script would; the
        command's exit status and stderr tell how the start went."""
        self.d.write_conf()
        return subprocess.run([SCANENGINED, "--config-file", self.d.conf_path],
                              capture_output=True, text=True, timeout=60 * SLOW)

    def assert_failed_cleanly(self, r, status, *needles, socket_left=False):
        self.assertEqual(r.returncode, status, r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, "want one line, got: %r" % r.stderr)
        self.assertTrue(lines[0].startswith("scanengined: "), lines[0])
        for n in needles:
            self.assertIn(n, lines[0])
        self.assertEqual(r.stdout, "")
        if not socket_left:
            self.assertFalse(os.path.exists(self.d.sock), "socket left behind")
        self.assertFalse(os.path.exists(self.d.pidfile), "pid file left behind")
        time.sleep(0.2)
        self.assertEqual(our_processes(self.d.dir), [], "processes left behind")
        self.assertEqual(set(engine_processes()) - self.engines_before, set(),
                         "engine/worker processes left behind")

    def test_unknown_option(self):
        self.d.conf["NoSuchOption"] = "yes"
        r = self.start_daemonized()
        self.assert_failed_cleanly(r, 2, self.d.conf_path, "NoSuchOption")

    def test_bad_value(self):
        self.d.conf["MaxThreads"] = "many"
        r = self.start_daemonized()
        self.assert_failed_cleanly(r, 2, self.d.conf_path, "MaxThreads", "many")

    def test_missing_config_file(self):
        r = subprocess.run([SCANENGINED, "--config-file", "/nonexistent/scanengined.conf"],
                           capture_output=True, text=True)
        self.assert_failed_cleanly(r, 2, "/nonexistent/scanengined.conf", "No such file")

    def test_missing_definitions_directory(self):
        self.d.conf["DatabaseDirectory"] = os.path.join(self.d.dir, "no-such-defs")
        r = self.start_daemonized()
        self.assert_failed_cleanly(r, 1, "DatabaseDirectory", "no-such-defs", "No such file or directory")

    def test_unreadable_definitions(self):
        # root can read it, the scan user the engine runs as cannot
        bad = os.path.join(self.d.defs, "clamav.hdb")
        os.chmod(bad, 0o600)
        r = self.start_daemonized()
        self.assert_failed_cleanly(r, 1, bad, "Permission denied")

    def test_malformed_definitions_start_degraded(self):
        """Definitions that do not load are no configuration error: the
        service comes up, says so in one line, and reports fault 7 (see
        test_faults for the whole story)."""
        with open(os.path.join(self.d.defs, "broken.ndb"), "w") as fh:
            fh.write("this is not a signature\n")
        r = self.start_daemonized()
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("fault 7", lines[0])
        self.assertIn("broken.ndb", lines[0])
        with open(self.d.pidfile) as fh:
            pid = int(fh.read())
        self.assertEqual(self.d.command(b"zPING\0"), b"PONG\0")
        os.kill(pid, 15)
        deadline = time.time() + 20 * SLOW
        while os.path.exists("/proc/%d" % pid) and time.time() < deadline:
            time.sleep(0.05)
        self.assertFalse(os.path.exists(self.d.sock))

    def test_empty_definitions_directory(self):
        empty = make_defs(os.path.join(self.d.dir, "empty"), files=[], ndb_eicar=False)
        self.d.conf["DatabaseDirectory"] = empty
        r = self.start_daemonized()
        self.assert_failed_cleanly(r, 1, empty, "no regular files")

    def test_socket_in_use_by_another_process(self):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.d.sock)
        listener.listen(1)
        try:
            r = self.start_daemonized()
            self.assert_failed_cleanly(r, 1, self.d.sock, "in use by another process",
                                       socket_left=True)
            # the other process's socket is untouched and still works
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(self.d.sock)
            c.close()
        finally:
            listener.close()

    def test_stale_socket_is_replaced(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.d.sock)
        s.close()  # a socket file nobody listens on
        self.d.start()
        self.assertEqual(self.d.command(b"zPING\0"), b"PONG\0")
        self.d.stop()

    def test_second_instance_same_pidfile(self):
        first = Daemon()
        self.others.append(first)
        first.start()
        self.d.conf["PidFile"] = first.pidfile
        r = self.start_daemonized()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("another scanengined (pid %d) is already running" % first.proc.pid, r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1)
        self.assertFalse(os.path.exists(self.d.sock))
        # the first one is unharmed
        self.assertEqual(first.command(b"zPING\0"), b"PONG\0")
        with open(first.pidfile) as fh:
            self.assertEqual(int(fh.read()), first.proc.pid)

    def test_second_instance_same_socket(self):
        first = Daemon()
        self.others.append(first)
        first.start()
        self.d.conf["LocalSocket"] = first.sock
        r = self.start_daemonized()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("LocalSocket %s is in use by another process" % first.sock, r.stderr)
        self.assertFalse(os.path.exists(self.d.pidfile))
        self.assertEqual(first.command(b"zPING\0"), b"PONG\0")

    def test_daemonized_start_and_stop(self):
        """Without --foreground the command returns once the service
        answers, and the pid file names the running supervisor."""
        r = self.start_daemonized()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        with open(self.d.pidfile) as fh:
            pid = int(fh.read())
        self.assertEqual(self.d.command(b"zPING\0"), b"PONG\0")
        os.kill(pid, 15)
        deadline = time.time() + 20 * SLOW
        while os.path.exists("/proc/%d" % pid) and time.time() < deadline:
            time.sleep(0.05)
        self.assertFalse(os.path.exists("/proc/%d" % pid))
        self.assertFalse(os.path.exists(self.d.sock))
        self.assertFalse(os.path.exists(self.d.pidfile))

    def test_systemd_notification(self):
        """Type=notify: READY=1 once the engine is loaded and the socket
        answers, WATCHDOG=1 at half the asked interval, STOPPING=1."""
        path = os.path.join(self.d.dir, "notify")
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(path)
        ns.settimeout(30 * SLOW)
        self.d.env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}
        try:
            self.d.start()
            msgs = []
            while not any(m.startswith("READY=1") for m in msgs):
                msgs.append(ns.recv(4096).decode())
            ready = [m for m in msgs if m.startswith("READY=1")][0]
            self.assertIn("STATUS=2 signatures", ready)
            t0 = time.time()
            dogs = 0
            while time.time() - t0 < 1.5:
                if ns.recv(4096).decode() == "WATCHDOG=1":
                    dogs += 1
            self.assertGreaterEqual(dogs, 3)
            self.d.proc.send_signal(15)
            while ns.recv(4096).decode() != "STOPPING=1":
                pass
            self.d.stop()
        finally:
            ns.close()

    def test_check_config(self):
        self.d.write_conf()
        r = subprocess.run([SCANENGINED, "--config-file", self.d.conf_path, "--check-config"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("OK", r.stdout)


if __name__ == "__main__":
    unittest.main()
