// cases_environ.cc: what the app sees of a request (spec/environ.md: ENV-*).
//
// Every case sends exact bytes and compares the probe's environ report (environ_at list,
// header_at list, request_info, and the environ_get/header_find cross-checks the probe runs
// itself) with what the spec derives from those bytes.
#include <algorithm>
#include <set>

#include "suite.hh"

namespace conf {

void check_server_answer(const Response &r, int status, const std::string &what); // cases_limits.cc

namespace {

// The table order of spec/environ.md ("Environ keys"); HTTP_* keys follow.
const std::vector<std::string> kTableKeys = {
    "REQUEST_METHOD",   "SCRIPT_NAME",    "PATH_INFO",        "QUERY_STRING",     "CONTENT_TYPE",     "CONTENT_LENGTH",
    "SERVER_NAME",      "SERVER_PORT",    "SERVER_PROTOCOL",  "REQUEST_URI",      "REMOTE_ADDR",      "REMOTE_PORT",
    "cwsgi.url_scheme", "cwsgi.raw_path", "cwsgi.local_addr", "cwsgi.local_port", "cwsgi.request_id", "cwsgi.version"};
const std::set<std::string> kAlways = {"REQUEST_METHOD",   "SCRIPT_NAME",      "PATH_INFO",        "QUERY_STRING",
                                       "SERVER_NAME",      "SERVER_PORT",      "SERVER_PROTOCOL",  "REQUEST_URI",
                                       "REMOTE_ADDR",      "REMOTE_PORT",      "cwsgi.url_scheme", "cwsgi.raw_path",
                                       "cwsgi.local_addr", "cwsgi.local_port", "cwsgi.request_id", "cwsgi.version"};

bool all_digits(const std::string &s)
{
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string http_key(const std::string &lower_name)
{
    std::string k = "HTTP_";
    for (char c : lower_name) k += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return k;
}

/// Sends `raw`, expects a complete 200 with the probe's environ report, returns it.
json env_doc(Ctx &ctx, const std::string &raw)
{
    Response r = ctx.exchange(raw);
    if (r.status != 200 || !r.complete) fail("expected a complete 200 environ report, got " + r.summary());
    return ctx.parse_json(r, "environ report");
}

std::string key_of(const json &doc, const std::string &k, bool *present = nullptr)
{
    auto m = environ_map(doc);
    auto it = m.find(k);
    if (present) *present = it != m.end();
    return it == m.end() ? std::string() : it->second;
}

void expect_key(const json &doc, const std::string &k, const std::string &want, const char *rule)
{
    bool present = false;
    std::string v = key_of(doc, k, &present);
    if (!present)
        fail(std::string(rule) + ": environ key " + k + " is missing (expected '" + escape_bytes(want) + "')");
    if (v != want)
        fail(std::string(rule) + ": " + k + " expected '" + escape_bytes(want) + "', got '" + escape_bytes(v) + "'");
}

void expect_absent(const json &doc, const std::string &k, const char *rule)
{
    bool present = false;
    std::string v = key_of(doc, k, &present);
    if (present) fail(std::string(rule) + ": environ key " + k + " must be absent, got '" + escape_bytes(v) + "'");
}

/// The checks that hold for every environ report: the probe's own cross-checks, the key order
/// and uniqueness (ENV-KEYS-2), the "always" keys (ENV-KEYS-3), no foreign keys (ENV-KEYS-4),
/// request_info agreeing with the environ (ENV-INFO-2), and HTTP_* derived from the header list
/// (ENV-HDR-3/4/5).
void check_shape(const json &doc)
{
    // rule: ENV-KEYS-1, ENV-KEYS-2 (environ_get agrees with environ_at, NUL-terminated: ABI-TYPE-2)
    if (!doc["get_mismatch"].empty())
        fail("ENV-KEYS-1: environ_get disagrees with environ_at for " + doc["get_mismatch"].dump());
    // rule: ENV-HDR-2
    if (!doc["find_mismatch"].empty())
        fail("ENV-HDR-2: header_find disagrees with header_at for " + doc["find_mismatch"].dump());
    std::vector<std::string> keys;
    for (const auto &kv : doc["environ"]) keys.push_back(latin1(kv[0].get<std::string>()));
    std::set<std::string> seen;
    size_t table_pos = 0;
    bool in_http = false;
    for (const auto &k : keys) {
        if (!seen.insert(k).second) fail("ENV-KEYS-2: key " + k + " is listed twice");
        auto it = std::find(kTableKeys.begin(), kTableKeys.end(), k);
        if (it != kTableKeys.end()) {
            size_t pos = static_cast<size_t>(it - kTableKeys.begin());
            if (in_http || pos < table_pos) fail("ENV-KEYS-2: key " + k + " is out of the table order");
            table_pos = pos;
        } else if (k.rfind("HTTP_", 0) == 0) {
            in_http = true;
        } else if (k.rfind("cwsgi.", 0) == 0 || k.find('.') == std::string::npos) {
            // rule: ENV-KEYS-4
            fail("ENV-KEYS-4: unexpected environ key " + k);
        }
    }
    for (const auto &k : kAlways) {
        if (!seen.count(k)) fail("ENV-KEYS-3: key " + k + " is missing");
    }
    // HTTP_* keys: exactly one per header name (without '_', not content-type/-length), in
    // the order of first appearance, values joined (ENV-HDR-3/4/5).
    std::vector<std::pair<std::string, std::string>> want; // key, value
    for (const auto &h : doc["headers"]) {
        std::string n = latin1(h[0].get<std::string>()), v = latin1(h[1].get<std::string>());
        std::string lower = n;
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
        if (lower != n) fail("ENV-HDR-1: header name '" + n + "' is not lowercased");
        if (!v.empty() && (v.front() == ' ' || v.front() == '\t' || v.back() == ' ' || v.back() == '\t')) {
            fail("ENV-HDR-1: header value '" + escape_bytes(v) + "' keeps surrounding whitespace");
        }
        if (n == "content-type" || n == "content-length" || n.find('_') != std::string::npos) continue;
        std::string k = http_key(n);
        auto it = std::find_if(want.begin(), want.end(), [&](auto &p) { return p.first == k; });
        if (it == want.end()) {
            want.emplace_back(k, v);
        } else {
            it->second += (n == "cookie" ? "; " : ", ") + v;
        }
    }
    std::vector<std::pair<std::string, std::string>> got;
    for (const auto &kv : doc["environ"]) {
        std::string k = latin1(kv[0].get<std::string>());
        if (k.rfind("HTTP_", 0) == 0) got.emplace_back(k, latin1(kv[1].get<std::string>()));
    }
    if (got != want) {
        std::string w, g;
        for (auto &p : want) w += p.first + "='" + escape_bytes(p.second) + "' ";
        for (auto &p : got) g += p.first + "='" + escape_bytes(p.second) + "' ";
        fail("ENV-HDR-3/4/5: HTTP_* keys expected [" + w + "], got [" + g + "]");
    }
    if (seen.count("HTTP_CONTENT_TYPE") || seen.count("HTTP_CONTENT_LENGTH")) {
        fail("ENV-HDR-3: HTTP_CONTENT_TYPE/HTTP_CONTENT_LENGTH must not exist");
    }
    // rule: ENV-INFO-2
    const json &info = doc["info"];
    if (info.is_null()) fail("ENV-INFO-1: request_info failed");
    static const std::pair<const char *, const char *> same[] = {
        {"method", "REQUEST_METHOD"},       {"target", "REQUEST_URI"},         {"raw_path", "cwsgi.raw_path"},
        {"script_name", "SCRIPT_NAME"},     {"path_info", "PATH_INFO"},        {"query_string", "QUERY_STRING"},
        {"scheme", "cwsgi.url_scheme"},     {"protocol", "SERVER_PROTOCOL"},   {"server_name", "SERVER_NAME"},
        {"server_port", "SERVER_PORT"},     {"remote_addr", "REMOTE_ADDR"},    {"remote_port", "REMOTE_PORT"},
        {"local_addr", "cwsgi.local_addr"}, {"local_port", "cwsgi.local_port"}};
    auto m = environ_map(doc);
    for (const auto &[field, key] : same) {
        std::string v = latin1(info[field].get<std::string>());
        if (v != m[key])
            fail(std::string("ENV-INFO-2: info.") + field + " '" + escape_bytes(v) + "' differs from " + key + " '" +
                 escape_bytes(m[key]) + "'");
    }
    if (std::to_string(info["request_id"].get<uint64_t>()) != m["cwsgi.request_id"]) {
        fail("ENV-INFO-2: info.request_id differs from cwsgi.request_id");
    }
    std::string proto =
        "HTTP/" + std::to_string(info["http_major"].get<int>()) + "." + std::to_string(info["http_minor"].get<int>());
    if (m["SERVER_PROTOCOL"] != proto)
        fail("ENV-INFO-2: http_major/minor " + proto + " disagree with SERVER_PROTOCOL " + m["SERVER_PROTOCOL"]);
    // Every raw connection of the run is TLS with --tls, and none is without it.
    check_eq(info["is_tls"].get<int>(), client_tls() ? 1 : 0,
             client_tls() ? "ENV-INFO-2: is_tls on a TLS connection" : "ENV-INFO-2: is_tls on a plain connection");
    // rule: ENV-KEYS-7
    if (!all_digits(m["cwsgi.request_id"]))
        fail("ENV-KEYS-7: cwsgi.request_id is not decimal: " + m["cwsgi.request_id"]);
    if (!all_digits(m["SERVER_PORT"])) fail("ENV-KEYS-5: SERVER_PORT is not decimal: " + m["SERVER_PORT"]);
    // The ABI version the server implements: the one this driver was built with.
    check_eq(m["cwsgi.version"], std::to_string(CWSGI_ABI_MAJOR) + "." + std::to_string(CWSGI_ABI_MINOR),
             "cwsgi.version");
}

void get_keys(Ctx &ctx)
{
    Conn c = ctx.connect();
    std::string raw = ctx.req("GET", "/t/env?a=1&b=%20x", "User-Agent: conformance/1.0\r\nAccept: */*\r\n");
    ctx.note_request(raw);
    c.send(raw);
    Response r = c.read_response({});
    if (r.status != 200 || !r.complete) fail("expected a complete 200, got " + r.summary());
    json doc = ctx.parse_json(r, "environ");
    check_shape(doc);
    expect_key(doc, "REQUEST_METHOD", "GET", "ENV-KEYS-3");
    expect_key(doc, "SCRIPT_NAME", "", "ENV-PATH-1");
    expect_key(doc, "PATH_INFO", "/t/env", "ENV-PATH-2");
    expect_key(doc, "QUERY_STRING", "a=1&b=%20x", "ENV-PATH-3");
    expect_key(doc, "REQUEST_URI", "/t/env?a=1&b=%20x", "ENV-PATH-3");
    expect_key(doc, "cwsgi.raw_path", "/t/env", "ENV-PATH-3");
    expect_key(doc, "SERVER_NAME", ctx.t.host, "ENV-KEYS-5");
    expect_key(doc, "SERVER_PORT", std::to_string(ctx.t.port), "ENV-KEYS-5");
    expect_key(doc, "SERVER_PROTOCOL", "HTTP/1.1", "ENV-KEYS-3");
    expect_key(doc, "REMOTE_ADDR", "127.0.0.1", "ENV-KEYS-7");
    expect_key(doc, "REMOTE_PORT", std::to_string(c.local_port()), "ENV-KEYS-7");
    expect_key(doc, "cwsgi.url_scheme", ctx.scheme(), "ENV-KEYS-6"); // "https" over --tls
    expect_key(doc, "cwsgi.local_addr", "127.0.0.1", "ENV-KEYS-3");
    expect_key(doc, "cwsgi.local_port", std::to_string(ctx.t.port), "ENV-KEYS-3");
    expect_key(doc, "HTTP_USER_AGENT", "conformance/1.0", "ENV-HDR-3");
    expect_key(doc, "HTTP_HOST", ctx.t.host + ":" + std::to_string(ctx.t.port), "ENV-HDR-3");
    expect_absent(doc, "CONTENT_LENGTH", "ENV-KEYS-3");
    expect_absent(doc, "CONTENT_TYPE", "ENV-KEYS-3");
    // rule: ENV-INFO-2 (content_length is 0 without Content-Length and Transfer-Encoding)
    check_eq(doc["info"]["content_length"].get<int64_t>(), int64_t(0), "ENV-INFO-2: info.content_length of a GET");
}

void post_keys(Ctx &ctx)
{
    json doc =
        env_doc(ctx, ctx.req("POST", "/t/env", "Content-Type: application/x-www-form-urlencoded\r\n", "a=1&b=2"));
    check_shape(doc);
    expect_key(doc, "REQUEST_METHOD", "POST", "ENV-KEYS-3");
    expect_key(doc, "CONTENT_TYPE", "application/x-www-form-urlencoded", "ENV-KEYS-3");
    expect_key(doc, "CONTENT_LENGTH", "7", "ENV-KEYS-3");
    expect_absent(doc, "HTTP_CONTENT_TYPE", "ENV-HDR-3");
    expect_absent(doc, "HTTP_CONTENT_LENGTH", "ENV-HDR-3");
    check_eq(doc["info"]["content_length"].get<int64_t>(), int64_t(7), "ENV-INFO-2: info.content_length");
    check_eq(b64decode(doc["body_b64"].get<std::string>()), std::string("a=1&b=2"), "body read by the app");
}

void head_keys(Ctx &ctx)
{
    std::string tag = ctx.tag("head-env");
    Response r = ctx.exchange(ctx.req("HEAD", "/t/env?tag=" + tag));
    if (r.status != 200) fail("HEAD /t/env: expected 200, got " + r.summary());
    json s = ctx.wait_ends(tag, 1, 3000);
    if (s["tag"].is_null() || s["tag"]["doc"].is_null()) fail("the probe recorded no environ for the HEAD request");
    const json &doc = s["tag"]["doc"];
    check_shape(doc);
    expect_key(doc, "REQUEST_METHOD", "HEAD", "ENV-KEYS-3");
    expect_key(doc, "PATH_INFO", "/t/env", "ENV-PATH-2");
}

void options_keys(Ctx &ctx)
{
    json doc = env_doc(ctx, ctx.req("OPTIONS", "/t/env"));
    check_shape(doc);
    expect_key(doc, "REQUEST_METHOD", "OPTIONS", "ENV-KEYS-3");
    expect_key(doc, "PATH_INFO", "/t/env", "ENV-PATH-2");
}

void options_star(Ctx &ctx)
{
    json doc = env_doc(ctx, ctx.req("OPTIONS", "*"));
    check_shape(doc);
    expect_key(doc, "REQUEST_URI", "*", "ENV-PATH-3");
    expect_key(doc, "PATH_INFO", "*", "ENV-PATH-2");
    expect_key(doc, "cwsgi.raw_path", "*", "ENV-PATH-3");
    expect_key(doc, "QUERY_STRING", "", "ENV-PATH-3");
}

void absolute_form(Ctx &ctx)
{
    // The authority of an absolute-form target wins over Host (ENV-KEYS-5).
    std::string target = "http://example.test:8081/t/env/x%20y?q=1";
    std::string raw = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(ctx.t.port) + "\r\n\r\n";
    json doc = env_doc(ctx, raw);
    check_shape(doc);
    expect_key(doc, "REQUEST_URI", target, "ENV-PATH-3");
    expect_key(doc, "cwsgi.raw_path", "/t/env/x%20y", "ENV-PATH-3");
    expect_key(doc, "PATH_INFO", "/t/env/x y", "ENV-PATH-2");
    expect_key(doc, "QUERY_STRING", "q=1", "ENV-PATH-3");
    expect_key(doc, "SERVER_NAME", "example.test", "ENV-KEYS-5");
    expect_key(doc, "SERVER_PORT", "8081", "ENV-KEYS-5");
    expect_key(doc, "cwsgi.url_scheme", "http", "ENV-KEYS-6");
}

void absolute_form_no_path(Ctx &ctx)
{
    // An absolute-form target without a path has raw path "/" (ENV-PATH-3); no port gives 80.
    std::string raw = "GET http://example.test HTTP/1.1\r\nHost: example.test\r\n\r\n";
    json doc = env_doc(ctx, raw);
    check_shape(doc);
    expect_key(doc, "cwsgi.raw_path", "/", "ENV-PATH-3");
    expect_key(doc, "PATH_INFO", "/", "ENV-PATH-2");
    expect_key(doc, "SERVER_PORT", "80", "ENV-KEYS-5");
}

void pct2f(Ctx &ctx)
{
    std::string target = "/t/env/a%2Fb%20c%C3%A9+d/../e//f?x=%2F";
    json doc = env_doc(ctx, ctx.req("GET", target));
    check_shape(doc);
    expect_key(doc, "PATH_INFO", "/t/env/a/b c\xc3\xa9+d/../e//f", "ENV-PATH-2");
    expect_key(doc, "cwsgi.raw_path", "/t/env/a%2Fb%20c%C3%A9+d/../e//f", "ENV-PATH-3");
    expect_key(doc, "QUERY_STRING", "x=%2F", "ENV-PATH-3");
    expect_key(doc, "REQUEST_URI", target, "ENV-PATH-3");
}

void pct_lowercase(Ctx &ctx)
{
    // rule: ENV-PATH-2: hex digits of an escape are case-insensitive: %2f is '/', %7e is '~'.
    std::string target = "/t/env/a%2fb%7ec%2Ad%3a";
    json doc = env_doc(ctx, ctx.req("GET", target));
    check_shape(doc);
    expect_key(doc, "PATH_INFO", "/t/env/a/b~c*d:", "ENV-PATH-2");
    expect_key(doc, "cwsgi.raw_path", target, "ENV-PATH-3");
}

void content_length_zero(Ctx &ctx)
{
    // rule: ENV-KEYS-3: Content-Length: 0 is a field the client sent, so CONTENT_LENGTH is "0".
    for (const char *method : {"POST", "GET"}) {
        json doc = env_doc(ctx, ctx.req(method, "/t/env", "Content-Length: 0\r\n"));
        check_shape(doc);
        expect_key(doc, "CONTENT_LENGTH", "0", "ENV-KEYS-3");
        expect_absent(doc, "HTTP_CONTENT_LENGTH", "ENV-HDR-3");
        check_eq(doc["info"]["content_length"].get<int64_t>(), int64_t(0), "ENV-INFO-2: info.content_length");
    }
}

void query_strings(Ctx &ctx)
{
    const std::pair<std::string, std::string> cases[] = {
        {"/t/env", ""}, {"/t/env?", ""}, {"/t/env?a=%20+b&c&&d=?e", "a=%20+b&c&&d=?e"}};
    for (const auto &[target, q] : cases) {
        json doc = env_doc(ctx, ctx.req("GET", target));
        expect_key(doc, "QUERY_STRING", q, "ENV-PATH-3");
        expect_key(doc, "PATH_INFO", "/t/env", "ENV-PATH-2");
        expect_key(doc, "REQUEST_URI", target, "ENV-PATH-3");
    }
}

void fragment(Ctx &ctx)
{
    // Clients should not send a fragment; when one comes, it is not part of path or query.
    json doc = env_doc(ctx, ctx.req("GET", "/t/env?a=1#frag"));
    expect_key(doc, "QUERY_STRING", "a=1", "ENV-PATH-3");
    expect_key(doc, "PATH_INFO", "/t/env", "ENV-PATH-2");
    expect_key(doc, "REQUEST_URI", "/t/env?a=1#frag", "ENV-PATH-3");
}

void dup_headers(Ctx &ctx)
{
    std::string hdrs = "X-Dup: a\r\nCookie: c1=1\r\nX-Other: o\r\nx-dup: b\r\nX_Under: u\r\nCOOKIE: c2=2\r\n"
                       "X-Dup:   c  \r\nX-MiXeD-Case: M\r\nX-Empty:\r\n";
    json doc = env_doc(ctx, ctx.req("GET", "/t/env", hdrs));
    check_shape(doc);
    std::vector<std::pair<std::string, std::string>> want = {{"host", ctx.t.host + ":" + std::to_string(ctx.t.port)},
                                                             {"x-dup", "a"},
                                                             {"cookie", "c1=1"},
                                                             {"x-other", "o"},
                                                             {"x-dup", "b"},
                                                             {"x_under", "u"},
                                                             {"cookie", "c2=2"},
                                                             {"x-dup", "c"},
                                                             {"x-mixed-case", "M"},
                                                             {"x-empty", ""}};
    std::vector<std::pair<std::string, std::string>> got;
    for (const auto &h : doc["headers"])
        got.emplace_back(latin1(h[0].get<std::string>()), latin1(h[1].get<std::string>()));
    if (got != want) {
        std::string g;
        for (auto &p : got) g += p.first + ": " + p.second + " | ";
        fail("ENV-HDR-1: header list in arrival order with duplicates expected, got " + g);
    }
    expect_key(doc, "HTTP_X_DUP", "a, b, c", "ENV-HDR-4");
    expect_key(doc, "HTTP_COOKIE", "c1=1; c2=2", "ENV-HDR-4");
    expect_key(doc, "HTTP_X_EMPTY", "", "ENV-HDR-3");
    expect_absent(doc, "HTTP_X_UNDER", "ENV-HDR-5");
}

void http10_keys(Ctx &ctx)
{
    // HTTP/1.0 without Host: SERVER_NAME/PORT come from the local socket (ENV-KEYS-5).
    json doc = env_doc(ctx, "GET /t/env HTTP/1.0\r\n\r\n");
    check_shape(doc);
    expect_key(doc, "SERVER_PROTOCOL", "HTTP/1.0", "ENV-KEYS-3");
    check_eq(doc["info"]["http_minor"].get<int>(), 0, "ENV-INFO-2: http_minor");
    auto m = environ_map(doc);
    expect_key(doc, "SERVER_NAME", m["cwsgi.local_addr"], "ENV-KEYS-5");
    // A unix socket has no local port: SERVER_PORT is then the scheme's default, never empty.
    std::string port = m["cwsgi.local_port"];
    if (port.empty()) port = m["cwsgi.url_scheme"] == "https" ? "443" : "80";
    expect_key(doc, "SERVER_PORT", port, "ENV-KEYS-5");
}

void request_ids(Ctx &ctx)
{
    Conn c = ctx.connect();
    std::vector<uint64_t> ids;
    std::string port;
    for (int i = 0; i < 3; i++) {
        std::string raw = ctx.req("GET", "/t/env?i=" + std::to_string(i));
        ctx.note_request(raw);
        if (!c.send(raw)) fail("send failed on a kept-alive connection");
        Response r = c.read_response({});
        if (r.status != 200 || !r.complete) fail("request " + std::to_string(i) + " on one connection: " + r.summary());
        json doc = ctx.parse_json(r, "environ");
        auto m = environ_map(doc);
        ids.push_back(std::stoull(m["cwsgi.request_id"]));
        if (i > 0 && m["REMOTE_PORT"] != port) fail("REMOTE_PORT changed on one connection");
        port = m["REMOTE_PORT"];
    }
    // rule: ENV-KEYS-7
    if (!(ids[0] < ids[1] && ids[1] < ids[2])) {
        fail("ENV-KEYS-7: request ids must strictly increase, got " + std::to_string(ids[0]) + ", " +
             std::to_string(ids[1]) + ", " + std::to_string(ids[2]));
    }
}

void script_name(Ctx &ctx)
{
    json doc = env_doc(ctx, ctx.req("GET", "/mnt/t/env?z=1"));
    check_shape(doc);
    expect_key(doc, "SCRIPT_NAME", "/mnt", "ENV-PATH-1");
    expect_key(doc, "PATH_INFO", "/t/env", "ENV-PATH-2");
    expect_key(doc, "cwsgi.raw_path", "/mnt/t/env", "ENV-PATH-3");
    expect_key(doc, "REQUEST_URI", "/mnt/t/env?z=1", "ENV-PATH-3");
    doc = env_doc(ctx, ctx.req("GET", "/mnt"));
    expect_key(doc, "SCRIPT_NAME", "/mnt", "ENV-PATH-1");
    expect_key(doc, "PATH_INFO", "", "ENV-PATH-2");
    doc = env_doc(ctx, ctx.req("GET", "/mnt/"));
    expect_key(doc, "PATH_INFO", "/", "ENV-PATH-2");
    // The mount point matches after decoding.
    doc = env_doc(ctx, ctx.req("GET", "/%6Dnt/t/env"));
    expect_key(doc, "SCRIPT_NAME", "/mnt", "ENV-PATH-1");
    expect_key(doc, "PATH_INFO", "/t/env", "ENV-PATH-2");
}

void script_name_404(Ctx &ctx)
{
    int64_t before = ctx.handled();
    for (const char *target : {"/other", "/mntx/t/env", "/", "/MNT/t/env", "*"}) {
        std::string method = std::string(target) == "*" ? "OPTIONS" : "GET";
        Response r = ctx.exchange(ctx.req(method, target));
        // rule: REQ-REPLY-1 (the server's own answer)
        check_server_answer(r, 404, "ENV-PATH-4: " + method + " " + target + " outside the mount point");
    }
    int64_t after = ctx.handled();
    check_eq(after - before, int64_t(0), "ENV-PATH-4: requests outside the mount point that reached the app");
}

} // namespace

void host_without_port(Ctx &ctx)
{
    // rule: ENV-KEYS-5: a Host without a port gives the scheme's default port: "443" over TLS
    // (ENV-KEYS-6 makes the scheme "https" there), "80" otherwise.
    json doc = env_doc(ctx, "GET /t/env HTTP/1.1\r\nHost: example.test\r\n\r\n");
    check_shape(doc);
    expect_key(doc, "SERVER_NAME", "example.test", "ENV-KEYS-5");
    expect_key(doc, "SERVER_PORT", ctx.opt().tls ? "443" : "80", "ENV-KEYS-5");
    expect_key(doc, "cwsgi.url_scheme", ctx.scheme(), "ENV-KEYS-6");
}

void tls_declared(Ctx &ctx)
{
    // rule: ABI-CAP-3: a server that serves requests over TLS declares CWSGI_CAP_TLS, and
    // reports them as TLS (is_tls 1, "https"; checked on every environ by check_shape).
    if (!ctx.opt().tls) skip("runs with --tls (the run is over cleartext)");
    if (!ctx.has(CWSGI_CAP_TLS)) fail("ABI-CAP-3: the server answers over TLS but does not declare CWSGI_CAP_TLS");
    json doc = env_doc(ctx, ctx.req("GET", "/t/env"));
    check_shape(doc);
    expect_key(doc, "cwsgi.url_scheme", "https", "ENV-KEYS-6");
}

void add_environ_cases(std::vector<Case> &out)
{
    out.push_back({"ENV-KEYS-3", "environ-get-every-key", profile::base, 0, false, get_keys});
    out.push_back({"ENV-KEYS-3", "environ-post-content-keys", profile::base, 0, false, post_keys});
    out.push_back({"ENV-KEYS-3", "environ-head", profile::base, 0, false, head_keys});
    out.push_back({"ENV-KEYS-3", "environ-options", profile::base, 0, false, options_keys});
    out.push_back({"ENV-PATH-2", "environ-options-asterisk", profile::base, 0, false, options_star});
    out.push_back({"ENV-KEYS-5", "environ-absolute-form", profile::base, 0, false, absolute_form});
    out.push_back({"ENV-PATH-3", "environ-absolute-form-no-path", profile::base, 0, false, absolute_form_no_path});
    out.push_back({"ENV-PATH-2", "environ-percent-2f", profile::base, 0, false, pct2f});
    out.push_back({"ENV-PATH-2", "environ-percent-lowercase-hex", profile::base, 0, false, pct_lowercase});
    out.push_back({"ENV-KEYS-3", "environ-content-length-zero", profile::base, 0, false, content_length_zero});
    out.push_back({"ENV-PATH-3", "environ-query-strings", profile::base, 0, false, query_strings});
    out.push_back({"ENV-PATH-3", "environ-fragment", profile::base, 0, false, fragment});
    out.push_back({"ENV-HDR-4", "environ-duplicate-headers", profile::base, 0, false, dup_headers});
    out.push_back({"ENV-KEYS-5", "environ-http10-no-host", profile::base, 0, false, http10_keys});
    out.push_back({"ENV-KEYS-5", "environ-host-without-port", profile::base, 0, false, host_without_port});
    out.push_back({"ABI-CAP-3", "tls-declared", profile::base, 0, false, tls_declared});
    out.push_back({"ENV-KEYS-7", "environ-request-ids", profile::base, 0, false, request_ids});
    out.push_back({"ENV-PATH-1", "environ-script-name", profile::mnt, 0, false, script_name});
    out.push_back({"ENV-PATH-4", "environ-script-name-404", profile::mnt, 0, false, script_name_404});
}

} // namespace conf
