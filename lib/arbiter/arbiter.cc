// arbiter.cc: the master process (see arbiter.hh and spec/lifecycle.md, LIFE-ARB-*).
#include "arbiter.hh"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>

#include <fmt/format.h>

#include "core/app.hh"
#include "scoreboard.hh"
#include "system.hh"
#include "worker.hh"

namespace cwsgi::arbiter {

namespace {

/// A listener as the "Listening at" line shows it: https:// when the workers serve TLS on it.
std::string shown_address(const core::Listener &l, const core::Config &config)
{
    if (!config.certfile.empty() && l.display.rfind("http://", 0) == 0) return "https://" + l.display.substr(7);
    return l.display;
}

using core::Config;
using core::Context;

// The environment variable that tells a re-executed master the pid of the master it replaces.
constexpr const char *kParentEnv = "CWSGI_PID";

// How long after the graceful deadline the master waits before SIGKILL (LIFE-ARB-8).
constexpr int64_t kKillMarginMs = 5000;

// The signals the master takes (gunicorn's list).
const std::vector<int> kMasterSignals = {SIGHUP,  SIGTERM, SIGINT,  SIGQUIT,  SIGTTIN,
                                         SIGTTOU, SIGUSR1, SIGUSR2, SIGWINCH, SIGCHLD};

struct Worker {
    pid_t pid = 0;
    uint32_t id = 0;           // worker_id; its scoreboard slot is id - 1
    uint64_t generation = 0;   // HUP starts a new one
    uint64_t age = 0;          // spawn order: the oldest goes first (TTOU, retirement)
    bool told_to_stop = false; // sent TERM (retired, scaled down, recycled)
    int64_t abort_sent_ms = 0; // SIGABRT sent for a timeout; SIGKILL follows
    bool kill_sent = false;
};

enum class Stop { none, graceful, quick };

class Master {
public:
    Master(const Config &config, const std::string &app_path, const core::AdapterOps &ops, core::ConfigReloader reload)
        : config_(config), app_path_(app_path), ops_(ops), reload_(std::move(reload)),
          num_workers_(std::max(1u, config.workers))
    {
    }

    int run();

private:
    core::Logger &log() { return ctx_->log(); }
    bool start(int &code);
    void loop();
    void handle_signal(int sig);
    void reap();
    void on_exit_of(const Worker &w, int status);
    void manage_workers();
    void check_generations();
    void retire_recycled();
    void murder_workers();
    void spawn_worker();
    uint32_t free_id() const;
    void signal_workers(int sig);
    void reload();
    void watch_app();
    void reexec();
    void begin_stop(Stop how, int code);
    void maybe_promote();
    void finish();
    std::string pidfile_path() const { return reexec_parent_ != 0 ? config_.pidfile + ".2" : config_.pidfile; }
    /// "READY=1" with a STATUS= line for systemctl status: `what` and the worker count.
    std::string ready_state(const char *what) const
    {
        return fmt::format("READY=1\nSTATUS={}: {} worker{}", what, num_workers_, num_workers_ == 1 ? "" : "s");
    }
    size_t live_in_generation(uint64_t gen, bool ready_only) const;
    bool any_in_transition() const;

