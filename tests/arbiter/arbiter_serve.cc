// arbiter_serve.cc: a small server for the arbiter's tests. It fills core::Config from its own
// few flags and calls run_server() with the libmicrohttpd adapter, so that the tests drive a real
// master without depending on cwsgi-serve's command line.
//
//   arbiter-serve [-w N] [--timeout MS] [--graceful-timeout MS] [--max-requests N]
//                 [--max-requests-jitter N] [--harakiri MS] [--max-worker-memory BYTES]
//                 [--preload] [--pid PATH] [--error-logfile PATH] [--access-logfile PATH]
//                 [-k gthread|gevent] [-b BIND]... [--user U] [--group G] [--chdir DIR]
//                 [--umask OCTAL] [--reload-workers N] APP
//
// Times are in milliseconds here (cwsgi-serve takes seconds). --reload-workers N makes HUP's
// reloader return the same configuration with N workers, to show that HUP applies a new one.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/server.hh"
#include "microhttpd/microhttpd.hh"

using namespace cwsgi;

int main(int argc, char **argv)
{
    core::Config cfg;
    cfg.graceful_timeout_ms = 10000;
    std::string app;
    long reload_workers = 0;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "arbiter-serve: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        auto number = [&]() { return std::strtoull(value().c_str(), nullptr, 10); };
        if (a == "-w") {
            cfg.workers = static_cast<uint32_t>(number());
        } else if (a == "--timeout") {
            cfg.worker_timeout_ms = static_cast<uint32_t>(number());
        } else if (a == "--graceful-timeout") {
            cfg.graceful_timeout_ms = static_cast<uint32_t>(number());
        } else if (a == "--max-requests") {
            cfg.max_requests = static_cast<uint32_t>(number());
        } else if (a == "--max-requests-jitter") {
            cfg.max_requests_jitter = static_cast<uint32_t>(number());
        } else if (a == "--harakiri") {
            cfg.request_deadline_ms = static_cast<uint32_t>(number());
        } else if (a == "--max-worker-memory") {
            cfg.max_worker_rss = number();
        } else if (a == "--preload") {
            cfg.preload = true;
        } else if (a == "--pid") {
            cfg.pidfile = value();
        } else if (a == "--error-logfile") {
            cfg.error_logfile = value();
        } else if (a == "--access-logfile") {
            cfg.access_logfile = value();
        } else if (a == "-k") {
            if (!core::parse_worker_class(value(), cfg.worker_class)) return 2;
        } else if (a == "-b") {
            cfg.binds.push_back(value());
        } else if (a == "--user") {
            cfg.user = value();
        } else if (a == "--group") {
            cfg.group = value();
        } else if (a == "--chdir") {
            cfg.chdir = value();
        } else if (a == "--umask") {
            cfg.umask = static_cast<int>(std::strtol(value().c_str(), nullptr, 8));
        } else if (a == "--reload-workers") {
            reload_workers = static_cast<long>(number());
        } else if (!a.empty() && a[0] == '-') {
            std::fprintf(stderr, "arbiter-serve: unknown flag %s\n", a.c_str());
            return 2;
        } else {
            app = a;
        }
    }
    if (app.empty()) {
        std::fprintf(stderr, "arbiter-serve: no app given\n");
        return 2;
    }
    core::ConfigReloader reload;
    if (reload_workers > 0) {
        reload = [cfg, reload_workers](core::Config &out, std::string &) {
            out = cfg;
            out.workers = static_cast<uint32_t>(reload_workers);
            return true;
        };
    }
    return core::run_server(cfg, app, adapters::microhttpd_ops(), reload);
}
