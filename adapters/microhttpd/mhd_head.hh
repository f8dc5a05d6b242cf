// mhd_head.hh: turns what libmicrohttpd parsed into a core::RequestHead, and finds the
// malformed requests that libmicrohttpd 0.9.75 accepts without a word.
//
// libmicrohttpd parses the head in place: it overwrites the CR LF of each line, the first space
// of the request line, the space before the version and each field's colon with NUL bytes, and
// hands out pointers into that buffer. The layout of those pointers therefore still tells what
// the raw bytes were: a method whose length does not reach the target pointer held a NUL; a
// field name that does not end right before its value was rebuilt by obs-fold handling; a value
// whose terminator is not two NULs held a NUL or ended in a bare LF. These checks read only
// bytes inside the connection's read buffer, between pointers libmicrohttpd gave us.
#pragma once

#include <microhttpd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/http.hh"

namespace cwsgi::adapters::mhd {

/// Parses libmicrohttpd's version string ("HTTP/1.1"; it has already refused other shapes).
/// Returns false when the string is not HTTP/d.d.
bool parse_http_version(const char *version, uint32_t &major, uint32_t &minor);

/// Checks that the request line had single spaces and no NUL: `uri` is the pointer the URI
/// log callback received, `target_len` the length of the raw target copied there, `method`
/// and `version` the access handler's arguments (all point into the same read buffer).
/// Returns nullptr when the line is sound, else a one-line reason for a 400.
/// Threads: the connection's libmicrohttpd thread, during the first access-handler call.
const char *check_request_line(const char *method, uintptr_t uri, size_t target_len, const char *version);

/// How libmicrohttpd will frame the request body, read from the same fields it reads.
struct MhdFraming {
    size_t te_fields = 0;    // Transfer-Encoding fields
    bool te_chunked = false; // libmicrohttpd decodes chunked (first TE value is "chunked")
};

/// Copies the fields of `kind` (MHD_HEADER_KIND or MHD_FOOTER_KIND) in arrival order,
/// duplicates kept, values with surrounding whitespace removed (RFC 9110 section 5.5): the
/// request head's fields into the head's arena (add_header, names lowercased), trailers into
/// a vector.
/// `line_before` is the string that ends on the line before the first field (the version of
/// the request line for headers), or nullptr when unknown; it anchors the end check when
/// there are no fields. `framing` (may be null) receives what libmicrohttpd will do with the
/// Transfer-Encoding fields.
/// Returns nullptr, or a one-line reason when a raw field line was malformed in a way
/// libmicrohttpd hides (obs-fold, NUL in a value, a line not ended by CR LF, a line with an
/// empty name that libmicrohttpd takes for the end of the block).
/// Threads: the connection's libmicrohttpd thread, inside an access-handler call.
const char *collect_fields(MHD_Connection *conn, MHD_ValueKind kind, core::RequestHead &out, MhdFraming *framing,
                           const char *line_before);
const char *collect_fields(MHD_Connection *conn, MHD_ValueKind kind, std::vector<core::Header> &out,
                           MhdFraming *framing, const char *line_before);

/// Tells whether libmicrohttpd would frame the body the way the core decided. It decodes
/// chunked only when the first Transfer-Encoding value is exactly "chunked", and reads any
/// other Transfer-Encoding as "until the connection closes", so a request the core accepts
/// with "identity" or a pass-through coding cannot be served (it would hang).
/// Returns nullptr when both agree, else a one-line reason.
const char *framing_mismatch(const core::HeadCheck &check, const MhdFraming &mhd);

/// Formats a socket address as numeric host and port ("" and "" for unix sockets).
void format_address(const struct sockaddr *sa, std::string &host, std::string &port);

} // namespace cwsgi::adapters::mhd
