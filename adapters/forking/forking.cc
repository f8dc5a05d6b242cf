// forking.cc: the adapter's entry in cwsgi-serve's table and its serve() function.
#include "forking.hh"

#include <memory>
#include <string>

#include "server.hh"

namespace cwsgi::adapters {

namespace {

/// Serves on this worker's thread until a stop is requested, then stops gracefully
/// (core::AdapterOps::serve). The loop runs on the calling thread itself: a worker has one.
int serve(core::Context &ctx, std::vector<core::Listener> &listeners)
{
    auto server = std::make_unique<forking::Server>(ctx);
    std::string error;
    if (!server->start(listeners, error)) {
        ctx.log().error(error);
        return 1;
    }
    // A Server whose app threads are still busy is kept: they may still reach it, and the
    // process is about to exit.
    if (!server->run()) (void)server.release();
    return 0;
}

} // namespace

const core::AdapterOps &forking_ops()
{
    // Every capability of an HTTP/1.1 server: zero-copy send_file (sendfile(2)), 1xx on the
    // wire, request trailers, disconnects seen while the app runs (the loop watches the socket),
    // pipelining, and handle() on several threads with -k gthread (not with -k sync, THR-10: the
    // core takes CWSGI_CAP_THREADS out then). Not HTTP/2, not TLS.
    static const core::AdapterOps ops{
        "forking",
        "pre-fork workers, each an epoll loop with CWSGI's own strict HTTP/1.1 parser; handle() one at a "
        "time on the loop (sync), on a thread pool (gthread) or on fibers (gevent)",
        true,
        nullptr,
        CWSGI_CAP_SENDFILE | CWSGI_CAP_INFORMATIONAL | CWSGI_CAP_REQUEST_TRAILERS | CWSGI_CAP_DISCONNECT |
            CWSGI_CAP_PIPELINING | CWSGI_CAP_THREADS,
        &serve,
        true,
        true, // THR-10: -k sync runs inline on the worker's loop, and is the default
    };
    return ops;
}

} // namespace cwsgi::adapters
