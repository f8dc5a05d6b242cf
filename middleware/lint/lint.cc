// lint.cc: cwsgi-lint, the validating middleware (spec/composition.md, COMP-LINT-*).
//
// Loaded as the app (cwsgi-serve --lint app.so, or by hand with CWSGI_INNER_APP), it loads the
// real app and checks both directions of every call, as wsgiref.validate and Rack::Lint do:
// what the app asks of the server (a per-request state machine over start_response, write,
// send_file, finish and read) and what the server hands the app (request_info, the environ
// keys, the request headers, read's results, on_request_end exactly once). Each finding is one log line:
//
//   cwsgi-lint: RULE: what happened; expected what the rule says [METHOD TARGET request N]
//
// Modes (CWSGI_LINT=warn|fail, COMP-LINT-2): warn logs and forwards every call unchanged; fail
// also refuses the offending call and every later response call of that request and makes
// handle fail, so the server answers 500 when nothing was committed (RESP-ERR-1) and cuts the
// response otherwise. When nothing is wrong, every call is forwarded as made (COMP-LINT-3): a
// send_file stays a send_file, and the app's cooperative flag and thread-safety are the lint's.
// Counts per rule are logged when a worker stops and when the app is destroyed (COMP-LINT-4).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "../middleware.hh"

namespace {

using std::string_view;

// Every rule the lint can report: the spec ID it cites and whose call broke it, the app's or
// the server's. Counts are kept per entry.
#define LINT_RULES(X)                                                                                                  \
    X(START_STATUS, "RESP-START-1", "app")                                                                             \
    X(START_TWICE, "RESP-START-4", "app")                                                                              \
    X(HDR_NAME, "RESP-HDR-1", "app")                                                                                   \
    X(HDR_VALUE, "RESP-HDR-2", "app")                                                                                  \
    X(HDR_HOP, "RESP-HDR-3", "app")                                                                                    \
    X(AFTER_COMMIT, "RESP-STATE-2", "app")                                                                             \
    X(AFTER_FINISH, "RESP-STATE-3", "app")                                                                             \
    X(BEFORE_START, "RESP-BODY-1", "app")                                                                              \
    X(LEN_OVER, "RESP-LEN-2", "app")                                                                                   \
    X(LEN_UNDER, "RESP-LEN-3", "app")                                                                                  \
    X(NOBODY_BODY, "RESP-NOBODY-1", "app")                                                                             \
    X(NOBODY_CL, "RESP-NOBODY-2", "app")                                                                               \
    X(INFO_STATE, "RESP-INFO-1", "app")                                                                                \
    X(INFO_STATUS, "RESP-INFO-2", "app")                                                                               \
    X(READ_PAST, "COMP-LINT-5", "app")                                                                                 \
    X(SRV_READ, "INPUT-READ-3", "server")                                                                              \
    X(SRV_EOF, "INPUT-READ-2", "server")                                                                               \
    X(SRV_ENV, "ENV-KEYS-3", "server")                                                                                 \
    X(SRV_PATH, "ENV-PATH-2", "server")                                                                                \
    X(SRV_INFO, "ENV-INFO-1", "server")                                                                                \
    X(SRV_HDR, "ENV-HDR-1", "server")                                                                                  \
    X(SRV_END, "LIFE-END-1", "server")

enum Rule {
#define LINT_ENUM(name, id, side) name,
    LINT_RULES(LINT_ENUM)
#undef LINT_ENUM
        kRules
};
const char *const kRuleIds[] = {
#define LINT_ID(name, id, side) id,
    LINT_RULES(LINT_ID)
#undef LINT_ID
};
const char *const kRuleSides[] = {
#define LINT_SIDE(name, id, side) side,
    LINT_RULES(LINT_SIDE)
#undef LINT_SIDE
};

enum class State : uint8_t { fresh, started, committed, finished };

// One request's bookkeeping, in the request arena (so it needs no free).
struct Req {
    void *app_user = nullptr; // the inner app's user-data slot (MEM-USER-1)
    State state = State::fresh;
    bool failed = false;    // fail mode: a finding refused this request
    bool head = false;      // HEAD: the server discards the body, so no length checks
    bool eof = false;       // read returned 0
    bool read_past = false; // READ_PAST reported already (once per request)
    uint32_t ends = 0;      // on_request_end calls seen
    uint32_t status = 0;    // the status of the last accepted start_response
    int64_t declared = -1;  // the app's Content-Length, or -1
    int64_t sent = 0;       // body bytes written or sent as files
    int64_t body_len = -1;  // request content_length as request_info gave it
    int64_t body_read = 0;  // bytes read so far
};

cwsgi::mw::Inner inner;
const cwsgi_server_api *server;
cwsgi_server_api table; // what the inner app sees
cwsgi_app_desc desc;
bool fail_mode = false;
std::atomic<uint64_t> counts[kRules];
std::atomic<uint64_t> handled{0}, ended{0};
bool summarised = false;

// CWSGI_LINT_REPORT=PATH: every finding and summary line is also appended to PATH (one write
// each, O_APPEND, so the lines of several workers never interleave), for tools that check a
// run's findings without reading the server's log (the conformance runs under lint).
void emit(cwsgi_request *req, uint32_t level, const std::string &line)
{
    server->log(req, level, line.data(), line.size());
    const char *path = std::getenv("CWSGI_LINT_REPORT");
    if (path == nullptr || *path == '\0') return;
    int fd = ::open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    std::string l = line + "\n";
    ssize_t n = ::write(fd, l.data(), l.size());
    (void)n; // best effort: the log has the line already
    ::close(fd);
}

Req *state_of(cwsgi_request *req)
{
    return static_cast<Req *>(server->get_user_data(req));
}

// Logs one finding for `req` (NULL: not about one request) and counts it (COMP-LINT-1).
void report(cwsgi_request *req, Req *st, Rule rule, const std::string &what, const std::string &expected)
{
    counts[rule].fetch_add(1, std::memory_order_relaxed);
    std::string where;
    if (req != nullptr) {
        cwsgi_request_info info{};
        info.struct_size = sizeof info;
        if (server->request_info(req, &info) == CWSGI_OK) {
            where = " [" + std::string(info.method.ptr, info.method.len) + " " +
                    std::string(info.target.ptr, info.target.len) + " request " + std::to_string(info.request_id) + "]";
        }
    }
    std::string line = std::string("cwsgi-lint: ") + kRuleIds[rule] + " (" + kRuleSides[rule] + "): " + what +
                       "; expected " + expected + where;
    emit(req, CWSGI_LOG_WARNING, line);
    if (fail_mode && st != nullptr) st->failed = true;
}

void summary(const char *when)
{
    uint64_t total = 0, app = 0;
    std::string parts;
    for (int r = 0; r < kRules; ++r) {
        uint64_t n = counts[r].load();
        if (n == 0) continue;
        total += n;
        if (std::strcmp(kRuleSides[r], "app") == 0) app += n;
        parts += std::string(parts.empty() ? "" : ", ") + kRuleIds[r] + " x" + std::to_string(n);
    }
    std::string line = "cwsgi-lint: summary (" + std::string(when) + "): " + std::to_string(total) + " findings, app " +
                       std::to_string(app) + ", server " + std::to_string(total - app) +
                       (parts.empty() ? "" : " (" + parts + ")") + ", " + std::to_string(handled.load()) + " requests";
    emit(nullptr, total ? CWSGI_LOG_WARNING : CWSGI_LOG_INFO, line);
}

bool is_tchar(unsigned char c)
{
    return std::isalnum(c) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool iequal(string_view a, string_view b)
{
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
            return false;
        }
    }
    return true;
}

