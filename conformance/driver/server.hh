// server.hh: a server process the conformance driver started, and what it can learn from it.
//
// The driver starts `cwsgi-serve --adapter NAME --bind 127.0.0.1:0 ... probe.so` (or any
// command with {app} and {port} substituted), captures its stdout and stderr, learns the port
// from the "Listening at: http://127.0.0.1:PORT" line (gunicorn's wording), and can read its
// memory (VmRSS of the process and its descendants), signal it and wait for it. The destructor
// stops the process it started, by its pid only, and never anything else.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace conf {

class ServerProc {
public:
    /// Starts argv (argv[0] is a path or a name looked up in PATH) with stdout and stderr
    /// captured, in the driver's environment plus `env` ("KEY=VALUE" each, overriding). When
    /// port_hint is 0, waits for the "Listening at:" line to learn the port; otherwise waits
    /// until port_hint accepts connections. Returns nullptr and sets *err on failure (the
    /// process is then stopped).
    static std::unique_ptr<ServerProc> start(const std::vector<std::string> &argv, int port_hint, int timeout_ms,
                                             std::string *err, const std::vector<std::string> &env = {});
    ~ServerProc();
    ServerProc(const ServerProc &) = delete;
    ServerProc &operator=(const ServerProc &) = delete;

    int port() const { return port_; }
    pid_t pid() const { return pid_; }
    std::string command() const;
    /// Everything the process wrote so far (the last 4 MiB).
    std::string output() const;
    /// Waits until `needle` appears in the output; true when it did within timeout_ms.
    bool wait_output(const std::string &needle, int timeout_ms) const;
    /// Sends a signal to the process (only to its pid).
    void signal(int sig) const;
    /// Waits for the process to exit; returns its wait status, or nullopt on timeout. Once it
    /// exited, output() holds everything it wrote (up to 2 s more for the pipe to drain).
    std::optional<int> wait_exit(int timeout_ms);
    bool exited() const { return exited_; }
    /// Resident memory of the process and all its descendants, in KiB (-1 when unknown).
    long rss_kib() const;
    /// A file that belongs to this server (the probe's shared bookkeeping): removed once the
    /// process is stopped, or by kill_all_servers().
    void remove_on_exit(const std::string &path);

private:
    ServerProc() = default;
    void reader_loop();

    pid_t pid_ = -1;
    int port_ = 0;
    int out_fd_ = -1;
    bool exited_ = false;
    int wait_status_ = 0;
    std::vector<std::string> argv_;
    std::vector<std::string> files_; // remove_on_exit
    mutable std::mutex mu_;
    mutable std::condition_variable cv_;
    std::string out_;
    bool out_closed_ = false;
    std::thread reader_;
};

/// Kills (SIGKILL) every server process this driver started that is still running and removes
/// their remove_on_exit files; for the watchdog, which must leave nothing behind when a case
/// hangs.
void kill_all_servers();

/// Creates an empty file for the probe's shared bookkeeping ($TMPDIR/cwsgi-probe-XXXXXX) and
/// returns its path, or "" when it cannot.
std::string make_shared_file();

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close).
int pick_free_port();

/// Resident memory in KiB of `pid` plus its descendants, from /proc (-1 when unreadable).
long rss_tree_kib(pid_t pid);

} // namespace conf
