// worker.cc: one worker process (see worker.hh).
//
// The worker's main thread loads the app (unless the master preloaded it), boots it and hands
// control to the adapter's serve(). A second thread, the ticker, is the worker's own manager: it
// beats the heartbeat in the scoreboard, takes the signals the master sends (TERM: graceful stop;
// INT and QUIT: quick exit, as gunicorn's workers; USR1: reopen the logs) and stops the worker
// when its master is gone. Signals are handled on the ticker, never in the handler.
#include "worker.hh"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "core/server.hh"
#include "system.hh"

namespace cwsgi::arbiter {

namespace {

core::Context *g_ctx = nullptr;
WorkerSlot *g_slot = nullptr;

void retire(const char *why)
{
    g_slot->state.store(static_cast<uint32_t>(WorkerState::retiring), std::memory_order_release);
    if (why != nullptr) g_ctx->log().info(why);
    g_ctx->request_stop();
}

// The core's probe calls this from the request that reached --max-requests. The worker serves
// on until the master, once a replacement serves, sends TERM (LIFE-ARB-13).
void on_max_requests()
{
    g_slot->state.store(static_cast<uint32_t>(WorkerState::retiring), std::memory_order_release);
    g_ctx->log().info("Autorestarting worker after current request.");
    // A nudge: SIGCHLD makes the master look at its workers now rather than within a second.
    ::kill(::getppid(), SIGCHLD);
}

class Ticker {
public:
    Ticker(core::Context &ctx, WorkerSlot &slot, pid_t master, SignalQueue &signals)
        : ctx_(ctx), slot_(slot), master_(master), signals_(signals)
    {
        uint32_t t = ctx.config().worker_timeout_ms;
        // Several beats per timeout, so one late wake-up of a busy machine is not a hang.
        interval_ms_ = t == 0 ? 1000 : static_cast<int>(std::clamp<uint32_t>(t / 4, 10, 1000));
        thread_ = std::thread([this] { run(); });
    }
    ~Ticker()
    {
        stop_.store(true, std::memory_order_release);
        ::kill(::getpid(), SIGWINCH); // wakes next(): WINCH is queued and ignored
        thread_.join();
    }

private:
    void run()
    {
        while (!stop_.load(std::memory_order_acquire)) {
            int sig = signals_.next(interval_ms_);
            slot_.beat_ms.store(now_ms(), std::memory_order_relaxed);
            switch (sig) {
            case SIGTERM: retire(nullptr); break;
            case SIGINT:
            case SIGQUIT:
                // gunicorn's quick exit: no drain, no app callback.
                ::_exit(0);
            case SIGUSR1: {
                std::string error;
                if (!ctx_.log().reopen(error) || !ctx_.access_log().reopen(error)) ctx_.log().error(error);
                break;
            }
            default: break;
            }
            if (::getppid() != master_ && !ctx_.shutting_down()) {
                ctx_.log().warning(fmt::format("Master (pid:{}) is gone; stopping", static_cast<long>(master_)));
                retire(nullptr);
            }
        }
    }

    core::Context &ctx_;
    WorkerSlot &slot_;
    pid_t master_;
    SignalQueue &signals_;
    int interval_ms_ = 1000;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

// --max-requests-jitter: each worker draws its own 0..N, so that workers started together do not
// all restart together.
uint64_t jitter(const core::Config &c)
{
    if (c.max_requests_jitter == 0) return 0;
    std::minstd_rand rng(static_cast<unsigned>(::getpid()) * 2654435761u ^ static_cast<unsigned>(now_ms()));
    return rng() % (uint64_t{c.max_requests_jitter} + 1);
}

[[noreturn]] void leave(int code)
{
    std::fflush(nullptr);
    ::_exit(code);
}

} // namespace

void run_worker(const WorkerSpec &spec)
{
    const core::Config &config = *spec.config;
    WorkerSlot &slot = spec.board->slot(spec.id - 1);
    g_slot = &slot;
    // A master that dies without a word (SIGKILL) still stops its workers, gracefully.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    set_process_title(fmt::format("{}: worker {}", config.proc_name, spec.id));

    core::Context ctx(config, spec.ops->name, spec.ops->capabilities);
    core::Context::set_current(&ctx);
    g_ctx = &ctx;
    std::string error;
    if (!ctx.log().open(config.error_logfile, error) || !ctx.access_log().open(config.access_logfile, error)) {
        ctx.log().error(error);
        leave(core::kExitWorkerBootError);
    }
    SignalQueue signals;
    if (!signals.open({SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGWINCH, SIGHUP, SIGTTIN, SIGTTOU, SIGUSR2}, error)) {
        ctx.log().error(error);
        leave(core::kExitWorkerBootError);
    }
    // A client that left must be an error code from a send, never a dead worker: libh2o
    // writes with writev(2), which raises SIGPIPE on a connection the peer reset or that was
    // shut down under it (a rapid-reset cut, LIFE-DISC-1).
    ::signal(SIGPIPE, SIG_IGN);
    sigset_t all;
    sigfillset(&all);
    ::pthread_sigmask(SIG_UNBLOCK, &all, nullptr);
    if (getppid() != spec.master) leave(core::kExitOk); // the master died while we forked
    Ticker ticker(ctx, slot, spec.master, signals);
    ctx.log().info(fmt::format("Booting worker with pid: {}", static_cast<long>(::getpid())));

    if (!drop_privileges(config.user, config.group, error)) {
        ctx.log().error(error);
        leave(core::kExitWorkerBootError);
    }
    spec.board->install_probe(spec.id - 1, config.max_requests == 0 ? 0 : config.max_requests + jitter(config),
                              &on_max_requests);

    // LIFE-LOAD-5: without --preload each worker loads the app itself, so that a new generation
    // of workers (HUP) runs the .so as it is on disk now.
    std::unique_ptr<core::App> own;
    core::App *app = spec.preloaded;
    if (app == nullptr) {
        own = core::App::load(*spec.app_path, ctx.api(), error);
        if (!own) {
            ctx.log().error(error);
            leave(core::kExitAppLoadError);
        }
        std::string note;
        ctx.set_exec_mode(core::choose_exec_mode(config, *spec.ops, own->cooperative(), note, own->needs_threads()));
        if (spec.id == 1) ctx.log().info("Execution: " + note);
        if (own->init(error) != CWSGI_OK) {
            ctx.log().error(error);
            leave(core::kExitAppLoadError);
        }
        app = own.get();
    } else {
        ctx.set_exec_mode(spec.preloaded_mode);
    }
    ctx.set_app(app);
    ctx.set_worker_id(spec.id);
    if (app->worker_start(spec.id, error) != CWSGI_OK) {
        ctx.log().error(error);
        if (own) own->destroy();
        leave(core::kExitWorkerBootError);
    }
    if (!ctx.shutting_down()) slot.state.store(static_cast<uint32_t>(WorkerState::ready), std::memory_order_release);
    int rc = spec.ops->serve(ctx, *spec.listeners);
    app->worker_stop(spec.id); // LIFE-WORKER-3: after the adapter drained
    if (own) own->destroy();   // LIFE-LOAD-3: in the process that ran init
    ctx.set_app(nullptr);
    ctx.log().info(fmt::format("Worker exiting (pid: {})", static_cast<long>(::getpid())));
    leave(rc);
}

} // namespace cwsgi::arbiter
