// cases_input.cc: the request body as the app reads it (spec/input.md: INPUT-*).
#include <thread>

#include "suite.hh"

namespace conf {
namespace {

/// Chunked encoding of `body` in chunks of `size` bytes, then the last chunk and `trailers`.
std::string chunked(const std::string &body, size_t size, const std::string &trailers = "", const std::string &ext = "")
{
    std::string out;
    for (size_t off = 0; off < body.size(); off += size) {
        size_t n = std::min(size, body.size() - off);
        char hex[32];
        snprintf(hex, sizeof hex, "%zx", n);
        out += hex + ext + "\r\n" + body.substr(off, n) + "\r\n";
    }
    return out + "0\r\n" + trailers + "\r\n";
}

json read_doc(Ctx &ctx, const Response &r, const std::string &what)
{
    if (r.status != 200 || !r.complete) fail(what + ": expected a complete 200, got " + r.summary());
    return ctx.parse_json(r, what);
}

void check_read_report(const json &d, uint64_t len, const std::string &body)
{
    check_eq(d["read_rc"].get<int64_t>(), int64_t(0), "INPUT-READ-1: last read result");
    check_eq(d["body_len"].get<int64_t>(), static_cast<int64_t>(len), "INPUT-READ-3: bytes read");
    check_eq(d["over_cap"].get<int64_t>(), int64_t(0), "INPUT-READ-1: reads that returned more than cap");
    check_eq(d["after_end"], json::array({0, 0, 0}), "INPUT-READ-2: reads after the end");
    if (!body.empty()) {
        check_eq(d["fnv"].get<std::string>(), fnv_hex(fnv1a(kFnvInit, body.data(), body.size())),
                 "INPUT-READ-3: body checksum");
    }
}

void upload_cl(Ctx &ctx)
{
    std::string body = pattern(0, 100000);
    Response r = ctx.exchange(ctx.req("POST", "/t/echo?r=1000", "", body));
    if (r.status != 200 || !r.complete) fail("echo: expected a complete 200, got " + r.summary());
    if (r.body != body)
        fail("INPUT-READ-3: echoed body differs (got " + std::to_string(r.body.size()) +
             " bytes, first difference at " + std::to_string(pattern_mismatch(r.body, 0)) + ")");
}

void upload_chunked(Ctx &ctx)
{
    std::string body = pattern(0, 70000);
    Response r = ctx.exchange(
        ctx.req("POST", "/t/echo?r=4096", "Transfer-Encoding: chunked\r\n", chunked(body, 9999, "", ";ext=1")));
    if (r.status != 200 || !r.complete) fail("echo of a chunked body: expected a complete 200, got " + r.summary());
    if (r.body != body) fail("INPUT-READ-3: echoed chunked body differs (" + std::to_string(r.body.size()) + " bytes)");
    // The environ of a chunked request has no CONTENT_LENGTH and content_length -1.
    Response e = ctx.exchange(ctx.req("POST", "/t/env", "Transfer-Encoding: chunked\r\n", chunked("hello", 2)));
    json d = read_doc(ctx, e, "environ of a chunked request");
    auto m = environ_map(d);
    if (m.count("CONTENT_LENGTH")) fail("ENV-KEYS-3: a chunked request must have no CONTENT_LENGTH");
    check_eq(d["info"]["content_length"].get<int64_t>(), int64_t(-1),
             "ENV-INFO-2: content_length of a chunked request");
    check_eq(b64decode(d["body_b64"].get<std::string>()), std::string("hello"), "INPUT-READ-3: decoded chunked body");
}

void upload_trailers(Ctx &ctx)
{
    std::string raw = ctx.req("POST", "/t/env", "Transfer-Encoding: chunked\r\nTrailer: X-Sum\r\n",
                              chunked("abcdef", 4, "X-Sum:  42 \r\nx-sum: 43\r\n"));
    json d = read_doc(ctx, ctx.exchange(raw), "chunked body with trailers");
    check_eq(b64decode(d["body_b64"].get<std::string>()), std::string("abcdef"),
             "INPUT-READ-3: body before the trailers");
    bool declared = ctx.has(CWSGI_CAP_REQUEST_TRAILERS);
    bool ext = d["trailers_ext"].get<bool>();
    // rule: EXT-2, ABI-CAP-4 (the extension exists exactly when the capability is declared)
    if (declared != ext) {
        fail(std::string("EXT-2: CWSGI_CAP_REQUEST_TRAILERS is ") + (declared ? "declared" : "not declared") +
             " but get_extension(\"cwsgi.request_trailers\") " + (ext ? "returned a table" : "returned NULL"));
    }
    // rule: EXT-TRAILERS-2 (trailers never in the header list or environ)
    for (const auto &h : d["headers"]) {
        if (h[0] == "x-sum") fail("EXT-TRAILERS-2: a trailer field appears in the header list");
    }
    if (environ_map(d).count("HTTP_X_SUM")) fail("EXT-TRAILERS-2: a trailer field appears in the environ");
    // rule: EXT-1
    check_eq(d["ext_table_ok"].get<int>(), 1, "EXT-1: the extension table (struct_size, version, same pointer)");
    check_eq(d["ext_future_version_null"].get<int>(), 1, "EXT-1: get_extension with a min_version above the server's");
    if (!declared) return;
    // rule: EXT-TRAILERS-1
    check_eq(d["trailers"], json::array({json::array({"x-sum", "42"}), json::array({"x-sum", "43"})}),
             "EXT-TRAILERS-1: trailers");
    check_eq(d["trailers_rc"].get<int>(), static_cast<int>(CWSGI_E_NOTFOUND),
             "EXT-TRAILERS-1: trailer_at past the last one");
}

void read_past_end(Ctx &ctx)
{
    std::string body = pattern(0, 5000);
    json d = read_doc(ctx, ctx.exchange(ctx.req("POST", "/t/read?r=7", "", body)), "read with Content-Length");
    check_read_report(d, body.size(), body);
    if (d["max_read"].get<int64_t>() > 7) fail("INPUT-READ-1: a read returned more than cap 7");
    d = read_doc(ctx,
                 ctx.exchange(ctx.req("POST", "/t/read?r=1000", "Transfer-Encoding: chunked\r\n", chunked(body, 777))),
                 "read of a chunked body");
    check_read_report(d, body.size(), body);
    // No body at all: the first read returns 0.
    d = read_doc(ctx, ctx.exchange(ctx.req("GET", "/t/read")), "read without a body");
    check_read_report(d, 0, "");
    check_eq(d["reads"].get<int64_t>(), int64_t(0), "INPUT-READ-2: reads that returned bytes for a GET");
    d = read_doc(ctx, ctx.exchange(ctx.req("POST", "/t/read", "Content-Length: 0\r\n")), "read with Content-Length: 0");
    check_read_report(d, 0, "");
}

void pipelined_body_bytes(Ctx &ctx)
{
    // rule: REQ-BODY-1, INPUT-READ-3: the next request's bytes, sent right behind a body, are
    // never part of it.
    Conn c = ctx.connect();
    std::string raw = ctx.req("POST", "/t/read", "", "0123456789") + ctx.req("GET", "/t/env?second=1");
    ctx.note_request(raw);
    c.send(raw);
    Response r1 = c.read_response({});
    json d = read_doc(ctx, r1, "first of two requests sent together");
    check_read_report(d, 10, "0123456789");
    if (r1.has_token("Connection", "close")) return; // the server may refuse to pipeline
    Response r2 = c.read_response({});
    if (r2.status == 0 && !r2.error.empty() && r2.error != "timeout") {
        return; // closed without answering: allowed without CWSGI_CAP_PIPELINING
    }
    json d2 = read_doc(ctx, r2, "second request");
    check_eq(environ_map(d2)["QUERY_STRING"], std::string("second=1"), "second request's query");
}

void unread_body(Ctx &ctx)
{
    // rule: INPUT-READ-5: the app answers without reading a 64 KiB body; the next request on
    // the connection is parsed after that body, or the connection is closed.
    Conn c = ctx.connect();
    std::string body = "GET /t/env?smuggled=1 HTTP/1.1\r\nHost: x\r\n\r\n" + pattern(0, 65536);
    std::string raw = ctx.req("POST", "/t/expect?mode=200", "", body);
    ctx.note_request(raw);
    c.send(raw);
    Response r1 = c.read_response({});
    if (r1.status != 200 || !r1.complete) fail("expected a complete 200, got " + r1.summary());
    std::string raw2 = ctx.req("GET", "/t/env?next=1");
    bool sent = c.send(raw2);
    Response r2 = c.read_response({});
    if (r2.status == 0) {
        if (!r1.has_token("Connection", "close") && r2.error == "timeout") {
            fail(
                "INPUT-READ-5: the next request got no answer (the server neither skipped the unread body nor closed)");
        }
        return; // closed: allowed
    }
    if (!sent) return;
    json d = read_doc(ctx, r2, "request after an unread body");
    auto m = environ_map(d);
    if (m["QUERY_STRING"] != "next=1") {
        fail("INPUT-READ-5: unread body bytes were taken for the next request (QUERY_STRING '" + m["QUERY_STRING"] +
             "')");
    }
}

void truncated_body(Ctx &ctx)
{
    // rule: INPUT-READ-4: the client ends the connection before Content-Length bytes arrived.
    std::string tag = ctx.tag("trunc");
    Conn c = ctx.connect();
    std::string raw = ctx.req("POST", "/t/read?tag=" + tag, "Content-Length: 1000\r\n") + std::string(100, 'x');
    ctx.note_request(raw);
    c.send(raw);
    c.shutdown_write();
    Response r = c.read_response({});
    json s = ctx.wait_ends(tag, 1, 5000);
    if (s["tag"].is_null()) fail("the request never reached the app");
    check_eq(s["tag"]["notes"]["read_rc"].get<int64_t>(), int64_t(CWSGI_E_BODY),
             "INPUT-READ-4: read result for a body cut by the client");
    if (r.status != 0 && r.status != 400)
        fail("INPUT-READ-4: expected 400 (or nothing) for a cut body, got " + r.summary());
}

void chunked_then_half_close(Ctx &ctx)
{
    // rule: INPUT-READ-3: a whole chunked body, then the client shuts down its sending side
    // (allowed: the request is complete). The body reads to its end and the answer comes.
    std::string tag = ctx.tag("halfclose");
    Conn c = ctx.connect();
    std::string body = pattern(0, 3000);
    std::string raw =
        ctx.req("POST", "/t/read?r=100&tag=" + tag, "Transfer-Encoding: chunked\r\n") + chunked(body, 500);
    ctx.note_request(raw);
    c.send(raw);
    c.shutdown_write();
    Response r = c.read_response({});
    json s = ctx.wait_ends(tag, 1, 5000);
    if (s["tag"].is_null()) fail("the request never reached the app");
    check_eq(s["tag"]["notes"]["read_rc"].get<int64_t>(), int64_t(0),
             "INPUT-READ-3: read result after a whole chunked body");
    check_eq(s["tag"]["notes"]["body_len"].get<int64_t>(), int64_t(body.size()), "INPUT-READ-3: body length");
    if (r.status != 200 || !r.complete) fail("INPUT-READ-3: expected the app's 200, got " + r.summary());
}

void malformed_chunk(Ctx &ctx)
{
    // rule: INPUT-READ-4: a bad chunk size gives CWSGI_E_BODY, then 400 and close.
    std::string tag = ctx.tag("badchunk");
    Conn c = ctx.connect();
    std::string raw = ctx.req("POST", "/t/read?tag=" + tag, "Transfer-Encoding: chunked\r\n") +
                      "5\r\nhello\r\nzz\r\nabc\r\n0\r\n\r\n";
    ctx.note_request(raw);
    c.send(raw);
    Response r = c.read_response({});
    json s = ctx.wait_ends(tag, 1, 5000);
    if (s["tag"].is_null()) {
        // A server that checks the framing before calling the app may answer 400 itself.
        if (r.status != 400) fail("INPUT-READ-4: expected 400 for a bad chunk size, got " + r.summary());
        return;
    }
    check_eq(s["tag"]["notes"]["read_rc"].get<int64_t>(), int64_t(CWSGI_E_BODY),
             "INPUT-READ-4: read result for a bad chunk size");
    if (r.status != 400) fail("INPUT-READ-4: the app failed after CWSGI_E_BODY: expected 400, got " + r.summary());
    if (!c.wait_closed(3000)) fail("INPUT-READ-5: the connection must close after a body error");
}

// POSTs 10 of 100 declared body bytes to /t/read?<query>&tag=... and stalls past --client-timeout;
// checks that the app's read gave CWSGI_E_TIMEOUT (INPUT-READ-4) and returns the response.
Response stalled_body(Ctx &ctx, Conn &c, const std::string &query)
{
    std::string tag = ctx.tag("bodystall");
    std::string raw =
        ctx.req("POST", "/t/read?" + query + "tag=" + tag, "Content-Length: 100\r\n") + std::string(10, 'x');
    ctx.note_request(raw);
    c.send(raw);
    ReadOptions ro;
    ro.read_timeout_ms = (kLimitTimeoutS + 5) * 1000;
    Response r = c.read_response(ro);
    json s = ctx.wait_ends(tag, 1, 5000);
    if (s["tag"].is_null()) fail("the request never reached the app");
    check_eq(s["tag"]["notes"]["read_rc"].get<int64_t>(), int64_t(CWSGI_E_TIMEOUT),
             "INPUT-READ-4: read result for a stalled body");
    return r;
}

void body_timeout(Ctx &ctx)
{
    // rule: INPUT-READ-4: no body byte for --client-timeout: CWSGI_E_TIMEOUT, then 408.
    Conn c = ctx.connect();
    Response r = stalled_body(ctx, c, "");
    if (r.status != 408) fail("INPUT-READ-4: expected 408 after CWSGI_E_TIMEOUT, got " + r.summary());
}

void expect_accepted(Ctx &ctx)
{
    // rule: INPUT-EXPECT-1: the 100 comes when the app reads (after its 600 ms sleep), not before.
    Conn c = ctx.connect();
    std::string head =
        ctx.req("POST", "/t/expect?mode=read&delay_ms=600", "Expect: 100-continue\r\nContent-Length: 11\r\n");
    ctx.note_request(head + "hello world");
    c.send(head);
    double t0 = now_ms();
    if (c.data_within(350)) {
        Interim early;
        std::string err;
        c.read_interim(1000, &early, &err);
        fail("INPUT-EXPECT-1: got status " + std::to_string(early.status) + " " + std::to_string(now_ms() - t0) +
             " ms after the head, while the app was still sleeping before its first read");
    }
    Interim in;
    std::string err;
    if (!c.read_interim(5000, &in, &err))
        fail("INPUT-EXPECT-1: no 100 Continue after the app began to read (" + err + ")");
    check_eq(in.status, 100, "INPUT-EXPECT-1: interim status");
    c.send("hello world");
    Response r = c.read_response({});
    if (!r.interim.empty())
        fail("INPUT-EXPECT-1: more than one 100 Continue (" + std::to_string(r.interim.size() + 1) + ")");
    json d = read_doc(ctx, r, "expect-100 upload");
    check_read_report(d, 11, "hello world");
}

void expect_refused(Ctx &ctx)
{
    // rule: INPUT-EXPECT-2: the app answers 417 without reading: no 100, and the connection closes.
    Conn c = ctx.connect();
    std::string head = ctx.req("POST", "/t/expect?mode=417", "Expect: 100-continue\r\nContent-Length: 100000\r\n");
    ctx.note_request(head);
    c.send(head);
    Response r = c.read_response({});
    if (!r.interim.empty())
        fail("INPUT-EXPECT-2: a " + std::to_string(r.interim[0].status) + " was sent although the app never read");
    if (r.status != 417 || !r.complete) fail("expected the app's complete 417, got " + r.summary());
    // rule: RESP-FRAME-6: a body still waiting for its 100 cannot be skipped: close.
    if (!r.has_token("Connection", "close"))
        fail("RESP-FRAME-6: the 417 must carry Connection: close (the body was never sent)");
    if (!c.wait_closed(3000)) fail("INPUT-READ-5: the connection must close after the unread expect-100 body");
}

void expect_not_read(Ctx &ctx)
{
    Conn c = ctx.connect();
    std::string head = ctx.req("POST", "/t/expect?mode=200", "Expect: 100-continue\r\nContent-Length: 10\r\n");
    ctx.note_request(head);
    c.send(head);
    Response r = c.read_response({});
    if (!r.interim.empty()) fail("INPUT-EXPECT-1: a 100 was sent although the app never read");
    if (r.status != 200 || !r.complete) fail("expected a complete 200, got " + r.summary());
}

void expect_empty_body(Ctx &ctx)
{
    Response r = ctx.exchange(ctx.req("POST", "/t/expect?mode=read", "Expect: 100-continue\r\nContent-Length: 0\r\n"));
    if (!r.interim.empty()) fail("INPUT-EXPECT-1: a request that declares no body got a 100");
    if (r.status != 200) fail("expected 200, got " + r.summary());
}

void expect_http10(Ctx &ctx)
{
    // rule: INPUT-EXPECT-3
    std::string raw = "POST /t/expect?mode=read HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello";
    Response r = ctx.exchange(raw);
    if (!r.interim.empty()) fail("INPUT-EXPECT-3: an HTTP/1.0 client got a " + std::to_string(r.interim[0].status));
    json d = read_doc(ctx, r, "HTTP/1.0 upload with Expect");
    check_read_report(d, 5, "hello");
}

void expect_http10_waits(Ctx &ctx)
{
    // rule: INPUT-EXPECT-3: an HTTP/1.0 client that waits after its head gets no 100 while it
    // waits, and the body it then sends is read as usual.
    Conn c = ctx.connect();
    std::string head = "POST /t/expect?mode=read HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
    ctx.note_request(head + "hello");
    c.send(head);
    if (c.data_within(800)) {
        Interim i;
        std::string err;
        if (c.read_interim(1000, &i, &err) && i.status >= 100 && i.status < 200) {
            fail("INPUT-EXPECT-3: an HTTP/1.0 client got a " + std::to_string(i.status) +
                 " while it held its body back");
        }
        fail("INPUT-EXPECT-3: the server answered before the HTTP/1.0 body arrived (status " +
             std::to_string(i.status) + ")");
    }
    c.send("hello");
    Response r = c.read_response({});
    if (!r.interim.empty()) fail("INPUT-EXPECT-3: an HTTP/1.0 client got a " + std::to_string(r.interim[0].status));
    json d = read_doc(ctx, r, "HTTP/1.0 upload with Expect, body sent late");
    check_read_report(d, 5, "hello");
}

/// Sends a chunked POST of `body` in chunks of `chunk` bytes to /t/read with `trailer` as its
/// trailer section, which must be refused: checks the 400 and, when the app saw the request,
/// that its read failed with CWSGI_E_BODY, each failure under `rule`. Returns the connection, so
/// that the caller can check what becomes of it.
Conn send_refused_trailer(Ctx &ctx, const std::string &trailer, const std::string &body, size_t chunk,
                          const std::string &rule)
{
    std::string tag = ctx.tag("badtrailer");
    Conn c = ctx.connect();
    std::string raw =
        ctx.req("POST", "/t/read?tag=" + tag, "Transfer-Encoding: chunked\r\n", chunked(body, chunk, trailer));
    ctx.note_request(raw);
    c.send(raw);
    Response r = c.read_response({});
    if (r.status != 400)
        fail(rule + ": expected 400 for the trailer '" + escape_bytes(trailer) + "', got " + r.summary());
    json s = ctx.wait_ends(tag, 1, 3000);
    if (!s["tag"].is_null()) {
        check_eq(s["tag"]["notes"]["read_rc"].get<int64_t>(), int64_t(CWSGI_E_BODY),
                 rule + ": read result for the trailer '" + escape_bytes(trailer) + "'");
    }
    return c;
}

void trailer_forbidden_refused(Ctx &ctx)
{
    // rule: EXT-TRAILERS-2: a trailer field that RFC 9110 6.5.1 forbids (framing, routing,
    // credentials) makes the body malformed: 400, and the field never reaches the app.
    for (const std::string trailer : {"Content-Length: 99\r\n", "Host: evil.example\r\n",
                                      "Transfer-Encoding: chunked\r\n", "X-Sum: 42\r\nCookie: a=b\r\n"}) {
        send_refused_trailer(ctx, trailer, "abcdef", 4, "EXT-TRAILERS-2");
    }
}

void trailer_malformed(Ctx &ctx)
{
    // rule: INPUT-READ-4: a malformed trailer line is a malformed body: the server answers 400
    // itself, or the app's read returns CWSGI_E_BODY (and the app's failure becomes a 400).
    for (const std::string trailer : {"No-Colon-Here\r\n", "Bad Name: v\r\n", " folded: v\r\n"}) {
        Conn c = send_refused_trailer(ctx, trailer, "abc", 3, "INPUT-READ-4");
        if (!c.wait_closed(3000)) fail("INPUT-READ-5: the connection must close after a body error");
    }
}

void read_error_then_answer(Ctx &ctx)
{
    // rule: INPUT-READ-5: after a body error the connection closes, also when the app answers
    // with a response of its own (here a length-framed 200) instead of failing. The error is a
    // stalled body (CWSGI_E_TIMEOUT): a malformed chunk would do too, but an engine that parses
    // chunks itself (libmicrohttpd) then answers 400 on its own before the app's answer.
    Conn c = ctx.connect();
    Response r = stalled_body(ctx, c, "answer=1&");
    if (r.status != 200 || !r.complete) fail("expected the app's complete 200, got " + r.summary());
    if (!r.has_token("Connection", "close"))
        fail("INPUT-READ-5: the answer after a body error lacks Connection: close (got " + fields_str(r.headers) + ")");
    if (!c.wait_closed(3000)) fail("INPUT-READ-5: the connection must close after a body error");
}

/// Samples the server's RSS while `work` runs; returns the growth in KiB (or -1).
struct RssWatch {
    ServerProc *proc;
    long base = -1, peak = -1;
    void sample()
    {
        if (!proc) return;
        long v = proc->rss_kib();
        if (v > peak) peak = v;
    }
    long growth() const { return (base < 0 || peak < 0) ? -1 : peak - base; }
};

void upload_large(Ctx &ctx)
{
    const uint64_t size = ctx.opt().quick ? (uint64_t(64) << 20) : (uint64_t(1) << 30);
    RssWatch w{ctx.t.proc};
    w.base = ctx.t.proc ? ctx.t.proc->rss_kib() : -1;
    w.peak = w.base;
    Conn c = ctx.connect();
    std::string head = ctx.req("POST", "/t/read?r=65536", "Content-Length: " + std::to_string(size) + "\r\n");
    ctx.note_request(head + "<" + std::to_string(size) + " pattern bytes>");
    if (!c.send(head)) fail("could not send the head");
    const size_t block = 256 * 1024;
    std::string buf;
    uint64_t h = kFnvInit;
    double t0 = now_ms();
    for (uint64_t off = 0; off < size; off += block) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(block, size - off));
        buf = pattern(off, n);
        h = fnv1a(h, buf.data(), n);
        if (!c.send(buf, 30000)) fail("the server stopped taking the body at byte " + std::to_string(off));
        if ((off / block) % 64 == 0) w.sample();
        if (now_ms() - t0 > 120000)
            fail("upload of " + std::to_string(size) + " bytes took longer than 120 s (at byte " + std::to_string(off) +
                 ")");
    }
    ReadOptions ro;
    ro.read_timeout_ms = 30000;
    Response r = c.read_response(ro);
    w.sample();
    json d = read_doc(ctx, r, "large upload");
    check_eq(d["body_len"].get<int64_t>(), static_cast<int64_t>(size), "INPUT-READ-3: bytes read");
    check_eq(d["fnv"].get<std::string>(), fnv_hex(h), "INPUT-READ-3: body checksum");
    if (!ctx.t.proc) {
        ctx.diag.push_back("RSS not checked: the driver did not start the server");
        return;
    }
    long g = w.growth();
    ctx.diag.push_back("server RSS grew by " + std::to_string(g) + " KiB during a " + std::to_string(size >> 20) +
                       " MiB upload");
    // rule: RESP-BODY-2 / INPUT-READ-1: bodies flow in bounded memory
    if (g >= 32 * 1024)
        fail("server RSS grew by " + std::to_string(g / 1024) + " MiB during the upload (limit 32 MiB)");
}

