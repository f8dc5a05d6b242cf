// cases_limits.cc: requests the server answers by itself, never calling the app
// (spec/server.md: REQ-*, LIMIT-*; spec/environ.md: ENV-PATH-4).
//
// Each case sends exact bytes, expects the status the spec gives, checks the form of the
// server's own answer (REQ-REPLY-1: standard reason, text/plain, Content-Length,
// Connection: close, body "<status> <reason>\n", then a close), and checks with the probe's
// bookkeeping that the request never reached the app.
#include <chrono>
#include <thread>

#include "suite.hh"

namespace conf {
namespace {

const char *standard_reason(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    default: return "";
    }
}

} // namespace

/// Checks the form of a server's own answer (REQ-REPLY-1). Shared with other case files.
void check_server_answer(const Response &r, int status, const std::string &what)
{
    if (r.status != status) fail(what + ": expected " + std::to_string(status) + ", got " + r.summary());
    std::string reason = standard_reason(status);
    // RFC 9110 renamed 413 ("Payload Too Large" before); accept both names.
    bool reason_ok = r.reason == reason ||
                     (status == 413 && (r.reason == "Payload Too Large" || r.reason == "Request Entity Too Large"));
    if (!reason_ok) fail("REQ-REPLY-1: " + what + ": reason phrase '" + r.reason + "', expected '" + reason + "'");
    if (!r.complete) fail("REQ-REPLY-1: " + what + ": the answer is incomplete (" + r.error + ")");
    check_eq(r.header("Content-Type").value_or("<none>"), std::string("text/plain; charset=utf-8"),
             "REQ-REPLY-1: " + what + ": Content-Type");
    if (r.framing != Framing::length) fail("REQ-REPLY-1: " + what + ": the answer must carry Content-Length");
    if (!r.has_token("Connection", "close")) fail("REQ-REPLY-1: " + what + ": the answer must carry Connection: close");
    std::string body = std::to_string(status) + " " + r.reason + "\n";
    if (r.body != body)
        fail("REQ-REPLY-1: " + what + ": body '" + escape_bytes(r.body) + "', expected '" + escape_bytes(body) + "'");
}

