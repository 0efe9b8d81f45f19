#!/bin/sh
# Wait until no other process holds apt's or dpkg's locks (at most
# APT_WAIT_SECONDS, default 900), saying so once; exit 1 if they are still
# held then.  install-deps.sh runs it before each apt-get.  The locks are
# fcntl locks, which lslocks (util-linux, on every Debian) lists.
set -eu
limit=${APT_WAIT_SECONDS:-900}
waited=0
held() {
	lslocks -n -o PATH 2>/dev/null |
		grep -qxE '/var/lib/dpkg/lock(-frontend)?|/var/lib/apt/lists/lock|/var/cache/apt/archives/lock'
}
while held; do
	if [ "$waited" -eq 0 ]; then
		echo "giltrace: another apt or dpkg is running (it holds its lock); waiting for it, at most $limit s" >&2
	fi
	if [ "$waited" -ge "$limit" ]; then
		echo "giltrace: apt is still busy after $limit s; run scripts/install-deps.sh again once it is done" >&2
		exit 1
	fi
	sleep 2
	waited=$((waited + 2))
done
if [ "$waited" -gt 0 ]; then
	echo "giltrace: apt is free after $waited s" >&2
fi
