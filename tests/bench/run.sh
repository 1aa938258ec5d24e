#!/bin/bash
# Run the scanengine benchmarks against Debian's clamd and print a summary.
#
#   tests/bench/run.sh BUILD_DIR [--clamd-only]
#
# BUILD_DIR holds scanengined (`make bench` passes "build"). The signature set
# (1,050,002 signatures) and the corpus (5,006 files, 130 MiB) are generated
# once into BUILD_DIR/bench-cache and reused. Must run as root (clamd runs
# with User root, scanengined drops to its scan user). Takes a few minutes.
#
# Exit status: 0 all benchmarks ran and the memory target is met, 1 a
# benchmark failed or missed its target, 2 usage or environment error.
set -u

here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3

if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
	echo "usage: $0 BUILD_DIR [--clamd-only]" >&2
	exit 2
fi
build=$1
shift
if [ "$(id -u)" != 0 ]; then
	echo "$0: the benchmarks start clamd and scanengined and must run as root" >&2
	exit 2
fi
for tool in /usr/sbin/clamd /usr/bin/clamdscan /usr/bin/clamscan; do
	if [ ! -x "$tool" ]; then
		echo "$0: $tool is missing (apt-get install clamav clamav-daemon clamdscan)" >&2
		exit 2
	fi
done

log=$(mktemp /tmp/scanengine-bench-log.XXXXXX)
trap 'rm -f "$log"' EXIT

status=0
run() { # NAME SCRIPT ARGS...: run one benchmark, time it, keep its output
	local name=$1 start rc
	shift
	echo "=== $name"
	start=$SECONDS
	# tee ignores Ctrl-C, so the benchmark can still report while it stops
	# its daemons
	"$py" "$@" 2>&1 | (trap '' INT; tee -a "$log")
	rc=${PIPESTATUS[0]}
	echo "RESULT time: $name took $((SECONDS - start)) s (exit status $rc)" >>"$log"
	case $rc in
	0) ;;
	130 | 143) echo "$0: interrupted" >&2; exit "$rc" ;;
	*) status=1 ;;
	esac
}

total=$SECONDS
run "scan throughput" "$here/bench_scan.py" --build "$build" "$@"
run "memory" "$here/bench_memory.py" --build "$build" "$@"
run "reload memory" "$here/bench_reload.py" --build "$build" "$@"
run "on-access" "$here/bench_onaccess.py" --build "$build" "$@"

echo
echo "=== summary"
grep '^RESULT ' "$log" | sed 's/^RESULT //'
echo "total: $((SECONDS - total)) s"
exit $status
