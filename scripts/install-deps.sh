#!/bin/sh
# Install the Debian packages giltrace needs, if missing: to build and run
# it (`make demo`), with --tests also to test it (`make check`), with --fuzz
# to fuzz its readers (`make fuzz`), with --bench to measure it (`make
# bench`), with --pythons to build CPython from source (`make pythons`,
# scripts/build-python.sh).  Safe to run again (does nothing then).
set -eu

# gcc, make, libc headers: build; libdw-dev, libelf-dev: elfutils, with
# which giltrace symbolises stacks; python3.11 and python3: the demo's
# interpreter.
PACKAGES="gcc make libc6-dev libdw-dev libelf-dev python3 python3.11"
# python3.11-dbg: the debug interpreter the tests trace; python3.11-dev:
# headers and python3.11-config for the test scenarios' C code;
# python3-pytest: the integration tests; chromium, python3-pil: the HTML
# report's test loads it in a headless browser and reads the screenshot;
# libpython3.11-testsuite: CPython's regression tests (Lib/test), run traced
# and untraced by tests/test_cpython_suite.py and `make check-cpython`.
TEST_PACKAGES="python3.11-dbg python3.11-dev python3-pytest chromium python3-pil libpython3.11-testsuite"
# clang, libclang-rt-14-dev: libFuzzer and the sanitizer runtimes of
# -fsanitize=fuzzer,address,undefined (bookworm's clang is clang-14).
FUZZ_PACKAGES="clang libclang-rt-14-dev"
# time: GNU time, whose %M gives bench/read.py each command's peak memory.
BENCH_PACKAGES="time"
# pkg-config: configure finds libffi with it; xz-utils: the source is a
# .tar.xz; libffi-dev: ctypes, which tests use; zlib1g-dev: zlib (zipfile,
# gzip, CPython's test support).  Modules no test needs (ssl, sqlite3,
# readline, curses, dbm, lzma, bz2, uuid) are left out: CPython builds
# without them.
PYTHONS_PACKAGES="pkg-config xz-utils libffi-dev zlib1g-dev"

case "${1:-}" in
--tests) PACKAGES="$PACKAGES $TEST_PACKAGES $FUZZ_PACKAGES" ;; # the tests run the fuzz harness once over its inputs
--fuzz) PACKAGES="$PACKAGES $FUZZ_PACKAGES" ;;
--bench) PACKAGES="$PACKAGES $BENCH_PACKAGES" ;;
--pythons) PACKAGES="$PACKAGES $PYTHONS_PACKAGES" ;;
"") ;;
*) echo "usage: $0 [--tests|--fuzz|--bench|--pythons]" >&2; exit 2 ;;
esac

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
# A fresh machine often runs apt itself right after boot (unattended
# upgrades, cloud-init): wait for it, as apt-get's own lock timeout does
# for dpkg's lock, instead of failing at once on the lists' lock.
"$(dirname "$0")/apt-wait.sh"
apt-get -q -o DPkg::Lock::Timeout=900 update
"$(dirname "$0")/apt-wait.sh"
apt-get -q -o DPkg::Lock::Timeout=900 install -y $missing