namespace {

/// Sends `raw`, expects the server's own `status` answer, the close, and no app call.
void reject(Ctx &ctx, const std::string &raw, int status, const std::string &what, ReadOptions ro = {})
{
    int64_t before = ctx.handled();
    ctx.note_request(raw);
    Conn c = ctx.connect();
    c.send(raw);
    Response r = c.read_response(ro);
    check_server_answer(r, status, what);
    if (!c.wait_closed(3000))
        fail("REQ-REPLY-1: " + what + ": the connection stayed open after the server's own answer");
    int64_t after = ctx.handled();
    if (after != before)
        fail("REQ-REPLY-1: " + what + ": the request reached the app (" + std::to_string(after - before) +
             " handle call(s))");
}

/// Sends `raw` and expects the probe to answer it (the request is valid).
void accept(Ctx &ctx, const std::string &raw, const std::string &what)
{
    Response r = ctx.exchange(raw);
    if (r.status != 200 || !r.complete) fail(what + ": a valid request was refused: " + r.summary());
}

std::string host(Ctx &ctx) { return "Host: 127.0.0.1:" + std::to_string(ctx.t.port) + "\r\n"; }

using Fn = std::function<void(Ctx &)>;

Fn rejects(std::vector<std::pair<std::string, std::string>> reqs, int status, const char *rule)
{
    return [reqs, status, rule](Ctx &ctx) {
        for (const auto &[what, raw] : reqs) {
            std::string r = raw;
            for (size_t p; (p = r.find("{host}")) != std::string::npos;) r.replace(p, 6, host(ctx));
            reject(ctx, r, status, std::string(rule) + ": " + what);
        }
    };
}

void line_at_limit(Ctx &ctx)
{
    // rule: LIMIT-1: exactly 4094 bytes is allowed; 4095 is 414.
    auto line_of = [](size_t total) {
        // "GET " + target + " HTTP/1.1" == total bytes
        size_t target_len = total - 4 - 9;
        return "GET /t/env?" + std::string(target_len - 7, 'a') + " HTTP/1.1";
    };
    int64_t limit = ctx.caps_doc.value("limit_request_line", 4094);
    std::string ok = line_of(static_cast<size_t>(limit));
    check_eq(ok.size(), static_cast<size_t>(limit), "test request line length");
    accept(ctx, ok + "\r\n" + host(ctx) + "\r\n", "LIMIT-1: a request line of exactly the limit");
    reject(ctx, line_of(static_cast<size_t>(limit) + 1) + "\r\n" + host(ctx) + "\r\n", 414,
           "LIMIT-1: a request line one byte over the limit");
    reject(ctx, "GET /" + std::string(10000, 'a') + " HTTP/1.1\r\n" + host(ctx) + "\r\n", 414,
           "LIMIT-1: a 10 KB request line");
}

void fields_at_limit(Ctx &ctx)
{
    // rule: LIMIT-2: 100 fields (Host included) are allowed, 101 are 431.
    int64_t limit = ctx.caps_doc.value("limit_request_fields", 100);
    auto req_with = [&](int64_t n) {
        std::string r = "GET /t/env HTTP/1.1\r\n" + host(ctx);
        for (int64_t i = 1; i < n; i++) r += "X-F" + std::to_string(i) + ": v\r\n";
        return r + "\r\n";
    };
    accept(ctx, req_with(limit), "LIMIT-2: exactly the limit of header fields");
    reject(ctx, req_with(limit + 1), 431, "LIMIT-2: one header field over the limit");
}

void field_size_at_limit(Ctx &ctx)
{
    // rule: LIMIT-3: a field line "name: value\r\n" of exactly 8190 bytes is allowed, 8191 is 431.
    int64_t limit = ctx.caps_doc.value("limit_request_field_size", 8190);
    auto field = [](int64_t total) { return "X-Big: " + std::string(static_cast<size_t>(total - 9), 'v') + "\r\n"; };
    check_eq(field(limit).size(), static_cast<size_t>(limit), "test field length");
    accept(ctx, "GET /t/env HTTP/1.1\r\n" + host(ctx) + field(limit) + "\r\n", "LIMIT-3: a field of exactly the limit");
    reject(ctx, "GET /t/env HTTP/1.1\r\n" + host(ctx) + field(limit + 1) + "\r\n", 431,
           "LIMIT-3: a field one byte over the limit");
}

void head_timeout(Ctx &ctx)
{
    // rule: LIMIT-5: a head that stalls is answered 408 within --client-timeout, and closed.
    int64_t before = ctx.handled();
    Conn c = ctx.connect();
    std::string raw = "GET /t/env HTTP/1.1\r\n" + host(ctx) + "X-Partial: yes\r\n";
    ctx.note_request(raw);
    c.send(raw);
    double t0 = now_ms();
    ReadOptions ro;
    ro.read_timeout_ms = (kLimitTimeoutS + 4) * 1000;
    Response r = c.read_response(ro);
    double took = now_ms() - t0;
    check_server_answer(r, 408, "LIMIT-5: a stalled request head");
    if (took < kLimitTimeoutS * 1000 - 300)
        fail("LIMIT-5: the 408 came after " + std::to_string(static_cast<int>(took)) + " ms, before --client-timeout " +
             std::to_string(kLimitTimeoutS) + " s");
    if (!c.wait_closed(3000)) fail("LIMIT-5: the connection stayed open after the 408");
    check_eq(ctx.handled() - before, int64_t(0), "LIMIT-5: stalled requests that reached the app");
}

void keepalive_idle(Ctx &ctx)
{
    // rule: LIMIT-5: an idle kept-alive connection is closed after --keep-alive (2 s default),
    // without a response.
    Conn c = ctx.connect();
    std::string raw = ctx.req("GET", "/t/env");
    ctx.note_request(raw);
    c.send(raw);
    Response r = c.read_response({});
    if (r.status != 200 || !r.complete) fail("expected a complete 200, got " + r.summary());
    if (r.has_token("Connection", "close")) fail("the first response closed the connection");
    std::string extra;
    if (!c.wait_closed(8000, &extra))
        fail("LIMIT-5: an idle kept-alive connection was still open after 8 s (--keep-alive is 2 s)");
    if (!extra.empty()) fail("LIMIT-5: the idle connection got bytes before the close: " + escape_bytes(extra, 120));
}

void keepalive_not_for_slow_bodies(Ctx &ctx)
{
    // rule: LIMIT-5: --keep-alive bounds only the time between requests. A body that keeps
    // arriving, here 4 pieces 900 ms apart (3.6 s in all, past the 2 s --keep-alive, each gap
    // well within --client-timeout), is read whole and answered.
    const std::string body = pattern(0, 40000);
    Conn c = ctx.connect();
    std::string head = ctx.req("POST", "/t/echo?r=4096", "Content-Length: 40000\r\n");
    ctx.note_request(head + body);
    c.send(head);
    for (size_t off = 0; off < body.size(); off += 10000) {
        std::this_thread::sleep_for(std::chrono::milliseconds(900)); // the client's pace, not a wait for the server
        c.send(body.substr(off, 10000));
    }
    Response r = c.read_response({});
    if (r.status != 200 || !r.complete) fail("LIMIT-5: a body slower than --keep-alive was cut: " + r.summary());
    if (r.body != body)
        fail("LIMIT-5: the slow body came back different (" + std::to_string(r.body.size()) + " bytes)");
}

void expect_unknown(Ctx &ctx)
{
    // rule: REQ-HDR-4
    reject(ctx, "POST /t/read HTTP/1.1\r\n" + host(ctx) + "Expect: 100-continue-please\r\nContent-Length: 3\r\n\r\nabc",
           417, "REQ-HDR-4: Expect with an unknown value");
}

void obs_text(Ctx &ctx)
{
    // rule: REQ-HDR-2: bytes 0x80-0xFF in a value reach the app unchanged; HTAB is allowed.
    Response r = ctx.exchange("GET /t/env HTTP/1.1\r\n" + host(ctx) + "X-Latin: caf\xe9\tbar\r\n\r\n");
    if (r.status != 200 || !r.complete) fail("REQ-HDR-2: obs-text in a value was refused: " + r.summary());
    json d = ctx.parse_json(r, "environ");
    check_eq(environ_map(d)["HTTP_X_LATIN"], std::string("caf\xe9\tbar"), "REQ-HDR-2: HTTP_X_LATIN");
}

void gzip_chunked(Ctx &ctx)
{
    // rule: REQ-BODY-5: only the chunked framing is removed; the app sees the coding.
    // Built with its length: the NUL inside would end a plain C string after three bytes.
    const std::string body("\x1f\x8b\x08\x00not-really-gzip", 19);
    std::string raw = "POST /t/env HTTP/1.1\r\n" + host(ctx) + "Transfer-Encoding: gzip, chunked\r\n\r\n" + "13\r\n" +
                      body + "\r\n0\r\n\r\n";
    Response r = ctx.exchange(raw);
    if (r.status != 200 || !r.complete) fail("REQ-BODY-5: gzip, chunked was refused: " + r.summary());
    json d = ctx.parse_json(r, "environ");
    check_eq(b64decode(d["body_b64"].get<std::string>()), body, "REQ-BODY-5: body still coded");
    bool te = false;
    for (const auto &h : d["headers"]) te = te || (h[0] == "transfer-encoding" && h[1] == "gzip, chunked");
    if (!te) fail("REQ-BODY-5: the app does not see Transfer-Encoding: gzip, chunked in its header list");
}

void identity_ignored(Ctx &ctx)
{
    // rule: REQ-BODY-4: identity is ignored wherever it appears.
    Response r = ctx.exchange("POST /t/read HTTP/1.1\r\n" + host(ctx) +
                              "Transfer-Encoding: identity, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    if (r.status != 200 || !r.complete) fail("REQ-BODY-4: 'identity, chunked' was refused: " + r.summary());
    json d = ctx.parse_json(r, "read");
    check_eq(d["body_len"].get<int64_t>(), int64_t(3), "REQ-BODY-4: body length");
}

} // namespace

void add_limits_cases(std::vector<Case> &out)
{
    auto add = [&](const char *rule, const char *name, Fn fn, const char *prof = profile::base) {
        out.push_back({rule, name, prof, 0, false, std::move(fn)});
    };
    const std::string H = "{host}";
    add("REQ-LINE-1", "reject-bad-method",
        rejects({{"lower-case method", "get /t/env HTTP/1.1\r\n" + H + "\r\n"},
                 {"non-token method", "G@T /t/env HTTP/1.1\r\n" + H + "\r\n"},
                 {"NUL in the method", std::string("GE\0T /t/env HTTP/1.1\r\n", 22) + H + "\r\n"}},
                400, "REQ-LINE-1"));
    add("REQ-LINE-2", "reject-bad-version",
        rejects({{"FTP/1.1", "GET /t/env FTP/1.1\r\n" + H + "\r\n"},
                 {"HTTP/1.x", "GET /t/env HTTP/1.x\r\n" + H + "\r\n"},
                 {"HTTP/11.1", "GET /t/env HTTP/11.1\r\n" + H + "\r\n"},
                 {"garbage line", "\x01\x02 hello\r\n\r\n"},
                 {"trailing word", "GET /t/env HTTP/1.1 extra\r\n" + H + "\r\n"}},
                400, "REQ-LINE-2"));
    add("REQ-LINE-2", "reject-major-version-505",
        rejects({{"HTTP/2.0", "GET /t/env HTTP/2.0\r\n" + H + "\r\n"},
                 {"HTTP/3.0", "GET /t/env HTTP/3.0\r\n" + H + "\r\n"}},
                505, "REQ-LINE-2"));
    add("REQ-LINE-3", "reject-bad-target-form",
        rejects({{"relative target", "GET t/env HTTP/1.1\r\n" + H + "\r\n"},
                 {"asterisk with GET", "GET * HTTP/1.1\r\n" + H + "\r\n"},
                 {"absolute-form without authority", "GET http:///t/env HTTP/1.1\r\n" + H + "\r\n"}},
                400, "REQ-LINE-3"));
    add("REQ-LINE-3", "reject-connect-501",
        rejects({{"CONNECT", "CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n"}}, 501,
                "REQ-LINE-3"));
    add("REQ-LINE-4", "reject-bad-target-bytes",
        rejects({{"control byte in the target", "GET /t/e\x01nv HTTP/1.1\r\n" + H + "\r\n"},
                 {"8-bit byte in the target", "GET /t/caf\xe9 HTTP/1.1\r\n" + H + "\r\n"}},
                400, "REQ-LINE-4"));
    add("REQ-LINE-5", "reject-bad-percent-escape",
        rejects({{"%zz", "GET /t/env%zz HTTP/1.1\r\n" + H + "\r\n"},
                 {"trailing %", "GET /t/env% HTTP/1.1\r\n" + H + "\r\n"},
                 {"%00", "GET /t/env%00x HTTP/1.1\r\n" + H + "\r\n"}},
                400, "REQ-LINE-5"));
    add("REQ-HDR-1", "reject-bad-field-name",
        rejects({{"whitespace before the colon", "GET /t/env HTTP/1.1\r\n" + H + "X-A : b\r\n\r\n"},
                 {"non-token name", "GET /t/env HTTP/1.1\r\n" + H + "X(A): b\r\n\r\n"},
                 {"empty name", "GET /t/env HTTP/1.1\r\n" + H + ": b\r\n\r\n"},
                 {"NUL in the name", "GET /t/env HTTP/1.1\r\n" + H + std::string("X-\0A: b\r\n\r\n", 11)},
                 {"8-bit name", "GET /t/env HTTP/1.1\r\n" + H + "X-\xc3\xa9: b\r\n\r\n"},
                 {"line without colon", "GET /t/env HTTP/1.1\r\n" + H + "NoColonHere\r\n\r\n"}},
                400, "REQ-HDR-1"));
    add("REQ-HDR-2", "reject-bad-field-value",
        rejects({{"bare CR in a value", "GET /t/env HTTP/1.1\r\n" + H + "X-A: a\rb\r\n\r\n"},
                 {"NUL in a value", "GET /t/env HTTP/1.1\r\n" + H + std::string("X-A: a\0b\r\n\r\n", 12)},
                 {"BEL in a value", "GET /t/env HTTP/1.1\r\n" + H +
                                        "X-A: a\x07"
                                        "b\r\n\r\n"},
                 {"DEL in a value", "GET /t/env HTTP/1.1\r\n" + H +
                                        "X-A: a\x7f"
                                        "b\r\n\r\n"},
                 {"obs-fold", "GET /t/env HTTP/1.1\r\n" + H + "X-A: a\r\n b\r\n\r\n"}},
                400, "REQ-HDR-2"));
    add("REQ-HDR-2", "accept-obs-text-value", obs_text);
    add("REQ-HDR-3", "reject-bad-host",
        rejects({{"two Host fields", "GET /t/env HTTP/1.1\r\n" + H + H + "\r\n"},
                 {"Host with user info", "GET /t/env HTTP/1.1\r\nHost: user@127.0.0.1\r\n\r\n"},
                 {"Host with a path", "GET /t/env HTTP/1.1\r\nHost: 127.0.0.1/x\r\n\r\n"},
                 {"Host with a bad port", "GET /t/env HTTP/1.1\r\nHost: 127.0.0.1:8x\r\n\r\n"},
                 {"Host with a space", "GET /t/env HTTP/1.1\r\nHost: a b\r\n\r\n"}},
                400, "REQ-HDR-3"));
    add("REQ-HDR-5", "reject-two-content-types",
        rejects({{"two values",
                  "POST /t/read HTTP/1.1\r\n" + H +
                      "Content-Type: application/json\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\n{}"},
                 {"the same value twice",
                  "POST /t/read HTTP/1.1\r\n" + H +
                      "Content-Type: text/plain\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"}},
                400, "REQ-HDR-5"));
    add("REQ-HDR-3", "accept-missing-host", [](Ctx &ctx) {
        // rule: REQ-HDR-3: HTTP/1.1 without Host is served; SERVER_NAME comes from the socket.
        accept(ctx, "GET /t/env HTTP/1.1\r\nX-A: b\r\n\r\n", "REQ-HDR-3: HTTP/1.1 without Host");
    });
    add("REQ-HDR-4", "reject-unknown-expect-417", expect_unknown);
    add("REQ-BODY-2", "reject-bad-content-length",
        rejects(
            {{"letters", "POST /t/read HTTP/1.1\r\n" + H + "Content-Length: abc\r\n\r\n"},
             {"negative", "POST /t/read HTTP/1.1\r\n" + H + "Content-Length: -1\r\n\r\n"},
             {"plus sign", "POST /t/read HTTP/1.1\r\n" + H + "Content-Length: +1\r\n\r\nx"},
             {"list form", "POST /t/read HTTP/1.1\r\n" + H + "Content-Length: 1, 1\r\n\r\nx"},
             {"19 digits", "POST /t/read HTTP/1.1\r\n" + H + "Content-Length: 1000000000000000000\r\n\r\n"},
             {"two equal fields", "POST /t/read HTTP/1.1\r\n" + H + "Content-Length: 1\r\nContent-Length: 1\r\n\r\nx"},
             {"two different fields",
              "POST /t/read HTTP/1.1\r\n" + H + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nxx"}},
            400, "REQ-BODY-2"));
    add("REQ-BODY-3", "reject-transfer-encoding-http10",
        rejects({{"chunked in HTTP/1.0", "POST /t/read HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"}}, 400,
                "REQ-BODY-3"));
    add("REQ-BODY-4", "reject-chunked-not-last",
        rejects(
            {{"chunked, gzip", "POST /t/read HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"},
             {"chunked twice", "POST /t/read HTTP/1.1\r\n" + H +
                                   "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
             {"gzip only", "POST /t/read HTTP/1.1\r\n" + H + "Transfer-Encoding: gzip\r\n\r\nabc"}},
            400, "REQ-BODY-4"));
    add("REQ-BODY-4", "accept-identity-ignored", identity_ignored);
    add("REQ-BODY-5", "reject-unknown-coding-501",
        rejects(
            {{"foo, chunked", "POST /t/read HTTP/1.1\r\n" + H + "Transfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n"}},
            501, "REQ-BODY-5"));
    add("REQ-BODY-5", "accept-gzip-chunked", gzip_chunked);
    add("REQ-BODY-6", "reject-content-length-with-chunked",
        rejects({{"CL + TE",
                  "POST /t/read HTTP/1.1\r\n" + H + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
                 {"TE + CL", "POST /t/read HTTP/1.1\r\n" + H +
                                 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"}},
                400, "REQ-BODY-6"));
    add("LIMIT-1", "request-line-limit-414", line_at_limit);
    add("LIMIT-2", "header-count-limit-431", fields_at_limit);
    add("LIMIT-3", "header-size-limit-431", field_size_at_limit);
    add("LIMIT-5", "stalled-head-408", head_timeout, profile::limits);
    add("LIMIT-5", "idle-keep-alive-closed", keepalive_idle);
    add("LIMIT-5", "slow-body-outlives-keep-alive", keepalive_not_for_slow_bodies);
}

} // namespace conf
