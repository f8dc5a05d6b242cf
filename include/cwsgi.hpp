// cwsgi.hpp: the optional header-only C++20 layer over cwsgi.h.
//
// It gives a C++ app request and response objects built on std::string_view, text and JSON
// helpers, a router with path parameters and mountable groups (Flask blueprints' idea, with
// SCRIPT_NAME/PATH_INFO kept right), an App base class and one macro, CWSGI_APP, that exports
// an App subclass through the C ABI. Nothing here is part of the ABI: the header only calls the
// function table of cwsgi.h, so an app built with it loads into every server.
//
// Exceptions never cross the ABI (ABI rule 5). The trampolines that CWSGI_APP generates are
// noexcept and catch everything at the edge:
//   - an exception thrown by handle() before the response is committed becomes a 500 answered
//     by the server (the trampoline returns CWSGI_E_APP); a cwsgi::HttpError becomes the status
//     and body it carries;
//   - after commit the trampoline returns CWSGI_E_APP and the server aborts the response on the
//     wire (RESP-ERR-2), so a client never mistakes a cut body for a whole one;
//   - a cwsgi::Error (a failed call into the server, e.g. a write to a client that went away)
//     returns its own code, so the server sees CWSGI_E_BODY or CWSGI_E_DISCONNECTED as such;
//   - every exception is logged through api->log with its what();
//   - an exception in the constructor, init() or worker_start() becomes a CWSGI_E_APP return
//     with what() in errbuf, so the server's refusal names the reason.
//
// Threads: a Request and its Response belong to the thread running that request's handle()
// (THR-2). A Router is immutable once the app serves requests and may be read from many
// threads. Whether the App's own state is thread-safe is the App's declaration, thread_safety().
// Since: 1.0, for everything in this file not marked otherwise (the settings accessors: 1.2).
//
// A whole app:
//   #include <cwsgi.hpp>
//   struct Hello : cwsgi::App {
//       static constexpr uint32_t thread_safety() { return CWSGI_THREADS_SAFE; }
//       Hello() {
//           router().get("/hello/<name>", [](cwsgi::Request &req, cwsgi::Response &res) {
//               res.text("Hello, " + std::string(*req.param("name")) + "!\n");
//           });
//       }
//   };
//   CWSGI_APP(Hello, "hello", "1.0");
#pragma once

#include "cwsgi.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace cwsgi {

// ------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------

/// A call into the server failed with a CWSGI status code (e.g. a write after the client left).
/// The CWSGI_APP trampoline returns code() to the server, which then answers or aborts as the
/// spec says for that code (CWSGI_E_BODY before commit becomes 413, RESP-ERR-1/2).
class Error : public std::runtime_error {
public:
    /// @param code a negative CWSGI_E_* code; @param context what was being done ("write").
    Error(int32_t code, const std::string &context)
        : std::runtime_error(context + ": " + cwsgi_strerror(code)), code_(code)
    {
    }
    /// The CWSGI status code the server returned.
    int32_t code() const noexcept { return code_; }

private:
    int32_t code_;
};

/// The standard reason phrase of an HTTP status ("Not Found"), or "Unknown" for codes it lacks:
/// cwsgi_reason_phrase of cwsgi.h, so the C++ layer and the server core never disagree.
/// Threads: any.
inline std::string_view reason_phrase(uint32_t status) noexcept { return cwsgi_reason_phrase(status); }

/// Thrown by a handler to answer with an HTTP error status: before commit the trampoline sends
/// `status` with `body` (default: the reason phrase and a newline) and `content_type`; after
/// commit it is an ordinary failure (the response is aborted). what() is the body.
class HttpError : public std::runtime_error {
public:
    /// @param status 400..599 normally (200..599 accepted; anything else is sent as 500).
    /// @param body the response body; empty means "<reason phrase>\n".
    /// @param content_type the body's media type.
    explicit HttpError(uint32_t status, std::string body = {}, std::string content_type = "text/plain; charset=utf-8")
        : std::runtime_error(body.empty() ? std::string(reason_phrase(status)) + "\n" : body), status_(status),
          content_type_(std::move(content_type))
    {
    }
    uint32_t status() const noexcept { return status_; }
    const std::string &content_type() const noexcept { return content_type_; }
    /// The body to send (the same bytes as what()).
    std::string_view body() const noexcept { return what(); }

private:
    uint32_t status_;
    std::string content_type_;
};

// ------------------------------------------------------------------------------------------
// Text helpers
// ------------------------------------------------------------------------------------------

namespace detail {

template <class A> struct AppGlue;

inline std::string_view sv(const cwsgi_str &s) noexcept
{
    return s.ptr != nullptr ? std::string_view(s.ptr, s.len) : std::string_view();
}

inline int hex_value(char c) noexcept
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

inline char ascii_lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

/// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlongs, no surrogates,
/// nothing above U+10FFFF), or 0 when the byte there does not start one.
inline size_t utf8_sequence_length(std::string_view s, size_t i) noexcept
{
    auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = at(i);
    size_t n;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) {
            lo = 0xA0; // overlong
        } else if (c == 0xED) {
            hi = 0x9F; // surrogates
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) {
            lo = 0x90; // overlong
        } else if (c == 0xF4) {
            hi = 0x8F; // above U+10FFFF
        }
    } else {
        return 0;
    }
    if (i + n > s.size()) {
        return 0;
    }
    if (at(i + 1) < lo || at(i + 1) > hi) {
        return 0;
    }
    for (size_t k = 2; k < n; ++k) {
        if (at(i + k) < 0x80 || at(i + k) > 0xBF) {
            return 0;
        }
    }
    return n;
}

} // namespace detail

/// Escapes bytes for use inside a JSON string literal (the quotes are not added).
/// '"' and '\\' get a backslash; \b \f \n \r \t their short forms; other bytes below 0x20 become
/// \u00XX. Well-formed UTF-8 passes through unchanged. A byte that is not part of well-formed
/// UTF-8 becomes \u00XX, i.e. it is read as Latin-1, so that any byte string (a header value
/// with obs-text, a path with raw bytes) yields valid JSON and no byte is lost silently.
/// @return the escaped text. Threads: any.
inline std::string json_escape(std::string_view in)
{
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(in.size() + 8);
    for (size_t i = 0; i < in.size();) {
        unsigned char c = static_cast<unsigned char>(in[i]);
        if (c >= 0x80) {
            size_t n = detail::utf8_sequence_length(in, i);
            if (n > 0) {
                out.append(in.substr(i, n));
                i += n;
                continue;
            }
        }
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20 || c >= 0x80) {
                out += "\\u00";
                out += kHex[c >> 4];
                out += kHex[c & 0xF];
            } else {
                out += static_cast<char>(c);
            }
        }
        ++i;
    }
    return out;
}

