#!/bin/sh
# run-h2o.sh: requests per second of the h2o adapter in both execution modes against a bare
# libh2o hello server (bench_h2o_hello_peer: the same libh2o, the same loop threads), in one
# run, rounds alternating (gevent, gthread, bare, gevent, ...) so that a drifting machine
# affects all alike:
#   HTTP/1.1 keep-alive, wrk -t WRK_THREADS -c CONNECTIONS -d DURATION, apps/hello;
#   h2c, h2load -c H2_CLIENTS -m 10 -D DURATION after a 1 s warm-up (when h2load is installed),
# and for each load the server's CPU microseconds per request (its whole process tree, /proc),
# steadier than requests/s on a machine the client shares.
# Usage: bench/run-h2o.sh [BUILD_DIR]   (default ./build; LOOP_THREADS, THREADS, ROUNDS, DURATION,
#        CONNECTIONS, WRK_THREADS, H2_CLIENTS change the defaults 2, 2, 3, 5s, 32, 2, 16).
#        A benchmark, not a test: it fails only when a server does not start, answers wrongly,
#        or a client reports failed requests. It stops only what it started.
set -eu

BUILD=${1:-build}
LOOP_THREADS=${LOOP_THREADS:-2}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-2}
H2_CLIENTS=${H2_CLIENTS:-16}
SERVE=${CWSGI_SERVE:-$BUILD/src/cwsgi-serve}
HELLO=${HELLO_SO:-$BUILD/apps/hello.so}
PEER=${PEER_BIN:-$BUILD/bench/bench_h2o_hello_peer}
for f in "$SERVE" "$HELLO" "$PEER"; do
    [ -e "$f" ] || { echo "run-h2o.sh: missing $f (build first)" >&2; exit 2; }
done
command -v wrk > /dev/null || { echo "run-h2o.sh: wrk not found (apt-get install wrk)" >&2; exit 2; }

TMP=$(mktemp -d /tmp/cwsgi-bench-h2o.XXXXXX)
PID=""
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2> /dev/null || true; wait "$PID" 2> /dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
. "$(dirname "$0")/proc.sh"   # cpu_ticks
TICKS=$(getconf CLK_TCK)
# us_per_req TICKS0 TICKS1 REQUESTS: the server's CPU microseconds per request over a run.
us_per_req() { echo "$1 $2 $3 $TICKS" | awk '{printf "%.2f", ($2 - $1) * 1e6 / $4 / $3}'; }

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() { # start NAME PORT
    case $1 in
    gevent) "$SERVE" --adapter h2o -k gevent --loop-threads "$LOOP_THREADS" --bind "127.0.0.1:$2" "$HELLO" > "$TMP/log" 2>&1 & ;;
    gthread) "$SERVE" --adapter h2o -k gthread --threads "$THREADS" --loop-threads "$LOOP_THREADS" --bind "127.0.0.1:$2" "$HELLO" > "$TMP/log" 2>&1 & ;;
    bare) "$PEER" "$2" "$LOOP_THREADS" > "$TMP/log" 2>&1 & ;;
    esac
    PID=$!
    i=0
    until curl -s "http://127.0.0.1:$2/" 2> /dev/null | grep -q '^Hello, World!$'; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "run-h2o.sh: $1 did not answer" >&2; cat "$TMP/log" >&2; exit 1; }
        sleep 0.1
    done
}

stop() {
    kill "$PID"
    wait "$PID" 2> /dev/null || true
    PID=""
}

SERVERS="gevent gthread bare"
round=1
while [ $round -le "$ROUNDS" ]; do
    for s in $SERVERS; do
        port=$(free_port)
        start "$s" "$port"
        c0=$(cpu_ticks "$PID")
        out=$(wrk -t "$WRK_THREADS" -c "$CONNECTIONS" -d "$DURATION" "http://127.0.0.1:$port/")
        c1=$(cpu_ticks "$PID")
        if echo "$out" | grep -q "Non-2xx"; then echo "run-h2o.sh: $s answered non-2xx" >&2; exit 1; fi
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        n=$(echo "$out" | awk '/requests in/ {print $1}')
        cpu=$(us_per_req "$c0" "$c1" "$n")
        echo "round $round $s h1 $rps req/s $cpu us CPU/req"
        echo "$rps" >> "$TMP/h1.$s"
        echo "$cpu" >> "$TMP/h1cpu.$s"
        if command -v h2load > /dev/null; then
            # The CPU figure spans the warm-up too, so it is divided by every request h2load
            # sent (its "requests: N total"), not only the measured ones.
            c0=$(cpu_ticks "$PID")
            out=$(h2load -c "$H2_CLIENTS" -m 10 --warm-up-time 1s -D "$DURATION" "http://127.0.0.1:$port/" 2>&1)
            c1=$(cpu_ticks "$PID")
            echo "$out" | grep -q " 0 failed" || { echo "run-h2o.sh: $s: h2load reports failures" >&2; echo "$out" >&2; exit 1; }
            rps=$(echo "$out" | awk '/^finished in/ {gsub(",", "", $4); print $4}')
            n=$(echo "$out" | awk '/^requests:/ {print $2}')
            cpu=$(us_per_req "$c0" "$c1" "$n")
            echo "round $round $s h2c $rps req/s $cpu us CPU/req ($n requests, $(echo "$out" | grep -o '[0-9]* failed' | head -1))"
            echo "$rps" >> "$TMP/h2.$s"
            echo "$cpu" >> "$TMP/h2cpu.$s"
        fi
        stop
    done
    round=$((round + 1))
done

median() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
echo "medians (req/s, CPU us/req):"
for s in $SERVERS; do
    h2=""
    [ -e "$TMP/h2.$s" ] && h2="   h2c $(median "$TMP/h2.$s") at $(median "$TMP/h2cpu.$s")"
    echo "  $s   h1 $(median "$TMP/h1.$s") at $(median "$TMP/h1cpu.$s")$h2"
done
ratio() { echo "$1 $2" | awk '{printf "%.2f", $1 / $2}'; }
for s in gevent gthread; do
    echo "  $s / bare, HTTP/1.1: req/s $(ratio "$(median "$TMP/h1.$s")" "$(median "$TMP/h1.bare")") (target 0.90)," \
        "CPU us/req $(ratio "$(median "$TMP/h1cpu.$s")" "$(median "$TMP/h1cpu.bare")")"
    if [ -e "$TMP/h2.$s" ]; then
        echo "  $s / bare, h2c -m 10: req/s $(ratio "$(median "$TMP/h2.$s")" "$(median "$TMP/h2.bare")") (target 0.90)," \
            "CPU us/req $(ratio "$(median "$TMP/h2cpu.$s")" "$(median "$TMP/h2cpu.bare")")"
    fi
done
