#!/usr/bin/python3
"""lint_run.py: the conformance suite and the bad apps under cwsgi-lint (spec/composition.md,
COMP-LINT-6).

1. The bad apps. For each conformance/apps/bad_*.c in BAD_APPS, starts
     cwsgi-serve --adapter A -k MODE -b 127.0.0.1:0 -w 1 --lint bad_NAME.so
   sends one POST /bad with a 10-byte body, stops the server, and checks that lint's findings
   are exactly the expected multiset of rule IDs (no more, no fewer), all on the app side, and
   that a summary line was written. The cooperative bad apps run in gevent mode (their finding)
   and again in gthread mode (no finding: a sleep or a long computation on a pool thread keeps
   the cooperative promise moot, COMP-LINT-7/8).
2. The probe suite. Runs cwsgi-conformance with the given arguments plus --server-arg=--lint.
   Passes when the suite passes under lint (lint is transparent: COMP-LINT-3), the servers made
   no finding (every summary says "server 0", no finding line is marked "(server)"), and every
   app-side finding is one of PROBE_MISUSE: the probe's deliberate misuse, the cases that check
   that a server refuses a bad call.

Every finding and summary line reaches a scratch file through CWSGI_LINT_REPORT, which every
lint in every server process appends to.

rule: COMP-LINT-1, COMP-LINT-4, COMP-LINT-5, COMP-LINT-6, COMP-LINT-7, COMP-LINT-8

Usage: lint_run.py CWSGI-CONFORMANCE [driver arguments...]
  The driver arguments must include --adapter, --serve-bin and --probe (the bad apps are
  bad_*.so beside the probe or in <build>/conformance); -k gives the mode of the suite and of the
  bad apps.
"""
import collections
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

# app -> the findings lint must make, exactly: a list, or a dict keyed by the -k mode, else by
# the adapter, else "*" (for an app whose misuse only some modes or adapters can show).
BAD_APPS = {
    "after_commit": ["RESP-STATE-2"],
    "hop": ["RESP-HDR-3"],
    "crlf": ["RESP-HDR-2"],
    "length": ["RESP-LEN-3"],
    "write_after_finish": ["RESP-STATE-3"],
    "read_past": ["COMP-LINT-5"],
    "info_late": ["RESP-INFO-1"],
    "nobody": ["RESP-NOBODY-1"],
    "coop_sleep": {"gevent": ["COMP-LINT-7"], "gthread": []},
    "coop_busy": {"gevent": ["COMP-LINT-8"], "gthread": []},
    "stale_handle": ["LIFE-END-3"],
    "file_range": ["RESP-FILE-3"],
    "log_level": ["LOG-ERR-1"],
    "read_args": ["INPUT-READ-1"],
    "reason": ["RESP-START-3"],
    "wait_args": ["THR-6"],
    "other_thread": ["THR-2"],
    # h2o offers no request-trailers extension (no CWSGI_CAP_REQUEST_TRAILERS): nothing to misuse.
    "trailers_early": {"h2o": [], "*": ["EXT-TRAILERS-1"]},
}

# The app-side rules the probe breaks on purpose (its cases that check a server's refusal).
# Any other app-side finding in the suite run is a false positive of lint, or a probe bug.
PROBE_MISUSE = {
    "RESP-START-1", "RESP-START-3", "RESP-START-4", "RESP-START-5", "RESP-HDR-1", "RESP-HDR-2",
    "RESP-HDR-3", "RESP-STATE-2", "RESP-STATE-3", "RESP-BODY-1", "RESP-LEN-2", "RESP-LEN-3",
    "RESP-NOBODY-1", "RESP-NOBODY-2", "RESP-INFO-1", "RESP-INFO-2", "RESP-FILE-3", "INPUT-READ-1",
    "RESP-STATE-1", "COMP-LINT-5", "LOG-ERR-1",
}

DEADLINE_S = 30
FINDING = re.compile(r"cwsgi-lint: ([A-Z0-9-]+) \((app|server)\): ")


def arg_of(args, *names):
    for i, a in enumerate(args):
        for n in names:
            if a == n and i + 1 < len(args):
                return args[i + 1]
            if a.startswith(n + "="):
                return a.split("=", 1)[1]
    return None


