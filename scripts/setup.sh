#!/bin/sh
# Set up this machine for building, testing and running scanengine:
# install the Debian packages that are missing and create the scan account.
# Idempotent; run as root (make deps / make demo / make test call it).
set -eu

PKGS="gcc make pkg-config libclamav-dev libseccomp-dev libjson-c-dev libcmocka-dev libssl-dev libarchive-dev
clamav clamav-daemon clamdscan clamav-testfiles python3 python3-pyclamd
libclamav-client-perl gdb libmagic-dev openssl libcurl4-openssl-dev zlib1g-dev nginx
libcap2-bin util-linux"

if [ "$(id -u)" -ne 0 ]; then
	echo "setup: must run as root (installs packages, creates the scan user)" >&2
	exit 1
fi

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
if [ -n "$missing" ]; then
	echo "setup: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# The daemons these packages bring are not started: scanengine's tests
	# run clamd themselves on private sockets.
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

"$(dirname "$0")/create-user.sh" scanengine
