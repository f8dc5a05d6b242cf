// adapter.hh: how an adapter plugs into cwsgi-serve, and the one table that lists them.
//
// An adapter is a name, the capabilities it offers, and a serve() function. The table lives in
// src/cwsgi-serve/adapters.cc; an adapter whose library was missing at build time stays in the
// table with `built = false` and the reason, so the user gets a clear message.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "context.hh"
#include "listen.hh"

namespace cwsgi::core {

struct AdapterOps {
    const char *name;
    const char *summary;        // one line for --help and errors
    bool built;                 // false: library missing at build time
    const char *missing_reason; // when !built: "libmicrohttpd-dev was not found"
    uint64_t capabilities;      // CWSGI_CAP_* this adapter offers
    /// Serves the app in ctx on `listeners` until ctx.shutting_down(), then drains in-flight
    /// requests for up to graceful_timeout. Returns a process exit code. The app's
    /// worker_start has run; worker_stop runs after serve returns.
    int (*serve)(Context &ctx, std::vector<Listener> &listeners);
    /// True when the adapter can run handle() on fibers on its event loops (THR-5); without
    /// it every app runs in threads mode.
    bool cooperative;
    /// True when the adapter runs sync mode (THR-10) inline on its loop thread and makes it
    /// the default for an app without the cooperative promise; false: -k sync runs on one app
    /// thread per worker (same one-at-a-time meaning) and the default stays gthread.
    bool sync = false;
};

/// AdapterOps::serve for an adapter whose `Server` is built from the Context and has
/// `bool start(std::vector<Listener> &, std::string &error)` and `bool stop()` (the graceful
/// stop; false while app threads are still inside the app). Starts it, waits until a stop is
/// requested, stops it. Returns 1 when start fails (its error logged), else 0. A Server whose
/// stop() returned false is kept, not destroyed: those threads may still reach it, and the
/// process is about to exit.
template <class Server> int serve_until_stopped(Context &ctx, std::vector<Listener> &listeners)
{
    auto server = std::make_unique<Server>(ctx);
    std::string error;
    if (!server->start(listeners, error)) {
        ctx.log().error(error);
        return 1;
    }
    ctx.wait_for_stop(-1);
    if (!server->stop()) (void)server.release();
    return 0;
}

/// The adapter table (src/cwsgi-serve/adapters.cc), terminated by an entry with name nullptr.
const AdapterOps *adapter_table();
/// The adapter named `name`, or nullptr.
const AdapterOps *find_adapter(const char *name);

} // namespace cwsgi::core
