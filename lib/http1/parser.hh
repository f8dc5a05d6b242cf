// parser.hh: CWSGI's own HTTP/1.1 request parser: the request head, then the body framing.
//
// Written by hand because no maintained C HTTP/1 parser ships in Debian (llhttp is not
// packaged, nodejs/http-parser is archived) and the forking adapter is the one whose parser
// is the attack surface. It is strict as RFC 9112 reads, incremental (bytes may arrive one at a
// time, and a head fed byte by byte costs O(n) in total, not O(n^2)), zero-copy (every view
// points into the caller's buffer) and bounded by the core's Limits while it reads, so a
// hostile client cannot make it hold more than the limits allow.
//
// The split with the core: this parser checks the wire grammar that a core::RequestHead cannot
// express once built (line endings, whitespace around names and values, obs-fold, the version's
// syntax, chunk framing, the limits while bytes arrive). core::validate_request_head then checks
// the head's meaning for every adapter alike (one Host, one Content-Length, Transfer-Encoding,
// Expect, the target's form); the parser does not repeat those checks.
//
// How the forking adapter drives it, per connection:
//   HeadParser head(limits);
//   while (head.feed(buffer_since_request_start) == Progress::more) read more;
//   on Progress::error: answer head.error().status (the request never reaches the app);
//   on Progress::done:  fill_request_head(head, buffer, request_head), then
//                       validate_request_head(), then BodyDecoder::for_check(check);
//                       the body starts at buffer[head.head_size()].
//   head.reset() before the next request on the same connection (pipelining).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/http.hh"

namespace cwsgi::http1 {

/// Where a parse step stands.
enum class Progress : uint8_t {
    more,  // every byte given so far is consumed and valid; feed more
    done,  // a complete head (HeadParser) or the end of the body (BodyDecoder)
    error, // the input breaks the grammar or a limit; error() says how to answer
};

/// Why the input was refused: the status the server answers (400, 413, 414, 431, 505), one
/// line for the error log, and the spec rule that decided it. Static strings only, so an
/// Error is copied freely and costs no allocation.
struct Error {
    uint32_t status = 0;
    const char *reason = "";
    const char *rule = "";
};

/// One header field as views into the caller's buffer: the name as sent (not lowercased),
/// the value with its leading and trailing whitespace (SP, HTAB) removed.
struct FieldView {
    std::string_view name;
    std::string_view value;
};

/// The incremental parser of one request head: request-line, field lines, the empty line.
/// Leading empty lines before a request line are skipped (RFC 9112 section 2.2). One object
/// per connection, reset() between requests; after the first request it allocates nothing
/// unless a later head has more fields than any before. Threads: one at a time.
class HeadParser {
public:
    explicit HeadParser(const core::Limits &limits);

    /// Parses `buf`, the connection's bytes from the start of this request (the first byte
    /// after the previous request's body). Every call must pass the same bytes again, possibly
    /// followed by more (the buffer may have moved in memory); the parser resumes where it
    /// stopped. Returns more, done (the head is the first head_size() bytes of `buf`) or error.
    /// After done or error it returns the same again until reset().
    Progress feed(std::string_view buf);

    /// The error after feed() returned Progress::error.
    const Error &error() const { return error_; }

    /// After done: the head's parts, views into the `buf` of the last feed() call (valid
    /// while those bytes are). The method and target as sent; the version's digits.
    std::string_view method() const;
    std::string_view target() const;
    uint32_t http_major() const { return major_; }
    uint32_t http_minor() const { return minor_; }
    /// The fields in arrival order, duplicates kept. Views as method() says.
    std::span<const FieldView> fields() const { return {fields_.data(), fields_.size()}; }
    /// Bytes of `buf` the head took, its final CRLF included (and any skipped empty lines).
    size_t head_size() const { return head_size_; }

