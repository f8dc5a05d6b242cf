// main.cc: cwsgi-serve, the command line that serves a CWSGI app with any adapter.
//
// options.cc turns the command line and the -c file into a Config; this file acts on it:
// --help, --version, --list-adapters, --print-config, --check, or run_server() with a HUP
// reloader that parses the same words again. Exit codes are gunicorn's (core/server.hh).
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/adapter.hh"
#include "core/app.hh"
#include "core/context.hh"
#include "core/server.hh"
#include "options.hh"

using namespace cwsgi::core;
using cwsgi::serve::Action;
using cwsgi::serve::Invocation;

namespace {

const AdapterOps *default_adapter()
{
    static const char *kPreference[] = {"h2o", "microhttpd", "forking"};
    for (const char *name : kPreference) {
        const AdapterOps *a = find_adapter(name);
        if (a && a->built) return a;
    }
    return nullptr;
}

// The adapter `name` asks for ("" = the default), or nullptr with `error` set. --check without
// an adapter in this build checks the ABI handshake alone, against a server that offers no
// optional capability.
const AdapterOps *resolve_adapter(const std::string &name, bool check, std::string &error)
{
    static const AdapterOps kNone{"none", "no adapter (ABI check only)", true, nullptr, 0, nullptr, false};
    const AdapterOps *ops = name.empty() ? default_adapter() : find_adapter(name.c_str());
    if (check && ops == nullptr && name.empty()) return &kNone;
    if (ops && ops->built) return ops;
    if (ops) {
        error = fmt::format("adapter '{}' is not available: {}", ops->name, ops->missing_reason);
    } else if (name.empty()) {
        error = "no adapter was built";
    } else {
        error = fmt::format("unknown adapter '{}'", name);
    }
    error += "\nAdapters:\n" + cwsgi::serve::adapter_list();
    return nullptr;
}

int usage_error(const std::string &message)
{
    std::fprintf(stderr, "cwsgi-serve: %s\n", message.c_str());
    return kExitUsage;
}

std::string current_dir()
{
    char buf[4096];
    return ::getcwd(buf, sizeof buf) ? std::string(buf) : std::string(".");
}

// What the master does to itself before the app loads, in gunicorn's order: the environment
// (-e), the working directory (--chdir), the file mode mask (--umask). False with `error` set.
bool apply_master_settings(const Config &cfg, std::string &error)
{
    for (const auto &[key, value] : cfg.env) {
        if (::setenv(key.c_str(), value.c_str(), 1) != 0) {
            error = fmt::format("--env {}: {}", key, std::strerror(errno));
            return false;
        }
    }
    if (!cfg.chdir.empty() && ::chdir(cfg.chdir.c_str()) != 0) {
        error = fmt::format("--chdir {}: {}", cfg.chdir, std::strerror(errno));
        return false;
    }
    if (cfg.umask >= 0) ::umask(static_cast<mode_t>(cfg.umask));
    return true;
}

// Runs worker_start(1) and worker_stop(1) in a forked scratch process, as a worker would after
// fork (LIFE-WORKER-1..3), so that --check fails for an app that cannot boot. The child writes
// the app's message to a pipe; it gets --timeout (the worker timeout) to finish. Returns
// kExitOk, or kExitWorkerBootError with `error` set.
int check_worker_boot(Context &ctx, App &app, std::string &error)
{
    int fds[2];
    if (::pipe(fds) != 0) {
        error = fmt::format("cannot check worker_start: pipe: {}", std::strerror(errno));
        return kExitFailure;
    }
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) {
        error = fmt::format("cannot check worker_start: fork: {}", std::strerror(errno));
        ::close(fds[0]);
        ::close(fds[1]);
        return kExitFailure;
    }
    if (pid == 0) {
        ::close(fds[0]);
        ctx.set_worker_id(1);
        std::string message;
        int rc = app.worker_start(1, message) == CWSGI_OK ? kExitOk : kExitWorkerBootError;
        if (rc == kExitOk) {
            app.worker_stop(1);
        } else {
            ssize_t ignored = ::write(fds[1], message.data(), message.size());
            (void)ignored;
        }
        std::fflush(nullptr);
        ::_exit(rc);
    }
    ::close(fds[1]);
    const uint32_t limit_ms = ctx.config().worker_timeout_ms;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(limit_ms);
    std::string message;
    bool timed_out = false;
    for (;;) {
        int wait_ms = -1;
        if (limit_ms > 0) {
            auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                timed_out = true;
                break;
            }
            wait_ms = static_cast<int>(left.count());
        }
        pollfd p{fds[0], POLLIN, 0};
        int n = ::poll(&p, 1, wait_ms);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) continue; // the deadline is checked above
        char buf[1024];
        ssize_t got = ::read(fds[0], buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break; // the child is gone (or closed the pipe)
        message.append(buf, static_cast<size_t>(got));
    }
    ::close(fds[0]);
    if (timed_out) ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (timed_out) {
        error = fmt::format("app '{}': worker_start did not return within --timeout {} s (LIFE-WORKER-2)", app.origin(),
                            limit_ms / 1000.0);
        return kExitWorkerBootError;
    }
    if (WIFSIGNALED(status)) {
        error = fmt::format("app '{}': worker_start crashed: signal {} ({})", app.origin(), WTERMSIG(status),
                            strsignal(WTERMSIG(status)));
        return kExitWorkerBootError;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != kExitOk) {
        error = message.empty() ? fmt::format("app '{}': worker_start failed", app.origin()) : message;
        return kExitWorkerBootError;
    }
    return kExitOk;
}