/// Decodes application/x-www-form-urlencoded text: "%XX" becomes the byte, '+' a space when
/// `plus_as_space`. A '%' not followed by two hex digits is kept as it is (lenient, as
/// Python's urllib.parse.unquote). @return the decoded bytes. Threads: any.
inline std::string url_decode(std::string_view in, bool plus_as_space = true)
{
    std::string out;
    out.reserve(in.size());
    for (size_t i = 0; i < in.size(); ++i) {
        char c = in[i];
        if (c == '%' && i + 2 < in.size()) {
            int hi = detail::hex_value(in[i + 1]);
            int lo = detail::hex_value(in[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out += static_cast<char>((hi << 4) | lo);
                i += 2;
                continue;
            }
        }
        out += (c == '+' && plus_as_space) ? ' ' : c;
    }
    return out;
}

/// Splits a query string ("a=1&b=x+y&c") into decoded (name, value) pairs in order, duplicates
/// kept; a field without '=' has an empty value; empty fields ("a=1&&b=2") are skipped; ';' is
/// not a separator (WHATWG URL). @return the pairs. Threads: any.
inline std::vector<std::pair<std::string, std::string>> parse_query(std::string_view qs)
{
    std::vector<std::pair<std::string, std::string>> out;
    while (!qs.empty()) {
        size_t amp = qs.find('&');
        std::string_view field = qs.substr(0, amp);
        qs = amp == std::string_view::npos ? std::string_view() : qs.substr(amp + 1);
        if (field.empty()) {
            continue;
        }
        size_t eq = field.find('=');
        if (eq == std::string_view::npos) {
            out.emplace_back(url_decode(field), std::string());
        } else {
            out.emplace_back(url_decode(field.substr(0, eq)), url_decode(field.substr(eq + 1)));
        }
    }
    return out;
}

/// ASCII case-insensitive equality (header names). Threads: any.
inline bool iequals(std::string_view a, std::string_view b) noexcept
{
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
        if (detail::ascii_lower(a[i]) != detail::ascii_lower(b[i])) {
            return false;
        }
    }
    return true;
}

// ------------------------------------------------------------------------------------------
// Request
// ------------------------------------------------------------------------------------------

/// A lazy range over an indexed list of the API (header_at, environ_at): yields
/// std::pair<std::string_view, std::string_view> until the server answers CWSGI_E_NOTFOUND.
/// Ownership: the views are borrowed from the request (valid until on_request_end returns).
class PairRange {
public:
    using Fn = int32_t (*)(cwsgi_request *, size_t, cwsgi_str *, cwsgi_str *);
    using value_type = std::pair<std::string_view, std::string_view>;

    class iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = PairRange::value_type;
        using difference_type = std::ptrdiff_t;
        using pointer = const value_type *;
        using reference = const value_type &;

        iterator() = default;
        iterator(Fn fn, cwsgi_request *req) : fn_(fn), req_(req) { load(); }
        reference operator*() const { return cur_; }
        pointer operator->() const { return &cur_; }
        iterator &operator++()
        {
            ++index_;
            load();
            return *this;
        }
        iterator operator++(int)
        {
            iterator old = *this;
            ++*this;
            return old;
        }
        bool operator==(const iterator &o) const { return done_ == o.done_ && (done_ || index_ == o.index_); }

    private:
        void load()
        {
            cwsgi_str k{"", 0};
            cwsgi_str v{"", 0};
            if (fn_ == nullptr || fn_(req_, index_, &k, &v) != CWSGI_OK) {
                done_ = true;
                return;
            }
            done_ = false;
            cur_ = {detail::sv(k), detail::sv(v)};
        }
        Fn fn_ = nullptr;
        cwsgi_request *req_ = nullptr;
        size_t index_ = 0;
        bool done_ = true;
        value_type cur_;
    };

    PairRange(Fn fn, cwsgi_request *req) : fn_(fn), req_(req) {}
    iterator begin() const { return iterator(fn_, req_); }
    iterator end() const { return iterator(); }

private:
    Fn fn_;
    cwsgi_request *req_;
};

class Router;

/// One request as the app sees it: environ, headers, body input, and the path parameters the
/// router matched. A view over the server's request: cheap to construct, not copyable.
/// Ownership: every string_view it returns is borrowed from the request and valid until
/// on_request_end returns, except script_name(), which lives as long as this object.
/// Threads: the thread running the request's handle() (THR-2), except is_disconnected() and
/// log(), which any thread may call.
class Request {
public:
    /// Wraps the server's handle. @param api the table the app got in init; @param req the
    /// handle passed to handle() or on_request_end.
    Request(const cwsgi_server_api *api, cwsgi_request *req) : api_(api), req_(req)
    {
        info_.struct_size = sizeof info_;
        if (api_->request_info(req_, &info_) != CWSGI_OK) {
            info_ = cwsgi_request_info{};
            info_.content_length = CWSGI_LENGTH_UNKNOWN;
        }
        script_name_ = detail::sv(info_.script_name);
        path_ = detail::sv(info_.path_info);
    }
    Request(const Request &) = delete;
    Request &operator=(const Request &) = delete;

    /// REQUEST_METHOD as sent ("GET").
    std::string_view method() const noexcept { return detail::sv(info_.method); }
    /// PATH_INFO (decoded), relative to script_name(): within a mounted group, the part after
    /// the group's prefix ("" when the request names the prefix itself).
    std::string_view path() const noexcept { return path_; }
    /// SCRIPT_NAME: the server's mount point plus the prefixes of the groups the router passed.
    std::string_view script_name() const noexcept { return script_name_; }
    /// QUERY_STRING, raw (still percent-encoded), without '?'.
    std::string_view query() const noexcept { return detail::sv(info_.query_string); }
    /// REQUEST_URI: the raw request-target.
    std::string_view target() const noexcept { return detail::sv(info_.target); }
    /// SERVER_PROTOCOL ("HTTP/1.1").
    std::string_view protocol() const noexcept { return detail::sv(info_.protocol); }
    /// cwsgi.url_scheme ("http" or "https").
    std::string_view scheme() const noexcept { return detail::sv(info_.scheme); }
    /// REMOTE_ADDR ("" for a unix socket peer).
    std::string_view remote_addr() const noexcept { return detail::sv(info_.remote_addr); }
    /// The body length when the client declared it, std::nullopt for chunked or HTTP/2 bodies.
    std::optional<int64_t> content_length() const noexcept
    {
        if (info_.content_length < 0) {
            return std::nullopt;
        }
        return info_.content_length;
    }
    /// cwsgi.request_id: unique in this process.
    uint64_t id() const noexcept { return info_.request_id; }
    /// All the facts of request_info (ENV-INFO-1).
    const cwsgi_request_info &info() const noexcept { return info_; }