    /// Forgets the last request and gets ready for the next one on this connection.
    void reset();

private:
    enum class State : uint8_t { start, fields, done, error };
    struct Span {
        size_t off = 0, len = 0;
    };
    struct FieldSpan {
        Span name, value;
    };
    Progress refuse(uint32_t status, const char *rule, const char *reason);
    Progress line_too_long(size_t content);
    Progress request_line(std::string_view line);
    Progress field_line(std::string_view line, size_t off);
    void publish();
    core::Limits limits_;
    std::string_view buf_;
    size_t pos_ = 0;             // the next byte of buf to look at
    State state_ = State::start; // where in the grammar line_start_ is
    Span method_, target_;
    uint32_t major_ = 1, minor_ = 1;
    std::vector<FieldSpan> spans_; // fields as offsets (the buffer may move between calls)
    std::vector<FieldView> fields_;
    size_t line_start_ = 0;    // the first byte of the line being read
    uint32_t empty_lines_ = 0; // empty lines skipped before the request line
    size_t head_size_ = 0;
    Error error_;
    friend bool fill_request_head(const HeadParser &, core::RequestHead &);
};

/// Copies a parsed head (after Progress::done) into `head`: method, target, version and every
/// field through RequestHead::add_header, in order. The caller sets the connection facts
/// (addresses, TLS). Returns false when the head's arena is out of memory.
bool fill_request_head(const HeadParser &parser, core::RequestHead &head);

/// The decoder of one request body, as validate_request_head delimited it: none, a
/// Content-Length, or chunked (RFC 9112 section 7.1: chunk-size, chunk extensions exactly as
/// the grammar says, chunk data, CRLF, the last chunk, trailer fields, the final CRLF).
/// Zero-copy: decode() hands back views of the data bytes inside the caller's input. Bounded:
/// a chunk-size line and the trailer section obey the same limits as a head. Threads: one at
/// a time.
class BodyDecoder {
public:
    /// A decoder for a body of `kind` (BodyKind::stream is not HTTP/1 and is refused as none)
    /// with `content_length` bytes for BodyKind::length.
    static BodyDecoder for_check(const core::HeadCheck &check, const core::Limits &limits);

    /// Decodes from `in`, the bytes that follow what the previous calls consumed. Sets
    /// `consumed` to how many bytes of `in` it used (framing included) and `data` to the
    /// body bytes found among them (a view into `in`; empty when only framing was read). It
    /// stops after at most one run of data bytes, so the caller loops while consumed > 0 and
    /// bytes remain. Returns more (call again with more input), done (the body is complete:
    /// bytes after `consumed` belong to the next request) or error.
    Progress decode(std::string_view in, size_t &consumed, std::string_view &data);

    const Error &error() const { return error_; }
    /// True once done was returned.
    bool complete() const;
    /// Body bytes still expected for a Content-Length body; -1 for chunked.
    int64_t remaining() const;
    /// The trailer fields of a chunked body, once done (names as sent, values trimmed).
    const std::vector<core::Header> &trailers() const { return trailers_; }

private:
    // Where a chunked body's reader stands (RFC 9112 section 7.1 grammar, one state per
    // position in the chunk-size line, the data, the trailer section).
    enum class Chunk : uint8_t {
        size_first,
        size,
        ext_bws_semi,
        ext_bws_name,
        ext_name,
        ext_after_name,
        ext_bws_value,
        ext_token,
        ext_quoted,
        ext_quoted_pair,
        ext_after_quoted,
        line_lf,
        data,
        data_cr,
        data_lf,
        trailer,
        done,
        error,
    };
    Progress refuse(uint32_t status, const char *rule, const char *reason);
    Progress decode_length(std::string_view in, size_t &consumed, std::string_view &data);
    Progress decode_chunked(std::string_view in, size_t &consumed, std::string_view &data);
    bool chunk_line_byte(unsigned char c); // false once state_ is error
    Progress trailer_bytes(std::string_view in, size_t &i);
    core::Limits limits_;
    core::BodyKind kind_ = core::BodyKind::none;
    int64_t remaining_ = 0;
    Chunk state_ = Chunk::size_first; // done and error for every kind; the rest for chunked
    uint64_t chunk_left_ = 0;
    size_t line_bytes_ = 0; // bytes of the chunk-size line read so far
    std::string line_;      // the trailer line being read (its bytes may be gone from `in`)
    std::vector<core::Header> trailers_;
    Error error_;
};

} // namespace cwsgi::http1
