// main.cc: cwsgi-serve, the command line that serves a CWSGI app with any adapter.
//
// Flags follow gunicorn's names and defaults where gunicorn has one, so a Flask + gunicorn
// user finds their way. Process-manager flags (--workers, --max-requests, ...) come with the
// arbiter; none is accepted before it can do something.
#include <unistd.h>

#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "core/adapter.hh"
#include "core/app.hh"
#include "core/context.hh"
#include "core/server.hh"

using namespace cwsgi::core;

namespace {

std::string adapter_list()
{
    std::string out;
    for (const AdapterOps *a = adapter_table(); a->name; ++a) {
        out += fmt::format("  {:<11} {}{}\n", a->name, a->summary,
                           a->built ? "" : fmt::format(" [not available: {}]", a->missing_reason));
    }
    return out;
}

const AdapterOps *default_adapter()
{
    static const char *kPreference[] = {"h2o", "microhttpd", "forking"};
    for (const char *name : kPreference) {
        const AdapterOps *a = find_adapter(name);
        if (a && a->built) return a;
    }
    return nullptr;
}

// "262144", "256k", "1m" (powers of 1024); false when it is not such a number.
bool parse_size(const std::string &s, uint64_t &out)
{
    size_t used = 0;
    unsigned long long n = 0;
    try {
        n = std::stoull(s, &used, 10);
    } catch (const std::exception &) {
        return false;
    }
    std::string unit = s.substr(used);
    uint64_t scale = 1;
    if (unit == "k" || unit == "K") {
        scale = 1024;
    } else if (unit == "m" || unit == "M") {
        scale = 1024 * 1024;
    } else if (!unit.empty()) {
        return false;
    }
    if (n > UINT64_MAX / scale) return false;
    out = n * scale;
    return true;
}

uint32_t parse_level(const std::string &s)
{
    if (s == "debug") return CWSGI_LOG_DEBUG;
    if (s == "info") return CWSGI_LOG_INFO;
    if (s == "warning") return CWSGI_LOG_WARNING;
    if (s == "error") return CWSGI_LOG_ERROR;
    return CWSGI_LOG_CRITICAL;
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
    ctx.set_exec_mode(choose_exec_mode(cfg, ops, app->cooperative(), mode_note));
    if (app->init(error) != CWSGI_OK) {
        std::fprintf(stderr, "cwsgi-serve: %s\n", error.c_str());
        return kExitAppLoadError;
    }
    app->destroy();
    std::printf("%sadapter:        %s (offers: %s)\nexecution:      %s\nresult:         ok, the app loads and initialises\n",
                app->describe().c_str(), ops.name, capabilities_to_string(ops.capabilities).c_str(), mode_note.c_str());
    return kExitOk;
}

} // namespace