    /// The `nth` request header called `name` (ASCII case-insensitive), or nullopt (ENV-HDR-2).
    std::optional<std::string_view> header(std::string_view name, size_t nth = 0) const
    {
        std::string key(name);
        cwsgi_str v{"", 0};
        if (api_->header_find(req_, key.c_str(), nth, &v) != CWSGI_OK) {
            return std::nullopt;
        }
        return detail::sv(v);
    }
    /// The request headers in arrival order, names lowercased, duplicates kept (ENV-HDR-1):
    /// `for (auto [name, value] : req.headers())`.
    PairRange headers() const { return PairRange(api_->header_at, req_); }

    /// The server's environ value for `key` ("HTTP_USER_AGENT"), or nullopt (ENV-KEYS-1).
    /// Unlike script_name()/path(), the environ is the server's and ignores router mounts.
    std::optional<std::string_view> environ(std::string_view key) const
    {
        std::string k(key);
        cwsgi_str v{"", 0};
        if (api_->environ_get(req_, k.c_str(), &v) != CWSGI_OK) {
            return std::nullopt;
        }
        return detail::sv(v);
    }
    /// Every environ entry in the server's order (ENV-KEYS-2).
    PairRange environ_items() const { return PairRange(api_->environ_at, req_); }

    /// The first query field called `name` (names compared after decoding), decoded, or nullopt.
    std::optional<std::string> query_param(std::string_view name) const
    {
        for (auto &[k, v] : parse_query(query())) {
            if (k == name) {
                return std::move(v);
            }
        }
        return std::nullopt;
    }
    /// All query fields, decoded, in order (see parse_query).
    std::vector<std::pair<std::string, std::string>> query_params() const { return parse_query(query()); }

    /// The router's path parameter `name` ("<id>" in "/items/<id>"), or nullopt.
    std::optional<std::string_view> param(std::string_view name) const noexcept
    {
        for (const auto &[k, v] : params_) {
            if (k == name) {
                return v;
            }
        }
        return std::nullopt;
    }
    /// Every path parameter of the matched route, in pattern order.
    const std::vector<std::pair<std::string_view, std::string_view>> &params() const noexcept { return params_; }

    /// Reads body bytes into buf (INPUT-READ-1). @return bytes read (1..size), 0 at the end of
    /// the body. @throws Error with CWSGI_E_BODY, CWSGI_E_DISCONNECTED or CWSGI_E_TIMEOUT.
    size_t read(void *buf, size_t size)
    {
        int64_t n = api_->read(req_, buf, size);
        if (n < 0) {
            throw Error(static_cast<int32_t>(n), "read");
        }
        return static_cast<size_t>(n);
    }
    /// Reads the whole body into memory, refusing more than `limit` bytes.
    /// @throws HttpError(413) when the declared or actual body is over `limit` (nothing more is
    ///         read); Error on a read failure. Threads: the request's thread.
    std::string read_all(size_t limit = size_t{16} << 20)
    {
        std::string body;
        if (auto cl = content_length()) {
            if (static_cast<uint64_t>(*cl) > limit) {
                throw HttpError(413);
            }
            body.reserve(static_cast<size_t>(*cl));
        }
        char buf[16384];
        for (;;) {
            size_t n = read(buf, sizeof buf);
            if (n == 0) {
                return body;
            }
            if (body.size() + n > limit) {
                throw HttpError(413);
            }
            body.append(buf, n);
        }
    }

    /// Waits until the app's own descriptor `fd` is ready for `events` (CWSGI_WAIT_READ and/or
    /// CWSGI_WAIT_WRITE), through the server: a cooperative app's fiber yields meanwhile (THR-6).
    /// On a 1.0 server, which has no wait_fd and runs every app on threads, it polls here.
    /// @param timeout_ms at most this long; -1 without a limit.
    /// @return the ready events, or 0 when the timeout passed.
    /// @throws Error with CWSGI_E_SHUTDOWN at the graceful deadline, or another failure.
    /// Since: 1.1 (works on 1.0 servers too).
    uint32_t wait_fd(int fd, uint32_t events, int32_t timeout_ms = -1) const
    {
        int32_t rc;
        if (api_->struct_size >= offsetof(cwsgi_server_api, wait_fd) + sizeof(cwsgi_server_api::wait_fd)) {
            rc = api_->wait_fd(req_, fd, events, timeout_ms);
        } else {
            struct pollfd p = {fd,
                               static_cast<short>(((events & CWSGI_WAIT_READ) ? POLLIN : 0) |
                                                  ((events & CWSGI_WAIT_WRITE) ? POLLOUT : 0)),
                               0};
            int n;
            do {
                n = ::poll(&p, 1, timeout_ms);
            } while (n < 0 && errno == EINTR);
            if (n < 0) {
                rc = CWSGI_E_IO;
            } else if (n == 0) {
                rc = CWSGI_E_TIMEOUT;
            } else if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) {
                rc = static_cast<int32_t>(events);
            } else {
                rc = static_cast<int32_t>(((p.revents & POLLIN) ? CWSGI_WAIT_READ : 0) |
                                          ((p.revents & POLLOUT) ? CWSGI_WAIT_WRITE : 0));
            }
        }
        if (rc == CWSGI_E_TIMEOUT) {
            return 0;
        }
        if (rc < 0) {
            throw Error(rc, "wait_fd");
        }
        return static_cast<uint32_t>(rc);
    }

    /// Whether the client has gone away (LIFE-DISC-1). Threads: any.
    bool is_disconnected() const noexcept { return api_->is_disconnected(req_) == 1; }
    /// Whether the server has begun a graceful stop (LIFE-STOP-3). Threads: any.
    bool is_shutting_down() const noexcept { return api_->is_shutting_down() == 1; }
    /// Writes one line to the error log about this request (LOG-ERR-1). Threads: any.
    void log(uint32_t level, std::string_view msg) const noexcept { api_->log(req_, level, msg.data(), msg.size()); }
    /// Allocates from the request's arena (MEM-ARENA-1): freed when on_request_end returns.
    /// @return aligned memory, or nullptr when out of memory.
    void *alloc(size_t size) const noexcept { return api_->alloc(req_, size); }

    /// The server's table and handle, for calls this layer does not wrap.
    const cwsgi_server_api *api() const noexcept { return api_; }
    cwsgi_request *raw() const noexcept { return req_; }

private:
    friend class Router;

    const cwsgi_server_api *api_;
    cwsgi_request *req_;
    cwsgi_request_info info_{};
    std::string script_name_;
    std::string_view path_;
    std::vector<std::pair<std::string_view, std::string_view>> params_;
};

// ------------------------------------------------------------------------------------------
// Response
// ------------------------------------------------------------------------------------------

/// The response being built for one request. Status and headers are kept here until they are
/// needed; a body set with text()/json()/html()/body() is buffered and sent when handle()
/// returns, with a Content-Length, so small answers are not chunked. write() and send_file()
/// stream instead: the first one sends the status and headers (the response is then committed
/// as soon as the server sends the first byte, RESP-START-2) and no Content-Length is added.
/// Ownership: everything given is copied. Threads: the request's thread (THR-2).
class Response {
public:
    Response(const cwsgi_server_api *api, cwsgi_request *req) : api_(api), req_(req) {}
    Response(const Response &) = delete;
    Response &operator=(const Response &) = delete;