// ---- body limit (profile "limits": --limit-request-body 1048576) ----------------------------

void limit_cl_413(Ctx &ctx)
{
    int64_t before = ctx.handled();
    Conn c = ctx.connect();
    std::string head = ctx.req("POST", "/t/read",
                               "Expect: 100-continue\r\nContent-Length: " + std::to_string(kLimitBody + 1) + "\r\n");
    ctx.note_request(head);
    c.send(head);
    Response r = c.read_response({});
    if (!r.interim.empty()) fail("INPUT-LIMIT-1: a 100 Continue was sent before the 413");
    if (r.status != 413) fail("INPUT-LIMIT-1: Content-Length over the limit: expected 413, got " + r.summary());
    // Without Expect: the head and the start of the body arrive; still 413 before the app.
    Conn c2 = ctx.connect();
    std::string raw =
        ctx.req("POST", "/t/read", "Content-Length: " + std::to_string(2 * kLimitBody) + "\r\n") + pattern(0, 8192);
    ctx.note_request(raw);
    c2.send(raw);
    Response r2 = c2.read_response({});
    if (r2.status != 413)
        fail("INPUT-LIMIT-1: Content-Length over the limit (no Expect): expected 413, got " + r2.summary());
    check_eq(ctx.handled() - before, int64_t(0), "INPUT-LIMIT-1: requests over the limit that reached the app");
}

