// head.hh: turns a request libh2o parsed into a core::RequestHead, so that the core's checks see
// every field the client sent.
//
// libh2o 2.2.5 keeps Host, Content-Length, Transfer-Encoding, Expect and Upgrade out of the
// request's header list for HTTP/1 (it reads them into side fields, only the first
// Content-Length among several), so a head built from that list would hide the very fields the
// smuggling checks need (two Content-Length, a duplicate Host, Transfer-Encoding in HTTP/1.0).
// For HTTP/1 the head is therefore built from one parse of the raw request bytes, which are
// still at the start of the connection's input buffer while the handler runs (libh2o consumes
// them only after the response). For HTTP/2 it comes from the decoded header list, where
// libh2o already refused what RFC 9113 forbids; Content-Length, which libh2o strips, is put
// back from the buffered body.
#pragma once

#include <string_view>

#include "core/http.hh"
#include "libh2o.hh"

namespace cwsgi::adapters::h2o {

/// Fills `out` (method, target, version, fields in arrival order, addresses, TLS, unix) from
/// `req`, as handed to the adapter's handler. Returns nullptr, or a one-line reason when the
/// raw head could not be read again (then the adapter answers 400).
/// Ownership: every view is copied into out's arena. Threads: the request's loop thread.
const char *build_head(h2o_req_t *req, core::RequestHead &out);

} // namespace cwsgi::adapters::h2o