    /// Sets the status (200..599; default 200). Has no effect once start_response was made.
    Response &status(uint32_t code) noexcept
    {
        status_ = code;
        return *this;
    }
    uint32_t status() const noexcept { return status_; }

    /// Appends a header field (checked by the server at start_response: RESP-HDR-1..3).
    Response &header(std::string_view name, std::string_view value)
    {
        headers_.emplace_back(name, value);
        return *this;
    }
    /// Replaces every field called `name` (case-insensitive) with one field.
    Response &set_header(std::string_view name, std::string_view value)
    {
        remove_header(name);
        return header(name, value);
    }
    /// Removes every field called `name` (case-insensitive).
    Response &remove_header(std::string_view name)
    {
        std::erase_if(headers_, [&](const auto &h) { return iequals(h.first, name); });
        return *this;
    }
    /// The first field called `name`, or nullopt.
    std::optional<std::string_view> get_header(std::string_view name) const noexcept
    {
        for (const auto &h : headers_) {
            if (iequals(h.first, name)) {
                return std::string_view(h.second);
            }
        }
        return std::nullopt;
    }
    const std::vector<std::pair<std::string, std::string>> &headers() const noexcept { return headers_; }

    /// Buffers `data` as the whole body, with `content_type` unless empty. Sent with
    /// Content-Length when handle() returns.
    Response &body(std::string data, std::string_view content_type = {})
    {
        if (!content_type.empty()) {
            set_header("Content-Type", content_type);
        }
        body_ = std::move(data);
        has_body_ = true;
        return *this;
    }
    /// Buffers a text/plain (UTF-8) body.
    Response &text(std::string data) { return body(std::move(data), "text/plain; charset=utf-8"); }
    /// Buffers a JSON body (the caller gives serialized JSON).
    Response &json(std::string data) { return body(std::move(data), "application/json"); }
    /// Buffers an HTML body.
    Response &html(std::string data) { return body(std::move(data), "text/html; charset=utf-8"); }

    /// Sends body bytes now, blocking for backpressure (RESP-BODY-2). The first call sends the
    /// status and headers; a body buffered before is sent first. An empty `data` commits.
    /// @throws Error (CWSGI_E_DISCONNECTED, CWSGI_E_LENGTH, CWSGI_E_HEADER, ...).
    void write(std::string_view data)
    {
        int32_t rc = try_write(data);
        if (rc < 0) { // ABI-ERR-3: unknown positive codes are successes
            throw Error(rc, "write");
        }
    }
    /// As write(), but returns the CWSGI status code instead of throwing.
    int32_t try_write(std::string_view data) noexcept
    {
        int32_t rc = begin(false);
        if (rc >= 0) {
            committed_ = true;
            rc = api_->write(req_, data.data(), data.size());
        }
        return rc;
    }
    /// Sends `count` bytes (-1: to the end) of file `fd` from `offset` (RESP-FILE-1/2).
    /// Ownership: fd stays the caller's. @throws Error on failure.
    void send_file(int fd, int64_t offset = 0, int64_t count = -1)
    {
        int32_t rc = begin(false);
        if (rc >= 0) {
            committed_ = true;
            rc = api_->send_file(req_, fd, offset, count);
        }
        if (rc < 0) { // ABI-ERR-3: unknown positive codes are successes
            throw Error(rc, "send_file");
        }
    }
    /// Sends a 1xx response such as 103 Early Hints before the final one (RESP-INFO-1..3).
    /// @return CWSGI_OK, CWSGI_DROPPED when it cannot be carried, or a negative code.
    int32_t informational(uint32_t code, const std::vector<std::pair<std::string, std::string>> &fields = {})
    {
        std::vector<cwsgi_header> hs = to_abi(fields);
        return api_->send_informational(req_, code, hs.data(), hs.size());
    }
    /// Ends the response now: sends what is buffered, then finish (RESP-END-1). Implied when
    /// handle() returns. @throws Error on failure (e.g. CWSGI_E_LENGTH: fewer bytes than a
    /// declared Content-Length, the response is aborted).
    void finish()
    {
        if (finished_) {
            return;
        }
        int32_t rc = begin(true);
        if (rc >= 0) {
            committed_ = true;
            finished_ = true;
            rc = api_->finish(req_);
        }
        if (rc < 0) { // ABI-ERR-3: unknown positive codes are successes
            throw Error(rc, "finish");
        }
    }

    /// True once start_response was made (status and headers can no longer change here).
    bool started() const noexcept { return started_; }
    /// True once a body byte, send_file or finish was handed to the server. The server may
    /// still hold the headers (a zero-length write), but the answer can no longer change.
    bool committed() const noexcept { return committed_; }
    /// True once finish() ran.
    bool finished() const noexcept { return finished_; }

private:
    template <class Fields> static std::vector<cwsgi_header> to_abi(const Fields &fields)
    {
        std::vector<cwsgi_header> hs;
        hs.reserve(fields.size());
        for (const auto &[n, v] : fields) {
            hs.push_back(cwsgi_header{n.data(), n.size(), v.data(), v.size()});
        }
        return hs;
    }

    /// Makes start_response if not yet made, then sends a buffered body. `whole` says no more
    /// bytes follow, so a buffered body can carry Content-Length (not for 1xx/204/304, which
    /// have no body and where 204 may not carry the field: RESP-NOBODY-1/2). On HEAD the field
    /// says what a GET would send (RESP-NOBODY-3).
    int32_t begin(bool whole) noexcept
    {
        try {
            if (!started_) {
                bool bodiless = status_ == 204 || status_ == 304 || status_ < 200;
                if (whole && !bodiless && !get_header("Content-Length")) {
                    header("Content-Length", std::to_string(has_body_ ? body_.size() : 0));
                }
                std::vector<cwsgi_header> hs = to_abi(headers_);
                int32_t rc = api_->start_response(req_, status_, nullptr, hs.data(), hs.size(), 0);
                if (rc < 0) { // ABI-ERR-3: unknown positive codes are successes
                    return rc;
                }
                started_ = true;
            }
            if (has_body_) {
                has_body_ = false;
                std::string data = std::move(body_);
                committed_ = true;
                if (!data.empty()) {
                    return api_->write(req_, data.data(), data.size());
                }
            }
            return CWSGI_OK;
        } catch (const std::bad_alloc &) {
            return CWSGI_E_NOMEM;
        }
    }

    template <class A> friend struct detail::AppGlue;

    const cwsgi_server_api *api_;
    cwsgi_request *req_;
    uint32_t status_ = 200;
    std::vector<std::pair<std::string, std::string>> headers_;
    std::string body_;
    bool has_body_ = false;
    bool started_ = false;
    bool committed_ = false;
    bool finished_ = false;
};