// Checks one start_response call; records the declared Content-Length. Returns false when a
// finding was made.
bool check_headers(cwsgi_request *req, Req *st, uint32_t status, const cwsgi_header *h, size_t n, bool final)
{
    bool ok = true;
    if (final && (status < 200 || status > 599)) {
        report(req, st, START_STATUS, "start_response status " + std::to_string(status), "200 to 599");
        ok = false;
    }
    static const char *const kHop[] = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                                       "te",         "trailer",    "upgrade",          "status"};
    for (size_t i = 0; i < n && h != nullptr; ++i) {
        string_view name(h[i].name ? h[i].name : "", h[i].name ? h[i].name_len : 0);
        string_view value(h[i].value ? h[i].value : "", h[i].value ? h[i].value_len : 0);
        bool token = !name.empty();
        for (unsigned char c : name)
            token = token && is_tchar(c);
        if (!token) {
            report(req, st, HDR_NAME, "header name '" + std::string(name) + "' is not a token", "an RFC 9110 token");
            ok = false;
            continue;
        }
        if (value.find_first_of(string_view("\r\n\0", 3)) != string_view::npos) {
            report(req, st, HDR_VALUE, "header '" + std::string(name) + "' has CR, LF or NUL in its value",
                   "a value without CR, LF or NUL");
            ok = false;
        }
        for (const char *hop : kHop) {
            if (iequal(name, hop)) {
                report(req, st, HDR_HOP, "header '" + std::string(name) + "' is hop-by-hop or server-owned",
                       "the server to own the connection and framing fields");
                ok = false;
            }
        }
        if (final && status == 204 && iequal(name, "content-length")) {
            report(req, st, NOBODY_CL, "a 204 response with a Content-Length field", "no Content-Length on a 204");
            ok = false;
        }
        if (final && iequal(name, "content-length")) {
            char *end = nullptr;
            std::string v(value);
            long long cl = std::strtoll(v.c_str(), &end, 10);
            if (!v.empty() && end && *end == '\0' && cl >= 0) st->declared = cl;
        }
    }
    return ok;
}

