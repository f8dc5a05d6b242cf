// errors.hh: makes libh2o's own error answers look like the core's.
//
// libh2o 2.2.5 answers some requests before the adapter's handler runs: a Content-Length it
// cannot parse or a Transfer-Encoding other than "chunked" (400), a body over
// max_request_entity_size (413), an Expect other than 100-continue (417), a malformed chunk
// (400). Those answers go through the response filters of the path, so a filter that sees a
// response the adapter did not start rewrites its head and body into make_error_response's
// (REQ-REPLY-1) and logs it as the adapter's own refusals are logged. Answers libh2o writes
// straight to the socket (an unparsable request head) cannot be reached; known-limits.txt
// lists them.
#pragma once

#include <string_view>

#include "libh2o.hh"

namespace cwsgi::core {
class Context;
}

namespace cwsgi::adapters::h2o {

/// Registers the filter on `pathconf`, after removing libh2o's chunked encoder from it (the
/// adapter frames chunks itself, as the core decided). Threads: before the loops start.
void install_filters(h2o_pathconf_t *pathconf, core::Context &ctx);

/// Appends one response header to `req`'s list, as every answer of the adapter does. The name
/// goes in lowercased (HTTP/2 needs it so, and libh2o knows its tokens by it): one of libh2o's
/// tokens when it is one, else a lowercase copy in the request's pool. `name` itself is kept as
/// the spelling an HTTP/1 response shows (libh2o's orig_name); HTTP/2 has no use for it.
/// Unlike h2o_add_header_by_str, nothing is copied that need not be: about 195 instructions a
/// header fewer (callgrind: 390 for the two of apps/hello, over HTTP/1.1 and h2c alike).
/// Ownership: `name` and `value` are not copied; they must stay valid until the response head
/// is written (they live in the core request's arena, or in the request's pool).
/// Threads: the request's loop thread.
void add_response_header(h2o_req_t *req, std::string_view name, std::string_view value);

/// True when `gen` is one of the adapter's own generators (a Stream's, or a refused head's).
bool is_adapter_generator(const h2o_generator_t *gen);

} // namespace cwsgi::adapters::h2o
