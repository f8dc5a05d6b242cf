// system.hh: the process chores of a master and its workers: a queue of signals handled outside
// the handler, process titles, sd_notify, the pid file and dropping privileges.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cwsgi::arbiter {

/// Signals caught by a handler that only writes the signal's number to a pipe (async-signal-safe,
/// errno kept); the process reads them back in its own loop. One per process.
class SignalQueue {
public:
    SignalQueue() = default;
    ~SignalQueue();
    SignalQueue(const SignalQueue &) = delete;
    SignalQueue &operator=(const SignalQueue &) = delete;

    /// Creates the pipe and catches `signals` (SA_RESTART). False with `error` on failure.
    bool open(const std::vector<int> &signals, std::string &error);
    /// Waits up to `timeout_ms` for the next queued signal; 0 when none came. Threads: one reader.
    int next(int timeout_ms);
    /// The readable end (to poll it together with other descriptors).
    int fd() const { return fds_[0]; }
    /// Puts the signals back to their default action and closes the pipe (in a child after fork).
    void close_and_restore();

private:
    int fds_[2] = {-1, -1};
    std::vector<int> signals_;
};

/// "SIGTERM"; "signal 64" for one without a name.
std::string signal_name(int sig);

/// Sets the process title: the thread name (PR_SET_NAME, 15 bytes, what top shows) and, when
/// init_process_title() ran, the command line that ps shows.
void set_process_title(const std::string &title);
/// Records the original command line (before set_process_title overwrites it) and returns it,
/// one string per argument, for a re-exec. Call once, early, in the first process.
std::vector<std::string> init_process_title();

/// Sends `state` ("READY=1", "STOPPING=1", ...) to $NOTIFY_SOCKET when it is set (systemd's
/// Type=notify); a no-op otherwise. The protocol is one datagram on a unix socket, written here
/// directly so that the build needs no libsystemd.
void sd_notify(const std::string &state);
/// CLOCK_MONOTONIC in microseconds: the value of sd_notify's MONOTONIC_USEC= field, which
/// systemd wants with RELOADING=1 (Type=notify-reload).
uint64_t monotonic_usec();

/// Writes "PID\n" to `path` atomically (a temporary file renamed over it). False with `error`.
bool write_pidfile(const std::string &path, pid_t pid, std::string &error);
/// Removes `path` when it still holds `pid` (a newer master may have written it since).
void remove_pidfile(const std::string &path, pid_t pid);

/// Switches to `group` and `user` (names or numbers; "" keeps the current one), with the user's
/// supplementary groups. False with `error` on failure.
bool drop_privileges(const std::string &user, const std::string &group, std::string &error);

} // namespace cwsgi::arbiter
