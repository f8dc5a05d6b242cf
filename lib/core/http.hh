// http.hh: the HTTP rules every adapter shares: request-head validation and limits (the 4xx
// the server answers itself), response-header validation, and the response framing decision.
//
// Adapters parse bytes (or let their library parse them) into a RequestHead, then call
// validate_request_head() before any body byte is read and before the app is called. The
// same function serves every adapter, so a malformed request gets the same answer everywhere
// (LIMIT-* and REQ-* rules in spec/server.md).
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "arena.hh"

namespace cwsgi::core {

/// One header field with its own storage: trailers, informational responses, the server's
/// error answers (the paths off the hot one).
struct Header {
    std::string name;
    std::string value;
};

/// One header field as views; who owns the bytes is said where a Field appears. Every Field
/// the core hands out is NUL-terminated after its name and after its value (ABI-TYPE-2).
struct Field {
    std::string_view name;
    std::string_view value;
};

/// A growable array of Fields in an arena: no heap allocation per request.
class FieldList {
public:
    /// Appends `f`, growing into `arena` (doubling; the old array stays in the arena until
    /// the request ends). Returns false when the arena is out of memory.
    bool push(Arena &arena, Field f)
    {
        if (size_ == capacity_ && !reserve(arena, 1)) return false;
        data_[size_++] = f;
        return true;
    }
    /// Makes room for `n` more fields (false when out of memory).
    bool reserve(Arena &arena, size_t n);
    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    const Field &operator[](size_t i) const { return data_[i]; }
    const Field *begin() const { return data_; }
    const Field *end() const { return data_ + size_; }
    void clear() { size_ = 0; }

private:
    Field *data_ = nullptr;
    size_t size_ = 0;
    size_t capacity_ = 0;
};

/// Server limits (gunicorn's defaults; spec/server.md LIMIT-1..5).
struct Limits {
    uint32_t request_line = 4094;       // bytes of method SP target SP version
    uint32_t request_fields = 100;      // header fields
    uint32_t request_field_size = 8190; // bytes of one "name: value" line
    int64_t request_body = -1;          // bytes; -1 = unlimited
};

/// What an adapter knows about a request before its body.
///
/// Ownership: every view points into `arena` (filled through keep() and add_header()) or into
/// memory that outlives the request (string literals); either way it is followed by a NUL,
/// which the core relies on when it hands a view to the app (ABI-TYPE-2). Request::create moves the head, arena
/// included, into the request, so the views stay valid for the request's whole life without
/// any further copy, on whichever thread it ends. An adapter builds one head per request:
///   RequestHead head;
///   head.method = head.keep(method);   head.target = head.keep(target);
///   head.add_header(name, value);      // each field, in arrival order
///   HeadCheck check = validate_request_head(head, limits);
///   auto req = Request::create(ctx, std::move(head), check, exchange);
struct RequestHead {
    Arena arena;
    std::string_view method;
    std::string_view target; // raw request-target as received
    uint32_t http_major = 1;
    uint32_t http_minor = 1;
    FieldList headers;          // arrival order, duplicates kept, no HTTP/2 pseudo-headers;
                                // names lowercased by add_header
    std::string_view authority; // HTTP/2 :authority (empty for HTTP/1.x)
    bool is_tls = false;
    bool is_unix = false; // the connection came through a unix socket
    std::string_view remote_addr, remote_port;
    std::string_view local_addr, local_port;

