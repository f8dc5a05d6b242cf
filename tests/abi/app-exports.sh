#!/usr/bin/env bash
# app-exports.sh DIR: every CWSGI app .so in DIR exports exactly one symbol, cwsgi_app_entry
# (ABI-LOAD-1), so that apps cannot clash with each other or with the server.
set -euo pipefail
dir=$1
n=0
for so in "$dir"/*.so; do
    [ -e "$so" ] || continue
    syms=$(nm -D --defined-only "$so" | awk '{print $3}' | sort -u)
    if [ "$syms" != "cwsgi_app_entry" ]; then
        echo "FAIL: $so exports more than the entry (ABI-LOAD-1):"
        echo "$syms" | sed 's/^/    /'
        exit 1
    fi
    n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "FAIL: no app found in $dir"; exit 1; }
echo "ok: $n apps export only cwsgi_app_entry"
