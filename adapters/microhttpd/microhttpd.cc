// microhttpd.cc: the adapter's entry in cwsgi-serve's table and its serve() function.
#include "microhttpd.hh"

#include <memory>
#include <string>

#include "server.hh"

namespace cwsgi::adapters {

namespace {

/// Serves until a stop is requested, then stops gracefully (core::AdapterOps::serve).
int serve(core::Context &ctx, std::vector<core::Listener> &listeners)
{
    return core::serve_until_stopped<mhd::Server>(ctx, listeners);
}

} // namespace

const core::AdapterOps &microhttpd_ops()
{
    // CWSGI_CAP_PIPELINING: libmicrohttpd keeps bytes that follow a request in its buffer and
    // answers them in order. No CWSGI_CAP_INFORMATIONAL: it has no way to send a 1xx.
    static const core::AdapterOps ops{
        "microhttpd",
        "libmicrohttpd: epoll threads, handle() on fibers or an app thread pool (the simple embeddable one)",
        true,
        nullptr,
        CWSGI_CAP_SENDFILE | CWSGI_CAP_DISCONNECT | CWSGI_CAP_THREADS | CWSGI_CAP_REQUEST_TRAILERS |
            CWSGI_CAP_PIPELINING,
        &serve,
        true,
    };
    return ops;
}

} // namespace cwsgi::adapters
