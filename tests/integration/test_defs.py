"""Definitions: staged validation, atomic activation, rollback, the
builder, crash safety (issue 4), against the real Talos-signed test files
of the shared testdata directory and hostile sets made here, with the real
service running and `scanctl defs` as an administrator would use it."""

import base64
import glob
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import sys
import unittest

import cvdtool
from harness import EICAR, SCANCTL, SHARED, SLOW, Daemon, make_samples, tmpdir

STAGES = ("format", "integrity", "authenticity", "compatibility", "unpack", "test load", "canary")
# test-N.cvd: version N, this many signatures (sigtool --info)
OFFICIAL_SIGS = {1: 0, 2: 0, 3: 11, 4: 12, 5: 13, 6: 14}
EICAR_NDB = b"Eicar-Test-Signature:0:0:" + EICAR.hex().encode() + b"\n"


def scanctl_defs(d, *args, check=None, env=None, timeout=300):
    r = subprocess.run([SCANCTL, "--config-file", d.conf_path, "--json", "defs"] + list(args),
                       capture_output=True, text=True, timeout=timeout * SLOW,
                       env=dict(os.environ, **env) if env else None)
    if check is not None and r.returncode != check:
        raise AssertionError("scanctl defs %s exited %d (wanted %d):\n%s\n%s" %
                             (" ".join(args), r.returncode, check, r.stdout, r.stderr))
    return r


def as_json(r):
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise AssertionError("not JSON: %r / %r" % (r.stdout, r.stderr))


def alone(name, src_dir=SHARED):
    """A copy of a test file in a directory of its own (no .sign beside it)."""
    d = tmpdir()
    shutil.copy(os.path.join(src_dir, name), d)
    return os.path.join(d, name)


class DefsTestCase(unittest.TestCase):
    conf = None

    def setUp(self):
        self.d = Daemon(conf=self.conf)
        self.d.start()
        self.store = os.path.join(self.d.state, "defs")
        self.samples, self.eicar, self.clean = make_samples()
        self.d.wait_for(lambda: self.d.status().get("engine_generation"), timeout=60,
                        what="the first engine")

    def tearDown(self):
        self.d.finish()

    def current(self):
        return int(os.readlink(os.path.join(self.store, "current")).split("-")[1])

    def generation(self, n=None):
        """The listing entry of generation n (default: the active one)."""
        for g in as_json(scanctl_defs(self.d, "list", check=0)):
            if (n is None and g["current"]) or g["generation"] == n:
                return g
        raise AssertionError("no generation %s" % n)

    def database(self, name, gen=None):
        for db in self.generation(gen).get("databases", []):
            if db["name"] == name:
                return db
        return None

    def answers(self):
        """What the service says about EICAR and a clean file."""
        return (self.d.command(b"zSCAN " + self.eicar.encode() + b"\0", timeout=30),
                self.d.command(b"zSCAN " + self.clean.encode() + b"\0", timeout=30))

    def service_databases(self):
        return {db["name"]: db for db in self.d.status().get("definitions_databases", [])}

    def install(self, *files, check=0, force=None):
        args = ["install"] + (["--force", force] if force else []) + list(files)
        return as_json(scanctl_defs(self.d, *args, check=check))


