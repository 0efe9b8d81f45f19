#!/bin/sh
# Build the CPython interpreters the tests trace besides Debian's and
# pyenv's: 3.13.15, a 3.13 with PyThread_hang_thread (3.13.8+: a daemon
# thread that takes the GIL after finalization began parks in pause(), where
# the pyenv 3.13.0 ends it with pthread_exit), as a shared build and as a
# free-threaded (--disable-gil) build.
#
#   scripts/build-python.sh [NAME...]     NAME: 3.13.15-shared, 3.13.15t (default: both)
#
# The source is Debian's source package python3.13 3.13.15-1, fetched with
# apt from a deb-src entry in its own sources file: bookworm has no 3.13,
# and deb.debian.org is what this project's machines reach.  Only the
# upstream tarball in it is used (python3.13_3.13.15.orig.tar.xz, not
# repacked: the Python-3.13.15.tar.xz CPython published, which Debian's
# debian/watch fetches from python.org): Debian's patches are NOT applied, so
# these are upstream's interpreters, built with a plain ./configure (no
# PGO or LTO).
#
# Each build is installed under the cache, outside the checkout (`make
# clean` keeps it): ${GILTRACE_PYTHONS:-$HOME/.cache/giltrace/pythons}/NAME.
# A build whose stamp file exists and whose interpreter runs is skipped; any
# other is redone from scratch.  tests/helpers.py finds them there.
#
# Environment: GILTRACE_PYTHONS (the cache), GILTRACE_SRC_SUITE (the suite
# serving 3.13.15-1, default forky), JOBS (make -j, default 2).
set -eu

VERSION=3.13.15
DEBIAN_VERSION=3.13.15-1
SOURCE_PACKAGE=python3.13
CACHE=${GILTRACE_PYTHONS:-$HOME/.cache/giltrace/pythons}
SUITE=${GILTRACE_SRC_SUITE:-forky}
JOBS=${JOBS:-2}
# Its own file, Types: deb-src only: a binary `deb` entry of a newer suite
# would let apt upgrade this bookworm system's packages.
SOURCES_FILE=/etc/apt/sources.list.d/giltrace-src.sources
TARBALL=${SOURCE_PACKAGE}_$VERSION.orig.tar.xz
# Written last, after `make install` and a check that the interpreter runs.
STAMP=.giltrace-built

die() {
	echo "build-python: error: $*" >&2
	exit 1
}

# The interpreter each build installs, relative to its prefix.
interpreter_of() {
	case "$1" in
	"$VERSION-shared") echo bin/python3.13 ;;
	"${VERSION}t") echo bin/python3.13t ;;
	esac
}

# configure options of each build.  The free-threaded one is shared too:
# like the pyenv builds and 3.13.15-shared, the shim then sees the
# interpreter's own C-API calls through its PLT, and the two builds differ
# only in the GIL.  -rpath: the binary finds its libpython without
# LD_LIBRARY_PATH.
configure_options_of() {
	prefix=$CACHE/$1
	case "$1" in
	"$VERSION-shared") echo "--enable-shared LDFLAGS=-Wl,-rpath,$prefix/lib" ;;
	"${VERSION}t") echo "--enable-shared --disable-gil LDFLAGS=-Wl,-rpath,$prefix/lib" ;;
	esac
}

# True when NAME's build is complete: its stamp exists and its interpreter runs.
is_built() {
	[ -f "$CACHE/$1/$STAMP" ] && "$CACHE/$1/$(interpreter_of "$1")" -c pass 2>/dev/null
}

