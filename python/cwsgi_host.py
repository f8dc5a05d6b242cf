"""cwsgi_host: an independent CWSGI host in Python, through cffi in ABI mode.

It loads an app.so the way a CWSGI server does (spec/abi.md), knowing nothing but
include/cwsgi.h: it dlopens the file, calls cwsgi_app_entry with a function table whose every
entry is a Python callback, checks the descriptor (versions, sizes, flags, capabilities,
extensions), calls init and worker_start, drives requests built in Python, and calls
on_request_end once per request, then worker_stop and destroy.

The declarations are not copied: `cdef_from_header` reads them from include/cwsgi.h at run
time (the text from the first type to the entry symbol, with comments, preprocessor lines and
CWSGI_EXPORT removed; cffi's parser takes the rest as it is), and the status codes and
constants are read from the same file's CWSGI_STATUS_MAP and #define lines. So the host cannot
drift from the header: a header that cffi cannot read fails the suite.

The per-request state machine follows spec/response.md (fresh, started, committed, finished,
and "ending" while on_request_end runs), so a misbehaving app gets the codes the C core gives.
"""

import os
import re
import select
import stat
import time
import urllib.parse

import cffi

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.environ.get("CWSGI_HEADER", os.path.join(HERE, "..", "include", "cwsgi.h"))


def _strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def cdef_from_header(path=HEADER):
    """The cdef text for `path`: its declarations from `typedef struct cwsgi_request` up to and
    including the cwsgi_app_entry prototype, without comments, preprocessor lines, CWSGI_EXPORT."""
    with open(path, encoding="utf-8") as f:
        text = _strip_comments(f.read())
    start = text.index("typedef struct cwsgi_request cwsgi_request;")
    end = text.index(";", text.index("cwsgi_app_entry(", start)) + 1
    lines = [ln for ln in text[start:end].splitlines() if not ln.lstrip().startswith("#")]
    return "\n".join(lines).replace("CWSGI_EXPORT", "")


