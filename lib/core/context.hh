// context.hh: the process-wide state of one server: configuration, the loaded app, the
// function table handed to it, logs, and the stop signal.
//
// A process serves one app, so there is one Context per process (Context::current()). The API
// table's functions that take no request (server_info, is_shutting_down, get_extension, log
// with a NULL request) read it from there.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cwsgi.h"
#include "http.hh"
#include "log.hh"

namespace cwsgi::core {

class App;

/// How handle() runs (THR-5, THR-10): on a thread pool, on fibers on the event-loop threads, or
/// one request at a time on the worker's own loop thread (sync).
enum class ExecMode : uint8_t { threads, cooperative, sync };

/// The worker classes -k/--worker-class accepts, gunicorn's names first: "gthread" is the
/// threads mode, "gevent" the cooperative one, "sync" the sync one; "threads" and "cooperative"
/// say the same as the first two. Empty means "auto" (see choose_exec_mode).
bool parse_worker_class(const std::string &name, std::optional<ExecMode> &out);

/// "threads", "cooperative" or "sync".
const char *exec_mode_name(ExecMode mode);
/// gunicorn's name of the mode: "gthread", "gevent" or "sync".
const char *worker_class_name(ExecMode mode);

/// Everything cwsgi-serve's command line sets that the core or an adapter reads.
struct Config {
    std::string adapter = "microhttpd";
    std::vector<std::string> binds;       // empty = 127.0.0.1:8000
    uint32_t threads = 4;                 // threads mode: app threads per worker
    bool threads_given = false;           // --threads was set (THR-10: N > 1 with sync is gthread)
    uint32_t loop_threads = 0;            // event-loop threads per worker; 0 = the adapter's choice
    std::optional<ExecMode> worker_class; // -k; nullopt = auto (see parse_worker_class)
    uint64_t stack_size = 256 * 1024;     // bytes of each fiber stack (cooperative mode)
    uint32_t graceful_timeout_ms = 30000;
    uint32_t keepalive_ms = 2000;       // idle time of a kept-alive connection
    uint32_t client_timeout_ms = 30000; // --client-timeout: a head or body stalled this long gets 408

    // ---- the arbiter (lib/arbiter/): gunicorn's master, its flags and their meaning ----------
    uint32_t workers = 1;               // -w: worker processes under the master
    uint32_t worker_timeout_ms = 30000; // --timeout: a worker silent this long is killed (0 = never)
    uint32_t max_requests = 0;          // --max-requests: recycle a worker after this many (0 = never)
    uint32_t max_requests_jitter = 0;   // --max-requests-jitter: + random 0..N per worker
    uint32_t request_deadline_ms = 0;   // --harakiri (uWSGI): one request longer than this kills its worker (0 = off)
    uint64_t max_worker_rss = 0;     // --max-worker-memory: recycle after the current request above this RSS (0 = off)
    bool preload = false;            // --preload: load the app in the master, before fork
    bool reload = false;             // --reload: a new generation of workers when the .so changes
    std::string pidfile;             // --pid: written by the master, removed at exit ("" = none)
    std::string user, group;         // --user/--group: dropped to after binding ("" = unchanged)
    std::string chdir;               // --chdir: before loading the app ("" = unchanged)
    int umask = -1;                  // --umask: set in the master (-1 = unchanged)
    std::string proc_name = "cwsgi"; // --name: process titles "NAME: master", "NAME: worker 3"
    std::vector<std::pair<std::string, std::string>> env; // -e KEY=VALUE, set before the app loads
    std::string config_file; // -c: the TOML file these came from ("" = none); HUP re-reads it
    // -c's [app] table: the app's own settings, flattened ("model.path" = "/srv/m.bin"), values as
    // text, in file order; the app reads them with setting_get/setting_at (LIFE-SET-1, since 1.2).
    std::vector<std::pair<std::string, std::string>> app_settings;
    Limits limits;
    std::string access_logfile;      // "" = off, "-" = stdout
    std::string error_logfile = "-"; // "-" = stderr
    uint32_t log_level = CWSGI_LOG_INFO;
    std::string script_name;       // SCRIPT_NAME mount point ("" = root)
    std::string certfile, keyfile; // --certfile/--keyfile: TLS on every listener ("" = off)
};

/// Process-wide server state. Create one, then call set_current() before serving.
class Context {
public:
    Context(Config config, std::string adapter_name, uint64_t capabilities);
    ~Context();
    Context(const Context &) = delete;
    Context &operator=(const Context &) = delete;

    /// The current context, or nullptr. Threads: any (set before threads start).
    static Context *current();
    static void set_current(Context *ctx);

    const Config &config() const { return config_; }
    const std::string &adapter_name() const { return adapter_name_; }
    const std::string &server_software() const { return server_software_; }
    uint64_t capabilities() const { return api_.capabilities; }
    /// The table handed to the app; valid as long as the context.
    const cwsgi_server_api *api() const { return &api_; }

    Logger &log() { return log_; }
    AccessLog &access_log() { return access_; }

    /// The loaded app (set by the loader), or nullptr.
    App *app() const { return app_; }
    void set_app(App *app) { app_ = app; }

    /// How handle() runs in this process; decided once the app is loaded (choose_exec_mode),
    /// before its init. Sync mode takes CWSGI_CAP_THREADS out of the API table (THR-10): no two
    /// handles of the process ever overlap then.
    ExecMode exec_mode() const { return exec_mode_; }
    void set_exec_mode(ExecMode mode);
    /// The event-loop threads the adapter runs (server_info.loop_threads); set by the adapter.
    void set_loop_threads(uint32_t n) { loop_threads_ = n; }

    uint32_t worker_id() const { return worker_id_; }
    void set_worker_id(uint32_t id) { worker_id_ = id; }

    /// Graceful stop: set by a signal or by request_stop(); adapters poll stop_fd() or wait.
    bool shutting_down() const { return shutting_down_.load(std::memory_order_acquire); }
    /// Starts a graceful stop; async-signal-safe (writes one byte to a pipe).
    void request_stop();
    /// A descriptor that becomes readable once a stop was requested (never read from it).
    int stop_fd() const { return stop_pipe_[0]; }
    /// Blocks until a stop is requested or `timeout_ms` passes (-1 = forever). True if stopping.
    bool wait_for_stop(int timeout_ms) const;

    /// A new request id, unique and increasing in this process.
    uint64_t next_request_id() { return next_request_id_.fetch_add(1, std::memory_order_relaxed) + 1; }

    /// Fills a cwsgi_server_info (the API's server_info).
    int32_t fill_server_info(cwsgi_server_info *info) const;

private:
    Config config_;
    std::string adapter_name_;
    std::string server_software_;
    cwsgi_server_api api_{};
    Logger log_;
    AccessLog access_;
    App *app_ = nullptr;
    uint32_t worker_id_ = 0;
    ExecMode exec_mode_ = ExecMode::threads;
    uint32_t loop_threads_ = 0;
    std::atomic<bool> shutting_down_{false};
    std::atomic<uint64_t> next_request_id_{0};
    int stop_pipe_[2] = {-1, -1};
};

/// Builds the API table for a server offering `capabilities` (used by Context).
cwsgi_server_api make_api_table(uint64_t capabilities);

/// Formats capability bits as "sendfile, disconnect, threads" ("none" when zero).
std::string capabilities_to_string(uint64_t caps);

} // namespace cwsgi::core
