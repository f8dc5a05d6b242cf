// bridge.hh: one request between a libmicrohttpd event-loop thread and the app.
//
// libmicrohttpd runs a few event-loop threads. The app runs where the execution layer puts it
// (lib/exec, THR-5): on a thread pool, where it may block in read() and write() for as long as
// it likes, or on a fiber on the loop thread itself, which yields inside those calls. A Bridge is
// the core::Exchange of one request and the glue between the two sides; it drives its
// exec::Task the same way in both modes (start, notify, run_pending at the edges of every
// libmicrohttpd callback) and never knows which one runs. It is built so that an event-loop
// thread never waits for the app:
//   * the request body flows through a bounded FIFO: the access handler copies what fits and
//     suspends the connection (MHD_suspend_connection) while the FIFO is full; the app's read
//     resumes it once there is room again;
//   * the response body flows through a second bounded FIFO into a content-reader callback,
//     which suspends the connection while the FIFO is empty; the app's write resumes it;
//   * every libmicrohttpd call that needs the event-loop thread (queueing the response,
//     suspending) happens on it; the app thread only ever calls MHD_resume_connection, which
//     libmicrohttpd allows from any thread.
// libmicrohttpd 0.9.75 can queue a response only before the body is read (it then closes the
// connection) or after the whole body arrived, so the Bridge holds the body back until the app
// reads or commits (lazy "100 Continue"), and drains an unread body before answering when that
// keeps the connection usable. README.md has the whole mapping.
#pragma once

#include <microhttpd.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/exchange.hh"
#include "core/futex.hh"
#include "core/live.hh"
#include "core/request.hh"
#include "exec/byte_fifo.hh"
#include "exec/executor.hh"

namespace cwsgi::adapters::mhd {

class Server;
struct Conn;

class Bridge final : public core::Exchange, public core::LiveSet<Bridge>::Hook, public core::BlockAllocated {
public:
    /// Created by the URI log callback, before libmicrohttpd parses the rest of the head.
    /// `uri` is the raw request-target (copied); the pointer value is kept for the request-line
    /// check. The new Bridge holds one reference, owned by libmicrohttpd until the completion
    /// notification.
    Bridge(Server &server, Conn *conn, const char *uri);
    ~Bridge() override;
    Bridge(const Bridge &) = delete;
    Bridge &operator=(const Bridge &) = delete;

    /// Reference counting: libmicrohttpd, the app job, the response object and a pending
    /// completion job each hold one. Threads: any.
    void ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
    void unref();

    // ---- libmicrohttpd thread ----------------------------------------------------------
    /// The access handler for this request. Returns MHD_NO to make libmicrohttpd close the
    /// connection (a dead peer, an aborted response, a stop).
    MHD_Result on_access(MHD_Connection *conn, const char *method, const char *version, const char *upload,
                         size_t *upload_size);
    /// The completion notification: reports the wire outcome to the core, exactly once.
    void on_completed(MHD_RequestTerminationCode toe);

    // ---- shutdown -------------------------------------------------------------------------
    /// The graceful deadline (LIFE-STOP-4/5): stops suspending, wakes the app (its waits return
    /// CWSGI_E_SHUTDOWN) and resumes the connection so libmicrohttpd can close it before
    /// MHD_stop_daemon (which refuses suspended connections). Threads: any.
    void force_stop();

    // ---- core::Exchange (the app thread) ----------------------------------------------
    void continue_body() override;
    int64_t read_body(void *buf, size_t cap) override;
    const std::vector<core::Header> *request_trailers() override;
    int32_t commit(const core::ResponseHead &head) override;
    int32_t send_body(const void *data, size_t len) override;
    int32_t send_file(int fd, int64_t offset, int64_t count) override;
    int32_t end_body() override;
    void abort_body() override;
    bool disconnected() const override;
    int32_t wait_fd(int fd, uint32_t events, int32_t timeout_ms) override;
    bool response_sent() const override;

private:
    /// Where the request stands, seen from libmicrohttpd's side.
    enum class Phase : uint8_t {
        fresh,  // the first access-handler call has not happened
        held,   // the body is held back until the app reads or commits (suspended)
        body,   // libmicrohttpd reads the body; the next call without data is the final one
        final_, // the whole request is in; waiting for the app's response
        queued, // the response is queued; the content reader does the rest
    };
    /// Why the connection is suspended (what resumes it).
    enum class Wait : uint8_t { none, held, input_room, response, output };
    /// App-side events that may let a suspended connection go on.
    /// kApp: the app side must run (a wait_fd, the SERIAL turn or the deadline woke it from
    /// another thread); every suspension yields to it.
    enum Event : unsigned { kWantBody = 1, kOutput = 2, kInputRoom = 4, kEnd = 8, kApp = 16 };

