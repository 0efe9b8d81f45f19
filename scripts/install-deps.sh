#!/bin/sh
# Install the Debian packages giltrace needs to build and test, if missing.
# Used by `make demo` and `make check`; safe to run again (does nothing then).
set -eu

# gcc, make, libc headers: build; python3.11 (+ -dbg): the interpreters the
# tests trace; python3-pytest: the integration tests.
# python3.11-dev: headers and python3.11-config for the test scenarios' C code;
# libdw-dev, libelf-dev: elfutils, with which giltrace symbolises stacks;
# chromium, python3-pil: the HTML report's test loads it in a headless
# browser and reads the screenshot.
PACKAGES="gcc make libc6-dev python3.11 python3.11-dev python3.11-dbg python3-pytest
libdw-dev libelf-dev chromium python3-pil"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "giltrace: missing Debian packages:$missing" >&2
	echo "giltrace: run as root: apt-get update && apt-get install -y$missing" >&2
	exit 1
fi
echo "giltrace: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q $missing
