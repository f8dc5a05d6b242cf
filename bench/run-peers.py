#!/usr/bin/python3
"""run-peers.py: CWSGI against the servers its users run today, in one run, rounds alternating.

  bench/run-peers.py [--build DIR] [--rounds N] [--duration S] [--connections C] [--only NAME,...]

Servers (each one skipped, with the reason, when its program is missing):
  h2o-gevent        cwsgi-serve --adapter h2o -k gevent -w 2 --loop-threads 1 apps/hello.so
  h2o-gthread       cwsgi-serve --adapter h2o -k gthread -w 2 --loop-threads 1 apps/hello.so
  forking           cwsgi-serve --adapter forking -w 2 apps/hello.so, its default worker class
                    (when the adapter is built)
  nginx             nginx, worker_processes 2, `return 200 "Hello, World!\\n"`, no access log
  gunicorn-wsgi     gunicorn -k sync -w 2, a plain WSGI hello (bench/peers/wsgi_hello.py)
  gunicorn-flask    gunicorn -k sync -w 2, Flask hello (bench/peers/flask_app.py)
  predict-h2o       cwsgi-serve --adapter h2o -k gevent -w 2 --loop-threads 1 apps/predict.so, POST
  predict-forking   the same on the forking adapter (when built)
  predict-flask     gunicorn -k sync -w 2, the same API in Flask (bench/peers/flask_app.py), POST

Every server gets 2 worker processes, as the issues' comparisons ask, and the same load: wrk
-t2 -cC -dS --latency, keep-alive (gunicorn's sync worker closes after each response; that is
its behaviour, not the client's). The POST servers get bench/post-predict.lua.

Per server, medians over the rounds: requests/s, p50 and p99 latency, server CPU µs per request
(user + system time of the server's whole process tree, from /proc, over the wrk run), the
largest worker's RSS, and errors (socket errors and non-2xx answers, which wrk counts). Ratios:
each hello server against nginx and against gunicorn-wsgi, each predict server against
predict-flask. On a 2-CPU machine wrk shares the CPUs with the server: compare within one run,
and trust CPU µs per request over requests/s (bench/README.md).

A benchmark, not a test: it fails only when a server does not start or answers wrongly. It
stops only the processes it started. Peers come from Debian: scripts/install-deps --bench.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HELLO_BODY = "Hello, World!\n"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NGINX_CONF = """worker_processes 2;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
    server {{
        listen 127.0.0.1:{port};
        default_type text/plain;
        location / {{ return 200 "Hello, World!\\n"; }}
    }}
}}
"""


class Server:
    """One server under test: how to start it, and what a correct answer looks like."""

    def __init__(self, name, kind, argv_fn, post=False, needs=(), env=None, cwd=None):
        self.name, self.kind, self.argv_fn, self.post = name, kind, argv_fn, post
        self.needs, self.env, self.cwd = needs, env, cwd

    def missing(self):
        for n in self.needs:
            if os.path.sep in n:
                if not os.path.exists(n):
                    return n
            elif shutil.which(n) is None:
                return n
        return None


def servers(build, tmp):
    serve = os.path.join(build, "src", "cwsgi-serve")
    hello = os.path.join(build, "apps", "hello.so")
    predict = os.path.join(build, "apps", "predict.so")
    peers = os.path.join(HERE, "peers")
    py = "/usr/bin/python3"

    def cwsgi(adapter, mode, app, extra=()):
        kind = ["-k", mode] if mode else []  # None: the adapter's default worker class
        return lambda port: [serve, "--adapter", adapter, *kind, "-w", "2", *extra,
                             "--bind", "127.0.0.1:%d" % port, app]

    def gunicorn(module):
        return lambda port: [py, "-m", "gunicorn", "-k", "sync", "-w", "2", "--bind",
                             "127.0.0.1:%d" % port, "--log-level", "warning", module]

    def nginx(port):
        os.makedirs(os.path.join(tmp, "nginx"), exist_ok=True)
        conf = os.path.join(tmp, "nginx", "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(tmp=os.path.join(tmp, "nginx"), port=port))
        return ["nginx", "-p", os.path.join(tmp, "nginx"), "-c", conf]

    one_loop = ("--loop-threads", "1")
    return [
        Server("h2o-gevent", "hello", cwsgi("h2o", "gevent", hello, one_loop), needs=(serve, hello)),
        Server("h2o-gthread", "hello", cwsgi("h2o", "gthread", hello, one_loop), needs=(serve, hello)),
        Server("forking", "hello", cwsgi("forking", None, hello), needs=(serve, hello, "adapter:forking")),
        Server("nginx", "hello", nginx, needs=("nginx",)),
        Server("gunicorn-wsgi", "hello", gunicorn("wsgi_hello:app"), needs=("gunicorn",), cwd=peers),
        Server("gunicorn-flask", "hello", gunicorn("flask_app:app"), needs=("gunicorn", "python3-flask"), cwd=peers),
        Server("predict-h2o", "predict", cwsgi("h2o", "gevent", predict, one_loop), post=True, needs=(serve, predict)),
        Server("predict-forking", "predict", cwsgi("forking", None, predict), post=True,
               needs=(serve, predict, "adapter:forking")),
        Server("predict-flask", "predict", gunicorn("flask_app:app"), post=True,
               needs=("gunicorn", "python3-flask"), cwd=peers),
    ]


def adapter_built(serve, name):
    """Whether cwsgi-serve has the adapter `name` built in (--list-adapters: "NAME built ...")."""
    try:
        out = subprocess.run([serve, "--list-adapters"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return re.search(r"^%s\s+built\b" % re.escape(name), out, re.M) is not None


def have_flask():
    return subprocess.run(["/usr/bin/python3", "-c", "import flask"], capture_output=True).returncode == 0


def tree_pids(root):
    """The pid `root` and all its descendants, from /proc."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(d))
        except (OSError, IndexError):
            continue
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (after the state field)
        except (OSError, IndexError):
            continue
    return total / CLK_TCK


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def check(port, post):
    """One request as wrk will send it; True when the answer is right."""
    if post:
        req = urllib.request.Request("http://127.0.0.1:%d/v1/predict" % port,
                                     data=b'{"features":[6.3,3.3,6.0,2.5]}',
                                     headers={"Content-Type": "application/json"})
        want = '"predictions":[0.998'
    else:
        req = urllib.request.Request("http://127.0.0.1:%d/" % port)
        want = HELLO_BODY
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return r.status == 200 and want in r.read().decode()
    except OSError:
        return False