// ------------------------------------------------------------------------------------------
// Router
// ------------------------------------------------------------------------------------------

class Group;

/// A route's handler. It may throw (see the file comment for what becomes of exceptions).
using Handler = std::function<void(Request &, Response &)>;

/// Maps (method, path) to handlers. Patterns are '/'-separated; a segment "<name>" matches one
/// non-empty path segment and a last segment "<path:name>" matches the non-empty rest of the
/// path, slashes included. Paths are matched against Request::path() (decoded PATH_INFO), as
/// Werkzeug does; an empty path is matched as "/". Matching is exact: "/a/" is not "/a".
/// A route for GET also answers HEAD. A path that matches a route but not its method is
/// answered 405 with an Allow header; a path that matches nothing, 404.
/// Mounts pass a prefix's requests to another router, moving the prefix from path() to
/// script_name() (PEP 3333's SCRIPT_NAME/PATH_INFO split, as Werkzeug's DispatcherMiddleware).
/// Entries are tried in the order they were added; the first route or mount that takes the
/// path wins.
/// Ownership: handlers and mounted routers are copied in. Threads: build it in one thread
/// (the App constructor or init); dispatch() is const and may run on many threads at once.
class Router {
public:
    Router() = default;
    virtual ~Router() = default;
    Router(const Router &) = default;
    Router &operator=(const Router &) = default;
    Router(Router &&) = default;
    Router &operator=(Router &&) = default;

    /// Adds a route. @param method an HTTP method, case-sensitive ("GET").
    /// @param pattern starts with '/'. @throws std::invalid_argument for a malformed pattern.
    Router &route(std::string_view method, std::string_view pattern, Handler handler)
    {
        Entry e;
        e.method = std::string(method);
        e.segments = parse_pattern(pattern);
        e.handler = std::move(handler);
        if (method.empty() || !e.handler) {
            throw std::invalid_argument("cwsgi::Router: route needs a method and a handler");
        }
        entries_.push_back(std::move(e));
        return *this;
    }
    Router &get(std::string_view pattern, Handler h) { return route("GET", pattern, std::move(h)); }
    Router &post(std::string_view pattern, Handler h) { return route("POST", pattern, std::move(h)); }
    Router &put(std::string_view pattern, Handler h) { return route("PUT", pattern, std::move(h)); }
    Router &del(std::string_view pattern, Handler h) { return route("DELETE", pattern, std::move(h)); }

    /// Mounts a copy of `sub` under `prefix` ("/api": literal, starts with '/', no trailing
    /// '/'). A request for the prefix itself or anything below it ("/api", "/api/x") goes to
    /// `sub`, which answers 404/405 itself; "/apix" does not. Routes added to `sub` after this
    /// call are not seen. @throws std::invalid_argument for a malformed prefix.
    Router &mount(std::string_view prefix, const Router &sub)
    {
        if (prefix.size() < 2 || prefix.front() != '/' || prefix.back() == '/' ||
            prefix.find_first_of("<>") != std::string_view::npos) {
            throw std::invalid_argument("cwsgi::Router: bad mount prefix '" + std::string(prefix) +
                                        "' (want \"/name\", no trailing slash, no parameters)");
        }
        Entry e;
        e.prefix = std::string(prefix);
        e.sub = std::make_shared<const Router>(sub);
        entries_.push_back(std::move(e));
        return *this;
    }
    /// Mounts a copy of `group` under its own prefix (see Group).
    Router &mount(const Group &group);

    /// Finds the handler for the request and runs it, or answers 404/405 on `res`.
    /// Within a mount, req.script_name()/path() are moved as described above and stay so.
    void dispatch(Request &req, Response &res) const
    {
        std::string_view path = req.path().empty() ? std::string_view("/") : req.path();
        std::string_view method = req.method();
        std::vector<std::string_view> allowed;
        std::vector<std::pair<std::string_view, std::string_view>> params;
        for (const Entry &e : entries_) {
            if (e.sub) {
                if (!allowed.empty() || !mount_takes(e.prefix, req.path())) {
                    continue;
                }
                req.script_name_ += e.prefix;
                req.path_ = req.path_.substr(e.prefix.size());
                e.sub->dispatch(req, res);
                return;
            }
            params.clear();
            if (!match(e.segments, path, params)) {
                continue;
            }
            if (e.method == method || (method == "HEAD" && e.method == "GET")) {
                req.params_ = std::move(params);
                e.handler(req, res);
                return;
            }
            allowed.push_back(e.method);
            if (e.method == "GET") {
                allowed.push_back("HEAD");
            }
        }
        if (allowed.empty()) {
            res.status(404).text("Not Found\n");
            return;
        }
        std::sort(allowed.begin(), allowed.end());
        allowed.erase(std::unique(allowed.begin(), allowed.end()), allowed.end());
        std::string allow;
        for (std::string_view m : allowed) {
            allow += allow.empty() ? "" : ", ";
            allow += m;
        }
        res.status(405).set_header("Allow", allow).text("Method Not Allowed\n");
    }

private:
    struct Segment {
        enum Kind { literal, param, rest } kind;
        std::string text; // the literal, or the parameter's name
    };
    struct Entry {
        std::string method;
        std::vector<Segment> segments;
        Handler handler;
        std::string prefix;
        std::shared_ptr<const Router> sub;
    };

    static std::vector<Segment> parse_pattern(std::string_view pattern)
    {
        auto bad = [&](const char *why) {
            return std::invalid_argument("cwsgi::Router: bad pattern '" + std::string(pattern) + "': " + why);
        };
        if (pattern.empty() || pattern.front() != '/') {
            throw bad("must start with '/'");
        }
        std::vector<Segment> out;
        std::string_view rest = pattern.substr(1);
        for (;;) {
            size_t slash = rest.find('/');
            std::string_view seg = rest.substr(0, slash);
            if (!out.empty() && out.back().kind == Segment::rest) {
                throw bad("<path:...> must be the last segment");
            }
            if (!seg.empty() && seg.front() == '<') {
                if (seg.back() != '>' || seg.size() < 3) {
                    throw bad("a parameter is a whole segment: <name> or <path:name>");
                }
                std::string_view name = seg.substr(1, seg.size() - 2);
                Segment::Kind kind = Segment::param;
                if (name.starts_with("path:")) {
                    kind = Segment::rest;
                    name.remove_prefix(5);
                }
                if (name.empty() || name.find_first_of("<>:/") != std::string_view::npos) {
                    throw bad("bad parameter name");
                }
                out.push_back(Segment{kind, std::string(name)});
            } else {
                if (seg.find_first_of("<>") != std::string_view::npos) {
                    throw bad("a parameter is a whole segment: <name> or <path:name>");
                }
                out.push_back(Segment{Segment::literal, std::string(seg)});
            }
            if (slash == std::string_view::npos) {
                break;
            }
            rest = rest.substr(slash + 1);
        }
        return out;
    }