    /// Copies `s` into the head's arena (NUL-terminated) and returns the copy.
    std::string_view keep(std::string_view s) { return arena.copy(s); }
    /// Appends a field: copies the name lowercased and the value as given (an adapter trims
    /// the value's surrounding whitespace first, RFC 9110 section 5.5). Returns false when
    /// out of memory. This is the only pass over the name besides validate_request_head's.
    bool add_header(std::string_view name, std::string_view value);
};

/// How the request body is delimited, decided by validate_request_head.
enum class BodyKind : uint8_t { none, length, chunked, stream /* HTTP/2 DATA frames */ };

/// The result of validating a request head: either an error the server answers itself, or the
/// facts the request state machine needs.
struct HeadCheck {
    uint32_t status = 0;   // 0 = valid; else 400, 405, 413, 414, 417, 431, 501, 505
    std::string reason;    // one line for the error log ("duplicate Host header")
    const char *rule = ""; // the spec rule ID that decided it
    BodyKind body = BodyKind::none;
    int64_t content_length = -1;  // for BodyKind::length
    bool expect_continue = false; // Expect: 100-continue on HTTP/1.1
    bool keep_alive = true;       // what the request asks for (Connection, version)

    // What the one pass over a valid head found, so that the Request parses nothing again.
    // Views into the head's memory (or static strings): valid as long as the head's arena.
    std::string_view raw_path;     // the target's path, up to '?' or '#' ("/" when an
                                   // absolute-form target has none; "*" for OPTIONS *)
    std::string_view query;        // after the first '?', up to '#'
    bool path_escaped = false;     // raw_path holds a '%' (the Request decodes it)
    std::string_view scheme;       // "http" or "https" (ENV-KEYS-6)
    std::string_view server_name;  // ENV-KEYS-5, already split from its port
    std::string_view server_port;  // ENV-KEYS-5, the scheme's default when none was given
    std::string_view content_type; // the first Content-Type value
    bool has_content_type = false; // a Content-Type field was sent (ENV-KEYS-3)
};

/// Checks a request head against RFC 9110/9112 and the limits, and collects the facts above
/// in the same pass. Never throws. Threads: any.
/// Rule: REQ-LINE-*, REQ-HDR-*, REQ-BODY-*, REQ-H2-1, LIMIT-*; ENV-KEYS-5/6 for the facts.
HeadCheck validate_request_head(const RequestHead &head, const Limits &limits);

/// Splits an authority into host and port: "host:port", "[v6]:port" (the host keeps its
/// brackets), "host" (empty port). Returns false for an IP literal without its ']' or with
/// something other than ":port" after it. Checks nothing else: is_authority does, on top of
/// this. The one split used by validation, the environ and --bind parsing (ENV-KEYS-5).
bool split_host_port(std::string_view authority, std::string_view &host, std::string_view &port);

namespace detail {
/// A 256-entry byte class built at compile time: ASCII letters and digits, and `extra`.
constexpr std::array<bool, 256> alnum_and(std::string_view extra)
{
    std::array<bool, 256> t{};
    for (int c = '0'; c <= '9'; ++c) t[c] = true;
    for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
    for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
    for (char c : extra) t[static_cast<unsigned char>(c)] = true;
    return t;
}
/// RFC 9110 section 5.6.2 tchar: the one table of token characters, read by is_token and by
/// lib/http1's byte-at-a-time walks.
inline constexpr std::array<bool, 256> kTchar = alnum_and("!#$%&'*+-.^_`|~");
} // namespace detail

/// True when byte `c` is an RFC 9110 tchar (one character of a token).
inline bool is_tchar(unsigned char c) { return detail::kTchar[c]; }
/// True when `s` is a non-empty RFC 9110 token (method, header name).
bool is_token(std::string_view s);
/// True when `s` may be a field value: no CR, LF or NUL, and no other control except HTAB.
bool is_field_value(std::string_view s);
/// True when `name` (any case) is a field RFC 9110 section 6.5.1 forbids in a trailer section:
/// framing, routing, connection control, conditionals and credentials (EXT-TRAILERS-2). A
/// request trailer with one of them makes the body malformed. The one list every parser uses.
bool is_forbidden_trailer(std::string_view name);
/// Copies `src` to `dst` (at least src.size() bytes, not overlapping `src`) with ASCII A-Z
/// lowercased and every other byte as it is: field names for the environ and for libh2o.
void copy_lower(char *dst, std::string_view src);
/// ASCII case-insensitive equality (inline: it runs for every field of every request).
inline bool iequals(std::string_view a, std::string_view b)
{
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x == y) continue;
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
        if (x != y) return false;
    }
    return true;
}
namespace detail {
/// The first 8 bytes of `s` as one word in memory order (for is_content_length).
constexpr uint64_t word8(const char *s)
{
    uint64_t w = 0;
    for (int i = 0; i < 8; ++i) {
        int shift = std::endian::native == std::endian::little ? 8 * i : 8 * (7 - i);
        w |= uint64_t(static_cast<unsigned char>(s[i])) << shift;
    }
    return w;
}
} // namespace detail