# Put $TARBALL into $CACHE/src, through apt, unless it is already there.
fetch_source() {
	[ -f "$CACHE/src/$TARBALL" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		die "$CACHE/src/$TARBALL is missing and fetching it needs root (a sources file, apt-get update): run 'sudo make pythons'"
	fi
	entry="Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $SUITE
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
	if [ "$(cat "$SOURCES_FILE" 2>/dev/null)" != "$entry" ]; then
		echo "build-python: writing $SOURCES_FILE (deb-src $SUITE only)"
		printf '%s\n' "$entry" >"$SOURCES_FILE"
		apt-get update -q || die "apt-get update failed: check the network reaches deb.debian.org, then run 'make pythons' again"
	elif ! apt-cache showsrc "$SOURCE_PACKAGE" 2>/dev/null | grep -qx "Version: $DEBIAN_VERSION"; then
		apt-get update -q || die "apt-get update failed: check the network reaches deb.debian.org, then run 'make pythons' again"
	fi
	if ! apt-cache showsrc "$SOURCE_PACKAGE" 2>/dev/null | grep -qx "Version: $DEBIAN_VERSION"; then
		# Suites move on: once testing has a newer 3.13, 3.13.15-1 leaves it.
		die "the archive does not serve the source of $SOURCE_PACKAGE $DEBIAN_VERSION in $SUITE (its versions: 'apt-cache showsrc $SOURCE_PACKAGE | grep ^Version'); if another suite serves it (sid?), run 'GILTRACE_SRC_SUITE=SUITE make pythons'; else VERSION and DEBIAN_VERSION in $0 must follow"
	fi
	mkdir -p "$CACHE/src/download"
	# --download-only: no dpkg-source (dpkg-dev), which would apply Debian's
	# patches.  apt checks each file against the signed Sources index.  The
	# folder is _apt's: apt downloads as _apt where it can, else it warns it
	# downloads "unsandboxed as root".
	chown _apt "$CACHE/src/download" 2>/dev/null || true
	(cd "$CACHE/src/download" && apt-get source -q --download-only "$SOURCE_PACKAGE=$DEBIAN_VERSION") ||
		die "apt-get source $SOURCE_PACKAGE=$DEBIAN_VERSION failed: run 'make pythons' again (or 'apt-get update' first)"
	[ -f "$CACHE/src/download/$TARBALL" ] || die "apt-get source gave no $TARBALL (the source package changed its layout?)"
	# The rename last: a tarball in $CACHE/src is a complete one.
	mv "$CACHE/src/download/"* "$CACHE/src/"
	rmdir "$CACHE/src/download"
}

# Build NAME from scratch into $CACHE/NAME.
build() {
	name=$1
	prefix=$CACHE/$name
	work=$CACHE/work-$name
	start=$(date +%s)
	echo "build-python: building $name in $prefix (make -j$JOBS; minutes, log in $work/build.log)"
	rm -rf "$prefix" "$work"
	mkdir -p "$work"
	tar -xJf "$CACHE/src/$TARBALL" -C "$work"
	src=$work/Python-$VERSION
	[ -x "$src/configure" ] || die "$TARBALL has no Python-$VERSION/configure"
	# --without-ensurepip: no pip in the prefix (the tests need none).
	# shellcheck disable=SC2046 # options are split on purpose; the cache path has no spaces
	if ! (cd "$src" && ./configure --prefix="$prefix" --without-ensurepip $(configure_options_of "$name") &&
		make -j"$JOBS" && make install) >"$work/build.log" 2>&1; then
		tail -n 30 "$work/build.log" >&2
		die "building $name failed (log: $work/build.log); missing build dependencies? run 'scripts/install-deps.sh --pythons', then 'make pythons' again"
	fi
	python=$prefix/$(interpreter_of "$name")
	"$python" -c 'import ctypes, zlib, threading' ||
		die "$python was built but cannot import ctypes or zlib (log: $work/build.log): run 'scripts/install-deps.sh --pythons', then 'make pythons' again (it redoes a build without its stamp)"
	# The modules that could not be built, for the record (make and make
	# install both print the list: once is enough).
	awk '/necessary bits to build these optional modules/ { on = 1 } on { print } on && /^$/ { exit }' \
		"$work/build.log"
	date -u +"%Y-%m-%dT%H:%M:%SZ $name built from $TARBALL ($SOURCE_PACKAGE $DEBIAN_VERSION, upstream source, no Debian patch)" >"$prefix/$STAMP"
	rm -rf "$work"
	end=$(date +%s)
	echo "build-python: built $name in $(((end - start) / 60)) min $(((end - start) % 60)) s: $python"
}

NAMES=${*:-"$VERSION-shared ${VERSION}t"}
for name in $NAMES; do
	[ -n "$(interpreter_of "$name")" ] || die "unknown build '$name' (known: $VERSION-shared ${VERSION}t)"
done
todo=""
for name in $NAMES; do
	if is_built "$name"; then
		echo "build-python: $name already built: $CACHE/$name/$(interpreter_of "$name")"
	else
		todo="$todo $name"
	fi
done
[ -z "$todo" ] && exit 0
mkdir -p "$CACHE"
fetch_source
for name in $todo; do
	build "$name"
done
