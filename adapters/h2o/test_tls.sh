#!/usr/bin/env bash
# test_tls.sh: the h2o adapter over TLS with ALPN, end to end: a self-signed certificate made
# now with openssl (no key is ever committed), cwsgi-serve --certfile/--keyfile serving
# apps/hello, and curl negotiating h2 and http/1.1 (and nghttp, when installed), both
# execution modes; then a graceful stop. Usage: test_tls.sh CWSGI_SERVE HELLO_SO
# rule: ENV-KEYS-6 (cwsgi.url_scheme is "https" over TLS: the last check)
set -euo pipefail
serve=$1
hello=$2
env_app=${3:-}
dir=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 1 \
    -subj /CN=localhost >/dev/null 2>&1

fail() { echo "FAIL: $*"; cat "$dir/log" 2>/dev/null || true; exit 1; }

start() { # start MODE APP: cwsgi-serve on a free port; sets pid and port
    : >"$dir/log"
    "$serve" --adapter h2o -k "$1" --bind 127.0.0.1:0 --certfile "$dir/cert.pem" --keyfile "$dir/key.pem" \
        --graceful-timeout 5 "$2" >"$dir/log" 2>&1 &
    pid=$!
    port=
    for _ in $(seq 100); do # up to 10 s for the "Listening at" line
        port=$(sed -n 's/.*Listening at: [a-z]*:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$dir/log" | head -1)
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || fail "cwsgi-serve exited"
        sleep 0.1
    done
    [ -n "$port" ] || fail "no Listening line"
    grep -q "Listening at: https://127\.0\.0\.1:$port " "$dir/log" || fail "the Listening line does not say https://"
}

stop() {
    kill -TERM "$pid"
    wait "$pid" || fail "cwsgi-serve exited with $? after SIGTERM"
    pid=
}

for mode in gevent gthread; do
    start "$mode" "$hello"
    out=$(curl -sk --max-time 10 --http2 -w ' %{http_version}' "https://127.0.0.1:$port/") || fail "curl h2"
    [ "$out" = "Hello, World!
 2" ] || fail "$mode: h2 over TLS answered '$out'"
    out=$(curl -sk --max-time 10 --http1.1 -w ' %{http_version}' "https://127.0.0.1:$port/") || fail "curl http/1.1"
    [ "$out" = "Hello, World!
 1.1" ] || fail "$mode: http/1.1 over TLS answered '$out'"
    if command -v nghttp >/dev/null; then
        nghttp -v "https://127.0.0.1:$port/" 2>&1 | grep -q "The negotiated protocol: h2" || fail "$mode: nghttp did not get h2"
    fi
    # Plain HTTP on a TLS listener gets no answer it could take for HTTP.
    if curl -s --max-time 5 "http://127.0.0.1:$port/" | grep -q Hello; then fail "$mode: cleartext served on TLS"; fi
    stop
    echo "ok $mode"
done

if [ -n "$env_app" ]; then
    start gthread "$env_app"
    curl -sk --max-time 10 --http2 "https://127.0.0.1:$port/" | grep -q '"cwsgi.url_scheme": *"https"' ||
        fail "url_scheme is not https over TLS"
    stop
    echo "ok url_scheme"
fi
