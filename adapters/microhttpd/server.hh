// server.hh: the libmicrohttpd adapter's process-wide state: one MHD daemon per listener, the
// app thread pool, the list of requests in flight, and the graceful stop.
#pragma once

#include <microhttpd.h>

#include <atomic>
#include <cstdarg>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/context.hh"
#include "core/listen.hh"
#include "core/live.hh"
#include "exec/executor.hh"

namespace cwsgi::adapters::mhd {

class Bridge;
class Server;

/// One listener and the daemon that serves it.
struct ListenerSlot {
    Server *server = nullptr;
    const core::Listener *listener = nullptr;
    MHD_Daemon *daemon = nullptr;
};

/// One client connection, from libmicrohttpd's "started" notification to "closed": the
/// addresses every request on it reports, computed once.
struct Conn {
    ListenerSlot *slot = nullptr;
    int fd = -1;
    bool addresses_known = false;
    std::string remote_addr, remote_port, local_addr, local_port;
};

class Server {
public:
    explicit Server(core::Context &ctx);
    ~Server();
    Server(const Server &) = delete;
    Server &operator=(const Server &) = delete;

    /// Starts the app pool and one daemon per listener. Returns false with a one-line error
    /// (everything started is stopped again).
    bool start(std::vector<core::Listener> &listeners, std::string &error);

    /// The graceful stop (LIFE-STOP-*): stop accepting, let requests in flight finish for up
    /// to graceful_timeout_ms, then close what is left and stop the daemons and the pool.
    /// Returns false when app threads were still busy at the end (then this Server must not
    /// be destroyed: detached threads may still reach it).
    bool stop();

    core::Context &ctx() { return ctx_; }
    const core::Config &config() const { return ctx_.config(); }

    /// Hands a job to the app pool; `arg` is a Bridge and the job owns one reference to it.
    /// Where and how handle() runs (threads or fibers, THR-5).
    exec::Executor &executor() { return executor_; }
    /// True when the app has an on_request_end callback (then completions of finished
    /// requests go through the pool, so app code never runs on an event-loop thread).
    bool app_has_request_end() const { return app_has_request_end_; }

    /// Past the graceful period: Bridges must not suspend any more.
    bool hard_stopping() const { return hard_stop_.load(std::memory_order_acquire); }

    /// Per-request and keep-alive idle timeouts in whole seconds (libmicrohttpd's unit).
    unsigned request_timeout_s() const { return request_timeout_s_; }
    unsigned idle_timeout_s() const { return idle_timeout_s_; }

    /// The requests in flight: a Bridge is listed from its URI log callback to its completion.
    core::LiveSet<Bridge> &live() { return live_; }

    // libmicrohttpd callbacks (cls is the ListenerSlot).
    static void *on_uri(void *cls, const char *uri, MHD_Connection *conn);
    static MHD_Result on_access(void *cls, MHD_Connection *conn, const char *url, const char *method,
                                const char *version, const char *upload, size_t *upload_size, void **con_cls);
    static void on_completed(void *cls, MHD_Connection *conn, void **con_cls, MHD_RequestTerminationCode toe);
    static void on_connection(void *cls, MHD_Connection *conn, void **socket_context,
                              MHD_ConnectionNotificationCode code);
    static void on_mhd_log(void *cls, const char *format, va_list ap);

private:
    bool start_daemon(ListenerSlot &slot, std::string &error);
    void stop_daemons();

    core::Context &ctx_;
    exec::Executor executor_;
    std::vector<std::unique_ptr<ListenerSlot>> slots_;
    bool app_has_request_end_ = false;
    unsigned request_timeout_s_ = 30;
    unsigned idle_timeout_s_ = 2;
    unsigned io_threads_ = 1;
    size_t memory_limit_ = 32 * 1024;
    std::atomic<bool> hard_stop_{false};

    core::LiveSet<Bridge> live_;
};

} // namespace cwsgi::adapters::mhd
