"""The response state machine of spec/response.md, driven through the table's C function
pointers by a misbehaving handler (`handle=`): each misuse gets the code the C core gives."""
import os
import tempfile

import pytest

import cwsgi_host
from cwsgi_host import E, OK, DROPPED, REPLACE, ffi
from conftest import app_path

INFO = cwsgi_host.DEFINES["CWSGI_LOG_INFO"]


@pytest.fixture
def host():
    h = cwsgi_host.Host(app_path("hello"))
    yield h
    h.close()
    assert h.errors == [], "a host callback raised: %r" % h.errors


def headers(*pairs):
    keep = [(ffi.new("char[]", n), ffi.new("char[]", v), len(n), len(v)) for n, v in pairs]
    arr = ffi.new("cwsgi_header[]", max(len(pairs), 1))
    for i, (n, v, nl, vl) in enumerate(keep):
        arr[i].name, arr[i].name_len, arr[i].value, arr[i].value_len = n, nl, v, vl
    return arr, len(pairs), keep


def run(host, fn, **request):
    """Runs fn(api, req) as the handle; returns (response, the codes fn recorded)."""
    got = []

    def handle(api, req):
        return fn(api, req, got)

    return host.request(handle=handle, **request), got


def test_calls_before_start_response_are_state_errors(host):  # rule: RESP-STATE-2
    def fn(api, req, got):
        got.append(api.write(req, b"x", 1))
        got.append(api.finish(req))
        got.append(api.send_file(req, 0, 0, 0))
        return OK
    r, got = run(host, fn)
    assert got == [E["STATE"]] * 3
    assert r.status == 500 and r.server_answered and r.outcome == E["APP"]  # rule: RESP-END-2


def test_second_start_response_needs_replace_and_no_commit(host):  # rule: RESP-START-4
    def fn(api, req, got):
        got.append(api.start_response(req, 200, ffi.NULL, ffi.NULL, 0, 0))
        got.append(api.start_response(req, 201, ffi.NULL, ffi.NULL, 0, 0))
        got.append(api.start_response(req, 404, b"Gone Fishing", ffi.NULL, 0, REPLACE))
        got.append(api.write(req, b"body", 4))
        got.append(api.start_response(req, 500, ffi.NULL, ffi.NULL, 0, REPLACE))
        got.append(api.finish(req))
        got.append(api.finish(req))
        got.append(api.write(req, b"late", 4))
        got.append(api.start_response(req, 200, ffi.NULL, ffi.NULL, 0, 0))
        got.append(api.read(req, ffi.new("char[8]"), 8))
        return OK
    r, got = run(host, fn)
    assert got == [OK, E["STATE"], OK, OK, E["COMMITTED"], OK, E["STATE"], E["STATE"], E["STATE"],
                   E["STATE"]]  # rule: RESP-STATE-3
    assert (r.status, r.reason, r.body, r.outcome) == (404, b"Gone Fishing", b"body", OK)


def test_start_response_validates_everything_first(host):  # rule: RESP-START-3
    def fn(api, req, got):
        for status in (199, 600, 101):
            got.append(api.start_response(req, status, ffi.NULL, ffi.NULL, 0, 0))
        got.append(api.start_response(req, 200, ffi.NULL, ffi.NULL, 0, 0x2))
        got.append(api.start_response(req, 200, ffi.NULL, ffi.NULL, 1, 0))
        got.append(api.start_response(req, 200, b"bad\r\nreason", ffi.NULL, 0, 0))
        for pair in ((b"Bad Name", b"v"), (b"X", b"a\nb"), (b"Connection", b"close"),
                     (b"transfer-encoding", b"chunked"), (b"Status", b"200"),
                     (b"Content-Length", b"12x"), (b"", b"v")):
            arr, n, keep = headers(pair)
            got.append(api.start_response(req, 200, ffi.NULL, arr, n, 0))
        arr, n, keep = headers((b"Content-Length", b"3"), (b"Content-Length", b"4"))
        got.append(api.start_response(req, 200, ffi.NULL, arr, n, 0))
        got.append(api.write(req, b"x", 1))  # still fresh after every refusal
        arr, n, keep = headers((b"Content-Length", b"3"), (b"content-length", b"3"),
                               (b"X-Bytes", b"caf\xe9\t!"))
        got.append(api.start_response(req, 200, ffi.NULL, arr, n, 0))
        got.append(api.write(req, b"abcd", 4))  # RESP-LEN-2: past the length, nothing sent
        got.append(api.write(req, b"abc", 3))
        return OK
    r, got = run(host, fn)
    assert got == [E["STATUS"]] * 3 + [E["INVAL"], E["INVAL"], E["HEADER"],
                                       E["HEADER"], E["HEADER"], E["FORBIDDEN"], E["FORBIDDEN"],
                                       E["FORBIDDEN"], E["HEADER"], E["HEADER"], E["HEADER"],
                                       E["STATE"], OK, E["LENGTH"], OK]
    assert r.headers == [(b"Content-Length", b"3"), (b"X-Bytes", b"caf\xe9\t!")]
    assert r.body == b"abc" and r.outcome == OK


