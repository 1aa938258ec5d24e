#!/bin/sh
# make demo: run scanengined on its bundled default definitions in a private
# temporary state directory, scan an infected and a clean sample through its
# socket, show the status, and stop it again.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
tmp=$(mktemp -d /tmp/scanengine-demo.XXXXXX)
chmod 755 "$tmp"
cleanup() {
	if [ -f "$tmp/scanengined.pid" ]; then
		"$build/scanctl" --socket "$tmp/scanengined.sock" shutdown >/dev/null 2>&1 || true
		sleep 1
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# The definitions are copied so the scan account can read them wherever the
# checkout lives.
mkdir -p "$tmp/defs"
cp "$top"/defs/default/* "$tmp/defs/"
chmod 755 "$tmp/defs"
chmod 644 "$tmp/defs"/*

cat >"$tmp/scanengined.conf" <<CONF
LocalSocket $tmp/scanengined.sock
PidFile $tmp/scanengined.pid
StateDirectory $tmp/state
DatabaseDirectory $tmp/defs
LogFile $tmp/scanengined.log
User scanengine
MaxThreads 2
CONF

mkdir -p "$tmp/samples"
# The EICAR test file, assembled here so this script is not itself a sample.
printf '%s%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-' 'ANTIVIRUS-TEST-FILE!$H+H*' \
	>"$tmp/samples/eicar.com"
echo "just an ordinary text file" >"$tmp/samples/clean.txt"
cp /usr/share/clamav-testfiles/clam.exe "$tmp/samples/" 2>/dev/null || true

echo "== starting scanengined (definitions: $top/defs/default)"
"$build/scanengined" --config-file "$tmp/scanengined.conf"
echo
echo "== scanctl scan (the service opens the files)"
"$build/scanctl" --socket "$tmp/scanengined.sock" scan "$tmp/samples/eicar.com" \
	"$tmp/samples/clean.txt" "$tmp/samples" || true
echo
echo "== scanctl scan --stream (contents sent over the socket)"
"$build/scanctl" --socket "$tmp/scanengined.sock" scan --stream \
	"$tmp/samples/eicar.com" "$tmp/samples/clean.txt" || true
echo
echo "== scanctl status"
"$build/scanctl" --socket "$tmp/scanengined.sock" status
echo
echo "== service log"
cat "$tmp/scanengined.log"
