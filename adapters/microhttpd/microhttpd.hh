// microhttpd.hh: the libmicrohttpd adapter, as cwsgi-serve's adapter table sees it.
//
// `cwsgi-serve --adapter microhttpd app.so` serves the app with GNU libmicrohttpd (0.9.70 or
// newer; written and measured against Debian's 0.9.75): epoll event-loop threads move the
// bytes, a separate pool of --threads threads runs the app. README.md in this folder says what
// it supports, how each ABI call maps onto libmicrohttpd, and what libmicrohttpd still lets
// through.
#pragma once

#include "core/adapter.hh"

namespace cwsgi::adapters {

/// The adapter's table entry: name "microhttpd", its capabilities (CWSGI_CAP_SENDFILE,
/// CWSGI_CAP_DISCONNECT, CWSGI_CAP_THREADS, CWSGI_CAP_REQUEST_TRAILERS, CWSGI_CAP_PIPELINING)
/// and its serve() function.
/// Ownership: static storage. Threads: any.
const core::AdapterOps &microhttpd_ops();

} // namespace cwsgi::adapters
