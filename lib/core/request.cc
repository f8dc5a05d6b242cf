// request.cc: the per-request state machine shared by every adapter.
//
// The app talks to a Request through the API table; the Request talks to the adapter through
// an Exchange. Everything the spec says about one request is decided here, once, so that the
// same app.so behaves the same on every adapter. Rule IDs refer to spec/*.md.
#include "request.hh"

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <mutex>

#include <fmt/format.h>

#include "app.hh"
#include "context.hh"

namespace cwsgi::core {

namespace {

int64_t now_us()
{
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

cwsgi_str str_of(const std::string &s) { return {s.c_str(), s.size()}; }

std::string to_lower(std::string_view s)
{
    std::string out(s);
    for (char &c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    }
    return out;
}

// "Content-Type" -> "HTTP_CONTENT_TYPE" (ENV-HDR-3).
std::string cgi_key(std::string_view name)
{
    std::string key = "HTTP_";
    for (char c : name) {
        if (c == '-') {
            key.push_back('_');
        } else if (c >= 'a' && c <= 'z') {
            key.push_back(static_cast<char>(c - 32));
        } else {
            key.push_back(c);
        }
    }
    return key;
}

const char *state_name(Request::State s)
{
    switch (s) {
    case Request::State::fresh: return "fresh";
    case Request::State::started: return "started";
    case Request::State::committed: return "committed";
    case Request::State::finished: return "finished";
    }
    return "?";
}

// Splits "host:port", "[v6]:port" or "host" (ENV-KEYS-5).
void split_authority(std::string_view a, std::string &host, std::string &port)
{
    if (!a.empty() && a.front() == '[') {
        size_t close = a.find(']');
        if (close != std::string_view::npos) {
            host = std::string(a.substr(0, close + 1));
            if (close + 1 < a.size() && a[close + 1] == ':') port = std::string(a.substr(close + 2));
            return;
        }
    }
    size_t colon = a.rfind(':');
    if (colon != std::string_view::npos) {
        host = std::string(a.substr(0, colon));
        port = std::string(a.substr(colon + 1));
    } else {
        host = std::string(a);
    }
}

constexpr size_t kFileChunk = 64 * 1024;

// Fields a trailer must not carry (RFC 9110 6.5.1): framing, routing, hop-by-hop control and
// credentials. The server drops them (EXT-TRAILERS-2). Content metadata such as Content-Type
// is passed on: clients send it, gunicorn accepts it, and it cannot change how the body
// was framed.
bool is_forbidden_trailer(std::string_view lc_name)
{
    static constexpr std::string_view kForbidden[] = {
        "content-length", "transfer-encoding", "trailer", "host", "te", "connection", "keep-alive",
        "upgrade", "proxy-connection", "expect", "authorization", "proxy-authorization", "cookie",
    };
    for (auto f : kForbidden) {
        if (lc_name == f) return true;
    }
    return false;
}

// Handle slots. A finished request's slot goes to the back of a FIFO and is reused only when
// more than kReuseDelay slots wait, so a stale handle stays harmless for at least that many
// later requests. The pool only grows to peak concurrency + kReuseDelay slots (8 bytes each).
class HandlePool {
public:
    cwsgi_request *acquire()
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (free_.size() > kReuseDelay) {
            cwsgi_request *s = free_.front();
            free_.pop_front();
            return s;
        }
        all_.push_back(std::make_unique<cwsgi_request>());
        return all_.back().get();
    }
    void release(cwsgi_request *s)
    {
        s->self.store(nullptr, std::memory_order_release);
        std::lock_guard<std::mutex> lock(mutex_);
        free_.push_back(s);
    }

private:
    static constexpr size_t kReuseDelay = 4096;
    std::mutex mutex_;
    std::deque<std::unique_ptr<cwsgi_request>> all_;
    std::deque<cwsgi_request *> free_;
};

HandlePool &handle_pool()
{
    static HandlePool *pool = new HandlePool(); // never destroyed: handles may outlive main
    return *pool;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Arena

void *Arena::alloc(size_t size)
{
    constexpr size_t kAlign = alignof(std::max_align_t);
    constexpr size_t kBlock = 4096;
    if (size == 0) size = 1;
    if (size > SIZE_MAX / 2) return nullptr;
    size_t need = (size + kAlign - 1) & ~(kAlign - 1);
    if (need > left_) {
        size_t block = std::max(kBlock, need);
        auto mem = std::unique_ptr<unsigned char[]>(new (std::nothrow) unsigned char[block]);
        if (!mem) return nullptr;
        next_ = mem.get();
        left_ = block;
        blocks_.push_back(std::move(mem));
    }
    void *p = next_;
    next_ += need;
    left_ -= need;
    used_ += need;
    return p;
}

// ---------------------------------------------------------------------------------------------
// Construction and request facts

std::shared_ptr<Request> Request::create(Context &ctx, RequestHead head, HeadCheck check,
                                         Exchange &exchange)
{
    return std::shared_ptr<Request>(new Request(ctx, std::move(head), std::move(check), exchange));
}

Request::Request(Context &ctx, RequestHead head, HeadCheck check, Exchange &exchange)
    : ctx_(ctx), slot_(handle_pool().acquire()), head_(std::move(head)), check_(std::move(check)), ex_(exchange)
{
    slot_->self.store(this, std::memory_order_release);
    id_ = ctx_.next_request_id();
    start_us_ = now_us();
    keep_alive_ = check_.keep_alive;
    headers_lc_.reserve(head_.headers.size());
    // ENV-HDR-1: HTTP/2's :authority shows as "host" when the client sent no Host field.
    if (head_.http_major == 2 && !head_.authority.empty()) {
        bool has_host = false;
        for (const Header &h : head_.headers) has_host = has_host || iequals(h.name, "host");
        if (!has_host) headers_lc_.push_back({"host", head_.authority});
    }
    for (const Header &h : head_.headers) headers_lc_.push_back({to_lower(h.name), h.value});
    build_paths();
}

Request::~Request() { handle_pool().release(slot_); }

Request *Request::from(cwsgi_request *r)
{
    return r == nullptr ? nullptr : r->self.load(std::memory_order_acquire);
}

void Request::build_paths()
{
    // ENV-PATH-*: split the raw target into path and query, decode the path, then move the
    // mount point (SCRIPT_NAME) out of it. validate_request_head already refused targets whose
    // path does not decode, so decoding cannot fail here.
    std::string_view t = head_.target;
    std::string authority;
    if (t == "*") {
        raw_path_ = "*";
    } else {
        if (t.front() != '/') { // absolute-form: the authority comes from the target
            size_t start = t.find("://") + 3;
            size_t slash = t.find_first_of("/?#", start);
            authority = std::string(t.substr(start, slash == std::string_view::npos ? t.npos : slash - start));
            t = slash == std::string_view::npos ? std::string_view("/") : t.substr(slash);
            scheme_ = to_lower(head_.target.substr(0, head_.target.find(':')));
        }
        size_t hash = t.find('#');
        if (hash != std::string_view::npos) t = t.substr(0, hash); // fragments are not for servers
        size_t q = t.find('?');
        raw_path_ = std::string(t.substr(0, q));
        if (raw_path_.empty()) raw_path_ = "/";
        query_ = q == std::string_view::npos ? std::string() : std::string(t.substr(q + 1));
    }
    std::string decoded = raw_path_ == "*" ? raw_path_ : percent_decode(raw_path_).value_or(raw_path_);
    const std::string &mount = ctx_.config().script_name;
    if (!mount.empty() && decoded.compare(0, mount.size(), mount) == 0 &&
        (decoded.size() == mount.size() || decoded[mount.size()] == '/')) {
        script_name_ = mount;
        path_info_ = decoded.substr(mount.size());
    } else {
        path_info_ = std::move(decoded);
    }

    if (scheme_.empty()) scheme_ = head_.is_tls ? "https" : "http";
    // The common versions without a format call (it showed in the per-request profile).
    if (head_.http_major == 2) {
        protocol_ = "HTTP/2";
    } else if (head_.http_major == 1 && head_.http_minor <= 1) {
        protocol_ = head_.http_minor == 1 ? "HTTP/1.1" : "HTTP/1.0";
    } else {
        protocol_ = fmt::format("HTTP/{}.{}", head_.http_major, head_.http_minor);
    }

    // ENV-KEYS-5: SERVER_NAME/PORT from the absolute-form authority, :authority, Host, or
    // the local socket, in that order.
    if (authority.empty()) authority = head_.authority;
    if (authority.empty()) {
        for (const Header &h : headers_lc_) {
            if (h.name == "host") {
                authority = h.value;
                break;
            }
        }
    }
    // validate_request_head has checked every source of the authority (REQ-HDR-3, REQ-H2-1).
    if (!authority.empty()) {
        split_authority(authority, server_name_, server_port_);
        if (server_port_.empty()) server_port_ = scheme_ == "https" ? "443" : "80";
    } else {
        server_name_ = head_.local_addr;
        server_port_ = head_.local_port;
    }
    for (const Header &h : headers_lc_) {
        if (h.name == "content-type" && content_type_.empty()) content_type_ = h.value;
        if (h.name == "content-length") content_length_text_ = h.value;
    }
}

void Request::build_environ()
{
    if (environ_built_) return;
    environ_built_ = true;
    auto &e = environ_;
    e.reserve(20 + headers_lc_.size());
    e.emplace_back("REQUEST_METHOD", head_.method);
    e.emplace_back("SCRIPT_NAME", script_name_);
    e.emplace_back("PATH_INFO", path_info_);
    e.emplace_back("QUERY_STRING", query_);
    // ENV-KEYS-3: CONTENT_TYPE and CONTENT_LENGTH appear only when the client sent them.
    bool has_ct = false;
    for (const Header &h : headers_lc_) has_ct = has_ct || h.name == "content-type";
    if (has_ct) e.emplace_back("CONTENT_TYPE", content_type_);
    if (check_.body == BodyKind::length || (check_.body == BodyKind::none && check_.content_length == 0)) {
        e.emplace_back("CONTENT_LENGTH", std::to_string(check_.content_length));
    }
    e.emplace_back("SERVER_NAME", server_name_);
    e.emplace_back("SERVER_PORT", server_port_);
    e.emplace_back("SERVER_PROTOCOL", protocol_);
    e.emplace_back("REQUEST_URI", head_.target);
    e.emplace_back("REMOTE_ADDR", head_.remote_addr);
    e.emplace_back("REMOTE_PORT", head_.remote_port);
    e.emplace_back("cwsgi.url_scheme", scheme_);
    e.emplace_back("cwsgi.raw_path", raw_path_);
    e.emplace_back("cwsgi.local_addr", head_.local_addr);
    e.emplace_back("cwsgi.local_port", head_.local_port);
    e.emplace_back("cwsgi.request_id", std::to_string(id_));
    e.emplace_back("cwsgi.version", fmt::format("{}.{}", CWSGI_ABI_MAJOR, CWSGI_ABI_MINOR));
    // ENV-HDR-3/4: HTTP_* keys, duplicates joined with ", " ("; " for Cookie), in order of
    // first appearance. Names with '_' are left out: "X_Forwarded_For" and "X-Forwarded-For"
    // would otherwise collide, a known header-smuggling trick (ENV-HDR-5).
    size_t first_http = e.size();
    for (const Header &h : headers_lc_) {
        if (h.name == "content-type" || h.name == "content-length") continue;
        if (h.name.find('_') != std::string::npos) continue;
        std::string key = cgi_key(h.name);
        auto it = std::find_if(e.begin() + static_cast<std::ptrdiff_t>(first_http), e.end(),
                               [&](const auto &kv) { return kv.first == key; });
        if (it == e.end()) {
            e.emplace_back(std::move(key), h.value);
        } else {
            it->second += h.name == "cookie" ? "; " : ", ";
            it->second += h.value;
        }
    }
}

int32_t Request::environ_get(const char *key, cwsgi_str *out)
{
    if (key == nullptr || out == nullptr) return CWSGI_E_INVAL;
    build_environ();
    for (const auto &[k, v] : environ_) {
        if (k == key) {
            *out = str_of(v);
            return CWSGI_OK;
        }
    }
    return CWSGI_E_NOTFOUND;
}

int32_t Request::environ_at(size_t index, cwsgi_str *key, cwsgi_str *value)
{
    if (key == nullptr || value == nullptr) return CWSGI_E_INVAL;
    build_environ();
    if (index >= environ_.size()) return CWSGI_E_NOTFOUND;
    *key = str_of(environ_[index].first);
    *value = str_of(environ_[index].second);
    return CWSGI_OK;
}

int32_t Request::header_at(size_t index, cwsgi_str *name, cwsgi_str *value)
{
    if (name == nullptr || value == nullptr) return CWSGI_E_INVAL;
    if (index >= headers_lc_.size()) return CWSGI_E_NOTFOUND;
    *name = str_of(headers_lc_[index].name);
    *value = str_of(headers_lc_[index].value);
    return CWSGI_OK;
}

int32_t Request::header_find(const char *name, size_t nth, cwsgi_str *value)
{
    if (name == nullptr || value == nullptr) return CWSGI_E_INVAL;
    for (const Header &h : headers_lc_) {
        if (iequals(h.name, name) && nth-- == 0) {
            *value = str_of(h.value);
            return CWSGI_OK;
        }
    }
    return CWSGI_E_NOTFOUND;
}

int32_t Request::request_info(cwsgi_request_info *info)
{
    if (info == nullptr || info->struct_size < 8) return CWSGI_E_INVAL;
    cwsgi_request_info full{};
    full.struct_size = info->struct_size;
    full.http_major = head_.http_major;
    full.http_minor = head_.http_minor;
    full.is_tls = head_.is_tls ? 1 : 0;
    full.content_length = check_.body == BodyKind::length || check_.body == BodyKind::none
                              ? std::max<int64_t>(check_.content_length, 0)
                              : CWSGI_LENGTH_UNKNOWN;
    full.method = str_of(head_.method);
    full.target = str_of(head_.target);
    full.raw_path = str_of(raw_path_);
    full.script_name = str_of(script_name_);
    full.path_info = str_of(path_info_);
    full.query_string = str_of(query_);
    full.scheme = str_of(scheme_);
    full.protocol = str_of(protocol_);
    full.server_name = str_of(server_name_);
    full.server_port = str_of(server_port_);
    full.remote_addr = str_of(head_.remote_addr);
    full.remote_port = str_of(head_.remote_port);
    full.local_addr = str_of(head_.local_addr);
    full.local_port = str_of(head_.local_port);
    full.request_id = id_;
    uint32_t caller = info->struct_size;
    std::memcpy(info, &full, std::min<size_t>(caller, sizeof full));
    if (caller > sizeof full) std::memset(reinterpret_cast<char *>(info) + sizeof full, 0, caller - sizeof full);
    info->struct_size = caller;
    return CWSGI_OK;
}

int32_t Request::misuse(int32_t code, const char *rule, const std::string &what)
{
    ctx_.log().warning(fmt::format("request {} {} {}: {} ({}, returned {})", id_, head_.method,
                                   head_.target.substr(0, 200), what, rule, cwsgi_err_name(code)));
    return code;
}

// ---------------------------------------------------------------------------------------------
// Input

int64_t Request::read(void *buf, size_t cap)
{
    if (buf == nullptr || cap == 0) return misuse(CWSGI_E_INVAL, "INPUT-READ-1", "read with no buffer");
    if (state_ == State::finished) return misuse(CWSGI_E_STATE, "RESP-STATE-3", "read after finish");
    if (body_error_ != 0) return body_error_;
    if (body_eof_) return 0; // INPUT-READ-2: the end is sticky
    if (check_.body == BodyKind::none) {
        body_eof_ = true;
        return 0;
    }
    if (!body_started_) {
        body_started_ = true;
        if (check_.expect_continue) {
            // INPUT-EXPECT-1/2: "100 Continue" goes out on the first read, never after the
            // final response was committed (the client may then never send the body).
            if (state_ >= State::committed) {
                body_error_ = misuse(CWSGI_E_STATE, "INPUT-EXPECT-2",
                                     "read after commit on a request still waiting for 100-continue");
                return body_error_;
            }
            ex_.continue_body();
        }
    }
    // INPUT-READ-3: never past the declared length, whatever the adapter has buffered.
    if (check_.body == BodyKind::length) {
        int64_t left = check_.content_length - body_read_;
        if (left <= 0) {
            body_eof_ = true;
            return 0;
        }
        cap = static_cast<size_t>(std::min<int64_t>(left, static_cast<int64_t>(cap)));
    }
    int64_t n = ex_.read_body(buf, cap);
    if (n == 0) {
        if (check_.body == BodyKind::length && body_read_ < check_.content_length) {
            body_error_ = CWSGI_E_BODY; // the client closed before sending the whole body
            body_error_status_ = 400;
            return body_error_;
        }
        trailers_lc_.clear();
        if (const auto *t = ex_.request_trailers()) {
            for (const Header &h : *t) {
                // INPUT-READ-4: a malformed trailer is a malformed body.
                if (!is_token(h.name) || !is_field_value(h.value)) {
                    body_error_ = CWSGI_E_BODY;
                    body_error_status_ = 400;
                    return body_error_;
                }
                std::string name = to_lower(h.name);
                if (is_forbidden_trailer(name)) continue; // EXT-TRAILERS-2: dropped, never merged
                trailers_lc_.push_back({std::move(name), h.value});
            }
        }
        body_eof_ = true;
        return 0;
    }
    if (n < 0) {
        body_error_ = static_cast<int32_t>(n);
        if (n == CWSGI_E_BODY) body_error_status_ = 400;
        if (n == CWSGI_E_TIMEOUT) body_error_status_ = 408;
        return n;
    }
    body_read_ += n;
    // INPUT-LIMIT-2: a body of unknown length that passes the limit stops here; if the app
    // gives up before committing, the server answers 413.
    int64_t limit = ctx_.config().limits.request_body;
    if (limit >= 0 && check_.body != BodyKind::length && body_read_ > limit) {
        body_error_ = CWSGI_E_BODY;
        body_error_status_ = 413;
        return body_error_;
    }
    return n;
}

int32_t Request::trailer_at(size_t index, cwsgi_str *name, cwsgi_str *value)
{
    if (name == nullptr || value == nullptr) return CWSGI_E_INVAL;
    if (!body_eof_) return misuse(CWSGI_E_STATE, "EXT-TRAILERS-1", "trailer_at before the end of the body");
    if (index >= trailers_lc_.size()) return CWSGI_E_NOTFOUND;
    *name = str_of(trailers_lc_[index].name);
    *value = str_of(trailers_lc_[index].value);
    return CWSGI_OK;
}

// ---------------------------------------------------------------------------------------------
// Response

int32_t Request::start_response(uint32_t status, const char *reason, const cwsgi_header *headers,
                                 size_t n, uint32_t flags)
{
    if (state_ == State::finished) return misuse(CWSGI_E_STATE, "RESP-STATE-3", "start_response after finish");
    if (state_ == State::committed) {
        return misuse(CWSGI_E_COMMITTED, "RESP-START-4", "start_response after the response was committed");
    }
    if (state_ == State::started && !(flags & CWSGI_RESPONSE_REPLACE)) {
        return misuse(CWSGI_E_STATE, "RESP-START-4", "second start_response without CWSGI_RESPONSE_REPLACE");
    }
    if (flags & ~CWSGI_RESPONSE_REPLACE) return misuse(CWSGI_E_INVAL, "RESP-START-5", "unknown flags");
    if (status < 200 || status > 599) {
        return misuse(CWSGI_E_STATUS, "RESP-START-1", fmt::format("status {} outside 200..599", status));
    }
    if (n > 0 && headers == nullptr) return misuse(CWSGI_E_INVAL, "RESP-HDR-1", "headers is NULL");
    std::string why;
    std::string reason_text = reason ? reason : reason_phrase(status);
    if (reason_text.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
        return misuse(CWSGI_E_HEADER, "RESP-START-3", "reason phrase with CR, LF or NUL");
    }
    std::vector<Header> hs;
    hs.reserve(n);
    std::optional<int64_t> length;
    for (size_t i = 0; i < n; ++i) {
        const cwsgi_header &h = headers[i];
        if ((h.name == nullptr && h.name_len) || (h.value == nullptr && h.value_len)) {
            return misuse(CWSGI_E_INVAL, "RESP-HDR-1", "header with a NULL pointer");
        }
        std::string_view name(h.name ? h.name : "", h.name_len);
        std::string_view value(h.value ? h.value : "", h.value_len);
        int32_t rc = check_response_header(name, value);
        if (rc != CWSGI_OK) {
            return misuse(rc, rc == CWSGI_E_FORBIDDEN ? "RESP-HDR-3" : "RESP-HDR-2",
                          fmt::format("header '{}' refused", std::string(name.substr(0, 64))));
        }
        if (iequals(name, "content-length")) {
            auto v = parse_content_length(value);
            if (!v) return misuse(CWSGI_E_HEADER, "RESP-LEN-1", "Content-Length is not a number");
            if (length && *length != *v) return misuse(CWSGI_E_HEADER, "RESP-LEN-1", "two different Content-Length values");
            if (status == 204) return misuse(CWSGI_E_FORBIDDEN, "RESP-NOBODY-2", "Content-Length on a 204");
            if (length) continue; // the same value twice: keep one
            length = v;
        }
        hs.push_back({std::string(name), std::string(value)});
    }
    status_ = status;
    reason_ = std::move(reason_text);
    resp_headers_ = std::move(hs);
    app_length_ = length;
    state_ = State::started;
    return CWSGI_OK;
}

int32_t Request::commit(bool finishing)
{
    FramingInput in;
    in.status = status_;
    in.head_request = head_.method == "HEAD";
    in.http_major = head_.http_major;
    in.http_minor = head_.http_minor;
    in.app_content_length = app_length_;
    in.finished_without_body = finishing && body_written_ == 0;
    in.request_keep_alive = check_.keep_alive;
    in.shutting_down = ctx_.shutting_down();
    framing_ = decide_framing(in);
    // An unread request body cannot be skipped safely on every adapter; the connection then
    // closes after this response (RESP-FRAME-6).
    if (check_.body != BodyKind::none && !body_eof_ && check_.expect_continue && !body_started_) {
        framing_.keep_alive = false;
    }
    if (body_error_ != 0) framing_.keep_alive = false; // INPUT-READ-5: the body's framing is lost
    ResponseHead head;
    head.status = status_;
    head.reason = reason_;
    head.headers = resp_headers_;
    bool no_body_status = status_ == 204 || status_ == 304;
    if (framing_.send_content_length && !app_length_ && !no_body_status) {
        head.headers.push_back({"Content-Length", std::to_string(framing_.content_length)});
    }
    if (!framing_.keep_alive) {
        head.headers.push_back({"Connection", "close"});
    } else if (head_.http_major == 1 && head_.http_minor == 0) {
        head.headers.push_back({"Connection", "keep-alive"}); // RESP-FRAME-6: 1.0 must be told
    }
    head.framing = framing_;
    keep_alive_ = framing_.keep_alive;
    state_ = State::committed;
    sent_status_ = status_;
    int32_t rc = ex_.commit(head);
    if (rc != CWSGI_OK) {
        aborted_ = true;
        keep_alive_ = false;
    }
    return rc;
}

int32_t Request::write(const void *data, size_t len)
{
    if (state_ == State::fresh) return misuse(CWSGI_E_STATE, "RESP-STATE-2", "write before start_response");
    if (state_ == State::finished) return misuse(CWSGI_E_STATE, "RESP-STATE-3", "write after finish");
    if (len > 0 && data == nullptr) return misuse(CWSGI_E_INVAL, "RESP-BODY-1", "write with NULL data");
    if (len > 0 && (status_ == 204 || status_ == 304)) {
        return misuse(CWSGI_E_LENGTH, "RESP-NOBODY-1", fmt::format("body bytes on a {} response", status_));
    }
    if (app_length_ && body_written_ + len > static_cast<uint64_t>(*app_length_)) {
        return misuse(CWSGI_E_LENGTH, "RESP-LEN-2",
                      fmt::format("write of {} bytes passes Content-Length {} ({} written)", len, *app_length_, body_written_));
    }
    if (aborted_) return CWSGI_E_DISCONNECTED;
    if (state_ == State::started) {
        int32_t rc = commit(false);
        if (rc != CWSGI_OK) return rc;
    }
    body_written_ += len;
    if (framing_.framing == Framing::no_body) return CWSGI_OK; // HEAD: counted, not sent
    // A zero-length write still reaches the adapter: an adapter that defers the head flushes
    // it there (RESP-BODY-3).
    int32_t rc = ex_.send_body(len ? data : "", len);
    if (rc != CWSGI_OK) {
        aborted_ = true;
        keep_alive_ = false;
        return rc;
    }
    body_sent_ += len;
    return CWSGI_OK;
}

int32_t Request::send_file(int fd, int64_t offset, int64_t count)
{
    if (state_ == State::fresh) return misuse(CWSGI_E_STATE, "RESP-STATE-2", "send_file before start_response");
    if (state_ == State::finished) return misuse(CWSGI_E_STATE, "RESP-STATE-3", "send_file after finish");
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0) return misuse(CWSGI_E_INVAL, "RESP-FILE-3", "send_file with a bad fd");
    if (offset < 0 || count < -1) return misuse(CWSGI_E_INVAL, "RESP-FILE-3", "negative offset or count");
    if (S_ISREG(st.st_mode)) {
        if (count == -1) count = std::max<int64_t>(0, st.st_size - offset);
        if (offset + count > st.st_size) return misuse(CWSGI_E_INVAL, "RESP-FILE-3", "range past the end of the file");
    } else if (count == -1) {
        return misuse(CWSGI_E_INVAL, "RESP-FILE-3", "count -1 needs a regular file");
    }
    if (count > 0 && (status_ == 204 || status_ == 304)) {
        return misuse(CWSGI_E_LENGTH, "RESP-NOBODY-1", "body bytes on a no-body response");
    }
    if (app_length_ && body_written_ + static_cast<uint64_t>(count) > static_cast<uint64_t>(*app_length_)) {
        return misuse(CWSGI_E_LENGTH, "RESP-LEN-2", "send_file passes Content-Length");
    }
    if (aborted_) return CWSGI_E_DISCONNECTED;
    if (state_ == State::started) {
        int32_t rc = commit(false);
        if (rc != CWSGI_OK) return rc;
    }
    if (count == 0) return CWSGI_OK;
    if (framing_.framing == Framing::no_body) {
        body_written_ += static_cast<uint64_t>(count);
        return CWSGI_OK;
    }
    // RESP-FILE-1: zero-copy when the adapter can; RESP-FILE-2: otherwise the same bytes
    // through a bounded read loop.
    int32_t rc = ex_.send_file(fd, offset, count);
    if (rc == CWSGI_OK) {
        body_written_ += static_cast<uint64_t>(count);
        body_sent_ += static_cast<uint64_t>(count);
        return rc;
    }
    if (rc != CWSGI_E_UNSUPPORTED) {
        aborted_ = true;
        keep_alive_ = false;
        return rc;
    }
    std::vector<unsigned char> buf(static_cast<size_t>(std::min<int64_t>(count, kFileChunk)));
    int64_t left = count, pos = offset;
    while (left > 0) {
        ssize_t n = ::pread(fd, buf.data(), static_cast<size_t>(std::min<int64_t>(left, static_cast<int64_t>(buf.size()))), pos);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            // The file shrank under us: the promised bytes cannot come (RESP-FILE-3).
            fail_after_commit("file ended before the promised count");
            return CWSGI_E_IO;
        }
        body_written_ += static_cast<uint64_t>(n);
        rc = ex_.send_body(buf.data(), static_cast<size_t>(n));
        if (rc != CWSGI_OK) {
            aborted_ = true;
            keep_alive_ = false;
            return rc;
        }
        body_sent_ += static_cast<uint64_t>(n);
        left -= n;
        pos += n;
    }
    return CWSGI_OK;
}

int32_t Request::finish()
{
    if (state_ == State::fresh) return misuse(CWSGI_E_STATE, "RESP-END-2", "finish before start_response");
    if (state_ == State::finished) return misuse(CWSGI_E_STATE, "RESP-STATE-3", "finish called twice");
    if (aborted_) {
        state_ = State::finished;
        return CWSGI_E_DISCONNECTED;
    }
    if (state_ == State::started) {
        int32_t rc = commit(true);
        if (rc != CWSGI_OK) {
            state_ = State::finished;
            return rc;
        }
    }
    bool head = framing_.framing == Framing::no_body;
    if (app_length_ && !head && body_written_ < static_cast<uint64_t>(*app_length_)) {
        // RESP-LEN-3: fewer bytes than promised: the client must see a cut response.
        misuse(CWSGI_E_LENGTH, "RESP-LEN-3",
               fmt::format("finish after {} of {} Content-Length bytes", body_written_, *app_length_));
        fail_after_commit("short body");
        state_ = State::finished;
        return CWSGI_E_LENGTH;
    }
    state_ = State::finished;
    int32_t rc = ex_.end_body();
    if (rc != CWSGI_OK) {
        aborted_ = true;
        keep_alive_ = false;
    }
    return rc;
}

int32_t Request::send_informational(uint32_t status, const cwsgi_header *headers, size_t n)
{
    if (state_ != State::fresh) {
        return misuse(CWSGI_E_STATE, "RESP-INFO-1", fmt::format("send_informational in state {}", state_name(state_)));
    }
    if (status < 102 || status > 199) {
        return misuse(CWSGI_E_STATUS, "RESP-INFO-2", fmt::format("informational status {}", status));
    }
    if (n > 0 && headers == nullptr) return CWSGI_E_INVAL;
    std::vector<Header> hs;
    for (size_t i = 0; i < n; ++i) {
        std::string_view name(headers[i].name ? headers[i].name : "", headers[i].name_len);
        std::string_view value(headers[i].value ? headers[i].value : "", headers[i].value_len);
        int32_t rc = check_response_header(name, value);
        if (rc != CWSGI_OK) return misuse(rc, "RESP-INFO-2", "informational header refused");
        hs.push_back({std::string(name), std::string(value)});
    }
    // RESP-INFO-3: HTTP/1.0 clients cannot take 1xx; servers without the capability drop it.
    if ((head_.http_major == 1 && head_.http_minor == 0) || !(ctx_.capabilities() & CWSGI_CAP_INFORMATIONAL)) {
        return CWSGI_DROPPED;
    }
    return ex_.send_informational(status, hs);
}

int32_t Request::is_disconnected() const { return ex_.disconnected() ? 1 : 0; }

int32_t Request::wait_fd(int fd, uint32_t events, int32_t timeout_ms)
{
    constexpr uint32_t kKnown = CWSGI_WAIT_READ | CWSGI_WAIT_WRITE;
    if (fd < -1) return misuse(CWSGI_E_INVAL, "THR-6", "wait_fd with a negative fd");
    if (fd == -1 && events != 0) return misuse(CWSGI_E_INVAL, "THR-6", "wait_fd on fd -1 with events");
    if ((fd >= 0 && events == 0) || (events & ~kKnown) != 0) {
        return misuse(CWSGI_E_INVAL, "THR-6", fmt::format("wait_fd with events 0x{:x}", events));
    }
    if (timeout_ms < -1) return misuse(CWSGI_E_INVAL, "THR-6", fmt::format("wait_fd with timeout {}", timeout_ms));
    return ex_.wait_fd(fd, events, timeout_ms);
}

int32_t Exchange::wait_fd(int fd, uint32_t events, int32_t timeout_ms)
{
    return poll_fd(fd, events, timeout_ms, -1);
}

int32_t poll_fd(int fd, uint32_t events, int32_t timeout_ms, int wake_fd)
{
    struct pollfd p[2] = {};
    p[0].fd = fd;
    p[0].events = static_cast<short>(((events & CWSGI_WAIT_READ) ? POLLIN : 0) | ((events & CWSGI_WAIT_WRITE) ? POLLOUT : 0));
    p[1].fd = wake_fd;
    p[1].events = POLLIN;
    nfds_t n = wake_fd >= 0 ? 2 : 1;
    // EINTR restarts the wait with what is left of the timeout, so a signal never shortens it.
    int64_t deadline = timeout_ms < 0 ? -1 : now_us() / 1000 + timeout_ms;
    for (;;) {
        int wait = -1;
        if (deadline >= 0) wait = static_cast<int>(std::max<int64_t>(0, deadline - now_us() / 1000));
        int rc = ::poll(p, n, wait);
        if (rc < 0 && errno == EINTR) continue;
        if (rc < 0) return CWSGI_E_IO;
        if (n == 2 && (p[1].revents & POLLIN)) return CWSGI_E_SHUTDOWN;
        if (rc == 0) return CWSGI_E_TIMEOUT;
        short r = p[0].revents;
        if (r & POLLNVAL) return CWSGI_E_INVAL;
        if (r & (POLLERR | POLLHUP)) return static_cast<int32_t>(events);
        uint32_t ready = ((r & POLLIN) ? CWSGI_WAIT_READ : 0) | ((r & POLLOUT) ? CWSGI_WAIT_WRITE : 0);
        if ((ready & events) != 0) return static_cast<int32_t>(ready & events);
    }
}

// ---------------------------------------------------------------------------------------------
// Running and ending

void Request::answer_error(uint32_t status)
{
    // The server's own answer replaces whatever the app started but did not commit.
    ErrorResponse err = make_error_response(status);
    ResponseHead head;
    head.status = status;
    head.reason = err.reason;
    head.headers = err.headers;
    bool is_head = head_.method == "HEAD";
    head.framing.framing = is_head ? Framing::no_body : Framing::length;
    head.framing.content_length = static_cast<int64_t>(err.body.size());
    head.framing.send_content_length = true;
    head.framing.keep_alive = false;
    keep_alive_ = false;
    state_ = State::committed;
    sent_status_ = status;
    if (ex_.commit(head) != CWSGI_OK) {
        aborted_ = true;
        state_ = State::finished;
        return;
    }
    if (!is_head) {
        if (ex_.send_body(err.body.data(), err.body.size()) != CWSGI_OK) {
            aborted_ = true;
            state_ = State::finished;
            return;
        }
        body_sent_ += err.body.size();
    }
    state_ = State::finished;
    if (ex_.end_body() != CWSGI_OK) aborted_ = true;
}

void Request::fail_after_commit(const char *why)
{
    if (!aborted_) {
        ctx_.log().error(fmt::format("request {} {} {}: response aborted after commit: {} (RESP-ERR-2)", id_,
                                     head_.method, head_.target.substr(0, 200), why));
        ex_.abort_body();
    }
    aborted_ = true;
    keep_alive_ = false;
}

void Request::run()
{
    // ENV-PATH-4: a path outside the mount point never reaches the app.
    const std::string &mount = ctx_.config().script_name;
    if (!mount.empty() && script_name_.empty()) {
        answer_error(404);
        end_once();
        return;
    }
    App *app = ctx_.app();
    if (app == nullptr) {
        answer_error(503);
        end_once();
        return;
    }
    reached_app_ = true;
    int32_t rc = app->handle(slot_);
    handle_result_ = rc;
    if (rc >= 0) {
        switch (state_) {
        case State::fresh:
            // RESP-END-2: returning success without a response is an app bug: 500.
            misuse(CWSGI_E_STATE, "RESP-END-2", "handle returned without start_response");
            handle_failed_ = true;
            answer_error(500);
            break;
        case State::started:
        case State::committed:
            finish(); // RESP-END-1: the implied finish
            break;
        case State::finished:
            break;
        }
    } else if (rc == CWSGI_E_DISCONNECTED && ex_.disconnected()) {
        // The client left and the app stopped: nothing failed on our side (LIFE-DISC-2).
        ctx_.log().info(fmt::format("request {} {} {}: client disconnected", id_, head_.method,
                                    head_.target.substr(0, 200)));
        aborted_ = true;
        keep_alive_ = false;
        if (state_ == State::committed) ex_.abort_body();
        state_ = State::finished;
    } else {
        ctx_.log().error(fmt::format("request {} {} {}: app failed: {} ({})", id_, head_.method,
                                     head_.target.substr(0, 200), cwsgi_err_name(rc), cwsgi_strerror(rc)));
        switch (state_) {
        case State::fresh:
        case State::started:
            // RESP-ERR-1 (or INPUT-LIMIT-2 when the body was the problem).
            handle_failed_ = true;
            answer_error(body_error_status_ ? body_error_status_ : 500);
            break;
        case State::committed:
            fail_after_commit("handle returned an error");
            state_ = State::finished;
            break;
        case State::finished:
            break;
        }
    }
    end_once();
}

void Request::complete(int32_t wire_outcome)
{
    wire_outcome_ = wire_outcome;
    end_once();
}

void Request::end_once()
{
    // Two votes: run() finished, and the adapter reported the wire outcome. Whoever comes
    // second runs on_request_end, so it runs exactly once and never while handle() runs.
    if (end_votes_.fetch_add(1, std::memory_order_acq_rel) != 1) return;
    if (handle_failed_) {
        outcome_ = CWSGI_E_APP;
    } else if (wire_outcome_ == CWSGI_E_DISCONNECTED || (wire_outcome_ < 0 && ex_.disconnected())) {
        outcome_ = CWSGI_E_DISCONNECTED;
    } else if (aborted_ || wire_outcome_ < 0) {
        outcome_ = ex_.disconnected() ? CWSGI_E_DISCONNECTED : CWSGI_E_ABORTED;
    } else {
        outcome_ = CWSGI_OK;
    }
    if (reached_app_) {
        if (App *app = ctx_.app()) app->request_end(slot_, outcome_);
    }
    if (ctx_.access_log().enabled()) {
        AccessRecord r;
        r.remote_addr = head_.remote_addr;
        r.method = head_.method;
        r.target = head_.target;
        r.protocol = protocol_;
        r.status = sent_status_;
        r.body_bytes = body_sent_;
        cwsgi_str v{};
        if (header_find("referer", 0, &v) == CWSGI_OK) r.referer = std::string_view(v.ptr, v.len);
        if (header_find("user-agent", 0, &v) == CWSGI_OK) r.user_agent = std::string_view(v.ptr, v.len);
        r.duration_us = now_us() - start_us_;
        ctx_.access_log().write(r);
    }
    // After this, the handle is dead for the app: calls return CWSGI_E_INVAL (RESP-STATE-1).
    slot_->self.store(nullptr, std::memory_order_release);
}

void log_rejected(Context &ctx, const RequestHead &head, const HeadCheck &check, uint64_t body_bytes_sent)
{
    ctx.log().info(fmt::format("rejected {} {} from {}: {} {} ({})", head.method.substr(0, 32),
                               head.target.substr(0, 200), head.remote_addr, check.status, check.reason, check.rule));
    if (ctx.access_log().enabled()) {
        AccessRecord r;
        r.remote_addr = head.remote_addr;
        r.method = head.method;
        r.target = head.target;
        std::string proto = fmt::format("HTTP/{}.{}", head.http_major, head.http_minor);
        r.protocol = proto;
        r.status = check.status;
        r.body_bytes = body_bytes_sent;
        ctx.access_log().write(r);
    }
}

} // namespace cwsgi::core
