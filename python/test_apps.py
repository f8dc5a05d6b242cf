"""The sample apps through the cffi host: the behaviour tests/apps/test_apps.c checks through
the C test host (lib/testhost), with the same expected values."""
import json
import os
import tempfile

import pytest

import cwsgi_host
from cwsgi_host import E, OK
from conftest import app_path


def pattern_body(n):
    """The deterministic body of test_apps.c's pattern_body."""
    return bytes(((((i * 31 + 7) >> 3) ^ i) & 0xFF) for i in range(n))


# ---- hello ---------------------------------------------------------------------------------

def test_hello_says_hello_with_length(open_app):
    host = open_app("hello")
    assert host.name == "hello"
    r = host.request("GET", "/anything?at=all")
    assert r.status == 200
    assert r.body == b"Hello, World!\n"
    assert r.header("Content-Length") == "14"
    assert r.header("Content-Type") == "text/plain; charset=utf-8"
    assert r.framing == "length"
    assert r.outcome == OK
    assert all(code >= 0 for _, code in r.calls), r.calls


def test_hello_answers_every_method_and_path_alike(open_app):
    host = open_app("hello")
    for method, target in (("HEAD", "/"), ("POST", "/x/y"), ("DELETE", "/?q")):
        r = host.request(method, target, body=b"ignored" if method == "POST" else None)
        assert r.status == 200
        assert r.body == (b"" if method == "HEAD" else b"Hello, World!\n")


# ---- echo ----------------------------------------------------------------------------------

def test_echo_round_trips_a_sized_body(open_app):
    host = open_app("echo")
    n = 3 * 1024 * 1024 + 17  # several 64 KiB pieces and a partial one
    body = pattern_body(n)
    r = host.request("PUT", "/echo", [("Content-Type", "application/x-test")], body=body)
    assert r.status == 200
    assert len(r.body) == n
    assert r.body == body
    assert r.header("Content-Type") == "application/x-test"
    assert r.header("Content-Length") == str(n)
    assert r.framing == "length"
    assert r.outcome == OK


def test_echo_round_trips_a_chunked_body_in_short_reads(open_app):
    host = open_app("echo")
    n = 200 * 1000 + 3
    body = pattern_body(n)
    r = host.request("POST", "/", body=body, chunked=True, chunk=1000)  # rule: INPUT-READ-1
    assert r.status == 200
    assert r.body == body
    assert r.header("Content-Length") is None
    assert r.header("Content-Type") is None  # none was sent
    assert r.framing == "chunked"
    reads = r.codes("read")
    assert len(reads) == 202 and reads[:-1] == [1000] * 200 + [3] and reads[-1] == 0


def test_echo_of_nothing_is_empty(open_app):
    r = open_app("echo").request("GET", "/")
    assert r.status == 200
    assert r.body == b""
    assert r.codes("read") == [0]


# ---- stream --------------------------------------------------------------------------------

def test_stream_sends_n_chunks_of_m_bytes(open_app):
    host = open_app("stream")
    r = host.request("GET", "/?n=5&m=100")
    assert r.status == 200
    assert r.body == b"".join(bytes([ord("a") + i]) * 100 for i in range(5))
    assert r.header("Content-Length") is None
    assert r.framing == "chunked"
    assert r.codes("write") == [OK] * 5
    r = host.request("GET", "/")  # defaults: 10 x 1024
    assert len(r.body) == 10 * 1024 and r.body[-1:] == b"j"
    r = host.request("GET", "/?n=0")
    assert r.status == 200 and r.body == b""


def test_stream_sends_a_big_body_in_many_writes(open_app):
    r = open_app("stream").request("GET", "/?n=2000&m=4096")
    assert r.status == 200
    assert len(r.body) == 2000 * 4096
    assert len(r.codes("write")) == 2000
    for i in (0, 25, 26, 1999):
        assert r.body[i * 4096:(i + 1) * 4096] == bytes([ord("a") + i % 26]) * 4096
    assert r.outcome == OK


@pytest.mark.parametrize("target", ["/?n=x", "/?n=", "/?m=-1", "/?n=100001", "/?m=1048577",
                                    "/?delay_ms=10001"])
def test_stream_refuses_a_bad_query(open_app, target):
    assert open_app("stream").request("GET", target).status == 400


def test_stream_stops_when_the_client_leaves(open_app):
    r = open_app("stream").request("GET", "/?n=1000&m=1000", disconnect_after=5000)
    assert r.status == 200
    assert len(r.body) == 5000
    assert r.outcome == E["DISCONNECTED"]  # rule: LIFE-END-2
    assert r.handle_result < 0
    assert len(r.codes("write")) < 1000