    static bool match(const std::vector<Segment> &segs, std::string_view path,
                      std::vector<std::pair<std::string_view, std::string_view>> &params)
    {
        if (path.empty() || path.front() != '/') {
            return false;
        }
        size_t pos = 1;
        for (size_t i = 0; i < segs.size(); ++i) {
            const Segment &s = segs[i];
            if (s.kind == Segment::rest) {
                if (pos >= path.size()) {
                    return false;
                }
                params.emplace_back(s.text, path.substr(pos));
                return true;
            }
            if (pos > path.size()) {
                return false;
            }
            size_t end = path.find('/', pos);
            std::string_view seg = path.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
            if (s.kind == Segment::literal) {
                if (seg != s.text) {
                    return false;
                }
            } else {
                if (seg.empty()) {
                    return false;
                }
                params.emplace_back(s.text, seg);
            }
            bool last = i + 1 == segs.size();
            if (last != (end == std::string_view::npos)) {
                return false;
            }
            pos = last ? path.size() : end + 1;
        }
        return true;
    }

    static bool mount_takes(std::string_view prefix, std::string_view path) noexcept
    {
        return path.starts_with(prefix) && (path.size() == prefix.size() || path[prefix.size()] == '/');
    }

    std::vector<Entry> entries_;
};

/// A router with its own prefix, to be mounted with Router::mount(group) (Flask's blueprint).
/// Threads and ownership as Router.
class Group : public Router {
public:
    /// @param prefix as for Router::mount (checked there).
    explicit Group(std::string prefix) : prefix_(std::move(prefix)) {}
    const std::string &prefix() const noexcept { return prefix_; }

private:
    std::string prefix_;
};

inline Router &Router::mount(const Group &group) { return mount(group.prefix(), group); }

// ------------------------------------------------------------------------------------------
// App settings (since 1.2)
// ------------------------------------------------------------------------------------------

/// One of the app's own settings (LIFE-SET-1): what the operator wrote in the [app] table of
/// cwsgi-serve's -c file ("model.path" for [app.model] path = ...), or what a test gave the
/// test host. nullopt when the key is not set, and on a server older than ABI 1.2, which has no
/// settings: the app then falls back (an environment variable, a default).
/// The view is borrowed for the life of the process (ends with a NUL that size() does not count).
/// Threads: any, from init on. Since: 1.2.
inline std::optional<std::string_view> setting(const cwsgi_server_api *api, const std::string &key) noexcept
{
    // CWSGI_API_HAS spelled out: its C cast would trip -Wold-style-cast in C++ apps.
    constexpr size_t needed = offsetof(cwsgi_server_api, setting_get) + sizeof(cwsgi_server_api::setting_get);
    cwsgi_str v{};
    if (api == nullptr || api->struct_size < needed || api->setting_get(key.c_str(), &v) != CWSGI_OK) {
        return std::nullopt;
    }
    return std::string_view(v.ptr, v.len);
}

/// Every setting, in the order the operator wrote them; empty on a server older than 1.2.
/// Views borrowed for the life of the process. Threads: any, from init on. Since: 1.2.
inline std::vector<std::pair<std::string_view, std::string_view>> settings(const cwsgi_server_api *api)
{
    constexpr size_t needed = offsetof(cwsgi_server_api, setting_at) + sizeof(cwsgi_server_api::setting_at);
    std::vector<std::pair<std::string_view, std::string_view>> out;
    if (api == nullptr || api->struct_size < needed) {
        return out;
    }
    cwsgi_str k{}, v{};
    for (size_t i = 0; api->setting_at(i, &k, &v) == CWSGI_OK; ++i) {
        out.emplace_back(std::string_view(k.ptr, k.len), std::string_view(v.ptr, v.len));
    }
    return out;
}

/// Reads a setting's text as a T, the way cwsgi-serve writes TOML values as text (LIFE-SET-2):
///   - std::string, std::string_view: the text as it is;
///   - bool: "true" or "false" (TOML), also "1"/"0", "yes"/"no", "on"/"off" (environment habits);
///   - an integer type: decimal, optional sign, within the type's range;
///   - float, double, long double: "1.5", "-2e3", "inf", "nan", optional '+'.
/// @throws std::invalid_argument naming the key and the text when it is not a T, so that a bad
///         setting read in init() refuses the start with that line (LIFE-LOAD-2).
/// Threads: any. Since: 1.2.
template <class T> T parse_setting(std::string_view key, std::string_view text)
{
    auto bad = [&](const char *what) {
        return std::invalid_argument("setting '" + std::string(key) + "' = '" + std::string(text) + "' is not " + what);
    };
    if constexpr (std::is_same_v<T, std::string>) {
        return std::string(text);
    } else if constexpr (std::is_same_v<T, std::string_view>) {
        return text;
    } else if constexpr (std::is_same_v<T, bool>) {
        if (text == "true" || text == "1" || text == "yes" || text == "on") {
            return true;
        }
        if (text == "false" || text == "0" || text == "no" || text == "off") {
            return false;
        }
        throw bad("a boolean (true or false)");
    } else if constexpr (std::is_integral_v<T> || std::is_floating_point_v<T>) {
        std::string_view digits = text;
        if constexpr (std::is_floating_point_v<T>) {
            if (!digits.empty() && digits.front() == '+') {
                digits.remove_prefix(1);
            }
        }
        T out{};
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
        if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size()) {
            throw bad(std::is_integral_v<T> ? "an integer in range" : "a number");
        }
        return out;
    } else {
        static_assert(std::is_same_v<T, std::string>, "parse_setting: T is a string, bool, integer or float");
    }
}

// ------------------------------------------------------------------------------------------
// App
// ------------------------------------------------------------------------------------------

/// Base class of a C++ app exported with CWSGI_APP. The derived class needs a default
/// constructor; it is constructed in the server's init (in each process that loads the app: each
/// worker after the fork, or the master before it with --preload; LIFE-LOAD-1) and destroyed in
/// destroy (LIFE-LOAD-3). init() is where it reads its settings (setting(), since 1.2). Override what you need; by
/// default handle() runs router(). To change what the descriptor declares, hide the static functions:
///   static constexpr uint32_t thread_safety() { return CWSGI_THREADS_SAFE; }
///   static constexpr uint64_t required_caps() { return CWSGI_CAP_SENDFILE; }
///   static constexpr bool cooperative() { return true; }  // the cooperative promise (THR-5)
/// Threads: init, worker_start and worker_stop run on one thread; handle and on_request_end on
/// request threads, concurrently when thread_safety() is CWSGI_THREADS_SAFE.
class App {
public:
    App() = default;
    virtual ~App() = default;
    App(const App &) = delete;
    App &operator=(const App &) = delete;