class OfficialTest(DefsTestCase):
    """Point 1: test-1.cvd .. test-6.cvd in order, a downgrade, a rollback."""

    # every generation kept: STATUS lists them all, well past one protocol line
    conf = {"KeepGenerations": "10"}

    def test_install_in_order_downgrade_rollback(self):
        for n in range(1, 7):
            out = self.install(alone("test-%d.cvd" % n))
            self.assertTrue(out["installed"])
            self.assertEqual(out["service"]["engine_generation"], out["generation"])
            db = self.database("test")
            self.assertEqual((db["version"], db["signatures"], db["authentication"]),
                             (n, OFFICIAL_SIGS[n], "legacy"), db)
            self.assertEqual(self.service_databases()["test"]["version"], n)
        with open(os.path.join(self.store, "current", "manifest.json")) as fh:
            manifest = json.load(fh)
        self.assertEqual([(st["stage"], st["status"]) for st in manifest["validation"]],
                         [(name, "pass") for name in STAGES])
        self.assertTrue(all(isinstance(st["ms"], int) for st in manifest["validation"]))
        self.assertGreater(manifest["engine_kib"], 0)
        db = manifest["databases"][0]
        self.assertEqual((db["file"], db["flevel"], len(db["sha256"])), ("test.cvd", 81, 64), db)
        self.assertTrue(db["build_time"])
        self.assertIsInstance(db["test_load_ms"], int)
        self.assertIsInstance(db["engine_kib"], int)
        eicar_reply, clean_reply = self.answers()
        self.assertIn(b"FOUND", eicar_reply)
        active = self.current()
        # STATUS has outgrown one protocol line by now: it comes whole
        reply = self.d.command(b"zSTATUS\0")
        self.assertGreater(len(reply), 5120)
        st = json.loads(reply[:-1])
        self.assertEqual(len(st["definitions_store"]), 7)
        r = subprocess.run([SCANCTL, "--config-file", self.d.conf_path, "--json", "status"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["engine_generation"], active)

        out = self.install(alone("test-3.cvd"), check=1)
        self.assertFalse(out["installed"])
        self.assertEqual(out["validation"]["failed"], "compatibility")
        self.assertIn("downgrade", out["validation"]["reason"])
        self.assertEqual(self.current(), active)
        self.assertEqual(self.service_databases()["test"]["version"], 6)

        out = as_json(scanctl_defs(self.d, "rollback", check=0))
        self.assertEqual(out["from"], active)
        self.assertEqual(self.current(), out["generation"])
        self.assertEqual(out["service"]["engine_generation"], out["generation"])
        self.assertEqual(self.service_databases()["test"]["version"], 5)
        self.assertEqual(self.database("test")["version"], 5)
        hist = as_json(scanctl_defs(self.d, "history", check=0))
        self.assertEqual([e["event"] for e in hist][-2:], ["refused", "rollback"])


class SignTest(DefsTestCase):
    """Point 2: .sign files against CertsDirectory."""

    def certs(self, *names):
        d = tmpdir()
        for n in names:
            shutil.copy(os.path.join(SHARED, n), d)
        return d

    def with_sign(self, n, sign_of=None):
        d = tmpdir()
        shutil.copy(os.path.join(SHARED, "test-%d.cvd" % n), d)
        shutil.copy(os.path.join(SHARED, "test-%d.cvd.sign" % (sign_of or n)),
                    os.path.join(d, "test-%d.cvd.sign" % n))
        return os.path.join(d, "test-%d.cvd" % n)

    def set_conf(self, **kv):
        self.d.conf.update(kv)
        self.d.write_conf()

    def test_sign_files(self):
        self.set_conf(CertsDirectory=self.certs("clamav-test-root.crt"))
        for n in range(1, 7):
            self.install(self.with_sign(n))
            db = self.database("test")
            self.assertEqual((db["version"], db["authentication"]), (n, "sign"))
            self.assertIn("ClamAV TEST CVD Signing Cert", db["signer"])
        active = self.current()

        # only the production root, and a .sign required
        self.set_conf(CertsDirectory=self.certs("clamav-root.crt"), RequireSignFile="yes")
        out = self.install(self.with_sign(6), check=1)
        self.assertEqual(out["validation"]["failed"], "authenticity")
        self.assertIn("unable to get local issuer certificate", out["validation"]["reason"])
        out = self.install(alone("test-6.cvd"), check=1)
        self.assertEqual(out["validation"]["failed"], "authenticity")

        # another file's .sign
        self.set_conf(CertsDirectory=self.certs("clamav-test-root.crt"), RequireSignFile="no")
        out = self.install(self.with_sign(6, sign_of=5), check=1)
        self.assertEqual(out["validation"]["failed"], "authenticity")
        self.assertIn("does not verify", out["validation"]["reason"])
        self.assertEqual(self.current(), active)


class HostileTest(DefsTestCase):
    """Point 3: each bad set refused at its stage, nothing changes, the set
    is in quarantine with its reason."""

    conf = {"AllowUnsignedDefinitions": "yes"}

    def assert_refused(self, path, stage, needle=None, within_ms=None):
        before_gen, before_answers = self.current(), self.answers()
        before_version = self.d.status().get("definitions_databases")
        out = self.install(path, check=1)
        v = out["validation"]
        self.assertEqual(v["failed"], stage, v)
        if needle:
            self.assertIn(needle, v["reason"])
        if within_ms:
            ms = [s["ms"] for s in v["stages"] if s["stage"] == stage][0]
            self.assertLess(ms, within_ms * SLOW, v)
        self.assertEqual(self.current(), before_gen)
        self.assertEqual(self.answers(), before_answers)
        self.assertEqual(self.d.status().get("definitions_databases"), before_version)
        with open(os.path.join(out["quarantine"], "reason.json")) as fh:
            reason = json.load(fh)
        self.assertEqual(reason["stage"], stage)
        self.assertTrue(reason["reason"])
        self.assertEqual(reason["offending"], v.get("offending"))
        self.assertTrue(glob.glob(os.path.join(out["quarantine"], "v", "set", "*")))
        return v

    def test_flipped_bytes(self):
        src = os.path.join(SHARED, "test-6.cvd")
        size = os.path.getsize(src)
        for off in (20, 37, 45, 120, 300, 511, 512, 700, size // 2, size - 1):
            out = tmpdir()
            path = cvdtool.flip(src, os.path.join(out, "test-6.cvd"), off)
            v = self.install(path, check=1)["validation"]
            self.assertIn(v["failed"], ("format", "integrity"), (off, v))

    def test_future_flevel(self):
        path = cvdtool.write_cud(os.path.join(tmpdir(), "org-1.cud"), "org", 1,
                                 [("org.ndb", EICAR_NDB)], flevel=999)
        self.assert_refused(path, "compatibility", "999")

    def test_html_instead_of_cvd(self):
        path = os.path.join(tmpdir(), "daily.cvd")
        with open(path, "w") as fh:
            fh.write("<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>"
                     "<body><h1>Service Unavailable</h1></body></html>\n")
        os.chmod(path, 0o644)
        self.assert_refused(path, "format", "HTML")

    def unpack_case(self, extra=None, raw_tail=b"", zipped=None, needle=None):
        path = cvdtool.write_cud(os.path.join(tmpdir(), "org-1.cud"), "org", 1,
                                 [("org.ndb", EICAR_NDB)], extra=extra, raw_tail=raw_tail,
                                 zipped=zipped)
        return self.assert_refused(path, "unpack", needle, within_ms=1000)

    def test_unpack_attacks(self):
        token = "scanengine-escape-%d" % os.getpid()
        parent = os.path.dirname(self.store)

        def entry(name, kind=tarfile.REGTYPE, link="", data=b"x\n"):
            ti = tarfile.TarInfo(name)
            ti.type = kind
            ti.linkname = link
            ti.mtime = 0
            if kind == tarfile.REGTYPE:
                ti.size = len(data)
                return ti, data
            if kind == tarfile.CHRTYPE:
                ti.devmajor, ti.devminor = 1, 3
            return ti, None

        v = self.unpack_case([entry("../%s.hdb" % token)], needle=token)
        self.assertIn(token, v["offending"])
        self.unpack_case([entry("/etc/%s.hdb" % token)], needle=token)
        self.unpack_case([entry("link.hdb", tarfile.SYMTYPE, "/etc/passwd")], needle="link.hdb")
        self.unpack_case([entry("null.hdb", tarfile.CHRTYPE)], needle="null.hdb")
        self.unpack_case(zipped=cvdtool.many_entries_payload("org", 100000),
                         needle="member 'f000000.hdb': not listed in the .info")
        self.unpack_case(raw_tail=cvdtool.bomb_tail(), needle="bomb.hdb")
        # nothing got out
        for d in ("/etc", "/tmp", parent, self.store, os.path.join(self.store, "quarantine")):
            self.assertEqual(glob.glob(os.path.join(d, token + "*")), [], d)

    def test_malformed_signature_line(self):
        path = cvdtool.write_cud(os.path.join(tmpdir(), "org-1.cud"), "org", 1,
                                 [("org.ndb", EICAR_NDB + b"Org.Broken:0:0:not-hex-at-all\n")])
        self.assert_refused(path, "test load", "org.cud")

    def test_signature_matching_every_elf(self):
        path = cvdtool.write_cud(os.path.join(tmpdir(), "org-1.cud"), "org", 1,
                                 [("org.ndb", EICAR_NDB + b"Org.Every.ELF:0:0:7f454c46\n")])
        v = self.assert_refused(path, "canary", "Org.Every.ELF")
        self.assertIn("system file", v["offending"])

    def test_forced_stage_is_recorded_and_root_only(self):
        path = cvdtool.write_cud(os.path.join(tmpdir(), "org-1.cud"), "org", 1,
                                 [("org.ndb", EICAR_NDB + b"Org.Every.ELF:0:0:7f454c46\n")])
        out = self.install(path, force="canary")
        self.assertTrue(out["installed"])
        self.assertEqual(self.generation()["forced"], ["canary"])
        hist = as_json(scanctl_defs(self.d, "history", check=0))
        self.assertEqual(hist[-1]["event"], "installed")
        self.assertIn("force", hist[-1])
        r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            SCANCTL, "--config-file", self.d.conf_path, "defs", "verify",
                            "--force", "canary", path], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--force is for root only", r.stderr)


class BuilderTest(DefsTestCase):
    """Point 4: scanctl defs build output loads in clamscan and verifies
    with openssl cms."""

    conf = {"AllowUnsignedDefinitions": "yes"}

    def test_build_clamscan_openssl_install(self):
        src = tmpdir()
        marker = b"scanengine builder marker " + os.urandom(6).hex().encode()
        with open(os.path.join(src, "org.ndb"), "wb") as fh:
            fh.write(b"Org.Marker:0:*:" + marker.hex().encode() + b"\n")
        sample = os.path.join(self.samples, "marker.txt")
        with open(sample, "wb") as fh:
            fh.write(marker)
        out_dir = tmpdir()
        out = os.path.join(out_dir, "org.cud")
        r = subprocess.run([SCANCTL, "--json", "defs", "build", "--name", "org", "--version", "3",
                            "--sign-cert", os.path.join(SHARED, "signing-test.crt"),
                            "--sign-key", os.path.join(SHARED, "signing-test.key"),
                            "--chain", os.path.join(SHARED, "intermediate-test.crt"),
                            "-o", out, os.path.join(src, "org.ndb")],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        built = json.loads(r.stdout)
        self.assertEqual((built["signatures"], built["signed"]), (1, True))

        r = subprocess.run(["clamscan", "--no-summary", "-d", out, sample, self.clean],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("marker.txt: Org.Marker.UNOFFICIAL FOUND", r.stdout)
        self.assertIn("clean.txt: OK", r.stdout)

        der = os.path.join(out_dir, "sig.der")
        with open(der, "wb") as fh:
            fh.write(base64.b64decode(cvdtool.sign_entries(out + ".sign")[0]))
        r = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER",
                            "-in", der, "-content", out, "-purpose", "any",
                            "-CAfile", os.path.join(SHARED, "clamav-test-root.crt"),
                            "-out", "/dev/null"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Verification successful", r.stderr)

        # and the service takes it, authenticated by its .sign
        certs = tmpdir()
        shutil.copy(os.path.join(SHARED, "clamav-test-root.crt"), certs)
        self.d.conf.update(CertsDirectory=certs, AllowUnsignedDefinitions="no")
        self.d.write_conf()
        self.install(out)
        self.assertEqual(self.database("org")["authentication"], "sign")
        self.assertEqual(self.d.command(b"zSCAN " + sample.encode() + b"\0"),
                         sample.encode() + b": Org.Marker.UNOFFICIAL FOUND\0")


class CrashSafetyTest(DefsTestCase):
    """Point 5: an install killed with SIGKILL at every step leaves a store
    whose current is a complete, valid generation; the next open cleans
    staging."""

    conf = {"AllowUnsignedDefinitions": "yes"}

    def assert_store_sound(self):
        cur = os.path.join(self.store, "current")
        gen = os.path.realpath(cur)
        self.assertTrue(os.path.isdir(gen), gen)
        with open(os.path.join(gen, "manifest.json")) as fh:
            m = json.load(fh)
        names = sorted(f for f in os.listdir(gen) if f != "manifest.json")
        self.assertEqual(sorted(f["name"] for f in m["files"]), names)
        for f in m["files"]:
            with open(os.path.join(gen, f["name"]), "rb") as fh:
                self.assertEqual(hashlib.sha256(fh.read()).hexdigest(), f["sha256"])

    def test_sigkill_at_every_step(self):
        points, n = [], 1
        while True:
            # a newer version each time, so every run takes the whole path
            path = cvdtool.write_cud(os.path.join(tmpdir(), "org-%d.cud" % n), "org", n,
                                     [("org.ndb", EICAR_NDB)])
            r = scanctl_defs(self.d, "install", path,
                             env={"SCANENGINE_CRASH_POINT": str(n),
                                  "SCANENGINE_CRASH_POINT_LOG": "1"})
            killed = r.returncode == -9
            self.assert_store_sound()
            # the next opener (here: scanctl defs list) cleans staging
            scanctl_defs(self.d, "list", check=0)
            self.assertEqual(os.listdir(os.path.join(self.store, "staging")), [])
            self.assertIn(b"FOUND", self.answers()[0])
            if not killed:
                break
            points.append([l for l in r.stderr.splitlines() if "SIGKILL" in l][-1])
            n += 1
        self.assertGreaterEqual(len(points), 20, points)
        print("\n  %d crash points: %s" % (len(points), "; ".join(p.split(": ", 1)[0].split("(")[-1].rstrip(")") for p in points)), file=sys.stderr)
        # and the service, restarted, starts on the current generation
        self.d.stop()
        self.d.start()
        self.assertIn(b"FOUND", self.answers()[0])

    def test_service_commit_killed(self):
        """The service commits a validated DatabaseDirectory set in a
        process of its own: killed in the middle of the import, it takes
        nothing else down, and the next start takes the set."""
        active = self.current()
        self.d.stop()
        marker = os.path.join(self.d.defs, "zz-local.ndb")
        with open(marker, "w") as fh:
            fh.write("Org.Local.Marker:0:*:%s\n" % os.urandom(8).hex())
        os.chmod(marker, 0o644)
        self.d.env = {"SCANENGINE_CRASH_POINT": "store.import_dir.copied"}
        self.d.start()
        last = self.d.wait_for(lambda: (self.d.status().get("definitions_last_validation") or {})
                               if not self.d.status()["definitions_validating"] else None,
                               timeout=60, what="the validation's end")
        self.assertEqual(last["result"], "error", last)
        self.assertIn("died of signal 9", last["reason"])
        self.assertIsNone(self.d.proc.poll())
        self.assertEqual(self.current(), active)
        self.assert_store_sound()
        self.assertEqual([w for w in os.listdir(os.path.join(self.store, "staging"))
                          if w.startswith("work-")], [])
        self.assertIn(b"FOUND", self.answers()[0])
        self.d.stop()
        self.d.env = None
        self.d.start()
        self.d.wait_for(lambda: self.current() != active and
                        self.d.status().get("engine_generation") == self.current(),
                        timeout=60, what="the new set, active and loaded")
        self.assertIn("zz-local.ndb", [db["file"] for db in self.generation()["databases"]])


if __name__ == "__main__":
    unittest.main()