    Config config_;
    std::string app_path_;
    const core::AdapterOps &ops_;
    core::ConfigReloader reload_;
    std::unique_ptr<Context> ctx_;
    SignalQueue signals_;
    Scoreboard board_;
    std::vector<core::Listener> listeners_;
    bool listeners_inherited_ = false;
    std::unique_ptr<core::App> app_; // --preload only
    std::map<pid_t, Worker> workers_;
    uint32_t num_workers_;
    uint64_t generation_ = 1;        // the generation new workers belong to
    uint64_t stable_generation_ = 0; // the last generation that was all ready (0: none yet)
    uint64_t next_age_ = 0;
    Stop stopping_ = Stop::none;
    int64_t stop_deadline_ms_ = 0;
    int exit_code_ = core::kExitOk;
    pid_t reexec_pid_ = 0;    // the re-executed master we started (USR2)
    pid_t reexec_parent_ = 0; // the master that re-executed us, until it exits
    std::vector<std::string> argv_;
    std::string exe_, start_cwd_;
    /// --reload: the app file as last seen, and a change seen once but not yet stable.
    struct FileStamp {
        bool ok = false;
        dev_t dev = 0;
        ino_t ino = 0;
        off_t size = 0;
        int64_t mtime_ns = 0;
        bool operator==(const FileStamp &) const = default;
    };
    static FileStamp stamp_of(const std::string &path);
    FileStamp app_seen_, app_changed_;
    bool app_change_pending_ = false;
};

// ---- start ----------------------------------------------------------------------------------

bool Master::start(int &code)
{
    ctx_ = std::make_unique<Context>(config_, ops_.name, ops_.capabilities);
    Context::set_current(ctx_.get());
    std::string error;
    if (!log().open(config_.error_logfile, error) || !ctx_->access_log().open(config_.access_logfile, error)) {
        log().error(error);
        code = core::kExitUsage;
        return false;
    }
    argv_ = init_process_title();
    char buf[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    exe_ = n > 0 ? std::string(buf, static_cast<size_t>(n)) : (argv_.empty() ? "" : argv_[0]);
    if (::getcwd(buf, sizeof buf) != nullptr) start_cwd_ = buf;
    if (const char *parent = std::getenv(kParentEnv)) {
        reexec_parent_ = static_cast<pid_t>(std::strtol(parent, nullptr, 10));
        ::unsetenv(kParentEnv);
        if (reexec_parent_ != ::getppid()) reexec_parent_ = 0; // the old master is gone already
    }
    ::signal(SIGPIPE, SIG_IGN); // a closed log pipe or notify socket is an error code, not an exit
    if (!signals_.open(kMasterSignals, error) || !board_.map(error)) {
        log().error(error);
        code = core::kExitFailure;
        return false;
    }
    log().info(fmt::format("Starting cwsgi-serve {} (adapter {})", CWSGI_VERSION_STRING, ops_.name));

    // --umask and --chdir apply to the master and so to every worker (LIFE-ARB-9). The app's
    // path is made absolute first: it names the file as the operator typed it.
    if (config_.umask >= 0) ::umask(static_cast<mode_t>(config_.umask));
    if (!app_path_.empty() && app_path_[0] != '/' && !start_cwd_.empty()) app_path_ = start_cwd_ + "/" + app_path_;
    if (!config_.chdir.empty() && ::chdir(config_.chdir.c_str()) != 0) {
        log().error(fmt::format("--chdir '{}': {}", config_.chdir, std::strerror(errno)));
        code = core::kExitUsage;
        return false;
    }

    if (config_.reload && config_.preload) {
        log().warning("--reload has no effect with --preload: the master holds the app's code (LIFE-ARB-16)");
    }
    // LIFE-LOAD-1: with --preload the master loads the app and runs init before any fork.
    if (config_.preload) {
        app_ = core::App::load(app_path_, ctx_->api(), error);
        if (!app_) {
            log().error(error);
            code = core::kExitAppLoadError;
            return false;
        }
        std::string note;
        ctx_->set_exec_mode(core::choose_exec_mode(config_, ops_, app_->cooperative(), note, app_->needs_threads()));
        log().info("Execution: " + note);
        if (app_->init(error) != CWSGI_OK) {
            log().error(error);
            code = core::kExitAppLoadError;
            return false;
        }
        ctx_->set_app(app_.get());
    }

    // LIFE-ARB-7: sockets from systemd or from the master we replace, else our own binds.
    bool inherited = false;
    if (!core::inherit_listeners(listeners_, inherited, error) ||
        (!inherited && !core::open_listeners(config_.binds, listeners_, error))) {
        log().error(error);
        code = core::kExitFailure;
        return false;
    }
    listeners_inherited_ = inherited;
    if (!config_.pidfile.empty() && !write_pidfile(pidfile_path(), ::getpid(), error)) {
        log().error(error);
        code = core::kExitFailure;
        return false;
    }
    set_process_title(fmt::format("{}: master [{}]", config_.proc_name, app_path_));
    log().info(fmt::format("Using worker: {} ({} worker{})", ops_.name, num_workers_, num_workers_ == 1 ? "" : "s"));
    return true;
}

// ---- workers --------------------------------------------------------------------------------

uint32_t Master::free_id() const
{
    for (uint32_t id = 1; id <= Scoreboard::kSlots; ++id) {
        bool used = false;
        for (const auto &[pid, w] : workers_) used = used || w.id == id;
        if (!used) return id;
    }
    return 0;
}

void Master::spawn_worker()
{
    uint32_t id = free_id();
    if (id == 0) {
        log().error(fmt::format("No free worker slot (at most {} workers at once)", Scoreboard::kSlots));
        return;
    }
    board_.slot(id - 1).reset(now_ms());
    WorkerSpec spec;
    spec.id = id;
    spec.config = &config_;
    spec.app_path = &app_path_;
    spec.ops = &ops_;
    spec.listeners = &listeners_;
    spec.board = &board_;
    spec.preloaded = app_.get();
    spec.preloaded_mode = ctx_->exec_mode();
    spec.master = ::getpid();
    // Every signal is blocked across the fork: the child must not run the master's handlers.
    sigset_t all, old;
    sigfillset(&all);
    ::sigprocmask(SIG_BLOCK, &all, &old);
    pid_t pid = ::fork();
    if (pid == 0) {
        signals_.close_and_restore();
        run_worker(spec);
    }
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    if (pid < 0) {
        log().error(fmt::format("Cannot fork a worker: {}", std::strerror(errno)));
        board_.slot(id - 1).state.store(static_cast<uint32_t>(WorkerState::free));
        return;
    }
    Worker w;
    w.pid = pid;
    w.id = id;
    w.generation = generation_;
    w.age = ++next_age_;
    workers_[pid] = w;
}

size_t Master::live_in_generation(uint64_t gen, bool ready_only) const
{
    size_t n = 0;
    for (const auto &[pid, w] : workers_) {
        if (w.generation != gen || w.told_to_stop) continue;
        auto state = static_cast<WorkerState>(board_.slot(w.id - 1).state.load(std::memory_order_acquire));
        if (state == WorkerState::retiring) continue;
        if (ready_only && state != WorkerState::ready) continue;
        ++n;
    }
    return n;
}

bool Master::any_in_transition() const
{
    // Booting, or retiring by itself and not yet told: the loop checks again soon.
    for (const auto &[pid, w] : workers_) {
        auto state = static_cast<WorkerState>(board_.slot(w.id - 1).state.load(std::memory_order_acquire));
        if (state == WorkerState::booting || (state == WorkerState::retiring && !w.told_to_stop)) return true;
    }
    return false;
}

void Master::manage_workers()
{
    if (stopping_ != Stop::none) return;
    // LIFE-ARB-2: keep `workers` live workers of the current generation. A worker that retires
    // by itself (--max-requests) is replaced at once, while it drains.
    size_t live = live_in_generation(generation_, false);
    for (; live < num_workers_; ++live) spawn_worker();
    if (live > num_workers_) {
        // TTOU: the oldest goes first, gracefully.
        std::vector<Worker *> current;
        for (auto &[pid, w] : workers_) {
            if (w.generation == generation_ && !w.told_to_stop) current.push_back(&w);
        }
        std::sort(current.begin(), current.end(), [](Worker *a, Worker *b) { return a->age < b->age; });
        for (size_t k = 0; k < live - num_workers_ && k < current.size(); ++k) {
            current[k]->told_to_stop = true;
            ::kill(current[k]->pid, SIGTERM);
        }
    }
}

void Master::retire_recycled()
{
    // LIFE-ARB-13: a worker that reached --max-requests keeps serving until its replacement
    // serves, then gets TERM: no moment without a worker, and the stop falls at no particular
    // request's end.
    if (stopping_ != Stop::none || live_in_generation(generation_, true) < num_workers_) return;
    for (auto &[pid, w] : workers_) {
        if (w.told_to_stop) continue;
        auto state = static_cast<WorkerState>(board_.slot(w.id - 1).state.load(std::memory_order_acquire));
        if (state != WorkerState::retiring) continue;
        w.told_to_stop = true;
        ::kill(pid, SIGTERM);
    }
}

void Master::check_generations()
{
    if (stopping_ != Stop::none || stable_generation_ == generation_) return;
    if (live_in_generation(generation_, true) < num_workers_) return;
    // Every worker of the new generation serves: the old ones can go (LIFE-ARB-4).
    bool first = stable_generation_ == 0;
    stable_generation_ = generation_;
    size_t retired = 0;
    for (auto &[pid, w] : workers_) {
        if (w.generation < generation_ && !w.told_to_stop) {
            w.told_to_stop = true;
            ::kill(pid, SIGTERM);
            ++retired;
        }
    }
    if (first) {
        // LOG-ERR-4, LIFE-ARB-10: the listeners are announced once the workers serve them.
        for (const core::Listener &l : listeners_) {
            log().info(fmt::format("Listening at: {} ({})", shown_address(l, config_), static_cast<long>(::getpid())));
        }
        std::string state = ready_state("Ready");
        if (reexec_parent_ != 0) state += fmt::format("\nMAINPID={}", static_cast<long>(::getpid()));
        sd_notify(state);
    } else {
        log().info(
            fmt::format("Reload done: {} new worker(s) serve; {} old one(s) retire gracefully", num_workers_, retired));
        sd_notify(ready_state("Reload done"));
    }
}

void Master::murder_workers()
{
    int64_t now = now_ms();
    for (auto &[pid, w] : workers_) {
        if (w.kill_sent) continue;
        if (w.abort_sent_ms != 0) {
            // gunicorn's second step: still there a second after SIGABRT.
            if (now - w.abort_sent_ms >= 1000) {
                ::kill(pid, SIGKILL);
                w.kill_sent = true;
            }
            continue;
        }
        WorkerSlot &slot = board_.slot(w.id - 1);
        std::string reason;
        int64_t silent = now - slot.beat_ms.load(std::memory_order_relaxed);
        int64_t fiber = board_.longest_fiber_ms(w.id - 1, now);
        if (config_.worker_timeout_ms > 0 && silent > config_.worker_timeout_ms) {
            reason = fmt::format("no heartbeat for {:.1f} s", silent / 1000.0);
        } else if (config_.worker_timeout_ms > 0 && fiber > config_.worker_timeout_ms) {
            reason = fmt::format("an event-loop thread has run one fiber (or sync request) for {:.1f} s without "
                                 "yielding",
                                 fiber / 1000.0);
        } else if (config_.request_deadline_ms > 0) {
            for (const RequestSnapshot &r : board_.in_flight(w.id - 1)) {
                if (now - r.started_ms > config_.request_deadline_ms) {
                    reason =
                        fmt::format("HARAKIRI: req {} {} {} has run {:.1f} s (--harakiri {:.1f} s)", r.id, r.method,
                                    r.target, (now - r.started_ms) / 1000.0, config_.request_deadline_ms / 1000.0);
                    break;
                }
            }
        }
        if (!reason.empty()) {
            log().write(CWSGI_LOG_CRITICAL,
                        fmt::format("WORKER TIMEOUT (pid:{}) worker {}: {}; serving: {}", static_cast<long>(pid), w.id,
                                    reason, describe_requests(board_.in_flight(w.id - 1), now)));
            ::kill(pid, SIGABRT);
            w.abort_sent_ms = now;
            continue;
        }
        if (config_.max_worker_rss > 0 && !w.told_to_stop) {
            std::ifstream statm(fmt::format("/proc/{}/statm", static_cast<long>(pid)));
            uint64_t size = 0, resident = 0;
            if (statm >> size >> resident) {
                uint64_t rss = resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
                if (rss > config_.max_worker_rss) {
                    log().warning(fmt::format("Worker {} (pid:{}) uses {} MiB, above --max-worker-memory {} MiB: "
                                              "recycling it after its current requests",
                                              w.id, static_cast<long>(pid), rss >> 20, config_.max_worker_rss >> 20));
                    w.told_to_stop = true;
                    ::kill(pid, SIGTERM);
                }
            }
        }
    }
}

// ---- reaping --------------------------------------------------------------------------------

void Master::reap()
{
    for (;;) {
        int status = 0;
        pid_t pid = ::waitpid(-1, &status, WNOHANG);
        if (pid <= 0) return;
        if (pid == reexec_pid_) {
            log().warning(fmt::format("Re-executed master (pid:{}) exited ({})", static_cast<long>(pid),
                                      WIFSIGNALED(status) ? signal_name(WTERMSIG(status))
                                                          : fmt::format("code {}", WEXITSTATUS(status))));
            reexec_pid_ = 0;
            continue;
        }
        auto it = workers_.find(pid);
        if (it == workers_.end()) continue; // not ours: reaped quietly (we may be PID 1)
        Worker w = it->second;
        workers_.erase(it);
        on_exit_of(w, status);
        board_.slot(w.id - 1).state.store(static_cast<uint32_t>(WorkerState::free), std::memory_order_release);
    }
}

void Master::on_exit_of(const Worker &w, int status)
{
    int64_t now = now_ms();
    auto requests = board_.in_flight(w.id - 1);
    std::string serving = requests.empty() ? "" : "; it was serving: " + describe_requests(requests, now);
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        // LIFE-ARB-5: gunicorn's words, plus the requests the worker had in hand.
        log().error(fmt::format("Worker {} (pid:{}) was sent {}!{}{}", w.id, static_cast<long>(w.pid), signal_name(sig),
                                sig == SIGKILL && w.abort_sent_ms == 0 ? " Perhaps out of memory?" : "", serving));
        return;
    }
    int code = WEXITSTATUS(status);
    if (code == 0) {
        log().info(fmt::format("Worker {} (pid:{}) exited", w.id, static_cast<long>(w.pid)));
        return;
    }
    log().error(fmt::format("Worker {} (pid:{}) exited with code {}{}", w.id, static_cast<long>(w.pid), code, serving));
    if (code != core::kExitWorkerBootError && code != core::kExitAppLoadError) return;
    if (stopping_ != Stop::none) return;
    if (stable_generation_ != 0 && w.generation > stable_generation_) {
        if (w.generation != generation_) return; // one more of a generation already abandoned
        // LIFE-ARB-4: a new generation that cannot boot is abandoned; the old one serves on.
        log().error(fmt::format("Reload failed: a worker of the new generation {}; the workers already "
                                "serving keep the old app",
                                code == core::kExitAppLoadError ? "could not load the app" : "failed to boot"));
        for (auto &[pid, o] : workers_) {
            if (o.generation == generation_ && !o.told_to_stop) {
                o.told_to_stop = true;
                ::kill(pid, SIGTERM);
            }
        }
        generation_ = stable_generation_;
        sd_notify(ready_state("Reload failed"));
        return;
    }
    // LIFE-WORKER-2: never a respawn loop. gunicorn's halt().
    log().error(code == core::kExitAppLoadError ? "Reason: App failed to load." : "Reason: Worker failed to boot.");
    begin_stop(Stop::graceful, code);
}

void Master::signal_workers(int sig)
{
    for (auto &[pid, w] : workers_) ::kill(pid, sig);
}

// ---- signals --------------------------------------------------------------------------------

void Master::handle_signal(int sig)
{
    if (sig != SIGCHLD) log().info(fmt::format("Handling signal: {}", signal_name(sig).substr(3)));
    switch (sig) {
    case SIGCHLD: reap(); break;
    case SIGHUP:
        if (stopping_ == Stop::none) reload();
        break;
    case SIGTERM: begin_stop(Stop::graceful, exit_code_); break;
    case SIGINT:
    case SIGQUIT: begin_stop(Stop::quick, exit_code_); break;
    case SIGTTIN:
        if (stopping_ == Stop::none && num_workers_ < Scoreboard::kSlots / 2) ++num_workers_;
        log().info(fmt::format("Workers: {}", num_workers_));
        break;
    case SIGTTOU:
        if (num_workers_ > 1) --num_workers_;
        log().info(fmt::format("Workers: {}", num_workers_));
        break;
    case SIGUSR1: {
        std::string error;
        if (!log().reopen(error) || !ctx_->access_log().reopen(error)) log().error(error);
        signal_workers(SIGUSR1);
        break;
    }
    case SIGUSR2:
        if (stopping_ == Stop::none) reexec();
        break;
    case SIGWINCH:
        // gunicorn acts on WINCH only when daemonized; a terminal sends it on every resize.
        break;
    default: break;
    }
}

void Master::reload()
{
    if (config_.reload) app_seen_ = stamp_of(app_path_); // what the new generation loads
    // LIFE-ARB-3: the new configuration first; an invalid one leaves everything as it was.
    // LIFE-ARB-17: systemd (Type=notify-reload) hears of the reload before anything else, and
    // READY=1 whatever becomes of it, so `systemctl reload` never waits for nothing.
    sd_notify(fmt::format("RELOADING=1\nSTATUS=Reloading\nMONOTONIC_USEC={}", monotonic_usec()));
    if (reload_) {
        Config fresh;
        std::string error;
        if (!reload_(fresh, error)) {
            log().error(fmt::format("Reload refused, the configuration is unchanged: {}", error));
            sd_notify(ready_state("Reload refused"));
            return;
        }
        if (fresh.binds != config_.binds && !listeners_inherited_) {
            std::vector<core::Listener> fresh_listeners;
            if (!core::open_listeners(fresh.binds, fresh_listeners, error)) {
                log().error(fmt::format("Reload refused, the configuration is unchanged: {}", error));
                sd_notify(ready_state("Reload refused"));
                return;
            }
            // The old workers keep their own copies until they retire; the files of unix
            // sockets still bound are not removed.
            for (core::Listener &l : listeners_) {
                bool kept = std::find(fresh.binds.begin(), fresh.binds.end(), l.spec.text) != fresh.binds.end();
                std::vector<core::Listener> one{l};
                core::close_listeners(one, !kept);
            }
            listeners_ = std::move(fresh_listeners);
            for (const core::Listener &l : listeners_) {
                log().info(
                    fmt::format("Listening at: {} ({})", shown_address(l, config_), static_cast<long>(::getpid())));
            }
        }
        config_ = std::move(fresh);
        // As gunicorn's setup() on reload: the new generation is forked with the new env
        // (-e, the file's env table). Variables the new configuration dropped stay set.
        for (const auto &[key, value] : config_.env) {
            if (::setenv(key.c_str(), value.c_str(), 1) != 0) {
                log().error(fmt::format("--env {}: {}", key, std::strerror(errno)));
            }
        }
        num_workers_ = std::max(1u, config_.workers);
        log().set_level(config_.log_level);
    }
    std::string error;
    if (!log().reopen(error) || !ctx_->access_log().reopen(error)) log().error(error);
    if (!config_.pidfile.empty() && !write_pidfile(pidfile_path(), ::getpid(), error)) log().error(error);
    if (config_.preload) {
        log().info("Reload with --preload: new workers run the app the master loaded (restart or USR2 to change it)");
    }
    // A new generation; manage_workers() spawns it, check_generations() retires the old one
    // once every new worker serves.
    ++generation_;
}

void Master::reexec()
{
    // LIFE-ARB-6: a new binary, the same sockets. One re-exec at a time.
    if (reexec_pid_ != 0) {
        log().warning(
            fmt::format("USR2 ignored: a re-executed master (pid:{}) is running", static_cast<long>(reexec_pid_)));
        return;
    }
    if (reexec_parent_ != 0) {
        log().warning("USR2 ignored: this master was re-executed and its old master still runs");
        return;
    }
    std::string fds = core::listener_fd_list(listeners_);
    std::string parent = std::to_string(static_cast<long>(::getpid()));
    std::vector<char *> argv;
    for (std::string &a : argv_) argv.push_back(a.data());
    argv.push_back(nullptr);
    sigset_t all, old;
    sigfillset(&all);
    ::sigprocmask(SIG_BLOCK, &all, &old);
    pid_t pid = ::fork();
    if (pid == 0) {
        signals_.close_and_restore();
        for (const core::Listener &l : listeners_) ::fcntl(l.fd, F_SETFD, 0); // kept across exec
        ::setenv(core::kListenFdsEnv, fds.c_str(), 1);
        ::setenv(kParentEnv, parent.c_str(), 1);
        if (!start_cwd_.empty() && ::chdir(start_cwd_.c_str()) != 0) ::_exit(127);
        ::sigprocmask(SIG_SETMASK, &old, nullptr);
        ::execv(exe_.c_str(), argv.data());
        dprintf(log().fd(), "cannot re-execute %s: %s\n", exe_.c_str(), std::strerror(errno));
        ::_exit(127);
    }
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    if (pid < 0) {
        log().error(fmt::format("Cannot fork for the re-exec: {}", std::strerror(errno)));
        return;
    }
    reexec_pid_ = pid;
    log().info(fmt::format("Re-executing {}: new master pid {}; this master serves on until it gets TERM", exe_,
                           static_cast<long>(pid)));
}

void Master::maybe_promote()
{
    if (reexec_parent_ == 0 || ::getppid() == reexec_parent_) return;
    log().info(
        fmt::format("The old master (pid:{}) is gone: this master takes over", static_cast<long>(reexec_parent_)));
    std::string old_path = pidfile_path();
    reexec_parent_ = 0;
    if (!config_.pidfile.empty()) {
        std::string error;
        if (!write_pidfile(config_.pidfile, ::getpid(), error)) log().error(error);
        ::unlink(old_path.c_str());
    }
    sd_notify(fmt::format("MAINPID={}", static_cast<long>(::getpid())));
}

void Master::begin_stop(Stop how, int code)
{
    int64_t now = now_ms();
    if (stopping_ == Stop::none) {
        exit_code_ = code;
        // LIFE-ARB-17: a master that handed its sockets to a re-executed one (USR2) stops, the
        // service does not: with NotifyAccess=all, STOPPING=1 from it would stop the unit.
        if (reexec_pid_ == 0) sd_notify("STOPPING=1\nSTATUS=Stopping");
        // LIFE-ARB-8: no new connection reaches this master's workers from here on. A socket
        // that a re-executed master serves keeps its file.
        core::close_listeners(listeners_, reexec_pid_ == 0);
        // Each worker cuts its own requests at the graceful deadline, then runs worker_stop;
        // SIGKILL is the backstop a little later, for a worker that cannot.
        stop_deadline_ms_ = now + config_.graceful_timeout_ms + kKillMarginMs;
    } else if (how == Stop::quick && stopping_ == Stop::graceful) {
        // INT or QUIT during a graceful stop: quick now, two seconds (gunicorn).
        stop_deadline_ms_ = std::min<int64_t>(stop_deadline_ms_, now + 2000);
    } else {
        return;
    }
    stopping_ = how;
    signal_workers(how == Stop::graceful ? SIGTERM : SIGQUIT);
}

// ---- the main loop --------------------------------------------------------------------------

void Master::loop()
{
    for (;;) {
        bool busy = stopping_ != Stop::none || stable_generation_ != generation_ || any_in_transition();
        // gunicorn wakes once a second; faster while workers boot or drain.
        int sig = signals_.next(busy ? 50 : 1000);
        while (sig != 0) {
            handle_signal(sig);
            sig = signals_.next(0);
        }
        reap();
        if (stopping_ != Stop::none) {
            if (workers_.empty()) return;
            if (now_ms() >= stop_deadline_ms_) {
                signal_workers(SIGKILL);
                while (!workers_.empty()) {
                    int status = 0;
                    pid_t pid = ::waitpid(-1, &status, 0);
                    if (pid < 0 && errno != EINTR) break;
                    auto it = workers_.find(pid);
                    if (it != workers_.end()) workers_.erase(it);
                }
                return;
            }
            continue;
        }
        check_generations();
        murder_workers();
        manage_workers();
        retire_recycled();
        maybe_promote();
        watch_app();
    }
}

Master::FileStamp Master::stamp_of(const std::string &path)
{
    FileStamp f;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return f;
    f.ok = true;
    f.dev = st.st_dev;
    f.ino = st.st_ino;
    f.size = st.st_size;
    f.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    return f;
}

void Master::watch_app()
{
    // LIFE-ARB-16: --reload. The file is looked at once per pass of the loop (about a second
    // when idle); a change must hold for one more pass before the reload, so that a build or a
    // copy still writing the file is not loaded half-written. With --preload the master holds
    // the code, so a new generation would not load the new file: start() warned about that.
    if (!config_.reload || config_.preload) return;
    FileStamp now = stamp_of(app_path_);
    if (!app_seen_.ok && !app_change_pending_) {
        app_seen_ = now; // the first pass: what the workers were started with
        return;
    }
    if (now == app_seen_) {
        app_change_pending_ = false;
        return;
    }
    if (!app_change_pending_ || !(now == app_changed_)) {
        app_change_pending_ = true;
        app_changed_ = now;
        return;
    }
    app_change_pending_ = false;
    if (!now.ok) return; // gone: keep serving the old code until a file is back
    app_seen_ = now;
    log().info(fmt::format("Reloading: {} changed (--reload)", app_path_));
    reload();
}

void Master::finish()
{
    if (app_) {
        app_->destroy(); // LIFE-LOAD-3: after every worker ended
        ctx_->set_app(nullptr);
    }
    core::close_listeners(listeners_, reexec_pid_ == 0);
    if (!config_.pidfile.empty()) remove_pidfile(pidfile_path(), ::getpid());
    log().info("Shutting down: Master");
}

int Master::run()
{
    int code = core::kExitOk;
    if (!start(code)) {
        if (app_) app_->destroy();
        if (ctx_) core::close_listeners(listeners_);
        return code;
    }
    manage_workers();
    loop();
    finish();
    return exit_code_;
}

} // namespace

int run_master(const Config &config, const std::string &app_path, const core::AdapterOps &ops,
               core::ConfigReloader reload)
{
    Master m(config, app_path, ops, std::move(reload));
    return m.run();
}

} // namespace cwsgi::arbiter