void limit_chunked_413(Ctx &ctx)
{
    std::string tag = ctx.tag("limit-chunked");
    Conn c = ctx.connect();
    std::string head = ctx.req("POST", "/t/read?tag=" + tag, "Transfer-Encoding: chunked\r\n");
    ctx.note_request(head + "<chunks totalling limit+1 bytes>");
    c.send(head);
    // limit + 1 bytes in 64 KiB chunks, then the last chunk.
    uint64_t total = static_cast<uint64_t>(kLimitBody) + 1;
    std::string body = pattern(0, static_cast<size_t>(total));
    std::string enc = chunked(body, 65536);
    bool sent_all = c.send(enc, 10000);
    Response r = c.read_response({});
    json s = ctx.wait_ends(tag, 1, 5000);
    if (s["tag"].is_null()) fail("the chunked request never reached the app");
    check_eq(s["tag"]["notes"]["read_rc"].get<int64_t>(), int64_t(CWSGI_E_BODY),
             "INPUT-LIMIT-2: read result when the body passes the limit");
    if (s["tag"]["notes"]["body_len"].get<int64_t>() > kLimitBody)
        fail("INPUT-LIMIT-2: the app received more than the limit");
    if (r.status == 0) {
        fail(std::string("INPUT-LIMIT-2: no 413 arrived (") + r.error +
             (sent_all ? "" : "; the server stopped reading the body") +
             "): a server that closes with unread request bytes resets the connection and destroys its own answer");
    }
    if (r.status != 413) fail("INPUT-LIMIT-2: the app failed after CWSGI_E_BODY: expected 413, got " + r.summary());
}