// --- the server's table, wrapped ------------------------------------------------------------

void lint_set_user_data(cwsgi_request *req, void *data)
{
    if (Req *st = state_of(req)) st->app_user = data;
}

void *lint_get_user_data(cwsgi_request *req)
{
    Req *st = state_of(req);
    return st ? st->app_user : nullptr;
}

int32_t lint_start_response(cwsgi_request *req, uint32_t status, const char *reason, const cwsgi_header *h, size_t n,
                            uint32_t flags)
{
    Req *st = state_of(req);
    if (st == nullptr) return server->start_response(req, status, reason, h, n, flags);
    if (st->failed) return CWSGI_E_APP;
    bool ok = true;
    if (st->state == State::committed) {
        report(req, st, AFTER_COMMIT, "start_response after the response was committed",
               "no status or header change once the first body byte or finish went out");
        ok = false;
    } else if (st->state == State::finished) {
        report(req, st, AFTER_FINISH, "start_response after finish", "only environ, header, info, log and alloc calls");
        ok = false;
    } else if (st->state == State::started && (flags & CWSGI_RESPONSE_REPLACE) == 0) {
        report(req, st, START_TWICE, "a second start_response without CWSGI_RESPONSE_REPLACE",
               "the REPLACE flag (WSGI's exc_info) on every call after the first");
        ok = false;
    }
    int64_t declared = st->declared;
    st->declared = -1;
    ok = check_headers(req, st, status, h, n, true) && ok;
    if (!ok && fail_mode) return CWSGI_E_APP;
    int32_t rc = server->start_response(req, status, reason, h, n, flags);
    if (rc == CWSGI_OK) {
        st->state = State::started;
        st->status = status;
    } else {
        st->declared = declared;
    }
    return rc;
}

// Shared by write and send_file: the state and length checks of one body call of `len` bytes.
bool check_body(cwsgi_request *req, Req *st, int64_t len, const char *call)
{
    if (st->state == State::fresh) {
        report(req, st, BEFORE_START, std::string(call) + " before start_response", "start_response first");
        return false;
    }
    if (st->state == State::finished) {
        report(req, st, AFTER_FINISH, std::string(call) + " after finish",
               "only environ, header, info, log and alloc calls");
        return false;
    }
    if ((st->status == 204 || st->status == 304) && len > 0) {
        report(req, st, NOBODY_BODY,
               std::string(call) + " of " + std::to_string(len) + " bytes in a " + std::to_string(st->status) +
                   " response",
               "no body bytes in a 204 or 304 response");
        return false;
    }
    if (!st->head && st->declared >= 0 && st->sent + len > st->declared) {
        report(req, st, LEN_OVER, std::string(call) + " takes the body to " + std::to_string(st->sent + len) + " bytes",
               "at most the declared Content-Length of " + std::to_string(st->declared));
        return false;
    }
    return true;
}

int32_t lint_write(cwsgi_request *req, const void *data, size_t len)
{
    Req *st = state_of(req);
    if (st == nullptr) return server->write(req, data, len);
    if (st->failed) return CWSGI_E_APP;
    if (!check_body(req, st, static_cast<int64_t>(len), "write") && fail_mode) return CWSGI_E_APP;
    int32_t rc = server->write(req, data, len);
    if (rc == CWSGI_OK) {
        st->sent += static_cast<int64_t>(len);
        st->state = State::committed;
    }
    return rc;
}

