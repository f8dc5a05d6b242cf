#!/bin/sh
# callgrind-hello.sh: instructions per request of apps/hello on an event-loop adapter, in both
# execution modes (-k gevent: fibers on the event loop; -k gthread: a pool of app threads), and
# of the adapter's bare-library peer, counted by callgrind, split into the library's share and
# "ours" (everything else but the dynamic loader: our code plus the libc/libstdc++ calls it makes).
#
# Usage: bench/callgrind-hello.sh [BUILD_DIR]   (default ./build; REQUESTS=N sets the count,
#        default 2000; THREADS the gevent adapter's --loop-threads, the gthread adapter's
#        --threads and the peer's threads, default 2; CWSGI_SPIN_US the app threads' spin
#        before sleeping in gthread mode, default 0 here: a spin's length depends on timing, so
#        its instructions would make the count vary from run to run)
#        ADAPTER=microhttpd (default; peer bench_mhd_hello_peer) or h2o (peer
#        bench_h2o_hello_peer); PROTO=h1 (default) or, with h2o, h2c: h2load -c 1 -m 10 -n N
#        over HTTP/2 with prior knowledge instead of the HTTP/1.1 client.
# Each server runs twice under valgrind --tool=callgrind, answering N and then 2N keep-alive
# GET requests on one connection from a deterministic client (callgrind-client.py, or h2load
# for h2c); the difference of the two totals divided by N is the cost of one request, without
# start-up, shutdown and idle work. When the build has bench_core_hello (the core driven
# without any adapter, bench/core_hello.cc), it is measured the same way. About 2 minutes.
# This is a benchmark: it prints a table and never fails on a figure. It stops only the
# processes it started.
set -eu

BUILD=${1:-build}
N=${REQUESTS:-2000}
THREADS=${THREADS:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
CWSGI_SPIN_US=${CWSGI_SPIN_US:-${CWSGI_MHD_SPIN_US:-0}}
export CWSGI_SPIN_US
SERVE=$BUILD/src/cwsgi-serve
HELLO=$BUILD/apps/hello.so
ADAPTER=${ADAPTER:-microhttpd}
PROTO=${PROTO:-h1}
case "$ADAPTER" in
microhttpd) PEER=$BUILD/bench/bench_mhd_hello_peer LIB=libmicrohttpd ;;
h2o) PEER=$BUILD/bench/bench_h2o_hello_peer LIB=libh2o ;;
*) echo "callgrind-hello.sh: ADAPTER is microhttpd or h2o" >&2; exit 2 ;;
esac
case "$ADAPTER:$PROTO" in
*:h1 | h2o:h2c) ;;
*) echo "callgrind-hello.sh: PROTO is h1, or h2c with ADAPTER=h2o" >&2; exit 2 ;;
esac
if [ "$PROTO" = h2c ]; then
    command -v h2load > /dev/null || { echo "callgrind-hello.sh: h2load not found (nghttp2-client)" >&2; exit 2; }
fi
CORE=$BUILD/bench/bench_core_hello
PY=/usr/bin/python3
for f in "$SERVE" "$HELLO" "$PEER"; do
    [ -e "$f" ] || { echo "callgrind-hello.sh: missing $f (build first)" >&2; exit 2; }
done
command -v valgrind > /dev/null || { echo "callgrind-hello.sh: valgrind not found" >&2; exit 2; }

TMP=$(mktemp -d /tmp/cwsgi-callgrind.XXXXXX)
PID=""
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2> /dev/null || true; wait "$PID" 2> /dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# wait_port LOG: the port of the first "Listening at: http://127.0.0.1:PORT" line, or of the
# h2o peer's "listening on 127.0.0.1:PORT" (30 s).
wait_port() {
    i=0
    while [ $i -lt 300 ]; do
        port=$(sed -n -e 's|.*Listening at: http://127\.0\.0\.1:\([0-9]*\).*|\1|p' \
            -e 's|^listening on 127\.0\.0\.1:\([0-9]*\) .*|\1|p' "$1" | head -n 1)
        if [ -n "$port" ]; then echo "$port"; return 0; fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# run NAME COUNT CMD...: runs CMD under callgrind, sends COUNT requests, stops it with SIGTERM
# and leaves the profile in $TMP/NAME.COUNT.out.
run() {
    name=$1 count=$2
    shift 2
    : > "$TMP/$name.$count.log" # exists before wait_port reads it
    # cwsgi-serve forks its worker from the master (the arbiter): each process writes its own
    # profile, $TMP/NAME.COUNT.PID.out, and the table adds them up.
    valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$TMP/$name.$count.%p.out" \
        "$@" > "$TMP/$name.$count.log" 2>&1 &
    PID=$!
    if port=$(wait_port "$TMP/$name.$count.log"); then
        if [ "$PROTO" = h2c ]; then
            out=$(h2load -c 1 -m 10 -n "$count" "http://127.0.0.1:$port/" 2>&1) || true
            echo "$out" | grep -q "$count succeeded, 0 failed" || {
                echo "callgrind-hello.sh: $name: h2load did not get $count answers:" >&2
                echo "$out" | grep "requests:" >&2
            }
        else
            $PY "$HERE/callgrind-client.py" 127.0.0.1 "$port" "$count" || echo "callgrind-hello.sh: $name: client failed" >&2
        fi
    else
        echo "callgrind-hello.sh: $name did not start:" >&2
        cat "$TMP/$name.$count.log" >&2
    fi
    kill -TERM "$PID" 2> /dev/null || true
    i=0
    while kill -0 "$PID" 2> /dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$PID" 2> /dev/null || true
    wait "$PID" 2> /dev/null || true
    PID=""
}

for c in "$N" $((2 * N)); do
    run gevent "$c" "$SERVE" --adapter "$ADAPTER" -k gevent --loop-threads "$THREADS" --bind=127.0.0.1:0 -- "$HELLO"
    run gthread "$c" "$SERVE" --adapter "$ADAPTER" -k gthread --threads "$THREADS" --bind=127.0.0.1:0 -- "$HELLO"
    if [ "$ADAPTER" = h2o ]; then
        # The h2o peer takes a port, not 0: a free one, which the kernel may hand out again
        # later (valgrind starts slowly), but nothing else on this machine binds it meanwhile.
        p=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        run peer "$c" "$PEER" "$p" "$THREADS"
    else
        run peer "$c" "$PEER" --port 0 --threads "$THREADS"
    fi
done
if [ -x "$CORE" ]; then
    for c in "$N" $((2 * N)); do
        valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$TMP/core.$c.0.out" \
            "$CORE" "$HELLO" "$c" > "$TMP/core.$c.log" 2>&1 || echo "callgrind-hello.sh: bench_core_hello failed" >&2
    done
fi

echo "adapter $ADAPTER, $PROTO"
$PY "$HERE/callgrind-client.py" --table "$TMP" "$N" "$LIB"
