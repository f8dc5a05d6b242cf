#!/bin/sh
# run-mhd.sh: requests per second of apps/hello on the microhttpd adapter against a bare
# libmicrohttpd hello server with the same thread settings, and against the same bare server
# with the adapter's threading model (bench_mhd_hello_peer --offload 1), measured with wrk in
# one run.
#
# Usage: bench/run-mhd.sh [BUILD_DIR]   (default: ./build; set THREADS, ROUNDS, DURATION,
#        CONNECTIONS, WRK_THREADS to change the defaults 2, 3, 10s, 32, 2; CWSGI_SERVE, HELLO_SO,
#        PEER_BIN to name the three programs instead of BUILD_DIR)
# The servers listen on free loopback ports. Rounds alternate between them (adapter, bare,
# offload, adapter, ...) so that a drifting machine affects all alike; the script prints each
# round, the median of each server and the ratios. The target (issue 3) is a ratio
# of at least 0.90. With each round it also prints, from /proc, the server's CPU time per
# request (all its threads) and its context switches per request: on a machine that wrk
# shares, requests per second follow CPU per request, and the switches show the cost of
# handing a request from the event loop to an app thread (bench/README.md).
# This is a benchmark, not a test: it never fails on the figures.
# It only stops the processes it started, and every wait is bounded.
set -eu

BUILD=${1:-build}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-2}

# The programs, from the build tree (CMake layout) unless named one by one (the meson test
# names them: its layout differs).
SERVE=${CWSGI_SERVE:-$BUILD/src/cwsgi-serve}
HELLO=${HELLO_SO:-$BUILD/apps/hello.so}
PEER=${PEER_BIN:-$BUILD/bench/bench_mhd_hello_peer}
for f in "$SERVE" "$HELLO" "$PEER"; do
    [ -e "$f" ] || { echo "run-mhd.sh: missing $f (build first: cmake --build $BUILD)" >&2; exit 2; }
done
command -v wrk > /dev/null || { echo "run-mhd.sh: wrk not found (apt-get install wrk)" >&2; exit 2; }

TMP=$(mktemp -d /tmp/cwsgi-bench.XXXXXX)
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2> /dev/null || true; done
    for p in $PIDS; do wait "$p" 2> /dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# wait_port LOG: prints the port of the first "Listening at: http://127.0.0.1:PORT" line of
