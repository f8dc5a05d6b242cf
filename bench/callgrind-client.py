#!/usr/bin/python3
"""callgrind-client.py: the deterministic client and the profile reader of callgrind-hello.sh.

  callgrind-client.py HOST PORT N     sends N keep-alive "GET /" requests on one connection,
                                      one at a time, and checks every answer is a 200
  callgrind-client.py --table DIR N [LIB]
                                      reads DIR/{gevent,gthread,peer,core}.{N,2N}.PID.out (one
                                      profile per process: the master and its worker are added up)
                                      and prints the instructions per request: (cost(2N) - cost(N)) / N,
                                      split into LIB's (libmicrohttpd, the default, or libh2o) and ours

The profiles are read directly (see split()), so nothing but the standard library is needed. Python's stdlib only: /usr/bin/python3 has just Debian's packages.
"""
import glob
import os
import re
import socket
import sys


def client(host, port, n):
    request = b"GET / HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host.encode(), port)
    with socket.create_connection((host, port), timeout=60) as s:
        buf = b""
        for _ in range(n):
            s.sendall(request)
            while True:
                end = buf.find(b"\r\n\r\n")
                if end >= 0:
                    head = buf[:end].decode("latin-1")
                    m = re.search(r"(?im)^content-length:\s*(\d+)", head)
                    length = int(m.group(1)) if m else 0
                    if len(buf) >= end + 4 + length:
                        break
                chunk = s.recv(65536)
                if not chunk:
                    raise SystemExit("connection closed early")
                buf += chunk
            if not head.startswith("HTTP/1.1 200"):
                raise SystemExit("unexpected answer: " + head.splitlines()[0])
            buf = buf[end + 4 + length:]


LIBS = ("libc.so", "libstdc++.so", "libm.so", "libgcc_s.so", "libpthread.so")


def is_lib(ob):
    return any(os.path.basename(ob).startswith(lib) for lib in LIBS)


def split(path, lib):
    """(total, lib, ours) instructions of one callgrind profile.

    The network library's share (`lib`: an object name such as libmicrohttpd or libh2o) is
    its own code plus the libc calls it makes (libmicrohttpd's per-request memset of the
    connection pool, its mutexes); ours is the rest but the dynamic loader: our code plus the
    libc/libstdc++ calls it makes. Self costs come from the "ob=" context
    of each cost line; the line after "calls=" is a call's inclusive cost, counted only to
    move a libc call made by the library to its side.
    """
    names = {}
    self_cost = {}
    ob = "?"
    callee_ob = None
    in_call = False
    mhd_calls = 0
    total = 0

    def name_of(value):
        m = re.match(r"\((\d+)\)(?:\s+(.*))?$", value)
        if not m:
            return value
        if m.group(2):
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), value)

    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("ob="):
                ob = name_of(line[3:].strip())
            elif line.startswith("cob="):
                callee_ob = name_of(line[4:].strip())
            elif line.startswith("calls="):
                in_call = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                parts = line.split()
                if len(parts) < 2:
                    continue
                ir = int(parts[1])
                if in_call:
                    target = callee_ob if callee_ob is not None else ob
                    if lib in ob and is_lib(target):
                        mhd_calls += ir
                    in_call = False
                    callee_ob = None
                    continue
                self_cost[ob] = self_cost.get(ob, 0) + ir
                total += ir
            elif line.startswith("fn="):
                callee_ob = None
    mhd = sum(v for k, v in self_cost.items() if lib in k) + mhd_calls
    loader = sum(v for k, v in self_cost.items() if os.path.basename(k).startswith("ld-linux"))
    return total, mhd, total - mhd - loader


def split_all(paths, lib):
    """split() of each profile, added up: the processes of one server run."""
    return [sum(parts) for parts in zip(*(split(p, lib) for p in paths))]


def table(directory, n, lib="libmicrohttpd"):
    print("instructions per request (callgrind, (cost of %d requests - cost of %d) / %d)" % (2 * n, n, n))
    print("(%s: its code and the libc calls it makes; ours: the rest but the loader)" % lib)
    print("%-28s %10s %14s %14s" % ("server", "total", lib, "ours+libc"))
    for name, label in (("gevent", "adapter -k gevent"), ("gthread", "adapter -k gthread"),
                        ("peer", "bare %s peer" % lib), ("core", "core alone (core_hello)")):
        a = glob.glob(os.path.join(directory, "%s.%d.*.out" % (name, n)))
        b = glob.glob(os.path.join(directory, "%s.%d.*.out" % (name, 2 * n)))
        if not (a and b):
            if name != "core":
                print("%-28s %10s" % (label, "n/a"))
            continue
        try:
            x, y = split_all(a, lib), split_all(b, lib)
        except (OSError, ValueError) as e:
            print("%-28s %10s (%s)" % (label, "n/a", e))
            continue
        per = [(q - p) / n for p, q in zip(x, y)]
        print("%-28s %10.0f %14.0f %14.0f" % (label, per[0], per[1], per[2]))


if __name__ == "__main__":
    if len(sys.argv) in (4, 5) and sys.argv[1] == "--table":
        table(sys.argv[2], int(sys.argv[3]), *sys.argv[4:])
    elif len(sys.argv) == 4:
        client(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
    else:
        raise SystemExit(__doc__)
