#!/bin/sh
# run-mhd.sh: requests per second of the microhttpd adapter in both execution modes against a
# bare libmicrohttpd hello server, measured with wrk in one run, rounds alternating. Five
# servers:
#   gevent   cwsgi-serve -k gevent  --loop-threads LOOP_THREADS apps/hello  (fibers on the loop)
#   gthread  cwsgi-serve -k gthread --threads THREADS apps/hello   (loop threads: the adapter's
#            choice, half the CPUs, at most --threads)
#   bare     bench_mhd_hello_peer --threads LOOP_THREADS: answers on its event loop, the same
#            loop threads as gevent
#   offload  bench_mhd_hello_peer --threads THREADS --offload 1: hands every request to one of
#            THREADS worker threads and resumes the connection from there (gthread's model; its
#            loop threads are chosen as the adapter's)
#   predict  cwsgi-serve -k gevent --loop-threads LOOP_THREADS apps/predict, POST /v1/predict
#            with a JSON row (bench/post-predict.lua)
#
# Usage: bench/run-mhd.sh [BUILD_DIR]   (default: ./build; set THREADS, LOOP_THREADS, ROUNDS,
#        DURATION, CONNECTIONS, WRK_THREADS to change the defaults 2, 2, 3, 5s, 32, 2;
#        CWSGI_SERVE, HELLO_SO, PREDICT_SO, PEER_BIN to name the programs instead of BUILD_DIR)
# The servers listen on free loopback ports. Rounds alternate between them (gevent, gthread,
# bare, offload, predict, gevent, ...) so that a drifting machine affects all alike. With each
# round it prints, from /proc, the server's CPU time per request (its whole process tree, all
# threads) and its context switches per request: on a machine that wrk shares, requests per
# second follow CPU per request. At the end: the medians, and the ratios the issue asks for with their targets.
# This is a benchmark, not a test: it never fails on the figures, only when a server does not
# start, answers wrongly (a wrong body, or any non-2xx answer under wrk) or wrk gets no answers.
# It only stops the processes it started, and every wait is bounded.
set -eu

BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
THREADS=${THREADS:-2}
LOOP_THREADS=${LOOP_THREADS:-2}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-2}

# The programs, from the build tree (CMake layout) unless named one by one (the meson test
# names them: its layout differs).
SERVE=${CWSGI_SERVE:-$BUILD/src/cwsgi-serve}
HELLO=${HELLO_SO:-$BUILD/apps/hello.so}
PREDICT=${PREDICT_SO:-$BUILD/apps/predict.so}
PEER=${PEER_BIN:-$BUILD/bench/bench_mhd_hello_peer}
LUA=$HERE/post-predict.lua
for f in "$SERVE" "$HELLO" "$PREDICT" "$PEER" "$LUA"; do
    [ -e "$f" ] || { echo "run-mhd.sh: missing $f (build first: cmake --build $BUILD)" >&2; exit 2; }
done
command -v wrk > /dev/null || { echo "run-mhd.sh: wrk not found (apt-get install wrk)" >&2; exit 2; }
command -v curl > /dev/null || { echo "run-mhd.sh: curl not found (apt-get install curl)" >&2; exit 2; }

SERVERS="gevent gthread bare offload predict"
PREDICT_BODY='{"features":[6.3,3.3,6.0,2.5]}' # the body post-predict.lua sends

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

. "$(dirname "$0")/proc.sh"   # tree_pids, cpu_ticks, switches
TICKS=$(getconf CLK_TCK)

# wrk_args SERVER: the URL (and script) wrk is run with for SERVER.
wrk_args() {
    eval "port=\$PORT_$1"
    if [ "$1" = predict ]; then
        echo "-s $LUA http://127.0.0.1:$port/v1/predict"
    else
        echo "http://127.0.0.1:$port/"
    fi
}

# measure SERVER: runs wrk once against SERVER and prints "RPS CPU_US_PER_REQ SWITCHES_PER_REQ",
# the last two from /proc for the server's process tree over the same run.
measure() {
    eval "pid=\$PID_$1"
    # shellcheck disable=SC2154 # pid and the PORT_/PID_ names are set through eval
    c0=$(cpu_ticks "$pid")
    s0=$(switches "$pid")
    # shellcheck disable=SC2046 # wrk_args is split on purpose
    timeout 60 wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" $(wrk_args "$1") > "$TMP/wrk.out" 2>&1 || true
    c1=$(cpu_ticks "$pid")
    s1=$(switches "$pid")
    r=$(awk '/^Requests\/sec:/ {print $2}' "$TMP/wrk.out")
    n=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
    if [ -z "$r" ] || [ -z "$n" ] || [ "$n" -eq 0 ]; then
        echo "run-mhd.sh: $1: wrk failed:" >&2
        cat "$TMP/wrk.out" >&2
        exit 1
    fi
    if grep -q "Non-2xx" "$TMP/wrk.out"; then
        echo "run-mhd.sh: $1: answers that are not 2xx, the figures would not be of the request meant:" >&2
        cat "$TMP/wrk.out" >&2
        exit 1
    fi
    if grep -q "Socket errors" "$TMP/wrk.out"; then
        grep "Socket errors" "$TMP/wrk.out" | sed "s/^/    $1: wrk: /" >&2
    fi
    echo "$r $c0 $c1 $s0 $s1 $n $TICKS" | awk '{printf "%s %.2f %.2f\n", $1, ($3 - $2) * 1e6 / $7 / $6, ($5 - $4) / $6}'
}

