// worker.hh: the body of one worker process, from the fork to its exit.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/adapter.hh"
#include "core/app.hh"
#include "core/context.hh"
#include "core/listen.hh"
#include "scoreboard.hh"

namespace cwsgi::arbiter {

/// What a worker gets from its master.
struct WorkerSpec {
    uint32_t id = 1; // worker_id (LIFE-WORKER-1), also its slot + 1
    const core::Config *config = nullptr;
    const std::string *app_path = nullptr;
    const core::AdapterOps *ops = nullptr;
    std::vector<core::Listener> *listeners = nullptr;
    Scoreboard *board = nullptr;
    core::App *preloaded = nullptr; // --preload: loaded and initialised by the master
    core::ExecMode preloaded_mode = core::ExecMode::threads;
    pid_t master = 0;
};

/// Runs the worker and exits the process: 0 after a graceful stop, 1 on a server failure, 3 when
/// it cannot boot (worker_start failed, privileges could not be dropped), 4 when the app does not
/// load or its init fails (LIFE-LOAD-2, LIFE-WORKER-2). Call in the child, right after fork(),
/// with every signal blocked (the child unblocks them once its own handlers are in place).
[[noreturn]] void run_worker(const WorkerSpec &spec);

} // namespace cwsgi::arbiter
