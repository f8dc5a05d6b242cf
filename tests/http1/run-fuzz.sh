#!/bin/sh
# run-fuzz.sh: runs lib/http1's libFuzzer target for a bounded time, as a registered test.
#   run-fuzz.sh FUZZER SEEDS WORKDIR [SECONDS]   run it on our seeds (tests/http1/fuzz-seeds)
#   run-fuzz.sh --skip WHY                        report the test as skipped (exit 77)
# New inputs go to WORKDIR/corpus (kept between runs, never into the source tree); a crash,
# leak or sanitizer report leaves its input in WORKDIR/artifacts and fails the test.
set -eu
if [ "$1" = "--skip" ]; then
    echo "test_http1_fuzz: skipped: $2"
    exit 77
fi
fuzzer=$1 seeds=$2 work=$3 seconds=${4:-20}
mkdir -p "$work/corpus" "$work/artifacts"
exec "$fuzzer" -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" "$seeds"