/// Whether `name`, which must be a token (is_token), is "Content-Length" in any case: two
/// overlapping word compares instead of a loop, for the header every response checks. Setting
/// bit 0x20 folds case; within a token it maps nothing else onto a letter or '-'.
inline bool is_content_length(std::string_view name)
{
    if (name.size() != 14) return false;
    constexpr uint64_t kFold = 0x2020202020202020ULL;
    uint64_t a, b;
    std::memcpy(&a, name.data(), 8);
    std::memcpy(&b, name.data() + 6, 8);
    return ((a | kFold) == detail::word8("content-")) & ((b | kFold) == detail::word8("t-length"));
}

/// The standard reason phrase for a status ("Not Found"), or "Unknown": cwsgi_reason_phrase.
const char *reason_phrase(uint32_t status);

/// Checks one response header the app gave. Returns CWSGI_OK, CWSGI_E_HEADER (not a token,
/// CR/LF/NUL in the value) or CWSGI_E_FORBIDDEN (hop-by-hop or server-owned; RESP-HDR-3).
int32_t check_response_header(std::string_view name, std::string_view value);

/// How the response body is delimited on the wire (RESP-FRAME-*).
enum class Framing : uint8_t {
    no_body, // HEAD, 1xx, 204, 304: headers only
    length,  // Content-Length: n
    chunked, // HTTP/1.1 Transfer-Encoding: chunked
    close,   // HTTP/1.0 without a length: the end is the connection close
    stream,  // HTTP/2: DATA frames, END_STREAM
};

/// The inputs and result of the framing decision (decide_framing).
struct FramingInput {
    uint32_t status = 200;
    bool head_request = false;
    uint32_t http_major = 1, http_minor = 1;
    std::optional<int64_t> app_content_length; // the app's Content-Length header, parsed
    bool finished_without_body = false;        // finish came before any body byte
    bool request_keep_alive = true;            // HeadCheck::keep_alive
    bool shutting_down = false;
};
struct FramingDecision {
    Framing framing = Framing::chunked;
    int64_t content_length = -1;      // the value to send when a Content-Length header is sent
    bool send_content_length = false; // the core adds/keeps a Content-Length header
    bool keep_alive = true;           // the connection stays open after this response
};

/// Decides framing and keep-alive for a response. Pure function. Rule: RESP-FRAME-1..6.
FramingDecision decide_framing(const FramingInput &in);

/// Parses a Content-Length value: 1*DIGIT, no sign, no spaces, fits int64. Rule: REQ-BODY-2.
std::optional<int64_t> parse_content_length(std::string_view v);

/// Percent-decodes a path; returns nullopt on a malformed escape. "%2F" becomes "/".
std::optional<std::string> percent_decode(std::string_view s);
/// The same decoding into `arena` (NUL-terminated); nullopt on a malformed escape or when
/// out of memory.
std::optional<std::string_view> percent_decode(std::string_view s, Arena &arena);

/// The small HTML-free text body and headers the server sends for its own error answers.
struct ErrorResponse {
    uint32_t status;
    std::string reason;
    std::vector<Header> headers; // Content-Type, Content-Length, Connection: close
    std::string body;            // "400 Bad Request\n"
};
ErrorResponse make_error_response(uint32_t status);

} // namespace cwsgi::core
