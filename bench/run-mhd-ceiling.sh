#!/bin/sh
# run-mhd-ceiling.sh: what the microhttpd adapter would reach without its hand-off from the
# event loop to an app thread. It copies the source tree to a scratch directory, applies
# bench/experiments/inline-handle.patch there (requests without a body run the app on the
# libmicrohttpd event-loop thread, which spec rule THR-4 forbids), builds that copy and runs
# bench/run-mhd.sh against it. The checkout itself is never changed, and the patched server
# is never installed: it exists only for this measurement. bench/README.md explains the use.
#
# Usage: bench/run-mhd-ceiling.sh   (THREADS, ROUNDS, DURATION, CONNECTIONS, WRK_THREADS are
#        passed on to run-mhd.sh)
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
command -v git > /dev/null || { echo "run-mhd-ceiling.sh: needs git (to copy the tracked files)" >&2; exit 2; }

TMP=$(mktemp -d /tmp/cwsgi-ceiling.XXXXXX)
trap 'rm -rf "$TMP"' EXIT INT TERM

mkdir "$TMP/src"
# The tracked files as they are in the working tree (uncommitted edits included).
git -C "$SRC" ls-files -z | (cd "$SRC" && tar --null -T - -cf -) | tar -xf - -C "$TMP/src"
if ! (cd "$TMP/src" && patch -p1 --quiet < "$HERE/experiments/inline-handle.patch"); then
    echo "run-mhd-ceiling.sh: inline-handle.patch no longer applies to adapters/microhttpd/bridge.cc;" >&2
    echo "  re-make it: change Bridge::first_call to call run_app() for a request without a body" >&2
    exit 2
fi
echo "building the patched copy in $TMP (the app runs on the event loop for bodiless requests)"
cmake -S "$TMP/src" -B "$TMP/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCWSGI_BUILD_TESTS=OFF \
    -DCWSGI_BUILD_CONFORMANCE=OFF -DCWSGI_BUILD_BENCH=ON > "$TMP/configure.log" 2>&1 ||
    { cat "$TMP/configure.log" >&2; exit 1; }
cmake --build "$TMP/build" -j "$(nproc)" > "$TMP/build.log" 2>&1 || { tail -n 30 "$TMP/build.log" >&2; exit 1; }
echo "inline (THR-4 broken on purpose) against bare libmicrohttpd:"
sh "$HERE/run-mhd.sh" "$TMP/build"