void limit_chunked_far_over_413(Ctx &ctx)
{
    // rule: INPUT-LIMIT-2: a chunked upload with Expect: 100-continue far past the limit (the
    // limit + 12 MiB) still gets its 413, and the access log says 413 only when it was sent.
    std::string tag = ctx.tag("limit-far");
    Conn c = ctx.connect();
    std::string head = ctx.req("POST", "/t/read?tag=" + tag, "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n");
    ctx.note_request(head + "<chunks totalling limit + 12 MiB>");
    c.send(head);
    Interim cont;
    std::string err;
    if (!c.read_interim(3000, &cont, &err) || cont.status != 100) {
        fail("INPUT-LIMIT-2: expected 100 Continue before the body (" + err + ")");
    }
    std::string body = pattern(0, static_cast<size_t>(kLimitBody) + (12u << 20));
    bool sent_all = c.send(chunked(body, 65536), 20000);
    Response r = c.read_response({});
    if (r.status != 413) {
        fail(std::string("INPUT-LIMIT-2: expected the 413 after a body far over the limit, got ") + r.summary() +
             (sent_all ? "" : " (the server stopped reading the body)"));
    }
}

void limit_exact(Ctx &ctx)
{
    std::string body = pattern(0, static_cast<size_t>(kLimitBody));
    json d = read_doc(ctx, ctx.exchange(ctx.req("POST", "/t/read", "", body)), "body exactly at the limit");
    check_read_report(d, body.size(), body);
    d = read_doc(ctx, ctx.exchange(ctx.req("POST", "/t/read", "Transfer-Encoding: chunked\r\n", chunked(body, 100000))),
                 "chunked body exactly at the limit");
    check_read_report(d, body.size(), body);
    check_eq(ctx.caps_doc["limit_request_body"].get<int64_t>(), kLimitBody,
             "INPUT-LIMIT-1: server_info.limit_request_body");
}

} // namespace

