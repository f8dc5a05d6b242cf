"""The same requests through the cffi host and through the C test host (lib/testhost, the
C core in process, itself loaded with cffi from include/cwsgi/testhost.h): status, body,
outcome and the app's headers agree. The C side may add the fields framing needs (RESP-HDR-4)."""
import json
import os
import re

import cffi
import pytest

import cwsgi_host
from conftest import BUILD, app_path

TESTHOST_H = os.path.join(os.path.dirname(cwsgi_host.HEADER), "cwsgi", "testhost.h")


def _testhost():
    path = os.path.join(BUILD, "lib", "libcwsgi-testhost.so")
    if not os.path.exists(path):
        pytest.skip("%s is not built" % path)
    with open(TESTHOST_H, encoding="utf-8") as f:
        text = cwsgi_host._strip_comments(f.read())
    start = text.index("typedef struct cwsgi_testhost cwsgi_testhost;")
    end = text.rindex(";") + 1
    lines = [ln for ln in text[start:end].splitlines() if not ln.lstrip().startswith("#")]
    ffi = cffi.FFI()
    ffi.cdef(cwsgi_host.cdef_from_header())
    ffi.cdef("\n".join(lines).replace("CWSGI_TESTHOST_API", ""))
    return ffi, ffi.dlopen(path)


@pytest.fixture(scope="module")
def c_side():
    return _testhost()


def c_request(c_side, name, method, target, headers, body, chunked, chunk, disconnect_after=-1):
    ffi, lib = c_side
    keep = []
    err = ffi.new("char[512]")
    opts = ffi.new("cwsgi_testhost_options *")
    opts.struct_size = ffi.sizeof("cwsgi_testhost_options")
    opts.log_level = cwsgi_host.DEFINES["CWSGI_LOG_ERROR"]
    host = lib.cwsgi_testhost_open(app_path(name).encode(), opts, err, 512)
    assert host != ffi.NULL, ffi.string(err)
    hs = ffi.new("cwsgi_header[]", max(len(headers), 1))
    for i, (n, v) in enumerate(headers):
        n, v = ffi.new("char[]", n.encode()), ffi.new("char[]", v.encode())
        keep += [n, v]
        hs[i].name, hs[i].name_len = n, len(ffi.string(n))
        hs[i].value, hs[i].value_len = v, len(ffi.string(v))
    req = ffi.new("cwsgi_test_request *")
    req.struct_size = ffi.sizeof("cwsgi_test_request")
    m, t = ffi.new("char[]", method.encode()), ffi.new("char[]", target.encode())
    keep += [m, t]  # a cdata stored only in a struct field would be freed at once
    req.method, req.target = m, t
    req.headers, req.n_headers = hs, len(headers)
    if body is not None:
        b = ffi.new("char[]", body)
        keep.append(b)
        req.body, req.body_len = b, len(body)
    req.chunked, req.read_piece, req.disconnect_after = chunked, chunk or 0, disconnect_after
    out = ffi.new("cwsgi_test_response **")
    assert lib.cwsgi_testhost_request(host, req, out) == cwsgi_host.OK
    r = out[0]
    got = {"status": r.status, "handle_result": r.handle_result, "body": ffi.unpack(r.body, r.body_len), "outcome": r.outcome,
           "framing": {0: "none", 1: "length", 2: "chunked"}.get(r.framing),
           "headers": [(ffi.unpack(r.headers[i].name, r.headers[i].name_len).lower(),
                        ffi.unpack(r.headers[i].value, r.headers[i].value_len))
                       for i in range(r.n_headers)]}
    lib.cwsgi_test_response_free(r)
    lib.cwsgi_testhost_close(host)
    return got


CASES = [
    ("hello", "GET", "/anything?at=all", [], None, 0, None),
    ("hello", "HEAD", "/", [], None, 0, None),
    ("echo", "PUT", "/", [("Content-Type", "a/b")], bytes(range(256)) * 700, 0, 4096),
    ("echo", "POST", "/", [], b"chunky" * 5000, 1, 777),
    ("stream", "GET", "/?n=7&m=333", [], None, 0, None),
    ("stream", "GET", "/?n=oops", [], None, 0, None),
    ("predict", "POST", "/v1/predict", [("Content-Type", "application/json")],
     b'{"instances":[[5.1,3.5,1.4,0.2],[6.3,3.3,6.0,2.5]]}', 0, None),
    ("predict", "POST", "/v1/predict", [], b"{", 0, None),
    ("predict", "POST", "/v1/predict", [], b'{"features":[1]}', 0, None),
    ("predict", "GET", "/v1/predict", [], None, 0, None),
    ("predict", "GET", "/nowhere", [], None, 0, None),
]


@pytest.mark.parametrize("name,method,target,headers,body,chunked,chunk", CASES,
                         ids=["%s-%d" % (c[0], i) for i, c in enumerate(CASES)])
def test_the_two_hosts_agree(c_side, name, method, target, headers, body, chunked, chunk):
    c = c_request(c_side, name, method, target, headers, body, chunked, chunk)
    host = cwsgi_host.Host(app_path(name))
    try:
        r = host.request(method, target, headers, body=body, chunked=bool(chunked), chunk=chunk)
    finally:
        host.close()
    assert (r.status, r.body, r.outcome) == (c["status"], c["body"], c["outcome"])
    for n, v in r.headers:
        assert (n.lower(), v) in c["headers"], (n, v, c["headers"])
    assert r.framing == c["framing"]


def test_the_two_hosts_give_env_the_same_keys(c_side):
    headers = [("Host", "h.example:81"), ("X-A", "1"), ("X_B", "2"), ("Cookie", "a"),
               ("cookie", "b"), ("Content-Type", "t/t")]
    c = c_request(c_side, "env", "POST", "/p%2Fq/r?s=t", headers, b"xyz", 0, None)
    host = cwsgi_host.Host(app_path("env"))
    r = host.request("POST", "/p%2Fq/r?s=t", headers, body=b"xyz")
    host.close()
    ce, pe = json.loads(c["body"]), json.loads(r.body)
    assert list(ce["environ"]) == list(pe["environ"])  # rule: ENV-KEYS-2
    assert ce["headers"] == pe["headers"]
    same = [k for k in ce["environ"] if not re.match(r"REMOTE_|cwsgi\.local_|cwsgi\.request_id", k)]
    assert {k: ce["environ"][k] for k in same} == {k: pe["environ"][k] for k in same}


def test_the_two_hosts_agree_on_a_client_that_leaves(c_side):
    c = c_request(c_side, "stream", "GET", "/?n=1000&m=1000", [], None, 0, None, 5000)
    host = cwsgi_host.Host(app_path("stream"))
    r = host.request("GET", "/?n=1000&m=1000", disconnect_after=5000)
    host.close()
    assert (r.status, r.outcome, r.handle_result) == (c["status"], c["outcome"],
                                                     c["handle_result"])
    assert r.outcome == cwsgi_host.E["DISCONNECTED"]  # rule: LIFE-END-2
