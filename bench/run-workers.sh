#!/bin/sh
# run-workers.sh: what the master costs and how workers scale: apps/hello under cwsgi-serve with
# -w 1 and with -w 2 (both under the master, LIFE-ARB-1), measured with wrk in one run, rounds
# alternating so that a drifting machine affects both alike. Prints requests per second per round
# and the medians, and the ratio w2/w1.
#
# Usage: bench/run-workers.sh [BUILD_DIR]   (default ./build; set ROUNDS, DURATION, CONNECTIONS,
#        WRK_THREADS, MODE to change the defaults 3, 5s, 32, 2, gevent; CWSGI_SERVE and HELLO_SO
#        to name the programs). This is a benchmark, not a test: it fails only when a server does
#        not start or wrk gets no answers. It stops only the processes it started.
set -eu

BUILD=${1:-build}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-2}
MODE=${MODE:-gevent}
SERVE=${CWSGI_SERVE:-$BUILD/src/cwsgi-serve}
HELLO=${HELLO_SO:-$BUILD/apps/hello.so}
for f in "$SERVE" "$HELLO"; do
    [ -e "$f" ] || { echo "run-workers.sh: missing $f (build first)" >&2; exit 2; }
done
command -v wrk > /dev/null || { echo "run-workers.sh: wrk not found (apt-get install wrk)" >&2; exit 2; }

TMP=$(mktemp -d /tmp/cwsgi-bench-workers.XXXXXX)
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2> /dev/null || true; done
    for p in $PIDS; do wait "$p" 2> /dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# start NAME WORKERS: starts a master, waits (10 s at most) for its "Listening at" line.
start() {
    "$SERVE" --adapter microhttpd -k "$MODE" -w "$2" -b 127.0.0.1:0 "$HELLO" > "$TMP/$1.log" 2>&1 &
    PIDS="$PIDS $!"
    i=0
    while ! grep -q "Listening at: http://127.0.0.1:" "$TMP/$1.log"; do
        i=$((i + 1))
        [ $i -le 200 ] || { echo "run-workers.sh: $1 did not start:" >&2; cat "$TMP/$1.log" >&2; exit 1; }
        sleep 0.05
    done
    sed -n 's/.*Listening at: http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$TMP/$1.log" | head -1 > "$TMP/$1.port"
}

start w1 1
start w2 2
for r in $(seq 1 "$ROUNDS"); do
    for s in w1 w2; do
        port=$(cat "$TMP/$s.port")
        rps=$(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:$port/" | awk '/Requests\/sec/ {print $2}')
        [ -n "$rps" ] || { echo "run-workers.sh: wrk got no answers from $s" >&2; exit 1; }
        echo "round $r $s $rps" | tee -a "$TMP/results"
    done
done
median() { awk -v s="$1" '$3 == s {print $4}' "$TMP/results" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m1=$(median w1)
m2=$(median w2)
echo "median -w 1: $m1 req/s; -w 2: $m2 req/s; w2/w1 = $(awk -v a="$m2" -v b="$m1" 'BEGIN {printf "%.2f", a / b}') ($(nproc) CPUs, $MODE, wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION on the same machine)"
