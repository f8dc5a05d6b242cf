// h2o.cc: the adapter's entry in cwsgi-serve's table and its serve() function.
#include "h2o.hh"

#include <memory>
#include <string>

#include "server.hh"

namespace cwsgi::adapters {

namespace {

/// Serves until a stop is requested, then stops gracefully (core::AdapterOps::serve).
int serve(core::Context &ctx, std::vector<core::Listener> &listeners)
{
    return core::serve_until_stopped<h2o::Server>(ctx, listeners);
}

} // namespace

const core::AdapterOps &h2o_ops()
{
    // Not offered: SENDFILE (libh2o 2.2.5 has no zero-copy path for a generator: send_file
    // goes through the core's bounded read loop), INFORMATIONAL (2.2.5 cannot send a 1xx
    // before the final response), REQUEST_TRAILERS (its chunked decoder drops them).
    static const core::AdapterOps ops{
        "h2o",
        "libh2o: HTTP/1.1, HTTP/2 (h2c, and h2 over TLS), event loops, handle() on fibers or a thread pool (the fast "
        "one)",
        true,
        nullptr,
        CWSGI_CAP_DISCONNECT | CWSGI_CAP_THREADS | CWSGI_CAP_PIPELINING | CWSGI_CAP_HTTP2 | CWSGI_CAP_TLS,
        &serve,
        true,
    };
    return ops;
}

} // namespace cwsgi::adapters

#if defined(__SANITIZE_ADDRESS__)
/// LeakSanitizer's built-in suppressions: libh2o 2.2.5 keeps the chunks of request memory pools
/// in a static per-thread list for reuse (memory.c's mempool_allocator), which nothing outside
/// the library can reach to free when a loop thread ends. The adapter frees everything else of
/// libh2o it can (socket buffers, queues, contexts, loops).
extern "C" __attribute__((visibility("default"))) const char *__lsan_default_suppressions()
{
    return "leak:h2o_mem_alloc_recycle\n";
}
#endif
