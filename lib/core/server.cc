// server.cc: the process lifecycle around an adapter (see server.hh).
#include "server.hh"

#include <signal.h>
#include <unistd.h>

#include <cstring>

#include <fmt/format.h>

#include "app.hh"

namespace cwsgi::core {

namespace {

void on_stop_signal(int)
{
    // Only async-signal-safe work here: an atomic store and one write(2) to the stop pipe.
    if (Context *ctx = Context::current()) ctx->request_stop();
}

} // namespace

void install_stop_signals()
{
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGQUIT, &sa, nullptr);
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, nullptr);
}

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

int run_server(const Config &config, const std::string &app_path, const AdapterOps &ops, ConfigReloader)
{
    Context ctx(config, ops.name, ops.capabilities);
    Context::set_current(&ctx);
    std::string error;
    if (!ctx.log().open(config.error_logfile, error) || !ctx.access_log().open(config.access_logfile, error)) {
        ctx.log().error(error);
        return kExitUsage;
    }
    install_stop_signals();
    ctx.log().info(fmt::format("Starting cwsgi-serve {} (adapter {})", CWSGI_VERSION_STRING, ops.name));

    // LIFE-LOAD-1: load and init in the master, before any worker exists.
    auto app = App::load(app_path, ctx.api(), error);
    if (!app) {
        ctx.log().error(error);
        return kExitAppLoadError;
    }
    // Decided before init, so that server_info already reports it there (LIFE-INFO-2).
    std::string note;
    ctx.set_exec_mode(choose_exec_mode(config, ops, app->cooperative(), note));
    if (ctx.exec_mode() == ExecMode::cooperative && !app->cooperative()) {
        ctx.log().warning("Execution: " + note);
    } else {
        ctx.log().info("Execution: " + note);
    }
    if (app->init(error) != CWSGI_OK) {
        ctx.log().error(error);
        return kExitAppLoadError;
    }
    ctx.set_app(app.get());

    std::vector<Listener> listeners;
    if (!open_listeners(config.binds, listeners, error)) {
        ctx.log().error(error);
        app->destroy();
        return kExitFailure;
    }
    for (const Listener &l : listeners) {
        ctx.log().info(fmt::format("Listening at: {} ({})", l.display, static_cast<long>(::getpid())));
    }

    // LIFE-WORKER-1: one worker (id 1) in this process until the arbiter lands.
    ctx.set_worker_id(1);
    if (app->worker_start(1, error) != CWSGI_OK) {
        ctx.log().error(error);
        close_listeners(listeners);
        app->destroy();
        return kExitWorkerBootError;
    }
    ctx.log().info(fmt::format("Booting worker with pid: {}", static_cast<long>(::getpid())));
    int rc = ops.serve(ctx, listeners);
    app->worker_stop(1); // LIFE-WORKER-3: after the adapter drained
    close_listeners(listeners);
    app->destroy();
    ctx.set_app(nullptr);
    ctx.log().info("Shutting down");
    return rc;
}

} // namespace cwsgi::core