    // The execution layer's jobs and hooks (exec::Task); `self` is the Bridge.
    static const exec::Task::Hooks kTaskHooks;
    static void job_run(void *self, int32_t unused);
    static void job_complete(void *self, int32_t outcome);
    static void hook_wake(void *self);
    static void hook_done(void *self);
    static void hook_hold(void *self);
    static void hook_release(void *self);
    static void hook_describe(void *self, exec::DescribeBuf &out);
    /// Ends the request at the core (on_request_end, access log): in the app's context when the
    /// app has an on_request_end (THR-9), else right here.
    void complete_request(int32_t outcome);

    static ssize_t content_reader(void *cls, uint64_t pos, char *buf, size_t max);
    static void content_reader_free(void *cls);
    ssize_t on_read_response(char *buf, size_t max);

    MHD_Result first_call(MHD_Connection *conn, const char *method, const char *version);
    MHD_Result access_step(MHD_Connection *conn, const char *upload, size_t *upload_size);
    ssize_t read_response_step(char *buf, size_t max);
    MHD_Result reject(MHD_Connection *conn, core::RequestHead &head, core::HeadCheck check);
    MHD_Result after_resume_locked(MHD_Connection *conn);
    MHD_Result final_locked(MHD_Connection *conn);
    MHD_Result queue_locked(MHD_Connection *conn);
    MHD_Response *build_response_locked();
    bool response_ready_locked() const;
    bool suspend_locked(Wait why);
    void resume_locked();
    void wake_locked(unsigned events);
    bool write_deadlocked_locked() const;
    bool peer_gone_locked();
    bool body_cut_by_peer_locked();
    void answer_timeout_locked();

    Server &srv_;
    Conn *conn_info_;
    std::atomic<int> refs_{1};
    std::string target_;
    uintptr_t uri_ptr_;
    core::RequestPtr req_;
    bool has_body_ = false;
    bool expect_continue_ = false;
    int64_t content_length_ = -1;

    mutable core::FutexMutex mu_;
    exec::Task task_;                // where the app runs and waits (its waits use mu_)
    MHD_Connection *conn_ = nullptr; // null once libmicrohttpd reported completion
    int fd_ = -1;
    Phase phase_ = Phase::fresh;
    Wait wait_ = Wait::none;
    bool suspended_ = false;
    bool stopping_ = false;

    // Request body.
    bool want_body_ = false;
    bool in_eof_ = false;
    bool draining_ = false;
    uint64_t received_ = 0; // body bytes libmicrohttpd handed over
    uint64_t drained_ = 0;
    std::chrono::steady_clock::time_point drain_until_{}; // the lingering read's deadline
    exec::ByteFifo in_;
    std::vector<core::Header> trailers_;

    // Response.
    bool committed_ = false;
    bool ended_ = false;
    bool aborted_ = false;
    bool queued_ = false;
    bool flush_ = false;
    bool deadlock_logged_ = false;
    core::ResponseHead head_;
    exec::ByteFifo out_;
    int file_fd_ = -1;
    int64_t file_offset_ = 0;
    int64_t file_count_ = 0;

    // End.
    std::atomic<bool> app_done_{false}; // the run job returned (read without mu_)
    std::atomic<bool> sent_{false};     // the response was handed to libmicrohttpd (response_sent)
    bool completed_ = false;
    bool peer_gone_ = false;
    int32_t read_error_ = 0; // what read_body returns once the connection is gone
    std::atomic<bool> disconnected_{false};
};

} // namespace cwsgi::adapters::mhd
