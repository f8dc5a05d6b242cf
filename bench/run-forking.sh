#!/bin/sh
# run-forking.sh: the forking adapter against its peers, in one run, rounds alternating so that a
# drifting machine affects all alike (issue 10's benchmark):
#   forking      cwsgi-serve --adapter forking -w 2, apps/hello on fibers (hello declares them)
#   forking-sync the same with -k gthread --threads 1: one request at a time per worker
#   nginx        2 workers, `return 200 "Hello, World!\n"` (Debian's nginx)
#   gunicorn     gunicorn sync -w 2 with a plain WSGI hello (Debian's gunicorn, /usr/bin/python3)
# each under wrk -t WRK_THREADS -c CONNECTIONS -d DURATION --latency. Prints per round the
# requests per second, socket errors, p99 and the server's CPU microseconds per request (all its
# processes, from /proc), then the medians, the worker RSS and the ratios against nginx (target
# 0.90) and gunicorn (target 8).
# Usage: bench/run-forking.sh [BUILD_DIR]   (default ./build; ROUNDS, DURATION, CONNECTIONS,
#        WRK_THREADS change the defaults 3, 5s, 64, 2; SERVERS picks a subset). A benchmark, not a
#        test: it fails only when a server does not start or answers wrongly. It stops only what
#        it started.
set -eu

BUILD=${1:-build}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-2}
SERVERS=${SERVERS:-forking forking-sync nginx gunicorn}
SERVE=${CWSGI_SERVE:-$BUILD/src/cwsgi-serve}
HELLO=${HELLO_SO:-$BUILD/apps/hello.so}
for f in "$SERVE" "$HELLO"; do
    [ -e "$f" ] || { echo "run-forking.sh: missing $f (build first)" >&2; exit 2; }
done
for t in wrk nginx curl; do
    command -v $t > /dev/null || [ -x /usr/sbin/$t ] || { echo "run-forking.sh: $t not found (scripts/install-deps)" >&2; exit 2; }
done
/usr/bin/python3 -c 'import gunicorn' 2> /dev/null || { echo "run-forking.sh: gunicorn not found (apt-get install gunicorn)" >&2; exit 2; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

TMP=$(mktemp -d /tmp/cwsgi-bench-forking.XXXXXX)
PID=""
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2> /dev/null || true; wait "$PID" 2> /dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

cat > "$TMP/hello_wsgi.py" << 'EOF'
def app(environ, start_response):
    body = b"Hello, World!\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
EOF

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() { # start NAME PORT
    case $1 in
    forking) "$SERVE" --adapter forking -w 2 --bind "127.0.0.1:$2" "$HELLO" > "$TMP/log" 2>&1 & ;;
    forking-sync) "$SERVE" --adapter forking -w 2 -k gthread --threads 1 --bind "127.0.0.1:$2" "$HELLO" > "$TMP/log" 2>&1 & ;;
    nginx)
        mkdir -p "$TMP/nginx"
        cat > "$TMP/nginx/nginx.conf" << EOF
worker_processes 2;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    server {
        listen 127.0.0.1:$2;
        location / { default_type text/plain; return 200 "Hello, World!\n"; }
    }
}
EOF
        "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" > "$TMP/log" 2>&1 &
        ;;
    gunicorn) /usr/bin/python3 -m gunicorn -w 2 -k sync -b "127.0.0.1:$2" --chdir "$TMP" hello_wsgi:app > "$TMP/log" 2>&1 & ;;
    esac
    PID=$!
    i=0
    until curl -s "http://127.0.0.1:$2/" 2> /dev/null | grep -q '^Hello, World!$'; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "run-forking.sh: $1 did not answer" >&2; cat "$TMP/log" >&2; exit 1; }
        sleep 0.1
    done
}

stop() {
    kill "$PID"
    wait "$PID" 2> /dev/null || true
    PID=""
}

# The process tree under $PID: the master and its workers.
tree() {
    echo "$PID"
    for c in $(cat /proc/"$PID"/task/*/children 2> /dev/null); do echo "$c"; done
}
# CPU clock ticks (user + system, every thread) of the tree.
cpu_ticks() {
    t=0
    for p in $(tree); do
        # Fields after "pid (comm) ": a process title may hold spaces ("cwsgi: worker 1").
        v=$(sed 's/.*) //' /proc/"$p"/stat 2> /dev/null | awk '{print $12 + $13}')
        [ -n "$v" ] || v=0
        t=$((t + v))
    done
    echo $t
}
# RSS in KiB of the workers (the children; the process itself when it has none).
worker_rss() {
    kids=$(cat /proc/"$PID"/task/*/children 2> /dev/null || true)
    [ -n "$kids" ] || kids=$PID
    r=0
    for p in $kids; do
        v=$(awk '/^VmRSS/ {print $2}' /proc/"$p"/status 2> /dev/null || echo 0)
        r=$((r + v))
    done
    echo $r
}
HZ=$(getconf CLK_TCK)

round=1
while [ $round -le "$ROUNDS" ]; do
    for s in $SERVERS; do
        port=$(free_port)
        start "$s" "$port"
        c0=$(cpu_ticks)
        out=$(wrk -t "$WRK_THREADS" -c "$CONNECTIONS" -d "$DURATION" --latency "http://127.0.0.1:$port/")
        c1=$(cpu_ticks)
        rss=$(worker_rss)
        if echo "$out" | grep -q "Non-2xx"; then echo "run-forking.sh: $s answered non-2xx" >&2; exit 1; fi
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        n=$(echo "$out" | awk '/requests in/ {print $1}')
        errs=$(echo "$out" | awk '/Socket errors/ {print $0}' | sed 's/^ *//')
        p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
        p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
        us=$(echo "$c0 $c1 $n $HZ" | awk '{printf "%.1f", ($2 - $1) * 1e6 / $4 / $3}')
        echo "round $round $s $rps req/s, p50 $p50, p99 $p99, $us CPU us/req, workers RSS ${rss} KiB ${errs:+, $errs}"
        echo "$rps" >> "$TMP/rps.$s"
        echo "$us" >> "$TMP/us.$s"
        echo "$rss" >> "$TMP/rss.$s"
        stop
    done
    round=$((round + 1))
done

median() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
echo "medians:"
for s in $SERVERS; do
    echo "  $s $(median "$TMP/rps.$s") req/s, $(median "$TMP/us.$s") CPU us/req, workers RSS $(median "$TMP/rss.$s") KiB"
done
ratio() { echo "$(median "$TMP/rps.$1") $(median "$TMP/rps.$2")" | awk '{printf "%.2f", $1 / $2}'; }
for s in forking forking-sync; do
    case " $SERVERS " in *" $s "*) ;; *) continue ;; esac
    case " $SERVERS " in *" nginx "*) echo "  $s / nginx: $(ratio "$s" nginx) (target 0.90)" ;; esac
    case " $SERVERS " in *" gunicorn "*) echo "  $s / gunicorn sync: $(ratio "$s" gunicorn) (target 8)" ;; esac
done
