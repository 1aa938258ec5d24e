#!/bin/sh
# Create the unprivileged system account (and its group) that scanengined
# runs its engine and scan workers as. Idempotent.
set -eu
user=${1:-scanengine}
if ! getent group "$user" >/dev/null; then
	groupadd --system "$user"
fi
if ! getent passwd "$user" >/dev/null; then
	useradd --system --gid "$user" --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin --comment "scanengine scan workers" "$user"
	echo "created system user $user"
fi
