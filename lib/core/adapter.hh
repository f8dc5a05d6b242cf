// adapter.hh: how an adapter plugs into cwsgi-serve, and the one table that lists them.
//
// An adapter is a name, the capabilities it offers, and a serve() function. The table lives in
// src/cwsgi-serve/adapters.cc; an adapter whose library was missing at build time stays in the
// table with `built = false` and the reason, so the user gets a clear message.
#pragma once

#include <cstdint>
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
};

/// The adapter table (src/cwsgi-serve/adapters.cc), terminated by an entry with name nullptr.
const AdapterOps *adapter_table();
/// The adapter named `name`, or nullptr.
const AdapterOps *find_adapter(const char *name);

} // namespace cwsgi::core