int32_t lint_send_file(cwsgi_request *req, int fd, int64_t offset, int64_t count)
{
    Req *st = state_of(req);
    if (st == nullptr) return server->send_file(req, fd, offset, count);
    if (st->failed) return CWSGI_E_APP;
    int64_t len = count;
    struct stat sb {};
    if (len < 0 && ::fstat(fd, &sb) == 0) len = sb.st_size > offset ? sb.st_size - offset : 0;
    if (!check_body(req, st, len < 0 ? 0 : len, "send_file") && fail_mode) return CWSGI_E_APP;
    int32_t rc = server->send_file(req, fd, offset, count); // forwarded as made: zero-copy stays
    if (rc == CWSGI_OK) {
        st->sent += len < 0 ? 0 : len;
        st->state = State::committed;
    }
    return rc;
}

// The finish checks, for an explicit finish and for the one a CWSGI_OK return implies.
bool check_finish(cwsgi_request *req, Req *st, const char *how)
{
    if (st->state == State::finished) {
        report(req, st, AFTER_FINISH, std::string(how) + " after finish", "finish exactly once");
        return false;
    }
    if (st->state == State::fresh) {
        report(req, st, BEFORE_START, std::string(how) + " before start_response", "start_response first");
        return false;
    }
    // A 304's Content-Length describes the representation a 200 would have sent (RESP-NOBODY-2).
    if (!st->head && st->status != 304 && st->declared >= 0 && st->sent < st->declared) {
        report(req, st, LEN_UNDER, std::string(how) + " after " + std::to_string(st->sent) + " body bytes",
               "the declared Content-Length of " + std::to_string(st->declared));
        return false;
    }
    return true;
}

int32_t lint_send_informational(cwsgi_request *req, uint32_t status, const cwsgi_header *h, size_t n)
{
    Req *st = state_of(req);
    if (st == nullptr) return server->send_informational(req, status, h, n);
    if (st->failed) return CWSGI_E_APP;
    bool ok = true;
    if (st->state != State::fresh) {
        report(req, st, INFO_STATE, "send_informational after start_response", "1xx responses before the final one");
        ok = false;
    }
    if (status < 102 || status > 199) {
        report(req, st, INFO_STATUS, "send_informational status " + std::to_string(status),
               "102 to 199 (100 is the server's, 101 switches protocols)");
        ok = false;
    }
    ok = check_headers(req, st, status, h, n, false) && ok;
    if (!ok && fail_mode) return CWSGI_E_APP;
    return server->send_informational(req, status, h, n);
}

int32_t lint_finish(cwsgi_request *req)
{
    Req *st = state_of(req);
    if (st == nullptr) return server->finish(req);
    if (st->failed) return CWSGI_E_APP;
    if (!check_finish(req, st, "finish") && fail_mode) return CWSGI_E_APP;
    int32_t rc = server->finish(req);
    if (rc == CWSGI_OK || rc == CWSGI_E_LENGTH) st->state = State::finished;
    return rc;
}

int64_t lint_read(cwsgi_request *req, void *buf, size_t cap)
{
    Req *st = state_of(req);
    if (st == nullptr) return server->read(req, buf, cap);
    if (st->eof && !st->read_past) {
        st->read_past = true;
        report(req, nullptr, READ_PAST, "read called again after it returned 0 (the end of the body)",
               "no read past the end of the body");
    }
    int64_t n = server->read(req, buf, cap);
    if (n > 0 && static_cast<uint64_t>(n) > cap) {
        report(req, nullptr, SRV_READ,
               "read returned " + std::to_string(n) + " bytes for a buffer of " + std::to_string(cap),
               "at most cap bytes");
    }
    if (n > 0 && st->eof) {
        report(req, nullptr, SRV_EOF, "read returned bytes after it had returned 0", "0 for ever after the end");
    }
    if (n > 0) {
        st->body_read += n;
        if (st->body_len >= 0 && st->body_read > st->body_len) {
            report(req, nullptr, SRV_READ, "read returned " + std::to_string(st->body_read) + " bytes in all",
                   "exactly the content_length of " + std::to_string(st->body_len));
        }
    }
    if (n == 0) st->eof = true;
    return n;
}

