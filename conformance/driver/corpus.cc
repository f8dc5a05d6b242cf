// corpus.cc: replay of gunicorn's HTTP/1 parser corpus (third-party data, read at run time
// from ../shared/corpus or $CWSGI_CORPUS, never copied into the repository).
//
// Valid cases are sent to the probe app, which answers any path outside /t/ with the environ,
// the header list and the body as JSON; each field is compared with the parse the manifest
// expects. Invalid cases must get a 4xx (or 501/505, or a close) and must never reach the app,
// which the probe's request count shows. A body-framing error (a bad chunk) is only found while
// the body is read, after the app was called: then the app's read must have failed
// (INPUT-READ-4) and the answer must still be an error.
#include "corpus.hh"

#include <fstream>
#include <map>
#include <sstream>
#include <thread>

namespace conf {
namespace {

/// The spec rule each of gunicorn's parser exceptions corresponds to.
std::string rule_for(const std::string &err)
{
    static const std::map<std::string, std::string> m = {
        {"NoMoreData", "LIMIT-5"},
        {"InvalidRequestLine", "REQ-LINE-3"},
        {"InvalidRequestMethod", "REQ-LINE-1"},
        {"InvalidHTTPVersion", "REQ-LINE-2"},
        {"InvalidHeaderName", "REQ-HDR-1"},
        {"InvalidHeader", "REQ-BODY-2"},
        {"ObsoleteFolding", "REQ-HDR-2"},
        {"LimitRequestLine", "LIMIT-1"},
        {"LimitRequestHeaders", "LIMIT-2"},
        {"InvalidChunkSize", "INPUT-READ-4"},
        {"InvalidChunkExtension", "INPUT-READ-4"},
        {"ChunkMissingTerminator", "INPUT-READ-4"},
        {"InvalidProxyLine", "REQ-LINE-1"},
        {"InvalidSchemeHeaders", "ENV-KEYS-6"},
    };
    auto it = m.find(err);
    return it == m.end() ? "REQ-LINE-1" : it->second;
}

/// Corpus cases whose gunicorn expectation differs from what the CWSGI spec requires. The
/// suite checks the spec; each entry names the rule that decides and why it differs.
struct Override {
    const char *rule;
    int status; // the server's own answer the spec requires, or 0: the request is served
    const char *why;
};

const Override *override_for(const std::string &name)
{
    static const std::map<std::string, Override> m = {
        {"valid/027", {"REQ-LINE-4", 400, "raw bytes of 0x80 or more in the target are answered 400"}},
        {"valid/rfc9112_target_authority_connect_01",
         {"REQ-LINE-3", 501, "CONNECT is answered 501: a CWSGI server has no tunnels"}},
        {"valid/rfc9112_target_authority_ipv6_01",
         {"REQ-LINE-3", 501, "CONNECT is answered 501: a CWSGI server has no tunnels"}},
        {"valid/rfc9112_target_absolute_userinfo_01",
         {"REQ-LINE-3", 400, "user info in an http URI is refused (RFC 9110 4.2.4)"}},
    };
    auto it = m.find(name);
    return it == m.end() ? nullptr : &it->second;
}

/// The header section of a raw request as the app must see it (names lowercased, OWS trimmed).
std::vector<std::pair<std::string, std::string>> raw_headers(const std::string &raw)
{
    std::vector<std::pair<std::string, std::string>> out;
    size_t pos = raw.find("\r\n");
    while (pos != std::string::npos) {
        size_t next = raw.find("\r\n", pos + 2);
        if (next == std::string::npos || next == pos + 2) break;
        std::string line = raw.substr(pos + 2, next - pos - 2);
        size_t c = line.find(':');
        if (c != std::string::npos) {
            std::string n = line.substr(0, c), v = line.substr(c + 1);
            for (auto &ch : n) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(0, 1);
            while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
            out.emplace_back(n, v);
        }
        pos = next;
    }
    return out;
}

/// Whether the case's fault is in the body (a chunk, or a field of the trailer section after the
/// last chunk, EXT-TRAILERS-2): found only once the app reads, so the app may have been called.
bool body_phase_error(const std::string &err, const std::string &name)
{
    return err == "InvalidChunkSize" || err == "InvalidChunkExtension" || err == "ChunkMissingTerminator" ||
           name.rfind("invalid/rfc9110_trailer_", 0) == 0;
}

/// cwsgi-serve flags for the gunicorn settings that have one; empty + *why when one has none.
std::vector<std::string> cfg_flags(const json &cfg, std::string *why)
{
    std::vector<std::string> flags;
    static const std::map<std::string, std::string> known = {
        {"limit_request_line", "--limit-request-line"},
        {"limit_request_fields", "--limit-request-fields"},
        {"limit_request_field_size", "--limit-request-field-size"},
    };
    for (auto it = cfg.begin(); it != cfg.end(); ++it) {
        auto k = known.find(it.key());
        if (k == known.end() || !it.value().is_number_integer() || it.value().get<int64_t>() <= 0) {
            *why = "needs gunicorn setting " + it.key() + "=" + it.value().dump() + ", which cwsgi-serve does not have";
            return {};
        }
        flags.push_back(k->second);
        flags.push_back(std::to_string(it.value().get<int64_t>()));
    }
    return flags;
}

std::string upper(std::string s)
{
    for (auto &c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

/// Compares one expected parse with the probe's report; returns "" or what differs.
std::string compare(const json &want, const json &doc, const Ctx &ctx)
{
    auto m = environ_map(doc);
    std::string diff;
    auto cmp = [&](const std::string &what, const std::string &got, const std::string &exp) {
        if (got != exp)
            diff += what + ": expected '" + escape_bytes(exp, 120) + "', got '" + escape_bytes(got, 120) + "'; ";
    };
    cmp("REQUEST_METHOD", m["REQUEST_METHOD"], want["method"].get<std::string>());
    cmp("REQUEST_URI", m["REQUEST_URI"], latin1(want["uri"].get<std::string>()));
    cmp("cwsgi.raw_path", m["cwsgi.raw_path"], latin1(want["path"].get<std::string>()));
    cmp("QUERY_STRING", m["QUERY_STRING"], latin1(want["query"].get<std::string>()));
    auto v = want["version"];
    cmp("SERVER_PROTOCOL", m["SERVER_PROTOCOL"],
        "HTTP/" + std::to_string(v[0].get<int>()) + "." + std::to_string(v[1].get<int>()));
    std::vector<std::pair<std::string, std::string>> got_h, want_h;
    for (const auto &h : doc["headers"]) {
        // gunicorn drops names with '_' by default; CWSGI keeps them in the header list and
        // leaves them out of HTTP_* (ENV-HDR-5), which the environ cases check.
        std::string n = upper(latin1(h[0].get<std::string>()));
        if (n.find('_') != std::string::npos) {
            if (m.count("HTTP_" + [&] {
                    std::string k = n;
                    for (auto &ch : k)
                        if (ch == '-') ch = '_';
                    return k;
                }())) {
                diff += "ENV-HDR-5: header " + n + " gave an HTTP_* key; ";
            }
            continue;
        }
        got_h.emplace_back(n, latin1(h[1].get<std::string>()));
    }
    for (const auto &h : want["headers"])
        want_h.emplace_back(upper(latin1(h[0].get<std::string>())), latin1(h[1].get<std::string>()));
    if (got_h != want_h) {
        std::string g, w;
        for (auto &p : got_h) g += p.first + ": " + p.second + " | ";
        for (auto &p : want_h) w += p.first + ": " + p.second + " | ";
        diff += "headers: expected [" + escape_bytes(w, 300) + "], got [" + escape_bytes(g, 300) + "]; ";
    }
    std::string body = b64decode(want["body_b64"].get<std::string>());
    std::string got_body = b64decode(doc["body_b64"].get<std::string>());
    if (got_body != body)
        diff += "body: expected " + std::to_string(body.size()) + " bytes '" + escape_bytes(body, 60) + "', got " +
                std::to_string(got_body.size()) + " bytes '" + escape_bytes(got_body, 60) + "'; ";
    if (!want["trailers"].empty() && ctx.has(CWSGI_CAP_REQUEST_TRAILERS)) {
        std::vector<std::pair<std::string, std::string>> gt, wt;
        if (doc["trailers"].is_array()) {
            for (const auto &h : doc["trailers"])
                gt.emplace_back(upper(latin1(h[0].get<std::string>())), latin1(h[1].get<std::string>()));
        }
        for (const auto &h : want["trailers"])
            wt.emplace_back(upper(latin1(h[0].get<std::string>())), latin1(h[1].get<std::string>()));
        if (gt != wt) diff += "trailers differ (EXT-TRAILERS-1); ";
    }
    return diff;
}

void run_valid(Ctx &ctx, const json &c, const std::string &raw)
{
    const json &expect = c["expect"];
    Conn conn = ctx.connect();
    ctx.note_request(raw);
    if (!conn.send(raw)) fail("the server stopped reading the request");
    for (size_t i = 0; i < expect.size(); i++) {
        ReadOptions ro;
        ro.read_timeout_ms = 5000;
        Response r = conn.read_response(ro);
        if (r.status == 0 && i > 0 && !ctx.has(CWSGI_CAP_PIPELINING)) {
            return; // a server without pipelining may stop after the first request
        }
        std::string which = expect.size() > 1
                                ? " (request " + std::to_string(i + 1) + " of " + std::to_string(expect.size()) + ")"
                                : "";
        if (r.status < 200 || r.status > 299 || !r.complete)
            fail("a valid request" + which + " was not served: " + r.summary() +
                 (r.status ? " body '" + escape_bytes(r.body, 100) + "'" : ""));
        json doc;
        try {
            doc = json::parse(r.body);
        } catch (const std::exception &e) {
            fail("the probe's report is not JSON" + which);
        }
        std::string diff = compare(expect[i], doc, ctx);
        if (!diff.empty()) fail("the app saw a different request" + which + ": " + diff);
        if (r.has_token("Connection", "close")) {
            if (i + 1 < expect.size() && ctx.has(CWSGI_CAP_PIPELINING))
                fail("ABI-CAP-4: closed after pipelined request " + std::to_string(i + 1) +
                     " although CWSGI_CAP_PIPELINING is declared");
            return;
        }
    }
}

/// A case the spec decides differently from gunicorn (see override_for).
void run_override(Ctx &ctx, const Override &o, const std::string &raw)
{
    json before = ctx.stats();
    Conn conn = ctx.connect();
    ctx.note_request(raw);
    conn.send(raw);
    ReadOptions ro;
    ro.read_timeout_ms = 3000;
    Response r = conn.read_response(ro);
    int64_t reached = ctx.stats()["handled"].get<int64_t>() - before["handled"].get<int64_t>();
    ctx.diag.push_back(std::string("judged by ") + o.rule + ", not by gunicorn's expectation: " + o.why);
    if (o.status != 0) {
        if (r.status != o.status)
            fail(std::string(o.rule) + ": expected " + std::to_string(o.status) + " (" + o.why + "), got " +
                 r.summary());
        if (reached != 0) fail(std::string(o.rule) + ": the request reached the app");
        return;
    }
    if (r.status < 200 || r.status > 299 || !r.complete)
        fail(std::string(o.rule) + ": expected the request to be served (" + o.why + "), got " + r.summary());
    json doc;
    try {
        doc = json::parse(r.body);
    } catch (const std::exception &) {
        fail("the probe's report is not JSON");
    }
    std::vector<std::pair<std::string, std::string>> got;
    for (const auto &h : doc["headers"])
        got.emplace_back(latin1(h[0].get<std::string>()), latin1(h[1].get<std::string>()));
    auto want = raw_headers(raw);
    if (got != want) {
        std::string g, w;
        for (auto &p : got) g += p.first + ": " + p.second + " | ";
        for (auto &p : want) w += p.first + ": " + p.second + " | ";
        fail(std::string(o.rule) + ": the header list differs from the request's header section: expected [" +
             escape_bytes(w, 300) + "], got [" + escape_bytes(g, 300) + "]");
    }
}

void run_invalid(Ctx &ctx, const json &c, const std::string &raw)
{
    std::string err = c["expect_error"].get<std::string>();
    json before = ctx.stats();
    Conn conn = ctx.connect();
    ctx.note_request(raw);
    conn.send(raw);
    ReadOptions ro;
    ro.read_timeout_ms = 2000;
    Response r = conn.read_response(ro);
    if (r.status == 0 && r.error == "timeout") {
        // The server waits for more bytes (a truncated head, a body that never ends): end the
        // request from our side, as gunicorn's own runner does, and look again.
        conn.shutdown_write();
        ro.read_timeout_ms = 5000;
        r = conn.read_response(ro);
    }
    // The server may answer before the app's handle returned; wait until every request that
    // reached the app has ended, so that its read result is counted.
    json after = ctx.stats();
    for (int i = 0; i < 60 && after["ends"] != after["handled"]; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        after = ctx.stats();
    }
    int64_t reached = after["handled"].get<int64_t>() - before["handled"].get<int64_t>();
    int64_t read_errors = after["read_errors"].get<int64_t>() - before["read_errors"].get<int64_t>();
    if (r.status >= 200 && r.status < 400) fail("an invalid request (" + err + ") was answered " + r.summary());
    if (r.status >= 500 && r.status != 501 && r.status != 505)
        fail("an invalid request (" + err + ") got " + r.summary() + ": expected a 4xx, 501, 505 or a close");
    if (reached > 0) {
        if (!body_phase_error(err, c["name"].get<std::string>()))
            fail("REQ-REPLY-1: an invalid request (" + err + ") reached the app");
        if (read_errors < reached)
            fail("INPUT-READ-4: a malformed body (" + err + ") reached the app and its read did not fail");
        if (r.status != 0 && r.status != 400)
            fail("INPUT-READ-4: expected 400 after the body error, got " + r.summary());
    }
    if (r.status == 0 && r.error == "timeout")
        fail("the server neither answered nor closed after the client half-closed");
    if (c.contains("suggested_status") && c["suggested_status"].is_number() &&
        r.status != c["suggested_status"].get<int>()) {
        ctx.diag.push_back("answered " + (r.status ? std::to_string(r.status) : std::string("by a close")) +
                           "; gunicorn's suggestion is " + c["suggested_status"].dump());
    }
}

} // namespace

std::vector<Case> corpus_cases(const std::string &path, std::string *why)
{
    std::ifstream f(path);
    if (!f) {
        *why = "manifest not found at " + path + " (set --corpus or $CWSGI_CORPUS)";
        return {};
    }
    json m;
    try {
        f >> m;
    } catch (const std::exception &e) {
        *why = std::string("manifest is not JSON: ") + e.what();
        return {};
    }
    std::vector<Case> out;
    for (const auto &c : m["cases"]) {
        std::string name = "corpus-" + c["name"].get<std::string>();
        for (auto &ch : name) {
            if (ch == '/') ch = '-';
        }
        bool valid = c["kind"] == "valid";
        std::string rule = valid ? "ENV-KEYS-3" : rule_for(c.value("expect_error", ""));
        const Override *ov = override_for(c["name"].get<std::string>());
        if (ov) rule = ov->rule;
        std::string raw = b64decode(c["request_b64"].get<std::string>());
        json cc = c;
        Case k;
        k.rule = rule;
        k.name = name;
        k.run = [cc, raw, valid, ov](Ctx &ctx) {
            if (cc.value("incomplete", false))
                skip("the request is incomplete by design (Content-Length past the bytes present): a server can only "
                     "wait and close");
            if (!cc["cfg"].empty()) {
                std::string why;
                auto flags = cfg_flags(cc["cfg"], &why);
                if (flags.empty()) skip(why);
                if (!ctx.suite.starts_servers())
                    skip("needs a server started with " + cc["cfg"].dump() + " (--adapter)");
                // A dedicated server with those limits; the case then runs against it.
                std::string err;
                std::vector<std::string> all = {"--threads", "4", "--log-level", "info"};
                all.insert(all.end(), flags.begin(), flags.end());
                auto proc = ctx.suite.start_server(all, &err);
                if (!proc) {
                    // A value outside what cwsgi-serve accepts is a documented limit, not a failure.
                    if (err.find("not in range") != std::string::npos)
                        skip("cwsgi-serve refuses " + cc["cfg"].dump() + ": " + err.substr(err.find("output: ") + 8));
                    fail("cwsgi-serve did not start with " + cc["cfg"].dump() + ": " + err);
                }
                Ctx sub(ctx.suite, Target{"127.0.0.1", proc->port(), proc.get(), "corpus-cfg", ""}, ctx.caps,
                        ctx.caps_doc);
                try {
                    ov ? run_override(sub, *ov, raw) : valid ? run_valid(sub, cc, raw) : run_invalid(sub, cc, raw);
                } catch (...) {
                    ctx.last_request = sub.last_request;
                    ctx.diag = sub.diag;
                    throw;
                }
                ctx.diag = sub.diag;
                return;
            }
            ov ? run_override(ctx, *ov, raw) : valid ? run_valid(ctx, cc, raw) : run_invalid(ctx, cc, raw);
        };
        out.push_back(std::move(k));
    }
    return out;
}

} // namespace conf