def start(server, tmp):
    port = free_port()
    argv = server.argv_fn(port)
    log = open(os.path.join(tmp, server.name + ".log"), "w")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=server.cwd, start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if check(port, server.post):
            return proc, port
        time.sleep(0.1)
    stop(proc)
    with open(log.name) as f:
        sys.exit("run-peers.py: %s did not answer correctly on port %d:\n%s" % (server.name, port, f.read()[-2000:]))


def stop(proc):
    """SIGTERM to the process we started (its own group: the master and its workers), then KILL."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def parse_duration(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)", s)
    if not m:
        return float("nan")
    v = float(m.group(1))
    return v * {"us": 1e-3, "ms": 1, "s": 1e3, "m": 6e4}[m.group(2)]


def run_wrk(port, post, duration, connections):
    argv = ["wrk", "-t2", "-c%d" % connections, "-d%ds" % duration, "--latency"]
    url = "http://127.0.0.1:%d/" % port
    if post:
        argv += ["-s", os.path.join(HERE, "post-predict.lua")]
        url += "v1/predict"
    out = subprocess.run(argv + [url], capture_output=True, text=True, timeout=duration + 30).stdout
    res = {"rps": float("nan"), "p50": float("nan"), "p99": float("nan"), "errors": 0, "requests": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    if m:
        res["requests"] = int(m.group(1))
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(r"^\s+%s(?:\.000)?%%\s+(\S+)" % pct, out, re.M)
        if m:
            res[key] = parse_duration(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["errors"] += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["errors"] += int(m.group(1))
    res["raw"] = out
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--only", default="", help="comma-separated server names")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("run-peers.py: wrk not found (scripts/install-deps)")

    tmp = tempfile.mkdtemp(prefix="cwsgi-peers.")
    serve = os.path.join(args.build, "src", "cwsgi-serve")
    chosen = []
    only = {n for n in args.only.split(",") if n}
    flask = have_flask()
    forking = adapter_built(serve, "forking") if os.path.exists(serve) else False
    for s in servers(args.build, tmp):
        if only and s.name not in only:
            continue
        if "adapter:forking" in s.needs and not forking:
            print("skip %s: the forking adapter is not built" % s.name)
            continue
        if "python3-flask" in s.needs and not flask:
            print("skip %s: python3-flask is not installed (scripts/install-deps --bench)" % s.name)
            continue
        miss = s.missing()
        if miss and not miss.startswith(("adapter:", "python3-")):
            print("skip %s: %s not found (scripts/install-deps --bench)" % (s.name, miss))
            continue
        chosen.append(s)

    results = {s.name: [] for s in chosen}
    try:
        for r in range(args.rounds):
            for s in chosen:
                proc, port = start(s, tmp)
                run_wrk(port, s.post, 1, min(args.connections, 16))  # warm-up, not counted
                pids = tree_pids(proc.pid)
                cpu0 = cpu_seconds(pids)
                res = run_wrk(port, s.post, args.duration, args.connections)
                res["cpu_us"] = (cpu_seconds(pids) - cpu0) * 1e6 / max(res["requests"], 1)
                res["rss"] = max((rss_kib(p) for p in pids[1:] or pids), default=0)
                stop(proc)
                results[s.name].append(res)
                print("round %d %-16s %10.0f req/s %8.1f CPU us/req %6d errors" %
                      (r + 1, s.name, res["rps"], res["cpu_us"], res["errors"]), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    med = {n: {k: statistics.median(x[k] for x in rs) for k in ("rps", "p50", "p99", "cpu_us", "rss")}
           for n, rs in results.items() if rs}
    for n, rs in results.items():
        if rs:
            med[n]["errors"] = sum(x["errors"] for x in rs)
    print()
    print("wrk -t2 -c%d -d%ds, %d rounds alternating, medians; CPU: the server's process tree"
          % (args.connections, args.duration, args.rounds))
    print()
    print("| server | req/s | p50 ms | p99 ms | CPU µs/req | worker RSS KiB | errors | vs nginx | vs gunicorn-wsgi | vs predict-flask |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    def ratio(a, b):
        return "%.2f" % (med[a]["rps"] / med[b]["rps"]) if b in med and med[b]["rps"] > 0 else "-"

    for n, m in med.items():
        kind = next(s.kind for s in chosen if s.name == n)
        vs_nginx = ratio(n, "nginx") if kind == "hello" else "-"
        vs_gunicorn = ratio(n, "gunicorn-wsgi") if kind == "hello" else "-"
        vs_flask = ratio(n, "predict-flask") if kind == "predict" else "-"
        print("| %s | %.0f | %.2f | %.2f | %.1f | %d | %d | %s | %s | %s |" %
              (n, m["rps"], m["p50"], m["p99"], m["cpu_us"], m["rss"], m["errors"], vs_nginx, vs_gunicorn, vs_flask))


if __name__ == "__main__":
    main()
