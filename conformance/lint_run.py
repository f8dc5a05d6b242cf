#!/usr/bin/python3
"""lint_run.py: the conformance suite under cwsgi-lint (spec/composition.md, COMP-LINT-6).

Runs cwsgi-conformance with the given arguments plus --server-arg=--lint, with CWSGI_LINT_REPORT
pointing at a scratch file that every lint in every server the driver starts appends its
findings and summary lines to. Passes when the suite passes under lint (lint is transparent:
COMP-LINT-3) and the servers made no finding: every summary line says "server 0" and no finding
line is marked "(server)". The app-side findings are the probe's deliberate misuse (the cases
that check that a server refuses a bad call), counted per rule for the log, not failed on.

Usage: lint_run.py CWSGI-CONFORMANCE [driver arguments...]
"""
import collections
import os
import re
import subprocess
import sys
import tempfile


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="cwsgi-lint-run-") as tmp:
        report = os.path.join(tmp, "lint-report.txt")
        env = dict(os.environ, CWSGI_LINT_REPORT=report)
        cmd = [sys.argv[1], *sys.argv[2:], "--server-arg=--lint"]
        print("running:", " ".join(cmd), flush=True)
        rc = subprocess.run(cmd, env=env, timeout=1500).returncode
        lines = open(report).read().splitlines() if os.path.exists(report) else []
    summaries = [l for l in lines if l.startswith("cwsgi-lint: summary")]
    server = [l for l in lines if re.match(r"cwsgi-lint: [A-Z0-9-]+ \(server\): ", l)]
    app = collections.Counter(m.group(1) for l in lines
                              for m in [re.match(r"cwsgi-lint: ([A-Z0-9-]+) \(app\): ", l)] if m)
    print(f"lint: {len(summaries)} summaries, {len(server)} server findings, "
          f"{sum(app.values())} app findings (the probe's deliberate misuse): "
          + ", ".join(f"{k} x{v}" for k, v in sorted(app.items())))
    ok = True
    if rc != 0:
        print(f"FAIL: the suite failed under lint (exit {rc}): lint is not transparent (COMP-LINT-3)")
        ok = False
    if not summaries:
        print("FAIL: no lint summary line: was the probe run under --lint? (COMP-LINT-4)")
        ok = False
    for l in server:
        print("FAIL: server finding:", l)
        ok = False
    for l in summaries:
        if not re.search(r", server 0\b", l):
            print("FAIL:", l)
            ok = False
    print("PASS" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
