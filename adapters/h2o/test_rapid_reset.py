#!/usr/bin/python3
"""test_rapid_reset.py: the h2o adapter against HTTP/2 abuse, end to end.

Header limits: an HTTP/2 request with more fields than --limit-request-fields, or a field
larger than --limit-request-field-size, gets the core's 431 and never reaches the app
(libh2o 2.2.5 itself accepts a header list of any size).

Rapid reset (CVE-2023-44487):
One client opens an h2c connection and sends HEADERS followed at once by RST_STREAM(CANCEL), over
and over, for requests the app (apps/stream with a delay) is still working on when they are
reset. libh2o 2.2.5 frees the stream's concurrency slot at each reset, so without the adapter's
guard the client could keep the app busy without limit. The adapter must close that connection,
and a second, well-behaved client must get its answer quickly meanwhile.
Usage: test_rapid_reset.py CWSGI_SERVE STREAM_SO
rule: LIMIT-2 (431 for HTTP/2 header lists over the limits)
"""
import os
import re
import socket
import subprocess
import sys
import tempfile
import time


def frame(ftype, flags, sid, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload


def headers_block(path):
    # HPACK: :method GET (static 2), :scheme http (6), :path and :authority as literals
    # without indexing, their names from the static table (4 and 1).
    auth = b"127.0.0.1"
    return b"\x82\x86" + b"\x04" + bytes([len(path)]) + path + b"\x01" + bytes([len(auth)]) + auth


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(PREFACE + frame(4, 0, 0))
    return s


def well_behaved_get(port):
    """One GET on a fresh h2c connection; returns the seconds until its END_STREAM."""
    t0 = time.monotonic()
    s = connect(port)
    s.sendall(frame(1, 5, 1, headers_block(b"/?n=1&m=4")))
    buf = b""
    deadline = t0 + 10
    while time.monotonic() < deadline:
        d = s.recv(65536)
        if not d:
            break
        buf += d
        off = 0
        while off + 9 <= len(buf):
            n = int.from_bytes(buf[off:off + 3], "big")
            ftype, flags, sid = buf[off + 3], buf[off + 4], int.from_bytes(buf[off + 5:off + 9], "big") & 0x7FFFFFFF
            if off + 9 + n > len(buf):
                break
            if ftype == 4 and not flags & 1:
                s.sendall(frame(4, 1, 0))  # SETTINGS ack
            if sid == 1 and ftype in (0, 1) and flags & 1:
                s.close()
                return time.monotonic() - t0
            off += 9 + n
    s.close()
    raise AssertionError("the well-behaved client got no complete answer")


def read_frames_until_end(s, sid, seconds=10):
    """Reads frames until stream `sid` ends; returns True if it did."""
    buf = b""
    deadline = time.monotonic() + seconds
    s.settimeout(1)
    while time.monotonic() < deadline:
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        if not d:
            return False
        buf += d
        off = 0
        while off + 9 <= len(buf):
            n = int.from_bytes(buf[off:off + 3], "big")
            if off + 9 + n > len(buf):
                break
            ftype, flags = buf[off + 3], buf[off + 4]
            fsid = int.from_bytes(buf[off + 5:off + 9], "big") & 0x7FFFFFFF
            if fsid == sid and (ftype == 3 or (ftype in (0, 1) and flags & 1)):
                return True
            off += 9 + n
        buf = buf[off:]
    return False


def header_limits(port, access_log):
    """Two requests over the limits: 150 fields; one field of 10 KiB. Both get 431."""
    many = b"".join(b"\x00" + bytes([len(b"x-f%d" % i)]) + b"x-f%d" % i + b"\x01v" for i in range(150))
    big_value = b"v" * 10000
    # A literal value longer than 126 bytes takes HPACK's multi-byte length: 0x7f then 7-bit groups.
    n = len(big_value) - 127
    length = b"\x7f"
    while n >= 128:
        length += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    length += bytes([n])
    big = b"\x00\x05x-big" + length + big_value
    s = connect(port)
    # The big one needs a HEADERS frame above the 16 KiB default? 10 KiB fits.
    s.sendall(frame(1, 5, 1, headers_block(b"/limits-many") + many))
    assert read_frames_until_end(s, 1), "no answer to the request with 150 fields"
    s.sendall(frame(1, 5, 3, headers_block(b"/limits-big") + big))
    assert read_frames_until_end(s, 3), "no answer to the request with a 10 KiB field"
    s.close()
    for _ in range(50):
        text = open(access_log).read()
        if "/limits-many" in text and "/limits-big" in text:
            break
        time.sleep(0.1)
    for path in ("/limits-many", "/limits-big"):
        line = next((l for l in text.splitlines() if path in l), "")
        assert '" 431 ' in line, f"{path}: expected 431 in the access log, got {line!r}"


def main():
    serve, stream_so = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        log_path = os.path.join(tmp, "log")
        with open(log_path, "w") as log:
            proc = subprocess.Popen([serve, "--adapter", "h2o", "-k", "gthread", "--threads", "4", "--loop-threads", "2",
                                     "--bind", "127.0.0.1:0", "--graceful-timeout", "2",
                                     "--access-logfile", os.path.join(tmp, "access"), stream_so],
                                    stdout=log, stderr=subprocess.STDOUT)
        try:
            port = None
            for _ in range(100):
                m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", open(log_path).read())
                if m:
                    port = int(m.group(1))
                    break
                time.sleep(0.1)
            assert port, "no Listening line"
            header_limits(port, os.path.join(tmp, "access"))
            before = well_behaved_get(port)

            attacker = connect(port)
            attacker.settimeout(0.05)
            closed = False
            sent = 0
            latencies = []
            sid = 1
            deadline = time.monotonic() + 30
            while not closed and time.monotonic() < deadline and sent < 5000:
                batch = b""
                for _ in range(50):
                    batch += frame(1, 5, sid, headers_block(b"/?n=3&m=16&delay_ms=400"))
                    batch += frame(3, 0, sid, (8).to_bytes(4, "big"))  # RST_STREAM(CANCEL)
                    sid += 2
                    sent += 1
                try:
                    attacker.sendall(batch)
                except OSError:
                    closed = True
                    break
                try:
                    while True:
                        d = attacker.recv(65536)
                        if not d:
                            closed = True
                            break
                except socket.timeout:
                    pass
                except OSError:
                    closed = True
                if sent % 200 == 0:
                    latencies.append(well_behaved_get(port))
            latencies.append(well_behaved_get(port))
            attacker.close()
            assert closed, f"the server kept the connection open after {sent} reset streams"
            assert sent < 2000, f"closed only after {sent} reset streams"
            worst = max(latencies)
            # Wide margin for a noisy 2-core machine: the second client's answer takes one
            # request's time, not the attack's.
            assert worst < 3.0, f"the well-behaved client waited {worst:.2f} s (before the attack {before:.2f} s)"
            text = open(log_path).read()
            assert "rapid reset" in text, "no log line for the closed connection"
            print(f"ok: closed after {sent} reset streams; second client worst {worst * 1000:.0f} ms "
                  f"(before {before * 1000:.0f} ms)")
        except BaseException:
            # The server's side of a failure (a dead worker, a refused connection) is in its log.
            sys.stderr.write("server log:\n" + open(log_path).read()[-6000:])
            raise
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise


if __name__ == "__main__":
    main()