def bad_app(probe, name):
    """bad_NAME.so: beside the probe, or in <build>/conformance when the probe is in <build>/apps."""
    here = os.path.dirname(os.path.abspath(probe))
    for d in (here, os.path.join(os.path.dirname(here), "conformance")):
        path = os.path.join(d, "bad_" + name + ".so")
        if os.path.exists(path):
            return path
    return os.path.join(here, "bad_" + name + ".so")


def read_report(path):
    return open(path).read().splitlines() if os.path.exists(path) else []


def serve_once(serve, adapter, mode, app, report):
    """Starts cwsgi-serve --lint on `app`, sends one POST /bad, stops it. Returns the log."""
    env = dict(os.environ, CWSGI_LINT_REPORT=report)
    p = subprocess.Popen([serve, "--adapter", adapter, "-k", mode, "-b", "127.0.0.1:0", "-w", "1", "--lint", app],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    out, port, ready = [], [None], threading.Event()

    def reader():
        for line in p.stdout:
            out.append(line)
            m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
            if m and port[0] is None:
                port[0] = int(m.group(1))
                ready.set()
        ready.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        if not ready.wait(DEADLINE_S) or port[0] is None:
            raise RuntimeError("server did not start")
        with socket.create_connection(("127.0.0.1", port[0]), timeout=DEADLINE_S) as s:
            s.sendall(b"POST /bad HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n"
                      b"Connection: close\r\n\r\n0123456789")
            end = time.monotonic() + DEADLINE_S
            while time.monotonic() < end:  # the whole response, however it ends (some are cut)
                try:
                    if not s.recv(65536):
                        break
                except (ConnectionResetError, socket.timeout):
                    break
    finally:
        p.terminate()
        try:
            p.wait(DEADLINE_S)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        t.join(DEADLINE_S)
    return "".join(out)


def check_bad_apps(args, tmp):
    serve, probe = arg_of(args, "--serve-bin"), arg_of(args, "--probe")
    adapter, mode = arg_of(args, "--adapter"), arg_of(args, "-k", "--worker-class") or "gevent"
    if not (serve and probe and adapter):
        print("FAIL: the bad apps need --serve-bin, --probe and --adapter among the driver arguments")
        return False
    ok = True
    for name, expected in BAD_APPS.items():
        by_mode = isinstance(expected, dict) and "gthread" in expected
        modes = [mode] + (["gthread"] if by_mode and mode != "gthread" else [])
        for m in modes:
            want = expected
            if isinstance(expected, dict):
                want = expected.get(m, expected.get(adapter, expected.get("*", [])))
            app = bad_app(probe, name)
            report = os.path.join(tmp, f"bad-{name}-{m}.txt")
            try:
                log = serve_once(serve, adapter, m, app, report)
            except (RuntimeError, OSError) as e:
                print(f"FAIL bad_{name} ({adapter}, {m}): {e}")
                ok = False
                continue
            lines = read_report(report)
            got = collections.Counter(f.group(1) for l in lines for f in [FINDING.match(l)] if f)
            sides = {f.group(2) for l in lines for f in [FINDING.match(l)] if f}
            summaries = [l for l in lines if l.startswith("cwsgi-lint: summary")]
            if got != collections.Counter(want) or sides - {"app"} or not summaries:
                print(f"FAIL bad_{name} ({adapter}, {m}): findings {dict(got)}, want exactly {want}")
                print("".join("    " + l + "\n" for l in lines) + "  server log:\n" + log[-3000:])
                ok = False
            else:
                print(f"ok bad_{name} ({adapter}, {m}): {want or 'no finding'}")
    return ok


def check_suite(args, tmp):
    report = os.path.join(tmp, "lint-report.txt")
    env = dict(os.environ, CWSGI_LINT_REPORT=report)
    cmd = [*args, "--server-arg=--lint"]
    print("running:", " ".join(cmd), flush=True)
    rc = subprocess.run(cmd, env=env, timeout=1500).returncode
    lines = read_report(report)
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
    for l in lines:
        m = re.match(r"cwsgi-lint: ([A-Z0-9-]+) \(app\): ", l)
        if m and m.group(1) not in PROBE_MISUSE:
            print("FAIL: an app finding the probe does not make on purpose:", l)
            ok = False
    return ok


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    args = sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="cwsgi-lint-run-") as tmp:
        ok = check_bad_apps(args[1:], tmp)
        ok = check_suite(args, tmp) and ok
    print("PASS" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
