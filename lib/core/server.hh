// server.hh: the life of a server: a master process (lib/arbiter/) that opens the listeners and
// keeps `workers` worker processes serving them, each loading the app (or sharing the one the
// master preloaded), starting its worker, and handing control to the adapter's serve().
#pragma once

#include <functional>
#include <string>

#include "adapter.hh"
#include "context.hh"

namespace cwsgi::core {

/// Exit codes, as gunicorn uses them, so supervisors can tell a broken app from a crash.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitWorkerBootError = 3;
inline constexpr int kExitAppLoadError = 4;

/// Decides how handle() runs (THR-5, THR-10): the operator's -k choice, else cooperative when the
/// app declares CWSGI_APP_COOPERATIVE and the adapter can run fibers, else sync on an adapter
/// that runs it inline (AdapterOps::sync), else threads. Sync becomes threads when --threads N > 1
/// was given (gunicorn's rule) or the app requires CWSGI_CAP_THREADS (`app_needs_threads`).
/// `note` gets one line for the log and --check that says what was chosen and why.
ExecMode choose_exec_mode(const Config &config, const AdapterOps &ops, bool app_cooperative, std::string &note,
                          bool app_needs_threads = false);

/// Re-reads the configuration (the command line again, then the -c file) into `out`, for HUP.
/// False, with `error` set, when the new configuration is invalid: the master keeps the old one.
using ConfigReloader = std::function<bool(Config &out, std::string &error)>;

/// Runs the whole server for `app_path` with adapter `ops` and returns the exit code: a master
/// and config.workers workers (arbiter::run_master; LIFE-ARB-*), even for one worker.
/// Logs every failure as one line to the error log. `reload` (may be empty) serves HUP.
/// Threads: the process's only thread (the master forks).
int run_server(const Config &config, const std::string &app_path, const AdapterOps &ops,
               ConfigReloader reload = nullptr);

} // namespace cwsgi::core
