#!/bin/sh
# make install / make uninstall.
#   install.sh DESTDIR PREFIX BUILD
#   install.sh --uninstall DESTDIR PREFIX
# Installs the binaries, the bundled definitions, a default configuration
# (never overwriting an existing one), the ClamAV signing root, the
# systemd unit, the state directory, and creates the scan user. With a DESTDIR (packaging), the
# user is not created and systemd is not told.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = "--uninstall" ]; then
	dest=$2 prefix=$3
	rm -f "$dest$prefix/sbin/scanengined" "$dest$prefix/bin/scanctl" \
		"$dest/etc/systemd/system/scanengined.service"
	rm -rf "$dest$prefix/share/scanengine" "$dest$prefix/share/doc/scanengine"
	echo "uninstalled; kept /etc/scanengine, /var/lib/scanengine and the scanengine user"
	exit 0
fi
dest=$1 prefix=$2 build=$3
sbindir=$prefix/sbin
datadir=$prefix/share/scanengine
docdir=$prefix/share/doc/scanengine

case $build in /*) ;; *) build=$top/$build ;; esac
install -D -m 0755 "$build/scanengined" "$dest$sbindir/scanengined"
install -D -m 0755 "$build/scanctl" "$dest$prefix/bin/scanctl"
install -d -m 0755 "$dest$datadir/defs"
install -m 0644 "$top"/defs/default/* "$dest$datadir/defs/"
install -D -m 0644 "$top/README.md" "$dest$docdir/README.md"
install -d -m 0755 "$dest/etc/scanengine" "$dest/var/lib/scanengine"
# the roots that .sign files of official definitions chain to; an
# organisation adds its own signing root here (CertsDirectory)
install -d -m 0755 "$dest/etc/scanengine/certs"
for crt in "$top"/packaging/certs/*.crt; do
	[ -e "$dest/etc/scanengine/certs/${crt##*/}" ] ||
		install -m 0644 "$crt" "$dest/etc/scanengine/certs/"
done
if [ ! -e "$dest/etc/scanengine/scanengined.conf" ]; then
	sed "s|@DATADIR@|$datadir|g" "$top/packaging/scanengined.conf.in" \
		>"$dest/etc/scanengine/scanengined.conf"
	chmod 0644 "$dest/etc/scanengine/scanengined.conf"
else
	echo "kept existing /etc/scanengine/scanengined.conf"
fi
install -d -m 0755 "$dest/etc/systemd/system"
sed -e "s|@SBINDIR@|$sbindir|g" -e "s|@DOCDIR@|$docdir|g" \
	"$top/packaging/scanengined.service.in" >"$dest/etc/systemd/system/scanengined.service"
chmod 0644 "$dest/etc/systemd/system/scanengined.service"

if [ -z "$dest" ]; then
	"$top/scripts/create-user.sh" scanengine
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload
		echo "installed; start with: systemctl enable --now scanengined"
	else
		echo "installed; start with: $sbindir/scanengined"
	fi
fi
