// stream.hh: one request between a libh2o event loop and the app.
//
// libh2o calls the adapter's handler once per request (an HTTP/1 request or an HTTP/2 stream)
// on the loop thread that owns the connection, with the whole request body already buffered
// (h2o 2.2.5 reads it before the handler). A Stream is that request's core::Exchange. The app
// runs where the execution layer puts it (lib/exec, THR-5): on a fiber of this loop thread, or
// on the thread pool. Either way every libh2o call happens on the loop thread, in flush():
//   * the app side (commit, send_body, end_body, abort_body) only changes the Stream's state
//     under its mutex and "kicks" the loop: in cooperative mode the loop flushes right after
//     the fiber yields (run_pending at the edges of every callback); in threads mode the kick
//     is a message on the loop's h2o_multithread queue;
//   * the response body goes through a bounded FIFO and one buffer in flight: flush() moves the
//     FIFO into the in-flight buffer and hands it to h2o_send, which keeps it until the
//     generator's proceed callback, the backpressure point where a blocked writer resumes;
//   * the end comes from the request's memory pool: a shared allocation whose dispose callback
//     runs when libh2o disposes the request, on every path (response done, client gone, stream
//     reset, connection closed), exactly once. The h2o_req_t is never touched after it.
// README.md has the whole mapping.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "core/exchange.hh"
#include "core/futex.hh"
#include "core/live.hh"
#include "core/request.hh"
#include "exec/byte_fifo.hh"
#include "exec/executor.hh"
#include "libh2o.hh"

namespace cwsgi::adapters::h2o {

class Loop;
class Stream;

/// What libh2o holds of a Stream, as C structs whose first member is libh2o's own type.
struct GeneratorLink {
    h2o_generator_t super;
    Stream *self;
};
struct MessageLink {
    h2o_multithread_message_t super;
    Stream *self;
};
struct PoolLink {
    Stream *self;
};
struct TimeoutLink {
    h2o_timeout_entry_t super;
    Stream *self;
};

class Stream final : public core::Exchange, public core::LiveSet<Stream>::Hook, public core::BlockAllocated {
public:
    /// Called from the loop's handler: builds and checks the head, answers a refused one, or
    /// starts the app. Threads: `loop`'s thread.
    static void handle(Loop &loop, h2o_req_t *req);

    ~Stream() override;
    Stream(const Stream &) = delete;
    Stream &operator=(const Stream &) = delete;

    void ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
    void unref();

    // ---- the loop thread ------------------------------------------------------------------
    /// A kick message arrived (threads mode) or another thread woke the Task (cooperative).
    void on_message();
    /// The generator's proceed callback: the buffer in flight was sent.
    static void on_proceed(h2o_generator_t *gen, h2o_req_t *req);
    /// The graceful deadline: waits end with CWSGI_E_SHUTDOWN. Threads: any.
    void force_stop();

    // ---- core::Exchange (the app's context) -----------------------------------------------
    int64_t read_body(void *buf, size_t cap) override;
    int32_t commit(const core::ResponseHead &head) override;
    int32_t send_body(const void *data, size_t len) override;
    int32_t end_body() override;
    void abort_body() override;
    bool disconnected() const override;
    int32_t wait_fd(int fd, uint32_t events, int32_t timeout_ms) override;
    bool response_sent() const override;

private:
    Stream(Loop &loop, h2o_req_t *req);

    static const exec::Task::Hooks kTaskHooks;
    static void job_run(void *self, int32_t unused);
    static void job_complete(void *self, int32_t outcome);
    static void hook_wake(void *self);
    static void hook_done(void *self);
    static void hook_hold(void *self);
    static void hook_release(void *self);
    static void hook_describe(void *self, exec::DescribeBuf &out);

    static void on_stop(h2o_generator_t *gen, h2o_req_t *req);
    static void on_pool_dispose(void *link);
    static void on_write_timeout(h2o_timeout_entry_t *entry);

    /// Runs what the app side can do now, then carries out its state on libh2o. Loop thread.
    void step();
    void flush();
    void start_response_locked();
    void on_disposed();
    /// Makes the loop call step() soon (app side, mu_ held).
    void kick_locked();
    void post_message();

    Loop &loop_;
    std::atomic<int> refs_{1}; // libh2o's reference, dropped by the pool's dispose callback
    h2o_req_t *req_;           // loop thread only; null once libh2o disposed the request
    core::RequestPtr creq_;
    GeneratorLink gen_{};
    MessageLink msg_{};
    TimeoutLink write_timer_{}; // linked while a buffer is with h2o_send (LIFE-DISC-2)
    std::string target_;        // for logs and stack-overflow reports
    bool http2_ = false;

    mutable core::FutexMutex mu_;
    exec::Task task_;
    // Request body: libh2o's buffer, readable until the request is disposed.
    const char *body_ = nullptr;
    size_t body_len_ = 0;
    size_t body_pos_ = 0;
    int fd_ = -1;      // HTTP/1: the connection's socket, for the disconnect probe (-1 once disposed)
    bool tls_ = false; // HTTP/1 over TLS: the probe looks for the peer's FIN, not for bytes

    // Response.
    bool committed_ = false;
    bool started_ = false; // h2o_start_response was called
    bool sending_ = false; // a buffer is with h2o_send until proceed
    bool ended_ = false;
    bool aborted_ = false;
    bool final_sent_ = false; // the last h2o_send (FINAL or ERROR) went out
    bool flush_head_ = false; // a zero-length write: put the head out now
    bool posted_ = false;     // a kick message is queued
    bool stopping_ = false;
    core::ResponseHead head_;
    exec::ByteFifo out_;
    std::string inflight_;

    // End.
    mutable std::atomic<bool> gone_{false}; // the client is known to be gone
    std::atomic<bool> app_done_{false};
};

} // namespace cwsgi::adapters::h2o
