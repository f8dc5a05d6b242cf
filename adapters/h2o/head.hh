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

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/http.hh"
#include "libh2o.hh"

namespace cwsgi::adapters::h2o {

/// The numeric addresses of a loop's recent connections, formatted once per connection rather
/// than once per request: libh2o 2.2.5 answers get_sockname with a getsockname(2) call each
/// time, and formatting two addresses and two ports cost about 1,400 instructions per request
/// (callgrind, apps/hello). Direct-mapped on libh2o's connection id, which is unique for the
/// process's life, so a slot holds either this connection's addresses or another's, never
/// stale ones. Threads: its loop thread only.
class AddressCache {
public:
    struct Entry {
        uint64_t id = 0; // libh2o's h2o_conn_t::id; 0 = empty
        bool is_unix = false;
        std::string remote_addr, remote_port, local_addr, local_port;
    };
    /// The addresses of `conn`, looked up once and then kept while its slot is not reused.
    const Entry &get(h2o_conn_t *conn);

private:
    static constexpr size_t kSlots = 256; // more than the connections one loop keeps busy at once
    std::array<Entry, kSlots> slots_;
};

/// Fills `out` (method, target, version, fields in arrival order, addresses, TLS, unix) from
/// `req`, as handed to the adapter's handler, with the addresses from `addresses` (the loop's
/// cache). Returns nullptr, or a one-line reason when the raw head could not be read again
/// (then the adapter answers 400).
/// Ownership: every view is copied into out's arena. Threads: the request's loop thread.
const char *build_head(h2o_req_t *req, AddressCache &addresses, core::RequestHead &out);

} // namespace cwsgi::adapters::h2o