def constants_from_header(path=HEADER):
    """The status codes ({"E_INVAL": -1, ...}) and the integer #defines ({"CWSGI_CAP_SENDFILE":
    1, ...}) of the header at `path`."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    codes = {m.group(1): int(m.group(2))
             for m in re.finditer(r"X\((\w+),\s*(-?\d+),\s*\"", text)}
    defines = {}
    for m in re.finditer(r"^#define (CWSGI_\w+) +(?:U?INT\d+_C\()?(0x[0-9a-fA-F]+|-?\d+)\)?",
                         text, flags=re.M):
        defines[m.group(1)] = int(m.group(2), 0)
    return codes, defines


ffi = cffi.FFI()
ffi.cdef(cdef_from_header())
CODES, DEFINES = constants_from_header()
OK = CODES["OK"]
DROPPED = CODES["DROPPED"]
E = {name[2:]: value for name, value in CODES.items() if name.startswith("E_")}
NAMES = {value: "CWSGI_" + name for name, value in CODES.items()}
ABI_MAJOR = DEFINES["CWSGI_ABI_MAJOR"]
ABI_MINOR = DEFINES["CWSGI_ABI_MINOR"]
REPLACE = DEFINES["CWSGI_RESPONSE_REPLACE"]
KNOWN_CAPS = 0
for _k, _v in DEFINES.items():
    if _k.startswith("CWSGI_CAP_"):
        KNOWN_CAPS |= _v
KNOWN_APP_FLAGS = DEFINES["CWSGI_APP_COOPERATIVE"]
ERRBUF_SIZE = DEFINES["CWSGI_ERRBUF_SIZE"]
WAIT_READ = DEFINES["CWSGI_WAIT_READ"]
WAIT_WRITE = DEFINES["CWSGI_WAIT_WRITE"]

# Table sizes per minor: a member added in 1.M starts the 1.M table's tail.
API_SIZE = {
    0: ffi.offsetof("cwsgi_server_api", "wait_fd"),
    1: ffi.offsetof("cwsgi_server_api", "setting_get"),
    2: ffi.sizeof("cwsgi_server_api"),
}
DESC_SIZE_1_0 = ffi.offsetof("cwsgi_app_desc", "flags")

TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
FORBIDDEN = {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te",
             b"trailer", b"upgrade", b"status"}

# Never dlclose an app (ABI-LOAD-8): every library handle stays referenced here.
_LIBS = []


def err_name(code):
    return NAMES.get(code, "CWSGI_UNKNOWN")


class LoadError(Exception):
    """The app was refused or failed to start; the message is the one-line reason."""


class Response:
    """What one request produced: status, reason, headers [(name, value)], body, outcome (the
    value given to on_request_end), handle_result, framing ("length" or "chunked"), and the
    codes every table call returned, as calls [(function, code)]."""

    def __init__(self):
        self.status = 0
        self.reason = None
        self.headers = []
        self.body = b""
        self.outcome = None
        self.handle_result = None
        self.framing = None
        self.calls = []
        self.server_answered = False

    def header(self, name):
        """The first header called `name` (any case), as str, or None."""
        want = name.encode("latin-1").lower()
        for n, v in self.headers:
            if n.lower() == want:
                return v.decode("latin-1")
        return None

    def codes(self, function):
        """The codes `function` returned during the request, in call order."""
        return [c for f, c in self.calls if f == function]


class _Request:
    """The server-side state of one request."""

    def __init__(self, host, environ, headers, body, chunk, disconnect_after):
        self.host = host
        self.handle = ffi.new("char[1]")  # an address that identifies the request
        self.key = int(ffi.cast("uintptr_t", self.handle))
        self.environ = environ
        self.headers = headers
        self.body = body
        self.pos = 0
        self.chunk = chunk
        self.read_error = 0
        self.disconnect_after = disconnect_after
        self.disconnected = False
        self.state = "fresh"
        self.pending = None  # (status, reason, headers, content_length) once started
        self.sent = 0
        self.content_length = None
        self.aborted = False
        self.keep = []  # cdata that must live until on_request_end returns
        self.strs = {}
        self.user_data = ffi.NULL
        self.resp = Response()
        self.resp.body = bytearray()

    def cstr(self, value):
        """A NUL-terminated copy of `value`, the same pointer for the same bytes (ENV-KEYS-1)."""
        p = self.strs.get(value)
        if p is None:
            p = ffi.new("char[]", value)
            self.strs[value] = p
        return p


class Host:
    """One loaded app. Host(path, settings=[(key, value)], server_minor=ABI_MINOR,
    capabilities=0, worker_id=1) runs the handshake, init and worker_start, or raises
    LoadError; request() drives a request; close() runs worker_stop and destroy."""

    def __init__(self, path, settings=(), server_minor=ABI_MINOR, capabilities=0, worker_id=1,
                 script_name=""):
        self.path = path
        self.settings = [(k.encode(), v.encode()) for k, v in settings]
        self.setting_strs = [(ffi.new("char[]", k), ffi.new("char[]", v), len(k), len(v))
                             for k, v in self.settings]
        self.server_minor = server_minor
        self.capabilities = capabilities
        self.worker_id = worker_id
        self.script_name = script_name.rstrip("/")
        self.requests = {}
        self.logs = []  # (level, message) of every log call
        self.errors = []  # exceptions raised inside a callback: a host bug
        self.next_id = 1
        self.entry_calls = 0
        self.lifecycle = []
        self.ended = []  # (request id, outcome) of every on_request_end call
        self.state = ffi.NULL
        self.started = False
        self._cbs = []
        self.api = self._make_api()
        self._load()

    # ---- the handshake ------------------------------------------------------------------

    def _refuse(self, why):
        raise LoadError("%s: %s" % (self.path, why))

    def _load(self):
        path = self.path if "/" in self.path else "./" + self.path  # ABI-LOAD-2
        if not os.path.exists(path):
            self._refuse("no such file")
        if not stat.S_ISREG(os.stat(path).st_mode):
            self._refuse("not a regular file")
        try:
            lib = ffi.dlopen(path, ffi.RTLD_NOW | ffi.RTLD_LOCAL)
        except OSError as exc:
            self._refuse("cannot load: %s" % exc)
        _LIBS.append(lib)
        try:
            entry = lib.cwsgi_app_entry
        except AttributeError:
            self._refuse("not a CWSGI app: no cwsgi_app_entry symbol")
        out = ffi.new("const cwsgi_app_desc **")
        self.entry_calls += 1
        rc = entry(self.api, out)
        if rc != OK:
            self._refuse("cwsgi_app_entry returned %s" % err_name(rc))
        d = out[0]
        if d == ffi.NULL:
            self._refuse("cwsgi_app_entry returned CWSGI_OK without a descriptor")
        self.desc = d
        ours = ffi.sizeof("cwsgi_app_desc")
        if d.struct_size < DESC_SIZE_1_0:
            self._refuse("descriptor of %d bytes, smaller than CWSGI 1.0's %d"
                         % (d.struct_size, DESC_SIZE_1_0))
        if d.abi_major != ABI_MAJOR:
            self._refuse("it was built for CWSGI ABI %d.x; this server implements ABI %d.%d: "
                         "rebuild the app against this cwsgi.h"
                         % (d.abi_major, ABI_MAJOR, self.server_minor))
        if d.abi_minor > self.server_minor:
            self._refuse("it needs CWSGI ABI %d.%d; this server implements %d.%d: upgrade the "
                         "server" % (d.abi_major, d.abi_minor, ABI_MAJOR, self.server_minor))
        known = ours if self.server_minor >= 1 else DESC_SIZE_1_0
        raw = bytes(ffi.buffer(ffi.cast("char *", d), d.struct_size))
        if any(raw[known:]) or d.reserved != 0:
            self._refuse("the descriptor sets fields this server does not know (ABI-STRUCT-4)")
        if d.struct_size >= ours and self.server_minor >= 1:
            if d.flags != 0 and d.abi_minor < 1:
                self._refuse("it sets flags, a CWSGI 1.1 field: declare abi_minor 1")
            if d.flags & ~KNOWN_APP_FLAGS or d.reserved2 != 0:
                self._refuse("unknown descriptor flags 0x%x or reserved2 set" % d.flags)
        if d.handle == ffi.NULL:
            self._refuse("the descriptor has no handle callback")
        if d.thread_safety not in (DEFINES["CWSGI_THREADS_SERIAL"], DEFINES["CWSGI_THREADS_SAFE"]):
            self._refuse("thread_safety %d is neither SERIAL nor SAFE" % d.thread_safety)
        missing = d.required_caps & ~self.capabilities
        if missing:
            self._refuse("the python-cffi host lacks capabilities 0x%x" % missing)
        if d.required_extensions != ffi.NULL:
            i = 0
            while d.required_extensions[i] != ffi.NULL:
                name = ffi.string(d.required_extensions[i]).decode("latin-1")
                self._refuse("missing extension %s" % name)
        self.name = ffi.string(d.name).decode() if d.name != ffi.NULL else "(unnamed)"
        self.version = ffi.string(d.version).decode() if d.version != ffi.NULL else "(none)"
        errbuf = ffi.new("char[]", ERRBUF_SIZE)
        state = ffi.new("void **")
        if d.init != ffi.NULL:
            self.lifecycle.append("init")
            rc = d.init(self.api, state, errbuf, ERRBUF_SIZE)
            if rc != OK:
                self._refuse("init failed (%s): %s" % (err_name(rc), ffi.string(errbuf).decode()))
        self.state = state[0]
        if d.worker_start != ffi.NULL:
            self.lifecycle.append("worker_start")
            rc = d.worker_start(self.state, self.worker_id, errbuf, ERRBUF_SIZE)
            if rc != OK:
                self._destroy()
                self._refuse("worker_start failed (%s): %s"
                             % (err_name(rc), ffi.string(errbuf).decode()))
        self.started = True

    def _destroy(self):
        if self.desc.destroy != ffi.NULL:
            self.lifecycle.append("destroy")
            self.desc.destroy(self.state)

    def close(self):
        """worker_stop, then destroy (spec/abi.md's order); the library stays loaded."""
        if not self.started:
            return
        self.started = False
        if self.desc.worker_stop != ffi.NULL:
            self.lifecycle.append("worker_stop")
            self.desc.worker_stop(self.state, self.worker_id)
        self._destroy()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- requests -----------------------------------------------------------------------

    def _environ(self, method, target, headers, content_length):
        raw_path, query = target, b""
        if b"#" in raw_path:
            raw_path = raw_path.split(b"#", 1)[0]
        if b"?" in raw_path:
            raw_path, query = raw_path.split(b"?", 1)
        decoded = urllib.parse.unquote_to_bytes(raw_path)
        script = self.script_name.encode()
        if script and not (decoded == script or decoded.startswith(script + b"/")):
            return None
        path_info = decoded[len(script):]
        host = next((v for n, v in headers if n == b"host"), None)
        if host is not None and host.startswith(b"["):  # an IPv6 literal keeps its brackets
            close = host.find(b"]") + 1
            name, rest = host[:close], host[close:]
            port = rest[1:] if rest.startswith(b":") else b"80"
        elif host is not None:
            name, _, port = host.partition(b":")
            port = port or b"80"
        else:
            name, port = b"127.0.0.1", b"8000"
        env = [(b"REQUEST_METHOD", method), (b"SCRIPT_NAME", script),
               (b"PATH_INFO", path_info), (b"QUERY_STRING", query)]
        ctype = next((v for n, v in headers if n == b"content-type"), None)
        if ctype is not None:
            env.append((b"CONTENT_TYPE", ctype))
        if content_length is not None:
            env.append((b"CONTENT_LENGTH", str(content_length).encode()))
        rid = self.next_id
        self.next_id += 1
        env += [(b"SERVER_NAME", name), (b"SERVER_PORT", port),
                (b"SERVER_PROTOCOL", b"HTTP/1.1"), (b"REQUEST_URI", target),
                (b"REMOTE_ADDR", b"127.0.0.1"), (b"REMOTE_PORT", b"50000"),
                (b"cwsgi.url_scheme", b"http"), (b"cwsgi.raw_path", raw_path),
                (b"cwsgi.local_addr", b"127.0.0.1"), (b"cwsgi.local_port", b"8000"),
                (b"cwsgi.request_id", str(rid).encode()),
                (b"cwsgi.version", ("%d.%d" % (ABI_MAJOR, self.server_minor)).encode())]
        http = {}
        for n, v in headers:
            if n in (b"content-type", b"content-length") or b"_" in n:
                continue
            key = b"HTTP_" + n.upper().replace(b"-", b"_")
            if key in http:
                http[key] += (b"; " if n == b"cookie" else b", ") + v
            else:
                http[key] = v
        env += list(http.items())
        return env, rid

    def request(self, method="GET", target="/", headers=(), body=None, chunked=False,
                chunk=None, disconnect_after=-1, handle=None):
        """Runs one request and returns its Response. `headers` is [(name, value)] as sent;
        `body` bytes get a Content-Length field unless `chunked`; `chunk` caps each read (the
        pieces a chunked body arrives in); `disconnect_after` (bytes of body, > 0 as in the C
        test host) makes the client leave once the app has sent that many. `handle`, a Python callable (api, req), stands in
        for the app's handle to drive the table through its C function pointers (the suite's
        misbehaving app)."""
        enc = lambda s: s if isinstance(s, bytes) else s.encode("latin-1")
        hs = [(enc(n).lower(), enc(v).strip(b" \t")) for n, v in headers]
        body = b"" if body is None else enc(body)
        content_length = None
        if not chunked and (body or method in ("POST", "PUT", "PATCH")):
            content_length = len(body)
            hs.append((b"content-length", str(content_length).encode()))
        elif chunked:
            hs.append((b"transfer-encoding", b"chunked"))
        built = self._environ(enc(method), enc(target), hs, content_length)
        if built is None:  # ENV-PATH-4: outside the mount point, the app is not called
            r = Response()
            r.status, r.server_answered = 404, True
            return r
        env, rid = built
        req = _Request(self, env, hs, body, chunk, disconnect_after)
        req.rid = rid
        req.method = enc(method)
        req.target = enc(target)
        req.info_content_length = -1 if content_length is None else content_length
        self.requests[req.key] = req
        h = ffi.cast("cwsgi_request *", req.handle)
        rc = self.desc.handle(self.state, h) if handle is None else handle(self.api, h)
        r = req.resp
        r.handle_result = rc
        self._after_handle(req, rc)
        if self.desc.on_request_end != ffi.NULL:
            req.state = "ending"
            self.ended.append((rid, r.outcome))
            self.desc.on_request_end(self.state, h, r.outcome)
        del self.requests[req.key]  # a dead handle from here on (RESP-STATE-1)
        r.body = bytes(r.body)
        if self.errors:
            raise self.errors[0]
        return r

    def _server_answer(self, req, status):
        r = req.resp
        r.status, r.reason, r.body, r.server_answered = status, None, b"", True
        r.headers = [(b"Content-Length", b"0")]
        r.framing = "length"

    def _after_handle(self, req, rc):
        r = req.resp
        if req.state in ("fresh", "started") and (rc < 0 or req.state == "fresh"):
            status = 500
            if rc == E["BODY"] or req.read_error == E["BODY"]:
                status = 400
            self._server_answer(req, status)  # RESP-ERR-1, RESP-END-2
            req.state = "finished"
            r.outcome = E["APP"]
            return
        if req.state in ("started", "committed"):
            if rc >= 0:
                self._finish(req)  # RESP-END-1
            else:
                req.aborted = True  # RESP-ERR-2
                req.state = "finished"
        if req.disconnected:
            r.outcome = E["DISCONNECTED"]
        elif req.aborted:
            r.outcome = E["ABORTED"]
        else:
            r.outcome = OK

    # ---- the response state machine -----------------------------------------------------

    def _commit(self, req):
        if req.state == "started":
            status, reason, headers, cl = req.pending
            r = req.resp
            r.status, r.reason, r.headers = status, reason, headers
            req.content_length = cl
            if req.method == b"HEAD" or status in (204, 304):
                r.framing = "none"  # RESP-NOBODY-*: no body on the wire
            else:
                r.framing = "length" if cl is not None else "chunked"
            req.state = "committed"

    def _send(self, req, data):
        """Appends body bytes after the checks; returns a code."""
        limit = self._declared_length(req)
        if limit is not None and req.sent + len(data) > limit:
            return E["LENGTH"]  # RESP-LEN-2
        self._commit(req)
        if req.disconnected:
            return E["DISCONNECTED"]
        if req.disconnect_after > 0 and req.sent + len(data) > req.disconnect_after:
            keep = req.disconnect_after - req.sent
            req.resp.body += data[:keep]
            req.sent += keep
            req.disconnected = True
            return E["DISCONNECTED"]
        if req.method != b"HEAD":
            req.resp.body += data
        req.sent += len(data)
        return OK

    def _declared_length(self, req):
        return req.pending[3] if req.state == "started" else req.content_length

    def _finish(self, req):
        self._commit(req)
        req.state = "finished"
        if req.content_length is not None and req.sent < req.content_length \
                and req.method != b"HEAD" and req.resp.status not in (204, 304):
            req.aborted = True  # RESP-LEN-3
            return E["LENGTH"]
        if req.disconnected:
            return E["DISCONNECTED"]
        return OK

    # ---- the function table -------------------------------------------------------------

    def _req(self, handle):
        if handle == ffi.NULL:
            return None
        return self.requests.get(int(ffi.cast("uintptr_t", handle)))

    def _cb(self, ctype, fn, error):
        def onerror(exc_type, exc, tb):
            self.errors.append(exc)
        cb = ffi.callback(ctype, fn, error=error, onerror=onerror)
        self._cbs.append(cb)
        return cb

    def _make_api(self):
        api = ffi.new("cwsgi_server_api *")
        api.struct_size = API_SIZE[self.server_minor]
        api.abi_major = ABI_MAJOR
        api.abi_minor = self.server_minor
        api.capabilities = self.capabilities
        EI = E["IO"]
        table = {
            "environ_get": ("int32_t(cwsgi_request *, const char *, cwsgi_str *)", self._environ_get, EI),
            "environ_at": ("int32_t(cwsgi_request *, size_t, cwsgi_str *, cwsgi_str *)", self._environ_at, EI),
            "header_at": ("int32_t(cwsgi_request *, size_t, cwsgi_str *, cwsgi_str *)", self._header_at, EI),
            "header_find": ("int32_t(cwsgi_request *, const char *, size_t, cwsgi_str *)", self._header_find, EI),
            "request_info": ("int32_t(cwsgi_request *, cwsgi_request_info *)", self._request_info, EI),
            "read": ("int64_t(cwsgi_request *, void *, size_t)", self._read, EI),
            "start_response": ("int32_t(cwsgi_request *, uint32_t, const char *, const cwsgi_header *, size_t, uint32_t)", self._start_response, EI),
            "write": ("int32_t(cwsgi_request *, const void *, size_t)", self._write, EI),
            "send_file": ("int32_t(cwsgi_request *, int, int64_t, int64_t)", self._send_file, EI),
            "finish": ("int32_t(cwsgi_request *)", self._finish_cb, EI),
            "send_informational": ("int32_t(cwsgi_request *, uint32_t, const cwsgi_header *, size_t)", self._send_informational, EI),
            "is_disconnected": ("int32_t(cwsgi_request *)", self._is_disconnected, 1),
            "alloc": ("void *(cwsgi_request *, size_t)", self._alloc, None),
            "log": ("int32_t(cwsgi_request *, uint32_t, const char *, size_t)", self._log, EI),
            "set_user_data": ("void(cwsgi_request *, void *)", self._set_user_data, None),
            "get_user_data": ("void *(cwsgi_request *)", self._get_user_data, None),
            "server_info": ("int32_t(cwsgi_server_info *)", self._server_info, EI),
            "is_shutting_down": ("int32_t(void)", lambda: 0, 0),
            "get_extension": ("const void *(const char *, uint32_t)", lambda name, v: ffi.NULL, None),
            "wait_fd": ("int32_t(cwsgi_request *, int, uint32_t, int32_t)", self._wait_fd, EI),
            "setting_get": ("int32_t(const char *, cwsgi_str *)", self._setting_get, EI),
            "setting_at": ("int32_t(size_t, cwsgi_str *, cwsgi_str *)", self._setting_at, EI),
        }
        for name, (ctype, fn, error) in table.items():
            setattr(api, name, self._cb(ctype, self._traced(name, fn), error))
        self.table_names = list(table)
        return api

    def _traced(self, name, fn):
        def call(*args):
            rc = fn(*args)
            if args and isinstance(args[0], ffi.CData) \
                    and ffi.typeof(args[0]) is ffi.typeof("cwsgi_request *"):
                req = self._req(args[0])
                if req is not None and isinstance(rc, int):
                    req.resp.calls.append((name, rc))
            if isinstance(rc, int) and rc < 0 and name not in ("environ_get", "environ_at",
                                                                 "header_at", "header_find",
                                                                 "setting_get", "setting_at"):
                self.logs.append((DEFINES["CWSGI_LOG_WARNING"],
                                  "%s returned %s" % (name, err_name(rc))))
            return rc
        return call

    def _put(self, req, out, value):
        p = req.cstr(value) if req is not None else value
        out.ptr = p
        out.len = len(value)

    def _environ_get(self, h, key, out):
        req = self._req(h)
        if req is None or key == ffi.NULL or out == ffi.NULL:
            return E["INVAL"]
        k = ffi.string(key)
        for ek, ev in req.environ:
            if ek == k:
                self._put(req, out, ev)
                return OK
        return E["NOTFOUND"]

    def _environ_at(self, h, index, key, value):
        req = self._req(h)
        if req is None or key == ffi.NULL or value == ffi.NULL:
            return E["INVAL"]
        if index >= len(req.environ):
            return E["NOTFOUND"]
        self._put(req, key, req.environ[index][0])
        self._put(req, value, req.environ[index][1])
        return OK

    def _header_at(self, h, index, name, value):
        req = self._req(h)
        if req is None or name == ffi.NULL or value == ffi.NULL:
            return E["INVAL"]
        if index >= len(req.headers):
            return E["NOTFOUND"]
        self._put(req, name, req.headers[index][0])
        self._put(req, value, req.headers[index][1])
        return OK

    def _header_find(self, h, name, nth, value):
        req = self._req(h)
        if req is None or name == ffi.NULL or value == ffi.NULL:
            return E["INVAL"]
        want = ffi.string(name).lower()
        found = [v for n, v in req.headers if n == want]
        if nth >= len(found):
            return E["NOTFOUND"]
        self._put(req, value, found[nth])
        return OK

    def _fill(self, dst, full, minimum):
        """Copies `full` (a filled struct) into dst under ABI-STRUCT-2."""
        if dst == ffi.NULL or dst.struct_size < minimum:
            return E["INVAL"]
        size = dst.struct_size
        ours = ffi.sizeof(full[0])
        n = min(size, ours)
        full.struct_size = size
        ffi.memmove(dst, ffi.buffer(full)[:n], n)
        if size > ours:
            ffi.memmove(ffi.cast("char *", dst) + ours, b"\0" * (size - ours), size - ours)
        return OK

    def _request_info(self, h, info):
        req = self._req(h)
        if req is None:
            return E["INVAL"]
        env = dict(req.environ)
        full = ffi.new("cwsgi_request_info *")
        full.http_major, full.http_minor, full.is_tls = 1, 1, 0
        full.content_length = req.info_content_length
        for field, key in (("method", b"REQUEST_METHOD"), ("target", b"REQUEST_URI"),
                           ("raw_path", b"cwsgi.raw_path"), ("script_name", b"SCRIPT_NAME"),
                           ("path_info", b"PATH_INFO"), ("query_string", b"QUERY_STRING"),
                           ("scheme", b"cwsgi.url_scheme"), ("protocol", b"SERVER_PROTOCOL"),
                           ("server_name", b"SERVER_NAME"), ("server_port", b"SERVER_PORT"),
                           ("remote_addr", b"REMOTE_ADDR"), ("remote_port", b"REMOTE_PORT"),
                           ("local_addr", b"cwsgi.local_addr"),
                           ("local_port", b"cwsgi.local_port")):
            self._put(req, getattr(full, field), env[key])
        full.request_id = req.rid
        return self._fill(info, full, 8)

    def _read(self, h, buf, cap):
        req = self._req(h)
        if req is None:
            return E["INVAL"]
        if req.state in ("finished", "ending"):
            return E["STATE"]
        if buf == ffi.NULL or cap == 0:
            return E["INVAL"]
        if req.read_error:
            return req.read_error
        n = min(cap, len(req.body) - req.pos)
        if req.chunk:
            n = min(n, req.chunk)
        ffi.memmove(buf, req.body[req.pos:req.pos + n], n)
        req.pos += n
        return n

    def _start_response(self, h, status, reason, headers, n, flags):
        req = self._req(h)
        if req is None:
            return E["INVAL"]
        if req.state in ("finished", "ending"):
            return E["STATE"]
        if req.state == "committed":
            return E["COMMITTED"]
        if req.state == "started" and not flags & REPLACE:
            return E["STATE"]  # RESP-START-4
        if flags & ~REPLACE:
            return E["INVAL"]
        if not 200 <= status <= 599:
            return E["STATUS"]  # RESP-START-1
        if headers == ffi.NULL and n > 0:
            return E["INVAL"]
        rtext = None
        if reason != ffi.NULL:
            rtext = ffi.string(reason)
            if re.search(rb"[\r\n]", rtext):
                return E["HEADER"]
        copied = []
        cl = None
        for i in range(n):
            hd = headers[i]
            if (hd.name == ffi.NULL and hd.name_len) or (hd.value == ffi.NULL and hd.value_len):
                return E["INVAL"]
            name = ffi.unpack(hd.name, hd.name_len) if hd.name_len else b""
            value = ffi.unpack(hd.value, hd.value_len) if hd.value_len else b""
            if not TOKEN.match(name):
                return E["HEADER"]  # RESP-HDR-1
            if re.search(rb"[\r\n\0]", value):
                return E["HEADER"]  # RESP-HDR-2
            if name.lower() in FORBIDDEN:
                return E["FORBIDDEN"]  # RESP-HDR-3
            if name.lower() == b"content-length":
                if not re.match(rb"^[0-9]{1,18}$", value) or (cl is not None and cl != int(value)):
                    return E["HEADER"]  # RESP-LEN-1
                if cl is not None:
                    continue
                cl = int(value)
            copied.append((name, value))
        req.pending = (status, rtext, copied, cl)
        req.state = "started"
        return OK

    def _write(self, h, data, length):
        req = self._req(h)
        if req is None:
            return E["INVAL"]
        if req.state in ("fresh", "finished", "ending"):
            return E["STATE"]
        if data == ffi.NULL and length > 0:
            return E["INVAL"]
        return self._send(req, ffi.unpack(ffi.cast("char *", data), length) if length else b"")

    def _send_file(self, h, fd, offset, count):
        req = self._req(h)
        if req is None:
            return E["INVAL"]
        if req.state in ("fresh", "finished", "ending"):
            return E["STATE"]
        try:
            st = os.fstat(fd)
        except OSError:
            return E["INVAL"]
        regular = stat.S_ISREG(st.st_mode)
        if offset < 0 or count < -1 or (count == -1 and not regular):
            return E["INVAL"]
        if count == -1:
            count = max(0, st.st_size - offset)
        if regular and offset + count > st.st_size:
            return E["INVAL"]
        limit = self._declared_length(req)
        if limit is not None and req.sent + count > limit:
            return E["LENGTH"]
        # No CWSGI_CAP_SENDFILE: a bounded read loop (RESP-FILE-2); pread keeps the offset.
        pos, left = offset, count
        for _ in range(1 + count // 65536 + 1):
            if left == 0:
                break
            piece = os.pread(fd, min(65536, left), pos)
            if not piece:
                req.aborted = True
                req.state = "finished"
                return E["IO"]  # RESP-FILE-3
            rc = self._send(req, piece)
            if rc != OK:
                return rc
            pos += len(piece)
            left -= len(piece)
        self._commit(req)
        return OK

    def _finish_cb(self, h):
        req = self._req(h)
        if req is None:
            return E["INVAL"]
        if req.state in ("fresh", "finished", "ending"):
            return E["STATE"]  # RESP-END-2, RESP-END-3
        return self._finish(req)

    def _send_informational(self, h, status, headers, n):
        req = self._req(h)
        if req is None:
            return E["INVAL"]
        if req.state != "fresh":
            return E["STATE"]
        if not 100 <= status <= 199 or status == 101:
            return E["STATUS"]
        if headers == ffi.NULL and n > 0:
            return E["INVAL"]
        return DROPPED  # no CWSGI_CAP_INFORMATIONAL (RESP-INFO-3)

    def _is_disconnected(self, h):
        req = self._req(h)
        if req is None:
            return 1
        return 1 if req.disconnected else 0

    def _alloc(self, h, size):
        req = self._req(h)
        if req is None:
            return ffi.NULL
        p = ffi.new("char[]", max(size, 1))
        req.keep.append(p)
        return p

    def _log(self, h, level, msg, length):
        if msg == ffi.NULL and length > 0:
            return E["INVAL"]
        if h != ffi.NULL and self._req(h) is None:
            return E["INVAL"]
        text = ffi.unpack(msg, length).decode("utf-8", "replace") if length else ""
        self.logs.append((level, text))
        return OK

    def _set_user_data(self, h, data):
        req = self._req(h)
        if req is not None:
            req.user_data = data

    def _get_user_data(self, h):
        req = self._req(h)
        return ffi.NULL if req is None else req.user_data

    def _server_info(self, info):
        full = ffi.new("cwsgi_server_info *")
        full.worker_id, full.workers, full.threads = self.worker_id, 1, 1
        full.limit_request_body = -1
        full.limit_request_line = 8190
        full.limit_request_fields = 100
        full.limit_request_field_size = 8190
        full.graceful_timeout_ms = 30000
        if not hasattr(self, "_info_strs"):
            self._info_strs = (ffi.new("char[]", b"python-cffi"),
                               ffi.new("char[]", b"cwsgi_host.py (python-cffi)"))
        full.adapter.ptr, full.adapter.len = self._info_strs[0], len(self._info_strs[0]) - 1
        full.server_software.ptr = self._info_strs[1]
        full.server_software.len = len(self._info_strs[1]) - 1
        full.execution = DEFINES["CWSGI_EXEC_THREADS"]
        return self._fill(info, full, 4)

    def _wait_fd(self, h, fd, events, timeout_ms):
        req = self._req(h)
        if req is None or fd < -1 or timeout_ms < -1 or events & ~(WAIT_READ | WAIT_WRITE):
            return E["INVAL"]
        if (fd == -1) != (events == 0):
            return E["INVAL"]
        if fd == -1:  # a sleep that keeps the cooperative promise
            if timeout_ms < 0:
                return E["SHUTDOWN"]  # this host has no graceful deadline to end it: now
            time.sleep(timeout_ms / 1000.0)
            return E["TIMEOUT"]
        poller = select.poll()
        mask = (select.POLLIN if events & WAIT_READ else 0) | \
            (select.POLLOUT if events & WAIT_WRITE else 0)
        poller.register(fd, mask)
        ready = poller.poll(None if timeout_ms < 0 else timeout_ms)
        if not ready:
            return E["TIMEOUT"]
        rev = ready[0][1]
        if rev & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
            return events
        return (WAIT_READ if rev & select.POLLIN else 0) | (WAIT_WRITE if rev & select.POLLOUT else 0)

    def _setting_get(self, key, value):
        if key == ffi.NULL or value == ffi.NULL:
            return E["INVAL"]
        k = ffi.string(key)
        for i, (sk, _) in enumerate(self.settings):
            if sk == k:
                value.ptr, value.len = self.setting_strs[i][1], self.setting_strs[i][3]
                return OK
        return E["NOTFOUND"]

    def _setting_at(self, index, key, value):
        if key == ffi.NULL or value == ffi.NULL:
            return E["INVAL"]
        if index >= len(self.settings):
            return E["NOTFOUND"]
        k, v, kl, vl = self.setting_strs[index]
        key.ptr, key.len, value.ptr, value.len = k, kl, v, vl
        return OK