def test_a_short_body_is_aborted(host):  # rule: RESP-LEN-3
    def fn(api, req, got):
        arr, n, keep = headers((b"Content-Length", b"10"))
        got.append(api.start_response(req, 200, ffi.NULL, arr, n, 0))
        got.append(api.write(req, b"abc", 3))
        got.append(api.finish(req))
        return OK
    r, got = run(host, fn)
    assert got == [OK, OK, E["LENGTH"]] and r.outcome == E["ABORTED"]


def test_an_error_after_commit_aborts_and_before_commit_is_the_servers_answer(host):
    def after(api, req, got):
        api.start_response(req, 200, ffi.NULL, ffi.NULL, 0, 0)
        api.write(req, b"half", 4)
        return E["APP"]
    r, _ = run(host, after)
    assert (r.status, r.body, r.outcome) == (200, b"half", E["ABORTED"])  # rule: RESP-ERR-2

    def before(api, req, got):
        api.start_response(req, 201, ffi.NULL, ffi.NULL, 0, 0)
        return E["APP"]
    r, _ = run(host, before)
    assert (r.status, r.server_answered, r.outcome) == (500, True, E["APP"])  # rule: RESP-ERR-1


def test_implied_finish_and_zero_byte_write(host):  # rule: RESP-END-1
    def fn(api, req, got):
        got.append(api.start_response(req, 200, ffi.NULL, ffi.NULL, 0, 0))
        got.append(api.write(req, ffi.NULL, 0))  # RESP-BODY-3
        got.append(api.write(req, ffi.NULL, 5))
        return OK
    r, got = run(host, fn)
    assert got == [OK, OK, E["INVAL"]] and r.framing == "chunked" and r.outcome == OK


def test_send_file_copies_without_moving_the_offset(host):  # rule: RESP-FILE-1
    with tempfile.TemporaryFile() as f:
        data = bytes(range(256)) * 1000
        f.write(data)
        f.seek(7)
        fd = f.fileno()

        def fn(api, req, got):
            got.append(api.start_response(req, 200, ffi.NULL, ffi.NULL, 0, 0))
            got.append(api.send_file(req, fd, 10, 100000))
            got.append(api.send_file(req, fd, 200000, -1))
            got.append(api.send_file(req, fd, 0, len(data) + 1))  # RESP-FILE-3
            got.append(api.send_file(req, fd, -1, 1))
            got.append(api.send_file(req, 987654, 0, 1))
            return OK
        r, got = run(host, fn)
        assert got == [OK, OK, OK, E["INVAL"], E["INVAL"], E["INVAL"]]
        assert r.body == data[10:100010] + data[200000:]
        assert os.lseek(fd, 0, os.SEEK_CUR) == 7