int main(int argc, char **argv)
{
    CLI::App cli{"cwsgi-serve: serve a CWSGI application (app.so) over HTTP", "cwsgi-serve"};
    cli.footer("Adapters:\n" + adapter_list() +
               "\nSignals: TERM or INT stop gracefully (in-flight requests finish within --graceful-timeout).\n"
               "Docs: docs/deployment.md; the spec: spec/README.md");
    Config cfg;
    std::string app_path, adapter_name, log_level = "info", worker_class, stack_size = "256k";
    bool check = false, version = false, list = false;
    double graceful = 30, keepalive = 2, timeout = 30;
    int64_t body_limit = 0;

    cli.add_option("APP", app_path, "Path to the application shared object (app.so)");
    cli.add_option("--adapter", adapter_name, "HTTP engine to serve with (default: the first built of h2o, microhttpd, forking)");
    cli.add_option("-b,--bind", cfg.binds,
                   "Address to listen on: HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N; repeatable (default 127.0.0.1:8000)")
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    cli.add_option("-k,--worker-class", worker_class,
                   "How handle() runs: gthread (a thread pool of --threads) or gevent (fibers on the event-loop "
                   "threads; the app must block only inside CWSGI calls). Default: gevent when the app declares "
                   "CWSGI_APP_COOPERATIVE, else gthread")
        ->check(CLI::IsMember({"auto", "gthread", "gevent", "threads", "cooperative"}));
    cli.add_option("--threads", cfg.threads, "App threads per worker in gthread mode")->check(CLI::Range(1, 1024))->capture_default_str();
    cli.add_option("--loop-threads", cfg.loop_threads,
                   "Event-loop threads per worker (default: the adapter's choice: every CPU in gevent mode)")
        ->check(CLI::Range(1, 256));
    cli.add_option("--stack-size", stack_size,
                   "Fiber stack size in gevent mode, bytes or with a k/m suffix (64k..64m); an overflow ends the "
                   "process with a message that names the request")
        ->capture_default_str();
    cli.add_option("--graceful-timeout", graceful, "Seconds in-flight requests get to finish on stop")
        ->check(CLI::Range(0.0, 86400.0))->capture_default_str();
    cli.add_option("--keep-alive", keepalive, "Seconds an idle kept-alive connection stays open")
        ->check(CLI::Range(0.0, 3600.0))->capture_default_str();
    cli.add_option("--timeout", timeout, "Seconds a request head or body may stall before the server answers 408")
        ->check(CLI::Range(0.1, 86400.0))->capture_default_str();
    cli.add_option("--limit-request-body", body_limit, "Largest request body in bytes, answered 413 above it (0 = no limit)")
        ->check(CLI::Range(int64_t{0}, INT64_MAX));
    cli.add_option("--limit-request-line", cfg.limits.request_line, "Largest request line in bytes (answered 414 above it)")
        ->check(CLI::Range(16, 65536))->capture_default_str();
    cli.add_option("--limit-request-fields", cfg.limits.request_fields, "Most header fields in a request (431 above it)")
        ->check(CLI::Range(1, 32768))->capture_default_str();
    cli.add_option("--limit-request-field-size", cfg.limits.request_field_size, "Largest header field line in bytes (431 above it)")
        ->check(CLI::Range(64, 65536))->capture_default_str();
    cli.add_option("--access-logfile", cfg.access_logfile, "Access log file in Apache combined format; '-' is stdout (default: off)");
    cli.add_option("--error-logfile", cfg.error_logfile, "Error log file; '-' is stderr")->capture_default_str();
    cli.add_option("--log-level", log_level, "Error log level")
        ->check(CLI::IsMember({"debug", "info", "warning", "error", "critical"}))->capture_default_str();
    cli.add_option("--script-name", cfg.script_name, "Mount point: SCRIPT_NAME for every request; paths outside it get 404")
        ->envname("SCRIPT_NAME");
    // TLS, gunicorn's names: every listener serves HTTPS (ALPN h2 and http/1.1 where the
    // adapter has HTTP/2); an adapter without CWSGI_CAP_TLS refuses them below.
    cli.add_option("--certfile", cfg.certfile, "TLS certificate chain (PEM); with --keyfile, every listener serves HTTPS");
    cli.add_option("--keyfile", cfg.keyfile, "TLS private key (PEM) for --certfile");
    cli.add_flag("--check", check, "Load the app, run its handshake and init, print what it declares, exit");
    cli.add_flag("--list-adapters", list, "Print one line per adapter: name, built|missing, capabilities (hex)");
    cli.add_flag("-v,--version", version, "Print the version and exit");

    try {
        cli.parse(argc, argv);
    } catch (const CLI::ParseError &e) {
        return cli.exit(e);
    }
    if (version) {
        std::printf("cwsgi-serve %s (CWSGI ABI %d.%d)\n", CWSGI_VERSION_STRING, CWSGI_ABI_MAJOR, CWSGI_ABI_MINOR);
        return kExitOk;
    }
    if (list) {
        for (const AdapterOps *a = adapter_table(); a->name; ++a) {
            std::printf("%s\t%s\t0x%llx\n", a->name, a->built ? "built" : "missing",
                        static_cast<unsigned long long>(a->capabilities));
        }
        return kExitOk;
    }
    if (app_path.empty()) {
        std::fprintf(stderr, "cwsgi-serve: no app given\nUsage: cwsgi-serve [OPTIONS] APP (see --help)\n");
        return kExitUsage;
    }
    const AdapterOps *ops = adapter_name.empty() ? default_adapter() : find_adapter(adapter_name.c_str());
    // --check without an adapter in this build checks the ABI handshake alone, against a
    // server that offers no optional capability.
    static const AdapterOps kNone{"none", "no adapter (ABI check only)", true, nullptr, 0, nullptr, false};
    if (check && ops == nullptr && adapter_name.empty()) ops = &kNone;
    if (ops == nullptr || !ops->built) {
        if (ops) {
            std::fprintf(stderr, "cwsgi-serve: adapter '%s' is not available: %s\n", ops->name, ops->missing_reason);
        } else if (adapter_name.empty()) {
            std::fprintf(stderr, "cwsgi-serve: no adapter was built\n");
        } else {
            std::fprintf(stderr, "cwsgi-serve: unknown adapter '%s'\n", adapter_name.c_str());
        }
        std::fprintf(stderr, "Adapters:\n%s", adapter_list().c_str());
        return kExitUsage;
    }
    cfg.adapter = ops->name;
    if (cfg.certfile.empty() != cfg.keyfile.empty() ||
        (!cfg.certfile.empty() && (ops->capabilities & CWSGI_CAP_TLS) == 0)) {
        std::fprintf(stderr, "cwsgi-serve: --certfile and --keyfile go together, on an adapter with TLS (h2o)\n");
        return kExitUsage;
    }
    if (!parse_worker_class(worker_class, cfg.worker_class)) {
        std::fprintf(stderr, "cwsgi-serve: unknown worker class '%s'\n", worker_class.c_str());
        return kExitUsage;
    }
    if (!parse_size(stack_size, cfg.stack_size) || cfg.stack_size < 64 * 1024 || cfg.stack_size > 64 * 1024 * 1024) {
        std::fprintf(stderr, "cwsgi-serve: --stack-size '%s' is not a size from 64k to 64m\n", stack_size.c_str());
        return kExitUsage;
    }
    cfg.graceful_timeout_ms = static_cast<uint32_t>(graceful * 1000);
    cfg.keepalive_ms = static_cast<uint32_t>(keepalive * 1000);
    cfg.client_timeout_ms = static_cast<uint32_t>(timeout * 1000);
    cfg.limits.request_body = body_limit > 0 ? body_limit : -1;
    cfg.log_level = parse_level(log_level);
    while (!cfg.script_name.empty() && cfg.script_name.back() == '/') cfg.script_name.pop_back();
    if (!cfg.script_name.empty() && cfg.script_name.front() != '/') {
        std::fprintf(stderr, "cwsgi-serve: --script-name must start with '/'\n");
        return kExitUsage;
    }
    if (check) return check_app(app_path, *ops, cfg);
    return run_server(cfg, app_path, *ops);
}
