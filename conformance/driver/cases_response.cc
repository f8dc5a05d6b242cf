// cases_response.cc: the response as the client receives it, and the state machine's answers
// to misuse (spec/response.md: RESP-*).
#include <map>
#include <mutex>

#include "suite.hh"

namespace conf {
namespace {

// ---- the misuse battery: one request to /t/misuse, checked by many cases -----------------

struct MisuseRun {
    Response wire;
    json doc;   // {"pre": {...}, "post": {...}}
    json notes; // codes recorded after finish and in on_request_end
};

const MisuseRun &misuse(Ctx &ctx)
{
    static std::mutex mu;
    static std::map<std::string, MisuseRun> cache;
    std::lock_guard<std::mutex> lk(mu);
    std::string key =
        ctx.t.host + ":" + std::to_string(ctx.t.port) + ":" + std::to_string(ctx.t.proc ? ctx.t.proc->pid() : 0);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
    MisuseRun m;
    std::string tag = ctx.tag("misuse");
    m.wire = ctx.exchange(ctx.req("GET", "/t/misuse?tag=" + tag));
    if (m.wire.status != 200 || !m.wire.complete)
        fail("GET /t/misuse: expected a complete 200, got " + m.wire.summary());
    m.doc = ctx.parse_json(m.wire, "/t/misuse");
    json s = ctx.wait_ends(tag, 1, 3000);
    m.notes = s["tag"].is_null() ? json::object() : s["tag"]["notes"];
    return cache.emplace(key, std::move(m)).first->second;
}

struct Expect {
    const char *where; // "pre", "post" or "notes"
    const char *key;
    int64_t want;
};

/// Checks the codes the misuse battery recorded against the spec's.
void check_codes(Ctx &ctx, const char *rule, const std::vector<Expect> &items)
{
    const MisuseRun &m = misuse(ctx);
    std::string bad;
    for (const auto &e : items) {
        const json &sec = std::string(e.where) == "notes" ? m.notes : m.doc[e.where];
        if (!sec.contains(e.key)) {
            bad += std::string(e.key) + ": not recorded; ";
            continue;
        }
        int64_t got = sec[e.key].get<int64_t>();
        if (got != e.want)
            bad += std::string(e.key) + ": expected " + code_name(e.want) + ", got " + code_name(got) + "; ";
    }
    if (!bad.empty()) fail(std::string(rule) + ": " + bad);
}

std::function<void(Ctx &)> codes(const char *rule, std::initializer_list<Expect> items)
{
    std::vector<Expect> v(items);
    return [rule, v](Ctx &ctx) { check_codes(ctx, rule, v); };
}

void misuse_wire(Ctx &ctx)
{
    // rule: RESP-START-3, RESP-START-4: failed calls changed nothing; REPLACE replaced everything.
    check_codes(ctx, "RESP-START-4",
                {{"pre", "first_start", CWSGI_OK},
                 {"pre", "second_start_no_replace", CWSGI_E_STATE},
                 {"pre", "replace_start", CWSGI_OK},
                 {"post", "replace_after_commit", CWSGI_E_COMMITTED},
                 {"post", "start_after_commit", CWSGI_E_COMMITTED}});
    const Response &r = misuse(ctx).wire;
    check_eq(r.status, 200, "RESP-START-4: status after REPLACE");
    auto probe = r.headers_named("X-Probe");
    if (probe != std::vector<std::string>{"second"})
        fail("RESP-START-4: X-Probe expected exactly 'second', got " + fields_str(r.headers));
    for (const char *n : {"Injected", "X-Ok", "X-Bad", "X-A", "Bad Name"}) {
        if (r.header(n))
            fail(std::string("RESP-START-3: header '") + n + "' from a failed start_response reached the wire");
    }
    if (r.reason.find("Injected") != std::string::npos) fail("RESP-START-3: a reason with CR/LF reached the wire");
}

// ---- wire behaviour -----------------------------------------------------------------------

Response must(Ctx &ctx, const std::string &raw, int status, ReadOptions ro = {})
{
    Response r = ctx.exchange(raw, ro);
    if (r.status != status || !r.complete)
        fail("expected a complete " + std::to_string(status) + ", got " + r.summary());
    return r;
}

/// Sends a second request on `c` and checks that it is answered: the connection was left in a
/// clean state by the first response.
void connection_still_usable(Ctx &ctx, Conn &c, const Response &first, const std::string &what)
{
    if (first.has_token("Connection", "close")) {
        // RESP-FRAME-6 lets a server close after any response ("stays open only if"); it must
        // then really close, so that the client never reads leftover bytes as a response.
        if (!c.wait_closed(3000)) fail(what + ": Connection: close was sent but the connection stayed open");
        ctx.diag.push_back(what + ": the server closed the connection (allowed by RESP-FRAME-6; costs a reconnect)");
        return;
    }
    std::string raw = ctx.req("GET", "/t/env?after=1");
    if (!c.send(raw)) fail(what + ": the connection was closed after the response");
    Response r = c.read_response({});
    if (r.status != 200 || !r.complete)
        fail(what + ": the next request on the connection got " + r.summary() +
             " (body bytes leaked into the stream?)");
}

void deferred_commit(Ctx &ctx)
{
    // rule: RESP-START-2: start_response, 700 ms of work, then the first write.
    Conn c = ctx.connect();
    std::string raw = ctx.req("GET", "/t/status?s=200&pre_delay_ms=700&body=late");
    ctx.note_request(raw);
    c.send(raw);
    if (c.data_within(450)) fail("RESP-START-2: response bytes arrived before the app's first write");
    Response r = c.read_response({});
    if (r.status != 200 || r.body != "late") fail("expected 200 'late', got " + r.summary());
}

void head_with_length(Ctx &ctx)
{
    // rule: RESP-NOBODY-3
    Response g = must(ctx, ctx.req("GET", "/t/stream?n=3&m=10&cl=1"), 200);
    Conn c = ctx.connect();
    std::string raw = ctx.req("HEAD", "/t/stream?n=3&m=10&cl=1");
    ctx.note_request(raw);
    c.send(raw);
    ReadOptions ro;
    ro.head = true;
    Response h = c.read_response(ro);
    if (h.status != 200) fail("HEAD: expected 200, got " + h.summary());
    check_eq(h.header("Content-Length").value_or("<none>"), std::string("30"),
             "RESP-NOBODY-3: Content-Length of the HEAD response");
    check_eq(h.header("Content-Type").value_or("<none>"), g.header("Content-Type").value_or("<none>"),
             "RESP-NOBODY-3: Content-Type as for GET");
    if (h.header("Transfer-Encoding")) fail("RESP-NOBODY-3: HEAD response carries Transfer-Encoding");
    connection_still_usable(ctx, c, h, "RESP-NOBODY-3: after HEAD");
}

// HEAD of `target`, whose app gives no length: 200 with no Content-Length or Transfer-Encoding
// of the server's own, and the connection still carries a request (RESP-NOBODY-3).
void check_head_without_length(Ctx &ctx, const std::string &target, const std::string &what)
{
    Conn c = ctx.connect();
    std::string raw = ctx.req("HEAD", target);
    ctx.note_request(raw);
    c.send(raw);
    ReadOptions ro;
    ro.head = true;
    Response h = c.read_response(ro);
    if (h.status != 200) fail("HEAD: expected 200, got " + h.summary());
    if (h.header("Content-Length"))
        fail("RESP-NOBODY-3: the server added Content-Length " + *h.header("Content-Length") + " to " + what);
    if (h.header("Transfer-Encoding")) fail("RESP-NOBODY-3: the server added Transfer-Encoding to " + what);
    connection_still_usable(ctx, c, h, "RESP-NOBODY-3: after " + what);
}

void head_without_length(Ctx &ctx)
{
    // rule: RESP-NOBODY-3: no Content-Length or Transfer-Encoding of the server's own
    check_head_without_length(ctx, "/t/stream?n=3&m=10", "a HEAD response");
}

/// Header names of `r` in order, lowercased, without the per-response Date.
std::vector<std::string> header_names(const Response &r)
{
    std::vector<std::string> out;
    for (const auto &f : r.headers) {
        if (iequals(f.name, "Date")) continue;
        std::string n = f.name;
        for (char &ch : n) ch = static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
        out.push_back(std::move(n));
    }
    return out;
}

void head_same_headers_as_get(Ctx &ctx)
{
    // rule: RESP-NOBODY-3: HEAD gets the status and headers GET gets, no body bytes on the wire,
    // and the connection carries the next request as if nothing had been skipped.
    const std::string target = "/t/status?s=200&cl=5&body=hello&h=X-Probe:head";
    Conn c = ctx.connect();
    std::string get = ctx.req("GET", target), head = ctx.req("HEAD", target);
    ctx.note_request(get + head + get);
    c.send(get);
    Response g = c.read_response({});
    if (g.status != 200 || !g.complete || g.body != "hello")
        fail("GET: expected a complete 200 'hello', got " + g.summary());
    if (g.has_token("Connection", "close"))
        fail("GET on HTTP/1.1 closed the connection: the HEAD case needs keep-alive");
    c.send(head);
    ReadOptions ro;
    ro.head = true;
    Response h = c.read_response(ro);
    if (h.status != 200) fail("HEAD: expected 200, got " + h.summary());
    check_eq(h.header("Content-Length").value_or("<none>"), std::string("5"),
             "RESP-NOBODY-3: Content-Length of the HEAD response");
    auto gn = header_names(g), hn = header_names(h);
    if (gn != hn)
        fail("RESP-NOBODY-3: HEAD headers differ from GET's: GET " + fields_str(g.headers) + " / HEAD " +
             fields_str(h.headers));
    for (const auto &f : g.headers) {
        if (iequals(f.name, "Date")) continue;
        check_eq(h.header(f.name).value_or("<none>"), f.value, "RESP-NOBODY-3: HEAD value of " + f.name);
    }
    if (c.data_within(300)) fail("RESP-NOBODY-3: bytes followed the HEAD response's head (a body sent for HEAD?)");
    c.send(get);
    Response again = c.read_response({});
    if (again.status != 200 || !again.complete || again.body != "hello") {
        fail("RESP-NOBODY-3: the GET after HEAD on the same connection got " + again.summary());
    }
}

void head_no_length_no_body(Ctx &ctx)
{
    // rule: RESP-NOBODY-3, RESP-FRAME-2: the app gives no length and writes nothing. GET gets
    // Content-Length: 0; HEAD gets no Content-Length (the server cannot know what GET sends).
    Response g = must(ctx, ctx.req("GET", "/t/status?s=200"), 200);
    check_eq(g.header("Content-Length").value_or("<none>"), std::string("0"),
             "RESP-FRAME-2: Content-Length of the empty GET");
    check_head_without_length(ctx, "/t/status?s=200", "an empty HEAD response without a length");
}

void no_body_status(Ctx &ctx, int status)
{
    std::string tag = ctx.tag("nobody");
    Conn c = ctx.connect();
    std::string raw = ctx.req("GET", "/t/status?s=" + std::to_string(status) + "&body=abc&tag=" + tag);
    ctx.note_request(raw);
    c.send(raw);
    Response r = c.read_response({});
    if (r.status != status) fail("expected " + std::to_string(status) + ", got " + r.summary());
    // rule: RESP-NOBODY-1
    if (r.header("Content-Length"))
        fail("RESP-NOBODY-1: the server added Content-Length to a " + std::to_string(status));
    if (r.header("Transfer-Encoding"))
        fail("RESP-NOBODY-1: the server added Transfer-Encoding to a " + std::to_string(status));
    json s = ctx.wait_ends(tag, 1, 3000);
    check_eq(s["tag"]["notes"]["write_rc"].get<int64_t>(), int64_t(CWSGI_E_LENGTH), "RESP-NOBODY-1: write of 3 bytes");
    check_eq(s["tag"]["notes"]["finish_rc"].get<int64_t>(), int64_t(CWSGI_OK), "RESP-NOBODY-1: finish");
    connection_still_usable(ctx, c, r, "RESP-NOBODY-1: after " + std::to_string(status));
}

void status_304_length(Ctx &ctx)
{
    // rule: RESP-NOBODY-2: a 304 passes the app's Content-Length unchanged, with no body.
    Conn c = ctx.connect();
    std::string raw = ctx.req("GET", "/t/status?s=304&cl=1234");
    ctx.note_request(raw);
    c.send(raw);
    Response r = c.read_response({});
    if (r.status != 304) fail("expected 304, got " + r.summary());
    check_eq(r.header("Content-Length").value_or("<none>"), std::string("1234"),
             "RESP-NOBODY-2: Content-Length of the 304");
    connection_still_usable(ctx, c, r, "RESP-NOBODY-2: after 304");
}

void finish_without_body(Ctx &ctx)
{
    // rule: RESP-FRAME-2
    Response r = must(ctx, ctx.req("GET", "/t/status?s=200"), 200);
    check_eq(r.header("Content-Length").value_or("<none>"), std::string("0"), "RESP-FRAME-2: Content-Length");
    if (r.header("Transfer-Encoding")) fail("RESP-FRAME-2: Transfer-Encoding on an empty response");
}

void app_length(Ctx &ctx)
{
    // rule: RESP-FRAME-1
    Response r = must(ctx, ctx.req("GET", "/t/stream?n=2&m=100&cl=1"), 200);
    check_eq(r.framing == Framing::length, true, "RESP-FRAME-1: Content-Length framing");
    check_eq(r.headers_named("Content-Length").size(), size_t(1), "RESP-FRAME-1: number of Content-Length fields");
    if (r.body != pattern(0, 200)) fail("RESP-FRAME-1: body differs");
}

void chunked_default(Ctx &ctx)
{
    // rule: RESP-FRAME-3, RESP-BODY-3: three writes 250 ms apart arrive as separate chunks.
    Response r = must(ctx, ctx.req("GET", "/t/stream?n=3&m=100&delay_ms=250"), 200);
    if (r.framing != Framing::chunked)
        fail(std::string("RESP-FRAME-3: expected chunked framing, got ") + framing_name(r.framing));
    if (r.body != pattern(0, 300)) fail("RESP-FRAME-3: body differs");
    size_t data_chunks = 0;
    for (size_t i = 0; i + 1 < r.chunk_sizes.size(); i++) {
        if (r.chunk_sizes[i] == 0) fail("RESP-BODY-3: an empty chunk before the end");
        data_chunks++;
    }
    if (data_chunks < 3)
        fail("RESP-BODY-2: three writes 250 ms apart arrived in " + std::to_string(data_chunks) +
             " chunk(s): the server held bytes back");
}

void streaming(Ctx &ctx)
{
    // rule: RESP-BODY-2: the first write leaves at once, not when the body ends.
    ReadOptions ro;
    double first_body = -1;
    double t0 = now_ms();
    ro.on_body = [&](const char *, size_t) {
        if (first_body < 0) first_body = now_ms() - t0;
        return true;
    };
    Response r = ctx.exchange(ctx.req("GET", "/t/stream?n=4&m=10&delay_ms=400"), ro);
    if (r.status != 200 || !r.complete) fail("expected a complete 200, got " + r.summary());
    if (first_body < 0 || first_body > 800) {
        fail("RESP-BODY-2: the first 10 bytes arrived after " + std::to_string(static_cast<int>(first_body)) +
             " ms; the body took " + std::to_string(static_cast<int>(r.ms_done)) + " ms in all (held back?)");
    }
}

void http10_close_delimited(Ctx &ctx)
{
    // rule: RESP-FRAME-4
    Conn c = ctx.connect();
    std::string raw = "GET /t/stream?n=3&m=100 HTTP/1.0\r\n\r\n";
    ctx.note_request(raw);
    c.send(raw);
    Response r = c.read_response({});
    if (r.status != 200 || !r.complete) fail("expected a complete 200, got " + r.summary());
    if (r.header("Transfer-Encoding")) fail("RESP-FRAME-4: Transfer-Encoding sent to an HTTP/1.0 client");
    if (r.body != pattern(0, 300)) fail("RESP-FRAME-4: body differs");
    if (r.framing == Framing::close) {
        if (!r.has_token("Connection", "close"))
            fail("RESP-FRAME-4: a close-delimited body needs Connection: close in the head");
    }
    if (!c.wait_closed(3000)) fail("RESP-FRAME-4: the server kept an HTTP/1.0 connection open without keep-alive");
}

void http10_keep_alive(Ctx &ctx)
{
    // rule: RESP-FRAME-6: HTTP/1.0 + Connection: keep-alive + a length: may stay open, and says so.
    Conn c = ctx.connect();
    std::string raw = "GET /t/stream?n=1&m=10&cl=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    ctx.note_request(raw);
    c.send(raw);
    Response r = c.read_response({});
    if (r.status != 200 || !r.complete) fail("expected a complete 200, got " + r.summary());
    if (r.has_token("Connection", "close")) {
        if (!c.wait_closed(3000)) fail("RESP-FRAME-6: Connection: close was sent but the connection stayed open");
        return;
    }
    if (!r.has_token("Connection", "keep-alive"))
        fail("RESP-FRAME-6: a kept-alive HTTP/1.0 response must carry Connection: keep-alive");
    c.send(raw);
    Response r2 = c.read_response({});
    if (r2.status != 200 || !r2.complete)
        fail("RESP-FRAME-6: the kept-alive HTTP/1.0 connection did not answer again: " + r2.summary());
}

void header_order(Ctx &ctx)
{
    // rule: RESP-HDR-4
    Response r =
        must(ctx, ctx.req("GET", "/t/status?h=Set-Cookie:a=1&h=X-B:2&h=set-cookie:b=2&h=X-C:%C3%A9%09x&body=ok"), 200);
    std::vector<Field> app;
    for (const auto &f : r.headers) {
        if (iequals(f.name, "Set-Cookie") || iequals(f.name, "X-B") || iequals(f.name, "X-C")) app.push_back(f);
    }
    std::string got = fields_str(app);
    std::vector<std::pair<std::string, std::string>> want = {
        {"set-cookie", "a=1"}, {"x-b", "2"}, {"set-cookie", "b=2"}, {"x-c", "\xc3\xa9\tx"}};
    bool same = app.size() == want.size();
    for (size_t i = 0; same && i < app.size(); i++) {
        same = iequals(app[i].name, want[i].first) && app[i].value == want[i].second;
    }
    if (!same) fail("RESP-HDR-4/RESP-HDR-2: app fields in order with duplicates expected, got " + escape_bytes(got));
    for (const auto &f : r.headers) {
        static const char *allowed[] = {"Set-Cookie", "X-B",  "X-C",    "Content-Length", "Transfer-Encoding",
                                        "Connection", "Date", "Server", "Keep-Alive"};
        bool ok = false;
        for (const char *a : allowed) ok = ok || iequals(f.name, a);
        if (!ok) fail("RESP-HDR-4: the server added a field '" + f.name + "'");
    }
}

void date_server_once(Ctx &ctx)
{
    // rule: RESP-HDR-4: no second Date or Server when the app gave one.
    Response r =
        must(ctx, ctx.req("GET", "/t/status?h=Date:Thu,%2001%20Jan%201970%2000:00:00%20GMT&h=Server:probe"), 200);
    check_eq(r.headers_named("Date").size(), size_t(1), "RESP-HDR-4: Date fields");
    check_eq(r.headers_named("Server").size(), size_t(1), "RESP-HDR-4: Server fields");
    check_eq(*r.header("Date"), std::string("Thu, 01 Jan 1970 00:00:00 GMT"), "RESP-HDR-4: the app's Date");
    check_eq(*r.header("Server"), std::string("probe"), "RESP-HDR-4: the app's Server");
}

void overrun(Ctx &ctx)
{
    // rule: RESP-LEN-2
    std::string tag = ctx.tag("overrun");
    Conn c = ctx.connect();
    std::string raw = ctx.req("GET", "/t/length?mode=over&tag=" + tag);
    ctx.note_request(raw);
    c.send(raw);
    Response r = c.read_response({});
    if (r.status != 200 || !r.complete) fail("expected a complete 200, got " + r.summary());
    json s = ctx.wait_ends(tag, 1, 3000);
    const json &n = s["tag"]["notes"];
    check_eq(n["w1"].get<int64_t>(), int64_t(CWSGI_OK), "RESP-LEN-2: first write (6 of 10)");
    check_eq(n["w2"].get<int64_t>(), int64_t(CWSGI_E_LENGTH), "RESP-LEN-2: write that passes Content-Length");
    check_eq(n["w3"].get<int64_t>(), int64_t(CWSGI_OK), "RESP-LEN-2: write that fits after the refused one");
    check_eq(n["fin"].get<int64_t>(), int64_t(CWSGI_OK), "RESP-LEN-2: finish");
    check_eq(r.header("Content-Length").value_or(""), std::string("10"), "RESP-FRAME-1: Content-Length");
    if (r.body != pattern(0, 10))
        fail("RESP-LEN-2: body expected the 6+4 accepted bytes, got '" + escape_bytes(r.body) + "'");
    check_eq(s["tag"]["outcome"].get<int64_t>(), int64_t(CWSGI_OK), "LIFE-END-2: outcome");
    connection_still_usable(ctx, c, r, "RESP-LEN-2");
}

void underrun(Ctx &ctx, bool implicit)
{
    // rule: RESP-LEN-3, RESP-ERR-2
    std::string tag = ctx.tag("underrun");
    Conn c = ctx.connect();
    std::string raw = ctx.req("GET", std::string("/t/length?mode=under&tag=") + tag + (implicit ? "&implicit=1" : ""));
    ctx.note_request(raw);
    c.send(raw);
    Response r = c.read_response({});
    if (r.status != 200) fail("expected 200, got " + r.summary());
    check_eq(r.header("Content-Length").value_or(""), std::string("100"), "RESP-FRAME-1: Content-Length");
    if (r.complete) fail("RESP-LEN-3: the response looks complete: a short body must be cut");
    if (r.error == "timeout")
        fail("RESP-LEN-3: the server left the client waiting for bytes that will not come (no close)");
    check_eq(r.body_bytes, uint64_t(10), "RESP-LEN-3: bytes before the cut");
    json s = ctx.wait_ends(tag, 1, 3000);
    if (!implicit)
        check_eq(s["tag"]["notes"]["fin"].get<int64_t>(), int64_t(CWSGI_E_LENGTH),
                 "RESP-LEN-3: finish after 10 of 100 bytes");
    check_eq(s["tag"]["outcome"].get<int64_t>(), int64_t(CWSGI_E_ABORTED), "RESP-LEN-3: outcome");
}

void error_before(Ctx &ctx, const std::string &when)
{
    // rule: RESP-ERR-1
    std::string tag = ctx.tag("err-before");
    Response r = ctx.exchange(ctx.req("GET", "/t/fail?when=" + when + "&tag=" + tag));
    if (r.status != 500 || !r.complete) fail("RESP-ERR-1: expected a complete 500, got " + r.summary());
    if (r.header("Content-Type") && r.header("Content-Type")->find("octet-stream") != std::string::npos) {
        fail("RESP-ERR-1: the app's headers were not discarded (Content-Type " + *r.header("Content-Type") + ")");
    }
    json s = ctx.wait_ends(tag, 1, 3000);
    check_eq(s["tag"]["outcome"].get<int64_t>(), int64_t(CWSGI_E_APP), "RESP-ERR-1: outcome");
}

/// Sends `raw` on a fresh connection and checks what every cut response shares (RESP-ERR-2):
/// the committed 200, the 100 bytes written before the failure, and a connection that closes.
Response read_cut_response(Ctx &ctx, const std::string &raw)
{
    Conn c = ctx.connect();
    ctx.note_request(raw);
    c.send(raw);
    Response r = c.read_response({});
    if (r.status != 200) fail("expected the committed 200, got " + r.summary());
    if (r.error == "timeout") fail("RESP-ERR-2: the connection was left open after the failure");
    check_eq(r.body_bytes, uint64_t(100), "RESP-ERR-2: bytes written before the failure");
    return r;
}

void error_after_chunked(Ctx &ctx)
{
    // rule: RESP-ERR-2: chunked: close without the last chunk.
    std::string tag = ctx.tag("err-after");
    Response r = read_cut_response(ctx, ctx.req("GET", "/t/fail?when=after&w=100&tag=" + tag));
    if (r.framing != Framing::chunked) fail(std::string("expected chunked framing, got ") + framing_name(r.framing));
    if (r.complete) fail("RESP-ERR-2: the body ended with the last chunk: the failure is invisible to the client");
    json s = ctx.wait_ends(tag, 1, 3000);
    check_eq(s["tag"]["outcome"].get<int64_t>(), int64_t(CWSGI_E_ABORTED), "RESP-ERR-2: outcome");
}

void error_after_length(Ctx &ctx)
{
    // rule: RESP-ERR-2: Content-Length: close before all bytes.
    std::string tag = ctx.tag("err-after-cl");
    Response r = read_cut_response(ctx, ctx.req("GET", "/t/fail?when=after&w=100&cl=1000&tag=" + tag));
    check_eq(r.header("Content-Length").value_or(""), std::string("1000"), "Content-Length");
    if (r.complete) fail("RESP-ERR-2: the response looks complete");
    json s = ctx.wait_ends(tag, 1, 3000);
    check_eq(s["tag"]["outcome"].get<int64_t>(), int64_t(CWSGI_E_ABORTED), "RESP-ERR-2: outcome");
}

void error_after_http10(Ctx &ctx)
{
    // rule: RESP-ERR-2: HTTP/1.0 close-delimited: the connection closes (the client cannot tell).
    read_cut_response(ctx, "GET /t/fail?when=after&w=100 HTTP/1.0\r\n\r\n");
}

void send_file_case(Ctx &ctx, const std::string &query, uint64_t offset, size_t len, bool want_cl)
{
    // rule: RESP-FILE-1, RESP-FILE-2 (the same bytes with or without CWSGI_CAP_SENDFILE)
    std::string tag = ctx.tag("file");
    Response r = must(ctx, ctx.req("GET", "/t/file?" + query + "&tag=" + tag), 200);
    if (r.body.size() != len)
        fail("RESP-FILE-1: expected " + std::to_string(len) + " bytes, got " + std::to_string(r.body.size()));
    int64_t bad = pattern_mismatch(r.body, offset);
    if (bad >= 0) fail("RESP-FILE-1: byte " + std::to_string(bad) + " of the file range differs");
    if (want_cl && r.framing != Framing::length) fail("RESP-FRAME-1: expected Content-Length framing");
    if (!want_cl && r.framing != Framing::chunked) fail("RESP-FRAME-3: expected chunked framing");
    json s = ctx.wait_ends(tag, 1, 3000);
    check_eq(s["tag"]["notes"]["send_file_rc"].get<int64_t>(), int64_t(CWSGI_OK), "RESP-FILE-1: send_file result");
    check_eq(s["tag"]["notes"]["fd_offset_moved"].get<int64_t>(), int64_t(0),
             "RESP-FILE-1: send_file moved the descriptor's offset");
}

void send_file_head(Ctx &ctx)
{
    // rule: RESP-NOBODY-3 with send_file: counted, not sent.
    Conn c = ctx.connect();
    std::string raw = ctx.req("HEAD", "/t/file?n=50000");
    ctx.note_request(raw);
    c.send(raw);
    ReadOptions ro;
    ro.head = true;
    Response h = c.read_response(ro);
    if (h.status != 200) fail("HEAD /t/file: expected 200, got " + h.summary());
    check_eq(h.header("Content-Length").value_or(""), std::string("50000"), "RESP-NOBODY-3: Content-Length");
    connection_still_usable(ctx, c, h, "RESP-NOBODY-3: after HEAD with send_file");
}

void informational(Ctx &ctx)
{
    // rule: RESP-INFO-3, ABI-CAP-4, ABI-CAP-3: with the capability the 103 is on the wire before the final
    // response; without it nothing is sent and the call returns CWSGI_DROPPED.
    Response r = must(ctx, ctx.req("GET", "/t/info?code=103"), 200);
    json d = ctx.parse_json(r, "/t/info");
    int64_t rc = d["info_rc"].get<int64_t>();
    if (ctx.has(CWSGI_CAP_INFORMATIONAL)) {
        check_eq(rc, int64_t(CWSGI_OK), "RESP-INFO-3: send_informational with CWSGI_CAP_INFORMATIONAL");
        if (r.interim.size() != 1 || r.interim[0].status != 103)
            fail("RESP-INFO-3: expected one 103 before the 200, got " + std::to_string(r.interim.size()) +
                 " interim responses");
        bool link = false;
        for (const auto &f : r.interim[0].headers)
            link = link || (iequals(f.name, "Link") && f.value.find("preload") != std::string::npos);
        if (!link) fail("RESP-INFO-3: the 103 lost its Link field");
    } else {
        check_eq(rc, int64_t(CWSGI_DROPPED), "RESP-INFO-3: send_informational without CWSGI_CAP_INFORMATIONAL");
        if (!r.interim.empty())
            fail("ABI-CAP-4: a " + std::to_string(r.interim[0].status) +
                 " reached the wire although CWSGI_CAP_INFORMATIONAL is not declared");
    }
    // HTTP/1.0: always dropped.
    Response r10 = must(ctx, "GET /t/info?code=103 HTTP/1.0\r\n\r\n", 200);
    json d10 = ctx.parse_json(r10, "/t/info over HTTP/1.0");
    check_eq(d10["info_rc"].get<int64_t>(), int64_t(CWSGI_DROPPED), "RESP-INFO-3: send_informational on HTTP/1.0");
    if (!r10.interim.empty()) fail("RESP-INFO-3: an informational response was sent to an HTTP/1.0 client");
}

void handle_ok_without_start(Ctx &ctx)
{
    // rule: RESP-END-2: success without a response is an app bug: 500, outcome CWSGI_E_APP.
    error_before(ctx, "none");
}

} // namespace

void add_response_cases(std::vector<Case> &out)
{
    auto add = [&](const char *rule, const char *name, std::function<void(Ctx &)> fn) {
        out.push_back({rule, name, profile::base, 0, false, std::move(fn)});
    };
    // The misuse battery (one request, many rules).
    add("RESP-START-1", "misuse-status-range",
        codes("RESP-START-1", {{"pre", "status_99", CWSGI_E_STATUS},
                               {"pre", "status_100", CWSGI_E_STATUS},
                               {"pre", "status_103", CWSGI_E_STATUS},
                               {"pre", "status_600", CWSGI_E_STATUS},
                               {"pre", "status_1000", CWSGI_E_STATUS}}));
    add("RESP-HDR-1", "misuse-header-names",
        codes("RESP-HDR-1", {{"pre", "name_space", CWSGI_E_HEADER},
                             {"pre", "name_colon", CWSGI_E_HEADER},
                             {"pre", "name_empty", CWSGI_E_HEADER}}));
    add("RESP-HDR-2", "misuse-header-values",
        codes("RESP-HDR-2", {{"pre", "value_cr", CWSGI_E_HEADER},
                             {"pre", "value_lf", CWSGI_E_HEADER},
                             {"pre", "value_nul", CWSGI_E_HEADER}}));
    add("RESP-HDR-3", "misuse-hop-by-hop-headers",
        codes("RESP-HDR-3", {{"pre", "forbidden_Connection", CWSGI_E_FORBIDDEN},
                             {"pre", "forbidden_keep-alive", CWSGI_E_FORBIDDEN},
                             {"pre", "forbidden_Proxy-Connection", CWSGI_E_FORBIDDEN},
                             {"pre", "forbidden_Transfer-Encoding", CWSGI_E_FORBIDDEN},
                             {"pre", "forbidden_TE", CWSGI_E_FORBIDDEN},
                             {"pre", "forbidden_Trailer", CWSGI_E_FORBIDDEN},
                             {"pre", "forbidden_upgrade", CWSGI_E_FORBIDDEN},
                             {"pre", "forbidden_Status", CWSGI_E_FORBIDDEN}}));
    add("RESP-START-3", "misuse-start-is-atomic",
        codes("RESP-START-3", {{"pre", "second_header_bad", CWSGI_E_HEADER}, {"pre", "reason_crlf", CWSGI_E_HEADER}}));
    add("RESP-START-4", "misuse-replace-before-commit", misuse_wire);
    add("RESP-START-5", "misuse-flags-and-null-headers",
        codes("RESP-START-5", {{"pre", "unknown_flag", CWSGI_E_INVAL}, {"pre", "null_headers", CWSGI_E_INVAL}}));
    add("RESP-LEN-1", "misuse-app-content-length",
        codes("RESP-LEN-1", {{"pre", "cl_not_digits", CWSGI_E_HEADER},
                             {"pre", "cl_sign", CWSGI_E_HEADER},
                             {"pre", "cl_19_digits", CWSGI_E_HEADER},
                             {"pre", "cl_conflict", CWSGI_E_HEADER}}));
    add("RESP-NOBODY-2", "misuse-204-content-length",
        codes("RESP-NOBODY-2", {{"pre", "status_204_cl", CWSGI_E_FORBIDDEN}}));
    add("RESP-STATE-2", "misuse-before-start",
        codes("RESP-STATE-2", {{"pre", "write_before_start", CWSGI_E_STATE},
                               {"pre", "send_file_before_start", CWSGI_E_STATE},
                               {"pre", "write_null_before_start", CWSGI_E_STATE}}));
    add("RESP-END-2", "misuse-finish-before-start",
        codes("RESP-END-2", {{"pre", "finish_before_start", CWSGI_E_STATE}}));
    add("RESP-END-3", "misuse-double-finish",
        codes("RESP-END-3", {{"notes", "finish", CWSGI_OK}, {"notes", "finish_after_finish", CWSGI_E_STATE}}));
    add("RESP-STATE-3", "misuse-after-finish",
        codes("RESP-STATE-3", {{"notes", "write_after_finish", CWSGI_E_STATE},
                               {"notes", "start_after_finish", CWSGI_E_STATE},
                               {"notes", "send_file_after_finish", CWSGI_E_STATE},
                               {"notes", "read_after_finish", CWSGI_E_STATE},
                               {"notes", "environ_after_finish", CWSGI_OK}}));
    add("RESP-STATE-1", "misuse-null-handle",
        codes("RESP-STATE-1", {{"pre", "null_handle_environ", CWSGI_E_INVAL},
                               {"pre", "null_handle_is_disconnected", 1},
                               {"pre", "null_handle_alloc_null", 1},
                               {"pre", "null_handle_user_data_null", 1}}));
    add("RESP-INFO-2", "misuse-informational-status",
        codes("RESP-INFO-2", {{"pre", "info_status_100", CWSGI_E_STATUS},
                              {"pre", "info_status_101", CWSGI_E_STATUS},
                              {"pre", "info_status_200", CWSGI_E_STATUS}}));
    add("RESP-INFO-1", "misuse-informational-state",
        codes("RESP-INFO-1", {{"pre", "info_after_start", CWSGI_E_STATE},
                              {"post", "info_after_commit", CWSGI_E_STATE},
                              {"notes", "info_after_finish", CWSGI_E_STATE}}));
    add("RESP-FILE-3", "misuse-send-file-arguments",
        codes("RESP-FILE-3", {{"pre", "send_file_bad_fd", CWSGI_E_INVAL},
                              {"pre", "send_file_neg_offset", CWSGI_E_INVAL},
                              {"pre", "send_file_count_below", CWSGI_E_INVAL},
                              {"pre", "send_file_past_end", CWSGI_E_INVAL}}));
    add("RESP-BODY-1", "misuse-write-null", codes("RESP-BODY-1 / ABI-TYPE-3", {{"post", "write_null", CWSGI_E_INVAL}}));
    add("RESP-BODY-3", "zero-length-write", codes("RESP-BODY-3", {{"post", "zero_write", CWSGI_OK}}));
    add("INPUT-READ-1", "misuse-read-arguments",
        codes("INPUT-READ-1", {{"pre", "read_null", CWSGI_E_INVAL}, {"pre", "read_cap0", CWSGI_E_INVAL}}));
    add("ENV-KEYS-1", "misuse-environ-lookups",
        codes("ENV-KEYS-1",
              {{"pre", "environ_get_missing", CWSGI_E_NOTFOUND}, {"pre", "environ_get_null_key", CWSGI_E_INVAL}}));
    add("ENV-KEYS-2", "lookups-past-the-end",
        codes("ENV-KEYS-2", {{"pre", "environ_at_past_end", CWSGI_E_NOTFOUND},
                             {"pre", "header_at_past_end", CWSGI_E_NOTFOUND},
                             {"pre", "header_find_missing", CWSGI_E_NOTFOUND}}));
    add("ENV-INFO-1", "request-info-small-struct", codes("ENV-INFO-1", {{"pre", "request_info_small", CWSGI_E_INVAL}}));
    add("EXT-2", "extension-unknown-name", codes("EXT-2", {{"pre", "extension_unknown_null", 1}}));
    add("MEM-ARENA-1", "arena-alloc",
        codes("MEM-ARENA-1", {{"pre", "alloc_ok", 1},
                              {"pre", "alloc_aligned", 1},
                              {"pre", "alloc_zero_nonnull", 1},
                              {"pre", "alloc_huge_null", 1}}));
    add("MEM-USER-1", "user-data",
        codes("MEM-USER-1", {{"pre", "user_data_was_null", 1}, {"pre", "user_data_roundtrip", 1}}));
    add("LOG-ERR-1", "log-returns-ok", codes("LOG-ERR-1", {{"pre", "log_ok", CWSGI_OK}}));
    add("LIFE-END-3", "on-request-end-calls",
        codes("LIFE-END-3", {{"notes", "end_environ", CWSGI_OK},
                             {"notes", "end_write", CWSGI_E_STATE},
                             {"notes", "end_finish", CWSGI_E_STATE}}));
    // The wire.
    add("RESP-START-2", "deferred-commit", deferred_commit);
    add("RESP-NOBODY-3", "head-with-content-length", head_with_length);
    add("RESP-NOBODY-3", "head-without-length", head_without_length);
    add("RESP-NOBODY-3", "head-same-headers-as-get", head_same_headers_as_get);
    add("RESP-NOBODY-3", "head-empty-without-length", head_no_length_no_body);
    add("RESP-NOBODY-1", "status-204", [](Ctx &c) { no_body_status(c, 204); });
    add("RESP-NOBODY-1", "status-304", [](Ctx &c) { no_body_status(c, 304); });
    add("RESP-NOBODY-2", "status-304-content-length", status_304_length);
    add("RESP-FRAME-2", "finish-without-body", finish_without_body);
    add("RESP-FRAME-1", "app-content-length", app_length);
    add("RESP-FRAME-3", "chunked-by-default", chunked_default);
    add("RESP-BODY-2", "stream-not-held-back", streaming);
    add("RESP-FRAME-4", "http10-close-delimited", http10_close_delimited);
    add("RESP-FRAME-6", "http10-keep-alive", http10_keep_alive);
    add("RESP-HDR-4", "header-order-and-duplicates", header_order);
    add("RESP-HDR-4", "date-and-server-once", date_server_once);
    add("RESP-LEN-2", "content-length-overrun", overrun);
    add("RESP-LEN-3", "content-length-underrun", [](Ctx &c) { underrun(c, false); });
    add("RESP-LEN-3", "content-length-underrun-implied-finish", [](Ctx &c) { underrun(c, true); });
    add("RESP-ERR-1", "error-before-commit", [](Ctx &c) { error_before(c, "before"); });
    add("RESP-ERR-1", "error-after-start-before-commit", [](Ctx &c) { error_before(c, "started"); });
    add("RESP-END-2", "return-ok-without-response", handle_ok_without_start);
    add("RESP-ERR-2", "error-after-commit-chunked", error_after_chunked);
    add("RESP-ERR-2", "error-after-commit-content-length", error_after_length);
    add("RESP-ERR-2", "error-after-commit-http10", error_after_http10);
    add("RESP-FILE-1", "send-file-whole", [](Ctx &c) { send_file_case(c, "n=1048576", 0, 1048576, true); });
    add("RESP-FILE-1", "send-file-range",
        [](Ctx &c) { send_file_case(c, "n=100000&offset=12345&count=5000", 12345, 5000, true); });
    add("RESP-FILE-1", "send-file-to-end",
        [](Ctx &c) { send_file_case(c, "n=100000&offset=99000", 99000, 1000, true); });
    add("RESP-FILE-2", "send-file-chunked",
        [](Ctx &c) { send_file_case(c, "n=300000&offset=7&cl=0", 7, 299993, false); });
    add("RESP-NOBODY-3", "head-send-file", send_file_head);
    add("RESP-INFO-3", "informational-103", informational);
}

} // namespace conf
