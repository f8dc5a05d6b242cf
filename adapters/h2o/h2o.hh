// h2o.hh: the libh2o adapter, as cwsgi-serve's adapter table sees it.
//
// `cwsgi-serve --adapter h2o app.so` serves the app with libh2o (Debian's libh2o-evloop-dev,
// h2o 2.2.5): HTTP/1.1 with keep-alive and pipelining and HTTP/2 over cleartext (prior
// knowledge and Upgrade: h2c), from N event-loop threads; handle() runs on fibers on those
// loops or on a thread pool. README.md in this folder says what it supports, how each ABI call
// maps onto libh2o, and what libh2o still lets through.
#pragma once

#include "core/adapter.hh"

namespace cwsgi::adapters {

/// The adapter's table entry: name "h2o", its capabilities (CWSGI_CAP_DISCONNECT,
/// CWSGI_CAP_THREADS, CWSGI_CAP_PIPELINING, CWSGI_CAP_HTTP2) and its serve() function.
/// Ownership: static storage. Threads: any.
const core::AdapterOps &h2o_ops();

} // namespace cwsgi::adapters