int check_app(const std::string &path, const AdapterOps &ops, const Config &cfg)
{
    Context ctx(cfg, ops.name, ops.capabilities);
    Context::set_current(&ctx);
    std::string error;
    auto app = App::load(path, ctx.api(), error);
    if (!app) {
        std::fprintf(stderr, "cwsgi-serve: %s\n", error.c_str());
        return kExitAppLoadError;
    }
    std::string mode_note;
    ctx.set_exec_mode(choose_exec_mode(cfg, ops, app->cooperative(), mode_note, app->needs_threads()));
    if (app->init(error) != CWSGI_OK) {
        std::fprintf(stderr, "cwsgi-serve: %s\n", error.c_str());
        return kExitAppLoadError;
    }
    ctx.set_app(app.get());
    int rc = check_worker_boot(ctx, *app, error);
    app->destroy();
    ctx.set_app(nullptr);
    if (rc != kExitOk) {
        std::fprintf(stderr, "cwsgi-serve: %s\n", error.c_str());
        return rc;
    }
    std::printf("%sadapter:        %s (offers: %s)\nexecution:      %s\n"
                "result:         ok, the app loads and initialises, and worker_start succeeds\n",
                app->describe().c_str(), ops.name, capabilities_to_string(ctx.capabilities()).c_str(),
                mode_note.c_str());
    return kExitOk;
}

} // namespace

int main(int argc, char **argv)
{
    const std::vector<std::string> args(argv + 1, argv + argc);
    const std::string base_dir = current_dir();
    Invocation inv;
    std::string error;
    if (!cwsgi::serve::parse_invocation(args, base_dir, inv, error)) return usage_error(error);

    switch (inv.action) {
    case Action::help: std::fputs(inv.help.c_str(), stdout); return kExitOk;
    case Action::version:
        std::printf("cwsgi-serve %s (CWSGI ABI %d.%d)\n", CWSGI_VERSION_STRING, CWSGI_ABI_MAJOR, CWSGI_ABI_MINOR);
        return kExitOk;
    case Action::list_adapters:
        for (const AdapterOps *a = adapter_table(); a->name; ++a) {
            std::printf("%s\t%s\t0x%llx\n", a->name, a->built ? "built" : "missing",
                        static_cast<unsigned long long>(a->capabilities));
        }
        return kExitOk;
    default: break;
    }
    const AdapterOps *ops = resolve_adapter(inv.adapter_name, inv.action != Action::serve, error);
    if (ops == nullptr) {
        std::fprintf(stderr, "cwsgi-serve: %s", error.c_str());
        return kExitUsage;
    }
    inv.config.adapter = ops->name;
    if (!inv.config.certfile.empty() && (ops->capabilities & CWSGI_CAP_TLS) == 0) {
        return usage_error(
            fmt::format("--certfile and --keyfile need an adapter that serves TLS (h2o); {} does not", ops->name));
    }
    if (inv.action == Action::print_config) {
        std::fputs(cwsgi::serve::config_to_toml(inv).c_str(), stdout);
        return kExitOk;
    }
    if (inv.app_path.empty()) {
        return usage_error(
            "no app given: cwsgi-serve [OPTIONS] APP, or wsgi_app in the -c file (see cwsgi-serve --help)");
    }
    if (!apply_master_settings(inv.config, error)) {
        std::fprintf(stderr, "cwsgi-serve: %s\n", error.c_str());
        return kExitFailure;
    }
    if (inv.action == Action::check) return check_app(inv.app_path, *ops, inv.config);

    // HUP: the same words again, and the -c file as it is now. The adapter and the app path are
    // fixed for the life of the master (a new binary or app path needs USR2 or a restart).
    const std::string adapter = ops->name;
    const std::string app_path = inv.app_path;
    ConfigReloader reload = [args, base_dir, adapter, app_path](Config &out, std::string &why) {
        Invocation again;
        if (!cwsgi::serve::parse_invocation(args, base_dir, again, why)) {
            // The log line needs no pointer to --help, which ends every usage error.
            const std::string see_help = " (see cwsgi-serve --help)";
            if (why.size() >= see_help.size() &&
                why.compare(why.size() - see_help.size(), see_help.size(), see_help) == 0) {
                why.resize(why.size() - see_help.size());
            }
            return false;
        }
        std::string unused;
        const AdapterOps *now = resolve_adapter(again.adapter_name, false, unused);
        if (now == nullptr || adapter != now->name) {
            why = fmt::format("the adapter cannot change on reload (it is {}); restart instead", adapter);
            return false;
        }
        if (again.app_path != app_path) {
            why = fmt::format("the app path cannot change on reload (it is {}); restart instead", app_path);
            return false;
        }
        again.config.adapter = adapter;
        out = std::move(again.config);
        return true;
    };
    return run_server(inv.config, inv.app_path, *ops, std::move(reload));
}