# start SERVER CMD...: starts CMD in the background, its stderr in $TMP/SERVER.log, and sets
# PID_SERVER. cwsgi-serve runs at its default log level (info: it prints the "Listening at"
# line there, and the access log stays off).
start() {
    name=$1
    shift
    : > "$TMP/$name.log" # exists before wait_port reads it
    "$@" 2> "$TMP/$name.log" &
    eval "PID_$name=$!"
    PIDS="$PIDS $!"
}
start gevent "$SERVE" --adapter microhttpd -k gevent --loop-threads "$LOOP_THREADS" --bind=127.0.0.1:0 -- "$HELLO"
start gthread "$SERVE" --adapter microhttpd -k gthread --threads "$THREADS" --bind=127.0.0.1:0 -- "$HELLO"
start bare "$PEER" --port 0 --threads "$LOOP_THREADS"
start offload "$PEER" --port 0 --threads "$THREADS" --offload 1
start predict "$SERVE" --adapter microhttpd -k gevent --loop-threads "$LOOP_THREADS" --bind=127.0.0.1:0 -- "$PREDICT"
for s in $SERVERS; do
    port=$(wait_port "$TMP/$s.log") || exit 1
    eval "PORT_$s=$port"
done

# Each answers correctly before it is measured (the smoke test's point).
for s in gevent gthread bare offload; do
    eval "port=\$PORT_$s"
    body=$(curl -s --max-time 5 "http://127.0.0.1:$port/")
    [ "$body" = "Hello, World!" ] || { echo "run-mhd.sh: $s: unexpected answer: $body" >&2; exit 1; }
done
# shellcheck disable=SC2154 # PORT_predict is set through eval
body=$(curl -s --max-time 5 -H 'Content-Type: application/json' --data-binary "$PREDICT_BODY" \
    -w ' %{http_code}' "http://127.0.0.1:$PORT_predict/v1/predict")
case $body in
'{"predictions":[0.99881'*'200') ;;
*) echo "run-mhd.sh: predict: unexpected answer: $body" >&2; exit 1 ;;
esac

echo "wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS rounds, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  gevent:  cwsgi-serve --adapter microhttpd -k gevent --loop-threads $LOOP_THREADS apps/hello"
echo "  gthread: cwsgi-serve --adapter microhttpd -k gthread --threads $THREADS apps/hello"
echo "  bare:    bench_mhd_hello_peer --threads $LOOP_THREADS (answers on its $LOOP_THREADS event-loop threads)"
echo "  offload: bench_mhd_hello_peer --threads $THREADS --offload 1 (event loop + $THREADS worker threads)"
echo "  predict: cwsgi-serve --adapter microhttpd -k gevent --loop-threads $LOOP_THREADS apps/predict, POST /v1/predict"
# A short warm-up of each, not counted.
for s in $SERVERS; do
    # shellcheck disable=SC2046
    timeout 30 wrk -t1 -c4 -d1s $(wrk_args "$s") > /dev/null 2>&1 || true
done

for s in $SERVERS; do
    : > "$TMP/$s.rps"
    : > "$TMP/$s.cpu"
    : > "$TMP/$s.sw"
done
r=1
while [ $r -le "$ROUNDS" ]; do
    for s in $SERVERS; do
        m=$(measure "$s") || exit 1
        # shellcheck disable=SC2086 # split into its three figures on purpose
        set -- $m
        echo "$1" >> "$TMP/$s.rps"
        echo "$2" >> "$TMP/$s.cpu"
        echo "$3" >> "$TMP/$s.sw"
        printf 'round %d  %-8s %8.0f req/s %6.2f us CPU/req %5.2f switches/req\n' "$r" "$s" "$1" "$2" "$3"
    done
    r=$((r + 1))
done

median() { sort -n "$1" | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo
echo "medians of $ROUNDS rounds:"
printf '%-8s %10s %12s %13s\n' server req/s 'CPU us/req' switches/req
for s in $SERVERS; do
    printf '%-8s %10.0f %12.2f %13.2f\n' "$s" "$(median "$TMP/$s.rps")" "$(median "$TMP/$s.cpu")" "$(median "$TMP/$s.sw")"
done

# ratio NAME A B TARGET OP: prints A/B against the target (OP: ge, at least; le, at most).
ratio() {
    awk -v name="$1" -v a="$2" -v b="$3" -v t="$4" -v op="$5" 'BEGIN {
        # A zero figure is a failed measurement, never a ratio that meets its target.
        if (a <= 0 || b <= 0) { printf "%-28s %6s   target %s %.2f: no figure (a measurement read 0)\n", name, "-", (op == "ge") ? ">=" : "<=", t; exit }
        r = a / b
        met = (op == "ge") ? (r >= t) : (r <= t)
        printf "%-28s %6.3f   target %s %.2f: %s\n", name, r, (op == "ge") ? ">=" : "<=", t, met ? "met" : "NOT met"
    }'
}
echo
echo "ratios (medians; the issue's targets):"
ratio "gevent/bare req/s" "$(median "$TMP/gevent.rps")" "$(median "$TMP/bare.rps")" 0.90 ge
ratio "gevent/bare CPU us/req" "$(median "$TMP/gevent.cpu")" "$(median "$TMP/bare.cpu")" 1.15 le
ratio "gthread/offload req/s" "$(median "$TMP/gthread.rps")" "$(median "$TMP/offload.rps")" 1.00 ge
ratio "predict/gevent-hello req/s" "$(median "$TMP/predict.rps")" "$(median "$TMP/gevent.rps")" 0.75 ge
