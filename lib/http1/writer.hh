// writer.hh: the HTTP/1.1 response head writer, beside the parser: the status line, the header
// block, a cached Date, chunked framing and trailers. Every adapter uses it for the answers
// it writes on the wire itself (the forking adapter for every response; microhttpd's 408),
// so those bytes are written one way. Reason phrases come from core::reason_phrase, the one
// table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/exchange.hh"
#include "core/http.hh"

namespace cwsgi::http1 {

/// The IMF-fixdate of the current second ("Sun, 06 Nov 1994 08:49:37 GMT", RFC 9110 section
/// 5.6.7), formatted at most once per second per thread. The view is valid until the next call
/// on the same thread. Threads: any (the cache is per thread).
std::string_view http_date();

/// Appends a response head to `out`: "HTTP/1.x status reason", each header of `headers` as
/// "name: value", a Date header unless `headers` has one, "Transfer-Encoding: chunked" when
/// `chunked`, and the empty line. `minor` is the HTTP/1 minor version of the status line: servers
/// pass 1, their own version, whatever the request's (RFC 9110 section 6.2, H1-WRITE-1); 0 is for
/// tests and tools that imitate an HTTP/1.0 server. An empty `reason` takes
/// core::reason_phrase(status). The headers must be valid already (core::check_response_header).
void write_head(std::string &out, uint32_t minor, uint32_t status, std::string_view reason,
                std::span<const core::Field> headers, bool chunked);

/// write_head for the head the core decided (core::ResponseHead): chunked exactly when its
/// framing is Framing::chunked.
void write_head(std::string &out, uint32_t minor, const core::ResponseHead &head);

/// Appends a whole answer the server gives by itself (core::make_error_response: 400, 408,
/// 413, ...): head and body, with "Connection: close" as the core's error response says.
void write_error(std::string &out, uint32_t minor, uint32_t status);
/// write_error for a request whose method is HEAD when `head_request`: the same head (its
/// Content-Length included) without the body (REQ-REPLY-1).
void write_error(std::string &out, uint32_t minor, uint32_t status, bool head_request);

/// Appends the size line of a chunk of `size` bytes ("1a2b\r\n"); `size` must be > 0. The
/// caller sends the data and then chunk_end().
void write_chunk_header(std::string &out, size_t size);
/// The CRLF that ends a chunk's data.
constexpr std::string_view chunk_end() { return "\r\n"; }
/// Appends the last chunk, the trailer fields (valid already) and the final CRLF.
void write_last_chunk(std::string &out, std::span<const core::Header> trailers);

} // namespace cwsgi::http1
