// conn.hh: one HTTP/1.1 connection of the forking adapter, and the core::Exchange of the request
// it carries.
//
// A worker's event loop (server.hh) owns every connection. Per connection it reads bytes into
// one buffer, parses heads with lib/http1 (HeadParser, then core::validate_request_head), and
// runs one request at a time through the execution layer (exec::Task): on the thread pool, or on
// a fiber of the loop thread. Pipelined requests wait in the buffer until the one before them is
// answered; nothing after a request whose answer closes the connection is ever parsed.
//
// The split between the two sides, as in the other adapters:
//   * the loop thread alone touches the socket: it decodes the request body (http1::BodyDecoder)
//     into a bounded FIFO the app's read() takes from, frames what the app wrote (another bounded
//     FIFO) with http1::write_head and the chunk writer, writes it, runs sendfile(2), watches the
//     socket for the peer going away and runs the deadlines;
//   * the app side (the core::Exchange methods) only changes state under the Conn's mutex and
//     kicks the loop (Server::kick). A blocked read or write waits in exec::Task::wait, which
//     blocks the pool thread or yields the fiber back to the loop.
// README.md has the whole mapping onto the ABI.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/exchange.hh"
#include "core/futex.hh"
#include "core/request.hh"
#include "exec/byte_fifo.hh"
#include "exec/executor.hh"
#include "http1/parser.hh"

namespace cwsgi::adapters::forking {

class Server;

/// The peer and local addresses of a connection, formatted once when it is accepted.
struct Peer {
    std::string remote_addr, remote_port;
    std::string local_addr, local_port;
    bool is_unix = false;
};

class Conn final : public core::Exchange {
public:
    using Clock = std::chrono::steady_clock;

    /// Takes `fd` (accepted, non-blocking) over. The new Conn holds one reference, the loop's,
    /// dropped when the connection is closed (close_now). Threads: the loop thread.
    Conn(Server &server, int fd, Peer peer);
    ~Conn() override;
    Conn(const Conn &) = delete;
    Conn &operator=(const Conn &) = delete;

    void ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
    void unref();

    int fd() const { return fd_; }

    // ---- the loop thread --------------------------------------------------------------------
    /// epoll reported `events` for the socket.
    void on_events(uint32_t events);
    /// The loop drained a kick (Server::kick) for this connection: carry out the app side.
    void on_kick();
    /// Runs the deadlines (head, idle, body stall, write stall, linger) at `now`.
    void on_tick(Clock::time_point now);
    /// Graceful stop begins (LIFE-STOP-1): an idle connection closes now; one with a request
    /// closes after its answer (the core adds Connection: close while stopping).
    void on_drain();
    /// Past the graceful deadline (LIFE-STOP-2/5): the app's waits end with CWSGI_E_SHUTDOWN
    /// and the connection is closed.
    void on_deadline();
    /// True when the connection holds no request at all (nothing to wait for at a stop).
    bool quiet() const { return phase_ == Phase::idle && rpos_ == rbuf_.size(); }
    bool closed() const { return phase_ == Phase::closed; }

    // ---- core::Exchange (the app's context) ---------------------------------------------------
    void continue_body() override;
    int64_t read_body(void *buf, size_t cap) override;
    const std::vector<core::Header> *request_trailers() override;
    int32_t send_informational(uint32_t status, const std::vector<core::Header> &headers) override;
    int32_t commit(const core::ResponseHead &head) override;
    int32_t send_body(const void *data, size_t len) override;
    int32_t send_file(int fd, int64_t offset, int64_t count) override;
    int32_t end_body() override;
    void abort_body() override;
    bool disconnected() const override;
    bool response_sent() const override;
    int32_t wait_fd(int fd, uint32_t events, int32_t timeout_ms) override;

    // Intrusive list of open connections, owned by the Server (loop thread only).
    Conn *prev_ = nullptr;
    Conn *next_ = nullptr;
    // The Server's kick list (guarded by its kick mutex).
    bool kicked_ = false;

private:
    /// Where the connection stands (loop thread only).
    enum class Phase : uint8_t {
        idle,    // between requests: no byte of the next one yet
        head,    // the first bytes of a head arrived; the header deadline runs
        running, // a request is in flight (creq_ is set)
        linger,  // the server's own answer or the last response went out: drop input, then close
        closed,  // the socket is closed
    };

    static const exec::Task::Hooks kTaskHooks;
    static void job_run(void *self, int32_t unused);
    static void job_complete(void *self, int32_t outcome);
    static void hook_wake(void *self);
    static void hook_done(void *self);
    static void hook_hold(void *self);
    static void hook_release(void *self);
    static void hook_describe(void *self, exec::DescribeBuf &out);
    static void hook_block(void *self);

    /// Sync mode (THR-10): what the app's call changed goes to the socket before the call
    /// returns (a blocking app may sleep next). Declared before the lock, so it runs after it.
    struct SyncFlush {
        Conn &c;
        ~SyncFlush()
        {
            if (c.sync_kick_) {
                c.sync_kick_ = false;
                c.sync_progress();
                c.sync_check_stop();
            }
        }
    };
    /// Sync mode: one non-blocking step on the request's I/O (decode, frame, write). True when
    /// something moved or the connection closed. Loop thread, inside the job, no lock held.
    bool sync_progress();
    /// Sync mode: starts the graceful stop as soon as one was asked for (one atomic load when
    /// none was), so that the listen queue is swept before clients that come after the signal.
    void sync_check_stop();
    /// Sync mode's block hook: sync_progress, else block on the socket and the stop pipe for up
    /// to one deadline tick, then run the connection's deadlines and the graceful stop.
    void sync_block();
    /// Sync mode's wait_fd (THR-6, THR-10): polls the app's descriptor together with the
    /// connection (a peer that leaves ends the wait with CWSGI_E_DISCONNECTED, as a cooperative
    /// wait does) and the stop pipe, in slices of one deadline tick, running the deadlines.
    int32_t sync_wait_fd(int fd, uint32_t events, int32_t timeout_ms);
    /// The socket events of on_events, without advance(); false when the connection closed.
    bool take_events(uint32_t events);

