// probe.hh: the hooks through which a worker process tells its master what it is doing.
//
// The arbiter (lib/arbiter/) installs one WorkerProbe in each worker it forks, before the
// worker's threads start. The core's request path and the execution layer call it at a few
// points; with no probe installed (a process without a master, the test host) each point costs
// one load of a null pointer. The probe writes into memory the master shares, so that a worker
// that dies or hangs can be named with the requests it was serving.
#pragma once

#include <cstdint>
#include <string_view>

namespace cwsgi::core {

struct WorkerProbe {
    /// A request is about to reach the app's handle(). Returns a token for request_ended (-1 when
    /// it was not recorded). Threads: the thread or fiber that runs handle(); must not block.
    int (*request_started)(uint64_t id, std::string_view method, std::string_view target);
    /// A request ended (after on_request_end and its access-log line), with the token that
    /// request_started returned, or -1 for a request that never reached the app. Threads: any.
    void (*request_ended)(int token);
    /// The calling event-loop thread starts (true) or stops (false) running a fiber: while one
    /// runs, the loop serves nothing else, so a fiber that runs too long means a hung loop.
    /// Threads: an event-loop thread, never on a fiber.
    void (*fiber_running)(bool running);
};

/// Installs `probe` (static storage, or nullptr to remove it). Call before the process starts the
/// threads that serve requests; the pointer is read without synchronisation afterwards.
void set_worker_probe(const WorkerProbe *probe);

namespace detail {
extern const WorkerProbe *g_worker_probe;
}

/// The installed probe, or nullptr. Threads: any.
inline const WorkerProbe *worker_probe() { return detail::g_worker_probe; }

} // namespace cwsgi::core
