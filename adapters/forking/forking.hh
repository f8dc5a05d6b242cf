// forking.hh: the forking adapter, as cwsgi-serve's adapter table sees it.
//
// `cwsgi-serve --adapter forking -w N app.so` is gunicorn's pre-fork server with CWSGI's own
// HTTP/1.1 engine: the arbiter's master forks N workers, and each runs one epoll loop that
// accepts on the inherited listeners, holds idle keep-alive connections, parses requests with
// lib/http1 and runs handle() through the execution layer (a thread pool, one request at a time
// with --threads 1 as gunicorn's sync worker; fibers with -k gevent). README.md
// in this folder says what it supports, how each ABI call maps onto it, and its limits.
#pragma once

#include "core/adapter.hh"

namespace cwsgi::adapters {

/// The adapter's table entry: name "forking", its capabilities (CWSGI_CAP_SENDFILE,
/// CWSGI_CAP_INFORMATIONAL, CWSGI_CAP_REQUEST_TRAILERS, CWSGI_CAP_DISCONNECT,
/// CWSGI_CAP_PIPELINING, CWSGI_CAP_THREADS) and its serve() function.
/// Ownership: static storage. Threads: any.
const core::AdapterOps &forking_ops();

} // namespace cwsgi::adapters
