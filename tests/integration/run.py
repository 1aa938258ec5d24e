#!/usr/bin/python3
"""Run scanengine's integration tests against the daemon in $SCANENGINE_BUILD.

Usage: run.py [-k PATTERN] [MODULE...]   (modules are test_*.py names)
They need root (the daemon drops privileges to the scan user itself) and the
packages scripts/setup.sh installs."""

import argparse
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    # Debian's python3 has the client libraries under test (pyclamd).
    debian = "/usr/bin/python3"
    if os.path.realpath(sys.executable) != os.path.realpath(debian) and os.path.exists(debian):
        os.execv(debian, [debian] + sys.argv)
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", dest="pattern", action="append", help="only tests matching")
    ap.add_argument("-v", action="store_true")
    ap.add_argument("modules", nargs="*")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("integration tests must run as root")
    sys.path.insert(0, HERE)
    loader = unittest.TestLoader()
    if args.pattern:
        loader.testNamePatterns = ["*%s*" % p for p in args.pattern]
    if args.modules:
        suite = unittest.TestSuite(loader.loadTestsFromName(m.removesuffix(".py")) for m in args.modules)
    else:
        suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    result = unittest.TextTestRunner(verbosity=2, buffer=False).run(suite)
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