def test_stream_delay_paces_chunks_through_wait_fd(open_app):
    r = open_app("stream").request("GET", "/?n=3&m=2&delay_ms=5")
    assert r.status == 200
    assert r.body == b"aabbcc"
    assert r.codes("wait_fd") == [E["TIMEOUT"]] * 2  # rule: THR-6


# ---- env -----------------------------------------------------------------------------------

ALWAYS = ["REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME",
          "SERVER_PORT", "SERVER_PROTOCOL", "REQUEST_URI", "REMOTE_ADDR", "REMOTE_PORT",
          "cwsgi.url_scheme", "cwsgi.raw_path", "cwsgi.local_addr", "cwsgi.local_port",
          "cwsgi.request_id", "cwsgi.version"]


def env_of(r):
    assert r.status == 200
    assert r.header("Content-Type") == "application/json"
    assert r.header("Content-Length") == str(len(r.body))
    return json.loads(r.body)


def test_env_shows_environ_and_headers_as_json(open_app):
    host = open_app("env")
    r = host.request("GET", "/some/path?x=1&y=%20",
                     [("X-Quote", b'say "hi"\\'), ("X-Latin1", b"caf\xe9"), ("X-Dup", "1"),
                      ("X-Dup", "2")])
    assert r.body.startswith(b'{"environ":{') and r.body.endswith(b"]}\n")
    doc = env_of(r)
    env = doc["environ"]
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/some/path"
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["HTTP_X_QUOTE"] == 'say "hi"\\'
    assert env["HTTP_X_LATIN1"] == "caf\u00e9"
    assert env["HTTP_X_DUP"] == "1, 2"  # rule: ENV-HDR-4
    assert ["x-dup", "1"] in doc["headers"] and doc["headers"][-2:] == [["x-dup", "1"],
                                                                        ["x-dup", "2"]]


def test_env_lists_the_spec_keys_in_order(open_app):
    host = open_app("env")
    r = host.request("POST", "/a%2Fb/c?q=1", [("Host", "example.com:8080"),
                                              ("Content-Type", "text/plain"),
                                              ("User-Agent", "t"), ("X_Under", "no"),
                                              ("Cookie", "a=1"), ("cookie", "b=2")],
                     body=b"abc")
    env = env_of(r)["environ"]
    keys = list(env)
    # ENV-KEYS-2: the table's order, CONTENT_TYPE and CONTENT_LENGTH after QUERY_STRING.
    assert keys[:6] == ALWAYS[:4] + ["CONTENT_TYPE", "CONTENT_LENGTH"]
    assert keys[6:18] == ALWAYS[4:]
    assert keys[18:] == ["HTTP_HOST", "HTTP_USER_AGENT", "HTTP_COOKIE"]  # rule: ENV-HDR-5
    assert env["CONTENT_LENGTH"] == "3" and env["CONTENT_TYPE"] == "text/plain"
    assert env["PATH_INFO"] == "/a/b/c" and env["cwsgi.raw_path"] == "/a%2Fb/c"
    assert env["SERVER_NAME"] == "example.com" and env["SERVER_PORT"] == "8080"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert env["cwsgi.version"] == "%d.%d" % (cwsgi_host.ABI_MAJOR, cwsgi_host.ABI_MINOR)


def test_env_under_a_mount_point(open_app):
    host = open_app("env", script_name="/x/")
    env = env_of(host.request("GET", "/x/y%20z?k=v"))["environ"]
    assert env["SCRIPT_NAME"] == "/x" and env["PATH_INFO"] == "/y z"  # rule: ENV-PATH-1
    assert env["QUERY_STRING"] == "k=v" and env["REQUEST_URI"] == "/x/y%20z?k=v"
    env = env_of(host.request("GET", "/x"))["environ"]
    assert env["SCRIPT_NAME"] == "/x" and env["PATH_INFO"] == ""
    r = host.request("GET", "/xy")  # ENV-PATH-4: not under /x, the app is not called
    assert r.status == 404 and r.server_answered and host.next_id == 3


