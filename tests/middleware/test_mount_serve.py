#!/usr/bin/python3
"""test_mount_serve.py: cwsgi-serve --mount and --lint end to end, on every built adapter.

For each adapter that `cwsgi-serve --list-adapters` reports built, starts
  cwsgi-serve --adapter A -b 127.0.0.1:0 --lint --mount /api=predict.so --mount /x=env.so hello.so
(hello.so, the APP argument, is the "/" fallback), and checks over loopback that predict answers
under /api, env under /x reports SCRIPT_NAME /x and the rest as PATH_INFO, /xy falls back to
hello, and at exit lint's summary says 0 findings. Then --mount without a fallback answers 404.
It also checks that docs/composition.md shows middleware/timing/timing.cc as it is.
rule: COMP-MOUNT-1, COMP-MOUNT-2, COMP-MOUNT-3, COMP-LINT-1, COMP-LINT-4, COMP-MW-4

Usage: test_mount_serve.py CWSGI-SERVE BUILD-DIR
"""
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time

DEADLINE_S = 20


def start(serve, args):
    p = subprocess.Popen([serve, *args, "-b", "127.0.0.1:0", "-w", "1"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    out = []
    port = [None]
    ready = threading.Event()

    def reader():
        for line in p.stdout:
            out.append(line)
            m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
            if m:
                port[0] = int(m.group(1))
                ready.set()
        ready.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    if not ready.wait(DEADLINE_S) or port[0] is None:
        p.kill()
        p.wait()
        raise AssertionError("server did not start: " + "".join(out))
    return p, port[0], out, t


def stop(p, t):
    p.terminate()
    try:
        p.wait(DEADLINE_S)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    t.join(DEADLINE_S)


def get(port, target, method="GET", body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE_S)
    c.request(method, target, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def check_adapter(serve, build, adapter):
    apps = build + "/apps/"
    p, port, out, t = start(serve, ["--adapter", adapter, "--lint", "--mount", "/api=" + apps + "predict.so",
                                    "--mount", "/x=" + apps + "env.so", apps + "hello.so"])
    try:
        status, body = get(port, "/x/a/b?q=1")
        env = json.loads(body)["environ"]
        assert status == 200 and env["SCRIPT_NAME"] == "/x" and env["PATH_INFO"] == "/a/b", (status, body)
        status, body = get(port, "/x")
        env = json.loads(body)["environ"]
        assert env["SCRIPT_NAME"] == "/x" and env["PATH_INFO"] == "", body
        status, body = get(port, "/api/health")
        assert status == 200 and b"ok" in body.lower(), (status, body)
        status, body = get(port, "/xy")
        assert status == 200 and b"Hello" in body, (status, body)
        status, body = get(port, "/")
        assert status == 200 and b"Hello" in body, (status, body)
    finally:
        stop(p, t)
    log = "".join(out)
    summaries = re.findall(r"cwsgi-lint: summary \(worker \d+\): (\d+) findings", log)
    assert summaries and all(n == "0" for n in summaries), log
    assert "cwsgi-lint: " not in log.replace("cwsgi-lint: summary", ""), log

    p, port, out, t = start(serve, ["--adapter", adapter, "--mount", "/x=" + apps + "env.so"])
    try:
        status, _ = get(port, "/other")
        assert status == 404, status
        status, _ = get(port, "/x/")
        assert status == 200, status
    finally:
        stop(p, t)


def check_docs_example():
    """docs/composition.md shows the whole of middleware/timing/timing.cc: the two stay equal."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    doc = open(os.path.join(root, "docs", "composition.md")).read()
    block = doc.split("```cpp file=timing.cc env=CWSGI_INNER_APP=./inner_hello.so\n")[1].split("```")[0]
    source = open(os.path.join(root, "middleware", "timing", "timing.cc")).read()
    assert block == source, "docs/composition.md's timing block differs from middleware/timing/timing.cc"
    assert len(source.splitlines()) < 60, "the worked example must stay under 60 lines"


def main():
    serve, build = sys.argv[1], sys.argv[2]
    check_docs_example()
    listing = subprocess.run([serve, "--list-adapters"], capture_output=True, text=True, timeout=DEADLINE_S).stdout
    adapters = [l.split("\t")[0] for l in listing.splitlines() if "\tbuilt\t" in l]
    assert adapters, listing
    for a in adapters:
        check_adapter(serve, build, a)
        print(f"ok {a}: --mount /api, /x and the fallback; --lint with 0 findings; 404 without a fallback")
    # A bad --mount is refused at the command line (exit 2), an unloadable app at start.
    r = subprocess.run([serve, "--mount", "api=x.so"], capture_output=True, text=True, timeout=DEADLINE_S)
    assert r.returncode == 2 and "--mount" in r.stderr, (r.returncode, r.stderr)
    r = subprocess.run([serve, "--lint=loud", build + "/apps/hello.so"], capture_output=True, text=True,
                       timeout=DEADLINE_S)
    assert r.returncode == 2 and "--lint" in r.stderr, (r.returncode, r.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
