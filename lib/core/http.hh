// http.hh: the HTTP rules every adapter shares: request-head validation and limits (the 4xx
// the server answers itself), response-header validation, and the response framing decision.
//
// Adapters parse bytes (or let their library parse them) into a RequestHead, then call
// validate_request_head() before any body byte is read and before the app is called. The
// same function serves every adapter, so a malformed request gets the same answer everywhere
// (LIMIT-* and REQ-* rules in spec/server.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cwsgi::core {

/// One header field as received or as the app gave it.
struct Header {
    std::string name;
    std::string value;
};

/// Server limits (gunicorn's defaults; spec/server.md LIMIT-1..5).
struct Limits {
    uint32_t request_line = 4094;       // bytes of method SP target SP version
    uint32_t request_fields = 100;      // header fields
    uint32_t request_field_size = 8190; // bytes of one "name: value" line
    int64_t request_body = -1;          // bytes; -1 = unlimited
};

/// What an adapter knows about a request before its body. Header names keep their case as
/// received; the core lowercases them for the app.
struct RequestHead {
    std::string method;
    std::string target;          // raw request-target as received
    uint32_t http_major = 1;
    uint32_t http_minor = 1;
    std::vector<Header> headers; // arrival order, duplicates kept, no HTTP/2 pseudo-headers
    std::string authority;       // HTTP/2 :authority (empty for HTTP/1.x)
    bool is_tls = false;
    bool is_unix = false;        // the connection came through a unix socket
    std::string remote_addr, remote_port;
    std::string local_addr, local_port;
};

/// How the request body is delimited, decided by validate_request_head.
enum class BodyKind : uint8_t { none, length, chunked, stream /* HTTP/2 DATA frames */ };

/// The result of validating a request head: either an error the server answers itself, or the
/// facts the request state machine needs.
struct HeadCheck {
    uint32_t status = 0;       // 0 = valid; else 400, 405, 413, 414, 417, 431, 501, 505
    std::string reason;        // one line for the error log ("duplicate Host header")
    const char *rule = "";     // the spec rule ID that decided it
    BodyKind body = BodyKind::none;
    int64_t content_length = -1;  // for BodyKind::length
    bool expect_continue = false; // Expect: 100-continue on HTTP/1.1
    bool keep_alive = true;       // what the request asks for (Connection, version)
};

/// Checks a request head against RFC 9110/9112 and the limits. Never throws.
/// Threads: any. Rule: REQ-LINE-*, REQ-HDR-*, REQ-BODY-*, LIMIT-*.
HeadCheck validate_request_head(const RequestHead &head, const Limits &limits);

/// True when `s` is a non-empty RFC 9110 token (method, header name).
bool is_token(std::string_view s);
/// True when `s` may be a field value: no CR, LF or NUL, and no other control except HTAB.
bool is_field_value(std::string_view s);
/// ASCII case-insensitive equality.
bool iequals(std::string_view a, std::string_view b);
/// The standard reason phrase for a status ("Not Found"), or "Unknown": cwsgi_reason_phrase.
const char *reason_phrase(uint32_t status);

/// Checks one response header the app gave. Returns CWSGI_OK, CWSGI_E_HEADER (not a token,
/// CR/LF/NUL in the value) or CWSGI_E_FORBIDDEN (hop-by-hop or server-owned; RESP-HDR-3).
int32_t check_response_header(std::string_view name, std::string_view value);

/// How the response body is delimited on the wire (RESP-FRAME-*).
enum class Framing : uint8_t {
    no_body,        // HEAD, 1xx, 204, 304: headers only
    length,         // Content-Length: n
    chunked,        // HTTP/1.1 Transfer-Encoding: chunked
    close,          // HTTP/1.0 without a length: the end is the connection close
    stream,         // HTTP/2: DATA frames, END_STREAM
};

/// The inputs and result of the framing decision (decide_framing).
struct FramingInput {
    uint32_t status = 200;
    bool head_request = false;
    uint32_t http_major = 1, http_minor = 1;
    std::optional<int64_t> app_content_length; // the app's Content-Length header, parsed
    bool finished_without_body = false;         // finish came before any body byte
    bool request_keep_alive = true;             // HeadCheck::keep_alive
    bool shutting_down = false;
};
struct FramingDecision {
    Framing framing = Framing::chunked;
    int64_t content_length = -1; // the value to send when a Content-Length header is sent
    bool send_content_length = false; // the core adds/keeps a Content-Length header
    bool keep_alive = true;           // the connection stays open after this response
};

/// Decides framing and keep-alive for a response. Pure function. Rule: RESP-FRAME-1..6.
FramingDecision decide_framing(const FramingInput &in);

/// Parses a Content-Length value: 1*DIGIT, no sign, no spaces, fits int64. Rule: REQ-BODY-2.
std::optional<int64_t> parse_content_length(std::string_view v);

/// Percent-decodes a path; returns nullopt on a malformed escape. "%2F" becomes "/".
std::optional<std::string> percent_decode(std::string_view s);

/// The small HTML-free text body and headers the server sends for its own error answers.
struct ErrorResponse {
    uint32_t status;
    std::string reason;
    std::vector<Header> headers; // Content-Type, Content-Length, Connection: close
    std::string body;            // "400 Bad Request\n"
};
ErrorResponse make_error_response(uint32_t status);

} // namespace cwsgi::core