    /// The default: the server calls handle() from one thread at a time (ABI-LOAD-6).
    static constexpr uint32_t thread_safety() { return CWSGI_THREADS_SERIAL; }
    /// The default: no capability required.
    static constexpr uint64_t required_caps() { return 0; }
    /// The default: no cooperative promise (THR-5), so the server runs handle() on threads.
    /// Return true only when handle() and on_request_end block nowhere but inside the
    /// server's calls (Request::read, Response::write..., Request::wait_fd): no sleeps, no
    /// blocking sockets or files of your own, no lock held across those calls. The server may
    /// then run them on fibers on its event-loop threads. Declaring it makes the descriptor
    /// need ABI 1.1 (a 1.0 server refuses it); not declaring it keeps ABI 1.0.
    static constexpr bool cooperative() { return false; }

    /// Once, after construction, with api() set (LIFE-LOAD-1). Throw to refuse to start: the
    /// message becomes the server's error line.
    virtual void init() {}
    /// In each worker after fork (LIFE-WORKER-1). Throw to fail the worker's boot.
    virtual void worker_start(uint32_t worker_id) { (void)worker_id; }
    /// In each worker after drain or the graceful deadline (LIFE-WORKER-3). Must not throw
    /// (an exception is logged and dropped).
    virtual void worker_stop(uint32_t worker_id) { (void)worker_id; }
    /// Answers one request (WSGI's application callable). Default: router().dispatch().
    virtual void handle(Request &req, Response &res) { router_.dispatch(req, res); }
    /// Once per request that reached handle(), after the wire is done (LIFE-END-1). `req` is a
    /// fresh view (router parameters are not kept). Exceptions are logged and dropped.
    virtual void on_request_end(Request &req, int32_t outcome)
    {
        (void)req;
        (void)outcome;
    }

    /// The server's table; nullptr in the constructor, set before init().
    const cwsgi_server_api *api() const noexcept { return api_; }
    /// Writes one line to the error log, not tied to a request. Threads: any.
    void log(uint32_t level, std::string_view msg) const noexcept
    {
        if (api_ != nullptr) {
            api_->log(nullptr, level, msg.data(), msg.size());
        }
    }
    /// One of the app's own settings (LIFE-SET-1), or nullopt when not set or on a server older
    /// than 1.2: cwsgi::setting(api(), key). Threads: any, from init() on. Since: 1.2.
    std::optional<std::string_view> setting(const std::string &key) const noexcept { return cwsgi::setting(api_, key); }
    /// A setting read as T (parse_setting), or `fallback` when it is not set. Typical in init():
    ///   threads_ = setting<int>("model.threads", 1);
    /// @throws std::invalid_argument when it is set but is not a T. Since: 1.2.
    template <class T> T setting(const std::string &key, T fallback) const
    {
        std::optional<std::string_view> text = setting(key);
        return text ? parse_setting<T>(key, *text) : fallback;
    }
    /// The same with a string literal as the fallback. Since: 1.2.
    std::string setting(const std::string &key, const char *fallback) const
    {
        return setting<std::string>(key, std::string(fallback));
    }
    /// Every setting in the operator's order (cwsgi::settings). Since: 1.2.
    std::vector<std::pair<std::string_view, std::string_view>> settings() const { return cwsgi::settings(api_); }

    /// The server's facts (LIFE-INFO-1); zeroed when unavailable.
    cwsgi_server_info server_info() const noexcept
    {
        cwsgi_server_info si{};
        si.struct_size = sizeof si;
        if (api_ == nullptr || api_->server_info(&si) != CWSGI_OK) {
            si = cwsgi_server_info{};
        }
        return si;
    }

protected:
    /// The routes handle() dispatches to; fill it in the constructor or init().
    Router &router() noexcept { return router_; }

private:
    template <class A> friend struct detail::AppGlue;

    Router router_;
    const cwsgi_server_api *api_ = nullptr;
};