// --- what the server hands the app, checked when handle starts -------------------------------

bool nul_terminated(const cwsgi_str &s)
{
    return s.ptr != nullptr && s.ptr[s.len] == '\0';
}

void check_request(cwsgi_request *req, Req *st)
{
    cwsgi_request_info info{};
    info.struct_size = sizeof info;
    if (server->request_info(req, &info) != CWSGI_OK) {
        report(req, nullptr, SRV_INFO, "request_info failed", "CWSGI_OK for a live request");
        return;
    }
    const cwsgi_str *strs[] = {&info.method,       &info.target, &info.raw_path, &info.script_name, &info.path_info,
                               &info.query_string, &info.scheme, &info.protocol, &info.server_name, &info.server_port};
    for (const cwsgi_str *s : strs) {
        if (!nul_terminated(*s)) {
            report(req, nullptr, SRV_INFO, "a request_info string is NULL or not NUL-terminated",
                   "ptr[len] == 0 and ptr never NULL");
            return;
        }
    }
    st->body_len = info.content_length;
    st->head = string_view(info.method.ptr, info.method.len) == "HEAD";
    bool token = info.method.len > 0;
    for (size_t i = 0; i < info.method.len; ++i)
        token = token && is_tchar(static_cast<unsigned char>(info.method.ptr[i]));
    string_view scheme(info.scheme.ptr, info.scheme.len), proto(info.protocol.ptr, info.protocol.len);
    if (!token || (scheme != "http" && scheme != "https") ||
        (proto != "HTTP/1.0" && proto != "HTTP/1.1" && proto != "HTTP/2") || info.content_length < -1) {
        report(req, nullptr, SRV_INFO,
               "request_info method '" + std::string(info.method.ptr) + "', scheme '" + std::string(scheme) +
                   "', protocol '" + std::string(proto) + "', content_length " + std::to_string(info.content_length),
               "a token method, http or https, HTTP/1.0, HTTP/1.1 or HTTP/2, and a length of -1 or more");
    }
    string_view sn(info.script_name.ptr, info.script_name.len), pi(info.path_info.ptr, info.path_info.len);
    bool sn_ok = sn.empty() || (sn.front() == '/' && sn.back() != '/');
    bool pi_ok = (!pi.empty() && pi.front() == '/') || (pi.empty() && !sn.empty()) ||
                 (pi == "*" && string_view(info.method.ptr) == "OPTIONS") || string_view(info.method.ptr) == "CONNECT";
    if (!sn_ok || !pi_ok) {
        report(req, nullptr, SRV_PATH, "SCRIPT_NAME '" + std::string(sn) + "' and PATH_INFO '" + std::string(pi) + "'",
               "SCRIPT_NAME empty or '/x' without a trailing '/', PATH_INFO starting with '/'");
    }
    for (size_t i = 0;; ++i) {
        cwsgi_str name{}, value{};
        if (server->header_at(req, i, &name, &value) != CWSGI_OK) break;
        bool ok = nul_terminated(name) && nul_terminated(value) && name.len > 0;
        for (size_t k = 0; ok && k < name.len; ++k) {
            unsigned char c = static_cast<unsigned char>(name.ptr[k]);
            ok = is_tchar(c) && !(c >= 'A' && c <= 'Z');
        }
        ok = ok && string_view(value.ptr, value.len).find_first_of(string_view("\r\n\0", 3)) == string_view::npos;
        if (!ok) {
            report(req, nullptr, SRV_HDR,
                   "request header " + std::to_string(i) + " ('" + std::string(name.ptr ? name.ptr : "") +
                       "') is not a lowercase token with a value free of CR, LF and NUL",
                   "names lowercased, values as received without CR, LF or NUL");
            break;
        }
    }
    static const char *const kAlways[] = {"REQUEST_METHOD",  "SCRIPT_NAME", "PATH_INFO",
                                          "QUERY_STRING",    "SERVER_NAME", "SERVER_PORT",
                                          "SERVER_PROTOCOL", "REQUEST_URI", "cwsgi.url_scheme"};
    for (const char *key : kAlways) {
        cwsgi_str v{};
        if (server->environ_get(req, key, &v) != CWSGI_OK || !nul_terminated(v)) {
            report(req, nullptr, SRV_ENV, std::string("environ key ") + key + " is missing",
                   "every key the spec marks \"always\"");
        }
    }
}