    /// The peer was seen leaving while a request runs (end of stream, EPOLLRDHUP).
    void note_gone();
    /// Makes progress on everything the connection can do now, then sets the epoll mask.
    void advance();
    /// Reads what the socket has (bounded); false when the connection was closed.
    bool read_socket();
    /// Parses the head in rbuf_; starts the request or answers it. True when it moved on.
    bool parse_head();
    void start_request(core::RequestHead &head, const core::HeadCheck &check);
    /// Answers a request the server refuses by itself, then lingers (REQ-REPLY-1).
    void answer_refused(core::RequestHead &head, const core::HeadCheck &check);
    /// Decodes body bytes from rbuf_ into the FIFO; true when something moved.
    bool pump_body();
    /// Frames what the app side queued into wbuf_; true when something moved.
    bool pump_response();
    /// Appends bytes for the socket (loop thread).
    void queue(std::string_view bytes);
    /// Writes wbuf_ (and the pending file range); false when the connection was closed.
    bool write_socket();
    /// Once the whole response is on the socket: reports the wire outcome. True when it did.
    bool settle_wire();
    /// The request is over on the wire and in the app: next request, linger or close.
    void finish_request();
    /// The wire outcome is known: tells the core once.
    void complete_wire(int32_t outcome);
    void begin_linger();
    /// Closes the socket; a request in flight learns that the peer is gone (`code`).
    void close_now(int32_t code);
    void update_mask();
    /// Makes the loop carry out the app side soon (mu_ held).
    void kick_locked();

    Server &srv_;
    std::atomic<int> refs_{1};
    int fd_;
    Peer peer_;

    // ---- loop thread only ----------------------------------------------------------------------
    Phase phase_ = Phase::idle;
    std::string rbuf_; // bytes read, from the start of the current request on
    size_t rpos_ = 0;  // where the current request (or its undecoded body) starts in rbuf_
    http1::HeadParser parser_;
    std::optional<http1::BodyDecoder> decoder_;
    bool body_done_ = true;    // the request body was decoded to its end
    bool body_failed_ = false; // its framing broke (decode error, timeout, cut)
    std::string wbuf_;         // bytes for the socket
    size_t wpos_ = 0;
    uint64_t queued_total_ = 0;  // bytes ever appended to wbuf_
    uint64_t written_total_ = 0; // bytes ever written to the socket
    uint64_t head_mark_ = 0;     // queued_total_ right after the response head
    uint64_t gone_written_ = 0;  // written_total_ when the peer was seen leaving
    bool head_queued_ = false;
    bool final_queued_ = false;      // the end of the response is in wbuf_ (or nothing follows)
    bool file_started_ = false;      // the send_file range is being written (after wbuf_)
    bool cut_ = false;               // the app aborted: the response ends without its proper end
    bool wire_done_ = false;         // complete_wire ran for this request
    int32_t wire_outcome_ = 0;       // fixed when the last byte left (0: not yet)
    bool job_running_ = false;       // a Task job has not returned yet (guarded by mu_ too)
    bool draining_ = false;          // graceful stop: close after this request
    bool eof_ = false;               // read() returned 0
    bool rdhup_ = false;             // epoll reported the peer's shutdown while a request ran
    bool shut_ = false;              // linger: our side is shut down for writing
    uint32_t mask_ = 0;              // the events registered with epoll
    uint32_t minor_ = 1;             // the request's HTTP/1 minor version
    Clock::time_point deadline_{};   // the head / idle / linger deadline
    Clock::time_point last_read_{};  // the last byte read (body stall)
    Clock::time_point last_write_{}; // the last write progress (write stall)
    Clock::time_point linger_end_{}; // the lingering close ends here at the latest
    uint64_t lingered_ = 0;
    core::RequestPtr creq_;
    std::string target_; // for logs and stack-overflow reports

    // ---- shared with the app side, under mu_ ---------------------------------------------------
    mutable core::FutexMutex mu_;
    exec::Task task_;
    exec::ByteFifo in_;
    bool in_eof_ = false;
    int32_t read_error_ = 0;
    bool in_blocked_ = false;    // the loop stopped decoding: the FIFO was full
    bool want_continue_ = false; // continue_body was called
    bool continue_done_ = false; // the 100 went out (or will never)
    bool expect_continue_ = false;
    std::vector<core::Header> trailers_;
    std::string info_; // 1xx responses waiting for the wire
    bool committed_ = false;
    core::ResponseHead head_;
    exec::ByteFifo out_;
    bool ended_ = false;
    bool aborted_ = false;
    int file_fd_ = -1; // a send_file range waiting for the loop (our dup)
    int64_t file_off_ = 0, file_left_ = 0;
    int32_t file_result_ = 0;
    bool stopping_ = false;
    bool gone_locked_ = false; // the socket is closed (the app's I/O fails)
    bool app_done_ = false;    // the run job returned
    bool sync_kick_ = false;   // sync mode: the app's call left work for the socket (loop thread)

    std::atomic<bool> gone_{false}; // the peer is known to be gone
    std::atomic<bool> sent_{false}; // the response head reached the socket
};

} // namespace cwsgi::adapters::forking
