// server.cc: the process lifecycle around an adapter (see server.hh).
#include "server.hh"

#include <unistd.h>

#include <cstring>

#include <fmt/format.h>

#include "app.hh"
#include "arbiter/arbiter.hh"

namespace cwsgi::core {

ExecMode choose_exec_mode(const Config &config, const AdapterOps &ops, bool app_cooperative, std::string &note)
{
    if (config.worker_class == ExecMode::cooperative && !ops.cooperative) {
        note = fmt::format("threads (the {} adapter cannot run handle() on fibers; -k gevent ignored)", ops.name);
        return ExecMode::threads;
    }
    if (config.worker_class) {
        ExecMode mode = *config.worker_class;
        if (mode == ExecMode::cooperative && !app_cooperative) {
            note = "cooperative (-k gevent), but the app does not declare CWSGI_APP_COOPERATIVE: a handle that "
                   "blocks outside CWSGI calls stalls its whole event-loop thread";
        } else {
            note = fmt::format("{} (chosen with -k {})", exec_mode_name(mode),
                               mode == ExecMode::cooperative ? "gevent" : "gthread");
        }
        return mode;
    }
    if (app_cooperative && ops.cooperative) {
        note = "cooperative (the app declares CWSGI_APP_COOPERATIVE)";
        return ExecMode::cooperative;
    }
    note = app_cooperative ? fmt::format("threads (the {} adapter has no fibers)", ops.name)
                           : "threads (the app does not declare CWSGI_APP_COOPERATIVE)";
    return ExecMode::threads;
}

int run_server(const Config &config, const std::string &app_path, const AdapterOps &ops, ConfigReloader reload)
{
    // LIFE-ARB-1: a master by default, even with one worker, as gunicorn runs one.
    return arbiter::run_master(config, app_path, ops, std::move(reload));
}

} // namespace cwsgi::core
