// server.cc: the process lifecycle around an adapter (see server.hh).
#include "server.hh"

#include <unistd.h>

#include <cstring>

#include <fmt/format.h>

#include "app.hh"
#include "arbiter/arbiter.hh"

namespace cwsgi::core {

ExecMode choose_exec_mode(const Config &config, const AdapterOps &ops, bool app_cooperative, std::string &note,
                          bool app_needs_threads)
{
    if (config.worker_class == ExecMode::cooperative && !ops.cooperative) {
        note = fmt::format("threads (the {} adapter cannot run handle() on fibers; -k gevent ignored)", ops.name);
        return ExecMode::threads;
    }
    const bool many_threads = config.threads_given && config.threads > 1;
    if (config.worker_class == ExecMode::sync) {
        // THR-10, as gunicorn: --threads N > 1 with the sync worker class is gthread.
        if (many_threads) {
            note = fmt::format("threads (-k sync with --threads {} is gthread, as in gunicorn)", config.threads);
            return ExecMode::threads;
        }
        if (app_needs_threads) {
            note = "threads (-k sync ignored: the app requires CWSGI_CAP_THREADS, which sync mode does not offer)";
            return ExecMode::threads;
        }
        note = ops.sync ? "sync (chosen with -k sync: one request at a time per worker, on its loop thread)"
                        : fmt::format("sync (chosen with -k sync: the {} adapter runs it on one app thread per "
                                      "worker, since a blocking handle must not stall its event loop, THR-4)",
                                      ops.name);
        return ExecMode::sync;
    }
    if (config.worker_class) {
        ExecMode mode = *config.worker_class;
        if (mode == ExecMode::cooperative && !app_cooperative) {
            note = "cooperative (-k gevent), but the app does not declare CWSGI_APP_COOPERATIVE: a handle that "
                   "blocks outside CWSGI calls stalls its whole event-loop thread";
        } else {
            note = fmt::format("{} (chosen with -k {})", exec_mode_name(mode), worker_class_name(mode));
        }
        return mode;
    }
    if (app_cooperative && ops.cooperative) {
        note = "cooperative (the app declares CWSGI_APP_COOPERATIVE)";
        return ExecMode::cooperative;
    }
    if (ops.sync && !app_needs_threads && !many_threads) {
        // THR-10: gunicorn's default worker class.
        note = "sync (the app does not declare CWSGI_APP_COOPERATIVE: one request at a time per worker, as "
               "gunicorn's default worker class; -k gthread or --threads N for a pool)";
        return ExecMode::sync;
    }
    note = app_cooperative            ? fmt::format("threads (the {} adapter has no fibers)", ops.name)
           : many_threads && ops.sync ? fmt::format("threads (--threads {}: gthread, as in gunicorn)", config.threads)
           : app_needs_threads && ops.sync ? std::string("threads (the app requires CWSGI_CAP_THREADS)")
                                           : std::string("threads (the app does not declare CWSGI_APP_COOPERATIVE)");
    return ExecMode::threads;
}

int run_server(const Config &config, const std::string &app_path, const AdapterOps &ops, ConfigReloader reload)
{
    // LIFE-ARB-1: a master by default, even with one worker, as gunicorn runs one.
    return arbiter::run_master(config, app_path, ops, std::move(reload));
}

} // namespace cwsgi::core