# LOG, waiting at most 10 s.
wait_port() {
    i=0
    while [ $i -lt 100 ]; do
        port=$(sed -n 's|.*Listening at: http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$1" | head -n 1)
        if [ -n "$port" ]; then
            echo "$port"
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    echo "run-mhd.sh: no 'Listening at' line in $1:" >&2
    cat "$1" >&2
    return 1
}

# cpu_ticks PID: user+system CPU time of the process, all threads, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# switches PID: context switches of all its threads so far (voluntary and not).
switches() { cat /proc/"$1"/task/*/status 2> /dev/null | awk '/ctxt_switches/ {n += $2} END {print n + 0}'; }
TICKS=$(getconf CLK_TCK)

# measure PORT PID: runs wrk once against PORT and prints "RPS CPU_US_PER_REQ SWITCHES_PER_REQ",
# the last two from /proc for the server process PID over the same run.
measure() {
    c0=$(cpu_ticks "$2")
    s0=$(switches "$2")
    timeout 60 wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:$1/" > "$TMP/wrk.out" 2>&1 || true
    c1=$(cpu_ticks "$2")
    s1=$(switches "$2")
    r=$(awk '/^Requests\/sec:/ {print $2}' "$TMP/wrk.out")
    n=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
    if [ -z "$r" ] || [ -z "$n" ] || [ "$n" -eq 0 ]; then
        echo "run-mhd.sh: wrk failed:" >&2
        cat "$TMP/wrk.out" >&2
        exit 1
    fi
    if grep -q "Non-2xx\|Socket errors" "$TMP/wrk.out"; then
        grep "Non-2xx\|Socket errors" "$TMP/wrk.out" | sed 's/^/    wrk: /' >&2
    fi
    echo "$r $c0 $c1 $s0 $s1 $n $TICKS" | awk '{printf "%s %.2f %.2f\n", $1, ($3 - $2) * 1e6 / $7 / $6, ($5 - $4) / $6}'
}

# The three servers: cwsgi-serve at its default log level (info: it prints the "Listening
# at" line there, and the access log stays off), the bare peer, and the same peer with the
# adapter's threading model (--offload 1: event loop plus app threads, THR-4).
"$SERVE" --adapter microhttpd --threads "$THREADS" --bind=127.0.0.1:0 -- "$HELLO" 2> "$TMP/adapter.log" &
ADAPTER_PID=$!
PIDS="$PIDS $!"
"$PEER" --port 0 --threads "$THREADS" 2> "$TMP/peer.log" &
PEER_PID=$!
PIDS="$PIDS $!"
"$PEER" --port 0 --threads "$THREADS" --offload 1 2> "$TMP/offload.log" &
OFFLOAD_PID=$!
PIDS="$PIDS $!"
ADAPTER_PORT=$(wait_port "$TMP/adapter.log")
PEER_PORT=$(wait_port "$TMP/peer.log")
OFFLOAD_PORT=$(wait_port "$TMP/offload.log")

for port in "$ADAPTER_PORT" "$PEER_PORT" "$OFFLOAD_PORT"; do
    body=$(curl -s --max-time 5 "http://127.0.0.1:$port/")
    [ "$body" = "Hello, World!" ] || { echo "run-mhd.sh: unexpected answer on port $port: $body" >&2; exit 1; }
done

echo "wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION, every server with --threads $THREADS, $(nproc) CPUs"
echo "  adapter: cwsgi-serve --adapter microhttpd apps/hello"
echo "  bare:    bench_mhd_hello_peer (answers on the event loop)"
echo "  offload: bench_mhd_hello_peer --offload 1 (event loop + app threads, as THR-4 requires)"
# A short warm-up of each, not counted.
for port in "$ADAPTER_PORT" "$PEER_PORT" "$OFFLOAD_PORT"; do
    timeout 30 wrk -t1 -c4 -d1s "http://127.0.0.1:$port/" > /dev/null 2>&1 || true
done

for f in adapter bare offload; do
    : > "$TMP/$f.rps"
    : > "$TMP/$f.cpu"
done
r=1
while [ $r -le "$ROUNDS" ]; do
    line="round $r:"
    for f in adapter bare offload; do
        case $f in
        adapter) port=$ADAPTER_PORT pid=$ADAPTER_PID ;;
        bare) port=$PEER_PORT pid=$PEER_PID ;;
        *) port=$OFFLOAD_PORT pid=$OFFLOAD_PID ;;
        esac
        m=$(measure "$port" "$pid") || exit 1
        set -- $m
        echo "$1" >> "$TMP/$f.rps"
        echo "$2" >> "$TMP/$f.cpu"
        line="$line $(printf '%s %6.0f req/s %5.2f us/req %4.2f sw/req ' "$f" "$1" "$2" "$3")"
    done
    echo "$line"
    r=$((r + 1))
done

median() { sort -n "$1" | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
A=$(median "$TMP/adapter.rps")
P=$(median "$TMP/bare.rps")
O=$(median "$TMP/offload.rps")
printf 'median:  adapter %6.0f req/s %5.2f us CPU/req   bare %6.0f req/s %5.2f us CPU/req   offload %6.0f req/s %5.2f us CPU/req\n' \
    "$A" "$(median "$TMP/adapter.cpu")" "$P" "$(median "$TMP/bare.cpu")" "$O" "$(median "$TMP/offload.cpu")"
printf 'ratio adapter/bare %.3f (issue 3 target >= 0.90)   adapter/offload %.3f   offload/bare %.3f\n' \
    "$(echo "$A $P" | awk '{print $1 / $2}')" "$(echo "$A $O" | awk '{print $1 / $2}')" "$(echo "$O $P" | awk '{print $1 / $2}')"
