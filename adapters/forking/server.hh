// server.hh: the forking adapter's worker: one epoll loop on the thread that called serve(),
// accepting on the listeners the arbiter's master opened before it forked, holding every
// connection (idle keep-alive ones included) and running the graceful stop.
//
// The master forks N workers (lib/arbiter); each runs one Server. The kernel hands each new
// connection to one worker waiting on the listener (EPOLLEXCLUSIVE), so an idle worker takes
// the next client while another one runs a long request.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/context.hh"
#include "core/listen.hh"
#include "exec/executor.hh"

namespace cwsgi::adapters::forking {

class Conn;

class Server {
public:
    /// How often the deadlines are looked at while connections are open (and how long sync
    /// mode's block hook blocks at most before it looks at them).
    static constexpr std::chrono::milliseconds kTick{100};

    explicit Server(core::Context &ctx);
    ~Server();
    Server(const Server &) = delete;
    Server &operator=(const Server &) = delete;

    /// Sets up epoll, the wake-up eventfd and the listeners, and starts the execution layer.
    /// False with `error` set. Threads: the thread that then calls run().
    bool start(std::vector<core::Listener> &listeners, std::string &error);
    /// Serves until a stop is requested, then stops gracefully (LIFE-STOP-*): no new
    /// connections, in-flight requests drain for up to --graceful-timeout, the rest is cut.
    /// Returns false when app threads were still busy at the end (the Server must then not be
    /// destroyed: those threads may still reach it).
    bool run();

    core::Context &ctx() { return ctx_; }
    const core::Config &config() const { return ctx_.config(); }
    exec::Executor &executor() { return executor_; }
    bool app_has_request_end() const { return app_has_request_end_; }
    bool stopping() const { return stopping_; }

    /// True on the thread that runs the loop.
    bool on_loop_thread() const { return std::this_thread::get_id() == loop_thread_; }
    /// Makes the loop call conn.on_kick() soon. Holds a reference on `conn` until then.
    /// Threads: any (the caller holds the Conn's mutex or not).
    void kick(Conn &conn);
    /// Registers `fd` of `conn` with `events` (or changes them). Loop thread.
    void watch(Conn &conn, uint32_t events, bool first);
    /// Takes a closed connection off the loop (drops the loop's reference). Loop thread.
    void forget(Conn &conn);
    /// Sync mode (THR-10), from inside a request's wait: starts the graceful stop when one was
    /// asked for, cuts `conn` past the graceful deadline (LIFE-STOP-5), else runs its deadlines.
    /// Loop thread.
    void sync_tick(Conn &conn);

private:
    void accept_from(size_t index);
    void set_accepting(bool on);
    void drain_kicks();
    void tick();
    void begin_drain();
    /// Drops the loop's references of the connections closed during this loop turn.
    void bury();

    core::Context &ctx_;
    exec::Executor executor_;
    bool app_has_request_end_ = false;
    int epoll_fd_ = -1;
    int wake_fd_ = -1; // eventfd: a kick from another thread
    std::vector<int> listen_fds_;
    std::vector<bool> listen_unix_;
    std::vector<std::string> listen_path_;
    bool accepting_ = true;
    std::chrono::steady_clock::time_point accept_resume_{};
    std::vector<Conn *> graveyard_;
    std::thread::id loop_thread_;
    Conn *conns_ = nullptr; // open connections (intrusive list)
    size_t conn_count_ = 0;
    bool stopping_ = false;
    std::chrono::steady_clock::time_point drain_deadline_{}; // set by begin_drain
    std::chrono::steady_clock::time_point last_tick_{};

    std::mutex kick_mu_;
    std::vector<Conn *> kicks_;
    bool wake_pending_ = false; // an eventfd write is outstanding (kick_mu_)
};

} // namespace cwsgi::adapters::forking
