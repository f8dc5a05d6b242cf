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
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

#include "app.hh"
#include "context.hh"
#include "futex.hh"
#include "probe.hh"

namespace cwsgi::core {

namespace {

int64_t now_us()
{
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// A view the core hands out: never a NULL pointer (ABI-TYPE-2).
cwsgi_str str_of(std::string_view s) { return {s.data() ? s.data() : "", s.size()}; }

std::string to_lower(std::string_view s)
{
    std::string out(s.size(), '\0');
    copy_lower(out.data(), s);
    return out;
}

// Whether lowercase header name `name` is `key` ("HTTP_CONTENT_TYPE" style, without the
// "HTTP_" prefix) once turned into a CGI key (ENV-HDR-3): '-' becomes '_', letters upper.
bool cgi_name_is(std::string_view name, std::string_view key)
{
    if (name.size() != key.size()) return false;
    for (size_t i = 0; i < name.size(); ++i) {
        char c = name[i];
        char k = c == '-' ? '_' : (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
        if (k != key[i]) return false;
    }
    return true;
}

// The header fields that the HTTP_* keys leave out (ENV-HDR-3/5): the two with keys of their
// own, and names with '_' ("X_Forwarded_For" would collide with "X-Forwarded-For", a known
// header-smuggling trick).
bool skipped_in_environ(std::string_view name)
{
    return name == "content-type" || name == "content-length" || name.find('_') != std::string_view::npos;
}

#define CWSGI_STR2(x) #x
#define CWSGI_STR(x) CWSGI_STR2(x)
constexpr std::string_view kAbiVersion = CWSGI_STR(CWSGI_ABI_MAJOR) "." CWSGI_STR(CWSGI_ABI_MINOR);
#undef CWSGI_STR
#undef CWSGI_STR2

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

constexpr size_t kFileChunk = 64 * 1024;

// Handle slots. A finished request's slot goes to the back of a FIFO and is reused only when
// more than kReuseDelay slots wait, so a stale handle stays harmless for at least that many
// later requests. The pool only grows to peak concurrency + kReuseDelay slots; the FIFO is
// linked through the slots themselves, so a request allocates nothing here once it is warm.
class HandlePool {
public:
    cwsgi_request *acquire()
    {
        std::lock_guard<FutexMutex> lock(mutex_);
        if (waiting_ > kReuseDelay) {
            cwsgi_request *s = head_;
            head_ = s->next_free;
            if (head_ == nullptr) tail_ = nullptr;
            --waiting_;
            s->next_free = nullptr;
            return s;
        }
        // New slots come kChunk at a time, so that the first kReuseDelay requests do not each
        // pay for an allocation. Never freed: a handle kept by an app must stay readable
        // memory (RESP-STATE-1).
        if (fresh_left_ == 0) {
            fresh_ = new cwsgi_request[kChunk];
            fresh_left_ = kChunk;
        }
        --fresh_left_;
        return fresh_++;
    }
    void release(cwsgi_request *s)
    {
        s->self.store(nullptr, std::memory_order_release);
        std::lock_guard<FutexMutex> lock(mutex_);
        s->next_free = nullptr;
        if (tail_ != nullptr) {
            tail_->next_free = s;
        } else {
            head_ = s;
        }
        tail_ = s;
        ++waiting_;
    }

private:
    static constexpr size_t kReuseDelay = 4096;
    static constexpr size_t kChunk = 64;
    FutexMutex mutex_;               // taken twice per request: see futex.hh
    cwsgi_request *fresh_ = nullptr; // slots never handed out yet
    size_t fresh_left_ = 0;
    cwsgi_request *head_ = nullptr; // oldest waiting slot
    cwsgi_request *tail_ = nullptr;
    size_t waiting_ = 0;
};

HandlePool &handle_pool()
{
    static HandlePool *pool = new HandlePool(); // never destroyed: handles may outlive main
    return *pool;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Construction and request facts

void RequestDeleter::operator()(Request *r) const
{
    // The Request sits in its own arena: take the arena out, end the Request, then free.
    Arena arena = std::move(r->head_.arena);
    r->~Request();
}

RequestPtr Request::create(Context &ctx, RequestHead head, const HeadCheck &check, Exchange &exchange)
{
    void *mem = head.arena.alloc(sizeof(Request));
    if (mem == nullptr) return nullptr;
    RequestPtr req(new (mem) Request(ctx, std::move(head), check, exchange));
    if (!req->build_facts()) return nullptr;
    return req;
}

Request::Request(Context &ctx, RequestHead &&head, const HeadCheck &check, Exchange &exchange)
    : ctx_(ctx), slot_(handle_pool().acquire()), head_(std::move(head)), check_(check), ex_(exchange)
{
    slot_->self.store(this, std::memory_order_release);
    id_ = ctx_.next_request_id();
    // The clock is read only for the access log's duration.
    if (ctx_.access_log().enabled()) start_us_ = now_us();
    keep_alive_ = check_.keep_alive;
}

Request::~Request() { handle_pool().release(slot_); }

Request *Request::from(cwsgi_request *r) { return r == nullptr ? nullptr : r->self.load(std::memory_order_acquire); }

std::string_view Request::keep_terminated(std::string_view s)
{
    // Views into the head end at a NUL when they end where the copied string ends; a part of
    // one (the path before '?', a host before ':') needs its own terminated copy.
    if (s.data() == nullptr) return std::string_view("");
    if (s.data()[s.size()] == '\0') return s;
    return head_.arena.copy(s);
}

bool Request::build_facts()
{
    // ENV-HDR-1: HTTP/2's :authority is the first field, named host; a client host field is
    // left out (validate_request_head refused one that differs, REQ-H2-1).
    if (head_.http_major == 2 && !head_.authority.empty()) {
        if (!headers_.reserve(head_.arena, head_.headers.size() + 1)) return false;
        headers_.push(head_.arena, {"host", keep_terminated(head_.authority)});
        for (const Field &h : head_.headers) {
            if (h.name != "host") headers_.push(head_.arena, h);
        }
    } else {
        headers_ = head_.headers;
    }
    // ENV-PATH-*: the path and query validate_request_head split off the target; the path
    // is decoded only when it has an escape, then the mount point (SCRIPT_NAME) moves out of
    // it. Validation refused paths that do not decode.
    raw_path_ = keep_terminated(check_.raw_path);
    query_ = keep_terminated(check_.query);
    std::string_view decoded = raw_path_;
    if (check_.path_escaped) {
        auto d = percent_decode(raw_path_, head_.arena);
        if (!d) return false;
        decoded = *d;
    }
    const std::string &mount = ctx_.config().script_name;
    if (!mount.empty() && decoded.substr(0, mount.size()) == mount &&
        (decoded.size() == mount.size() || decoded[mount.size()] == '/')) {
        script_name_ = mount;
        path_info_ = decoded.substr(mount.size());
    } else {
        script_name_ = "";
        path_info_ = decoded;
    }
    scheme_ = check_.scheme.empty() ? std::string_view("http") : check_.scheme;
    if (head_.http_major == 2) {
        protocol_ = "HTTP/2";
    } else if (head_.http_major == 1 && head_.http_minor <= 1) {
        protocol_ = head_.http_minor == 1 ? "HTTP/1.1" : "HTTP/1.0";
    } else {
        char buf[32];
        int n = std::snprintf(buf, sizeof buf, "HTTP/%u.%u", head_.http_major, head_.http_minor);
        protocol_ = head_.arena.copy(std::string_view(buf, n > 0 ? static_cast<size_t>(n) : 0));
    }
    // ENV-KEYS-5: validate_request_head picked and split the authority.
    server_name_ = keep_terminated(check_.server_name);
    server_port_ = keep_terminated(check_.server_port);
    return true;
}

std::string_view Request::request_id_text()
{
    if (id_text_.empty()) {
        char buf[24];
        auto r = std::to_chars(buf, buf + sizeof buf, id_);
        id_text_ = head_.arena.copy(std::string_view(buf, static_cast<size_t>(r.ptr - buf)));
    }
    return id_text_;
}

std::string_view Request::content_length_text()
{
    if (length_text_.empty()) {
        char buf[24];
        auto r = std::to_chars(buf, buf + sizeof buf, check_.content_length);
        length_text_ = head_.arena.copy(std::string_view(buf, static_cast<size_t>(r.ptr - buf)));
    }
    return length_text_;
}

bool Request::http_environ(std::string_view key, std::string_view &value)
{
    // ENV-HDR-3/4: the fields whose CGI key is `key`, joined with ", " ("; " for Cookie) in
    // arrival order. One field (the common case) is handed out as it is, without a copy.
    size_t count = 0, total = 0;
    const Field *first = nullptr;
    for (const Field &h : headers_) {
        if (skipped_in_environ(h.name) || !cgi_name_is(h.name, key)) continue;
        if (count++ == 0) first = &h;
        total += h.value.size() + 2;
    }
    if (count == 0) return false;
    if (count == 1) {
        value = first->value;
        return true;
    }
    auto *out = static_cast<char *>(head_.arena.alloc(total + 1));
    if (out == nullptr) return false;
    size_t n = 0;
    std::string_view sep = first->name == "cookie" ? "; " : ", ";
    for (const Field &h : headers_) {
        if (skipped_in_environ(h.name) || !cgi_name_is(h.name, key)) continue;
        if (n > 0) {
            std::memcpy(out + n, sep.data(), sep.size());
            n += sep.size();
        }
        std::memcpy(out + n, h.value.data(), h.value.size());
        n += h.value.size();
    }
    out[n] = '\0';
    value = std::string_view(out, n);
    return true;
}

void Request::build_environ()
{
    // The whole environ in spec/environ.md's order, built once and only for environ_at:
    // environ_get answers from the facts directly.
    if (environ_built_) return;
    environ_built_ = true;
    Arena &a = head_.arena;
    auto &e = environ_;
    e.reserve(a, 20 + headers_.size());
    e.push(a, {"REQUEST_METHOD", head_.method});
    e.push(a, {"SCRIPT_NAME", script_name_});
    e.push(a, {"PATH_INFO", path_info_});
    e.push(a, {"QUERY_STRING", query_});
    // ENV-KEYS-3: CONTENT_TYPE and CONTENT_LENGTH appear only when the client sent them.
    if (check_.has_content_type) e.push(a, {"CONTENT_TYPE", check_.content_type});
    if (check_.body == BodyKind::length || (check_.body == BodyKind::none && check_.content_length == 0)) {
        e.push(a, {"CONTENT_LENGTH", content_length_text()});
    }
    e.push(a, {"SERVER_NAME", server_name_});
    e.push(a, {"SERVER_PORT", server_port_});
    e.push(a, {"SERVER_PROTOCOL", protocol_});
    e.push(a, {"REQUEST_URI", head_.target});
    e.push(a, {"REMOTE_ADDR", head_.remote_addr});
    e.push(a, {"REMOTE_PORT", head_.remote_port});
    e.push(a, {"cwsgi.url_scheme", scheme_});
    e.push(a, {"cwsgi.raw_path", raw_path_});
    e.push(a, {"cwsgi.local_addr", head_.local_addr});
    e.push(a, {"cwsgi.local_port", head_.local_port});
    e.push(a, {"cwsgi.request_id", request_id_text()});
    e.push(a, {"cwsgi.version", kAbiVersion});
    // ENV-HDR-3/4: one HTTP_* key per distinct name, in order of first appearance.
    for (size_t i = 0; i < headers_.size(); ++i) {
        const Field &h = headers_[i];
        if (skipped_in_environ(h.name)) continue;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; ++j) seen = headers_[j].name == h.name;
        if (seen) continue;
        auto *key = static_cast<char *>(a.alloc(5 + h.name.size() + 1));
        if (key == nullptr) break;
        std::memcpy(key, "HTTP_", 5);
        for (size_t k = 0; k < h.name.size(); ++k) {
            char c = h.name[k];
            key[5 + k] = c == '-' ? '_' : (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
        }
        key[5 + h.name.size()] = '\0';
        std::string_view k(key, 5 + h.name.size());
        std::string_view v;
        http_environ(k.substr(5), v);
        e.push(a, {k, v});
    }
}

int32_t Request::environ_get(const char *key, cwsgi_str *out)
{
    if (key == nullptr || out == nullptr) return CWSGI_E_INVAL;
    std::string_view k = key, v;
    bool found = true;
    if (k.substr(0, 5) == "HTTP_") {
        found = http_environ(k.substr(5), v);
    } else if (k == "REQUEST_METHOD") {
        v = head_.method;
    } else if (k == "SCRIPT_NAME") {
        v = script_name_;
    } else if (k == "PATH_INFO") {
        v = path_info_;
    } else if (k == "QUERY_STRING") {
        v = query_;
    } else if (k == "CONTENT_TYPE") {
        found = check_.has_content_type;
        v = check_.content_type;
    } else if (k == "CONTENT_LENGTH") {
        found = check_.body == BodyKind::length || (check_.body == BodyKind::none && check_.content_length == 0);
        if (found) v = content_length_text();
    } else if (k == "SERVER_NAME") {
        v = server_name_;
    } else if (k == "SERVER_PORT") {
        v = server_port_;
    } else if (k == "SERVER_PROTOCOL") {
        v = protocol_;
    } else if (k == "REQUEST_URI") {
        v = head_.target;
    } else if (k == "REMOTE_ADDR") {
        v = head_.remote_addr;
    } else if (k == "REMOTE_PORT") {
        v = head_.remote_port;
    } else if (k == "cwsgi.url_scheme") {
        v = scheme_;
    } else if (k == "cwsgi.raw_path") {
        v = raw_path_;
    } else if (k == "cwsgi.local_addr") {
        v = head_.local_addr;
    } else if (k == "cwsgi.local_port") {
        v = head_.local_port;
    } else if (k == "cwsgi.request_id") {
        v = request_id_text();
    } else if (k == "cwsgi.version") {
        v = kAbiVersion;
    } else {
        found = false;
    }
    if (!found) return CWSGI_E_NOTFOUND;
    *out = str_of(v);
    return CWSGI_OK;
}

int32_t Request::environ_at(size_t index, cwsgi_str *key, cwsgi_str *value)
{
    if (key == nullptr || value == nullptr) return CWSGI_E_INVAL;
    build_environ();
    if (index >= environ_.size()) return CWSGI_E_NOTFOUND;
    *key = str_of(environ_[index].name);
    *value = str_of(environ_[index].value);
    return CWSGI_OK;
}

int32_t Request::header_at(size_t index, cwsgi_str *name, cwsgi_str *value)
{
    if (name == nullptr || value == nullptr) return CWSGI_E_INVAL;
    if (index >= headers_.size()) return CWSGI_E_NOTFOUND;
    *name = str_of(headers_[index].name);
    *value = str_of(headers_[index].value);
    return CWSGI_OK;
}

int32_t Request::header_find(const char *name, size_t nth, cwsgi_str *value)
{
    if (name == nullptr || value == nullptr) return CWSGI_E_INVAL;
    for (const Field &h : headers_) {
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

int32_t Request::misuse(int32_t code, const char *rule, std::string_view what)
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
                // EXT-TRAILERS-2: a field that frames, routes or authorizes has no place in a
                // trailer section; the body is malformed (400 when nothing is committed).
                if (is_forbidden_trailer(h.name)) {
                    body_error_ = CWSGI_E_BODY;
                    body_error_status_ = 400;
                    return body_error_;
                }
                trailers_lc_.push_back({to_lower(h.name), h.value});
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

int32_t Request::start_response(uint32_t status, const char *reason, const cwsgi_header *headers, size_t n,
                                uint32_t flags)
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
    // The standard phrases are known to be clean; only the app's own is checked.
    std::string_view reason_text = reason ? std::string_view(reason) : std::string_view(reason_phrase(status));
    if (reason && reason_text.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) {
        return misuse(CWSGI_E_HEADER, "RESP-START-3", "reason phrase with CR, LF or NUL");
    }
    // One pass checks every header and measures what to keep; the copy follows only when all
    // passed, so a refused call leaves the arena as it was. The kept bytes go into one block,
    // NUL-terminated for adapters that hand them to C libraries (ResponseHead).
    std::optional<int64_t> length;
    size_t kept = 0, bytes = 0;
    bool repeated_length = false;
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
                          fmt::format("header '{}' refused", name.substr(0, 64)));
        }
        if (is_content_length(name)) {
            auto v = parse_content_length(value);
            if (!v) return misuse(CWSGI_E_HEADER, "RESP-LEN-1", "Content-Length is not a number");
            if (length && *length != *v)
                return misuse(CWSGI_E_HEADER, "RESP-LEN-1", "two different Content-Length values");
            if (status == 204) return misuse(CWSGI_E_FORBIDDEN, "RESP-NOBODY-2", "Content-Length on a 204");
            if (length) {
                repeated_length = true; // the same value twice: keep one
                continue;
            }
            length = v;
        }
        ++kept;
        bytes += name.size() + 1 + value.size() + 1;
    }
    Arena &a = head_.arena;
    FieldList hs;
    // Two more for the Content-Length and Connection fields commit() may add.
    if (!hs.reserve(a, kept + 2)) return CWSGI_E_NOMEM;
    char *out = bytes ? static_cast<char *>(a.alloc(bytes)) : nullptr;
    if (bytes && out == nullptr) return CWSGI_E_NOMEM;
    auto put = [&out](std::string_view s) {
        char *p = out;
        copy_bytes(p, s.data(), s.size());
        p[s.size()] = '\0';
        out += s.size() + 1;
        return std::string_view(p, s.size());
    };
    bool have_length = false;
    for (size_t i = 0; i < n; ++i) {
        std::string_view name(headers[i].name ? headers[i].name : "", headers[i].name_len);
        std::string_view value(headers[i].value ? headers[i].value : "", headers[i].value_len);
        if (repeated_length && is_content_length(name)) {
            if (have_length) continue;
            have_length = true;
        }
        std::string_view kept_name = put(name);
        hs.push(a, {kept_name, put(value)});
    }
    status_ = status;
    reason_ = reason ? a.copy(reason_text) : reason_text;
    resp_headers_ = hs;
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
    bool no_body_status = status_ == 204 || status_ == 304;
    // start_response reserved room for these two, so the pushes cannot fail.
    if (framing_.send_content_length && !app_length_ && !no_body_status) {
        char buf[24];
        auto r = std::to_chars(buf, buf + sizeof buf, framing_.content_length);
        resp_headers_.push(
            head_.arena, {"Content-Length", head_.arena.copy(std::string_view(buf, static_cast<size_t>(r.ptr - buf)))});
    }
    if (!framing_.keep_alive) {
        resp_headers_.push(head_.arena, {"Connection", "close"});
    } else if (head_.http_major == 1 && head_.http_minor == 0) {
        resp_headers_.push(head_.arena, {"Connection", "keep-alive"}); // RESP-FRAME-6: 1.0 must be told
    }
    head.headers = std::span<const Field>(resp_headers_.begin(), resp_headers_.size());
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
        return misuse(
            CWSGI_E_LENGTH, "RESP-LEN-2",
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
        ssize_t n = ::pread(fd, buf.data(),
                            static_cast<size_t>(std::min<int64_t>(left, static_cast<int64_t>(buf.size()))), pos);
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

int32_t Exchange::wait_fd(int fd, uint32_t events, int32_t timeout_ms) { return poll_fd(fd, events, timeout_ms, -1); }

int32_t poll_fd(int fd, uint32_t events, int32_t timeout_ms, int wake_fd)
{
    struct pollfd p[2] = {};
    p[0].fd = fd;
    p[0].events =
        static_cast<short>(((events & CWSGI_WAIT_READ) ? POLLIN : 0) | ((events & CWSGI_WAIT_WRITE) ? POLLOUT : 0));
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
    // The server's own answer replaces whatever the app started but did not commit. Its
    // fields go to the arena, because the adapter may keep the ResponseHead.
    ErrorResponse err = make_error_response(status);
    Arena &a = head_.arena;
    FieldList fields;
    fields.reserve(a, err.headers.size());
    for (const Header &h : err.headers) fields.push(a, {a.copy(h.name), a.copy(h.value)});
    ResponseHead head;
    head.status = status;
    head.reason = reason_phrase(status);
    head.headers = std::span<const Field>(fields.begin(), fields.size());
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
    if (!ctx_.config().script_name.empty() && script_name_.empty()) {
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
    // The master's record of what this worker serves (lib/arbiter), for a crash or a hang.
    if (const WorkerProbe *probe = worker_probe())
        probe_token_ = probe->request_started(id_, head_.method, head_.target);
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
        case State::finished: break;
        }
    } else if (rc == CWSGI_E_DISCONNECTED && ex_.disconnected()) {
        // The client left and the app stopped: nothing failed on our side (LIFE-DISC-2).
        ctx_.log().info(
            fmt::format("request {} {} {}: client disconnected", id_, head_.method, head_.target.substr(0, 200)));
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
        case State::finished: break;
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
        r.status = ex_.response_sent() ? sent_status_ : 0;
        r.body_bytes = body_sent_;
        for (const Field &h : headers_) {
            if (r.referer.empty() && h.name == "referer") r.referer = h.value;
            if (r.user_agent.empty() && h.name == "user-agent") r.user_agent = h.value;
        }
        r.duration_us = now_us() - start_us_;
        ctx_.access_log().write(r);
    }
    if (const WorkerProbe *probe = worker_probe()) probe->request_ended(probe_token_);
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
        char proto[32];
        int n = std::snprintf(proto, sizeof proto, "HTTP/%u.%u", head.http_major, head.http_minor);
        r.protocol = std::string_view(proto, n > 0 ? static_cast<size_t>(n) : 0);
        r.status = check.status;
        r.body_bytes = body_bytes_sent;
        ctx.access_log().write(r);
    }
}

} // namespace cwsgi::core