def test_reads_and_environ_follow_their_contracts(host):
    def fn(api, req, got):
        buf = ffi.new("char[4]")
        got.append(api.read(req, ffi.NULL, 4))
        got.append(api.read(req, buf, 0))
        got.append(api.read(req, buf, 4))
        got.append(api.read(req, buf, 4))
        got.append(api.read(req, buf, 4))
        got.append(api.read(req, buf, 4))  # INPUT-READ-2: the end is sticky
        s = ffi.new("cwsgi_str *")
        got.append(api.environ_get(req, b"NO_SUCH", s))
        got.append(api.environ_get(req, ffi.NULL, s))
        got.append(api.environ_get(req, b"PATH_INFO", s))
        first = s.ptr
        got.append(ffi.string(s.ptr, s.len) == b"/p" and s.ptr[s.len] == b"\0")  # ABI-TYPE-2
        api.environ_get(req, b"PATH_INFO", s)
        got.append(s.ptr == first)  # ENV-KEYS-1: the same bytes at every call
        got.append(api.header_find(req, b"X-ONE", 1, s))
        got.append(ffi.string(s.ptr, s.len))
        got.append(api.header_find(req, b"x-one", 2, s))
        info = ffi.new("cwsgi_request_info *")
        info.struct_size = 4
        got.append(api.request_info(req, info))
        info.struct_size = ffi.sizeof("cwsgi_request_info")
        got.append(api.request_info(req, info))
        got.append((info.content_length, ffi.string(info.path_info.ptr)))
        return api.start_response(req, 204, ffi.NULL, ffi.NULL, 0, 0)
    r, got = run(host, fn, method="POST", target="/p", body=b"123456",
                 headers=[("X-One", "a"), ("x-one", " b ")])
    assert got == [E["INVAL"], E["INVAL"], 4, 2, 0, 0, E["NOTFOUND"], E["INVAL"], OK, True, True,
                   OK, b"b", E["NOTFOUND"], E["INVAL"], OK, (6, b"/p")]  # rule: ENV-HDR-2
    assert r.status == 204


def test_server_info_settings_and_the_rest_of_the_table():
    host = cwsgi_host.Host(app_path("hello"), settings=[("a.b", "1"), ("name", "x")])
    api = host.api
    info = ffi.new("char[]", 200)
    si = ffi.cast("cwsgi_server_info *", info)
    si.struct_size = 3
    assert api.server_info(si) == E["INVAL"]
    si.struct_size = 200  # ABI-STRUCT-2: zeros past the host's own struct, size kept
    ffi.memmove(info + 4, b"\xff" * 196, 196)
    assert api.server_info(si) == OK and si.struct_size == 200
    assert ffi.string(si.adapter.ptr, si.adapter.len) == b"python-cffi"
    assert not any(ffi.buffer(info, 200)[ffi.sizeof("cwsgi_server_info"):])
    s, k = ffi.new("cwsgi_str *"), ffi.new("cwsgi_str *")
    assert api.setting_get(b"a.b", s) == OK and ffi.string(s.ptr, s.len) == b"1"
    assert api.setting_get(b"A.B", s) == E["NOTFOUND"] and api.setting_get(ffi.NULL, s) == E["INVAL"]
    assert api.setting_at(1, k, s) == OK and ffi.string(k.ptr) == b"name"
    assert api.setting_at(2, k, s) == E["NOTFOUND"]  # rule: LIFE-SET-1
    assert api.get_extension(b"cwsgi.request_trailers", 1) == ffi.NULL  # rule: EXT-2
    assert api.is_shutting_down() == 0

    def fn(api, req, got):
        got.append(api.send_informational(req, 103, ffi.NULL, 0))  # RESP-INFO-3
        got.append(api.is_disconnected(req))
        got.append(api.log(req, INFO, b"hello log", 9))
        got.append(api.log(req, INFO, ffi.NULL, 3))
        p = api.alloc(req, 16)
        got.append(p != ffi.NULL)
        api.set_user_data(req, p)
        got.append(api.get_user_data(req) == p)
        got.append(api.wait_fd(req, -1, cwsgi_host.WAIT_READ, 0))
        got.append(api.wait_fd(req, -1, 0, 1))
        got.append(api.start_response(req, 200, ffi.NULL, ffi.NULL, 0, 0))
        got.append(api.send_informational(req, 103, ffi.NULL, 0))
        got.append(req)
        return OK
    r, got = run(host, fn)
    stale = got.pop()
    assert got == [DROPPED, 0, OK, E["INVAL"], True, True, E["INVAL"], E["TIMEOUT"], OK,
                   E["STATE"]]
    assert (INFO, "hello log") in host.logs
    # RESP-STATE-1: a handle whose request ended is refused, never a crash.
    assert api.write(stale, b"x", 1) == E["INVAL"] and api.is_disconnected(stale) == 1
    assert api.alloc(stale, 1) == ffi.NULL and api.alloc(ffi.NULL, 1) == ffi.NULL
    host.close()
    assert host.errors == []
