// server.hh: the h2o adapter's process-wide state: one h2o_globalconf_t, N event-loop threads
// (one h2o_evloop_t and h2o_context_t each, with its own dup() of every listener, as h2o's own
// server does), the execution layer, the requests in flight, and the graceful stop.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/context.hh"
#include "core/listen.hh"
#include "core/live.hh"
#include "exec/executor.hh"
#include "head.hh"
#include "libh2o.hh"

namespace cwsgi::adapters::h2o {

class Loop;
class Server;
class Stream;

/// libh2o's context with the Loop that owns it: a handler finds its Loop from req->conn->ctx.
struct ContextLink {
    h2o_context_t ctx;
    Loop *loop;
};
struct ReceiverLink {
    h2o_multithread_receiver_t super;
    Loop *loop;
};
struct HandlerLink {
    h2o_handler_t super;
    Server *server;
};

/// Commands the server thread sends to a loop (see Server::stop).
enum class LoopCommand : uint8_t { none, drain, cut, exit };

class Loop {
public:
    Loop(Server &server, unsigned index);
    ~Loop();
    Loop(const Loop &) = delete;
    Loop &operator=(const Loop &) = delete;

    /// Creates the loop and context and its listening sockets (dup of each of `listeners`),
    /// then starts the thread. False with `error` set.
    bool start(const std::vector<core::Listener> &listeners, std::string &error);
    /// Asks the loop thread to carry out `cmd` soon. Threads: any.
    void command(LoopCommand cmd);
    /// Waits for the thread to end (after LoopCommand::exit).
    void join();

    Server &server() { return server_; }
    h2o_context_t &context() { return link_.ctx; }
    h2o_multithread_receiver_t *receiver() { return &recv_.super; }
    /// Bounds how long a response buffer may wait for the client (--client-timeout).
    h2o_timeout_t &write_timeout() { return write_timeout_; }
    /// The formatted addresses of this loop's connections (build_head). Loop thread only.
    AddressCache &addresses() { return addresses_; }

    /// An HTTP/2 stream of `conn` ended: `cut` when it ended before its response did (the
    /// client reset or refused it while the app worked). A connection whose client cuts far
    /// more streams than it lets finish (CVE-2023-44487, rapid reset) is closed. Loop thread, inside libh2o's dispose
    /// of the stream.
    void note_h2_stream_end(h2o_conn_t *conn, bool cut);
    /// True once `conn` was closed for abuse: its later streams never reach the app.
    bool h2_refused(const h2o_conn_t *conn) const;

    static Loop &from(h2o_req_t *req) { return *reinterpret_cast<ContextLink *>(req->conn->ctx)->loop; }

private:
    void run(std::promise<void> &ready);
    void setup();    // on the loop thread, before it serves
    void teardown(); // on the loop thread, after it served
    void carry_out(LoopCommand cmd);
    void close_listeners();
    /// Shuts down the sockets of HTTP/1 connections between requests (`idle_only`), or of
    /// every connection: libh2o then sees the end of the stream and closes them itself.
    void shut_connections(bool idle_only);
    /// --keep-alive for HTTP/1, which libh2o 2.2.5 cannot give: its req_timeout is armed once
    /// when a connection starts waiting for a request and bounds the idle time and the whole
    /// request's arrival together (a 700 MB upload was cut after 2 s), so it is set to
    /// --client-timeout, and this sweep closes connections that sat idle between requests
    /// (no request parsed, no byte of the next one, no byte in or out) for --keep-alive.
    void sweep_idle();
    static void on_sweep(h2o_timeout_entry_t *entry);
    static void on_accept(h2o_socket_t *listener, const char *err);
    static void on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);

    Server &server_;
    unsigned index_;
    h2o_evloop_t *evloop_ = nullptr;
    ContextLink link_{};
    ReceiverLink recv_{};
    h2o_timeout_t write_timeout_{};
    h2o_timeout_t sweep_timeout_{};
    struct SweepLink {
        h2o_timeout_entry_t entry; // first: on_sweep casts back
        Loop *loop;
    } sweep_{};
    struct IdleMark {
        uint64_t since_ms; // h2o_now when the connection was first seen idle
        size_t bytes;      // its bytes read + written then: any change means it was not idle
    };
    std::unordered_map<uint64_t, IdleMark> idle_, idle_next_; // by h2o's connection id
    uint64_t idle_limit_ms_ = 2000;
    AddressCache addresses_;
    h2o_accept_ctx_t accept_{};
    std::vector<int> listen_fds_; // dup()s of the core's listeners, until setup() takes them
    std::vector<h2o_socket_t *> listeners_;
    std::thread thread_;
    struct H2Tally {
        uint32_t cut = 0;
        uint32_t done = 0;
        bool closed = false;
    };
    std::unordered_map<uint64_t, H2Tally> h2_tally_; // by h2o's connection id
    std::atomic<uint8_t> pending_cmd_{0};            // the highest LoopCommand asked for
    uint8_t done_cmd_ = 0;                           // the highest carried out (loop thread)
    std::atomic<bool> exit_{false};
    int wake_fd_ = -1; // eventfd in the loop: a command wakes it
    h2o_socket_t *wake_sock_ = nullptr;
    static void on_wake(h2o_socket_t *sock, const char *err);
};

class Server {
public:
    explicit Server(core::Context &ctx);
    ~Server();
    Server(const Server &) = delete;
    Server &operator=(const Server &) = delete;

    /// Configures libh2o, starts the execution layer and the loops. False with `error` set
    /// (everything started is stopped again).
    bool start(std::vector<core::Listener> &listeners, std::string &error);
    /// The graceful stop (LIFE-STOP-*): close the listeners, GOAWAY / Connection: close,
    /// drain for up to graceful_timeout_ms, then cut what is left and stop the loops. False
    /// when app threads were still busy at the end (the Server must then not be destroyed).
    bool stop();

    core::Context &ctx() { return ctx_; }
    exec::Executor &executor() { return executor_; }
    bool app_has_request_end() const { return app_has_request_end_; }
    h2o_globalconf_t *conf() { return &conf_; }
    SSL_CTX *ssl_ctx() { return ssl_ctx_; }

    /// The requests in flight: a Stream is listed from its start to its dispose.
    core::LiveSet<Stream> &live() { return live_; }

    static int on_req(h2o_handler_t *self, h2o_req_t *req);

private:
    /// The TLS context for --certfile/--keyfile, with ALPN h2 and http/1.1.
    bool setup_tls(const core::Config &cfg, std::string &error);
    void stop_loops();

    core::Context &ctx_;
    exec::Executor executor_;
    h2o_globalconf_t conf_{};
    bool conf_ready_ = false;
    SSL_CTX *ssl_ctx_ = nullptr;
    bool app_has_request_end_ = false;
    std::vector<std::unique_ptr<Loop>> loops_;

    core::LiveSet<Stream> live_;
};

} // namespace cwsgi::adapters::h2o
