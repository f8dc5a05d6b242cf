// cases_connection.cc: connections carrying several requests, closing, and pipelining
// (spec/response.md RESP-FRAME-6; spec/abi.md CWSGI_CAP_PIPELINING under ABI-CAP-4).
#include "suite.hh"

namespace conf {
namespace {

void keep_alive(Ctx &ctx)
{
    // rule: RESP-FRAME-6: HTTP/1.1 without Connection: close keeps the connection.
    Conn c = ctx.connect();
    std::string port;
    for (int i = 0; i < 5; i++) {
        std::string raw = ctx.req("GET", i % 2 ? "/t/stream?n=2&m=50" : "/t/env?i=" + std::to_string(i));
        ctx.note_request(raw);
        if (!c.send(raw))
            fail("RESP-FRAME-6: send of request " + std::to_string(i) + " failed: the connection was closed");
        Response r = c.read_response({});
        if (r.status != 200 || !r.complete)
            fail("RESP-FRAME-6: request " + std::to_string(i) + " on a kept-alive connection: " + r.summary());
        if (r.has_token("Connection", "close"))
            fail("RESP-FRAME-6: response " + std::to_string(i) + " closed a keep-alive connection");
    }
}

void connection_close(Ctx &ctx)
{
    // rule: RESP-FRAME-6: a request with Connection: close gets Connection: close and a close.
    Conn c = ctx.connect();
    std::string raw = ctx.req("GET", "/t/stream?n=2&m=50", "Connection: close\r\n");
    ctx.note_request(raw);
    c.send(raw);
    Response r = c.read_response({});
    if (r.status != 200 || !r.complete) fail("expected a complete 200, got " + r.summary());
    if (!r.has_token("Connection", "close"))
        fail("RESP-FRAME-6: the response to Connection: close must say Connection: close");
    std::string extra;
    if (!c.wait_closed(3000, &extra)) fail("RESP-FRAME-6: the server kept the connection open after Connection: close");
}

void http10_default_close(Ctx &ctx)
{
    // rule: RESP-FRAME-6: HTTP/1.0 without keep-alive is closed after the response.
    Conn c = ctx.connect();
    std::string raw = "GET /t/stream?n=1&m=10&cl=1 HTTP/1.0\r\n\r\n";
    ctx.note_request(raw);
    c.send(raw);
    Response r = c.read_response({});
    if (r.status != 200 || !r.complete) fail("expected a complete 200, got " + r.summary());
    check_eq(r.version, std::string("HTTP/1.1"), "response version (RFC 9110 §6.2: the server's own version)");
    if (!c.wait_closed(3000)) fail("RESP-FRAME-6: an HTTP/1.0 connection without keep-alive stayed open");
}

void http10_length_framed_close(Ctx &ctx)
{
    // rule: RESP-FRAME-6: an HTTP/1.0 request without keep-alive, answered with a length: the
    // server knows at commit that the connection will close, so the head says Connection: close
    // (a 1.0 client that assumes keep-alive from a length alone would otherwise wait).
    Conn c = ctx.connect();
    std::string raw = "GET /t/stream?n=1&m=10&cl=1 HTTP/1.0\r\n\r\n";
    ctx.note_request(raw);
    c.send(raw);
    Response r = c.read_response({});
    if (r.status != 200 || !r.complete) fail("expected a complete 200, got " + r.summary());
    if (r.framing != Framing::length) fail("expected a length-framed body, got " + r.summary());
    if (!r.has_token("Connection", "close")) {
        fail("RESP-FRAME-6: the length-framed answer to an HTTP/1.0 request without keep-alive lacks Connection: close "
             "(got " +
             fields_str(r.headers) + ")");
    }
    if (r.has_token("Connection", "keep-alive")) fail("RESP-FRAME-6: Connection says both close and keep-alive");
    if (!c.wait_closed(3000)) fail("RESP-FRAME-6: the server said Connection: close but kept the connection open");
}

void pipelining(Ctx &ctx)
{
    // ABI-CAP-4 with CWSGI_CAP_PIPELINING: every pipelined request is answered, in order.
    Conn c = ctx.connect();
    std::string raw;
    for (int i = 0; i < 4; i++) {
        raw += ctx.req(i == 2 ? "POST" : "GET", "/t/env?i=" + std::to_string(i), "", i == 2 ? "body-2" : "");
    }
    ctx.note_request(raw);
    c.send(raw);
    for (int i = 0; i < 4; i++) {
        Response r = c.read_response({});
        if (r.status != 200 || !r.complete)
            fail("ABI-CAP-4: pipelined request " + std::to_string(i) + " got " + r.summary());
        json d = ctx.parse_json(r, "environ");
        std::string q = environ_map(d)["QUERY_STRING"];
        if (q != "i=" + std::to_string(i))
            fail("RESP-FRAME-6: pipelined responses out of order: response " + std::to_string(i) + " answers '" + q +
                 "'");
    }
}

void pipelining_fallback(Ctx &ctx)
{
    // ABI-CAP-4 without CWSGI_CAP_PIPELINING: the server may answer the first request and close,
    // but a request it does not answer never reaches the app.
    if (ctx.has(CWSGI_CAP_PIPELINING))
        skip("the server declares CWSGI_CAP_PIPELINING (checked by pipelining-in-order)");
    int64_t before = ctx.handled();
    Conn c = ctx.connect();
    std::string raw;
    for (int i = 0; i < 3; i++) raw += ctx.req("GET", "/t/env?i=" + std::to_string(i));
    ctx.note_request(raw);
    c.send(raw);
    int answered = 0;
    for (int i = 0; i < 3; i++) {
        Response r = c.read_response({});
        if (r.status == 0) break;
        if (r.status != 200) fail("pipelined request " + std::to_string(i) + " got " + r.summary());
        json d = ctx.parse_json(r, "environ");
        if (environ_map(d)["QUERY_STRING"] != "i=" + std::to_string(i))
            fail("RESP-FRAME-6: pipelined responses out of order");
        answered++;
        if (r.has_token("Connection", "close")) break;
    }
    if (answered == 0) fail("ABI-CAP-4: the first pipelined request got no answer");
    int64_t reached = ctx.handled() - before;
    if (reached != answered)
        fail("ABI-CAP-4: " + std::to_string(reached) + " pipelined requests reached the app but " +
             std::to_string(answered) + " were answered");
}

void many_connections(Ctx &ctx)
{
    // rule: THR-4: 50 connections at once are all served (none starves behind another).
    std::vector<Conn> conns;
    for (int i = 0; i < 50; i++) conns.push_back(ctx.connect());
    for (int i = 0; i < 50; i++) conns[i].send(ctx.req("GET", "/t/env?c=" + std::to_string(i)));
    for (int i = 0; i < 50; i++) {
        Response r = conns[i].read_response({});
        if (r.status != 200 || !r.complete) fail("THR-4: connection " + std::to_string(i) + " of 50: " + r.summary());
    }
}

void blocking_handle(Ctx &ctx)
{
    // rule: THR-4: while one handle sleeps, the server answers malformed requests and serves
    // other requests.
    // rule: THR-10: in sync mode on the forking adapter the sleeping handle blocks its worker:
    // the other requests are held, not refused, and answered after it (or by another worker).
    const bool sync_inline = ctx.opt().worker_class == "sync" && ctx.opt().adapter == "forking";
    Conn slow = ctx.connect();
    slow.send(ctx.req("GET", "/t/sleep?ms=1500"));
    double t0 = now_ms();
    Response bad = ctx.exchange("GET /t/env HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"); // 400 by the server
    if (bad.status != 400) fail("THR-4: expected 400 while a handle sleeps, got " + bad.summary());
    Response ok = ctx.get("/t/env");
    double took = now_ms() - t0;
    if (ok.status != 200) fail("THR-4: expected 200 while a handle sleeps, got " + ok.summary());
    if (!sync_inline && took > 1200) {
        fail("THR-4: other requests waited " + std::to_string(static_cast<int>(took)) + " ms behind a sleeping handle");
    }
    Response s = slow.read_response({});
    if (s.status != 200) fail("the sleeping request got " + s.summary());
}

void threads(Ctx &ctx)
{
    // rule: THR-1 with CWSGI_CAP_THREADS and a CWSGI_THREADS_SAFE app: handles overlap.
    Conn a = ctx.connect(), b = ctx.connect();
    double t0 = now_ms();
    a.send(ctx.req("GET", "/t/sleep?ms=800"));
    b.send(ctx.req("GET", "/t/sleep?ms=800"));
    Response ra = a.read_response({}), rb = b.read_response({});
    double took = now_ms() - t0;
    if (ra.status != 200 || rb.status != 200) fail("sleep requests failed: " + ra.summary() + " / " + rb.summary());
    if (took > 1400)
        fail("THR-1: two 800 ms handles took " + std::to_string(static_cast<int>(took)) +
             " ms: they did not run at once");
    check_eq(ctx.caps_doc["threads"].get<int64_t>() >= 2, true,
             "LIFE-INFO-1: server_info.threads with CWSGI_CAP_THREADS");
}

} // namespace

void add_connection_cases(std::vector<Case> &out)
{
    out.push_back({"RESP-FRAME-6", "keep-alive", profile::base, 0, false, keep_alive});
    out.push_back({"RESP-FRAME-6", "connection-close", profile::base, 0, false, connection_close});
    out.push_back({"RESP-FRAME-6", "http10-closes-by-default", profile::base, 0, false, http10_default_close});
    out.push_back({"RESP-FRAME-6", "http10-length-says-close", profile::base, 0, false, http10_length_framed_close});
    out.push_back({"ABI-CAP-4", "pipelining-in-order", profile::base, CWSGI_CAP_PIPELINING, false, pipelining});
    out.push_back({"ABI-CAP-4", "pipelining-not-declared", profile::base, 0, false, pipelining_fallback});
    out.push_back({"THR-4", "fifty-connections", profile::base, 0, false, many_connections});
    out.push_back({"THR-4", "blocking-handle-blocks-one-thread", profile::base, 0, false, blocking_handle});
    out.push_back({"THR-1", "threads-run-at-once", profile::base, CWSGI_CAP_THREADS, false, threads});
}

} // namespace conf