void add_input_cases(std::vector<Case> &out)
{
    out.push_back({"INPUT-READ-3", "upload-content-length", profile::base, 0, false, upload_cl});
    out.push_back({"INPUT-READ-3", "upload-chunked", profile::base, 0, false, upload_chunked});
    out.push_back({"EXT-TRAILERS-1", "upload-chunked-trailers", profile::base, 0, false, upload_trailers});
    out.push_back({"INPUT-READ-2", "read-past-end", profile::base, 0, false, read_past_end});
    out.push_back({"REQ-BODY-1", "body-then-next-request", profile::base, 0, false, pipelined_body_bytes});
    out.push_back({"INPUT-READ-5", "unread-body-skipped-or-closed", profile::base, 0, false, unread_body});
    out.push_back({"INPUT-READ-4", "body-cut-by-client", profile::base, 0, false, truncated_body});
    out.push_back({"INPUT-READ-3", "body-chunked-then-half-close", profile::base, 0, false, chunked_then_half_close});
    out.push_back({"INPUT-READ-4", "body-malformed-chunk", profile::base, 0, false, malformed_chunk});
    out.push_back({"INPUT-READ-4", "body-stall-408", profile::limits, 0, false, body_timeout});
    out.push_back({"INPUT-EXPECT-1", "expect-100-sent-on-first-read", profile::base, 0, false, expect_accepted});
    out.push_back({"INPUT-EXPECT-2", "expect-100-refused-417", profile::base, 0, false, expect_refused});
    out.push_back({"INPUT-EXPECT-1", "expect-100-never-read", profile::base, 0, false, expect_not_read});
    out.push_back({"INPUT-EXPECT-1", "expect-100-empty-body", profile::base, 0, false, expect_empty_body});
    out.push_back({"INPUT-EXPECT-3", "expect-100-http10", profile::base, 0, false, expect_http10});
    out.push_back({"INPUT-EXPECT-3", "expect-100-http10-body-held-back", profile::base, 0, false, expect_http10_waits});
    out.push_back({"EXT-TRAILERS-2", "trailers-forbidden-400", profile::base, 0, false, trailer_forbidden_refused});
    out.push_back({"INPUT-READ-4", "trailers-malformed-400", profile::base, 0, false, trailer_malformed});
    out.push_back({"INPUT-READ-5", "body-stall-then-answer-closes", profile::limits, 0, false, read_error_then_answer});
    out.push_back({"RESP-BODY-2", "upload-large-bounded-memory", profile::base, 0, false, upload_large});
    out.push_back({"INPUT-LIMIT-1", "body-limit-content-length-413", profile::limits, 0, false, limit_cl_413});
    out.push_back({"INPUT-LIMIT-2", "body-limit-chunked-413", profile::limits, 0, false, limit_chunked_413});
    out.push_back(
        {"INPUT-LIMIT-2", "body-limit-chunked-far-over-413", profile::limits, 0, false, limit_chunked_far_over_413});
    out.push_back({"INPUT-LIMIT-1", "body-limit-exact", profile::limits, 0, false, limit_exact});
}

} // namespace conf