namespace detail {

/// The noexcept callbacks that CWSGI_APP puts in the descriptor for app class A. Not meant to
/// be used directly.
template <class A> struct AppGlue {
    static void copy_error(char *errbuf, size_t errlen, const char *msg) noexcept
    {
        if (errbuf != nullptr && errlen > 0) {
            std::snprintf(errbuf, errlen, "%s", msg);
        }
    }

    static void log_line(const cwsgi_server_api *api, cwsgi_request *req, uint32_t level, const char *where,
                         const char *what) noexcept
    {
        char line[1024];
        int n = std::snprintf(line, sizeof line, "%s: %s", where, what);
        if (n > 0 && api != nullptr) {
            api->log(req, level, line, std::min(static_cast<size_t>(n), sizeof line - 1));
        }
    }

    /// Runs f; on an exception logs it and copies what() to errbuf. @return CWSGI_OK or
    /// CWSGI_E_APP.
    template <class F>
    static int32_t guarded(const cwsgi_server_api *api, const char *where, char *errbuf, size_t errlen, F &&f) noexcept
    {
        const char *what = "unknown exception";
        try {
            f();
            return CWSGI_OK;
        } catch (const std::exception &e) {
            what = e.what();
            copy_error(errbuf, errlen, what);
            log_line(api, nullptr, CWSGI_LOG_ERROR, where, what);
        } catch (...) {
            copy_error(errbuf, errlen, what);
            log_line(api, nullptr, CWSGI_LOG_ERROR, where, what);
        }
        return CWSGI_E_APP;
    }

    static int32_t init(const cwsgi_server_api *api, void **state, char *errbuf, size_t errlen) noexcept
    {
        if (api == nullptr || state == nullptr) {
            copy_error(errbuf, errlen, "cwsgi.hpp: init without an api table");
            return CWSGI_E_INVAL;
        }
        std::unique_ptr<A> app;
        int32_t rc = guarded(api, "init", errbuf, errlen, [&] {
            app = std::make_unique<A>();
            static_cast<App &>(*app).api_ = api;
            static_cast<App &>(*app).init();
        });
        if (rc == CWSGI_OK) {
            *state = static_cast<App *>(app.release());
        }
        return rc;
    }

    static int32_t worker_start(void *state, uint32_t worker_id, char *errbuf, size_t errlen) noexcept
    {
        App &app = *static_cast<App *>(state);
        return guarded(app.api_, "worker_start", errbuf, errlen, [&] { app.worker_start(worker_id); });
    }

    static void worker_stop(void *state, uint32_t worker_id) noexcept
    {
        App &app = *static_cast<App *>(state);
        (void)guarded(app.api_, "worker_stop", nullptr, 0, [&] { app.worker_stop(worker_id); });
    }

    static void destroy(void *state) noexcept
    {
        // A destructor that throws would terminate: destructors are noexcept by default.
        std::unique_ptr<App> app(static_cast<App *>(state));
    }

    /// Sends the answer an HttpError carries, if the response is still open.
    /// @return CWSGI_OK when sent; CWSGI_E_APP when it could not be (already committed, or the
    ///         status or body was refused), so the server answers 500 or aborts.
    static int32_t answer_http_error(const cwsgi_server_api *api, cwsgi_request *r, Response &res,
                                     const HttpError &e) noexcept
    {
        if (res.committed()) {
            return CWSGI_E_APP;
        }
        try {
            uint32_t status = (e.status() >= 200 && e.status() <= 599) ? e.status() : 500;
            std::string_view body = e.body();
            bool bodiless = status == 204 || status == 304;
            std::string length = std::to_string(bodiless ? 0 : body.size());
            std::vector<cwsgi_header> hs;
            const std::string &ct = e.content_type();
            if (!bodiless) {
                hs.push_back(cwsgi_header{"Content-Type", 12, ct.data(), ct.size()});
                hs.push_back(cwsgi_header{"Content-Length", 14, length.data(), length.size()});
            }
            if (status == 405) {
                // The router's Allow, when the handler threw 405 after it set one.
                if (auto allow = res.get_header("Allow")) {
                    hs.push_back(cwsgi_header{"Allow", 5, allow->data(), allow->size()});
                }
            }
            uint32_t flags = res.started() ? CWSGI_RESPONSE_REPLACE : 0;
            int32_t rc = api->start_response(r, status, nullptr, hs.data(), hs.size(), flags);
            if (rc == CWSGI_E_STATE) {
                // Someone called start_response through the raw table: replace it.
                rc = api->start_response(r, status, nullptr, hs.data(), hs.size(), CWSGI_RESPONSE_REPLACE);
            }
            if (rc < 0) { // ABI-ERR-3: unknown positive codes are successes
                return CWSGI_E_APP;
            }
            res.started_ = true;
            res.committed_ = true;
            if (!bodiless && !body.empty()) {
                rc = api->write(r, body.data(), body.size());
                if (rc < 0) { // ABI-ERR-3: unknown positive codes are successes
                    return rc;
                }
            }
            return CWSGI_OK;
        } catch (...) {
            return CWSGI_E_APP;
        }
    }

    static int32_t handle(void *state, cwsgi_request *r) noexcept
    {
        App &app = *static_cast<App *>(state);
        const cwsgi_server_api *api = app.api_;
        Response res(api, r);
        try {
            Request req(api, r);
            app.handle(req, res);
            res.finish();
            return CWSGI_OK;
        } catch (const HttpError &e) {
            uint32_t level = e.status() >= 500 ? CWSGI_LOG_ERROR : CWSGI_LOG_DEBUG;
            log_line(api, r, level, res.committed() ? "handle: HttpError after commit (aborting)" : "handle: HttpError",
                     e.what());
            return answer_http_error(api, r, res, e);
        } catch (const Error &e) {
            uint32_t level = e.code() == CWSGI_E_DISCONNECTED ? CWSGI_LOG_INFO : CWSGI_LOG_ERROR;
            log_line(api, r, level, "handle", e.what());
            return e.code() < 0 ? e.code() : CWSGI_E_APP;
        } catch (const std::exception &e) {
            log_line(api, r, CWSGI_LOG_ERROR,
                     res.committed() ? "handle: exception after commit (aborting)"
                                     : "handle: exception (answering 500)",
                     e.what());
        } catch (...) {
            log_line(api, r, CWSGI_LOG_ERROR, "handle", "unknown exception");
        }
        return CWSGI_E_APP;
    }

    static void on_request_end(void *state, cwsgi_request *r, int32_t outcome) noexcept
    {
        App &app = *static_cast<App *>(state);
        (void)guarded(app.api_, "on_request_end", nullptr, 0, [&] {
            Request req(app.api_, r);
            app.on_request_end(req, outcome);
        });
    }

    static constexpr cwsgi_app_desc descriptor(const char *name, const char *version) noexcept
    {
        cwsgi_app_desc d{};
        d.struct_size = sizeof(cwsgi_app_desc);
        d.abi_major = CWSGI_ABI_MAJOR;
        // The lowest minor this app needs (ABI-VER-2), not the header's: an app rebuilt against
        // a newer cwsgi.h that uses nothing new still loads on older servers. The layer itself
        // needs only 1.0 (wait_fd falls back to poll); the cooperative flag is a 1.1 field.
        d.abi_minor = A::cooperative() ? 1 : 0;
        d.name = name;
        d.version = version;
        d.thread_safety = A::thread_safety();
        d.reserved = 0;
        d.required_caps = A::required_caps();
        d.required_extensions = nullptr;
        d.init = &AppGlue::init;
        d.worker_start = &AppGlue::worker_start;
        d.worker_stop = &AppGlue::worker_stop;
        d.destroy = &AppGlue::destroy;
        d.handle = &AppGlue::handle;
        d.on_request_end = &AppGlue::on_request_end;
        d.flags = A::cooperative() ? CWSGI_APP_COOPERATIVE : 0;
        d.reserved2 = 0;
        return d;
    }

    /// The entry's body: refuses a table from another major or one shorter than this layer
    /// uses (ABI-VER-1, ABI-STRUCT-3), then hands back the descriptor.
    static int32_t entry(const cwsgi_server_api *api, const cwsgi_app_desc **out, const cwsgi_app_desc *desc) noexcept
    {
        if (out == nullptr) {
            return CWSGI_E_INVAL;
        }
        // CWSGI_API_HAS spelled out: its C cast would trip -Wold-style-cast in C++ apps.
        constexpr size_t needed = offsetof(cwsgi_server_api, get_extension) + sizeof(cwsgi_server_api::get_extension);
        if (api != nullptr && (api->abi_major != CWSGI_ABI_MAJOR || api->struct_size < needed)) {
            return CWSGI_E_ABI;
        }
        *out = desc;
        return CWSGI_OK;
    }
};

} // namespace detail
} // namespace cwsgi

/// Exports app class `AppClass` (derived from cwsgi::App, default-constructible) as this
/// shared object's CWSGI app: defines the static descriptor and the entry symbol
/// cwsgi_app_entry (ABI-LOAD-1). Use once per app, at namespace scope.
/// @param NAME the app's short name (a string literal); @param VERSION its version string.
#define CWSGI_APP(AppClass, NAME, VERSION)                                                                        \
    static_assert(std::is_base_of_v<::cwsgi::App, AppClass>, "CWSGI_APP: the class must derive from cwsgi::App"); \
    static constexpr cwsgi_app_desc cwsgi_cpp_app_descriptor =                                                    \
        ::cwsgi::detail::AppGlue<AppClass>::descriptor(NAME, VERSION);                                            \
    extern "C" CWSGI_EXPORT int32_t cwsgi_app_entry(const cwsgi_server_api *api, const cwsgi_app_desc **desc_out) \
    {                                                                                                             \
        return ::cwsgi::detail::AppGlue<AppClass>::entry(api, desc_out, &cwsgi_cpp_app_descriptor);               \
    }                                                                                                             \
    static_assert(true, "CWSGI_APP needs a semicolon")