def test_env_request_ids_increase(open_app):
    host = open_app("env")
    ids = [int(env_of(host.request("GET", "/"))["environ"]["cwsgi.request_id"])
           for _ in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3


# ---- predict -------------------------------------------------------------------------------

def post(host, target, body):
    return host.request("POST", target, [("Content-Type", "application/json")], body=body)


def test_predict_health_names_the_model(open_app):
    host = open_app("predict")
    r = host.request("GET", "/health")
    assert r.status == 200 and r.header("Content-Type") == "application/json"
    doc = json.loads(r.body)
    assert doc["status"] == "ok" and doc["model"] == "iris-virginica-logistic"
    assert doc["features"] == 4
    r = host.request("GET", "/v1/model")
    assert r.status == 200 and b'"sepal_length"' in r.body


def test_predict_answers_rows_and_batches(open_app):
    host = open_app("predict")
    r = post(host, "/v1/predict", '{"features":[6.3,3.3,6.0,2.5]}')
    assert r.status == 200
    assert json.loads(r.body)["predictions"][0] == pytest.approx(0.9988187498455208, abs=1e-9)
    r = post(host, "/v1/predict", '{"instances":[[5.1,3.5,1.4,0.2],{"sepal_length":5.9,'
             '"sepal_width":3.0,"petal_length":5.1,"petal_width":1.8}]}')
    p = json.loads(r.body)["predictions"]
    assert p == pytest.approx([0.0001032762334325315, 0.9611342239492229], abs=1e-9)
    r = post(host, "/v1/predict", '{"instances":[]}')
    assert r.status == 200 and json.loads(r.body)["predictions"] == []


@pytest.mark.parametrize("body", ["not json", "[1,2,3,4]", "{}", '{"features":[1,2,"x",4]}',
                                  '{"features":7}', '{"instances":{}}', ""])
def test_predict_bad_input_is_400(open_app, body):
    r = post(open_app("predict"), "/v1/predict", body)
    assert r.status == 400
    assert r.header("Content-Type") == "application/json"
    assert "error" in json.loads(r.body)


@pytest.mark.parametrize("body", ['{"features":[1,2,3]}', '{"instances":[[1,2,3,4],[1,2,3,4,5]]}',
                                  '{"features":{"sepal_length":1}}',
                                  '{"features":{"sepal_length":1,"sepal_width":1,'
                                  '"petal_length":1,"petal_width":1,"extra":1}}'])
def test_predict_wrong_feature_count_is_422(open_app, body):
    r = post(open_app("predict"), "/v1/predict", body)
    assert r.status == 422
    assert "error" in json.loads(r.body)


def test_predict_routes_answer_404_and_405(open_app):
    host = open_app("predict")
    r = host.request("GET", "/v1/predict")
    assert r.status == 405 and r.header("Allow") == "POST"
    assert post(host, "/predict", "{}").status == 404


def linear_model(directory, name):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write('{"name":"lin","kind":"linear","features":["a","b"],"weights":[2,3],"bias":1}')
    return path


def test_predict_loads_the_model_from_the_setting(open_app):
    with tempfile.TemporaryDirectory() as d:
        host = open_app("predict", settings=[("model.path", linear_model(d, "m.json"))])
    r = post(host, "/v1/predict", '{"features":{"b":1,"a":0.5}}')  # rule: LIFE-SET-1
    assert r.status == 200
    assert json.loads(r.body)["predictions"] == [pytest.approx(5.0, abs=1e-9)]


def test_predict_loads_the_model_from_the_env_var(open_app, monkeypatch):
    with tempfile.TemporaryDirectory() as d:
        monkeypatch.setenv("CWSGI_PREDICT_MODEL", linear_model(d, "m.json"))
        host = open_app("predict")
        monkeypatch.delenv("CWSGI_PREDICT_MODEL")
    r = post(host, "/v1/predict", '{"features":[0.5,1]}')
    assert json.loads(r.body)["predictions"] == [pytest.approx(5.0, abs=1e-9)]


def test_predict_without_a_model_fails_to_start(monkeypatch):
    monkeypatch.setenv("CWSGI_PREDICT_MODEL", "/nonexistent/model.json")
    with pytest.raises(cwsgi_host.LoadError) as info:  # rule: LIFE-WORKER-2
        cwsgi_host.Host(app_path("predict"))
    assert "worker_start failed" in str(info.value)
    assert "/nonexistent/model.json" in str(info.value)


def test_predict_lifecycle_and_one_end_per_request(open_app):
    host = open_app("predict")
    outcomes = [post(host, "/v1/predict", b).outcome for b in ('{"features":[1,2,3,4]}', "x")]
    host.request("GET", "/health")
    assert [o for _, o in host.ended] == outcomes + [OK]  # rule: LIFE-END-1
    assert [rid for rid, _ in host.ended] == [1, 2, 3]
    host.close()
    assert host.lifecycle[:2] == ["init", "worker_start"]
    assert host.lifecycle[2:] == ["worker_stop", "destroy"][:len(host.lifecycle) - 2]
    assert "worker_stop" in host.lifecycle or "destroy" in host.lifecycle