// --- the descriptor the server sees ----------------------------------------------------------

int32_t lint_handle(void *, cwsgi_request *req)
{
    handled.fetch_add(1, std::memory_order_relaxed);
    Req *st = cwsgi::mw::arena_new<Req>(server, req);
    if (st == nullptr) return inner.desc.handle(inner.state, req); // no arena: run unchecked
    server->set_user_data(req, st);
    check_request(req, st);
    int32_t rc = inner.desc.handle(inner.state, req);
    if (rc == CWSGI_OK && !st->failed && st->state != State::finished) {
        // The implied finish (RESP-END-1) gets the same checks as an explicit one.
        if (check_finish(req, st, "the implied finish (handle returned CWSGI_OK)") || !fail_mode) {
            st->state = State::finished;
        }
    }
    if (st->failed) return CWSGI_E_APP; // fail mode: 500 before commit, a cut after
    return rc;
}

void lint_request_end(void *, cwsgi_request *req, int32_t outcome)
{
    ended.fetch_add(1, std::memory_order_relaxed);
    Req *st = state_of(req);
    if (st != nullptr && ++st->ends > 1) {
        report(req, nullptr, SRV_END, "on_request_end called " + std::to_string(st->ends) + " times",
               "exactly once per request");
        return; // the inner app heard of this request's end already
    }
    if (inner.desc.on_request_end) inner.desc.on_request_end(inner.state, req, outcome);
}

int32_t lint_init(const cwsgi_server_api *, void **, char *errbuf, size_t errlen)
{
    return cwsgi::mw::init_inner(inner, &table, errbuf, errlen);
}

int32_t lint_worker_start(void *, uint32_t id, char *errbuf, size_t errlen)
{
    return inner.desc.worker_start ? inner.desc.worker_start(inner.state, id, errbuf, errlen) : CWSGI_OK;
}

void check_ends()
{
    uint64_t h = handled.load(), e = ended.load();
    if (h != e) {
        report(nullptr, nullptr, SRV_END,
               std::to_string(h) + " requests reached handle but " + std::to_string(e) +
                   " on_request_end calls were made",
               "exactly one on_request_end per request");
        handled = 0; // reported once, not again at exit
        ended = 0;
    }
}

void lint_worker_stop(void *, uint32_t id)
{
    if (inner.desc.worker_stop) inner.desc.worker_stop(inner.state, id);
    check_ends();
    summary(("worker " + std::to_string(id)).c_str());
    summarised = true;
}

void lint_destroy(void *)
{
    if (inner.desc.destroy) inner.desc.destroy(inner.state);
    if (!summarised) {
        check_ends();
        summary("exit");
    }
}

} // namespace

extern "C" CWSGI_EXPORT int32_t cwsgi_app_entry(const cwsgi_server_api *api, const cwsgi_app_desc **out)
{
    server = api;
    for (auto &c : counts)
        c = 0; // a fresh load starts a fresh count (a host may load twice)
    handled = 0;
    ended = 0;
    summarised = false;
    const char *mode = std::getenv("CWSGI_LINT");
    fail_mode = mode != nullptr && std::strcmp(mode, "fail") == 0;
    table = cwsgi::mw::copy_api(api);
    table.set_user_data = lint_set_user_data;
    table.get_user_data = lint_get_user_data;
    table.start_response = lint_start_response;
    table.write = lint_write;
    table.send_file = lint_send_file;
    table.finish = lint_finish;
    table.send_informational = lint_send_informational;
    table.read = lint_read;
    std::string error;
    if (!cwsgi::mw::load_inner(std::getenv("CWSGI_INNER_APP"), &table, inner, error)) {
        std::string line = "cwsgi-lint: " + error;
        api->log(nullptr, CWSGI_LOG_ERROR, line.data(), line.size());
        return CWSGI_E_INVAL;
    }
    desc = inner.desc; // ABI minor, thread-safety, caps, extensions, the cooperative flag (COMP-LINT-3)
    desc.name = "cwsgi-lint";
    desc.init = lint_init;
    desc.worker_start = lint_worker_start;
    desc.worker_stop = lint_worker_stop;
    desc.destroy = lint_destroy;
    desc.handle = lint_handle;
    desc.on_request_end = lint_request_end;
    *out = &desc;
    return CWSGI_OK;
}
